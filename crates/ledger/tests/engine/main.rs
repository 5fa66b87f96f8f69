//! Engine tests: differential tests against independent Merkle implementations, property
//! tests against a naive RFC 6962 reference, and store-level failure cases.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod differential;
mod model;
mod purge;
mod recovery;
mod retention;
mod storage;
mod verified_reads;

use ed25519_dalek::SigningKey;
use veritrail_ledger::Ledger;
use veritrail_ledger::note::{KeyName, NoteSigner};
use veritrail_ledger::store::{self, Backend};

pub(crate) const ORIGIN: &str = "test.veritrail.example/log";

pub(crate) fn signer() -> NoteSigner {
    NoteSigner::new(
        KeyName::new(ORIGIN).unwrap(),
        SigningKey::from_bytes(&[42u8; 32]),
    )
}

pub(crate) fn open(backend: Backend, dir: &std::path::Path) -> Ledger {
    Ledger::open(store::open(backend, dir).unwrap(), ORIGIN, signer()).unwrap()
}

/// Entry `i` of the test logs.
pub(crate) fn entry(i: u64) -> Vec<u8> {
    format!("audit event #{i}").into_bytes()
}
