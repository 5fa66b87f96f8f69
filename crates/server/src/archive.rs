//! Archival: expired entry bundles are copied to an archive ([`veritrail_archive`]), the copy
//! is read back and verified, and only then are they purged from the primary store.
//!
//! One run ([`Archiver::run`]) plans retention at `now` under the policy and the legal holds
//! in force ([`crate::retention`]), and for each run of consecutive purgeable bundles (at most
//! [`MAX_ARCHIVE_BUNDLES`] per archive), in order:
//!
//! 1. writes the archive to `<target>/bundles-<first>-<end>/` — the bundles, the hash tiles
//!    that prove them, the checkpoint they are proven against, the records' payloads (still
//!    sealed), the file list, and last the manifest signed by the log key;
//! 2. reads the whole archive back and verifies it, as `veritrail verify-archive` does;
//! 3. appends the purge record (`x-veritrail.archive_purge`: the bundle and entry ranges, the
//!    archive's location, the manifest's SHA-256, the checkpoint size) and waits until it is
//!    durable;
//! 4. destroys the records' payloads in the payload store (tombstones name the purge record);
//! 5. saves the head of every conversation with a record in the bundles (so that a
//!    conversation that goes on links to its last record), then purges the bundles from the
//!    entry log ([`Ledger::purge`]: recorded, then punched out).
//!
//! A failed, partial or unverifiable archive stops the run before step 3: nothing is purged.
//! A crash after step 3 leaves the bundles in place; the next run finds the same bundles
//! purgeable, finds their archive already written (an archive is never overwritten),
//! verifies it again, and finishes (with a second purge record). Hash tiles are never purged,
//! so every proof of every entry, retained or archived, still verifies.

use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use veritrail_archive::{ArchiveError, Draft, Verified, archive_name, tiles_needed};
use veritrail_ledger::bundle::iter_bundle;
use veritrail_ledger::store::PurgedRange;
use veritrail_ledger::tile::TileId;
use veritrail_ledger::{Ledger, SignedCheckpoint};
use veritrail_objects::Objects;
use veritrail_records::hold::Holds;
use veritrail_records::retention::RetentionPolicy;
use veritrail_records::{is_record, parse_leaf};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, Internal};
use crate::payloads::{Affected, PayloadStore};

/// The action of the record announcing a purge.
pub const PURGE_ACTION: &str = "x-veritrail.archive_purge";
/// Most bundles in one archive (a million entries): bounds the memory and the time of one
/// archive, and the size of its file list.
pub const MAX_ARCHIVE_BUNDLES: u64 = 4096;

/// Appends a server record with these `details` (action [`PURGE_ACTION`]) and answers its
/// index once it is durable.
pub type Recorder = dyn Fn(Map<String, Value>) -> Pin<Box<dyn Future<Output = Result<u64, String>> + Send>>
    + Send
    + Sync;

/// Why an archive run stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveRunError {
    /// The log could not be read or purged.
    #[error("the log: {0}")]
    Ledger(#[from] veritrail_ledger::Error),
    /// The archive could not be written, or did not verify: nothing was purged.
    #[error("archive: {0}")]
    Archive(#[from] ArchiveError),
    /// The target location is unusable.
    #[error(transparent)]
    Objects(#[from] veritrail_objects::ObjectsError),
    /// The purge record could not be appended: nothing was purged.
    #[error("cannot append the purge record: {0}")]
    Record(String),
    /// The payload store failed after the purge record was appended (the next run finishes).
    #[error("payload store: {0}")]
    Payloads(#[from] crate::payloads::PayloadError),
    /// No signed checkpoint covers the bundles.
    #[error("no signed checkpoint covers the log yet")]
    NoCheckpoint,
    /// A background task failed.
    #[error("an archive task failed: {0}")]
    Task(String),
}

/// One archive written, verified and purged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchivedRange {
    /// The bundles.
    pub bundles: Range<u64>,
    /// Where the archive is.
    pub location: String,
    /// The SHA-256 of its manifest (hex).
    pub manifest_sha256: String,
    /// The purge record's index.
    pub record: u64,
    /// Bytes of the archive.
    pub bytes: u64,
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunReport {
    /// The archives written and purged, in order.
    pub archived: Vec<ArchivedRange>,
    /// Bundles expired but kept by a legal hold.
    pub held: u64,
    /// Bundles already purged before this run.
    pub already_purged: u64,
}

/// The archival job's parts.
#[derive(Clone)]
pub struct Archiver {
    /// The log.
    pub ledger: Arc<Ledger>,
    /// The payload store, if the server keeps one.
    pub payloads: Option<Arc<PayloadStore>>,
    /// Where archives go.
    pub target: Objects,
    /// The retention policy.
    pub policy: RetentionPolicy,
    /// Most bundles per archive.
    pub max_bundles: u64,
}

impl std::fmt::Debug for Archiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archiver")
            .field("target", &self.target.location())
            .field("max_bundles", &self.max_bundles)
            .finish_non_exhaustive()
    }
}

fn task_error(e: tokio::task::JoinError) -> ArchiveRunError {
    ArchiveRunError::Task(e.to_string())
}

impl Archiver {
    /// Archives and purges everything purgeable at `now` under `holds`, proven against
    /// `checkpoint` (bundles it does not cover whole are left). `progress` is called with
    /// (bundles done, bundles to do).
    ///
    /// # Errors
    /// [`ArchiveRunError`]; archives finished before the error stay purged (they are in
    /// the report of the log's purge records, not in the returned error).
    pub async fn run(
        &self,
        now: OffsetDateTime,
        holds: Holds,
        checkpoint: SignedCheckpoint,
        record: &Recorder,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<RunReport, ArchiveRunError> {
        let size = checkpoint.checkpoint.tree.size;
        let (ledger, policy) = (self.ledger.clone(), self.policy.clone());
        let plans = tokio::task::spawn_blocking(move || {
            crate::retention::plan(&ledger, &policy, &holds, size, now)
        })
        .await
        .map_err(task_error)??;
        let mut report = RunReport {
            held: plans
                .iter()
                .filter(|p| {
                    p.held_by.is_some() && p.expiry.as_ref().is_some_and(|e| e.until <= now)
                })
                .count() as u64,
            already_purged: plans.iter().filter(|p| p.archived_to.is_some()).count() as u64,
            ..RunReport::default()
        };
        let runs = crate::retention::purgeable(&plans, now, self.max_bundles.max(1));
        let total: u64 = runs.iter().map(|r| r.end - r.start).sum();
        let mut done = 0;
        progress(done, total);
        for run in runs {
            let archived = self.archive_one(run.clone(), &checkpoint, record).await?;
            done += run.end - run.start;
            progress(done, total);
            metrics::counter!("veritrail_archive_bundles_total").increment(run.end - run.start);
            metrics::counter!("veritrail_archive_bytes_total").increment(archived.bytes);
            report.archived.push(archived);
        }
        Ok(report)
    }

    /// Archives, verifies and purges one run of bundles.
    async fn archive_one(
        &self,
        bundles: Range<u64>,
        checkpoint: &SignedCheckpoint,
        record: &Recorder,
    ) -> Result<ArchivedRange, ArchiveRunError> {
        let objects = self.target.child(&archive_name(&bundles))?;
        let ledger = self.ledger.clone();
        let origin = ledger.origin().to_owned();
        let verifier = ledger.verifier().clone();
        let exists = objects
            .get(veritrail_archive::archive::MANIFEST_FILE)
            .await?
            .is_some();
        let (verified, nonces) = if exists {
            // A run that crashed after writing this archive: verify it and finish.
            let verified = veritrail_archive::verify(&objects, &origin, &verifier, &|_| {}).await?;
            if verified.manifest.bundles != bundles {
                return Err(ArchiveError::Exists {
                    location: objects.location().to_owned(),
                }
                .into());
            }
            let nonces = self.archived_nonces(&objects, &verified).await?;
            (verified, nonces)
        } else {
            let (files, nonces) = {
                let (ledger, payloads, checkpoint, bundles) = (
                    ledger.clone(),
                    self.payloads.clone(),
                    checkpoint.clone(),
                    bundles.clone(),
                );
                tokio::task::spawn_blocking(move || {
                    collect(&ledger, payloads.as_deref(), &checkpoint, bundles)
                })
                .await
                .map_err(task_error)??
            };
            let draft = Draft {
                origin: origin.clone(),
                bundles: bundles.clone(),
                tree: checkpoint.checkpoint.tree,
            };
            let signer = ledger.clone();
            veritrail_archive::write(
                &objects,
                &draft,
                files,
                move |text| signer.sign_statement(text).map_err(|e| e.to_string()),
                &|_| {},
            )
            .await?;
            // Read everything back: only a verified archive lets anything be purged.
            let verified = veritrail_archive::verify(&objects, &origin, &verifier, &|_| {}).await?;
            (verified, nonces)
        };
        let manifest_sha256 = veritrail_ledger::ascii::to_hex(&verified.manifest_sha256);
        let mut details = Map::new();
        details.insert(
            "bundles".into(),
            serde_json::json!({"first": bundles.start, "end": bundles.end}),
        );
        details.insert(
            "entries".into(),
            serde_json::json!({"first": bundles.start * 256, "end": bundles.end * 256}),
        );
        details.insert(
            "archive".into(),
            Value::String(objects.location().to_owned()),
        );
        details.insert(
            "manifest_sha256".into(),
            Value::String(manifest_sha256.clone()),
        );
        details.insert("checkpoint_size".into(), verified.manifest.size.into());
        let index = record(details).await.map_err(ArchiveRunError::Record)?;
        if let Some(store) = &self.payloads
            && !nonces.is_empty()
        {
            let affected = Affected {
                records: nonces,
                keys: Vec::new(),
            };
            store.destroy(&affected, index).await?;
        }
        // Conversations whose last record leaves must still link on to it.
        let keeper = ledger.clone();
        let heads = bundles.clone();
        tokio::task::spawn_blocking(move || crate::chains::save_purged_heads(&keeper, heads))
            .await
            .map_err(task_error)??;
        let range = PurgedRange {
            bundles: bundles.clone(),
            record: index,
            location: objects.location().to_owned(),
        };
        let purger = ledger.clone();
        tokio::task::spawn_blocking(move || purger.purge(range))
            .await
            .map_err(task_error)??;
        tracing::info!(
            first = bundles.start,
            end = bundles.end,
            location = objects.location(),
            record = index,
            "archived, verified and purged"
        );
        Ok(ArchivedRange {
            bundles,
            location: objects.location().to_owned(),
            manifest_sha256,
            record: index,
            bytes: verified.bytes,
        })
    }

    /// The payload-store folders (nonces, hex) of the records an archive holds payloads of.
    async fn archived_nonces(
        &self,
        objects: &Objects,
        verified: &Verified,
    ) -> Result<Vec<String>, ArchiveRunError> {
        let mut nonces = Vec::new();
        for file in verified
            .files
            .iter()
            .filter(|f| f.path.starts_with("payloads/"))
        {
            let Some(bytes) = objects.get(&file.path).await? else {
                continue;
            };
            if let Some(nonce) = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v.get("nonce")?.as_str().map(str::to_owned))
            {
                nonces.push(nonce);
            }
        }
        Ok(nonces)
    }
}

/// An archive's files (path, bytes) and its records' payload-store folders (nonces, hex).
type Collected = (Vec<(String, Bytes)>, Vec<String>);

/// The files of the archive of `bundles` (all but the file list and manifest), and the
/// payload-store folders of its records' payloads. Blocking.
fn collect(
    ledger: &Ledger,
    payloads: Option<&PayloadStore>,
    checkpoint: &SignedCheckpoint,
    bundles: Range<u64>,
) -> Result<Collected, ArchiveRunError> {
    let size = checkpoint.checkpoint.tree.size;
    let mut files = vec![(
        "checkpoint".to_owned(),
        Bytes::from(checkpoint.note.clone()),
    )];
    for tile in tiles_needed(bundles.clone(), size) {
        files.push((tile.path(), Bytes::from(ledger.read_tile(&tile)?)));
    }
    let mut nonces = Vec::new();
    for bundle in bundles {
        let bytes = ledger.entry_bundle(bundle, 256)?;
        for (offset, entry) in iter_bundle(&bytes).enumerate() {
            let Ok(entry) = entry else { break };
            let Some(store) = payloads else { continue };
            if !is_record(entry) {
                continue;
            }
            let Some(nonce) = parse_leaf(entry).ok().and_then(|r| {
                let text = r.get("nonce")?.as_str()?.to_owned();
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, text).ok()
            }) else {
                continue;
            };
            if let Some(exported) = store.export(&nonce)? {
                let index = bundle * 256 + offset as u64;
                files.push((format!("payloads/{index}.json"), Bytes::from(exported)));
                nonces.push(veritrail_ledger::ascii::to_hex(&nonce));
            }
        }
        let id = TileId::entries(bundle, 256).map_err(|e| ArchiveRunError::Task(e.to_string()))?;
        files.push((id.path(), Bytes::from(bytes)));
    }
    Ok((files, nonces))
}

/// The archival job of a running server: its archiver, and a lock so that the daily run and
/// `POST /v1/admin/archive` never overlap.
#[derive(Debug)]
pub struct ArchiveJob {
    /// The archiver.
    pub archiver: Archiver,
    lock: tokio::sync::Mutex<()>,
}

impl ArchiveJob {
    /// A job for `archiver`.
    pub fn new(archiver: Archiver) -> ArchiveJob {
        ArchiveJob {
            archiver,
            lock: tokio::sync::Mutex::new(()),
        }
    }
}

/// Runs the server's archival job once, for what has expired by `until`, proven against the
/// latest published checkpoint; purge records are appended through the committer like any
/// record, as submitted by `caller` (the job itself: none).
///
/// # Errors
/// [`ApiError`]: no checkpoint yet, the index catching up, or the run's failure
/// ([`ArchiveRunError`], as `internal` with the reason logged).
pub async fn run_job(
    state: &AppState,
    job: &ArchiveJob,
    until: OffsetDateTime,
    caller: Option<Caller>,
) -> Result<RunReport, ApiError> {
    let _running = job.lock.lock().await;
    let published = crate::routes::ledger::latest(state)?;
    let size = published.size();
    let (ledger, index) = (state.ledger.clone(), state.record_index.clone());
    let holds = tokio::task::spawn_blocking(move || {
        crate::holds::in_force(&ledger, index.as_deref(), size)
    })
    .await
    .map_err(|source| Internal::Task {
        what: "archive",
        source,
    })??;
    let recorder_state = state.clone();
    let record: Box<Recorder> = Box::new(move |details| {
        let state = recorder_state.clone();
        let caller = caller.clone();
        Box::pin(async move {
            crate::access::append_server_record(
                &state,
                PURGE_ACTION,
                caller,
                veritrail_records::ActorType::System,
                details,
            )
            .await
            .map_err(|e| e.to_string())
        })
    });
    let started = std::time::Instant::now();
    let result = job
        .archiver
        .run(
            until,
            holds,
            (*published.checkpoint).clone(),
            &*record,
            &|done, total| {
                metrics::gauge!("veritrail_archive_progress_bundles").set(done as f64);
                metrics::gauge!("veritrail_archive_pending_bundles")
                    .set(total.saturating_sub(done) as f64);
            },
        )
        .await;
    metrics::histogram!("veritrail_archive_run_seconds").record(started.elapsed().as_secs_f64());
    match result {
        Ok(report) => {
            metrics::counter!("veritrail_archive_runs_total", "result" => "ok").increment(1);
            metrics::gauge!("veritrail_archive_last_success_timestamp_seconds")
                .set(OffsetDateTime::now_utc().unix_timestamp() as f64);
            tracing::info!(
                archives = report.archived.len(),
                held = report.held,
                "archival run finished"
            );
            Ok(report)
        }
        Err(e) => {
            metrics::counter!("veritrail_archive_runs_total", "result" => "failed").increment(1);
            tracing::error!(error = %e, "archival run stopped; nothing unverified was purged");
            Err(ApiError::Internal(Internal::Record(format!(
                "archival stopped: {e}"
            ))))
        }
    }
}

/// Runs the job every `interval` until `stop` turns true.
pub(crate) async fn run_daily(
    state: AppState,
    job: std::sync::Arc<ArchiveJob>,
    interval: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let _ = run_job(&state, &job, OffsetDateTime::now_utc(), None).await;
    }
}

/// Full bundle `bundle`, purged here, read from the archive the server re-serves
/// (`serve --archive`) and checked entry by entry against the log's own level-0 tile before
/// it is served. `None` when the server re-serves no archive or the bundle is not purged.
///
/// # Errors
/// [`ApiError::Archived`] when the archive does not hold it; [`ApiError::Corrupted`] when the
/// archive's copy does not hash to the log's leaves (it is never served).
pub(crate) async fn read_archived(
    state: &AppState,
    bundle: u64,
) -> Result<Option<Vec<u8>>, ApiError> {
    let Some(source) = &state.archive_source else {
        return Ok(None);
    };
    let Some(range) = state.ledger.purged_range(bundle) else {
        return Ok(None);
    };
    let gone = || ApiError::Archived {
        index: bundle * 256,
        location: range.location.clone(),
        record: range.record,
    };
    let archive = source
        .child(&archive_name(&range.bundles))
        .map_err(|_| gone())?;
    let path = TileId::entries(bundle, 256).map_err(|_| gone())?.path();
    let bytes = match archive.get(&path).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Err(gone()),
        Err(e) => {
            tracing::warn!(error = %e, bundle, "cannot read an archived bundle");
            return Err(gone());
        }
    };
    let ledger = state.ledger.clone();
    let checked = tokio::task::spawn_blocking(move || {
        ledger
            .check_bundle(bundle, 256, &bytes)
            .map(|()| bytes.to_vec())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|source| Internal::Task {
        what: "archive read",
        source,
    })?;
    checked.map(Some).map_err(|why| ApiError::Corrupted {
        what: format!("archived bundle {bundle} at {}: {why}", archive.location()),
    })
}

/// Entry `index`: from the log, or, purged here, from the archive the server re-serves.
///
/// # Errors
/// As [`crate::routes::ledger::blocking`] and [`read_archived`].
pub(crate) async fn entry(state: &AppState, index: u64) -> Result<Vec<u8>, ApiError> {
    match crate::routes::ledger::blocking(state, move |l| l.entry(index)).await {
        Err(ApiError::Archived { .. }) if state.archive_source.is_some() => {
            let archived = read_archived(state, index / 256).await?;
            let bundle =
                archived.ok_or_else(|| ApiError::Internal(Internal::Record("purged".into())))?;
            veritrail_ledger::bundle::iter_bundle(&bundle)
                .nth((index % 256) as usize)
                .and_then(Result::ok)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| ApiError::Corrupted {
                    what: format!("archived bundle {} lacks entry {index}", index / 256),
                })
        }
        other => other,
    }
}
