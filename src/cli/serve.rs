//! `veritrail serve`: the HTTP server on the embedded store.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use veritrail_server::auth::{Auth, Role, TokenFile, generate_token, token_entry};
use veritrail_server::config::{
    BatchConfig, ConnectionConfig, LimitsConfig, PublishConfig, RecordsConfig,
};
use veritrail_server::{Server, ServerConfig};

use crate::cli::common::datadir::DataArgs;
use crate::cli::common::duration::parse_duration;
use crate::cli::common::error::CliError;
use crate::cli::common::io::write_private_key;
use crate::cli::common::runtime::{bind, init_logging, runtime, shutdown_signal};

/// Token file generated in the data directory on first start.
const AUTH_FILE: &str = "auth.toml";
/// The generated admin token, in plain text, readable only by the owner.
const ADMIN_TOKEN_FILE: &str = "admin.token";

/// Arguments of `veritrail serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Address to listen on. Use port 0 for any free port.
    #[arg(long, default_value = "127.0.0.1:7800")]
    listen: SocketAddr,
    /// Token file (TOML, SHA-256 hashes). Default: `<data>/auth.toml`, created on first start
    /// with one admin token written to `<data>/admin.token`.
    #[arg(long)]
    auth: Option<PathBuf>,
    /// Accept every request without a token. Local demos and tests only: refused unless
    /// --listen is a loopback address.
    #[arg(long)]
    no_auth: bool,
    /// Serve entries and entry bundles without a token.
    #[arg(long)]
    public_read: bool,
    /// Most entries in one durable commit.
    #[arg(long, default_value_t = BatchConfig::default().max_entries)]
    batch_max_entries: usize,
    /// Most entry bytes in one durable commit.
    #[arg(long, default_value_t = BatchConfig::default().max_bytes)]
    batch_max_bytes: usize,
    /// Longest an append waits for others to share its commit (e.g. 1ms, 0ms).
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    batch_max_delay: Duration,
    /// Most entries queued for commit; beyond it appends get 503 + Retry-After.
    #[arg(long, default_value_t = BatchConfig::default().queue_entries)]
    queue_max_entries: usize,
    /// Most entry bytes queued for commit.
    #[arg(long, default_value_t = BatchConfig::default().queue_bytes)]
    queue_max_bytes: usize,
    /// Least time between two checkpoints of different sizes: a commit is published as soon
    /// as it lands if the last checkpoint is this old (1ms to 60s).
    #[arg(long, default_value = "20ms", value_parser = parse_duration)]
    checkpoint_interval: Duration,
    /// Most time between two checkpoints, even of the same size (1s to 24h, at least
    /// --checkpoint-interval).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    checkpoint_republish: Duration,
    /// Largest request body in bytes (a batch with its length prefixes).
    #[arg(long, default_value_t = LimitsConfig::default().max_body_bytes)]
    max_body_bytes: usize,
    /// Longest a request may take, body and `wait=published` included.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    request_timeout: Duration,
    /// How long an Idempotency-Key is remembered.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    idempotency_window: Duration,
    /// Memory for remembered Idempotency-Keys (e.g. 64MiB, 512KiB, 1GiB, or bytes); the
    /// oldest keys are forgotten first when it is full. 64 MiB holds 458,752 keys.
    #[arg(long, default_value = "64MiB", value_parser = parse_budget)]
    idempotency_budget: usize,
    /// Time a connection has to send a complete request head, from when it opens or its
    /// previous response was sent; closes slow and idle keep-alive connections (100ms to 10m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    header_timeout: Duration,
    /// Most connections served at once (default: the open-files limit, raised to its hard
    /// limit at start, minus 256). At the cap the longest-idle connection is closed to make
    /// room for a new one.
    #[arg(long)]
    max_connections: Option<usize>,
    /// Requests served on one connection before it is closed.
    #[arg(long, default_value_t = ConnectionConfig::default().max_requests_per_connection)]
    max_requests_per_connection: u64,
    /// Largest request target and largest header section, in bytes (1 KiB to 1 MiB).
    #[arg(long, default_value_t = ConnectionConfig::default().max_header_bytes)]
    max_header_bytes: usize,
    /// A secret or identifier in a record's metadata (details, resource.uri): `redact`
    /// replaces it with `[REDACTED:<kind>]` and lists the kind in the record's `scrubbed`;
    /// `reject` refuses the record with 422.
    #[arg(long, default_value = "redact", value_parser = parse_scrub)]
    scrub: veritrail_server::ScrubMode,
    /// The medical-record-number pattern of the scrubber (a regex).
    #[arg(long, default_value = veritrail_server::DEFAULT_MRN_PATTERN)]
    mrn_pattern: String,
    /// Classification registry (TOML): the classification and compliance domains of tools,
    /// resource types and data sources, merged into every record. Reloaded on SIGHUP, with
    /// the token file.
    #[arg(long)]
    classification: Option<PathBuf>,
    /// Do not append a `data_accessed` record for each read of records, payloads, queries
    /// and conversations (HIPAA and SOC 2 expect these reads recorded; off only for tests
    /// and benchmarks).
    #[arg(long)]
    no_audit_reads: bool,
    /// Keep no record indexes: `GET /v1/records` and `/v1/conversations` answer 404 (for
    /// measuring appends without indexing).
    #[arg(long)]
    no_record_index: bool,
    /// Keep the spans `POST /v1/traces` gets that are not GenAI spans, each as a raw entry
    /// (the span with its resource and scope, in OTLP JSON), instead of ignoring them. Raw
    /// entries are on the tree for good: never erasable, never purged by a retention policy
    /// before their bundle; only for spans that carry no personal data.
    #[arg(long)]
    otlp_keep_other_spans: bool,
    /// A C2SP tlog-policy file: after signing a checkpoint the server asks its witnesses (the
    /// `witness` lines with a URL) to cosign it, and publishes it once the `quorum` is met.
    /// The policy must list this log's key (`log <verifier key>`).
    #[arg(long)]
    witness_policy: Option<PathBuf>,
    /// With --witness-policy: publish a checkpoint without the quorum (with the cosignatures
    /// that came) instead of not at all; the metrics and logs say so.
    #[arg(long, requires = "witness_policy")]
    witness_fail_open: bool,
    /// With --witness-policy: how long one request to one witness may take (three attempts
    /// per checkpoint).
    #[arg(long, default_value = "5s", value_parser = parse_duration, requires = "witness_policy")]
    witness_timeout: std::time::Duration,
    /// Publish the log's read path (checkpoint, hash tiles, entry bundles) in the C2SP
    /// tlog-tiles layout to a directory or a bucket (`s3://bucket/prefix`, configured from the
    /// `AWS_*` environment; `gs://`, `az://` likewise), tiles first and the checkpoint last,
    /// so that a static file server, bucket website or CDN serves the log without this server.
    /// Entry bundles are published too: the location's own access control decides who reads
    /// them.
    #[arg(long, value_name = "DIR|URL")]
    mirror: Option<String>,
    /// Archive what has expired to a directory or a bucket (`s3://bucket/prefix`, …), verify
    /// each archive, then purge it from this server (hash tiles stay, so every proof still
    /// works): every --archive-interval, and on `POST /v1/admin/archive`
    /// (`veritrail archive --url`). Legal holds are honoured.
    #[arg(long, value_name = "DIR|URL")]
    archive_to: Option<String>,
    /// Re-serve purged bundles from the archives at this location (the --archive-to of the
    /// runs that purged them, or a copy): reads of purged entries and bundles are answered
    /// from there, each entry checked against the log's own leaf hash first, instead of 410.
    #[arg(long, value_name = "DIR|URL")]
    archive: Option<String>,
    /// With --archive-to: the retention policy (TOML, docs/operations.md#retention); default:
    /// HIPAA 6y, SOC 2 1y, financial 7y, PCI DSS 1y, EU AI Act 6mo, everything else 1y.
    #[arg(long, value_name = "FILE", requires = "archive_to")]
    retention_policy: Option<PathBuf>,
    /// With --archive-to: time between two archival runs (0s: only on request).
    #[arg(long, default_value = "24h", value_parser = parse_duration, requires = "archive_to")]
    archive_interval: std::time::Duration,
    /// Log format: text or json.
    #[arg(long, default_value = "text")]
    log_format: String,
}

/// Largest `--idempotency-budget`: 16 GiB (about 120 million keys) is far beyond any window's
/// worth of keyed appends; a larger value is a typo.
const MAX_BUDGET: u64 = 16 << 30;

/// Parses a byte size: ASCII digits, then optionally `KiB`, `MiB` or `GiB`, between 64 KiB
/// and 16 GiB. The multiplication is checked. This does not panic.
fn parse_budget(text: &str) -> Result<usize, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let hint = "\nhint: write a number of bytes, optionally with KiB, MiB or GiB, e.g. 64MiB";
    let scale: u64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(format!("{text:?}: the unit must be KiB, MiB or GiB{hint}")),
    };
    if number.is_empty() || (number.len() > 1 && number.starts_with('0')) {
        return Err(format!(
            "{text:?}: expected a number without leading zeros{hint}"
        ));
    }
    let min = veritrail_server::idempotency::MIN_BUDGET as u64;
    let bytes = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|b| (min..=MAX_BUDGET).contains(b))
        .ok_or_else(|| format!("{text:?}: the budget must be between 64KiB and 16GiB{hint}"))?;
    usize::try_from(bytes).map_err(|_| format!("{text:?} does not fit this machine's memory"))
}

/// Parses `--scrub`.
fn parse_scrub(text: &str) -> Result<veritrail_server::ScrubMode, String> {
    match text {
        "redact" => Ok(veritrail_server::ScrubMode::Redact),
        "reject" => Ok(veritrail_server::ScrubMode::Reject),
        other => Err(format!("{other:?}: use redact or reject")),
    }
}

/// File of the idempotency journal in the data directory.
const IDEMPOTENCY_JOURNAL_FILE: &str = "idempotency.journal";

/// The witness configuration of `--witness-policy`, if given.
fn witness_config(
    args: &ServeArgs,
) -> Result<Option<veritrail_server::witnessing::WitnessConfig>, CliError> {
    let Some(path) = &args.witness_policy else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|source| CliError::Read {
        path: path.clone(),
        source,
    })?;
    let policy = text.parse().map_err(|e| CliError::Usage {
        message: format!("{} is not a witness policy: {e}", path.display()),
        hint: "see docs/witnessing.md for the tlog-policy format".into(),
    })?;
    let mut config = veritrail_server::witnessing::WitnessConfig::new(policy);
    config.fail_open = args.witness_fail_open;
    config.timeout = args.witness_timeout;
    Ok(Some(config))
}

/// The token file `serve` reads (none with `--no-auth`).
fn auth_path(args: &ServeArgs) -> Option<PathBuf> {
    (!args.no_auth).then(|| {
        args.auth
            .clone()
            .unwrap_or_else(|| args.data.data.join(AUTH_FILE))
    })
}

/// Loads the token policy, creating `<data>/auth.toml` and an admin token on first start.
fn load_auth(args: &ServeArgs) -> Result<Auth, CliError> {
    let Some(path) = auth_path(args) else {
        // serve() refused --no-auth off loopback before anything was created.
        eprintln!("warning: --no-auth: every request is accepted without a token");
        return Ok(Auth::disabled());
    };
    if args.auth.is_none() && !path.exists() {
        create_admin_token(&args.data.data, &path)?;
    }
    Auth::load(&path, args.public_read).map_err(|source| CliError::Auth {
        path: path.clone(),
        source: Box::new(source),
    })
}

/// Generates an admin token into `<data>/admin.token` and its hash into `auth_path`, both
/// mode 0600.
fn create_admin_token(data: &Path, auth_path: &Path) -> Result<(), CliError> {
    let token = generate_token().map_err(|source| CliError::Generate {
        what: "an admin token",
        source: Box::new(source),
    })?;
    let file = TokenFile {
        token: vec![token_entry("admin", &token, vec![Role::Admin])],
        oidc: None,
    };
    let text = format!(
        "# Veritrail API tokens: only SHA-256 hashes of the tokens are stored here.\n{}",
        toml::to_string(&file).map_err(|source| CliError::Generate {
            what: "the token file",
            source: Box::new(source),
        })?
    );
    let token_path = data.join(ADMIN_TOKEN_FILE);
    if token_path.exists() {
        return Err(CliError::Usage {
            message: format!("{} exists but {} is missing", token_path.display(), auth_path.display()),
            hint: "restore the token file, or move the old admin.token away so a new admin token is generated".into(),
        });
    }
    write_private_key(&token_path, &token)?;
    write_private_key(auth_path, text.trim_end())?;
    eprintln!(
        "generated an admin token in {} (mode 0600)",
        token_path.display()
    );
    Ok(())
}

/// Runs `veritrail serve` until Ctrl-C or SIGTERM, then drains and publishes a final
/// checkpoint.
///
/// # Errors
/// [`CliError::Usage`] for a refused flag, [`CliError::Listen`], the errors of opening the
/// data directory and the token file, [`CliError::ServerStart`], [`CliError::Serve`].
pub(crate) fn run(args: ServeArgs) -> Result<(), CliError> {
    init_logging(&args.log_format)?;
    let config = ServerConfig {
        batch: BatchConfig {
            max_entries: args.batch_max_entries,
            max_bytes: args.batch_max_bytes,
            max_delay: args.batch_max_delay,
            queue_entries: args.queue_max_entries,
            queue_bytes: args.queue_max_bytes,
        },
        publish: PublishConfig {
            interval: args.checkpoint_interval,
            republish: args.checkpoint_republish,
        },
        limits: LimitsConfig {
            max_body_bytes: args.max_body_bytes,
            request_timeout: args.request_timeout,
            idempotency_window: args.idempotency_window,
            idempotency_budget: args.idempotency_budget,
            idempotency_journal: Some(args.data.data.join(IDEMPOTENCY_JOURNAL_FILE)),
            ..LimitsConfig::default()
        },
        connections: ConnectionConfig {
            header_timeout: args.header_timeout,
            max_connections: args.max_connections,
            max_requests_per_connection: args.max_requests_per_connection,
            max_header_bytes: args.max_header_bytes,
        },
        records: RecordsConfig {
            scrub: args.scrub,
            payload_dir: Some(args.data.data.clone()),
            mrn_pattern: args.mrn_pattern.clone(),
            classification: args.classification.clone(),
            index_dir: (!args.no_record_index).then(|| args.data.data.clone()),
            audit_reads: !args.no_audit_reads,
            otlp_keep_other_spans: args.otlp_keep_other_spans,
        },
        public_read: args.public_read,
        no_auth: args.no_auth,
        witnesses: witness_config(&args)?,
        mirror: args.mirror.clone(),
        archive_source: args.archive.clone(),
        archive: match &args.archive_to {
            None => None,
            Some(target) => Some(veritrail_server::config::ArchiveConfig {
                target: target.clone(),
                policy: crate::cli::common::retention::load_policy(
                    args.retention_policy.as_deref(),
                )?,
                interval: (!args.archive_interval.is_zero()).then_some(args.archive_interval),
                max_bundles: veritrail_server::archive::MAX_ARCHIVE_BUNDLES,
            }),
        },
    };
    // Before anything is created or bound.
    config.validate().map_err(|err| CliError::Usage {
        message: err.to_string(),
        hint: "`veritrail serve --help` gives every setting's range and default".into(),
    })?;
    let runtime = runtime()?;
    if args.no_auth && !args.listen.ip().is_loopback() {
        return Err(CliError::Usage {
            message: format!(
                "--no-auth is refused on the non-loopback address {}",
                args.listen
            ),
            hint: "listen on 127.0.0.1 for demos, or configure tokens with --auth".into(),
        });
    }
    runtime.block_on(async move {
        let (listener, local) = bind(args.listen).await?;
        // Only once the address is ours: create or open the store, key and tokens.
        let ledger = Arc::new(args.data.open()?);
        let auth = load_auth(&args)?;
        let origin = ledger.origin().to_owned();
        let verifier = ledger.verifier().to_string();
        // The public verifier key, for clients (`--log-key <data>/log.vkey`). Derived from
        // the signing key, so it is rewritten on every start; a failure only costs the
        // convenience.
        let vkey_path = args.data.data.join(VERIFIER_KEY_FILE);
        match write_owner_only(&vkey_path, format!("{verifier}\n").as_bytes()) {
            Ok(()) => eprintln!("wrote the verifier key to {}", vkey_path.display()),
            Err(e) => tracing::warn!(path = %vkey_path.display(), error = %e, "cannot write the verifier key file"),
        }
        let tree = ledger.tree_head();
        let server =
            Server::start(ledger, config, auth).map_err(|source| CliError::ServerStart { source })?;
        tokio::spawn(reload_on_hangup(
            server.state().clone(),
            auth_path(&args),
            args.public_read,
        ));
        println!("veritrail listening on http://{local}");
        println!("origin: {origin}");
        println!("verifier key: {verifier}");
        println!("tree size: {}", tree.size);
        tracing::info!(%local, %origin, size = tree.size, "serving");
        server
            .serve(listener, shutdown_signal())
            .await
            .map_err(|source| CliError::Serve { source })?;
        tracing::info!("stopped cleanly");
        Ok(())
    })
}

/// On every `SIGHUP`, reads the token file (tokens and the OIDC issuer's keys) and the
/// classification registry again. A file that does not load is logged and the running server
/// keeps what it had: a typo never locks every client out.
async fn reload_on_hangup(
    state: veritrail_server::AppState,
    auth: Option<PathBuf>,
    public_read: bool,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP: reloads need a restart");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        if let Some(path) = &auth {
            match Auth::load(path, public_read) {
                Ok(fresh) => {
                    state.auth.reload(&fresh);
                    tracing::info!(path = %path.display(), "token file reloaded");
                }
                Err(e) => {
                    tracing::error!(error = %e, "token file not reloaded; the previous tokens stay in force");
                }
            }
        }
        match state.classifier.reload() {
            Ok(rules) => tracing::info!(rules, "classification registry reloaded"),
            Err(e) => tracing::error!(
                error = %e,
                "classification registry not reloaded; the previous one stays in force"
            ),
        }
    }
}

/// File name of the public verifier key written into the data directory at start.
const VERIFIER_KEY_FILE: &str = "log.vkey";

/// Writes (replacing) a file in the data directory, owner-only like every file there.
fn write_owner_only(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // A file left by an older version may have been created world-readable.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    #[test]
    fn publication_flag_defaults_match_the_server_defaults() {
        let args = Cli::try_parse_from(["serve"]).unwrap().serve;
        assert_eq!(args.checkpoint_interval, PublishConfig::default().interval);
        assert_eq!(
            args.checkpoint_republish,
            PublishConfig::default().republish
        );
        assert_eq!(
            args.header_timeout,
            ConnectionConfig::default().header_timeout
        );
    }

    #[test]
    fn budgets_parse_canonically_within_bounds() {
        assert_eq!(parse_budget("64MiB"), Ok(64 << 20));
        assert_eq!(parse_budget("65536"), Ok(65536));
        assert_eq!(parse_budget("1GiB"), Ok(1 << 30));
        for bad in [
            "",
            "MiB",
            "064MiB",
            "64MB",
            "+64MiB",
            "1KiB",
            "17GiB",
            "99999999999999999999GiB",
        ] {
            assert!(parse_budget(bad).is_err(), "{bad:?}");
        }
    }
}
