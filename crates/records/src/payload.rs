//! Payloads: sensitive contents (prompts, responses, code, tool arguments and results) kept
//! off the tree. The leaf holds only `{media_type, size, commitment}` per payload, with
//!
//! ```text
//! commitment = HMAC-SHA-256(opening_key, "veritrail/payload/v1" ‖ payload)
//! ```
//!
//! and a fresh random 32-byte `opening_key` per payload. A plain hash would let anyone confirm
//! a guessable payload (a diagnosis code, a yes/no) from the public tiles' leaves; without the
//! opening key the commitment says nothing about the payload, and with it the payload is
//! proven to be exactly the one logged. Payload and opening key live in the server's encrypted
//! payload store; destroying them (erasure) leaves every proof intact.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit as _, Mac as _};
use serde_json::Value;
use sha2::Sha256;

use crate::problem::FieldProblem;

/// Bytes of an opening key.
pub const OPENING_KEY_BYTES: usize = 32;

/// Most payloads in one record.
pub const MAX_PAYLOADS: usize = 16;

/// Largest payload, decoded: 4 MiB (a long conversation turn or a source file; the request
/// body limit bounds the sum).
pub const MAX_PAYLOAD_BYTES: usize = 4 << 20;

/// Standard padded base64 that also takes nonzero bits after the last full byte (what some
/// encoders emit, and what a JSON Schema `pattern` cannot tell apart).
const LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// Decodes a payload's `base64` as the server does (standard alphabet, padded, nonzero
/// trailing bits allowed).
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    LENIENT.decode(text).ok()
}

/// The domain separator of payload commitments.
const DOMAIN: &[u8] = b"veritrail/payload/v1";

/// A payload as the agent sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    /// Its name, e.g. `prompt`.
    pub name: String,
    /// Its media type, e.g. `text/plain; charset=utf-8`.
    pub media_type: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// The commitment to `payload` under `opening_key`.
pub fn commitment(opening_key: &[u8; OPENING_KEY_BYTES], payload: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256>>::new_from_slice(opening_key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(DOMAIN);
    mac.update(payload);
    mac.finalize().into_bytes().into()
}

/// Whether `payload` with `opening_key` opens `commitment` (compared in constant time).
pub fn opens(commitment: &[u8], opening_key: &[u8], payload: &[u8]) -> bool {
    if opening_key.len() != OPENING_KEY_BYTES {
        return false;
    }
    let Ok(mut mac) = <Hmac<Sha256>>::new_from_slice(opening_key) else {
        return false;
    };
    mac.update(DOMAIN);
    mac.update(payload);
    mac.verify_slice(commitment).is_ok()
}

/// The commitment a stored record holds for payload `name` (decoded), if any.
pub fn stored_commitment(record: &Value, name: &str) -> Option<Vec<u8>> {
    let text = record
        .get("payloads")?
        .get(name)?
        .get("commitment")?
        .as_str()?;
    STANDARD.decode(text).ok()
}

/// Whether `name` is a payload name: 1 to 64 of lowercase letters, digits, `_`, `-`, `.`,
/// starting with a letter, digit or `_`.
pub fn is_payload_name(name: &str) -> bool {
    name.len() <= 64
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
        })
}

/// Reads the `payloads` of a submitted event: `{"<name>": {"media_type", "text"}}` or with
/// `"base64"` instead of `"text"`. Every problem is named by its field.
///
/// # Errors
/// The problems found.
pub fn parse_payloads(value: &Value) -> Result<Vec<Payload>, Vec<FieldProblem>> {
    let mut problems = Vec::new();
    let mut problem = |field: String, text: &str| {
        problems.push(FieldProblem {
            field,
            problem: text.to_owned(),
        });
    };
    let Some(map) = value.as_object() else {
        problem("payloads".into(), "must be an object of named payloads");
        return Err(problems);
    };
    if map.len() > MAX_PAYLOADS {
        problem("payloads".into(), "at most 16 payloads");
        return Err(problems);
    }
    let mut out = Vec::with_capacity(map.len());
    for (name, payload) in map {
        let field = format!("payloads.{name}");
        if !is_payload_name(name) {
            problem(
                field,
                "a payload name is 1 to 64 of a-z, 0-9, _, - and . (e.g. prompt, tool_result)",
            );
            continue;
        }
        let Some(payload) = payload.as_object() else {
            problem(
                field,
                "must be {\"media_type\", \"text\"} or {\"media_type\", \"base64\"}",
            );
            continue;
        };
        let mut fields = payload.keys().map(String::as_str).collect::<Vec<_>>();
        fields.sort_unstable();
        let media_type = payload.get("media_type").and_then(Value::as_str);
        let valid_media = media_type.is_some_and(|m| {
            (1..=128).contains(&m.len()) && m.contains('/') && !m.chars().any(char::is_control)
        });
        if !valid_media {
            problem(
                format!("{field}.media_type"),
                "must be a media type such as text/plain",
            );
        }
        let bytes = match (
            fields.as_slice(),
            payload.get("text"),
            payload.get("base64"),
        ) {
            (["media_type", "text"], Some(Value::String(text)), _) => {
                Some(text.as_bytes().to_vec())
            }
            (["base64", "media_type"], _, Some(Value::String(b64))) => match LENIENT.decode(b64) {
                Ok(bytes) => Some(bytes),
                Err(_) => {
                    problem(format!("{field}.base64"), "must be standard padded base64");
                    None
                }
            },
            _ => {
                problem(
                    field.clone(),
                    "must hold media_type and exactly one of text (a string) or base64",
                );
                None
            }
        };
        let Some(bytes) = bytes else { continue };
        if bytes.len() > MAX_PAYLOAD_BYTES {
            problem(field, "is larger than 4 MiB");
            continue;
        }
        if let (true, Some(media_type)) = (valid_media, media_type) {
            out.push(Payload {
                name: name.clone(),
                media_type: media_type.to_owned(),
                bytes,
            });
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// What a stored record holds for one payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadRef {
    /// Its media type.
    pub media_type: String,
    /// Its size in bytes.
    pub size: usize,
    /// Its commitment.
    pub commitment: [u8; 32],
}

/// The `payloads` member of a stored record.
pub(crate) fn refs_value(refs: &BTreeMap<String, PayloadRef>) -> Value {
    Value::Object(
        refs.iter()
            .map(|(name, r)| {
                (
                    name.clone(),
                    serde_json::json!({
                        "media_type": r.media_type,
                        "size": r.size,
                        "commitment": STANDARD.encode(r.commitment),
                    }),
                )
            })
            .collect(),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_commitment_opens_only_with_its_key_and_payload() {
        let key = [7u8; OPENING_KEY_BYTES];
        let c = commitment(&key, b"HIV+");
        assert!(opens(&c, &key, b"HIV+"));
        assert!(!opens(&c, &key, b"HIV-"));
        assert!(!opens(&c, &[8u8; OPENING_KEY_BYTES], b"HIV+"));
        assert!(!opens(&c, &key[..31], b"HIV+"));
        assert!(!opens(&c[..31], &key, b"HIV+"));
        // Not a plain hash: without the key, the commitment to a guess does not match.
        assert_ne!(commitment(&[0; 32], b"HIV+"), c);
    }

    #[test]
    fn payloads_parse_with_every_problem_named() {
        let ok = parse_payloads(&json!({
            "prompt": {"media_type": "text/plain", "text": "What is my dosage?"},
            "image": {"media_type": "image/png", "base64": "iVBORw0KGgo="}
        }))
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[0].name, "image");
        assert_eq!(ok[0].bytes, STANDARD.decode("iVBORw0KGgo=").unwrap());
        let bad = parse_payloads(&json!({
            "Prompt": {"media_type": "text/plain", "text": "x"},
            "a": {"media_type": "plain", "text": "x"},
            "b": {"media_type": "text/plain", "text": "x", "base64": "eA=="},
            "c": {"media_type": "text/plain", "base64": "!!"},
            "d": "just text"
        }))
        .unwrap_err();
        let fields: Vec<&str> = bad.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "payloads.Prompt",
                "payloads.a.media_type",
                "payloads.b",
                "payloads.c.base64",
                "payloads.d"
            ]
        );
        assert!(parse_payloads(&json!([1])).is_err());
    }
}
