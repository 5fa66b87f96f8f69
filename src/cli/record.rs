//! `veritrail record`: append agent audit records (one JSON event, or an array of them) to a
//! running log over HTTP; each answer is checked to hold its event unchanged, and with
//! `--wait` or `--receipt` each record's receipt is verified against `--log-key`.

use std::path::PathBuf;

use veritrail_client::{AppendOptions, verify_receipt};

use crate::cli::common::args::{KeyArgs, ServerArgs};
use crate::cli::common::error::CliError;
use crate::cli::common::evidence::client_error;
use crate::cli::common::io::{read_capped, stdout};
use crate::cli::common::runtime::runtime;

/// Largest JSON input: 1,000 records of at most 64 KiB each.
const MAX_INPUT: usize = 64 << 20;

/// Arguments of `veritrail record`.
#[derive(Debug, clap::Args)]
pub(crate) struct RecordArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Verifies the receipts of --wait / --receipt (without it, they are not checked).
    #[command(flatten)]
    key: KeyArgs,
    /// Wait until a signed checkpoint covers the records; then check their receipts.
    #[arg(long)]
    wait: bool,
    /// Write the record's receipt (c2sp.org/tlog-proof@v1) to this file (one record only).
    /// Implies --wait.
    #[arg(long, value_name = "FILE")]
    receipt: Option<PathBuf>,
    /// Idempotency key: running the command again with the same key and input returns the
    /// first result instead of appending twice. Default: a random key, which makes the
    /// command's own retries safe.
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,
    /// The event (a JSON object) or events (a JSON array of 1 to 1,000): a file, or `-` (the
    /// default) for standard input. docs/events.md documents the fields.
    #[arg(value_name = "FILE|-")]
    file: Option<PathBuf>,
}

/// Appends the records and prints `index <n> id <uuid> leaf_hash <base64>` for each.
///
/// # Errors
/// [`CliError::Usage`] for input that is not JSON or holds no event; [`CliError::Client`]
/// when the log cannot be reached or refuses the records (an `invalid_record` answer names
/// every field at fault); with `--wait`, the receipt errors of `veritrail append`.
pub(crate) fn run(args: &RecordArgs) -> Result<(), CliError> {
    let path = args.file.clone().unwrap_or_else(|| PathBuf::from("-"));
    let name = if path.as_os_str() == "-" {
        "standard input".to_owned()
    } else {
        path.display().to_string()
    };
    let bytes = read_capped(&path, MAX_INPUT)?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| CliError::Usage {
        message: format!("{name} is not JSON: {e}"),
        hint: "give one event as a JSON object, or an array of events (see docs/events.md)".into(),
    })?;
    let events = match value {
        serde_json::Value::Array(items) => items,
        one => vec![one],
    };
    if events.is_empty() {
        return Err(CliError::Usage {
            message: format!("{name} holds an empty array"),
            hint: "give 1 to 1,000 events".into(),
        });
    }
    if args.receipt.is_some() && events.len() != 1 {
        return Err(CliError::Usage {
            message: format!("--receipt takes one record; {name} holds {}", events.len()),
            hint: "use --wait to verify the receipts of many records, or send them one by one"
                .into(),
        });
    }
    let pinned = args.key.optional()?;
    let wait = args.wait || args.receipt.is_some();
    let client = args.server.client()?;
    let options = match &args.idempotency_key {
        Some(key) => AppendOptions {
            wait_published: wait,
            idempotency_key: Some(key.clone()),
        },
        None => AppendOptions::with_random_key(wait).map_err(|e| client_error(e, None))?,
    };
    let recorded = runtime()?
        .block_on(client.append_record_values(&events, &options))
        .map_err(|e| client_error(e, None))?;
    let mut out = String::new();
    for record in &recorded {
        out.push_str(&format!(
            "index {} id {} leaf_hash {}\n",
            record.index,
            record.id,
            record.leaf_hash.to_base64()
        ));
    }
    stdout(out.as_bytes())?;
    if !wait {
        return Ok(());
    }
    for record in &recorded {
        let Some(published) = &record.published else {
            return Err(CliError::NoReceipt {
                index: record.index,
            });
        };
        if let Some(pinned) = &pinned {
            let (receipt, _) = verify_receipt(
                &published.receipt,
                &record.leaf,
                &pinned.key,
                Some(&pinned.origin),
            )
            .map_err(|source| CliError::BadReceipt {
                index: record.index,
                source,
            })?;
            pinned.check_policy(&receipt.checkpoint, "the receipt's checkpoint")?;
            if receipt.index != record.index {
                return Err(CliError::ReceiptForOtherEntry {
                    appended: record.index,
                    receipt: receipt.index,
                });
            }
        }
        if let Some(path) = &args.receipt {
            std::fs::write(path, &published.receipt).map_err(|source| {
                CliError::ReceiptNotSaved {
                    index: record.index,
                    path: path.clone(),
                    source,
                }
            })?;
            eprintln!("wrote the receipt to {}", path.display());
        }
    }
    match pinned {
        Some(_) => eprintln!("receipts verified: {} record(s)", recorded.len()),
        None => eprintln!(
            "warning: the receipts were not verified (no --log-key); check them with `veritrail verify-receipt`"
        ),
    }
    Ok(())
}
