//! The `veritrail` command-line tool.
//!
//! - `veritrail keygen` creates a log signing key;
//! - `veritrail log append` appends files as entries to the embedded store and signs a
//!   checkpoint; `veritrail log verify` re-checks a store offline;
//! - `veritrail serve` runs the HTTP server; `veritrail bench append` load-tests it.
//!
//! Client commands, against a running log ([`remote`], [`monitor`]) or offline
//! ([`offline`]), verifying everything against the pinned `--log-key`:
//!
//! - `veritrail append` appends an entry over HTTP (with `--wait`/`--receipt`, checks and
//!   saves its receipt);
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

mod bench;
mod datadir;
mod monitor;
mod offline;
mod remote;
mod serve;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use veritrail_ledger::bundle::MAX_ENTRY_SIZE;
use veritrail_ledger::leaf_hash;
use veritrail_ledger::note::{KeyName, NoteSigner};

use crate::datadir::DataArgs;

/// Veritrail: a tamper-evident, append-only audit ledger for AI agents.
#[derive(Debug, Parser)]
#[command(name = "veritrail", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate an Ed25519 log signing key (C2SP signed-note format).
    ///
    /// Writes the private key (`PRIVATE+KEY+...`, the Go note convention) to a new file with
    /// mode 0600 and prints the verifier key that auditors and witnesses pin.
    Keygen {
        /// The key name: the log's origin, e.g. `audit.example.com/log`.
        #[arg(long)]
        name: String,
        /// Where to write the private key. Never overwritten.
        #[arg(long, default_value = "veritrail.key")]
        out: PathBuf,
    },
    /// Run the HTTP server on the embedded store (creates the data directory, key and an
    /// admin token on first start).
    Serve(Box<serve::ServeArgs>),
    /// Work directly on a local log's data directory (offline).
    #[command(subcommand)]
    Log(LogCommand),
    /// Load generators: measure durable appends over HTTP or in-process.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    #[command(flatten)]
    Client(remote::ClientCommand),
}

#[derive(Debug, Subcommand)]
enum LogCommand {
    /// Append each FILE (or standard input, `-`) as one entry, durably, then sign and print a
    /// checkpoint. Creates the data directory, store and signing key on first use.
    Append {
        #[command(flatten)]
        data: DataArgs,
        /// Files to append, one entry each (at most 65535 bytes). `-` or none: standard input.
        files: Vec<PathBuf>,
    },
    /// Verify a log offline: re-derive the root from the tiles, check the last signed
    /// checkpoint, and re-hash every entry against the stored leaf hashes.
    Verify {
        #[command(flatten)]
        data: DataArgs,
    },
}

/// A CLI failure: what went wrong and what to do next.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{message}\nhint: {hint}")]
    Usage { message: String, hint: String },
    #[error("{message}\nhint: {hint}")]
    Ledger { message: String, hint: String },
    #[error("cannot read {path}: {source}\nhint: check the path and its permissions")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "log verification failed: {0}\nhint: the store does not match its own hashes; restore it from a backup and keep this copy as evidence"
    )]
    Verify(String),
    #[error(
        "invalid key name {name:?}: {reason}\nhint: use the log's origin, e.g. audit.example.com/log (no spaces, no '+')"
    )]
    KeyName { name: String, reason: String },
    #[error(
        "{path} already exists; refusing to overwrite a key\nhint: pass another --out path, or move the old key away first"
    )]
    KeyExists { path: String },
    #[error("cannot write {path}: {source}\nhint: check that the directory exists and is writable")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot generate a key: {0}")]
    Generate(String),
    /// The log (or a receipt or evidence) failed verification: exit code 1.
    #[error("{message}\nhint: {hint}")]
    Misbehaviour { message: String, hint: String },
}

impl CliError {
    /// 1 when the log failed verification, 2 when the command could not run or check.
    fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Misbehaviour { .. } => ExitCode::from(1),
            _ => ExitCode::from(2),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let done = |()| ExitCode::SUCCESS;
    let result = match cli.command {
        Command::Keygen { name, out } => keygen(&name, &out).map(done),
        Command::Serve(args) => serve::serve(*args).map(done),
        Command::Log(LogCommand::Append { data, files }) => log_append(&data, &files).map(done),
        Command::Log(LogCommand::Verify { data }) => log_verify(&data).map(done),
        Command::Bench(command) => bench::run(command).map(done),
        Command::Client(command) => remote::run(command),
    };
    result.unwrap_or_else(|err| {
        eprintln!("error: {err}");
        err.exit_code()
    })
}

fn keygen(name: &str, out: &std::path::Path) -> Result<(), CliError> {
    let name = KeyName::new(name).map_err(|e| CliError::KeyName {
        name: name.to_owned(),
        reason: e.to_string(),
    })?;
    let signer = NoteSigner::generate(name).map_err(|e| CliError::Generate(e.to_string()))?;
    write_private_key(out, &signer.to_private_key_string())?;
    println!("{}", signer.verifier());
    eprintln!(
        "wrote the private key to {} (mode 0600); the line above is the verifier key",
        out.display()
    );
    Ok(())
}

fn read_entry(path: &std::path::Path) -> Result<Vec<u8>, CliError> {
    let bytes = if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut buf).map(|_| buf)
    } else {
        std::fs::read(path)
    }
    .map_err(|source| CliError::Read {
        path: path.display().to_string(),
        source,
    })?;
    if bytes.len() > MAX_ENTRY_SIZE {
        return Err(CliError::Usage {
            message: format!(
                "{} is {} bytes; an entry holds at most {MAX_ENTRY_SIZE}",
                path.display(),
                bytes.len()
            ),
            hint: "store large payloads elsewhere and append a digest or reference to them".into(),
        });
    }
    Ok(bytes)
}

fn ledger_error(e: veritrail_ledger::Error) -> CliError {
    CliError::Ledger {
        message: e.to_string(),
        hint: "nothing was appended; check the disk and retry".into(),
    }
}

fn log_append(data: &DataArgs, files: &[PathBuf]) -> Result<(), CliError> {
    let stdin = [PathBuf::from("-")];
    let files = if files.is_empty() { &stdin[..] } else { files };
    // Read and check every file before touching the log: a bad one appends nothing.
    let entries = files
        .iter()
        .map(|f| read_entry(f))
        .collect::<Result<Vec<_>, _>>()?;
    let ledger = data.open()?;
    let appended = ledger.append(&entries).map_err(ledger_error)?;
    for ((index, entry), file) in appended.indices.clone().zip(&entries).zip(files) {
        println!(
            "index {index} leaf_hash {} {}",
            leaf_hash(entry).to_base64(),
            file.display()
        );
    }
    let signed = ledger.sign_checkpoint().map_err(ledger_error)?;
    print!("{}", String::from_utf8_lossy(&signed.note));
    eprintln!("verifier key: {}", ledger.verifier());
    Ok(())
}

fn log_verify(data: &DataArgs) -> Result<(), CliError> {
    // Opening re-derives the root from the edge tiles and checks the last signed checkpoint;
    // the audit then re-hashes every entry and every full tile.
    let ledger = data.open()?;
    let report = ledger
        .audit()
        .map_err(|e| CliError::Verify(e.to_string()))?;
    println!("origin {}", ledger.origin());
    println!("tree_size {}", report.tree.size);
    println!("root {}", report.tree.root.to_base64());
    match ledger.latest_checkpoint() {
        Some(last) => println!(
            "last_checkpoint {} (signature and root verified)",
            last.checkpoint.tree.size
        ),
        None => println!("last_checkpoint none"),
    }
    println!("entries_rehashed {}", report.entries);
    println!("full_tiles_rehashed {}", report.full_tiles);
    println!("ok");
    Ok(())
}

/// Creates `path` with mode 0600, failing if it exists.
pub(crate) fn write_private_key(path: &std::path::Path, key: &str) -> Result<(), CliError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let display = path.display().to_string();
    let mut file = options.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            CliError::KeyExists {
                path: display.clone(),
            }
        } else {
            CliError::Write {
                path: display.clone(),
                source,
            }
        }
    })?;
    file.write_all(format!("{key}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|source| CliError::Write {
            path: display,
            source,
        })
}
