//! `Idempotency-Key` across a crash, with the real `veritrail serve` binary on `127.0.0.1:0`:
//! appends with keys from two tokens, SIGKILL, restart on the same data directory, and the
//! retries get the first outcomes — the same indices, nothing appended twice — while a retry
//! with other entries is a conflict, and the two tokens' keys stay apart throughout.
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
