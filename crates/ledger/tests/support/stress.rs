//! What the `ledger-stress` writer appends, shared with the crash test that checks it.

/// Origin of the stress log.
pub(crate) const ORIGIN: &str = "stress.veritrail.test/log";

/// Seed of the stress log's fixed signing key.
pub(crate) const KEY_SEED: [u8; 32] = [7u8; 32];

/// The bytes of entry `index`: 1 to 600 bytes derived from the index alone, so a checker that
/// knows only which indices were acknowledged can verify every one of them.
pub(crate) fn entry_bytes(index: u64) -> Vec<u8> {
    let len = (index.wrapping_mul(7919) % 600 + 1) as usize;
    let tag = index.to_be_bytes();
    tag.iter()
        .cycle()
        .take(len)
        .enumerate()
        .map(|(i, t)| t ^ (i as u8))
        .collect()
}

/// One step of a 64-bit LCG: deterministic batch sizes and kill times without `rand`.
pub(crate) fn next(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *state >> 33
}
