//! OpenID Connect submitters: bearer JWTs signed by one configured issuer.
//!
//! An agent platform that already has an identity provider does not need a Veritrail token
//! per agent: the token file's `[oidc]` section names the issuer, the audience this server
//! answers to, the issuer's JSON Web Key Set (a file, refreshed by `SIGHUP`), and the roles a
//! verified token holds:
//!
//! ```toml
//! [oidc]
//! issuer = "https://login.example.com/"
//! audience = "veritrail"
//! jwks = "issuer-jwks.json"  # relative to the token file
//! roles = ["append"]
//! leeway_seconds = 60        # clock skew allowed on exp and nbf
//! ```
//!
//! A JWT is accepted only if it is signed with RS256 (RSA keys of at least 2048 bits) or
//! ES256 (P-256) by a key of the set (by `kid` when the header names one), its `iss` is the
//! issuer, its `aud` holds the audience, it has not expired (`exp`, required), is valid
//! already (`nbf`, when present) and names a `sub`. The record it submits carries
//! `{"type":"oidc","issuer":…,"subject":…}` as `submitted_by`. The signature and claim checks
//! are the `jsonwebtoken` crate's (RustCrypto backend); this module only picks the key and
//! says why a token was refused.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use crate::role::Role;

/// Largest JWKS file accepted, in bytes.
const MAX_JWKS_FILE: u64 = 1 << 20;
/// Fewest bits of an RSA key accepted.
const MIN_RSA_BITS: usize = 2048;
/// Longest `sub` accepted, in bytes (it is written into every record the token submits).
pub const MAX_SUBJECT_BYTES: usize = 256;
/// Most clock skew that may be configured, in seconds.
const MAX_LEEWAY_SECONDS: u64 = 600;

/// The `[oidc]` section of the token file.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The issuer, exactly as tokens carry it in `iss`.
    pub issuer: String,
    /// The audience tokens must name in `aud`.
    pub audience: String,
    /// The issuer's JSON Web Key Set, a file (relative paths are relative to the token file).
    pub jwks: PathBuf,
    /// The roles a verified token holds.
    pub roles: Vec<Role>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds (at most 600).
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
}

fn default_leeway() -> u64 {
    60
}

/// Why the `[oidc]` configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OidcError {
    /// The key set file cannot be read.
    #[error("cannot read the JWKS file {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key set file is larger than 1 MiB.
    #[error("the JWKS file {path} is larger than 1 MiB")]
    TooLarge {
        /// The path.
        path: String,
    },
    /// The key set file is not a JSON Web Key Set.
    #[error("the JWKS file {path} is not a JSON Web Key Set: {message}")]
    Invalid {
        /// The path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The key set holds no RS256 or ES256 verification key.
    #[error(
        "the JWKS file {path} holds no usable key (RSA of at least 2048 bits for RS256, or P-256 for ES256)"
    )]
    NoUsableKey {
        /// The path.
        path: String,
    },
    /// A setting is empty or out of range.
    #[error("[oidc] {0}")]
    Setting(&'static str),
}

/// Why a presented JWT was refused (the `message` of the 401).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtRejection {
    /// Not a JWT, or its header is unreadable.
    #[error("the bearer token is neither a known token nor a readable JWT")]
    Malformed,
    /// Signed with an algorithm other than RS256 or ES256.
    #[error("the JWT's algorithm is not accepted; use RS256 or ES256")]
    Algorithm,
    /// Its `kid` names no key of the issuer's key set.
    #[error("the JWT's key id names no key of the issuer")]
    UnknownKey,
    /// No key of the set verifies its signature.
    #[error("the JWT's signature does not verify")]
    Signature,
    /// Its `exp` has passed.
    #[error("the JWT has expired")]
    Expired,
    /// Its `nbf` is in the future.
    #[error("the JWT is not valid yet (nbf)")]
    NotYetValid,
    /// Its `aud` does not name this server's audience.
    #[error("the JWT's audience is not this server's")]
    Audience,
    /// Its `iss` is not the configured issuer.
    #[error("the JWT's issuer is not the configured one")]
    Issuer,
    /// A required claim (`exp`, `iss`, `aud`, `sub`) is missing or malformed.
    #[error("the JWT lacks a required claim (exp, iss, aud, sub) or has a malformed one")]
    Claims,
}

impl JwtRejection {
    /// A short stable name for the `veritrail_auth_denied_total` metric.
    pub fn reason(self) -> &'static str {
        match self {
            JwtRejection::Malformed => "jwt_malformed",
            JwtRejection::Algorithm => "jwt_algorithm",
            JwtRejection::UnknownKey => "jwt_unknown_key",
            JwtRejection::Signature => "jwt_signature",
            JwtRejection::Expired => "jwt_expired",
            JwtRejection::NotYetValid => "jwt_not_yet_valid",
            JwtRejection::Audience => "jwt_audience",
            JwtRejection::Issuer => "jwt_issuer",
            JwtRejection::Claims => "jwt_claims",
        }
    }
}

/// Who a verified JWT names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcSubject {
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
}

/// One verification key of the set.
struct Key {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// A loaded `[oidc]` configuration: the issuer's keys and what a verified token may do.
#[derive(Debug)]
pub struct Oidc {
    issuer: String,
    audience: String,
    roles: Vec<Role>,
    leeway: u64,
    keys: Vec<Key>,
}

/// The claims read from a verified token (the standard ones are checked by `jsonwebtoken`).
#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: String,
}

impl Oidc {
    /// Loads the configuration, reading the key set relative to `base` (the token file's
    /// directory).
    ///
    /// # Errors
    /// [`OidcError`]: an empty issuer, audience or role list, a leeway above 600 s, an
    /// unreadable or oversized key set, or one without a usable key. Keys of other types,
    /// curves or uses are skipped (and logged), so one set can serve several relying parties.
    pub fn load(config: &OidcConfig, base: &Path) -> Result<Oidc, OidcError> {
        if config.issuer.is_empty() {
            return Err(OidcError::Setting("issuer must not be empty"));
        }
        if config.audience.is_empty() {
            return Err(OidcError::Setting("audience must not be empty"));
        }
        if config.roles.is_empty() {
            return Err(OidcError::Setting(
                "roles must name at least one role (e.g. [\"append\"])",
            ));
        }
        if config.leeway_seconds > MAX_LEEWAY_SECONDS {
            return Err(OidcError::Setting("leeway_seconds must be at most 600"));
        }
        let path = base.join(&config.jwks);
        let shown = path.display().to_string();
        let size = std::fs::metadata(&path)
            .map_err(|source| OidcError::Io {
                path: shown.clone(),
                source,
            })?
            .len();
        if size > MAX_JWKS_FILE {
            return Err(OidcError::TooLarge { path: shown });
        }
        let text = std::fs::read(&path).map_err(|source| OidcError::Io {
            path: shown.clone(),
            source,
        })?;
        let set: JwkSet = serde_json::from_slice(&text).map_err(|e| OidcError::Invalid {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        let keys: Vec<Key> = set.keys.iter().filter_map(usable_key).collect();
        if keys.is_empty() {
            return Err(OidcError::NoUsableKey { path: shown });
        }
        tracing::info!(issuer = %config.issuer, keys = keys.len(), jwks = %shown, "OIDC issuer keys loaded");
        Ok(Oidc {
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            roles: config.roles.clone(),
            leeway: config.leeway_seconds,
            keys,
        })
    }

    /// The roles a verified token holds.
    pub fn roles(&self) -> &[Role] {
        &self.roles
    }

    /// Verifies `token` and returns who it names.
    ///
    /// # Errors
    /// [`JwtRejection`]: why it was refused.
    pub fn verify(&self, token: &str) -> Result<OidcSubject, JwtRejection> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtRejection::Malformed)?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(JwtRejection::Algorithm);
        }
        let candidates: Vec<&Key> = self
            .keys
            .iter()
            .filter(|k| k.algorithm == header.alg)
            .filter(|k| header.kid.is_none() || k.kid == header.kid)
            .collect();
        if candidates.is_empty() {
            return Err(if header.kid.is_some() {
                JwtRejection::UnknownKey
            } else {
                JwtRejection::Algorithm
            });
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.required_spec_claims =
            HashSet::from(["exp", "iss", "aud", "sub"].map(str::to_owned));
        let mut last = JwtRejection::Signature;
        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => {
                    let Claims { iss, sub } = data.claims;
                    if sub.is_empty() || sub.len() > MAX_SUBJECT_BYTES {
                        return Err(JwtRejection::Claims);
                    }
                    return Ok(OidcSubject {
                        issuer: iss,
                        subject: sub,
                    });
                }
                Err(e) => {
                    last = rejection(e.kind());
                    // Only a bad signature may mean "another key of the set": a verified
                    // token with bad claims is refused for its claims.
                    if last != JwtRejection::Signature {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }
}

/// Whether `token` has the shape of a JWS compact serialization (three base64url parts), so
/// it is verified as a JWT rather than looked up as a Veritrail token.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn rejection(kind: &jsonwebtoken::errors::ErrorKind) -> JwtRejection {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::InvalidSignature => JwtRejection::Signature,
        K::ExpiredSignature => JwtRejection::Expired,
        K::ImmatureSignature => JwtRejection::NotYetValid,
        K::InvalidAudience => JwtRejection::Audience,
        K::InvalidIssuer => JwtRejection::Issuer,
        K::InvalidAlgorithm | K::UnsupportedAlgorithm => JwtRejection::Algorithm,
        K::MissingRequiredClaim(_) | K::InvalidClaimFormat(_) | K::InvalidSubject | K::Json(_) => {
            JwtRejection::Claims
        }
        _ => JwtRejection::Malformed,
    }
}

/// The verification key a JWK gives, if it is one this server accepts.
fn usable_key(jwk: &jsonwebtoken::jwk::Jwk) -> Option<Key> {
    let kid = jwk.common.key_id.clone();
    let skip = |why: &str| {
        tracing::info!(kid = ?kid, why, "JWKS key skipped");
        None
    };
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != jsonwebtoken::jwk::PublicKeyUse::Signature)
    {
        return skip("not a signature key (use)");
    }
    let (algorithm, declared) = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let bits = base64_url_len(&rsa.n) * 8;
            if bits < MIN_RSA_BITS {
                return skip("RSA key shorter than 2048 bits");
            }
            (Algorithm::RS256, KeyAlgorithm::RS256)
        }
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            (Algorithm::ES256, KeyAlgorithm::ES256)
        }
        _ => return skip("neither RSA nor EC P-256"),
    };
    if jwk.common.key_algorithm.is_some_and(|a| a != declared) {
        return skip("its alg is neither RS256 nor ES256");
    }
    match DecodingKey::from_jwk(jwk) {
        Ok(key) => Some(Key {
            kid,
            algorithm,
            key,
        }),
        Err(_) => skip("malformed key parameters"),
    }
}

/// Bytes encoded by a base64url text without padding (leading zero bytes included).
fn base64_url_len(text: &str) -> usize {
    let text = text.trim_end_matches('=');
    text.len() * 3 / 4
}
