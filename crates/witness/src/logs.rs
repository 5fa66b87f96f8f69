//! The logs a witness trusts: one file per log in `<data>/logs/`, named by the hex SHA-256 of
//! the log's origin and holding its verifier key (the key's name is the origin).
//!
//! `veritrail witness add-log` writes a file (atomically: a temporary file, synced, then
//! renamed, then the directory synced); a running witness reads it the first time a request
//! names that origin, so a new log needs no restart. A log's file is never replaced by another
//! key and there is no removal: a witness that forgot a log and trusted it again could cosign
//! a checkpoint inconsistent with one it cosigned before, a split view.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use sha2::{Digest as _, Sha256};
use veritrail_ledger::ascii::to_hex;
use veritrail_ledger::note::{NoteVerifier, SIG_TYPE_ED25519};

/// The directory of trusted logs inside a witness's data directory.
pub const LOGS_DIR: &str = "logs";
/// Largest log key file read.
const MAX_KEY_FILE: u64 = 4096;

/// Why a log cannot be added or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogsError {
    /// The key is not an Ed25519 note verifier key.
    #[error("not an Ed25519 log verifier key (<origin>+<key id>+<base64>): {0}")]
    Key(String),
    /// The origin is already trusted with another key.
    #[error(
        "{origin} is already trusted with another key ({existing}); a witness never replaces a log's key"
    )]
    OtherKey {
        /// The log's origin.
        origin: String,
        /// The key it is trusted with.
        existing: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// The hex SHA-256 of an origin: the name of its files and of its `GET /checkpoint/` path.
pub fn origin_hash(origin: &str) -> String {
    to_hex(&Sha256::digest(origin.as_bytes()))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LogsError + '_ {
    move |source| LogsError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Parses a log verifier key: an Ed25519 note key whose name is the origin.
///
/// # Errors
/// [`LogsError::Key`].
pub fn parse_log_key(text: &str) -> Result<NoteVerifier, LogsError> {
    let verifier: NoteVerifier = text
        .trim()
        .parse()
        .map_err(|e| LogsError::Key(format!("{e}")))?;
    if verifier.signature_type() != SIG_TYPE_ED25519 {
        return Err(LogsError::Key(format!(
            "signature type 0x{:02x}, not Ed25519 (0x01)",
            verifier.signature_type()
        )));
    }
    Ok(verifier)
}

/// Trusts a log: writes its key file in `<data>/logs/`. Adding the same key again is a no-op;
/// another key for a trusted origin is refused. Returns whether the log is new.
///
/// # Errors
/// [`LogsError`].
pub fn add_log(data: &Path, key: &str) -> Result<bool, LogsError> {
    let verifier = parse_log_key(key)?;
    let dir = data.join(LOGS_DIR);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let origin = verifier.name().as_str().to_owned();
    let path = dir.join(origin_hash(&origin));
    if let Some(existing) = read_key(&path)? {
        if existing == verifier {
            return Ok(false);
        }
        return Err(LogsError::OtherKey {
            origin,
            existing: existing.to_string(),
        });
    }
    let temporary = dir.join(format!(".{}.tmp", origin_hash(&origin)));
    {
        let mut file = std::fs::File::create(&temporary).map_err(io(&temporary))?;
        writeln!(file, "{verifier}").map_err(io(&temporary))?;
        file.sync_all().map_err(io(&temporary))?;
    }
    std::fs::rename(&temporary, &path).map_err(io(&path))?;
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io(&dir))?;
    Ok(true)
}

/// The key in a log's file, if the file exists.
fn read_key(path: &Path) -> Result<Option<NoteVerifier>, LogsError> {
    use std::io::Read as _;
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    let mut text = String::new();
    file.take(MAX_KEY_FILE)
        .read_to_string(&mut text)
        .map_err(io(path))?;
    parse_log_key(&text).map(Some)
}

/// The trusted logs of a running witness, read from `<data>/logs/` as requests name them.
#[derive(Debug)]
pub struct Logs {
    dir: PathBuf,
    known: RwLock<HashMap<String, NoteVerifier>>,
}

impl Logs {
    /// The logs of the witness whose data directory is `data`.
    pub fn new(data: &Path) -> Self {
        Logs {
            dir: data.join(LOGS_DIR),
            known: RwLock::new(HashMap::new()),
        }
    }

    /// The key the log `origin` is trusted with, if it is.
    ///
    /// # Errors
    /// [`LogsError`] if its file exists but cannot be read or holds no valid key, or holds
    /// the key of another origin.
    pub fn key(&self, origin: &str) -> Result<Option<NoteVerifier>, LogsError> {
        if let Some(key) = self
            .known
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(origin)
        {
            return Ok(Some(key.clone()));
        }
        let Some(key) = read_key(&self.dir.join(origin_hash(origin)))? else {
            return Ok(None);
        };
        if key.name().as_str() != origin {
            return Err(LogsError::Key(format!(
                "the file for {origin} holds a key named {}",
                key.name()
            )));
        }
        self.known
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(origin.to_owned(), key.clone());
        Ok(Some(key))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use veritrail_ledger::cosignature::CosignatureSigner;
    use veritrail_ledger::note::{KeyName, NoteSigner};

    #[test]
    fn logs_are_added_once_never_replaced_and_seen_without_restart() {
        let dir = tempfile::tempdir().unwrap();
        let logs = Logs::new(dir.path());
        let log = NoteSigner::generate(KeyName::new("example.com/log").unwrap()).unwrap();
        assert!(logs.key("example.com/log").unwrap().is_none());
        assert!(add_log(dir.path(), &log.verifier().to_string()).unwrap());
        assert_eq!(logs.key("example.com/log").unwrap(), Some(log.verifier()));
        assert!(!add_log(dir.path(), &log.verifier().to_string()).unwrap());
        let other = NoteSigner::generate(KeyName::new("example.com/log").unwrap()).unwrap();
        assert!(matches!(
            add_log(dir.path(), &other.verifier().to_string()),
            Err(LogsError::OtherKey { .. })
        ));
        let witness = CosignatureSigner::generate(KeyName::new("w").unwrap()).unwrap();
        assert!(matches!(
            add_log(dir.path(), &witness.verifier().to_string()),
            Err(LogsError::Key(_))
        ));
        assert!(matches!(
            add_log(dir.path(), "garbage"),
            Err(LogsError::Key(_))
        ));
    }
}
