//! Ledger benchmarks: durable append throughput (redb vs sled), proof generation from stored
//! tiles at 1M entries, and proof verification.
//!
//! ```text
//! cargo bench -p veritrail-ledger --bench ledger
//! ```
//!
//! Every append is durable (fsync) before it returns, exactly as in production. Figures and
//! the machine they came from are in `docs/performance.md`.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;
use veritrail_ledger::note::{KeyName, NoteSigner};
use veritrail_ledger::proof::{verify_consistency, verify_inclusion};
use veritrail_ledger::store::{self, Backend};
use veritrail_ledger::{Ledger, TreeHead, leaf_hash};

const ORIGIN: &str = "bench.veritrail.example/log";
/// Entries in the proof benchmarks' tree.
const PROOF_TREE_SIZE: u64 = 1 << 20;

fn ledger(backend: Backend, dir: &std::path::Path) -> Ledger {
    let signer = NoteSigner::new(
        KeyName::new(ORIGIN).unwrap(),
        SigningKey::from_bytes(&[9; 32]),
    );
    Ledger::open(store::open(backend, dir).unwrap(), ORIGIN, signer).unwrap()
}

/// A cheap deterministic sequence for picking indices (no `rand` dependency).
fn pick(state: &mut u64, below: u64) -> u64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*state >> 11) % below
}

fn durable_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("durable_append_512B");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for batch in [1usize, 64, 1024, 8192] {
        let entries: Vec<Vec<u8>> = (0..batch).map(|i| vec![(i % 251) as u8; 512]).collect();
        group.throughput(Throughput::Elements(batch as u64));
        for (name, backend) in [("redb", Backend::Redb), ("sled", Backend::Sled)] {
            let dir = tempfile::tempdir().unwrap();
            let ledger = ledger(backend, dir.path());
            group.bench_with_input(BenchmarkId::new(name, batch), &entries, |b, entries| {
                b.iter(|| {
                    let appended = ledger.append(black_box(entries)).unwrap();
                    assert_eq!(appended.indices.end - appended.indices.start, batch as u64);
                    appended
                })
            });
        }
    }
    group.finish();
}

fn proofs(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger(Backend::Redb, dir.path());
    while ledger.tree_head().size < PROOF_TREE_SIZE {
        let offset = ledger.tree_head().size;
        let entries: Vec<[u8; 8]> = (offset..offset + 8192).map(u64::to_be_bytes).collect();
        ledger.append(&entries).unwrap();
    }
    let tree = ledger.tree_head();
    assert_eq!(tree.size, PROOF_TREE_SIZE);

    let mut group = c.benchmark_group("proofs_at_1M");
    group.throughput(Throughput::Elements(1));
    let mut state = 1u64;
    group.bench_function("inclusion_proof_generate", |b| {
        b.iter(|| {
            let index = pick(&mut state, tree.size);
            let proof = ledger.inclusion_proof(black_box(index), tree.size).unwrap();
            assert_eq!(proof.len(), 20);
            proof
        })
    });
    group.bench_function("consistency_proof_generate", |b| {
        b.iter(|| {
            let old = pick(&mut state, tree.size - 1) + 1;
            let proof = ledger.consistency_proof(black_box(old), tree.size).unwrap();
            assert!(!proof.is_empty());
            proof
        })
    });

    // Verification over a fixed set of real proofs.
    let inclusion: Vec<(u64, _, Vec<_>)> = (0..256)
        .map(|_| {
            let index = pick(&mut state, tree.size);
            let leaf = leaf_hash(&index.to_be_bytes());
            (
                index,
                leaf,
                ledger.inclusion_proof(index, tree.size).unwrap(),
            )
        })
        .collect();
    let consistency: Vec<(TreeHead, Vec<_>)> = (0..256)
        .map(|_| {
            let old = pick(&mut state, tree.size - 1) + 1;
            let head = TreeHead::new(old, ledger.root_at(old).unwrap());
            (head, ledger.consistency_proof(old, tree.size).unwrap())
        })
        .collect();
    let mut i = 0usize;
    group.bench_function("inclusion_proof_verify", |b| {
        b.iter(|| {
            i = (i + 1) % inclusion.len();
            let (index, leaf, proof) = &inclusion[i];
            assert!(verify_inclusion(black_box(leaf), *index, &tree, proof).is_ok());
        })
    });
    group.bench_function("consistency_proof_verify", |b| {
        b.iter(|| {
            i = (i + 1) % consistency.len();
            let (old, proof) = &consistency[i];
            assert!(verify_consistency(black_box(old), &tree, proof).is_ok());
        })
    });
    group.finish();
}

criterion_group!(benches, durable_append, proofs);
criterion_main!(benches);
