//! Veritrail ledger core: an RFC 6962 Merkle tree stored as C2SP tiles, the C2SP wire formats,
//! and a durable, crash-safe engine.
//!
//! Two layers:
//!
//! - **Pure formats** (always built, no I/O): [`ascii`] (the one canonical decimal parser
//!   and hex encoder), [`hash`] (RFC 9162 §2.1 hashing), [`proof`]
//!   (inclusion and consistency verification, RFC 9162 §2.1.3–2.1.4), [`tree`] (roots and
//!   proofs computed from hash tiles), [`tile`] and [`bundle`]
//!   ([tlog-tiles v0.1.0](https://c2sp.org/tlog-tiles)), [`note`]
//!   ([signed-note v1.0.0](https://c2sp.org/signed-note)), [`checkpoint`]
//!   ([tlog-checkpoint v1.0.0](https://c2sp.org/tlog-checkpoint)), [`cosignature`]
//!   ([tlog-cosignature v1.0.1](https://c2sp.org/tlog-cosignature)), [`policy`]
//!   ([tlog-policy](https://c2sp.org/tlog-policy)) and [`receipt`]
//!   ([tlog-proof](https://c2sp.org/tlog-proof)). Every parser is total and every verifier
//!   returns a typed error instead of panicking. Depend on this crate with
//!   `default-features = false` to get only this layer.
//! - **Storage** (feature `storage`, with `redb` and/or `sled`, all on by default): the
//!   [`Ledger`] engine and the [`store`] backends. An append returns only once its batch is
//!   durable; a checkpoint is signed only after a consistency proof from the last one
//!   verifies.
//!
//! Out of scope here: HTTP (the `veritrail-server` crate), remote verification and monitoring
//! (`veritrail-client`), witnessing.
//!
//! # Example
//!
//! An agent's events appended durably, a checkpoint signed, and an auditor checking it with
//! nothing but the log's verifier key:
//!
//! ```
//! # #[cfg(feature = "redb")] {
//! use veritrail_ledger::checkpoint::Checkpoint;
//! use veritrail_ledger::note::{KeyName, NoteSigner};
//! use veritrail_ledger::proof::{verify_consistency, verify_inclusion};
//! use veritrail_ledger::store::{self, Backend};
//! use veritrail_ledger::{Ledger, leaf_hash};
//!
//! let dir = tempfile::tempdir()?;
//! let origin = "audit.example.com/log";
//! let signer = NoteSigner::generate(KeyName::new(origin)?)?;
//! let verifier = signer.verifier();
//! let ledger = Ledger::open(store::open(Backend::Redb, dir.path())?, origin, signer)?;
//!
//! ledger.append(&[b"agent-3 read patient record 17".as_slice()])?;
//! let first = ledger.sign_checkpoint()?;
//! let appended = ledger.append(&[b"prompt v2 deployed".as_slice()])?;
//! assert_eq!(appended.indices, 1..2);
//! let second = ledger.sign_checkpoint()?;
//!
//! // The auditor trusts only `verifier`.
//! let (old, _) = Checkpoint::verify_signed(&first.note, origin, &verifier)?;
//! let (new, _) = Checkpoint::verify_signed(&second.note, origin, &verifier)?;
//! let proof = ledger.inclusion_proof(1, new.tree.size)?;
//! verify_inclusion(&leaf_hash(b"prompt v2 deployed"), 1, &new.tree, &proof)?;
//! let growth = ledger.consistency_proof(old.tree.size, new.tree.size)?;
//! verify_consistency(&old.tree, &new.tree, &growth)?;
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub mod archive;
pub mod ascii;
pub mod bundle;
pub mod checkpoint;
pub mod cosignature;
pub mod hash;
pub mod note;
pub mod policy;
pub mod proof;
pub mod receipt;
pub mod tile;
pub mod tree;
pub mod witness;

#[cfg(feature = "storage")]
pub mod engine;
#[cfg(feature = "storage")]
pub mod error;
#[cfg(feature = "storage")]
pub mod store;

pub use hash::{Hash, HashError, TreeHead, leaf_hash, node_hash};

#[cfg(feature = "storage")]
pub use engine::{Appended, AuditReport, Ledger, SignedCheckpoint};
#[cfg(feature = "storage")]
pub use error::Error;
