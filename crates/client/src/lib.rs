//! Veritrail verifying client: talks to a Veritrail log (or any C2SP tlog-tiles log, for
//! reading) and trusts nothing it says.
//!
//! - [`LogClient`] ([`http`]): the HTTP API (appends, entries, proofs, checkpoints, tiles)
//!   with timeouts, capped response sizes and safe retries (an append is retried only with
//!   an idempotency key). The JSON shapes, content types, limits and error codes are those
//!   of `veritrail-api`, the crate the server writes them with.
//! - [`event::Event`]: a typed builder of agent audit events and their payloads, validated
//!   locally by the server's own validator; [`LogClient::append_events`] sends them and
//!   [`records`] proves stored records and payloads.
//! - [`LogVerifier`] ([`state`]): trusted state per log (origin, pinned verifier key, latest
//!   verified checkpoint), saved atomically. A newer checkpoint is accepted only with the
//!   log's signature and a valid consistency proof; a contradiction yields
//!   split-view [`Evidence`] that [`Evidence::verify`] checks offline.
//! - [`VerifyingClient`] ([`verify`]): entries and inclusion proofs checked against the
//!   trusted checkpoint; [`verify_receipt`] checks a `c2sp.org/tlog-proof@v1` receipt
//!   offline.
//! - [`TileProver`] ([`tiles`]): roots and proofs computed from hash tiles alone, the way a
//!   static tlog-tiles client works.
//! - [`Monitor`] ([`monitor`]): a full audit that downloads every entry bundle and hash tile,
//!   rebuilds the tree from the entries, and resumes from its [`cache`] after a restart.
//!
//! [`ClientError::is_misbehaviour`] separates "the log failed verification" from "the check
//! could not run". The client depends only on the pure format layer of `veritrail-ledger`
//! (`default-features = false`), so verifying never pulls in a database.
//!
//! # Example
//!
//! An auditor holding an entry and its receipt checks it offline, with nothing but the
//! log's verifier key (here the log is built in memory to have something to check):
//!
//! ```
//! use veritrail_client::verify_receipt;
//! use veritrail_ledger::checkpoint::Checkpoint;
//! use veritrail_ledger::note::{KeyName, NoteSigner};
//! use veritrail_ledger::receipt::Receipt;
//! use veritrail_ledger::{TreeHead, leaf_hash, node_hash};
//!
//! // The log: two entries, a signed checkpoint, a receipt for entry 1.
//! let signer = NoteSigner::from_seed(KeyName::new("audit.example.com/log")?, [7; 32]);
//! let entries: [&[u8]; 2] = [b"agent-3 read record 17", b"prompt v2 deployed"];
//! let root = node_hash(&leaf_hash(entries[0]), &leaf_hash(entries[1]));
//! let checkpoint = Checkpoint::new("audit.example.com/log", TreeHead::new(2, root))?;
//! let receipt = Receipt {
//!     extra: None,
//!     index: 1,
//!     proof: vec![leaf_hash(entries[0])],
//!     checkpoint: checkpoint.sign(&signer)?,
//! }
//! .to_bytes();
//!
//! // The auditor pins the verifier key and checks the receipt against the entry bytes.
//! let log_key = signer.verifier();
//! let (_, verified) = verify_receipt(&receipt, entries[1], &log_key, None)?;
//! assert_eq!(verified.tree.size, 2);
//! assert!(verify_receipt(&receipt, b"prompt v3 deployed", &log_key, None).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod answers;
mod atomic_file;
pub mod cache;
pub mod error;
pub mod event;
pub mod evidence;
pub mod http;
pub mod monitor;
pub mod records;
pub mod state;
mod tile_body;
pub mod tiles;
mod transport;
pub mod verify;

pub use answers::Recorded;
pub use error::ClientError;
pub use evidence::Evidence;
pub use http::{AppendOptions, Appended, ClientConfig, Erased, Erasure, LogClient};
pub use monitor::{Monitor, MonitorOptions, MonitorReport};
pub use state::{LogVerifier, Update, VerifyError};
pub use tiles::{ArchiveFallback, DirSource, TileProver, TileSource};
pub use verify::{ProofSource, VerifiedInclusion, VerifyingClient, verify_policy, verify_receipt};
