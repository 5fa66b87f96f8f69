//! Offline inclusion receipts, [`c2sp.org/tlog-proof@v1`](https://c2sp.org/tlog-proof).
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! [extra <base64>]                  optional, unauthenticated
//! index <n>                         canonical decimal leaf index
//! <base64 inclusion proof hash>     zero or more, from the leaf's sibling up
//!
//! <signed checkpoint note, with any cosignatures>
//! ```
//!
//! In scope: the encoder ([`Receipt::to_bytes`]), a total, size-bounded parser
//! ([`Receipt::from_bytes`]) and offline verification against the entry bytes and the log's
//! key ([`Receipt::verify`]): the log's checkpoint signature, then the RFC 6962 inclusion proof
//! of the entry's leaf hash. Out of scope: the witness policy (which cosignatures a client
//! requires, see [`crate::cosignature::verify_cosignature`]) and any meaning of `extra`.
//!
//! ```
//! use veritrail_ledger::checkpoint::Checkpoint;
//! use veritrail_ledger::note::{KeyName, NoteSigner};
//! use veritrail_ledger::receipt::Receipt;
//! use veritrail_ledger::{TreeHead, leaf_hash};
//!
//! let log = NoteSigner::generate(KeyName::new("veritrail.example/log")?)?;
//! // A one-entry tree: its root is the entry's leaf hash and the proof is empty.
//! let tree = TreeHead::new(1, leaf_hash(b"entry"));
//! let checkpoint = Checkpoint::new("veritrail.example/log", tree)?.sign(&log)?;
//! let receipt = Receipt { extra: None, index: 0, proof: vec![], checkpoint };
//!
//! let parsed = Receipt::from_bytes(&receipt.to_bytes())?;
//! let verified = parsed.verify(b"entry", "veritrail.example/log", &log.verifier())?;
//! assert_eq!(verified.tree, tree);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::checkpoint::{Checkpoint, CheckpointError, DecimalError, parse_decimal};
use crate::hash::{Hash, HashError, leaf_hash};
use crate::note::{MAX_NOTE_SIZE, Note, NoteError, NoteVerifier};
use crate::proof::{MAX_PROOF_HASHES, ProofError, verify_inclusion};

/// The first line of a receipt.
pub const RECEIPT_HEADER: &str = "c2sp.org/tlog-proof@v1";

/// Largest encoded receipt [`Receipt::from_bytes`] accepts: [`MAX_NOTE_SIZE`] plus 64 KiB.
///
/// The checkpoint note may use all of [`MAX_NOTE_SIZE`]; the header, index and up to
/// [`MAX_PROOF_HASHES`] proof lines take under 3 KiB, which leaves about 60 KiB for the
/// (application-defined) extra data.
pub const MAX_RECEIPT_SIZE: usize = MAX_NOTE_SIZE + 64 * 1024;

/// Errors from parsing and verifying receipts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// The receipt is larger than [`MAX_RECEIPT_SIZE`].
    #[error("receipt is {size} bytes, more than the limit of {max}")]
    TooLarge {
        /// Size of the input in bytes.
        size: usize,
        /// The limit, [`MAX_RECEIPT_SIZE`].
        max: usize,
    },
    /// No blank line separates the proof from the checkpoint.
    #[error("no blank line before the checkpoint")]
    MissingSeparator,
    /// The part before the checkpoint is not valid UTF-8.
    #[error("receipt is not valid UTF-8 (valid up to byte {offset})")]
    InvalidUtf8 {
        /// Length of the longest valid UTF-8 prefix.
        offset: usize,
    },
    /// The first line is not [`RECEIPT_HEADER`].
    #[error("first line is not {RECEIPT_HEADER}")]
    Header,
    /// The `extra` data is not canonical standard base64.
    #[error("extra data is not valid base64")]
    ExtraBase64,
    /// The `index <n>` line is missing where it is expected.
    #[error("missing index line")]
    MissingIndex,
    /// The index is not a canonical decimal `u64`.
    #[error("invalid index: {0}")]
    Index(#[source] DecimalError),
    /// The proof has more lines than [`MAX_PROOF_HASHES`].
    #[error("proof has {got} hashes, more than the limit of {max}")]
    TooManyProofHashes {
        /// Number of proof lines.
        got: usize,
        /// The limit, [`MAX_PROOF_HASHES`].
        max: usize,
    },
    /// A proof line is not base64 of a 32-byte hash.
    #[error("proof hash {position} is invalid: {source}")]
    ProofHash {
        /// 0-based position of the hash in the proof.
        position: usize,
        /// Why it is invalid.
        #[source]
        source: HashError,
    },
    /// The checkpoint note is malformed.
    #[error("malformed checkpoint note: {0}")]
    Note(#[source] NoteError),
    /// The checkpoint is not signed by the log, is for another origin, or does not parse.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The inclusion proof does not verify against the checkpoint.
    #[error("inclusion proof: {0}")]
    Inclusion(#[from] ProofError),
}

/// An offline proof that an entry is in a log: index, inclusion proof and signed checkpoint.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Receipt {
    /// Optional opaque data; not authenticated, never trust it implicitly.
    pub extra: Option<Vec<u8>>,
    /// Zero-based index of the entry in the log.
    pub index: u64,
    /// Inclusion proof, from the leaf's sibling up.
    pub proof: Vec<Hash>,
    /// The log's signed checkpoint, with any cosignatures.
    pub checkpoint: Note,
}

impl Receipt {
    /// Encodes the receipt.
    ///
    /// [`Receipt::from_bytes`] gives back an equal receipt when the proof has at most
    /// [`MAX_PROOF_HASHES`] hashes and the checkpoint at least one signature.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{RECEIPT_HEADER}\n");
        if let Some(extra) = &self.extra {
            out.push_str("extra ");
            out.push_str(&STANDARD.encode(extra));
            out.push('\n');
        }
        out.push_str(&format!("index {}\n", self.index));
        for hash in &self.proof {
            out.push_str(&hash.to_base64());
            out.push('\n');
        }
        out.push('\n');
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.checkpoint.to_bytes());
        bytes
    }

    /// Parses an encoded receipt. It verifies nothing; see [`Receipt::verify`].
    ///
    /// The proof ends at the first blank line; the rest is the checkpoint note. Total: every
    /// input gives a value or an error. This does not panic.
    ///
    /// # Errors
    /// [`ReceiptError::TooLarge`], [`ReceiptError::MissingSeparator`],
    /// [`ReceiptError::InvalidUtf8`], [`ReceiptError::Header`], [`ReceiptError::ExtraBase64`],
    /// [`ReceiptError::MissingIndex`], [`ReceiptError::Index`],
    /// [`ReceiptError::TooManyProofHashes`], [`ReceiptError::ProofHash`], or
    /// [`ReceiptError::Note`] for a malformed checkpoint note.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ReceiptError> {
        if bytes.len() > MAX_RECEIPT_SIZE {
            return Err(ReceiptError::TooLarge {
                size: bytes.len(),
                max: MAX_RECEIPT_SIZE,
            });
        }
        let split = bytes
            .windows(2)
            .position(|w| w == b"\n\n")
            .ok_or(ReceiptError::MissingSeparator)?;
        let (head, rest) = bytes
            .split_at_checked(split)
            .ok_or(ReceiptError::MissingSeparator)?;
        let note_bytes = rest.get(2..).ok_or(ReceiptError::MissingSeparator)?;
        let head = core::str::from_utf8(head).map_err(|e| ReceiptError::InvalidUtf8 {
            offset: e.valid_up_to(),
        })?;

        let mut lines = head.split('\n').peekable();
        if lines.next() != Some(RECEIPT_HEADER) {
            return Err(ReceiptError::Header);
        }
        let extra = match lines.next_if(|line| line.starts_with("extra ")) {
            Some(line) => Some(parse_extra(line)?),
            None => None,
        };
        let index = lines
            .next()
            .and_then(|line| line.strip_prefix("index "))
            .ok_or(ReceiptError::MissingIndex)?;
        let index = parse_decimal(index).map_err(ReceiptError::Index)?;
        let proof = parse_proof(lines)?;
        let checkpoint = Note::from_bytes(note_bytes).map_err(ReceiptError::Note)?;
        Ok(Receipt {
            extra,
            index,
            proof,
            checkpoint,
        })
    }

    /// Verifies the receipt offline for the entry bytes `entry` and returns the checkpoint.
    ///
    /// Checks the log's signature on the checkpoint and its origin (see
    /// [`Checkpoint::verify_note`]), then the inclusion proof of `leaf_hash(entry)` at
    /// [`Receipt::index`] against the checkpoint's tree head. Cosignatures are not checked
    /// here. This does not panic.
    ///
    /// # Errors
    /// [`ReceiptError::Checkpoint`] or [`ReceiptError::Inclusion`].
    pub fn verify(
        &self,
        entry: &[u8],
        origin: &str,
        log_verifier: &NoteVerifier,
    ) -> Result<Checkpoint, ReceiptError> {
        self.verify_leaf_hash(&leaf_hash(entry), origin, log_verifier)
    }

    /// As [`Receipt::verify`], for a caller that holds the RFC 6962 leaf hash of the entry.
    /// This does not panic.
    ///
    /// # Errors
    /// [`ReceiptError::Checkpoint`] or [`ReceiptError::Inclusion`].
    pub fn verify_leaf_hash(
        &self,
        leaf_hash: &Hash,
        origin: &str,
        log_verifier: &NoteVerifier,
    ) -> Result<Checkpoint, ReceiptError> {
        let checkpoint = Checkpoint::verify_note(&self.checkpoint, origin, log_verifier)?;
        verify_inclusion(leaf_hash, self.index, &checkpoint.tree, &self.proof)?;
        Ok(checkpoint)
    }
}

/// Decodes the `extra <base64>` line.
fn parse_extra(line: &str) -> Result<Vec<u8>, ReceiptError> {
    let encoded = line
        .strip_prefix("extra ")
        .ok_or(ReceiptError::ExtraBase64)?;
    STANDARD
        .decode(encoded)
        .map_err(|_| ReceiptError::ExtraBase64)
}

/// Decodes the proof lines, counting them before decoding any.
fn parse_proof<'a>(
    lines: impl Iterator<Item = &'a str> + Clone,
) -> Result<Vec<Hash>, ReceiptError> {
    let count = lines.clone().count();
    if count > MAX_PROOF_HASHES {
        return Err(ReceiptError::TooManyProofHashes {
            got: count,
            max: MAX_PROOF_HASHES,
        });
    }
    lines
        .enumerate()
        .map(|(position, line)| {
            Hash::from_base64(line).map_err(|source| ReceiptError::ProofHash { position, source })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use crate::cosignature::{CosignatureSigner, verify_cosignature};
    use crate::hash::{TreeHead, node_hash};
    use crate::note::{KeyName, NoteSigner};
    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;

    const ORIGIN: &str = "veritrail.example/log";

    fn log() -> NoteSigner {
        NoteSigner::new(
            KeyName::new(ORIGIN).unwrap(),
            SigningKey::from_bytes(&[8; 32]),
        )
    }

    /// A receipt for entry `c` (index 2) in the three-entry tree [a, b, c].
    fn receipt() -> Receipt {
        let (a, b, c) = (leaf_hash(b"a"), leaf_hash(b"b"), leaf_hash(b"c"));
        let ab = node_hash(&a, &b);
        let tree = TreeHead::new(3, node_hash(&ab, &c));
        let checkpoint = Checkpoint::new(ORIGIN, tree).unwrap().sign(&log()).unwrap();
        Receipt {
            extra: Some(b"context".to_vec()),
            index: 2,
            proof: vec![ab],
            checkpoint,
        }
    }

    #[test]
    fn layout() {
        let r = receipt();
        let text = String::from_utf8(r.to_bytes()).unwrap();
        let want = format!(
            "c2sp.org/tlog-proof@v1\nextra Y29udGV4dA==\nindex 2\n{}\n\n{}",
            r.proof[0].to_base64(),
            String::from_utf8(r.checkpoint.to_bytes()).unwrap()
        );
        assert_eq!(text, want);
    }

    #[test]
    fn round_trip_and_verify() {
        let mut r = receipt();
        let witness =
            CosignatureSigner::new(KeyName::new("w").unwrap(), SigningKey::from_bytes(&[1; 32]));
        let text = r.checkpoint.text().to_owned();
        r.checkpoint
            .add_signature(witness.sign(&text, 99).unwrap())
            .unwrap();
        let parsed = Receipt::from_bytes(&r.to_bytes()).unwrap();
        assert_eq!(parsed, r);
        let checkpoint = parsed.verify(b"c", ORIGIN, &log().verifier()).unwrap();
        assert_eq!(checkpoint.tree.size, 3);
        assert_eq!(
            verify_cosignature(&witness.verifier(), &parsed.checkpoint),
            Ok(99)
        );

        r.extra = None;
        assert_eq!(Receipt::from_bytes(&r.to_bytes()).unwrap(), r);
        r.extra = Some(Vec::new());
        assert_eq!(Receipt::from_bytes(&r.to_bytes()).unwrap(), r);
    }

    #[test]
    fn verify_rejections() {
        let r = receipt();
        assert!(matches!(
            r.verify(b"x", ORIGIN, &log().verifier()),
            Err(ReceiptError::Inclusion(ProofError::RootMismatch { .. }))
        ));
        let mut wrong_index = r.clone();
        wrong_index.index = 1;
        assert!(matches!(
            wrong_index.verify(b"c", ORIGIN, &log().verifier()),
            Err(ReceiptError::Inclusion(ProofError::WrongLength {
                got: 1,
                want: 2
            }))
        ));
        wrong_index.index = 3;
        assert_eq!(
            wrong_index.verify(b"c", ORIGIN, &log().verifier()),
            Err(ReceiptError::Inclusion(ProofError::IndexOutOfRange {
                index: 3,
                size: 3
            }))
        );
        assert_eq!(
            r.verify(b"c", "other", &log().verifier()),
            Err(ReceiptError::Checkpoint(CheckpointError::OriginMismatch {
                got: ORIGIN.into(),
                want: "other".into()
            }))
        );
        let stranger = NoteSigner::new(
            KeyName::new(ORIGIN).unwrap(),
            SigningKey::from_bytes(&[9; 32]),
        );
        assert_eq!(
            r.verify(b"c", ORIGIN, &stranger.verifier()),
            Err(ReceiptError::Checkpoint(CheckpointError::Note(
                NoteError::NoVerifiedSignature { signatures: 1 }
            )))
        );
    }

    #[test]
    fn malformed_receipts_are_rejected_with_exact_errors() {
        let note = String::from_utf8(receipt().checkpoint.to_bytes()).unwrap();
        let hash = leaf_hash(b"h").to_base64();
        let many = format!("{hash}\n").repeat(MAX_PROOF_HASHES + 1);
        let cases: Vec<(Vec<u8>, ReceiptError)> = vec![
            (
                vec![b'\n'; MAX_RECEIPT_SIZE + 1],
                ReceiptError::TooLarge {
                    size: MAX_RECEIPT_SIZE + 1,
                    max: MAX_RECEIPT_SIZE,
                },
            ),
            (
                format!("{RECEIPT_HEADER}\nindex 0\n{}", note.replace("\n\n", "\n")).into_bytes(),
                ReceiptError::MissingSeparator,
            ),
            (
                b"c2sp.org/tlog-proof@v1\nindex \xff\n\nx".to_vec(),
                ReceiptError::InvalidUtf8 { offset: 29 },
            ),
            (
                format!("c2sp.org/tlog-proof@v2\nindex 0\n\n{note}").into_bytes(),
                ReceiptError::Header,
            ),
            (format!("\n\n{note}").into_bytes(), ReceiptError::Header),
            (
                format!("{RECEIPT_HEADER}\nextra !!\nindex 0\n\n{note}").into_bytes(),
                ReceiptError::ExtraBase64,
            ),
            (
                format!("{RECEIPT_HEADER}\nextra AA\nindex 0\n\n{note}").into_bytes(),
                ReceiptError::ExtraBase64,
            ),
            (
                format!("{RECEIPT_HEADER}\n\n{note}").into_bytes(),
                ReceiptError::MissingIndex,
            ),
            (
                format!("{RECEIPT_HEADER}\nindex\n\n{note}").into_bytes(),
                ReceiptError::MissingIndex,
            ),
            (
                format!("{RECEIPT_HEADER}\nextra AA==\n\n{note}").into_bytes(),
                ReceiptError::MissingIndex,
            ),
            (
                format!("{RECEIPT_HEADER}\nindex 1\nextra AA==\n\n{note}").into_bytes(),
                ReceiptError::ProofHash {
                    position: 0,
                    source: HashError::Base64,
                },
            ),
            (
                format!("{RECEIPT_HEADER}\nindex 01\n\n{note}").into_bytes(),
                ReceiptError::Index(DecimalError::LeadingZero),
            ),
            (
                format!("{RECEIPT_HEADER}\nindex +1\n\n{note}").into_bytes(),
                ReceiptError::Index(DecimalError::NotDigit),
            ),
            (
                format!("{RECEIPT_HEADER}\nindex 18446744073709551616\n\n{note}").into_bytes(),
                ReceiptError::Index(DecimalError::Overflow),
            ),
            (
                format!("{RECEIPT_HEADER}\nindex 0\n{many}\n{note}").into_bytes(),
                ReceiptError::TooManyProofHashes { got: 65, max: 64 },
            ),
            (
                format!("{RECEIPT_HEADER}\nindex 0\n{hash}\nAAAA\n\n{note}").into_bytes(),
                ReceiptError::ProofHash {
                    position: 1,
                    source: HashError::Length { got: 3 },
                },
            ),
            (
                format!("{RECEIPT_HEADER}\nindex 0\n{hash} \n\n{note}").into_bytes(),
                ReceiptError::ProofHash {
                    position: 0,
                    source: HashError::Base64,
                },
            ),
            (
                format!("{RECEIPT_HEADER}\nindex 0\n\n").into_bytes(),
                ReceiptError::Note(NoteError::MissingSeparator),
            ),
        ];
        let mut failures = Vec::new();
        for (input, want) in cases {
            let got = Receipt::from_bytes(&input);
            if got != Err(want.clone()) {
                failures.push(format!(
                    "{:?}: got {got:?}, want {want:?}",
                    String::from_utf8_lossy(&input[..input.len().min(80)])
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn extra_blank_line_moves_into_the_unverified_note_text() {
        // The proof ends at the first blank line, so a second one becomes part of the note
        // text, whose signature then fails.
        let r = receipt();
        let mut bytes = r.to_bytes();
        let at = bytes.windows(2).position(|w| w == b"\n\n").unwrap();
        bytes.insert(at, b'\n');
        let parsed = Receipt::from_bytes(&bytes).unwrap();
        assert_eq!(parsed.proof, r.proof);
        assert!(parsed.checkpoint.text().starts_with('\n'));
        assert_eq!(
            parsed.verify(b"c", ORIGIN, &log().verifier()),
            Err(ReceiptError::Checkpoint(CheckpointError::Note(
                NoteError::InvalidSignature {
                    name: ORIGIN.into(),
                    key_id: log().key_id()
                }
            )))
        );
    }

    #[test]
    fn accepts_the_longest_proof() {
        let mut r = receipt();
        r.proof = vec![leaf_hash(b"p"); MAX_PROOF_HASHES];
        assert_eq!(Receipt::from_bytes(&r.to_bytes()).unwrap(), r);
    }

    proptest! {
        #[test]
        fn from_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Receipt::from_bytes(&bytes);
        }

        #[test]
        fn from_bytes_never_panics_on_mutated_receipts(
            pos in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = receipt().to_bytes();
            let i = pos.index(bytes.len());
            bytes[i] = byte;
            bytes.truncate(cut.index(bytes.len() + 1));
            if let Ok(r) = Receipt::from_bytes(&bytes) {
                prop_assert_eq!(r.to_bytes(), bytes);
            }
        }

        #[test]
        fn round_trip(
            extra in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
            index in any::<u64>(),
            proof in proptest::collection::vec(any::<[u8; 32]>(), 0..=MAX_PROOF_HASHES),
        ) {
            let r = Receipt { extra, index, proof: proof.into_iter().map(Hash).collect(), checkpoint: receipt().checkpoint };
            prop_assert_eq!(Receipt::from_bytes(&r.to_bytes()), Ok(r));
        }
    }
}
