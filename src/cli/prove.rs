//! `veritrail prove`: an inclusion proof, by index or `--leaf-hash`, verified against the
//! log's latest checkpoint; `--receipt` saves it as a receipt.

use std::path::PathBuf;

use veritrail_client::VerifiedInclusion;
use veritrail_ledger::Hash;

use crate::cli::common::args::{ServerArgs, TrustArgs, check_covered};
use crate::cli::common::error::CliError;
use crate::cli::common::evidence::client_error;
use crate::cli::common::io::stdout;
use crate::cli::common::runtime::runtime;

/// Arguments of `veritrail prove`.
#[derive(Debug, clap::Args)]
pub(crate) struct ProveArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    trust: TrustArgs,
    /// Prove the first entry with this leaf hash (base64 of SHA-256(0x00 || entry)) instead
    /// of an index. Needs a --token with the read role (unless the server runs with
    /// --public-read): the lookup tells whether an entry is in the log.
    #[arg(long, value_name = "BASE64", conflicts_with = "index")]
    leaf_hash: Option<String>,
    /// Write the proof as a receipt (c2sp.org/tlog-proof@v1) to this file.
    #[arg(long, value_name = "FILE")]
    receipt: Option<PathBuf>,
    /// The entry's index.
    #[arg(required_unless_present = "leaf_hash")]
    index: Option<u64>,
}

/// Prints the verified proof (`index`, `leaf_hash`, `tree_size`, `root`, `proof` lines) and
/// saves it as a receipt with `--receipt`.
///
/// # Errors
/// [`CliError::Usage`] for a bad `--leaf-hash` or an index beyond the tree,
/// [`CliError::Misbehaviour`] (exit code 1) when the log's proof or checkpoint does not
/// verify, [`CliError::Client`] when it cannot be fetched, [`CliError::Write`].
pub(crate) fn run(args: &ProveArgs) -> Result<(), CliError> {
    let pinned = args.trust.key.required("prove")?;
    let leaf = match &args.leaf_hash {
        Some(text) => Some(Hash::from_base64(text.trim()).map_err(|e| CliError::Usage {
            message: format!("--leaf-hash {text:?}: {e}"),
            hint: "pass 32 bytes in standard base64, as `veritrail append` prints".into(),
        })?),
        None => None,
    };
    let proven: VerifiedInclusion = runtime()?.block_on(async {
        let (mut client, _, _) = args.trust.latest(&pinned, &args.server).await?;
        let proven = match (leaf, args.index) {
            (Some(leaf), _) => client.prove_leaf_hash(&leaf).await,
            (None, Some(index)) => {
                check_covered(index, client.verifier().trusted_size())?;
                client.prove(index).await
            }
            (None, None) => {
                return Err(CliError::Usage {
                    message: "nothing to prove".into(),
                    hint: "pass an index or --leaf-hash".into(),
                });
            }
        };
        proven.map_err(|e| client_error(e, None))
    })?;
    let mut text = format!(
        "index {}\nleaf_hash {}\ntree_size {}\nroot {}\n",
        proven.index,
        proven.leaf_hash.to_base64(),
        proven.checkpoint.tree.size,
        proven.checkpoint.tree.root.to_base64()
    );
    for hash in &proven.proof {
        text.push_str(&format!("proof {}\n", hash.to_base64()));
    }
    stdout(text.as_bytes())?;
    eprintln!(
        "verified: entry {} is in {} at tree size {}",
        proven.index, proven.checkpoint.origin, proven.checkpoint.tree.size
    );
    if let Some(path) = &args.receipt {
        let receipt = proven
            .receipt()
            .map_err(|source| CliError::BuildReceipt { source })?;
        std::fs::write(path, receipt.to_bytes()).map_err(|source| CliError::Write {
            path: path.clone(),
            source,
        })?;
        eprintln!("wrote the receipt to {}", path.display());
    }
    Ok(())
}
