//! C2SP tlog-tiles v0.1.0 entry bundles (section "Log Entries").
//!
//! An entry bundle (`tile/entries/<N>[.p/<W>]`, see [`crate::tile`]) holds the leaf data of
//! up to 256 consecutive entries, each as a big-endian `u16` length followed by that many
//! bytes, with nothing between or after them:
//!
//! ```text
//! [len0: u16 BE][entry0: len0 bytes][len1: u16 BE][entry1: len1 bytes]...
//! ```
//!
//! So one entry is at most 65535 bytes. Decoding is total: any byte string either decodes
//! to entries whose re-encoding is exactly that byte string, or is a [`BundleError`] that
//! says where it went wrong. Decoding borrows the entries from the input; it does not copy.
//!
//! This module has no I/O.
//!
//! # Example
//!
//! ```
//! use veritrail_ledger::bundle::{BUNDLE_ENTRIES, decode_bundle, encode_bundle};
//!
//! let bytes = encode_bundle([&b"first"[..], b"", b"third"])?;
//! assert_eq!(&bytes[..7], b"\x00\x05first");
//! let entries = decode_bundle(&bytes, BUNDLE_ENTRIES)?;
//! assert_eq!(entries, [&b"first"[..], b"", b"third"]);
//! # Ok::<(), veritrail_ledger::bundle::BundleError>(())
//! ```

use core::iter::FusedIterator;

/// The largest entry a bundle can hold: its length must fit the `u16` prefix.
pub const MAX_ENTRY_SIZE: usize = u16::MAX as usize;

/// The number of entries in a full bundle: one per leaf of a full level-0 tile
/// ([`crate::tile::TILE_WIDTH`]).
pub const BUNDLE_ENTRIES: usize = 256;

/// Size of the length prefix of each entry.
const PREFIX_SIZE: usize = 2;

/// Why an entry bundle could not be encoded or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// An entry is longer than [`MAX_ENTRY_SIZE`] and cannot be length-prefixed.
    #[error("entry of {len} bytes exceeds the maximum of {MAX_ENTRY_SIZE}")]
    EntryTooLarge {
        /// The entry's length in bytes.
        len: usize,
    },
    /// There are more entries than allowed: more than [`BUNDLE_ENTRIES`] when encoding, or
    /// more than the caller's maximum when decoding.
    #[error("bundle holds more than {max} entries")]
    TooManyEntries {
        /// The maximum that was exceeded.
        max: usize,
    },
    /// The bundle ends one byte into an entry's two-byte length prefix.
    #[error("bundle truncated in the length prefix at byte {offset}")]
    TruncatedLength {
        /// Byte offset of the incomplete prefix.
        offset: usize,
    },
    /// The bundle ends before the bytes an entry's prefix announces.
    #[error("entry at byte {offset} announces {len} bytes but only {available} remain")]
    TruncatedEntry {
        /// Byte offset of the entry's data (just after its prefix).
        offset: usize,
        /// Length announced by the prefix.
        len: usize,
        /// Bytes actually left in the bundle.
        available: usize,
    },
}

/// Appends one entry to `buf`: its length as a big-endian `u16`, then its bytes.
///
/// # Errors
///
/// [`BundleError::EntryTooLarge`] when `entry` is longer than [`MAX_ENTRY_SIZE`]; `buf` is
/// then left unchanged.
pub fn append_entry(buf: &mut Vec<u8>, entry: &[u8]) -> Result<(), BundleError> {
    let len =
        u16::try_from(entry.len()).map_err(|_| BundleError::EntryTooLarge { len: entry.len() })?;
    buf.reserve(PREFIX_SIZE + entry.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(entry);
    Ok(())
}

/// Encodes up to [`BUNDLE_ENTRIES`] entries as a bundle.
///
/// # Errors
///
/// [`BundleError::EntryTooLarge`] for an entry longer than [`MAX_ENTRY_SIZE`];
/// [`BundleError::TooManyEntries`] for more than [`BUNDLE_ENTRIES`] entries.
pub fn encode_bundle<'a>(
    entries: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<u8>, BundleError> {
    let mut buf = Vec::new();
    for (count, entry) in entries.into_iter().enumerate() {
        if count >= BUNDLE_ENTRIES {
            return Err(BundleError::TooManyEntries {
                max: BUNDLE_ENTRIES,
            });
        }
        append_entry(&mut buf, entry)?;
    }
    Ok(buf)
}

/// Decodes a whole bundle of at most `max_entries` entries, borrowing them from `bytes`.
///
/// Pass [`BUNDLE_ENTRIES`] to accept any valid bundle, or the width the tile path or tree
/// size implies (then compare the number of entries returned with it). The empty input is
/// a bundle of zero entries. This does not panic.
///
/// # Errors
///
/// - [`BundleError::TooManyEntries`] when data remains after `max_entries` entries;
/// - [`BundleError::TruncatedLength`] when the input ends inside a length prefix;
/// - [`BundleError::TruncatedEntry`] when it ends inside an entry.
pub fn decode_bundle(bytes: &[u8], max_entries: usize) -> Result<Vec<&[u8]>, BundleError> {
    // Every entry takes at least two bytes: never reserve more than the input can hold.
    let mut entries = Vec::with_capacity(max_entries.min(bytes.len() / PREFIX_SIZE));
    for entry in iter_bundle(bytes) {
        if entries.len() == max_entries {
            return Err(BundleError::TooManyEntries { max: max_entries });
        }
        entries.push(entry?);
    }
    Ok(entries)
}

/// Iterates over the entries of a bundle without collecting them; see [`BundleEntries`].
pub fn iter_bundle(bytes: &[u8]) -> BundleEntries<'_> {
    BundleEntries {
        rest: bytes,
        offset: 0,
        failed: false,
    }
}

/// Iterator over the entries of a bundle, from [`iter_bundle`].
///
/// Yields each entry in order, borrowed from the input. If the input is malformed it yields
/// one [`BundleError`] (`TruncatedLength` or `TruncatedEntry`) and then ends. It does not
/// limit the number of entries; [`decode_bundle`] does. This does not panic.
#[derive(Debug, Clone)]
pub struct BundleEntries<'a> {
    rest: &'a [u8],
    offset: usize,
    failed: bool,
}

impl<'a> Iterator for BundleEntries<'a> {
    type Item = Result<&'a [u8], BundleError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let Some((prefix, after)) = self.rest.split_first_chunk::<PREFIX_SIZE>() else {
            self.failed = true;
            return Some(Err(BundleError::TruncatedLength {
                offset: self.offset,
            }));
        };
        let len = usize::from(u16::from_be_bytes(*prefix));
        let data_offset = self.offset.saturating_add(PREFIX_SIZE);
        let Some((entry, rest)) = after.split_at_checked(len) else {
            self.failed = true;
            return Some(Err(BundleError::TruncatedEntry {
                offset: data_offset,
                len,
                available: after.len(),
            }));
        };
        self.rest = rest;
        self.offset = data_offset.saturating_add(len);
        Some(Ok(entry))
    }
}

impl FusedIterator for BundleEntries<'_> {}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn encoding_is_u16_big_endian_prefixed() {
        let mut buf = Vec::new();
        append_entry(&mut buf, b"abc").unwrap();
        append_entry(&mut buf, b"").unwrap();
        assert_eq!(buf, b"\x00\x03abc\x00\x00");
        let big = vec![7u8; 0x1234];
        buf.clear();
        append_entry(&mut buf, &big).unwrap();
        assert_eq!(&buf[..3], b"\x12\x34\x07");
        assert_eq!(buf.len(), 2 + 0x1234);
    }

    #[test]
    fn size_and_count_limits() {
        let max = vec![0xAB; MAX_ENTRY_SIZE];
        let mut buf = vec![1, 2, 3];
        append_entry(&mut buf, &max).unwrap();
        assert_eq!(&buf[3..5], b"\xff\xff");
        assert_eq!(decode_bundle(&buf[3..], 1).unwrap(), [&max[..]]);

        let too_big = vec![0; MAX_ENTRY_SIZE + 1];
        let mut buf = vec![1, 2, 3];
        assert_eq!(
            append_entry(&mut buf, &too_big),
            Err(BundleError::EntryTooLarge { len: 65536 })
        );
        assert_eq!(buf, [1, 2, 3], "unchanged on error");
        assert_eq!(
            encode_bundle([&b"ok"[..], &too_big]),
            Err(BundleError::EntryTooLarge { len: 65536 })
        );

        let one = [0u8; 1];
        let full = vec![&one[..]; BUNDLE_ENTRIES];
        let bytes = encode_bundle(full.iter().copied()).unwrap();
        assert_eq!(bytes.len(), 3 * BUNDLE_ENTRIES);
        assert_eq!(decode_bundle(&bytes, BUNDLE_ENTRIES).unwrap(), full);
        assert_eq!(
            encode_bundle(vec![&one[..]; BUNDLE_ENTRIES + 1]),
            Err(BundleError::TooManyEntries {
                max: BUNDLE_ENTRIES
            })
        );
        assert_eq!(
            decode_bundle(&bytes, BUNDLE_ENTRIES - 1),
            Err(BundleError::TooManyEntries {
                max: BUNDLE_ENTRIES - 1
            })
        );
        // Too many entries is reported even when the extra data is itself truncated.
        assert_eq!(
            decode_bundle(b"\x00\x00\x00", 1),
            Err(BundleError::TooManyEntries { max: 1 })
        );
        assert_eq!(
            decode_bundle(b"\x00\x00", 0),
            Err(BundleError::TooManyEntries { max: 0 })
        );
    }

    #[test]
    fn decode_rejections_carry_offsets() {
        assert_eq!(decode_bundle(b"", 256), Ok(vec![]));
        assert_eq!(decode_bundle(b"", 0), Ok(vec![]));
        assert_eq!(decode_bundle(b"\x00\x00", 256), Ok(vec![&b""[..]]));
        assert_eq!(
            decode_bundle(b"\x00", 256),
            Err(BundleError::TruncatedLength { offset: 0 })
        );
        assert_eq!(
            decode_bundle(b"\x00\x01a\x00", 256),
            Err(BundleError::TruncatedLength { offset: 3 })
        );
        assert_eq!(
            decode_bundle(b"\x00\x03ab", 256),
            Err(BundleError::TruncatedEntry {
                offset: 2,
                len: 3,
                available: 2
            })
        );
        assert_eq!(
            decode_bundle(b"\x00\x01a\xff\xff", 256),
            Err(BundleError::TruncatedEntry {
                offset: 5,
                len: 65535,
                available: 0
            })
        );
        let mut it = iter_bundle(b"\x00\x01a\x00\x05xy");
        assert_eq!(it.next(), Some(Ok(&b"a"[..])));
        assert_eq!(
            it.next(),
            Some(Err(BundleError::TruncatedEntry {
                offset: 5,
                len: 5,
                available: 2
            }))
        );
        assert_eq!(it.next(), None);
        assert_eq!(it.next(), None);
    }

    proptest! {
        #[test]
        fn decode_is_total_and_canonical(
            bytes in proptest::collection::vec(any::<u8>(), 0..2048),
            max in 0usize..300,
        ) {
            match decode_bundle(&bytes, max) {
                Ok(entries) => {
                    prop_assert!(entries.len() <= max);
                    // The only byte string that decodes to these entries is the input itself.
                    let mut again = Vec::new();
                    for e in &entries {
                        append_entry(&mut again, e).unwrap();
                    }
                    prop_assert_eq!(again, bytes);
                }
                Err(BundleError::TooManyEntries { max: m }) => prop_assert_eq!(m, max),
                Err(BundleError::TruncatedLength { offset }) => {
                    prop_assert_eq!(offset, bytes.len() - 1);
                }
                Err(BundleError::TruncatedEntry { offset, len, available }) => {
                    prop_assert!(available < len);
                    prop_assert_eq!(offset + available, bytes.len());
                }
                Err(e) => prop_assert!(false, "unexpected {:?}", e),
            }
        }

        #[test]
        fn round_trip(entries in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..300), 0..=BUNDLE_ENTRIES)
        ) {
            let bytes = encode_bundle(entries.iter().map(Vec::as_slice)).unwrap();
            let decoded = decode_bundle(&bytes, BUNDLE_ENTRIES).unwrap();
            prop_assert_eq!(decoded.len(), entries.len());
            for (d, e) in decoded.iter().zip(&entries) {
                prop_assert_eq!(*d, e.as_slice());
            }
            let iterated: Result<Vec<&[u8]>, _> = iter_bundle(&bytes).collect();
            prop_assert_eq!(iterated.unwrap(), decoded);
            // Any strict prefix that cuts an entry fails; cutting between entries is fine.
            if !bytes.is_empty() {
                let cut = bytes.len() - 1;
                prop_assert!(decode_bundle(&bytes[..cut], BUNDLE_ENTRIES).is_err());
            }
        }
    }
}
