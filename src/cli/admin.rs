//! `veritrail admin ...`: maintenance of a stopped server's data directory.

use std::time::Instant;

use crate::cli::common::datadir::DataArgs;
use crate::cli::common::error::CliError;

/// `veritrail admin ...`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum AdminCommand {
    /// Rebuild the record indexes (`<data>/record-index.redb`) from the log.
    ///
    /// The server keeps them behind its committer and rebuilds a missing or damaged index
    /// at start; this does it offline, with progress, and reports the rate. Stop the server
    /// first (the store refuses a second process).
    Reindex(ReindexArgs),
}

/// Arguments of `veritrail admin reindex`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReindexArgs {
    #[command(flatten)]
    data: DataArgs,
}

/// Runs an `admin` subcommand.
///
/// # Errors
/// The errors of opening the data directory; [`CliError::Reindex`].
pub(crate) fn run(command: &AdminCommand) -> Result<(), CliError> {
    match command {
        AdminCommand::Reindex(args) => reindex(args),
    }
}

fn reindex(args: &ReindexArgs) -> Result<(), CliError> {
    use veritrail_server::record_index::{INDEX_FILE, RecordIndex};
    // Opening the store first: it refuses while a server holds it.
    let ledger = args.data.open()?;
    let path = args.data.data.join(INDEX_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => eprintln!("removed {}", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(CliError::Write { path, source });
        }
    }
    let size = ledger.tree_head().size;
    let index =
        RecordIndex::open(&args.data.data, size).map_err(|source| CliError::Reindex { source })?;
    let bar = indicatif::ProgressBar::new(size);
    let started = Instant::now();
    loop {
        let read = index
            .step(&ledger)
            .map_err(|source| CliError::Reindex { source })?;
        if read == 0 {
            break;
        }
        bar.inc(read);
    }
    index
        .flush()
        .map_err(|source| CliError::Reindex { source })?;
    bar.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "indexed {size} entries in {elapsed:.2} s ({:.0} entries/s) into {}",
        size as f64 / elapsed.max(1e-9),
        path.display()
    );
    Ok(())
}
