//! Randomness for everything secret: ChaCha20 seeded from the operating system.
//!
//! [`SecureRng::from_os_entropy`] is the only constructor meant for real use. Deterministic
//! generators exist for two reasons, each behind a name that says so:
//! [`SecureRng::insecure_from_seed_for_tests`] for reproducible tests, and
//! [`SecureRng::from_secret_seed`], which expands a [`SecretSeed`] that was itself drawn from a
//! secure generator (this is how a party's share is derived from 32 bytes instead of being sent).

use rand::{CryptoRng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// A cryptographically secure generator: ChaCha20.
#[derive(Clone)]
pub struct SecureRng(ChaCha20Rng);

impl std::fmt::Debug for SecureRng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecureRng(..)")
    }
}

impl SecureRng {
    /// ChaCha20 seeded with 32 bytes of operating-system entropy.
    pub fn from_os_entropy() -> Self {
        Self(ChaCha20Rng::from_os_rng())
    }

    /// A reproducible generator for tests and benchmarks. Never use it for real secrets: anyone
    /// who knows the seed knows every value it produces.
    pub fn insecure_from_seed_for_tests(seed: u64) -> Self {
        Self(ChaCha20Rng::seed_from_u64(seed))
    }

    /// Expands a secret seed. Secure as long as the seed is secret and was drawn from a
    /// secure generator.
    pub fn from_secret_seed(seed: &SecretSeed) -> Self {
        Self(ChaCha20Rng::from_seed(seed.0))
    }

    /// Draws a fresh secret seed.
    pub fn secret_seed(&mut self) -> SecretSeed {
        let mut bytes = [0u8; 32];
        self.0.fill_bytes(&mut bytes);
        SecretSeed(bytes)
    }

    /// Fills `out` with uniform 64-bit words.
    pub fn fill_u64(&mut self, out: &mut [u64]) {
        for x in out {
            *x = self.0.next_u64();
        }
    }
}

/// A uniform draw from `[0, 1)` with 53 random bits.
pub fn uniform01(rng: &mut impl RngCore) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A standard normal draw (Box–Muller from two uniforms; the first is kept away from zero).
pub fn standard_normal(rng: &mut impl RngCore) -> f64 {
    let u = 1.0 - uniform01(rng);
    let v = uniform01(rng);
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

impl RngCore for SecureRng {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        self.0.fill_bytes(dst)
    }
}

impl CryptoRng for SecureRng {}

/// 32 secret bytes from which a generator (and so a share) can be re-derived.
///
/// Its `Debug` output is redacted so a seed never reaches a log, and it has no serde
/// implementation: a seed reaches another party only through the protocol message made for it,
/// never by accident inside a serialised structure.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretSeed([u8; 32]);

impl SecretSeed {
    /// The raw bytes, for sending to the party the seed belongs to.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// A seed received from the party that drew it.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl std::fmt::Debug for SecretSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretSeed(<redacted>)")
    }
}

impl Drop for SecretSeed {
    fn drop(&mut self) {
        // Best effort: overwrite the bytes so a freed seed does not linger in memory. Without
        // `unsafe` there is no volatile write; `black_box` keeps the stores from being elided.
        self.0 = [0; 32];
        std::hint::black_box(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_generators_repeat_and_os_generators_differ() {
        let mut a = SecureRng::insecure_from_seed_for_tests(7);
        let mut b = SecureRng::insecure_from_seed_for_tests(7);
        assert_eq!(a.next_u64(), b.next_u64());
        let mut c = SecureRng::from_os_entropy();
        let mut d = SecureRng::from_os_entropy();
        assert_ne!(
            (c.next_u64(), c.next_u64()),
            (d.next_u64(), d.next_u64()),
            "two OS-seeded generators produced the same 128 bits"
        );
    }

    #[test]
    fn secret_seed_expands_deterministically_and_is_redacted() {
        let seed = SecureRng::from_os_entropy().secret_seed();
        let mut a = SecureRng::from_secret_seed(&seed);
        let mut b = SecureRng::from_secret_seed(&SecretSeed::from_bytes(seed.to_bytes()));
        assert_eq!(a.next_u64(), b.next_u64());
        assert_eq!(format!("{seed:?}"), "SecretSeed(<redacted>)");
    }
}
