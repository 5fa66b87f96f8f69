//! The access policy of `auth.rs`, route by route:
//!
//! | route                                   | needs                          |
//! |-----------------------------------------|--------------------------------|
//! | `POST /v1/entries`                      | `append` (or `admin`)          |
//! | `GET /v1/entries/{i}`, `tile/entries/…`, `GET /v1/proof/inclusion/by-leaf-hash` | `read` (`audit`, `admin`), or nothing with `--public-read` |
//! | `GET /v1/checkpoints/{size}`            | `audit` (or `admin`)           |
//! | `GET /metrics`                          | `admin`                        |
//! | checkpoint, hash tiles, proofs by index, consistency proofs, health, OpenAPI | nothing |
//!
//! A missing, unknown or malformed token on a route that needs a role is 401 `unauthorized`
//! (with `WWW-Authenticate: Bearer`); a known token without the role is 403 `forbidden`. With
//! `--public-read` a presented token must still be valid on the entry routes. Public routes do
//! not look at the `Authorization` header. With `--no-auth` every request is accepted.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use veritrail_server::auth::{Auth, Role};

use crate::{
    ADMIN_TOKEN, APPEND_TOKEN, AUDIT_TOKEN, READ_TOKEN, TestServer, assert_no_failures,
    fast_config, token_policy,
};

/// What a route requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Needs {
    Nothing,
    Append,
    /// Entry content: `read`, or nothing with `--public-read`.
    Read,
    Audit,
    Admin,
}

/// Who calls.
#[derive(Clone, Copy, Debug)]
enum Caller {
    Anonymous,
    UnknownToken,
    /// `Authorization: Basic ...`
    OtherScheme,
    /// `Authorization: Bearer ` with no token.
    EmptyBearer,
    Token(&'static str, Role),
}

const CALLERS: [Caller; 8] = [
    Caller::Anonymous,
    Caller::UnknownToken,
    Caller::OtherScheme,
    Caller::EmptyBearer,
    Caller::Token(APPEND_TOKEN, Role::Append),
    Caller::Token(READ_TOKEN, Role::Read),
    Caller::Token(AUDIT_TOKEN, Role::Audit),
    Caller::Token(ADMIN_TOKEN, Role::Admin),
];

impl Caller {
    fn authorization(self) -> Option<String> {
        match self {
            Caller::Anonymous => None,
            Caller::UnknownToken => Some("Bearer vt_not_a_known_token".into()),
            Caller::OtherScheme => Some("Basic dXNlcjpwYXNz".into()),
            Caller::EmptyBearer => Some("Bearer ".into()),
            Caller::Token(token, _) => Some(format!("Bearer {token}")),
        }
    }
}

/// The roles that grant `needs`, written out from the table in `auth.rs` (not computed with
/// the code under test).
fn holds(role: Role, needs: Needs) -> bool {
    match needs {
        Needs::Nothing => true,
        Needs::Append => matches!(role, Role::Append | Role::Admin),
        Needs::Read => matches!(role, Role::Read | Role::Audit | Role::Admin),
        Needs::Audit => matches!(role, Role::Audit | Role::Admin),
        Needs::Admin => role == Role::Admin,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Tokens { public_read: bool },
    NoAuth,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Ok,
    Unauthorized,
    Forbidden,
}

fn expected(needs: Needs, caller: Caller, mode: Mode) -> Expect {
    let public_read = match mode {
        Mode::NoAuth => return Expect::Ok,
        Mode::Tokens { public_read } => public_read,
    };
    match (needs, caller) {
        (Needs::Nothing, _) => Expect::Ok,
        (Needs::Read, Caller::Anonymous | Caller::Token(..)) if public_read => Expect::Ok,
        (_, Caller::Token(_, role)) if holds(role, needs) => Expect::Ok,
        (_, Caller::Token(..)) => Expect::Forbidden,
        _ => Expect::Unauthorized,
    }
}

/// Every route, with a request that succeeds for a caller who may use it. The log holds 3
/// preloaded entries and a published checkpoint of size 3.
const ROUTES: [(Method, &str, Needs); 15] = [
    (Method::POST, "/v1/entries", Needs::Append),
    (Method::GET, "/v1/entries/0", Needs::Read),
    (Method::GET, "/v1/entries/2?proof=1", Needs::Read),
    (
        Method::GET,
        "/v1/proof/inclusion?index=1&size=3",
        Needs::Nothing,
    ),
    (
        // The leaf hash of `preloaded(1)`, percent-encoded.
        Method::GET,
        "/v1/proof/inclusion/by-leaf-hash?leaf_hash=I%2BylghLz9BgxzL3nDVB5Ed3loRF8TaSvYidxFRanF5U%3D&size=3",
        Needs::Read,
    ),
    (
        Method::GET,
        "/v1/proof/consistency?old=1&size=3",
        Needs::Nothing,
    ),
    (Method::GET, "/v1/checkpoints/3", Needs::Audit),
    (Method::GET, "/checkpoint", Needs::Nothing),
    (Method::GET, "/tile/0/000.p/3", Needs::Nothing),
    (Method::GET, "/tile/entries/000.p/3", Needs::Read),
    (Method::GET, "/tile/entries/000.p/2", Needs::Read),
    (Method::GET, "/healthz", Needs::Nothing),
    (Method::GET, "/readyz", Needs::Nothing),
    (Method::GET, "/metrics", Needs::Admin),
    (Method::GET, "/openapi.json", Needs::Nothing),
];

async fn check_policy(auth: Auth, mode: Mode) {
    let server = TestServer::start(auth, fast_config(), 3).await;
    let mut failures = Vec::new();
    for (method, uri, needs) in ROUTES {
        for caller in CALLERS {
            let mut request = Request::builder().method(method.clone()).uri(uri);
            if let Some(value) = caller.authorization() {
                request = request.header(header::AUTHORIZATION, value);
            }
            let body = if method == Method::POST {
                Body::from(format!("auth probe {caller:?}"))
            } else {
                Body::empty()
            };
            let reply = server.call(request.body(body).unwrap()).await;
            let want = expected(needs, caller, mode);
            let context = format!("{mode:?} {method} {uri} as {caller:?} (want {want:?})");
            let outcome = match want {
                Expect::Ok if reply.status == StatusCode::OK => Ok(()),
                Expect::Ok => Err(format!(
                    "status {}, body {:?}",
                    reply.status,
                    String::from_utf8_lossy(&reply.body)
                )),
                Expect::Unauthorized => reply
                    .check_error(StatusCode::UNAUTHORIZED, "unauthorized")
                    .and_then(|_| match reply.headers.get(header::WWW_AUTHENTICATE) {
                        Some(v) if v == "Bearer" => Ok(()),
                        other => Err(format!("WWW-Authenticate {other:?}, want Bearer")),
                    }),
                Expect::Forbidden => reply
                    .check_error(StatusCode::FORBIDDEN, "forbidden")
                    .and_then(|message| {
                        let role = match needs {
                            Needs::Append => "append",
                            Needs::Read => "read",
                            Needs::Audit => "audit",
                            Needs::Admin => "admin",
                            Needs::Nothing => "none",
                        };
                        if message.contains(&format!("lacks the {role} role")) {
                            Ok(())
                        } else {
                            Err(format!("message {message:?} does not name the {role} role"))
                        }
                    }),
            };
            if let Err(e) = outcome {
                failures.push(format!("{context}: {e}"));
            }
        }
    }
    assert_no_failures("access policy", &failures);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_enforces_its_role() {
    check_policy(token_policy(false), Mode::Tokens { public_read: false }).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn public_read_opens_entries_but_still_rejects_bad_tokens() {
    check_policy(token_policy(true), Mode::Tokens { public_read: true }).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_auth_accepts_every_request() {
    check_policy(Auth::disabled(), Mode::NoAuth).await;
}

/// Reads `veritrail_auth_denied_total{reason="<reason>"}` from `/metrics` (0 if absent).
async fn denied(server: &TestServer, reason: &str) -> u64 {
    let reply = server
        .get_as("/metrics", Some(&format!("Bearer {ADMIN_TOKEN}")))
        .await
        .ok("metrics");
    let text = String::from_utf8(reply.body.to_vec()).unwrap();
    let prefix = format!("veritrail_auth_denied_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|value| value.trim().parse::<f64>().unwrap() as u64)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn denials_are_counted_in_metrics() {
    let server = TestServer::start(token_policy(false), fast_config(), 1).await;
    // The counter is process-wide and other tests run concurrently: it can only grow, so
    // check that each denial adds at least one.
    let cases = [
        ("missing_token", None),
        ("unknown_token", Some("Bearer vt_nope")),
        ("malformed_header", Some("Token abc")),
        ("missing_role", Some("Bearer vt_test_append")),
    ];
    for (reason, authorization) in cases {
        let before = denied(&server, reason).await;
        server
            .get_as("/v1/entries/0", authorization)
            .await
            .check_error(
                if reason == "missing_role" {
                    StatusCode::FORBIDDEN
                } else {
                    StatusCode::UNAUTHORIZED
                },
                if reason == "missing_role" {
                    "forbidden"
                } else {
                    "unauthorized"
                },
            )
            .unwrap();
        let after = denied(&server, reason).await;
        assert!(after > before, "{reason}: counter {before} -> {after}");
    }
    let reply = server
        .get_as("/metrics", Some(&format!("Bearer {ADMIN_TOKEN}")))
        .await
        .ok("metrics");
    let text = String::from_utf8(reply.body.to_vec()).unwrap();
    assert!(text.contains("veritrail_auth_denied_total"), "{text}");
    assert_eq!(
        reply.headers.get(header::CONTENT_TYPE).unwrap(),
        "text/plain; version=0.0.4"
    );
    server.stop().await;
}

/// An oversized append is refused for its missing role before its body is read: a client
/// without the `append` role learns nothing about the limits and costs no buffering.
#[tokio::test(flavor = "multi_thread")]
async fn access_is_checked_before_the_body_is_read() {
    let config = veritrail_server::ServerConfig {
        limits: veritrail_server::config::LimitsConfig {
            max_body_bytes: 4096,
            ..veritrail_server::config::LimitsConfig::default()
        },
        ..fast_config()
    };
    let server = TestServer::start(token_policy(false), config, 1).await;
    let tree = server.tree();
    let cases = [
        (None, StatusCode::UNAUTHORIZED, "unauthorized"),
        (
            Some("Bearer vt_nope"),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Some("Bearer vt_test_read"),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            Some("Bearer vt_test_append"),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
    ];
    for (authorization, status, code) in cases {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri("/v1/entries")
            .header(header::CONTENT_TYPE, "application/octet-stream");
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let reply = server
            .call(request.body(Body::from(vec![b'z'; 10_000])).unwrap())
            .await;
        reply.assert_error(status, code, &format!("{authorization:?}"));
        assert_eq!(server.tree(), tree);
    }
    server.stop().await;
}
