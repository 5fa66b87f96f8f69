//! Record indexes: derived data for `GET /v1/records`, kept behind the committer.
//!
//! One redb database, `<data>/record-index.redb`, separate from the log's store, with a
//! table of postings and a watermark (the next log index to read), the watermark updated in
//! the same transaction as the postings it covers.
//!
//! Postings are chunked: one key per (field, value) and index transaction, `field tag ‖ u16
//! length ‖ value ‖ last record index in the chunk (u64 BE)`, whose value lists the chunk's
//! record indices (LEB128, the first absolute, then the gaps). One (field, value) pair's
//! chunks are one key range in index order, and chunks never overlap (each transaction covers
//! the log range after the previous one), so a query from `cursor` starts at the first chunk
//! whose last index is at or after it. A transaction of thousands of records thus writes a
//! few hundred keys, not eleven per record: the B-tree inserts were most of the indexer's
//! cost. Timestamps are posted by the second they fall in; the exact filter is evaluated on
//! every record a query returns.
//!
//! The indexer thread reads committed entries from the watermark on, a bundle at a time,
//! never from the committer's path: appends do not wait for it, and a query whose checkpoint
//! it has not reached yet is answered `503 index_catching_up`. A missing, damaged or foreign
//! index (its watermark beyond the log) is deleted and rebuilt from the log at start: the log
//! is the only source of truth, and every answer is checked by the client anyway.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use redb::{ReadableDatabase as _, ReadableTable as _, TableDefinition};
use serde_json::Value;
use veritrail_ledger::Ledger;
use veritrail_ledger::bundle::{BUNDLE_ENTRIES, iter_bundle};
use veritrail_ledger::tile::entry_bundle_width;
use veritrail_records::query::unix_nanos;
use veritrail_records::{Filter, is_record};

/// The index file in the data directory.
pub const INDEX_FILE: &str = "record-index.redb";
/// Bumped when the postings' layout changes: an index of another version is rebuilt.
const FORMAT: u64 = 2;
/// Most log entries read into one index transaction.
const BATCH: u64 = 64 * BUNDLE_ENTRIES as u64;
/// Fewest new entries the indexer waits for before a transaction, unless hurried or
/// [`MAX_LAG`] has passed: larger transactions cost less per entry.
const MIN_BATCH: u64 = 4 * BUNDLE_ENTRIES as u64;
/// Longest the indexer lets new entries wait.
const MAX_LAG: Duration = Duration::from_millis(200);
/// How often a waiting indexer looks at the log's size.
const IDLE: Duration = Duration::from_millis(10);
/// Longest between two synced index commits.
const DURABLE_EVERY: Duration = Duration::from_secs(1);
/// Most candidate records one query request examines before it answers with a cursor.
pub const SCAN_BUDGET: usize = 20_000;
/// Most timestamp postings a query reads to find the records of its time range.
pub const TIME_SCAN: usize = 200_000;
/// Timestamps are posted by the second.
const TIME_BUCKET: i128 = 1_000_000_000;

const POSTINGS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("postings");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The indexed fields, as key tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Field {
    // 0 was a posting of every record (format 1); the log itself now serves that scan.
    Conversation = 1,
    Actor = 2,
    Submitter = 3,
    Agent = 4,
    Action = 5,
    ResourceType = 6,
    ResourceId = 7,
    Classification = 8,
    Compliance = 9,
    Timestamp = 10,
    ReceivedAt = 11,
}

/// `field tag ‖ u16 length ‖ value ‖ last (u64 BE)`: a chunk's key.
fn key(field: Field, value: &[u8], last: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + 2 + value.len() + 8);
    write_prefix(&mut key, field, value);
    key.extend_from_slice(&last.to_be_bytes());
    key
}

/// `field tag ‖ u16 length ‖ value`: what every chunk key of (field, value) starts with.
fn write_prefix(out: &mut Vec<u8>, field: Field, value: &[u8]) {
    let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
    out.push(field as u8);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(value.get(..usize::from(len)).unwrap_or_default());
}

/// A chunk's record indices, ascending, as LEB128: the first, then the gaps.
fn encode(indices: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(indices.len() * 2 + 8);
    let mut previous = 0;
    for &index in indices {
        let mut rest = index.saturating_sub(previous);
        previous = index;
        loop {
            let low = (rest & 0x7f) as u8;
            rest >>= 7;
            if rest == 0 {
                out.push(low);
                break;
            }
            out.push(low | 0x80);
        }
    }
    out
}

/// The record indices of a chunk, or `None` if its bytes are not a chunk's.
fn decode(bytes: &[u8]) -> Option<Vec<u64>> {
    let mut out = Vec::with_capacity(bytes.len());
    let (mut value, mut shift, mut previous) = (0u64, 0u32, 0u64);
    for &byte in bytes {
        let low = u64::from(byte & 0x7f);
        value |= low.checked_shl(shift).filter(|v| v >> shift == low)?;
        if byte & 0x80 == 0 {
            previous = previous.checked_add(value)?;
            out.push(previous);
            (value, shift) = (0, 0);
        } else {
            shift += 7;
            if shift > 63 {
                return None;
            }
        }
    }
    (shift == 0).then_some(out)
}

/// Orders signed nanoseconds as unsigned bytes.
fn time_bytes(nanos: i128) -> [u8; 16] {
    ((nanos as u128) ^ (1 << 127)).to_be_bytes()
}

/// The posting value of a time: its second, ordered as unsigned bytes.
fn time_value(nanos: i128) -> [u8; 16] {
    time_bytes(nanos.div_euclid(TIME_BUCKET) * TIME_BUCKET)
}

/// What the index keeps of one record: its indexed fields, borrowed from the leaf where the
/// JSON text allows (strings without escapes).
#[derive(Debug, Default, serde::Deserialize)]
struct Fields<'a> {
    #[serde(borrow, default)]
    conversation_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    actor: Option<Ids<'a>>,
    #[serde(borrow, default)]
    agent: Option<Ids<'a>>,
    #[serde(borrow, default)]
    action: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    resource: Option<Ids<'a>>,
    #[serde(borrow, default)]
    classification: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    compliance: Vec<Cow<'a, str>>,
    #[serde(borrow, default)]
    submitted_by: Option<Ids<'a>>,
    #[serde(borrow, default)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    received_at: Option<Cow<'a, str>>,
}

/// The string members of a nested object the index reads (`actor.id`, `agent.name`,
/// `resource.type`, `resource.id`, `submitted_by.{type,name,subject}`).
#[derive(Debug, Default, serde::Deserialize)]
struct Ids<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    subject: Option<Cow<'a, str>>,
}

impl<'a> Fields<'a> {
    /// The fields of a record leaf's JSON. The committer validated every record against the
    /// schema, so the typed parse holds for every record it wrote; anything else (a record of
    /// an older schema) is read leniently through [`Value`], a field of the wrong type
    /// counting as absent, exactly as [`Filter::matches`] treats it.
    fn parse(json: &'a [u8]) -> Option<Fields<'a>> {
        if let Ok(fields) = serde_json::from_slice(json) {
            return Some(fields);
        }
        let record: Value = serde_json::from_slice(json).ok()?;
        let text = |path: &[&str]| {
            path.iter()
                .try_fold(&record, |v, k| v.get(k))
                .and_then(Value::as_str)
                .map(|s| Cow::Owned(s.to_owned()))
        };
        let ids = |object: &str| Ids {
            id: text(&[object, "id"]),
            name: text(&[object, "name"]),
            kind: text(&[object, "type"]),
            subject: text(&[object, "subject"]),
        };
        Some(Fields {
            conversation_id: text(&["conversation_id"]),
            actor: Some(ids("actor")),
            agent: Some(ids("agent")),
            action: text(&["action"]),
            resource: Some(ids("resource")),
            classification: text(&["classification"]),
            compliance: record
                .get("compliance")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|s| Cow::Owned(s.to_owned()))
                .collect(),
            submitted_by: Some(ids("submitted_by")),
            timestamp: text(&["timestamp"]),
            received_at: text(&["received_at"]),
        })
    }

    /// Who submitted the record, as [`veritrail_records::query::submitter_of`] names it.
    fn submitter(&self) -> Option<&str> {
        let by = self.submitted_by.as_ref()?;
        match by.kind.as_deref()? {
            "token" => by.name.as_deref(),
            "oidc" => by.subject.as_deref(),
            "anonymous" => Some("anonymous"),
            _ => None,
        }
    }

    /// Posts the record at `index` in `batch`.
    fn post(&self, index: u64, batch: &mut Batch) {
        let (actor, agent, resource) = (
            self.actor.as_ref(),
            self.agent.as_ref(),
            self.resource.as_ref(),
        );
        for (field, value) in [
            (Field::Conversation, self.conversation_id.as_deref()),
            (Field::Actor, actor.and_then(|i| i.id.as_deref())),
            (Field::Agent, agent.and_then(|i| i.name.as_deref())),
            (Field::Action, self.action.as_deref()),
            (
                Field::ResourceType,
                resource.and_then(|i| i.kind.as_deref()),
            ),
            (Field::ResourceId, resource.and_then(|i| i.id.as_deref())),
            (Field::Classification, self.classification.as_deref()),
            (Field::Submitter, self.submitter()),
        ] {
            if let Some(value) = value {
                batch.post(field, value.as_bytes(), index);
            }
        }
        for domain in &self.compliance {
            batch.post(Field::Compliance, domain.as_bytes(), index);
        }
        for (field, time) in [
            (Field::Timestamp, &self.timestamp),
            (Field::ReceivedAt, &self.received_at),
        ] {
            if let Some(nanos) = time.as_deref().and_then(unix_nanos) {
                batch.post(field, &time_value(nanos), index);
            }
        }
    }
}

/// The postings of one index transaction, by (field, value) prefix, each in index order.
#[derive(Debug, Default)]
struct Batch {
    chunks: HashMap<Vec<u8>, Vec<u64>>,
    scratch: Vec<u8>,
}

impl Batch {
    fn post(&mut self, field: Field, value: &[u8], index: u64) {
        self.scratch.clear();
        write_prefix(&mut self.scratch, field, value);
        match self.chunks.get_mut(self.scratch.as_slice()) {
            Some(indices) => indices.push(index),
            None => {
                self.chunks.insert(self.scratch.clone(), vec![index]);
            }
        }
    }

    /// The chunks as (key, value), in key order: the inserts walk the B-tree left to right.
    fn into_chunks(self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut chunks: Vec<(Vec<u8>, Vec<u8>)> = self
            .chunks
            .into_iter()
            .filter_map(|(mut key, indices)| {
                key.extend_from_slice(&indices.last()?.to_be_bytes());
                Some((key, encode(&indices)))
            })
            .collect();
        chunks.sort_unstable();
        chunks
    }
}

/// Why the index could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// The database failed.
    #[error("record index {path}: {message}")]
    Database {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The log could not be read.
    #[error("record index: cannot read the log: {0}")]
    Ledger(#[from] veritrail_ledger::Error),
}

/// The record indexes.
#[derive(Debug)]
pub struct RecordIndex {
    db: redb::Database,
    path: PathBuf,
    durable: Mutex<Durable>,
    /// Set by [`RecordIndex::hurry`], with the indexer's wake-up.
    wake: (Mutex<bool>, Condvar),
}

/// The durability of the index's commits.
#[derive(Debug)]
struct Durable {
    /// When the last synced commit was.
    at: Instant,
    /// Whether a commit since was not synced.
    behind: bool,
}

fn db_error(path: &Path) -> impl Fn(&dyn std::fmt::Display) -> IndexError + '_ {
    move |e| IndexError::Database {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

impl RecordIndex {
    /// Opens the index in `data` for a log of `size` entries; a damaged, foreign or
    /// outdated index is deleted and started afresh (the indexer rebuilds it).
    ///
    /// # Errors
    /// [`IndexError::Database`] if even a fresh index cannot be created.
    pub fn open(data: &Path, size: u64) -> Result<RecordIndex, IndexError> {
        let path = data.join(INDEX_FILE);
        match Self::try_open(&path, size) {
            Ok(index) => Ok(index),
            Err(why) => {
                tracing::warn!(path = %path.display(), %why, "record index unusable: rebuilding it from the log");
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(db_error(&path)(&e)),
                }
                Self::try_open(&path, size)
            }
        }
    }

    fn try_open(path: &Path, size: u64) -> Result<RecordIndex, IndexError> {
        let err = db_error(path);
        // Owner-only like every file of the data directory: created empty with mode 0600
        // first, which redb then initialises in place.
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(|e| err(&e))?;
        }
        let db = redb::Database::create(path).map_err(|e| err(&e))?;
        let index = RecordIndex {
            db,
            path: path.to_owned(),
            durable: Mutex::new(Durable {
                at: Instant::now(),
                behind: false,
            }),
            wake: (Mutex::new(false), Condvar::new()),
        };
        let txn = index.db.begin_write().map_err(|e| err(&e))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| err(&e))?;
            let format = meta.get("format").map_err(|e| err(&e))?.map(|v| v.value());
            let watermark = meta
                .get("watermark")
                .map_err(|e| err(&e))?
                .map(|v| v.value());
            match (format, watermark) {
                (None, None) => {
                    meta.insert("format", FORMAT).map_err(|e| err(&e))?;
                    meta.insert("watermark", 0).map_err(|e| err(&e))?;
                }
                (Some(FORMAT), Some(w)) if w <= size => {}
                (format, watermark) => {
                    return Err(err(&format!(
                        "format {format:?}, watermark {watermark:?} for a log of {size} entries"
                    )));
                }
            }
            txn.open_table(POSTINGS).map_err(|e| err(&e))?;
        }
        txn.commit().map_err(|e| err(&e))?;
        Ok(index)
    }

    /// The next log index the indexer will read: every record below it is indexed.
    ///
    /// # Errors
    /// [`IndexError::Database`].
    pub fn watermark(&self) -> Result<u64, IndexError> {
        let err = db_error(&self.path);
        let txn = self.db.begin_read().map_err(|e| err(&e))?;
        let meta = txn.open_table(META).map_err(|e| err(&e))?;
        Ok(meta
            .get("watermark")
            .map_err(|e| err(&e))?
            .map_or(0, |v| v.value()))
    }

    /// Indexes the log's entries from the watermark up to at most 16,384 more, in one
    /// transaction with the new watermark. Returns how many entries it read.
    ///
    /// # Errors
    /// [`IndexError`]; a bundle that fails verification is logged and its records skipped.
    pub fn step(&self, ledger: &Ledger) -> Result<u64, IndexError> {
        let from = self.watermark()?;
        let size = ledger.tree_head().size;
        if from >= size {
            return Ok(0);
        }
        let to = size.min(from + BATCH);
        let mut batch = Batch::default();
        let mut bundle = from / BUNDLE_ENTRIES as u64;
        while bundle * (BUNDLE_ENTRIES as u64) < to {
            let width = entry_bundle_width(bundle, size).unwrap_or(0);
            match ledger.entry_bundle(bundle, width) {
                Ok(bytes) => {
                    for (offset, entry) in iter_bundle(&bytes).enumerate() {
                        let index = bundle * BUNDLE_ENTRIES as u64 + offset as u64;
                        let Ok(entry) = entry else { break };
                        if index < from || index >= to || !is_record(entry) {
                            continue;
                        }
                        // The ledger verified the leaf against its hash on read, and the
                        // committer wrote it canonical: parse it without re-encoding it to
                        // check (`parse_leaf` would, at twice the cost).
                        match entry.get(1..).and_then(Fields::parse) {
                            Some(fields) => fields.post(index, &mut batch),
                            None => {
                                tracing::warn!(index, "a record leaf does not parse; not indexed")
                            }
                        }
                    }
                }
                Err(veritrail_ledger::Error::Corrupted { what }) => {
                    tracing::error!(bundle, %what, "a bundle failed verification; its records are not indexed");
                }
                // Archived and purged: its records are in the archive, not indexed here.
                Err(veritrail_ledger::Error::Purged { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            bundle += 1;
        }
        let chunks = batch.into_chunks();
        let err = db_error(&self.path);
        let mut txn = self.db.begin_write().map_err(|e| err(&e))?;
        // Most transactions are not synced: a crash loses at most those since the last durable
        // one, the watermark goes back with them, and the indexer reads those entries again.
        // One durable commit a second keeps that bounded and lets redb reuse freed pages.
        let durable = self.durable().at.elapsed() >= DURABLE_EVERY;
        txn.set_durability(if durable {
            redb::Durability::Immediate
        } else {
            redb::Durability::None
        })
        .map_err(|e| err(&e))?;
        {
            let mut table = txn.open_table(POSTINGS).map_err(|e| err(&e))?;
            for (key, indices) in &chunks {
                table
                    .insert(key.as_slice(), indices.as_slice())
                    .map_err(|e| err(&e))?;
            }
            let mut meta = txn.open_table(META).map_err(|e| err(&e))?;
            meta.insert("watermark", to).map_err(|e| err(&e))?;
        }
        txn.commit().map_err(|e| err(&e))?;
        self.committed(durable);
        metrics::counter!("veritrail_record_index_entries_total").increment(to - from);
        Ok(to - from)
    }

    fn durable(&self) -> MutexGuard<'_, Durable> {
        self.durable.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn committed(&self, durable: bool) {
        let mut state = self.durable();
        if durable {
            *state = Durable {
                at: Instant::now(),
                behind: false,
            };
        } else {
            state.behind = true;
        }
    }

    /// Makes every indexed entry durable (a synced commit, if any since the last was not):
    /// what a clean stop and the offline rebuild end with.
    ///
    /// # Errors
    /// [`IndexError::Database`].
    pub fn flush(&self) -> Result<(), IndexError> {
        if !self.durable().behind {
            return Ok(());
        }
        let err = db_error(&self.path);
        let mut txn = self.db.begin_write().map_err(|e| err(&e))?;
        txn.set_durability(redb::Durability::Immediate)
            .map_err(|e| err(&e))?;
        txn.commit().map_err(|e| err(&e))?;
        self.committed(true);
        Ok(())
    }

    /// Asks the indexer to index what the log holds now rather than wait for a fuller batch:
    /// a query waiting for it calls this.
    pub fn hurry(&self) {
        let (flag, wake) = &self.wake;
        *flag.lock().unwrap_or_else(PoisonError::into_inner) = true;
        wake.notify_one();
    }

    /// Waits until [`RecordIndex::hurry`] or `timeout`; returns whether hurried.
    fn wait(&self, timeout: Duration) -> bool {
        let (flag, wake) = &self.wake;
        let guard = flag.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut guard, _) = wake
            .wait_timeout_while(guard, timeout, |hurried| !*hurried)
            .unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut *guard)
    }

    /// The indices of records that may match `filter`, in index order, at or after `cursor`
    /// and below `size`, at most `budget` of them, and whether there are more.
    ///
    /// The source is, in this order: the postings of the filter's most selective field
    /// (conversation, resource id, actor, submitter, agent, resource type, actions); the
    /// timestamp postings of `since`/`until` when the range holds at most [`TIME_SCAN`]
    /// records; the postings of the classification or the compliance domain; else the log
    /// itself, every entry from `cursor` on. The caller evaluates the whole filter on each.
    ///
    /// # Errors
    /// [`IndexError::Database`].
    pub fn candidates(
        &self,
        filter: &Filter,
        cursor: u64,
        size: u64,
        budget: usize,
    ) -> Result<(Vec<u64>, bool), IndexError> {
        let txn = self.db.begin_read().map_err(|e| self.damaged(&e))?;
        let table = txn.open_table(POSTINGS).map_err(|e| self.damaged(&e))?;
        let one = |field: Field, value: &Option<String>| {
            value
                .as_ref()
                .map(|v| vec![(field, v.clone().into_bytes())])
        };
        let selective = one(Field::Conversation, &filter.conversation_id)
            .or_else(|| one(Field::ResourceId, &filter.resource_id))
            .or_else(|| one(Field::Actor, &filter.actor_id))
            .or_else(|| one(Field::Submitter, &filter.submitted_by))
            .or_else(|| one(Field::Agent, &filter.agent))
            .or_else(|| one(Field::ResourceType, &filter.resource_type))
            .or_else(|| {
                (!filter.actions.is_empty()).then(|| {
                    filter
                        .actions
                        .iter()
                        .map(|a| (Field::Action, a.clone().into_bytes()))
                        .collect()
                })
            });
        if let Some(values) = selective {
            return self.postings(&table, &values, cursor, size, budget);
        }
        if (filter.since.is_some() || filter.until.is_some())
            && let Some(mut found) = self.in_time_range(&table, filter, cursor, size)?
        {
            let more = found.len() > budget;
            found.truncate(budget);
            return Ok((found, more));
        }
        let coarse = one(Field::Classification, &filter.classification)
            .or_else(|| one(Field::Compliance, &filter.compliance));
        if let Some(values) = coarse {
            return self.postings(&table, &values, cursor, size, budget);
        }
        let end = size.min(cursor.saturating_add(budget as u64));
        Ok(((cursor.min(end)..end).collect(), end < size))
    }

    /// The records of `values`' postings (alternatives), in index order, from `cursor`
    /// below `size`, at most `budget`, and whether there are more.
    fn postings(
        &self,
        table: &redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
        values: &[(Field, Vec<u8>)],
        cursor: u64,
        size: u64,
        budget: usize,
    ) -> Result<(Vec<u64>, bool), IndexError> {
        let mut found = Vec::new();
        let mut more = false;
        for (field, value) in values {
            let mut taken = 0;
            let start = key(*field, value, cursor);
            let end = key(*field, value, u64::MAX);
            'chunks: for chunk in table
                .range(start.as_slice()..=end.as_slice())
                .map_err(|e| self.damaged(&e))?
            {
                let (_, indices) = chunk.map_err(|e| self.damaged(&e))?;
                for index in self.indices(indices.value())? {
                    if index >= size {
                        break 'chunks;
                    }
                    if index < cursor {
                        continue;
                    }
                    if taken == budget {
                        more = true;
                        break 'chunks;
                    }
                    found.push(index);
                    taken += 1;
                }
            }
        }
        found.sort_unstable();
        found.dedup();
        if found.len() > budget {
            found.truncate(budget);
            more = true;
        }
        Ok((found, more))
    }

    /// Every record whose timestamp's second is in the filter's `since`/`until` range, in
    /// index order, from `cursor` below `size` — or `None` if the range holds more than
    /// [`TIME_SCAN`] records (of any index), when a scan in index order costs less.
    fn in_time_range(
        &self,
        table: &redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
        filter: &Filter,
        cursor: u64,
        size: u64,
    ) -> Result<Option<Vec<u64>>, IndexError> {
        let first = time_value(filter.since.unwrap_or(i128::MIN / 2));
        // The second of the last time before `until`.
        let last = time_value(filter.until.map_or(i128::MAX / 2, |until| until - 1));
        let start = key(Field::Timestamp, &first, 0);
        let end = key(Field::Timestamp, &last, u64::MAX);
        let mut found = Vec::new();
        let mut seen = 0;
        for chunk in table
            .range(start.as_slice()..=end.as_slice())
            .map_err(|e| self.damaged(&e))?
        {
            let (_, indices) = chunk.map_err(|e| self.damaged(&e))?;
            let indices = self.indices(indices.value())?;
            seen += indices.len();
            if seen > TIME_SCAN {
                return Ok(None);
            }
            found.extend(indices.into_iter().filter(|i| (cursor..size).contains(i)));
        }
        found.sort_unstable();
        Ok(Some(found))
    }

    /// The last record of `conversation` below `size`, if any.
    ///
    /// # Errors
    /// [`IndexError::Database`].
    pub fn conversation_head(
        &self,
        conversation: &str,
        size: u64,
    ) -> Result<Option<u64>, IndexError> {
        let txn = self.db.begin_read().map_err(|e| self.damaged(&e))?;
        let table = txn.open_table(POSTINGS).map_err(|e| self.damaged(&e))?;
        let start = key(Field::Conversation, conversation.as_bytes(), 0);
        let end = key(Field::Conversation, conversation.as_bytes(), u64::MAX);
        // From the last chunk back: only the chunk that straddles `size` holds later records.
        for chunk in table
            .range(start.as_slice()..=end.as_slice())
            .map_err(|e| self.damaged(&e))?
            .rev()
        {
            let (_, indices) = chunk.map_err(|e| self.damaged(&e))?;
            if let Some(head) = self
                .indices(indices.value())?
                .into_iter()
                .rev()
                .find(|&i| i < size)
            {
                return Ok(Some(head));
            }
        }
        Ok(None)
    }

    fn damaged(&self, e: &dyn std::fmt::Display) -> IndexError {
        db_error(&self.path)(e)
    }

    /// A chunk's indices; a chunk that does not decode is damage.
    fn indices(&self, bytes: &[u8]) -> Result<Vec<u64>, IndexError> {
        decode(bytes).ok_or_else(|| {
            self.damaged(&"a postings chunk does not decode: run `veritrail admin reindex`")
        })
    }
}

/// Runs the indexer until `stop`: catches up with the log, then follows it, a batch of at
/// least 1,024 entries or 200 ms at a time, sooner when a query hurries it.
pub fn run_indexer(ledger: Arc<Ledger>, index: Arc<RecordIndex>, stop: Arc<AtomicBool>) {
    let mut failing = false;
    let mut pending_since: Option<Instant> = None;
    let mut hurried = false;
    while !stop.load(Ordering::Acquire) {
        let pending = match index.watermark() {
            Ok(watermark) => ledger.tree_head().size.saturating_sub(watermark),
            Err(_) => 1,
        };
        if pending == 0 {
            pending_since = None;
            hurried = index.wait(IDLE);
            continue;
        }
        let since = *pending_since.get_or_insert_with(Instant::now);
        if pending < MIN_BATCH && !hurried && since.elapsed() < MAX_LAG {
            hurried = index.wait(IDLE);
            continue;
        }
        match index.step(&ledger) {
            Ok(_) => {
                failing = false;
                hurried = false;
                pending_since = None;
            }
            Err(e) => {
                if !failing {
                    tracing::error!(error = %e, "record indexer failed; retrying every second");
                }
                failing = true;
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
    if let Err(e) = index.flush() {
        tracing::warn!(error = %e, "record index: the last entries are not synced; they will be indexed again");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn time_keys_sort_like_times() {
        let times = [-5_000_000_000i128, -1, 0, 1, 1_700_000_000_000_000_000];
        for pair in times.windows(2) {
            if let [a, b] = pair {
                assert!(time_bytes(*a) < time_bytes(*b), "{a} < {b}");
            }
        }
        assert!(key(Field::Actor, b"a", 5) < key(Field::Actor, b"a", 6));
        assert!(key(Field::Actor, b"a", u64::MAX) < key(Field::Actor, b"b", 0));
        assert_eq!(time_value(-1), time_bytes(-TIME_BUCKET));
        assert_eq!(time_value(1_999_999_999), time_bytes(TIME_BUCKET));
    }

    #[test]
    fn chunks_round_trip() {
        for indices in [
            vec![],
            vec![0],
            vec![5, 6, 7, 300, 70_000, u64::MAX / 3],
            vec![u64::MAX],
        ] {
            assert_eq!(decode(&encode(&indices)), Some(indices));
        }
        // Truncated, overlong, and past u64: not chunks.
        assert_eq!(decode(&[0x80]), None);
        assert_eq!(decode(&[0xff; 10]), None);
        let mut past = encode(&[u64::MAX]);
        past.push(0x01);
        assert_eq!(decode(&past), None);
    }

    proptest::proptest! {
        #[test]
        fn decode_is_total(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            if let Some(indices) = decode(&bytes) {
                proptest::prop_assert!(indices.is_sorted());
            }
        }
    }
}
