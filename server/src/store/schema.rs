//! The schema, one list of migrations for SQLite and PostgreSQL alike.
//!
//! Only portable SQL: TEXT for ids (UUIDs) and timestamps (RFC 3339 in UTC
//! with microseconds, so they also sort as text), BIGINT for integers,
//! DOUBLE PRECISION for floats, no booleans.

/// `(version, statements)`, applied in order, each version once, in one transaction.
pub(super) const MIGRATIONS: &[(i64, &[&str])] = &[(
    1,
    &[
        "CREATE TABLE IF NOT EXISTS dag_runs (
            dag_id TEXT NOT NULL,
            run_id TEXT NOT NULL,
            logical_date TEXT,
            data_interval_start TEXT,
            data_interval_end TEXT,
            run_after TEXT NOT NULL,
            start_date TEXT,
            end_date TEXT,
            clear_number BIGINT NOT NULL DEFAULT 0,
            run_type TEXT NOT NULL,
            state TEXT NOT NULL,
            conf TEXT,
            triggering_user_name TEXT,
            created_at TEXT NOT NULL,
            PRIMARY KEY (dag_id, run_id)
        )",
        "CREATE TABLE IF NOT EXISTS task_instances (
            id TEXT PRIMARY KEY,
            dag_id TEXT NOT NULL,
            run_id TEXT NOT NULL,
            task_id TEXT NOT NULL,
            map_index BIGINT NOT NULL DEFAULT -1,
            try_number BIGINT NOT NULL DEFAULT 1,
            max_tries BIGINT NOT NULL DEFAULT 0,
            state TEXT NOT NULL,
            hostname TEXT,
            unixname TEXT,
            pid BIGINT,
            start_date TEXT,
            end_date TEXT,
            last_heartbeat_at TEXT,
            rendered_map_index TEXT,
            retry_delay_seconds DOUBLE PRECISION,
            retry_reason TEXT,
            updated_at TEXT NOT NULL,
            UNIQUE (dag_id, run_id, task_id, map_index),
            FOREIGN KEY (dag_id, run_id) REFERENCES dag_runs (dag_id, run_id)
        )",
        "CREATE TABLE IF NOT EXISTS task_reschedules (
            id TEXT PRIMARY KEY,
            ti_id TEXT NOT NULL REFERENCES task_instances (id),
            try_number BIGINT NOT NULL,
            start_date TEXT,
            end_date TEXT NOT NULL,
            reschedule_date TEXT NOT NULL
        )",
        "CREATE INDEX IF NOT EXISTS task_reschedules_ti ON task_reschedules (ti_id)",
        "CREATE TABLE IF NOT EXISTS variables (
            key TEXT PRIMARY KEY,
            val TEXT,
            description TEXT,
            updated_at TEXT NOT NULL
        )",
        "CREATE TABLE IF NOT EXISTS connections (
            conn_id TEXT PRIMARY KEY,
            conn_type TEXT NOT NULL,
            host TEXT,
            schema_name TEXT,
            login TEXT,
            password TEXT,
            port BIGINT,
            extra TEXT,
            updated_at TEXT NOT NULL
        )",
        "CREATE TABLE IF NOT EXISTS xcoms (
            dag_id TEXT NOT NULL,
            run_id TEXT NOT NULL,
            task_id TEXT NOT NULL,
            map_index BIGINT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (dag_id, run_id, task_id, map_index, key),
            FOREIGN KEY (dag_id, run_id) REFERENCES dag_runs (dag_id, run_id)
        )",
    ],
)];
