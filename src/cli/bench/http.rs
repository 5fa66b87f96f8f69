//! The HTTP target: `POST /v1/entries` over HTTP/1.1 keep-alive.

use std::time::{Duration, Instant};

use bytes::Bytes;
use veritrail_server::routes::BATCH_CONTENT_TYPE;

use crate::cli::bench::plan::{MAX_RETRIES, MAX_RETRY_AFTER_S, Plan, Tally};
use crate::cli::common::error::CliError;

/// Longest one HTTP request may take before it counts as failed. Above the server's default
/// request timeout (30 s) so that the server's own timeout answer is what gets counted.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest the pre-flight `GET /healthz` may take.
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(5);

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
pub(super) struct Http {
    client: reqwest::Client,
    /// `<url>/v1/entries[?wait=published]`
    pub(super) endpoint: reqwest::Url,
    /// Bearer token, if any.
    token: Option<String>,
    /// Of a raw entry, or of an entry batch.
    content_type: &'static str,
}

/// What the HTTP target is built from (the flags of `veritrail bench append`).
pub(super) struct HttpOptions<'a> {
    /// `--url`.
    pub(super) url: &'a str,
    /// `--wait published`.
    pub(super) wait_published: bool,
    /// `--concurrency`: the size of the connection pool.
    pub(super) concurrency: u32,
    /// `--token`.
    pub(super) token: Option<String>,
    /// `--batch`: entries per request.
    pub(super) batch: u16,
}

impl Http {
    /// The client and endpoint for `args`.
    ///
    /// # Errors
    /// [`CliError::Usage`] for a `--url` that is not an `http://` URL.
    pub(super) fn new(args: HttpOptions<'_>) -> Result<Self, CliError> {
        let base = reqwest::Url::parse(args.url).map_err(|e| CliError::Usage {
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
        endpoint.set_query(args.wait_published.then_some("wait=published"));
        let pool = usize::try_from(args.concurrency).unwrap_or(usize::MAX);
        let client = reqwest::Client::builder()
            .http1_only()
            .pool_max_idle_per_host(pool)
            .tcp_nodelay(true)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| CliError::LoadGenerator {
                what: "cannot build the HTTP client",
                source: Box::new(e),
            })?;
        Ok(Http {
            client,
            endpoint,
            token: args.token,
            content_type: if args.batch > 1 {
                BATCH_CONTENT_TYPE
            } else {
                "application/octet-stream"
            },
        })
    }

    /// Checks that a server answers before any load is sent.
    pub(super) async fn preflight(&self) -> Result<(), CliError> {
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
            Ok(response) => Err(CliError::Unhealthy {
                url: health.to_string(),
                status: response.status(),
            }),
            Err(source) => Err(CliError::Unreachable {
                url: health.to_string(),
                source,
            }),
        }
    }

    /// Sends one request, retrying 503s, and records the outcome.
    pub(super) async fn request(&self, body: Bytes, entries: u64, plan: &Plan, tally: &mut Tally) {
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

/// The error key of a transport failure, by kind.
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

#[cfg(test)]
mod tests {
    use super::*;

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
