//! The OpenAPI 3.1 document of the whole HTTP API, served at `GET /openapi.json`.
//!
//! The document is derived from the router that serves requests: `crate::routes::router`
//! registers every handler through `utoipa_axum::routes!`, which adds the handler's
//! `#[utoipa::path]` operation and the schemas it names to this module's `skeleton`
//! (title, tags, the `bearer` security scheme, the shared schemas). JSON bodies are the types
//! of `veritrail-api`; the text and binary ones (`/checkpoint`, tiles, raw entries,
//! `/metrics`) are described by their media types. Every error is an `ErrorResponse`
//! (`veritrail_api::ErrorBody`, `{"error": "<code>", "message": "..."}`) whose code is one of
//! `ErrorCode`. The prose reference is `docs/api.md`.
//!
//! The document states every rule the server enforces on a request that a schema can state:
//! the range of every number (canonical decimals up to `u64::MAX`, `old` and `size` at least
//! 1), the exact form of a leaf hash, an `Idempotency-Key` and a tile path (as `pattern`s the
//! tests check against the parsers), the values of `wait` and `proof`, and the lengths of
//! bodies. Rules that depend on the tree (an index below the tree size, a size within the
//! committed tree) are in the descriptions and answered 404 or 422. `finish` writes what
//! depends on the running server: which operations need a token (`--public-read`,
//! `--no-auth`) and the body limit (`--max-body-bytes`). Each security requirement names the
//! role it needs as its scope (`bearer: [read]`), as OpenAPI 3.1 allows for non-OAuth schemes.

use utoipa::openapi::RefOr;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::schema::{KnownFormat, Schema, SchemaFormat, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};
use veritrail_api::{AppendResponse, ErrorBody, ErrorCode};

use crate::auth::{Auth, Role};
use crate::config::LimitsConfig;

/// Name of the bearer-token security scheme in the document.
pub const BEARER: &str = "bearer";

/// Raw bytes: the whole body is the value.
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Binary(pub Vec<u8>);

/// One raw entry: 1 to 65535 bytes, the range of the u16 length prefix of a C2SP entry bundle
/// (`veritrail_ledger::bundle::MAX_ENTRY_SIZE`).
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary, min_length = 1, max_length = 65535)]
pub struct RawEntry(pub Vec<u8>);

/// A batch append body, framed like a C2SP entry bundle: 1 to 4096 entries of 1 to 65535
/// bytes, each prefixed by its length as a big-endian u16 (so at least 3 bytes), with nothing
/// after the last entry. At most `--max-body-bytes` (each server's document states its own).
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary, min_length = 3)]
pub struct EntryBatch(pub Vec<u8>);

/// A hash tile: W (1 to 256) hashes of 32 bytes.
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary, min_length = 32, max_length = 8192)]
pub struct HashTile(pub Vec<u8>);

/// An entry bundle: W (1 to 256) entries of 1 to 65535 bytes, each prefixed by its length as
/// a big-endian u16.
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary, min_length = 3, max_length = 16777472)]
pub struct EntryBundle(pub Vec<u8>);

/// A leaf hash, `SHA-256(0x00 || entry)`, in standard padded base64: 44 characters, the last
/// before `=` holding 4 bits (`Hash::from_base64` refuses non-zero trailing bits). The example
/// is the leaf hash of the README's first entry, `{"event":"tool_call"}`.
#[derive(Debug, ToSchema)]
#[schema(
    value_type = String,
    pattern = r"^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$",
    min_length = 44,
    max_length = 44,
    example = "BOBq6VZMjDAq41sNaAvCF1dwf+lfz3fCbrGFBiTlMec="
)]
pub struct LeafHash(pub String);

/// A hash tile path after `/tile/`: `<L>/<N>[.p/<W>]` in canonical form (what
/// `TileId::from_path` accepts): L 0 to 63 without leading zeros; N in 3-digit groups, all
/// but the last prefixed with `x`, the first of several not `x000`, at most 7 groups (an N
/// above `u64::MAX` is 404); W 1 to 255 without leading zeros. The examples exist in a log of
/// 600 entries.
#[derive(Debug, ToSchema)]
#[schema(
    value_type = String,
    pattern = r"^(?:[0-9]|[1-5][0-9]|6[0-3])/(?:[0-9]{3}|x(?:00[1-9]|0[1-9][0-9]|[1-9][0-9]{2})(?:/x[0-9]{3}){0,5}/[0-9]{3})(?:\.p/(?:[1-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5]))?$",
    examples("0/000", "0/001", "0/002.p/88", "1/000.p/2")
)]
pub struct HashTilePath(pub String);

/// An entry bundle path after `/tile/entries/`: `<N>[.p/<W>]`, N and W as in a hash tile
/// path. The examples exist in a log of 600 entries.
#[derive(Debug, ToSchema)]
#[schema(
    value_type = String,
    pattern = r"^(?:[0-9]{3}|x(?:00[1-9]|0[1-9][0-9]|[1-9][0-9]{2})(?:/x[0-9]{3}){0,5}/[0-9]{3})(?:\.p/(?:[1-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5]))?$",
    examples("000", "001", "002.p/88")
)]
pub struct EntryBundlePath(pub String);

// The parameter enums below describe values in `#[utoipa::path]` attributes; the handlers
// parse the query text themselves (`crate::query::Params`), so the variants are never built.

/// The values of `wait` on `POST /v1/entries` (`veritrail_api::media::WAIT_PUBLISHED`).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub(crate) enum WaitFor {
    /// Until a signed checkpoint covers the entries.
    #[schema(rename = "published")]
    Published,
}

/// The values of `proof` on `GET /v1/entries/{index}` (`crate::query::Params::flag`): `1`,
/// `true` or empty (`?proof`, `?proof=`) for JSON with a proof, `0` or `false` for the raw
/// bytes.
#[derive(Debug, ToSchema)]
#[schema(value_type = String, pattern = r"^(?:1|true|0|false)?$", examples("1", "0"))]
pub struct ProofFlag(pub String);

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
    /// `internal` (detail in the server log) or `corrupted` (stored data failed its check
    /// against the tree and is not served)
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
                         SHA-256 (auth.toml). Roles, named as the scope of each operation's \
                         requirement: append, read, audit (read + checkpoint history), admin \
                         (everything).",
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
    components(schemas(
        AppendResponse,
        Binary,
        EntryBatch,
        EntryBundle,
        EntryBundlePath,
        ErrorBody,
        ErrorCode,
        HashTile,
        HashTilePath,
        LeafHash,
        ProofFlag,
        RawEntry,
        WaitFor
    )),
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

/// Every operation of a path item.
fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// Finishes the document built by the router for a server with the access policy `auth` and
/// the limits `limits`:
///
/// - axum's catch-all `{*path}` is written `{path}`;
/// - every number parameter, a `u64` written as a canonical decimal
///   (`crate::query::parse_u64`), has the format `uint64` and states its maximum: its own
///   (a page size) or `u64::MAX`;
/// - an optional parameter is not nullable: it is left out, never sent as null;
/// - with `--public-read`, the operations that need `read` may also be called without a
///   token; with `--no-auth` no operation needs one;
/// - the batch body states `--max-body-bytes` as its `maxLength`.
pub(crate) fn finish(
    mut doc: utoipa::openapi::OpenApi,
    auth: &Auth,
    limits: &LimitsConfig,
) -> utoipa::openapi::OpenApi {
    doc.paths.paths = std::mem::take(&mut doc.paths.paths)
        .into_iter()
        .map(|(path, item)| (path.replace("{*", "{"), item))
        .collect();
    let read = SecurityRequirement::new(BEARER, [Role::Read.as_str()]);
    for item in doc.paths.paths.values_mut() {
        for operation in operations_mut(item) {
            for parameter in operation.parameters.iter_mut().flatten() {
                if let RefOr::T(parameter) = parameter
                    && let Some(RefOr::T(Schema::Object(schema))) = &mut parameter.schema
                {
                    // Every number in a path or query is a `u64` (utoipa writes `int64`).
                    // A maximum the operation states itself (a page size) is kept.
                    if schema.format == Some(SchemaFormat::KnownFormat(KnownFormat::Int64)) {
                        schema.format = Some(SchemaFormat::Custom("uint64".into()));
                        if schema.maximum.is_none() {
                            schema.maximum =
                                usize::try_from(u64::MAX).ok().map(utoipa::Number::UInt);
                        }
                    }
                    // An optional parameter is left out, never null (utoipa writes an optional
                    // header as `["string", "null"]`).
                    if let SchemaType::Array(types) = &schema.schema_type
                        && let [only] = types
                            .iter()
                            .filter(|t| **t != Type::Null)
                            .collect::<Vec<_>>()
                            .as_slice()
                    {
                        schema.schema_type = SchemaType::Type((*only).clone());
                    }
                }
            }
            if !auth.authenticates() {
                operation.security = None;
            } else if auth.public_read()
                && let Some(security) = &mut operation.security
                && security.contains(&read)
            {
                security.insert(0, SecurityRequirement::default());
            }
        }
    }
    if let Some(RefOr::T(Schema::Object(batch))) = doc
        .components
        .as_mut()
        .and_then(|c| c.schemas.get_mut("EntryBatch"))
    {
        batch.max_length = Some(limits.max_body_bytes);
    }
    doc
}

/// Puts the event's JSON Schema ([`veritrail_records::EVENT_SCHEMA`]) into the rendered
/// document as the component `AuditEvent`, and makes the body of `POST /v1/records` one event
/// or an array of 1 to 1,000. It is patched into the JSON because utoipa's schema model has
/// no `not` or `const`, which the event schema uses; OpenAPI 3.1 schemas are JSON Schema
/// 2020-12, so it goes in unchanged (its `$defs` references are made document-absolute).
pub(crate) fn with_event_schema(mut doc: serde_json::Value) -> serde_json::Value {
    let Ok(mut event) = serde_json::from_str::<serde_json::Value>(veritrail_records::EVENT_SCHEMA)
    else {
        return doc;
    };
    let Some(schema) = event.as_object_mut() else {
        return doc;
    };
    schema.remove("$schema");
    schema.remove("$id");
    let defs = schema.remove("$defs");
    let text = serde_json::Value::Object(schema.clone())
        .to_string()
        .replace("#/$defs/", "#/components/schemas/AuditEvent.");
    let Ok(event) = serde_json::from_str::<serde_json::Value>(&text) else {
        return doc;
    };
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return doc;
    };
    schemas.insert("AuditEvent".into(), event);
    if let Some(serde_json::Value::Object(defs)) = defs {
        for (name, def) in defs {
            let def = def
                .to_string()
                .replace("#/$defs/", "#/components/schemas/AuditEvent.");
            if let Ok(def) = serde_json::from_str(&def) {
                schemas.insert(format!("AuditEvent.{name}"), def);
            }
        }
    }
    // utoipa writes the variants of an untagged enum without `additionalProperties: false`;
    // the erase and hold bodies take exactly one target and `reason`, nothing else.
    for name in ["EraseRequest", "HoldRequest"] {
        if let Some(variants) = schemas
            .get_mut(name)
            .and_then(|e| e.get_mut("oneOf"))
            .and_then(serde_json::Value::as_array_mut)
        {
            for variant in variants
                .iter_mut()
                .filter_map(serde_json::Value::as_object_mut)
            {
                variant.insert(
                    "additionalProperties".into(),
                    serde_json::Value::Bool(false),
                );
            }
        }
    }
    // The archive request's body is optional (none means now); utoipa marks every body
    // required.
    if let Some(body) = doc
        .pointer_mut("/paths/~1v1~1admin~1archive/post/requestBody")
        .and_then(serde_json::Value::as_object_mut)
    {
        body.insert("required".into(), serde_json::Value::Bool(false));
    }
    let one = serde_json::json!({"$ref": "#/components/schemas/AuditEvent"});
    if let Some(content) = doc
        .pointer_mut("/paths/~1v1~1records/post/requestBody/content/application~1json")
        .and_then(serde_json::Value::as_object_mut)
    {
        content.insert(
            "schema".into(),
            serde_json::json!({"oneOf": [
                one,
                {"type": "array", "minItems": 1,
                 "maxItems": veritrail_records::MAX_RECORDS_PER_REQUEST, "items": one}
            ]}),
        );
    }
    doc
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod constraints;

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
    use crate::error::{Internal, InvalidEntry, NotFound, Unauthenticated};
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
            ApiError::Unauthorized(Unauthenticated::NoValidToken),
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
                bound: crate::error::SizeBound::Committed,
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
            ApiError::WitnessQuorum {
                missing: vec!["w".into()],
            },
            ApiError::InvalidRecord {
                problems: Vec::new(),
            },
            ApiError::ConversationClosed {
                conversation: "c".into(),
            },
            ApiError::PayloadErased { erasure_index: 1 },
            ApiError::InTheFuture {
                name: "until",
                value: "2099-01-01T00:00:00Z".into(),
            },
            ApiError::Archived {
                index: 5,
                location: "s3://archive/log/bundles-0-4".into(),
                record: 1030,
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
                | ApiError::Unauthorized(_)
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
                | ApiError::WitnessQuorum { .. }
                | ApiError::InvalidRecord { .. }
                | ApiError::ConversationClosed { .. }
                | ApiError::PayloadErased { .. }
                | ApiError::Archived { .. }
                | ApiError::InTheFuture { .. }
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

    #[test]
    fn the_served_document_carries_the_event_schema_for_records() {
        let doc = with_event_schema(serde_json::to_value(crate::api_document()).unwrap());
        let event: serde_json::Value =
            serde_json::from_str(veritrail_records::EVENT_SCHEMA).unwrap();
        let component = &doc["components"]["schemas"]["AuditEvent"];
        assert_eq!(component["required"], event["required"]);
        assert_eq!(
            component["properties"]["action"],
            event["properties"]["action"]
        );
        assert_eq!(
            component["properties"]["details"]["additionalProperties"]["$ref"],
            "#/components/schemas/AuditEvent.value2"
        );
        assert!(doc["components"]["schemas"]["AuditEvent.value8"].is_object());
        let body = &doc["paths"]["/v1/records"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"]["oneOf"];
        assert_eq!(body[0]["$ref"], "#/components/schemas/AuditEvent");
        assert_eq!(body[1]["maxItems"], 1000);
        // No reference is left pointing into the standalone schema's own `$defs`.
        assert!(!doc.to_string().contains("#/$defs/"));
    }

    #[tokio::test]
    async fn every_documented_route_is_served_and_the_document_is_json() {
        let dir = tempfile::tempdir().unwrap();
        let signer = NoteSigner::generate(KeyName::new("test.example/log").unwrap()).unwrap();
        let store = store::open(Backend::Redb, dir.path()).unwrap();
        let ledger = Arc::new(Ledger::open(store, "test.example/log", signer).unwrap());
        let server = Server::start(ledger, ServerConfig::default(), Auth::disabled()).unwrap();
        let app = crate::app(server.state().clone());

        // The document of this server: no authentication, default limits, the event schema.
        let doc = with_event_schema(
            serde_json::to_value(crate::api_document_for(
                &Auth::disabled(),
                &ServerConfig::default().limits,
            ))
            .unwrap(),
        );
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
                assert!(served == doc, "/openapi.json is not this server's document");
            }
        }
        server.shutdown().await;
    }
}
