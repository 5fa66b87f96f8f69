//! [`LogClient`]: the transport to a Veritrail server (or any C2SP tlog-tiles log, for the
//! read path). It parses every answer strictly but verifies nothing cryptographic beyond
//! what is free (an append's leaf hash); [`crate::VerifyingClient`] and [`crate::Monitor`]
//! do the verification.
//!
//! Every body is read with a cap that fits the resource, so a hostile server cannot make the
//! client allocate without bound. Reads are retried on transport errors, `408`, `429`, `502`,
//! `503` and `504`; an append is retried only when it carries an idempotency key, which makes
//! a retry return the first attempt's result instead of appending twice.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use veritrail_ledger::bundle::{BUNDLE_ENTRIES, MAX_ENTRY_SIZE, append_entry, decode_bundle};
use veritrail_ledger::hash::HASH_SIZE as HASH_SIZE_BYTES;
use veritrail_ledger::note::MAX_NOTE_SIZE;
use veritrail_ledger::proof::MAX_PROOF_HASHES;
use veritrail_ledger::tile::{TILE_WIDTH, TileId};
use veritrail_ledger::{Hash, leaf_hash};

use crate::error::ClientError;

/// Content type of a batch append (entries framed like a C2SP entry bundle).
pub const BATCH_CONTENT_TYPE: &str = "application/x-veritrail-entries";

/// Largest JSON answer accepted (a batch of 4096 receipts is about 4 MiB).
const MAX_JSON: usize = 16 << 20;
/// Largest hash tile: 256 hashes.
const MAX_HASH_TILE: usize = TILE_WIDTH as usize * HASH_SIZE_BYTES;
/// Largest entry bundle: 256 entries of the largest size with their length prefixes.
const MAX_BUNDLE: usize = BUNDLE_ENTRIES * (MAX_ENTRY_SIZE + 2);
/// Longest wait honoured from a `Retry-After` header.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// How to reach a log.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Base URL of the log, such as `http://127.0.0.1:8080` (a path prefix is kept).
    pub url: String,
    /// Bearer token, for appends and entry reads.
    pub token: Option<String>,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// How many times a retryable failure is retried (0: never).
    pub retries: u32,
    /// Delay before the first retry; doubled each time.
    pub backoff: Duration,
    /// Largest tree size a checkpoint may claim before the client refuses it as implausible.
    /// A monitor downloads every entry, so a forged huge size would otherwise keep it busy
    /// forever. Default `2^40` (about 10^12 entries).
    pub max_tree_size: u64,
}

impl ClientConfig {
    /// Defaults for `url`: no token, 30 s timeout, 5 s connect timeout, 3 retries from
    /// 200 ms.
    pub fn new(url: impl Into<String>) -> Self {
        ClientConfig {
            url: url.into(),
            token: None,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            retries: 3,
            backoff: Duration::from_millis(200),
            max_tree_size: 1 << 40,
        }
    }

    /// Sets the bearer token.
    #[must_use]
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
}

/// Options of an append.
#[derive(Clone, Debug, Default)]
pub struct AppendOptions {
    /// Wait until a signed checkpoint covers the entries and return proofs and receipts.
    pub wait_published: bool,
    /// Makes the append safe to retry: the server answers a repeated key with the first
    /// result. Without a key, an append is never retried.
    pub idempotency_key: Option<String>,
}

impl AppendOptions {
    /// Options with a fresh random idempotency key (128 bits, hex).
    ///
    /// # Errors
    /// [`ClientError::Local`] if the system random source fails.
    pub fn with_random_key(wait_published: bool) -> Result<Self, ClientError> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)
            .map_err(|e| ClientError::local(std::path::Path::new("getrandom"), e))?;
        let key = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Ok(AppendOptions {
            wait_published,
            idempotency_key: Some(key),
        })
    }
}

/// The server's answer for one appended entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The entry's index.
    pub index: u64,
    /// Its leaf hash (checked against the bytes sent).
    pub leaf_hash: Hash,
    /// With `wait_published`: what proves the entry is in the log.
    pub published: Option<Published>,
}

/// Proof material returned by an append with `wait_published`. Not yet verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// The signed checkpoint note covering the entry.
    pub checkpoint: Vec<u8>,
    /// The inclusion proof against it.
    pub inclusion_proof: Vec<Hash>,
    /// The `c2sp.org/tlog-proof@v1` receipt.
    pub receipt: Vec<u8>,
}

/// An inclusion proof as served. Not yet verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    /// The leaf index.
    pub index: u64,
    /// The tree size the proof is for.
    pub tree_size: u64,
    /// The audit path, leaf's sibling first.
    pub proof: Vec<Hash>,
}

/// A consistency proof as served. Not yet verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// The old size.
    pub old: u64,
    /// The new size.
    pub tree_size: u64,
    /// The proof.
    pub proof: Vec<Hash>,
}

/// An entry with its inclusion proof, as served by `GET /v1/entries/{index}?proof=1`. Not
/// yet verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryWithProof {
    /// The entry's bytes.
    pub entry: Vec<u8>,
    /// The leaf hash the server claims.
    pub leaf_hash: Hash,
    /// The proof against `checkpoint`.
    pub inclusion: InclusionProof,
    /// The signed checkpoint note the proof is for.
    pub checkpoint: Vec<u8>,
}

#[derive(Deserialize)]
struct AppendedJson {
    index: u64,
    leaf_hash: String,
    checkpoint: Option<String>,
    inclusion_proof: Option<Vec<String>>,
    receipt: Option<String>,
}

#[derive(Deserialize)]
struct InclusionJson {
    index: u64,
    tree_size: u64,
    proof: Vec<String>,
}

#[derive(Deserialize)]
struct ConsistencyJson {
    old: u64,
    tree_size: u64,
    proof: Vec<String>,
}

#[derive(Deserialize)]
struct EntryJson {
    index: u64,
    entry: String,
    leaf_hash: String,
    tree_size: u64,
    proof: Vec<String>,
    checkpoint: String,
}

#[derive(Deserialize)]
struct ErrorJson {
    error: String,
    message: String,
}

/// Whether a request may be repeated after a failure.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    Safe,
    Never,
}

/// The HTTP transport to one log. Cheap to clone (the connection pool is shared).
///
/// # Example
///
/// An agent appends an audit event, safely retryable, and waits for its receipt:
///
/// ```no_run
/// use veritrail_client::{AppendOptions, ClientConfig, LogClient};
///
/// # async fn run() -> Result<(), veritrail_client::ClientError> {
/// let client = LogClient::new(&ClientConfig::new("http://127.0.0.1:7800").with_token("vt_..."))?;
/// let options = AppendOptions::with_random_key(true)?; // retried with the same key
/// let appended = client.append(br#"{"event":"tool_call","tool":"ehr.read"}"#, &options).await?;
/// let receipt = appended.published.map(|p| p.receipt); // c2sp.org/tlog-proof@v1 bytes
/// # let _ = receipt;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct LogClient {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
    retries: u32,
    backoff: Duration,
    max_tree_size: u64,
}

impl LogClient {
    /// A client for the log at `config.url`.
    ///
    /// # Errors
    /// [`ClientError::InvalidUrl`] unless the URL is `http` or `https`;
    /// [`ClientError::Transport`] if the HTTP stack cannot be set up.
    pub fn new(config: &ClientConfig) -> Result<Self, ClientError> {
        let invalid = |reason: String| ClientError::InvalidUrl {
            url: config.url.clone(),
            reason,
        };
        let mut base = Url::parse(&config.url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https".into()));
        }
        if base.cannot_be_a_base() || base.query().is_some() || base.fragment().is_some() {
            return Err(invalid(
                "expected a base URL without query or fragment".into(),
            ));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("veritrail-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| ClientError::Transport {
                url: config.url.clone(),
                source,
            })?;
        Ok(LogClient {
            http,
            base,
            token: config.token.clone(),
            retries: config.retries,
            backoff: config.backoff,
            max_tree_size: config.max_tree_size,
        })
    }

    /// The log's base URL.
    pub fn url(&self) -> &Url {
        &self.base
    }

    /// The largest tree size a checkpoint may claim (from [`ClientConfig::max_tree_size`]).
    pub fn max_tree_size(&self) -> u64 {
        self.max_tree_size
    }

    fn url_for(&self, path: &str) -> Result<Url, ClientError> {
        self.base.join(path).map_err(|e| ClientError::InvalidUrl {
            url: format!("{}{path}", self.base),
            reason: e.to_string(),
        })
    }

    /// Sends a request and reads the body (at most `max` bytes) of a success, retrying what
    /// may be retried. Error statuses become [`ClientError::Api`].
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>, Option<&str>)>,
        max: usize,
        retry: Retry,
    ) -> Result<Vec<u8>, ClientError> {
        let url = self.url_for(path)?;
        let mut delay = self.backoff;
        let mut attempt = 0u32;
        loop {
            let mut request = self.http.request(method.clone(), url.clone());
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            if let Some((content_type, bytes, key)) = &body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, *content_type)
                    .body(bytes.clone());
                if let Some(key) = key {
                    request = request.header("Idempotency-Key", *key);
                }
            }
            let (err, again, retry_after): (ClientError, bool, Option<Duration>) =
                match request.send().await {
                    Ok(response) => {
                        let status = response.status();
                        let retry_after = response
                            .headers()
                            .get(reqwest::header::RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<u64>().ok())
                            .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
                        if status.is_success() {
                            return read_capped(response, url.as_str(), max).await;
                        }
                        let body = read_capped(response, url.as_str(), 64 * 1024)
                            .await
                            .unwrap_or_default();
                        (
                            api_error(url.as_str(), status, &body),
                            retryable(status),
                            retry_after,
                        )
                    }
                    Err(source) => {
                        let again =
                            source.is_connect() || source.is_timeout() || source.is_request();
                        let err = ClientError::Transport {
                            url: url.to_string(),
                            source,
                        };
                        (err, again, None)
                    }
                };
            if retry == Retry::Never || !again || attempt >= self.retries {
                return Err(err);
            }
            attempt += 1;
            tracing::debug!(%url, attempt, error = %err, "retrying");
            tokio::time::sleep(retry_after.unwrap_or(delay)).await;
            delay = delay.saturating_mul(2);
        }
    }

    async fn get(&self, path: &str, max: usize) -> Result<Vec<u8>, ClientError> {
        self.send(Method::GET, path, None, max, Retry::Safe).await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<(T, String), ClientError> {
        let body = self.get(path, MAX_JSON).await?;
        let url = self.url_for(path)?.to_string();
        let value = serde_json::from_slice(&body).map_err(|e| malformed(&url, e))?;
        Ok((value, url))
    }

    /// `GET /checkpoint`: the latest signed checkpoint note, unverified.
    ///
    /// # Errors
    /// Transport, API and size errors.
    pub async fn checkpoint(&self) -> Result<Vec<u8>, ClientError> {
        self.get("checkpoint", MAX_NOTE_SIZE).await
    }

    /// `GET /v1/checkpoints/{size}`: the checkpoint the log signed at exactly `size`, from
    /// its history (role `audit`), unverified.
    ///
    /// # Errors
    /// Transport, API and size errors.
    pub async fn checkpoint_at(&self, size: u64) -> Result<Vec<u8>, ClientError> {
        self.get(&format!("v1/checkpoints/{size}"), MAX_NOTE_SIZE)
            .await
    }

    /// Reads the bytes of a tile or bundle by its C2SP path.
    ///
    /// # Errors
    /// Transport, API and size errors.
    pub async fn tile(&self, tile: &TileId) -> Result<Vec<u8>, ClientError> {
        let max = match tile.kind() {
            veritrail_ledger::tile::TileKind::Hash { .. } => MAX_HASH_TILE,
            veritrail_ledger::tile::TileKind::Entries => MAX_BUNDLE,
        };
        self.get(&tile.path(), max).await
    }

    /// The `width` hashes of hash tile `(level, index)`: exactly `width * 32` bytes, or an
    /// error.
    ///
    /// # Errors
    /// [`ClientError::MalformedResponse`] for a body of another length; transport, API and
    /// tile path errors.
    pub async fn hash_tile(
        &self,
        level: u8,
        index: u64,
        width: u16,
    ) -> Result<Vec<Hash>, ClientError> {
        let id = TileId::hash(level, index, width).map_err(|e| ClientError::MalformedResponse {
            url: format!("tile/{level}/{index}"),
            reason: e.to_string(),
        })?;
        crate::tiles::read_hash_tile(self, &id).await
    }

    /// The `width` entries of entry bundle `index`.
    ///
    /// # Errors
    /// [`ClientError::Bundle`] for a malformed bundle or another number of entries;
    /// transport, API and tile path errors.
    pub async fn entry_bundle(&self, index: u64, width: u16) -> Result<Vec<Vec<u8>>, ClientError> {
        let id = TileId::entries(index, width).map_err(|e| ClientError::MalformedResponse {
            url: format!("tile/entries/{index}"),
            reason: e.to_string(),
        })?;
        crate::tiles::read_bundle(self, &id).await
    }

    /// `GET /v1/entries/{index}`: the raw bytes of an entry, unverified.
    ///
    /// # Errors
    /// Transport, API and size errors.
    pub async fn entry(&self, index: u64) -> Result<Vec<u8>, ClientError> {
        self.get(&format!("v1/entries/{index}"), MAX_ENTRY_SIZE)
            .await
    }

    /// `GET /v1/entries/{index}?proof=1`: an entry with an inclusion proof against the
    /// latest checkpoint, unverified (but the answer must be for `index`).
    ///
    /// # Errors
    /// [`ClientError::WrongAnswer`], [`ClientError::MalformedResponse`]; transport, API and
    /// size errors.
    pub async fn entry_with_proof(&self, index: u64) -> Result<EntryWithProof, ClientError> {
        let (json, url): (EntryJson, _) = self
            .get_json(&format!("v1/entries/{index}?proof=1"))
            .await?;
        check_answer("index", index, json.index)?;
        let entry = STANDARD
            .decode(&json.entry)
            .map_err(|e| malformed(&url, format!("entry: {e}")))?;
        Ok(EntryWithProof {
            entry,
            leaf_hash: hash(&url, "leaf_hash", &json.leaf_hash)?,
            inclusion: InclusionProof {
                index,
                tree_size: json.tree_size,
                proof: hashes(&url, &json.proof)?,
            },
            checkpoint: json.checkpoint.into_bytes(),
        })
    }

    /// `GET /v1/proof/inclusion?index=..[&size=..]`, unverified (but for the index and size
    /// asked).
    ///
    /// # Errors
    /// [`ClientError::WrongAnswer`], [`ClientError::MalformedResponse`]; transport, API and
    /// size errors.
    pub async fn inclusion_proof(
        &self,
        index: u64,
        size: Option<u64>,
    ) -> Result<InclusionProof, ClientError> {
        let mut path = format!("v1/proof/inclusion?index={index}");
        if let Some(size) = size {
            path.push_str(&format!("&size={size}"));
        }
        let proof = self.inclusion(&path, size).await?;
        check_answer("index", index, proof.index)?;
        Ok(proof)
    }

    /// `GET /v1/proof/inclusion?leaf_hash=..[&size=..]`: the proof for the first leaf with
    /// that hash, unverified.
    ///
    /// # Errors
    /// As [`LogClient::inclusion_proof`].
    pub async fn inclusion_proof_by_leaf_hash(
        &self,
        leaf_hash: &Hash,
        size: Option<u64>,
    ) -> Result<InclusionProof, ClientError> {
        // Base64 uses `+`, `/` and `=`; percent-encode them for the query string.
        let encoded: String = url_escape(&leaf_hash.to_base64());
        let mut path = format!("v1/proof/inclusion?leaf_hash={encoded}");
        if let Some(size) = size {
            path.push_str(&format!("&size={size}"));
        }
        self.inclusion(&path, size).await
    }

    async fn inclusion(
        &self,
        path: &str,
        size: Option<u64>,
    ) -> Result<InclusionProof, ClientError> {
        let (json, url): (InclusionJson, _) = self.get_json(path).await?;
        if let Some(size) = size {
            check_answer("tree size", size, json.tree_size)?;
        }
        Ok(InclusionProof {
            index: json.index,
            tree_size: json.tree_size,
            proof: hashes(&url, &json.proof)?,
        })
    }

    /// `GET /v1/proof/consistency?old=..[&size=..]`, unverified (but for the sizes asked).
    ///
    /// # Errors
    /// [`ClientError::WrongAnswer`], [`ClientError::MalformedResponse`]; transport, API and
    /// size errors.
    pub async fn consistency_proof(
        &self,
        old: u64,
        size: Option<u64>,
    ) -> Result<ConsistencyProof, ClientError> {
        let mut path = format!("v1/proof/consistency?old={old}");
        if let Some(size) = size {
            path.push_str(&format!("&size={size}"));
        }
        let (json, url): (ConsistencyJson, _) = self.get_json(&path).await?;
        check_answer("old size", old, json.old)?;
        if let Some(size) = size {
            check_answer("tree size", size, json.tree_size)?;
        }
        Ok(ConsistencyProof {
            old,
            tree_size: json.tree_size,
            proof: hashes(&url, &json.proof)?,
        })
    }

    /// Appends one entry (`POST /v1/entries`), once it is durable; with
    /// `options.wait_published`, once a signed checkpoint covers it.
    ///
    /// # Errors
    /// [`ClientError::EntryMismatch`] if the server's leaf hash is not the entry's;
    /// [`ClientError::MalformedResponse`]; transport and API errors (`overloaded`,
    /// `payload_too_large`, ...).
    pub async fn append(
        &self,
        entry: &[u8],
        options: &AppendOptions,
    ) -> Result<Appended, ClientError> {
        let body = self
            .post_entries("application/octet-stream", entry.to_vec(), options)
            .await?;
        let url = self.url_for("v1/entries")?.to_string();
        let json: AppendedJson = serde_json::from_slice(&body).map_err(|e| malformed(&url, e))?;
        appended(&url, json, entry, options.wait_published)
    }

    /// Appends a batch atomically (all or none), in order.
    ///
    /// # Errors
    /// As [`LogClient::append`]; [`ClientError::Local`] for an empty batch, an empty entry
    /// or one larger than 65535 bytes (nothing is sent).
    pub async fn append_batch(
        &self,
        entries: &[&[u8]],
        options: &AppendOptions,
    ) -> Result<Vec<Appended>, ClientError> {
        if entries.is_empty() {
            return Err(ClientError::local(
                std::path::Path::new("batch"),
                "the batch is empty",
            ));
        }
        let mut body = Vec::new();
        for entry in entries {
            if entry.is_empty() {
                return Err(ClientError::local(
                    std::path::Path::new("batch"),
                    "an entry is empty",
                ));
            }
            append_entry(&mut body, entry)
                .map_err(|e| ClientError::local(std::path::Path::new("batch"), e))?;
        }
        let body = self.post_entries(BATCH_CONTENT_TYPE, body, options).await?;
        let url = self.url_for("v1/entries")?.to_string();
        let json: Vec<AppendedJson> =
            serde_json::from_slice(&body).map_err(|e| malformed(&url, e))?;
        if json.len() != entries.len() {
            return Err(malformed(
                &url,
                format!("{} answers for {} entries", json.len(), entries.len()),
            ));
        }
        let mut out = Vec::with_capacity(entries.len());
        let mut previous: Option<u64> = None;
        for (answer, entry) in json.into_iter().zip(entries) {
            let one = appended(&url, answer, entry, options.wait_published)?;
            if let Some(prev) = previous
                && prev.checked_add(1) != Some(one.index)
            {
                return Err(malformed(&url, "batch indices are not consecutive"));
            }
            previous = Some(one.index);
            out.push(one);
        }
        Ok(out)
    }

    async fn post_entries(
        &self,
        content_type: &'static str,
        body: Vec<u8>,
        options: &AppendOptions,
    ) -> Result<Vec<u8>, ClientError> {
        let path = if options.wait_published {
            "v1/entries?wait=published"
        } else {
            "v1/entries"
        };
        let retry = if options.idempotency_key.is_some() {
            Retry::Safe
        } else {
            Retry::Never
        };
        self.send(
            Method::POST,
            path,
            Some((content_type, body, options.idempotency_key.as_deref())),
            MAX_JSON,
            retry,
        )
        .await
    }
}

/// True for statuses after which the same request may succeed.
fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 502 | 503 | 504)
}

async fn read_capped(
    mut response: reqwest::Response,
    url: &str,
    max: usize,
) -> Result<Vec<u8>, ClientError> {
    let too_large = || ClientError::ResponseTooLarge {
        url: url.to_owned(),
        max,
    };
    if response
        .content_length()
        .is_some_and(|len| len > max as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > max {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(source) => {
                return Err(ClientError::Transport {
                    url: url.to_owned(),
                    source,
                });
            }
        }
    }
}

fn api_error(url: &str, status: StatusCode, body: &[u8]) -> ClientError {
    let (code, message) = match serde_json::from_slice::<ErrorJson>(body) {
        Ok(e) => (e.error, e.message),
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            (String::new(), text.chars().take(200).collect())
        }
    };
    ClientError::Api {
        url: url.to_owned(),
        status: status.as_u16(),
        code,
        message,
    }
}

fn malformed(url: &str, reason: impl std::fmt::Display) -> ClientError {
    ClientError::MalformedResponse {
        url: url.to_owned(),
        reason: reason.to_string(),
    }
}

fn hash(url: &str, what: &str, text: &str) -> Result<Hash, ClientError> {
    Hash::from_base64(text).map_err(|e| malformed(url, format!("{what}: {e}")))
}

fn hashes(url: &str, list: &[String]) -> Result<Vec<Hash>, ClientError> {
    if list.len() > MAX_PROOF_HASHES {
        return Err(malformed(
            url,
            format!(
                "proof has {} hashes, at most {MAX_PROOF_HASHES} exist",
                list.len()
            ),
        ));
    }
    list.iter().map(|h| hash(url, "proof hash", h)).collect()
}

fn check_answer(what: &'static str, asked: u64, got: u64) -> Result<(), ClientError> {
    if asked == got {
        Ok(())
    } else {
        Err(ClientError::WrongAnswer { what, asked, got })
    }
}

fn appended(
    url: &str,
    json: AppendedJson,
    entry: &[u8],
    wait: bool,
) -> Result<Appended, ClientError> {
    let claimed = hash(url, "leaf_hash", &json.leaf_hash)?;
    let computed = leaf_hash(entry);
    if claimed != computed {
        return Err(ClientError::EntryMismatch {
            index: json.index,
            computed,
            expected: claimed,
        });
    }
    let published = match (json.checkpoint, json.inclusion_proof, json.receipt) {
        (Some(checkpoint), Some(proof), Some(receipt)) => Some(Published {
            checkpoint: checkpoint.into_bytes(),
            inclusion_proof: hashes(url, &proof)?,
            receipt: receipt.into_bytes(),
        }),
        (None, None, None) if !wait => None,
        _ => {
            return Err(malformed(
                url,
                "expected checkpoint, inclusion_proof and receipt with wait=published",
            ));
        }
    };
    Ok(Appended {
        index: json.index,
        leaf_hash: claimed,
        published,
    })
}

/// Splits a hash tile body into exactly `width` hashes.
pub(crate) fn parse_hash_tile(bytes: &[u8], width: u16) -> Result<Vec<Hash>, String> {
    let want = usize::from(width) * HASH_SIZE_BYTES;
    if bytes.len() != want {
        return Err(format!(
            "hash tile of width {width} must be {want} bytes, got {}",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(HASH_SIZE_BYTES)
        .filter_map(|c| Hash::try_from_slice(c).ok())
        .collect())
}

/// Decodes a bundle that must hold exactly `width` entries.
pub(crate) fn parse_bundle(
    bytes: &[u8],
    width: u16,
    path: &str,
) -> Result<Vec<Vec<u8>>, ClientError> {
    let entries =
        decode_bundle(bytes, usize::from(width)).map_err(|source| ClientError::Bundle {
            path: path.to_owned(),
            source,
        })?;
    if entries.len() != usize::from(width) {
        return Err(malformed(
            path,
            format!(
                "bundle holds {} entries, its width is {width}",
                entries.len()
            ),
        ));
    }
    Ok(entries.into_iter().map(<[u8]>::to_vec).collect())
}

/// Percent-encodes the base64 characters that are special in a query string.
fn url_escape(text: &str) -> String {
    text.replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use veritrail_ledger::bundle::encode_bundle;

    #[test]
    fn hash_tiles_must_have_the_exact_length() {
        let tile: Vec<u8> = (0..64u8).collect();
        let hashes = parse_hash_tile(&tile, 2).unwrap();
        assert_eq!(hashes.len(), 2);
        assert_eq!(hashes[1].as_bytes()[..], tile[32..]);
        assert!(parse_hash_tile(&tile, 1).is_err());
        assert!(parse_hash_tile(&tile, 3).is_err());
        assert!(parse_hash_tile(&tile[..63], 2).is_err());
    }

    #[test]
    fn bundles_must_hold_exactly_their_width() {
        let entries: [&[u8]; 3] = [b"a", b"bb", b"ccc"];
        let bytes = encode_bundle(entries.iter().copied()).unwrap();
        assert_eq!(parse_bundle(&bytes, 3, "p").unwrap().len(), 3);
        assert!(matches!(
            parse_bundle(&bytes, 4, "p"),
            Err(ClientError::MalformedResponse { .. })
        ));
        assert!(matches!(
            parse_bundle(&bytes, 2, "p"),
            Err(ClientError::Bundle { .. })
        ));
        assert!(matches!(
            parse_bundle(&bytes[..bytes.len() - 1], 3, "p"),
            Err(ClientError::Bundle { .. })
        ));
    }

    #[test]
    fn appended_answers_are_checked_against_the_entry() {
        let json = |hash: &Hash| AppendedJson {
            index: 7,
            leaf_hash: hash.to_base64(),
            checkpoint: None,
            inclusion_proof: None,
            receipt: None,
        };
        let ok = appended("u", json(&leaf_hash(b"x")), b"x", false).unwrap();
        assert_eq!((ok.index, ok.published), (7, None));
        assert!(matches!(
            appended("u", json(&leaf_hash(b"y")), b"x", false),
            Err(ClientError::EntryMismatch { index: 7, .. })
        ));
        // wait=published without the proof material is malformed.
        assert!(matches!(
            appended("u", json(&leaf_hash(b"x")), b"x", true),
            Err(ClientError::MalformedResponse { .. })
        ));
    }

    #[test]
    fn error_bodies_keep_the_stable_code() {
        let body = br#"{"error":"overloaded","message":"queue full"}"#;
        let err = api_error("u", StatusCode::SERVICE_UNAVAILABLE, body);
        assert!(matches!(
            err,
            ClientError::Api { status: 503, ref code, ref message, .. }
                if code == "overloaded" && message == "queue full"
        ));
        let err = api_error("u", StatusCode::BAD_GATEWAY, &[b'x'; 1000]);
        assert!(matches!(
            err,
            ClientError::Api { status: 502, ref code, ref message, .. }
                if code.is_empty() && message.len() == 200
        ));
        assert!(retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(!retryable(StatusCode::INTERNAL_SERVER_ERROR));
        assert!(!retryable(StatusCode::CONFLICT));
    }

    #[test]
    fn urls_keep_a_path_prefix_and_refuse_other_schemes() {
        let client = LogClient::new(&ClientConfig::new("http://127.0.0.1:1/logs/a")).unwrap();
        assert_eq!(
            client.url_for("checkpoint").unwrap().as_str(),
            "http://127.0.0.1:1/logs/a/checkpoint"
        );
        for bad in ["ftp://x", "not a url", "http://x/?q=1", "mailto:a@b"] {
            assert!(
                matches!(
                    LogClient::new(&ClientConfig::new(bad)),
                    Err(ClientError::InvalidUrl { .. })
                ),
                "{bad}"
            );
        }
        assert_eq!(url_escape("a+b/c=="), "a%2Bb%2Fc%3D%3D");
    }

    proptest! {
        #[test]
        fn response_parsers_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..2048),
            width in 0u16..=300,
        ) {
            if let Ok(hashes) = parse_hash_tile(&bytes, width) {
                prop_assert_eq!(hashes.len(), usize::from(width));
            }
            if let Ok(entries) = parse_bundle(&bytes, width, "p") {
                prop_assert_eq!(entries.len(), usize::from(width));
            }
            let _ = api_error("u", StatusCode::BAD_REQUEST, &bytes);
            let _ = serde_json::from_slice::<AppendedJson>(&bytes)
                .map(|j| appended("u", j, &bytes, width % 2 == 0));
        }
    }
}
