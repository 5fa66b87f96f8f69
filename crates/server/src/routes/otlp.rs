//! OTLP/HTTP ingest: `POST /v1/traces` and `POST /v1/logs` ([`crate::otlp`] maps GenAI spans
//! and events to records). Answered `200` only once every accepted record is durable; records
//! that fail validation are reported with OTLP's `partial_success` (how many, and why).

use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message as _;
use veritrail_api::ErrorBody;

use crate::AppState;
use crate::auth::Role;
use crate::error::{ApiError, Internal, InvalidEntry};
use crate::openapi::{AccessErrors, Binary, InternalError, TimeoutError};
use crate::otlp::{self, Encoding, Mapped};
use crate::query::Params;
use crate::routes::append::commit;
use crate::routes::records::{prepare_event, store_payloads, submitter};
use crate::routes::reply::typed;

/// Which OTLP signal.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Signal {
    Traces,
    Logs,
}

/// `POST /v1/traces`
#[utoipa::path(
    post,
    path = "/v1/traces",
    tag = "otlp",
    summary = "OTLP/HTTP traces: GenAI spans become agent records",
    description = "An OTLP `ExportTraceServiceRequest`, protobuf (`application/x-protobuf`) or \
JSON (`application/json`), optionally `Content-Encoding: gzip`. Spans with a \
`gen_ai.operation.name` become records (`chat`, `text_completion`, `generate_content`, \
`invoke_agent` → `agent_response_generated`; `execute_tool` → `tool_invoked` and \
`tool_result`; `retrieval` → `data_accessed`); content attributes (`gen_ai.input.messages`, \
`gen_ai.output.messages`, tool arguments and results) become committed payloads, never \
metadata; other spans are ignored, or with `serve --otlp-keep-other-spans` each appended as a \
raw entry (the span alone with its resource and scope, in OTLP JSON). Answered once every \
accepted record (and kept span) is durable, all in one commit, in the request's encoding; \
records that fail validation (and kept spans above 65535 bytes) are counted in \
`partial_success`. At most 10,000 spans. Role: `append`.",
    request_body(content(
        (Binary = "application/x-protobuf"),
        (Object = "application/json"),
    )),
    responses(
        (status = 200, description = "`ExportTraceServiceResponse`, in the request's encoding", content(
            (Binary = "application/x-protobuf"),
            (Object = "application/json"),
        )),
        (status = 400, description = "`invalid_entry`: the body does not decode, or holds more \
than 10,000 spans; `invalid_parameter`", body = ErrorBody),
        AccessErrors,
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: neither protobuf nor JSON, or \
not gzip", body = ErrorBody),
        TimeoutError,
        InternalError,
        (status = 503, description = "`overloaded`, `shutting_down` or `store_unavailable`: \
retry; nothing was appended", body = ErrorBody),
        (status = 507, description = "`insufficient_storage`: nothing was appended", body = ErrorBody),
    ),
    security(("bearer" = ["append"]))
)]
pub(crate) async fn traces(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    ingest(&state, &headers, query.as_deref(), body, Signal::Traces).await
}

/// `POST /v1/logs`
#[utoipa::path(
    post,
    path = "/v1/logs",
    tag = "otlp",
    summary = "OTLP/HTTP logs: GenAI events become agent records",
    description = "An OTLP `ExportLogsServiceRequest` (protobuf or JSON, optionally gzip). Log \
records named `gen_ai.user.message` → `user_message_received`, `gen_ai.choice` or \
`gen_ai.assistant.message` → `agent_response_generated`, `gen_ai.tool.message` → \
`tool_result`, their body a committed payload; others are ignored. Answered once every \
accepted record is durable; rejected ones are counted in `partial_success`. At most 10,000 \
log records. Role: `append`.",
    request_body(content(
        (Binary = "application/x-protobuf"),
        (Object = "application/json"),
    )),
    responses(
        (status = 200, description = "`ExportLogsServiceResponse`, in the request's encoding", content(
            (Binary = "application/x-protobuf"),
            (Object = "application/json"),
        )),
        (status = 400, description = "`invalid_entry`: the body does not decode, or holds more \
than 10,000 log records; `invalid_parameter`", body = ErrorBody),
        AccessErrors,
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: neither protobuf nor JSON, or \
not gzip", body = ErrorBody),
        TimeoutError,
        InternalError,
        (status = 503, description = "`overloaded`, `shutting_down` or `store_unavailable`: \
retry; nothing was appended", body = ErrorBody),
        (status = 507, description = "`insufficient_storage`: nothing was appended", body = ErrorBody),
    ),
    security(("bearer" = ["append"]))
)]
pub(crate) async fn logs(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    ingest(&state, &headers, query.as_deref(), body, Signal::Logs).await
}

async fn ingest(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
    body: Result<Bytes, BytesRejection>,
    signal: Signal,
) -> Result<Response, ApiError> {
    let submitted_by = submitter(state.auth.authorize(headers, Role::Append)?);
    Params::parse(query, &[])?;
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
            limit: state.config.limits.max_body_bytes,
        },
        _ => InvalidEntry::Unreadable(e).into(),
    })?;
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let media_type = media.split(';').next().unwrap_or_default().trim();
    let encoding = if media_type.eq_ignore_ascii_case("application/x-protobuf") {
        Encoding::Protobuf
    } else if media_type.eq_ignore_ascii_case("application/json") {
        Encoding::Json
    } else {
        return Err(ApiError::UnsupportedMediaType(format!(
            "{media:?}; OTLP/HTTP takes application/x-protobuf or application/json"
        )));
    };
    let body = match headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
    {
        None | Some("") | Some("identity") => body.to_vec(),
        Some(gzip) if gzip.eq_ignore_ascii_case("gzip") => {
            otlp::gunzip(&body).map_err(|message| InvalidEntry::Otlp { message })?
        }
        Some(other) => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "content encoding {other:?}; OTLP/HTTP bodies may be gzip-compressed, or not at all"
            )));
        }
    };
    let mapped = match signal {
        Signal::Traces => otlp::decode_traces(&body, encoding)
            .and_then(|r| otlp::map_traces(&r, state.config.records.otlp_keep_other_spans)),
        Signal::Logs => otlp::decode_logs(&body, encoding).and_then(|r| otlp::map_logs(&r)),
    }
    .map_err(|message| InvalidEntry::Otlp { message })?;
    let (rejected, error_message) = append(state, mapped, &submitted_by).await?;
    let (bytes, json) = match signal {
        Signal::Traces => {
            let answer = ExportTraceServiceResponse {
                partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
                    rejected_spans: rejected,
                    error_message: error_message.clone(),
                }),
            };
            (answer.encode_to_vec(), serde_json::to_vec(&answer))
        }
        Signal::Logs => {
            let answer = ExportLogsServiceResponse {
                partial_success: (rejected > 0).then_some(ExportLogsPartialSuccess {
                    rejected_log_records: rejected,
                    error_message,
                }),
            };
            (answer.encode_to_vec(), serde_json::to_vec(&answer))
        }
    };
    Ok(match encoding {
        Encoding::Protobuf => typed("application/x-protobuf", None, bytes),
        Encoding::Json => typed(
            "application/json",
            None,
            json.map_err(|e| Internal::Record(e.to_string()))?,
        ),
    })
}

/// Prepares every submission, appends the valid ones in one commit and waits until they are
/// durable; the number rejected and why (the first few reasons).
async fn append(
    state: &AppState,
    mapped: Mapped,
    submitted_by: &veritrail_records::SubmittedBy,
) -> Result<(i64, String), ApiError> {
    let received_at = time::OffsetDateTime::now_utc();
    let mut records = Vec::new();
    let mut filings = Vec::new();
    let mut rejected = 0i64;
    let mut reasons = Vec::new();
    for (submission, what) in &mapped.submissions {
        match prepare_event(state, submission, submitted_by, received_at)? {
            Ok((record, filing)) => {
                records.push(record);
                filings.extend(filing);
            }
            Err(problems) => {
                rejected += 1;
                if reasons.len() < 5 {
                    let first = problems
                        .first()
                        .map(|p| format!("{}: {}", p.field, p.problem))
                        .unwrap_or_default();
                    reasons.push(format!("{what}: {first}"));
                }
            }
        }
    }
    let mut raw = Vec::with_capacity(mapped.other.len());
    for (json, what) in mapped.other {
        if json.len() > veritrail_ledger::bundle::MAX_ENTRY_SIZE {
            rejected += 1;
            if reasons.len() < 5 {
                reasons.push(format!(
                    "{what}: {} bytes of OTLP JSON, above the {} bytes of a raw entry",
                    json.len(),
                    veritrail_ledger::bundle::MAX_ENTRY_SIZE
                ));
            }
            continue;
        }
        raw.push(Bytes::from(json));
    }
    let kept = raw.len() as u64;
    if !records.is_empty() || !raw.is_empty() {
        store_payloads(state, filings).await?;
        let count = records.len() as u64;
        commit(
            state,
            None,
            |_| state.sequencer.submit_entries_and_records(raw, records),
            "append OTLP records",
        )
        .await?;
        metrics::counter!("veritrail_otlp_records_total").increment(count);
        metrics::counter!("veritrail_otlp_kept_spans_total").increment(kept);
    }
    metrics::counter!("veritrail_otlp_ignored_total").increment(mapped.ignored);
    if rejected > 0 {
        metrics::counter!("veritrail_otlp_rejected_total").increment(rejected as u64);
    }
    Ok((rejected, reasons.join("; ")))
}
