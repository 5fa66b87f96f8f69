//! `veritrail monitor`: a full audit of a log with [`veritrail_client::Monitor`], once or
//! following the log until Ctrl-C or SIGTERM.
//!
//! Each catch-up downloads every new entry bundle, rebuilds the tree from the entries and
//! checks it against the log's hash tiles and signed checkpoints; the rebuilt tile rows are
//! kept in a cache (`<state>.tiles` by default) and committed every `--commit-every`
//! entries, so a restarted monitor resumes where it stopped. At the end of each catch-up one
//! line is printed on standard output:
//!
//! ```text
//! verified tree_size=<n> previous_size=<m> resumed_from=<k> entries_verified=<e> bundles_fetched=<b> tiles_fetched=<t> elapsed_s=<s> entries_per_s=<r>
//! ```
//!
//! Progress goes to standard error: a progress bar on a terminal, otherwise a line
//! `progress entries=<n> target=<size>` every few seconds.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use veritrail_client::{
    ClientError, DirSource, Monitor, MonitorOptions, MonitorReport, TileSource,
};

use crate::cli::common::args::{KeyArgs, ServerArgs, StateArgs};
use crate::cli::common::duration::parse_duration;
use crate::cli::common::error::{CliError, with_causes};
use crate::cli::common::evidence::client_error;
use crate::cli::common::io::{sibling, stdout};
use crate::cli::common::runtime::{runtime, shutdown_signal};

/// How often a progress line is written when standard error is not a terminal.
const PROGRESS_LINE_EVERY: Duration = Duration::from_secs(2);

/// Arguments of `veritrail monitor`.
#[derive(Debug, clap::Args)]
pub(crate) struct MonitorArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Audit a copy of a log on disk instead of --url: a directory holding `checkpoint` and
    /// `tile/...` in the C2SP tlog-tiles layout.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    #[command(flatten)]
    key: KeyArgs,
    /// Trusted state file (required): the latest checkpoint verified, created on first use.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Tile cache directory: the tree rebuilt so far. Default: `<state>.tiles`.
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Where to write split-view evidence. Default: `<state>.evidence.json`.
    #[arg(long, value_name = "FILE")]
    evidence: Option<PathBuf>,
    /// Catch up with the latest checkpoint once and exit.
    #[arg(long)]
    once: bool,
    /// Time between two catch-ups when following the log (e.g. 10s, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    interval: Duration,
    /// Entries between two commits of the tile cache: the most a restart downloads again.
    #[arg(long, default_value_t = 65_536, value_parser = clap::value_parser!(u64).range(1..))]
    commit_every: u64,
    /// Read entry bundles the log archived and purged (it answers 410) from the archives at
    /// this location (a directory or a bucket URL, as `veritrail archive --to` wrote them),
    /// checked like the log's own against its hash tiles and signed checkpoints.
    #[arg(long, value_name = "DIR|URL")]
    archive: Option<String>,
    /// Entry bundles downloaded concurrently.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    parallel: u16,
}

/// Audits the log once (`--once`) or until a shutdown signal.
///
/// # Errors
/// [`CliError::Usage`] without `--log-key` or `--state`, or for a `--dir` without a
/// checkpoint; [`CliError::Misbehaviour`] (exit code 1, split-view evidence written first)
/// when the log fails the audit; [`CliError::Client`] when it cannot be checked (with
/// `--once`; when following, transient errors are retried).
pub(crate) fn run(args: &MonitorArgs) -> Result<(), CliError> {
    let pinned = args.key.required("monitor")?;
    let Some(state) = args.state.clone() else {
        return Err(CliError::Usage {
            message: "monitor needs a trusted state file".into(),
            hint: "pass --state FILE (created on first use); the monitor keeps the latest verified checkpoint there, and its tile cache beside it".into(),
        });
    };
    let verifier = StateArgs {
        state: Some(state.clone()),
        evidence: None,
    }
    .load(&pinned)?;
    let mut options = MonitorOptions::new(
        args.cache
            .clone()
            .unwrap_or_else(|| sibling(&state, "tiles")),
    );
    options.commit_every = args.commit_every;
    options.parallel = usize::from(args.parallel);
    let evidence = args
        .evidence
        .clone()
        .unwrap_or_else(|| sibling(&state, "evidence.json"));
    let runtime = runtime()?;
    match &args.dir {
        Some(dir) => {
            if !dir.join("checkpoint").is_file() {
                return Err(CliError::Usage {
                    message: format!("{} holds no checkpoint file", dir.display()),
                    hint: "--dir must be a copy of a log in the C2SP layout: <dir>/checkpoint and <dir>/tile/...".into(),
                });
            }
            let monitor = Monitor::new(DirSource::new(dir), verifier, Some(state), options)
                .map_err(|e| client_error(e, None))?;
            runtime.block_on(follow(monitor, args, &evidence))
        }
        None => {
            let client = args.server.client()?;
            match &args.archive {
                None => {
                    let monitor = Monitor::new(client, verifier, Some(state), options)
                        .map_err(|e| client_error(e, None))?;
                    runtime.block_on(follow(monitor, args, &evidence))
                }
                Some(location) => {
                    let archives = veritrail_objects::Objects::open(location).map_err(|e| {
                        CliError::Usage {
                            message: format!("--archive: {e}"),
                            hint: "give a directory or an s3:// URL (with AWS_* set)".into(),
                        }
                    })?;
                    let source = veritrail_client::ArchiveFallback::new(client, archives);
                    let monitor = Monitor::new(source, verifier, Some(state), options)
                        .map_err(|e| client_error(e, None))?;
                    runtime.block_on(follow(monitor, args, &evidence))
                }
            }
        }
    }
}

/// Catches up once or, without `--once`, every `--interval` until a shutdown signal.
async fn follow<S: TileSource>(
    mut monitor: Monitor<S>,
    args: &MonitorArgs,
    evidence: &Path,
) -> Result<(), CliError> {
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut first = true;
    let cache_dir = monitor.cache_dir().to_owned();
    loop {
        let mut progress = Progress::new();
        let bar = progress.bar.clone();
        let mut report_progress = |size, target| progress.update(size, target);
        let result = tokio::select! {
            result = monitor.run_once(&mut report_progress) => result,
            () = &mut shutdown => {
                bar.finish_and_clear();
                eprintln!(
                    "stopped; the next run resumes from the tile cache in {}",
                    cache_dir.display()
                );
                return Ok(());
            }
        };
        bar.finish_and_clear();
        match result {
            Ok(report) => {
                if first || report.checkpoint.tree.size != report.previous_size {
                    stdout(summary(&report).as_bytes())?;
                }
            }
            Err(err) if !args.once && transient(&err) => {
                eprintln!(
                    "warning: {}; retrying in {}s",
                    with_causes(&err),
                    args.interval.as_secs_f64()
                );
            }
            Err(err) => return Err(client_error(err, Some(evidence))),
        }
        if args.once {
            return Ok(());
        }
        first = false;
        tokio::select! {
            () = tokio::time::sleep(args.interval) => {}
            () = &mut shutdown => {
                eprintln!("stopped");
                return Ok(());
            }
        }
    }
}

/// Errors after which following the log goes on: the log could not be reached, or was busy.
fn transient(err: &ClientError) -> bool {
    match err {
        ClientError::Transport { .. } => true,
        ClientError::Api { status, .. } => matches!(status, 408 | 429 | 500..=599),
        _ => false,
    }
}

/// The machine-readable line printed after a catch-up.
fn summary(report: &MonitorReport) -> String {
    let seconds = report.elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        report.entries_verified as f64 / seconds
    } else {
        0.0
    };
    format!(
        "verified tree_size={} previous_size={} resumed_from={} entries_verified={} bundles_fetched={} tiles_fetched={} elapsed_s={seconds:.3} entries_per_s={rate:.0}\n",
        report.checkpoint.tree.size,
        report.previous_size,
        report.resumed_from,
        report.entries_verified,
        report.bundles_fetched,
        report.tiles_fetched,
    )
}

/// Progress of one catch-up on standard error: a bar on a terminal (indicatif hides it
/// otherwise), else a line every [`PROGRESS_LINE_EVERY`].
struct Progress {
    bar: ProgressBar,
    started: bool,
    last_line: Instant,
}

impl Progress {
    fn new() -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(5));
        if let Ok(style) = ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {human_pos}/{human_len} entries  {per_sec:0}  eta {eta}",
        ) {
            bar.set_style(style);
        }
        Progress {
            bar,
            started: false,
            last_line: Instant::now(),
        }
    }

    fn update(&mut self, size: u64, target: u64) {
        self.bar.set_length(target);
        self.bar.set_position(size);
        if !self.started {
            // The first position is where the cache resumed: not downloaded in this run.
            self.started = true;
            self.bar.reset_eta();
        }
        if self.bar.is_hidden() && self.last_line.elapsed() >= PROGRESS_LINE_EVERY {
            self.last_line = Instant::now();
            eprintln!("progress entries={size} target={target}");
        }
    }
}
