//! The store format: entries written once, tiles derived and rebuilt after a crash, the
//! leaf-hash index behind the committer, migration from format 1, and file modes.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use veritrail_ledger::store::{self, Backend, FORMAT, FORMAT_KEY, TAIL_SCAN_LIMIT};
use veritrail_ledger::{Error, Ledger, TreeHead, leaf_hash};

use crate::{ORIGIN, entry, open, signer};

const BACKENDS: [Backend; 2] = [Backend::Redb, Backend::Sled];

/// The naive RFC 6962 root of `entries`.
fn reference_root(entries: &[Vec<u8>]) -> veritrail_ledger::Hash {
    fn mth(leaves: &[veritrail_ledger::Hash]) -> veritrail_ledger::Hash {
        match leaves.len() {
            0 => veritrail_ledger::Hash::empty_root(),
            1 => leaves[0],
            n => {
                let k = n.next_power_of_two() / 2;
                veritrail_ledger::node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }
    mth(&entries.iter().map(|e| leaf_hash(e)).collect::<Vec<_>>())
}

#[test]
fn a_lookup_right_after_an_append_is_never_a_false_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(Backend::Redb, dir.path());
    // Appends small batches and looks each one up at once, before the indexer (which waits
    // for 4096 leaves or a pause) can have caught up.
    for i in 0..3000u64 {
        let appended = ledger.append(&[entry(i)]).unwrap();
        let size = appended.tree.size;
        let (index, _) = ledger
            .inclusion_proof_by_leaf_hash(&leaf_hash(&entry(i)), size)
            .unwrap();
        assert_eq!(index, i);
        if i % 500 == 0 {
            // An older entry, and one that is absent, at the same size.
            let (index, _) = ledger
                .inclusion_proof_by_leaf_hash(&leaf_hash(&entry(i / 2)), size)
                .unwrap();
            assert_eq!(index, i / 2);
            assert!(matches!(
                ledger.inclusion_proof_by_leaf_hash(&leaf_hash(b"absent"), size),
                Err(Error::LeafNotFound { .. })
            ));
        }
    }
    // A leaf is not found in a tree that does not yet hold it.
    assert!(matches!(
        ledger.inclusion_proof_by_leaf_hash(&leaf_hash(&entry(2999)), 2999),
        Err(Error::LeafNotFound { size: 2999, .. })
    ));
}

#[test]
fn duplicates_resolve_to_the_first_index_across_runs_and_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(Backend::Redb, dir.path());
    let batch: Vec<Vec<u8>> = (0..5000).map(entry).collect();
    ledger.append(&batch).unwrap();
    ledger.wait_indexed();
    ledger.append(&[entry(7), entry(4999)]).unwrap();
    ledger.wait_indexed();
    ledger.append(&[entry(7)]).unwrap();
    let size = ledger.tree_head().size;
    let (index, _) = ledger
        .inclusion_proof_by_leaf_hash(&leaf_hash(&entry(7)), size)
        .unwrap();
    assert_eq!(index, 7);
    let (index, _) = ledger
        .inclusion_proof_by_leaf_hash(&leaf_hash(&entry(4999)), size)
        .unwrap();
    assert_eq!(index, 4999);
}

/// Looks every entry up, plus some that are absent, and returns the answers.
fn answers(ledger: &Ledger, count: u64) -> Vec<Option<u64>> {
    let size = ledger.tree_head().size;
    (0..count + 20)
        .map(
            |i| match ledger.inclusion_proof_by_leaf_hash(&leaf_hash(&entry(i)), size) {
                Ok((index, _)) => Some(index),
                Err(Error::LeafNotFound { .. }) => None,
                Err(e) => panic!("lookup of entry {i}: {e}"),
            },
        )
        .collect()
}

#[test]
fn a_deleted_or_damaged_leaf_index_is_rebuilt_with_the_same_answers() {
    let count = 3 * store::RUN_MIN + 123;
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let ledger = open(Backend::Redb, dir.path());
        let entries: Vec<Vec<u8>> = (0..count).map(entry).collect();
        for chunk in entries.chunks(1000) {
            ledger.append(chunk).unwrap();
        }
        ledger.wait_indexed();
        let status = ledger.leaf_index_status();
        assert_eq!(status.indexed, count);
        assert!(status.runs >= 1, "{status:?}");
        answers(&ledger, count)
    };
    assert_eq!(
        before[..count as usize],
        (0..count).map(Some).collect::<Vec<_>>()[..]
    );
    assert!(before[count as usize..].iter().all(Option::is_none));
    let index_dir = dir.path().join("leaf-index");
    let runs: Vec<_> = std::fs::read_dir(&index_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!runs.is_empty());

    // Damage one run: it is dropped and rebuilt.
    let damaged = &runs[0];
    let mut bytes = std::fs::read(damaged).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(damaged, &bytes).unwrap();
    {
        let ledger = open(Backend::Redb, dir.path());
        assert!(ledger.leaf_index_status().indexed < count);
        ledger.wait_indexed();
        assert_eq!(answers(&ledger, count), before);
    }

    // Delete the whole index: rebuilt from the level-0 tiles.
    std::fs::remove_dir_all(&index_dir).unwrap();
    let ledger = open(Backend::Redb, dir.path());
    ledger.wait_indexed();
    assert_eq!(ledger.leaf_index_status().indexed, count);
    assert_eq!(answers(&ledger, count), before);
}

#[test]
fn a_lookup_far_behind_the_index_says_retry_not_absent() {
    let count = TAIL_SCAN_LIMIT + 5000;
    let dir = tempfile::tempdir().unwrap();
    {
        let ledger = open(Backend::Redb, dir.path());
        let entries: Vec<Vec<u8>> = (0..count).map(entry).collect();
        ledger.append(&entries).unwrap();
    }
    // Without its index, a fresh open has more unindexed leaves than a lookup may scan.
    std::fs::remove_dir_all(dir.path().join("leaf-index")).unwrap();
    let ledger = open(Backend::Redb, dir.path());
    match ledger.inclusion_proof_by_leaf_hash(&leaf_hash(b"absent"), count) {
        Err(Error::IndexBehind { size, .. }) => assert_eq!(size, count),
        Err(Error::LeafNotFound { .. }) => {
            // The indexer was fast enough to cover all but the scannable tail.
            assert!(count - ledger.leaf_index_status().indexed <= TAIL_SCAN_LIMIT);
        }
        other => panic!("{other:?}"),
    }
    ledger.wait_indexed();
    assert!(matches!(
        ledger.inclusion_proof_by_leaf_hash(&leaf_hash(b"absent"), count),
        Err(Error::LeafNotFound { .. })
    ));
    let (index, _) = ledger
        .inclusion_proof_by_leaf_hash(&leaf_hash(&entry(count - 1)), count)
        .unwrap();
    assert_eq!(index, count - 1);
}

#[test]
fn derived_files_are_rebuilt_from_the_entry_log() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let entries: Vec<Vec<u8>> = (0..70_000).map(entry).collect();
        let tree = {
            let ledger = open(backend, dir.path());
            ledger.append(&entries[..1]).unwrap();
            ledger.append(&entries[1..]).unwrap();
            ledger.sign_checkpoint().unwrap();
            ledger.tree_head()
        };
        assert_eq!(tree.root, reference_root(&entries));
        let log = dir.path().join("log");
        // Lose every derived file, as if none had reached the disk before a crash.
        for level in 0..8 {
            std::fs::remove_file(log.join(format!("level-{level}"))).unwrap();
        }
        std::fs::remove_file(log.join("bundles")).unwrap();
        std::fs::remove_file(log.join("state")).unwrap();
        let ledger = open(backend, dir.path());
        assert_eq!(ledger.tree_head(), tree, "{backend:?}");
        assert_eq!(ledger.entry(69_999).unwrap(), entry(69_999));
        ledger.audit().unwrap();
    }
}

#[test]
fn a_torn_final_write_is_cut_off_and_kept_aside() {
    let dir = tempfile::tempdir().unwrap();
    let tree = {
        let ledger = open(Backend::Redb, dir.path());
        ledger
            .append(&(0..300).map(entry).collect::<Vec<_>>())
            .unwrap();
        ledger.tree_head()
    };
    let entries_path = dir.path().join("log").join("entries");
    let len = std::fs::metadata(&entries_path).unwrap().len();
    // Half a frame: a header promising more bytes than follow.
    let mut torn = vec![0u8, 0, 1, 0];
    torn.extend_from_slice(&300u64.to_be_bytes());
    torn.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0, 5, b'h']);
    let mut bytes = std::fs::read(&entries_path).unwrap();
    bytes.extend_from_slice(&torn);
    std::fs::write(&entries_path, &bytes).unwrap();
    let ledger = open(Backend::Redb, dir.path());
    assert_eq!(ledger.tree_head(), tree);
    assert_eq!(std::fs::metadata(&entries_path).unwrap().len(), len);
    let kept = std::fs::read(dir.path().join("log").join(format!("entries.torn-{len}"))).unwrap();
    assert_eq!(kept, torn);
    // The log goes on from where the durable data ends.
    let appended = ledger.append(&[entry(300)]).unwrap();
    assert_eq!(appended.indices, 300..301);
    drop(ledger);
    let ledger = open(Backend::Redb, dir.path());
    assert_eq!(ledger.entry(300).unwrap(), entry(300));
    ledger.audit().unwrap();
}

#[test]
fn a_commit_is_all_or_nothing_across_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    {
        let ledger = open(Backend::Redb, dir.path());
        ledger
            .append(&(0..100).map(entry).collect::<Vec<_>>())
            .unwrap();
        // One commit of three frames: 100..256, 256..512, 512..700.
        ledger
            .append(&(100..700).map(entry).collect::<Vec<_>>())
            .unwrap();
    }
    // The crash persisted the first two frames of the last commit but not its third.
    let offsets = std::fs::read(dir.path().join("log").join("bundles")).unwrap();
    let bundle2 = u64::from_be_bytes(offsets[16..24].try_into().unwrap());
    std::fs::remove_file(dir.path().join("log").join("state")).unwrap();
    let entries_path = dir.path().join("log").join("entries");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&entries_path)
        .unwrap()
        .set_len(bundle2 + 30)
        .unwrap();
    let ledger = open(Backend::Redb, dir.path());
    assert_eq!(
        ledger.tree_head().size,
        100,
        "the whole unfinished commit is cut"
    );
    ledger.audit().unwrap();
    assert!(std::fs::read_dir(dir.path().join("log")).unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("entries.torn-")
    }));
}

#[test]
fn a_truncated_entry_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let ledger = open(Backend::Redb, dir.path());
        ledger
            .append(&(0..300).map(entry).collect::<Vec<_>>())
            .unwrap();
    }
    let entries_path = dir.path().join("log").join("entries");
    let len = std::fs::metadata(&entries_path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&entries_path)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    let err = Ledger::open(
        store::open(Backend::Redb, dir.path()).unwrap(),
        ORIGIN,
        signer(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::Corrupted { what } if what.contains("truncated")),
        "{err:?}"
    );
}

#[test]
fn a_newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(Backend::Redb, dir.path()));
    let storage = store::open(Backend::Redb, dir.path()).unwrap();
    assert_eq!(
        storage.kv().meta(FORMAT_KEY).unwrap(),
        Some(FORMAT.as_bytes().to_vec())
    );
    storage.kv().put_meta(FORMAT_KEY, b"9").unwrap();
    let err = Ledger::open(storage, ORIGIN, signer()).unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedFormat { found } if found == "9"),
        "{err:?}"
    );
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn files_are_owner_only() {
    for backend in BACKENDS {
        let parent = tempfile::tempdir().unwrap();
        let data = parent.path().join("data");
        let ledger = open(backend, &data);
        ledger.append(&[entry(0)]).unwrap();
        ledger.sign_checkpoint().unwrap();
        ledger.wait_indexed();
        drop(ledger);
        let mut checked = 0;
        let mut stack = vec![data.clone()];
        while let Some(dir) = stack.pop() {
            assert_eq!(mode(&dir), 0o700, "{}", dir.display());
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    assert_eq!(mode(&path), 0o600, "{backend:?}: {}", path.display());
                    checked += 1;
                }
            }
        }
        assert!(checked >= 12, "{checked}");
    }
}

/// Writes a store of format 1 (entries, tiles and the tree head in the key-value store), as
/// the previous release did, holding `entries`, with `tamper` applied to its tree head.
fn write_format_1(backend: Backend, dir: &Path, entries: &[Vec<u8>], root: veritrail_ledger::Hash) {
    std::fs::create_dir_all(dir).unwrap();
    let size = entries.len() as u64;
    let mut head = size.to_be_bytes().to_vec();
    head.extend_from_slice(root.as_bytes());
    let bundles: Vec<(u64, Vec<u8>)> = entries
        .chunks(256)
        .enumerate()
        .map(|(i, chunk)| {
            let bundle =
                veritrail_ledger::bundle::encode_bundle(chunk.iter().map(Vec::as_slice)).unwrap();
            (i as u64, bundle)
        })
        .collect();
    match backend {
        Backend::Redb => {
            use redb::TableDefinition;
            const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
            const BUNDLES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("bundles");
            const TILES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("tiles");
            const LEAVES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("leaves");
            let db = redb::Database::create(dir.join("ledger.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut meta = txn.open_table(META).unwrap();
                meta.insert("origin", ORIGIN.as_bytes()).unwrap();
                meta.insert("tree_head", head.as_slice()).unwrap();
                let mut table = txn.open_table(BUNDLES).unwrap();
                for (i, b) in &bundles {
                    table
                        .insert(i.to_be_bytes().as_slice(), b.as_slice())
                        .unwrap();
                }
                txn.open_table(TILES)
                    .unwrap()
                    .insert([0u8; 9].as_slice(), [7u8; 32].as_slice())
                    .unwrap();
                txn.open_table(LEAVES)
                    .unwrap()
                    .insert([1u8; 32].as_slice(), 0u64.to_be_bytes().as_slice())
                    .unwrap();
            }
            txn.commit().unwrap();
        }
        Backend::Sled => {
            let db = sled::open(dir.join("ledger.sled")).unwrap();
            db.insert(b"morigin", ORIGIN.as_bytes()).unwrap();
            db.insert(b"mtree_head", head).unwrap();
            for (i, b) in &bundles {
                let mut k = vec![b'b'];
                k.extend_from_slice(&i.to_be_bytes());
                db.insert(k, b.as_slice()).unwrap();
            }
            db.insert([b't', 0, 0, 0, 0, 0, 0, 0, 0, 0], &[7u8; 32])
                .unwrap();
            db.flush().unwrap();
        }
        _ => unreachable!(),
    }
}

#[test]
fn a_format_1_store_is_migrated_on_open() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let entries: Vec<Vec<u8>> = (0..70_000).map(entry).collect();
        let root = reference_root(&entries);
        write_format_1(backend, dir.path(), &entries, root);
        let ledger = open(backend, dir.path());
        assert_eq!(
            ledger.tree_head(),
            TreeHead::new(70_000, root),
            "{backend:?}"
        );
        assert_eq!(ledger.entry(12_345).unwrap(), entry(12_345));
        ledger.audit().unwrap();
        let storage_kv = ledger.store();
        assert_eq!(
            storage_kv.meta(FORMAT_KEY).unwrap(),
            Some(FORMAT.as_bytes().to_vec())
        );
        assert_eq!(storage_kv.legacy_tree_head().unwrap(), None);
        assert_eq!(storage_kv.legacy_bundle(0).unwrap(), None);
        let appended = ledger.append(&[entry(70_000)]).unwrap();
        assert_eq!(appended.indices, 70_000..70_001);
        drop(ledger);
        // Reopening finds format 2 and does not migrate again.
        let ledger = open(backend, dir.path());
        assert_eq!(ledger.tree_head().size, 70_001);
    }
}

#[test]
fn a_format_1_store_that_does_not_give_its_root_is_refused() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let entries: Vec<Vec<u8>> = (0..1000).map(entry).collect();
        write_format_1(backend, dir.path(), &entries, leaf_hash(b"not the root"));
        let err =
            Ledger::open(store::open(backend, dir.path()).unwrap(), ORIGIN, signer()).unwrap_err();
        assert!(
            matches!(err, Error::RootMismatch { size: 1000, .. }),
            "{backend:?}: {err:?}"
        );
        // Nothing was removed: the old data is still there to investigate.
        let storage = store::open(backend, dir.path()).unwrap();
        assert_eq!(storage.kv().legacy_tree_head().unwrap().unwrap().size, 1000);
        assert!(storage.kv().legacy_bundle(3).unwrap().is_some());
    }
}

mod hostile_files {
    //! Whatever bytes are found in the log's files, opening never panics: it recovers (a torn
    //! tail cut off, derived files rebuilt) or refuses with a typed error, and never serves an
    //! entry other than the one appended.
    use proptest::prelude::*;

    use super::*;

    /// A store of 600 entries in three commits of one frame each (0..256, 256..512,
    /// 512..600), closed cleanly.
    fn base() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let ledger = open(Backend::Redb, dir.path());
        let entries: Vec<Vec<u8>> = (0..600).map(entry).collect();
        for batch in [&entries[..256], &entries[256..512], &entries[512..]] {
            ledger.append(batch).unwrap();
        }
        ledger.wait_indexed();
        dir
    }

    fn reopen(dir: &Path) -> Result<Ledger, Error> {
        Ledger::open(store::open(Backend::Redb, dir).unwrap(), ORIGIN, signer())
    }

    /// Every entry the ledger serves is the one appended at that index.
    fn check_prefix(ledger: &Ledger) {
        let size = ledger.tree_head().size;
        assert!(size <= 600);
        for i in (0..size).step_by(37) {
            assert_eq!(ledger.entry(i).unwrap(), entry(i));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        #[test]
        fn garbage_after_the_entry_log(tail in proptest::collection::vec(any::<u8>(), 0..600)) {
            let dir = base();
            let path = dir.path().join("log").join("entries");
            let mut bytes = std::fs::read(&path).unwrap();
            bytes.extend_from_slice(&tail);
            std::fs::write(&path, &bytes).unwrap();
            // Random bytes are never a valid frame continuing the log (first index and CRC).
            let ledger = reopen(dir.path()).unwrap();
            prop_assert_eq!(ledger.tree_head().size, 600);
            check_prefix(&ledger);
        }

        #[test]
        fn bytes_flipped_in_the_entry_log(at in 0usize..40_000, bit in 0u8..8) {
            let dir = base();
            // Without the watermark every frame is replayed and checked.
            std::fs::remove_file(dir.path().join("log").join("state")).unwrap();
            let path = dir.path().join("log").join("entries");
            let mut bytes = std::fs::read(&path).unwrap();
            let at = at % bytes.len();
            bytes[at] ^= 1 << bit;
            std::fs::write(&path, &bytes).unwrap();
            // Each commit is one frame, one bundle: the last starts where bundle 2 does.
            let bundle2 = {
                let offsets = std::fs::read(dir.path().join("log").join("bundles")).unwrap();
                u64::from_be_bytes(offsets[16..24].try_into().unwrap()) as usize
            };
            match reopen(dir.path()) {
                // Damage in the final write: cut off as a torn tail.
                Ok(ledger) => {
                    prop_assert!(at >= bundle2, "damage at {at} before the last frame ({bundle2}) was cut off");
                    prop_assert_eq!(ledger.tree_head().size, 512);
                    check_prefix(&ledger);
                }
                // Damage followed by valid frames: refused, nothing cut.
                Err(e) => {
                    prop_assert!(matches!(&e, Error::Corrupted { what } if what.contains("not a write torn")), "{e:?}");
                    prop_assert!(at < bundle2);
                    prop_assert_eq!(std::fs::read(&path).unwrap(), bytes);
                }
            }
        }

        #[test]
        fn random_state_and_runs(
            state in proptest::collection::vec(any::<u8>(), 0..200),
            run in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let dir = base();
            std::fs::write(dir.path().join("log").join("state"), &state).unwrap();
            std::fs::write(
                dir.path().join("leaf-index").join(format!("{:020}-{:020}.run", 0, 600)),
                &run,
            )
            .unwrap();
            let ledger = reopen(dir.path()).unwrap();
            prop_assert_eq!(ledger.tree_head().size, 600);
            check_prefix(&ledger);
            ledger.wait_indexed();
            let (index, _) = ledger
                .inclusion_proof_by_leaf_hash(&leaf_hash(&entry(599)), 600)
                .unwrap();
            prop_assert_eq!(index, 599);
        }
    }
}
