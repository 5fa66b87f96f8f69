//! `veritrail append`: append an entry to a running log over HTTP; with `--wait` or
//! `--receipt`, wait until a signed checkpoint covers it and check its receipt against
//! `--log-key`.

use std::path::PathBuf;

use veritrail_client::{AppendOptions, verify_receipt};

use crate::cli::common::args::{KeyArgs, ServerArgs};
use crate::cli::common::error::CliError;
use crate::cli::common::evidence::client_error;
use crate::cli::common::io::{read_entry, stdout};
use crate::cli::common::runtime::runtime;

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

/// Appends the entry and prints `index <n> leaf_hash <base64>`; with `--wait`, checks the
/// receipt and saves it to `--receipt`.
///
/// # Errors
/// [`CliError::Usage`] for an empty entry, [`CliError::Client`] when the log cannot be
/// reached or refuses the entry; with `--wait`, [`CliError::NoReceipt`],
/// [`CliError::BadReceipt`] or [`CliError::ReceiptForOtherEntry`] (exit code 1) when the
/// receipt does not verify, and [`CliError::ReceiptNotSaved`].
pub(crate) fn run(args: &AppendArgs) -> Result<(), CliError> {
    let path = args.file.clone().unwrap_or_else(|| PathBuf::from("-"));
    let entry = read_entry(&path)?;
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
        None => AppendOptions::with_random_key(wait).map_err(|e| client_error(e, None))?,
    };
    let appended = runtime()?
        .block_on(client.append(&entry, &options))
        .map_err(|e| client_error(e, None))?;
    stdout(
        format!(
            "index {} leaf_hash {}\n",
            appended.index,
            appended.leaf_hash.to_base64()
        )
        .as_bytes(),
    )?;
    if !wait {
        return Ok(());
    }
    let Some(published) = appended.published else {
        return Err(CliError::NoReceipt {
            index: appended.index,
        });
    };
    match &pinned {
        Some(pinned) => {
            let (receipt, checkpoint) = verify_receipt(
                &published.receipt,
                &entry,
                &pinned.key,
                Some(&pinned.origin),
            )
            .map_err(|source| CliError::BadReceipt {
                index: appended.index,
                source,
            })?;
            pinned.check_policy(&receipt.checkpoint, "the receipt's checkpoint")?;
            if receipt.index != appended.index {
                return Err(CliError::ReceiptForOtherEntry {
                    appended: appended.index,
                    receipt: receipt.index,
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
        std::fs::write(path, &published.receipt).map_err(|source| CliError::ReceiptNotSaved {
            index: appended.index,
            path: path.clone(),
            source,
        })?;
        eprintln!("wrote the receipt to {}", path.display());
    }
    Ok(())
}
