//! The typed audit event an agent submits ([`AuditEvent`]) and its parts.
//!
//! Every type serializes to the JSON documented in `docs/events.md`; the server never
//! deserializes client JSON into these directly but goes through [`crate::parse_event`],
//! which reports every problem with its field path.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// What happened. The known actions, or a namespaced custom one `x-<vendor>.<name>`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Action {
    /// A conversation (chain) begins.
    ConversationStarted,
    /// The agent received a user's message.
    UserMessageReceived,
    /// The agent produced a response.
    AgentResponseGenerated,
    /// The agent called a tool.
    ToolInvoked,
    /// A tool returned.
    ToolResult,
    /// The agent executed code.
    CodeExecuted,
    /// Data was read.
    DataAccessed,
    /// Data was changed.
    DataModified,
    /// A prompt changed.
    PromptChanged,
    /// A model changed.
    ModelChanged,
    /// Access was granted.
    AccessGranted,
    /// Access was revoked.
    AccessRevoked,
    /// A human approved (or rejected) something.
    HumanApproval,
    /// A policy engine decided.
    PolicyDecision,
    /// Something failed.
    Error,
    /// A conversation ends; later records of it are refused.
    ConversationEnded,
    /// A namespaced action `x-<vendor>.<name>`.
    Custom(String),
}

/// The known actions with their wire names, in the documentation's order.
const KNOWN_ACTIONS: [(Action, &str); 16] = [
    (Action::ConversationStarted, "conversation_started"),
    (Action::UserMessageReceived, "user_message_received"),
    (Action::AgentResponseGenerated, "agent_response_generated"),
    (Action::ToolInvoked, "tool_invoked"),
    (Action::ToolResult, "tool_result"),
    (Action::CodeExecuted, "code_executed"),
    (Action::DataAccessed, "data_accessed"),
    (Action::DataModified, "data_modified"),
    (Action::PromptChanged, "prompt_changed"),
    (Action::ModelChanged, "model_changed"),
    (Action::AccessGranted, "access_granted"),
    (Action::AccessRevoked, "access_revoked"),
    (Action::HumanApproval, "human_approval"),
    (Action::PolicyDecision, "policy_decision"),
    (Action::Error, "error"),
    (Action::ConversationEnded, "conversation_ended"),
];

/// The vendor namespace only the server writes (erasure and other records of its own).
pub const SERVER_NAMESPACE: &str = "x-veritrail.";

impl Action {
    /// The wire names of the known actions.
    pub fn known() -> impl Iterator<Item = &'static str> {
        KNOWN_ACTIONS.iter().map(|(_, name)| *name)
    }

    /// The action as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Action::Custom(name) => name,
            known => KNOWN_ACTIONS
                .iter()
                .find(|(action, _)| action == known)
                .map_or("", |(_, name)| name),
        }
    }

    /// Parses a wire name: a known action or a well-formed `x-<vendor>.<name>`.
    ///
    /// # Errors
    /// The reason, for any other text.
    pub fn parse(text: &str) -> Result<Action, String> {
        if let Some((action, _)) = KNOWN_ACTIONS.iter().find(|(_, name)| *name == text) {
            return Ok(action.clone());
        }
        if is_namespaced(text) {
            return Ok(Action::Custom(text.to_owned()));
        }
        Err(format!(
            "unknown action {text:?}: use one of {} or a namespaced x-<vendor>.<name>",
            Action::known().collect::<Vec<_>>().join(", ")
        ))
    }
}

impl TryFrom<String> for Action {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Action::parse(&text)
    }
}

impl From<Action> for String {
    fn from(action: Action) -> String {
        action.as_str().to_owned()
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `text` is `x-<vendor>.<name>`: vendor of lowercase letters, digits and `-`
/// (starting with a letter or digit), name of lowercase letters, digits, `_`, `-` and `.`
/// (starting with a letter, digit or `_`), at most 128 bytes in all.
pub fn is_namespaced(text: &str) -> bool {
    let Some(rest) = text.strip_prefix("x-") else {
        return false;
    };
    let Some((vendor, name)) = rest.split_once('.') else {
        return false;
    };
    let vendor_ok = vendor
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && vendor
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let name_ok = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
        });
    text.len() <= 128 && vendor_ok && name_ok
}

/// Who the record says acted (the client's claim; see `submitted_by` for who really sent it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorType {
    /// A person using the agent.
    User,
    /// An AI agent.
    Agent,
    /// An administrator.
    Admin,
    /// The system itself.
    System,
}

/// How sensitive a record's subject is, from least to most.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    /// Public.
    Public,
    /// Internal.
    Internal,
    /// Confidential.
    Confidential,
    /// Restricted (e.g. health or payment data).
    Restricted,
}

/// A compliance domain a record falls under: a known one or a namespaced `x-<vendor>.<name>`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Domain {
    /// HIPAA (US health data).
    Hipaa,
    /// SOC 2.
    Soc2,
    /// Financial record-keeping rules.
    Financial,
    /// PCI DSS (card data).
    PciDss,
    /// GDPR.
    Gdpr,
    /// The EU AI Act.
    EuAiAct,
    /// A namespaced custom domain.
    Custom(String),
}

const KNOWN_DOMAINS: [(Domain, &str); 6] = [
    (Domain::Hipaa, "hipaa"),
    (Domain::Soc2, "soc2"),
    (Domain::Financial, "financial"),
    (Domain::PciDss, "pci_dss"),
    (Domain::Gdpr, "gdpr"),
    (Domain::EuAiAct, "eu_ai_act"),
];

impl Domain {
    /// The domain as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Domain::Custom(name) => name,
            known => KNOWN_DOMAINS
                .iter()
                .find(|(d, _)| d == known)
                .map_or("", |(_, name)| name),
        }
    }

    /// Parses a wire name.
    ///
    /// # Errors
    /// The reason, for an unknown, non-namespaced name.
    pub fn parse(text: &str) -> Result<Domain, String> {
        if let Some((domain, _)) = KNOWN_DOMAINS.iter().find(|(_, name)| *name == text) {
            return Ok(domain.clone());
        }
        if is_namespaced(text) {
            return Ok(Domain::Custom(text.to_owned()));
        }
        Err(format!(
            "unknown compliance domain {text:?}: use hipaa, soc2, financial, pci_dss, gdpr, eu_ai_act or a namespaced x-<vendor>.<name>"
        ))
    }
}

impl TryFrom<String> for Domain {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Domain::parse(&text)
    }
}

impl From<Domain> for String {
    fn from(domain: Domain) -> String {
        domain.as_str().to_owned()
    }
}

/// The actor a record names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    /// Its identifier (1 to 256 characters).
    pub id: String,
    /// What kind of actor.
    #[serde(rename = "type")]
    pub kind: ActorType,
}

/// The agent software.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    /// Its name (1 to 256 characters).
    pub name: String,
    /// Its version (1 to 128 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// OpenTelemetry trace context: lowercase hex ids, not all zeros.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trace {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<String>,
}

/// What the action touched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    /// Its type, e.g. `patient_record` (1 to 128 characters).
    #[serde(rename = "type")]
    pub kind: String,
    /// Its identifier (1 to 256 characters).
    pub id: String,
    /// Where it lives (at most 2048 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

/// OpenTelemetry GenAI semantic-convention attributes, under their own names.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenAi {
    /// `gen_ai.operation.name`: `chat`, `execute_tool`, `invoke_agent`, `create_agent`,
    /// `embeddings`, `retrieval`, `text_completion`, `generate_content`, or a custom value.
    #[serde(
        rename = "gen_ai.operation.name",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub operation_name: Option<String>,
    /// `gen_ai.provider.name`, e.g. `openai`.
    #[serde(
        rename = "gen_ai.provider.name",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub provider_name: Option<String>,
    /// `gen_ai.request.model`.
    #[serde(
        rename = "gen_ai.request.model",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub request_model: Option<String>,
    /// `gen_ai.response.model`.
    #[serde(
        rename = "gen_ai.response.model",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub response_model: Option<String>,
    /// `gen_ai.response.id`.
    #[serde(
        rename = "gen_ai.response.id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub response_id: Option<String>,
    /// `gen_ai.usage.input_tokens`.
    #[serde(
        rename = "gen_ai.usage.input_tokens",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub input_tokens: Option<u64>,
    /// `gen_ai.usage.output_tokens`.
    #[serde(
        rename = "gen_ai.usage.output_tokens",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub output_tokens: Option<u64>,
    /// `gen_ai.tool.name`.
    #[serde(
        rename = "gen_ai.tool.name",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub tool_name: Option<String>,
    /// `gen_ai.tool.call.id`.
    #[serde(
        rename = "gen_ai.tool.call.id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub tool_call_id: Option<String>,
    /// `gen_ai.agent.name`.
    #[serde(
        rename = "gen_ai.agent.name",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub agent_name: Option<String>,
    /// `gen_ai.agent.id`.
    #[serde(
        rename = "gen_ai.agent.id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub agent_id: Option<String>,
    /// `gen_ai.conversation.id`.
    #[serde(
        rename = "gen_ai.conversation.id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub conversation_id: Option<String>,
}

impl GenAi {
    /// The attribute names this type holds, as on the wire.
    pub const ATTRIBUTES: [&'static str; 12] = [
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

    /// Whether no attribute is set.
    pub fn is_empty(&self) -> bool {
        *self == GenAi::default()
    }
}

/// An audit event as an agent submits it (before the server adds `submitted_by`,
/// `received_at`, `nonce` and `prev`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    /// A UUID; the server generates a random one if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// When it happened by the client's clock, RFC 3339 in UTC (`...Z`).
    pub timestamp: String,
    /// What happened.
    pub action: Action,
    /// Who acted.
    pub actor: Actor,
    /// The agent software.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<Agent>,
    /// The conversation this record belongs to (its chain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// The session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The data subject (e.g. a patient or customer id) whose data key encrypts this record's
    /// payloads; erasing the subject destroys them. Without it, the conversation's key (or the
    /// record's own) is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// OpenTelemetry trace context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<Trace>,
    /// What the action touched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Resource>,
    /// How sensitive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<Classification>,
    /// The compliance domains it falls under.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub compliance: BTreeSet<Domain>,
    /// OpenTelemetry GenAI attributes.
    #[serde(default, skip_serializing_if = "GenAi::is_empty")]
    pub gen_ai: GenAi,
    /// Metadata: a JSON object, at most [`crate::MAX_DETAILS_BYTES`] encoded and
    /// [`crate::MAX_DETAILS_DEPTH`] deep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Map<String, serde_json::Value>>,
}

impl AuditEvent {
    /// An event with the required fields: `timestamp` (RFC 3339 UTC), `action` and `actor`.
    pub fn new(timestamp: impl Into<String>, action: Action, actor: Actor) -> Self {
        AuditEvent {
            id: None,
            timestamp: timestamp.into(),
            action,
            actor,
            agent: None,
            conversation_id: None,
            session_id: None,
            subject: None,
            trace: None,
            resource: None,
            classification: None,
            compliance: BTreeSet::new(),
            gen_ai: GenAi::default(),
            details: None,
        }
    }
}
