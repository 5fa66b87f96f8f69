//! The encrypted payload store: what records commit to but never put in the tree.
//!
//! Layout under `<data>/payloads/` (every file 0600, every directory 0700):
//!
//! ```text
//! keys/<key id>             nonce(24) ‖ XChaCha20-Poly1305(master key, data key), AAD = key id
//! records/<nonce>/meta      {"key": <key id>, "conversation_id": ...}
//! records/<nonce>/<name>    nonce(24) ‖ XChaCha20-Poly1305(data key, {media_type, opening_key,
//!                           payload}), AAD = record nonce ‖ 0 ‖ name
//! erased/<nonce>            the index of the erasure record that destroyed the record's payloads
//! ```
//!
//! A record's payloads are filed under the record's server-chosen `nonce` (unique, in its
//! leaf). Each data subject (the event's `subject`; else its conversation; else the record)
//! has its own data key; a key id is `HMAC-SHA-256(master key, label)`, so the store's file
//! names do not reveal subjects to whoever lacks the master key. The master key is read from
//! `VERITRAIL_MASTER_KEY` (base64) or `<data>/payload-master.key` (created 0600 on first
//! start), and is never logged or written anywhere else.
//!
//! Erasure destroys the data key (crypto-shredding) and the payload files, and leaves a
//! tombstone naming the erasure record; the tree is untouched, so every proof still verifies.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead as _, Payload as AeadPayload};
use chacha20poly1305::{KeyInit as _, XChaCha20Poly1305};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use veritrail_ledger::ascii::to_hex as hex;

/// Bytes of the master key and of each data key.
const KEY_BYTES: usize = 32;
/// Bytes of an XChaCha20-Poly1305 nonce.
const NONCE_BYTES: usize = 24;
/// The environment variable that may hold the master key (standard base64 of 32 bytes).
pub const MASTER_KEY_ENV: &str = "VERITRAIL_MASTER_KEY";
/// The master key file in the data directory, created on first start.
pub const MASTER_KEY_FILE: &str = "payload-master.key";

/// Why the payload store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// A file could not be read, written or synced.
    #[error("payload store {path}: cannot {action}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The master key is not 32 bytes of standard base64.
    #[error("the payload master key ({from}) is not 32 bytes of standard base64")]
    MasterKey {
        /// Where it came from.
        from: String,
    },
    /// A stored file does not decrypt or decode: damaged, or encrypted under another key.
    #[error("payload store {path} does not decrypt under this master key")]
    Undecryptable {
        /// The file.
        path: PathBuf,
    },
    /// The random number generator failed.
    #[error("the system's random number generator failed: {0}")]
    Random(getrandom::Error),
}

impl PayloadError {
    /// Whether the error means the disk is full.
    pub fn is_no_space(&self) -> bool {
        matches!(self, PayloadError::Io { source, .. } if veritrail_ledger::error::is_no_space(source))
    }
}

/// A payload read back from the store.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Opened {
    /// Its media type.
    pub media_type: String,
    /// Its bytes.
    #[serde(with = "b64")]
    pub payload: Vec<u8>,
    /// The opening key of its commitment.
    #[serde(with = "b64")]
    pub opening_key: Vec<u8>,
}

mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    pub(super) fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text: String = serde::Deserialize::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// What looking a payload up found.
#[derive(Debug)]
pub enum Lookup {
    /// The payload.
    Found(Opened),
    /// It was destroyed by the erasure record at this index.
    Erased(u64),
    /// No such payload was stored.
    Missing,
}

/// One record's payloads to store.
#[derive(Debug)]
pub struct Filing {
    /// The record's nonce (its folder).
    pub nonce: [u8; veritrail_records::NONCE_BYTES],
    /// Whose data key: `subject:<s>`, `conversation:<c>` or `record:<id>`.
    pub label: String,
    /// The record's conversation, for erasure by conversation.
    pub conversation_id: Option<String>,
    /// The payloads with their opening keys.
    pub payloads: Vec<(veritrail_records::Payload, [u8; 32])>,
}

/// The payload store.
#[derive(Debug)]
pub struct PayloadStore {
    dir: PathBuf,
    master: [u8; KEY_BYTES],
}

fn io<'a>(
    path: &'a Path,
    action: &'static str,
) -> impl FnOnce(std::io::Error) -> PayloadError + 'a {
    move |source| PayloadError::Io {
        path: path.to_owned(),
        action,
        source,
    }
}

fn random<const N: usize>() -> Result<[u8; N], PayloadError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(PayloadError::Random)?;
    Ok(bytes)
}

/// Creates `dir` owner-only if missing.
fn private_dir(dir: &Path) -> Result<(), PayloadError> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir, "create the directory"))
}

/// Writes a new owner-only file and syncs it and its directory.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), PayloadError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path, "create"))?;
    file.write_all(bytes).map_err(io(path, "write"))?;
    file.sync_all().map_err(io(path, "sync"))?;
    sync_parent(path)
}

fn sync_parent(path: &Path) -> Result<(), PayloadError> {
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io(parent, "sync the directory"))?;
    }
    Ok(())
}

fn seal(key: &[u8; KEY_BYTES], plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, PayloadError> {
    let cipher = XChaCha20Poly1305::new(&(*key).into());
    let nonce: [u8; NONCE_BYTES] = random()?;
    let sealed = cipher
        .encrypt(
            &nonce.into(),
            AeadPayload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| PayloadError::Undecryptable {
            path: PathBuf::new(),
        })?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Ok(out)
}

fn open(
    key: &[u8; KEY_BYTES],
    sealed: &[u8],
    aad: &[u8],
    path: &Path,
) -> Result<Vec<u8>, PayloadError> {
    let undecryptable = || PayloadError::Undecryptable {
        path: path.to_owned(),
    };
    let (nonce, body) = sealed
        .split_first_chunk::<NONCE_BYTES>()
        .ok_or_else(undecryptable)?;
    XChaCha20Poly1305::new(&(*key).into())
        .decrypt(&(*nonce).into(), AeadPayload { msg: body, aad })
        .map_err(|_| undecryptable())
}

/// What the erasure of a target affects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Affected {
    /// The records' folders (nonces, hex).
    pub records: Vec<String>,
    /// The data keys to destroy (ids, hex).
    pub keys: Vec<String>,
}

impl PayloadStore {
    /// Opens (creating) the store in `data/payloads`, with the master key from
    /// [`MASTER_KEY_ENV`] or `data/payload-master.key` (generated 0600 on first use, with a
    /// line on standard error saying where).
    ///
    /// # Errors
    /// [`PayloadError::MasterKey`] for a malformed key; I/O errors.
    pub fn open(data: &Path) -> Result<PayloadStore, PayloadError> {
        let dir = data.join("payloads");
        for sub in ["keys", "records", "erased"] {
            private_dir(&dir.join(sub))?;
        }
        let decode = |text: &str, from: String| -> Result<[u8; KEY_BYTES], PayloadError> {
            STANDARD
                .decode(text.trim())
                .ok()
                .and_then(|b| <[u8; KEY_BYTES]>::try_from(b.as_slice()).ok())
                .ok_or(PayloadError::MasterKey { from })
        };
        let master = match std::env::var(MASTER_KEY_ENV) {
            Ok(text) => decode(&text, format!("${MASTER_KEY_ENV}"))?,
            Err(_) => {
                let path = data.join(MASTER_KEY_FILE);
                match std::fs::read_to_string(&path) {
                    Ok(text) => decode(&text, path.display().to_string())?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        let key: [u8; KEY_BYTES] = random()?;
                        write_durably(&path, format!("{}\n", STANDARD.encode(key)).as_bytes())?;
                        eprintln!(
                            "generated the payload master key in {} (mode 0600); back it up apart from the data: without it no payload can be read",
                            path.display()
                        );
                        key
                    }
                    Err(e) => return Err(io(&path, "read the master key")(e)),
                }
            }
        };
        Ok(PayloadStore { dir, master })
    }

    /// The id of the data key for `label` (`subject:...`, `conversation:...`, `record:...`).
    pub fn key_id(&self, label: &str) -> String {
        let mut mac = <Hmac<Sha256>>::new_from_slice(&self.master)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"veritrail/data-key-id/v1\0");
        mac.update(label.as_bytes());
        hex(&mac.finalize().into_bytes())
    }

    /// The data key `id`, created if `create` and missing.
    fn data_key(&self, id: &str, create: bool) -> Result<Option<[u8; KEY_BYTES]>, PayloadError> {
        let path = self.dir.join("keys").join(id);
        let aad = format!("veritrail/data-key/v1\0{id}");
        match std::fs::read(&path) {
            Ok(sealed) => {
                let key = open(&self.master, &sealed, aad.as_bytes(), &path)?;
                <[u8; KEY_BYTES]>::try_from(key.as_slice())
                    .map(Some)
                    .map_err(|_| PayloadError::Undecryptable { path })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let key: [u8; KEY_BYTES] = random()?;
                write_durably(&path, &seal(&self.master, &key, aad.as_bytes())?)?;
                Ok(Some(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path, "read a data key")(e)),
        }
    }

    /// Stores a record's payloads durably (files and directories synced) before the record is
    /// committed.
    ///
    /// # Errors
    /// I/O errors (a full disk: [`PayloadError::is_no_space`]).
    pub fn store(&self, filing: &Filing) -> Result<(), PayloadError> {
        let key_id = self.key_id(&filing.label);
        let key = self
            .data_key(&key_id, true)?
            .ok_or_else(|| PayloadError::Undecryptable {
                path: self.dir.join("keys").join(&key_id),
            })?;
        let folder = hex(&filing.nonce);
        let dir = self.dir.join("records").join(&folder);
        private_dir(&dir)?;
        let meta = serde_json::json!({"key": key_id, "conversation_id": filing.conversation_id});
        write_durably(&dir.join("meta"), meta.to_string().as_bytes())?;
        for (payload, opening_key) in &filing.payloads {
            let opened = Opened {
                media_type: payload.media_type.clone(),
                payload: payload.bytes.clone(),
                opening_key: opening_key.to_vec(),
            };
            let plaintext = serde_json::to_vec(&opened)
                .map_err(|_| PayloadError::Undecryptable { path: dir.clone() })?;
            let aad = format!("{folder}\0{}", payload.name);
            write_durably(
                &dir.join(&payload.name),
                &seal(&key, &plaintext, aad.as_bytes())?,
            )?;
        }
        sync_parent(&dir)
    }

    /// The payload `name` of the record with `nonce`.
    ///
    /// # Errors
    /// I/O errors; [`PayloadError::Undecryptable`] for a damaged file.
    pub fn fetch(&self, nonce: &[u8], name: &str) -> Result<Lookup, PayloadError> {
        let folder = hex(nonce);
        let tombstone = self.dir.join("erased").join(&folder);
        if let Ok(text) = std::fs::read_to_string(&tombstone)
            && let Ok(index) = text.trim().parse()
        {
            return Ok(Lookup::Erased(index));
        }
        let dir = self.dir.join("records").join(&folder);
        let meta: serde_json::Value = match std::fs::read(dir.join("meta")) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|_| PayloadError::Undecryptable {
                    path: dir.join("meta"),
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Lookup::Missing),
            Err(e) => return Err(io(&dir, "read a record's metadata")(e)),
        };
        let Some(key_id) = meta.get("key").and_then(|k| k.as_str()) else {
            return Err(PayloadError::Undecryptable { path: dir });
        };
        let path = dir.join(name);
        let sealed = match std::fs::read(&path) {
            Ok(sealed) => sealed,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Lookup::Missing),
            Err(e) => return Err(io(&path, "read a payload")(e)),
        };
        let Some(key) = self.data_key(key_id, false)? else {
            return Ok(Lookup::Missing);
        };
        let plaintext = open(&key, &sealed, format!("{folder}\0{name}").as_bytes(), &path)?;
        serde_json::from_slice(&plaintext)
            .map(Lookup::Found)
            .map_err(|_| PayloadError::Undecryptable { path })
    }

    /// The records and keys an erasure of `label` (a data key) or `conversation` affects.
    ///
    /// # Errors
    /// I/O errors.
    pub fn affected(
        &self,
        label: Option<&str>,
        conversation: Option<&str>,
        nonce: Option<&[u8]>,
    ) -> Result<Affected, PayloadError> {
        let mut affected = Affected::default();
        let key = label.map(|l| self.key_id(l));
        if let Some(key) = &key {
            affected.keys.push(key.clone());
        }
        if let Some(nonce) = nonce {
            affected.records.push(hex(nonce));
            return Ok(affected);
        }
        let records = self.dir.join("records");
        let entries = std::fs::read_dir(&records).map_err(io(&records, "list the records"))?;
        for entry in entries.flatten() {
            let folder = entry.file_name().to_string_lossy().into_owned();
            let Ok(bytes) = std::fs::read(entry.path().join("meta")) else {
                continue;
            };
            let Ok(meta) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                continue;
            };
            let key_matches = key
                .as_deref()
                .is_some_and(|k| meta.get("key").and_then(|v| v.as_str()) == Some(k));
            let conversation_matches = conversation
                .is_some_and(|c| meta.get("conversation_id").and_then(|v| v.as_str()) == Some(c));
            if key_matches || conversation_matches {
                affected.records.push(folder);
            }
        }
        affected.records.sort();
        Ok(affected)
    }

    /// Destroys what `affected` names, recording `erasure_index` in a tombstone for each
    /// record first (so a payload is never just missing): the data keys and the payload
    /// files are deleted, and the directories synced.
    ///
    /// # Errors
    /// I/O errors (the erasure record is already in the log; retrying finishes the job).
    pub fn destroy(&self, affected: &Affected, erasure_index: u64) -> Result<(), PayloadError> {
        for folder in &affected.records {
            write_durably(
                &self.dir.join("erased").join(folder),
                format!("{erasure_index}\n").as_bytes(),
            )?;
        }
        for key in &affected.keys {
            let path = self.dir.join("keys").join(key);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&path, "delete a data key")(e)),
            }
        }
        sync_parent(&self.dir.join("keys").join("x"))?;
        for folder in &affected.records {
            let dir = self.dir.join("records").join(folder);
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&dir, "delete a record's payloads")(e)),
            }
        }
        sync_parent(&self.dir.join("records").join("x"))
    }
}

/// The data-key label of a record: its subject, else its conversation, else itself.
pub fn label_of(subject: Option<&str>, conversation: Option<&str>, id: &str) -> String {
    match (subject, conversation) {
        (Some(subject), _) => format!("subject:{subject}"),
        (None, Some(conversation)) => format!("conversation:{conversation}"),
        (None, None) => format!("record:{id}"),
    }
}

/// What a record commits to (by name) and what the store keeps (each payload with its
/// opening key).
pub type Committed = (
    BTreeMap<String, veritrail_records::PayloadRef>,
    Vec<(veritrail_records::Payload, [u8; 32])>,
);

/// The payload references a record commits to, with fresh opening keys.
///
/// # Errors
/// [`PayloadError::Random`].
pub fn commit(payloads: Vec<veritrail_records::Payload>) -> Result<Committed, PayloadError> {
    let mut refs = BTreeMap::new();
    let mut keyed = Vec::with_capacity(payloads.len());
    for payload in payloads {
        let opening_key: [u8; 32] = random()?;
        refs.insert(
            payload.name.clone(),
            veritrail_records::PayloadRef {
                media_type: payload.media_type.clone(),
                size: payload.bytes.len(),
                commitment: veritrail_records::payload::commitment(&opening_key, &payload.bytes),
            },
        );
        keyed.push((payload, opening_key));
    }
    Ok((refs, keyed))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn payload(name: &str, text: &str) -> veritrail_records::Payload {
        veritrail_records::Payload {
            name: name.into(),
            media_type: "text/plain".into(),
            bytes: text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn stored_payloads_open_and_erasure_destroys_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = PayloadStore::open(dir.path()).unwrap();
        let (refs, keyed) = commit(vec![payload("prompt", "my HIV test result?")]).unwrap();
        let filing = Filing {
            nonce: [1; 16],
            label: label_of(Some("P-0042"), Some("c-1"), "r"),
            conversation_id: Some("c-1".into()),
            payloads: keyed,
        };
        store.store(&filing).unwrap();
        let Lookup::Found(opened) = store.fetch(&[1; 16], "prompt").unwrap() else {
            panic!("stored")
        };
        assert_eq!(opened.payload, b"my HIV test result?");
        assert!(veritrail_records::payload::opens(
            &refs["prompt"].commitment,
            &opened.opening_key,
            &opened.payload
        ));
        assert!(matches!(
            store.fetch(&[1; 16], "other").unwrap(),
            Lookup::Missing
        ));
        // Nothing in the store's files holds the payload in the clear.
        let mut files = vec![dir.path().to_owned()];
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            } else {
                let bytes = std::fs::read(&path).unwrap();
                assert!(
                    !bytes.windows(8).any(|w| w == b"HIV test"),
                    "{}",
                    path.display()
                );
            }
        }
        let affected = store
            .affected(Some(&label_of(Some("P-0042"), None, "")), None, None)
            .unwrap();
        assert_eq!(affected.records, vec![hex(&[1; 16])]);
        store.destroy(&affected, 77).unwrap();
        assert!(matches!(
            store.fetch(&[1; 16], "prompt").unwrap(),
            Lookup::Erased(77)
        ));
        assert!(
            !dir.path()
                .join("payloads/records")
                .join(hex(&[1; 16]))
                .exists()
        );
        assert!(
            std::fs::read_dir(dir.path().join("payloads/keys"))
                .unwrap()
                .next()
                .is_none()
        );
    }

    #[test]
    fn key_ids_do_not_reveal_subjects_and_a_wrong_master_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = PayloadStore::open(dir.path()).unwrap();
        let id = store.key_id("subject:P-0042");
        assert_eq!(id.len(), 64);
        assert!(!id.contains("P-0042"));
        std::fs::write(dir.path().join(MASTER_KEY_FILE), "not base64").unwrap();
        assert!(matches!(
            PayloadStore::open(dir.path()),
            Err(PayloadError::MasterKey { .. })
        ));
    }
}
