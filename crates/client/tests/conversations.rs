//! Conversations proven complete, against a real server (in process, record indexes on) and
//! a lying proxy in front of it that drops a record from the middle, drops the last record,
//! serves a stale head statement or one signed by another key: each lie gets its typed error.
//! A later record of the conversation refutes the stale statement offline.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use veritrail_client::event::Event;
use veritrail_client::records::{verified_conversation, verified_query};
use veritrail_client::{AppendOptions, ClientConfig, ClientError, LogClient};
use veritrail_ledger::Ledger;
use veritrail_ledger::note::{KeyName, NoteSigner, NoteVerifier};
use veritrail_ledger::store::{self, Backend};
use veritrail_records::head::refutes;
use veritrail_records::{Action, ChainError, HeadError, HeadStatement};
use veritrail_server::auth::Auth;
use veritrail_server::config::{PublishConfig, RecordsConfig};
use veritrail_server::{Server, ServerConfig};

const ORIGIN: &str = "conversations.veritrail.example/log";
const DEADLINE: Duration = Duration::from_secs(30);
const CONVERSATION: &str = "triage-42";

/// What the proxy does to the honest page.
#[derive(Clone)]
enum Lie {
    Honest,
    DropMiddle,
    DropLast,
    /// Serve this head statement instead of the honest one (and only the records it names).
    StaleHead(String),
    /// Serve the head statement re-signed by another key.
    ForeignKey,
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    lie: Arc<Mutex<Lie>>,
    http: reqwest::Client,
}

impl Proxy {
    /// The real server's answer to `GET /<path_and_query>`.
    async fn honest(&self, path_and_query: &str) -> serde_json::Value {
        let url = format!("{}/{path_and_query}", self.upstream);
        let body = self
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        serde_json::from_slice(&body).unwrap()
    }
}

/// `GET /v1/records?...` through the proxy: with any lie but `Honest`, the answer's middle
/// record is left out.
async fn lying_query(
    State(proxy): State<Proxy>,
    RawQuery(query): RawQuery,
) -> axum::Json<serde_json::Value> {
    let mut page = proxy
        .honest(&format!("v1/records?{}", query.unwrap_or_default()))
        .await;
    if !matches!(*proxy.lie.lock().unwrap(), Lie::Honest) {
        let records = page["records"].as_array_mut().unwrap();
        records.remove(records.len() / 2);
    }
    axum::Json(page)
}

async fn lying_page(
    State(proxy): State<Proxy>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> axum::Json<serde_json::Value> {
    let mut page = proxy
        .honest(&format!(
            "v1/conversations/{id}?{}",
            query.unwrap_or_default()
        ))
        .await;
    let lie = proxy.lie.lock().unwrap().clone();
    let records = page["records"].as_array_mut().unwrap();
    match lie {
        Lie::Honest => {}
        Lie::DropMiddle => {
            records.remove(records.len() / 2);
        }
        Lie::DropLast => {
            records.pop();
        }
        Lie::StaleHead(statement) => {
            let head = HeadStatement::parse(
                veritrail_ledger::note::Note::from_bytes(statement.as_bytes())
                    .unwrap()
                    .text(),
            )
            .unwrap();
            let last = head.head.unwrap().index;
            records.retain(|r| r["index"].as_u64().unwrap() <= last);
            page["head"] = serde_json::Value::String(statement);
        }
        Lie::ForeignKey => {
            let note =
                veritrail_ledger::note::Note::from_bytes(page["head"].as_str().unwrap().as_bytes())
                    .unwrap();
            let other = NoteSigner::from_seed(KeyName::new(ORIGIN).unwrap(), [1; 32]);
            let mut forged = veritrail_ledger::note::Note::new(note.text()).unwrap();
            forged.add_signature(other.sign(forged.text())).unwrap();
            page["head"] = serde_json::Value::String(String::from_utf8(forged.to_bytes()).unwrap());
        }
    }
    axum::Json(page)
}

struct Setup {
    server: LogClient,
    proxy: LogClient,
    lie: Arc<Mutex<Lie>>,
    key: NoteVerifier,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let signer = NoteSigner::from_seed(KeyName::new(ORIGIN).unwrap(), [9; 32]);
    let key = signer.verifier();
    let ledger = Ledger::open(
        store::open(Backend::Redb, dir.path()).unwrap(),
        ORIGIN,
        signer,
    )
    .unwrap();
    let config = ServerConfig {
        publish: PublishConfig {
            interval: Duration::from_millis(5),
            republish: Duration::from_secs(10),
        },
        records: RecordsConfig {
            index_dir: Some(dir.path().to_owned()),
            ..RecordsConfig::default()
        },
        no_auth: true,
        ..ServerConfig::default()
    };
    let server = Server::start(Arc::new(ledger), config, Auth::disabled()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(listener, async move {
        let _ = stopped.await;
    }));
    let lie = Arc::new(Mutex::new(Lie::Honest));
    let proxy = Proxy {
        upstream: upstream.clone(),
        lie: lie.clone(),
        http: reqwest::Client::new(),
    };
    let app = axum::Router::new()
        .route("/v1/conversations/{id}", get(lying_page))
        .route("/v1/records", get(lying_query))
        .with_state(proxy);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxied = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Setup {
        server: LogClient::new(&ClientConfig::new(upstream)).unwrap(),
        proxy: LogClient::new(&ClientConfig::new(proxied)).unwrap(),
        lie,
        key,
        _stop: stop,
        _dir: dir,
    }
}

/// Appends `count` records of the conversation, each published.
async fn append(client: &LogClient, count: usize) {
    for n in 0..count {
        let event = Event::agent(Action::ToolInvoked, "triage-bot")
            .conversation(CONVERSATION)
            .detail("step", n)
            .build()
            .unwrap();
        client
            .append_events(&[event], &AppendOptions::with_random_key(true).unwrap())
            .await
            .unwrap();
    }
}

/// Verifies the conversation through `client`, retrying while the indexes catch up.
async fn verify(
    setup: &Setup,
    client: &LogClient,
) -> Result<veritrail_client::records::VerifiedConversation, ClientError> {
    let start = Instant::now();
    loop {
        match verified_conversation(client, CONVERSATION, &setup.key, None).await {
            Err(e)
                if e.to_string().contains("index_catching_up") || e.to_string().contains("503") =>
            {
                assert!(start.elapsed() < DEADLINE, "{e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => return other,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_is_proven_complete_and_every_lie_is_caught() {
    let setup = setup().await;
    append(&setup.server, 6).await;

    let honest = verify(&setup, &setup.server).await.unwrap();
    assert_eq!(honest.records.len(), 6);
    assert_eq!(
        honest.head.head.as_ref().unwrap().index,
        honest.records[5].index
    );
    let stale_note = String::from_utf8(honest.head_note.clone()).unwrap();
    assert!(
        verify(&setup, &setup.proxy).await.is_ok(),
        "the honest proxy"
    );

    *setup.lie.lock().unwrap() = Lie::DropMiddle;
    match verify(&setup, &setup.proxy).await {
        Err(ClientError::ConversationIncomplete { reason, .. }) => {
            assert!(
                matches!(*reason, ChainError::BrokenLink { .. }),
                "{reason:?}"
            );
        }
        other => panic!("a withheld middle record: {other:?}"),
    }

    *setup.lie.lock().unwrap() = Lie::DropLast;
    match verify(&setup, &setup.proxy).await {
        Err(ClientError::HeadMismatch { reason, .. }) => {
            assert!(
                matches!(&*reason, HeadError::Mismatch(m) if m.contains("head")),
                "{reason:?}"
            );
        }
        other => panic!("a withheld last record: {other:?}"),
    }

    *setup.lie.lock().unwrap() = Lie::ForeignKey;
    match verify(&setup, &setup.proxy).await {
        Err(ClientError::HeadMismatch { reason, .. })
            if matches!(*reason, HeadError::Signature(_)) => {}
        other => panic!("a head signed by another key: {other:?}"),
    }

    // Two more records; the proxy answers with the current checkpoint but the old head.
    append(&setup.server, 2).await;
    *setup.lie.lock().unwrap() = Lie::StaleHead(stale_note.clone());
    match verify(&setup, &setup.proxy).await {
        Err(ClientError::HeadMismatch { reason, .. }) => {
            assert!(
                matches!(&*reason, HeadError::Mismatch(m) if m.contains("stale")),
                "{reason:?}"
            );
        }
        other => panic!("a stale head: {other:?}"),
    }
    // The newer records refute the old statement, offline, with the log's key.
    let now = verify(&setup, &setup.server).await.unwrap();
    assert_eq!(now.records.len(), 8);
    let old = HeadStatement::verify(stale_note.as_bytes(), &setup.key).unwrap();
    let newer = &now.records[7];
    // Only a record below the statement's tree size refutes it: these came later.
    assert!(!refutes(&old, newer.index, &newer.record));
    let lying = HeadStatement {
        head: Some(veritrail_records::Prev {
            index: honest.records[4].index,
            leaf_hash: veritrail_ledger::leaf_hash(&honest.records[4].leaf),
        }),
        ..old.clone()
    };
    assert!(refutes(
        &lying,
        honest.records[5].index,
        &honest.records[5].record
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_left_out_of_a_query_is_caught_against_records_already_held() {
    let setup = setup().await;
    append(&setup.server, 5).await;
    let filter = veritrail_records::Filter {
        conversation_id: Some(CONVERSATION.into()),
        actions: vec!["tool_invoked".into()],
        ..veritrail_records::Filter::default()
    };
    let query = |client: &LogClient| {
        let (client, filter, key) = (client.clone(), filter.clone(), setup.key.clone());
        async move {
            let start = Instant::now();
            loop {
                match verified_query(&client, &filter, &key, None, &mut |_, _| {}).await {
                    Err(e) if e.api_code() == Some(veritrail_api::ErrorCode::IndexCatchingUp) => {
                        assert!(start.elapsed() < DEADLINE);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    other => return other,
                }
            }
        }
    };
    // The auditor holds these records proven (an earlier answer, receipts, a replay).
    let held = query(&setup.server).await.unwrap();
    assert_eq!(held.records.len(), 5);
    held.check_includes(&filter, &held.records).unwrap();
    // The proxy leaves the middle record out: every record it does serve verifies, but the
    // answer misses one the auditor holds.
    *setup.lie.lock().unwrap() = Lie::DropMiddle;
    let short = query(&setup.proxy).await.unwrap();
    assert_eq!(short.records.len(), 4);
    match short.check_includes(&filter, &held.records) {
        Err(ClientError::QueryIncomplete { missing }) => {
            assert_eq!(missing, held.records[2].index);
        }
        other => panic!("a record left out: {other:?}"),
    }
}
