//! The classification registry: what the operator knows about tools, resource types and data
//! sources, merged into every record.
//!
//! An agent may forget to say that the tool it called reads patient records, or understate
//! it. The registry is the operator's word on it, in a TOML file:
//!
//! ```toml
//! [[tool]]                       # matched against gen_ai.tool.name
//! match = "ehr.read_patient"
//! classification = "restricted"
//! compliance = ["hipaa"]
//!
//! [[resource]]                   # matched against resource.type
//! match = "payment_card"
//! classification = "restricted"
//! compliance = ["pci_dss"]
//!
//! [[source]]                     # matched against resource.uri
//! match = "fhir://st-mary/*"     # a trailing * matches every value that starts so
//! classification = "confidential"
//! compliance = ["hipaa", "gdpr"]
//! ```
//!
//! Every rule that matches a record applies: its classification becomes the highest of its
//! own and the rules' (`public` < `internal` < `confidential` < `restricted`), and its
//! compliance domains the union of all. A registry never lowers what the agent said.

use std::collections::{BTreeSet, HashMap};

use serde::Deserialize;

use crate::event::{AuditEvent, Classification, Domain};

/// Largest registry accepted, in rules.
pub const MAX_RULES: usize = 100_000;

/// A registry rule as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(rename = "match")]
    pattern: String,
    classification: Option<Classification>,
    #[serde(default)]
    compliance: BTreeSet<Domain>,
}

/// The registry file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    #[serde(default)]
    tool: Vec<RuleFile>,
    #[serde(default)]
    resource: Vec<RuleFile>,
    #[serde(default)]
    source: Vec<RuleFile>,
}

/// What a rule adds to a record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Label {
    classification: Option<Classification>,
    compliance: BTreeSet<Domain>,
}

/// The rules of one table: exact names in a map, `prefix*` patterns in a list.
#[derive(Clone, Debug, Default)]
struct Table {
    exact: HashMap<String, Label>,
    prefixes: Vec<(String, Label)>,
}

impl Table {
    fn build(rules: Vec<RuleFile>, table: &'static str) -> Result<Table, RegistryError> {
        let mut built = Table::default();
        for (position, rule) in rules.into_iter().enumerate() {
            let bad = |problem: &'static str| RegistryError::Rule {
                table,
                position,
                problem,
            };
            if rule.classification.is_none() && rule.compliance.is_empty() {
                return Err(bad("gives neither a classification nor compliance domains"));
            }
            let label = Label {
                classification: rule.classification,
                compliance: rule.compliance,
            };
            let (stem, prefix) = match rule.pattern.strip_suffix('*') {
                Some(stem) => (stem, true),
                None => (rule.pattern.as_str(), false),
            };
            if stem.contains('*') {
                return Err(bad("may use * only as its last character"));
            }
            if stem.is_empty() && !prefix {
                return Err(bad("has an empty match"));
            }
            if prefix {
                built.prefixes.push((stem.to_owned(), label));
            } else if built.exact.insert(stem.to_owned(), label).is_some() {
                return Err(bad("repeats the match of an earlier rule"));
            }
        }
        Ok(built)
    }

    /// Merges every rule matching `value` into `into`.
    fn apply(&self, value: &str, into: &mut Label) {
        let exact = self.exact.get(value);
        let prefixed = self
            .prefixes
            .iter()
            .filter(|(stem, _)| value.starts_with(stem.as_str()))
            .map(|(_, label)| label);
        for label in exact.into_iter().chain(prefixed) {
            into.classification = into.classification.max(label.classification);
            into.compliance.extend(label.compliance.iter().cloned());
        }
    }

    fn len(&self) -> usize {
        self.exact.len() + self.prefixes.len()
    }
}

/// Why a registry file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Not TOML of the registry's shape (unknown keys, classifications and domains included).
    #[error("the classification registry is invalid: {0}")]
    Invalid(String),
    /// A rule that cannot be used.
    #[error("the classification registry's [[{table}]] rule {position} {problem}")]
    Rule {
        /// `tool`, `resource` or `source`.
        table: &'static str,
        /// Its position in that table, from 0.
        position: usize,
        /// What is wrong.
        problem: &'static str,
    },
    /// More than [`MAX_RULES`] rules.
    #[error("the classification registry has more than {MAX_RULES} rules")]
    TooManyRules,
}

/// The loaded registry.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    tools: Table,
    resources: Table,
    sources: Table,
}

impl Registry {
    /// The empty registry: it changes nothing.
    pub fn empty() -> Registry {
        Registry::default()
    }

    /// Parses a registry file.
    ///
    /// # Errors
    /// [`RegistryError`] for anything but a well-formed registry; nothing is half-loaded.
    pub fn from_toml(text: &str) -> Result<Registry, RegistryError> {
        let file: RegistryFile =
            toml::from_str(text).map_err(|e| RegistryError::Invalid(e.to_string()))?;
        if file.tool.len() + file.resource.len() + file.source.len() > MAX_RULES {
            return Err(RegistryError::TooManyRules);
        }
        Ok(Registry {
            tools: Table::build(file.tool, "tool")?,
            resources: Table::build(file.resource, "resource")?,
            sources: Table::build(file.source, "source")?,
        })
    }

    /// Rules in the registry.
    pub fn len(&self) -> usize {
        self.tools.len() + self.resources.len() + self.sources.len()
    }

    /// Whether the registry has no rule.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Merges the rules matching `event`'s tool (`gen_ai.tool.name`), resource type and
    /// resource URI into its classification (the highest wins) and compliance domains (the
    /// union). Returns whether anything changed.
    pub fn apply(&self, event: &mut AuditEvent) -> bool {
        let mut label = Label {
            classification: event.classification,
            compliance: event.compliance.clone(),
        };
        if let Some(tool) = &event.gen_ai.tool_name {
            self.tools.apply(tool, &mut label);
        }
        if let Some(resource) = &event.resource {
            self.resources.apply(&resource.kind, &mut label);
            if let Some(uri) = &resource.uri {
                self.sources.apply(uri, &mut label);
            }
        }
        let changed =
            label.classification != event.classification || label.compliance != event.compliance;
        event.classification = label.classification;
        event.compliance = label.compliance;
        changed
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::parse_event;

    const REGISTRY: &str = r#"
        [[tool]]
        match = "ehr.read_patient"
        classification = "restricted"
        compliance = ["hipaa"]

        [[tool]]
        match = "search.*"
        classification = "internal"

        [[resource]]
        match = "payment_card"
        classification = "restricted"
        compliance = ["pci_dss"]

        [[resource]]
        match = "patient_record"
        compliance = ["hipaa", "x-acme.phi"]

        [[source]]
        match = "fhir://st-mary/*"
        classification = "confidential"
        compliance = ["gdpr"]
    "#;

    fn event(extra: serde_json::Value) -> AuditEvent {
        let mut value = serde_json::json!({
            "timestamp": "2026-03-01T12:00:00Z",
            "action": "tool_invoked",
            "actor": {"id": "a", "type": "agent"},
        });
        for (k, v) in extra.as_object().unwrap() {
            value[k] = v.clone();
        }
        parse_event(&value).unwrap()
    }

    /// The record's domains, sorted by name.
    fn domains(event: &AuditEvent) -> Vec<&str> {
        let mut names: Vec<&str> = event.compliance.iter().map(Domain::as_str).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn the_highest_classification_and_the_union_of_domains_win() {
        let registry = Registry::from_toml(REGISTRY).unwrap();
        assert_eq!(registry.len(), 5);
        // A tool reading a patient record that also touches a card number.
        let mut e = event(serde_json::json!({
            "classification": "internal",
            "compliance": ["soc2"],
            "gen_ai": {"gen_ai.tool.name": "ehr.read_patient"},
            "resource": {"type": "payment_card", "id": "c-1", "uri": "fhir://st-mary/Patient/7"},
        }));
        assert!(registry.apply(&mut e));
        assert_eq!(e.classification, Some(Classification::Restricted));
        assert_eq!(domains(&e), ["gdpr", "hipaa", "pci_dss", "soc2"]);

        // Prefix rules; a rule without a classification adds domains only.
        let mut e = event(serde_json::json!({
            "gen_ai": {"gen_ai.tool.name": "search.web"},
            "resource": {"type": "patient_record", "id": "p"},
        }));
        assert!(registry.apply(&mut e));
        assert_eq!(e.classification, Some(Classification::Internal));
        assert_eq!(domains(&e), ["hipaa", "x-acme.phi"]);

        // The registry never lowers what the agent said, and unmatched records are unchanged.
        let mut e = event(serde_json::json!({
            "classification": "restricted",
            "gen_ai": {"gen_ai.tool.name": "search.web"},
        }));
        assert!(!registry.apply(&mut e));
        assert_eq!(e.classification, Some(Classification::Restricted));
        let mut e = event(serde_json::json!({
            "gen_ai": {"gen_ai.tool.name": "ehr.read_patient_v2"},
            "resource": {"type": "payment", "id": "x", "uri": "fhir://st-marys/1"},
        }));
        assert!(!registry.apply(&mut e));
        assert_eq!(e.classification, None);
        assert!(e.compliance.is_empty());
    }

    #[test]
    fn unusable_registries_are_refused_whole() {
        for (text, expect) in [
            ("[[tool]]\nmatch = \"t\"\n", "neither a classification"),
            (
                "[[tool]]\nmatch = \"a*b\"\nclassification = \"public\"\n",
                "only as its last",
            ),
            (
                "[[tool]]\nmatch = \"\"\nclassification = \"public\"\n",
                "empty match",
            ),
            (
                "[[tool]]\nmatch = \"t\"\nclassification = \"public\"\n[[tool]]\nmatch = \"t\"\nclassification = \"internal\"\n",
                "repeats",
            ),
            (
                "[[tool]]\nmatch = \"t\"\nclassification = \"secret\"\n",
                "invalid",
            ),
            (
                "[[tool]]\nmatch = \"t\"\ncompliance = [\"hippa\"]\n",
                "invalid",
            ),
            ("[[tools]]\nmatch = \"t\"\n", "invalid"),
            ("[[tool]]\nmatch = \"t\"\nlevel = 3\n", "invalid"),
        ] {
            let err = Registry::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(expect), "{text}: {err}");
        }
        assert!(Registry::from_toml("").unwrap().is_empty());
        // A lone `*` matches every value of its table.
        let all =
            Registry::from_toml("[[resource]]\nmatch = \"*\"\ncompliance = [\"soc2\"]\n").unwrap();
        let mut e = event(serde_json::json!({"resource": {"type": "anything", "id": "1"}}));
        assert!(all.apply(&mut e));
        assert_eq!(domains(&e), ["soc2"]);
    }
}
