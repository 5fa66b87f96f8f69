//! The client commands: `append`, `get`, `prove`, `checkpoint` (this file), `monitor`
//! ([`crate::monitor`]), and the offline `verify-receipt` and `verify-evidence`
//! ([`crate::offline`]).
//!
//! They trust nothing the server says: whatever is printed as verified was checked against
//! the pinned `--log-key` and, with `--state`, the latest checkpoint verified before.
//!
//! Exit codes, for every command here: 0 ok; 1 the log (or a receipt or evidence) failed
//! verification ([`ClientError::is_misbehaviour`]); 2 the check could not be carried out
//! (usage, network, local files).

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use veritrail_client::{
    AppendOptions, ClientConfig, ClientError, Evidence, LogClient, LogVerifier, ProofSource,
    Update, VerifiedInclusion, VerifyError, VerifyingClient, verify_receipt,
};
use veritrail_ledger::Hash;
use veritrail_ledger::checkpoint::Checkpoint;
use veritrail_ledger::note::{NoteVerifier, SIG_TYPE_ED25519};

use crate::CliError;
use crate::serve::parse_duration;

/// Where `veritrail serve` listens by default (its `--listen` default).
const DEFAULT_URL: &str = "http://127.0.0.1:7800";
/// Largest file accepted as `--log-key`: a key string is at most 4 KiB, and a file may hold
/// a few other lines (such as what `veritrail serve` prints).
const MAX_KEY_FILE: u64 = 64 * 1024;
/// Where split-view evidence goes without --evidence or --state.
const DEFAULT_EVIDENCE: &str = "veritrail.evidence.json";
/// Longest a connection may take to open, at most (also capped by `--timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The client commands, flattened into the top-level `veritrail` commands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ClientCommand {
    /// Append an entry to a running log over HTTP.
    ///
    /// Prints its index and leaf hash. With --wait (or --receipt), waits until a signed
    /// checkpoint covers the entry and checks its receipt against --log-key.
    Append(Box<AppendArgs>),
    /// Read an entry from a running log.
    ///
    /// Writes its raw bytes to standard output (or --out). With --verify, proves first that
    /// it is in the log, against the latest verified checkpoint.
    Get(Box<GetArgs>),
    /// Prove that an entry is in the log.
    ///
    /// Prints an inclusion proof verified against the latest checkpoint, for an index or a
    /// --leaf-hash; --receipt saves it as a receipt.
    Prove(Box<ProveArgs>),
    /// Fetch and print the log's latest checkpoint.
    ///
    /// With --verify, checks its signature and its consistency with the trusted checkpoint
    /// in --state, then trusts it.
    Checkpoint(Box<CheckpointArgs>),
    /// Audit every entry of the log and follow it.
    ///
    /// Downloads every entry bundle, rebuilds the tree and checks it against the log's tiles
    /// and signed checkpoints; resumes from its tile cache after a restart. Follows the log
    /// until Ctrl-C or SIGTERM, or catches up once with --once.
    Monitor(Box<crate::monitor::MonitorArgs>),
    /// Check a receipt offline.
    ///
    /// Exit code 0 if the entry is in the log at the receipt's checkpoint, signed by
    /// --log-key; 1 if not.
    VerifyReceipt(Box<crate::offline::VerifyReceiptArgs>),
    /// Check split-view evidence offline.
    ///
    /// Exit code 0 if the file proves that the log signed two contradictory checkpoints
    /// with --log-key; 1 if not.
    VerifyEvidence(Box<crate::offline::VerifyEvidenceArgs>),
}

/// Runs a client command and returns its exit code.
pub(crate) fn run(command: ClientCommand) -> Result<ExitCode, CliError> {
    match command {
        ClientCommand::Append(args) => append(&args),
        ClientCommand::Get(args) => get(&args),
        ClientCommand::Prove(args) => prove(&args),
        ClientCommand::Checkpoint(args) => checkpoint(&args),
        ClientCommand::Monitor(args) => crate::monitor::run(&args),
        ClientCommand::VerifyReceipt(args) => crate::offline::verify_receipt(&args),
        ClientCommand::VerifyEvidence(args) => crate::offline::verify_evidence(&args),
    }
}

// ---------------------------------------------------------------------------------------------
// Shared flags.

/// How to reach the log.
#[derive(Debug, clap::Args)]
pub(crate) struct ServerArgs {
    /// Base URL of the log (the address `veritrail serve` prints).
    #[arg(long, env = "VERITRAIL_URL", default_value = DEFAULT_URL)]
    pub(crate) url: String,
    /// Bearer token: role `append` to append, `read` for entries and entry bundles.
    #[arg(long, env = "VERITRAIL_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// Longest one request may take, retries aside (e.g. 30s, 500ms).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
}

impl ServerArgs {
    /// The HTTP client for `--url`.
    pub(crate) fn client(&self) -> Result<LogClient, CliError> {
        let mut config = ClientConfig::new(self.url.clone());
        config.token = self.token.clone();
        config.timeout = self.timeout.max(Duration::from_millis(1));
        config.connect_timeout = CONNECT_TIMEOUT.min(config.timeout);
        LogClient::new(&config).map_err(|e| CliError::Usage {
            message: e.to_string(),
            hint: format!("pass --url http://HOST:PORT, the address `veritrail serve` prints (default {DEFAULT_URL})"),
        })
    }
}

/// The log's pinned verifier key.
#[derive(Debug, clap::Args)]
pub(crate) struct KeyArgs {
    /// The log's verifier key, `<name>+<hex key id>+<base64>` (what `veritrail serve` and
    /// `veritrail keygen` print), or a file holding one.
    #[arg(long, env = "VERITRAIL_LOG_KEY")]
    pub(crate) log_key: Option<String>,
    /// The log's origin, the first line of its checkpoints. Default: the key's name.
    #[arg(long)]
    pub(crate) origin: Option<String>,
}

/// A verifier key with the origin it is pinned for.
#[derive(Clone, Debug)]
pub(crate) struct PinnedKey {
    pub(crate) key: NoteVerifier,
    pub(crate) origin: String,
}

impl KeyArgs {
    /// The pinned key, if one was given.
    pub(crate) fn optional(&self) -> Result<Option<PinnedKey>, CliError> {
        let Some(value) = &self.log_key else {
            return Ok(None);
        };
        let key = parse_log_key(value)?;
        let origin = self
            .origin
            .clone()
            .unwrap_or_else(|| key.name().as_str().to_owned());
        Ok(Some(PinnedKey { key, origin }))
    }

    /// The pinned key, which `what` needs.
    pub(crate) fn required(&self, what: &str) -> Result<PinnedKey, CliError> {
        self.optional()?.ok_or_else(|| CliError::Usage {
            message: format!("{what} needs the log's verifier key"),
            hint: "pass --log-key <name+id+key> (or a file holding it), or set VERITRAIL_LOG_KEY; `veritrail serve` prints the key at startup".into(),
        })
    }
}

/// Parses `--log-key`: a verifier key string, or a file whose content (or one of whose
/// lines, optionally after `verifier key:`) is one.
fn parse_log_key(value: &str) -> Result<NoteVerifier, CliError> {
    let key = match value.trim().parse::<NoteVerifier>() {
        Ok(key) => key,
        Err(as_key) => {
            let path = Path::new(value);
            let text = match std::fs::File::open(path) {
                Ok(file) => {
                    let mut text = String::new();
                    file.take(MAX_KEY_FILE)
                        .read_to_string(&mut text)
                        .map_err(|source| CliError::Read {
                            path: value.to_owned(),
                            source,
                        })?;
                    text
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(CliError::Usage {
                        message: format!(
                            "--log-key {value:?} is neither a verifier key ({as_key}) nor a file"
                        ),
                        hint: "pass the key `veritrail serve` prints (name+id+base64), or the path of a file holding it".into(),
                    });
                }
                Err(source) => {
                    return Err(CliError::Read {
                        path: value.to_owned(),
                        source,
                    });
                }
            };
            text.lines()
                .map(|l| l.trim())
                .map(|l| l.strip_prefix("verifier key:").map_or(l, str::trim))
                .find_map(|l| l.parse::<NoteVerifier>().ok())
                .ok_or_else(|| CliError::Usage {
                    message: format!("{value} holds no verifier key"),
                    hint: "the file must hold a line name+id+base64, as `veritrail keygen` prints"
                        .into(),
                })?
        }
    };
    if key.signature_type() != SIG_TYPE_ED25519 {
        return Err(CliError::Usage {
            message: format!("--log-key {key} is a cosigner (witness) key, not a log key"),
            hint: "pass the log's own verifier key, as `veritrail serve` prints it".into(),
        });
    }
    Ok(key)
}

/// The trusted state and where evidence goes.
#[derive(Debug, clap::Args)]
pub(crate) struct StateArgs {
    /// Trusted state file: the latest checkpoint verified for this log, so that the next run
    /// detects a rollback or a fork. Created on first use.
    #[arg(long, value_name = "FILE")]
    pub(crate) state: Option<PathBuf>,
    /// Where to write split-view evidence if the log contradicts itself. Default:
    /// `<state>.evidence.json` (or `veritrail.evidence.json` without --state).
    #[arg(long, value_name = "FILE")]
    pub(crate) evidence: Option<PathBuf>,
}

impl StateArgs {
    /// Loads the trusted state (empty without `--state` or when the file does not exist).
    pub(crate) fn load(&self, pinned: &PinnedKey) -> Result<LogVerifier, CliError> {
        match &self.state {
            Some(path) => LogVerifier::load(path, &pinned.origin, &pinned.key)
                .map_err(|e| client_error(&ClientError::Verify(e), None)),
            None => Ok(LogVerifier::new(pinned.origin.clone(), pinned.key.clone())),
        }
    }

    /// The evidence file path.
    pub(crate) fn evidence_path(&self) -> PathBuf {
        match (&self.evidence, &self.state) {
            (Some(path), _) => path.clone(),
            (None, Some(state)) => sibling(state, "evidence.json"),
            (None, None) => PathBuf::from(DEFAULT_EVIDENCE),
        }
    }
}

/// `<path>.<suffix>`, beside `path`.
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

/// Where proofs come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Proofs {
    /// Computed here from the log's hash tiles (any C2SP tlog-tiles log).
    Tiles,
    /// Asked from the server's JSON proof API.
    Api,
}

impl From<Proofs> for ProofSource {
    fn from(proofs: Proofs) -> Self {
        match proofs {
            Proofs::Tiles => ProofSource::Tiles,
            Proofs::Api => ProofSource::Api,
        }
    }
}

/// Everything a verifying read needs.
#[derive(Debug, clap::Args)]
pub(crate) struct TrustArgs {
    #[command(flatten)]
    pub(crate) key: KeyArgs,
    #[command(flatten)]
    pub(crate) state: StateArgs,
    /// Where proofs come from: computed from the log's hash tiles, or asked from its API.
    #[arg(long, value_enum, default_value = "tiles")]
    pub(crate) proofs: Proofs,
}

impl TrustArgs {
    /// A verifying client whose trusted checkpoint is the log's latest one (verified, and
    /// saved to `--state`), and what the update concluded.
    async fn latest(
        &self,
        pinned: &PinnedKey,
        server: &ServerArgs,
    ) -> Result<(VerifyingClient, Checkpoint, Update), CliError> {
        let verifier = self.state.load(pinned)?;
        let mut client = VerifyingClient::new(
            server.client()?,
            verifier,
            self.state.state.clone(),
            self.proofs.into(),
        );
        let evidence = self.state.evidence_path();
        let (checkpoint, update) = client
            .update()
            .await
            .map_err(|e| client_error(&e, Some(&evidence)))?;
        Ok((client, checkpoint, update))
    }
}

// ---------------------------------------------------------------------------------------------
// Errors.

/// The CLI error for a client error: exit 1 for misbehaviour, 2 otherwise. Split-view
/// evidence, if the error carries some, is written to `evidence_path` first.
pub(crate) fn client_error(err: &ClientError, evidence_path: Option<&Path>) -> CliError {
    if err.is_misbehaviour() {
        let (message, hint) = match err.evidence() {
            Some(evidence) => {
                let path = evidence_path.unwrap_or(Path::new(DEFAULT_EVIDENCE));
                match write_evidence(path, evidence) {
                    Ok(written) => {
                        eprintln!("wrote split-view evidence to {}", written.display());
                        (
                            format!(
                                "the log failed verification: {err}; evidence: {}",
                                written.display()
                            ),
                            format!(
                                "keep the evidence and the state file, and report to the log operator; anyone can check it offline with `veritrail verify-evidence --log-key <key> {}`",
                                written.display()
                            ),
                        )
                    }
                    Err(e) => {
                        // Evidence must not be lost: print it instead.
                        let _ = std::io::stdout().write_all(&evidence.to_bytes());
                        (
                            format!(
                                "the log failed verification: {err}; the evidence could not be written to {} ({e}) and was printed on standard output",
                                path.display()
                            ),
                            "save the evidence printed above, and report to the log operator"
                                .into(),
                        )
                    }
                }
            }
            None => (
                format!("the log failed verification: {err}"),
                misbehaviour_hint(err).into(),
            ),
        };
        return CliError::Misbehaviour { message, hint };
    }
    let hint = match err {
        ClientError::InvalidUrl { .. } => {
            "pass --url http://HOST:PORT, the address `veritrail serve` prints"
        }
        ClientError::Transport { .. } => {
            "check --url and that the server is running and reachable; raise --timeout for a slow link"
        }
        ClientError::Api {
            status: 401 | 403, ..
        } => {
            "pass a token with the needed role (append, read or audit) with --token or VERITRAIL_TOKEN"
        }
        ClientError::Api { status: 404, .. } => {
            "the log does not have it (yet): check the index or hash, or retry once a checkpoint covers it"
        }
        ClientError::Api {
            status: 408 | 429 | 500..=599,
            ..
        } => "the server is busy or failing; retry later (appends are safe to retry)",
        ClientError::Api { .. } => "the server refused the request; see its message",
        ClientError::Verify(VerifyError::State { .. }) => {
            "the state file is damaged or belongs to another log: check --state, --log-key and --origin, or move the file away to start over (trust on first use)"
        }
        ClientError::Local { .. } => "check the path, its permissions and the free space",
        _ => "retry; if it persists, report it",
    };
    CliError::Usage {
        message: with_causes(err),
        hint: hint.into(),
    }
}

/// The error's message followed by those of its causes not already in it (a transport
/// error's root cause, such as "Connection refused", is several levels down).
pub(crate) fn with_causes(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

fn misbehaviour_hint(err: &ClientError) -> &'static str {
    match err {
        ClientError::Verify(VerifyError::BadCheckpoint(_)) => {
            "check that --log-key (and --origin) are this log's; if they are, the log or something in front of it signed with another key: report it"
        }
        ClientError::Rollback { .. } => {
            "the log went back in time; a cache in front of it may be stale: retry later and report it to the log operator if it persists"
        }
        _ => {
            "the trusted state was not changed; keep this output and report it to the log operator"
        }
    }
}

/// Writes evidence to `path`, or to `path.1`, `path.2`, ... when it exists (evidence is
/// never overwritten). Returns the path written.
fn write_evidence(path: &Path, evidence: &Evidence) -> std::io::Result<PathBuf> {
    let bytes = evidence.to_bytes();
    let mut candidate = path.to_owned();
    for n in 1..=1000u32 {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&candidate)
        {
            Ok(mut file) => {
                file.write_all(&bytes)?;
                file.sync_all()?;
                return Ok(candidate);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if std::fs::read(&candidate).is_ok_and(|old| old == bytes) {
                    return Ok(candidate);
                }
                candidate = sibling(path, &n.to_string());
            }
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        "too many evidence files",
    ))
}

/// A multi-threaded runtime for one command.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Usage {
            message: format!("cannot start the runtime: {e}"),
            hint: "report this".into(),
        })
}

/// Writes to standard output; a closed pipe is an error, not a panic.
pub(crate) fn stdout(bytes: &[u8]) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|source| CliError::Write {
            path: "standard output".into(),
            source,
        })
}

// ---------------------------------------------------------------------------------------------
// append

/// Arguments of `veritrail append`.
#[derive(Debug, clap::Args)]
pub(crate) struct AppendArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Verifies the receipt of --wait / --receipt (without it, the receipt is not checked).
    #[command(flatten)]
    key: KeyArgs,
    /// Wait until a signed checkpoint covers the entry; then check its receipt.
    #[arg(long)]
    wait: bool,
    /// Write the entry's receipt (c2sp.org/tlog-proof@v1) to this file. Implies --wait.
    #[arg(long, value_name = "FILE")]
    receipt: Option<PathBuf>,
    /// Idempotency key (1 to 255 visible ASCII characters): running the command again with
    /// the same key and entry returns the first result instead of appending twice (the
    /// server remembers keys for a limited window, in memory). Default: a random key, which
    /// makes the command's own retries safe.
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,
    /// The entry (1 to 65535 bytes): a file, or `-` (the default) for standard input.
    #[arg(value_name = "FILE|-")]
    file: Option<PathBuf>,
}

fn append(args: &AppendArgs) -> Result<ExitCode, CliError> {
    let path = args.file.clone().unwrap_or_else(|| PathBuf::from("-"));
    let entry = crate::read_entry(&path)?;
    if entry.is_empty() {
        let name = if path.as_os_str() == "-" {
            "standard input".to_owned()
        } else {
            path.display().to_string()
        };
        return Err(CliError::Usage {
            message: format!("{name} is empty; an entry holds 1 to 65535 bytes"),
            hint: "append a non-empty file".into(),
        });
    }
    let pinned = args.key.optional()?;
    let wait = args.wait || args.receipt.is_some();
    let client = args.server.client()?;
    // An idempotency key makes the retries of a lost answer safe.
    let options = match &args.idempotency_key {
        Some(key) => AppendOptions {
            wait_published: wait,
            idempotency_key: Some(key.clone()),
        },
        None => AppendOptions::with_random_key(wait).map_err(|e| client_error(&e, None))?,
    };
    let appended = runtime()?
        .block_on(client.append(&entry, &options))
        .map_err(|e| client_error(&e, None))?;
    stdout(
        format!(
            "index {} leaf_hash {}\n",
            appended.index,
            appended.leaf_hash.to_base64()
        )
        .as_bytes(),
    )?;
    if !wait {
        return Ok(ExitCode::SUCCESS);
    }
    let Some(published) = appended.published else {
        return Err(CliError::Misbehaviour {
            message: format!(
                "the log appended entry {} but sent no receipt",
                appended.index
            ),
            hint: "retry later with `veritrail prove <index> --receipt FILE`".into(),
        });
    };
    match &pinned {
        Some(pinned) => {
            let (receipt, checkpoint) =
                verify_receipt(&published.receipt, &entry, &pinned.key, Some(&pinned.origin))
                    .map_err(|e| CliError::Misbehaviour {
                        message: format!(
                            "the log's receipt for entry {} does not verify: {e}",
                            appended.index
                        ),
                        hint: "the entry was appended but the log's proof is wrong (or --log-key / --origin are not this log's); nothing was written; report it to the log operator".into(),
                    })?;
            if receipt.index != appended.index {
                return Err(CliError::Misbehaviour {
                    message: format!(
                        "the log appended entry {} but sent a receipt for entry {}",
                        appended.index, receipt.index
                    ),
                    hint: "nothing was written; report it to the log operator".into(),
                });
            }
            eprintln!(
                "receipt verified: entry {} is in {} at tree size {}",
                appended.index, checkpoint.origin, checkpoint.tree.size
            );
        }
        None => eprintln!(
            "warning: the receipt was not verified (no --log-key); check it with `veritrail verify-receipt`"
        ),
    }
    if let Some(path) = &args.receipt {
        std::fs::write(path, &published.receipt).map_err(|e| CliError::Usage {
            message: format!(
                "entry {} was appended, but its receipt could not be written to {}: {e}",
                appended.index,
                path.display()
            ),
            hint: format!(
                "do not append it again; get the receipt with `veritrail prove {} --receipt FILE`",
                appended.index
            ),
        })?;
        eprintln!("wrote the receipt to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------------
// get

/// Arguments of `veritrail get`.
#[derive(Debug, clap::Args)]
pub(crate) struct GetArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    trust: TrustArgs,
    /// Prove the entry is in the log (against its latest verified checkpoint) before writing
    /// it. Needs --log-key.
    #[arg(long)]
    verify: bool,
    /// Write the entry to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// The entry's index.
    index: u64,
}

fn get(args: &GetArgs) -> Result<ExitCode, CliError> {
    let entry = if args.verify {
        let pinned = args.trust.key.required("get --verify")?;
        let runtime = runtime()?;
        runtime.block_on(async {
            let (mut client, checkpoint, _) = args.trust.latest(&pinned, &args.server).await?;
            let size = client.verifier().trusted_size();
            check_covered(args.index, size)?;
            let (entry, proven) = client
                .get(args.index)
                .await
                .map_err(|e| client_error(&e, None))?;
            eprintln!(
                "verified: entry {} (leaf hash {}) is in {} at tree size {}",
                proven.index,
                proven.leaf_hash.to_base64(),
                checkpoint.origin,
                proven.checkpoint.tree.size
            );
            Ok::<_, CliError>(entry)
        })?
    } else {
        let client = args.server.client()?;
        runtime()?
            .block_on(client.entry(args.index))
            .map_err(|e| client_error(&e, None))?
    };
    match &args.out {
        Some(path) => std::fs::write(path, &entry).map_err(|source| CliError::Write {
            path: path.display().to_string(),
            source,
        })?,
        None => stdout(&entry)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// An index beyond the verified tree is the caller's mistake, not the log's.
fn check_covered(index: u64, size: u64) -> Result<(), CliError> {
    if index < size {
        return Ok(());
    }
    Err(CliError::Usage {
        message: format!("entry {index} is beyond the log's latest verified checkpoint (tree size {size})"),
        hint: "check the index; a just-appended entry is covered by the next checkpoint, retry in a moment".into(),
    })
}

// ---------------------------------------------------------------------------------------------
// prove

/// Arguments of `veritrail prove`.
#[derive(Debug, clap::Args)]
pub(crate) struct ProveArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    trust: TrustArgs,
    /// Prove the first entry with this leaf hash (base64 of SHA-256(0x00 || entry)) instead
    /// of an index.
    #[arg(long, value_name = "BASE64", conflicts_with = "index")]
    leaf_hash: Option<String>,
    /// Write the proof as a receipt (c2sp.org/tlog-proof@v1) to this file.
    #[arg(long, value_name = "FILE")]
    receipt: Option<PathBuf>,
    /// The entry's index.
    #[arg(required_unless_present = "leaf_hash")]
    index: Option<u64>,
}

fn prove(args: &ProveArgs) -> Result<ExitCode, CliError> {
    let pinned = args.trust.key.required("prove")?;
    let leaf = match &args.leaf_hash {
        Some(text) => Some(Hash::from_base64(text.trim()).map_err(|e| CliError::Usage {
            message: format!("--leaf-hash {text:?}: {e}"),
            hint: "pass 32 bytes in standard base64, as `veritrail append` prints".into(),
        })?),
        None => None,
    };
    let proven: VerifiedInclusion = runtime()?.block_on(async {
        let (mut client, _, _) = args.trust.latest(&pinned, &args.server).await?;
        let proven = match (leaf, args.index) {
            (Some(leaf), _) => client.prove_leaf_hash(&leaf).await,
            (None, Some(index)) => {
                check_covered(index, client.verifier().trusted_size())?;
                client.prove(index).await
            }
            (None, None) => {
                return Err(CliError::Usage {
                    message: "nothing to prove".into(),
                    hint: "pass an index or --leaf-hash".into(),
                });
            }
        };
        proven.map_err(|e| client_error(&e, None))
    })?;
    let mut text = format!(
        "index {}\nleaf_hash {}\ntree_size {}\nroot {}\n",
        proven.index,
        proven.leaf_hash.to_base64(),
        proven.checkpoint.tree.size,
        proven.checkpoint.tree.root.to_base64()
    );
    for hash in &proven.proof {
        text.push_str(&format!("proof {}\n", hash.to_base64()));
    }
    stdout(text.as_bytes())?;
    eprintln!(
        "verified: entry {} is in {} at tree size {}",
        proven.index, proven.checkpoint.origin, proven.checkpoint.tree.size
    );
    if let Some(path) = &args.receipt {
        let receipt = proven.receipt().map_err(|e| CliError::Usage {
            message: format!("cannot build the receipt: {e}"),
            hint: "report this".into(),
        })?;
        std::fs::write(path, receipt.to_bytes()).map_err(|source| CliError::Write {
            path: path.display().to_string(),
            source,
        })?;
        eprintln!("wrote the receipt to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------------
// checkpoint

/// Arguments of `veritrail checkpoint`.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckpointArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    trust: TrustArgs,
    /// Check the signature (needs --log-key) and the consistency with the trusted
    /// checkpoint in --state, then trust and save the new one.
    #[arg(long)]
    verify: bool,
}

fn checkpoint(args: &CheckpointArgs) -> Result<ExitCode, CliError> {
    if !args.verify {
        let client = args.server.client()?;
        let note = runtime()?
            .block_on(client.checkpoint())
            .map_err(|e| client_error(&e, None))?;
        stdout(&note)?;
        eprintln!("not verified: pass --verify --log-key <key> --state <file> to check it");
        return Ok(ExitCode::SUCCESS);
    }
    let pinned = args.trust.key.required("checkpoint --verify")?;
    let (client, checkpoint, update) =
        runtime()?.block_on(args.trust.latest(&pinned, &args.server))?;
    if let Some((_, note)) = client.verifier().trusted() {
        stdout(note)?;
    }
    let n = checkpoint.tree.size;
    let what = match update {
        Update::First => format!(
            "first: trusting the checkpoint of size {n} on first use (signature by {} verified)",
            pinned.key.name()
        ),
        Update::Grew { from } => {
            format!("grew from {from} to {n}: signature and consistency proof verified")
        }
        Update::Unchanged => format!("unchanged at size {n}"),
        Update::Older => format!(
            "older: the log served size {n}, a prefix of the trusted size {}; trust unchanged",
            client.verifier().trusted_size()
        ),
        _ => format!("verified size {n}"),
    };
    eprintln!("{what}");
    match &args.trust.state.state {
        Some(path) => eprintln!("trusted state saved to {}", path.display()),
        None => eprintln!(
            "warning: no --state: nothing is remembered, so a fork or rollback cannot be detected next time"
        ),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use veritrail_ledger::note::{KeyName, NoteSigner};

    fn verifier() -> NoteVerifier {
        NoteSigner::from_seed(KeyName::new("audit.test/log").unwrap(), [7; 32]).verifier()
    }

    #[test]
    fn log_keys_come_from_the_argument_or_a_file() {
        let key = verifier();
        assert_eq!(parse_log_key(&key.to_string()).unwrap(), key);
        assert_eq!(parse_log_key(&format!(" {key}\n")).unwrap(), key);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("log.vkey");
        std::fs::write(&file, format!("{key}\n")).unwrap();
        assert_eq!(parse_log_key(file.to_str().unwrap()).unwrap(), key);
        // What `veritrail serve` prints on standard output works as a key file too.
        std::fs::write(
            &file,
            format!("veritrail listening on http://127.0.0.1:7800\norigin: audit.test/log\nverifier key: {key}\n"),
        )
        .unwrap();
        assert_eq!(parse_log_key(file.to_str().unwrap()).unwrap(), key);
        std::fs::write(&file, "no key here\n").unwrap();
        assert!(matches!(
            parse_log_key(file.to_str().unwrap()),
            Err(CliError::Usage { .. })
        ));
        assert!(matches!(
            parse_log_key(dir.path().join("missing").to_str().unwrap()),
            Err(CliError::Usage { .. })
        ));
        // A key with a wrong key ID is neither a key nor a file.
        let text = key.to_string();
        let (name, rest) = text.split_once('+').unwrap();
        let forged = format!("{name}+00000000{}", &rest[8..]);
        assert!(matches!(
            parse_log_key(&forged),
            Err(CliError::Usage { .. })
        ));
    }

    #[test]
    fn evidence_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json.evidence.json");
        let key = verifier();
        let one = Evidence::same_size("audit.test/log", &key, b"a", b"b");
        let two = Evidence::same_size("audit.test/log", &key, b"a", b"c");
        assert_eq!(write_evidence(&path, &one).unwrap(), path);
        // The same evidence again: already there.
        assert_eq!(write_evidence(&path, &one).unwrap(), path);
        let second = write_evidence(&path, &two).unwrap();
        assert_eq!(second, dir.path().join("s.json.evidence.json.1"));
        assert_eq!(std::fs::read(&path).unwrap(), one.to_bytes());
        assert_eq!(std::fs::read(&second).unwrap(), two.to_bytes());
    }

    #[test]
    fn defaults_sit_beside_the_state_file() {
        let state = StateArgs {
            state: Some(PathBuf::from("/var/lib/audit/state.json")),
            evidence: None,
        };
        assert_eq!(
            state.evidence_path(),
            Path::new("/var/lib/audit/state.json.evidence.json")
        );
        assert_eq!(
            sibling(Path::new("state.json"), "tiles"),
            Path::new("state.json.tiles")
        );
    }
}
