//! Which kind of database this is, and the embedded schema.
//!
//! Three kinds share one code path, because all three have Airflow 3.3.2's tables:
//!
//! - **Airflow-managed**: it has `alembic_version`. We never run DDL on it; the
//!   revision must be one we verified ([`SUPPORTED_REVISIONS`]), otherwise the
//!   server refuses to start and leaves the database untouched.
//! - **Embedded**: made by this server on an empty database (the default with no
//!   configuration). It holds the Airflow-shaped tables the routes need, created
//!   from Airflow's own DDL (`airflow_sqlite.sql`, `airflow_postgres.sql`, made by
//!   `generate.py` from Airflow's ORM), and our marker table
//!   [`MARKER_TABLE`] instead of an alembic stamp, so that `airflow db migrate`
//!   can never take it for a complete Airflow database.
//! - **Our earlier schema** (`schema_migrations` + `task_instances`, releases
//!   before the move to Airflow's tables): refused with what to do; its data is
//!   left as it is.
//!
//! Anything else with tables in it is refused too: we do not write into a
//! database we do not understand.

use std::collections::BTreeSet;

use sqlx::{AnyConnection, Row as _};

use super::StoreError;
use super::sql::Backend;

/// Alembic revisions of Airflow's metadata database we have verified against:
/// `d2f4e1b3c5a7` is Airflow 3.3.2's head (`airflow db migrate`).
pub const SUPPORTED_REVISIONS: &[(&str, &str)] = &[("d2f4e1b3c5a7", "3.3.2")];

/// Our marker in an embedded database.
pub const MARKER_TABLE: &str = "execution_api_embedded_schema";

/// Version of the embedded schema this build creates (1: Airflow 3.3.2's tables).
pub const EMBEDDED_VERSION: i64 = 1;

const SQLITE_DDL: &str = include_str!("airflow_sqlite.sql");
const POSTGRES_DDL: &str = include_str!("airflow_postgres.sql");

/// What a database turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseKind {
    /// No tables at all: the embedded schema will be created.
    Empty,
    /// Created by this server, at this embedded-schema version.
    Embedded {
        /// [`EMBEDDED_VERSION`] when it was made.
        version: i64,
    },
    /// Managed by Airflow, at a supported alembic revision.
    Airflow {
        /// `alembic_version.version_num`.
        revision: String,
    },
}

impl DatabaseKind {
    /// A description for the startup log.
    pub fn describe(&self) -> String {
        match self {
            DatabaseKind::Empty => "empty (embedded schema created)".to_owned(),
            DatabaseKind::Embedded { version } => format!("embedded schema v{version}"),
            DatabaseKind::Airflow { revision } => {
                let version = SUPPORTED_REVISIONS
                    .iter()
                    .find(|(r, _)| r == revision)
                    .map_or("?", |(_, v)| v);
                format!("Airflow {version} metadata database (alembic revision {revision})")
            }
        }
    }
}

/// Why a database cannot be used as it is.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// Airflow manages it, at a revision we have not verified.
    #[error(
        "the database is managed by Airflow at alembic revision `{found}`, which this server does \
         not support; supported: {}. Nothing was changed. Run the Airflow version this server \
         supports (`airflow db migrate` with apache-airflow-core {}), or a server release made \
         for your Airflow version",
        supported_list(),
        SUPPORTED_REVISIONS.first().map_or("?", |(_, v)| v)
    )]
    UnsupportedRevision {
        /// The revision found.
        found: String,
    },
    /// `alembic_version` exists but holds no single revision.
    #[error(
        "the database has an `alembic_version` table holding {count} revisions; expected exactly \
         one. Nothing was changed"
    )]
    BadAlembicVersion {
        /// How many rows it has.
        count: usize,
    },
    /// Made by a newer server.
    #[error(
        "the embedded schema is at version {found}, newer than this server's {EMBEDDED_VERSION}; \
         run the newer server. Nothing was changed"
    )]
    NewerEmbedded {
        /// The version found.
        found: i64,
    },
    /// Our schema of releases before Airflow's tables.
    #[error(
        "the database holds this server's earlier schema (tables `task_instances`, `variables`, \
         ...), from before the server moved to Airflow's own tables. Nothing was changed. Point \
         the server at your Airflow metadata database ([database] sql_alchemy_conn), or move this \
         file away to start a new embedded database; variables and connections can be copied \
         with `server variable set` / `server connection add`"
    )]
    Legacy,
    /// Tables we do not recognise.
    #[error(
        "the database has tables but is neither an Airflow metadata database (no \
         `alembic_version`) nor one made by this server (no `{MARKER_TABLE}`): {tables}. Nothing \
         was changed. Use an empty database or Airflow's"
    )]
    Foreign {
        /// Some of the tables found.
        tables: String,
    },
}

fn supported_list() -> String {
    SUPPORTED_REVISIONS
        .iter()
        .map(|(r, v)| format!("`{r}` (Airflow {v})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The tables of the current schema (SQLite's `main`, PostgreSQL's `current_schema()`).
pub(super) async fn tables(
    conn: &mut AnyConnection,
    backend: Backend,
) -> Result<BTreeSet<String>, StoreError> {
    let query = match backend {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        }
        Backend::Postgres => {
            "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
             WHERE table_schema = current_schema()"
        }
    };
    let rows = sqlx::query(query).fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|row| row.try_get::<String, _>(0).map_err(StoreError::from))
        .collect()
}

/// Tells what the database is, reading only.
pub(super) async fn detect(
    conn: &mut AnyConnection,
    backend: Backend,
) -> Result<DatabaseKind, StoreError> {
    let tables = tables(conn, backend).await?;
    if tables.contains("alembic_version") {
        let revisions: Vec<String> = sqlx::query("SELECT version_num FROM alembic_version")
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| row.try_get::<String, _>(0))
            .collect::<Result<_, _>>()?;
        let [revision] = revisions.as_slice() else {
            return Err(SchemaError::BadAlembicVersion {
                count: revisions.len(),
            }
            .into());
        };
        if !SUPPORTED_REVISIONS.iter().any(|(r, _)| r == revision) {
            return Err(SchemaError::UnsupportedRevision {
                found: revision.clone(),
            }
            .into());
        }
        return Ok(DatabaseKind::Airflow {
            revision: revision.clone(),
        });
    }
    if tables.contains(MARKER_TABLE) {
        let version: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT MAX(version) FROM {MARKER_TABLE}"
        )))
        .fetch_one(&mut *conn)
        .await?
        .try_get::<Option<i64>, _>(0)?
        .unwrap_or(0);
        if version > EMBEDDED_VERSION {
            return Err(SchemaError::NewerEmbedded { found: version }.into());
        }
        return Ok(DatabaseKind::Embedded { version });
    }
    if tables.contains("schema_migrations") && tables.contains("task_instances") {
        return Err(SchemaError::Legacy.into());
    }
    if tables.is_empty() {
        return Ok(DatabaseKind::Empty);
    }
    let shown: Vec<&str> = tables.iter().take(8).map(String::as_str).collect();
    let more = tables.len().saturating_sub(shown.len());
    Err(SchemaError::Foreign {
        tables: if more > 0 {
            format!("{} and {more} more", shown.join(", "))
        } else {
            shown.join(", ")
        },
    }
    .into())
}

/// Creates the embedded schema and its marker, inside the caller's transaction.
pub(super) async fn create_embedded(
    conn: &mut AnyConnection,
    backend: Backend,
    now: &str,
) -> Result<(), StoreError> {
    let ddl = match backend {
        Backend::Sqlite => SQLITE_DDL,
        Backend::Postgres => POSTGRES_DDL,
    };
    for statement in statements(ddl) {
        sqlx::query(statement).execute(&mut *conn).await?;
    }
    let timestamp_type = match backend {
        Backend::Sqlite => "TIMESTAMP",
        Backend::Postgres => "TIMESTAMP WITH TIME ZONE",
    };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {MARKER_TABLE} (version INTEGER NOT NULL, airflow_version VARCHAR(20) NOT NULL, \
         created_at {timestamp_type} NOT NULL)"
    )))
    .execute(&mut *conn)
    .await?;
    let insert = match backend {
        Backend::Sqlite => format!(
            "INSERT INTO {MARKER_TABLE} (version, airflow_version, created_at) VALUES ($1, $2, $3)"
        ),
        Backend::Postgres => format!(
            "INSERT INTO {MARKER_TABLE} (version, airflow_version, created_at) VALUES ($1, $2, $3::timestamptz)"
        ),
    };
    sqlx::query(sqlx::AssertSqlSafe(insert))
        .bind(EMBEDDED_VERSION)
        .bind(SUPPORTED_REVISIONS[0].1)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    // Airflow's `airflow db migrate` seeds the default pool; `ti create` puts its
    // task instances in it, as the scheduler does.
    let pool = match backend {
        Backend::Sqlite => {
            "INSERT INTO slot_pool (pool, slots, description, include_deferred) \
             VALUES ('default_pool', 128, 'Default pool', 0)"
        }
        Backend::Postgres => {
            "INSERT INTO slot_pool (pool, slots, description, include_deferred) \
             VALUES ('default_pool', 128, 'Default pool', false)"
        }
    };
    sqlx::query(pool).execute(&mut *conn).await?;
    Ok(())
}

/// The DDL file's statements: split on `;` at line ends, leading comments dropped.
fn statements(ddl: &str) -> impl Iterator<Item = &str> {
    ddl.split(";\n")
        .map(strip_comment_lines)
        .filter(|s| !s.is_empty())
}

fn strip_comment_lines(chunk: &str) -> &str {
    // Comments only ever lead a chunk (the file header): skip those lines.
    let mut rest = chunk.trim_start();
    while rest.starts_with("--") {
        rest = rest
            .split_once('\n')
            .map_or("", |(_, tail)| tail)
            .trim_start();
    }
    rest.trim()
}

/// The tables the embedded schema creates, in creation order.
pub fn embedded_tables() -> Vec<&'static str> {
    statements(SQLITE_DDL)
        .filter_map(|s| s.strip_prefix("CREATE TABLE "))
        .filter_map(|s| s.split_whitespace().next())
        .map(|name| name.trim_matches('"'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::targets;
    use crate::store::{DatabaseTarget, Store};
    use std::collections::BTreeMap;

    /// Every table, its columns (name, type, nullability, default, key position),
    /// foreign keys and indexes, in a form to compare across databases.
    async fn shape(store: &Store) -> BTreeMap<String, Vec<String>> {
        let mut conn = store.pool.acquire().await.unwrap();
        let mut out = BTreeMap::new();
        for table in embedded_tables() {
            let mut lines = Vec::new();
            let queries: Vec<String> = match store.backend {
                Backend::Sqlite => vec![
                    format!(
                        "SELECT 'col ' || name || ' ' || type || ' ' || \"notnull\" || ' ' || \
                         COALESCE(dflt_value, '') || ' ' || pk FROM pragma_table_info('{table}')"
                    ),
                    format!(
                        "SELECT 'fk ' || \"table\" || ' ' || \"from\" || '->' || COALESCE(\"to\", '') || \
                         ' ' || on_update || ' ' || on_delete FROM pragma_foreign_key_list('{table}')"
                    ),
                    format!(
                        "SELECT 'index ' || il.name || ' ' || il.\"unique\" || ' ' || \
                         (SELECT group_concat(name, ',') FROM pragma_index_info(il.name)) \
                         FROM pragma_index_list('{table}') il WHERE il.origin != 'pk'"
                    ),
                ],
                Backend::Postgres => vec![
                    format!(
                        "SELECT 'col ' || column_name || ' ' || data_type || ' ' || \
                         COALESCE(CAST(character_maximum_length AS TEXT), '') || ' ' || is_nullable \
                         || ' ' || COALESCE(column_default, '') FROM information_schema.columns \
                         WHERE table_schema = current_schema() AND table_name = '{table}'"
                    ),
                    format!(
                        "SELECT 'constraint ' || conname || ' ' || CAST(contype AS TEXT) || ' ' || \
                         pg_get_constraintdef(oid) FROM pg_constraint \
                         WHERE conrelid = CAST('{table}' AS regclass)"
                    ),
                    format!(
                        "SELECT 'index ' || indexname || ' ' || \
                         regexp_replace(indexdef, 'ON [a-z_]+\\.', 'ON ') FROM pg_indexes \
                         WHERE schemaname = current_schema() AND tablename = '{table}'"
                    ),
                ],
            };
            for query in queries {
                for row in sqlx::query(sqlx::AssertSqlSafe(query))
                    .fetch_all(&mut *conn)
                    .await
                    .unwrap()
                {
                    let line: String = row.try_get(0).unwrap();
                    // Sequences are named after the table either way; PostgreSQL's
                    // SERIAL default is `nextval('<table>_id_seq'::regclass)`.
                    lines.push(line);
                }
            }
            lines.sort();
            out.insert(table.to_owned(), lines);
        }
        out
    }

    /// The embedded schema has exactly the shape `airflow db migrate` gives the same
    /// tables: names, columns, types, nullability, defaults, keys and indexes.
    #[tokio::test]
    async fn embedded_schema_matches_airflow() {
        let targets = targets("embedded_schema_matches_airflow");
        let mut by_backend: BTreeMap<&str, (Option<Store>, Option<Store>)> = BTreeMap::new();
        for target in &targets {
            let store = Store::open(target).await.unwrap();
            let name = store.backend_name();
            let slot = by_backend.entry(name).or_default();
            match store.kind() {
                DatabaseKind::Airflow { .. } => slot.1 = Some(store),
                _ if matches!(**target, DatabaseTarget::Sqlite(_)) || slot.0.is_none() => {
                    slot.0 = Some(store)
                }
                _ => {}
            }
        }
        let mut compared = 0;
        for (backend, pair) in by_backend {
            let (Some(embedded), Some(airflow)) = pair else {
                eprintln!("{backend}: no Airflow-made database to compare with");
                continue;
            };
            let (ours, theirs) = (shape(&embedded).await, shape(&airflow).await);
            for table in embedded_tables() {
                assert_eq!(
                    ours[table], theirs[table],
                    "{backend}: table `{table}` differs from Airflow's"
                );
                assert!(!ours[table].is_empty(), "{backend}: `{table}` is missing");
            }
            compared += 1;
        }
        if std::env::var("EXECUTION_API_TEST_REQUIRE_ALL").as_deref() == Ok("1") {
            assert_eq!(compared, 2, "SQLite and PostgreSQL must both be compared");
        }
    }

    #[test]
    fn ddl_splits_into_statements() {
        let sqlite: Vec<_> = statements(SQLITE_DDL).collect();
        let postgres: Vec<_> = statements(POSTGRES_DDL).collect();
        assert!(
            sqlite.iter().all(|s| s.starts_with("CREATE ")),
            "{sqlite:?}"
        );
        assert!(postgres.iter().all(|s| s.starts_with("CREATE ")));
        let tables = embedded_tables();
        for needed in [
            "task_instance",
            "dag_run",
            "dag",
            "variable",
            "connection",
            "xcom",
            "task_instance_history",
            "trigger",
            "log",
        ] {
            assert!(tables.contains(&needed), "{needed} missing: {tables:?}");
        }
        assert_eq!(
            sqlite
                .iter()
                .filter(|s| s.starts_with("CREATE TABLE"))
                .count(),
            postgres
                .iter()
                .filter(|s| s.starts_with("CREATE TABLE"))
                .count()
        );
    }
}
