//! Veritrail verifying client: trusted state per log, proof and signature checks, the monitor
//! and split-view evidence.
//!
//! In progress (issue 4). Available now: [`state`], a verifier holding trusted state per log
//! that accepts a new checkpoint only with a valid signature and consistency proof, and
//! [`evidence`], self-contained split-view evidence that verifies offline. The client depends on the pure format layer of `veritrail-ledger` only
//! (`default-features = false`), so verifying never pulls in a database.
#![forbid(unsafe_code)]

pub mod evidence;
pub mod state;

pub use state::{LogVerifier, Update, VerifyError};
