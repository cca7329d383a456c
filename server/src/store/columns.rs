//! The bounded text columns of Airflow 3.3.2's schema that a request can fill, with their
//! lengths: one constant per column, named `TABLE_COLUMN`.
//!
//! Each is `String(n)` in Airflow's models (`airflow/models/`) and `VARCHAR(n)` in the
//! database `airflow db migrate` makes (the embedded schema is that DDL, and
//! `embedded_schema_matches_airflow` compares the two; the test below compares these
//! constants with it). PostgreSQL refuses a longer value (or silently drops trailing spaces
//! beyond `n`); SQLite stores it whole. The API refuses it before any write instead
//! (`crate::api::bounds`), so both databases answer alike and nothing is stored truncated.
//!
//! `n` counts characters (Unicode code points), as PostgreSQL's `varchar(n)` and Python's
//! `len` count them, not bytes.

/// A bounded text column: `table.name` is `VARCHAR(max_chars)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    /// The table.
    pub table: &'static str,
    /// The column.
    pub name: &'static str,
    /// Its length, in characters.
    pub max_chars: usize,
}

impl Column {
    const fn new(table: &'static str, name: &'static str, max_chars: usize) -> Column {
        Column {
            table,
            name,
            max_chars,
        }
    }

    /// Whether `value` fits: at most `max_chars` characters.
    pub fn fits(&self, value: &str) -> bool {
        // A character takes at least one byte: only a long text needs counting, and the
        // count stops one past the limit.
        value.len() <= self.max_chars || value.chars().nth(self.max_chars).is_none()
    }
}

/// `variable.key`: `PUT /variables/{variable_key}`.
pub const VARIABLE_KEY: Column = Column::new("variable", "key", 250);
/// `xcom.key`: `POST /xcoms/{dag_id}/{run_id}/{task_id}/{key}`.
pub const XCOM_KEY: Column = Column::new("xcom", "key", 512);
/// `task_state_store.key`: `PUT /store/ti/{task_instance_id}/{key}`.
pub const TASK_STATE_STORE_KEY: Column = Column::new("task_state_store", "key", 512);
/// `asset_state_store.key`: `PUT /store/asset/by-name/value?key=` and `by-uri`.
pub const ASSET_STATE_STORE_KEY: Column = Column::new("asset_state_store", "key", 512);
/// `task_instance.hostname`: `PATCH .../run`.
pub const TASK_INSTANCE_HOSTNAME: Column = Column::new("task_instance", "hostname", 1000);
/// `task_instance.unixname`: `PATCH .../run`.
pub const TASK_INSTANCE_UNIXNAME: Column = Column::new("task_instance", "unixname", 1000);
/// `task_instance.rendered_map_index`: `PATCH .../rendered-map-index` and `.../state`.
pub const TASK_INSTANCE_RENDERED_MAP_INDEX: Column =
    Column::new("task_instance", "rendered_map_index", 250);
/// `task_instance.next_method`: `PATCH .../state` to `deferred` or `awaiting_input`.
pub const TASK_INSTANCE_NEXT_METHOD: Column = Column::new("task_instance", "next_method", 1000);
/// `task_instance.retry_reason`: `PATCH .../state` to `up_for_retry`. The one column that is
/// cut to fit rather than refused: Airflow's route itself keeps the first 500 characters of
/// the reason (an exception's text), and a task must be able to report its retry.
pub const TASK_INSTANCE_RETRY_REASON: Column = Column::new("task_instance", "retry_reason", 500);
/// `trigger.classpath`: `PATCH .../state` to `deferred`.
pub const TRIGGER_CLASSPATH: Column = Column::new("trigger", "classpath", 1000);
/// `trigger.queue`: `PATCH .../state` to `deferred`.
pub const TRIGGER_QUEUE: Column = Column::new("trigger", "queue", 256);
/// `dag_run.run_id`: `POST /dag-runs/{dag_id}/{run_id}`.
pub const DAG_RUN_RUN_ID: Column = Column::new("dag_run", "run_id", 250);
/// `dag_run.partition_key`: `POST /dag-runs/{dag_id}/{run_id}`.
pub const DAG_RUN_PARTITION_KEY: Column = Column::new("dag_run", "partition_key", 250);
/// `dag_run_note.content`: `POST /dag-runs/{dag_id}/{run_id}` (`note`).
pub const DAG_RUN_NOTE_CONTENT: Column = Column::new("dag_run_note", "content", 1000);
/// `asset.name`: an outlet event through an alias creates its asset.
pub const ASSET_NAME: Column = Column::new("asset", "name", 1500);
/// `asset.uri`: likewise.
pub const ASSET_URI: Column = Column::new("asset", "uri", 1500);
/// `asset_alias.name`: an outlet event's `source_alias_name` creates its alias.
pub const ASSET_ALIAS_NAME: Column = Column::new("asset_alias", "name", 1500);
/// `asset_event.partition_key`: an outlet event's `partition_key`.
pub const ASSET_EVENT_PARTITION_KEY: Column = Column::new("asset_event", "partition_key", 250);
/// `connection_test_request.result_message`: `PATCH /connection-tests/{id}` (Airflow's
/// pydantic model checks this one itself: `max_length=2000`).
pub const CONNECTION_TEST_REQUEST_RESULT_MESSAGE: Column =
    Column::new("connection_test_request", "result_message", 2000);

/// Every column above.
pub const ALL: &[Column] = &[
    VARIABLE_KEY,
    XCOM_KEY,
    TASK_STATE_STORE_KEY,
    ASSET_STATE_STORE_KEY,
    TASK_INSTANCE_HOSTNAME,
    TASK_INSTANCE_UNIXNAME,
    TASK_INSTANCE_RENDERED_MAP_INDEX,
    TASK_INSTANCE_NEXT_METHOD,
    TASK_INSTANCE_RETRY_REASON,
    TRIGGER_CLASSPATH,
    TRIGGER_QUEUE,
    DAG_RUN_RUN_ID,
    DAG_RUN_PARTITION_KEY,
    DAG_RUN_NOTE_CONTENT,
    ASSET_NAME,
    ASSET_URI,
    ASSET_ALIAS_NAME,
    ASSET_EVENT_PARTITION_KEY,
    CONNECTION_TEST_REQUEST_RESULT_MESSAGE,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The declared type of `table.column` in a DDL script of `CREATE TABLE` statements.
    fn declared(ddl: &str, table: &str, column: &str) -> Option<String> {
        let start = ddl
            .find(&format!("CREATE TABLE {table} ("))
            .or_else(|| ddl.find(&format!("CREATE TABLE \"{table}\" (")))?;
        let body = &ddl[start..];
        let body = &body[..body.find("\n);").unwrap_or(body.len())];
        body.lines().skip(1).find_map(|line| {
            let line = line.trim();
            let rest = line
                .strip_prefix(&format!("\"{column}\" "))
                .or_else(|| line.strip_prefix(&format!("{column} ")))?;
            Some(rest.split([' ', ',']).next()?.to_owned())
        })
    }

    #[test]
    fn every_bound_is_the_length_of_its_column_in_airflows_schema() {
        let ddls = [
            ("sqlite", include_str!("schema/airflow_sqlite.sql")),
            ("postgres", include_str!("schema/airflow_postgres.sql")),
        ];
        for column in ALL {
            for (kind, ddl) in ddls {
                assert_eq!(
                    declared(ddl, column.table, column.name),
                    Some(format!("VARCHAR({})", column.max_chars)),
                    "{}.{} in the {kind} schema",
                    column.table,
                    column.name
                );
            }
        }
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        let key = VARIABLE_KEY;
        assert!(key.fits(""));
        assert!(key.fits(&"a".repeat(250)));
        assert!(!key.fits(&"a".repeat(251)));
        // 250 characters of 2, 3 and 4 bytes each.
        for c in ['é', '€', '😀'] {
            let text: String = std::iter::repeat_n(c, 250).collect();
            assert!(text.len() > 250);
            assert!(key.fits(&text), "{c}");
            assert!(!key.fits(&format!("{text}a")), "{c}");
        }
    }
}
