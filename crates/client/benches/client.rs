//! Client benchmarks: inclusion-proof verification at tree size ≈ 2^30 (bare proofs and full
//! offline receipts), and monitor replay throughput from a log copy on local disk.
//!
//! ```text
//! cargo bench -p veritrail-client --bench client
//! ```
//!
//! - `inclusion_verify`: [`verify_inclusion`] of 31-hash proofs at size `2^30 + 12345`, with
//!   the same at size `2^10 + 12` (10-11 hashes) and one `node_hash` as baselines. Valid
//!   (proof, root) pairs are made without a 2^30 tree: random proof hashes, and the root
//!   computed from them with [`root_from_inclusion_proof`].
//! - `receipt_verify`: [`verify_receipt`] (parse, Ed25519 signature of the checkpoint,
//!   inclusion) of receipts at size `2^30 + 12345`, with the checkpoint signature check alone
//!   ([`Checkpoint::verify_signed`]) as the breakdown.
//! - `monitor_replay`: a full [`Monitor::run_once`] over a [`DirSource`] holding `2^20`
//!   entries of 100-200 bytes in the C2SP layout (written once per run into a temporary
//!   directory and flushed with `sync`, so it is read from the page cache), from a fresh
//!   cache and no trusted state each iteration, against two in-memory baselines
//!   over the same entries: leaf hashes alone, and leaf hashes plus the tree rebuild
//!   (`CompactRange`), the compute a full audit cannot avoid.
//!
//! Figures and the machine they came from are in `docs/performance.md`.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use veritrail_client::{DirSource, LogVerifier, Monitor, MonitorOptions, verify_receipt};
use veritrail_ledger::bundle::encode_bundle;
use veritrail_ledger::checkpoint::Checkpoint;
use veritrail_ledger::note::{KeyName, NoteSigner};
use veritrail_ledger::proof::{inclusion_proof_len, root_from_inclusion_proof, verify_inclusion};
use veritrail_ledger::receipt::Receipt;
use veritrail_ledger::tile::{TILE_WIDTH, TileId};
use veritrail_ledger::tree::CompactRange;
use veritrail_ledger::{Hash, TreeHead, leaf_hash, node_hash};

const ORIGIN: &str = "bench.veritrail.example/log";
/// The large tree: just above 2^30, so nearly every proof has 31 hashes.
const LARGE_SIZE: u64 = (1 << 30) + 12345;
/// The small tree of the baseline.
const SMALL_SIZE: u64 = (1 << 10) + 12;
/// Distinct proofs (and receipts) cycled through per benchmark.
const PROOFS: usize = 256;
/// Entries in the monitor's log copy.
const MONITOR_ENTRIES: u64 = 1 << 20;

fn signer() -> NoteSigner {
    NoteSigner::from_seed(KeyName::new(ORIGIN).unwrap(), [9; 32])
}

/// A cheap deterministic sequence (no `rand` dependency).
fn pick(state: &mut u64, below: u64) -> u64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*state >> 11) % below
}

/// A JSON-ish audit entry of 100 to 200 bytes.
fn entry(i: u64) -> Vec<u8> {
    let len = 100 + usize::try_from(i.wrapping_mul(2654435761) % 101).unwrap();
    let mut bytes = format!(
        "{{\"seq\":{i},\"agent\":\"agent-{}\",\"action\":\"read\",\"note\":\"",
        i % 17
    )
    .into_bytes();
    bytes.resize(len - 2, b'x');
    bytes.extend_from_slice(b"\"}");
    bytes
}

/// A proof case: entry, leaf hash, index, random proof and the tree head it proves into.
struct Case {
    entry: Vec<u8>,
    leaf: Hash,
    index: u64,
    proof: Vec<Hash>,
    tree: TreeHead,
}

fn cases(size: u64, seed: u64) -> Vec<Case> {
    let mut state = seed;
    (0..PROOFS)
        .map(|_| {
            let index = pick(&mut state, size);
            let entry = entry(index);
            let leaf = leaf_hash(&entry);
            let proof: Vec<Hash> = (0..inclusion_proof_len(index, size))
                .map(|_| leaf_hash(&pick(&mut state, u64::MAX).to_be_bytes()))
                .collect();
            let root = root_from_inclusion_proof(&leaf, index, size, &proof).unwrap();
            let tree = TreeHead::new(size, root);
            assert_eq!(verify_inclusion(&leaf, index, &tree, &proof), Ok(()));
            Case {
                entry,
                leaf,
                index,
                proof,
                tree,
            }
        })
        .collect()
}

fn inclusion(c: &mut Criterion) {
    let large = cases(LARGE_SIZE, 1);
    let small = cases(SMALL_SIZE, 2);
    let mean_len = |cases: &[Case]| {
        cases.iter().map(|c| c.proof.len()).sum::<usize>() as f64 / cases.len() as f64
    };
    eprintln!(
        "mean proof length: {:.2} hashes at size {LARGE_SIZE}, {:.2} at size {SMALL_SIZE}",
        mean_len(&large),
        mean_len(&small)
    );

    let mut group = c.benchmark_group("inclusion_verify");
    group
        .throughput(Throughput::Elements(1))
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for (name, cases) in [("size_2^30+12345", &large), ("size_2^10+12", &small)] {
        let mut i = 0usize;
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % cases.len();
                let case = &cases[i];
                let verified =
                    verify_inclusion(black_box(&case.leaf), case.index, &case.tree, &case.proof);
                assert!(verified.is_ok());
            })
        });
    }
    let (left, right) = (large[0].leaf, large[1].leaf);
    group.bench_function("node_hash", |b| {
        b.iter(|| node_hash(black_box(&left), black_box(&right)))
    });
    group.finish();

    // Receipts: the same proofs, each with its own signed checkpoint.
    let signer = signer();
    let key = signer.verifier();
    let receipts: Vec<(Vec<u8>, &[u8])> = large
        .iter()
        .map(|case| {
            let checkpoint = Checkpoint::new(ORIGIN, case.tree).unwrap();
            let receipt = Receipt {
                extra: None,
                index: case.index,
                proof: case.proof.clone(),
                checkpoint: checkpoint.sign(&signer).unwrap(),
            }
            .to_bytes();
            let (_, verified) = verify_receipt(&receipt, &case.entry, &key, None).unwrap();
            assert_eq!(verified.tree, case.tree);
            (receipt, case.entry.as_slice())
        })
        .collect();
    let notes: Vec<Vec<u8>> = receipts
        .iter()
        .map(|(receipt, _)| Receipt::from_bytes(receipt).unwrap().checkpoint.to_bytes())
        .collect();
    eprintln!(
        "receipt size: {} bytes (checkpoint note {} bytes)",
        receipts[0].0.len(),
        notes[0].len()
    );

    let mut group = c.benchmark_group("receipt_verify");
    group
        .throughput(Throughput::Elements(1))
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    let mut i = 0usize;
    group.bench_function("size_2^30+12345", |b| {
        b.iter(|| {
            i = (i + 1) % receipts.len();
            let (receipt, entry) = &receipts[i];
            let verified = verify_receipt(black_box(receipt), entry, &key, None);
            assert!(verified.is_ok());
        })
    });
    group.bench_function("checkpoint_signature_only", |b| {
        b.iter(|| {
            i = (i + 1) % notes.len();
            let verified = Checkpoint::verify_signed(black_box(&notes[i]), ORIGIN, &key);
            assert!(verified.is_ok());
        })
    });
    group.finish();
}

/// Writes a copy of the log of `entries` in the C2SP layout under `dir`: `checkpoint`,
/// `tile/<L>/...` hash tiles and `tile/entries/...` bundles (partial ones at `.p/<W>`).
fn write_log(dir: &Path, entries: &[Vec<u8>], signer: &NoteSigner) -> TreeHead {
    let write = |id: TileId, bytes: &[u8]| {
        let path = dir.join(id.path());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    };
    let mut range = CompactRange::new();
    let mut rows: Vec<Vec<Hash>> = vec![Vec::new(); 8];
    for entry in entries {
        range.append(leaf_hash(entry), |level, _, hash| {
            if level % 8 == 0 {
                rows[(level / 8) as usize].push(*hash);
            }
        });
    }
    let width = usize::try_from(TILE_WIDTH).unwrap();
    for (level, row) in rows.iter().enumerate() {
        for (index, tile) in row.chunks(width).enumerate() {
            let bytes: Vec<u8> = tile.iter().flat_map(|h| h.0).collect();
            let id = TileId::hash(
                u8::try_from(level).unwrap(),
                index as u64,
                u16::try_from(tile.len()).unwrap(),
            );
            write(id.unwrap(), &bytes);
        }
    }
    for (index, bundle) in entries.chunks(width).enumerate() {
        let bytes = encode_bundle(bundle.iter().map(Vec::as_slice)).unwrap();
        let id = TileId::entries(index as u64, u16::try_from(bundle.len()).unwrap());
        write(id.unwrap(), &bytes);
    }
    let tree = range.tree_head();
    let note = Checkpoint::new(ORIGIN, tree)
        .unwrap()
        .sign(signer)
        .unwrap()
        .to_bytes();
    std::fs::write(dir.join("checkpoint"), note).unwrap();
    tree
}

fn monitor(c: &mut Criterion) {
    let entries: Vec<Vec<u8>> = (0..MONITOR_ENTRIES).map(entry).collect();
    let bytes: usize = entries.iter().map(Vec::len).sum();
    let signer = signer();
    let log = tempfile::tempdir().unwrap();
    let written = Instant::now();
    let tree = write_log(log.path(), &entries, &signer);
    // Flush the copy now: otherwise the kernel writes its ~190 MB back during the timed runs,
    // and every fsync of the monitor's cache commits waits behind it (runs then vary 2-3x).
    let synced = std::process::Command::new("sync")
        .status()
        .is_ok_and(|s| s.success());
    eprintln!(
        "log copy: {} entries, {bytes} entry bytes, written in {:.2?} to {} (synced: {synced})",
        tree.size,
        written.elapsed(),
        log.path().display()
    );
    let source = DirSource::new(log.path());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    eprintln!("tokio worker threads: {}", runtime.metrics().num_workers());

    let mut group = c.benchmark_group("monitor_replay");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(MONITOR_ENTRIES))
        .measurement_time(Duration::from_secs(10))
        .warm_up_time(Duration::from_secs(1));
    group.bench_function(
        BenchmarkId::new("monitor_dir_source", MONITOR_ENTRIES),
        |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // A fresh cache and no trusted state: the whole log is audited every time.
                    let cache = tempfile::tempdir().unwrap();
                    let verifier = LogVerifier::new(ORIGIN, signer.verifier());
                    let mut monitor = Monitor::new(
                        source.clone(),
                        verifier,
                        None,
                        MonitorOptions::new(cache.path()),
                    )
                    .unwrap();
                    let started = Instant::now();
                    let report = runtime.block_on(monitor.run_once(&mut |_, _| {})).unwrap();
                    total += started.elapsed();
                    assert_eq!(report.entries_verified, MONITOR_ENTRIES);
                    assert_eq!(report.checkpoint.tree, tree);
                }
                total
            })
        },
    );
    group.bench_function(BenchmarkId::new("leaf_hash_only", MONITOR_ENTRIES), |b| {
        b.iter(|| {
            let mut acc = [0u8; 32];
            for entry in &entries {
                let hash = leaf_hash(black_box(entry));
                acc[0] ^= hash.0[0];
            }
            acc
        })
    });
    group.bench_function(
        BenchmarkId::new("leaf_hash_and_tree", MONITOR_ENTRIES),
        |b| {
            b.iter(|| {
                let mut range = CompactRange::new();
                for entry in &entries {
                    range.append(leaf_hash(black_box(entry)), |_, _, _| {});
                }
                assert_eq!(range.tree_head(), tree);
            })
        },
    );
    group.finish();
}

criterion_group!(benches, inclusion, monitor);
criterion_main!(benches);
