//! Agent records, verified: a record proven in the log against the pinned key, and a payload
//! proven to be the one its record commits to.

use veritrail_ledger::note::NoteVerifier;
use veritrail_ledger::receipt::Receipt;
use veritrail_ledger::{Hash, checkpoint::Checkpoint, note::Note};

use crate::error::ClientError;
use crate::http::LogClient;
use crate::verify::verify_receipt;

/// A record proven to be in the log.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedRecord {
    /// Its index.
    pub index: u64,
    /// The record.
    pub record: serde_json::Value,
    /// Its leaf, `0x01 ‖` the canonical JSON of `record`.
    pub leaf: Vec<u8>,
    /// The signed checkpoint it was proven against.
    pub checkpoint: Checkpoint,
}

/// A payload proven to be the one its record commits to.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedPayload {
    /// The record it belongs to.
    pub record: VerifiedRecord,
    /// Its name.
    pub name: String,
    /// Its media type, as the record states it.
    pub media_type: String,
    /// Its bytes.
    pub payload: Vec<u8>,
}

/// Fetches the record at `index` and proves it: its leaf is recomputed from the JSON, and the
/// inclusion proof must lead from it to the root of a checkpoint signed by `log_key` (for
/// `origin`, by default the key's name).
///
/// # Errors
/// [`ClientError::RecordMismatch`] when the record or its proof does not verify; transport
/// and API errors.
pub async fn verified_record(
    client: &LogClient,
    index: u64,
    log_key: &NoteVerifier,
    origin: Option<&str>,
) -> Result<VerifiedRecord, ClientError> {
    let answer = client.record(index).await?;
    let mismatch = |problem: String| ClientError::RecordMismatch { index, problem };
    let leaf = veritrail_records::leaf_of(&answer.record).map_err(|e| mismatch(e.to_string()))?;
    let proof = answer
        .proof
        .iter()
        .map(|h| Hash::from_base64(h))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| mismatch(format!("proof: {e}")))?;
    let note = Note::from_bytes(answer.checkpoint.as_bytes())
        .map_err(|e| mismatch(format!("checkpoint: {e}")))?;
    let receipt = Receipt {
        extra: None,
        index,
        proof,
        checkpoint: note,
    };
    let (_, checkpoint) = verify_receipt(&receipt.to_bytes(), &leaf, log_key, origin)
        .map_err(|e| mismatch(format!("the record is not proven in the log: {e}")))?;
    Ok(VerifiedRecord {
        index,
        record: answer.record,
        leaf,
        checkpoint,
    })
}

/// Fetches the payload `name` of the record at `index` and proves it: the record is proven
/// in the log ([`verified_record`]), and the payload with its opening key must open the
/// record's commitment.
///
/// # Errors
/// [`ClientError::RecordMismatch`] when anything does not verify; transport and API errors
/// (`payload_erased` after an erasure, naming the erasure record).
pub async fn verified_payload(
    client: &LogClient,
    index: u64,
    name: &str,
    log_key: &NoteVerifier,
    origin: Option<&str>,
) -> Result<VerifiedPayload, ClientError> {
    let record = verified_record(client, index, log_key, origin).await?;
    let mismatch = |problem: String| ClientError::RecordMismatch { index, problem };
    let commitment = veritrail_records::payload::stored_commitment(&record.record, name)
        .ok_or_else(|| mismatch(format!("the record commits to no payload {name:?}")))?;
    let stated = record
        .record
        .get("payloads")
        .and_then(|p| p.get(name))
        .and_then(|p| p.get("media_type"))
        .and_then(|m| m.as_str())
        .unwrap_or_default()
        .to_owned();
    let (media_type, payload, opening_key) = client.payload(index, name).await?;
    if media_type != stated {
        return Err(mismatch(format!(
            "payload {name:?} is served as {media_type:?}, the record says {stated:?}"
        )));
    }
    if !veritrail_records::payload::opens(&commitment, &opening_key, &payload) {
        return Err(mismatch(format!(
            "payload {name:?} does not open the record's commitment"
        )));
    }
    Ok(VerifiedPayload {
        record,
        name: name.to_owned(),
        media_type,
        payload,
    })
}
