//! Server configuration: batching, publication, limits and access, with the defaults of
//! `veritrail serve`.

use std::path::PathBuf;
use std::time::Duration;

/// How appends are gathered into one durable commit (group commit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchConfig {
    /// Most entries in one commit.
    pub max_entries: usize,
    /// Most entry bytes in one commit.
    pub max_bytes: usize,
    /// Longest a request waits for others to join its commit. Zero still batches whatever
    /// queued up while the previous commit was being written.
    pub max_delay: Duration,
    /// Most entries waiting for a commit; beyond it appends get 503 with `Retry-After`.
    pub queue_entries: usize,
    /// Most entry bytes waiting for a commit; beyond it appends get 503 with `Retry-After`.
    pub queue_bytes: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_entries: 8192,
            max_bytes: 8 << 20,
            max_delay: Duration::ZERO,
            queue_entries: 65_536,
            queue_bytes: 64 << 20,
        }
    }
}

/// When checkpoints are signed and published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishConfig {
    /// Least time between two signed checkpoints of different sizes.
    pub interval: Duration,
    /// Most time between two signed checkpoints, even of the same size.
    pub republish: Duration,
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            interval: Duration::from_millis(100),
            republish: Duration::from_secs(10),
        }
    }
}

/// Request limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Largest request body: a batch of entries with their length prefixes.
    pub max_body_bytes: usize,
    /// Most entries in one batch request.
    pub max_batch_entries: usize,
    /// Longest a request may take, body included, before it gets a timeout response.
    pub request_timeout: Duration,
    /// How long an `Idempotency-Key` is remembered.
    pub idempotency_window: Duration,
    /// Memory for remembered idempotency keys, in bytes (the oldest are forgotten first when
    /// it is full); see [`crate::idempotency::max_records`] for how many keys it holds.
    pub idempotency_budget: usize,
    /// The idempotency journal (`<data>/idempotency.journal` for `veritrail serve`): keys
    /// survive a restart only with one. `None` remembers keys in memory only.
    pub idempotency_journal: Option<PathBuf>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: veritrail_api::limits::DEFAULT_MAX_BODY_BYTES,
            max_batch_entries: veritrail_api::limits::MAX_BATCH_ENTRIES,
            request_timeout: Duration::from_secs(30),
            idempotency_window: Duration::from_secs(24 * 3600),
            idempotency_budget: crate::idempotency::DEFAULT_BUDGET,
            idempotency_journal: None,
        }
    }
}

/// Everything the server needs besides the ledger and the tokens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerConfig {
    /// Group commit.
    pub batch: BatchConfig,
    /// Checkpoint publication.
    pub publish: PublishConfig,
    /// Request limits.
    pub limits: LimitsConfig,
    /// Serve entries and entry bundles without a token.
    pub public_read: bool,
    /// Accept every request without a token (local demos and tests; loopback only).
    pub no_auth: bool,
}
