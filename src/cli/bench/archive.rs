//! `veritrail bench archive`: archive throughput (MB/s), and `veritrail bench mirror`: the lag
//! from an acknowledged append to a mirror's checkpoint covering it.
//!
//! **archive** builds a log of `--entries` raw entries of `--size` bytes in a temporary data
//! directory, dated long ago so that all of it has expired, and in the same run measures
//! (1) the baseline: the same entry bundles written as plain objects to the target, and
//! (2) the archival job: archive written (bundles, tiles, checkpoint, manifest), read back and
//! verified, purge record appended, bundles purged. The last line is machine-readable:
//! `archive_mb_per_s=<x> baseline_put_mb_per_s=<y> ratio=<x/y>` (MB of entry bundles).
//!
//! **mirror** drives `--clients` concurrent appenders (one 512-byte entry per request) at a
//! running `veritrail serve --mirror` for `--seconds`, and polls both the server's
//! `/checkpoint` and the mirror's `checkpoint` (a directory, or the bucket's HTTP URL) every
//! 2 ms. For every append it knows when it was acknowledged, and when each checkpoint first
//! covered it. Last line: `appends_per_s=<n> mirror_p50_ms=<x> mirror_p99_ms=<y>
//! published_p50_ms=<a> published_p99_ms=<b>` (the published lag is the baseline: the mirror
//! can only follow what the server publishes).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use veritrail_ledger::Ledger;
use veritrail_ledger::note::{KeyName, NoteSigner};
use veritrail_ledger::store::{self, Backend};
use veritrail_objects::{Meta, Objects};
use veritrail_records::hold::Holds;
use veritrail_records::retention::RetentionPolicy;
use veritrail_server::archive::{Archiver, MAX_ARCHIVE_BUNDLES, Recorder};

use crate::cli::common::error::CliError;
use crate::cli::common::runtime::runtime;

/// Arguments of `veritrail bench archive`.
#[derive(Debug, clap::Args)]
pub(crate) struct ArchiveArgs {
    /// Entries in the log (whole bundles of 256 are archived).
    #[arg(long, default_value_t = 262_144, value_parser = clap::value_parser!(u64).range(256..=100_000_000))]
    entries: u64,
    /// Bytes per entry.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=65_535))]
    size: u64,
    /// Where to write: a directory or `s3://bucket/prefix` (AWS_* configure it). Default: a
    /// temporary directory beside the data.
    #[arg(long, value_name = "DIR|URL")]
    to: Option<String>,
}

/// Arguments of `veritrail bench mirror`.
#[derive(Debug, clap::Args)]
pub(crate) struct MirrorArgs {
    /// Base URL of a running `veritrail serve --mirror ... --no-auth`.
    #[arg(long, default_value = "http://127.0.0.1:7800")]
    url: String,
    /// The mirror's checkpoint: a file path (a directory mirror's `checkpoint`) or an HTTP URL
    /// (a bucket's `.../checkpoint`).
    #[arg(long)]
    mirror_checkpoint: String,
    /// Concurrent appenders.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=4096))]
    clients: u32,
    /// How long to load the server.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3600))]
    seconds: u64,
}

fn failed(what: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> CliError {
    CliError::LoadGenerator {
        what,
        source: Box::new(e),
    }
}

fn message(what: &'static str, text: String) -> CliError {
    CliError::LoadGenerator {
        what,
        source: text.into(),
    }
}

/// Runs `veritrail bench archive`.
///
/// # Errors
/// [`CliError::LoadGenerator`].
pub(crate) fn archive(args: &ArchiveArgs) -> Result<(), CliError> {
    let work = tempfile::tempdir().map_err(|e| failed("a temporary directory", e))?;
    let to = match &args.to {
        Some(to) => to.clone(),
        None => work.path().join("target").display().to_string(),
    };
    let bundles = args.entries / 256;
    let signer = NoteSigner::generate(
        KeyName::new("bench.veritrail.example/archive").map_err(|e| failed("a key", e))?,
    )
    .map_err(|e| failed("a key", e))?;
    let store = store::open(Backend::Redb, &work.path().join("data"))
        .map_err(|e| failed("the store", e))?;
    let ledger = Arc::new(
        Ledger::open(store, "bench.veritrail.example/archive", signer)
            .map_err(|e| failed("the log", e))?,
    );
    let entry = vec![b'x'; args.size as usize];
    let mut batch = Vec::new();
    for i in 0..bundles * 256 {
        let mut e = entry.clone();
        for (slot, byte) in e.iter_mut().zip(i.to_be_bytes()) {
            *slot = byte;
        }
        batch.push(e);
        if batch.len() == 4096 {
            ledger.append(&batch).map_err(|e| failed("append", e))?;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        ledger.append(&batch).map_err(|e| failed("append", e))?;
    }
    // Dated in 2000: everything has expired.
    let checkpoint = ledger
        .sign_checkpoint_at(946_684_800)
        .map_err(|e| failed("sign", e))?;
    let objects = Objects::open(&to).map_err(|e| failed("the target", e))?;
    let run = format!("{}", std::process::id());
    runtime()?.block_on(async {
        // Baseline: the same bundles, written as plain objects.
        let baseline = objects
            .child(&format!("baseline-{run}"))
            .map_err(|e| failed("the target", e))?;
        let started = Instant::now();
        let mut bytes = 0u64;
        let mut tasks: tokio::task::JoinSet<Result<(), veritrail_objects::ObjectsError>> =
            tokio::task::JoinSet::new();
        for bundle in 0..bundles {
            let body = ledger
                .entry_bundle(bundle, 256)
                .map_err(|e| failed("read", e))?;
            bytes += body.len() as u64;
            while tasks.len() >= 16 {
                if let Some(done) = tasks.join_next().await {
                    done.map_err(|e| failed("a task", e))?
                        .map_err(|e| failed("baseline put", e))?;
                }
            }
            let target = baseline.clone();
            tasks.spawn(async move {
                target
                    .put(&format!("tile/entries/{bundle}"), Bytes::from(body), &Meta::IMMUTABLE)
                    .await
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.map_err(|e| failed("a task", e))?
                .map_err(|e| failed("baseline put", e))?;
        }
        let baseline_s = started.elapsed().as_secs_f64();

        let archiver = Archiver {
            ledger: ledger.clone(),
            payloads: None,
            target: objects
                .child(&format!("archive-{run}"))
                .map_err(|e| failed("the target", e))?,
            policy: RetentionPolicy::default(),
            max_bundles: MAX_ARCHIVE_BUNDLES,
        };
        let appender = ledger.clone();
        let record: Box<Recorder> = Box::new(move |details| {
            let leaf = serde_json::Value::Object(details).to_string().into_bytes();
            let result = appender
                .append(&[leaf])
                .map(|a| a.indices.start)
                .map_err(|e| e.to_string());
            Box::pin(async move { result })
        });
        let started = Instant::now();
        let report = archiver
            .run(
                time::OffsetDateTime::now_utc(),
                Holds::new(),
                checkpoint,
                &*record,
                &|_, _| {},
            )
            .await
            .map_err(|e| failed("archive", e))?;
        let archive_s = started.elapsed().as_secs_f64();
        let archived: u64 = report.archived.iter().map(|a| a.bundles.end - a.bundles.start).sum();
        if archived != bundles {
            return Err(message("archive", format!("archived {archived} of {bundles} bundles")));
        }
        let mb = bytes as f64 / 1e6;
        let (archive_rate, baseline_rate) = (mb / archive_s, mb / baseline_s);
        println!(
            "{bundles} bundles, {mb:.1} MB of entries to {to}: baseline put {baseline_s:.2} s, archive (write, read back, verify, purge) {archive_s:.2} s in {} archives",
            report.archived.len()
        );
        println!(
            "archive_mb_per_s={archive_rate:.1} baseline_put_mb_per_s={baseline_rate:.1} ratio={:.2}",
            archive_rate / baseline_rate
        );
        Ok(())
    })
}

/// When each tree size was first seen, as (instant, size) steps.
type Steps = Arc<Mutex<Vec<(Instant, u64)>>>;

async fn read_size(http: &reqwest::Client, source: &str) -> Option<u64> {
    let text = if source.starts_with("http://") || source.starts_with("https://") {
        let response = http.get(source).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.text().await.ok()?
    } else {
        tokio::fs::read_to_string(source).await.ok()?
    };
    text.lines().nth(1)?.parse().ok()
}

/// Runs `veritrail bench mirror`.
///
/// # Errors
/// [`CliError::LoadGenerator`].
pub(crate) fn mirror(args: &MirrorArgs) -> Result<(), CliError> {
    runtime()?.block_on(async {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| failed("the HTTP client", e))?;
        let base = args.url.trim_end_matches('/').to_owned();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (published, mirrored): (Steps, Steps) = Default::default();
        let mut pollers = Vec::new();
        for (source, steps) in [
            (format!("{base}/checkpoint"), published.clone()),
            (args.mirror_checkpoint.clone(), mirrored.clone()),
        ] {
            let (http, stop) = (http.clone(), stop.clone());
            pollers.push(tokio::spawn(async move {
                let mut last = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Some(size) = read_size(&http, &source).await
                        && size > last
                    {
                        last = size;
                        steps.lock().unwrap_or_else(|e| e.into_inner()).push((Instant::now(), size));
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }));
        }
        let acks: Arc<Mutex<Vec<(Instant, u64)>>> = Arc::default();
        let deadline = Instant::now() + Duration::from_secs(args.seconds);
        let mut clients = Vec::new();
        for client in 0..args.clients {
            let (http, base, acks) = (http.clone(), base.clone(), acks.clone());
            clients.push(tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    // Distinct entries: the client and its counter, padded to 512 bytes.
                    let mut body = Vec::with_capacity(512);
                    body.extend_from_slice(&client.to_be_bytes());
                    body.extend_from_slice(&n.to_be_bytes());
                    body.resize(512, b'm');
                    n += 1;
                    let Ok(response) = http.post(format!("{base}/v1/entries")).body(body).send().await
                    else {
                        continue;
                    };
                    if !response.status().is_success() {
                        continue;
                    }
                    let at = Instant::now();
                    let Ok(bytes) = response.bytes().await else { continue };
                    if let Some(index) = serde_json::from_slice::<serde_json::Value>(&bytes)
                        .ok()
                        .and_then(|v| v.get("index")?.as_u64())
                    {
                        acks.lock().unwrap_or_else(|e| e.into_inner()).push((at, index));
                    }
                }
            }));
        }
        for client in clients {
            client.await.map_err(|e| failed("an appender", e))?;
        }
        // Let both catch up with the last appends.
        tokio::time::sleep(Duration::from_secs(3)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for poller in pollers {
            poller.await.map_err(|e| failed("a poller", e))?;
        }
        let acks = acks.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let lag = |steps: &Steps| -> Result<Histogram<u64>, CliError> {
            let steps = steps.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let mut histogram =
                Histogram::<u64>::new(3).map_err(|e| failed("a histogram", e))?;
            for (at, index) in &acks {
                // The first step whose size covers the entry.
                let at_or_after = steps.partition_point(|(_, size)| *size <= *index);
                if let Some((seen, _)) = steps.get(at_or_after) {
                    let micros = seen.saturating_duration_since(*at).as_micros() as u64;
                    histogram.record(micros.max(1)).map_err(|e| failed("a histogram", e))?;
                }
            }
            Ok(histogram)
        };
        let (mirror, publish) = (lag(&mirrored)?, lag(&published)?);
        let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let rate = acks.len() as f64 / args.seconds as f64;
        println!(
            "{} appends in {} s by {} clients; {} covered by the mirror, {} by the published checkpoint",
            acks.len(),
            args.seconds,
            args.clients,
            mirror.len(),
            publish.len()
        );
        println!(
            "appends_per_s={rate:.0} mirror_p50_ms={:.1} mirror_p99_ms={:.1} published_p50_ms={:.1} published_p99_ms={:.1}",
            ms(&mirror, 0.5),
            ms(&mirror, 0.99),
            ms(&publish, 0.5),
            ms(&publish, 0.99)
        );
        Ok(())
    })
}
