//! Bodies of C2SP tlog-tiles resources, checked for their exact shape: a hash tile of width
//! W is exactly W 32-byte hashes, an entry bundle of width W exactly W length-prefixed
//! entries. Used for tiles read over HTTP ([`crate::LogClient`]) and from any
//! [`crate::TileSource`].

use veritrail_ledger::Hash;
use veritrail_ledger::bundle::decode_bundle;
use veritrail_ledger::hash::HASH_SIZE;
use veritrail_ledger::tile::TileId;

use crate::answers::malformed;
use crate::error::ClientError;

/// Splits a hash tile body into exactly `width` hashes.
pub(crate) fn parse_hash_tile(bytes: &[u8], width: u16) -> Result<Vec<Hash>, String> {
    let want = usize::from(width) * HASH_SIZE;
    if bytes.len() != want {
        return Err(format!(
            "hash tile of width {width} must be {want} bytes, got {}",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(HASH_SIZE)
        .filter_map(|c| Hash::try_from_slice(c).ok())
        .collect())
}

/// Decodes a bundle that must hold exactly `width` entries.
pub(crate) fn parse_bundle(
    bytes: &[u8],
    width: u16,
    path: &str,
) -> Result<Vec<Vec<u8>>, ClientError> {
    let entries =
        decode_bundle(bytes, usize::from(width)).map_err(|source| ClientError::Bundle {
            path: path.to_owned(),
            source,
        })?;
    if entries.len() != usize::from(width) {
        return Err(malformed(
            path,
            format!(
                "bundle holds {} entries, its width is {width}",
                entries.len()
            ),
        ));
    }
    Ok(entries.into_iter().map(<[u8]>::to_vec).collect())
}

/// The hashes of hash tile `id`, from its body.
///
/// # Errors
/// [`ClientError::MalformedResponse`] for a body of another length than `id.width()` hashes.
pub(crate) fn hash_tile(id: &TileId, bytes: &[u8]) -> Result<Vec<Hash>, ClientError> {
    parse_hash_tile(bytes, id.width()).map_err(|reason| malformed(&id.path(), reason))
}

/// The entries of entry bundle `id`, from its body.
///
/// # Errors
/// [`ClientError::Bundle`] or [`ClientError::MalformedResponse`] unless the body holds
/// exactly `id.width()` entries.
pub(crate) fn bundle(id: &TileId, bytes: &[u8]) -> Result<Vec<Vec<u8>>, ClientError> {
    parse_bundle(bytes, id.width(), &id.path())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use veritrail_ledger::bundle::encode_bundle;

    #[test]
    fn hash_tiles_must_have_the_exact_length() {
        let tile: Vec<u8> = (0..64u8).collect();
        let hashes = parse_hash_tile(&tile, 2).unwrap();
        assert_eq!(hashes.len(), 2);
        assert_eq!(hashes[1].as_bytes()[..], tile[32..]);
        assert!(parse_hash_tile(&tile, 1).is_err());
        assert!(parse_hash_tile(&tile, 3).is_err());
        assert!(parse_hash_tile(&tile[..63], 2).is_err());
    }

    #[test]
    fn bundles_must_hold_exactly_their_width() {
        let entries: [&[u8]; 3] = [b"a", b"bb", b"ccc"];
        let bytes = encode_bundle(entries.iter().copied()).unwrap();
        assert_eq!(parse_bundle(&bytes, 3, "p").unwrap().len(), 3);
        assert!(matches!(
            parse_bundle(&bytes, 4, "p"),
            Err(ClientError::MalformedResponse { .. })
        ));
        assert!(matches!(
            parse_bundle(&bytes, 2, "p"),
            Err(ClientError::Bundle { .. })
        ));
        assert!(matches!(
            parse_bundle(&bytes[..bytes.len() - 1], 3, "p"),
            Err(ClientError::Bundle { .. })
        ));
    }

    proptest! {
        #[test]
        fn tile_parsers_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..2048),
            width in 0u16..=300,
        ) {
            if let Ok(hashes) = parse_hash_tile(&bytes, width) {
                prop_assert_eq!(hashes.len(), usize::from(width));
            }
            if let Ok(entries) = parse_bundle(&bytes, width, "p") {
                prop_assert_eq!(entries.len(), usize::from(width));
            }
        }
    }
}
