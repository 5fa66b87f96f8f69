//! Cosignatures for the log's checkpoints: after signing a checkpoint the publisher asks the
//! witnesses of a [tlog-policy](https://c2sp.org/tlog-policy) in parallel
//! ([tlog-witness](https://c2sp.org/tlog-witness)) and publishes the checkpoint with their
//! cosignatures as soon as the policy's quorum is met.
//!
//! Per witness it keeps a size hint: the size the witness last cosigned, as far as the log
//! knows (0 at start). A request says `old <hint>` with the consistency proof from the hint;
//! a `409` with a size body resets the hint and the request is sent again at once. Proofs are
//! computed once per old size and shared between the witnesses at that size. A request that
//! fails (a timeout, a refused connection, a 5xx) is retried with exponential back-off until
//! the round's attempts are spent; the requests that are still running when the quorum is met
//! go on in the background, so a slow witness's hint stays current.
//!
//! Fail-closed by default: without a quorum nothing new is published (appends still become
//! durable, and `wait=published` answers `503 witness_quorum` naming the missing witnesses),
//! and the publisher tries again a second later. With `fail_open` the checkpoint is published
//! with the cosignatures it has, and the metrics and logs say so.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use veritrail_ledger::cosignature::verify_cosignature;
use veritrail_ledger::hash::{Hash, TreeHead};
use veritrail_ledger::note::{Note, NoteSignature, NoteVerifier};
use veritrail_ledger::policy::{Policy, VerifyError};
use veritrail_ledger::witness::{
    AddCheckpoint, MAX_REQUEST_BYTES, SIZE_MEDIA_TYPE, parse_cosignatures, parse_size_body,
};
use veritrail_ledger::{Ledger, SignedCheckpoint};

/// How far in the future a cosignature's timestamp may be and still count.
pub const MAX_SKEW: Duration = Duration::from_secs(60);

/// How the log uses witnesses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessConfig {
    /// The policy: its `witness` lines with a URL are asked; its quorum decides publication.
    pub policy: Policy,
    /// Publish without a quorum (the metrics and logs say so) instead of not at all.
    pub fail_open: bool,
    /// How long one request to one witness may take.
    pub timeout: Duration,
    /// Attempts per witness and checkpoint before it counts as missing for that checkpoint.
    pub attempts: u32,
}

impl WitnessConfig {
    /// A fail-closed configuration with a 5 s timeout and 3 attempts.
    pub fn new(policy: Policy) -> Self {
        WitnessConfig {
            policy,
            fail_open: false,
            timeout: Duration::from_secs(5),
            attempts: 3,
        }
    }
}

/// Why the witness configuration cannot be used by this log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessSetupError {
    /// The policy does not list this log's key under its origin.
    #[error(
        "the witness policy does not list this log's key: add the line `log {key}` (clients pin the same policy)"
    )]
    LogNotListed {
        /// The log's verifier key.
        key: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for witnesses: {0}")]
    Client(String),
}

/// One witness the log asks.
#[derive(Debug)]
struct Remote {
    name: String,
    verifier: NoteVerifier,
    /// The submission prefix, without a trailing `/`.
    url: String,
    /// The size it last cosigned, as far as the log knows.
    hint: Mutex<u64>,
}

/// What one round of asking ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Round {
    /// The quorum is met: the note to publish, with the cosignatures.
    Quorum(Vec<u8>),
    /// No quorum: the witnesses the quorum misses, and the note with what cosignatures came.
    Short {
        /// The policy names of the missing witnesses.
        missing: Vec<String>,
        /// The log-signed note with the cosignatures that came.
        note: Vec<u8>,
    },
}

/// The log's witnesses.
#[derive(Debug)]
pub struct Witnesses {
    config: WitnessConfig,
    http: reqwest::Client,
    remotes: Vec<Arc<Remote>>,
    /// The witnesses missing from the last round without a quorum (empty after a quorum).
    missing: Mutex<Vec<String>>,
}

impl Witnesses {
    /// The witnesses of `config` for the log signing with `log_key`.
    ///
    /// # Errors
    /// [`WitnessSetupError`].
    pub fn new(config: WitnessConfig, log_key: &NoteVerifier) -> Result<Self, WitnessSetupError> {
        if !config
            .policy
            .logs_for(log_key.name().as_str())
            .any(|log| log.verifier() == log_key)
        {
            return Err(WitnessSetupError::LogNotListed {
                key: log_key.to_string(),
            });
        }
        let remotes = config
            .policy
            .witnesses()
            .iter()
            .filter_map(|w| {
                let Some(url) = w.url() else {
                    tracing::warn!(
                        witness = w.name(),
                        "the policy gives no URL for this witness: it is never asked"
                    );
                    return None;
                };
                Some(Arc::new(Remote {
                    name: w.name().to_owned(),
                    verifier: w.verifier().clone(),
                    url: url.trim_end_matches('/').to_owned(),
                    hint: Mutex::new(0),
                }))
            })
            .collect();
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()
            .map_err(|e| WitnessSetupError::Client(e.to_string()))?;
        Ok(Witnesses {
            config,
            http,
            remotes,
            missing: Mutex::new(Vec::new()),
        })
    }

    /// Whether a checkpoint without a quorum is published anyway.
    pub fn fail_open(&self) -> bool {
        self.config.fail_open
    }

    /// The witnesses the last round without a quorum missed (empty since a round met it).
    pub fn missing(&self) -> Vec<String> {
        self.missing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Asks every witness to cosign `signed` and returns as soon as the quorum is met, or
    /// when every witness has answered or given up.
    pub async fn cosign(&self, ledger: &Arc<Ledger>, signed: &SignedCheckpoint) -> Round {
        let Ok(note) = Note::from_bytes(&signed.note) else {
            return Round::Short {
                missing: vec!["(the log's own checkpoint does not parse)".into()],
                note: signed.note.clone(),
            };
        };
        let tree = signed.checkpoint.tree;
        let proofs: Arc<tokio::sync::Mutex<HashMap<u64, Arc<Vec<Hash>>>>> = Arc::default();
        let (send, mut receive) = tokio::sync::mpsc::channel(self.remotes.len().max(1));
        for remote in &self.remotes {
            let ask = Ask {
                remote: remote.clone(),
                http: self.http.clone(),
                note: note.clone(),
                tree,
                ledger: Arc::downgrade(ledger),
                proofs: proofs.clone(),
                attempts: self.config.attempts.max(1),
            };
            let send = send.clone();
            tokio::spawn(async move {
                let cosignature = ask.run().await;
                let _ = send.send(cosignature).await;
            });
        }
        drop(send);
        let mut cosigned = note.clone();
        loop {
            match self
                .config
                .policy
                .verify(&cosigned, crate::clock::unix_now(), MAX_SKEW.as_secs())
            {
                Ok(_) => {
                    self.missing
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clear();
                    return Round::Quorum(cosigned.to_bytes());
                }
                Err(VerifyError::QuorumNotMet { missing, .. }) => {
                    let Some(answer) = receive.recv().await else {
                        *self.missing.lock().unwrap_or_else(PoisonError::into_inner) =
                            missing.clone();
                        return Round::Short {
                            missing,
                            note: cosigned.to_bytes(),
                        };
                    };
                    if let Some(cosignature) = answer {
                        let _ = cosigned.add_signature(cosignature);
                    }
                }
                Err(other) => {
                    tracing::error!(error = %other, "the policy rejects the log's own checkpoint");
                    let missing = vec![format!("(policy: {other})")];
                    *self.missing.lock().unwrap_or_else(PoisonError::into_inner) = missing.clone();
                    return Round::Short {
                        missing,
                        note: signed.note.clone(),
                    };
                }
            }
        }
    }
}

/// One witness asked for one checkpoint.
struct Ask {
    remote: Arc<Remote>,
    http: reqwest::Client,
    note: Note,
    tree: TreeHead,
    /// Weak: a request still running in the background must not keep a stopped server's
    /// store open.
    ledger: std::sync::Weak<Ledger>,
    proofs: Arc<tokio::sync::Mutex<HashMap<u64, Arc<Vec<Hash>>>>>,
    attempts: u32,
}

/// A witness's answer body, refused beyond `cap` bytes: a witness is a third party, and no
/// answer of the protocol (cosignature lines, a size, an error) comes near the request cap.
async fn read_capped(mut answer: reqwest::Response, cap: usize) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = answer.chunk().await.map_err(|e| e.to_string())? {
        if bytes.len() + chunk.len() > cap {
            return Err(format!("the answer is larger than {cap} bytes"));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Most `409` resyncs in one round: a witness that keeps moving is not followed forever.
const MAX_RESYNCS: u32 = 3;
/// The first back-off after a failed request; doubled after each.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

impl Ask {
    /// The witness's valid cosignature, or `None` after the round's attempts.
    async fn run(self) -> Option<NoteSignature> {
        let name = self.remote.name.clone();
        let (mut failures, mut resyncs, mut backoff) = (0, 0, FIRST_BACKOFF);
        loop {
            let started = Instant::now();
            let outcome = self.once().await;
            metrics::histogram!("veritrail_witness_request_seconds", "witness" => name.clone())
                .record(started.elapsed().as_secs_f64());
            match outcome {
                Ok(Some(cosignature)) => {
                    *self
                        .remote
                        .hint
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = self.tree.size;
                    metrics::gauge!("veritrail_witness_cosigned_size", "witness" => name)
                        .set(self.tree.size as f64);
                    return Some(cosignature);
                }
                Ok(None) if resyncs < MAX_RESYNCS => resyncs += 1,
                Ok(None) => return None,
                Err(why) => {
                    metrics::counter!("veritrail_witness_failures_total", "witness" => name.clone())
                        .increment(1);
                    failures += 1;
                    if failures >= self.attempts {
                        tracing::warn!(witness = %name, size = self.tree.size, %why, "no cosignature from this witness for this checkpoint");
                        return None;
                    }
                    tracing::debug!(witness = %name, %why, "witness request failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
            }
        }
    }

    /// One request: `Ok(Some)` a valid cosignature, `Ok(None)` a resync (the hint changed),
    /// `Err` a failure.
    async fn once(&self) -> Result<Option<NoteSignature>, String> {
        let old = *self
            .remote
            .hint
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if old > self.tree.size {
            return Err(format!(
                "the witness cosigned size {old}, larger than this checkpoint's {}: it saw a checkpoint this log never published",
                self.tree.size
            ));
        }
        let proof = self.proof(old).await?;
        let body = AddCheckpoint {
            old,
            proof: proof.to_vec(),
            checkpoint: self.note.clone(),
        }
        .to_bytes();
        let answer = self
            .http
            .post(format!("{}/add-checkpoint", self.remote.url))
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = answer.status().as_u16();
        let size_body = answer
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .is_some_and(|t| t.as_bytes() == SIZE_MEDIA_TYPE.as_bytes());
        let bytes = read_capped(answer, MAX_REQUEST_BYTES).await?;
        match status {
            200 => {
                let lines = parse_cosignatures(&bytes).map_err(|e| e.to_string())?;
                for line in lines
                    .into_iter()
                    .filter(|s| self.remote.verifier.matches(s))
                {
                    let mut cosigned = Note::new(self.note.text()).map_err(|e| e.to_string())?;
                    cosigned
                        .add_signature(line.clone())
                        .map_err(|e| e.to_string())?;
                    if verify_cosignature(&self.remote.verifier, &cosigned).is_ok() {
                        return Ok(Some(line));
                    }
                }
                Err("the answer carries no valid cosignature by this witness's key".into())
            }
            409 if size_body => {
                let size = parse_size_body(&bytes).map_err(|e| e.to_string())?;
                *self
                    .remote
                    .hint
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = size;
                Ok(None)
            }
            _ => Err(format!(
                "status {status}: {}",
                String::from_utf8_lossy(bytes.get(..200).unwrap_or(&bytes))
            )),
        }
    }

    /// The consistency proof from `old` to this checkpoint, computed once per round and size.
    async fn proof(&self, old: u64) -> Result<Arc<Vec<Hash>>, String> {
        if old == 0 || old == self.tree.size {
            return Ok(Arc::new(Vec::new()));
        }
        let mut proofs = self.proofs.lock().await;
        if let Some(proof) = proofs.get(&old) {
            return Ok(proof.clone());
        }
        let ledger = self
            .ledger
            .upgrade()
            .ok_or_else(|| "the log is shutting down".to_owned())?;
        let new = self.tree.size;
        let proof = tokio::task::spawn_blocking(move || ledger.consistency_proof(old, new))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let proof = Arc::new(proof);
        proofs.insert(old, proof.clone());
        Ok(proof)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_witness_answer_is_read_only_up_to_the_cap() {
        let router = axum::Router::new().route(
            "/big",
            axum::routing::get(|| async { vec![b'x'; 3 * MAX_REQUEST_BYTES] }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/big", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        let http = reqwest::Client::new();
        let answer = http.get(&url).send().await.unwrap();
        assert!(read_capped(answer, MAX_REQUEST_BYTES).await.is_err());
        let answer = http.get(&url).send().await.unwrap();
        let body = read_capped(answer, 3 * MAX_REQUEST_BYTES).await.unwrap();
        assert_eq!(body.len(), 3 * MAX_REQUEST_BYTES);
    }
}
