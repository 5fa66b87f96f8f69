//! Verified reads (issue 14): what checking every served entry against its leaf hash in the
//! level-0 tile costs, beside the unverified read path in the same run.
//!
//! ```text
//! cargo bench -p veritrail --bench reads
//! VERITRAIL_BENCH_READ_URLS=old=http://127.0.0.1:7911,new=http://127.0.0.1:7912 \
//!     cargo bench -p veritrail --bench reads -- http_bundle_read
//! ```
//!
//! **In process** (`bundle_read_512B`, `entry_read_512B`): a redb store of 512 full bundles
//! (131,072 entries of 512 bytes, 64 MiB — twice the default cache), its files in the page
//! cache. Full-bundle reads through
//!
//! - `unverified`: `Ledger::entry_bundle_unverified`, the read path before issue 14 (feature
//!   `bench-unverified-reads`, enabled for this crate's benches and tests only);
//! - `verified_no_cache`: `Ledger::entry_bundle` with the cache budget at 0: every read goes to
//!   disk and hashes its 256 entries;
//! - `verified`: `Ledger::entry_bundle` with the default cache (32 MiB).
//!
//! each over two working sets: `hot`, 64 bundles cycled (8 MiB: fits the cache, so after the
//! first pass every verified read is a hit) and `all`, the 512 bundles cycled (64 MiB: with a
//! least-recently-used cache every read misses). Single entries the same way: `unverified` is
//! the old `Ledger::entry` (the bundle's prefix up to the entry, its last entry), `verified`
//! the new one without cache.
//!
//! **Over HTTP** (`http_bundle_read`): `GET /tile/entries/<N>` of full bundles from
//! `VERITRAIL_BENCH_CONCURRENCY` (default 8) clients over loopback keep-alive, with the same
//! two working sets (`all` = every full bundle of the served tree). Against each server named
//! in `VERITRAIL_BENCH_READ_URLS` (`label=url,...`: e.g. the release before issue 14 and this
//! tree, serving copies of one store, so both are measured in the same run), or else against
//! a server started in this process on the bench store. Criterion's `iter_custom` drives
//! `iters × REQUESTS_PER_ITER` requests; every answer is checked (200, a whole bundle) inside
//! the loop.
//!
//! Under `cargo test` (no `--bench` argument) the store holds 16 bundles, as a smoke test.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use veritrail_ledger::Ledger;
use veritrail_ledger::bundle::iter_bundle;
use veritrail_ledger::engine::BUNDLE_CACHE_BUDGET;
use veritrail_ledger::note::{KeyName, NoteSigner};
use veritrail_ledger::store::{self, Backend};
use veritrail_ledger::tile::TileId;
use veritrail_server::auth::Auth;
use veritrail_server::{Server, ServerConfig};

const ORIGIN: &str = "bench.veritrail.example/log";
/// Bytes per entry.
const ENTRY_SIZE: usize = 512;
/// Full bundles in the bench store: 64 MiB of entries, twice the default cache.
const BUNDLES: u64 = 512;
/// Full bundles in the store under `cargo test`.
const SMOKE_BUNDLES: u64 = 16;
/// Bundles of the `hot` working set: 8 MiB, well within the default cache.
const HOT: u64 = 64;
/// Bytes of a full bundle of 512-byte entries (each with its 2-byte length).
const BUNDLE_BYTES: usize = 256 * (2 + ENTRY_SIZE);
/// Requests per criterion iteration over HTTP.
const REQUESTS_PER_ITER: u64 = 256;
/// Default concurrent HTTP clients (`VERITRAIL_BENCH_CONCURRENCY` overrides it).
const DEFAULT_CONCURRENCY: u64 = 8;

fn benching() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Entry `n`: a fixed pseudo-random body whose first 8 bytes are `n`.
fn entry(n: u64) -> Vec<u8> {
    let mut body: Vec<u8> = (0..ENTRY_SIZE)
        .map(|i| (i as u64).wrapping_mul(0x9E37_79B9).to_be_bytes()[7])
        .collect();
    body[..8].copy_from_slice(&n.to_be_bytes());
    body
}

/// A redb ledger of `bundles` full bundles.
fn store(dir: &std::path::Path, bundles: u64) -> Ledger {
    let signer = NoteSigner::from_seed(KeyName::new(ORIGIN).unwrap(), [9; 32]);
    let ledger = Ledger::open(store::open(Backend::Redb, dir).unwrap(), ORIGIN, signer).unwrap();
    let total = bundles * 256;
    while ledger.tree_head().size < total {
        let from = ledger.tree_head().size;
        let batch: Vec<Vec<u8>> = (from..(from + 4096).min(total)).map(entry).collect();
        ledger.append(&batch).unwrap();
    }
    ledger.sign_checkpoint().unwrap();
    ledger
}

/// The working sets: (name, bundles cycled).
fn working_sets(bundles: u64) -> [(&'static str, u64); 2] {
    [("hot", HOT.min(bundles)), ("all", bundles)]
}

fn in_process(c: &mut Criterion, ledger: &Ledger, bundles: u64) {
    let mut group = c.benchmark_group("bundle_read_512B");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(1));
    for (set, cycle) in working_sets(bundles) {
        let mut next = 0u64;
        group.bench_function(BenchmarkId::new("unverified", set), |b| {
            b.iter(|| {
                next = (next + 1) % cycle;
                let bytes = ledger
                    .entry_bundle_unverified(black_box(next), 256)
                    .unwrap();
                assert_eq!(bytes.len(), BUNDLE_BYTES);
                bytes
            })
        });
        ledger.set_bundle_cache_budget(0);
        group.bench_function(BenchmarkId::new("verified_no_cache", set), |b| {
            b.iter(|| {
                next = (next + 1) % cycle;
                let bytes = ledger.entry_bundle(black_box(next), 256).unwrap();
                assert_eq!(bytes.len(), BUNDLE_BYTES);
                bytes
            })
        });
        ledger.set_bundle_cache_budget(BUNDLE_CACHE_BUDGET);
        group.bench_function(BenchmarkId::new("verified", set), |b| {
            b.iter(|| {
                next = (next + 1) % cycle;
                let bytes = ledger.entry_bundle(black_box(next), 256).unwrap();
                assert_eq!(bytes.len(), BUNDLE_BYTES);
                bytes
            })
        });
    }
    group.finish();

    // Single entries, spread over every position of every bundle, without the cache.
    let mut group = c.benchmark_group("entry_read_512B");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(1));
    let size = bundles * 256;
    let step = |n: &mut u64| {
        *n = (*n + 257) % size;
        *n
    };
    let mut next = 0u64;
    group.bench_function("unverified", |b| {
        b.iter(|| {
            let index = black_box(step(&mut next));
            let prefix = ledger
                .entry_bundle_unverified(index / 256, (index % 256) as u16 + 1)
                .unwrap();
            let entry = iter_bundle(&prefix).last().unwrap().unwrap().to_vec();
            assert_eq!(entry.len(), ENTRY_SIZE);
            entry
        })
    });
    ledger.set_bundle_cache_budget(0);
    group.bench_function("verified", |b| {
        b.iter(|| {
            let entry = ledger.entry(black_box(step(&mut next))).unwrap();
            assert_eq!(entry.len(), ENTRY_SIZE);
            entry
        })
    });
    ledger.set_bundle_cache_budget(BUNDLE_CACHE_BUDGET);
    group.finish();
}

fn concurrency() -> u64 {
    std::env::var("VERITRAIL_BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| (1..=1024).contains(&n))
        .unwrap_or(DEFAULT_CONCURRENCY)
}

/// The full bundles of the tree a server publishes, from its `/checkpoint`.
async fn full_bundles(client: &reqwest::Client, base: &str) -> u64 {
    let note = client
        .get(format!("{base}/checkpoint"))
        .send()
        .await
        .expect("the server answers")
        .text()
        .await
        .unwrap();
    let size: u64 = note.lines().nth(1).unwrap().parse().unwrap();
    size / 256
}

/// Sends `total` bundle reads from `clients` tasks, request `k` asking for bundle
/// `k % cycle`; returns the wall time. Every answer must be 200 and a whole bundle.
async fn drive(
    client: &reqwest::Client,
    urls: &Arc<Vec<String>>,
    clients: u64,
    total: u64,
    next: &Arc<AtomicU64>,
) -> Duration {
    let claimed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients.min(total))
        .map(|_| {
            let (client, urls) = (client.clone(), urls.clone());
            let (claimed, next) = (claimed.clone(), next.clone());
            tokio::spawn(async move {
                while claimed.fetch_add(1, Ordering::Relaxed) < total {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let url = &urls[(k % urls.len() as u64) as usize];
                    let response = client.get(url).send().await.expect("the server answers");
                    let status = response.status();
                    let body = response.bytes().await.expect("a whole answer");
                    assert_eq!(status, reqwest::StatusCode::OK, "{url}");
                    assert_eq!(body.len(), BUNDLE_BYTES, "{url}");
                    black_box(body);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a client task");
    }
    started.elapsed()
}

fn http(c: &mut Criterion, runtime: &tokio::runtime::Runtime, servers: &[(String, String)]) {
    let clients = concurrency();
    let client = reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(usize::try_from(clients).unwrap())
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut group = c.benchmark_group("http_bundle_read");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(REQUESTS_PER_ITER));
    let sets = servers
        .iter()
        .map(|(_, base)| working_sets(runtime.block_on(full_bundles(&client, base))))
        .collect::<Vec<_>>();
    // Working set by working set, each server in turn: the servers' figures stand side by side.
    for set in 0..2 {
        for ((label, base), sets) in servers.iter().zip(&sets) {
            let (name, cycle) = sets[set];
            let urls: Arc<Vec<String>> = Arc::new(
                (0..cycle)
                    .map(|n| format!("{base}/{}", TileId::entries(n, 256).unwrap().path()))
                    .collect(),
            );
            let next = Arc::new(AtomicU64::new(0));
            let id = BenchmarkId::new(label.as_str(), format!("{name}/{clients}_clients"));
            group.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    runtime.block_on(drive(
                        &client,
                        &urls,
                        clients,
                        iters * REQUESTS_PER_ITER,
                        &next,
                    ))
                })
            });
        }
    }
    group.finish();
}

/// `VERITRAIL_BENCH_READ_URLS`: `label=url` pairs, comma-separated.
fn servers_from_env() -> Option<Vec<(String, String)>> {
    let text = std::env::var("VERITRAIL_BENCH_READ_URLS").ok()?;
    Some(
        text.split(',')
            .map(|pair| {
                let (label, url) = pair
                    .split_once('=')
                    .expect("VERITRAIL_BENCH_READ_URLS holds label=url pairs");
                (label.to_owned(), url.trim_end_matches('/').to_owned())
            })
            .collect(),
    )
}

fn reads(c: &mut Criterion) {
    let bundles = if benching() { BUNDLES } else { SMOKE_BUNDLES };
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(store(dir.path(), bundles));
    in_process(c, &ledger, bundles);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    match servers_from_env() {
        Some(servers) => http(c, &runtime, &servers),
        None => {
            let config = ServerConfig {
                no_auth: true,
                ..ServerConfig::default()
            };
            let listener = runtime
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let server = {
                let _entered = runtime.enter();
                Server::start(ledger.clone(), config, Auth::disabled()).unwrap()
            };
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let served = runtime.spawn(server.serve(listener, async move {
                let _ = stopped.await;
            }));
            // The publisher signs the first checkpoint at once.
            let client = reqwest::Client::new();
            let deadline = Instant::now() + Duration::from_secs(30);
            while runtime.block_on(async {
                let r = client.get(format!("{base}/checkpoint")).send().await;
                !r.is_ok_and(|r| r.status().is_success())
            }) {
                assert!(Instant::now() < deadline, "no checkpoint published");
                std::thread::sleep(Duration::from_millis(10));
            }
            http(c, &runtime, &[("this_tree".to_owned(), base)]);
            let _ = stop.send(());
            runtime
                .block_on(served)
                .expect("the server task")
                .expect("the server stops cleanly");
        }
    }
}

criterion_group!(benches, reads);
criterion_main!(benches);
