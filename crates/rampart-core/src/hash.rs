//! The stable hash: the same bytes give the same value in every process and release, so
//! several Rampart instances (and restarts) agree on where a key goes.

/// FNV-1a over `bytes`, finished with the `fmix64` avalanche of MurmurHash3 so that similar
/// keys spread over the whole range. Stable by construction (no per-process seed).
#[must_use]
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

/// MurmurHash3's 64-bit finalizer.
#[must_use]
pub const fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}
