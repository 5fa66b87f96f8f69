//! RFC 6962 / RFC 9162 proof vectors (transparency-dev/merkle `testdata/inclusion` and
//! `testdata/consistency`) and real proofs from the Argon2020 Certificate Transparency log.
//!
//! Every vector file is checked; all disagreements with `wantErr` are collected and reported
//! together at the end.
//!
//! How the vectors' values reach the typed API:
//!
//! - sizes and indices are `u64` (they reach `u64::MAX`);
//! - a leaf hash or proof hash that is not valid base64 of exactly 32 bytes is an error
//!   result (our API cannot even hold it);
//! - a root is an opaque value the verifier only compares, as in the Go reference API the
//!   vectors were written for. A 32-byte root is used as it is; a root of any other length can
//!   never equal a computed root, so it is replaced by a stand-in that is equal only to the
//!   stand-in of the same bytes and (by SHA-256 collision resistance) to no computed root.
//!   This matters for one vector only: `consistency/additional/sizes-are-equal-one-and-
//!   proof-is-empty.json`, two equal 12-byte roots at equal sizes with an empty proof, which
//!   must be valid.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use veritrail_ledger::proof::{
    ProofError, inclusion_proof_len, root_from_consistency_proof, root_from_inclusion_proof,
    verify_consistency, verify_inclusion,
};
use veritrail_ledger::{Hash, TreeHead};

/// Number of vector files under `merkle/` (README: 196).
const VECTOR_FILES: usize = 196;

/// `merkle/inclusion/**.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InclusionCase {
    leaf_idx: u64,
    tree_size: u64,
    root: String,
    leaf_hash: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

/// `merkle/consistency/**.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConsistencyCase {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

/// Decodes a leaf or proof hash: anything but base64 of exactly 32 bytes is an error.
fn strict_hash(what: &str, b64: &str) -> Result<Hash, String> {
    Hash::from_base64(b64).map_err(|e| format!("{what}: {e}"))
}

/// Decodes a root as an opaque value (see the module docs).
fn opaque_root(what: &str, b64: &str) -> Result<Hash, String> {
    let bytes = STANDARD.decode(b64).map_err(|e| format!("{what}: {e}"))?;
    Ok(Hash::try_from_slice(&bytes).unwrap_or_else(|_| {
        let mut h = Sha256::new();
        h.update(b"veritrail conformance: opaque non-32-byte root\0");
        h.update(&bytes);
        Hash(h.finalize().into())
    }))
}

fn proof_hashes(proof: Option<&[String]>) -> Result<Vec<Hash>, String> {
    proof
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, h)| strict_hash(&format!("proof[{i}]"), h))
        .collect()
}

fn run_inclusion(case: &InclusionCase) -> Result<(), String> {
    let leaf = strict_hash("leafHash", &case.leaf_hash)?;
    let root = opaque_root("root", &case.root)?;
    let proof = proof_hashes(case.proof.as_deref())?;
    let tree = TreeHead::new(case.tree_size, root);
    verify_inclusion(&leaf, case.leaf_idx, &tree, &proof).map_err(|e| e.to_string())
}

fn run_consistency(case: &ConsistencyCase) -> Result<(), String> {
    let old = TreeHead::new(case.size1, opaque_root("root1", &case.root1)?);
    let new = TreeHead::new(case.size2, opaque_root("root2", &case.root2)?);
    let proof = proof_hashes(case.proof.as_deref())?;
    verify_consistency(&old, &new, &proof).map_err(|e| e.to_string())
}

/// All `*.json` files under `dir`, recursively, sorted.
fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = fs::read_dir(&d).unwrap_or_else(|e| panic!("read {}: {e}", d.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "json") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[derive(Default)]
struct Tally {
    files: usize,
    valid: usize,
    disagreements: Vec<String>,
}

impl Tally {
    fn record(&mut self, path: &Path, desc: &str, want_err: bool, got: Result<(), String>) {
        self.files += 1;
        if got.is_ok() {
            self.valid += 1;
        }
        if got.is_err() != want_err {
            self.disagreements.push(format!(
                "{} ({desc}): wantErr={want_err}, got {got:?}",
                path.display()
            ));
        }
    }
}

#[test]
fn merkle_vectors_agree_with_want_err() {
    let root = crate::vectors_dir().join("merkle");
    let mut inclusion = Tally::default();
    for path in json_files(&root.join("inclusion")) {
        let text = fs::read_to_string(&path).unwrap();
        match serde_json::from_str::<InclusionCase>(&text) {
            Ok(case) => inclusion.record(&path, &case.desc, case.want_err, run_inclusion(&case)),
            Err(e) => inclusion
                .disagreements
                .push(format!("{}: bad JSON: {e}", path.display())),
        }
    }
    let mut consistency = Tally::default();
    for path in json_files(&root.join("consistency")) {
        let text = fs::read_to_string(&path).unwrap();
        match serde_json::from_str::<ConsistencyCase>(&text) {
            Ok(case) => {
                consistency.record(&path, &case.desc, case.want_err, run_consistency(&case));
            }
            Err(e) => consistency
                .disagreements
                .push(format!("{}: bad JSON: {e}", path.display())),
        }
    }

    let disagreements: Vec<&String> = inclusion
        .disagreements
        .iter()
        .chain(&consistency.disagreements)
        .collect();
    let total = inclusion.files + consistency.files;
    assert!(
        disagreements.is_empty(),
        "{} of {total} vector files disagree with wantErr:\n{}",
        disagreements.len(),
        disagreements
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(total, VECTOR_FILES, "vector file count");
    // Each of the 12 folders has one happy path; the rest must fail.
    assert_eq!(inclusion.valid + consistency.valid, 12);
    assert!(inclusion.valid >= 6 && consistency.valid >= 6);
}

/// The pinned Argon2020 values from `vectors/README.md`.
const ARGON_TREE_SIZE: u64 = 961_984_011;
const ARGON_ROOT: &str = "AWxD3p811N3m4WTinWRXPvBZHfT9IR9g/R4C7SKLPiU=";
const ARGON_LEAF_INDEX: u64 = 10_000;
const ARGON_LEAF_HASH: &str = "nCs3mfIydh9x4CKyQ+u2xtmpxmFggA5MLymHwNQSlLg=";
const ARGON_OLD_SIZE: u64 = 3_654_490;
const ARGON_OLD_ROOT: &str = "AuIZ5V6sDUj1vn3Y1K85oOaQ7y+FJJKtyRTl1edIKBQ=";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Argon {
    inclusion: ArgonInclusion,
    consistency: ArgonConsistency,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ArgonInclusion {
    tree_size: u64,
    root: String,
    leaf_idx: u64,
    leaf_hash: String,
    proof: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArgonConsistency {
    size1: u64,
    root1: String,
    size2: u64,
    root2: String,
    proof: Vec<String>,
}

fn argon() -> (Argon, TreeHead, TreeHead, Hash, Vec<Hash>, Vec<Hash>) {
    let text = fs::read_to_string(crate::vectors_dir().join("ct/argon2020.json")).unwrap();
    let a: Argon = serde_json::from_str(&text).unwrap();
    // The file holds the values the README pins.
    assert_eq!(a.inclusion.tree_size, ARGON_TREE_SIZE);
    assert_eq!(a.inclusion.root, ARGON_ROOT);
    assert_eq!(a.inclusion.leaf_idx, ARGON_LEAF_INDEX);
    assert_eq!(a.inclusion.leaf_hash, ARGON_LEAF_HASH);
    assert_eq!(
        (a.consistency.size1, a.consistency.root1.as_str()),
        (ARGON_OLD_SIZE, ARGON_OLD_ROOT)
    );
    assert_eq!(
        (a.consistency.size2, a.consistency.root2.as_str()),
        (ARGON_TREE_SIZE, ARGON_ROOT)
    );

    let new = TreeHead::new(ARGON_TREE_SIZE, Hash::from_base64(ARGON_ROOT).unwrap());
    let old = TreeHead::new(ARGON_OLD_SIZE, Hash::from_base64(ARGON_OLD_ROOT).unwrap());
    let leaf = Hash::from_base64(ARGON_LEAF_HASH).unwrap();
    let decode =
        |v: &[String]| -> Vec<Hash> { v.iter().map(|h| Hash::from_base64(h).unwrap()).collect() };
    let inclusion = decode(&a.inclusion.proof);
    let consistency = decode(&a.consistency.proof);
    (a, old, new, leaf, inclusion, consistency)
}

fn flip(h: &Hash, bit: usize) -> Hash {
    let mut b = h.0;
    b[bit / 8] ^= 1 << (bit % 8);
    Hash(b)
}

#[test]
fn argon2020_real_proofs_verify() {
    let (_, old, new, leaf, inclusion, consistency) = argon();
    assert_eq!(
        inclusion.len(),
        inclusion_proof_len(ARGON_LEAF_INDEX, ARGON_TREE_SIZE)
    );
    assert_eq!(
        verify_inclusion(&leaf, ARGON_LEAF_INDEX, &new, &inclusion),
        Ok(())
    );
    assert_eq!(
        root_from_inclusion_proof(&leaf, ARGON_LEAF_INDEX, ARGON_TREE_SIZE, &inclusion),
        Ok(new.root)
    );
    assert_eq!(verify_consistency(&old, &new, &consistency), Ok(()));
    assert_eq!(
        root_from_consistency_proof(&old, ARGON_TREE_SIZE, &consistency),
        Ok(new.root)
    );
}

#[test]
fn argon2020_tampered_proofs_fail() {
    let (_, old, new, leaf, inclusion, consistency) = argon();

    // A flipped bit anywhere in the inclusion proof changes the root.
    for i in 0..inclusion.len() {
        for bit in [0, 77, 255] {
            let mut p = inclusion.clone();
            p[i] = flip(&p[i], bit);
            assert!(
                matches!(
                    verify_inclusion(&leaf, ARGON_LEAF_INDEX, &new, &p),
                    Err(ProofError::RootMismatch { expected, .. }) if expected == new.root
                ),
                "inclusion proof[{i}] bit {bit}"
            );
        }
    }
    // Wrong leaf, index, size, root; truncated and padded proof.
    assert!(matches!(
        verify_inclusion(&flip(&leaf, 1), ARGON_LEAF_INDEX, &new, &inclusion),
        Err(ProofError::RootMismatch { .. })
    ));
    for index in [ARGON_LEAF_INDEX - 1, ARGON_LEAF_INDEX + 1, 0] {
        assert!(matches!(
            verify_inclusion(&leaf, index, &new, &inclusion),
            Err(ProofError::RootMismatch { .. })
        ));
    }
    assert_eq!(
        verify_inclusion(&leaf, ARGON_TREE_SIZE, &new, &inclusion),
        Err(ProofError::IndexOutOfRange {
            index: ARGON_TREE_SIZE,
            size: ARGON_TREE_SIZE
        })
    );
    // An inclusion proof commits to the tree size only through the shape of the audit path
    // (RFC 9162): for leaf 10000, every size in (2^29, 2^30] has the same 30 left/right
    // steps. The size is bound by the signed checkpoint, not by the proof.
    for size in [
        ARGON_TREE_SIZE - 1,
        ARGON_TREE_SIZE + 1,
        (1 << 29) + 1,
        1 << 30,
    ] {
        let head = TreeHead::new(size, new.root);
        assert_eq!(
            verify_inclusion(&leaf, ARGON_LEAF_INDEX, &head, &inclusion),
            Ok(())
        );
    }
    // Sizes with another shape fail on the length, before any hashing.
    for (size, want) in [
        (1 << 40, 40),
        ((1 << 30) + 1, 31),
        (1 << 29, 29),
        (10_001, 5),
    ] {
        assert_eq!(
            verify_inclusion(
                &leaf,
                ARGON_LEAF_INDEX,
                &TreeHead::new(size, new.root),
                &inclusion
            ),
            Err(ProofError::WrongLength { got: 30, want }),
            "size {size}"
        );
    }
    let bad_root = flip(&new.root, 200);
    assert_eq!(
        verify_inclusion(
            &leaf,
            ARGON_LEAF_INDEX,
            &TreeHead::new(ARGON_TREE_SIZE, bad_root),
            &inclusion
        ),
        Err(ProofError::RootMismatch {
            computed: new.root,
            expected: bad_root
        })
    );
    assert_eq!(
        verify_inclusion(&leaf, ARGON_LEAF_INDEX, &new, &inclusion[1..]),
        Err(ProofError::WrongLength { got: 29, want: 30 })
    );
    let mut padded = inclusion.clone();
    padded.push(new.root);
    assert_eq!(
        verify_inclusion(&leaf, ARGON_LEAF_INDEX, &new, &padded),
        Err(ProofError::WrongLength { got: 31, want: 30 })
    );

    // A flipped bit anywhere in the consistency proof breaks the old or the new root.
    for i in 0..consistency.len() {
        let mut p = consistency.clone();
        p[i] = flip(&p[i], 9);
        assert!(
            matches!(
                verify_consistency(&old, &new, &p),
                Err(ProofError::OldRootMismatch { .. } | ProofError::RootMismatch { .. })
            ),
            "consistency proof[{i}]"
        );
    }
    let bad_old = TreeHead::new(ARGON_OLD_SIZE, flip(&old.root, 0));
    assert!(matches!(
        verify_consistency(&bad_old, &new, &consistency),
        Err(ProofError::OldRootMismatch { .. })
    ));
    let bad_new = TreeHead::new(ARGON_TREE_SIZE, bad_root);
    assert_eq!(
        verify_consistency(&old, &bad_new, &consistency),
        Err(ProofError::RootMismatch {
            computed: new.root,
            expected: bad_root
        })
    );
    for size in [ARGON_OLD_SIZE - 1, ARGON_OLD_SIZE + 1] {
        assert!(verify_consistency(&TreeHead::new(size, old.root), &new, &consistency).is_err());
    }
    assert_eq!(
        verify_consistency(&new, &old, &consistency),
        Err(ProofError::SizeOrder {
            old: ARGON_TREE_SIZE,
            new: ARGON_OLD_SIZE
        })
    );
    assert_eq!(
        verify_consistency(&old, &new, &consistency[..29]),
        Err(ProofError::WrongLength { got: 29, want: 30 })
    );
}
