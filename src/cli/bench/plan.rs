//! The work shared by the load generator's tasks ([`Plan`]), what each task measured
//! ([`Tally`]) and the entries it sends ([`Entries`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use hdrhistogram::Histogram;
use veritrail_ledger::bundle::append_entry;

use crate::cli::common::error::CliError;

/// Most retries of one request answered `503`; then it counts as failed.
pub(super) const MAX_RETRIES: u32 = 20;
/// Longest wait honoured from a `Retry-After` header, in seconds.
pub(super) const MAX_RETRY_AFTER_S: u64 = 10;
/// Highest latency the histogram tracks exactly (1 hour in µs); longer ones saturate.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// What the requests carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Load {
    /// Raw entries (`POST /v1/entries`).
    Entries,
    /// Agent records (`POST /v1/records`, `--records`).
    Records,
    /// OTLP GenAI spans (`POST /v1/traces`, `--otlp`), one record each.
    Spans,
}

impl Load {
    /// What one unit of load is called in the report.
    pub(super) fn unit(self) -> &'static str {
        match self {
            Load::Entries => "entries",
            Load::Records => "record payloads",
            Load::Spans => "span outputs",
        }
    }
}

/// Work shared by every task.
pub(super) struct Plan {
    /// Entries claimed so far (the next request takes the entries from here on).
    pub(super) claimed: AtomicU64,
    /// Entries appended so far, for the progress bar.
    pub(super) appended: AtomicU64,
    /// Entries to append in total (`--entries`).
    pub(super) entries: u64,
    /// Entries per request (`--batch`).
    pub(super) batch: u64,
    /// Bytes per entry, or per record payload (`--size`).
    pub(super) size: usize,
    /// What each request carries.
    pub(super) load: Load,
    /// This run's id, in the records' conversation ids.
    pub(super) run: u64,
    /// When to stop sending new requests (`--duration`), if ever.
    pub(super) deadline: Option<Instant>,
}

impl Plan {
    /// Claims the next request: its first entry number and its entry count.
    pub(super) fn claim(&self) -> Option<(u64, u64)> {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        let first = self.claimed.fetch_add(self.batch, Ordering::Relaxed);
        (first < self.entries).then(|| (first, self.batch.min(self.entries - first)))
    }
}

/// One task's results, merged at the end.
pub(super) struct Tally {
    /// Latency of each successful request, µs.
    pub(super) latency: Histogram<u64>,
    /// Entries appended.
    pub(super) appended: u64,
    /// Requests that succeeded.
    pub(super) requests: u64,
    /// Answers other than success, by status (retried 503s included), and transport errors.
    pub(super) errors: BTreeMap<String, u64>,
    /// Requests that failed for good.
    pub(super) failed_requests: u64,
    /// Entries in the requests that failed for good.
    pub(super) failed_entries: u64,
    /// Requests sent again after a `503`.
    pub(super) retries: u64,
}

impl Tally {
    /// An empty tally.
    ///
    /// # Errors
    /// [`CliError::LoadGenerator`] if the histogram cannot be created.
    pub(super) fn new() -> Result<Self, CliError> {
        Ok(Tally {
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).map_err(|e| {
                CliError::LoadGenerator {
                    what: "cannot create a histogram",
                    source: Box::new(e),
                }
            })?,
            appended: 0,
            requests: 0,
            errors: BTreeMap::new(),
            failed_requests: 0,
            failed_entries: 0,
            retries: 0,
        })
    }

    /// Records a successful request of `entries` entries sent at `started`.
    pub(super) fn success(&mut self, started: Instant, entries: u64) {
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.latency.saturating_record(micros.max(1));
        self.appended += entries;
        self.requests += 1;
    }

    /// Counts an answer that was not a success (the request may be retried).
    pub(super) fn error(&mut self, key: String) {
        *self.errors.entry(key).or_insert(0) += 1;
    }

    /// Counts a request that failed for good.
    pub(super) fn failure(&mut self, key: String, entries: u64) {
        self.error(key);
        self.failed_requests += 1;
        self.failed_entries += entries;
    }

    /// Adds another task's tally to this one.
    ///
    /// # Errors
    /// [`CliError::LoadGenerator`] if the histograms cannot be merged.
    pub(super) fn merge(&mut self, other: Tally) -> Result<(), CliError> {
        self.latency
            .add(&other.latency)
            .map_err(|e| CliError::LoadGenerator {
                what: "cannot merge histograms",
                source: Box::new(e),
            })?;
        self.appended += other.appended;
        self.requests += other.requests;
        for (key, count) in other.errors {
            *self.errors.entry(key).or_insert(0) += count;
        }
        self.failed_requests += other.failed_requests;
        self.failed_entries += other.failed_entries;
        self.retries += other.retries;
        Ok(())
    }
}

/// Generates agent records for `POST /v1/records`: `tool_result` events of one conversation
/// per task, each with a text payload of `size` bytes (distinct per record).
pub(super) struct Records {
    conversation: String,
    actor: String,
    text: String,
}

impl Records {
    /// Records with payloads of `size` bytes for task `task` of run `run`.
    pub(super) fn new(size: usize, task: u32, run: u64) -> Self {
        // Payload text: the task's pseudo-random bytes as lower-case letters and digits.
        const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
        let text = Entries::new(size, task)
            .template
            .iter()
            .map(|b| char::from(*ALPHABET.get(usize::from(b & 31)).unwrap_or(&b'a')))
            .collect();
        Records {
            conversation: format!("bench-{run:x}-{task}"),
            actor: format!("bench-agent-{task}"),
            text,
        }
    }

    /// The payload text that follows `number` at the payload's start, so that every payload
    /// has `size` bytes and no two are equal.
    fn text_after(&self, number: &str) -> &str {
        self.text
            .get(number.len().min(self.text.len())..)
            .unwrap_or("")
    }

    /// One request's body: one record, or a JSON array of `count`. Written from a template
    /// (every part is plain ASCII that needs no escaping), so the generator spends little of
    /// the CPU it shares with the server.
    pub(super) fn body(&mut self, first: u64, count: u64) -> Bytes {
        let mut body = String::with_capacity((self.text.len() + 400) * count as usize + 2);
        if count > 1 {
            body.push('[');
        }
        for n in first..first + count {
            if n > first {
                body.push(',');
            }
            // The record number leads the payload, so no two payloads are equal.
            let number = n.to_string();
            body.push_str(
                r#"{"timestamp":"2026-03-01T12:00:00Z","action":"tool_result","actor":{"id":""#,
            );
            body.push_str(&self.actor);
            body.push_str(r#"","type":"agent"},"conversation_id":""#);
            body.push_str(&self.conversation);
            body.push_str(r#"","gen_ai":{"gen_ai.operation.name":"execute_tool","gen_ai.tool.name":"bench.lookup"},"details":{"n":"#);
            body.push_str(&number);
            body.push_str(r#"},"payloads":{"tool_result":{"media_type":"text/plain","text":""#);
            body.push_str(&number);
            body.push_str(self.text_after(&number));
            body.push_str(r#""}}}"#);
        }
        if count > 1 {
            body.push(']');
        }
        Bytes::from(body)
    }
}

/// Generates OTLP/HTTP trace requests for `POST /v1/traces`: GenAI inference spans
/// (`gen_ai.operation.name` `chat`) of one conversation per task, each with an output of
/// `size` bytes in `gen_ai.output.messages`, so that each span becomes one
/// `agent_response_generated` record with one committed payload, like a record of
/// [`Records`].
pub(super) struct Spans {
    /// The conversation, agent and text the records of the same task would have.
    records: Records,
    /// The run's id, the high half of each span's trace id.
    run: u64,
    task: u32,
}

impl Spans {
    /// Spans with outputs of `size` bytes for task `task` of run `run`.
    pub(super) fn new(size: usize, task: u32, run: u64) -> Self {
        Spans {
            records: Records::new(size, task, run),
            run,
            task,
        }
    }

    /// One request's body: `count` spans, protobuf-encoded.
    pub(super) fn body(&mut self, first: u64, count: u64) -> Bytes {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
        use opentelemetry_proto::tonic::resource::v1::Resource;
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
        use prost::Message as _;

        let text = |key: &str, value: &str| KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.to_owned())),
            }),
            ..KeyValue::default()
        };
        let int = |key: &str, value: i64| KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue {
                value: Some(any_value::Value::IntValue(value)),
            }),
            ..KeyValue::default()
        };
        // 2026-03-01T12:00:00Z, as the records' timestamp.
        const START_NS: u64 = 1_772_366_400_000_000_000;
        let spans = (first..first + count)
            .map(|n| {
                // The span number leads the output, so no two outputs are equal.
                let number = n.to_string();
                let output = format!("{number}{}", self.records.text_after(&number));
                let trace_id = [self.run.to_be_bytes(), n.to_be_bytes()].concat();
                let span_id = (n ^ (u64::from(self.task) << 48)).to_be_bytes().to_vec();
                Span {
                    trace_id,
                    span_id,
                    name: "chat bench-model".into(),
                    kind: 3, // client
                    start_time_unix_nano: START_NS,
                    end_time_unix_nano: START_NS + 1_000_000,
                    attributes: vec![
                        text("gen_ai.operation.name", "chat"),
                        text("gen_ai.request.model", "bench-model"),
                        text("gen_ai.agent.name", &self.records.actor),
                        text("gen_ai.conversation.id", &self.records.conversation),
                        int("gen_ai.usage.input_tokens", 12),
                        int("gen_ai.usage.output_tokens", 34),
                        text("gen_ai.output.messages", &output),
                    ],
                    ..Span::default()
                }
            })
            .collect();
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![text("service.name", "veritrail-bench")],
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        };
        Bytes::from(request.encode_to_vec())
    }
}

/// What one task sends over HTTP, for the plan's [`Load`].
pub(super) enum Bodies {
    /// Raw entries: the task's [`Entries`] (which the in-process target uses too).
    Entries,
    /// Agent records.
    Records(Records),
    /// OTLP spans.
    Spans(Spans),
}

impl Bodies {
    /// The bodies of task `task` of run `run`, with `size` bytes per entry or payload.
    pub(super) fn new(load: Load, size: usize, task: u32, run: u64) -> Self {
        match load {
            Load::Entries => Bodies::Entries,
            Load::Records => Bodies::Records(Records::new(size, task, run)),
            Load::Spans => Bodies::Spans(Spans::new(size, task, run)),
        }
    }

    /// One request's body, for items `first..first + count`.
    pub(super) fn body(&mut self, entries: &mut Entries, first: u64, count: u64) -> Bytes {
        match self {
            Bodies::Entries => entries.body(first, count),
            Bodies::Records(records) => records.body(first, count),
            Bodies::Spans(spans) => spans.body(first, count),
        }
    }
}

/// Generates distinct, incompressible entries: a per-task pseudo-random body whose first
/// bytes are the entry number.
pub(super) struct Entries {
    pub(super) template: Vec<u8>,
}

impl Entries {
    /// Entries of `size` bytes for task number `task`.
    pub(super) fn new(size: usize, task: u32) -> Self {
        // xorshift64*, seeded per task: cheap, and no two tasks share a body.
        let mut state =
            0x9E37_79B9_7F4A_7C15_u64 ^ (u64::from(task) + 1).wrapping_mul(0xA24B_AED4_963E_E407);
        let template = (0..size)
            .map(|_| {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_be_bytes()[0]
            })
            .collect();
        Entries { template }
    }

    /// Entry number `n`.
    pub(super) fn entry(&mut self, n: u64) -> &[u8] {
        for (byte, digit) in self.template.iter_mut().zip(n.to_be_bytes()) {
            *byte = digit;
        }
        &self.template
    }

    /// One request's body: a raw entry, or a batch of `count` entries.
    pub(super) fn body(&mut self, first: u64, count: u64) -> Bytes {
        if count == 1 {
            return Bytes::copy_from_slice(self.entry(first));
        }
        let mut body = Vec::with_capacity((self.template.len() + 2) * count as usize);
        for n in first..first + count {
            // The size is capped at 65535 by the argument parser: this cannot fail.
            let _ = append_entry(&mut body, self.entry(n));
        }
        Bytes::from(body)
    }

    /// One request's entries, for the in-process sequencer.
    pub(super) fn list(&mut self, first: u64, count: u64) -> Vec<Bytes> {
        (first..first + count)
            .map(|n| Bytes::copy_from_slice(self.entry(n)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_distinct_and_batches_are_bundles() {
        let mut entries = Entries::new(16, 0);
        let a = entries.entry(1).to_vec();
        let b = entries.entry(2).to_vec();
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
        assert_ne!(Entries::new(16, 1).entry(1), &a[..], "tasks differ");
        let body = entries.body(7, 3);
        let decoded = veritrail_ledger::bundle::decode_bundle(&body, 3).expect("a bundle");
        assert_eq!(decoded.len(), 3);
        assert_eq!(entries.body(7, 1).len(), 16);
    }

    #[test]
    fn record_bodies_are_valid_distinct_events() {
        let mut records = Records::new(64, 3, 0xabc);
        let one: serde_json::Value = serde_json::from_slice(&records.body(7, 1)).expect("JSON");
        let (event, payloads) = veritrail_records::parse_submission(&one).expect("a valid event");
        assert_eq!(event.conversation_id.as_deref(), Some("bench-abc-3"));
        assert_eq!(payloads.len(), 1);
        assert_eq!(payloads.first().map(|p| p.bytes.len()), Some(64));
        let many: serde_json::Value = serde_json::from_slice(&records.body(7, 3)).expect("JSON");
        let many = many.as_array().expect("an array");
        assert_eq!(many.len(), 3);
        assert_eq!(many.first(), Some(&one));
        assert_ne!(many.get(1), many.get(2));
    }

    #[test]
    fn span_bodies_map_to_one_record_each() {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use prost::Message as _;

        let mut spans = Spans::new(64, 3, 0xabc);
        let body = spans.body(7, 3);
        let request = ExportTraceServiceRequest::decode(body).expect("protobuf");
        let mapped = veritrail_server::otlp::map_traces(&request, false).expect("mapped");
        assert_eq!(mapped.ignored, 0);
        assert_eq!(mapped.submissions.len(), 3);
        let mut outputs = Vec::new();
        for (submission, _) in &mapped.submissions {
            let (event, payloads) =
                veritrail_records::parse_submission(submission).expect("a valid event");
            assert_eq!(event.conversation_id.as_deref(), Some("bench-abc-3"));
            assert_eq!(event.action.as_str(), "agent_response_generated");
            let payload = payloads.first().expect("one payload");
            assert_eq!(payloads.len(), 1);
            outputs.push(payload.bytes.clone());
        }
        outputs.dedup();
        assert_eq!(outputs.len(), 3, "distinct outputs");
    }

    #[test]
    fn the_plan_hands_out_every_entry_once() {
        let plan = Plan {
            claimed: AtomicU64::new(0),
            appended: AtomicU64::new(0),
            entries: 10,
            batch: 4,
            size: 1,
            load: Load::Entries,
            run: 0,
            deadline: None,
        };
        assert_eq!(plan.claim(), Some((0, 4)));
        assert_eq!(plan.claim(), Some((4, 4)));
        assert_eq!(plan.claim(), Some((8, 2)));
        assert_eq!(plan.claim(), None);
        let late = Plan {
            deadline: Some(Instant::now()),
            ..plan
        };
        assert_eq!(late.claim(), None);
    }
}
