//! The served JSON Schema (`EVENT_SCHEMA`) against the Rust validator (`parse_event`): every
//! generated valid event is accepted by both, and every invalid variation, one rule at a
//! time, is refused by both.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use proptest::prelude::*;
use serde_json::{Value, json};
use veritrail_records::{EVENT_SCHEMA, parse_event};

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(EVENT_SCHEMA).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

fn base() -> Value {
    json!({
        "timestamp": "2026-03-01T12:00:00Z",
        "action": "tool_invoked",
        "actor": {"id": "agent-7", "type": "agent"}
    })
}

/// A valid event with a random selection of the optional fields.
fn valid_event() -> impl Strategy<Value = Value> {
    let text = |max: usize| {
        proptest::string::string_regex(&format!("[a-zA-Z0-9 é€😀_.:/-]{{1,{max}}}")).unwrap()
    };
    (
        (
            prop::option::of("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
            prop::sample::select(vec![
                "2026-03-01T12:00:00Z",
                "2026-03-01T12:00:00.123456Z",
                "1999-12-31T23:59:59+00:00",
            ]),
            prop_oneof![
                prop::sample::select(veritrail_records::Action::known().collect::<Vec<_>>())
                    .prop_map(str::to_owned),
                "x-[a-z0-9][a-z0-9-]{0,8}\\.[a-z0-9_][a-z0-9_.-]{0,8}",
            ],
            text(256),
            prop::sample::select(vec!["user", "agent", "admin", "system"]),
        ),
        (
            prop::option::of((text(256), prop::option::of(text(128)))),
            prop::option::of(text(256)),
            prop::option::of(("[0-9a-f]{31}[1-9a-f]", "[1-9a-f][0-9a-f]{15}")),
            prop::option::of((text(128), text(256), prop::option::of(text(64)))),
            prop::option::of(prop::sample::select(vec![
                "public",
                "internal",
                "confidential",
                "restricted",
            ])),
            prop::collection::vec(
                prop_oneof![
                    prop::sample::select(vec![
                        "hipaa",
                        "soc2",
                        "financial",
                        "pci_dss",
                        "gdpr",
                        "eu_ai_act"
                    ])
                    .prop_map(str::to_owned),
                    "x-[a-z][a-z-]{0,5}\\.[a-z_]{1,6}",
                ],
                0..5,
            ),
            prop::option::of((0u64..1 << 40, text(64), "[a-z_]{1,12}")),
        ),
    )
        .prop_map(
            |(
                (id, timestamp, action, actor_id, actor_type),
                (agent, conversation, trace, resource, class, compliance, gen_ai),
            )| {
                let mut event = json!({
                    "timestamp": timestamp,
                    "action": action,
                    "actor": {"id": actor_id, "type": actor_type},
                });
                let map = event.as_object_mut().unwrap();
                if let Some(id) = id {
                    map.insert("id".into(), json!(id));
                }
                if let Some((name, version)) = agent {
                    let mut agent = json!({"name": name});
                    if let Some(version) = version {
                        agent["version"] = json!(version);
                    }
                    map.insert("agent".into(), agent);
                }
                if let Some(conversation) = conversation {
                    map.insert("conversation_id".into(), json!(conversation));
                }
                if let Some((trace_id, span_id)) = trace {
                    map.insert(
                        "trace".into(),
                        json!({"trace_id": trace_id, "span_id": span_id}),
                    );
                }
                if let Some((kind, id, uri)) = resource {
                    let mut resource = json!({"type": kind, "id": id});
                    if let Some(uri) = uri {
                        resource["uri"] = json!(uri);
                    }
                    map.insert("resource".into(), resource);
                }
                if let Some(class) = class {
                    map.insert("classification".into(), json!(class));
                }
                if !compliance.is_empty() {
                    map.insert("compliance".into(), json!(compliance));
                }
                if let Some((tokens, tool, _)) = gen_ai.clone() {
                    map.insert("subject".into(), json!(format!("patient-{tokens}")));
                    map.insert(
                        "payloads".into(),
                        json!({"prompt": {"media_type": "text/plain; charset=utf-8", "text": tool},
                               "image": {"media_type": "image/png", "base64": "iVBORw0KGgo="}}),
                    );
                }
                if let Some((tokens, tool, operation)) = gen_ai {
                    map.insert(
                        "gen_ai".into(),
                        json!({
                            "gen_ai.usage.input_tokens": tokens,
                            "gen_ai.tool.name": tool,
                            "gen_ai.operation.name": operation,
                        }),
                    );
                    map.insert(
                        "details".into(),
                        json!({"n": tokens, "nested": {"ok": [1, "two", null]}}),
                    );
                }
                event
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]
    #[test]
    fn valid_events_pass_both_the_schema_and_the_validator(event in valid_event()) {
        let schema = validator();
        let problems = parse_event(&event).err();
        prop_assert!(problems.is_none(), "validator refused {event}: {problems:?}");
        let errors: Vec<String> = schema.iter_errors(&event).map(|e| e.to_string()).collect();
        prop_assert!(errors.is_empty(), "schema refused {event}: {errors:?}");
    }
}

#[test]
fn each_invalid_variation_is_refused_by_both() {
    let schema = validator();
    let set = |path: &[&str], value: Value| {
        let mut event = base();
        let mut at = &mut event;
        for key in &path[..path.len() - 1] {
            if at.get(*key).is_none() {
                at[*key] = json!({});
            }
            at = &mut at[*key];
        }
        at[path[path.len() - 1]] = value;
        event
    };
    let remove = |key: &str| {
        let mut event = base();
        event.as_object_mut().unwrap().remove(key);
        event
    };
    let cases: Vec<(&str, Value)> = vec![
        ("no timestamp", remove("timestamp")),
        ("no action", remove("action")),
        ("no actor", remove("actor")),
        ("not an object", json!(["an", "array"])),
        ("unknown field", set(&["colour"], json!("blue"))),
        (
            "server field",
            set(&["submitted_by"], json!({"type": "anonymous"})),
        ),
        ("server field", set(&["prev"], Value::Null)),
        ("id not a uuid", set(&["id"], json!("not-a-uuid"))),
        (
            "id simple form",
            set(&["id"], json!("3f2504e04f8941d39a0c0305e82c3301")),
        ),
        (
            "timestamp not a date",
            set(&["timestamp"], json!("yesterday")),
        ),
        (
            "timestamp not utc",
            set(&["timestamp"], json!("2026-03-01T12:00:00+02:00")),
        ),
        (
            "timestamp without zone",
            set(&["timestamp"], json!("2026-03-01T12:00:00")),
        ),
        ("unknown action", set(&["action"], json!("launch"))),
        (
            "server action",
            set(&["action"], json!("x-veritrail.erasure")),
        ),
        (
            "uppercase namespace",
            set(&["action"], json!("x-Acme.thing")),
        ),
        ("namespace without name", set(&["action"], json!("x-acme."))),
        ("action not a string", set(&["action"], json!(7))),
        ("actor without type", set(&["actor"], json!({"id": "a"}))),
        ("actor type", set(&["actor", "type"], json!("robot"))),
        ("empty actor id", set(&["actor", "id"], json!(""))),
        (
            "long actor id",
            set(&["actor", "id"], json!("a".repeat(257))),
        ),
        ("control character", set(&["actor", "id"], json!("a\u{7}b"))),
        ("extra actor field", set(&["actor", "email"], json!("a@b"))),
        (
            "agent without name",
            set(&["agent"], json!({"version": "1"})),
        ),
        (
            "long version",
            set(&["agent"], json!({"name": "n", "version": "v".repeat(129)})),
        ),
        ("empty conversation", set(&["conversation_id"], json!(""))),
        ("session not a string", set(&["session_id"], json!(1))),
        (
            "trace id length",
            set(
                &["trace"],
                json!({"trace_id": "abc", "span_id": "00f067aa0ba902b7"}),
            ),
        ),
        (
            "trace id zeros",
            set(
                &["trace"],
                json!({"trace_id": "0".repeat(32), "span_id": "00f067aa0ba902b7"}),
            ),
        ),
        (
            "trace id uppercase",
            set(
                &["trace"],
                json!({"trace_id": "4BF92F3577B34DA6A3CE929D0E0E4736", "span_id": "00f067aa0ba902b7"}),
            ),
        ),
        (
            "span id zeros",
            set(
                &["trace"],
                json!({"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "0".repeat(16)}),
            ),
        ),
        (
            "resource without id",
            set(&["resource"], json!({"type": "t"})),
        ),
        (
            "long uri",
            set(
                &["resource"],
                json!({"type": "t", "id": "i", "uri": "u".repeat(2049)}),
            ),
        ),
        ("classification", set(&["classification"], json!("secret"))),
        (
            "compliance not an array",
            set(&["compliance"], json!("hipaa")),
        ),
        ("unknown domain", set(&["compliance"], json!(["sox"]))),
        (
            "too many domains",
            set(&["compliance"], json!(vec!["hipaa"; 17])),
        ),
        (
            "unknown gen_ai attribute",
            set(&["gen_ai", "gen_ai.temperature"], json!(0.2)),
        ),
        (
            "negative tokens",
            set(&["gen_ai", "gen_ai.usage.input_tokens"], json!(-1)),
        ),
        (
            "tokens beyond 2^53",
            set(
                &["gen_ai", "gen_ai.usage.output_tokens"],
                json!(9_007_199_254_740_992u64),
            ),
        ),
        (
            "operation name",
            set(&["gen_ai", "gen_ai.operation.name"], json!("Chat Now")),
        ),
        ("details not an object", set(&["details"], json!([1, 2]))),
        (
            "payload name",
            set(
                &["payloads"],
                json!({"Prompt": {"media_type": "text/plain", "text": "x"}}),
            ),
        ),
        (
            "payload media type",
            set(
                &["payloads"],
                json!({"prompt": {"media_type": "plain", "text": "x"}}),
            ),
        ),
        (
            "payload text and base64",
            set(
                &["payloads"],
                json!({"prompt": {"media_type": "text/plain", "text": "x", "base64": "eA=="}}),
            ),
        ),
        (
            "payload bad base64",
            set(
                &["payloads"],
                json!({"prompt": {"media_type": "text/plain", "base64": "!!"}}),
            ),
        ),
        (
            "payload not an object",
            set(&["payloads"], json!({"prompt": "text"})),
        ),
        ("empty subject", set(&["subject"], json!(""))),
        (
            "details too deep",
            set(
                &["details"],
                json!({"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":1}}}}}}}}),
            ),
        ),
        ("details empty key", set(&["details"], json!({"": 1}))),
        (
            "details long key",
            set(&["details"], json!({"k".repeat(129): 1})),
        ),
        (
            "details inexact number",
            set(&["details", "n"], json!(9_007_199_254_740_993u64)),
        ),
    ];
    let mut wrong = Vec::new();
    for (what, event) in &cases {
        let by_validator = parse_event(event).is_err();
        let by_schema = !schema.is_valid(event);
        if !(by_validator && by_schema) {
            wrong.push(format!(
                "{what}: validator refused {by_validator}, schema refused {by_schema}: {event}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(schema.is_valid(&base()) && parse_event(&base()).is_ok());
}
