//! The HTTP handlers, one module per concern, and `router`, which registers each with its
//! `#[utoipa::path]` description so that the OpenAPI document is derived from the very router
//! that serves requests.
//!
//! - `append`: `POST /v1/entries`;
//! - `records`: agent records, `POST /v1/records`, `GET /v1/records/<index>` and the event
//!   schema;
//! - `queries`: `GET /v1/records?...`, answered from the record indexes with proofs;
//! - `tiles`: the C2SP tlog-tiles read path (`/checkpoint`, hash tiles, entry bundles);
//! - `proofs`: entries, inclusion and consistency proofs, the checkpoint history;
//! - `operations`: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`.
//!
//! Request bodies are parsed in `crate::body`, query and path parameters in
//! `crate::query`, fallbacks and middleware live in `crate::middleware`.

pub(crate) mod append;
mod archive;
mod holds;
pub(crate) mod ledger;
mod operations;
mod otlp;
mod proofs;
pub(crate) mod queries;
pub(crate) mod records;
pub(crate) mod reply;
mod tiles;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) use operations::OpenApiJson;
pub(crate) use records::submitter;
pub use veritrail_api::media::BATCH_CONTENT_TYPE;
pub use veritrail_api::{
    AppendedEntry, ConsistencyProofResponse, EntryWithProof, Health, InclusionProofResponse,
};

use crate::AppState;

/// Every route with its OpenAPI operation, on top of the document's skeleton
/// ([`crate::openapi::skeleton`]). A route can only be added here through `routes!`, which
/// takes both the handler and its description: there is no undocumented route.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    [
        routes!(append::append),
        routes!(records::append_records, queries::query),
        routes!(queries::conversation),
        routes!(records::record),
        routes!(records::event_schema),
        routes!(records::payload),
        routes!(records::erase),
        routes!(holds::place, holds::list),
        routes!(holds::release),
        routes!(archive::archive),
        routes!(otlp::traces),
        routes!(otlp::logs),
        routes!(proofs::entry),
        routes!(proofs::inclusion_proof),
        routes!(proofs::inclusion_proof_by_leaf_hash),
        routes!(proofs::consistency_proof),
        routes!(proofs::checkpoint_at),
        routes!(tiles::checkpoint),
        routes!(tiles::hash_tile),
        routes!(tiles::entry_bundle),
        routes!(operations::healthz),
        routes!(operations::readyz),
        routes!(operations::metrics),
        routes!(operations::document),
    ]
    .into_iter()
    .fold(
        OpenApiRouter::with_openapi(crate::openapi::skeleton()),
        OpenApiRouter::routes,
    )
}
