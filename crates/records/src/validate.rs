//! Validation of a submitted event: every problem, each named by its field path, before
//! anything is encoded. Total: any JSON value gives a result, never a panic.

use serde_json::{Map, Value};

use crate::event::{Action, AuditEvent, Domain, GenAi, SERVER_NAMESPACE};
use crate::{MAX_DETAILS_BYTES, MAX_DETAILS_DEPTH, MAX_INTEGER};

pub use crate::problem::FieldProblem;

/// Fields the server sets; a client sending one is told so.
const SERVER_FIELDS: [&str; 5] = ["submitted_by", "received_at", "nonce", "prev", "scrubbed"];

/// The fields an event may have.
const EVENT_FIELDS: [&str; 15] = [
    "subject",
    "payloads",
    "id",
    "timestamp",
    "action",
    "actor",
    "agent",
    "conversation_id",
    "session_id",
    "trace",
    "resource",
    "classification",
    "compliance",
    "gen_ai",
    "details",
];

struct Checker {
    problems: Vec<FieldProblem>,
}

impl Checker {
    fn problem(&mut self, field: impl Into<String>, problem: impl Into<String>) {
        self.problems.push(FieldProblem {
            field: field.into(),
            problem: problem.into(),
        });
    }

    /// A string of 1 to `max` characters without control characters, if `value` is one.
    fn text<'v>(&mut self, field: &str, value: &'v Value, max: usize) -> Option<&'v str> {
        let Some(text) = value.as_str() else {
            self.problem(field, "must be a string");
            return None;
        };
        let chars = text.chars().count();
        if chars == 0 || chars > max {
            self.problem(field, format!("must be 1 to {max} characters"));
            return None;
        }
        if text.chars().any(char::is_control) {
            self.problem(field, "must not contain control characters");
            return None;
        }
        Some(text)
    }

    /// An object with only `allowed` fields and all of `required`.
    fn object<'v>(
        &mut self,
        field: &str,
        value: &'v Value,
        allowed: &[&str],
        required: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        let Some(map) = value.as_object() else {
            self.problem(field, "must be an object");
            return None;
        };
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                self.problem(
                    join(field, key),
                    format!("unknown field; allowed: {}", allowed.join(", ")),
                );
            }
        }
        for key in required {
            if !map.contains_key(*key) {
                self.problem(join(field, key), "is required");
            }
        }
        Some(map)
    }

    fn hex_id(&mut self, field: &str, value: &Value, digits: usize) {
        let Some(text) = value.as_str() else {
            self.problem(field, "must be a string");
            return;
        };
        let hex = text.len() == digits
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex {
            self.problem(field, format!("must be {digits} lowercase hex digits"));
        } else if text.bytes().all(|b| b == b'0') {
            self.problem(field, "must not be all zeros (an invalid OpenTelemetry id)");
        }
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// Validates `value` as an [`AuditEvent`] and returns it, or every problem found. Its
/// `payloads`, if any, are validated too but left out: [`parse_submission`] returns them.
///
/// This does not panic.
///
/// # Errors
/// The list of [`FieldProblem`]s, at least one.
pub fn parse_event(value: &Value) -> Result<AuditEvent, Vec<FieldProblem>> {
    parse_submission(value).map(|(event, _)| event)
}

/// Validates `value` as an event with its payloads, and returns both, or every problem
/// found.
///
/// This does not panic.
///
/// # Errors
/// The list of [`FieldProblem`]s, at least one.
pub fn parse_submission(
    value: &Value,
) -> Result<(AuditEvent, Vec<crate::payload::Payload>), Vec<FieldProblem>> {
    let mut c = Checker {
        problems: Vec::new(),
    };
    let Some(map) = value.as_object() else {
        c.problem("", "a record must be a JSON object");
        return Err(c.problems);
    };
    for key in map.keys() {
        if SERVER_FIELDS.contains(&key.as_str()) {
            c.problem(key.as_str(), "is set by the server; do not send it");
        } else if !EVENT_FIELDS.contains(&key.as_str()) {
            c.problem(key.as_str(), "unknown field");
        }
    }
    for required in ["timestamp", "action", "actor"] {
        if !map.contains_key(required) {
            c.problem(required, "is required");
        }
    }
    if let Some(id) = map.get("id")
        && let Some(text) = c.text("id", id, 36)
        && (text.len() != 36 || uuid::Uuid::parse_str(text).is_err())
    {
        c.problem("id", "must be a UUID (8-4-4-4-12 hex digits)");
    }
    if let Some(ts) = map.get("timestamp") {
        check_timestamp(&mut c, ts);
    }
    if let Some(action) = map.get("action") {
        match action.as_str() {
            None => c.problem("action", "must be a string"),
            Some(text) if text.starts_with(SERVER_NAMESPACE) => c.problem(
                "action",
                format!("the {SERVER_NAMESPACE}* actions are written by the server only"),
            ),
            Some(text) => {
                if let Err(why) = Action::parse(text) {
                    c.problem("action", why);
                }
            }
        }
    }
    if let Some(actor) = map.get("actor")
        && let Some(actor) = c.object("actor", actor, &["id", "type"], &["id", "type"])
    {
        if let Some(id) = actor.get("id") {
            c.text("actor.id", id, 256);
        }
        if let Some(kind) = actor.get("type")
            && !matches!(kind.as_str(), Some("user" | "agent" | "admin" | "system"))
        {
            c.problem("actor.type", "must be one of user, agent, admin, system");
        }
    }
    if let Some(agent) = map.get("agent")
        && let Some(agent) = c.object("agent", agent, &["name", "version"], &["name"])
    {
        if let Some(name) = agent.get("name") {
            c.text("agent.name", name, 256);
        }
        if let Some(version) = agent.get("version") {
            c.text("agent.version", version, 128);
        }
    }
    for field in ["conversation_id", "session_id", "subject"] {
        if let Some(value) = map.get(field) {
            c.text(field, value, 256);
        }
    }
    if let Some(trace) = map.get("trace")
        && let Some(trace) = c.object(
            "trace",
            trace,
            &["trace_id", "span_id", "parent_span_id"],
            &["trace_id", "span_id"],
        )
    {
        if let Some(v) = trace.get("trace_id") {
            c.hex_id("trace.trace_id", v, 32);
        }
        if let Some(v) = trace.get("span_id") {
            c.hex_id("trace.span_id", v, 16);
        }
        if let Some(v) = trace.get("parent_span_id") {
            c.hex_id("trace.parent_span_id", v, 16);
        }
    }
    if let Some(resource) = map.get("resource")
        && let Some(resource) = c.object(
            "resource",
            resource,
            &["type", "id", "uri"],
            &["type", "id"],
        )
    {
        if let Some(v) = resource.get("type") {
            c.text("resource.type", v, 128);
        }
        if let Some(v) = resource.get("id") {
            c.text("resource.id", v, 256);
        }
        if let Some(v) = resource.get("uri") {
            c.text("resource.uri", v, 2048);
        }
    }
    if let Some(class) = map.get("classification")
        && !matches!(
            class.as_str(),
            Some("public" | "internal" | "confidential" | "restricted")
        )
    {
        c.problem(
            "classification",
            "must be one of public, internal, confidential, restricted",
        );
    }
    if let Some(compliance) = map.get("compliance") {
        match compliance.as_array() {
            None => c.problem("compliance", "must be an array of domains"),
            Some(domains) if domains.len() > 16 => {
                c.problem("compliance", "at most 16 domains");
            }
            Some(domains) => {
                for (i, domain) in domains.iter().enumerate() {
                    let field = format!("compliance[{i}]");
                    match domain.as_str() {
                        None => c.problem(field, "must be a string"),
                        Some(text) => {
                            if let Err(why) = Domain::parse(text) {
                                c.problem(field, why);
                            }
                        }
                    }
                }
            }
        }
    }
    if let Some(gen_ai) = map.get("gen_ai") {
        check_gen_ai(&mut c, gen_ai);
    }
    if let Some(details) = map.get("details") {
        check_details(&mut c, details);
    }
    let payloads = match map.get("payloads").map(crate::payload::parse_payloads) {
        None => Vec::new(),
        Some(Ok(payloads)) => payloads,
        Some(Err(found)) => {
            c.problems.extend(found);
            Vec::new()
        }
    };
    if !c.problems.is_empty() {
        return Err(c.problems);
    }
    let mut event = map.clone();
    event.remove("payloads");
    serde_json::from_value(Value::Object(event))
        .map(|event| (event, payloads))
        .map_err(|e| {
            vec![FieldProblem {
                field: String::new(),
                problem: format!("does not match the event schema: {e}"),
            }]
        })
}

fn check_timestamp(c: &mut Checker, value: &Value) {
    let Some(text) = value.as_str() else {
        c.problem("timestamp", "must be a string");
        return;
    };
    match time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339) {
        Err(_) => c.problem(
            "timestamp",
            "must be an RFC 3339 date-time, e.g. 2026-03-01T12:00:00Z",
        ),
        Ok(t) if !t.offset().is_utc() => {
            c.problem("timestamp", "must be in UTC (end in Z or +00:00)");
        }
        Ok(_) => {}
    }
}

fn check_gen_ai(c: &mut Checker, value: &Value) {
    let Some(map) = c.object("gen_ai", value, &GenAi::ATTRIBUTES, &[]) else {
        return;
    };
    for (key, v) in map {
        if !GenAi::ATTRIBUTES.contains(&key.as_str()) {
            continue; // reported by `object`
        }
        let field = format!("gen_ai[{key:?}]");
        if key.starts_with("gen_ai.usage.") {
            if v.as_u64().is_none_or(|n| n > MAX_INTEGER) {
                c.problem(field, "must be a whole number of tokens");
            }
        } else if key == "gen_ai.operation.name" {
            let ok = v.as_str().is_some_and(|s| {
                !s.is_empty()
                    && s.len() <= 64
                    && s.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            });
            if !ok {
                c.problem(
                    field,
                    "must be an operation name such as chat, execute_tool, invoke_agent, create_agent, embeddings or retrieval",
                );
            }
        } else {
            c.text(&field, v, 256);
        }
    }
}

fn check_details(c: &mut Checker, value: &Value) {
    if !value.is_object() {
        c.problem("details", "must be a JSON object");
        return;
    }
    let encoded = serde_json::to_vec(value).map_or(usize::MAX, |v| v.len());
    if encoded > MAX_DETAILS_BYTES {
        c.problem(
            "details",
            format!("is {encoded} bytes encoded; at most {MAX_DETAILS_BYTES}"),
        );
        return;
    }
    walk_details(c, "details", value, 1);
}

/// Checks depth, key lengths and that every number is exact as an IEEE double (RFC 8785
/// encodes numbers as doubles).
fn walk_details(c: &mut Checker, field: &str, value: &Value, depth: usize) {
    if depth > MAX_DETAILS_DEPTH {
        c.problem(
            field,
            format!("nests deeper than {MAX_DETAILS_DEPTH} levels"),
        );
        return;
    }
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key.is_empty() || key.chars().count() > 128 {
                    c.problem(join(field, key), "keys must be 1 to 128 characters");
                    continue;
                }
                walk_details(c, &join(field, key), v, depth + 1);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                walk_details(c, &format!("{field}[{i}]"), v, depth + 1);
            }
        }
        Value::Number(n) => {
            let exact = if let Some(i) = n.as_i64() {
                i.unsigned_abs() <= MAX_INTEGER
            } else if let Some(u) = n.as_u64() {
                u <= MAX_INTEGER
            } else {
                n.as_f64().is_some_and(f64::is_finite)
            };
            if !exact {
                c.problem(
                    field,
                    "numbers must fit an IEEE double exactly (integers within ±(2^53 − 1)); send larger ones as strings",
                );
            }
        }
        Value::Null | Value::Bool(_) | Value::String(_) => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> Value {
        json!({
            "timestamp": "2026-03-01T12:00:00Z",
            "action": "tool_invoked",
            "actor": {"id": "agent-7", "type": "agent"}
        })
    }

    fn problems(value: Value) -> Vec<FieldProblem> {
        parse_event(&value).unwrap_err()
    }

    fn fields(value: Value) -> Vec<String> {
        problems(value).into_iter().map(|p| p.field).collect()
    }

    #[test]
    fn a_minimal_and_a_full_event_parse() {
        let event = parse_event(&minimal()).unwrap();
        assert_eq!(event.action, Action::ToolInvoked);
        let full = json!({
            "id": "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
            "timestamp": "2026-03-01T12:00:00.123+00:00",
            "action": "x-acme.model_eval",
            "actor": {"id": "u-1", "type": "user"},
            "agent": {"name": "triage", "version": "1.2.0"},
            "conversation_id": "conv-1",
            "session_id": "s-1",
            "trace": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"},
            "resource": {"type": "patient_record", "id": "P-0042", "uri": "ehr://p/42"},
            "classification": "restricted",
            "compliance": ["hipaa", "x-acme.internal"],
            "gen_ai": {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "ehr_read",
                       "gen_ai.usage.input_tokens": 120},
            "details": {"a": [1, 2.5, {"b": null}], "ok": true}
        });
        let event = parse_event(&full).unwrap();
        assert_eq!(event.gen_ai.input_tokens, Some(120));
        assert_eq!(event.compliance.len(), 2);
    }

    #[test]
    fn every_required_field_missing_is_named() {
        for required in ["timestamp", "action", "actor"] {
            let mut value = minimal();
            value.as_object_mut().unwrap().remove(required);
            assert_eq!(fields(value), vec![required.to_owned()], "{required}");
        }
        let mut value = minimal();
        value["actor"] = json!({"id": "a"});
        assert_eq!(fields(value), vec!["actor.type"]);
    }

    #[test]
    fn malformed_fields_are_named_each() {
        let cases: Vec<(&str, Value)> = vec![
            ("id", json!("not-a-uuid")),
            ("timestamp", json!("yesterday")),
            ("timestamp", json!("2026-03-01T12:00:00+02:00")),
            ("action", json!("launched_missiles")),
            ("action", json!("x-veritrail.erasure")),
            ("action", json!("x-Acme.thing")),
            ("classification", json!("secret")),
            ("conversation_id", json!("")),
            ("session_id", json!(7)),
        ];
        for (field, bad) in cases {
            let mut value = minimal();
            value[field] = bad.clone();
            assert_eq!(fields(value), vec![field.to_owned()], "{field} = {bad}");
        }
        let mut value = minimal();
        value["trace"] = json!({"trace_id": "00000000000000000000000000000000", "span_id": "XYZ"});
        assert_eq!(fields(value), vec!["trace.trace_id", "trace.span_id"]);
        let mut value = minimal();
        value["compliance"] = json!(["hipaa", "sox"]);
        assert_eq!(fields(value), vec!["compliance[1]"]);
        let mut value = minimal();
        value["gen_ai"] = json!({"gen_ai.usage.input_tokens": -1, "gen_ai.temperature": 1});
        let mut got = fields(value);
        got.sort();
        assert_eq!(
            got,
            vec![
                "gen_ai.gen_ai.temperature",
                "gen_ai[\"gen_ai.usage.input_tokens\"]"
            ]
        );
    }

    #[test]
    fn server_fields_and_unknown_fields_are_refused() {
        let mut value = minimal();
        value["submitted_by"] = json!("me");
        value["prev"] = json!(null);
        value["colour"] = json!("blue");
        let mut got = fields(value);
        got.sort();
        assert_eq!(got, vec!["colour", "prev", "submitted_by"]);
    }

    #[test]
    fn details_limits_hold() {
        let mut deep = json!("leaf");
        for _ in 0..MAX_DETAILS_DEPTH {
            deep = json!({ "d": deep });
        }
        let mut value = minimal();
        value["details"] = deep;
        assert_eq!(
            problems(value)[0].problem,
            format!("nests deeper than {MAX_DETAILS_DEPTH} levels")
        );
        let mut value = minimal();
        value["details"] = json!({ "big": "x".repeat(MAX_DETAILS_BYTES) });
        assert_eq!(fields(value), vec!["details"]);
        let mut value = minimal();
        value["details"] = json!({ "n": 9_007_199_254_740_993u64 });
        assert_eq!(fields(value), vec!["details.n"]);
        let mut value = minimal();
        value["details"] = json!([1]);
        assert_eq!(fields(value), vec!["details"]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(10_000))]
        /// Any JSON document gets an answer, never a panic.
        #[test]
        fn any_json_is_answered(value in crate::tests::arbitrary_json()) {
            let _ = parse_event(&value);
            let mut event = minimal();
            event["details"] = value.clone();
            let _ = parse_event(&event);
            event["gen_ai"] = value;
            let _ = parse_event(&event);
        }
    }
}
