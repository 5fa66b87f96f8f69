//! Proofs from tiles alone, the way a static C2SP tlog-tiles client works.
//!
//! [`TileSource`] is where tiles come from: the log over HTTP ([`LogClient`]) or a directory
//! holding a copy of a log's `checkpoint` and `tile/` tree ([`DirSource`], e.g. an archive
//! restored from object storage). [`TileProver`] computes roots, inclusion proofs and
//! consistency proofs for one tree size from the hash tiles of that size, fetching exactly
//! the tiles it needs: it runs the computation once with placeholder hashes to learn which
//! tiles are read (which tiles a proof visits depends only on the sizes), fetches them all
//! concurrently, then runs it again on the real hashes.
//!
//! Nothing here trusts the tiles: callers check what they compute against a signed
//! checkpoint (see [`TileProver::verified_root`]).

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::path::PathBuf;

use veritrail_ledger::Hash;
use veritrail_ledger::checkpoint::Checkpoint;
use veritrail_ledger::tile::{TileId, TileKind, hash_tile_width};
use veritrail_ledger::tree::{self, HashTileReader, TreeError};

use crate::error::ClientError;
use crate::http::LogClient;
use crate::tile_body;

/// A source of a log's checkpoint, hash tiles and entry bundles. Implementations return
/// bytes exactly as served; callers parse and verify them.
pub trait TileSource: Clone + Send + Sync + 'static {
    /// The latest signed checkpoint note.
    fn checkpoint(&self) -> impl Future<Output = Result<Vec<u8>, ClientError>> + Send;

    /// The bytes of a tile or bundle.
    fn tile(&self, id: &TileId) -> impl Future<Output = Result<Vec<u8>, ClientError>> + Send;
}

impl TileSource for LogClient {
    fn checkpoint(&self) -> impl Future<Output = Result<Vec<u8>, ClientError>> + Send {
        LogClient::checkpoint(self)
    }

    fn tile(&self, id: &TileId) -> impl Future<Output = Result<Vec<u8>, ClientError>> + Send {
        LogClient::tile(self, id)
    }
}

/// A copy of a log on disk in the C2SP layout: `<dir>/checkpoint` and `<dir>/tile/...`. A
/// partial tile is read from its `.p/<W>` file or, when that does not exist, as the first
/// `W` items of the full tile.
#[derive(Clone, Debug)]
pub struct DirSource {
    dir: PathBuf,
}

impl DirSource {
    /// A source reading from `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirSource { dir: dir.into() }
    }

    fn read(&self, path: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.dir.join(path))
    }
}

impl TileSource for DirSource {
    fn checkpoint(&self) -> impl Future<Output = Result<Vec<u8>, ClientError>> + Send {
        let path = self.dir.join("checkpoint");
        async move { std::fs::read(&path).map_err(|e| ClientError::local(&path, e)) }
    }

    fn tile(&self, id: &TileId) -> impl Future<Output = Result<Vec<u8>, ClientError>> + Send {
        let this = self.clone();
        let id = *id;
        async move {
            let missing = |e: std::io::Error| ClientError::MissingData {
                path: id.path(),
                reason: e.to_string(),
            };
            match this.read(&id.path()) {
                Ok(bytes) => Ok(bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !id.is_full() => {
                    let full = match id.kind() {
                        TileKind::Hash { level } => TileId::hash(level, id.index(), 256),
                        TileKind::Entries => TileId::entries(id.index(), 256),
                    }
                    .map_err(|e| ClientError::MissingData {
                        path: id.path(),
                        reason: e.to_string(),
                    })?;
                    let bytes = this.read(&full.path()).map_err(missing)?;
                    Ok(truncate_tile(&id, bytes))
                }
                Err(e) => Err(missing(e)),
            }
        }
    }
}

/// A log's tiles from `inner`, except entry bundles the log archived and purged (it answers
/// `410 archived`), which are read from the archives at a location
/// (`<location>/bundles-<first>-<end>/tile/entries/<N>`, as `veritrail archive` writes them).
/// Nothing read from the archive is trusted: the monitor checks every entry against the log's
/// hash tiles and signed checkpoints, as it does the log's own.
#[derive(Clone, Debug)]
pub struct ArchiveFallback<S> {
    inner: S,
    archives: veritrail_objects::Objects,
}

impl<S> ArchiveFallback<S> {
    /// `inner`, with purged bundles read from the archives at `archives`.
    pub fn new(inner: S, archives: veritrail_objects::Objects) -> Self {
        ArchiveFallback { inner, archives }
    }
}

impl<S: TileSource> TileSource for ArchiveFallback<S> {
    fn checkpoint(&self) -> impl Future<Output = Result<Vec<u8>, ClientError>> + Send {
        self.inner.checkpoint()
    }

    fn tile(&self, id: &TileId) -> impl Future<Output = Result<Vec<u8>, ClientError>> + Send {
        let this = self.clone();
        let id = *id;
        async move {
            match this.inner.tile(&id).await {
                Err(ClientError::Api { status: 410, .. }) if id.kind() == TileKind::Entries => {
                    this.read_archived(&id).await
                }
                other => other,
            }
        }
    }
}

impl<S: TileSource> ArchiveFallback<S> {
    async fn read_archived(&self, id: &TileId) -> Result<Vec<u8>, ClientError> {
        let missing = |reason: String| ClientError::MissingData {
            path: format!(
                "{} in the archives at {}",
                id.path(),
                self.archives.location()
            ),
            reason,
        };
        let names = self
            .archives
            .list_dirs("")
            .await
            .map_err(|e| missing(e.to_string()))?;
        let holding = names.iter().find(|name| {
            let Some(range) = name.strip_prefix("bundles-") else {
                return false;
            };
            let Some((first, end)) = range.split_once('-') else {
                return false;
            };
            match (first.parse::<u64>(), end.parse::<u64>()) {
                (Ok(first), Ok(end)) => (first..end).contains(&id.index()),
                _ => false,
            }
        });
        let Some(name) = holding else {
            return Err(missing("no archive holds it".into()));
        };
        let full = TileId::entries(id.index(), 256).map_err(|e| missing(e.to_string()))?;
        let archive = self
            .archives
            .child(name)
            .map_err(|e| missing(e.to_string()))?;
        let bytes = archive
            .get(&full.path())
            .await
            .map_err(|e| missing(e.to_string()))?
            .ok_or_else(|| missing(format!("{name} lacks it")))?;
        Ok(truncate_tile(id, bytes.to_vec()))
    }
}

/// Cuts a full tile's bytes to the prefix a partial tile of `id.width()` holds.
fn truncate_tile(id: &TileId, mut bytes: Vec<u8>) -> Vec<u8> {
    let width = usize::from(id.width());
    let keep = match id.kind() {
        TileKind::Hash { .. } => width.saturating_mul(32),
        TileKind::Entries => {
            // Walk `width` length prefixes; a malformed bundle is left for the parser.
            let mut offset = 0usize;
            for _ in 0..width {
                let len = bytes
                    .get(offset..offset.saturating_add(2))
                    .and_then(|p| <[u8; 2]>::try_from(p).ok())
                    .map(|p| usize::from(u16::from_be_bytes(p)));
                match len {
                    Some(len) => offset = offset.saturating_add(2 + len),
                    None => return bytes,
                }
            }
            offset
        }
    };
    bytes.truncate(keep);
    bytes
}

/// Reads hash tile `id` from a source and parses exactly `id.width()` hashes; errors are the
/// source's as they come.
pub(crate) async fn read_hash_tile<S: TileSource>(
    source: &S,
    id: &TileId,
) -> Result<Vec<Hash>, ClientError> {
    tile_body::hash_tile(id, &source.tile(id).await?)
}

/// Reads entry bundle `id` from a source and decodes exactly `id.width()` entries.
pub(crate) async fn read_bundle<S: TileSource>(
    source: &S,
    id: &TileId,
) -> Result<Vec<Vec<u8>>, ClientError> {
    tile_body::bundle(id, &source.tile(id).await?)
}

/// Reads a hash tile of `width` hashes that a checkpoint covers: failing to fetch it is
/// [`ClientError::MissingData`].
pub(crate) async fn fetch_hash_tile<S: TileSource>(
    source: &S,
    level: u8,
    index: u64,
    width: u16,
) -> Result<Vec<Hash>, ClientError> {
    let id = TileId::hash(level, index, width).map_err(|e| ClientError::MissingData {
        path: format!("tile/{level}/{index}"),
        reason: e.to_string(),
    })?;
    read_hash_tile(source, &id)
        .await
        .map_err(|e| missing_data(&id, e))
}

/// Reads an entry bundle of `width` entries that a checkpoint covers.
pub(crate) async fn fetch_bundle<S: TileSource>(
    source: &S,
    index: u64,
    width: u16,
) -> Result<Vec<Vec<u8>>, ClientError> {
    let id = TileId::entries(index, width).map_err(|e| ClientError::MissingData {
        path: format!("tile/entries/{index}"),
        reason: e.to_string(),
    })?;
    read_bundle(source, &id)
        .await
        .map_err(|e| missing_data(&id, e))
}

/// A 404 for a tile the checkpoint covers means the log does not serve its own data.
fn missing_data(id: &TileId, err: ClientError) -> ClientError {
    match err {
        ClientError::Api {
            status: 404,
            message,
            ..
        } => ClientError::MissingData {
            path: id.path(),
            reason: format!("404 {message}"),
        },
        other => other,
    }
}

/// Serves the tiles fetched so far and records the ones that are missing, answering those
/// with placeholder hashes so that one pass learns every tile a computation needs.
struct Probe<'a> {
    tiles: &'a HashMap<(u8, u64), Vec<Hash>>,
    missing: RefCell<BTreeSet<(u8, u64)>>,
}

impl HashTileReader for Probe<'_> {
    type Error = TreeError;

    fn read_hash_tile(&self, level: u8, index: u64, width: u16) -> Result<Vec<Hash>, TreeError> {
        match self.tiles.get(&(level, index)) {
            Some(tile) if tile.len() >= usize::from(width) => Ok(tile.clone()),
            _ => {
                self.missing.borrow_mut().insert((level, index));
                Ok(vec![Hash([0; 32]); usize::from(width)])
            }
        }
    }
}

/// Computes roots and proofs for one tree size from a source's hash tiles, caching the tiles
/// it has fetched.
#[derive(Debug)]
pub struct TileProver<S> {
    source: S,
    size: u64,
    tiles: HashMap<(u8, u64), Vec<Hash>>,
    fetched: u64,
}

impl<S: TileSource> TileProver<S> {
    /// A prover for the tree of `size` leaves.
    pub fn new(source: S, size: u64) -> Self {
        TileProver {
            source,
            size,
            tiles: HashMap::new(),
            fetched: 0,
        }
    }

    /// The tree size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// How many tiles have been fetched so far.
    pub fn tiles_fetched(&self) -> u64 {
        self.fetched
    }

    /// Runs `compute` over the tiles, fetching what it reads.
    async fn run<T>(
        &mut self,
        compute: impl Fn(&Probe<'_>) -> Result<T, TreeError>,
    ) -> Result<T, ClientError> {
        // Which tiles are read depends only on the sizes, so the second pass has them all;
        // the third is a safety margin.
        for _ in 0..3 {
            let probe = Probe {
                tiles: &self.tiles,
                missing: RefCell::new(BTreeSet::new()),
            };
            let result = compute(&probe);
            let missing = probe.missing.into_inner();
            if missing.is_empty() {
                return result.map_err(ClientError::from);
            }
            let mut tasks = tokio::task::JoinSet::new();
            for (level, index) in missing {
                let width =
                    hash_tile_width(level, index, self.size).ok_or(TreeError::ShortTile {
                        level,
                        index,
                        got: 0,
                        want: 1,
                    })?;
                let source = self.source.clone();
                tasks.spawn(async move {
                    let tile = fetch_hash_tile(&source, level, index, width).await?;
                    Ok::<_, ClientError>(((level, index), tile))
                });
            }
            while let Some(done) = tasks.join_next().await {
                let (key, tile) = done.map_err(|e| ClientError::Local {
                    path: "tile fetch task".into(),
                    reason: e.to_string(),
                })??;
                self.tiles.insert(key, tile);
                self.fetched += 1;
            }
        }
        Err(ClientError::Local {
            path: "tile prover".into(),
            reason: "tiles were still missing after three passes".into(),
        })
    }

    /// The root of the tree of `size` leaves as the tiles give it (unverified).
    ///
    /// # Errors
    /// Fetch errors.
    pub async fn root(&mut self) -> Result<Hash, ClientError> {
        let size = self.size;
        self.run(|p| tree::root(p, size)).await
    }

    /// Checks that the tiles hash to the checkpoint's signed root; every proof computed from
    /// them afterwards is then authenticated by that signature.
    ///
    /// # Errors
    /// [`ClientError::TileRootMismatch`]; fetch errors.
    pub async fn verified_root(&mut self, checkpoint: &Checkpoint) -> Result<Hash, ClientError> {
        let computed = self.root().await?;
        if computed != checkpoint.tree.root || checkpoint.tree.size != self.size {
            return Err(ClientError::TileRootMismatch {
                size: checkpoint.tree.size,
                computed,
                expected: checkpoint.tree.root,
            });
        }
        Ok(computed)
    }

    /// The root the tiles give to the first `size` leaves (`size <= self.size()`).
    ///
    /// # Errors
    /// [`TreeError::InvalidSizes`] if `size` is larger; fetch errors.
    pub async fn root_at(&mut self, size: u64) -> Result<Hash, ClientError> {
        if size > self.size {
            return Err(TreeError::InvalidSizes {
                old: size,
                new: self.size,
            }
            .into());
        }
        self.run(|p| tree::root(p, size)).await
    }

    /// The inclusion proof of leaf `index`.
    ///
    /// # Errors
    /// [`TreeError::IndexOutOfRange`]; fetch errors.
    pub async fn inclusion_proof(&mut self, index: u64) -> Result<Vec<Hash>, ClientError> {
        let size = self.size;
        self.run(|p| tree::inclusion_proof(p, index, size)).await
    }

    /// The consistency proof from the tree of `old` leaves.
    ///
    /// # Errors
    /// [`TreeError::InvalidSizes`] unless `0 < old <= size`; fetch errors.
    pub async fn consistency_proof(&mut self, old: u64) -> Result<Vec<Hash>, ClientError> {
        let size = self.size;
        self.run(|p| tree::consistency_proof(p, old, size)).await
    }

    /// The leaf hash of leaf `index`, read from its level-0 tile.
    ///
    /// # Errors
    /// [`TreeError::IndexOutOfRange`]; fetch errors.
    pub async fn leaf_hash(&mut self, index: u64) -> Result<Hash, ClientError> {
        let size = self.size;
        self.run(|p| {
            if index >= size {
                return Err(TreeError::IndexOutOfRange { index, size });
            }
            tree::subtree_hash(p, 0, index)
        })
        .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use veritrail_ledger::bundle::encode_bundle;

    #[test]
    fn partial_tiles_are_prefixes_of_full_tiles() {
        let entries: Vec<Vec<u8>> = (0..256u32).map(|i| vec![1; (i % 7) as usize + 1]).collect();
        let full = encode_bundle(entries.iter().map(Vec::as_slice)).unwrap();
        let id = TileId::entries(3, 5).unwrap();
        let cut = truncate_tile(&id, full);
        assert_eq!(
            cut,
            encode_bundle(entries[..5].iter().map(Vec::as_slice)).unwrap()
        );
        let id = TileId::hash(1, 0, 3).unwrap();
        assert_eq!(truncate_tile(&id, vec![9; 8192]).len(), 96);
    }

    #[tokio::test]
    async fn dir_source_reads_exact_and_full_tiles() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("tile/0")).unwrap();
        std::fs::write(dir.path().join("tile/0/000"), vec![7u8; 8192]).unwrap();
        std::fs::write(dir.path().join("checkpoint"), b"note").unwrap();
        let source = DirSource::new(dir.path());
        assert_eq!(source.checkpoint().await.unwrap(), b"note");
        let partial = source.tile(&TileId::hash(0, 0, 2).unwrap()).await.unwrap();
        assert_eq!(partial, vec![7u8; 64]);
        assert!(matches!(
            source.tile(&TileId::hash(0, 1, 2).unwrap()).await,
            Err(ClientError::MissingData { .. })
        ));
    }

    proptest! {
        #[test]
        fn truncating_hostile_bundles_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..4096),
            width in 1u16..=255,
        ) {
            let id = TileId::entries(0, width).unwrap();
            let cut = truncate_tile(&id, bytes.clone());
            prop_assert!(cut.len() <= bytes.len());
        }
    }
}
