//! `veritrail verify-evidence`: check split-view evidence offline, against the verifier key
//! given on the command line only.
//!
//! Prints one line on standard output: `proven: ...` with exit code 0, or
//! `not proven: <reason>` with exit code 1. A file that cannot be read is exit code 2.

use std::path::PathBuf;
use std::process::ExitCode;

use veritrail_client::Evidence;
use veritrail_client::evidence::{MAX_EVIDENCE_SIZE, MisbehaviourKind};

use crate::cli::common::args::KeyArgs;
use crate::cli::common::error::CliError;
use crate::cli::common::io::{read_capped, verdict};

/// Arguments of `veritrail verify-evidence`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyEvidenceArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// The evidence file, as `veritrail monitor` or `veritrail checkpoint --verify` write it.
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

/// Prints `proven: ...` (exit code 0) or `not proven: <reason>` (exit code 1).
///
/// # Errors
/// [`CliError::Usage`] without `--log-key`, [`CliError::Read`] when the file cannot be read
/// (exit code 2: nothing was verified).
pub(crate) fn run(args: &VerifyEvidenceArgs) -> Result<ExitCode, CliError> {
    let pinned = args.key.required("verify-evidence")?;
    let bytes = read_capped(&args.file, MAX_EVIDENCE_SIZE)?;
    let hint = "this file does not show that the log misbehaved, under the key given; check --log-key and that the file is the one the monitor wrote";
    let evidence = match Evidence::from_bytes(&bytes) {
        Ok(evidence) => evidence,
        Err(e) => return verdict(&format!("not proven: {e}"), false, hint),
    };
    if evidence.origin != pinned.origin {
        return verdict(
            &format!(
                "not proven: the evidence is about log {:?}, not {:?}",
                evidence.origin, pinned.origin
            ),
            false,
            hint,
        );
    }
    match evidence.verify(&pinned.key) {
        Ok(proven) => {
            let (a, b) = (&proven.a.tree, &proven.b.tree);
            let line = match proven.kind {
                MisbehaviourKind::PrefixMismatch { prefix_root_in_b } => format!(
                    "proven: {} signed a checkpoint of size {} with root {}, and one of size {} whose first {} entries have root {}: the log forked its history (split view)",
                    evidence.origin,
                    a.size,
                    a.root.to_base64(),
                    b.size,
                    a.size,
                    prefix_root_in_b.to_base64()
                ),
                MisbehaviourKind::SameSizeDifferentRoots => format!(
                    "proven: {} signed two different roots for tree size {}: {} and {} (split view)",
                    evidence.origin,
                    a.size,
                    a.root.to_base64(),
                    b.root.to_base64()
                ),
                _ => format!(
                    "proven: {} signed contradictory checkpoints of sizes {} and {}",
                    evidence.origin, a.size, b.size
                ),
            };
            verdict(&line, true, "")
        }
        Err(e) => verdict(&format!("not proven: {e}"), false, hint),
    }
}
