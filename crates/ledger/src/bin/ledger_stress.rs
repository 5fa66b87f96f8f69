//! `ledger-stress`: appends deterministic entries to a ledger in a loop, printing a line for
//! every acknowledged batch (`ack <first> <end>`) and every signed checkpoint (`cp <size>`).
//!
//! Entry `i` always has the bytes `entry_bytes(i)`, so a checker that knows only the indices
//! printed can verify every acknowledged entry after a crash. Used by the SIGKILL crash tests;
//! also a durability smoke test for an operator's disk:
//!
//! ```text
//! ledger-stress <redb|sled> <dir> <seed> [max-batches]
//! ```

use std::io::Write as _;
use std::process::ExitCode;

use ed25519_dalek::SigningKey;
use veritrail_ledger::Ledger;
use veritrail_ledger::note::{KeyName, NoteSigner};
use veritrail_ledger::store::{self, Backend};

#[path = "../../tests/support/stress.rs"]
mod stress;

use stress::{KEY_SEED, ORIGIN, entry_bytes, next};

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(backend), Some(dir), Some(seed)) = (args.get(1), args.get(2), args.get(3)) else {
        return Err("usage: ledger-stress <redb|sled> <dir> <seed> [max-batches]".into());
    };
    let backend: Backend = backend.parse().map_err(|e| format!("{e}"))?;
    let mut state: u64 = seed
        .parse()
        .map_err(|_| "seed must be a number".to_string())?;
    let max_batches: u64 = args.get(4).and_then(|m| m.parse().ok()).unwrap_or(u64::MAX);
    // A fixed key so that every run signs with the same log identity.
    let signer = NoteSigner::new(
        KeyName::new(ORIGIN).map_err(|e| e.to_string())?,
        SigningKey::from_bytes(&KEY_SEED),
    );
    let store = store::open(backend, std::path::Path::new(dir)).map_err(|e| e.to_string())?;
    let ledger = Ledger::open(store, ORIGIN, signer).map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    for batch in 0..max_batches {
        let count = next(&mut state) % 64 + 1;
        let first = ledger.tree_head().size;
        let entries: Vec<Vec<u8>> = (first..first + count).map(entry_bytes).collect();
        let appended = ledger.append(&entries).map_err(|e| e.to_string())?;
        writeln!(
            out,
            "ack {} {}",
            appended.indices.start, appended.indices.end
        )
        .and_then(|()| out.flush())
        .map_err(|e| e.to_string())?;
        if batch % 4 == 3 {
            let signed = ledger.sign_checkpoint().map_err(|e| e.to_string())?;
            writeln!(out, "cp {}", signed.checkpoint.tree.size)
                .and_then(|()| out.flush())
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ledger-stress: {e}");
            ExitCode::FAILURE
        }
    }
}
