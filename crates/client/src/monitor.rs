//! The monitor: a full audit of a log, not just of its checkpoints.
//!
//! Each [`Monitor::run_once`] takes the log's latest checkpoint and:
//!
//! 1. checks its signature by the pinned key and its size against the trusted checkpoint
//!    (older: rollback; same size: same root; larger: a consistency proof computed from the
//!    log's own hash tiles, which also yields split-view evidence if the log forked);
//! 2. downloads every new entry bundle, hashes every entry, and rebuilds the tree from those
//!    leaf hashes, comparing every hash tile the log serves with the recomputed one;
//! 3. checks that the rebuilt tree has the checkpoint's signed root at its size and the
//!    trusted root at the trusted size, and only then trusts the new checkpoint.
//!
//! The rebuilt tile rows are kept in a [`TileCache`] and committed every
//! [`MonitorOptions::commit_every`] entries, so a restarted monitor resumes where it stopped
//! without downloading verified tiles again.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use veritrail_ledger::checkpoint::Checkpoint;
use veritrail_ledger::tile::{TILE_WIDTH, entry_bundle_width, hash_tile_width};
use veritrail_ledger::tree::{self, CompactRange};
use veritrail_ledger::{Hash, leaf_hash};

use crate::cache::{ROWS, TileCache};
use crate::error::ClientError;
use crate::state::LogVerifier;
use crate::tiles::{TileProver, TileSource, fetch_bundle, fetch_hash_tile};

/// How the monitor works.
#[derive(Clone, Debug)]
pub struct MonitorOptions {
    /// Where the rebuilt tile rows are kept.
    pub cache_dir: PathBuf,
    /// Bundles downloaded concurrently.
    pub parallel: usize,
    /// Entries between two commits of the cache (the most a restart re-downloads).
    pub commit_every: u64,
    /// Largest tree size a checkpoint may claim.
    pub max_tree_size: u64,
}

impl MonitorOptions {
    /// Defaults: 8 bundles in flight, a commit every 65536 entries, trees up to `2^40`.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        MonitorOptions {
            cache_dir: cache_dir.into(),
            parallel: 8,
            commit_every: 1 << 16,
            max_tree_size: 1 << 40,
        }
    }
}

/// What one [`Monitor::run_once`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonitorReport {
    /// The checkpoint verified and now trusted.
    pub checkpoint: Checkpoint,
    /// The trusted size before this run.
    pub previous_size: u64,
    /// The size of the locally rebuilt tree when the run started (resumed work).
    pub resumed_from: u64,
    /// Entries downloaded and hashed in this run.
    pub entries_verified: u64,
    /// Entry bundles downloaded.
    pub bundles_fetched: u64,
    /// Hash tiles downloaded.
    pub tiles_fetched: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// Follows one log: see the module docs.
///
/// # Example
///
/// ```no_run
/// use std::path::Path;
/// use veritrail_client::{ClientConfig, LogClient, LogVerifier, Monitor, MonitorOptions};
/// use veritrail_ledger::note::NoteVerifier;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let key: NoteVerifier = "audit.example.com/log+5449b4ce+AZM1cJMQFxvav6Cd8kWpTm+neskeZzHQaBiPBIpILJl4".parse()?;
/// let state = Path::new("auditor.state");
/// let verifier = LogVerifier::load(state, "audit.example.com/log", &key)?;
/// let client = LogClient::new(&ClientConfig::new("http://127.0.0.1:7800").with_token("vt_..."))?;
/// let options = MonitorOptions::new("auditor.state.tiles");
/// let mut monitor = Monitor::new(client, verifier, Some(state.to_owned()), options)?;
/// match monitor.run_once(&mut |done, total| eprintln!("{done}/{total}")).await {
///     Ok(report) => println!("verified {} entries", report.checkpoint.tree.size),
///     Err(err) => {
///         if let Some(evidence) = err.evidence() {
///             std::fs::write("evidence.json", evidence.to_bytes())?;
///         }
///         return Err(err.into());
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Monitor<S> {
    source: S,
    verifier: LogVerifier,
    state_path: Option<PathBuf>,
    cache: TileCache,
    options: MonitorOptions,
}

impl<S: TileSource> Monitor<S> {
    /// A monitor for the log behind `source`, trusting what `verifier` trusts. When
    /// `state_path` is given, the trusted state is saved there after every verified
    /// checkpoint.
    ///
    /// # Errors
    /// [`ClientError::Local`] if the cache cannot be opened or is for another log.
    pub fn new(
        source: S,
        verifier: LogVerifier,
        state_path: Option<PathBuf>,
        options: MonitorOptions,
    ) -> Result<Self, ClientError> {
        let cache = TileCache::open(
            &options.cache_dir,
            verifier.origin(),
            &verifier.key().to_string(),
        )?;
        Ok(Monitor {
            source,
            verifier,
            state_path,
            cache,
            options,
        })
    }

    /// The trusted state.
    pub fn verifier(&self) -> &LogVerifier {
        &self.verifier
    }

    /// The size of the locally rebuilt tree.
    pub fn cached_size(&self) -> u64 {
        self.cache.size()
    }

    /// The cache directory.
    pub fn cache_dir(&self) -> &Path {
        self.cache.dir()
    }

    /// Catches up with the log's latest checkpoint (see the module docs). `progress` is
    /// called with (entries in the local tree, target size) as the audit advances.
    ///
    /// # Errors
    /// Any [`ClientError`]; [`ClientError::is_misbehaviour`] tells a log that failed the
    /// audit from one that could not be reached, and [`ClientError::evidence`] holds the
    /// split-view evidence when there is some. The trusted state is unchanged on error; the
    /// cache keeps the committed progress.
    pub async fn run_once(
        &mut self,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<MonitorReport, ClientError> {
        let started = Instant::now();
        let note = self.source.checkpoint().await?;
        let checkpoint = self.verifier.check(&note)?;
        let n = checkpoint.tree.size;
        if n > self.options.max_tree_size {
            return Err(ClientError::ImplausibleTreeSize {
                size: n,
                max: self.options.max_tree_size,
            });
        }
        let trusted = self.verifier.trusted().cloned();
        let m = self.verifier.trusted_size();
        let resumed_from = self.cache.size();
        let mut report = MonitorReport {
            checkpoint: checkpoint.clone(),
            previous_size: m,
            resumed_from,
            entries_verified: 0,
            bundles_fetched: 0,
            tiles_fetched: 0,
            elapsed: Duration::ZERO,
        };

        if let Some((trusted_cp, _)) = &trusted {
            if n < m {
                return Err(self.rollback(&note, &checkpoint, trusted_cp));
            }
            if n == m {
                // Equal sizes: the same root, or two-roots evidence from the verifier. The
                // audit below still runs if the cache is behind (the state file may have
                // been advanced by `checkpoint --verify`, which checks no entries).
                self.verifier.clone().update(&note, &[], None)?;
            } else if m > 0 {
                // A fork is cheapest to find (and prove) from the log's own tiles, before
                // downloading anything else.
                let mut prover = TileProver::new(self.source.clone(), n);
                prover.verified_root(&checkpoint).await?;
                let prefix = prover.root_at(m).await?;
                let proof = prover.consistency_proof(m).await?;
                report.tiles_fetched += prover.tiles_fetched();
                self.verifier.clone().update(&note, &proof, Some(prefix))?;
            }
        }

        if self.cache.size() < n {
            self.download(n, &mut report, progress).await?;
        }
        progress(n, n);

        // The rebuilt tree must have the signed roots.
        let root = tree::root(&self.cache, n)?;
        if root != checkpoint.tree.root {
            return Err(ClientError::EntriesRootMismatch {
                size: n,
                computed: root,
                expected: checkpoint.tree.root,
            });
        }
        let (proof, prefix) = if m > 0 && n > m {
            (
                tree::consistency_proof(&self.cache, m, n)?,
                Some(tree::root(&self.cache, m)?),
            )
        } else {
            (Vec::new(), None)
        };
        let mut next = self.verifier.clone();
        next.update(&note, &proof, prefix)?;
        self.cache.commit(self.cache.size().max(n))?;
        if let Some(path) = &self.state_path {
            next.save(path)?;
        }
        self.verifier = next;
        report.elapsed = started.elapsed();
        Ok(report)
    }

    /// The error for a checkpoint older than the trusted one: split-view evidence when the
    /// local tree shows it contradicts the trusted checkpoint, a rollback otherwise.
    fn rollback(&self, note: &[u8], older: &Checkpoint, trusted: &Checkpoint) -> ClientError {
        let rollback = ClientError::Rollback {
            trusted: trusted.tree.size,
            got: older.tree.size,
        };
        let (n, m) = (older.tree.size, trusted.tree.size);
        if n == 0 || self.cache.size() < m {
            return rollback;
        }
        let local = tree::root(&self.cache, n)
            .and_then(|prefix| Ok((prefix, tree::consistency_proof(&self.cache, n, m)?)));
        let Ok((prefix, proof)) = local else {
            return rollback;
        };
        match self.verifier.older_split_view(note, &prefix, &proof) {
            Some(split) => split.into(),
            None => rollback,
        }
    }

    /// Downloads the entries from the cache's size to `n`, rebuilding and checking tiles.
    async fn download(
        &mut self,
        n: u64,
        report: &mut MonitorReport,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(), ClientError> {
        self.cache.rewind()?;
        let k = self.cache.size();
        let mut range = CompactRange::from_tiles(&self.cache, k)?;
        let mut verified_full: Vec<u64> = (0..ROWS)
            .map(|level| self.cache.row_len(level) / TILE_WIDTH)
            .collect();
        let first_bundle = k / TILE_WIDTH;
        let last_bundle = (n - 1) / TILE_WIDTH;
        let mut queue = VecDeque::new();
        let mut next_bundle = first_bundle;
        let mut last_commit = k;
        let mut pending: Vec<Vec<Hash>> = vec![Vec::new(); ROWS];
        let parallel = self.options.parallel.max(1);
        loop {
            while queue.len() < parallel && next_bundle <= last_bundle {
                let width = entry_bundle_width(next_bundle, n).unwrap_or(0);
                let source = self.source.clone();
                let index = next_bundle;
                // Entries are hashed in the task, on whichever worker is free, so hashing
                // overlaps with the tree rebuild below; only the leaf hashes come back.
                queue.push_back(tokio::spawn(async move {
                    let (bundle, tile) = tokio::join!(
                        fetch_bundle(&source, index, width),
                        fetch_hash_tile(&source, 0, index, width)
                    );
                    let leaves: Vec<Hash> = bundle?.iter().map(|e| leaf_hash(e)).collect();
                    Ok::<_, ClientError>((index, leaves, tile?))
                }));
                next_bundle += 1;
            }
            let Some(task) = queue.pop_front() else { break };
            let (bundle_index, leaves, tile) = task.await.map_err(|e| ClientError::Local {
                path: "download task".into(),
                reason: e.to_string(),
            })??;
            report.bundles_fetched += 1;
            report.tiles_fetched += 1;
            let first = bundle_index * TILE_WIDTH;
            // Entries already in the local tree must still hash to the same leaves.
            let known = usize::try_from(range.size().saturating_sub(first))
                .unwrap_or(usize::MAX)
                .min(leaves.len());
            if known > 0 {
                let cached = self.cache.read(0, first, known)?;
                for (offset, (computed, expected)) in leaves.iter().zip(&cached).enumerate() {
                    if computed != expected {
                        return Err(ClientError::EntryMismatch {
                            index: first + offset as u64,
                            computed: *computed,
                            expected: *expected,
                        });
                    }
                }
            }
            for leaf in leaves.iter().skip(known) {
                range.append(*leaf, |level, _, hash| {
                    if level % 8 == 0
                        && let Some(row) = pending.get_mut((level / 8) as usize)
                    {
                        row.push(*hash);
                    }
                });
                report.entries_verified += 1;
            }
            for (level, hashes) in pending.iter_mut().enumerate() {
                if !hashes.is_empty() {
                    self.cache.append(level, hashes)?;
                    hashes.clear();
                }
            }
            // The log's level-0 tile must be the one the entries give.
            let width = tile.len();
            if self.cache.read(0, first, width)? != tile {
                return Err(tile_mismatch(0, bundle_index, n));
            }
            // Every higher tile that just became full must match too.
            for level in 1..ROWS {
                let full = self.cache.row_len(level) / TILE_WIDTH;
                while let Some(slot) = verified_full.get_mut(level).filter(|v| **v < full) {
                    let index = *slot;
                    self.check_tile(level, index, n, report).await?;
                    *slot += 1;
                }
            }
            let size = range.size();
            if size - last_commit >= self.options.commit_every && size < n {
                self.cache.commit(size)?;
                last_commit = size;
            }
            progress(size, n);
        }
        // The partial tiles above level 0 at size `n`.
        for level in 1..ROWS {
            let row = self.cache.row_len(level);
            if !row.is_multiple_of(TILE_WIDTH) {
                self.check_tile(level, row / TILE_WIDTH, n, report).await?;
            }
        }
        Ok(())
    }

    /// Fetches hash tile `(level, index)` at its width for size `n` and compares it with the
    /// rebuilt row.
    async fn check_tile(
        &self,
        level: usize,
        index: u64,
        n: u64,
        report: &mut MonitorReport,
    ) -> Result<(), ClientError> {
        let level_u8 = u8::try_from(level).unwrap_or(u8::MAX);
        let width = hash_tile_width(level_u8, index, n).unwrap_or(0);
        if width == 0 {
            return Ok(());
        }
        let served = fetch_hash_tile(&self.source, level_u8, index, width).await?;
        report.tiles_fetched += 1;
        let rebuilt = self
            .cache
            .read(level, index * TILE_WIDTH, usize::from(width))?;
        if served != rebuilt {
            return Err(tile_mismatch(level_u8, index, n));
        }
        Ok(())
    }
}

fn tile_mismatch(level: u8, index: u64, n: u64) -> ClientError {
    let width = hash_tile_width(level, index, n).unwrap_or(0);
    let path = veritrail_ledger::tile::TileId::hash(level, index, width)
        .map(|id| id.path())
        .unwrap_or_else(|_| format!("tile/{level}/{index}"));
    ClientError::TileMismatch { path }
}
