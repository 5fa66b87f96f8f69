//! `GET /v1/records?...`: every answer equals a brute-force scan of the log — for random logs
//! (records of random fields between raw entries) and random filters, across pages with
//! appends in between — every record is proven against its page's checkpoint, and deleting or
//! damaging the index and restarting gives the same answers.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};
use veritrail_ledger::checkpoint::Checkpoint;
use veritrail_ledger::note::Note;
use veritrail_ledger::proof::verify_inclusion;
use veritrail_ledger::{Hash, Ledger, leaf_hash};
use veritrail_records::{Filter, is_record, leaf_of, parse_leaf};

use crate::{APPEND_TOKEN, AUDIT_TOKEN, DEADLINE, TestServer, fast_config, token_policy};

/// A small deterministic generator (xorshift64*), so a failure names its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
    fn maybe(&mut self) -> bool {
        self.below(3) > 0
    }
}

const CONVERSATIONS: [&str; 3] = ["c-0", "c-1", "c-2"];
const ACTIONS: [&str; 5] = [
    "tool_invoked",
    "data_accessed",
    "prompt_changed",
    "error",
    "x-acme.review",
];
const ACTORS: [&str; 3] = ["triage", "billing", "nurse-7"];
const AGENTS: [&str; 2] = ["triage-bot", "ledger-bot"];
const RESOURCE_TYPES: [&str; 2] = ["patient_record", "invoice"];
const RESOURCE_IDS: [&str; 3] = ["P-1", "P-2", "I-9"];
const CLASSIFICATIONS: [&str; 4] = ["public", "internal", "confidential", "restricted"];
const DOMAINS: [&str; 3] = ["hipaa", "soc2", "gdpr"];
const DAYS: [&str; 4] = ["01", "02", "03", "04"];

/// A time on a coarse grid (so filters often equal record times) that splits seconds: the
/// time index posts by the second, and a query must still honour the exact bounds.
fn random_time(rng: &mut Rng) -> String {
    format!(
        "2026-03-{}T1{}:00:0{}.{}Z",
        rng.pick(&DAYS),
        rng.below(4),
        rng.below(3),
        rng.below(2) * 5
    )
}

fn random_event(rng: &mut Rng) -> Value {
    let mut event = json!({
        "timestamp": random_time(rng),
        "action": rng.pick(&ACTIONS),
        "actor": {"id": rng.pick(&ACTORS), "type": "agent"},
    });
    if rng.maybe() {
        event["conversation_id"] = json!(rng.pick(&CONVERSATIONS));
    }
    if rng.maybe() {
        event["agent"] = json!({"name": rng.pick(&AGENTS)});
    }
    if rng.maybe() {
        event["resource"] =
            json!({"type": rng.pick(&RESOURCE_TYPES), "id": rng.pick(&RESOURCE_IDS)});
    }
    if rng.maybe() {
        event["classification"] = json!(rng.pick(&CLASSIFICATIONS));
    }
    let domains: Vec<&str> = DOMAINS
        .iter()
        .copied()
        .filter(|_| rng.below(3) == 0)
        .collect();
    if !domains.is_empty() {
        event["compliance"] = json!(domains);
    }
    event
}

fn random_filter(rng: &mut Rng) -> Vec<(&'static str, String)> {
    let mut pairs = Vec::new();
    for _ in 0..rng.below(3) + usize::from(rng.below(4) == 0) as u64 {
        let pair = match rng.below(11) {
            0 => ("conversation_id", rng.pick(&CONVERSATIONS).to_owned()),
            1 => ("actor_id", rng.pick(&ACTORS).to_owned()),
            2 => ("submitted_by", "writer".to_owned()),
            3 => ("agent", rng.pick(&AGENTS).to_owned()),
            4 | 5 => ("action", rng.pick(&ACTIONS).to_owned()),
            6 => ("resource_type", rng.pick(&RESOURCE_TYPES).to_owned()),
            7 => ("resource_id", rng.pick(&RESOURCE_IDS).to_owned()),
            8 => ("classification", rng.pick(&CLASSIFICATIONS).to_owned()),
            9 => ("compliance", rng.pick(&DOMAINS).to_owned()),
            _ => (
                if rng.below(2) == 0 { "since" } else { "until" },
                random_time(rng),
            ),
        };
        // A filter given twice is a 400; keep the first (actions may repeat).
        if pair.0 == "action" || !pairs.iter().any(|(n, _)| *n == pair.0) {
            pairs.push(pair);
        }
    }
    pairs
}

fn filter_of(pairs: &[(&str, String)]) -> Filter {
    let mut filter = Filter::default();
    for (name, value) in pairs {
        filter.add(name, value).unwrap();
    }
    filter
}

/// The matching records of the first `size` entries, by reading every one.
fn brute_force(ledger: &Ledger, filter: &Filter, size: u64) -> Vec<(u64, Value)> {
    (0..size)
        .filter_map(|i| {
            let leaf = ledger.entry(i).unwrap();
            is_record(&leaf).then(|| (i, parse_leaf(&leaf).unwrap()))
        })
        .filter(|(_, record)| filter.matches(record))
        .collect()
}

/// Appends `events` as records and waits until they are published.
async fn post_records(server: &TestServer, events: &[Value]) {
    let bearer = format!("Bearer {APPEND_TOKEN}");
    server
        .post_with(
            "/v1/records?wait=published",
            "application/json",
            &[("authorization", bearer.as_bytes())],
            serde_json::to_vec(events).unwrap(),
        )
        .await
        .ok("append records");
}

async fn append_records(server: &TestServer, rng: &mut Rng, count: u64) {
    let events: Vec<Value> = (0..count).map(|_| random_event(rng)).collect();
    post_records(server, &events).await;
    // A raw entry between the records: never a query result.
    let raw = server
        .append_one(format!("raw {}", rng.next()).as_bytes())
        .await;
    assert_eq!(
        raw.status,
        StatusCode::UNAUTHORIZED,
        "raw entries need a token"
    );
    let bearer = format!("Bearer {APPEND_TOKEN}");
    server
        .post_with(
            "/v1/entries",
            "application/octet-stream",
            &[("authorization", bearer.as_bytes())],
            format!("raw {}", rng.next()).into_bytes(),
        )
        .await
        .ok("append a raw entry");
}

/// One page, retried while the indexes catch up; every proof checked.
async fn page(server: &TestServer, pairs: &[(&str, String)], cursor: u64, limit: u64) -> Value {
    let mut query: Vec<String> = pairs
        .iter()
        .map(|(n, v)| format!("{n}={}", v.replace('+', "%2B").replace(':', "%3A")))
        .collect();
    query.push(format!("cursor={cursor}"));
    query.push(format!("limit={limit}"));
    let uri = format!("/v1/records?{}", query.join("&"));
    let auditor = format!("Bearer {AUDIT_TOKEN}");
    let deadline = Instant::now() + DEADLINE;
    let body = loop {
        let reply = server.get_as(&uri, Some(&auditor)).await;
        if reply.status == StatusCode::SERVICE_UNAVAILABLE && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        break reply.ok(&uri).json();
    };
    let note = Note::from_bytes(body["checkpoint"].as_str().unwrap().as_bytes()).unwrap();
    let checkpoint = Checkpoint::from_text(note.text()).unwrap();
    assert_eq!(checkpoint.tree.size, body["size"].as_u64().unwrap());
    for item in body["records"].as_array().unwrap() {
        let index = item["index"].as_u64().unwrap();
        let proof: Vec<Hash> = item["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| Hash::from_base64(h.as_str().unwrap()).unwrap())
            .collect();
        let leaf = leaf_of(&item["record"]).unwrap();
        verify_inclusion(&leaf_hash(&leaf), index, &checkpoint.tree, &proof)
            .unwrap_or_else(|e| panic!("{uri}: record {index} does not prove: {e}"));
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_results_equal_a_brute_force_scan_across_pages_and_appends() {
    let mut cases = 0;
    for seed in 1..=20u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let server = TestServer::start(token_policy(false), fast_config(), 0).await;
        for _ in 0..4 {
            let count = rng.below(12) + 1;
            append_records(&server, &mut rng, count).await;
        }
        for _ in 0..10 {
            let pairs = random_filter(&mut rng);
            let filter = filter_of(&pairs);
            let mut got: Vec<(u64, Value)> = Vec::new();
            let mut cursor = 0;
            let mut last_size = 0;
            let mut pages = 0;
            loop {
                let body = page(&server, &pairs, cursor, rng.below(6) + 1).await;
                last_size = last_size.max(body["size"].as_u64().unwrap());
                for item in body["records"].as_array().unwrap() {
                    got.push((item["index"].as_u64().unwrap(), item["record"].clone()));
                }
                pages += 1;
                // Appends between pages: later pages see a larger checkpoint.
                if pages == 1 {
                    append_records(&server, &mut rng, 3).await;
                }
                match body["next_cursor"].as_u64() {
                    Some(next) => cursor = next,
                    None => break,
                }
            }
            let want = brute_force(&server.ledger, &filter, last_size);
            assert_eq!(got, want, "seed {seed}, filter {pairs:?}");
            cases += 1;
        }
        server.stop().await;
    }
    assert_eq!(cases, 200);
}

/// The time index posts records by the second: bounds inside a second, on it, and just
/// around it must still select exactly `since <= timestamp < until`, in index order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_ranges_honour_exact_bounds_inside_a_second() {
    let server = TestServer::start(token_policy(false), fast_config(), 0).await;
    let times = [
        "2026-03-01T10:00:01.5Z",
        "2026-03-01T10:00:00Z",
        "2026-03-01T10:00:00.999999999Z",
        "2026-03-01T10:00:01Z",
        "2026-03-01T09:59:59.5Z",
        "2026-03-01T10:00:02Z",
        "2026-03-01T10:00:00.5Z",
    ];
    let events: Vec<Value> = times
        .iter()
        .map(|t| json!({"timestamp": t, "action": "error", "actor": {"id": "a", "type": "agent"}}))
        .collect();
    post_records(&server, &events).await;
    let bounds = [
        "2026-03-01T09:59:59.5Z",
        "2026-03-01T10:00:00Z",
        "2026-03-01T10:00:00.5Z",
        "2026-03-01T10:00:00.999999999Z",
        "2026-03-01T10:00:01Z",
        "2026-03-01T10:00:01.25Z",
        "2026-03-01T10:00:02Z",
        "2026-03-01T10:00:03Z",
    ];
    let mut checked = 0;
    for since in bounds.iter().map(Some).chain([None]) {
        for until in bounds.iter().map(Some).chain([None]) {
            let mut pairs = Vec::new();
            if let Some(since) = since {
                pairs.push(("since", (*since).to_owned()));
            }
            if let Some(until) = until {
                pairs.push(("until", (*until).to_owned()));
            }
            let body = page(&server, &pairs, 0, 100).await;
            let got: Vec<u64> = body["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["index"].as_u64().unwrap())
                .collect();
            let size = body["size"].as_u64().unwrap();
            let want: Vec<u64> = brute_force(&server.ledger, &filter_of(&pairs), size)
                .into_iter()
                .map(|(index, _)| index)
                .collect();
            assert_eq!(got, want, "{pairs:?}");
            checked += usize::from(!want.is_empty());
        }
    }
    // Most ranges are not empty: the comparison above is not between two empty lists.
    assert!(checked > 40, "{checked} non-empty ranges");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_query_parameters_name_themselves_and_change_nothing() {
    let server = TestServer::start(token_policy(false), fast_config(), 0).await;
    let auditor = format!("Bearer {AUDIT_TOKEN}");
    for (query, parameter) in [
        ("colour=red", "query"),
        ("action=dance", "action"),
        ("classification=secret", "classification"),
        ("since=yesterday", "since"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("cursor=01", "cursor"),
        ("agent=a&agent=b", "agent"),
        ("actor_id=", "actor_id"),
    ] {
        let reply = server
            .get_as(&format!("/v1/records?{query}"), Some(&auditor))
            .await;
        let message = reply.assert_error(StatusCode::BAD_REQUEST, "invalid_parameter", query);
        assert!(message.contains(parameter), "{query}: {message}");
    }
    // Queries need the audit role.
    let writer = format!("Bearer {APPEND_TOKEN}");
    server
        .get_as("/v1/records", Some(&writer))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden", "an appender");
    server.stop().await;
}

/// The records (index and record; proofs are checked by `page`, and change with the size) of
/// the first page (up to 1,000 records) of every filter.
async fn answers(server: &TestServer, filters: &[Vec<(&str, String)>]) -> Vec<Vec<(u64, Value)>> {
    let mut all = Vec::new();
    for pairs in filters {
        let body = page(server, pairs, 0, 1000).await;
        all.push(
            body["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| (r["index"].as_u64().unwrap(), r["record"].clone()))
                .collect(),
        );
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_or_damaged_index_is_rebuilt_with_the_same_answers() {
    let mut rng = Rng(77);
    let filters: Vec<Vec<(&str, String)>> = (0..12).map(|_| random_filter(&mut rng)).collect();
    // Without read auditing: the answers before and after must be of the same log.
    let mut config = fast_config();
    config.records.audit_reads = false;
    let server = TestServer::start(token_policy(false), config, 0).await;
    for _ in 0..5 {
        append_records(&server, &mut rng, 10).await;
    }
    let before = answers(&server, &filters).await;
    assert!(before.iter().any(|r| !r.is_empty()));
    let index = |dir: &std::path::Path| dir.join(veritrail_server::record_index::INDEX_FILE);
    // Deleted.
    let server = server
        .restart(|dir| std::fs::remove_file(index(dir)).unwrap())
        .await;
    assert_eq!(answers(&server, &filters).await, before, "after deletion");
    // A damaged header.
    let server = server
        .restart(|dir| {
            let mut bytes = std::fs::read(index(dir)).unwrap();
            bytes[..64].fill(0xA5);
            std::fs::write(index(dir), bytes).unwrap();
        })
        .await;
    assert_eq!(answers(&server, &filters).await, before, "after damage");
    // Cut in half.
    let server = server
        .restart(|dir| {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(index(dir))
                .unwrap();
            let len = file.metadata().unwrap().len();
            file.set_len(len / 2).unwrap();
        })
        .await;
    assert_eq!(answers(&server, &filters).await, before, "after truncation");
    server.stop().await;
}

/// Waits until the log holds at least `size` entries; then a moment more, so that an extra
/// record would show.
async fn settle(server: &TestServer, size: u64) {
    let deadline = Instant::now() + DEADLINE;
    while server.tree().size < size {
        assert!(
            Instant::now() < deadline,
            "the log did not reach {size} entries"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_appends_exactly_one_access_record_naming_the_reader() {
    let payloads = tempfile::tempdir().unwrap();
    let mut config = fast_config();
    config.records.payload_dir = Some(payloads.path().to_owned());
    let server = TestServer::start(token_policy(false), config, 0).await;
    let mut rng = Rng(5);
    append_records(&server, &mut rng, 4).await;
    let bearer = format!("Bearer {APPEND_TOKEN}");
    let with_payload = json!({
        "timestamp": "2026-03-01T12:00:00Z", "action": "user_message_received",
        "actor": {"id": "u", "type": "user"}, "conversation_id": "c-0",
        "payloads": {"prompt": {"media_type": "text/plain", "text": "private"}}
    });
    let appended = server
        .post_with(
            "/v1/records?wait=published",
            "application/json",
            &[("authorization", bearer.as_bytes())],
            serde_json::to_vec(&with_payload).unwrap(),
        )
        .await
        .ok("a record with a payload")
        .json();
    let payload_index = appended["records"][0]["index"].as_u64().unwrap();
    let auditor = format!("Bearer {AUDIT_TOKEN}");
    let reads = [
        (
            format!("/v1/records/{payload_index}"),
            "GET /v1/records/{index}",
        ),
        (
            format!("/v1/records/{payload_index}/payloads/prompt"),
            "GET /v1/records/{index}/payloads/{name}",
        ),
        ("/v1/records?action=error".to_owned(), "GET /v1/records"),
        (
            "/v1/conversations/c-0".to_owned(),
            "GET /v1/conversations/{id}",
        ),
    ];
    for (uri, operation) in reads {
        let before = server.tree().size;
        let deadline = Instant::now() + DEADLINE;
        loop {
            let reply = server.get_as(&uri, Some(&auditor)).await;
            if reply.status == StatusCode::SERVICE_UNAVAILABLE && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            reply.ok(&uri);
            break;
        }
        settle(&server, before + 1).await;
        assert_eq!(server.tree().size, before + 1, "{uri}: one access record");
        let leaf = server.ledger.entry(before).unwrap();
        let record = parse_leaf(&leaf).unwrap();
        assert_eq!(record["action"], "data_accessed", "{uri}");
        assert_eq!(record["actor"]["id"], "auditor", "{uri}");
        assert_eq!(
            record["submitted_by"],
            json!({"type": "token", "name": "auditor"})
        );
        assert_eq!(record["resource"]["type"], "audit_log");
        assert_eq!(record["details"]["operation"], operation);
        assert!(
            !leaf.windows(7).any(|w| w == b"private"),
            "{uri}: no result in it"
        );
    }
    // A refused read is not recorded; the public checkpoint is not either.
    let before = server.tree().size;
    let writer = format!("Bearer {APPEND_TOKEN}");
    server
        .get_as("/v1/records/0", Some(&writer))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden", "an appender");
    server.get("/checkpoint").await.ok("checkpoint");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.tree().size, before);
    server.stop().await;
}
