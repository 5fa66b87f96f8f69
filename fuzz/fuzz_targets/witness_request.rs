//! tlog-witness messages: `AddCheckpoint::parse` (the witness's request parser),
//! `parse_size_body` and `parse_cosignatures` (what a log reads back).
//!
//! Asserts:
//! - a parsed request has at most 63 proof lines, came from a body within the size cap, and
//!   re-encodes to bytes that parse to the same request (framing is canonical: the re-encoding
//!   equals the input whenever the note part is canonical);
//! - a parsed size body prints back to the same bytes;
//! - parsed cosignature lines print back to the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use veritrail_ledger::witness::{
    AddCheckpoint, MAX_PROOF_LINES, MAX_REQUEST_BYTES, parse_cosignatures, parse_size_body,
    size_body,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = AddCheckpoint::parse(data) {
        assert!(data.len() <= MAX_REQUEST_BYTES);
        assert!(request.proof.len() <= MAX_PROOF_LINES);
        let again = AddCheckpoint::parse(&request.to_bytes()).expect("a re-encoding parses");
        assert_eq!(again, request);
    }
    if let Ok(size) = parse_size_body(data) {
        assert_eq!(size_body(size).as_bytes(), data);
    }
    if let Ok(lines) = parse_cosignatures(data) {
        let printed: String = lines.iter().map(|l| format!("{}\n", l.to_line())).collect();
        assert_eq!(printed.as_bytes(), data);
    }
});
