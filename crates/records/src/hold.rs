//! Legal holds: what they cover, and which are in force, read from the log itself.
//!
//! A hold is placed and released only by the server, as records in the server's namespace
//! (an agent cannot write `x-veritrail.*` actions):
//!
//! - `x-veritrail.legal_hold`, `details`: `{"scope": <scope>, "reason": "…"}`; the hold is
//!   named by the index of this record;
//! - `x-veritrail.legal_hold_released`, `details`: `{"hold": <index>, "reason": "…"}`.
//!
//! A scope is one of `{"conversation_id": "…"}`, `{"actor": "…"}` (`actor.id`),
//! `{"resource": "…"}` (`resource.id`) or `{"range": {"first": n, "end": m}}` (entry indices
//! `first..end`, raw entries included). Which holds are in force is a pure function of the
//! log: [`Holds::observe`] every record in index order.
//!
//! What must never be purged while a hold is in force ([`Holds::keeps`]): every entry its
//! scope covers, and its own record; and a release record while the record of the hold it
//! releases is still kept (otherwise a later reading of the log would find the hold without
//! its release, in force again).

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// The action of a record placing a hold.
pub const HOLD_ACTION: &str = "x-veritrail.legal_hold";
/// The action of a record releasing one.
pub const RELEASE_ACTION: &str = "x-veritrail.legal_hold_released";
/// Longest text of a scope's value (as the record fields it matches).
pub const MAX_SCOPE_TEXT: usize = 256;

/// What a hold covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every record of a conversation.
    Conversation(String),
    /// Every record whose `actor.id` is it.
    Actor(String),
    /// Every record whose `resource.id` is it.
    Resource(String),
    /// Every entry with index in `first..end`, records and raw entries.
    Range {
        /// The first index held.
        first: u64,
        /// The first index after the range.
        end: u64,
    },
}

/// Why a scope was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScopeError {
    /// Not exactly one of the four kinds.
    #[error("a hold's scope is exactly one of conversation_id, actor, resource or range")]
    Shape,
    /// A text value that is empty or too long.
    #[error("{field} must be 1 to {MAX_SCOPE_TEXT} characters")]
    Text {
        /// The field.
        field: &'static str,
    },
    /// A range that is empty or reversed.
    #[error("range must have first < end")]
    Range,
}

impl Scope {
    /// Parses a scope from its JSON form (see the module docs). This does not panic.
    ///
    /// # Errors
    /// [`ScopeError`].
    pub fn from_json(value: &Value) -> Result<Scope, ScopeError> {
        let object = value
            .as_object()
            .filter(|o| o.len() == 1)
            .ok_or(ScopeError::Shape)?;
        let (key, value) = object.iter().next().ok_or(ScopeError::Shape)?;
        let text = |field: &'static str| {
            value
                .as_str()
                .filter(|t| (1..=MAX_SCOPE_TEXT).contains(&t.chars().count()))
                .map(str::to_owned)
                .ok_or(ScopeError::Text { field })
        };
        match key.as_str() {
            "conversation_id" => Ok(Scope::Conversation(text("conversation_id")?)),
            "actor" => Ok(Scope::Actor(text("actor")?)),
            "resource" => Ok(Scope::Resource(text("resource")?)),
            "range" => {
                let range = value
                    .as_object()
                    .filter(|r| r.len() == 2)
                    .ok_or(ScopeError::Shape)?;
                let bound = |name| {
                    range
                        .get(name)
                        .and_then(Value::as_u64)
                        .ok_or(ScopeError::Shape)
                };
                let (first, end) = (bound("first")?, bound("end")?);
                if first >= end {
                    return Err(ScopeError::Range);
                }
                Ok(Scope::Range { first, end })
            }
            _ => Err(ScopeError::Shape),
        }
    }

    /// The JSON form.
    pub fn to_json(&self) -> Value {
        match self {
            Scope::Conversation(id) => json!({"conversation_id": id}),
            Scope::Actor(id) => json!({"actor": id}),
            Scope::Resource(id) => json!({"resource": id}),
            Scope::Range { first, end } => json!({"range": {"first": first, "end": end}}),
        }
    }

    /// Whether entry `index` (a record's JSON, or `None` for a raw entry) is covered.
    pub fn covers(&self, index: u64, record: Option<&Value>) -> bool {
        let field = |path: &[&str]| {
            let mut value = record?;
            for key in path {
                value = value.get(key)?;
            }
            value.as_str()
        };
        match self {
            Scope::Conversation(id) => field(&["conversation_id"]) == Some(id),
            Scope::Actor(id) => field(&["actor", "id"]) == Some(id),
            Scope::Resource(id) => field(&["resource", "id"]) == Some(id),
            Scope::Range { first, end } => (*first..*end).contains(&index),
        }
    }
}

/// A hold in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    /// The index of the record that placed it (its name).
    pub index: u64,
    /// What it covers.
    pub scope: Scope,
    /// Why it was placed.
    pub reason: String,
}

/// The holds in force after the records observed so far, and the releases seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holds {
    active: BTreeMap<u64, Hold>,
    /// Release record index → the hold it released.
    releases: BTreeMap<u64, u64>,
}

impl Holds {
    /// No holds.
    pub fn new() -> Holds {
        Holds::default()
    }

    /// Takes the record at `index` into account (records must come in index order). Records
    /// that are not hold records, and malformed ones, change nothing.
    pub fn observe(&mut self, index: u64, record: &Value) {
        let details = record.get("details");
        match record.get("action").and_then(Value::as_str) {
            Some(HOLD_ACTION) => {
                let Some(scope) = details
                    .and_then(|d| d.get("scope"))
                    .and_then(|s| Scope::from_json(s).ok())
                else {
                    return;
                };
                let reason = details
                    .and_then(|d| d.get("reason"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                self.active.insert(
                    index,
                    Hold {
                        index,
                        scope,
                        reason,
                    },
                );
            }
            Some(RELEASE_ACTION) => {
                let Some(hold) = details.and_then(|d| d.get("hold")).and_then(Value::as_u64) else {
                    return;
                };
                if hold < index && self.active.remove(&hold).is_some() {
                    self.releases.insert(index, hold);
                }
            }
            _ => {}
        }
    }

    /// The holds in force, by index.
    pub fn active(&self) -> impl Iterator<Item = &Hold> {
        self.active.values()
    }

    /// Whether hold `index` is in force.
    pub fn is_active(&self, index: u64) -> bool {
        self.active.contains_key(&index)
    }

    /// The hold that keeps entry `index` (a record's JSON, or `None` for a raw entry) from
    /// being purged, if any: a hold in force covering it, the entry being the record of a
    /// hold in force, or a release record whose hold's record `is_retained` still.
    pub fn keeps(
        &self,
        index: u64,
        record: Option<&Value>,
        is_retained: impl Fn(u64) -> bool,
    ) -> Option<u64> {
        if self.active.contains_key(&index) {
            return Some(index);
        }
        if let Some(&hold) = self.releases.get(&index)
            && is_retained(hold)
        {
            return Some(hold);
        }
        self.active
            .values()
            .find(|h| h.scope.covers(index, record))
            .map(|h| h.index)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn hold(scope: Value) -> Value {
        json!({"action": HOLD_ACTION, "details": {"scope": scope, "reason": "litigation 42"}})
    }

    fn release(hold: u64) -> Value {
        json!({"action": RELEASE_ACTION, "details": {"hold": hold, "reason": "settled"}})
    }

    #[test]
    fn scopes_round_trip_and_bad_ones_are_refused() {
        for scope in [
            Scope::Conversation("c-1".into()),
            Scope::Actor("agent-7".into()),
            Scope::Resource("P-0042".into()),
            Scope::Range { first: 3, end: 9 },
        ] {
            assert_eq!(Scope::from_json(&scope.to_json()).unwrap(), scope);
        }
        for bad in [
            json!({}),
            json!({"conversation_id": "c", "actor": "a"}),
            json!({"conversation_id": ""}),
            json!({"actor": 7}),
            json!({"range": {"first": 9, "end": 9}}),
            json!({"range": {"first": 1}}),
            json!({"range": {"first": -1, "end": 3}}),
            json!({"subject": "x"}),
            json!("c-1"),
            json!({"resource": "x".repeat(MAX_SCOPE_TEXT + 1)}),
        ] {
            assert!(Scope::from_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scopes_cover_what_they_name() {
        let record =
            json!({"conversation_id": "c-1", "actor": {"id": "a"}, "resource": {"id": "r"}});
        assert!(Scope::Conversation("c-1".into()).covers(5, Some(&record)));
        assert!(!Scope::Conversation("c-2".into()).covers(5, Some(&record)));
        assert!(Scope::Actor("a".into()).covers(5, Some(&record)));
        assert!(Scope::Resource("r".into()).covers(5, Some(&record)));
        assert!(!Scope::Resource("r".into()).covers(5, None));
        let range = Scope::Range { first: 5, end: 7 };
        assert!(range.covers(5, None) && range.covers(6, Some(&record)));
        assert!(!range.covers(7, None) && !range.covers(4, None));
    }

    #[test]
    fn holds_come_and_go_with_their_records() {
        let mut holds = Holds::new();
        holds.observe(10, &hold(json!({"conversation_id": "c-1"})));
        holds.observe(11, &hold(json!({"range": {"first": 0, "end": 5}})));
        holds.observe(
            12,
            &json!({"action": "tool_invoked", "conversation_id": "c-1"}),
        );
        assert_eq!(holds.active().count(), 2);
        let c1 = json!({"conversation_id": "c-1"});
        assert_eq!(holds.keeps(12, Some(&c1), |_| true), Some(10));
        assert_eq!(holds.keeps(3, None, |_| true), Some(11));
        // The hold records themselves are kept while in force.
        assert_eq!(holds.keeps(10, None, |_| true), Some(10));
        // A release for an unknown or later hold, or a malformed one, changes nothing.
        holds.observe(13, &release(99));
        holds.observe(14, &json!({"action": RELEASE_ACTION, "details": {}}));
        assert_eq!(holds.active().count(), 2);
        holds.observe(15, &release(10));
        assert!(!holds.is_active(10) && holds.is_active(11));
        assert_eq!(holds.keeps(12, Some(&c1), |_| true), None);
        // The release is kept while the hold's record is.
        assert_eq!(holds.keeps(15, None, |i| i == 10), Some(10));
        assert_eq!(holds.keeps(15, None, |_| false), None);
        // Releasing twice does nothing more.
        holds.observe(16, &release(10));
        assert_eq!(holds.keeps(16, None, |_| true), None);
    }
}
