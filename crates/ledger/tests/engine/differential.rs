//! For every size 1..=300: roots and every inclusion proof equal `rs_merkle`'s (with an
//! RFC 6962 hasher), and every consistency proof equals `ct-merkle`'s.

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use rs_merkle::{Hasher, MerkleTree};
use sha2::{Digest, Sha256};
use veritrail_ledger::store::Backend;
use veritrail_ledger::{Hash, leaf_hash};

use crate::{entry, open};

/// RFC 6962 interior hashing for `rs_merkle`; leaves are given already leaf-hashed. A node
/// without a right sibling is promoted unchanged, which is exactly RFC 6962's split rule.
#[derive(Clone)]
struct Rfc6962;

impl Hasher for Rfc6962 {
    type Hash = [u8; 32];

    fn hash(data: &[u8]) -> [u8; 32] {
        // rs_merkle only calls this on `left || right` (64 bytes): an interior node.
        let mut h = Sha256::new();
        h.update([0x01]);
        h.update(data);
        h.finalize().into()
    }
}

#[test]
fn roots_and_proofs_match_rs_merkle_and_ct_merkle_for_sizes_1_to_300() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(Backend::Redb, dir.path());
    let mut leaves: Vec<[u8; 32]> = Vec::new();
    let mut ct: MemoryBackedTree<Sha256, Vec<u8>> = MemoryBackedTree::new();
    let mut failures = Vec::new();
    for size in 1..=300u64 {
        ledger.append(&[entry(size - 1)]).unwrap();
        leaves.push(leaf_hash(&entry(size - 1)).0);
        ct.push(entry(size - 1));

        let rs = MerkleTree::<Rfc6962>::from_leaves(&leaves);
        let root = ledger.root_at(size).unwrap();
        if Some(root.0) != rs.root() {
            failures.push(format!("root at {size}"));
        }
        assert_eq!(
            ct.root().as_bytes().as_slice(),
            root.as_bytes(),
            "ct-merkle root at {size}"
        );
        for index in 0..size {
            let ours: Vec<[u8; 32]> = ledger
                .inclusion_proof(index, size)
                .unwrap()
                .iter()
                .map(|h| h.0)
                .collect();
            let theirs = rs.proof(&[index as usize]).proof_hashes().to_vec();
            if ours != theirs {
                failures.push(format!("inclusion {index} at {size}"));
            }
        }
        for old in 1..=size {
            let ours: Vec<u8> = ledger
                .consistency_proof(old, size)
                .unwrap()
                .iter()
                .flat_map(|h| h.0)
                .collect();
            let theirs = ct.prove_consistency((size - old) as usize);
            if ours != theirs.as_bytes() {
                failures.push(format!("consistency {old} -> {size}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches: {:?}",
        failures.len(),
        &failures[..failures.len().min(20)]
    );
    // And the tree the ledger reports is the one it proves against.
    assert_eq!(
        ledger.tree_head().root,
        Hash(MerkleTree::<Rfc6962>::from_leaves(&leaves).root().unwrap())
    );
}
