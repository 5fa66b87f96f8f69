//! Consistency proofs: `proof::root_from_consistency_proof` and `proof::verify_consistency`
//! (verifiers), with both tree sizes, both roots and every proof hash taken from the input.
//!
//! Asserts (besides "never panics"):
//! - hostile inputs: the outcome is exactly, in this order, `SizeOrder` (old > new),
//!   `EmptyOldTree` (old == 0), for old == new the empty proof giving the old root or
//!   `WrongLength { want: 0 }`, then `WrongLength { want: consistency_proof_len }`, then the
//!   roots of the RFC 9162 section 2.1.4.2 loop: `OldRootMismatch` when its old root differs
//!   from the claimed one, else its new root; `verify_consistency` accepts exactly that new
//!   root and reports any other as `RootMismatch`;
//! - honest proofs: in a tree of fuzzed leaves, the reference PROOF(m, D[n]) verifies for
//!   every chosen prefix size, a flipped bit anywhere is `OldRootMismatch` or `RootMismatch`,
//!   and a truncated or extended proof is `WrongLength`.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use veritrail_fuzz::{
    Rfc, consistency, edgy_u64, flip, hash, leaves, mth, proof_of_about, rfc_consistency,
};
use veritrail_ledger::TreeHead;
use veritrail_ledger::proof::{
    ProofError, consistency_proof_len, root_from_consistency_proof, verify_consistency,
};

fn hostile(u: &mut Unstructured<'_>) -> Result<()> {
    let new_size = edgy_u64(u)?;
    let old_size = match u.int_in_range(0u8..=4)? {
        0 => edgy_u64(u)?,
        1 => new_size,
        2 => new_size.wrapping_sub(u.int_in_range(1..=3)?),
        3 => 0,
        _ if new_size > 0 => u.int_in_range(1..=new_size)?,
        _ => 0,
    };
    let old = TreeHead::new(old_size, hash(u)?);
    let want = consistency_proof_len(old_size, new_size);
    // A proof into a tree of more than 2^63 leaves can need 65 hashes, no more.
    assert!(want <= 65);
    let proof = proof_of_about(u, want)?;
    let claimed = hash(u)?;

    let got = root_from_consistency_proof(&old, new_size, &proof);
    if old_size > new_size {
        assert_eq!(
            got,
            Err(ProofError::SizeOrder {
                old: old_size,
                new: new_size
            })
        );
    } else if old_size == 0 {
        assert_eq!(got, Err(ProofError::EmptyOldTree { new: new_size }));
    } else if old_size == new_size {
        assert_eq!(want, 0);
        if proof.is_empty() {
            assert_eq!(got, Ok(old.root));
        } else {
            assert_eq!(
                got,
                Err(ProofError::WrongLength {
                    got: proof.len(),
                    want: 0
                })
            );
        }
    } else {
        let rfc = rfc_consistency(old_size, new_size, &old.root, &proof);
        if proof.len() != want {
            assert_eq!(
                got,
                Err(ProofError::WrongLength {
                    got: proof.len(),
                    want
                })
            );
            assert_eq!(rfc, Rfc::BadLength);
        } else {
            let Rfc::Roots {
                old: rfc_old,
                new: rfc_new,
            } = rfc
            else {
                panic!("the RFC loop refuses a proof of length {want}: {rfc:?}");
            };
            if rfc_old != old.root {
                assert_eq!(
                    got,
                    Err(ProofError::OldRootMismatch {
                        computed: rfc_old,
                        expected: old.root
                    })
                );
            } else {
                assert_eq!(got, Ok(rfc_new));
            }
        }
    }
    let verdict = verify_consistency(&old, &TreeHead::new(new_size, claimed), &proof);
    match got {
        Ok(root) if root == claimed => assert_eq!(verdict, Ok(())),
        Ok(root) => assert_eq!(
            verdict,
            Err(ProofError::RootMismatch {
                computed: root,
                expected: claimed
            })
        ),
        Err(e) => assert_eq!(verdict, Err(e)),
    }
    Ok(())
}

fn honest(u: &mut Unstructured<'_>) -> Result<()> {
    let n = u.int_in_range(1usize..=300)?;
    let d = leaves(u, n)?;
    let m = u.int_in_range(1..=n)?;
    let new = TreeHead::new(n as u64, mth(&d));
    let old = TreeHead::new(m as u64, mth(&d[..m]));
    let p = consistency(m, &d);
    assert_eq!(p.len(), consistency_proof_len(old.size, new.size));
    assert_eq!(
        root_from_consistency_proof(&old, new.size, &p),
        Ok(new.root)
    );
    assert_eq!(verify_consistency(&old, &new, &p), Ok(()));

    let bit = u.int_in_range(0..=255)?;
    for j in 0..p.len() {
        let mut q = p.clone();
        q[j] = flip(&q[j], bit);
        assert!(matches!(
            verify_consistency(&old, &new, &q),
            Err(ProofError::OldRootMismatch { .. } | ProofError::RootMismatch { .. })
        ));
    }
    let bad_new = TreeHead::new(new.size, flip(&new.root, bit));
    assert_eq!(
        verify_consistency(&old, &bad_new, &p),
        Err(ProofError::RootMismatch {
            computed: new.root,
            expected: bad_new.root
        })
    );
    let bad_old = TreeHead::new(old.size, flip(&old.root, bit));
    assert!(matches!(
        verify_consistency(&bad_old, &new, &p),
        Err(ProofError::OldRootMismatch { .. } | ProofError::RootMismatch { .. })
    ));
    let wrong = |len| {
        Err(ProofError::WrongLength {
            got: len,
            want: p.len(),
        })
    };
    if let Some((_, short)) = p.split_last() {
        assert_eq!(verify_consistency(&old, &new, short), wrong(short.len()));
    }
    let mut long = p.clone();
    long.push(new.root);
    assert_eq!(verify_consistency(&old, &new, &long), wrong(long.len()));
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut u = Unstructured::new(rest);
    let _ = if mode & 1 == 1 {
        honest(&mut u)
    } else {
        hostile(&mut u)
    };
});
