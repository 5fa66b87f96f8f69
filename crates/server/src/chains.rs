//! Conversation chains: the committer's view of the last record of every conversation, so
//! that each new record links to it (`prev`) inside the same commit, and a closed
//! conversation (`conversation_ended`) takes no more records.
//!
//! Built at start by reading every record of the log once (the log is the only source of
//! truth; this state is derived), then kept by the committer alone.
//!
//! Bundles archived and purged cannot be read again, yet a conversation whose last record is
//! there may go on: before a purge, the archival job saves the head of every conversation
//! with a record in the purged bundles in the store's metadata ([`PURGED_HEADS_KEY`]), and
//! loading starts from those. A head is only ever replaced by a later record.

use std::collections::HashMap;

use veritrail_ledger::bundle::{BUNDLE_ENTRIES, iter_bundle};
use veritrail_ledger::tile::entry_bundle_width;
use veritrail_ledger::{Ledger, leaf_hash};
use veritrail_records::{Action, Prev, is_record, parse_leaf};

/// The end of one conversation's chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    /// Its last record.
    pub(crate) last: Prev,
    /// Whether that record ended the conversation.
    pub(crate) closed: bool,
}

/// Metadata key of the heads saved from purged bundles: one line per conversation,
/// `<index> <leaf hash, base64> <0|1 closed> <conversation>`.
pub(crate) const PURGED_HEADS_KEY: &str = "purged-chain-heads";

/// The head of every conversation in the log.
#[derive(Debug, Default)]
pub(crate) struct Chains {
    heads: HashMap<String, Head>,
}

impl Chains {
    /// Reads every record of `ledger` to find each conversation's head. A bundle that fails
    /// verification is logged and skipped.
    ///
    /// # Errors
    /// The ledger's read errors other than corruption.
    pub(crate) fn load(ledger: &Ledger) -> Result<Chains, veritrail_ledger::Error> {
        let mut chains = Chains {
            heads: purged_heads(ledger)?,
        };
        let size = ledger.tree_head().size;
        for bundle in 0..size.div_ceil(BUNDLE_ENTRIES as u64) {
            if ledger.purged_range(bundle).is_some() {
                continue;
            }
            let width = entry_bundle_width(bundle, size).unwrap_or(0);
            let bytes = match ledger.entry_bundle(bundle, width) {
                Ok(bytes) => bytes,
                // A forged entry is refused on every read (and fails readiness when served);
                // the chains of the records in that bundle cannot be read, the rest can.
                Err(veritrail_ledger::Error::Corrupted { what }) => {
                    tracing::error!(bundle, %what, "a bundle failed verification; its records are left out of the conversation chains");
                    continue;
                }
                Err(e) => return Err(e),
            };
            for (offset, entry) in iter_bundle(&bytes).enumerate() {
                let index = bundle * BUNDLE_ENTRIES as u64 + offset as u64;
                let Ok(entry) = entry else { break };
                if is_record(entry) {
                    chains.note(index, entry);
                }
            }
        }
        Ok(chains)
    }

    /// Records `leaf` (a record at `index`) as its conversation's head.
    fn note(&mut self, index: u64, leaf: &[u8]) {
        let Ok(record) = parse_leaf(leaf) else {
            tracing::warn!(index, "a record leaf does not parse; skipped for chains");
            return;
        };
        let Some(conversation) = record.get("conversation_id").and_then(|c| c.as_str()) else {
            return;
        };
        let closed = record.get("action").and_then(|a| a.as_str())
            == Some(Action::ConversationEnded.as_str());
        if self
            .heads
            .get(conversation)
            .is_some_and(|head| head.last.index > index)
        {
            return;
        }
        self.heads.insert(
            conversation.to_owned(),
            Head {
                last: Prev {
                    index,
                    leaf_hash: leaf_hash(leaf),
                },
                closed,
            },
        );
    }

    /// The head of `conversation`, looking at `staged` (this commit's links) first.
    pub(crate) fn head(&self, staged: &HashMap<String, Head>, conversation: &str) -> Option<Head> {
        staged
            .get(conversation)
            .or_else(|| self.heads.get(conversation))
            .copied()
    }

    /// Makes a committed batch's links the new heads.
    pub(crate) fn apply(&mut self, staged: HashMap<String, Head>) {
        self.heads.extend(staged);
    }

    /// Conversations known.
    pub(crate) fn len(&self) -> usize {
        self.heads.len()
    }
}

/// The heads saved from purged bundles.
fn purged_heads(ledger: &Ledger) -> Result<HashMap<String, Head>, veritrail_ledger::Error> {
    let mut heads = HashMap::new();
    let Some(bytes) = ledger.store().meta(PURGED_HEADS_KEY)? else {
        return Ok(heads);
    };
    let bad = || veritrail_ledger::Error::Corrupted {
        what: "the purged conversation heads".into(),
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| bad())?;
    for line in text.lines() {
        let mut parts = line.splitn(4, ' ');
        let (Some(index), Some(hash), Some(closed), Some(conversation)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let index = veritrail_ledger::ascii::parse_decimal(index).map_err(|_| bad())?;
        let leaf_hash = veritrail_ledger::Hash::from_base64(hash).map_err(|_| bad())?;
        heads.insert(
            conversation.to_owned(),
            Head {
                last: Prev { index, leaf_hash },
                closed: closed == "1",
            },
        );
    }
    Ok(heads)
}

/// Saves, before bundles `bundles` are purged, the last record of every conversation they
/// hold (merged with the heads saved before: the later record wins). Blocking.
///
/// # Errors
/// Ledger and store errors.
pub(crate) fn save_purged_heads(
    ledger: &Ledger,
    bundles: std::ops::Range<u64>,
) -> Result<(), veritrail_ledger::Error> {
    let mut chains = Chains {
        heads: purged_heads(ledger)?,
    };
    for bundle in bundles {
        let bytes = ledger.entry_bundle(bundle, BUNDLE_ENTRIES as u16)?;
        for (offset, entry) in iter_bundle(&bytes).enumerate() {
            let Ok(entry) = entry else { break };
            if is_record(entry) {
                chains.note(bundle * BUNDLE_ENTRIES as u64 + offset as u64, entry);
            }
        }
    }
    let mut lines: Vec<String> = chains
        .heads
        .iter()
        .map(|(conversation, head)| {
            format!(
                "{} {} {} {conversation}",
                head.last.index,
                head.last.leaf_hash.to_base64(),
                u8::from(head.closed)
            )
        })
        .collect();
    lines.sort();
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    ledger.store().put_meta(PURGED_HEADS_KEY, text.as_bytes())
}
