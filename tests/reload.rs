//! `SIGHUP` reloads, end to end: the real `veritrail serve` binary with a token file and a
//! classification registry. After a signal, records are classified by the new registry and a
//! new token works while a removed one is refused; a broken registry or token file is logged
//! and the previous one stays in force.
//!
//! Every child process is killed by a drop guard, also when a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use veritrail_server::auth::{Role, token_entry};

/// Longest a test waits for any one state.
const DEADLINE: Duration = Duration::from_secs(60);

const WRITER: &str = "vt_reload_writer";
const AUDITOR: &str = "vt_reload_auditor";
const NEWCOMER: &str = "vt_reload_newcomer";

/// A token file holding `tokens` as (name, token, roles).
fn token_file(path: &Path, tokens: &[(&str, &str, Role)]) {
    let mut text = String::new();
    for (name, token, role) in tokens {
        let entry = token_entry(name, token, vec![*role]);
        text.push_str(&format!(
            "[[token]]\nname = {:?}\nsha256 = {:?}\nroles = [{:?}]\n\n",
            entry.name,
            entry.sha256,
            role.as_str()
        ));
    }
    std::fs::write(path, text).unwrap();
}

/// A registry classifying the tool `ehr.read` as `classification` under `domain`.
fn registry(path: &Path, classification: &str, domain: &str) {
    std::fs::write(
        path,
        format!(
            "[[tool]]\nmatch = \"ehr.read\"\nclassification = {classification:?}\ncompliance = [{domain:?}]\n"
        ),
    )
    .unwrap();
}

/// Sends SIGHUP to `pid` and waits until the log holds `lines` lines containing `marker`.
fn hangup_and_wait(pid: u32, log: &Path, marker: &str, lines: usize) {
    let pid = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.matches(marker).count() >= lines {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {marker:?} in the log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Posts a record calling `ehr.read` with `token`; returns the status and, for a 200, the
/// stored record (fetched with `wait=published` as the auditor).
async fn post_and_read(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    n: usize,
) -> (StatusCode, Option<Value>) {
    let event = json!({
        "timestamp": "2026-03-01T12:00:00Z",
        "action": "tool_invoked",
        "actor": {"id": "triage-agent", "type": "agent"},
        "conversation_id": format!("reload-{n}"),
        "gen_ai": {"gen_ai.tool.name": "ehr.read"},
    });
    let reply = client
        .post(format!("{base}/v1/records?wait=published"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&event).unwrap())
        .send()
        .await
        .unwrap();
    let status = reply.status();
    if status != StatusCode::OK {
        return (status, None);
    }
    let body: Value = serde_json::from_slice(&reply.bytes().await.unwrap()).unwrap();
    let index = body["records"][0]["index"].as_u64().unwrap();
    let stored = client
        .get(format!("{base}/v1/records/{index}"))
        .bearer_auth(AUDITOR)
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), StatusCode::OK);
    let stored: Value = serde_json::from_slice(&stored.bytes().await.unwrap()).unwrap();
    (status, Some(stored["record"].clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_registry_and_the_tokens_and_keeps_them_when_broken() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let auth = dir.path().join("auth.toml");
    let classes = dir.path().join("classification.toml");
    let log = dir.path().join("serve.log");
    token_file(
        &auth,
        &[
            ("writer", WRITER, Role::Append),
            ("auditor", AUDITOR, Role::Audit),
        ],
    );
    registry(&classes, "confidential", "soc2");
    let (child, lines) = support::spawn_lines(
        Command::new(env!("CARGO_BIN_EXE_veritrail"))
            .args(["serve", "--data", data.to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0", "--checkpoint-interval", "5ms"])
            .args(["--auth", auth.to_str().unwrap()])
            .args(["--classification", classes.to_str().unwrap()])
            .env_remove("VERITRAIL_DATA")
            .env_remove("VERITRAIL_MASTER_KEY")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap()),
    );
    let base = support::line_after(&lines, "veritrail listening on ", DEADLINE);
    let pid = child.0.id();
    let client = reqwest::Client::builder()
        .timeout(DEADLINE)
        .build()
        .unwrap();

    let (status, record) = post_and_read(&client, &base, WRITER, 0).await;
    assert_eq!(status, StatusCode::OK);
    let record = record.unwrap();
    assert_eq!(record["classification"], "confidential");
    assert_eq!(record["compliance"], json!(["soc2"]));
    assert_eq!(
        post_and_read(&client, &base, NEWCOMER, 1).await.0,
        StatusCode::UNAUTHORIZED
    );

    // New registry and token file: the writer is replaced by a newcomer.
    registry(&classes, "restricted", "hipaa");
    token_file(
        &auth,
        &[
            ("newcomer", NEWCOMER, Role::Append),
            ("auditor", AUDITOR, Role::Audit),
        ],
    );
    hangup_and_wait(pid, &log, "classification registry reloaded", 1);
    let (status, record) = post_and_read(&client, &base, NEWCOMER, 2).await;
    assert_eq!(status, StatusCode::OK);
    let record = record.unwrap();
    assert_eq!(record["classification"], "restricted");
    assert_eq!(record["compliance"], json!(["hipaa"]));
    assert_eq!(
        post_and_read(&client, &base, WRITER, 3).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Broken files: both errors are logged and the running policy and registry stay.
    std::fs::write(
        &classes,
        "[[tool]]\nmatch = \"ehr.read\"\nclassification = \"top\"\n",
    )
    .unwrap();
    std::fs::write(&auth, "[[token]]\nname = 3\n").unwrap();
    hangup_and_wait(pid, &log, "classification registry not reloaded", 1);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("token file not reloaded"), "{text}");
    let (status, record) = post_and_read(&client, &base, NEWCOMER, 4).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(record.unwrap()["classification"], "restricted");
}
