//! The API's JSON answers ([`veritrail_api`] types) decoded into checked values: hashes
//! parsed from base64, proof lengths bounded, an append's leaf hash checked against the bytes
//! sent. Nothing here is verified cryptographically beyond that; [`crate::VerifyingClient`]
//! and [`crate::Monitor`] do the verification.

use veritrail_api::AppendedEntry;
use veritrail_ledger::proof::MAX_PROOF_HASHES;
use veritrail_ledger::{Hash, leaf_hash};

use crate::error::ClientError;

/// The server's answer for one appended entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The entry's index.
    pub index: u64,
    /// Its leaf hash (checked against the bytes sent).
    pub leaf_hash: Hash,
    /// With `wait_published`: what proves the entry is in the log.
    pub published: Option<Published>,
}

/// The server's answer for one appended agent record, checked against the event sent.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    /// The record's id.
    pub id: String,
    /// Its index.
    pub index: u64,
    /// Its leaf hash (checked against `leaf`).
    pub leaf_hash: Hash,
    /// The leaf as stored: `0x01 ‖` the canonical JSON of `record`.
    pub leaf: Vec<u8>,
    /// The stored record: the event sent plus the server's fields (checked to hold the event
    /// unchanged).
    pub record: serde_json::Value,
    /// With `wait_published`: what proves the record is in the log (the receipt is for
    /// `leaf`).
    pub published: Option<Published>,
}

/// Proof material returned by an append with `wait_published`. Not yet verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// The signed checkpoint note covering the entry.
    pub checkpoint: Vec<u8>,
    /// The inclusion proof against it.
    pub inclusion_proof: Vec<Hash>,
    /// The `c2sp.org/tlog-proof@v1` receipt.
    pub receipt: Vec<u8>,
}

/// An inclusion proof as served. Not yet verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    /// The leaf index.
    pub index: u64,
    /// The tree size the proof is for.
    pub tree_size: u64,
    /// The audit path, leaf's sibling first.
    pub proof: Vec<Hash>,
}

/// A consistency proof as served. Not yet verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// The old size.
    pub old: u64,
    /// The new size.
    pub tree_size: u64,
    /// The proof.
    pub proof: Vec<Hash>,
}

/// An entry with its inclusion proof, as served by `GET /v1/entries/{index}?proof=1`. Not
/// yet verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryWithProof {
    /// The entry's bytes.
    pub entry: Vec<u8>,
    /// The leaf hash the server claims.
    pub leaf_hash: Hash,
    /// The proof against `checkpoint`.
    pub inclusion: InclusionProof,
    /// The signed checkpoint note the proof is for.
    pub checkpoint: Vec<u8>,
}

/// A [`ClientError::MalformedResponse`] for `url`.
pub(crate) fn malformed(url: &str, reason: impl std::fmt::Display) -> ClientError {
    ClientError::MalformedResponse {
        url: url.to_owned(),
        reason: reason.to_string(),
    }
}

/// A base64 hash field.
pub(crate) fn hash(url: &str, what: &str, text: &str) -> Result<Hash, ClientError> {
    Hash::from_base64(text).map_err(|e| malformed(url, format!("{what}: {e}")))
}

/// A list of base64 proof hashes, at most [`MAX_PROOF_HASHES`].
pub(crate) fn hashes(url: &str, list: &[String]) -> Result<Vec<Hash>, ClientError> {
    if list.len() > MAX_PROOF_HASHES {
        return Err(malformed(
            url,
            format!(
                "proof has {} hashes, at most {MAX_PROOF_HASHES} exist",
                list.len()
            ),
        ));
    }
    list.iter().map(|h| hash(url, "proof hash", h)).collect()
}

/// The server must answer for what was asked.
pub(crate) fn check_answer(what: &'static str, asked: u64, got: u64) -> Result<(), ClientError> {
    if asked == got {
        Ok(())
    } else {
        Err(ClientError::WrongAnswer { what, asked, got })
    }
}

/// An append answer checked against the entry sent; with `wait`, the proof material must be
/// there.
pub(crate) fn appended(
    url: &str,
    json: AppendedEntry,
    entry: &[u8],
    wait: bool,
) -> Result<Appended, ClientError> {
    let claimed = hash(url, "leaf_hash", &json.leaf_hash)?;
    let computed = leaf_hash(entry);
    if claimed != computed {
        return Err(ClientError::EntryMismatch {
            index: json.index,
            computed,
            expected: claimed,
        });
    }
    let published = match (json.checkpoint, json.inclusion_proof, json.receipt) {
        (Some(checkpoint), Some(proof), Some(receipt)) => Some(Published {
            checkpoint: checkpoint.into_bytes(),
            inclusion_proof: hashes(url, &proof)?,
            receipt: receipt.into_bytes(),
        }),
        (None, None, None) if !wait => None,
        _ => {
            return Err(malformed(
                url,
                "expected checkpoint, inclusion_proof and receipt with wait=published",
            ));
        }
    };
    Ok(Appended {
        index: json.index,
        leaf_hash: claimed,
        published,
    })
}

/// Checks one record answer against the event sent: the leaf hashes to `leaf_hash`, is a
/// canonical record, and holds every field of `event` (and its `id`, if it had one) — unchanged,
/// except what the server may do to it: text in `details` and `resource.uri` replaced by
/// `[REDACTED:<kind>]` for a kind the record lists in `scrubbed`, and a classification raised
/// and compliance domains added by its registry.
pub(crate) fn recorded(
    url: &str,
    json: veritrail_api::AppendedRecord,
    event: &serde_json::Value,
    wait: bool,
) -> Result<Recorded, ClientError> {
    use base64::Engine as _;
    let leaf = base64::engine::general_purpose::STANDARD
        .decode(&json.leaf)
        .map_err(|e| malformed(url, format!("leaf: {e}")))?;
    let entry = AppendedEntry {
        index: json.index,
        leaf_hash: json.leaf_hash,
        checkpoint: json.checkpoint,
        inclusion_proof: json.inclusion_proof,
        receipt: json.receipt,
    };
    let checked = appended(url, entry, &leaf, wait)?;
    let mismatch = |problem: String| ClientError::RecordMismatch {
        index: checked.index,
        problem,
    };
    let record = veritrail_records::parse_leaf(&leaf).map_err(|e| mismatch(e.to_string()))?;
    let (Some(sent), Some(stored)) = (event.as_object(), record.as_object()) else {
        return Err(mismatch("not a JSON object".into()));
    };
    let scrubbed: std::collections::BTreeSet<String> = stored
        .get("scrubbed")
        .and_then(|s| s.as_array())
        .map(|kinds| {
            kinds
                .iter()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    // The canonical form of each sent field is what the record must hold.
    for (field, value) in sent {
        let got = stored.get(field);
        let same = match field.as_str() {
            // Scrubbed: the same shape, with redaction markers in the text.
            "details" | "resource" => got.is_some_and(|got| redacted(value, got, &scrubbed)),
            // The registry may raise it, never lower it.
            "classification" => {
                let level = |v: &serde_json::Value| {
                    serde_json::from_value::<veritrail_records::Classification>(v.clone()).ok()
                };
                got.and_then(level)
                    .zip(level(value))
                    .is_some_and(|(got, sent)| got >= sent)
            }
            // A set: stored sorted, without duplicates; the registry may add domains.
            "compliance" => got.is_some_and(|got| as_set(got).is_superset(&as_set(value))),
            // Stored lower-cased.
            "id" => {
                got.and_then(|g| g.as_str()).map(str::to_lowercase)
                    == value.as_str().map(str::to_lowercase)
            }
            // Stored as commitments: the same names, media types and sizes.
            "payloads" => got.is_some_and(|stored| same_payloads(value, stored)),
            _ => got.map(canonical) == Some(canonical(value)),
        };
        if !same {
            return Err(mismatch(format!("field {field:?} changed")));
        }
    }
    if stored.get("id").and_then(|id| id.as_str()) != Some(json.id.as_str()) {
        return Err(mismatch("the answer's id is not the record's".into()));
    }
    Ok(Recorded {
        id: json.id,
        index: checked.index,
        leaf_hash: checked.leaf_hash,
        leaf,
        record,
        published: checked.published,
    })
}

/// Whether the stored `payloads` (commitments) describe the sent ones (contents): the same
/// names, each with the same media type and size. The commitments themselves can only be
/// opened with the opening keys, which the payload endpoint serves.
fn same_payloads(sent: &serde_json::Value, stored: &serde_json::Value) -> bool {
    let (Some(sent), Some(stored)) = (sent.as_object(), stored.as_object()) else {
        return false;
    };
    sent.len() == stored.len()
        && sent.iter().all(|(name, payload)| {
            let size = match (payload.get("text"), payload.get("base64")) {
                (Some(text), None) => text.as_str().map(str::len),
                (None, Some(b64)) => b64
                    .as_str()
                    .and_then(veritrail_records::payload::decode_base64)
                    .map(|b| b.len()),
                _ => None,
            };
            stored.get(name).is_some_and(|s| {
                s.get("media_type") == payload.get("media_type")
                    && s.get("size").and_then(serde_json::Value::as_u64) == size.map(|n| n as u64)
                    && s.get("commitment")
                        .is_some_and(serde_json::Value::is_string)
            })
        })
}

/// RFC 8785 text of a JSON value.
/// Whether `stored` is `sent`, but for text (strings and object keys) in which the server's
/// scrubber replaced parts by `[REDACTED:<kind>]` for kinds in `kinds`.
fn redacted(
    sent: &serde_json::Value,
    stored: &serde_json::Value,
    kinds: &std::collections::BTreeSet<String>,
) -> bool {
    use serde_json::Value;
    match (sent, stored) {
        (Value::String(sent), Value::String(stored)) => redacted_text(sent, stored, kinds),
        (Value::Array(sent), Value::Array(stored)) => {
            sent.len() == stored.len()
                && sent.iter().zip(stored).all(|(a, b)| redacted(a, b, kinds))
        }
        (Value::Object(sent), Value::Object(stored)) => {
            sent.len() == stored.len()
                && sent.iter().all(|(key, value)| match stored.get(key) {
                    Some(got) => redacted(value, got, kinds),
                    // A key that was itself scrubbed.
                    None => stored.iter().any(|(k, got)| {
                        !sent.contains_key(k)
                            && redacted_text(key, k, kinds)
                            && redacted(value, got, kinds)
                    }),
                })
        }
        (sent, stored) => canonical(sent) == canonical(stored),
    }
}

/// Whether `stored` is `sent` with zero or more non-empty parts replaced by
/// `[REDACTED:<kind>]` markers of kinds in `kinds`.
fn redacted_text(sent: &str, stored: &str, kinds: &std::collections::BTreeSet<String>) -> bool {
    if sent == stored {
        return true;
    }
    // The kept fragments between the markers.
    let mut fragments = Vec::new();
    let mut rest = stored;
    while let Some(start) = rest.find("[REDACTED:") {
        let (kept, marker) = rest.split_at(start);
        let Some(end) = marker.find(']') else {
            break;
        };
        let kind = marker.get("[REDACTED:".len()..end).unwrap_or_default();
        if !kinds.contains(kind) {
            return false;
        }
        fragments.push(kept);
        rest = marker.get(end + 1..).unwrap_or_default();
    }
    if fragments.is_empty() {
        return false;
    }
    fragments.push(rest);
    // Each fragment in order, each marker covering at least one character.
    let Some((first, others)) = fragments.split_first() else {
        return false;
    };
    let Some(mut left) = sent.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = others.split_last() else {
        return false;
    };
    for fragment in middle {
        // Skip at least one character for the marker before it.
        let mut chars = left.chars();
        if chars.next().is_none() {
            return false;
        }
        let Some(at) = chars.as_str().find(fragment) else {
            return false;
        };
        left = chars
            .as_str()
            .get(at + fragment.len()..)
            .unwrap_or_default();
    }
    left.len() > last.len() && left.ends_with(last)
}

fn canonical(value: &serde_json::Value) -> String {
    serde_json_canonicalizer::to_string(value).unwrap_or_default()
}

/// The canonical texts of an array's elements, as a set.
fn as_set(value: &serde_json::Value) -> std::collections::BTreeSet<String> {
    value
        .as_array()
        .map(|items| items.iter().map(canonical).collect())
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn scrubbed_text_is_told_from_changed_text() {
        let kinds: std::collections::BTreeSet<String> =
            ["email".to_owned(), "mrn".to_owned()].into();
        let cases = [
            ("mail jane@x.org now", "mail [REDACTED:email] now", true),
            ("jane@x.org", "[REDACTED:email]", true),
            (
                "a MRN 00412345 b jane@x.org",
                "a [REDACTED:mrn] b [REDACTED:email]",
                true,
            ),
            ("same", "same", true),
            // A kind the record does not list, an empty redaction, changed kept text.
            ("mail jane@x.org now", "mail [REDACTED:ssn] now", false),
            ("mail  now", "mail [REDACTED:email] now", false),
            ("mail jane@x.org now", "mail [REDACTED:email] later", false),
            ("mail jane@x.org now", "post [REDACTED:email] now", false),
            ("ab", "a[REDACTED:email]b", false),
            ("x", "y", false),
        ];
        for (sent, stored, ok) in cases {
            assert_eq!(
                redacted_text(sent, stored, &kinds),
                ok,
                "{sent:?} -> {stored:?}"
            );
        }
        // What the server's scrubber really does is accepted, anything else is not.
        let scrubber =
            veritrail_records::Scrubber::new(veritrail_records::scrub::DEFAULT_MRN_PATTERN)
                .unwrap();
        let sent = serde_json::json!({
            "note": "patient MRN 00412345, reply to jane.doe@example.com",
            "jane.doe@example.com": ["call 555-867-5309", 3, true],
        });
        let mut stored = sent.clone();
        let mut found = std::collections::BTreeSet::new();
        scrubber.scrub_value("details", &mut stored, &mut found, &mut Vec::new());
        assert_ne!(stored, sent);
        assert!(redacted(&sent, &stored, &found));
        let mut edited = stored.clone();
        edited["note"] = serde_json::json!("patient [REDACTED:mrn], reply to nobody");
        assert!(!redacted(&sent, &edited, &found));
        assert!(!redacted(
            &sent,
            &stored,
            &std::collections::BTreeSet::new()
        ));
    }

    #[test]
    fn appended_answers_are_checked_against_the_entry() {
        let json = |hash: &Hash| AppendedEntry {
            index: 7,
            leaf_hash: hash.to_base64(),
            checkpoint: None,
            inclusion_proof: None,
            receipt: None,
        };
        let ok = appended("u", json(&leaf_hash(b"x")), b"x", false).unwrap();
        assert_eq!((ok.index, ok.published), (7, None));
        assert!(matches!(
            appended("u", json(&leaf_hash(b"y")), b"x", false),
            Err(ClientError::EntryMismatch { index: 7, .. })
        ));
        // wait=published without the proof material is malformed.
        assert!(matches!(
            appended("u", json(&leaf_hash(b"x")), b"x", true),
            Err(ClientError::MalformedResponse { .. })
        ));
    }

    proptest! {
        #[test]
        fn answer_decoding_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..2048),
            wait in any::<bool>(),
        ) {
            let _ = serde_json::from_slice::<AppendedEntry>(&bytes)
                .map(|j| appended("u", j, &bytes, wait));
        }
    }
}
