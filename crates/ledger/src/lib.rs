//! Veritrail ledger core.
#![forbid(unsafe_code)]

pub mod bundle;
pub mod checkpoint;
pub mod cosignature;
pub mod hash;
pub mod note;
pub mod proof;
pub mod receipt;
pub mod tile;
pub mod tree;

#[cfg(feature = "storage")]
pub mod engine;
#[cfg(feature = "storage")]
pub mod error;
#[cfg(feature = "storage")]
pub mod store;

pub use hash::{Hash, HashError, TreeHead, leaf_hash, node_hash};

#[cfg(feature = "storage")]
pub use engine::{Appended, Ledger, SignedCheckpoint};
#[cfg(feature = "storage")]
pub use error::Error;
