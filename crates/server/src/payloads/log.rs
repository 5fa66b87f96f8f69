//! The payload store's files, written in group commits by one thread.
//!
//! ```text
//! payloads/journal              frames: len u32 BE ‖ CRC-32 u32 BE (of the body) ‖ body
//! payloads/segments/NNNNNNNN.seg   sealed payloads, back to back (each an AEAD ciphertext)
//! ```
//!
//! Journal frame bodies (first byte: the kind):
//!
//! | kind | body |
//! |------|------|
//! | 0 void | zeros: an erased data-key frame, overwritten in place |
//! | 1 key | key id (32) ‖ the data key sealed under the master key (72) |
//! | 2 record | nonce (16) ‖ key id (32) ‖ u16 + conversation id ‖ u8 count ‖ per payload: u16 + name ‖ segment u32 ‖ offset u64 ‖ length u32 |
//! | 3 erased | nonce (16) ‖ erasure record index u64 |
//! | 4 key destroyed | key id (32) |
//!
//! A group commit appends every sealed payload of the queued records to the current segment
//! and their frames (and any new data key's) to the journal, and syncs both files at once:
//! two `fdatasync`s in parallel per group however many records it holds, and no file per
//! record. The group's records are committed to the log only after both syncs, so a frame
//! whose payload bytes did not survive a crash belongs to no record; bytes after the last
//! referenced ones are never read.
//!
//! Erasure overwrites each affected payload's ciphertext with zeros and each destroyed data
//! key's frame with a void frame, in place, then journals the tombstones: the bytes are gone
//! from the files, not only unreadable.
//!
//! At start the journal is read once into memory ([`Index`]): per record with payloads its
//! nonce, key id, conversation and payload locations (about 150 bytes); a torn frame at its
//! end (a crash mid-write) is cut off, damage before the end refuses to start.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, TryRecvError};

/// Where the writer answers a command.
pub(super) type Reply = tokio::sync::oneshot::Sender<Result<(), PayloadError>>;
use std::sync::{Arc, RwLock};

use super::{KEY_BYTES, PayloadError, io, random, seal};

/// A segment is closed and the next one started beyond this size.
const SEGMENT_BYTES: u64 = 256 << 20;
/// Largest journal frame body accepted.
const MAX_FRAME: u32 = 1 << 20;
/// Most records in one group commit.
const MAX_GROUP_RECORDS: usize = 4096;
/// Most payload bytes in one group commit.
const MAX_GROUP_BYTES: usize = 32 << 20;
/// Bytes of a frame header.
const HEADER: usize = 8;
/// Bytes of a sealed data key: XChaCha20 nonce, key, Poly1305 tag.
pub(super) const SEALED_KEY_BYTES: usize = 24 + KEY_BYTES + 16;

const VOID: u8 = 0;
const KEY: u8 = 1;
const RECORD: u8 = 2;
const ERASED: u8 = 3;
const KEY_DESTROYED: u8 = 4;

/// Opens a sealed data key of the given id (`None`: not under this master key).
pub(super) type Unseal<'a> = &'a dyn Fn(&[u8; 32], &[u8]) -> Option<[u8; KEY_BYTES]>;

/// Where a sealed payload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Blob {
    pub(super) segment: u32,
    pub(super) offset: u64,
    pub(super) len: u32,
}

/// What the store knows of one record.
#[derive(Clone, Debug, Default)]
pub(super) struct RecordEntry {
    pub(super) key: [u8; 32],
    pub(super) conversation: Option<Box<str>>,
    pub(super) payloads: Vec<(Box<str>, Blob)>,
    pub(super) erased: Option<u64>,
}

impl RecordEntry {
    fn new(key: [u8; 32], conversation: Option<String>, payloads: Vec<(String, Blob)>) -> Self {
        RecordEntry {
            key,
            conversation: conversation.map(String::into_boxed_str),
            payloads: payloads
                .into_iter()
                .map(|(name, blob)| (name.into_boxed_str(), blob))
                .collect(),
            erased: None,
        }
    }
}

/// A data key in force, and where its frame is (for erasure). No `Debug`: it holds a key.
#[derive(Clone, Copy)]
pub(super) struct KeySlot {
    pub(super) key: [u8; KEY_BYTES],
    frame_offset: u64,
    frame_len: u32,
}

/// Everything the journal says, in memory.
#[derive(Default)]
pub(super) struct Index {
    pub(super) keys: HashMap<[u8; 32], KeySlot>,
    pub(super) records: HashMap<[u8; 16], RecordEntry>,
}

/// A journal frame.
#[derive(Debug, PartialEq, Eq)]
enum Frame {
    Void,
    Key {
        id: [u8; 32],
        sealed: Vec<u8>,
    },
    Record {
        nonce: [u8; 16],
        key: [u8; 32],
        conversation: Option<String>,
        payloads: Vec<(String, Blob)>,
    },
    Erased {
        nonce: [u8; 16],
        index: u64,
    },
    KeyDestroyed {
        id: [u8; 32],
    },
}

impl Frame {
    /// Appends the frame, header included, to `out`; returns its body length.
    fn encode(&self, out: &mut Vec<u8>) -> u32 {
        let mut body = Vec::new();
        match self {
            Frame::Void => body.push(VOID),
            Frame::Key { id, sealed } => {
                body.push(KEY);
                body.extend_from_slice(id);
                body.extend_from_slice(sealed);
            }
            Frame::Record {
                nonce,
                key,
                conversation,
                payloads,
            } => {
                body.push(RECORD);
                body.extend_from_slice(nonce);
                body.extend_from_slice(key);
                let conversation = conversation.as_deref().unwrap_or("");
                put_str(&mut body, conversation);
                body.push(u8::try_from(payloads.len()).unwrap_or(u8::MAX));
                for (name, blob) in payloads.iter().take(usize::from(u8::MAX)) {
                    put_str(&mut body, name);
                    body.extend_from_slice(&blob.segment.to_be_bytes());
                    body.extend_from_slice(&blob.offset.to_be_bytes());
                    body.extend_from_slice(&blob.len.to_be_bytes());
                }
            }
            Frame::Erased { nonce, index } => {
                body.push(ERASED);
                body.extend_from_slice(nonce);
                body.extend_from_slice(&index.to_be_bytes());
            }
            Frame::KeyDestroyed { id } => {
                body.push(KEY_DESTROYED);
                body.extend_from_slice(id);
            }
        }
        let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
        out.extend_from_slice(&body);
        len
    }

    /// Decodes a frame body. Total: `None` for anything malformed.
    fn decode(body: &[u8]) -> Option<Frame> {
        let mut r = Reader(body);
        let frame = match r.u8()? {
            VOID => {
                return body.iter().all(|b| *b == 0).then_some(Frame::Void);
            }
            KEY => Frame::Key {
                id: r.array()?,
                sealed: r.take(SEALED_KEY_BYTES)?.to_vec(),
            },
            RECORD => {
                let nonce = r.array()?;
                let key = r.array()?;
                let conversation = r.string()?;
                let count = r.u8()?;
                let mut payloads = Vec::with_capacity(usize::from(count));
                for _ in 0..count {
                    let name = r.string()?;
                    let blob = Blob {
                        segment: u32::from_be_bytes(r.array()?),
                        offset: u64::from_be_bytes(r.array()?),
                        len: u32::from_be_bytes(r.array()?),
                    };
                    payloads.push((name, blob));
                }
                Frame::Record {
                    nonce,
                    key,
                    conversation: (!conversation.is_empty()).then_some(conversation),
                    payloads,
                }
            }
            ERASED => Frame::Erased {
                nonce: r.array()?,
                index: u64::from_be_bytes(r.array()?),
            },
            KEY_DESTROYED => Frame::KeyDestroyed { id: r.array()? },
            _ => return None,
        };
        r.0.is_empty().then_some(frame)
    }
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes.get(..usize::from(len)).unwrap_or_default());
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|b| <[u8; N]>::try_from(b).ok())
    }
    fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }
    fn string(&mut self) -> Option<String> {
        let len = u16::from_be_bytes(self.array()?);
        let bytes = self.take(usize::from(len))?;
        String::from_utf8(bytes.to_vec()).ok()
    }
}

/// The path of segment `n`.
pub(super) fn segment_path(dir: &Path, n: u32) -> PathBuf {
    dir.join("segments").join(format!("{n:08}.seg"))
}

/// Reads the journal into an index, cutting a torn tail off. `unseal` opens a sealed data
/// key (`None`: it does not decrypt under this master key).
///
/// # Errors
/// I/O errors; [`PayloadError::Corrupted`] for a damaged frame before the end;
/// [`PayloadError::Undecryptable`] for a data key that does not open.
pub(super) fn replay(path: &Path, unseal: Unseal<'_>) -> Result<(Index, u64), PayloadError> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut file) => {
            file.read_to_end(&mut bytes)
                .map_err(io(path, "read the journal"))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(path, "open the journal")(e)),
    }
    let mut index = Index::default();
    let mut at = 0usize;
    while at < bytes.len() {
        let frame_start = at;
        let header = bytes.get(at..at + HEADER);
        let parsed = header.and_then(|h| {
            let len = u32::from_be_bytes(h.get(..4)?.try_into().ok()?);
            let crc = u32::from_be_bytes(h.get(4..)?.try_into().ok()?);
            (len <= MAX_FRAME).then_some((len, crc))
        });
        let body_end = parsed.and_then(|(len, _)| (at + HEADER).checked_add(len as usize));
        let body = body_end.and_then(|end| bytes.get(at + HEADER..end));
        let frame = match (parsed, body) {
            (Some((_, crc)), Some(body)) if crc32fast::hash(body) == crc => Frame::decode(body),
            _ => None,
        };
        let Some(frame) = frame else {
            // A frame that runs to (or past) the end was being written when the process
            // died: cut it off. Damage followed by more frames is not a torn write.
            if body_end.is_none_or(|end| end >= bytes.len()) {
                tracing::warn!(
                    path = %path.display(),
                    offset = frame_start,
                    "payload journal: cut off a torn frame at its end"
                );
                return Ok((index, frame_start as u64));
            }
            return Err(PayloadError::Corrupted {
                path: path.to_owned(),
                offset: frame_start as u64,
            });
        };
        let frame_len = u32::try_from(body_end.unwrap_or(at) - frame_start).unwrap_or(u32::MAX);
        at = body_end.unwrap_or(bytes.len());
        apply(
            &mut index,
            frame,
            frame_start as u64,
            frame_len,
            unseal,
            path,
        )?;
    }
    Ok((index, bytes.len() as u64))
}

fn apply(
    index: &mut Index,
    frame: Frame,
    frame_offset: u64,
    frame_len: u32,
    unseal: Unseal<'_>,
    path: &Path,
) -> Result<(), PayloadError> {
    match frame {
        Frame::Void => {}
        Frame::Key { id, sealed } => {
            let key = unseal(&id, &sealed).ok_or_else(|| PayloadError::Undecryptable {
                path: path.to_owned(),
            })?;
            index.keys.insert(
                id,
                KeySlot {
                    key,
                    frame_offset,
                    frame_len,
                },
            );
        }
        Frame::KeyDestroyed { id } => {
            index.keys.remove(&id);
        }
        Frame::Record {
            nonce,
            key,
            conversation,
            payloads,
        } => {
            index
                .records
                .insert(nonce, RecordEntry::new(key, conversation, payloads));
        }
        Frame::Erased { nonce, index: at } => {
            index.records.entry(nonce).or_default().erased = Some(at);
        }
    }
    Ok(())
}

/// One record's payloads to write: the writer seals them under the record's data key,
/// creating the key if it is new (only the writer creates keys, so two requests for a new
/// subject never make two).
pub(super) struct Pending {
    pub(super) nonce: [u8; 16],
    pub(super) key: [u8; 32],
    pub(super) conversation: Option<String>,
    /// Each payload's name and plaintext (its JSON [`super::Opened`]).
    pub(super) payloads: Vec<(String, Vec<u8>)>,
}

/// The AAD of a sealed payload: the record's nonce (hex), a zero byte, the payload's name.
pub(super) fn payload_aad(nonce: &[u8; 16], name: &str) -> Vec<u8> {
    format!("{}\0{name}", veritrail_ledger::ascii::to_hex(nonce)).into_bytes()
}

/// The AAD of a sealed data key.
pub(super) fn key_aad(id: &[u8; 32]) -> Vec<u8> {
    format!(
        "veritrail/data-key/v1\0{}",
        veritrail_ledger::ascii::to_hex(id)
    )
    .into_bytes()
}

/// What the writer thread is asked to do.
pub(super) enum Command {
    /// Write these records' payloads durably.
    File(Vec<Pending>, Reply),
    /// Erase these records and keys for the erasure record at this index.
    Destroy {
        records: Vec<[u8; 16]>,
        keys: Vec<[u8; 32]>,
        erasure_index: u64,
        reply: Reply,
    },
}

/// The writer thread's state.
pub(super) struct Writer {
    dir: PathBuf,
    master: [u8; KEY_BYTES],
    index: Arc<RwLock<Index>>,
    journal: File,
    journal_len: u64,
    segment: File,
    segment_no: u32,
    segment_len: u64,
}

fn owner_only(path: &Path) -> Result<File, PayloadError> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io(path, "open"))
}

fn sync_dir(dir: &Path) -> Result<(), PayloadError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir, "sync the directory"))
}

impl Writer {
    /// Opens the journal (cut to `journal_len`, what replay kept) and the newest segment.
    pub(super) fn open(
        dir: &Path,
        master: [u8; KEY_BYTES],
        index: Arc<RwLock<Index>>,
        journal_len: u64,
    ) -> Result<Writer, PayloadError> {
        let path = dir.join("journal");
        let journal = owner_only(&path)?;
        if journal.metadata().map_err(io(&path, "stat"))?.len() != journal_len {
            journal
                .set_len(journal_len)
                .and_then(|()| journal.sync_all())
                .map_err(io(&path, "cut off the torn tail"))?;
        }
        sync_dir(dir)?;
        let segments = dir.join("segments");
        let newest = std::fs::read_dir(&segments)
            .map_err(io(&segments, "list the segments"))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".seg")?
                    .parse::<u32>()
                    .ok()
            })
            .max()
            .unwrap_or(0);
        let path = segment_path(dir, newest);
        let segment = owner_only(&path)?;
        let segment_len = segment.metadata().map_err(io(&path, "stat"))?.len();
        sync_dir(&segments)?;
        Ok(Writer {
            dir: dir.to_owned(),
            master,
            index,
            journal,
            journal_len,
            segment,
            segment_no: newest,
            segment_len,
        })
    }

    /// Serves commands until every sender is gone.
    pub(super) fn run(mut self, commands: &Receiver<Command>) {
        let mut next = None;
        loop {
            let command = match next.take() {
                Some(command) => command,
                None => match commands.recv() {
                    Ok(command) => command,
                    Err(_) => return,
                },
            };
            match command {
                Command::Destroy {
                    records,
                    keys,
                    erasure_index,
                    reply,
                } => {
                    let _ = reply.send(self.destroy(&records, &keys, erasure_index));
                }
                Command::File(sealed, reply) => {
                    // Group every filing already queued behind this one.
                    let mut group = vec![(sealed, reply)];
                    let (mut records, mut bytes) = (0, 0);
                    loop {
                        records += group.last().map_or(0, |(s, _)| s.len());
                        bytes += group.last().map_or(0, |(s, _): &(Vec<Pending>, _)| {
                            s.iter()
                                .flat_map(|r| r.payloads.iter())
                                .map(|(_, b)| b.len())
                                .sum::<usize>()
                        });
                        if records >= MAX_GROUP_RECORDS || bytes >= MAX_GROUP_BYTES {
                            break;
                        }
                        match commands.try_recv() {
                            Ok(Command::File(sealed, reply)) => group.push((sealed, reply)),
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                        }
                    }
                    let filings: Vec<&Pending> = group.iter().flat_map(|(s, _)| s).collect();
                    let outcome = self.write_group(&filings);
                    metrics::histogram!("veritrail_payload_group_records").record(records as f64);
                    for (_, reply) in group {
                        let _ = reply.send(outcome.as_ref().map_err(clone_error).copied());
                    }
                }
            }
        }
    }

    /// Writes one group: payloads to the segment(s), synced, then frames to the journal,
    /// synced, then the index. On an error both files are cut back to where they were.
    fn write_group(&mut self, filings: &[&Pending]) -> Result<(), PayloadError> {
        let mut frames = Vec::new();
        let mut blobs = Vec::new();
        let mut new_keys: HashMap<[u8; 32], KeySlot> = HashMap::new();
        let mut new_records = Vec::with_capacity(filings.len());
        let start_segment = (self.segment_no, self.segment_len);
        let result = (|| {
            for filing in filings {
                let known = match self.index.read() {
                    Ok(index) => index.keys.get(&filing.key).map(|slot| slot.key),
                    Err(poisoned) => poisoned.into_inner().keys.get(&filing.key).map(|s| s.key),
                };
                let key = match known.or_else(|| new_keys.get(&filing.key).map(|s| s.key)) {
                    Some(key) => key,
                    None => {
                        let key: [u8; KEY_BYTES] = random()?;
                        let sealed = seal(&self.master, &key, &key_aad(&filing.key))?;
                        let frame_offset = self.journal_len + frames.len() as u64;
                        let body_len = Frame::Key {
                            id: filing.key,
                            sealed,
                        }
                        .encode(&mut frames);
                        new_keys.insert(
                            filing.key,
                            KeySlot {
                                key,
                                frame_offset,
                                frame_len: body_len + HEADER as u32,
                            },
                        );
                        key
                    }
                };
                let sealed: Vec<(String, Vec<u8>)> = filing
                    .payloads
                    .iter()
                    .map(|(name, plaintext)| {
                        seal(&key, plaintext, &payload_aad(&filing.nonce, name))
                            .map(|s| (name.clone(), s))
                    })
                    .collect::<Result<_, _>>()?;
                let size: u64 = sealed.iter().map(|(_, b)| b.len() as u64).sum();
                if self.segment_len + blobs.len() as u64 + size > SEGMENT_BYTES
                    && self.segment_len + blobs.len() as u64 > 0
                {
                    self.roll(&mut blobs)?;
                }
                let mut located = Vec::with_capacity(sealed.len());
                for (name, sealed) in &sealed {
                    let blob = Blob {
                        segment: self.segment_no,
                        offset: self.segment_len + blobs.len() as u64,
                        len: u32::try_from(sealed.len()).unwrap_or(u32::MAX),
                    };
                    blobs.extend_from_slice(sealed);
                    located.push((name.clone(), blob));
                }
                Frame::Record {
                    nonce: filing.nonce,
                    key: filing.key,
                    conversation: filing.conversation.clone(),
                    payloads: located.clone(),
                }
                .encode(&mut frames);
                new_records.push((
                    filing.nonce,
                    filing.key,
                    filing.conversation.clone(),
                    located,
                ));
            }
            // Both files are synced at once. A journal frame durable before its payload bytes
            // is harmless: the group's records reach the log only after both syncs, so a
            // crash in between leaves frames no record references.
            let segment_path = segment_path(&self.dir, self.segment_no);
            let journal_path = self.dir.join("journal");
            let (segment, journal) = (&self.segment, &self.journal);
            let (segment_len, journal_len) = (self.segment_len, self.journal_len);
            let (written, journaled) = std::thread::scope(|scope| {
                let payloads = scope.spawn(|| {
                    segment
                        .write_all_at(&blobs, segment_len)
                        .and_then(|()| segment.sync_data())
                });
                let journaled = journal
                    .write_all_at(&frames, journal_len)
                    .and_then(|()| journal.sync_data());
                let written = payloads.join().unwrap_or_else(|_| {
                    Err(std::io::Error::other("the payload sync thread panicked"))
                });
                (written, journaled)
            });
            written.map_err(io(&segment_path, "write payloads"))?;
            journaled.map_err(io(&journal_path, "write the journal"))?;
            self.segment_len += blobs.len() as u64;
            self.journal_len += frames.len() as u64;
            Ok(())
        })();
        if let Err(e) = result {
            // Nothing of the group is referenced: cut the journal back (the segment's tail
            // is never read, and is overwritten by the next group).
            let _ = self.journal.set_len(self.journal_len);
            if self.segment_no == start_segment.0 {
                self.segment_len = start_segment.1;
            }
            return Err(e);
        }
        let mut index = match self.index.write() {
            Ok(index) => index,
            Err(poisoned) => poisoned.into_inner(),
        };
        index.keys.extend(new_keys);
        for (nonce, key, conversation, payloads) in new_records {
            index
                .records
                .insert(nonce, RecordEntry::new(key, conversation, payloads));
        }
        Ok(())
    }

    /// Writes what is buffered to the current segment, syncs it, and starts the next one.
    fn roll(&mut self, blobs: &mut Vec<u8>) -> Result<(), PayloadError> {
        let path = segment_path(&self.dir, self.segment_no);
        self.segment
            .write_all_at(blobs, self.segment_len)
            .and_then(|()| self.segment.sync_data())
            .map_err(io(&path, "write payloads"))?;
        blobs.clear();
        let next = self.segment_no + 1;
        let path = segment_path(&self.dir, next);
        self.segment = owner_only(&path)?;
        sync_dir(&self.dir.join("segments"))?;
        self.segment_no = next;
        self.segment_len = 0;
        Ok(())
    }

    /// Zeroes the payloads of `records` and the key frames of `keys` in place, then journals
    /// the tombstones.
    fn destroy(
        &mut self,
        records: &[[u8; 16]],
        keys: &[[u8; 32]],
        erasure_index: u64,
    ) -> Result<(), PayloadError> {
        let (blobs, slots): (Vec<Blob>, Vec<KeySlot>) = {
            let index = match self.index.read() {
                Ok(index) => index,
                Err(poisoned) => poisoned.into_inner(),
            };
            (
                records
                    .iter()
                    .filter_map(|n| index.records.get(n))
                    .flat_map(|r| r.payloads.iter().map(|(_, b)| *b))
                    .collect(),
                keys.iter()
                    .filter_map(|k| index.keys.get(k))
                    .copied()
                    .collect(),
            )
        };
        let mut segments: HashMap<u32, File> = HashMap::new();
        for blob in &blobs {
            let path = segment_path(&self.dir, blob.segment);
            let file = match segments.entry(blob.segment) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(owner_only(&path)?),
            };
            file.write_all_at(&vec![0u8; blob.len as usize], blob.offset)
                .map_err(io(&path, "overwrite an erased payload"))?;
        }
        for (n, file) in &segments {
            file.sync_data()
                .map_err(io(&segment_path(&self.dir, *n), "sync"))?;
        }
        let path = self.dir.join("journal");
        for slot in &slots {
            // A void frame of the same length: zeros, with their CRC.
            let body_len = slot.frame_len.saturating_sub(HEADER as u32);
            let mut void = Vec::with_capacity(slot.frame_len as usize);
            void.extend_from_slice(&body_len.to_be_bytes());
            void.extend_from_slice(&crc32fast::hash(&vec![0u8; body_len as usize]).to_be_bytes());
            void.resize(slot.frame_len as usize, 0);
            self.journal
                .write_all_at(&void, slot.frame_offset)
                .map_err(io(&path, "overwrite an erased data key"))?;
        }
        let mut frames = Vec::new();
        for nonce in records {
            Frame::Erased {
                nonce: *nonce,
                index: erasure_index,
            }
            .encode(&mut frames);
        }
        for id in keys {
            Frame::KeyDestroyed { id: *id }.encode(&mut frames);
        }
        self.journal
            .write_all_at(&frames, self.journal_len)
            .and_then(|()| self.journal.sync_data())
            .map_err(io(&path, "write the journal"))?;
        self.journal_len += frames.len() as u64;
        let mut index = match self.index.write() {
            Ok(index) => index,
            Err(poisoned) => poisoned.into_inner(),
        };
        for nonce in records {
            index.records.entry(*nonce).or_default().erased = Some(erasure_index);
        }
        for id in keys {
            index.keys.remove(id);
        }
        Ok(())
    }
}

/// The writer's error, for every filing of its group.
fn clone_error(e: &PayloadError) -> PayloadError {
    match e {
        PayloadError::Io {
            path,
            action,
            source,
        } => PayloadError::Io {
            path: path.clone(),
            action,
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        other => PayloadError::Writer(other.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_round_trip() {
        let frames = [
            Frame::Void,
            Frame::Key {
                id: [3; 32],
                sealed: vec![9; SEALED_KEY_BYTES],
            },
            Frame::Record {
                nonce: [1; 16],
                key: [2; 32],
                conversation: Some("c-1".into()),
                payloads: vec![(
                    "prompt".into(),
                    Blob {
                        segment: 2,
                        offset: 77,
                        len: 40,
                    },
                )],
            },
            Frame::Record {
                nonce: [1; 16],
                key: [2; 32],
                conversation: None,
                payloads: vec![],
            },
            Frame::Erased {
                nonce: [5; 16],
                index: 12,
            },
            Frame::KeyDestroyed { id: [4; 32] },
        ];
        for frame in frames {
            let mut bytes = Vec::new();
            let len = frame.encode(&mut bytes);
            assert_eq!(bytes.len(), HEADER + len as usize);
            assert_eq!(Frame::decode(&bytes[HEADER..]), Some(frame));
        }
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Frame::decode(&body);
        }
    }
}
