//! The archive manifest: what a Veritrail archive of entry bundles holds, signed by the log.
//!
//! An archive of bundles `first..end` is a directory (or a bucket prefix) holding, in the
//! C2SP tlog-tiles layout, the bundles `tile/entries/<N>`, the hash tiles needed to prove
//! them against a checkpoint (`tile/<L>/<N>[.p/<W>]`), that `checkpoint`, the records'
//! encrypted payloads (`payloads/<index>`), and two files that describe it all:
//!
//! - `files`: one line per other file, sorted by path: `<SHA-256 hex> <size> <path>\n`;
//! - `manifest`: a signed note (C2SP signed-note, by the log's key) whose text is
//!
//! ```text
//! veritrail archive v1
//! <origin>
//! bundles <first> <end>
//! checkpoint <tree size> <root, base64>
//! files <count> <SHA-256 hex of the files file>
//! ```
//!
//! The manifest's first line is not an origin, so it can never pass for a checkpoint; its
//! signature binds every file through the `files` hash. Parsers here are total.

use core::ops::Range;

use crate::ascii::{parse_decimal, parse_hex, to_hex};
use crate::hash::Hash;

/// The first line of a manifest's text.
pub const MANIFEST_MAGIC: &str = "veritrail archive v1";
/// The manifest's file name.
pub const MANIFEST_FILE: &str = "manifest";
/// The file list's file name.
pub const FILES_FILE: &str = "files";
/// Largest file list read: 64 MiB, about 600,000 files (an archive of a million bundles).
pub const MAX_FILES_SIZE: usize = 64 << 20;
/// Longest path in an archive.
pub const MAX_PATH: usize = 256;

/// Why a manifest or file list was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveFormatError {
    /// The manifest's text is not the expected five lines.
    #[error("the manifest is malformed: {0}")]
    Manifest(&'static str),
    /// A line of the file list is malformed.
    #[error("line {line} of the file list is malformed: {reason}")]
    Files {
        /// 1-based line number.
        line: usize,
        /// Why.
        reason: &'static str,
    },
}

/// The signed statement of an archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The log's origin.
    pub origin: String,
    /// The bundles archived.
    pub bundles: Range<u64>,
    /// The tree size of the checkpoint the bundles are proven against.
    pub size: u64,
    /// Its root.
    pub root: Hash,
    /// How many files the file list names.
    pub files: u64,
    /// The SHA-256 of the file list.
    pub files_hash: [u8; 32],
}

impl Manifest {
    /// The note text.
    pub fn to_text(&self) -> String {
        format!(
            "{MANIFEST_MAGIC}\n{}\nbundles {} {}\ncheckpoint {} {}\nfiles {} {}\n",
            self.origin,
            self.bundles.start,
            self.bundles.end,
            self.size,
            self.root.to_base64(),
            self.files,
            to_hex(&self.files_hash)
        )
    }

    /// Parses a note text. This does not panic.
    ///
    /// # Errors
    /// [`ArchiveFormatError::Manifest`].
    pub fn from_text(text: &str) -> Result<Manifest, ArchiveFormatError> {
        let bad = ArchiveFormatError::Manifest;
        let body = text.strip_suffix('\n').ok_or(bad("no final newline"))?;
        let mut lines = body.split('\n');
        let mut line = || lines.next().ok_or(bad("too few lines"));
        if line()? != MANIFEST_MAGIC {
            return Err(bad("not a veritrail archive v1 manifest"));
        }
        let origin = line()?;
        if origin.is_empty() || origin.chars().any(char::is_control) {
            return Err(bad("bad origin"));
        }
        let fields = |l: &str, key: &str| -> Result<Vec<String>, ArchiveFormatError> {
            let rest = l
                .strip_prefix(key)
                .and_then(|r| r.strip_prefix(' '))
                .ok_or(bad("a line does not start with its key"))?;
            Ok(rest.split(' ').map(str::to_owned).collect())
        };
        let number = |s: &str| parse_decimal(s).map_err(|_| bad("a number is not canonical"));
        let b = fields(line()?, "bundles")?;
        let [first, end] = b.as_slice() else {
            return Err(bad("bundles takes two numbers"));
        };
        let (first, end) = (number(first)?, number(end)?);
        if first >= end {
            return Err(bad("the bundle range is empty"));
        }
        let c = fields(line()?, "checkpoint")?;
        let [size, root] = c.as_slice() else {
            return Err(bad("checkpoint takes a size and a root"));
        };
        let size = number(size)?;
        if end.checked_mul(256).is_none_or(|entries| entries > size) {
            return Err(bad("the checkpoint does not cover the bundles"));
        }
        let root = Hash::from_base64(root).map_err(|_| bad("the root is not a base64 hash"))?;
        let f = fields(line()?, "files")?;
        let [count, hash] = f.as_slice() else {
            return Err(bad("files takes a count and a hash"));
        };
        let files = number(count)?;
        let files_hash = parse_hex::<32>(hash).ok_or(bad("the files hash is not 64 hex digits"))?;
        if lines.next().is_some() {
            return Err(bad("too many lines"));
        }
        Ok(Manifest {
            origin: origin.to_owned(),
            bundles: first..end,
            size,
            root,
            files,
            files_hash,
        })
    }
}

/// One file of an archive, as the file list names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// Its SHA-256.
    pub sha256: [u8; 32],
    /// Its size in bytes.
    pub size: u64,
    /// Its path under the archive (`/`-separated, relative).
    pub path: String,
}

/// Encodes a file list (sorted by path by the caller).
pub fn encode_files(files: &[FileEntry]) -> String {
    let mut out = String::new();
    for file in files {
        out.push_str(&format!(
            "{} {} {}\n",
            to_hex(&file.sha256),
            file.size,
            file.path
        ));
    }
    out
}

/// Parses a file list: every line `<hex> <size> <path>`, paths clean, relative, strictly
/// sorted (so unique), none of them `manifest` or `files`. This does not panic.
///
/// # Errors
/// [`ArchiveFormatError::Files`].
pub fn parse_files(text: &str) -> Result<Vec<FileEntry>, ArchiveFormatError> {
    let mut files: Vec<FileEntry> = Vec::new();
    if text.is_empty() {
        return Ok(files);
    }
    let body = text.strip_suffix('\n').ok_or(ArchiveFormatError::Files {
        line: 0,
        reason: "no final newline",
    })?;
    for (n, line) in body.split('\n').enumerate() {
        let bad = |reason| ArchiveFormatError::Files {
            line: n + 1,
            reason,
        };
        let mut parts = line.splitn(3, ' ');
        let sha256 = parts
            .next()
            .and_then(parse_hex::<32>)
            .ok_or(bad("no SHA-256"))?;
        let size = parts
            .next()
            .and_then(|s| parse_decimal(s).ok())
            .ok_or(bad("no size"))?;
        let path = parts.next().ok_or(bad("no path"))?;
        if !clean_path(path) || path == MANIFEST_FILE || path == FILES_FILE {
            return Err(bad("the path is not a clean relative path"));
        }
        if files.last().is_some_and(|last| last.path.as_str() >= path) {
            return Err(bad("paths are not strictly sorted"));
        }
        files.push(FileEntry {
            sha256,
            size,
            path: path.to_owned(),
        });
    }
    Ok(files)
}

/// A relative path of `[A-Za-z0-9._-]` parts separated by single `/`, no `.` or `..` part.
fn clean_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= MAX_PATH
        && path.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    fn manifest() -> Manifest {
        Manifest {
            origin: "audit.example/log".into(),
            bundles: 4..9,
            size: 3000,
            root: Hash::try_from_slice(&[7; 32]).unwrap(),
            files: 12,
            files_hash: [9; 32],
        }
    }

    #[test]
    fn manifests_round_trip_and_bad_ones_are_refused() {
        let text = manifest().to_text();
        assert_eq!(Manifest::from_text(&text).unwrap(), manifest());
        let bad = [
            text.replace("v1", "v2"),
            text.replace("bundles 4 9", "bundles 9 9"),
            text.replace("bundles 4 9", "bundles 04 9"),
            text.replace("checkpoint 3000", "checkpoint 2000"),
            text.replace("files 12", "files x"),
            text.trim_end().to_owned(),
            format!("{text}extra\n"),
            text.replace("audit.example/log", ""),
        ];
        for bad in bad {
            assert!(Manifest::from_text(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn file_lists_round_trip_and_bad_ones_are_refused() {
        let files = vec![
            FileEntry {
                sha256: [1; 32],
                size: 10,
                path: "checkpoint".into(),
            },
            FileEntry {
                sha256: [2; 32],
                size: 8192,
                path: "tile/0/004".into(),
            },
            FileEntry {
                sha256: [3; 32],
                size: 0,
                path: "tile/entries/004".into(),
            },
        ];
        assert_eq!(parse_files(&encode_files(&files)).unwrap(), files);
        let h = to_hex(&[1; 32]);
        for bad in [
            format!("{h} 1 ../x\n"),
            format!("{h} 1 a//b\n"),
            format!("{h} 1 /abs\n"),
            format!("{h} 1 b\n{h} 1 a\n"),
            format!("{h} 1 a\n{h} 1 a\n"),
            format!("{h} 1 manifest\n"),
            format!("{h} x a\n"),
            "zz 1 a\n".to_owned(),
            format!("{h} 1 a b\n"),
            format!("{h} 1 a"),
        ] {
            assert!(parse_files(&bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn parsers_never_panic(text in "\\PC{0,200}") {
            let _ = Manifest::from_text(&text);
            let _ = parse_files(&text);
        }
    }
}
