//! What the commands share, and nothing else: the error type and its exit codes
//! ([`error`]), flags of the client commands ([`args`]) and of the data directory
//! ([`datadir`]), duration flags ([`duration`]), local files and standard streams ([`io`]),
//! client errors with their split-view evidence ([`evidence`]), and the runtime
//! ([`runtime`]).
//!
//! Modules here never depend on a command module.

pub(crate) mod args;
pub(crate) mod datadir;
pub(crate) mod duration;
pub(crate) mod error;
pub(crate) mod evidence;
pub(crate) mod io;
pub(crate) mod retention;
pub(crate) mod runtime;
