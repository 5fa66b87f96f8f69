//! `GET /openapi.json`: the OpenAPI 3.1 document of the whole HTTP API, generated from the code.
//!
//! Every route of [`crate::app`] is described by the `#[utoipa::path]` attribute on its handler
//! in [`crate::routes`] (and on [`document`] here): JSON endpoints with their schemas, and the
//! text and binary ones (`/checkpoint`, `/tile/...`, raw entries, `/metrics`) with their
//! media types. Every error is an [`ErrorResponse`] (`{"error": "<code>", "message": "..."}`)
//! whose code is one of [`ErrorCode`], the stable codes of [`ApiError::code`]. Routes that
//! need a token name the `bearer` security scheme; the prose reference is `docs/api.md`.
//!
//! [`ApiError::code`]: crate::ApiError::code

use axum::Json;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// Name of the bearer-token security scheme in the document.
pub const BEARER: &str = "bearer";

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "error": "index_out_of_range",
    "message": "leaf index 7 is out of range for tree size 3"
}))]
pub struct ErrorResponse {
    /// Stable machine-readable code; match on this, not on the message.
    pub error: ErrorCode,
    /// Human-readable detail. For `internal` it is generic: the detail is in the server log.
    pub message: String,
}

/// The stable error codes (the `error` field): one per `ApiError` variant, see `ApiError::code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: a path or query parameter, or a header, is malformed.
    InvalidParameter,
    /// 400: the body is not a valid entry or entry batch.
    InvalidEntry,
    /// 415: the body's content type is not accepted (reserved: no route returns it today).
    UnsupportedMediaType,
    /// 401: no valid bearer token.
    Unauthorized,
    /// 403: the token lacks the role the route needs.
    Forbidden,
    /// 404: no such resource (yet).
    NotFound,
    /// 405: the path exists but does not take this method (the `Allow` header lists those
    /// it takes).
    MethodNotAllowed,
    /// 422: a leaf index is not below the tree size.
    IndexOutOfRange,
    /// 422: a tree size is beyond the current tree.
    SizeOutOfRange,
    /// 409: an `Idempotency-Key` was reused with a different body.
    IdempotencyConflict,
    /// 413: the body (or a single entry) is too large.
    PayloadTooLarge,
    /// 503 with `Retry-After`: the append queue is full.
    Overloaded,
    /// 503 with `Retry-After`: the server is shutting down.
    ShuttingDown,
    /// 408: the request took longer than the server allows.
    Timeout,
    /// 500: an internal fault.
    Internal,
}

/// The response of `POST /v1/entries`: one object for a raw entry, an array for a batch.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum AppendResponse {
    /// `Content-Type: application/octet-stream` (or any type but the batch type).
    One(crate::routes::AppendedEntry),
    /// `Content-Type: application/x-veritrail-entries`: one element per entry, in order.
    Batch(Vec<crate::routes::AppendedEntry>),
}

/// Raw bytes: the whole body is the value (an entry, an entry batch, a tile).
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Binary(pub Vec<u8>);

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

/// The OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Veritrail",
        description = "Tamper-evident audit ledger: durable group-committed appends, the C2SP \
                       tlog-tiles read path, RFC 9162 inclusion and consistency proofs, signed \
                       checkpoints (C2SP signed-note / tlog-checkpoint) and offline receipts \
                       (c2sp.org/tlog-proof@v1). Reference: docs/api.md."
    ),
    paths(
        crate::routes::append,
        crate::routes::entry,
        crate::routes::inclusion_proof,
        crate::routes::consistency_proof,
        crate::routes::checkpoint_at,
        crate::routes::checkpoint,
        crate::routes::tile,
        crate::routes::healthz,
        crate::routes::readyz,
        crate::routes::metrics,
        document,
    ),
    components(schemas(
        crate::routes::AppendedEntry,
        crate::routes::InclusionProofResponse,
        crate::routes::ConsistencyProofResponse,
        crate::routes::EntryWithProof,
        crate::routes::Health,
        AppendResponse,
        Binary,
        ErrorResponse,
        ErrorCode,
    )),
    modifiers(&BearerScheme),
    tags(
        (name = "append", description = "Durable appends with group commit"),
        (name = "tlog-tiles", description = "C2SP tlog-tiles v0.1.0 static read path"),
        (name = "proofs", description = "Entries, proofs and the checkpoint history (JSON)"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    )
)]
pub struct ApiDoc;

/// The OpenAPI document of this API (OpenAPI 3.1, JSON).
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    summary = "This OpenAPI document",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"),
    )
)]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
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
    use crate::{ApiError, Server, ServerConfig};

    /// The `(method, path)` of every `.route(...)` in `app()`, read from `lib.rs` itself so a
    /// route added there without an OpenAPI description fails this test. Axum's `{*path}`
    /// wildcard is written `{path}` in OpenAPI.
    fn router_routes() -> BTreeSet<(String, String)> {
        const METHODS: [&str; 6] = ["get", "post", "put", "delete", "patch", "head"];
        let source = include_str!("lib.rs");
        let body = source
            .split_once("pub fn app(")
            .and_then(|(_, rest)| rest.split_once("\n}\n"))
            .map(|(body, _)| body)
            .expect("lib.rs defines `pub fn app(`");
        let mut routes = BTreeSet::new();
        for call in body.split(".route(\"").skip(1) {
            let (path, rest) = call.split_once('"').unwrap();
            let rest = rest.split(".fallback(").next().unwrap();
            let rest = rest.split(".layer(").next().unwrap();
            let path = path.replace("{*", "{");
            let methods: Vec<&str> = METHODS
                .into_iter()
                .filter(|m| {
                    rest.match_indices(&format!("{m}(")).any(|(at, _)| {
                        at == 0
                            || !rest.as_bytes()[at - 1].is_ascii_alphanumeric()
                                && rest.as_bytes()[at - 1] != b'_'
                    })
                })
                .collect();
            assert!(!methods.is_empty(), "no method found for route {path}");
            for method in methods {
                routes.insert((method.to_owned(), path.clone()));
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
    fn the_document_lists_every_route_of_the_router() {
        let json = ApiDoc::openapi().to_pretty_json().unwrap();
        let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let router = router_routes();
        assert!(router.len() >= 11, "parsed only {router:?}");
        assert_eq!(documented_routes(&doc), router);

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
            }
            for (status, response) in op["responses"].as_object().unwrap() {
                if status.starts_with('4') || status.starts_with('5') {
                    let reference = &response["content"]["application/json"]["schema"]["$ref"];
                    // /readyz answers 503 with its Health body, not an error.
                    if path != "/readyz" {
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
    /// compile error here until it is added to the samples and to [`ErrorCode`].
    fn every_error() -> Vec<ApiError> {
        let samples = vec![
            ApiError::param("index", "bad"),
            ApiError::InvalidEntry("bad".into()),
            ApiError::UnsupportedMediaType("text/plain".into()),
            ApiError::Unauthorized,
            ApiError::Forbidden {
                token: "t".into(),
                needed: "admin",
            },
            ApiError::NotFound("x".into()),
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
            ApiError::Timeout,
            ApiError::Internal("x".into()),
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
                | ApiError::Timeout
                | ApiError::Internal(_) => {}
            }
        }
        samples
    }

    #[test]
    fn the_error_schema_lists_exactly_the_stable_codes() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let listed: BTreeSet<String> = doc["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        let codes: BTreeSet<String> = every_error().iter().map(|e| e.code().to_owned()).collect();
        assert_eq!(listed, codes);
        assert_eq!(codes.len(), every_error().len(), "codes must be distinct");
    }

    #[tokio::test]
    async fn every_documented_route_is_served_and_the_document_is_json() {
        let dir = tempfile::tempdir().unwrap();
        let signer = NoteSigner::generate(KeyName::new("test.example/log").unwrap()).unwrap();
        let store = store::open(Backend::Redb, dir.path()).unwrap();
        let ledger = Arc::new(Ledger::open(store, "test.example/log", signer).unwrap());
        let server = Server::start(ledger, ServerConfig::default(), Auth::disabled()).unwrap();
        let app = crate::app(server.state().clone());

        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
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
