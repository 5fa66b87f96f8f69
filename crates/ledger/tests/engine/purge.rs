//! Purging archived bundles: reads of their entries answer `Purged` naming the archive, every
//! proof still works, the audit passes, the bytes leave the disk, and all of it survives a
//! reopen; bad purges are refused and change nothing.

use std::os::unix::fs::MetadataExt as _;

use veritrail_ledger::Error;
use veritrail_ledger::proof::verify_inclusion;
use veritrail_ledger::store::{Backend, PurgedRange};

use crate::{entry, open};

fn range(bundles: std::ops::Range<u64>) -> PurgedRange {
    PurgedRange {
        bundles,
        record: 1234,
        location: "s3://archive/log/bundles-0-2".into(),
    }
}

#[test]
fn purged_entries_are_gone_and_every_proof_still_verifies() {
    for backend in [Backend::Redb, Backend::Sled] {
        let dir = tempfile::tempdir().unwrap();
        let entries: Vec<Vec<u8>> = (0..1000)
            .map(|i| {
                let mut e = entry(i);
                e.resize(600, b'x');
                e
            })
            .collect();
        let blocks_before;
        let size_before;
        {
            let ledger = open(backend, dir.path());
            ledger.append(&entries).unwrap();
            ledger.sign_checkpoint().unwrap();
            let meta = std::fs::metadata(dir.path().join("log/entries")).unwrap();
            (blocks_before, size_before) = (meta.blocks(), meta.len());
            // Refused: empty, partial, beyond the log.
            for bad in [range(1..1), range(3..4), range(0..9)] {
                assert!(matches!(ledger.purge(bad), Err(Error::PurgeRefused { .. })));
            }
            assert!(ledger.purged().is_empty());
            ledger.purge(range(0..2)).unwrap();
            // Overlapping an earlier purge.
            assert!(matches!(
                ledger.purge(range(1..3)),
                Err(Error::PurgeRefused { .. })
            ));
        }
        let ledger = open(backend, dir.path());
        assert_eq!(ledger.purged(), vec![range(0..2)]);
        let tree = ledger.tree_head();
        for index in [0u64, 5, 511] {
            match ledger.entry(index) {
                Err(Error::Purged {
                    index: at,
                    location,
                    record,
                }) => {
                    assert_eq!(
                        (at, location.as_str(), record),
                        (index, "s3://archive/log/bundles-0-2", 1234)
                    );
                }
                other => panic!("entry {index}: {other:?}"),
            }
            let proof = ledger.inclusion_proof(index, tree.size).unwrap();
            let leaf = veritrail_ledger::leaf_hash(&entries[index as usize]);
            verify_inclusion(&leaf, index, &tree, &proof).unwrap();
        }
        assert!(matches!(
            ledger.entry_bundle(1, 256),
            Err(Error::Purged { index: 256, .. })
        ));
        assert_eq!(ledger.entry(512).unwrap(), entries[512]);
        assert_eq!(ledger.entry_bundle(3, 232).unwrap().len(), 232 * 602);
        ledger.audit().unwrap();
        ledger.consistency_proof(10, tree.size).unwrap();
        // The entry log keeps its size and offsets; the purged bytes no longer use disk.
        let meta = std::fs::metadata(dir.path().join("log/entries")).unwrap();
        assert_eq!(meta.len(), size_before);
        assert!(
            meta.blocks() + 2 * 256 * 600 / 512 / 2 < blocks_before,
            "{} blocks of {blocks_before} left",
            meta.blocks()
        );
        // Appending and signing go on.
        ledger.append(&[b"after the purge".to_vec()]).unwrap();
        ledger.sign_checkpoint().unwrap();
    }
}
