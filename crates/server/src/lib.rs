//! Veritrail HTTP server (`veritrail serve`): the append API with group commit, the C2SP
//! tlog-tiles read path, JSON proofs and receipts, authentication and operations endpoints.
//!
//! Not built yet: this crate is reserved in the workspace so that the ledger core's API is
//! designed against it. It depends only on `veritrail-ledger`; see `docs/architecture.md`.
#![forbid(unsafe_code)]
