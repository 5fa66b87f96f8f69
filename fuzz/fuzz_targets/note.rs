//! Signed notes: `Note::from_bytes` (parser), `Note::verify` and `verify_cosignature`
//! (verifiers) against a fixed set of trusted keys.
//!
//! Asserts:
//! - whatever parses re-encodes to the identical bytes, its text is a valid `Note::new` text
//!   and each signature line parses back alone;
//! - verification never panics, returns only signatures by trusted keys, and reports every
//!   other outcome with one of the documented errors;
//! - the input taken as a note text and signed by the fixed log and witness keys parses back
//!   to the same note and verifies; with one bit of its text flipped it never verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use veritrail_fuzz::{LOG, VERIFIERS, WITNESS};
use veritrail_ledger::cosignature::{CosignatureError, verify_cosignature};
use veritrail_ledger::note::{MAX_NOTE_SIZE, Note, NoteError, NoteSignature};

const TIMESTAMP: u64 = 1_700_000_000;

fn check_parsed(data: &[u8], note: &Note) {
    assert_eq!(note.to_bytes(), data, "re-encoding differs");
    assert!(!note.signatures().is_empty());
    let text = Note::new(note.text()).expect("a parsed text is a valid note text");
    assert_eq!(text.text(), note.text());
    for signature in note.signatures() {
        assert_eq!(
            NoteSignature::from_line(&signature.to_line()).as_ref(),
            Ok(signature)
        );
    }
    match note.verify(&VERIFIERS) {
        Ok(verified) => {
            assert!(!verified.is_empty());
            for signature in verified {
                assert!(VERIFIERS.iter().any(|v| v.matches(signature)));
            }
        }
        Err(NoteError::NoVerifiedSignature { signatures }) => {
            assert_eq!(signatures, note.signatures().len());
        }
        // A bad signature is only ever reported for a trusted key.
        Err(NoteError::InvalidSignature { name, key_id }) => {
            assert!(
                VERIFIERS
                    .iter()
                    .any(|v| v.name().as_str() == name && v.key_id() == key_id)
            );
        }
        Err(NoteError::SignatureLength { name, .. }) => {
            assert!(VERIFIERS.iter().any(|v| v.name().as_str() == name));
        }
        Err(other) => panic!("unexpected verification error {other:?}"),
    }
    let witness = WITNESS.verifier();
    match verify_cosignature(&witness, note) {
        Ok(_) => assert!(note.signatures().iter().any(|s| witness.matches(s))),
        Err(CosignatureError::NotFound { .. }) => {
            assert!(!note.signatures().iter().any(|s| witness.matches(s)));
        }
        Err(
            CosignatureError::InvalidSignature { .. }
            | CosignatureError::PayloadLength { .. }
            | CosignatureError::TimestampOutOfRange { .. },
        ) => {}
        Err(other) => panic!("unexpected cosignature error {other:?}"),
    }
}

fn check_signed(text: &str, flip_at: usize) {
    // Leave room for the two signature lines under MAX_NOTE_SIZE (only reachable with a
    // -max_len near 1 MiB).
    if text.len() > MAX_NOTE_SIZE - 512 {
        return;
    }
    let Ok(mut note) = Note::new(text) else {
        return;
    };
    note.add_signature(LOG.sign(text)).expect("first signature");
    note.add_signature(WITNESS.sign(text, TIMESTAMP).expect("valid text and time"))
        .expect("second signature");
    let bytes = note.to_bytes();
    let parsed = Note::from_bytes(&bytes).expect("a signed valid text parses");
    assert_eq!(parsed, note);
    assert_eq!(parsed.verify(&VERIFIERS).map(|v| v.len()), Ok(2));
    assert_eq!(
        verify_cosignature(&WITNESS.verifier(), &parsed),
        Ok(TIMESTAMP)
    );

    // Flip the low bit of one byte of the text. It cannot create or remove a newline (0x0a
    // and 0x0b differ in that bit, and 0x0b is a control character), so if the result
    // still parses, only its text changed, and the signatures over the old text must fail.
    let mut tampered = bytes;
    tampered[flip_at % text.len()] ^= 1;
    if let Ok(note) = Note::from_bytes(&tampered) {
        assert_eq!(note.signatures(), parsed.signatures());
        assert_ne!(note.text(), text);
        assert_eq!(
            note.verify(&VERIFIERS),
            Err(NoteError::InvalidSignature {
                name: LOG.name().to_string(),
                key_id: LOG.key_id(),
            })
        );
        assert_eq!(
            verify_cosignature(&WITNESS.verifier(), &note),
            Err(CosignatureError::InvalidSignature {
                name: WITNESS.name().to_string(),
                key_id: WITNESS.key_id(),
            })
        );
    }
}

fuzz_target!(|data: &[u8]| {
    match Note::from_bytes(data) {
        Ok(note) => {
            check_parsed(data, &note);
            check_signed(note.text(), data.len());
        }
        Err(_) => {
            if let Ok(text) = core::str::from_utf8(data) {
                check_signed(text, data.len());
            }
        }
    }
});
