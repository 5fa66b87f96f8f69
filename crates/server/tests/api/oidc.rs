//! OIDC submitters: JWTs of the configured issuer (RS256 and ES256, keys generated here)
//! append records attested as `{"type":"oidc","issuer","subject"}`; a bad signature, a
//! wrong audience or issuer, an expired or not-yet-valid token, a missing `sub`, an unknown
//! key id and a foreign algorithm each get 401 and change nothing; `SIGHUP`'s reload swaps
//! the issuer's keys.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use veritrail_server::auth::Auth;

use crate::{AUDIT_TOKEN, TestServer, fast_config};

const ISSUER: &str = "https://login.hospital.example/";
const AUDIENCE: &str = "veritrail-audit";

/// A signing key of a test issuer.
struct Signer {
    kid: &'static str,
    algorithm: Algorithm,
    key: EncodingKey,
}

impl Signer {
    fn rsa(kid: &'static str) -> Signer {
        use rsa::pkcs1::EncodeRsaPrivateKey as _;
        let key = rsa::PrivateKey::new(&mut getrandom_sys_rng::SysRng, 2048).unwrap();
        let der = key.to_pkcs1_der().unwrap();
        Signer {
            kid,
            algorithm: Algorithm::RS256,
            key: EncodingKey::from_rsa_der(der.as_bytes()),
        }
    }

    fn p256(kid: &'static str) -> Signer {
        use p256::pkcs8::EncodePrivateKey as _;
        let key = loop {
            let mut bytes = [0u8; 32];
            getrandom_sys_rng::fill(&mut bytes).unwrap();
            if let Ok(key) = p256::SecretKey::from_slice(&bytes) {
                break key;
            }
        };
        let der = key.to_pkcs8_der().unwrap();
        Signer {
            kid,
            algorithm: Algorithm::ES256,
            key: EncodingKey::from_ec_der(der.as_bytes()),
        }
    }

    /// The public JWK of this key, with its `kid`.
    fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.key, self.algorithm).unwrap();
        jwk.common.key_id = Some(self.kid.to_owned());
        jwk
    }

    /// A JWT of `claims` signed by this key, its header naming `kid`.
    fn sign(&self, claims: &Value) -> String {
        self.sign_as(self.kid, claims)
    }

    fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }
}

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// Claims of a good token for `sub`.
fn claims(sub: &str) -> Value {
    json!({
        "iss": ISSUER,
        "sub": sub,
        "aud": AUDIENCE,
        "exp": now() + 600,
        "nbf": now() - 10,
        "iat": now() - 10,
    })
}

/// Writes the issuer's key set and a token file trusting it into `dir`; loads the policy.
fn trust(dir: &Path, keys: &[&Signer]) -> Auth {
    let set = JwkSet {
        keys: keys.iter().map(|k| k.jwk()).collect(),
    };
    std::fs::write(dir.join("jwks.json"), serde_json::to_vec(&set).unwrap()).unwrap();
    let auditor = veritrail_server::auth::token_entry(
        "auditor",
        AUDIT_TOKEN,
        vec![veritrail_server::auth::Role::Audit],
    );
    let file = format!(
        "[[token]]\nname = {:?}\nsha256 = {:?}\nroles = [\"audit\"]\n\n\
         [oidc]\nissuer = {ISSUER:?}\naudience = {AUDIENCE:?}\njwks = \"jwks.json\"\nroles = [\"append\"]\n",
        auditor.name, auditor.sha256
    );
    std::fs::write(dir.join("auth.toml"), file).unwrap();
    Auth::load(&dir.join("auth.toml"), false).unwrap()
}

fn event(n: usize) -> Value {
    json!({
        "timestamp": "2026-03-01T12:00:00Z",
        "action": "tool_invoked",
        "actor": {"id": "claimed-by-the-client", "type": "agent"},
        "conversation_id": format!("oidc-{n}"),
    })
}

async fn post(server: &TestServer, bearer: &str, n: usize) -> crate::Reply {
    let authorization = format!("Bearer {bearer}");
    server
        .post_with(
            "/v1/records",
            "application/json",
            &[("authorization", authorization.as_bytes())],
            serde_json::to_vec(&event(n)).unwrap(),
        )
        .await
}

#[tokio::test]
async fn jwts_of_the_configured_issuer_submit_attested_records_and_bad_ones_get_401() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = Signer::rsa("rsa-1");
    let ec = Signer::p256("ec-1");
    let auth = trust(dir.path(), &[&rsa, &ec]);
    // Reads are not audited here: the tree size below counts this test's appends only.
    let mut config = fast_config();
    config.records.audit_reads = false;
    let server = TestServer::start(auth.clone(), config, 0).await;

    // RS256 and ES256 tokens append; the record names the token's issuer and subject.
    for (n, (signer, subject)) in [(&rsa, "agent-rsa"), (&ec, "agent-ec")]
        .into_iter()
        .enumerate()
    {
        let reply = post(&server, &signer.sign(&claims(subject)), n)
            .await
            .ok(subject);
        let index = reply.json()["records"][0]["index"].as_u64().unwrap();
        server.wait_published(index + 1).await;
        let auditor = format!("Bearer {AUDIT_TOKEN}");
        let stored = server
            .get_as(&format!("/v1/records/{index}"), Some(&auditor))
            .await
            .ok("GET record")
            .json();
        assert_eq!(
            stored["record"]["submitted_by"],
            json!({"type": "oidc", "issuer": ISSUER, "subject": subject}),
        );
        assert_eq!(stored["record"]["actor"]["id"], "claimed-by-the-client");
    }
    let size = server.tree().size;

    // Each bad token: 401 `unauthorized` naming the reason, RFC 6750's invalid_token, no
    // record appended.
    let stranger = Signer::rsa("rsa-1");
    let good = rsa.sign(&claims("agent-rsa"));
    let mut parts: Vec<&str> = good.split('.').collect();
    let forged_claims =
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims("someone-else")).unwrap());
    parts[1] = &forged_claims;
    let tampered = parts.join(".");
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let unsigned = format!("{none_header}.{forged_claims}.");
    let hs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims("agent-hmac"),
        &EncodingKey::from_secret(b"a shared secret the server never trusted").unwrap(),
    )
    .unwrap();
    let with = |change: &dyn Fn(&mut Value)| {
        let mut c = claims("agent-rsa");
        change(&mut c);
        c
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "a key outside the set",
            stranger.sign(&claims("agent-rsa")),
            "signature",
        ),
        ("changed claims", tampered, "signature"),
        (
            "wrong audience",
            rsa.sign(&with(&|c| c["aud"] = json!("another-service"))),
            "audience",
        ),
        (
            "expired",
            rsa.sign(&with(&|c| c["exp"] = json!(now() - 3600))),
            "expired",
        ),
        (
            "not valid yet",
            ec.sign(&with(&|c| c["nbf"] = json!(now() + 3600))),
            "not valid yet",
        ),
        (
            "another issuer",
            rsa.sign(&with(&|c| c["iss"] = json!("https://evil.example/"))),
            "issuer",
        ),
        (
            "no subject",
            rsa.sign(&with(&|c| {
                c.as_object_mut().unwrap().remove("sub");
            })),
            "claim",
        ),
        (
            "no expiry",
            rsa.sign(&with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            })),
            "claim",
        ),
        (
            "unknown key id",
            rsa.sign_as("rsa-9", &claims("a")),
            "key id",
        ),
        ("HS256", hs256, "algorithm"),
        ("alg none", unsigned, "bearer token"),
    ];
    let mut failures = Vec::new();
    for (what, token, reason) in &cases {
        let reply = post(&server, token, 100).await;
        match reply.check_error(StatusCode::UNAUTHORIZED, "unauthorized") {
            Ok(message) if message.contains(reason) => {}
            Ok(message) => failures.push(format!("{what}: message {message:?} lacks {reason:?}")),
            Err(e) => failures.push(format!("{what}: {e}")),
        }
        let challenge = reply.headers.get(header::WWW_AUTHENTICATE);
        if challenge
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| !v.starts_with("Bearer"))
        {
            failures.push(format!("{what}: WWW-Authenticate {challenge:?}"));
        }
    }
    crate::assert_no_failures("refused JWTs", &failures);
    assert_eq!(server.tree().size, size, "a refused JWT appended something");

    // A verified token holds only the roles of [oidc]: `append`, not `audit`.
    let bearer = format!("Bearer {}", ec.sign(&claims("agent-ec")));
    server
        .get_as("/v1/records/0", Some(&bearer))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden", "read as an appender");

    // A reload (SIGHUP) with the RSA key rotated out: its tokens stop working at once.
    auth.reload(&trust(dir.path(), &[&ec]));
    post(&server, &rsa.sign(&claims("agent-rsa")), 200)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized", "rotated-out key");
    post(&server, &ec.sign(&claims("agent-ec")), 201)
        .await
        .ok("the key still in the set");
    server.stop().await;
}

#[test]
fn unusable_issuer_configurations_are_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let write = |jwks: &str, oidc: &str| {
        std::fs::write(dir.path().join("jwks.json"), jwks).unwrap();
        std::fs::write(dir.path().join("auth.toml"), format!("[oidc]\n{oidc}")).unwrap();
        Auth::load(&dir.path().join("auth.toml"), false)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let ok = format!(
        "issuer = {ISSUER:?}\naudience = {AUDIENCE:?}\njwks = \"jwks.json\"\nroles = [\"append\"]\n"
    );
    let ec = serde_json::to_string(&JwkSet {
        keys: vec![Signer::p256("ec").jwk()],
    })
    .unwrap();
    assert_eq!(write(&ec, &ok), Ok(()));
    // A set with only an HMAC key (or an RSA key under 2048 bits) has no usable key.
    let hmac = r#"{"keys":[{"kty":"oct","k":"c2VjcmV0","alg":"HS256"}]}"#;
    let short_rsa = format!(
        r#"{{"keys":[{{"kty":"RSA","n":"{}","e":"AQAB"}}]}}"#,
        URL_SAFE_NO_PAD.encode([0xC5u8; 128])
    );
    for (what, jwks, oidc, expect) in [
        ("hmac only", hmac, ok.as_str(), "no usable key"),
        (
            "1024-bit RSA",
            short_rsa.as_str(),
            ok.as_str(),
            "no usable key",
        ),
        ("not JSON", "{", ok.as_str(), "not a JSON Web Key Set"),
        (
            "no roles",
            ec.as_str(),
            &ok.replace("[\"append\"]", "[]"),
            "roles",
        ),
        (
            "empty audience",
            ec.as_str(),
            &ok.replace(AUDIENCE, ""),
            "audience",
        ),
        (
            "missing file",
            ec.as_str(),
            &ok.replace("jwks.json", "nowhere.json"),
            "cannot read",
        ),
    ] {
        let err = write(jwks, oidc).expect_err(what);
        assert!(err.contains(expect), "{what}: {err}");
    }
}
