//! [`VerifyingClient`]: a [`LogClient`] whose every answer is checked against the trusted
//! state of a [`LogVerifier`], and [`verify_receipt`] for offline receipts.

use std::path::PathBuf;

use veritrail_ledger::checkpoint::Checkpoint;
use veritrail_ledger::note::{Note, NoteVerifier};
use veritrail_ledger::proof::verify_inclusion;
use veritrail_ledger::receipt::{Receipt, ReceiptError};
use veritrail_ledger::tile::entry_bundle_width;
use veritrail_ledger::tree::TreeError;
use veritrail_ledger::{Hash, leaf_hash};

use crate::error::ClientError;
use crate::http::LogClient;
use crate::state::{LogVerifier, Update, VerifyError};
use crate::tiles::{TileProver, fetch_bundle};

/// Where proofs come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProofSource {
    /// Computed by the client from the log's hash tiles (works with any C2SP tlog-tiles
    /// log).
    #[default]
    Tiles,
    /// Asked from Veritrail's JSON proof API (one request per proof).
    Api,
}

/// An inclusion proof that verified against a trusted checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedInclusion {
    /// The leaf index.
    pub index: u64,
    /// The leaf hash, authenticated by the proof.
    pub leaf_hash: Hash,
    /// The audit path.
    pub proof: Vec<Hash>,
    /// The checkpoint the proof verified against.
    pub checkpoint: Checkpoint,
    /// Its signed note.
    pub checkpoint_note: Vec<u8>,
}

impl VerifiedInclusion {
    /// The proof as a `c2sp.org/tlog-proof@v1` receipt, verifiable offline.
    ///
    /// # Errors
    /// [`ReceiptError::Note`] if the checkpoint note does not parse (it verified, so this
    /// does not happen).
    pub fn receipt(&self) -> Result<Receipt, ReceiptError> {
        Ok(Receipt {
            extra: None,
            index: self.index,
            proof: self.proof.clone(),
            checkpoint: Note::from_bytes(&self.checkpoint_note).map_err(ReceiptError::Note)?,
        })
    }
}

/// Verifies a `c2sp.org/tlog-proof@v1` receipt offline: the checkpoint's signature by
/// `log_key` for `origin` (default: the key's name), and the inclusion of `entry` at the
/// receipt's index. Returns the checkpoint. This does not panic.
///
/// # Errors
/// The [`ReceiptError`] naming the first check that failed.
pub fn verify_receipt(
    receipt: &[u8],
    entry: &[u8],
    log_key: &NoteVerifier,
    origin: Option<&str>,
) -> Result<(Receipt, Checkpoint), ReceiptError> {
    let receipt = Receipt::from_bytes(receipt)?;
    let origin = origin.unwrap_or(log_key.name().as_str());
    let checkpoint = receipt.verify(entry, origin, log_key)?;
    Ok((receipt, checkpoint))
}

/// How far in the future (seconds) a cosignature's timestamp may be and still count.
pub const MAX_COSIGNATURE_SKEW: u64 = 60;

/// Checks a checkpoint note against a witness policy ([tlog-policy](https://c2sp.org/tlog-policy))
/// now: signed by a log the policy lists, and cosigned over this exact checkpoint by the
/// policy's quorum; cosignatures timestamped more than [`MAX_COSIGNATURE_SKEW`] in the future
/// do not count. This does not panic.
///
/// # Errors
/// The [`veritrail_ledger::policy::VerifyError`] naming what is missing or wrong (for an unmet
/// quorum, the missing witnesses).
pub fn verify_policy(
    policy: &veritrail_ledger::policy::Policy,
    checkpoint: &Note,
) -> Result<veritrail_ledger::policy::Verified, veritrail_ledger::policy::VerifyError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    policy.verify(checkpoint, now, MAX_COSIGNATURE_SKEW)
}

/// A client that trusts nothing the server says: checkpoints must be signed by the pinned key
/// and consistent with the trusted one, proofs must verify against it, entries must hash to
/// the proven leaves.
///
/// # Example
///
/// ```no_run
/// use std::path::Path;
/// use veritrail_client::{ClientConfig, LogClient, LogVerifier, ProofSource, VerifyingClient};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let key = "audit.example.com/log+5449b4ce+AZM1cJMQFxvav6Cd8kWpTm+neskeZzHQaBiPBIpILJl4".parse()?;
/// let state = Path::new("auditor.state");
/// let verifier = LogVerifier::load(state, "audit.example.com/log", &key)?;
/// let client = LogClient::new(&ClientConfig::new("http://127.0.0.1:7800").with_token("vt_..."))?;
/// let mut log = VerifyingClient::new(client, verifier, Some(state.to_owned()), ProofSource::Tiles);
/// let (checkpoint, update) = log.update().await?; // signature + consistency, state saved
/// let (entry, proof) = log.get(3).await?; // bytes proven against `checkpoint`
/// std::fs::write("entry-3.tlog-proof", proof.receipt()?.to_bytes())?;
/// # let _ = (checkpoint, update, entry);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct VerifyingClient {
    client: LogClient,
    verifier: LogVerifier,
    state_path: Option<PathBuf>,
    proofs: ProofSource,
}

impl VerifyingClient {
    /// Wraps `client`; when `state_path` is given, every newly trusted checkpoint is saved
    /// there.
    pub fn new(
        client: LogClient,
        verifier: LogVerifier,
        state_path: Option<PathBuf>,
        proofs: ProofSource,
    ) -> Self {
        VerifyingClient {
            client,
            verifier,
            state_path,
            proofs,
        }
    }

    /// The transport.
    pub fn client(&self) -> &LogClient {
        &self.client
    }

    /// The trusted state.
    pub fn verifier(&self) -> &LogVerifier {
        &self.verifier
    }

    /// Fetches the latest checkpoint, verifies it against the trusted state and, if it grew
    /// consistently, trusts (and saves) it.
    ///
    /// # Errors
    /// [`VerifyError::BadCheckpoint`], [`VerifyError::BadProof`], [`VerifyError::SplitView`]
    /// (with evidence), [`ClientError::Rollback`], [`ClientError::ImplausibleTreeSize`],
    /// [`ClientError::TileRootMismatch`], and transport errors.
    pub async fn update(&mut self) -> Result<(Checkpoint, Update), ClientError> {
        let note = self.client.checkpoint().await?;
        let checkpoint = self.verifier.check(&note)?;
        let (n, m) = (checkpoint.tree.size, self.verifier.trusted_size());
        if n > self.client.max_tree_size() {
            return Err(ClientError::ImplausibleTreeSize {
                size: n,
                max: self.client.max_tree_size(),
            });
        }
        let update = if n < m {
            return Err(self.older(&note, &checkpoint).await);
        } else if n == m || m == 0 {
            // Nothing to be consistent with. From tiles, trust on first use still demands
            // that the log's tiles hash to the signed root: a checkpoint whose tree the log
            // cannot serve is not trusted.
            if m == 0 && n > 0 && self.proofs == ProofSource::Tiles {
                TileProver::new(self.client.clone(), n)
                    .verified_root(&checkpoint)
                    .await?;
            }
            self.verifier.update(&note, &[], None)?
        } else {
            match self.proofs {
                ProofSource::Tiles => {
                    let client = self.client.clone();
                    update_from_tiles(&client, &mut self.verifier, &note, &checkpoint, m).await?
                }
                ProofSource::Api => {
                    let proof = self.client.consistency_proof(m, Some(n)).await?;
                    match self.verifier.update(&note, &proof.proof, None) {
                        Ok(update) => update,
                        // The log served a bad proof: rejected. Its tiles may also prove a
                        // fork, with evidence; they are asked on a copy of the state, so
                        // nothing they say can make the bad proof acceptable, and a failure
                        // to read them (a transport error) cannot hide the finding.
                        Err(VerifyError::BadProof(bad)) => {
                            let mut probe = self.verifier.clone();
                            return Err(
                                match update_from_tiles(
                                    &self.client,
                                    &mut probe,
                                    &note,
                                    &checkpoint,
                                    m,
                                )
                                .await
                                {
                                    Err(
                                        split @ ClientError::Verify(VerifyError::SplitView {
                                            ..
                                        }),
                                    ) => split,
                                    _ => VerifyError::BadProof(bad).into(),
                                },
                            );
                        }
                        Err(other) => return Err(other.into()),
                    }
                }
            }
        };
        if let Some(path) = &self.state_path {
            self.verifier.save(path)?;
        }
        Ok((checkpoint, update))
    }

    /// The error for a checkpoint older than the trusted one: evidence if the log's tiles
    /// for the trusted size show the older checkpoint contradicts it, else a rollback.
    async fn older(&self, note: &[u8], older: &Checkpoint) -> ClientError {
        let rollback = ClientError::Rollback {
            trusted: self.verifier.trusted_size(),
            got: older.tree.size,
        };
        let Some((trusted, _)) = self.verifier.trusted() else {
            return rollback;
        };
        if older.tree.size == 0 {
            return rollback;
        }
        let mut prover = TileProver::new(self.client.clone(), trusted.tree.size);
        if prover.verified_root(trusted).await.is_err() {
            return rollback;
        }
        let (Ok(prefix), Ok(proof)) = (
            prover.root_at(older.tree.size).await,
            prover.consistency_proof(older.tree.size).await,
        ) else {
            return rollback;
        };
        match self.verifier.older_split_view(note, &prefix, &proof) {
            Some(split) => split.into(),
            None => rollback,
        }
    }

    /// The trusted checkpoint, fetching one first if nothing is trusted yet.
    async fn trusted(&mut self) -> Result<(Checkpoint, Vec<u8>), ClientError> {
        if self.verifier.trusted().is_none() {
            self.update().await?;
        }
        self.verifier
            .trusted()
            .cloned()
            .ok_or_else(|| ClientError::local(std::path::Path::new("trusted state"), "empty"))
    }

    /// Proves that leaf `index` is in the log: an inclusion proof verified against the
    /// trusted checkpoint (call [`VerifyingClient::update`] first to prove against the
    /// latest one). The leaf hash comes from the log's level-0 tile and is authenticated by
    /// the proof.
    ///
    /// # Errors
    /// [`TreeError::IndexOutOfRange`] if the trusted checkpoint does not cover `index`;
    /// [`VerifyError::BadProof`], [`ClientError::TileRootMismatch`], transport errors.
    pub async fn prove(&mut self, index: u64) -> Result<VerifiedInclusion, ClientError> {
        let (checkpoint, note) = self.trusted().await?;
        let size = checkpoint.tree.size;
        if index >= size {
            return Err(TreeError::IndexOutOfRange { index, size }.into());
        }
        let mut prover = TileProver::new(self.client.clone(), size);
        let leaf = prover.leaf_hash(index).await?;
        let proof = match self.proofs {
            ProofSource::Api => self.client.inclusion_proof(index, Some(size)).await?.proof,
            ProofSource::Tiles => prover.inclusion_proof(index).await?,
        };
        verify_inclusion(&leaf, index, &checkpoint.tree, &proof).map_err(VerifyError::from)?;
        Ok(VerifiedInclusion {
            index,
            leaf_hash: leaf,
            proof,
            checkpoint,
            checkpoint_note: note,
        })
    }

    /// Proves that an entry with this leaf hash is in the log (the first such leaf), using
    /// the JSON API to find it (`/v1/proof/inclusion/by-leaf-hash`, which needs a token with
    /// the `read` role unless the server runs with `--public-read`).
    ///
    /// # Errors
    /// As [`VerifyingClient::prove`]; `404 not_found` if the log has no such leaf.
    pub async fn prove_leaf_hash(&mut self, leaf: &Hash) -> Result<VerifiedInclusion, ClientError> {
        let (checkpoint, note) = self.trusted().await?;
        let size = checkpoint.tree.size;
        let answer = self
            .client
            .inclusion_proof_by_leaf_hash(leaf, Some(size))
            .await?;
        verify_inclusion(leaf, answer.index, &checkpoint.tree, &answer.proof)
            .map_err(VerifyError::from)?;
        Ok(VerifiedInclusion {
            index: answer.index,
            leaf_hash: *leaf,
            proof: answer.proof,
            checkpoint,
            checkpoint_note: note,
        })
    }

    /// Fetches entry `index` and proves it: its bytes must hash to the leaf the trusted
    /// checkpoint commits to. With proofs from tiles the entry is read from its entry bundle
    /// (so this works against any C2SP tlog-tiles log, a mirror in a bucket included); with
    /// the API, from `GET /v1/entries/{index}`.
    ///
    /// # Errors
    /// [`ClientError::EntryMismatch`]; as [`VerifyingClient::prove`].
    pub async fn get(&mut self, index: u64) -> Result<(Vec<u8>, VerifiedInclusion), ClientError> {
        let proven = self.prove(index).await?;
        let entry = match self.proofs {
            ProofSource::Api => self.client.entry(index).await?,
            ProofSource::Tiles => {
                let bundle = index / 256;
                let width = entry_bundle_width(bundle, proven.checkpoint.tree.size).unwrap_or(0);
                let entries = fetch_bundle(&self.client, bundle, width).await?;
                let offset = usize::try_from(index % 256).unwrap_or(usize::MAX);
                entries
                    .into_iter()
                    .nth(offset)
                    .ok_or_else(|| ClientError::MissingData {
                        path: format!("tile/entries/{bundle}"),
                        reason: format!("the bundle holds no entry {index}"),
                    })?
            }
        };
        let computed = leaf_hash(&entry);
        if computed != proven.leaf_hash {
            return Err(ClientError::EntryMismatch {
                index,
                computed,
                expected: proven.leaf_hash,
            });
        }
        Ok((entry, proven))
    }
}

/// Checks a new checkpoint's consistency with the trusted one from the log's tiles: the tiles
/// must hash to the new signed root; then the consistency proof and the prefix root they give
/// go to `verifier` (which turns a contradiction into split-view evidence).
async fn update_from_tiles(
    client: &LogClient,
    verifier: &mut LogVerifier,
    note: &[u8],
    checkpoint: &Checkpoint,
    m: u64,
) -> Result<Update, ClientError> {
    let mut prover = TileProver::new(client.clone(), checkpoint.tree.size);
    prover.verified_root(checkpoint).await?;
    let prefix = prover.root_at(m).await?;
    let proof = prover.consistency_proof(m).await?;
    Ok(verifier.update(note, &proof, Some(prefix))?)
}
