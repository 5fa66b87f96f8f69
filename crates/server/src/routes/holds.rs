//! Legal holds: `POST /v1/admin/holds` places one, `POST /v1/admin/holds/{hold}/release`
//! releases it, `GET /v1/admin/holds` lists those in force. Each placement and release is a
//! record the server appends (`x-veritrail.legal_hold`, `x-veritrail.legal_hold_released`,
//! [`veritrail_records::hold`]) and answers only once it is durable; the holds in force are
//! read back from those records, so they survive anything the log survives.

use axum::Json;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Map, Value};
use veritrail_api::{ErrorBody, HoldInForce, HoldReleased, HoldsResponse};
use veritrail_records::hold::{HOLD_ACTION, RELEASE_ACTION, Scope};

use crate::AppState;
use crate::access::append_server_record;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, Internal, NotFound};
use crate::openapi::{AccessErrors, InternalError, TimeoutError};
use crate::query::Params;
use crate::routes::ledger::latest;

/// The body of `POST /v1/admin/holds`: exactly one scope, and why.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(untagged, deny_unknown_fields)]
pub(crate) enum HoldRequest {
    /// Every record of a conversation.
    Conversation {
        /// The conversation.
        #[schema(min_length = 1, max_length = 256, example = "c-9")]
        conversation_id: String,
        /// Why (1 to 1024 characters); recorded in the hold record.
        #[schema(min_length = 1, max_length = 1024, example = "litigation 2026-CV-114")]
        reason: String,
    },
    /// Every record of an actor (`actor.id`).
    Actor {
        /// The actor.
        #[schema(min_length = 1, max_length = 256, example = "triage-agent")]
        actor: String,
        /// Why.
        #[schema(min_length = 1, max_length = 1024)]
        reason: String,
    },
    /// Every record about a resource (`resource.id`).
    Resource {
        /// The resource.
        #[schema(min_length = 1, max_length = 256, example = "P-0042")]
        resource: String,
        /// Why.
        #[schema(min_length = 1, max_length = 1024)]
        reason: String,
    },
    /// Every entry of an index range, raw entries included.
    Range {
        /// The range.
        range: HoldRange,
        /// Why.
        #[schema(min_length = 1, max_length = 1024)]
        reason: String,
    },
}

/// An index range `first..end`.
#[derive(Debug, serde::Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HoldRange {
    /// The first index held.
    #[schema(example = 0, maximum = 9007199254740991_u64)]
    first: u64,
    /// The first index after the range (greater than `first`).
    #[schema(example = 1000, maximum = 9007199254740991_u64)]
    end: u64,
}

/// The body of `POST /v1/admin/holds/{hold}/release`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReleaseRequest {
    /// Why (1 to 1024 characters); recorded in the release record.
    #[schema(min_length = 1, max_length = 1024, example = "case settled")]
    reason: String,
}

fn check_reason(reason: &str) -> Result<(), ApiError> {
    if (1..=1024).contains(&reason.chars().count()) {
        Ok(())
    } else {
        Err(ApiError::param("reason", "1 to 1024 characters"))
    }
}

/// Appends a hold or release record by `caller` and waits until it is durable; its index.
async fn append(
    state: &AppState,
    action: &str,
    caller: Option<Caller>,
    details: Map<String, Value>,
) -> Result<u64, ApiError> {
    append_server_record(
        state,
        action,
        caller,
        veritrail_records::ActorType::Admin,
        details,
    )
    .await
}

/// The holds in force at the latest checkpoint.
async fn in_force(state: &AppState) -> Result<(veritrail_records::hold::Holds, u64), ApiError> {
    let size = latest(state)?.size();
    let (ledger, index) = (state.ledger.clone(), state.record_index.clone());
    let holds = tokio::task::spawn_blocking(move || {
        crate::holds::in_force(&ledger, index.as_deref(), size)
    })
    .await
    .map_err(|source| Internal::Task {
        what: "holds",
        source,
    })??;
    Ok((holds, size))
}

/// `POST /v1/admin/holds`
#[utoipa::path(
    post,
    path = "/v1/admin/holds",
    tag = "records",
    summary = "Place a legal hold, recorded in the log",
    description = "Appends an `x-veritrail.legal_hold` record naming the scope (a conversation, \
an actor, a resource, or an index range), by whom and why, and answers once it is durable. \
While the hold is in force nothing it covers is purged by retention or archival. The hold is \
named by the index of its record. Role: `admin`.",
    request_body(content = HoldRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Placed", body = HoldInForce),
        (status = 400, description = "`invalid_entry`: not JSON; `invalid_parameter`: not \
exactly one scope and a reason", body = ErrorBody),
        (status = 422, description = "`invalid_record`: a range whose `first` is not below its \
`end`", body = ErrorBody),
        AccessErrors,
        TimeoutError,
        InternalError,
        (status = 503, description = "`overloaded`, `store_unavailable`", body = ErrorBody),
        (status = 507, description = "`insufficient_storage`", body = ErrorBody),
    ),
    security(("bearer" = ["admin"]))
)]
pub(crate) async fn place(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let caller = state.auth.authorize(&headers, Role::Admin)?;
    Params::parse(query.as_deref(), &[])?;
    let mut value = crate::body::json(body)?;
    // JSON has one number type: `33.0` is the integer 33 (as JSON Schema says).
    if let Some(range) = value.get_mut("range").and_then(Value::as_object_mut) {
        for bound in ["first", "end"] {
            if let Some(number) = range.get_mut(bound)
                && let Some(float) = number.as_f64()
                && !number.is_u64()
                && float.fract() == 0.0
                && (0.0..=veritrail_records::MAX_INTEGER as f64).contains(&float)
            {
                *number = Value::from(float as u64);
            }
        }
    }
    let shape = "give exactly one of conversation_id, actor, resource (strings) or range \
({\"first\": n, \"end\": m}), and reason (a string)";
    let request: HoldRequest =
        serde_json::from_value(value).map_err(|_| ApiError::param("scope", shape))?;
    let (scope, reason) = match request {
        HoldRequest::Conversation {
            conversation_id,
            reason,
        } => (Scope::Conversation(conversation_id), reason),
        HoldRequest::Actor { actor, reason } => (Scope::Actor(actor), reason),
        HoldRequest::Resource { resource, reason } => (Scope::Resource(resource), reason),
        HoldRequest::Range { range, reason } => {
            let max = veritrail_records::MAX_INTEGER;
            if range.first > max || range.end > max {
                return Err(ApiError::param(
                    "range",
                    format!("first and end are at most {max}"),
                ));
            }
            if range.first >= range.end {
                return Err(ApiError::InvalidRecord {
                    problems: vec![veritrail_api::FieldProblem {
                        field: "range".into(),
                        problem: "first must be below end".into(),
                    }],
                });
            }
            (
                Scope::Range {
                    first: range.first,
                    end: range.end,
                },
                reason,
            )
        }
    };
    check_reason(&reason)?;
    // The same checks a reader of the record applies.
    let scope =
        Scope::from_json(&scope.to_json()).map_err(|e| ApiError::param("scope", e.to_string()))?;
    let mut details = Map::new();
    details.insert("scope".into(), scope.to_json());
    details.insert("reason".into(), Value::String(reason.clone()));
    let hold = append(&state, HOLD_ACTION, caller, details).await?;
    tracing::info!(hold, scope = %scope.to_json(), "legal hold placed");
    metrics::counter!("veritrail_legal_holds_placed_total").increment(1);
    Ok(Json(HoldInForce {
        hold,
        scope: scope.to_json(),
        reason,
    })
    .into_response())
}

/// `POST /v1/admin/holds/{hold}/release`
#[utoipa::path(
    post,
    path = "/v1/admin/holds/{hold}/release",
    tag = "records",
    summary = "Release a legal hold, recorded in the log",
    description = "Appends an `x-veritrail.legal_hold_released` record naming the hold, by whom \
and why, once the hold is found in force. What it covered then follows its retention again. \
Role: `admin`.",
    params(
        ("hold" = u64, Path, minimum = 0, example = 17,
            description = "The hold: the index of the record that placed it"),
    ),
    request_body(content = ReleaseRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Released", body = HoldReleased),
        (status = 400, description = "`invalid_entry`, `invalid_parameter`", body = ErrorBody),
        AccessErrors,
        (status = 404, description = "`not_found`: no hold in force was placed at that index, \
or no checkpoint yet", body = ErrorBody),
        TimeoutError,
        InternalError,
        (status = 503, description = "`overloaded`, `store_unavailable`, `index_catching_up`", body = ErrorBody),
        (status = 507, description = "`insufficient_storage`", body = ErrorBody),
    ),
    security(("bearer" = ["admin"]))
)]
pub(crate) async fn release(
    State(state): State<AppState>,
    headers: HeaderMap,
    hold: Result<Path<u64>, PathRejection>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let caller = state.auth.authorize(&headers, Role::Admin)?;
    let Path(hold) = hold.map_err(|e| ApiError::param("hold", e.body_text()))?;
    Params::parse(query.as_deref(), &[])?;
    let request: ReleaseRequest = serde_json::from_value(crate::body::json(body)?)
        .map_err(|_| ApiError::param("reason", "give {\"reason\": \"…\"}"))?;
    check_reason(&request.reason)?;
    // A hold placed after the latest checkpoint is found once one covers it (a second).
    let (holds, _) = in_force(&state).await?;
    if !holds.is_active(hold) {
        return Err(NotFound::Hold { index: hold }.into());
    }
    let mut details = Map::new();
    details.insert("hold".into(), hold.into());
    details.insert("reason".into(), Value::String(request.reason));
    let release = append(&state, RELEASE_ACTION, caller, details).await?;
    tracing::info!(hold, release, "legal hold released");
    metrics::counter!("veritrail_legal_holds_released_total").increment(1);
    Ok(Json(HoldReleased { hold, release }).into_response())
}

/// `GET /v1/admin/holds`
#[utoipa::path(
    get,
    path = "/v1/admin/holds",
    tag = "records",
    summary = "The legal holds in force",
    description = "Read from the log's hold and release records up to the latest checkpoint. \
Role: `audit` or `admin`.",
    responses(
        (status = 200, description = "The holds in force", body = HoldsResponse),
        (status = 400, description = "`invalid_parameter`", body = ErrorBody),
        AccessErrors,
        (status = 404, description = "`not_found`: no checkpoint yet", body = ErrorBody),
        TimeoutError,
        InternalError,
        (status = 503, description = "`index_catching_up`: retry", body = ErrorBody),
    ),
    security(("bearer" = ["audit"]))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    state.auth.authorize(&headers, Role::Audit)?;
    Params::parse(query.as_deref(), &[])?;
    let (holds, size) = in_force(&state).await?;
    let holds = holds
        .active()
        .map(|h| HoldInForce {
            hold: h.index,
            scope: h.scope.to_json(),
            reason: h.reason.clone(),
        })
        .collect();
    Ok(Json(HoldsResponse { holds, size }).into_response())
}
