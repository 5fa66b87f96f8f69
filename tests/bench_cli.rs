//! `veritrail bench append` against a real `veritrail serve` and in-process, run as a user
//! would. Every child process is bounded in time and killed on drop.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest a server may take to print its address.
const STARTUP: Duration = Duration::from_secs(30);
/// Longest one bench run may take (it is also given `--duration` well below this).
const RUN_LIMIT: Duration = Duration::from_secs(120);

fn veritrail() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_veritrail"));
    command
        .env_remove("VERITRAIL_DATA")
        .env_remove("VERITRAIL_TOKEN");
    command
}

/// A `veritrail serve` child, killed when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(data: &Path) -> Server {
        let mut child = veritrail()
            .args(["serve", "--no-auth", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        // Keep the server alive: the guard exists before anything can fail.
        let mut server = Server {
            child,
            addr: String::new(),
        };
        let (lines, received) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break; // the test is over
                }
            }
        });
        let deadline = Instant::now() + STARTUP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = received
                .recv_timeout(left)
                .expect("the server printed its address in time");
            if let Some(addr) = line.strip_prefix("veritrail listening on http://") {
                server.addr = addr.trim().to_owned();
                break;
            }
        }
        // Drain the rest of standard output so that the server never blocks on a full pipe.
        std::thread::spawn(move || while received.recv().is_ok() {});
        server
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `GET path` with a one-off HTTP/1.1 connection: (status, body).
    fn get(&self, path: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, body.to_owned())
    }

    /// The committed tree size, from `/readyz`.
    fn tree_size(&self) -> u64 {
        let (status, body) = self.get("/readyz");
        assert_eq!(status, 200, "{body}");
        json_u64(&body, "tree_size")
    }
}

/// The unsigned integer value of `"key":` in a flat JSON object.
fn json_u64(json: &str, key: &str) -> u64 {
    let pattern = format!("\"{key}\":");
    let start = json
        .find(&pattern)
        .unwrap_or_else(|| panic!("{key} in {json}"))
        + pattern.len();
    json[start..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

fn reader(mut pipe: impl std::io::Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

/// Runs `veritrail <args>`, killing it if it outlives [`RUN_LIMIT`].
fn run(args: &[&str]) -> Run {
    let mut child = veritrail()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = reader(child.stdout.take().unwrap());
    let stderr = reader(child.stderr.take().unwrap());
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("veritrail {args:?} ran longer than {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Checks the machine-readable last line; returns (appends/s, p50, p95, p99).
fn machine_line(stdout: &str) -> (u64, f64, f64, f64) {
    let last = stdout.lines().last().expect("some output");
    let fields: Vec<&str> = last.split(' ').collect();
    assert_eq!(fields.len(), 4, "last line: {last:?}");
    let value = |i: usize, key: &str| -> &str {
        fields[i]
            .strip_prefix(key)
            .and_then(|v| v.strip_prefix('='))
            .unwrap_or_else(|| panic!("field {i} is not {key}=...: {last:?}"))
    };
    let rate = value(0, "appends_per_s");
    assert!(
        !rate.is_empty() && rate.bytes().all(|b| b.is_ascii_digit()),
        "{last:?}"
    );
    let millis = |i: usize, key: &str| -> f64 {
        let text = value(i, key);
        let (whole, fraction) = text.split_once('.').expect("a decimal");
        assert!(
            !whole.is_empty()
                && whole.bytes().all(|b| b.is_ascii_digit())
                && fraction.len() == 3
                && fraction.bytes().all(|b| b.is_ascii_digit()),
            "{last:?}"
        );
        text.parse().unwrap()
    };
    let (p50, p95, p99) = (
        millis(1, "p50_ms"),
        millis(2, "p95_ms"),
        millis(3, "p99_ms"),
    );
    assert!(p50 > 0.0 && p50 <= p95 && p95 <= p99, "{last:?}");
    (rate.parse().unwrap(), p50, p95, p99)
}

#[test]
fn http_bench_appends_every_entry_and_ends_with_the_machine_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let url = server.url();
    let out = run(&[
        "bench",
        "append",
        "--url",
        &url,
        "--entries",
        "2000",
        "--concurrency",
        "16",
        "--size",
        "64",
        "--duration",
        "60s",
    ]);
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    let (rate, ..) = machine_line(&out.stdout);
    assert!(rate > 0);
    assert!(out.stdout.contains("errors: none"), "{}", out.stdout);
    assert!(
        out.stdout.contains("appended: 2000 of 2000 entries"),
        "{}",
        out.stdout
    );
    // Appends are answered only once durable: the committed tree has them all at once.
    assert_eq!(server.tree_size(), 2000);

    // Batches of 4 that wait for a signed checkpoint covering them.
    let out = run(&[
        "bench",
        "append",
        "--url",
        &url,
        "--entries",
        "64",
        "--concurrency",
        "4",
        "--size",
        "16",
        "--batch",
        "4",
        "--wait",
        "published",
        "--duration",
        "60s",
    ]);
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    machine_line(&out.stdout);
    assert!(
        out.stdout
            .contains("appended: 64 of 64 entries in 16 requests"),
        "{}",
        out.stdout
    );
    assert_eq!(server.tree_size(), 2064);
    let (status, checkpoint) = server.get("/checkpoint");
    assert_eq!(status, 200);
    let size: u64 = checkpoint.lines().nth(1).unwrap().parse().unwrap();
    assert!(size >= 2064, "{checkpoint}");
}

#[test]
fn record_and_otlp_loads_become_records() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let url = server.url();
    let load = |flag: &str| {
        let out = run(&[
            "bench",
            "append",
            "--url",
            &url,
            flag,
            "--entries",
            "60",
            "--concurrency",
            "3",
            "--size",
            "200",
            "--batch",
            "7",
            "--duration",
            "60s",
        ]);
        assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
        machine_line(&out.stdout);
        assert!(out.stdout.contains("errors: none"), "{}", out.stdout);
        assert!(out.stdout.contains("appended: 60 of 60"), "{}", out.stdout);
    };
    let before = server.tree_size();
    load("--records");
    load("--otlp");
    // Every span is one record (and nothing else was appended).
    assert_eq!(server.tree_size(), before + 120);
    let (status, page) = server.get("/v1/records?action=agent_response_generated&limit=1000");
    assert_eq!(status, 200, "{page}");
    let page: serde_json::Value = serde_json::from_str(&page).unwrap();
    let records = page["records"].as_array().unwrap();
    assert_eq!(records.len(), 60, "{page}");
    for record in records {
        let record = &record["record"];
        assert_eq!(record["gen_ai"]["gen_ai.operation.name"], "chat");
        assert!(record["payloads"]["response"].is_object(), "{record}");
    }
}

#[test]
fn in_process_bench_appends_to_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let out = run(&[
        "bench",
        "append",
        "--in-process",
        "--data",
        data,
        "--entries",
        "300",
        "--concurrency",
        "8",
        "--size",
        "32",
        "--batch",
        "3",
        "--duration",
        "60s",
    ]);
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    machine_line(&out.stdout);
    assert!(out.stdout.contains("in-process"), "{}", out.stdout);
    let verify = run(&["log", "verify", "--data", data]);
    assert!(verify.status.success(), "{}", verify.stderr);
    assert!(
        verify.stdout.lines().any(|l| l == "tree_size 300"),
        "{}",
        verify.stdout
    );
}

#[test]
fn an_unreachable_server_fails_fast_with_a_hint() {
    // A port that was free a moment ago: nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = run(&["bench", "append", "--url", &url, "--entries", "10"]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("cannot reach"), "{}", out.stderr);
    assert!(out.stderr.contains("hint:"), "{}", out.stderr);
    let bad = run(&["bench", "append", "--url", "https://example.invalid"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(bad.stderr.contains("not http://"), "{}", bad.stderr);
}
