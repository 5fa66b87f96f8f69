//! The JSON bodies of successful responses. Hashes and proofs are standard base64 strings,
//! signed notes and receipts their UTF-8 text, exactly as `docs/api.md` documents them.

use serde::{Deserialize, Serialize};

/// One appended entry, as returned by `POST /v1/entries`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppendedEntry {
    /// The entry's index in the log.
    pub index: u64,
    /// RFC 6962 leaf hash of the entry, standard base64.
    pub leaf_hash: String,
    /// With `wait=published`: the signed checkpoint note covering the entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    /// With `wait=published`: the inclusion proof against that checkpoint, base64 hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inclusion_proof: Option<Vec<String>>,
    /// With `wait=published`: a `c2sp.org/tlog-proof@v1` receipt, verifiable offline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<String>,
}

/// One appended agent record, as returned by `POST /v1/records`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppendedRecord {
    /// The record's id (the client's, or the UUID the server generated).
    pub id: String,
    /// The record's index in the log.
    pub index: u64,
    /// RFC 6962 leaf hash of the record's leaf, standard base64.
    pub leaf_hash: String,
    /// The leaf as stored, standard base64: `0x01 ‖` the canonical JSON of the record (the
    /// event plus the server's fields). A client checks it hashes to `leaf_hash`, holds its
    /// event unchanged, and verifies the receipt with it.
    pub leaf: String,
    /// With `wait=published`: the signed checkpoint note covering the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    /// With `wait=published`: the inclusion proof against that checkpoint, base64 hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inclusion_proof: Option<Vec<String>>,
    /// With `wait=published`: a `c2sp.org/tlog-proof@v1` receipt of the record's leaf.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<String>,
}

/// The response of `POST /v1/records`: one element per record, in the request's order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordsResponse {
    /// The records, in order.
    pub records: Vec<AppendedRecord>,
}

/// One record of a query result, with its inclusion proof for the page's checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProvenRecord {
    /// The record's index.
    pub index: u64,
    /// The stored record as JSON; its leaf is `0x01 ‖` its RFC 8785 canonical encoding.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub record: serde_json::Value,
    /// The inclusion proof for the page's tree size, base64 hashes.
    pub proof: Vec<String>,
}

/// One page of `GET /v1/records?...`: the matching records below `size`, from the cursor
/// on, in index order, each proven against the one checkpoint given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordsPage {
    /// The signed checkpoint note every proof is for.
    pub checkpoint: String,
    /// Its tree size.
    pub size: u64,
    /// The matching records, in index order.
    pub records: Vec<ProvenRecord>,
    /// Where the next page starts (`cursor=`), or null when there is no more below `size`.
    pub next_cursor: Option<u64>,
}

/// One page of `GET /v1/conversations/<id>`: the conversation's records in index order, each
/// proven against the one checkpoint given, and the log's signed statement of the
/// conversation's head at that checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationPage {
    /// The signed checkpoint note every proof is for.
    pub checkpoint: String,
    /// Its tree size.
    pub size: u64,
    /// The head statement: a note signed by the log's key naming the conversation's last
    /// record below `size` (`veritrail_records::HeadStatement`).
    pub head: String,
    /// The conversation's records from the cursor on, in index order.
    pub records: Vec<ProvenRecord>,
    /// Where the next page starts (`cursor=`), or null after the head.
    pub next_cursor: Option<u64>,
}

/// One stored record with its inclusion proof, as returned by `GET /v1/records/<index>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordWithProof {
    /// The record's index.
    pub index: u64,
    /// The stored record as JSON; its leaf is `0x01 ‖` its RFC 8785 canonical encoding.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub record: serde_json::Value,
    /// RFC 6962 leaf hash of that leaf, standard base64.
    pub leaf_hash: String,
    /// The tree size the proof is for: the latest signed checkpoint's.
    pub size: u64,
    /// The inclusion proof, base64 hashes.
    pub proof: Vec<String>,
    /// The signed checkpoint note of that size.
    pub checkpoint: String,
}

/// The response of `POST /v1/entries`: one object for a raw entry, an array for a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum AppendResponse {
    /// `Content-Type: application/octet-stream` (or any type but the batch type).
    One(AppendedEntry),
    /// `Content-Type: application/x-veritrail-entries`: one element per entry, in order.
    Batch(Vec<AppendedEntry>),
}

/// An inclusion proof, as returned by `GET /v1/proof/inclusion` and
/// `GET /v1/proof/inclusion/by-leaf-hash`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InclusionProofResponse {
    /// The leaf index.
    pub index: u64,
    /// The tree size the proof is for.
    pub tree_size: u64,
    /// The audit path, leaf's sibling first, base64 hashes.
    pub proof: Vec<String>,
}

/// A consistency proof, as returned by `GET /v1/proof/consistency`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsistencyProofResponse {
    /// The old tree size.
    pub old: u64,
    /// The new tree size.
    pub tree_size: u64,
    /// The proof, base64 hashes.
    pub proof: Vec<String>,
}

/// An entry with its inclusion proof, as returned by `GET /v1/entries/{index}?proof=1`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EntryWithProof {
    /// The leaf index.
    pub index: u64,
    /// The entry bytes, standard base64.
    pub entry: String,
    /// Its leaf hash, standard base64.
    pub leaf_hash: String,
    /// The size of the latest checkpoint the proof is against.
    pub tree_size: u64,
    /// The inclusion proof, base64 hashes.
    pub proof: Vec<String>,
    /// The latest signed checkpoint note.
    pub checkpoint: String,
}

/// What `/healthz` and `/readyz` report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// `/healthz`: the process is up.
    Ok,
    /// `/readyz`: the server takes appends and serves reads.
    Ready,
    /// `/readyz`: the server is not ready; see the reason.
    Unavailable,
}

/// Health status, as returned by `/healthz` and `/readyz`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// `ok`, `ready` or `unavailable`.
    pub status: HealthStatus,
    /// The committed tree size (readiness only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree_size: Option<u64>,
    /// The latest published checkpoint size (readiness only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_size: Option<u64>,
    /// Why the server is not ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn optional_fields_are_omitted_and_read_back() {
        let one = AppendedEntry {
            index: 3,
            leaf_hash: "AAAA".into(),
            checkpoint: None,
            inclusion_proof: None,
            receipt: None,
        };
        let json = serde_json::to_string(&one).unwrap();
        assert_eq!(json, r#"{"index":3,"leaf_hash":"AAAA"}"#);
        assert_eq!(serde_json::from_str::<AppendedEntry>(&json).unwrap(), one);
        let health = Health {
            status: HealthStatus::Ok,
            tree_size: None,
            published_size: None,
            reason: None,
        };
        assert_eq!(
            serde_json::to_string(&health).unwrap(),
            r#"{"status":"ok"}"#
        );
    }

    #[test]
    fn an_append_answer_is_an_object_or_an_array() {
        let batch: AppendResponse =
            serde_json::from_str(r#"[{"index":0,"leaf_hash":"x"}]"#).unwrap();
        assert!(matches!(batch, AppendResponse::Batch(ref v) if v.len() == 1));
        let one: AppendResponse = serde_json::from_str(r#"{"index":0,"leaf_hash":"x"}"#).unwrap();
        assert!(matches!(one, AppendResponse::One(_)));
    }
}

/// A legal hold in force (`POST /v1/admin/holds`, `GET /v1/admin/holds`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HoldInForce {
    /// Its name: the index of the `x-veritrail.legal_hold` record that placed it.
    pub hold: u64,
    /// What it covers: one of `conversation_id`, `actor`, `resource` (strings) or `range`
    /// (`{"first", "end"}`).
    #[cfg_attr(feature = "openapi", schema(value_type = Object, example = json!({"conversation_id": "c-9"})))]
    pub scope: serde_json::Value,
    /// Why it was placed.
    pub reason: String,
}

/// The response of `GET /v1/admin/holds`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HoldsResponse {
    /// The holds in force, oldest first.
    pub holds: Vec<HoldInForce>,
    /// The tree size they were read at (the latest checkpoint's).
    pub size: u64,
}

/// The response of `POST /v1/admin/holds/{hold}/release`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HoldReleased {
    /// The hold released.
    pub hold: u64,
    /// The index of the `x-veritrail.legal_hold_released` record.
    pub release: u64,
}

/// One archive written, verified and purged (`POST /v1/admin/archive`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ArchivedBundles {
    /// The first bundle archived.
    pub first_bundle: u64,
    /// The bundle after the last one archived.
    pub end_bundle: u64,
    /// Where the archive is.
    pub location: String,
    /// The SHA-256 (hex) of its signed manifest.
    pub manifest_sha256: String,
    /// The index of the `x-veritrail.archive_purge` record.
    pub record: u64,
    /// Bytes in the archive.
    pub bytes: u64,
}

/// The response of `POST /v1/admin/archive`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ArchiveResponse {
    /// The archives written, verified and purged by this run, in order.
    pub archived: Vec<ArchivedBundles>,
    /// Expired bundles a legal hold keeps.
    pub held: u64,
    /// Bundles purged by earlier runs.
    pub already_purged: u64,
}
