//! `veritrail get`: read an entry; with `--verify`, prove first that it is in the log,
//! against the latest verified checkpoint.

use std::path::PathBuf;

use crate::cli::common::args::{ServerArgs, TrustArgs, check_covered};
use crate::cli::common::error::CliError;
use crate::cli::common::evidence::client_error;
use crate::cli::common::io::stdout;
use crate::cli::common::runtime::runtime;

/// Arguments of `veritrail get`.
#[derive(Debug, clap::Args)]
pub(crate) struct GetArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    trust: TrustArgs,
    /// Prove the entry is in the log (against its latest verified checkpoint) before writing
    /// it. Needs --log-key.
    #[arg(long)]
    verify: bool,
    /// Write the entry to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// The entry's index.
    index: u64,
}

/// Writes the entry's bytes to standard output or `--out`; with `--verify`, proves it first.
///
/// # Errors
/// [`CliError::Usage`] for an index beyond the verified tree, [`CliError::Misbehaviour`]
/// (exit code 1) when the log's proof, checkpoint or entry does not verify,
/// [`CliError::Client`] when it cannot be fetched, [`CliError::Write`].
pub(crate) fn run(args: &GetArgs) -> Result<(), CliError> {
    let entry = if args.verify {
        let pinned = args.trust.key.required("get --verify")?;
        let runtime = runtime()?;
        runtime.block_on(async {
            let (mut client, checkpoint, _) = args.trust.latest(&pinned, &args.server).await?;
            let size = client.verifier().trusted_size();
            check_covered(args.index, size)?;
            let (entry, proven) = client
                .get(args.index)
                .await
                .map_err(|e| client_error(e, None))?;
            eprintln!(
                "verified: entry {} (leaf hash {}) is in {} at tree size {}",
                proven.index,
                proven.leaf_hash.to_base64(),
                checkpoint.origin,
                proven.checkpoint.tree.size
            );
            Ok::<_, CliError>(entry)
        })?
    } else {
        let client = args.server.client()?;
        runtime()?
            .block_on(client.entry(args.index))
            .map_err(|e| client_error(e, None))?
    };
    match &args.out {
        Some(path) => std::fs::write(path, &entry).map_err(|source| CliError::Write {
            path: path.clone(),
            source,
        })?,
        None => stdout(&entry)?,
    }
    Ok(())
}
