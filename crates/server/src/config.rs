//! Server configuration: batching, publication, limits and access, with the defaults of
//! `veritrail serve`.

use std::path::PathBuf;
use std::time::Duration;

/// Default memory budget of the idempotency store: 64 MiB, which holds 458,752 keys of any
/// length (see `crate::idempotency::max_records`).
pub const DEFAULT_IDEMPOTENCY_BUDGET: usize = 64 << 20;
/// Smallest idempotency budget accepted: 64 KiB still holds several hundred keys.
pub const MIN_IDEMPOTENCY_BUDGET: usize = 64 << 10;
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
///
/// A commit is published as soon as it lands if the last checkpoint was signed at least
/// `interval` ago, otherwise as soon as it is that old: `wait=published` waits at most about
/// `interval` plus one signing (~1 ms).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishConfig {
    /// Least time between two signed checkpoints of different sizes. Default 20 ms: a
    /// `wait=published` append waits ~20 ms at most beyond its commit, and a busy log signs at
    /// most 50 checkpoints a second (each one Ed25519 signature, a consistency proof from
    /// cached tiles and one durable write of ~200 bytes).
    pub interval: Duration,
    /// Most time between two signed checkpoints, even of the same size.
    pub republish: Duration,
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            interval: Duration::from_millis(20),
            republish: Duration::from_secs(10),
        }
    }
}

impl PublishConfig {
    /// Shortest accepted `interval`: 1 ms. Zero would sign after every commit, one durable
    /// write per commit beside the commit's own.
    pub const MIN_INTERVAL: Duration = Duration::from_millis(1);
    /// Longest accepted `interval`: 60 s. Longer makes every `wait=published` append time
    /// out (the request timeout defaults to 30 s) and readers see an old tree.
    pub const MAX_INTERVAL: Duration = Duration::from_secs(60);
    /// Shortest accepted `republish`: 1 s. It re-signs an unchanged tree; shorter only writes
    /// the same note again and again.
    pub const MIN_REPUBLISH: Duration = Duration::from_secs(1);
    /// Longest accepted `republish`: 24 h. Clients and witnesses judge a log's liveness by
    /// its checkpoint's freshness; a day-old one looks like a dead log.
    pub const MAX_REPUBLISH: Duration = Duration::from_secs(24 * 3600);

    /// Checks the settings are within the accepted ranges and `interval <= republish`.
    ///
    /// # Errors
    /// [`ConfigError::CheckpointInterval`], [`ConfigError::CheckpointRepublish`] or
    /// [`ConfigError::RepublishBelowInterval`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(Self::MIN_INTERVAL..=Self::MAX_INTERVAL).contains(&self.interval) {
            return Err(ConfigError::CheckpointInterval {
                got: self.interval,
                min: Self::MIN_INTERVAL,
                max: Self::MAX_INTERVAL,
            });
        }
        if !(Self::MIN_REPUBLISH..=Self::MAX_REPUBLISH).contains(&self.republish) {
            return Err(ConfigError::CheckpointRepublish {
                got: self.republish,
                min: Self::MIN_REPUBLISH,
                max: Self::MAX_REPUBLISH,
            });
        }
        if self.republish < self.interval {
            return Err(ConfigError::RepublishBelowInterval {
                interval: self.interval,
                republish: self.republish,
            });
        }
        Ok(())
    }

    /// The settings brought into the accepted ranges (what the publisher runs with if it is
    /// handed settings [`PublishConfig::validate`] refuses, so it can neither spin nor
    /// overflow a deadline).
    pub fn clamped(&self) -> PublishConfig {
        let interval = self.interval.clamp(Self::MIN_INTERVAL, Self::MAX_INTERVAL);
        let republish = self
            .republish
            .clamp(Self::MIN_REPUBLISH, Self::MAX_REPUBLISH)
            .max(interval);
        PublishConfig {
            interval,
            republish,
        }
    }
}

/// A configuration value the server refuses to start with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The checkpoint interval is outside its accepted range.
    #[error("the checkpoint interval {got:?} is out of range: it must be from {min:?} to {max:?}")]
    CheckpointInterval {
        /// The configured interval.
        got: Duration,
        /// [`PublishConfig::MIN_INTERVAL`].
        min: Duration,
        /// [`PublishConfig::MAX_INTERVAL`].
        max: Duration,
    },
    /// The checkpoint republish period is outside its accepted range.
    #[error(
        "the checkpoint republish period {got:?} is out of range: it must be from {min:?} to {max:?}"
    )]
    CheckpointRepublish {
        /// The configured period.
        got: Duration,
        /// [`PublishConfig::MIN_REPUBLISH`].
        min: Duration,
        /// [`PublishConfig::MAX_REPUBLISH`].
        max: Duration,
    },
    /// The medical-record-number pattern is not a valid regex.
    #[error("--mrn-pattern: {0}")]
    MrnPattern(String),
    /// A setting outside the range the server runs with.
    #[error("{setting} = {got} is out of range: it must be from {min} to {max}")]
    OutOfRange {
        /// The setting's name, as the `veritrail serve` flag says it.
        setting: &'static str,
        /// The configured value.
        got: String,
        /// Smallest accepted value.
        min: String,
        /// Largest accepted value.
        max: String,
    },
    /// The republish period is shorter than the interval.
    #[error(
        "the checkpoint republish period {republish:?} is shorter than the checkpoint interval {interval:?}"
    )]
    RepublishBelowInterval {
        /// The configured interval.
        interval: Duration,
        /// The configured republish period.
        republish: Duration,
    },
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
            idempotency_budget: DEFAULT_IDEMPOTENCY_BUDGET,
            idempotency_journal: None,
        }
    }
}

/// How connections are accepted, bounded and closed (see `docs/operations.md`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionConfig {
    /// Time a connection has to deliver a complete request head, counted from when it opens
    /// or from when its previous response was sent. It closes zero-byte, partial-head,
    /// byte-at-a-time and idle keep-alive connections alike.
    pub header_timeout: Duration,
    /// Most connections served at once. `None`: the process's open-files limit (raised to
    /// its hard limit at start) minus [`ConnectionConfig::RESERVED_FILES`], at most
    /// [`ConnectionConfig::MAX_CONNECTIONS`]. At the cap, a new connection closes the
    /// connection that has been idle the longest, so a flood of idle connections never keeps
    /// a real request out.
    pub max_connections: Option<usize>,
    /// Requests served on one connection before it is closed (the last response carries
    /// `Connection: close`).
    pub max_requests_per_connection: u64,
    /// Largest request header section (names, values and the request line), in bytes; beyond
    /// it the answer is 431 `headers_too_large`.
    pub max_header_bytes: usize,
}

impl ConnectionConfig {
    /// Files kept free for the store, the journal and the listener when the cap is derived
    /// from the open-files limit.
    pub const RESERVED_FILES: u64 = 256;
    /// Highest connection cap, derived or configured.
    pub const MAX_CONNECTIONS: usize = 1 << 20;
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            header_timeout: Duration::from_secs(10),
            max_connections: None,
            max_requests_per_connection: 10_000,
            max_header_bytes: 16 << 10,
        }
    }
}

/// How agent records are treated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordsConfig {
    /// What a secret or identifier found in a record's metadata does: redacted (default) or
    /// refused with 422.
    pub scrub: veritrail_records::ScrubMode,
    /// The data directory holding the encrypted payload store (`<dir>/payloads/`) and its
    /// master key; `None`: records with payloads are refused (422).
    pub payload_dir: Option<PathBuf>,
    /// The medical-record-number pattern (a regex) of the scrubber.
    pub mrn_pattern: String,
    /// The classification registry file (TOML, [`veritrail_records::classify`]), reloaded on
    /// `SIGHUP`; `None`: records keep the classification their agents gave.
    pub classification: Option<PathBuf>,
    /// The data directory holding the record indexes (`record-index.redb`) for
    /// `GET /v1/records`; `None`: no indexes, and queries answer 404.
    pub index_dir: Option<PathBuf>,
    /// Whether every read of records, payloads, queries and conversations appends a
    /// `data_accessed` record naming the reader (default: yes).
    pub audit_reads: bool,
    /// Whether `POST /v1/traces` keeps the spans that are not GenAI spans, each as a raw
    /// entry (its OTLP JSON), instead of ignoring them (default: ignored).
    pub otlp_keep_other_spans: bool,
}

impl Default for RecordsConfig {
    fn default() -> Self {
        RecordsConfig {
            scrub: veritrail_records::ScrubMode::Redact,
            payload_dir: None,
            mrn_pattern: veritrail_records::scrub::DEFAULT_MRN_PATTERN.to_owned(),
            classification: None,
            index_dir: None,
            audit_reads: true,
            otlp_keep_other_spans: false,
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
    /// Connection handling.
    pub connections: ConnectionConfig,
    /// Agent records.
    pub records: RecordsConfig,
    /// Serve entries and entry bundles without a token.
    pub public_read: bool,
    /// Accept every request without a token (local demos and tests; loopback only).
    pub no_auth: bool,
    /// Witnesses to ask for cosignatures, and the quorum publication needs (none: publish
    /// the log's own signature alone).
    pub witnesses: Option<crate::witnessing::WitnessConfig>,
    /// Where to mirror the log's tiles and checkpoint ([`crate::mirror`]): a directory or an
    /// `s3://`, `gs://` or `az://` URL; none: no mirror.
    pub mirror: Option<String>,
    /// Archival of expired bundles ([`crate::archive`]); none: nothing is archived or purged.
    pub archive: Option<ArchiveConfig>,
    /// Where archives are read from to re-serve purged bundles (`serve --archive`); none:
    /// reads of purged entries answer 410 `archived`.
    pub archive_source: Option<String>,
}

/// The archival job of a running server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveConfig {
    /// Where archives go: a directory or an `s3://`, `gs://` or `az://` URL.
    pub target: String,
    /// The retention policy.
    pub policy: veritrail_records::retention::RetentionPolicy,
    /// Time between two runs of the job (the first runs this long after the start);
    /// `None`: only on `POST /v1/admin/archive`.
    pub interval: Option<std::time::Duration>,
    /// Most bundles per archive.
    pub max_bundles: u64,
}

/// Checks `got` is within `min..=max`, naming `setting` otherwise.
fn in_range<T: PartialOrd + Copy + std::fmt::Debug>(
    setting: &'static str,
    got: T,
    min: T,
    max: T,
) -> Result<(), ConfigError> {
    if (min..=max).contains(&got) {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange {
            setting,
            got: format!("{got:?}"),
            min: format!("{min:?}"),
            max: format!("{max:?}"),
        })
    }
}

impl ServerConfig {
    /// Checks every setting is within the range the server runs with: zero or absurd
    /// intervals, queue sizes and limits are refused before anything starts.
    ///
    /// # Errors
    /// The [`ConfigError`] of the first setting refused.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.publish.validate()?;
        let b = &self.batch;
        in_range("batch-max-entries", b.max_entries, 1, 1 << 20)?;
        in_range("batch-max-bytes", b.max_bytes, 1 << 10, 1 << 30)?;
        in_range(
            "batch-max-delay",
            b.max_delay,
            Duration::ZERO,
            Duration::from_secs(1),
        )?;
        in_range("queue-max-entries", b.queue_entries, 1, 1 << 24)?;
        in_range("queue-max-bytes", b.queue_bytes, 1 << 10, 1 << 34)?;
        let l = &self.limits;
        in_range("max-body-bytes", l.max_body_bytes, 1 << 10, 1 << 30)?;
        in_range(
            "max-batch-entries",
            l.max_batch_entries,
            1,
            veritrail_api::limits::MAX_BATCH_ENTRIES,
        )?;
        in_range(
            "request-timeout",
            l.request_timeout,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        )?;
        in_range(
            "idempotency-window",
            l.idempotency_window,
            Duration::from_secs(1),
            Duration::from_secs(30 * 24 * 3600),
        )?;
        in_range(
            "idempotency-budget",
            l.idempotency_budget,
            MIN_IDEMPOTENCY_BUDGET,
            1 << 34,
        )?;
        let c = &self.connections;
        in_range(
            "header-timeout",
            c.header_timeout,
            Duration::from_millis(100),
            Duration::from_secs(600),
        )?;
        if let Some(max) = c.max_connections {
            in_range("max-connections", max, 1, ConnectionConfig::MAX_CONNECTIONS)?;
        }
        in_range(
            "max-requests-per-connection",
            c.max_requests_per_connection,
            1,
            u64::MAX,
        )?;
        in_range("max-header-bytes", c.max_header_bytes, 1 << 10, 1 << 20)?;
        veritrail_records::Scrubber::new(&self.records.mrn_pattern)
            .map_err(|e| ConfigError::MrnPattern(e.to_string()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(interval_ms: u64, republish_ms: u64) -> PublishConfig {
        PublishConfig {
            interval: Duration::from_millis(interval_ms),
            republish: Duration::from_millis(republish_ms),
        }
    }

    #[test]
    fn defaults_are_valid_and_publish_within_tens_of_milliseconds() {
        assert_eq!(ServerConfig::default().validate(), Ok(()));
        assert!(PublishConfig::default().interval <= Duration::from_millis(25));
        assert_eq!(PublishConfig::default().clamped(), PublishConfig::default());
    }

    #[test]
    fn refuses_zero_and_absurd_sizes_naming_the_setting() {
        let mut zero_queue = ServerConfig::default();
        zero_queue.batch.queue_entries = 0;
        let mut huge_body = ServerConfig::default();
        huge_body.limits.max_body_bytes = usize::MAX;
        let mut no_timeout = ServerConfig::default();
        no_timeout.limits.request_timeout = Duration::ZERO;
        let mut no_connections = ServerConfig::default();
        no_connections.connections.max_connections = Some(0);
        let mut slow_heads = ServerConfig::default();
        slow_heads.connections.header_timeout = Duration::MAX;
        for (config, setting) in [
            (zero_queue, "queue-max-entries"),
            (huge_body, "max-body-bytes"),
            (no_timeout, "request-timeout"),
            (no_connections, "max-connections"),
            (slow_heads, "header-timeout"),
        ] {
            match config.validate() {
                Err(ConfigError::OutOfRange { setting: got, .. }) => assert_eq!(got, setting),
                other => panic!("{setting}: {other:?}"),
            }
        }
    }

    #[test]
    fn refuses_settings_that_spin_or_stall() {
        let interval = |got| ConfigError::CheckpointInterval {
            got,
            min: PublishConfig::MIN_INTERVAL,
            max: PublishConfig::MAX_INTERVAL,
        };
        let republish = |got| ConfigError::CheckpointRepublish {
            got,
            min: PublishConfig::MIN_REPUBLISH,
            max: PublishConfig::MAX_REPUBLISH,
        };
        let cases = [
            (publish(0, 10_000), interval(Duration::ZERO)),
            (
                publish(60_001, 3_600_000),
                interval(Duration::from_millis(60_001)),
            ),
            (publish(20, 0), republish(Duration::ZERO)),
            (publish(20, 999), republish(Duration::from_millis(999))),
            (
                publish(20, 86_400_001),
                republish(Duration::from_millis(86_400_001)),
            ),
            (
                publish(30_000, 10_000),
                ConfigError::RepublishBelowInterval {
                    interval: Duration::from_secs(30),
                    republish: Duration::from_secs(10),
                },
            ),
        ];
        for (config, want) in cases {
            assert_eq!(config.validate(), Err(want.clone()), "{config:?}");
            assert!(want.to_string().contains("checkpoint"), "{want}");
            // What the publisher would run with instead is valid.
            assert_eq!(config.clamped().validate(), Ok(()), "{config:?}");
        }
        let absurd = PublishConfig {
            interval: Duration::MAX,
            republish: Duration::MAX,
        };
        assert_eq!(
            absurd.validate(),
            Err(interval(Duration::MAX)),
            "no overflow, a clear error"
        );
        assert_eq!(absurd.clamped(), publish(60_000, 86_400_000));
        assert_eq!(publish(1, 1000).validate(), Ok(()));
    }
}
