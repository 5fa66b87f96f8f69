//! The stored record and its leaf: `0x01 ‖ RFC 8785 (JCS) canonical JSON` of the event plus
//! what the server adds (`id` if absent, `received_at`, `submitted_by`, a 128-bit `nonce` and
//! the conversation chain link `prev`).
//!
//! The committer links records into their conversation's chain, so it must set `prev` last
//! and cheaply. [`Unchained`] holds the canonical encoding split around the `prev` member:
//! every other top-level key is known, so the canonical bytes are the members sorting before
//! `"prev"`, then `"prev"`, then the rest; [`Unchained::leaf`] only concatenates.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use veritrail_ledger::Hash;

use crate::event::{Action, AuditEvent};

/// The first byte of every record's leaf (record format version 1). Raw entries that start
/// with it are refused, so a record cannot be forged as a raw entry.
pub const LEAF_VERSION: u8 = 0x01;

/// Bytes of server-chosen randomness in every record (`nonce`): with it no record can be
/// confirmed by guessing its content and hashing it against the public tiles.
pub const NONCE_BYTES: usize = 16;

/// Who really submitted a record, from the request's authentication (not the client's
/// claim in `actor`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SubmittedBy {
    /// A bearer token of the server's token file, by its name.
    Token {
        /// The token's name.
        name: String,
    },
    /// A JWT of the OpenID Connect issuer the server trusts.
    Oidc {
        /// The token's `iss`.
        issuer: String,
        /// The token's `sub`.
        subject: String,
    },
    /// The server runs without authentication (`--no-auth`, local use only).
    Anonymous,
}

/// The link from a record to the previous record of its conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prev {
    /// The previous record's index.
    pub index: u64,
    /// The previous record's leaf hash.
    pub leaf_hash: Hash,
}

impl Prev {
    /// The canonical JSON of the link: `{"index":N,"leaf_hash":"<base64>"}`.
    fn canonical(&self) -> String {
        format!(
            "{{\"index\":{},\"leaf_hash\":\"{}\"}}",
            self.index,
            self.leaf_hash.to_base64()
        )
    }

    /// Reads the link of a stored record (`None` for `"prev": null` or no link).
    pub fn of(record: &Value) -> Option<Prev> {
        let prev = record.get("prev")?.as_object()?;
        let index = prev.get("index")?.as_u64()?;
        let leaf_hash = Hash::from_base64(prev.get("leaf_hash")?.as_str()?).ok()?;
        Some(Prev { index, leaf_hash })
    }
}

/// Why bytes are not a record leaf, or a record cannot be encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The leaf does not start with [`LEAF_VERSION`].
    #[error("not a record: a record leaf starts with byte 0x01")]
    NotARecord,
    /// The JSON does not parse or does not encode.
    #[error("record JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The JSON is not an object.
    #[error("a record is a JSON object")]
    NotAnObject,
    /// The JSON is not in RFC 8785 canonical form.
    #[error("the record is not in RFC 8785 canonical form")]
    NotCanonical,
    /// The encoded record is larger than an entry may be.
    #[error("the encoded record is {size} bytes; a leaf holds at most {max}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
}

/// A record encoded except for its chain link, ready for the committer.
#[derive(Clone, Debug)]
pub struct Unchained {
    /// Canonical members sorting before `"prev"`, without braces.
    before: Vec<u8>,
    /// Canonical members sorting after `"prev"`, without braces.
    after: Vec<u8>,
    /// The record's id (the client's, or generated).
    pub id: String,
    /// Its conversation, if it belongs to one.
    pub conversation_id: Option<String>,
    /// Whether it ends its conversation (`conversation_ended`).
    pub ends_conversation: bool,
}

/// The longest `prev` value: `{"index":<20 digits>,"leaf_hash":"<44>"}`.
const MAX_PREV_LEN: usize = 8 + 1 + 20 + 14 + 44 + 2;

/// The canonical members of `map`, without the surrounding braces.
fn members(map: Map<String, Value>) -> Result<Vec<u8>, RecordError> {
    let mut bytes = crate::jcs::to_vec(&Value::Object(map))?;
    // `{...}`: drop the braces.
    bytes.pop();
    bytes.remove(0);
    Ok(bytes)
}

impl Unchained {
    /// Adds the server's fields to `event` and encodes it. `id` is generated (UUID v4) if the
    /// event has none; `received_at` is written in RFC 3339 UTC.
    ///
    /// # Errors
    /// [`RecordError::TooLarge`] if the leaf could exceed 65535 bytes; [`RecordError::Json`]
    /// if the event does not encode (it always does after [`crate::parse_event`]).
    pub fn new(
        event: AuditEvent,
        submitted_by: &SubmittedBy,
        received_at: time::OffsetDateTime,
        nonce: [u8; NONCE_BYTES],
    ) -> Result<Unchained, RecordError> {
        Unchained::with(
            event,
            submitted_by,
            received_at,
            nonce,
            &BTreeSet::new(),
            &BTreeMap::new(),
        )
    }

    /// As [`Unchained::new`], with the kinds [`crate::scrub::scrub_event`] redacted (listed in
    /// `scrubbed` when there are any) and the commitments to the record's payloads (in
    /// `payloads`, when there are any).
    ///
    /// # Errors
    /// As [`Unchained::new`].
    pub fn with(
        event: AuditEvent,
        submitted_by: &SubmittedBy,
        received_at: time::OffsetDateTime,
        nonce: [u8; NONCE_BYTES],
        scrubbed: &BTreeSet<String>,
        payloads: &BTreeMap<String, crate::payload::PayloadRef>,
    ) -> Result<Unchained, RecordError> {
        let id = match &event.id {
            Some(id) => uuid::Uuid::parse_str(id)
                .map(|u| u.hyphenated().to_string())
                .unwrap_or_else(|_| id.clone()),
            None => uuid::Uuid::new_v4().hyphenated().to_string(),
        };
        let conversation_id = event.conversation_id.clone();
        let ends_conversation = event.action == Action::ConversationEnded;
        let Value::Object(mut map) = serde_json::to_value(&event)? else {
            return Err(RecordError::NotAnObject);
        };
        map.insert("id".into(), Value::String(id.clone()));
        let received_at = received_at
            .to_offset(time::UtcOffset::UTC)
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| RecordError::Json(serde::ser::Error::custom(e)))?;
        map.insert("received_at".into(), Value::String(received_at));
        map.insert("submitted_by".into(), serde_json::to_value(submitted_by)?);
        map.insert("nonce".into(), Value::String(STANDARD.encode(nonce)));
        if !scrubbed.is_empty() {
            map.insert("scrubbed".into(), serde_json::to_value(scrubbed)?);
        }
        if !payloads.is_empty() {
            map.insert("payloads".into(), crate::payload::refs_value(payloads));
        }
        let (before, after): (Map<String, Value>, Map<String, Value>) =
            map.into_iter().partition(|(key, _)| key.as_str() < "prev");
        let unchained = Unchained {
            before: members(before)?,
            after: members(after)?,
            id,
            conversation_id,
            ends_conversation,
        };
        let size = unchained.max_leaf_len();
        if size > veritrail_ledger::bundle::MAX_ENTRY_SIZE {
            return Err(RecordError::TooLarge {
                size,
                max: veritrail_ledger::bundle::MAX_ENTRY_SIZE,
            });
        }
        Ok(unchained)
    }

    /// The most bytes [`Unchained::leaf`] can return.
    pub fn max_leaf_len(&self) -> usize {
        1 + 2 + self.before.len() + self.after.len() + 2 + ",\"prev\":".len() + MAX_PREV_LEN
    }

    /// The leaf bytes with `prev` as the chain link: `0x01 ‖ JCS(record)`.
    pub fn leaf(&self, prev: Option<&Prev>) -> Vec<u8> {
        let prev = prev.map_or_else(|| "null".to_owned(), Prev::canonical);
        let mut leaf = Vec::with_capacity(self.max_leaf_len());
        leaf.push(LEAF_VERSION);
        leaf.push(b'{');
        leaf.extend_from_slice(&self.before);
        if !self.before.is_empty() {
            leaf.push(b',');
        }
        leaf.extend_from_slice(b"\"prev\":");
        leaf.extend_from_slice(prev.as_bytes());
        if !self.after.is_empty() {
            leaf.push(b',');
        }
        leaf.extend_from_slice(&self.after);
        leaf.push(b'}');
        leaf
    }
}

/// Whether `leaf` is a record (starts with [`LEAF_VERSION`]).
pub fn is_record(leaf: &[u8]) -> bool {
    leaf.first() == Some(&LEAF_VERSION)
}

/// The record a leaf holds, checked to be a canonical JSON object.
///
/// This does not panic.
///
/// # Errors
/// [`RecordError::NotARecord`], [`RecordError::Json`], [`RecordError::NotAnObject`] or
/// [`RecordError::NotCanonical`].
pub fn parse_leaf(leaf: &[u8]) -> Result<Value, RecordError> {
    let Some((&LEAF_VERSION, json)) = leaf.split_first() else {
        return Err(RecordError::NotARecord);
    };
    let value: Value = serde_json::from_slice(json)?;
    if !value.is_object() {
        return Err(RecordError::NotAnObject);
    }
    if crate::jcs::to_vec(&value)? != json {
        return Err(RecordError::NotCanonical);
    }
    Ok(value)
}

/// The leaf bytes of a record given as JSON (as `GET /v1/records/<index>` returns it): what
/// a client hashes to check the record against its inclusion proof.
///
/// # Errors
/// [`RecordError::NotAnObject`] or [`RecordError::Json`].
pub fn leaf_of(record: &Value) -> Result<Vec<u8>, RecordError> {
    if !record.is_object() {
        return Err(RecordError::NotAnObject);
    }
    let mut leaf = vec![LEAF_VERSION];
    leaf.extend_from_slice(&crate::jcs::to_vec(record)?);
    Ok(leaf)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::parse_event;
    use serde_json::json;

    fn unchained(value: &Value) -> Unchained {
        let event = parse_event(value).unwrap();
        let at = time::OffsetDateTime::from_unix_timestamp(1_772_366_400).unwrap();
        Unchained::new(
            event,
            &SubmittedBy::Token {
                name: "agent-7".into(),
            },
            at,
            [7; NONCE_BYTES],
        )
        .unwrap()
    }

    fn event() -> Value {
        json!({
            "id": "3F2504E0-4F89-41D3-9A0C-0305E82C3301",
            "timestamp": "2026-03-01T12:00:00Z",
            "action": "tool_invoked",
            "actor": {"type": "agent", "id": "agent-7"},
            "conversation_id": "c-1",
            "details": {"z": 1.0, "a": "é", "m": [3, 2, 1]}
        })
    }

    #[test]
    fn the_leaf_is_the_canonical_json_of_the_whole_record() {
        let record = unchained(&event());
        let prev = Prev {
            index: 41,
            leaf_hash: Hash::try_from_slice(&[9; 32]).unwrap(),
        };
        for link in [None, Some(&prev)] {
            let leaf = record.leaf(link);
            let value = parse_leaf(&leaf).unwrap();
            assert_eq!(leaf_of(&value).unwrap(), leaf, "splicing gives JCS");
            assert_eq!(Prev::of(&value).as_ref(), link);
            assert_eq!(value["id"], "3f2504e0-4f89-41d3-9a0c-0305e82c3301");
            assert_eq!(value["received_at"], "2026-03-01T12:00:00Z");
            assert_eq!(
                value["submitted_by"],
                json!({"type": "token", "name": "agent-7"})
            );
            assert_eq!(value["nonce"], STANDARD.encode([7; NONCE_BYTES]));
        }
    }

    /// RFC 8785 section 3.2.2 (values) and 3.2.3 (sorting by UTF-16 code units).
    #[test]
    fn the_rfc_8785_examples_encode_exactly() {
        let input = r#"{
            "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
            "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
            "literals": [null, true, false]
        }"#;
        let want = "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\"string\":\"\u{20ac}$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}";
        let value: Value = serde_json::from_str(input).unwrap();
        let leaf = leaf_of(&value).unwrap();
        assert_eq!(std::str::from_utf8(&leaf[1..]).unwrap(), want);
        let sorting = r#"{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}"#;
        let value: Value = serde_json::from_str(sorting).unwrap();
        let keys: Vec<String> = match parse_leaf(&leaf_of(&value).unwrap()).unwrap() {
            Value::Object(_) => {
                let text = String::from_utf8(leaf_of(&value).unwrap()[1..].to_vec()).unwrap();
                let order = [
                    "\\r",
                    "1",
                    "\u{80}",
                    "\u{f6}",
                    "\u{20ac}",
                    "\u{1f600}",
                    "\u{fb33}",
                ];
                let positions: Vec<usize> = order
                    .iter()
                    .map(|k| text.find(&format!("\"{k}\":")).unwrap())
                    .collect();
                assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
                order.iter().map(|k| (*k).to_owned()).collect()
            }
            _ => unreachable!(),
        };
        assert_eq!(keys.len(), 7);
    }

    #[test]
    fn key_order_and_whitespace_do_not_change_the_leaf() {
        let text = r#" { "details" : {"m":[3,2,1], "a":"\u00e9", "z":1},
            "conversation_id":"c-1", "actor":{"id":"agent-7","type":"agent"},
            "action":"tool_invoked","timestamp":"2026-03-01T12:00:00Z",
            "id":"3f2504e0-4f89-41d3-9a0c-0305e82c3301" } "#;
        let reordered: Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            unchained(&reordered).leaf(None),
            unchained(&event()).leaf(None)
        );
    }

    #[test]
    fn non_records_and_non_canonical_leaves_are_refused() {
        assert!(matches!(parse_leaf(b"{}"), Err(RecordError::NotARecord)));
        assert!(matches!(parse_leaf(b""), Err(RecordError::NotARecord)));
        assert!(matches!(
            parse_leaf(b"\x01{\"b\":1,\"a\":2}"),
            Err(RecordError::NotCanonical)
        ));
        assert!(matches!(
            parse_leaf(b"\x01[1]"),
            Err(RecordError::NotAnObject)
        ));
        assert!(matches!(parse_leaf(b"\x01{"), Err(RecordError::Json(_))));
        assert!(parse_leaf(b"\x01{\"a\":2,\"b\":1}").is_ok());
    }

    #[test]
    fn the_largest_valid_record_fits_a_leaf() {
        let mut big = event();
        let long = |n: usize| "\u{2028}".repeat(n); // 3 bytes in UTF-8, escaped by none
        big["details"] = json!({ "k": "x".repeat(crate::MAX_DETAILS_BYTES - 20) });
        big["conversation_id"] = json!(long(256));
        big["session_id"] = json!(long(256));
        big["agent"] = json!({"name": long(256), "version": long(128)});
        big["actor"] = json!({"id": long(256), "type": "user"});
        big["resource"] = json!({"type": long(128), "id": long(256), "uri": long(2048)});
        let mut gen_ai = serde_json::Map::new();
        for name in crate::event::GenAi::ATTRIBUTES {
            if !name.starts_with("gen_ai.usage.") && name != "gen_ai.operation.name" {
                gen_ai.insert(name.into(), json!(long(256)));
            }
        }
        big["gen_ai"] = Value::Object(gen_ai);
        let event = parse_event(&big).unwrap();
        let at = time::OffsetDateTime::UNIX_EPOCH;
        let record = Unchained::new(event, &SubmittedBy::Anonymous, at, [0; NONCE_BYTES]).unwrap();
        assert!(record.max_leaf_len() <= veritrail_ledger::bundle::MAX_ENTRY_SIZE);
        assert!(record.max_leaf_len() > 30_000, "{}", record.max_leaf_len());
    }

    #[test]
    fn generated_ids_are_random_uuids() {
        let mut value = event();
        value.as_object_mut().unwrap().remove("id");
        let a = unchained(&value);
        let b = unchained(&value);
        assert_ne!(a.id, b.id);
        assert_eq!(uuid::Uuid::parse_str(&a.id).unwrap().get_version_num(), 4);
    }
}
