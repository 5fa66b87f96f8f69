//! Transparency log checkpoints,
//! [tlog-checkpoint v1.0.0](https://c2sp.org/tlog-checkpoint@v1.0.0).
//!
//! A checkpoint is the text of a [signed note](crate::note) of at least three lines:
//!
//! ```text
//! <origin>          the log's identity, e.g. "veritrail.example/log"
//! <tree size>       ASCII decimal, no leading zeros ("0" for the empty tree)
//! <root hash>       standard base64 of the 32-byte RFC 6962 root
//! [extension lines] optional, non-empty, opaque; Veritrail writes none
//! ```
//!
//! In scope: the canonical encoder ([`Checkpoint::to_text`]), a strict parser
//! ([`Checkpoint::from_text`]), signing with the log key ([`Checkpoint::sign`]) and the
//! verification a client or witness does before trusting a checkpoint
//! ([`Checkpoint::verify_signed`]). Out of scope: consistency between checkpoints (see
//! [`crate::proof`]) and witness cosignatures (see [`crate::cosignature`]).
//!
//! ```
//! use veritrail_ledger::checkpoint::Checkpoint;
//! use veritrail_ledger::note::{KeyName, NoteSigner};
//! use veritrail_ledger::TreeHead;
//!
//! let signer = NoteSigner::generate(KeyName::new("veritrail.example/log")?)?;
//! let checkpoint = Checkpoint::new("veritrail.example/log", TreeHead::empty())?;
//! let note = checkpoint.sign(&signer)?;
//!
//! let (verified, _note) =
//!     Checkpoint::verify_signed(&note.to_bytes(), "veritrail.example/log", &signer.verifier())?;
//! assert_eq!(verified, checkpoint);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::fmt::Write as _;

use crate::hash::{Hash, HashError, TreeHead};
use crate::note::{MAX_NOTE_SIZE, Note, NoteError, NoteSigner, NoteVerifier};

pub use crate::ascii::{DecimalError, parse_decimal};

/// Errors from parsing, signing and verifying checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The checkpoint text is larger than [`MAX_NOTE_SIZE`].
    #[error("checkpoint is {size} bytes, more than the limit of {max}")]
    TooLarge {
        /// Size of the text in bytes.
        size: usize,
        /// The limit, [`MAX_NOTE_SIZE`].
        max: usize,
    },
    /// The text does not end in a newline.
    #[error("checkpoint text must end in a newline")]
    TextNotNewlineTerminated,
    /// The text has fewer than three lines.
    #[error("checkpoint has {got} lines, at least 3 are required")]
    TooFewLines {
        /// Number of lines.
        got: usize,
    },
    /// The origin line is empty.
    #[error("empty origin")]
    EmptyOrigin,
    /// A line holds a control character (or, when building, a newline).
    #[error("control character in line {line}")]
    ControlCharacter {
        /// 1-based line number: 1 is the origin, 4 and up the extension lines.
        line: usize,
    },
    /// The tree size is not a canonical decimal `u64`.
    #[error("invalid tree size: {0}")]
    TreeSize(#[source] DecimalError),
    /// The root hash is not canonical standard base64 of 32 bytes.
    #[error("invalid root hash: {0}")]
    RootHash(#[source] HashError),
    /// An extension line is empty.
    #[error("extension line {line} is empty")]
    EmptyExtensionLine {
        /// 1-based line number (4 and up).
        line: usize,
    },
    /// The checkpoint is for another log.
    #[error("checkpoint origin is {got:?}, expected {want:?}")]
    OriginMismatch {
        /// The origin in the checkpoint.
        got: String,
        /// The origin expected.
        want: String,
    },
    /// The note around the checkpoint is malformed, unsigned by the log or badly signed.
    #[error(transparent)]
    Note(#[from] NoteError),
}

/// The origin rule: non-empty, without control characters.
fn check_origin(origin: &str) -> Result<(), CheckpointError> {
    if origin.is_empty() {
        return Err(CheckpointError::EmptyOrigin);
    }
    if origin.chars().any(char::is_control) {
        return Err(CheckpointError::ControlCharacter { line: 1 });
    }
    Ok(())
}

/// The extension line rule: non-empty, without control characters.
fn check_extension(line: usize, extension: &str) -> Result<(), CheckpointError> {
    if extension.is_empty() {
        return Err(CheckpointError::EmptyExtensionLine { line });
    }
    if extension.chars().any(char::is_control) {
        return Err(CheckpointError::ControlCharacter { line });
    }
    Ok(())
}

/// A log checkpoint: origin, tree head and extension lines (normally none).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Checkpoint {
    /// The log's identity, e.g. `veritrail.example/log`.
    pub origin: String,
    /// Tree size and root hash.
    pub tree: TreeHead,
    /// Opaque extension lines, without newlines. Veritrail writes none.
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// A checkpoint without extension lines.
    ///
    /// # Errors
    /// [`CheckpointError::EmptyOrigin`] or [`CheckpointError::ControlCharacter`].
    pub fn new(origin: impl Into<String>, tree: TreeHead) -> Result<Self, CheckpointError> {
        let origin = origin.into();
        check_origin(&origin)?;
        Ok(Checkpoint {
            origin,
            tree,
            extensions: Vec::new(),
        })
    }

    /// Checks the origin and extension lines (the fields are public).
    ///
    /// # Errors
    /// [`CheckpointError::EmptyOrigin`], [`CheckpointError::ControlCharacter`] or
    /// [`CheckpointError::EmptyExtensionLine`].
    pub fn validate(&self) -> Result<(), CheckpointError> {
        check_origin(&self.origin)?;
        for (i, extension) in self.extensions.iter().enumerate() {
            check_extension(i + 4, extension)?;
        }
        Ok(())
    }

    /// The note text: `origin\nsize\nbase64 root\n` and one line per extension.
    ///
    /// Only a checkpoint that passes [`Checkpoint::validate`] parses back to itself.
    pub fn to_text(&self) -> String {
        let mut text = String::with_capacity(self.origin.len() + 80);
        // Writing to a String cannot fail.
        let _ = write!(
            text,
            "{}\n{}\n{}\n",
            self.origin,
            self.tree.size,
            self.tree.root.to_base64()
        );
        for extension in &self.extensions {
            text.push_str(extension);
            text.push('\n');
        }
        text
    }

    /// Parses a checkpoint note text strictly. It does not check any signature.
    ///
    /// This does not panic.
    ///
    /// # Errors
    /// [`CheckpointError::TooLarge`], [`CheckpointError::TextNotNewlineTerminated`],
    /// [`CheckpointError::TooFewLines`], [`CheckpointError::EmptyOrigin`],
    /// [`CheckpointError::ControlCharacter`], [`CheckpointError::TreeSize`],
    /// [`CheckpointError::RootHash`] or [`CheckpointError::EmptyExtensionLine`].
    pub fn from_text(text: &str) -> Result<Self, CheckpointError> {
        if text.len() > MAX_NOTE_SIZE {
            return Err(CheckpointError::TooLarge {
                size: text.len(),
                max: MAX_NOTE_SIZE,
            });
        }
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::TextNotNewlineTerminated)?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(CheckpointError::TooFewLines {
                got: body.split('\n').count(),
            });
        };
        check_origin(origin)?;
        let size = parse_decimal(size).map_err(CheckpointError::TreeSize)?;
        let root = Hash::from_base64(root).map_err(CheckpointError::RootHash)?;
        let extensions = lines
            .enumerate()
            .map(|(i, line)| check_extension(i + 4, line).map(|()| line.to_owned()))
            .collect::<Result<_, _>>()?;
        Ok(Checkpoint {
            origin: origin.to_owned(),
            tree: TreeHead::new(size, root),
            extensions,
        })
    }

    /// Signs the checkpoint with the log key: a note with exactly one signature line.
    ///
    /// Without extension lines the bytes are those every C2SP implementation produces.
    ///
    /// # Errors
    /// The [`Checkpoint::validate`] errors, or [`CheckpointError::Note`] with
    /// [`NoteError::TooLarge`] for a text above [`MAX_NOTE_SIZE`].
    pub fn sign(&self, signer: &NoteSigner) -> Result<Note, CheckpointError> {
        self.validate()?;
        let mut note = Note::new(self.to_text())?;
        note.add_signature(signer.sign(note.text()))?;
        Ok(note)
    }

    /// Verifies a parsed note as a checkpoint of the log `origin` signed by `verifier`.
    ///
    /// The log's signature is checked first (other signatures, such as cosignatures, are
    /// ignored), then the text is parsed and its origin compared. This does not panic.
    ///
    /// # Errors
    /// [`CheckpointError::Note`] when the log's signature is missing
    /// ([`NoteError::NoVerifiedSignature`]) or bad ([`NoteError::InvalidSignature`]), the
    /// [`Checkpoint::from_text`] errors, and [`CheckpointError::OriginMismatch`].
    pub fn verify_note(
        note: &Note,
        origin: &str,
        verifier: &NoteVerifier,
    ) -> Result<Checkpoint, CheckpointError> {
        note.verify(core::slice::from_ref(verifier))?;
        let checkpoint = Checkpoint::from_text(note.text())?;
        if checkpoint.origin != origin {
            return Err(CheckpointError::OriginMismatch {
                got: checkpoint.origin,
                want: origin.to_owned(),
            });
        }
        Ok(checkpoint)
    }

    /// Parses an encoded signed note and verifies it as a checkpoint of the log `origin`
    /// signed by `verifier` (see [`Checkpoint::verify_note`]). This does not panic.
    ///
    /// # Errors
    /// [`CheckpointError::Note`] for a malformed note (see [`Note::from_bytes`]) and the
    /// [`Checkpoint::verify_note`] errors.
    pub fn verify_signed(
        note_bytes: &[u8],
        origin: &str,
        verifier: &NoteVerifier,
    ) -> Result<(Checkpoint, Note), CheckpointError> {
        let note = Note::from_bytes(note_bytes)?;
        let checkpoint = Checkpoint::verify_note(&note, origin, verifier)?;
        Ok((checkpoint, note))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use crate::hash::leaf_hash;
    use crate::note::KeyName;
    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;

    const ORIGIN: &str = "veritrail.example/log";
    const EMPTY_ROOT: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

    fn log_signer() -> NoteSigner {
        NoteSigner::new(
            KeyName::new(ORIGIN).unwrap(),
            SigningKey::from_bytes(&[5; 32]),
        )
    }

    fn checkpoint(size: u64) -> Checkpoint {
        Checkpoint::new(ORIGIN, TreeHead::new(size, leaf_hash(&size.to_be_bytes()))).unwrap()
    }

    #[test]
    fn text_layout_and_round_trip() {
        let empty = Checkpoint::new(ORIGIN, TreeHead::empty()).unwrap();
        assert_eq!(empty.to_text(), format!("{ORIGIN}\n0\n{EMPTY_ROOT}\n"));
        assert_eq!(Checkpoint::from_text(&empty.to_text()), Ok(empty));
        let mut with_ext = checkpoint(7);
        with_ext.extensions = vec!["ext one".into(), "— two".into()];
        assert_eq!(Checkpoint::from_text(&with_ext.to_text()), Ok(with_ext));
    }

    #[test]
    fn malformed_texts_are_rejected_with_exact_errors() {
        let cases: Vec<(String, CheckpointError)> = vec![
            (
                format!("{ORIGIN}\n0\n{EMPTY_ROOT}"),
                CheckpointError::TextNotNewlineTerminated,
            ),
            (String::new(), CheckpointError::TextNotNewlineTerminated),
            (
                format!("{ORIGIN}\n0\n"),
                CheckpointError::TooFewLines { got: 2 },
            ),
            ("\n".into(), CheckpointError::TooFewLines { got: 1 }),
            (format!("\n0\n{EMPTY_ROOT}\n"), CheckpointError::EmptyOrigin),
            (
                format!("a\u{7f}\n0\n{EMPTY_ROOT}\n"),
                CheckpointError::ControlCharacter { line: 1 },
            ),
            (
                format!("{ORIGIN}\n00\n{EMPTY_ROOT}\n"),
                CheckpointError::TreeSize(DecimalError::LeadingZero),
            ),
            (
                format!("{ORIGIN}\n+5\n{EMPTY_ROOT}\n"),
                CheckpointError::TreeSize(DecimalError::NotDigit),
            ),
            (
                format!("{ORIGIN}\n\n{EMPTY_ROOT}\n"),
                CheckpointError::TreeSize(DecimalError::Empty),
            ),
            (
                format!("{ORIGIN}\n99999999999999999999\n{EMPTY_ROOT}\n"),
                CheckpointError::TreeSize(DecimalError::Overflow),
            ),
            (
                format!("{ORIGIN}\n0\nAAAA\n"),
                CheckpointError::RootHash(HashError::Length { got: 3 }),
            ),
            (
                format!("{ORIGIN}\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU\n"),
                CheckpointError::RootHash(HashError::Base64),
            ),
            (
                format!("{ORIGIN}\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFV=\n"),
                CheckpointError::RootHash(HashError::Base64),
            ),
            (
                format!("{ORIGIN}\n0\n{EMPTY_ROOT} \n"),
                CheckpointError::RootHash(HashError::Base64),
            ),
            (
                format!("{ORIGIN}\n0\n{EMPTY_ROOT}\n\n"),
                CheckpointError::EmptyExtensionLine { line: 4 },
            ),
            (
                format!("{ORIGIN}\n0\n{EMPTY_ROOT}\nx\n\n"),
                CheckpointError::EmptyExtensionLine { line: 5 },
            ),
            (
                format!("{ORIGIN}\n0\n{EMPTY_ROOT}\nx\u{85}\n"),
                CheckpointError::ControlCharacter { line: 4 },
            ),
            (
                "a".repeat(MAX_NOTE_SIZE + 1),
                CheckpointError::TooLarge {
                    size: MAX_NOTE_SIZE + 1,
                    max: MAX_NOTE_SIZE,
                },
            ),
        ];
        let mut failures = Vec::new();
        for (text, want) in cases {
            let got = Checkpoint::from_text(&text);
            if got != Err(want.clone()) {
                failures.push(format!("{:?}: got {got:?}, want {want:?}", text.get(..80)));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn sign_and_verify() {
        let signer = log_signer();
        let cp = checkpoint(42);
        let note = cp.sign(&signer).unwrap();
        assert_eq!(note.text(), cp.to_text());
        assert_eq!(note.signatures().len(), 1);
        let (got, got_note) =
            Checkpoint::verify_signed(&note.to_bytes(), ORIGIN, &signer.verifier()).unwrap();
        assert_eq!(got, cp);
        assert_eq!(got_note, note);
    }

    #[test]
    fn verify_signed_rejections() {
        let signer = log_signer();
        let other = NoteSigner::new(
            KeyName::new("other").unwrap(),
            SigningKey::from_bytes(&[6; 32]),
        );
        let bytes = checkpoint(3).sign(&signer).unwrap().to_bytes();
        assert_eq!(
            Checkpoint::verify_signed(&bytes, "other.example/log", &signer.verifier()),
            Err(CheckpointError::OriginMismatch {
                got: ORIGIN.into(),
                want: "other.example/log".into()
            })
        );
        assert_eq!(
            Checkpoint::verify_signed(&bytes, ORIGIN, &other.verifier()),
            Err(CheckpointError::Note(NoteError::NoVerifiedSignature {
                signatures: 1
            }))
        );
        let tampered = String::from_utf8(bytes.clone())
            .unwrap()
            .replacen("\n3\n", "\n4\n", 1);
        assert_eq!(
            Checkpoint::verify_signed(tampered.as_bytes(), ORIGIN, &signer.verifier()),
            Err(CheckpointError::Note(NoteError::InvalidSignature {
                name: ORIGIN.into(),
                key_id: signer.key_id()
            }))
        );
        assert_eq!(
            Checkpoint::verify_signed(b"garbage", ORIGIN, &signer.verifier()),
            Err(CheckpointError::Note(NoteError::MissingSeparator))
        );
        // A validly signed note that is not a checkpoint.
        let mut note = Note::new("hello\n").unwrap();
        note.add_signature(signer.sign("hello\n")).unwrap();
        assert_eq!(
            Checkpoint::verify_signed(&note.to_bytes(), ORIGIN, &signer.verifier()),
            Err(CheckpointError::TooFewLines { got: 1 })
        );
    }

    #[test]
    fn invalid_checkpoints_are_not_signed() {
        let signer = log_signer();
        assert_eq!(
            Checkpoint::new("", TreeHead::empty()),
            Err(CheckpointError::EmptyOrigin)
        );
        assert_eq!(
            Checkpoint::new("a\nb", TreeHead::empty()),
            Err(CheckpointError::ControlCharacter { line: 1 })
        );
        let mut cp = checkpoint(1);
        cp.extensions.push(String::new());
        assert_eq!(
            cp.sign(&signer),
            Err(CheckpointError::EmptyExtensionLine { line: 4 })
        );
        cp.extensions = vec!["ok".into(), "a\nb".into()];
        assert_eq!(
            cp.sign(&signer),
            Err(CheckpointError::ControlCharacter { line: 5 })
        );
        cp.origin = "a\tb".into();
        assert_eq!(
            cp.sign(&signer),
            Err(CheckpointError::ControlCharacter { line: 1 })
        );
    }

    #[test]
    fn sign_reports_an_invalid_checkpoint() {
        let cp = Checkpoint {
            origin: String::new(),
            tree: TreeHead::empty(),
            extensions: vec![],
        };
        assert_eq!(cp.sign(&log_signer()), Err(CheckpointError::EmptyOrigin));
    }

    proptest! {
        #[test]
        fn from_text_never_panics(text in "\\PC{0,40}(\n\\PC{0,50}){0,5}\n?") {
            let _ = Checkpoint::from_text(&text);
        }

        #[test]
        fn from_text_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Checkpoint::from_text(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn round_trip(
            origin in "[^\\p{Cc}]{1,40}",
            size in any::<u64>(),
            root in any::<[u8; 32]>(),
            extensions in proptest::collection::vec("[^\\p{Cc}]{1,20}", 0..3),
        ) {
            let cp = Checkpoint { origin, tree: TreeHead::new(size, Hash(root)), extensions };
            prop_assert_eq!(Checkpoint::from_text(&cp.to_text()), Ok(cp.clone()));
            let note = cp.sign(&log_signer()).unwrap();
            let (got, _) = Checkpoint::verify_signed(&note.to_bytes(), &cp.origin, &log_signer().verifier()).unwrap();
            prop_assert_eq!(got, cp);
        }
    }
}
