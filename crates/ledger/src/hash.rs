//! RFC 6962 / RFC 9162 hashing: the 32-byte [`Hash`](struct@Hash) type, leaf and node hashes.
//!
//! - leaf hash = SHA-256(0x00 || leaf bytes) (RFC 9162 section 2.1.1)
//! - node hash = SHA-256(0x01 || left || right)
//! - the root of the empty tree is SHA-256 of the empty string.

use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

/// Length in bytes of a SHA-256 hash.
pub const HASH_SIZE: usize = 32;

/// A SHA-256 hash: a leaf hash, an interior node hash or a tree root.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash(pub [u8; HASH_SIZE]);

/// The error returned when bytes or text do not hold exactly one 32-byte hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    /// The input had the wrong number of bytes.
    #[error("a hash is {HASH_SIZE} bytes, got {got}")]
    Length {
        /// How many bytes were given.
        got: usize,
    },
    /// The text was not canonical standard base64.
    #[error("hash is not valid standard base64")]
    Base64,
}

impl Hash {
    /// The root of the empty tree: SHA-256("") = `e3b0c442...`.
    pub fn empty_root() -> Self {
        Hash(Sha256::digest([]).into())
    }

    /// Borrows the hash as bytes.
    pub fn as_bytes(&self) -> &[u8; HASH_SIZE] {
        &self.0
    }

    /// Copies a hash out of a slice that must be exactly 32 bytes long.
    ///
    /// # Errors
    /// [`HashError::Length`] when `bytes` is not 32 bytes long.
    pub fn try_from_slice(bytes: &[u8]) -> Result<Self, HashError> {
        <[u8; HASH_SIZE]>::try_from(bytes)
            .map(Hash)
            .map_err(|_| HashError::Length { got: bytes.len() })
    }

    /// Decodes standard (padded) base64 of exactly 32 bytes.
    ///
    /// # Errors
    /// [`HashError::Base64`] for invalid base64, [`HashError::Length`] for a wrong length.
    pub fn from_base64(text: &str) -> Result<Self, HashError> {
        // 32 bytes encode to 44 characters; refuse anything longer before decoding.
        if text.len() > 64 {
            return Err(HashError::Length {
                got: text.len() * 3 / 4,
            });
        }
        let bytes = STANDARD.decode(text).map_err(|_| HashError::Base64)?;
        Self::try_from_slice(&bytes)
    }

    /// Encodes the hash as standard padded base64 (44 characters).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

impl fmt::Display for Hash {
    /// Lower-case hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::ascii::write_hex(f, &self.0)
    }
}

impl From<[u8; HASH_SIZE]> for Hash {
    fn from(bytes: [u8; HASH_SIZE]) -> Self {
        Hash(bytes)
    }
}

impl AsRef<[u8]> for Hash {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// A tree head: a tree size and the root hash of the tree of that size.
///
/// A root never travels without its size.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct TreeHead {
    /// Number of leaves in the tree.
    pub size: u64,
    /// Root hash of the tree of `size` leaves.
    pub root: Hash,
}

impl TreeHead {
    /// A tree head from a size and a root.
    pub fn new(size: u64, root: Hash) -> Self {
        TreeHead { size, root }
    }

    /// The head of the empty tree.
    pub fn empty() -> Self {
        TreeHead {
            size: 0,
            root: Hash::empty_root(),
        }
    }
}

/// The RFC 6962 leaf hash of `leaf`: SHA-256(0x00 || leaf).
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(leaf);
    Hash(h.finalize().into())
}

/// The RFC 6962 interior node hash: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left.0);
    h.update(right.0);
    Hash(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(
            Hash::empty_root().to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn leaf_and_node_hashes_use_domain_separation() {
        // RFC 6962 test vector: leaf hash of the empty leaf.
        assert_eq!(
            leaf_hash(b"").to_string(),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        let a = leaf_hash(b"a");
        let b = leaf_hash(b"b");
        assert_ne!(node_hash(&a, &b), node_hash(&b, &a));
        assert_ne!(leaf_hash(&[a.0, b.0].concat()), node_hash(&a, &b));
    }

    #[test]
    fn base64_round_trip_and_rejections() {
        let h = leaf_hash(b"x");
        assert_eq!(Hash::from_base64(&h.to_base64()), Ok(h));
        assert_eq!(Hash::from_base64("AAAA"), Err(HashError::Length { got: 3 }));
        assert_eq!(Hash::from_base64("!!!!"), Err(HashError::Base64));
        assert_eq!(
            Hash::try_from_slice(&[0; 31]),
            Err(HashError::Length { got: 31 })
        );
    }
}
