//! The `veritrail` command-line tool.
//!
//! `veritrail keygen` creates a log signing key. Serving, appending, proving and auditing
//! subcommands arrive with the server and client crates.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use veritrail_ledger::note::{KeyName, NoteSigner};

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
}

/// A CLI failure: what went wrong and what to do next.
#[derive(Debug, thiserror::Error)]
enum CliError {
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keygen { name, out } => keygen(&name, &out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(2)
        }
    }
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

/// Creates `path` with mode 0600, failing if it exists.
fn write_private_key(path: &std::path::Path, key: &str) -> Result<(), CliError> {
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
