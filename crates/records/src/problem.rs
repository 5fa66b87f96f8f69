//! What is wrong with a submitted event, field by field: the one type the validator
//! ([`crate::validate`]) and the payload parser ([`crate::payload`]) both report in.

/// One problem with a submitted event.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldProblem {
    /// The field's path, e.g. `actor.type` or `details.a.b` (`[n]` for array elements; the
    /// record's position in a batch is prefixed by the server as `[n].`).
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}
