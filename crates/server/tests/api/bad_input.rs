//! Malformed input gets the exact 4xx JSON error and never changes the tree.

use axum::http::StatusCode;
use veritrail_ledger::proof::{verify_consistency, verify_inclusion};
use veritrail_ledger::{Hash, TreeHead, leaf_hash};
use veritrail_server::ServerConfig;
use veritrail_server::config::LimitsConfig;

use crate::{BATCH, Reply, TestServer, assert_no_failures, batch_body, fast_config, preloaded};

/// Entries preloaded into the logs of these tests (a published checkpoint covers them).
const SIZE: u64 = 5;

/// Checks a refusal and that the tree did not change; collects a failure description.
fn refused(
    failures: &mut Vec<String>,
    server: &TestServer,
    before: TreeHead,
    context: &str,
    reply: &Reply,
    status: StatusCode,
    code: &str,
) {
    if let Err(e) = reply.check_error(status, code) {
        failures.push(format!("{context}: {e}"));
    }
    let after = server.tree();
    if after != before {
        failures.push(format!(
            "{context}: tree changed from {before:?} to {after:?}"
        ));
    }
}

fn proof_hashes(value: &serde_json::Value) -> Vec<Hash> {
    value["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::from_base64(h.as_str().unwrap()).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn single_entries_must_be_1_to_65535_bytes() {
    let server = TestServer::open(SIZE).await;
    let before = server.tree();
    let mut failures = Vec::new();

    let reply = server.append_one(&[]).await;
    refused(
        &mut failures,
        &server,
        before,
        "empty entry",
        &reply,
        StatusCode::BAD_REQUEST,
        "invalid_entry",
    );
    let reply = server.append_one(&vec![b'x'; 65_536]).await;
    refused(
        &mut failures,
        &server,
        before,
        "65536-byte entry",
        &reply,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    if let Ok(message) = reply.check_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
        && !message.contains("65535")
    {
        failures.push(format!(
            "65536-byte entry: message {message:?} lacks the limit"
        ));
    }
    let reply = server.append_one(&vec![b'x'; 10 * 65_536]).await;
    refused(
        &mut failures,
        &server,
        before,
        "640 KiB entry",
        &reply,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    assert_no_failures("single entries", &failures);

    // The boundary: exactly 65535 bytes is one entry.
    let largest = vec![b'y'; 65_535];
    let reply = server.append_one(&largest).await.ok("65535-byte entry");
    assert_eq!(reply.json()["index"], SIZE);
    assert_eq!(server.ledger.entry(SIZE).unwrap(), largest);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_over_max_body_bytes_are_413() {
    let config = ServerConfig {
        limits: LimitsConfig {
            max_body_bytes: 4096,
            ..LimitsConfig::default()
        },
        ..fast_config()
    };
    let server = TestServer::start(veritrail_server::auth::Auth::disabled(), config, SIZE).await;
    let before = server.tree();
    let mut failures = Vec::new();
    let cases: [(&str, &str, Vec<u8>); 3] = [
        (
            "single entry of 4097 bytes",
            "application/octet-stream",
            vec![b'a'; 4097],
        ),
        (
            "batch of 3 entries, 4506 bytes",
            BATCH,
            batch_body(&[vec![b'b'; 1500], vec![b'c'; 1500], vec![b'd'; 1500]]),
        ),
        (
            "single entry of 60000 bytes",
            "application/octet-stream",
            vec![b'e'; 60_000],
        ),
    ];
    for (name, content_type, body) in cases {
        let reply = server
            .post_with("/v1/entries", content_type, &[], body)
            .await;
        refused(
            &mut failures,
            &server,
            before,
            name,
            &reply,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        );
        if let Ok(message) = reply.check_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            && message != "request body exceeds 4096 bytes"
        {
            failures.push(format!("{name}: message {message:?}"));
        }
    }
    assert_no_failures("body limit", &failures);
    // Exactly at the limit is accepted.
    let reply = server
        .post_with(
            "/v1/entries",
            BATCH,
            &[],
            batch_body(&[vec![b'f'; 2046], vec![b'g'; 2046]]),
        )
        .await
        .ok("4096-byte batch");
    assert_eq!(reply.json().as_array().unwrap().len(), 2);
    assert_eq!(server.tree().size, SIZE + 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_batches_are_refused() {
    let server = TestServer::open(SIZE).await;
    let before = server.tree();
    let mut failures = Vec::new();
    let too_many: Vec<Vec<u8>> = (0..4097u32).map(|i| i.to_be_bytes().to_vec()).collect();
    let cases: [(&str, Vec<u8>); 9] = [
        ("zero entries (empty body)", vec![]),
        ("truncated length prefix", vec![0x00]),
        (
            "truncated length prefix after an entry",
            vec![0x00, 0x03, b'a', b'b', b'c', 0x00],
        ),
        ("truncated entry", vec![0x00, 0x05, b'a', b'b']),
        (
            "entry announcing 65535 bytes, 3 present",
            vec![0xff, 0xff, b'a', b'b', b'c'],
        ),
        ("a lone empty entry", vec![0x00, 0x00]),
        (
            "an empty entry inside",
            vec![0x00, 0x01, b'a', 0x00, 0x00, 0x00, 0x01, b'b'],
        ),
        (
            "an empty entry last",
            vec![0x00, 0x01, b'a', 0x00, 0x01, b'b', 0x00, 0x00],
        ),
        (
            "4097 entries (max_batch_entries is 4096)",
            batch_body(&too_many),
        ),
    ];
    for (name, body) in cases {
        let reply = server.post_with("/v1/entries", BATCH, &[], body).await;
        refused(
            &mut failures,
            &server,
            before,
            name,
            &reply,
            StatusCode::BAD_REQUEST,
            "invalid_entry",
        );
    }
    assert_no_failures("malformed batches", &failures);

    // The boundary: 4096 entries are one request, appended in order.
    let reply = server
        .post_with("/v1/entries", BATCH, &[], batch_body(&too_many[..4096]))
        .await
        .ok("4096 entries");
    let appended = reply.json();
    let appended = appended.as_array().unwrap();
    assert_eq!(appended.len(), 4096);
    for (i, item) in appended.iter().enumerate() {
        assert_eq!(item["index"], SIZE + i as u64);
        assert_eq!(
            item["leaf_hash"].as_str().unwrap(),
            leaf_hash(&too_many[i]).to_base64()
        );
    }
    assert_eq!(server.tree().size, SIZE + 4096);
    server.stop().await;
}

/// Values that are not canonical decimal u64s, as they appear in a URI.
const BAD_NUMBERS: [&str; 14] = [
    "abc",
    "-1",
    "+1",
    "01",
    "00",
    "1.0",
    "1e3",
    "0x1",
    "%201",
    "1%20",
    "%E2%82%AC",
    "18446744073709551616",
    "99999999999999999999999999",
    "340282366920938463463374607431768211456",
];

#[tokio::test(flavor = "multi_thread")]
async fn non_canonical_numbers_are_refused_on_every_parameterised_route() {
    let server = TestServer::open(SIZE).await;
    let before = server.tree();
    let known = leaf_hash(&preloaded(0)).to_base64().replace('+', "%2B");
    let templates = [
        ("/v1/entries/{}".to_owned(), "index", true),
        ("/v1/entries/{}?proof=1".to_owned(), "index", true),
        ("/v1/checkpoints/{}".to_owned(), "size", true),
        (
            "/v1/proof/inclusion?index={}&size=5".to_owned(),
            "index",
            false,
        ),
        (
            "/v1/proof/inclusion?index=0&size={}".to_owned(),
            "size",
            false,
        ),
        (
            "/v1/proof/inclusion?size={}&index=0".to_owned(),
            "size",
            false,
        ),
        (
            format!("/v1/proof/inclusion/by-leaf-hash?leaf_hash={known}&size={{}}"),
            "size",
            false,
        ),
        (
            "/v1/proof/consistency?old={}&size=5".to_owned(),
            "old",
            false,
        ),
        (
            "/v1/proof/consistency?old=1&size={}".to_owned(),
            "size",
            false,
        ),
        (
            "/v1/proof/consistency?size={}&old=1".to_owned(),
            "size",
            false,
        ),
    ];
    let mut failures = Vec::new();
    for (template, name, in_path) in &templates {
        // An empty query value is not a number either; an empty path segment is another route.
        let empty: &[&str] = if *in_path { &[] } else { &[""] };
        for value in BAD_NUMBERS.iter().chain(empty) {
            let uri = template.replace("{}", value);
            let reply = server.get(&uri).await;
            refused(
                &mut failures,
                &server,
                before,
                &uri,
                &reply,
                StatusCode::BAD_REQUEST,
                "invalid_parameter",
            );
            if let Ok(message) = reply.check_error(StatusCode::BAD_REQUEST, "invalid_parameter")
                && !message.starts_with(&format!("invalid {name}:"))
            {
                failures.push(format!("{uri}: message {message:?} does not name {name}"));
            }
        }
    }
    // The append route's only parameter is not a number; its bad values are below.
    assert_no_failures("non-canonical numbers", &failures);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_range_indices_and_sizes() {
    let server = TestServer::open(SIZE).await;
    let before = server.tree();
    let max = u64::MAX;
    let cases: Vec<(String, StatusCode, &str)> = vec![
        // Entries beyond the log.
        ("/v1/entries/5".into(), StatusCode::NOT_FOUND, "not_found"),
        (
            format!("/v1/entries/{max}"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "/v1/entries/5?proof=1".into(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            format!("/v1/entries/{max}?proof=true"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        // Checkpoints never published.
        (
            "/v1/checkpoints/0".into(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "/v1/checkpoints/4".into(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "/v1/checkpoints/6".into(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            format!("/v1/checkpoints/{max}"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        // Inclusion.
        (
            "/v1/proof/inclusion?index=5&size=5".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "index_out_of_range",
        ),
        (
            "/v1/proof/inclusion?index=5".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "index_out_of_range",
        ),
        (
            format!("/v1/proof/inclusion?index={max}&size=5"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "index_out_of_range",
        ),
        (
            "/v1/proof/inclusion?index=0&size=0".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "index_out_of_range",
        ),
        (
            "/v1/proof/inclusion?index=3&size=2".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "index_out_of_range",
        ),
        (
            "/v1/proof/inclusion?index=0&size=6".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "size_out_of_range",
        ),
        (
            format!("/v1/proof/inclusion?index=0&size={max}"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "size_out_of_range",
        ),
        // Consistency: `old` beyond `size` asks about a tree the proof's tree does not hold.
        (
            "/v1/proof/consistency?old=6&size=5".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "size_out_of_range",
        ),
        (
            "/v1/proof/consistency?old=6".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "size_out_of_range",
        ),
        (
            format!("/v1/proof/consistency?old={max}&size=5"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "size_out_of_range",
        ),
        (
            "/v1/proof/consistency?old=0&size=5".into(),
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
        ),
        (
            "/v1/proof/consistency?old=0&size=0".into(),
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
        ),
        (
            "/v1/proof/consistency?size=5".into(),
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
        ),
        (
            "/v1/proof/consistency?old=1&size=6".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "size_out_of_range",
        ),
        (
            format!("/v1/proof/consistency?old=1&size={max}"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "size_out_of_range",
        ),
        (
            format!("/v1/proof/consistency?old={max}&size={max}"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "size_out_of_range",
        ),
    ];
    let mut failures = Vec::new();
    for (uri, status, code) in &cases {
        let reply = server.get(uri).await;
        refused(&mut failures, &server, before, uri, &reply, *status, code);
    }
    assert_no_failures("out of range", &failures);

    // The edges that are valid: the last index, old == size, and defaults to the latest
    // published size.
    let tree = server.tree();
    let reply = server
        .get("/v1/proof/inclusion?index=4&size=5")
        .await
        .ok("last index");
    let body = reply.json();
    assert_eq!(
        (body["index"].as_u64(), body["tree_size"].as_u64()),
        (Some(4), Some(5))
    );
    verify_inclusion(&leaf_hash(&preloaded(4)), 4, &tree, &proof_hashes(&body)).unwrap();
    let body = server
        .get("/v1/proof/inclusion?index=0")
        .await
        .ok("default size")
        .json();
    assert_eq!(body["tree_size"], SIZE);
    verify_inclusion(&leaf_hash(&preloaded(0)), 0, &tree, &proof_hashes(&body)).unwrap();
    let body = server
        .get("/v1/proof/consistency?old=5&size=5")
        .await
        .ok("old == size")
        .json();
    assert_eq!(body["proof"].as_array().unwrap().len(), 0);
    let body = server
        .get("/v1/proof/consistency?old=2")
        .await
        .ok("old 2, default size")
        .json();
    assert_eq!(
        (body["old"].as_u64(), body["tree_size"].as_u64()),
        (Some(2), Some(5))
    );
    let old = TreeHead::new(2, server.ledger.root_at(2).unwrap());
    verify_consistency(&old, &tree, &proof_hashes(&body)).unwrap();
    let body = server
        .get("/v1/entries/4?proof=1")
        .await
        .ok("entry with proof")
        .json();
    assert_eq!(body["tree_size"], SIZE);
    let reply = server.get("/v1/entries/4").await.ok("entry");
    assert_eq!(reply.body.as_ref(), preloaded(4).as_slice());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn leaf_hash_lookups() {
    let server = TestServer::open(SIZE).await;
    let before = server.tree();
    let known = leaf_hash(&preloaded(3)).to_base64().replace('+', "%2B");
    let unknown = leaf_hash(b"never appended").to_base64().replace('+', "%2B");
    let by_hash = "/v1/proof/inclusion/by-leaf-hash";
    let cases: Vec<(String, StatusCode, &str)> = vec![
        (
            format!("{by_hash}?leaf_hash={unknown}&size=5"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        // Present in the tree, but not in the tree of size 3.
        (
            format!("{by_hash}?leaf_hash={known}&size=3"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            format!("{by_hash}?leaf_hash={known}&size=6"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "size_out_of_range",
        ),
        (
            format!("{by_hash}?leaf_hash=not-base64&size=5"),
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
        ),
        (
            // 31 bytes.
            format!("{by_hash}?leaf_hash=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA%3D%3D&size=5"),
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
        ),
        (
            // Non-zero bits after the 256th: not the canonical encoding of any hash.
            format!("{by_hash}?leaf_hash=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB%3D&size=5"),
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
        ),
        (
            format!("{by_hash}?leaf_hash={known}&index=3&size=5"),
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
        ),
        (
            format!("{by_hash}?size=5"),
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
        ),
        (by_hash.into(), StatusCode::BAD_REQUEST, "invalid_parameter"),
        // The route by index no longer takes a leaf hash, alone or with an index.
        (
            format!("/v1/proof/inclusion?leaf_hash={known}&size=5"),
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
        ),
        (
            format!("/v1/proof/inclusion?index=3&leaf_hash={known}"),
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
        ),
        (
            "/v1/proof/inclusion?size=5".into(),
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
        ),
        (
            "/v1/proof/inclusion".into(),
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
        ),
    ];
    let mut failures = Vec::new();
    for (uri, status, code) in &cases {
        let reply = server.get(uri).await;
        refused(&mut failures, &server, before, uri, &reply, *status, code);
    }
    assert_no_failures("leaf hash lookups", &failures);
    let moved = server
        .get(&format!("/v1/proof/inclusion?leaf_hash={known}"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_parameter", "moved");
    assert!(
        moved.contains("/v1/proof/inclusion/by-leaf-hash"),
        "{moved}"
    );
    let plain = leaf_hash(&preloaded(3)).to_base64();
    let encoded = plain
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    for form in [known, encoded] {
        let body = server
            .get(&format!("{by_hash}?leaf_hash={form}&size=5"))
            .await
            .ok("leaf hash")
            .json();
        assert_eq!(body["index"], 3);
        verify_inclusion(&leaf_hash(&preloaded(3)), 3, &before, &proof_hashes(&body)).unwrap();
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_duplicate_and_malformed_query_parameters() {
    let server = TestServer::open(SIZE).await;
    let before = server.tree();
    let long = format!("/v1/proof/inclusion?index=0&size=5&{}", "x".repeat(1100));
    let gets = [
        "/v1/entries/0?bogus=1",
        "/v1/entries/0?index=0",
        "/v1/entries/0?proof=1&proof=1",
        "/v1/entries/0?proof=yes",
        "/v1/entries/0?proof=2",
        "/v1/proof/inclusion?index=0&size=5&old=1",
        "/v1/proof/inclusion?index=0&size=5&Size=5",
        "/v1/proof/inclusion?index=0&index=0&size=5",
        "/v1/proof/inclusion?index=0&size=5&size=5",
        "/v1/proof/inclusion?index=%zz&size=5",
        "/v1/proof/inclusion?index=%2&size=5",
        "/v1/proof/inclusion?index=%FF&size=5",
        "/v1/proof/consistency?old=1&size=5&index=0",
        "/v1/proof/consistency?old=1&old=1&size=5",
        "/v1/proof/consistency?old=1&size=5&size=4",
        long.as_str(),
    ];
    let mut failures = Vec::new();
    for uri in gets {
        let reply = server.get(uri).await;
        refused(
            &mut failures,
            &server,
            before,
            uri,
            &reply,
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
        );
    }
    let posts = [
        "/v1/entries?bogus=1",
        "/v1/entries?wait=published&bogus",
        "/v1/entries?wait=published&wait=published",
        "/v1/entries?wait=published&Wait=published",
        "/v1/entries?wait=%zz",
    ];
    for uri in posts {
        let reply = server
            .post_with(uri, "application/octet-stream", &[], "not appended")
            .await;
        refused(
            &mut failures,
            &server,
            before,
            &format!("POST {uri}"),
            &reply,
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
        );
    }
    assert_no_failures("query parameters", &failures);
    // Routes that take no parameters ignore a query string, like a static file server (tile
    // clients may add cache-busting parameters).
    for uri in [
        "/checkpoint?x=1",
        "/tile/0/000.p/5?x=1",
        "/healthz?x",
        "/openapi.json?x=1",
    ] {
        server.get(uri).await.ok(uri);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_must_be_published() {
    let server = TestServer::open(SIZE).await;
    let before = server.tree();
    let mut failures = Vec::new();
    for value in [
        "",
        "durable",
        "Published",
        "published%00",
        "1",
        "true",
        "published,",
    ] {
        let uri = format!("/v1/entries?wait={value}");
        let reply = server
            .post_with(&uri, "application/octet-stream", &[], "not appended")
            .await;
        refused(
            &mut failures,
            &server,
            before,
            &uri,
            &reply,
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
        );
        if let Ok(message) = reply.check_error(StatusCode::BAD_REQUEST, "invalid_parameter")
            && !message.starts_with("invalid wait:")
        {
            failures.push(format!("{uri}: message {message:?}"));
        }
    }
    assert_no_failures("wait", &failures);
    // The one valid value answers with a receipt that verifies offline.
    let entry = b"waited for publication";
    let body = server
        .post_with(
            "/v1/entries?wait=published",
            "application/octet-stream",
            &[],
            entry.to_vec(),
        )
        .await
        .ok("wait=published")
        .json();
    assert_eq!(body["index"], SIZE);
    let receipt = veritrail_ledger::receipt::Receipt::from_bytes(
        body["receipt"].as_str().unwrap().as_bytes(),
    )
    .unwrap();
    let checkpoint = receipt
        .verify(entry, crate::ORIGIN, server.ledger.verifier())
        .unwrap();
    assert!(checkpoint.tree.size > SIZE);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_paths_are_json_404() {
    let server = TestServer::open(SIZE).await;
    let before = server.tree();
    let mut failures = Vec::new();
    for uri in [
        "/",
        "/v1",
        "/v1/",
        "/v2/entries/0",
        "/v1/entries/",
        "/v1/entries/0/",
        "/v1/entries/0/proof",
        "/v1/proof",
        "/v1/proof/",
        "/v1/proof/audit",
        "/v1/checkpoints",
        "/v1/checkpoints/",
        "/v1/checkpoints/5/x",
        "/checkpoint/",
        "/checkpoints",
        "/CHECKPOINT",
        "/tile",
        "/tile/",
        "/healthz/",
        "/metrics/x",
        "/openapi.yaml",
        "/%FF",
    ] {
        let reply = server.get(uri).await;
        refused(
            &mut failures,
            &server,
            before,
            uri,
            &reply,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
    let reply = server
        .post_with("/v1/entry", "application/octet-stream", &[], "x")
        .await;
    refused(
        &mut failures,
        &server,
        before,
        "POST /v1/entry",
        &reply,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_no_failures("unknown paths", &failures);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_tile_paths_are_json_404() {
    let server = TestServer::open(SIZE).await;
    let before = server.tree();
    let mut failures = Vec::new();
    for path in [
        // Widths.
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/01",
        "tile/0/000.p/",
        "tile/0/000.p/5x",
        "tile/0/000.p/+5",
        "tile/0/000.p/-5",
        "tile/0/000.p/18446744073709551616",
        "tile/entries/000.p/0",
        "tile/entries/000.p/256",
        // Indices.
        "tile/0/0005",
        "tile/0/05",
        "tile/0/5",
        "tile/0/x000/005",
        "tile/0/x0/005",
        "tile/0/000/",
        "tile/0/-01",
        "tile/0/abc",
        "tile/0/",
        "tile/0/x018/x446/x744/x073/x709/x551/616",
        "tile/0/x999/x999/x999/x999/x999/x999/x999/999",
        "tile/entries/0005",
        "tile/entries/x000/005",
        // Levels.
        "tile/64/000",
        "tile/64/000.p/1",
        "tile/255/000",
        "tile/256/000",
        "tile/00/000",
        "tile/01/000",
        "tile/+0/000",
        "tile/-1/000",
        "tile//000",
        "tile/entry/000",
        "tile/x/000",
        // Valid paths beyond the tree of 5 entries.
        "tile/0/000",
        "tile/0/000.p/6",
        "tile/0/000.p/255",
        "tile/0/001",
        "tile/0/001.p/1",
        "tile/0/x018/x446/x744/x073/x709/x551/615",
        "tile/0/x018/x446/x744/x073/x709/x551/615.p/1",
        "tile/1/000.p/1",
        "tile/7/000.p/1",
        "tile/63/000",
        "tile/entries/000",
        "tile/entries/000.p/6",
        "tile/entries/001.p/1",
        "tile/entries/x018/x446/x744/x073/x709/x551/615",
    ] {
        let reply = server.get(&format!("/{path}")).await;
        refused(
            &mut failures,
            &server,
            before,
            path,
            &reply,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
    assert_no_failures("bad tile paths", &failures);

    // The valid ones: the partial tile and bundle, and shorter prefixes of them.
    let tile = server.get("/tile/0/000.p/5").await.ok("tile");
    assert_eq!(tile.body.len(), 5 * 32);
    for (i, hash) in tile.body.chunks_exact(32).enumerate() {
        assert_eq!(hash, leaf_hash(&preloaded(i as u64)).as_bytes());
    }
    assert_eq!(
        tile.headers.get("cache-control").unwrap(),
        "public, max-age=60"
    );
    let shorter = server.get("/tile/0/000.p/2").await.ok("shorter tile");
    assert_eq!(shorter.body, tile.body.slice(..64));
    let bundle = server.get("/tile/entries/000.p/5").await.ok("bundle");
    let entries = veritrail_ledger::bundle::decode_bundle(&bundle.body, 256).unwrap();
    let want: Vec<Vec<u8>> = (0..SIZE).map(preloaded).collect();
    assert_eq!(entries, want.iter().map(Vec::as_slice).collect::<Vec<_>>());
    server.stop().await;
}
