//! `Idempotency-Key`: a retried append with the same key and the same entries gets the original
//! indices instead of appending twice.
//!
//! - **Scope.** Keys belong to the token that used them: the key space is (token, key), so one
//!   token can neither block nor read another's outcome under the same key. A token's
//!   [`Scope`] is derived from the SHA-256 of the token (never the token itself). Requests
//!   without a token (`--no-auth`) share one scope.
//! - **Memory.** A remembered key is a fixed-size [`Record`] (72 bytes: a 128-bit [`KeyId`]
//!   derived from scope and key, so the key's own length costs nothing, the request's
//!   32-byte [`Fingerprint`], the indices and the time) plus a slot in a hash index. The
//!   store is sized from a byte budget ([`max_records`]); when full, the oldest key is
//!   forgotten first. Keys are also forgotten after the window (default 24 h).
//! - **Durability.** With a [`journal::Journal`], the committer writes a keyed request's
//!   record and syncs it *before* the ledger commit that acknowledges the request, and
//!   [`Idempotency::open`] rebuilds the store at start from the records whose entries are in
//!   the log at the recorded indices. So a client retrying after a crash and restart gets the
//!   first outcome, and nothing is appended twice.
//! - **Fingerprints.** A record's 32 bytes serve two ends: telling a retry (same request) from
//!   another request under the same key (409), and, at [`Idempotency::open`], recognising the
//!   request's entries in the log. For `POST /v1/entries` one digest of the entries does both,
//!   since the entries are the leaves ([`Fingerprint::Entries`]). For `POST /v1/records` the
//!   leaves are the server's records (with `received_at`, a random `nonce`, a chain link), which
//!   no digest of the body can be checked against, so the 32 bytes hold two 128-bit halves: a
//!   digest of the body, which a retry is compared by, and a digest of the records' nonces,
//!   which `open` reads back from the leaves ([`Fingerprint::Records`]). The journal's layout
//!   is the same for both; `open` tells them apart by the leaves (raw entries cannot start
//!   with the record marker).
//! - **Concurrency.** A retry that arrives while the first request is being committed waits
//!   for it. A failed request forgets its key, so the client's retry appends.

pub mod journal;

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use veritrail_ledger::Ledger;
use veritrail_ledger::bundle::{BUNDLE_ENTRIES, decode_bundle};
use veritrail_records::{LEAF_VERSION, NONCE_BYTES, Unchained, is_record};

use crate::clock::unix_ms;
use journal::{Journal, JournalError};

/// Longest `Idempotency-Key` accepted, in bytes (the API's limit, shared with clients).
pub use veritrail_api::limits::MAX_IDEMPOTENCY_KEY_LEN as MAX_KEY_LEN;

pub use crate::config::DEFAULT_IDEMPOTENCY_BUDGET as DEFAULT_BUDGET;
pub use crate::config::MIN_IDEMPOTENCY_BUDGET as MIN_BUDGET;

/// Whose keys: the token that presented them, or the shared scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Scope([u8; 32]);

impl Scope {
    /// The scope of requests without a token (`--no-auth`).
    pub const SHARED: Scope = Scope([0; 32]);

    /// The scope of the token whose SHA-256 is `token_hash` (as in the token file):
    /// `SHA-256("veritrail idempotency scope v1\0" || token_hash)`.
    pub fn of_token_hash(token_hash: &[u8; 32]) -> Scope {
        let mut hasher = Sha256::new();
        hasher.update(b"veritrail idempotency scope v1\0");
        hasher.update(token_hash);
        Scope(hasher.finalize().into())
    }

    /// The scope of a request: its bearer token's, or [`Scope::SHARED`] without a token or
    /// when the server authenticates nobody (`no_auth`). Called after the `append` role was
    /// checked, so a presented token is a known one.
    pub fn of_request(headers: &HeaderMap, no_auth: bool) -> Scope {
        if no_auth {
            return Scope::SHARED;
        }
        // The same reading of the header as `Auth::caller`.
        headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map_or(Scope::SHARED, |token| {
                Scope::of_token_hash(&crate::auth::token_hash(token))
            })
    }
}

/// A key within its scope: `SHA-256("veritrail idempotency key v1\0" || scope || key)`,
/// truncated to 128 bits. Finding another scope's key with the same id is a second preimage
/// of 128 bits; an accidental collision needs about 2^64 keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyId([u8; 16]);

impl KeyId {
    /// The id of `key` in `scope`.
    pub fn new(scope: &Scope, key: &str) -> KeyId {
        let mut hasher = Sha256::new();
        hasher.update(b"veritrail idempotency key v1\0");
        hasher.update(scope.0);
        hasher.update(key.as_bytes());
        let digest = hasher.finalize();
        let mut id = [0u8; 16];
        id.copy_from_slice(digest.get(..16).unwrap_or(&[0; 16]));
        KeyId(id)
    }

    /// The id's bytes.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0
    }
}

/// A remembered outcome: key `id` appended the entries with `fingerprint` at
/// `first .. first + count`, at `created_ms` (Unix time, milliseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// The key within its scope.
    pub id: KeyId,
    /// The request's [`Fingerprint`], as [`Fingerprint::to_bytes`] lays it out.
    pub fingerprint: [u8; 32],
    /// The first index assigned.
    pub first: u64,
    /// How many entries, 1 to 4096.
    pub count: u32,
    /// When the outcome was recorded, in Unix milliseconds.
    pub created_ms: u64,
}

impl Record {
    /// The indices the request was given.
    pub fn indices(&self) -> Range<u64> {
        self.first..self.first.saturating_add(u64::from(self.count))
    }
}

/// A keyed request on its way to the committer: what its journal record will hold besides
/// the indices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keyed {
    /// The key within its scope.
    pub id: KeyId,
    /// The request's [`Fingerprint`], as [`Fingerprint::to_bytes`] lays it out.
    pub fingerprint: [u8; 32],
}

/// What a keyed request is bound to: compared with a retry's under the same key, and
/// journaled (as [`Fingerprint::to_bytes`]) so that [`Idempotency::open`] can tell whether the
/// request's commit landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fingerprint {
    /// `POST /v1/entries`: the SHA-256 fingerprint of the entries (each with its length, as a
    /// batch encodes them). The entries are the leaves, so the same digest identifies the
    /// request and is found again in the log.
    Entries([u8; 32]),
    /// `POST /v1/records`: laid out as `request ‖ nonces`.
    Records {
        /// The request's identity, what a retry is compared by: the first 128 bits of
        /// `SHA-256("veritrail/records-request/v1\0" ‖ body)`. A token can only confuse its own
        /// keys, and only with a 2^64 search, as for [`KeyId`].
        request: [u8; 16],
        /// What the log will hold: the first 128 bits of
        /// `SHA-256("veritrail/records-nonces/v1\0" ‖ nonce ‖ …)` over the records' 128-bit
        /// random nonces, in order. A retry's records get other nonces, so this half is not
        /// compared.
        nonces: [u8; 16],
    },
}

/// Bytes of each half of a [`Fingerprint::Records`].
const HALF: usize = 16;

impl Fingerprint {
    /// The fingerprint of a `POST /v1/records` whose `body` became `records` (in order).
    ///
    /// # Errors
    /// [`NoNonce`] if a record's leaf holds no nonce (never, for an [`Unchained`]).
    pub fn records(body: &[u8], records: &[Unchained]) -> Result<Fingerprint, NoNonce> {
        let digest = Sha256::new()
            .chain_update(b"veritrail/records-request/v1\0")
            .chain_update(body)
            .finalize();
        let nonces = nonces_digest(records.iter().map(|record| record.leaf(None)))?;
        Ok(Fingerprint::Records {
            request: first_half(&digest),
            nonces,
        })
    }

    /// The 32 bytes journaled: the digest for [`Fingerprint::Entries`], `request ‖ nonces`
    /// for [`Fingerprint::Records`].
    pub fn to_bytes(self) -> [u8; 32] {
        match self {
            Fingerprint::Entries(digest) => digest,
            Fingerprint::Records { request, nonces } => {
                let mut out = [0u8; 32];
                let (head, tail) = out.split_at_mut(HALF);
                head.copy_from_slice(&request);
                tail.copy_from_slice(&nonces);
                out
            }
        }
    }

    /// Whether a request with this fingerprint is the same request as the one that
    /// `journaled` (from [`Fingerprint::to_bytes`]) belongs to: the whole digest for entries,
    /// the `request` half for records.
    fn same_request(&self, journaled: &[u8; 32]) -> bool {
        match self {
            Fingerprint::Entries(digest) => digest == journaled,
            Fingerprint::Records { request, .. } => {
                journaled.get(..HALF) == Some(request.as_slice())
            }
        }
    }
}

/// A record's leaf without a readable `nonce` (answered as an internal error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a record's leaf holds no nonce")]
pub struct NoNonce;

/// The first 128 bits of `digest`.
fn first_half(digest: &[u8]) -> [u8; HALF] {
    let mut out = [0u8; HALF];
    out.copy_from_slice(digest.get(..HALF).unwrap_or(&[0; HALF]));
    out
}

/// The `nonce` of a record's leaf (`0x01` ‖ canonical JSON): the top-level member only.
fn nonce_of(leaf: &[u8]) -> Option<[u8; NONCE_BYTES]> {
    /// The one member read; the others are skipped without being kept.
    #[derive(serde::Deserialize)]
    struct Leaf {
        nonce: String,
    }
    let json = leaf.strip_prefix(&[LEAF_VERSION])?;
    let Leaf { nonce } = serde_json::from_slice(json).ok()?;
    let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, nonce).ok()?;
    bytes.try_into().ok()
}

/// The `nonces` half of a [`Fingerprint::Records`] of the records with these leaves (in
/// order; the chain link does not matter).
///
/// # Errors
/// [`NoNonce`] if a leaf is not a record with a nonce.
fn nonces_digest<L: AsRef<[u8]>>(
    leaves: impl IntoIterator<Item = L>,
) -> Result<[u8; HALF], NoNonce> {
    let mut hasher = Sha256::new().chain_update(b"veritrail/records-nonces/v1\0");
    for leaf in leaves {
        hasher.update(nonce_of(leaf.as_ref()).ok_or(NoNonce)?);
    }
    Ok(first_half(&hasher.finalize()))
}

/// Whether `leaves`, read back from the log at a journal record's indices, are what the
/// request behind `journaled` appended. Raw entries (never starting with the record marker)
/// are checked as [`Fingerprint::Entries`]; records by their nonces, as
/// [`Fingerprint::Records`]. (A journal written before records were told apart holds a digest
/// of a records request's body, which matches neither: those keys are dropped as not landed.)
fn landed(leaves: &[Bytes], journaled: &[u8; 32]) -> bool {
    if leaves.iter().any(|leaf| is_record(leaf)) {
        nonces_digest(leaves).is_ok_and(|nonces| journaled.get(HALF..) == Some(nonces.as_slice()))
    } else {
        crate::body::fingerprint(leaves) == *journaled
    }
}

/// Bytes charged for one remembered key in the record queue.
pub const RECORD_BYTES: usize = std::mem::size_of::<Record>();

/// Bytes of one slot of the hash index (key id, sequence number, one control byte).
pub const INDEX_SLOT_BYTES: usize = std::mem::size_of::<(KeyId, u64)>() + 1;

/// Buckets of a `std` hash table (hashbrown) with room for `items`: load at most 7/8, a
/// power of two.
fn buckets_for(items: usize) -> usize {
    if items < 4 {
        4
    } else if items < 8 {
        8
    } else {
        (items.saturating_mul(8) / 7).next_power_of_two()
    }
}

/// Worst-case bytes of the hash index holding `items` keys under churn: the table keeps
/// tombstones until it rehashes, and it grows instead of rehashing in place once more than
/// half of its capacity is live, so the bound is a table with room for `2 × items`.
fn index_bytes(items: usize) -> usize {
    buckets_for(items.saturating_mul(2)).saturating_mul(INDEX_SLOT_BYTES)
}

/// How many keys fit in `budget` bytes: the largest `n` with
/// `n × RECORD_BYTES + index_bytes(n) ≤ budget`. For the default 64 MiB: 458,752
/// (72 + 25 × 2^20 / 458,752 ≈ 129 bytes per key).
pub fn max_records(budget: usize) -> usize {
    let mut best = 0;
    let mut buckets = 8usize;
    while let Some(index) = buckets
        .checked_mul(INDEX_SLOT_BYTES)
        .filter(|bytes| *bytes <= budget)
    {
        // At most 7/16 of the buckets keeps `index_bytes(n)` within this table.
        let n = (buckets * 7 / 16).min((budget - index) / RECORD_BYTES);
        best = best.max(n);
        match buckets.checked_mul(2) {
            Some(next) => buckets = next,
            None => break,
        }
    }
    best.max(1)
}

/// The state of a key whose first request is in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    /// The first request is being committed.
    Pending,
    /// Committed: these indices.
    Done(Range<u64>),
    /// The first request failed; the key is free again.
    Failed,
}

/// A key whose first request is in flight. In-flight keys are not charged to the budget:
/// there is at most one per queued request, bounded by the append queue like the request's
/// body.
struct Pending {
    /// As journaled ([`Fingerprint::to_bytes`]).
    fingerprint: [u8; 32],
    outcome: watch::Receiver<Outcome>,
}

/// The remembered outcomes, oldest first.
struct Store {
    /// Records in insertion order; a record superseded by a later one for the same id stays
    /// until it reaches the front (the index no longer points at it).
    records: VecDeque<Record>,
    /// The sequence number of `records[0]`.
    front_seq: u64,
    /// Key id to sequence number of its record.
    index: HashMap<KeyId, u64>,
    /// Most records held: from the budget.
    max_records: usize,
}

impl Store {
    fn new(max_records: usize) -> Self {
        Store {
            records: VecDeque::new(),
            front_seq: 0,
            index: HashMap::new(),
            max_records,
        }
    }

    fn get(&self, id: &KeyId) -> Option<&Record> {
        let seq = *self.index.get(id)?;
        let position = usize::try_from(seq.checked_sub(self.front_seq)?).ok()?;
        self.records.get(position)
    }

    /// Forgets the oldest record.
    fn pop_front(&mut self) {
        if let Some(record) = self.records.pop_front() {
            if self.index.get(&record.id) == Some(&self.front_seq) {
                self.index.remove(&record.id);
            }
            self.front_seq += 1;
        }
    }

    /// Forgets records older than `window_ms` from the front.
    fn expire(&mut self, now: u64, window_ms: u64) {
        while self
            .records
            .front()
            .is_some_and(|r| now.saturating_sub(r.created_ms) > window_ms)
        {
            self.pop_front();
        }
    }

    /// Remembers `record`, forgetting the oldest if the store is full. Returns whether one
    /// was evicted.
    fn insert(&mut self, record: Record) -> bool {
        let mut evicted = false;
        if self.records.len() >= self.max_records {
            self.pop_front();
            evicted = true;
        }
        if self.records.len() == self.records.capacity() {
            // Grow by doubling, never past the budget's record count.
            let room = self.max_records - self.records.len();
            self.records
                .reserve_exact(self.records.capacity().max(64).min(room));
        }
        let seq = self.front_seq + self.records.len() as u64;
        self.records.push_back(record);
        self.index.insert(record.id, seq);
        evicted
    }

    /// The bytes this store may occupy: the record queue's capacity plus the worst-case index
    /// for the keys held.
    fn accounted_bytes(&self) -> usize {
        self.records.capacity() * RECORD_BYTES + index_bytes(self.index.len())
    }

    /// The records the index points at (not superseded) and within the window, oldest first.
    fn live(&self, now: u64, window_ms: u64) -> Vec<Record> {
        let mut out = Vec::with_capacity(self.index.len());
        for (seq, record) in (self.front_seq..).zip(self.records.iter()) {
            if self.index.get(&record.id) == Some(&seq)
                && now.saturating_sub(record.created_ms) <= window_ms
            {
                out.push(*record);
            }
        }
        out
    }
}

struct Inner {
    store: Store,
    pending: HashMap<KeyId, Pending>,
}

/// What a request with a key should do.
#[derive(Debug)]
pub enum Claim {
    /// First use of the key: append (passing [`Ticket::keyed`] to the sequencer), then call
    /// [`Ticket::finish`].
    Fresh(Ticket),
    /// The key was used with these entries and these indices were assigned.
    Replay(Range<u64>),
}

/// The right to complete a key's first request.
#[derive(Debug)]
pub struct Ticket {
    keyed: Keyed,
    outcome: watch::Sender<Outcome>,
}

impl Ticket {
    /// What the committer journals for this request.
    pub fn keyed(&self) -> Keyed {
        self.keyed
    }

    /// Records the result of the first request: its indices, or `None` if it failed (the
    /// key is then free again). The committer has already remembered a committed request's
    /// record; this only settles the requests waiting for it.
    pub fn finish(self, cache: &Idempotency, indices: Option<Range<u64>>) {
        let mut inner = cache.lock();
        inner.pending.remove(&self.keyed.id);
        match indices {
            Some(range) => {
                if inner.store.get(&self.keyed.id).is_none() {
                    let record = Record {
                        id: self.keyed.id,
                        fingerprint: self.keyed.fingerprint,
                        first: range.start,
                        count: u32::try_from(range.end.saturating_sub(range.start))
                            .unwrap_or(u32::MAX),
                        created_ms: unix_ms(),
                    };
                    cache.insert(&mut inner, record);
                }
                self.outcome.send_replace(Outcome::Done(range));
            }
            None => {
                self.outcome.send_replace(Outcome::Failed);
            }
        }
    }
}

/// What [`Idempotency::open`] made of the journal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// Records whose entries are in the log at their indices (for records requests: the
    /// records with the journaled nonces), now remembered.
    pub kept: u64,
    /// Records older than the window.
    pub expired: u64,
    /// Records whose commit never landed (indices beyond the log, or other entries there).
    pub not_landed: u64,
    /// Records whose entries could not be read back (logged).
    pub unreadable: u64,
    /// Records with a bad checksum.
    pub damaged: u64,
}

/// The store of keys.
pub struct Idempotency {
    inner: Mutex<Inner>,
    window: Duration,
    budget: usize,
}

impl std::fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idempotency")
            .field("window", &self.window)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

/// Why a claim was refused (answered as `invalid_parameter`, `idempotency_conflict` or
/// `timeout`; the mapping to responses is in `crate::error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimError {
    /// The header value is not 1 to 255 visible ASCII characters.
    #[error("must be 1 to {MAX_KEY_LEN} visible ASCII characters")]
    BadKey,
    /// The key was used in this scope with other entries.
    #[error("idempotency key {0:?} was already used with other entries")]
    Conflict(String),
    /// The first request with this key did not finish in time.
    #[error("the first request with this key did not finish in time")]
    Timeout,
}

/// Checks a header value: 1 to 255 visible ASCII characters.
///
/// # Errors
/// [`ClaimError::BadKey`] otherwise.
pub fn validate_key(value: &[u8]) -> Result<String, ClaimError> {
    if value.is_empty() || value.len() > MAX_KEY_LEN || !value.iter().all(|b| b.is_ascii_graphic())
    {
        return Err(ClaimError::BadKey);
    }
    Ok(String::from_utf8_lossy(value).into_owned())
}

impl Idempotency {
    /// A memory-only store remembering keys for `window`, within `budget` bytes (at least
    /// [`MIN_BUDGET`]).
    pub fn new(window: Duration, budget: usize) -> Self {
        let budget = budget.max(MIN_BUDGET);
        Idempotency {
            inner: Mutex::new(Inner {
                store: Store::new(max_records(budget)),
                pending: HashMap::new(),
            }),
            window,
            budget,
        }
    }

    /// Opens the journal at `path` (creating it) and rebuilds the store from it: a record is
    /// kept only if it is within the window and the log holds exactly its entries at its
    /// indices (they are read back and fingerprinted: raw entries by their digest, records by
    /// their nonces, see [`Fingerprint`]); the others belong to commits that never landed, or
    /// have expired. Damaged records and a torn tail are skipped.
    ///
    /// # Errors
    /// [`JournalError`] if the journal cannot be opened, read or is not a journal.
    pub fn open(
        path: &Path,
        window: Duration,
        budget: usize,
        ledger: &Ledger,
    ) -> Result<(Self, Journal, Restored), JournalError> {
        let store = Idempotency::new(window, budget);
        let (journal, parsed) = Journal::open(path)?;
        let mut restored = Restored {
            damaged: parsed.damaged,
            ..Restored::default()
        };
        let now = unix_ms();
        let window_ms = store.window_ms();
        let size = ledger.tree_head().size;
        let mut bundles = BundleCache::default();
        {
            let mut inner = store.lock();
            for record in parsed.records {
                if now.saturating_sub(record.created_ms) > window_ms {
                    restored.expired += 1;
                    continue;
                }
                let range = record.indices();
                if range.end > size {
                    restored.not_landed += 1;
                    continue;
                }
                match bundles.entries(ledger, size, range) {
                    Ok(leaves) if landed(&leaves, &record.fingerprint) => {
                        store.insert(&mut inner, record);
                        restored.kept += 1;
                    }
                    Ok(_) => restored.not_landed += 1,
                    Err(err) => {
                        tracing::warn!(error = %err, first = record.first, count = record.count,
                            "cannot read back the entries of an idempotency record; forgetting it");
                        restored.unreadable += 1;
                    }
                }
            }
        }
        Ok((store, journal, restored))
    }

    fn window_ms(&self) -> u64 {
        u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn insert(&self, inner: &mut Inner, record: Record) {
        if inner.store.insert(record) {
            metrics::counter!("veritrail_idempotency_evicted_total").increment(1);
        }
    }

    /// The configured budget in bytes.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// The bytes the remembered keys may occupy (see [`max_records`]); never above
    /// [`Idempotency::budget`].
    pub fn accounted_bytes(&self) -> usize {
        self.lock().store.accounted_bytes()
    }

    /// Keys remembered (committed outcomes, within the window or not yet swept).
    pub fn len(&self) -> usize {
        self.lock().store.index.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Remembers committed outcomes (the committer calls this before answering).
    pub fn remember(&self, records: &[Record]) {
        let mut inner = self.lock();
        inner.store.expire(unix_ms(), self.window_ms());
        for record in records {
            self.insert(&mut inner, *record);
        }
    }

    /// The remembered outcomes within the window, oldest first: what a compacted journal
    /// holds.
    pub fn live_records(&self) -> Vec<Record> {
        self.lock().store.live(unix_ms(), self.window_ms())
    }

    /// Claims `key` in `scope` for a request identified by `fingerprint` (what makes two
    /// requests the same: for appends, the entries, not the encoding of the body; for
    /// records, the body), waiting (up to `timeout`) if another request with the same key is
    /// in flight.
    ///
    /// # Errors
    /// [`ClaimError::Conflict`] if the key was used in this scope with another
    /// fingerprint; [`ClaimError::Timeout`] if the first request did not finish in time.
    pub async fn claim(
        &self,
        scope: &Scope,
        key: String,
        fingerprint: Fingerprint,
        timeout: Duration,
    ) -> Result<Claim, ClaimError> {
        let id = KeyId::new(scope, &key);
        let journaled = fingerprint.to_bytes();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut waiting = {
                let mut inner = self.lock();
                let now = unix_ms();
                let window_ms = self.window_ms();
                inner.store.expire(now, window_ms);
                if let Some(record) = inner
                    .store
                    .get(&id)
                    .filter(|r| now.saturating_sub(r.created_ms) <= window_ms)
                {
                    if !fingerprint.same_request(&record.fingerprint) {
                        return Err(ClaimError::Conflict(key));
                    }
                    return Ok(Claim::Replay(record.indices()));
                }
                match inner.pending.get(&id) {
                    Some(pending) if !fingerprint.same_request(&pending.fingerprint) => {
                        return Err(ClaimError::Conflict(key));
                    }
                    Some(pending) => pending.outcome.clone(),
                    None => {
                        let (sender, receiver) = watch::channel(Outcome::Pending);
                        inner.pending.insert(
                            id,
                            Pending {
                                fingerprint: journaled,
                                outcome: receiver,
                            },
                        );
                        return Ok(Claim::Fresh(Ticket {
                            keyed: Keyed {
                                id,
                                fingerprint: journaled,
                            },
                            outcome: sender,
                        }));
                    }
                }
            };
            let settled =
                tokio::time::timeout_at(deadline, waiting.wait_for(|o| *o != Outcome::Pending))
                    .await;
            match settled {
                Err(_) => return Err(ClaimError::Timeout),
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
                        .pending
                        .get(&id)
                        .is_some_and(|p| p.outcome.has_changed().is_err())
                    {
                        inner.pending.remove(&id);
                    }
                }
            }
        }
    }
}

/// Why a record's entries could not be read back.
#[derive(Debug, thiserror::Error)]
enum ReadBack {
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] veritrail_ledger::Error),
    /// A stored bundle does not decode.
    #[error("entry bundle {bundle} does not decode: {source}")]
    Malformed {
        /// The bundle's index.
        bundle: u64,
        /// The decoding error.
        #[source]
        source: veritrail_ledger::bundle::BundleError,
    },
    /// A stored bundle holds fewer entries than the tree size says.
    #[error("entry bundle {bundle} is short")]
    Short {
        /// The bundle's index.
        bundle: u64,
    },
}

/// Reads entries back for [`Idempotency::open`], one entry bundle at a time.
#[derive(Default)]
struct BundleCache {
    bundle: Option<(u64, Vec<Bytes>)>,
}

impl BundleCache {
    /// The entries at `range` (all below `size`).
    fn entries(
        &mut self,
        ledger: &Ledger,
        size: u64,
        range: Range<u64>,
    ) -> Result<Vec<Bytes>, ReadBack> {
        let per_bundle = BUNDLE_ENTRIES as u64;
        let mut entries = Vec::with_capacity(usize::try_from(range.end - range.start).unwrap_or(0));
        for index in range {
            let bundle = index / per_bundle;
            if self.bundle.as_ref().is_none_or(|(b, _)| *b != bundle) {
                // `index < size`, so the bundle holds at least one entry.
                let width = (size - bundle * per_bundle).min(per_bundle);
                let bytes = ledger.entry_bundle(bundle, u16::try_from(width).unwrap_or(256))?;
                let decoded = decode_bundle(&bytes, BUNDLE_ENTRIES)
                    .map_err(|source| ReadBack::Malformed { bundle, source })?
                    .into_iter()
                    .map(Bytes::copy_from_slice)
                    .collect();
                self.bundle = Some((bundle, decoded));
            }
            let entry = self
                .bundle
                .as_ref()
                .and_then(|(_, entries)| entries.get(usize::try_from(index % per_bundle).ok()?))
                .cloned()
                .ok_or(ReadBack::Short { bundle })?;
            entries.push(entry);
        }
        Ok(entries)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests;

impl From<ClaimError> for crate::error::ApiError {
    fn from(err: ClaimError) -> Self {
        use ClaimError as C;
        match err {
            C::BadKey => crate::error::ApiError::param(
                veritrail_api::media::IDEMPOTENCY_KEY_HEADER,
                C::BadKey.to_string(),
            ),
            C::Conflict(key) => crate::error::ApiError::IdempotencyConflict(key),
            C::Timeout => crate::error::ApiError::Timeout,
        }
    }
}
