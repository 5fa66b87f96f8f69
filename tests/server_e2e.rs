//! End to end: the real `veritrail serve` binary on `127.0.0.1:0`, driven over HTTP as clients
//! that trust nothing but the verifier key it prints.
//!
//! - concurrent single and batched appends get unique, dense indices; every entry reads back
//!   byte for byte and its inclusion proof verifies against the signed checkpoint;
//! - `wait=published` receipts verify offline;
//! - a tlog-tiles client fetching every hash tile and entry bundle recomputes the leaf
//!   hashes and the checkpoint's root;
//! - every pair of checkpoints published during the load is consistent;
//! - SIGKILL during a load loses no acknowledged entry, and the restarted server's first
//!   checkpoint is consistent with the last one seen before the kill.
//!
//! Every child process is killed by a drop guard, also when a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use support::ChildGuard;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE};
use veritrail_ledger::bundle::{append_entry, decode_bundle};
use veritrail_ledger::checkpoint::Checkpoint;
use veritrail_ledger::note::NoteVerifier;
use veritrail_ledger::proof::{verify_consistency, verify_inclusion};
use veritrail_ledger::receipt::Receipt;
use veritrail_ledger::tile::{TileId, entry_bundle_width, hash_tile_width};
use veritrail_ledger::tree::{self, HashTileReader, TreeError, perfect_subtree_root};
use veritrail_ledger::{Hash, TreeHead, leaf_hash};

/// Content type of a batch append.
const BATCH: &str = "application/x-veritrail-entries";
/// Longest a test waits for any one state (server start, a checkpoint, a load phase).
const DEADLINE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// The server process.

/// A running `veritrail serve` and what it printed at start.
struct ServerProcess {
    child: ChildGuard,
    base: String,
    origin: String,
    verifier: NoteVerifier,
    verifier_text: String,
    tree_size: u64,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts the binary on `data`, its log going to `log`, and waits until it prints its
    /// address, origin, verifier key and tree size.
    fn start(data: &Path, log: PathBuf) -> Self {
        let stderr = std::fs::File::create(&log).unwrap();
        let mut child = ChildGuard(
            Command::new(env!("CARGO_BIN_EXE_veritrail"))
                .args([
                    "serve",
                    "--data",
                    data.to_str().unwrap(),
                    "--listen",
                    "127.0.0.1:0",
                    "--no-auth",
                    "--checkpoint-interval",
                    "20ms",
                ])
                .env_remove("VERITRAIL_DATA")
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(stderr)
                .spawn()
                .expect("spawn veritrail serve"),
        );
        let stdout = child.0.stdout.take().unwrap();
        // Read stdout on a thread, which keeps draining it, so the wait below has a deadline.
        let (lines_tx, lines_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = lines_tx.send(line);
            }
        });
        let stderr_text = || std::fs::read_to_string(&log).unwrap_or_default();
        let deadline = Instant::now() + DEADLINE;
        let (mut base, mut origin, mut verifier, mut tree_size) = (None, None, None, None);
        while base.is_none() || origin.is_none() || verifier.is_none() || tree_size.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines_rx.recv_timeout(left).unwrap_or_else(|e| {
                panic!(
                    "veritrail serve did not start ({e}); stderr:\n{}",
                    stderr_text()
                )
            });
            if let Some(url) = line.strip_prefix("veritrail listening on ") {
                assert!(url.starts_with("http://127.0.0.1:"), "{line}");
                base = Some(url.to_owned());
            } else if let Some(name) = line.strip_prefix("origin: ") {
                origin = Some(name.to_owned());
            } else if let Some(key) = line.strip_prefix("verifier key: ") {
                verifier = Some(key.to_owned());
            } else if let Some(size) = line.strip_prefix("tree size: ") {
                tree_size = Some(size.parse().unwrap());
            }
        }
        let verifier_text = verifier.unwrap();
        ServerProcess {
            child,
            base: base.unwrap(),
            origin: origin.unwrap(),
            verifier: verifier_text.parse().unwrap(),
            verifier_text,
            tree_size: tree_size.unwrap(),
            log,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The server's log so far.
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, then reap.
    fn kill(&mut self) {
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers.

async fn get(
    client: &reqwest::Client,
    url: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let response = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap().to_vec();
    (status, headers, body)
}

async fn get_ok(client: &reqwest::Client, url: &str) -> Vec<u8> {
    let (status, _, body) = get(client, url).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "GET {url}: {}",
        String::from_utf8_lossy(&body)
    );
    body
}

async fn get_json(client: &reqwest::Client, url: &str) -> serde_json::Value {
    serde_json::from_slice(&get_ok(client, url).await).unwrap()
}

fn hashes(value: &serde_json::Value) -> Vec<Hash> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::from_base64(h.as_str().unwrap()).unwrap())
        .collect()
}

/// A verified checkpoint as fetched from `/checkpoint`.
#[derive(Clone, Debug)]
struct Seen {
    tree: TreeHead,
    note: Vec<u8>,
}

/// Fetches `/checkpoint` and verifies it with the server's printed key. `None` before the
/// first checkpoint is published (404).
async fn checkpoint(client: &reqwest::Client, server: &ServerProcess) -> Option<Seen> {
    let (status, headers, note) = get(client, &server.url("/checkpoint")).await;
    if status == StatusCode::NOT_FOUND {
        return None;
    }
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&note));
    assert_eq!(headers[CONTENT_TYPE], "text/plain; charset=utf-8");
    let (checkpoint, _) = Checkpoint::verify_signed(&note, &server.origin, &server.verifier)
        .unwrap_or_else(|e| panic!("checkpoint does not verify: {e}"));
    Some(Seen {
        tree: checkpoint.tree,
        note,
    })
}

/// Polls `/checkpoint` until one of at least `size` entries is published.
async fn wait_checkpoint(client: &reqwest::Client, server: &ServerProcess, size: u64) -> Seen {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(seen) = checkpoint(client, server).await
            && seen.tree.size >= size
        {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint of size >= {size} in time; server log:\n{}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Appends `entries` in one request (a batch when `batch`), returning the assigned indices
/// after checking the leaf hashes the server reports.
async fn append(
    client: &reqwest::Client,
    server_base: &str,
    entries: &[Vec<u8>],
    batch: bool,
) -> Result<Vec<u64>, String> {
    let url = format!("{server_base}/v1/entries");
    let request = if batch {
        let mut body = Vec::new();
        for entry in entries {
            append_entry(&mut body, entry).unwrap();
        }
        client.post(&url).header(CONTENT_TYPE, BATCH).body(body)
    } else {
        assert_eq!(entries.len(), 1);
        client
            .post(&url)
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(entries[0].clone())
    };
    let response = request.send().await.map_err(|e| format!("POST: {e}"))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| format!("body: {e}"))?;
    if status != StatusCode::OK {
        return Err(format!("POST {status}: {}", String::from_utf8_lossy(&body)));
    }
    let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    let items = if batch {
        value
            .as_array()
            .cloned()
            .ok_or("batch answer is not an array")?
    } else {
        vec![value]
    };
    assert_eq!(items.len(), entries.len());
    Ok(items
        .iter()
        .zip(entries)
        .map(|(item, entry)| {
            assert_eq!(
                item["leaf_hash"].as_str().unwrap(),
                leaf_hash(entry).to_base64()
            );
            item["index"].as_u64().unwrap()
        })
        .collect())
}

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A unique entry: a readable tag, then 0 to 300 pseudo-random (often non-UTF-8) bytes; one
/// in 64 is 20 000 bytes long.
fn entry(tag: &str, rng: &mut Rng) -> Vec<u8> {
    let mut bytes = tag.as_bytes().to_vec();
    let extra = if rng.below(64) == 0 {
        20_000
    } else {
        rng.below(301)
    };
    bytes.extend((0..extra).map(|_| rng.next() as u8));
    bytes
}

// ---------------------------------------------------------------------------------------------
// Tiles, as a tlog-tiles client reads them.

/// Hash tiles fetched over HTTP, by (level, index).
struct FetchedTiles(HashMap<(u8, u64), Vec<Hash>>);

impl HashTileReader for FetchedTiles {
    type Error = TreeError;

    fn read_hash_tile(&self, level: u8, index: u64, width: u16) -> Result<Vec<Hash>, TreeError> {
        let tile = self.0.get(&(level, index));
        match tile {
            Some(hashes) if hashes.len() >= usize::from(width) => Ok(hashes.clone()),
            _ => Err(TreeError::ShortTile {
                level,
                index,
                got: tile.map_or(0, Vec::len),
                want: usize::from(width),
            }),
        }
    }
}

/// Fetches every hash tile and entry bundle of the tree of `tree.size` entries, checks them
/// against each other, against the entries sent and against `tree.root`.
async fn check_tiles(
    client: &reqwest::Client,
    server: &ServerProcess,
    tree: TreeHead,
    sent: &BTreeMap<u64, Vec<u8>>,
) {
    let size = tree.size;
    let mut tiles = HashMap::new();
    for level in 0u8..=7 {
        let nodes = size >> (8 * u32::from(level));
        if nodes == 0 {
            break;
        }
        for index in 0..nodes.div_ceil(256) {
            let width = hash_tile_width(level, index, size).unwrap();
            let tile = TileId::hash(level, index, width).unwrap();
            let (status, headers, body) =
                get(client, &server.url(&format!("/{}", tile.path()))).await;
            assert_eq!(status, StatusCode::OK, "{tile}");
            assert_eq!(body.len(), usize::from(width) * 32, "{tile}");
            let cache = headers[CACHE_CONTROL].to_str().unwrap();
            if tile.is_full() {
                assert_eq!(cache, "public, max-age=31536000, immutable", "{tile}");
            } else {
                assert!(!cache.contains("immutable"), "{tile}: {cache}");
            }
            let row: Vec<Hash> = body
                .chunks_exact(32)
                .map(|h| Hash::try_from_slice(h).unwrap())
                .collect();
            tiles.insert((level, index), row);
        }
    }
    // Every full tile hashes to the node stored for it one tile level up.
    for (&(level, index), row) in &tiles {
        if row.len() == 256
            && let Some(parent) = tiles.get(&(level + 1, index / 256))
        {
            assert_eq!(
                perfect_subtree_root(row).unwrap(),
                parent[(index % 256) as usize],
                "tile {level}/{index} does not hash to its parent node"
            );
        }
    }
    // The entry bundles re-hash to the level-0 tiles and hold exactly what was sent.
    for index in 0..size.div_ceil(256) {
        let width = entry_bundle_width(index, size).unwrap();
        let tile = TileId::entries(index, width).unwrap();
        let body = get_ok(client, &server.url(&format!("/{}", tile.path()))).await;
        let entries = decode_bundle(&body, 256).unwrap();
        assert_eq!(entries.len(), usize::from(width), "{tile}");
        let level0 = &tiles[&(0, index)];
        for (offset, entry) in entries.iter().enumerate() {
            let leaf = index * 256 + offset as u64;
            assert_eq!(leaf_hash(entry), level0[offset], "leaf {leaf} in {tile}");
            assert_eq!(*entry, sent[&leaf], "leaf {leaf} in {tile}");
        }
    }
    let root = tree::root(&FetchedTiles(tiles), size).unwrap();
    assert_eq!(
        root, tree.root,
        "root recomputed from the tiles of size {size}"
    );
}

// ---------------------------------------------------------------------------------------------
// Tests.

/// An entry and the index the server acknowledged for it.
type Appended = (u64, Vec<u8>);

const WRITERS: u64 = 64;
const ENTRIES_PER_WRITER: u64 = 200;
/// Least growth between two checkpoints the load test keeps: at most 12 800 / 400 + 2 of them.
const SPACING: u64 = 400;

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_appends_verify_end_to_end() {
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let server = Arc::new(ServerProcess::start(
        &data.path().join("log"),
        logs.path().join("serve.log"),
    ));
    assert_eq!(server.tree_size, 0);
    let client = client();
    let first = wait_checkpoint(&client, &server, 0).await;
    assert_eq!(first.tree, TreeHead::empty());

    // Collect checkpoints published during the load: every one is checked for going
    // backwards, one every `SPACING` entries or more is kept (a bounded number, however long
    // the load takes).
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (client, server, stop) = (client.clone(), server.clone(), stop.clone());
        tokio::spawn(async move {
            let mut seen: Vec<Seen> = vec![first];
            let deadline = Instant::now() + DEADLINE;
            while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
                let latest = checkpoint(&client, &server).await.unwrap();
                let last = seen.last().unwrap();
                assert!(
                    latest.tree.size >= last.tree.size,
                    "/checkpoint went back from {} to {}",
                    last.tree.size,
                    latest.tree.size
                );
                if latest.tree.size >= last.tree.size + SPACING {
                    seen.push(latest);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            seen
        })
    };

    // 64 writers × 200 entries, single and batched requests mixed.
    let started = Instant::now();
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let (client, base) = (client.clone(), server.base.clone());
        writers.push(tokio::spawn(async move {
            let mut rng = Rng(writer);
            let mut sent = Vec::new();
            let mut n = 0;
            while n < ENTRIES_PER_WRITER {
                let batch = rng.below(2) == 0;
                let count = if batch {
                    (2 + rng.below(15)).min(ENTRIES_PER_WRITER - n)
                } else {
                    1
                };
                let entries: Vec<Vec<u8>> = (n..n + count)
                    .map(|i| entry(&format!("writer {writer:02} entry {i:03} "), &mut rng))
                    .collect();
                // A batch of one is still a batch request.
                let indices = append(&client, &base, &entries, batch).await.unwrap();
                sent.extend(indices.into_iter().zip(entries));
                n += count;
            }
            sent
        }));
    }
    let mut sent = BTreeMap::new();
    for writer in writers {
        for (index, entry) in tokio::time::timeout(DEADLINE, writer)
            .await
            .unwrap()
            .unwrap()
        {
            assert!(
                sent.insert(index, entry).is_none(),
                "index {index} given twice"
            );
        }
    }
    let loaded = WRITERS * ENTRIES_PER_WRITER;
    assert_eq!(sent.len() as u64, loaded);
    assert_eq!(
        sent.keys().copied().collect::<Vec<_>>(),
        (0..loaded).collect::<Vec<_>>()
    );
    eprintln!("appended {loaded} entries in {:?}", started.elapsed());

    // A few appends wait for publication; their receipts verify offline.
    let mut rng = Rng(1000);
    for round in 0..4u64 {
        let entries: Vec<Vec<u8>> = (0..=round / 3)
            .map(|i| entry(&format!("published {round} {i} "), &mut rng))
            .collect();
        let url = server.url("/v1/entries?wait=published");
        let request = if entries.len() == 1 {
            client
                .post(&url)
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(entries[0].clone())
        } else {
            let mut body = Vec::new();
            for e in &entries {
                append_entry(&mut body, e).unwrap();
            }
            client.post(&url).header(CONTENT_TYPE, BATCH).body(body)
        };
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let value: serde_json::Value =
            serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        let items = match value {
            serde_json::Value::Array(items) => items,
            single => vec![single],
        };
        assert_eq!(items.len(), entries.len());
        for (item, entry) in items.iter().zip(&entries) {
            let index = item["index"].as_u64().unwrap();
            let receipt =
                Receipt::from_bytes(item["receipt"].as_str().unwrap().as_bytes()).unwrap();
            assert_eq!(receipt.index, index);
            let checkpoint = receipt
                .verify(entry, &server.origin, &server.verifier)
                .unwrap();
            assert!(checkpoint.tree.size > index);
            assert_eq!(receipt.proof, hashes(&item["inclusion_proof"]));
            let (from_note, _) = Checkpoint::verify_signed(
                item["checkpoint"].as_str().unwrap().as_bytes(),
                &server.origin,
                &server.verifier,
            )
            .unwrap();
            assert_eq!(from_note, checkpoint);
            // Nor for another entry, or at another index.
            assert!(
                receipt
                    .verify(b"something else", &server.origin, &server.verifier)
                    .is_err()
            );
            let mut moved = receipt.clone();
            moved.index ^= 1;
            assert!(
                moved
                    .verify(entry, &server.origin, &server.verifier)
                    .is_err()
            );
            assert!(sent.insert(index, entry.clone()).is_none());
        }
    }
    let size = sent.len() as u64;
    assert_eq!(
        sent.keys().copied().collect::<Vec<_>>(),
        (0..size).collect::<Vec<_>>()
    );
    assert_ne!(size % 256, 0, "want partial tiles");

    let last = wait_checkpoint(&client, &server, size).await;
    assert_eq!(last.tree.size, size);
    stop.store(true, Ordering::Release);
    let mut seen = tokio::time::timeout(DEADLINE, poller)
        .await
        .unwrap()
        .unwrap();
    if seen.last().unwrap().tree.size < size {
        seen.push(last.clone());
    }
    eprintln!("{} checkpoints kept from the load", seen.len());
    assert!(seen.len() >= 4, "only {} checkpoints kept", seen.len());

    // Every entry reads back and its inclusion proof verifies against the last checkpoint.
    let sent = Arc::new(sent);
    let next = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for _ in 0..16 {
        let (client, server, sent, next) =
            (client.clone(), server.clone(), sent.clone(), next.clone());
        let tree = last.tree;
        readers.push(tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= tree.size {
                    break;
                }
                let entry = get_ok(&client, &server.url(&format!("/v1/entries/{index}"))).await;
                assert_eq!(&entry, &sent[&index], "entry {index}");
                let proof = get_json(
                    &client,
                    &server.url(&format!(
                        "/v1/proof/inclusion?index={index}&size={}",
                        tree.size
                    )),
                )
                .await;
                assert_eq!(proof["index"], index);
                assert_eq!(proof["tree_size"], tree.size);
                verify_inclusion(&leaf_hash(&entry), index, &tree, &hashes(&proof["proof"]))
                    .unwrap_or_else(|e| panic!("inclusion of {index}: {e}"));
            }
        }));
    }
    for reader in readers {
        tokio::time::timeout(DEADLINE, reader)
            .await
            .unwrap()
            .unwrap();
    }

    // A tiles client recomputes the roots of the last checkpoint and of a sample of earlier
    // ones (partial tiles at older sizes included).
    let step = (seen.len() / 6).max(1);
    for checked in seen.iter().skip(1).step_by(step).chain([&last]) {
        check_tiles(&client, &server, checked.tree, &sent).await;
    }

    // The checkpoint history serves the very notes that were published.
    for checked in &seen {
        let note = get_ok(
            &client,
            &server.url(&format!("/v1/checkpoints/{}", checked.tree.size)),
        )
        .await;
        assert_eq!(note, checked.note, "checkpoint {}", checked.tree.size);
    }

    // Every pair of kept checkpoints is consistent (old == new included; there is no proof
    // from the empty tree).
    let nonempty: Vec<&Seen> = seen.iter().filter(|s| s.tree.size > 0).collect();
    let mut pairs = 0;
    for (i, old) in nonempty.iter().enumerate() {
        for new in &nonempty[i..] {
            let proof = get_json(
                &client,
                &server.url(&format!(
                    "/v1/proof/consistency?old={}&size={}",
                    old.tree.size, new.tree.size
                )),
            )
            .await;
            assert_eq!(
                (proof["old"].as_u64(), proof["tree_size"].as_u64()),
                (Some(old.tree.size), Some(new.tree.size))
            );
            verify_consistency(&old.tree, &new.tree, &hashes(&proof["proof"]))
                .unwrap_or_else(|e| panic!("{} -> {}: {e}", old.tree.size, new.tree.size));
            pairs += 1;
        }
    }
    eprintln!(
        "{pairs} consistency proofs verified in {:?} total",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_load_loses_no_acknowledged_entry() {
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let dir = data.path().join("log");
    let mut server = ServerProcess::start(&dir, logs.path().join("before.log"));
    let client = client();
    wait_checkpoint(&client, &server, 0).await;

    // (index, entry) of every append answered 200.
    let acked: Arc<Mutex<Vec<Appended>>> = Arc::default();
    let killed = Arc::new(AtomicBool::new(false));
    let (progress_tx, mut progress) = tokio::sync::watch::channel(0usize);
    let progress_tx = Arc::new(progress_tx);
    let mut writers = Vec::new();
    for writer in 0..16u64 {
        let (client, base, acked, progress_tx, killed) = (
            client.clone(),
            server.base.clone(),
            acked.clone(),
            progress_tx.clone(),
            killed.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut rng = Rng(writer + 77);
            // Bounded: the kill comes long before this many requests.
            for request in 0..5_000u64 {
                let batch = rng.below(3) == 0;
                let count = if batch { 1 + rng.below(8) } else { 1 };
                let entries: Vec<Vec<u8>> = (0..count)
                    .map(|i| {
                        entry(
                            &format!("crash writer {writer} request {request} entry {i} "),
                            &mut rng,
                        )
                    })
                    .collect();
                match append(&client, &base, &entries, batch).await {
                    Ok(indices) => {
                        let mut acked = acked.lock().unwrap();
                        acked.extend(indices.into_iter().zip(entries));
                        progress_tx.send_replace(acked.len());
                    }
                    // Once the server is killed: connection refused, reset or closed
                    // mid-answer. Before, every append must succeed.
                    Err(e) => {
                        assert!(killed.load(Ordering::Acquire), "append failed: {e}");
                        return;
                    }
                }
            }
        }));
    }
    // The last checkpoint seen before the kill.
    let last_seen: Arc<Mutex<Option<Seen>>> = Arc::default();
    let poller = {
        let (client, base, origin, verifier, last_seen) = (
            client.clone(),
            server.base.clone(),
            server.origin.clone(),
            server.verifier.clone(),
            last_seen.clone(),
        );
        tokio::spawn(async move {
            for _ in 0..10_000 {
                let Ok(response) = client.get(format!("{base}/checkpoint")).send().await else {
                    return;
                };
                let Ok(note) = response.bytes().await else {
                    return;
                };
                let (checkpoint, _) = Checkpoint::verify_signed(&note, &origin, &verifier).unwrap();
                *last_seen.lock().unwrap() = Some(Seen {
                    tree: checkpoint.tree,
                    note: note.to_vec(),
                });
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    // Kill once the load is well under way and a checkpoint covers part of it.
    tokio::time::timeout(DEADLINE, progress.wait_for(|n| *n >= 3_000))
        .await
        .expect("load too slow")
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    while last_seen
        .lock()
        .unwrap()
        .as_ref()
        .is_none_or(|s| s.tree.size < 1_000)
    {
        assert!(
            Instant::now() < deadline,
            "no checkpoint of 1000 entries seen"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let acked_at_kill = *progress.borrow();
    killed.store(true, Ordering::Release);
    server.kill();
    for writer in writers {
        tokio::time::timeout(DEADLINE, writer)
            .await
            .unwrap()
            .unwrap();
    }
    tokio::time::timeout(DEADLINE, poller)
        .await
        .unwrap()
        .unwrap();
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let last_seen = last_seen.lock().unwrap().clone().unwrap();
    eprintln!(
        "killed with {acked_at_kill} entries acknowledged ({} in the end); last checkpoint seen: {}",
        acked.len(),
        last_seen.tree.size
    );
    let mut indices: Vec<u64> = acked.iter().map(|(i, _)| *i).collect();
    indices.sort_unstable();
    indices.dedup();
    assert_eq!(
        indices.len(),
        acked.len(),
        "an index was acknowledged twice"
    );

    // Restart on the same directory.
    let restarted = ServerProcess::start(&dir, logs.path().join("after.log"));
    assert_eq!(restarted.origin, server.origin);
    assert_eq!(restarted.verifier_text, server.verifier_text);
    let max_acked = indices.last().copied().unwrap();
    assert!(
        restarted.tree_size > max_acked,
        "restarted with {} entries, but index {max_acked} was acknowledged",
        restarted.tree_size
    );
    let first = wait_checkpoint(&client, &restarted, 0).await;
    assert_eq!(first.tree.size, restarted.tree_size);
    assert!(first.tree.size >= last_seen.tree.size);
    if first.tree.size == last_seen.tree.size {
        assert_eq!(first.tree, last_seen.tree);
    } else {
        let proof = get_json(
            &client,
            &restarted.url(&format!(
                "/v1/proof/consistency?old={}&size={}",
                last_seen.tree.size, first.tree.size
            )),
        )
        .await;
        verify_consistency(&last_seen.tree, &first.tree, &hashes(&proof["proof"])).unwrap();
    }

    // Every acknowledged entry is at its index, byte for byte.
    let acked = Arc::new(acked);
    let next = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for _ in 0..8 {
        let (client, base, acked, next) = (
            client.clone(),
            restarted.base.clone(),
            acked.clone(),
            next.clone(),
        );
        readers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some((index, entry)) = acked.get(i) else {
                    break;
                };
                let got = get_ok(&client, &format!("{base}/v1/entries/{index}")).await;
                assert_eq!(&got, entry, "acknowledged entry {index}");
            }
        }));
    }
    for reader in readers {
        tokio::time::timeout(DEADLINE, reader)
            .await
            .unwrap()
            .unwrap();
    }

    // The restarted log keeps growing from where it was.
    let indices = append(
        &client,
        &restarted.base,
        &[b"after the crash".to_vec()],
        false,
    )
    .await
    .unwrap();
    assert_eq!(indices, [restarted.tree_size]);
    let after = wait_checkpoint(&client, &restarted, restarted.tree_size + 1).await;
    let proof = get_json(
        &client,
        &restarted.url(&format!(
            "/v1/proof/consistency?old={}&size={}",
            last_seen.tree.size, after.tree.size
        )),
    )
    .await;
    verify_consistency(&last_seen.tree, &after.tree, &hashes(&proof["proof"])).unwrap();
}
