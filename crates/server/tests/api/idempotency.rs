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

/// Issue 14: token B used `order-42` first, so A's real event got 409 and was never logged,
/// and B could read A's outcome. Keys are now scoped per token.
#[tokio::test(flavor = "multi_thread")]
async fn two_tokens_with_the_same_key_each_get_their_own_outcome() {
    use veritrail_server::auth::{Auth, Role, TokenFile, token_entry};
    let (a, b) = ("vt_agent_a", "vt_agent_b");
    let file = TokenFile {
        token: vec![
            token_entry("agent-a", a, vec![Role::Append]),
            token_entry("agent-b", b, vec![Role::Append]),
        ],
        oidc: None,
    };
    let server = TestServer::start(
        Auth::from_file(&file, std::path::Path::new("."), false).unwrap(),
        crate::fast_config(),
        1,
    )
    .await;
    let post = |token: &'static str, key: &'static str, entry: &'static str| {
        let server = &server;
        async move {
            let bearer = format!("Bearer {token}");
            let headers: [(&str, &[u8]); 2] =
                [(KEY, key.as_bytes()), ("authorization", bearer.as_bytes())];
            server
                .post_with("/v1/entries", "application/octet-stream", &headers, entry)
                .await
        }
    };
    // B squats on the key first; A's real event is still appended.
    let b_first = post(b, "order-42", "B: squatting").await.ok("B").json();
    assert_eq!(b_first["index"], 1);
    let a_first = post(a, "order-42", "A: order 42 shipped")
        .await
        .ok("A")
        .json();
    assert_eq!(a_first["index"], 2);
    assert_eq!(server.ledger.entry(2).unwrap(), b"A: order 42 shipped");
    // Each retry gets its own token's outcome.
    let a_retry = post(a, "order-42", "A: order 42 shipped")
        .await
        .ok("A retry")
        .json();
    assert_eq!(a_retry, a_first);
    let b_retry = post(b, "order-42", "B: squatting")
        .await
        .ok("B retry")
        .json();
    assert_eq!(b_retry, b_first);
    assert_eq!(server.tree().size, 3);
    // B cannot read A's outcome by sending A's entries under the key: for B it is a conflict
    // with B's own first use, and nothing about A's index is revealed.
    let reply = post(b, "order-42", "A: order 42 shipped").await;
    reply.assert_error(
        StatusCode::CONFLICT,
        "idempotency_conflict",
        "B with A's entries",
    );
    // A key B never used: B's use appends B's own copy rather than replaying A's.
    let a_only = post(a, "invoice-7", "same bytes")
        .await
        .ok("A invoice")
        .json();
    let b_only = post(b, "invoice-7", "same bytes")
        .await
        .ok("B invoice")
        .json();
    assert_ne!(a_only["index"], b_only["index"]);
    assert_eq!(server.tree().size, 5);
    server.stop().await;
}

/// An outcome survives a stop and a start on the same data (the journal), and a commit that
/// is journaled but never lands is forgotten.
#[tokio::test(flavor = "multi_thread")]
async fn an_outcome_survives_a_restart_in_process() {
    use std::sync::Arc;
    use veritrail_ledger::Ledger;
    use veritrail_ledger::note::{KeyName, NoteSigner};
    use veritrail_ledger::store::{self, Backend};
    use veritrail_server::auth::Auth;
    use veritrail_server::{Server, ServerConfig, app};

    let dir = tempfile::tempdir().unwrap();
    let signer = NoteSigner::generate(KeyName::new(crate::ORIGIN).unwrap()).unwrap();
    let mut config = crate::fast_config();
    config.limits.idempotency_journal = Some(dir.path().join("idempotency.journal"));
    let start = |config: ServerConfig| {
        let store = store::open(Backend::Redb, dir.path()).unwrap();
        let ledger = Arc::new(Ledger::open(store, crate::ORIGIN, signer.clone()).unwrap());
        let server = Server::start(ledger.clone(), config, Auth::disabled()).unwrap();
        (ledger, server)
    };
    let send = |router: axum::Router, body: &'static str| async move {
        use tower::ServiceExt as _;
        let request = axum::http::Request::post("/v1/entries")
            .header("content-type", "application/octet-stream")
            .header(KEY, "restart-1")
            .body(axum::body::Body::from(body))
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, body)
    };
    let (ledger, server) = start(config.clone());
    let (status, first) = send(app(server.state().clone()), "exactly once").await;
    assert_eq!(status, StatusCode::OK);
    server.shutdown().await;
    drop(ledger);

    let (ledger, server) = start(config.clone());
    let (status, retry) = send(app(server.state().clone()), "exactly once").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(retry, first);
    assert_eq!(ledger.tree_head().size, 1);
    let (status, _) = send(app(server.state().clone()), "other entries").await;
    assert_eq!(status, StatusCode::CONFLICT);
    server.shutdown().await;
}

/// A `POST /v1/records` outcome survives a stop and a start too. Its leaves are the server's
/// records (with their own nonces, times and chain links), not the body the key is bound to:
/// the start used to fingerprint them as raw entries, never matched, and forgot every records
/// key, so the retry appended the records a second time.
#[tokio::test(flavor = "multi_thread")]
async fn a_records_outcome_survives_a_restart_in_process() {
    use std::sync::Arc;
    use veritrail_ledger::Ledger;
    use veritrail_ledger::note::{KeyName, NoteSigner};
    use veritrail_ledger::store::{self, Backend};
    use veritrail_server::auth::Auth;
    use veritrail_server::{Server, ServerConfig, app};

    let dir = tempfile::tempdir().unwrap();
    let signer = NoteSigner::generate(KeyName::new(crate::ORIGIN).unwrap()).unwrap();
    let mut config = crate::fast_config();
    config.limits.idempotency_journal = Some(dir.path().join("idempotency.journal"));
    let start = |config: ServerConfig| {
        let store = store::open(Backend::Redb, dir.path()).unwrap();
        let ledger = Arc::new(Ledger::open(store, crate::ORIGIN, signer.clone()).unwrap());
        let server = Server::start(ledger.clone(), config, Auth::disabled()).unwrap();
        (ledger, server)
    };
    let event = |tool: &str| {
        serde_json::json!({
            "timestamp": "2026-03-01T12:00:00Z",
            "action": "tool_invoked",
            "actor": {"id": "triage-agent", "type": "agent"},
            "conversation_id": "c-restart",
            "gen_ai": {"gen_ai.tool.name": tool},
        })
    };
    let body = serde_json::to_vec(&[event("ehr.read"), event("ehr.write")]).unwrap();
    let send = |router: axum::Router, key: &'static str, body: Vec<u8>| async move {
        use tower::ServiceExt as _;
        let request = axum::http::Request::post("/v1/records")
            .header("content-type", "application/json")
            .header(KEY, key)
            .body(axum::body::Body::from(body))
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, body)
    };
    let (ledger, server) = start(config.clone());
    let (status, first) = send(app(server.state().clone()), "records-1", body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first:?}");
    assert_eq!(ledger.tree_head().size, 2);
    server.shutdown().await;
    drop(ledger);

    let (ledger, server) = start(config.clone());
    let (status, retry) = send(app(server.state().clone()), "records-1", body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(retry, first, "the same records, ids and leaves");
    assert_eq!(ledger.tree_head().size, 2, "nothing appended twice");
    let other = serde_json::to_vec(&[event("ehr.read")]).unwrap();
    let (status, _) = send(app(server.state().clone()), "records-1", other).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(ledger.tree_head().size, 2);
    server.shutdown().await;
}

/// Bytes in the payload store's files under `dir`.
fn payload_store_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.join("payloads")];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            total += std::fs::metadata(&path).unwrap().len();
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_records_retry_files_no_payloads() {
    let payload_dir = tempfile::tempdir().unwrap();
    let mut config = crate::fast_config();
    config.records.payload_dir = Some(payload_dir.path().to_owned());
    config.records.audit_reads = false;
    let server = TestServer::start(veritrail_server::auth::Auth::disabled(), config, 0).await;
    let event = serde_json::json!({
        "timestamp": "2026-03-01T12:00:00Z",
        "action": "user_message_received",
        "actor": {"id": "triage-agent", "type": "agent"},
        "conversation_id": "c-payload-retry",
        "payloads": {"prompt": {"media_type": "text/plain", "text": "my chest hurts"}},
    });
    let body = serde_json::to_vec(&event).unwrap();
    let send = |key: &'static str| {
        let headers: [(&str, &[u8]); 1] = [(KEY, key.as_bytes())];
        let body = body.clone();
        let server = &server;
        async move {
            server
                .post_with("/v1/records", "application/json", &headers, body)
                .await
                .ok(key)
                .json()
        }
    };
    let first = send("payload-retry-1").await;
    assert_eq!(first["records"][0]["index"], 0, "{first}");
    let filed = payload_store_bytes(payload_dir.path());
    assert!(filed > 0, "the first request filed its payload");
    for attempt in 0..3 {
        assert_eq!(send("payload-retry-1").await, first, "attempt {attempt}");
        assert_eq!(
            payload_store_bytes(payload_dir.path()),
            filed,
            "attempt {attempt}: a replay files nothing no record commits to"
        );
    }
    assert_eq!(server.tree().size, 1);
    // Control: another key is a new record, and its payload is filed.
    let other = send("payload-retry-2").await;
    assert_eq!(other["records"][0]["index"], 1, "{other}");
    assert!(payload_store_bytes(payload_dir.path()) > filed);
}
