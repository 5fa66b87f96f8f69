//! What a run measured, printed for people and, on the last line, for machines.

use std::fmt::Write as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::bench::plan::Tally;
use crate::cli::common::error::CliError;

/// A progress bar on standard error (hidden off a terminal) for `total` entries.
pub(super) fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(5));
    if let Ok(style) = ProgressStyle::with_template(
        "{elapsed_precise} [{wide_bar}] {human_pos}/{human_len} entries  {per_sec}  eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// The result of a run, for printing.
pub(super) struct Report {
    /// The target and load, as printed first.
    pub(super) mode: String,
    /// From the first request to the last answer.
    pub(super) elapsed: Duration,
    /// Every task's tally, merged.
    pub(super) total: Tally,
    /// Entries planned (`--entries`).
    pub(super) planned: u64,
}

/// Microseconds to milliseconds.
fn millis(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

impl Report {
    /// Entries appended per second of the run.
    pub(super) fn appends_per_s(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.total.appended as f64 / seconds
        } else {
            0.0
        }
    }

    /// Prints the report on standard output; the machine-readable line is always last.
    pub(super) fn print(&self) {
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

/// A client task's error, as the request benches (`query`, `witness`) return it.
pub(super) type TaskError = Box<dyn std::error::Error + Send + Sync>;

/// Waits for the request benches' client tasks and merges their latency histograms
/// (microseconds).
///
/// # Errors
/// [`CliError::LoadGenerator`] when a task panicked or a request failed.
pub(super) async fn merge_latencies(
    tasks: Vec<tokio::task::JoinHandle<Result<hdrhistogram::Histogram<u64>, TaskError>>>,
) -> Result<hdrhistogram::Histogram<u64>, CliError> {
    let failed =
        |what: &'static str| move |e: TaskError| CliError::LoadGenerator { what, source: e };
    let mut total =
        hdrhistogram::Histogram::<u64>::new(3).map_err(|e| failed("histogram")(Box::new(e)))?;
    for task in tasks {
        let histogram = task
            .await
            .map_err(|e| failed("a client task failed")(Box::new(e)))?
            .map_err(failed("a request failed"))?;
        total
            .add(histogram)
            .map_err(|e| failed("histogram")(Box::new(e)))?;
    }
    Ok(total)
}

/// Prints the machine-readable last line of a request bench: `<rate_name>=<n> p50_ms=<x>
/// p99_ms=<y>`.
pub(super) fn print_rate(rate_name: &str, histogram: &hdrhistogram::Histogram<u64>, elapsed: f64) {
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{rate_name}={:.0} p50_ms={:.3} p99_ms={:.3}",
        histogram.len() as f64 / elapsed.max(1e-9),
        ms(0.5),
        ms(0.99)
    );
}
