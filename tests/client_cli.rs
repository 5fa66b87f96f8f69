//! The client commands of the `veritrail` binary (`append`, `get`, `prove`, `checkpoint`,
//! `monitor`, `verify-receipt`, `verify-evidence`) run as a user would, against real
//! `veritrail serve` processes on `127.0.0.1:0` with token authentication.
//!
//! - a receipt from `append --receipt` verifies offline once the server is gone; a modified
//!   entry, a garbage receipt and another key are rejected with exit code 1;
//! - `monitor --once` audits a log of 100,000 entries, and after a SIGKILL mid-audit resumes
//!   from its tile cache without downloading the verified tiles again (counted in the
//!   server's `/metrics`);
//! - `checkpoint --verify` reports first / grew / unchanged; `get --verify`, `prove` by
//!   index and by leaf hash, with proofs from tiles and from the API, agree; `monitor --dir`
//!   audits a copy on disk;
//! - two logs signed with one key are a split view: `checkpoint --verify` and `monitor`
//!   exit 1 and write evidence that `verify-evidence` proves, and a tampered copy does not;
//! - usage and network failures exit 2 with a hint.
//!
//! Every child process runs under a deadline and is killed on drop.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use veritrail_ledger::bundle::append_entry;
use veritrail_ledger::leaf_hash;

/// Longest any one child process may run, and a server may take to start.
const DEADLINE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Processes.

/// The binary with no `VERITRAIL_*` variables inherited from the caller's environment.
fn veritrail() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_veritrail"));
    for var in [
        "VERITRAIL_DATA",
        "VERITRAIL_URL",
        "VERITRAIL_TOKEN",
        "VERITRAIL_LOG_KEY",
    ] {
        command.env_remove(var);
    }
    command.stdin(Stdio::null());
    command
}

/// Kills (SIGKILL) and reaps the child when dropped, also when a test fails.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a finished command left.
struct Run {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Asserts the exit code, showing the output otherwise.
    fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code,
            Some(code),
            "stdout:\n{}\nstderr:\n{}",
            self.out(),
            self.stderr
        );
        self
    }

    /// The value of `key=` in the output's `verified ...` summary line.
    fn summary(&self, key: &str) -> u64 {
        let line = self
            .out()
            .lines()
            .find(|l| l.starts_with("verified "))
            .unwrap_or_else(|| panic!("no summary in {}", self.out()))
            .to_owned();
        line.split(' ')
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key} in {line}"))
            .parse()
            .unwrap()
    }
}

/// Starts `veritrail args...`, with its output drained by threads.
fn spawn(args: &[&str]) -> (Guard, mpsc::Receiver<(Vec<u8>, String)>) {
    let mut child = veritrail()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        });
        let mut stdout = Vec::new();
        let _ = out.read_to_end(&mut stdout);
        let _ = tx.send((stdout, stderr.join().unwrap_or_default()));
    });
    (Guard(child), rx)
}

/// Waits (under [`DEADLINE`]) for a spawned command to finish.
fn finish(mut guard: Guard, output: &mpsc::Receiver<(Vec<u8>, String)>) -> Run {
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = guard.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the command ran past the deadline"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let (stdout, stderr) = output.recv_timeout(DEADLINE).unwrap();
    Run {
        code: status.code(),
        stdout,
        stderr,
    }
}

/// Runs `veritrail args...` to completion.
fn run(args: &[&str]) -> Run {
    let (guard, output) = spawn(args);
    finish(guard, &output)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A running `veritrail serve` on `127.0.0.1:0` with an admin token.
struct Server {
    guard: Guard,
    url: String,
    key: String,
    token: String,
}

impl Server {
    /// Starts a server on `data`; `extra` flags (such as `--key`) are passed through.
    fn start(data: &Path, extra: &[&str]) -> Server {
        let mut child = veritrail()
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--checkpoint-interval",
                "10ms",
            ])
            .args(["--data", path(data)])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let guard = Guard(child);
        let (tx, rx) = mpsc::channel();
        // Keeps draining standard output, so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + DEADLINE;
        let (mut url, mut key) = (None, None);
        while url.is_none() || key.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).expect("the server started in time");
            if let Some(u) = line.strip_prefix("veritrail listening on ") {
                url = Some(u.to_owned());
            } else if let Some(k) = line.strip_prefix("verifier key: ") {
                key = Some(k.to_owned());
            }
        }
        let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
        Server {
            guard,
            url: url.unwrap(),
            key: key.unwrap(),
            token: token.trim().to_owned(),
        }
    }

    /// `args` followed by `--url` and `--token` for this server.
    fn args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = args.to_vec();
        all.extend(["--url", &self.url, "--token", &self.token]);
        all
    }

    /// `GET path` with the admin token: (status, body).
    fn get(&self, path: &str) -> (u16, Vec<u8>) {
        block_on(async {
            let response = http()
                .get(format!("{}{path}", self.url))
                .bearer_auth(&self.token)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.bytes().await.unwrap().to_vec())
        })
    }

    /// How many tiles and bundles (`/tile/...`) the server has served with 200.
    fn tiles_served(&self) -> u64 {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200);
        // Hash tiles and entry bundles are two routes.
        String::from_utf8(body)
            .unwrap()
            .lines()
            .filter(|l| {
                l.starts_with("veritrail_http_responses_total{")
                    && (l.contains(r#"route="/tile/{*path}""#)
                        || l.contains(r#"route="/tile/entries/{*path}""#))
                    && l.contains(r#"status="200""#)
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    }

    /// Appends `entries` in batches of 4096 (`application/x-veritrail-entries`).
    fn append_batches(&self, entries: &[Vec<u8>]) {
        block_on(async {
            let client = http();
            for chunk in entries.chunks(4096) {
                let mut body = Vec::new();
                for entry in chunk {
                    append_entry(&mut body, entry).unwrap();
                }
                let response = client
                    .post(format!("{}/v1/entries", self.url))
                    .bearer_auth(&self.token)
                    .header("content-type", "application/x-veritrail-entries")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
            }
        });
    }

    /// Waits until the published checkpoint covers `size` entries.
    fn wait_published(&self, size: u64) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let (status, note) = self.get("/checkpoint");
            let published = String::from_utf8_lossy(&note)
                .lines()
                .nth(1)
                .and_then(|l| l.parse::<u64>().ok());
            if status == 200 && published >= Some(size) {
                return;
            }
            assert!(Instant::now() < deadline, "no checkpoint of size {size}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Appends one entry with the CLI, waiting until it is published.
    fn append(&self, dir: &Path, entry: &[u8]) -> u64 {
        let file = dir.join("entry.tmp");
        std::fs::write(&file, entry).unwrap();
        let run = run(&self.args(&["append", "--wait", path(&file)])).expect(0);
        let out = run.out();
        let index = out.split(' ').nth(1).unwrap().parse().unwrap();
        assert_eq!(
            out.trim(),
            format!("index {index} leaf_hash {}", leaf_hash(entry).to_base64())
        );
        index
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// A new log key from `veritrail keygen`: (private key file, verifier key).
fn keygen(dir: &Path, name: &str, file: &str) -> (PathBuf, String) {
    let out = dir.join(file);
    let run = run(&["keygen", "--name", name, "--out", path(&out)]).expect(0);
    (out, run.out().trim().to_owned())
}

fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The `key value` lines `veritrail prove` prints.
fn proof_lines(run: &Run) -> Vec<String> {
    run.out().lines().map(str::to_owned).collect()
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[test]
fn a_receipt_verifies_offline_after_the_server_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("data"), &["--origin", "audit.test/log"]);
    let entry = dir.path().join("event.json");
    std::fs::write(&entry, br#"{"agent":"triage-bot","tool":"ehr.read"}"#).unwrap();
    let receipt = dir.path().join("r.tlog-proof");
    let key = server.key.clone();
    let appended = run(&server.args(&[
        "append",
        "--wait",
        "--receipt",
        path(&receipt),
        "--log-key",
        &key,
        path(&entry),
    ]))
    .expect(0);
    assert!(
        appended.out().starts_with("index 0 leaf_hash "),
        "{}",
        appended.out()
    );
    assert!(
        appended.stderr.contains("receipt verified: entry 0"),
        "{}",
        appended.stderr
    );

    // A caller's own idempotency key: running the command again returns the first result,
    // and the same key with another entry is refused without appending.
    let again =
        |entry: &Path| run(&server.args(&["append", "--idempotency-key", "run-42", path(entry)]));
    let second = dir.path().join("second.json");
    std::fs::write(&second, b"second event").unwrap();
    let first = again(&second).expect(0);
    assert!(
        first.out().starts_with("index 1 leaf_hash "),
        "{}",
        first.out()
    );
    assert_eq!(again(&second).expect(0).out(), first.out());
    let conflict = again(&entry).expect(2);
    assert!(
        conflict.stderr.contains("idempotency_conflict"),
        "{}",
        conflict.stderr
    );

    // Offline from here on.
    let _ = server.guard.0.kill();
    let _ = server.guard.0.wait();

    let verify = |key: &str, entry: &Path, receipt: &Path| {
        run(&[
            "verify-receipt",
            "--log-key",
            key,
            "--entry",
            path(entry),
            path(receipt),
        ])
    };
    let valid = verify(&key, &entry, &receipt).expect(0);
    assert_eq!(
        valid.out(),
        "valid: entry 0 is in audit.test/log at tree size 1\n"
    );
    // The key may also come from a file: the one the server wrote into its data directory.
    let key_file = dir.path().join("data").join("log.vkey");
    assert_eq!(
        std::fs::read_to_string(&key_file).unwrap(),
        format!("{key}\n")
    );
    verify(path(&key_file), &entry, &receipt).expect(0);

    // One changed byte in the entry: invalid, one line on standard output.
    let modified = dir.path().join("modified.json");
    std::fs::write(&modified, br#"{"agent":"triage-bot","tool":"ehr.rEad"}"#).unwrap();
    let invalid = verify(&key, &modified, &receipt).expect(1);
    assert_eq!(invalid.out().lines().count(), 1, "{}", invalid.out());
    assert!(
        invalid.out().starts_with("invalid: inclusion proof: "),
        "{}",
        invalid.out()
    );

    let garbage = dir.path().join("garbage.tlog-proof");
    std::fs::write(
        &garbage,
        b"c2sp.org/tlog-proof@v1\nindex zero\n\nnot a note\n",
    )
    .unwrap();
    let invalid = verify(&key, &entry, &garbage).expect(1);
    assert!(invalid.out().starts_with("invalid: "), "{}", invalid.out());
    std::fs::write(&garbage, [0xff; 100]).unwrap();
    verify(&key, &entry, &garbage).expect(1);

    // Another log's key with the same name: the signature does not verify.
    let (_, other) = keygen(dir.path(), "audit.test/log", "other.key");
    let invalid = verify(&other, &entry, &receipt).expect(1);
    assert!(
        invalid.out().starts_with("invalid: checkpoint: "),
        "{}",
        invalid.out()
    );

    // A file that cannot be read is not a verdict.
    let missing = verify(&key, &entry, &dir.path().join("missing")).expect(2);
    assert!(
        missing.stderr.contains("error: cannot read"),
        "{}",
        missing.stderr
    );
    assert!(missing.stderr.contains("hint: "), "{}", missing.stderr);
}

#[test]
fn monitor_audits_100k_entries_and_resumes_without_downloading_again() {
    const N: u64 = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let entries: Vec<Vec<u8>> = (0..N)
        .map(|i| format!("{{\"event\":{i},\"agent\":\"load\"}}").into_bytes())
        .collect();
    let started = Instant::now();
    server.append_batches(&entries);
    server.wait_published(N);
    eprintln!("appended {N} entries in {:?}", started.elapsed());
    let key = server.key.clone();
    let monitor = |state: &Path, extra: &[&str]| -> Vec<String> {
        let mut args = vec![
            "monitor",
            "--once",
            "--log-key",
            &key,
            "--state",
            path(state),
        ];
        args.extend(extra);
        server.args(&args).iter().map(|s| (*s).to_owned()).collect()
    };

    // A full audit from scratch.
    let full_state = dir.path().join("full.json");
    let before = server.tiles_served();
    let started = Instant::now();
    let full = run(&as_strs(&monitor(&full_state, &[]))).expect(0);
    let full_elapsed = started.elapsed();
    let full_tiles = server.tiles_served() - before;
    eprintln!(
        "monitor --once over {N} entries: {full_elapsed:?}, {full_tiles} tiles\n{}",
        full.out()
    );
    assert_eq!(full.summary("tree_size"), N);
    assert_eq!(full.summary("entries_verified"), N);
    assert_eq!(full.summary("resumed_from"), 0);
    let bundles = N.div_ceil(256);
    assert_eq!(full.summary("bundles_fetched"), bundles);
    // Every bundle and its level-0 tile, plus a few tiles of the higher levels.
    assert!(
        (2 * bundles..2 * bundles + 8).contains(&full_tiles),
        "{full_tiles}"
    );
    assert!(full_state.exists());

    // Restart: SIGKILL once the cache has committed some progress, then run again.
    let state = dir.path().join("restart.json");
    let progress_file = dir.path().join("restart.json.tiles/progress.json");
    let committed = || -> Option<u64> {
        let bytes = std::fs::read(&progress_file).ok()?;
        serde_json::from_slice::<serde_json::Value>(&bytes).ok()?["size"].as_u64()
    };
    let args = monitor(&state, &["--commit-every", "2048", "--parallel", "1"]);
    let (mut guard, _output) = spawn(&as_strs(&args));
    let deadline = Instant::now() + DEADLINE;
    loop {
        if committed().is_some_and(|size| size >= N / 4) {
            guard.0.kill().unwrap();
            guard.0.wait().unwrap();
            break;
        }
        assert!(
            guard.0.try_wait().unwrap().is_none(),
            "the monitor finished before it could be interrupted"
        );
        assert!(Instant::now() < deadline, "no progress committed in time");
        std::thread::sleep(Duration::from_millis(1));
    }
    let resumed = committed().unwrap();
    assert!(resumed > 0 && resumed < N, "{resumed}");
    assert!(!state.exists(), "the interrupted run trusted nothing");

    let before = server.tiles_served();
    let started = Instant::now();
    let rerun = run(&as_strs(&monitor(&state, &[]))).expect(0);
    let tiles = server.tiles_served() - before;
    eprintln!(
        "resumed from {resumed}: {:?}, {tiles} tiles\n{}",
        started.elapsed(),
        rerun.out()
    );
    assert_eq!(rerun.summary("resumed_from"), resumed);
    assert_eq!(rerun.summary("tree_size"), N);
    assert_eq!(rerun.summary("entries_verified"), N - resumed);
    let remaining = bundles - resumed / 256;
    assert_eq!(rerun.summary("bundles_fetched"), remaining);
    assert!(
        (2 * remaining..2 * remaining + 8).contains(&tiles),
        "{tiles} tile requests for {remaining} remaining bundles"
    );
    assert!(tiles < full_tiles, "{tiles} >= {full_tiles}");

    // Caught up: nothing to download.
    let before = server.tiles_served();
    let again = run(&as_strs(&monitor(&state, &[]))).expect(0);
    assert_eq!(again.summary("entries_verified"), 0);
    assert_eq!(server.tiles_served() - before, 0);
}

#[test]
fn checkpoint_get_and_prove_verify_against_the_trusted_state() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let state = dir.path().join("state.json");
    let key = server.key.clone();
    // Entry 5 has bytes that are not text and no trailing newline.
    let entries: Vec<Vec<u8>> = (0u8..8)
        .map(|i| {
            if i == 5 {
                vec![0, 0xff, b'\n', b'\r', i]
            } else {
                format!("event {i}").into_bytes()
            }
        })
        .collect();
    for entry in &entries[..3] {
        server.append(dir.path(), entry);
    }
    let checkpoint = || {
        run(&server.args(&[
            "checkpoint",
            "--verify",
            "--log-key",
            &key,
            "--state",
            path(&state),
        ]))
        .expect(0)
    };
    let first = checkpoint();
    assert!(first.stderr.contains("first: "), "{}", first.stderr);
    assert_eq!(first.out().lines().nth(1), Some("3"), "{}", first.out());
    for entry in &entries[3..] {
        server.append(dir.path(), entry);
    }
    let grew = checkpoint();
    assert!(grew.stderr.contains("grew from 3 to 8"), "{}", grew.stderr);
    assert_eq!(grew.out().lines().nth(1), Some("8"));
    let same = checkpoint();
    assert!(
        same.stderr.contains("unchanged at size 8"),
        "{}",
        same.stderr
    );

    // get: raw, and verified (with proofs from tiles and from the API).
    let raw = run(&server.args(&["get", "5"])).expect(0);
    assert_eq!(raw.stdout, entries[5]);
    for proofs in ["tiles", "api"] {
        let verified = run(&server.args(&[
            "get",
            "5",
            "--verify",
            "--log-key",
            &key,
            "--state",
            path(&state),
            "--proofs",
            proofs,
        ]))
        .expect(0);
        assert_eq!(verified.stdout, entries[5]);
        assert_eq!(verified.stderr.lines().count(), 1, "{}", verified.stderr);
        assert!(
            verified.stderr.starts_with("verified: entry 5 "),
            "{}",
            verified.stderr
        );
    }
    let out = dir.path().join("entry5");
    run(&server.args(&[
        "get",
        "5",
        "--verify",
        "--log-key",
        &key,
        "--out",
        path(&out),
    ]))
    .expect(0);
    assert_eq!(std::fs::read(&out).unwrap(), entries[5]);
    // Beyond the tree: the caller's mistake (2), not the log's.
    let beyond = run(&server.args(&["get", "8", "--verify", "--log-key", &key])).expect(2);
    assert!(beyond.stderr.contains("hint: "), "{}", beyond.stderr);
    run(&server.args(&["get", "8"])).expect(2);

    // prove: by index and by leaf hash, from tiles and from the API, all agree.
    let receipt = dir.path().join("5.tlog-proof");
    let by_index = run(&server.args(&[
        "prove",
        "5",
        "--log-key",
        &key,
        "--state",
        path(&state),
        "--receipt",
        path(&receipt),
    ]))
    .expect(0);
    let lines = proof_lines(&by_index);
    let leaf = leaf_hash(&entries[5]).to_base64();
    assert_eq!(lines[0], "index 5");
    assert_eq!(lines[1], format!("leaf_hash {leaf}"));
    assert_eq!(lines[2], "tree_size 8");
    assert_eq!(lines.iter().filter(|l| l.starts_with("proof ")).count(), 3);
    for args in [
        vec!["prove", "--leaf-hash", &leaf],
        vec!["prove", "5", "--proofs", "api"],
        vec!["prove", "--leaf-hash", &leaf, "--proofs", "api"],
    ] {
        let mut args = args;
        args.extend(["--log-key", &key, "--state", path(&state)]);
        let other = run(&server.args(&args)).expect(0);
        assert_eq!(proof_lines(&other), lines, "{args:?}");
    }
    let entry5 = dir.path().join("entry5.bin");
    std::fs::write(&entry5, &entries[5]).unwrap();
    run(&[
        "verify-receipt",
        "--log-key",
        &key,
        "--entry",
        path(&entry5),
        path(&receipt),
    ])
    .expect(0);
    let unknown = leaf_hash(b"never appended").to_base64();
    run(&server.args(&["prove", "--leaf-hash", &unknown, "--log-key", &key])).expect(2);

    // monitor --dir: audit a copy of the log on disk (C2SP layout).
    let copy = dir.path().join("copy");
    std::fs::create_dir_all(copy.join("tile/0/000.p")).unwrap();
    std::fs::create_dir_all(copy.join("tile/entries/000.p")).unwrap();
    for file in ["checkpoint", "tile/0/000.p/8", "tile/entries/000.p/8"] {
        let (status, body) = server.get(&format!("/{file}"));
        assert_eq!(status, 200, "{file}");
        std::fs::write(copy.join(file), body).unwrap();
    }
    let audit = run(&[
        "monitor",
        "--once",
        "--dir",
        path(&copy),
        "--log-key",
        &key,
        "--state",
        path(&dir.path().join("copy.json")),
    ])
    .expect(0);
    assert_eq!(audit.summary("tree_size"), 8);
    assert_eq!(audit.summary("entries_verified"), 8);

    // Following the log: one summary per catch-up that found new entries, until SIGTERM.
    #[cfg(unix)]
    {
        let follow_state = dir.path().join("follow.json");
        let (guard, output) = spawn(&server.args(&[
            "monitor",
            "--interval",
            "20ms",
            "--log-key",
            &key,
            "--state",
            path(&follow_state),
        ]));
        let trusted_size = || -> Option<u64> {
            let json: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&follow_state).ok()?).ok()?;
            json["checkpoint"].as_str()?.lines().nth(1)?.parse().ok()
        };
        wait_until("the first catch-up", || trusted_size() == Some(8));
        server.append(dir.path(), b"event 8");
        wait_until("the second catch-up", || trusted_size() == Some(9));
        let pid = guard.0.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let followed = finish(guard, &output).expect(0);
        let summaries: Vec<String> = followed
            .out()
            .lines()
            .filter(|l| l.starts_with("verified "))
            .map(str::to_owned)
            .collect();
        assert_eq!(summaries.len(), 2, "{}", followed.out());
        assert!(
            summaries[1].starts_with(
                "verified tree_size=9 previous_size=8 resumed_from=8 entries_verified=1 "
            ),
            "{}",
            summaries[1]
        );
        assert!(followed.stderr.contains("stopped"), "{}", followed.stderr);
    }
}

/// Polls `done` until it holds, under [`DEADLINE`].
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "{what} did not happen in time");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_split_view_is_written_as_evidence_that_verifies_offline() {
    let dir = tempfile::tempdir().unwrap();
    // Two logs signed with the same key: one of them is a fork.
    let (key_file, key) = keygen(dir.path(), "fork.test/log", "log.key");
    let flags = ["--key", path(&key_file), "--origin", "fork.test/log"];
    let honest = Server::start(&dir.path().join("a"), &flags);
    let fork = Server::start(&dir.path().join("b"), &flags);
    assert_eq!(honest.key, key);
    assert_eq!(fork.key, key);
    for i in 0..5 {
        honest.append(dir.path(), format!("honest {i}").as_bytes());
    }
    for i in 0..8 {
        fork.append(dir.path(), format!("rewritten {i}").as_bytes());
    }

    // checkpoint --verify: trust the honest log's checkpoint, then meet the fork.
    let state = dir.path().join("cp.json");
    let verify = |server: &Server| {
        run(&server.args(&[
            "checkpoint",
            "--verify",
            "--log-key",
            &key,
            "--state",
            path(&state),
        ]))
    };
    verify(&honest).expect(0);
    let split = verify(&fork).expect(1);
    let evidence = dir.path().join("cp.json.evidence.json");
    assert!(
        split.stderr.contains(&format!(
            "wrote split-view evidence to {}",
            evidence.display()
        )),
        "{}",
        split.stderr
    );
    assert!(
        split.stderr.contains("error: the log failed verification"),
        "{}",
        split.stderr
    );
    assert!(split.stderr.contains("hint: "), "{}", split.stderr);
    // Trust did not move.
    verify(&honest).expect(0);

    // The monitor finds it too.
    let monitor_state = dir.path().join("monitor.json");
    let monitor = |server: &Server| {
        run(&server.args(&[
            "monitor",
            "--once",
            "--log-key",
            &key,
            "--state",
            path(&monitor_state),
        ]))
    };
    monitor(&honest).expect(0);
    let split = monitor(&fork).expect(1);
    let monitor_evidence = dir.path().join("monitor.json.evidence.json");
    assert!(monitor_evidence.exists(), "{}", split.stderr);

    let verify_evidence =
        |key: &str, file: &Path| run(&["verify-evidence", "--log-key", key, path(file)]);
    for file in [&evidence, &monitor_evidence] {
        let proven = verify_evidence(&key, file).expect(0);
        assert!(
            proven
                .out()
                .starts_with("proven: fork.test/log signed a checkpoint of size 5"),
            "{}",
            proven.out()
        );
    }

    // A tampered copy proves nothing.
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&evidence).unwrap()).unwrap();
    json["prefix_root_in_b"] = leaf_hash(b"made up").to_base64().into();
    let tampered = dir.path().join("tampered.json");
    std::fs::write(&tampered, serde_json::to_vec(&json).unwrap()).unwrap();
    let not = verify_evidence(&key, &tampered).expect(1);
    assert!(not.out().starts_with("not proven: "), "{}", not.out());
    let text = std::fs::read_to_string(&evidence).unwrap();
    std::fs::write(&tampered, text.replacen("\\n5\\n", "\\n6\\n", 1)).unwrap();
    verify_evidence(&key, &tampered).expect(1);
    std::fs::write(&tampered, b"{}").unwrap();
    verify_evidence(&key, &tampered).expect(1);
    // Under another key, the signatures are not the log's.
    let (_, other) = keygen(dir.path(), "fork.test/log", "other.key");
    let not = verify_evidence(&other, &evidence).expect(1);
    assert!(
        not.out().starts_with("not proven: checkpoint a "),
        "{}",
        not.out()
    );
    verify_evidence(&key, &dir.path().join("missing.json")).expect(2);
}

#[test]
fn usage_and_network_failures_exit_2_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let (_, key) = keygen(dir.path(), "usage.test/log", "log.key");
    let state = dir.path().join("state.json");
    let expect_hint = |run: Run| {
        let run = run.expect(2);
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert!(
            lines.iter().any(|l| l.starts_with("error: "))
                && lines.iter().any(|l| l.starts_with("hint: ")),
            "{}",
            run.stderr
        );
    };
    expect_hint(run(&["monitor", "--once", "--state", path(&state)]));
    expect_hint(run(&["monitor", "--once", "--log-key", &key]));
    expect_hint(run(&["get", "1", "--verify"]));
    expect_hint(run(&["checkpoint", "--verify", "--log-key", "not-a-key"]));
    // The key may also be given in the environment.
    let env_key = veritrail()
        .args([
            "monitor",
            "--once",
            "--state",
            path(&state),
            "--url",
            "ftp://x",
        ])
        .env("VERITRAIL_LOG_KEY", &key)
        .output()
        .unwrap();
    assert_eq!(env_key.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&env_key.stderr).contains("hint: pass --url"));

    // A port that was free a moment ago: nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let entry = dir.path().join("entry");
    std::fs::write(&entry, b"an entry").unwrap();
    for args in [
        vec!["checkpoint"],
        vec![
            "checkpoint",
            "--verify",
            "--log-key",
            &key,
            "--state",
            path(&state),
        ],
        vec![
            "monitor",
            "--once",
            "--log-key",
            &key,
            "--state",
            path(&state),
        ],
        vec!["append", path(&entry)],
    ] {
        let mut args = args;
        args.extend(["--url", &url, "--timeout", "2s"]);
        let run = run(&args);
        assert!(run.stderr.contains("Connection refused"), "{}", run.stderr);
        expect_hint(run);
    }
    assert!(!state.exists(), "nothing was trusted");
}

#[test]
fn record_appends_checked_agent_records_with_verified_receipts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--origin", "records.test/log"]);
    let events = dir.path().join("events.json");
    std::fs::write(
        &events,
        br#"[
          {"timestamp": "2026-03-01T12:00:00Z", "action": "conversation_started",
           "actor": {"id": "u-1", "type": "user"}, "conversation_id": "c-1"},
          {"timestamp": "2026-03-01T12:00:01Z", "action": "tool_invoked",
           "actor": {"id": "triage", "type": "agent"}, "conversation_id": "c-1",
           "gen_ai": {"gen_ai.tool.name": "ehr_read"}, "compliance": ["soc2", "hipaa"]}
        ]"#,
    )
    .unwrap();
    let key = server.key.clone();
    let recorded =
        run(&server.args(&["record", "--wait", "--log-key", &key, path(&events)])).expect(0);
    let lines: Vec<String> = recorded.out().lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2, "{}", recorded.out());
    for (i, line) in lines.iter().enumerate() {
        assert!(line.starts_with(&format!("index {i} id ")), "{line}");
    }
    assert!(
        recorded.stderr.contains("receipts verified: 2 record(s)"),
        "{}",
        recorded.stderr
    );
    // The second record links to the first: read it back as the admin (audit role).
    server.wait_published(2);
    let (status, body) = server.get("/v1/records/1");
    assert_eq!(status, 200);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["record"]["prev"]["index"], 0);
    assert_eq!(body["record"]["submitted_by"]["name"], "admin");
    assert_eq!(
        body["record"]["compliance"],
        serde_json::json!(["hipaa", "soc2"])
    );

    // An invalid event: exit 2, every field at fault named, nothing appended.
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        br#"{"timestamp": "yesterday", "action": "launch", "actor": {"id": "x", "type": "robot"}}"#,
    )
    .unwrap();
    let refused = run(&server.args(&["record", path(&bad)])).expect(2);
    for field in ["timestamp", "action", "actor.type", "invalid_record"] {
        assert!(
            refused.stderr.contains(field),
            "{field}: {}",
            refused.stderr
        );
    }
    let not_json = dir.path().join("not.json");
    std::fs::write(&not_json, b"{oops").unwrap();
    let refused = run(&server.args(&["record", path(&not_json)])).expect(2);
    assert!(refused.stderr.contains("is not JSON"), "{}", refused.stderr);

    // A payload: written only once the record and the payload are proven; gone after erasure.
    let with_payload = dir.path().join("payload.json");
    std::fs::write(
        &with_payload,
        br#"{"timestamp": "2026-03-01T12:00:02Z", "action": "user_message_received",
             "actor": {"id": "u-1", "type": "user"}, "conversation_id": "c-1",
             "subject": "P-0042",
             "payloads": {"prompt": {"media_type": "text/plain", "text": "Is my biopsy benign?"}}}"#,
    )
    .unwrap();
    let recorded =
        run(&server.args(&["record", "--wait", "--log-key", &key, path(&with_payload)])).expect(0);
    // After the records above and the access record of the read of record 1.
    assert!(recorded.out().starts_with("index 3 "), "{}", recorded.out());
    let at = "3";
    let out = dir.path().join("prompt.txt");
    let fetched = run(&server.args(&[
        "payload",
        "--log-key",
        &key,
        "--out",
        path(&out),
        at,
        "prompt",
    ]))
    .expect(0);
    assert!(fetched.stderr.contains("verified"), "{}", fetched.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), b"Is my biopsy benign?");
    let unproven = run(&server.args(&["payload", at, "prompt"])).expect(2);
    assert!(unproven.stderr.contains("--log-key"), "{}", unproven.stderr);
    let erased = block_on(async {
        http()
            .post(format!("{}/v1/admin/erase", server.url))
            .bearer_auth(&server.token)
            .header("content-type", "application/json")
            .body(r#"{"subject": "P-0042", "reason": "patient request"}"#)
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(erased, 200);
    let gone = run(&server.args(&["payload", "--log-key", &key, at, "prompt"])).expect(2);
    assert!(gone.stderr.contains("payload_erased"), "{}", gone.stderr);

    // Queries: every answer proven and matching; the erasure record is found by its action.
    let mut attempts = 0;
    let listed = loop {
        // The indexes catch up behind the committer: retry a refusal for a moment.
        let listed = run(&server.args(&[
            "query",
            "--log-key",
            &key,
            "--conversation-id",
            "c-1",
            "--json",
        ]));
        if listed.code == Some(0) || attempts == 50 {
            break listed.expect(0);
        }
        attempts += 1;
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let items: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let indices: Vec<u64> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["index"].as_u64().unwrap())
        .collect();
    assert!(indices.contains(&3), "{indices:?}");
    assert!(
        items
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["record"]["conversation_id"] == "c-1")
    );
    assert!(listed.stderr.contains("proven"), "{}", listed.stderr);
    let erasures = run(&server.args(&[
        "query",
        "--log-key",
        &key,
        "--action",
        "x-veritrail.erasure",
    ]))
    .expect(0);
    assert_eq!(erasures.out().lines().count(), 1, "{}", erasures.out());
    assert!(
        erasures.out().contains("x-veritrail.erasure"),
        "{}",
        erasures.out()
    );
    let bad =
        run(&server.args(&["query", "--log-key", &key, "--classification", "secret"])).expect(2);
    assert!(bad.stderr.contains("--classification"), "{}", bad.stderr);
    drop(server);
}
