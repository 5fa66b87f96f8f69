//! A typed builder for agent audit events, checked locally by the validator the server runs.
//!
//! ```
//! use veritrail_client::event::Event;
//! use veritrail_records::{Action, Classification, Domain};
//!
//! let event = Event::agent(Action::ToolInvoked, "triage-bot")
//!     .conversation("c-42")
//!     .subject("patient-7000")
//!     .tool("ehr.read_patient", "call-1")
//!     .resource("patient_record", "P-7000")
//!     .classification(Classification::Restricted)
//!     .compliance(Domain::Hipaa)
//!     .detail("fields_read", 12)
//!     .text_payload("tool_arguments", r#"{"patient": "P-7000"}"#)
//!     .build()?;
//! assert_eq!(event.json()["gen_ai"]["gen_ai.tool.name"], "ehr.read_patient");
//! // The payload is sent to the server, which keeps it off the tree and commits to it.
//! assert_eq!(event.json()["payloads"]["tool_arguments"]["media_type"], "text/plain; charset=utf-8");
//! # Ok::<(), veritrail_client::event::InvalidEvent>(())
//! ```
//!
//! [`crate::LogClient::append_events`] sends built events.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use veritrail_records::{
    Action, Actor, ActorType, Agent, AuditEvent, Classification, Domain, FieldProblem, Resource,
    Trace, parse_submission,
};

/// The media type of a text payload added without one.
pub const TEXT_MEDIA_TYPE: &str = "text/plain; charset=utf-8";

/// An event that failed validation: every problem, each naming its field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid event: {}", describe(.problems))]
pub struct InvalidEvent {
    /// What is wrong, field by field (as the server's 422 would say).
    pub problems: Vec<FieldProblem>,
}

fn describe(problems: &[FieldProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("{}: {}", p.field, p.problem))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A payload to be kept off the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Content {
    Text(String),
    Binary(Vec<u8>),
}

/// A builder of one audit event and its payloads.
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until built"]
pub struct Event {
    event: AuditEvent,
    payloads: BTreeMap<String, (String, Content)>,
}

/// A validated event, ready to send.
#[derive(Clone, Debug, PartialEq)]
pub struct BuiltEvent {
    event: AuditEvent,
    json: Value,
}

impl BuiltEvent {
    /// The event (without its payloads).
    pub fn event(&self) -> &AuditEvent {
        &self.event
    }

    /// The JSON the server receives, payloads included.
    pub fn json(&self) -> &Value {
        &self.json
    }
}

/// The current time as RFC 3339 UTC with millisecond precision.
fn now() -> String {
    let now = time::OffsetDateTime::now_utc();
    let millis = now.millisecond();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

impl Event {
    /// An event of `action` by `actor`, timestamped now.
    pub fn new(action: Action, actor: Actor) -> Event {
        Event {
            event: AuditEvent::new(now(), action, actor),
            payloads: BTreeMap::new(),
        }
    }

    /// An event of `action` by the agent `id`.
    pub fn agent(action: Action, id: impl Into<String>) -> Event {
        Event::new(action, actor(id, ActorType::Agent))
    }

    /// An event of `action` by the user `id`.
    pub fn user(action: Action, id: impl Into<String>) -> Event {
        Event::new(action, actor(id, ActorType::User))
    }

    /// An event of `action` by the administrator `id`.
    pub fn admin(action: Action, id: impl Into<String>) -> Event {
        Event::new(action, actor(id, ActorType::Admin))
    }

    /// An event of `action` by the system `id`.
    pub fn system(action: Action, id: impl Into<String>) -> Event {
        Event::new(action, actor(id, ActorType::System))
    }

    /// Sets the event's UUID (the server generates one if none is set).
    pub fn id(mut self, id: impl Into<String>) -> Event {
        self.event.id = Some(id.into());
        self
    }

    /// Sets the timestamp (RFC 3339 UTC, `...Z`) instead of now.
    pub fn timestamp(mut self, timestamp: impl Into<String>) -> Event {
        self.event.timestamp = timestamp.into();
        self
    }

    /// The agent software and its version.
    pub fn agent_software(mut self, name: impl Into<String>, version: impl Into<String>) -> Event {
        self.event.agent = Some(Agent {
            name: name.into(),
            version: Some(version.into()),
        });
        self
    }

    /// The conversation (and chain) the event belongs to; also sets `gen_ai.conversation.id`.
    pub fn conversation(mut self, id: impl Into<String>) -> Event {
        let id = id.into();
        self.event.gen_ai.conversation_id = Some(id.clone());
        self.event.conversation_id = Some(id);
        self
    }

    /// The session.
    pub fn session(mut self, id: impl Into<String>) -> Event {
        self.event.session_id = Some(id.into());
        self
    }

    /// The data subject (a patient, a customer) whose key encrypts the payloads: erasing the
    /// subject destroys them.
    pub fn subject(mut self, id: impl Into<String>) -> Event {
        self.event.subject = Some(id.into());
        self
    }

    /// The OpenTelemetry trace and span ids (32 and 16 lower-case hex digits).
    pub fn trace(mut self, trace_id: impl Into<String>, span_id: impl Into<String>) -> Event {
        self.event.trace = Some(Trace {
            trace_id: trace_id.into(),
            span_id: span_id.into(),
            parent_span_id: None,
        });
        self
    }

    /// What the action touched.
    pub fn resource(mut self, kind: impl Into<String>, id: impl Into<String>) -> Event {
        self.event.resource = Some(Resource {
            kind: kind.into(),
            id: id.into(),
            uri: None,
        });
        self
    }

    /// What the action touched, with its URI (a data source the registry may classify).
    pub fn resource_at(
        mut self,
        kind: impl Into<String>,
        id: impl Into<String>,
        uri: impl Into<String>,
    ) -> Event {
        self.event.resource = Some(Resource {
            kind: kind.into(),
            id: id.into(),
            uri: Some(uri.into()),
        });
        self
    }

    /// How sensitive the event is (the server's registry may raise it).
    pub fn classification(mut self, classification: Classification) -> Event {
        self.event.classification = Some(classification);
        self
    }

    /// Adds a compliance domain.
    pub fn compliance(mut self, domain: Domain) -> Event {
        self.event.compliance.insert(domain);
        self
    }

    /// A tool call: `gen_ai.operation.name` = `execute_tool`, the tool's name and call id.
    pub fn tool(mut self, name: impl Into<String>, call_id: impl Into<String>) -> Event {
        self.event.gen_ai.operation_name = Some("execute_tool".into());
        self.event.gen_ai.tool_name = Some(name.into());
        self.event.gen_ai.tool_call_id = Some(call_id.into());
        self
    }

    /// A model call: `gen_ai.operation.name` = `chat`, the provider and the requested model.
    pub fn model(mut self, provider: impl Into<String>, model: impl Into<String>) -> Event {
        self.event.gen_ai.operation_name = Some("chat".into());
        self.event.gen_ai.provider_name = Some(provider.into());
        self.event.gen_ai.request_model = Some(model.into());
        self
    }

    /// Token usage of a model call.
    pub fn usage(mut self, input_tokens: u64, output_tokens: u64) -> Event {
        self.event.gen_ai.input_tokens = Some(input_tokens);
        self.event.gen_ai.output_tokens = Some(output_tokens);
        self
    }

    /// Sets `gen_ai.operation.name` (e.g. `invoke_agent`, `retrieval`).
    pub fn operation(mut self, name: impl Into<String>) -> Event {
        self.event.gen_ai.operation_name = Some(name.into());
        self
    }

    /// Adds one metadata field to `details` (scrubbed by the server of secrets and PHI-like
    /// identifiers; put sensitive content in a payload instead).
    pub fn detail(mut self, key: impl Into<String>, value: impl Into<Value>) -> Event {
        self.event
            .details
            .get_or_insert_with(Map::new)
            .insert(key.into(), value.into());
        self
    }

    /// Adds a text payload (`text/plain; charset=utf-8`), kept off the tree.
    pub fn text_payload(self, name: impl Into<String>, text: impl Into<String>) -> Event {
        self.text_payload_as(name, TEXT_MEDIA_TYPE, text)
    }

    /// Adds a text payload of another media type (e.g. `application/json`).
    pub fn text_payload_as(
        mut self,
        name: impl Into<String>,
        media_type: impl Into<String>,
        text: impl Into<String>,
    ) -> Event {
        self.payloads
            .insert(name.into(), (media_type.into(), Content::Text(text.into())));
        self
    }

    /// Adds a binary payload, kept off the tree.
    pub fn binary_payload(
        mut self,
        name: impl Into<String>,
        media_type: impl Into<String>,
        bytes: impl Into<Vec<u8>>,
    ) -> Event {
        self.payloads.insert(
            name.into(),
            (media_type.into(), Content::Binary(bytes.into())),
        );
        self
    }

    /// Validates the event as the server will, and returns it ready to send.
    ///
    /// # Errors
    /// [`InvalidEvent`] naming every field at fault.
    pub fn build(self) -> Result<BuiltEvent, InvalidEvent> {
        let problem = |problem: String| InvalidEvent {
            problems: vec![FieldProblem {
                field: String::new(),
                problem,
            }],
        };
        let mut json = serde_json::to_value(&self.event).map_err(|e| problem(e.to_string()))?;
        if !self.payloads.is_empty() {
            let payloads: Map<String, Value> = self
                .payloads
                .into_iter()
                .map(|(name, (media_type, content))| {
                    let value = match content {
                        Content::Text(text) => json!({"media_type": media_type, "text": text}),
                        Content::Binary(bytes) => {
                            json!({"media_type": media_type, "base64": STANDARD.encode(bytes)})
                        }
                    };
                    (name, value)
                })
                .collect();
            if let Some(object) = json.as_object_mut() {
                object.insert("payloads".into(), Value::Object(payloads));
            }
        }
        let (event, _) = parse_submission(&json).map_err(|problems| InvalidEvent { problems })?;
        Ok(BuiltEvent { event, json })
    }
}

fn actor(id: impl Into<String>, kind: ActorType) -> Actor {
    Actor {
        id: id.into(),
        kind,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn a_built_event_is_what_the_server_validates() {
        let built = Event::user(Action::UserMessageReceived, "patient-portal")
            .id("6f1c2a8e-0d2b-4f8e-9f5e-3a7c1b2d4e6f")
            .conversation("c-1")
            .session("s-1")
            .agent_software("triage", "1.4.0")
            .model("openai", "gpt-4o")
            .usage(120, 48)
            .trace("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
            .resource_at("patient_record", "P-7000", "fhir://st-mary/Patient/7000")
            .detail("channel", "web")
            .text_payload("prompt", "my chest hurts")
            .binary_payload("attachment", "image/png", vec![0x89, b'P', b'N', b'G'])
            .build()
            .unwrap();
        let json = built.json();
        assert_eq!(json["action"], "user_message_received");
        assert_eq!(
            json["actor"],
            json!({"id": "patient-portal", "type": "user"})
        );
        assert_eq!(json["gen_ai"]["gen_ai.conversation.id"], "c-1");
        assert_eq!(json["gen_ai"]["gen_ai.usage.input_tokens"], 120);
        assert_eq!(json["payloads"]["attachment"]["base64"], "iVBORw==");
        assert_eq!(json["payloads"]["prompt"]["text"], "my chest hurts");
        // The same JSON parses back to the same event, as the server parses it.
        let (event, payloads) = parse_submission(json).unwrap();
        assert_eq!(&event, built.event());
        assert_eq!(payloads.len(), 2);
        // The timestamp is RFC 3339 UTC.
        let stamp = Event::agent(Action::Error, "a").build().unwrap();
        let text = stamp.json()["timestamp"].as_str().unwrap().to_owned();
        assert!(
            time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
                .is_ok()
                && text.ends_with('Z'),
            "{text}"
        );
    }

    #[test]
    fn invalid_events_name_every_field_at_fault() {
        let err = Event::agent(Action::ToolInvoked, "")
            .timestamp("yesterday")
            .trace("xyz", "00f067aa0ba902b7")
            .build()
            .unwrap_err();
        let fields: Vec<&str> = err.problems.iter().map(|p| p.field.as_str()).collect();
        assert!(fields.contains(&"timestamp"), "{err}");
        assert!(fields.contains(&"actor.id"), "{err}");
        assert!(fields.contains(&"trace.trace_id"), "{err}");
        assert!(err.to_string().starts_with("invalid event: "), "{err}");
    }
}
