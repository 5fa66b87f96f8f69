//! `veritrail retention plan`: a dry run of the retention policy over a stopped server's data
//! directory: when each entry bundle may leave the primary store, and which rule keeps it.
//!
//! A bundle expires when its last-kept entry does: the latest expiry of its 256 entries. A
//! record's retention counts from `received_at` (the log's clock); a raw entry's from the
//! signing time of the first stored checkpoint that covers it (an upper bound on when it was
//! appended, so never early); an entry no dated checkpoint covers yet counts from now. A
//! partial last bundle never expires (it is still growing); a bundle a legal hold keeps is
//! marked held (`veritrail_server::retention`). Nothing is changed.

use std::path::PathBuf;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use veritrail_server::retention::{self, BundlePlan};

use crate::cli::common::datadir::DataArgs;
use crate::cli::common::error::CliError;
use crate::cli::common::io::stdout;
use crate::cli::common::retention::{load_policy, parse_now};

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

fn plan(args: &PlanArgs) -> Result<(), CliError> {
    let policy = load_policy(args.policy.as_deref())?;
    let now = parse_now(args.now.as_deref())?;
    let ledger = args.data.open()?;
    let size = ledger.tree_head().size;
    let audit = |source| CliError::Audit { source };
    let holds = veritrail_server::holds::scan(&ledger, size).map_err(audit)?;
    let plans = retention::plan(&ledger, &policy, &holds, size, now).map_err(audit)?;
    print(&plans, now, args.json)
}

fn print(plans: &[BundlePlan], now: OffsetDateTime, json: bool) -> Result<(), CliError> {
    let date = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    let mut out = String::new();
    let mut expired = 0;
    for plan in plans {
        let (until, because, is_expired) = match (&plan.archived_to, &plan.expiry) {
            (Some(location), _) => (None, format!("archived to {location} and purged"), false),
            (None, Some(expiry)) => (
                Some(date(expiry.until)),
                expiry.because.clone(),
                expiry.until <= now,
            ),
            (None, None) => (None, "partial bundle (still growing)".to_owned(), false),
        };
        let because = match plan.held_by {
            Some(hold) => format!("{because}; held by legal hold {hold}"),
            None => because,
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
                "held_by": plan.held_by,
                "archived_to": plan.archived_to,
                "purgeable": plan.purgeable(now),
            });
            out.push_str(&format!("{line}\n"));
        } else {
            out.push_str(&format!(
                "bundle {:>8}  entries {:>10}..{:<10}  {}  {}{}\n",
                plan.bundle,
                plan.entries.start,
                plan.entries.end,
                until.as_deref().unwrap_or(if plan.archived_to.is_some() {
                    "purged"
                } else {
                    "kept"
                }),
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
