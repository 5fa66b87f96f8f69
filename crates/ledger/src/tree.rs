//! Merkle tree math over C2SP hash tiles: roots, inclusion and consistency proofs, and the
//! compact range that integrates new leaves.
//!
//! The tree is never held in memory. Every hash comes from a [`HashTileReader`], which serves
//! the bottom rows of C2SP tiles (tlog-tiles v0.1.0): hash tile `(L, N)` holds the hashes of
//! tree level `8·L` with indices `256·N ..`, and a node at level `8·L + r` is recomputed from
//! the `2^r` tile hashes below it. A proof at any size therefore costs `O(log n)` tile reads
//! and at most `127` hash operations per level, whatever the size of the log.
//!
//! This module is pure (no I/O): the engine reads tiles from its store, the verifying client
//! from HTTP. Algorithms follow RFC 9162 section 2.1 (`MTH`, `PATH`, `SUBPROOF`).

use crate::hash::{Hash, TreeHead, node_hash};

use crate::tile::TILE_WIDTH;

/// Height of a C2SP tile (a subtree of height 8), as a shift amount.
const TILE_HEIGHT: u32 = crate::tile::TILE_HEIGHT as u32;

/// Errors from tree computations that are not the tile reader's own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError {
    /// A leaf index is not below the tree size.
    #[error("leaf index {index} is out of range for tree size {size}")]
    IndexOutOfRange {
        /// The requested leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A consistency proof was asked between sizes that are not `0 < old <= new`.
    #[error("no consistency proof from size {old} to size {new}")]
    InvalidSizes {
        /// The old tree size.
        old: u64,
        /// The new tree size.
        new: u64,
    },
    /// A tile reader returned fewer hashes than the tree size requires.
    #[error("hash tile {level}/{index} holds {got} hashes, {want} are needed")]
    ShortTile {
        /// Tile level.
        level: u8,
        /// Tile index.
        index: u64,
        /// Hashes returned.
        got: usize,
        /// Hashes needed.
        want: usize,
    },
}

/// Reads the hashes of C2SP hash tiles.
///
/// `E` is the reader's error type; it must be able to carry a [`TreeError`].
pub trait HashTileReader {
    /// The error type of reads.
    type Error: From<TreeError>;

    /// Returns at least `width` hashes of hash tile `(level, index)` (a longer result is fine:
    /// the caller uses the first `width`). `width` is in `1..=256`.
    ///
    /// # Errors
    /// Whatever the underlying storage or transport returns, or [`TreeError::ShortTile`].
    fn read_hash_tile(&self, level: u8, index: u64, width: u16) -> Result<Vec<Hash>, Self::Error>;
}

/// Largest power of two strictly less than `n` (`n >= 2`).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// Hash of the perfect subtree of height `level` whose leftmost leaf is `index << level`.
///
/// # Errors
/// A read error, or [`TreeError::ShortTile`] if the reader's tile is too short.
pub fn subtree_hash<R: HashTileReader>(
    reader: &R,
    level: u32,
    index: u64,
) -> Result<Hash, R::Error> {
    let tile_level = level / TILE_HEIGHT;
    let height = level % TILE_HEIGHT;
    let count = 1u64 << height;
    // Position of the subtree's first hash in row `8 * tile_level`.
    let first = index.checked_mul(count).ok_or(TreeError::IndexOutOfRange {
        index,
        size: u64::MAX,
    })?;
    let tile_index = first / TILE_WIDTH;
    let offset = first % TILE_WIDTH;
    let want = offset + count;
    // Tile levels are at most 63 / 8 = 7, and `want` is at most 256: both casts are exact.
    let level_u8 = u8::try_from(tile_level).unwrap_or(u8::MAX);
    let width = u16::try_from(want).unwrap_or(u16::MAX);
    let hashes = reader.read_hash_tile(level_u8, tile_index, width)?;
    let short = || TreeError::ShortTile {
        level: level_u8,
        index: tile_index,
        got: hashes.len(),
        want: want as usize,
    };
    let row = hashes
        .get(offset as usize..want as usize)
        .ok_or_else(short)?;
    Ok(perfect_subtree_root(row).ok_or_else(short)?)
}

/// The root of the perfect subtree whose bottom row is `row` (a power-of-two number of
/// hashes, e.g. a full tile), or `None` if `row` is empty or not a power of two long.
pub fn perfect_subtree_root(row: &[Hash]) -> Option<Hash> {
    if !row.len().is_power_of_two() {
        return None;
    }
    let mut level = row.to_vec();
    while level.len() > 1 {
        level = level
            .chunks_exact(2)
            .filter_map(|pair| match pair {
                [l, r] => Some(node_hash(l, r)),
                _ => None,
            })
            .collect();
    }
    level.first().copied()
}

/// `MTH(D[start..end])`: the hash of the leaves in `start..end`, where `start` is a multiple
/// of the largest power of two not above `end - start` (true for every range RFC 9162
/// proofs visit when they start from 0).
fn range_hash<R: HashTileReader>(reader: &R, start: u64, end: u64) -> Result<Hash, R::Error> {
    let n = end - start;
    if n == 0 {
        return Ok(Hash::empty_root());
    }
    if n.is_power_of_two() && start.is_multiple_of(n) {
        let level = n.trailing_zeros();
        return subtree_hash(reader, level, start >> level);
    }
    let k = split_point(n);
    let left = range_hash(reader, start, start + k)?;
    let right = range_hash(reader, start + k, end)?;
    Ok(node_hash(&left, &right))
}

/// The root hash of the tree of `size` leaves.
///
/// # Errors
/// A read error from `reader`.
pub fn root<R: HashTileReader>(reader: &R, size: u64) -> Result<Hash, R::Error> {
    range_hash(reader, 0, size)
}

/// The RFC 9162 inclusion proof (audit path, leaf's sibling first) for leaf `index` in the
/// tree of `size` leaves.
///
/// # Errors
/// [`TreeError::IndexOutOfRange`] unless `index < size`; a read error from `reader`.
pub fn inclusion_proof<R: HashTileReader>(
    reader: &R,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, R::Error> {
    if index >= size {
        return Err(TreeError::IndexOutOfRange { index, size }.into());
    }
    // PATH(m, D[start..start+n]), unrolled top-down; the proof lists hashes bottom-up.
    let mut proof = Vec::new();
    let (mut m, mut start, mut n) = (index, 0u64, size);
    while n > 1 {
        let k = split_point(n);
        if m < k {
            proof.push(range_hash(reader, start + k, start + n)?);
            n = k;
        } else {
            proof.push(range_hash(reader, start, start + k)?);
            m -= k;
            start += k;
            n -= k;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// The RFC 9162 consistency proof from the tree of `old` leaves to the tree of `new` leaves.
///
/// The proof is empty when `old == new`.
///
/// # Errors
/// [`TreeError::InvalidSizes`] unless `0 < old <= new`; a read error from `reader`.
pub fn consistency_proof<R: HashTileReader>(
    reader: &R,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, R::Error> {
    if old == 0 || old > new {
        return Err(TreeError::InvalidSizes { old, new }.into());
    }
    // SUBPROOF(m, D[start..start+n], b), unrolled top-down.
    let mut proof = Vec::new();
    let (mut m, mut start, mut n, mut complete) = (old, 0u64, new, true);
    while m != n {
        let k = split_point(n);
        if m <= k {
            proof.push(range_hash(reader, start + k, start + n)?);
            n = k;
        } else {
            proof.push(range_hash(reader, start, start + k)?);
            m -= k;
            start += k;
            n -= k;
            complete = false;
        }
    }
    if !complete {
        proof.push(range_hash(reader, start, start + n)?);
    }
    proof.reverse();
    Ok(proof)
}

/// The right edge of a Merkle tree: the roots of the perfect subtrees that make up a tree of
/// `size` leaves, largest first (one per set bit of `size`). Appending a leaf merges equal
/// subtrees; the root folds them right to left. Memory is `O(log size)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    nodes: Vec<Hash>,
}

impl CompactRange {
    /// The compact range of the empty tree.
    pub fn new() -> Self {
        CompactRange {
            size: 0,
            nodes: Vec::new(),
        }
    }

    /// Rebuilds the compact range of the tree of `size` leaves from hash tiles.
    ///
    /// # Errors
    /// A read error from `reader`.
    pub fn from_tiles<R: HashTileReader>(reader: &R, size: u64) -> Result<Self, R::Error> {
        let mut nodes = Vec::with_capacity(size.count_ones() as usize);
        let mut start = 0u64;
        for level in (0..64u32).rev() {
            if size & (1 << level) != 0 {
                nodes.push(subtree_hash(reader, level, start >> level)?);
                start += 1 << level;
            }
        }
        Ok(CompactRange { size, nodes })
    }

    /// Number of leaves covered.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash. `on_node(level, index, hash)` is called for the leaf (level 0) and
    /// for every perfect subtree the append completes, bottom-up.
    pub fn append(&mut self, leaf_hash: Hash, mut on_node: impl FnMut(u32, u64, &Hash)) {
        on_node(0, self.size, &leaf_hash);
        let mut hash = leaf_hash;
        let mut level = 0u32;
        // Each trailing one bit of the old size is a subtree of equal height to merge with.
        while self.size & (1 << level) != 0 {
            // The set bit guarantees a node at the end of `nodes`.
            let Some(left) = self.nodes.pop() else { break };
            hash = node_hash(&left, &hash);
            level += 1;
            on_node(level, self.size >> level, &hash);
        }
        self.nodes.push(hash);
        self.size += 1;
    }

    /// The root hash of the tree this range covers.
    pub fn root(&self) -> Hash {
        let mut iter = self.nodes.iter().rev();
        match iter.next() {
            None => Hash::empty_root(),
            Some(last) => iter.fold(*last, |acc, left| node_hash(left, &acc)),
        }
    }

    /// The tree head (size and root) this range covers.
    pub fn tree_head(&self) -> TreeHead {
        TreeHead::new(self.size, self.root())
    }
}

impl Default for CompactRange {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use std::collections::BTreeMap;

    /// Tiles built from a flat list of leaves through `CompactRange::append`, exactly as the
    /// engine builds them.
    struct MemTiles {
        rows: BTreeMap<u8, Vec<Hash>>,
    }

    impl MemTiles {
        fn build(n: u64) -> (Self, CompactRange, Vec<Hash>) {
            let mut rows: BTreeMap<u8, Vec<Hash>> = BTreeMap::new();
            let mut range = CompactRange::new();
            let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect();
            for leaf in &leaves {
                range.append(*leaf, |level, index, hash| {
                    if level % 8 == 0 {
                        let row = rows.entry((level / 8) as u8).or_default();
                        assert_eq!(row.len() as u64, index);
                        row.push(*hash);
                    }
                });
            }
            (MemTiles { rows }, range, leaves)
        }
    }

    impl HashTileReader for MemTiles {
        type Error = TreeError;
        fn read_hash_tile(
            &self,
            level: u8,
            index: u64,
            width: u16,
        ) -> Result<Vec<Hash>, TreeError> {
            let row = self.rows.get(&level).map(Vec::as_slice).unwrap_or(&[]);
            let start = (index * 256) as usize;
            let got = row.get(start..).map(|r| r.len().min(256)).unwrap_or(0);
            if got < width as usize {
                return Err(TreeError::ShortTile {
                    level,
                    index,
                    got,
                    want: width as usize,
                });
            }
            Ok(row[start..start + got].to_vec())
        }
    }

    /// RFC 9162 MTH, naive and recursive.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => Hash::empty_root(),
            1 => leaves[0],
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        let n = leaves.len();
        if n <= 1 {
            return vec![];
        }
        let k = split_point(n as u64) as usize;
        if m < k {
            let mut p = path(m, &leaves[..k]);
            p.push(mth(&leaves[k..]));
            p
        } else {
            let mut p = path(m - k, &leaves[k..]);
            p.push(mth(&leaves[..k]));
            p
        }
    }

    fn subproof(m: usize, leaves: &[Hash], b: bool) -> Vec<Hash> {
        let n = leaves.len();
        if m == n {
            return if b { vec![] } else { vec![mth(leaves)] };
        }
        let k = split_point(n as u64) as usize;
        if m <= k {
            let mut p = subproof(m, &leaves[..k], b);
            p.push(mth(&leaves[k..]));
            p
        } else {
            let mut p = subproof(m - k, &leaves[k..], false);
            p.push(mth(&leaves[..k]));
            p
        }
    }

    #[test]
    fn split_point_is_largest_power_below() {
        assert_eq!(split_point(2), 1);
        assert_eq!(split_point(3), 2);
        assert_eq!(split_point(4), 2);
        assert_eq!(split_point(5), 4);
        assert_eq!(split_point(u64::MAX), 1 << 63);
    }

    #[test]
    fn roots_and_proofs_match_the_naive_reference() {
        let (tiles, _, leaves) = MemTiles::build(600);
        for size in [1u64, 2, 3, 7, 8, 255, 256, 257, 511, 512, 513, 600] {
            let l = &leaves[..size as usize];
            assert_eq!(root(&tiles, size).unwrap(), mth(l), "root at {size}");
            for index in [0, size / 3, size / 2, size - 1] {
                assert_eq!(
                    inclusion_proof(&tiles, index, size).unwrap(),
                    path(index as usize, l),
                    "inclusion {index} at {size}"
                );
            }
            for old in [1, size / 2, size - 1, size] {
                if old == 0 {
                    continue;
                }
                assert_eq!(
                    consistency_proof(&tiles, old, size).unwrap(),
                    subproof(old as usize, l, true),
                    "consistency {old} -> {size}"
                );
            }
        }
    }

    #[test]
    fn compact_range_tracks_root_and_rebuilds_from_tiles() {
        let (tiles, range, leaves) = MemTiles::build(70_000);
        assert_eq!(range.root(), mth(&leaves));
        for size in [0u64, 1, 255, 256, 65_535, 65_536, 65_537, 70_000] {
            let rebuilt = CompactRange::from_tiles(&tiles, size).unwrap();
            assert_eq!(rebuilt.root(), mth(&leaves[..size as usize]), "size {size}");
        }
    }

    #[test]
    fn empty_tree_root_and_invalid_requests() {
        let (tiles, range, _) = MemTiles::build(0);
        assert_eq!(range.root(), Hash::empty_root());
        assert_eq!(root(&tiles, 0).unwrap(), Hash::empty_root());
        assert_eq!(
            inclusion_proof(&tiles, 0, 0),
            Err(TreeError::IndexOutOfRange { index: 0, size: 0 })
        );
        assert_eq!(
            consistency_proof(&tiles, 0, 0),
            Err(TreeError::InvalidSizes { old: 0, new: 0 })
        );
        assert_eq!(
            consistency_proof(&tiles, 3, 2),
            Err(TreeError::InvalidSizes { old: 3, new: 2 })
        );
    }

    #[test]
    fn short_tiles_are_reported_not_panicked() {
        let (tiles, _, _) = MemTiles::build(10);
        assert!(matches!(
            root(&tiles, 11),
            Err(TreeError::ShortTile {
                level: 0,
                index: 0,
                ..
            })
        ));
        assert!(matches!(
            inclusion_proof(&tiles, 3, 300),
            Err(TreeError::ShortTile { .. })
        ));
    }
}
