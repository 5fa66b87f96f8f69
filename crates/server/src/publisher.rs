//! Checkpoint publication: a commit is published as soon as it lands, unless the last
//! checkpoint was signed less than `interval` ago (then as soon as it is that old); an
//! unchanged tree is re-signed at least every `republish`.
//!
//! Signing goes through [`Ledger::sign_checkpoint_at`], which refuses to sign anything that is
//! not consistent with the last signed checkpoint, and stores the note (and the time it was
//! signed) durably before it is published here. With witnesses
//! ([`crate::witnessing::Witnesses`]) the checkpoint is published with their cosignatures once
//! the policy's quorum is met; fail-closed, a checkpoint without it is not published, and
//! the next attempt (a second later) signs and asks again.
//!
//! Beside it, a pruning task thins the stored checkpoint history
//! ([`Ledger::prune_checkpoints`]) every [`PRUNE_PERIOD`], off the append and publication
//! paths, with bounded work per call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::time::sleep_until;
use veritrail_ledger::{Ledger, SignedCheckpoint, TreeHead};

use crate::clock::unix_now;
use crate::config::PublishConfig;
use crate::witnessing::{Round, Witnesses};

/// How often the stored checkpoint history is pruned: once a minute, the finest grain the
/// retention policy thins to, so each call has about a minute of checkpoints to thin.
pub const PRUNE_PERIOD: Duration = Duration::from_secs(60);
/// How soon pruning continues when a call stopped at its work bound (a backlog, e.g. the
/// first start on a long history): often enough to catch up quickly, rarely enough to leave
/// the disk to appends.
pub const PRUNE_CATCH_UP: Duration = Duration::from_secs(1);

/// The latest published checkpoint, shared with request handlers.
#[derive(Clone, Debug)]
pub struct Published {
    /// The checkpoint and its exact note bytes.
    pub checkpoint: Arc<SignedCheckpoint>,
    /// When it was signed (Unix seconds).
    pub signed_at: u64,
}

impl Published {
    /// The published tree size.
    pub fn size(&self) -> u64 {
        self.checkpoint.checkpoint.tree.size
    }
}

/// Time between attempts while signing fails (a full disk, a store being reopened).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// What one attempt to publish ended with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attempt {
    Published,
    /// Signed, but the witness quorum was not met (fail-closed): nothing published.
    NoQuorum,
    /// The checkpoint could not be signed and stored.
    SignFailed,
}

/// Signs a checkpoint of the current tree, has it cosigned if there are witnesses, and
/// publishes it. Errors are logged and counted; the previous checkpoint stays published.
async fn sign_and_publish(
    ledger: &Arc<Ledger>,
    published: &watch::Sender<Option<Published>>,
    witnesses: Option<&Witnesses>,
) -> Attempt {
    let signer = ledger.clone();
    let started = Instant::now();
    let signed_at = unix_now();
    match tokio::task::spawn_blocking(move || signer.sign_checkpoint_at(signed_at)).await {
        Ok(Ok(mut signed)) => {
            if let Some(witnesses) = witnesses {
                match witnesses.cosign(ledger, &signed).await {
                    Round::Quorum(note) => signed.note = note,
                    Round::Short { missing, note } if witnesses.fail_open() => {
                        metrics::counter!("veritrail_checkpoints_published_without_quorum_total")
                            .increment(1);
                        tracing::warn!(size = signed.checkpoint.tree.size, missing = %missing.join(", "), "publishing without the witness quorum (--witness-fail-open)");
                        signed.note = note;
                    }
                    Round::Short { missing, .. } => {
                        metrics::counter!("veritrail_checkpoints_without_quorum_total")
                            .increment(1);
                        tracing::error!(size = signed.checkpoint.tree.size, missing = %missing.join(", "), "witness quorum not met: the checkpoint is not published (fail-closed); retrying in 1 s");
                        return Attempt::NoQuorum;
                    }
                }
            }
            metrics::counter!("veritrail_checkpoints_signed_total").increment(1);
            metrics::histogram!("veritrail_checkpoint_sign_seconds")
                .record(started.elapsed().as_secs_f64());
            metrics::gauge!("veritrail_published_tree_size")
                .set(signed.checkpoint.tree.size as f64);
            published.send_replace(Some(Published {
                checkpoint: Arc::new(signed),
                signed_at,
            }));
            Attempt::Published
        }
        Ok(Err(err)) => {
            metrics::counter!("veritrail_checkpoint_failures_total").increment(1);
            tracing::error!(error = %err, no_space = err.is_no_space(), "checkpoint not signed; retrying in 1 s");
            Attempt::SignFailed
        }
        Err(err) => {
            metrics::counter!("veritrail_checkpoint_failures_total").increment(1);
            tracing::error!(error = %err, "checkpoint signing task failed; retrying in 1 s");
            Attempt::SignFailed
        }
    }
}

/// Prunes the stored checkpoint history every [`PRUNE_PERIOD`] (sooner while a call reports
/// more work) until aborted. Errors are logged and counted; the next period tries again.
async fn prune(ledger: Arc<Ledger>) {
    let mut wait = PRUNE_PERIOD;
    loop {
        tokio::time::sleep(wait).await;
        let ledger = ledger.clone();
        let started = Instant::now();
        wait = match tokio::task::spawn_blocking(move || ledger.prune_checkpoints(unix_now())).await
        {
            Ok(Ok(pruned)) => {
                metrics::counter!("veritrail_checkpoints_pruned_total")
                    .increment(pruned.removed.len() as u64);
                metrics::histogram!("veritrail_checkpoint_prune_seconds")
                    .record(started.elapsed().as_secs_f64());
                tracing::debug!(
                    removed = pruned.removed.len(),
                    scanned = pruned.scanned,
                    complete = pruned.complete,
                    "pruned the checkpoint history"
                );
                if pruned.complete {
                    PRUNE_PERIOD
                } else {
                    PRUNE_CATCH_UP
                }
            }
            Ok(Err(err)) => {
                metrics::counter!("veritrail_checkpoint_prune_failures_total").increment(1);
                tracing::error!(error = %err, "checkpoint history not pruned");
                PRUNE_PERIOD
            }
            Err(err) => {
                metrics::counter!("veritrail_checkpoint_prune_failures_total").increment(1);
                tracing::error!(error = %err, "checkpoint pruning task failed");
                PRUNE_PERIOD
            }
        };
    }
}

/// Runs until `shutdown` resolves, then publishes a final checkpoint if the tree grew.
/// `signing_ok` is kept false while the last attempt to sign failed (retried every second;
/// `/healthz` reports it). A checkpoint that misses the witness quorum is retried every
/// second too.
///
/// Settings that [`PublishConfig::validate`] refuses (the server validates them before it
/// starts) are logged and brought into range ([`PublishConfig::clamped`]), so the loop can
/// neither spin nor overflow a deadline.
pub async fn run(
    ledger: Arc<Ledger>,
    mut committed: watch::Receiver<TreeHead>,
    published: watch::Sender<Option<Published>>,
    config: PublishConfig,
    signing_ok: Arc<std::sync::atomic::AtomicBool>,
    witnesses: Option<Arc<Witnesses>>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let witnesses = witnesses.as_deref();
    use std::sync::atomic::Ordering;
    let config = match config.validate() {
        Ok(()) => config,
        Err(err) => {
            let clamped = config.clamped();
            tracing::error!(error = %err, ?clamped, "publishing with the nearest accepted settings");
            clamped
        }
    };
    tokio::pin!(shutdown);
    let pruner = tokio::spawn(prune(ledger.clone()));
    let mut last_signed = Instant::now();
    let attempt = sign_and_publish(&ledger, &published, witnesses).await;
    let mut ok = attempt == Attempt::Published;
    signing_ok.store(attempt != Attempt::SignFailed, Ordering::Release);
    loop {
        let published_size = published.borrow().as_ref().map(Published::size);
        let grew = Some(ledger.tree_head().size) != published_size;
        let due = if !ok {
            last_signed + RETRY_AFTER_FAILURE
        } else if grew {
            last_signed + config.interval
        } else {
            last_signed + config.republish
        };
        tokio::select! {
            () = sleep_until(due.into()) => {
                last_signed = Instant::now();
                let attempt = sign_and_publish(&ledger, &published, witnesses).await;
                ok = attempt == Attempt::Published;
                signing_ok.store(attempt != Attempt::SignFailed, Ordering::Release);
            }
            changed = committed.changed(), if !grew => {
                if changed.is_err() {
                    break; // the committer is gone
                }
            }
            () = &mut shutdown => break,
        }
    }
    // A prune in flight finishes on its blocking thread (its write is atomic either way).
    // Awaiting the aborted task makes sure it is gone, and with it its handle on the ledger:
    // whoever reopens the store after shutdown finds it closed (an aborted task is otherwise
    // dropped whenever the runtime gets to it).
    pruner.abort();
    let _ = pruner.await;
    let published_size = published.borrow().as_ref().map(Published::size);
    if Some(ledger.tree_head().size) != published_size {
        let attempt = sign_and_publish(&ledger, &published, witnesses).await;
        signing_ok.store(attempt != Attempt::SignFailed, Ordering::Release);
    }
}

/// Waits until a checkpoint covering `size` entries is published, or `timeout` passes.
pub async fn wait_for(
    published: &mut watch::Receiver<Option<Published>>,
    size: u64,
    timeout: Duration,
) -> Option<Published> {
    let wait = published.wait_for(|p| p.as_ref().is_some_and(|p| p.size() >= size));
    match tokio::time::timeout(timeout, wait).await {
        Ok(Ok(guard)) => guard.clone(),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use veritrail_ledger::note::{KeyName, NoteSigner};
    use veritrail_ledger::store::{self, Backend};

    const ORIGIN: &str = "publisher.veritrail.example/log";

    struct Running {
        ledger: Arc<Ledger>,
        committed: watch::Sender<TreeHead>,
        published: watch::Receiver<Option<Published>>,
        stop: tokio::sync::oneshot::Sender<()>,
        task: tokio::task::JoinHandle<()>,
        _dir: tempfile::TempDir,
    }

    fn start(config: PublishConfig) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let signer = NoteSigner::generate(KeyName::new(ORIGIN).unwrap()).unwrap();
        let storage = store::open(Backend::Redb, dir.path()).unwrap();
        let ledger = Arc::new(Ledger::open(storage, ORIGIN, signer).unwrap());
        let (committed, committed_rx) = watch::channel(ledger.tree_head());
        let (published_tx, published) = watch::channel(None);
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run(
            ledger.clone(),
            committed_rx,
            published_tx,
            config,
            Arc::new(std::sync::atomic::AtomicBool::new(true)),
            None,
            async move {
                let _ = stop_rx.await;
            },
        ));
        Running {
            ledger,
            committed,
            published,
            stop,
            task,
            _dir: dir,
        }
    }

    /// With the default settings a commit is published within a few tens of milliseconds of
    /// landing, even right after the previous checkpoint (the closed-loop client's case). The
    /// old default (100 ms) fails this.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn publishes_a_commit_within_tens_of_milliseconds() {
        let mut running = start(PublishConfig::default());
        assert!(
            wait_for(&mut running.published, 0, Duration::from_secs(10))
                .await
                .is_some()
        );
        let mut latencies = Vec::new();
        for i in 0..7u32 {
            let ledger = running.ledger.clone();
            let appended = tokio::task::spawn_blocking(move || {
                ledger.append(&[format!("entry {i}").into_bytes()])
            })
            .await
            .unwrap()
            .unwrap();
            let landed = Instant::now();
            running.committed.send_replace(appended.tree);
            let published = wait_for(
                &mut running.published,
                appended.tree.size,
                Duration::from_secs(10),
            )
            .await
            .expect("published within the bounded wait");
            latencies.push(landed.elapsed());
            assert_eq!(published.size(), appended.tree.size);
            // What was published is what was stored, with the time it was signed.
            assert_eq!(
                running.ledger.checkpoint(appended.tree.size).unwrap(),
                Some(published.checkpoint.note.clone())
            );
        }
        latencies.sort_unstable();
        let median = latencies[latencies.len() / 2];
        assert!(
            median <= Duration::from_millis(80),
            "median {median:?} of {latencies:?}"
        );
        running.stop.send(()).unwrap();
        running.task.await.unwrap();
    }

    /// A zero republish period (refused at startup by `validate`) does not make a library
    /// caller's publisher spin: it runs with the clamped settings.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refused_settings_do_not_spin() {
        let config = PublishConfig {
            interval: Duration::ZERO,
            republish: Duration::ZERO,
        };
        assert!(config.validate().is_err());
        let mut running = start(config);
        assert!(
            wait_for(&mut running.published, 0, Duration::from_secs(10))
                .await
                .is_some()
        );
        running.published.mark_unchanged();
        let mut signings = 0u32;
        let window = tokio::time::sleep(Duration::from_millis(400));
        tokio::pin!(window);
        loop {
            tokio::select! {
                () = &mut window => break,
                changed = running.published.changed() => {
                    changed.unwrap();
                    signings += 1;
                }
            }
        }
        // Clamped: an idle tree is re-signed at most once a second.
        assert!(
            signings <= 1,
            "{signings} signings of an idle tree in 400 ms"
        );
        running.stop.send(()).unwrap();
        running.task.await.unwrap();
    }
}
