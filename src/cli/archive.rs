//! `veritrail archive`: archive what has expired to a directory or a bucket, verify the
//! archive, then purge it from a stopped server's data directory
//! ([`veritrail_server::archive`]); and `veritrail verify-archive`: verify archives offline
//! with nothing but the log's key ([`veritrail_archive::verify`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Map, Value};
use time::OffsetDateTime;
use veritrail_archive::archive::MANIFEST_FILE;
use veritrail_objects::Objects;
use veritrail_records::{Action, Actor, ActorType, AuditEvent, SubmittedBy, Unchained};
use veritrail_server::archive::{Archiver, MAX_ARCHIVE_BUNDLES, PURGE_ACTION, Recorder};
use veritrail_server::payloads::PayloadStore;

use crate::cli::common::args::KeyArgs;
use crate::cli::common::datadir::DataArgs;
use crate::cli::common::error::CliError;
use crate::cli::common::io::stdout;
use crate::cli::common::retention::{load_policy, parse_now};
use crate::cli::common::runtime::runtime;

/// Arguments of `veritrail archive`.
#[derive(Debug, clap::Args)]
pub(crate) struct ArchiveArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Where archives go: a directory, or `s3://bucket/prefix` (configured from `AWS_*`),
    /// `gs://…`, `az://…`. Each archive is a directory `bundles-<first>-<end>` below it.
    /// Required offline; with --url the server's --archive-to is used.
    #[arg(long, value_name = "DIR|URL", required_unless_present = "url")]
    to: Option<String>,
    /// Run the job on a running server instead (`POST /v1/admin/archive`, with an admin
    /// --token): its --archive-to and --retention-policy apply.
    #[arg(long, conflicts_with_all = ["to", "policy", "max_bundles"])]
    url: Option<String>,
    /// With --url: a token with the admin role.
    #[arg(
        long,
        env = "VERITRAIL_TOKEN",
        hide_env_values = true,
        requires = "url"
    )]
    token: Option<String>,
    /// Archive and purge what has expired by this time (RFC 3339). Default: now.
    #[arg(long)]
    until: Option<String>,
    /// The retention policy (TOML, see docs/operations.md#retention); default: HIPAA 6y,
    /// SOC 2 1y, financial 7y, PCI DSS 1y, EU AI Act 6mo, everything else 1y.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Most bundles (256 entries each) per archive.
    #[arg(long, default_value_t = MAX_ARCHIVE_BUNDLES, value_parser = clap::value_parser!(u64).range(1..=MAX_ARCHIVE_BUNDLES))]
    max_bundles: u64,
}

/// Arguments of `veritrail verify-archive`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArchiveArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// An archive (a directory or URL holding `manifest`), or a location holding archives
    /// (`bundles-*` below it): every one is verified.
    location: String,
}

/// Runs `veritrail archive`.
///
/// # Errors
/// [`CliError::Usage`], the errors of opening the data directory, [`CliError::Archive`].
pub(crate) fn run(args: &ArchiveArgs) -> Result<(), CliError> {
    if let Some(url) = &args.url {
        return online(args, url);
    }
    let policy = load_policy(args.policy.as_deref())?;
    let now = parse_now(args.until.as_deref())?;
    let to = args.to.as_deref().unwrap_or_default();
    let target = Objects::open(to).map_err(|e| CliError::Usage {
        message: e.to_string(),
        hint: "give a directory or an s3:// URL (with AWS_* set)".into(),
    })?;
    let ledger = Arc::new(args.data.open()?);
    let payloads = Some(Arc::new(PayloadStore::open(&args.data.data).map_err(
        |e| CliError::Archive {
            source: veritrail_server::archive::ArchiveRunError::Payloads(e),
        },
    )?));
    let archive_error = |source| CliError::Archive { source };
    let ledger_error = |e: veritrail_ledger::Error| CliError::Archive { source: e.into() };
    let size = ledger.tree_head().size;
    // The bundles are proven against a checkpoint of the whole log (signed now if the last
    // one does not cover it all).
    let checkpoint = match ledger.latest_checkpoint() {
        Some(c) if c.checkpoint.tree.size == size => c,
        _ => ledger.sign_checkpoint().map_err(ledger_error)?,
    };
    let holds = veritrail_server::holds::scan(&ledger, size).map_err(ledger_error)?;
    let archiver = Archiver {
        ledger: ledger.clone(),
        payloads,
        target,
        policy,
        max_bundles: args.max_bundles,
    };
    let appender = ledger.clone();
    let record: Box<Recorder> = Box::new(move |details| {
        let result = offline_record(details).and_then(|leaf| {
            appender
                .append(&[leaf])
                .map(|a| a.indices.start)
                .map_err(|e| e.to_string())
        });
        Box::pin(async move { result })
    });
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} bundles archived {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report =
        runtime()?.block_on(
            archiver.run(now, holds, checkpoint, &*record, &|done, total| {
                bar.set_length(total);
                bar.set_position(done);
            }),
        );
    bar.finish_and_clear();
    // The purge records are in the log: cover them with a checkpoint before anyone reads.
    let signed = ledger.sign_checkpoint();
    let report = report.map_err(archive_error)?;
    signed.map_err(ledger_error)?;
    let mut out = String::new();
    for archived in &report.archived {
        out.push_str(&format!(
            "archived bundles {}..{} (entries {}..{}) to {}: {} bytes, manifest sha256 {}, verified; purged by record {}\n",
            archived.bundles.start,
            archived.bundles.end,
            archived.bundles.start * 256,
            archived.bundles.end * 256,
            archived.location,
            archived.bytes,
            archived.manifest_sha256,
            archived.record
        ));
    }
    stdout(out.as_bytes())?;
    eprintln!(
        "{} archives written, verified and purged; {} expired bundles kept by legal holds; {} purged earlier",
        report.archived.len(),
        report.held,
        report.already_purged
    );
    Ok(())
}

/// `veritrail archive --url`: the running server's job, now.
fn online(args: &ArchiveArgs, url: &str) -> Result<(), CliError> {
    let server = crate::cli::common::args::ServerArgs {
        url: url.to_owned(),
        token: args.token.clone(),
        timeout: std::time::Duration::from_secs(3600),
    };
    let client = server.client()?;
    let report = runtime()?
        .block_on(client.archive(args.until.as_deref()))
        .map_err(|e| crate::cli::common::evidence::client_error(e, None))?;
    let mut out = String::new();
    for a in &report.archived {
        out.push_str(&format!(
            "archived bundles {}..{} (entries {}..{}) to {}: {} bytes, manifest sha256 {}, verified; purged by record {}\n",
            a.first_bundle,
            a.end_bundle,
            a.first_bundle * 256,
            a.end_bundle * 256,
            a.location,
            a.bytes,
            a.manifest_sha256,
            a.record
        ));
    }
    stdout(out.as_bytes())?;
    eprintln!(
        "{} archives written, verified and purged; {} expired bundles kept by legal holds; {} purged earlier",
        report.archived.len(),
        report.held,
        report.already_purged
    );
    Ok(())
}

/// The leaf of the purge record the offline command appends itself.
fn offline_record(details: Map<String, Value>) -> Result<Vec<u8>, String> {
    let now = OffsetDateTime::now_utc();
    let timestamp = now
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| e.to_string())?;
    let mut event = AuditEvent::new(
        timestamp,
        Action::Custom(PURGE_ACTION.into()),
        Actor {
            id: "veritrail archive (offline)".into(),
            kind: ActorType::System,
        },
    );
    event.details = Some(details);
    let mut nonce = [0u8; veritrail_records::NONCE_BYTES];
    getrandom::fill(&mut nonce).map_err(|e| e.to_string())?;
    let record = Unchained::with(
        event,
        &SubmittedBy::Anonymous,
        now,
        nonce,
        &BTreeSet::new(),
        &BTreeMap::new(),
    )
    .map_err(|e| e.to_string())?;
    Ok(record.leaf(None))
}

/// Runs `veritrail verify-archive`: exit 0 when every archive is valid, 1 with the first
/// reason when one is not, 2 when one could not be read.
///
/// # Errors
/// [`CliError::ArchiveInvalid`], [`CliError::ArchiveUnreadable`], [`CliError::Usage`].
pub(crate) fn verify(args: &VerifyArchiveArgs) -> Result<(), CliError> {
    let pinned = args.key.required("verify-archive")?;
    let location = Objects::open(&args.location).map_err(|e| CliError::Usage {
        message: e.to_string(),
        hint: "give a directory or an s3:// URL (with AWS_* set)".into(),
    })?;
    let unreadable =
        |e: veritrail_objects::ObjectsError| CliError::ArchiveUnreadable { source: e.into() };
    runtime()?.block_on(async {
        let archives = if location.get(MANIFEST_FILE).await.map_err(unreadable)?.is_some() {
            vec![location.clone()]
        } else {
            let mut archives = Vec::new();
            for name in location.list_dirs("").await.map_err(unreadable)? {
                if name.starts_with("bundles-") {
                    archives.push(location.child(&name).map_err(unreadable)?);
                }
            }
            archives
        };
        if archives.is_empty() {
            return Err(CliError::ArchiveInvalid {
                source: veritrail_archive::ArchiveError::Missing {
                    location: location.location().to_owned(),
                    path: "manifest (no archive here)".into(),
                },
            });
        }
        for archive in archives {
            let verified =
                veritrail_archive::verify(&archive, &pinned.origin, &pinned.key, &|_| {})
                    .await
                    .map_err(|source| {
                        if source.is_invalid() {
                            CliError::ArchiveInvalid { source }
                        } else {
                            CliError::ArchiveUnreadable { source }
                        }
                    })?;
            println!(
                "valid: {} — bundles {}..{} ({} entries) proven against the checkpoint of size {}, {} files, {} bytes, manifest sha256 {}",
                verified.location,
                verified.manifest.bundles.start,
                verified.manifest.bundles.end,
                verified.entries,
                verified.manifest.size,
                verified.files.len() + 2,
                verified.bytes,
                veritrail_ledger::ascii::to_hex(&verified.manifest_sha256)
            );
        }
        Ok(())
    })
}
