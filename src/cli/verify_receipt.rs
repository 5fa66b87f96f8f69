//! `veritrail verify-receipt`: check a receipt offline, against the verifier key given on
//! the command line only.
//!
//! Prints one line on standard output: `valid: ...` with exit code 0, or `invalid: <reason>`
//! with exit code 1. A file that cannot be read is exit code 2.

use std::path::PathBuf;
use std::process::ExitCode;

use veritrail_ledger::bundle::MAX_ENTRY_SIZE;
use veritrail_ledger::receipt::MAX_RECEIPT_SIZE;

use crate::cli::common::args::KeyArgs;
use crate::cli::common::error::CliError;
use crate::cli::common::io::{read_capped, verdict};

/// Arguments of `veritrail verify-receipt`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyReceiptArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// The entry's bytes: a file, or `-` for standard input.
    #[arg(long, value_name = "FILE|-")]
    entry: PathBuf,
    /// The receipt file (c2sp.org/tlog-proof@v1), as `veritrail append --receipt` writes it.
    #[arg(value_name = "RECEIPT")]
    receipt: PathBuf,
}

/// Prints `valid: ...` (exit code 0) or `invalid: <reason>` (exit code 1).
///
/// # Errors
/// [`CliError::Usage`] without `--log-key`, [`CliError::Read`] when a file cannot be read
/// (exit code 2: nothing was verified).
pub(crate) fn run(args: &VerifyReceiptArgs) -> Result<ExitCode, CliError> {
    let pinned = args.key.required("verify-receipt")?;
    let receipt = read_capped(&args.receipt, MAX_RECEIPT_SIZE)?;
    let entry = read_capped(&args.entry, MAX_ENTRY_SIZE)?;
    let hint = "the entry bytes, the receipt, or the log key and origin are not what the log signed; check that each is the right file";
    if entry.len() > MAX_ENTRY_SIZE {
        return verdict(
            &format!(
                "invalid: {} is larger than {MAX_ENTRY_SIZE} bytes, the most a log entry holds",
                args.entry.display()
            ),
            false,
            hint,
        );
    }
    match veritrail_client::verify_receipt(&receipt, &entry, &pinned.key, Some(&pinned.origin)) {
        Ok((receipt, checkpoint)) => {
            if let Err(e) = pinned.check_policy(&receipt.checkpoint, "the receipt's checkpoint") {
                return verdict(
                    &format!("invalid: {e}"),
                    false,
                    "the receipt's checkpoint lacks the cosignatures --policy requires: get a receipt from a log that publishes cosigned checkpoints, or check --policy",
                );
            }
            let quorum = if pinned.policy.is_some() {
                ", cosigned by the policy's quorum"
            } else {
                ""
            };
            verdict(
                &format!(
                    "valid: entry {} is in {} at tree size {}{quorum}",
                    receipt.index, checkpoint.origin, checkpoint.tree.size
                ),
                true,
                "",
            )
        }
        Err(e) => verdict(&format!("invalid: {e}"), false, hint),
    }
}
