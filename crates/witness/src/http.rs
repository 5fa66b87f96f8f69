//! The witness's HTTP interface: `POST /add-checkpoint`
//! ([tlog-witness v1.0.0](https://c2sp.org/tlog-witness)), `GET /checkpoint/<origin hash>`,
//! and `GET /metrics`.
//!
//! `add-checkpoint` makes the spec's checks in the spec's order, each with its status:
//!
//! | check | status |
//! |---|---|
//! | body over the size cap | 413 |
//! | body not `old` line, ≤ 63 proof lines, blank line, signed note; text not a checkpoint | 400 |
//! | origin not trusted | 404 |
//! | no signature verifies against the log's key (or the log's signature is bad) | 403 |
//! | extension lines (this witness understands none) | 400 |
//! | `old` > checkpoint size | 400 |
//! | `old` ≠ the latest cosigned size | 409, `text/x.tlog.size` body `<size>\n` |
//! | consistency proof from `old` does not verify | 422 |
//! | same size, another root | 409 |
//!
//! Then it cosigns a re-encoding of the parsed checkpoint (not the bytes it was sent), keeps
//! the log's signatures that verified, persists that note with a compare-and-swap on the size
//! it checked, and answers `200` with the cosignature line only once that is durable. Requests
//! for one origin are served one at a time; different origins proceed in parallel.
//! Error bodies other than the 409 size are JSON, `{"error": <code>, "message": <text>}`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State as AxumState};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use veritrail_ledger::ascii::parse_hex;
use veritrail_ledger::checkpoint::Checkpoint;
use veritrail_ledger::cosignature::CosignatureSigner;
use veritrail_ledger::hash::Hash;
use veritrail_ledger::note::{Note, NoteError};
use veritrail_ledger::proof::verify_consistency;
use veritrail_ledger::witness::{
    ADD_CHECKPOINT_PATH, AddCheckpoint, MAX_REQUEST_BYTES, SIZE_MEDIA_TYPE, WitnessFormatError,
    size_body,
};

use crate::logs::Logs;
use crate::state::{Latest, Outcome, State};

/// How long one request may take before it is answered 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A witness: its key, the logs it trusts and what it cosigned.
#[derive(Debug)]
pub struct Witness {
    signer: CosignatureSigner,
    logs: Logs,
    state: State,
    origins: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

impl Witness {
    /// A witness signing with `signer`, over the data directory `data` (its trusted logs and
    /// its state), with `metrics` rendered at `GET /metrics` if given.
    ///
    /// # Errors
    /// [`crate::state::StateError`] if the state cannot be opened.
    pub fn open(
        signer: CosignatureSigner,
        data: &std::path::Path,
        metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    ) -> Result<Witness, crate::state::StateError> {
        Ok(Witness {
            signer,
            logs: Logs::new(data),
            state: State::open(data)?,
            origins: std::sync::Mutex::new(HashMap::new()),
            metrics,
        })
    }

    /// Stops the state's committer after the updates in flight.
    pub fn close(&self) {
        self.state.close();
    }

    fn origin_lock(&self, origin: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.origins
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(origin.to_owned())
            .or_default()
            .clone()
    }

    /// Handles one `add-checkpoint` body: the spec's checks, then the durable update. Sets
    /// `trusted` to the checkpoint's origin once it is known to be a trusted log's (the
    /// metrics label).
    async fn add_checkpoint(
        &self,
        body: &[u8],
        trusted: &mut Option<String>,
    ) -> Result<String, Refusal> {
        let request = AddCheckpoint::parse(body).map_err(Refusal::Format)?;
        let checkpoint = Checkpoint::from_text(request.checkpoint.text())
            .map_err(|e| Refusal::BadRequest(format!("the note is not a checkpoint: {e}")))?;
        let origin = checkpoint.origin.clone();
        let key = self
            .logs
            .key(&origin)
            .map_err(|e| Refusal::Internal(e.to_string()))?
            .ok_or_else(|| Refusal::UnknownOrigin(origin.clone()))?;
        *trusted = Some(origin.clone());
        let verified: Vec<_> = match request.checkpoint.verify(std::slice::from_ref(&key)) {
            Ok(verified) => verified.into_iter().cloned().collect(),
            Err(NoteError::InvalidSignature { .. }) => {
                return Err(Refusal::Forbidden(
                    "the log's signature does not verify".into(),
                ));
            }
            Err(e) => return Err(Refusal::Forbidden(format!("no trusted signature: {e}"))),
        };
        if !checkpoint.extensions.is_empty() {
            return Err(Refusal::BadRequest(
                "checkpoint extension lines are not supported by this witness".into(),
            ));
        }
        let new = checkpoint.tree;
        if request.old > new.size {
            return Err(Refusal::BadRequest(format!(
                "old size {} is larger than the checkpoint's {}",
                request.old, new.size
            )));
        }
        let lock = self.origin_lock(&origin);
        let _serialised = lock.lock().await;
        let latest = self
            .state
            .latest(&origin)
            .map_err(|e| Refusal::Internal(e.to_string()))?;
        let (stored_size, stored_root) = latest
            .as_ref()
            .map_or((0, Hash::empty_root()), |l| (l.tree.size, l.tree.root));
        if request.old != stored_size {
            return Err(Refusal::Conflict(stored_size));
        }
        if request.old == new.size {
            if !request.proof.is_empty() {
                return Err(Refusal::Inconsistent(
                    "a proof between equal sizes must be empty".into(),
                ));
            }
            if new.root != stored_root {
                return Err(Refusal::Fork(new.size));
            }
        } else if request.old == 0 {
            if !request.proof.is_empty() {
                return Err(Refusal::Inconsistent(
                    "the proof must be empty when old is 0".into(),
                ));
            }
        } else {
            let old = veritrail_ledger::hash::TreeHead::new(stored_size, stored_root);
            verify_consistency(&old, &new, &request.proof).map_err(|e| {
                Refusal::Inconsistent(format!(
                    "the consistency proof from {stored_size} does not verify: {e}"
                ))
            })?;
        }
        // Cosign what was parsed, re-encoded, with the log's signatures that verified.
        let text = checkpoint.to_text();
        let mut note = Note::new(text.as_str()).map_err(|e| Refusal::Internal(e.to_string()))?;
        for signature in verified {
            note.add_signature(signature)
                .map_err(|e| Refusal::Internal(e.to_string()))?;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let cosignature = self
            .signer
            .sign(&text, now)
            .map_err(|e| Refusal::Internal(e.to_string()))?;
        let line = format!("{}\n", cosignature.to_line());
        note.add_signature(cosignature)
            .map_err(|e| Refusal::Internal(e.to_string()))?;
        let outcome = self
            .state
            .update(
                &origin,
                request.old,
                Latest {
                    tree: new,
                    note: note.to_bytes(),
                },
            )
            .await
            .map_err(|e| Refusal::Internal(e.to_string()))?;
        match outcome {
            Outcome::Stored => {
                metrics::gauge!("veritrail_witness_cosigned_size", "origin" => origin)
                    .set(new.size as f64);
                Ok(line)
            }
            Outcome::Conflict(size) => Err(Refusal::Conflict(size)),
        }
    }
}

/// Why an `add-checkpoint` request was refused.
#[derive(Debug)]
enum Refusal {
    Format(WitnessFormatError),
    BadRequest(String),
    UnknownOrigin(String),
    Forbidden(String),
    Conflict(u64),
    Inconsistent(String),
    Fork(u64),
    Internal(String),
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"error": code, "message": message}).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Format(WitnessFormatError::TooLarge { .. }) => json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                &format!("the body is larger than {MAX_REQUEST_BYTES} bytes"),
            ),
            Refusal::Format(e) => {
                json_error(StatusCode::BAD_REQUEST, "bad_request", &e.to_string())
            }
            Refusal::BadRequest(message) => {
                json_error(StatusCode::BAD_REQUEST, "bad_request", &message)
            }
            Refusal::UnknownOrigin(origin) => json_error(
                StatusCode::NOT_FOUND,
                "unknown_origin",
                &format!("this witness does not witness {origin}"),
            ),
            Refusal::Forbidden(message) => json_error(StatusCode::FORBIDDEN, "forbidden", &message),
            Refusal::Conflict(size) => (
                StatusCode::CONFLICT,
                [(header::CONTENT_TYPE, SIZE_MEDIA_TYPE)],
                size_body(size),
            )
                .into_response(),
            Refusal::Inconsistent(message) => {
                json_error(StatusCode::UNPROCESSABLE_ENTITY, "inconsistent", &message)
            }
            Refusal::Fork(size) => json_error(
                StatusCode::CONFLICT,
                "fork",
                &format!("a checkpoint of size {size} with another root was cosigned"),
            ),
            Refusal::Internal(message) => {
                tracing::error!(%message, "add-checkpoint failed");
                json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", &message)
            }
        }
    }
}

async fn add_checkpoint(AxumState(witness): AxumState<Arc<Witness>>, body: Bytes) -> Response {
    let started = Instant::now();
    let mut trusted = None;
    let answer = witness.add_checkpoint(&body, &mut trusted).await;
    // Only trusted origins become labels: a stranger cannot grow the metrics without bound.
    let origin = trusted.unwrap_or_else(|| "unknown".to_owned());
    let response = match answer {
        Ok(line) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            line,
        )
            .into_response(),
        Err(refusal) => refusal.into_response(),
    };
    let status = response.status().as_u16().to_string();
    metrics::counter!("veritrail_witness_requests_total", "origin" => origin.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("veritrail_witness_request_seconds", "origin" => origin)
        .record(started.elapsed().as_secs_f64());
    response
}

async fn checkpoint(
    AxumState(witness): AxumState<Arc<Witness>>,
    Path(hash): Path<String>,
) -> Response {
    let Some(key) = parse_hex::<32>(&hash).filter(|_| hash.len() == 64) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "give the lower-case hex SHA-256 of the log's origin",
        );
    };
    match witness.state.latest_by_key(&key) {
        Ok(Some(latest)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            latest.note,
        )
            .into_response(),
        Ok(None) => json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "this witness has cosigned no checkpoint of that origin",
        ),
        Err(e) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &e.to_string(),
        ),
    }
}

async fn metrics_page(AxumState(witness): AxumState<Arc<Witness>>) -> Response {
    match &witness.metrics {
        Some(handle) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "metrics are not recorded",
        ),
    }
}

async fn not_found() -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint: POST /add-checkpoint, GET /checkpoint/<origin hash>, GET /metrics",
    )
}

/// The witness's router.
pub fn router(witness: Arc<Witness>) -> Router {
    Router::new()
        .route(ADD_CHECKPOINT_PATH, post(add_checkpoint))
        .route("/checkpoint/{hash}", get(checkpoint))
        .route("/metrics", get(metrics_page))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(witness)
}

/// Installs the process-wide Prometheus recorder (latency buckets for `_seconds`) and returns
/// its handle, or `None` if another recorder is installed.
pub fn install_metrics() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    let latency = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ];
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
            &latency,
        )
        .and_then(metrics_exporter_prometheus::PrometheusBuilder::install_recorder)
        .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
        .ok()
}

/// Serves `witness` on `listener` until `shutdown` resolves, then lets requests in flight
/// finish.
///
/// # Errors
/// The listener's I/O error.
pub async fn serve(
    listener: tokio::net::TcpListener,
    witness: Arc<Witness>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(witness))
        .with_graceful_shutdown(shutdown)
        .await
}
