//! Retention plans: when each entry bundle may leave the primary store, which rule keeps it
//! until then, and whether a legal hold keeps it longer ([`plan`]); and the runs of bundles
//! that may be archived and purged now ([`purgeable`]).
//!
//! A bundle expires when its last-kept entry does: the latest expiry of its 256 entries. A
//! record's retention counts from `received_at` (the log's clock); a raw entry's from the
//! signing time of the first stored checkpoint that covers it (an upper bound on when it was
//! appended, so never early); an entry no dated checkpoint covers yet counts from `now`. A
//! partial last bundle never expires (it is still growing). A bundle holding anything a hold in
//! force keeps ([`Holds::keeps`]) is held, whatever its expiry.

use std::ops::Range;

use serde_json::Value;
use time::OffsetDateTime;
use veritrail_ledger::Ledger;
use veritrail_ledger::bundle::{BUNDLE_ENTRIES, iter_bundle};
use veritrail_ledger::tile::entry_bundle_width;
use veritrail_records::hold::Holds;
use veritrail_records::query::unix_nanos;
use veritrail_records::retention::{Expiry, RetentionPolicy};
use veritrail_records::{is_record, parse_leaf};

/// One bundle's plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundlePlan {
    /// The bundle's index.
    pub bundle: u64,
    /// Its entries.
    pub entries: Range<u64>,
    /// Until when it is kept and why; `None` for a partial bundle (kept while it grows).
    pub expiry: Option<Expiry>,
    /// The legal hold (its index) that keeps it, if any.
    pub held_by: Option<u64>,
    /// Where it was archived, if it was purged already.
    pub archived_to: Option<String>,
}

impl BundlePlan {
    /// Whether it may be archived and purged at `now`: whole, expired, not held, not purged.
    pub fn purgeable(&self, now: OffsetDateTime) -> bool {
        self.archived_to.is_none()
            && self.held_by.is_none()
            && self.expiry.as_ref().is_some_and(|e| e.until <= now)
    }
}

/// Plans every bundle of the log's first `size` entries at `now`, under `policy` and
/// `holds`. Reads every bundle that is not purged. Blocking.
///
/// # Errors
/// Ledger errors.
pub fn plan(
    ledger: &Ledger,
    policy: &RetentionPolicy,
    holds: &Holds,
    size: u64,
    now: OffsetDateTime,
) -> Result<Vec<BundlePlan>, veritrail_ledger::Error> {
    let per = BUNDLE_ENTRIES as u64;
    let mut plans = Vec::new();
    // Release records found, with their bundle: settled after the first pass (see below).
    let mut releases: Vec<(u64, u64)> = Vec::new();
    for bundle in 0..size.div_ceil(per) {
        let first = bundle * per;
        let width = entry_bundle_width(bundle, size).unwrap_or(0);
        let entries = first..first + u64::from(width);
        if let Some(range) = ledger.purged_range(bundle) {
            plans.push(BundlePlan {
                bundle,
                entries,
                expiry: None,
                held_by: None,
                archived_to: Some(range.location),
            });
            continue;
        }
        let bytes = ledger.entry_bundle(bundle, width)?;
        let mut latest: Option<Expiry> = None;
        let mut held_by = None;
        let mut raw = Vec::new();
        for (offset, entry) in iter_bundle(&bytes).enumerate() {
            let index = first + offset as u64;
            let Ok(entry) = entry else { break };
            let record = is_record(entry).then(|| parse_leaf(entry).ok()).flatten();
            // Releases are kept while their hold's record is: decided below.
            held_by = held_by.or_else(|| holds.keeps(index, record.as_ref(), |_| false));
            if let Some(hold) = record.as_ref().and_then(release_of) {
                releases.push((bundle, hold));
            }
            if !is_record(entry) {
                raw.push(index);
                continue;
            }
            let expiry = match &record {
                Some(record) => {
                    let start = match received(record) {
                        Some(start) => Some(start),
                        None => covered(ledger, index)?,
                    };
                    policy.expiry(record, start.unwrap_or(now))
                }
                // A record leaf that does not parse is kept as long as the strictest rule
                // could ask: treat it as raw, from now.
                None => policy.expiry_raw(now),
            };
            keep_latest(&mut latest, expiry);
        }
        // Raw entries keep the default from the first checkpoint covering them: that time
        // grows with the index, so the bundle's last raw entry decides, when a checkpoint
        // covers it; otherwise each is dated on its own.
        let last_covered = match raw.last() {
            Some(&last) => covered(ledger, last)?,
            None => None,
        };
        match last_covered {
            Some(start) => keep_latest(&mut latest, policy.expiry_raw(start)),
            None => {
                for index in raw {
                    let start = covered(ledger, index)?.unwrap_or(now);
                    keep_latest(&mut latest, policy.expiry_raw(start));
                }
            }
        }
        plans.push(BundlePlan {
            bundle,
            entries,
            expiry: if usize::from(width) < BUNDLE_ENTRIES {
                None
            } else {
                latest
            },
            held_by,
            archived_to: None,
        });
    }
    // A release record stays while the record of the hold it released does (else a reading
    // of the log would find the hold in force again): its bundle is held by that hold unless
    // the hold's own bundle is purged or purgeable now.
    for (bundle, hold) in releases {
        let hold_bundle = hold / per;
        let hold_leaves = plans
            .get(hold_bundle as usize)
            .is_some_and(|p| p.archived_to.is_some() || p.purgeable(now));
        if !hold_leaves
            && let Some(plan) = plans.get_mut(bundle as usize)
            && plan.held_by.is_none()
        {
            plan.held_by = Some(hold);
        }
    }
    Ok(plans)
}

/// The runs of consecutive bundles that may be archived and purged at `now`, each at most
/// `max_bundles` long.
pub fn purgeable(plans: &[BundlePlan], now: OffsetDateTime, max_bundles: u64) -> Vec<Range<u64>> {
    let mut runs: Vec<Range<u64>> = Vec::new();
    for plan in plans.iter().filter(|p| p.purgeable(now)) {
        match runs.last_mut() {
            Some(run) if run.end == plan.bundle && run.end - run.start < max_bundles => {
                run.end += 1;
            }
            _ => runs.push(plan.bundle..plan.bundle + 1),
        }
    }
    runs
}

/// The hold a release record releases.
fn release_of(record: &Value) -> Option<u64> {
    (record.get("action").and_then(Value::as_str) == Some(veritrail_records::hold::RELEASE_ACTION))
        .then(|| record.get("details")?.get("hold")?.as_u64())
        .flatten()
}

/// Keeps in `latest` whichever of it and `expiry` ends later.
fn keep_latest(latest: &mut Option<Expiry>, expiry: Expiry) {
    if latest.as_ref().is_none_or(|l| expiry.until > l.until) {
        *latest = Some(expiry);
    }
}

/// When the log received a record (`received_at`, else its `timestamp`).
fn received(record: &Value) -> Option<OffsetDateTime> {
    ["received_at", "timestamp"]
        .iter()
        .find_map(|field| {
            record
                .get(field)
                .and_then(Value::as_str)
                .and_then(unix_nanos)
        })
        .and_then(|nanos| OffsetDateTime::from_unix_timestamp_nanos(nanos).ok())
}

/// When the first dated checkpoint covering `index` was signed.
fn covered(ledger: &Ledger, index: u64) -> Result<Option<OffsetDateTime>, veritrail_ledger::Error> {
    Ok(ledger
        .covered_since(index)?
        .and_then(|secs| OffsetDateTime::from_unix_timestamp(i64::try_from(secs).ok()?).ok()))
}
