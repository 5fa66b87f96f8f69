//! Conformance tests against the public vectors in `../shared/vectors` (never copied here).

mod merkle;
mod notes;
mod tiles;

use std::path::PathBuf;

/// The shared vectors directory: `<workspace>/../shared/vectors`.
pub(crate) fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors")
}
