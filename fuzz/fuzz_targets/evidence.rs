//! Split-view evidence and trusted state (`veritrail-client`): `Evidence::from_bytes` and
//! `Evidence::verify` (parser and verifier of files an auditor receives), and
//! `LogVerifier::update` (the verifier every fetched checkpoint goes through).
//!
//! Asserts:
//! - whatever evidence parses and verifies under the fixed log key really shows two validly
//!   signed checkpoints that contradict each other: same size and different roots, or a
//!   prefix root differing from A's root that the consistency proof ties to B's signed root;
//! - a fuzzed checkpoint note and proof offered to a verifier trusting a real checkpoint
//!   never panics, and trust moves only to a validly signed checkpoint whose consistency
//!   proof from the trusted one verifies; a split view always carries evidence that
//!   verifies.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use veritrail_client::evidence::{Evidence, MisbehaviourKind};
use veritrail_client::{LogVerifier, Update, VerifyError};
use veritrail_fuzz::{LOG, LOG_ORIGIN, hash, mth};
use veritrail_ledger::checkpoint::Checkpoint;
use veritrail_ledger::proof::{root_from_consistency_proof, verify_consistency};
use veritrail_ledger::{Hash, TreeHead, leaf_hash};

fn check_evidence(data: &[u8]) {
    let Ok(evidence) = Evidence::from_bytes(data) else {
        return;
    };
    let Ok(proven) = evidence.verify(&LOG.verifier()) else {
        return;
    };
    assert_eq!(proven.a.origin, LOG_ORIGIN);
    match proven.kind {
        MisbehaviourKind::SameSizeDifferentRoots => {
            assert_eq!(proven.a.tree.size, proven.b.tree.size);
            assert_ne!(proven.a.tree.root, proven.b.tree.root);
        }
        MisbehaviourKind::PrefixMismatch { prefix_root_in_b } => {
            assert!(proven.a.tree.size < proven.b.tree.size);
            assert_ne!(prefix_root_in_b, proven.a.tree.root);
            let proof: Vec<Hash> = evidence
                .consistency_proof
                .iter()
                .map(|h| Hash::from_base64(h).expect("verified evidence has valid hashes"))
                .collect();
            let old = TreeHead::new(proven.a.tree.size, prefix_root_in_b);
            assert_eq!(
                root_from_consistency_proof(&old, proven.b.tree.size, &proof),
                Ok(proven.b.tree.root)
            );
        }
        _ => {}
    }
}

fn note(size: u64, root: Hash) -> Vec<u8> {
    Checkpoint::new(LOG_ORIGIN, TreeHead::new(size, root))
        .and_then(|c| c.sign(&LOG))
        .map(|n| n.to_bytes())
        .expect("a checkpoint of a valid origin signs")
}

fn check_update(u: &mut Unstructured<'_>) -> Result<()> {
    let n = u.int_in_range(1usize..=40)?;
    let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    let trusted = TreeHead::new(n as u64, mth(&leaves));
    let mut verifier = LogVerifier::new(LOG_ORIGIN, LOG.verifier());
    assert!(matches!(
        verifier.update(&note(trusted.size, trusted.root), &[], None),
        Ok(Update::First)
    ));
    let signed = u.arbitrary::<bool>()?;
    let size = u.arbitrary::<u64>()? % 80;
    let root = hash(u)?;
    let offered = if signed {
        note(size, root)
    } else {
        let len = u.int_in_range(0..=300)?;
        u.bytes(len)?.to_vec()
    };
    let count = u.int_in_range(0..=8)?;
    let proof = (0..count).map(|_| hash(u)).collect::<Result<Vec<_>>>()?;
    let prefix = if u.arbitrary()? { Some(hash(u)?) } else { None };
    match verifier.update(&offered, &proof, prefix) {
        Ok(Update::Grew { from }) => {
            assert!(signed);
            assert_eq!(from, trusted.size);
            assert_eq!(
                verify_consistency(&trusted, &TreeHead::new(size, root), &proof),
                Ok(())
            );
            assert_eq!(verifier.trusted_size(), size);
        }
        Ok(_) => assert_eq!(verifier.trusted_size(), trusted.size),
        Err(VerifyError::SplitView { evidence, .. }) => {
            assert!(evidence.verify(&LOG.verifier()).is_ok());
            assert_eq!(verifier.trusted_size(), trusted.size);
        }
        Err(_) => assert_eq!(verifier.trusted_size(), trusted.size),
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        check_evidence(rest);
    } else {
        let _ = check_update(&mut Unstructured::new(rest));
    }
});
