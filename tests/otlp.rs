//! OTLP ingest against the real server: GenAI spans and events sent as OTLP/HTTP protobuf,
//! JSON and gzip become records whose content is in committed payloads; the answer comes
//! once they are durable; invalid ones are reported in `partial_success`; garbage is refused
//! and changes nothing.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message as _;
use serde_json::Value;

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

fn spans(conversation: &str, tokens: i64) -> ExportTraceServiceRequest {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let chat = Span {
        name: "chat gpt-x".into(),
        trace_id: vec![0xab; 16],
        span_id: vec![1; 8],
        start_time_unix_nano: now - 1_000_000,
        end_time_unix_nano: now,
        attributes: vec![
            kv("gen_ai.operation.name", s("chat")),
            kv("gen_ai.request.model", s("gpt-x")),
            kv(
                "gen_ai.usage.input_tokens",
                any_value::Value::IntValue(tokens),
            ),
            kv("gen_ai.usage.output_tokens", any_value::Value::IntValue(7)),
            kv("gen_ai.conversation.id", s(conversation)),
            kv(
                "gen_ai.input.messages",
                s("[{\"role\":\"user\",\"content\":\"what is my dose?\"}]"),
            ),
            kv(
                "gen_ai.output.messages",
                s("[{\"role\":\"assistant\",\"content\":\"5 mg\"}]"),
            ),
        ],
        ..Span::default()
    };
    let tool = Span {
        name: "execute_tool ehr_read".into(),
        trace_id: vec![0xab; 16],
        span_id: vec![2; 8],
        parent_span_id: vec![1; 8],
        end_time_unix_nano: now,
        attributes: vec![
            kv("gen_ai.operation.name", s("execute_tool")),
            kv("gen_ai.tool.name", s("ehr_read")),
            kv("gen_ai.tool.call.id", s("call_1")),
            kv("gen_ai.conversation.id", s(conversation)),
            kv("gen_ai.tool.call.arguments", s("{\"patient\":\"P-1\"}")),
            kv("gen_ai.tool.call.result", s("{\"dose\":\"5 mg\"}")),
        ],
        ..Span::default()
    };
    let http = Span {
        name: "GET /health".into(),
        ..Span::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s("triage-agent"))],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![chat, tool, http],
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

async fn post(
    base: &str,
    path: &str,
    content_type: &str,
    gzip: bool,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/{path}"))
        .header("Content-Type", content_type);
    let body = if gzip {
        request = request.header("Content-Encoding", "gzip");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut encoder, &body).unwrap();
        encoder.finish().unwrap()
    } else {
        body
    };
    request.body(body).send().await.unwrap()
}

async fn records(base: &str, conversation: &str) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let response = reqwest::get(format!("{base}/v1/conversations/{conversation}"))
            .await
            .unwrap();
        if response.status().is_success() {
            let page: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
            let records: Vec<Value> = page["records"].as_array().unwrap().clone();
            if !records.is_empty() {
                return records;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no records for {conversation}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genai_spans_and_events_become_durable_records_with_payloads() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, base) =
        support::start_serve(&dir.path().join("data"), &["--checkpoint-interval", "50ms"]);

    // Protobuf, JSON, and gzip-compressed protobuf: each a chat, a tool call and its result.
    for (i, (content_type, gzip)) in [
        ("application/x-protobuf", false),
        ("application/json", false),
        ("application/x-protobuf", true),
    ]
    .into_iter()
    .enumerate()
    {
        let conversation = format!("otlp-{i}");
        let request = spans(&conversation, 12);
        let body = if content_type == "application/json" {
            serde_json::to_vec(&request).unwrap()
        } else {
            request.encode_to_vec()
        };
        let response = post(&base, "v1/traces", content_type, gzip, body).await;
        assert_eq!(response.status(), 200, "{content_type}");
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            content_type
        );
        let bytes = response.bytes().await.unwrap();
        let answer: ExportTraceServiceResponse = if content_type == "application/json" {
            serde_json::from_slice(&bytes).unwrap()
        } else {
            ExportTraceServiceResponse::decode(bytes).unwrap()
        };
        assert_eq!(answer.partial_success, None);
        let records = records(&base, &conversation).await;
        let actions: Vec<&str> = records
            .iter()
            .map(|r| r["record"]["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            ["agent_response_generated", "tool_invoked", "tool_result"]
        );
        let chat = &records[0]["record"];
        assert_eq!(chat["actor"]["id"], "triage-agent");
        assert_eq!(chat["gen_ai"]["gen_ai.usage.input_tokens"], 12);
        assert_eq!(chat["trace"]["trace_id"], "ab".repeat(16));
        // Content is committed, not in the record.
        assert!(!chat.to_string().contains("what is my dose"));
        assert!(chat["payloads"]["prompt"]["commitment"].is_string());
        let index = records[0]["index"].as_u64().unwrap();
        let payload = reqwest::get(format!("{base}/v1/records/{index}/payloads/prompt"))
            .await
            .unwrap();
        assert_eq!(payload.status(), 200);
        let payload: Value = serde_json::from_slice(&payload.bytes().await.unwrap()).unwrap();
        let text = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            payload["payload"].as_str().unwrap(),
        )
        .unwrap();
        assert!(
            String::from_utf8(text)
                .unwrap()
                .contains("what is my dose?")
        );
        assert_eq!(records[2]["record"]["prev"]["index"], records[1]["index"]);
    }

    // A record the schema refuses (negative token count): the others are appended, the bad
    // one is counted in partial_success with the reason.
    let response = post(
        &base,
        "v1/traces",
        "application/x-protobuf",
        false,
        spans("otlp-bad", -5).encode_to_vec(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let answer = ExportTraceServiceResponse::decode(response.bytes().await.unwrap()).unwrap();
    let partial = answer.partial_success.unwrap();
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial.error_message.contains("input_tokens"),
        "{}",
        partial.error_message
    );
    assert_eq!(records(&base, "otlp-bad").await.len(), 2);

    // Events on /v1/logs.
    let logs = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    event_name: "gen_ai.user.message".into(),
                    body: Some(AnyValue {
                        value: Some(s("hello from the user")),
                    }),
                    attributes: vec![kv("gen_ai.conversation.id", s("otlp-logs"))],
                    ..LogRecord::default()
                }],
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    };
    let response = post(
        &base,
        "v1/logs",
        "application/json",
        false,
        serde_json::to_vec(&logs).unwrap(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let answer: ExportLogsServiceResponse =
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(answer.partial_success, None);
    let records = records(&base, "otlp-logs").await;
    assert_eq!(records[0]["record"]["action"], "user_message_received");

    // Garbage changes nothing: a bad body, a bad type, a bad encoding.
    let size = |base: String| async move {
        let note = reqwest::get(format!("{base}/checkpoint"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        note.lines().nth(1).unwrap().parse::<u64>().unwrap()
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = size(base.clone()).await;
    let bad = post(
        &base,
        "v1/traces",
        "application/x-protobuf",
        false,
        vec![0xff; 64],
    )
    .await;
    assert_eq!(bad.status(), 400);
    let body: Value = serde_json::from_slice(&bad.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"], "invalid_entry");
    assert_eq!(
        post(&base, "v1/traces", "text/plain", false, b"x".to_vec())
            .await
            .status(),
        415
    );
    let brotli = reqwest::Client::new()
        .post(format!("{base}/v1/traces"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "br")
        .body(vec![1, 2, 3])
        .send()
        .await
        .unwrap();
    assert_eq!(brotli.status(), 415);
    // An empty request (gzip of nothing) is answered and appends nothing.
    assert_eq!(
        post(
            &base,
            "v1/traces",
            "application/x-protobuf",
            true,
            Vec::new()
        )
        .await
        .status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(size(base.clone()).await, before, "nothing was appended");

    // An oversized body is 413 and changes nothing.
    let small = tempfile::tempdir().unwrap();
    let (_small_server, small_base) =
        support::start_serve(&small.path().join("data"), &["--max-body-bytes", "65536"]);
    let mut big = spans("otlp-big", 1);
    let filler = "x".repeat(100_000);
    big.resource_spans[0].scope_spans[0].spans[0]
        .attributes
        .push(kv("gen_ai.input.messages", s(&filler)));
    let response = post(
        &small_base,
        "v1/traces",
        "application/x-protobuf",
        false,
        big.encode_to_vec(),
    )
    .await;
    assert_eq!(response.status(), 413);
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"], "payload_too_large");
    // Nothing was appended: the log has no entry 0.
    let first = reqwest::get(format!("{small_base}/v1/entries/0"))
        .await
        .unwrap();
    assert_eq!(first.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_spans_are_kept_as_raw_entries_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, base) = support::start_serve(
        &dir.path().join("data"),
        &["--no-audit-reads", "--otlp-keep-other-spans"],
    );

    // The chat, the tool call and its result become records; `GET /health` a raw entry. A
    // second other span too large for one entry is rejected, and the rest still appended.
    let mut request = spans("kept", 3);
    request.resource_spans[0].scope_spans[0].spans.push(Span {
        name: "SELECT big".into(),
        attributes: vec![kv("db.statement", s(&"x".repeat(70_000)))],
        ..Span::default()
    });
    let response = post(
        &base,
        "v1/traces",
        "application/x-protobuf",
        false,
        request.encode_to_vec(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let answer = ExportTraceServiceResponse::decode(response.bytes().await.unwrap()).unwrap();
    let partial = answer.partial_success.expect("one span rejected");
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial.error_message.contains("SELECT big") && partial.error_message.contains("raw entry"),
        "{}",
        partial.error_message
    );

    // Durable on the answer: the log holds exactly four entries, the kept span first.
    let mut entries = Vec::new();
    for index in 0.. {
        let response = reqwest::get(format!("{base}/v1/entries/{index}"))
            .await
            .unwrap();
        if response.status() == 404 {
            break;
        }
        assert_eq!(response.status(), 200);
        entries.push(response.bytes().await.unwrap());
    }
    assert_eq!(entries.len(), 4, "three records and one kept span");
    let kept = ExportTraceServiceRequest {
        resource_spans: serde_json::from_slice::<ExportTraceServiceRequest>(&entries[0])
            .unwrap()
            .resource_spans,
    };
    let span = &kept.resource_spans[0].scope_spans[0].spans;
    assert_eq!(span.len(), 1);
    assert_eq!(span[0], request.resource_spans[0].scope_spans[0].spans[2]);
    assert_eq!(
        kept.resource_spans[0].resource, request.resource_spans[0].resource,
        "the span keeps its resource"
    );
    let records = records(&base, "kept").await;
    assert_eq!(records.len(), 3);
}
