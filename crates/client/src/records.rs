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

/// Runs a record query to its end and proves every answer: each page's checkpoint is signed
/// by `log_key` (for `origin`, by default the key's name), each record's inclusion proof
/// leads to that checkpoint's root, each record matches `filter`, and the indices increase
/// from page to page without leaving the range the server claims to have searched.
/// `progress` is called with the records found so far and the index reached.
///
/// What this cannot show on its own: that the server left no matching record out of a page.
/// For a conversation, [`veritrail_records::verify_chain`] over the answer proves that none
/// was left out between its first record and its last.
///
/// # Errors
/// [`ClientError::RecordMismatch`] when anything does not verify; transport and API errors.
pub async fn verified_query(
    client: &LogClient,
    filter: &veritrail_records::Filter,
    log_key: &NoteVerifier,
    origin: Option<&str>,
    progress: &mut dyn FnMut(usize, u64),
) -> Result<Vec<VerifiedRecord>, ClientError> {
    let mut found: Vec<VerifiedRecord> = Vec::new();
    let mut cursor = 0u64;
    loop {
        let page = client.query_page(filter, cursor, 1000).await?;
        for item in &page.records {
            let index = item.index;
            let mismatch = |problem: String| ClientError::RecordMismatch { index, problem };
            if index < cursor || index >= page.size {
                return Err(mismatch(format!(
                    "answered for the range {cursor}..{}",
                    page.size
                )));
            }
            if found.last().is_some_and(|last| last.index >= index) {
                return Err(mismatch("out of order or repeated".into()));
            }
            if !filter.matches(&item.record) {
                return Err(mismatch("does not match the query".into()));
            }
            let leaf =
                veritrail_records::leaf_of(&item.record).map_err(|e| mismatch(e.to_string()))?;
            let proof = item
                .proof
                .iter()
                .map(|h| Hash::from_base64(h))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| mismatch(format!("proof: {e}")))?;
            let note = Note::from_bytes(page.checkpoint.as_bytes())
                .map_err(|e| mismatch(format!("checkpoint: {e}")))?;
            let receipt = Receipt {
                extra: None,
                index,
                proof,
                checkpoint: note,
            };
            let (_, checkpoint) = verify_receipt(&receipt.to_bytes(), &leaf, log_key, origin)
                .map_err(|e| mismatch(format!("the record is not proven in the log: {e}")))?;
            found.push(VerifiedRecord {
                index,
                record: item.record.clone(),
                leaf,
                checkpoint,
            });
        }
        match page.next_cursor {
            Some(next) if next > cursor && next <= page.size => {
                progress(found.len(), next);
                cursor = next;
            }
            Some(next) => {
                return Err(ClientError::RecordMismatch {
                    index: next,
                    problem: format!("a next cursor that does not advance from {cursor}"),
                });
            }
            None => {
                progress(found.len(), page.size);
                return Ok(found);
            }
        }
    }
}
