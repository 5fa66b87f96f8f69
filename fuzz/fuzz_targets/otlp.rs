//! OTLP ingest: `veritrail_server::otlp` decoding (protobuf and JSON, gzip) and the mapping of
//! GenAI spans and log events to record submissions.
//!
//! Each input is tried as it is and, when it inflates, as a gzip body.
//!
//! Asserts: nothing panics; with other spans kept, none is ignored and each kept one is OTLP
//! JSON that decodes back to a request of that one span; a decoded request maps to at most two submissions per span (one
//! per log record), never more than it has items, and never more than `MAX_ITEMS` items;
//! every submission is a JSON object whose `action` is one the mapping documents, whose
//! content stays in `payloads` (no `gen_ai` attribute holds a content key), and whose
//! `gen_ai` keys are all ones the record schema takes; gzip never inflates past its bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use veritrail_server::otlp::{
    Encoding, MAX_INFLATED, MAX_ITEMS, Mapped, decode_logs, decode_traces, gunzip, map_logs,
    map_traces,
};

const ACTIONS: [&str; 5] = [
    "agent_response_generated",
    "tool_invoked",
    "tool_result",
    "data_accessed",
    "user_message_received",
];

fn check(mapped: &Mapped, per_item: usize) {
    assert!(mapped.items <= MAX_ITEMS);
    assert!(mapped.submissions.len() <= mapped.items * per_item);
    assert!(mapped.ignored as usize <= mapped.items);
    for (submission, _) in &mapped.submissions {
        let object = submission.as_object().expect("a submission is an object");
        let action = object["action"].as_str().expect("an action");
        assert!(ACTIONS.contains(&action), "{action}");
        if let Some(gen_ai) = object.get("gen_ai").and_then(|g| g.as_object()) {
            for key in gen_ai.keys() {
                assert!(!key.contains("messages") && !key.contains("arguments"), "{key}");
                assert!(!key.ends_with(".result") && !key.ends_with("instructions"), "{key}");
            }
        }
        // What the server does next with it: never a panic either.
        let _ = veritrail_records::parse_submission(submission);
    }
}

/// What the server does with a body: decode it both ways and map what decodes.
fn decode_and_map(data: &[u8]) {
    for encoding in [Encoding::Protobuf, Encoding::Json] {
        if let Ok(request) = decode_traces(data, encoding) {
            for keep in [false, true] {
                let Ok(mapped) = map_traces(&request, keep) else {
                    continue;
                };
                check(&mapped, 2);
                if !keep {
                    assert!(mapped.other.is_empty());
                    continue;
                }
                // Kept: nothing ignored, and each kept span decodes back alone.
                assert_eq!(mapped.ignored, 0);
                assert!(mapped.other.len() <= mapped.items);
                for (json, _) in &mapped.other {
                    let alone = decode_traces(json, Encoding::Json).expect("kept span decodes");
                    let spans: usize = alone
                        .resource_spans
                        .iter()
                        .flat_map(|r| &r.scope_spans)
                        .map(|s| s.spans.len())
                        .sum();
                    assert_eq!(spans, 1);
                }
            }
        }
        if let Ok(request) = decode_logs(data, encoding)
            && let Ok(mapped) = map_logs(&request)
        {
            check(&mapped, 1);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    decode_and_map(data);
    // A `Content-Encoding: gzip` body: inflated within its bound, then the same.
    if let Ok(inflated) = gunzip(data) {
        assert!(inflated.len() as u64 <= MAX_INFLATED);
        decode_and_map(&inflated);
    }
});
