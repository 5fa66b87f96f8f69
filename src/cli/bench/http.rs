//! The HTTP target: `POST /v1/entries` (or `/v1/records`, or `/v1/traces`) over HTTP/1.1
//! keep-alive.
//!
//! Each client task owns one connection, driven by hyper's low-level HTTP/1 client (no pool,
//! no per-request routing): the generator shares the machine with the server it measures, so
//! every microsecond it spends is one the server does not get. `reqwest` is used only for the
//! pre-flight health check.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use veritrail_server::routes::BATCH_CONTENT_TYPE;

use crate::cli::bench::plan::{Load, MAX_RETRIES, MAX_RETRY_AFTER_S, Plan, Tally};
use crate::cli::common::error::CliError;

/// Longest one HTTP request may take before it counts as failed. Above the server's default
/// request timeout (30 s) so that the server's own timeout answer is what gets counted.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest the pre-flight `GET /healthz` may take.
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(5);

/// How a `Retry-After` header (in seconds) is honoured.
fn retry_after(headers: &hyper::HeaderMap) -> Duration {
    let seconds = headers
        .get(hyper::header::RETRY_AFTER)
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
    /// Where the server listens.
    addr: SocketAddr,
    /// The `Host` header.
    host: String,
    /// The endpoint's path and query.
    target: String,
    /// Bearer token, if any.
    token: Option<String>,
    /// Of a raw entry, an entry batch, records or an OTLP request.
    content_type: &'static str,
    /// What the requests carry.
    load: Load,
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
    /// `--records` or `--otlp`: what the requests carry.
    pub(super) load: Load,
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
        let route = match args.load {
            Load::Entries => "v1/entries",
            Load::Records => "v1/records",
            Load::Spans => "v1/traces",
        };
        let path = format!("{}/{route}", base.path().trim_end_matches('/'));
        endpoint.set_path(&path);
        endpoint.set_query(args.wait_published.then_some("wait=published"));
        let addr = base
            .socket_addrs(|| Some(80))
            .ok()
            .and_then(|addrs| addrs.into_iter().next())
            .ok_or_else(|| CliError::Usage {
                message: format!("--url {} does not resolve to an address", args.url),
                hint: "pass the address `veritrail serve` prints, e.g. --url http://127.0.0.1:7800"
                    .into(),
            })?;
        let host = match base.port() {
            Some(port) => format!("{}:{port}", base.host_str().unwrap_or_default()),
            None => base.host_str().unwrap_or_default().to_owned(),
        };
        let target = match endpoint.query() {
            Some(query) => format!("{}?{query}", endpoint.path()),
            None => endpoint.path().to_owned(),
        };
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
            addr,
            host,
            target,
            token: args.token.map(|t| format!("Bearer {t}")),
            content_type: match args.load {
                Load::Records => "application/json",
                Load::Spans => "application/x-protobuf",
                Load::Entries if args.batch > 1 => BATCH_CONTENT_TYPE,
                Load::Entries => "application/octet-stream",
            },
            load: args.load,
        })
    }

    /// Checks that a server answers before any load is sent.
    pub(super) async fn preflight(&self) -> Result<(), CliError> {
        let mut health = self.endpoint.clone();
        let path = self.endpoint.path();
        let base = path
            .strip_suffix("/v1/entries")
            .or_else(|| path.strip_suffix("/v1/records"))
            .or_else(|| path.strip_suffix("/v1/traces"))
            .unwrap_or_default();
        health.set_path(&format!("{base}/healthz"));
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

    /// Opens a keep-alive connection; its driver runs as a task of its own.
    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, &'static str> {
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|_| "connect")?;
        stream.set_nodelay(true).map_err(|_| "connect")?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| "connect")?;
        tokio::spawn(connection);
        Ok(sender)
    }

    /// Sends one request on `conn` (connecting first if it has none) and reads the whole
    /// answer: its status, `Retry-After` and body.
    async fn send(
        &self,
        conn: &mut Option<SendRequest<Full<Bytes>>>,
        body: Bytes,
    ) -> Result<(hyper::StatusCode, Duration, Bytes), &'static str> {
        let sender = match conn {
            Some(sender) if !sender.is_closed() => sender,
            _ => conn.insert(self.connect().await?),
        };
        sender.ready().await.map_err(|_| "request")?;
        let mut request = hyper::Request::post(self.target.as_str())
            .header(hyper::header::HOST, self.host.as_str())
            .header(hyper::header::CONTENT_TYPE, self.content_type);
        if let Some(token) = &self.token {
            request = request.header(hyper::header::AUTHORIZATION, token.as_str());
        }
        let request = request.body(Full::new(body)).map_err(|_| "request")?;
        let response = sender.send_request(request).await.map_err(|_| "request")?;
        let status = response.status();
        let wait = retry_after(response.headers());
        // Read the whole answer so that the connection can carry the next request.
        let body = response.into_body().collect().await.map_err(|_| "body")?;
        Ok((status, wait, body.to_bytes()))
    }

    /// Sends one request on the task's connection `conn`, retrying 503s, and records the
    /// outcome.
    pub(super) async fn request(
        &self,
        conn: &mut Option<SendRequest<Full<Bytes>>>,
        body: Bytes,
        entries: u64,
        plan: &Plan,
        tally: &mut Tally,
    ) {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            let sent = tokio::time::timeout(REQUEST_TIMEOUT, self.send(conn, body.clone())).await;
            let (status, wait, answer) = match sent {
                Ok(Ok(answer)) => answer,
                Ok(Err(kind)) => {
                    *conn = None;
                    return tally.failure(format!("transport error ({kind})"), entries);
                }
                Err(_) => {
                    *conn = None;
                    return tally.failure("transport error (timeout)".into(), entries);
                }
            };
            if status.is_success() {
                return match self.rejected(&answer) {
                    0 => tally.success(started, entries),
                    rejected => tally.failure(
                        format!("{status} with partial_success ({rejected} rejected)"),
                        entries,
                    ),
                };
            }
            let key = status.to_string();
            let deadline_passed = plan.deadline.is_some_and(|d| Instant::now() >= d);
            if status != hyper::StatusCode::SERVICE_UNAVAILABLE
                || attempt >= MAX_RETRIES
                || deadline_passed
            {
                return tally.failure(key, entries);
            }
            tally.error(key);
            tally.retries += 1;
            attempt += 1;
            tokio::time::sleep(wait).await;
        }
    }
}

impl Http {
    /// How many records a successful answer says were rejected: OTLP's `partial_success`
    /// (an answer that cannot be decoded counts as one); none for the other loads.
    fn rejected(&self, answer: &[u8]) -> i64 {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
        use prost::Message as _;
        if self.load != Load::Spans {
            return 0;
        }
        match ExportTraceServiceResponse::decode(answer) {
            Ok(response) => response.partial_success.map_or(0, |p| p.rejected_spans),
            Err(_) => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_capped() {
        let mut headers = hyper::HeaderMap::new();
        assert_eq!(retry_after(&headers), Duration::from_secs(1));
        headers.insert(hyper::header::RETRY_AFTER, "3".parse().expect("value"));
        assert_eq!(retry_after(&headers), Duration::from_secs(3));
        headers.insert(hyper::header::RETRY_AFTER, "3600".parse().expect("value"));
        assert_eq!(
            retry_after(&headers),
            Duration::from_secs(MAX_RETRY_AFTER_S)
        );
    }
}
