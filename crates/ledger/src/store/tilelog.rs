//! The log's entries and hash tiles on disk, written once each and never rewritten.
//!
//! ```text
//! <data>/log/entries      frames: the entries, in order; the only file fsynced per commit
//! <data>/log/level-<L>    every complete node at tree height 8·L, 32 bytes each, in order
//! <data>/log/bundles      for entry bundle k: the entry log offset of its first frame (u64 BE)
//! <data>/log/state        two slots: how far the derived files above are durable
//! ```
//!
//! A commit appends its entries to `entries` as frames and `fdatasync`s that one file; the new
//! level nodes and bundle offsets are written to the page cache only. They are a pure function
//! of the entries, so after a crash [`TileLog::open`] recomputes whatever the last durable
//! watermark in `state` does not cover (at most about one [`SYNC_INTERVAL`] of appends) from
//! the frames. A frame never spans an entry-bundle boundary, so a bundle is the concatenation
//! of its frames' bodies, and a hash tile is a slice of one level file: both are served with
//! one positioned read.
//!
//! Frame layout (all integers big-endian):
//!
//! ```text
//! flags ‖ body length (u32: bit 31 set on the last frame of a commit)
//! CRC-32 of every other header byte and the body (u32)
//! index of the frame's first entry (u64)
//! offset of the first frame of its commit (u64)
//! body: (entry length (u16) ‖ entry bytes)*   — the C2SP entry-bundle encoding
//! ```
//!
//! The commit marks make a batch atomic across a crash (a commit whose last frame is missing
//! or damaged is cut off whole) and tell a write torn by a crash — only the final commit can
//! be — from damage to acknowledged data (a valid frame of a *later* commit follows it).

use std::fs::{File, OpenOptions};
use std::io::{BufReader, ErrorKind, Read as _};

use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::bundle::{BUNDLE_ENTRIES, MAX_ENTRY_SIZE};
use crate::error::Error;
use crate::hash::{HASH_SIZE, Hash, leaf_hash};
use crate::tile::hash_tile_width;
use crate::tree::{CompactRange, HashTileReader, TreeError};

/// Bytes in a frame header.
pub(crate) const FRAME_HEADER: usize = 24;
/// Bit of the length word that marks the last frame of a commit.
const COMMIT_END: u32 = 1 << 31;
/// Largest frame body: one full bundle of maximal entries.
const MAX_FRAME_BODY: usize = BUNDLE_ENTRIES * (2 + MAX_ENTRY_SIZE);
/// Level files: tile levels 0..=7 cover every tree size below 2^64.
pub(crate) const LEVELS: usize = 8;
/// How often, at most, a commit also makes the derived files durable and moves the watermark.
pub(crate) const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Bytes in one state slot: magic, sequence, size, offset, root, CRC-32.
const SLOT: usize = 8 + 8 + 8 + 8 + 32 + 4;
/// Marks a state slot.
const STATE_MAGIC: &[u8; 8] = b"VTLOGST1";

/// Where a recovered or committed log ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LogEnd {
    /// Entries in the log.
    pub(crate) size: u64,
    /// Bytes of the entry log holding them.
    pub(crate) offset: u64,
}

/// The files of one log. Reads and the single writer use positioned I/O, so readers need no
/// lock: they never look past the committed size the engine hands them.
pub(crate) struct TileLog {
    dir: PathBuf,
    entries: File,
    bundles: File,
    levels: Vec<File>,
    state: File,
    /// Sequence number of the last state slot written.
    seq: std::sync::atomic::AtomicU64,
    /// A failed commit could not be cut back off the entry log: appending more could put
    /// unacknowledged bytes between acknowledged ones, so appends are refused until the log
    /// is opened again (which cuts the tail).
    poisoned: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for TileLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TileLog")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// What [`TileLog::open`] found and did.
#[derive(Clone, Debug)]
pub(crate) struct Recovered {
    /// The compact range of the whole log (its size is the log's size).
    pub(crate) range: CompactRange,
    /// Where the entry log ends.
    pub(crate) end: LogEnd,
    /// Entries whose tiles were recomputed from the entry log.
    pub(crate) replayed: u64,
    /// Bytes cut off the end of the entry log (a write torn by a crash), kept in a side file.
    pub(crate) torn_bytes: u64,
}

/// The writer's scratch buffers, reused across commits.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    frames: Vec<u8>,
    nodes: Vec<Vec<u8>>,
    bundle_offsets: Vec<u8>,
}

/// Splits concatenated 32-byte hashes (a trailing partial hash is ignored).
pub(crate) fn split_hashes(bytes: &[u8]) -> Vec<Hash> {
    bytes
        .chunks_exact(HASH_SIZE)
        .filter_map(|h| Hash::try_from_slice(h).ok())
        .collect()
}

/// Maps an I/O error to [`Error::Io`] with what was being done.
pub(crate) fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::io(context, e)
}

/// Opens (creating) a data file readable and writable by the owner only.
pub(crate) fn open_private(path: &Path) -> Result<File, Error> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io_path("open a data file", path, e))
}

/// Creates `dir` (owner-only) if it is missing.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt as _;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io_path("create a data directory", dir, e))
}

/// Makes a directory entry change (create, rename, remove) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io_path("sync a directory", dir, e))
}

fn read_u64_at(file: &File, offset: u64, what: &'static str) -> Result<u64, Error> {
    let mut buf = [0u8; 8];
    file.read_exact_at(&mut buf, offset).map_err(io(what))?;
    Ok(u64::from_be_bytes(buf))
}

/// A frame header, decoded.
#[derive(Clone, Copy, Debug)]
struct FrameHeader {
    /// Body length in bytes.
    len: usize,
    /// Whether this is the last frame of its commit.
    last: bool,
    /// Index of the frame's first entry.
    first: u64,
    /// Offset of the first frame of its commit.
    commit: u64,
    crc: u32,
}

impl FrameHeader {
    fn word(&self) -> u32 {
        // `len` is at most MAX_FRAME_BODY, far below bit 31.
        (self.len as u32 & !COMMIT_END) | if self.last { COMMIT_END } else { 0 }
    }

    /// The CRC over every header field but itself, and the body.
    fn crc_of(&self, body: &[u8]) -> u32 {
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&self.word().to_be_bytes());
        hasher.update(&self.first.to_be_bytes());
        hasher.update(&self.commit.to_be_bytes());
        hasher.update(body);
        hasher.finalize()
    }

    fn encode(&self) -> [u8; FRAME_HEADER] {
        let mut out = [0u8; FRAME_HEADER];
        let (word, rest) = out.split_at_mut(4);
        let (crc, rest) = rest.split_at_mut(4);
        let (first, commit) = rest.split_at_mut(8);
        word.copy_from_slice(&self.word().to_be_bytes());
        crc.copy_from_slice(&self.crc.to_be_bytes());
        first.copy_from_slice(&self.first.to_be_bytes());
        commit.copy_from_slice(&self.commit.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8; FRAME_HEADER]) -> Self {
        let (word, rest) = bytes.split_at(4);
        let (crc, rest) = rest.split_at(4);
        let (first, commit) = rest.split_at(8);
        let u32_of = |b: &[u8]| b.try_into().map_or(0, u32::from_be_bytes);
        let u64_of = |b: &[u8]| b.try_into().map_or(0, u64::from_be_bytes);
        let word = u32_of(word);
        FrameHeader {
            len: (word & !COMMIT_END) as usize,
            last: word & COMMIT_END != 0,
            first: u64_of(first),
            commit: u64_of(commit),
            crc: u32_of(crc),
        }
    }
}

/// Iterates over the entries of a frame body (the C2SP bundle encoding); `None` ends it, and a
/// malformed body yields an error.
fn body_entries(body: &[u8]) -> impl Iterator<Item = Result<&[u8], ()>> {
    let mut rest = body;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let Some((len, tail)) = rest.split_first_chunk::<2>() else {
            rest = &[];
            return Some(Err(()));
        };
        let len = usize::from(u16::from_be_bytes(*len));
        match tail.split_at_checked(len) {
            Some((entry, after)) => {
                rest = after;
                Some(Ok(entry))
            }
            None => {
                rest = &[];
                Some(Err(()))
            }
        }
    })
}

/// Checks a frame read from disk: CRC, body well-formed, expected first index, within one
/// bundle. Returns its entry count.
fn check_frame(header: &FrameHeader, body: &[u8], first: u64) -> Option<usize> {
    if header.first != first || header.crc_of(body) != header.crc {
        return None;
    }
    let mut count = 0usize;
    for entry in body_entries(body) {
        entry.ok()?;
        count += 1;
    }
    let room = BUNDLE_ENTRIES - (first % BUNDLE_ENTRIES as u64) as usize;
    (count > 0 && count <= room).then_some(count)
}

impl TileLog {
    /// Opens the log files under `dir` (creating them), and brings the derived files up to
    /// the entry log: cuts a torn final write off the entry log (keeping its bytes in
    /// `entries.torn-<offset>`), and recomputes the tiles and bundle offsets past the durable
    /// watermark.
    pub(crate) fn open(dir: &Path) -> Result<(Self, Recovered), Error> {
        create_private_dir(dir)?;
        let mut levels = Vec::with_capacity(LEVELS);
        for level in 0..LEVELS {
            levels.push(open_private(&dir.join(format!("level-{level}")))?);
        }
        let log = TileLog {
            dir: dir.to_owned(),
            entries: open_private(&dir.join("entries"))?,
            bundles: open_private(&dir.join("bundles"))?,
            levels,
            state: open_private(&dir.join("state"))?,
            seq: std::sync::atomic::AtomicU64::new(0),
            poisoned: std::sync::atomic::AtomicBool::new(false),
        };
        sync_dir(dir)?;
        let recovered = log.recover()?;
        Ok((log, recovered))
    }

    fn len(file: &File, what: &'static str) -> Result<u64, Error> {
        Ok(file.metadata().map_err(io(what))?.len())
    }

    /// The durable watermark from the state file (sequence, end, root there), if a valid
    /// slot exists.
    fn read_state(&self) -> Result<Option<(u64, LogEnd, Hash)>, Error> {
        let mut bytes = vec![0u8; 2 * SLOT];
        let mut filled = 0;
        while filled < bytes.len() {
            match self
                .state
                .read_at(bytes.get_mut(filled..).unwrap_or_default(), filled as u64)
            {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("read the log state", e)),
            }
        }
        bytes.truncate(filled);
        let mut best: Option<(u64, LogEnd, Hash)> = None;
        for slot in bytes.chunks_exact(SLOT) {
            let Some((body, crc)) = slot.split_last_chunk::<4>() else {
                continue;
            };
            if crc32fast::hash(body) != u32::from_be_bytes(*crc) {
                continue;
            }
            let Some((magic, rest)) = body.split_first_chunk::<8>() else {
                continue;
            };
            let Some((words, root)) = rest.split_at_checked(24) else {
                continue;
            };
            let words: Vec<u64> = words
                .chunks_exact(8)
                .filter_map(|w| w.try_into().ok().map(u64::from_be_bytes))
                .collect();
            let (Ok(root), &[seq, size, offset]) = (Hash::try_from_slice(root), words.as_slice())
            else {
                continue;
            };
            if magic == STATE_MAGIC && best.is_none_or(|(s, _, _)| seq > s) {
                best = Some((seq, LogEnd { size, offset }, root));
            }
        }
        Ok(best)
    }

    /// Durably records that the derived files cover `end`, where the tree has `root`, in slot
    /// `seq`.
    fn write_state(&self, seq: u64, end: LogEnd, root: &Hash) -> Result<(), Error> {
        let mut slot = Vec::with_capacity(SLOT);
        slot.extend_from_slice(STATE_MAGIC);
        slot.extend_from_slice(&seq.to_be_bytes());
        slot.extend_from_slice(&end.size.to_be_bytes());
        slot.extend_from_slice(&end.offset.to_be_bytes());
        slot.extend_from_slice(root.as_bytes());
        slot.extend_from_slice(&crc32fast::hash(&slot).to_be_bytes());
        self.state
            .write_all_at(&slot, (seq % 2) * SLOT as u64)
            .and_then(|()| self.state.sync_data())
            .map_err(io("write the log state"))
    }

    /// Level-file length in bytes for a tree of `size` leaves.
    fn level_bytes(level: usize, size: u64) -> u64 {
        (size >> (8 * level as u32)) * HASH_SIZE as u64
    }

    /// Bundle-offset file length in bytes for a log of `size` entries.
    fn bundles_bytes(size: u64) -> u64 {
        size.div_ceil(BUNDLE_ENTRIES as u64) * 8
    }

    fn recover(&self) -> Result<Recovered, Error> {
        let log_len = Self::len(&self.entries, "read the entry log's length")?;
        let state = self.read_state()?;
        if let Some((seq, _, _)) = state {
            self.seq.store(seq, std::sync::atomic::Ordering::Relaxed);
        }
        let mut watermark = state.map(|(_, end, _)| end);
        if let Some(end) = watermark {
            if end.offset > log_len {
                return Err(Error::corrupted(format!(
                    "the entry log is {log_len} bytes, but {} bytes holding {} entries were recorded durable; it was truncated or replaced",
                    end.offset, end.size
                )));
            }
            // The derived files must hold at least what the watermark says was synced.
            for (level, file) in self.levels.iter().enumerate() {
                if Self::len(file, "read a level file's length")?
                    < Self::level_bytes(level, end.size)
                {
                    watermark = None;
                }
            }
            if Self::len(&self.bundles, "read the bundle offsets' length")?
                < Self::bundles_bytes(end.size)
            {
                watermark = None;
            }
        }
        let start = watermark.unwrap_or(LogEnd { size: 0, offset: 0 });
        for (level, file) in self.levels.iter().enumerate() {
            file.set_len(Self::level_bytes(level, start.size))
                .map_err(io("truncate a level file"))?;
        }
        self.bundles
            .set_len(Self::bundles_bytes(start.size))
            .map_err(io("truncate the bundle offsets"))?;
        let mut range = CompactRange::from_tiles(&self.reader(start.size), start.size)?;
        if let (Some(_), Some((_, _, recorded))) = (watermark, state) {
            let derived = range.root();
            if derived != recorded {
                return Err(Error::RootMismatch {
                    size: start.size,
                    recorded,
                    derived,
                });
            }
        }

        // Replay the commits past the watermark into the derived files. A commit is derived
        // only once its last frame is read: a batch is all or nothing across a crash.
        let mut reader = BufReader::with_capacity(1 << 20, &self.entries);
        std::io::Seek::seek(&mut reader, std::io::SeekFrom::Start(start.offset))
            .map_err(io("read the entry log"))?;
        let mut end = start;
        let mut scratch = Scratch::default();
        // The frames read of the commit in progress: (body, entries), and where they end.
        let mut pending: Vec<(Vec<u8>, u64)> = Vec::new();
        let mut next = start;
        loop {
            if next.offset == log_len {
                break;
            }
            let mut head = [0u8; FRAME_HEADER];
            match reader.read_exact(&mut head) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(Error::io("read the entry log", e)),
            }
            let header = FrameHeader::decode(&head);
            if header.len > MAX_FRAME_BODY
                || header.len as u64 > log_len - next.offset - FRAME_HEADER as u64
                || header.commit != end.offset
            {
                break;
            }
            let mut body = vec![0u8; header.len];
            match reader.read_exact(&mut body) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(Error::io("read the entry log", e)),
            }
            let Some(count) = check_frame(&header, &body, next.size) else {
                break;
            };
            let at = next;
            next = LogEnd {
                size: next.size + count as u64,
                offset: next.offset + (FRAME_HEADER + body.len()) as u64,
            };
            pending.push((body, at.offset));
            if header.last {
                for (body, offset) in pending.drain(..) {
                    let entries: Vec<&[u8]> = body_entries(&body).filter_map(Result::ok).collect();
                    let at = LogEnd {
                        size: end.size,
                        offset,
                    };
                    self.derive(&mut range, &mut scratch, at, &entries)?;
                    end.size += entries.len() as u64;
                }
                end = next;
            }
        }
        let torn_bytes = log_len - end.offset;
        if torn_bytes > 0 {
            // Only the final commit can be torn by a crash: every earlier one was synced
            // before the next began. A valid frame of a later commit after the damage means
            // acknowledged data is damaged, which is never cut off.
            if let Some(at) = self.find_later_commit(end.offset, log_len, end.size)? {
                return Err(Error::corrupted(format!(
                    "the entry log is damaged after byte {} (entry {}), but a frame of a later commit follows at byte {at}: this is not a write torn by a crash; restore the store from a backup",
                    end.offset, end.size
                )));
            }
            self.keep_torn_tail(end.offset, log_len)?;
        }
        let replayed = end.size - start.size;
        if replayed > 0 || torn_bytes > 0 || watermark != Some(end) {
            self.sync_derived(end, &range.root())?;
        }
        Ok(Recovered {
            range,
            end,
            replayed,
            torn_bytes,
        })
    }

    /// The offset of a valid frame in `commit+1..to` that belongs to a commit started after
    /// `commit` (the offset of the incomplete final commit), with its first entry at or after
    /// `first` (within a bound), if any.
    fn find_later_commit(&self, commit: u64, to: u64, first: u64) -> Result<Option<u64>, Error> {
        const CHUNK: usize = 1 << 20;
        /// A later frame's first index is at most this far past the damaged one.
        const REACH: u64 = 1 << 24;
        let mut chunk = vec![0u8; CHUNK + FRAME_HEADER];
        let mut body = Vec::new();
        let mut base = commit + 1;
        while base + FRAME_HEADER as u64 <= to {
            let want = usize::try_from((to - base).min(chunk.len() as u64)).unwrap_or(CHUNK);
            let window = chunk.get_mut(..want).unwrap_or_default();
            self.entries
                .read_exact_at(window, base)
                .map_err(io("scan the entry log"))?;
            let mut pos = 0usize;
            while pos < CHUNK
                && let Some(head) = window
                    .get(pos..pos + FRAME_HEADER)
                    .and_then(|h| <&[u8; FRAME_HEADER]>::try_from(h).ok())
            {
                let header = FrameHeader::decode(head);
                let at = base + pos as u64;
                let plausible = header.commit > commit
                    && header.commit <= at
                    && header.first >= first
                    && header.first - first <= REACH
                    && header.len <= MAX_FRAME_BODY
                    && (header.len as u64) <= to - at - FRAME_HEADER as u64;
                if plausible {
                    body.resize(header.len, 0);
                    self.entries
                        .read_exact_at(&mut body, at + FRAME_HEADER as u64)
                        .map_err(io("scan the entry log"))?;
                    if check_frame(&header, &body, header.first).is_some() {
                        return Ok(Some(at));
                    }
                }
                pos += 1;
            }
            base += CHUNK as u64;
        }
        Ok(None)
    }

    /// Copies the bytes of the entry log from `from` to `to` into a side file, then cuts them
    /// off: a write torn by a crash was never acknowledged, but its bytes are kept for
    /// inspection rather than destroyed.
    fn keep_torn_tail(&self, from: u64, to: u64) -> Result<(), Error> {
        let len = usize::try_from(to - from)
            .map_err(|_| Error::corrupted("the torn tail of the entry log is too large"))?;
        let mut tail = vec![0u8; len];
        self.entries
            .read_exact_at(&mut tail, from)
            .map_err(io("read the torn tail of the entry log"))?;
        let side = self.dir.join(format!("entries.torn-{from}"));
        let file = open_private(&side)?;
        file.set_len(0)
            .and_then(|()| file.write_all_at(&tail, 0))
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io_path("keep the torn tail of the entry log", &side, e))?;
        self.entries
            .set_len(from)
            .and_then(|()| self.entries.sync_all())
            .map_err(io("cut the torn tail off the entry log"))?;
        sync_dir(&self.dir)
    }

    /// Hashes `entries` (which start at `at.size`) into `range` and writes the level nodes and
    /// bundle offsets they complete (page cache only). `frame_offsets` gives, for replay, the
    /// offset of the frame holding the entries.
    fn derive(
        &self,
        range: &mut CompactRange,
        scratch: &mut Scratch,
        at: LogEnd,
        entries: &[&[u8]],
    ) -> Result<(), Error> {
        scratch.clear_derived();
        if at.size.is_multiple_of(BUNDLE_ENTRIES as u64) {
            scratch
                .bundle_offsets
                .extend_from_slice(&at.offset.to_be_bytes());
        }
        for entry in entries {
            range_append(range, &mut scratch.nodes, leaf_hash(entry));
        }
        self.write_derived(scratch, at.size)
    }

    /// Writes the nodes and bundle offsets gathered in `scratch` for entries from `from`.
    fn write_derived(&self, scratch: &Scratch, from: u64) -> Result<(), Error> {
        for (level, nodes) in scratch.nodes.iter().enumerate() {
            if nodes.is_empty() {
                continue;
            }
            let file = self
                .levels
                .get(level)
                .ok_or_else(|| Error::corrupted("tree deeper than 64 levels"))?;
            file.write_all_at(nodes, Self::level_bytes(level, from))
                .map_err(io("write a level file"))?;
        }
        if !scratch.bundle_offsets.is_empty() {
            let at = from.div_ceil(BUNDLE_ENTRIES as u64) * 8;
            self.bundles
                .write_all_at(&scratch.bundle_offsets, at)
                .map_err(io("write the bundle offsets"))?;
        }
        Ok(())
    }

    /// Appends `entries` after `end` as frames, derives their tiles into `range`, and returns
    /// once the frames are durable. On error the entry log is cut back to `end` (best effort)
    /// and `range` is unchanged; the caller must not acknowledge anything.
    pub(crate) fn append<E: AsRef<[u8]>>(
        &self,
        range: &mut CompactRange,
        end: LogEnd,
        scratch: &mut Scratch,
        entries: &[E],
    ) -> Result<LogEnd, Error> {
        let mut next = range.clone();
        scratch.frames.clear();
        scratch.clear_derived();
        let mut size = end.size;
        let mut rest = entries;
        while !rest.is_empty() {
            let room = BUNDLE_ENTRIES - (size % BUNDLE_ENTRIES as u64) as usize;
            let (chunk, after) = rest.split_at(room.min(rest.len()));
            rest = after;
            let frame_start = scratch.frames.len();
            if size.is_multiple_of(BUNDLE_ENTRIES as u64) {
                let offset = end.offset + frame_start as u64;
                scratch
                    .bundle_offsets
                    .extend_from_slice(&offset.to_be_bytes());
            }
            scratch.frames.extend_from_slice(&[0u8; FRAME_HEADER]);
            for (i, entry) in chunk.iter().enumerate() {
                let entry = entry.as_ref();
                // `Ledger::append` validated the batch; this only keeps the encoding total.
                let len = u16::try_from(entry.len()).map_err(|_| Error::EntryTooLarge {
                    position: (size - end.size) as usize + i,
                    size: entry.len(),
                })?;
                scratch.frames.extend_from_slice(&len.to_be_bytes());
                scratch.frames.extend_from_slice(entry);
                range_append(&mut next, &mut scratch.nodes, leaf_hash(entry));
            }
            let body_len = scratch.frames.len() - frame_start - FRAME_HEADER;
            let (head, body) = scratch
                .frames
                .get_mut(frame_start..)
                .and_then(|f| f.split_first_chunk_mut::<FRAME_HEADER>())
                .ok_or_else(|| Error::corrupted("frame buffer"))?;
            let mut header = FrameHeader {
                len: body_len,
                last: rest.is_empty(),
                first: size,
                commit: end.offset,
                crc: 0,
            };
            header.crc = header.crc_of(body);
            *head = header.encode();
            size += chunk.len() as u64;
        }
        if self.poisoned.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::io(
                "append to the entry log",
                std::io::Error::other(
                    "an earlier failed commit could not be cut off the entry log; \
                     restart the server to recover",
                ),
            ));
        }
        let written = self
            .entries
            .write_all_at(&scratch.frames, end.offset)
            .and_then(|()| self.entries.sync_data());
        if let Err(e) = written {
            // Nothing is acknowledged; leave the log as it was for the next attempt.
            self.undo(end);
            return Err(Error::io("append to the entry log", e));
        }
        // The frames are durable; the derived files follow (and are recomputed after a
        // crash). If they cannot be written (a full disk), the commit is undone: the caller
        // answers with an error, so the entries must not stay in the log either.
        if let Err(e) = self.write_derived(scratch, end.size) {
            self.undo(end);
            return Err(e);
        }
        *range = next;
        Ok(LogEnd {
            size,
            offset: end.offset + scratch.frames.len() as u64,
        })
    }

    /// Cuts every file back to `end` after a failed commit, so the next commit starts where
    /// this one did and nothing of it survives a crash. Shrinking a file needs no space. If
    /// the entry log cannot be cut back and synced, the log is poisoned: appends are refused
    /// until it is opened again, whose recovery cuts the torn tail.
    fn undo(&self, end: LogEnd) {
        let cut = self
            .entries
            .set_len(end.offset)
            .and_then(|()| self.entries.sync_data());
        if let Err(e) = cut {
            tracing::error!(error = %e, offset = end.offset, "cannot cut a failed commit off the entry log; refusing appends until a restart");
            self.poisoned
                .store(true, std::sync::atomic::Ordering::Release);
        }
        // Bytes past the tree in the derived files are never read and are overwritten by the
        // next commit; cutting them only keeps the files tidy.
        for (level, file) in self.levels.iter().enumerate() {
            let _ = file.set_len(Self::level_bytes(level, end.size));
        }
        let _ = self.bundles.set_len(Self::bundles_bytes(end.size));
    }

    /// Makes the level files and bundle offsets durable up to `end` (where the tree has
    /// `root`) and records it as the watermark recovery starts from.
    pub(crate) fn sync_derived(&self, end: LogEnd, root: &Hash) -> Result<(), Error> {
        for (level, file) in self.levels.iter().enumerate() {
            if Self::level_bytes(level, end.size) > 0 {
                file.sync_data().map_err(io("sync a level file"))?;
            }
        }
        self.bundles
            .sync_data()
            .map_err(io("sync the bundle offsets"))?;
        // Only the committer (or recovery, before it starts) syncs, so this never races.
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        self.write_state(seq, end, root)
    }

    /// A reader of hash tiles for a tree of `size` leaves.
    pub(crate) fn reader(&self, size: u64) -> LevelReader<'_> {
        LevelReader { log: self, size }
    }

    /// `count` consecutive hashes of tile level `level` starting at node `first`.
    pub(crate) fn level_hashes(
        &self,
        level: u8,
        first: u64,
        count: usize,
    ) -> Result<Vec<u8>, Error> {
        let file = self
            .levels
            .get(usize::from(level))
            .ok_or_else(|| Error::corrupted(format!("no tile level {level}")))?;
        let mut bytes = vec![0u8; count * HASH_SIZE];
        file.read_exact_at(&mut bytes, first * HASH_SIZE as u64)
            .map_err(|e| match e.kind() {
                ErrorKind::UnexpectedEof => Error::corrupted(format!(
                    "level file {level} is short: it lacks nodes {first}..{}",
                    first + count as u64
                )),
                _ => Error::io("read a level file", e),
            })?;
        Ok(bytes)
    }

    /// The leaf hash of entry `index` (which must be below the committed size).
    pub(crate) fn leaf_hash(&self, index: u64) -> Result<Hash, Error> {
        let bytes = self.level_hashes(0, index, 1)?;
        Hash::try_from_slice(&bytes).map_err(|_| Error::corrupted("leaf hash"))
    }

    /// The C2SP encoding of the first `width` entries of bundle `index`, in a log that ends
    /// at `end`.
    pub(crate) fn bundle(&self, index: u64, width: usize, end: LogEnd) -> Result<Vec<u8>, Error> {
        let per = BUNDLE_ENTRIES as u64;
        let start = read_u64_at(&self.bundles, index * 8, "read the bundle offsets")?;
        let stop = if (index + 1) * per < end.size {
            read_u64_at(&self.bundles, (index + 1) * 8, "read the bundle offsets")?
        } else {
            end.offset
        };
        let corrupt =
            |why: &str| Error::corrupted(format!("entry bundle {index} in the entry log: {why}"));
        let len = stop
            .checked_sub(start)
            .and_then(|l| usize::try_from(l).ok())
            .filter(|l| *l <= MAX_FRAME_BODY + FRAME_HEADER * BUNDLE_ENTRIES)
            .ok_or_else(|| corrupt("its offsets are out of order"))?;
        let mut raw = vec![0u8; len];
        self.entries
            .read_exact_at(&mut raw, start)
            .map_err(io("read the entry log"))?;
        let mut out = Vec::with_capacity(len);
        let mut rest = raw.as_slice();
        let mut first = index * per;
        let mut taken = 0usize;
        while taken < width {
            let (head, after) = rest
                .split_first_chunk::<FRAME_HEADER>()
                .ok_or_else(|| corrupt("it ends inside a frame header"))?;
            let header = FrameHeader::decode(head);
            let (body, after) = after
                .split_at_checked(header.len)
                .ok_or_else(|| corrupt("it ends inside a frame"))?;
            let count = check_frame(&header, body, first)
                .ok_or_else(|| corrupt("a frame fails its check"))?;
            if taken + count <= width {
                out.extend_from_slice(body);
            } else {
                for entry in body_entries(body).take(width - taken) {
                    let entry = entry.map_err(|()| corrupt("malformed entry"))?;
                    out.extend_from_slice(&(entry.len() as u16).to_be_bytes());
                    out.extend_from_slice(entry);
                }
            }
            taken += count;
            first += count as u64;
            rest = after;
        }
        Ok(out)
    }
}

impl TileLog {
    /// Frees the bytes of entry bundles `bundles` (whole, committed) in the entry log, which
    /// ends at `end`: their range of the file becomes a hole (`fallocate(PUNCH_HOLE)`, the
    /// file keeps its size and every offset), or, on a filesystem without holes, zeros. Then
    /// synced. The frames there can never be read again; the caller must have recorded the
    /// purge first, so that nothing tries. Idempotent.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub(crate) fn punch(&self, bundles: std::ops::Range<u64>, end: LogEnd) -> Result<(), Error> {
        let per = BUNDLE_ENTRIES as u64;
        let start = read_u64_at(&self.bundles, bundles.start * 8, "read the bundle offsets")?;
        let stop = if bundles.end * per < end.size {
            read_u64_at(&self.bundles, bundles.end * 8, "read the bundle offsets")?
        } else {
            end.offset
        };
        let len = stop.saturating_sub(start);
        if len == 0 {
            return Ok(());
        }
        use rustix::fs::{FallocateFlags, fallocate};
        match fallocate(
            &self.entries,
            FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
            start,
            len,
        ) {
            Ok(()) => {}
            Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NOSYS) => {
                let zeros = vec![0u8; 1 << 20];
                let mut at = start;
                while at < stop {
                    let n = (stop - at).min(zeros.len() as u64) as usize;
                    self.entries
                        .write_all_at(zeros.get(..n).unwrap_or_default(), at)
                        .map_err(io("zero purged entries"))?;
                    at += n as u64;
                }
            }
            Err(e) => {
                return Err(Error::io(
                    "punch purged entries out of the entry log",
                    e.into(),
                ));
            }
        }
        self.entries.sync_data().map_err(io("sync the entry log"))
    }
}

/// Appends a leaf to `range`, collecting every completed node at a tile level boundary.
fn range_append(range: &mut CompactRange, nodes: &mut Vec<Vec<u8>>, leaf: Hash) {
    range.append(leaf, |level, _, node| {
        if level % 8 != 0 {
            return;
        }
        let tile_level = (level / 8) as usize;
        if nodes.len() <= tile_level {
            nodes.resize_with(tile_level + 1, Vec::new);
        }
        if let Some(row) = nodes.get_mut(tile_level) {
            row.extend_from_slice(node.as_bytes());
        }
    });
}

impl Scratch {
    /// The leaf hashes of the last batch appended (its level-0 nodes, in order).
    pub(crate) fn leaf_hashes(&self) -> Vec<Hash> {
        self.nodes
            .first()
            .map(|row| split_hashes(row))
            .unwrap_or_default()
    }

    fn clear_derived(&mut self) {
        self.nodes.iter_mut().for_each(Vec::clear);
        self.bundle_offsets.clear();
    }
}

/// Reads hash tiles from the level files for a tree of `size` leaves.
pub(crate) struct LevelReader<'a> {
    log: &'a TileLog,
    size: u64,
}

impl HashTileReader for LevelReader<'_> {
    type Error = Error;

    fn read_hash_tile(&self, level: u8, index: u64, width: u16) -> Result<Vec<Hash>, Error> {
        let available = hash_tile_width(level, index, self.size).unwrap_or(0);
        if available < width {
            return Err(TreeError::ShortTile {
                level,
                index,
                got: usize::from(available),
                want: usize::from(width),
            }
            .into());
        }
        let bytes = self
            .log
            .level_hashes(level, index * 256, usize::from(width))?;
        Ok(split_hashes(&bytes))
    }
}

/// Whether a sync of the derived files is due.
pub(crate) fn sync_due(last: Instant) -> bool {
    last.elapsed() >= SYNC_INTERVAL
}
