//! `veritrail bench append`: a load generator for durable appends.
//!
//! `--concurrency` tokio tasks share one request counter and each sends its next request as
//! soon as the previous one is answered (a closed loop), until `--entries` entries have been
//! sent or `--duration` has passed. Two transports:
//!
//! - **HTTP** (default): `POST /v1/entries` on `--url` over HTTP/1.1 keep-alive, one
//!   connection per task, all tasks on one thread. A request counts as
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

mod archive;
mod fsync;
mod http;
mod in_process;
mod plan;
mod query;
mod report;
mod witness;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use veritrail_server::auth::Auth;
use veritrail_server::config::{BatchConfig, PublishConfig};
use veritrail_server::{Server, ServerConfig};

use crate::cli::bench::http::{Http, HttpOptions};
use crate::cli::bench::in_process::InProcess;
use crate::cli::bench::plan::{Bodies, Entries, Load, Plan, Tally};
use crate::cli::bench::report::{Report, progress_bar};
use crate::cli::common::datadir::DataArgs;
use crate::cli::common::duration::parse_duration;
use crate::cli::common::error::CliError;
use crate::cli::common::runtime::runtime;

/// Most entries in one batch request: the server's default `max_batch_entries`.
const MAX_BATCH: u16 = 4096;
/// How often the progress bar is redrawn.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(200);

/// `veritrail bench ...`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum BenchCommand {
    /// Load-test durable appends: N concurrent clients, each appending as fast as its last
    /// append is answered. Prints throughput and latency percentiles, then one
    /// machine-readable line: `appends_per_s=<n> p50_ms=<x> p95_ms=<y> p99_ms=<z>`.
    Append(Box<AppendArgs>),
    /// Measure the disk's raw durable-write rate: append a small block and fdatasync, in a
    /// loop. The baseline for group commit; last line `fsyncs_per_s=<n>`.
    Fsync(fsync::FsyncArgs),
    /// Measure the latency of reading one conversation (or one query page) from a running
    /// server; last line `queries_per_s=<n> p50_ms=<x> p99_ms=<y>`.
    Query(query::QueryArgs),
    /// Measure durable `add-checkpoint` requests per second on a running witness: fresh logs
    /// trusted through its --data directory, each growing by one leaf per request; last line
    /// `checkpoints_per_s=<n> p50_ms=<x> p99_ms=<y>`.
    Witness(witness::WitnessArgs),
    /// Archive throughput: a log of expired entries archived (written, read back, verified,
    /// purged) to a directory or a bucket, against plain object writes of the same bundles
    /// in the same run; last line `archive_mb_per_s=<x> baseline_put_mb_per_s=<y> ratio=<r>`.
    Archive(archive::ArchiveArgs),
    /// Mirror lag under load: concurrent appenders at a running `serve --mirror`, and the time
    /// from each acknowledged append to the mirror's (and, as the baseline, the server's)
    /// checkpoint covering it; last line `appends_per_s=<n> mirror_p50_ms=<x> ...`.
    Mirror(archive::MirrorArgs),
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
    /// Append agent records (`POST /v1/records`) instead of raw entries: each a
    /// `tool_result` with a payload of --size bytes (kept off the tree, encrypted and
    /// committed to), one conversation per client; --batch records per request (at most
    /// 1000).
    #[arg(long, conflicts_with = "in_process")]
    records: bool,
    /// Send OpenTelemetry GenAI spans (`POST /v1/traces`, OTLP/HTTP protobuf) instead of raw
    /// entries: each a `chat` span with an output of --size bytes, which the server keeps as
    /// one `agent_response_generated` record with a committed payload; one conversation per
    /// client; --batch spans per request. Counted as appended only when the answer reports
    /// no rejected span.
    #[arg(long, conflicts_with_all = ["in_process", "records"])]
    otlp: bool,
    /// With --in-process: the data directory to open.
    #[command(flatten)]
    data: DataArgs,
    /// With --in-process: longest an append waits for others to share its commit, as
    /// `veritrail serve --batch-max-delay`.
    #[arg(long, default_value = "0ms", value_parser = parse_duration, requires = "in_process")]
    batch_max_delay: Duration,
    /// With --in-process: least time between two checkpoints, as
    /// `veritrail serve --checkpoint-interval`.
    #[arg(long, default_value = "20ms", value_parser = parse_duration, requires = "in_process")]
    checkpoint_interval: Duration,
}

/// Runs a `bench` subcommand.
///
/// # Errors
/// [`CliError::Usage`] for a bad `--url`, [`CliError::Unreachable`] or
/// [`CliError::Unhealthy`] when no server answers there, the errors of opening the data
/// directory with `--in-process`, [`CliError::BenchFailed`] when requests failed for good.
pub(crate) fn run(command: BenchCommand) -> Result<(), CliError> {
    match command {
        BenchCommand::Append(args) => append(&args),
        BenchCommand::Fsync(args) => fsync::run(&args),
        BenchCommand::Query(args) => query::run(&args),
        BenchCommand::Witness(args) => witness::run(&args),
        BenchCommand::Archive(args) => archive::archive(&args),
        BenchCommand::Mirror(args) => archive::mirror(&args),
    }
}

/// Where the load goes.
enum Target {
    /// A running server, over HTTP.
    Http(Box<Http>),
    /// The server's sequencer in this process.
    InProcess(InProcess),
}

/// One client task: claims requests from `plan` until none is left, sends them to
/// `target` one at a time, and returns what it measured.
async fn worker(target: Arc<Target>, plan: Arc<Plan>, task: u32) -> Result<Tally, CliError> {
    let mut tally = Tally::new()?;
    let mut entries = Entries::new(plan.size, task);
    let mut bodies = Bodies::new(plan.load, plan.size, task, plan.run);
    let mut conn = None;
    while let Some((first, count)) = plan.claim() {
        let before = tally.appended;
        match &*target {
            Target::Http(http) => {
                let body = bodies.body(&mut entries, first, count);
                http.request(&mut conn, body, count, &plan, &mut tally)
                    .await;
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

/// `veritrail bench append`: runs the load, prints the report (its last line is the
/// machine-readable one) and fails if any request failed for good.
fn append(args: &AppendArgs) -> Result<(), CliError> {
    // Over HTTP the generator runs on one thread: its tasks only write requests and read
    // answers, and one thread does that with no cross-thread wake-ups, leaving the other
    // core to the server it shares the machine with (docs/performance.md, "The load
    // generator"). In process, the server's own tasks run here: they get every core.
    let runtime = if args.in_process {
        runtime()?
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| CliError::Runtime { source })?
    };
    let report = runtime.block_on(run_append(args))?;
    report.print();
    if report.total.failed_requests > 0 {
        return Err(CliError::BenchFailed {
            requests: report.total.failed_requests,
            entries: report.total.failed_entries,
            unauthorized: report.total.errors.keys().any(|k| k.starts_with("401")),
        });
    }
    Ok(())
}

/// Sets up the target, runs every task to completion and gathers their tallies.
async fn run_append(args: &AppendArgs) -> Result<Report, CliError> {
    let load = if args.records {
        Load::Records
    } else if args.otlp {
        Load::Spans
    } else {
        Load::Entries
    };
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
            .map_err(|source| CliError::ServerStart { source })?;
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
        if args.records && usize::from(args.batch) > veritrail_records::MAX_RECORDS_PER_REQUEST {
            return Err(CliError::Usage {
                message: format!(
                    "--batch {} is above the {} records one request may hold",
                    args.batch,
                    veritrail_records::MAX_RECORDS_PER_REQUEST
                ),
                hint: "use --batch 1000 or fewer with --records".into(),
            });
        }
        let http = Http::new(HttpOptions {
            url: &args.url,
            wait_published: args.wait.is_some(),
            token: args.token.clone(),
            batch: args.batch,
            load,
        })?;
        http.preflight().await?;
        let mode = format!(
            "HTTP/1.1 keep-alive, {} ({} connections, one thread)",
            http.endpoint, args.concurrency
        );
        (Target::Http(Box::new(http)), None, mode)
    };
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mode = if load == Load::Entries {
        mode
    } else {
        format!("{mode}; records of conversations bench-{run:x}-<client>")
    };
    let mode = format!(
        "{mode}; {} clients, {} B {}, {} per request, wait {}",
        args.concurrency,
        args.size,
        load.unit(),
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
        load,
        run,
        // Flag durations are at most a year: the deadline cannot overflow; if it did, no
        // deadline is the honest reading.
        deadline: args.duration.and_then(|d| started.checked_add(d)),
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
            Err(e) => {
                failure = Some(CliError::LoadGenerator {
                    what: "a client task failed",
                    source: Box::new(e),
                })
            }
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
