//! What handlers share to reach the ledger and the published checkpoint.

use veritrail_ledger::Hash;

use crate::AppState;
use crate::error::{ApiError, Internal, NotFound};
use crate::publisher::Published;

/// Runs a ledger call on the blocking pool (proofs hash and read tiles from disk). Stored
/// data the ledger refuses as corrupted is recorded in [`crate::integrity`] (counted, and
/// `/readyz` fails from then on).
pub(crate) async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&veritrail_ledger::Ledger) -> Result<T, veritrail_ledger::Error> + Send + 'static,
) -> Result<T, ApiError> {
    let ledger = state.ledger.clone();
    tokio::task::spawn_blocking(move || f(&ledger))
        .await
        .map_err(|source| Internal::Task {
            what: "ledger",
            source,
        })?
        .map_err(|err| {
            let err = ApiError::from(err);
            if let ApiError::Corrupted { what } = &err {
                state.integrity.record(what);
            }
            err
        })
}

/// The latest published checkpoint.
///
/// # Errors
/// [`NotFound::NoCheckpointYet`] before the first one.
pub(crate) fn latest(state: &AppState) -> Result<Published, ApiError> {
    state
        .published
        .borrow()
        .clone()
        .ok_or(ApiError::NotFound(NotFound::NoCheckpointYet))
}

/// Hashes as the API sends them: standard base64.
pub(crate) fn b64(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(Hash::to_base64).collect()
}
