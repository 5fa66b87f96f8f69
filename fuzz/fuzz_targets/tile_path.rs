//! Tile paths (tlog-tiles v0.1.0): `TileId::from_path`, `tile::parse_index` (parsers) and the
//! tile geometry `hash_tile_width` / `entry_bundle_width`.
//!
//! Asserts:
//! - whatever `from_path` accepts prints back (`path`, `Display`) to the identical string,
//!   is a valid `TileId::new`, and is full exactly when it has no `.p/` suffix;
//! - whatever `parse_index` accepts is printed back identically by `encode_index`;
//! - a tile built from fuzzed (kind, level, index, width) is accepted by `TileId::new`
//!   exactly when level <= 63 and 1 <= width <= 256, and its path parses back to it;
//! - `hash_tile_width` equals `min(256, (size >> 8L) - 256 N)` computed in 128-bit arithmetic.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use veritrail_fuzz::edgy_u64;
use veritrail_ledger::tile::{
    MAX_TILE_LEVEL, TileError, TileId, TileKind, encode_index, entry_bundle_width, hash_tile_width,
    parse_index,
};

fn check_path(text: &str) {
    if let Ok(tile) = TileId::from_path(text) {
        assert_eq!(tile.path(), text, "re-encoding differs");
        assert_eq!(tile.to_string(), text);
        assert_eq!(
            TileId::new(tile.kind(), tile.index(), tile.width()),
            Ok(tile)
        );
        assert_eq!(tile.is_full(), !text.contains(".p/"));
        assert!((1..=256).contains(&tile.width()));
    }
    if let Ok(index) = parse_index(text) {
        assert_eq!(encode_index(index), text, "index re-encoding differs");
    }
}

fn naive_width(level: u8, index: u64, size: u64) -> Option<u16> {
    let nodes = if level > 7 {
        0
    } else {
        u128::from(size >> (8 * u32::from(level)))
    };
    let first = u128::from(index) * 256;
    (nodes > first).then(|| (nodes - first).min(256) as u16)
}

fn structured(u: &mut Unstructured<'_>) -> Result<()> {
    let level: u8 = if u.arbitrary()? {
        u.int_in_range(0..=8)?
    } else {
        u.arbitrary()?
    };
    let kind = if u.arbitrary()? {
        TileKind::Entries
    } else {
        TileKind::Hash { level }
    };
    let index = edgy_u64(u)?;
    let width: u16 = if u.arbitrary()? {
        u.int_in_range(0..=257)?
    } else {
        u.arbitrary()?
    };
    match TileId::new(kind, index, width) {
        Ok(tile) => {
            assert!(matches!(kind, TileKind::Entries) || level <= MAX_TILE_LEVEL);
            assert!((1..=256).contains(&width));
            assert_eq!(
                (tile.kind(), tile.index(), tile.width()),
                (kind, index, width)
            );
            assert_eq!(TileId::from_path(&tile.path()), Ok(tile));
            assert_eq!(parse_index(&encode_index(index)), Ok(index));
        }
        Err(TileError::LevelOutOfRange { level: got }) => {
            assert_eq!(kind, TileKind::Hash { level });
            assert!(level > MAX_TILE_LEVEL);
            assert_eq!(got, u64::from(level));
        }
        Err(TileError::WidthOutOfRange { width: got }) => {
            assert!(width == 0 || width > 256);
            assert_eq!(got, u64::from(width));
        }
        Err(other) => panic!("unexpected {other:?}"),
    }

    let size = edgy_u64(u)?;
    let tile_index = if u.arbitrary()? {
        // Near the right edge of the level, where tiles are partial.
        let shift = 8 * u32::from(level.min(7));
        ((size >> shift) / 256 + u.int_in_range(0..=2)?).saturating_sub(1)
    } else {
        edgy_u64(u)?
    };
    let got = hash_tile_width(level, tile_index, size);
    assert_eq!(got, naive_width(level, tile_index, size));
    if level == 0 {
        assert_eq!(entry_bundle_width(tile_index, size), got);
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = core::str::from_utf8(data) {
        check_path(text);
        // Most inputs lack the prefix; try them as the part after it too.
        check_path(&format!("tile/{text}"));
        check_path(&format!("tile/0/{text}"));
        check_path(&format!("tile/entries/{text}"));
    }
    let _ = structured(&mut Unstructured::new(data));
});
