//! Database URLs into [`DatabaseTarget`]s.
//!
//! Two dialects:
//! - [`from_sqlalchemy_url`]: Airflow's `[database] sql_alchemy_conn`, parsed as SQLAlchemy 2's
//!   `make_url` does (its regular expression, `unquote` of user, password and database,
//!   `parse_qsl` of the query). `sqlite:////abs.db` is `/abs.db`, `sqlite:///rel.db` is `rel.db`
//!   (relative to the working directory; Airflow itself refuses relative SQLite paths).
//!   PostgreSQL URLs (`postgresql`, `postgresql+psycopg2`, `postgresql+psycopg`, `postgres`,
//!   `postgres+psycopg2`) become a libpq-style `postgres://` URL that sqlx reads, user and
//!   password re-encoded so that what SQLAlchemy decodes is what sqlx decodes.
//! - [`from_sqlx_url`]: our `--database-url` / `EXECUTION_API_DATABASE_URL`, sqlx's spelling:
//!   `sqlite://PATH` or `sqlite:PATH` (`sqlite:///abs.db` is `/abs.db`), `postgres://...`,
//!   `postgresql://...` (passed to sqlx unchanged). A `postgresql+driver://` URL is read as
//!   SQLAlchemy's.
//!
//! Query options: those libpq and sqlx both honour are kept (`sslmode`, `sslrootcert`,
//! `sslcert`, `sslkey`, `application_name`, `options`, `host`, `hostaddr`, `port`, `user`,
//! `password`, `dbname`); `connect_timeout` is kept with a warning (sqlx ignores it); anything
//! else is refused, as are SQLite options (`mode=`, `uri=true`, ...), in-memory SQLite and
//! other databases: we would not connect to what Airflow connects to.

use std::path::PathBuf;

use crate::store::DatabaseTarget;

/// A URL we cannot connect to as Airflow would.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unsupported database URL `{url}`: {reason}")]
pub struct DatabaseUrlError {
    /// The URL, password hidden.
    pub url: String,
    /// Why.
    pub reason: String,
}

/// A translated URL and what the translation wants the operator to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Translated {
    /// Where to connect.
    pub target: DatabaseTarget,
    /// Things that work differently from Airflow.
    pub warnings: Vec<String>,
}

const PG_SCHEMES: &[&str] = &[
    "postgresql",
    "postgresql+psycopg2",
    "postgresql+psycopg",
    "postgres",
    "postgres+psycopg2",
];
const SQLITE_SCHEMES: &[&str] = &["sqlite", "sqlite+pysqlite"];
/// Query options sqlx's PostgreSQL driver reads with libpq's meaning.
const PG_OPTIONS: &[&str] = &[
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "application_name",
    "options",
    "host",
    "hostaddr",
    "port",
    "user",
    "password",
    "dbname",
];
const SSL_MODES: &[&str] = &[
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

/// The parts of a URL as SQLAlchemy's `_parse_url` finds them.
#[derive(Debug, Default, PartialEq, Eq)]
struct SqlaUrl {
    scheme: String,
    username: Option<String>,
    password: Option<String>,
    host: Option<String>,
    ipv6: bool,
    port: Option<u16>,
    database: Option<String>,
    query: Vec<(String, String)>,
}

/// Reads `[database] sql_alchemy_conn`.
pub fn from_sqlalchemy_url(url: &str) -> Result<Translated, DatabaseUrlError> {
    let err = |reason: String| DatabaseUrlError {
        url: redact(url),
        reason,
    };
    let parsed = parse_sqlalchemy(url).map_err(err)?;
    let scheme = parsed.scheme.to_ascii_lowercase();
    if SQLITE_SCHEMES.contains(&scheme.as_str()) {
        return sqlite_target(&parsed).map_err(err);
    }
    if PG_SCHEMES.contains(&scheme.as_str()) {
        return postgres_target(&parsed).map_err(err);
    }
    Err(err(if scheme.starts_with("mysql") {
        "MySQL is not supported; use PostgreSQL or SQLite".to_owned()
    } else {
        format!(
            "unknown database `{scheme}`; expected `sqlite:////absolute/path.db` or `postgresql://...` \
             (drivers: {})",
            PG_SCHEMES.join(", ")
        )
    }))
}

/// Reads our `--database-url` / `EXECUTION_API_DATABASE_URL` (sqlx's spelling).
pub fn from_sqlx_url(url: &str) -> Result<Translated, DatabaseUrlError> {
    let err = |reason: &str| DatabaseUrlError {
        url: redact(url),
        reason: reason.to_owned(),
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Translated {
            target: DatabaseTarget::Postgres(url.to_owned()),
            warnings: Vec::new(),
        });
    }
    if let Some((scheme, _)) = url.split_once("://")
        && scheme.contains('+')
    {
        return from_sqlalchemy_url(url);
    }
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if path.is_empty() || path == ":memory:" {
            return Err(err(
                "an SQLite URL needs a file path (in-memory databases are not shared between connections)",
            ));
        }
        // The file is created when missing anyway, so `mode=rwc` is what we do.
        if !query.is_empty() && query != "mode=rwc" {
            return Err(err(
                "SQLite URL options are not supported (only `?mode=rwc`, which is the default)",
            ));
        }
        return Ok(Translated {
            target: DatabaseTarget::Sqlite(PathBuf::from(path)),
            warnings: Vec::new(),
        });
    }
    Err(err(
        "expected `sqlite://PATH`, `postgres://...` or `postgresql://...`",
    ))
}

fn sqlite_target(url: &SqlaUrl) -> Result<Translated, String> {
    if url.host.is_some() || url.username.is_some() || url.port.is_some() {
        return Err("an SQLite URL has no host: write `sqlite:////absolute/path.db`".into());
    }
    let path = url.database.as_deref().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Err(
            "in-memory SQLite (`sqlite://`, `:memory:`) is not shared between connections or with \
             Airflow; write `sqlite:////absolute/path.db`"
                .into(),
        );
    }
    if let Some((key, _)) = url
        .query
        .iter()
        .find(|(key, _)| key.as_str() != "check_same_thread")
    {
        return Err(format!(
            "SQLite option `{key}` is not supported (we open the file read-write, not as a URI, \
             with our own timeouts); remove it"
        ));
    }
    let mut warnings = Vec::new();
    let path = PathBuf::from(path);
    if path.is_relative() {
        warnings.push(format!(
            "[database] sql_alchemy_conn names a relative SQLite path `{}` (relative to the working \
             directory); Airflow refuses relative paths, so it cannot share this database",
            path.display()
        ));
    }
    Ok(Translated {
        target: DatabaseTarget::Sqlite(path),
        warnings,
    })
}

fn postgres_target(url: &SqlaUrl) -> Result<Translated, String> {
    let mut warnings = Vec::new();
    let mut query = Vec::new();
    for (key, value) in &url.query {
        if query.iter().any(|(k, _): &(String, String)| k == key) {
            return Err(format!("query option `{key}` is given twice"));
        }
        match key.as_str() {
            "sslmode" if !SSL_MODES.contains(&value.as_str()) => {
                return Err(format!(
                    "`sslmode={value}` is not a libpq SSL mode; expected one of {}",
                    SSL_MODES.join(", ")
                ));
            }
            "connect_timeout" => warnings.push(format!(
                "[database] sql_alchemy_conn: `connect_timeout={value}` is passed on but the \
                 PostgreSQL driver (sqlx) ignores it"
            )),
            k if PG_OPTIONS.contains(&k) => {}
            _ => {
                return Err(format!(
                    "query option `{key}` is not supported; supported: {}, connect_timeout",
                    PG_OPTIONS.join(", ")
                ));
            }
        }
        query.push((key.clone(), value.clone()));
    }
    let mut out = String::from("postgres://");
    match &url.host {
        Some(host) => {
            if let Some(user) = &url.username {
                out.push_str(&encode(user));
                if let Some(password) = &url.password {
                    out.push(':');
                    out.push_str(&encode(password));
                }
                out.push('@');
            }
            if url.ipv6 {
                out.push('[');
                out.push_str(host);
                out.push(']');
            } else {
                out.push_str(&encode_host(host));
            }
        }
        None => {
            // No host (a socket directory in `?host=`): user and password as options, since an
            // authority with userinfo but no host is not a valid URL.
            if let Some(user) = &url.username {
                query.push(("user".into(), user.clone()));
            }
            if let Some(password) = &url.password {
                query.push(("password".into(), password.clone()));
            }
        }
    }
    if let Some(port) = url.port {
        out.push_str(&format!(":{port}"));
    }
    out.push('/');
    if let Some(database) = &url.database {
        out.push_str(&encode(database));
    }
    for (i, (key, value)) in query.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(&encode(key));
        out.push('=');
        out.push_str(&encode(value));
    }
    Ok(Translated {
        target: DatabaseTarget::Postgres(out),
        warnings,
    })
}

/// SQLAlchemy 2's `_parse_url` regular expression, by hand.
fn parse_sqlalchemy(url: &str) -> Result<SqlaUrl, String> {
    let bad = || "not a SQLAlchemy URL (expected `dialect[+driver]://...`)".to_owned();
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '+')
    {
        return Err(bad());
    }
    let mut parsed = SqlaUrl {
        scheme: scheme.to_owned(),
        ..SqlaUrl::default()
    };
    // (?:(?P<username>[^:/]*)(?::(?P<password>[^@]*))?@)?
    let mut rest = rest;
    let stop = rest.find([':', '/']).unwrap_or(rest.len());
    if rest[stop..].starts_with(':')
        && let Some(at) = rest[stop + 1..].find('@')
    {
        parsed.username = Some(rest[..stop].to_owned());
        parsed.password = Some(rest[stop + 1..stop + 1 + at].to_owned());
        rest = &rest[stop + 2 + at..];
    } else if let Some(at) = rest[..stop].rfind('@') {
        parsed.username = Some(rest[..at].to_owned());
        rest = &rest[at + 1..];
    }
    // (?:(?:\[(?P<ipv6host>[^/\?]+)\]|(?P<ipv4host>[^/:\?]+))?(?::(?P<port>[^/\?]*))?)?
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    if let Some(inner) = rest[..end].strip_prefix('[')
        && let Some(close) = inner.rfind(']')
        && close > 0
    {
        parsed.host = Some(inner[..close].to_owned());
        parsed.ipv6 = true;
        rest = &rest[close + 2..];
    } else {
        let host_end = rest.find(['/', ':', '?']).unwrap_or(rest.len());
        if host_end > 0 {
            parsed.host = Some(rest[..host_end].to_owned());
        }
        rest = &rest[host_end..];
    }
    if let Some(after) = rest.strip_prefix(':') {
        let port_end = after.find(['/', '?']).unwrap_or(after.len());
        let port = &after[..port_end];
        if !port.is_empty() {
            parsed.port = Some(
                port.parse()
                    .map_err(|_| format!("port `{port}` is not a number"))?,
            );
        }
        rest = &after[port_end..];
    }
    if let Some(after) = rest.strip_prefix('/') {
        let db_end = after.find('?').unwrap_or(after.len());
        parsed.database = Some(unquote(&after[..db_end]));
        rest = &after[db_end..];
    }
    if let Some(query) = rest.strip_prefix('?') {
        parsed.query = parse_qsl(query);
    } else if !rest.is_empty() {
        return Err(bad());
    }
    parsed.username = parsed.username.as_deref().map(unquote);
    parsed.password = parsed.password.as_deref().map(unquote);
    Ok(parsed)
}

/// `urllib.parse.unquote`: `%XX` decoded, anything else kept; bytes read as UTF-8 (lossy).
fn unquote(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// `urllib.parse.parse_qsl(q)`: `&`-separated, `+` is a space, blank values and names without
/// `=` dropped.
fn parse_qsl(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            let key = unquote(&key.replace('+', " "));
            let value = unquote(&value.replace('+', " "));
            (!value.is_empty()).then_some((key, value))
        })
        .collect()
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn encode_host(host: &str) -> String {
    encode(host)
}

/// The URL with any password replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let stop = rest.find([':', '/']).unwrap_or(rest.len());
    let redacted_authority = if rest[stop..].starts_with(':')
        && let Some(at) = rest[stop + 1..].find('@')
    {
        format!("{}:***@{}", &rest[..stop], &rest[stop + 2 + at..])
    } else {
        rest.to_owned()
    };
    // A password in the query string, too.
    let (head, query) = match redacted_authority.split_once('?') {
        Some((head, query)) => (head.to_owned(), Some(query)),
        None => (redacted_authority.clone(), None),
    };
    let query = query.map(|q| {
        q.split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    match query {
        Some(q) => format!("{scheme}://{head}?{q}"),
        None => format!("{scheme}://{head}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqla(url: &str) -> DatabaseTarget {
        from_sqlalchemy_url(url)
            .unwrap_or_else(|e| panic!("{url}: {e}"))
            .target
    }

    fn pg(url: &str) -> String {
        match sqla(url) {
            DatabaseTarget::Postgres(u) => u,
            other => panic!("{url}: {other:?}"),
        }
    }

    #[test]
    fn sqlite_paths_as_sqlalchemy_reads_them() {
        assert_eq!(
            sqla("sqlite:////abs/path.db"),
            DatabaseTarget::Sqlite("/abs/path.db".into())
        );
        let rel = from_sqlalchemy_url("sqlite:///rel.db").unwrap();
        assert_eq!(rel.target, DatabaseTarget::Sqlite("rel.db".into()));
        assert!(rel.warnings[0].contains("relative"), "{:?}", rel.warnings);
        assert_eq!(
            sqla("sqlite+pysqlite:////a%20b/x.db?check_same_thread=false"),
            DatabaseTarget::Sqlite("/a b/x.db".into())
        );
    }

    #[test]
    fn sqlite_refusals() {
        for (url, needle) in [
            ("sqlite://", "in-memory"),
            ("sqlite:///:memory:", "in-memory"),
            ("sqlite:////x.db?mode=ro", "`mode`"),
            ("sqlite:///file:x.db?mode=ro&uri=true", "not supported"),
            ("sqlite://host/x.db", "no host"),
            ("mysql://u:p@h/db", "MySQL"),
            ("mysql+mysqldb://h/db", "MySQL"),
            ("oracle://h/db", "unknown database"),
            ("not a url", "not a SQLAlchemy URL"),
        ] {
            let err = from_sqlalchemy_url(url).unwrap_err();
            assert!(err.to_string().contains(needle), "{url}: {err}");
        }
    }

    #[test]
    fn postgres_schemes_become_libpq_urls() {
        for scheme in PG_SCHEMES {
            assert_eq!(
                pg(&format!("{scheme}://airflow:airflow@db:5432/airflow")),
                "postgres://airflow:airflow@db:5432/airflow"
            );
        }
        assert_eq!(pg("postgresql://h/db"), "postgres://h/db");
        assert_eq!(pg("postgresql://u@h"), "postgres://u@h/");
        assert_eq!(
            pg("postgresql://u@[::1]:5433/db"),
            "postgres://u@[::1]:5433/db"
        );
    }

    #[test]
    fn passwords_keep_their_meaning() {
        // SQLAlchemy decodes `%40` to `@`, `%2F` to `/`; sqlx decodes our re-encoding the same.
        assert_eq!(
            pg("postgresql+psycopg2://us%40r:p%2Fa%40ss@host/db"),
            "postgres://us%40r:p%2Fa%40ss@host/db"
        );
        // Unencoded characters SQLAlchemy tolerates in a password are encoded for sqlx.
        assert_eq!(
            pg("postgresql://u:p/w:x@h/db"),
            "postgres://u:p%2Fw%3Ax@h/db"
        );
        assert_eq!(
            pg("postgresql://u:a%2Bb+c@h/db"),
            "postgres://u:a%2Bb%2Bc@h/db"
        );
        // Username holding `@` (SQLAlchemy takes the last `@` before the host).
        assert_eq!(pg("postgresql://a@b@h/db"), "postgres://a%40b@h/db");
    }

    #[test]
    fn postgres_query_options() {
        assert_eq!(
            pg(
                "postgresql://u:p@h/db?sslmode=verify-full&sslrootcert=/etc/ca.pem&application_name=air+flow"
            ),
            "postgres://u:p@h/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=air%20flow"
        );
        assert_eq!(
            pg("postgresql://u:p@/airflow?host=/var/run/postgresql"),
            "postgres:///airflow?host=%2Fvar%2Frun%2Fpostgresql&user=u&password=p"
        );
        let t = from_sqlalchemy_url("postgresql://h/db?connect_timeout=10").unwrap();
        assert_eq!(
            t.target,
            DatabaseTarget::Postgres("postgres://h/db?connect_timeout=10".into())
        );
        assert!(t.warnings[0].contains("connect_timeout"));
        for (url, needle) in [
            ("postgresql://h/db?sslmode=sometimes", "libpq SSL mode"),
            (
                "postgresql://h/db?keepalives=1",
                "`keepalives` is not supported",
            ),
            ("postgresql://h/db?sslmode=require&sslmode=disable", "twice"),
            ("postgresql://h:port/db", "port `port`"),
        ] {
            let err = from_sqlalchemy_url(url).unwrap_err();
            assert!(err.to_string().contains(needle), "{url}: {err}");
        }
    }

    #[test]
    fn sqlx_urls() {
        let t = |url: &str| from_sqlx_url(url).unwrap().target;
        assert_eq!(
            t("sqlite:///var/lib/x.db"),
            DatabaseTarget::Sqlite("/var/lib/x.db".into())
        );
        assert_eq!(
            t("sqlite://data/x.db?mode=rwc"),
            DatabaseTarget::Sqlite("data/x.db".into())
        );
        assert_eq!(t("sqlite:x.db"), DatabaseTarget::Sqlite("x.db".into()));
        assert_eq!(
            t("postgresql://u:p@h/db?sslmode=require"),
            DatabaseTarget::Postgres("postgresql://u:p@h/db?sslmode=require".into())
        );
        assert_eq!(
            t("postgresql+psycopg2://u:p@h/db"),
            DatabaseTarget::Postgres("postgres://u:p@h/db".into())
        );
        for url in [
            "sqlite::memory:",
            "sqlite://",
            "mysql://h/db",
            "sqlite://x.db?mode=ro",
        ] {
            let err = from_sqlx_url(url).unwrap_err();
            assert!(
                err.to_string().starts_with("unsupported database URL"),
                "{err}"
            );
        }
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact("postgresql://u:secret@h/db"),
            "postgresql://u:***@h/db"
        );
        assert_eq!(redact("postgresql://u@h/db"), "postgresql://u@h/db");
        assert_eq!(
            redact("postgres:///db?host=/s&password=secret"),
            "postgres:///db?host=/s&password=***"
        );
        assert_eq!(redact("sqlite:////x.db"), "sqlite:////x.db");
        let err = from_sqlalchemy_url("mysql://u:hunter2@h/db").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
