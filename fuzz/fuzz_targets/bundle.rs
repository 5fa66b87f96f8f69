//! Entry bundles (tlog-tiles v0.1.0): `decode_bundle` and `iter_bundle` (parsers),
//! `encode_bundle` / `append_entry` (encoders).
//!
//! Asserts:
//! - decoding is canonical: whatever decodes re-encodes to the identical bytes, with at most
//!   the requested number of entries; `iter_bundle` yields the same entries;
//! - every error is the right one at the right place: `TruncatedLength` one byte before the
//!   end, `TruncatedEntry` announcing more than what remains, `TooManyEntries` exactly when
//!   the unbounded decoding finds more entries than allowed;
//! - entries cut from the input and encoded decode back to themselves.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use veritrail_ledger::bundle::{
    BUNDLE_ENTRIES, BundleError, MAX_ENTRY_SIZE, append_entry, decode_bundle, encode_bundle,
    iter_bundle,
};

fn check_decode(data: &[u8], max: usize) {
    // The reference: every entry the iterator yields, without a count limit.
    let all: core::result::Result<Vec<&[u8]>, BundleError> = iter_bundle(data).collect();
    match decode_bundle(data, max) {
        Ok(entries) => {
            assert!(entries.len() <= max);
            assert_eq!(Ok(&entries), all.as_ref());
            let mut again = Vec::with_capacity(data.len());
            for entry in &entries {
                append_entry(&mut again, entry).expect("a decoded entry fits");
            }
            assert_eq!(again, data, "re-encoding differs");
            if entries.len() <= BUNDLE_ENTRIES {
                assert_eq!(encode_bundle(entries.iter().copied()).as_deref(), Ok(data));
            }
        }
        Err(BundleError::TooManyEntries { max: m }) => {
            assert_eq!(m, max);
            // More than `max` entries, or `max` entries followed by more (even broken) data.
            let complete = iter_bundle(data).take_while(|e| e.is_ok()).count();
            assert!(complete >= max, "{complete} < {max}");
        }
        Err(BundleError::TruncatedLength { offset }) => {
            assert_eq!(offset + 1, data.len());
            assert_eq!(all, Err(BundleError::TruncatedLength { offset }));
        }
        Err(BundleError::TruncatedEntry {
            offset,
            len,
            available,
        }) => {
            assert!(available < len && len <= MAX_ENTRY_SIZE);
            assert_eq!(offset + available, data.len());
            assert_eq!(
                all,
                Err(BundleError::TruncatedEntry {
                    offset,
                    len,
                    available
                })
            );
        }
        Err(other) => panic!("unexpected {other:?}"),
    }
}

fn structured(u: &mut Unstructured<'_>) -> Result<()> {
    let count = u.int_in_range(0..=BUNDLE_ENTRIES + 1)?;
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let len = u.int_in_range(0..=64)?;
        entries.push(u.bytes(len)?);
    }
    match encode_bundle(entries.iter().copied()) {
        Ok(bytes) => {
            assert!(entries.len() <= BUNDLE_ENTRIES);
            assert_eq!(decode_bundle(&bytes, BUNDLE_ENTRIES), Ok(entries.clone()));
            assert_eq!(
                bytes.len(),
                entries.iter().map(|e| e.len() + 2).sum::<usize>()
            );
        }
        Err(e) => {
            assert_eq!(
                e,
                BundleError::TooManyEntries {
                    max: BUNDLE_ENTRIES
                }
            );
            assert!(entries.len() > BUNDLE_ENTRIES);
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    check_decode(data, BUNDLE_ENTRIES);
    check_decode(data, usize::MAX);
    // A limit taken from the input: small limits are the interesting ones.
    let max = data.first().map_or(0, |&b| usize::from(b % 8));
    check_decode(data, max);
    let _ = structured(&mut Unstructured::new(data));
});
