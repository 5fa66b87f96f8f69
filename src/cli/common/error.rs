//! [`CliError`]: every way a command can fail, what the user should do next, and the exit
//! code it maps to.
//!
//! Exit codes: 0 ok; **1** the log, a receipt or evidence failed verification
//! ([`CliError::is_verification_failure`]); **2** the command could not run or check (usage,
//! network, local files, storage).
//!
//! Each variant keeps the error it wraps as its `#[source]`; [`CliError::report`] prints the
//! message with its chain of causes and the hint:
//!
//! ```text
//! error: <message>: <cause>: <cause of the cause>
//! hint: <what to do next>
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use veritrail_client::{ClientError, VerifyError};

/// A boxed error from a library whose error type this crate does not name (the random number
/// generator, the logging subscriber).
pub(crate) type BoxedError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A CLI failure: what went wrong (with its source) and what to do next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum CliError {
    /// A flag, an argument or an input is not usable; nothing underneath failed.
    #[error("{message}")]
    Usage {
        /// What is wrong with the input.
        message: String,
        /// What to pass instead.
        hint: String,
    },
    /// A file (or standard input) could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file, as given.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The file, as given.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Standard output could not be written (for example a closed pipe).
    #[error("cannot write standard output")]
    Stdout {
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A key name (`keygen --name`, or the origin of a new log) is not a valid key name.
    #[error("invalid key name {name:?}")]
    KeyName {
        /// The name given.
        name: String,
        /// Why it is not valid.
        #[source]
        source: veritrail_ledger::note::NoteError,
    },
    /// A file that holds a signing key is not one.
    #[error("{path} is not a signing key")]
    SigningKey {
        /// The key file.
        path: PathBuf,
        /// Why it does not parse.
        #[source]
        source: veritrail_ledger::note::NoteError,
    },
    /// A key or token file would be overwritten.
    #[error("{path} already exists; refusing to overwrite a key")]
    KeyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// A key, token or idempotency key could not be generated (the system's random number
    /// generator or the encoder failed).
    #[error("cannot generate {what}")]
    Generate {
        /// What was being generated.
        what: &'static str,
        /// The underlying failure.
        #[source]
        source: BoxedError,
    },
    /// The store in the data directory could not be opened (I/O, locking, the database).
    #[error("cannot open the store in {data}")]
    OpenStore {
        /// The data directory.
        data: PathBuf,
        /// The ledger's error.
        #[source]
        source: veritrail_ledger::Error,
    },
    /// Files or directories in the data directory are open to other users.
    #[error(
        "{count} path(s) in {data} are readable or writable by other users, e.g. {example} (mode {mode:o})",
        count = paths.len(),
        example = paths.first().map(|(p, _)| p.display().to_string()).unwrap_or_default(),
        mode = paths.first().map(|(_, m)| *m).unwrap_or_default()
    )]
    OpenPermissions {
        /// The data directory.
        data: PathBuf,
        /// Each path and its permission bits.
        paths: Vec<(PathBuf, u32)>,
    },
    /// The ledger refused the store when opening it (its tiles, tree head, last checkpoint or
    /// origin do not agree).
    #[error("the store in {data} was refused")]
    StoreRefused {
        /// The data directory.
        data: PathBuf,
        /// The ledger's error.
        #[source]
        source: veritrail_ledger::Error,
    },
    /// `log verify`: the store does not match its own hashes or its signed checkpoint.
    /// Exit code 1.
    #[error("log verification failed")]
    LogVerification {
        /// [`veritrail_ledger::Error::Corrupted`], [`veritrail_ledger::Error::RootMismatch`]
        /// or [`veritrail_ledger::Error::CheckpointMismatch`].
        #[source]
        source: veritrail_ledger::Error,
    },
    /// `log verify`: the audit could not read the store (storage, I/O): nothing is known
    /// about the log yet.
    #[error("cannot audit the store")]
    Audit {
        /// The ledger's error.
        #[source]
        source: veritrail_ledger::Error,
    },
    /// `admin reindex`: the record indexes could not be rebuilt.
    #[error("cannot rebuild the record indexes")]
    Reindex {
        /// What failed.
        #[source]
        source: veritrail_server::record_index::IndexError,
    },
    /// `log append`: appending to the local store failed; nothing was appended.
    #[error("cannot append to the store")]
    LocalAppend {
        /// The ledger's error.
        #[source]
        source: veritrail_ledger::Error,
    },
    /// `log append`: the entries are durable but no checkpoint could be signed.
    #[error("the entries were appended, but no checkpoint could be signed")]
    Sign {
        /// The ledger's error.
        #[source]
        source: veritrail_ledger::Error,
    },
    /// The async runtime could not start.
    #[error("cannot start the runtime")]
    Runtime {
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The server's log output could not be set up.
    #[error("cannot start logging")]
    Logging {
        /// The subscriber's error.
        #[source]
        source: BoxedError,
    },
    /// The server's token file does not load.
    #[error("cannot load the token file {path}")]
    Auth {
        /// The token file.
        path: PathBuf,
        /// Why it does not load.
        #[source]
        source: Box<veritrail_server::auth::AuthFileError>,
    },
    /// The server cannot listen on its address.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address given with `--listen`.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The server's committer or publisher could not start.
    #[error("cannot start the server")]
    ServerStart {
        /// The server's error.
        #[source]
        source: veritrail_server::StartError,
    },
    /// The server stopped with an error.
    #[error("the server failed")]
    Serve {
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A client command could not reach, read or use the log, or a local file: nothing was
    /// verified.
    #[error("{source}")]
    Client {
        /// The client's error.
        #[source]
        source: ClientError,
    },
    /// The log failed verification (a bad signature, proof, tile, entry, a rollback or a
    /// split view). Exit code 1.
    #[error("the log failed verification: {source}{evidence}")]
    Misbehaviour {
        /// What the client found.
        #[source]
        source: ClientError,
        /// What became of the split-view evidence the error carried.
        evidence: EvidenceOutcome,
    },
    /// `append --wait`: the log appended the entry but sent no receipt. Exit code 1.
    #[error("the log appended entry {index} but sent no receipt")]
    NoReceipt {
        /// The entry's index.
        index: u64,
    },
    /// `append --wait`: the log's receipt does not verify. Exit code 1.
    #[error("the log's receipt for entry {index} does not verify")]
    BadReceipt {
        /// The entry's index.
        index: u64,
        /// Why it does not verify.
        #[source]
        source: veritrail_ledger::receipt::ReceiptError,
    },
    /// A checkpoint (or a receipt's) does not satisfy `--policy`. Exit code 1.
    #[error("{what} does not satisfy the witness policy: {source}")]
    Policy {
        /// What was checked.
        what: String,
        /// What the policy misses.
        #[source]
        source: veritrail_ledger::policy::VerifyError,
    },
    /// `append --wait`: the log's receipt is for another entry. Exit code 1.
    #[error("the log appended entry {appended} but sent a receipt for entry {receipt}")]
    ReceiptForOtherEntry {
        /// The index the append returned.
        appended: u64,
        /// The index in the receipt.
        receipt: u64,
    },
    /// `append --receipt`: the entry was appended but its receipt could not be saved.
    #[error("entry {index} was appended, but its receipt could not be written to {path}")]
    ReceiptNotSaved {
        /// The entry's index.
        index: u64,
        /// The receipt file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `prove --receipt`: the verified proof cannot be encoded as a receipt.
    #[error("cannot build the receipt")]
    BuildReceipt {
        /// The encoder's error.
        #[source]
        source: veritrail_ledger::receipt::ReceiptError,
    },
    /// `bench append`: some requests failed for good.
    #[error("{requests} requests ({entries} entries) failed")]
    BenchFailed {
        /// Requests that failed for good.
        requests: u64,
        /// Entries in them.
        entries: u64,
        /// Whether any answer was `401`: the token is missing or lacks the append role.
        unauthorized: bool,
    },
    /// `bench append`: the server at `--url` does not answer its health check.
    #[error("cannot reach {url}")]
    Unreachable {
        /// The health check URL.
        url: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// `archive`: the run stopped; archives finished before it stay purged, nothing of the
    /// failing one was purged.
    #[error("archival stopped")]
    Archive {
        /// Why.
        #[source]
        source: veritrail_server::archive::ArchiveRunError,
    },
    /// `verify-archive`: the archive was read and is not valid. Exit code 1.
    #[error("the archive is not valid")]
    ArchiveInvalid {
        /// The first reason found.
        #[source]
        source: veritrail_archive::ArchiveError,
    },
    /// `verify-archive`: the archive could not be read. Exit code 2.
    #[error("cannot read the archive")]
    ArchiveUnreadable {
        /// Why.
        #[source]
        source: veritrail_archive::ArchiveError,
    },
    /// `bench append`: the server at `--url` answered its health check with an error.
    #[error("{url} answered {status}")]
    Unhealthy {
        /// The health check URL.
        url: String,
        /// Its status.
        status: reqwest::StatusCode,
    },
    /// `bench append`: the load generator itself failed (a task panicked, a histogram
    /// could not be built, the HTTP client could not be built).
    #[error("the load generator failed: {what}")]
    LoadGenerator {
        /// What failed.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: BoxedError,
    },
}

/// What became of the split-view evidence carried by a [`CliError::Misbehaviour`].
#[derive(Debug)]
pub(crate) enum EvidenceOutcome {
    /// The error carried none.
    None,
    /// Written to this file.
    Written(PathBuf),
    /// Could not be written to `path`, so it was printed on standard output.
    Printed {
        /// Where it should have gone.
        path: PathBuf,
        /// Why it could not be written.
        error: std::io::Error,
    },
}

impl std::fmt::Display for EvidenceOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvidenceOutcome::None => Ok(()),
            EvidenceOutcome::Written(path) => write!(f, "; evidence: {}", path.display()),
            EvidenceOutcome::Printed { path, error } => write!(
                f,
                "; the evidence could not be written to {} ({error}) and was printed on standard output",
                path.display()
            ),
        }
    }
}

/// Whether a ledger error shows that the stored log does not verify (as opposed to a failure
/// to read it): a stored hash that does not recompute, a root or a signed checkpoint that does
/// not match.
pub(crate) fn is_ledger_verification_failure(err: &veritrail_ledger::Error) -> bool {
    matches!(
        err,
        veritrail_ledger::Error::Corrupted { .. }
            | veritrail_ledger::Error::RootMismatch { .. }
            | veritrail_ledger::Error::CheckpointMismatch { .. }
    )
}

impl CliError {
    /// True when the log, a receipt or evidence failed verification (exit code 1).
    pub(crate) fn is_verification_failure(&self) -> bool {
        matches!(
            self,
            CliError::LogVerification { .. }
                | CliError::Misbehaviour { .. }
                | CliError::NoReceipt { .. }
                | CliError::BadReceipt { .. }
                | CliError::Policy { .. }
                | CliError::ReceiptForOtherEntry { .. }
                | CliError::ArchiveInvalid { .. }
        )
    }

    /// 1 when the log failed verification, 2 when the command could not run or check.
    pub(crate) fn exit_code(&self) -> ExitCode {
        if self.is_verification_failure() {
            ExitCode::from(1)
        } else {
            ExitCode::from(2)
        }
    }

    /// What the user should do next.
    pub(crate) fn hint(&self) -> String {
        match self {
            CliError::Usage { hint, .. } => hint.clone(),
            CliError::Read { .. } => "check the path and its permissions".into(),
            CliError::Write { .. } => "check that the directory exists and is writable".into(),
            CliError::Stdout { .. } => "check where standard output goes (a closed pipe, a full disk)".into(),
            CliError::KeyName { .. } => {
                "use the log's origin, e.g. audit.example.com/log (no spaces, no '+')".into()
            }
            CliError::SigningKey { .. } => {
                "pass a file written by `veritrail keygen` (PRIVATE+KEY+...)".into()
            }
            CliError::KeyExists { .. } => {
                "pass another --out path, or move the old key away first".into()
            }
            CliError::Generate { .. } => {
                "the system's random number generator failed; retry, and report it if it persists".into()
            }
            CliError::OpenStore { .. } => {
                "check that --data is writable and that no other veritrail process uses it".into()
            }
            CliError::OpenPermissions { .. } => "audit data must be private: rerun with --fix-permissions to make every directory 0700 and every file 0600 (owner only), or fix them with chmod yourself".into(),
            CliError::StoreRefused { .. } => "the store was refused; run `veritrail log verify` for details and restore from a backup if it is damaged".into(),
            CliError::LogVerification { .. } => "the store does not match its own hashes; restore it from a backup and keep this copy as evidence".into(),
            CliError::Audit { .. } => "nothing is known about the log yet; check the disk and that no other veritrail process uses --data, then retry".into(),
            CliError::LocalAppend { .. } => "nothing was appended; check the disk and retry".into(),
            CliError::Reindex { .. } => "check the disk and that no `veritrail serve` uses --data, then retry; the server also rebuilds a missing index at start".into(),
            CliError::Sign { .. } => "the entries are stored; run `veritrail log append` again later (with no file, it appends standard input) or `veritrail serve` to sign a checkpoint".into(),
            CliError::Runtime { .. } | CliError::Logging { .. } | CliError::LoadGenerator { .. } => "report this".into(),
            CliError::Auth { .. } => {
                "fix the token file (see docs/operations.md) or pass another --auth".into()
            }
            CliError::Listen { .. } => {
                "pick another --listen address or stop whatever uses that port".into()
            }
            CliError::ServerStart {
                source: veritrail_server::StartError::Config(_),
            } => "fix the setting named above (see `veritrail serve --help`)".into(),
            CliError::ServerStart { .. } => "check the data directory and the system's thread limits, then retry".into(),
            CliError::Serve { .. } => "see the log above".into(),
            CliError::Client { source } => client_hint(source).into(),
            CliError::Misbehaviour { source, evidence } => match evidence {
                EvidenceOutcome::Written(path) => format!(
                    "keep the evidence and the state file, and report to the log operator; anyone can check it offline with `veritrail verify-evidence --log-key <key> {}`",
                    path.display()
                ),
                EvidenceOutcome::Printed { .. } => {
                    "save the evidence printed above, and report to the log operator".into()
                }
                EvidenceOutcome::None => misbehaviour_hint(source).into(),
            },
            CliError::NoReceipt { .. } => {
                "retry later with `veritrail prove <index> --receipt FILE`".into()
            }
            CliError::Policy { .. } => "the checkpoint lacks cosignatures the policy requires: check --policy is the one for this log, and that its witnesses are up (the log publishes only what they cosign)".into(),
            CliError::BadReceipt { .. } => "the entry was appended but the log's proof is wrong (or --log-key / --origin are not this log's); nothing was written; report it to the log operator".into(),
            CliError::ReceiptForOtherEntry { .. } => {
                "nothing was written; report it to the log operator".into()
            }
            CliError::ReceiptNotSaved { index, .. } => format!(
                "do not append it again; get the receipt with `veritrail prove {index} --receipt FILE`"
            ),
            CliError::BuildReceipt { .. } => "report this".into(),
            CliError::Unreachable { .. } => {
                "start the server (`veritrail serve`) or pass its address with --url".into()
            }
            CliError::Unhealthy { .. } => "is --url the address of a `veritrail serve`?".into(),
            CliError::Archive { .. } => "nothing unverified was purged; fix the cause above (the target's permissions, space, credentials) and run it again: a run finishes what an interrupted one left".into(),
            CliError::ArchiveInvalid { .. } => "do not rely on this copy: keep it as evidence, and restore the archive from another copy (the log's hash tiles still prove every entry of a good copy)".into(),
            CliError::ArchiveUnreadable { .. } => "check the location, its credentials (AWS_* for s3://) and the network, then retry".into(),
            CliError::BenchFailed { unauthorized, .. } => if *unauthorized {
                "pass a token with the append role: --token or VERITRAIL_TOKEN"
            } else {
                "see the errors above and the server log"
            }
            .into(),
        }
    }

    /// The two lines printed on standard error: `error: <message and causes>` and
    /// `hint: <what to do>`.
    pub(crate) fn report(&self) -> String {
        format!("error: {}\nhint: {}", with_causes(self), self.hint())
    }
}

/// The hint for a client error that is not misbehaviour.
fn client_hint(err: &ClientError) -> &'static str {
    match err {
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
    }
}

/// The hint for misbehaviour without evidence.
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

/// The error's message followed by those of its causes not already in it (a transport
/// error's root cause, such as "Connection refused", is several levels down; a variant whose
/// message already quotes its source does not repeat it).
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use veritrail_ledger::Hash;

    #[test]
    fn only_verification_failures_exit_1() {
        let corrupted = CliError::LogVerification {
            source: veritrail_ledger::Error::RootMismatch {
                size: 1,
                recorded: Hash([0; 32]),
                derived: Hash([1; 32]),
            },
        };
        assert!(corrupted.is_verification_failure());
        assert_eq!(corrupted.exit_code(), ExitCode::from(1));
        let report = corrupted.report();
        assert!(
            report.starts_with("error: log verification failed: root mismatch at tree size 1"),
            "{report}"
        );
        assert!(report.contains("\nhint: "), "{report}");
        let io = CliError::Read {
            path: "x".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(!io.is_verification_failure());
        assert_eq!(io.exit_code(), ExitCode::from(2));
        assert!(
            io.report().starts_with("error: cannot read x: "),
            "{}",
            io.report()
        );
    }

    #[test]
    fn ledger_errors_are_sorted_into_verification_and_storage() {
        use veritrail_ledger::Error;
        assert!(is_ledger_verification_failure(&Error::Corrupted {
            what: "x".into()
        }));
        assert!(is_ledger_verification_failure(&Error::CheckpointMismatch {
            size: 3,
            reason: veritrail_ledger::error::CheckpointMismatch::BeyondStore { held: 2 }
        }));
        assert!(!is_ledger_verification_failure(&Error::Storage {
            context: "read",
            source: "x".into()
        }));
        assert!(!is_ledger_verification_failure(&Error::Io {
            context: "read",
            path: None,
            source: std::io::Error::other("x")
        }));
    }
}
