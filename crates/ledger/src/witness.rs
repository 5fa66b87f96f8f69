//! The wire format of [tlog-witness v1.0.0](https://c2sp.org/tlog-witness): the body of
//! `POST <submission prefix>/add-checkpoint`, the `409 Conflict` size body, and the cosignature
//! lines of a `200` answer. Defined once, for the witness that parses requests and the log that
//! writes them.
//!
//! A request body is
//!
//! ```text
//! old <size>\n                   decimal, no leading zeros (0 if the client saw none)
//! <base64 hash>\n                0 to 63 consistency proof lines, old size to the new size
//! \n
//! <signed checkpoint note>
//! ```
//!
//! Every parser here is total: it returns a [`WitnessFormatError`] for any input, never
//! panics, and bounds what it reads ([`MAX_REQUEST_BYTES`], [`MAX_PROOF_LINES`]).
//!
//! ```
//! use veritrail_ledger::checkpoint::Checkpoint;
//! use veritrail_ledger::hash::{Hash, TreeHead};
//! use veritrail_ledger::note::{KeyName, NoteSigner};
//! use veritrail_ledger::witness::AddCheckpoint;
//!
//! let log = NoteSigner::generate(KeyName::new("example.com/log")?)?;
//! let note = Checkpoint::new("example.com/log", TreeHead::new(0, Hash::empty_root()))?.sign(&log)?;
//! let request = AddCheckpoint { old: 0, proof: vec![], checkpoint: note };
//! let body = request.to_bytes();
//! assert!(body.starts_with(b"old 0\n\nexample.com/log\n0\n"));
//! assert_eq!(AddCheckpoint::parse(&body)?, request);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::ascii::parse_decimal;
use crate::hash::Hash;
use crate::note::{Note, NoteError, NoteSignature};

/// Most consistency proof lines a request may carry.
pub const MAX_PROOF_LINES: usize = 63;
/// Largest request body accepted: the proof lines, and a checkpoint note of up to 16 KiB
/// (its text and signature lines).
pub const MAX_REQUEST_BYTES: usize = 20 * 1024;
/// The media type of a `409 Conflict` body: the witness's latest cosigned size.
pub const SIZE_MEDIA_TYPE: &str = "text/x.tlog.size";
/// The path of the submission endpoint, after the witness's submission prefix.
pub const ADD_CHECKPOINT_PATH: &str = "/add-checkpoint";

/// Why bytes are not a tlog-witness message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessFormatError {
    /// The body is larger than [`MAX_REQUEST_BYTES`].
    #[error("the body is {got} bytes; at most {max} are accepted")]
    TooLarge {
        /// The body's length.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// The body does not start with a valid `old <size>` line.
    #[error("the first line must be `old <size>` (decimal, no leading zeros)")]
    OldLine,
    /// A line is not terminated by a newline.
    #[error("line {line} does not end in a newline")]
    Unterminated {
        /// The 1-based line number.
        line: usize,
    },
    /// A proof line is not a base64 SHA-256 hash.
    #[error("line {line} is not a base64 SHA-256 hash")]
    ProofLine {
        /// The 1-based line number.
        line: usize,
    },
    /// More than [`MAX_PROOF_LINES`] proof lines.
    #[error("more than {MAX_PROOF_LINES} consistency proof lines")]
    TooManyProofLines,
    /// The checkpoint is not a signed note.
    #[error("the checkpoint is not a signed note: {0}")]
    Note(#[from] NoteError),
    /// A size body is not `<decimal>\n`.
    #[error("the size body must be a decimal size and a newline")]
    SizeBody,
    /// A cosignature answer is not one or more signature lines.
    #[error("the answer is not one or more note signature lines")]
    Cosignatures,
}

/// An `add-checkpoint` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The size of the latest checkpoint the client believes the witness cosigned (0: none).
    pub old: u64,
    /// The consistency proof from `old` to the checkpoint's size (empty when `old` is 0).
    pub proof: Vec<Hash>,
    /// The signed checkpoint; it may carry several signatures.
    pub checkpoint: Note,
}

impl AddCheckpoint {
    /// Parses a request body. It checks the framing only: the note's signatures and the
    /// checkpoint text are the witness's to judge.
    ///
    /// # Errors
    /// [`WitnessFormatError`]; this does not panic.
    pub fn parse(body: &[u8]) -> Result<Self, WitnessFormatError> {
        if body.len() > MAX_REQUEST_BYTES {
            return Err(WitnessFormatError::TooLarge {
                got: body.len(),
                max: MAX_REQUEST_BYTES,
            });
        }
        let mut rest = body;
        let mut number = 0;
        let first = next_line(&mut rest, &mut number)?;
        let old = std::str::from_utf8(first)
            .ok()
            .and_then(|line| line.strip_prefix("old "))
            .and_then(|size| parse_decimal(size).ok())
            .ok_or(WitnessFormatError::OldLine)?;
        let mut proof = Vec::new();
        loop {
            let line = next_line(&mut rest, &mut number)?;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(WitnessFormatError::TooManyProofLines);
            }
            let hash = std::str::from_utf8(line)
                .ok()
                .and_then(|text| Hash::from_base64(text).ok())
                .ok_or(WitnessFormatError::ProofLine { line: number })?;
            proof.push(hash);
        }
        let checkpoint = Note::from_bytes(rest)?;
        Ok(AddCheckpoint {
            old,
            proof,
            checkpoint,
        })
    }

    /// Encodes the request body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut body = format!("old {}\n", self.old).into_bytes();
        for hash in &self.proof {
            body.extend_from_slice(hash.to_base64().as_bytes());
            body.push(b'\n');
        }
        body.push(b'\n');
        body.extend_from_slice(&self.checkpoint.to_bytes());
        body
    }
}

/// The next newline-terminated line of `rest` (without its newline), numbering it.
fn next_line<'a>(rest: &mut &'a [u8], number: &mut usize) -> Result<&'a [u8], WitnessFormatError> {
    *number += 1;
    let end = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(WitnessFormatError::Unterminated { line: *number })?;
    let (line, after) = rest.split_at(end);
    *rest = after.get(1..).unwrap_or_default();
    Ok(line)
}

/// The body of a `409 Conflict` answer: `<size>\n`.
pub fn size_body(size: u64) -> String {
    format!("{size}\n")
}

/// Parses the body of a `409 Conflict` answer.
///
/// # Errors
/// [`WitnessFormatError::SizeBody`]; this does not panic.
pub fn parse_size_body(body: &[u8]) -> Result<u64, WitnessFormatError> {
    std::str::from_utf8(body)
        .ok()
        .and_then(|text| text.strip_suffix('\n'))
        .and_then(|size| parse_decimal(size).ok())
        .ok_or(WitnessFormatError::SizeBody)
}

/// Parses the body of a `200` answer: one or more note signature lines. Which of them are
/// valid cosignatures of which witness is for the caller to verify.
///
/// # Errors
/// [`WitnessFormatError::Cosignatures`], or [`WitnessFormatError::TooLarge`] past
/// [`MAX_REQUEST_BYTES`]; this does not panic.
pub fn parse_cosignatures(body: &[u8]) -> Result<Vec<NoteSignature>, WitnessFormatError> {
    if body.len() > MAX_REQUEST_BYTES {
        return Err(WitnessFormatError::TooLarge {
            got: body.len(),
            max: MAX_REQUEST_BYTES,
        });
    }
    let text = std::str::from_utf8(body).map_err(|_| WitnessFormatError::Cosignatures)?;
    let lines = text
        .strip_suffix('\n')
        .ok_or(WitnessFormatError::Cosignatures)?;
    let signatures = lines
        .split('\n')
        .map(NoteSignature::from_line)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| WitnessFormatError::Cosignatures)?;
    if signatures.is_empty() {
        return Err(WitnessFormatError::Cosignatures);
    }
    Ok(signatures)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use crate::checkpoint::Checkpoint;
    use crate::hash::{TreeHead, leaf_hash};
    use crate::note::{KeyName, NoteSigner};
    use proptest::prelude::*;

    fn note(size: u64) -> Note {
        let log = NoteSigner::from_seed(KeyName::new("example.com/log").unwrap(), [3; 32]);
        Checkpoint::new("example.com/log", TreeHead::new(size, leaf_hash(b"x")))
            .unwrap()
            .sign(&log)
            .unwrap()
    }

    #[test]
    fn requests_round_trip_and_bad_framing_is_named() {
        let request = AddCheckpoint {
            old: 5,
            proof: vec![leaf_hash(b"a"), leaf_hash(b"b")],
            checkpoint: note(9),
        };
        let body = request.to_bytes();
        assert_eq!(AddCheckpoint::parse(&body).unwrap(), request);
        let text = String::from_utf8(body.clone()).unwrap();
        for (bad, want) in [
            (
                text.replacen("old 5", "old 05", 1),
                WitnessFormatError::OldLine,
            ),
            (
                text.replacen("old 5", "olde 5", 1),
                WitnessFormatError::OldLine,
            ),
            (
                text.replacen("old 5", "old -5", 1),
                WitnessFormatError::OldLine,
            ),
            (
                "old 5".to_owned(),
                WitnessFormatError::Unterminated { line: 1 },
            ),
            (
                "old 5\nAAAA\n\n".to_owned(),
                WitnessFormatError::ProofLine { line: 2 },
            ),
        ] {
            assert_eq!(AddCheckpoint::parse(bad.as_bytes()), Err(want), "{bad:?}");
        }
        let sixty_four = AddCheckpoint {
            proof: vec![leaf_hash(b"a"); 64],
            ..request.clone()
        };
        assert_eq!(
            AddCheckpoint::parse(&sixty_four.to_bytes()),
            Err(WitnessFormatError::TooManyProofLines)
        );
        let sixty_three = AddCheckpoint {
            proof: vec![leaf_hash(b"a"); 63],
            ..request
        };
        assert_eq!(
            AddCheckpoint::parse(&sixty_three.to_bytes()).unwrap(),
            sixty_three
        );
        assert!(matches!(
            AddCheckpoint::parse(&vec![b'\n'; MAX_REQUEST_BYTES + 1]),
            Err(WitnessFormatError::TooLarge { .. })
        ));
    }

    #[test]
    fn size_and_cosignature_bodies() {
        assert_eq!(parse_size_body(size_body(42).as_bytes()), Ok(42));
        for bad in ["42", "042\n", "\n", "4 2\n", "x\n"] {
            assert_eq!(
                parse_size_body(bad.as_bytes()),
                Err(WitnessFormatError::SizeBody)
            );
        }
        let line = note(1).signatures()[0].to_line();
        let signatures = parse_cosignatures(format!("{line}\n{line}\n").as_bytes()).unwrap();
        assert_eq!(signatures.len(), 2);
        for bad in [
            String::new(),
            "\n".to_owned(),
            line.clone(),
            format!("{line}\nx\n"),
        ] {
            assert!(parse_cosignatures(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn parsers_are_total(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = AddCheckpoint::parse(&bytes);
            let _ = parse_size_body(&bytes);
            let _ = parse_cosignatures(&bytes);
        }

        #[test]
        fn mutated_requests_never_panic(at in 0usize..400, byte in any::<u8>()) {
            let mut body = AddCheckpoint {
                old: 3,
                proof: vec![leaf_hash(b"p")],
                checkpoint: note(7),
            }
            .to_bytes();
            let at = at % body.len();
            body[at] = byte;
            let _ = AddCheckpoint::parse(&body);
        }
    }
}
