//! The command line: `server [serve]`, `token mint`, `ti create`, `variable set`,
//! `connection add`, `routes` and `config`.
//!
//! Every subcommand resolves the same data directory, configuration and database, so a token
//! minted or a task instance created by the CLI is what a running server with the same flags sees.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use policy_core::TokenType;
use uuid::Uuid;

use crate::app::{self, AppState, OwnershipChecks};
use crate::config::{self, Config, ConfigError, Ownership};
use crate::crypto::{self, CryptoError, Fernet};
use crate::signing::{self, Signing, SigningError};
use crate::store::{
    DatabaseTarget, NewConnection, NewTaskInstance, Store, StoreError, StoreSettings,
    TransitionSettings,
};

/// An Airflow-compatible Execution API server, and the tools to feed it.
///
/// With no subcommand, runs the server (`serve`).
#[derive(Debug, Parser)]
#[command(name = "server", version)]
pub struct Cli {
    /// Where the data lives (shared by every subcommand).
    #[command(flatten)]
    pub location: Location,
    /// `serve`'s flags, also accepted without the subcommand.
    #[command(flatten)]
    pub serve: ServeArgs,
    /// What to do; `serve` when absent.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The data directory, database and configuration file, accepted by every subcommand.
#[derive(Clone, Debug, Args)]
pub struct Location {
    /// Directory for the SQLite database and the development signing secret (created when
    /// missing).
    #[arg(long, global = true, value_name = "DIR", env = config::ENV_DATA_DIR, default_value = config::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Database URL (`postgres://...` or `sqlite://...`), winning over `[database]
    /// sql_alchemy_conn` (env: `EXECUTION_API_DATABASE_URL`; default: SQLite in the data
    /// directory).
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Airflow configuration file, which must exist (default: `$AIRFLOW_CONFIG`, else
    /// `$AIRFLOW_HOME/airflow.cfg`, if present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the Execution API server (the default).
    Serve(ServeArgs),
    /// Mint tokens the server accepts.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage task instances.
    #[command(subcommand)]
    Ti(TiCommand),
    /// Manage variables.
    #[command(subcommand)]
    Variable(VariableCommand),
    /// Manage connections.
    #[command(subcommand)]
    Connection(ConnectionCommand),
    /// Print every route with its merged token policy.
    Routes,
    /// Print the effective configuration: each option's value and where it came from.
    Config(ConfigArgs),
}

/// `config`'s flags.
#[derive(Clone, Copy, Debug, Default, Args)]
pub struct ConfigArgs {
    /// Print JSON (`{"file", "options": [{"section", "key", "value", "source", ...}],
    /// "warnings"}`) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Show secrets (`jwt_secret`, `fernet_key`, database passwords) instead of `***`.
    #[arg(long)]
    pub show_secrets: bool,
}

/// `serve`'s flags.
#[derive(Clone, Copy, Debug, Default, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the chosen address is printed)
    /// (env: `EXECUTION_API_BIND`, default: `127.0.0.1:8080`).
    #[arg(long, value_name = "ADDR", value_parser = parse_bind)]
    pub bind: Option<SocketAddr>,
}

/// `token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a signed token for a task instance.
    Mint(MintArgs),
}

/// `token mint`'s flags.
#[derive(Debug, Args)]
pub struct MintArgs {
    /// The task instance UUID (the token's `sub`).
    #[arg(long, value_name = "UUID")]
    pub sub: Uuid,
    /// The token type (the `scope` claim).
    #[arg(long, value_enum)]
    pub scope: ScopeArg,
    /// Lifetime in seconds (default: `[execution_api] jwt_expiration_time`, 600, for execution
    /// tokens, `[scheduler] task_queued_timeout`, 600, for workload tokens, as Airflow's
    /// executors mint them; `EXECUTION_API_WORKLOAD_TOKEN_TTL` overrides the latter).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub ttl: Option<u64>,
}

/// Token types on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    /// Short-lived, accepted by every route.
    Execution,
    /// Long-lived, accepted only by `/run`, which exchanges it for an execution token.
    Workload,
}

impl From<ScopeArg> for TokenType {
    fn from(scope: ScopeArg) -> TokenType {
        match scope {
            ScopeArg::Execution => TokenType::Execution,
            ScopeArg::Workload => TokenType::Workload,
        }
    }
}

/// `ti` subcommands.
#[derive(Debug, Subcommand)]
pub enum TiCommand {
    /// Create a queued task instance (and its dag run if new); prints its UUID.
    Create(TiCreateArgs),
}

/// `ti create`'s flags.
#[derive(Debug, Args)]
pub struct TiCreateArgs {
    /// DAG id.
    #[arg(long)]
    pub dag_id: String,
    /// Task id.
    #[arg(long)]
    pub task_id: String,
    /// Run id (default: `manual__<now, RFC 3339>`).
    #[arg(long)]
    pub run_id: Option<String>,
    /// Map index (-1 for an unmapped task).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(-1..))]
    pub map_index: i64,
    /// Maximum number of tries (Airflow: retries + 1 once started; 0 = no retries).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..))]
    pub max_tries: i64,
}

/// `variable` subcommands.
#[derive(Debug, Subcommand)]
pub enum VariableCommand {
    /// Create or replace a variable.
    Set(VariableSetArgs),
}

/// `variable set`'s arguments.
#[derive(Debug, Args)]
pub struct VariableSetArgs {
    /// Key.
    pub key: String,
    /// Value (stored as given).
    pub value: String,
    /// Description.
    #[arg(long)]
    pub description: Option<String>,
}

/// `connection` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConnectionCommand {
    /// Create or replace a connection.
    Add(ConnectionAddArgs),
}

/// `connection add`'s arguments.
#[derive(Debug, Args)]
pub struct ConnectionAddArgs {
    /// Connection id.
    pub id: String,
    /// Connection type (e.g. `postgres`, `http`).
    #[arg(long)]
    pub conn_type: String,
    /// Host.
    #[arg(long)]
    pub host: Option<String>,
    /// Port.
    #[arg(long)]
    pub port: Option<u16>,
    /// Login.
    #[arg(long)]
    pub login: Option<String>,
    /// Password.
    #[arg(long)]
    pub password: Option<String>,
    /// Schema.
    #[arg(long)]
    pub schema: Option<String>,
    /// Extra, a JSON document (checked here, stored as text).
    #[arg(long, value_name = "JSON", value_parser = parse_json)]
    pub extra: Option<String>,
}

fn parse_bind(raw: &str) -> Result<SocketAddr, String> {
    config::parse_bind(raw).map_err(str::to_owned)
}

fn parse_json(raw: &str) -> Result<String, String> {
    serde_json::from_str::<serde_json::Value>(raw)
        .map(|_| raw.to_owned())
        .map_err(|e| format!("not valid JSON: {e}"))
}

/// Why a command failed; printed as `error: ...` with its causes, exit status 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Keys could not be set up.
    #[error(transparent)]
    Signing(#[from] SigningError),
    /// The database refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `[core] fernet_key` or the development key is unusable.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The data directory could not be created.
    #[error("cannot create data directory `{path}`: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed to bind or run.
    #[error("cannot serve on {bind}: {source}")]
    Serve {
        /// The address.
        bind: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A token could not be generated.
    #[error("cannot mint token: {0}")]
    Mint(String),
    /// Writing to stdout failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

impl Cli {
    /// Parses `args` (the first is the program name) like [`Parser::try_parse_from`], and also
    /// refuses `serve`'s flags before a subcommand that is not `serve`.
    pub fn try_parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let cli = Cli::try_parse_from(args)?;
        if cli.serve.bind.is_some() && !matches!(cli.command, None | Some(Command::Serve(_))) {
            return Err(<Cli as clap::CommandFactory>::command().error(
                clap::error::ErrorKind::ArgumentConflict,
                "--bind only applies to `serve`",
            ));
        }
        Ok(cli)
    }
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let Cli {
        location,
        serve,
        command,
    } = cli;
    let config = load_config(&location)?;
    match command.unwrap_or(Command::Serve(serve)) {
        Command::Serve(args) => {
            let bind = args.bind.or(serve.bind);
            serve_command(&location, config, ServeArgs { bind }).await
        }
        Command::Token(TokenCommand::Mint(args)) => mint(&location, &config, args),
        Command::Ti(TiCommand::Create(args)) => ti_create(&location, &config, args).await,
        Command::Variable(VariableCommand::Set(args)) => {
            variable_set(&location, &config, args).await
        }
        Command::Connection(ConnectionCommand::Add(args)) => {
            connection_add(&location, &config, args).await
        }
        Command::Routes => print_routes(),
        Command::Config(args) => print_config(&config, args),
    }
}

fn load_config(location: &Location) -> Result<Config, CliError> {
    let mut config = Config::load(location.config.as_deref(), &location.data_dir)?;
    if let Some(url) = &location.database_url {
        config.set_database_url(url)?;
    }
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    Ok(config)
}

fn ensure_data_dir(dir: &Path) -> Result<(), CliError> {
    crate::private_files::create_private_dir(dir).map_err(|source| CliError::DataDir {
        path: dir.to_path_buf(),
        source,
    })
}

/// The database: the configured URL, else SQLite in the data directory.
fn database_target(location: &Location, config: &Config) -> Result<DatabaseTarget, CliError> {
    match &config.database {
        Some(target) => Ok(target.clone()),
        None => {
            ensure_data_dir(&location.data_dir)?;
            Ok(DatabaseTarget::in_data_dir(&location.data_dir))
        }
    }
}

/// Opens the configured database (or the embedded default) with the configured
/// `[core] fernet_key`. The embedded default with no key configured generates one
/// and keeps it in the data directory (`dev-fernet-key`, mode 0600), as it does the
/// development JWT secret, so connection passwords are never stored in plaintext.
async fn open_store(location: &Location, config: &Config) -> Result<Store, CliError> {
    let target = database_target(location, config)?;
    let key = match (&config.fernet_key, &config.database) {
        (Some(key), _) => Some(key.clone()),
        (None, None) => Some(crypto::dev_fernet_key(&location.data_dir)?),
        (None, Some(_)) => None,
    };
    let fernet = Fernet::from_config(key.as_deref())?;
    if !fernet.is_encrypting() {
        tracing::warn!(
            "no [core] fernet_key: variables and connections are stored in plaintext, as Airflow \
             does without a key"
        );
    }
    let transitions = TransitionSettings {
        rendered_fields_runs_to_keep: config.num_dag_runs_to_retain_rendered_fields,
        clear_on_success: config.clear_on_success,
        multi_team: config.multi_team,
    };
    Ok(Store::open_with(&target, StoreSettings { fernet })
        .await?
        .with_transitions(transitions)
        .with_max_map_length(config.max_map_length))
}

fn signing(location: &Location, config: &Config) -> Result<Signing, CliError> {
    Ok(signing::build(
        &config.auth,
        &location.data_dir,
        config.token_cache_size,
        config.token_cache_bytes,
    )?)
}

async fn serve_command(
    location: &Location,
    config: Config,
    args: ServeArgs,
) -> Result<(), CliError> {
    let bind = args.bind.unwrap_or(config.bind);
    let signing = signing(location, &config)?;
    let target = database_target(location, &config)?;
    let store = open_store(location, &config).await?;
    tracing::info!(
        data_dir = %location.data_dir.display(),
        database = %target.redacted(),
        kind = %store.kind().describe(),
        "starting"
    );
    if let Some(path) = &signing.dev_secret {
        tracing::warn!(path = %path.display(), "signing with the development secret: tokens are only as safe as this file; configure AIRFLOW__API_AUTH__JWT_SECRET or AIRFLOW__API_AUTH__JWT_PRIVATE_KEY_PATH for production");
    }
    let ownership = match config.ownership {
        Ownership::Strict => OwnershipChecks::Strict {
            grace: config.task_success_overtime + config.auth.jwt_leeway,
        },
        Ownership::Permissive => {
            tracing::warn!(
                "EXECUTION_API_OWNERSHIP=permissive: any valid execution token may read every \
                 variable and connection and write any task's XComs, as in Airflow 3.3.2"
            );
            OwnershipChecks::Permissive
        }
    };
    let state = AppState {
        store,
        validator: signing.validator,
        generator: signing.generator,
        ownership,
        subjects: Default::default(),
    };
    crate::serve::serve(state, bind)
        .await
        .map_err(|source| CliError::Serve { bind, source })
}

fn mint(location: &Location, config: &Config, args: MintArgs) -> Result<(), CliError> {
    let signing = signing(location, config)?;
    let scope = TokenType::from(args.scope);
    let ttl = match (args.ttl, scope) {
        (Some(secs), _) => Duration::from_secs(secs),
        (None, TokenType::Workload) => config.workload_token_ttl,
        (None, _) => config.auth.jwt_expiration_time,
    };
    let token = signing
        .generator
        .generate(args.sub, scope, ttl)
        .map_err(|e| CliError::Mint(e.to_string()))?;
    print_line(&token)
}

async fn ti_create(
    location: &Location,
    config: &Config,
    args: TiCreateArgs,
) -> Result<(), CliError> {
    let store = open_store(location, config).await?;
    let id = store
        .create_task_instance(&NewTaskInstance {
            dag_id: args.dag_id,
            task_id: args.task_id,
            run_id: args.run_id,
            map_index: args.map_index,
            max_tries: args.max_tries,
        })
        .await?;
    store.close().await;
    print_line(&id.to_string())
}

async fn variable_set(
    location: &Location,
    config: &Config,
    args: VariableSetArgs,
) -> Result<(), CliError> {
    let store = open_store(location, config).await?;
    store
        .set_variable(&args.key, &args.value, args.description.as_deref())
        .await?;
    store.close().await;
    Ok(())
}

async fn connection_add(
    location: &Location,
    config: &Config,
    args: ConnectionAddArgs,
) -> Result<(), CliError> {
    let store = open_store(location, config).await?;
    store
        .upsert_connection(&NewConnection {
            conn_id: args.id,
            conn_type: args.conn_type,
            host: args.host,
            port: args.port.map(i64::from),
            login: args.login,
            password: args.password,
            schema: args.schema,
            extra: args.extra,
        })
        .await?;
    store.close().await;
    Ok(())
}

fn print_routes() -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(format_routes(&app::routes()).as_bytes())?;
    out.flush()?;
    Ok(())
}

/// The route table: method, full path, token types the route accepts, subject bindings, and the
/// merged scopes as declared.
pub fn format_routes(routes: &[policy_core::RouteInfo]) -> String {
    let rows: Vec<[String; 5]> = routes
        .iter()
        .map(|route| {
            let policy = route.policy;
            let tokens: Vec<&str> = policy
                .allowed_tokens()
                .iter()
                .map(TokenType::as_str)
                .collect();
            let bindings: Vec<&str> = policy.bindings().iter().map(|b| b.scope()).collect();
            let scopes: Vec<&str> = policy.scopes().collect();
            [
                route.method.to_owned(),
                route.path.to_owned(),
                tokens.join(","),
                if bindings.is_empty() {
                    "-".to_owned()
                } else {
                    bindings.join(",")
                },
                if scopes.is_empty() {
                    "-".to_owned()
                } else {
                    scopes.join(" ")
                },
            ]
        })
        .collect();
    let header = ["METHOD", "PATH", "TOKENS", "BINDINGS", "SCOPES"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut table = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        table.push_str(line.join("  ").trim_end());
        table.push('\n');
    }
    table
}

fn print_config(config: &Config, args: ConfigArgs) -> Result<(), CliError> {
    let text = if args.json {
        let json = config.report_json(args.show_secrets);
        format!(
            "{}\n",
            serde_json::to_string_pretty(&json).expect("JSON values")
        )
    } else {
        config.format_report(args.show_secrets)
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

fn print_line(line: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_args(std::iter::once("server").chain(args.iter().copied()))
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_subcommand_means_serve() {
        let cli = parse(&["--bind", "127.0.0.1:0"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.bind, Some("127.0.0.1:0".parse().unwrap()));
        let cli = parse(&[]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.bind, None);
    }

    #[test]
    fn bind_belongs_to_serve() {
        let cli = parse(&["--bind", "127.0.0.1:1", "serve"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Serve(_))));
        let err = parse(&["--bind", "127.0.0.1:1", "routes"]).unwrap_err();
        assert!(
            err.to_string().contains("--bind only applies to `serve`"),
            "{err}"
        );
        assert!(
            parse(&["serve", "--bind", "nowhere"])
                .unwrap_err()
                .to_string()
                .contains("127.0.0.1:8080")
        );
    }

    #[test]
    fn location_flags_work_on_every_subcommand() {
        let cli = parse(&[
            "ti",
            "create",
            "--dag-id",
            "d",
            "--task-id",
            "t",
            "--data-dir",
            "/tmp/x",
        ])
        .unwrap();
        assert_eq!(cli.location.data_dir, PathBuf::from("/tmp/x"));
        let cli = parse(&["--database-url", "postgres://h/db", "routes"]).unwrap();
        assert_eq!(
            cli.location.database_url.as_deref(),
            Some("postgres://h/db")
        );
        let cli = parse(&[
            "token",
            "mint",
            "--config",
            "c.toml",
            "--sub",
            &Uuid::nil().to_string(),
            "--scope",
            "workload",
        ])
        .unwrap();
        assert_eq!(cli.location.config, Some(PathBuf::from("c.toml")));
    }

    #[test]
    fn mint_checks_its_arguments() {
        let sub = Uuid::new_v4().to_string();
        let cli = parse(&[
            "token", "mint", "--sub", &sub, "--scope", "workload", "--ttl", "60",
        ])
        .unwrap();
        match cli.command {
            Some(Command::Token(TokenCommand::Mint(args))) => {
                assert_eq!(args.sub.to_string(), sub);
                assert_eq!(args.scope, ScopeArg::Workload);
                assert_eq!(args.ttl, Some(60));
            }
            other => panic!("unexpected {other:?}"),
        }
        let err = parse(&[
            "token",
            "mint",
            "--sub",
            "not-a-uuid",
            "--scope",
            "execution",
        ])
        .unwrap_err();
        assert!(err.to_string().contains("not-a-uuid"), "{err}");
        let err = parse(&["token", "mint", "--sub", &sub, "--scope", "admin"]).unwrap_err();
        assert!(err.to_string().contains("execution, workload"), "{err}");
        assert!(
            parse(&[
                "token",
                "mint",
                "--sub",
                &sub,
                "--scope",
                "execution",
                "--ttl",
                "0"
            ])
            .is_err()
        );
    }

    #[test]
    fn ti_create_defaults_and_bounds() {
        let cli = parse(&["ti", "create", "--dag-id", "d", "--task-id", "t"]).unwrap();
        match cli.command {
            Some(Command::Ti(TiCommand::Create(args))) => {
                assert_eq!((args.map_index, args.max_tries, args.run_id), (-1, 0, None));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            parse(&[
                "ti",
                "create",
                "--dag-id",
                "d",
                "--task-id",
                "t",
                "--map-index",
                "-2"
            ])
            .is_err()
        );
        assert!(parse(&["ti", "create", "--dag-id", "d"]).is_err());
    }

    #[test]
    fn route_table_shows_tokens_bindings_and_scopes() {
        use policy_core::{Bindings, RouteInfo, RoutePolicy, TokenTypes};
        let routes = [
            RouteInfo {
                method: "PATCH",
                path: "/execution/task-instances/{task_instance_id}/run",
                handler: "run",
                policy: RoutePolicy::new(
                    TokenTypes::EXECUTION.with(TokenType::Workload),
                    Bindings::TASK_INSTANCE,
                ),
                doc: "",
                describe: None,
            },
            RouteInfo {
                method: "GET",
                path: "/execution/variables/{variable_key}",
                handler: "get",
                policy: RoutePolicy::AUTHENTICATED,
                doc: "",
                describe: None,
            },
        ];
        let table = format_routes(&routes);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[0].starts_with("METHOD  PATH"), "{table}");
        let run: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            run[..4],
            [
                "PATCH",
                "/execution/task-instances/{task_instance_id}/run",
                "execution,workload",
                "ti:self"
            ]
        );
        assert!(
            lines[1].ends_with("token:execution token:workload ti:self"),
            "{table}"
        );
        let get: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            get,
            [
                "GET",
                "/execution/variables/{variable_key}",
                "execution",
                "-",
                "-"
            ]
        );
        // Columns line up.
        let tokens_column = lines[0].find("TOKENS");
        assert_eq!(
            tokens_column,
            lines[1].find("execution,workload"),
            "{table}"
        );
        assert_eq!(tokens_column, lines[2].find("execution  "), "{table}");
    }

    #[test]
    fn connection_extra_must_be_json() {
        let ok = parse(&[
            "connection",
            "add",
            "c",
            "--conn-type",
            "http",
            "--extra",
            r#"{"a": 1}"#,
        ])
        .unwrap();
        assert!(
            matches!(ok.command, Some(Command::Connection(ConnectionCommand::Add(ref a))) if a.extra.as_deref() == Some(r#"{"a": 1}"#))
        );
        let err = parse(&[
            "connection",
            "add",
            "c",
            "--conn-type",
            "http",
            "--extra",
            "{nope",
        ])
        .unwrap_err();
        assert!(err.to_string().contains("not valid JSON"), "{err}");
    }
}
