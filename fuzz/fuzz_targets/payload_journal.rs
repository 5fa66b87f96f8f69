//! The payload store's recovery (`PayloadStore::open`) over a hostile journal: the fuzz input
//! is the `payloads/journal` file of a store whose master key is known.
//!
//! Asserts: opening never panics; it either refuses with a typed error or opens a store that
//! answers every lookup (found, erased or missing) without panicking, and its journal is then
//! at most as long as the input (a torn tail is cut off, nothing is added).
#![no_main]

use libfuzzer_sys::fuzz_target;
use veritrail_server::payloads::PayloadStore;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("payload-master.key"),
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
    )
    .expect("write the master key");
    std::fs::create_dir_all(dir.path().join("payloads/segments")).expect("dirs");
    std::fs::write(dir.path().join("payloads/journal"), data).expect("write the journal");
    let Ok(store) = PayloadStore::open(dir.path()) else {
        return;
    };
    for nonce in [[0u8; 16], [1; 16], [0xff; 16]] {
        let _ = store.fetch(&nonce, "prompt");
    }
    let _ = store.affected(Some("subject:x"), Some("c"), None);
    drop(store);
    let kept = std::fs::metadata(dir.path().join("payloads/journal"))
        .expect("journal")
        .len();
    assert!(kept <= data.len() as u64);
});
