//! The classification registry of a running server ([`veritrail_records::Registry`]), loaded
//! from `--classification FILE` at start and again on `SIGHUP`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use veritrail_records::{Registry, RegistryError};

use crate::swap::Swap;

/// Largest registry file accepted, in bytes.
const MAX_REGISTRY_FILE: u64 = 16 << 20;

/// Why the registry file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryFileError {
    /// The file cannot be read.
    #[error("cannot read the classification registry {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is larger than 16 MiB.
    #[error("the classification registry {path} is larger than 16 MiB")]
    TooLarge {
        /// The path.
        path: String,
    },
    /// The file is not a valid registry.
    #[error("{path}: {source}")]
    Invalid {
        /// The path.
        path: String,
        /// What is wrong.
        #[source]
        source: RegistryError,
    },
}

/// Loads a registry file.
///
/// # Errors
/// [`RegistryFileError`].
pub fn load(path: &Path) -> Result<Registry, RegistryFileError> {
    let shown = path.display().to_string();
    let io = |source| RegistryFileError::Io {
        path: shown.clone(),
        source,
    };
    if std::fs::metadata(path).map_err(io)?.len() > MAX_REGISTRY_FILE {
        return Err(RegistryFileError::TooLarge { path: shown });
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    Registry::from_toml(&text).map_err(|source| RegistryFileError::Invalid {
        path: shown,
        source,
    })
}

/// The registry records are classified with, replaceable while the server runs.
#[derive(Debug, Default)]
pub struct Classifier {
    path: Option<PathBuf>,
    current: Swap<Registry>,
}

impl Classifier {
    /// A classifier over the registry file at `path` (none: the empty registry), loaded now.
    ///
    /// # Errors
    /// [`RegistryFileError`].
    pub fn open(path: Option<&Path>) -> Result<Classifier, RegistryFileError> {
        let registry = match path {
            Some(path) => load(path)?,
            None => Registry::empty(),
        };
        Ok(Classifier {
            path: path.map(Path::to_path_buf),
            current: Swap::new(registry),
        })
    }

    /// The registry in force.
    pub fn current(&self) -> Arc<Registry> {
        self.current.get()
    }

    /// Reads the registry file again and puts it in force; on an error the registry in force
    /// stays. Returns the number of rules now in force (0 without a file).
    ///
    /// # Errors
    /// [`RegistryFileError`].
    pub fn reload(&self) -> Result<usize, RegistryFileError> {
        let Some(path) = &self.path else {
            return Ok(0);
        };
        let fresh = Arc::new(load(path)?);
        let rules = fresh.len();
        self.current.set(fresh);
        Ok(rules)
    }
}
