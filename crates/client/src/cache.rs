//! The monitor's local copy of the tree: the hashes of every tile row it has recomputed from
//! the log's entries, so a restart resumes where it stopped instead of downloading again.
//!
//! Layout of the cache directory:
//!
//! ```text
//! <cache>/progress.json   {"format", "origin", "log_key", "size"}: the committed tree size
//! <cache>/row-0           leaf hashes 0.., 32 bytes each (the level-0 tile row)
//! <cache>/row-1           hashes of tree level 8 (the level-1 tile row), ...
//! ```
//!
//! Row `L` of a tree of `size` leaves holds `size >> (8·L)` hashes: the concatenation of
//! every hash tile at level `L`, full and partial. [`TileCache::commit`] fsyncs the rows, then
//! replaces `progress.json` atomically; on open, rows are cut back to the committed size, so
//! a crash leaves the cache at the last commit. The cache is a derived copy: the monitor
//! recomputes it from entries and checks it against signed roots.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use veritrail_ledger::Hash;
use veritrail_ledger::tile::{MAX_TILE_LEVEL, TILE_HEIGHT, TILE_WIDTH};
use veritrail_ledger::tree::{HashTileReader, TreeError};

use crate::atomic_file::write_atomically;
use crate::error::ClientError;

/// Identifies the progress file format.
const PROGRESS_FORMAT: &str = "veritrail-monitor-cache/v1";

/// Number of tile rows kept: level 7 covers 2^56 leaves, beyond any plausible tree.
pub(crate) const ROWS: usize = 8;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Progress {
    format: String,
    origin: String,
    log_key: String,
    size: u64,
}

/// Hashes of one tile row, appended at the end.
#[derive(Debug)]
struct Row {
    file: File,
    len: u64,
}

/// The monitor's tile cache (see the module docs).
#[derive(Debug)]
pub struct TileCache {
    dir: PathBuf,
    origin: String,
    log_key: String,
    size: u64,
    rows: Mutex<Vec<Row>>,
}

fn row_len(size: u64, level: usize) -> u64 {
    size.checked_shr(u32::from(TILE_HEIGHT) * level as u32)
        .unwrap_or(0)
}

impl TileCache {
    /// Opens (or creates) the cache for the log `origin` with key `log_key`. A cache for
    /// another log is an error; rows longer than the committed size are cut back.
    ///
    /// # Errors
    /// [`ClientError::Local`].
    pub fn open(dir: &Path, origin: &str, log_key: &str) -> Result<Self, ClientError> {
        std::fs::create_dir_all(dir).map_err(|e| ClientError::local(dir, e))?;
        let progress_path = dir.join("progress.json");
        let size = match std::fs::read(&progress_path) {
            Ok(bytes) => {
                let progress: Progress = serde_json::from_slice(&bytes)
                    .map_err(|e| ClientError::local(&progress_path, e))?;
                if progress.format != PROGRESS_FORMAT {
                    return Err(ClientError::local(
                        &progress_path,
                        format!("format {:?} is not {PROGRESS_FORMAT}", progress.format),
                    ));
                }
                if progress.origin != origin || progress.log_key != log_key {
                    return Err(ClientError::local(
                        &progress_path,
                        format!(
                            "the cache is for log {:?} with key {}; use another cache directory",
                            progress.origin, progress.log_key
                        ),
                    ));
                }
                progress.size
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(ClientError::local(&progress_path, e)),
        };
        let mut rows = Vec::with_capacity(ROWS);
        for level in 0..ROWS {
            let path = dir.join(format!("row-{level}"));
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| ClientError::local(&path, e))?;
            let want = row_len(size, level);
            let have = file
                .metadata()
                .map_err(|e| ClientError::local(&path, e))?
                .len()
                / 32;
            if have < want {
                return Err(ClientError::local(
                    &path,
                    format!(
                        "holds {have} hashes but the committed size {size} needs {want}; \
                         delete the cache directory to rebuild it"
                    ),
                ));
            }
            file.set_len(want * 32)
                .map_err(|e| ClientError::local(&path, e))?;
            rows.push(Row { file, len: want });
        }
        Ok(TileCache {
            dir: dir.to_owned(),
            origin: origin.to_owned(),
            log_key: log_key.to_owned(),
            size,
            rows: Mutex::new(rows),
        })
    }

    /// The committed tree size: the cache holds every tile row of the tree of this many
    /// leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Row>> {
        // A poisoned lock only means another thread panicked mid-write; the rows are cut
        // back to the committed size on the next open anyway.
        self.rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Cuts every row back to the committed size, dropping hashes appended since the last
    /// commit (after a failed run).
    ///
    /// # Errors
    /// [`ClientError::Local`].
    pub(crate) fn rewind(&self) -> Result<(), ClientError> {
        let mut rows = self.lock();
        for (level, row) in rows.iter_mut().enumerate() {
            let want = row_len(self.size, level);
            if row.len != want {
                row.file
                    .set_len(want * 32)
                    .map_err(|e| ClientError::local(&self.dir.join(format!("row-{level}")), e))?;
                row.len = want;
            }
        }
        Ok(())
    }

    /// Appends hashes to row `level` (at its end).
    pub(crate) fn append(&self, level: usize, hashes: &[Hash]) -> Result<(), ClientError> {
        let path = self.dir.join(format!("row-{level}"));
        let mut rows = self.lock();
        let row = rows
            .get_mut(level)
            .ok_or_else(|| ClientError::local(&path, "tree level beyond the cache"))?;
        let mut bytes = Vec::with_capacity(hashes.len() * 32);
        for hash in hashes {
            bytes.extend_from_slice(hash.as_bytes());
        }
        row.file
            .seek(SeekFrom::Start(row.len * 32))
            .and_then(|_| row.file.write_all(&bytes))
            .map_err(|e| ClientError::local(&path, e))?;
        row.len += hashes.len() as u64;
        Ok(())
    }

    /// Reads `count` hashes of row `level` from position `start`.
    pub(crate) fn read(
        &self,
        level: usize,
        start: u64,
        count: usize,
    ) -> Result<Vec<Hash>, ClientError> {
        let path = self.dir.join(format!("row-{level}"));
        let mut rows = self.lock();
        let row = rows
            .get_mut(level)
            .ok_or_else(|| ClientError::local(&path, "tree level beyond the cache"))?;
        let end = start.saturating_add(count as u64);
        if end > row.len {
            return Err(ClientError::local(
                &path,
                format!("asked for hashes {start}..{end}, the row holds {}", row.len),
            ));
        }
        let mut bytes = vec![0u8; count * 32];
        row.file
            .seek(SeekFrom::Start(start * 32))
            .and_then(|_| row.file.read_exact(&mut bytes))
            .map_err(|e| ClientError::local(&path, e))?;
        Ok(bytes
            .chunks_exact(32)
            .filter_map(|c| Hash::try_from_slice(c).ok())
            .collect())
    }

    /// Number of hashes row `level` holds now (committed or not).
    pub(crate) fn row_len(&self, level: usize) -> u64 {
        self.lock().get(level).map_or(0, |r| r.len)
    }

    /// Makes the rows durable and records `size` as committed. The rows must hold the tree
    /// of `size` leaves.
    ///
    /// # Errors
    /// [`ClientError::Local`]; the previous commit then stays in force.
    pub fn commit(&mut self, size: u64) -> Result<(), ClientError> {
        {
            let rows = self.lock();
            for (level, row) in rows.iter().enumerate() {
                let path = self.dir.join(format!("row-{level}"));
                if row.len < row_len(size, level) {
                    return Err(ClientError::local(
                        &path,
                        format!("cannot commit size {size}: the row holds {}", row.len),
                    ));
                }
                row.file
                    .sync_data()
                    .map_err(|e| ClientError::local(&path, e))?;
            }
        }
        let progress = Progress {
            format: PROGRESS_FORMAT.to_owned(),
            origin: self.origin.clone(),
            log_key: self.log_key.clone(),
            size,
        };
        let json = serde_json::to_vec_pretty(&progress).unwrap_or_default();
        let progress = self.dir.join("progress.json");
        write_atomically(&progress, &json).map_err(|e| ClientError::local(&progress, e))?;
        self.size = size;
        Ok(())
    }
}

impl HashTileReader for TileCache {
    type Error = ClientError;

    fn read_hash_tile(&self, level: u8, index: u64, width: u16) -> Result<Vec<Hash>, ClientError> {
        let short = |got: u64| TreeError::ShortTile {
            level,
            index,
            got: usize::try_from(got).unwrap_or(usize::MAX),
            want: usize::from(width),
        };
        if level > MAX_TILE_LEVEL || usize::from(level) >= ROWS {
            return Err(short(0).into());
        }
        let start = index.saturating_mul(TILE_WIDTH);
        let available = self.row_len(usize::from(level)).saturating_sub(start);
        if available < u64::from(width) {
            return Err(short(available).into());
        }
        self.read(usize::from(level), start, usize::from(width))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use veritrail_ledger::leaf_hash;

    #[test]
    fn uncommitted_rows_are_cut_back_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let hashes: Vec<Hash> = (0u32..300).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        {
            let mut cache = TileCache::open(dir.path(), "o", "k").unwrap();
            cache.append(0, &hashes[..256]).unwrap();
            cache.append(1, &hashes[..1]).unwrap();
            cache.commit(256).unwrap();
            cache.append(0, &hashes[256..]).unwrap();
        }
        let cache = TileCache::open(dir.path(), "o", "k").unwrap();
        assert_eq!(cache.size(), 256);
        assert_eq!(cache.row_len(0), 256);
        assert_eq!(cache.read(0, 250, 6).unwrap(), hashes[250..256].to_vec());
        assert!(cache.read(0, 250, 7).is_err());
        assert_eq!(
            cache.read_hash_tile(0, 0, 256).unwrap(),
            hashes[..256].to_vec()
        );
        assert!(matches!(
            cache.read_hash_tile(0, 1, 1),
            Err(ClientError::Tree(TreeError::ShortTile { .. }))
        ));
    }

    #[test]
    fn a_cache_for_another_log_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        TileCache::open(dir.path(), "o", "k")
            .unwrap()
            .commit(0)
            .unwrap();
        let err = TileCache::open(dir.path(), "other", "k").unwrap_err();
        assert!(err.to_string().contains("another cache directory"), "{err}");
    }

    #[test]
    fn a_row_shorter_than_the_commit_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = TileCache::open(dir.path(), "o", "k").unwrap();
        cache
            .append(0, &[leaf_hash(b"a"), leaf_hash(b"b")])
            .unwrap();
        cache.commit(2).unwrap();
        drop(cache);
        std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("row-0"))
            .unwrap()
            .set_len(32)
            .unwrap();
        let err = TileCache::open(dir.path(), "o", "k").unwrap_err();
        assert!(
            err.to_string().contains("delete the cache directory"),
            "{err}"
        );
    }
}
