//! Storage cost per entry: bytes on disk beyond the payload after appending
//! `VERITRAIL_BENCH_ENTRIES` (default 100,000) entries of 512 bytes, in batches of 128,
//! into a fresh redb store through [`Ledger::append`] (each batch durable, as the server's
//! group commit writes it).
//!
//! ```text
//! cargo bench -p veritrail --bench storage
//! VERITRAIL_BENCH_ENTRIES=1000000 cargo bench -p veritrail --bench storage
//! ```
//!
//! Prints the store's size (every file under the data directory), the payload, and
//! `overhead_bytes_per_entry` = (size − payload) / entries, plus the append rate. A single
//! measured run, not a criterion loop: the figure is a size, not a time. Under `cargo test`
//! (no `--bench` argument) it appends 1,000 entries only, as a smoke test.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use veritrail_ledger::Ledger;
use veritrail_ledger::note::{KeyName, NoteSigner};
use veritrail_ledger::store::{self, Backend};

const ORIGIN: &str = "bench.veritrail.example/log";
/// Bytes per entry.
const ENTRY_SIZE: usize = 512;
/// Entries per durable append, as a commit of the server under load.
const BATCH: usize = 128;
/// Entries appended by default.
const DEFAULT_ENTRIES: u64 = 100_000;
/// Entries appended under `cargo test` (a smoke run).
const SMOKE_ENTRIES: u64 = 1_000;

/// Sum of the sizes of every file under `dir`.
fn disk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                disk_bytes(&entry.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let entries = match std::env::var("VERITRAIL_BENCH_ENTRIES") {
        Ok(v) => v
            .parse::<u64>()
            .ok()
            .filter(|&n| n > 0)
            .expect("VERITRAIL_BENCH_ENTRIES is a positive integer"),
        Err(_) if benching => DEFAULT_ENTRIES,
        Err(_) => SMOKE_ENTRIES,
    };
    let dir = tempfile::tempdir().unwrap();
    let signer = NoteSigner::from_seed(KeyName::new(ORIGIN).unwrap(), [9; 32]);
    let ledger = Ledger::open(
        store::open(Backend::Redb, dir.path()).unwrap(),
        ORIGIN,
        signer,
    )
    .unwrap();

    let mut batch: Vec<Vec<u8>> = (0..BATCH)
        .map(|i| {
            (0..ENTRY_SIZE)
                .map(|j| ((i * 31 + j * 7) % 251) as u8)
                .collect()
        })
        .collect();
    let started = Instant::now();
    let mut appended = 0u64;
    while appended < entries {
        let count = usize::try_from((entries - appended).min(BATCH as u64)).unwrap();
        let batch = &mut batch[..count];
        for (k, entry) in batch.iter_mut().enumerate() {
            // Distinct entries: the first 8 bytes are the entry number.
            entry[..8].copy_from_slice(&(appended + k as u64).to_be_bytes());
        }
        let done = ledger.append(black_box(&*batch)).unwrap();
        assert_eq!(done.indices, appended..appended + count as u64);
        appended += count as u64;
    }
    let elapsed = started.elapsed();
    assert_eq!(ledger.tree_head().size, entries);
    drop(ledger);

    let bytes = disk_bytes(dir.path());
    let payload = entries * ENTRY_SIZE as u64;
    let overhead = bytes.saturating_sub(payload) as f64 / entries as f64;
    println!(
        "storage_redb_512B_batch{BATCH}: entries={entries} disk_bytes={bytes} payload_bytes={payload} overhead_bytes_per_entry={overhead:.1} appends_per_s={:.0}",
        entries as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    );
}
