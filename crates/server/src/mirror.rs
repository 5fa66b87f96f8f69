//! The mirror (`serve --mirror <dir | s3://…>`): the log's read path published as static
//! objects in the C2SP tlog-tiles layout, so that a bucket website, any static file server or
//! a CDN in front of either serves the log to readers without the log server.
//!
//! After each published checkpoint the mirror writes, in this order:
//!
//! 1. every hash tile and entry bundle the new tree has that the last mirrored tree did not
//!    have whole: full ones once (they never change), the partial ones at their new width
//!    (`tile/<L>/<N>.p/<W>`: a partial tile of a given width never changes either);
//! 2. then the checkpoint, the one object that is replaced.
//!
//! A reader therefore never sees a checkpoint whose tiles are missing: a crash or a failed
//! upload between the two leaves the previous checkpoint in place, whose tiles are all there.
//! Tiles and bundles are written `Cache-Control: public, max-age=31536000, immutable`, the
//! checkpoint `public, max-age=1` (on a bucket; a local directory keeps no headers).
//!
//! On start the mirror reads the checkpoint already in the target: if it verifies under the
//! log's key it continues from that size; an object that is not a checkpoint of this log
//! (another log's mirror) stops the mirror with an error rather than overwrite it. A failed
//! round is retried a second later with the latest checkpoint; intermediate checkpoints the
//! mirror fell behind on are skipped, never their tiles.
//!
//! Metrics: `veritrail_mirror_size` (tree size of the mirrored checkpoint),
//! `veritrail_mirror_objects_total`, `veritrail_mirror_failures_total`,
//! `veritrail_mirror_round_seconds` (from seeing a checkpoint to its object being written).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinSet;
use veritrail_ledger::Ledger;
use veritrail_ledger::checkpoint::Checkpoint;
use veritrail_ledger::tile::{TileId, hash_tile_width};
use veritrail_objects::{Meta, Objects, ObjectsError};

use crate::publisher::Published;

/// Uploads in flight at once: enough to hide a bucket's per-request latency, few enough not
/// to compete with appends for the disk.
const CONCURRENCY: usize = 16;
/// The wait before a failed round is tried again.
const RETRY: Duration = Duration::from_secs(1);
/// Tile levels that can hold a node (C2SP tlog-tiles: levels 0 to 63 are valid paths, but a
/// tree of at most 2^64 leaves has nodes on levels 0 to 7 only).
const LEVELS: u8 = 8;
/// The `checkpoint` object's metadata: a short cache life, as the server serves it.
const CHECKPOINT_META: Meta = Meta {
    cache_control: Some("public, max-age=1"),
    content_type: Some("text/plain; charset=utf-8"),
};

/// Why a mirror round failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MirrorError {
    /// The target could not be read or written.
    #[error(transparent)]
    Objects(#[from] ObjectsError),
    /// A tile could not be read from the log.
    #[error("cannot read {path} from the log: {source}")]
    Read {
        /// The tile's path.
        path: String,
        /// The ledger's error.
        #[source]
        source: veritrail_ledger::Error,
    },
    /// The target holds a `checkpoint` that is not one of this log's.
    #[error(
        "{location}/checkpoint is not a checkpoint of this log ({reason}); refusing to overwrite another log's mirror — give an empty location"
    )]
    Foreign {
        /// The target.
        location: String,
        /// Why it is not ours.
        reason: String,
    },
    /// The target's checkpoint is ahead of this log: the data directory is older than the
    /// mirror (restored from a backup?), and mirroring would roll readers back.
    #[error(
        "{location}/checkpoint is at tree size {mirrored}, ahead of this log's {size}: refusing to roll readers back"
    )]
    Ahead {
        /// The target.
        location: String,
        /// The mirrored size.
        mirrored: u64,
        /// The log's size.
        size: u64,
    },
    /// A background task failed.
    #[error("a mirror task failed: {0}")]
    Task(String),
}

/// The tiles (hash tiles of every level, and entry bundles) of tree size `new` that tree
/// size `old` did not hold whole, at their width in `new`, in level order.
pub fn tiles_between(old: u64, new: u64) -> Vec<TileId> {
    let mut tiles = Vec::new();
    for level in 0..LEVELS {
        let shift = 8 * u32::from(level);
        let (old_nodes, new_nodes) = (old >> shift, new >> shift);
        if new_nodes == 0 || new_nodes <= old_nodes {
            continue;
        }
        // The first tile that grew is the one holding node `old_nodes`.
        let mut index = old_nodes / 256;
        while let Some(width) = hash_tile_width(level, index, new) {
            if let Ok(tile) = TileId::hash(level, index, width) {
                tiles.push(tile);
            }
            if level == 0
                && let Ok(bundle) = TileId::entries(index, width)
            {
                tiles.push(bundle);
            }
            index += 1;
        }
    }
    tiles
}

/// Runs the mirror until `stop` turns true, then mirrors the last published checkpoint once
/// more and returns.
pub(crate) async fn run(
    ledger: Arc<Ledger>,
    mut published: watch::Receiver<Option<Published>>,
    objects: Objects,
    mut stop: watch::Receiver<bool>,
) {
    let mut mirrored = match mirrored_size(&ledger, &objects).await {
        Ok(size) => size,
        Err(e) => {
            tracing::error!(error = %e, "the mirror is stopped");
            return;
        }
    };
    metrics::gauge!("veritrail_mirror_size").set(mirrored as f64);
    tracing::info!(
        location = objects.location(),
        size = mirrored,
        "mirroring the log"
    );
    loop {
        let latest = published.borrow_and_update().clone();
        if let Some(latest) = latest.filter(|p| p.size() > mirrored || mirrored == 0) {
            let started = Instant::now();
            match mirror_round(&ledger, &objects, mirrored, &latest).await {
                Ok(objects_written) => {
                    mirrored = latest.size();
                    metrics::gauge!("veritrail_mirror_size").set(mirrored as f64);
                    metrics::counter!("veritrail_mirror_objects_total").increment(objects_written);
                    metrics::histogram!("veritrail_mirror_round_seconds")
                        .record(started.elapsed().as_secs_f64());
                }
                Err(e) => {
                    metrics::counter!("veritrail_mirror_failures_total").increment(1);
                    tracing::warn!(error = %e, size = latest.size(), "mirror round failed; retrying");
                    if *stop.borrow() {
                        return;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(RETRY) => {}
                        _ = stop.changed() => {}
                    }
                    continue;
                }
            }
        }
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            changed = published.changed() => if changed.is_err() { return },
            _ = stop.changed() => {}
        }
    }
}

/// The size of the checkpoint already in the target (0 if none), checked to be this log's
/// and not ahead of it.
async fn mirrored_size(ledger: &Ledger, objects: &Objects) -> Result<u64, MirrorError> {
    let Some(note) = objects.get("checkpoint").await? else {
        return Ok(0);
    };
    let foreign = |reason: String| MirrorError::Foreign {
        location: objects.location().to_owned(),
        reason,
    };
    let (checkpoint, _) = Checkpoint::verify_signed(&note, ledger.origin(), ledger.verifier())
        .map_err(|e| foreign(e.to_string()))?;
    let size = ledger.tree_head().size;
    if checkpoint.tree.size > size {
        return Err(MirrorError::Ahead {
            location: objects.location().to_owned(),
            mirrored: checkpoint.tree.size,
            size,
        });
    }
    let root = ledger
        .root_at(checkpoint.tree.size)
        .map_err(|source| MirrorError::Read {
            path: "checkpoint".into(),
            source,
        })?;
    if root != checkpoint.tree.root {
        return Err(foreign(format!(
            "its root at size {} is not this log's",
            checkpoint.tree.size
        )));
    }
    Ok(checkpoint.tree.size)
}

/// Writes the tiles `published` has beyond `mirrored`, then its checkpoint. Returns the
/// number of objects written.
async fn mirror_round(
    ledger: &Arc<Ledger>,
    objects: &Objects,
    mirrored: u64,
    published: &Published,
) -> Result<u64, MirrorError> {
    let tiles = tiles_between(mirrored, published.size());
    let count = tiles.len() as u64;
    let mut tasks = JoinSet::new();
    for tile in tiles {
        while tasks.len() >= CONCURRENCY {
            join_one(&mut tasks).await?;
        }
        let (ledger, objects) = (ledger.clone(), objects.clone());
        tasks.spawn(async move {
            let path = tile.path();
            let read = tokio::task::spawn_blocking(move || ledger.read_tile(&tile))
                .await
                .map_err(|e| MirrorError::Task(e.to_string()))?;
            let bytes = read.map_err(|source| MirrorError::Read {
                path: path.clone(),
                source,
            })?;
            objects
                .put(&path, Bytes::from(bytes), &Meta::IMMUTABLE)
                .await?;
            Ok::<(), MirrorError>(())
        });
    }
    while !tasks.is_empty() {
        join_one(&mut tasks).await?;
    }
    // Last: the checkpoint, once every tile it needs is written.
    let note = Bytes::from(published.checkpoint.note.clone());
    objects.put("checkpoint", note, &CHECKPOINT_META).await?;
    Ok(count + 1)
}

async fn join_one(tasks: &mut JoinSet<Result<(), MirrorError>>) -> Result<(), MirrorError> {
    match tasks.join_next().await {
        Some(Ok(result)) => result,
        Some(Err(e)) => Err(MirrorError::Task(e.to_string())),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    fn paths(old: u64, new: u64) -> Vec<String> {
        tiles_between(old, new).iter().map(TileId::path).collect()
    }

    #[test]
    fn a_small_tree_has_one_partial_tile_and_bundle() {
        assert_eq!(paths(0, 3), ["tile/0/000.p/3", "tile/entries/000.p/3"]);
        assert_eq!(paths(3, 5), ["tile/0/000.p/5", "tile/entries/000.p/5"]);
        assert!(paths(5, 5).is_empty());
        assert!(paths(0, 0).is_empty());
    }

    #[test]
    fn a_full_tile_is_written_once_and_levels_above_follow() {
        assert_eq!(
            paths(255, 257),
            [
                "tile/0/000",
                "tile/entries/000",
                "tile/0/001.p/1",
                "tile/entries/001.p/1",
                "tile/1/000.p/1"
            ]
        );
        // Nothing already whole at 257 is written again at 600.
        assert_eq!(
            paths(257, 600),
            [
                "tile/0/001",
                "tile/entries/001",
                "tile/0/002.p/88",
                "tile/entries/002.p/88",
                "tile/1/000.p/2"
            ]
        );
    }

    #[test]
    fn every_tile_of_the_new_tree_is_written_or_was_whole_before() {
        // For random pairs of sizes, the union over a chain of rounds is every tile of the
        // final tree, each at its final width.
        let sizes = [0u64, 1, 255, 256, 70_000, 70_001, 65_536 * 3 + 17];
        for window in sizes.windows(2) {
            let (old, new) = (window[0], window[1]);
            let written = tiles_between(old, new);
            for level in 0..LEVELS {
                let mut index = 0;
                while let Some(width) = hash_tile_width(level, index, new) {
                    let was_whole = hash_tile_width(level, index, old) == Some(width);
                    let id = TileId::hash(level, index, width).unwrap();
                    assert_eq!(
                        written.contains(&id),
                        !was_whole,
                        "{old}->{new}: {}",
                        id.path()
                    );
                    index += 1;
                }
            }
        }
    }
}
