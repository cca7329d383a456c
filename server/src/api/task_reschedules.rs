//! `/task-reschedules/{task_instance_id}/start_date`: when a sensor in
//! reschedule mode was first rescheduled.

/// The routes (a plain router in Airflow: execution tokens, `ti:self`).
#[policy_macros::execution_router(parent = super::execution, prefix = "/task-reschedules")]
pub mod routes {
    use actix_web::{HttpResponse, web};
    use policy_macros::execution_route;
    use uuid::Uuid;

    use crate::api::ApiError;
    use crate::store::{Store, timestamp};

    /// Start date of the task instance's first reschedule: a datetime string,
    /// or `null` when it was never rescheduled. (The SDK's `try_number` query
    /// parameter is ignored, as in Airflow.)
    #[execution_route(get, "/{task_instance_id}/start_date", scopes = ["ti:self"], responses = [200 => Option<String>])]
    pub async fn start_date(
        store: web::Data<Store>,
        id: web::Path<Uuid>,
    ) -> Result<HttpResponse, ApiError> {
        let start = store.first_reschedule_start(*id).await?;
        Ok(HttpResponse::Ok().json(start.map(timestamp)))
    }
}
