//! `/asset-events/...`: asset events by asset and by alias (Airflow's
//! `routes/asset_events.py`), each with the DAG runs it created.

use actix_web::http::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use super::ApiError;
use super::assets::{AssetResponse, raw_json};
use crate::store::{self, timestamp};

/// The routes.
#[policy_macros::execution_router(parent = super::execution, prefix = "/asset-events", scopes = ["ti:running"])]
pub mod routes {
    use actix_web::http::StatusCode;
    use actix_web::{HttpResponse, web};
    use policy_macros::execution_route;
    use serde_json::json;

    use super::{AliasEventsQuery, AssetEventsQuery, AssetEventsResponse};
    use crate::api::ApiError;
    use crate::store::{EventQuery, EventSource, Store};

    /// Get the events of an asset by name and/or URI: `AssetEventsResponse`.
    /// Both parameters are required; at least one must be non-empty (else 400).
    #[execution_route(get, "/by-asset", responses = [200 => AssetEventsResponse])]
    pub async fn get_asset_event_by_asset_name_uri(
        store: web::Data<Store>,
        query: web::Query<AssetEventsQuery>,
    ) -> Result<HttpResponse, ApiError> {
        let name = query.name.clone().filter(|n| !n.is_empty());
        let uri = query.uri.clone().filter(|u| !u.is_empty());
        let source = match (name, uri) {
            (Some(name), Some(uri)) => EventSource::NameAndUri(name, uri),
            (None, Some(uri)) => EventSource::Uri(uri),
            (Some(name), None) => EventSource::Name(name),
            (None, None) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    json!({
                        "reason": "Missing parameter",
                        "message": "name and uri cannot both be None",
                    }),
                ));
            }
        };
        let filters = query.filters.parse()?;
        let events = store
            .asset_events(&EventQuery {
                source,
                after: filters.after,
                before: filters.before,
                ascending: filters.ascending,
                limit: filters.limit,
            })
            .await?;
        Ok(HttpResponse::Ok().json(AssetEventsResponse::from_store(events)?))
    }

    /// Get the events recorded through an asset alias: `AssetEventsResponse`.
    #[execution_route(get, "/by-asset-alias", responses = [200 => AssetEventsResponse])]
    pub async fn get_asset_event_by_asset_alias(
        store: web::Data<Store>,
        query: web::Query<AliasEventsQuery>,
    ) -> Result<HttpResponse, ApiError> {
        let filters = query.filters.parse()?;
        let events = store
            .asset_events(&EventQuery {
                source: EventSource::Alias(query.name.clone()),
                after: filters.after,
                before: filters.before,
                ascending: filters.ascending,
                limit: filters.limit,
            })
            .await?;
        Ok(HttpResponse::Ok().json(AssetEventsResponse::from_store(events)?))
    }
}

/// `/by-asset`'s query: `name` and `uri` must both be present (either may be empty).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
pub struct AssetEventsQuery {
    /// The asset's name.
    #[serde(deserialize_with = "super::fields::required_nullable")]
    #[schemars(required)]
    pub name: Option<String>,
    /// The asset's URI.
    #[serde(deserialize_with = "super::fields::required_nullable")]
    #[schemars(required)]
    pub uri: Option<String>,
    /// Time range, order and limit.
    #[serde(flatten)]
    pub filters: RawFilters,
}

/// `/by-asset-alias`'s query.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
pub struct AliasEventsQuery {
    /// The alias's name.
    pub name: String,
    /// Time range, order and limit.
    #[serde(flatten)]
    pub filters: RawFilters,
}

/// `after`, `before`, `ascending`, `limit` as sent (parsed by [`RawFilters::parse`],
/// so a bad one is a 422 naming the parameter).
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
pub struct RawFilters {
    /// Events at or after this time (ISO 8601 with an offset).
    pub after: Option<String>,
    /// Events at or before this time.
    pub before: Option<String>,
    /// Oldest first (default `true`).
    pub ascending: Option<String>,
    /// At most this many (`0`: no limit, as in Airflow).
    pub limit: Option<String>,
}

/// The parsed filters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filters {
    /// Lower bound.
    pub after: Option<OffsetDateTime>,
    /// Upper bound.
    pub before: Option<OffsetDateTime>,
    /// Order.
    pub ascending: bool,
    /// Limit.
    pub limit: Option<i64>,
}

fn invalid(param: &str, msg: String, kind: &str) -> ApiError {
    ApiError::validation(
        StatusCode::UNPROCESSABLE_ENTITY,
        vec!["query".into(), param.into()],
        msg,
        kind,
    )
}

/// An aware datetime as pydantic reads one: RFC 3339, `T` or a space between
/// date and time. A time without an offset is refused, as `AwareDatetime` does.
pub(crate) fn parse_aware(param: &str, text: &str) -> Result<OffsetDateTime, ApiError> {
    use time::format_description::well_known::Rfc3339;
    let normalized = match text.as_bytes().get(10) {
        Some(b' ') | Some(b't') => format!("{}T{}", &text[..10], &text[11..]),
        _ => text.to_owned(),
    };
    OffsetDateTime::parse(&normalized, &Rfc3339).map_err(|e| {
        invalid(
            param,
            format!("Input should be a valid datetime with a timezone offset: {e}"),
            "datetime_from_date_parsing",
        )
    })
}

/// A boolean as pydantic reads one from a query string.
fn parse_bool(param: &str, text: &str) -> Result<bool, ApiError> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "true" | "t" | "yes" | "y" | "on" => Ok(true),
        "0" | "false" | "f" | "no" | "n" | "off" => Ok(false),
        _ => Err(invalid(
            param,
            "Input should be a valid boolean, unable to interpret input".into(),
            "bool_parsing",
        )),
    }
}

impl RawFilters {
    /// Parses and checks the filters.
    pub fn parse(&self) -> Result<Filters, ApiError> {
        let limit = match self.limit.as_deref() {
            None => None,
            Some(text) => {
                let limit: i64 = text.trim().parse().map_err(|_| {
                    invalid(
                        "limit",
                        "Input should be a valid integer, unable to parse string as an integer"
                            .into(),
                        "int_parsing",
                    )
                })?;
                if limit < 0 {
                    // Airflow passes it to the database: SQLite ignores it,
                    // PostgreSQL fails (a 500).
                    return Err(invalid(
                        "limit",
                        "limit must not be negative".into(),
                        "greater_than_equal",
                    ));
                }
                // Airflow's `if limit:`: 0 means no limit.
                (limit > 0).then_some(limit)
            }
        };
        Ok(Filters {
            after: self
                .after
                .as_deref()
                .map(|t| parse_aware("after", t))
                .transpose()?,
            before: self
                .before
                .as_deref()
                .map(|t| parse_aware("before", t))
                .transpose()?,
            ascending: self
                .ascending
                .as_deref()
                .map(|t| parse_bool("ascending", t))
                .transpose()?
                .unwrap_or(true),
            limit,
        })
    }
}

/// `AssetEventsResponse`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct AssetEventsResponse {
    /// The events.
    pub asset_events: Vec<AssetEventResponse>,
}

/// `AssetEventResponse`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct AssetEventResponse {
    /// Event id.
    pub id: i64,
    /// When it happened.
    pub timestamp: String,
    /// Extra, a JSON object as stored.
    pub extra: Option<Box<RawValue>>,
    /// Its asset.
    pub asset: AssetResponse,
    /// DAG runs it created.
    pub created_dagruns: Vec<DagRunAssetReference>,
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

/// `DagRunAssetReference` (the SDK's model is `extra="forbid"`: no field more).
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct DagRunAssetReference {
    /// Run id.
    pub run_id: String,
    /// DAG id.
    pub dag_id: String,
    /// Logical date.
    pub logical_date: Option<String>,
    /// Start date. Airflow's model requires one and answers 500 for a run that
    /// has not started; this server gives the run's `run_after` instead, as
    /// Airflow's own converter for clients before 2026-04-06 does for `DagRun`.
    pub start_date: String,
    /// End date.
    pub end_date: Option<String>,
    /// State.
    pub state: String,
    /// Start of the data interval.
    pub data_interval_start: Option<String>,
    /// End of the data interval.
    pub data_interval_end: Option<String>,
    /// Partition key.
    pub partition_key: Option<String>,
}

impl AssetEventsResponse {
    /// The wire form of stored events.
    pub fn from_store(events: Vec<store::AssetEvent>) -> Result<AssetEventsResponse, ApiError> {
        let asset_events = events
            .into_iter()
            .map(|event| {
                Ok(AssetEventResponse {
                    id: event.id,
                    timestamp: timestamp(event.timestamp),
                    extra: raw_json(event.extra, "asset_event.extra")?,
                    asset: AssetResponse::from_store(event.asset)?,
                    created_dagruns: event
                        .created_dagruns
                        .into_iter()
                        .map(|run| DagRunAssetReference {
                            run_id: run.run_id,
                            dag_id: run.dag_id,
                            logical_date: run.logical_date.map(timestamp),
                            start_date: timestamp(run.start_date.unwrap_or(run.run_after)),
                            end_date: run.end_date.map(timestamp),
                            // `dag_run.state` is nullable in the schema only;
                            // Airflow creates every run `queued`.
                            state: run.state.unwrap_or_else(|| "queued".into()),
                            data_interval_start: run.data_interval_start.map(timestamp),
                            data_interval_end: run.data_interval_end.map(timestamp),
                            partition_key: run.partition_key,
                        })
                        .collect(),
                    source_task_id: event.source_task_id,
                    source_dag_id: event.source_dag_id,
                    source_run_id: event.source_run_id,
                    source_map_index: event.source_map_index,
                    partition_key: event.partition_key,
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        Ok(AssetEventsResponse { asset_events })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_as_pydantic_reads_them() {
        let raw = RawFilters {
            after: Some("2024-01-01T10:00:00+02:00".into()),
            before: Some("2024-01-02 00:00:00Z".into()),
            ascending: Some("False".into()),
            limit: Some("0".into()),
        };
        let f = raw.parse().unwrap();
        assert_eq!(timestamp(f.after.unwrap()), "2024-01-01T08:00:00.000000Z");
        assert_eq!(timestamp(f.before.unwrap()), "2024-01-02T00:00:00.000000Z");
        assert!(!f.ascending);
        assert_eq!(f.limit, None);
        assert!(RawFilters::default().parse().unwrap().ascending);
        for bad in [
            RawFilters {
                after: Some("2024-01-01T10:00:00".into()),
                ..RawFilters::default()
            },
            RawFilters {
                ascending: Some("maybe".into()),
                ..RawFilters::default()
            },
            RawFilters {
                limit: Some("-1".into()),
                ..RawFilters::default()
            },
            RawFilters {
                limit: Some("ten".into()),
                ..RawFilters::default()
            },
        ] {
            let err = bad.parse().unwrap_err();
            assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
        }
    }
}
