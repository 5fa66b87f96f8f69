//! Offline receipts (`c2sp.org/tlog-proof@v1`): `Receipt::from_bytes` (parser) and
//! `Receipt::verify` (verifier) against the fixed log key.
//!
//! Asserts:
//! - whatever parses re-encodes to the identical bytes; whatever verifies has the fixed
//!   origin and an inclusion proof that `proof::verify_inclusion` accepts;
//! - a real receipt (a tree of fuzzed leaves, the reference audit path of a fuzzed index, a
//!   checkpoint signed by the log key and cosigned by the witness, fuzzed `extra`) round-trips
//!   and verifies, and another entry of the tree (with another leaf hash) is refused with
//!   `Inclusion(RootMismatch)`;
//! - the same receipt with one byte changed is soundly refused: if it still verifies for the
//!   entry, the entry really is at the (possibly changed) index of the same tree.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use veritrail_fuzz::{LOG, LOG_ORIGIN, WITNESS, mth, path};
use veritrail_ledger::checkpoint::Checkpoint;
use veritrail_ledger::proof::{ProofError, verify_inclusion};
use veritrail_ledger::receipt::{Receipt, ReceiptError};
use veritrail_ledger::{TreeHead, leaf_hash};

fn check_raw(data: &[u8]) {
    let Ok(receipt) = Receipt::from_bytes(data) else {
        return;
    };
    assert_eq!(receipt.to_bytes(), data, "re-encoding differs");
    let entry = receipt.extra.as_deref().unwrap_or(b"entry");
    if let Ok(checkpoint) = receipt.verify(entry, LOG_ORIGIN, &LOG.verifier()) {
        assert_eq!(checkpoint.origin, LOG_ORIGIN);
        assert_eq!(
            verify_inclusion(
                &leaf_hash(entry),
                receipt.index,
                &checkpoint.tree,
                &receipt.proof
            ),
            Ok(())
        );
    }
}

fn structured(u: &mut Unstructured<'_>) -> Result<()> {
    let n = u.int_in_range(1usize..=64)?;
    let entries: Vec<Vec<u8>> = (0..n)
        .map(|_| {
            let len = u.int_in_range(0..=3)?;
            Ok(u.bytes(len)?.to_vec())
        })
        .collect::<Result<_>>()?;
    let hashes: Vec<_> = entries.iter().map(|e| leaf_hash(e)).collect();
    let index = u.int_in_range(0..=n - 1)?;
    let tree = TreeHead::new(n as u64, mth(&hashes));
    let text = Checkpoint::new(LOG_ORIGIN, tree)
        .expect("valid origin")
        .to_text();
    let mut checkpoint = Checkpoint::new(LOG_ORIGIN, tree)
        .expect("valid origin")
        .sign(&LOG)
        .expect("signable");
    if u.arbitrary()? {
        let cosignature = WITNESS.sign(&text, u.int_in_range(0..=1 << 40)?);
        checkpoint
            .add_signature(cosignature.expect("valid text and time"))
            .expect("second signature");
    }
    let extra: Option<Vec<u8>> = if u.arbitrary()? {
        let len = u.int_in_range(0..=16)?;
        Some(u.bytes(len)?.to_vec())
    } else {
        None
    };
    let receipt = Receipt {
        extra,
        index: index as u64,
        proof: path(index, &hashes),
        checkpoint,
    };
    let bytes = receipt.to_bytes();
    assert_eq!(Receipt::from_bytes(&bytes).as_ref(), Ok(&receipt));
    let entry = &entries[index];
    let verified = receipt
        .verify(entry, LOG_ORIGIN, &LOG.verifier())
        .expect("an honest receipt verifies");
    assert_eq!(verified.tree, tree);
    let other = &entries[u.int_in_range(0..=n - 1)?];
    if leaf_hash(other) != hashes[index] {
        assert!(matches!(
            receipt.verify(other, LOG_ORIGIN, &LOG.verifier()),
            Err(ReceiptError::Inclusion(ProofError::RootMismatch { .. }))
        ));
    }

    // One byte changed.
    let at = u.int_in_range(0..=bytes.len() - 1)?;
    let mask: u8 = u.int_in_range(1..=255)?;
    let mut tampered = bytes;
    tampered[at] ^= mask;
    if let Ok(parsed) = Receipt::from_bytes(&tampered)
        && let Ok(checkpoint) = parsed.verify(entry, LOG_ORIGIN, &LOG.verifier())
    {
        assert_eq!(checkpoint.tree, tree, "a changed tree head verified");
        let at_index = usize::try_from(parsed.index)
            .ok()
            .and_then(|i| hashes.get(i));
        assert_eq!(
            at_index,
            Some(&hashes[index]),
            "entry verified at index {} where it is not",
            parsed.index
        );
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    check_raw(data);
    let _ = structured(&mut Unstructured::new(data));
});
