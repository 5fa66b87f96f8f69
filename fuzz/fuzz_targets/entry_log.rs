//! The storage engine's recovery (`Ledger::open`) over hostile log files: the fuzz input is
//! split into the state file, one leaf-index run and the entry log of a store whose key-value
//! part is valid (two big-endian `u16` lengths first: the state's and the run's).
//!
//! Asserts: opening never panics; it either refuses with a typed error or opens a ledger
//! whose every served entry hashes to its leaf in the level-0 tiles (`audit`), and whose
//! leaf-hash lookups agree with the entries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use veritrail_ledger::note::{KeyName, NoteSigner};
use veritrail_ledger::store::{self, Backend};
use veritrail_ledger::{Ledger, leaf_hash};

const ORIGIN: &str = "fuzz.veritrail.example/log";

fn signer() -> NoteSigner {
    NoteSigner::new(
        KeyName::new(ORIGIN).expect("valid name"),
        ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]),
    )
}

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temp dir");
    // A valid, empty store: the key-value part and the file layout.
    drop(
        Ledger::open(
            store::open(Backend::Redb, dir.path()).expect("store"),
            ORIGIN,
            signer(),
        )
        .expect("new ledger"),
    );
    // Two big-endian u16 lengths, then the state file, the run file and the entry log: real
    // files make seeds (see the README).
    let length = |at: usize| {
        usize::from(u16::from_be_bytes([
            data.get(at).copied().unwrap_or(0),
            data.get(at + 1).copied().unwrap_or(0),
        ]))
    };
    let body = data.get(4..).unwrap_or_default();
    let (state, rest) = body.split_at(body.len().min(length(0)));
    let (run, entries) = rest.split_at(rest.len().min(length(2)));
    std::fs::write(dir.path().join("log").join("entries"), entries).expect("write");
    std::fs::write(dir.path().join("log").join("state"), state).expect("write");
    std::fs::write(
        dir.path()
            .join("leaf-index")
            .join(format!("{:020}-{:020}.run", 0, 1)),
        run,
    )
    .expect("write");
    let Ok(ledger) = Ledger::open(
        store::open(Backend::Redb, dir.path()).expect("store"),
        ORIGIN,
        signer(),
    ) else {
        return;
    };
    ledger.audit().expect("an opened ledger audits clean");
    let size = ledger.tree_head().size;
    for index in 0..size.min(8) {
        let entry = ledger.entry(index).expect("entry below the size");
        let (found, _) = ledger
            .inclusion_proof_by_leaf_hash(&leaf_hash(&entry), size)
            .expect("its leaf hash is found");
        assert!(found <= index);
    }
});
