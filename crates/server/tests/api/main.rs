//! HTTP API tests: every handler through `app(state).oneshot(request)`, over a real ledger on
//! a temporary redb store with the committer and the publisher running (`Server::start`).
//!
//! - [`auth`]: the access policy of every route, for every kind of caller, with and without
//!   `--public-read` and with `--no-auth`, and the denial counter;
//! - [`bad_input`]: malformed bodies, parameters and paths each get the exact 4xx JSON error
//!   and leave the tree unchanged;
//! - [`dictionary`]: a dictionary attack on a low-entropy entry without a token finds no
//!   oracle; what public hash tiles still reveal about raw entries;
//! - [`idempotency`]: `Idempotency-Key` retries, conflicts and malformed keys;
//! - [`oidc`]: JWT submitters of a configured issuer, the refused ones, key rotation;
//! - [`queries`]: `GET /v1/records?...` against a brute-force scan, across pages and appends,
//!   and after the index is deleted or damaged;
//! - [`records`]: agent records: validation, attestation, canonical leaves and proofs,
//!   conversation chains;
//! - [`regressions`]: server bugs found while writing these tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod auth;
mod bad_input;
mod dictionary;
mod idempotency;
mod oidc;
mod queries;
mod records;
mod regressions;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use bytes::Bytes;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;
use veritrail_ledger::note::{KeyName, NoteSigner};
use veritrail_ledger::store::{self, Backend};
use veritrail_ledger::{Ledger, TreeHead};
use veritrail_server::auth::{Auth, Role, TokenFile, token_entry};
use veritrail_server::config::PublishConfig;
use veritrail_server::{Server, ServerConfig, app};

/// The test log's origin.
pub(crate) const ORIGIN: &str = "api.veritrail.example/log";

/// Bearer tokens of the test token file, one per role.
pub(crate) const APPEND_TOKEN: &str = "vt_test_append";
pub(crate) const READ_TOKEN: &str = "vt_test_read";
pub(crate) const AUDIT_TOKEN: &str = "vt_test_audit";
pub(crate) const ADMIN_TOKEN: &str = "vt_test_admin";

/// Longest any test waits for the server to reach a state.
pub(crate) const DEADLINE: Duration = Duration::from_secs(20);

/// The content type of a batch append.
pub(crate) const BATCH: &str = "application/x-veritrail-entries";

/// The token policy of the test servers: one token per role.
pub(crate) fn token_policy(public_read: bool) -> Auth {
    let file = TokenFile {
        token: vec![
            token_entry("writer", APPEND_TOKEN, vec![Role::Append]),
            token_entry("reader", READ_TOKEN, vec![Role::Read]),
            token_entry("auditor", AUDIT_TOKEN, vec![Role::Audit]),
            token_entry("operator", ADMIN_TOKEN, vec![Role::Admin]),
        ],
        oidc: None,
    };
    Auth::from_file(&file, std::path::Path::new("."), public_read).unwrap()
}

/// A configuration that publishes quickly, so `wait=published` and polling stay fast.
pub(crate) fn fast_config() -> ServerConfig {
    ServerConfig {
        publish: PublishConfig {
            interval: Duration::from_millis(5),
            republish: Duration::from_secs(10),
        },
        ..ServerConfig::default()
    }
}

/// Entry `i` of the entries preloaded into every test log.
pub(crate) fn preloaded(i: u64) -> Vec<u8> {
    format!("preloaded audit event #{i}").into_bytes()
}

/// A server over a fresh ledger, and the router under test.
pub(crate) struct TestServer {
    pub(crate) ledger: Arc<Ledger>,
    server: Option<Server>,
    router: Router,
    auth: Auth,
    config: ServerConfig,
    dir: tempfile::TempDir,
}

/// A response, fully read.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Reply {
    /// The body as JSON; panics with the body if it is not JSON.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} response is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Checks that this is a JSON error `{"error": code, "message": ...}` with `status`, and
    /// returns the message. Returns a description of the mismatch instead of panicking, so
    /// table tests can collect every failure.
    pub(crate) fn check_error(&self, status: StatusCode, code: &str) -> Result<String, String> {
        if self.status != status {
            return Err(format!(
                "status {} (want {status}), body {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            ));
        }
        let content_type = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if content_type != "application/json" {
            return Err(format!(
                "content type {content_type:?}, want application/json"
            ));
        }
        let value: serde_json::Value = serde_json::from_slice(&self.body)
            .map_err(|e| format!("error body is not JSON: {e}"))?;
        let object = value
            .as_object()
            .ok_or_else(|| format!("error body is not an object: {value}"))?;
        if object.len() != 2 {
            return Err(format!(
                "error body has other fields than error and message: {value}"
            ));
        }
        if object.get("error").and_then(|e| e.as_str()) != Some(code) {
            return Err(format!(
                "error code {:?}, want {code:?}",
                object.get("error")
            ));
        }
        match object.get("message").and_then(|m| m.as_str()) {
            Some(message) if !message.is_empty() => Ok(message.to_owned()),
            _ => Err(format!("missing or empty message: {value}")),
        }
    }

    /// As [`Reply::check_error`], panicking on a mismatch with `context`.
    #[track_caller]
    pub(crate) fn assert_error(&self, status: StatusCode, code: &str, context: &str) -> String {
        self.check_error(status, code)
            .unwrap_or_else(|e| panic!("{context}: {e}"))
    }

    /// Asserts a 200 and returns `self`.
    #[track_caller]
    pub(crate) fn ok(self, context: &str) -> Self {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "{context}: body {:?}",
            String::from_utf8_lossy(&self.body)
        );
        self
    }
}

impl TestServer {
    /// A server with the token policy `auth`, over a new log holding `preload` entries, once
    /// its first checkpoint (covering them) is published.
    pub(crate) async fn start(auth: Auth, mut config: ServerConfig, preload: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        config
            .records
            .index_dir
            .get_or_insert_with(|| dir.path().to_owned());
        let signer = NoteSigner::generate(KeyName::new(ORIGIN).unwrap()).unwrap();
        let store = store::open(Backend::Redb, dir.path()).unwrap();
        let ledger = Arc::new(Ledger::open(store, ORIGIN, signer).unwrap());
        if preload > 0 {
            let entries: Vec<Vec<u8>> = (0..preload).map(preloaded).collect();
            ledger.append(&entries).unwrap();
        }
        let server = Server::start(ledger.clone(), config.clone(), auth.clone()).unwrap();
        let router = app(server.state().clone());
        let test = TestServer {
            ledger,
            server: Some(server),
            router,
            auth,
            config,
            dir,
        };
        test.wait_published(preload).await;
        test
    }

    /// A server without authentication (`--no-auth`) and with fast publication.
    pub(crate) async fn open(preload: u64) -> Self {
        Self::start(Auth::disabled(), fast_config(), preload).await
    }

    /// Waits until a checkpoint of at least `size` entries is published.
    pub(crate) async fn wait_published(&self, size: u64) {
        let mut published = self.server.as_ref().unwrap().state().published.clone();
        tokio::time::timeout(
            DEADLINE,
            published.wait_for(|p| p.as_ref().is_some_and(|p| p.size() >= size)),
        )
        .await
        .expect("no checkpoint published in time")
        .expect("publisher stopped");
    }

    /// The committed tree head.
    pub(crate) fn tree(&self) -> TreeHead {
        self.ledger.tree_head()
    }

    /// Sends `request` through the router and reads the whole response.
    pub(crate) async fn call(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// `GET uri` with an optional raw `Authorization` header value.
    pub(crate) async fn get_as(&self, uri: &str, authorization: Option<&str>) -> Reply {
        let mut request = Request::builder().method(Method::GET).uri(uri);
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        self.call(request.body(Body::empty()).unwrap()).await
    }

    /// `GET uri` without credentials.
    pub(crate) async fn get(&self, uri: &str) -> Reply {
        self.get_as(uri, None).await
    }

    /// `POST uri` with a content type and extra headers.
    pub(crate) async fn post_with(
        &self,
        uri: &str,
        content_type: &str,
        headers: &[(&str, &[u8])],
        body: impl Into<Body>,
    ) -> Reply {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, content_type);
        for (name, value) in headers {
            request = request.header(
                *name,
                axum::http::HeaderValue::from_bytes(value).expect("test header value"),
            );
        }
        self.call(request.body(body.into()).unwrap()).await
    }

    /// `POST /v1/entries` of one raw entry.
    pub(crate) async fn append_one(&self, entry: &[u8]) -> Reply {
        self.post_with(
            "/v1/entries",
            "application/octet-stream",
            &[],
            entry.to_vec(),
        )
        .await
    }

    /// Stops the server, runs `between` on the data directory, and starts a new server over
    /// the same ledger, tokens and configuration.
    pub(crate) async fn restart(mut self, between: impl FnOnce(&std::path::Path)) -> Self {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        between(self.dir.path());
        let server =
            Server::start(self.ledger.clone(), self.config.clone(), self.auth.clone()).unwrap();
        self.router = app(server.state().clone());
        self.server = Some(server);
        let size = self.ledger.tree_head().size;
        self.wait_published(size).await;
        self
    }

    /// Stops the committer and the publisher.
    pub(crate) async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}

/// Encodes `entries` as a batch body (each entry prefixed by its big-endian u16 length).
pub(crate) fn batch_body<E: AsRef<[u8]>>(entries: &[E]) -> Vec<u8> {
    let mut body = Vec::new();
    for entry in entries {
        veritrail_ledger::bundle::append_entry(&mut body, entry.as_ref()).unwrap();
    }
    body
}

/// Fails with every collected mismatch at once.
#[track_caller]
pub(crate) fn assert_no_failures(what: &str, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{what}: {} failure(s):\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}
