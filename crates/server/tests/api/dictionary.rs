//! A dictionary attack on a low-entropy entry, by a caller without a token, through every
//! endpoint the server answers without one (issue 14, item 4).
//!
//! What it shows, on a server with tokens (no `--public-read`):
//!
//! - the lookup by leaf hash is no oracle: without a `read` token every guess gets the same
//!   401 (403 with a token that lacks `read`), whether or not the guess is in the log; the
//!   route by index refuses a `leaf_hash` without looking it up;
//! - entries and entry bundles are 401;
//! - no public answer (checkpoint, hash tiles, proofs, health, readiness, the OpenAPI
//!   document) holds entry bytes.
//!
//! And what stays possible by design, asserted so that the documentation stays true
//! (docs/threat-model.md, "Guessing entries from public hashes"): the level-0 hash tiles are
//! public, because C2SP witnesses and monitors need them, and they hold every leaf hash
//! `SHA-256(0x00 || entry)`. So a *raw* entry with little entropy is confirmed by hashing the
//! candidates and comparing them with the tile. The defence is not to log guessable raw
//! entries; agent records carry 128 bits of server-chosen randomness (`nonce`), so that no
//! record can be confirmed this way: the second test runs the same attack on a record.

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use veritrail_ledger::leaf_hash;

use crate::{APPEND_TOKEN, TestServer, fast_config, token_policy};

/// The secret: a record of little entropy (a patient number and a diagnosis).
const SECRET: &[u8] = br#"{"patient":"P-0042","dx":"HIV+"}"#;

/// The attacker's dictionary: 100 patient numbers times 5 diagnoses, the secret among them.
fn dictionary() -> Vec<Vec<u8>> {
    let mut candidates = Vec::new();
    for patient in 0..100 {
        for dx in ["HIV+", "HIV-", "HBV", "flu", "none"] {
            candidates.push(format!(r#"{{"patient":"P-{patient:04}","dx":"{dx}"}}"#).into_bytes());
        }
    }
    candidates
}

/// A base64 hash for a query string.
fn query_hash(entry: &[u8]) -> String {
    leaf_hash(entry)
        .to_base64()
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dictionary_attack_without_a_token_is_not_answered() {
    let server = TestServer::start(token_policy(false), fast_config(), 3).await;
    let appended = server
        .post_with(
            "/v1/entries?wait=published",
            "application/octet-stream",
            &[("Authorization", format!("Bearer {APPEND_TOKEN}").as_bytes())],
            SECRET.to_vec(),
        )
        .await
        .ok("append the secret");
    assert_eq!(appended.json()["index"], 3);
    let size = 4;
    let candidates = dictionary();
    assert!(candidates.iter().any(|c| c == SECRET));

    // The lookup by leaf hash: one answer for every guess, hit or miss, and never a proof.
    let by_hash = "/v1/proof/inclusion/by-leaf-hash";
    for (authorization, status, code) in [
        (None, StatusCode::UNAUTHORIZED, "unauthorized"),
        (
            Some("Bearer vt_guessed".to_owned()),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Some(format!("Bearer {APPEND_TOKEN}")),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
    ] {
        let mut answers = std::collections::BTreeSet::new();
        for candidate in &candidates {
            for uri in [
                format!("{by_hash}?leaf_hash={}", query_hash(candidate)),
                format!("{by_hash}?leaf_hash={}&size={size}", query_hash(candidate)),
            ] {
                let reply = server.get_as(&uri, authorization.as_deref()).await;
                reply.assert_error(status, code, &uri);
                answers.insert(reply.body.to_vec());
            }
        }
        assert_eq!(answers.len(), 1, "{authorization:?}: the answers differ");
    }
    // The route by index takes no leaf hash: the same refusal for every guess.
    let mut answers = std::collections::BTreeSet::new();
    for candidate in &candidates {
        let uri = format!("/v1/proof/inclusion?leaf_hash={}", query_hash(candidate));
        let reply = server.get(&uri).await;
        reply.assert_error(StatusCode::BAD_REQUEST, "invalid_parameter", &uri);
        answers.insert(reply.body.to_vec());
    }
    assert_eq!(
        answers.len(),
        1,
        "the route by index answers guesses differently"
    );

    // Entries, entry bundles, the checkpoint history and the metrics need a token.
    for uri in [
        "/v1/entries/3".to_owned(),
        "/v1/entries/3?proof=1".to_owned(),
        format!("/tile/entries/000.p/{size}"),
        "/tile/entries/000".to_owned(),
        format!("/v1/checkpoints/{size}"),
        "/metrics".to_owned(),
    ] {
        server
            .get(&uri)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "unauthorized", &uri);
    }

    // Nor through the public hash tile route with a percent-encoded `/`: that is not a tile.
    for uri in [
        format!("/tile/entries%2F000.p%2F{size}"),
        format!("/tile/entries%2F000.p/{size}"),
    ] {
        server
            .get(&uri)
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found", &uri);
    }

    // What is public holds no entry bytes, in the clear or in base64.
    let mut public = vec![
        "/checkpoint".to_owned(),
        format!("/tile/0/000.p/{size}"),
        "/tile/1/000.p/1".to_owned(),
        format!("/v1/proof/consistency?old=1&size={size}"),
        "/healthz".to_owned(),
        "/readyz".to_owned(),
        "/openapi.json".to_owned(),
    ];
    public.extend((0..size).map(|i| format!("/v1/proof/inclusion?index={i}&size={size}")));
    let encoded = STANDARD.encode(SECRET);
    let mut level0 = Vec::new();
    for uri in &public {
        let reply = server.get(uri).await;
        // `/tile/1/000.p/1` needs 256 leaves: a 404, which is public too.
        let want = if uri == "/tile/1/000.p/1" {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::OK
        };
        assert_eq!(reply.status, want, "{uri}");
        let body = reply.body.as_ref();
        assert!(
            !body.windows(SECRET.len()).any(|w| w == SECRET)
                && !String::from_utf8_lossy(body).contains(&encoded),
            "{uri} serves the entry"
        );
        if uri.starts_with("/tile/0/") {
            level0 = body.to_vec();
        }
    }

    // By design, for raw entries: the public level-0 tile confirms the guess. Records add 128
    // bits of server-chosen randomness so that this finds nothing (the next test); the
    // documentation says so, and this assertion keeps it honest.
    let leaves: Vec<&[u8]> = level0.chunks(32).collect();
    assert_eq!(leaves.len(), size as usize);
    let confirmed: Vec<&Vec<u8>> = candidates
        .iter()
        .filter(|c| leaves.contains(&leaf_hash(c).as_bytes().as_slice()))
        .collect();
    assert_eq!(confirmed, vec![&SECRET.to_vec()]);
    server.stop().await;
}

/// The same attack on an agent record: the attacker knows everything about the record except
/// the server's 128-bit nonce — the event, its id, the submitter, even the exact receipt time —
/// and the public level-0 tile still confirms no candidate.
#[tokio::test(flavor = "multi_thread")]
async fn a_dictionary_attack_on_a_record_finds_nothing_in_the_public_tiles() {
    use veritrail_records::{NONCE_BYTES, SubmittedBy, Unchained, parse_event};

    let server = TestServer::start(token_policy(false), fast_config(), 0).await;
    let event = |patient: u32, dx: &str| {
        serde_json::json!({
            "id": "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
            "timestamp": "2026-03-01T12:00:00Z",
            "action": "data_accessed",
            "actor": {"id": "triage", "type": "agent"},
            "resource": {"type": "patient", "id": format!("P-{patient:04}")},
            "details": {"dx": dx}
        })
    };
    let reply = server
        .post_with(
            "/v1/records?wait=published",
            "application/json",
            &[("Authorization", format!("Bearer {APPEND_TOKEN}").as_bytes())],
            serde_json::to_vec(&event(42, "HIV+")).unwrap(),
        )
        .await
        .ok("append the record");
    assert_eq!(reply.json()["records"][0]["index"], 0);
    // What the attacker cannot know, read here as the auditor: the stored record.
    let stored = veritrail_records::parse_leaf(&server.ledger.entry(0).unwrap()).unwrap();
    let received_at = time::OffsetDateTime::parse(
        stored["received_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();

    let level0 = server
        .get("/tile/0/000.p/1")
        .await
        .ok("public level-0 tile")
        .body;
    let leaves: Vec<&[u8]> = level0.chunks(32).collect();
    assert_eq!(leaves.len(), 1);
    let writer = SubmittedBy::Token {
        name: "writer".into(),
    };
    let mut tried = 0;
    for patient in 0..100 {
        for dx in ["HIV+", "HIV-", "HBV", "flu", "none"] {
            let candidate = parse_event(&event(patient, dx)).unwrap();
            // Every nonce the attacker might try first; the real one is 128 random bits.
            for guess in [[0u8; NONCE_BYTES], [0xff; NONCE_BYTES]] {
                let leaf = Unchained::new(candidate.clone(), &writer, received_at, guess)
                    .unwrap()
                    .leaf(None);
                assert!(
                    !leaves.contains(&leaf_hash(&leaf).as_bytes().as_slice()),
                    "P-{patient:04} {dx} confirmed"
                );
                tried += 1;
            }
        }
    }
    assert_eq!(tried, 1000);
    // With the nonce (which only the record's readers see) the leaf is reproduced exactly:
    // the only thing missing above was the nonce.
    let nonce: [u8; NONCE_BYTES] = STANDARD
        .decode(stored["nonce"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let exact = Unchained::new(
        parse_event(&event(42, "HIV+")).unwrap(),
        &writer,
        received_at,
        nonce,
    )
    .unwrap()
    .leaf(None);
    assert!(leaves.contains(&leaf_hash(&exact).as_bytes().as_slice()));
    // And no public endpoint serves the record or its nonce.
    for uri in ["/v1/records/0", "/v1/entries/0", "/tile/entries/000.p/1"] {
        assert_eq!(
            server.get(uri).await.status,
            StatusCode::UNAUTHORIZED,
            "{uri}"
        );
    }
    server.stop().await;
}
