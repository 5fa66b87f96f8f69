//! `veritrail admin ...`: maintenance of a stopped server's data directory (`reindex`), and
//! legal holds on a running server (`hold`).

use std::time::Instant;

use veritrail_records::hold::Scope;

use crate::cli::common::args::ServerArgs;
use crate::cli::common::datadir::DataArgs;
use crate::cli::common::error::CliError;
use crate::cli::common::evidence::client_error;
use crate::cli::common::io::stdout;
use crate::cli::common::runtime::runtime;

/// `veritrail admin ...`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum AdminCommand {
    /// Rebuild the record indexes (`<data>/record-index.redb`) from the log.
    ///
    /// The server keeps them behind its committer and rebuilds a missing or damaged index
    /// at start; this does it offline, with progress, and reports the rate. Stop the server
    /// first (the store refuses a second process).
    Reindex(ReindexArgs),
    /// Legal holds on a running server (token with role `admin`; `list` also `audit`): each
    /// placement and release is a record in the log, and nothing a hold covers is purged
    /// while it is in force.
    #[command(subcommand)]
    Hold(HoldCommand),
}

/// `veritrail admin hold ...`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum HoldCommand {
    /// Place a hold on exactly one of --conversation, --actor, --resource or --range; prints
    /// the hold (its name is the index of its record).
    Add(HoldAddArgs),
    /// Release a hold by its name (the index `add` printed).
    Release(HoldReleaseArgs),
    /// List the holds in force, one JSON object per line.
    List(HoldListArgs),
}

/// Arguments of `veritrail admin hold add`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("scope").required(true).multiple(false)))]
pub(crate) struct HoldAddArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Hold every record of this conversation.
    #[arg(long, group = "scope")]
    conversation: Option<String>,
    /// Hold every record of this actor (`actor.id`).
    #[arg(long, group = "scope")]
    actor: Option<String>,
    /// Hold every record about this resource (`resource.id`).
    #[arg(long, group = "scope")]
    resource: Option<String>,
    /// Hold the entries of an index range, `FIRST..END` (END excluded), raw entries included.
    #[arg(long, group = "scope", value_name = "FIRST..END", value_parser = parse_range)]
    range: Option<(u64, u64)>,
    /// Why (recorded in the hold record).
    #[arg(long)]
    reason: String,
}

/// Arguments of `veritrail admin hold release`.
#[derive(Debug, clap::Args)]
pub(crate) struct HoldReleaseArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The hold: the index `admin hold add` printed.
    hold: u64,
    /// Why (recorded in the release record).
    #[arg(long)]
    reason: String,
}

/// Arguments of `veritrail admin hold list`.
#[derive(Debug, clap::Args)]
pub(crate) struct HoldListArgs {
    #[command(flatten)]
    server: ServerArgs,
}

/// Parses `FIRST..END` with FIRST < END.
fn parse_range(text: &str) -> Result<(u64, u64), String> {
    let (first, end) = text
        .split_once("..")
        .ok_or_else(|| format!("{text:?} is not FIRST..END"))?;
    let number =
        |s: &str| veritrail_ledger::ascii::parse_decimal(s).map_err(|e| format!("{s:?}: {e}"));
    let (first, end) = (number(first)?, number(end)?);
    if first >= end {
        return Err(format!("{text:?}: FIRST must be below END"));
    }
    Ok((first, end))
}

/// Arguments of `veritrail admin reindex`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReindexArgs {
    #[command(flatten)]
    data: DataArgs,
}

/// Runs an `admin` subcommand.
///
/// # Errors
/// The errors of opening the data directory; [`CliError::Reindex`].
pub(crate) fn run(command: &AdminCommand) -> Result<(), CliError> {
    match command {
        AdminCommand::Reindex(args) => reindex(args),
        AdminCommand::Hold(command) => hold(command),
    }
}

fn hold(command: &HoldCommand) -> Result<(), CliError> {
    let runtime = runtime()?;
    let line = match command {
        HoldCommand::Add(args) => {
            let scope = match (&args.conversation, &args.actor, &args.resource, args.range) {
                (Some(id), ..) => Scope::Conversation(id.clone()),
                (_, Some(id), ..) => Scope::Actor(id.clone()),
                (_, _, Some(id), _) => Scope::Resource(id.clone()),
                (_, _, _, Some((first, end))) => Scope::Range { first, end },
                (None, None, None, None) => {
                    return Err(CliError::Usage {
                        message: "no scope".into(),
                        hint: "give one of --conversation, --actor, --resource or --range".into(),
                    });
                }
            };
            let client = args.server.client()?;
            let placed = runtime
                .block_on(client.place_hold(&scope, &args.reason))
                .map_err(|e| client_error(e, None))?;
            eprintln!(
                "hold {} placed; release it with `veritrail admin hold release {}`",
                placed.hold, placed.hold
            );
            serde_json::to_string(&placed).unwrap_or_default()
        }
        HoldCommand::Release(args) => {
            let client = args.server.client()?;
            let released = runtime
                .block_on(client.release_hold(args.hold, &args.reason))
                .map_err(|e| client_error(e, None))?;
            eprintln!(
                "hold {} released by record {}",
                released.hold, released.release
            );
            serde_json::to_string(&released).unwrap_or_default()
        }
        HoldCommand::List(args) => {
            let client = args.server.client()?;
            let holds = runtime
                .block_on(client.holds())
                .map_err(|e| client_error(e, None))?;
            eprintln!(
                "{} holds in force at tree size {}",
                holds.holds.len(),
                holds.size
            );
            holds
                .holds
                .iter()
                .map(|h| serde_json::to_string(h).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    if line.is_empty() {
        return Ok(());
    }
    stdout(format!("{line}\n").as_bytes())
}

fn reindex(args: &ReindexArgs) -> Result<(), CliError> {
    use veritrail_server::record_index::{INDEX_FILE, RecordIndex};
    // Opening the store first: it refuses while a server holds it.
    let ledger = args.data.open()?;
    let path = args.data.data.join(INDEX_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => eprintln!("removed {}", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(CliError::Write { path, source });
        }
    }
    let size = ledger.tree_head().size;
    let index =
        RecordIndex::open(&args.data.data, size).map_err(|source| CliError::Reindex { source })?;
    let bar = indicatif::ProgressBar::new(size);
    let started = Instant::now();
    loop {
        let read = index
            .step(&ledger)
            .map_err(|source| CliError::Reindex { source })?;
        if read == 0 {
            break;
        }
        bar.inc(read);
    }
    index
        .flush()
        .map_err(|source| CliError::Reindex { source })?;
    bar.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "indexed {size} entries in {elapsed:.2} s ({:.0} entries/s) into {}",
        size as f64 / elapsed.max(1e-9),
        path.display()
    );
    Ok(())
}
