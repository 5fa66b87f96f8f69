//! `veritrail log verify`: re-check a local store offline.
//!
//! Opening the store re-derives the root from the edge tiles and checks the last signed
//! checkpoint; the audit then re-hashes every entry and every full tile. A store that does
//! not match its own hashes or checkpoint is a verification failure (exit code 1); a store
//! that cannot be read is a failure to check (exit code 2).

use crate::cli::common::datadir::DataArgs;
use crate::cli::common::error::{CliError, is_ledger_verification_failure};

/// Arguments of `veritrail log verify`.
#[derive(Debug, clap::Args)]
pub(crate) struct LogVerifyArgs {
    #[command(flatten)]
    data: DataArgs,
}

/// Verifies the store and prints what was checked, ending with `ok`.
///
/// # Errors
/// [`CliError::LogVerification`] (exit code 1) when the store does not verify; the errors
/// of [`DataArgs::open`] or [`CliError::Audit`] when it cannot be checked.
pub(crate) fn run(args: &LogVerifyArgs) -> Result<(), CliError> {
    let ledger = args.data.open().map_err(|err| match err {
        CliError::StoreRefused { source, .. } | CliError::OpenStore { source, .. }
            if is_ledger_verification_failure(&source) =>
        {
            CliError::LogVerification { source }
        }
        other => other,
    })?;
    let report = ledger.audit().map_err(|source| {
        if is_ledger_verification_failure(&source) {
            CliError::LogVerification { source }
        } else {
            CliError::Audit { source }
        }
    })?;
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
