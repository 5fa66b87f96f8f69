//! The commands of the `veritrail` binary: one file per command, and [`common`] for what
//! they share.
//!
//! A command module depends on [`common`] and on the library crates, never on another
//! command; `main.rs` parses the command line and dispatches to them.
//!
//! | command                      | module                |
//! |------------------------------|-----------------------|
//! | `keygen`                     | [`keygen`]            |
//! | `serve`                      | [`serve`]             |
//! | `log append`                 | [`log_append`]        |
//! | `log verify`                 | [`log_verify`]        |
//! | `bench append`               | [`bench`] (the load generator, its own module tree) |
//! | `append`                     | [`append`]            |
//! | `get`                        | [`get`]               |
//! | `prove`                      | [`prove`]             |
//! | `checkpoint`                 | [`checkpoint`]        |
//! | `monitor`                    | [`monitor`]           |
//! | `verify-receipt`             | [`verify_receipt`]    |
//! | `verify-evidence`            | [`verify_evidence`]   |

pub(crate) mod append;
pub(crate) mod bench;
pub(crate) mod checkpoint;
pub(crate) mod common;
pub(crate) mod get;
pub(crate) mod keygen;
pub(crate) mod log_append;
pub(crate) mod log_verify;
pub(crate) mod monitor;
pub(crate) mod prove;
pub(crate) mod serve;
pub(crate) mod verify_evidence;
pub(crate) mod verify_receipt;
