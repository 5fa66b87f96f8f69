//! `serve --mirror`: the log's read path published to a directory and to a real S3-compatible
//! server (moto, started on loopback), read back by the monitor and the verifying client
//! pointed only at the copy while the log grows; and a server killed (SIGKILL) mid-mirror
//! never leaves a checkpoint whose tiles are missing.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::ChildGuard;

const ORIGIN: &str = "veritrail.test/mirror";

fn veritrail() -> Command {
    Command::new(env!("CARGO_BIN_EXE_veritrail"))
}

fn ok(output: Output) -> String {
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// A log key in `dir`; its verifier key.
fn keygen(dir: &Path) -> String {
    let key = dir.join("log.key");
    ok(veritrail()
        .args(["keygen", "--name", ORIGIN, "--out"])
        .arg(&key)
        .output()
        .unwrap())
    .trim()
    .to_owned()
}

/// Starts `veritrail serve` on `data` mirroring to `mirror`; the guard and base URL.
fn serve(
    dir: &Path,
    data: &str,
    mirror: &str,
    env: &[(&'static str, String)],
) -> (ChildGuard, String) {
    let mut command = veritrail();
    command
        .args([
            "serve",
            "--no-auth",
            "--listen",
            "127.0.0.1:0",
            "--checkpoint-interval",
            "50ms",
        ])
        .arg("--data")
        .arg(dir.join(data))
        .arg("--key")
        .arg(dir.join("log.key"))
        .args(["--origin", ORIGIN, "--mirror", mirror])
        .stderr(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    let (child, lines) = support::spawn_lines(&mut command);
    let base = support::line_after(&lines, "veritrail listening on ", Duration::from_secs(60));
    (child, base)
}

/// Appends `count` raw entries in batches of 50 (`veritrail append` reads lines).
async fn append(base: &str, from: usize, count: usize) {
    let http = reqwest::Client::new();
    for start in (from..from + count).step_by(50) {
        let end = (start + 50).min(from + count);
        let mut body = Vec::new();
        for i in start..end {
            let entry = format!("mirrored entry {i}");
            body.extend_from_slice(&u16::try_from(entry.len()).unwrap().to_be_bytes());
            body.extend_from_slice(entry.as_bytes());
        }
        let response = http
            .post(format!("{base}/v1/entries"))
            .header("Content-Type", "application/x-veritrail-entries")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{response:?}");
    }
}

/// Waits until the log itself publishes a checkpoint of at least `size`; its size.
async fn log_size(base: &str, size: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let response = reqwest::get(format!("{base}/checkpoint")).await.unwrap();
        if response.status().is_success() {
            let note = response.text().await.unwrap();
            let published: u64 = note.lines().nth(1).unwrap().parse().unwrap();
            if published >= size {
                return published;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the log did not publish size {size}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `read` (the mirror's checkpoint, however it is read) shows tree size `size`.
async fn wait_mirrored<F: AsyncFn() -> Option<String>>(read: F, size: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = read().await;
        if seen
            .as_deref()
            .and_then(|n| n.lines().nth(1))
            .and_then(|s| s.parse::<u64>().ok())
            == Some(size)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the mirror did not reach {size}: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `veritrail monitor --once` against the copy (`--url` or `--dir`); its stderr.
fn monitor(dir: &Path, vkey: &str, source: &[&str], state: &str) -> String {
    let output = veritrail()
        .arg("monitor")
        .args(source)
        .args(["--once", "--log-key", vkey, "--state"])
        .arg(dir.join(state))
        .output()
        .unwrap();
    assert!(output.status.success(), "monitor {source:?}: {output:?}");
    String::from_utf8(output.stderr).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_follow_a_log_from_its_mirror_in_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let vkey = keygen(d);
    let mirror = d.join("mirror");
    let (_server, base) = serve(d, "data", mirror.to_str().unwrap(), &[]);
    let read = || async { std::fs::read_to_string(mirror.join("checkpoint")).ok() };
    let mut appended = 0;
    for count in [3, 300, 1000] {
        append(&base, appended, count).await;
        appended += count;
        let size = log_size(&base, appended as u64).await;
        assert_eq!(size, appended as u64);
        wait_mirrored(read, size).await;
        monitor(
            d,
            &vkey,
            &["--dir", mirror.to_str().unwrap()],
            "monitor.state",
        );
    }
    // Every object the readers needed is there and nothing else: the tiles of the last tree.
    assert!(mirror.join("tile/entries/005.p/23").is_file());
    assert!(mirror.join("tile/0/004").is_file() && mirror.join("tile/1/000.p/5").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_follow_a_log_from_its_mirror_in_a_bucket() {
    let Some(s3) = support::start_s3("veritrail-mirror").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let vkey = keygen(d);
    let (_server, base) = serve(d, "data", "s3://veritrail-mirror/logs/one", &s3.env());
    let url = s3.http_url("logs/one");
    let read = || async {
        let response = reqwest::get(format!("{url}checkpoint")).await.ok()?;
        response.status().is_success().then_some(())?;
        response.text().await.ok()
    };
    let mut appended = 0;
    for count in [1, 600, 300] {
        append(&base, appended, count).await;
        appended += count;
        let size = log_size(&base, appended as u64).await;
        wait_mirrored(read, size).await;
        // Pointed only at the bucket: the monitor audits every entry, the verifying client
        // checks the checkpoint's consistency and proves an entry from the tiles.
        monitor(d, &vkey, &["--url", &url], "monitor.state");
        ok(veritrail()
            .args([
                "checkpoint",
                "--verify",
                "--url",
                &url,
                "--log-key",
                &vkey,
                "--state",
            ])
            .arg(d.join("client.state"))
            .output()
            .unwrap());
        let proof = ok(veritrail()
            .args(["prove", "--url", &url, "--log-key", &vkey, "--state"])
            .arg(d.join("client.state"))
            .arg((size - 1).to_string())
            .output()
            .unwrap());
        assert!(!proof.is_empty());
        let entry = ok(veritrail()
            .args([
                "get",
                "--verify",
                "--url",
                &url,
                "--log-key",
                &vkey,
                "--state",
            ])
            .arg(d.join("client.state"))
            .arg((size - 1).to_string())
            .output()
            .unwrap());
        assert_eq!(entry.trim_end(), format!("mirrored entry {}", size - 1));
    }
    // Objects carry the tlog-tiles cache headers.
    let full = reqwest::get(format!("{url}tile/0/000")).await.unwrap();
    assert_eq!(
        full.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let checkpoint = reqwest::get(format!("{url}checkpoint")).await.unwrap();
    assert_eq!(checkpoint.headers()["cache-control"], "public, max-age=1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_mirror_never_leaves_a_checkpoint_without_its_tiles() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let vkey = keygen(d);
    let mirror = d.join("mirror");
    let mut appended = 0;
    for round in 0..4u64 {
        let (server, base) = serve(d, "data", mirror.to_str().unwrap(), &[]);
        // Appends in flight when the server dies, at a different moment each round.
        let writer = {
            let base = base.clone();
            let from = appended;
            tokio::spawn(async move {
                for i in 0.. {
                    let _ = reqwest::Client::new()
                        .post(format!("{base}/v1/entries"))
                        .body(format!("entry {from} {i}"))
                        .send()
                        .await;
                }
            })
        };
        append(&base, appended, 700).await;
        appended += 700;
        tokio::time::sleep(Duration::from_millis(37 * round)).await;
        drop(server); // SIGKILL
        writer.abort();
        // Whatever checkpoint the mirror holds, every tile it needs is there: a fresh
        // monitor replays the whole copy (it fails on a missing tile or bundle).
        if mirror.join("checkpoint").exists() {
            monitor(
                d,
                &vkey,
                &["--dir", mirror.to_str().unwrap()],
                &format!("fresh-{round}.state"),
            );
        }
    }
    // After a restart the mirror catches up with the log.
    let (_server, base) = serve(d, "data", mirror.to_str().unwrap(), &[]);
    append(&base, appended, 1).await;
    let size = log_size(&base, appended as u64 + 1).await;
    wait_mirrored(
        || async { std::fs::read_to_string(mirror.join("checkpoint")).ok() },
        size,
    )
    .await;
    monitor(
        d,
        &vkey,
        &["--dir", mirror.to_str().unwrap()],
        "final.state",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_of_another_log_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(d);
    let mirror = d.join("mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    let foreign = "another.example/log\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— another.example/log AAAAAA==\n";
    std::fs::write(mirror.join("checkpoint"), foreign).unwrap();
    let (_server, base) = serve(d, "data", mirror.to_str().unwrap(), &[]);
    append(&base, 0, 10).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        std::fs::read_to_string(mirror.join("checkpoint")).unwrap(),
        foreign
    );
    assert!(!mirror.join("tile").exists());
}
