//! `veritrail bench append`: a load generator for durable appends.
//!
//! `--concurrency` tokio tasks share one request counter and each sends its next request as
//! soon as the previous one is answered (a closed loop), until `--entries` entries have been
//! sent or `--duration` has passed. Two transports:
//!
//! - **HTTP** (default): `POST /v1/entries` on `--url` over HTTP/1.1 keep-alive, with a
//!   connection pool of `--concurrency` connections (one per task). A request counts as
//!   appended only on a 2xx answer; every other status is counted by status. `503` is retried
//!   after its `Retry-After` (and still counted).
//! - **In-process** (`--in-process`): opens the data directory like `veritrail serve`, starts
//!   the same [`Server`] (committer thread and publisher) and submits straight to its
//!   sequencer from the same number of tasks, so the cost of HTTP can be measured by
//!   difference. With `--wait published` a task waits on the published-checkpoint watch until
//!   a checkpoint covers its entries (no proof or receipt is built, unlike over HTTP).
//!
//! The latency of a request runs from its first send to its final answer (retries included)
//! and is recorded in an HDR histogram (µs resolution, 3 significant digits). The last line on
//! standard output is machine-readable:
//!
//! ```text
//! appends_per_s=<entries per second> p50_ms=<x> p95_ms=<y> p99_ms=<z>
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use veritrail_ledger::bundle::append_entry;
use veritrail_server::auth::Auth;
use veritrail_server::config::{BatchConfig, PublishConfig};
use veritrail_server::publisher::wait_for;
use veritrail_server::routes::BATCH_CONTENT_TYPE;
use veritrail_server::{AppState, Server, ServerConfig};

use crate::CliError;
use crate::datadir::DataArgs;
use crate::serve::parse_duration;

/// Longest one HTTP request may take before it counts as failed. Above the server's default
/// request timeout (30 s) so that the server's own timeout answer is what gets counted.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest the pre-flight `GET /healthz` may take.
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(5);
/// Most retries of one request answered `503`; then it counts as failed.
const MAX_RETRIES: u32 = 20;
/// Longest wait honoured from a `Retry-After` header, in seconds.
const MAX_RETRY_AFTER_S: u64 = 10;
/// Most entries in one batch request: the server's default `max_batch_entries`.
const MAX_BATCH: u16 = 4096;
/// Highest latency the histogram tracks exactly (1 hour in µs); longer ones saturate.
const MAX_LATENCY_US: u64 = 3_600_000_000;
/// How often the progress bar is redrawn.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(200);

/// `veritrail bench ...`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum BenchCommand {
    /// Load-test durable appends: N concurrent clients, each appending as fast as its last
    /// append is answered. Prints throughput and latency percentiles, then one
    /// machine-readable line: `appends_per_s=<n> p50_ms=<x> p95_ms=<y> p99_ms=<z>`.
    Append(Box<AppendArgs>),
}

/// What an append waits for before it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Wait {
    /// Until a signed checkpoint covers the entries (`?wait=published`).
    Published,
}

/// Arguments of `veritrail bench append`.
#[derive(Debug, clap::Args)]
pub(crate) struct AppendArgs {
    /// Base URL of a running `veritrail serve` (http only).
    #[arg(
        long,
        default_value = "http://127.0.0.1:7800",
        conflicts_with = "in_process"
    )]
    url: String,
    /// Concurrent clients (tasks; over HTTP, one keep-alive connection each).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    concurrency: u32,
    /// Entries to append in total.
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..))]
    entries: u64,
    /// Bytes per entry (1 to 65535).
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u16).range(1..))]
    size: u16,
    /// Wait until a signed checkpoint covers each append (`?wait=published`).
    #[arg(long, value_enum)]
    wait: Option<Wait>,
    /// Bearer token with the append role.
    #[arg(long, env = "VERITRAIL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Entries per request (1 to 4096); above 1, requests are entry batches.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_BATCH)))]
    batch: u16,
    /// Stop sending new requests after this long (e.g. 30s), even if entries remain.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Skip HTTP: open the data directory (--data) and drive the server's sequencer directly.
    #[arg(long)]
    in_process: bool,
    /// With --in-process: the data directory to open.
    #[command(flatten)]
    data: DataArgs,
    /// With --in-process: longest an append waits for others to share its commit, as
    /// `veritrail serve --batch-max-delay`.
    #[arg(long, default_value = "0ms", value_parser = parse_duration, requires = "in_process")]
    batch_max_delay: Duration,
    /// With --in-process: least time between two checkpoints, as
    /// `veritrail serve --checkpoint-interval`.
    #[arg(long, default_value = "100ms", value_parser = parse_duration, requires = "in_process")]
    checkpoint_interval: Duration,
}

/// Runs a `bench` subcommand.
pub(crate) fn run(command: BenchCommand) -> Result<(), CliError> {
    match command {
        BenchCommand::Append(args) => append(&args),
    }
}

fn internal(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::Usage {
        message: format!("{what}: {e}"),
        hint: "report this".into(),
    }
}

/// Work shared by every task.
struct Plan {
    /// Entries claimed so far (the next request takes the entries from here on).
    claimed: AtomicU64,
    /// Entries appended so far, for the progress bar.
    appended: AtomicU64,
    entries: u64,
    batch: u64,
    size: usize,
    deadline: Option<Instant>,
}

impl Plan {
    /// Claims the next request: its first entry number and its entry count.
    fn claim(&self) -> Option<(u64, u64)> {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        let first = self.claimed.fetch_add(self.batch, Ordering::Relaxed);
        (first < self.entries).then(|| (first, self.batch.min(self.entries - first)))
    }
}

/// One task's results, merged at the end.
struct Tally {
    /// Latency of each successful request, µs.
    latency: Histogram<u64>,
    appended: u64,
    requests: u64,
    /// Answers other than success, by status (retried 503s included), and transport errors.
    errors: BTreeMap<String, u64>,
    /// Requests that failed for good.
    failed_requests: u64,
    failed_entries: u64,
    retries: u64,
}

impl Tally {
    fn new() -> Result<Self, CliError> {
        Ok(Tally {
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .map_err(|e| internal("cannot create a histogram", e))?,
            appended: 0,
            requests: 0,
            errors: BTreeMap::new(),
            failed_requests: 0,
            failed_entries: 0,
            retries: 0,
        })
    }

    fn success(&mut self, started: Instant, entries: u64) {
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.latency.saturating_record(micros.max(1));
        self.appended += entries;
        self.requests += 1;
    }

    fn error(&mut self, key: String) {
        *self.errors.entry(key).or_insert(0) += 1;
    }

    fn failure(&mut self, key: String, entries: u64) {
        self.error(key);
        self.failed_requests += 1;
        self.failed_entries += entries;
    }

    fn merge(&mut self, other: Tally) -> Result<(), CliError> {
        self.latency
            .add(&other.latency)
            .map_err(|e| internal("cannot merge histograms", format!("{e:?}")))?;
        self.appended += other.appended;
        self.requests += other.requests;
        for (key, count) in other.errors {
            *self.errors.entry(key).or_insert(0) += count;
        }
        self.failed_requests += other.failed_requests;
        self.failed_entries += other.failed_entries;
        self.retries += other.retries;
        Ok(())
    }
}

/// Generates distinct, incompressible entries: a per-task pseudo-random body whose first
/// bytes are the entry number.
struct Entries {
    template: Vec<u8>,
}

impl Entries {
    fn new(size: usize, task: u32) -> Self {
        // xorshift64*, seeded per task: cheap, and no two tasks share a body.
        let mut state =
            0x9E37_79B9_7F4A_7C15_u64 ^ (u64::from(task) + 1).wrapping_mul(0xA24B_AED4_963E_E407);
        let template = (0..size)
            .map(|_| {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_be_bytes()[0]
            })
            .collect();
        Entries { template }
    }

    /// Entry number `n`.
    fn entry(&mut self, n: u64) -> &[u8] {
        for (byte, digit) in self.template.iter_mut().zip(n.to_be_bytes()) {
            *byte = digit;
        }
        &self.template
    }

    /// One request's body: a raw entry, or a batch of `count` entries.
    fn body(&mut self, first: u64, count: u64) -> Bytes {
        if count == 1 {
            return Bytes::copy_from_slice(self.entry(first));
        }
        let mut body = Vec::with_capacity((self.template.len() + 2) * count as usize);
        for n in first..first + count {
            // The size is capped at 65535 by the argument parser: this cannot fail.
            let _ = append_entry(&mut body, self.entry(n));
        }
        Bytes::from(body)
    }

    /// One request's entries, for the in-process sequencer.
    fn list(&mut self, first: u64, count: u64) -> Vec<Bytes> {
        (first..first + count)
            .map(|n| Bytes::copy_from_slice(self.entry(n)))
            .collect()
    }
}

/// How a `Retry-After` header (in seconds) is honoured.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Duration {
    let seconds = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(1);
    Duration::from_secs(seconds.min(MAX_RETRY_AFTER_S))
}

/// The HTTP target.
struct Http {
    client: reqwest::Client,
    /// `<url>/v1/entries[?wait=published]`
    endpoint: reqwest::Url,
    token: Option<String>,
    content_type: &'static str,
}

impl Http {
    fn new(args: &AppendArgs) -> Result<Self, CliError> {
        let base = reqwest::Url::parse(&args.url).map_err(|e| CliError::Usage {
            message: format!("--url {:?} is not a URL: {e}", args.url),
            hint: "pass the address `veritrail serve` prints, e.g. --url http://127.0.0.1:7800"
                .into(),
        })?;
        if base.scheme() != "http" {
            return Err(CliError::Usage {
                message: format!("--url {} is not http://", args.url),
                hint: "the load generator speaks plain HTTP/1.1; run it next to the server, \
                       or behind the TLS terminator"
                    .into(),
            });
        }
        let mut endpoint = base.clone();
        let path = format!("{}/v1/entries", base.path().trim_end_matches('/'));
        endpoint.set_path(&path);
        endpoint.set_query(args.wait.map(|Wait::Published| "wait=published"));
        let pool = usize::try_from(args.concurrency).unwrap_or(usize::MAX);
        let client = reqwest::Client::builder()
            .http1_only()
            .pool_max_idle_per_host(pool)
            .tcp_nodelay(true)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| internal("cannot build the HTTP client", e))?;
        Ok(Http {
            client,
            endpoint,
            token: args.token.clone(),
            content_type: if args.batch > 1 {
                BATCH_CONTENT_TYPE
            } else {
                "application/octet-stream"
            },
        })
    }

    /// Checks that a server answers before any load is sent.
    async fn preflight(&self) -> Result<(), CliError> {
        let mut health = self.endpoint.clone();
        health.set_path(&self.endpoint.path().replace("/v1/entries", "/healthz"));
        health.set_query(None);
        let answer = self
            .client
            .get(health.clone())
            .timeout(PREFLIGHT_TIMEOUT)
            .send()
            .await;
        match answer {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(CliError::Usage {
                message: format!("{health} answered {}", response.status()),
                hint: "is --url the address of a `veritrail serve`?".into(),
            }),
            Err(e) => Err(CliError::Usage {
                message: format!("cannot reach {health}: {e}"),
                hint: "start the server (`veritrail serve`) or pass its address with --url".into(),
            }),
        }
    }

    /// Sends one request, retrying 503s, and records the outcome.
    async fn request(&self, body: Bytes, entries: u64, plan: &Plan, tally: &mut Tally) {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            let mut request = self
                .client
                .post(self.endpoint.clone())
                .header(reqwest::header::CONTENT_TYPE, self.content_type)
                .body(body.clone());
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) => return tally.failure(transport_error(&e), entries),
            };
            let status = response.status();
            let headers = response.headers().clone();
            // Read the whole answer so that the connection goes back to the pool.
            if let Err(e) = response.bytes().await {
                return tally.failure(transport_error(&e), entries);
            }
            if status.is_success() {
                return tally.success(started, entries);
            }
            let key = status.to_string();
            let deadline_passed = plan.deadline.is_some_and(|d| Instant::now() >= d);
            if status != reqwest::StatusCode::SERVICE_UNAVAILABLE
                || attempt >= MAX_RETRIES
                || deadline_passed
            {
                return tally.failure(key, entries);
            }
            tally.error(key);
            tally.retries += 1;
            attempt += 1;
            tokio::time::sleep(retry_after(&headers)).await;
        }
    }
}

fn transport_error(e: &reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "connect"
    } else if e.is_timeout() {
        "timeout"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    };
    format!("transport error ({kind})")
}

/// The in-process target: the server's state, without its router.
struct InProcess {
    state: AppState,
    wait_published: bool,
}

impl InProcess {
    async fn request(&self, entries: Vec<Bytes>, plan: &Plan, tally: &mut Tally) {
        let count = entries.len() as u64;
        let started = Instant::now();
        let mut attempt = 0;
        let committed = loop {
            let result = match self.state.sequencer.submit(entries.clone()) {
                Ok(receiver) => match receiver.await {
                    Ok(result) => result,
                    Err(_) => return tally.failure("committer stopped".into(), count),
                },
                Err(e) => Err(e),
            };
            match result {
                Ok(committed) => break committed,
                Err(e) => {
                    let key = format!("{} ({})", e.status(), e.code());
                    let deadline_passed = plan.deadline.is_some_and(|d| Instant::now() >= d);
                    let veritrail_server::ApiError::Overloaded { retry_after } = e else {
                        return tally.failure(key, count);
                    };
                    if attempt >= MAX_RETRIES || deadline_passed {
                        return tally.failure(key, count);
                    }
                    tally.error(key);
                    tally.retries += 1;
                    attempt += 1;
                    let wait = retry_after.min(MAX_RETRY_AFTER_S);
                    tokio::time::sleep(Duration::from_secs(wait)).await;
                }
            }
        };
        if self.wait_published {
            let mut published = self.state.published.clone();
            let timeout = self.state.config.limits.request_timeout;
            if wait_for(&mut published, committed.indices.end, timeout)
                .await
                .is_none()
            {
                return tally.failure("408 Request Timeout (not published)".into(), count);
            }
        }
        tally.success(started, count);
    }
}

enum Target {
    Http(Http),
    InProcess(InProcess),
}

async fn worker(target: Arc<Target>, plan: Arc<Plan>, task: u32) -> Result<Tally, CliError> {
    let mut tally = Tally::new()?;
    let mut entries = Entries::new(plan.size, task);
    while let Some((first, count)) = plan.claim() {
        let before = tally.appended;
        match &*target {
            Target::Http(http) => {
                let body = entries.body(first, count);
                http.request(body, count, &plan, &mut tally).await;
            }
            Target::InProcess(local) => {
                let list = entries.list(first, count);
                local.request(list, &plan, &mut tally).await;
            }
        }
        plan.appended
            .fetch_add(tally.appended - before, Ordering::Relaxed);
    }
    Ok(tally)
}

fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(5));
    if let Ok(style) = ProgressStyle::with_template(
        "{elapsed_precise} [{wide_bar}] {human_pos}/{human_len} entries  {per_sec}  eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// The result of a run, for printing.
struct Report {
    mode: String,
    elapsed: Duration,
    total: Tally,
    planned: u64,
}

fn millis(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

impl Report {
    fn appends_per_s(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.total.appended as f64 / seconds
        } else {
            0.0
        }
    }

    fn print(&self) {
        let latency = &self.total.latency;
        let q = |quantile: f64| millis(latency.value_at_quantile(quantile));
        let mut out = String::new();
        let seconds = self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
        let _ = writeln!(out, "mode: {}", self.mode);
        let _ = writeln!(out, "elapsed: {:.3} s", self.elapsed.as_secs_f64());
        let _ = writeln!(
            out,
            "appended: {} of {} entries in {} requests: {:.0} entries/s, {:.0} requests/s",
            self.total.appended,
            self.planned,
            self.total.requests,
            self.appends_per_s(),
            self.total.requests as f64 / seconds,
        );
        if latency.is_empty() {
            let _ = writeln!(out, "latency: no successful request");
        } else {
            let _ = writeln!(
                out,
                "latency per request (ms): min {:.3}  mean {:.3}  p50 {:.3}  p95 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
                millis(latency.min()),
                latency.mean() / 1000.0,
                q(0.50),
                q(0.95),
                q(0.99),
                q(0.999),
                millis(latency.max()),
            );
        }
        if self.total.errors.is_empty() {
            let _ = writeln!(out, "errors: none");
        } else {
            let _ = writeln!(
                out,
                "errors: {} answers not 2xx or failed ({} retries; {} requests, {} entries failed for good)",
                self.total.errors.values().sum::<u64>(),
                self.total.retries,
                self.total.failed_requests,
                self.total.failed_entries,
            );
            for (key, count) in &self.total.errors {
                let _ = writeln!(out, "  {count:>9}  {key}");
            }
        }
        let unsent = self
            .planned
            .saturating_sub(self.total.appended + self.total.failed_entries);
        if unsent > 0 {
            let _ = writeln!(out, "not sent: {unsent} entries (--duration reached)");
        }
        // The machine-readable line: always last.
        let _ = write!(
            out,
            "appends_per_s={:.0} p50_ms={:.3} p95_ms={:.3} p99_ms={:.3}",
            self.appends_per_s(),
            q(0.50),
            q(0.95),
            q(0.99),
        );
        println!("{out}");
    }
}

fn append(args: &AppendArgs) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| internal("cannot start the runtime", e))?;
    let report = runtime.block_on(run_append(args))?;
    report.print();
    if report.total.failed_requests > 0 {
        let hint = if report.total.errors.keys().any(|k| k.starts_with("401")) {
            "pass a token with the append role: --token or VERITRAIL_TOKEN"
        } else {
            "see the errors above and the server log"
        };
        return Err(CliError::Usage {
            message: format!(
                "{} requests ({} entries) failed",
                report.total.failed_requests, report.total.failed_entries
            ),
            hint: hint.into(),
        });
    }
    Ok(())
}

async fn run_append(args: &AppendArgs) -> Result<Report, CliError> {
    let (target, server, mode) = if args.in_process {
        let ledger = Arc::new(args.data.open()?);
        let config = ServerConfig {
            batch: BatchConfig {
                max_delay: args.batch_max_delay,
                ..BatchConfig::default()
            },
            publish: PublishConfig {
                interval: args.checkpoint_interval,
                ..PublishConfig::default()
            },
            ..ServerConfig::default()
        };
        let server = Server::start(ledger, config, Auth::disabled())
            .map_err(|e| internal("cannot start the sequencer", e))?;
        let target = Target::InProcess(InProcess {
            state: server.state().clone(),
            wait_published: args.wait.is_some(),
        });
        let mode = format!(
            "in-process ({}, batch-max-delay {:?}, checkpoint-interval {:?})",
            args.data.data.display(),
            args.batch_max_delay,
            args.checkpoint_interval
        );
        (target, Some(server), mode)
    } else {
        let http = Http::new(args)?;
        http.preflight().await?;
        let mode = format!(
            "HTTP/1.1 keep-alive, {} (pool of {} connections)",
            http.endpoint, args.concurrency
        );
        (Target::Http(http), None, mode)
    };
    let mode = format!(
        "{mode}; {} clients, {} B entries, {} per request, wait {}",
        args.concurrency,
        args.size,
        args.batch,
        if args.wait.is_some() {
            "published"
        } else {
            "durable"
        }
    );
    eprintln!("{mode}");
    let target = Arc::new(target);
    let started = Instant::now();
    let plan = Arc::new(Plan {
        claimed: AtomicU64::new(0),
        appended: AtomicU64::new(0),
        entries: args.entries,
        batch: u64::from(args.batch),
        size: usize::from(args.size),
        deadline: args.duration.map(|d| started + d),
    });
    let bar = progress_bar(args.entries);
    let progress = {
        let (plan, bar) = (plan.clone(), bar.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PROGRESS_INTERVAL);
            loop {
                tick.tick().await;
                bar.set_position(plan.appended.load(Ordering::Relaxed));
            }
        })
    };
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|task| tokio::spawn(worker(target.clone(), plan.clone(), task)))
        .collect();
    let mut total = Tally::new()?;
    let mut failure = None;
    for task in tasks {
        match task.await {
            Ok(Ok(tally)) => total.merge(tally)?,
            Ok(Err(e)) => failure = Some(e),
            Err(e) => failure = Some(internal("a client task failed", e)),
        }
    }
    let elapsed = started.elapsed();
    progress.abort();
    bar.set_position(plan.appended.load(Ordering::Relaxed));
    bar.finish_and_clear();
    if let Some(server) = server {
        // Drains the queue (already empty) and publishes a final checkpoint.
        server.shutdown().await;
    }
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(Report {
        mode,
        elapsed,
        total,
        planned: args.entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_distinct_and_batches_are_bundles() {
        let mut entries = Entries::new(16, 0);
        let a = entries.entry(1).to_vec();
        let b = entries.entry(2).to_vec();
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
        assert_ne!(Entries::new(16, 1).entry(1), &a[..], "tasks differ");
        let body = entries.body(7, 3);
        let decoded = veritrail_ledger::bundle::decode_bundle(&body, 3).expect("a bundle");
        assert_eq!(decoded.len(), 3);
        assert_eq!(entries.body(7, 1).len(), 16);
    }

    #[test]
    fn the_plan_hands_out_every_entry_once() {
        let plan = Plan {
            claimed: AtomicU64::new(0),
            appended: AtomicU64::new(0),
            entries: 10,
            batch: 4,
            size: 1,
            deadline: None,
        };
        assert_eq!(plan.claim(), Some((0, 4)));
        assert_eq!(plan.claim(), Some((4, 4)));
        assert_eq!(plan.claim(), Some((8, 2)));
        assert_eq!(plan.claim(), None);
        let late = Plan {
            deadline: Some(Instant::now()),
            ..plan
        };
        assert_eq!(late.claim(), None);
    }

    #[test]
    fn retry_after_is_capped() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&headers), Duration::from_secs(1));
        headers.insert(reqwest::header::RETRY_AFTER, "3".parse().expect("value"));
        assert_eq!(retry_after(&headers), Duration::from_secs(3));
        headers.insert(reqwest::header::RETRY_AFTER, "3600".parse().expect("value"));
        assert_eq!(
            retry_after(&headers),
            Duration::from_secs(MAX_RETRY_AFTER_S)
        );
    }
}
