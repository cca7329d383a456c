//! DAG runs and DAGs on Airflow's `dag_run`, `dag` and `dag_tag` tables: the
//! reads of `/dag-runs/...` and `/dags/{dag_id}` (Airflow 3.3.2's
//! `execution_api/routes/dag_runs.py` and `dags.py`).

use sqlx::Row as _;
use time::OffsetDateTime;

use super::sql::{Backend, parse_opt_time, sql, strip_casts, time_param};
use super::task_instances::{dag_run_columns, dag_run_from_row};
use super::{DagRun, Store, StoreError};

/// A DAG as stored (`dag` with its `dag_tag` names).
#[derive(Clone, Debug, PartialEq)]
pub struct Dag {
    /// DAG id.
    pub dag_id: String,
    /// Whether the DAG is paused.
    pub is_paused: bool,
    /// Its bundle.
    pub bundle_name: Option<String>,
    /// The bundle's version.
    pub bundle_version: Option<String>,
    /// Its file, relative to the bundle.
    pub relative_fileloc: Option<String>,
    /// Owners, comma-separated.
    pub owners: Option<String>,
    /// Tag names, sorted.
    pub tags: Vec<String>,
    /// The next scheduled logical date.
    pub next_dagrun: Option<OffsetDateTime>,
}

/// The filters of `GET /dag-runs/count` (each empty list: no filter).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DagRunFilter {
    /// Logical dates to match.
    pub logical_dates: Vec<OffsetDateTime>,
    /// Run ids to match.
    pub run_ids: Vec<String>,
    /// States to match.
    pub states: Vec<String>,
}

impl Store {
    /// One DAG run.
    pub async fn dag_run(&self, dag_id: &str, run_id: &str) -> Result<Option<DagRun>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            dag_run_columns!(),
            " FROM dag_run WHERE dag_id = $1 AND run_id = $2"
        ))
        .bind(dag_id)
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(dag_run_from_row).transpose()
    }

    /// A DAG run's state: `None` if there is no such run, `Some(None)` for a NULL state.
    pub async fn dag_run_state(
        &self,
        dag_id: &str,
        run_id: &str,
    ) -> Result<Option<Option<String>>, StoreError> {
        let row = sqlx::query("SELECT state FROM dag_run WHERE dag_id = $1 AND run_id = $2")
            .bind(dag_id)
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| row.try_get::<Option<String>, _>(0))
            .transpose()
            .map_err(Into::into)
    }

    /// How many runs of the DAG match every non-empty filter.
    pub async fn count_dag_runs(
        &self,
        dag_id: &str,
        filter: &DagRunFilter,
    ) -> Result<i64, StoreError> {
        let mut text = String::from("SELECT COUNT(*) FROM dag_run WHERE dag_id = $1");
        let mut n = 1;
        let mut list = |column: &str, len: usize, cast: &str| {
            if len == 0 {
                return;
            }
            let marks: Vec<String> = (0..len)
                .map(|_| {
                    n += 1;
                    format!("${n}{cast}")
                })
                .collect();
            text.push_str(&format!(" AND {column} IN ({})", marks.join(", ")));
        };
        list("logical_date", filter.logical_dates.len(), "::timestamptz");
        list("run_id", filter.run_ids.len(), "");
        list("state", filter.states.len(), "");
        if self.backend == Backend::Sqlite {
            text = strip_casts(&text);
        }
        let mut query = sqlx::query(sqlx::AssertSqlSafe(text)).bind(dag_id);
        for date in &filter.logical_dates {
            query = query.bind(time_param(*date));
        }
        for value in filter.run_ids.iter().chain(&filter.states) {
            query = query.bind(value.clone());
        }
        Ok(query.fetch_one(&self.pool).await?.try_get(0)?)
    }

    /// The newest run of the DAG whose logical date is before `before`, in
    /// `state` if given (Airflow's `get_previous_dagrun`).
    pub async fn previous_dag_run(
        &self,
        dag_id: &str,
        before: OffsetDateTime,
        state: Option<&str>,
    ) -> Result<Option<DagRun>, StoreError> {
        let row = sqlx::query(sql!(
            self.backend,
            concat!(
                "SELECT ",
                dag_run_columns!(),
                " FROM dag_run WHERE dag_id = $1 AND logical_date < $2::timestamptz \
                 AND ($3 IS NULL OR state = $3) ORDER BY logical_date DESC LIMIT 1"
            )
        ))
        .bind(dag_id)
        .bind(time_param(before))
        .bind(state)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(dag_run_from_row).transpose()
    }

    /// A DAG's metadata and tags (`GET /dags/{dag_id}`).
    pub async fn dag(&self, dag_id: &str) -> Result<Option<Dag>, StoreError> {
        let row = sqlx::query(
            "SELECT dag_id, CASE WHEN is_paused THEN 1 ELSE 0 END AS is_paused, bundle_name, bundle_version, relative_fileloc, owners, \
             CAST(next_dagrun AS TEXT) AS next_dagrun FROM dag WHERE dag_id = $1",
        )
        .bind(dag_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut tags: Vec<String> = sqlx::query("SELECT name FROM dag_tag WHERE dag_id = $1")
            .bind(dag_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| row.try_get::<String, _>(0))
            .collect::<Result<_, _>>()?;
        // Python's `sorted` of str: by code point, as Rust's `Ord` for `str`.
        tags.sort();
        Ok(Some(Dag {
            dag_id: row.try_get("dag_id")?,
            is_paused: row.try_get::<i64, _>("is_paused")? != 0,
            bundle_name: row.try_get("bundle_name")?,
            bundle_version: row.try_get("bundle_version")?,
            relative_fileloc: row.try_get("relative_fileloc")?,
            owners: row.try_get("owners")?,
            tags,
            next_dagrun: parse_opt_time(row.try_get("next_dagrun")?)?,
        }))
    }
}
