//! [`LogClient`]: the endpoints of a Veritrail server (or any C2SP tlog-tiles log, for the
//! read path). It parses every answer strictly but verifies nothing cryptographic beyond
//! what is free (an append's leaf hash); [`crate::VerifyingClient`] and [`crate::Monitor`]
//! do the verification.
//!
//! The layers below: `crate::transport` sends requests (timeouts, capped body sizes, safe
//! retries: an append is retried only when it carries an idempotency key, which makes a retry
//! return the first attempt's result instead of appending twice); `crate::answers` decodes
//! the JSON answers, whose shapes are `veritrail-api`'s, shared with the server;
//! `crate::tile_body` checks tile and bundle bodies.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::{Method, Url};
use veritrail_api::limits::MAX_JSON_RESPONSE;
use veritrail_api::media::BINARY_CONTENT_TYPE;
use veritrail_api::{
    AppendedEntry, ConsistencyProofResponse, EntryWithProof as EntryWithProofJson,
    InclusionProofResponse,
};
use veritrail_ledger::Hash;
use veritrail_ledger::bundle::{BUNDLE_ENTRIES, MAX_ENTRY_SIZE, append_entry};
use veritrail_ledger::hash::HASH_SIZE as HASH_SIZE_BYTES;
use veritrail_ledger::note::MAX_NOTE_SIZE;
use veritrail_ledger::tile::{TILE_WIDTH, TileId};

use crate::answers::{appended, check_answer, hash, hashes, malformed};
use crate::error::ClientError;
use crate::tile_body;
use crate::transport::{Body, Retry, Transport};

pub use crate::answers::{Appended, ConsistencyProof, EntryWithProof, InclusionProof, Published};
pub use crate::transport::ClientConfig;
pub use veritrail_api::media::BATCH_CONTENT_TYPE;

/// Largest hash tile: 256 hashes.
const MAX_HASH_TILE: usize = TILE_WIDTH as usize * HASH_SIZE_BYTES;
/// Largest entry bundle: 256 entries of the largest size with their length prefixes.
const MAX_BUNDLE: usize = BUNDLE_ENTRIES * (MAX_ENTRY_SIZE + 2);

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
        let key = veritrail_ledger::ascii::to_hex(&bytes);
        Ok(AppendOptions {
            wait_published,
            idempotency_key: Some(key),
        })
    }
}

/// What [`LogClient::erase`] erases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Erasure {
    /// Every payload of a data subject (the records' `subject`).
    Subject(String),
    /// Every payload of a conversation.
    Conversation(String),
    /// The payloads of one record.
    Record(u64),
}

/// The answer of [`LogClient::erase`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct Erased {
    /// The index of the `x-veritrail.erasure` record.
    pub erasure_index: u64,
    /// Records whose payloads were destroyed.
    pub records_affected: u64,
    /// Data keys destroyed.
    pub keys_destroyed: u64,
}

/// The API of one log. Cheap to clone (the connection pool is shared).
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
    transport: Transport,
    max_tree_size: u64,
}

impl LogClient {
    /// A client for the log at `config.url`.
    ///
    /// # Errors
    /// [`ClientError::InvalidUrl`] unless the URL is `http` or `https`;
    /// [`ClientError::Transport`] if the HTTP stack cannot be set up.
    pub fn new(config: &ClientConfig) -> Result<Self, ClientError> {
        Ok(LogClient {
            transport: Transport::new(config)?,
            max_tree_size: config.max_tree_size,
        })
    }

    /// The log's base URL.
    pub fn url(&self) -> &Url {
        self.transport.base()
    }

    /// The largest tree size a checkpoint may claim (from [`ClientConfig::max_tree_size`]).
    pub fn max_tree_size(&self) -> u64 {
        self.max_tree_size
    }

    /// `GET /checkpoint`: the latest signed checkpoint note, unverified.
    ///
    /// # Errors
    /// Transport, API and size errors.
    pub async fn checkpoint(&self) -> Result<Vec<u8>, ClientError> {
        self.transport.get("checkpoint", MAX_NOTE_SIZE).await
    }

    /// `GET /v1/checkpoints/{size}`: the checkpoint the log signed at exactly `size`, from
    /// its history (role `audit`), unverified.
    ///
    /// # Errors
    /// Transport, API and size errors.
    pub async fn checkpoint_at(&self, size: u64) -> Result<Vec<u8>, ClientError> {
        self.transport
            .get(&format!("v1/checkpoints/{size}"), MAX_NOTE_SIZE)
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
        self.transport.get(&tile.path(), max).await
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
        tile_body::hash_tile(&id, &self.tile(&id).await?)
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
        tile_body::bundle(&id, &self.tile(&id).await?)
    }

    /// `GET /v1/entries/{index}`: the raw bytes of an entry, unverified.
    ///
    /// # Errors
    /// Transport, API and size errors.
    pub async fn entry(&self, index: u64) -> Result<Vec<u8>, ClientError> {
        self.transport
            .get(&format!("v1/entries/{index}"), MAX_ENTRY_SIZE)
            .await
    }

    /// `GET /v1/entries/{index}?proof=1`: an entry with an inclusion proof against the
    /// latest checkpoint, unverified (but the answer must be for `index`).
    ///
    /// # Errors
    /// [`ClientError::WrongAnswer`], [`ClientError::MalformedResponse`]; transport, API and
    /// size errors.
    pub async fn entry_with_proof(&self, index: u64) -> Result<EntryWithProof, ClientError> {
        let (json, url): (EntryWithProofJson, _) = self
            .transport
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

    /// `GET /v1/proof/inclusion/by-leaf-hash?leaf_hash=..[&size=..]`: the proof for the first
    /// leaf with that hash, unverified. Needs a token with the `read` role (unless the server
    /// runs with `--public-read`): the answer confirms that an entry is in the log.
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
        let mut path = format!("v1/proof/inclusion/by-leaf-hash?leaf_hash={encoded}");
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
        let (json, url): (InclusionProofResponse, _) = self.transport.get_json(path).await?;
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
        let (json, url): (ConsistencyProofResponse, _) = self.transport.get_json(&path).await?;
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
            .post_entries(BINARY_CONTENT_TYPE, entry.to_vec(), options)
            .await?;
        let url = self.transport.url_for("v1/entries")?.to_string();
        let json: AppendedEntry = serde_json::from_slice(&body).map_err(|e| malformed(&url, e))?;
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
        let url = self.transport.url_for("v1/entries")?.to_string();
        let json: Vec<AppendedEntry> =
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

    /// Appends agent records (`POST /v1/records`): `events` as one JSON array, all or
    /// nothing, once durable; with `options.wait_published`, once a signed checkpoint covers
    /// them. Each answer is checked: its leaf hashes to its leaf hash and holds its event
    /// unchanged (the server only adds `id`, `received_at`, `submitted_by`, `nonce` and
    /// `prev`).
    ///
    /// # Errors
    /// [`ClientError::Local`] for no events or more than 1,000 (nothing is sent);
    /// [`ClientError::RecordMismatch`] or [`ClientError::EntryMismatch`] when an answer does
    /// not hold what was sent; [`ClientError::Api`] with `invalid_record` (its message and
    /// `problems` name every field at fault) and the other append errors.
    pub async fn append_records(
        &self,
        events: &[veritrail_records::AuditEvent],
        options: &AppendOptions,
    ) -> Result<Vec<crate::answers::Recorded>, ClientError> {
        let values = events
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ClientError::local(std::path::Path::new("records"), e))?;
        self.append_record_values(&values, options).await
    }

    /// As [`LogClient::append_records`], for events made with the [`crate::event::Event`]
    /// builder, payloads included (the server keeps them off the tree and commits to them).
    ///
    /// # Errors
    /// As [`LogClient::append_records`].
    pub async fn append_events(
        &self,
        events: &[crate::event::BuiltEvent],
        options: &AppendOptions,
    ) -> Result<Vec<crate::answers::Recorded>, ClientError> {
        let values: Vec<serde_json::Value> = events.iter().map(|e| e.json().clone()).collect();
        self.append_record_values(&values, options).await
    }

    /// As [`LogClient::append_records`], for events given as JSON (validated by the server,
    /// which names every problem).
    ///
    /// # Errors
    /// As [`LogClient::append_records`].
    pub async fn append_record_values(
        &self,
        events: &[serde_json::Value],
        options: &AppendOptions,
    ) -> Result<Vec<crate::answers::Recorded>, ClientError> {
        if events.is_empty() || events.len() > veritrail_records::MAX_RECORDS_PER_REQUEST {
            return Err(ClientError::local(
                std::path::Path::new("records"),
                format!(
                    "send 1 to {} records, not {}",
                    veritrail_records::MAX_RECORDS_PER_REQUEST,
                    events.len()
                ),
            ));
        }
        let body = serde_json::to_vec(events)
            .map_err(|e| ClientError::local(std::path::Path::new("records"), e))?;
        let path = if options.wait_published {
            "v1/records?wait=published"
        } else {
            "v1/records"
        };
        let retry = if options.idempotency_key.is_some() {
            Retry::Safe
        } else {
            Retry::Never
        };
        let request = Body {
            content_type: "application/json",
            bytes: body,
            idempotency_key: options.idempotency_key.as_deref(),
        };
        let answer = self
            .transport
            .send(Method::POST, path, Some(request), MAX_JSON_RESPONSE, retry)
            .await?;
        let url = self.transport.url_for("v1/records")?.to_string();
        let json: veritrail_api::RecordsResponse =
            serde_json::from_slice(&answer).map_err(|e| malformed(&url, e))?;
        if json.records.len() != events.len() {
            return Err(malformed(
                &url,
                format!(
                    "{} answers for {} records",
                    json.records.len(),
                    events.len()
                ),
            ));
        }
        json.records
            .into_iter()
            .zip(events)
            .map(|(answer, event)| {
                crate::answers::recorded(&url, answer, event, options.wait_published)
            })
            .collect()
    }

    /// A stored record with its inclusion proof (`GET /v1/records/{index}`, role `audit`).
    /// Not yet verified: [`crate::records::verified_payload`] and
    /// [`crate::records::verified_record`] check it.
    ///
    /// # Errors
    /// Transport and API errors (`not_found` for a raw entry or an index the latest
    /// checkpoint does not cover yet).
    pub async fn record(&self, index: u64) -> Result<veritrail_api::RecordWithProof, ClientError> {
        let (json, url): (veritrail_api::RecordWithProof, _) = self
            .transport
            .get_json(&format!("v1/records/{index}"))
            .await?;
        check_answer("index", index, json.index)?;
        let _ = url;
        Ok(json)
    }

    /// One page of a record query (`GET /v1/records?...`, role `audit`), as served. Not yet
    /// verified: [`crate::records::verified_query`] checks it.
    ///
    /// # Errors
    /// Transport and API errors (`index_catching_up` while the server's indexes are behind).
    pub async fn query_page(
        &self,
        filter: &veritrail_records::Filter,
        cursor: u64,
        limit: u64,
    ) -> Result<veritrail_api::RecordsPage, ClientError> {
        let mut url = self.transport.url_for("v1/records")?;
        {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in filter.to_pairs() {
                pairs.append_pair(name, &value);
            }
            pairs.append_pair("cursor", &cursor.to_string());
            pairs.append_pair("limit", &limit.to_string());
        }
        let path = format!("v1/records?{}", url.query().unwrap_or_default());
        let (page, _): (veritrail_api::RecordsPage, _) = self.transport.get_json(&path).await?;
        Ok(page)
    }

    /// One page of a conversation (`GET /v1/conversations/{id}`, role `audit`), as served.
    /// Not yet verified: [`crate::records::verified_conversation`] checks it.
    ///
    /// # Errors
    /// Transport and API errors.
    pub async fn conversation_page(
        &self,
        id: &str,
        cursor: u64,
    ) -> Result<veritrail_api::ConversationPage, ClientError> {
        let mut url = self.transport.url_for("v1/conversations/")?;
        let shown = url.to_string();
        url.path_segments_mut()
            .map_err(|()| ClientError::InvalidUrl {
                url: shown,
                reason: "cannot be a base".into(),
            })?
            .pop_if_empty()
            .push(id);
        url.query_pairs_mut()
            .append_pair("cursor", &cursor.to_string())
            .append_pair("limit", "1000");
        let base = self.transport.url_for("")?;
        let path = url
            .as_str()
            .strip_prefix(base.as_str())
            .unwrap_or_default()
            .to_owned();
        let (page, _): (veritrail_api::ConversationPage, _) =
            self.transport.get_json(&path).await?;
        Ok(page)
    }

    /// A record's payload with its opening key, as served
    /// (`GET /v1/records/{index}/payloads/{name}`, role `audit`). Not yet verified.
    ///
    /// # Errors
    /// Transport and API errors (`payload_erased` after an erasure).
    pub async fn payload(
        &self,
        index: u64,
        name: &str,
    ) -> Result<(String, Vec<u8>, Vec<u8>), ClientError> {
        #[derive(serde::Deserialize)]
        struct Answer {
            media_type: String,
            payload: String,
            opening_key: String,
        }
        let (json, url): (Answer, _) = self
            .transport
            .get_json(&format!("v1/records/{index}/payloads/{name}"))
            .await?;
        let decode = |text: &str| STANDARD.decode(text).map_err(|e| malformed(&url, e));
        Ok((
            json.media_type,
            decode(&json.payload)?,
            decode(&json.opening_key)?,
        ))
    }

    /// Erases payloads (crypto-shredding, `POST /v1/admin/erase`, role `admin`): the server
    /// appends an `x-veritrail.erasure` record naming `target` and `reason`, then destroys the
    /// data keys and stored payloads. Proofs are untouched; the payloads then answer
    /// `payload_erased` naming the erasure record. Not retried (a second erasure would append
    /// a second record).
    ///
    /// # Errors
    /// Transport and API errors (`not_found` for an index that is not a record).
    pub async fn erase(&self, target: &Erasure, reason: &str) -> Result<Erased, ClientError> {
        let body = match target {
            Erasure::Subject(subject) => serde_json::json!({"subject": subject, "reason": reason}),
            Erasure::Conversation(id) => {
                serde_json::json!({"conversation_id": id, "reason": reason})
            }
            Erasure::Record(index) => serde_json::json!({"index": index, "reason": reason}),
        };
        let request = Body {
            content_type: "application/json",
            bytes: body.to_string().into_bytes(),
            idempotency_key: None,
        };
        let answer = self
            .transport
            .send(
                Method::POST,
                "v1/admin/erase",
                Some(request),
                MAX_JSON_RESPONSE,
                Retry::Never,
            )
            .await?;
        let url = self.transport.url_for("v1/admin/erase")?.to_string();
        serde_json::from_slice(&answer).map_err(|e| malformed(&url, e))
    }

    /// Places a legal hold (`POST /v1/admin/holds`, role `admin`): the server appends an
    /// `x-veritrail.legal_hold` record naming `scope` and `reason` and answers once it is
    /// durable. Not retried (a second call would place a second hold).
    ///
    /// # Errors
    /// Transport and API errors.
    pub async fn place_hold(
        &self,
        scope: &veritrail_records::hold::Scope,
        reason: &str,
    ) -> Result<veritrail_api::HoldInForce, ClientError> {
        let mut body = scope.to_json();
        if let Some(object) = body.as_object_mut() {
            object.insert(
                "reason".into(),
                serde_json::Value::String(reason.to_owned()),
            );
        }
        self.post_json("v1/admin/holds", &body).await
    }

    /// Releases legal hold `hold` (`POST /v1/admin/holds/{hold}/release`, role `admin`).
    /// Not retried.
    ///
    /// # Errors
    /// Transport and API errors (`not_found` when no such hold is in force).
    pub async fn release_hold(
        &self,
        hold: u64,
        reason: &str,
    ) -> Result<veritrail_api::HoldReleased, ClientError> {
        let body = serde_json::json!({ "reason": reason });
        self.post_json(&format!("v1/admin/holds/{hold}/release"), &body)
            .await
    }

    /// The legal holds in force (`GET /v1/admin/holds`, role `audit` or `admin`).
    ///
    /// # Errors
    /// Transport and API errors.
    pub async fn holds(&self) -> Result<veritrail_api::HoldsResponse, ClientError> {
        let path = "v1/admin/holds";
        let answer = self
            .transport
            .send(Method::GET, path, None, MAX_JSON_RESPONSE, Retry::Safe)
            .await?;
        let url = self.transport.url_for(path)?.to_string();
        serde_json::from_slice(&answer).map_err(|e| malformed(&url, e))
    }

    /// Runs the server's archival job now (`POST /v1/admin/archive`, role `admin`): what has
    /// expired by `until` (default now) is archived, verified and purged. Not retried.
    ///
    /// # Errors
    /// Transport and API errors (`not_found` when the server archives nothing).
    pub async fn archive(
        &self,
        until: Option<&str>,
    ) -> Result<veritrail_api::ArchiveResponse, ClientError> {
        let body = match until {
            Some(until) => serde_json::json!({ "until": until }),
            None => serde_json::json!({}),
        };
        self.post_json("v1/admin/archive", &body).await
    }

    /// POSTs a JSON body once (no retry) and parses the JSON answer.
    async fn post_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, ClientError> {
        let request = Body {
            content_type: "application/json",
            bytes: body.to_string().into_bytes(),
            idempotency_key: None,
        };
        let answer = self
            .transport
            .send(
                Method::POST,
                path,
                Some(request),
                MAX_JSON_RESPONSE,
                Retry::Never,
            )
            .await?;
        let url = self.transport.url_for(path)?.to_string();
        serde_json::from_slice(&answer).map_err(|e| malformed(&url, e))
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
        let body = Body {
            content_type,
            bytes: body,
            idempotency_key: options.idempotency_key.as_deref(),
        };
        self.transport
            .send(Method::POST, path, Some(body), MAX_JSON_RESPONSE, retry)
            .await
    }
}

/// Percent-encodes the base64 characters that are special in a query string.
fn url_escape(text: &str) -> String {
    text.replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_escaped_for_a_query_string() {
        assert_eq!(url_escape("a+b/c=="), "a%2Bb%2Fc%3D%3D");
    }
}
