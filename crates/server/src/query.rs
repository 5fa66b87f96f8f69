//! Strict parameter parsing: every query parameter is known, given at most once, and
//! canonical; path parameters are canonical decimals.
//!
//! Values are percent-decoded (`%2B` is `+`); a literal `+` stays `+` (this is not an HTML
//! form), so base64 leaf hashes work whether or not the client encodes them.

use veritrail_ledger::Hash;
use veritrail_ledger::ascii::parse_decimal;

use crate::error::ApiError;

/// Longest query string accepted, in bytes.
const MAX_QUERY: usize = 1024;

/// Parsed parameters of one request.
#[derive(Debug, Default)]
pub(crate) struct Params(Vec<(&'static str, String)>);

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// Decodes `%XX` escapes; `None` for a malformed escape or bytes that are not UTF-8.
pub(crate) fn percent_decode(raw: &str) -> Option<String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = bytes.next().and_then(hex_value)?;
            let lo = bytes.next().and_then(hex_value)?;
            out.push(hi << 4 | lo);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

impl Params {
    /// Parses `raw` allowing only the names in `allowed`.
    pub(crate) fn parse(raw: Option<&str>, allowed: &[&'static str]) -> Result<Self, ApiError> {
        let raw = raw.unwrap_or_default();
        if raw.len() > MAX_QUERY {
            return Err(ApiError::param(
                "query",
                format!("longer than {MAX_QUERY} bytes"),
            ));
        }
        let mut params = Vec::new();
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let Some(known) = allowed.iter().find(|a| **a == name) else {
                return Err(ApiError::param(
                    "query",
                    format!(
                        "unknown parameter {name:?}; this endpoint takes {}",
                        allowed.join(", ")
                    ),
                ));
            };
            if params.iter().any(|(n, _)| n == known) {
                return Err(ApiError::param(known, "given more than once"));
            }
            let value = percent_decode(value)
                .ok_or_else(|| ApiError::param(known, "bad percent-encoding"))?;
            params.push((*known, value));
        }
        Ok(Params(params))
    }

    fn raw(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A canonical decimal u64 parameter, if present.
    pub(crate) fn u64(&self, name: &'static str) -> Result<Option<u64>, ApiError> {
        self.raw(name).map(|v| parse_u64(name, v)).transpose()
    }

    /// A base64 hash parameter, if present.
    pub(crate) fn hash(&self, name: &'static str) -> Result<Option<Hash>, ApiError> {
        self.raw(name)
            .map(|v| {
                Hash::from_base64(v).map_err(|e| {
                    ApiError::param(name, format!("{e}; expected 32 bytes in standard base64"))
                })
            })
            .transpose()
    }

    /// A flag: absent, `0`/`false` or `1`/`true`.
    pub(crate) fn flag(&self, name: &'static str) -> Result<bool, ApiError> {
        match self.raw(name) {
            None | Some("0" | "false") => Ok(false),
            Some("1" | "true" | "") => Ok(true),
            Some(other) => Err(ApiError::param(
                name,
                format!("{other:?} is not 0, 1, true or false"),
            )),
        }
    }

    /// A string parameter, if present.
    pub(crate) fn text(&self, name: &'static str) -> Option<&str> {
        self.raw(name)
    }
}

/// Parses a canonical decimal u64 (digits only, no sign, no leading zeros).
pub(crate) fn parse_u64(name: &'static str, value: &str) -> Result<u64, ApiError> {
    parse_decimal(value)
        .map_err(|e| ApiError::param(name, format!("{value:?} is not a canonical decimal: {e}")))
}

/// A path parameter's text; a segment that does not percent-decode to UTF-8 is a parameter
/// error (axum's own rejection is plain text, not the JSON error every endpoint answers).
pub(crate) fn path_text(
    name: &'static str,
    path: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<String, ApiError> {
    path.map(|axum::extract::Path(text)| text)
        .map_err(|e| ApiError::param(name, e.body_text()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_known_parameters_strictly() {
        let p = Params::parse(Some("index=5&size=10"), &["index", "size"]).unwrap();
        assert_eq!(p.u64("index").unwrap(), Some(5));
        assert_eq!(p.u64("size").unwrap(), Some(10));
        assert!(Params::parse(Some("index=1&index=2"), &["index"]).is_err());
        assert!(Params::parse(Some("bogus=1"), &["index"]).is_err());
        for bad in [
            "01",
            "-1",
            "+1",
            "1e3",
            "18446744073709551616",
            "",
            " 1",
            "0x10",
        ] {
            let p = Params::parse(Some(&format!("index={bad}")), &["index"]).unwrap();
            assert!(
                matches!(
                    p.u64("index"),
                    Err(ApiError::InvalidParameter { name: "index", .. })
                ),
                "{bad}"
            );
        }
        assert!(Params::parse(Some("index=%zz"), &["index"]).is_err());
    }

    #[test]
    fn base64_survives_with_or_without_percent_encoding() {
        let h = veritrail_ledger::leaf_hash(b"x").to_base64();
        let encoded = h
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        for q in [format!("leaf_hash={h}"), format!("leaf_hash={encoded}")] {
            let p = Params::parse(Some(&q), &["leaf_hash"]).unwrap();
            assert_eq!(p.hash("leaf_hash").unwrap().unwrap().to_base64(), h);
        }
    }

    proptest! {
        #[test]
        fn never_panics(raw in ".{0,200}") {
            if let Ok(p) = Params::parse(Some(&raw), &["index", "size", "leaf_hash", "proof"]) {
                let _ = p.u64("index");
                let _ = p.hash("leaf_hash");
                let _ = p.flag("proof");
            }
        }
    }
}
