//! Reopen, validation and tamper detection, for both backends.

use ed25519_dalek::SigningKey;
use std::path::Path;
use veritrail_ledger::checkpoint::Checkpoint;
use veritrail_ledger::note::{KeyName, NoteSigner};

use veritrail_ledger::store::{self, Backend};
use veritrail_ledger::{Error, Ledger, TreeHead, leaf_hash};

use crate::{ORIGIN, entry, open, signer};

const BACKENDS: [Backend; 2] = [Backend::Redb, Backend::Sled];

#[test]
fn reopen_keeps_entries_tiles_and_checkpoints() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let (tree, note) = {
            let ledger = open(backend, dir.path());
            let entries: Vec<Vec<u8>> = (0..1000).map(entry).collect();
            ledger.append(&entries[..300]).unwrap();
            ledger.append(&entries[300..]).unwrap();
            let signed = ledger.sign_checkpoint().unwrap();
            (ledger.tree_head(), signed.note)
        };
        let ledger = open(backend, dir.path());
        assert_eq!(ledger.tree_head(), tree, "{backend:?}");
        assert_eq!(ledger.latest_checkpoint().unwrap().note, note);
        assert_eq!(ledger.checkpoint(1000).unwrap(), Some(note.clone()));
        assert_eq!(ledger.entry(999).unwrap(), entry(999));
        // Appending after reopen continues the same tree.
        let appended = ledger.append(&[entry(1000)]).unwrap();
        assert_eq!(appended.indices, 1000..1001);
        let (index, _) = ledger
            .inclusion_proof_by_leaf_hash(&leaf_hash(&entry(500)), 1001)
            .unwrap();
        assert_eq!(index, 500);
        // Re-signing is deterministic and extends the old checkpoint.
        let again = ledger.sign_checkpoint().unwrap();
        assert_eq!(again.checkpoint.tree.size, 1001);
    }
}

#[test]
fn bad_input_changes_nothing() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let ledger = open(backend, dir.path());
        ledger.append(&[entry(0)]).unwrap();
        let before = ledger.tree_head();
        let big = vec![0u8; 65_536];
        let err = ledger.append(&[entry(1), big]).unwrap_err();
        assert!(
            matches!(
                err,
                Error::EntryTooLarge {
                    position: 1,
                    size: 65_536
                }
            ),
            "{err:?}"
        );
        assert_eq!(ledger.tree_head(), before);
        assert!(matches!(
            ledger.entry(1),
            Err(Error::IndexOutOfRange { index: 1, size: 1 })
        ));
        assert!(matches!(
            ledger.root_at(2),
            Err(Error::SizeOutOfRange {
                requested: 2,
                current: 1
            })
        ));
        assert!(matches!(
            ledger.inclusion_proof(1, 1),
            Err(Error::IndexOutOfRange { index: 1, size: 1 })
        ));
        assert!(matches!(
            ledger.consistency_proof(0, 1),
            Err(Error::InvalidSizes { old: 0, new: 1 })
        ));
        assert!(matches!(
            ledger.consistency_proof(2, 1),
            Err(Error::InvalidSizes { old: 2, new: 1 })
        ));
        assert!(matches!(
            ledger.hash_tile(0, 0, 2),
            Err(Error::SizeOutOfRange { .. })
        ));
        assert!(matches!(
            ledger.hash_tile(0, 0, 0),
            Err(Error::SizeOutOfRange { .. })
        ));
        assert!(matches!(
            ledger.entry_bundle(1, 1),
            Err(Error::SizeOutOfRange { .. })
        ));
        assert!(matches!(
            ledger.inclusion_proof_by_leaf_hash(&leaf_hash(b"absent"), 1),
            Err(Error::LeafNotFound { size: 1, .. })
        ));
        // An empty batch is a no-op.
        let none: [&[u8]; 0] = [];
        assert_eq!(ledger.append(&none).unwrap().indices, 1..1);
        assert_eq!(ledger.tree_head(), before);
    }
}

#[test]
fn origin_and_key_are_fixed_at_creation() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        {
            let ledger = open(backend, dir.path());
            ledger.append(&[entry(0)]).unwrap();
            ledger.sign_checkpoint().unwrap();
        }
        let store = store::open(backend, dir.path()).unwrap();
        let err = Ledger::open(store, "other.example/log", signer()).unwrap_err();
        assert!(matches!(err, Error::OriginMismatch { .. }), "{err:?}");
        let store = store::open(backend, dir.path()).unwrap();
        let other_key = NoteSigner::new(
            KeyName::new(ORIGIN).unwrap(),
            SigningKey::from_bytes(&[1u8; 32]),
        );
        let err = Ledger::open(store, ORIGIN, other_key).unwrap_err();
        assert!(
            matches!(err, Error::CheckpointMismatch { size: 1, .. }),
            "{err:?}"
        );
    }
}

/// Overwrites bytes of one of the log's files at `offset`.
pub(crate) fn patch(dir: &Path, file: &str, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt as _;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("log").join(file))
        .unwrap();
    file.write_all_at(bytes, offset).unwrap();
}

/// Reads bytes of one of the log's files at `offset`.
pub(crate) fn peek(dir: &Path, file: &str, offset: u64, len: usize) -> Vec<u8> {
    use std::os::unix::fs::FileExt as _;
    let file = std::fs::File::open(dir.join("log").join(file)).unwrap();
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, offset).unwrap();
    buf
}

/// Flips one bit of the byte at `offset` of a log file.
fn flip(dir: &Path, file: &str, offset: u64) {
    let byte = peek(dir, file, offset, 1)[0] ^ 1;
    patch(dir, file, offset, &[byte]);
}

/// Flips one bit in hash tile `level/index` (at its 6th byte).
fn tamper_tile(dir: &Path, level: u8, index: u64) {
    flip(dir, &format!("level-{level}"), index * 256 * 32 + 5);
}

#[test]
fn a_tampered_edge_tile_is_refused_on_open() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        {
            let ledger = open(backend, dir.path());
            ledger
                .append(&(0..300).map(entry).collect::<Vec<_>>())
                .unwrap();
        }
        // Tile 0/1 holds leaves 256..300: on the right edge, read by every open.
        tamper_tile(dir.path(), 0, 1);
        let store = store::open(backend, dir.path()).unwrap();
        let err = Ledger::open(store, ORIGIN, signer()).unwrap_err();
        assert!(
            matches!(err, Error::RootMismatch { size: 300, .. }),
            "{err:?}"
        );
    }
}

#[test]
fn audit_finds_a_tampered_inner_tile_and_entry() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let entries: Vec<Vec<u8>> = (0..70_000).map(entry).collect();
        {
            let ledger = open(backend, dir.path());
            ledger.append(&entries).unwrap();
            let report = ledger.audit().unwrap();
            assert_eq!(report.entries, 70_000);
            // 273 full tiles at level 0 (70000 / 256), 1 at level 1.
            assert_eq!(report.full_tiles, 274);
        }
        // Tile 0/0 is summarised by tile 1/0, so open does not read it; audit does.
        tamper_tile(dir.path(), 0, 0);
        let store = store::open(backend, dir.path()).unwrap();
        let ledger = Ledger::open(store, ORIGIN, signer()).unwrap();
        let err = ledger.audit().unwrap_err();
        assert!(
            matches!(&err, Error::Corrupted { what } if what.contains("entry 0 does not hash")),
            "{err:?}"
        );
        // Fix the leaf but break another level-0 tile: found at its first entry.
        tamper_tile(dir.path(), 0, 0);
        ledger.audit().unwrap();
        tamper_tile(dir.path(), 0, 7);
        let err = ledger.audit().unwrap_err();
        assert!(
            matches!(&err, Error::Corrupted { what } if what.contains("entry 1792")),
            "{err:?}"
        );
        tamper_tile(dir.path(), 0, 7);
        ledger.audit().unwrap();
        // An entry changed in the entry log fails its frame's checksum.
        let bundle4 = u64::from_be_bytes(peek(dir.path(), "bundles", 4 * 8, 8).try_into().unwrap());
        flip(dir.path(), "entries", bundle4 - 1);
        let err = ledger.audit().unwrap_err();
        assert!(
            matches!(&err, Error::Corrupted { what } if what.contains("entry bundle 3")),
            "{err:?}"
        );
    }
}

#[test]
fn audit_checks_the_tile_chain_above_the_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(Backend::Redb, dir.path());
    let entries: Vec<Vec<u8>> = (0..600).map(entry).collect();
    ledger.append(&entries).unwrap();
    // Change node 0 of tile 1/0: the leaves and entries still match, but tile 0/0 no longer
    // hashes to the node above it.
    flip(dir.path(), "level-1", 0);
    let err = ledger.audit().unwrap_err();
    assert!(
        matches!(&err, Error::Corrupted { what } if what == "hash tile 0/0 does not hash to node 0 of tile 1/0"),
        "{err:?}"
    );
}

#[test]
fn a_forked_checkpoint_in_the_store_is_refused_on_open() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        {
            let ledger = open(backend, dir.path());
            ledger
                .append(&(0..10).map(entry).collect::<Vec<_>>())
                .unwrap();
        }
        // A validly signed checkpoint of size 5 whose root is not the stored tree's.
        let store = store::open(backend, dir.path()).unwrap();
        let fork = Checkpoint {
            origin: ORIGIN.to_owned(),
            tree: TreeHead::new(5, leaf_hash(b"fork")),
            extensions: Vec::new(),
        };
        store
            .kv()
            .put_checkpoint(5, &fork.sign(&signer()).unwrap().to_bytes(), 0)
            .unwrap();
        let err = Ledger::open(store, ORIGIN, signer()).unwrap_err();
        assert!(
            matches!(err, Error::CheckpointMismatch { size: 5, .. }),
            "{err:?}"
        );
    }
}

#[test]
fn never_signs_a_checkpoint_that_does_not_extend_the_last() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let ledger = open(backend, dir.path());
        ledger
            .append(&(0..10).map(entry).collect::<Vec<_>>())
            .unwrap();
        let first = ledger.sign_checkpoint().unwrap();
        ledger.append(&[entry(10)]).unwrap();
        // Rewrite history under the running engine: tile 0/0 now holds other leaves.
        let forged: Vec<u8> = (100..111).flat_map(|i| leaf_hash(&entry(i)).0).collect();
        patch(dir.path(), "level-0", 0, &forged);
        let err = ledger.sign_checkpoint().unwrap_err();
        assert!(matches!(err, Error::Inconsistent { .. }), "{err:?}");
        assert_eq!(
            ledger.latest_checkpoint().unwrap(),
            first,
            "nothing new was signed"
        );
        assert_eq!(ledger.store().latest_checkpoint().unwrap().unwrap().0, 10);
    }
}
