//! C2SP tlog-tiles v0.1.0 tile paths and tile geometry.
//!
//! The static read path of a log serves the Merkle tree as *tiles* of hashes and the leaf
//! data as *entry bundles* ([C2SP tlog-tiles], sections "Merkle Tree" and "Log Entries"):
//!
//! - `tile/<L>/<N>[.p/<W>]`: the hash tile at level `L` (0..=63) and index `N`. A full tile
//!   holds 256 hashes, the nodes at height `8 * L` of the tree numbered `256 * N` to
//!   `256 * N + 255`; a partial tile (`.p/W`, W in 1..=255) holds only the first `W`;
//! - `tile/entries/<N>[.p/<W>]`: the entry bundle of leaves `256 * N` to `256 * N + 255`
//!   (see [`crate::bundle`] for its contents).
//!
//! `N` is written in decimal in groups of three digits, every group but the last prefixed
//! with `x`: 1234067 is `x001/x234/067` and 5 is `005`. `L` and `W` are plain decimals.
//!
//! Parsing is canonical: [`TileId::from_path`] accepts exactly the strings that
//! [`TileId::path`] produces, so a path maps to one tile and a tile to one path (no leading
//! zero groups, no `+`, no `.p/256` for a full tile, no trailing data).
//!
//! This module has no I/O.
//!
//! [C2SP tlog-tiles]: https://github.com/C2SP/C2SP/blob/tlog-tiles/v0.1.0/tlog-tiles.md
//!
//! # Example
//!
//! ```
//! use veritrail_ledger::tile::{TileId, hash_tile_width};
//!
//! let tile = TileId::hash(0, 1234067, 5)?;
//! assert_eq!(tile.path(), "tile/0/x001/x234/067.p/5");
//! assert_eq!(TileId::from_path("tile/0/x001/x234/067.p/5")?, tile);
//!
//! // In a tree of 1000 leaves, level-0 tile 3 holds leaves 768..1000: 232 hashes.
//! assert_eq!(hash_tile_width(0, 3, 1000), Some(232));
//! # Ok::<(), veritrail_ledger::tile::TileError>(())
//! ```

use crate::ascii::{DecimalError, parse_decimal};
use core::fmt;

/// Height of a tile in tree levels: a full tile is a subtree of height 8.
pub const TILE_HEIGHT: u8 = 8;

/// Number of hashes in a full tile (and entries in a full bundle): `2^TILE_HEIGHT`.
pub const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;

/// The highest tile level a path may name, per tlog-tiles (`L` is 0 to 63).
///
/// With tiles of height 8 and `u64` tree sizes only levels 0 to 7 can ever hold a hash; the
/// path syntax allows up to 63 and [`hash_tile_width`] reports the rest as not existing.
pub const MAX_TILE_LEVEL: u8 = 63;

/// Width of a full tile as stored in [`TileId`].
const FULL_WIDTH: u16 = 256;

/// Why a tile path or tile coordinate was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TileError {
    /// The path does not start with `tile/` followed by a level (or `entries`), a `/` and
    /// an index.
    #[error("not a tile path: want tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>]")]
    NotATilePath,
    /// The level is not a canonical decimal: empty, a non-digit (such as `+`), or a
    /// leading zero.
    #[error("tile level is not a canonical decimal")]
    NonCanonicalLevel,
    /// The level is above [`MAX_TILE_LEVEL`].
    #[error("tile level {level} is above {MAX_TILE_LEVEL}")]
    LevelOutOfRange {
        /// The level given (saturated at `u64::MAX` for longer decimals).
        level: u64,
    },
    /// A path element of the index is not `xDDD` (all but the last) or `DDD` (the last),
    /// with `D` an ASCII digit.
    #[error("tile index path element {element} is malformed")]
    MalformedIndex {
        /// Zero-based position of the bad element within the index.
        element: usize,
    },
    /// The index starts with an all-zero group (such as `x000/005`): not canonical.
    #[error("tile index has a leading zero group")]
    NonCanonicalIndex,
    /// The index does not fit in a `u64`.
    #[error("tile index does not fit in 64 bits")]
    IndexOverflow,
    /// The partial width after `.p/` is not a canonical decimal: empty, a non-digit, a
    /// leading zero, or trailing data.
    #[error("partial tile width is not a canonical decimal")]
    NonCanonicalWidth,
    /// The width is out of range: 1 to 255 after `.p/` in a path (a full tile has no
    /// suffix), 1 to 256 in a [`TileId`].
    #[error("tile width {width} is out of range")]
    WidthOutOfRange {
        /// The width given (saturated at `u64::MAX` for longer decimals).
        width: u64,
    },
}

/// What a tile holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TileKind {
    /// A hash tile at `level` (0 to [`MAX_TILE_LEVEL`]): tree nodes at height
    /// `level * TILE_HEIGHT`.
    Hash {
        /// The tile level.
        level: u8,
    },
    /// An entry bundle: leaf data.
    Entries,
}

/// A validated tile coordinate: kind, index and width (1 to 256, where 256 is a full tile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    kind: TileKind,
    index: u64,
    width: u16,
}

impl TileId {
    /// A tile of the given kind, index and width.
    ///
    /// # Errors
    ///
    /// [`TileError::LevelOutOfRange`] for a hash tile level above [`MAX_TILE_LEVEL`];
    /// [`TileError::WidthOutOfRange`] unless `1 <= width <= 256`.
    pub fn new(kind: TileKind, index: u64, width: u16) -> Result<Self, TileError> {
        if let TileKind::Hash { level } = kind
            && level > MAX_TILE_LEVEL
        {
            return Err(TileError::LevelOutOfRange {
                level: u64::from(level),
            });
        }
        if width == 0 || width > FULL_WIDTH {
            return Err(TileError::WidthOutOfRange {
                width: u64::from(width),
            });
        }
        Ok(TileId { kind, index, width })
    }

    /// The hash tile `(level, index)` of `width` hashes.
    ///
    /// # Errors
    ///
    /// As [`TileId::new`].
    pub fn hash(level: u8, index: u64, width: u16) -> Result<Self, TileError> {
        Self::new(TileKind::Hash { level }, index, width)
    }

    /// The entry bundle `index` of `width` entries.
    ///
    /// # Errors
    ///
    /// As [`TileId::new`].
    pub fn entries(index: u64, width: u16) -> Result<Self, TileError> {
        Self::new(TileKind::Entries, index, width)
    }

    /// What the tile holds.
    pub fn kind(&self) -> TileKind {
        self.kind
    }

    /// The tile index `N` within its level.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The number of hashes (or entries) in the tile: 1 to 256.
    pub fn width(&self) -> u16 {
        self.width
    }

    /// Whether the tile is full (256 hashes or entries). Full tiles never change once
    /// written; partial ones are superseded as the tree grows.
    pub fn is_full(&self) -> bool {
        self.width == FULL_WIDTH
    }

    /// The tile's path, such as `tile/0/x001/x234/067.p/5` or `tile/entries/005`.
    pub fn path(&self) -> String {
        let mut path = match self.kind {
            TileKind::Hash { level } => format!("tile/{level}/"),
            TileKind::Entries => String::from("tile/entries/"),
        };
        path.push_str(&encode_index(self.index));
        if !self.is_full() {
            path.push_str(&format!(".p/{}", self.width));
        }
        path
    }

    /// Parses a tile path, accepting exactly what [`TileId::path`] produces.
    ///
    /// # Errors
    ///
    /// - [`TileError::NotATilePath`] without the `tile/<L or entries>/` prefix;
    /// - [`TileError::NonCanonicalLevel`], [`TileError::LevelOutOfRange`] for a bad level;
    /// - [`TileError::MalformedIndex`], [`TileError::NonCanonicalIndex`],
    ///   [`TileError::IndexOverflow`] for a bad index (see [`parse_index`]);
    /// - [`TileError::NonCanonicalWidth`], [`TileError::WidthOutOfRange`] for a bad `.p/W`
    ///   suffix (W must be 1 to 255).
    pub fn from_path(path: &str) -> Result<Self, TileError> {
        let rest = path.strip_prefix("tile/").ok_or(TileError::NotATilePath)?;
        let (level, rest) = rest.split_once('/').ok_or(TileError::NotATilePath)?;
        let kind = if level == "entries" {
            TileKind::Entries
        } else {
            let level = parse_canonical_decimal(level).ok_or(TileError::NonCanonicalLevel)?;
            match u8::try_from(level) {
                Ok(level) if level <= MAX_TILE_LEVEL => TileKind::Hash { level },
                _ => return Err(TileError::LevelOutOfRange { level }),
            }
        };
        let (index, width) = match rest.split_once(".p/") {
            None => (rest, FULL_WIDTH),
            Some((index, width)) => {
                let width = parse_canonical_decimal(width).ok_or(TileError::NonCanonicalWidth)?;
                match u16::try_from(width) {
                    Ok(width) if (1..FULL_WIDTH).contains(&width) => (index, width),
                    _ => return Err(TileError::WidthOutOfRange { width }),
                }
            }
        };
        let index = parse_index(index)?;
        Self::new(kind, index, width)
    }
}

impl fmt::Display for TileId {
    /// The tile's path.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// Encodes a tile index as tlog-tiles path elements: three-digit groups, all but the last
/// prefixed with `x`. 1234067 is `x001/x234/067`, 5 is `005`, 0 is `000`.
pub fn encode_index(index: u64) -> String {
    let mut groups = Vec::with_capacity(7);
    let mut rest = index;
    loop {
        groups.push(rest % 1000);
        rest /= 1000;
        if rest == 0 {
            break;
        }
    }
    let mut out = String::with_capacity(groups.len() * 5);
    let mut remaining = groups.len();
    for group in groups.iter().rev() {
        remaining -= 1;
        if remaining > 0 {
            out.push_str(&format!("x{group:03}/"));
        } else {
            out.push_str(&format!("{group:03}"));
        }
    }
    out
}

/// Parses a tile index written by [`encode_index`], accepting only that canonical form.
///
/// # Errors
///
/// - [`TileError::MalformedIndex`] when an element is not `xDDD` (all but the last) or
///   `DDD` (the last), with `D` an ASCII digit;
/// - [`TileError::IndexOverflow`] when the value does not fit in a `u64`;
/// - [`TileError::NonCanonicalIndex`] when the first of several groups is `x000`.
pub fn parse_index(text: &str) -> Result<u64, TileError> {
    let mut elements = text.split('/').enumerate().peekable();
    let mut value: u64 = 0;
    let mut first_group_is_zero = false;
    let mut count = 0usize;
    while let Some((element, part)) = elements.next() {
        let is_last = elements.peek().is_none();
        let digits = if is_last {
            Some(part)
        } else {
            part.strip_prefix('x')
        };
        let group = digits
            .filter(|d| d.len() == 3 && d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse::<u64>().ok())
            .ok_or(TileError::MalformedIndex { element })?;
        if element == 0 {
            first_group_is_zero = group == 0;
        }
        value = value
            .checked_mul(1000)
            .and_then(|v| v.checked_add(group))
            .ok_or(TileError::IndexOverflow)?;
        count += 1;
    }
    if count > 1 && first_group_is_zero {
        return Err(TileError::NonCanonicalIndex);
    }
    Ok(value)
}

/// A canonical decimal (see [`parse_decimal`]), with a canonical number above `u64::MAX`
/// read as `u64::MAX` so the caller reports it as out of range; `None` if not canonical.
fn parse_canonical_decimal(text: &str) -> Option<u64> {
    match parse_decimal(text) {
        Ok(value) => Some(value),
        Err(DecimalError::Overflow) => Some(u64::MAX),
        Err(_) => None,
    }
}

/// The number of hashes the hash tile `(level, index)` holds in a tree of `tree_size`
/// leaves: `min(256, (tree_size >> (8 * level)) - 256 * index)`, or `None` when that tile
/// does not exist (yet) because it would be empty. Never overflows.
pub fn hash_tile_width(level: u8, index: u64, tree_size: u64) -> Option<u16> {
    if level > MAX_TILE_LEVEL {
        return None;
    }
    let shift = u32::from(level) * u32::from(TILE_HEIGHT);
    let nodes_at_level = tree_size.checked_shr(shift).unwrap_or(0);
    let first = index.checked_mul(TILE_WIDTH)?;
    let remaining = nodes_at_level.checked_sub(first).filter(|&r| r > 0)?;
    u16::try_from(remaining.min(TILE_WIDTH)).ok()
}

/// The number of entries the entry bundle `index` holds in a tree of `tree_size` leaves
/// (1 to 256), or `None` when the bundle does not exist (yet). Never overflows.
pub fn entry_bundle_width(index: u64, tree_size: u64) -> Option<u16> {
    hash_tile_width(0, index, tree_size)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn c2sp_examples() {
        assert_eq!(encode_index(1234067), "x001/x234/067");
        assert_eq!(encode_index(5), "005");
        assert_eq!(encode_index(0), "000");
        assert_eq!(encode_index(999), "999");
        assert_eq!(encode_index(1000), "x001/000");
        assert_eq!(encode_index(u64::MAX), "x018/x446/x744/x073/x709/x551/615");
        assert_eq!(parse_index("x001/x234/067"), Ok(1234067));
        assert_eq!(
            parse_index("x018/x446/x744/x073/x709/x551/615"),
            Ok(u64::MAX)
        );

        let t = TileId::hash(0, 1234067, 5).unwrap();
        assert_eq!(t.path(), "tile/0/x001/x234/067.p/5");
        assert_eq!(t.to_string(), t.path());
        assert!(!t.is_full());
        let e = TileId::entries(5, 256).unwrap();
        assert_eq!(e.path(), "tile/entries/005");
        assert!(e.is_full());
        assert_eq!(TileId::hash(63, 0, 256).unwrap().path(), "tile/63/000");
        assert_eq!(
            TileId::entries(1234067, 255).unwrap().path(),
            "tile/entries/x001/x234/067.p/255"
        );

        for p in [
            "tile/0/x001/x234/067.p/5",
            "tile/entries/005",
            "tile/63/000",
            "tile/1/000.p/1",
            "tile/entries/x018/x446/x744/x073/x709/x551/615.p/255",
        ] {
            assert_eq!(TileId::from_path(p).unwrap().path(), p);
        }
        assert_eq!(
            TileId::from_path("tile/entries/x001/000.p/7"),
            Ok(TileId {
                kind: TileKind::Entries,
                index: 1000,
                width: 7
            })
        );
    }

    #[test]
    fn constructor_rejections() {
        assert_eq!(
            TileId::hash(64, 0, 1),
            Err(TileError::LevelOutOfRange { level: 64 })
        );
        assert_eq!(
            TileId::hash(255, 0, 1),
            Err(TileError::LevelOutOfRange { level: 255 })
        );
        assert_eq!(
            TileId::hash(0, 0, 0),
            Err(TileError::WidthOutOfRange { width: 0 })
        );
        assert_eq!(
            TileId::entries(0, 257),
            Err(TileError::WidthOutOfRange { width: 257 })
        );
        assert_eq!(
            TileId::entries(0, u16::MAX),
            Err(TileError::WidthOutOfRange { width: 65535 })
        );
        let t = TileId::hash(2, 7, 256).unwrap();
        assert_eq!(
            (t.kind(), t.index(), t.width()),
            (TileKind::Hash { level: 2 }, 7, 256)
        );
    }

    #[test]
    fn path_rejections() {
        use TileError::*;
        let cases: &[(&str, TileError)] = &[
            // Prefix and structure.
            ("", NotATilePath),
            ("0/005", NotATilePath),
            ("/tile/0/005", NotATilePath),
            ("tiles/0/005", NotATilePath),
            ("Tile/0/005", NotATilePath),
            ("tile/0", NotATilePath),
            ("tile/entries", NotATilePath),
            ("tile/", NotATilePath),
            // Level.
            ("tile//005", NonCanonicalLevel),
            ("tile/00/005", NonCanonicalLevel),
            ("tile/01/005", NonCanonicalLevel),
            ("tile/+1/005", NonCanonicalLevel),
            ("tile/-0/005", NonCanonicalLevel),
            ("tile/ 1/005", NonCanonicalLevel),
            ("tile/1 /005", NonCanonicalLevel),
            ("tile/0x1/005", NonCanonicalLevel),
            ("tile/ENTRIES/005", NonCanonicalLevel),
            ("tile/data/005", NonCanonicalLevel),
            ("tile/64/005", LevelOutOfRange { level: 64 }),
            ("tile/255/005", LevelOutOfRange { level: 255 }),
            ("tile/256/005", LevelOutOfRange { level: 256 }),
            (
                "tile/99999999999999999999999/005",
                LevelOutOfRange { level: u64::MAX },
            ),
            // Index.
            ("tile/0/", MalformedIndex { element: 0 }),
            ("tile/0/5", MalformedIndex { element: 0 }),
            ("tile/0/05", MalformedIndex { element: 0 }),
            ("tile/0/0005", MalformedIndex { element: 0 }),
            ("tile/0/+05", MalformedIndex { element: 0 }),
            ("tile/0/-05", MalformedIndex { element: 0 }),
            ("tile/0/ 05", MalformedIndex { element: 0 }),
            ("tile/0/0a5", MalformedIndex { element: 0 }),
            ("tile/0/x005", MalformedIndex { element: 0 }),
            ("tile/0/001/234", MalformedIndex { element: 0 }),
            ("tile/0/X001/234", MalformedIndex { element: 0 }),
            ("tile/0/x1234/067", MalformedIndex { element: 0 }),
            ("tile/0/x01/067", MalformedIndex { element: 0 }),
            ("tile/0/x001/x234/67", MalformedIndex { element: 2 }),
            ("tile/0/x001/x234/x067", MalformedIndex { element: 2 }),
            ("tile/0/x001//067", MalformedIndex { element: 1 }),
            ("tile/0/005/", MalformedIndex { element: 0 }),
            ("tile/0/x005/", MalformedIndex { element: 1 }),
            ("tile/0/005/extra", MalformedIndex { element: 0 }),
            ("tile/0/x005/extra", MalformedIndex { element: 1 }),
            ("tile/0/005\n", MalformedIndex { element: 0 }),
            ("tile/0/005.p", MalformedIndex { element: 0 }),
            ("tile/0/\u{0660}\u{0660}5", MalformedIndex { element: 0 }),
            ("tile/0/x000/005", NonCanonicalIndex),
            ("tile/0/x000/x001/005", NonCanonicalIndex),
            ("tile/entries/x000/000", NonCanonicalIndex),
            ("tile/0/x018/x446/x744/x073/x709/x551/616", IndexOverflow),
            ("tile/0/x019/x000/x000/x000/x000/x000/000", IndexOverflow),
            (
                "tile/0/x001/x018/x446/x744/x073/x709/x551/615",
                IndexOverflow,
            ),
            // Width.
            ("tile/0/005.p/0", WidthOutOfRange { width: 0 }),
            ("tile/0/005.p/256", WidthOutOfRange { width: 256 }),
            ("tile/0/005.p/1000", WidthOutOfRange { width: 1000 }),
            (
                "tile/0/005.p/99999999999999999999999",
                WidthOutOfRange { width: u64::MAX },
            ),
            ("tile/0/005.p/", NonCanonicalWidth),
            ("tile/0/005.p/007", NonCanonicalWidth),
            ("tile/0/005.p/00", NonCanonicalWidth),
            ("tile/0/005.p/+5", NonCanonicalWidth),
            ("tile/0/005.p/5/", NonCanonicalWidth),
            ("tile/0/005.p/5 ", NonCanonicalWidth),
            ("tile/0/005.p/5.p/5", NonCanonicalWidth),
            ("tile/entries/005.p/x5", NonCanonicalWidth),
        ];
        let mut failures = Vec::new();
        for (path, want) in cases {
            let got = TileId::from_path(path);
            if got != Err(*want) {
                failures.push(format!("{path:?}: got {got:?}, want {want:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn geometry() {
        assert_eq!(hash_tile_width(0, 0, 0), None);
        assert_eq!(hash_tile_width(0, 0, 1), Some(1));
        assert_eq!(hash_tile_width(0, 0, 256), Some(256));
        assert_eq!(hash_tile_width(0, 1, 256), None);
        assert_eq!(hash_tile_width(0, 1, 257), Some(1));
        assert_eq!(hash_tile_width(1, 0, 255), None);
        assert_eq!(hash_tile_width(1, 0, 256), Some(1));
        assert_eq!(hash_tile_width(1, 0, 70_000), Some(256));
        assert_eq!(hash_tile_width(1, 1, 70_000), Some(273 - 256));
        assert_eq!(hash_tile_width(1, 0, 65_536), Some(256));
        assert_eq!(hash_tile_width(7, 0, u64::MAX), Some(255));
        assert_eq!(hash_tile_width(8, 0, u64::MAX), None);
        assert_eq!(hash_tile_width(63, 0, u64::MAX), None);
        assert_eq!(hash_tile_width(64, 0, u64::MAX), None);
        assert_eq!(hash_tile_width(255, 0, u64::MAX), None);
        assert_eq!(hash_tile_width(0, u64::MAX, u64::MAX), None);
        assert_eq!(hash_tile_width(0, u64::MAX / 256, u64::MAX), Some(255));
        assert_eq!(entry_bundle_width(0, 0), None);
        assert_eq!(entry_bundle_width(3, 1000), Some(232));
        assert_eq!(entry_bundle_width(2, 1000), Some(256));
        assert_eq!(entry_bundle_width(4, 1000), None);
    }

    /// Counts, leaf by leaf, the complete subtrees of height `8 * level` among the 256
    /// positions of tile `index` (in u128, no shifts).
    fn naive_width(level: u8, index: u64, tree_size: u64) -> Option<u16> {
        if level >= 8 {
            return None; // 256^8 = 2^64 > any u64 tree size.
        }
        let span = 256u128.pow(u32::from(level));
        let count = (0..256u128)
            .filter(|k| (u128::from(index) * 256 + k + 1) * span <= u128::from(tree_size))
            .count();
        (count > 0).then(|| u16::try_from(count).unwrap())
    }

    fn any_tile() -> impl Strategy<Value = TileId> {
        (
            prop_oneof![
                (0..=MAX_TILE_LEVEL).prop_map(|level| TileKind::Hash { level }),
                Just(TileKind::Entries)
            ],
            any::<u64>(),
            1u16..=256,
        )
            .prop_map(|(kind, index, width)| TileId::new(kind, index, width).unwrap())
    }

    proptest! {
        #[test]
        fn index_round_trip(index in any::<u64>()) {
            let text = encode_index(index);
            prop_assert_eq!(parse_index(&text), Ok(index));
        }

        #[test]
        fn small_index_round_trip(index in 0u64..10_000_000) {
            prop_assert_eq!(parse_index(&encode_index(index)), Ok(index));
        }

        #[test]
        fn tile_round_trip(tile in any_tile()) {
            let path = tile.path();
            prop_assert_eq!(TileId::from_path(&path), Ok(tile));
            prop_assert_eq!(tile.is_full(), !path.contains(".p/"));
        }

        #[test]
        fn from_path_accepts_only_canonical_paths(
            path in "tile/(entries|[0-9+]{1,3})/(x[0-9]{3}/){0,7}[0-9x]{2,4}(\\.p/[0-9+]{1,4})?",
        ) {
            if let Ok(tile) = TileId::from_path(&path) {
                prop_assert_eq!(tile.path(), path);
            }
        }

        #[test]
        fn from_path_never_panics(
            path in ".{0,64}",
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            if let Ok(tile) = TileId::from_path(&path) {
                prop_assert_eq!(tile.path(), path);
            }
            let mut prefixed = b"tile/0/".to_vec();
            prefixed.extend_from_slice(&bytes);
            if let Ok(text) = core::str::from_utf8(&prefixed)
                && let Ok(tile) = TileId::from_path(text)
            {
                prop_assert_eq!(tile.path(), text);
            }
        }

        #[test]
        fn width_matches_naive_count(
            level in 0u8..=70,
            index in any::<u64>(),
            tree_size in any::<u64>(),
        ) {
            // Also near the right edge, where tiles are partial.
            let shift = u32::from(level.min(7)) * 8;
            let near = (tree_size >> shift) / 256 + index % 3;
            for i in [index, near, near.saturating_sub(1), index % 1000] {
                let got = hash_tile_width(level, i, tree_size);
                let want = naive_width(level, i, tree_size);
                prop_assert_eq!(got, want, "level {} index {}", level, i);
                if level == 0 {
                    prop_assert_eq!(entry_bundle_width(i, tree_size), got);
                }
            }
        }
    }
}
