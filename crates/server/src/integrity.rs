//! What the server remembers of stored data that failed verification.
//!
//! The ledger checks every entry it serves against its leaf hash in the level-0 tile and
//! refuses a mismatch with `Corrupted` (see `Ledger::entry_bundle`). Each refusal that reaches
//! a handler is recorded here: it counts `veritrail_corrupted_reads_total`, and from the first
//! one on `/readyz` answers 503 naming it, so that a load balancer stops routing to a store
//! that needs an operator. The refused request itself answers 500 `corrupted` and logs the
//! detail at error level (`crate::error`). Nothing is cleared while the process runs: a store
//! found corrupted stays unready until it is checked (`veritrail log verify`) and restored.

use std::sync::OnceLock;

/// Name of the counter of refused reads.
pub const CORRUPTED_READS: &str = "veritrail_corrupted_reads_total";

/// Corruption found while serving, shared by every handler.
#[derive(Debug, Default)]
pub struct Integrity {
    /// What the first refusal found, naming the entry or tile.
    first: OnceLock<String>,
}

impl Integrity {
    /// Records a refusal to serve corrupted data: counts it and, if it is the first, keeps
    /// `what` for `/readyz`.
    pub fn record(&self, what: &str) {
        metrics::counter!(CORRUPTED_READS).increment(1);
        if self.first.get().is_none() {
            // Two first refusals at once: either text will do.
            let _ = self.first.set(what.to_owned());
        }
    }

    /// What the first refusal found, if any: the store is then not ready.
    pub fn corrupted(&self) -> Option<&str> {
        self.first.get().map(String::as_str)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_first_refusal_is_kept() {
        let integrity = Integrity::default();
        assert_eq!(integrity.corrupted(), None);
        integrity.record("entry 5 does not hash to its leaf hash in tile 0/0");
        integrity.record("entry 9 does not hash to its leaf hash in tile 0/0");
        assert_eq!(
            integrity.corrupted(),
            Some("entry 5 does not hash to its leaf hash in tile 0/0")
        );
    }
}
