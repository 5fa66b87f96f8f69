//! The offline checks: `veritrail verify-receipt` and `veritrail verify-evidence`. Neither
//! touches the network; the only trust anchor is the verifier key given on the command line.
//!
//! Both print one line on standard output, `valid: ...` / `proven: ...` with exit code 0, or
//! `invalid: <reason>` / `not proven: <reason>` with exit code 1. A file that cannot be read
//! is exit code 2.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use veritrail_client::Evidence;
use veritrail_client::evidence::{MAX_EVIDENCE_SIZE, MisbehaviourKind};
use veritrail_ledger::bundle::MAX_ENTRY_SIZE;
use veritrail_ledger::receipt::MAX_RECEIPT_SIZE;

use crate::CliError;
use crate::remote::{KeyArgs, stdout};

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

/// Arguments of `veritrail verify-evidence`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyEvidenceArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// The evidence file, as `veritrail monitor` or `veritrail checkpoint --verify` write it.
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

/// Reads at most `max + 1` bytes of `path` (`-`: standard input), so that an oversized input
/// is detected without reading it all.
fn read_capped(path: &Path, max: usize) -> Result<Vec<u8>, CliError> {
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let mut bytes = Vec::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().lock().take(limit).read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(limit).read_to_end(&mut bytes))
    };
    read.map_err(|source| CliError::Read {
        path: path.display().to_string(),
        source,
    })?;
    Ok(bytes)
}

/// Prints the verdict line and returns the exit code for it.
fn verdict(line: &str, ok: bool, hint: &str) -> Result<ExitCode, CliError> {
    stdout(format!("{line}\n").as_bytes())?;
    if ok {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("hint: {hint}");
        Ok(ExitCode::from(1))
    }
}

pub(crate) fn verify_receipt(args: &VerifyReceiptArgs) -> Result<ExitCode, CliError> {
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
        Ok((receipt, checkpoint)) => verdict(
            &format!(
                "valid: entry {} is in {} at tree size {}",
                receipt.index, checkpoint.origin, checkpoint.tree.size
            ),
            true,
            "",
        ),
        Err(e) => verdict(&format!("invalid: {e}"), false, hint),
    }
}

pub(crate) fn verify_evidence(args: &VerifyEvidenceArgs) -> Result<ExitCode, CliError> {
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
