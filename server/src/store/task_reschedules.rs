//! `task_reschedule`: when a sensor in reschedule mode was first rescheduled.

use sqlx::Row as _;
use time::OffsetDateTime;
use uuid::Uuid;

use super::sql::{parse_time, sql, uuid_param};
use super::{Store, StoreError};

impl Store {
    /// The `start_date` of a task instance's first reschedule (lowest id), if any.
    pub async fn first_reschedule_start(
        &self,
        id: Uuid,
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        let row = self
            .read_optional(|| {
                sqlx::query(sql!(
                    self.backend,
                    "SELECT CAST(start_date AS TEXT) FROM task_reschedule WHERE ti_id = $1::uuid \
             ORDER BY id ASC LIMIT 1"
                ))
                .bind(uuid_param(id))
            })
            .await?;
        row.map(|row| parse_time(&row.try_get::<String, _>(0)?))
            .transpose()
    }
}
