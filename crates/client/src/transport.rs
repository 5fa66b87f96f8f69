//! The HTTP transport to one log: base URL, bearer token, timeouts, capped body reads and
//! the retry policy. It knows nothing of the endpoints ([`crate::http`]) nor of what the
//! bodies mean ([`crate::answers`], [`crate::tile_body`]).
//!
//! Reads are retried on transport errors, `408`, `429`, `502`, `503` and `504`; a request
//! marked [`Retry::Never`] (an append without an idempotency key) is never repeated.

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use veritrail_api::ErrorBody;
use veritrail_api::limits::{MAX_ERROR_RESPONSE, MAX_JSON_RESPONSE};
use veritrail_api::media::IDEMPOTENCY_KEY_HEADER;

use crate::error::ClientError;

/// Longest wait honoured from a `Retry-After` header.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// How many characters of a non-JSON error body are kept as the message.
const ERROR_TEXT_CHARS: usize = 200;

/// How to reach a log.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Base URL of the log, such as `http://127.0.0.1:8080` (a path prefix is kept).
    pub url: String,
    /// Bearer token, for appends and entry reads.
    pub token: Option<String>,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// How many times a retryable failure is retried (0: never).
    pub retries: u32,
    /// Delay before the first retry; doubled each time.
    pub backoff: Duration,
    /// Largest tree size a checkpoint may claim before the client refuses it as implausible.
    /// A monitor downloads every entry, so a forged huge size would otherwise keep it busy
    /// forever. Default `2^40` (about 10^12 entries).
    pub max_tree_size: u64,
}

impl ClientConfig {
    /// Defaults for `url`: no token, 30 s timeout, 5 s connect timeout, 3 retries from
    /// 200 ms.
    pub fn new(url: impl Into<String>) -> Self {
        ClientConfig {
            url: url.into(),
            token: None,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            retries: 3,
            backoff: Duration::from_millis(200),
            max_tree_size: 1 << 40,
        }
    }

    /// Sets the bearer token.
    #[must_use]
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
}

/// Whether a request may be repeated after a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Repeating it cannot change the log (a read, or an append with an idempotency key).
    Safe,
    /// Repeating it could append twice.
    Never,
}

/// A request body: its content type, bytes and optional idempotency key.
pub(crate) struct Body<'a> {
    /// The `Content-Type`.
    pub(crate) content_type: &'static str,
    /// The bytes.
    pub(crate) bytes: Vec<u8>,
    /// The `Idempotency-Key`, if any.
    pub(crate) idempotency_key: Option<&'a str>,
}

/// The connection pool, base URL, token and retry policy. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Transport {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
    retries: u32,
    backoff: Duration,
}

impl Transport {
    /// A transport for the log at `config.url`.
    ///
    /// # Errors
    /// [`ClientError::InvalidUrl`] unless the URL is an `http` or `https` base URL;
    /// [`ClientError::Transport`] if the HTTP stack cannot be set up.
    pub(crate) fn new(config: &ClientConfig) -> Result<Self, ClientError> {
        let invalid = |reason: String| ClientError::InvalidUrl {
            url: config.url.clone(),
            reason,
        };
        let mut base = Url::parse(&config.url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https".into()));
        }
        if base.cannot_be_a_base() || base.query().is_some() || base.fragment().is_some() {
            return Err(invalid(
                "expected a base URL without query or fragment".into(),
            ));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("veritrail-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| ClientError::Transport {
                url: config.url.clone(),
                source,
            })?;
        Ok(Transport {
            http,
            base,
            token: config.token.clone(),
            retries: config.retries,
            backoff: config.backoff,
        })
    }

    /// The log's base URL.
    pub(crate) fn base(&self) -> &Url {
        &self.base
    }

    /// The URL of `path` (relative to the base URL).
    pub(crate) fn url_for(&self, path: &str) -> Result<Url, ClientError> {
        self.base.join(path).map_err(|e| ClientError::InvalidUrl {
            url: format!("{}{path}", self.base),
            reason: e.to_string(),
        })
    }

    /// Sends a request and reads the body (at most `max` bytes) of a success, retrying what
    /// may be retried. Error statuses become [`ClientError::Api`].
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Body<'_>>,
        max: usize,
        retry: Retry,
    ) -> Result<Vec<u8>, ClientError> {
        let url = self.url_for(path)?;
        let mut delay = self.backoff;
        let mut attempt = 0u32;
        loop {
            let mut request = self.http.request(method.clone(), url.clone());
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = &body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, body.content_type)
                    .body(body.bytes.clone());
                if let Some(key) = body.idempotency_key {
                    request = request.header(IDEMPOTENCY_KEY_HEADER, key);
                }
            }
            let (err, again, retry_after): (ClientError, bool, Option<Duration>) =
                match request.send().await {
                    Ok(response) => {
                        let status = response.status();
                        let retry_after = response
                            .headers()
                            .get(reqwest::header::RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<u64>().ok())
                            .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
                        if status.is_success() {
                            return read_capped(response, url.as_str(), max).await;
                        }
                        let body = read_capped(response, url.as_str(), MAX_ERROR_RESPONSE)
                            .await
                            .unwrap_or_default();
                        (
                            api_error(url.as_str(), status, &body),
                            retryable(status),
                            retry_after,
                        )
                    }
                    Err(source) => {
                        let again =
                            source.is_connect() || source.is_timeout() || source.is_request();
                        let err = ClientError::Transport {
                            url: url.to_string(),
                            source,
                        };
                        (err, again, None)
                    }
                };
            if retry == Retry::Never || !again || attempt >= self.retries {
                return Err(err);
            }
            attempt += 1;
            tracing::debug!(%url, attempt, error = %err, "retrying");
            tokio::time::sleep(retry_after.unwrap_or(delay)).await;
            delay = delay.saturating_mul(2);
        }
    }

    /// `GET path`, reading at most `max` bytes.
    pub(crate) async fn get(&self, path: &str, max: usize) -> Result<Vec<u8>, ClientError> {
        self.send(Method::GET, path, None, max, Retry::Safe).await
    }

    /// `GET path` as JSON of type `T`, with the URL for error messages.
    pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<(T, String), ClientError> {
        let body = self.get(path, MAX_JSON_RESPONSE).await?;
        let url = self.url_for(path)?.to_string();
        let value =
            serde_json::from_slice(&body).map_err(|e| crate::answers::malformed(&url, e))?;
        Ok((value, url))
    }
}

/// True for statuses after which the same request may succeed.
fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 502 | 503 | 504)
}

async fn read_capped(
    mut response: reqwest::Response,
    url: &str,
    max: usize,
) -> Result<Vec<u8>, ClientError> {
    let too_large = || ClientError::ResponseTooLarge {
        url: url.to_owned(),
        max,
    };
    if response
        .content_length()
        .is_some_and(|len| len > max as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > max {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(source) => {
                return Err(ClientError::Transport {
                    url: url.to_owned(),
                    source,
                });
            }
        }
    }
}

/// The [`ClientError::Api`] for an error answer: the stable code and message of an
/// [`ErrorBody`]; for an error body with a code this client does not know yet (a newer
/// server), that code as sent; otherwise (a proxy's page) no code and the start of the body
/// as the message.
fn api_error(url: &str, status: StatusCode, body: &[u8]) -> ClientError {
    let (code, message) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) if e.problems.is_empty() => (e.error.as_str().to_owned(), e.message),
        // `invalid_record`: every problem, each naming its field.
        Ok(e) => {
            let problems: Vec<String> = e
                .problems
                .iter()
                .map(|p| format!("{}: {}", p.field, p.problem))
                .collect();
            (e.error.as_str().to_owned(), problems.join("; "))
        }
        Err(_) => match newer_error_body(body) {
            Some(pair) => pair,
            None => {
                let text = String::from_utf8_lossy(body);
                (String::new(), text.chars().take(ERROR_TEXT_CHARS).collect())
            }
        },
    };
    ClientError::Api {
        url: url.to_owned(),
        status: status.as_u16(),
        code,
        message,
    }
}

/// The `error` and `message` strings of an [`ErrorBody`]-shaped answer whose code is not one
/// of [`veritrail_api::ErrorCode`], so that codes added to the API later still reach callers.
fn newer_error_body(body: &[u8]) -> Option<(String, String)> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = value.get("error")?.as_str()?;
    let message = value.get("message")?.as_str()?;
    Some((code.to_owned(), message.to_owned()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn error_bodies_keep_the_stable_code() {
        let body = br#"{"error":"overloaded","message":"queue full"}"#;
        let err = api_error("u", StatusCode::SERVICE_UNAVAILABLE, body);
        assert!(matches!(
            err,
            ClientError::Api { status: 503, ref code, ref message, .. }
                if code == "overloaded" && message == "queue full"
        ));
        assert_eq!(err.api_code(), Some(veritrail_api::ErrorCode::Overloaded));
        // A code from a newer server is kept as sent, though this client cannot name it.
        let body = br#"{"error":"quota_exceeded","message":"slow down"}"#;
        let err = api_error("u", StatusCode::TOO_MANY_REQUESTS, body);
        assert!(matches!(
            err,
            ClientError::Api { ref code, ref message, .. }
                if code == "quota_exceeded" && message == "slow down"
        ));
        assert_eq!(err.api_code(), None);
        let err = api_error("u", StatusCode::BAD_GATEWAY, &[b'x'; 1000]);
        assert!(matches!(
            err,
            ClientError::Api { status: 502, ref code, ref message, .. }
                if code.is_empty() && message.len() == 200
        ));
        assert!(retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(!retryable(StatusCode::INTERNAL_SERVER_ERROR));
        assert!(!retryable(StatusCode::CONFLICT));
    }

    #[test]
    fn urls_keep_a_path_prefix_and_refuse_other_schemes() {
        let transport = Transport::new(&ClientConfig::new("http://127.0.0.1:1/logs/a")).unwrap();
        assert_eq!(
            transport.url_for("checkpoint").unwrap().as_str(),
            "http://127.0.0.1:1/logs/a/checkpoint"
        );
        for bad in ["ftp://x", "not a url", "http://x/?q=1", "mailto:a@b"] {
            assert!(
                matches!(
                    Transport::new(&ClientConfig::new(bad)),
                    Err(ClientError::InvalidUrl { .. })
                ),
                "{bad}"
            );
        }
    }

    proptest! {
        #[test]
        fn error_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = api_error("u", StatusCode::BAD_REQUEST, &bytes);
        }
    }
}
