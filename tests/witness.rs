//! The tlog-witness protocol against the real `veritrail witness` binary: every status code
//! with its body and content type, state unchanged after each rejection, logs added while it
//! runs, the spec's race under concurrent requests, and SIGKILL at random moments.
//!
//! Checkpoints come from two trees, A and B, equal on their first [`SHARED`] leaves and
//! different after: a checkpoint of B past that point is a fork of A. A reference RFC 6962
//! implementation here computes their roots and consistency proofs.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use support::ChildGuard;
use veritrail_ledger::checkpoint::Checkpoint;
use veritrail_ledger::cosignature::verify_cosignature;
use veritrail_ledger::hash::{Hash, TreeHead, leaf_hash, node_hash};
use veritrail_ledger::note::{KeyName, Note, NoteSigner, NoteVerifier};
use veritrail_ledger::witness::{
    AddCheckpoint, MAX_REQUEST_BYTES, SIZE_MEDIA_TYPE, parse_cosignatures,
};

const ORIGIN: &str = "veritrail.test/witnessed-log";
/// Leaves trees A and B share.
const SHARED: u64 = 50;
/// Leaves of each tree.
const LEAVES: u64 = 300;

/// The leaves of tree A (`fork` false) or B.
fn leaves(fork: bool) -> Vec<Hash> {
    (0..LEAVES)
        .map(|i| {
            let mut bytes = i.to_be_bytes().to_vec();
            if fork && i >= SHARED {
                bytes.push(b'B');
            }
            leaf_hash(&bytes)
        })
        .collect()
}

fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// RFC 6962 MTH.
fn mth(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Hash::empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

/// RFC 6962 SUBPROOF.
fn subproof(m: usize, leaves: &[Hash], complete: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if complete { vec![] } else { vec![mth(leaves)] };
    }
    let k = split(n);
    if m <= k {
        let mut proof = subproof(m, &leaves[..k], complete);
        proof.push(mth(&leaves[k..]));
        proof
    } else {
        let mut proof = subproof(m - k, &leaves[k..], false);
        proof.push(mth(&leaves[..k]));
        proof
    }
}

fn consistency(old: u64, new: u64, leaves: &[Hash]) -> Vec<Hash> {
    if old == 0 || old >= new {
        return vec![];
    }
    subproof(old as usize, &leaves[..new as usize], true)
}

/// Everything a test needs to make requests.
struct Log {
    signer: NoteSigner,
    a: Vec<Hash>,
    b: Vec<Hash>,
}

impl Log {
    fn new(origin: &str) -> Log {
        Log {
            signer: NoteSigner::generate(KeyName::new(origin).unwrap()).unwrap(),
            a: leaves(false),
            b: leaves(true),
        }
    }

    fn tree(&self, fork: bool) -> &[Hash] {
        if fork { &self.b } else { &self.a }
    }

    fn note(&self, size: u64, fork: bool) -> Note {
        let root = mth(&self.tree(fork)[..size as usize]);
        Checkpoint::new(self.signer.name().as_str(), TreeHead::new(size, root))
            .unwrap()
            .sign(&self.signer)
            .unwrap()
    }

    /// A request from `old` to `new` on tree A or B, with the right proof for that tree.
    fn request(&self, old: u64, new: u64, fork: bool) -> Vec<u8> {
        AddCheckpoint {
            old,
            proof: consistency(old, new, self.tree(fork)),
            checkpoint: self.note(new, fork),
        }
        .to_bytes()
    }

    fn root(&self, size: u64, fork: bool) -> Hash {
        mth(&self.tree(fork)[..size as usize])
    }
}

fn veritrail(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_veritrail"))
        .args(args)
        .output()
        .unwrap()
}

/// A witness key (made with `keygen --witness`) and a data directory trusting `logs`.
fn setup(dir: &Path, logs: &[&Log]) -> (std::path::PathBuf, NoteVerifier) {
    let key = dir.join("witness.key");
    let made = veritrail(&[
        "keygen",
        "--witness",
        "--name",
        "witness.test/w1",
        "--out",
        key.to_str().unwrap(),
    ]);
    assert!(made.status.success(), "{made:?}");
    let vkey: NoteVerifier = String::from_utf8(made.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(vkey.signature_type(), 0x04, "a cosignature key");
    let data = dir.join("data");
    for log in logs {
        add_log(&data, log);
    }
    (key, vkey)
}

fn add_log(data: &Path, log: &Log) {
    let added = veritrail(&[
        "witness",
        "add-log",
        "--data",
        data.to_str().unwrap(),
        &log.signer.verifier().to_string(),
    ]);
    assert!(added.status.success(), "{added:?}");
}

fn start(dir: &Path, key: &Path) -> (ChildGuard, String) {
    support::start_witness(key, &dir.join("data"), "127.0.0.1:0")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Status, content type and body of an add-checkpoint request.
async fn post(http: &reqwest::Client, url: &str, body: Vec<u8>) -> (u16, String, Vec<u8>) {
    let answer = http
        .post(format!("{url}/add-checkpoint"))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let media = answer
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, media, answer.bytes().await.unwrap().to_vec())
}

/// The witness's latest cosigned checkpoint of `origin` (None: 404).
async fn latest(http: &reqwest::Client, url: &str, origin: &str) -> Option<Vec<u8>> {
    let hash = veritrail_witness::logs::origin_hash(origin);
    let answer = http
        .get(format!("{url}/checkpoint/{hash}"))
        .send()
        .await
        .unwrap();
    match answer.status().as_u16() {
        200 => Some(answer.bytes().await.unwrap().to_vec()),
        404 => None,
        other => panic!("GET /checkpoint: {other}"),
    }
}

fn tree_of(note: &[u8]) -> TreeHead {
    Checkpoint::from_text(Note::from_bytes(note).unwrap().text())
        .unwrap()
        .tree
}

/// A 200's cosignature verifies over the checkpoint the request carried.
fn check_cosigned(answer: &[u8], note: &Note, witness: &NoteVerifier) -> u64 {
    let mut cosigned = Note::new(note.text()).unwrap();
    for signature in parse_cosignatures(answer).unwrap() {
        cosigned.add_signature(signature).unwrap();
    }
    verify_cosignature(witness, &cosigned).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_status_with_its_body_and_nothing_changes_on_rejection() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::new(ORIGIN);
    let (key, witness) = setup(dir.path(), &[&log]);
    let (_child, url) = start(dir.path(), &key);
    let http = client();

    // First checkpoint (`old 0`), then growth with a proof, then a same-size replay.
    let (status, media, body) = post(&http, &url, log.request(0, 5, false)).await;
    assert_eq!((status, media.as_str()), (200, "text/plain; charset=utf-8"));
    let time = check_cosigned(&body, &log.note(5, false), &witness);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        time.abs_diff(now) < 60,
        "cosignature time {time}, now {now}"
    );
    let (status, _, body) = post(&http, &url, log.request(5, 55, false)).await;
    assert_eq!(status, 200);
    check_cosigned(&body, &log.note(55, false), &witness);
    let (status, _, _) = post(&http, &url, log.request(55, 55, false)).await;
    assert_eq!(status, 200, "same-size replay");

    // What is served: the checkpoint, the log's signature and the cosignature.
    let stored = latest(&http, &url, ORIGIN).await.unwrap();
    let note = Note::from_bytes(&stored).unwrap();
    Checkpoint::verify_note(&note, ORIGIN, &log.signer.verifier()).unwrap();
    verify_cosignature(&witness, &note).unwrap();
    assert_eq!(tree_of(&stored), TreeHead::new(55, log.root(55, false)));

    let stranger = Log::new("veritrail.test/stranger");
    let impostor = Log::new(ORIGIN);
    let mut with_extension = Note::new(format!(
        "{ORIGIN}\n12\n{}\nextension\n",
        log.root(58, false).to_base64()
    ))
    .unwrap();
    with_extension
        .add_signature(log.signer.sign(with_extension.text()))
        .unwrap();
    let extension_request = AddCheckpoint {
        old: 55,
        proof: consistency(55, 58, &log.a),
        checkpoint: with_extension,
    }
    .to_bytes();
    let mut bad_proof = consistency(55, 58, &log.a);
    bad_proof[0] = leaf_hash(b"wrong");
    let bad_proof_request = AddCheckpoint {
        old: 55,
        proof: bad_proof,
        checkpoint: log.note(58, false),
    }
    .to_bytes();
    let sixty_four = AddCheckpoint {
        old: 55,
        proof: vec![leaf_hash(b"x"); 64],
        checkpoint: log.note(58, false),
    }
    .to_bytes();
    let sixty_three = AddCheckpoint {
        old: 55,
        proof: vec![leaf_hash(b"x"); 63],
        checkpoint: log.note(58, false),
    }
    .to_bytes();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "unknown origin",
            stranger.request(0, 5, false),
            404,
            "unknown_origin",
        ),
        (
            "an untrusted key for the origin",
            impostor.request(55, 58, false),
            403,
            "forbidden",
        ),
        ("extension lines", extension_request, 400, "bad_request"),
        ("a rollback", log.request(55, 5, false), 400, "bad_request"),
        ("a stale old size", log.request(0, 5, false), 409, "size 55"),
        (
            "a proof that does not verify",
            bad_proof_request,
            422,
            "inconsistent",
        ),
        (
            "a fork of the same size",
            log.request(55, 55, true),
            409,
            "fork",
        ),
        (
            "growth on a forked tree",
            log.request(55, 60, true),
            422,
            "inconsistent",
        ),
        ("64 proof lines", sixty_four, 400, "bad_request"),
        (
            "63 proof lines that do not verify",
            sixty_three,
            422,
            "inconsistent",
        ),
        ("oversized", vec![b'o'; MAX_REQUEST_BYTES + 1], 413, ""),
        ("garbage", b"\x00\xffgarbage".to_vec(), 400, "bad_request"),
        ("empty", Vec::new(), 400, "bad_request"),
        ("no checkpoint", b"old 55\n\n".to_vec(), 400, "bad_request"),
    ];
    for (what, body, want, code) in cases {
        let (status, media, answer) = post(&http, &url, body).await;
        assert_eq!(status, want, "{what}: {}", String::from_utf8_lossy(&answer));
        if let Some(size) = code.strip_prefix("size ") {
            assert_eq!(media, SIZE_MEDIA_TYPE, "{what}");
            assert_eq!(answer, format!("{size}\n").into_bytes(), "{what}");
        } else if !code.is_empty() {
            assert_eq!(media, "application/json", "{what}");
            let error: serde_json::Value = serde_json::from_slice(&answer).unwrap();
            assert_eq!(error["error"], code, "{what}");
            assert!(
                error["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{what}"
            );
        }
        assert_eq!(
            latest(&http, &url, ORIGIN).await.unwrap(),
            stored,
            "{what}: state changed"
        );
    }

    // A log added while the witness runs is witnessed at once (a proof with `old 0` is not
    // a consistency proof); unknown endpoints are 404.
    add_log(&dir.path().join("data"), &stranger);
    let mut proof_from_zero = stranger.request(0, 5, false);
    proof_from_zero.splice(
        6..6,
        format!("{}\n", leaf_hash(b"x").to_base64()).into_bytes(),
    );
    let (status, _, _) = post(&http, &url, proof_from_zero).await;
    assert_eq!(status, 422, "a proof with old 0");
    assert_eq!(
        latest(&http, &url, stranger.signer.name().as_str()).await,
        None
    );
    let (status, _, body) = post(&http, &url, stranger.request(0, 5, false)).await;
    assert_eq!(status, 200);
    check_cosigned(&body, &stranger.note(5, false), &witness);
    let (status, _, _) = post(&http, &url, log.request(55, 58, false)).await;
    assert_eq!(status, 200);
    let missing = http.get(format!("{url}/nothing")).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    let metrics = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!(
            "veritrail_witness_cosigned_size{{origin=\"{ORIGIN}\"}} 58"
        )),
        "{metrics}"
    );
}

/// A client's view: sends growth (and sometimes forks) at random sizes, learning the stored
/// size from 409 answers; records every cosigned (size, fork) pair.
async fn client_loop(
    http: reqwest::Client,
    url: String,
    log: Arc<Log>,
    seed: u64,
    requests: usize,
    cosigned: Arc<std::sync::Mutex<Vec<(u64, bool)>>>,
) {
    let mut rng = seed | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut old = 0;
    for _ in 0..requests {
        let new = (old + next() % 20).min(LEAVES - 1);
        let fork = next() % 5 == 0;
        let Ok(answer) = http
            .post(format!("{url}/add-checkpoint"))
            .body(log.request(old, new, fork))
            .send()
            .await
        else {
            return;
        };
        let status = answer.status().as_u16();
        let Ok(body) = answer.bytes().await else {
            return;
        };
        match status {
            200 => {
                cosigned.lock().unwrap().push((new, fork));
                old = new;
            }
            409 => {
                if let Ok(size) = veritrail_ledger::witness::parse_size_body(&body) {
                    old = size;
                }
            }
            422 | 400 => {}
            other => panic!("unexpected status {other}"),
        }
    }
}

/// The cosigned checkpoints are one history: past the shared leaves, all of tree A or all of
/// tree B (B@51 after A@40 is consistent, and then A@60 is not). Returns whether it is B's.
fn assert_one_history(cosigned: &[(u64, bool)]) -> bool {
    let past = |fork: bool| cosigned.iter().any(|&(size, f)| f == fork && size > SHARED);
    assert!(
        !(past(false) && past(true)),
        "cosigned both A and B past the shared leaves: {cosigned:?}"
    );
    past(true)
}

/// Which tree a stored checkpoint is of (A when both agree).
fn lineage(log: &Log, tree: TreeHead) -> bool {
    if tree.root == log.root(tree.size, false) {
        false
    } else {
        assert_eq!(
            tree.root,
            log.root(tree.size, true),
            "a root of neither tree"
        );
        true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_never_roll_the_witness_back() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::new(ORIGIN));
    let (key, _) = setup(dir.path(), &[&log]);
    let (_child, url) = start(dir.path(), &key);
    let http = client();
    let cosigned = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicU64::new(0));
    let watcher = {
        let (http, url, stop) = (http.clone(), url.clone(), stop.clone());
        tokio::spawn(async move {
            let mut seen = 0;
            let mut polls = 0;
            while stop.load(Ordering::Acquire) == 0 {
                if let Some(note) = latest(&http, &url, ORIGIN).await {
                    let size = tree_of(&note).size;
                    assert!(
                        size >= seen,
                        "the stored size went back from {seen} to {size}"
                    );
                    seen = size;
                }
                polls += 1;
            }
            polls
        })
    };
    let clients: Vec<_> = (0..32)
        .map(|seed| {
            tokio::spawn(client_loop(
                http.clone(),
                url.clone(),
                log.clone(),
                seed * 7919 + 1,
                40,
                cosigned.clone(),
            ))
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    stop.store(1, Ordering::Release);
    assert!(watcher.await.unwrap() > 0);
    let cosigned = cosigned.lock().unwrap().clone();
    assert!(cosigned.len() > 32, "{} cosigned", cosigned.len());
    let fork = assert_one_history(&cosigned);
    let last = tree_of(&latest(&http, &url, ORIGIN).await.unwrap());
    let largest = cosigned.iter().map(|(size, _)| *size).max().unwrap();
    assert_eq!(
        last.size, largest,
        "the stored size is the largest cosigned"
    );
    assert_eq!(last.root, log.root(largest, fork));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_never_forgets_a_cosignature() {
    let rounds: u64 = std::env::var("VERITRAIL_WITNESS_KILL_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::new(ORIGIN));
    let (key, _) = setup(dir.path(), &[&log]);
    let http = client();
    let mut all = Vec::new();
    let mut rng: u64 = 0x2545_F491_4F6C_DD1D;
    for round in 0..rounds {
        let (child, url) = start(dir.path(), &key);
        // What a restarted witness stores is at least everything it acknowledged.
        let acknowledged = all.iter().map(|(s, _)| *s).max().unwrap_or(0);
        let stored = latest(&http, &url, ORIGIN).await.map(|n| tree_of(&n));
        let stored_size = stored.map_or(0, |t| t.size);
        assert!(
            stored_size >= acknowledged,
            "round {round}: stored {stored_size} < acknowledged {acknowledged}"
        );
        if let Some(tree) = stored {
            // Stored (durably cosigned, even if its answer was lost to the kill): part of the
            // one history.
            all.push((tree.size, lineage(&log, tree)));
            assert_one_history(&all);
        }
        let cosigned = Arc::new(std::sync::Mutex::new(Vec::new()));
        let clients: Vec<_> = (0..4)
            .map(|c| {
                tokio::spawn(client_loop(
                    http.clone(),
                    url.clone(),
                    log.clone(),
                    round * 31 + c,
                    1_000,
                    cosigned.clone(),
                ))
            })
            .collect();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        tokio::time::sleep(Duration::from_millis(5 + rng % 60)).await;
        drop(child); // SIGKILL, then reap.
        for client in clients {
            let _ = client.await;
        }
        all.extend(cosigned.lock().unwrap().iter().copied());
    }
    assert!(
        all.len() as u64 > rounds,
        "{} cosigned in {rounds} rounds",
        all.len()
    );
    assert_one_history(&all);
}

#[test]
fn bench_witness_measures_durable_cosignatures() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = setup(dir.path(), &[]);
    let (_child, url) = start(dir.path(), &key);
    let out = veritrail(&[
        "bench",
        "witness",
        "--url",
        &url,
        "--data",
        dir.path().join("data").to_str().unwrap(),
        "--logs",
        "3",
        "--requests",
        "30",
    ]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.starts_with("30 add-checkpoint requests from 3 logs"),
        "{stdout}"
    );
    let last = stdout.lines().last().unwrap();
    let rate: f64 = last
        .strip_prefix("checkpoints_per_s=")
        .and_then(|rest| rest.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(rate > 0.0, "{last}");
    // The witness holds each bench log at its last size.
    assert_eq!(
        std::fs::read_dir(dir.path().join("data/logs"))
            .unwrap()
            .count(),
        3
    );
}
