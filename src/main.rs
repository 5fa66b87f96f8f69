//! The `veritrail` command-line tool.
//!
//! - `veritrail keygen` creates a log signing key;
//! - `veritrail log append` appends files as entries to the embedded store and signs a
//!   checkpoint; `veritrail log verify` re-checks a store offline;
//! - `veritrail serve` runs the HTTP server; `veritrail bench append` load-tests it.
//!
//! Client commands, against a running log or offline, verifying everything against the pinned
//! `--log-key`:
//!
//! - `veritrail append` appends an entry over HTTP (with `--wait`/`--receipt`, checks and
//!   saves its receipt);
//! - `veritrail query` selects records, each proven and checked against the query;
//!   `veritrail audit conversation` proves a conversation complete and prints its timeline;
//! - `veritrail get` reads an entry (with `--verify`, proven against the latest checkpoint);
//! - `veritrail prove` proves an entry's inclusion, by index or `--leaf-hash`;
//! - `veritrail checkpoint` prints the latest checkpoint (with `--verify`, checks it against
//!   the trusted `--state` and trusts it);
//! - `veritrail monitor` audits every entry and tile, once or following the log, resuming
//!   after a restart and writing split-view evidence on a fork;
//! - `veritrail verify-receipt` and `veritrail verify-evidence` check a receipt or evidence
//!   file offline.
//!
//! Exit codes: 0 ok; 1 the log, a receipt or evidence failed verification; 2 the command
//! could not run or check (usage, network, local files).
//!
//! This file only parses the command line and dispatches; each command lives in its own
//! module under [`cli`].

mod cli;

use std::process::ExitCode;

/// mimalloc instead of the system allocator: a request allocates and frees many small
/// buffers across threads (hyper, axum, the committer), where glibc's malloc spent ~10% of
/// the server's CPU (`docs/performance.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

use crate::cli::common::error::CliError;
use crate::cli::{
    admin, append, archive, audit, bench, checkpoint, get, keygen, log_append, log_verify, monitor,
    payload, prove, query, record, retention, serve, verify_evidence, verify_receipt, witness,
};

/// Veritrail: a tamper-evident, append-only audit ledger for AI agents.
#[derive(Debug, Parser)]
#[command(name = "veritrail", version, about, propagate_version = true)]
struct Cli {
    /// The command to run.
    #[command(subcommand)]
    command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Generate an Ed25519 log signing key (C2SP signed-note format).
    ///
    /// Writes the private key (`PRIVATE+KEY+...`, the Go note convention) to a new file with
    /// mode 0600 and prints the verifier key that auditors and witnesses pin.
    Keygen(keygen::KeygenArgs),
    /// Run the HTTP server on the embedded store (creates the data directory, key and an
    /// admin token on first start).
    Serve(Box<serve::ServeArgs>),
    /// Work directly on a local log's data directory (offline).
    #[command(subcommand)]
    Log(LogCommand),
    /// Load generators: measure durable appends over HTTP or in-process.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Append an entry to a running log over HTTP.
    ///
    /// Prints its index and leaf hash. With --wait (or --receipt), waits until a signed
    /// checkpoint covers the entry and checks its receipt against --log-key.
    Append(Box<append::AppendArgs>),
    /// Append agent audit records (a JSON event, or an array) to a running log over HTTP.
    ///
    /// Prints each record's index, id and leaf hash, after checking that the log stored the
    /// event unchanged. With --wait (or --receipt), waits until a signed checkpoint covers
    /// the records and checks their receipts against --log-key.
    Record(Box<record::RecordArgs>),
    /// Fetch a record's payload and prove it before writing it out.
    ///
    /// Proves the record in the log against --log-key and the payload against the record's
    /// commitment; writes the payload to standard output (or --out). Needs the audit role.
    Payload(Box<payload::PayloadArgs>),
    /// Query records on a running log, proving every answer.
    ///
    /// Each record is proven against a checkpoint signed by --log-key and checked to match
    /// the filters before it is printed (one line per record, or --json). Needs the audit
    /// role.
    Query(Box<query::QueryArgs>),
    /// Audit records on a running log: `audit conversation <id>` proves one conversation
    /// complete and prints its timeline.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Retention: `retention plan` lists, by entry bundle, when each may leave the primary
    /// store and which rule keeps it (a dry run on a stopped server's data directory).
    #[command(subcommand)]
    Retention(retention::RetentionCommand),
    /// Archive what has expired, verify the archive, then purge it from the primary store.
    ///
    /// On a stopped server's --data: plans retention at --until under --policy and the legal
    /// holds in force, writes each run of expired bundles (with the hash tiles that prove
    /// them, a checkpoint, the records' sealed payloads and a manifest signed by the log key)
    /// to --to, reads it all back and verifies it, appends a purge record, and only then
    /// purges the bundles' entries and payloads. Hash tiles stay: every proof still works.
    Archive(Box<archive::ArchiveArgs>),
    /// Verify archives offline.
    ///
    /// Exit code 0 if every archive at LOCATION is complete and proven against a checkpoint
    /// signed by --log-key; 1 if one is not (the reason is printed); 2 if one cannot be read.
    VerifyArchive(Box<archive::VerifyArchiveArgs>),
    /// Run a C2SP tlog-witness: `witness serve` cosigns checkpoints of the logs it trusts,
    /// `witness add-log` trusts one more.
    #[command(subcommand)]
    Witness(witness::WitnessCommand),
    /// Maintain a stopped server's data directory: `admin reindex` rebuilds the record
    /// indexes from the log.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Read an entry from a running log.
    ///
    /// Writes its raw bytes to standard output (or --out). With --verify, proves first that
    /// it is in the log, against the latest verified checkpoint.
    Get(Box<get::GetArgs>),
    /// Prove that an entry is in the log.
    ///
    /// Prints an inclusion proof verified against the latest checkpoint, for an index or a
    /// --leaf-hash; --receipt saves it as a receipt.
    Prove(Box<prove::ProveArgs>),
    /// Fetch and print the log's latest checkpoint.
    ///
    /// With --verify, checks its signature and its consistency with the trusted checkpoint
    /// in --state, then trusts it.
    Checkpoint(Box<checkpoint::CheckpointArgs>),
    /// Audit every entry of the log and follow it.
    ///
    /// Downloads every entry bundle, rebuilds the tree and checks it against the log's tiles
    /// and signed checkpoints; resumes from its tile cache after a restart. Follows the log
    /// until Ctrl-C or SIGTERM, or catches up once with --once.
    Monitor(Box<monitor::MonitorArgs>),
    /// Check a receipt offline.
    ///
    /// Exit code 0 if the entry is in the log at the receipt's checkpoint, signed by
    /// --log-key; 1 if not.
    VerifyReceipt(Box<verify_receipt::VerifyReceiptArgs>),
    /// Check split-view evidence offline.
    ///
    /// Exit code 0 if the file proves that the log signed two contradictory checkpoints
    /// with --log-key; 1 if not.
    VerifyEvidence(Box<verify_evidence::VerifyEvidenceArgs>),
}

/// `veritrail log ...`
#[derive(Debug, Subcommand)]
enum LogCommand {
    /// Append each FILE (or standard input, `-`) as one entry, durably, then sign and print a
    /// checkpoint. Creates the data directory, store and signing key on first use.
    Append(log_append::LogAppendArgs),
    /// Verify a log offline: re-derive the root from the tiles, check the last signed
    /// checkpoint, and re-hash every entry against the stored leaf hashes.
    Verify(log_verify::LogVerifyArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let done = |()| ExitCode::SUCCESS;
    let result: Result<ExitCode, CliError> = match cli.command {
        Command::Keygen(args) => keygen::run(&args).map(done),
        Command::Serve(args) => serve::run(*args).map(done),
        Command::Log(LogCommand::Append(args)) => log_append::run(&args).map(done),
        Command::Log(LogCommand::Verify(args)) => log_verify::run(&args).map(done),
        Command::Bench(command) => bench::run(command).map(done),
        Command::Append(args) => append::run(&args).map(done),
        Command::Record(args) => record::run(&args).map(done),
        Command::Payload(args) => payload::run(&args).map(done),
        Command::Query(args) => query::run(&args).map(done),
        Command::Audit(command) => audit::run(&command).map(done),
        Command::Admin(command) => admin::run(&command).map(done),
        Command::Witness(command) => witness::run(command).map(done),
        Command::Retention(command) => retention::run(&command).map(done),
        Command::Archive(args) => archive::run(&args).map(done),
        Command::VerifyArchive(args) => archive::verify(&args).map(done),
        Command::Get(args) => get::run(&args).map(done),
        Command::Prove(args) => prove::run(&args).map(done),
        Command::Checkpoint(args) => checkpoint::run(&args).map(done),
        Command::Monitor(args) => monitor::run(&args).map(done),
        Command::VerifyReceipt(args) => verify_receipt::run(&args),
        Command::VerifyEvidence(args) => verify_evidence::run(&args),
    };
    result.unwrap_or_else(|err| {
        eprintln!("{}", err.report());
        err.exit_code()
    })
}
