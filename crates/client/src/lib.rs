//! Veritrail verifying client: trusted state per log, proof and signature checks, the monitor
//! and split-view evidence.
//!
//! Not built yet: this crate is reserved in the workspace and depends on the pure format layer
//! of `veritrail-ledger` only (`default-features = false`), so verifying never pulls in a
//! database. See `docs/architecture.md`.
#![forbid(unsafe_code)]
