//! Verified reads: an entry forged in the entry log — same length, frame CRC recomputed, so
//! it passes every check of the file format — is refused by every read that would serve it,
//! the other entries still read, and the cache of verified bundles serves only bytes that
//! passed the check.

use std::path::Path;

use veritrail_ledger::store::Backend;
use veritrail_ledger::{Error, Ledger};

use crate::recovery::{patch, peek};
use crate::{entry, open};

const BACKENDS: [Backend; 2] = [Backend::Redb, Backend::Sled];
/// Bytes of a frame header: length word, CRC-32, first index, commit offset.
const FRAME_HEADER: u64 = 24;

/// Rewrites entry `index` in `<dir>/log/entries` as `forged` (same length as the original)
/// and recomputes its frame's CRC-32, as a deliberate forger would. Returns the original.
pub(crate) fn forge_entry(dir: &Path, index: u64, forged: &[u8]) -> Vec<u8> {
    let bundle = index / 256;
    let mut at = u64::from_be_bytes(peek(dir, "bundles", bundle * 8, 8).try_into().unwrap());
    loop {
        let header = peek(dir, "entries", at, FRAME_HEADER as usize);
        let word = u32::from_be_bytes(header[..4].try_into().unwrap());
        let first = u64::from_be_bytes(header[8..16].try_into().unwrap());
        let len = u64::from(word & !(1 << 31));
        let body_at = at + FRAME_HEADER;
        let mut body = peek(dir, "entries", body_at, len as usize);
        // Walk the frame's entries (u16 length, bytes) to the one wanted.
        let (mut pos, mut current) = (0usize, first);
        while pos < body.len() {
            let entry_len = usize::from(u16::from_be_bytes([body[pos], body[pos + 1]]));
            if current == index {
                let original = body[pos + 2..pos + 2 + entry_len].to_vec();
                assert_eq!(forged.len(), original.len(), "a forgery keeps the length");
                body[pos + 2..pos + 2 + entry_len].copy_from_slice(forged);
                let mut crc = crc32fast::Hasher::new();
                crc.update(&header[..4]);
                crc.update(&header[8..]);
                crc.update(&body);
                patch(dir, "entries", body_at, &body);
                patch(dir, "entries", at + 4, &crc.finalize().to_be_bytes());
                return original;
            }
            pos += 2 + entry_len;
            current += 1;
        }
        at = body_at + len;
    }
}

/// A ledger of 600 entries (bundles 0 and 1 full, bundle 2 holding 88), appended in commits
/// that split bundle 0 across frames, closed cleanly and reopened.
fn six_hundred(backend: Backend, dir: &Path) -> Vec<Vec<u8>> {
    let entries: Vec<Vec<u8>> = (0..600).map(entry).collect();
    let ledger = open(backend, dir);
    ledger.append(&entries[..3]).unwrap();
    ledger.append(&entries[3..250]).unwrap();
    ledger.append(&entries[250..]).unwrap();
    ledger.sign_checkpoint().unwrap();
    entries
}

/// `err` is `Corrupted` naming entry `index` and its level-0 tile.
fn names_entry(err: &Error, index: u64) -> bool {
    matches!(err, Error::Corrupted { what }
        if *what == format!("entry {index} does not hash to its leaf hash in tile 0/{}", index / 256))
}

/// The same length as `entry(index)`, other bytes.
fn forgery(index: u64) -> Vec<u8> {
    let mut bytes = entry(index);
    bytes[0] ^= 0x20;
    bytes
}

#[test]
fn a_forged_entry_is_never_served_and_the_others_are() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let entries = six_hundred(backend, dir.path());
        let genuine = forge_entry(dir.path(), 5, &forgery(5));
        assert_eq!(genuine, entries[5]);
        // Open checks the right edge of the tree and the last checkpoint: both still hold.
        let ledger = open(backend, dir.path());
        assert_eq!(ledger.tree_head().size, 600);

        let err = ledger.entry(5).unwrap_err();
        assert!(names_entry(&err, 5), "{backend:?}: {err:?}");
        // Every width of the bundle holding it: a full bundle is checked whole.
        for width in [256, 6, 5, 1] {
            let err = ledger.entry_bundle(0, width).unwrap_err();
            assert!(names_entry(&err, 5), "{backend:?} width {width}: {err:?}");
        }
        // Asking again does not turn the refusal into an answer.
        assert!(names_entry(&ledger.entry(5).unwrap_err(), 5));
        assert!(names_entry(&ledger.entry_bundle(0, 256).unwrap_err(), 5));
        let err = ledger.audit().unwrap_err();
        assert!(names_entry(&err, 5), "{err:?}");

        // The others still read.
        assert_eq!(ledger.entry(4).unwrap(), entries[4]);
        assert_eq!(ledger.entry(6).unwrap(), entries[6]);
        assert_eq!(ledger.entry(300).unwrap(), entries[300]);
        assert_eq!(ledger.entry(599).unwrap(), entries[599]);
        let bundle1 = ledger.entry_bundle(1, 256).unwrap();
        let expected: Vec<&[u8]> = entries[256..512].iter().map(Vec::as_slice).collect();
        assert_eq!(
            bundle1,
            veritrail_ledger::bundle::encode_bundle(expected).unwrap()
        );
        let expected: Vec<&[u8]> = entries[512..].iter().map(Vec::as_slice).collect();
        assert_eq!(
            ledger.entry_bundle(2, 88).unwrap(),
            veritrail_ledger::bundle::encode_bundle(expected).unwrap()
        );
    }
}

#[test]
fn a_forged_entry_in_the_partial_bundle_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let entries = six_hundred(Backend::Redb, dir.path());
    forge_entry(dir.path(), 590, &forgery(590));
    let ledger = open(Backend::Redb, dir.path());
    assert!(names_entry(&ledger.entry(590).unwrap_err(), 590));
    for width in [88, 80] {
        let err = ledger.entry_bundle(2, width).unwrap_err();
        assert!(names_entry(&err, 590), "width {width}: {err:?}");
    }
    // A partial bundle's prefix that stops before the forgery holds only genuine entries.
    let prefix = ledger.entry_bundle(2, 78).unwrap();
    let expected: Vec<&[u8]> = entries[512..590].iter().map(Vec::as_slice).collect();
    assert_eq!(
        prefix,
        veritrail_ledger::bundle::encode_bundle(expected).unwrap()
    );
    assert_eq!(ledger.entry(589).unwrap(), entries[589]);
    // Appends go on; the forged entry stays refused when its bundle fills up.
    let more: Vec<Vec<u8>> = (600..800).map(entry).collect();
    ledger.append(&more).unwrap();
    assert!(names_entry(&ledger.entry_bundle(2, 256).unwrap_err(), 590));
    assert!(names_entry(&ledger.entry(590).unwrap_err(), 590));
    assert_eq!(ledger.entry(700).unwrap(), entry(700));
}

#[test]
fn the_cache_keeps_only_bytes_that_passed_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let entries = six_hundred(Backend::Redb, dir.path());
    let ledger: Ledger = open(Backend::Redb, dir.path());
    let bundle0 = ledger.entry_bundle(0, 256).unwrap();
    // Forged under the running engine, after bundle 0 was checked and kept in memory: the
    // genuine bytes are what is served, for the bundle, a prefix of it and its entries.
    forge_entry(dir.path(), 5, &forgery(5));
    assert_eq!(ledger.entry_bundle(0, 256).unwrap(), bundle0);
    let prefix: Vec<&[u8]> = entries[..6].iter().map(Vec::as_slice).collect();
    assert_eq!(
        ledger.entry_bundle(0, 6).unwrap(),
        veritrail_ledger::bundle::encode_bundle(prefix).unwrap()
    );
    assert_eq!(ledger.entry(5).unwrap(), entries[5]);
    // The audit reads the files, past the cache.
    assert!(names_entry(&ledger.audit().unwrap_err(), 5));
    // Without the cache every read goes to disk, and is refused.
    ledger.set_bundle_cache_budget(0);
    assert!(names_entry(&ledger.entry_bundle(0, 256).unwrap_err(), 5));
    assert!(names_entry(&ledger.entry(5).unwrap_err(), 5));
    // A bundle that fails its check is never kept.
    ledger.set_bundle_cache_budget(1 << 20);
    assert!(names_entry(&ledger.entry_bundle(0, 256).unwrap_err(), 5));
    assert!(names_entry(&ledger.entry(5).unwrap_err(), 5));
    assert_eq!(ledger.entry(4).unwrap(), entries[4]);
}

#[test]
fn a_forged_leaf_hash_is_refused_like_a_forged_entry() {
    let dir = tempfile::tempdir().unwrap();
    let entries = six_hundred(Backend::Redb, dir.path());
    let ledger = open(Backend::Redb, dir.path());
    // Leaf 7 of tile 0/0 now names another entry (an inner tile: open does not read it).
    patch(
        dir.path(),
        "level-0",
        7 * 32,
        &veritrail_ledger::leaf_hash(b"another").0,
    );
    assert!(names_entry(&ledger.entry(7).unwrap_err(), 7));
    assert!(names_entry(&ledger.entry_bundle(0, 256).unwrap_err(), 7));
    assert_eq!(ledger.entry(8).unwrap(), entries[8]);
}
