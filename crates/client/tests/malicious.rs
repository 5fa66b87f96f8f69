//! The client against a malicious server: a fake log (an axum app on `127.0.0.1:0`, built in
//! this file from the pure ledger layer) that serves the real routes (`/checkpoint`,
//! `/tile/...`, `/v1/entries/...`, `/v1/proof/...`) and lies on demand. Every lie must be
//! refused with the exact [`ClientError`] variant, without a panic or a hang, and without
//! moving the trusted state (in memory and in the state file); fork cases must yield
//! split-view evidence that verifies offline with the pinned key only.
//!
//! The honest log holds [`SIZE`] entries; clients first trust it at [`TRUSTED`] over the
//! network, then the server turns. Cases, by test:
//!
//! 1. `forked_history_*`: a checkpoint of size 700 whose tree rewrites entry 5 →
//!    `Verify(SplitView)` from `VerifyingClient::update` (tiles and API proofs) and
//!    `Monitor::run_once`; the evidence round-trips through bytes and proves a
//!    `PrefixMismatch` with the pinned key only. Two roots for one size →
//!    `SameSizeDifferentRoots`.
//! 2. `rolled_back_checkpoint_*`: an older consistent checkpoint → `Rollback { trusted, got }`;
//!    an older inconsistent one while the trusted tree's tiles are still served (or the
//!    monitor has its cache) → `SplitView` with evidence; without that data → `Rollback`.
//! 3. `bad_signatures_*`: a flipped signature byte or text byte → `BadCheckpoint(Note(
//!    InvalidSignature))`; a note signed by another key of the same name →
//!    `BadCheckpoint(Note(NoVerifiedSignature))`, also on first use.
//! 4. `checkpoint_from_another_origin_*` → `BadCheckpoint(OriginMismatch)`.
//! 5. `truncated_or_padded_proofs_*` (API proofs): a hash removed or appended →
//!    `BadProof(WrongLength)`; more than 64 hashes → `MalformedResponse`; a bad consistency
//!    proof is rejected even when the honest tiles would prove the checkpoint.
//! 6. `proof_for_another_index_*`: an answer for another index → `WrongAnswer`; the right index
//!    with another leaf's path → `BadProof(RootMismatch)`.
//! 7. `tiles_that_do_not_hash_to_the_root_*` → `TileRootMismatch` (client, `TileProver`,
//!    following monitor), `TileMismatch` (first-run monitor), `BadProof(RootMismatch)` for a
//!    tile off the root's path.
//! 8. `entries_that_do_not_match_*`: `/v1/entries/{i}` lying → `EntryMismatch`; a changed
//!    bundle → `TileMismatch` (new entries) or `EntryMismatch` (already verified entries);
//!    a self-consistent other tree → `EntriesRootMismatch`; a lying append answer →
//!    `EntryMismatch`.
//! 9. `huge_claimed_tree_size_*`: sizes `u64::MAX` and `2^40 + 1` → `ImplausibleTreeSize`; with
//!    the limit raised → `MissingData` (tiles) or `Api { 422 }` (proof API), never a hang.
//! 10. `hostile_transport_*`: a tile over 8192 bytes (with and without `Content-Length`) and a
//!     checkpoint over 1 MiB → `ResponseTooLarge`; a hash tile of the wrong length →
//!     `MalformedResponse`; non-JSON error bodies → `Api` with an empty code; a silent server
//!     → `Transport` within the timeout; `503` + `Retry-After` retried for reads (requests
//!     counted at the server), an append retried only with an idempotency key.
//! 11. `receipts_from_a_malicious_server_*`: receipts returned by `POST /v1/entries?wait=published`
//!     fail `verify_receipt` with the exact `ReceiptError`.
//! 12. `random_bytes_never_verify` (proptest, 64 cases): random bytes as the checkpoint (also
//!     validly signed), hash tiles (also of the right length), bundles or proof JSON: every
//!     operation that reads them fails as misbehaviour with trust unchanged; the others
//!     still verify the honest log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::future::Future;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use veritrail_client::evidence::{EvidenceError, MisbehaviourKind};
use veritrail_client::{
    AppendOptions, ClientConfig, ClientError, Evidence, LogClient, LogVerifier, Monitor,
    MonitorOptions, ProofSource, TileProver, Update, VerifyError, VerifyingClient, verify_receipt,
};
use veritrail_ledger::bundle::encode_bundle;
use veritrail_ledger::checkpoint::{Checkpoint, CheckpointError};
use veritrail_ledger::note::{KeyName, Note, NoteError, NoteSignature, NoteSigner, NoteVerifier};
use veritrail_ledger::proof::{ProofError, consistency_proof_len, inclusion_proof_len};
use veritrail_ledger::receipt::{Receipt, ReceiptError};
use veritrail_ledger::tile::{TileId, TileKind};
use veritrail_ledger::tree::{self, HashTileReader, TreeError};
use veritrail_ledger::{Hash, TreeHead, leaf_hash, node_hash};

const ORIGIN: &str = "malicious.veritrail.example/log";
/// The honest log's size: two full tiles and a partial one at level 0, a partial tile at
/// level 1.
const SIZE: u64 = 700;
/// The size clients trust before the server turns (inside the second level-0 tile).
const TRUSTED: u64 = 300;
/// The entry the forked history rewrites.
const FORK_AT: usize = 5;
/// The default `ClientConfig::max_tree_size`.
const MAX_TREE_SIZE: u64 = 1 << 40;
/// The longest any single client operation may take here; a hang fails the test.
const DEADLINE: Duration = Duration::from_secs(20);

fn signer() -> NoteSigner {
    NoteSigner::from_seed(KeyName::new(ORIGIN).unwrap(), [7; 32])
}

/// The pinned log key.
fn key() -> NoteVerifier {
    signer().verifier()
}

/// Another key with the log's name.
fn impostor() -> NoteSigner {
    NoteSigner::from_seed(KeyName::new(ORIGIN).unwrap(), [8; 32])
}

fn entry(i: u64) -> Vec<u8> {
    format!("{{\"agent\":\"billing-bot\",\"event\":\"tool_call\",\"n\":{i}}}").into_bytes()
}

fn sign(origin: &str, tree: TreeHead, signer: &NoteSigner) -> Vec<u8> {
    Checkpoint::new(origin, tree)
        .unwrap()
        .sign(signer)
        .unwrap()
        .to_bytes()
}

/// Awaits `future`, failing the test if it takes longer than [`DEADLINE`].
async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, future)
        .await
        .expect("the client did not finish within the deadline")
}

// ---------------------------------------------------------------------------------------
// An in-memory log: entries and every tile row, from the pure ledger layer.
// ---------------------------------------------------------------------------------------

/// A log held in memory: its entries and the hash rows of levels 0, 8, 16, ... (the rows of
/// C2SP hash tiles). Trees of any size up to `entries.len()` are served from it, the way a
/// real log serves every checkpoint's tiles from its committed tree.
struct Log {
    entries: Vec<Vec<u8>>,
    rows: Vec<Vec<Hash>>,
}

impl Log {
    fn new(entries: Vec<Vec<u8>>) -> Log {
        let mut level: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
        let mut rows = vec![level.clone()];
        for height in 1..64u32 {
            level = level
                .chunks_exact(2)
                .map(|pair| node_hash(&pair[0], &pair[1]))
                .collect();
            if level.is_empty() {
                break;
            }
            if height % 8 == 0 {
                rows.push(level.clone());
            }
        }
        Log { entries, rows }
    }

    fn honest() -> Arc<Log> {
        Arc::new(Log::new((0..SIZE).map(entry).collect()))
    }

    /// The honest entries with entry [`FORK_AT`] rewritten.
    fn forked() -> Arc<Log> {
        let mut entries: Vec<Vec<u8>> = (0..SIZE).map(entry).collect();
        entries[FORK_AT] = b"{\"agent\":\"billing-bot\",\"event\":\"nothing happened\"}".to_vec();
        Arc::new(Log::new(entries))
    }

    fn size(&self) -> u64 {
        self.entries.len() as u64
    }

    fn head(&self, size: u64) -> TreeHead {
        TreeHead::new(size, tree::root(self, size).unwrap())
    }

    /// The checkpoint of the first `size` entries, signed with the log key.
    fn note(&self, size: u64) -> Vec<u8> {
        sign(ORIGIN, self.head(size), &signer())
    }

    fn tile(&self, level: u8, index: u64, width: u16) -> Option<Vec<u8>> {
        let hashes = self.read_hash_tile(level, index, width).ok()?;
        Some(hashes.iter().flat_map(|h| h.as_bytes().to_vec()).collect())
    }

    fn bundle_entries(&self, index: u64, width: u16) -> Option<Vec<Vec<u8>>> {
        let start = usize::try_from(index.checked_mul(256)?).ok()?;
        let slice = self.entries.get(start..start + usize::from(width))?;
        Some(slice.to_vec())
    }

    fn bundle(&self, index: u64, width: u16) -> Option<Vec<u8>> {
        let entries = self.bundle_entries(index, width)?;
        Some(encode_bundle(entries.iter().map(Vec::as_slice)).unwrap())
    }

    fn inclusion(&self, index: u64, size: u64) -> Vec<Hash> {
        tree::inclusion_proof(self, index, size).unwrap_or_default()
    }

    fn consistency(&self, old: u64, size: u64) -> Vec<Hash> {
        tree::consistency_proof(self, old, size).unwrap_or_default()
    }
}

impl HashTileReader for Log {
    type Error = TreeError;

    fn read_hash_tile(&self, level: u8, index: u64, width: u16) -> Result<Vec<Hash>, TreeError> {
        let short = TreeError::ShortTile {
            level,
            index,
            got: 0,
            want: usize::from(width),
        };
        let start = usize::try_from(index.saturating_mul(256)).map_err(|_| short.clone())?;
        self.rows
            .get(usize::from(level))
            .and_then(|row| row.get(start..start + usize::from(width)))
            .map(<[Hash]>::to_vec)
            .ok_or(short)
    }
}

// ---------------------------------------------------------------------------------------
// The fake server and its misbehaviours.
// ---------------------------------------------------------------------------------------

/// How JSON proofs (and the proofs inside entries and receipts) are bent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum ProofTwist {
    #[default]
    Honest,
    /// The last hash removed.
    Truncated,
    /// One hash appended.
    Padded,
    /// Padded to 65 hashes, more than any tree needs.
    Oversized,
    /// The answer (index, or old size for consistency) and path for another leaf or size.
    OtherIndex(u64),
    /// The index asked, with the audit path of another leaf.
    PathOf(u64),
}

/// A canned answer replacing the normal one for a request such as `"GET /checkpoint"`,
/// `times` times (forever when `None`).
#[derive(Clone, Debug)]
struct Canned {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    times: Option<usize>,
}

impl Canned {
    fn ok(body: Vec<u8>) -> Canned {
        Canned {
            status: 200,
            headers: Vec::new(),
            body,
            times: None,
        }
    }

    fn status(status: u16, body: &[u8]) -> Canned {
        Canned {
            status,
            body: body.to_vec(),
            ..Canned::ok(Vec::new())
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Canned {
        self.headers.push((name, value.to_owned()));
        self
    }

    fn times(mut self, times: usize) -> Canned {
        self.times = Some(times);
        self
    }

    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = StatusCode::from_u16(self.status).unwrap();
        for (name, value) in self.headers {
            response.headers_mut().insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(&value).unwrap(),
            );
        }
        response
    }
}

/// What the proptest fills with random bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// The checkpoint note's bytes.
    Checkpoint,
    /// A note signed by the log key whose text is the origin line and random lines.
    SignedText,
    /// Every hash tile.
    HashTiles,
    /// Every entry bundle.
    Bundles,
    /// Every JSON proof.
    Proofs,
}

#[derive(Clone, Debug)]
struct Garbage {
    target: Target,
    bytes: Vec<u8>,
    /// For hash tiles: cut or cycle the bytes to the tile's exact length.
    exact_len: bool,
}

/// What the fake server serves; tests switch it while the server runs.
struct Scenario {
    /// The tree behind tiles, bundles, entries and proofs.
    log: Arc<Log>,
    /// The note served at `/checkpoint`.
    checkpoint: Vec<u8>,
    /// The tree size proofs and entries default to (the "latest published" size).
    published: u64,
    proofs: ProofTwist,
    /// Hash tiles answer `500 internal`.
    tiles_down: bool,
    canned: HashMap<String, Canned>,
    garbage: Option<Garbage>,
}

struct Shared {
    scenario: Mutex<Scenario>,
    /// Requests seen, by `"METHOD /path"`.
    hits: Mutex<HashMap<String, usize>>,
    /// The `Idempotency-Key` of every POST, in order.
    idempotency_keys: Mutex<Vec<Option<String>>>,
}

impl Shared {
    fn snapshot(&self) -> (Arc<Log>, u64, ProofTwist, Vec<u8>) {
        let s = self.scenario.lock().unwrap();
        (s.log.clone(), s.published, s.proofs, s.checkpoint.clone())
    }
}

fn api_error(status: u16, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": code, "message": message }).to_string();
    let mut response = Canned::status(status, body.as_bytes()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn octets(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
}

fn json(value: serde_json::Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn b64(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(Hash::to_base64).collect()
}

/// The query parameter `name` as a number, if present.
fn number(
    query: &HashMap<String, String>,
    name: &str,
) -> Result<Option<u64>, std::num::ParseIntError> {
    query.get(name).map(|v| v.parse()).transpose()
}

/// Applies a twist to a proof, returning the leaf index (or old size) to answer for.
fn twist(twist: ProofTwist, asked: u64, honest: impl Fn(u64) -> Vec<Hash>) -> (u64, Vec<Hash>) {
    let filler = leaf_hash(b"padding");
    match twist {
        ProofTwist::Honest => (asked, honest(asked)),
        ProofTwist::Truncated => {
            let mut proof = honest(asked);
            proof.pop();
            (asked, proof)
        }
        ProofTwist::Padded => {
            let mut proof = honest(asked);
            proof.push(filler);
            (asked, proof)
        }
        ProofTwist::Oversized => {
            let mut proof = honest(asked);
            proof.resize(65, filler);
            (asked, proof)
        }
        ProofTwist::OtherIndex(other) => (other, honest(other)),
        ProofTwist::PathOf(other) => (asked, honest(other)),
    }
}

/// Counts requests, records idempotency keys, and serves canned answers and garbage before
/// the normal routes see the request.
async fn intercept(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let name = format!("{} {path}", request.method());
    *shared.hits.lock().unwrap().entry(name.clone()).or_default() += 1;
    if request.method() == Method::POST {
        let key = request
            .headers()
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        shared.idempotency_keys.lock().unwrap().push(key);
    }
    let early = {
        let mut s = shared.scenario.lock().unwrap();
        let canned = match s.canned.get_mut(&name) {
            Some(c) if c.times == Some(0) => None,
            Some(c) => {
                if let Some(times) = &mut c.times {
                    *times -= 1;
                }
                Some(c.clone().into_response())
            }
            None => None,
        };
        canned.or_else(|| s.garbage.as_ref().and_then(|g| garbage(g, &path)))
    };
    match early {
        Some(response) => response,
        None => next.run(request).await,
    }
}

fn garbage(g: &Garbage, path: &str) -> Option<Response> {
    let hash_tile = path.starts_with("/tile/") && !path.starts_with("/tile/entries/");
    let hit = match g.target {
        Target::Checkpoint | Target::SignedText => path == "/checkpoint",
        Target::HashTiles => hash_tile,
        Target::Bundles => path.starts_with("/tile/entries/"),
        Target::Proofs => path.starts_with("/v1/proof/"),
    };
    if !hit {
        return None;
    }
    let bytes = match g.target {
        Target::SignedText => {
            let mut text = format!("{ORIGIN}\n");
            // Printable ASCII and newlines: a note the signer accepts.
            text.extend(g.bytes.iter().map(|b| match b % 8 {
                0 => '\n',
                _ => char::from(b' ' + b % 95),
            }));
            text.push('\n');
            let mut note = Note::new(text).unwrap();
            note.add_signature(signer().sign(note.text())).unwrap();
            note.to_bytes()
        }
        Target::HashTiles if g.exact_len => {
            let id = TileId::from_path(path.trim_start_matches('/')).ok()?;
            let len = usize::from(id.width()) * 32;
            if g.bytes.is_empty() {
                vec![0; len]
            } else {
                g.bytes.iter().copied().cycle().take(len).collect()
            }
        }
        _ => g.bytes.clone(),
    };
    Some(octets(bytes))
}

async fn checkpoint_route(State(shared): State<Arc<Shared>>) -> Response {
    let (_, _, _, note) = shared.snapshot();
    if note.is_empty() {
        return api_error(404, "not_found", "no checkpoint published yet");
    }
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response()
}

async fn tile_route(State(shared): State<Arc<Shared>>, UrlPath(path): UrlPath<String>) -> Response {
    let Ok(id) = TileId::from_path(&format!("tile/{path}")) else {
        return api_error(404, "not_found", "not a canonical tile path");
    };
    let (log, tiles_down) = {
        let s = shared.scenario.lock().unwrap();
        (s.log.clone(), s.tiles_down)
    };
    let bytes = match id.kind() {
        TileKind::Hash { .. } if tiles_down => {
            return api_error(500, "internal", "internal error");
        }
        TileKind::Hash { level } => log.tile(level, id.index(), id.width()),
        TileKind::Entries => log.bundle(id.index(), id.width()),
    };
    match bytes {
        Some(bytes) => octets(bytes),
        None => api_error(404, "not_found", "beyond the committed tree"),
    }
}

async fn entry_route(
    State(shared): State<Arc<Shared>>,
    UrlPath(index): UrlPath<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (log, published, proofs, note) = shared.snapshot();
    let Ok(index) = index.parse::<u64>() else {
        return api_error(400, "invalid_parameter", "index");
    };
    let Some(bytes) = usize::try_from(index)
        .ok()
        .and_then(|i| log.entries.get(i))
        .cloned()
    else {
        return api_error(404, "not_found", "no such entry");
    };
    if !query.contains_key("proof") {
        return octets(bytes);
    }
    if index >= published {
        return api_error(404, "not_found", "not covered by the latest checkpoint");
    }
    let (answered, proof) = twist(proofs, index, |i| log.inclusion(i, published));
    json(serde_json::json!({
        "index": answered,
        "entry": STANDARD.encode(&bytes),
        "leaf_hash": leaf_hash(&bytes).to_base64(),
        "tree_size": published,
        "proof": b64(&proof),
        "checkpoint": String::from_utf8_lossy(&note),
    }))
}

/// `POST /v1/entries`: the fake log is frozen, so it answers an entry it already holds as an
/// idempotent replay (its first index), with proofs and a receipt for `wait=published`.
async fn append_route(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let (log, published, proofs, note) = shared.snapshot();
    let Some(index) = log.entries.iter().position(|e| e[..] == body[..]) else {
        return api_error(500, "internal", "this log is frozen");
    };
    let index = index as u64;
    let mut answer = serde_json::json!({
        "index": index,
        "leaf_hash": leaf_hash(&body).to_base64(),
    });
    if query.get("wait").map(String::as_str) == Some("published") {
        if index >= published {
            return api_error(408, "timeout", "not published in time");
        }
        let (answered, proof) = twist(proofs, index, |i| log.inclusion(i, published));
        let Ok(checkpoint) = Note::from_bytes(&note) else {
            return api_error(500, "internal", "internal error");
        };
        let receipt = Receipt {
            extra: None,
            index: answered,
            proof: proof.clone(),
            checkpoint,
        };
        answer["checkpoint"] = String::from_utf8_lossy(&note).into();
        answer["inclusion_proof"] = b64(&proof).into();
        answer["receipt"] = String::from_utf8_lossy(&receipt.to_bytes()).into();
    }
    json(answer)
}

/// `/v1/proof/inclusion` (by index) and `/v1/proof/inclusion/by-leaf-hash`: one handler, which
/// takes either parameter on either route (the client only sends each to its own).
async fn inclusion_route(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (log, published, proofs, _) = shared.snapshot();
    let size = match number(&query, "size") {
        Ok(size) => size.unwrap_or(published),
        Err(_) => return api_error(400, "invalid_parameter", "size"),
    };
    if size > log.size() {
        return api_error(422, "size_out_of_range", "beyond the committed tree");
    }
    let index = match (number(&query, "index"), query.get("leaf_hash")) {
        (Ok(Some(index)), None) => index,
        (Ok(None), Some(text)) => {
            let Ok(wanted) = Hash::from_base64(text) else {
                return api_error(400, "invalid_parameter", "leaf_hash");
            };
            let found = log
                .entries
                .iter()
                .take(usize::try_from(size).unwrap_or(usize::MAX))
                .position(|e| leaf_hash(e) == wanted);
            match found {
                Some(index) => index as u64,
                None => return api_error(404, "not_found", "no such leaf"),
            }
        }
        (Err(_), _) => return api_error(400, "invalid_parameter", "index"),
        _ => return api_error(400, "invalid_parameter", "index or leaf_hash"),
    };
    if index >= size {
        return api_error(422, "index_out_of_range", "index beyond the tree size");
    }
    let (answered, proof) = twist(proofs, index, |i| log.inclusion(i, size));
    json(serde_json::json!({ "index": answered, "tree_size": size, "proof": b64(&proof) }))
}

async fn consistency_route(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (log, published, proofs, _) = shared.snapshot();
    let (old, size) = match (number(&query, "old"), number(&query, "size")) {
        (Ok(Some(old)), Ok(size)) => (old, size.unwrap_or(published)),
        _ => return api_error(400, "invalid_parameter", "old or size"),
    };
    if size > log.size() {
        return api_error(422, "size_out_of_range", "beyond the committed tree");
    }
    if old == 0 {
        return api_error(400, "invalid_parameter", "old");
    }
    if old > size {
        return api_error(422, "size_out_of_range", "old beyond size");
    }
    let (answered, proof) = twist(proofs, old, |o| log.consistency(o, size));
    json(serde_json::json!({ "old": answered, "tree_size": size, "proof": b64(&proof) }))
}

fn app(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/checkpoint", get(checkpoint_route))
        .route("/tile/{*path}", get(tile_route))
        .route("/v1/entries", axum::routing::post(append_route))
        .route("/v1/entries/{index}", get(entry_route))
        .route("/v1/proof/inclusion", get(inclusion_route))
        .route("/v1/proof/inclusion/by-leaf-hash", get(inclusion_route))
        .route("/v1/proof/consistency", get(consistency_route))
        .fallback(|| async { api_error(404, "not_found", "no such endpoint") })
        .layer(middleware::from_fn_with_state(shared.clone(), intercept))
        .with_state(shared)
}

/// The fake log server, on loopback.
struct Fake {
    url: String,
    shared: Arc<Shared>,
    honest: Arc<Log>,
    forked: Arc<Log>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Fake {
    /// Starts a server publishing the honest log at [`TRUSTED`].
    async fn start() -> Fake {
        let honest = Log::honest();
        let shared = Arc::new(Shared {
            scenario: Mutex::new(Scenario {
                log: honest.clone(),
                checkpoint: honest.note(TRUSTED),
                published: TRUSTED,
                proofs: ProofTwist::Honest,
                tiles_down: false,
                canned: HashMap::new(),
                garbage: None,
            }),
            hits: Mutex::new(HashMap::new()),
            idempotency_keys: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = app(shared.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Fake {
            url,
            shared,
            honest,
            forked: Log::forked(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    fn with(&self, change: impl FnOnce(&mut Scenario)) {
        change(&mut self.shared.scenario.lock().unwrap());
    }

    /// Serves `log` and its signed checkpoint at `size`, honestly.
    fn publish(&self, log: &Arc<Log>, size: u64) {
        self.with(|s| {
            s.log = log.clone();
            s.checkpoint = log.note(size);
            s.published = size;
            s.proofs = ProofTwist::Honest;
            s.tiles_down = false;
            s.canned.clear();
            s.garbage = None;
        });
    }

    /// Serves `note` at `/checkpoint`, leaving everything else as it is.
    fn serve_checkpoint(&self, note: Vec<u8>) {
        self.with(|s| s.checkpoint = note);
    }

    /// Answers `request` (`"GET /tile/0/000"`) with `canned`.
    fn can(&self, request: &str, canned: Canned) {
        self.with(|s| {
            s.canned.insert(request.to_owned(), canned);
        });
    }

    fn hits(&self, request: &str) -> usize {
        self.shared
            .hits
            .lock()
            .unwrap()
            .get(request)
            .copied()
            .unwrap_or(0)
    }

    fn reset_hits(&self) {
        self.shared.hits.lock().unwrap().clear();
        self.shared.idempotency_keys.lock().unwrap().clear();
    }

    fn config(&self) -> ClientConfig {
        ClientConfig {
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            retries: 1,
            backoff: Duration::from_millis(10),
            ..ClientConfig::new(self.url.clone())
        }
    }

    fn client(&self) -> LogClient {
        LogClient::new(&self.config()).unwrap()
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        bounded(self.task.take().unwrap()).await.unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// Trusted state: set up over the network, compared after every rejection.
// ---------------------------------------------------------------------------------------

/// Everything a rejection must leave alone: the trusted checkpoint and the state file.
#[derive(Debug, PartialEq, Eq)]
struct Trust {
    size: u64,
    note: Option<Vec<u8>>,
    file: Option<Vec<u8>>,
}

fn trust(verifier: &LogVerifier, state: &Path) -> Trust {
    Trust {
        size: verifier.trusted_size(),
        note: verifier.trusted().map(|(_, note)| note.clone()),
        file: std::fs::read(state).ok(),
    }
}

/// A verifying client that trusts the honest log at `size`, learnt over the network (trust
/// on first use under the pinned key), with a state file in `dir`.
async fn trusting_client(
    fake: &Fake,
    source: ProofSource,
    size: u64,
    dir: &Path,
) -> (VerifyingClient, PathBuf) {
    fake.publish(&fake.honest, size);
    let state = dir.join(format!("state-{source:?}-{size}.json"));
    let _ = std::fs::remove_file(&state);
    let verifier = LogVerifier::load(&state, ORIGIN, &key()).unwrap();
    let mut client = VerifyingClient::new(fake.client(), verifier, Some(state.clone()), source);
    let (checkpoint, update) = bounded(client.update()).await.unwrap();
    assert_eq!(update, Update::First);
    assert_eq!(checkpoint.tree, fake.honest.head(size));
    assert_eq!(
        LogVerifier::load(&state, ORIGIN, &key())
            .unwrap()
            .trusted_size(),
        size
    );
    (client, state)
}

fn monitor_options(dir: &Path) -> MonitorOptions {
    MonitorOptions {
        parallel: 4,
        ..MonitorOptions::new(dir.join("cache"))
    }
}

/// A monitor that has audited the honest log up to `size` (cache and state file in `dir`).
async fn trusting_monitor(fake: &Fake, size: u64, dir: &Path) -> (Monitor<LogClient>, PathBuf) {
    let (mut monitor, state) = fresh_monitor(fake, dir);
    fake.publish(&fake.honest, size);
    let report = bounded(monitor.run_once(&mut |_, _| {})).await.unwrap();
    assert_eq!(report.checkpoint.tree, fake.honest.head(size));
    assert_eq!(report.entries_verified, size);
    assert_eq!(monitor.cached_size(), size);
    (monitor, state)
}

/// A monitor that trusts nothing yet, with an empty cache.
fn fresh_monitor(fake: &Fake, dir: &Path) -> (Monitor<LogClient>, PathBuf) {
    let state = dir.join("monitor-state.json");
    let verifier = LogVerifier::load(&state, ORIGIN, &key()).unwrap();
    let monitor = Monitor::new(
        fake.client(),
        verifier,
        Some(state.clone()),
        monitor_options(dir),
    )
    .unwrap();
    (monitor, state)
}

async fn run_monitor(monitor: &mut Monitor<LogClient>) -> ClientError {
    bounded(monitor.run_once(&mut |_, _| {}))
        .await
        .expect_err("the monitor accepted a lie")
}

/// Checks split-view evidence the way an auditor would: from its bytes, with the pinned key
/// only; and that another key does not make it evidence.
fn assert_offline_evidence(evidence: &Evidence, a: TreeHead, b: TreeHead, kind: MisbehaviourKind) {
    let bytes = evidence.to_bytes();
    let parsed = Evidence::from_bytes(&bytes).unwrap();
    assert_eq!(&parsed, evidence);
    let proven = parsed.verify(&key()).unwrap();
    assert_eq!(proven.a.tree, a);
    assert_eq!(proven.b.tree, b);
    assert_eq!(proven.kind, kind);
    assert!(matches!(
        parsed.verify(&impostor().verifier()),
        Err(EvidenceError::BadCheckpoint { which: "a", .. })
    ));
}

fn split_view(err: &ClientError) -> (u64, u64, &Evidence) {
    match err {
        ClientError::Verify(VerifyError::SplitView { a, b, evidence }) => (*a, *b, evidence),
        other => panic!("expected a split view, got {other:?}"),
    }
}

const SOURCES: [ProofSource; 2] = [ProofSource::Tiles, ProofSource::Api];

// ---------------------------------------------------------------------------------------
// 1. Forked history.
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forked_history_is_a_split_view_with_offline_evidence() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let prefix_in_fork = fake.forked.head(TRUSTED).root;
    assert_ne!(prefix_in_fork, fake.honest.head(TRUSTED).root);
    let kind = MisbehaviourKind::PrefixMismatch {
        prefix_root_in_b: prefix_in_fork,
    };
    for source in SOURCES {
        let (mut client, state) = trusting_client(&fake, source, TRUSTED, dir.path()).await;
        let before = trust(client.verifier(), &state);
        // Validly signed, larger, and a different history below the trusted size.
        fake.publish(&fake.forked, SIZE);
        fake.reset_hits();
        let err = bounded(client.update()).await.unwrap_err();
        let (a, b, evidence) = split_view(&err);
        assert_eq!((a, b), (TRUSTED, SIZE), "{source:?}");
        assert!(err.is_misbehaviour());
        assert_offline_evidence(
            evidence,
            fake.honest.head(TRUSTED),
            fake.forked.head(SIZE),
            kind.clone(),
        );
        if source == ProofSource::Api {
            // The API's (valid-for-the-fork) proof failed first; the tiles gave the evidence.
            assert_eq!(fake.hits("GET /v1/proof/consistency"), 1);
        }
        assert_eq!(trust(client.verifier(), &state), before);
        // Asking again changes nothing: the fork is refused the same way.
        let again = bounded(client.update()).await.unwrap_err();
        assert_eq!(split_view(&again).0, TRUSTED);
        assert_eq!(trust(client.verifier(), &state), before);
    }

    let (mut monitor, state) = trusting_monitor(&fake, TRUSTED, dir.path()).await;
    let before = trust(monitor.verifier(), &state);
    fake.publish(&fake.forked, SIZE);
    let err = run_monitor(&mut monitor).await;
    let (a, b, evidence) = split_view(&err);
    assert_eq!((a, b), (TRUSTED, SIZE));
    assert_offline_evidence(
        evidence,
        fake.honest.head(TRUSTED),
        fake.forked.head(SIZE),
        kind,
    );
    assert_eq!(trust(monitor.verifier(), &state), before);
    assert_eq!(monitor.cached_size(), TRUSTED);
    fake.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forked_history_of_the_same_size_is_two_roots_for_one_size() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    for source in SOURCES {
        let (mut client, state) = trusting_client(&fake, source, TRUSTED, dir.path()).await;
        let before = trust(client.verifier(), &state);
        fake.publish(&fake.forked, TRUSTED);
        let err = bounded(client.update()).await.unwrap_err();
        let (a, b, evidence) = split_view(&err);
        assert_eq!((a, b), (TRUSTED, TRUSTED));
        assert_offline_evidence(
            evidence,
            fake.honest.head(TRUSTED),
            fake.forked.head(TRUSTED),
            MisbehaviourKind::SameSizeDifferentRoots,
        );
        assert_eq!(trust(client.verifier(), &state), before);
    }
    let (mut monitor, state) = trusting_monitor(&fake, TRUSTED, dir.path()).await;
    let before = trust(monitor.verifier(), &state);
    fake.publish(&fake.forked, TRUSTED);
    let err = run_monitor(&mut monitor).await;
    let (_, _, evidence) = split_view(&err);
    assert_offline_evidence(
        evidence,
        fake.honest.head(TRUSTED),
        fake.forked.head(TRUSTED),
        MisbehaviourKind::SameSizeDifferentRoots,
    );
    assert_eq!(trust(monitor.verifier(), &state), before);
    fake.stop().await;
}

// ---------------------------------------------------------------------------------------
// 2. Rolled-back checkpoint.
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolled_back_checkpoint_is_a_rollback_or_a_split_view() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Evidence for an older inconsistent checkpoint: A is the older (forked) one, B the
    // trusted one, and the trusted tree's own prefix root is the witness.
    let kind = MisbehaviourKind::PrefixMismatch {
        prefix_root_in_b: fake.honest.head(TRUSTED).root,
    };
    for source in SOURCES {
        let (mut client, state) = trusting_client(&fake, source, SIZE, dir.path()).await;
        let before = trust(client.verifier(), &state);

        // An older checkpoint of the same history.
        fake.publish(&fake.honest, TRUSTED);
        let err = bounded(client.update()).await.unwrap_err();
        assert!(
            matches!(
                err,
                ClientError::Rollback {
                    trusted: SIZE,
                    got: TRUSTED
                }
            ),
            "{err:?}"
        );
        assert!(err.is_misbehaviour());
        assert_eq!(trust(client.verifier(), &state), before);

        // The empty tree is a prefix of every tree: still a rollback, never evidence.
        fake.serve_checkpoint(fake.honest.note(0));
        let err = bounded(client.update()).await.unwrap_err();
        assert!(
            matches!(
                err,
                ClientError::Rollback {
                    trusted: SIZE,
                    got: 0
                }
            ),
            "{err:?}"
        );

        // An older checkpoint of another history, while the trusted tree's tiles are still
        // served: the tiles prove the contradiction.
        fake.publish(&fake.honest, SIZE);
        fake.serve_checkpoint(fake.forked.note(TRUSTED));
        let err = bounded(client.update()).await.unwrap_err();
        let (a, b, evidence) = split_view(&err);
        assert_eq!((a, b), (TRUSTED, SIZE));
        assert_offline_evidence(
            evidence,
            fake.forked.head(TRUSTED),
            fake.honest.head(SIZE),
            kind.clone(),
        );
        assert_eq!(trust(client.verifier(), &state), before);

        // The same checkpoint with the forked tiles: they do not hash to the trusted root,
        // so nothing can be proven and it is only a rollback.
        fake.publish(&fake.forked, TRUSTED);
        let err = bounded(client.update()).await.unwrap_err();
        assert!(
            matches!(
                err,
                ClientError::Rollback {
                    trusted: SIZE,
                    got: TRUSTED
                }
            ),
            "{err:?}"
        );
        assert_eq!(trust(client.verifier(), &state), before);
    }

    let (mut monitor, state) = trusting_monitor(&fake, SIZE, dir.path()).await;
    let before = trust(monitor.verifier(), &state);
    fake.publish(&fake.honest, TRUSTED);
    let err = run_monitor(&mut monitor).await;
    assert!(
        matches!(
            err,
            ClientError::Rollback {
                trusted: SIZE,
                got: TRUSTED
            }
        ),
        "{err:?}"
    );
    // The monitor needs nothing from the server to prove the fork: its own cache holds the
    // trusted tree, even while the server serves the forked tiles.
    fake.publish(&fake.forked, TRUSTED);
    let err = run_monitor(&mut monitor).await;
    let (a, b, evidence) = split_view(&err);
    assert_eq!((a, b), (TRUSTED, SIZE));
    assert_offline_evidence(
        evidence,
        fake.forked.head(TRUSTED),
        fake.honest.head(SIZE),
        kind,
    );
    assert_eq!(trust(monitor.verifier(), &state), before);
    assert_eq!(monitor.cached_size(), SIZE);
    fake.stop().await;
}

// ---------------------------------------------------------------------------------------
// 3. Bad signatures, 4. another origin.
// ---------------------------------------------------------------------------------------

/// The note with byte 10 of its (only) signature flipped.
fn flip_signature(note: &[u8]) -> Vec<u8> {
    let parsed = Note::from_bytes(note).unwrap();
    let signature = &parsed.signatures()[0];
    let mut bytes = signature.signature().to_vec();
    bytes[10] ^= 0x01;
    let mut forged = Note::new(parsed.text()).unwrap();
    forged
        .add_signature(
            NoteSignature::new(signature.name().clone(), signature.key_id(), bytes).unwrap(),
        )
        .unwrap();
    forged.to_bytes()
}

/// The note with its tree size line changed (700 → 900), signature kept.
fn change_text(note: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(note.to_vec()).unwrap();
    let changed = text.replacen(&format!("\n{SIZE}\n"), "\n900\n", 1);
    assert_ne!(changed, text);
    changed.into_bytes()
}

/// Offers `note` to verifying clients (trusting, and on first use) and to a following
/// monitor, asserting each rejects it with `expected` and keeps its trust.
async fn assert_checkpoint_rejected(
    fake: &Fake,
    note: &[u8],
    expected: impl Fn(&ClientError) -> bool,
) {
    let dir = tempfile::tempdir().unwrap();
    for source in SOURCES {
        let (mut client, state) = trusting_client(fake, source, TRUSTED, dir.path()).await;
        let before = trust(client.verifier(), &state);
        fake.publish(&fake.honest, SIZE);
        fake.serve_checkpoint(note.to_vec());
        let err = bounded(client.update()).await.unwrap_err();
        assert!(expected(&err), "{source:?}: {err:?}");
        assert!(err.is_misbehaviour());
        assert_eq!(trust(client.verifier(), &state), before);

        // Nothing trusted yet: trust on first use still demands the pinned key and origin.
        let state = dir.path().join("first-use.json");
        let verifier = LogVerifier::load(&state, ORIGIN, &key()).unwrap();
        let mut first = VerifyingClient::new(fake.client(), verifier, Some(state.clone()), source);
        let err = bounded(first.update()).await.unwrap_err();
        assert!(expected(&err), "{source:?} first use: {err:?}");
        assert_eq!(first.verifier().trusted_size(), 0);
        assert!(!state.exists());
    }
    let (mut monitor, state) = trusting_monitor(fake, TRUSTED, dir.path()).await;
    let before = trust(monitor.verifier(), &state);
    fake.publish(&fake.honest, SIZE);
    fake.serve_checkpoint(note.to_vec());
    let err = run_monitor(&mut monitor).await;
    assert!(expected(&err), "monitor: {err:?}");
    assert_eq!(trust(monitor.verifier(), &state), before);
    assert_eq!(monitor.cached_size(), TRUSTED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signatures_are_rejected() {
    let fake = Fake::start().await;
    let honest = fake.honest.note(SIZE);
    let key_id = key().key_id();

    let invalid = |err: &ClientError| {
        matches!(
            err,
            ClientError::Verify(VerifyError::BadCheckpoint(CheckpointError::Note(
                NoteError::InvalidSignature { name, key_id: id }
            ))) if name == ORIGIN && *id == key_id
        )
    };
    assert_checkpoint_rejected(&fake, &flip_signature(&honest), invalid).await;
    assert_checkpoint_rejected(&fake, &change_text(&honest), invalid).await;

    // Another key with the log's name: its signature is not the log's, so none verifies.
    let other = sign(ORIGIN, fake.honest.head(SIZE), &impostor());
    assert_checkpoint_rejected(&fake, &other, |err| {
        matches!(
            err,
            ClientError::Verify(VerifyError::BadCheckpoint(CheckpointError::Note(
                NoteError::NoVerifiedSignature { signatures: 1 }
            )))
        )
    })
    .await;
    fake.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_from_another_origin_is_rejected() {
    let fake = Fake::start().await;
    const OTHER: &str = "other.veritrail.example/log";
    // Signed by the log's own key, but for another origin (the key signs what it is given).
    let note = sign(OTHER, fake.honest.head(SIZE), &signer());
    assert_checkpoint_rejected(&fake, &note, |err| {
        matches!(
            err,
            ClientError::Verify(VerifyError::BadCheckpoint(CheckpointError::OriginMismatch {
                got,
                want,
            })) if got == OTHER && want == ORIGIN
        )
    })
    .await;
    // Another log altogether (its own key name and key): no signature by the pinned key.
    let other_log = NoteSigner::from_seed(KeyName::new(OTHER).unwrap(), [7; 32]);
    let note = sign(OTHER, fake.honest.head(SIZE), &other_log);
    assert_checkpoint_rejected(&fake, &note, |err| {
        matches!(
            err,
            ClientError::Verify(VerifyError::BadCheckpoint(CheckpointError::Note(
                NoteError::NoVerifiedSignature { signatures: 1 }
            )))
        )
    })
    .await;
    fake.stop().await;
}

// ---------------------------------------------------------------------------------------
// 5. Truncated or padded proofs, 6. proofs for another index.
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_or_padded_proofs_are_rejected() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut client, state) = trusting_client(&fake, ProofSource::Api, TRUSTED, dir.path()).await;
    let before = trust(client.verifier(), &state);
    let want = consistency_proof_len(TRUSTED, SIZE);

    // The consistency proof straight from the transport, checked by the trusted state.
    fake.publish(&fake.honest, SIZE);
    let note = fake.honest.note(SIZE);
    for (twisted, got) in [
        (ProofTwist::Truncated, want - 1),
        (ProofTwist::Padded, want + 1),
    ] {
        fake.with(|s| s.proofs = twisted);
        let proof = bounded(client.client().consistency_proof(TRUSTED, Some(SIZE)))
            .await
            .unwrap();
        let mut verifier = client.verifier().clone();
        let err = verifier.update(&note, &proof.proof, None).unwrap_err();
        assert!(
            matches!(err, VerifyError::BadProof(ProofError::WrongLength { got: g, want: w }) if g == got && w == want),
            "{err:?}"
        );
        assert_eq!(verifier.trusted_size(), TRUSTED);

        // Through the verifying client: a bad API proof sends it to the tiles for evidence;
        // when the tiles cannot decide (here they answer 500), the bad proof is reported.
        fake.with(|s| s.tiles_down = true);
        let err = bounded(client.update()).await.unwrap_err();
        assert!(
            matches!(err, ClientError::Verify(VerifyError::BadProof(ProofError::WrongLength { got: g, want: w })) if g == got && w == want),
            "{twisted:?}: {err:?}"
        );
        assert!(err.is_misbehaviour());
        assert_eq!(trust(client.verifier(), &state), before);
        fake.with(|s| s.tiles_down = false);
    }
    // More than 64 hashes: refused by the transport before any verification.
    fake.with(|s| s.proofs = ProofTwist::Oversized);
    let err = bounded(client.update()).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::MalformedResponse { url, .. } if url.contains("v1/proof/consistency")),
        "{err:?}"
    );
    assert_eq!(trust(client.verifier(), &state), before);

    // A bad consistency proof next to honest tiles: still rejected. The tiles are asked
    // only for fork evidence (on a copy of the state); they cannot make a bad proof
    // acceptable, so trust stays where it was.
    fake.with(|s| s.proofs = ProofTwist::Truncated);
    let err = bounded(client.update()).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Verify(VerifyError::BadProof(ProofError::WrongLength { .. }))
        ),
        "{err:?}"
    );
    assert_eq!(trust(client.verifier(), &state), before);

    // Inclusion proofs from the API have no fallback: the wrong length is the error.
    let index = 10;
    let want = inclusion_proof_len(index, client.verifier().trusted_size());
    let before = trust(client.verifier(), &state);
    for (twisted, got) in [
        (ProofTwist::Truncated, want - 1),
        (ProofTwist::Padded, want + 1),
    ] {
        fake.with(|s| s.proofs = twisted);
        let err = bounded(client.prove(index)).await.unwrap_err();
        assert!(
            matches!(err, ClientError::Verify(VerifyError::BadProof(ProofError::WrongLength { got: g, want: w })) if g == got && w == want),
            "{twisted:?}: {err:?}"
        );
        let err = bounded(client.get(index)).await.unwrap_err();
        assert!(
            matches!(
                err,
                ClientError::Verify(VerifyError::BadProof(ProofError::WrongLength { .. }))
            ),
            "{err:?}"
        );
        let leaf = leaf_hash(&entry(index));
        let err = bounded(client.prove_leaf_hash(&leaf)).await.unwrap_err();
        assert!(
            matches!(err, ClientError::Verify(VerifyError::BadProof(ProofError::WrongLength { got: g, .. })) if g == got),
            "{err:?}"
        );
    }
    fake.with(|s| s.proofs = ProofTwist::Oversized);
    let err = bounded(client.prove(index)).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::MalformedResponse { url, .. } if url.contains("v1/proof/inclusion")),
        "{err:?}"
    );
    let err = bounded(client.client().entry_with_proof(index))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::MalformedResponse { .. }),
        "{err:?}"
    );
    assert_eq!(trust(client.verifier(), &state), before);
    fake.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proof_for_another_index_is_rejected() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut client, state) = trusting_client(&fake, ProofSource::Api, SIZE, dir.path()).await;
    let before = trust(client.verifier(), &state);
    let root = fake.honest.head(SIZE).root;

    // The answer says it is for index 11 (and carries 11's path).
    fake.with(|s| s.proofs = ProofTwist::OtherIndex(11));
    let err = bounded(client.prove(10)).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::WrongAnswer {
                what: "index",
                asked: 10,
                got: 11
            }
        ),
        "{err:?}"
    );
    let err = bounded(client.client().entry_with_proof(10))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::WrongAnswer {
                what: "index",
                asked: 10,
                got: 11
            }
        ),
        "{err:?}"
    );
    let err = bounded(client.client().consistency_proof(TRUSTED, Some(SIZE)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::WrongAnswer {
                what: "old size",
                asked: TRUSTED,
                got: 11
            }
        ),
        "{err:?}"
    );
    // By leaf hash the client does not know the index: it checks the proof for the index
    // answered, which is another leaf's.
    let err = bounded(client.prove_leaf_hash(&leaf_hash(&entry(10))))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Verify(VerifyError::BadProof(ProofError::RootMismatch { expected, .. })) if expected == root),
        "{err:?}"
    );

    // The right index, another leaf's audit path (same length, so only the root differs).
    assert_eq!(inclusion_proof_len(10, SIZE), inclusion_proof_len(11, SIZE));
    fake.with(|s| s.proofs = ProofTwist::PathOf(11));
    let err = bounded(client.prove(10)).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Verify(VerifyError::BadProof(ProofError::RootMismatch { computed, expected })) if expected == root && computed != root),
        "{err:?}"
    );
    let err = bounded(client.get(10)).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Verify(VerifyError::BadProof(ProofError::RootMismatch { .. }))
        ),
        "{err:?}"
    );
    assert_eq!(trust(client.verifier(), &state), before);

    // The honest answers still verify, and tile proofs never asked the API.
    fake.with(|s| s.proofs = ProofTwist::Honest);
    let (bytes, proven) = bounded(client.get(10)).await.unwrap();
    assert_eq!(bytes, entry(10));
    assert_eq!(proven.index, 10);
    fake.stop().await;
}

// ---------------------------------------------------------------------------------------
// 7. Tiles that do not hash to the root.
// ---------------------------------------------------------------------------------------

/// Canned answer: the honest hash tile `(level, index, width)` with byte `byte` flipped.
fn flipped_tile(log: &Log, level: u8, index: u64, width: u16, byte: usize) -> (String, Canned) {
    let mut bytes = log.tile(level, index, width).unwrap();
    bytes[byte] ^= 0x01;
    let path = TileId::hash(level, index, width).unwrap().path();
    (format!("GET /{path}"), Canned::ok(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiles_that_do_not_hash_to_the_root_are_rejected() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let expected_root = fake.honest.head(SIZE).root;
    // The root of 700 leaves is read from tile/1/000.p/2 (the two level-8 nodes under 512)
    // and tile/0/002.p/188 (leaves 512..700); flip leaf 512's hash in the latter.
    let (on_root, on_root_tile) = flipped_tile(&fake.honest, 0, 2, 188, 0);
    let (upper, upper_tile) = flipped_tile(&fake.honest, 1, 0, 2, 0);
    for (request, canned) in [
        (on_root.as_str(), &on_root_tile),
        (upper.as_str(), &upper_tile),
    ] {
        let (mut client, state) =
            trusting_client(&fake, ProofSource::Tiles, TRUSTED, dir.path()).await;
        let before = trust(client.verifier(), &state);
        fake.publish(&fake.honest, SIZE);
        fake.can(request, canned.clone());
        let err = bounded(client.update()).await.unwrap_err();
        assert!(
            matches!(err, ClientError::TileRootMismatch { size: SIZE, computed, expected } if expected == expected_root && computed != expected_root),
            "{request}: {err:?}"
        );
        assert_eq!(trust(client.verifier(), &state), before);

        // Trust on first use from tiles also demands tiles that hash to the signed root.
        let first_state = dir.path().join("first-use-tiles.json");
        let verifier = LogVerifier::load(&first_state, ORIGIN, &key()).unwrap();
        let mut first = VerifyingClient::new(
            fake.client(),
            verifier,
            Some(first_state.clone()),
            ProofSource::Tiles,
        );
        let err = bounded(first.update()).await.unwrap_err();
        assert!(
            matches!(err, ClientError::TileRootMismatch { size: SIZE, .. }),
            "first use: {err:?}"
        );
        assert_eq!(first.verifier().trusted_size(), 0);
        assert!(!first_state.exists());

        // The prover on its own: the computed root is what the tiles say, unverified...
        let checkpoint = Checkpoint::verify_signed(&fake.honest.note(SIZE), ORIGIN, &key())
            .unwrap()
            .0;
        let mut prover = TileProver::new(fake.client(), SIZE);
        let computed = bounded(prover.root()).await.unwrap();
        assert_ne!(computed, expected_root);
        // ...and `verified_root` refuses it.
        let err = bounded(prover.verified_root(&checkpoint))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ClientError::TileRootMismatch { size: SIZE, computed: c, .. } if c == computed),
            "{err:?}"
        );

        // A monitor that already trusts a checkpoint looks for a fork in the log's tiles
        // before downloading anything, so it meets the bad root first: TileRootMismatch.
        let mdir = tempfile::tempdir().unwrap();
        let (mut monitor, mstate) = trusting_monitor(&fake, TRUSTED, mdir.path()).await;
        let mbefore = trust(monitor.verifier(), &mstate);
        fake.publish(&fake.honest, SIZE);
        fake.can(request, canned.clone());
        let err = run_monitor(&mut monitor).await;
        assert!(
            matches!(err, ClientError::TileRootMismatch { size: SIZE, .. }),
            "{request}: {err:?}"
        );
        assert_eq!(trust(monitor.verifier(), &mstate), mbefore);
        assert_eq!(monitor.cached_size(), TRUSTED);

        // A first-run monitor has no checkpoint to look for a fork from: it rebuilds the tree
        // from the entries and compares each served tile with the rebuilt one, so it meets
        // the flipped tile as such: TileMismatch, naming it.
        let mdir = tempfile::tempdir().unwrap();
        let (mut monitor, mstate) = fresh_monitor(&fake, mdir.path());
        let err = run_monitor(&mut monitor).await;
        let path = request.trim_start_matches("GET /");
        assert!(
            matches!(&err, ClientError::TileMismatch { path: p } if p == path),
            "{request}: {err:?}"
        );
        assert_eq!(monitor.verifier().trusted_size(), 0);
        assert!(!mstate.exists());
        assert_eq!(monitor.cached_size(), 0);
    }

    // The API path never reads tiles to grow, but proving an entry takes its leaf hash from
    // the level-0 tile: the flipped leaf 512 then fails the (honest) API proof.
    let (mut client, state) = trusting_client(&fake, ProofSource::Api, TRUSTED, dir.path()).await;
    fake.publish(&fake.honest, SIZE);
    fake.can(&on_root, on_root_tile);
    let (_, update) = bounded(client.update()).await.unwrap();
    assert_eq!(update, Update::Grew { from: TRUSTED });
    let before = trust(client.verifier(), &state);
    let err = bounded(client.get(512)).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Verify(VerifyError::BadProof(ProofError::RootMismatch { expected, .. })) if expected == expected_root),
        "{err:?}"
    );
    assert_eq!(trust(client.verifier(), &state), before);

    // A flipped tile off the root's path (leaf 5 in tile/0/000) does not stop the checkpoint
    // from verifying, but no proof through it does.
    let (off_root, off_root_tile) = flipped_tile(&fake.honest, 0, 0, 256, 5 * 32);
    let (mut client, _) = trusting_client(&fake, ProofSource::Tiles, TRUSTED, dir.path()).await;
    fake.publish(&fake.honest, SIZE);
    fake.can(&off_root, off_root_tile);
    let (_, update) = bounded(client.update()).await.unwrap();
    assert_eq!(update, Update::Grew { from: TRUSTED });
    let err = bounded(client.prove(5)).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Verify(VerifyError::BadProof(ProofError::RootMismatch { expected, .. })) if expected == expected_root),
        "{err:?}"
    );
    // Leaf 6's proof goes through leaf 5's hash too.
    let err = bounded(client.prove(6)).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Verify(VerifyError::BadProof(ProofError::RootMismatch { .. }))
        ),
        "{err:?}"
    );
    let mdir = tempfile::tempdir().unwrap();
    let (mut monitor, _) = fresh_monitor(&fake, mdir.path());
    let err = run_monitor(&mut monitor).await;
    assert!(
        matches!(&err, ClientError::TileMismatch { path } if path == "tile/0/000"),
        "{err:?}"
    );
    fake.stop().await;
}

// ---------------------------------------------------------------------------------------
// 8. Entries that do not match their leaf hashes.
// ---------------------------------------------------------------------------------------

/// Canned answer: the honest bundle `index` with entry `changed` (absolute index) replaced.
fn changed_bundle(log: &Log, index: u64, width: u16, changed: u64) -> (String, Canned) {
    let mut entries = log.bundle_entries(index, width).unwrap();
    entries[usize::try_from(changed - index * 256).unwrap()] = b"{\"forged\":true}".to_vec();
    let bytes = encode_bundle(entries.iter().map(Vec::as_slice)).unwrap();
    let path = TileId::entries(index, width).unwrap().path();
    (format!("GET /{path}"), Canned::ok(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_that_do_not_match_their_leaf_hashes_are_rejected() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let forged = b"{\"agent\":\"billing-bot\",\"event\":\"refund\",\"amount\":1000000}".to_vec();
    for source in SOURCES {
        let (mut client, state) = trusting_client(&fake, source, SIZE, dir.path()).await;
        let before = trust(client.verifier(), &state);
        // With proofs from tiles the entry is read from its bundle, otherwise from
        // `/v1/entries`: both lie.
        fake.can("GET /v1/entries/42", Canned::ok(forged.clone()));
        let mut entries = fake.honest.bundle_entries(0, 256).unwrap();
        entries[42] = forged.clone();
        let bundle = encode_bundle(entries.iter().map(Vec::as_slice)).unwrap();
        let path = TileId::entries(0, 256).unwrap().path();
        fake.can(&format!("GET /{path}"), Canned::ok(bundle));
        let err = bounded(client.get(42)).await.unwrap_err();
        assert!(
            matches!(err, ClientError::EntryMismatch { index: 42, computed, expected }
                if computed == leaf_hash(&forged) && expected == leaf_hash(&entry(42))),
            "{source:?}: {err:?}"
        );
        assert!(err.is_misbehaviour());
        assert_eq!(trust(client.verifier(), &state), before);
        // Other entries are unaffected.
        assert_eq!(bounded(client.get(43)).await.unwrap().0, entry(43));
    }

    // A first-run monitor: the changed entry gives another leaf hash, so the level-0 tile
    // rebuilt from the bundle differs from the (honest) one served. That comparison runs
    // right after each bundle, before the root is ever computed: TileMismatch.
    fake.publish(&fake.honest, SIZE);
    let (request, canned) = changed_bundle(&fake.honest, 1, 256, 400);
    fake.can(&request, canned);
    let mdir = tempfile::tempdir().unwrap();
    let (mut monitor, state) = fresh_monitor(&fake, mdir.path());
    let err = run_monitor(&mut monitor).await;
    assert!(
        matches!(&err, ClientError::TileMismatch { path } if path == "tile/0/001"),
        "{err:?}"
    );
    assert_eq!(monitor.verifier().trusted_size(), 0);
    assert!(!state.exists());

    // A following monitor (cache at 300): an entry it already verified (256..300 of bundle
    // 1) must still hash to the leaf in its cache: EntryMismatch. A new entry of the same
    // bundle (400): TileMismatch as above.
    for (changed, already_verified) in [(260u64, true), (400, false)] {
        let mdir = tempfile::tempdir().unwrap();
        let (mut monitor, state) = trusting_monitor(&fake, TRUSTED, mdir.path()).await;
        let before = trust(monitor.verifier(), &state);
        fake.publish(&fake.honest, SIZE);
        let (request, canned) = changed_bundle(&fake.honest, 1, 256, changed);
        fake.can(&request, canned);
        let err = run_monitor(&mut monitor).await;
        if already_verified {
            assert!(
                matches!(err, ClientError::EntryMismatch { index: 260, computed, expected }
                    if expected == leaf_hash(&entry(260)) && computed != expected),
                "{err:?}"
            );
        } else {
            assert!(
                matches!(&err, ClientError::TileMismatch { path } if path == "tile/0/001"),
                "{err:?}"
            );
        }
        assert_eq!(trust(monitor.verifier(), &state), before);
        assert_eq!(monitor.cached_size(), TRUSTED);
    }

    // A whole self-consistent other tree (the forked entries with their own tiles) under the
    // honest checkpoint: every tile matches the entries, only the root gives it away.
    fake.publish(&fake.forked, SIZE);
    fake.serve_checkpoint(fake.honest.note(SIZE));
    let mdir = tempfile::tempdir().unwrap();
    let (mut monitor, state) = fresh_monitor(&fake, mdir.path());
    let err = run_monitor(&mut monitor).await;
    assert!(
        matches!(err, ClientError::EntriesRootMismatch { size: SIZE, computed, expected }
            if computed == fake.forked.head(SIZE).root && expected == fake.honest.head(SIZE).root),
        "{err:?}"
    );
    assert_eq!(monitor.verifier().trusted_size(), 0);
    assert!(!state.exists());

    // An append answered with another leaf hash.
    fake.publish(&fake.honest, SIZE);
    let lie = serde_json::json!({"index": 3, "leaf_hash": leaf_hash(&forged).to_base64()});
    fake.can("POST /v1/entries", Canned::ok(lie.to_string().into_bytes()));
    let err = bounded(fake.client().append(&entry(3), &AppendOptions::default()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::EntryMismatch { index: 3, computed, expected }
            if computed == leaf_hash(&entry(3)) && expected == leaf_hash(&forged)),
        "{err:?}"
    );
    fake.stop().await;
}

// ---------------------------------------------------------------------------------------
// 9. A huge claimed tree size.
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_claimed_tree_size_is_rejected() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let root = leaf_hash(b"a root for a tree that does not exist");
    let huge = |size: u64| sign(ORIGIN, TreeHead::new(size, root), &signer());
    for size in [u64::MAX, MAX_TREE_SIZE + 1] {
        let note = huge(size);
        let implausible = |err: &ClientError| matches!(err, ClientError::ImplausibleTreeSize { size: s, max: MAX_TREE_SIZE } if *s == size);
        assert_checkpoint_rejected(&fake, &note, implausible).await;
    }

    // With the limit raised, the client must still fail, and promptly: the log serves no
    // tile or proof for such a tree.
    let raised = ClientConfig {
        max_tree_size: u64::MAX,
        ..fake.config()
    };
    for size in [u64::MAX, MAX_TREE_SIZE + 1] {
        for source in SOURCES {
            let (client, state) = trusting_client(&fake, source, TRUSTED, dir.path()).await;
            let mut client = VerifyingClient::new(
                LogClient::new(&raised).unwrap(),
                client.verifier().clone(),
                Some(state.clone()),
                source,
            );
            let before = trust(client.verifier(), &state);
            fake.serve_checkpoint(huge(size));
            let started = Instant::now();
            let err = bounded(client.update()).await.unwrap_err();
            match source {
                ProofSource::Tiles => assert!(
                    matches!(err, ClientError::MissingData { .. }),
                    "{size}: {err:?}"
                ),
                ProofSource::Api => assert!(
                    matches!(&err, ClientError::Api { status: 422, code, .. } if code == "size_out_of_range"),
                    "{size}: {err:?}"
                ),
            }
            assert!(started.elapsed() < Duration::from_secs(5));
            assert_eq!(trust(client.verifier(), &state), before);
        }
        let mdir = tempfile::tempdir().unwrap();
        let options = MonitorOptions {
            max_tree_size: u64::MAX,
            ..monitor_options(mdir.path())
        };
        // Following: the fork check from the tiles finds none.
        let (monitor, state) = trusting_monitor(&fake, TRUSTED, mdir.path()).await;
        let verifier = monitor.verifier().clone();
        drop(monitor);
        let mut monitor = Monitor::new(
            fake.client(),
            verifier,
            Some(state.clone()),
            options.clone(),
        )
        .unwrap();
        let before = trust(monitor.verifier(), &state);
        fake.serve_checkpoint(huge(size));
        let err = run_monitor(&mut monitor).await;
        assert!(matches!(err, ClientError::MissingData { .. }), "{err:?}");
        assert_eq!(trust(monitor.verifier(), &state), before);
        // First run: the download stops at the first bundle the log does not have.
        let fdir = tempfile::tempdir().unwrap();
        let mut monitor = Monitor::new(
            fake.client(),
            LogVerifier::new(ORIGIN, key()),
            None,
            MonitorOptions {
                max_tree_size: u64::MAX,
                ..monitor_options(fdir.path())
            },
        )
        .unwrap();
        let err = run_monitor(&mut monitor).await;
        assert!(
            matches!(&err, ClientError::MissingData { path, .. } if path == "tile/entries/002"),
            "{err:?}"
        );
        assert_eq!(monitor.verifier().trusted_size(), 0);
    }

    // The limit itself is allowed (and then fails for want of tiles).
    let (mut client, state) = trusting_client(&fake, ProofSource::Tiles, TRUSTED, dir.path()).await;
    let before = trust(client.verifier(), &state);
    fake.serve_checkpoint(huge(MAX_TREE_SIZE));
    let err = bounded(client.update()).await.unwrap_err();
    assert!(matches!(err, ClientError::MissingData { .. }), "{err:?}");
    assert_eq!(trust(client.verifier(), &state), before);
    fake.stop().await;
}

// ---------------------------------------------------------------------------------------
// 10. Hostile transport.
// ---------------------------------------------------------------------------------------

/// A raw HTTP/1.1 server on a thread (no axum, no `Content-Length`): answers every request
/// with `head` and then `chunks` chunks of 4096 bytes, or with nothing at all when `head` is
/// empty (holding the connection open). Stops when the returned flag is set.
fn raw_server(head: &'static str, chunks: usize) -> (String, Arc<AtomicBool>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        while !stopping.load(Ordering::Relaxed) {
            let Ok((mut socket, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            socket.set_nonblocking(false).unwrap();
            socket
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            socket
                .set_write_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            // Read the request head (bounded).
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
                match socket.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            if head.is_empty() {
                held.push(socket);
                continue;
            }
            let _ = socket.write_all(head.as_bytes());
            for _ in 0..chunks {
                let mut chunk = b"1000\r\n".to_vec();
                chunk.extend_from_slice(&[0xab; 4096]);
                chunk.extend_from_slice(b"\r\n");
                if socket.write_all(&chunk).is_err() {
                    break;
                }
            }
            let _ = socket.write_all(b"0\r\n\r\n");
        }
    });
    (url, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_transport_oversized_and_malformed_responses_are_rejected() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let client = fake.client();
    let full = TileId::hash(0, 0, 256).unwrap();

    // A tile larger than any hash tile (Content-Length says so).
    fake.can("GET /tile/0/000", Canned::ok(vec![0; 8193]));
    let err = bounded(client.tile(&full)).await.unwrap_err();
    assert!(
        matches!(err, ClientError::ResponseTooLarge { max: 8192, .. }),
        "{err:?}"
    );
    let err = bounded(client.hash_tile(0, 0, 256)).await.unwrap_err();
    assert!(
        matches!(err, ClientError::ResponseTooLarge { max: 8192, .. }),
        "{err:?}"
    );
    // The same without a Content-Length (chunked, 64 KiB): the cap applies while reading.
    let (url, stop) = raw_server(
        "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ntransfer-encoding: chunked\r\n\r\n",
        16,
    );
    let raw = LogClient::new(&ClientConfig {
        retries: 0,
        timeout: Duration::from_secs(5),
        ..ClientConfig::new(url)
    })
    .unwrap();
    let err = bounded(raw.tile(&full)).await.unwrap_err();
    assert!(
        matches!(err, ClientError::ResponseTooLarge { max: 8192, .. }),
        "{err:?}"
    );
    stop.store(true, Ordering::Relaxed);

    // A checkpoint larger than a note may be.
    fake.can("GET /checkpoint", Canned::ok(vec![b'a'; (1 << 20) + 1]));
    let err = bounded(client.checkpoint()).await.unwrap_err();
    assert!(
        matches!(err, ClientError::ResponseTooLarge { max, .. } if max == 1 << 20),
        "{err:?}"
    );

    // Hash tiles of the wrong length, on the root's path of 700 leaves.
    for len in [187 * 32, 188 * 32 + 1, 0] {
        let (mut verifying, state) =
            trusting_client(&fake, ProofSource::Tiles, TRUSTED, dir.path()).await;
        let before = trust(verifying.verifier(), &state);
        fake.publish(&fake.honest, SIZE);
        fake.can("GET /tile/0/002.p/188", Canned::ok(vec![1; len]));
        let err = bounded(client.hash_tile(0, 2, 188)).await.unwrap_err();
        assert!(
            matches!(&err, ClientError::MalformedResponse { url, .. } if url.ends_with("tile/0/002.p/188")),
            "{err:?}"
        );
        let err = bounded(verifying.update()).await.unwrap_err();
        assert!(
            matches!(&err, ClientError::MalformedResponse { url, .. } if url == "tile/0/002.p/188"),
            "{len}: {err:?}"
        );
        assert_eq!(trust(verifying.verifier(), &state), before);
        let mdir = tempfile::tempdir().unwrap();
        let (mut monitor, _) = fresh_monitor(&fake, mdir.path());
        let err = run_monitor(&mut monitor).await;
        assert!(
            matches!(&err, ClientError::MalformedResponse { url, .. } if url == "tile/0/002.p/188"),
            "{len}: {err:?}"
        );
    }

    // Error statuses with bodies that are not Veritrail JSON errors.
    fake.publish(&fake.honest, SIZE);
    fake.can(
        "GET /checkpoint",
        Canned::status(500, b"<html><body>upstream exploded</body></html>"),
    );
    let err = bounded(client.checkpoint()).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { status: 500, code, message, .. }
            if code.is_empty() && message.starts_with("<html>")),
        "{err:?}"
    );
    assert!(!err.is_misbehaviour());
    fake.can("GET /checkpoint", Canned::status(502, &[0xff, 0xfe, 0x00]));
    let err = bounded(client.checkpoint()).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { status: 502, code, .. } if code.is_empty()),
        "{err:?}"
    );
    // A tile the checkpoint covers answered by a plain-text 404: the log withholds data.
    let (mut verifying, _) = trusting_client(&fake, ProofSource::Tiles, TRUSTED, dir.path()).await;
    fake.publish(&fake.honest, SIZE);
    fake.can("GET /tile/0/002.p/188", Canned::status(404, b"not here"));
    let err = bounded(verifying.update()).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::MissingData { path, reason } if path == "tile/0/002.p/188" && reason.contains("not here")),
        "{err:?}"
    );
    // A JSON body of the wrong shape for a proof.
    fake.can(
        "GET /v1/proof/inclusion",
        Canned::ok(br#"{"index":"ten","tree_size":700,"proof":[]}"#.to_vec()),
    );
    let err = bounded(client.inclusion_proof(10, Some(SIZE)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::MalformedResponse { .. }),
        "{err:?}"
    );
    fake.can(
        "GET /v1/proof/inclusion",
        Canned::ok(br#"{"index":10,"tree_size":700,"proof":["not base64"]}"#.to_vec()),
    );
    let err = bounded(client.inclusion_proof(10, Some(SIZE)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::MalformedResponse { .. }),
        "{err:?}"
    );

    // A server that accepts the connection and never answers: a timeout, not a hang.
    let (url, stop) = raw_server("", 0);
    let silent = LogClient::new(&ClientConfig {
        timeout: Duration::from_millis(300),
        retries: 1,
        backoff: Duration::from_millis(10),
        ..ClientConfig::new(url)
    })
    .unwrap();
    let started = Instant::now();
    let err = bounded(silent.checkpoint()).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Transport { source, .. } if source.is_timeout()),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!err.is_misbehaviour());
    stop.store(true, Ordering::Relaxed);
    fake.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_transport_retries_only_what_is_safe() {
    let fake = Fake::start().await;
    let client = LogClient::new(&ClientConfig {
        retries: 3,
        ..fake.config()
    })
    .unwrap();
    let overloaded = || {
        Canned::status(
            503,
            br#"{"error":"overloaded","message":"the append queue is full"}"#,
        )
        .header("retry-after", "0")
        .header("content-type", "application/json")
    };

    // Reads: a 503 with Retry-After is retried, and the third attempt succeeds.
    fake.can("GET /checkpoint", overloaded().times(2));
    fake.reset_hits();
    let note = bounded(client.checkpoint()).await.unwrap();
    assert_eq!(note, fake.honest.note(TRUSTED));
    assert_eq!(fake.hits("GET /checkpoint"), 3);
    // Always 503: one attempt and three retries, then the server's error.
    fake.can("GET /checkpoint", overloaded());
    fake.reset_hits();
    let err = bounded(client.checkpoint()).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { status: 503, code, .. } if code == "overloaded"),
        "{err:?}"
    );
    assert_eq!(fake.hits("GET /checkpoint"), 4);
    // Retry-After is honoured over the (10 ms) backoff.
    fake.can(
        "GET /checkpoint",
        Canned::status(503, b"busy")
            .header("retry-after", "1")
            .times(1),
    );
    fake.reset_hits();
    let started = Instant::now();
    bounded(client.checkpoint()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(fake.hits("GET /checkpoint"), 2);
    // A 404 is an answer, not a failure to retry.
    fake.reset_hits();
    let err = bounded(client.entry(SIZE + 5)).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { status: 404, code, .. } if code == "not_found"),
        "{err:?}"
    );
    assert_eq!(fake.hits(&format!("GET /v1/entries/{}", SIZE + 5)), 1);

    // An append without an idempotency key is never retried: it might append twice.
    fake.can("POST /v1/entries", overloaded());
    fake.reset_hits();
    let err = bounded(client.append(&entry(3), &AppendOptions::default()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { status: 503, code, .. } if code == "overloaded"),
        "{err:?}"
    );
    assert_eq!(fake.hits("POST /v1/entries"), 1);
    // With a key it is retried, with the same key every time.
    let keyed = AppendOptions {
        wait_published: false,
        idempotency_key: Some("retry-me-1".into()),
    };
    fake.reset_hits();
    let err = bounded(client.append(&entry(3), &keyed)).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Api { status: 503, .. }),
        "{err:?}"
    );
    assert_eq!(fake.hits("POST /v1/entries"), 4);
    fake.can("POST /v1/entries", overloaded().times(2));
    fake.reset_hits();
    let appended = bounded(client.append(&entry(3), &keyed)).await.unwrap();
    assert_eq!(appended.index, 3);
    assert_eq!(appended.leaf_hash, leaf_hash(&entry(3)));
    assert_eq!(fake.hits("POST /v1/entries"), 3);
    assert_eq!(
        *fake.shared.idempotency_keys.lock().unwrap(),
        vec![Some("retry-me-1".to_owned()); 3]
    );
    fake.stop().await;
}

// ---------------------------------------------------------------------------------------
// 11. Receipts.
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_from_a_malicious_server_do_not_verify() {
    let fake = Fake::start().await;
    let client = fake.client();
    let options = AppendOptions {
        wait_published: true,
        idempotency_key: Some("receipt-1".into()),
    };
    let index = 10;
    // The receipt the (frozen) log returns for appending entry `index` again.
    let receipt = || {
        let (client, options) = (client.clone(), options.clone());
        async move {
            let appended = bounded(client.append(&entry(index), &options)).await;
            appended.unwrap().published.unwrap().receipt
        }
    };

    fake.publish(&fake.honest, SIZE);
    let honest = receipt().await;
    let (parsed, checkpoint) = verify_receipt(&honest, &entry(index), &key(), None).unwrap();
    assert_eq!(parsed.index, index);
    assert_eq!(checkpoint.tree, fake.honest.head(SIZE));
    // Another entry's bytes, or another key, do not verify against it.
    assert!(matches!(
        verify_receipt(&honest, &entry(11), &key(), None),
        Err(ReceiptError::Inclusion(ProofError::RootMismatch { .. }))
    ));
    assert!(matches!(
        verify_receipt(&honest, &entry(index), &impostor().verifier(), None),
        Err(ReceiptError::Checkpoint(CheckpointError::Note(
            NoteError::NoVerifiedSignature { .. }
        )))
    ));

    let want = inclusion_proof_len(index, SIZE);
    for (twisted, got) in [
        (ProofTwist::Truncated, want - 1),
        (ProofTwist::Padded, want + 1),
    ] {
        fake.with(|s| s.proofs = twisted);
        let bad = receipt().await;
        let err = verify_receipt(&bad, &entry(index), &key(), None).unwrap_err();
        assert!(
            matches!(err, ReceiptError::Inclusion(ProofError::WrongLength { got: g, want: w }) if g == got && w == want),
            "{err:?}"
        );
    }
    for twisted in [ProofTwist::PathOf(11), ProofTwist::OtherIndex(11)] {
        fake.with(|s| s.proofs = twisted);
        let bad = receipt().await;
        let err = verify_receipt(&bad, &entry(index), &key(), None).unwrap_err();
        assert!(
            matches!(
                err,
                ReceiptError::Inclusion(ProofError::RootMismatch { .. })
            ),
            "{twisted:?}: {err:?}"
        );
    }

    fake.publish(&fake.honest, SIZE);
    fake.serve_checkpoint(flip_signature(&fake.honest.note(SIZE)));
    let bad = receipt().await;
    let err = verify_receipt(&bad, &entry(index), &key(), None).unwrap_err();
    assert!(
        matches!(
            err,
            ReceiptError::Checkpoint(CheckpointError::Note(NoteError::InvalidSignature { .. }))
        ),
        "{err:?}"
    );
    fake.serve_checkpoint(sign(
        "other.veritrail.example/log",
        fake.honest.head(SIZE),
        &signer(),
    ));
    let bad = receipt().await;
    let err = verify_receipt(&bad, &entry(index), &key(), None).unwrap_err();
    assert!(
        matches!(
            err,
            ReceiptError::Checkpoint(CheckpointError::OriginMismatch { .. })
        ),
        "{err:?}"
    );
    // A checkpoint of the forked tree: validly signed, but the honest proof is not for it.
    fake.serve_checkpoint(fake.forked.note(SIZE));
    let bad = receipt().await;
    let err = verify_receipt(&bad, &entry(index), &key(), None).unwrap_err();
    assert!(
        matches!(
            err,
            ReceiptError::Inclusion(ProofError::RootMismatch { .. })
        ),
        "{err:?}"
    );
    fake.stop().await;
}

// ---------------------------------------------------------------------------------------
// 12. Random bytes.
// ---------------------------------------------------------------------------------------

/// A verifier trusting the honest log at [`TRUSTED`], set up offline.
fn trusting_verifier(log: &Log) -> LogVerifier {
    let mut verifier = LogVerifier::new(ORIGIN, key());
    verifier.update(&log.note(TRUSTED), &[], None).unwrap();
    verifier
}

/// Checks one operation's outcome against what it reads: garbage it reads must make it
/// fail as misbehaviour with trust unchanged; otherwise it verifies the honest log.
fn check_outcome<T: std::fmt::Debug>(
    what: &str,
    reads_garbage: bool,
    result: Result<T, ClientError>,
    trusted_before: u64,
    trusted_after: u64,
) -> Result<(), TestCaseError> {
    match result {
        Err(err) if reads_garbage => {
            prop_assert!(err.is_misbehaviour(), "{what}: {err:?}");
            prop_assert_eq!(trusted_after, trusted_before, "{}", what);
        }
        Err(err) => {
            return Err(TestCaseError::fail(format!(
                "{what} failed on honest data: {err:?}"
            )));
        }
        Ok(ok) if reads_garbage => {
            return Err(TestCaseError::fail(format!(
                "{what} accepted garbage: {ok:?}"
            )));
        }
        Ok(_) => prop_assert_eq!(trusted_after, SIZE, "{}", what),
    }
    Ok(())
}

#[test]
fn random_bytes_never_verify() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fake = rt.block_on(async {
        let fake = Fake::start().await;
        fake.publish(&fake.honest, SIZE);
        fake
    });
    let strategy = (
        proptest::sample::select(vec![
            Target::Checkpoint,
            Target::SignedText,
            Target::HashTiles,
            Target::Bundles,
            Target::Proofs,
        ]),
        proptest::collection::vec(any::<u8>(), 0..2048),
        any::<bool>(),
    );
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&strategy, |(target, bytes, exact_len)| {
        rt.block_on(async {
            fake.with(|s| {
                s.garbage = Some(Garbage {
                    target,
                    bytes,
                    exact_len,
                });
            });
            let checkpoint = matches!(target, Target::Checkpoint | Target::SignedText);
            for source in SOURCES {
                let reads = checkpoint
                    || match source {
                        ProofSource::Tiles => target == Target::HashTiles,
                        ProofSource::Api => target == Target::Proofs,
                    };
                let mut client = VerifyingClient::new(
                    fake.client(),
                    trusting_verifier(&fake.honest),
                    None,
                    source,
                );
                let result = bounded(client.update()).await;
                if checkpoint {
                    prop_assert!(
                        matches!(
                            result,
                            Err(ClientError::Verify(VerifyError::BadCheckpoint(_)))
                        ),
                        "{result:?}"
                    );
                }
                let after = client.verifier().trusted_size();
                check_outcome(&format!("{source:?}"), reads, result, TRUSTED, after)?;
            }
            let reads = checkpoint || matches!(target, Target::HashTiles | Target::Bundles);
            for trusted in [true, false] {
                let dir = tempfile::tempdir().unwrap();
                let verifier = if trusted {
                    trusting_verifier(&fake.honest)
                } else {
                    LogVerifier::new(ORIGIN, key())
                };
                let before = verifier.trusted_size();
                let mut monitor =
                    Monitor::new(fake.client(), verifier, None, monitor_options(dir.path()))
                        .unwrap();
                let result = bounded(monitor.run_once(&mut |_, _| {})).await;
                let after = monitor.verifier().trusted_size();
                check_outcome(
                    &format!("monitor (trusted: {trusted})"),
                    reads,
                    result,
                    before,
                    after,
                )?;
            }
            Ok::<(), TestCaseError>(())
        })
    });
    rt.block_on(fake.stop());
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
