//! Bearer-token authentication with four roles.
//!
//! Tokens live in a TOML file, stored only as SHA-256 hashes:
//!
//! ```toml
//! [[token]]
//! name = "agent-7"
//! sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//! roles = ["append"]
//! ```
//!
//! | role     | grants                                                        |
//! |----------|---------------------------------------------------------------|
//! | `append` | `POST /v1/entries`                                            |
//! | `read`   | entries, entry bundles, the lookup by leaf hash               |
//! | `audit`  | everything `read` grants, plus the checkpoint history         |
//! | `admin`  | everything, including `/metrics`                              |
//!
//! The checkpoint, hash tiles, proofs by index, consistency proofs, health and the OpenAPI
//! document are public: they serve hashes, never entry bytes. A hash hides an entry only if
//! the entry cannot be guessed: the public level-0 tiles let anyone confirm a guess of a raw
//! entry with little entropy (`docs/threat-model.md`). Entries, bundles and the lookup by leaf
//! hash (which answers whether an entry is in the log, an oracle for such guesses) need `read`
//! unless the server runs with `--public-read`.
//!
//! The file may also trust an OpenID Connect issuer (an `[oidc]` section, see [`crate::oidc`]):
//! a bearer JWT it signed then holds the roles that section names. [`Auth::reload`] replaces
//! the tokens and the issuer's keys of a running server (`SIGHUP`), so a token can be added
//! or revoked and a key rotated without a restart.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use veritrail_ledger::ascii::{parse_hex, to_hex};

use crate::AppState;
use crate::error::{ApiError, Unauthenticated};
use crate::oidc::{Oidc, OidcConfig, OidcError, looks_like_jwt};
use crate::swap::Swap;

/// Largest token file accepted, in bytes: far above any real list of tokens.
const MAX_TOKEN_FILE: u64 = 4 << 20;

pub use crate::role::Role;

/// One entry of the token file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// A name for logs and errors (never the secret).
    pub name: String,
    /// Lower-case hex SHA-256 of the bearer token.
    pub sha256: String,
    /// The roles it holds.
    pub roles: Vec<Role>,
}

/// The token file.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenFile {
    /// The tokens.
    #[serde(default)]
    pub token: Vec<TokenEntry>,
    /// An OpenID Connect issuer whose JWTs are accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcConfig>,
}

/// Who presented a valid credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// A token of the token file, by its name.
    Token {
        /// The token's name.
        name: String,
    },
    /// A JWT of the configured OpenID Connect issuer.
    Oidc {
        /// Its `iss`.
        issuer: String,
        /// Its `sub`.
        subject: String,
    },
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Principal::Token { name } => f.write_str(name),
            Principal::Oidc { issuer, subject } => write!(f, "{subject} ({issuer})"),
        }
    }
}

/// A caller that presented a valid credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Who it is.
    pub principal: Principal,
    /// Its roles.
    pub roles: Vec<Role>,
}

/// Errors loading a token file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthFileError {
    /// The file could not be read.
    #[error("cannot read token file {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is larger than 4 MiB.
    #[error("token file {path} is larger than 4 MiB")]
    TooLarge {
        /// The path.
        path: String,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("token file {path} is invalid: {source}")]
    Invalid {
        /// The path.
        path: String,
        /// The TOML error.
        #[source]
        source: toml::de::Error,
    },
    /// The file parses but its tokens do not make a policy.
    #[error("token file {path} is invalid: {source}")]
    Tokens {
        /// The path.
        path: String,
        /// What is wrong with the tokens.
        #[source]
        source: TokenFileError,
    },
}

/// Why parsed token entries do not make a policy ([`Auth::from_file`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenFileError {
    /// An entry's `sha256` is not 64 hex digits.
    #[error("token {name:?}: sha256 must be 64 hex digits")]
    MalformedHash {
        /// The entry's name.
        name: String,
    },
    /// Two entries have the same token hash.
    #[error("token {name:?}: the same token hash appears twice")]
    DuplicateHash {
        /// The name of the second entry.
        name: String,
    },
    /// The `[oidc]` section cannot be used.
    #[error(transparent)]
    Oidc(#[from] OidcError),
}

/// What the token file grants: the part [`Auth::reload`] replaces.
#[derive(Debug, Default)]
struct Policy {
    tokens: HashMap<[u8; 32], Caller>,
    oidc: Option<Oidc>,
}

/// The server's access policy. Clones share it, so a reload reaches every clone.
#[derive(Clone, Debug, Default)]
pub struct Auth {
    policy: Arc<Swap<Policy>>,
    no_auth: bool,
    public_read: bool,
}

/// SHA-256 of a bearer token.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Auth {
    /// A policy that accepts every request (`--no-auth`).
    pub fn disabled() -> Self {
        Auth {
            no_auth: true,
            ..Auth::default()
        }
    }

    /// A policy from a parsed token file whose relative paths (the OIDC key set) are
    /// relative to `base`.
    ///
    /// # Errors
    /// [`TokenFileError::MalformedHash`] for an entry whose hash is not 64 hex digits (either
    /// case), [`TokenFileError::DuplicateHash`] for a hash given twice,
    /// [`TokenFileError::Oidc`] for an `[oidc]` section that cannot be used.
    pub fn from_file(
        file: &TokenFile,
        base: &Path,
        public_read: bool,
    ) -> Result<Self, TokenFileError> {
        let mut tokens = HashMap::new();
        for entry in &file.token {
            let hash = parse_hex::<32>(&entry.sha256.to_ascii_lowercase()).ok_or_else(|| {
                TokenFileError::MalformedHash {
                    name: entry.name.clone(),
                }
            })?;
            let caller = Caller {
                principal: Principal::Token {
                    name: entry.name.clone(),
                },
                roles: entry.roles.clone(),
            };
            if tokens.insert(hash, caller).is_some() {
                return Err(TokenFileError::DuplicateHash {
                    name: entry.name.clone(),
                });
            }
        }
        let oidc = file
            .oidc
            .as_ref()
            .map(|config| Oidc::load(config, base))
            .transpose()?;
        Ok(Auth {
            policy: Arc::new(Swap::new(Policy { tokens, oidc })),
            no_auth: false,
            public_read,
        })
    }

    /// Replaces the tokens and the OIDC issuer with those of `fresh` (a newly loaded token
    /// file); in-flight requests finish under the policy they started with.
    pub fn reload(&self, fresh: &Auth) {
        self.policy.set(fresh.policy.get());
    }

    /// Loads a token file.
    ///
    /// # Errors
    /// [`AuthFileError`].
    pub fn load(path: &Path, public_read: bool) -> Result<Self, AuthFileError> {
        let shown = path.display().to_string();
        let size = std::fs::metadata(path)
            .map_err(|source| AuthFileError::Io {
                path: shown.clone(),
                source,
            })?
            .len();
        if size > MAX_TOKEN_FILE {
            return Err(AuthFileError::TooLarge { path: shown });
        }
        let text = std::fs::read_to_string(path).map_err(|source| AuthFileError::Io {
            path: shown.clone(),
            source,
        })?;
        let file: TokenFile = toml::from_str(&text).map_err(|source| AuthFileError::Invalid {
            path: shown.clone(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Auth::from_file(&file, base, public_read).map_err(|source| AuthFileError::Tokens {
            path: shown,
            source,
        })
    }

    /// Whether requests are authenticated at all (false with `--no-auth`).
    pub fn authenticates(&self) -> bool {
        !self.no_auth
    }

    /// Whether entries, bundles and the lookup by leaf hash are public.
    pub fn public_read(&self) -> bool {
        self.public_read || self.no_auth
    }

    /// The caller behind the request's bearer token, if a known token or a JWT of the
    /// configured issuer was presented.
    ///
    /// # Errors
    /// [`ApiError::Unauthorized`] with [`Unauthenticated::NoValidToken`] for a malformed header
    /// or an unknown token, with [`Unauthenticated::Jwt`] for a JWT that does not verify.
    pub fn caller(&self, headers: &HeaderMap) -> Result<Option<Caller>, ApiError> {
        let Some(value) = headers.get(AUTHORIZATION) else {
            return Ok(None);
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                deny(
                    "malformed_header",
                    ApiError::Unauthorized(Unauthenticated::NoValidToken),
                )
            })?;
        let policy = self.policy.get();
        if let Some(caller) = policy.tokens.get(&token_hash(token)) {
            return Ok(Some(caller.clone()));
        }
        match &policy.oidc {
            Some(oidc) if looks_like_jwt(token) => match oidc.verify(token) {
                Ok(who) => Ok(Some(Caller {
                    principal: Principal::Oidc {
                        issuer: who.issuer,
                        subject: who.subject,
                    },
                    roles: oidc.roles().to_vec(),
                })),
                Err(_) if self.no_auth => Ok(None),
                Err(why) => Err(deny(
                    why.reason(),
                    ApiError::Unauthorized(Unauthenticated::Jwt(why)),
                )),
            },
            _ if self.no_auth => Ok(None),
            _ => Err(deny(
                "unknown_token",
                ApiError::Unauthorized(Unauthenticated::NoValidToken),
            )),
        }
    }

    /// Checks that the request may use a route that needs `needed`.
    ///
    /// # Errors
    /// [`ApiError::Unauthorized`] without a valid token, [`ApiError::Forbidden`] when the
    /// token lacks the role. Every denial is counted in `veritrail_auth_denied_total`.
    pub fn require(&self, headers: &HeaderMap, needed: Role) -> Result<(), ApiError> {
        self.authorize(headers, needed).map(|_| ())
    }

    /// As [`Auth::require`], returning who made the request (`None` with `--no-auth`, where
    /// no header is looked at): one check of the credential serves both the access decision
    /// and the record of who acted.
    ///
    /// # Errors
    /// As [`Auth::require`].
    pub fn authorize(&self, headers: &HeaderMap, needed: Role) -> Result<Option<Caller>, ApiError> {
        if self.no_auth {
            return Ok(None);
        }
        match self.caller(headers)? {
            None => Err(deny(
                "missing_token",
                ApiError::Unauthorized(Unauthenticated::NoValidToken),
            )),
            Some(caller) if caller.roles.iter().any(|r| r.grants(needed)) => Ok(Some(caller)),
            Some(caller) => Err(deny(
                "missing_role",
                ApiError::Forbidden {
                    token: caller.principal.to_string(),
                    needed: needed.as_str(),
                },
            )),
        }
    }

    /// Checks access to entry content (entries, bundles, the lookup by leaf hash): public with
    /// `--public-read`, else `read`.
    ///
    /// # Errors
    /// As [`Auth::require`].
    pub fn require_read(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if self.no_auth {
            // As in `require`: without authentication no header is looked at.
            return Ok(());
        }
        if self.public_read {
            // A presented token must still be valid: a typo should not pass silently.
            self.caller(headers).map(|_| ())
        } else {
            self.require(headers, Role::Read)
        }
    }
}

fn deny(reason: &'static str, err: ApiError) -> ApiError {
    metrics::counter!("veritrail_auth_denied_total", "reason" => reason).increment(1);
    err
}

/// Generates a new random bearer token: `vt_` and 64 hex digits (256 bits).
///
/// # Errors
/// If the operating system's random source fails.
pub fn generate_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("vt_{}", to_hex(&bytes)))
}

/// The token file entry for `token`.
pub fn token_entry(name: &str, token: &str, roles: Vec<Role>) -> TokenEntry {
    TokenEntry {
        name: name.to_owned(),
        sha256: to_hex(&token_hash(token)),
        roles,
    }
}

/// Extractor that admits only callers with the `append` role. It runs before the body is
/// read, so an unauthorised client cannot make the server buffer a large body.
pub(crate) struct Appender;

impl axum::extract::FromRequestParts<AppState> for Appender {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, ApiError> {
        state
            .auth
            .require(&parts.headers, Role::Append)
            .map(|()| Appender)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(token: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(t) = token {
            h.insert(
                AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
            );
        }
        h
    }

    fn policy(public_read: bool) -> Auth {
        let file = TokenFile {
            token: vec![
                token_entry("writer", "w", vec![Role::Append]),
                token_entry("reader", "r", vec![Role::Read]),
                token_entry("auditor", "a", vec![Role::Audit]),
                token_entry("root", "x", vec![Role::Admin]),
            ],
            oidc: None,
        };
        Auth::from_file(&file, Path::new("."), public_read).unwrap()
    }

    #[test]
    fn roles_grant_what_the_table_says() {
        let auth = policy(false);
        let cases = [
            ("w", Role::Append, true),
            ("w", Role::Read, false),
            ("r", Role::Read, true),
            ("r", Role::Append, false),
            ("r", Role::Audit, false),
            ("a", Role::Read, true),
            ("a", Role::Audit, true),
            ("a", Role::Append, false),
            ("x", Role::Append, true),
            ("x", Role::Admin, true),
            ("w", Role::Admin, false),
        ];
        for (token, role, ok) in cases {
            let got = auth.require(&headers(Some(token)), role);
            assert_eq!(got.is_ok(), ok, "{token} {role:?}");
            if !ok {
                assert!(
                    matches!(got, Err(ApiError::Forbidden { .. })),
                    "{token} {role:?}"
                );
            }
        }
    }

    #[test]
    fn missing_unknown_and_malformed_tokens_are_unauthorized() {
        let auth = policy(false);
        assert!(matches!(
            auth.require(&headers(None), Role::Read),
            Err(ApiError::Unauthorized(Unauthenticated::NoValidToken))
        ));
        assert!(matches!(
            auth.require(&headers(Some("nope")), Role::Read),
            Err(ApiError::Unauthorized(Unauthenticated::NoValidToken))
        ));
        let mut basic = HeaderMap::new();
        basic.insert(AUTHORIZATION, HeaderValue::from_static("Basic dTpw"));
        assert!(matches!(
            auth.require(&basic, Role::Read),
            Err(ApiError::Unauthorized(Unauthenticated::NoValidToken))
        ));
    }

    #[test]
    fn public_read_still_rejects_a_bad_token() {
        let auth = policy(true);
        assert!(auth.require_read(&headers(None)).is_ok());
        assert!(auth.require_read(&headers(Some("w"))).is_ok());
        assert!(matches!(
            auth.require_read(&headers(Some("nope"))),
            Err(ApiError::Unauthorized(Unauthenticated::NoValidToken))
        ));
        assert!(matches!(
            auth.require(&headers(None), Role::Append),
            Err(ApiError::Unauthorized(Unauthenticated::NoValidToken))
        ));
    }

    #[test]
    fn token_files_parse_and_reject_bad_hashes() {
        let token = generate_token().unwrap();
        assert!(token.starts_with("vt_") && token.len() == 67);
        let file = TokenFile {
            token: vec![token_entry("t", &token, vec![Role::Admin])],
            oidc: None,
        };
        let text = toml::to_string(&file).unwrap();
        let parsed: TokenFile = toml::from_str(&text).unwrap();
        let auth = Auth::from_file(&parsed, Path::new("."), false).unwrap();
        assert!(auth.require(&headers(Some(&token)), Role::Admin).is_ok());
        let bad = TokenFile {
            token: vec![TokenEntry {
                name: "b".into(),
                sha256: "xyz".into(),
                roles: vec![],
            }],
            oidc: None,
        };
        assert!(matches!(
            Auth::from_file(&bad, Path::new("."), false).unwrap_err(),
            TokenFileError::MalformedHash { name } if name == "b"
        ));
        let twice = TokenFile {
            token: vec![
                token_entry("a", "t", vec![Role::Read]),
                token_entry("b", "t", vec![Role::Read]),
            ],
            oidc: None,
        };
        assert!(matches!(
            Auth::from_file(&twice, Path::new("."), false).unwrap_err(),
            TokenFileError::DuplicateHash { name } if name == "b"
        ));
        assert!(
            toml::from_str::<TokenFile>("[[token]]\nname='a'\nsha256='00'\nroles=['root']")
                .is_err()
        );
    }
}
