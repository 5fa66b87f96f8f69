//! `veritrail log append`: append files as entries to the local store, durably, then sign
//! and print a checkpoint.

use std::path::PathBuf;

use veritrail_ledger::leaf_hash;

use crate::cli::common::datadir::DataArgs;
use crate::cli::common::error::CliError;
use crate::cli::common::io::read_entry;

/// Arguments of `veritrail log append`.
#[derive(Debug, clap::Args)]
pub(crate) struct LogAppendArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Files to append, one entry each (at most 65535 bytes). `-` or none: standard input.
    files: Vec<PathBuf>,
}

/// Reads and checks every file first (a bad one appends nothing), appends them, signs a
/// checkpoint and prints `index <n> leaf_hash <base64> <file>` lines and the checkpoint.
///
/// # Errors
/// [`CliError::Read`] or [`CliError::Usage`] for an input, the errors of
/// [`DataArgs::open`], [`CliError::LocalAppend`] or [`CliError::Sign`].
pub(crate) fn run(args: &LogAppendArgs) -> Result<(), CliError> {
    let stdin = [PathBuf::from("-")];
    let files = if args.files.is_empty() {
        &stdin[..]
    } else {
        &args.files[..]
    };
    // Read and check every file before touching the log: a bad one appends nothing.
    let entries = files
        .iter()
        .map(|f| read_entry(f))
        .collect::<Result<Vec<_>, _>>()?;
    let ledger = args.data.open()?;
    let appended = ledger
        .append(&entries)
        .map_err(|source| CliError::LocalAppend { source })?;
    for ((index, entry), file) in appended.indices.clone().zip(&entries).zip(files) {
        println!(
            "index {index} leaf_hash {} {}",
            leaf_hash(entry).to_base64(),
            file.display()
        );
    }
    let signed = ledger
        .sign_checkpoint()
        .map_err(|source| CliError::Sign { source })?;
    print!("{}", String::from_utf8_lossy(&signed.note));
    eprintln!("verifier key: {}", ledger.verifier());
    Ok(())
}
