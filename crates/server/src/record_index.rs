//! Record indexes: derived data for `GET /v1/records`, kept behind the committer.
//!
//! One redb database, `<data>/record-index.redb`, separate from the log's store: a table of
//! postings whose keys are `field tag ‖ u16 length ‖ value ‖ record index (u64 BE)`, so one
//! (field, value) pair's records are one key range in index order, and a watermark (the next
//! log index to read) updated in the same transaction as the postings it covers.
//!
//! The indexer thread reads committed entries from the watermark on, a bundle at a time,
//! never from the committer's path: appends do not wait for it, and a query whose checkpoint
//! it has not reached yet is answered `503 index_catching_up`. A missing, damaged or foreign
//! index (its watermark beyond the log) is deleted and rebuilt from the log at start: the log
//! is the only source of truth, and every answer is checked by the client anyway.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redb::{ReadableDatabase as _, ReadableTable as _, TableDefinition};
use serde_json::Value;
use veritrail_ledger::Ledger;
use veritrail_ledger::bundle::{BUNDLE_ENTRIES, iter_bundle};
use veritrail_ledger::tile::entry_bundle_width;
use veritrail_records::query::{submitter_of, unix_nanos};
use veritrail_records::{Filter, is_record};

/// The index file in the data directory.
pub const INDEX_FILE: &str = "record-index.redb";
/// Bumped when the postings' layout changes: an index of another version is rebuilt.
const FORMAT: u64 = 1;
/// Most log entries read into one index transaction.
const BATCH: u64 = 64 * BUNDLE_ENTRIES as u64;
/// How often an idle indexer looks for new entries.
const IDLE: Duration = Duration::from_millis(2);
/// Most candidate records one query request examines before it answers with a cursor.
pub const SCAN_BUDGET: usize = 20_000;

const POSTINGS: TableDefinition<&[u8], ()> = TableDefinition::new("postings");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The indexed fields, as key tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Field {
    All = 0,
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

fn key(field: Field, value: &[u8], index: u64) -> Vec<u8> {
    let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
    let value = value.get(..usize::from(len)).unwrap_or_default();
    let mut key = Vec::with_capacity(1 + 2 + value.len() + 8);
    key.push(field as u8);
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(value);
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// The record index a posting key ends with.
fn index_of(key: &[u8]) -> Option<u64> {
    key.len()
        .checked_sub(8)
        .and_then(|at| key.get(at..))
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
}

/// Orders signed nanoseconds as unsigned bytes.
fn time_bytes(nanos: i128) -> [u8; 16] {
    ((nanos as u128) ^ (1 << 127)).to_be_bytes()
}

/// The postings of one record.
fn postings(index: u64, record: &Value) -> Vec<Vec<u8>> {
    let text = |path: &[&str]| {
        path.iter()
            .try_fold(record, |v, k| v.get(k))
            .and_then(Value::as_str)
            .map(str::as_bytes)
    };
    let mut out = vec![key(Field::All, b"", index)];
    for (field, path) in [
        (Field::Conversation, &["conversation_id"][..]),
        (Field::Actor, &["actor", "id"]),
        (Field::Agent, &["agent", "name"]),
        (Field::Action, &["action"]),
        (Field::ResourceType, &["resource", "type"]),
        (Field::ResourceId, &["resource", "id"]),
        (Field::Classification, &["classification"]),
    ] {
        if let Some(value) = text(path) {
            out.push(key(field, value, index));
        }
    }
    if let Some(submitter) = submitter_of(record) {
        out.push(key(Field::Submitter, submitter.as_bytes(), index));
    }
    for domain in record
        .get("compliance")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        out.push(key(Field::Compliance, domain.as_bytes(), index));
    }
    for (field, name) in [
        (Field::Timestamp, "timestamp"),
        (Field::ReceivedAt, "received_at"),
    ] {
        if let Some(nanos) = record
            .get(name)
            .and_then(Value::as_str)
            .and_then(unix_nanos)
        {
            out.push(key(field, &time_bytes(nanos), index));
        }
    }
    out
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
        let mut keys = Vec::new();
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
                        match entry.get(1..).map(serde_json::from_slice::<Value>) {
                            Some(Ok(record)) => keys.extend(postings(index, &record)),
                            _ => {
                                tracing::warn!(index, "a record leaf does not parse; not indexed")
                            }
                        }
                    }
                }
                Err(veritrail_ledger::Error::Corrupted { what }) => {
                    tracing::error!(bundle, %what, "a bundle failed verification; its records are not indexed");
                }
                Err(e) => return Err(e.into()),
            }
            bundle += 1;
        }
        let err = db_error(&self.path);
        let mut txn = self.db.begin_write().map_err(|e| err(&e))?;
        // A crash loses at most the transactions since the last durable one; the watermark
        // goes back with them and the indexer reads those entries again.
        let caught_up = to == size;
        txn.set_durability(if caught_up {
            redb::Durability::Immediate
        } else {
            redb::Durability::None
        })
        .map_err(|e| err(&e))?;
        {
            let mut table = txn.open_table(POSTINGS).map_err(|e| err(&e))?;
            for k in &keys {
                table.insert(k.as_slice(), ()).map_err(|e| err(&e))?;
            }
            let mut meta = txn.open_table(META).map_err(|e| err(&e))?;
            meta.insert("watermark", to).map_err(|e| err(&e))?;
        }
        txn.commit().map_err(|e| err(&e))?;
        metrics::counter!("veritrail_record_index_entries_total").increment(to - from);
        Ok(to - from)
    }

    /// The indices of records that may match `filter` — from the postings of its most
    /// selective indexed field, in index order — at or after `cursor` and below `size`, at
    /// most `budget` of them, and whether there are more.
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
        let err = db_error(&self.path);
        let values: Vec<(Field, Vec<u8>)> = if let Some(v) = &filter.conversation_id {
            vec![(Field::Conversation, v.clone().into_bytes())]
        } else if let Some(v) = &filter.resource_id {
            vec![(Field::ResourceId, v.clone().into_bytes())]
        } else if let Some(v) = &filter.actor_id {
            vec![(Field::Actor, v.clone().into_bytes())]
        } else if let Some(v) = &filter.submitted_by {
            vec![(Field::Submitter, v.clone().into_bytes())]
        } else if let Some(v) = &filter.agent {
            vec![(Field::Agent, v.clone().into_bytes())]
        } else if let Some(v) = &filter.resource_type {
            vec![(Field::ResourceType, v.clone().into_bytes())]
        } else if !filter.actions.is_empty() {
            filter
                .actions
                .iter()
                .map(|a| (Field::Action, a.clone().into_bytes()))
                .collect()
        } else if let Some(v) = &filter.classification {
            vec![(Field::Classification, v.clone().into_bytes())]
        } else if let Some(v) = &filter.compliance {
            vec![(Field::Compliance, v.clone().into_bytes())]
        } else {
            vec![(Field::All, Vec::new())]
        };
        let txn = self.db.begin_read().map_err(|e| err(&e))?;
        let table = txn.open_table(POSTINGS).map_err(|e| err(&e))?;
        let mut found = Vec::new();
        let mut more = false;
        for (field, value) in &values {
            let start = key(*field, value, cursor);
            let end = key(*field, value, size);
            let mut taken = 0;
            for entry in table
                .range(start.as_slice()..end.as_slice())
                .map_err(|e| err(&e))?
            {
                let (k, _) = entry.map_err(|e| err(&e))?;
                if taken == budget {
                    more = true;
                    break;
                }
                if let Some(index) = index_of(k.value()) {
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

    /// The last record of `conversation` below `size`, if any.
    ///
    /// # Errors
    /// [`IndexError::Database`].
    pub fn conversation_head(
        &self,
        conversation: &str,
        size: u64,
    ) -> Result<Option<u64>, IndexError> {
        let err = db_error(&self.path);
        let txn = self.db.begin_read().map_err(|e| err(&e))?;
        let table = txn.open_table(POSTINGS).map_err(|e| err(&e))?;
        let start = key(Field::Conversation, conversation.as_bytes(), 0);
        let end = key(Field::Conversation, conversation.as_bytes(), size);
        let last = table
            .range(start.as_slice()..end.as_slice())
            .map_err(|e| err(&e))?
            .next_back()
            .transpose()
            .map_err(|e| err(&e))?;
        Ok(last.and_then(|(k, _)| index_of(k.value())))
    }
}

/// Runs the indexer until `stop`: catches up with the log, then follows it.
pub fn run_indexer(ledger: Arc<Ledger>, index: Arc<RecordIndex>, stop: Arc<AtomicBool>) {
    let mut failing = false;
    while !stop.load(Ordering::Acquire) {
        match index.step(&ledger) {
            Ok(0) => std::thread::sleep(IDLE),
            Ok(_) => failing = false,
            Err(e) => {
                if !failing {
                    tracing::error!(error = %e, "record indexer failed; retrying every second");
                }
                failing = true;
                std::thread::sleep(Duration::from_secs(1));
            }
        }
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
    }
}
