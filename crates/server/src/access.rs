//! Records the server writes itself: the erasure record, and one `data_accessed` record per
//! read of the audit trail (records, payloads, queries, conversations).
//!
//! HIPAA and SOC 2 want a record of who read the audit trail. Every successful read by a
//! principal appends one record — `action` `data_accessed`, `actor` the principal,
//! `resource` `{"type": "audit_log", "id": <origin>}`, `details` the operation and its
//! parameters (indices, the query), never the results — submitted by the principal. It is
//! appended *after* the answer, off the read's latency: a crash between the two can lose the
//! access record of an answered read (the answer is never held back for it), and a failed
//! append is logged and counted (`veritrail_access_records_failed_total`). Public reads of
//! checkpoints, tiles and proofs carry no data and are not recorded.

use serde_json::{Map, Value};
use veritrail_records::{
    Action, Actor, ActorType, AuditEvent, NONCE_BYTES, Resource, ScrubMode, Unchained, scrub_event,
};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, Internal};
use crate::routes::submitter;

/// Builds a record the server writes itself, at this time, scrubbed like any other.
///
/// # Errors
/// [`Internal`] errors only (the clock's formatting, the random source, the encoder).
pub(crate) fn server_record(
    state: &AppState,
    action: Action,
    caller: Option<Caller>,
    kind: ActorType,
    resource: Option<Resource>,
    details: Map<String, Value>,
) -> Result<Unchained, ApiError> {
    let now = time::OffsetDateTime::now_utc();
    let mut event = AuditEvent::new(
        now.format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| Internal::Record(e.to_string()))?,
        action,
        Actor {
            id: caller
                .as_ref()
                .map_or_else(|| "anonymous".into(), |c| c.principal.to_string()),
            kind,
        },
    );
    event.resource = resource;
    event.details = Some(details);
    let scrubbed = scrub_event(&state.scrubber, &mut event, ScrubMode::Redact).unwrap_or_default();
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::fill(&mut nonce).map_err(Internal::Random)?;
    Unchained::with(
        event,
        &submitter(caller),
        now,
        nonce,
        &scrubbed,
        &std::collections::BTreeMap::new(),
    )
    .map_err(|e| Internal::Record(e.to_string()).into())
}

/// Appends a record the server writes itself (`action`, by `caller`, as `kind`, with
/// `details`) and waits until it is durable; its index. The erasure, hold, release and purge
/// records go through here.
///
/// # Errors
/// The committer's errors (`overloaded`, `store_unavailable`, ...) and [`Internal`] ones.
pub(crate) async fn append_server_record(
    state: &AppState,
    action: &str,
    caller: Option<Caller>,
    kind: ActorType,
    details: Map<String, Value>,
) -> Result<u64, ApiError> {
    let record = server_record(
        state,
        Action::Custom(action.into()),
        caller,
        kind,
        None,
        details,
    )?;
    let committed = state
        .sequencer
        .submit_records(vec![record], None)?
        .await
        .map_err(|_| ApiError::from(Internal::CommitterStopped))??;
    Ok(committed.indices.start)
}

/// Appends, in the background, the `data_accessed` record of a successful read by `caller`
/// of `operation` with `details` (unless the server runs without read auditing).
pub(crate) fn record_read(
    state: &AppState,
    caller: Option<Caller>,
    operation: &'static str,
    mut details: Map<String, Value>,
) {
    if !state.config.records.audit_reads {
        return;
    }
    details.insert("operation".into(), Value::String(operation.to_owned()));
    let resource = Resource {
        kind: "audit_log".into(),
        id: state.ledger.origin().to_owned(),
        uri: None,
    };
    let record = match server_record(
        state,
        Action::DataAccessed,
        caller,
        ActorType::User,
        Some(resource),
        details,
    ) {
        Ok(record) => record,
        Err(e) => {
            failed(operation, &e);
            return;
        }
    };
    let submitted = state.sequencer.submit_records(vec![record], None);
    tokio::spawn(async move {
        let outcome = match submitted {
            Ok(waiting) => match waiting.await {
                Ok(Ok(_)) => return,
                Ok(Err(e)) => e,
                Err(_) => ApiError::from(Internal::CommitterStopped),
            },
            Err(e) => e,
        };
        failed(operation, &outcome);
    });
}

fn failed(operation: &'static str, error: &ApiError) {
    tracing::warn!(operation, %error, "the access record of a read was not appended");
    metrics::counter!("veritrail_access_records_failed_total").increment(1);
}
