//! Shared pieces of the Veritrail fuzz targets: fixed keys, a reference base64 encoder, the
//! RFC 9162 reference tree (recursive `MTH`, `PATH`, `PROOF`) and the RFC 9162 verification
//! loops (sections 2.1.3.2 and 2.1.4.2) as oracles, and size pickers that favour the edges.
//!
//! Everything here is written independently of `veritrail-ledger`'s own algorithms, so the
//! targets compare two implementations instead of checking the library against itself.

use std::sync::LazyLock;

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use veritrail_ledger::cosignature::CosignatureSigner;
use veritrail_ledger::note::{KeyName, NoteSigner, NoteVerifier};
use veritrail_ledger::{Hash, leaf_hash, node_hash};

/// Origin (and key name) of the fixed test log.
pub const LOG_ORIGIN: &str = "veritrail.example/log";

/// Key name of the fixed test witness.
pub const WITNESS_NAME: &str = "witness.example/w1";

/// The published PeterNeumann verifier key (Go `note` package, `shared/vectors/notes`).
pub const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";

/// The published PeterNeumann private key (Go `note` package).
pub const PETER_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";

/// The C2SP signed-note example key (`example.com/foo`).
pub const C2SP_VKEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";

/// The Go checksum database key (a real production checkpoint in `sumdb.note`).
pub const SUMDB_VKEY: &str = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";

/// Origin of the Go checksum database checkpoints.
pub const SUMDB_ORIGIN: &str = "go.sum database tree";

/// The fixed log signer (Ed25519, type 0x01), from a constant seed.
pub static LOG: LazyLock<NoteSigner> = LazyLock::new(|| {
    NoteSigner::from_seed(
        KeyName::new(LOG_ORIGIN).expect("valid key name"),
        [0x4c; 32],
    )
});

/// The fixed witness (cosignature, type 0x04), from a constant seed.
pub static WITNESS: LazyLock<CosignatureSigner> = LazyLock::new(|| {
    CosignatureSigner::from_seed(
        KeyName::new(WITNESS_NAME).expect("valid key name"),
        [0x57; 32],
    )
});

/// The Go checksum database verifier ([`SUMDB_VKEY`]).
pub static SUMDB: LazyLock<NoteVerifier> =
    LazyLock::new(|| SUMDB_VKEY.parse().expect("published key parses"));

/// Every verifier the note targets trust: the test log and witness, and the three published
/// keys of `shared/vectors/notes`, so that those files verify when used as seeds.
pub static VERIFIERS: LazyLock<Vec<NoteVerifier>> = LazyLock::new(|| {
    vec![
        LOG.verifier(),
        WITNESS.verifier(),
        PETER_VKEY.parse().expect("published key parses"),
        C2SP_VKEY.parse().expect("published key parses"),
        SUMDB.clone(),
    ]
});

/// Standard padded base64 (RFC 4648 section 4), written out here as an independent reference.
pub fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let sextet = |v: u32| char::from(ALPHABET[(v & 63) as usize]);
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let v = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        out.push(sextet(v >> 18));
        out.push(sextet(v >> 12));
        out.push(if chunk.len() > 1 { sextet(v >> 6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(v) } else { '=' });
    }
    out
}

// -------------------------------------------------------------------------------------------
// RFC 9162 section 2.1 reference tree, as the RFC's recursive definitions.
// -------------------------------------------------------------------------------------------

/// The largest power of two strictly less than `n` (`n >= 2`), by counting up.
fn split(n: usize) -> usize {
    let mut k = 1;
    while k < n - k {
        k *= 2;
    }
    k
}

/// MTH(D[n]) over leaf hashes.
pub fn mth(d: &[Hash]) -> Hash {
    match d {
        [] => Hash::empty_root(),
        [one] => *one,
        _ => {
            let k = split(d.len());
            node_hash(&mth(&d[..k]), &mth(&d[k..]))
        }
    }
}

/// PATH(m, D[n]): the inclusion proof of leaf `m`, bottom-up.
pub fn path(m: usize, d: &[Hash]) -> Vec<Hash> {
    if d.len() <= 1 {
        return Vec::new();
    }
    let k = split(d.len());
    let mut p;
    if m < k {
        p = path(m, &d[..k]);
        p.push(mth(&d[k..]));
    } else {
        p = path(m - k, &d[k..]);
        p.push(mth(&d[..k]));
    }
    p
}

/// PROOF(m, D[n]) = SUBPROOF(m, D[n], true), for `0 < m <= n`.
pub fn consistency(m: usize, d: &[Hash]) -> Vec<Hash> {
    fn subproof(m: usize, d: &[Hash], complete: bool) -> Vec<Hash> {
        if m == d.len() {
            return if complete { Vec::new() } else { vec![mth(d)] };
        }
        let k = split(d.len());
        let mut p;
        if m <= k {
            p = subproof(m, &d[..k], complete);
            p.push(mth(&d[k..]));
        } else {
            p = subproof(m - k, &d[k..], false);
            p.push(mth(&d[..k]));
        }
        p
    }
    subproof(m, d, true)
}

/// `n` distinct-or-not leaf hashes derived from fuzz input: each leaf is 0 to 3 bytes, so
/// duplicate leaves (and so duplicate leaf hashes at other indices) are common.
pub fn leaves(u: &mut Unstructured<'_>, n: usize) -> Result<Vec<Hash>> {
    (0..n)
        .map(|_| {
            let len = u.int_in_range(0..=3)?;
            Ok(leaf_hash(u.bytes(len)?))
        })
        .collect()
}

// -------------------------------------------------------------------------------------------
// RFC 9162 verification loops, step by step.
// -------------------------------------------------------------------------------------------

/// What the RFC 9162 section 2.1.3.2 loop concludes, before comparing with a root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rfc {
    /// `leaf_index >= tree_size` (step 1) or `old > new`, `old == 0` (preconditions).
    OutOfRange,
    /// The proof was too long (`sn` reached 0 early) or too short (`sn != 0` at the end), or
    /// an empty consistency proof where one is needed.
    BadLength,
    /// The loop ran to the end: the computed root(s).
    Roots {
        /// For consistency: the computed old root `fr`. For inclusion: equal to `new`.
        old: Hash,
        /// The computed (new) root `r` or `sr`.
        new: Hash,
    },
}

/// RFC 9162 section 2.1.3.2 steps 1 to 5, without the final root comparison.
pub fn rfc_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash]) -> Rfc {
    if index >= size {
        return Rfc::OutOfRange;
    }
    let (mut fnn, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Rfc::BadLength;
        }
        if fnn & 1 == 1 || fnn == sn {
            r = node_hash(p, &r);
            if fnn & 1 == 0 {
                while fnn & 1 == 0 && fnn != 0 {
                    fnn >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnn >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Rfc::BadLength;
    }
    Rfc::Roots { old: r, new: r }
}

/// RFC 9162 section 2.1.4.2 for `0 < first < second`, without the final root comparisons.
/// `first_hash` is the old root, used when `first` is a power of two (step 2).
pub fn rfc_consistency(first: u64, second: u64, first_hash: &Hash, proof: &[Hash]) -> Rfc {
    if first == 0 || first >= second {
        return Rfc::OutOfRange;
    }
    // Step 1: an empty path fails.
    if proof.is_empty() {
        return Rfc::BadLength;
    }
    // Step 2: for a power of two, the old root is the first node of the path.
    let mut path = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_hash);
    }
    path.extend_from_slice(proof);
    // Steps 3 and 4.
    let (mut fnn, mut sn) = (first - 1, second - 1);
    while fnn & 1 == 1 {
        fnn >>= 1;
        sn >>= 1;
    }
    // Step 5.
    let (mut fr, mut sr) = (path[0], path[0]);
    // Step 6.
    for c in &path[1..] {
        if sn == 0 {
            return Rfc::BadLength;
        }
        if fnn & 1 == 1 || fnn == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnn & 1 == 0 {
                while fnn & 1 == 0 && fnn != 0 {
                    fnn >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnn >>= 1;
        sn >>= 1;
    }
    // Step 7 (the length part): sn must be 0.
    if sn != 0 {
        return Rfc::BadLength;
    }
    Rfc::Roots { old: fr, new: sr }
}

// -------------------------------------------------------------------------------------------
// Input shaping.
// -------------------------------------------------------------------------------------------

/// A `u64` tree size or index that favours the edges: small dense values, values around
/// powers of two, values near `u64::MAX`, and anything.
pub fn edgy_u64(u: &mut Unstructured<'_>) -> Result<u64> {
    Ok(match u.int_in_range(0u8..=3)? {
        0 => u.int_in_range(0..=300)?,
        1 => {
            let base = 1u64 << u.int_in_range(0..=63)?;
            let delta = u.int_in_range(0..=4)?;
            if u.arbitrary()? {
                base.wrapping_add(delta)
            } else {
                base.wrapping_sub(delta)
            }
        }
        2 => u64::MAX - u.int_in_range(0..=300)?,
        _ => u.arbitrary()?,
    })
}

/// A hash from fuzz input.
pub fn hash(u: &mut Unstructured<'_>) -> Result<Hash> {
    Ok(Hash(u.arbitrary()?))
}

/// `want` hashes from fuzz input, give or take: usually exactly `want` (so that the hashing
/// paths run), sometimes one more or one less, sometimes any count up to 70.
pub fn proof_of_about(u: &mut Unstructured<'_>, want: usize) -> Result<Vec<Hash>> {
    let len = match u.int_in_range(0u8..=7)? {
        0 => want.saturating_sub(1),
        1 => want + 1,
        2 => u.int_in_range(0..=70)?,
        _ => want,
    };
    (0..len).map(|_| hash(u)).collect()
}

/// `h` with bit `bit` (modulo 256) flipped.
pub fn flip(h: &Hash, bit: usize) -> Hash {
    let mut h = *h;
    h.0[bit / 8 % 32] ^= 1 << (bit % 8);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(raw.as_bytes()), enc);
        }
        assert_eq!(base64_encode(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn reference_tree_agrees_with_the_rfc_loops() {
        let d: Vec<Hash> = (0u32..20).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for n in 1..=d.len() {
            let root = mth(&d[..n]);
            for m in 0..n {
                let p = path(m, &d[..n]);
                assert_eq!(
                    rfc_inclusion(&d[m], m as u64, n as u64, &p),
                    Rfc::Roots {
                        old: root,
                        new: root
                    }
                );
            }
            for m in 1..n {
                let p = consistency(m, &d[..n]);
                let old = mth(&d[..m]);
                assert_eq!(
                    rfc_consistency(m as u64, n as u64, &old, &p),
                    Rfc::Roots { old, new: root }
                );
            }
        }
    }
}
