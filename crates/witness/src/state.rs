//! What a witness remembers: for each log, the latest checkpoint it cosigned, in one redb
//! database (`<data>/witness.redb`), keyed by the SHA-256 of the log's origin.
//!
//! Updates go through one committer thread that gathers the updates waiting for it into one
//! durable transaction (group commit) and answers each only after that transaction is synced.
//! Each update is a compare-and-swap on the stored size: it applies only if the stored size is
//! still the `old` size its request was checked against, so checking and persisting are one
//! atomic step even if two requests for one origin raced (the HTTP layer also serialises
//! them). An update that lost the race is answered with the size now stored.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use redb::{ReadableDatabase as _, ReadableTable as _, TableDefinition};
use sha2::{Digest as _, Sha256};
use tokio::sync::oneshot;
use veritrail_ledger::hash::{Hash, TreeHead};

/// The database file inside a witness's data directory.
pub const STATE_FILE: &str = "witness.redb";
/// Most updates committed in one transaction.
const GROUP: usize = 1024;

/// origin SHA-256 → `size (u64 BE) ‖ root (32) ‖ the cosigned checkpoint note`.
const LATEST: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("latest");

/// Why the state cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The database failed.
    #[error("witness state {path}: {message}")]
    Database {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// A stored record is not one this witness writes.
    #[error("witness state {path}: the record of one log is damaged")]
    Damaged {
        /// The file.
        path: PathBuf,
    },
    /// The committer thread is gone (the witness is stopping).
    #[error("the witness is stopping")]
    Stopped,
}

/// The latest checkpoint a witness cosigned for one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latest {
    /// Its tree.
    pub tree: TreeHead,
    /// The cosigned note: the checkpoint, the log's verified signatures and the cosignature.
    pub note: Vec<u8>,
}

fn encode(latest: &Latest) -> Vec<u8> {
    let mut value = Vec::with_capacity(40 + latest.note.len());
    value.extend_from_slice(&latest.tree.size.to_be_bytes());
    value.extend_from_slice(latest.tree.root.as_bytes());
    value.extend_from_slice(&latest.note);
    value
}

fn decode(value: &[u8]) -> Option<Latest> {
    let size = u64::from_be_bytes(value.get(..8)?.try_into().ok()?);
    let root = Hash::try_from_slice(value.get(8..40)?).ok()?;
    Some(Latest {
        tree: TreeHead::new(size, root),
        note: value.get(40..)?.to_vec(),
    })
}

/// The key of an origin's record.
pub fn origin_key(origin: &str) -> [u8; 32] {
    Sha256::digest(origin.as_bytes()).into()
}

/// How an update ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored durably.
    Stored,
    /// The stored size was no longer the request's `old`: this is the size stored.
    Conflict(u64),
}

struct Update {
    key: [u8; 32],
    old: u64,
    latest: Latest,
    reply: oneshot::Sender<Result<Outcome, StateError>>,
}

/// The witness's state, and the sender to its committer thread.
#[derive(Debug)]
pub struct State {
    db: std::sync::Arc<redb::Database>,
    path: PathBuf,
    updates: std::sync::Mutex<Option<mpsc::Sender<Update>>>,
    committer: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Update {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Update")
            .field("old", &self.old)
            .field("size", &self.latest.tree.size)
            .finish_non_exhaustive()
    }
}

impl State {
    /// Opens (or creates, owner-only) the state in `data` and starts its committer.
    ///
    /// # Errors
    /// [`StateError::Database`].
    pub fn open(data: &Path) -> Result<State, StateError> {
        let path = data.join(STATE_FILE);
        let err = |e: &dyn std::fmt::Display| StateError::Database {
            path: path.clone(),
            message: e.to_string(),
        };
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            std::fs::create_dir_all(data).map_err(|e| err(&e))?;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)
                .map_err(|e| err(&e))?;
        }
        let db = redb::Database::create(&path).map_err(|e| err(&e))?;
        let txn = db.begin_write().map_err(|e| err(&e))?;
        txn.open_table(LATEST).map_err(|e| err(&e))?;
        txn.commit().map_err(|e| err(&e))?;
        let db = std::sync::Arc::new(db);
        let (send, receive) = mpsc::channel();
        let committer = {
            let (db, path) = (db.clone(), path.clone());
            std::thread::Builder::new()
                .name("witness-committer".into())
                .spawn(move || commit_loop(&db, &path, &receive))
                .map_err(|e| err(&e))?
        };
        Ok(State {
            db,
            path,
            updates: std::sync::Mutex::new(Some(send)),
            committer: std::sync::Mutex::new(Some(committer)),
        })
    }

    /// The latest checkpoint cosigned for `origin`, if any.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn latest(&self, origin: &str) -> Result<Option<Latest>, StateError> {
        self.latest_by_key(&origin_key(origin))
    }

    /// The latest checkpoint cosigned for the origin whose SHA-256 is `key`.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn latest_by_key(&self, key: &[u8; 32]) -> Result<Option<Latest>, StateError> {
        let err = |e: &dyn std::fmt::Display| StateError::Database {
            path: self.path.clone(),
            message: e.to_string(),
        };
        let txn = self.db.begin_read().map_err(|e| err(&e))?;
        let table = txn.open_table(LATEST).map_err(|e| err(&e))?;
        let Some(value) = table.get(key).map_err(|e| err(&e))? else {
            return Ok(None);
        };
        decode(value.value())
            .map(Some)
            .ok_or_else(|| StateError::Damaged {
                path: self.path.clone(),
            })
    }

    /// Stores `latest` for `origin` if the stored size is still `old` (0: none stored), and
    /// returns once that is durable.
    ///
    /// # Errors
    /// [`StateError`]; nothing is stored then.
    pub async fn update(
        &self,
        origin: &str,
        old: u64,
        latest: Latest,
    ) -> Result<Outcome, StateError> {
        let (reply, answer) = oneshot::channel();
        let update = Update {
            key: origin_key(origin),
            old,
            latest,
            reply,
        };
        self.updates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .ok_or(StateError::Stopped)?
            .send(update)
            .map_err(|_| StateError::Stopped)?;
        answer.await.map_err(|_| StateError::Stopped)?
    }

    /// Stops the committer after the updates already sent.
    pub fn close(&self) {
        self.updates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let committer = self
            .committer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(committer) = committer {
            let _ = committer.join();
        }
    }
}

impl Drop for State {
    fn drop(&mut self) {
        self.close();
    }
}

fn commit_loop(db: &redb::Database, path: &Path, updates: &mpsc::Receiver<Update>) {
    while let Ok(first) = updates.recv() {
        let mut group = vec![first];
        while group.len() < GROUP {
            match updates.try_recv() {
                Ok(update) => group.push(update),
                Err(_) => break,
            }
        }
        match commit(db, &group) {
            Ok(outcomes) => {
                for (update, outcome) in group.into_iter().zip(outcomes) {
                    let _ = update.reply.send(Ok(outcome));
                }
            }
            Err(message) => {
                tracing::error!(path = %path.display(), %message, "witness state: a commit failed; nothing of it is stored");
                for update in group {
                    let _ = update.reply.send(Err(StateError::Database {
                        path: path.to_owned(),
                        message: message.clone(),
                    }));
                }
            }
        }
    }
}

/// One durable transaction of compare-and-swaps, in arrival order.
fn commit(db: &redb::Database, group: &[Update]) -> Result<Vec<Outcome>, String> {
    let txn = db.begin_write().map_err(|e| e.to_string())?;
    let mut outcomes = Vec::with_capacity(group.len());
    {
        let mut table = txn.open_table(LATEST).map_err(|e| e.to_string())?;
        for update in group {
            let stored = table
                .get(&update.key)
                .map_err(|e| e.to_string())?
                .map(|value| decode(value.value()).map(|l| l.tree.size))
                .map(|size| size.ok_or("a stored record is damaged"))
                .transpose()?
                .unwrap_or(0);
            if stored != update.old {
                outcomes.push(Outcome::Conflict(stored));
                continue;
            }
            table
                .insert(&update.key, encode(&update.latest).as_slice())
                .map_err(|e| e.to_string())?;
            outcomes.push(Outcome::Stored);
        }
    }
    txn.commit().map_err(|e| e.to_string())?;
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use veritrail_ledger::hash::leaf_hash;

    fn latest(size: u64) -> Latest {
        Latest {
            tree: TreeHead::new(size, leaf_hash(&size.to_be_bytes())),
            note: format!("note {size}").into_bytes(),
        }
    }

    #[tokio::test]
    async fn updates_are_compare_and_swaps_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        assert_eq!(state.latest("a").unwrap(), None);
        assert_eq!(
            state.update("a", 0, latest(5)).await.unwrap(),
            Outcome::Stored
        );
        assert_eq!(
            state.update("a", 0, latest(7)).await.unwrap(),
            Outcome::Conflict(5)
        );
        assert_eq!(
            state.update("a", 5, latest(7)).await.unwrap(),
            Outcome::Stored
        );
        assert_eq!(
            state.update("b", 0, latest(1)).await.unwrap(),
            Outcome::Stored
        );
        drop(state);
        let state = State::open(dir.path()).unwrap();
        assert_eq!(state.latest("a").unwrap(), Some(latest(7)));
        assert_eq!(
            state.latest_by_key(&origin_key("b")).unwrap(),
            Some(latest(1))
        );
    }
}
