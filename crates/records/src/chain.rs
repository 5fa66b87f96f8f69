//! Conversation chains as an auditor checks them: the records a server presents as one
//! conversation must link, each to the one before it by index and leaf hash (`prev`), from a
//! first record without a link to the last. A record withheld from the middle, a record of
//! another conversation slipped in, a reordered or altered record: each breaks a link.
//!
//! What this does not show by itself: that the last record presented is the conversation's
//! last in the log (a server may withhold the tail). A closed conversation ends with
//! `conversation_ended`; for an open one the auditor needs the conversation's head from
//! another source (a later query API with proofs of the head).

use serde_json::Value;
use veritrail_ledger::{Hash, leaf_hash};

use crate::record::{Prev, parse_leaf};

/// Why records do not form one conversation's chain.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// No records were given.
    #[error("no records")]
    Empty,
    /// A leaf is not a record.
    #[error("entry {index} is not a record: {reason}")]
    NotARecord {
        /// The entry's index.
        index: u64,
        /// Why.
        reason: String,
    },
    /// A record belongs to another conversation (or to none).
    #[error("record {index} belongs to conversation {found:?}, not {expected:?}")]
    OtherConversation {
        /// The record's index.
        index: u64,
        /// The chain's conversation.
        expected: String,
        /// The record's.
        found: Option<String>,
    },
    /// The first record links to an earlier one: the chain's start was withheld.
    #[error("record {index} links back to record {prev}: the conversation's start is missing")]
    MissingStart {
        /// The first record presented.
        index: u64,
        /// What it links to.
        prev: u64,
    },
    /// A record does not link to the record presented before it: one was withheld, inserted,
    /// reordered or altered.
    #[error(
        "record {index} links to {linked:?}, but the record before it is {previous} with leaf hash {previous_hash}"
    )]
    BrokenLink {
        /// The record whose link does not match.
        index: u64,
        /// Its link (index and leaf hash), if any.
        linked: Option<(u64, Hash)>,
        /// The record presented before it.
        previous: u64,
        /// That record's leaf hash.
        previous_hash: Hash,
    },
    /// A record follows the one that ended the conversation.
    #[error("record {index} follows the conversation_ended record {ended}")]
    AfterEnd {
        /// The record after the end.
        index: u64,
        /// The ending record.
        ended: u64,
    },
}

/// What a verified chain holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    /// The conversation.
    pub conversation_id: String,
    /// The records' indices, first to last.
    pub indices: Vec<u64>,
    /// Whether the last record is `conversation_ended`.
    pub ended: bool,
}

/// Checks that `records` — `(index, leaf)` pairs in the order presented, each leaf already
/// proven to be in the log at its index — form the complete chain of one conversation from
/// its first record: same `conversation_id`, the first without `prev`, each other linking to
/// the one before by index and leaf hash, nothing after `conversation_ended`.
///
/// This does not panic.
///
/// # Errors
/// The first [`ChainError`] found.
pub fn verify_chain(records: &[(u64, &[u8])]) -> Result<Chain, ChainError> {
    let mut previous: Option<(u64, Hash, bool)> = None;
    let mut conversation: Option<String> = None;
    let mut indices = Vec::with_capacity(records.len());
    for &(index, leaf) in records {
        let record = parse_leaf(leaf).map_err(|e| ChainError::NotARecord {
            index,
            reason: e.to_string(),
        })?;
        let found = record
            .get("conversation_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let expected = conversation.get_or_insert_with(|| found.clone().unwrap_or_default());
        if found.as_deref() != Some(expected.as_str()) {
            return Err(ChainError::OtherConversation {
                index,
                expected: expected.clone(),
                found,
            });
        }
        let link = Prev::of(&record);
        match (previous, link) {
            (None, None) => {}
            (None, Some(prev)) => {
                return Err(ChainError::MissingStart {
                    index,
                    prev: prev.index,
                });
            }
            (Some((ended, _, true)), _) => return Err(ChainError::AfterEnd { index, ended }),
            (Some((p_index, p_hash, false)), link) => {
                if link
                    != Some(Prev {
                        index: p_index,
                        leaf_hash: p_hash,
                    })
                {
                    return Err(ChainError::BrokenLink {
                        index,
                        linked: link.map(|l| (l.index, l.leaf_hash)),
                        previous: p_index,
                        previous_hash: p_hash,
                    });
                }
            }
        }
        let ends = record.get("action").and_then(Value::as_str)
            == Some(crate::Action::ConversationEnded.as_str());
        previous = Some((index, leaf_hash(leaf), ends));
        indices.push(index);
    }
    let (Some(conversation_id), Some((_, _, ended))) = (conversation, previous) else {
        return Err(ChainError::Empty);
    };
    Ok(Chain {
        conversation_id,
        indices,
        ended,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::{NONCE_BYTES, SubmittedBy, Unchained, parse_event};

    /// A chain of `n` records of conversation `c` built as the committer builds it, starting
    /// at index 10 with an unrelated entry between each two records.
    fn chain(conversation: &str, n: usize, end: bool) -> Vec<(u64, Vec<u8>)> {
        let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut prev: Option<Prev> = None;
        for i in 0..n {
            let action = if end && i + 1 == n {
                "conversation_ended"
            } else {
                "tool_invoked"
            };
            let event = parse_event(&serde_json::json!({
                "timestamp": "2026-03-01T12:00:00Z",
                "action": action,
                "actor": {"id": "a", "type": "agent"},
                "conversation_id": conversation,
                "details": {"step": i}
            }))
            .unwrap();
            let leaf = Unchained::new(
                event,
                &SubmittedBy::Anonymous,
                time::OffsetDateTime::UNIX_EPOCH,
                [i as u8; NONCE_BYTES],
            )
            .unwrap()
            .leaf(prev.as_ref());
            let index = 10 + 2 * i as u64;
            prev = Some(Prev {
                index,
                leaf_hash: leaf_hash(&leaf),
            });
            out.push((index, leaf));
        }
        out
    }

    fn view(records: &[(u64, Vec<u8>)]) -> Vec<(u64, &[u8])> {
        records.iter().map(|(i, l)| (*i, l.as_slice())).collect()
    }

    #[test]
    fn a_complete_chain_verifies() {
        let records = chain("c-1", 5, true);
        let verified = verify_chain(&view(&records)).unwrap();
        assert_eq!(verified.indices, vec![10, 12, 14, 16, 18]);
        assert!(verified.ended);
        assert_eq!(verified.conversation_id, "c-1");
    }

    #[test]
    fn a_withheld_record_breaks_the_chain_wherever_it_was() {
        let records = chain("c-1", 6, false);
        for withheld in 1..6 {
            let mut shown = records.clone();
            shown.remove(withheld);
            if withheld == 5 {
                // The tail: the rest still links; that is what this check cannot see alone.
                assert!(verify_chain(&view(&shown)).is_ok());
                continue;
            }
            assert!(
                matches!(
                    verify_chain(&view(&shown)),
                    Err(ChainError::BrokenLink { .. })
                ),
                "withheld {withheld}"
            );
        }
        let mut no_start = records.clone();
        no_start.remove(0);
        assert!(matches!(
            verify_chain(&view(&no_start)),
            Err(ChainError::MissingStart {
                index: 12,
                prev: 10
            })
        ));
    }

    #[test]
    fn reordered_foreign_altered_and_late_records_are_caught() {
        let records = chain("c-1", 4, true);
        let mut swapped = records.clone();
        swapped.swap(1, 2);
        assert!(matches!(
            verify_chain(&view(&swapped)),
            Err(ChainError::BrokenLink { .. })
        ));
        let mut foreign = records.clone();
        foreign.insert(2, chain("c-2", 1, false).remove(0));
        assert!(matches!(
            verify_chain(&view(&foreign)),
            Err(ChainError::OtherConversation { .. })
        ));
        // The same record claimed at another index does not link.
        let mut moved = records.clone();
        moved[1].0 += 1;
        assert!(verify_chain(&view(&moved)).is_err());
        let mut late = records.clone();
        let mut extra = chain("c-1", 5, false).remove(4);
        extra.0 = 99;
        late.push(extra);
        assert!(verify_chain(&view(&late)).is_err());
        assert_eq!(verify_chain(&[]), Err(ChainError::Empty));
        assert!(matches!(
            verify_chain(&[(0, b"raw entry".as_slice())]),
            Err(ChainError::NotARecord { index: 0, .. })
        ));
    }
}
