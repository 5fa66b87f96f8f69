//! The roles a token (or an OIDC identity) can hold, and which grants which.

use serde::{Deserialize, Serialize};

/// A role a token can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Append entries.
    Append,
    /// Read entries and entry bundles.
    Read,
    /// Read, plus the checkpoint history.
    Audit,
    /// Everything.
    Admin,
}

impl Role {
    /// The role's name as written in the token file.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Append => "append",
            Role::Read => "read",
            Role::Audit => "audit",
            Role::Admin => "admin",
        }
    }

    /// Whether holding `self` grants `needed`.
    pub fn grants(self, needed: Role) -> bool {
        self == needed || self == Role::Admin || (self == Role::Audit && needed == Role::Read)
    }
}
