//! Veritrail agent audit records: the event schema an agent submits, its validation, and the
//! canonical leaf the log stores.
//!
//! In scope (pure, no I/O, shared by the server, the verifying client and any other reader):
//!
//! - [`AuditEvent`] and its parts ([`event`]): OpenTelemetry GenAI attribute names, actions,
//!   classification and compliance domains — documented field by field in `docs/events.md`;
//! - [`parse_event`] ([`validate`]): every problem of a submitted JSON event named by its field
//!   path, never a panic;
//! - [`scrub_event`] ([`scrub`]): secrets and PHI-like identifiers cut out of free-text
//!   metadata before anything is encoded;
//! - the record leaf ([`record`]): `0x01 ‖` the [RFC 8785](https://www.rfc-editor.org/rfc/rfc8785)
//!   (JCS) canonical JSON of the event plus the server's fields — who submitted it, when it
//!   was received, 128 bits of server randomness, and the link to the previous record of the
//!   same conversation.
//!
//! - [`Registry`] ([`classify`]): the operator's classification of tools, resource types and
//!   data sources, merged into each record (highest classification, union of domains);
//! - [`verify_chain`] ([`chain`]): the records presented as one conversation link into one
//!   chain from its first record, so that none was withheld, inserted or reordered;
//! - [`retention::RetentionPolicy`] ([`retention`]): how long a record is kept, the strictest
//!   of its compliance domains' regimes winning; [`hold::Holds`] ([`hold`]): the legal holds
//!   in force, read from the log's own hold records.
//!
//! Out of scope: HTTP, storage, and the conversation chains' state (the server's committer
//! keeps it).
//!
//! # Example
//!
//! An event as an agent sends it, encoded as the server does, and checked as an auditor does:
//!
//! ```
//! use veritrail_records::{parse_event, record, Unchained, SubmittedBy, NONCE_BYTES};
//!
//! let event = serde_json::json!({
//!     "timestamp": "2026-03-01T12:00:00Z",
//!     "action": "tool_invoked",
//!     "actor": {"id": "triage-agent", "type": "agent"},
//!     "conversation_id": "c-42",
//!     "gen_ai": {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "ehr_read"}
//! });
//! let event = parse_event(&event).map_err(|problems| format!("{problems:?}"))?;
//! let submitter = SubmittedBy::Token { name: "agent-7".into() };
//! let unchained = Unchained::new(event, &submitter, time::OffsetDateTime::now_utc(), [0; NONCE_BYTES])?;
//! let leaf = unchained.leaf(None); // the first record of conversation c-42
//!
//! // An auditor holding the record as JSON recomputes the very same leaf.
//! let stored = record::parse_leaf(&leaf)?;
//! assert_eq!(record::leaf_of(&stored)?, leaf);
//! assert_eq!(stored["submitted_by"]["name"], "agent-7");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub mod chain;
pub mod classify;
pub mod event;
pub mod head;
pub mod hold;
pub mod jcs;
pub mod payload;
pub mod problem;
pub mod query;
pub mod record;
pub mod retention;
pub mod scrub;
pub mod validate;

pub use chain::{Chain, ChainError, verify_chain};
pub use classify::{Registry, RegistryError};
pub use event::{
    Action, Actor, ActorType, Agent, AuditEvent, Classification, Domain, GenAi, Resource, Trace,
};
pub use head::{HeadError, HeadStatement};
pub use payload::{Payload, PayloadRef};
pub use query::Filter;
pub use record::{
    LEAF_VERSION, NONCE_BYTES, Prev, RecordError, SubmittedBy, Unchained, is_record, leaf_of,
    parse_leaf,
};
pub use scrub::{ScrubMode, Scrubber, scrub_event};
pub use validate::{FieldProblem, parse_event, parse_submission};

/// The JSON Schema (draft 2020-12) of an event, as `GET /v1/schema/event.json` serves it.
/// `tests/schema.rs` checks that it accepts and refuses what [`parse_event`] does; the few
/// rules JSON Schema cannot state are named in its `description`.
pub const EVENT_SCHEMA: &str = include_str!("../schema/event.schema.json");

/// Most records in one `POST /v1/records` request.
pub const MAX_RECORDS_PER_REQUEST: usize = 1000;

/// Largest `details` object, encoded as JSON: 16 KiB keeps every record well inside one
/// 64 KiB leaf with all other fields at their maximum.
pub const MAX_DETAILS_BYTES: usize = 16 << 10;

/// Deepest nesting of `details` (the object itself is level 1): metadata, not documents.
pub const MAX_DETAILS_DEPTH: usize = 8;

/// Largest integer magnitude a record holds: RFC 8785 writes numbers as IEEE doubles, which
/// hold integers exactly up to 2^53 − 1.
pub const MAX_INTEGER: u64 = (1 << 53) - 1;

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;
    use serde_json::Value;

    /// Arbitrary JSON values, a few levels deep.
    pub(crate) fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            ".{0,40}".prop_map(Value::String),
            prop_oneof![
                Just("tool_invoked"),
                Just("2026-03-01T12:00:00Z"),
                Just("x-a.b"),
                Just("agent"),
                Just("hipaa"),
            ]
            .prop_map(|s| Value::String(s.to_owned())),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        ".{0,12}",
                        Just("actor".to_owned()),
                        Just("id".to_owned()),
                        Just("type".to_owned()),
                        Just("timestamp".to_owned()),
                        Just("gen_ai.usage.input_tokens".to_owned()),
                    ],
                    inner,
                    0..8
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
