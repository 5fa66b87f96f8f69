//! Client errors into [`CliError`]s: misbehaviour (exit code 1) with its split-view evidence
//! saved first, or a failure to check (exit code 2).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use veritrail_client::{ClientError, Evidence};

use crate::cli::common::error::{CliError, EvidenceOutcome};
use crate::cli::common::io::sibling;

/// Where split-view evidence goes without --evidence or --state.
pub(crate) const DEFAULT_EVIDENCE: &str = "veritrail.evidence.json";

/// The CLI error for a client error: [`CliError::Misbehaviour`] (exit 1) when the log failed
/// verification, [`CliError::Client`] (exit 2) otherwise. Split-view evidence, if the error
/// carries some, is written to `evidence_path` first (or printed on standard output if it
/// cannot be written: evidence is never lost).
pub(crate) fn client_error(err: ClientError, evidence_path: Option<&Path>) -> CliError {
    if !err.is_misbehaviour() {
        return CliError::Client { source: err };
    }
    let evidence = match err.evidence() {
        None => EvidenceOutcome::None,
        Some(evidence) => {
            let path = evidence_path.unwrap_or(Path::new(DEFAULT_EVIDENCE));
            match write_evidence(path, evidence) {
                Ok(written) => {
                    eprintln!("wrote split-view evidence to {}", written.display());
                    EvidenceOutcome::Written(written)
                }
                Err(error) => {
                    let _ = std::io::stdout().write_all(&evidence.to_bytes());
                    EvidenceOutcome::Printed {
                        path: path.to_owned(),
                        error,
                    }
                }
            }
        }
    };
    CliError::Misbehaviour {
        source: err,
        evidence,
    }
}

/// Writes evidence to `path`, or to `path.1`, `path.2`, ... when it exists (evidence is
/// never overwritten). Returns the path written.
///
/// # Errors
/// The I/O error, or `AlreadyExists` after 1000 files.
pub(crate) fn write_evidence(path: &Path, evidence: &Evidence) -> std::io::Result<PathBuf> {
    let bytes = evidence.to_bytes();
    let mut candidate = path.to_owned();
    for n in 1..=1000u32 {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&candidate)
        {
            Ok(mut file) => {
                file.write_all(&bytes)?;
                file.sync_all()?;
                return Ok(candidate);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if std::fs::read(&candidate).is_ok_and(|old| old == bytes) {
                    return Ok(candidate);
                }
                candidate = sibling(path, &n.to_string());
            }
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        "too many evidence files",
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use veritrail_ledger::note::{KeyName, NoteSigner};

    #[test]
    fn evidence_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json.evidence.json");
        let key =
            NoteSigner::from_seed(KeyName::new("audit.test/log").unwrap(), [7; 32]).verifier();
        let one = Evidence::same_size("audit.test/log", &key, b"a", b"b");
        let two = Evidence::same_size("audit.test/log", &key, b"a", b"c");
        assert_eq!(write_evidence(&path, &one).unwrap(), path);
        // The same evidence again: already there.
        assert_eq!(write_evidence(&path, &one).unwrap(), path);
        let second = write_evidence(&path, &two).unwrap();
        assert_eq!(second, dir.path().join("s.json.evidence.json.1"));
        assert_eq!(std::fs::read(&path).unwrap(), one.to_bytes());
        assert_eq!(std::fs::read(&second).unwrap(), two.to_bytes());
    }
}
