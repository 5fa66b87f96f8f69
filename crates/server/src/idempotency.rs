//! `Idempotency-Key`: a retried append with the same key and the same entries gets the original
//! indices instead of appending twice.
//!
//! Keys are remembered in memory for a configurable window and up to a configurable count
//! (oldest forgotten first), so memory stays bounded. A retry that arrives while the first
//! request is still being committed waits for it. A failed request forgets its key, so the
//! client's retry appends. Keys do not survive a restart: see `docs/api.md`.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::error::ApiError;

/// Longest `Idempotency-Key` accepted, in bytes (the API's limit, shared with clients).
pub use veritrail_api::limits::MAX_IDEMPOTENCY_KEY_LEN as MAX_KEY_LEN;

/// The state of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    /// The first request is being committed.
    Pending,
    /// Committed: these indices.
    Done(Range<u64>),
    /// The first request failed; the key is free again.
    Failed,
}

struct Slot {
    body: [u8; 32],
    created: Instant,
    outcome: watch::Receiver<Outcome>,
}

/// What a request with a key should do.
#[derive(Debug)]
pub enum Claim {
    /// First use of the key: append, then call [`Ticket::finish`].
    Fresh(Ticket),
    /// The key was used with this body and these indices were assigned.
    Replay(Range<u64>),
}

/// The right to complete a key's first request.
#[derive(Debug)]
pub struct Ticket {
    key: String,
    outcome: watch::Sender<Outcome>,
}

impl Ticket {
    /// Records the result of the first request: its indices, or `None` if it failed.
    pub fn finish(self, cache: &Idempotency, indices: Option<Range<u64>>) {
        match indices {
            Some(range) => {
                self.outcome.send_replace(Outcome::Done(range));
            }
            None => {
                self.outcome.send_replace(Outcome::Failed);
                cache.lock().map.remove(&self.key);
            }
        }
    }
}

#[derive(Default)]
struct Inner {
    map: HashMap<String, Slot>,
    order: VecDeque<(Instant, String)>,
}

/// The cache of keys.
pub struct Idempotency {
    inner: Mutex<Inner>,
    window: Duration,
    capacity: usize,
}

impl std::fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idempotency")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

/// Checks a header value: 1 to 255 visible ASCII characters.
///
/// # Errors
/// [`ApiError::InvalidParameter`] otherwise.
pub fn validate_key(value: &[u8]) -> Result<String, ApiError> {
    if value.is_empty() || value.len() > MAX_KEY_LEN || !value.iter().all(|b| b.is_ascii_graphic())
    {
        return Err(ApiError::param(
            veritrail_api::media::IDEMPOTENCY_KEY_HEADER,
            format!("must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
        ));
    }
    Ok(String::from_utf8_lossy(value).into_owned())
}

impl Idempotency {
    /// A cache remembering keys for `window`, at most `capacity` at once.
    pub fn new(window: Duration, capacity: usize) -> Self {
        Idempotency {
            inner: Mutex::new(Inner::default()),
            window,
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn expire(&self, inner: &mut Inner, now: Instant) {
        while let Some((created, key)) = inner.order.front() {
            let expired = now.duration_since(*created) > self.window;
            if !expired && inner.order.len() <= self.capacity {
                break;
            }
            // Remove the map entry only if it is the one this queue slot refers to.
            if inner
                .map
                .get(key)
                .is_some_and(|slot| slot.created == *created)
            {
                inner.map.remove(key);
            }
            inner.order.pop_front();
        }
    }

    /// Claims `key` for a request whose body is `body`, waiting (up to `timeout`) if another
    /// request with the same key is in flight.
    ///
    /// # Errors
    /// [`ApiError::IdempotencyConflict`] if the key was used with another body;
    /// [`ApiError::Timeout`] if the first request did not finish in time.
    pub async fn claim(
        &self,
        key: String,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Claim, ApiError> {
        self.claim_fingerprint(key, Sha256::digest(body).into(), timeout)
            .await
    }

    /// As [`Idempotency::claim`], for a request identified by `digest`: a SHA-256 of whatever
    /// makes two requests the same (for appends, the entries, not the encoding of the body).
    ///
    /// # Errors
    /// As [`Idempotency::claim`].
    pub async fn claim_fingerprint(
        &self,
        key: String,
        digest: [u8; 32],
        timeout: Duration,
    ) -> Result<Claim, ApiError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut waiting = {
                let mut inner = self.lock();
                let now = Instant::now();
                self.expire(&mut inner, now);
                match inner.map.get(&key) {
                    Some(slot) if slot.body != digest => {
                        return Err(ApiError::IdempotencyConflict(key));
                    }
                    Some(slot) => slot.outcome.clone(),
                    None => {
                        let (sender, receiver) = watch::channel(Outcome::Pending);
                        inner.map.insert(
                            key.clone(),
                            Slot {
                                body: digest,
                                created: now,
                                outcome: receiver,
                            },
                        );
                        inner.order.push_back((now, key.clone()));
                        return Ok(Claim::Fresh(Ticket {
                            key,
                            outcome: sender,
                        }));
                    }
                }
            };
            let settled =
                tokio::time::timeout_at(deadline, waiting.wait_for(|o| *o != Outcome::Pending))
                    .await;
            match settled {
                Err(_) => return Err(ApiError::Timeout),
                Ok(Ok(outcome)) => {
                    if let Outcome::Done(range) = &*outcome {
                        return Ok(Claim::Replay(range.clone()));
                    }
                    // Failed: the key was freed; loop to claim it afresh.
                }
                // The first request was dropped mid-way (client gone, server shutting down):
                // its ticket is gone without an outcome. Free the key and claim it.
                Ok(Err(_)) => {
                    let mut inner = self.lock();
                    if inner
                        .map
                        .get(&key)
                        .is_some_and(|s| s.outcome.has_changed().is_err())
                    {
                        inner.map.remove(&key);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn same_key_same_body_replays_and_other_body_conflicts() {
        let cache = Idempotency::new(Duration::from_secs(60), 10);
        let Claim::Fresh(ticket) = cache.claim("k".into(), b"body", T).await.unwrap() else {
            panic!("first claim must be fresh");
        };
        ticket.finish(&cache, Some(5..6));
        assert!(
            matches!(cache.claim("k".into(), b"body", T).await.unwrap(), Claim::Replay(r) if r == (5..6))
        );
        assert!(matches!(
            cache.claim("k".into(), b"other", T).await,
            Err(ApiError::IdempotencyConflict(k)) if k == "k"
        ));
    }

    #[tokio::test]
    async fn a_failed_first_request_frees_the_key() {
        let cache = Idempotency::new(Duration::from_secs(60), 10);
        let Claim::Fresh(ticket) = cache.claim("k".into(), b"b", T).await.unwrap() else {
            panic!()
        };
        ticket.finish(&cache, None);
        assert!(matches!(
            cache.claim("k".into(), b"b", T).await.unwrap(),
            Claim::Fresh(_)
        ));
    }

    #[tokio::test]
    async fn a_concurrent_retry_waits_for_the_first() {
        let cache = std::sync::Arc::new(Idempotency::new(Duration::from_secs(60), 10));
        let Claim::Fresh(ticket) = cache.claim("k".into(), b"b", T).await.unwrap() else {
            panic!()
        };
        let waiter = {
            let cache = cache.clone();
            tokio::spawn(async move { cache.claim("k".into(), b"b", T).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        ticket.finish(&cache, Some(1..3));
        assert!(matches!(waiter.await.unwrap().unwrap(), Claim::Replay(r) if r == (1..3)));
        // A dropped ticket frees the key too.
        let Claim::Fresh(ticket) = cache.claim("j".into(), b"b", T).await.unwrap() else {
            panic!()
        };
        drop(ticket);
        assert!(matches!(
            cache.claim("j".into(), b"b", T).await.unwrap(),
            Claim::Fresh(_)
        ));
    }

    #[tokio::test]
    async fn keys_expire_by_age_and_by_count() {
        let cache = Idempotency::new(Duration::from_millis(30), 2);
        for key in ["a", "b", "c"] {
            let Claim::Fresh(t) = cache.claim(key.into(), b"x", T).await.unwrap() else {
                panic!()
            };
            t.finish(&cache, Some(0..1));
        }
        // Capacity 2: "a" was forgotten.
        assert!(matches!(
            cache.claim("a".into(), b"y", T).await.unwrap(),
            Claim::Fresh(_)
        ));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(matches!(
            cache.claim("b".into(), b"y", T).await.unwrap(),
            Claim::Fresh(_)
        ));
    }

    #[test]
    fn keys_are_validated() {
        assert!(validate_key(b"abc-123").is_ok());
        assert!(validate_key(b"").is_err());
        assert!(validate_key(b"has space").is_err());
        assert!(validate_key(&[b'a'; 256]).is_err());
        assert!(validate_key("é".as_bytes()).is_err());
    }
}
