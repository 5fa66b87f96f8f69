//! Conversation chains: the committer's view of the last record of every conversation, so
//! that each new record links to it (`prev`) inside the same commit, and a closed
//! conversation (`conversation_ended`) takes no more records.
//!
//! Built at start by reading every record of the log once (the log is the only source of
//! truth; this state is derived), then kept by the committer alone. A graceful shutdown saves
//! the heads with the tree head they describe ([`SNAPSHOT_KEY`]); the next start, once the
//! tree root at that size matches, reads only the records after it. The log is append-only,
//! so a snapshot of a prefix stays true whatever is appended later (a crash after more
//! appends reads from the snapshot on); one that does not match is ignored and the whole log
//! read, as without one.
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

/// Metadata key of the heads saved at the last graceful shutdown: a first line
/// `veritrail chain heads <size> <root, base64>`, then the lines of [`PURGED_HEADS_KEY`].
pub(crate) const SNAPSHOT_KEY: &str = "chain-heads-snapshot";

/// How a snapshot's first line starts.
const SNAPSHOT_HEADER: &str = "veritrail chain heads ";

/// Conversations and their heads.
type Heads = HashMap<String, Head>;

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
        let from = match snapshot(ledger, size)? {
            Some((covered, heads)) => {
                tracing::info!(
                    covered,
                    size,
                    "conversation heads saved at the last shutdown: reading the records after them"
                );
                chains.merge(heads);
                covered
            }
            None => 0,
        };
        // From the bundle holding the first entry after the snapshot.
        for bundle in from / BUNDLE_ENTRIES as u64..size.div_ceil(BUNDLE_ENTRIES as u64) {
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
                if index >= from && is_record(entry) {
                    chains.note(index, entry);
                }
            }
        }
        Ok(chains)
    }

    /// Takes each of `heads` unless this conversation already has a later record.
    fn merge(&mut self, heads: HashMap<String, Head>) {
        for (conversation, head) in heads {
            if self
                .heads
                .get(&conversation)
                .is_none_or(|known| known.last.index <= head.last.index)
            {
                self.heads.insert(conversation, head);
            }
        }
    }

    /// Saves the heads with the tree head they describe, for the next start. Called when the
    /// committer stops: nothing is appended meanwhile. Blocking; one write of
    /// O(conversations) bytes.
    ///
    /// # Errors
    /// Store errors.
    pub(crate) fn save(&self, ledger: &Ledger) -> Result<(), veritrail_ledger::Error> {
        let tree = ledger.tree_head();
        let mut text = format!("{SNAPSHOT_HEADER}{} {}\n", tree.size, tree.root.to_base64());
        text.push_str(&encode_heads(&self.heads));
        ledger.store().put_meta(SNAPSHOT_KEY, text.as_bytes())
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
    let Some(bytes) = ledger.store().meta(PURGED_HEADS_KEY)? else {
        return Ok(HashMap::new());
    };
    std::str::from_utf8(&bytes)
        .ok()
        .and_then(parse_heads)
        .ok_or_else(|| veritrail_ledger::Error::Corrupted {
            what: "the purged conversation heads".into(),
        })
}

/// The heads of the last graceful shutdown and the size they cover, if they describe a
/// prefix of this log (its root at that size is the saved one). Anything else is logged and
/// ignored: the heads are derived data, read from the log instead.
///
/// # Errors
/// Store errors reading the snapshot.
fn snapshot(ledger: &Ledger, size: u64) -> Result<Option<(u64, Heads)>, veritrail_ledger::Error> {
    let Some(bytes) = ledger.store().meta(SNAPSHOT_KEY)? else {
        return Ok(None);
    };
    let parsed = std::str::from_utf8(&bytes).ok().and_then(|text| {
        let (first, rest) = text.split_once('\n')?;
        let (covered, root) = first.strip_prefix(SNAPSHOT_HEADER)?.split_once(' ')?;
        let covered = veritrail_ledger::ascii::parse_decimal(covered).ok()?;
        let root = veritrail_ledger::Hash::from_base64(root).ok()?;
        Some((covered, root, parse_heads(rest)?))
    });
    let Some((covered, root, heads)) = parsed else {
        tracing::warn!("the saved conversation heads do not parse; reading the whole log");
        return Ok(None);
    };
    if covered > size {
        tracing::warn!(
            covered,
            size,
            "the saved conversation heads cover more than the log; reading the whole log"
        );
        return Ok(None);
    }
    match ledger.root_at(covered) {
        Ok(at) if at == root => Ok(Some((covered, heads))),
        Ok(_) => {
            tracing::warn!(
                covered,
                "the saved conversation heads are of another log; reading the whole log"
            );
            Ok(None)
        }
        Err(e) => {
            tracing::warn!(covered, error = %e, "cannot check the saved conversation heads; reading the whole log");
            Ok(None)
        }
    }
}

/// Parses head lines, `<index> <leaf hash, base64> <0|1 closed> <conversation>`.
fn parse_heads(text: &str) -> Option<HashMap<String, Head>> {
    let mut heads = HashMap::new();
    for line in text.lines() {
        let mut parts = line.splitn(4, ' ');
        let (Some(index), Some(hash), Some(closed), Some(conversation)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let index = veritrail_ledger::ascii::parse_decimal(index).ok()?;
        let leaf_hash = veritrail_ledger::Hash::from_base64(hash).ok()?;
        heads.insert(
            conversation.to_owned(),
            Head {
                last: Prev { index, leaf_hash },
                closed: closed == "1",
            },
        );
    }
    Some(heads)
}

/// Head lines in sorted order, each ending in a newline.
fn encode_heads(heads: &HashMap<String, Head>) -> String {
    let mut lines: Vec<String> = heads
        .iter()
        .map(|(conversation, head)| {
            format!(
                "{} {} {} {conversation}\n",
                head.last.index,
                head.last.leaf_hash.to_base64(),
                u8::from(head.closed)
            )
        })
        .collect();
    lines.sort();
    lines.concat()
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
    ledger
        .store()
        .put_meta(PURGED_HEADS_KEY, encode_heads(&chains.heads).as_bytes())
}
