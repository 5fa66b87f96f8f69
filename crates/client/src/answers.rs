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
/// canonical record, and holds every field of `event` unchanged (and its `id`, if it had one).
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
    // The canonical form of each sent field is what the record must hold.
    for (field, value) in sent {
        let got = stored.get(field);
        let same = match field.as_str() {
            // Stored lower-cased.
            "id" => {
                got.and_then(|g| g.as_str()).map(str::to_lowercase)
                    == value.as_str().map(str::to_lowercase)
            }
            // A set: stored sorted, without duplicates.
            "compliance" => got.map(as_set) == Some(as_set(value)),
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
