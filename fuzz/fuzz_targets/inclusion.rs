//! Inclusion proofs: `proof::root_from_inclusion_proof` and `proof::verify_inclusion`
//! (verifiers), with every leaf hash, index, size and proof hash taken from the input.
//!
//! Asserts (besides "never panics"):
//! - hostile inputs: the outcome is exactly `IndexOutOfRange` when index >= size, else
//!   `WrongLength { got, want: inclusion_proof_len }` when the length is off, else a root
//!   equal to the one the RFC 9162 section 2.1.3.2 loop computes; `verify_inclusion` accepts
//!   exactly that root and reports any other as `RootMismatch`;
//! - honest proofs: in a tree of fuzzed leaves, the reference PATH(m, D[n]) of every chosen
//!   leaf verifies, a flipped bit anywhere in it is `RootMismatch`, and a truncated or
//!   extended one is `WrongLength`.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use veritrail_fuzz::{Rfc, edgy_u64, flip, hash, leaves, mth, path, proof_of_about, rfc_inclusion};
use veritrail_ledger::TreeHead;
use veritrail_ledger::proof::{
    MAX_PROOF_HASHES, ProofError, inclusion_proof_len, root_from_inclusion_proof, verify_inclusion,
};

fn hostile(u: &mut Unstructured<'_>) -> Result<()> {
    let size = edgy_u64(u)?;
    let index = match u.int_in_range(0u8..=3)? {
        0 => edgy_u64(u)?,
        1 => size.wrapping_sub(1),
        2 => size,
        _ if size > 0 => u.int_in_range(0..=size - 1)?,
        _ => 0,
    };
    let leaf = hash(u)?;
    let want = inclusion_proof_len(index, size);
    assert!(want <= MAX_PROOF_HASHES);
    let proof = proof_of_about(u, want)?;
    let claimed = hash(u)?;

    let got = root_from_inclusion_proof(&leaf, index, size, &proof);
    let rfc = rfc_inclusion(&leaf, index, size, &proof);
    if index >= size {
        assert_eq!(got, Err(ProofError::IndexOutOfRange { index, size }));
        assert_eq!(want, 0);
        assert_eq!(rfc, Rfc::OutOfRange);
    } else if proof.len() != want {
        assert_eq!(
            got,
            Err(ProofError::WrongLength {
                got: proof.len(),
                want
            })
        );
        assert_eq!(rfc, Rfc::BadLength);
    } else {
        let root = got.expect("a proof of the right length gives a root");
        assert_eq!(
            rfc,
            Rfc::Roots {
                old: root,
                new: root
            }
        );
        assert_eq!(
            verify_inclusion(&leaf, index, &TreeHead::new(size, root), &proof),
            Ok(())
        );
    }
    let verdict = verify_inclusion(&leaf, index, &TreeHead::new(size, claimed), &proof);
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
    let head = TreeHead::new(n as u64, mth(&d));
    let m = u.int_in_range(0..=n - 1)?;
    let p = path(m, &d);
    let index = m as u64;
    assert_eq!(p.len(), inclusion_proof_len(index, head.size));
    assert_eq!(
        root_from_inclusion_proof(&d[m], index, head.size, &p),
        Ok(head.root)
    );
    assert_eq!(verify_inclusion(&d[m], index, &head, &p), Ok(()));

    let bit = u.int_in_range(0..=255)?;
    for j in 0..p.len() {
        let mut q = p.clone();
        q[j] = flip(&q[j], bit);
        assert!(matches!(
            verify_inclusion(&d[m], index, &head, &q),
            Err(ProofError::RootMismatch { expected, .. }) if expected == head.root
        ));
    }
    assert!(matches!(
        verify_inclusion(&flip(&d[m], bit), index, &head, &p),
        Err(ProofError::RootMismatch { .. })
    ));
    let wrong = |len| {
        Err(ProofError::WrongLength {
            got: len,
            want: p.len(),
        })
    };
    if let Some((_, short)) = p.split_last() {
        assert_eq!(
            verify_inclusion(&d[m], index, &head, short),
            wrong(short.len())
        );
    }
    let mut long = p.clone();
    long.push(head.root);
    assert_eq!(
        verify_inclusion(&d[m], index, &head, &long),
        wrong(long.len())
    );
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
