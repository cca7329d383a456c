//! `airflow.cfg` read the way Airflow reads it: Python's `configparser.ConfigParser` with its
//! default settings, except that option names keep their case (Airflow's `optionxform` is the
//! identity, and `conf.get` looks up lower-case names, so `SQL_ALCHEMY_CONN = ...` is not found).
//!
//! What that means, line by line (Python 3.11 `RawConfigParser._read`):
//! - a line whose first non-blank character is `#` or `;` is a comment; a `#` or `;` later in a
//!   line is part of the value (no inline comments by default);
//! - `[name]` starts a section (the name is everything up to the last `]`, case-sensitive);
//!   `[DEFAULT]` holds values every other section inherits;
//! - `key = value` or `key: value` (the first `=` or `:` splits), both sides trimmed;
//! - a line indented deeper than its option continues the value (joined with `\n`); blank lines
//!   inside a continued value are kept, trailing ones dropped;
//! - a duplicate section or option, a line before any section, an option with no name or a line
//!   that is none of the above is an error (`strict=True`).
//!
//! Values are then interpolated on read ([`Ini::get`]): `%%` is `%` and `%(name)s` is another
//! option of the same section (or `[DEFAULT]`), up to 10 levels deep.

use std::collections::HashMap;

/// A parsed configuration file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ini {
    defaults: HashMap<String, String>,
    sections: HashMap<String, HashMap<String, String>>,
}

/// A syntax error, with its 1-based line number.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub(crate) struct IniError {
    /// Line number.
    pub(crate) line: usize,
    /// What is wrong.
    pub(crate) message: String,
}

/// A value that cannot be interpolated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad interpolation in [{section}] {key}: {message}")]
pub(crate) struct InterpolationError {
    pub(crate) section: String,
    pub(crate) key: String,
    pub(crate) message: String,
}

const DEFAULT_SECTION: &str = "DEFAULT";

/// `(section, option)`; `None` is `[DEFAULT]`.
type OptionName = (Option<String>, String);
const MAX_INTERPOLATION_DEPTH: usize = 10;

impl Ini {
    /// Parses a whole file.
    pub(crate) fn parse(text: &str) -> Result<Ini, IniError> {
        let mut ini = Ini::default();
        // Values are collected as lines and joined at the end, as configparser does.
        let mut lines: Vec<(OptionName, Vec<String>)> = Vec::new();
        let mut seen_sections: Vec<String> = Vec::new();
        let mut seen_options: Vec<(String, String)> = Vec::new();
        let mut section: Option<String> = None; // None before any header
        let mut in_defaults = false;
        let mut option: Option<usize> = None; // index into `lines`
        let mut indent_level = 0usize;
        let mut first_error: Option<IniError> = None;

        for (index, raw) in text.split_inclusive('\n').enumerate() {
            let line_no = index + 1;
            let line = raw.strip_suffix('\n').unwrap_or(raw);
            let line = line.strip_suffix('\r').unwrap_or(line);
            let trimmed = py_strip(line);
            let is_comment = trimmed.starts_with('#') || trimmed.starts_with(';');
            let value = if is_comment { "" } else { trimmed };
            if value.is_empty() {
                // An empty line (not a comment) inside a value is kept.
                if !is_comment && let Some(i) = option {
                    lines[i].1.push(String::new());
                }
                continue;
            }
            let cur_indent = line.len() - py_lstrip(line).len();
            if let Some(i) = option
                && (section.is_some() || in_defaults)
                && cur_indent > indent_level
            {
                lines[i].1.push(value.to_owned());
                continue;
            }
            indent_level = cur_indent;
            if let Some(header) = section_header(value) {
                if header == DEFAULT_SECTION {
                    in_defaults = true;
                    section = None;
                } else {
                    if seen_sections.iter().any(|s| s == header) {
                        return Err(IniError {
                            line: line_no,
                            message: format!("section `{header}` already exists"),
                        });
                    }
                    seen_sections.push(header.to_owned());
                    ini.sections.entry(header.to_owned()).or_default();
                    in_defaults = false;
                    section = Some(header.to_owned());
                }
                option = None;
                continue;
            }
            if section.is_none() && !in_defaults {
                return Err(IniError {
                    line: line_no,
                    message: format!("file contains no section headers (found `{line}`)"),
                });
            }
            match split_option(value) {
                Some((name, val)) if !name.is_empty() => {
                    let key = (section.clone(), name.to_owned());
                    let seen = (
                        section
                            .clone()
                            .unwrap_or_else(|| DEFAULT_SECTION.to_owned()),
                        name.to_owned(),
                    );
                    if seen_options.contains(&seen) {
                        return Err(IniError {
                            line: line_no,
                            message: format!(
                                "option `{name}` in section `{}` already exists",
                                seen.0
                            ),
                        });
                    }
                    seen_options.push(seen);
                    lines.push((key, vec![val.to_owned()]));
                    option = Some(lines.len() - 1);
                }
                _ => {
                    // configparser keeps going and reports every bad line at the end; the
                    // first one is enough to fix.
                    first_error.get_or_insert(IniError {
                        line: line_no,
                        message: format!("cannot parse `{line}` (expected `key = value`)"),
                    });
                    option = None;
                }
            }
        }
        if let Some(error) = first_error {
            return Err(error);
        }
        for ((section, name), parts) in lines {
            let value = py_rstrip(&parts.join("\n")).to_owned();
            match section {
                None => ini.defaults.insert(name, value),
                Some(section) => ini
                    .sections
                    .get_mut(&section)
                    .expect("section created with its header")
                    .insert(name, value),
            };
        }
        Ok(ini)
    }

    /// The raw value of `[section] key`: the section's, else (if the section exists)
    /// `[DEFAULT]`'s.
    fn raw(&self, section: &str, key: &str) -> Option<&str> {
        if section == DEFAULT_SECTION {
            return self.defaults.get(key).map(String::as_str);
        }
        let values = self.sections.get(section)?;
        values
            .get(key)
            .or_else(|| self.defaults.get(key))
            .map(String::as_str)
    }

    /// The interpolated value of `[section] key`, `None` when not set.
    pub(crate) fn get(
        &self,
        section: &str,
        key: &str,
    ) -> Result<Option<String>, InterpolationError> {
        let Some(raw) = self.raw(section, key) else {
            return Ok(None);
        };
        let mut out = String::new();
        self.interpolate(section, key, raw, &mut out, 1)?;
        Ok(Some(out))
    }

    fn interpolate(
        &self,
        section: &str,
        key: &str,
        mut rest: &str,
        out: &mut String,
        depth: usize,
    ) -> Result<(), InterpolationError> {
        let err = |message: String| InterpolationError {
            section: section.to_owned(),
            key: key.to_owned(),
            message,
        };
        if depth > MAX_INTERPOLATION_DEPTH {
            return Err(err(format!(
                "more than {MAX_INTERPOLATION_DEPTH} levels of %(name)s references"
            )));
        }
        while !rest.is_empty() {
            let Some(p) = rest.find('%') else {
                out.push_str(rest);
                return Ok(());
            };
            out.push_str(&rest[..p]);
            rest = &rest[p..];
            match rest.as_bytes().get(1) {
                Some(b'%') => {
                    out.push('%');
                    rest = &rest[2..];
                }
                Some(b'(') => {
                    let close = rest.find(')').filter(|&c| c > 2);
                    let Some(close) = close.filter(|&c| rest.as_bytes().get(c + 1) == Some(&b's'))
                    else {
                        return Err(err(format!(
                            "bad interpolation variable reference `{rest}`"
                        )));
                    };
                    let name = &rest[2..close];
                    rest = &rest[close + 2..];
                    let Some(value) = self.raw(section, name) else {
                        return Err(err(format!(
                            "`%({name})s` refers to an option that is not set in [{section}] or [DEFAULT]"
                        )));
                    };
                    if value.contains('%') {
                        self.interpolate(section, key, value, out, depth + 1)?;
                    } else {
                        out.push_str(value);
                    }
                }
                _ => {
                    return Err(err(format!(
                        "'%' must be followed by '%' or '(', found: `{rest}` (write `%%` for a literal `%`)"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// `[header]`: everything between the first `[` and the last `]` (configparser matches
/// `\[(?P<header>.+)\]` at the start of the stripped line; text after the `]` is ignored).
fn section_header(value: &str) -> Option<&str> {
    let inner = value.strip_prefix('[')?;
    let close = inner.rfind(']')?;
    (close > 0).then(|| &inner[..close])
}

/// `name = value` / `name: value`: the name is everything before the first delimiter.
fn split_option(value: &str) -> Option<(&str, &str)> {
    let at = value.find(['=', ':'])?;
    Some((py_strip(&value[..at]), py_strip(&value[at + 1..])))
}

fn is_py_space(c: char) -> bool {
    c.is_whitespace()
}

fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

fn py_lstrip(s: &str) -> &str {
    s.trim_start_matches(is_py_space)
}

fn py_rstrip(s: &str) -> &str {
    s.trim_end_matches(is_py_space)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(ini: &Ini, section: &str, key: &str) -> Option<String> {
        ini.get(section, key).unwrap()
    }

    #[test]
    fn sections_options_and_delimiters() {
        let ini =
            Ini::parse("[core]\na = 1\nb: two\n  \n[database]\nsql_alchemy_conn=sqlite:////x.db\n")
                .unwrap();
        assert_eq!(get(&ini, "core", "a").as_deref(), Some("1"));
        assert_eq!(get(&ini, "core", "b").as_deref(), Some("two"));
        assert_eq!(
            get(&ini, "database", "sql_alchemy_conn").as_deref(),
            Some("sqlite:////x.db")
        );
        assert_eq!(get(&ini, "core", "c"), None);
        assert_eq!(get(&ini, "nope", "a"), None);
    }

    #[test]
    fn first_delimiter_splits() {
        let ini = Ini::parse("[s]\nurl = postgresql://u:p@h:5432/db\nk: a=b\n").unwrap();
        assert_eq!(
            get(&ini, "s", "url").as_deref(),
            Some("postgresql://u:p@h:5432/db")
        );
        assert_eq!(get(&ini, "s", "k").as_deref(), Some("a=b"));
    }

    #[test]
    fn inline_comment_characters_are_part_of_the_value() {
        let ini = Ini::parse(
            "# comment\n; also\n[s]\n  # indented comment\nk = v # not a comment ; either\n",
        )
        .unwrap();
        assert_eq!(
            get(&ini, "s", "k").as_deref(),
            Some("v # not a comment ; either")
        );
    }

    #[test]
    fn continuation_lines_join_with_newlines() {
        let ini =
            Ini::parse("[s]\nk = first\n  second\n\n  third\n# c\n    fourth\n\nn = 1\n").unwrap();
        assert_eq!(
            get(&ini, "s", "k").as_deref(),
            Some("first\nsecond\n\nthird\nfourth")
        );
        assert_eq!(get(&ini, "s", "n").as_deref(), Some("1"));
    }

    #[test]
    fn names_are_case_sensitive_and_keep_their_case() {
        let ini = Ini::parse("[Core]\nFernet_Key = x\n[core]\nfernet_key = y\n").unwrap();
        assert_eq!(get(&ini, "core", "fernet_key").as_deref(), Some("y"));
        assert_eq!(get(&ini, "Core", "Fernet_Key").as_deref(), Some("x"));
        assert_eq!(get(&ini, "Core", "fernet_key"), None);
    }

    #[test]
    fn empty_values_and_defaults() {
        let ini = Ini::parse("[DEFAULT]\nshared = d\n[s]\nempty =\n").unwrap();
        assert_eq!(get(&ini, "s", "empty").as_deref(), Some(""));
        assert_eq!(get(&ini, "s", "shared").as_deref(), Some("d"));
        // [DEFAULT] values only show through sections that exist.
        assert_eq!(get(&ini, "other", "shared"), None);
    }

    #[test]
    fn interpolation() {
        let ini = Ini::parse(
            "[DEFAULT]\nhome = /srv\n[s]\ndir = %(home)s/x\nurl = sqlite:///%(dir)s/a.db\npct = 50%%\nbad = 50%\nmissing = %(nope)s\nsyntax = %(home)\nloop = %(loop)s\n",
        )
        .unwrap();
        assert_eq!(
            get(&ini, "s", "url").as_deref(),
            Some("sqlite:////srv/x/a.db")
        );
        assert_eq!(get(&ini, "s", "pct").as_deref(), Some("50%"));
        for key in ["bad", "missing", "syntax", "loop"] {
            let err = ini.get("s", key).unwrap_err();
            assert_eq!(err.key, key);
        }
        assert!(ini.get("s", "bad").unwrap_err().to_string().contains("%%"));
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = Ini::parse("k = v\n").unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.message.contains("no section headers"), "{err}");
        let err = Ini::parse("[s]\nk = 1\nk = 2\n").unwrap_err();
        assert_eq!(
            (err.line, err.message.contains("already exists")),
            (3, true)
        );
        let err = Ini::parse("[s]\n[t]\n[s]\n").unwrap_err();
        assert_eq!(err.line, 3);
        let err = Ini::parse("[s]\njust words\n").unwrap_err();
        assert_eq!(err.line, 2);
        let err = Ini::parse("[s]\n= value\n").unwrap_err();
        assert_eq!(err.line, 2);
    }

    #[test]
    fn crlf_and_header_trailing_text() {
        let ini = Ini::parse("[s] trailing\r\nk = v\r\n").unwrap();
        assert_eq!(get(&ini, "s", "k").as_deref(), Some("v"));
    }
}
