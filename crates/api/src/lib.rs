//! The Veritrail HTTP API wire format, defined once for the server that writes it and the
//! client that reads it: JSON request and response bodies, content types and header names,
//! limits, and the stable error codes.
//!
//! In scope: the shape of every JSON body the API exchanges (see `docs/api.md`), and the
//! constants both sides must agree on. Out of scope: I/O of any kind (no HTTP stack, no
//! runtime), and the meaning of the values: hashes and proofs travel here as the base64
//! strings the API sends; the client decodes and verifies them with `veritrail-ledger`'s pure
//! layer, the server produces them from its ledger. Non-JSON bodies (checkpoint notes,
//! C2SP tiles and entry bundles, raw entries) are specified by C2SP
//! [tlog-tiles](https://c2sp.org/tlog-tiles) and [signed-note](https://c2sp.org/signed-note)
//! and parsed by `veritrail-ledger`.
//!
//! This crate depends on `serde` and `serde_json` (stored records travel as JSON values) only; the `openapi` feature adds `utoipa::ToSchema` to every
//! type so the server's OpenAPI document describes exactly these types.
//!
//! - [`media`]: content types and header names;
//! - [`limits`]: sizes and counts both sides enforce;
//! - [`error`]: [`ErrorCode`] and the [`ErrorBody`] of every error response;
//! - [`response`]: the JSON bodies of successful responses.
//!
//! # Example
//!
//! A client reading an error answer and matching on its stable code:
//!
//! ```
//! use veritrail_api::{ErrorBody, ErrorCode};
//!
//! let body = br#"{"error":"overloaded","message":"the append queue is full; retry after 1 s"}"#;
//! let error: ErrorBody = serde_json::from_slice(body)?;
//! assert_eq!(error.error, ErrorCode::Overloaded);
//! assert_eq!(error.error.status(), 503);
//! assert!(error.error.is_retryable());
//!
//! // The server writes the same type, byte for byte.
//! assert_eq!(serde_json::to_vec(&error)?, body);
//! # Ok::<(), serde_json::Error>(())
//! ```
#![forbid(unsafe_code)]

pub mod error;
pub mod limits;
pub mod media;
pub mod response;

pub use error::{ErrorBody, ErrorCode, FieldProblem};
pub use response::{
    AppendResponse, AppendedEntry, AppendedRecord, ArchiveResponse, ArchivedBundles,
    ConsistencyProofResponse, ConversationPage, EntryWithProof, Health, HealthStatus, HoldInForce,
    HoldReleased, HoldsResponse, InclusionProofResponse, ProvenRecord, RecordWithProof,
    RecordsPage, RecordsResponse,
};
