//! Connection hardening against the real binary: a flood of idle and slow connections
//! (zero-byte, partial head, byte-at-a-time, idle keep-alive) beyond the connection cap never
//! keeps `/healthz` or an authenticated append from being answered within a second, and every
//! such connection is closed once the header timeout has passed.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::ChildGuard;

/// Connections of each kind in the flood (2,000 in all, twice the server's cap).
const EACH: usize = 500;
const CAP: &str = "1000";
const HEADER_TIMEOUT: Duration = Duration::from_secs(4);

/// Raises this test's open-files limit: it holds 2,000 sockets.
fn raise_files() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    );
    let now = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    assert!(
        now >= 4 * EACH as u64 + 256,
        "this test holds {} sockets but may open only {now} files",
        4 * EACH
    );
}

fn start(data: &std::path::Path, extra: &[&str]) -> (ChildGuard, SocketAddr) {
    let (child, lines) = support::spawn_lines(
        Command::new(env!("CARGO_BIN_EXE_veritrail"))
            .args(["serve", "--data"])
            .arg(data)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--max-connections",
                CAP,
                "--header-timeout",
                "4s",
            ])
            .args(extra)
            .stderr(Stdio::null()),
    );
    let addr = support::line_after(
        &lines,
        "veritrail listening on http://",
        Duration::from_secs(60),
    );
    (child, addr.parse().unwrap())
}

/// Sends `request` on a fresh connection and returns the status and the time it took.
fn answer(addr: SocketAddr, request: &[u8]) -> (u16, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    let status = std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap();
    (status, started.elapsed())
}

/// The value of the Prometheus counter or gauge `name` (0 if absent).
fn metric(addr: SocketAddr, token: &str, name: &str) -> f64 {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// True once the server has closed `stream` (end of file or reset), reading at most until
/// `deadline`.
fn closed_by(stream: &mut TcpStream, deadline: Instant) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn a_flood_of_idle_and_slow_connections_never_blocks_health_or_appends() {
    raise_files();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_server, addr) = start(&data, &[]);
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let append = format!(
        "POST /v1/entries HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: 5\r\n\r\nhello",
        token.trim()
    );
    let health = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_eq!(answer(addr, health).0, 200);

    // The flood: four kinds, 500 each.
    let connect = || TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    let mut held: Vec<(&str, TcpStream)> = Vec::new();
    for _ in 0..EACH {
        held.push(("zero-byte", connect()));
        let mut partial = connect();
        partial
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
            .unwrap();
        held.push(("partial head", partial));
        let mut keep_alive = connect();
        keep_alive.write_all(health).unwrap();
        let mut head = [0u8; 12];
        keep_alive.read_exact(&mut head).unwrap();
        held.push(("idle keep-alive", keep_alive));
    }
    let slow: Vec<TcpStream> = (0..EACH).map(|_| connect()).collect();
    let dribbling = Arc::new(AtomicBool::new(true));
    let dribbler = {
        let dribbling = Arc::clone(&dribbling);
        let mut slow: Vec<TcpStream> = slow.iter().map(|s| s.try_clone().unwrap()).collect();
        std::thread::spawn(move || {
            let request = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ";
            let mut sent = 0usize;
            while dribbling.load(Ordering::Relaxed) {
                let byte = request.get(sent).copied().unwrap_or(b'a');
                for stream in &mut slow {
                    let _ = stream.write(&[byte]);
                }
                sent += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    // While the flood is held (twice the cap), health and appends answer within a second.
    let flood_started = Instant::now();
    for round in 0..5 {
        let (status, took) = answer(addr, health);
        assert_eq!(status, 200, "healthz, round {round}");
        assert!(took < Duration::from_secs(1), "healthz took {took:?}");
        let (status, took) = answer(addr, append.as_bytes());
        assert_eq!(status, 200, "append, round {round}");
        assert!(took < Duration::from_secs(1), "append took {took:?}");
    }
    assert!(
        flood_started.elapsed() < HEADER_TIMEOUT,
        "the probes ran while the flood was held"
    );
    // The flood went past the cap: idle connections were closed to make room.
    let evicted = metric(addr, token.trim(), "veritrail_connections_evicted_total");
    assert!(evicted >= 900.0, "evicted {evicted}");

    // Every flood connection is closed once the header timeout has passed (some earlier, to
    // make room at the cap).
    let deadline = Instant::now() + HEADER_TIMEOUT + Duration::from_secs(3);
    for (kind, mut stream) in held {
        assert!(
            closed_by(&mut stream, deadline),
            "a {kind} connection is still open"
        );
    }
    for mut stream in slow {
        assert!(
            closed_by(&mut stream, deadline),
            "a byte-at-a-time connection is still open"
        );
    }
    dribbling.store(false, Ordering::Relaxed);
    dribbler.join().unwrap();
    let (status, took) = answer(addr, health);
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(1));
}

/// The whole answer to `request` on a fresh connection, read until the server closes it.
fn exchange(addr: SocketAddr, request: &[u8]) -> (String, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    (
        String::from_utf8_lossy(&bytes).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn oversized_requests_are_refused_early_with_json_and_h2c_is_not_spoken() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_server, addr) = start(&data, &["--max-requests-per-connection", "2"]);
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let token = token.trim();

    // A declared 100 MiB body: 413 before any body byte is sent.
    let (answer, took) = exchange(
        addr,
        format!(
            "POST /v1/entries HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\
             Content-Length: 104857600\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains(r#""error":"payload_too_large""#),
        "{answer}"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");

    // Headers and targets beyond --max-header-bytes (16 KiB): JSON 431 and 414.
    let big = "a".repeat(20_000);
    let (answer, _) = exchange(
        addr,
        format!("GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: {big}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert!(
        answer.contains(r#""error":"headers_too_large""#),
        "{answer}"
    );
    let (answer, _) = exchange(
        addr,
        format!("GET /healthz?{big} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert!(answer.starts_with("HTTP/1.1 414"), "{answer}");
    assert!(answer.contains(r#""error":"uri_too_long""#), "{answer}");

    // An HTTP/2 prior-knowledge preface is not answered as HTTP/2.
    let (answer, _) = exchange(addr, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    assert!(!answer.contains("HTTP/2"), "{answer}");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "{answer}"
    );

    // A connection is closed after --max-requests-per-connection (2 here): the second
    // answer says so and the server closes it.
    let (answer, _) = exchange(
        addr,
        b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 2, "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
}
