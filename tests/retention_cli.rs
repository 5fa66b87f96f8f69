//! `veritrail retention plan` on a real store: a bundle is kept until its strictest entry's
//! regime ends (HIPAA 6 years, financial 7, SOC 2 and raw entries the 1-year default), a
//! partial bundle is kept while it grows, and a policy file changes the periods.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn record(compliance: &[&str]) -> Value {
    json!({
        "timestamp": "2026-03-01T12:00:00Z",
        "action": "tool_invoked",
        "actor": {"id": "agent-7", "type": "agent"},
        "compliance": compliance,
    })
}

async fn post(base: &str, path: &str, content_type: &str, body: Vec<u8>) {
    let answer = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{path}: {}", answer.status());
}

/// Appends, through a real server: bundle 0 all SOC 2 records; bundle 1 SOC 2 and one HIPAA
/// record; bundle 2 raw entries and one financial record; then 3 raw entries (a partial
/// bundle). Stops the server cleanly.
async fn fill(data: &Path) {
    let (mut child, lines) = support::spawn_lines(
        Command::new(env!("CARGO_BIN_EXE_veritrail"))
            .args(["serve", "--no-auth", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .stderr(Stdio::null()),
    );
    let base = support::line_after(&lines, "veritrail listening on ", Duration::from_secs(60));
    let records = |events: Vec<Value>| serde_json::to_vec(&events).unwrap();
    for _ in 0..2 {
        post(
            &base,
            "/v1/records",
            "application/json",
            records(vec![record(&["soc2"]); 128]),
        )
        .await;
    }
    let mut bundle1 = vec![record(&["soc2"]); 255];
    bundle1[100] = record(&["hipaa", "soc2"]);
    post(&base, "/v1/records", "application/json", records(bundle1)).await;
    for i in 0..255 {
        post(
            &base,
            "/v1/entries",
            "application/octet-stream",
            format!("raw {i}").into_bytes(),
        )
        .await;
        if i == 7 {
            post(
                &base,
                "/v1/records",
                "application/json",
                records(vec![record(&["financial"])]),
            )
            .await;
        }
    }
    for i in 0..3 {
        post(
            &base,
            "/v1/entries",
            "application/octet-stream",
            format!("tail {i}").into_bytes(),
        )
        .await;
    }
    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "serve did not stop");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `retention plan --json` at `now`: each bundle's (expired, because).
fn plan(data: &Path, now: &str, policy: Option<&Path>) -> Vec<(bool, String)> {
    let mut args = vec![
        "retention".to_owned(),
        "plan".into(),
        "--json".into(),
        "--now".into(),
        now.into(),
        "--data".into(),
        data.to_str().unwrap().into(),
    ];
    if let Some(policy) = policy {
        args.extend(["--policy".into(), policy.to_str().unwrap().into()]);
    }
    let output = Command::new(env!("CARGO_BIN_EXE_veritrail"))
        .args(&args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let bundle: Value = serde_json::from_str(line).unwrap();
            (
                bundle["expired"].as_bool().unwrap(),
                bundle["because"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundles_are_kept_as_long_as_their_strictest_entry() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fill(&data).await;
    let year = time::OffsetDateTime::now_utc().year();
    let at = |years: i32| format!("{}-12-31T23:59:59Z", year + years);

    // Today nothing has expired; a partial bundle is kept whatever the date.
    let today = plan(&data, &at(0), None);
    assert_eq!(today.len(), 4, "{today:?}");
    assert!(today.iter().all(|(expired, _)| !expired), "{today:?}");
    assert_eq!(
        today.iter().map(|(_, b)| b.as_str()).collect::<Vec<_>>(),
        [
            "default 1y",
            "hipaa 6y",
            "financial 7y",
            "partial bundle (still growing)"
        ]
    );
    let expired = |plan: &[(bool, String)]| plan.iter().map(|(e, _)| *e).collect::<Vec<_>>();
    assert_eq!(
        expired(&plan(&data, &at(1), None)),
        [true, false, false, false]
    );
    assert_eq!(
        expired(&plan(&data, &at(6), None)),
        [true, true, false, false]
    );
    assert_eq!(
        expired(&plan(&data, &at(7), None)),
        [true, true, true, false]
    );

    // A policy that keeps SOC 2 for 3 years and HIPAA for 10.
    let policy = dir.path().join("retention.toml");
    std::fs::write(&policy, "[domains]\nsoc2 = \"3y\"\nhipaa = \"10y\"\n").unwrap();
    let custom = plan(&data, &at(7), Some(&policy));
    assert_eq!(
        custom,
        [
            (true, "soc2 3y".to_owned()),
            (false, "hipaa 10y".to_owned()),
            (true, "financial 7y".to_owned()),
            (false, "partial bundle (still growing)".to_owned()),
        ]
    );
    // A bad policy is a usage error naming the value.
    std::fs::write(&policy, "[domains]\nsoc2 = \"3 years\"\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_veritrail"))
        .args(["retention", "plan", "--policy"])
        .arg(&policy)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("3 years"));
}
