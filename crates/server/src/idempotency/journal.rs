//! The idempotency journal, `<data>/idempotency.journal`: the outcomes of keyed appends, made
//! durable by the committer before the ledger commit that acknowledges them.
//!
//! ```text
//! file   = header record*
//! header = "VTIDEMJ1"                                  8 bytes
//! record = key_id        16 bytes  SHA-256(scope, key), truncated
//!          fingerprint   32 bytes  the request's fingerprint (`Fingerprint::to_bytes`):
//!                                  SHA-256 of the entries (length-prefixed) for
//!                                  /v1/entries; for /v1/records 16 bytes of the body's
//!                                  digest then 16 of the records' nonces' digest
//!          first_index    8 bytes  big-endian u64
//!          count          4 bytes  big-endian u32, 1 ..= 4096
//!          created_ms     8 bytes  big-endian u64, Unix time in milliseconds
//!          check          8 bytes  SHA-256 of the 68 bytes above, truncated
//! ```
//!
//! Records have a fixed size ([`RECORD_LEN`]), so a damaged record is skipped without losing
//! the ones after it, and a torn last record (a crash mid-write) is a short tail that is cut
//! off when the journal is opened. A record says only that the committer *was about to*
//! commit those entries at those indices: whether the commit landed is decided against the
//! log when the journal is loaded (see [`crate::idempotency::Idempotency::open`]).
//!
//! The file is rewritten from the live records when it holds more than twice as many records
//! as are live ([`Journal::should_compact`]): a new file is written, synced and renamed over
//! the old one, then the directory is synced.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write as _};
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::{KeyId, Record};

/// The first bytes of every journal (format 1).
pub const MAGIC: [u8; 8] = *b"VTIDEMJ1";

/// Bytes of one record on disk.
pub const RECORD_LEN: usize = 16 + 32 + 8 + 4 + 8 + CHECK_LEN;

/// Bytes of a record's checksum: 64 bits make an undetected torn or flipped record a
/// 2^-64 event.
const CHECK_LEN: usize = 8;

/// Most entries a record may cover: a keyed request is one append of at most
/// [`veritrail_api::limits::MAX_BATCH_ENTRIES`] entries.
const MAX_COUNT: u32 = veritrail_api::limits::MAX_BATCH_ENTRIES as u32;

/// Largest journal accepted when loading: 1 GiB is ~14 million records, far above what the
/// largest sensible `--idempotency-budget` keeps live (compaction keeps the file within about
/// twice the live records), so a larger file is not a journal this server wrote.
pub const MAX_JOURNAL_BYTES: u64 = 1 << 30;

/// Compaction is not worth a rewrite below this many records in the file.
const COMPACT_MIN_RECORDS: u64 = 4096;

pub use crate::error::JournalError;

/// Encodes `record` as [`RECORD_LEN`] bytes.
pub fn encode_record(record: &Record) -> [u8; RECORD_LEN] {
    let mut out = [0u8; RECORD_LEN];
    let body = RECORD_LEN - CHECK_LEN;
    let fields: [&[u8]; 5] = [
        &record.id.0,
        &record.fingerprint,
        &record.first.to_be_bytes(),
        &record.count.to_be_bytes(),
        &record.created_ms.to_be_bytes(),
    ];
    let mut at = 0;
    for field in fields {
        if let Some(slot) = out.get_mut(at..at + field.len()) {
            slot.copy_from_slice(field);
        }
        at += field.len();
    }
    let check = Sha256::digest(out.get(..body).unwrap_or_default());
    if let (Some(slot), Some(sum)) = (out.get_mut(body..), check.get(..CHECK_LEN)) {
        slot.copy_from_slice(sum);
    }
    out
}

/// Decodes one record; `None` if its checksum does not match or a field is out of range
/// (a count of 0 or above 4096, indices that overflow). This does not panic.
pub fn decode_record(bytes: &[u8; RECORD_LEN]) -> Option<Record> {
    let (body, check) = bytes.split_at(RECORD_LEN - CHECK_LEN);
    if Sha256::digest(body).get(..CHECK_LEN) != Some(check) {
        return None;
    }
    let id: [u8; 16] = body.get(0..16)?.try_into().ok()?;
    let fingerprint: [u8; 32] = body.get(16..48)?.try_into().ok()?;
    let first = u64::from_be_bytes(body.get(48..56)?.try_into().ok()?);
    let count = u32::from_be_bytes(body.get(56..60)?.try_into().ok()?);
    let created_ms = u64::from_be_bytes(body.get(60..68)?.try_into().ok()?);
    if count == 0 || count > MAX_COUNT || first.checked_add(u64::from(count)).is_none() {
        return None;
    }
    Some(Record {
        id: KeyId(id),
        fingerprint,
        first,
        count,
        created_ms,
    })
}

/// What a journal's bytes hold.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The records whose checksum holds, in file order.
    pub records: Vec<Record>,
    /// Whole records whose checksum or fields are wrong (skipped).
    pub damaged: u64,
    /// Bytes of the header and the whole records; anything after is a torn tail.
    pub valid_len: u64,
}

/// Parses a whole journal. An empty file, or a prefix of the header (a crash while the file
/// was being created), is an empty journal with `valid_len` 0. This does not panic.
///
/// # Errors
/// [`JournalError::NotAJournal`] (with `path`) if the bytes do not start with [`MAGIC`].
pub fn parse(bytes: &[u8], path: &Path) -> Result<Parsed, JournalError> {
    let mut parsed = Parsed::default();
    let Some(body) = bytes.strip_prefix(MAGIC.as_slice()) else {
        if MAGIC.starts_with(bytes) {
            return Ok(parsed);
        }
        return Err(JournalError::NotAJournal {
            path: path.to_owned(),
        });
    };
    let mut chunks = body.chunks_exact(RECORD_LEN);
    for chunk in &mut chunks {
        let record = <&[u8; RECORD_LEN]>::try_from(chunk)
            .ok()
            .and_then(decode_record);
        match record {
            Some(record) => parsed.records.push(record),
            None => parsed.damaged += 1,
        }
    }
    let whole = body.len() - chunks.remainder().len();
    parsed.valid_len = (MAGIC.len() + whole) as u64;
    Ok(parsed)
}

/// The open journal, appended to by the committer thread only.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    /// Bytes in the file: the offset of the next record.
    len: u64,
    /// Records in the file (live or not).
    records: u64,
}

fn io<'a>(
    path: &'a Path,
    action: &'static str,
) -> impl FnOnce(std::io::Error) -> JournalError + 'a {
    move |source| JournalError::Io {
        path: path.to_owned(),
        action,
        source,
    }
}

/// Fsyncs the directory holding `path`, so a created or renamed file's name is durable.
fn sync_dir(path: &Path) -> Result<(), JournalError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(path, "sync its directory"))
}

/// Opens (creating, mode 0600) a file for writing at `path`.
fn open_private(path: &Path, truncate: bool) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate)
        .mode(0o600)
        .open(path)
}

impl Journal {
    /// Opens the journal at `path`, creating it (mode 0600) if missing, and returns it with
    /// its records. A torn tail is cut off, so new records follow the last whole one.
    ///
    /// # Errors
    /// [`JournalError`]: I/O, a file that is not a journal, or one above
    /// [`MAX_JOURNAL_BYTES`].
    pub fn open(path: &Path) -> Result<(Journal, Parsed), JournalError> {
        let existed = path.exists();
        let mut file = open_private(path, false).map_err(io(path, "open"))?;
        let size = file.metadata().map_err(io(path, "stat"))?.len();
        if size > MAX_JOURNAL_BYTES {
            return Err(JournalError::TooLarge {
                path: path.to_owned(),
                size,
                max: MAX_JOURNAL_BYTES,
            });
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        (&mut file)
            .take(MAX_JOURNAL_BYTES)
            .read_to_end(&mut bytes)
            .map_err(io(path, "read"))?;
        let parsed = parse(&bytes, path)?;
        drop(bytes);
        let mut journal = Journal {
            path: path.to_owned(),
            file,
            len: parsed.valid_len,
            records: parsed.records.len() as u64 + parsed.damaged,
        };
        if parsed.valid_len == 0 {
            // New, empty, or torn while being created: start it afresh.
            journal.file.set_len(0).map_err(io(path, "truncate"))?;
            journal
                .file
                .write_all_at(&MAGIC, 0)
                .map_err(io(path, "write the header"))?;
            journal.file.sync_all().map_err(io(path, "sync"))?;
            journal.len = MAGIC.len() as u64;
            if !existed {
                sync_dir(path)?;
            }
        } else if parsed.valid_len != size {
            journal
                .file
                .set_len(parsed.valid_len)
                .map_err(io(path, "cut off the torn tail"))?;
            journal.file.sync_all().map_err(io(path, "sync"))?;
        }
        // Reading moved the cursor; every write is positioned (`write_all_at`), so it does
        // not matter where.
        Ok((journal, parsed))
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records in the file, live or not.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Appends `records` and makes them durable (`fdatasync`) before returning. A failed
    /// write leaves the append offset where it was, so the next attempt overwrites the
    /// partial bytes.
    ///
    /// # Errors
    /// [`JournalError::Io`] if writing or syncing failed; the records are then not durable.
    pub fn append(&mut self, records: &[Record]) -> Result<(), JournalError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(records.len() * RECORD_LEN);
        for record in records {
            buf.extend_from_slice(&encode_record(record));
        }
        let written = self
            .file
            .write_all_at(&buf, self.len)
            .map_err(io(&self.path, "append"))
            .and_then(|()| {
                self.file
                    .sync_data()
                    .map_err(io(&self.path, "sync (fdatasync)"))
            });
        if let Err(err) = written {
            // Cut the torn records off (shrinking needs no space), so the next append starts
            // at a record boundary.
            let _ = self.file.set_len(self.len);
            return Err(err);
        }
        self.len += buf.len() as u64;
        self.records += records.len() as u64;
        Ok(())
    }

    /// Whether the file holds more than twice `live` records (and enough to be worth a
    /// rewrite).
    pub fn should_compact(&self, live: usize) -> bool {
        self.records > COMPACT_MIN_RECORDS && self.records > 2 * live as u64
    }

    /// Replaces the journal with one holding only `live`: written to `<path>.tmp`, synced,
    /// renamed over the journal, then the directory synced. On failure the old journal stays
    /// in use, unchanged.
    ///
    /// # Errors
    /// [`JournalError::Io`].
    pub fn compact(&mut self, live: &[Record]) -> Result<(), JournalError> {
        let mut tmp_name = self.path.as_os_str().to_owned();
        tmp_name.push(".tmp");
        let tmp = PathBuf::from(tmp_name);
        let written = (|| {
            let mut file = open_private(&tmp, true).map_err(io(&tmp, "create"))?;
            let mut out = std::io::BufWriter::new(&mut file);
            out.write_all(&MAGIC).map_err(io(&tmp, "write"))?;
            for record in live {
                out.write_all(&encode_record(record))
                    .map_err(io(&tmp, "write"))?;
            }
            out.flush().map_err(io(&tmp, "write"))?;
            drop(out);
            file.sync_all().map_err(io(&tmp, "sync"))?;
            std::fs::rename(&tmp, &self.path)
                .map_err(io(&self.path, "rename the compacted journal"))?;
            sync_dir(&self.path)?;
            Ok(file)
        })();
        match written {
            Ok(file) => {
                self.file = file;
                self.len = (MAGIC.len() + live.len() * RECORD_LEN) as u64;
                self.records = live.len() as u64;
                Ok(())
            }
            Err(err) => {
                let _ = std::fs::remove_file(&tmp);
                Err(err)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(i: u64) -> Record {
        Record {
            id: KeyId([i as u8; 16]),
            fingerprint: [7; 32],
            first: i * 10,
            count: 3,
            created_ms: 1_700_000_000_000 + i,
        }
    }

    #[test]
    fn records_round_trip_and_damage_is_detected() {
        let r = record(5);
        let bytes = encode_record(&r);
        assert_eq!(decode_record(&bytes), Some(r));
        for position in [0, 20, 50, 57, 65, RECORD_LEN - 1] {
            let mut flipped = bytes;
            flipped[position] ^= 1;
            assert_eq!(decode_record(&flipped), None, "bit flip at {position}");
        }
    }

    #[test]
    fn a_torn_tail_is_ignored_and_damaged_records_skipped() {
        let path = Path::new("j");
        let mut bytes = MAGIC.to_vec();
        for i in 0..3 {
            bytes.extend_from_slice(&encode_record(&record(i)));
        }
        bytes[8 + RECORD_LEN + 3] ^= 0xff; // damage record 1
        let whole = bytes.len() as u64;
        bytes.extend_from_slice(&encode_record(&record(9))[..30]); // torn
        let parsed = parse(&bytes, path).unwrap();
        assert_eq!(parsed.records, vec![record(0), record(2)]);
        assert_eq!(parsed.damaged, 1);
        assert_eq!(parsed.valid_len, whole);
        // A torn header is an empty journal; other bytes are refused.
        assert_eq!(parse(b"VTID", path).unwrap(), Parsed::default());
        assert!(matches!(
            parse(b"not a journal at all", path),
            Err(JournalError::NotAJournal { .. })
        ));
    }

    #[test]
    fn open_append_reopen_and_compact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("idempotency.journal");
        let (mut journal, parsed) = Journal::open(&path).unwrap();
        assert!(parsed.records.is_empty());
        journal.append(&[record(1), record(2)]).unwrap();
        drop(journal);
        // A torn record at the end is cut off; the next append follows the whole ones.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[1, 2, 3]).unwrap();
        drop(file);
        let (mut journal, parsed) = Journal::open(&path).unwrap();
        assert_eq!(parsed.records, vec![record(1), record(2)]);
        journal.append(&[record(3)]).unwrap();
        assert_eq!(journal.records(), 3);
        journal.compact(&[record(3)]).unwrap();
        journal.append(&[record(4)]).unwrap();
        drop(journal);
        let (_, parsed) = Journal::open(&path).unwrap();
        assert_eq!(parsed.records, vec![record(3), record(4)]);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        assert!(!dir.path().join("idempotency.journal.tmp").exists());
    }

    proptest! {
        /// Arbitrary bytes never panic the parser; whatever it accepts re-encodes to the same
        /// bytes.
        #[test]
        fn parse_is_total(tail in proptest::collection::vec(any::<u8>(), 0..1024), with_magic in any::<bool>()) {
            let mut bytes = if with_magic { MAGIC.to_vec() } else { Vec::new() };
            bytes.extend_from_slice(&tail);
            if let Ok(parsed) = parse(&bytes, Path::new("j")) {
                prop_assert!(parsed.valid_len <= bytes.len() as u64);
                for record in &parsed.records {
                    prop_assert_eq!(decode_record(&encode_record(record)), Some(*record));
                }
            }
        }

        #[test]
        fn decode_record_is_total(bytes in proptest::array::uniform32(any::<u8>()), rest in proptest::collection::vec(any::<u8>(), RECORD_LEN - 32)) {
            let mut all = [0u8; RECORD_LEN];
            all[..32].copy_from_slice(&bytes);
            all[32..].copy_from_slice(&rest);
            let _ = decode_record(&all);
        }
    }
}
