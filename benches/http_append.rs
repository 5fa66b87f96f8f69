//! End-to-end HTTP append benchmark: single 512-byte entries, durable (acknowledged after
//! fsync), from concurrent clients over loopback HTTP/1.1 keep-alive.
//!
//! ```text
//! cargo bench -p veritrail --bench http_append
//! VERITRAIL_BENCH_CONCURRENCY=128 cargo bench -p veritrail --bench http_append
//! ```
//!
//! The server is started in this process exactly as `veritrail serve --no-auth` starts it
//! ([`Server::start`] on a redb store, then [`Server::serve`] on a listener bound to
//! `127.0.0.1:0`), with the default configuration. Criterion's `iter_custom` drives
//! `iters × REQUESTS_PER_ITER` requests from `--concurrency` tasks (a closed loop: each task
//! sends its next request when the previous one is answered) and reports throughput in
//! appends per second; every answer is checked to be a success (2xx) inside the loop. The
//! latency of every request (send to answer, µs) goes into an HDR histogram whose
//! percentiles are printed at the end.
//!
//! Bounded: loopback only, at most `REQUESTS_PER_ITER` requests per criterion iteration,
//! 10 samples, about 10 s of measurement (on a 2-core machine: ~12.8k appends/s, p99
//! ~20 ms, the baseline of issue 8).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hdrhistogram::Histogram;
use veritrail_ledger::Ledger;
use veritrail_ledger::note::{KeyName, NoteSigner};
use veritrail_ledger::store::{self, Backend};
use veritrail_server::auth::Auth;
use veritrail_server::{Server, ServerConfig};

const ORIGIN: &str = "bench.veritrail.example/log";
/// Bytes per entry, as in the issue's figures.
const ENTRY_SIZE: usize = 512;
/// Requests per criterion iteration: large enough that the pipeline of concurrent clients
/// is full for most of an iteration, small enough to keep a run to seconds.
const REQUESTS_PER_ITER: u64 = 2048;
/// Default concurrent clients (`VERITRAIL_BENCH_CONCURRENCY` overrides it).
const DEFAULT_CONCURRENCY: u64 = 128;
/// Highest latency the histogram tracks (1 minute in µs); longer ones saturate.
const MAX_LATENCY_US: u64 = 60_000_000;

fn concurrency() -> u64 {
    std::env::var("VERITRAIL_BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| (1..=4096).contains(&n))
        .unwrap_or(DEFAULT_CONCURRENCY)
}

/// A running server on loopback and how to stop it.
struct Running {
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

/// Starts the server as `veritrail serve --no-auth --listen 127.0.0.1:0` does.
async fn start_server() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let signer = NoteSigner::from_seed(KeyName::new(ORIGIN).unwrap(), [9; 32]);
    let ledger = Ledger::open(
        store::open(Backend::Redb, dir.path()).unwrap(),
        ORIGIN,
        signer,
    )
    .unwrap();
    let config = ServerConfig {
        no_auth: true,
        ..ServerConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/entries", listener.local_addr().unwrap());
    let server = Server::start(Arc::new(ledger), config, Auth::disabled()).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server.serve(listener, async move {
        let _ = stopped.await;
    }));
    Running {
        url,
        stop,
        served,
        _dir: dir,
    }
}

/// Distinct entries: a fixed pseudo-random body whose first 8 bytes are a counter.
fn entry(n: u64) -> Vec<u8> {
    let mut body: Vec<u8> = (0..ENTRY_SIZE)
        .map(|i| (i as u64).wrapping_mul(0x9E37_79B9).to_be_bytes()[7])
        .collect();
    body[..8].copy_from_slice(&n.to_be_bytes());
    body
}

/// Sends `total` appends from `clients` tasks; returns the wall time. Every answer must be
/// a success (2xx); every latency goes into `latency`.
async fn drive(
    client: &reqwest::Client,
    url: &str,
    clients: u64,
    total: u64,
    next_entry: &Arc<AtomicU64>,
    latency: &Arc<Mutex<Histogram<u64>>>,
) -> Duration {
    let claimed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients.min(total))
        .map(|_| {
            let (client, url) = (client.clone(), url.to_owned());
            let (claimed, next_entry) = (claimed.clone(), next_entry.clone());
            tokio::spawn(async move {
                let mut local = Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_US, 3).unwrap();
                while claimed.fetch_add(1, Ordering::Relaxed) < total {
                    let body = entry(next_entry.fetch_add(1, Ordering::Relaxed));
                    let sent = Instant::now();
                    let response = client
                        .post(&url)
                        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                        .body(black_box(body))
                        .send()
                        .await
                        .expect("the server answers");
                    let status = response.status();
                    let answer = response.bytes().await.expect("a whole answer");
                    assert!(status.is_success(), "{status}: {answer:?}");
                    let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                    local.saturating_record(micros.max(1));
                }
                local
            })
        })
        .collect();
    for task in tasks {
        let local = task.await.expect("a client task");
        latency.lock().unwrap().add(&local).unwrap();
    }
    started.elapsed()
}

fn http_append(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let running = runtime.block_on(start_server());
    let clients = concurrency();
    let client = reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(usize::try_from(clients).unwrap())
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let next_entry = Arc::new(AtomicU64::new(0));
    let latency = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_US, 3).unwrap(),
    ));

    let mut group = c.benchmark_group("http_append_512B");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(REQUESTS_PER_ITER));
    group.bench_function(format!("durable/{clients}_clients"), |b| {
        b.iter_custom(|iters| {
            runtime.block_on(drive(
                &client,
                &running.url,
                clients,
                iters * REQUESTS_PER_ITER,
                &next_entry,
                &latency,
            ))
        });
    });
    group.finish();

    let latency = latency.lock().unwrap();
    let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "http_append_512B latency over {} requests ({clients} clients, ms): p50 {:.3}  p95 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
        latency.len(),
        ms(0.50),
        ms(0.95),
        ms(0.99),
        ms(0.999),
        latency.max() as f64 / 1000.0,
    );
    drop(latency);
    let Running {
        stop, served, _dir, ..
    } = running;
    let _ = stop.send(());
    runtime
        .block_on(served)
        .expect("the server task")
        .expect("the server stops cleanly");
}

criterion_group!(benches, http_append);
criterion_main!(benches);
