//! Human-in-the-loop details on Airflow's `hitl_detail` table, with the effects
//! of Airflow's Execution API (`routes/hitl.py`): one row per task instance,
//! JSON columns as SQLAlchemy writes them (`json.dumps` text; Python `None`
//! set on a JSON column is the JSON text `null`, not SQL NULL).

use sqlx::Row as _;
use sqlx::any::AnyRow;
use time::OffsetDateTime;
use uuid::Uuid;

use super::sql::{
    json_or_none, parse_opt_time, parse_time, parse_uuid, sql, time_param, uuid_param,
};
use super::{Store, StoreError, now};

/// A request for input, as a task creates it. JSON fields are `json.dumps` text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewHitlDetail {
    /// The options offered (a JSON list).
    pub options: String,
    /// Subject.
    pub subject: String,
    /// Body.
    pub body: Option<String>,
    /// Default options (a JSON list, or `null`).
    pub defaults: String,
    /// Whether several options may be chosen.
    pub multiple: bool,
    /// Parameters (a JSON object).
    pub params: String,
    /// Users who may respond (a JSON list of `{"id", "name"}`).
    pub assignees: String,
}

/// A `hitl_detail` row. JSON fields are the stored text (`None`: SQL NULL or JSON `null`).
#[derive(Clone, Debug, PartialEq)]
pub struct HitlDetail {
    /// The task instance.
    pub ti_id: Uuid,
    /// Options.
    pub options: String,
    /// Subject.
    pub subject: String,
    /// Body.
    pub body: Option<String>,
    /// Defaults.
    pub defaults: Option<String>,
    /// Several options allowed (`None`: SQL NULL).
    pub multiple: Option<bool>,
    /// Parameters.
    pub params: Option<String>,
    /// Assignees.
    pub assignees: Option<String>,
    /// When the request was made.
    pub created_at: OffsetDateTime,
    /// When it was answered.
    pub responded_at: Option<OffsetDateTime>,
    /// Who answered (`{"id", "name"}`).
    pub responded_by: Option<String>,
    /// The options chosen.
    pub chosen_options: Option<String>,
    /// Parameters given with the answer.
    pub params_input: Option<String>,
}

/// What `POST /hitlDetails/{id}` did.
#[derive(Clone, Debug, PartialEq)]
pub enum HitlUpsert {
    /// The row now stored.
    Stored(Box<HitlDetail>),
    /// No task instance with that id (Airflow fails on the foreign key).
    NoTaskInstance,
}

/// What `PATCH /hitlDetails/{id}` did.
#[derive(Clone, Debug, PartialEq)]
pub enum HitlRespond {
    /// Answered; the row now stored.
    Responded(Box<HitlDetail>),
    /// No row for that task instance.
    NotFound,
    /// Already answered.
    AlreadyResponded,
}

macro_rules! select_hitl {
    ($tail:literal) => {
        concat!(
            "SELECT CAST(ti_id AS TEXT) AS ti_id, CAST(options AS TEXT) AS options, subject, \
             body, CAST(defaults AS TEXT) AS defaults, CAST(multiple AS INTEGER) AS multiple, \
             CAST(params AS TEXT) AS params, CAST(assignees AS TEXT) AS assignees, \
             CAST(created_at AS TEXT) AS created_at, CAST(responded_at AS TEXT) AS responded_at, \
             CAST(responded_by AS TEXT) AS responded_by, \
             CAST(chosen_options AS TEXT) AS chosen_options, \
             CAST(params_input AS TEXT) AS params_input FROM hitl_detail ",
            $tail
        )
    };
}

impl Store {
    /// Reads a task instance's HITL detail.
    pub async fn hitl_detail(&self, ti_id: Uuid) -> Result<Option<HitlDetail>, StoreError> {
        let row = self
            .read_optional(|| {
                sqlx::query(sql!(self.backend, select_hitl!("WHERE ti_id = $1::uuid")))
                    .bind(uuid_param(ti_id))
            })
            .await?;
        row.as_ref().map(hitl_from_row).transpose()
    }

    /// Creates the detail if there is none; clears its response if it has one;
    /// otherwise leaves it. Returns the stored row.
    pub async fn upsert_hitl_detail(
        &self,
        ti_id: Uuid,
        new: &NewHitlDetail,
    ) -> Result<HitlUpsert, StoreError> {
        let mut tx = self.begin_write().await?;
        let existing = sqlx::query(sql!(
            self.backend,
            select_hitl!("WHERE ti_id = $1::uuid FOR UPDATE")
        ))
        .bind(uuid_param(ti_id))
        .fetch_optional(&mut *tx)
        .await?
        .as_ref()
        .map(hitl_from_row)
        .transpose()?;
        match existing {
            None => {
                let ti: i64 = sqlx::query(sql!(
                    self.backend,
                    "SELECT COUNT(*) FROM task_instance WHERE id = $1::uuid"
                ))
                .bind(uuid_param(ti_id))
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
                if ti == 0 {
                    return Ok(HitlUpsert::NoTaskInstance);
                }
                sqlx::query(sql!(
                    self.backend,
                    "INSERT INTO hitl_detail (ti_id, options, subject, body, defaults, multiple, \
                     params, assignees, created_at, params_input) VALUES ($1::uuid, $2::json, $3, \
                     $4, $5::json, $6, $7::json, $8::json, $9::timestamptz, '{}')"
                ))
                .bind(uuid_param(ti_id))
                .bind(&new.options)
                .bind(&new.subject)
                .bind(new.body.as_deref())
                .bind(&new.defaults)
                .bind(new.multiple)
                .bind(&new.params)
                .bind(&new.assignees)
                .bind(time_param(now()))
                .execute(&mut *tx)
                .await?;
            }
            Some(row) if row.responded_at.is_some() => {
                // SQLAlchemy writes only what changed: a JSON column set to
                // None becomes the text `null` unless it already read as None.
                sqlx::query(sql!(
                    self.backend,
                    "UPDATE hitl_detail SET responded_at = NULL, \
                     responded_by = CASE WHEN responded_by IS NULL THEN NULL ELSE 'null'::json END, \
                     chosen_options = CASE WHEN chosen_options IS NULL THEN NULL ELSE 'null'::json END, \
                     params_input = '{}' WHERE ti_id = $1::uuid"
                ))
                .bind(uuid_param(ti_id))
                .execute(&mut *tx)
                .await?;
            }
            Some(_) => {}
        }
        let stored = sqlx::query(sql!(self.backend, select_hitl!("WHERE ti_id = $1::uuid")))
            .bind(uuid_param(ti_id))
            .fetch_one(&mut *tx)
            .await?;
        let stored = hitl_from_row(&stored)?;
        tx.commit().await?;
        Ok(HitlUpsert::Stored(Box::new(stored)))
    }

    /// Records the answer (`chosen_options` a JSON list, `params_input` a JSON
    /// object, both `json.dumps` text) unless there is one already.
    pub async fn respond_hitl(
        &self,
        ti_id: Uuid,
        chosen_options: &str,
        params_input: &str,
    ) -> Result<HitlRespond, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(sql!(
            self.backend,
            "UPDATE hitl_detail SET responded_at = $2::timestamptz, chosen_options = $3::json, \
             params_input = $4::json WHERE ti_id = $1::uuid AND responded_at IS NULL"
        ))
        .bind(uuid_param(ti_id))
        .bind(time_param(now()))
        .bind(chosen_options)
        .bind(params_input)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(sql!(self.backend, select_hitl!("WHERE ti_id = $1::uuid")))
            .bind(uuid_param(ti_id))
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(HitlRespond::NotFound);
        };
        if done.rows_affected() == 0 {
            return Ok(HitlRespond::AlreadyResponded);
        }
        let row = hitl_from_row(&row)?;
        tx.commit().await?;
        Ok(HitlRespond::Responded(Box::new(row)))
    }
}

fn hitl_from_row(row: &AnyRow) -> Result<HitlDetail, StoreError> {
    let multiple: Option<i64> = row.try_get("multiple")?;
    Ok(HitlDetail {
        ti_id: parse_uuid(&row.try_get::<String, _>("ti_id")?)?,
        options: row.try_get("options")?,
        subject: row.try_get("subject")?,
        body: row.try_get("body")?,
        defaults: json_or_none(row.try_get("defaults")?),
        multiple: multiple.map(|m| m != 0),
        params: json_or_none(row.try_get("params")?),
        assignees: json_or_none(row.try_get("assignees")?),
        created_at: parse_time(&row.try_get::<String, _>("created_at")?)?,
        responded_at: parse_opt_time(row.try_get("responded_at")?)?,
        responded_by: json_or_none(row.try_get("responded_by")?),
        chosen_options: json_or_none(row.try_get("chosen_options")?),
        params_input: json_or_none(row.try_get("params_input")?),
    })
}
