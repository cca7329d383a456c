//! Read-only questions about task instances and their runs, as Airflow 3.3.2's Execution API
//! asks them (`execution_api/routes/task_instances.py`: `/count`, `/states`, `/breadcrumbs`,
//! `/previous/...`, `.../previous-successful-dagrun`, `.../validate-inlets-and-outlets`),
//! with the same SQL shape, so ordering and NULL placement follow each backend as Airflow's do.

use sqlx::Row as _;
use sqlx::any::AnyRow;
use time::OffsetDateTime;
use uuid::Uuid;

use super::sql::{Backend, parse_opt_time, sql, strip_casts, time_param, uuid_param};
use super::{AssetKey, Store, StoreError};

/// Which task instances of a DAG (`/count` and `/states`); empty lists filter nothing,
/// as in Airflow.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TiFilter {
    /// The DAG.
    pub dag_id: String,
    /// Only this map index.
    pub map_index: Option<i64>,
    /// Only these task ids.
    pub task_ids: Vec<String>,
    /// Only runs with these logical dates.
    pub logical_dates: Vec<OffsetDateTime>,
    /// Only these runs.
    pub run_ids: Vec<String>,
    /// Only these `(task_id, map_index)` pairs (the task-group filter).
    pub pairs: Option<Vec<(String, i64)>>,
    /// Only these states; `"null"` stands for SQL NULL (`/count` only).
    pub states: Vec<String>,
}

/// One task instance's place and state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TiStateRow {
    /// Run id.
    pub run_id: String,
    /// Task id.
    pub task_id: String,
    /// Map index.
    pub map_index: i64,
    /// State as stored; `None` is SQL NULL.
    pub state: Option<String>,
}

/// A finished task instance of a run (`/breadcrumbs`).
#[derive(Clone, Debug, PartialEq)]
pub struct Breadcrumb {
    /// Task id.
    pub task_id: String,
    /// Map index.
    pub map_index: i64,
    /// Its (terminal) state.
    pub state: Option<String>,
    /// Its operator's name.
    pub operator: Option<String>,
    /// Seconds it ran.
    pub duration: Option<f64>,
}

/// The newest earlier task instance (`/previous/{dag_id}/{task_id}`).
#[derive(Clone, Debug, PartialEq)]
pub struct PreviousTaskInstance {
    /// Task id.
    pub task_id: String,
    /// DAG id.
    pub dag_id: String,
    /// Run id.
    pub run_id: String,
    /// Its run's logical date.
    pub logical_date: Option<OffsetDateTime>,
    /// When it started.
    pub start_date: Option<OffsetDateTime>,
    /// When it ended.
    pub end_date: Option<OffsetDateTime>,
    /// State as stored.
    pub state: Option<String>,
    /// Its try number.
    pub try_number: i64,
    /// Map index.
    pub map_index: i64,
    /// Seconds it ran.
    pub duration: Option<f64>,
}

/// The dates of a DAG run (`previous-successful-dagrun`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunDates {
    /// Start of its data interval.
    pub data_interval_start: Option<OffsetDateTime>,
    /// End of its data interval.
    pub data_interval_end: Option<OffsetDateTime>,
    /// When it started.
    pub start_date: Option<OffsetDateTime>,
    /// When it ended.
    pub end_date: Option<OffsetDateTime>,
}

/// A task instance's identity within its DAG run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TiPlace {
    /// DAG id.
    pub dag_id: String,
    /// Run id.
    pub run_id: String,
    /// Task id.
    pub task_id: String,
}

/// SQL built clause by clause, with its parameters in order.
struct Builder {
    backend: Backend,
    text: String,
    binds: Vec<Bind>,
}

enum Bind {
    Text(String),
    Int(i64),
}

impl Builder {
    fn new(backend: Backend, text: &str) -> Builder {
        Builder {
            backend,
            text: text.to_owned(),
            binds: Vec::new(),
        }
    }

    /// A placeholder for `value`, with a PostgreSQL cast when `cast` is given.
    fn param(&mut self, value: Bind, cast: &str) -> String {
        self.binds.push(value);
        if cast.is_empty() {
            format!("${}", self.binds.len())
        } else {
            format!("${}::{cast}", self.binds.len())
        }
    }

    fn push(&mut self, text: &str) {
        self.text.push_str(text);
    }

    fn text_list(&mut self, values: &[String]) -> String {
        let params: Vec<String> = values
            .iter()
            .map(|v| self.param(Bind::Text(v.clone()), ""))
            .collect();
        params.join(", ")
    }

    fn filter(&mut self, filter: &TiFilter) {
        let dag = self.param(Bind::Text(filter.dag_id.clone()), "");
        self.push(&format!(" WHERE ti.dag_id = {dag}"));
        if !filter.task_ids.is_empty() {
            let list = self.text_list(&filter.task_ids);
            self.push(&format!(" AND ti.task_id IN ({list})"));
        }
        if let Some(map_index) = filter.map_index {
            let p = self.param(Bind::Int(map_index), "");
            self.push(&format!(" AND ti.map_index = {p}"));
        }
        if !filter.logical_dates.is_empty() {
            // Airflow's `TI.logical_date` is a proxy to the run's column.
            let dates: Vec<String> = filter
                .logical_dates
                .iter()
                .map(|d| self.param(Bind::Text(time_param(*d)), "timestamptz"))
                .collect();
            self.push(&format!(
                " AND EXISTS (SELECT 1 FROM dag_run dr WHERE dr.dag_id = ti.dag_id \
                 AND dr.run_id = ti.run_id AND dr.logical_date IN ({}))",
                dates.join(", ")
            ));
        }
        if !filter.run_ids.is_empty() {
            let list = self.text_list(&filter.run_ids);
            self.push(&format!(" AND ti.run_id IN ({list})"));
        }
        if let Some(pairs) = &filter.pairs {
            let mut terms = Vec::with_capacity(pairs.len());
            for (task_id, map_index) in pairs {
                let t = self.param(Bind::Text(task_id.clone()), "");
                let m = self.param(Bind::Int(*map_index), "");
                terms.push(format!("(ti.task_id = {t} AND ti.map_index = {m})"));
            }
            if terms.is_empty() {
                terms.push("1 = 0".to_owned());
            }
            self.push(&format!(" AND ({})", terms.join(" OR ")));
        }
        if !filter.states.is_empty() {
            let named: Vec<String> = filter
                .states
                .iter()
                .filter(|s| *s != "null")
                .cloned()
                .collect();
            let with_null = named.len() != filter.states.len();
            let list = self.text_list(&named);
            match (with_null, named.is_empty()) {
                (true, true) => self.push(" AND ti.state IS NULL"),
                (true, false) => {
                    self.push(&format!(" AND (ti.state IS NULL OR ti.state IN ({list}))"))
                }
                (false, _) => self.push(&format!(" AND ti.state IN ({list})")),
            }
        }
    }

    fn text(&self) -> String {
        match self.backend {
            Backend::Postgres => self.text.clone(),
            Backend::Sqlite => strip_casts(&self.text),
        }
    }

    async fn fetch_all(self, store: &Store) -> Result<Vec<AnyRow>, StoreError> {
        let text = self.text();
        store
            .read_all(|| {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(text.as_str()));
                for bind in &self.binds {
                    query = match bind {
                        Bind::Text(v) => query.bind(v.clone()),
                        Bind::Int(v) => query.bind(*v),
                    };
                }
                query
            })
            .await
    }
}

fn state_row(row: &AnyRow) -> Result<TiStateRow, StoreError> {
    Ok(TiStateRow {
        run_id: row.try_get("run_id")?,
        task_id: row.try_get("task_id")?,
        map_index: row.try_get("map_index")?,
        state: row.try_get("state")?,
    })
}

impl Store {
    /// How many task instances match (`/count`).
    pub async fn count_task_instances(&self, filter: &TiFilter) -> Result<i64, StoreError> {
        let mut query = Builder::new(self.backend, "SELECT COUNT(*) FROM task_instance ti");
        query.filter(filter);
        let rows = query.fetch_all(self).await?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError::Corrupt("COUNT without row".into()))?;
        Ok(row.try_get(0)?)
    }

    /// The matching task instances' places and states (`/states`), in no particular order.
    pub async fn task_instance_states(
        &self,
        filter: &TiFilter,
    ) -> Result<Vec<TiStateRow>, StoreError> {
        let mut query = Builder::new(
            self.backend,
            "SELECT ti.run_id, ti.task_id, ti.map_index, ti.state FROM task_instance ti",
        );
        query.filter(filter);
        query.fetch_all(self).await?.iter().map(state_row).collect()
    }

    /// The finished task instances of a run, by task id and map index (`/breadcrumbs`).
    pub async fn breadcrumbs(
        &self,
        dag_id: &str,
        run_id: &str,
    ) -> Result<Vec<Breadcrumb>, StoreError> {
        let rows = self
            .read_all(|| {
                sqlx::query(sql!(
                    self.backend,
                    "SELECT task_id, map_index, state, operator, duration FROM task_instance \
             WHERE dag_id = $1 AND run_id = $2 \
             AND state IN ('success', 'failed', 'skipped', 'upstream_failed', 'removed') \
             ORDER BY task_id, map_index"
                ))
                .bind(dag_id)
                .bind(run_id)
            })
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Breadcrumb {
                    task_id: row.try_get("task_id")?,
                    map_index: row.try_get("map_index")?,
                    state: row.try_get("state")?,
                    operator: row.try_get("operator")?,
                    duration: row.try_get("duration")?,
                })
            })
            .collect()
    }

    /// The task instance of the run with the newest logical date, optionally before a date
    /// and in a state (`/previous/{dag_id}/{task_id}`).
    pub async fn previous_task_instance(
        &self,
        dag_id: &str,
        task_id: &str,
        map_index: i64,
        before: Option<OffsetDateTime>,
        state: Option<&str>,
    ) -> Result<Option<PreviousTaskInstance>, StoreError> {
        let mut query = Builder::new(
            self.backend,
            "SELECT ti.task_id, ti.dag_id, ti.run_id, CAST(dr.logical_date AS TEXT) AS logical_date, \
             CAST(ti.start_date AS TEXT) AS start_date, CAST(ti.end_date AS TEXT) AS end_date, \
             ti.state, ti.try_number, ti.map_index, ti.duration \
             FROM task_instance ti JOIN dag_run dr ON ti.dag_id = dr.dag_id AND ti.run_id = dr.run_id",
        );
        let d = query.param(Bind::Text(dag_id.to_owned()), "");
        let t = query.param(Bind::Text(task_id.to_owned()), "");
        let m = query.param(Bind::Int(map_index), "");
        query.push(&format!(
            " WHERE ti.dag_id = {d} AND ti.task_id = {t} AND ti.map_index = {m}"
        ));
        if let Some(before) = before {
            let p = query.param(Bind::Text(time_param(before)), "timestamptz");
            query.push(&format!(" AND dr.logical_date < {p}"));
        }
        if let Some(state) = state {
            let p = query.param(Bind::Text(state.to_owned()), "");
            query.push(&format!(" AND ti.state = {p}"));
        }
        query.push(" ORDER BY dr.logical_date DESC LIMIT 1");
        let rows = query.fetch_all(self).await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        Ok(Some(PreviousTaskInstance {
            task_id: row.try_get("task_id")?,
            dag_id: row.try_get("dag_id")?,
            run_id: row.try_get("run_id")?,
            logical_date: parse_opt_time(row.try_get("logical_date")?)?,
            start_date: parse_opt_time(row.try_get("start_date")?)?,
            end_date: parse_opt_time(row.try_get("end_date")?)?,
            state: row.try_get("state")?,
            try_number: row.try_get("try_number")?,
            map_index: row.try_get("map_index")?,
            duration: row.try_get("duration")?,
        }))
    }

    /// The dates of the newest successful run of the task instance's DAG before its own
    /// run's logical date; `None` when the task instance is missing, its run has no logical
    /// date, or there is no such run (`previous-successful-dagrun`).
    pub async fn previous_successful_run(&self, id: Uuid) -> Result<Option<RunDates>, StoreError> {
        let row = self.read_optional(|| sqlx::query(sql!(
            self.backend,
            "SELECT ti.dag_id, CAST(dr.logical_date AS TEXT) AS logical_date \
             FROM task_instance ti JOIN dag_run dr ON ti.dag_id = dr.dag_id AND ti.run_id = dr.run_id \
             WHERE ti.id = $1::uuid"
        ))
        .bind(uuid_param(id))
        )
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let dag_id: String = row.try_get("dag_id")?;
        let Some(logical_date) = parse_opt_time(row.try_get("logical_date")?)? else {
            return Ok(None);
        };
        let row = self.read_optional(|| sqlx::query(sql!(
            self.backend,
            "SELECT CAST(data_interval_start AS TEXT) AS data_interval_start, \
             CAST(data_interval_end AS TEXT) AS data_interval_end, \
             CAST(start_date AS TEXT) AS start_date, CAST(end_date AS TEXT) AS end_date \
             FROM dag_run WHERE dag_id = $1 AND logical_date < $2::timestamptz AND state = 'success' \
             ORDER BY logical_date DESC LIMIT 1"
        ))
        .bind(dag_id.as_str())
        .bind(time_param(logical_date))
        )
        .await?;
        row.map(|row| {
            Ok(RunDates {
                data_interval_start: parse_opt_time(row.try_get("data_interval_start")?)?,
                data_interval_end: parse_opt_time(row.try_get("data_interval_end")?)?,
                start_date: parse_opt_time(row.try_get("start_date")?)?,
                end_date: parse_opt_time(row.try_get("end_date")?)?,
            })
        })
        .transpose()
    }

    /// Where a task instance is: its DAG, run and task.
    pub async fn task_instance_place(&self, id: Uuid) -> Result<Option<TiPlace>, StoreError> {
        let row = self
            .read_optional(|| {
                sqlx::query(sql!(
                    self.backend,
                    "SELECT dag_id, run_id, task_id FROM task_instance WHERE id = $1::uuid"
                ))
                .bind(uuid_param(id))
            })
            .await?;
        row.map(|row| {
            Ok(TiPlace {
                dag_id: row.try_get("dag_id")?,
                run_id: row.try_get("run_id")?,
                task_id: row.try_get("task_id")?,
            })
        })
        .transpose()
    }

    /// Which of these assets are active (`asset_active` holds their name and URI).
    pub async fn active_assets(
        &self,
        keys: &[AssetKey],
    ) -> Result<Vec<(String, String)>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = Builder::new(self.backend, "SELECT name, uri FROM asset_active WHERE ");
        let mut terms = Vec::with_capacity(keys.len());
        for key in keys {
            let n = query.param(Bind::Text(key.name.clone()), "");
            let u = query.param(Bind::Text(key.uri.clone()), "");
            terms.push(format!("(name = {n} AND uri = {u})"));
        }
        query.push(&terms.join(" OR "));
        query
            .fetch_all(self)
            .await?
            .iter()
            .map(|row| Ok((row.try_get("name")?, row.try_get("uri")?)))
            .collect()
    }
}
