//! The legal holds in force, read from the log's own hold records
//! ([`veritrail_records::hold`]): through the record index (the hold and release records by
//! their action) when the server keeps one, else by reading every entry.

use veritrail_ledger::Ledger;
use veritrail_ledger::bundle::iter_bundle;
use veritrail_ledger::tile::entry_bundle_width;
use veritrail_records::hold::{HOLD_ACTION, Holds, RELEASE_ACTION};
use veritrail_records::query::Filter;
use veritrail_records::{is_record, parse_leaf};

use crate::error::{ApiError, Internal};
use crate::record_index::RecordIndex;

/// Candidates read from the index per call.
const PAGE: usize = 10_000;

/// The holds in force in the first `size` entries of the log. Blocking: call from a blocking
/// task.
///
/// # Errors
/// [`ApiError::IndexCatchingUp`] if the index does not reach `size` in time; ledger and
/// index errors.
pub fn in_force(
    ledger: &Ledger,
    index: Option<&RecordIndex>,
    size: u64,
) -> Result<Holds, ApiError> {
    let Some(index) = index else {
        return Ok(scan(ledger, size)?);
    };
    crate::routes::queries::wait_indexed(index, size)?;
    let filter = Filter {
        actions: vec![HOLD_ACTION.to_owned(), RELEASE_ACTION.to_owned()],
        ..Filter::default()
    };
    let mut holds = Holds::new();
    let mut cursor = 0;
    loop {
        let (candidates, more) = index
            .candidates(&filter, cursor, size, PAGE)
            .map_err(|e| Internal::Record(e.to_string()))?;
        for &candidate in &candidates {
            // A purged hold record belonged to a released hold (a hold in force keeps its
            // record), whose release is read from the log or was purged with it.
            let leaf = match ledger.entry(candidate) {
                Err(veritrail_ledger::Error::Purged { .. }) => continue,
                other => other?,
            };
            if let Ok(record) = parse_leaf(&leaf) {
                holds.observe(candidate, &record);
            }
        }
        match candidates.last() {
            Some(&last) if more => cursor = last + 1,
            _ if more => cursor = cursor.saturating_add(PAGE as u64),
            _ => return Ok(holds),
        }
        if cursor >= size {
            return Ok(holds);
        }
    }
}

/// The holds in force in the first `size` entries, by reading every entry (offline, or a
/// server without record indexes).
///
/// # Errors
/// Ledger errors.
pub fn scan(ledger: &Ledger, size: u64) -> Result<Holds, veritrail_ledger::Error> {
    let mut holds = Holds::new();
    for bundle in 0..size.div_ceil(256) {
        if ledger.purged_range(bundle).is_some() {
            continue;
        }
        let width = entry_bundle_width(bundle, size).unwrap_or(0);
        let bytes = ledger.entry_bundle(bundle, width)?;
        for (offset, entry) in iter_bundle(&bytes).enumerate() {
            let Ok(entry) = entry else { break };
            if is_record(entry)
                && let Ok(record) = parse_leaf(entry)
            {
                holds.observe(bundle * 256 + offset as u64, &record);
            }
        }
    }
    Ok(holds)
}
