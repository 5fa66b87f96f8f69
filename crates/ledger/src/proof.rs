//! RFC 9162 Merkle proof verification: inclusion and consistency proofs.
//!
//! - Inclusion: [RFC 9162 section 2.1.3.2] "Verifying an Inclusion Proof"
//!   ([`root_from_inclusion_proof`], [`verify_inclusion`]).
//! - Consistency: [RFC 9162 section 2.1.4.2] "Verifying Consistency between Two Tree Heads"
//!   ([`root_from_consistency_proof`], [`verify_consistency`]).
//!
//! Every input here comes from an untrusted peer. The verifiers never panic, never recurse,
//! and check the exact number of proof hashes implied by the (index, size) or (old size,
//! new size) pair before they hash anything, so a hostile proof costs at most one failed
//! length comparison.
//!
//! The hashing order follows the RFC algorithms, computed by splitting the audit path into
//! an "inner" part (levels where the leaf's path and the tree's right edge differ) and a
//! "border" part (levels on the right edge, where every sibling is on the left). This gives
//! the same results as the RFC's bit-shifting loops, with the length known up front.
//!
//! Edge cases, decided explicitly:
//!
//! - the empty tree contains no leaf: any inclusion proof for size 0 is
//!   [`ProofError::IndexOutOfRange`];
//! - a consistency proof *from* the empty tree is meaningless and rejected as
//!   [`ProofError::EmptyOldTree`], even from 0 to 0;
//! - between two tree heads of the same size, the only valid proof is the empty one, and the
//!   roots must be equal.
//!
//! [RFC 9162 section 2.1.3.2]: https://www.rfc-editor.org/rfc/rfc9162#section-2.1.3.2
//! [RFC 9162 section 2.1.4.2]: https://www.rfc-editor.org/rfc/rfc9162#section-2.1.4.2
//!
//! # Example
//!
//! ```
//! use veritrail_ledger::proof::{verify_consistency, verify_inclusion};
//! use veritrail_ledger::{TreeHead, leaf_hash, node_hash};
//!
//! // A tree of two leaves: root = node_hash(leaf 0, leaf 1).
//! let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
//! let head = TreeHead::new(2, node_hash(&a, &b));
//! verify_inclusion(&b, 1, &head, &[a])?;
//!
//! // The tree of one leaf is a prefix of it; the proof is the second leaf's hash.
//! verify_consistency(&TreeHead::new(1, a), &head, &[b])?;
//! # Ok::<(), veritrail_ledger::proof::ProofError>(())
//! ```

use crate::hash::{Hash, TreeHead, node_hash};

/// The largest number of hashes a proof can need in practice, as a cap for parsers.
///
/// A tree size is a `u64`, so a tree is at most 64 levels high and an inclusion proof holds
/// at most 64 hashes (one sibling per level). A consistency proof holds at most 64 hashes
/// whenever the new tree has at most 2^63 leaves. Code that reads proofs from the network
/// or disk (receipts, witness requests) uses this constant to refuse longer proofs before
/// decoding them.
///
/// The verifiers in this module do not use this cap: they check the *exact* length implied
/// by the sizes, which is stricter. (A consistency proof into a tree of more than 2^63
/// leaves can need 65 hashes; no real tree gets there.)
pub const MAX_PROOF_HASHES: usize = 64;

/// Why a Merkle proof did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The leaf index is not inside the tree (`index >= size`); this includes every index in
    /// the empty tree.
    #[error("leaf index {index} is out of range for a tree of size {size}")]
    IndexOutOfRange {
        /// The claimed leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The proof does not have the exact number of hashes the sizes require.
    #[error("proof has {got} hashes, want exactly {want}")]
    WrongLength {
        /// Number of hashes given.
        got: usize,
        /// Number of hashes required by the index and size(s).
        want: usize,
    },
    /// The old tree is larger than the new tree.
    #[error("old tree size {old} is larger than new tree size {new}")]
    SizeOrder {
        /// The old tree size.
        old: u64,
        /// The new tree size.
        new: u64,
    },
    /// A consistency proof from the empty tree (size 0) was given; it proves nothing and is
    /// always rejected, even from 0 to 0.
    #[error("consistency proof from the empty tree to size {new} is meaningless")]
    EmptyOldTree {
        /// The new tree size.
        new: u64,
    },
    /// The consistency proof does not reproduce the old tree's root.
    #[error("consistency proof yields old root {computed}, expected {expected}")]
    OldRootMismatch {
        /// The old root computed from the proof.
        computed: Hash,
        /// The old root that was claimed.
        expected: Hash,
    },
    /// The proof yields a root other than the expected one. For two tree heads of the same
    /// size, `computed` is the old root and `expected` the new one.
    #[error("proof yields root {computed}, expected {expected}")]
    RootMismatch {
        /// The root computed from the proof.
        computed: Hash,
        /// The root that was claimed.
        expected: Hash,
    },
}

/// Position of the highest set bit plus one (0 for 0).
fn bit_len(x: u64) -> usize {
    // At most 64: the conversion cannot fail, and 64 is the fallback anyway.
    usize::try_from(u64::BITS - x.leading_zeros()).unwrap_or(64)
}

/// Splits the audit path of leaf `index` in a tree whose last leaf index is `last`
/// (`index <= last`) into (inner, border) lengths.
///
/// Below level `inner`, the leaf's ancestors and the tree's right edge differ, so every
/// level has a sibling. From `inner` up the leaf's ancestor is on the right edge: it has a
/// (left) sibling exactly where `index` has a one bit.
fn decompose(index: u64, last: u64) -> (usize, usize) {
    let inner = bit_len(index ^ last);
    let above = index
        .checked_shr(u32::try_from(inner).unwrap_or(u32::MAX))
        .unwrap_or(0);
    let border = usize::try_from(above.count_ones()).unwrap_or(64);
    (inner, border)
}

/// The number of hashes in the inclusion proof for leaf `index` in a tree of `size` leaves
/// (RFC 9162 section 2.1.3.1), at most 64.
///
/// Returns 0 when `index >= size`: no proof exists then, and the verifiers report
/// [`ProofError::IndexOutOfRange`]. A tree of one leaf has an empty proof.
pub fn inclusion_proof_len(index: u64, size: u64) -> usize {
    match size.checked_sub(1) {
        Some(last) if index <= last => {
            let (inner, border) = decompose(index, last);
            inner + border
        }
        _ => 0,
    }
}

/// The consistency-proof shape for `0 < old < new`: `(fn, sn)`, the index of the old tree's
/// last node and of the new tree's last node, at the height of the largest complete subtree
/// ending the old tree (`2^k` leaves, `k` the trailing zero bits of `old`).
///
/// Per RFC 9162 section 2.1.4.2 steps 3-4: `fn = old - 1`, `sn = new - 1`, both shifted
/// right past the trailing one bits of `fn`, which are the trailing zero bits of `old`.
/// `fn` is then zero exactly when `old` is a power of two.
fn consistency_shape(old: u64, new: u64) -> Option<(u64, u64)> {
    if old == 0 || old >= new {
        return None;
    }
    let shift = old.trailing_zeros();
    let fn_ = (old - 1) >> shift;
    let sn = (new - 1) >> shift;
    Some((fn_, sn))
}

/// The number of hashes in the consistency proof from a tree of `old` leaves to a tree of
/// `new` leaves (RFC 9162 section 2.1.4.1).
///
/// Returns 0 when `old == new` (the empty proof), and also when no proof can exist
/// (`old == 0` or `old > new`); the verifiers report those as errors.
pub fn consistency_proof_len(old: u64, new: u64) -> usize {
    match consistency_shape(old, new) {
        Some((fn_, sn)) => {
            // When `old` is not a power of two the proof starts with the hash of the old
            // tree's rightmost complete subtree; otherwise that hash is the old root itself
            // and is left out of the proof.
            let seed = usize::from(fn_ != 0);
            let (inner, border) = decompose(fn_, sn);
            seed + inner + border
        }
        None => 0,
    }
}

/// Computes the root of a tree of `size` leaves from the hash of leaf `index` and its
/// inclusion proof (audit path, bottom-up from the leaf's sibling), per RFC 9162
/// section 2.1.3.2.
///
/// The result is meaningful only once compared with a trusted root; see
/// [`verify_inclusion`]. This does not panic.
///
/// # Errors
///
/// - [`ProofError::IndexOutOfRange`] when `index >= size`;
/// - [`ProofError::WrongLength`] when `proof` does not hold exactly
///   [`inclusion_proof_len`]`(index, size)` hashes (checked before any hashing).
pub fn root_from_inclusion_proof(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    let last = match size.checked_sub(1) {
        Some(last) if index <= last => last,
        _ => return Err(ProofError::IndexOutOfRange { index, size }),
    };
    let (inner_len, border_len) = decompose(index, last);
    let want = inner_len + border_len;
    if proof.len() != want {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            want,
        });
    }
    let (inner, border) = proof
        .split_at_checked(inner_len)
        .ok_or(ProofError::WrongLength {
            got: proof.len(),
            want,
        })?;

    let mut root = *leaf_hash;
    let mut bits = index;
    for sibling in inner {
        root = if bits & 1 == 0 {
            node_hash(&root, sibling)
        } else {
            node_hash(sibling, &root)
        };
        bits >>= 1;
    }
    for sibling in border {
        root = node_hash(sibling, &root);
    }
    Ok(root)
}

/// Verifies that `leaf_hash` is the leaf at `index` in the tree `tree`, given its inclusion
/// proof (RFC 9162 section 2.1.3.2). This does not panic.
///
/// # Errors
///
/// The errors of [`root_from_inclusion_proof`], and [`ProofError::RootMismatch`] when the
/// proof yields a root other than `tree.root`.
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    tree: &TreeHead,
    proof: &[Hash],
) -> Result<(), ProofError> {
    let computed = root_from_inclusion_proof(leaf_hash, index, tree.size, proof)?;
    if computed == tree.root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch {
            computed,
            expected: tree.root,
        })
    }
}

/// Computes the root of the tree of `new_size` leaves from the old tree head and a
/// consistency proof, after checking that the proof also reproduces `old.root`
/// (RFC 9162 section 2.1.4.2).
///
/// When `old.size == new_size` the proof must be empty and the result is `old.root`.
/// The result is meaningful only once compared with a trusted new root; see
/// [`verify_consistency`]. This does not panic.
///
/// # Errors
///
/// Checked in this order:
///
/// - [`ProofError::SizeOrder`] when `old.size > new_size`;
/// - [`ProofError::EmptyOldTree`] when `old.size == 0` (even when `new_size == 0`);
/// - [`ProofError::WrongLength`] when `proof` does not hold exactly
///   [`consistency_proof_len`]`(old.size, new_size)` hashes (checked before any hashing);
/// - [`ProofError::OldRootMismatch`] when the proof does not reproduce `old.root`. (When
///   `old.size` is a power of two, `old.root` is itself the start of the computation, so a
///   wrong old root shows up as a wrong new root instead.)
pub fn root_from_consistency_proof(
    old: &TreeHead,
    new_size: u64,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    if old.size > new_size {
        return Err(ProofError::SizeOrder {
            old: old.size,
            new: new_size,
        });
    }
    if old.size == 0 {
        return Err(ProofError::EmptyOldTree { new: new_size });
    }
    let Some((fn_, sn)) = consistency_shape(old.size, new_size) else {
        // old.size == new_size: the trees are the same, and the proof must say nothing.
        return if proof.is_empty() {
            Ok(old.root)
        } else {
            Err(ProofError::WrongLength {
                got: proof.len(),
                want: 0,
            })
        };
    };
    let want = consistency_proof_len(old.size, new_size);
    if proof.len() != want {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            want,
        });
    }
    let wrong_length = ProofError::WrongLength {
        got: proof.len(),
        want,
    };

    // RFC 9162 section 2.1.4.2 step 2: if the old size is a power of two (`fn_ == 0`), the
    // old root is the first node of the path; otherwise the proof carries it.
    let (seed, rest) = if fn_ == 0 {
        (&old.root, proof)
    } else {
        proof.split_first().ok_or(wrong_length)?
    };
    let (inner_len, _) = decompose(fn_, sn);
    let (inner, border) = rest.split_at_checked(inner_len).ok_or(wrong_length)?;

    // `old_root` folds in only left siblings (the old tree is a prefix); `new_root` folds in
    // every hash.
    let mut old_root = *seed;
    let mut new_root = *seed;
    let mut bits = fn_;
    for sibling in inner {
        if bits & 1 == 1 {
            old_root = node_hash(sibling, &old_root);
            new_root = node_hash(sibling, &new_root);
        } else {
            new_root = node_hash(&new_root, sibling);
        }
        bits >>= 1;
    }
    for sibling in border {
        old_root = node_hash(sibling, &old_root);
        new_root = node_hash(sibling, &new_root);
    }
    if old_root != old.root {
        return Err(ProofError::OldRootMismatch {
            computed: old_root,
            expected: old.root,
        });
    }
    Ok(new_root)
}

/// Verifies that the tree `old` is a prefix of the tree `new`, given a consistency proof
/// (RFC 9162 section 2.1.4.2). This does not panic.
///
/// Two tree heads of the same size are consistent only with an empty proof and equal roots.
/// A proof from the empty tree is always rejected.
///
/// # Errors
///
/// The errors of [`root_from_consistency_proof`], and [`ProofError::RootMismatch`] when the
/// proof yields a new root other than `new.root` (for equal sizes: when the roots differ).
pub fn verify_consistency(
    old: &TreeHead,
    new: &TreeHead,
    proof: &[Hash],
) -> Result<(), ProofError> {
    let computed = root_from_consistency_proof(old, new.size, proof)?;
    if computed == new.root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch {
            computed,
            expected: new.root,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::hash::leaf_hash;

    // ---------------------------------------------------------------------------------
    // Naive reference: RFC 9162 sections 2.1.1 (MTH), 2.1.3.1 (PATH) and 2.1.4.1 (PROOF),
    // written as the RFC's recursive definitions over the list of leaf hashes.
    // ---------------------------------------------------------------------------------

    /// The largest power of two strictly less than `n` (`n >= 2`), by counting up.
    fn split_point(n: u64) -> u64 {
        let mut k = 1;
        while k < n - k {
            k *= 2;
        }
        k
    }

    fn split(n: usize) -> usize {
        usize::try_from(split_point(n as u64)).unwrap()
    }

    /// MTH(D[n]).
    fn mth(d: &[Hash]) -> Hash {
        match d.len() {
            0 => Hash::empty_root(),
            1 => d[0],
            n => {
                let k = split(n);
                node_hash(&mth(&d[..k]), &mth(&d[k..]))
            }
        }
    }

    /// PATH(m, D[n]).
    fn path(m: usize, d: &[Hash]) -> Vec<Hash> {
        let n = d.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = split(n);
        if m < k {
            let mut p = path(m, &d[..k]);
            p.push(mth(&d[k..]));
            p
        } else {
            let mut p = path(m - k, &d[k..]);
            p.push(mth(&d[..k]));
            p
        }
    }

    /// PROOF(m, D[n]) = SUBPROOF(m, D[n], true).
    fn consistency(m: usize, d: &[Hash]) -> Vec<Hash> {
        subproof(m, d, true)
    }

    fn subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
        let n = d.len();
        if m == n {
            return if b { Vec::new() } else { vec![mth(d)] };
        }
        let k = split(n);
        if m <= k {
            let mut p = subproof(m, &d[..k], b);
            p.push(mth(&d[k..]));
            p
        } else {
            let mut p = subproof(m - k, &d[k..], false);
            p.push(mth(&d[..k]));
            p
        }
    }

    /// |PATH(m, D[n])|, by the same recursion, without hashing (any u64 size).
    fn naive_path_len(m: u64, n: u64) -> usize {
        if n <= 1 {
            return 0;
        }
        let k = split_point(n);
        if m < k {
            naive_path_len(m, k) + 1
        } else {
            naive_path_len(m - k, n - k) + 1
        }
    }

    /// |PROOF(m, D[n])| for `0 < m <= n`, by the same recursion, without hashing.
    fn naive_proof_len(m: u64, n: u64) -> usize {
        fn sub(m: u64, n: u64, b: bool) -> usize {
            if m == n {
                return usize::from(!b);
            }
            let k = split_point(n);
            if m <= k {
                sub(m, k, b) + 1
            } else {
                sub(m - k, n - k, false) + 1
            }
        }
        sub(m, n, true)
    }

    // ---------------------------------------------------------------------------------
    // Oracle: the RFC 9162 verification loops (sections 2.1.3.2 and 2.1.4.2) step by step,
    // used to predict the exact outcome for tampered inputs.
    // ---------------------------------------------------------------------------------

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Kind {
        Ok,
        IndexOutOfRange,
        WrongLength,
        SizeOrder,
        EmptyOldTree,
        OldRootMismatch,
        RootMismatch,
    }

    fn kind(r: &Result<(), ProofError>) -> Kind {
        match r {
            Ok(()) => Kind::Ok,
            Err(ProofError::IndexOutOfRange { .. }) => Kind::IndexOutOfRange,
            Err(ProofError::WrongLength { .. }) => Kind::WrongLength,
            Err(ProofError::SizeOrder { .. }) => Kind::SizeOrder,
            Err(ProofError::EmptyOldTree { .. }) => Kind::EmptyOldTree,
            Err(ProofError::OldRootMismatch { .. }) => Kind::OldRootMismatch,
            Err(ProofError::RootMismatch { .. }) => Kind::RootMismatch,
        }
    }

    fn rfc_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> Kind {
        if index >= size {
            return Kind::IndexOutOfRange;
        }
        let (mut fn_, mut sn) = (index, size - 1);
        let mut r = *leaf;
        for p in proof {
            if sn == 0 {
                return Kind::WrongLength;
            }
            if fn_ & 1 == 1 || fn_ == sn {
                r = node_hash(p, &r);
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            } else {
                r = node_hash(&r, p);
            }
            fn_ >>= 1;
            sn >>= 1;
        }
        if sn != 0 {
            Kind::WrongLength
        } else if r != *root {
            Kind::RootMismatch
        } else {
            Kind::Ok
        }
    }

    fn rfc_consistency(old: &TreeHead, new: &TreeHead, proof: &[Hash]) -> Kind {
        // Preconditions RFC 9162 leaves to the caller (it assumes 0 < first < second).
        if old.size > new.size {
            return Kind::SizeOrder;
        }
        if old.size == 0 {
            return Kind::EmptyOldTree;
        }
        if old.size == new.size {
            return if !proof.is_empty() {
                Kind::WrongLength
            } else if old.root != new.root {
                Kind::RootMismatch
            } else {
                Kind::Ok
            };
        }
        // Step 1.
        if proof.is_empty() {
            return Kind::WrongLength;
        }
        // Step 2.
        let mut path = proof.to_vec();
        if old.size.is_power_of_two() {
            path.insert(0, old.root);
        }
        // Steps 3-4.
        let (mut fn_, mut sn) = (old.size - 1, new.size - 1);
        while fn_ & 1 == 1 {
            fn_ >>= 1;
            sn >>= 1;
        }
        // Steps 5-6.
        let (mut fr, mut sr) = (path[0], path[0]);
        for c in &path[1..] {
            if sn == 0 {
                return Kind::WrongLength;
            }
            if fn_ & 1 == 1 || fn_ == sn {
                fr = node_hash(c, &fr);
                sr = node_hash(c, &sr);
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            } else {
                sr = node_hash(&sr, c);
            }
            fn_ >>= 1;
            sn >>= 1;
        }
        // Step 7.
        if sn != 0 {
            Kind::WrongLength
        } else if fr != old.root {
            Kind::OldRootMismatch
        } else if sr != new.root {
            Kind::RootMismatch
        } else {
            Kind::Ok
        }
    }

    /// Checks the real inclusion verifier against the oracle, including the numbers carried.
    fn check_inclusion(leaf: &Hash, index: u64, tree: &TreeHead, proof: &[Hash]) -> Kind {
        let got = verify_inclusion(leaf, index, tree, proof);
        let want = rfc_inclusion(leaf, index, tree.size, proof, &tree.root);
        assert_eq!(
            kind(&got),
            want,
            "index {index} size {} len {}",
            tree.size,
            proof.len()
        );
        match got {
            Err(ProofError::IndexOutOfRange { index: i, size: s }) => {
                assert_eq!((i, s), (index, tree.size));
            }
            Err(ProofError::WrongLength { got, want }) => {
                assert_eq!(got, proof.len());
                assert_eq!(want, naive_path_len(index, tree.size));
            }
            Err(ProofError::RootMismatch { computed, expected }) => {
                assert_eq!(expected, tree.root);
                assert_ne!(computed, tree.root);
            }
            Ok(()) | Err(_) => {}
        }
        want
    }

    /// Checks the real consistency verifier against the oracle, including the numbers.
    fn check_consistency(old: &TreeHead, new: &TreeHead, proof: &[Hash]) -> Kind {
        let got = verify_consistency(old, new, proof);
        let want = rfc_consistency(old, new, proof);
        assert_eq!(
            kind(&got),
            want,
            "{} -> {} len {}",
            old.size,
            new.size,
            proof.len()
        );
        match got {
            Err(ProofError::SizeOrder { old: o, new: n }) => {
                assert_eq!((o, n), (old.size, new.size))
            }
            Err(ProofError::EmptyOldTree { new: n }) => assert_eq!(n, new.size),
            Err(ProofError::WrongLength { got, want }) => {
                assert_eq!(got, proof.len());
                let naive = if old.size == new.size {
                    0
                } else {
                    naive_proof_len(old.size, new.size)
                };
                assert_eq!(want, naive);
            }
            Err(ProofError::OldRootMismatch { computed, expected }) => {
                assert_eq!(expected, old.root);
                assert_ne!(computed, old.root);
            }
            Err(ProofError::RootMismatch { computed, expected }) => {
                assert_eq!(expected, new.root);
                assert_ne!(computed, new.root);
            }
            Ok(()) | Err(_) => {}
        }
        want
    }

    fn leaves(n: usize, seed: u64) -> Vec<Hash> {
        (0..n as u64)
            .map(|i| leaf_hash(&[seed.to_be_bytes(), i.to_be_bytes()].concat()))
            .collect()
    }

    fn flip(h: &Hash, bit: usize) -> Hash {
        let mut b = h.0;
        b[(bit / 8) % 32] ^= 1 << (bit % 8);
        Hash(b)
    }

    // ---------------------------------------------------------------------------------
    // Fixed cases.
    // ---------------------------------------------------------------------------------

    #[test]
    fn reference_agrees_with_rfc_examples() {
        // RFC 9162 section 2.1.5: the tree of 7 leaves.
        let d = leaves(7, 0);
        assert_eq!(path(0, &d).len(), 3);
        assert_eq!(path(3, &d).len(), 3);
        assert_eq!(path(4, &d).len(), 3);
        assert_eq!(path(6, &d).len(), 2);
        assert_eq!(consistency(3, &d).len(), 4);
        assert_eq!(consistency(4, &d).len(), 1);
        assert_eq!(consistency(6, &d).len(), 3);
        assert_eq!(consistency_proof_len(3, 7), 4);
        assert_eq!(consistency_proof_len(4, 7), 1);
        assert_eq!(consistency_proof_len(6, 7), 3);
        assert_eq!(inclusion_proof_len(6, 7), 2);
    }

    #[test]
    fn exhaustive_small_trees() {
        for n in 1..=40usize {
            let d = leaves(n, 7);
            let head = TreeHead::new(n as u64, mth(&d));
            for m in 0..n {
                let p = path(m, &d);
                assert_eq!(inclusion_proof_len(m as u64, n as u64), p.len());
                assert_eq!(
                    verify_inclusion(&d[m], m as u64, &head, &p),
                    Ok(()),
                    "{m} in {n}"
                );
                assert_eq!(check_inclusion(&d[m], m as u64, &head, &p), Kind::Ok);
            }
            for m in 1..=n {
                let old = TreeHead::new(m as u64, mth(&d[..m]));
                let p = consistency(m, &d);
                assert_eq!(consistency_proof_len(m as u64, n as u64), p.len());
                assert_eq!(
                    root_from_consistency_proof(&old, n as u64, &p),
                    Ok(head.root)
                );
                assert_eq!(verify_consistency(&old, &head, &p), Ok(()), "{m} -> {n}");
                assert_eq!(check_consistency(&old, &head, &p), Kind::Ok);
            }
        }
    }

    #[test]
    fn empty_tree_and_equal_size_edge_cases() {
        let h = leaf_hash(b"x");
        let other = leaf_hash(b"y");
        let empty = TreeHead::empty();
        assert_eq!(
            verify_inclusion(&h, 0, &empty, &[]),
            Err(ProofError::IndexOutOfRange { index: 0, size: 0 })
        );
        assert_eq!(
            root_from_inclusion_proof(&h, u64::MAX, u64::MAX, &[]),
            Err(ProofError::IndexOutOfRange {
                index: u64::MAX,
                size: u64::MAX
            })
        );
        // Consistency from the empty tree is rejected, even to itself.
        assert_eq!(
            verify_consistency(&empty, &empty, &[]),
            Err(ProofError::EmptyOldTree { new: 0 })
        );
        assert_eq!(
            verify_consistency(&empty, &TreeHead::new(1, h), &[]),
            Err(ProofError::EmptyOldTree { new: 1 })
        );
        assert_eq!(
            verify_consistency(&TreeHead::new(1, h), &empty, &[]),
            Err(ProofError::SizeOrder { old: 1, new: 0 })
        );
        assert_eq!(
            verify_consistency(&TreeHead::new(u64::MAX, h), &TreeHead::new(3, h), &[]),
            Err(ProofError::SizeOrder {
                old: u64::MAX,
                new: 3
            })
        );
        // Equal sizes: empty proof and equal roots only.
        let one = TreeHead::new(1, h);
        assert_eq!(verify_consistency(&one, &one, &[]), Ok(()));
        assert_eq!(
            verify_consistency(&one, &one, &[h]),
            Err(ProofError::WrongLength { got: 1, want: 0 })
        );
        assert_eq!(
            verify_consistency(&one, &TreeHead::new(1, other), &[]),
            Err(ProofError::RootMismatch {
                computed: h,
                expected: other
            })
        );
        let big = TreeHead::new(u64::MAX, h);
        assert_eq!(verify_consistency(&big, &big, &[]), Ok(()));
        // A single-leaf tree: the root is the leaf hash, the proof is empty.
        assert_eq!(verify_inclusion(&h, 0, &one, &[]), Ok(()));
        assert_eq!(
            verify_inclusion(&h, 0, &one, &[h]),
            Err(ProofError::WrongLength { got: 1, want: 0 })
        );
        assert_eq!(
            verify_inclusion(&other, 0, &one, &[]),
            Err(ProofError::RootMismatch {
                computed: other,
                expected: h
            })
        );
    }

    #[test]
    fn proof_lengths_at_the_u64_limits() {
        assert_eq!(inclusion_proof_len(0, 1), 0);
        assert_eq!(inclusion_proof_len(0, 0), 0);
        assert_eq!(inclusion_proof_len(5, 5), 0);
        assert_eq!(inclusion_proof_len(0, (1 << 63) + 1), 64);
        assert_eq!(inclusion_proof_len(1 << 63, (1 << 63) + 1), 1);
        assert_eq!(inclusion_proof_len(u64::MAX - 1, u64::MAX), 63);
        assert_eq!(inclusion_proof_len(0, u64::MAX), 64);
        assert_eq!(consistency_proof_len(0, 5), 0);
        assert_eq!(consistency_proof_len(5, 5), 0);
        assert_eq!(consistency_proof_len(6, 5), 0);
        assert_eq!(consistency_proof_len(1, u64::MAX), 64);
        // Beyond 2^63 leaves a consistency proof can need 65 hashes (see MAX_PROOF_HASHES).
        assert_eq!(consistency_proof_len(u64::MAX - 2, u64::MAX), 65);
        assert_eq!(naive_proof_len(u64::MAX - 2, u64::MAX), 65);
        assert_eq!(consistency_proof_len(3, (1 << 63) + 1), 65);
        for new in [2, 1000, 1 << 40, 1 << 63] {
            for old in [1, 3, new / 2 + 1, new - 1] {
                assert!(
                    consistency_proof_len(old, new) <= MAX_PROOF_HASHES,
                    "{old} -> {new}"
                );
            }
        }
        // Wrong lengths are reported before any hashing, whatever the sizes.
        let h = Hash::default();
        assert_eq!(
            root_from_inclusion_proof(&h, 0, u64::MAX, &[h; 3]),
            Err(ProofError::WrongLength { got: 3, want: 64 })
        );
        assert_eq!(
            root_from_consistency_proof(&TreeHead::new(u64::MAX - 2, h), u64::MAX, &[]),
            Err(ProofError::WrongLength { got: 0, want: 65 })
        );
    }

    #[test]
    fn wrong_old_root_of_power_of_two_tree_is_a_new_root_mismatch() {
        let d = leaves(8, 1);
        let new = TreeHead::new(8, mth(&d));
        let p = consistency(4, &d);
        let bad_old = TreeHead::new(4, flip(&mth(&d[..4]), 3));
        assert!(matches!(
            verify_consistency(&bad_old, &new, &p),
            Err(ProofError::RootMismatch { expected, .. }) if expected == new.root
        ));
        let p = consistency(3, &d);
        let bad_old = TreeHead::new(3, flip(&mth(&d[..3]), 3));
        assert!(matches!(
            verify_consistency(&bad_old, &new, &p),
            Err(ProofError::OldRootMismatch { expected, .. }) if expected == bad_old.root
        ));
    }

    // ---------------------------------------------------------------------------------
    // Property tests.
    // ---------------------------------------------------------------------------------

    proptest! {
        #[test]
        fn lengths_match_the_reference(a in any::<u64>(), b in any::<u64>()) {
            let (lo, hi) = (a.min(b), a.max(b));
            if lo < hi {
                prop_assert_eq!(inclusion_proof_len(lo, hi), naive_path_len(lo, hi));
                prop_assert!(inclusion_proof_len(lo, hi) <= MAX_PROOF_HASHES);
            }
            if lo > 0 && lo < hi {
                prop_assert_eq!(consistency_proof_len(lo, hi), naive_proof_len(lo, hi));
            }
            // Small sizes too, where the structure is dense.
            let (s_lo, s_hi) = (lo % 1024, hi % 1024);
            if s_lo < s_hi {
                prop_assert_eq!(inclusion_proof_len(s_lo, s_hi), naive_path_len(s_lo, s_hi));
                if s_lo > 0 {
                    prop_assert_eq!(consistency_proof_len(s_lo, s_hi), naive_proof_len(s_lo, s_hi));
                }
            }
        }

        #[test]
        fn inclusion_honest_and_tampered(
            n in 1usize..=300,
            seed in any::<u64>(),
            pick in any::<u64>(),
            bit in 0usize..256,
            other in any::<u64>(),
        ) {
            let d = leaves(n, seed);
            let m = (pick % n as u64) as usize;
            let head = TreeHead::new(n as u64, mth(&d));
            let leaf = d[m];
            let index = m as u64;
            let p = path(m, &d);

            // Honest.
            prop_assert_eq!(p.len(), inclusion_proof_len(index, head.size));
            prop_assert_eq!(root_from_inclusion_proof(&leaf, index, head.size, &p), Ok(head.root));
            prop_assert_eq!(verify_inclusion(&leaf, index, &head, &p), Ok(()));
            prop_assert_eq!(check_inclusion(&leaf, index, &head, &p), Kind::Ok);

            // A flipped bit in any proof hash.
            for j in 0..p.len() {
                let mut q = p.clone();
                q[j] = flip(&q[j], bit);
                let r = verify_inclusion(&leaf, index, &head, &q);
                let ok = matches!(
                    r,
                    Err(ProofError::RootMismatch { expected, .. }) if expected == head.root
                );
                prop_assert!(ok, "{:?}", r);
            }
            // A flipped bit in the leaf hash or in the root.
            let r = verify_inclusion(&flip(&leaf, bit), index, &head, &p);
            let ok = matches!(r, Err(ProofError::RootMismatch { .. }));
            prop_assert!(ok, "{:?}", r);
            let bad_root = flip(&head.root, bit);
            prop_assert_eq!(
                verify_inclusion(&leaf, index, &TreeHead::new(head.size, bad_root), &p),
                Err(ProofError::RootMismatch { computed: head.root, expected: bad_root })
            );
            // Another leaf of the same tree.
            let other_m = (other % n as u64) as usize;
            if d[other_m] != leaf {
                let r = verify_inclusion(&d[other_m], index, &head, &p);
                let ok = matches!(r, Err(ProofError::RootMismatch { .. }));
                prop_assert!(ok, "{:?}", r);
            }
            // Truncated and padded proofs.
            if let Some((_, short)) = p.split_last() {
                prop_assert_eq!(
                    verify_inclusion(&leaf, index, &head, short),
                    Err(ProofError::WrongLength { got: p.len() - 1, want: p.len() })
                );
                prop_assert_eq!(
                    verify_inclusion(&leaf, index, &head, &p[1..]),
                    Err(ProofError::WrongLength { got: p.len() - 1, want: p.len() })
                );
            }
            let mut long = p.clone();
            long.push(head.root);
            prop_assert_eq!(
                verify_inclusion(&leaf, index, &head, &long),
                Err(ProofError::WrongLength { got: p.len() + 1, want: p.len() })
            );
            let mut long = vec![leaf];
            long.extend_from_slice(&p);
            prop_assert_eq!(
                verify_inclusion(&leaf, index, &head, &long),
                Err(ProofError::WrongLength { got: p.len() + 1, want: p.len() })
            );

            // Wrong indices: every other index of the tree, plus hostile ones.
            for wrong in (0..n as u64).filter(|&i| i != index).take(64)
                .chain([n as u64, other, u64::MAX, index ^ 1, index.wrapping_add(1)])
            {
                if wrong == index {
                    continue;
                }
                let k = check_inclusion(&leaf, wrong, &head, &p);
                prop_assert_ne!(k, Kind::Ok);
            }
            // Wrong sizes. A proof does not commit to the size beyond its shape, so a size
            // with the same audit-path shape can still verify: the oracle says when.
            let n64 = n as u64;
            for wrong in [0, 1, n64 - 1, n64 + 1, 2 * n64, other % 1024, other, u64::MAX] {
                if wrong != head.size {
                    check_inclusion(&leaf, index, &TreeHead::new(wrong, head.root), &p);
                }
            }
        }

        #[test]
        fn consistency_honest_and_tampered(
            n in 1usize..=300,
            seed in any::<u64>(),
            pick in any::<u64>(),
            bit in 0usize..256,
            other in any::<u64>(),
        ) {
            let d = leaves(n, seed);
            let m = (pick % n as u64) as usize + 1;
            let new = TreeHead::new(n as u64, mth(&d));
            let old = TreeHead::new(m as u64, mth(&d[..m]));
            let p = consistency(m, &d);

            // Honest.
            prop_assert_eq!(p.len(), consistency_proof_len(old.size, new.size));
            prop_assert_eq!(root_from_consistency_proof(&old, new.size, &p), Ok(new.root));
            prop_assert_eq!(verify_consistency(&old, &new, &p), Ok(()));
            prop_assert_eq!(check_consistency(&old, &new, &p), Kind::Ok);

            // A flipped bit in any proof hash: the old root or the new root no longer comes out.
            for j in 0..p.len() {
                let mut q = p.clone();
                q[j] = flip(&q[j], bit);
                let k = check_consistency(&old, &new, &q);
                prop_assert!(k == Kind::OldRootMismatch || k == Kind::RootMismatch, "{:?}", k);
            }
            // Wrong roots, swapped roots.
            let bad_new = TreeHead::new(new.size, flip(&new.root, bit));
            prop_assert_eq!(
                verify_consistency(&old, &bad_new, &p),
                Err(ProofError::RootMismatch { computed: new.root, expected: bad_new.root })
            );
            let bad_old = TreeHead::new(old.size, flip(&old.root, bit));
            let want = if m == n || m.is_power_of_two() {
                Kind::RootMismatch
            } else {
                Kind::OldRootMismatch
            };
            prop_assert_eq!(check_consistency(&bad_old, &new, &p), want);
            if old.root != new.root {
                let k = check_consistency(
                    &TreeHead::new(old.size, new.root), &TreeHead::new(new.size, old.root), &p);
                prop_assert_ne!(k, Kind::Ok);
            }
            // Truncated and padded proofs.
            if !p.is_empty() {
                prop_assert_eq!(
                    verify_consistency(&old, &new, &p[..p.len() - 1]),
                    Err(ProofError::WrongLength { got: p.len() - 1, want: p.len() })
                );
                prop_assert_eq!(
                    verify_consistency(&old, &new, &p[1..]),
                    Err(ProofError::WrongLength { got: p.len() - 1, want: p.len() })
                );
            }
            let mut long = p.clone();
            long.push(new.root);
            prop_assert_eq!(
                verify_consistency(&old, &new, &long),
                Err(ProofError::WrongLength { got: p.len() + 1, want: p.len() })
            );
            let mut long = vec![old.root];
            long.extend_from_slice(&p);
            prop_assert_eq!(
                verify_consistency(&old, &new, &long),
                Err(ProofError::WrongLength { got: p.len() + 1, want: p.len() })
            );

            // Wrong sizes (old or new), including hostile ones. Like inclusion proofs, a
            // consistency proof only commits to its shape: the oracle says when it still holds.
            let sizes = [0, 1, m as u64 - 1, m as u64 + 1, n as u64 - 1, n as u64 + 1,
                2 * n as u64, other % 1024, other, u64::MAX];
            for wrong in sizes {
                if wrong != old.size {
                    check_consistency(&TreeHead::new(wrong, old.root), &new, &p);
                }
                if wrong != new.size {
                    check_consistency(&old, &TreeHead::new(wrong, new.root), &p);
                }
            }
        }

        #[test]
        fn hostile_inputs_never_panic_and_match_the_oracle(
            index in any::<u64>(),
            size in any::<u64>(),
            old_size in any::<u64>(),
            small in 0u64..64,
            hashes in proptest::collection::vec(any::<[u8; 32]>(), 0..=70),
            roots in any::<([u8; 32], [u8; 32])>(),
        ) {
            let proof: Vec<Hash> = hashes.into_iter().map(Hash).collect();
            let (r1, r2) = (Hash(roots.0), Hash(roots.1));
            let pairs = [(index, size), (small, size), (index % 300, size % 300), (small, small)];
            for (i, s) in pairs {
                check_inclusion(&r1, i, &TreeHead::new(s, r2), &proof);
            }
            let pairs = [(old_size, size), (small, size), (old_size % 300, size % 300), (small, small)];
            for (o, s) in pairs {
                check_consistency(&TreeHead::new(o, r1), &TreeHead::new(s, r2), &proof);
            }
        }
    }
}
