//! The leaf-hash index: derived data, built behind the committer and never on its path.
//!
//! The index is a set of immutable sorted *runs* under `<data>/leaf-index/`, which together
//! cover the leaves `0..indexed` without gaps. A run covering leaves `start..end` holds one
//! 8-byte record per leaf, sorted: the first 4 bytes of the leaf hash ‖ `index − start` (u32,
//! big-endian). Four bytes of hash are enough because every candidate is confirmed against
//! the leaf hash in the level-0 tile before it is returned: a record only narrows the search.
//!
//! ```text
//! run file: "VTLIDX01" ‖ start (u64) ‖ end (u64) ‖ 0 (u64) ‖ records ‖ CRC-32 of all before (u32)
//! ```
//!
//! A background thread turns new leaves into a run every [`RUN_MIN`] leaves (or after a short
//! idle time), and merges the two newest runs while the older is not larger, so there are
//! `O(log n)` runs and each record is rewritten `O(log n)` times, sequentially. A lookup
//! searches every run (one positioned read each, guided by an in-memory fence of every
//! 256th prefix) and then scans the leaves not yet indexed; if that tail is longer than
//! [`TAIL_SCAN_LIMIT`] it answers [`Error::IndexBehind`] instead of a wrong "not found".
//!
//! A run that is missing, torn or damaged is deleted on open and rebuilt from the level-0
//! tiles (which are themselves recomputed from the entries after a crash).

use std::fs::File;
use std::io::{BufReader, BufWriter, ErrorKind, Read as _, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use super::tilelog::{TileLog, create_private_dir, io, open_private, sync_dir};
use crate::error::Error;
use crate::hash::{HASH_SIZE, Hash};

/// Leaves gathered before the indexer writes a run (it also writes a smaller one once appends
/// pause for 200 ms).
pub const RUN_MIN: u64 = 4096;
/// Most leaves one new run takes (a rebuild writes runs of this size, then merges them).
const RUN_MAX: u64 = 1 << 20;
/// Most leaves a lookup scans past the indexed ones before answering [`Error::IndexBehind`]:
/// 2 MiB of level-0 hashes.
pub const TAIL_SCAN_LIMIT: u64 = 1 << 16;
/// How long the indexer waits for more appends before indexing a short tail.
const IDLE: Duration = Duration::from_millis(200);
/// Records between in-memory fence keys.
const FENCE: usize = 256;
/// Bytes in a run header.
const HEADER: usize = 32;
/// Bytes in a record.
const RECORD: usize = 8;
/// Marks a run file.
const MAGIC: &[u8; 8] = b"VTLIDX01";
/// Largest run: record offsets are u32.
const RUN_CAP: u64 = 1 << 32;

/// One immutable run.
#[derive(Debug)]
struct Run {
    start: u64,
    end: u64,
    file: File,
    path: PathBuf,
    /// The prefix of every [`FENCE`]th record.
    fences: Vec<u32>,
}

/// The runs covering `0..indexed`, ordered by `start`.
#[derive(Debug, Default, Clone)]
struct Runs {
    runs: Vec<Arc<Run>>,
    indexed: u64,
}

/// What the indexer thread and the engine share.
#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    runs: RwLock<Runs>,
    /// What the engine tells the indexer.
    signal: Mutex<Signal>,
    wake: Condvar,
    /// The last indexer failure, if any (reported by [`LeafIndex::status`]).
    failure: Mutex<Option<String>>,
}

/// What the engine tells the indexer.
#[derive(Debug)]
struct Signal {
    /// The committed size the indexer may read up to.
    size: u64,
    /// When `size` last grew.
    grew: std::time::Instant,
    /// Index everything now, however little (set by [`LeafIndex::wait_indexed`]).
    flush: bool,
    /// Stop the thread.
    stop: bool,
}

/// The leaf-hash index of one log, with its background indexer.
#[derive(Debug)]
pub(crate) struct LeafIndex {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// How far the index is, for metrics and health.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexStatus {
    /// Leaves covered by runs.
    pub indexed: u64,
    /// Runs on disk.
    pub runs: usize,
    /// The indexer's last error, if it is failing.
    pub failure: Option<String>,
}

/// The outcome of a lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// The first leaf with the hash.
    Found(u64),
    /// No leaf below the size searched has the hash.
    Absent,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn prefix(hash: &[u8]) -> u32 {
    let mut p = [0u8; 4];
    if let Some(head) = hash.get(..4) {
        p.copy_from_slice(head);
    }
    u32::from_be_bytes(p)
}

fn record_key(record: &[u8]) -> (u32, u32) {
    let mut k = [0u8; 4];
    let mut r = [0u8; 4];
    if let (Some(a), Some(b)) = (record.get(..4), record.get(4..8)) {
        k.copy_from_slice(a);
        r.copy_from_slice(b);
    }
    (u32::from_be_bytes(k), u32::from_be_bytes(r))
}

impl Run {
    fn name(start: u64, end: u64) -> String {
        format!("{start:020}-{end:020}.run")
    }

    /// Reads and checks a run file; `None` if it is not a complete, valid run.
    fn load(path: &Path) -> Result<Option<Run>, Error> {
        let file = match std::fs::OpenOptions::new().read(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io_path("open a leaf-index run", path, e)),
        };
        let len = file.metadata().map_err(io("read a leaf-index run"))?.len();
        let mut reader = BufReader::with_capacity(1 << 16, &file);
        let mut header = [0u8; HEADER];
        if reader.read_exact(&mut header).is_err() {
            return Ok(None);
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(&header);
        let (magic, rest) = header.split_at(8);
        let word = |i: usize| {
            rest.get(i * 8..i * 8 + 8)
                .and_then(|w| w.try_into().ok())
                .map_or(0, u64::from_be_bytes)
        };
        let (start, end) = (word(0), word(1));
        let count = end.saturating_sub(start);
        if magic != MAGIC
            || end <= start
            || count > RUN_CAP
            || len != HEADER as u64 + count * RECORD as u64 + 4
        {
            return Ok(None);
        }
        let mut fences = Vec::with_capacity((count as usize).div_ceil(FENCE));
        let mut last = (0u32, 0u32);
        let mut record = [0u8; RECORD];
        for i in 0..count as usize {
            if reader.read_exact(&mut record).is_err() {
                return Ok(None);
            }
            crc.update(&record);
            let key = record_key(&record);
            if (i > 0 && key <= last) || u64::from(key.1) >= count {
                return Ok(None);
            }
            last = key;
            if i % FENCE == 0 {
                fences.push(key.0);
            }
        }
        let mut trailer = [0u8; 4];
        if reader.read_exact(&mut trailer).is_err() || crc.finalize() != u32::from_be_bytes(trailer)
        {
            return Ok(None);
        }
        Ok(Some(Run {
            start,
            end,
            file,
            path: path.to_owned(),
            fences,
        }))
    }

    /// Writes a run from records sorted by `(prefix, index)`, durably and atomically (a
    /// temporary file renamed into place).
    fn write(
        dir: &Path,
        start: u64,
        end: u64,
        records: impl Iterator<Item = (u32, u64)>,
    ) -> Result<Run, Error> {
        let path = dir.join(Self::name(start, end));
        let tmp = dir.join(format!("{}.tmp", Self::name(start, end)));
        let file = open_private(&tmp)?;
        file.set_len(0).map_err(io("write a leaf-index run"))?;
        let mut out = BufWriter::with_capacity(1 << 16, &file);
        let mut crc = crc32fast::Hasher::new();
        let mut header = Vec::with_capacity(HEADER);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&start.to_be_bytes());
        header.extend_from_slice(&end.to_be_bytes());
        header.extend_from_slice(&0u64.to_be_bytes());
        crc.update(&header);
        out.write_all(&header)
            .map_err(io("write a leaf-index run"))?;
        let mut fences = Vec::new();
        let mut written = 0u64;
        for (i, (p, index)) in records.enumerate() {
            let rel = u32::try_from(index - start)
                .map_err(|_| Error::corrupted("leaf-index run larger than 2^32 leaves"))?;
            let mut record = [0u8; RECORD];
            record[..4].copy_from_slice(&p.to_be_bytes());
            record[4..].copy_from_slice(&rel.to_be_bytes());
            crc.update(&record);
            out.write_all(&record)
                .map_err(io("write a leaf-index run"))?;
            if i % FENCE == 0 {
                fences.push(p);
            }
            written += 1;
        }
        if written != end - start {
            return Err(Error::corrupted(format!(
                "leaf-index run {start}..{end} got {written} records"
            )));
        }
        out.write_all(&crc.finalize().to_be_bytes())
            .and_then(|()| out.flush())
            .map_err(io("write a leaf-index run"))?;
        drop(out);
        file.sync_all().map_err(io("sync a leaf-index run"))?;
        std::fs::rename(&tmp, &path)
            .map_err(|e| Error::io_path("rename a leaf-index run", &tmp, e))?;
        sync_dir(dir)?;
        let file =
            File::open(&path).map_err(|e| Error::io_path("open a leaf-index run", &path, e))?;
        Ok(Run {
            start,
            end,
            file,
            path,
            fences,
        })
    }

    fn count(&self) -> u64 {
        self.end - self.start
    }

    /// Indices (ascending) of the leaves in this run whose hash starts with `p`.
    fn candidates(&self, p: u32) -> Result<Vec<u64>, Error> {
        // Records with prefix `p` lie between the last fence below `p` and the first fence
        // above it.
        let lo = self.fences.partition_point(|f| *f < p).saturating_sub(1);
        let hi = self.fences.partition_point(|f| *f <= p);
        let first = (lo * FENCE) as u64;
        let last = ((hi * FENCE) as u64).min(self.count());
        if last <= first {
            return Ok(Vec::new());
        }
        let mut bytes = vec![0u8; ((last - first) as usize) * RECORD];
        self.file
            .read_exact_at(&mut bytes, HEADER as u64 + first * RECORD as u64)
            .map_err(io("read a leaf-index run"))?;
        let mut found: Vec<u64> = bytes
            .chunks_exact(RECORD)
            .map(record_key)
            .filter(|(k, _)| *k == p)
            .map(|(_, rel)| self.start + u64::from(rel))
            .collect();
        found.sort_unstable();
        Ok(found)
    }

    /// Streams this run's records as `(prefix, index)`.
    fn records(&self) -> Result<impl Iterator<Item = (u32, u64)> + '_, Error> {
        let file = self.file.try_clone().map_err(io("read a leaf-index run"))?;
        let mut reader = BufReader::with_capacity(1 << 16, file);
        std::io::Seek::seek(&mut reader, std::io::SeekFrom::Start(HEADER as u64))
            .map_err(io("read a leaf-index run"))?;
        let mut left = self.count();
        Ok(std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            let mut record = [0u8; RECORD];
            reader.read_exact(&mut record).ok()?;
            let (p, rel) = record_key(&record);
            Some((p, self.start + u64::from(rel)))
        }))
    }
}

impl LeafIndex {
    /// Opens the index under `dir` for a log of `size` leaves, drops damaged or stale runs, and
    /// starts the indexer thread.
    pub(crate) fn open(dir: &Path, log: Arc<TileLog>, size: u64) -> Result<Self, Error> {
        create_private_dir(dir)?;
        let mut found = Vec::new();
        for entry in
            std::fs::read_dir(dir).map_err(|e| Error::io_path("list the leaf index", dir, e))?
        {
            let entry = entry.map_err(|e| Error::io_path("list the leaf index", dir, e))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".run") {
                if let Some(run) = Run::load(&path)? {
                    found.push(run);
                    continue;
                }
                tracing::warn!(path = %path.display(), "leaf-index run is damaged; rebuilding it");
            }
            std::fs::remove_file(&path)
                .map_err(|e| Error::io_path("remove a stale leaf-index file", &path, e))?;
        }
        // Choose a gap-free cover of 0..indexed, preferring the longest run at each start;
        // anything else (left over from an interrupted merge, or past the log) goes.
        found.sort_by_key(|r| (r.start, std::cmp::Reverse(r.end)));
        let mut runs = Runs::default();
        for run in found {
            if run.start == runs.indexed && run.end <= size {
                runs.indexed = run.end;
                runs.runs.push(Arc::new(run));
            } else {
                std::fs::remove_file(&run.path)
                    .map_err(|e| Error::io_path("remove a stale leaf-index run", &run.path, e))?;
            }
        }
        sync_dir(dir)?;
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            runs: RwLock::new(runs),
            signal: Mutex::new(Signal {
                size,
                grew: std::time::Instant::now(),
                flush: false,
                stop: false,
            }),
            wake: Condvar::new(),
            failure: Mutex::new(None),
        });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("veritrail-leaf-index".into())
            .spawn(move || worker.run(&log))
            .map_err(|e| Error::io("start the leaf indexer thread", e))?;
        Ok(LeafIndex {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Tells the indexer the log now holds `size` committed leaves.
    pub(crate) fn committed(&self, size: u64) {
        let mut signal = lock(&self.shared.signal);
        signal.size = size;
        signal.grew = std::time::Instant::now();
        if size - self.indexed().min(size) >= RUN_MIN {
            self.shared.wake.notify_one();
        }
    }

    fn indexed(&self) -> u64 {
        self.shared.indexed()
    }

    /// How far the index is.
    pub(crate) fn status(&self) -> IndexStatus {
        let runs = self.shared.snapshot();
        IndexStatus {
            indexed: runs.indexed,
            runs: runs.runs.len(),
            failure: lock(&self.shared.failure).clone(),
        }
    }

    /// The first leaf below `size` whose hash is `hash`.
    ///
    /// # Errors
    /// [`Error::IndexBehind`] when more than [`TAIL_SCAN_LIMIT`] leaves below `size` are not
    /// indexed yet; storage errors.
    pub(crate) fn find(&self, log: &TileLog, hash: &Hash, size: u64) -> Result<Lookup, Error> {
        let runs = self.shared.snapshot();
        let p = prefix(hash.as_bytes());
        for run in runs.runs.iter().take_while(|r| r.start < size) {
            for index in run.candidates(p)? {
                if index >= size {
                    break;
                }
                if log.leaf_hash(index)? == *hash {
                    return Ok(Lookup::Found(index));
                }
            }
        }
        let from = runs.indexed.min(size);
        if size - from > TAIL_SCAN_LIMIT {
            return Err(Error::IndexBehind {
                indexed: runs.indexed,
                size,
            });
        }
        let tail = log.level_hashes(0, from, (size - from) as usize)?;
        Ok(tail
            .chunks_exact(HASH_SIZE)
            .position(|h| h == hash.as_bytes())
            .map_or(Lookup::Absent, |i| Lookup::Found(from + i as u64)))
    }

    /// Blocks until every leaf below `size` is indexed (for tests and tools).
    pub(crate) fn wait_indexed(&self, size: u64) {
        while self.indexed() < size && lock(&self.shared.failure).is_none() {
            {
                let mut signal = lock(&self.shared.signal);
                signal.size = signal.size.max(size);
                signal.flush = true;
                self.shared.wake.notify_one();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for LeafIndex {
    fn drop(&mut self) {
        lock(&self.shared.signal).stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = lock(&self.thread).take() {
            let _ = thread.join();
        }
    }
}

impl Shared {
    /// Leaves covered by runs (read on every commit: no copy of the run list).
    fn indexed(&self) -> u64 {
        self.runs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .indexed
    }

    /// The current runs (cheap: the runs are shared).
    fn snapshot(&self) -> Runs {
        self.runs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn run(&self, log: &TileLog) {
        loop {
            let target = {
                let mut signal = lock(&self.signal);
                loop {
                    if signal.stop {
                        return;
                    }
                    let indexed = self
                        .runs
                        .read()
                        .unwrap_or_else(PoisonError::into_inner)
                        .indexed;
                    let pending = signal.size.saturating_sub(indexed);
                    if pending >= RUN_MIN
                        || (pending > 0 && (signal.flush || signal.grew.elapsed() >= IDLE))
                    {
                        break;
                    }
                    signal.flush = false;
                    signal = self
                        .wake
                        .wait_timeout(signal, IDLE)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                signal.flush = false;
                signal.size
            };
            match self.index_up_to(log, target) {
                Ok(()) => *lock(&self.failure) = None,
                Err(err) => {
                    tracing::error!(error = %err, "leaf indexer failed; retrying in 1 s");
                    *lock(&self.failure) = Some(err.to_string());
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }

    /// Indexes the leaves up to `target` in runs of at most [`RUN_MAX`], merging as it goes.
    fn index_up_to(&self, log: &TileLog, target: u64) -> Result<(), Error> {
        loop {
            let start = self
                .runs
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .indexed;
            if start >= target {
                return Ok(());
            }
            let end = target.min(start + RUN_MAX);
            let hashes = log.level_hashes(0, start, (end - start) as usize)?;
            let mut records: Vec<(u32, u64)> = hashes
                .chunks_exact(HASH_SIZE)
                .enumerate()
                .map(|(i, h)| (prefix(h), start + i as u64))
                .collect();
            records.sort_unstable();
            let run = Run::write(&self.dir, start, end, records.into_iter())?;
            {
                let mut runs = self.runs.write().unwrap_or_else(PoisonError::into_inner);
                runs.runs.push(Arc::new(run));
                runs.indexed = end;
            }
            self.merge()?;
        }
    }

    /// Merges the two newest runs while the older is not larger than the newer.
    fn merge(&self) -> Result<(), Error> {
        loop {
            let (older, newer) = {
                let runs = self.runs.read().unwrap_or_else(PoisonError::into_inner);
                let n = runs.runs.len();
                match (
                    n.checked_sub(2).and_then(|i| runs.runs.get(i)),
                    runs.runs.last(),
                ) {
                    (Some(a), Some(b))
                        if a.count() <= b.count() && a.count() + b.count() <= RUN_CAP =>
                    {
                        (a.clone(), b.clone())
                    }
                    _ => return Ok(()),
                }
            };
            let merged = Run::write(
                &self.dir,
                older.start,
                newer.end,
                MergeSorted::new(older.records()?, newer.records()?),
            )?;
            {
                let mut runs = self.runs.write().unwrap_or_else(PoisonError::into_inner);
                let keep = runs.runs.len().saturating_sub(2);
                runs.runs.truncate(keep);
                runs.runs.push(Arc::new(merged));
            }
            // Open handles of in-flight lookups stay valid after the unlink.
            for run in [older, newer] {
                std::fs::remove_file(&run.path)
                    .map_err(|e| Error::io_path("remove a merged leaf-index run", &run.path, e))?;
            }
            sync_dir(&self.dir)?;
        }
    }
}

/// Merges two sorted record streams.
struct MergeSorted<A: Iterator, B: Iterator> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<A: Iterator<Item = (u32, u64)>, B: Iterator<Item = (u32, u64)>> MergeSorted<A, B> {
    fn new(a: A, b: B) -> Self {
        MergeSorted {
            a: a.peekable(),
            b: b.peekable(),
        }
    }
}

impl<A: Iterator<Item = (u32, u64)>, B: Iterator<Item = (u32, u64)>> Iterator
    for MergeSorted<A, B>
{
    type Item = (u32, u64);
    fn next(&mut self) -> Option<(u32, u64)> {
        match (self.a.peek(), self.b.peek()) {
            (Some(x), Some(y)) if x <= y => self.a.next(),
            (Some(_), Some(_)) => self.b.next(),
            (Some(_), None) => self.a.next(),
            (None, _) => self.b.next(),
        }
    }
}
