//! A triage agent in a hospital, audited end to end.
//!
//! ```sh
//! cargo run --example healthcare_agent
//! ```
//!
//! The example starts a Veritrail server in-process on a loopback port over a temporary
//! data directory (embedded redb store, encrypted payload store, a classification registry),
//! then plays three parts:
//!
//! 1. **The agent** logs one conversation: the patient's message (PHI kept in a committed,
//!    encrypted payload; an e-mail address and a medical record number in the metadata are
//!    scrubbed), a tool call reading the patient's record (the agent says nothing about its
//!    sensitivity; the operator's registry makes it `restricted` and `hipaa`), the code it ran,
//!    its answer, and the end of the conversation.
//! 2. **The auditor**, trusting only the log's public key, proves every record in the log,
//!    checks that the conversation's chain is complete, and opens every payload against the
//!    commitment in its proven record.
//! 3. **The privacy officer** erases the patient's data (crypto-shredding). Afterwards the
//!    payloads are gone (410, naming the erasure record), yet every record still proves, the
//!    chain is still complete, the new checkpoint is consistent with the one before, and a
//!    monitor's full replay of the log verifies.
//!
//! 4. **Who looked**: every read above appended a `data_accessed` record naming its reader;
//!    a verified query lists them.
//!
//! Every check that fails ends the example with an error (exit 1); `tests/examples.rs` runs
//! it in CI.

// Reading JSON with `value["key"]` never panics (a missing key reads as null).
#![allow(clippy::indexing_slicing)]

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use veritrail_client::event::Event;
use veritrail_client::records::{verified_payload, verified_query, verified_record};
use veritrail_client::{
    AppendOptions, ClientConfig, ClientError, Erasure, LogClient, LogVerifier, Monitor,
    MonitorOptions, ProofSource, VerifyingClient,
};
use veritrail_ledger::note::{KeyName, NoteSigner, NoteVerifier};
use veritrail_ledger::store::{self, Backend};
use veritrail_ledger::{Ledger, leaf_hash};
use veritrail_records::{Action, verify_chain};
use veritrail_server::auth::{Auth, Role, TokenFile, token_entry};
use veritrail_server::config::{PublishConfig, RecordsConfig};
use veritrail_server::{Server, ServerConfig};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

const ORIGIN: &str = "audit.st-mary.example/triage";
const AGENT_TOKEN: &str = "vt_example_triage_agent";
const AUDITOR_TOKEN: &str = "vt_example_auditor";
const PRIVACY_TOKEN: &str = "vt_example_privacy_officer";
const PATIENT: &str = "patient-7000";
const CONVERSATION: &str = "triage-2026-03-01-0042";

/// The operator's word on tools and resources, whatever the agent says.
const REGISTRY: &str = r#"
[[tool]]
match = "ehr.read_patient"
classification = "restricted"
compliance = ["hipaa"]

[[resource]]
match = "patient_record"
classification = "restricted"
compliance = ["hipaa"]

[[tool]]
match = "sandbox.*"
classification = "confidential"
compliance = ["soc2"]
"#;

#[tokio::main]
async fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (running, stop, url, log_key) = start_server(dir.path()).await?;

    println!("== 1. the agent logs a conversation");
    let agent = client(&url, AGENT_TOKEN)?;
    let indices = agent_conversation(&agent).await?;

    println!("\n== 2. the auditor proves every record and payload");
    let auditor = client(&url, AUDITOR_TOKEN)?;
    audit(&auditor, &log_key, &indices, true).await?;
    // The auditor trusts the checkpoint it proved the records against (trust on first use of
    // the pinned key); every later one must be consistent with it.
    let mut verifying = VerifyingClient::new(
        auditor.clone(),
        LogVerifier::new(ORIGIN, log_key.clone()),
        None,
        ProofSource::Tiles,
    );
    let (before, _) = verifying.update().await?;

    println!("\n== 3. the privacy officer erases the patient's data");
    let officer = client(&url, PRIVACY_TOKEN)?;
    let erased = officer
        .erase(
            &Erasure::Subject(PATIENT.into()),
            "GDPR Art. 17 request #1184",
        )
        .await?;
    println!(
        "erased: {} records' payloads, {} data key(s); erasure record #{}",
        erased.records_affected, erased.keys_destroyed, erased.erasure_index
    );
    let message_index = *indices.get(1).ok_or("the conversation has no message")?;
    match auditor.payload(message_index, "prompt").await {
        Err(ClientError::Api {
            status,
            code,
            message,
            ..
        }) if status == 410 && code == "payload_erased" => {
            println!("payload of record #{message_index}: 410 {message}");
            if !message.contains(&erased.erasure_index.to_string()) {
                return Err(format!(
                    "the 410 does not name erasure record {}",
                    erased.erasure_index
                )
                .into());
            }
        }
        other => return Err(format!("an erased payload was still served: {other:?}").into()),
    }
    wait_for_size(&auditor, &log_key, erased.erasure_index + 1).await?;
    audit(&auditor, &log_key, &indices, false).await?;
    let erasure = verified_record(&auditor, erased.erasure_index, &log_key, None).await?;
    println!(
        "erasure record #{}: action {}, target {}, by {}",
        erasure.index,
        erasure.record["action"],
        erasure.record["details"]["target"],
        erasure.record["submitted_by"]
    );

    // The checkpoint after the erasure is consistent with the one the auditor held before.
    let (after, update) = verifying.update().await?;
    println!(
        "checkpoint {} is consistent with checkpoint {} from before the erasure ({update:?})",
        after.tree.size, before.tree.size
    );

    // A monitor replays the whole log from its entries and hash tiles.
    let cache = dir.path().join("monitor-cache");
    let mut monitor = Monitor::new(
        auditor.clone(),
        LogVerifier::new(ORIGIN, log_key.clone()),
        None,
        MonitorOptions::new(&cache),
    )?;
    let report = monitor.run_once(&mut |_, _| {}).await?;
    println!(
        "monitor: replayed {} entries; the rebuilt tree matches checkpoint {}",
        report.entries_verified, report.checkpoint.tree.size
    );

    println!("\n== 4. who read the audit trail");
    // Every read above appended a `data_accessed` record naming its reader; the auditor
    // queries them, each proven and checked against the query.
    let filter = veritrail_records::Filter {
        actions: vec!["data_accessed".into()],
        resource_type: Some("audit_log".into()),
        ..veritrail_records::Filter::default()
    };
    let mut attempts = 0;
    let reads = loop {
        match verified_query(&auditor, &filter, &log_key, None, &mut |_, _| {}).await {
            Err(ClientError::Api { code, .. }) if code == "index_catching_up" && attempts < 500 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => break other?,
        }
    };
    let mut by_reader = std::collections::BTreeMap::<String, usize>::new();
    for read in &reads.records {
        let who = read.record["actor"]["id"]
            .as_str()
            .unwrap_or("-")
            .to_owned();
        *by_reader.entry(who).or_default() += 1;
    }
    for (who, count) in &by_reader {
        println!("{who} read the audit trail {count} times (each read proven in the log)");
    }
    if by_reader.get("auditor").is_none_or(|n| *n == 0) {
        return Err("the auditor's reads were not recorded".into());
    }

    let _ = stop.send(());
    running.await??;
    println!("\nall checks passed");
    Ok(())
}

/// The running server's task: it ends once a final checkpoint is published.
type Running = tokio::task::JoinHandle<std::io::Result<()>>;

/// Starts the server on a free loopback port. Returns its task, the sender that stops it, its
/// URL and its verifier key.
async fn start_server(
    dir: &std::path::Path,
) -> Result<(
    Running,
    tokio::sync::oneshot::Sender<()>,
    String,
    NoteVerifier,
)> {
    let signer = NoteSigner::generate(KeyName::new(ORIGIN)?)?;
    let log_key = signer.verifier();
    let ledger = Arc::new(Ledger::open(
        store::open(Backend::Redb, &dir.join("data"))?,
        ORIGIN,
        signer,
    )?);
    let registry = dir.join("classification.toml");
    std::fs::write(&registry, REGISTRY)?;
    let tokens = TokenFile {
        token: vec![
            token_entry("triage-agent", AGENT_TOKEN, vec![Role::Append]),
            token_entry("auditor", AUDITOR_TOKEN, vec![Role::Audit]),
            token_entry("privacy-officer", PRIVACY_TOKEN, vec![Role::Admin]),
        ],
        oidc: None,
    };
    let config = ServerConfig {
        publish: PublishConfig {
            interval: Duration::from_millis(10),
            republish: Duration::from_secs(10),
        },
        records: RecordsConfig {
            payload_dir: Some(dir.join("data")),
            index_dir: Some(dir.join("data")),
            classification: Some(registry),
            ..RecordsConfig::default()
        },
        ..ServerConfig::default()
    };
    let auth = Auth::from_file(&tokens, dir, false)?;
    let server = Server::start(ledger, config, auth)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.serve(listener, async move {
        let _ = stopped.await;
    }));
    println!("log {ORIGIN} at {url}, verifier key {log_key}\n");
    Ok((running, stop, url, log_key))
}

fn client(url: &str, token: &str) -> Result<LogClient> {
    Ok(LogClient::new(&ClientConfig::new(url).with_token(token))?)
}

/// The agent's side: one conversation, each record durable and published before the next.
async fn agent_conversation(agent: &LogClient) -> Result<Vec<u64>> {
    let events = vec![
        Event::agent(Action::ConversationStarted, "triage-bot")
            .conversation(CONVERSATION)
            .subject(PATIENT)
            .agent_software("triage", "2.3.1"),
        Event::user(Action::UserMessageReceived, "portal-user-88")
            .conversation(CONVERSATION)
            .subject(PATIENT)
            // Metadata an integrator carelessly filled: the server scrubs it.
            .detail("reply_to", "jane.doe@example.com")
            .detail("note", "patient MRN 00412345 via web portal")
            // The message itself is PHI: committed in the leaf, stored encrypted off the tree.
            .text_payload(
                "prompt",
                "I'm Jane Doe, DOB 1984-02-11. Chest pain since this morning, I take warfarin.",
            ),
        Event::agent(Action::ToolInvoked, "triage-bot")
            .conversation(CONVERSATION)
            .subject(PATIENT)
            .tool("ehr.read_patient", "call-1")
            .resource("patient_record", "P-7000")
            .text_payload_as("tool_arguments", "application/json", r#"{"patient":"P-7000","fields":["medications","allergies"]}"#),
        Event::agent(Action::CodeExecuted, "triage-bot")
            .conversation(CONVERSATION)
            .subject(PATIENT)
            .tool("sandbox.python", "call-2")
            .text_payload_as(
                "code",
                "text/x-python",
                "risk = 0.4 * on_anticoagulant + 0.6 * chest_pain\nprint(round(risk, 2))",
            ),
        Event::agent(Action::AgentResponseGenerated, "triage-bot")
            .conversation(CONVERSATION)
            .subject(PATIENT)
            .model("anthropic", "claude-sonnet-4")
            .usage(812, 96)
            .text_payload(
                "response",
                "Chest pain while on warfarin needs urgent care: please call emergency services now.",
            ),
        Event::agent(Action::ConversationEnded, "triage-bot")
            .conversation(CONVERSATION)
            .subject(PATIENT),
    ];
    let mut indices = Vec::new();
    for event in events {
        let event = event.build()?;
        let options = AppendOptions::with_random_key(true)?;
        let recorded = agent.append_events(&[event], &options).await?;
        let record = &recorded[0].record;
        println!(
            "#{:<2} {:<26} classification={:<12} compliance={:<10} scrubbed={} payloads={}",
            recorded[0].index,
            record["action"].as_str().unwrap_or_default(),
            record["classification"].as_str().unwrap_or("-"),
            record
                .get("compliance")
                .map_or("-".into(), |c| c.to_string()),
            record.get("scrubbed").map_or("-".into(), |s| s.to_string()),
            record
                .get("payloads")
                .and_then(|p| p.as_object())
                .map_or("-".into(), |p| p
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(",")),
        );
        indices.push(recorded[0].index);
    }
    Ok(indices)
}

/// The auditor's side: every record proven against a checkpoint signed by `log_key`, the
/// chain complete, every payload opened against its proven commitment (while `payloads`).
async fn audit(
    auditor: &LogClient,
    log_key: &NoteVerifier,
    indices: &[u64],
    payloads: bool,
) -> Result<()> {
    let mut leaves = Vec::new();
    for &index in indices {
        let record = verified_record(auditor, index, log_key, None).await?;
        let leaf_text = String::from_utf8_lossy(&record.leaf).into_owned();
        for secret in ["jane.doe@example.com", "00412345", "warfarin", "Jane Doe"] {
            if leaf_text.contains(secret) {
                return Err(format!("record {index} holds {secret:?} in the tree").into());
            }
        }
        let names = record.record.get("payloads").and_then(|p| p.as_object());
        if let (true, Some(names)) = (payloads, names) {
            for name in names.keys() {
                let payload = verified_payload(auditor, index, name, log_key, None).await?;
                println!(
                    "#{index} payload {name:?} opens its commitment: {} bytes of {}",
                    payload.payload.len(),
                    payload.media_type
                );
            }
        }
        leaves.push((index, record.leaf));
    }
    let chain: Vec<(u64, &[u8])> = leaves.iter().map(|(i, l)| (*i, l.as_slice())).collect();
    let proven = verify_chain(&chain)?;
    println!(
        "{} records proven in the log; the chain of {CONVERSATION} is complete and {} (last leaf {})",
        proven.indices.len(),
        if proven.ended { "closed" } else { "open" },
        leaf_hash(&leaves.last().map(|(_, l)| l.clone()).unwrap_or_default())
    );
    Ok(())
}

/// Waits until the published checkpoint covers `size` entries.
async fn wait_for_size(client: &LogClient, log_key: &NoteVerifier, size: u64) -> Result<()> {
    let verifier = LogVerifier::new(ORIGIN, log_key.clone());
    for _ in 0..500 {
        let note = client.checkpoint().await?;
        if verifier.check(&note)?.tree.size >= size {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(format!("no checkpoint of size {size} within 5 s").into())
}
