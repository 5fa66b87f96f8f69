//! Local files and standard streams: entries and capped inputs, key files that are never
//! overwritten, standard output that reports a closed pipe instead of panicking.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use veritrail_ledger::bundle::MAX_ENTRY_SIZE;

use crate::cli::common::error::CliError;

/// Writes to standard output; a closed pipe is an error, not a panic.
///
/// # Errors
/// [`CliError::Stdout`].
pub(crate) fn stdout(bytes: &[u8]) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|source| CliError::Stdout { source })
}

/// Reads one entry from `path` (`-`: standard input) and checks that it fits in a log entry.
///
/// # Errors
/// [`CliError::Read`], or [`CliError::Usage`] for an entry over [`MAX_ENTRY_SIZE`] bytes.
pub(crate) fn read_entry(path: &Path) -> Result<Vec<u8>, CliError> {
    let bytes = read_capped(path, MAX_ENTRY_SIZE)?;
    if bytes.len() > MAX_ENTRY_SIZE {
        return Err(CliError::Usage {
            message: format!(
                "{} is {}; an entry holds at most {MAX_ENTRY_SIZE}",
                path.display(),
                file_size(path).map_or_else(
                    || format!("more than {MAX_ENTRY_SIZE} bytes"),
                    |n| format!("{n} bytes")
                )
            ),
            hint: "store large payloads elsewhere and append a digest or reference to them".into(),
        });
    }
    Ok(bytes)
}

/// The size of a regular file, for messages (standard input has none).
fn file_size(path: &Path) -> Option<u64> {
    if path.as_os_str() == "-" {
        return None;
    }
    std::fs::metadata(path).ok().map(|m| m.len())
}

/// Reads at most `max + 1` bytes of `path` (`-`: standard input), so that an oversized input
/// is detected without reading it all.
///
/// # Errors
/// [`CliError::Read`].
pub(crate) fn read_capped(path: &Path, max: usize) -> Result<Vec<u8>, CliError> {
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let mut bytes = Vec::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().lock().take(limit).read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(limit).read_to_end(&mut bytes))
    };
    read.map_err(|source| CliError::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok(bytes)
}

/// Creates `path` with mode 0600 holding `key` and a newline, failing if it exists.
///
/// # Errors
/// [`CliError::KeyExists`] if `path` exists, else [`CliError::Write`].
pub(crate) fn write_private_key(path: &Path, key: &str) -> Result<(), CliError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            CliError::KeyExists {
                path: path.to_owned(),
            }
        } else {
            CliError::Write {
                path: path.to_owned(),
                source,
            }
        }
    })?;
    file.write_all(format!("{key}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|source| CliError::Write {
            path: path.to_owned(),
            source,
        })
}

/// Prints the verdict line of an offline check and returns its exit code: 0 when `ok`,
/// else 1, with `hint` on standard error.
///
/// # Errors
/// [`CliError::Stdout`].
pub(crate) fn verdict(line: &str, ok: bool, hint: &str) -> Result<ExitCode, CliError> {
    stdout(format!("{line}\n").as_bytes())?;
    if ok {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("hint: {hint}");
        Ok(ExitCode::from(1))
    }
}

/// `<path>.<suffix>`, beside `path`.
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

/// The text at `path` in a record (`["actor", "id"]`), or `-`: for one-line listings.
pub(crate) fn record_field(record: &serde_json::Value, path: &[&str]) -> String {
    path.iter()
        .try_fold(record, |v, k| v.get(k))
        .and_then(|v| v.as_str())
        .unwrap_or("-")
        .to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn oversized_entries_are_refused_without_reading_them_whole() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; MAX_ENTRY_SIZE + 10]).unwrap();
        assert_eq!(read_capped(&big, 4).unwrap().len(), 5);
        let Err(CliError::Usage { message, .. }) = read_entry(&big) else {
            panic!("an oversized entry is a usage error");
        };
        assert!(
            message.contains(&format!("{} bytes", MAX_ENTRY_SIZE + 10)),
            "{message}"
        );
        assert!(matches!(
            read_entry(&dir.path().join("missing")),
            Err(CliError::Read { .. })
        ));
    }

    #[test]
    fn keys_are_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        write_private_key(&path, "one").unwrap();
        assert!(matches!(
            write_private_key(&path, "two"),
            Err(CliError::KeyExists { .. })
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\n");
    }

    #[test]
    fn siblings_sit_beside_the_file() {
        assert_eq!(
            sibling(Path::new("state.json"), "tiles"),
            Path::new("state.json.tiles")
        );
    }
}
