//! C2SP tlog-tiles v0.1.0: tile paths, tile geometry and entry bundles through the public
//! API, on the spec's own example index (1234067 -> `x001/x234/067`).

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use veritrail_ledger::bundle::{
    BUNDLE_ENTRIES, BundleError, MAX_ENTRY_SIZE, decode_bundle, encode_bundle, iter_bundle,
};
use veritrail_ledger::tile::{
    MAX_TILE_LEVEL, TILE_HEIGHT, TILE_WIDTH, TileError, TileId, TileKind, encode_index,
    entry_bundle_width, hash_tile_width, parse_index,
};

#[test]
fn spec_constants() {
    assert_eq!(TILE_HEIGHT, 8);
    assert_eq!(TILE_WIDTH, 256);
    assert_eq!(MAX_TILE_LEVEL, 63);
    assert_eq!(BUNDLE_ENTRIES, 256);
    assert_eq!(MAX_ENTRY_SIZE, 65535);
}

#[test]
fn c2sp_index_encoding() {
    assert_eq!(encode_index(1234067), "x001/x234/067");
    assert_eq!(encode_index(5), "005");
    assert_eq!(parse_index("x001/x234/067"), Ok(1234067));
    assert_eq!(parse_index("005"), Ok(5));
    assert_eq!(
        parse_index("5"),
        Err(TileError::MalformedIndex { element: 0 })
    );
}

/// The tiles a client fetches for a tree whose last entry bundle is the spec's example
/// index with 5 entries: every level's rightmost tile is partial.
#[test]
fn tiles_of_a_tree_on_the_spec_example() {
    let tree_size = 1234067 * 256 + 5;
    let want = [
        (0, 1234067, 5, "tile/0/x001/x234/067.p/5"),
        (1, 4820, 147, "tile/1/x004/820.p/147"),
        (2, 18, 212, "tile/2/018.p/212"),
        (3, 0, 18, "tile/3/000.p/18"),
    ];
    for (level, index, width, path) in want {
        assert_eq!(
            hash_tile_width(level, index, tree_size),
            Some(width),
            "level {level}"
        );
        assert_eq!(
            hash_tile_width(level, index + 1, tree_size),
            None,
            "level {level}"
        );
        if index > 0 {
            assert_eq!(
                hash_tile_width(level, index - 1, tree_size),
                Some(256),
                "level {level}"
            );
        }
        let tile = TileId::hash(level, index, width).unwrap();
        assert_eq!(tile.path(), path);
        assert_eq!(TileId::from_path(path), Ok(tile));
    }
    assert_eq!(hash_tile_width(4, 0, tree_size), None);

    assert_eq!(entry_bundle_width(1234067, tree_size), Some(5));
    let bundle = TileId::entries(1234067, 5).unwrap();
    assert_eq!(bundle.path(), "tile/entries/x001/x234/067.p/5");
    assert_eq!(
        TileId::from_path("tile/entries/x001/x234/067.p/5"),
        Ok(bundle)
    );
    assert_eq!(bundle.kind(), TileKind::Entries);

    // Once the tile fills up the same coordinates get the full, immutable path.
    let full = TileId::entries(1234067, 256).unwrap();
    assert!(full.is_full());
    assert_eq!(full.path(), "tile/entries/x001/x234/067");
    assert_eq!(
        TileId::from_path("tile/entries/x001/x234/067.p/256"),
        Err(TileError::WidthOutOfRange { width: 256 })
    );
    assert_eq!(
        TileId::from_path("tile/0/x001/x234/067.p/05"),
        Err(TileError::NonCanonicalWidth)
    );
    assert_eq!(
        TileId::from_path("tile/64/000"),
        Err(TileError::LevelOutOfRange { level: 64 })
    );
}

#[test]
fn entry_bundle_round_trip_and_limits() {
    let entries: Vec<Vec<u8>> = (0..5u8)
        .map(|i| format!("audit record {i}").into_bytes())
        .collect();
    let bytes = encode_bundle(entries.iter().map(Vec::as_slice)).unwrap();
    assert_eq!(&bytes[..16], b"\x00\x0eaudit record 0");

    let width = usize::from(entry_bundle_width(1234067, 1234067 * 256 + 5).unwrap());
    let decoded = decode_bundle(&bytes, width).unwrap();
    assert_eq!(decoded.len(), width);
    assert!(
        decoded
            .iter()
            .zip(&entries)
            .all(|(d, e)| *d == e.as_slice())
    );
    assert_eq!(iter_bundle(&bytes).count(), 5);

    assert_eq!(
        decode_bundle(&bytes, 4),
        Err(BundleError::TooManyEntries { max: 4 })
    );
    assert_eq!(
        decode_bundle(&bytes[..bytes.len() - 1], width),
        Err(BundleError::TruncatedEntry {
            offset: bytes.len() - 14,
            len: 14,
            available: 13
        })
    );
    let too_big = vec![0u8; MAX_ENTRY_SIZE + 1];
    assert_eq!(
        encode_bundle([too_big.as_slice()]),
        Err(BundleError::EntryTooLarge {
            len: MAX_ENTRY_SIZE + 1
        })
    );
}
