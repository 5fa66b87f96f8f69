//! `GET /v1/records?...`: record queries answered from the record indexes, every record with
//! an inclusion proof for one signed checkpoint; `GET /v1/conversations/<id>`: one
//! conversation's chain, with the log's signed statement of its head.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use veritrail_api::{ConversationPage, ErrorBody, ProvenRecord, RecordsPage};
use veritrail_records::query::FILTER_PARAMETERS;
use veritrail_records::{Filter, HeadStatement, Prev, parse_leaf};

use crate::AppState;
use crate::access::record_read;
use crate::auth::Role;
use crate::error::{ApiError, Internal, NotFound};
use crate::openapi::{AccessErrors, InternalError, TimeoutError};
use crate::query::{Params, parse_u64, path_text, percent_decode};
use crate::record_index::{RecordIndex, SCAN_BUDGET};
use crate::routes::ledger::{b64, latest};

/// Records on one page by default.
const DEFAULT_LIMIT: u64 = 100;
/// Most records on one page.
const MAX_LIMIT: u64 = 1000;
/// Longest a query waits for the indexes to reach its checkpoint before answering 503.
const INDEX_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// Longest query string accepted, in bytes.
const MAX_QUERY: usize = 8192;

/// A parsed query: the filter, the cursor, the page size.
fn parse(raw: Option<&str>) -> Result<(Filter, u64, u64), ApiError> {
    let raw = raw.unwrap_or_default();
    if raw.len() > MAX_QUERY {
        return Err(ApiError::param(
            "query",
            format!("longer than {MAX_QUERY} bytes"),
        ));
    }
    let mut filter = Filter::default();
    let (mut cursor, mut limit) = (None, None);
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = |param: &'static str| {
            percent_decode(value).ok_or_else(|| ApiError::param(param, "bad percent-encoding"))
        };
        match name {
            "cursor" | "limit" => {
                let param = if name == "cursor" { "cursor" } else { "limit" };
                let slot = if param == "cursor" {
                    &mut cursor
                } else {
                    &mut limit
                };
                if slot.is_some() {
                    return Err(ApiError::param(param, "given more than once"));
                }
                *slot = Some(parse_u64(param, &decoded(param)?)?);
            }
            _ => {
                let param = FILTER_PARAMETERS
                    .iter()
                    .copied()
                    .find(|p| *p == name)
                    .unwrap_or("query");
                filter
                    .add(name, &decoded(param)?)
                    .map_err(|bad| ApiError::param(bad.parameter, bad.problem))?;
            }
        }
    }
    Ok((filter, cursor.unwrap_or(0), page_limit(limit)?))
}

/// The page size: `limit` if given (1 to 1,000), else 100.
fn page_limit(limit: Option<u64>) -> Result<u64, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::param(
            "limit",
            format!("between 1 and {MAX_LIMIT}"),
        ));
    }
    Ok(limit)
}

/// Waits (blocking) until the record index covers the first `size` entries. The indexer
/// follows the committer within a fraction of a second, at once when hurried: wait for it a
/// moment before answering 503.
///
/// # Errors
/// [`ApiError::IndexCatchingUp`] after [`INDEX_WAIT`].
pub(crate) fn wait_indexed(index: &RecordIndex, size: u64) -> Result<(), ApiError> {
    let deadline = std::time::Instant::now() + INDEX_WAIT;
    loop {
        let indexed = index
            .watermark()
            .map_err(|e| Internal::Record(e.to_string()))?;
        if indexed >= size {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(ApiError::IndexCatchingUp { indexed, size });
        }
        index.hurry();
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// One page: the records matching `filter` from `cursor` on, below `size`, at most `limit`,
/// each with its inclusion proof for `size`, and the next cursor.
fn collect(
    ledger: &veritrail_ledger::Ledger,
    index: &RecordIndex,
    filter: &Filter,
    cursor: u64,
    limit: u64,
    size: u64,
) -> Result<(Vec<ProvenRecord>, Option<u64>), ApiError> {
    wait_indexed(index, size)?;
    let (candidates, more) = index
        .candidates(filter, cursor, size, SCAN_BUDGET)
        .map_err(|e| Internal::Record(e.to_string()))?;
    let mut records = Vec::new();
    let mut next_cursor = None;
    for &candidate in &candidates {
        if records.len() as u64 == limit {
            next_cursor = Some(candidate);
            break;
        }
        // An archived and purged record is in its archive, not answered here.
        let leaf = match ledger.entry(candidate) {
            Err(veritrail_ledger::Error::Purged { .. }) => continue,
            other => other?,
        };
        let Ok(record) = parse_leaf(&leaf) else {
            continue;
        };
        if filter.matches(&record) {
            let proof = ledger.inclusion_proof(candidate, size)?;
            records.push(ProvenRecord {
                index: candidate,
                record,
                proof: b64(&proof),
            });
        }
    }
    if next_cursor.is_none() && more {
        next_cursor = candidates.last().map(|last| last + 1);
    }
    Ok((records, next_cursor))
}

/// What the access record of a page read says: what was asked, from where, and which records
/// were returned (their indices, never their content).
fn page_read(
    (name, asked): (&str, serde_json::Value),
    cursor: u64,
    records: &[ProvenRecord],
) -> serde_json::Map<String, serde_json::Value> {
    let mut read = serde_json::Map::new();
    read.insert(name.to_owned(), asked);
    read.insert("cursor".into(), cursor.into());
    read.insert(
        "indices".into(),
        records.iter().map(|r| r.index).collect::<Vec<_>>().into(),
    );
    read
}

/// `GET /v1/records`
#[utoipa::path(
    get,
    path = "/v1/records",
    tag = "records",
    summary = "Query records, each with an inclusion proof for one checkpoint",
    description = "The records matching every filter given (the values of a repeated `action` \
are alternatives), in index order, from `cursor` on, below the latest signed checkpoint's size; \
every proof is for that one checkpoint, returned with the page. Pages are stable across appends: \
pass `next_cursor` as `cursor` for the next one (a page may hold fewer than `limit` records when \
the server examined its scan budget; only a null `next_cursor` means the end). The answer comes \
from indexes the server keeps behind its committer; a client checks each record's proof and that \
it matches the filters (`veritrail_records::Filter::matches`). Role: `audit`.",
    params(
        ("conversation_id" = Option<String>, Query, pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,256}$", example = "c-42",
            description = "Records of this conversation"),
        ("actor_id" = Option<String>, Query, pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,256}$", example = "triage-agent",
            description = "`actor.id`"),
        ("submitted_by" = Option<String>, Query, pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,256}$", example = "agent-7",
            description = "Who submitted: a token's name, an OIDC subject, or `anonymous`"),
        ("agent" = Option<String>, Query, pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,256}$", example = "triage",
            description = "`agent.name`"),
        ("action" = Option<String>, Query,
            pattern = r"^(conversation_started|user_message_received|agent_response_generated|tool_invoked|tool_result|code_executed|data_accessed|data_modified|prompt_changed|model_changed|access_granted|access_revoked|human_approval|policy_decision|error|conversation_ended|x-[a-z0-9][a-z0-9-]*\.[a-z0-9_][a-z0-9_.-]*)$",
            max_length = 128, example = "tool_invoked",
            description = "An action; repeat the parameter for alternatives (at most 32)"),
        ("resource_type" = Option<String>, Query, pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,256}$",
            example = "patient_record", description = "`resource.type`"),
        ("resource_id" = Option<String>, Query, pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,256}$", example = "P-7000",
            description = "`resource.id`"),
        ("classification" = Option<String>, Query,
            pattern = r"^(public|internal|confidential|restricted)$", example = "restricted",
            description = "`public`, `internal`, `confidential` or `restricted`, exactly"),
        ("compliance" = Option<String>, Query,
            pattern = r"^(hipaa|soc2|financial|pci_dss|gdpr|eu_ai_act|x-[a-z0-9][a-z0-9-]*\.[a-z0-9_][a-z0-9_.-]*)$",
            max_length = 128, example = "hipaa", description = "A domain `compliance` holds"),
        ("since" = Option<String>, Query, format = DateTime, example = "2026-03-01T00:00:00Z",
            description = "RFC 3339: records whose `timestamp` is at or after it"),
        ("until" = Option<String>, Query, format = DateTime, example = "2026-04-01T00:00:00Z",
            description = "RFC 3339: records whose `timestamp` is before it"),
        ("cursor" = Option<u64>, Query, minimum = 0, example = 0,
            description = "The first index to consider (default 0)"),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 1000, example = 100,
            description = "Most records on the page (default 100)"),
    ),
    responses(
        (status = 200, description = "One page of results", body = RecordsPage),
        (status = 400, description = "`invalid_parameter`: names the parameter", body = ErrorBody),
        AccessErrors,
        (status = 404, description = "`not_found`: no checkpoint yet, or the server keeps no \
record indexes", body = ErrorBody),
        (status = 503, description = "`index_catching_up`: the indexes have not reached the \
latest checkpoint yet; retry", body = ErrorBody),
        TimeoutError,
        InternalError,
    ),
    security(("bearer" = ["audit"]))
)]
pub(crate) async fn query(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let caller = state.auth.authorize(&headers, Role::Audit)?;
    let (filter, cursor, limit) = parse(query.as_deref())?;
    let shown = filter.to_pairs();
    let index = state.record_index.clone().ok_or(NotFound::NoRecordIndex)?;
    let published = latest(&state)?;
    let size = published.size();
    let ledger = state.ledger.clone();
    let page =
        tokio::task::spawn_blocking(move || collect(&ledger, &index, &filter, cursor, limit, size))
            .await
            .map_err(|source| Internal::Task {
                what: "query",
                source,
            })?;
    let (records, next_cursor) = page?;
    metrics::counter!("veritrail_record_queries_total").increment(1);
    let query: serde_json::Map<String, serde_json::Value> = shown
        .into_iter()
        .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v)))
        .collect();
    let read = page_read(
        ("query", serde_json::Value::Object(query)),
        cursor,
        &records,
    );
    record_read(&state, caller, "GET /v1/records", read);
    Ok(Json(RecordsPage {
        checkpoint: String::from_utf8_lossy(&published.checkpoint.note).into_owned(),
        size,
        records,
        next_cursor,
    })
    .into_response())
}

/// `GET /v1/conversations/{id}`
#[utoipa::path(
    get,
    path = "/v1/conversations/{id}",
    tag = "records",
    summary = "A conversation's records with proofs, and its signed head",
    description = "The records of one conversation in index order from `cursor` on, below the \
latest signed checkpoint's size, each with an inclusion proof for that checkpoint, and `head`: a \
note signed by the log's key naming the conversation's last record at that checkpoint \
(`veritrail_records::HeadStatement`). A client proves every record, checks that the `prev` links \
form one chain from the first record, and that the statement names the chain's last record at the \
same checkpoint: then nothing was left out, and a later record would refute the signed statement. \
Role: `audit`.",
    params(
        ("id" = String, Path, pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,256}$", example = "c-42",
            description = "The conversation id"),
        ("cursor" = Option<u64>, Query, minimum = 0, example = 0,
            description = "The first index to consider (default 0)"),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 1000, example = 100,
            description = "Most records on the page (default 100)"),
    ),
    responses(
        (status = 200, description = "One page of the conversation", body = ConversationPage),
        (status = 400, description = "`invalid_parameter`", body = ErrorBody),
        AccessErrors,
        (status = 404, description = "`not_found`: no checkpoint yet, or the server keeps no \
record indexes", body = ErrorBody),
        (status = 503, description = "`index_catching_up`: retry", body = ErrorBody),
        TimeoutError,
        InternalError,
    ),
    security(("bearer" = ["audit"]))
)]
pub(crate) async fn conversation(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let caller = state.auth.authorize(&headers, Role::Audit)?;
    let id = path_text("id", id)?;
    if id.is_empty() || id.len() > veritrail_records::query::MAX_FILTER_VALUE {
        return Err(ApiError::param("id", "give 1 to 256 bytes"));
    }
    let params = Params::parse(query.as_deref(), &["cursor", "limit"])?;
    let cursor = params.u64("cursor")?.unwrap_or(0);
    let limit = page_limit(params.u64("limit")?)?;
    let index = state.record_index.clone().ok_or(NotFound::NoRecordIndex)?;
    let published = latest(&state)?;
    let tree = published.checkpoint.checkpoint.tree;
    let ledger = state.ledger.clone();
    let conversation = id.clone();
    let page = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
        let filter = Filter {
            conversation_id: Some(conversation.clone()),
            ..Filter::default()
        };
        let (records, next_cursor) = collect(&ledger, &index, &filter, cursor, limit, tree.size)?;
        let head = index
            .conversation_head(&conversation, tree.size)
            .map_err(|e| Internal::Record(e.to_string()))?
            .map(|at| -> Result<Prev, ApiError> {
                Ok(Prev {
                    index: at,
                    leaf_hash: veritrail_ledger::leaf_hash(&ledger.entry(at)?),
                })
            })
            .transpose()?;
        let statement = HeadStatement {
            origin: ledger.origin().to_owned(),
            size: tree.size,
            root: tree.root,
            conversation,
            head,
        };
        let signed = ledger.sign_statement(&statement.to_text())?;
        Ok((records, next_cursor, signed))
    })
    .await
    .map_err(|source| Internal::Task {
        what: "conversation",
        source,
    })?;
    let (records, next_cursor, signed) = page?;
    let read = page_read(
        ("conversation_id", serde_json::Value::String(id.clone())),
        cursor,
        &records,
    );
    record_read(&state, caller, "GET /v1/conversations/{id}", read);
    Ok(Json(ConversationPage {
        checkpoint: String::from_utf8_lossy(&published.checkpoint.note).into_owned(),
        size: tree.size,
        head: String::from_utf8_lossy(&signed).into_owned(),
        records,
        next_cursor,
    })
    .into_response())
}
