//! Conversation head statements: the log's signed word on which record is the last of a
//! conversation at a checkpoint.
//!
//! A conversation's chain (`prev` links) proves that nothing is missing between its first
//! record and the last one shown — but not that the last one shown is the conversation's
//! newest. For that the server signs, with the log's key, a note:
//!
//! ```text
//! veritrail.dev/conversation-head/v1
//! <origin>
//! <tree size>
//! <root hash, base64>
//! <conversation id, base64>
//! <head index> <head leaf hash, base64>      (or "none")
//! ```
//!
//! It cannot be taken for a checkpoint (its first line is not the origin; the ledger refuses
//! to sign such a text). The client accepts a conversation only if the statement verifies
//! under the pinned key, names the same tree size and root as the checkpoint its records are
//! proven against, and names the last record of the verified chain.
//!
//! Why this is sound: the statement binds the server to one head at one signed tree. If a
//! record of the conversation below that size comes after the named head, the log itself
//! proves it — the record and its inclusion proof under the same root, plus the signed
//! statement, are evidence anyone can check offline with the log's key ([`refutes`]); a
//! monitor replaying the log checks every statement it is shown. What it cannot do is stop a
//! server from lying *once* to a client that never compares notes: like a CT promise, it
//! makes the lie detectable and attributable, not impossible.

use serde_json::Value;
use veritrail_ledger::Hash;
use veritrail_ledger::checkpoint::Checkpoint;
use veritrail_ledger::note::{Note, NoteVerifier};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::record::Prev;

/// The first line of every head statement.
pub const HEAD_STATEMENT: &str = "veritrail.dev/conversation-head/v1";

/// A conversation's head at a checkpoint, as the log signed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadStatement {
    /// The log's origin.
    pub origin: String,
    /// The tree size it speaks of.
    pub size: u64,
    /// That tree's root.
    pub root: Hash,
    /// The conversation.
    pub conversation: String,
    /// Its last record below `size`, or `None` if it has none.
    pub head: Option<Prev>,
}

/// Why a head statement is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeadError {
    /// Not a note signed by the log's key.
    #[error("the head statement is not signed by the log's key: {0}")]
    Signature(String),
    /// Not a head statement in canonical form.
    #[error("the head statement is malformed: {0}")]
    Malformed(&'static str),
    /// It is about another log, tree, conversation or head than the answer it came with.
    #[error("the head statement {0}")]
    Mismatch(String),
}

impl HeadStatement {
    /// The statement's note text.
    pub fn to_text(&self) -> String {
        let head = match &self.head {
            Some(prev) => format!("{} {}", prev.index, prev.leaf_hash.to_base64()),
            None => "none".to_owned(),
        };
        format!(
            "{HEAD_STATEMENT}\n{}\n{}\n{}\n{}\n{head}\n",
            self.origin,
            self.size,
            self.root.to_base64(),
            STANDARD.encode(self.conversation.as_bytes()),
        )
    }

    /// Parses a statement's text. Total: anything but the canonical form is refused.
    ///
    /// # Errors
    /// [`HeadError::Malformed`].
    pub fn parse(text: &str) -> Result<HeadStatement, HeadError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(HeadError::Malformed("no final newline"))?;
        let lines: Vec<&str> = body.split('\n').collect();
        let [first, origin, size, root, conversation, head] = lines.as_slice() else {
            return Err(HeadError::Malformed("not six lines"));
        };
        if *first != HEAD_STATEMENT {
            return Err(HeadError::Malformed("not a conversation head statement"));
        }
        let size = veritrail_ledger::ascii::parse_decimal(size)
            .map_err(|_| HeadError::Malformed("the size is not a canonical decimal"))?;
        let root = Hash::from_base64(root).map_err(|_| HeadError::Malformed("the root"))?;
        let conversation = STANDARD
            .decode(conversation)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or(HeadError::Malformed(
                "the conversation is not base64 of UTF-8",
            ))?;
        let head = match *head {
            "none" => None,
            other => {
                let (index, hash) = other
                    .split_once(' ')
                    .ok_or(HeadError::Malformed("the head line"))?;
                Some(Prev {
                    index: veritrail_ledger::ascii::parse_decimal(index)
                        .map_err(|_| HeadError::Malformed("the head index"))?,
                    leaf_hash: Hash::from_base64(hash)
                        .map_err(|_| HeadError::Malformed("the head leaf hash"))?,
                })
            }
        };
        let statement = HeadStatement {
            origin: (*origin).to_owned(),
            size,
            root,
            conversation,
            head,
        };
        if statement.to_text() != text {
            return Err(HeadError::Malformed("not in canonical form"));
        }
        Ok(statement)
    }

    /// Verifies a signed statement (note bytes) under the log's key `log_key`.
    ///
    /// # Errors
    /// [`HeadError::Signature`] unless the log's key signed it; [`HeadError::Malformed`];
    /// [`HeadError::Mismatch`] if it names another origin than the key's.
    pub fn verify(note: &[u8], log_key: &NoteVerifier) -> Result<HeadStatement, HeadError> {
        let note = Note::from_bytes(note).map_err(|e| HeadError::Signature(e.to_string()))?;
        note.verify(std::slice::from_ref(log_key))
            .map_err(|e| HeadError::Signature(e.to_string()))?;
        let statement = HeadStatement::parse(note.text())?;
        if statement.origin != log_key.name().as_str() {
            return Err(HeadError::Mismatch(format!(
                "is for the log {:?}, not {:?}",
                statement.origin,
                log_key.name().as_str()
            )));
        }
        Ok(statement)
    }

    /// Checks that the statement speaks of `conversation` at `checkpoint` and names `last`
    /// (the last record of the verified chain, or `None` for no record) as its head.
    ///
    /// # Errors
    /// [`HeadError::Mismatch`] naming the first difference.
    pub fn check(
        &self,
        conversation: &str,
        checkpoint: &Checkpoint,
        last: Option<&Prev>,
    ) -> Result<(), HeadError> {
        if self.conversation != conversation {
            return Err(HeadError::Mismatch(format!(
                "is about the conversation {:?}",
                self.conversation
            )));
        }
        if self.size != checkpoint.tree.size || self.root != checkpoint.tree.root {
            return Err(HeadError::Mismatch(format!(
                "is for tree size {}, not the checkpoint's {} (a stale head)",
                self.size, checkpoint.tree.size
            )));
        }
        if self.head.as_ref() != last {
            return Err(HeadError::Mismatch(format!(
                "names {} as the head, but the chain shown ends at {}",
                self.head
                    .as_ref()
                    .map_or("no record".into(), |p| format!("record {}", p.index)),
                last.map_or("no record".into(), |p| format!("record {}", p.index))
            )));
        }
        Ok(())
    }
}

/// Whether `record` (at `index`, proven in the tree the statement names) refutes the
/// statement: a record of its conversation after the head it names. Such a record with its
/// inclusion proof and the signed statement are evidence that the log lied.
pub fn refutes(statement: &HeadStatement, index: u64, record: &Value) -> bool {
    index < statement.size
        && record.get("conversation_id").and_then(Value::as_str)
            == Some(statement.conversation.as_str())
        && statement
            .head
            .as_ref()
            .is_none_or(|head| index > head.index)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn statement() -> HeadStatement {
        HeadStatement {
            origin: "audit.example/log".into(),
            size: 1204,
            root: Hash([7; 32]),
            conversation: "c-1\nwith a newline".into(),
            head: Some(Prev {
                index: 1187,
                leaf_hash: Hash([9; 32]),
            }),
        }
    }

    #[test]
    fn statements_round_trip_and_only_canonically() {
        for s in [
            statement(),
            HeadStatement {
                head: None,
                ..statement()
            },
        ] {
            let text = s.to_text();
            assert_eq!(HeadStatement::parse(&text).unwrap(), s);
            assert!(HeadStatement::parse(&text.replace("1204", "01204")).is_err());
            assert!(HeadStatement::parse(text.trim_end()).is_err());
            assert!(HeadStatement::parse(&format!("{text}extra\n")).is_err());
        }
        assert!(
            HeadStatement::parse(&statement().to_text().replacen("head/v1", "head/v2", 1)).is_err()
        );
    }

    #[test]
    fn a_later_record_of_the_conversation_refutes_it() {
        let s = statement();
        let record = serde_json::json!({"conversation_id": "c-1\nwith a newline"});
        assert!(refutes(&s, 1190, &record));
        assert!(!refutes(&s, 1187, &record));
        assert!(!refutes(&s, 1300, &record), "beyond the tree it speaks of");
        assert!(!refutes(
            &s,
            1190,
            &serde_json::json!({"conversation_id": "c-2"})
        ));
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_text_never_panics(text in ".{0,300}") {
            let _ = HeadStatement::parse(&text);
        }
    }
}
