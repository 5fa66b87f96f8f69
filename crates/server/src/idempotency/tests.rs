use std::sync::Arc;

use veritrail_ledger::note::{KeyName, NoteSigner};
use veritrail_ledger::store::{self, Backend};

use super::*;

const T: Duration = Duration::from_secs(5);
const DAY: Duration = Duration::from_secs(24 * 3600);

fn fp(body: &[u8]) -> Fingerprint {
    Fingerprint::Entries(Sha256::digest(body).into())
}

async fn fresh(cache: &Idempotency, scope: &Scope, key: &str, body: &[u8]) -> Ticket {
    match cache.claim(scope, key.into(), fp(body), T).await.unwrap() {
        Claim::Fresh(ticket) => ticket,
        Claim::Replay(r) => panic!("{key}: expected a fresh claim, got a replay of {r:?}"),
    }
}

async fn replay(cache: &Idempotency, scope: &Scope, key: &str, body: &[u8]) -> Range<u64> {
    match cache.claim(scope, key.into(), fp(body), T).await.unwrap() {
        Claim::Replay(r) => r,
        Claim::Fresh(_) => panic!("{key}: expected a replay, got a fresh claim"),
    }
}

fn token_scope(token: &str) -> Scope {
    Scope::of_token_hash(&crate::auth::token_hash(token))
}

#[tokio::test]
async fn same_key_same_body_replays_and_other_body_conflicts() {
    let cache = Idempotency::new(DAY, DEFAULT_BUDGET);
    let s = Scope::SHARED;
    fresh(&cache, &s, "k", b"body")
        .await
        .finish(&cache, Some(5..6));
    assert_eq!(replay(&cache, &s, "k", b"body").await, 5..6);
    assert!(matches!(
        cache.claim(&s, "k".into(), fp(b"other"), T).await,
        Err(ClaimError::Conflict(k)) if k == "k"
    ));
}

#[tokio::test]
async fn scopes_do_not_see_each_other() {
    let cache = Idempotency::new(DAY, DEFAULT_BUDGET);
    let (a, b) = (token_scope("vt_a"), token_scope("vt_b"));
    assert_ne!(a, b);
    assert_ne!(a, Scope::SHARED);
    // A commits under "order-42"; B's use of the same key, with other entries or the same,
    // is B's own first request.
    fresh(&cache, &a, "order-42", b"A's event")
        .await
        .finish(&cache, Some(7..8));
    fresh(&cache, &b, "order-42", b"B's event")
        .await
        .finish(&cache, Some(8..9));
    fresh(&cache, &Scope::SHARED, "order-42", b"A's event")
        .await
        .finish(&cache, Some(9..10));
    assert_eq!(replay(&cache, &a, "order-42", b"A's event").await, 7..8);
    assert_eq!(replay(&cache, &b, "order-42", b"B's event").await, 8..9);
    // In flight, too: B's pending key does not make A wait or conflict.
    let _pending = fresh(&cache, &b, "order-43", b"B").await;
    fresh(&cache, &a, "order-43", b"A").await;
}

#[tokio::test]
async fn a_failed_first_request_frees_the_key() {
    let cache = Idempotency::new(DAY, DEFAULT_BUDGET);
    let s = Scope::SHARED;
    fresh(&cache, &s, "k", b"b").await.finish(&cache, None);
    fresh(&cache, &s, "k", b"b").await;
}

#[tokio::test]
async fn a_concurrent_retry_waits_for_the_first() {
    let cache = Arc::new(Idempotency::new(DAY, DEFAULT_BUDGET));
    let s = Scope::SHARED;
    let ticket = fresh(&cache, &s, "k", b"b").await;
    let waiter = {
        let cache = cache.clone();
        tokio::spawn(async move { cache.claim(&s, "k".into(), fp(b"b"), T).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    // A different body while the first is in flight is a conflict at once.
    assert!(matches!(
        cache.claim(&s, "k".into(), fp(b"c"), T).await,
        Err(ClaimError::Conflict(_))
    ));
    ticket.finish(&cache, Some(1..3));
    assert!(matches!(waiter.await.unwrap().unwrap(), Claim::Replay(r) if r == (1..3)));
    // A dropped ticket frees the key too.
    drop(fresh(&cache, &s, "j", b"b").await);
    fresh(&cache, &s, "j", b"b").await;
}

#[tokio::test]
async fn keys_expire_after_the_window() {
    let cache = Idempotency::new(Duration::from_millis(30), DEFAULT_BUDGET);
    let s = Scope::SHARED;
    fresh(&cache, &s, "a", b"x")
        .await
        .finish(&cache, Some(0..1));
    assert_eq!(replay(&cache, &s, "a", b"x").await, 0..1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    fresh(&cache, &s, "a", b"y").await;
    assert!(cache.live_records().is_empty());
}

fn record(scope: &Scope, key: &str, first: u64) -> Record {
    Record {
        id: KeyId::new(scope, key),
        fingerprint: fp(key.as_bytes()).to_bytes(),
        first,
        count: 1,
        created_ms: unix_ms(),
    }
}

#[tokio::test]
async fn the_budget_evicts_the_oldest_first() {
    let cache = Idempotency::new(DAY, MIN_BUDGET);
    let max = max_records(MIN_BUDGET);
    assert!(max > 100, "{max}");
    let s = Scope::SHARED;
    let records: Vec<Record> = (0..max as u64 + 3)
        .map(|i| record(&s, &format!("key-{i}"), i))
        .collect();
    cache.remember(&records);
    assert_eq!(cache.len(), max);
    assert!(cache.accounted_bytes() <= MIN_BUDGET);
    // The three oldest are forgotten, in order; the fourth and the newest are remembered.
    for i in 0..3 {
        fresh(&cache, &s, &format!("key-{i}"), b"other").await;
    }
    let key = "key-3";
    assert_eq!(replay(&cache, &s, key, key.as_bytes()).await, 3..4);
    let key = format!("key-{}", max + 2);
    assert_eq!(
        replay(&cache, &s, &key, key.as_bytes()).await,
        (max as u64 + 2)..(max as u64 + 3)
    );
}

#[test]
fn the_budget_formula_holds_for_every_budget() {
    assert_eq!(RECORD_BYTES, 72);
    assert_eq!(INDEX_SLOT_BYTES, 25);
    assert_eq!(max_records(DEFAULT_BUDGET), 458_752);
    for budget in [MIN_BUDGET, 100_000, 1 << 20, 10_000_000, 64 << 20, 1 << 30] {
        let n = max_records(budget);
        assert!(
            n * RECORD_BYTES + index_bytes(n) <= budget,
            "budget {budget}: {n} records"
        );
        // Not wasteful: the next power-of-two table would not fit much more.
        assert!(n * 129 >= budget / 2, "budget {budget}: only {n} records");
    }
}

/// Issue 14: 300,000 keys of 255 bytes grew the server by ~395 MB. Now each key costs a
/// fixed-size record whatever its length, and all 300,000 fit in the default 64 MiB budget
/// without evicting any.
#[tokio::test]
async fn three_hundred_thousand_long_keys_fit_the_default_budget() {
    let cache = Idempotency::new(DAY, DEFAULT_BUDGET);
    let scope = token_scope("vt_agent");
    let now = unix_ms();
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..300_000u64 {
        let mut key = format!("{i:0>255}");
        key.truncate(255);
        assert_eq!(key.len(), 255);
        batch.push(Record {
            id: KeyId::new(&scope, &key),
            fingerprint: [0; 32],
            first: i,
            count: 1,
            created_ms: now,
        });
        if batch.len() == batch.capacity() {
            cache.remember(&batch);
            batch.clear();
        }
    }
    cache.remember(&batch);
    assert_eq!(cache.len(), 300_000, "no key was evicted");
    let accounted = cache.accounted_bytes();
    assert!(
        accounted <= DEFAULT_BUDGET,
        "{accounted} bytes accounted for 300,000 keys, budget {DEFAULT_BUDGET}"
    );
    // The real structures are within what is accounted: the queue's capacity exactly, the
    // index by its own capacity.
    {
        let inner = cache.lock();
        assert!(inner.store.records.capacity() * RECORD_BYTES <= accounted);
        assert!(
            buckets_for(inner.store.index.capacity()) * INDEX_SLOT_BYTES <= index_bytes(300_000)
        );
    }
    let first = format!("{:0>255}", 0);
    assert!(matches!(
        cache
            .claim(&scope, first, Fingerprint::Entries([0; 32]), T)
            .await
            .unwrap(),
        Claim::Replay(r) if r == (0..1)
    ));
}

fn ledger(dir: &Path) -> Ledger {
    let signer = NoteSigner::generate(KeyName::new("idem.example/log").unwrap()).unwrap();
    let store = store::open(Backend::Redb, dir).unwrap();
    Ledger::open(store, "idem.example/log", signer).unwrap()
}

#[tokio::test]
async fn open_keeps_only_records_whose_entries_landed() {
    let dir = tempfile::tempdir().unwrap();
    let log = ledger(dir.path());
    // 300 entries: the records below span two entry bundles.
    let entries: Vec<Vec<u8>> = (0..300)
        .map(|i| format!("entry {i}").into_bytes())
        .collect();
    log.append(&entries).unwrap();
    let fingerprint = |range: Range<usize>| {
        let slice: Vec<Bytes> = entries[range]
            .iter()
            .map(|e| Bytes::from(e.clone()))
            .collect();
        crate::body::fingerprint(&slice)
    };
    let s = token_scope("vt_a");
    let now = unix_ms();
    let at = |key: &str, first: u64, count: u32, fingerprint: [u8; 32], created_ms: u64| Record {
        id: KeyId::new(&s, key),
        fingerprint,
        first,
        count,
        created_ms,
    };
    let records = [
        at("landed", 250, 10, fingerprint(250..260), now),
        at("beyond", 299, 2, fingerprint(298..300), now),
        at("other-entries", 3, 1, fingerprint(4..5), now),
        at("expired", 1, 1, fingerprint(1..2), now - 2 * 86_400_000),
        at("landed-late", 299, 1, fingerprint(299..300), now),
    ];
    let path = dir.path().join("idempotency.journal");
    let (mut journal, _) = Journal::open(&path).unwrap();
    journal.append(&records).unwrap();
    drop(journal);
    let (cache, journal, restored) = Idempotency::open(&path, DAY, DEFAULT_BUDGET, &log).unwrap();
    assert_eq!(
        restored,
        Restored {
            kept: 2,
            expired: 1,
            not_landed: 2,
            unreadable: 0,
            damaged: 0
        }
    );
    assert_eq!(journal.records(), 5);
    let claim = |key: &str, fingerprint| {
        cache.claim(&s, key.to_owned(), Fingerprint::Entries(fingerprint), T)
    };
    assert!(
        matches!(claim("landed", fingerprint(250..260)).await.unwrap(), Claim::Replay(r) if r == (250..260))
    );
    assert!(
        matches!(claim("landed-late", fingerprint(299..300)).await.unwrap(), Claim::Replay(r) if r == (299..300))
    );
    assert!(matches!(
        claim("beyond", fingerprint(298..300)).await.unwrap(),
        Claim::Fresh(_)
    ));
    assert!(matches!(
        claim("other-entries", fingerprint(4..5)).await.unwrap(),
        Claim::Fresh(_)
    ));
    // Another scope does not see them.
    assert!(matches!(
        cache
            .claim(
                &Scope::SHARED,
                "landed".into(),
                Fingerprint::Entries(fingerprint(250..260)),
                T,
            )
            .await
            .unwrap(),
        Claim::Fresh(_)
    ));
    assert_eq!(cache.live_records().len(), 2);
}

#[tokio::test]
async fn records_requests_are_compared_by_their_body_not_their_nonces() {
    let cache = Arc::new(Idempotency::new(DAY, DEFAULT_BUDGET));
    let s = Scope::SHARED;
    let records = |request: u8, nonces: u8| Fingerprint::Records {
        request: [request; 16],
        nonces: [nonces; 16],
    };
    let Claim::Fresh(ticket) = cache.claim(&s, "r".into(), records(1, 2), T).await.unwrap() else {
        panic!("expected a fresh claim");
    };
    assert_eq!(ticket.keyed().fingerprint, records(1, 2).to_bytes());
    // In flight: a retry (new nonces) waits; another body, or entries, conflict at once.
    let waiter = {
        let cache = cache.clone();
        tokio::spawn(async move { cache.claim(&s, "r".into(), records(1, 3), T).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    for other in [records(4, 2), fp(b"entries")] {
        assert!(matches!(
            cache.claim(&s, "r".into(), other, T).await,
            Err(ClaimError::Conflict(_))
        ));
    }
    ticket.finish(&cache, Some(3..5));
    assert!(matches!(waiter.await.unwrap().unwrap(), Claim::Replay(r) if r == (3..5)));
    // Committed: the same.
    assert!(matches!(
        cache.claim(&s, "r".into(), records(1, 9), T).await.unwrap(),
        Claim::Replay(r) if r == (3..5)
    ));
    for other in [records(4, 2), fp(b"entries")] {
        assert!(matches!(
            cache.claim(&s, "r".into(), other, T).await,
            Err(ClaimError::Conflict(_))
        ));
    }
    // What is remembered (and journaled at compaction) keeps the nonces half.
    assert_eq!(
        cache.live_records()[0].fingerprint,
        records(1, 2).to_bytes()
    );
}

/// `POST /v1/records` keys did not survive a restart: `open` checked them by fingerprinting
/// the leaves as raw entries, which never matches a digest of a records request's body, so
/// every records key was dropped as not landed and a retry appended the records again.
#[tokio::test]
async fn open_keeps_records_requests_whose_records_landed() {
    use veritrail_records::{Prev, SubmittedBy, Unchained, parse_event};

    let dir = tempfile::tempdir().unwrap();
    let log = ledger(dir.path());
    let raw: Vec<Vec<u8>> = (0..5).map(|i| format!("raw {i}").into_bytes()).collect();
    log.append(&raw).unwrap();
    let body = |n: usize| -> Vec<u8> {
        let events: Vec<serde_json::Value> = (0..n)
            .map(|i| {
                serde_json::json!({
                    "timestamp": "2026-03-01T12:00:00Z",
                    "action": "tool_invoked",
                    "actor": {"id": "agent", "type": "agent"},
                    "conversation_id": "c-1",
                    "gen_ai": {"gen_ai.tool.name": format!("tool.{i}")},
                    // A nested `nonce` is not the record's.
                    "details": {"nonce": "AAAAAAAAAAAAAAAAAAAAAA=="},
                })
            })
            .collect();
        serde_json::to_vec(&events).unwrap()
    };
    // What `prepare` makes of a body: records with fresh nonces each time.
    let prepare = |body: &[u8]| -> Vec<Unchained> {
        let events: Vec<serde_json::Value> = serde_json::from_slice(body).unwrap();
        events
            .iter()
            .map(|event| {
                let mut nonce = [0u8; NONCE_BYTES];
                getrandom::fill(&mut nonce).unwrap();
                let by = SubmittedBy::Token {
                    name: "agent".into(),
                };
                let now = time::OffsetDateTime::now_utc();
                Unchained::new(parse_event(event).unwrap(), &by, now, nonce).unwrap()
            })
            .collect()
    };
    // Two requests, linked into one chain as the committer does: 5..8 and 8..10.
    let (first_body, second_body) = (body(3), body(2));
    let (first, second) = (prepare(&first_body), prepare(&second_body));
    let mut leaves = Vec::new();
    let mut prev: Option<Prev> = None;
    for (index, record) in (5u64..).zip(first.iter().chain(&second)) {
        let leaf = record.leaf(prev.as_ref());
        prev = Some(Prev {
            index,
            leaf_hash: veritrail_ledger::leaf_hash(&leaf),
        });
        leaves.push(leaf);
    }
    log.append(&leaves).unwrap();
    assert_eq!(log.tree_head().size, 10);

    let s = token_scope("vt_a");
    let now = unix_ms();
    let at = |key: &str, first: u64, count: u32, fingerprint: [u8; 32]| Record {
        id: KeyId::new(&s, key),
        fingerprint,
        first,
        count,
        created_ms: now,
    };
    let records_fp = |body: &[u8], records: &[Unchained]| {
        Fingerprint::records(body, records).unwrap().to_bytes()
    };
    let raw_fp = |range: Range<usize>| {
        let slice: Vec<Bytes> = raw[range].iter().map(|e| Bytes::from(e.clone())).collect();
        crate::body::fingerprint(&slice)
    };
    // As the build before this fix journaled a records request.
    let legacy: [u8; 32] = Sha256::new()
        .chain_update(b"veritrail/records-request/v1\0")
        .chain_update(&first_body)
        .finalize()
        .into();
    let journaled = [
        at("records", 5, 3, records_fp(&first_body, &first)),
        at("entries", 1, 2, raw_fp(1..3)),
        at("records-late", 8, 2, records_fp(&second_body, &second)),
        // Journaled, then the commit did not land, and other records took the indices.
        at("records-elsewhere", 7, 3, records_fp(&first_body, &first)),
        at("records-beyond", 9, 3, records_fp(&first_body, &first)),
        // Raw entries where records were journaled, and the other way round.
        at("records-over-raw", 2, 3, records_fp(&first_body, &first)),
        at("raw-over-records", 5, 2, raw_fp(1..3)),
        at("records-legacy", 5, 3, legacy),
    ];
    let path = dir.path().join("idempotency.journal");
    let (mut journal, _) = Journal::open(&path).unwrap();
    journal.append(&journaled).unwrap();
    drop(journal);

    let (cache, mut journal, restored) =
        Idempotency::open(&path, DAY, DEFAULT_BUDGET, &log).unwrap();
    assert_eq!(
        restored,
        Restored {
            kept: 3,
            expired: 0,
            not_landed: 5,
            unreadable: 0,
            damaged: 0
        }
    );
    // A retry is the same body, prepared anew: other nonces, other ids, other times.
    let claim = |key: &str, body: &[u8]| {
        let fingerprint = Fingerprint::records(body, &prepare(body)).unwrap();
        cache.claim(&s, key.to_owned(), fingerprint, T)
    };
    for (key, body, indices) in [
        ("records", &first_body, 5..8),
        ("records-late", &second_body, 8..10),
    ] {
        let claimed = claim(key, body).await.unwrap();
        assert!(
            matches!(&claimed, Claim::Replay(r) if *r == indices),
            "{key}: {claimed:?}"
        );
    }
    assert!(matches!(
        claim("records", &second_body).await,
        Err(ClaimError::Conflict(_))
    ));
    assert!(matches!(
        claim("entries", &first_body).await,
        Err(ClaimError::Conflict(_))
    ));
    assert!(matches!(
        cache
            .claim(&s, "records".into(), Fingerprint::Entries(raw_fp(1..3)), T)
            .await,
        Err(ClaimError::Conflict(_))
    ));
    for dropped in [
        "records-elsewhere",
        "records-beyond",
        "records-over-raw",
        "records-legacy",
    ] {
        assert!(
            matches!(claim(dropped, &first_body).await.unwrap(), Claim::Fresh(_)),
            "{dropped}"
        );
    }

    // A compacted journal (the live records) is found again at the next start.
    journal.compact(&cache.live_records()).unwrap();
    drop(journal);
    let (_, _, restored) = Idempotency::open(&path, DAY, DEFAULT_BUDGET, &log).unwrap();
    assert_eq!(restored.kept, 3);
    assert_eq!(restored.not_landed, 0);
}

#[test]
fn the_request_scope_is_the_token_or_shared() {
    let mut headers = HeaderMap::new();
    assert_eq!(Scope::of_request(&headers, false), Scope::SHARED);
    headers.insert(AUTHORIZATION, "Bearer vt_a".parse().unwrap());
    assert_eq!(Scope::of_request(&headers, false), token_scope("vt_a"));
    assert_eq!(Scope::of_request(&headers, true), Scope::SHARED);
}

#[test]
fn keys_are_validated() {
    assert!(validate_key(b"abc-123").is_ok());
    assert!(validate_key(b"").is_err());
    assert!(validate_key(b"has space").is_err());
    assert!(validate_key(&[b'a'; 256]).is_err());
    assert!(validate_key("é".as_bytes()).is_err());
}
