//! Airflow's `conf.get(section, key)` lookup chain (`airflow/_shared/configuration/parser.py`,
//! `AirflowConfigParser.get` and `_lookup_sequence`), for one option:
//!
//! 1. environment: `AIRFLOW__{SECTION}__{KEY}` (present, even if empty, wins), else
//!    `..._CMD` (sensitive options only: the command's output), else `..._SECRET` (sensitive
//!    options only: a secrets-backend lookup); then the same three for the deprecated name;
//! 2. `airflow.cfg`: `[section] key`, then the deprecated name;
//! 3. `airflow.cfg`: `[section] key_cmd` (sensitive only; an empty output falls through);
//! 4. `airflow.cfg`: `[section] key_secret` (sensitive only);
//! 5. the default.
//!
//! Values from the environment, the file and the defaults go through `expand_env_var`
//! (`os.path.expandvars` then `expanduser`, repeated until stable); command output and secrets
//! do not. Commands are split with `shlex.split` and run **without** a shell, their stdout used
//! as is (not stripped), as Airflow's `run_command` does.
//!
//! Secrets: without a `[secrets] backend`, Airflow's `_get_config_value_from_secret_backend`
//! returns `None`, so a `_secret` setting is skipped (the lookup moves on). The built-in
//! `EnvironmentVariablesBackend` and `MetastoreBackend` inherit `get_config() -> None`: skipped
//! too. Any other backend is refused ([`super::ConfigError::SecretsBackend`]): we cannot run
//! Python backends.

use std::collections::HashMap;
use std::path::Path;

use super::ini::Ini;
use super::{ConfigError, Source};

/// Runs a configuration command (`_CMD`/`_cmd`), returning its stdout.
pub trait CommandRunner {
    /// Runs `command` (an unsplit command line) and returns its standard output.
    fn run(&self, command: &str) -> Result<String, String>;
}

/// The real runner: `shlex.split`, then the program directly (no shell), as Airflow does.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemCommandRunner;

impl CommandRunner for SystemCommandRunner {
    fn run(&self, command: &str) -> Result<String, String> {
        let argv = shlex_split(command)?;
        let Some((program, args)) = argv.split_first() else {
            return Err("empty command".into());
        };
        let output = std::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("cannot run `{program}`: {e}"))?;
        let stdout = decode_ignoring_errors(&output.stdout);
        if !output.status.success() {
            return Err(format!(
                "exited with {}; stderr: {}",
                output.status,
                decode_ignoring_errors(&output.stderr).trim_end()
            ));
        }
        Ok(stdout)
    }
}

/// `bytes.decode("utf-8", "ignore")`: invalid sequences are dropped.
fn decode_ignoring_errors(bytes: &[u8]) -> String {
    bytes.utf8_chunks().map(|chunk| chunk.valid()).collect()
}

/// Python's `shlex.split(s)` (POSIX mode, no comments).
pub fn shlex_split(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(next) => word.push(next),
                    None => return Err("no escaped character after a trailing `\\`".into()),
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("no closing quotation".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("no escaped character".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("no closing quotation".into()),
                    }
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Python's `expand_env_var`: `os.path.expandvars` then `os.path.expanduser`, repeated until
/// the value stops changing (bounded here: Airflow would loop forever on `A=x$A`).
pub fn expand_env_var(value: &str, env: &HashMap<String, String>) -> String {
    let mut current = value.to_owned();
    for _ in 0..32 {
        let next = expand_user(&expand_vars(&current, env), env);
        if next == current {
            break;
        }
        current = next;
    }
    current
}

/// `posixpath.expandvars`: `$name` and `${name}` (name = `\w+`, ASCII) replaced when set.
fn expand_vars(value: &str, env: &HashMap<String, String>) -> String {
    if !value.contains('$') {
        return value.to_owned();
    }
    let bytes = value.as_bytes();
    let mut out = String::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        if bytes[i] != b'$' {
            let next = value[i + 1..].find('$').map_or(value.len(), |p| i + 1 + p);
            out.push_str(&value[i..next]);
            i = next;
            continue;
        }
        let rest = &value[i + 1..];
        let (name, len) = if let Some(braced) = rest.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            (&rest[..end], end)
        };
        match env.get(name).filter(|_| len > 0 && !name.is_empty()) {
            Some(v) => {
                out.push_str(v);
                i += 1 + len;
            }
            None => {
                out.push('$');
                i += 1;
            }
        }
    }
    out
}

/// `posixpath.expanduser` for `~` and `~/...` (from `$HOME`); `~user` is left alone.
fn expand_user(value: &str, env: &HashMap<String, String>) -> String {
    let Some(rest) = value.strip_prefix('~') else {
        return value.to_owned();
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return value.to_owned();
    }
    match env.get("HOME") {
        Some(home) => {
            let home = if home == "/" {
                ""
            } else {
                home.trim_end_matches('/')
            };
            let joined = format!("{home}{rest}");
            if joined.is_empty() {
                "/".to_owned()
            } else {
                joined
            }
        }
        None => value.to_owned(),
    }
}

/// One option Airflow knows, with what the lookup needs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OptionSpec {
    pub(crate) section: &'static str,
    pub(crate) key: &'static str,
    /// Airflow's default as `conf.get` returns it; `None`: no default (or, for
    /// `sql_alchemy_conn`, ours differs: the embedded database).
    pub(crate) default: Option<&'static str>,
    /// In Airflow's `sensitive_config_values`: `_CMD`/`_SECRET` allowed, value masked.
    pub(crate) sensitive: bool,
    /// Airflow's `deprecated_options` entry: the old `(section, key)`.
    pub(crate) deprecated: Option<(&'static str, &'static str)>,
}

/// What a lookup found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) value: Option<String>,
    pub(crate) source: Source,
}

/// The inputs of a lookup.
pub(crate) struct Lookup<'a> {
    pub(crate) ini: &'a Ini,
    pub(crate) file: Option<&'a Path>,
    pub(crate) env: &'a HashMap<String, String>,
    pub(crate) runner: &'a dyn CommandRunner,
}

/// `AIRFLOW__{SECTION}__{KEY}` (dots in the section become `_`).
pub(crate) fn env_var_name(section: &str, key: &str) -> String {
    format!(
        "AIRFLOW__{}__{}",
        section.replace('.', "_").to_uppercase(),
        key.to_uppercase()
    )
}

/// Backends whose `get_config` is Airflow's base implementation, which returns `None`.
const BACKENDS_WITHOUT_CONFIG: &[&str] = &[
    "airflow.secrets.environment_variables.EnvironmentVariablesBackend",
    "airflow.secrets.metastore.MetastoreBackend",
];

impl Lookup<'_> {
    /// `conf.get(section, key)`.
    pub(crate) fn get(&self, spec: &OptionSpec) -> Result<Found, ConfigError> {
        let names = std::iter::once((spec.section, spec.key)).chain(spec.deprecated);
        let names: Vec<(&str, &str)> = names.collect();
        for &(section, key) in &names {
            if let Some(found) = self.env_value(spec, section, key)? {
                return Ok(found);
            }
        }
        for &(section, key) in &names {
            if let Some(value) = self.file_value(section, key)? {
                return Ok(Found {
                    value: Some(expand_env_var(&value, self.env)),
                    source: Source::File {
                        path: self.file_path(),
                        key: format!("[{section}] {key}"),
                    },
                });
            }
        }
        if spec.sensitive {
            for &(section, key) in &names {
                let cmd_key = format!("{key}_cmd");
                if let Some(command) = self.file_value(section, &cmd_key)? {
                    let label = format!("[{section}] {cmd_key}");
                    let output = self.run(&command, &label)?;
                    if !output.is_empty() {
                        return Ok(Found {
                            value: Some(output),
                            source: Source::FileCmd {
                                path: self.file_path(),
                                key: label,
                            },
                        });
                    }
                }
            }
            for &(section, key) in &names {
                let secret_key = format!("{key}_secret");
                if let Some(path) = self.file_value(section, &secret_key)? {
                    let label = format!("[{section}] {secret_key}");
                    if let Some(value) = self.secret(&path, &label)?.filter(|v| !v.is_empty()) {
                        return Ok(Found {
                            value: Some(value),
                            source: Source::FileSecret {
                                path: self.file_path(),
                                key: label,
                            },
                        });
                    }
                }
            }
        }
        Ok(Found {
            value: spec.default.map(|d| expand_env_var(d, self.env)),
            source: Source::Default,
        })
    }

    fn env_value(
        &self,
        spec: &OptionSpec,
        section: &str,
        key: &str,
    ) -> Result<Option<Found>, ConfigError> {
        let name = env_var_name(section, key);
        if let Some(value) = self.env.get(&name) {
            return Ok(Some(Found {
                value: Some(expand_env_var(value, self.env)),
                source: Source::Env(name),
            }));
        }
        if !spec.sensitive {
            return Ok(None);
        }
        let cmd = format!("{name}_CMD");
        if let Some(command) = self.env.get(&cmd) {
            let output = self.run(command, &cmd)?;
            return Ok(Some(Found {
                value: Some(output),
                source: Source::EnvCmd(cmd),
            }));
        }
        let secret = format!("{name}_SECRET");
        if let Some(path) = self.env.get(&secret)
            && let Some(value) = self.secret(path, &secret)?
        {
            return Ok(Some(Found {
                value: Some(value),
                source: Source::EnvSecret(secret),
            }));
        }
        Ok(None)
    }

    fn file_path(&self) -> std::path::PathBuf {
        self.file.map(Path::to_path_buf).unwrap_or_default()
    }

    fn file_value(&self, section: &str, key: &str) -> Result<Option<String>, ConfigError> {
        self.ini.get(section, key).map_err(|e| ConfigError::File {
            path: self.file_path(),
            message: e.to_string(),
        })
    }

    fn run(&self, command: &str, setting: &str) -> Result<String, ConfigError> {
        self.runner
            .run(command)
            .map_err(|reason| ConfigError::Command {
                setting: setting.to_owned(),
                command: command.to_owned(),
                reason,
            })
    }

    /// `_get_config_value_from_secret_backend(path)`.
    fn secret(&self, path: &str, setting: &str) -> Result<Option<String>, ConfigError> {
        let backend = self.get(&SECRETS_BACKEND)?.value.unwrap_or_default();
        let backend = backend.trim();
        if backend.is_empty() || BACKENDS_WITHOUT_CONFIG.contains(&backend) {
            return Ok(None);
        }
        Err(ConfigError::SecretsBackend {
            setting: setting.to_owned(),
            path: path.to_owned(),
            backend: backend.to_owned(),
        })
    }
}

/// `[secrets] backend` (not sensitive, no default).
pub(crate) const SECRETS_BACKEND: OptionSpec = OptionSpec {
    section: "secrets",
    key: "backend",
    default: Some(""),
    sensitive: false,
    deprecated: None,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn shlex_split_like_python() {
        let ok = |s: &str| shlex_split(s).unwrap();
        assert_eq!(ok("cat /run/secret"), ["cat", "/run/secret"]);
        assert_eq!(
            ok("  echo 'a b'  \"c d\" e\\ f "),
            ["echo", "a b", "c d", "e f"]
        );
        assert_eq!(ok(r#"printf "%s\n" x"#), ["printf", r"%s\n", "x"]);
        assert_eq!(ok(r#"a "q\"q" 'x\y'"#), ["a", "q\"q", r"x\y"]);
        assert_eq!(ok("a''b \"\""), ["ab", ""]);
        assert_eq!(
            ok("echo $HOME # no comments"),
            ["echo", "$HOME", "#", "no", "comments"]
        );
        assert!(shlex_split("echo 'open").is_err());
        assert!(shlex_split("echo \\").is_err());
        assert!(ok("   ").is_empty());
    }

    #[test]
    fn expand_env_var_like_python() {
        let e = env(&[
            ("HOME", "/home/a"),
            ("X", "1"),
            ("NESTED", "$X-$X"),
            ("EMPTY", ""),
        ]);
        assert_eq!(expand_env_var("$X/${X}/$Y/${Y}/$", &e), "1/1/$Y/${Y}/$");
        assert_eq!(expand_env_var("a$NESTED", &e), "a1-1");
        assert_eq!(expand_env_var("~/x", &e), "/home/a/x");
        assert_eq!(expand_env_var("~", &e), "/home/a");
        assert_eq!(expand_env_var("~bob/x", &e), "~bob/x");
        assert_eq!(expand_env_var("a~/x", &e), "a~/x");
        assert_eq!(expand_env_var("[$EMPTY]", &e), "[]");
        assert_eq!(expand_env_var("${X", &e), "${X");
        // Bounded where Airflow would not stop.
        let e = env(&[("A", "x$A")]);
        assert!(expand_env_var("$A", &e).starts_with("xxx"));
    }

    #[test]
    fn system_runner_runs_without_a_shell_and_keeps_stdout_as_is() {
        let out = SystemCommandRunner
            .run("printf '%s\\n' 'a b' $HOME")
            .unwrap();
        assert_eq!(out, "a b\n$HOME\n");
        let err = SystemCommandRunner.run("false").unwrap_err();
        assert!(err.contains("exited"), "{err}");
        let err = SystemCommandRunner.run("/nonexistent/command").unwrap_err();
        assert!(err.contains("cannot run"), "{err}");
        assert_eq!(decode_ignoring_errors(b"a\xffb"), "ab");
    }
}
