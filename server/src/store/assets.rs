//! Assets and asset events on Airflow's `asset`, `asset_active`, `asset_alias`,
//! `asset_alias_asset`, `asset_event`, `asset_alias_asset_event`,
//! `dagrun_asset_event` and `dag_run` tables, read as Airflow's Execution API
//! reads them (`routes/assets.py`, `routes/asset_events.py`).
//!
//! An asset is *active* when `asset_active` has its `(name, uri)`; lookups by
//! name or by URI alone only see active assets, as in Airflow.

use sqlx::Row as _;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use super::sql::{Backend, json_or_none, parse_opt_time, parse_time, sql, strip_casts, time_param};
use super::{Store, StoreError};

/// An asset as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Asset {
    /// `asset.id`.
    pub id: i64,
    /// Name.
    pub name: String,
    /// URI.
    pub uri: String,
    /// Group.
    pub group: String,
    /// `extra`, JSON text (`None` for JSON `null`).
    pub extra: Option<String>,
}

/// Which asset's events: by name, by URI, or by both (both: active or not, as
/// in Airflow).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventSource {
    /// Events of the active asset with this name.
    Name(String),
    /// Events of the active asset with this URI.
    Uri(String),
    /// Events of the asset with this name and URI, active or not.
    NameAndUri(String, String),
    /// Events recorded through the asset alias with this name.
    Alias(String),
}

/// Which events, in which order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventQuery {
    /// Whose events.
    pub source: EventSource,
    /// Only events at or after this time.
    pub after: Option<OffsetDateTime>,
    /// Only events at or before this time.
    pub before: Option<OffsetDateTime>,
    /// Oldest first (else newest first).
    pub ascending: bool,
    /// At most this many.
    pub limit: Option<i64>,
}

/// An asset event as stored, with its asset and the DAG runs it created.
#[derive(Clone, Debug, PartialEq)]
pub struct AssetEvent {
    /// `asset_event.id`.
    pub id: i64,
    /// When it happened.
    pub timestamp: OffsetDateTime,
    /// `extra`, JSON text (`None` for JSON `null`).
    pub extra: Option<String>,
    /// Its asset.
    pub asset: Asset,
    /// The DAG runs it triggered (`dagrun_asset_event`), oldest first.
    pub created_dagruns: Vec<EventDagRun>,
    /// Task that emitted it.
    pub source_task_id: Option<String>,
    /// DAG of that task.
    pub source_dag_id: Option<String>,
    /// Run of that task.
    pub source_run_id: Option<String>,
    /// Map index of that task.
    pub source_map_index: Option<i64>,
    /// Partition key.
    pub partition_key: Option<String>,
}

/// A DAG run an asset event created.
#[derive(Clone, Debug, PartialEq)]
pub struct EventDagRun {
    /// Run id.
    pub run_id: String,
    /// DAG id.
    pub dag_id: String,
    /// Logical date.
    pub logical_date: Option<OffsetDateTime>,
    /// When the run started (`None` while it has not).
    pub start_date: Option<OffsetDateTime>,
    /// When it may start.
    pub run_after: OffsetDateTime,
    /// When it ended.
    pub end_date: Option<OffsetDateTime>,
    /// Its state.
    pub state: Option<String>,
    /// Start of the data interval.
    pub data_interval_start: Option<OffsetDateTime>,
    /// End of the data interval.
    pub data_interval_end: Option<OffsetDateTime>,
    /// Partition key.
    pub partition_key: Option<String>,
}

const ACTIVE: &str =
    "EXISTS (SELECT 1 FROM asset_active aa WHERE aa.name = a.name AND aa.uri = a.uri)";

impl Store {
    /// The active asset with this name.
    pub async fn active_asset_by_name(&self, name: &str) -> Result<Option<Asset>, StoreError> {
        let row = self
            .read_optional(|| {
                sqlx::query(sql!(
            self.backend,
            "SELECT a.id, a.name, a.uri, a.\"group\", CAST(a.extra AS TEXT) AS extra FROM asset a \
             WHERE a.name = $1 AND EXISTS (SELECT 1 FROM asset_active aa \
             WHERE aa.name = a.name AND aa.uri = a.uri) LIMIT 1"
        ))
        .bind(name)
            })
            .await?;
        row.as_ref().map(asset_from_row).transpose()
    }

    /// The active asset with this URI.
    pub async fn active_asset_by_uri(&self, uri: &str) -> Result<Option<Asset>, StoreError> {
        let row = self
            .read_optional(|| {
                sqlx::query(sql!(
            self.backend,
            "SELECT a.id, a.name, a.uri, a.\"group\", CAST(a.extra AS TEXT) AS extra FROM asset a \
             WHERE a.uri = $1 AND EXISTS (SELECT 1 FROM asset_active aa \
             WHERE aa.name = a.name AND aa.uri = a.uri) LIMIT 1"
        ))
        .bind(uri)
            })
            .await?;
        row.as_ref().map(asset_from_row).transpose()
    }

    /// The assets an alias resolves to, active or not (empty for an unknown alias).
    pub async fn assets_by_alias(&self, alias_name: &str) -> Result<Vec<Asset>, StoreError> {
        let rows = self
            .read_all(|| {
                sqlx::query(sql!(
                    self.backend,
                    "SELECT a.id, a.name, a.uri, a.\"group\", CAST(a.extra AS TEXT) AS extra \
             FROM asset_alias al JOIN asset_alias_asset aaa ON aaa.alias_id = al.id \
             JOIN asset a ON a.id = aaa.asset_id WHERE al.name = $1 ORDER BY a.id"
                ))
                .bind(alias_name)
            })
            .await?;
        rows.iter().map(asset_from_row).collect()
    }

    /// Asset events, each with its asset and the DAG runs it created.
    pub async fn asset_events(&self, query: &EventQuery) -> Result<Vec<AssetEvent>, StoreError> {
        let mut text = String::from(
            "SELECT e.id, CAST(e.timestamp AS TEXT) AS timestamp, CAST(e.extra AS TEXT) AS extra, \
             e.source_task_id, e.source_dag_id, e.source_run_id, e.source_map_index, \
             e.partition_key, a.id AS asset_id, a.name, a.uri, a.\"group\", \
             CAST(a.extra AS TEXT) AS asset_extra FROM asset_event e \
             JOIN asset a ON a.id = e.asset_id ",
        );
        let mut binds: Vec<String> = Vec::new();
        let param = |binds: &mut Vec<String>, value: String| {
            binds.push(value);
            format!("${}", binds.len())
        };
        match &query.source {
            EventSource::Name(name) => {
                let p = param(&mut binds, name.clone());
                text.push_str(&format!("WHERE a.name = {p} AND {ACTIVE}"));
            }
            EventSource::Uri(uri) => {
                let p = param(&mut binds, uri.clone());
                text.push_str(&format!("WHERE a.uri = {p} AND {ACTIVE}"));
            }
            EventSource::NameAndUri(name, uri) => {
                let p = param(&mut binds, name.clone());
                let q = param(&mut binds, uri.clone());
                text.push_str(&format!("WHERE a.name = {p} AND a.uri = {q}"));
            }
            EventSource::Alias(alias) => {
                let p = param(&mut binds, alias.clone());
                text.push_str(&format!(
                    "JOIN asset_alias_asset_event aae ON aae.event_id = e.id \
                     JOIN asset_alias al ON al.id = aae.alias_id WHERE al.name = {p}"
                ));
            }
        }
        if let Some(after) = query.after {
            let p = param(&mut binds, time_param(after));
            text.push_str(&format!(" AND e.timestamp >= {p}::timestamptz"));
        }
        if let Some(before) = query.before {
            let p = param(&mut binds, time_param(before));
            text.push_str(&format!(" AND e.timestamp <= {p}::timestamptz"));
        }
        // Airflow orders by timestamp only; the id makes ties deterministic.
        text.push_str(if query.ascending {
            " ORDER BY e.timestamp ASC, e.id ASC"
        } else {
            " ORDER BY e.timestamp DESC, e.id DESC"
        });
        if let Some(limit) = query.limit {
            text.push_str(&format!(" LIMIT {limit}"));
        }
        let text = match self.backend {
            Backend::Postgres => text,
            Backend::Sqlite => strip_casts(&text),
        };
        let rows = self
            .read_all(|| {
                let mut select = sqlx::query(sqlx::AssertSqlSafe(text.as_str()));
                for value in &binds {
                    select = select.bind(value.clone());
                }
                select
            })
            .await?;
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            events.push(AssetEvent {
                id,
                timestamp: parse_time(&row.try_get::<String, _>("timestamp")?)?,
                extra: json_or_none(row.try_get("extra")?),
                asset: Asset {
                    id: row.try_get("asset_id")?,
                    name: row.try_get("name")?,
                    uri: row.try_get("uri")?,
                    group: row.try_get("group")?,
                    extra: json_or_none(row.try_get("asset_extra")?),
                },
                created_dagruns: self.created_dagruns(id).await?,
                source_task_id: row.try_get("source_task_id")?,
                source_dag_id: row.try_get("source_dag_id")?,
                source_run_id: row.try_get("source_run_id")?,
                source_map_index: row.try_get("source_map_index")?,
                partition_key: row.try_get("partition_key")?,
            });
        }
        Ok(events)
    }

    async fn created_dagruns(&self, event_id: i64) -> Result<Vec<EventDagRun>, StoreError> {
        let rows = self
            .read_all(|| {
                sqlx::query(sql!(
                    self.backend,
                    "SELECT dr.run_id, dr.dag_id, CAST(dr.logical_date AS TEXT) AS logical_date, \
             CAST(dr.start_date AS TEXT) AS start_date, CAST(dr.run_after AS TEXT) AS run_after, \
             CAST(dr.end_date AS TEXT) AS end_date, dr.state, \
             CAST(dr.data_interval_start AS TEXT) AS data_interval_start, \
             CAST(dr.data_interval_end AS TEXT) AS data_interval_end, dr.partition_key \
             FROM dagrun_asset_event dae JOIN dag_run dr ON dr.id = dae.dag_run_id \
             WHERE dae.event_id = $1 ORDER BY dr.id"
                ))
                .bind(event_id)
            })
            .await?;
        rows.iter()
            .map(|row| {
                Ok(EventDagRun {
                    run_id: row.try_get("run_id")?,
                    dag_id: row.try_get("dag_id")?,
                    logical_date: parse_opt_time(row.try_get("logical_date")?)?,
                    start_date: parse_opt_time(row.try_get("start_date")?)?,
                    run_after: parse_time(&row.try_get::<String, _>("run_after")?)?,
                    end_date: parse_opt_time(row.try_get("end_date")?)?,
                    state: row.try_get("state")?,
                    data_interval_start: parse_opt_time(row.try_get("data_interval_start")?)?,
                    data_interval_end: parse_opt_time(row.try_get("data_interval_end")?)?,
                    partition_key: row.try_get("partition_key")?,
                })
            })
            .collect()
    }
}

fn asset_from_row(row: &AnyRow) -> Result<Asset, StoreError> {
    Ok(Asset {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        uri: row.try_get("uri")?,
        group: row.try_get("group")?,
        extra: json_or_none(row.try_get("extra")?),
    })
}

/// An asset event a DAG run consumed (`dagrun_asset_event`), as `/run` gives it
/// in the run's `consumed_asset_events`.
#[derive(Clone, Debug, PartialEq)]
pub struct ConsumedAssetEvent {
    /// Its asset's name.
    pub asset_name: String,
    /// Its asset's URI.
    pub asset_uri: String,
    /// Its asset's `extra`, JSON text (`None` for JSON `null`).
    pub asset_extra: Option<String>,
    /// The event's `extra`, JSON text (`None` for JSON `null`).
    pub extra: Option<String>,
    /// Task that emitted it.
    pub source_task_id: Option<String>,
    /// DAG of that task.
    pub source_dag_id: Option<String>,
    /// Run of that task.
    pub source_run_id: Option<String>,
    /// Map index of that task.
    pub source_map_index: Option<i64>,
    /// Names of the aliases it was emitted through.
    pub source_aliases: Vec<String>,
    /// When it happened.
    pub timestamp: OffsetDateTime,
    /// Partition key.
    pub partition_key: Option<String>,
}

/// The asset events the DAG run `(dag_id, run_id)` consumed, oldest first, read
/// on `conn` (the caller's transaction): what Airflow's `/run` loads with
/// `joinedload(DagRun.consumed_asset_events)`. One query, and a second for the
/// aliases only when there are events.
pub(crate) async fn consumed_asset_events(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    dag_id: &str,
    run_id: &str,
) -> Result<Vec<ConsumedAssetEvent>, StoreError> {
    let rows = sqlx::query(sql!(
        backend,
        "SELECT e.id, CAST(e.timestamp AS TEXT) AS timestamp, CAST(e.extra AS TEXT) AS extra, \
         e.source_task_id, e.source_dag_id, e.source_run_id, e.source_map_index, \
         e.partition_key, a.name, a.uri, CAST(a.extra AS TEXT) AS asset_extra \
         FROM dag_run dr JOIN dagrun_asset_event dae ON dae.dag_run_id = dr.id \
         JOIN asset_event e ON e.id = dae.event_id JOIN asset a ON a.id = e.asset_id \
         WHERE dr.dag_id = $1 AND dr.run_id = $2 ORDER BY e.timestamp, e.id"
    ))
    .bind(dag_id)
    .bind(run_id)
    .fetch_all(&mut *conn)
    .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let aliases = sqlx::query(
        "SELECT aae.event_id, al.name FROM dag_run dr \
         JOIN dagrun_asset_event dae ON dae.dag_run_id = dr.id \
         JOIN asset_alias_asset_event aae ON aae.event_id = dae.event_id \
         JOIN asset_alias al ON al.id = aae.alias_id \
         WHERE dr.dag_id = $1 AND dr.run_id = $2 ORDER BY al.name",
    )
    .bind(dag_id)
    .bind(run_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut events = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: i64 = row.try_get("id")?;
        let source_aliases = aliases
            .iter()
            .filter(|a| a.try_get::<i64, _>("event_id").ok() == Some(id))
            .map(|a| a.try_get::<String, _>("name"))
            .collect::<Result<_, _>>()?;
        events.push(ConsumedAssetEvent {
            asset_name: row.try_get("name")?,
            asset_uri: row.try_get("uri")?,
            asset_extra: json_or_none(row.try_get("asset_extra")?),
            extra: json_or_none(row.try_get("extra")?),
            source_task_id: row.try_get("source_task_id")?,
            source_dag_id: row.try_get("source_dag_id")?,
            source_run_id: row.try_get("source_run_id")?,
            source_map_index: row.try_get("source_map_index")?,
            source_aliases,
            timestamp: parse_time(&row.try_get::<String, _>("timestamp")?)?,
            partition_key: row.try_get("partition_key")?,
        });
    }
    Ok(events)
}
