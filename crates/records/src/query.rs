//! Record queries: the filters of `GET /v1/records`, parsed from query parameters and
//! evaluated on stored records.
//!
//! The server answers a query from its indexes (an untrusted convenience); the client
//! evaluates the very same [`Filter::matches`] on every record it receives, after proving the
//! record in the log, so a server cannot pass off a record that does not match.
//!
//! Filters of different fields must all hold; the values of one repeatable field (`action`)
//! are alternatives. `since` and `until` bound the record's `timestamp`: `since <= t < until`.

use serde_json::Value;

use crate::event::{Action, Classification, Domain};

/// A query's filters. The default filter matches every record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// `conversation_id`.
    pub conversation_id: Option<String>,
    /// `actor.id`.
    pub actor_id: Option<String>,
    /// Who submitted it: a token's name, an OIDC subject, or `anonymous`.
    pub submitted_by: Option<String>,
    /// `agent.name`.
    pub agent: Option<String>,
    /// `action`: any of these (empty: any action).
    pub actions: Vec<String>,
    /// `resource.type`.
    pub resource_type: Option<String>,
    /// `resource.id`.
    pub resource_id: Option<String>,
    /// `classification`, exactly.
    pub classification: Option<String>,
    /// A domain `compliance` holds.
    pub compliance: Option<String>,
    /// Earliest `timestamp` (inclusive), as Unix nanoseconds.
    pub since: Option<i128>,
    /// Latest `timestamp` (exclusive), as Unix nanoseconds.
    pub until: Option<i128>,
}

/// The query parameters a [`Filter`] is made of, in the order they are documented.
pub const FILTER_PARAMETERS: [&str; 11] = [
    "conversation_id",
    "actor_id",
    "submitted_by",
    "agent",
    "action",
    "resource_type",
    "resource_id",
    "classification",
    "compliance",
    "since",
    "until",
];

/// Longest filter value accepted, in characters (as record fields are).
pub const MAX_FILTER_VALUE: usize = 256;

/// A parameter that does not make a filter: its name and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{parameter}: {problem}")]
pub struct BadFilter {
    /// The parameter's name.
    pub parameter: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

/// Unix nanoseconds of an RFC 3339 time.
pub fn unix_nanos(text: &str) -> Option<i128> {
    // RFC 3339 allows a lower-case `t` and `z`.
    let text = text.to_ascii_uppercase();
    time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(time::OffsetDateTime::unix_timestamp_nanos)
}

impl Filter {
    /// Adds one query parameter (`action` may be given more than once; the others once).
    ///
    /// # Errors
    /// [`BadFilter`] for an unknown parameter, a repeated one, an empty or overlong value, an
    /// unknown action, classification or domain, or a time that is not RFC 3339.
    pub fn add(&mut self, name: &str, value: &str) -> Result<(), BadFilter> {
        let parameter = FILTER_PARAMETERS
            .iter()
            .copied()
            .find(|p| *p == name)
            .ok_or_else(|| BadFilter {
                parameter: "query",
                problem: format!(
                    "unknown parameter {name:?}; filters are {}",
                    FILTER_PARAMETERS.join(", ")
                ),
            })?;
        let bad = |problem: String| BadFilter { parameter, problem };
        if value.is_empty() || value.chars().count() > MAX_FILTER_VALUE {
            return Err(bad(format!("give 1 to {MAX_FILTER_VALUE} characters")));
        }
        if value.chars().any(|c| c.is_control()) {
            return Err(bad("control characters cannot match any record".into()));
        }
        let once = |slot: &mut Option<String>| {
            if slot.is_some() {
                return Err(bad("given more than once".into()));
            }
            *slot = Some(value.to_owned());
            Ok(())
        };
        match parameter {
            "conversation_id" => once(&mut self.conversation_id),
            "actor_id" => once(&mut self.actor_id),
            "submitted_by" => once(&mut self.submitted_by),
            "agent" => once(&mut self.agent),
            "resource_type" => once(&mut self.resource_type),
            "resource_id" => once(&mut self.resource_id),
            "action" => {
                Action::parse(value).map_err(bad)?;
                if self.actions.len() >= 32 {
                    return Err(bad("at most 32 actions".into()));
                }
                self.actions.push(value.to_owned());
                Ok(())
            }
            "classification" => {
                serde_json::from_value::<Classification>(Value::String(value.to_owned()))
                    .map_err(|_| bad("use public, internal, confidential or restricted".into()))?;
                once(&mut self.classification)
            }
            "compliance" => {
                Domain::parse(value).map_err(bad)?;
                once(&mut self.compliance)
            }
            "since" | "until" => {
                let nanos = unix_nanos(value)
                    .ok_or_else(|| bad("an RFC 3339 time, e.g. 2026-03-01T00:00:00Z".into()))?;
                let slot = if parameter == "since" {
                    &mut self.since
                } else {
                    &mut self.until
                };
                if slot.is_some() {
                    return Err(bad("given more than once".into()));
                }
                *slot = Some(nanos);
                Ok(())
            }
            _ => Err(bad("unknown".into())),
        }
    }

    /// The filter's query parameters (times in RFC 3339 UTC), for a request.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        let mut put = |name: &'static str, value: &Option<String>| {
            if let Some(value) = value {
                pairs.push((name, value.clone()));
            }
        };
        put("conversation_id", &self.conversation_id);
        put("actor_id", &self.actor_id);
        put("submitted_by", &self.submitted_by);
        put("agent", &self.agent);
        put("resource_type", &self.resource_type);
        put("resource_id", &self.resource_id);
        put("classification", &self.classification);
        put("compliance", &self.compliance);
        for action in &self.actions {
            pairs.push(("action", action.clone()));
        }
        for (name, nanos) in [("since", self.since), ("until", self.until)] {
            if let Some(text) = nanos.and_then(rfc3339) {
                pairs.push((name, text));
            }
        }
        pairs
    }

    /// Whether the stored record `record` (as JSON) passes every filter.
    pub fn matches(&self, record: &Value) -> bool {
        let text = |path: &[&str]| {
            path.iter()
                .try_fold(record, |v, key| v.get(key))
                .and_then(Value::as_str)
        };
        let equal = |want: &Option<String>, path: &[&str]| {
            want.as_deref().is_none_or(|w| text(path) == Some(w))
        };
        let time = || text(&["timestamp"]).and_then(unix_nanos);
        equal(&self.conversation_id, &["conversation_id"])
            && equal(&self.actor_id, &["actor", "id"])
            && equal(&self.agent, &["agent", "name"])
            && equal(&self.resource_type, &["resource", "type"])
            && equal(&self.resource_id, &["resource", "id"])
            && equal(&self.classification, &["classification"])
            && self
                .submitted_by
                .as_deref()
                .is_none_or(|w| submitter_of(record) == Some(w))
            && (self.actions.is_empty()
                || text(&["action"]).is_some_and(|a| self.actions.iter().any(|w| w == a)))
            && self.compliance.as_deref().is_none_or(|w| {
                record
                    .get("compliance")
                    .and_then(Value::as_array)
                    .is_some_and(|domains| domains.iter().any(|d| d.as_str() == Some(w)))
            })
            && self.since.is_none_or(|s| time().is_some_and(|t| t >= s))
            && self.until.is_none_or(|u| time().is_some_and(|t| t < u))
    }
}

/// Who submitted a stored record, as the `submitted_by` filter names it: a token's name, an
/// OIDC subject, or `anonymous`.
pub fn submitter_of(record: &Value) -> Option<&str> {
    let by = record.get("submitted_by")?;
    match by.get("type").and_then(Value::as_str)? {
        "token" => by.get("name").and_then(Value::as_str),
        "oidc" => by.get("subject").and_then(Value::as_str),
        "anonymous" => Some("anonymous"),
        _ => None,
    }
}

/// RFC 3339 UTC text of Unix nanoseconds.
fn rfc3339(nanos: i128) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()?
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record() -> Value {
        json!({
            "timestamp": "2026-03-01T12:00:00Z",
            "action": "tool_invoked",
            "actor": {"id": "triage", "type": "agent"},
            "agent": {"name": "triage-bot"},
            "conversation_id": "c-1",
            "resource": {"type": "patient_record", "id": "P-7"},
            "classification": "restricted",
            "compliance": ["hipaa", "soc2"],
            "submitted_by": {"type": "oidc", "issuer": "https://i/", "subject": "agent-9"},
        })
    }

    fn filter(pairs: &[(&str, &str)]) -> Filter {
        let mut f = Filter::default();
        for (k, v) in pairs {
            f.add(k, v).unwrap();
        }
        f
    }

    #[test]
    fn filters_select_on_every_field() {
        let r = record();
        for (pairs, want) in [
            (vec![], true),
            (vec![("conversation_id", "c-1")], true),
            (vec![("conversation_id", "c-2")], false),
            (vec![("actor_id", "triage"), ("agent", "triage-bot")], true),
            (vec![("submitted_by", "agent-9")], true),
            (vec![("submitted_by", "https://i/")], false),
            (vec![("action", "error"), ("action", "tool_invoked")], true),
            (vec![("action", "error")], false),
            (
                vec![("resource_type", "patient_record"), ("resource_id", "P-7")],
                true,
            ),
            (vec![("resource_id", "P-8")], false),
            (
                vec![("classification", "restricted"), ("compliance", "soc2")],
                true,
            ),
            (vec![("compliance", "pci_dss")], false),
            (vec![("since", "2026-03-01T12:00:00Z")], true),
            (vec![("until", "2026-03-01T12:00:00Z")], false),
            (
                vec![
                    ("since", "2026-02-01T00:00:00+01:00"),
                    ("until", "2026-03-02T00:00:00Z"),
                ],
                true,
            ),
        ] {
            let f = filter(&pairs);
            assert_eq!(f.matches(&r), want, "{pairs:?}");
            // The parameters round-trip.
            let mut again = Filter::default();
            for (k, v) in f.to_pairs() {
                again.add(k, &v).unwrap();
            }
            assert_eq!(again, f, "{pairs:?}");
        }
    }

    #[test]
    fn bad_parameters_name_themselves() {
        for (name, value, parameter) in [
            ("colour", "red", "query"),
            ("action", "dance", "action"),
            ("classification", "secret", "classification"),
            ("compliance", "hippa", "compliance"),
            ("since", "yesterday", "since"),
            ("actor_id", "", "actor_id"),
        ] {
            let err = Filter::default().add(name, value).unwrap_err();
            assert_eq!(err.parameter, parameter, "{name}={value}: {err}");
        }
        let mut f = filter(&[("agent", "a")]);
        assert_eq!(f.add("agent", "b").unwrap_err().parameter, "agent");
    }
}
