//! The OpenAPI 3.1 document of the whole HTTP API, served at `GET /openapi.json`.
//!
//! The document is derived from the router that serves requests: `crate::routes::router`
//! registers every handler through `utoipa_axum::routes!`, which adds the handler's
//! `#[utoipa::path]` operation and the schemas it names to this module's `skeleton`
//! (title, tags, the `bearer` security scheme, the shared schemas). JSON bodies are the types
//! of `veritrail-api`; the text and binary ones (`/checkpoint`, `/tile/...`, raw entries,
//! `/metrics`) are described by their media types. Every error is an `ErrorResponse`
//! (`veritrail_api::ErrorBody`, `{"error": "<code>", "message": "..."}`) whose code is one of
//! `ErrorCode`. The prose reference is `docs/api.md`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};
use veritrail_api::{AppendResponse, ErrorBody, ErrorCode};

/// Name of the bearer-token security scheme in the document.
pub const BEARER: &str = "bearer";

/// Raw bytes: the whole body is the value (an entry, an entry batch, a tile).
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Binary(pub Vec<u8>);

// The three error groups below describe responses in `#[utoipa::path]` attributes; their
// variants are never built (the handlers answer with `ApiError`), hence `dead_code`.

/// `401` and `403`, for routes that take a bearer token.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(crate) enum AccessErrors {
    /// `unauthorized`: no, a malformed or an unknown bearer token
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// `forbidden`: the token lacks the role
    #[response(status = 403)]
    Forbidden(ErrorBody),
}

/// `408`, which any route answers when it outlives `--request-timeout`.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(crate) enum TimeoutError {
    /// `timeout`: the request took longer than `--request-timeout`
    #[response(status = 408)]
    Timeout(ErrorBody),
}

/// `500`, for routes that read the store.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(crate) enum InternalError {
    /// `internal`: detail in the server log
    #[response(status = 500)]
    Internal(ErrorBody),
}

/// Adds the bearer-token security scheme.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`Authorization: Bearer <token>`. The server stores only the token's \
                         SHA-256 (auth.toml). Roles: append, read, audit (read + checkpoint \
                         history), admin (everything).",
                    ))
                    .build(),
            ),
        );
    }
}

/// The parts of the document that are not routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Veritrail",
        description = "Tamper-evident audit ledger: durable group-committed appends, the C2SP \
                       tlog-tiles read path, RFC 9162 inclusion and consistency proofs, signed \
                       checkpoints (C2SP signed-note / tlog-checkpoint) and offline receipts \
                       (c2sp.org/tlog-proof@v1). Reference: docs/api.md."
    ),
    components(schemas(AppendResponse, Binary, ErrorBody, ErrorCode)),
    modifiers(&BearerScheme),
    tags(
        (name = "append", description = "Durable appends with group commit"),
        (name = "records", description = "Agent audit records: validated, attested, chained per conversation"),
        (name = "tlog-tiles", description = "C2SP tlog-tiles v0.1.0 static read path"),
        (name = "proofs", description = "Entries, proofs and the checkpoint history (JSON)"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    )
)]
struct Skeleton;

/// The document before any route is added: info, tags, security scheme, shared schemas.
pub(crate) fn skeleton() -> utoipa::openapi::OpenApi {
    Skeleton::openapi()
}

/// Finishes the document built by the router: axum's catch-all `{*path}` is written
/// `{path}` in OpenAPI, where a path parameter may hold `/` only if the operation says so.
pub(crate) fn finish(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    doc.paths.paths = std::mem::take(&mut doc.paths.paths)
        .into_iter()
        .map(|(path, item)| (path.replace("{*", "{"), item))
        .collect();
    doc
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    use veritrail_ledger::Ledger;
    use veritrail_ledger::note::{KeyName, NoteSigner};
    use veritrail_ledger::store::{self, Backend};

    use super::*;
    use crate::auth::Auth;
    use crate::error::{Internal, InvalidEntry, NotFound};
    use crate::{ApiError, Server, ServerConfig};

    /// The `(method, path)` of every row of the endpoint table in `docs/api.md`: the router,
    /// and so the document derived from it, must serve exactly the documented API.
    fn api_md_routes() -> BTreeSet<(String, String)> {
        let doc = include_str!("../../../docs/api.md");
        let table = doc
            .split_once("## Endpoints")
            .map(|(_, rest)| rest)
            .expect("docs/api.md has an Endpoints section");
        let mut routes = BTreeSet::new();
        for line in table.lines().skip_while(|l| !l.starts_with('|')) {
            let Some(row) = line.strip_prefix('|') else {
                break;
            };
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let (method, path) = (cells[0], cells[1]);
            if let Some((_, rest)) = path.split_once("[`")
                && let Some((path, _)) = rest.split_once('`')
            {
                routes.insert((method.to_lowercase(), path.to_owned()));
            }
        }
        routes
    }

    fn documented_routes(doc: &serde_json::Value) -> BTreeSet<(String, String)> {
        let mut routes = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                routes.insert((method.clone(), path.clone()));
            }
        }
        routes
    }

    #[test]
    fn the_document_of_the_router_lists_every_documented_endpoint() {
        let json = crate::api_document().to_pretty_json().unwrap();
        let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let router = documented_routes(&doc);
        let documented = api_md_routes();
        assert!(documented.len() >= 11, "parsed only {documented:?}");
        assert_eq!(router, documented);

        // Every operation answers errors with the error schema, and protected ones name the
        // bearer scheme, which exists.
        assert!(doc["components"]["securitySchemes"][BEARER].is_object());
        for (method, path) in &router {
            let op = &doc["paths"][path][method];
            assert!(
                op["responses"]["200"].is_object(),
                "{method} {path}: no 200"
            );
            if let Some(security) = op["security"].as_array() {
                for requirement in security {
                    for name in requirement.as_object().unwrap().keys() {
                        assert_eq!(name, BEARER, "{method} {path}");
                    }
                }
                // A route that takes a token documents both ways to be refused.
                for status in ["401", "403"] {
                    assert!(
                        op["responses"][status].is_object(),
                        "{method} {path}: no {status}"
                    );
                }
            }
            // Every route that does work can outlive the request timeout (liveness and the
            // prebuilt document answer at once).
            if !["/openapi.json", "/healthz", "/v1/schema/event.json"].contains(&path.as_str()) {
                assert!(
                    op["responses"]["408"].is_object(),
                    "{method} {path}: no 408"
                );
            }
            for (status, response) in op["responses"].as_object().unwrap() {
                if status.starts_with('4') || status.starts_with('5') {
                    let reference = &response["content"]["application/json"]["schema"]["$ref"];
                    // /readyz and /healthz answer 503 with their Health body, not an error.
                    if path != "/readyz" && path != "/healthz" {
                        assert_eq!(
                            reference, "#/components/schemas/ErrorResponse",
                            "{method} {path} {status}"
                        );
                    }
                }
            }
        }
    }

    /// One sample of every `ApiError` variant. The exhaustive `match` makes a new variant a
    /// compile error here until it is added to the samples and mapped to an [`ErrorCode`].
    fn every_error() -> Vec<ApiError> {
        let samples = vec![
            ApiError::param("index", "bad"),
            ApiError::InvalidEntry(InvalidEntry::Empty),
            ApiError::UnsupportedMediaType("text/plain".into()),
            ApiError::Unauthorized,
            ApiError::Forbidden {
                token: "t".into(),
                needed: "admin",
            },
            ApiError::NotFound(NotFound::Endpoint),
            ApiError::MethodNotAllowed,
            ApiError::IndexOutOfRange { index: 1, size: 1 },
            ApiError::SizeOutOfRange {
                requested: 2,
                current: 1,
            },
            ApiError::IdempotencyConflict("k".into()),
            ApiError::PayloadTooLarge { limit: 1 },
            ApiError::Overloaded { retry_after: 1 },
            ApiError::ShuttingDown,
            ApiError::IndexCatchingUp {
                indexed: 0,
                size: 70_000,
            },
            ApiError::Timeout,
            ApiError::InvalidRecord {
                problems: Vec::new(),
            },
            ApiError::ConversationClosed {
                conversation: "c".into(),
            },
            ApiError::UriTooLong { limit: 1 },
            ApiError::HeadersTooLarge { limit: 1 },
            ApiError::Corrupted { what: "e".into() },
            ApiError::StoreUnavailable { retry_after: 1 },
            ApiError::InsufficientStorage { retry_after: 1 },
            ApiError::Internal(Internal::CommitterStopped),
        ];
        for sample in &samples {
            match sample {
                ApiError::InvalidParameter { .. }
                | ApiError::InvalidEntry(_)
                | ApiError::UnsupportedMediaType(_)
                | ApiError::Unauthorized
                | ApiError::Forbidden { .. }
                | ApiError::NotFound(_)
                | ApiError::MethodNotAllowed
                | ApiError::IndexOutOfRange { .. }
                | ApiError::SizeOutOfRange { .. }
                | ApiError::IdempotencyConflict(_)
                | ApiError::PayloadTooLarge { .. }
                | ApiError::Overloaded { .. }
                | ApiError::ShuttingDown
                | ApiError::IndexCatchingUp { .. }
                | ApiError::Timeout
                | ApiError::InvalidRecord { .. }
                | ApiError::ConversationClosed { .. }
                | ApiError::UriTooLong { .. }
                | ApiError::HeadersTooLarge { .. }
                | ApiError::Corrupted { .. }
                | ApiError::StoreUnavailable { .. }
                | ApiError::InsufficientStorage { .. }
                | ApiError::Internal(_) => {}
            }
        }
        samples
    }

    #[test]
    fn the_error_schema_lists_exactly_the_stable_codes() {
        let doc = serde_json::to_value(crate::api_document()).unwrap();
        let listed: BTreeSet<String> = doc["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        let codes: BTreeSet<String> = every_error()
            .iter()
            .map(|e| e.code().as_str().to_owned())
            .collect();
        assert_eq!(listed, codes);
        assert_eq!(codes.len(), every_error().len(), "codes must be distinct");
        let all: BTreeSet<String> = ErrorCode::ALL
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect();
        assert_eq!(all, codes, "every wire code has an ApiError variant");
        for error in every_error() {
            assert_eq!(error.status().as_u16(), error.code().status(), "{error}");
        }
    }

    #[tokio::test]
    async fn every_documented_route_is_served_and_the_document_is_json() {
        let dir = tempfile::tempdir().unwrap();
        let signer = NoteSigner::generate(KeyName::new("test.example/log").unwrap()).unwrap();
        let store = store::open(Backend::Redb, dir.path()).unwrap();
        let ledger = Arc::new(Ledger::open(store, "test.example/log", signer).unwrap());
        let server = Server::start(ledger, ServerConfig::default(), Auth::disabled()).unwrap();
        let app = crate::app(server.state().clone());

        let doc = serde_json::to_value(crate::api_document()).unwrap();
        for (method, path) in documented_routes(&doc) {
            let uri = path
                .replace("{index}", "0")
                .replace("{size}", "0")
                .replace("{path}", "0/000");
            let request = Request::builder()
                .method(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap())
                .uri(&uri)
                .body(Body::empty())
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            let status = response.status();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            let text = String::from_utf8_lossy(&body);
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
            assert!(
                !text.contains("no such endpoint"),
                "{method} {uri} fell through to the fallback"
            );
            if path == "/openapi.json" {
                assert_eq!(status, StatusCode::OK);
                let served: serde_json::Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(served, doc);
            }
        }
        server.shutdown().await;
    }
}
