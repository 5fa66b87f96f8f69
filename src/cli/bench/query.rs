//! `veritrail bench query`: the latency of reading one conversation (`GET
//! /v1/conversations/<id>`) or one query page (`GET /v1/records?conversation_id=<id>`) from a
//! running server, with `--concurrency` clients for `--requests` requests in all.
//!
//! Each request's whole answer is read (records and proofs); the client does not verify it
//! (verification is the client's cost, measured by the client benches). The last line on
//! standard output is machine-readable: `queries_per_s=<n> p50_ms=<x> p99_ms=<y>`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::cli::bench::report::{merge_latencies, print_rate};
use crate::cli::common::error::CliError;
use crate::cli::common::runtime::runtime;

/// Arguments of `veritrail bench query`.
#[derive(Debug, clap::Args)]
pub(crate) struct QueryArgs {
    /// Base URL of a running `veritrail serve`.
    #[arg(long, default_value = "http://127.0.0.1:7800")]
    url: String,
    /// Bearer token with the audit role.
    #[arg(long, env = "VERITRAIL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The conversation to read.
    #[arg(long)]
    conversation_id: String,
    /// Read it as a query page (`GET /v1/records?conversation_id=`) instead of the
    /// conversation endpoint (which also signs the head).
    #[arg(long)]
    as_query: bool,
    /// Requests in all.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    requests: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    concurrency: u32,
}

/// Runs the requests and prints the latency percentiles.
///
/// # Errors
/// [`CliError::LoadGenerator`] when the client cannot be built or a request fails.
pub(crate) fn run(args: &QueryArgs) -> Result<(), CliError> {
    let failed = |what: &'static str| {
        move |e: Box<dyn std::error::Error + Send + Sync>| CliError::LoadGenerator {
            what,
            source: e,
        }
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| failed("cannot build the HTTP client")(Box::new(e)))?;
    let base = args.url.trim_end_matches('/');
    let target = if args.as_query {
        format!(
            "{base}/v1/records?conversation_id={}&limit=1000",
            args.conversation_id
        )
    } else {
        format!(
            "{base}/v1/conversations/{}?limit=1000",
            args.conversation_id
        )
    };
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let histogram = runtime()?.block_on(async {
        let tasks: Vec<_> = (0..args.concurrency)
            .map(|_| {
                let (client, target, next, token) = (
                    client.clone(),
                    target.clone(),
                    next.clone(),
                    args.token.clone(),
                );
                let requests = args.requests;
                tokio::spawn(async move {
                    let mut histogram = Histogram::<u64>::new(3)?;
                    while next.fetch_add(1, Ordering::Relaxed) < requests {
                        let sent = Instant::now();
                        let mut request = client.get(&target);
                        if let Some(token) = &token {
                            request = request.bearer_auth(token);
                        }
                        let response = request.send().await?.error_for_status()?;
                        // The whole answer, records and proofs.
                        response.bytes().await?;
                        histogram.record(sent.elapsed().as_micros() as u64)?;
                    }
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(histogram)
                })
            })
            .collect();
        merge_latencies(tasks).await
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{} requests for {target} with {} clients in {elapsed:.2} s",
        histogram.len(),
        args.concurrency
    );
    print_rate("queries_per_s", &histogram, elapsed);
    Ok(())
}
