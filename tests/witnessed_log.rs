//! A log with three witnesses, all real binaries: with `group 2 of 3` the log keeps publishing
//! with one witness down; with two down publication stops (fail-closed: `wait=published`
//! answers `503 witness_quorum` naming the missing witnesses, while appends stay durable) and
//! resumes when one returns. Every published checkpoint and receipt satisfies the policy.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::ChildGuard;
use veritrail_ledger::note::Note;
use veritrail_ledger::policy::Policy;
use veritrail_ledger::receipt::Receipt;

const ORIGIN: &str = "veritrail.test/witnessed";

fn veritrail(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_veritrail"))
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// Starts a witness on `listen`; its URL.
fn start_witness(dir: &Path, name: &str, listen: &str) -> (ChildGuard, String) {
    support::start_witness(&dir.join(format!("{name}.key")), &dir.join(name), listen)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Appends one entry with `wait=published`: the status and the JSON body.
async fn append_and_wait(base: &str, entry: &str) -> (u16, serde_json::Value) {
    let response = client()
        .post(format!("{base}/v1/entries?wait=published"))
        .header("Content-Type", "application/octet-stream")
        .body(entry.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

/// The receipt of an answered append satisfies the policy (log signature and quorum).
fn check_receipt(policy: &Policy, body: &serde_json::Value) -> usize {
    let receipt = Receipt::from_bytes(body["receipt"].as_str().unwrap().as_bytes()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let verified = policy.verify(&receipt.checkpoint, now, 60).unwrap();
    verified.cosigners.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_of_three_keeps_publishing_with_one_down_and_stops_with_two() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let log_vkey = veritrail(&[
        "keygen",
        "--name",
        ORIGIN,
        "--out",
        d.join("log.key").to_str().unwrap(),
    ]);
    let mut witnesses = Vec::new();
    let mut lines = vec![format!("log {log_vkey}")];
    for name in ["w1", "w2", "w3"] {
        let vkey = veritrail(&[
            "keygen",
            "--witness",
            "--name",
            &format!("witness.test/{name}"),
            "--out",
            d.join(format!("{name}.key")).to_str().unwrap(),
        ]);
        veritrail(&[
            "witness",
            "add-log",
            "--data",
            d.join(name).to_str().unwrap(),
            &log_vkey,
        ]);
        let (child, url) = start_witness(d, name, "127.0.0.1:0");
        lines.push(format!("witness {name} {vkey} {url}"));
        witnesses.push((Some(child), url));
    }
    lines.push("group two-of-three 2 w1 w2 w3".into());
    lines.push("quorum two-of-three".into());
    let policy_text = lines.join("\n") + "\n";
    std::fs::write(d.join("policy"), &policy_text).unwrap();
    let policy: Policy = policy_text.parse().unwrap();

    let (_log, log_lines) = support::spawn_lines(
        Command::new(env!("CARGO_BIN_EXE_veritrail"))
            .args([
                "serve",
                "--no-auth",
                "--listen",
                "127.0.0.1:0",
                "--request-timeout",
                "4s",
            ])
            .arg("--data")
            .arg(d.join("log"))
            .arg("--key")
            .arg(d.join("log.key"))
            .arg("--origin")
            .arg(ORIGIN)
            .arg("--witness-policy")
            .arg(d.join("policy"))
            .arg("--witness-timeout")
            .arg("1s")
            .stderr(Stdio::null()),
    );
    let base = support::line_after(
        &log_lines,
        "veritrail listening on ",
        Duration::from_secs(60),
    );

    // All three up: published with cosignatures that meet the quorum.
    let (status, body) = append_and_wait(&base, "all up").await;
    assert_eq!(status, 200, "{body}");
    assert!(check_receipt(&policy, &body) >= 2);
    // The checkpoint served is the cosigned one.
    let served = client()
        .get(format!("{base}/checkpoint"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    policy
        .verify(&Note::from_bytes(&served).unwrap(), u64::MAX / 4, 0)
        .unwrap();

    let first_receipt = body["receipt"].as_str().unwrap().to_owned();

    // One down: still published.
    witnesses[2].0 = None;
    let (status, body) = append_and_wait(&base, "w3 down").await;
    assert_eq!(status, 200, "{body}");
    assert!(check_receipt(&policy, &body) >= 2);

    // Clients with the policy: the CLI accepts the cosigned receipt and checkpoint, and
    // rejects too few, duplicated, forged or misplaced cosignatures.
    clients_hold_the_policy(
        d,
        &base,
        &log_vkey,
        body["receipt"].as_str().unwrap(),
        &first_receipt,
        &policy_text,
    );

    // Two down: the entry is durable but not published; the error names the missing.
    witnesses[1].0 = None;
    let (status, body) = append_and_wait(&base, "w2 and w3 down").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "witness_quorum");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("w2") && message.contains("w3"),
        "{message}"
    );
    let stuck = client()
        .get(format!("{base}/checkpoint"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(stuck.lines().nth(1), Some("2"), "nothing new is published");

    // One returns (same data, same address): publication resumes and covers everything.
    let address = witnesses[1].1.trim_start_matches("http://").to_owned();
    witnesses[1].0 = Some(start_witness(d, "w2", &address).0);
    let (status, body) = append_and_wait(&base, "w2 back").await;
    assert_eq!(status, 200, "{body}");
    assert!(check_receipt(&policy, &body) >= 2);
    assert_eq!(body["index"], 3);
}

/// Runs `veritrail` with `args`; its exit code and combined output.
fn run(args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_veritrail"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// `verify-receipt` and `checkpoint --verify` with `--policy`, on good and tampered inputs.
fn clients_hold_the_policy(
    d: &Path,
    base: &str,
    log_vkey: &str,
    receipt: &str,
    other_receipt: &str,
    policy_text: &str,
) {
    std::fs::write(d.join("entry"), "w3 down").unwrap();
    let policy = d.join("policy").to_str().unwrap().to_owned();
    let verify = |receipt: &str, policy: &str| {
        let path = d.join("receipt");
        std::fs::write(&path, receipt).unwrap();
        run(&[
            "verify-receipt",
            "--log-key",
            log_vkey,
            "--policy",
            policy,
            "--entry",
            d.join("entry").to_str().unwrap(),
            path.to_str().unwrap(),
        ])
    };
    let (code, out) = verify(receipt, &policy);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("cosigned by the policy's quorum"), "{out}");

    // The cosignature lines (by w1, w2), and one from another checkpoint.
    let cosignatures: Vec<&str> = receipt
        .lines()
        .filter(|l| l.starts_with("\u{2014} witness.test/"))
        .collect();
    assert_eq!(cosignatures.len(), 2, "{receipt}");
    // A cosignature by the same witness over the earlier checkpoint, put in place of its own.
    let (own, misplaced) = cosignatures
        .iter()
        .find_map(|line| {
            let name = line.split(' ').nth(1)?;
            let other = other_receipt
                .lines()
                .find(|l| l.starts_with(&format!("\u{2014} {name} ")))?;
            Some((*line, other.to_owned()))
        })
        .unwrap();
    // One signature byte changed, in the middle of the base64 (still valid base64).
    let mut forged_line = cosignatures[0].to_owned();
    let middle = forged_line.len() - 30;
    let swapped = if forged_line.as_bytes()[middle] == b'A' {
        "B"
    } else {
        "A"
    };
    forged_line.replace_range(middle..=middle, swapped);
    let cases = [
        (
            "too few",
            receipt.replace(&format!("{}\n", cosignatures[1]), ""),
        ),
        (
            "one witness twice",
            receipt.replace(cosignatures[1], cosignatures[0]),
        ),
        ("forged", receipt.replace(cosignatures[0], &forged_line)),
        ("from another checkpoint", receipt.replace(own, &misplaced)),
    ];
    for (what, tampered) in cases {
        assert_ne!(tampered, receipt, "{what}: the tampering changed nothing");
        let (code, out) = verify(&tampered, &policy);
        assert_eq!(code, 1, "{what}: {out}");
        // Without the policy the log's signature alone still verifies: only the quorum fails.
        let (code, out) = run(&[
            "verify-receipt",
            "--log-key",
            log_vkey,
            "--entry",
            d.join("entry").to_str().unwrap(),
            d.join("receipt").to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{what} without --policy: {out}");
    }
    // A policy that lists one key twice is refused before anything is checked.
    let duplicated = d.join("duplicated-policy");
    let w1_line = policy_text
        .lines()
        .find(|l| l.starts_with("witness w1 "))
        .unwrap();
    std::fs::write(
        &duplicated,
        policy_text.replace(
            w1_line,
            &format!(
                "{w1_line}\n{}",
                w1_line.replace("witness w1 ", "witness w1-again ")
            ),
        ),
    )
    .unwrap();
    let (code, out) = verify(receipt, duplicated.to_str().unwrap());
    assert_eq!(code, 2, "{out}");

    // The live checkpoint: accepted with the policy; a policy needing all three witnesses
    // (w3 is down) rejects it.
    let state = d.join("client.state");
    let (code, out) = run(&[
        "checkpoint",
        "--verify",
        "--url",
        base,
        "--log-key",
        log_vkey,
        "--policy",
        &policy,
        "--state",
        state.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    let strict = d.join("strict-policy");
    std::fs::write(
        &strict,
        policy_text.replace("group two-of-three 2", "group two-of-three all"),
    )
    .unwrap();
    let (code, out) = run(&[
        "checkpoint",
        "--verify",
        "--url",
        base,
        "--log-key",
        log_vkey,
        "--policy",
        strict.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("w3"), "{out}");

    // The monitor too: it replays the log under the policy, and refuses the strict one.
    let (code, out) = run(&[
        "monitor",
        "--once",
        "--url",
        base,
        "--log-key",
        log_vkey,
        "--policy",
        &policy,
        "--state",
        d.join("monitor.state").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(&[
        "monitor",
        "--once",
        "--url",
        base,
        "--log-key",
        log_vkey,
        "--policy",
        strict.to_str().unwrap(),
        "--state",
        d.join("strict.state").to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}");
}
