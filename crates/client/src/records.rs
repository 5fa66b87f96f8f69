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

/// Proves one record of a query or conversation page against the page's checkpoint (note
/// text `checkpoint`), signed by `log_key`.
fn prove(
    item: &veritrail_api::ProvenRecord,
    checkpoint: &str,
    log_key: &NoteVerifier,
    origin: Option<&str>,
) -> Result<VerifiedRecord, ClientError> {
    let index = item.index;
    let mismatch = |problem: String| ClientError::RecordMismatch { index, problem };
    let leaf = veritrail_records::leaf_of(&item.record).map_err(|e| mismatch(e.to_string()))?;
    let proof = item
        .proof
        .iter()
        .map(|h| Hash::from_base64(h))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| mismatch(format!("proof: {e}")))?;
    let note = Note::from_bytes(checkpoint.as_bytes())
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
        record: item.record.clone(),
        leaf,
        checkpoint,
    })
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
    let item = veritrail_api::ProvenRecord {
        index,
        record: answer.record,
        proof: answer.proof,
    };
    prove(&item, &answer.checkpoint, log_key, origin)
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

/// A query's answer, every record proven.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedQuery {
    /// The matching records, in index order.
    pub records: Vec<VerifiedRecord>,
    /// The tree size the last page searched below.
    pub size: u64,
}

impl VerifiedQuery {
    /// Checks the answer against records the auditor already holds proven (from receipts,
    /// an earlier query, a monitor's replay): every one of them that matches `filter` and
    /// lies below the answer's tree size must be in it. This is how a record left out of a
    /// query result is caught: the server cannot know which records the auditor holds.
    ///
    /// # Errors
    /// [`ClientError::QueryIncomplete`] naming the first known record the answer left out.
    pub fn check_includes(
        &self,
        filter: &veritrail_records::Filter,
        known: &[VerifiedRecord],
    ) -> Result<(), ClientError> {
        for record in known {
            if record.index < self.size
                && filter.matches(&record.record)
                && !self
                    .records
                    .iter()
                    .any(|r| r.index == record.index && r.leaf == record.leaf)
            {
                return Err(ClientError::QueryIncomplete {
                    missing: record.index,
                });
            }
        }
        Ok(())
    }
}

/// Runs a record query to its end and proves every answer: each page's checkpoint is signed
/// by `log_key` (for `origin`, by default the key's name), each record's inclusion proof
/// leads to that checkpoint's root, each record matches `filter`, and the indices increase
/// from page to page without leaving the range the server claims to have searched.
/// `progress` is called with the records found so far and the index reached.
///
/// What this cannot show on its own: that the server left no matching record out of a page.
/// [`VerifiedQuery::check_includes`] catches an omission of any record the auditor already
/// holds; for a conversation, [`verified_conversation`] proves it complete to its signed head.
///
/// # Errors
/// [`ClientError::RecordMismatch`] when anything does not verify; transport and API errors.
pub async fn verified_query(
    client: &LogClient,
    filter: &veritrail_records::Filter,
    log_key: &NoteVerifier,
    origin: Option<&str>,
    progress: &mut dyn FnMut(usize, u64),
) -> Result<VerifiedQuery, ClientError> {
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
            found.push(prove(item, &page.checkpoint, log_key, origin)?);
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
                return Ok(VerifiedQuery {
                    records: found,
                    size: page.size,
                });
            }
        }
    }
}

/// A conversation proven complete at one checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedConversation {
    /// Its records, first to last, each proven in the log.
    pub records: Vec<VerifiedRecord>,
    /// Its chain: the indices and whether it is closed.
    pub chain: Option<veritrail_records::Chain>,
    /// The log's signed statement of its head at that checkpoint.
    pub head: veritrail_records::HeadStatement,
    /// The statement's note bytes: with a later record of the conversation and its proof,
    /// evidence that the log lied ([`veritrail_records::head::refutes`]).
    pub head_note: Vec<u8>,
}

/// Fetches a conversation and proves it complete at one checkpoint signed by `log_key`:
/// every record is proven in the log and belongs to the conversation, the records form one
/// chain from the conversation's first record ([`veritrail_records::verify_chain`]), and the
/// log's signed head statement names the chain's last record at that same checkpoint.
/// If the log grows between pages, the conversation is fetched again (at most 3 times).
///
/// # Errors
/// [`ClientError::ConversationIncomplete`] (a record withheld, inserted or reordered),
/// [`ClientError::HeadMismatch`] (a stale or lying head), [`ClientError::RecordMismatch`];
/// transport and API errors.
pub async fn verified_conversation(
    client: &LogClient,
    conversation: &str,
    log_key: &NoteVerifier,
    origin: Option<&str>,
) -> Result<VerifiedConversation, ClientError> {
    let mut attempts = 0;
    'fetch: loop {
        attempts += 1;
        let mut pages = Vec::new();
        let mut cursor = 0;
        loop {
            let page = client.conversation_page(conversation, cursor).await?;
            if pages
                .first()
                .is_some_and(|p: &veritrail_api::ConversationPage| p.size != page.size)
            {
                if attempts < 3 {
                    continue 'fetch;
                }
                return Err(ClientError::WrongAnswer {
                    what: "tree size",
                    asked: pages.first().map_or(0, |p| p.size),
                    got: page.size,
                });
            }
            let next = page.next_cursor;
            pages.push(page);
            match next {
                Some(next) if next > cursor => cursor = next,
                Some(next) => {
                    return Err(ClientError::RecordMismatch {
                        index: next,
                        problem: format!("a next cursor that does not advance from {cursor}"),
                    });
                }
                None => break,
            }
        }
        return check_conversation(conversation, &pages, log_key, origin);
    }
}

fn check_conversation(
    conversation: &str,
    pages: &[veritrail_api::ConversationPage],
    log_key: &NoteVerifier,
    origin: Option<&str>,
) -> Result<VerifiedConversation, ClientError> {
    let head_error = |reason| ClientError::HeadMismatch {
        conversation: conversation.to_owned(),
        reason: Box::new(reason),
    };
    let mut records: Vec<VerifiedRecord> = Vec::new();
    let mut checkpoint = None;
    for page in pages {
        for item in &page.records {
            let index = item.index;
            let mismatch = |problem: String| ClientError::RecordMismatch { index, problem };
            if item.record.get("conversation_id").and_then(|c| c.as_str()) != Some(conversation) {
                return Err(mismatch(format!("is not a record of {conversation:?}")));
            }
            let proven = prove(item, &page.checkpoint, log_key, origin)?;
            checkpoint = Some(proven.checkpoint.clone());
            records.push(proven);
        }
    }
    let last_page = pages.last().ok_or_else(|| ClientError::RecordMismatch {
        index: 0,
        problem: "no page".into(),
    })?;
    let checkpoint = match checkpoint {
        Some(c) => c,
        None => {
            let note = Note::from_bytes(last_page.checkpoint.as_bytes()).map_err(|e| {
                ClientError::RecordMismatch {
                    index: 0,
                    problem: format!("checkpoint: {e}"),
                }
            })?;
            veritrail_ledger::checkpoint::Checkpoint::verify_note(
                &note,
                origin.unwrap_or(log_key.name().as_str()),
                log_key,
            )
            .map_err(|e| ClientError::RecordMismatch {
                index: 0,
                problem: format!("checkpoint: {e}"),
            })?
        }
    };
    let chain = if records.is_empty() {
        None
    } else {
        let links: Vec<(u64, &[u8])> = records
            .iter()
            .map(|r| (r.index, r.leaf.as_slice()))
            .collect();
        Some(veritrail_records::verify_chain(&links).map_err(|reason| {
            ClientError::ConversationIncomplete {
                conversation: conversation.to_owned(),
                reason: Box::new(reason),
            }
        })?)
    };
    let head = veritrail_records::HeadStatement::verify(last_page.head.as_bytes(), log_key)
        .map_err(head_error)?;
    let last = records.last().map(|r| veritrail_records::Prev {
        index: r.index,
        leaf_hash: veritrail_ledger::leaf_hash(&r.leaf),
    });
    head.check(conversation, &checkpoint, last.as_ref())
        .map_err(head_error)?;
    Ok(VerifiedConversation {
        records,
        chain,
        head,
        head_note: last_page.head.as_bytes().to_vec(),
    })
}
