//! The encrypted payload store: what records commit to but never put in the tree.
//!
//! Layout under `<data>/payloads/` (every file 0600, every directory 0700): an append-only
//! journal and segments, written in group commits by one thread (`payloads/log.rs` has the
//! formats):
//!
//! ```text
//! journal                    frames: data keys (sealed under the master key, AAD = key id),
//!                            records (nonce, key id, conversation, where each payload is),
//!                            erasure tombstones
//! segments/NNNNNNNN.seg      sealed payloads: nonce(24) ‖ XChaCha20-Poly1305(data key,
//!                            1 ‖ u16 + media type ‖ opening key(32) ‖ payload),
//!                            AAD = record nonce (hex) ‖ 0 ‖ name
//! ```
//!
//! A record's payloads are filed under the record's server-chosen `nonce` (unique, in its
//! leaf). Each data subject (the event's `subject`; else its conversation; else the record)
//! has its own data key; a key id is `HMAC-SHA-256(master key, label)`, so the store's file
//! names do not reveal subjects to whoever lacks the master key. The master key is read from
//! `VERITRAIL_MASTER_KEY` (base64) or `<data>/payload-master.key` (created 0600 on first
//! start), and is never logged or written anywhere else.
//!
//! Erasure destroys the data key (crypto-shredding) and overwrites the payloads' bytes with
//! zeros, and journals a tombstone naming the erasure record; the tree is untouched, so every
//! proof still verifies.

mod log;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

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
    /// The journal is damaged before its end (a torn last frame is cut off instead).
    #[error("payload journal {path} is damaged at byte {offset}")]
    Corrupted {
        /// The journal.
        path: PathBuf,
        /// Where the damaged frame starts.
        offset: u64,
    },
    /// The writer thread failed or stopped.
    #[error("payload store: {0}")]
    Writer(String),
}

impl PayloadError {
    /// Whether the error means the disk is full.
    pub fn is_no_space(&self) -> bool {
        matches!(self, PayloadError::Io { source, .. } if veritrail_ledger::error::is_no_space(source))
    }
}

/// A payload read back from the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    /// Its media type.
    pub media_type: String,
    /// Its bytes.
    pub payload: Vec<u8>,
    /// The opening key of its commitment.
    pub opening_key: Vec<u8>,
}

/// The version byte of a sealed payload's plaintext.
const PLAINTEXT_V1: u8 = 1;

impl Opened {
    /// The plaintext that is sealed: `1 ‖ u16 BE media type length ‖ media type ‖ opening key
    /// (32) ‖ payload`.
    fn encode(media_type: &str, opening_key: &[u8; 32], payload: &[u8]) -> Vec<u8> {
        let media = media_type.as_bytes();
        let len = u16::try_from(media.len()).unwrap_or(u16::MAX);
        let media = media.get(..usize::from(len)).unwrap_or_default();
        let mut out = Vec::with_capacity(3 + media.len() + 32 + payload.len());
        out.push(PLAINTEXT_V1);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(media);
        out.extend_from_slice(opening_key);
        out.extend_from_slice(payload);
        out
    }

    /// Decodes [`Opened::encode`]'s output; `None` for anything else.
    fn decode(plaintext: &[u8]) -> Option<Opened> {
        let (&version, rest) = plaintext.split_first()?;
        let (len, rest) = rest.split_first_chunk::<2>()?;
        let (media, rest) = rest.split_at_checked(usize::from(u16::from_be_bytes(*len)))?;
        let (opening_key, payload) = rest.split_first_chunk::<32>()?;
        (version == PLAINTEXT_V1).then(|| Opened {
            media_type: String::from_utf8_lossy(media).into_owned(),
            payload: payload.to_vec(),
            opening_key: opening_key.to_vec(),
        })
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
pub struct PayloadStore {
    dir: PathBuf,
    master: [u8; KEY_BYTES],
    index: Arc<RwLock<log::Index>>,
    writer: Mutex<std::sync::mpsc::Sender<log::Command>>,
}

impl std::fmt::Debug for PayloadStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the master key or a data key.
        f.debug_struct("PayloadStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
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
    /// line on standard error saying where), reads its journal and starts its writer thread.
    ///
    /// # Errors
    /// [`PayloadError::MasterKey`] for a malformed key; [`PayloadError::Corrupted`] for a
    /// damaged journal; [`PayloadError::Undecryptable`] for data keys sealed under another
    /// master key; I/O errors.
    pub fn open(data: &Path) -> Result<PayloadStore, PayloadError> {
        let dir = data.join("payloads");
        private_dir(&dir.join("segments"))?;
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
        let unseal = |id: &[u8; 32], sealed: &[u8]| {
            open(&master, sealed, &log::key_aad(id), Path::new(""))
                .ok()
                .and_then(|key| <[u8; KEY_BYTES]>::try_from(key.as_slice()).ok())
        };
        let (index, journal_len) = log::replay(&dir.join("journal"), &unseal)?;
        let index = Arc::new(RwLock::new(index));
        let writer = log::Writer::open(&dir, master, index.clone(), journal_len)?;
        let (commands, receiver) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("veritrail-payloads".into())
            .spawn(move || writer.run(&receiver))
            .map_err(io(&dir, "start the payload writer thread"))?;
        Ok(PayloadStore {
            dir,
            master,
            index,
            writer: Mutex::new(commands),
        })
    }

    /// The id of the data key for `label` (`subject:...`, `conversation:...`, `record:...`).
    pub fn key_id(&self, label: &str) -> String {
        hex(&self.key_id_bytes(label))
    }

    fn key_id_bytes(&self, label: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256>>::new_from_slice(&self.master)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"veritrail/data-key-id/v1\0");
        mac.update(label.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn index(&self) -> std::sync::RwLockReadGuard<'_, log::Index> {
        match self.index.read() {
            Ok(index) => index,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Sends `command` to the writer thread and waits for its answer.
    async fn ask(
        &self,
        command: impl FnOnce(log::Reply) -> log::Command,
    ) -> Result<(), PayloadError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sent = match self.writer.lock() {
            Ok(writer) => writer.send(command(reply)),
            Err(poisoned) => poisoned.into_inner().send(command(reply)),
        };
        let stopped = || PayloadError::Writer("the payload writer thread has stopped".into());
        sent.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Stores records' payloads durably before the records are committed: the writer thread
    /// writes every filing queued at the time in one group (two syncs for the group).
    ///
    /// # Errors
    /// I/O errors (a full disk: [`PayloadError::is_no_space`]).
    pub async fn store_all(&self, filings: Vec<Filing>) -> Result<(), PayloadError> {
        let pending = filings
            .into_iter()
            .map(|filing| {
                let payloads = filing
                    .payloads
                    .into_iter()
                    .map(|(payload, opening_key)| {
                        let plaintext =
                            Opened::encode(&payload.media_type, &opening_key, &payload.bytes);
                        (payload.name, plaintext)
                    })
                    .collect();
                Ok(log::Pending {
                    nonce: filing.nonce,
                    key: self.key_id_bytes(&filing.label),
                    conversation: filing.conversation_id,
                    payloads,
                })
            })
            .collect::<Result<Vec<_>, PayloadError>>()?;
        self.ask(|reply| log::Command::File(pending, reply)).await
    }

    /// The payload `name` of the record with `nonce`.
    ///
    /// # Errors
    /// I/O errors; [`PayloadError::Undecryptable`] for damaged bytes.
    pub fn fetch(&self, nonce: &[u8], name: &str) -> Result<Lookup, PayloadError> {
        let Ok(nonce) = <[u8; 16]>::try_from(nonce) else {
            return Ok(Lookup::Missing);
        };
        let (blob, key) = {
            let index = self.index();
            let Some(record) = index.records.get(&nonce) else {
                return Ok(Lookup::Missing);
            };
            if let Some(erasure) = record.erased {
                return Ok(Lookup::Erased(erasure));
            }
            let Some((_, blob)) = record.payloads.iter().find(|(n, _)| &**n == name) else {
                return Ok(Lookup::Missing);
            };
            let Some(slot) = index.keys.get(&record.key) else {
                return Ok(Lookup::Missing);
            };
            (*blob, slot.key)
        };
        let path = log::segment_path(&self.dir, blob.segment);
        let mut sealed = vec![0u8; blob.len as usize];
        std::fs::File::open(&path)
            .and_then(|file| {
                use std::os::unix::fs::FileExt as _;
                file.read_exact_at(&mut sealed, blob.offset)
            })
            .map_err(io(&path, "read a payload"))?;
        let plaintext = open(&key, &sealed, &log::payload_aad(&nonce, name), &path)?;
        Opened::decode(&plaintext)
            .map(Lookup::Found)
            .ok_or(PayloadError::Undecryptable { path })
    }

    /// A record's payloads as stored, still sealed, for an archive: a JSON object
    /// `{"nonce", "key_id", "sealed_key", "payloads": [{"name", "sealed"}]}` (hex ids, base64
    /// sealed bytes) — the record's data key sealed under the master key (AAD
    /// `veritrail/data-key/v1\0<key id hex>`), each payload sealed under the data key (AAD
    /// `<nonce hex>\0<name>`), exactly as this store keeps them. Only the master key opens
    /// them. `None` when the record has no payloads here (none stored, or erased).
    ///
    /// # Errors
    /// I/O errors; [`PayloadError::Random`].
    pub fn export(&self, nonce: &[u8]) -> Result<Option<Vec<u8>>, PayloadError> {
        let Ok(nonce) = <[u8; 16]>::try_from(nonce) else {
            return Ok(None);
        };
        let (blobs, key_id, key) = {
            let index = self.index();
            let Some(record) = index.records.get(&nonce) else {
                return Ok(None);
            };
            if record.erased.is_some() || record.payloads.is_empty() {
                return Ok(None);
            }
            let Some(slot) = index.keys.get(&record.key) else {
                return Ok(None);
            };
            (record.payloads.clone(), record.key, slot.key)
        };
        let mut payloads = Vec::new();
        for (name, blob) in blobs {
            let path = log::segment_path(&self.dir, blob.segment);
            let mut sealed = vec![0u8; blob.len as usize];
            std::fs::File::open(&path)
                .and_then(|file| {
                    use std::os::unix::fs::FileExt as _;
                    file.read_exact_at(&mut sealed, blob.offset)
                })
                .map_err(io(&path, "read a payload"))?;
            payloads.push(serde_json::json!({"name": &*name, "sealed": STANDARD.encode(&sealed)}));
        }
        let sealed_key = seal(&self.master, &key, &log::key_aad(&key_id))?;
        let json = serde_json::json!({
            "nonce": hex(&nonce),
            "key_id": hex(&key_id),
            "sealed_key": STANDARD.encode(&sealed_key),
            "payloads": payloads,
        });
        Ok(Some(json.to_string().into_bytes()))
    }

    /// The records and keys an erasure of `label` (a data key), of `conversation` or of the
    /// record with `nonce` affects.
    ///
    /// # Errors
    /// None today (the store's index is in memory); kept for the interface.
    pub fn affected(
        &self,
        label: Option<&str>,
        conversation: Option<&str>,
        nonce: Option<&[u8]>,
    ) -> Result<Affected, PayloadError> {
        let mut affected = Affected::default();
        let key = label.map(|l| self.key_id_bytes(l));
        if let Some(key) = &key {
            affected.keys.push(hex(key));
        }
        if let Some(nonce) = nonce {
            affected.records.push(hex(nonce));
            return Ok(affected);
        }
        let index = self.index();
        for (nonce, record) in &index.records {
            let key_matches = key.is_some_and(|k| record.key == k);
            let conversation_matches =
                conversation.is_some_and(|c| record.conversation.as_deref() == Some(c));
            if key_matches || conversation_matches {
                affected.records.push(hex(nonce));
            }
        }
        affected.records.sort();
        Ok(affected)
    }

    /// Destroys what `affected` names for the erasure record at `erasure_index`: each
    /// record's payload bytes and each data key are overwritten in place, then tombstones are
    /// journaled (so a payload is never just missing).
    ///
    /// # Errors
    /// I/O errors (the erasure record is already in the log; retrying finishes the job).
    pub async fn destroy(
        &self,
        affected: &Affected,
        erasure_index: u64,
    ) -> Result<(), PayloadError> {
        let records = affected
            .records
            .iter()
            .filter_map(|h| veritrail_ledger::ascii::parse_hex::<16>(h))
            .collect();
        let keys = affected
            .keys
            .iter()
            .filter_map(|h| veritrail_ledger::ascii::parse_hex::<32>(h))
            .collect();
        self.ask(|reply| log::Command::Destroy {
            records,
            keys,
            erasure_index,
            reply,
        })
        .await
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

    fn filing(nonce: u8, subject: &str, text: &str) -> (veritrail_records::PayloadRef, Filing) {
        let (refs, keyed) = commit(vec![payload("prompt", text)]).unwrap();
        let filing = Filing {
            nonce: [nonce; 16],
            label: label_of(Some(subject), Some("c-1"), "r"),
            conversation_id: Some("c-1".into()),
            payloads: keyed,
        };
        (refs["prompt"].clone(), filing)
    }

    /// Every file under `dir`, with its bytes.
    fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut todo = vec![dir.to_owned()];
        while let Some(path) = todo.pop() {
            if path.is_dir() {
                todo.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            } else {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
        out
    }

    #[tokio::test]
    async fn stored_payloads_open_and_erasure_destroys_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = PayloadStore::open(dir.path()).unwrap();
        let (reference, one) = filing(1, "P-0042", "my HIV test result?");
        let (_, other) = filing(2, "P-0043", "someone else's question");
        store.store_all(vec![one, other]).await.unwrap();
        let Lookup::Found(opened) = store.fetch(&[1; 16], "prompt").unwrap() else {
            panic!("stored")
        };
        assert_eq!(opened.payload, b"my HIV test result?");
        assert!(veritrail_records::payload::opens(
            &reference.commitment,
            &opened.opening_key,
            &opened.payload
        ));
        assert!(matches!(
            store.fetch(&[1; 16], "other").unwrap(),
            Lookup::Missing
        ));
        assert!(matches!(
            store.fetch(&[9; 16], "prompt").unwrap(),
            Lookup::Missing
        ));
        // Nothing in the store's files holds the payload in the clear.
        let sealed_segment =
            std::fs::read(log::segment_path(&dir.path().join("payloads"), 0)).unwrap();
        for (path, bytes) in files(dir.path()) {
            assert!(
                !bytes.windows(8).any(|w| w == b"HIV test"),
                "{}",
                path.display()
            );
        }
        let affected = store
            .affected(Some(&label_of(Some("P-0042"), None, "")), None, None)
            .unwrap();
        assert_eq!(affected.records, vec![hex(&[1; 16])]);
        store.destroy(&affected, 77).await.unwrap();
        assert!(matches!(
            store.fetch(&[1; 16], "prompt").unwrap(),
            Lookup::Erased(77)
        ));
        // The other subject's payload is untouched; the erased one's bytes are gone.
        assert!(matches!(
            store.fetch(&[2; 16], "prompt").unwrap(),
            Lookup::Found(_)
        ));
        let segment = std::fs::read(log::segment_path(&dir.path().join("payloads"), 0)).unwrap();
        assert_eq!(segment.len(), sealed_segment.len());
        let zeroed = segment.iter().filter(|b| **b == 0).count();
        assert!(zeroed >= 40 + 19, "only {zeroed} bytes zeroed");
        let erased_blob: Vec<u8> = sealed_segment
            .iter()
            .zip(&segment)
            .filter(|(before, after)| before != after)
            .map(|(before, _)| *before)
            .collect();
        assert!(erased_blob.len() > 40);
        for (path, bytes) in files(dir.path()) {
            assert!(
                !bytes
                    .windows(32)
                    .any(|w| erased_blob.windows(32).next() == Some(w)),
                "{} still holds the erased ciphertext",
                path.display()
            );
        }
        // After a restart, from the journal alone: the same answers.
        drop(store);
        let store = PayloadStore::open(dir.path()).unwrap();
        assert!(matches!(
            store.fetch(&[1; 16], "prompt").unwrap(),
            Lookup::Erased(77)
        ));
        let Lookup::Found(opened) = store.fetch(&[2; 16], "prompt").unwrap() else {
            panic!("the other subject's payload survives a restart")
        };
        assert_eq!(opened.payload, b"someone else's question");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_share_one_key_per_subject_and_a_torn_journal_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(PayloadStore::open(dir.path()).unwrap());
        let tasks: Vec<_> = (0..16u8)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(async move {
                    let (_, f) = filing(n, "P-7", &format!("payload {n}"));
                    store.store_all(vec![f]).await.unwrap();
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(store.index().keys.len(), 1, "one data key for one subject");
        drop(store);
        // A crash mid-write leaves half a frame at the journal's end.
        let journal = dir.path().join("payloads/journal");
        let mut bytes = std::fs::read(&journal).unwrap();
        let whole = bytes.len();
        bytes.extend_from_slice(&[0, 0, 0, 90, 1, 2, 3, 4, 2, 7]);
        std::fs::write(&journal, &bytes).unwrap();
        let store = PayloadStore::open(dir.path()).unwrap();
        assert_eq!(std::fs::metadata(&journal).unwrap().len(), whole as u64);
        for n in 0..16u8 {
            let Lookup::Found(opened) = store.fetch(&[n; 16], "prompt").unwrap() else {
                panic!("payload {n}")
            };
            assert_eq!(opened.payload, format!("payload {n}").as_bytes());
        }
        // Damage before the end is not a torn write: the store refuses to start.
        drop(store);
        let mut bytes = std::fs::read(&journal).unwrap();
        bytes[12] ^= 0xFF;
        std::fs::write(&journal, &bytes).unwrap();
        assert!(matches!(
            PayloadStore::open(dir.path()),
            Err(PayloadError::Corrupted { offset: 0, .. })
        ));
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
