//! Connections: the accept loop, the cap on open connections, and the timers that close
//! connections which do not send requests.
//!
//! Each connection is HTTP/1.1 served by hyper with a timer, so hyper's header-read timeout
//! runs: a connection has [`ConnectionConfig::header_timeout`] to deliver a complete request
//! head from the moment it opens or its previous response was sent. That one deadline closes
//! zero-byte, partial-head, byte-at-a-time and idle keep-alive connections. HTTP/2 is not
//! spoken (an h2c prior-knowledge preface is refused as a malformed HTTP/1 request).
//!
//! At the cap a new connection is still accepted, and the connection that has been open the
//! longest without a request in progress is closed to make room: a flood of idle connections
//! costs each of them its slot, never a real request its chance to be served. Only when every
//! open connection has a request in progress does a new one wait (in the kernel's backlog).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tower::ServiceExt as _;

use crate::config::ConnectionConfig;

/// The open-files limit after [`raise_open_files_limit`]: what the cap is derived from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit the process runs with.
    pub soft: u64,
    /// The hard limit (the most the soft limit can be raised to without privileges).
    pub hard: u64,
}

/// Raises the process's soft open-files limit to its hard limit and returns both. On a
/// platform without the limit, or if it cannot be read, `None`.
pub fn raise_open_files_limit() -> Option<OpenFiles> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum;
    let soft = limit.current?;
    if hard != limit.current {
        let raised = rustix::process::Rlimit {
            current: hard,
            maximum: hard,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %e, soft, "cannot raise the open-files limit");
        }
    }
    let after = getrlimit(Resource::Nofile);
    Some(OpenFiles {
        soft: after.current.unwrap_or(soft),
        hard: after.maximum.unwrap_or(u64::MAX),
    })
}

/// The connection cap for `config`: the configured one, or the open-files limit minus
/// [`ConnectionConfig::RESERVED_FILES`] (at least 16), at most
/// [`ConnectionConfig::MAX_CONNECTIONS`].
pub fn connection_cap(config: &ConnectionConfig, files: Option<OpenFiles>) -> usize {
    let derived = files.map_or(1024, |f| {
        usize::try_from(
            f.soft
                .saturating_sub(ConnectionConfig::RESERVED_FILES)
                .max(16),
        )
        .unwrap_or(usize::MAX)
    });
    config
        .max_connections
        .unwrap_or(derived)
        .clamp(1, ConnectionConfig::MAX_CONNECTIONS)
}

/// One open connection, as the accept loop and its requests see it.
#[derive(Debug, Default)]
struct Slot {
    /// Requests whose response has not been fully sent.
    in_flight: AtomicUsize,
    /// Requests started on this connection.
    started: AtomicU64,
    /// Set once the connection is chosen to make room at the cap.
    evicted: AtomicBool,
    /// Wakes the connection's task when it is evicted.
    wake: Notify,
}

/// Open connections by age (the key is an increasing number).
#[derive(Debug, Default)]
struct Registry {
    slots: Mutex<BTreeMap<u64, Arc<Slot>>>,
}

impl Registry {
    fn insert(&self, id: u64, slot: Arc<Slot>) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.insert(id, slot);
        }
    }

    fn remove(&self, id: u64) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.remove(&id);
        }
    }

    /// Marks the oldest connection without a request in progress for closing; false if
    /// every connection is busy.
    fn evict_oldest_idle(&self) -> bool {
        let Ok(slots) = self.slots.lock() else {
            return false;
        };
        for slot in slots.values() {
            if slot.in_flight.load(Ordering::Acquire) == 0
                && !slot.evicted.swap(true, Ordering::AcqRel)
            {
                slot.wake.notify_one();
                return true;
            }
        }
        false
    }
}

/// Serves `router` on `listener` until `shutdown` flips to true, then lets every open
/// connection finish its request in progress and returns once all have closed.
///
/// # Errors
/// None today: accept errors (such as running out of file descriptors) are logged and
/// retried after a short pause.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: &ConnectionConfig,
    cap: usize,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(cap));
    let registry = Arc::new(Registry::default());
    let (alive_tx, mut alive_rx) = mpsc::channel::<Infallible>(1);
    let mut next_id = 0u64;
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .keep_alive(true)
        .max_buf_size(config.max_header_bytes.saturating_mul(4).max(64 << 10));
    let http = Arc::new(http);
    metrics::gauge!("veritrail_connection_cap").set(cap as f64);
    loop {
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // At the cap: close the oldest idle connection, then wait for any slot.
                if registry.evict_oldest_idle() {
                    metrics::counter!("veritrail_connections_evicted_total").increment(1);
                }
                tokio::select! {
                    permit = Arc::clone(&permits).acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    () = stopped(&mut shutdown) => break,
                }
            }
        };
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; retrying shortly");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut shutdown) => break,
        };
        // Responses are written whole; do not hold a small one back.
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let slot = Arc::new(Slot::default());
        registry.insert(next_id, Arc::clone(&slot));
        let connection = Connection {
            id: next_id,
            slot,
            registry: Arc::clone(&registry),
            _permit: permit,
            _alive: alive_tx.clone(),
        };
        tokio::spawn(connection.run(
            stream,
            Arc::clone(&http),
            router.clone(),
            config.max_requests_per_connection,
            shutdown.clone(),
        ));
    }
    drop(alive_tx);
    // Every connection task holds a sender; recv returns None once all have ended.
    let _ = alive_rx.recv().await;
    Ok(())
}

/// Resolves once `shutdown` is true (or its sender is gone), holding no borrow of it after.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// A connection's task and what it holds until it ends.
struct Connection {
    id: u64,
    slot: Arc<Slot>,
    registry: Arc<Registry>,
    _permit: OwnedSemaphorePermit,
    _alive: mpsc::Sender<Infallible>,
}

impl Connection {
    async fn run(
        self,
        stream: tokio::net::TcpStream,
        http: Arc<hyper::server::conn::http1::Builder>,
        router: Router,
        max_requests: u64,
        mut shutdown: watch::Receiver<bool>,
    ) {
        metrics::gauge!("veritrail_connections_open").increment(1.0);
        let service = Tracked {
            router,
            slot: Arc::clone(&self.slot),
            max_requests,
        };
        let conn = http.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(conn);
        let mut closing = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    break;
                }
                () = self.slot.wake.notified() => {
                    if self.slot.in_flight.load(Ordering::Acquire) == 0 {
                        // Idle (no request in progress, perhaps a partial head): drop it.
                        break;
                    }
                    // A request started since it was chosen: close after its answer.
                    if !closing {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
                () = stopped(&mut shutdown), if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
        self.registry.remove(self.id);
        metrics::gauge!("veritrail_connections_open").decrement(1.0);
    }
}

/// The router, counting the requests of one connection in progress until their response
/// body has been sent.
#[derive(Clone)]
struct Tracked {
    router: Router,
    slot: Arc<Slot>,
    max_requests: u64,
}

impl hyper::service::Service<hyper::Request<Incoming>> for Tracked {
    type Response = hyper::Response<Guarded>;
    type Error = Infallible;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        let guard = InFlight::enter(Arc::clone(&self.slot));
        let started = self.slot.started.fetch_add(1, Ordering::AcqRel) + 1;
        let last = started >= self.max_requests;
        let router = self.router.clone();
        Box::pin(async move {
            let mut response = match router.oneshot(request.map(Body::new)).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            if last {
                // hyper closes the connection after a response that says so.
                response.headers_mut().insert(
                    axum::http::header::CONNECTION,
                    axum::http::HeaderValue::from_static("close"),
                );
            }
            Ok(response.map(|body| Guarded {
                body,
                _guard: guard,
            }))
        })
    }
}

/// Counts one request in progress on its connection until dropped.
struct InFlight(Arc<Slot>);

impl InFlight {
    fn enter(slot: Arc<Slot>) -> Self {
        slot.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(slot)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as in progress until hyper has sent it
/// (or dropped it).
pub struct Guarded {
    body: Body,
    _guard: InFlight,
}

impl http_body::Body for Guarded {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_the_configured_one_or_below_the_file_limit() {
        let files = Some(OpenFiles {
            soft: 4096,
            hard: 4096,
        });
        let auto = ConnectionConfig::default();
        assert_eq!(connection_cap(&auto, files), 4096 - 256);
        assert_eq!(
            connection_cap(
                &auto,
                Some(OpenFiles {
                    soft: 100,
                    hard: 100
                })
            ),
            16
        );
        assert_eq!(connection_cap(&auto, None), 1024);
        let fixed = ConnectionConfig {
            max_connections: Some(10),
            ..ConnectionConfig::default()
        };
        assert_eq!(connection_cap(&fixed, files), 10);
    }

    #[test]
    fn eviction_picks_the_oldest_idle_connection_once() {
        let registry = Registry::default();
        let busy = Arc::new(Slot::default());
        busy.in_flight.store(1, Ordering::Release);
        let idle_old = Arc::new(Slot::default());
        let idle_new = Arc::new(Slot::default());
        registry.insert(1, Arc::clone(&busy));
        registry.insert(2, Arc::clone(&idle_old));
        registry.insert(3, Arc::clone(&idle_new));
        assert!(registry.evict_oldest_idle());
        assert!(!busy.evicted.load(Ordering::Acquire));
        assert!(idle_old.evicted.load(Ordering::Acquire));
        assert!(!idle_new.evicted.load(Ordering::Acquire));
        assert!(registry.evict_oldest_idle());
        assert!(idle_new.evicted.load(Ordering::Acquire));
        assert!(!registry.evict_oldest_idle(), "only busy ones are left");
    }
}
