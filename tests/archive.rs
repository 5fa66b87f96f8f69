//! Retention, legal holds and archival end to end, on a real log on disk and real archive
//! targets (a directory, and an S3-compatible server started on loopback):
//!
//! - an injected clock drives 8 years of monthly appends across compliance domains, with a
//!   legal hold placed and released, and the archival job every six months: the strictest
//!   regime wins, the hold blocks the purge, nothing is purged early, everything expired is
//!   purged; afterwards every inclusion and consistency proof verifies, and
//!   `veritrail verify-archive` accepts every archive;
//! - faults: a target that refuses writes, an archive write that fails half-way, a flipped
//!   byte in the archive, a purge record that cannot be written (the job dying between
//!   archive and purge), and the real `veritrail archive` process killed (SIGKILL) at random
//!   moments — nothing is purged that is not verified in its archive, and a later run
//!   finishes cleanly.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};
use time::{Date, Month, OffsetDateTime, Time};
use veritrail_ledger::Ledger;
use veritrail_ledger::note::{KeyName, NoteSigner};
use veritrail_ledger::proof::{verify_consistency, verify_inclusion};
use veritrail_ledger::store::{self, Backend};
use veritrail_objects::Objects;
use veritrail_records::event::Domain;
use veritrail_records::hold::{HOLD_ACTION, RELEASE_ACTION};
use veritrail_records::retention::RetentionPolicy;
use veritrail_records::{Action, Actor, ActorType, AuditEvent, SubmittedBy, Unchained, parse_leaf};
use veritrail_server::archive::{ArchiveRunError, Archiver, PURGE_ACTION, Recorder};

const ORIGIN: &str = "veritrail.test/archive";

fn signer() -> NoteSigner {
    NoteSigner::generate(KeyName::new(ORIGIN).unwrap()).unwrap()
}

fn open(dir: &Path, signer: NoteSigner) -> Arc<Ledger> {
    Arc::new(Ledger::open(store::open(Backend::Redb, dir).unwrap(), ORIGIN, signer).unwrap())
}

/// The first instant of month `m` after January 2026.
fn month(m: u32) -> OffsetDateTime {
    let year = 2026 + (m / 12) as i32;
    let month = Month::try_from((m % 12 + 1) as u8).unwrap();
    Date::from_calendar_date(year, month, 1)
        .unwrap()
        .with_time(Time::MIDNIGHT)
        .assume_utc()
}

/// A record leaf received at `at`.
fn leaf(
    at: OffsetDateTime,
    action: Action,
    domains: &[Domain],
    conversation: Option<&str>,
    details: Option<Map<String, Value>>,
) -> Vec<u8> {
    let mut event = AuditEvent::new(
        at.format(&time::format_description::well_known::Rfc3339)
            .unwrap(),
        action,
        Actor {
            id: "sim-agent".into(),
            kind: ActorType::Agent,
        },
    );
    event.compliance = domains.iter().cloned().collect();
    event.conversation_id = conversation.map(str::to_owned);
    event.details = details;
    let mut nonce = [0u8; veritrail_records::NONCE_BYTES];
    getrandom::fill(&mut nonce).unwrap();
    Unchained::with(
        event,
        &SubmittedBy::Anonymous,
        at,
        nonce,
        &BTreeSet::new(),
        &BTreeMap::new(),
    )
    .unwrap()
    .leaf(None)
}

/// Appends the purge records at the simulated time held in `clock`.
fn recorder(ledger: Arc<Ledger>, clock: Arc<Mutex<OffsetDateTime>>) -> Box<Recorder> {
    Box::new(move |details| {
        let at = *clock.lock().unwrap();
        let leaf = leaf(
            at,
            Action::Custom(PURGE_ACTION.into()),
            &[],
            None,
            Some(details),
        );
        let result = ledger
            .append(&[leaf])
            .map(|a| a.indices.start)
            .map_err(|e| e.to_string());
        Box::pin(async move { result })
    })
}

/// The retention end of every full bundle, from each entry's own expiry (the model).
fn bundle_expiries(ledger: &Ledger, model: &BTreeMap<u64, OffsetDateTime>) -> Vec<OffsetDateTime> {
    let full = ledger.tree_head().size / 256;
    (0..full)
        .map(|b| (b * 256..(b + 1) * 256).map(|i| model[&i]).max().unwrap())
        .collect()
}

fn verify_archive_cli(
    vkey: &str,
    location: &str,
    env: &[(&'static str, String)],
) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_veritrail"));
    command.args(["verify-archive", "--log-key", vkey, location]);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

/// Eight years, month by month, on a directory target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_years_strictest_wins_holds_block_nothing_early_everything_expired_purged() {
    let dir = tempfile::tempdir().unwrap();
    let signer = signer();
    let vkey = signer.verifier().to_string();
    let ledger = open(&dir.path().join("data"), signer);
    let target = dir.path().join("archive");
    let policy = RetentionPolicy::default();
    let clock = Arc::new(Mutex::new(month(0)));
    let archiver = Archiver {
        ledger: ledger.clone(),
        payloads: None,
        target: Objects::open(target.to_str().unwrap()).unwrap(),
        policy: policy.clone(),
        max_bundles: 8,
    };
    let record = recorder(ledger.clone(), clock.clone());
    // Every entry's own expiry (the model), and which bundles the held conversation uses.
    let mut model: BTreeMap<u64, OffsetDateTime> = BTreeMap::new();
    let mut held_bundles = BTreeSet::new();
    let (mut hold_index, mut released) = (None, false);
    let mut first_checkpoint = None;
    let mut purged_at: BTreeMap<u64, OffsetDateTime> = BTreeMap::new();
    let mut month_bundles: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
    let mut strict_bundle = None;

    for m in 0..=96u32 {
        let at = month(m);
        *clock.lock().unwrap() = at;
        // Fill up to the next bundle boundary (purge records may have been appended).
        let size = ledger.tree_head().size;
        let count = 256 - size % 256 + 256;
        let domains: Vec<Domain> = match m % 5 {
            0 => vec![Domain::Hipaa],
            1 => vec![Domain::Soc2],
            2 => vec![Domain::Financial],
            3 => vec![Domain::EuAiAct],
            _ => vec![],
        };
        let conversation = (m == 13).then_some("c-held");
        let mut leaves = Vec::new();
        for i in 0..count {
            let at = at + time::Duration::seconds(i as i64);
            let leaf = if m == 14 && i == 0 {
                let mut details = Map::new();
                details.insert("scope".into(), json!({"conversation_id": "c-held"}));
                details.insert("reason".into(), json!("litigation 2027-114"));
                leaf(
                    at,
                    Action::Custom(HOLD_ACTION.into()),
                    &[],
                    None,
                    Some(details),
                )
            } else if m == 40 && i == 0 {
                let mut details = Map::new();
                details.insert("hold".into(), json!(hold_index.unwrap()));
                details.insert("reason".into(), json!("settled"));
                leaf(
                    at,
                    Action::Custom(RELEASE_ACTION.into()),
                    &[],
                    None,
                    Some(details),
                )
            } else if m % 10 == 1 && i == 7 {
                // One HIPAA record among SOC 2 ones: the strictest regime wins for the bundle.
                leaf(
                    at,
                    Action::ToolInvoked,
                    &[Domain::Soc2, Domain::Hipaa],
                    None,
                    None,
                )
            } else {
                leaf(at, Action::ToolInvoked, &domains, conversation, None)
            };
            leaves.push(leaf);
        }
        let appended = ledger.append(&leaves).unwrap();
        month_bundles
            .entry(m)
            .or_default()
            .extend((appended.indices.start / 256)..=((appended.indices.end - 1) / 256));
        for (offset, leaf) in leaves.iter().enumerate() {
            let index = appended.indices.start + offset as u64;
            let record = parse_leaf(leaf).unwrap();
            let start = at + time::Duration::seconds(offset as i64);
            model.insert(index, policy.expiry(&record, start).until);
            if m == 13 {
                held_bundles.insert(index / 256);
            }
            if m == 14 && offset == 0 {
                hold_index = Some(index);
                held_bundles.insert(index / 256);
            }
            if m == 40 && offset == 0 {
                released = true;
            }
            if m == 11 && offset == 7 {
                strict_bundle = Some(index / 256);
            }
        }
        // Purge records appended so far: the default year from when they were written.
        for index in 0..ledger.tree_head().size {
            if let std::collections::btree_map::Entry::Vacant(slot) = model.entry(index) {
                let record = parse_leaf(&ledger.entry(index).unwrap()).unwrap();
                assert_eq!(record["action"], PURGE_ACTION);
                slot.insert(policy.expiry(&record, at).until);
            }
        }
        let checkpoint = ledger
            .sign_checkpoint_at(at.unix_timestamp() as u64)
            .unwrap();
        first_checkpoint.get_or_insert(checkpoint.checkpoint.tree);

        // The archival job, every six months.
        if m % 6 != 5 {
            continue;
        }
        let size = ledger.tree_head().size;
        let holds = veritrail_server::holds::scan(&ledger, size).unwrap();
        assert_eq!(
            holds.is_active(hold_index.unwrap_or(u64::MAX)),
            hold_index.is_some() && !released
        );
        let report = archiver
            .run(at, holds, checkpoint, &*record, &|_, _| {})
            .await
            .unwrap();
        let expiries = bundle_expiries(&ledger, &model);
        let purged: BTreeSet<u64> = ledger
            .purged()
            .iter()
            .flat_map(|r| r.bundles.clone())
            .collect();
        for &bundle in &purged {
            purged_at.entry(bundle).or_insert(at);
        }
        let hold_active = hold_index.is_some() && !released;
        for (bundle, expiry) in expiries.iter().enumerate() {
            let bundle = bundle as u64;
            let held = hold_active && held_bundles.contains(&bundle);
            if purged.contains(&bundle) {
                // Nothing purged early, nor while held.
                assert!(
                    *expiry <= purged_at[&bundle],
                    "month {m}: bundle {bundle} purged early"
                );
            } else if *expiry <= at && !held {
                panic!(
                    "month {m}: bundle {bundle} expired at {expiry} and is not held, but kept ({report:?})"
                );
            }
            if held {
                assert!(
                    !purged.contains(&bundle),
                    "month {m}: held bundle {bundle} purged"
                );
            }
        }
        if m == 29 {
            // Strictest wins: month 11 (SOC 2, one record also HIPAA) is kept 6 years while
            // month 6 (SOC 2 alone, 1 year) is gone. Only bundles wholly of one month count.
            let only = |m: u32| {
                let mine = &month_bundles[&m];
                let others: BTreeSet<u64> = month_bundles
                    .iter()
                    .filter(|(k, _)| **k != m)
                    .flat_map(|(_, b)| b.iter().copied())
                    .collect();
                mine.difference(&others).copied().collect::<Vec<u64>>()
            };
            assert!(only(6).iter().all(|b| purged.contains(b)), "{:?}", only(6));
            let strict = strict_bundle.unwrap();
            assert!(
                !purged.contains(&strict),
                "bundle {strict} holds a HIPAA record"
            );
            assert!(
                only(11).iter().any(|b| *b != strict && purged.contains(b)),
                "month 11's other bundle (SOC 2 alone) is gone"
            );
        }
        if m == 35 {
            // The held bundles expired long ago (EU AI Act, 6 months) but stay.
            assert!(report.held > 0, "{report:?}");
        }
    }
    // Strictest wins: a SOC 2 bundle with one HIPAA record (month 11) outlived the plain
    // SOC 2 bundle of month 6.
    let purged: BTreeSet<u64> = ledger
        .purged()
        .iter()
        .flat_map(|r| r.bundles.clone())
        .collect();
    assert!(!purged.is_empty());

    // Years later everything has expired: all purged.
    let later = month(96 + 12 * 8);
    *clock.lock().unwrap() = later;
    let checkpoint = ledger
        .sign_checkpoint_at(later.unix_timestamp() as u64)
        .unwrap();
    let size = ledger.tree_head().size;
    let holds = veritrail_server::holds::scan(&ledger, size).unwrap();
    archiver
        .run(later, holds, checkpoint, &*record, &|_, _| {})
        .await
        .unwrap();
    let purged: BTreeSet<u64> = ledger
        .purged()
        .iter()
        .flat_map(|r| r.bundles.clone())
        .collect();
    let expiries = bundle_expiries(&ledger, &model);
    for (bundle, expiry) in expiries.iter().enumerate() {
        if *expiry <= later {
            assert!(
                purged.contains(&(bundle as u64)),
                "bundle {bundle} expired but kept"
            );
        }
    }

    // Every proof of retained and archived entries still verifies.
    let tree = ledger
        .sign_checkpoint_at(later.unix_timestamp() as u64 + 1)
        .unwrap()
        .checkpoint
        .tree;
    for index in (0..tree.size).step_by(97) {
        let proof = ledger.inclusion_proof(index, tree.size).unwrap();
        let leaf_hash = veritrail_ledger::leaf_hash(&match ledger.entry(index) {
            Ok(entry) => entry,
            Err(veritrail_ledger::Error::Purged { .. }) => {
                // From the archive: the entry is there, and the tree still proves it.
                let range = ledger.purged_range(index / 256).unwrap();
                let objects = Objects::open(&range.location).unwrap();
                let bundle = objects
                    .get(
                        &veritrail_ledger::tile::TileId::entries(index / 256, 256)
                            .unwrap()
                            .path(),
                    )
                    .await
                    .unwrap()
                    .unwrap();
                veritrail_ledger::bundle::decode_bundle(&bundle, 256).unwrap()
                    [(index % 256) as usize]
                    .to_vec()
            }
            Err(e) => panic!("{e}"),
        });
        verify_inclusion(&leaf_hash, index, &tree, &proof).unwrap();
    }
    let old = first_checkpoint.unwrap();
    let proof = ledger.consistency_proof(old.size, tree.size).unwrap();
    verify_consistency(&old, &tree, &proof).unwrap();
    ledger.audit().unwrap();
    // Every archive verifies offline with nothing but the key.
    let output = verify_archive_cli(&vkey, target.to_str().unwrap(), &[]);
    assert!(output.status.success(), "{output:?}");
    let valid = String::from_utf8(output.stdout).unwrap();
    assert_eq!(valid.lines().count(), ledger.purged().len(), "{valid}");
}

/// A log of `bundles` full bundles of raw-default records received in 2026.
fn small_log(dir: &Path, bundles: u64) -> (Arc<Ledger>, String) {
    small_log_at(dir, bundles, month(0))
}

/// A log of `bundles` full bundles of raw-default records received from `start` on.
fn small_log_at(dir: &Path, bundles: u64, start: OffsetDateTime) -> (Arc<Ledger>, String) {
    let signer = signer();
    let vkey = signer.verifier().to_string();
    // Where `veritrail archive --data` looks for the log's key; audit data is owner-only.
    {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .unwrap();
    }
    std::fs::write(dir.join("log.key"), signer.to_private_key_string()).unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir.join("log.key"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }
    let ledger = open(dir, signer);
    let leaves: Vec<Vec<u8>> = (0..bundles * 256)
        .map(|i| {
            leaf(
                start + time::Duration::seconds(i as i64),
                Action::ToolInvoked,
                &[],
                None,
                None,
            )
        })
        .collect();
    ledger.append(&leaves).unwrap();
    ledger
        .sign_checkpoint_at(start.unix_timestamp() as u64)
        .unwrap();
    (ledger, vkey)
}

async fn run(
    archiver: &Archiver,
    record: &Recorder,
) -> Result<veritrail_server::archive::RunReport, ArchiveRunError> {
    let ledger = &archiver.ledger;
    let size = ledger.tree_head().size;
    let checkpoint = ledger.latest_checkpoint().unwrap();
    let holds = veritrail_server::holds::scan(ledger, size).unwrap();
    archiver
        .run(month(30), holds, checkpoint, record, &|_, _| {})
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_never_purge_what_is_not_verified_in_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _vkey) = small_log(&dir.path().join("data"), 4);
    let target = dir.path().join("archive");
    std::fs::create_dir_all(&target).unwrap();
    let archiver = Archiver {
        ledger: ledger.clone(),
        payloads: None,
        target: Objects::open(target.to_str().unwrap()).unwrap(),
        policy: RetentionPolicy::default(),
        max_bundles: 64,
    };
    let clock = Arc::new(Mutex::new(month(30)));
    let record = recorder(ledger.clone(), clock);
    let entry = ledger.entry(5).unwrap();

    // A target that refuses writes: nothing written, nothing purged.
    std::fs::write(target.join("bundles-0-4"), b"in the way").unwrap();
    assert!(run(&archiver, &*record).await.is_err());
    assert!(ledger.purged().is_empty());
    std::fs::remove_file(target.join("bundles-0-4")).unwrap();

    // A write that fails half-way (the bundles cannot be written, the tiles can): no
    // manifest, nothing purged.
    std::fs::create_dir_all(target.join("bundles-0-4/tile")).unwrap();
    std::fs::write(target.join("bundles-0-4/tile/entries"), b"in the way").unwrap();
    assert!(run(&archiver, &*record).await.is_err());
    assert!(ledger.purged().is_empty());
    assert!(!target.join("bundles-0-4/manifest").exists());
    std::fs::remove_file(target.join("bundles-0-4/tile/entries")).unwrap();

    // The job dies between the verified archive and the purge record: nothing purged.
    let failing: Box<Recorder> = Box::new(|_| Box::pin(async { Err("killed".to_owned()) }));
    assert!(matches!(
        run(&archiver, &*failing).await,
        Err(ArchiveRunError::Record(_))
    ));
    assert!(ledger.purged().is_empty());
    assert!(target.join("bundles-0-4/manifest").exists());

    // A flipped byte in the archive: the next run verifies it again, refuses, purges nothing.
    let bundle = target.join("bundles-0-4/tile/entries/002");
    let good = std::fs::read(&bundle).unwrap();
    let mut bad = good.clone();
    bad[1000] ^= 0x20;
    std::fs::write(&bundle, &bad).unwrap();
    let err = run(&archiver, &*record).await.unwrap_err();
    assert!(matches!(err, ArchiveRunError::Archive(_)), "{err}");
    assert!(ledger.purged().is_empty());
    assert_eq!(ledger.entry(5).unwrap(), entry);

    // Restored: the run finishes with the archive already written.
    std::fs::write(&bundle, &good).unwrap();
    let report = run(&archiver, &*record).await.unwrap();
    assert_eq!(report.archived.len(), 1);
    assert_eq!(ledger.purged()[0].bundles, 0..4);
    assert!(matches!(
        ledger.entry(5),
        Err(veritrail_ledger::Error::Purged { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_killed_at_random_moments_then_finished() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let vkey = {
        let (ledger, vkey) = small_log(&data, 24);
        drop(ledger);
        vkey
    };
    std::fs::write(dir.path().join("log.vkey"), &vkey).unwrap();
    let target = dir.path().join("archive");
    let archive = |kill_after: Option<u64>| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_veritrail"))
            .args([
                "archive",
                "--origin",
                ORIGIN,
                "--max-bundles",
                "2",
                "--until",
                "2030-01-01T00:00:00Z",
                "--data",
            ])
            .arg(&data)
            .arg("--to")
            .arg(&target)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        match kill_after {
            Some(ms) => {
                std::thread::sleep(std::time::Duration::from_millis(ms));
                let _ = child.kill();
                child.wait().unwrap()
            }
            None => child.wait().unwrap(),
        }
    };
    for ms in [40, 150, 400, 900] {
        archive(Some(ms));
        // Whatever the kill left: every purged range has a verified archive.
        for range in purged_ranges(&data) {
            let output = verify_archive_cli(&vkey, &range, &[]);
            assert!(
                output.status.success(),
                "after a kill at {ms} ms: {output:?}"
            );
        }
    }
    let status = archive(None);
    assert!(status.success());
    let output = verify_archive_cli(&vkey, target.to_str().unwrap(), &[]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().lines().count(),
        12
    );
    let plan = Command::new(env!("CARGO_BIN_EXE_veritrail"))
        .args([
            "retention",
            "plan",
            "--json",
            "--now",
            "2030-01-01T00:00:00Z",
            "--data",
        ])
        .arg(&data)
        .output()
        .unwrap();
    let text = String::from_utf8(plan.stdout).unwrap();
    let archived = text
        .lines()
        .filter(|l| l.contains("\"archived_to\":\""))
        .count();
    assert_eq!(archived, 24, "{text}");
}

/// The archive locations of the purged ranges of a stopped server's data directory, read
/// with the CLI's retention plan.
fn purged_ranges(data: &Path) -> BTreeSet<String> {
    let plan = Command::new(env!("CARGO_BIN_EXE_veritrail"))
        .args(["retention", "plan", "--json", "--data"])
        .arg(data)
        .output()
        .unwrap();
    assert!(plan.status.success(), "{plan:?}");
    String::from_utf8(plan.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["archived_to"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_on_a_bucket_are_written_verified_and_purged() {
    let Some(s3) = support::start_s3("veritrail-archive").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let vkey = small_log(&data, 6).1;
    let mut command = Command::new(env!("CARGO_BIN_EXE_veritrail"));
    command
        .args([
            "archive",
            "--origin",
            ORIGIN,
            "--until",
            "2030-01-01T00:00:00Z",
            "--to",
            "s3://veritrail-archive/log/archives",
            "--data",
        ])
        .arg(&data);
    let output = s3.configure(&mut command).output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let out = String::from_utf8(output.stdout).unwrap();
    assert!(out.contains("archived bundles 0..6"), "{out}");
    let output = verify_archive_cli(&vkey, "s3://veritrail-archive/log/archives", &s3.env());
    assert!(output.status.success(), "{output:?}");
    // A flipped byte in the bucket is found. The object is rewritten through the S3 API with
    // credentials (as someone with write access to the bucket could), by boto3 from moto's
    // own environment.
    let python = s3.python();
    let script = "import boto3,os\n\
s3=boto3.client('s3',endpoint_url=os.environ['AWS_ENDPOINT'],region_name='us-east-1')\n\
k='log/archives/bundles-0-6/tile/entries/003'\n\
b=bytearray(s3.get_object(Bucket='veritrail-archive',Key=k)['Body'].read())\n\
b[10]^=1\n\
s3.put_object(Bucket='veritrail-archive',Key=k,Body=bytes(b))\n";
    let mut tamper = Command::new(python);
    tamper.args(["-c", script]);
    let output = s3.configure(&mut tamper).output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let output = verify_archive_cli(&vkey, "s3://veritrail-archive/log/archives", &s3.env());
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("tile/entries/003"), "{stderr}");
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_veritrail"))
        .args(args)
        .output()
        .unwrap()
}

/// Waits until the server at `base` publishes a checkpoint of at least `size`.
async fn published(base: &str, size: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let note = reqwest::get(format!("{base}/checkpoint"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if note
            .lines()
            .nth(1)
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
            >= size
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint of {size}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn serve(data: &Path, extra: &[&str]) -> (support::ChildGuard, String) {
    let (child, lines) = support::spawn_lines(
        Command::new(env!("CARGO_BIN_EXE_veritrail"))
            .args([
                "serve",
                "--no-auth",
                "--listen",
                "127.0.0.1:0",
                "--checkpoint-interval",
                "50ms",
                "--origin",
                ORIGIN,
                "--data",
            ])
            .arg(data)
            .args(extra)
            .stderr(std::process::Stdio::null()),
    );
    let base = support::line_after(
        &lines,
        "veritrail listening on ",
        std::time::Duration::from_secs(60),
    );
    (child, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_server_archives_on_request_honours_holds_and_reserves_its_archives() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let start = Date::from_calendar_date(2024, Month::January, 1)
        .unwrap()
        .with_time(Time::MIDNIGHT)
        .assume_utc();
    let vkey = {
        let (ledger, vkey) = small_log_at(&data, 6, start);
        drop(ledger);
        vkey
    };
    let target = dir.path().join("archive");
    let target_arg = target.to_str().unwrap().to_owned();
    let (server, base) = serve(
        &data,
        &["--archive-to", &target_arg, "--archive-interval", "0s"],
    );
    published(&base, 1536).await;

    // A hold on the first bundle, in force once a checkpoint covers its record.
    let placed = cli(&[
        "admin",
        "hold",
        "add",
        "--range",
        "0..256",
        "--reason",
        "litigation",
        "--url",
        &base,
    ]);
    assert!(placed.status.success(), "{placed:?}");
    let hold: Value = serde_json::from_slice(&placed.stdout).unwrap();
    let hold = hold["hold"].as_u64().unwrap();
    published(&base, hold + 1).await;

    let run = cli(&["archive", "--url", &base]);
    assert!(run.status.success(), "{run:?}");
    let out = String::from_utf8(run.stdout).unwrap();
    assert!(out.contains("archived bundles 1..6"), "{out}");
    let gone = reqwest::get(format!("{base}/v1/entries/300"))
        .await
        .unwrap();
    assert_eq!(gone.status(), 410);
    let body: Value = serde_json::from_slice(&gone.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"], "archived");
    assert!(
        body["message"].as_str().unwrap().contains("bundles-1-6"),
        "{body}"
    );
    assert_eq!(
        reqwest::get(format!("{base}/v1/entries/5"))
            .await
            .unwrap()
            .status(),
        200
    );
    // Proofs of purged entries are still served.
    let proof = reqwest::get(format!("{base}/v1/proof/inclusion?index=300"))
        .await
        .unwrap();
    assert_eq!(proof.status(), 200);

    // Released: the next run archives the first bundle too.
    let released = cli(&[
        "admin",
        "hold",
        "release",
        &hold.to_string(),
        "--reason",
        "settled",
        "--url",
        &base,
    ]);
    assert!(released.status.success(), "{released:?}");
    let release: Value = serde_json::from_slice(&released.stdout).unwrap();
    published(&base, release["release"].as_u64().unwrap() + 1).await;
    let run = cli(&["archive", "--url", &base]);
    assert!(run.status.success(), "{run:?}");
    assert!(
        String::from_utf8(run.stdout)
            .unwrap()
            .contains("archived bundles 0..1")
    );
    // Nothing in the future.
    let future = cli(&["archive", "--url", &base, "--until", "2099-01-01T00:00:00Z"]);
    assert_eq!(future.status.code(), Some(2), "{future:?}");
    // The monitor's full replay: the server answers 410 for purged bundles; the monitor reads
    // them from the archive itself and checks them against the log's tiles.
    let state = dir.path().join("direct.state");
    let without = cli(&[
        "monitor",
        "--once",
        "--url",
        &base,
        "--log-key",
        &vkey,
        "--state",
        state.to_str().unwrap(),
    ]);
    assert!(!without.status.success(), "{without:?}");
    let state = dir.path().join("direct2.state");
    let with = cli(&[
        "monitor",
        "--once",
        "--url",
        &base,
        "--archive",
        &target_arg,
        "--log-key",
        &vkey,
        "--state",
        state.to_str().unwrap(),
    ]);
    assert!(with.status.success(), "{with:?}");
    drop(server);

    // Re-served from the archive, checked: the monitor's full replay passes.
    let (_server, base) = serve(&data, &["--archive", &target_arg]);
    let entry = reqwest::get(format!("{base}/v1/entries/300"))
        .await
        .unwrap();
    assert_eq!(entry.status(), 200);
    let state = dir.path().join("monitor.state");
    let monitor = cli(&[
        "monitor",
        "--once",
        "--url",
        &base,
        "--log-key",
        &vkey,
        "--state",
        state.to_str().unwrap(),
    ]);
    assert!(monitor.status.success(), "{monitor:?}");
    let output = verify_archive_cli(&vkey, &target_arg, &[]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8(output.stdout).unwrap().lines().count(), 2);
}
