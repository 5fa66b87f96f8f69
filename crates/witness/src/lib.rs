//! Veritrail witness: a [C2SP tlog-witness](https://c2sp.org/tlog-witness) server. It cosigns
//! a log's checkpoint only if it is consistent with every checkpoint of that log it cosigned
//! before, and it remembers the latest one durably before it answers.
//!
//! - [`logs`]: the logs it trusts, one key file each, added while it runs and never removed;
//! - [`state`]: the latest cosigned checkpoint per log, updated by compare-and-swap in
//!   group-committed durable transactions;
//! - [`http`]: `POST /add-checkpoint`, `GET /checkpoint/<origin hash>`, `GET /metrics`.
//!
//! The wire format (request body, 409 size body, cosignature lines) is
//! `veritrail_ledger::witness`, shared with the log that calls witnesses.
//!
//! # Example
//!
//! A witness trusting one log cosigns its first checkpoint:
//!
//! ```
//! use std::sync::Arc;
//! use veritrail_ledger::checkpoint::Checkpoint;
//! use veritrail_ledger::cosignature::{CosignatureSigner, verify_cosignature};
//! use veritrail_ledger::hash::{Hash, TreeHead};
//! use veritrail_ledger::note::{KeyName, NoteSigner};
//! use veritrail_ledger::witness::{AddCheckpoint, parse_cosignatures};
//! use veritrail_witness::{http::Witness, logs::add_log};
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let data = tempfile::tempdir()?;
//! let log = NoteSigner::generate(KeyName::new("example.com/log")?)?;
//! add_log(data.path(), &log.verifier().to_string())?;
//! let key = CosignatureSigner::generate(KeyName::new("witness.example/w1")?)?;
//! let witness = Arc::new(Witness::open(key.clone(), data.path(), None)?);
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let url = format!("http://{}/add-checkpoint", listener.local_addr()?);
//! tokio::spawn(async move { axum::serve(listener, veritrail_witness::http::router(witness)).await });
//!
//! let mut note = Checkpoint::new("example.com/log", TreeHead::new(0, Hash::empty_root()))?.sign(&log)?;
//! let body = AddCheckpoint { old: 0, proof: vec![], checkpoint: note.clone() }.to_bytes();
//! let answer = reqwest::Client::new().post(&url).body(body).send().await?;
//! assert_eq!(answer.status(), 200);
//! for cosignature in parse_cosignatures(&answer.bytes().await?)? {
//!     note.add_signature(cosignature)?;
//! }
//! verify_cosignature(&key.verifier(), &note)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub mod http;
pub mod logs;
pub mod state;
