//! Server bugs found while writing these tests, each pinned.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use veritrail_ledger::leaf_hash;
use veritrail_server::auth::Auth;

use crate::{BATCH, TestServer, batch_body, fast_config, token_policy};

/// The batch content type was matched case-insensitively (and with parameters) when parsing
/// the body, but case-sensitively by prefix when shaping the answer: a batch sent as
/// `Application/X-Veritrail-Entries` was appended whole but answered with its last entry
/// only, and a single entry sent as `application/x-veritrail-entriesx` was answered as a list.
#[tokio::test(flavor = "multi_thread")]
async fn the_answer_has_the_shape_of_the_request() {
    let server = TestServer::open(0).await;
    let entries = [b"first".to_vec(), b"second".to_vec()];
    for content_type in [
        "Application/X-Veritrail-Entries",
        "application/x-veritrail-entries; charset=binary",
        "application/x-veritrail-entries ;v=1",
    ] {
        let start = server.tree().size;
        let reply = server
            .post_with("/v1/entries", content_type, &[], batch_body(&entries))
            .await
            .ok(content_type)
            .json();
        let items = reply
            .as_array()
            .unwrap_or_else(|| panic!("{content_type}: not a list: {reply}"));
        assert_eq!(items.len(), 2, "{content_type}");
        for (i, (item, entry)) in items.iter().zip(&entries).enumerate() {
            assert_eq!(item["index"], start + i as u64, "{content_type}");
            assert_eq!(
                item["leaf_hash"],
                leaf_hash(entry).to_base64(),
                "{content_type}"
            );
        }
    }
    // Not the batch type: one raw entry, answered as one object.
    for content_type in [
        "application/x-veritrail-entriesx",
        "application/octet-stream",
        "text/plain",
    ] {
        let body = format!("raw entry sent as {content_type}");
        let start = server.tree().size;
        let reply = server
            .post_with("/v1/entries", content_type, &[], body.clone())
            .await
            .ok(content_type)
            .json();
        assert!(reply.is_object(), "{content_type}: {reply}");
        assert_eq!(reply["index"], start, "{content_type}");
        assert_eq!(server.ledger.entry(start).unwrap(), body.as_bytes());
    }
    server.stop().await;
}

/// A 401 must carry `WWW-Authenticate` (RFC 9110 section 15.5.2); it had none.
#[tokio::test(flavor = "multi_thread")]
async fn unauthorized_answers_name_the_bearer_scheme() {
    let server = TestServer::start(token_policy(false), fast_config(), 1).await;
    for authorization in [None, Some("Bearer wrong"), Some("Basic dXNlcjpwYXNz")] {
        let reply = server.get_as("/v1/entries/0", authorization).await;
        reply.assert_error(StatusCode::UNAUTHORIZED, "unauthorized", "401");
        assert_eq!(
            reply.headers.get(header::WWW_AUTHENTICATE).unwrap(),
            "Bearer",
            "{authorization:?}"
        );
    }
    // Other errors do not.
    let reply = server
        .get_as("/v1/entries/0", Some("Bearer vt_test_append"))
        .await;
    reply.assert_error(StatusCode::FORBIDDEN, "forbidden", "403");
    assert!(reply.headers.get(header::WWW_AUTHENTICATE).is_none());
    server.stop().await;
}

/// With `--no-auth` every request is accepted, but a malformed `Authorization` header was
/// refused (401) on the entry routes, and only there.
#[tokio::test(flavor = "multi_thread")]
async fn no_auth_ignores_malformed_authorization_headers() {
    let server = TestServer::start(Auth::disabled(), fast_config(), 1).await;
    for uri in [
        "/v1/entries/0",
        "/tile/entries/000.p/1",
        "/v1/checkpoints/1",
    ] {
        for authorization in ["Basic dXNlcjpwYXNz", "Bearer ", "Bearer unknown"] {
            server
                .get_as(uri, Some(authorization))
                .await
                .ok(&format!("{uri} with {authorization:?}"));
        }
    }
    server.stop().await;
}

/// Every error is JSON, but axum's own answers were not: a known path with another method
/// got an empty 405, and a path segment that does not percent-decode to UTF-8 a plain-text
/// 400.
#[tokio::test(flavor = "multi_thread")]
async fn framework_errors_are_json_too() {
    let server = TestServer::open(1).await;
    let tree = server.tree();
    for (method, uri, allow) in [
        (Method::GET, "/v1/entries", "POST"),
        (Method::PUT, "/v1/entries", "POST"),
        (Method::DELETE, "/v1/entries", "POST"),
        (Method::POST, "/v1/entries/0", "GET,HEAD"),
        (Method::POST, "/checkpoint", "GET,HEAD"),
        (Method::PUT, "/tile/0/000.p/1", "GET,HEAD"),
        (
            Method::POST,
            "/v1/proof/inclusion?index=0&size=1",
            "GET,HEAD",
        ),
        (Method::DELETE, "/metrics", "GET,HEAD"),
    ] {
        let request = Request::builder()
            .method(method.clone())
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(Body::from("not an entry"))
            .unwrap();
        let reply = server.call(request).await;
        reply.assert_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            &format!("{method} {uri}"),
        );
        assert_eq!(
            reply.headers.get(header::ALLOW).unwrap(),
            allow,
            "{method} {uri}"
        );
    }
    for (uri, status, code, name) in [
        (
            "/v1/entries/%FF",
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "index",
        ),
        (
            "/v1/entries/%C0%80",
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "index",
        ),
        (
            "/v1/entries/%FF?proof=1",
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "index",
        ),
        (
            "/v1/checkpoints/%FF",
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "size",
        ),
        ("/tile/0/%FF", StatusCode::NOT_FOUND, "not_found", "tile"),
        (
            "/tile/entries/%FE%FF",
            StatusCode::NOT_FOUND,
            "not_found",
            "tile",
        ),
    ] {
        let message = server.get(uri).await.assert_error(status, code, uri);
        assert!(message.contains(name), "{uri}: {message}");
    }
    assert_eq!(server.tree(), tree);
    server.stop().await;
}

/// An `Idempotency-Key` was bound to the body bytes only, not to how they are read: a raw
/// entry retried as a batch of the same bytes (or the reverse) was "replayed" with the
/// original indices but the retry's entries, so the answer named leaf hashes that are not in
/// the log at those indices. It is bound to the entries now: the same entries replay whatever
/// the encoding, other entries conflict.
#[tokio::test(flavor = "multi_thread")]
async fn an_idempotency_key_is_bound_to_the_entries_not_the_bytes() {
    let server = TestServer::open(0).await;
    let key = "idempotency-key";
    // Raw entry whose bytes happen to be a valid batch of two entries.
    let raw = batch_body(&[b"a".as_slice(), b"bc".as_slice()]);
    let first = server
        .post_with(
            "/v1/entries",
            "application/octet-stream",
            &[(key, b"k1".as_slice())],
            raw.clone(),
        )
        .await
        .ok("raw")
        .json();
    assert_eq!(first["index"], 0);
    let tree = server.tree();
    let reply = server
        .post_with(
            "/v1/entries",
            BATCH,
            &[(key, b"k1".as_slice())],
            raw.clone(),
        )
        .await;
    reply.assert_error(
        StatusCode::CONFLICT,
        "idempotency_conflict",
        "the same bytes as a batch",
    );
    assert_eq!(server.tree(), tree);

    // A batch first, retried as one raw entry of the same bytes.
    let batch = batch_body(&[b"x".as_slice()]);
    server
        .post_with(
            "/v1/entries",
            BATCH,
            &[(key, b"k2".as_slice())],
            batch.clone(),
        )
        .await
        .ok("batch");
    let tree = server.tree();
    let reply = server
        .post_with(
            "/v1/entries",
            "application/octet-stream",
            &[(key, b"k2".as_slice())],
            batch,
        )
        .await;
    reply.assert_error(
        StatusCode::CONFLICT,
        "idempotency_conflict",
        "the same bytes as a raw entry",
    );
    assert_eq!(server.tree(), tree);

    // The same entry, raw then as a batch of one: the same request, replayed.
    let single = server
        .post_with(
            "/v1/entries",
            "application/octet-stream",
            &[(key, b"k3".as_slice())],
            "y",
        )
        .await
        .ok("raw y")
        .json();
    let tree = server.tree();
    let replay = server
        .post_with(
            "/v1/entries",
            BATCH,
            &[(key, b"k3".as_slice())],
            batch_body(&[b"y".as_slice()]),
        )
        .await
        .ok("y as a batch")
        .json();
    assert_eq!(replay, serde_json::json!([single]));
    assert_eq!(server.tree(), tree);
    server.stop().await;
}
