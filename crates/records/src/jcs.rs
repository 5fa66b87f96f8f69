//! RFC 8785 (JCS) canonical JSON of a `serde_json::Value`, fast.
//!
//! `serde_json_canonicalizer` is correct but costly on the append path (per object member it
//! re-parses the key and allocates three buffers: 11% of the server's CPU under records load,
//! `docs/performance.md`). This writer does the same in one pass: object members sorted by
//! their keys' UTF-16 code units (RFC 8785 section 3.2.3), strings escaped as ECMAScript's
//! `JSON.stringify` does (which is what `serde_json` writes), integers of at most 2^53 in
//! magnitude as plain decimals. Every other number — the hard part, ECMAScript's shortest
//! round-trip formatting — is still written by `serde_json_canonicalizer`. A property test
//! checks this writer against that crate on arbitrary values.

use serde_json::Value;

/// Largest integer magnitude written directly: beyond it ECMAScript numbers lose precision
/// and the crate's formatting applies.
const MAX_EXACT: u64 = 1 << 53;

/// The canonical JSON of `value`.
///
/// # Errors
/// A number the canonicalizer refuses (none that `serde_json` parses).
pub fn to_vec(value: &Value) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(256);
    write(value, &mut out)?;
    Ok(out)
}

fn write(value: &Value, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) if u <= MAX_EXACT => out.extend_from_slice(u.to_string().as_bytes()),
            (_, Some(i)) if i.unsigned_abs() <= MAX_EXACT => {
                out.extend_from_slice(i.to_string().as_bytes());
            }
            _ => out.extend_from_slice(&serde_json_canonicalizer::to_vec(value)?),
        },
        Value::String(s) => serde_json::to_writer(&mut *out, s)?,
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push(b'{');
            for (i, (key, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key)?;
                out.push(b':');
                write(item, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-(1i64 << 54)..(1i64 << 54)).prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            prop_oneof![
                any::<String>(),
                "[\\u{0}-\\u{7f}]{0,12}",
                "[\\u{0}-\\u{1f}\"\\\\\\u{7f}\\u{80}\\u{2028}\\u{e000}-\\u{ffff}\\u{10000}-\\u{10ffff}]{0,6}",
            ]
            .prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                proptest::collection::btree_map(
                    prop_oneof![
                        any::<String>(),
                        "[a-z]{1,4}",
                        "[\\u{e000}-\\u{ffff}\\u{10000}-\\u{10ffff}a]{1,3}",
                    ],
                    inner,
                    0..8
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4_000))]
        #[test]
        fn writes_exactly_what_the_reference_canonicalizer_writes(value in json()) {
            prop_assert_eq!(
                to_vec(&value).unwrap(),
                serde_json_canonicalizer::to_vec(&value).unwrap()
            );
        }
    }
}
