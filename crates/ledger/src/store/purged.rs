//! The ranges of entry bundles whose bodies were purged from the entry log after they were
//! archived, kept in the key-value store under the metadata key [`PURGED_KEY`].
//!
//! One line per range, in bundle order: `<first bundle> <end bundle> <purge record index>
//! <archive location>`. Hash tiles are never purged, so every proof still works; only the
//! entries' bytes are gone from this store (reads answer [`Error::Purged`] with the archive's
//! location).

use std::ops::Range;

use crate::error::Error;

/// Metadata key of the purged ranges.
pub const PURGED_KEY: &str = "purged-bundles";

/// A range of whole entry bundles whose entries were archived, then purged here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurgedRange {
    /// The bundles, `first..end`.
    pub bundles: Range<u64>,
    /// The index of the log record that announced the purge (the archive, its manifest hash).
    pub record: u64,
    /// Where the archive is (a directory or a bucket URL).
    pub location: String,
}

impl PurgedRange {
    /// Whether bundle `bundle` is in the range.
    pub fn holds(&self, bundle: u64) -> bool {
        self.bundles.contains(&bundle)
    }
}

/// Encodes the ranges (sorted by first bundle).
pub(crate) fn encode(ranges: &[PurgedRange]) -> Vec<u8> {
    let mut text = String::new();
    for range in ranges {
        text.push_str(&format!(
            "{} {} {} {}\n",
            range.bundles.start, range.bundles.end, range.record, range.location
        ));
    }
    text.into_bytes()
}

/// Decodes what [`encode`] wrote. This does not panic.
///
/// # Errors
/// [`Error::Corrupted`] for anything else.
pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<PurgedRange>, Error> {
    let bad = |why: &str| Error::corrupted(format!("the purged-bundles record: {why}"));
    let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8"))?;
    let mut ranges: Vec<PurgedRange> = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(4, ' ');
        let mut number = || {
            parts
                .next()
                .and_then(|p| crate::ascii::parse_decimal(p).ok())
                .ok_or_else(|| bad("a number is missing or malformed"))
        };
        let (first, end, record) = (number()?, number()?, number()?);
        let location = parts
            .next()
            .filter(|l| !l.is_empty())
            .ok_or_else(|| bad("no location"))?;
        if first >= end || ranges.last().is_some_and(|last| last.bundles.end > first) {
            return Err(bad("ranges are empty, out of order or overlap"));
        }
        ranges.push(PurgedRange {
            bundles: first..end,
            record,
            location: location.to_owned(),
        });
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn ranges_round_trip_and_damage_is_refused() {
        let ranges = vec![
            PurgedRange {
                bundles: 0..4,
                record: 1030,
                location: "s3://b/archive/bundles-0-4".into(),
            },
            PurgedRange {
                bundles: 9..12,
                record: 4000,
                location: "/var/archive with space".into(),
            },
        ];
        assert_eq!(decode(&encode(&ranges)).unwrap(), ranges);
        assert_eq!(decode(b"").unwrap(), vec![]);
        for bad in [
            &b"4 4 1 x\n"[..],
            b"0 4 1\n",
            b"0 4 1 \n",
            b"05 6 1 x\n",
            b"0 4 1 x\n3 6 2 y\n",
            b"a b c d\n",
            b"\xff",
        ] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
        }
    }
}
