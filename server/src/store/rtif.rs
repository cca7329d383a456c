//! `rendered_task_instance_fields`: the template fields a worker rendered, with
//! Airflow's secrets redaction (`airflow._shared.secrets_masker`) and its
//! pruning to the newest `[core] num_dag_runs_to_retain_rendered_fields` runs
//! (`models/renderedtifields.py`).

use sqlx::Row as _;
use uuid::Uuid;

use super::pyjson::PyJson;
use super::sql::{sql, uuid_param};
use super::{Store, StoreError};

/// Airflow's `DEFAULT_SENSITIVE_FIELDS`: a key containing one of these (after
/// normalising) has its value hidden.
const SENSITIVE_FIELDS: [&str; 22] = [
    "access_key",
    "access_token",
    "api_key",
    "apikey",
    "auth_header",
    "authorization",
    "bearer",
    "connection_string",
    "dsn",
    "passphrase",
    "passwd",
    "password",
    "private_key",
    "proxy",
    "proxy_password",
    "proxies",
    "secret",
    "service_account",
    "service_key",
    "token",
    "keyfile_dict",
    "webhook_url",
];

/// The masker's `MAX_RECURSION_DEPTH`.
const MAX_DEPTH: usize = 5;

/// What the replacement of a hidden value is.
const REPLACEMENT: &str = "***";

/// `should_hide_value_for_key`: `re.sub(r"\W+", "_", name.strip().lower())`
/// contains a sensitive field name.
pub(crate) fn is_sensitive(name: &str) -> bool {
    let lower = name.trim().to_lowercase();
    let mut normalized = String::with_capacity(lower.len());
    let mut in_run = false;
    for c in lower.chars() {
        if c.is_alphanumeric() || c == '_' {
            normalized.push(c);
            in_run = false;
        } else if !in_run {
            normalized.push('_');
            in_run = true;
        }
    }
    SENSITIVE_FIELDS.iter().any(|s| normalized.contains(s))
}

/// `SecretsMasker._redact`: values under sensitive keys are hidden, at any depth.
pub(crate) fn redact(item: &PyJson, name: Option<&str>, depth: usize) -> PyJson {
    if name.is_some_and(is_sensitive) {
        return redact_all(item, depth);
    }
    match item {
        PyJson::Object(entries) => PyJson::Object(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), redact(v, Some(k), depth + 1)))
                .collect(),
        ),
        PyJson::Array(items) => {
            PyJson::Array(items.iter().map(|v| redact(v, None, depth + 1)).collect())
        }
        other => other.clone(),
    }
}

/// `SecretsMasker._redact_all`: every string (and everything too deep) replaced.
fn redact_all(item: &PyJson, depth: usize) -> PyJson {
    if depth > MAX_DEPTH || matches!(item, PyJson::Str(_)) {
        return PyJson::Str(REPLACEMENT.into());
    }
    match item {
        PyJson::Object(entries) => PyJson::Object(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), redact_all(v, depth + 1)))
                .collect(),
        ),
        PyJson::Array(items) => {
            PyJson::Array(items.iter().map(|v| redact_all(v, depth + 1)).collect())
        }
        other => other.clone(),
    }
}

/// What `PUT /rtif` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RtifOutcome {
    /// Stored.
    Stored,
    /// No such task instance.
    NotFound,
    /// The id is an earlier try's, archived in `task_instance_history` (410).
    Archived,
}

/// The rendered fields as stored: each field's value redacted under its name.
fn redacted(fields: &PyJson) -> PyJson {
    match fields {
        PyJson::Object(entries) => PyJson::Object(
            entries
                .iter()
                .map(|(field, value)| (field.clone(), redact(value, Some(field), 0)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// [`Store::put_rendered_fields`] on PostgreSQL in one autocommitted statement,
/// one round trip on the [`lane`](super::lane) instead of a transaction of
/// three statements. The runs kept are read once; the row is written only if
/// its run is one of them (Airflow writes it and its pruning deletes it again
/// otherwise), and the rows of other runs are pruned. Repeating it (the lane
/// does once, on a connection found dead) leaves the same rows.
async fn put_rendered_fields_postgres(
    lane: &super::lane::Lane,
    id: Uuid,
    fields: &str,
    runs_to_keep: i64,
) -> Result<RtifOutcome, StoreError> {
    let row = lane
        .fetch_optional(|| {
            sqlx::query(
                "WITH ti AS (SELECT dag_id, task_id, run_id, map_index FROM task_instance \
                 WHERE id = $1::uuid), \
                 kept AS (SELECT run_id FROM dag_run WHERE dag_id = (SELECT dag_id FROM ti) \
                 ORDER BY run_after DESC LIMIT $3), \
                 stored AS (INSERT INTO rendered_task_instance_fields \
                 (dag_id, task_id, run_id, map_index, rendered_fields, k8s_pod_yaml) \
                 SELECT dag_id, task_id, run_id, map_index, $2::json, 'null'::json FROM ti \
                 WHERE $3::bigint IS NULL OR run_id IN (SELECT run_id FROM kept) \
                 ON CONFLICT (dag_id, task_id, run_id, map_index) DO UPDATE SET \
                 rendered_fields = excluded.rendered_fields, k8s_pod_yaml = excluded.k8s_pod_yaml), \
                 pruned AS (DELETE FROM rendered_task_instance_fields r USING ti \
                 WHERE $3::bigint IS NOT NULL AND r.dag_id = ti.dag_id AND r.task_id = ti.task_id \
                 AND r.run_id NOT IN (SELECT run_id FROM kept)) \
                 SELECT EXISTS (SELECT FROM ti), CASE WHEN EXISTS (SELECT FROM ti) THEN false \
                 ELSE EXISTS (SELECT FROM task_instance_history WHERE task_instance_id = $1::uuid) END",
            )
            .bind(uuid_param(id))
            .bind(fields)
            // 0 or less keeps every run: no LIMIT, no pruning.
            .bind((runs_to_keep > 0).then_some(runs_to_keep))
        })
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    let (found, archived): (bool, bool) = (row.try_get(0)?, row.try_get(1)?);
    Ok(match (found, archived) {
        (true, _) => RtifOutcome::Stored,
        (false, true) => RtifOutcome::Archived,
        (false, false) => RtifOutcome::NotFound,
    })
}

impl Store {
    /// Stores a task instance's rendered fields (redacted), replacing earlier
    /// ones, and prunes those of older runs of its DAG.
    pub async fn put_rendered_fields(
        &self,
        id: Uuid,
        fields: &PyJson,
    ) -> Result<RtifOutcome, StoreError> {
        let b = self.backend;
        if let Some(lane) = &self.lane {
            let keep = self.transitions.rendered_fields_runs_to_keep;
            return put_rendered_fields_postgres(lane, id, &redacted(fields).dumps(), keep).await;
        }
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(sql!(
            b,
            "SELECT dag_id, task_id, run_id, map_index FROM task_instance WHERE id = $1::uuid"
        ))
        .bind(uuid_param(id))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            let archived: i64 = sqlx::query(sql!(
                b,
                "SELECT COUNT(task_instance_id) FROM task_instance_history \
                 WHERE task_instance_id = $1::uuid"
            ))
            .bind(uuid_param(id))
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
            tx.rollback().await?;
            return Ok(if archived > 0 {
                RtifOutcome::Archived
            } else {
                RtifOutcome::NotFound
            });
        };
        let dag_id: String = row.try_get("dag_id")?;
        let task_id: String = row.try_get("task_id")?;
        let run_id: String = row.try_get("run_id")?;
        let map_index: i64 = row.try_get("map_index")?;
        let redacted = redacted(fields);
        sqlx::query(sql!(
            b,
            "INSERT INTO rendered_task_instance_fields \
             (dag_id, task_id, run_id, map_index, rendered_fields, k8s_pod_yaml) \
             VALUES ($1, $2, $3, $4, $5::json, 'null'::json) \
             ON CONFLICT (dag_id, task_id, run_id, map_index) DO UPDATE SET \
             rendered_fields = excluded.rendered_fields, k8s_pod_yaml = excluded.k8s_pod_yaml"
        ))
        .bind(&dag_id)
        .bind(&task_id)
        .bind(&run_id)
        .bind(map_index)
        .bind(redacted.dumps())
        .execute(&mut *tx)
        .await?;
        if self.transitions.rendered_fields_runs_to_keep > 0 {
            sqlx::query(
                "DELETE FROM rendered_task_instance_fields WHERE dag_id = $1 AND task_id = $2 \
                 AND run_id NOT IN (SELECT run_id FROM dag_run WHERE dag_id = $1 \
                 ORDER BY run_after DESC LIMIT $3)",
            )
            .bind(&dag_id)
            .bind(&task_id)
            .bind(self.transitions.rendered_fields_runs_to_keep)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(RtifOutcome::Stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_names_as_the_masker_reads_them() {
        for name in [
            "password",
            "DB Password",
            "my-api-key",
            "x_token_y",
            " Authorization ",
            "proxies",
        ] {
            assert!(is_sensitive(name), "{name}");
        }
        for name in ["bash_command", "sql", "host", "pass", "api"] {
            assert!(!is_sensitive(name), "{name}");
        }
    }

    #[test]
    fn redaction_is_by_key_at_any_depth() {
        let fields = PyJson::parse(
            r#"{"password": "hunter2", "env": {"API_KEY": "k", "n": 1, "deep": [{"token": ["a", 2, null]}]},
                "secret": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}, "cmd": "echo"}"#,
        )
        .unwrap();
        let PyJson::Object(entries) = &fields else {
            unreachable!()
        };
        let out = PyJson::Object(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), redact(v, Some(k), 0)))
                .collect(),
        );
        assert_eq!(
            out.dumps(),
            r#"{"password": "***", "env": {"API_KEY": "***", "n": 1, "deep": [{"token": ["***", 2, null]}]}, "secret": {"a": {"b": {"c": {"d": {"e": {"f": "***"}}}}}}, "cmd": "echo"}"#
        );
    }
}
