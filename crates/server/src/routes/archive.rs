//! `POST /v1/admin/archive`: run the archival job now ([`crate::archive::run_job`]).

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use veritrail_api::{ArchiveResponse, ArchivedBundles, ErrorBody};

use crate::AppState;
use crate::auth::Role;
use crate::error::{ApiError, InvalidEntry, NotFound};
use crate::openapi::{AccessErrors, InternalError, TimeoutError};
use crate::query::Params;

/// The body of `POST /v1/admin/archive` (optional).
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ArchiveRequest {
    /// Archive what has expired by this time (RFC 3339, not in the future); default: now.
    #[schema(example = "2026-11-30T00:00:00Z", format = DateTime)]
    until: Option<String>,
}

/// `POST /v1/admin/archive`
#[utoipa::path(
    post,
    path = "/v1/admin/archive",
    tag = "records",
    summary = "Archive, verify and purge what has expired, now",
    description = "Runs the archival job of a server started with `--archive-to`: plans \
retention under `--retention-policy` and the legal holds in force, writes each run of expired \
bundles to an archive (bundles, proving hash tiles, checkpoint, sealed payloads, signed \
manifest), reads it back and verifies it, appends an `x-veritrail.archive_purge` record, and \
only then purges the bundles' entries and payloads. Answers once done. Role: `admin`.",
    request_body(content = ArchiveRequest, content_type = "application/json",
        description = "Optional: `{}` or `{\"until\": \"<RFC 3339>\"}`; none means now"),
    responses(
        (status = 200, description = "The run's archives", body = ArchiveResponse),
        (status = 400, description = "`invalid_entry`: not JSON; `invalid_parameter`: a bad \
`until`", body = ErrorBody),
        AccessErrors,
        (status = 404, description = "`not_found`: the server archives nothing (no \
`--archive-to`), or no checkpoint yet", body = ErrorBody),
        (status = 422, description = "`in_the_future`: `until` is later than now", body = ErrorBody),
        TimeoutError,
        InternalError,
        (status = 503, description = "`index_catching_up`: retry", body = ErrorBody),
    ),
    security(("bearer" = ["admin"]))
)]
pub(crate) async fn archive(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let caller = state.auth.authorize(&headers, Role::Admin)?;
    Params::parse(query.as_deref(), &[])?;
    let job = state.archive.clone().ok_or(NotFound::NoArchive)?;
    let body = body.map_err(|e| ApiError::InvalidEntry(InvalidEntry::Unreadable(e)))?;
    let request: ArchiveRequest = if body.is_empty() {
        ArchiveRequest::default()
    } else {
        serde_json::from_value(crate::body::json_bytes(&body)?)
            .map_err(|_| ApiError::param("until", "give {} or {\"until\": \"<RFC 3339>\"}"))?
    };
    let now = OffsetDateTime::now_utc();
    let until = match &request.until {
        None => now,
        Some(text) => OffsetDateTime::parse(text, &Rfc3339)
            .map_err(|e| ApiError::param("until", format!("not an RFC 3339 time: {e}")))?,
    };
    if until > now {
        return Err(ApiError::InTheFuture {
            name: "until",
            value: request.until.unwrap_or_default(),
        });
    }
    let report = crate::archive::run_job(&state, &job, until, caller).await?;
    Ok(Json(ArchiveResponse {
        archived: report
            .archived
            .into_iter()
            .map(|a| ArchivedBundles {
                first_bundle: a.bundles.start,
                end_bundle: a.bundles.end,
                location: a.location,
                manifest_sha256: a.manifest_sha256,
                record: a.record,
                bytes: a.bytes,
            })
            .collect(),
        held: report.held,
        already_purged: report.already_purged,
    })
    .into_response())
}
