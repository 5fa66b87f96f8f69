//! Verified reads, end to end (issue 14): the real `veritrail serve` binary on a store where
//! one entry was edited while the server was stopped.
//!
//! The forgery keeps the entry's length and recomputes its frame's CRC-32, so it passes every
//! check of the file format: only the leaf hash in the level-0 tile tells. The restarted
//! server starts; the forged entry is never served (raw, JSON with `?proof=1`, any width of the
//! entry bundle holding it) — each answers 500 `corrupted`, the log names the entry, the
//! counter counts it and `/readyz` fails from then on — while the other entries still serve
//! and verify against the signed checkpoint.
//!
//! Every child process is killed by a drop guard, also when a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use support::ChildGuard;

use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use veritrail_ledger::bundle::{append_entry, decode_bundle, encode_bundle};
use veritrail_ledger::checkpoint::Checkpoint;
use veritrail_ledger::note::NoteVerifier;
use veritrail_ledger::proof::verify_inclusion;
use veritrail_ledger::{Hash, leaf_hash};

/// Longest a test waits for any one state (server start, a checkpoint, the stop).
const DEADLINE: Duration = Duration::from_secs(60);
/// Entries in the log: bundles 0 and 1 full, bundle 2 holding 88.
const SIZE: u64 = 600;
/// The entry forged on disk.
const FORGED: u64 = 5;
/// What the forgery writes into the entry (as many bytes as it replaces).
const MARK: &[u8] = b"FORGED!";
/// Bytes of a frame header in `log/entries`: length word, CRC-32, first index, commit offset.
const FRAME_HEADER: usize = 24;

/// A running `veritrail serve --no-auth` and what it printed at start.
struct Serve {
    child: ChildGuard,
    base: String,
    origin: String,
    verifier: NoteVerifier,
    log: std::path::PathBuf,
}

impl Serve {
    /// Starts the binary on `data` and waits until it prints its address and key.
    fn start(data: &Path, log: std::path::PathBuf) -> Self {
        let stderr = std::fs::File::create(&log).unwrap();
        let (child, lines) = support::spawn_lines(
            Command::new(env!("CARGO_BIN_EXE_veritrail"))
                .args(["serve", "--data", data.to_str().unwrap()])
                .args(["--listen", "127.0.0.1:0", "--no-auth"])
                .args(["--checkpoint-interval", "20ms"])
                .env_remove("VERITRAIL_DATA")
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stderr(stderr),
        );
        // The server prints its address, then its origin, then its key.
        let base = support::line_after(&lines, "veritrail listening on ", DEADLINE);
        let origin = support::line_after(&lines, "origin: ", DEADLINE);
        let verifier: NoteVerifier = support::line_after(&lines, "verifier key: ", DEADLINE)
            .parse()
            .unwrap();
        Serve {
            child,
            base,
            origin,
            verifier,
            log,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM (a clean stop: queued appends committed, derived files synced), then reap.
    fn stop(mut self) {
        let pid = self.child.0.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.0.try_wait().unwrap() {
                assert!(status.success(), "{status}; stderr:\n{}", self.stderr());
                return;
            }
            assert!(Instant::now() < deadline, "veritrail serve did not stop");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Entry `i`: a readable tag and filler, 120 bytes.
fn entry(i: u64) -> Vec<u8> {
    let mut bytes = format!("verified-reads event {i:05} payload ").into_bytes();
    bytes.resize(120, b'a' + (i % 26) as u8);
    bytes
}

/// CRC-32 (IEEE 802.3, reflected), as the entry log's frames carry it.
fn crc32(parts: &[&[u8]]) -> u32 {
    let mut crc = !0u32;
    for byte in parts.iter().flat_map(|p| p.iter()) {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// Replaces `MARK.len()` bytes of entry `index` in `<data>/log/entries` with [`MARK`] and
/// recomputes its frame's CRC-32 (over the header without the CRC, then the body), as a
/// deliberate forger would: the frame still passes its check. Returns the forged entry.
fn forge(data: &Path, index: u64) -> Vec<u8> {
    let log = data.join("log");
    let read = |file: &str, at: u64, len: usize| {
        let mut buf = vec![0u8; len];
        let f = std::fs::File::open(log.join(file)).unwrap();
        f.read_exact_at(&mut buf, at).unwrap();
        buf
    };
    let entries = std::fs::OpenOptions::new()
        .write(true)
        .open(log.join("entries"))
        .unwrap();
    let bundle = index / 256;
    let mut at = u64::from_be_bytes(read("bundles", bundle * 8, 8).try_into().unwrap());
    loop {
        let header = read("entries", at, FRAME_HEADER);
        let len = u32::from_be_bytes(header[..4].try_into().unwrap()) & !(1 << 31);
        let crc = u32::from_be_bytes(header[4..8].try_into().unwrap());
        let mut current = u64::from_be_bytes(header[8..16].try_into().unwrap());
        let body_at = at + FRAME_HEADER as u64;
        let mut body = read("entries", body_at, len as usize);
        assert_eq!(
            crc32(&[&header[..4], &header[8..], &body]),
            crc,
            "frame at {at}"
        );
        let mut pos = 0usize;
        while pos < body.len() {
            let entry_len = usize::from(u16::from_be_bytes([body[pos], body[pos + 1]]));
            if current == index {
                let start = pos + 2 + entry_len - MARK.len();
                body[start..start + MARK.len()].copy_from_slice(MARK);
                let forged = body[pos + 2..pos + 2 + entry_len].to_vec();
                let crc = crc32(&[&header[..4], &header[8..], &body]);
                entries.write_all_at(&body, body_at).unwrap();
                entries.write_all_at(&crc.to_be_bytes(), at + 4).unwrap();
                entries.sync_all().unwrap();
                return forged;
            }
            pos += 2 + entry_len;
            current += 1;
        }
        at = body_at + u64::from(len);
    }
}

async fn get(client: &reqwest::Client, url: &str) -> (StatusCode, Vec<u8>) {
    let response = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status();
    (status, response.bytes().await.unwrap().to_vec())
}

/// Polls `/readyz` until it answers `status`.
async fn wait_ready(client: &reqwest::Client, server: &Serve, status: StatusCode) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if get(client, &server.url("/readyz")).await.0 == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never answered {status}; stderr:\n{}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `GET path` answers 500 `corrupted` naming the forged entry, without its bytes.
async fn refused(client: &reqwest::Client, server: &Serve, path: &str, forged: &[u8]) {
    let (status, body) = get(client, &server.url(path)).await;
    assert_eq!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{path}: {}",
        String::from_utf8_lossy(&body)
    );
    assert!(!contains(&body, MARK) && !contains(&body, forged), "{path}");
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["error"], "corrupted", "{path}: {json}");
    let message = json["message"].as_str().unwrap();
    assert!(
        message.contains("entry 5 does not hash to its leaf hash in tile 0/0"),
        "{path}: {message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_entry_edited_in_a_stopped_store_is_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // A log of 600 entries, in batches that split bundle 0 across commits; then a clean stop.
    let server = Serve::start(&data, dir.path().join("first.log"));
    for range in [0..3, 3..250, 250..SIZE] {
        let mut body = Vec::new();
        for i in range {
            append_entry(&mut body, &entry(i)).unwrap();
        }
        let response = client
            .post(server.url("/v1/entries"))
            .header("content-type", "application/x-veritrail-entries")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    server.stop();

    let forged = forge(&data, FORGED);
    assert_ne!(forged, entry(FORGED));
    assert_eq!(forged.len(), entry(FORGED).len());

    // The server starts on the edited store and is ready: nothing has read entry 5 yet.
    let server = Serve::start(&data, dir.path().join("second.log"));
    wait_ready(&client, &server, StatusCode::OK).await;
    let (status, note) = get(&client, &server.url("/checkpoint")).await;
    assert_eq!(status, StatusCode::OK);
    let (checkpoint, _) =
        Checkpoint::verify_signed(&note, &server.origin, &server.verifier).unwrap();
    assert_eq!(checkpoint.tree.size, SIZE);

    // The forged entry, every way it can be read.
    for path in [
        "/v1/entries/5",
        "/v1/entries/5?proof=0",
        "/v1/entries/5?proof=1",
        "/tile/entries/000",
        "/tile/entries/000.p/6",
        "/tile/entries/000.p/5",
        "/tile/entries/000.p/1",
        // Asked again: a refusal never turns into an answer.
        "/v1/entries/5",
        "/tile/entries/000",
    ] {
        refused(&client, &server, path, &forged).await;
    }

    // Not ready any more, naming the entry; alive all the same.
    let (status, body) = get(&client, &server.url("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let health: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(health["status"], "unavailable", "{health}");
    let reason = health["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("corrupted: entry 5 does not hash to its leaf hash in tile 0/0"),
        "{reason}"
    );
    assert_eq!(
        get(&client, &server.url("/healthz")).await.0,
        StatusCode::OK
    );

    // The refusals are counted and logged at error level with the entry.
    let (status, metrics) = get(&client, &server.url("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    let metrics = String::from_utf8(metrics).unwrap();
    let counted: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("veritrail_corrupted_reads_total "))
        .unwrap_or_else(|| panic!("no corrupted-reads counter in:\n{metrics}"))
        .trim()
        .parse()
        .unwrap();
    assert_eq!(counted, 9);
    let log = server.stderr();
    assert!(
        log.lines().any(|l| l.contains("ERROR")
            && l.contains("refused to serve stored data that failed verification")
            && l.contains("entry 5 does not hash")),
        "{log}"
    );

    // The other entries still serve, byte for byte, and verify.
    for index in [4u64, 6, 300, 599] {
        let (status, body) = get(&client, &server.url(&format!("/v1/entries/{index}"))).await;
        assert_eq!(status, StatusCode::OK, "entry {index}");
        assert_eq!(body, entry(index), "entry {index}");
    }
    for index in [4u64, 300] {
        let (status, body) = get(
            &client,
            &server.url(&format!("/v1/entries/{index}?proof=1")),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "entry {index}");
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let leaf = Hash::from_base64(json["leaf_hash"].as_str().unwrap()).unwrap();
        assert_eq!(leaf, leaf_hash(&entry(index)));
        let proof: Vec<Hash> = json["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| Hash::from_base64(h.as_str().unwrap()).unwrap())
            .collect();
        verify_inclusion(&leaf, index, &checkpoint.tree, &proof).unwrap();
    }
    let (status, bundle1) = get(&client, &server.url("/tile/entries/001")).await;
    assert_eq!(status, StatusCode::OK);
    let expected: Vec<Vec<u8>> = (256..512).map(entry).collect();
    assert_eq!(
        bundle1,
        encode_bundle(expected.iter().map(Vec::as_slice)).unwrap()
    );
    let (status, bundle2) = get(&client, &server.url("/tile/entries/002.p/88")).await;
    assert_eq!(status, StatusCode::OK);
    let got = decode_bundle(&bundle2, 256).unwrap();
    assert_eq!(got.len(), 88);
    assert_eq!(got[87], entry(599));
    // The hash tile holding the forged entry's leaf hash is not entry data: it still serves.
    assert_eq!(
        get(&client, &server.url("/tile/0/000")).await.0,
        StatusCode::OK
    );
    // Appends go on (the log stays append-only; readiness stays failed).
    let response = client
        .post(server.url("/v1/entries"))
        .header("content-type", "application/octet-stream")
        .body(entry(SIZE))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        get(&client, &server.url("/readyz")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    server.stop();
}
