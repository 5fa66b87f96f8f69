//! The C2SP tlog-tiles read path: `GET /checkpoint` and `GET /tile/...`.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use veritrail_api::ErrorBody;
use veritrail_api::media::{BINARY_CONTENT_TYPE, NOTE_CONTENT_TYPE};
use veritrail_ledger::tile::{TileId, TileKind};

use crate::AppState;
use crate::error::{ApiError, NotFound};
use crate::openapi::{AccessErrors, Binary, InternalError, TimeoutError};
use crate::routes::ledger::{blocking, latest};
use crate::routes::reply::{IMMUTABLE, typed};

/// `GET /checkpoint`
#[utoipa::path(
    get,
    path = "/checkpoint",
    tag = "tlog-tiles",
    summary = "The latest signed checkpoint (C2SP tlog-checkpoint note)",
    description = "`<origin>\\n<tree size>\\n<base64 root>\\n\\n— <key name> <signature>\\n`. \
`Cache-Control: public, max-age=1`. Public.",
    responses(
        (status = 200, description = "The signed note", body = String,
            content_type = "text/plain; charset=utf-8"),
        (status = 404, description = "`not_found`: no checkpoint has been published yet", body = ErrorBody),
        TimeoutError,
        InternalError,
    )
)]
pub(crate) async fn checkpoint(State(state): State<AppState>) -> Result<Response, ApiError> {
    let published = latest(&state)?;
    Ok(typed(
        NOTE_CONTENT_TYPE,
        Some("public, max-age=1"),
        published.checkpoint.note.clone(),
    ))
}

/// `GET /tile/<L>/<N>[.p/<W>]` and `GET /tile/entries/<N>[.p/<W>]`
#[utoipa::path(
    get,
    // `{*path}`: axum's catch-all (tile paths hold `/`); `openapi::finish` writes it `{path}`.
    path = "/tile/{*path}",
    tag = "tlog-tiles",
    summary = "A hash tile or an entry bundle (C2SP tlog-tiles v0.1.0)",
    description = "Hash tiles `tile/<L>/<N>[.p/<W>]` are public; entry bundles \
`tile/entries/<N>[.p/<W>]` need `read` unless the server runs with `--public-read`. Every \
entry of a bundle is checked against its leaf hash in the level-0 tile before the bundle is \
served (for a full bundle, all 256, whatever the width asked); a bundle holding one that does \
not match is never served (500 `corrupted`). Full tiles are served \
`Cache-Control: public, max-age=31536000, immutable`, partial ones `public, max-age=60`.",
    params(
        ("path" = String, Path, example = "0/x001/x234/067.p/5",
            description = "The tile path after `/tile/` (its `/` are not percent-encoded): \
`<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]`, N in 3-digit groups with `x` prefixes"),
    ),
    responses(
        (status = 200, description = "Hash tile: W (or 256) 32-byte hashes. Entry bundle: W \
(or 256) entries, each prefixed by its length as a big-endian u16", body = Binary,
            content_type = "application/octet-stream"),
        AccessErrors,
        (status = 404, description = "`not_found`: not a canonical tile path, or beyond the \
committed tree", body = ErrorBody),
        TimeoutError,
        (status = 500, description = "`corrupted`: an entry of the bundle does not hash to its \
leaf hash (the bundle is not served, and `/readyz` fails); or `internal`: detail in the \
server log", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub(crate) async fn tile(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(path) = path.map_err(|e| NotFound::TilePathEncoding(e.body_text()))?;
    let tile = TileId::from_path(&format!("tile/{path}")).map_err(|source| NotFound::TilePath {
        path: path.clone(),
        source,
    })?;
    if tile.kind() == TileKind::Entries {
        state.auth.require_read(&headers)?;
    }
    let bytes = blocking(&state, move |ledger| ledger.read_tile(&tile))
        .await
        .map_err(|e| match e {
            ApiError::SizeOutOfRange { .. } => {
                ApiError::NotFound(NotFound::TileBeyondTree { path: tile.path() })
            }
            other => other,
        })?;
    let cache = if tile.is_full() {
        IMMUTABLE
    } else {
        "public, max-age=60"
    };
    Ok(typed(BINARY_CONTENT_TYPE, Some(cache), bytes))
}
