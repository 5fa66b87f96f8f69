//! Operations: liveness, readiness, Prometheus metrics and the OpenAPI document.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use veritrail_api::media::METRICS_CONTENT_TYPE;
use veritrail_api::{Health, HealthStatus};

use crate::AppState;
use crate::auth::Role;
use crate::error::ApiError;
use crate::openapi::{AccessErrors, TimeoutError};
use crate::publisher::Published;
use crate::routes::ledger::blocking;
use crate::routes::reply::typed;

/// `GET /healthz`: the process is up and its store can write.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Liveness: the process is up and its store can write",
    description = "`{\"status\":\"ok\"}`, or 503 `unavailable` with a `reason` while the \
last commit or the last checkpoint signing failed (a full disk, an I/O error); it turns \
back to 200 by itself once a write succeeds again. Public.",
    responses(
        (status = 200, description = "Alive and writing", body = Health),
        (status = 503, description = "The store cannot write", body = Health),
    )
)]
pub(crate) async fn healthz(State(state): State<AppState>) -> Response {
    let reason = store_write_failure(&state);
    let status = match reason {
        None => StatusCode::OK,
        Some(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    let health = Health {
        status: match reason {
            None => HealthStatus::Ok,
            Some(_) => HealthStatus::Unavailable,
        },
        tree_size: None,
        published_size: None,
        reason: reason.map(str::to_owned),
    };
    (status, Json(health)).into_response()
}

/// Why the store cannot write right now, if it cannot.
fn store_write_failure(state: &AppState) -> Option<&'static str> {
    if state.sequencer.is_out_of_space() {
        Some("the disk is full: appends are refused with 507 until space is freed")
    } else if !state.sequencer.is_healthy() {
        Some("the last commit failed: appends are refused with 503 until a write succeeds")
    } else if !state.signing_ok.load(std::sync::atomic::Ordering::Acquire) {
        Some("the last checkpoint could not be signed and stored (retried every second)")
    } else {
        None
    }
}

/// `GET /readyz`: the store is open and writable, a checkpoint is published and no stored
/// data was found corrupted.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "Readiness: the store answers, a checkpoint is published, the last commit worked, \
no stored data failed verification",
    description = "Public. Once a read has been refused as `corrupted` (an entry that does not \
hash to its leaf hash), `/readyz` answers 503 until the server restarts.",
    responses(
        (status = 200, description = "`ready`, with the committed and published tree sizes", body = Health),
        TimeoutError,
        (status = 503, description = "`unavailable`, with a `reason`: the store is not \
readable, stored data failed verification (`corrupted: ...`, naming the entry), no checkpoint \
is published yet, the server is shutting down, or the last commit failed", body = Health),
    )
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let probe = blocking(&state, |l| l.store().meta("origin")).await;
    let published = state.published.borrow().as_ref().map(Published::size);
    let reason = match (&probe, published, state.integrity.corrupted()) {
        (Err(e), _, _) => Some(format!("store not readable: {e}")),
        (_, _, Some(what)) => Some(format!(
            "corrupted: {what}; it is not served (check the store with `veritrail log verify`, restore it from a backup)"
        )),
        (_, None, _) => Some("no checkpoint published yet".into()),
        _ if state.sequencer.is_closed() => Some("shutting down".into()),
        _ => store_write_failure(&state).map(str::to_owned),
    };
    let tree_size = Some(state.ledger.tree_head().size);
    match reason {
        None => Json(Health {
            status: HealthStatus::Ready,
            tree_size,
            published_size: published,
            reason: None,
        })
        .into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: HealthStatus::Unavailable,
                tree_size,
                published_size: published,
                reason: Some(reason),
            }),
        )
            .into_response(),
    }
}

/// `GET /metrics` (admin): Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics (text exposition format 0.0.4)",
    description = "Role: `admin`.",
    responses(
        (status = 200, description = "The metrics", body = String,
            content_type = "text/plain; version=0.0.4"),
        AccessErrors,
        TimeoutError,
    ),
    security(("bearer" = ["admin"]))
)]
pub(crate) async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.auth.require(&headers, Role::Admin)?;
    if let Some(published) = state.published.borrow().as_ref() {
        let now = crate::clock::unix_now();
        metrics::gauge!("veritrail_checkpoint_age_seconds")
            .set(now.saturating_sub(published.signed_at) as f64);
    }
    let text = state
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    Ok(typed(METRICS_CONTENT_TYPE, None, text))
}

/// The OpenAPI document rendered once when the router is built, shared by every request.
#[derive(Clone, Debug)]
pub(crate) struct OpenApiJson(bytes::Bytes);

impl OpenApiJson {
    /// Renders `doc` as JSON, with the event schema of `POST /v1/records`
    /// ([`crate::openapi::with_event_schema`]).
    pub(crate) fn render(doc: &utoipa::openapi::OpenApi) -> Self {
        // An `OpenApi` is plain data (strings, maps, numbers): serialising it cannot fail.
        let value = serde_json::to_value(doc).unwrap_or_default();
        let value = crate::openapi::with_event_schema(value);
        OpenApiJson(serde_json::to_vec(&value).unwrap_or_default().into())
    }
}

/// `GET /openapi.json`: the OpenAPI document of this API.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    summary = "This OpenAPI document",
    description = "Derived from the router that serves these routes. Public.",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"),
    )
)]
pub(crate) async fn document(Extension(doc): Extension<OpenApiJson>) -> Response {
    typed("application/json", None, doc.0)
}
