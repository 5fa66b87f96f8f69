//! `veritrail checkpoint`: print the log's latest checkpoint; with `--verify`, check its
//! signature and its consistency with the trusted state, then trust it.

use veritrail_client::Update;

use crate::cli::common::args::{ServerArgs, TrustArgs};
use crate::cli::common::error::CliError;
use crate::cli::common::evidence::client_error;
use crate::cli::common::io::stdout;
use crate::cli::common::runtime::runtime;

/// Arguments of `veritrail checkpoint`.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckpointArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    trust: TrustArgs,
    /// Check the signature (needs --log-key) and the consistency with the trusted
    /// checkpoint in --state, then trust and save the new one.
    #[arg(long)]
    verify: bool,
}

/// Prints the latest checkpoint; with `--verify`, checks it and reports how the trusted
/// state moved.
///
/// # Errors
/// [`CliError::Misbehaviour`] (exit code 1) when the checkpoint does not verify or
/// contradicts the trusted state, [`CliError::Client`] when it cannot be fetched.
pub(crate) fn run(args: &CheckpointArgs) -> Result<(), CliError> {
    if !args.verify {
        let client = args.server.client()?;
        let note = runtime()?
            .block_on(client.checkpoint())
            .map_err(|e| client_error(e, None))?;
        stdout(&note)?;
        eprintln!("not verified: pass --verify --log-key <key> --state <file> to check it");
        return Ok(());
    }
    let pinned = args.trust.key.required("checkpoint --verify")?;
    let (client, checkpoint, update) =
        runtime()?.block_on(args.trust.latest(&pinned, &args.server))?;
    if let Some((_, note)) = client.verifier().trusted() {
        stdout(note)?;
    }
    let n = checkpoint.tree.size;
    let what = match update {
        Update::First => format!(
            "first: trusting the checkpoint of size {n} on first use (signature by {} verified)",
            pinned.key.name()
        ),
        Update::Grew { from } => {
            format!("grew from {from} to {n}: signature and consistency proof verified")
        }
        Update::Unchanged => format!("unchanged at size {n}"),
        Update::Older => format!(
            "older: the log served size {n}, a prefix of the trusted size {}; trust unchanged",
            client.verifier().trusted_size()
        ),
        _ => format!("verified size {n}"),
    };
    eprintln!("{what}");
    match &args.trust.state.state {
        Some(path) => eprintln!("trusted state saved to {}", path.display()),
        None => eprintln!(
            "warning: no --state: nothing is remembered, so a fork or rollback cannot be detected next time"
        ),
    }
    Ok(())
}
