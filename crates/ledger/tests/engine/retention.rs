//! Checkpoint history retention through the engine, for both backends: pruning keeps the
//! latest and pinned checkpoints, is idempotent, and a pruned store reopens.

use veritrail_ledger::engine::{KEEP_MINUTELY_SECS, Pruned};
use veritrail_ledger::store::Backend;

use crate::{entry, open};

const BACKENDS: [Backend; 2] = [Backend::Redb, Backend::Sled];

#[test]
fn pruning_keeps_latest_and_pinned_and_the_store_reopens() {
    let now = 1_800_001_800u64;
    let old = now - 4 * KEEP_MINUTELY_SECS; // four weeks ago: hourly tier
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        {
            let ledger = open(backend, dir.path());
            // Sizes 1..=6 signed a second apart in the same hour, four weeks ago.
            for i in 0..6u64 {
                ledger.append(&[entry(i)]).unwrap();
                ledger.sign_checkpoint_at(old + i).unwrap();
            }
            assert!(ledger.pin_checkpoint(2).unwrap());
            assert!(!ledger.pin_checkpoint(7).unwrap(), "nothing stored to pin");
            assert!(ledger.is_pinned(2).unwrap());
            assert!(!ledger.is_pinned(7).unwrap());

            let pruned = ledger.prune_checkpoints(now).unwrap();
            // 1: first of its hour; 2: pinned; 6: the latest.
            assert_eq!(
                pruned,
                Pruned {
                    removed: vec![3, 4, 5],
                    scanned: 5,
                    complete: true
                },
                "{backend:?}"
            );
            for size in [3, 4, 5] {
                assert_eq!(ledger.checkpoint(size).unwrap(), None, "{backend:?} {size}");
            }
            for size in [1, 2, 6] {
                assert!(
                    ledger.checkpoint(size).unwrap().is_some(),
                    "{backend:?} {size}"
                );
            }
            // Idempotent, and the latest survives any later time.
            assert!(ledger.prune_checkpoints(now).unwrap().removed.is_empty());
            assert!(
                ledger
                    .prune_checkpoints(now + 100 * KEEP_MINUTELY_SECS)
                    .unwrap()
                    .removed
                    .is_empty()
            );
        }
        // The engine verifies the latest checkpoint at open: it is still there.
        let ledger = open(backend, dir.path());
        let latest = ledger.latest_checkpoint().unwrap();
        assert_eq!(latest.checkpoint.tree.size, 6, "{backend:?}");
        assert!(ledger.is_pinned(2).unwrap());
        assert!(ledger.prune_checkpoints(now).unwrap().removed.is_empty());
        // Signing continues from it. Once 6 is no longer the latest it is thinned like any
        // other (same hour as 1); the new latest, signed now, is kept.
        ledger.append(&[entry(6)]).unwrap();
        ledger.sign_checkpoint().unwrap();
        let pruned = ledger.prune_checkpoints(now.max(unix_now())).unwrap();
        assert_eq!(pruned.removed, vec![6], "{backend:?}");
        assert!(ledger.checkpoint(7).unwrap().is_some());
        assert_eq!(ledger.latest_checkpoint().unwrap().checkpoint.tree.size, 7);
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
