//! Veritrail HTTP server (`veritrail serve`).
//!
//! - **Writes**: `POST /v1/entries` (one raw entry, or a batch encoded like a C2SP entry
//!   bundle), answered only once the entries are durable. Concurrent requests share one
//!   durable commit ([`sequencer`], group commit); a full queue answers 503 with
//!   `Retry-After`. `?wait=published` waits for a signed checkpoint and returns an inclusion
//!   proof and an offline-verifiable receipt. `Idempotency-Key` makes retries safe.
//! - **Publication** ([`publisher`]): a checkpoint after each integrated batch, at most every
//!   `interval`, at least every `republish`.
//! - **Reads**: the C2SP tlog-tiles paths (`/checkpoint`, `/tile/...`), JSON proofs, entries
//!   and the checkpoint history. Every entry served is checked against its leaf hash first;
//!   a mismatch answers 500 `corrupted` and fails `/readyz` ([`integrity`]).
//! - **Access** ([`auth`]): bearer tokens with roles; **operations**: `/healthz`, `/readyz`,
//!   `/metrics` (Prometheus), `/openapi.json` ([`openapi`], derived from the router).
//!
//! Wire types, content types, limits and error codes come from `veritrail-api`, shared with
//! the client.
//!
//! [`app`] builds the router from an [`AppState`]; [`Server::start`] wires the ledger, the
//! committer thread and the publisher; [`Server::serve`] runs until a shutdown future resolves,
//! then drains in-flight appends, publishes a final checkpoint and returns.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use veritrail_ledger::note::{KeyName, NoteSigner};
//! use veritrail_ledger::store::{self, Backend};
//! use veritrail_ledger::Ledger;
//! use veritrail_server::{Server, ServerConfig, auth::Auth};
//!
//! let signer = NoteSigner::generate(KeyName::new("audit.example.com/log")?)?;
//! let store = store::open(Backend::Redb, std::path::Path::new("veritrail-data"))?;
//! let ledger = Arc::new(Ledger::open(store, "audit.example.com/log", signer)?);
//! let server = Server::start(ledger, ServerConfig::default(), Auth::disabled())?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7800").await?;
//! server.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod access;
pub mod archive;
pub mod auth;
mod body;
mod chains;
pub mod classification;
mod clock;
pub mod config;
pub mod conn;
pub mod error;
pub mod holds;
pub mod idempotency;
pub mod integrity;
mod middleware;
pub mod mirror;
pub mod oidc;
pub mod openapi;
pub mod otlp;
pub mod payloads;
pub mod publisher;
mod query;
pub mod record_index;
pub mod retention;
pub mod role;
pub mod routes;
pub mod sequencer;
mod swap;
pub mod witnessing;

use std::sync::{Arc, OnceLock};

use axum::extract::DefaultBodyLimit;
use axum::{Extension, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::sync::watch;
use veritrail_ledger::Ledger;

pub use crate::config::ServerConfig;
pub use crate::error::{ApiError, StartError};
pub use veritrail_records::ScrubMode;
pub use veritrail_records::scrub::DEFAULT_MRN_PATTERN;

use crate::auth::Auth;
use crate::idempotency::Idempotency;
use crate::integrity::Integrity;
use crate::publisher::Published;
use crate::sequencer::Sequencer;

/// How long shutdown waits for the mirror to write the final checkpoint.
const MIRROR_DRAIN: std::time::Duration = std::time::Duration::from_secs(30);

/// Shared state of every handler.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Inner>);

/// The contents of [`AppState`].
#[derive(Debug)]
pub struct Inner {
    /// The ledger.
    pub ledger: Arc<Ledger>,
    /// The group-commit queue.
    pub sequencer: Sequencer,
    /// The latest published checkpoint.
    pub published: watch::Receiver<Option<Published>>,
    /// Access policy.
    pub auth: Auth,
    /// Configuration.
    pub config: ServerConfig,
    /// Idempotency keys (shared with the committer, which remembers committed outcomes).
    pub idempotency: Arc<Idempotency>,
    /// Prometheus exposition, if a recorder could be installed.
    pub metrics: Option<PrometheusHandle>,
    /// False while the publisher's last attempt to sign a checkpoint failed.
    pub signing_ok: Arc<std::sync::atomic::AtomicBool>,
    /// The scrubber of agent records' metadata.
    pub scrubber: Arc<veritrail_records::Scrubber>,
    /// Stored data found corrupted while serving (fails `/readyz`).
    pub integrity: Integrity,
    /// The encrypted payload store, if the server keeps one.
    pub payloads: Option<Arc<payloads::PayloadStore>>,
    /// The classification registry merged into records.
    pub classifier: classification::Classifier,
    /// The record indexes for queries, if the server keeps them.
    pub record_index: Option<Arc<record_index::RecordIndex>>,
    /// The witnesses the publisher asks (with `ServerConfig::witnesses`).
    pub witnesses: Option<Arc<witnessing::Witnesses>>,
    /// The archival job, when the server archives (`--archive-to`).
    pub archive: Option<Arc<archive::ArchiveJob>>,
    /// Where purged bundles are re-served from (`--archive`), checked against the log's
    /// tiles first.
    pub archive_source: Option<veritrail_objects::Objects>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Installs the process-wide Prometheus recorder once; later calls share it.
fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let latency = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ];
            let sizes = [
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0, 8192.0,
            ];
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Prefix("veritrail_batch_".into()), &sizes)
                })
                .and_then(|b| b.install_recorder())
                .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
                .ok()
        })
        .clone()
}

/// The router for `state`: every route of [`routes`], `/openapi.json` serving the document
/// derived from those same routes, the fallbacks, the body limit, the request timeout and the
/// status counter.
pub fn app(state: AppState) -> Router {
    let body_limit = state.config.limits.max_body_bytes;
    let frontline = middleware::Frontline {
        timeout: state.config.limits.request_timeout,
        max_body_bytes: body_limit,
        max_header_bytes: state.config.connections.max_header_bytes,
    };
    let (router, doc) = routes::router().split_for_parts();
    router
        .fallback(middleware::not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .layer(Extension(routes::OpenApiJson::render(&openapi::finish(
            doc,
            &state.auth,
            &state.config.limits,
        ))))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            frontline,
            middleware::frontline,
        ))
        .with_state(state)
}

/// The OpenAPI document of [`app`]'s routes, built from the same router: what
/// `GET /openapi.json` serves on a server with tokens, without `--public-read` and with the
/// default limits.
pub fn api_document() -> utoipa::openapi::OpenApi {
    // `Auth::default()` authenticates every request with tokens (none known) and is not
    // `--public-read`.
    api_document_for(&Auth::default(), &config::LimitsConfig::default())
}

/// The OpenAPI document of a server with the access policy `auth` and the limits `limits`
/// (what its `GET /openapi.json` serves).
pub fn api_document_for(auth: &Auth, limits: &config::LimitsConfig) -> utoipa::openapi::OpenApi {
    openapi::finish(routes::router().into_openapi(), auth, limits)
}

/// A running server: the state plus the publisher task.
#[derive(Debug)]
pub struct Server {
    state: AppState,
    publisher: tokio::task::JoinHandle<()>,
    stop_publisher: watch::Sender<bool>,
    stop_indexer: Arc<std::sync::atomic::AtomicBool>,
    indexer: Option<std::thread::JoinHandle<()>>,
    mirror: Option<(tokio::task::JoinHandle<()>, watch::Sender<bool>)>,
    archive: Option<(tokio::task::JoinHandle<()>, watch::Sender<bool>)>,
}

impl Server {
    /// Starts the committer thread and the publisher (which signs a first checkpoint at once).
    /// Must be called inside a Tokio runtime.
    ///
    /// With [`config::LimitsConfig::idempotency_journal`] set, the journal is opened and the
    /// remembered keys rebuilt from it first ([`Idempotency::open`]).
    ///
    /// # Errors
    /// [`StartError::IdempotencyJournal`] if the journal cannot be opened or read;
    /// [`StartError::Config`] for settings it cannot run with (see
    /// [`ServerConfig::validate`]); [`StartError::CommitterThread`] if the committer thread
    /// cannot start; [`StartError::IdempotencyJournal`] if the journal cannot be read;
    /// [`StartError::RecordIndex`] or [`StartError::IndexerThread`] if the record indexes
    /// cannot be opened or followed; [`StartError::Classification`] for an unusable
    /// registry; [`StartError::Payloads`] for an unusable payload store.
    pub fn start(
        ledger: Arc<Ledger>,
        config: ServerConfig,
        auth: Auth,
    ) -> Result<Self, StartError> {
        config.validate().map_err(StartError::Config)?;
        let scrubber = veritrail_records::Scrubber::new(&config.records.mrn_pattern)
            .map_err(|e| StartError::Config(config::ConfigError::MrnPattern(e.to_string())))?;
        let classifier = classification::Classifier::open(config.records.classification.as_deref())
            .map_err(StartError::Classification)?;
        let stop_indexer = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut indexer = None;
        let record_index = match &config.records.index_dir {
            None => None,
            Some(dir) => {
                let index = Arc::new(
                    record_index::RecordIndex::open(dir, ledger.tree_head().size)
                        .map_err(StartError::RecordIndex)?,
                );
                let (ledger, index_, stop) = (ledger.clone(), index.clone(), stop_indexer.clone());
                indexer = Some(
                    std::thread::Builder::new()
                        .name("veritrail-indexer".into())
                        .spawn(move || record_index::run_indexer(ledger, index_, stop))
                        .map_err(StartError::IndexerThread)?,
                );
                Some(index)
            }
        };
        let payloads = match &config.records.payload_dir {
            None => None,
            Some(dir) => Some(Arc::new(
                payloads::PayloadStore::open(dir).map_err(StartError::Payloads)?,
            )),
        };
        let (committed_tx, committed_rx) = watch::channel(ledger.tree_head());
        let (published_tx, published_rx) = watch::channel(None);
        let (stop_publisher, mut stop_rx) = watch::channel(false);
        let limits = &config.limits;
        let (idempotency, journal) = match &limits.idempotency_journal {
            None => (
                Idempotency::new(limits.idempotency_window, limits.idempotency_budget),
                None,
            ),
            Some(path) => {
                let (idempotency, journal, restored) = Idempotency::open(
                    path,
                    limits.idempotency_window,
                    limits.idempotency_budget,
                    &ledger,
                )
                .map_err(StartError::IdempotencyJournal)?;
                tracing::info!(path = %path.display(), ?restored, "loaded the idempotency journal");
                (idempotency, Some(journal))
            }
        };
        let idempotency = Arc::new(idempotency);
        let sequencer = Sequencer::start(
            ledger.clone(),
            config.batch.clone(),
            committed_tx,
            idempotency.clone(),
            journal,
        )?;
        let signing_ok = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let witnesses = match &config.witnesses {
            None => None,
            Some(witness_config) => Some(Arc::new(
                witnessing::Witnesses::new(witness_config.clone(), ledger.verifier())
                    .map_err(StartError::Witnesses)?,
            )),
        };
        let publisher = tokio::spawn(publisher::run(
            ledger.clone(),
            committed_rx,
            published_tx,
            config.publish.clone(),
            signing_ok.clone(),
            witnesses.clone(),
            async move {
                let _ = stop_rx.wait_for(|stop| *stop).await;
            },
        ));
        let mirror = match &config.mirror {
            None => None,
            Some(location) => {
                let objects =
                    veritrail_objects::Objects::open(location).map_err(StartError::Mirror)?;
                let (stop, stop_rx) = watch::channel(false);
                let task = tokio::spawn(mirror::run(
                    ledger.clone(),
                    published_rx.clone(),
                    objects,
                    stop_rx,
                ));
                Some((task, stop))
            }
        };
        let archive = match &config.archive {
            None => None,
            Some(archive) => Some(Arc::new(archive::ArchiveJob::new(archive::Archiver {
                ledger: ledger.clone(),
                payloads: payloads.clone(),
                target: veritrail_objects::Objects::open(&archive.target)
                    .map_err(StartError::Archive)?,
                policy: archive.policy.clone(),
                max_bundles: archive.max_bundles,
            }))),
        };
        let archive_source = match &config.archive_source {
            None => None,
            Some(location) => Some(
                veritrail_objects::Objects::open(location).map_err(StartError::ArchiveSource)?,
            ),
        };
        let state = AppState(Arc::new(Inner {
            ledger,
            sequencer,
            published: published_rx,
            auth,
            config,
            idempotency,
            metrics: metrics_handle(),
            signing_ok,
            scrubber: Arc::new(scrubber),
            integrity: Integrity::default(),
            payloads,
            classifier,
            record_index,
            witnesses,
            archive,
            archive_source,
        }));
        let (stop_archive, stop_archive_rx) = watch::channel(false);
        let archive_task = match (
            &state.archive,
            state.config.archive.as_ref().and_then(|a| a.interval),
        ) {
            (Some(job), Some(interval)) => Some(tokio::spawn(archive::run_daily(
                state.clone(),
                job.clone(),
                interval,
                stop_archive_rx,
            ))),
            _ => None,
        };
        Ok(Server {
            state,
            publisher,
            stop_publisher,
            stop_indexer,
            indexer,
            mirror,
            archive: archive_task.map(|task| (task, stop_archive)),
        })
    }

    /// The handlers' state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves; then stops accepting connections, waits for in-flight
    /// requests, commits everything queued, publishes a final checkpoint and returns.
    ///
    /// # Errors
    /// I/O errors from the listener.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let router = app(self.state.clone());
        let connections = &self.state.config.connections;
        let files = conn::raise_open_files_limit();
        let cap = conn::connection_cap(connections, files);
        match files {
            Some(files) => tracing::info!(
                open_files = files.soft,
                hard_limit = files.hard,
                max_connections = cap,
                "open-files limit raised to its hard limit"
            ),
            None => tracing::warn!(max_connections = cap, "open-files limit unknown"),
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let signal = tokio::spawn(async move {
            shutdown.await;
            stop_tx.send_replace(true);
        });
        let served = conn::serve(listener, router, connections, cap, stop_rx).await;
        signal.abort();
        self.shutdown().await;
        served
    }

    /// Drains the queue, stops the committer and publishes a final checkpoint.
    pub async fn shutdown(self) {
        // A run in progress stops at its next await; nothing unverified is ever purged.
        if let Some((task, stop)) = self.archive {
            stop.send_replace(true);
            task.abort();
        }
        let state = self.state.clone();
        let _ = tokio::task::spawn_blocking(move || state.sequencer.shutdown()).await;
        self.stop_publisher.send_replace(true);
        self.stop_indexer
            .store(true, std::sync::atomic::Ordering::Release);
        if let Some(indexer) = self.indexer {
            let _ = tokio::task::spawn_blocking(move || indexer.join()).await;
        }
        if let Err(e) = self.publisher.await {
            tracing::error!(error = %e, "publisher task failed");
        }
        // After the final checkpoint: the mirror writes it too, bounded so that an
        // unreachable bucket cannot hold the shutdown forever.
        if let Some((task, stop)) = self.mirror {
            stop.send_replace(true);
            if tokio::time::timeout(MIRROR_DRAIN, task).await.is_err() {
                tracing::warn!(
                    "the mirror did not write the final checkpoint within {MIRROR_DRAIN:?}"
                );
            }
        }
    }
}
