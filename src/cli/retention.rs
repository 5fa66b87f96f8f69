//! `veritrail retention plan`: a dry run of the retention policy over a stopped server's data
//! directory: when each entry bundle may leave the primary store, and which rule keeps it.
//!
//! A bundle expires when its last-kept entry does: the latest expiry of its 256 entries. A
//! record's retention counts from `received_at` (the log's clock); a raw entry's from the
//! signing time of the first stored checkpoint that covers it (an upper bound on when it was
//! appended, so never early); an entry no dated checkpoint covers yet counts from now. A
//! partial last bundle never expires (it is still growing). Nothing is changed.

use std::path::PathBuf;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use veritrail_ledger::bundle::{BUNDLE_ENTRIES, iter_bundle};
use veritrail_ledger::tile::entry_bundle_width;
use veritrail_records::query::unix_nanos;
use veritrail_records::retention::{Expiry, RetentionPolicy};
use veritrail_records::{is_record, parse_leaf};

use crate::cli::common::datadir::DataArgs;
use crate::cli::common::error::CliError;
use crate::cli::common::io::{read_capped, stdout};

/// `veritrail retention ...`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum RetentionCommand {
    /// List, by entry bundle, when each may leave the primary store and which rule keeps it
    /// until then (a dry run on a stopped server's --data; nothing changes).
    Plan(PlanArgs),
}

/// Arguments of `veritrail retention plan`.
#[derive(Debug, clap::Args)]
pub(crate) struct PlanArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The retention policy (TOML, see docs/operations.md); default: HIPAA 6y, SOC 2 1y,
    /// financial 7y, PCI DSS 1y, EU AI Act 6mo, everything else 1y.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// The time to plan for (RFC 3339). Default: now.
    #[arg(long)]
    now: Option<String>,
    /// One JSON object per bundle instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs a `retention` subcommand.
///
/// # Errors
/// [`CliError::Usage`] for a bad policy or time, the errors of opening the data directory,
/// [`CliError::Audit`] when the log cannot be read.
pub(crate) fn run(command: &RetentionCommand) -> Result<(), CliError> {
    match command {
        RetentionCommand::Plan(args) => plan(args),
    }
}

/// One bundle's plan.
struct BundlePlan {
    bundle: u64,
    entries: std::ops::Range<u64>,
    /// `None`: a partial bundle, kept while it grows.
    expiry: Option<Expiry>,
}

fn plan(args: &PlanArgs) -> Result<(), CliError> {
    let policy = match &args.policy {
        None => RetentionPolicy::default(),
        Some(path) => {
            let text = read_capped(path, veritrail_records::retention::MAX_POLICY_SIZE)?;
            RetentionPolicy::parse(&String::from_utf8_lossy(&text)).map_err(|e| {
                CliError::Usage {
                    message: format!("{}: {e}", path.display()),
                    hint: "see docs/operations.md#retention for the policy format".into(),
                }
            })?
        }
    };
    let now = match &args.now {
        None => OffsetDateTime::now_utc(),
        Some(text) => OffsetDateTime::parse(text, &Rfc3339).map_err(|e| CliError::Usage {
            message: format!("--now {text:?}: {e}"),
            hint: "give an RFC 3339 time, e.g. 2032-03-01T00:00:00Z".into(),
        })?,
    };
    let ledger = args.data.open()?;
    let size = ledger.tree_head().size;
    let audit = |source| CliError::Audit { source };
    let mut plans = Vec::new();
    for bundle in 0..size.div_ceil(BUNDLE_ENTRIES as u64) {
        let first = bundle * BUNDLE_ENTRIES as u64;
        let width = entry_bundle_width(bundle, size).unwrap_or(0);
        let entries = first..first + u64::from(width);
        if usize::from(width) < BUNDLE_ENTRIES {
            plans.push(BundlePlan {
                bundle,
                entries,
                expiry: None,
            });
            continue;
        }
        let bytes = ledger.entry_bundle(bundle, width).map_err(audit)?;
        let mut latest: Option<Expiry> = None;
        let mut raw = Vec::new();
        for (offset, entry) in iter_bundle(&bytes).enumerate() {
            let index = first + offset as u64;
            let Ok(entry) = entry else { break };
            if !is_record(entry) {
                raw.push(index);
                continue;
            }
            let expiry = match parse_leaf(entry) {
                Ok(record) => {
                    let start = match received(&record) {
                        Some(start) => Some(start),
                        None => covered(&ledger, index)?,
                    };
                    policy.expiry(&record, start.unwrap_or(now))
                }
                // A record leaf that does not parse is kept as long as the strictest rule
                // could ask: treat it as raw, from now.
                Err(_) => policy.expiry_raw(now),
            };
            keep_latest(&mut latest, expiry);
        }
        // Raw entries keep the default from the first checkpoint covering them: that time
        // grows with the index, so the bundle's last raw entry decides, when a checkpoint
        // covers it; otherwise each is dated on its own (some may be covered, others not).
        let last_covered = match raw.last() {
            Some(&last) => covered(&ledger, last)?,
            None => None,
        };
        match last_covered {
            Some(start) => keep_latest(&mut latest, policy.expiry_raw(start)),
            None => {
                for index in raw {
                    let start = covered(&ledger, index)?.unwrap_or(now);
                    keep_latest(&mut latest, policy.expiry_raw(start));
                }
            }
        }
        plans.push(BundlePlan {
            bundle,
            entries,
            expiry: latest,
        });
    }
    print(&plans, now, args.json)
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
fn covered(
    ledger: &veritrail_ledger::Ledger,
    index: u64,
) -> Result<Option<OffsetDateTime>, CliError> {
    Ok(ledger
        .covered_since(index)
        .map_err(|source| CliError::Audit { source })?
        .and_then(|secs| OffsetDateTime::from_unix_timestamp(i64::try_from(secs).ok()?).ok()))
}

fn print(plans: &[BundlePlan], now: OffsetDateTime, json: bool) -> Result<(), CliError> {
    let date = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    let mut out = String::new();
    let mut expired = 0;
    for plan in plans {
        let (until, because, is_expired) = match &plan.expiry {
            Some(expiry) => (
                Some(date(expiry.until)),
                expiry.because.clone(),
                expiry.until <= now,
            ),
            None => (None, "partial bundle (still growing)".to_owned(), false),
        };
        expired += usize::from(is_expired);
        if json {
            let line = serde_json::json!({
                "bundle": plan.bundle,
                "first": plan.entries.start,
                "end": plan.entries.end,
                "expires": until,
                "because": because,
                "expired": is_expired,
            });
            out.push_str(&format!("{line}\n"));
        } else {
            out.push_str(&format!(
                "bundle {:>8}  entries {:>10}..{:<10}  {}  {}{}\n",
                plan.bundle,
                plan.entries.start,
                plan.entries.end,
                until.as_deref().unwrap_or("kept"),
                because,
                if is_expired { "  (expired)" } else { "" }
            ));
        }
    }
    if !json {
        out.push_str(&format!(
            "{expired} of {} bundles expired as of {}; nothing was changed (dry run)\n",
            plans.len(),
            date(now)
        ));
    }
    stdout(out.as_bytes())
}
