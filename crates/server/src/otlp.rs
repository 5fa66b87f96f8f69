//! OTLP ingest: OpenTelemetry GenAI spans and events become agent records.
//!
//! `POST /v1/traces` and `POST /v1/logs` take OTLP/HTTP bodies, protobuf
//! (`application/x-protobuf`) or JSON (`application/json`, with OTLP's JSON mapping: hex ids,
//! 64-bit integers as strings), optionally gzip-compressed, decoded with the
//! `opentelemetry-proto` crate's messages. This module maps them to record submissions (the
//! body of `POST /v1/records`, validated the same way); the route appends them and answers
//! only once every accepted record is durable.
//!
//! Spans, by `gen_ai.operation.name` (OpenTelemetry GenAI semantic conventions):
//!
//! | operation | records |
//! |---|---|
//! | `chat`, `text_completion`, `generate_content`, `invoke_agent` | `agent_response_generated` (model, token usage) |
//! | `execute_tool` | `tool_invoked`, and `tool_result` when the span carries the result |
//! | `retrieval` | `data_accessed` |
//! | anything else, or none | not a GenAI span: ignored, or with `keep_other` kept as a raw entry (its OTLP JSON) |
//!
//! Log records, by event name (`event_name`, else the `event.name` attribute):
//! `gen_ai.user.message` → `user_message_received`, `gen_ai.choice` and
//! `gen_ai.assistant.message` → `agent_response_generated`, `gen_ai.tool.message` →
//! `tool_result`; others are ignored.
//!
//! Content never goes into the tree: `gen_ai.input.messages` (and the older `gen_ai.prompt`),
//! `gen_ai.output.messages` (`gen_ai.completion`), `gen_ai.system_instructions`,
//! `gen_ai.tool.call.arguments`, `gen_ai.tool.call.result` and an event's body become
//! committed payloads (`prompt`, `response`, `system_instructions`, `tool_arguments`,
//! `tool_result`). The `gen_ai` attributes the record schema knows are kept; the actor is
//! `gen_ai.agent.name` (else the resource's `service.name`, else `otlp`); the conversation is
//! `gen_ai.conversation.id`, the session `session.id`; `trace` carries the span's ids.

use std::io::Read as _;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, TracesData};
use prost::Message as _;
use serde_json::{Map, Value, json};

/// Most spans (or log records) one request may hold, GenAI or not.
pub const MAX_ITEMS: usize = 10_000;
/// Most bytes a gzip body may inflate to.
pub const MAX_INFLATED: u64 = 64 << 20;

/// The `gen_ai` attributes the record schema takes ([`veritrail_records::event`]).
const GEN_AI_KEYS: [&str; 12] = [
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.response.id",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.tool.name",
    "gen_ai.tool.call.id",
    "gen_ai.agent.name",
    "gen_ai.agent.id",
    "gen_ai.conversation.id",
];

/// Content attributes and the payload each becomes.
const CONTENT: [(&str, &str); 7] = [
    ("gen_ai.input.messages", "prompt"),
    ("gen_ai.prompt", "prompt"),
    ("gen_ai.output.messages", "response"),
    ("gen_ai.completion", "response"),
    ("gen_ai.system_instructions", "system_instructions"),
    ("gen_ai.tool.call.arguments", "tool_arguments"),
    ("gen_ai.tool.call.result", "tool_result"),
];

/// How a body is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`.
    Json,
}

/// The submissions mapped from one request.
#[derive(Debug, Default)]
pub struct Mapped {
    /// Record submissions (JSON, as `POST /v1/records` takes them), each with the span or log
    /// record it came from (its position), for error messages.
    pub submissions: Vec<(Value, String)>,
    /// Spans or log records that are not GenAI and were ignored.
    pub ignored: u64,
    /// With `keep_other` ([`map_traces`]): each span that is not GenAI as a raw entry, the
    /// OTLP JSON of a `TracesData` holding that span alone with its resource and scope, and
    /// where it came from.
    pub other: Vec<(Vec<u8>, String)>,
    /// Spans or log records in the request.
    pub items: usize,
}

/// Inflates a gzip body, at most [`MAX_INFLATED`] bytes.
///
/// # Errors
/// A message for a body that is not gzip or inflates beyond the bound.
pub fn gunzip(body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .take(MAX_INFLATED + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("the gzip body does not inflate: {e}"))?;
    if out.len() as u64 > MAX_INFLATED {
        return Err(format!("the body inflates beyond {MAX_INFLATED} bytes"));
    }
    Ok(out)
}

/// A JSON body that must be an object (serde would take an array for a struct).
fn json_object(body: &[u8]) -> Result<Value, String> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Ok(Value::Object(object)),
        Ok(_) => Err("an OTLP JSON body is an object".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Decodes an `ExportTraceServiceRequest`.
///
/// # Errors
/// A message saying why it does not decode.
pub fn decode_traces(body: &[u8], encoding: Encoding) -> Result<ExportTraceServiceRequest, String> {
    match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(body).map_err(|e| e.to_string()),
        Encoding::Json => serde_json::from_value(json_object(body)?).map_err(|e| e.to_string()),
    }
}

/// Decodes an `ExportLogsServiceRequest`.
///
/// # Errors
/// A message saying why it does not decode.
pub fn decode_logs(body: &[u8], encoding: Encoding) -> Result<ExportLogsServiceRequest, String> {
    match encoding {
        Encoding::Protobuf => ExportLogsServiceRequest::decode(body).map_err(|e| e.to_string()),
        Encoding::Json => serde_json::from_value(json_object(body)?).map_err(|e| e.to_string()),
    }
}

/// An attribute value as JSON (bytes as base64).
fn json_of(value: &AnyValue) -> Value {
    match &value.value {
        None => Value::Null,
        Some(any_value::Value::StringValue(s)) => Value::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::IntValue(i)) => Value::from(*i),
        Some(any_value::Value::DoubleValue(d)) => {
            serde_json::Number::from_f64(*d).map_or(Value::Null, Value::Number)
        }
        Some(any_value::Value::ArrayValue(array)) => {
            Value::Array(array.values.iter().map(json_of).collect())
        }
        Some(any_value::Value::KvlistValue(list)) => Value::Object(
            list.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        kv.value.as_ref().map_or(Value::Null, json_of),
                    )
                })
                .collect(),
        ),
        Some(any_value::Value::BytesValue(bytes)) => Value::String(base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            bytes,
        )),
        Some(_) => Value::Null,
    }
}

fn attributes(list: &[KeyValue]) -> Map<String, Value> {
    list.iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map_or(Value::Null, json_of),
            )
        })
        .collect()
}

/// A payload of a content value: a string as text, anything else as its JSON.
fn payload(value: &Value) -> Value {
    match value {
        Value::String(text) => json!({"media_type": "text/plain; charset=utf-8", "text": text}),
        other => json!({"media_type": "application/json", "text": other.to_string()}),
    }
}

/// Lowercase hex of an id, if it has the right length and is not all zeros.
fn id_hex(bytes: &[u8], len: usize) -> Option<String> {
    (bytes.len() == len && bytes.iter().any(|b| *b != 0))
        .then(|| veritrail_ledger::ascii::to_hex(bytes))
}

/// RFC 3339 of Unix nanoseconds (now for 0 or out of range).
fn timestamp(nanos: u64) -> String {
    let at = (nanos > 0)
        .then(|| time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos)).ok())
        .flatten()
        .unwrap_or_else(time::OffsetDateTime::now_utc);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The parts of a submission common to spans and events.
struct Context<'a> {
    attrs: &'a Map<String, Value>,
    service: Option<&'a str>,
    time: u64,
    trace: Option<Value>,
    what: String,
}

fn submission(
    context: &Context<'_>,
    action: &str,
    payloads: Map<String, Value>,
) -> (Value, String) {
    let attrs = context.attrs;
    let text = |key: &str| attrs.get(key).and_then(Value::as_str).map(str::to_owned);
    let actor = text("gen_ai.agent.name")
        .or_else(|| context.service.map(str::to_owned))
        .unwrap_or_else(|| "otlp".to_owned());
    let mut gen_ai = Map::new();
    for key in GEN_AI_KEYS {
        if let Some(value) = attrs.get(key)
            && !value.is_null()
        {
            gen_ai.insert(key.to_owned(), value.clone());
        }
    }
    let mut event = Map::new();
    event.insert("timestamp".into(), Value::String(timestamp(context.time)));
    event.insert("action".into(), Value::String(action.to_owned()));
    event.insert("actor".into(), json!({"id": actor, "type": "agent"}));
    if let Some(conversation) = text("gen_ai.conversation.id") {
        event.insert("conversation_id".into(), Value::String(conversation));
    }
    if let Some(session) = text("session.id") {
        event.insert("session_id".into(), Value::String(session));
    }
    if let Some(trace) = &context.trace {
        event.insert("trace".into(), trace.clone());
    }
    if !gen_ai.is_empty() {
        event.insert("gen_ai".into(), Value::Object(gen_ai));
    }
    if !payloads.is_empty() {
        event.insert("payloads".into(), Value::Object(payloads));
    }
    (Value::Object(event), context.what.clone())
}

/// The payloads of the content attributes present (the first of two names for one payload).
fn content(attrs: &Map<String, Value>, names: &[&str]) -> Map<String, Value> {
    let mut payloads = Map::new();
    for (key, name) in CONTENT {
        if names.contains(&name)
            && !payloads.contains_key(name)
            && let Some(value) = attrs.get(key).filter(|v| !v.is_null())
        {
            payloads.insert(name.to_owned(), payload(value));
        }
    }
    payloads
}

fn service_name(
    resource: Option<&opentelemetry_proto::tonic::resource::v1::Resource>,
) -> Option<String> {
    resource?
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| match &v.value {
            Some(any_value::Value::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
}

/// Maps the GenAI spans of a request to record submissions; with `keep_other`, every other
/// span becomes a raw entry ([`Mapped::other`]) instead of being ignored.
///
/// # Errors
/// A message when the request holds more than [`MAX_ITEMS`] spans.
pub fn map_traces(request: &ExportTraceServiceRequest, keep_other: bool) -> Result<Mapped, String> {
    let mut mapped = Mapped::default();
    for resource in &request.resource_spans {
        let service = service_name(resource.resource.as_ref());
        for scope in &resource.scope_spans {
            for span in &scope.spans {
                mapped.items += 1;
                if mapped.items > MAX_ITEMS {
                    return Err(format!("more than {MAX_ITEMS} spans in one request"));
                }
                let attrs = attributes(&span.attributes);
                let operation = attrs
                    .get("gen_ai.operation.name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let trace = id_hex(&span.trace_id, 16)
                    .zip(id_hex(&span.span_id, 8))
                    .map(|(trace_id, span_id)| {
                        let mut trace = Map::new();
                        trace.insert("trace_id".into(), Value::String(trace_id));
                        trace.insert("span_id".into(), Value::String(span_id));
                        if let Some(parent) = id_hex(&span.parent_span_id, 8) {
                            trace.insert("parent_span_id".into(), Value::String(parent));
                        }
                        Value::Object(trace)
                    });
                let context = Context {
                    attrs: &attrs,
                    service: service.as_deref(),
                    time: if span.end_time_unix_nano > 0 {
                        span.end_time_unix_nano
                    } else {
                        span.start_time_unix_nano
                    },
                    trace,
                    what: format!("span {:?} (#{})", span.name, mapped.items - 1),
                };
                match operation.as_str() {
                    "chat" | "text_completion" | "generate_content" | "invoke_agent" => {
                        let payloads =
                            content(&attrs, &["prompt", "response", "system_instructions"]);
                        mapped.submissions.push(submission(
                            &context,
                            "agent_response_generated",
                            payloads,
                        ));
                    }
                    "execute_tool" => {
                        let arguments = content(&attrs, &["tool_arguments"]);
                        mapped
                            .submissions
                            .push(submission(&context, "tool_invoked", arguments));
                        let result = content(&attrs, &["tool_result"]);
                        if !result.is_empty() {
                            mapped
                                .submissions
                                .push(submission(&context, "tool_result", result));
                        }
                    }
                    "retrieval" => {
                        let payloads = content(&attrs, &["prompt", "response"]);
                        mapped
                            .submissions
                            .push(submission(&context, "data_accessed", payloads));
                    }
                    _ if keep_other => {
                        let alone = TracesData {
                            resource_spans: vec![ResourceSpans {
                                resource: resource.resource.clone(),
                                scope_spans: vec![ScopeSpans {
                                    scope: scope.scope.clone(),
                                    spans: vec![span.clone()],
                                    schema_url: scope.schema_url.clone(),
                                }],
                                schema_url: resource.schema_url.clone(),
                            }],
                        };
                        let json = serde_json::to_vec(&alone)
                            .map_err(|e| format!("{}: not encodable: {e}", context.what))?;
                        mapped.other.push((json, context.what));
                    }
                    _ => mapped.ignored += 1,
                }
            }
        }
    }
    Ok(mapped)
}

/// Maps the GenAI events of a logs request to record submissions.
///
/// # Errors
/// A message when the request holds more than [`MAX_ITEMS`] log records.
pub fn map_logs(request: &ExportLogsServiceRequest) -> Result<Mapped, String> {
    let mut mapped = Mapped::default();
    for resource in &request.resource_logs {
        let service = service_name(resource.resource.as_ref());
        for scope in &resource.scope_logs {
            for record in &scope.log_records {
                mapped.items += 1;
                if mapped.items > MAX_ITEMS {
                    return Err(format!("more than {MAX_ITEMS} log records in one request"));
                }
                let attrs = attributes(&record.attributes);
                let name = if record.event_name.is_empty() {
                    attrs
                        .get("event.name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                } else {
                    record.event_name.clone()
                };
                let (action, payload_name) = match name.as_str() {
                    "gen_ai.user.message" => ("user_message_received", "prompt"),
                    "gen_ai.choice" | "gen_ai.assistant.message" => {
                        ("agent_response_generated", "response")
                    }
                    "gen_ai.tool.message" => ("tool_result", "tool_result"),
                    _ => {
                        mapped.ignored += 1;
                        continue;
                    }
                };
                let mut payloads = Map::new();
                if let Some(body) = record.body.as_ref().map(json_of).filter(|b| !b.is_null()) {
                    payloads.insert(payload_name.to_owned(), payload(&body));
                }
                let trace = id_hex(&record.trace_id, 16)
                    .zip(id_hex(&record.span_id, 8))
                    .map(|(trace_id, span_id)| json!({"trace_id": trace_id, "span_id": span_id}));
                let context = Context {
                    attrs: &attrs,
                    service: service.as_deref(),
                    time: if record.time_unix_nano > 0 {
                        record.time_unix_nano
                    } else {
                        record.observed_time_unix_nano
                    },
                    trace,
                    what: format!("log record {name:?} (#{})", mapped.items - 1),
                };
                mapped
                    .submissions
                    .push(submission(&context, action, payloads));
            }
        }
    }
    Ok(mapped)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use opentelemetry_proto::tonic::common::v1::KeyValue;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..KeyValue::default()
        }
    }

    fn s(text: &str) -> any_value::Value {
        any_value::Value::StringValue(text.into())
    }

    fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
    }

    #[test]
    fn genai_spans_become_submissions_and_content_becomes_payloads() {
        let chat = Span {
            name: "chat gpt-x".into(),
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            end_time_unix_nano: 1_780_000_000_000_000_000,
            attributes: vec![
                kv("gen_ai.operation.name", s("chat")),
                kv("gen_ai.request.model", s("gpt-x")),
                kv("gen_ai.usage.input_tokens", any_value::Value::IntValue(12)),
                kv("gen_ai.conversation.id", s("c-1")),
                kv("gen_ai.input.messages", s("[{\"role\":\"user\"}]")),
                kv("gen_ai.system", s("legacy, not in the schema")),
            ],
            ..Span::default()
        };
        let tool = Span {
            name: "execute_tool lookup".into(),
            attributes: vec![
                kv("gen_ai.operation.name", s("execute_tool")),
                kv("gen_ai.tool.name", s("lookup")),
                kv("gen_ai.tool.call.arguments", s("{\"q\":1}")),
                kv("gen_ai.tool.call.result", s("42")),
            ],
            ..Span::default()
        };
        let http = Span {
            name: "GET /".into(),
            ..Span::default()
        };
        let all = request(vec![chat, tool, http]);
        let mapped = map_traces(&all, false).unwrap();
        assert_eq!(
            (mapped.items, mapped.ignored, mapped.submissions.len()),
            (3, 1, 3)
        );
        assert!(mapped.other.is_empty());
        // Kept: the other span alone, in OTLP JSON that decodes back to it.
        let kept = map_traces(&all, true).unwrap();
        assert_eq!((kept.ignored, kept.submissions.len()), (0, 3));
        let [(json, what)] = &kept.other[..] else {
            panic!("one kept span: {:?}", kept.other)
        };
        assert!(what.contains("GET /"), "{what}");
        let back = decode_traces(json, Encoding::Json).unwrap();
        let spans: Vec<&Span> = back
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .collect();
        assert_eq!(spans, [&all.resource_spans[0].scope_spans[0].spans[2]]);
        let first = &mapped.submissions[0].0;
        assert_eq!(first["action"], "agent_response_generated");
        assert_eq!(first["conversation_id"], "c-1");
        assert_eq!(first["gen_ai"]["gen_ai.usage.input_tokens"], 12);
        assert!(first["gen_ai"].get("gen_ai.system").is_none());
        assert!(
            first["gen_ai"].get("gen_ai.input.messages").is_none(),
            "content stays off the tree"
        );
        assert_eq!(first["payloads"]["prompt"]["text"], "[{\"role\":\"user\"}]");
        assert_eq!(first["trace"]["trace_id"], "01".repeat(16));
        assert_eq!(mapped.submissions[1].0["action"], "tool_invoked");
        assert_eq!(
            mapped.submissions[1].0["payloads"]["tool_arguments"]["text"],
            "{\"q\":1}"
        );
        assert_eq!(mapped.submissions[2].0["action"], "tool_result");
        assert_eq!(
            mapped.submissions[2].0["payloads"]["tool_result"]["text"],
            "42"
        );
        // Every submission is a valid record for the schema.
        for (event, _) in &mapped.submissions {
            veritrail_records::parse_submission(event).unwrap();
        }
    }

    #[test]
    fn bodies_decode_from_protobuf_json_and_gzip_and_garbage_is_refused() {
        let spans = request(vec![Span {
            name: "chat".into(),
            trace_id: vec![7; 16],
            span_id: vec![8; 8],
            attributes: vec![kv("gen_ai.operation.name", s("chat"))],
            ..Span::default()
        }]);
        let protobuf = spans.encode_to_vec();
        assert_eq!(decode_traces(&protobuf, Encoding::Protobuf).unwrap(), spans);
        let json = serde_json::to_vec(&spans).unwrap();
        assert_eq!(decode_traces(&json, Encoding::Json).unwrap(), spans);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &protobuf).unwrap();
        assert_eq!(gunzip(&gz.finish().unwrap()).unwrap(), protobuf);
        assert!(gunzip(b"not gzip").is_err());
        assert!(decode_traces(b"\xff\xff\xff", Encoding::Protobuf).is_err());
        assert!(decode_traces(b"{\"resourceSpans\": 3}", Encoding::Json).is_err());
        assert!(decode_traces(b"[]", Encoding::Json).is_err());
        assert!(decode_logs(b"[]", Encoding::Json).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            if let Ok(request) = decode_traces(&bytes, Encoding::Protobuf) {
                let _ = map_traces(&request, true);
            }
            if let Ok(request) = decode_logs(&bytes, Encoding::Protobuf) {
                let _ = map_logs(&request);
            }
            let _ = gunzip(&bytes);
            let _ = decode_traces(&bytes, Encoding::Json);
        }
    }
}
