//! The asset side of a task's success (`TaskInstance.register_asset_changes_in_db`
//! and `AssetManager.register_asset_change`): `asset_event` rows for the
//! task's active outlets and for the events it emitted through asset aliases
//! (creating missing `asset`, `asset_alias` and `asset_alias_asset` rows), and
//! `asset_dag_run_queue` rows for the unpaused DAGs scheduled on them, from
//! which the scheduler creates the asset-triggered runs.
//!
//! DAGs with a partitioned timetable need its partition mapper, which is
//! Python: a run with a partition key that would queue one is refused.

use serde_json::Value;
use sqlx::Row as _;

use super::pyjson::PyJson;
use super::sql::{sql, time_param};
use super::task_instances::{LogEvent, StateOutcome, TaskInstance};
use super::{Store, StoreError, now};

/// Airflow's `ID_LEN`: the width of `partition_key` columns.
const ID_LEN: usize = 250;

/// An outlet of the task, as the SDK reports it (`AssetProfile`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssetProfile {
    /// Asset (or alias) name.
    pub name: Option<String>,
    /// Asset URI.
    pub uri: Option<String>,
    /// `Asset`, `AssetNameRef`, `AssetUriRef`, `AssetAlias`, ...
    pub kind: String,
}

/// What a successful task reports about assets.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AssetOutlets {
    /// The task's outlets.
    pub task_outlets: Vec<AssetProfile>,
    /// The events it emitted (`OutletEventAccessors`' dicts, checked here).
    pub outlet_events: Vec<serde_json::Map<String, Value>>,
}

/// A refusal of the whole request (nothing is written).
fn refused(reason: &'static str, message: String) -> StateOutcome {
    StateOutcome::Refused { reason, message }
}

/// Python's `repr` of a string.
fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::from(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// One event emitted for an asset.
struct Emitted {
    name: String,
    uri: String,
    extra: PyJson,
    partition_key: Option<String>,
}

impl AssetOutlets {
    /// Airflow's `_validate_outlet_event_partition_keys`: a `partition_key`, if
    /// not null, is a non-blank string of at most 250 characters.
    pub fn validate_partition_keys(&self) -> Result<(), String> {
        for event in &self.outlet_events {
            match event.get("partition_key") {
                None | Some(Value::Null) => {}
                Some(Value::String(pk)) => {
                    if pk.trim().is_empty() {
                        return Err(format!(
                            "partition_key in outlet event must not be empty or whitespace-only; \
                             got {}.",
                            py_repr(pk)
                        ));
                    }
                    let len = pk.chars().count();
                    if len > ID_LEN {
                        return Err(format!(
                            "partition_key in outlet event must be at most {ID_LEN} characters; \
                             got {len}."
                        ));
                    }
                }
                Some(other) => {
                    return Err(format!(
                        "partition_key in outlet event must be a string; got {other}."
                    ));
                }
            }
        }
        Ok(())
    }
}

/// `dest_asset_key` of an outlet event: `{"name": ..., "uri": ...}`.
fn dest_key(event: &serde_json::Map<String, Value>) -> Result<(String, String), String> {
    let key = event
        .get("dest_asset_key")
        .and_then(Value::as_object)
        .ok_or("an outlet event needs `dest_asset_key`, an object with `name` and `uri`")?;
    match (
        key.get("name").and_then(Value::as_str),
        key.get("uri").and_then(Value::as_str),
    ) {
        (Some(name), Some(uri)) => Ok((name.to_owned(), uri.to_owned())),
        _ => Err("`dest_asset_key` needs string `name` and `uri`".into()),
    }
}

/// `extra` of an outlet event: an object (`{}` when null, as `extra or {}`).
fn event_extra(event: &serde_json::Map<String, Value>, field: &str) -> Result<PyJson, String> {
    match event.get(field) {
        Some(Value::Object(_)) => Ok(PyJson::from_value(&event[field])),
        Some(Value::Null) => Ok(PyJson::Object(Vec::new())),
        None if field == "dest_asset_extra" => Ok(PyJson::Object(Vec::new())),
        _ => Err(format!("an outlet event needs `{field}`, an object")),
    }
}

/// `json.dumps(value, sort_keys=True)` then `json.loads`: keys sorted at every level.
fn sorted(value: &PyJson) -> PyJson {
    match value {
        PyJson::Object(entries) => {
            let mut entries: Vec<(String, PyJson)> = entries
                .iter()
                .map(|(k, v)| (k.clone(), sorted(v)))
                .collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            PyJson::Object(entries)
        }
        PyJson::Array(items) => PyJson::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

impl Store {
    /// Registers the asset events of a successful task instance. `Ok(Err(_))`
    /// is a refusal: the caller rolls back.
    pub(super) async fn register_asset_changes(
        &self,
        conn: &mut sqlx::AnyConnection,
        ti: &TaskInstance,
        outlets: &AssetOutlets,
    ) -> Result<Result<(), StateOutcome>, StoreError> {
        if outlets.task_outlets.is_empty() && outlets.outlet_events.is_empty() {
            return Ok(Ok(()));
        }
        let b = self.backend;
        // Events addressed to an asset directly, by its key.
        let mut emitted: Vec<Emitted> = Vec::new();
        for event in &outlets.outlet_events {
            if event.contains_key("source_alias_name") {
                continue;
            }
            let (name, uri) = match dest_key(event) {
                Ok(key) => key,
                Err(message) => return Ok(Err(refused("invalid_outlet_event", message))),
            };
            let extra = match event_extra(event, "extra") {
                Ok(extra) => extra,
                Err(message) => return Ok(Err(refused("invalid_outlet_event", message))),
            };
            let partition_key = event
                .get("partition_key")
                .and_then(Value::as_str)
                .map(str::to_owned);
            emitted.push(Emitted {
                name,
                uri,
                extra,
                partition_key,
            });
        }
        let run = sqlx::query(sql!(
            b,
            "SELECT partition_key, CAST(logical_date AS TEXT) AS logical_date FROM dag_run \
             WHERE dag_id = $1 AND run_id = $2"
        ))
        .bind(&ti.dag_id)
        .bind(&ti.run_id)
        .fetch_optional(&mut *conn)
        .await?;
        let (run_partition_key, logical_date): (Option<String>, Option<String>) = match &run {
            Some(row) => (row.try_get(0)?, row.try_get(1)?),
            None => (None, None),
        };
        let logical_date = super::sql::parse_opt_time(logical_date)?;

        // The outlets, resolved to active assets (each once, as Airflow's sets do).
        let mut resolved: Vec<(i64, String, String)> = Vec::new();
        for outlet in &outlets.task_outlets {
            let name = outlet.name.as_deref().filter(|n| !n.is_empty());
            let uri = outlet.uri.as_deref().filter(|u| !u.is_empty());
            let row =
                match (outlet.kind.as_str(), name, uri) {
                    ("Asset", Some(name), Some(uri)) => sqlx::query(
                        "SELECT a.id, a.name, a.uri FROM asset a WHERE a.name = $1 AND a.uri = $2 \
                         AND EXISTS (SELECT 1 FROM asset_active aa \
                         WHERE aa.name = a.name AND aa.uri = a.uri)",
                    )
                    .bind(name)
                    .bind(uri)
                    .fetch_optional(&mut *conn)
                    .await?,
                    ("AssetNameRef", Some(name), _) => {
                        sqlx::query(
                            "SELECT a.id, a.name, a.uri FROM asset a WHERE a.name = $1 \
                         AND EXISTS (SELECT 1 FROM asset_active aa \
                         WHERE aa.name = a.name AND aa.uri = a.uri)",
                        )
                        .bind(name)
                        .fetch_optional(&mut *conn)
                        .await?
                    }
                    ("AssetUriRef", _, Some(uri)) => {
                        sqlx::query(
                            "SELECT a.id, a.name, a.uri FROM asset a WHERE a.uri = $1 \
                         AND EXISTS (SELECT 1 FROM asset_active aa \
                         WHERE aa.name = a.name AND aa.uri = a.uri)",
                        )
                        .bind(uri)
                        .fetch_optional(&mut *conn)
                        .await?
                    }
                    _ => None,
                };
            // An inactive or unknown outlet is only logged by Airflow.
            if let Some(row) = row {
                let asset = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
                if !resolved.contains(&asset) {
                    resolved.push(asset);
                }
            }
        }
        for (asset_id, name, uri) in &resolved {
            let payloads: Vec<&Emitted> = emitted
                .iter()
                .filter(|e| &e.name == name && &e.uri == uri)
                .collect();
            if payloads.is_empty() {
                let change = Change {
                    asset_id: *asset_id,
                    name,
                    uri,
                    extra: &PyJson::Object(Vec::new()),
                    partition_key: run_partition_key.as_deref(),
                    aliases: &[],
                };
                if let Err(r) = self
                    .register_change(conn, ti, logical_date, &change)
                    .await?
                {
                    return Ok(Err(r));
                }
            }
            for payload in payloads {
                let change = Change {
                    asset_id: *asset_id,
                    name,
                    uri,
                    extra: &payload.extra,
                    partition_key: payload
                        .partition_key
                        .as_deref()
                        .or(run_partition_key.as_deref()),
                    aliases: &[],
                };
                if let Err(r) = self
                    .register_change(conn, ti, logical_date, &change)
                    .await?
                {
                    return Ok(Err(r));
                }
            }
        }

        // Events emitted through an alias the task declares, grouped as Airflow
        // groups them: by asset, asset extra and event extra.
        let alias_names: Vec<&str> = outlets
            .task_outlets
            .iter()
            .filter(|o| o.kind == "AssetAlias")
            .filter_map(|o| o.name.as_deref().filter(|n| !n.is_empty()))
            .collect();
        type Group = ((String, String), String, String, Vec<String>);
        let mut groups: Vec<Group> = Vec::new();
        if !alias_names.is_empty() {
            for event in &outlets.outlet_events {
                let Some(alias) = event.get("source_alias_name") else {
                    continue;
                };
                let Some(alias) = alias.as_str().filter(|a| alias_names.contains(a)) else {
                    continue;
                };
                let parsed = dest_key(event).and_then(|key| {
                    Ok((
                        key,
                        event_extra(event, "dest_asset_extra")?,
                        event_extra(event, "extra")?,
                    ))
                });
                let (key, asset_extra, extra) = match parsed {
                    Ok(parsed) => parsed,
                    Err(message) => return Ok(Err(refused("invalid_outlet_event", message))),
                };
                let asset_extra = sorted(&asset_extra).dumps();
                let extra = sorted(&extra).dumps();
                match groups
                    .iter_mut()
                    .find(|g| g.0 == key && g.1 == asset_extra && g.2 == extra)
                {
                    Some(group) => {
                        if !group.3.iter().any(|a| a == alias) {
                            group.3.push(alias.to_owned());
                        }
                    }
                    None => groups.push((key, asset_extra, extra, vec![alias.to_owned()])),
                }
            }
        }
        for ((name, uri), asset_extra, extra, aliases) in &groups {
            let found = sqlx::query("SELECT id FROM asset WHERE name = $1 AND uri = $2")
                .bind(name)
                .bind(uri)
                .fetch_optional(&mut *conn)
                .await?;
            let asset_id: i64 = match found {
                Some(row) => row.try_get(0)?,
                None => {
                    // Airflow creates the asset (group `asset`) and registers again.
                    let stamp = time_param(now());
                    sqlx::query(sql!(
                        b,
                        "INSERT INTO asset (name, uri, \"group\", extra, created_at, updated_at) \
                         VALUES ($1, $2, 'asset', $3::json, $4::timestamptz, $4::timestamptz) \
                         RETURNING id"
                    ))
                    .bind(name)
                    .bind(uri)
                    .bind(asset_extra)
                    .bind(stamp)
                    .fetch_one(&mut *conn)
                    .await?
                    .try_get(0)?
                }
            };
            let extra = PyJson::parse(extra).map_err(StoreError::Corrupt)?;
            let change = Change {
                asset_id,
                name,
                uri,
                extra: &extra,
                partition_key: run_partition_key.as_deref(),
                aliases,
            };
            if let Err(r) = self
                .register_change(conn, ti, logical_date, &change)
                .await?
            {
                return Ok(Err(r));
            }
        }
        Ok(Ok(()))
    }

    /// `AssetManager.register_asset_change` for one asset.
    async fn register_change(
        &self,
        conn: &mut sqlx::AnyConnection,
        ti: &TaskInstance,
        logical_date: Option<time::OffsetDateTime>,
        change: &Change<'_>,
    ) -> Result<Result<(), StateOutcome>, StoreError> {
        let b = self.backend;
        let stamp = time_param(now());
        // Aliases the asset is not yet linked to: linked, created if new.
        let mut alias_ids = Vec::new();
        for alias in change.aliases {
            let found = sqlx::query("SELECT id FROM asset_alias WHERE name = $1")
                .bind(alias)
                .fetch_optional(&mut *conn)
                .await?;
            let alias_id: i64 = match found {
                Some(row) => row.try_get(0)?,
                None => sqlx::query(
                    "INSERT INTO asset_alias (name, \"group\") VALUES ($1, '') RETURNING id",
                )
                .bind(alias)
                .fetch_one(&mut *conn)
                .await?
                .try_get(0)?,
            };
            sqlx::query(
                "INSERT INTO asset_alias_asset (alias_id, asset_id) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(alias_id)
            .bind(change.asset_id)
            .execute(&mut *conn)
            .await?;
            alias_ids.push(alias_id);
        }
        let event_id: i64 = sqlx::query(sql!(
            b,
            "INSERT INTO asset_event (asset_id, extra, source_task_id, source_dag_id, \
             source_run_id, source_map_index, timestamp, partition_key) \
             VALUES ($1, $2::json, $3, $4, $5, $6, $7::timestamptz, $8) RETURNING id"
        ))
        .bind(change.asset_id)
        .bind(change.extra.dumps())
        .bind(&ti.task_id)
        .bind(&ti.dag_id)
        .bind(&ti.run_id)
        .bind(ti.map_index)
        .bind(&stamp)
        .bind(change.partition_key)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
        for alias_id in &alias_ids {
            sqlx::query("INSERT INTO asset_alias_asset_event (alias_id, event_id) VALUES ($1, $2)")
                .bind(*alias_id)
                .bind(event_id)
                .execute(&mut *conn)
                .await?;
        }
        // The unpaused DAGs scheduled on the asset, on one of the aliases, or
        // on its name or URI.
        let mut dags: Vec<(String, bool)> = Vec::new();
        let mut add = |rows: Vec<sqlx::any::AnyRow>| -> Result<(), StoreError> {
            for row in rows {
                let dag: (String, bool) = (row.try_get(0)?, row.try_get::<i64, _>(1)? != 0);
                if !dags.iter().any(|d| d.0 == dag.0) {
                    dags.push(dag);
                }
            }
            Ok(())
        };
        add(sqlx::query(
            "SELECT d.dag_id, CAST(CASE WHEN d.timetable_partitioned THEN 1 ELSE 0 END AS BIGINT) FROM dag d WHERE NOT d.is_paused AND \
             (d.dag_id IN (SELECT dag_id FROM dag_schedule_asset_reference WHERE asset_id = $1) \
             OR d.dag_id IN (SELECT dag_id FROM dag_schedule_asset_name_reference WHERE name = $2) \
             OR d.dag_id IN (SELECT dag_id FROM dag_schedule_asset_uri_reference WHERE uri = $3)) \
             ORDER BY d.dag_id",
        )
        .bind(change.asset_id)
        .bind(change.name)
        .bind(change.uri)
        .fetch_all(&mut *conn)
        .await?)?;
        for alias_id in &alias_ids {
            add(sqlx::query(
                "SELECT d.dag_id, CAST(CASE WHEN d.timetable_partitioned THEN 1 ELSE 0 END AS BIGINT) FROM dag d \
                 JOIN dag_schedule_asset_alias_reference r ON r.dag_id = d.dag_id \
                 WHERE r.alias_id = $1 AND NOT d.is_paused ORDER BY d.dag_id",
            )
            .bind(*alias_id)
            .fetch_all(&mut *conn)
            .await?)?;
        }
        if self.transitions.multi_team && !dags.is_empty() {
            dags = self.filter_by_team(conn, ti, change.asset_id, dags).await?;
        }
        let partitioned: Vec<&str> = dags.iter().filter(|d| d.1).map(|d| d.0.as_str()).collect();
        if !partitioned.is_empty() {
            if change.partition_key.is_some() {
                return Ok(Err(refused(
                    "partition_mapper_unsupported",
                    format!(
                        "asset {} is consumed by partition-aware Dags ({}): mapping the event's \
                         partition key to theirs runs their timetable's partition mapper, which \
                         needs Airflow's Python; this server does not run it",
                        py_repr(change.name),
                        partitioned.join(", ")
                    ),
                )));
            }
            let listening: Vec<String> = partitioned.iter().map(|d| py_repr(d)).collect();
            let message = format!(
                "Listening Dags are partition-aware but the run has no partition key \
                 (listening_dags=[{}], asset_id={}, run_id={}, dag_id={}, task_id={})",
                listening.join(", "),
                change.asset_id,
                ti.run_id,
                ti.dag_id,
                ti.task_id
            );
            self.insert_log(
                conn,
                &LogEvent {
                    event: "missing partition key",
                    dag_id: &ti.dag_id,
                    task_id: &ti.task_id,
                    run_id: &ti.run_id,
                    map_index: ti.map_index,
                    try_number: ti.try_number,
                    logical_date,
                    owner: None,
                    extra: Some(message),
                },
            )
            .await?;
        }
        if change.partition_key.is_none() {
            for (dag_id, _) in dags.iter().filter(|d| !d.1) {
                sqlx::query(sql!(
                    b,
                    "INSERT INTO asset_dag_run_queue (asset_id, target_dag_id, created_at) \
                     VALUES ($1, $2, $3::timestamptz) ON CONFLICT DO NOTHING"
                ))
                .bind(change.asset_id)
                .bind(dag_id)
                .bind(&stamp)
                .execute(&mut *conn)
                .await?;
            }
        }
        Ok(Ok(()))
    }
}

impl Store {
    /// `AssetManager._filter_dags_by_team` for an event a task produced (`[core]
    /// multi_team`): the consumer accepts the producer's team (same team, a
    /// teamless consumer, `allow_producer_teams`, or `allow_global_producers` for a
    /// teamless producer), and the producer's outlet allows the consumer's team
    /// (`allow_consumer_teams`, `allow_global_consumers`).
    async fn filter_by_team(
        &self,
        conn: &mut sqlx::AnyConnection,
        ti: &TaskInstance,
        asset_id: i64,
        dags: Vec<(String, bool)>,
    ) -> Result<Vec<(String, bool)>, StoreError> {
        let source_team = team_of(conn, &ti.dag_id).await?;
        let outlet = sqlx::query(
            "SELECT CAST(allow_consumer_teams AS TEXT), \
             CAST(CASE WHEN allow_global_consumers THEN 1 ELSE 0 END AS BIGINT) \
             FROM task_outlet_asset_reference WHERE dag_id = $1 AND task_id = $2 AND asset_id = $3",
        )
        .bind(&ti.dag_id)
        .bind(&ti.task_id)
        .bind(asset_id)
        .fetch_optional(&mut *conn)
        .await?;
        let (allow_consumer_teams, allow_global_consumers) = match outlet {
            Some(row) => (
                team_list(row.try_get::<Option<String>, _>(0)?)?,
                row.try_get::<i64, _>(1)? != 0,
            ),
            None => (None, true),
        };
        let consumer_filter = allow_consumer_teams.is_some() || !allow_global_consumers;
        let mut kept = Vec::new();
        for dag in dags {
            let consumer_team = team_of(conn, &dag.0).await?;
            let reference = sqlx::query(
                "SELECT CAST(allow_producer_teams AS TEXT), \
                 CAST(CASE WHEN allow_global_producers THEN 1 ELSE 0 END AS BIGINT) \
                 FROM dag_schedule_asset_reference WHERE asset_id = $1 AND dag_id = $2",
            )
            .bind(asset_id)
            .bind(&dag.0)
            .fetch_optional(&mut *conn)
            .await?;
            let (allow_producer_teams, allow_global_producers) = match reference {
                Some(row) => (
                    team_list(row.try_get::<Option<String>, _>(0)?)?.unwrap_or_default(),
                    row.try_get::<i64, _>(1)? != 0,
                ),
                None => (Vec::new(), true),
            };
            let producer_pass = match (&consumer_team, &source_team) {
                (None, _) => true,
                (Some(_), None) => allow_global_producers,
                (Some(consumer), Some(source)) => {
                    consumer == source || allow_producer_teams.contains(source)
                }
            };
            if !producer_pass {
                continue;
            }
            if consumer_filter {
                match &consumer_team {
                    None if !allow_global_consumers => continue,
                    Some(consumer)
                        if source_team.as_ref() != Some(consumer)
                            && allow_consumer_teams
                                .as_ref()
                                .is_some_and(|allowed| !allowed.contains(consumer)) =>
                    {
                        continue;
                    }
                    _ => {}
                }
            }
            kept.push(dag);
        }
        Ok(kept)
    }
}

/// A DAG's team: `dag -> dag_bundle_team` (`DagModel.get_team_name`).
pub(super) async fn team_of(
    conn: &mut sqlx::AnyConnection,
    dag_id: &str,
) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query(
        "SELECT dbt.team_name FROM dag JOIN dag_bundle_team dbt \
         ON dbt.dag_bundle_name = dag.bundle_name WHERE dag.dag_id = $1",
    )
    .bind(dag_id)
    .fetch_optional(&mut *conn)
    .await?
    .map(|row| row.try_get(0))
    .transpose()?)
}

/// A JSON list of team names (`None` for SQL NULL or JSON null).
fn team_list(text: Option<String>) -> Result<Option<Vec<String>>, StoreError> {
    match text.as_deref().map(str::trim) {
        None | Some("null") => Ok(None),
        Some(text) => serde_json::from_str(text)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("team list `{text}`: {e}"))),
    }
}

/// One `register_asset_change` call.
struct Change<'a> {
    asset_id: i64,
    name: &'a str,
    uri: &'a str,
    extra: &'a PyJson,
    partition_key: Option<&'a str>,
    aliases: &'a [String],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_keys_are_checked_as_airflow_does() {
        let outlets = |pk: Value| AssetOutlets {
            task_outlets: Vec::new(),
            outlet_events: vec![
                serde_json::json!({"partition_key": pk})
                    .as_object()
                    .unwrap()
                    .clone(),
            ],
        };
        assert!(outlets(Value::Null).validate_partition_keys().is_ok());
        assert!(outlets("p1".into()).validate_partition_keys().is_ok());
        assert_eq!(
            outlets("  ".into()).validate_partition_keys().unwrap_err(),
            "partition_key in outlet event must not be empty or whitespace-only; got '  '."
        );
        assert_eq!(
            outlets("x".repeat(251).into())
                .validate_partition_keys()
                .unwrap_err(),
            "partition_key in outlet event must be at most 250 characters; got 251."
        );
    }

    #[tokio::test]
    async fn multi_team_queues_only_the_consumers_teams_allow() {
        use crate::store::testing::stores;
        use crate::store::{NewTaskInstance, StartRequest, TransitionSettings};
        for store in stores("multi_team_queues_only_the_consumers_teams_allow").await {
            let store = store.with_transitions(TransitionSettings {
                multi_team: true,
                ..TransitionSettings::default()
            });
            let tag = &uuid::Uuid::new_v4().simple().to_string()[..10];
            let dag = |name: &str| format!("{name}_{tag}");
            let id = store
                .create_task_instance(&NewTaskInstance::new(dag("producer"), "emit"))
                .await
                .unwrap();
            for consumer in ["other_team", "teamless", "same_team", "allowed"] {
                store
                    .create_task_instance(&NewTaskInstance::new(dag(consumer), "c"))
                    .await
                    .unwrap();
            }
            let (team_a, team_b) = (format!("a{tag}"), format!("b{tag}"));
            let asset = format!("asset_{tag}");
            let mut statements = vec![
                format!("INSERT INTO team (name) VALUES ('{team_a}'), ('{team_b}')"),
                format!(
                    "INSERT INTO asset (name, uri, \"group\", extra, created_at, updated_at) \
                     VALUES ('{asset}', 's3://{asset}', 'asset', '{{}}', \
                     '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
                ),
                format!("INSERT INTO asset_active (name, uri) VALUES ('{asset}', 's3://{asset}')"),
            ];
            for (name, team) in [
                ("producer", Some(&team_a)),
                ("other_team", Some(&team_b)),
                ("teamless", None),
                ("same_team", Some(&team_a)),
                ("allowed", Some(&team_b)),
            ] {
                let bundle = dag(&format!("bundle_{name}"));
                statements.push(format!(
                    "INSERT INTO dag_bundle (name, active) VALUES ('{bundle}', true)"
                ));
                statements.push(format!(
                    "UPDATE dag SET bundle_name = '{bundle}' WHERE dag_id = '{}'",
                    dag(name)
                ));
                if let Some(team) = team {
                    statements.push(format!(
                        "INSERT INTO dag_bundle_team (dag_bundle_name, team_name) \
                         VALUES ('{bundle}', '{team}')"
                    ));
                }
                if name != "producer" {
                    let allow = if name == "allowed" {
                        format!("'[\"{team_a}\"]'")
                    } else {
                        "NULL".into()
                    };
                    statements.push(format!(
                        "INSERT INTO dag_schedule_asset_reference (asset_id, dag_id, \
                         allow_producer_teams, allow_global_producers, created_at, updated_at) \
                         SELECT id, '{}', {allow}, true, '2026-01-01 00:00:00', \
                         '2026-01-01 00:00:00' FROM asset WHERE name = '{asset}'",
                        dag(name)
                    ));
                }
            }
            for statement in &statements {
                sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
                    .execute(&store.pool)
                    .await
                    .unwrap_or_else(|e| panic!("{statement}: {e}"));
            }
            let start = StartRequest {
                hostname: "h".into(),
                unixname: "u".into(),
                pid: 1,
                start_date: time::OffsetDateTime::now_utc(),
            };
            store.start_task_instance(id, &start).await.unwrap();
            let change = crate::store::StateChange::Success {
                end_date: time::OffsetDateTime::now_utc(),
                rendered_map_index: None,
                outlets: AssetOutlets {
                    task_outlets: vec![AssetProfile {
                        name: Some(asset.clone()),
                        uri: Some(format!("s3://{asset}")),
                        kind: "Asset".into(),
                    }],
                    outlet_events: Vec::new(),
                },
            };
            assert_eq!(
                store.update_task_instance_state(id, &change).await.unwrap(),
                StateOutcome::Updated
            );
            let queued: Vec<String> = sqlx::query(
                "SELECT q.target_dag_id FROM asset_dag_run_queue q JOIN asset a \
                 ON a.id = q.asset_id WHERE a.name = $1 ORDER BY q.target_dag_id",
            )
            .bind(&asset)
            .fetch_all(&store.pool)
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get(0).unwrap())
            .collect();
            assert_eq!(
                queued,
                [dag("allowed"), dag("same_team"), dag("teamless")],
                "{}",
                store.backend_name()
            );
        }
    }

    #[test]
    fn repr_quotes_as_python() {
        assert_eq!(py_repr("a"), "'a'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("a'\""), "'a\\'\"'");
    }
}
