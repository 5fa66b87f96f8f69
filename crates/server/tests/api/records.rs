//! Agent records over the API: validation answers, attested and canonical records whose
//! proofs verify, conversation chains under concurrency, closed conversations, and raw entries
//! that may not pose as records.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{Value, json};
use veritrail_ledger::checkpoint::Checkpoint;
use veritrail_ledger::note::Note;
use veritrail_ledger::proof::verify_inclusion;
use veritrail_ledger::{Hash, leaf_hash};
use veritrail_records::{Prev, leaf_of};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::{APPEND_TOKEN, AUDIT_TOKEN, READ_TOKEN, TestServer, fast_config, token_policy};

fn event(conversation: &str, action: &str, n: usize) -> Value {
    json!({
        "timestamp": "2026-03-01T12:00:00Z",
        "action": action,
        "actor": {"id": format!("agent-{n}"), "type": "agent"},
        "conversation_id": conversation,
        "details": {"step": n}
    })
}

async fn post(server: &TestServer, body: &Value, token: &str, query: &str) -> crate::Reply {
    let bearer = format!("Bearer {token}");
    server
        .post_with(
            &format!("/v1/records{query}"),
            "application/json",
            &[("authorization", bearer.as_bytes())],
            serde_json::to_vec(body).unwrap(),
        )
        .await
}

/// `GET /v1/records/<index>` as the auditor, checked like a client: the leaf recomputed from
/// the JSON hashes to the served leaf hash, and the proof verifies against the checkpoint.
async fn fetch_verified(server: &TestServer, index: u64) -> Value {
    let auditor = format!("Bearer {AUDIT_TOKEN}");
    let reply = server
        .get_as(&format!("/v1/records/{index}"), Some(&auditor))
        .await
        .ok("GET record");
    let body = reply.json();
    let record = body["record"].clone();
    let leaf = leaf_of(&record).unwrap();
    let hash = leaf_hash(&leaf);
    assert_eq!(hash.to_base64(), body["leaf_hash"].as_str().unwrap());
    let note = Note::from_bytes(body["checkpoint"].as_str().unwrap().as_bytes()).unwrap();
    let checkpoint = Checkpoint::from_text(note.text()).unwrap();
    assert_eq!(checkpoint.tree.size, body["size"].as_u64().unwrap());
    let proof: Vec<Hash> = body["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::from_base64(h.as_str().unwrap()).unwrap())
        .collect();
    verify_inclusion(&hash, index, &checkpoint.tree, &proof).expect("the inclusion proof verifies");
    record
}

#[tokio::test]
async fn a_record_is_attested_canonical_and_provable() {
    let server = TestServer::start(token_policy(false), fast_config(), 3).await;
    let reply = post(
        &server,
        &event("c-1", "conversation_started", 0),
        APPEND_TOKEN,
        "?wait=published",
    )
    .await
    .ok("append");
    let body = reply.json();
    let appended = &body["records"][0];
    assert_eq!(appended["index"], 3);
    assert!(
        appended["receipt"]
            .as_str()
            .unwrap()
            .starts_with("c2sp.org/tlog-proof@v1")
    );
    let id = appended["id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);

    let record = fetch_verified(&server, 3).await;
    assert_eq!(record["id"], id);
    assert_eq!(
        record["submitted_by"],
        json!({"type": "token", "name": "writer"})
    );
    assert_eq!(record["prev"], Value::Null);
    assert_eq!(record["action"], "conversation_started");
    let nonce = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        record["nonce"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(nonce.len(), 16, "128 bits of server randomness");
    assert!(record["received_at"].as_str().unwrap().ends_with('Z'));
    // The stored leaf is exactly the canonical encoding of that JSON.
    assert_eq!(server.ledger.entry(3).unwrap(), leaf_of(&record).unwrap());

    // The same event again is another record: no two records share a leaf.
    let again = post(
        &server,
        &event("c-2", "conversation_started", 0),
        APPEND_TOKEN,
        "",
    )
    .await
    .ok("append again")
    .json();
    assert_ne!(again["records"][0]["leaf_hash"], appended["leaf_hash"]);

    // Reading records needs the audit role; a raw entry is not a record.
    let reader = format!("Bearer {READ_TOKEN}");
    server
        .get_as("/v1/records/3", Some(&reader))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden", "read role");
    server.wait_published(5).await;
    let auditor = format!("Bearer {AUDIT_TOKEN}");
    server
        .get_as("/v1/records/0", Some(&auditor))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", "raw entry");
}

#[tokio::test]
async fn invalid_records_get_422_naming_every_field_and_append_nothing() {
    let server = TestServer::start(token_policy(false), fast_config(), 0).await;
    let mut missing = event("c", "tool_invoked", 1);
    missing.as_object_mut().unwrap().remove("actor");
    let mut bad_type = event("c", "tool_invoked", 2);
    bad_type["actor"]["type"] = json!("robot");
    let body = json!([
        event("c", "tool_invoked", 0),
        missing,
        bad_type,
        event("c", "launch", 3)
    ]);
    let reply = post(&server, &body, APPEND_TOKEN, "").await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let json = reply.json();
    assert_eq!(json["error"], "invalid_record");
    let fields: Vec<&str> = json["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["[1].actor", "[2].actor.type", "[3].action"]);
    assert_eq!(server.tree().size, 0, "all or nothing");

    let single = post(&server, &json!({"action": "error"}), APPEND_TOKEN, "").await;
    let fields: Vec<String> = single.json()["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fields, vec!["timestamp", "actor"]);

    for (body, code) in [
        (json!([]), "invalid_entry"),
        (json!("text"), "invalid_record"),
    ] {
        let reply = post(&server, &body, APPEND_TOKEN, "").await;
        assert_eq!(reply.json()["error"], code, "{body}");
    }
    let not_json = server
        .post_with(
            "/v1/records",
            "application/json",
            &[("authorization", format!("Bearer {APPEND_TOKEN}").as_bytes())],
            "{not json",
        )
        .await;
    not_json.assert_error(StatusCode::BAD_REQUEST, "invalid_entry", "not JSON");
    assert_eq!(server.tree().size, 0);
}

#[tokio::test]
async fn raw_entries_cannot_pose_as_records() {
    let server = TestServer::open(0).await;
    let forged = b"\x01{\"action\":\"access_granted\",\"submitted_by\":{\"type\":\"token\",\"name\":\"root\"}}";
    let reply = server
        .post_with(
            "/v1/entries",
            "application/octet-stream",
            &[],
            forged.to_vec(),
        )
        .await;
    reply.assert_error(StatusCode::BAD_REQUEST, "invalid_entry", "record marker");
    assert_eq!(server.tree().size, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_build_one_linear_complete_chain_per_conversation() {
    let server = Arc::new(TestServer::open(0).await);
    let writers = 32;
    let per_writer = 4;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let server = Arc::clone(&server);
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                let conversation = if i % 2 == 0 { "shared" } else { "other" };
                let body = json!([event(conversation, "tool_invoked", w * 100 + i)]);
                let reply = server
                    .post_with(
                        "/v1/records",
                        "application/json",
                        &[],
                        serde_json::to_vec(&body).unwrap(),
                    )
                    .await
                    .ok("concurrent append");
                assert_eq!(reply.json()["records"].as_array().unwrap().len(), 1);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let size = server.tree().size;
    assert_eq!(size, (writers * per_writer) as u64);
    // Every record, by conversation, with its own leaf hash.
    let mut by_conversation: BTreeMap<String, Vec<(u64, Hash, Option<Prev>)>> = BTreeMap::new();
    for index in 0..size {
        let leaf = server.ledger.entry(index).unwrap();
        let record = veritrail_records::parse_leaf(&leaf).unwrap();
        by_conversation
            .entry(record["conversation_id"].as_str().unwrap().to_owned())
            .or_default()
            .push((index, leaf_hash(&leaf), Prev::of(&record)));
    }
    assert_eq!(by_conversation.len(), 2);
    // The auditor's check over the shared conversation: complete as served, and a lying
    // server that withholds one record from the middle is caught.
    let shared: Vec<(u64, Vec<u8>)> = by_conversation["shared"]
        .iter()
        .map(|(index, _, _)| (*index, server.ledger.entry(*index).unwrap()))
        .collect();
    let refs: Vec<(u64, &[u8])> = shared.iter().map(|(i, l)| (*i, l.as_slice())).collect();
    let chain = veritrail_records::verify_chain(&refs).unwrap();
    assert_eq!(chain.indices.len(), writers * per_writer / 2);
    let mut lying = shared.clone();
    lying.remove(lying.len() / 2);
    let refs: Vec<(u64, &[u8])> = lying.iter().map(|(i, l)| (*i, l.as_slice())).collect();
    assert!(matches!(
        veritrail_records::verify_chain(&refs),
        Err(veritrail_records::ChainError::BrokenLink { .. })
    ));
    for (conversation, records) in by_conversation {
        // Each record links to the one before it in index order; the first to nothing.
        assert_eq!(records[0].2, None, "{conversation}: the first has no prev");
        for pair in records.windows(2) {
            let (prev_index, prev_hash, _) = pair[0];
            let (_, _, link) = pair[1];
            assert_eq!(
                link,
                Some(Prev {
                    index: prev_index,
                    leaf_hash: prev_hash
                }),
                "{conversation}: one linear chain"
            );
        }
    }
}

#[tokio::test]
async fn an_ended_conversation_takes_no_more_records() {
    let server = TestServer::open(0).await;
    let body = json!([
        event("c-9", "conversation_started", 0),
        event("c-9", "conversation_ended", 1)
    ]);
    server
        .post_with(
            "/v1/records",
            "application/json",
            &[],
            serde_json::to_vec(&body).unwrap(),
        )
        .await
        .ok("start and end");
    for late in [
        json!(event("c-9", "tool_invoked", 2)),
        json!([
            event("c-10", "conversation_started", 0),
            event("c-9", "tool_invoked", 3)
        ]),
    ] {
        let reply = server
            .post_with(
                "/v1/records",
                "application/json",
                &[],
                serde_json::to_vec(&late).unwrap(),
            )
            .await;
        reply.assert_error(StatusCode::CONFLICT, "conversation_closed", "late record");
    }
    assert_eq!(server.tree().size, 2, "a refused request appends nothing");
    // Nor does an OTLP request whose span records it, with the spans it keeps as raw entries.
    let mut config = crate::fast_config();
    config.records.otlp_keep_other_spans = true;
    let keeping = TestServer::start(veritrail_server::auth::Auth::disabled(), config, 0).await;
    for body in [&body, &json!(event("c-11", "conversation_started", 0))] {
        keeping
            .post_with(
                "/v1/records",
                "application/json",
                &[],
                serde_json::to_vec(body).unwrap(),
            )
            .await
            .ok("records before the spans");
    }
    let size = keeping.tree().size;
    let otlp = |conversation: &str| {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
        use prost::Message as _;
        let text = |key: &str, value: &str| KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
            ..KeyValue::default()
        };
        let spans = vec![
            Span {
                name: "GET /x".into(),
                ..Span::default()
            },
            Span {
                name: "chat".into(),
                attributes: vec![
                    text("gen_ai.operation.name", "chat"),
                    text("gen_ai.conversation.id", conversation),
                ],
                ..Span::default()
            },
        ];
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
        .encode_to_vec()
    };
    keeping
        .post_with("/v1/traces", "application/x-protobuf", &[], otlp("c-9"))
        .await
        .assert_error(StatusCode::CONFLICT, "conversation_closed", "late span");
    assert_eq!(keeping.tree().size, size, "not even the kept span");
    keeping
        .post_with("/v1/traces", "application/x-protobuf", &[], otlp("c-11"))
        .await
        .ok("spans of an open conversation");
    assert_eq!(
        keeping.tree().size,
        size + 2,
        "the kept span and the record"
    );
    // Other conversations go on.
    server
        .post_with(
            "/v1/records",
            "application/json",
            &[],
            serde_json::to_vec(&event("c-10", "conversation_started", 0)).unwrap(),
        )
        .await
        .ok("another conversation");
}

#[tokio::test]
async fn the_event_schema_is_served_publicly() {
    let server = TestServer::start(token_policy(false), fast_config(), 0).await;
    let reply = server.get("/v1/schema/event.json").await.ok("schema");
    assert_eq!(
        reply.headers["content-type"].to_str().unwrap(),
        "application/schema+json"
    );
    assert_eq!(reply.body, veritrail_records::EVENT_SCHEMA.as_bytes());
    assert_eq!(
        reply.json()["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
}

/// Secrets that must never reach the tree.
const SECRETS: [&str; 6] = [
    "jane.doe@example.com",
    "123-45-6789",
    "hunter2hunter2",
    "AKIAIOSFODNN7EXAMPLE",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "MRN 7654321",
];

fn leaky_event() -> Value {
    json!({
        "timestamp": "2026-03-01T12:00:00Z",
        "action": "data_accessed",
        "actor": {"id": "triage", "type": "agent"},
        "resource": {"type": "db", "id": "ehr", "uri": "postgres://svc:hunter2hunter2@db/ehr"},
        "details": {
            "note": format!("patient {} ssn {} {}", SECRETS[0], SECRETS[1], SECRETS[5]),
            "env": {"AWS_ACCESS_KEY_ID": SECRETS[3]},
            "headers": [format!("Authorization: Bearer {}", SECRETS[4])]
        }
    })
}

#[tokio::test]
async fn secrets_in_metadata_are_redacted_and_never_reach_the_tree() {
    let server = TestServer::open(0).await;
    server
        .post_with(
            "/v1/records",
            "application/json",
            &[],
            serde_json::to_vec(&leaky_event()).unwrap(),
        )
        .await
        .ok("append");
    let leaf = server.ledger.entry(0).unwrap();
    let record = veritrail_records::parse_leaf(&leaf).unwrap();
    let scrubbed: Vec<&str> = record["scrubbed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(
        scrubbed,
        vec!["cloud_key", "email", "jwt", "mrn", "ssn", "url_password"]
    );
    assert!(
        record["details"]["note"]
            .as_str()
            .unwrap()
            .contains("[REDACTED:email]")
    );
    // Scan every stored bundle (what the tree commits to) for each secret.
    let size = server.tree().size;
    for bundle in 0..size.div_ceil(256) {
        let width = veritrail_ledger::tile::entry_bundle_width(bundle, size).unwrap();
        let bytes = server.ledger.entry_bundle(bundle, width).unwrap();
        for secret in SECRETS {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} reached bundle {bundle}"
            );
        }
    }
}

#[tokio::test]
async fn reject_mode_refuses_a_record_with_secrets_naming_the_fields() {
    let mut config = fast_config();
    config.records.scrub = veritrail_server::ScrubMode::Reject;
    let server = TestServer::start(veritrail_server::auth::Auth::disabled(), config, 0).await;
    let reply = server
        .post_with(
            "/v1/records",
            "application/json",
            &[],
            serde_json::to_vec(&leaky_event()).unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let json = reply.json();
    let fields: std::collections::BTreeSet<&str> = json["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains("details.note"), "{fields:?}");
    assert!(fields.contains("resource.uri"), "{fields:?}");
    assert!(
        fields.contains("details.env.AWS_ACCESS_KEY_ID"),
        "{fields:?}"
    );
    assert_eq!(server.tree().size, 0);
}

/// Every file under `dir`, recursively.
fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn payloads_stay_off_the_tree_open_against_the_proven_leaf_and_erasure_keeps_proofs() {
    use veritrail_records::payload::opens;
    let payload_dir = tempfile::tempdir().unwrap();
    let mut config = fast_config();
    config.records.payload_dir = Some(payload_dir.path().to_owned());
    // The indices below are the test's own appends: reads are not audited here (that is
    // `queries::every_read_appends_exactly_one_access_record_naming_the_reader`).
    config.records.audit_reads = false;
    let server = TestServer::start(token_policy(false), config, 0).await;
    let secret = "Do my results show HIV? My SSN is 123-45-6789.";
    let mut with_payload = event("c-1", "user_message_received", 0);
    with_payload["subject"] = json!("P-0042");
    with_payload["payloads"] = json!({
        "prompt": {"media_type": "text/plain; charset=utf-8", "text": secret},
        "scan": {"media_type": "image/png", "base64": "iVBORw0KGgo="}
    });
    let body = json!([with_payload, event("c-1", "agent_response_generated", 1)]);
    post(&server, &body, APPEND_TOKEN, "?wait=published")
        .await
        .ok("append with payloads");

    // The leaf holds the commitment, never the payload.
    let record = fetch_verified(&server, 0).await;
    let prompt = &record["payloads"]["prompt"];
    assert_eq!(prompt["media_type"], "text/plain; charset=utf-8");
    assert_eq!(prompt["size"], secret.len());
    let leaf = server.ledger.entry(0).unwrap();
    assert!(!leaf.windows(12).any(|w| w == &secret.as_bytes()[..12]));
    let commitment = STANDARD
        .decode(prompt["commitment"].as_str().unwrap())
        .unwrap();

    // The auditor opens it against the proven leaf; a changed payload or key does not open.
    let auditor = format!("Bearer {AUDIT_TOKEN}");
    let opened = server
        .get_as("/v1/records/0/payloads/prompt", Some(&auditor))
        .await
        .ok("payload")
        .json();
    let payload = STANDARD
        .decode(opened["payload"].as_str().unwrap())
        .unwrap();
    let key = STANDARD
        .decode(opened["opening_key"].as_str().unwrap())
        .unwrap();
    assert_eq!(payload, secret.as_bytes());
    assert!(opens(&commitment, &key, &payload));
    assert!(!opens(&commitment, &key, b"Do my results show HIV? No."));
    let mut other_key = key.clone();
    other_key[0] ^= 1;
    assert!(!opens(&commitment, &other_key, &payload));
    let reader = format!("Bearer {READ_TOKEN}");
    server
        .get_as("/v1/records/0/payloads/prompt", Some(&reader))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden", "read role");
    server
        .get_as("/v1/records/1/payloads/prompt", Some(&auditor))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", "no payload");

    // The master key is nowhere but its own file: not in the tree, not in any other file.
    let master = std::fs::read_to_string(payload_dir.path().join("payload-master.key")).unwrap();
    let master = master.trim();
    let master_raw = STANDARD.decode(master).unwrap();
    for file in files(payload_dir.path()) {
        if file.ends_with("payload-master.key") {
            continue;
        }
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(32).any(|w| w == master_raw.as_slice()),
            "{}",
            file.display()
        );
        assert!(
            !String::from_utf8_lossy(&bytes).contains(master),
            "{}",
            file.display()
        );
        assert!(
            !bytes.windows(12).any(|w| w == &secret.as_bytes()[..12]),
            "{}",
            file.display()
        );
    }
    let bundle = server.ledger.entry_bundle(0, 2).unwrap();
    assert!(!String::from_utf8_lossy(&bundle).contains(master));
    let segment = payload_dir.path().join("payloads/segments/00000000.seg");
    let sealed = std::fs::read(&segment).unwrap();
    assert!(sealed.len() > 2 * 40, "two sealed payloads");

    // Erasure: recorded in the log, then the key and the files are gone; proofs still hold.
    let admin = format!("Bearer {}", crate::ADMIN_TOKEN);
    let erased = server
        .post_with(
            "/v1/admin/erase",
            "application/json",
            &[("authorization", admin.as_bytes())],
            serde_json::to_vec(
                &json!({"subject": "P-0042", "reason": "GDPR art. 17 request 2026-114"}),
            )
            .unwrap(),
        )
        .await
        .ok("erase")
        .json();
    let erasure_index = erased["erasure_index"].as_u64().unwrap();
    assert_eq!(erasure_index, 2);
    assert_eq!(erased["records_affected"], 1);
    assert_eq!(erased["keys_destroyed"], 1);
    let message = server
        .get_as("/v1/records/0/payloads/prompt", Some(&auditor))
        .await
        .assert_error(StatusCode::GONE, "payload_erased", "after erasure");
    assert!(
        message.contains(&format!("index {erasure_index}")),
        "{message}"
    );
    server.wait_published(3).await;
    let record_after = fetch_verified(&server, 0).await;
    assert_eq!(
        record_after, record,
        "the record and its proof are untouched"
    );
    let erasure = fetch_verified(&server, erasure_index).await;
    assert_eq!(erasure["action"], "x-veritrail.erasure");
    assert_eq!(erasure["submitted_by"]["name"], "operator");
    assert!(
        !erasure.to_string().contains("P-0042"),
        "the subject is named by its key id only"
    );
    // The ciphertexts were overwritten in place: no file holds any 32 bytes of them.
    let after = std::fs::read(&segment).unwrap();
    assert_eq!(after.len(), sealed.len());
    assert!(
        after.iter().all(|b| *b == 0),
        "every payload of the subject is zeroed"
    );
    for file in files(payload_dir.path()) {
        let now = std::fs::read(&file).unwrap();
        for window in sealed.chunks_exact(32) {
            assert!(
                !now.windows(32).any(|w| w == window),
                "{} still holds erased bytes",
                file.display()
            );
        }
    }
    // The whole log still verifies as a monitor would: every entry against the signed root.
    let audit = server.ledger.audit().unwrap();
    assert_eq!(audit.entries, 3);
}

/// Appends one record of `conversation` and returns its index and its link.
async fn append_linked(server: &TestServer, conversation: &str) -> (u64, Option<Prev>) {
    let reply = server
        .post_with(
            "/v1/records",
            "application/json",
            &[],
            serde_json::to_vec(&event(conversation, "tool_invoked", 0)).unwrap(),
        )
        .await
        .ok("append a record");
    let index = reply.json()["records"][0]["index"].as_u64().unwrap();
    let record = veritrail_records::parse_leaf(&server.ledger.entry(index).unwrap()).unwrap();
    (index, Prev::of(&record))
}

/// The link to the record at `index`.
fn link_to(server: &TestServer, index: u64) -> Option<Prev> {
    Some(Prev {
        index,
        leaf_hash: leaf_hash(&server.ledger.entry(index).unwrap()),
    })
}

#[tokio::test]
async fn conversation_heads_saved_at_shutdown_are_used_only_when_they_describe_this_log() {
    const KEY: &str = "chain-heads-snapshot";
    let server = TestServer::open(0).await;
    for conversation in ["c-a", "c-b", "c-a"] {
        append_linked(&server, conversation).await;
    }
    // A graceful restart saves the heads with the tree head; the next record links on.
    let server = server.restart(|_| {}).await;
    let saved = server.ledger.store().meta(KEY).unwrap().unwrap();
    let root = server.ledger.tree_head().root.to_base64();
    let text = String::from_utf8(saved.clone()).unwrap();
    assert!(
        text.starts_with(&format!("veritrail chain heads 3 {root}\n")),
        "{text}"
    );
    assert_eq!(
        append_linked(&server, "c-a").await,
        (3, link_to(&server, 2))
    );

    // Saved heads of a shorter log are used for its prefix, and the records after it read:
    // as after a crash that left the snapshot of an earlier shutdown.
    let ledger = server.ledger.clone();
    let server = server
        .restart(move |_| ledger.store().put_meta(KEY, &saved).unwrap())
        .await;
    assert_eq!(
        append_linked(&server, "c-a").await,
        (4, link_to(&server, 3))
    );
    assert_eq!(
        append_linked(&server, "c-b").await,
        (5, link_to(&server, 1))
    );

    // They are used: heads that say otherwise, under the right tree head, are followed
    // (which is why they are only read after the tree root at their size matched).
    let hash = leaf_hash(&server.ledger.entry(0).unwrap()).to_base64();
    let forged = move |size: u64, root: String| {
        format!("veritrail chain heads {size} {root}\n0 {hash} 0 c-b\n0 {hash} 0 c-a\n")
    };
    let size = server.tree().size;
    let good_root = forged(size, server.tree().root.to_base64());
    let ledger = server.ledger.clone();
    let server = server
        .restart(move |_| ledger.store().put_meta(KEY, good_root.as_bytes()).unwrap())
        .await;
    assert_eq!(
        append_linked(&server, "c-b").await,
        (6, link_to(&server, 0))
    );

    // Ignored, and the whole log read, when the root differs, the size is beyond the log, or
    // the text does not parse.
    let wrong = [
        (forged(7, Hash::default().to_base64()), 4),
        (forged(100, server.tree().root.to_base64()), 7),
        ("veritrail chain heads 7\n".to_owned(), 8),
    ];
    let mut server = server;
    for (round, (snapshot, head)) in wrong.into_iter().enumerate() {
        let ledger = server.ledger.clone();
        server = server
            .restart(move |_| ledger.store().put_meta(KEY, snapshot.as_bytes()).unwrap())
            .await;
        let size = server.tree().size;
        assert_eq!(
            append_linked(&server, "c-a").await,
            (size, link_to(&server, head)),
            "round {round}"
        );
    }
}
