//! `rendered_task_instance_fields`: the template fields a worker rendered, with
//! Airflow's secrets redaction (`airflow._shared.secrets_masker`) and its
//! pruning to the newest `[core] num_dag_runs_to_retain_rendered_fields` runs
//! (`models/renderedtifields.py`).

use sqlx::Row as _;
use uuid::Uuid;

use super::pyjson::PyJson;
use super::sql::uuid_param;
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// One rendered-fields write, owned (it crosses to the collector's thread).
#[derive(Clone, Debug)]
pub(super) struct RtifRow {
    id: Uuid,
    /// The redacted fields, JSON text.
    fields: String,
    /// `[core] num_dag_runs_to_retain_rendered_fields`, `None` for all.
    runs_to_keep: Option<i64>,
}

/// Rendered-fields writes, batched (see [`super::batch`]): the single
/// statement of [`put_rendered_fields_postgres`] over every member at once;
/// members of one task instance are written once, the later one winning, and
/// the runs kept are read once per DAG of the batch.
pub(super) struct RtifBatch;

impl super::batch::Batch for RtifBatch {
    type Row = RtifRow;
    type Outcome = RtifOutcome;
    const THREAD: &'static str = "rtif-commit";

    fn write<'a>(
        conn: super::lane::Checkout<'a>,
        rows: Vec<&'a RtifRow>,
    ) -> super::batch::Written<'a, RtifOutcome> {
        Box::pin(write_batch(conn, rows))
    }

    fn write_sqlite<'a>(
        conn: &'a mut sqlx::AnyConnection,
        rows: Vec<&'a RtifRow>,
    ) -> super::batch::Written<'a, RtifOutcome> {
        Box::pin(write_batch_sqlite(conn, rows))
    }
}

async fn write_batch(
    conn: super::lane::Checkout<'_>,
    members: Vec<&RtifRow>,
) -> Result<std::collections::HashMap<usize, RtifOutcome>, StoreError> {
    let rows: Vec<serde_json::Value> = members
        .iter()
        .enumerate()
        .map(|(i, row)| serde_json::json!({ "i": i, "id": row.id, "fields": row.fields }))
        .collect();
    let rows = serde_json::Value::Array(rows).to_string();
    // One store, one setting: every member carries the same.
    let keep = members.first().and_then(|row| row.runs_to_keep);
    // Repeated once on a fresh connection if the lane's was stale: each
    // repeat writes the same rows.
    let answers = conn
        .fetch_all(|| {
            sqlx::query(
                "WITH m AS MATERIALIZED ( \
                     SELECT * FROM json_to_recordset($1::json) AS m(i int, id uuid, fields text) \
                 ), ti AS MATERIALIZED ( \
                     SELECT m.i, t.dag_id, t.task_id, t.run_id, t.map_index \
                     FROM m JOIN task_instance t ON t.id = m.id \
                 ), kept AS MATERIALIZED ( \
                     SELECT d.dag_id, k.run_id FROM (SELECT DISTINCT dag_id FROM ti) d \
                     CROSS JOIN LATERAL (SELECT run_id FROM dag_run \
                     WHERE dag_run.dag_id = d.dag_id ORDER BY run_after DESC LIMIT $2) k \
                 ), stored AS ( \
                     INSERT INTO rendered_task_instance_fields \
                     (dag_id, task_id, run_id, map_index, rendered_fields, k8s_pod_yaml) \
                     SELECT DISTINCT ON (ti.dag_id, ti.task_id, ti.run_id, ti.map_index) \
                     ti.dag_id, ti.task_id, ti.run_id, ti.map_index, m.fields::json, 'null'::json \
                     FROM ti JOIN m ON m.i = ti.i \
                     WHERE $2::bigint IS NULL OR EXISTS (SELECT FROM kept \
                     WHERE kept.dag_id = ti.dag_id AND kept.run_id = ti.run_id) \
                     ORDER BY ti.dag_id, ti.task_id, ti.run_id, ti.map_index, ti.i DESC \
                     ON CONFLICT (dag_id, task_id, run_id, map_index) DO UPDATE SET \
                     rendered_fields = excluded.rendered_fields, \
                     k8s_pod_yaml = excluded.k8s_pod_yaml \
                 ), pruned AS ( \
                     DELETE FROM rendered_task_instance_fields r \
                     USING (SELECT DISTINCT dag_id, task_id FROM ti) t \
                     WHERE $2::bigint IS NOT NULL AND r.dag_id = t.dag_id AND r.task_id = t.task_id \
                     AND NOT EXISTS (SELECT FROM kept \
                     WHERE kept.dag_id = r.dag_id AND kept.run_id = r.run_id) \
                 ) \
                 SELECT m.i, EXISTS (SELECT FROM ti WHERE ti.i = m.i) AS found, \
                 EXISTS (SELECT FROM task_instance_history h \
                 WHERE h.task_instance_id = m.id) AS archived FROM m",
            )
            .bind(rows.as_str())
            .bind(keep)
        })
        .await?;
    super::batch::outcomes(&answers, ["found", "archived"], |found, archived| {
        match (found, archived) {
            (true, _) => RtifOutcome::Stored,
            (false, true) => RtifOutcome::Archived,
            (false, false) => RtifOutcome::NotFound,
        }
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
        let keep = self.transitions.rendered_fields_runs_to_keep;
        // 0 or less keeps every run: no LIMIT, no pruning.
        let runs_to_keep = (keep > 0).then_some(keep);
        let fields = redacted(fields).dumps();
        // Alone, the write runs at once on this worker's connection; arriving
        // while others are in flight, it joins the collector's next batch.
        let in_flight = super::batch::InFlight::enter(&self.rtif_writes);
        if let Some(batcher) = &self.rtif_batch
            && in_flight.others > 0
        {
            let row = RtifRow {
                id,
                fields: fields.clone(),
                runs_to_keep,
            };
            if let Some(outcome) = batcher.submit(row).await {
                return Ok(outcome);
            }
        }
        if let Some(lane) = &self.lane {
            return put_rendered_fields_postgres(lane, id, &fields, keep).await;
        }
        let mut tx = self.begin_write().await?;
        let outcome = match store_rendered_fields_sqlite(&mut tx, id, &fields).await? {
            Some((dag_id, task_id)) => {
                if let Some(keep) = runs_to_keep {
                    prune_rendered_fields_sqlite(&mut tx, &dag_id, &task_id, keep).await?;
                }
                RtifOutcome::Stored
            }
            None => not_stored_sqlite(&mut tx, id).await?,
        };
        tx.commit().await?;
        Ok(outcome)
    }
}

/// SQLite: upserts a task instance's rendered fields (`fields`, redacted JSON
/// text) in one statement; the task instance's DAG and task, `None` if there
/// is no such task instance.
async fn store_rendered_fields_sqlite(
    conn: &mut sqlx::AnyConnection,
    id: Uuid,
    fields: &str,
) -> Result<Option<(String, String)>, StoreError> {
    // (`WHERE` before `ON CONFLICT` is also what tells SQLite's parser the
    // upsert from a join constraint.)
    let row = sqlx::query(
        "INSERT INTO rendered_task_instance_fields \
         (dag_id, task_id, run_id, map_index, rendered_fields, k8s_pod_yaml) \
         SELECT dag_id, task_id, run_id, map_index, $2, 'null' FROM task_instance \
         WHERE id = $1 \
         ON CONFLICT (dag_id, task_id, run_id, map_index) DO UPDATE SET \
         rendered_fields = excluded.rendered_fields, k8s_pod_yaml = excluded.k8s_pod_yaml \
         RETURNING dag_id, task_id",
    )
    .bind(uuid_param(id))
    .bind(fields)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .transpose()
}

/// SQLite: deletes a task's rendered fields of the runs of its DAG older than
/// the newest `keep`.
async fn prune_rendered_fields_sqlite(
    conn: &mut sqlx::AnyConnection,
    dag_id: &str,
    task_id: &str,
    keep: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM rendered_task_instance_fields WHERE dag_id = $1 AND task_id = $2 \
         AND run_id NOT IN (SELECT run_id FROM dag_run WHERE dag_id = $1 \
         ORDER BY run_after DESC LIMIT $3)",
    )
    .bind(dag_id)
    .bind(task_id)
    .bind(keep)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// SQLite: why a task instance's rendered fields were not stored: its try
/// was archived (retried: Airflow's 410), or there is no such id.
async fn not_stored_sqlite(
    conn: &mut sqlx::AnyConnection,
    id: Uuid,
) -> Result<RtifOutcome, StoreError> {
    let archived: i64 = sqlx::query(
        "SELECT EXISTS (SELECT 1 FROM task_instance_history WHERE task_instance_id = $1)",
    )
    .bind(uuid_param(id))
    .fetch_one(&mut *conn)
    .await?
    .try_get(0)?;
    Ok(if archived != 0 {
        RtifOutcome::Archived
    } else {
        RtifOutcome::NotFound
    })
}

/// SQLite: a batch's members one after the other in its transaction, each
/// DAG's task pruned once after them all (which leaves the rows pruning after
/// each would have).
async fn write_batch_sqlite(
    conn: &mut sqlx::AnyConnection,
    members: Vec<&RtifRow>,
) -> Result<std::collections::HashMap<usize, RtifOutcome>, StoreError> {
    let mut outcomes = std::collections::HashMap::with_capacity(members.len());
    let mut tasks = std::collections::BTreeSet::new();
    for (i, row) in members.iter().enumerate() {
        let outcome = match store_rendered_fields_sqlite(conn, row.id, &row.fields).await? {
            Some(task) => {
                tasks.insert(task);
                RtifOutcome::Stored
            }
            None => not_stored_sqlite(conn, row.id).await?,
        };
        outcomes.insert(i, outcome);
    }
    // One store, one setting: every member carries the same.
    if let Some(keep) = members.first().and_then(|row| row.runs_to_keep) {
        for (dag_id, task_id) in &tasks {
            prune_rendered_fields_sqlite(conn, dag_id, task_id, keep).await?;
        }
    }
    Ok(outcomes)
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

    /// One batch: two writes of one task instance (the later wins), another
    /// task's, a task of a run no longer kept (answered stored, not kept, its
    /// earlier row pruned), an unknown id.
    #[tokio::test]
    async fn a_batch_of_rendered_fields_answers_each_member_as_alone() {
        use std::time::Duration;

        use crate::store::NewTaskInstance;

        let test = "a_batch_of_rendered_fields_answers_each_member_as_alone";
        for store in crate::store::testing::stores(test).await {
            let batcher = store.rtif_batch.clone().expect("the collector runs");
            let dag = format!("dag_{}", Uuid::new_v4().simple());
            let ti = |run: &'static str, task: &'static str| {
                let store = store.clone();
                let dag = dag.clone();
                async move {
                    store
                        .create_task_instance(&NewTaskInstance {
                            run_id: Some(run.into()),
                            ..NewTaskInstance::new(&dag, task)
                        })
                        .await
                        .unwrap()
                }
            };
            let old = ti("old", "o").await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            let a = ti("new", "a").await;
            let b = ti("new", "b").await;
            let fields = PyJson::parse(r#"{"v": 0}"#).unwrap();
            assert_eq!(
                store.put_rendered_fields(old, &fields).await.unwrap(),
                RtifOutcome::Stored
            );
            let row = |id: Uuid, v: i32| RtifRow {
                id,
                fields: format!(r#"{{"v": {v}}}"#),
                runs_to_keep: Some(1),
            };
            let held = batcher.writer.hold().await;
            let members = [
                row(a, 1),
                row(a, 2),
                row(b, 3),
                row(old, 4),
                row(Uuid::new_v4(), 5),
            ];
            let n = members.len();
            let tasks: Vec<_> = members
                .into_iter()
                .map(|row| {
                    let batcher = batcher.clone();
                    tokio::spawn(async move { batcher.submit(row).await })
                })
                .collect();
            for _ in 0..500 {
                if batcher.queued() + 1 >= n {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            drop(held);
            let mut answers = Vec::new();
            for task in tasks {
                answers.push(task.await.unwrap());
            }
            use RtifOutcome::*;
            assert_eq!(
                answers,
                [
                    Some(Stored),
                    Some(Stored),
                    Some(Stored),
                    Some(Stored),
                    Some(NotFound)
                ]
            );
            let rows: Vec<(String, String)> = sqlx::query(
                "SELECT task_id, CAST(rendered_fields AS TEXT) FROM rendered_task_instance_fields \
                 WHERE dag_id = $1 ORDER BY task_id",
            )
            .bind(&dag)
            .fetch_all(&store.pool)
            .await
            .unwrap()
            .iter()
            .map(|row| (row.try_get(0).unwrap(), row.try_get(1).unwrap()))
            .collect();
            assert_eq!(
                rows,
                [
                    ("a".to_owned(), r#"{"v": 2}"#.to_owned()),
                    ("b".to_owned(), r#"{"v": 3}"#.to_owned())
                ]
            );
        }
    }
}
