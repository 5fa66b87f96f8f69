//! `GET /openapi.json`: the OpenAPI document of the JSON API, generated from the code.

use axum::Json;
use utoipa::OpenApi;

/// The OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Veritrail",
        description = "Tamper-evident audit ledger: appends, C2SP tiles, proofs"
    ),
    components(schemas(
        crate::routes::AppendedEntry,
        crate::routes::InclusionProofResponse,
        crate::routes::ConsistencyProofResponse,
        crate::routes::EntryWithProof,
        crate::routes::Health,
    ))
)]
pub struct ApiDoc;

/// `GET /openapi.json`
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
