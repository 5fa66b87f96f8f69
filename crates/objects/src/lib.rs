//! Object storage for Veritrail: one helper, [`Objects`], over a local directory or a bucket,
//! used by everything that writes or reads files outside the data directory — the mirror
//! (`serve --mirror`, the C2SP tlog-tiles layout in a bucket) and the archive
//! (`veritrail archive`, `verify-archive`, `serve --archive`).
//!
//! A location is either a local path (`/var/lib/veritrail-mirror`, `./archive`, or a
//! `file:///` URL) or a bucket URL:
//!
//! | URL                              | store                 | configured from                          |
//! |----------------------------------|-----------------------|------------------------------------------|
//! | `s3://bucket/prefix`             | S3 and S3-compatible (MinIO, Ceph, …) | `AWS_*` (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`) |
//! | `gs://bucket/prefix`             | Google Cloud Storage  | `GOOGLE_*` (`GOOGLE_SERVICE_ACCOUNT`, …) |
//! | `az://container/prefix`          | Azure Blob Storage    | `AZURE_*` (`AZURE_STORAGE_ACCOUNT_NAME`, …) |
//!
//! Everything goes through the [`object_store`] crate. Local writes are atomic (a staged file
//! renamed into place) and durable (file and directory fsynced) before they return, like a
//! bucket's: a caller that purged data after a successful write here never purges what a
//! crash could still take back.
//!
//! Out of scope: listing a whole bucket recursively, multipart uploads (every object Veritrail
//! writes is at most a few hundred KiB: a tile, a bundle, a manifest, a payload segment).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), veritrail_objects::ObjectsError> {
//! use veritrail_objects::{Meta, Objects};
//!
//! let dir = tempfile::tempdir().expect("a temporary directory");
//! let objects = Objects::open(&dir.path().display().to_string())?;
//! objects.put("tile/0/000", b"hashes".to_vec().into(), &Meta::IMMUTABLE).await?;
//! assert_eq!(objects.get("tile/0/000").await?.as_deref(), Some(&b"hashes"[..]));
//! assert_eq!(objects.get("checkpoint").await?, None);
//! // `create` never replaces an object: the second write of a name is refused.
//! assert!(objects.create("manifest", b"one".to_vec().into(), &Meta::NONE).await?);
//! assert!(!objects.create("manifest", b"two".to_vec().into(), &Meta::NONE).await?);
//! # Ok(())
//! # }
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, ObjectStore, ObjectStoreExt as _, ObjectStoreScheme, PutMode, PutOptions,
};

/// Why an object-storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ObjectsError {
    /// The location is neither a path nor a supported bucket URL.
    #[error(
        "{location:?} is not a storage location: give a directory, or an s3://, gs:// or az:// URL ({reason})"
    )]
    Location {
        /// The location as given.
        location: String,
        /// Why it was refused.
        reason: String,
    },
    /// The local directory could not be created.
    #[error("cannot create the directory {path}: {source}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The store refused or failed an operation.
    #[error("{location}: cannot {action} {key}: {source}")]
    Store {
        /// The location of the store.
        location: String,
        /// What was being done (`write`, `read`, …).
        action: &'static str,
        /// The object's name under the location.
        key: String,
        /// The store's error (boxed: it is large, and errors are rare).
        #[source]
        source: Box<object_store::Error>,
    },
}

/// What a written object is served with when the store serves it over HTTP (a bucket
/// website, a CDN in front of one). A local directory keeps no such metadata; the static file
/// server in front of it decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// The `Cache-Control` header, if any.
    pub cache_control: Option<&'static str>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<&'static str>,
}

impl Meta {
    /// No headers.
    pub const NONE: Meta = Meta {
        cache_control: None,
        content_type: None,
    };
    /// An object that never changes (a full tile or bundle, or a partial one: a partial tile
    /// of a given width never changes either): cacheable for a year.
    pub const IMMUTABLE: Meta = Meta {
        cache_control: Some("public, max-age=31536000, immutable"),
        content_type: Some("application/octet-stream"),
    };
}

/// A location for objects: a local directory or a bucket and prefix. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    location: String,
    local: bool,
}

impl Objects {
    /// Opens a location: a local path (created if missing) or an `s3://`, `gs://` or `az://`
    /// URL configured from the usual environment variables (see the crate docs). Nothing is
    /// read or written yet.
    ///
    /// # Errors
    /// [`ObjectsError::Location`] for an unsupported or malformed URL, or a bucket the
    /// environment does not configure; [`ObjectsError::Directory`] if a local directory
    /// cannot be created.
    pub fn open(location: &str) -> Result<Objects, ObjectsError> {
        let refuse = |reason: String| ObjectsError::Location {
            location: location.to_owned(),
            reason,
        };
        if location.is_empty() {
            return Err(refuse("it is empty".into()));
        }
        if !location.contains("://") {
            return Self::local(location, PathBuf::from(location));
        }
        let url = url::Url::parse(location).map_err(|e| refuse(e.to_string()))?;
        let (scheme, path) = ObjectStoreScheme::parse(&url).map_err(|e| refuse(e.to_string()))?;
        let prefix = Path::parse(path).map_err(|e| refuse(e.to_string()))?;
        let store: Arc<dyn ObjectStore> = match scheme {
            ObjectStoreScheme::Local => {
                let path = url
                    .to_file_path()
                    .map_err(|()| refuse("not an absolute file path".into()))?;
                return Self::local(location, path);
            }
            ObjectStoreScheme::AmazonS3 => Arc::new(
                object_store::aws::AmazonS3Builder::from_env()
                    .with_url(location)
                    .build()
                    .map_err(|e| refuse(e.to_string()))?,
            ),
            ObjectStoreScheme::GoogleCloudStorage => Arc::new(
                object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_url(location)
                    .build()
                    .map_err(|e| refuse(e.to_string()))?,
            ),
            ObjectStoreScheme::MicrosoftAzure => Arc::new(
                object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_url(location)
                    .build()
                    .map_err(|e| refuse(e.to_string()))?,
            ),
            other => return Err(refuse(format!("the {other:?} scheme is not supported"))),
        };
        Ok(Objects {
            store,
            prefix,
            location: location.trim_end_matches('/').to_owned(),
            local: false,
        })
    }

    fn local(location: &str, dir: PathBuf) -> Result<Objects, ObjectsError> {
        std::fs::create_dir_all(&dir).map_err(|source| ObjectsError::Directory {
            path: dir.clone(),
            source,
        })?;
        let store = LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| ObjectsError::Location {
                location: location.to_owned(),
                reason: e.to_string(),
            })?
            .with_fsync(true)
            .with_automatic_cleanup(false);
        Ok(Objects {
            store: Arc::new(store),
            prefix: Path::default(),
            location: location.trim_end_matches('/').to_owned(),
            local: true,
        })
    }

    /// The location as given (without a trailing `/`), for messages and records.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Whether this is a local directory.
    pub fn is_local(&self) -> bool {
        self.local
    }

    /// The location `sub` below this one (`sub` is a `/`-separated relative name).
    ///
    /// # Errors
    /// [`ObjectsError::Location`] if `sub` is not a clean relative name.
    pub fn child(&self, sub: &str) -> Result<Objects, ObjectsError> {
        let mut prefix = self.prefix.clone();
        for part in sub.split('/') {
            prefix =
                prefix
                    .clone()
                    .join(clean_part(part).map_err(|reason| ObjectsError::Location {
                        location: format!("{}/{sub}", self.location),
                        reason,
                    })?);
        }
        Ok(Objects {
            store: Arc::clone(&self.store),
            prefix,
            location: format!("{}/{sub}", self.location),
            local: self.local,
        })
    }

    fn path(&self, key: &str) -> Result<Path, ObjectsError> {
        let mut path = self.prefix.clone();
        for part in key.split('/') {
            path = path.clone().join(clean_part(part).map_err(|reason| {
                self.error(
                    "name",
                    key,
                    object_store::Error::Generic {
                        store: "veritrail",
                        source: reason.into(),
                    },
                )
            })?);
        }
        Ok(path)
    }

    fn error(&self, action: &'static str, key: &str, source: object_store::Error) -> ObjectsError {
        ObjectsError::Store {
            location: self.location.clone(),
            action,
            key: key.to_owned(),
            source: Box::new(source),
        }
    }

    fn options(&self, meta: &Meta, mode: PutMode) -> PutOptions {
        let mut attributes = Attributes::new();
        // A local directory stores no headers (and object_store refuses them there).
        if !self.local {
            if let Some(value) = meta.cache_control {
                attributes.insert(Attribute::CacheControl, value.into());
            }
            if let Some(value) = meta.content_type {
                attributes.insert(Attribute::ContentType, value.into());
            }
        }
        PutOptions {
            mode,
            attributes,
            ..PutOptions::default()
        }
    }

    /// Writes `key`, replacing any object of that name. When this returns, the object is
    /// durable and whole: readers see the old bytes or the new, never a part.
    ///
    /// # Errors
    /// [`ObjectsError::Store`].
    pub async fn put(&self, key: &str, bytes: Bytes, meta: &Meta) -> Result<(), ObjectsError> {
        let path = self.path(key)?;
        self.store
            .put_opts(&path, bytes.into(), self.options(meta, PutMode::Overwrite))
            .await
            .map_err(|e| self.error("write", key, e))?;
        Ok(())
    }

    /// Writes `key` only if no object of that name exists: `true` if it was written, `false`
    /// if one already existed (which is left as it is).
    ///
    /// # Errors
    /// [`ObjectsError::Store`].
    pub async fn create(&self, key: &str, bytes: Bytes, meta: &Meta) -> Result<bool, ObjectsError> {
        let path = self.path(key)?;
        match self
            .store
            .put_opts(&path, bytes.into(), self.options(meta, PutMode::Create))
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.error("create", key, e)),
        }
    }

    /// Reads `key` whole; `None` if there is no such object.
    ///
    /// # Errors
    /// [`ObjectsError::Store`].
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, ObjectsError> {
        let path = self.path(key)?;
        let result = match self.store.get(&path).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.error("read", key, e)),
        };
        match result.bytes().await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("read", key, e)),
        }
    }

    /// Deletes `key`; deleting an object that does not exist is not an error.
    ///
    /// # Errors
    /// [`ObjectsError::Store`].
    pub async fn delete(&self, key: &str) -> Result<(), ObjectsError> {
        let path = self.path(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("delete", key, e)),
        }
    }

    /// The names of the "directories" directly below `key` (`""` for the location itself),
    /// sorted: the common prefixes a delimiter listing returns.
    ///
    /// # Errors
    /// [`ObjectsError::Store`].
    pub async fn list_dirs(&self, key: &str) -> Result<Vec<String>, ObjectsError> {
        let path = if key.is_empty() {
            self.prefix.clone()
        } else {
            self.path(key)?
        };
        let listing = match self.store.list_with_delimiter(Some(&path)).await {
            Ok(listing) => listing,
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(self.error("list", key, e)),
        };
        let mut names: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_owned))
            .collect();
        names.sort();
        Ok(names)
    }
}

/// One `/`-free part of a name: not empty, not `.` or `..`, no control characters.
fn clean_part(part: &str) -> Result<&str, String> {
    if part.is_empty() || part == "." || part == ".." {
        return Err(format!("{part:?} is not a name"));
    }
    if part.chars().any(|c| c.is_control() || c == '\\') {
        return Err(format!("{part:?} holds a control character or a backslash"));
    }
    Ok(part)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> (tempfile::TempDir, Objects) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let objects = Objects::open(&dir.path().display().to_string()).expect("open");
        (dir, objects)
    }

    #[tokio::test]
    async fn local_objects_are_files_in_the_tlog_tiles_layout() {
        let (dir, objects) = dir();
        objects
            .put(
                "tile/entries/x001/234.p/7",
                Bytes::from_static(b"abc"),
                &Meta::IMMUTABLE,
            )
            .await
            .expect("put");
        let file = dir.path().join("tile/entries/x001/234.p/7");
        assert_eq!(std::fs::read(file).expect("the file"), b"abc");
        objects
            .put(
                "tile/entries/x001/234.p/7",
                Bytes::from_static(b"xyz"),
                &Meta::NONE,
            )
            .await
            .expect("overwrite");
        assert_eq!(
            objects.get("tile/entries/x001/234.p/7").await.expect("get"),
            Some(Bytes::from_static(b"xyz"))
        );
        objects
            .delete("tile/entries/x001/234.p/7")
            .await
            .expect("delete");
        objects
            .delete("tile/entries/x001/234.p/7")
            .await
            .expect("delete again");
        assert_eq!(
            objects.get("tile/entries/x001/234.p/7").await.expect("get"),
            None
        );
    }

    #[tokio::test]
    async fn create_never_replaces() {
        let (_dir, objects) = dir();
        assert!(
            objects
                .create("a/manifest", Bytes::from_static(b"1"), &Meta::NONE)
                .await
                .expect("create")
        );
        assert!(
            !objects
                .create("a/manifest", Bytes::from_static(b"2"), &Meta::NONE)
                .await
                .expect("create")
        );
        assert_eq!(
            objects.get("a/manifest").await.expect("get"),
            Some(Bytes::from_static(b"1"))
        );
    }

    #[tokio::test]
    async fn children_and_listing() {
        let (dir, objects) = dir();
        let child = objects.child("archives/bundles-0-4").expect("child");
        child
            .put("checkpoint", Bytes::from_static(b"c"), &Meta::NONE)
            .await
            .expect("put");
        objects
            .child("archives/bundles-4-9")
            .expect("child")
            .put("checkpoint", Bytes::from_static(b"d"), &Meta::NONE)
            .await
            .expect("put");
        assert!(dir.path().join("archives/bundles-0-4/checkpoint").is_file());
        assert_eq!(
            objects.list_dirs("archives").await.expect("list"),
            ["bundles-0-4", "bundles-4-9"]
        );
        assert_eq!(
            objects.list_dirs("nothing").await.expect("list"),
            Vec::<String>::new()
        );
        assert!(child.location().ends_with("/archives/bundles-0-4"));
    }

    #[test]
    fn names_that_escape_or_are_not_names_are_refused() {
        let (_dir, objects) = dir();
        for bad in ["../x", "a//b", "", "a/./b", "a\\b", "a/\u{7}"] {
            assert!(objects.child(bad).is_err(), "{bad:?}");
            assert!(objects.path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn locations_are_checked() {
        for bad in ["", "ftp://host/x", "s3://", "file://relative/x"] {
            assert!(Objects::open(bad).is_err(), "{bad:?}");
        }
        let s3 =
            Objects::open("s3://bucket/some/prefix/").expect("an s3 URL needs no network to open");
        assert!(!s3.is_local());
        assert_eq!(s3.location(), "s3://bucket/some/prefix");
    }
}
