//! Property tests: the tile engine against a naive recursive RFC 6962 reference, for random
//! sizes up to 2^16 + 1 and random batch splits, across tile and batch boundaries.

use proptest::prelude::*;
use veritrail_ledger::proof::{verify_consistency, verify_inclusion};
use veritrail_ledger::store::Backend;
use veritrail_ledger::{Hash, TreeHead, leaf_hash, node_hash};

use crate::{entry, open};

/// MTH(D[n]) by the RFC 9162 definition, with no tiles and no cleverness.
fn mth(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => Hash::empty_root(),
        [one] => *one,
        _ => {
            let k = (leaves.len() as u64 - 1).ilog2();
            let (left, right) = leaves.split_at(1 << k);
            node_hash(&mth(left), &mth(right))
        }
    }
}

/// PATH(m, D[n]) by the RFC 9162 definition.
fn path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    if leaves.len() <= 1 {
        return Vec::new();
    }
    let k = 1 << (leaves.len() as u64 - 1).ilog2();
    let (left, right) = leaves.split_at(k);
    let (mut p, sibling) = if m < k {
        (path(m, left), mth(right))
    } else {
        (path(m - k, right), mth(left))
    };
    p.push(sibling);
    p
}

/// SUBPROOF(m, D[n], b) by the RFC 9162 definition.
fn subproof(m: usize, leaves: &[Hash], complete: bool) -> Vec<Hash> {
    if m == leaves.len() {
        return if complete {
            Vec::new()
        } else {
            vec![mth(leaves)]
        };
    }
    let k = 1 << (leaves.len() as u64 - 1).ilog2();
    let (left, right) = leaves.split_at(k);
    let (mut p, sibling) = if m <= k {
        (subproof(m, left, complete), mth(right))
    } else {
        (subproof(m - k, right, false), mth(left))
    };
    p.push(sibling);
    p
}

fn size_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(255u64),
        Just(256),
        Just(257),
        Just(65_535),
        Just(65_536),
        Just(65_537),
        1u64..=600,
        1u64..=65_537,
    ]
}

fn batch_strategy() -> impl Strategy<Value = Vec<u64>> {
    prop::collection::vec(
        prop_oneof![Just(1u64), Just(255), Just(256), Just(257), 1u64..=9000],
        1..8,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20, ..ProptestConfig::default() })]

    #[test]
    fn tile_engine_matches_reference(
        size in size_strategy(),
        batches in batch_strategy(),
        backend in prop_oneof![Just(Backend::Redb), Just(Backend::Sled)],
        picks in prop::collection::vec(any::<u64>(), 6),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let ledger = open(backend, dir.path());
        let entries: Vec<Vec<u8>> = (0..size).map(entry).collect();
        let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
        // Append in the given batch sizes (cycled) until `size` entries are in.
        let mut next = 0usize;
        for batch in batches.iter().cycle() {
            if next as u64 == size { break; }
            let end = (next + *batch as usize).min(size as usize);
            let appended = ledger.append(&entries[next..end]).unwrap();
            prop_assert_eq!(appended.indices, next as u64..end as u64);
            next = end;
        }
        let tree = ledger.tree_head();
        prop_assert_eq!(tree, TreeHead::new(size, mth(&leaves)));

        // Sizes and indices from the picks, plus tile edges that fit.
        let mut sizes: Vec<u64> = picks.iter().map(|p| p % size + 1).collect();
        sizes.extend([255, 256, 257, size].into_iter().filter(|s| *s <= size));
        for (i, s) in sizes.iter().copied().enumerate() {
            let prefix = &leaves[..s as usize];
            let root = ledger.root_at(s).unwrap();
            prop_assert_eq!(root, mth(prefix), "root at {}", s);
            let index = picks[i % picks.len()] % s;
            let proof = ledger.inclusion_proof(index, s).unwrap();
            prop_assert_eq!(&proof, &path(index as usize, prefix), "inclusion {} at {}", index, s);
            prop_assert!(verify_inclusion(&leaves[index as usize], index, &TreeHead::new(s, root), &proof).is_ok());
            let old = picks[(i + 1) % picks.len()] % s + 1;
            let proof = ledger.consistency_proof(old, s).unwrap();
            prop_assert_eq!(&proof, &subproof(old as usize, prefix, true), "consistency {} -> {}", old, s);
            let old_head = TreeHead::new(old, mth(&leaves[..old as usize]));
            prop_assert!(verify_consistency(&old_head, &TreeHead::new(s, root), &proof).is_ok());
        }
        // Entries read back byte-equal, through single reads and bundles.
        let index = picks[0] % size;
        prop_assert_eq!(ledger.entry(index).unwrap(), entries[index as usize].clone());
    }
}
