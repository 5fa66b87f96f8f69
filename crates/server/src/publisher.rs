//! Checkpoint publication: signs a checkpoint after each integrated batch, at most every
//! `interval`, and at least every `republish` even when the tree did not grow.
//!
//! Signing goes through [`Ledger::sign_checkpoint`], which refuses to sign anything that is
//! not consistent with the last signed checkpoint, and stores the note durably before it is
//! published here.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::time::sleep_until;
use veritrail_ledger::{Ledger, SignedCheckpoint, TreeHead};

use crate::config::PublishConfig;

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

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Signs a checkpoint of the current tree and publishes it. Errors are logged and counted;
/// the previous checkpoint stays published.
async fn sign_and_publish(ledger: &Arc<Ledger>, published: &watch::Sender<Option<Published>>) {
    let ledger = ledger.clone();
    let started = Instant::now();
    match tokio::task::spawn_blocking(move || ledger.sign_checkpoint()).await {
        Ok(Ok(signed)) => {
            metrics::counter!("veritrail_checkpoints_signed_total").increment(1);
            metrics::histogram!("veritrail_checkpoint_sign_seconds")
                .record(started.elapsed().as_secs_f64());
            metrics::gauge!("veritrail_published_tree_size")
                .set(signed.checkpoint.tree.size as f64);
            published.send_replace(Some(Published {
                checkpoint: Arc::new(signed),
                signed_at: unix_now(),
            }));
        }
        Ok(Err(err)) => {
            metrics::counter!("veritrail_checkpoint_failures_total").increment(1);
            tracing::error!(error = %err, "checkpoint not signed");
        }
        Err(err) => {
            metrics::counter!("veritrail_checkpoint_failures_total").increment(1);
            tracing::error!(error = %err, "checkpoint signing task failed");
        }
    }
}

/// Runs until `shutdown` resolves, then publishes a final checkpoint if the tree grew.
pub async fn run(
    ledger: Arc<Ledger>,
    mut committed: watch::Receiver<TreeHead>,
    published: watch::Sender<Option<Published>>,
    config: PublishConfig,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut last_signed = Instant::now();
    sign_and_publish(&ledger, &published).await;
    loop {
        let published_size = published.borrow().as_ref().map(Published::size);
        let grew = Some(ledger.tree_head().size) != published_size;
        let due = if grew {
            last_signed + config.interval
        } else {
            last_signed + config.republish
        };
        tokio::select! {
            () = sleep_until(due.into()) => {
                last_signed = Instant::now();
                sign_and_publish(&ledger, &published).await;
            }
            changed = committed.changed(), if !grew => {
                if changed.is_err() {
                    break; // the committer is gone
                }
            }
            () = &mut shutdown => break,
        }
    }
    let published_size = published.borrow().as_ref().map(Published::size);
    if Some(ledger.tree_head().size) != published_size {
        sign_and_publish(&ledger, &published).await;
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
