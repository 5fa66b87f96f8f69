//! `Idempotency-Key`: a retry gets the original indices and appends nothing; another body with
//! the same key is a conflict; malformed keys are refused before anything is appended.

use axum::http::StatusCode;
use veritrail_ledger::leaf_hash;

use crate::{BATCH, TestServer, assert_no_failures, batch_body};

const KEY: &str = "idempotency-key";

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_returns_the_same_index_and_appends_once() {
    let server = TestServer::open(2).await;
    let entry = b"charge card 42".to_vec();
    let headers: [(&str, &[u8]); 1] = [(KEY, b"retry-1")];
    let first = server
        .post_with(
            "/v1/entries",
            "application/octet-stream",
            &headers,
            entry.clone(),
        )
        .await
        .ok("first")
        .json();
    assert_eq!(first["index"], 2);
    let after_first = server.tree();
    assert_eq!(after_first.size, 3);
    for attempt in 0..3 {
        let retry = server
            .post_with(
                "/v1/entries",
                "application/octet-stream",
                &headers,
                entry.clone(),
            )
            .await
            .ok("retry")
            .json();
        assert_eq!(retry, first, "attempt {attempt}");
        assert_eq!(server.tree(), after_first, "attempt {attempt}");
    }
    // A retry may ask for the receipt the first attempt did not wait for.
    let published = server
        .post_with(
            "/v1/entries?wait=published",
            "application/octet-stream",
            &headers,
            entry.clone(),
        )
        .await
        .ok("retry with wait=published")
        .json();
    assert_eq!(published["index"], 2);
    assert!(published["receipt"].is_string());
    assert_eq!(server.tree(), after_first);
    assert_eq!(server.ledger.entry(2).unwrap(), entry);

    // The same body without a key, or with another key, appends again.
    let other = server
        .post_with(
            "/v1/entries",
            "application/octet-stream",
            &[(KEY, b"retry-2".as_slice())],
            entry.clone(),
        )
        .await
        .ok("other key")
        .json();
    assert_eq!(other["index"], 3);
    let plain = server.append_one(&entry).await.ok("no key").json();
    assert_eq!(plain["index"], 4);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_retries_return_the_same_indices() {
    let server = TestServer::open(1).await;
    let entries = [b"a".to_vec(), b"bb".to_vec(), b"ccc".to_vec()];
    let headers: [(&str, &[u8]); 1] = [(KEY, b"batch-1")];
    let first = server
        .post_with("/v1/entries", BATCH, &headers, batch_body(&entries))
        .await
        .ok("first")
        .json();
    let indices: Vec<u64> = first
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indices, [1, 2, 3]);
    let tree = server.tree();
    let retry = server
        .post_with("/v1/entries", BATCH, &headers, batch_body(&entries))
        .await
        .ok("retry")
        .json();
    assert_eq!(retry, first);
    assert_eq!(server.tree(), tree);
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(
            first[i]["leaf_hash"].as_str().unwrap(),
            leaf_hash(entry).to_base64()
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_retries_append_once() {
    let server = std::sync::Arc::new(TestServer::open(0).await);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            server
                .post_with(
                    "/v1/entries",
                    "application/octet-stream",
                    &[(KEY, b"concurrent".as_slice())],
                    "exactly once",
                )
                .await
                .ok("concurrent retry")
                .json()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap()["index"], 0);
    }
    assert_eq!(server.tree().size, 1);
    let server = std::sync::Arc::into_inner(server).unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_key_with_another_body_is_a_conflict() {
    let server = TestServer::open(1).await;
    let headers: [(&str, &[u8]); 1] = [(KEY, b"conflict")];
    server
        .post_with(
            "/v1/entries",
            "application/octet-stream",
            &headers,
            "first body",
        )
        .await
        .ok("first");
    let tree = server.tree();
    let mut failures = Vec::new();
    let bodies: [(&str, Vec<u8>); 3] = [
        ("application/octet-stream", b"second body".to_vec()),
        ("application/octet-stream", b"first body ".to_vec()),
        (BATCH, batch_body(&[b"first body".as_slice(), b"more"])),
    ];
    for (content_type, body) in bodies {
        let reply = server
            .post_with("/v1/entries", content_type, &headers, body)
            .await;
        if let Err(e) = reply.check_error(StatusCode::CONFLICT, "idempotency_conflict") {
            failures.push(format!("{content_type}: {e}"));
        }
        if server.tree() != tree {
            failures.push(format!("{content_type}: tree changed"));
        }
    }
    assert_no_failures("conflicts", &failures);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_keys_are_refused() {
    let server = TestServer::open(1).await;
    let tree = server.tree();
    let long = vec![b'k'; 256];
    let keys: [(&str, &[u8]); 6] = [
        ("empty", b""),
        ("inner space", b"has space"),
        ("tab", b"a\tb"),
        ("256 characters", &long),
        ("non-ASCII", "clé".as_bytes()),
        ("DEL-free obs-text", &[0x80, 0x81]),
    ];
    let mut failures = Vec::new();
    for (name, key) in keys {
        let reply = server
            .post_with(
                "/v1/entries",
                "application/octet-stream",
                &[(KEY, key)],
                "x",
            )
            .await;
        match reply.check_error(StatusCode::BAD_REQUEST, "invalid_parameter") {
            Ok(message) if message.starts_with("invalid Idempotency-Key:") => {}
            Ok(message) => failures.push(format!("{name}: message {message:?}")),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
        if server.tree() != tree {
            failures.push(format!("{name}: tree changed"));
        }
    }
    assert_no_failures("malformed keys", &failures);
    // 255 visible characters are fine.
    server
        .post_with(
            "/v1/entries",
            "application/octet-stream",
            &[(KEY, [b'k'; 255].as_slice())],
            "x",
        )
        .await
        .ok("255-character key");
    assert_eq!(server.tree().size, 2);
    server.stop().await;
}
