//! The agent-record parsers over hostile bytes: the request body as JSON through
//! `parse_event`, and the bytes as a stored leaf through `parse_leaf`.
//!
//! Asserts: nothing panics; an accepted event encodes into a leaf that `parse_leaf` reads back
//! and whose JSON re-encodes to the same bytes (`leaf_of`), with and without a chain link.
#![no_main]

use libfuzzer_sys::fuzz_target;
use veritrail_ledger::Hash;
use veritrail_records::{NONCE_BYTES, Prev, SubmittedBy, Unchained, leaf_of, parse_event, parse_leaf};

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = parse_leaf(data) {
        assert_eq!(leaf_of(&record).expect("a parsed record encodes"), data);
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(event) = parse_event(&value) else {
        return;
    };
    let submitter = SubmittedBy::Token { name: "fuzz".into() };
    let at = time::OffsetDateTime::UNIX_EPOCH;
    let unchained = Unchained::new(event, &submitter, at, [3; NONCE_BYTES])
        .expect("a valid event always fits a leaf");
    let prev = Prev {
        index: 7,
        leaf_hash: Hash::try_from_slice(&[1; 32]).expect("32 bytes"),
    };
    for link in [None, Some(&prev)] {
        let leaf = unchained.leaf(link);
        assert!(leaf.len() <= unchained.max_leaf_len());
        let record = parse_leaf(&leaf).expect("the server's leaf parses");
        assert_eq!(leaf_of(&record).expect("encodes"), leaf);
        assert_eq!(Prev::of(&record).as_ref(), link);
    }
});
