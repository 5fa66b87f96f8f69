//! The client against a real Veritrail server (in process, on 127.0.0.1:0, redb store):
//! proofs computed from tiles equal the JSON API's, the verifying client follows the log,
//! receipts verify offline, and the monitor audits the whole log and resumes after a restart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use veritrail_client::{
    AppendOptions, ClientConfig, LogClient, LogVerifier, Monitor, MonitorOptions, ProofSource,
    TileProver, Update, VerifyingClient, verify_receipt,
};
use veritrail_ledger::Ledger;
use veritrail_ledger::checkpoint::Checkpoint;
use veritrail_ledger::note::{KeyName, NoteSigner, NoteVerifier};
use veritrail_ledger::store::{self, Backend};
use veritrail_server::auth::Auth;
use veritrail_server::config::PublishConfig;
use veritrail_server::{Server, ServerConfig};

const ORIGIN: &str = "live.veritrail.example/log";
const DEADLINE: Duration = Duration::from_secs(30);

struct Live {
    client: LogClient,
    key: NoteVerifier,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Live {
    async fn start() -> Live {
        let dir = tempfile::tempdir().unwrap();
        let signer = NoteSigner::from_seed(KeyName::new(ORIGIN).unwrap(), [9; 32]);
        let key = signer.verifier();
        let ledger = Ledger::open(
            store::open(Backend::Redb, dir.path()).unwrap(),
            ORIGIN,
            signer,
        )
        .unwrap();
        let config = ServerConfig {
            publish: PublishConfig {
                interval: Duration::from_millis(5),
                republish: Duration::from_secs(10),
            },
            no_auth: true,
            ..ServerConfig::default()
        };
        let server = Server::start(Arc::new(ledger), config, Auth::disabled()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .serve(listener, async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        let client = LogClient::new(&ClientConfig::new(url)).unwrap();
        let live = Live {
            client,
            key,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        };
        live.published(0).await;
        live
    }

    /// Appends `count` entries in batches of `batch`, numbered from `first`.
    async fn append(&self, first: u64, count: u64, batch: u64) {
        let mut i = first;
        while i < first + count {
            let n = batch.min(first + count - i);
            let entries: Vec<Vec<u8>> = (i..i + n).map(entry).collect();
            let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
            let out = self
                .client
                .append_batch(&refs, &AppendOptions::default())
                .await
                .unwrap();
            assert_eq!(out[0].index, i);
            i += n;
        }
    }

    /// Waits until the published checkpoint covers `size` entries.
    async fn published(&self, size: u64) -> Checkpoint {
        let start = Instant::now();
        loop {
            // 404 until the publisher signed its first checkpoint.
            if let Ok(note) = self.client.checkpoint().await {
                let (checkpoint, _) = Checkpoint::verify_signed(&note, ORIGIN, &self.key).unwrap();
                if checkpoint.tree.size >= size {
                    return checkpoint;
                }
            }
            assert!(start.elapsed() < DEADLINE, "no checkpoint of size {size}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
    }
}

fn entry(i: u64) -> Vec<u8> {
    format!("{{\"agent\":\"triage-bot\",\"event\":\"tool_call\",\"n\":{i}}}").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tile_proofs_equal_the_api_proofs() {
    let live = Live::start().await;
    live.append(0, 1000, 97).await;
    live.published(1000).await;
    for size in [1u64, 2, 3, 255, 256, 257, 512, 700, 1000] {
        let mut prover = TileProver::new(live.client.clone(), size);
        let root = prover.root().await.unwrap();
        let step = if size > 300 { 37 } else { 1 };
        for index in (0..size).step_by(step).chain([size - 1]) {
            let api = live
                .client
                .inclusion_proof(index, Some(size))
                .await
                .unwrap();
            let tiles = prover.inclusion_proof(index).await.unwrap();
            assert_eq!(api.proof, tiles, "inclusion of {index} in {size}");
            let leaf = prover.leaf_hash(index).await.unwrap();
            assert_eq!(leaf, veritrail_ledger::leaf_hash(&entry(index)));
            veritrail_ledger::proof::verify_inclusion(
                &leaf,
                index,
                &veritrail_ledger::TreeHead::new(size, root),
                &tiles,
            )
            .unwrap();
        }
        for old in (1..=size).step_by(step).chain([size]) {
            let api = live
                .client
                .consistency_proof(old, Some(size))
                .await
                .unwrap();
            let tiles = prover.consistency_proof(old).await.unwrap();
            assert_eq!(api.proof, tiles, "consistency {old} -> {size}");
        }
        // Every proof at this size reads a bounded set of tiles, each once.
        assert!(
            prover.tiles_fetched() <= 8,
            "{} tiles",
            prover.tiles_fetched()
        );
    }
    live.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifying_client_follows_the_log_and_receipts_verify_offline() {
    let live = Live::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    for source in [ProofSource::Tiles, ProofSource::Api] {
        let _ = std::fs::remove_file(&state);
        let verifier = LogVerifier::load(&state, ORIGIN, &live.key).unwrap();
        let mut client =
            VerifyingClient::new(live.client.clone(), verifier, Some(state.clone()), source);
        let before = live.client.checkpoint().await.unwrap();
        let first = Checkpoint::verify_signed(&before, ORIGIN, &live.key)
            .unwrap()
            .0;
        let (_, update) = client.update().await.unwrap();
        assert_eq!(update, Update::First);
        let start = first.tree.size;
        live.append(start, 300, 64).await;
        live.published(start + 300).await;
        let (checkpoint, update) = client.update().await.unwrap();
        assert!(checkpoint.tree.size >= start + 300);
        if start > 0 {
            assert_eq!(update, Update::Grew { from: start });
        }
        for index in [start, start + 1, start + 255, start + 299] {
            let (bytes, proven) = client.get(index).await.unwrap();
            assert_eq!(bytes, entry(index));
            let receipt = proven.receipt().unwrap().to_bytes();
            verify_receipt(&receipt, &bytes, &live.key, None).unwrap();
            let by_hash = client.prove_leaf_hash(&proven.leaf_hash).await.unwrap();
            assert_eq!(by_hash.index, index);
        }
        // The state file holds the latest checkpoint and reloads.
        let reloaded = LogVerifier::load(&state, ORIGIN, &live.key).unwrap();
        assert_eq!(reloaded.trusted_size(), checkpoint.tree.size);
    }
    // An append that waits for publication returns a receipt that verifies offline, also
    // after the server is gone.
    let options = AppendOptions::with_random_key(true).unwrap();
    let appended = live
        .client
        .append(b"prompt v2 deployed", &options)
        .await
        .unwrap();
    let published = appended.published.clone().unwrap();
    live.stop().await;
    let (receipt, checkpoint) =
        verify_receipt(&published.receipt, b"prompt v2 deployed", &live_key(), None).unwrap();
    assert_eq!(receipt.index, appended.index);
    assert!(checkpoint.tree.size > appended.index);
    assert!(verify_receipt(&published.receipt, b"prompt v3 deployed", &live_key(), None).is_err());
}

fn live_key() -> NoteVerifier {
    NoteSigner::from_seed(KeyName::new(ORIGIN).unwrap(), [9; 32]).verifier()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_audits_everything_and_resumes() {
    let live = Live::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let options = MonitorOptions {
        commit_every: 512,
        ..MonitorOptions::new(dir.path().join("cache"))
    };
    live.append(0, 3000, 211).await;
    let first = live.published(3000).await;
    let mut monitor = Monitor::new(
        live.client.clone(),
        LogVerifier::load(&state, ORIGIN, &live.key).unwrap(),
        Some(state.clone()),
        options.clone(),
    )
    .unwrap();
    let mut calls = 0u64;
    let report = monitor.run_once(&mut |_, _| calls += 1).await.unwrap();
    assert!(calls > 1);
    assert_eq!(report.checkpoint.tree.size, first.tree.size);
    assert_eq!(report.resumed_from, 0);
    assert_eq!(report.entries_verified, first.tree.size);
    assert_eq!(report.bundles_fetched, first.tree.size.div_ceil(256));
    drop(monitor);

    // More entries; a new monitor resumes from the saved state and cache.
    live.append(first.tree.size, 70_000 - first.tree.size, 4096)
        .await;
    let second = live.published(70_000).await;
    let mut monitor = Monitor::new(
        live.client.clone(),
        LogVerifier::load(&state, ORIGIN, &live.key).unwrap(),
        Some(state.clone()),
        options.clone(),
    )
    .unwrap();
    assert_eq!(monitor.cached_size(), first.tree.size);
    let report = monitor.run_once(&mut |_, _| {}).await.unwrap();
    assert_eq!(report.previous_size, first.tree.size);
    assert_eq!(report.resumed_from, first.tree.size);
    assert_eq!(report.entries_verified, second.tree.size - first.tree.size);
    let bundles = second.tree.size.div_ceil(256) - first.tree.size / 256;
    assert_eq!(report.bundles_fetched, bundles);
    // Nothing new: nothing downloaded.
    let again = monitor.run_once(&mut |_, _| {}).await.unwrap();
    assert_eq!(again.entries_verified, 0);
    assert_eq!(again.bundles_fetched, 0);
    assert_eq!(
        LogVerifier::load(&state, ORIGIN, &live.key)
            .unwrap()
            .trusted_size(),
        second.tree.size
    );
    live.stop().await;
}

/// A state file advanced by the verifying client (which checks checkpoints, not entries) is
/// still audited in full by the monitor: the entries up to the trusted size are downloaded
/// and must give the trusted root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_audits_entries_behind_a_checkpoint_only_state() {
    let live = Live::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    live.append(0, 600, 100).await;
    let published = live.published(600).await;
    let mut client = VerifyingClient::new(
        live.client.clone(),
        LogVerifier::load(&state, ORIGIN, &live.key).unwrap(),
        Some(state.clone()),
        ProofSource::Tiles,
    );
    client.update().await.unwrap();
    let mut monitor = Monitor::new(
        live.client.clone(),
        LogVerifier::load(&state, ORIGIN, &live.key).unwrap(),
        Some(state.clone()),
        MonitorOptions::new(dir.path().join("cache")),
    )
    .unwrap();
    assert_eq!(monitor.verifier().trusted_size(), published.tree.size);
    let report = monitor.run_once(&mut |_, _| {}).await.unwrap();
    assert_eq!(report.previous_size, published.tree.size);
    assert_eq!(report.entries_verified, published.tree.size);
    assert_eq!(monitor.cached_size(), published.tree.size);
    live.stop().await;
}
