//! Timestamped Ed25519 witness cosignatures,
//! [tlog-cosignature v1.0.1](https://c2sp.org/tlog-cosignature@v1.0.1) (signature type 0x04).
//!
//! A cosignature is a note signature line on a checkpoint. Its key ID is
//! SHA-256(name || 0x0A || 0x04 || 32-byte public key)\[:4\] and its payload, after the key ID,
//! is `timestamp (u64, big-endian seconds) || Ed25519 signature (64 bytes)`. The signed message
//! is
//!
//! ```text
//! cosignature/v1
//! time <timestamp in decimal>
//! <checkpoint note text>
//! ```
//!
//! Meaning: as of that time, this is the largest tree consistent with all earlier ones the
//! cosigner saw.
//!
//! Key strings: the verifier key is `<name>+<hex key ID>+<base64(0x04 || public key)>`, a
//! [`NoteVerifier`] of type [`SIG_TYPE_COSIGNATURE`]. The private key string follows the Go
//! `note` convention with the type byte 0x04 in place of 0x01:
//! `PRIVATE+KEY+<name>+<hex key ID over type 0x04>+<base64(0x04 || 32-byte seed)>`.
//!
//! In scope: the Ed25519 cosignature (v1). Out of scope: ML-DSA-44 subtree cosignatures (type
//! 0x06) and any check that the timestamp is not in the future (a caller's policy).
//!
//! ```
//! use veritrail_ledger::cosignature::{CosignatureSigner, verify_cosignature};
//! use veritrail_ledger::note::{KeyName, Note};
//!
//! let witness = CosignatureSigner::generate(KeyName::new("witness.example/w1")?)?;
//! let mut note = Note::new("example.com/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n")?;
//! note.add_signature(witness.sign(note.text(), 1_700_000_000)?)?;
//! assert_eq!(verify_cosignature(&witness.verifier(), &note)?, 1_700_000_000);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::fmt;
use core::str::FromStr;

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

use crate::note::{
    self, CosignatureFault, KeyName, Note, NoteError, NoteSignature, NoteVerifier,
    SIG_TYPE_COSIGNATURE,
};

pub use crate::note::{
    COSIGNATURE_HEADER, COSIGNATURE_MAX_TIMESTAMP as MAX_TIMESTAMP,
    COSIGNATURE_PAYLOAD_SIZE as PAYLOAD_SIZE,
};

/// Errors from producing and checking cosignatures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CosignatureError {
    /// The verifier key is not a cosignature key (type 0x04).
    #[error("key type 0x{got:02x} is not a cosignature key (0x04)")]
    UnsupportedKeyType {
        /// The verifier's signature type.
        got: u8,
    },
    /// The signature payload is not a timestamp and an Ed25519 signature.
    #[error("cosignature payload is {got} bytes, expected {want}")]
    PayloadLength {
        /// Length found (without the key ID).
        got: usize,
        /// Length required, [`PAYLOAD_SIZE`].
        want: usize,
    },
    /// The timestamp is above 2^63 - 1.
    #[error("timestamp {timestamp} is above the limit of {max}")]
    TimestampOutOfRange {
        /// The timestamp found or asked for.
        timestamp: u64,
        /// The limit, [`MAX_TIMESTAMP`].
        max: u64,
    },
    /// The Ed25519 signature does not verify.
    #[error("invalid cosignature by {name} ({key_id:08x})")]
    InvalidSignature {
        /// The cosigner's key name.
        name: String,
        /// The cosigner's key ID.
        key_id: u32,
    },
    /// The note holds no signature line with the cosigner's name and key ID.
    #[error("no cosignature by {name} ({key_id:08x})")]
    NotFound {
        /// The cosigner's key name.
        name: String,
        /// The cosigner's key ID.
        key_id: u32,
    },
    /// A key string, the checkpoint text or key generation failed (see [`NoteError`]).
    #[error(transparent)]
    Note(#[from] NoteError),
}

/// The message a v1 cosignature signs: header, time line and the checkpoint note text.
pub fn signed_message(checkpoint_text: &str, timestamp: u64) -> Vec<u8> {
    note::cosignature_message(checkpoint_text, timestamp)
}

fn check_timestamp(timestamp: u64) -> Result<(), CosignatureError> {
    if timestamp > MAX_TIMESTAMP {
        return Err(CosignatureError::TimestampOutOfRange {
            timestamp,
            max: MAX_TIMESTAMP,
        });
    }
    Ok(())
}

/// Checks a payload (`timestamp || signature`) over `text` and returns the timestamp.
///
/// [`CosignatureError::InvalidSignature`] from here carries an empty name and key ID 0: callers
/// know the key and fill them in. This does not panic.
pub(crate) fn verify_payload(
    key: &VerifyingKey,
    text: &str,
    payload: &[u8],
) -> Result<u64, CosignatureError> {
    note::verify_cosignature_payload(key, text, payload).map_err(|fault| match fault {
        CosignatureFault::Length(got) => CosignatureError::PayloadLength {
            got,
            want: PAYLOAD_SIZE,
        },
        CosignatureFault::Timestamp(timestamp) => CosignatureError::TimestampOutOfRange {
            timestamp,
            max: MAX_TIMESTAMP,
        },
        CosignatureFault::Signature => CosignatureError::InvalidSignature {
            name: String::new(),
            key_id: 0,
        },
    })
}

/// Verifies the cosignature by `verifier` on a checkpoint note and returns its timestamp.
///
/// Only lines with the verifier's name and key ID are considered; every such line must verify
/// (the timestamp of the first is returned). Other signatures are ignored. It does not check
/// the log's signature nor parse the checkpoint. This does not panic.
///
/// # Errors
/// [`CosignatureError::UnsupportedKeyType`] if `verifier` is not a type 0x04 key,
/// [`CosignatureError::NotFound`] if no line matches, [`CosignatureError::PayloadLength`],
/// [`CosignatureError::TimestampOutOfRange`] or [`CosignatureError::InvalidSignature`] for a
/// bad line.
pub fn verify_cosignature(verifier: &NoteVerifier, note: &Note) -> Result<u64, CosignatureError> {
    if verifier.signature_type() != SIG_TYPE_COSIGNATURE {
        return Err(CosignatureError::UnsupportedKeyType {
            got: verifier.signature_type(),
        });
    }
    let mut first = None;
    for signature in note.signatures().iter().filter(|s| verifier.matches(s)) {
        let timestamp = verify_payload(verifier.public_key(), note.text(), signature.signature())
            .map_err(|e| match e {
            CosignatureError::InvalidSignature { .. } => CosignatureError::InvalidSignature {
                name: verifier.name().to_string(),
                key_id: verifier.key_id(),
            },
            other => other,
        })?;
        first.get_or_insert(timestamp);
    }
    first.ok_or_else(|| CosignatureError::NotFound {
        name: verifier.name().to_string(),
        key_id: verifier.key_id(),
    })
}

/// A witness's Ed25519 cosigning key (signature type 0x04). [`fmt::Debug`] never prints the key.
#[derive(Clone)]
pub struct CosignatureSigner {
    name: KeyName,
    key_id: u32,
    key: SigningKey,
}

impl CosignatureSigner {
    /// A cosigner from a name and an Ed25519 signing key.
    pub fn new(name: KeyName, key: SigningKey) -> Self {
        let key_id = note::key_id(&name, SIG_TYPE_COSIGNATURE, key.verifying_key().as_bytes());
        CosignatureSigner { name, key_id, key }
    }

    /// A cosigner from a name and a 32-byte Ed25519 seed (RFC 8032 private key).
    pub fn from_seed(name: KeyName, seed: [u8; note::ED25519_KEY_SIZE]) -> Self {
        Self::new(name, SigningKey::from_bytes(&seed))
    }

    /// Generates a new key with a seed from the operating system (`getrandom`).
    ///
    /// # Errors
    /// [`CosignatureError::Note`] with [`NoteError::Random`] if the random number generator
    /// fails.
    pub fn generate(name: KeyName) -> Result<Self, CosignatureError> {
        Ok(Self::new(name, note::generate_ed25519()?))
    }

    /// The key name.
    pub fn name(&self) -> &KeyName {
        &self.name
    }

    /// The key ID (computed over type 0x04).
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The verifier key (type 0x04) for this cosigner.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier::cosignature(self.name.clone(), self.key.verifying_key())
    }

    /// Cosigns a checkpoint note text at `timestamp` (POSIX seconds).
    ///
    /// # Errors
    /// [`CosignatureError::TimestampOutOfRange`] above 2^63 - 1; [`CosignatureError::Note`]
    /// when `checkpoint_text` is not a valid note text (see [`Note::new`]).
    pub fn sign(
        &self,
        checkpoint_text: &str,
        timestamp: u64,
    ) -> Result<NoteSignature, CosignatureError> {
        check_timestamp(timestamp)?;
        Note::new(checkpoint_text)?;
        let signature = self.key.sign(&signed_message(checkpoint_text, timestamp));
        let mut payload = Vec::with_capacity(PAYLOAD_SIZE);
        payload.extend_from_slice(&timestamp.to_be_bytes());
        payload.extend_from_slice(&signature.to_bytes());
        Ok(NoteSignature::new(self.name.clone(), self.key_id, payload)?)
    }

    /// The private key string `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x04 || seed)>`.
    /// Keep it secret: it is the signing key.
    pub fn to_private_key_string(&self) -> String {
        note::format_private_key(&self.name, SIG_TYPE_COSIGNATURE, &self.key)
    }
}

impl FromStr for CosignatureSigner {
    type Err = CosignatureError;

    /// Parses `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x04 || seed)>`; the key ID must match.
    /// Errors never include key material. This does not panic.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, key) = note::parse_private_key(s, SIG_TYPE_COSIGNATURE)?;
        Ok(CosignatureSigner::new(name, key))
    }
}

impl fmt::Debug for CosignatureSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CosignatureSigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use crate::note::{NoteSigner, SIG_TYPE_ED25519};
    use proptest::prelude::*;

    const TEXT: &str = "example.com/log\n5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n";

    fn cosigner(name: &str, seed: u8) -> CosignatureSigner {
        CosignatureSigner::new(
            KeyName::new(name).unwrap(),
            SigningKey::from_bytes(&[seed; 32]),
        )
    }

    fn cosigned(signers: &[(&CosignatureSigner, u64)]) -> Note {
        let log = NoteSigner::new(
            KeyName::new("example.com/log").unwrap(),
            SigningKey::from_bytes(&[9; 32]),
        );
        let mut note = Note::new(TEXT).unwrap();
        note.add_signature(log.sign(TEXT)).unwrap();
        for (s, t) in signers {
            note.add_signature(s.sign(TEXT, *t).unwrap()).unwrap();
        }
        note
    }

    #[test]
    fn signed_message_layout() {
        assert_eq!(
            signed_message("o\n1\nr\n", 1679315147),
            b"cosignature/v1\ntime 1679315147\no\n1\nr\n".to_vec()
        );
    }

    #[test]
    fn cosign_and_verify() {
        let w = cosigner("witness.example/w1", 1);
        let note = cosigned(&[(&w, 1679315147)]);
        let reparsed = Note::from_bytes(&note.to_bytes()).unwrap();
        assert_eq!(verify_cosignature(&w.verifier(), &reparsed), Ok(1679315147));
        // Note::verify delegates type 0x04 keys here.
        assert_eq!(reparsed.verify(&[w.verifier()]).unwrap().len(), 1);
        let sig = &reparsed.signatures()[1];
        assert_eq!(sig.signature().len(), PAYLOAD_SIZE);
        assert_eq!(&sig.signature()[..8], &1679315147u64.to_be_bytes());
        assert_eq!(sig.key_id(), w.key_id());
    }

    #[test]
    fn key_id_is_over_type_0x04() {
        let w = cosigner("w", 1);
        let plain = NoteSigner::new(KeyName::new("w").unwrap(), SigningKey::from_bytes(&[1; 32]));
        assert_ne!(w.key_id(), plain.key_id());
        assert_eq!(w.verifier().signature_type(), SIG_TYPE_COSIGNATURE);
        assert_eq!(
            w.key_id(),
            note::key_id(w.name(), 4, w.verifier().public_key().as_bytes())
        );
        // An Ed25519 signature by the same key is not a cosignature: it is ignored.
        let mut note = Note::new(TEXT).unwrap();
        note.add_signature(plain.sign(TEXT)).unwrap();
        assert_eq!(
            verify_cosignature(&w.verifier(), &note),
            Err(CosignatureError::NotFound {
                name: "w".into(),
                key_id: w.key_id()
            })
        );
    }

    #[test]
    fn key_strings_round_trip() {
        let w = cosigner("witness.example/w1", 3);
        let private = w.to_private_key_string();
        assert!(private.starts_with(&format!(
            "PRIVATE+KEY+witness.example/w1+{:08x}+B",
            w.key_id()
        )));
        let again: CosignatureSigner = private.parse().unwrap();
        assert_eq!(again.verifier(), w.verifier());
        let public = w.verifier().to_string();
        assert!(public.starts_with(&format!("witness.example/w1+{:08x}+B", w.key_id())));
        assert_eq!(public.parse::<NoteVerifier>().unwrap(), w.verifier());
        // A plain note key is not a cosigner key and vice versa.
        let plain = NoteSigner::new(KeyName::new("x").unwrap(), SigningKey::from_bytes(&[1; 32]));
        assert_eq!(
            plain
                .to_private_key_string()
                .parse::<CosignatureSigner>()
                .map(|s| s.key_id()),
            Err(CosignatureError::Note(NoteError::UnsupportedKeyType {
                got: SIG_TYPE_ED25519
            }))
        );
        assert!(!format!("{w:?}").contains(&private[private.len() - 20..]));
    }

    #[test]
    fn rejections() {
        let w = cosigner("w", 1);
        let note = cosigned(&[(&w, 10)]);
        let log_key = note::key_id(
            &KeyName::new("example.com/log").unwrap(),
            1,
            SigningKey::from_bytes(&[9; 32]).verifying_key().as_bytes(),
        );
        let log_verifier = NoteVerifier::ed25519(
            KeyName::new("example.com/log").unwrap(),
            SigningKey::from_bytes(&[9; 32]).verifying_key(),
        );
        assert_eq!(log_verifier.key_id(), log_key);
        assert_eq!(
            verify_cosignature(&log_verifier, &note),
            Err(CosignatureError::UnsupportedKeyType { got: 1 })
        );
        let other = cosigner("w", 2);
        assert_eq!(
            verify_cosignature(&other.verifier(), &note),
            Err(CosignatureError::NotFound {
                name: "w".into(),
                key_id: other.key_id()
            })
        );
        assert_eq!(
            w.sign(TEXT, MAX_TIMESTAMP + 1),
            Err(CosignatureError::TimestampOutOfRange {
                timestamp: 1 << 63,
                max: MAX_TIMESTAMP
            })
        );
        assert!(w.sign(TEXT, MAX_TIMESTAMP).is_ok());
        assert_eq!(
            w.sign("no newline", 1),
            Err(CosignatureError::Note(NoteError::TextNotNewlineTerminated))
        );

        let tamper = |payload: Vec<u8>| {
            let mut bytes = note.to_bytes();
            let line = NoteSignature::new(w.name().clone(), w.key_id(), payload)
                .unwrap()
                .to_line();
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
            Note::from_bytes(&bytes).unwrap()
        };
        let good = note.signatures()[1].signature().to_vec();
        let bad = CosignatureError::InvalidSignature {
            name: "w".into(),
            key_id: w.key_id(),
        };

        let mut other_time = good.clone();
        other_time[7] ^= 1;
        assert_eq!(
            verify_cosignature(&w.verifier(), &tamper(other_time)),
            Err(bad.clone())
        );
        let mut flipped = good.clone();
        flipped[20] ^= 1;
        assert_eq!(
            verify_cosignature(&w.verifier(), &tamper(flipped.clone())),
            Err(bad)
        );
        assert_eq!(
            tamper(flipped).verify(&[w.verifier()]),
            Err(NoteError::InvalidSignature {
                name: "w".into(),
                key_id: w.key_id()
            })
        );
        assert_eq!(
            verify_cosignature(&w.verifier(), &tamper(good[..71].to_vec())),
            Err(CosignatureError::PayloadLength { got: 71, want: 72 })
        );
        assert_eq!(
            tamper(good[..64].to_vec()).verify(&[w.verifier()]),
            Err(NoteError::SignatureLength {
                name: "w".into(),
                got: 64,
                want: 72
            })
        );
        let mut huge_time = good;
        huge_time[0] = 0x80;
        assert_eq!(
            verify_cosignature(&w.verifier(), &tamper(huge_time)),
            Err(CosignatureError::TimestampOutOfRange {
                timestamp: (1 << 63) | 10,
                max: MAX_TIMESTAMP
            })
        );
    }

    #[test]
    fn several_cosigners() {
        let ws: Vec<CosignatureSigner> = (0..20).map(|i| cosigner(&format!("w{i}"), i)).collect();
        let pairs: Vec<(&CosignatureSigner, u64)> = ws.iter().zip(100..).collect();
        let note = Note::from_bytes(&cosigned(&pairs).to_bytes()).unwrap();
        for (i, w) in ws.iter().enumerate() {
            assert_eq!(verify_cosignature(&w.verifier(), &note), Ok(100 + i as u64));
        }
    }

    proptest! {
        #[test]
        fn private_key_parse_never_panics(s in "\\PC{0,100}") {
            let _ = s.parse::<CosignatureSigner>();
            let _ = format!("PRIVATE+KEY+{s}").parse::<CosignatureSigner>();
        }

        #[test]
        fn cosign_round_trip(seed in any::<[u8; 32]>(), timestamp in 0..=MAX_TIMESTAMP) {
            let w = CosignatureSigner::new(KeyName::new("w").unwrap(), SigningKey::from_bytes(&seed));
            let mut note = Note::new(TEXT).unwrap();
            note.add_signature(w.sign(TEXT, timestamp).unwrap()).unwrap();
            let note = Note::from_bytes(&note.to_bytes()).unwrap();
            prop_assert_eq!(verify_cosignature(&w.verifier(), &note), Ok(timestamp));
            let again: CosignatureSigner = w.to_private_key_string().parse().unwrap();
            prop_assert_eq!(again.verifier(), w.verifier());
        }
    }
}
