//! Trusted state per log: the origin, the pinned verifier key and the latest checkpoint this
//! client verified, persisted atomically in a small JSON file.
//!
//! The file is replaced by write-to-temporary, fsync, rename, fsync of the directory, so a
//! crash leaves either the old or the new state, never a torn one. The state moves forward
//! only through [`LogVerifier::update`], which demands a valid signature and, for growth, a
//! valid consistency proof.

use std::path::Path;

use serde::{Deserialize, Serialize};
use veritrail_ledger::Hash;
use veritrail_ledger::checkpoint::{Checkpoint, CheckpointError};
use veritrail_ledger::note::NoteVerifier;
use veritrail_ledger::proof::{ProofError, verify_consistency};

use crate::evidence::Evidence;

/// Identifies the state file format.
pub const STATE_FORMAT: &str = "veritrail-trusted-state/v1";

/// Largest state file accepted, in bytes.
const MAX_STATE_SIZE: u64 = 1 << 20;

/// The persisted form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    format: String,
    origin: String,
    log_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checkpoint: Option<String>,
}

/// Why a checkpoint was not accepted, or state could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The checkpoint is not validly signed by the pinned key for this origin.
    #[error("checkpoint rejected: {0}")]
    BadCheckpoint(#[source] CheckpointError),
    /// A proof did not verify.
    #[error("proof rejected: {0}")]
    BadProof(#[from] ProofError),
    /// The checkpoint is signed by the log but does not satisfy the witness policy (too few
    /// valid cosignatures, a forged or misplaced one, or a log the policy does not list).
    #[error("checkpoint rejected by the witness policy: {0}")]
    Policy(#[source] veritrail_ledger::policy::VerifyError),
    /// The log presented a checkpoint that contradicts one already trusted; the evidence
    /// proves it offline.
    #[error("split view: the log signed two inconsistent checkpoints (sizes {a} and {b})")]
    SplitView {
        /// The smaller size.
        a: u64,
        /// The larger size.
        b: u64,
        /// The proof of misbehaviour.
        evidence: Box<Evidence>,
    },
    /// The state file is unreadable, malformed, or for another log.
    #[error("trusted state {path}: {reason}")]
    State {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// What [`LogVerifier::update`] concluded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Update {
    /// The first checkpoint seen (trust on first use, under the pinned key).
    First,
    /// The log grew consistently; the new checkpoint is now trusted.
    Grew {
        /// The previously trusted size.
        from: u64,
    },
    /// The same checkpoint as the trusted one.
    Unchanged,
    /// An older checkpoint, consistent with the trusted one; trust is unchanged.
    Older,
}

/// Verifies a log's checkpoints against a pinned key and the latest trusted checkpoint.
#[derive(Clone, Debug)]
pub struct LogVerifier {
    origin: String,
    key: NoteVerifier,
    trusted: Option<(Checkpoint, Vec<u8>)>,
    policy: Option<std::sync::Arc<veritrail_ledger::policy::Policy>>,
}

impl LogVerifier {
    /// A verifier with no trusted checkpoint yet.
    pub fn new(origin: impl Into<String>, key: NoteVerifier) -> Self {
        LogVerifier {
            origin: origin.into(),
            key,
            trusted: None,
            policy: None,
        }
    }

    /// Also requires every new checkpoint to satisfy `policy`: signed by a log it lists and
    /// cosigned by its quorum ([`crate::verify_policy`]). The trusted state is not re-checked.
    #[must_use]
    pub fn with_policy(mut self, policy: veritrail_ledger::policy::Policy) -> Self {
        self.policy = Some(std::sync::Arc::new(policy));
        self
    }

    /// The log's origin.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The pinned verifier key.
    pub fn key(&self) -> &NoteVerifier {
        &self.key
    }

    /// The trusted checkpoint and its note bytes, if any.
    pub fn trusted(&self) -> Option<&(Checkpoint, Vec<u8>)> {
        self.trusted.as_ref()
    }

    /// The trusted tree size (0 before the first checkpoint).
    pub fn trusted_size(&self) -> u64 {
        self.trusted.as_ref().map_or(0, |(c, _)| c.tree.size)
    }

    /// Checks a signed checkpoint note: signature by the pinned key, origin, and with a
    /// policy ([`LogVerifier::with_policy`]) its witness quorum. This does not panic.
    ///
    /// # Errors
    /// [`VerifyError::BadCheckpoint`], [`VerifyError::Policy`].
    pub fn check(&self, note: &[u8]) -> Result<Checkpoint, VerifyError> {
        let (checkpoint, parsed) = Checkpoint::verify_signed(note, &self.origin, &self.key)
            .map_err(VerifyError::BadCheckpoint)?;
        if let Some(policy) = &self.policy {
            crate::verify_policy(policy, &parsed).map_err(VerifyError::Policy)?;
        }
        Ok(checkpoint)
    }

    /// Offers a new checkpoint with the consistency proof between it and the trusted one
    /// (from the trusted size to the new size if it is larger, the other way if smaller;
    /// empty for equal sizes or when nothing is trusted yet). `prefix_root` is, when the
    /// caller has the new tree's data, the root the new tree gives to the trusted size: it
    /// turns a failed consistency check into [`VerifyError::SplitView`] evidence.
    ///
    /// # Errors
    /// [`VerifyError::BadCheckpoint`], [`VerifyError::BadProof`] (trust unchanged), or
    /// [`VerifyError::SplitView`] with evidence when the log provably contradicted itself.
    pub fn update(
        &mut self,
        note: &[u8],
        proof: &[Hash],
        prefix_root: Option<Hash>,
    ) -> Result<Update, VerifyError> {
        let new = self.check(note)?;
        let Some((trusted, trusted_note)) = &self.trusted else {
            self.trusted = Some((new, note.to_vec()));
            return Ok(Update::First);
        };
        let (old, new_tree) = (trusted.tree, new.tree);
        if new_tree.size == old.size {
            if new_tree.root == old.root {
                return Ok(Update::Unchanged);
            }
            let evidence = Evidence::same_size(&self.origin, &self.key, trusted_note, note);
            return Err(VerifyError::SplitView {
                a: old.size,
                b: new_tree.size,
                evidence: Box::new(evidence),
            });
        }
        if new_tree.size < old.size {
            // An older checkpoint must be a prefix of the trusted one.
            if new_tree.size == 0 {
                return Ok(Update::Older);
            }
            verify_consistency(&new_tree, &old, proof)?;
            return Ok(Update::Older);
        }
        if old.size == 0 {
            self.trusted = Some((new, note.to_vec()));
            return Ok(Update::Grew { from: 0 });
        }
        match verify_consistency(&old, &new_tree, proof) {
            Ok(()) => {
                self.trusted = Some((new, note.to_vec()));
                Ok(Update::Grew { from: old.size })
            }
            Err(err) => {
                let evidence = prefix_root
                    .filter(|p| *p != old.root)
                    .map(|p| {
                        Evidence::prefix_mismatch(
                            &self.origin,
                            &self.key,
                            trusted_note,
                            note,
                            &p,
                            proof,
                        )
                    })
                    .filter(|e| e.verify(&self.key).is_ok());
                match evidence {
                    Some(evidence) => Err(VerifyError::SplitView {
                        a: old.size,
                        b: new_tree.size,
                        evidence: Box::new(evidence),
                    }),
                    None => Err(VerifyError::BadProof(err)),
                }
            }
        }
    }

    /// Split-view evidence against an *older* checkpoint `note` (size `m` below the trusted
    /// size): `prefix_root` is the root the trusted tree gives to its first `m` leaves and
    /// `proof` the consistency proof from `(m, prefix_root)` to the trusted checkpoint, both
    /// computed from the trusted tree's tiles. Returns [`VerifyError::SplitView`] when they
    /// prove the older checkpoint contradicts the trusted one, `None` otherwise (then the
    /// older checkpoint is merely a rollback, or the data proves nothing). This does not
    /// panic.
    pub fn older_split_view(
        &self,
        note: &[u8],
        prefix_root: &Hash,
        proof: &[Hash],
    ) -> Option<VerifyError> {
        let older = self.check(note).ok()?;
        let (trusted, trusted_note) = self.trusted.as_ref()?;
        let (m, n) = (older.tree.size, trusted.tree.size);
        if m == 0 || m >= n || *prefix_root == older.tree.root {
            return None;
        }
        let evidence = Evidence::prefix_mismatch(
            &self.origin,
            &self.key,
            note,
            trusted_note,
            prefix_root,
            proof,
        );
        evidence.verify(&self.key).ok()?;
        Some(VerifyError::SplitView {
            a: m,
            b: n,
            evidence: Box::new(evidence),
        })
    }

    /// Loads the state file, or returns a verifier with no trusted checkpoint if it does not
    /// exist. The file must be for `origin` and `key`.
    ///
    /// # Errors
    /// [`VerifyError::State`] for an unreadable, malformed or foreign file, or a stored
    /// checkpoint that no longer verifies.
    pub fn load(path: &Path, origin: &str, key: &NoteVerifier) -> Result<Self, VerifyError> {
        let fail = |reason: String| VerifyError::State {
            path: path.display().to_string(),
            reason,
        };
        let mut verifier = LogVerifier::new(origin, key.clone());
        let bytes = match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(verifier),
            Err(e) => return Err(fail(e.to_string())),
            Ok(meta) if meta.len() > MAX_STATE_SIZE => {
                return Err(fail("larger than 1 MiB".into()));
            }
            Ok(_) => std::fs::read(path).map_err(|e| fail(e.to_string()))?,
        };
        let file: StateFile = serde_json::from_slice(&bytes).map_err(|e| fail(e.to_string()))?;
        if file.format != STATE_FORMAT {
            return Err(fail(format!(
                "format {:?} is not {STATE_FORMAT}",
                file.format
            )));
        }
        if file.origin != origin || file.log_key != key.to_string() {
            return Err(fail(format!(
                "it is for log {:?} with key {}, not {origin:?} with key {key}",
                file.origin, file.log_key
            )));
        }
        if let Some(note) = file.checkpoint {
            let checkpoint = verifier
                .check(note.as_bytes())
                .map_err(|e| fail(e.to_string()))?;
            verifier.trusted = Some((checkpoint, note.into_bytes()));
        }
        Ok(verifier)
    }

    /// Saves the state atomically (temporary file, fsync, rename, directory fsync).
    ///
    /// # Errors
    /// [`VerifyError::State`] on I/O failure; the previous file is then untouched.
    pub fn save(&self, path: &Path) -> Result<(), VerifyError> {
        let fail = |reason: String| VerifyError::State {
            path: path.display().to_string(),
            reason,
        };
        let file = StateFile {
            format: STATE_FORMAT.to_owned(),
            origin: self.origin.clone(),
            log_key: self.key.to_string(),
            checkpoint: self
                .trusted
                .as_ref()
                .map(|(_, n)| String::from_utf8_lossy(n).into_owned()),
        };
        let json = serde_json::to_vec_pretty(&file).map_err(|e| fail(e.to_string()))?;
        crate::atomic_file::write_atomically(path, &json).map_err(|e| fail(e.to_string()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use veritrail_ledger::note::{KeyName, NoteSigner};
    use veritrail_ledger::{TreeHead, leaf_hash, node_hash};

    const ORIGIN: &str = "log.example/audit";

    fn signer() -> NoteSigner {
        NoteSigner::new(
            KeyName::new(ORIGIN).unwrap(),
            SigningKey::from_bytes(&[3; 32]),
        )
    }

    fn note(size: u64, root: Hash) -> Vec<u8> {
        Checkpoint::new(ORIGIN, TreeHead::new(size, root))
            .unwrap()
            .sign(&signer())
            .unwrap()
            .to_bytes()
    }

    #[test]
    fn grows_only_along_a_valid_consistency_proof() {
        let l: Vec<Hash> = (0u8..4).map(|i| leaf_hash(&[i])).collect();
        let r2 = node_hash(&l[0], &l[1]);
        let r23 = node_hash(&l[2], &l[3]);
        let r4 = node_hash(&r2, &r23);
        let mut v = LogVerifier::new(ORIGIN, signer().verifier());
        assert_eq!(v.update(&note(2, r2), &[], None).unwrap(), Update::First);
        assert_eq!(
            v.update(&note(2, r2), &[], None).unwrap(),
            Update::Unchanged
        );
        // A bad proof leaves trust unchanged and is not evidence.
        assert!(matches!(
            v.update(&note(4, r4), &[l[0]], None),
            Err(VerifyError::BadProof(_))
        ));
        assert_eq!(v.trusted_size(), 2);
        assert_eq!(
            v.update(&note(4, r4), &[r23], None).unwrap(),
            Update::Grew { from: 2 }
        );
        // An older checkpoint must be a prefix.
        assert_eq!(v.update(&note(2, r2), &[r23], None).unwrap(), Update::Older);
        assert!(matches!(
            v.update(&note(2, leaf_hash(b"x")), &[r23], None),
            Err(VerifyError::BadProof(_))
        ));
        // Same size, other root: split view with evidence that verifies offline.
        let Err(VerifyError::SplitView { evidence, .. }) =
            v.update(&note(4, leaf_hash(b"fork")), &[], None)
        else {
            panic!("expected a split view");
        };
        evidence.verify(&signer().verifier()).unwrap();
        assert_eq!(v.trusted_size(), 4);
    }

    #[test]
    fn rejects_other_keys_and_origins() {
        let mut v = LogVerifier::new(ORIGIN, signer().verifier());
        let other = NoteSigner::new(
            KeyName::new(ORIGIN).unwrap(),
            SigningKey::from_bytes(&[4; 32]),
        );
        let forged = Checkpoint::new(ORIGIN, TreeHead::empty())
            .unwrap()
            .sign(&other)
            .unwrap()
            .to_bytes();
        assert!(matches!(
            v.update(&forged, &[], None),
            Err(VerifyError::BadCheckpoint(_))
        ));
        let foreign = NoteSigner::new(
            KeyName::new("other.example/log").unwrap(),
            SigningKey::from_bytes(&[3; 32]),
        );
        let mut w = LogVerifier::new("other.example/log", foreign.verifier());
        let cp = Checkpoint::new("other.example/log", TreeHead::empty())
            .unwrap()
            .sign(&foreign)
            .unwrap();
        assert!(w.update(&cp.to_bytes(), &[], None).is_ok());
        assert!(matches!(
            v.update(&cp.to_bytes(), &[], None),
            Err(VerifyError::BadCheckpoint(_))
        ));
    }

    #[test]
    fn state_round_trips_atomically_and_refuses_another_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let key = signer().verifier();
        let mut v = LogVerifier::load(&path, ORIGIN, &key).unwrap();
        assert_eq!(v.trusted_size(), 0);
        v.update(&note(1, leaf_hash(b"a")), &[], None).unwrap();
        v.save(&path).unwrap();
        let loaded = LogVerifier::load(&path, ORIGIN, &key).unwrap();
        assert_eq!(loaded.trusted(), v.trusted());
        assert!(!dir.path().join(".state.json.tmp").exists());
        assert!(matches!(
            LogVerifier::load(&path, "other.example/log", &key),
            Err(VerifyError::State { .. })
        ));
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(
            LogVerifier::load(&path, ORIGIN, &key),
            Err(VerifyError::State { .. })
        ));
    }

    proptest::proptest! {
        /// Hostile checkpoints, proofs and state files: an error or a documented outcome,
        /// never a panic, and trust moves only for a validly signed, consistent checkpoint.
        #[test]
        fn hostile_updates_never_panic_or_move_trust_wrongly(
            size in proptest::prelude::any::<u64>(),
            root in proptest::prelude::any::<[u8; 32]>(),
            proof in proptest::collection::vec(proptest::prelude::any::<[u8; 32]>(), 0..70),
            garbage in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            prefix in proptest::prelude::any::<Option<[u8; 32]>>(),
        ) {
            let l: Vec<Hash> = (0u8..2).map(|i| leaf_hash(&[i])).collect();
            let mut verifier = LogVerifier::new(ORIGIN, signer().verifier());
            verifier.update(&note(2, node_hash(&l[0], &l[1])), &[], None).unwrap();
            let proof: Vec<Hash> = proof.into_iter().map(Hash).collect();
            let prefix = prefix.map(Hash);
            let before = verifier.trusted().cloned();
            proptest::prop_assert!(verifier.update(&garbage, &proof, prefix).is_err());
            proptest::prop_assert_eq!(verifier.trusted().cloned(), before.clone());
            if let Ok(Update::Grew { from }) =
                verifier.update(&note(size, Hash(root)), &proof, prefix)
            {
                // Only a real consistency proof from (2, r2) moves trust.
                proptest::prop_assert_eq!(from, 2);
                let old = before.unwrap().0.tree;
                proptest::prop_assert!(verify_consistency(&old, &TreeHead::new(size, Hash(root)), &proof).is_ok());
            }
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("state.json");
            std::fs::write(&path, &garbage).unwrap();
            proptest::prop_assert!(LogVerifier::load(&path, ORIGIN, &signer().verifier()).is_err());
        }
    }
}
