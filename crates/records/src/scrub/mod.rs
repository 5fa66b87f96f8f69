//! Scrubbing: secrets and PHI-like identifiers are cut out of a record's free-text metadata
//! (`details`, `resource.uri`) before it is encoded, because nothing that enters the tree can
//! ever be removed. Each hit becomes `[REDACTED:<kind>]` and the record lists the kinds it
//! lost (`scrubbed`); in reject mode a hit refuses the record instead (422).
//!
//! The rules are deliberately specific (known key prefixes, checksummed shapes, separators
//! required in phone numbers) so that ordinary metadata (ids, dates, versions, amounts)
//! passes untouched; `tests` pins 30 hits and 30 misses per rule family. Sensitive contents
//! (prompts, responses) belong in payloads, which stay off the tree, not in metadata.

use std::collections::BTreeSet;

use regex::Regex;
use serde_json::Value;

/// One kind of secret or identifier.
#[derive(Debug)]
struct Rule {
    /// The name written into `[REDACTED:<kind>]` and `scrubbed`.
    kind: String,
    /// What a hit looks like.
    pattern: Regex,
    /// A further check on the matched text (for shapes a regex cannot tell apart).
    check: Option<fn(&str) -> bool>,
}

/// The kinds of the built-in rules, in the order they run.
pub const KINDS: [&str; 9] = [
    "private_key",
    "jwt",
    "url_password",
    "cloud_key",
    "api_key",
    "ssn",
    "email",
    "phone",
    "mrn",
];

/// The default medical-record-number pattern: `MRN`, optional separators, 6 to 10 digits.
pub const DEFAULT_MRN_PATTERN: &str = r"(?i)\bMRN[\s:#-]*\d{6,10}\b";

/// Why a scrubber cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("invalid {kind} pattern: {source}")]
pub struct PatternError {
    /// The rule.
    pub kind: String,
    /// The regex error.
    #[source]
    pub source: regex::Error,
}

/// What to do with a hit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ScrubMode {
    /// Replace it with `[REDACTED:<kind>]` and list the kind in `scrubbed`.
    #[default]
    Redact,
    /// Refuse the record (422 naming the field and the kind).
    Reject,
}

/// A hit, in reject mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    /// The field's path, e.g. `details.note`.
    pub field: String,
    /// The rule's kind.
    pub kind: String,
}

/// The scrubbing rules.
#[derive(Debug)]
pub struct Scrubber {
    rules: Vec<Rule>,
}

/// A US Social Security number the SSA could issue: area not 000, 666 or 9xx; group not 00;
/// serial not 0000.
fn plausible_ssn(text: &str) -> bool {
    let digits: Vec<u32> = text.chars().filter_map(|c| c.to_digit(10)).collect();
    let [a, b, c, d, e, f, g, h, i] = digits[..] else {
        return false;
    };
    let area = a * 100 + b * 10 + c;
    area != 0 && area != 666 && a != 9 && (d, e) != (0, 0) && (f, g, h, i) != (0, 0, 0, 0)
}

/// A phone number has 8 to 15 digits (E.164 allows at most 15).
fn plausible_phone(text: &str) -> bool {
    (8..=15).contains(&text.chars().filter(char::is_ascii_digit).count())
}

impl Scrubber {
    /// The built-in rules, with `mrn_pattern` for medical record numbers (the default is
    /// [`DEFAULT_MRN_PATTERN`]).
    ///
    /// # Errors
    /// [`PatternError`] if `mrn_pattern` is not a valid regex.
    pub fn new(mrn_pattern: &str) -> Result<Scrubber, PatternError> {
        let rule = |kind: &str, pattern: &str, check: Option<fn(&str) -> bool>| {
            Regex::new(pattern)
                .map(|pattern| Rule {
                    kind: kind.to_owned(),
                    pattern,
                    check,
                })
                .map_err(|source| PatternError {
                    kind: kind.to_owned(),
                    source,
                })
        };
        let rules = vec![
            rule(
                "private_key",
                r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?s:.*?)(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\z)",
                None,
            )?,
            rule(
                "jwt",
                r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{8,}",
                None,
            )?,
            rule(
                "url_password",
                r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]*:[^\s/@]+@",
                None,
            )?,
            rule(
                "cloud_key",
                r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}\b|(?i:aws_secret_access_key|aws_session_token)\s*[=:]\s*['\x22]?[A-Za-z0-9/+=]{40,}|\bAccountKey=[A-Za-z0-9+/=]{40,}|\bAIza[0-9A-Za-z_-]{35}\b|\bya29\.[0-9A-Za-z_-]{20,}",
                None,
            )?,
            rule(
                "api_key",
                r"\b(?:sk|pk|rk)[-_](?:live|test|proj|ant)[-_][A-Za-z0-9_-]{16,}|\bsk-[A-Za-z0-9_-]{20,}|\bgh[pousr]_[A-Za-z0-9]{36,}|\bgithub_pat_[A-Za-z0-9_]{22,}|\bglpat-[A-Za-z0-9_-]{20,}|\bxox[abposr]-[A-Za-z0-9-]{10,}|\bnpm_[A-Za-z0-9]{36}\b|(?i:\bbearer\s+)[A-Za-z0-9._~+/-]{16,}=*|(?i:\b(?:api[_-]?key|secret|access[_-]?token|auth[_-]?token|password|passwd)\b\s*[=:]\s*['\x22]?)[^\s'\x22,;]{8,}",
                None,
            )?,
            rule("ssn", r"\b\d{3}-\d{2}-\d{4}\b", Some(plausible_ssn))?,
            rule(
                "email",
                r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}\b",
                None,
            )?,
            rule(
                "phone",
                r"(?:\+\d{1,3}[\s.-]?)?(?:\(\d{3}\)\s?|\b\d{3}[\s.-])\d{3}[\s.-]\d{4}\b|\+\d{1,3}(?:[\s.-]\d{1,4}){2,5}\b|\+\d{10,15}\b",
                Some(plausible_phone),
            )?,
            rule("mrn", mrn_pattern, None)?,
        ];
        Ok(Scrubber { rules })
    }

    /// Scrubs one string: every hit replaced by `[REDACTED:<kind>]`; the kinds hit are
    /// added to `kinds`.
    pub fn scrub_text(&self, text: &str, kinds: &mut BTreeSet<String>) -> String {
        let mut out = text.to_owned();
        for rule in &self.rules {
            let mut hit = false;
            let replaced = rule
                .pattern
                .replace_all(&out, |caps: &regex::Captures<'_>| {
                    let matched = caps.get(0).map_or("", |m| m.as_str());
                    if rule.check.is_none_or(|check| check(matched)) {
                        hit = true;
                        format!("[REDACTED:{}]", rule.kind)
                    } else {
                        matched.to_owned()
                    }
                });
            if hit {
                out = replaced.into_owned();
                kinds.insert(rule.kind.clone());
            }
        }
        out
    }

    /// The kinds found in `text`, without changing it.
    pub fn kinds_in(&self, text: &str) -> BTreeSet<String> {
        let mut kinds = BTreeSet::new();
        let _ = self.scrub_text(text, &mut kinds);
        kinds
    }

    /// Scrubs every string (and object key) of `value` in place; the kinds hit are added to
    /// `kinds`, and each hit's field to `hits`.
    pub fn scrub_value(
        &self,
        field: &str,
        value: &mut Value,
        kinds: &mut BTreeSet<String>,
        hits: &mut Vec<Hit>,
    ) {
        match value {
            Value::String(text) => {
                let mut found = BTreeSet::new();
                let scrubbed = self.scrub_text(text, &mut found);
                if !found.is_empty() {
                    *text = scrubbed;
                    for kind in found {
                        hits.push(Hit {
                            field: field.to_owned(),
                            kind: kind.clone(),
                        });
                        kinds.insert(kind);
                    }
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.scrub_value(&format!("{field}[{i}]"), item, kinds, hits);
                }
            }
            Value::Object(map) => {
                let entries = std::mem::take(map);
                for (key, mut item) in entries {
                    let mut found = BTreeSet::new();
                    let key = self.scrub_text(&key, &mut found);
                    let path = format!("{field}.{key}");
                    for kind in found {
                        hits.push(Hit {
                            field: path.clone(),
                            kind: kind.clone(),
                        });
                        kinds.insert(kind);
                    }
                    self.scrub_value(&path, &mut item, kinds, hits);
                    map.insert(key, item);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

/// Scrubs an event's free-text metadata (`details` and `resource.uri`) before it is encoded.
/// In [`ScrubMode::Redact`] the event is changed and the kinds hit are returned (for the
/// record's `scrubbed`); in [`ScrubMode::Reject`] a hit refuses the event, naming each field
/// and kind, and the event is left as it was.
///
/// # Errors
/// The problems, in reject mode, when anything was hit.
pub fn scrub_event(
    scrubber: &Scrubber,
    event: &mut crate::AuditEvent,
    mode: ScrubMode,
) -> Result<BTreeSet<String>, Vec<crate::FieldProblem>> {
    let mut kinds = BTreeSet::new();
    let mut hits = Vec::new();
    let mut details = event.details.clone().map(Value::Object);
    if let Some(details) = details.as_mut() {
        scrubber.scrub_value("details", details, &mut kinds, &mut hits);
    }
    let mut uri = event
        .resource
        .as_ref()
        .and_then(|r| r.uri.clone())
        .map(Value::String);
    if let Some(uri) = uri.as_mut() {
        scrubber.scrub_value("resource.uri", uri, &mut kinds, &mut hits);
    }
    if hits.is_empty() {
        return Ok(kinds);
    }
    if mode == ScrubMode::Reject {
        return Err(hits
            .into_iter()
            .map(|hit| crate::FieldProblem {
                field: hit.field,
                problem: format!(
                    "holds what looks like a {} (the server refuses secrets and identifiers in metadata; send sensitive content as a payload)",
                    hit.kind
                ),
            })
            .collect());
    }
    if let Some(Value::Object(details)) = details {
        event.details = Some(details);
    }
    if let (Some(resource), Some(Value::String(uri))) = (event.resource.as_mut(), uri) {
        resource.uri = Some(uri);
    }
    Ok(kinds)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests;
