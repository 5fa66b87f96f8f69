//! The data directory: which store it holds, the log's origin and its signing key.
//!
//! Layout (`--data`, default `./veritrail-data`):
//!
//! ```text
//! veritrail-data/
//!   ledger.redb      the redb store (default), or
//!   ledger.sled/     the sled store (--store sled)
//!   log.key          the signing key, generated on first use with mode 0600 (unless --key)
//! ```
//!
//! The origin is recorded in the store when it is created and is fixed from then on.

use std::path::{Path, PathBuf};

use veritrail_ledger::Ledger;
use veritrail_ledger::note::{KeyName, NoteSigner};
use veritrail_ledger::store::{self, Backend};

use crate::cli::common::error::CliError;
use crate::cli::common::io::write_private_key;

/// File name of the generated signing key inside the data directory.
const KEY_FILE: &str = "log.key";

/// Where and how to open the log.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DataArgs {
    /// Data directory (created on first use).
    #[arg(long, default_value = "veritrail-data", env = "VERITRAIL_DATA")]
    pub(crate) data: PathBuf,
    /// Store backend: redb (default) or sled. Defaults to the one the directory holds.
    #[arg(long)]
    pub(crate) store: Option<String>,
    /// The log's origin (checkpoint name). Defaults to the recorded one, or, for a new log,
    /// `<host name>/veritrail`.
    #[arg(long)]
    pub(crate) origin: Option<String>,
    /// Signing key file (`PRIVATE+KEY+...`). Default: `<data>/log.key`, generated if absent.
    #[arg(long)]
    pub(crate) key: Option<PathBuf>,
    /// Make every directory in --data 0700 and every file 0600 if any is open to other users
    /// (without it, such a data directory is refused).
    #[arg(long)]
    pub(crate) fix_permissions: bool,
}

/// Every directory and file under `dir` (itself included; symbolic links are not followed)
/// that other users may read, write or enter, with its permission bits.
fn open_to_others(dir: &Path) -> Vec<(PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        } else if !meta.is_file() {
            continue;
        }
        if mode & 0o077 != 0 {
            found.push((path, mode));
        }
    }
    found.sort();
    found
}

/// Checks that nothing in the data directory is open to other users; with `fix`, makes what
/// is owner-only (directories 0700, files 0600) and says so on standard error.
///
/// # Errors
/// [`CliError::OpenPermissions`] without `fix`; [`CliError::Write`] if a mode cannot be set.
pub(crate) fn check_permissions(dir: &Path, fix: bool) -> Result<(), CliError> {
    use std::os::unix::fs::PermissionsExt as _;
    let open = open_to_others(dir);
    if open.is_empty() {
        return Ok(());
    }
    if !fix {
        return Err(CliError::OpenPermissions {
            data: dir.to_owned(),
            paths: open,
        });
    }
    for (path, mode) in &open {
        let private = if path.is_dir() { 0o700 } else { 0o600 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(private)).map_err(
            |source| CliError::Write {
                path: path.clone(),
                source,
            },
        )?;
        eprintln!(
            "fixed permissions: {} {mode:o} -> {private:o}",
            path.display()
        );
    }
    Ok(())
}

/// The store backend a directory already holds, if any.
fn existing_backend(dir: &Path) -> Option<Backend> {
    if dir.join("ledger.redb").exists() {
        Some(Backend::Redb)
    } else if dir.join("ledger.sled").exists() {
        Some(Backend::Sled)
    } else {
        None
    }
}

/// The default origin of a new log: `<host name>/veritrail`.
fn default_origin() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic() && c != '+'))
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}/veritrail")
}

impl DataArgs {
    /// Opens (creating on first use) the log described by these arguments.
    ///
    /// # Errors
    /// [`CliError::OpenPermissions`] when something in the directory is open to other users
    /// (unless `--fix-permissions`), [`CliError::Usage`] for a wrong `--store`,
    /// [`CliError::OpenStore`] when the store
    /// cannot be opened, [`CliError::StoreRefused`] when the ledger refuses it, and the key
    /// errors of loading or generating the signing key.
    pub(crate) fn open(&self) -> Result<Ledger, CliError> {
        check_permissions(&self.data, self.fix_permissions)?;
        let backend = match (&self.store, existing_backend(&self.data)) {
            (Some(name), existing) => {
                let wanted: Backend = name.parse().map_err(|_| CliError::Usage {
                    message: format!("unknown store {name:?}"),
                    hint: "use --store redb (the default) or --store sled".into(),
                })?;
                if let Some(existing) = existing.filter(|e| *e != wanted) {
                    return Err(CliError::Usage {
                        message: format!(
                            "{} holds a {existing:?} store, not {name}",
                            self.data.display()
                        ),
                        hint: "drop --store, or point --data at another directory".into(),
                    });
                }
                wanted
            }
            (None, existing) => existing.unwrap_or(Backend::Redb),
        };
        let store = store::open(backend, &self.data).map_err(|source| CliError::OpenStore {
            data: self.data.clone(),
            source,
        })?;
        let recorded = store
            .kv()
            .meta("origin")
            .ok()
            .flatten()
            .map(|o| String::from_utf8_lossy(&o).into_owned());
        let origin = match (&self.origin, recorded) {
            (Some(given), _) => given.clone(),
            (None, Some(recorded)) => recorded,
            (None, None) => default_origin(),
        };
        let signer = self.signer(&origin)?;
        Ledger::open(store, &origin, signer).map_err(|source| CliError::StoreRefused {
            data: self.data.clone(),
            source,
        })
    }

    /// Loads the signing key, generating `<data>/log.key` on first use.
    fn signer(&self, origin: &str) -> Result<NoteSigner, CliError> {
        let path = self.key.clone().unwrap_or_else(|| self.data.join(KEY_FILE));
        if self.key.is_none() && !path.exists() {
            let name = KeyName::new(origin).map_err(|source| CliError::KeyName {
                name: origin.to_owned(),
                source,
            })?;
            let signer = NoteSigner::generate(name).map_err(|source| CliError::Generate {
                what: "a signing key",
                source: Box::new(source),
            })?;
            write_private_key(&path, &signer.to_private_key_string())?;
            eprintln!("generated a signing key in {} (mode 0600)", path.display());
            eprintln!("verifier key: {}", signer.verifier());
            return Ok(signer);
        }
        read_signer(&path)
    }
}

/// Reads a `PRIVATE+KEY+...` file.
///
/// # Errors
/// [`CliError::Read`], or [`CliError::SigningKey`] when the file holds no signing key.
fn read_signer(path: &Path) -> Result<NoteSigner, CliError> {
    let text = std::fs::read_to_string(path).map_err(|source| CliError::Read {
        path: path.to_owned(),
        source,
    })?;
    text.trim().parse().map_err(|source| CliError::SigningKey {
        path: path.to_owned(),
        source,
    })
}
