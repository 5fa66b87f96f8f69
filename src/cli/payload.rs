//! `veritrail payload`: fetch a record's payload and prove it — the record against the pinned
//! log key, the payload against the record's commitment — before writing it out.

use std::path::PathBuf;

use veritrail_client::records::verified_payload;

use crate::cli::common::args::{KeyArgs, ServerArgs};
use crate::cli::common::error::CliError;
use crate::cli::common::evidence::client_error;
use crate::cli::common::io::stdout;
use crate::cli::common::runtime::runtime;

/// Arguments of `veritrail payload`.
#[derive(Debug, clap::Args)]
pub(crate) struct PayloadArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The log's verifier key (required: nothing is written that was not proven).
    #[command(flatten)]
    key: KeyArgs,
    /// Write the payload to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// The record's index.
    index: u64,
    /// The payload's name, e.g. `prompt`.
    name: String,
}

/// Proves and writes the payload.
///
/// # Errors
/// [`CliError::Usage`] without `--log-key`; [`CliError::Client`] when the log cannot be
/// reached, refuses (a `payload_erased` answer names the erasure record), or serves a record
/// or payload that does not verify (exit code 1).
pub(crate) fn run(args: &PayloadArgs) -> Result<(), CliError> {
    let Some(pinned) = args.key.optional()? else {
        return Err(CliError::Usage {
            message: "payload needs --log-key: a payload is only written once it is proven".into(),
            hint: "pass --log-key <data>/log.vkey (or the key the log's operator published)".into(),
        });
    };
    let client = args.server.client()?;
    let verified = runtime()?
        .block_on(verified_payload(
            &client,
            args.index,
            &args.name,
            &pinned.key,
            Some(&pinned.origin),
        ))
        .map_err(|e| client_error(e, None))?;
    match &args.out {
        Some(path) => {
            std::fs::write(path, &verified.payload).map_err(|source| CliError::Write {
                path: path.clone(),
                source,
            })?
        }
        None => stdout(&verified.payload)?,
    }
    eprintln!(
        "payload {:?} of record {} verified ({}, {} bytes): the record is in {} at tree size {}, and the payload opens its commitment",
        verified.name,
        verified.record.index,
        verified.media_type,
        verified.payload.len(),
        verified.record.checkpoint.origin,
        verified.record.checkpoint.tree.size
    );
    Ok(())
}
