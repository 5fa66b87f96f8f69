//! Checkpoints: `Checkpoint::from_text` (parser) and `Checkpoint::verify_signed` (verifier).
//!
//! Asserts:
//! - whatever parses re-encodes (`to_text`) to the identical text and passes `validate`;
//! - whatever parses can be signed by the fixed log key, and `verify_signed` gives back the
//!   same checkpoint and note; for another origin it is `OriginMismatch`, and a key the note
//!   was not signed by gives `NoVerifiedSignature`;
//! - the raw input taken as a signed note never panics `verify_signed` (against the fixed log
//!   key, and against the Go checksum database key so that `sumdb.note` is a useful seed),
//!   and anything it accepts has the expected origin and parses from the note text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use veritrail_fuzz::{LOG, LOG_ORIGIN, SUMDB, SUMDB_ORIGIN, WITNESS};
use veritrail_ledger::checkpoint::{Checkpoint, CheckpointError};
use veritrail_ledger::note::{MAX_NOTE_SIZE, NoteError, NoteVerifier};

fn check_text(text: &str) {
    let Ok(checkpoint) = Checkpoint::from_text(text) else {
        return;
    };
    assert_eq!(checkpoint.to_text(), text, "re-encoding differs");
    assert_eq!(checkpoint.validate(), Ok(()));

    let note = checkpoint
        .sign(&LOG)
        .expect("a parsed checkpoint can be signed");
    // The signed note is the text plus a signature line: near MAX_NOTE_SIZE (only reachable
    // with a -max_len near 1 MiB) it no longer parses.
    if text.len() > MAX_NOTE_SIZE - 512 {
        return;
    }
    assert_eq!(note.text(), text);
    let bytes = note.to_bytes();
    let (verified, parsed) = Checkpoint::verify_signed(&bytes, &checkpoint.origin, &LOG.verifier())
        .expect("a freshly signed checkpoint verifies");
    assert_eq!(verified, checkpoint);
    assert_eq!(parsed, note);

    let other = format!("{}/other", checkpoint.origin);
    assert_eq!(
        Checkpoint::verify_signed(&bytes, &other, &LOG.verifier()),
        Err(CheckpointError::OriginMismatch {
            got: checkpoint.origin.clone(),
            want: other,
        })
    );
    // The witness key has another name, key ID and type: the log's line is not its own.
    assert_eq!(
        Checkpoint::verify_signed(&bytes, &checkpoint.origin, &WITNESS.verifier()),
        Err(CheckpointError::Note(NoteError::NoVerifiedSignature {
            signatures: 1
        }))
    );
}

fn check_signed(data: &[u8], origin: &str, verifier: &NoteVerifier) {
    if let Ok((checkpoint, note)) = Checkpoint::verify_signed(data, origin, verifier) {
        assert_eq!(checkpoint.origin, origin);
        assert_eq!(Checkpoint::from_text(note.text()), Ok(checkpoint));
        assert_eq!(note.to_bytes(), data);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = core::str::from_utf8(data) {
        check_text(text);
    }
    check_signed(data, LOG_ORIGIN, &LOG.verifier());
    check_signed(data, SUMDB_ORIGIN, &SUMDB);
});
