//! C2SP signed notes, [signed-note v1.0.0](https://c2sp.org/signed-note@v1.0.0).
//!
//! A signed note is a UTF-8 text ending in a newline, a blank line, and one or more
//! signature lines:
//!
//! ```text
//! <text, each line ending in \n>
//!
//! — <key name> <base64(key ID [4 bytes, big-endian] || signature)>
//! ```
//!
//! In scope:
//!
//! - [`KeyName`], the validated key name (non-empty, no whitespace, no `+`, no control
//!   characters);
//! - [`key_id`], the recommended key ID: SHA-256(name || 0x0A || type || public key)\[:4\];
//! - [`NoteVerifier`], the verifier key string `<name>+<hex key ID>+<base64(type || key)>` for
//!   Ed25519 (type [`SIG_TYPE_ED25519`]) and timestamped cosignature (type
//!   [`SIG_TYPE_COSIGNATURE`], see [`crate::cosignature`]) keys;
//! - [`NoteSigner`], an Ed25519 signer with the Go private key string
//!   `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || 32-byte seed)>`;
//! - [`Note`]: a total, size-bounded parser ([`Note::from_bytes`]), the encoder
//!   ([`Note::to_bytes`]) and the verification rules of the specification ([`Note::verify`]).
//!
//! Out of scope: ECDSA (0x02), RFC 6962 tree head (0x05) and ML-DSA signature types, which
//! Veritrail neither produces nor trusts. Signatures of those types by keys the caller does not
//! know are ignored, as the specification requires.
//!
//! ```
//! use veritrail_ledger::note::{KeyName, Note, NoteSigner};
//!
//! let signer = NoteSigner::generate(KeyName::new("veritrail.example/log")?)?;
//! let mut note = Note::new("hello\n")?;
//! note.add_signature(signer.sign(note.text()))?;
//!
//! let parsed = Note::from_bytes(&note.to_bytes())?;
//! let verified = parsed.verify(&[signer.verifier()])?;
//! assert_eq!(verified.len(), 1);
//! # Ok::<(), veritrail_ledger::note::NoteError>(())
//! ```

use core::fmt;
use core::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// Signature type byte of plain Ed25519 note signatures (signed-note v1.0.0).
pub const SIG_TYPE_ED25519: u8 = 0x01;

/// Signature type byte of timestamped Ed25519 cosignatures (tlog-cosignature v1.0.1).
pub const SIG_TYPE_COSIGNATURE: u8 = 0x04;

/// The first line of the message a type 0x04 cosignature signs, including its newline
/// (tlog-cosignature v1.0.1; re-exported as `cosignature::COSIGNATURE_HEADER`).
///
/// The note layer owns the signed message of every signature type it verifies, so that
/// [`NoteVerifier`] checks cosignatures without depending on [`crate::cosignature`], which
/// builds on this module.
pub const COSIGNATURE_HEADER: &str = "cosignature/v1\n";

/// Largest timestamp a cosignature may carry: 2^63 - 1 (the spec's limit; re-exported as
/// `cosignature::MAX_TIMESTAMP`).
pub const COSIGNATURE_MAX_TIMESTAMP: u64 = u64::MAX >> 1;

/// Length of a cosignature payload after the key ID: 8-byte timestamp and 64-byte signature
/// (re-exported as `cosignature::PAYLOAD_SIZE`).
pub const COSIGNATURE_PAYLOAD_SIZE: usize = 8 + ED25519_SIGNATURE_SIZE;

/// The message a v1 cosignature signs: header, time line and the checkpoint note text.
pub(crate) fn cosignature_message(checkpoint_text: &str, timestamp: u64) -> Vec<u8> {
    format!("{COSIGNATURE_HEADER}time {timestamp}\n{checkpoint_text}").into_bytes()
}

/// Why a cosignature payload did not verify; `cosignature` maps it to its public error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CosignatureFault {
    /// The payload is not `COSIGNATURE_PAYLOAD_SIZE` bytes long.
    Length(usize),
    /// The timestamp is above [`COSIGNATURE_MAX_TIMESTAMP`].
    Timestamp(u64),
    /// The Ed25519 signature does not verify.
    Signature,
}

/// Checks a cosignature payload (`timestamp || signature`) over `text` and returns the
/// timestamp. This does not panic.
pub(crate) fn verify_cosignature_payload(
    key: &VerifyingKey,
    text: &str,
    payload: &[u8],
) -> Result<u64, CosignatureFault> {
    let length = CosignatureFault::Length(payload.len());
    let (timestamp, signature) = payload.split_first_chunk::<8>().ok_or(length)?;
    let signature: &[u8; ED25519_SIGNATURE_SIZE] = signature.try_into().map_err(|_| length)?;
    let timestamp = u64::from_be_bytes(*timestamp);
    if timestamp > COSIGNATURE_MAX_TIMESTAMP {
        return Err(CosignatureFault::Timestamp(timestamp));
    }
    key.verify_strict(
        &cosignature_message(text, timestamp),
        &Signature::from_bytes(signature),
    )
    .map_err(|_| CosignatureFault::Signature)?;
    Ok(timestamp)
}

/// Length in bytes of an Ed25519 public key and of an Ed25519 seed.
pub const ED25519_KEY_SIZE: usize = 32;

/// Length in bytes of an Ed25519 signature.
pub const ED25519_SIGNATURE_SIZE: usize = 64;

/// Largest encoded note [`Note::from_bytes`] accepts: 1 MiB.
///
/// A checkpoint with a few cosignatures is well under 1 KiB. 1 MiB still holds
/// [`MAX_SIGNATURES`] lines of post-quantum size (an ML-DSA signature is under 5 kB, under
/// 6.6 KiB in base64), while bounding the memory and time spent on one untrusted input.
pub const MAX_NOTE_SIZE: usize = 1 << 20;

/// Most signature lines [`Note::from_bytes`] accepts.
///
/// The specification requires accepting at least 16; 100 leaves room for a log signature and
/// dozens of witness cosignatures, and matches the limit of the Go `note` package.
pub const MAX_SIGNATURES: usize = 100;

/// Longest verifier or private key string accepted, in bytes.
///
/// A real key string is a short name, 8 hex digits and 44 to 48 base64 characters; 4 KiB is far
/// above that and bounds the work spent on untrusted configuration.
pub const MAX_KEY_STRING_SIZE: usize = 4096;

/// The prefix of every signature line: an em dash (U+2014) and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// The prefix of a Go note private key string.
const PRIVATE_KEY_PREFIX: &str = "PRIVATE+KEY+";

/// Errors from parsing, building and verifying signed notes and their keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// The encoded note is larger than [`MAX_NOTE_SIZE`].
    #[error("note is {size} bytes, more than the limit of {max}")]
    TooLarge {
        /// Size of the input in bytes.
        size: usize,
        /// The limit, [`MAX_NOTE_SIZE`].
        max: usize,
    },
    /// The note is not valid UTF-8.
    #[error("note is not valid UTF-8 (valid up to byte {offset})")]
    InvalidUtf8 {
        /// Length of the longest valid UTF-8 prefix.
        offset: usize,
    },
    /// The note contains an ASCII control character other than newline.
    #[error("control character 0x{byte:02x} at byte {offset}")]
    ControlCharacter {
        /// Offset of the character in the note (or in the text given to [`Note::new`]).
        offset: usize,
        /// The character.
        byte: u8,
    },
    /// The note text is empty or does not end in a newline.
    #[error("note text must end in a newline")]
    TextNotNewlineTerminated,
    /// There is no blank line separating the text from the signatures.
    #[error("no blank line separates the note text from its signatures")]
    MissingSeparator,
    /// The signature block after the blank line is empty.
    #[error("the note has no signature lines")]
    NoSignatures,
    /// The note has more signature lines than [`MAX_SIGNATURES`].
    #[error("note has {got} signature lines, more than the limit of {max}")]
    TooManySignatures {
        /// Number of signature lines.
        got: usize,
        /// The limit, [`MAX_SIGNATURES`].
        max: usize,
    },
    /// A signature line is not `— <name> <base64>` followed by a newline.
    #[error("signature line {line} is malformed: {reason}")]
    MalformedSignatureLine {
        /// 1-based number of the line within the signature block.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The base64 part of a signature line is not canonical standard base64.
    #[error("signature line {line} is not valid base64")]
    SignatureBase64 {
        /// 1-based number of the line within the signature block.
        line: usize,
    },
    /// A signature decodes to fewer than 5 bytes (4-byte key ID and a signature).
    #[error("signature line {line} decodes to {got} bytes, fewer than 5")]
    SignatureTooShort {
        /// 1-based number of the line within the signature block.
        line: usize,
        /// Number of decoded bytes.
        got: usize,
    },
    /// A key name is empty or holds a space, a `+` or a control character.
    #[error("invalid key name: {reason}")]
    InvalidKeyName {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A verifier or private key string is not in the expected form.
    #[error("malformed key string: {reason}")]
    MalformedKey {
        /// What is wrong with it (never the key material itself).
        reason: &'static str,
    },
    /// A verifier or private key string is longer than [`MAX_KEY_STRING_SIZE`].
    #[error("key string is {size} bytes, more than the limit of {max}")]
    KeyStringTooLong {
        /// Length of the key string in bytes.
        size: usize,
        /// The limit, [`MAX_KEY_STRING_SIZE`].
        max: usize,
    },
    /// The key's signature type is not supported here.
    #[error("unsupported signature type 0x{got:02x}")]
    UnsupportedKeyType {
        /// The type byte found.
        got: u8,
    },
    /// A public key or seed has the wrong length.
    #[error("key is {got} bytes, expected {want}")]
    KeyLength {
        /// Length found.
        got: usize,
        /// Length required.
        want: usize,
    },
    /// The public key bytes are not a valid Ed25519 point.
    #[error("invalid Ed25519 public key")]
    InvalidPublicKey,
    /// The key ID written in a key string differs from the one computed from the key.
    #[error("key {name}: key ID {got:08x} does not match the computed {want:08x}")]
    KeyIdMismatch {
        /// The key name.
        name: String,
        /// The key ID written in the key string.
        got: u32,
        /// The key ID computed from name, type and public key.
        want: u32,
    },
    /// Two configured verifiers share a key name and key ID.
    #[error("more than one verifier for key {name} ({key_id:08x})")]
    AmbiguousVerifier {
        /// The shared key name.
        name: String,
        /// The shared key ID.
        key_id: u32,
    },
    /// A signature by a known key has the wrong length for its type.
    #[error("signature by {name} is {got} bytes, expected {want}")]
    SignatureLength {
        /// The key name.
        name: String,
        /// Length of the signature (without the key ID).
        got: usize,
        /// Length required by the key's signature type.
        want: usize,
    },
    /// A signature by a known key does not verify: the whole note is rejected.
    #[error("invalid signature by known key {name} ({key_id:08x})")]
    InvalidSignature {
        /// The key name.
        name: String,
        /// The key ID.
        key_id: u32,
    },
    /// No signature by any of the given verifiers was found.
    #[error("none of the {signatures} signatures is by a known key")]
    NoVerifiedSignature {
        /// Number of signature lines in the note.
        signatures: usize,
    },
    /// The operating system's random number generator failed.
    #[error("random number generator failed: {0}")]
    Random(getrandom::Error),
}

/// A key name: non-empty, valid UTF-8, without whitespace, `+` or control characters.
///
/// The C2SP spec recommends schema-less URLs such as `veritrail.example/log`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct KeyName(String);

impl KeyName {
    /// Validates and wraps a key name.
    ///
    /// # Errors
    /// [`NoteError::InvalidKeyName`] when the name is empty or contains whitespace, `+` or a
    /// control character.
    pub fn new(name: impl Into<String>) -> Result<Self, NoteError> {
        let name = name.into();
        let reason = if name.is_empty() {
            Some("empty")
        } else if name.chars().any(char::is_whitespace) {
            Some("contains whitespace")
        } else if name.contains('+') {
            Some("contains '+'")
        } else if name.chars().any(char::is_control) {
            Some("contains a control character")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(NoteError::InvalidKeyName { reason }),
            None => Ok(KeyName(name)),
        }
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for KeyName {
    type Err = NoteError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyName::new(s)
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for KeyName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The key ID: the first 4 bytes, big-endian, of
/// SHA-256(name || 0x0A || signature type || public key).
pub fn key_id(name: &KeyName, signature_type: u8, public_key: &[u8]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_str().as_bytes());
    h.update([b'\n', signature_type]);
    h.update(public_key);
    let digest: [u8; 32] = h.finalize().into();
    let [a, b, c, d, ..] = digest;
    u32::from_be_bytes([a, b, c, d])
}

/// Parses exactly 8 lower-case hex digits (the form every note implementation writes).
fn parse_key_id_hex(hex: &str) -> Result<u32, NoteError> {
    crate::ascii::parse_hex::<4>(hex)
        .map(u32::from_be_bytes)
        .ok_or(NoteError::MalformedKey {
            reason: "key ID is not 8 lower-case hex digits",
        })
}

/// Rejects key strings longer than [`MAX_KEY_STRING_SIZE`].
fn check_key_string_size(s: &str) -> Result<(), NoteError> {
    if s.len() > MAX_KEY_STRING_SIZE {
        return Err(NoteError::KeyStringTooLong {
            size: s.len(),
            max: MAX_KEY_STRING_SIZE,
        });
    }
    Ok(())
}

/// Splits `<name>+<hex key ID>+<base64>` on its first two `+` (the base64 may hold more).
fn split_key_string(s: &str) -> Result<(KeyName, u32, Vec<u8>), NoteError> {
    let missing = NoteError::MalformedKey {
        reason: "expected <name>+<key ID>+<base64 key>",
    };
    let (name, rest) = s.split_once('+').ok_or(missing.clone())?;
    let (hex, key) = rest.split_once('+').ok_or(missing)?;
    let name = KeyName::new(name)?;
    let id = parse_key_id_hex(hex)?;
    let key = STANDARD.decode(key).map_err(|_| NoteError::MalformedKey {
        reason: "key is not valid standard base64",
    })?;
    Ok((name, id, key))
}

/// Copies a 32-byte Ed25519 public key or seed out of a slice.
fn ed25519_bytes(bytes: &[u8]) -> Result<[u8; ED25519_KEY_SIZE], NoteError> {
    bytes.try_into().map_err(|_| NoteError::KeyLength {
        got: bytes.len(),
        want: ED25519_KEY_SIZE,
    })
}

/// Parses a Go note private key string whose type byte must be `signature_type`.
///
/// The format is `PRIVATE+KEY+<name>+<hex key ID>+<base64(type || 32-byte seed)>`, and the key ID
/// must match the one computed from the derived public key.
pub(crate) fn parse_private_key(
    s: &str,
    signature_type: u8,
) -> Result<(KeyName, SigningKey), NoteError> {
    check_key_string_size(s)?;
    let rest = s
        .strip_prefix(PRIVATE_KEY_PREFIX)
        .ok_or(NoteError::MalformedKey {
            reason: "missing PRIVATE+KEY+ prefix",
        })?;
    let (name, id, key) = split_key_string(rest)?;
    let (&got_type, seed) = key.split_first().ok_or(NoteError::MalformedKey {
        reason: "key is empty",
    })?;
    if got_type != signature_type {
        return Err(NoteError::UnsupportedKeyType { got: got_type });
    }
    let signing_key = SigningKey::from_bytes(&ed25519_bytes(seed)?);
    let want = key_id(
        &name,
        signature_type,
        signing_key.verifying_key().as_bytes(),
    );
    if id != want {
        return Err(NoteError::KeyIdMismatch {
            name: name.0,
            got: id,
            want,
        });
    }
    Ok((name, signing_key))
}

/// Formats the Go note private key string for an Ed25519 seed of the given type.
pub(crate) fn format_private_key(name: &KeyName, signature_type: u8, key: &SigningKey) -> String {
    let id = key_id(name, signature_type, key.verifying_key().as_bytes());
    let mut material = Vec::with_capacity(1 + ED25519_KEY_SIZE);
    material.push(signature_type);
    material.extend_from_slice(key.as_bytes());
    let encoded = STANDARD.encode(&material);
    material.fill(0);
    format!("{PRIVATE_KEY_PREFIX}{name}+{id:08x}+{encoded}")
}

/// Generates a fresh Ed25519 key from the operating system's random number generator.
pub(crate) fn generate_ed25519() -> Result<SigningKey, NoteError> {
    let mut seed = [0u8; ED25519_KEY_SIZE];
    getrandom::fill(&mut seed).map_err(NoteError::Random)?;
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    Ok(key)
}

/// A trusted public key: name, key ID, signature type and Ed25519 public key.
///
/// Its string form is `<name>+<8 hex digits of key ID>+<base64(type || 32-byte key)>`, e.g.
/// `PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NoteVerifier {
    name: KeyName,
    key_id: u32,
    signature_type: u8,
    public_key: VerifyingKey,
}

impl NoteVerifier {
    /// A verifier of plain Ed25519 note signatures (type [`SIG_TYPE_ED25519`]).
    pub fn ed25519(name: KeyName, public_key: VerifyingKey) -> Self {
        Self::with_type(name, SIG_TYPE_ED25519, public_key)
    }

    /// A verifier of timestamped Ed25519 cosignatures (type [`SIG_TYPE_COSIGNATURE`]).
    pub fn cosignature(name: KeyName, public_key: VerifyingKey) -> Self {
        Self::with_type(name, SIG_TYPE_COSIGNATURE, public_key)
    }

    fn with_type(name: KeyName, signature_type: u8, public_key: VerifyingKey) -> Self {
        let key_id = key_id(&name, signature_type, public_key.as_bytes());
        NoteVerifier {
            name,
            key_id,
            signature_type,
            public_key,
        }
    }

    /// The key name.
    pub fn name(&self) -> &KeyName {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The signature type: [`SIG_TYPE_ED25519`] or [`SIG_TYPE_COSIGNATURE`].
    pub fn signature_type(&self) -> u8 {
        self.signature_type
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> &VerifyingKey {
        &self.public_key
    }

    /// Whether `signature` claims to be by this key (same name and key ID).
    pub fn matches(&self, signature: &NoteSignature) -> bool {
        self.key_id == signature.key_id && self.name == signature.name
    }

    /// Checks `signature` (already matched by name and key ID) over the note `text`.
    fn check(&self, text: &str, signature: &NoteSignature) -> Result<(), NoteError> {
        match self.signature_type {
            SIG_TYPE_COSIGNATURE => self.check_cosignature(text, signature),
            _ => self.check_ed25519(text, signature),
        }
    }

    fn check_ed25519(&self, text: &str, signature: &NoteSignature) -> Result<(), NoteError> {
        let bytes: &[u8; ED25519_SIGNATURE_SIZE] = signature
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| NoteError::SignatureLength {
                name: self.name.0.clone(),
                got: signature.signature.len(),
                want: ED25519_SIGNATURE_SIZE,
            })?;
        self.public_key
            .verify_strict(text.as_bytes(), &Signature::from_bytes(bytes))
            .map_err(|_| self.invalid_signature())
    }

    fn check_cosignature(&self, text: &str, signature: &NoteSignature) -> Result<(), NoteError> {
        match verify_cosignature_payload(&self.public_key, text, &signature.signature) {
            Ok(_timestamp) => Ok(()),
            Err(CosignatureFault::Length(got)) => Err(NoteError::SignatureLength {
                name: self.name.0.clone(),
                got,
                want: COSIGNATURE_PAYLOAD_SIZE,
            }),
            Err(_) => Err(self.invalid_signature()),
        }
    }

    fn invalid_signature(&self) -> NoteError {
        NoteError::InvalidSignature {
            name: self.name.0.clone(),
            key_id: self.key_id,
        }
    }
}

impl FromStr for NoteVerifier {
    type Err = NoteError;

    /// Parses `<name>+<hex key ID>+<base64(type || key)>`, splitting on the first two `+` only.
    ///
    /// The key ID must be 8 lower-case hex digits and match the computed key ID; the type must
    /// be [`SIG_TYPE_ED25519`] or [`SIG_TYPE_COSIGNATURE`]. This does not panic.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        check_key_string_size(s)?;
        let (name, id, key) = split_key_string(s)?;
        let (&signature_type, public_key) = key.split_first().ok_or(NoteError::MalformedKey {
            reason: "key is empty",
        })?;
        if !matches!(signature_type, SIG_TYPE_ED25519 | SIG_TYPE_COSIGNATURE) {
            return Err(NoteError::UnsupportedKeyType {
                got: signature_type,
            });
        }
        let public_key = ed25519_bytes(public_key)?;
        let want = key_id(&name, signature_type, &public_key);
        if id != want {
            return Err(NoteError::KeyIdMismatch {
                name: name.0,
                got: id,
                want,
            });
        }
        let public_key =
            VerifyingKey::from_bytes(&public_key).map_err(|_| NoteError::InvalidPublicKey)?;
        Ok(NoteVerifier {
            name,
            key_id: id,
            signature_type,
            public_key,
        })
    }
}

impl fmt::Display for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut key = Vec::with_capacity(1 + ED25519_KEY_SIZE);
        key.push(self.signature_type);
        key.extend_from_slice(self.public_key.as_bytes());
        write!(
            f,
            "{}+{:08x}+{}",
            self.name,
            self.key_id,
            STANDARD.encode(key)
        )
    }
}

/// An Ed25519 note signer (signature type [`SIG_TYPE_ED25519`]).
///
/// Its private key string follows the Go `note` package:
/// `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || 32-byte seed)>`. [`fmt::Debug`] never prints
/// the key.
#[derive(Clone)]
pub struct NoteSigner {
    name: KeyName,
    key_id: u32,
    key: SigningKey,
}

impl NoteSigner {
    /// A signer from a name and an Ed25519 signing key.
    pub fn new(name: KeyName, key: SigningKey) -> Self {
        let key_id = key_id(&name, SIG_TYPE_ED25519, key.verifying_key().as_bytes());
        NoteSigner { name, key_id, key }
    }

    /// A signer from a name and a 32-byte Ed25519 seed (RFC 8032 private key).
    pub fn from_seed(name: KeyName, seed: [u8; ED25519_KEY_SIZE]) -> Self {
        Self::new(name, SigningKey::from_bytes(&seed))
    }

    /// Generates a new key with a seed from the operating system (`getrandom`).
    ///
    /// # Errors
    /// [`NoteError::Random`] if the operating system's random number generator fails.
    pub fn generate(name: KeyName) -> Result<Self, NoteError> {
        Ok(Self::new(name, generate_ed25519()?))
    }

    /// The key name.
    pub fn name(&self) -> &KeyName {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The verifier for this signer's signatures.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier::ed25519(self.name.clone(), self.key.verifying_key())
    }

    /// Signs a note text (which should end in a newline, see [`Note::new`]).
    ///
    /// Ed25519 is deterministic: the same key and text always give the same signature.
    pub fn sign(&self, text: &str) -> NoteSignature {
        let signature = self.key.sign(text.as_bytes());
        NoteSignature {
            name: self.name.clone(),
            key_id: self.key_id,
            signature: signature.to_bytes().to_vec(),
        }
    }

    /// The Go private key string. Keep it secret: it is the signing key.
    pub fn to_private_key_string(&self) -> String {
        format_private_key(&self.name, SIG_TYPE_ED25519, &self.key)
    }
}

impl FromStr for NoteSigner {
    type Err = NoteError;

    /// Parses `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>`.
    ///
    /// The key ID must match the one computed from the derived public key. Errors never
    /// include key material. This does not panic.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, key) = parse_private_key(s, SIG_TYPE_ED25519)?;
        Ok(NoteSigner::new(name, key))
    }
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

/// One signature line: key name, key ID and signature bytes (at least one byte).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NoteSignature {
    name: KeyName,
    key_id: u32,
    signature: Vec<u8>,
}

impl NoteSignature {
    /// A signature from its parts.
    ///
    /// # Errors
    /// [`NoteError::SignatureTooShort`] (line 1) when `signature` is empty.
    pub fn new(name: KeyName, key_id: u32, signature: Vec<u8>) -> Result<Self, NoteError> {
        if signature.is_empty() {
            return Err(NoteError::SignatureTooShort { line: 1, got: 4 });
        }
        Ok(NoteSignature {
            name,
            key_id,
            signature,
        })
    }

    /// Parses one signature line `— <name> <base64>`, without its newline.
    ///
    /// Errors report it as line 1. This does not panic.
    ///
    /// # Errors
    /// [`NoteError::MalformedSignatureLine`], [`NoteError::InvalidKeyName`],
    /// [`NoteError::SignatureBase64`] or [`NoteError::SignatureTooShort`].
    pub fn from_line(line: &str) -> Result<Self, NoteError> {
        Self::parse_line(line, 1)
    }

    fn parse_line(line: &str, number: usize) -> Result<Self, NoteError> {
        let malformed = |reason| NoteError::MalformedSignatureLine {
            line: number,
            reason,
        };
        let rest = line
            .strip_prefix(SIGNATURE_PREFIX)
            .ok_or_else(|| malformed("does not start with an em dash and a space"))?;
        let (name, encoded) = rest
            .split_once(' ')
            .ok_or_else(|| malformed("no space between key name and signature"))?;
        let name = KeyName::new(name)?;
        let decoded = STANDARD
            .decode(encoded)
            .map_err(|_| NoteError::SignatureBase64 { line: number })?;
        let too_short = NoteError::SignatureTooShort {
            line: number,
            got: decoded.len(),
        };
        let (id, signature) = decoded.split_first_chunk::<4>().ok_or(too_short.clone())?;
        if signature.is_empty() {
            return Err(too_short);
        }
        Ok(NoteSignature {
            name,
            key_id: u32::from_be_bytes(*id),
            signature: signature.to_vec(),
        })
    }

    /// The line `— <name> <base64(key ID || signature)>`, without a newline.
    pub fn to_line(&self) -> String {
        let mut raw = Vec::with_capacity(4 + self.signature.len());
        raw.extend_from_slice(&self.key_id.to_be_bytes());
        raw.extend_from_slice(&self.signature);
        format!("{SIGNATURE_PREFIX}{} {}", self.name, STANDARD.encode(raw))
    }

    /// The key name.
    pub fn name(&self) -> &KeyName {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The signature bytes after the key ID (for type 0x04: timestamp and signature).
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }
}

impl fmt::Display for NoteSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_line())
    }
}

/// A signed note: a validated text and its signature lines, verified or not.
///
/// Parsing ([`Note::from_bytes`]) does not verify; call [`Note::verify`] before trusting
/// [`Note::text`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Note {
    text: String,
    signatures: Vec<NoteSignature>,
}

/// Finds the first ASCII control character other than newline.
///
/// Multi-byte UTF-8 sequences never contain bytes below 0x80, so a byte scan is exact.
fn check_control_characters(text: &str) -> Result<(), NoteError> {
    match text
        .bytes()
        .enumerate()
        .find(|&(_, b)| b < 0x20 && b != b'\n')
    {
        Some((offset, byte)) => Err(NoteError::ControlCharacter { offset, byte }),
        None => Ok(()),
    }
}

impl Note {
    /// An unsigned note with the given text.
    ///
    /// # Errors
    /// [`NoteError::TooLarge`], [`NoteError::TextNotNewlineTerminated`] (also for an empty
    /// text) or [`NoteError::ControlCharacter`].
    pub fn new(text: impl Into<String>) -> Result<Self, NoteError> {
        let text = text.into();
        if text.len() > MAX_NOTE_SIZE {
            return Err(NoteError::TooLarge {
                size: text.len(),
                max: MAX_NOTE_SIZE,
            });
        }
        if !text.ends_with('\n') {
            return Err(NoteError::TextNotNewlineTerminated);
        }
        check_control_characters(&text)?;
        Ok(Note {
            text,
            signatures: Vec::new(),
        })
    }

    /// Parses an encoded signed note. It does not verify any signature.
    ///
    /// The text ends at the last blank line. Total: every input gives a value or an error.
    /// This does not panic.
    ///
    /// # Errors
    /// [`NoteError::TooLarge`], [`NoteError::InvalidUtf8`], [`NoteError::ControlCharacter`],
    /// [`NoteError::MissingSeparator`], [`NoteError::NoSignatures`],
    /// [`NoteError::TooManySignatures`], or a signature line error (see
    /// [`NoteSignature::from_line`], with line numbers counted in the signature block).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, NoteError> {
        if bytes.len() > MAX_NOTE_SIZE {
            return Err(NoteError::TooLarge {
                size: bytes.len(),
                max: MAX_NOTE_SIZE,
            });
        }
        let message = core::str::from_utf8(bytes).map_err(|e| NoteError::InvalidUtf8 {
            offset: e.valid_up_to(),
        })?;
        check_control_characters(message)?;
        let split = message.rfind("\n\n").ok_or(NoteError::MissingSeparator)?;
        // `split` is the offset of an ASCII newline, so both cuts fall on char boundaries.
        let (text, rest) = message
            .split_at_checked(split + 1)
            .ok_or(NoteError::MissingSeparator)?;
        let block = rest.strip_prefix('\n').ok_or(NoteError::MissingSeparator)?;
        let signatures = Self::parse_signature_block(block)?;
        Ok(Note {
            text: text.to_owned(),
            signatures,
        })
    }

    fn parse_signature_block(block: &str) -> Result<Vec<NoteSignature>, NoteError> {
        if block.is_empty() {
            return Err(NoteError::NoSignatures);
        }
        let count = block.bytes().filter(|&b| b == b'\n').count();
        let Some(lines) = block.strip_suffix('\n') else {
            return Err(NoteError::MalformedSignatureLine {
                line: count + 1,
                reason: "not terminated by a newline",
            });
        };
        if count > MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures {
                got: count,
                max: MAX_SIGNATURES,
            });
        }
        lines
            .split('\n')
            .enumerate()
            .map(|(i, line)| NoteSignature::parse_line(line, i + 1))
            .collect()
    }

    /// Encodes the note: text, blank line, one line per signature.
    ///
    /// [`Note::from_bytes`] gives back an equal note when there is at least one signature.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(self.text.len() + 1 + 128 * self.signatures.len());
        out.push_str(&self.text);
        out.push('\n');
        for signature in &self.signatures {
            out.push_str(&signature.to_line());
            out.push('\n');
        }
        out.into_bytes()
    }

    /// The note text, including its final newline.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The signature lines, in order.
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// Adds a signature line. One by the same key (name and key ID) is replaced in place, as
    /// the Go `note` package does.
    ///
    /// # Errors
    /// [`NoteError::TooManySignatures`] when the note already has [`MAX_SIGNATURES`].
    pub fn add_signature(&mut self, signature: NoteSignature) -> Result<(), NoteError> {
        let same_key =
            |s: &&mut NoteSignature| s.name == signature.name && s.key_id == signature.key_id;
        if let Some(existing) = self.signatures.iter_mut().find(same_key) {
            *existing = signature;
            return Ok(());
        }
        if self.signatures.len() >= MAX_SIGNATURES {
            let got = self.signatures.len() + 1;
            return Err(NoteError::TooManySignatures {
                got,
                max: MAX_SIGNATURES,
            });
        }
        self.signatures.push(signature);
        Ok(())
    }

    /// Verifies the note against trusted keys, following signed-note v1.0.0:
    ///
    /// - signatures by keys not in `verifiers` (name and key ID) are ignored;
    /// - a signature by a known key that does not verify rejects the whole note;
    /// - at least one signature by a known key must verify.
    ///
    /// Ed25519 (type 0x01) signatures are checked with `verify_strict`; cosignatures (type
    /// 0x04) as in [`crate::cosignature`]. Returns the verified signatures, in note order.
    /// This does not panic.
    ///
    /// # Errors
    /// [`NoteError::InvalidSignature`] or [`NoteError::SignatureLength`] for a bad signature by
    /// a known key, [`NoteError::AmbiguousVerifier`] when two verifiers share name and key ID,
    /// [`NoteError::NoVerifiedSignature`] when no known key signed.
    pub fn verify(&self, verifiers: &[NoteVerifier]) -> Result<Vec<&NoteSignature>, NoteError> {
        let mut verified = Vec::new();
        for signature in &self.signatures {
            let mut known = verifiers.iter().filter(|v| v.matches(signature));
            let Some(verifier) = known.next() else {
                continue;
            };
            if known.next().is_some() {
                return Err(NoteError::AmbiguousVerifier {
                    name: signature.name.0.clone(),
                    key_id: signature.key_id,
                });
            }
            verifier.check(&self.text, signature)?;
            verified.push(signature);
        }
        if verified.is_empty() {
            return Err(NoteError::NoVerifiedSignature {
                signatures: self.signatures.len(),
            });
        }
        Ok(verified)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use proptest::prelude::*;

    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const PETER_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";

    fn signer(name: &str, seed: u8) -> NoteSigner {
        NoteSigner::new(
            KeyName::new(name).unwrap(),
            SigningKey::from_bytes(&[seed; 32]),
        )
    }

    fn signed(text: &str, signers: &[&NoteSigner]) -> Note {
        let mut note = Note::new(text).unwrap();
        for s in signers {
            note.add_signature(s.sign(text)).unwrap();
        }
        note
    }

    fn malformed(line: usize, reason: &'static str) -> NoteError {
        NoteError::MalformedSignatureLine { line, reason }
    }

    #[test]
    fn key_name_rules() {
        assert!(KeyName::new("example.com/log-1").is_ok());
        assert!(KeyName::new("ünïcode").is_ok());
        let reason = |r| Err(NoteError::InvalidKeyName { reason: r });
        assert_eq!(KeyName::new(""), reason("empty"));
        assert_eq!(KeyName::new("a b"), reason("contains whitespace"));
        assert_eq!(KeyName::new("a\u{a0}b"), reason("contains whitespace"));
        assert_eq!(KeyName::new("a\tb"), reason("contains whitespace"));
        assert_eq!(KeyName::new("a+b"), reason("contains '+'"));
        assert_eq!(
            KeyName::new("a\u{7f}b"),
            reason("contains a control character")
        );
        assert_eq!("x".parse::<KeyName>().unwrap().to_string(), "x");
    }

    #[test]
    fn published_keys_parse_and_match() {
        let verifier: NoteVerifier = PETER_VKEY.parse().unwrap();
        assert_eq!(verifier.name().as_str(), "PeterNeumann");
        assert_eq!(verifier.key_id(), 0xc74f20a3);
        assert_eq!(verifier.signature_type(), SIG_TYPE_ED25519);
        assert_eq!(verifier.to_string(), PETER_VKEY);
        let signer: NoteSigner = PETER_SKEY.parse().unwrap();
        assert_eq!(signer.verifier(), verifier);
        assert_eq!(signer.to_private_key_string(), PETER_SKEY);
        assert!(!format!("{signer:?}").contains("AYEK"));
    }

    #[test]
    fn verifier_key_string_rejections() {
        let parse = |s: &str| s.parse::<NoteVerifier>();
        let fmt = NoteError::MalformedKey {
            reason: "expected <name>+<key ID>+<base64 key>",
        };
        assert_eq!(parse("PeterNeumann"), Err(fmt.clone()));
        assert_eq!(parse("PeterNeumann+c74f20a3"), Err(fmt));
        let hex = NoteError::MalformedKey {
            reason: "key ID is not 8 lower-case hex digits",
        };
        assert_eq!(
            parse(&PETER_VKEY.replace("c74f20a3", "C74F20A3")),
            Err(hex.clone())
        );
        assert_eq!(
            parse(&PETER_VKEY.replace("c74f20a3", "+74f20a3")),
            Err(hex.clone())
        );
        assert_eq!(parse(&PETER_VKEY.replace("c74f20a3", "c74f20a")), Err(hex));
        assert_eq!(
            parse(&PETER_VKEY.replace("c74f20a3", "c74f20a4")),
            Err(NoteError::KeyIdMismatch {
                name: "PeterNeumann".into(),
                got: 0xc74f20a4,
                want: 0xc74f20a3
            })
        );
        assert_eq!(
            parse("PeterNeumann+c74f20a3+!!!!"),
            Err(NoteError::MalformedKey {
                reason: "key is not valid standard base64"
            })
        );
        assert_eq!(
            parse("PeterNeumann+c74f20a3+"),
            Err(NoteError::MalformedKey {
                reason: "key is empty"
            })
        );
        let key_of = |bytes: &[u8]| format!("x+00000000+{}", STANDARD.encode(bytes));
        assert_eq!(
            parse(&key_of(&[2; 33])),
            Err(NoteError::UnsupportedKeyType { got: 2 })
        );
        assert_eq!(
            parse(&key_of(&[1; 32])),
            Err(NoteError::KeyLength { got: 31, want: 32 })
        );
        assert_eq!(
            parse(&format!("{}+{}", "a".repeat(MAX_KEY_STRING_SIZE), "0+0")),
            Err(NoteError::KeyStringTooLong {
                size: MAX_KEY_STRING_SIZE + 4,
                max: 4096
            })
        );
        assert_eq!(
            parse("a b+00000000+AQ=="),
            Err(NoteError::InvalidKeyName {
                reason: "contains whitespace"
            })
        );
    }

    #[test]
    fn invalid_point_is_rejected() {
        // y = 2 is not on the curve (its x^2 is a non-square); the key ID is computed for it.
        let mut raw = [0u8; 32];
        raw[0] = 2;
        let name = KeyName::new("bad").unwrap();
        let id = key_id(&name, SIG_TYPE_ED25519, &raw);
        let mut material = vec![SIG_TYPE_ED25519];
        material.extend_from_slice(&raw);
        let s = format!("bad+{id:08x}+{}", STANDARD.encode(material));
        assert_eq!(s.parse::<NoteVerifier>(), Err(NoteError::InvalidPublicKey));
    }

    #[test]
    fn private_key_string_rejections() {
        let parse = |s: &str| s.parse::<NoteSigner>().map(|s| s.key_id());
        assert_eq!(
            parse(&PETER_SKEY.replace("PRIVATE+KEY+", "PUBLIC+KEY+")),
            Err(NoteError::MalformedKey {
                reason: "missing PRIVATE+KEY+ prefix"
            })
        );
        assert_eq!(
            parse(&PETER_SKEY.replace("c74f20a3", "00000000")),
            Err(NoteError::KeyIdMismatch {
                name: "PeterNeumann".into(),
                got: 0,
                want: 0xc74f20a3
            })
        );
        let cosigner = format!("PRIVATE+KEY+x+00000000+{}", STANDARD.encode([4u8; 33]));
        assert_eq!(
            parse(&cosigner),
            Err(NoteError::UnsupportedKeyType { got: 4 })
        );
        let short = format!("PRIVATE+KEY+x+00000000+{}", STANDARD.encode([1u8; 32]));
        assert_eq!(
            parse(&short),
            Err(NoteError::KeyLength { got: 31, want: 32 })
        );
    }

    #[test]
    fn generated_signers_differ_and_round_trip() {
        let name = KeyName::new("veritrail.example/log").unwrap();
        let a = NoteSigner::generate(name.clone()).unwrap();
        let b = NoteSigner::generate(name).unwrap();
        assert_ne!(a.verifier(), b.verifier());
        let again: NoteSigner = a.to_private_key_string().parse().unwrap();
        assert_eq!(again.verifier(), a.verifier());
        let v: NoteVerifier = a.verifier().to_string().parse().unwrap();
        assert_eq!(v, a.verifier());
    }

    #[test]
    fn sign_encode_parse_verify() {
        let log = signer("log.example", 1);
        let witness = signer("witness.example", 2);
        let note = signed("origin\n\nwith a blank line\n", &[&log, &witness]);
        let bytes = note.to_bytes();
        let parsed = Note::from_bytes(&bytes).unwrap();
        assert_eq!(parsed, note);
        assert_eq!(parsed.to_bytes(), bytes);
        let verified = parsed.verify(&[witness.verifier()]).unwrap();
        assert_eq!(verified, vec![&note.signatures()[1]]);
        assert_eq!(
            parsed
                .verify(&[log.verifier(), witness.verifier()])
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn verification_rules() {
        let log = signer("log.example", 1);
        let other = signer("other.example", 3);
        let note = signed("hello\n", &[&log]);
        // Unknown keys are ignored; no known key is an error.
        assert_eq!(
            note.verify(&[other.verifier()]),
            Err(NoteError::NoVerifiedSignature { signatures: 1 })
        );
        assert_eq!(
            note.verify(&[]),
            Err(NoteError::NoVerifiedSignature { signatures: 1 })
        );
        // Same name, other key: the key ID differs, so it is unknown, not bad.
        let impostor = signer("log.example", 4);
        assert_eq!(
            note.verify(&[impostor.verifier()]),
            Err(NoteError::NoVerifiedSignature { signatures: 1 })
        );
        // A known key's bad signature rejects the note, even next to a good one.
        let mut tampered = note.clone();
        let mut bad = log.sign("hello\n");
        bad.signature[0] ^= 1;
        tampered.signatures.push(bad);
        assert_eq!(
            tampered.verify(&[log.verifier()]),
            Err(NoteError::InvalidSignature {
                name: "log.example".into(),
                key_id: log.key_id()
            })
        );
        // Wrong length for the type.
        let mut short = note.clone();
        short.signatures[0].signature.pop();
        assert_eq!(
            short.verify(&[log.verifier()]),
            Err(NoteError::SignatureLength {
                name: "log.example".into(),
                got: 63,
                want: 64
            })
        );
        assert_eq!(
            note.verify(&[log.verifier(), log.verifier()]),
            Err(NoteError::AmbiguousVerifier {
                name: "log.example".into(),
                key_id: log.key_id()
            })
        );
    }

    #[test]
    fn accepts_many_signatures_up_to_the_limit() {
        let signers: Vec<NoteSigner> = (0..MAX_SIGNATURES)
            .map(|i| signer(&format!("w{i}"), i as u8))
            .collect();
        let refs: Vec<&NoteSigner> = signers.iter().collect();
        let note = signed("t\n", &refs);
        let parsed = Note::from_bytes(&note.to_bytes()).unwrap();
        let verifiers: Vec<NoteVerifier> = signers.iter().map(NoteSigner::verifier).collect();
        assert_eq!(parsed.verify(&verifiers).unwrap().len(), MAX_SIGNATURES);

        let mut bytes = note.to_bytes();
        bytes.extend_from_slice(signers[0].sign("t\n").to_line().as_bytes());
        bytes.push(b'\n');
        assert_eq!(
            Note::from_bytes(&bytes),
            Err(NoteError::TooManySignatures { got: 101, max: 100 })
        );
        let mut full = note.clone();
        assert_eq!(
            full.add_signature(signer("extra", 200).sign("t\n")),
            Err(NoteError::TooManySignatures { got: 101, max: 100 })
        );
        // Re-signing with a known key replaces its line.
        full.add_signature(signers[5].sign("t\n")).unwrap();
        assert_eq!(full.signatures().len(), MAX_SIGNATURES);
    }

    #[test]
    fn malformed_notes_are_rejected_with_exact_errors() {
        let line = signer("k", 1).sign("t\n").to_line();
        let cases: Vec<(Vec<u8>, NoteError)> = vec![
            (
                vec![b'a'; MAX_NOTE_SIZE + 1],
                NoteError::TooLarge {
                    size: MAX_NOTE_SIZE + 1,
                    max: MAX_NOTE_SIZE,
                },
            ),
            (
                b"t\n\n\xff\n".to_vec(),
                NoteError::InvalidUtf8 { offset: 3 },
            ),
            (
                format!("t\r\n\n{line}\n").into_bytes(),
                NoteError::ControlCharacter {
                    offset: 1,
                    byte: 0x0d,
                },
            ),
            (
                format!("t\n{line}\n").into_bytes(),
                NoteError::MissingSeparator,
            ),
            (b"t\n\n".to_vec(), NoteError::NoSignatures),
            (
                format!("t\n\n{line}\n\n").into_bytes(),
                NoteError::NoSignatures,
            ),
            (
                format!("t\n\n{line}").into_bytes(),
                malformed(1, "not terminated by a newline"),
            ),
            (
                format!("t\n\n{line}\n{line}").into_bytes(),
                malformed(2, "not terminated by a newline"),
            ),
            (
                b"t\n\n- k AAAAAAA=\n".to_vec(),
                malformed(1, "does not start with an em dash and a space"),
            ),
            (
                "t\n\n\u{2014}k AAAAAAA=\n".into(),
                malformed(1, "does not start with an em dash and a space"),
            ),
            (
                "t\n\n\u{2014} kAAAAAAA=\n".into(),
                malformed(1, "no space between key name and signature"),
            ),
            (
                "t\n\n\u{2014}  AAAAAAA=\n".into(),
                NoteError::InvalidKeyName { reason: "empty" },
            ),
            (
                "t\n\n\u{2014} a+b AAAAAAA=\n".into(),
                NoteError::InvalidKeyName {
                    reason: "contains '+'",
                },
            ),
            (
                "t\n\n\u{2014} k AAAA AAA=\n".into(),
                NoteError::SignatureBase64 { line: 1 },
            ),
            (
                "t\n\n\u{2014} k AAAAAAF=\n".into(),
                NoteError::SignatureBase64 { line: 1 },
            ),
            (
                "t\n\n\u{2014} k AAAAAA\n".into(),
                NoteError::SignatureBase64 { line: 1 },
            ),
            (
                "t\n\n\u{2014} k AAAAAAA=\n\u{2014} k AAAA\n".into(),
                NoteError::SignatureTooShort { line: 2, got: 3 },
            ),
            (
                "t\n\n\u{2014} k AAAAAA==\n".into(),
                NoteError::SignatureTooShort { line: 1, got: 4 },
            ),
            (
                "t\n\n\u{2014} k \n".into(),
                NoteError::SignatureTooShort { line: 1, got: 0 },
            ),
        ];
        let mut failures = Vec::new();
        for (input, want) in cases {
            let got = Note::from_bytes(&input);
            if got != Err(want.clone()) {
                failures.push(format!(
                    "{:?}: got {got:?}, want {want:?}",
                    String::from_utf8_lossy(&input)
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn separator_is_the_last_blank_line() {
        let note = Note::from_bytes("a\n\n\n\u{2014} k AAAAAAA=\n".as_bytes()).unwrap();
        assert_eq!(note.text(), "a\n\n");
        let note = Note::from_bytes("\n\n\u{2014} k AAAAAAA=\n".as_bytes()).unwrap();
        assert_eq!(note.text(), "\n");
        assert_eq!(note.signatures()[0].key_id(), 0);
        assert_eq!(note.signatures()[0].signature(), &[0]);
    }

    #[test]
    fn note_new_rejections() {
        assert_eq!(Note::new(""), Err(NoteError::TextNotNewlineTerminated));
        assert_eq!(Note::new("a"), Err(NoteError::TextNotNewlineTerminated));
        assert_eq!(
            Note::new("a\tb\n"),
            Err(NoteError::ControlCharacter { offset: 1, byte: 9 })
        );
        assert!(Note::new("a\n\nb\n").is_ok());
        assert_eq!(
            NoteSignature::new(KeyName::new("k").unwrap(), 1, Vec::new()),
            Err(NoteError::SignatureTooShort { line: 1, got: 4 })
        );
        let sig = NoteSignature::new(KeyName::new("k").unwrap(), 0, vec![0]).unwrap();
        assert_eq!(sig.to_string(), "\u{2014} k AAAAAAA=");
        assert_eq!(NoteSignature::from_line(&sig.to_line()), Ok(sig));
    }

    fn text_strategy() -> impl Strategy<Value = String> {
        proptest::collection::vec("[^\\x00-\\x1f]{0,20}", 1..6)
            .prop_map(|lines| lines.iter().map(|l| format!("{l}\n")).collect())
    }

    proptest! {
        #[test]
        fn from_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Note::from_bytes(&bytes);
        }

        #[test]
        fn from_bytes_never_panics_on_mutated_notes(
            text in text_strategy(),
            pos in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = signed(&text, &[&signer("k", 7)]).to_bytes();
            let i = pos.index(bytes.len());
            bytes[i] = byte;
            bytes.truncate(cut.index(bytes.len() + 1));
            if let Ok(note) = Note::from_bytes(&bytes) {
                prop_assert_eq!(note.to_bytes(), bytes);
            }
        }

        #[test]
        fn encode_parse_round_trip(text in text_strategy(), names in proptest::collection::vec("[a-z./]{1,12}", 1..5)) {
            let signers: Vec<NoteSigner> = names.iter().enumerate().map(|(i, n)| signer(n, i as u8)).collect();
            let refs: Vec<&NoteSigner> = signers.iter().collect();
            let note = signed(&text, &refs);
            let parsed = Note::from_bytes(&note.to_bytes()).unwrap();
            prop_assert_eq!(&parsed, &note);
            let verifiers: Vec<NoteVerifier> = signers.iter().map(NoteSigner::verifier).collect();
            prop_assert!(parsed.verify(&verifiers).is_ok());
        }

        #[test]
        fn key_strings_never_panic(s in "\\PC{0,80}", t in "[a-zA-Z0-9+/=]{0,60}") {
            let _ = s.parse::<NoteVerifier>();
            let _ = s.parse::<NoteSigner>();
            let _ = format!("{s}+c74f20a3+{t}").parse::<NoteVerifier>();
            let _ = format!("PRIVATE+KEY+{s}+c74f20a3+{t}").parse::<NoteSigner>();
            let _ = NoteSignature::from_line(&s);
        }

        #[test]
        fn key_strings_round_trip(name in "[a-zA-Z0-9./_-]{1,30}", seed in any::<[u8; 32]>()) {
            let s = NoteSigner::new(KeyName::new(name).unwrap(), SigningKey::from_bytes(&seed));
            let private = s.to_private_key_string();
            prop_assert_eq!(private.parse::<NoteSigner>().unwrap().to_private_key_string(), private);
            let public = s.verifier().to_string();
            prop_assert_eq!(public.parse::<NoteVerifier>().unwrap().to_string(), public);
        }
    }
}
