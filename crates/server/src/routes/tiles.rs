//! The C2SP tlog-tiles read path: `GET /checkpoint`, hash tiles (`GET /tile/<L>/...`, public)
//! and entry bundles (`GET /tile/entries/...`, role `read`), two routes so that each has its
//! own access rule and path grammar.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use veritrail_api::ErrorBody;
use veritrail_api::media::{BINARY_CONTENT_TYPE, NOTE_CONTENT_TYPE};
use veritrail_ledger::tile::{TileError, TileId, TileKind};

use crate::AppState;
use crate::error::{ApiError, NotFound};
use crate::openapi::{
    AccessErrors, EntryBundle, EntryBundlePath, HashTile, HashTilePath, InternalError, TimeoutError,
};
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

/// `GET /tile/<L>/<N>[.p/<W>]`: a hash tile.
#[utoipa::path(
    get,
    // `{*path}`: axum's catch-all (tile paths hold `/`); `openapi::finish` writes it `{path}`.
    path = "/tile/{*path}",
    tag = "tlog-tiles",
    summary = "A hash tile (C2SP tlog-tiles v0.1.0)",
    description = "Hash tile `tile/<L>/<N>[.p/<W>]`: the hashes of tree level 8L numbered \
256N to 256N+W-1. Public: it holds hashes only, which C2SP witnesses and monitors need. Full \
tiles are served `Cache-Control: public, max-age=31536000, immutable`, partial ones \
`public, max-age=60`. A partial tile of width W is served as long as the committed tree holds \
at least W hashes of that tile.",
    params(
        ("path" = HashTilePath, Path,
            description = "The tile path after `/tile/` (its `/` are not percent-encoded): \
`<L>/<N>[.p/<W>]`, L the level (0 to 63), N the tile index in 3-digit groups, all but the last \
prefixed with `x` (1234067 is `x001/x234/067`), W the width of a partial tile (1 to 255)"),
    ),
    responses(
        (status = 200, description = "W (or 256) 32-byte hashes", body = HashTile,
            content_type = "application/octet-stream"),
        (status = 404, description = "`not_found`: not a canonical hash tile path, or beyond \
the committed tree", body = ErrorBody),
        TimeoutError,
        InternalError,
    )
)]
pub(crate) async fn hash_tile(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(path) = path.map_err(|e| NotFound::TilePathEncoding(e.body_text()))?;
    let tile = parse(&path)?;
    if tile.kind() == TileKind::Entries {
        // Only through a percent-encoded `/` (`/tile/entries%2F000`): bundles are served by
        // `entry_bundle`, behind its role, never here.
        return Err(NotFound::TilePath {
            path,
            source: TileError::NotATilePath,
        }
        .into());
    }
    serve(&state, tile).await
}

/// `GET /tile/entries/<N>[.p/<W>]`: an entry bundle.
#[utoipa::path(
    get,
    path = "/tile/entries/{*path}",
    tag = "tlog-tiles",
    summary = "An entry bundle (C2SP tlog-tiles v0.1.0)",
    description = "Entry bundle `tile/entries/<N>[.p/<W>]`: entries 256N to 256N+W-1, each \
prefixed by its length as a big-endian u16. Every entry of the bundle is checked against its \
leaf hash in the level-0 tile before it is served (for a full bundle all 256, whatever the \
width asked); a bundle holding one that does not match is never served (500 `corrupted`). \
Role: `read` (or `audit`, `admin`), or none with `--public-read`. Cached like hash tiles.",
    params(
        ("path" = EntryBundlePath, Path,
            description = "The bundle path after `/tile/entries/`: `<N>[.p/<W>]`, N in 3-digit \
groups with `x` prefixes, W the width of a partial bundle (1 to 255)"),
    ),
    responses(
        (status = 200, description = "W (or 256) entries, each prefixed by its length as a \
big-endian u16", body = EntryBundle, content_type = "application/octet-stream"),
        AccessErrors,
        (status = 404, description = "`not_found`: not a canonical bundle path, or beyond the \
committed tree", body = ErrorBody),
        (status = 410, description = "`archived`: the bundle was archived and purged from this \
server (C2SP tlog-tiles pruning); the message names the archive", body = ErrorBody),
        TimeoutError,
        (status = 500, description = "`corrupted`: an entry of the bundle does not hash to its \
leaf hash (the bundle is not served, and `/readyz` fails); or `internal`: detail in the \
server log", body = ErrorBody),
    ),
    security(("bearer" = ["read"]))
)]
pub(crate) async fn entry_bundle(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    // Before the path is looked at: without the role nothing is parsed or read.
    state.auth.require_read(&headers)?;
    let Path(path) = path.map_err(|e| NotFound::TilePathEncoding(e.body_text()))?;
    let tile = parse(&format!("entries/{path}"))?;
    serve(&state, tile).await
}

/// Parses the path after `/tile/`.
fn parse(path: &str) -> Result<TileId, ApiError> {
    TileId::from_path(&format!("tile/{path}")).map_err(|source| {
        NotFound::TilePath {
            path: path.to_owned(),
            source,
        }
        .into()
    })
}

/// Reads a tile from the committed tree, with its cache policy.
async fn serve(state: &AppState, tile: TileId) -> Result<Response, ApiError> {
    let read = blocking(state, move |ledger| ledger.read_tile(&tile)).await;
    let bytes = match read {
        // Purged here: from the archive the server re-serves (`serve --archive`), checked.
        Err(archived @ ApiError::Archived { .. }) if tile.kind() == TileKind::Entries => {
            match crate::archive::read_archived(state, tile.index()).await? {
                Some(full) => {
                    let len: usize = veritrail_ledger::bundle::iter_bundle(&full)
                        .take(usize::from(tile.width()))
                        .map(|e| e.map(|e| 2 + e.len()).unwrap_or(0))
                        .sum();
                    full.get(..len).map(<[u8]>::to_vec).unwrap_or(full)
                }
                None => return Err(archived),
            }
        }
        other => other.map_err(|e| match e {
            ApiError::SizeOutOfRange { .. } => {
                ApiError::NotFound(NotFound::TileBeyondTree { path: tile.path() })
            }
            other => other,
        })?,
    };
    let cache = if tile.is_full() {
        IMMUTABLE
    } else {
        "public, max-age=60"
    };
    Ok(typed(BINARY_CONTENT_TYPE, Some(cache), bytes))
}
