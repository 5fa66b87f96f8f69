//! Group commit: concurrent append requests share one durable commit.
//!
//! Requests are queued (bounded by entries and bytes; a full queue answers 503 at once, so
//! memory never grows without bound) and a dedicated committer thread drains the queue into
//! batches bounded by [`BatchConfig`]: it takes the first waiting request, gathers whatever
//! else arrives within `max_delay` (or is already waiting), appends the whole batch with one
//! [`Ledger::append`] — one fsync — and only then answers every request of the batch.
//!
//! Requests with an `Idempotency-Key` carry a [`Keyed`]. Before the ledger commit, the
//! committer — the ledger's only writer, so it knows the indices the batch will get — appends
//! one journal record per keyed request and syncs the journal (one extra `fdatasync` per commit
//! that holds keyed requests, none otherwise). After the commit it remembers the outcomes in
//! the [`Idempotency`] store before answering, and compacts the journal when it has grown past
//! twice the live records (amortised: a rewrite of the live records every time the file
//! doubles).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{oneshot, watch};
use veritrail_ledger::{Ledger, TreeHead, leaf_hash};
use veritrail_records::{Prev, Unchained};

use crate::chains::{Chains, Head};
use crate::clock::unix_ms;
use crate::config::BatchConfig;
use crate::error::{ApiError, InvalidEntry, StartError};
use crate::idempotency::journal::Journal;
use crate::idempotency::{Idempotency, Keyed, Record};

/// What a request gets back once its entries are durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// The indices assigned to the request's entries.
    pub indices: Range<u64>,
    /// The committed tree head right after the batch that held them.
    pub tree: TreeHead,
    /// The leaf hash of each of the request's entries, in order.
    pub leaf_hashes: Vec<veritrail_ledger::Hash>,
    /// For a request with records, the leaves of all its entries as the committer wrote them
    /// (raw entries first, then the records with their chain links); empty for raw entries
    /// alone, whose bytes the requester has.
    pub leaves: Vec<Bytes>,
}

/// A queued request.
struct Job {
    /// Raw entries; for a request with records, once the committer has linked them into
    /// their chains, the raw entries followed by the records' leaves.
    entries: Vec<Bytes>,
    /// Agent records waiting for their chain links (empty for raw entries).
    records: Vec<Unchained>,
    /// Whether `entries` are linked records (answered with their leaves).
    linked: bool,
    /// Entries the job appends.
    count: usize,
    /// Bytes of queue room it holds (for records: the most their leaves can take).
    bytes: usize,
    keyed: Option<Keyed>,
    reply: oneshot::Sender<Result<Committed, ApiError>>,
}

/// Queue depth and health, shared between submitters and the committer.
struct Depth {
    entries: AtomicUsize,
    bytes: AtomicUsize,
    /// False after a failed commit, true again after a successful one.
    healthy: AtomicBool,
    /// The last commit failed because the disk is full.
    no_space: AtomicBool,
}

impl Default for Depth {
    fn default() -> Self {
        Depth {
            entries: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
            no_space: AtomicBool::new(false),
        }
    }
}

/// The group-commit front of the ledger.
pub struct Sequencer {
    sender: RwLock<Option<mpsc::Sender<Job>>>,
    depth: Arc<Depth>,
    config: BatchConfig,
    closed: AtomicBool,
    committer: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Sequencer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sequencer")
            .field(
                "queued_entries",
                &self.depth.entries.load(Ordering::Relaxed),
            )
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Sequencer {
    /// Starts the committer thread. Every committed batch's tree head is sent on `committed`;
    /// keyed requests' outcomes are remembered in `idempotency` and, with a `journal`, made
    /// durable before their commit.
    ///
    /// # Errors
    /// [`StartError::CommitterThread`] if the thread cannot be spawned.
    pub fn start(
        ledger: Arc<Ledger>,
        config: BatchConfig,
        committed: watch::Sender<TreeHead>,
        idempotency: Arc<Idempotency>,
        journal: Option<Journal>,
    ) -> Result<Self, StartError> {
        let (sender, receiver) = mpsc::channel();
        let depth = Arc::new(Depth::default());
        let chains = Chains::load(&ledger).map_err(StartError::Chains)?;
        tracing::info!(
            conversations = chains.len(),
            "loaded the conversation chains"
        );
        let mut committer = Committer {
            ledger,
            chains,
            config: config.clone(),
            depth: depth.clone(),
            committed,
            idempotency,
            journal,
        };
        let handle = std::thread::Builder::new()
            .name("veritrail-committer".into())
            .spawn(move || committer.run(&receiver))
            .map_err(StartError::CommitterThread)?;
        Ok(Sequencer {
            sender: RwLock::new(Some(sender)),
            depth,
            config,
            closed: AtomicBool::new(false),
            committer: Mutex::new(Some(handle)),
        })
    }

    /// Entries currently waiting for a commit.
    pub fn queued_entries(&self) -> usize {
        self.depth.entries.load(Ordering::Relaxed)
    }

    /// Whether [`Sequencer::shutdown`] has begun.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// False while the last commit failed.
    pub fn is_healthy(&self) -> bool {
        self.depth.healthy.load(Ordering::Acquire)
    }

    /// True while the last commit failed because the disk is full.
    pub fn is_out_of_space(&self) -> bool {
        self.depth.no_space.load(Ordering::Acquire)
    }

    /// Queues `entries` (already validated, without an idempotency key) for the next commit
    /// and returns a receiver for the result, which arrives once they are durable.
    ///
    /// # Errors
    /// As [`Sequencer::submit_keyed`].
    pub fn submit(
        &self,
        entries: Vec<Bytes>,
    ) -> Result<oneshot::Receiver<Result<Committed, ApiError>>, ApiError> {
        self.submit_keyed(entries, None)
    }

    /// Queues `entries` (already validated) for the next commit and returns a receiver for the
    /// result, which arrives once they are durable. A `keyed` request's outcome is journaled
    /// before the commit and remembered before the answer.
    ///
    /// # Errors
    /// [`ApiError::Overloaded`] when the queue is full (nothing is queued);
    /// [`ApiError::ShuttingDown`] after [`Sequencer::shutdown`] began.
    pub fn submit_keyed(
        &self,
        entries: Vec<Bytes>,
        keyed: Option<Keyed>,
    ) -> Result<oneshot::Receiver<Result<Committed, ApiError>>, ApiError> {
        self.enqueue(entries, Vec::new(), keyed)
    }

    /// Queues agent `records` (validated and encoded but for their chain links) for the next
    /// commit. The committer links each to the previous record of its conversation within
    /// the commit; a request with a record for a closed conversation is refused whole with
    /// 409 `conversation_closed` and appends nothing.
    ///
    /// # Errors
    /// As [`Sequencer::submit_keyed`].
    pub fn submit_records(
        &self,
        records: Vec<Unchained>,
        keyed: Option<Keyed>,
    ) -> Result<oneshot::Receiver<Result<Committed, ApiError>>, ApiError> {
        self.enqueue(Vec::new(), records, keyed)
    }

    /// Queues raw `entries` and agent `records` as one commit: the entries first, then the
    /// records (linked as by [`Sequencer::submit_records`]). Both are appended, or neither:
    /// a record for a closed conversation refuses the whole job with 409.
    ///
    /// # Errors
    /// As [`Sequencer::submit_keyed`].
    pub fn submit_entries_and_records(
        &self,
        entries: Vec<Bytes>,
        records: Vec<Unchained>,
    ) -> Result<oneshot::Receiver<Result<Committed, ApiError>>, ApiError> {
        self.enqueue(entries, records, None)
    }

    /// Queues a job of raw `entries` followed by `records`; its size in the queue counts each
    /// record at its largest leaf.
    fn enqueue(
        &self,
        entries: Vec<Bytes>,
        records: Vec<Unchained>,
        keyed: Option<Keyed>,
    ) -> Result<oneshot::Receiver<Result<Committed, ApiError>>, ApiError> {
        let count = entries.len() + records.len();
        let bytes = entries.iter().map(Bytes::len).sum::<usize>()
            + records.iter().map(Unchained::max_leaf_len).sum::<usize>();
        if self.closed.load(Ordering::Acquire) {
            return Err(ApiError::ShuttingDown);
        }
        // A request larger than the whole queue could never be accepted: say so, not "retry".
        if bytes > self.config.queue_bytes {
            return Err(ApiError::PayloadTooLarge {
                limit: self.config.queue_bytes,
            });
        }
        if count > self.config.queue_entries {
            return Err(InvalidEntry::LargerThanQueue {
                count,
                queue: self.config.queue_entries,
            }
            .into());
        }
        // Reserve queue room first; undo the reservation if either bound is exceeded.
        let queued_entries = self.depth.entries.fetch_add(count, Ordering::AcqRel) + count;
        let queued_bytes = self.depth.bytes.fetch_add(bytes, Ordering::AcqRel) + bytes;
        if queued_entries > self.config.queue_entries || queued_bytes > self.config.queue_bytes {
            self.depth.release(count, bytes);
            metrics::counter!("veritrail_append_rejected_total", "reason" => "queue_full")
                .increment(1);
            return Err(ApiError::Overloaded { retry_after: 1 });
        }
        let (reply, receiver) = oneshot::channel();
        let job = Job {
            entries,
            records,
            linked: false,
            count,
            bytes,
            keyed,
            reply,
        };
        let sent = self
            .sender
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|sender| sender.send(job).is_ok())
            .unwrap_or(false);
        if !sent {
            self.depth.release(count, bytes);
            return Err(ApiError::ShuttingDown);
        }
        metrics::gauge!("veritrail_append_queue_entries").set(self.queued_entries() as f64);
        Ok(receiver)
    }

    /// Stops accepting appends, lets the committer finish every queued batch, and waits for
    /// it to exit.
    pub fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        // Dropping the only sender ends the committer once the queue is drained.
        drop(
            self.sender
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let handle = self
            .committer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle
            && handle.join().is_err()
        {
            tracing::error!("the committer thread panicked");
        }
    }
}

impl Depth {
    fn release(&self, entries: usize, bytes: usize) {
        self.entries.fetch_sub(entries, Ordering::AcqRel);
        self.bytes.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// The committer thread's state.
struct Committer {
    ledger: Arc<Ledger>,
    chains: Chains,
    config: BatchConfig,
    depth: Arc<Depth>,
    committed: watch::Sender<TreeHead>,
    idempotency: Arc<Idempotency>,
    journal: Option<Journal>,
}

/// The journal records of `batch`'s keyed requests if it lands at `first`.
fn keyed_records(batch: &[Job], first: u64, created_ms: u64) -> Vec<Record> {
    let mut next = first;
    let mut records = Vec::new();
    for job in batch {
        let count = job.count as u64;
        if let Some(keyed) = job.keyed {
            records.push(Record {
                id: keyed.id,
                fingerprint: keyed.fingerprint,
                first: next,
                // A job holds at most `MAX_BATCH_ENTRIES` (4096) entries.
                count: u32::try_from(count).unwrap_or(u32::MAX),
                created_ms,
            });
        }
        next += count;
    }
    records
}

impl Committer {
    fn run(&mut self, receiver: &mpsc::Receiver<Job>) {
        let mut carry: Option<Job> = None;
        loop {
            let first = match carry.take() {
                Some(job) => job,
                None => match receiver.recv() {
                    Ok(job) => job,
                    // Every sender is gone and the queue is empty: a graceful shutdown.
                    Err(_) => return self.save_chains(),
                },
            };
            let (batch, next) = self.gather(first, receiver);
            carry = next;
            self.commit(batch);
        }
    }

    /// Saves the conversation heads for the next start (see [`Chains::save`]); a failure
    /// only costs that start a read of the whole log.
    fn save_chains(&self) {
        let started = Instant::now();
        match self.chains.save(&self.ledger) {
            Ok(()) => tracing::info!(
                conversations = self.chains.len(),
                seconds = started.elapsed().as_secs_f64(),
                "saved the conversation chains"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "cannot save the conversation chains; the next start reads the whole log")
            }
        }
    }

    /// Gathers a batch starting with `first`: whatever is waiting, plus whatever arrives within
    /// `max_delay`, within the batch bounds. A job that does not fit is returned for the next
    /// batch (a single job larger than the bounds forms a batch of its own).
    fn gather(&self, first: Job, receiver: &mpsc::Receiver<Job>) -> (Vec<Job>, Option<Job>) {
        let deadline = Instant::now() + self.config.max_delay;
        let mut entries = first.count;
        let mut bytes = first.bytes;
        let mut batch = vec![first];
        loop {
            if entries >= self.config.max_entries || bytes >= self.config.max_bytes {
                return (batch, None);
            }
            let job = match receiver.try_recv() {
                Ok(job) => job,
                Err(TryRecvError::Disconnected) => return (batch, None),
                Err(TryRecvError::Empty) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return (batch, None);
                    }
                    match receiver.recv_timeout(deadline - now) {
                        Ok(job) => job,
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                            return (batch, None);
                        }
                    }
                }
            };
            if entries + job.count > self.config.max_entries
                || bytes + job.bytes > self.config.max_bytes
            {
                return (batch, Some(job));
            }
            entries += job.count;
            bytes += job.bytes;
            batch.push(job);
        }
    }

    /// Fails every request of `batch` with 507 (`no_space`) or 503, after releasing
    /// `(entries, bytes)` of queue room and logging `cause`.
    fn fail(
        &self,
        batch: Vec<Job>,
        release: (usize, usize),
        no_space: bool,
        cause: &dyn std::error::Error,
    ) {
        self.depth.release(release.0, release.1);
        self.depth.healthy.store(false, Ordering::Release);
        self.depth.no_space.store(no_space, Ordering::Release);
        tracing::error!(error = %cause, no_space, requests = batch.len(), "commit failed; nothing of the batch was appended");
        let reason = if no_space { "no_space" } else { "io" };
        metrics::counter!("veritrail_commit_failures_total", "reason" => reason).increment(1);
        for job in batch {
            let _ = job.reply.send(Err(ApiError::store_failure(no_space)));
        }
    }

    /// Links the records of `batch` into their conversations' chains, in index order from
    /// `first`: each record's leaf gets `prev` = the previous record of its conversation (in
    /// the log or earlier in this batch). A job with a record for a closed conversation is
    /// answered 409 and left out. Returns the batch to commit and the new chain heads, which
    /// become current only once the commit is durable.
    fn link(&self, batch: Vec<Job>, first: u64) -> (Vec<Job>, HashMap<String, Head>) {
        let mut staged = HashMap::new();
        let mut kept = Vec::with_capacity(batch.len());
        let mut next = first;
        for mut job in batch {
            if job.records.is_empty() {
                next += job.count as u64;
                kept.push(job);
                continue;
            }
            let mut links = staged.clone();
            // A job's raw entries (if any) come first, then its records.
            let raw = std::mem::take(&mut job.entries);
            let first_record = next + raw.len() as u64;
            let mut leaves = Vec::with_capacity(raw.len() + job.records.len());
            leaves.extend(raw);
            let mut closed = None;
            for (i, record) in job.records.iter().enumerate() {
                let index = first_record + i as u64;
                let prev = match &record.conversation_id {
                    Some(conversation) => match self.chains.head(&links, conversation) {
                        Some(head) if head.closed => {
                            closed = Some(conversation.clone());
                            break;
                        }
                        Some(head) => Some(head.last),
                        None => None,
                    },
                    None => None,
                };
                let leaf = record.leaf(prev.as_ref());
                if let Some(conversation) = &record.conversation_id {
                    links.insert(
                        conversation.clone(),
                        Head {
                            last: Prev {
                                index,
                                leaf_hash: leaf_hash(&leaf),
                            },
                            closed: record.ends_conversation,
                        },
                    );
                }
                leaves.push(Bytes::from(leaf));
            }
            if let Some(conversation) = closed {
                self.depth.release(job.count, job.bytes);
                let _ = job
                    .reply
                    .send(Err(ApiError::ConversationClosed { conversation }));
                continue;
            }
            staged = links;
            next += leaves.len() as u64;
            job.entries = leaves;
            job.records.clear();
            job.linked = true;
            kept.push(job);
        }
        (kept, staged)
    }

    fn commit(&mut self, batch: Vec<Job>) {
        // The committer is the ledger's only writer: the batch lands at the current size.
        let first = self.ledger.tree_head().size;
        let (batch, staged) = self.link(batch, first);
        if batch.is_empty() {
            return;
        }
        let entries: Vec<&[u8]> = batch
            .iter()
            .flat_map(|job| job.entries.iter().map(|e| e.as_ref()))
            .collect();
        let bytes: usize = batch.iter().map(|job| job.bytes).sum();
        let started = Instant::now();
        let created_ms = unix_ms();
        let keyed = if batch.iter().any(|job| job.keyed.is_some()) {
            keyed_records(&batch, first, created_ms)
        } else {
            Vec::new()
        };
        if let Some(journal) = self.journal.as_mut().filter(|_| !keyed.is_empty())
            && let Err(err) = journal.append(&keyed)
        {
            let count = entries.len();
            drop(entries);
            let no_space = err.is_no_space();
            self.fail(batch, (count, bytes), no_space, &err);
            return;
        }
        let result = self.ledger.append(&entries);
        let elapsed = started.elapsed();
        self.depth.release(entries.len(), bytes);
        metrics::histogram!("veritrail_commit_seconds").record(elapsed.as_secs_f64());
        metrics::histogram!("veritrail_batch_entries").record(entries.len() as f64);
        metrics::histogram!("veritrail_batch_requests").record(batch.len() as f64);
        metrics::gauge!("veritrail_append_queue_entries")
            .set(self.depth.entries.load(Ordering::Relaxed) as f64);
        match result {
            Ok(appended) => {
                self.chains.apply(staged);
                self.depth.healthy.store(true, Ordering::Release);
                self.depth.no_space.store(false, Ordering::Release);
                if !keyed.is_empty() {
                    if appended.indices.start != first {
                        // Impossible while the committer is the only writer; the journal
                        // records would name the wrong indices (and be dropped at the next
                        // start, since the entries there differ).
                        tracing::error!(
                            expected = first,
                            got = appended.indices.start,
                            "the batch landed at other indices than journaled"
                        );
                    }
                    let records = keyed_records(&batch, appended.indices.start, created_ms);
                    self.idempotency.remember(&records);
                }
                metrics::counter!("veritrail_appended_entries_total")
                    .increment(entries.len() as u64);
                metrics::gauge!("veritrail_tree_size").set(appended.tree.size as f64);
                let mut next = appended.indices.start;
                let mut hashes = appended.leaf_hashes.into_iter();
                for job in batch {
                    let indices = next..next + job.entries.len() as u64;
                    next = indices.end;
                    let leaf_hashes = hashes.by_ref().take(job.entries.len()).collect();
                    let leaves = if job.linked { job.entries } else { Vec::new() };
                    // A requester that gave up (timeout, disconnect) simply does not listen.
                    let _ = job.reply.send(Ok(Committed {
                        indices,
                        tree: appended.tree,
                        leaf_hashes,
                        leaves,
                    }));
                }
                self.committed.send_replace(appended.tree);
            }
            Err(err) => {
                // The queue room was released above.
                drop(entries);
                let no_space = err.is_no_space();
                self.fail(batch, (0, 0), no_space, &err);
            }
        }
        if elapsed > Duration::from_secs(1) {
            tracing::warn!(?elapsed, "slow durable commit");
        }
        if !keyed.is_empty() {
            self.maybe_compact();
        }
    }

    /// Rewrites the journal from the live records once it holds more than twice as many.
    /// Runs between commits, so no journaled batch is in flight.
    fn maybe_compact(&mut self) {
        let Some(journal) = self.journal.as_mut() else {
            return;
        };
        if !journal.should_compact(self.idempotency.len()) {
            return;
        }
        let live = self.idempotency.live_records();
        let before = journal.records();
        let started = Instant::now();
        match journal.compact(&live) {
            Ok(()) => {
                metrics::histogram!("veritrail_idempotency_compaction_seconds")
                    .record(started.elapsed().as_secs_f64());
                tracing::info!(
                    before,
                    after = live.len(),
                    elapsed = ?started.elapsed(),
                    "compacted the idempotency journal"
                );
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot compact the idempotency journal; it keeps growing until the next attempt");
            }
        }
    }
}
