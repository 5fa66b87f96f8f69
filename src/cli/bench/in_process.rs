//! The in-process target: the server's sequencer, without HTTP.

use std::time::{Duration, Instant};

use bytes::Bytes;
use veritrail_server::AppState;
use veritrail_server::publisher::wait_for;

use crate::cli::bench::plan::{MAX_RETRIES, MAX_RETRY_AFTER_S, Plan, Tally};

/// The in-process target: the server's state, without its router.
pub(super) struct InProcess {
    /// The started server's state (sequencer, published-checkpoint watch).
    pub(super) state: AppState,
    /// `--wait published`: wait until a checkpoint covers each request's entries.
    pub(super) wait_published: bool,
}

impl InProcess {
    /// Submits one request's entries to the sequencer, retrying while it is overloaded,
    /// waits for publication with `--wait published`, and records the outcome.
    pub(super) async fn request(&self, entries: Vec<Bytes>, plan: &Plan, tally: &mut Tally) {
        let count = entries.len() as u64;
        let started = Instant::now();
        let mut attempt = 0;
        let committed = loop {
            let result = match self.state.sequencer.submit(entries.clone()) {
                Ok(receiver) => match receiver.await {
                    Ok(result) => result,
                    Err(_) => return tally.failure("committer stopped".into(), count),
                },
                Err(e) => Err(e),
            };
            match result {
                Ok(committed) => break committed,
                Err(e) => {
                    let key = format!("{} ({})", e.status(), e.code());
                    let deadline_passed = plan.deadline.is_some_and(|d| Instant::now() >= d);
                    let veritrail_server::ApiError::Overloaded { retry_after } = e else {
                        return tally.failure(key, count);
                    };
                    if attempt >= MAX_RETRIES || deadline_passed {
                        return tally.failure(key, count);
                    }
                    tally.error(key);
                    tally.retries += 1;
                    attempt += 1;
                    let wait = retry_after.min(MAX_RETRY_AFTER_S);
                    tokio::time::sleep(Duration::from_secs(wait)).await;
                }
            }
        };
        if self.wait_published {
            let mut published = self.state.published.clone();
            let timeout = self.state.config.limits.request_timeout;
            if wait_for(&mut published, committed.indices.end, timeout)
                .await
                .is_none()
            {
                return tally.failure("408 Request Timeout (not published)".into(), count);
            }
        }
        tally.success(started, count);
    }
}
