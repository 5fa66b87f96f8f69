//! The HTTP target: `POST /v1/entries` (or `/v1/records`, or `/v1/traces`) over HTTP/1.1
//! keep-alive.
//!
//! Each client task owns one connection and speaks HTTP/1.1 on it itself: it writes each
//! request in one `write` and reads the answer in the same task, the answer's head parsed by
//! `httparse` (hyper's parser). The generator shares the machine with the server it measures,
//! so every microsecond it spends is one the server does not get: hyper's client connection
//! runs as a task of its own, and handing each request to it and each answer back cost two
//! task wake-ups per request (docs/performance.md, "The load generator"). `reqwest` is used
//! only for the pre-flight health check.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use veritrail_server::routes::BATCH_CONTENT_TYPE;

use crate::cli::bench::plan::{Load, MAX_RETRIES, MAX_RETRY_AFTER_S, Plan, Tally};
use crate::cli::common::error::CliError;

/// Longest one HTTP request may take before it counts as failed. Above the server's default
/// request timeout (30 s) so that the server's own timeout answer is what gets counted.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest the pre-flight `GET /healthz` may take.
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(5);

/// Most header lines an answer may have.
const MAX_HEADERS: usize = 32;
/// Most bytes an answer (head and body) may have.
const MAX_ANSWER_BYTES: usize = 16 << 20;

/// How a `Retry-After` header value (in seconds) is honoured.
fn retry_after(value: Option<&[u8]>) -> Duration {
    let seconds = value
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(1);
    Duration::from_secs(seconds.min(MAX_RETRY_AFTER_S))
}

/// An answer read from a connection.
pub(super) struct Answer {
    /// The status code.
    status: u16,
    /// How long its `Retry-After` asks to wait (1 s without one).
    wait: Duration,
    /// The body.
    body: Bytes,
}

/// One keep-alive connection: the stream and the bytes read past the last answer.
pub(super) struct Conn {
    stream: TcpStream,
    buffer: Vec<u8>,
    /// The server asked to close it after the last answer.
    closing: bool,
}

/// The head of an answer, once complete: its length, status, `Content-Length`,
/// `Retry-After` and whether the server closes the connection after it.
struct Head {
    len: usize,
    status: u16,
    content_length: usize,
    retry_after: Duration,
    close: bool,
}

/// Parses the head at the start of `buffer`: `Ok(None)` while it is incomplete.
///
/// # Errors
/// What is wrong with a head that cannot be read: not HTTP, no `Content-Length` (the server
/// answers these routes with whole bodies, never chunked), or a body above
/// [`MAX_ANSWER_BYTES`].
fn parse_head(buffer: &[u8]) -> Result<Option<Head>, &'static str> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buffer) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err("malformed answer"),
    };
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let content_length = header("content-length")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
        .ok_or("answer without a Content-Length")?;
    if content_length > MAX_ANSWER_BYTES {
        return Err("answer too large");
    }
    Ok(Some(Head {
        len,
        status: response.code.ok_or("malformed answer")?,
        content_length,
        retry_after: retry_after(header("retry-after")),
        close: header("connection").is_some_and(|v| v.eq_ignore_ascii_case(b"close"))
            || response.version == Some(0),
    }))
}

impl Conn {
    /// Reads more bytes into the buffer; an error at the end of the stream.
    async fn fill(&mut self) -> Result<(), &'static str> {
        if self.buffer.len() > MAX_ANSWER_BYTES + 64 * 1024 {
            return Err("answer too large");
        }
        self.buffer.reserve(16 * 1024);
        match self.stream.read_buf(&mut self.buffer).await {
            Ok(0) => Err("connection closed"),
            Ok(_) => Ok(()),
            Err(_) => Err("read"),
        }
    }

    /// Writes one request and reads its whole answer.
    async fn exchange(&mut self, request: &[u8]) -> Result<Answer, &'static str> {
        self.stream.write_all(request).await.map_err(|_| "write")?;
        let head = loop {
            if let Some(head) = parse_head(&self.buffer)? {
                break head;
            }
            self.fill().await?;
        };
        let end = head.len + head.content_length;
        while self.buffer.len() < end {
            self.fill().await?;
        }
        let body = Bytes::copy_from_slice(self.buffer.get(head.len..end).unwrap_or_default());
        self.buffer.drain(..end);
        self.closing = head.close;
        Ok(Answer {
            status: head.status,
            wait: head.retry_after,
            body,
        })
    }
}

/// The HTTP target.
pub(super) struct Http {
    client: reqwest::Client,
    /// `<url>/v1/entries[?wait=published]`
    pub(super) endpoint: reqwest::Url,
    /// Where the server listens.
    addr: SocketAddr,
    /// Each request's head up to its `Content-Length` value: request line, `Host`,
    /// `Content-Type` and, with a token, `Authorization`.
    head: String,
    /// What the requests carry.
    load: Load,
}

/// What the HTTP target is built from (the flags of `veritrail bench append`).
pub(super) struct HttpOptions<'a> {
    /// `--url`.
    pub(super) url: &'a str,
    /// `--wait published`.
    pub(super) wait_published: bool,
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
        let content_type = match args.load {
            Load::Records => "application/json",
            Load::Spans => "application/x-protobuf",
            Load::Entries if args.batch > 1 => BATCH_CONTENT_TYPE,
            Load::Entries => "application/octet-stream",
        };
        let mut head =
            format!("POST {target} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n");
        if let Some(token) = &args.token {
            if !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(CliError::Usage {
                    message: "--token holds a space or a character that is not visible ASCII"
                        .into(),
                    hint: "pass the token as it is written in the data directory's admin.token or your auth.toml".into(),
                });
            }
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        head.push_str("Content-Length: ");
        let client = reqwest::Client::builder()
            .http1_only()
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
            head,
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

    /// Opens a keep-alive connection.
    async fn connect(&self) -> Result<Conn, &'static str> {
        let stream = TcpStream::connect(self.addr).await.map_err(|_| "connect")?;
        stream.set_nodelay(true).map_err(|_| "connect")?;
        Ok(Conn {
            stream,
            buffer: Vec::with_capacity(16 * 1024),
            closing: false,
        })
    }

    /// Sends one request on `conn` (connecting first if it has none, or if the server closed
    /// it) and reads the whole answer.
    async fn send(&self, conn: &mut Option<Conn>, request: &[u8]) -> Result<Answer, &'static str> {
        let open = match conn {
            Some(open) if !open.closing => open,
            _ => conn.insert(self.connect().await?),
        };
        open.exchange(request).await
    }

    /// Sends one request on the task's connection `conn`, retrying 503s, and records the
    /// outcome.
    pub(super) async fn request(
        &self,
        conn: &mut Option<Conn>,
        body: Bytes,
        entries: u64,
        plan: &Plan,
        tally: &mut Tally,
    ) {
        let started = Instant::now();
        let mut request = Vec::with_capacity(self.head.len() + 24 + body.len());
        request.extend_from_slice(self.head.as_bytes());
        request.extend_from_slice(format!("{}\r\n\r\n", body.len()).as_bytes());
        request.extend_from_slice(&body);
        let mut attempt = 0;
        loop {
            let sent = tokio::time::timeout(REQUEST_TIMEOUT, self.send(conn, &request)).await;
            let answer = match sent {
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
            let status = reqwest::StatusCode::from_u16(answer.status)
                .unwrap_or(reqwest::StatusCode::BAD_GATEWAY);
            if status.is_success() {
                return match self.rejected(&answer.body) {
                    0 => tally.success(started, entries),
                    rejected => tally.failure(
                        format!("{status} with partial_success ({rejected} rejected)"),
                        entries,
                    ),
                };
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
            tokio::time::sleep(answer.wait).await;
        }
    }

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
        assert_eq!(retry_after(None), Duration::from_secs(1));
        assert_eq!(retry_after(Some(b"3")), Duration::from_secs(3));
        assert_eq!(retry_after(Some(b"soon")), Duration::from_secs(1));
        assert_eq!(
            retry_after(Some(b"3600")),
            Duration::from_secs(MAX_RETRY_AFTER_S)
        );
    }

    #[test]
    fn answers_are_framed_by_their_content_length() {
        let text = b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 2\r\ncontent-length: 5\r\n\r\nbusy!HTTP/1.1";
        let head = parse_head(text).expect("a head").expect("complete");
        assert_eq!(head.status, 503);
        assert_eq!(head.content_length, 5);
        assert_eq!(head.retry_after, Duration::from_secs(2));
        assert!(!head.close);
        assert_eq!(text.get(head.len..head.len + 5), Some(&b"busy!"[..]));
        assert!(
            parse_head(b"HTTP/1.1 200 OK\r\ncontent-le")
                .expect("partial")
                .is_none()
        );
        let close = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert!(parse_head(close).expect("a head").expect("complete").close);
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").is_err());
        assert!(parse_head(b"\x00\x01 not http\r\n\r\n").is_err());
        let huge = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
            MAX_ANSWER_BYTES + 1
        );
        assert!(parse_head(huge.as_bytes()).is_err());
    }
}
