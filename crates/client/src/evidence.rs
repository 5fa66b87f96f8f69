//! Split-view evidence: a self-contained file proving that a log signed two checkpoints that
//! cannot both be true, checkable offline with nothing but the log's verifier key.
//!
//! Two shapes of proof:
//!
//! - **Same size, different roots**: two validly signed checkpoints of one size whose roots
//!   differ. Nothing else is needed.
//! - **Prefix mismatch**: checkpoint A of size `m` and checkpoint B of size `n > m`, plus the
//!   root `X` that B's tree gives to its first `m` leaves and a consistency proof from
//!   `(m, X)` to `n` that reproduces B's root. The proof authenticates `X` against B's signed
//!   root, so `X != A.root` shows that B's history is not an extension of A's (barring a
//!   SHA-256 collision). A proof that does not reproduce B's root proves nothing and is
//!   rejected: a bad proof alone is not evidence of a fork.

use serde::{Deserialize, Serialize};
use veritrail_ledger::checkpoint::Checkpoint;
use veritrail_ledger::note::NoteVerifier;
use veritrail_ledger::proof::{MAX_PROOF_HASHES, root_from_consistency_proof};
use veritrail_ledger::{Hash, TreeHead};

/// Identifies the file format.
pub const EVIDENCE_FORMAT: &str = "veritrail-split-view-evidence/v1";

/// Largest evidence file accepted, in bytes: two notes and a proof are a few KiB.
pub const MAX_EVIDENCE_SIZE: usize = 4 << 20;

/// The evidence file (JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// Always [`EVIDENCE_FORMAT`].
    pub format: String,
    /// The log's origin.
    pub origin: String,
    /// The log's verifier key, for the reader's information (verification uses the key the
    /// reader pins, never this one).
    pub log_key: String,
    /// The smaller (or first-seen, for equal sizes) signed checkpoint note.
    pub checkpoint_a: String,
    /// The other signed checkpoint note.
    pub checkpoint_b: String,
    /// For a prefix mismatch: the root B's tree gives to A's size, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_root_in_b: Option<String>,
    /// For a prefix mismatch: the consistency proof from `(A.size, prefix_root_in_b)` to B.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consistency_proof: Vec<String>,
    /// A human explanation; not verified.
    #[serde(default)]
    pub explanation: String,
}

/// What a valid evidence file proves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Misbehaviour {
    /// The first checkpoint.
    pub a: Checkpoint,
    /// The second checkpoint.
    pub b: Checkpoint,
    /// Which kind of contradiction.
    pub kind: MisbehaviourKind,
}

/// The kind of contradiction.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MisbehaviourKind {
    /// Two roots for one tree size.
    SameSizeDifferentRoots,
    /// B's first `a.tree.size` leaves have another root than A.
    PrefixMismatch {
        /// The root B's tree gives to A's size.
        prefix_root_in_b: Hash,
    },
}

/// Why an evidence file does not prove misbehaviour.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceError {
    /// The file is not valid evidence JSON.
    #[error("not an evidence file: {0}")]
    Malformed(String),
    /// A checkpoint is not validly signed by the pinned key for the origin.
    #[error("checkpoint {which} is not validly signed by the pinned log key: {reason}")]
    BadCheckpoint {
        /// `a` or `b`.
        which: &'static str,
        /// Why.
        reason: String,
    },
    /// The two checkpoints are consistent (or identical): nothing is proven.
    #[error("the checkpoints do not contradict each other: {0}")]
    NotProven(String),
}

fn b64_hash(text: &str, what: &str) -> Result<Hash, EvidenceError> {
    Hash::from_base64(text).map_err(|e| EvidenceError::Malformed(format!("{what}: {e}")))
}

impl Evidence {
    /// Evidence that two checkpoint notes of the same size have different roots.
    pub fn same_size(origin: &str, log_key: &NoteVerifier, a: &[u8], b: &[u8]) -> Self {
        Evidence {
            format: EVIDENCE_FORMAT.to_owned(),
            origin: origin.to_owned(),
            log_key: log_key.to_string(),
            checkpoint_a: String::from_utf8_lossy(a).into_owned(),
            checkpoint_b: String::from_utf8_lossy(b).into_owned(),
            prefix_root_in_b: None,
            consistency_proof: Vec::new(),
            explanation: "two checkpoints of the same tree size with different roots".into(),
        }
    }

    /// Evidence that B's first `A.size` leaves have root `prefix_root_in_b`, not A's root.
    pub fn prefix_mismatch(
        origin: &str,
        log_key: &NoteVerifier,
        a: &[u8],
        b: &[u8],
        prefix_root_in_b: &Hash,
        proof: &[Hash],
    ) -> Self {
        Evidence {
            prefix_root_in_b: Some(prefix_root_in_b.to_base64()),
            consistency_proof: proof.iter().map(Hash::to_base64).collect(),
            explanation:
                "checkpoint B's tree does not extend checkpoint A's: the consistency proof \
                          reproduces B's signed root from a prefix root that differs from A's root"
                    .into(),
            ..Evidence::same_size(origin, log_key, a, b)
        }
    }

    /// Parses an evidence file. This does not panic.
    ///
    /// # Errors
    /// [`EvidenceError::Malformed`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EvidenceError> {
        if bytes.len() > MAX_EVIDENCE_SIZE {
            return Err(EvidenceError::Malformed(format!(
                "larger than {MAX_EVIDENCE_SIZE} bytes"
            )));
        }
        let evidence: Evidence =
            serde_json::from_slice(bytes).map_err(|e| EvidenceError::Malformed(e.to_string()))?;
        if evidence.format != EVIDENCE_FORMAT {
            return Err(EvidenceError::Malformed(format!(
                "format is {:?}, not {EVIDENCE_FORMAT}",
                evidence.format
            )));
        }
        if evidence.consistency_proof.len() > MAX_PROOF_HASHES + 1 {
            return Err(EvidenceError::Malformed(
                "consistency proof is too long".into(),
            ));
        }
        Ok(evidence)
    }

    /// Serializes the evidence as pretty JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing a struct of strings cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Checks the evidence against the log key the reader pins (never the key in the file).
    /// This does not panic.
    ///
    /// # Errors
    /// [`EvidenceError`] when the file does not prove misbehaviour.
    pub fn verify(&self, log_key: &NoteVerifier) -> Result<Misbehaviour, EvidenceError> {
        let check = |which: &'static str, note: &str| {
            Checkpoint::verify_signed(note.as_bytes(), &self.origin, log_key)
                .map(|(c, _)| c)
                .map_err(|e| EvidenceError::BadCheckpoint {
                    which,
                    reason: e.to_string(),
                })
        };
        let a = check("a", &self.checkpoint_a)?;
        let b = check("b", &self.checkpoint_b)?;
        if a.tree.size == b.tree.size {
            return if a.tree.root != b.tree.root {
                Ok(Misbehaviour {
                    a,
                    b,
                    kind: MisbehaviourKind::SameSizeDifferentRoots,
                })
            } else {
                Err(EvidenceError::NotProven(
                    "the two checkpoints have the same size and root".into(),
                ))
            };
        }
        if a.tree.size > b.tree.size || a.tree.size == 0 {
            return Err(EvidenceError::NotProven(format!(
                "checkpoint a (size {}) must be smaller than b (size {}) and non-empty",
                a.tree.size, b.tree.size
            )));
        }
        let prefix = self
            .prefix_root_in_b
            .as_deref()
            .ok_or_else(|| EvidenceError::Malformed("prefix_root_in_b is missing".into()))?;
        let prefix = b64_hash(prefix, "prefix_root_in_b")?;
        if prefix == a.tree.root {
            return Err(EvidenceError::NotProven(
                "B's prefix root equals A's root".into(),
            ));
        }
        let proof = self
            .consistency_proof
            .iter()
            .map(|h| b64_hash(h, "consistency_proof"))
            .collect::<Result<Vec<_>, _>>()?;
        let old = TreeHead::new(a.tree.size, prefix);
        let new_root = root_from_consistency_proof(&old, b.tree.size, &proof).map_err(|e| {
            EvidenceError::NotProven(format!(
                "the proof does not authenticate the prefix root: {e}"
            ))
        })?;
        if new_root != b.tree.root {
            return Err(EvidenceError::NotProven(
                "the proof does not reproduce B's signed root, so it proves nothing about B".into(),
            ));
        }
        Ok(Misbehaviour {
            a,
            b,
            kind: MisbehaviourKind::PrefixMismatch {
                prefix_root_in_b: prefix,
            },
        })
    }
}

/// Decodes a base64 hash list (helper for callers building evidence from JSON proofs).
///
/// # Errors
/// [`EvidenceError::Malformed`] for any entry that is not 32 bytes of base64.
pub fn decode_hashes(list: &[String]) -> Result<Vec<Hash>, EvidenceError> {
    list.iter().map(|h| b64_hash(h, "hash")).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use veritrail_ledger::note::{KeyName, NoteSigner};
    use veritrail_ledger::{leaf_hash, node_hash};

    const ORIGIN: &str = "log.example/audit";

    fn signer(seed: u8) -> NoteSigner {
        NoteSigner::new(
            KeyName::new(ORIGIN).unwrap(),
            SigningKey::from_bytes(&[seed; 32]),
        )
    }

    fn note(tree: TreeHead, s: &NoteSigner) -> Vec<u8> {
        Checkpoint::new(ORIGIN, tree)
            .unwrap()
            .sign(s)
            .unwrap()
            .to_bytes()
    }

    /// Leaves 0..4 of two histories that differ at leaf 1.
    fn histories() -> ([Hash; 4], [Hash; 4]) {
        let honest = [0u8, 1, 2, 3].map(|i| leaf_hash(&[i]));
        let mut forked = honest;
        forked[1] = leaf_hash(b"rewritten");
        (honest, forked)
    }

    #[test]
    fn same_size_different_roots_is_proven() {
        let s = signer(1);
        let a = note(TreeHead::new(5, leaf_hash(b"x")), &s);
        let b = note(TreeHead::new(5, leaf_hash(b"y")), &s);
        let evidence = Evidence::same_size(ORIGIN, &s.verifier(), &a, &b);
        let parsed = Evidence::from_bytes(&evidence.to_bytes()).unwrap();
        let proven = parsed.verify(&s.verifier()).unwrap();
        assert_eq!(proven.kind, MisbehaviourKind::SameSizeDifferentRoots);
        // Identical checkpoints prove nothing.
        let same = Evidence::same_size(ORIGIN, &s.verifier(), &a, &a);
        assert!(matches!(
            same.verify(&s.verifier()),
            Err(EvidenceError::NotProven(_))
        ));
    }

    #[test]
    fn a_prefix_mismatch_is_proven_and_a_bad_proof_is_not() {
        let s = signer(1);
        let (honest, forked) = histories();
        // A: the honest tree of 3 leaves. B: the forked tree of 4 leaves.
        let a_root = node_hash(&node_hash(&honest[0], &honest[1]), &honest[2]);
        let f01 = node_hash(&forked[0], &forked[1]);
        let b_root = node_hash(&f01, &node_hash(&forked[2], &forked[3]));
        let prefix_in_b = node_hash(&f01, &forked[2]);
        // RFC 9162 consistency proof 3 -> 4 in B: [forked[2], forked[3], f01].
        let proof = [forked[2], forked[3], f01];
        let a = note(TreeHead::new(3, a_root), &s);
        let b = note(TreeHead::new(4, b_root), &s);
        let evidence =
            Evidence::prefix_mismatch(ORIGIN, &s.verifier(), &a, &b, &prefix_in_b, &proof);
        let proven = Evidence::from_bytes(&evidence.to_bytes())
            .unwrap()
            .verify(&s.verifier())
            .unwrap();
        assert_eq!(
            proven.kind,
            MisbehaviourKind::PrefixMismatch {
                prefix_root_in_b: prefix_in_b
            }
        );

        // A tampered proof does not reproduce B's root: not evidence.
        let mut bad = evidence.clone();
        bad.consistency_proof[1] = leaf_hash(b"junk").to_base64();
        assert!(matches!(
            bad.verify(&s.verifier()),
            Err(EvidenceError::NotProven(_))
        ));
        // Claiming A's own root as B's prefix proves nothing.
        let mut honest_claim = evidence.clone();
        honest_claim.prefix_root_in_b = Some(a_root.to_base64());
        assert!(matches!(
            honest_claim.verify(&s.verifier()),
            Err(EvidenceError::NotProven(_))
        ));
        // Another key's signatures are not evidence against this log.
        let other = signer(2);
        assert!(matches!(
            evidence.verify(&other.verifier()),
            Err(EvidenceError::BadCheckpoint { which: "a", .. })
        ));
    }

    #[test]
    fn hostile_files_are_rejected_without_panicking() {
        let s = signer(1);
        for bytes in [&b""[..], b"{}", b"[]", b"null", &[0xff; 10]] {
            assert!(matches!(
                Evidence::from_bytes(bytes),
                Err(EvidenceError::Malformed(_))
            ));
        }
        let mut e = Evidence::same_size(ORIGIN, &s.verifier(), b"x", b"y");
        e.format = "other".into();
        assert!(Evidence::from_bytes(&e.to_bytes()).is_err());
        e.format = EVIDENCE_FORMAT.into();
        assert!(matches!(
            e.verify(&s.verifier()),
            Err(EvidenceError::BadCheckpoint { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            if let Ok(e) = Evidence::from_bytes(&bytes) {
                let _ = e.verify(&signer(1).verifier());
            }
        }
    }
}
