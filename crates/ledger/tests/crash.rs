//! Crash safety on a real process: a child (`ledger-stress`) appends in a loop and prints
//! every acknowledged batch; the test SIGKILLs it at random moments, reopens the store and
//! checks that nothing acknowledged was lost, the root re-derives from the tiles, and the last
//! signed checkpoint is consistent with a new one. For both backends.
//!
//! `VERITRAIL_CRASH_ROUNDS=1000` runs more rounds (default 50); `VERITRAIL_CRASH_SEED` replays
//! a failing run's kill schedule.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use ed25519_dalek::SigningKey;
use veritrail_ledger::Ledger;
use veritrail_ledger::bundle::decode_bundle;
use veritrail_ledger::note::{KeyName, NoteSigner};
use veritrail_ledger::proof::verify_consistency;
use veritrail_ledger::store::{self, Backend};

#[path = "support/stress.rs"]
mod stress;

use stress::{KEY_SEED, ORIGIN, entry_bytes, next};

fn crash_rounds(backend: Backend, name: &str) {
    let rounds: u64 = std::env::var("VERITRAIL_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(50);
    let seed: u64 = std::env::var("VERITRAIL_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("{name}: {rounds} rounds, VERITRAIL_CRASH_SEED={seed}");
    let mut state = seed;
    // Kept on failure for inspection; removed at the end of a passing run.
    let dir = tempfile::tempdir().unwrap().keep();
    let signer = NoteSigner::new(
        KeyName::new(ORIGIN).unwrap(),
        SigningKey::from_bytes(&KEY_SEED),
    );
    let mut acked_end = 0u64;
    let mut killed_mid_run = 0;
    for round in 0..rounds {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ledger-stress"))
            .args([name, dir.to_str().unwrap(), &next(&mut state).to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ledger-stress");
        let stdout = child.stdout.take().unwrap();
        let lines = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<String>>()
        });
        std::thread::sleep(Duration::from_millis(10 + next(&mut state) % 140));
        let still_running = child.try_wait().unwrap().is_none();
        child.kill().unwrap(); // SIGKILL on Unix.
        let status = child.wait().unwrap();
        let lines = lines.join().unwrap();
        if still_running {
            killed_mid_run += 1;
        } else {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            panic!("round {round}: ledger-stress exited by itself ({status}): {err}");
        }
        for line in &lines {
            if let Some(rest) = line.strip_prefix("ack ") {
                let end: u64 = rest.split(' ').nth(1).unwrap().parse().unwrap();
                acked_end = acked_end.max(end);
            }
        }

        // Reopen: this re-derives the root from the tiles and checks the last checkpoint.
        let store = store::open(backend, &dir).unwrap_or_else(|e| {
            panic!(
                "round {round}: the {name} store does not reopen after SIGKILL: {e} (kept at {})",
                dir.display()
            )
        });
        let ledger = Ledger::open(store, ORIGIN, signer.clone())
            .unwrap_or_else(|e| panic!("round {round}: reopen failed: {e}"));
        let tree = ledger.tree_head();
        assert!(
            tree.size >= acked_end,
            "round {round}: acknowledged {acked_end} entries, only {} survived",
            tree.size
        );
        // Every entry, acknowledged or not, is byte-equal to what the writer appended.
        for bundle in 0..tree.size.div_ceil(256) {
            let width = (tree.size - bundle * 256).min(256) as u16;
            let bytes = ledger.entry_bundle(bundle, width).unwrap();
            let entries = decode_bundle(&bytes, 256).unwrap();
            assert_eq!(entries.len(), usize::from(width));
            for (i, entry) in entries.iter().enumerate() {
                let index = bundle * 256 + i as u64;
                assert_eq!(
                    *entry,
                    entry_bytes(index).as_slice(),
                    "round {round}: entry {index}"
                );
            }
        }
        assert_eq!(ledger.root_at(tree.size).unwrap(), tree.root);
        // The last signed checkpoint is consistent with a new one.
        let previous = ledger.latest_checkpoint();
        let signed = ledger.sign_checkpoint().unwrap();
        assert_eq!(signed.checkpoint.tree, tree);
        if let Some(previous) = previous.filter(|p| p.checkpoint.tree.size > 0) {
            let old = previous.checkpoint.tree;
            let proof = ledger.consistency_proof(old.size, tree.size).unwrap();
            verify_consistency(&old, &tree, &proof)
                .unwrap_or_else(|e| panic!("round {round}: checkpoint {old:?} -> {tree:?}: {e}"));
        }
    }
    assert!(acked_end > 0, "the writer never acknowledged anything");
    assert!(
        killed_mid_run * 10 >= rounds * 9,
        "only {killed_mid_run} of {rounds} kills hit a running writer"
    );
    eprintln!("{name}: {acked_end} acknowledged entries survived {rounds} SIGKILLs");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn redb_survives_sigkill() {
    crash_rounds(Backend::Redb, "redb");
}

#[test]
fn sled_survives_sigkill() {
    crash_rounds(Backend::Sled, "sled");
}
