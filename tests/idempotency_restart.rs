//! `Idempotency-Key` across a crash, with the real `veritrail serve` binary on `127.0.0.1:0`:
//! appends with keys from two tokens, SIGKILL, restart on the same data directory, and the
//! retries get the first outcomes — the same indices, nothing appended twice — while a retry
//! with other entries is a conflict, and the two tokens' keys stay apart throughout.
//!
//! The same for `POST /v1/records`, across a graceful stop (SIGTERM) and across SIGKILL: a
//! record's leaf is the server's canonical record (with its nonce and chain link), not the
//! request body, and its key must survive the restart all the same.
//!
//! The child process is killed by a drop guard, also when the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use support::ChildGuard;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use veritrail_server::auth::{Role, TokenFile, token_entry};

const DEADLINE: Duration = Duration::from_secs(60);
const BATCH: &str = "application/x-veritrail-entries";
const TOKEN_A: &str = "vt_idempotency_agent_a";
const TOKEN_B: &str = "vt_idempotency_agent_b";

/// A running `veritrail serve`: its guard, base URL and the tree size it printed at start.
struct Server {
    child: ChildGuard,
    base: String,
    tree_size: u64,
}

fn start(data: &Path, auth: &Path, log: &Path) -> Server {
    let stderr = std::fs::File::create(log).unwrap();
    let mut child = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_veritrail"))
            .args(["serve", "--data"])
            .arg(data)
            .arg("--auth")
            .arg(auth)
            .args(["--listen", "127.0.0.1:0", "--checkpoint-interval", "20ms"])
            .env_remove("VERITRAIL_DATA")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn veritrail serve"),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + DEADLINE;
    let (mut base, mut tree_size) = (None, None);
    while base.is_none() || tree_size.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).unwrap_or_else(|e| {
            panic!(
                "veritrail serve did not start ({e}); stderr:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            )
        });
        if let Some(url) = line.strip_prefix("veritrail listening on ") {
            base = Some(url.to_owned());
        } else if let Some(size) = line.strip_prefix("tree size: ") {
            tree_size = Some(size.parse().unwrap());
        }
    }
    Server {
        child,
        base: base.unwrap(),
        tree_size: tree_size.unwrap(),
    }
}

/// The answer to one append: status and JSON body.
async fn append(
    server: &Server,
    token: &str,
    key: Option<&str>,
    entries: &[&str],
) -> (StatusCode, serde_json::Value) {
    let client = reqwest::Client::new();
    let mut request = client
        .post(format!("{}/v1/entries", server.base))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .timeout(Duration::from_secs(30));
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    request = if let [single] = entries {
        request
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(single.as_bytes().to_vec())
    } else {
        let mut body = Vec::new();
        for entry in entries {
            veritrail_ledger::bundle::append_entry(&mut body, entry.as_bytes()).unwrap();
        }
        request.header(CONTENT_TYPE, BATCH).body(body)
    };
    let response = request.send().await.unwrap();
    let status = response.status();
    let body = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

/// The indices of a successful append.
#[track_caller]
fn indices((status, body): &(StatusCode, serde_json::Value)) -> Vec<u64> {
    assert_eq!(*status, StatusCode::OK, "{body}");
    match body.as_array() {
        Some(items) => items.iter().map(|i| i["index"].as_u64().unwrap()).collect(),
        None => vec![body["index"].as_u64().unwrap()],
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_after_sigkill_and_restart_gets_the_first_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let auth = dir.path().join("auth.toml");
    let file = TokenFile {
        token: vec![
            token_entry("agent-a", TOKEN_A, vec![Role::Append]),
            token_entry("agent-b", TOKEN_B, vec![Role::Append]),
        ],
        oidc: None,
    };
    std::fs::write(&auth, toml::to_string(&file).unwrap()).unwrap();
    let log = dir.path().join("serve.log");

    let mut server = start(&data, &auth, &log);
    assert_eq!(server.tree_size, 0);
    assert_eq!(
        indices(&append(&server, TOKEN_A, None, &["warm-up"]).await),
        [0]
    );
    // Both tokens use key k1, each for its own entries: each gets its own outcome.
    let a_k1 = indices(&append(&server, TOKEN_A, Some("k1"), &["A: order 42"]).await);
    assert_eq!(a_k1, [1]);
    let b_k1 = indices(&append(&server, TOKEN_B, Some("k1"), &["B: order 42"]).await);
    assert_eq!(b_k1, [2]);
    let a_k2 = indices(&append(&server, TOKEN_A, Some("k2"), &["x", "y", "z"]).await);
    assert_eq!(a_k2, [3, 4, 5]);

    // Crash: no graceful shutdown, no final checkpoint.
    let _ = server.child.0.kill();
    let _ = server.child.0.wait();
    let server = start(&data, &auth, &log);
    assert_eq!(
        server.tree_size, 6,
        "every acknowledged entry is in the log"
    );

    // The retries get the first outcomes and append nothing.
    assert_eq!(
        indices(&append(&server, TOKEN_A, Some("k1"), &["A: order 42"]).await),
        a_k1
    );
    assert_eq!(
        indices(&append(&server, TOKEN_B, Some("k1"), &["B: order 42"]).await),
        b_k1
    );
    assert_eq!(
        indices(&append(&server, TOKEN_A, Some("k2"), &["x", "y", "z"]).await),
        a_k2
    );
    // Other entries under a used key: a conflict, in the key's own scope only.
    let (status, body) = append(&server, TOKEN_A, Some("k1"), &["A: order 43"]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "idempotency_conflict");
    // B cannot read A's outcome under k2: B's first use of k2 appends B's entries.
    assert_eq!(
        indices(&append(&server, TOKEN_B, Some("k2"), &["x", "y", "z"]).await),
        [6, 7, 8]
    );
    // Nothing was appended twice: the next unkeyed entry follows directly.
    assert_eq!(
        indices(&append(&server, TOKEN_A, None, &["after"]).await),
        [9]
    );

    let journal = data.join("idempotency.journal");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&journal).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "{}", journal.display());
    drop(server);
}

/// Stops the server: SIGTERM and wait for it to exit (`graceful`), or SIGKILL.
fn stop(mut server: Server, graceful: bool) {
    if graceful {
        let pid = server.child.0.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = server.child.0.try_wait().unwrap() {
                assert!(status.success(), "serve exited with {status}");
                break;
            }
            assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
    } else {
        let _ = server.child.0.kill();
        let _ = server.child.0.wait();
    }
}

/// The answer to one `POST /v1/records` of `body`: status and JSON body.
async fn post_records(
    server: &Server,
    token: &str,
    key: Option<&str>,
    body: &serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/v1/records", server.base))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(CONTENT_TYPE, "application/json")
        .timeout(Duration::from_secs(30))
        .body(serde_json::to_vec(body).unwrap());
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let body = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

/// The indices of a successful `POST /v1/records`.
#[track_caller]
fn record_indices((status, body): &(StatusCode, serde_json::Value)) -> Vec<u64> {
    assert_eq!(*status, StatusCode::OK, "{body}");
    body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect()
}

/// An event of conversation `conversation` (so its records are chained: their leaves hold a
/// `prev` the body does not).
fn event(conversation: &str, tool: &str) -> serde_json::Value {
    serde_json::json!({
        "timestamp": "2026-03-01T12:00:00Z",
        "action": "tool_invoked",
        "actor": {"id": "triage-agent", "type": "agent"},
        "conversation_id": conversation,
        "gen_ai": {"gen_ai.tool.name": tool},
    })
}

/// Records with keys (and an append with a key), a restart (`graceful`: SIGTERM, else
/// SIGKILL), and the retries get the first answers without appending anything.
async fn records_keys_survive_a_restart(graceful: bool) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let auth = dir.path().join("auth.toml");
    let file = TokenFile {
        token: vec![
            token_entry("agent-a", TOKEN_A, vec![Role::Append]),
            token_entry("agent-b", TOKEN_B, vec![Role::Append]),
        ],
        oidc: None,
    };
    std::fs::write(&auth, toml::to_string(&file).unwrap()).unwrap();
    let log = dir.path().join("serve.log");

    let server = start(&data, &auth, &log);
    assert_eq!(server.tree_size, 0);
    let one = event("c-1", "ehr.read");
    let three = serde_json::json!([
        event("c-1", "ehr.search"),
        event("c-2", "ehr.read"),
        event("c-1", "ehr.write"),
    ]);
    let r1 = post_records(&server, TOKEN_A, Some("r1"), &one).await;
    assert_eq!(record_indices(&r1), [0]);
    let r2 = post_records(&server, TOKEN_A, Some("r2"), &three).await;
    assert_eq!(record_indices(&r2), [1, 2, 3]);
    // B's r1 is B's own.
    let b_r1 = post_records(&server, TOKEN_B, Some("r1"), &one).await;
    assert_eq!(record_indices(&b_r1), [4]);
    // A keyed raw append beside them, in the same journal.
    let e1 = indices(&append(&server, TOKEN_A, Some("e1"), &["raw 1", "raw 2"]).await);
    assert_eq!(e1, [5, 6]);
    // Before the restart, a retry replays (the baseline).
    assert_eq!(post_records(&server, TOKEN_A, Some("r1"), &one).await, r1);

    stop(server, graceful);
    let server = start(&data, &auth, &log);
    assert_eq!(
        server.tree_size, 7,
        "every acknowledged record is in the log"
    );

    // The retries get the first answers — the same indices, ids and leaves — and append
    // nothing.
    assert_eq!(post_records(&server, TOKEN_A, Some("r1"), &one).await, r1);
    assert_eq!(post_records(&server, TOKEN_A, Some("r2"), &three).await, r2);
    assert_eq!(post_records(&server, TOKEN_B, Some("r1"), &one).await, b_r1);
    assert_eq!(
        indices(&append(&server, TOKEN_A, Some("e1"), &["raw 1", "raw 2"]).await),
        e1
    );
    // The same key with another body is a conflict: another record, the same records in
    // another order, or entries under a records key and records under an entries key.
    let other = [
        ("r1", serde_json::json!(event("c-1", "ehr.delete"))),
        ("r2", serde_json::json!([three[2], three[1], three[0]])),
        ("e1", one.clone()),
    ];
    for (key, body) in other {
        let (status, answer) = post_records(&server, TOKEN_A, Some(key), &body).await;
        assert_eq!(status, StatusCode::CONFLICT, "{key}: {answer}");
        assert_eq!(answer["error"], "idempotency_conflict", "{key}");
    }
    let (status, answer) = append(&server, TOKEN_A, Some("r1"), &["raw 1"]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["error"], "idempotency_conflict");
    // Nothing was appended twice: the next record follows directly.
    let after = post_records(&server, TOKEN_A, None, &event("c-1", "ehr.close")).await;
    assert_eq!(record_indices(&after), [7]);
    drop(server);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_records_retry_after_a_graceful_restart_gets_the_first_outcome() {
    records_keys_survive_a_restart(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_records_retry_after_sigkill_and_restart_gets_the_first_outcome() {
    records_keys_survive_a_restart(false).await;
}
