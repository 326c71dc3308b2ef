//! Paillier key generation, key identity and (de)serialisation.

use std::sync::{Arc, OnceLock};

use rand::RngCore;
use rug::integer::{IsPrime, Order};
use rug::{Complete, Integer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::fixed_base::FixedBaseTable;
use crate::error::{CryptoError, Result};
use crate::rng::SecureRng;

/// Smallest modulus accepted outside the insecure test constructors.
pub const MIN_SECURE_BITS: u32 = 2048;

/// How many bits beyond the key's randomness length the fixed-base table covers, for the wider
/// exponents of circuit-private re-randomisation ([`super::PackedCiphertext::rand_bits`] + σ).
pub const CIRCUIT_PRIVACY_MARGIN_BITS: u32 = 128;

/// Named parameter sets, with their security level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeySize {
    /// 2048-bit modulus, ≈ 112-bit security (NIST SP 800-57). The default.
    #[default]
    Bits2048,
    /// 3072-bit modulus, ≈ 128-bit security.
    Bits3072,
}

impl KeySize {
    /// Modulus size in bits.
    pub fn modulus_bits(self) -> u32 {
        match self {
            Self::Bits2048 => 2048,
            Self::Bits3072 => 3072,
        }
    }

    /// Approximate security level in bits.
    pub fn security_bits(self) -> u32 {
        match self {
            Self::Bits2048 => 112,
            Self::Bits3072 => 128,
        }
    }

    /// Length of the DJN randomness exponent: four times the security level.
    pub fn randomness_bits(self) -> u32 {
        4 * self.security_bits()
    }
}

/// Randomness exponent length for a modulus of `bits` bits (the nearest named size's, or 4× an
/// estimated security level for test sizes).
fn randomness_bits_for(bits: u32) -> u32 {
    match bits {
        b if b >= 3072 => KeySize::Bits3072.randomness_bits(),
        b if b >= 2048 => KeySize::Bits2048.randomness_bits(),
        b => (b / 4).max(64),
    }
}

/// A short identifier of a public key: the first 16 bytes of SHA-256 over `n`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyId(pub [u8; 16]);

impl KeyId {
    fn of(n: &Integer) -> Self {
        let digest = Sha256::digest(n.to_digits::<u8>(Order::Msf));
        let mut id = [0; 16];
        id.copy_from_slice(&digest[..16]);
        Self(id)
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A Paillier public key `(n, h_s)` with its derived values and a lazily built fixed-base table.
#[derive(Clone)]
pub struct PublicKey {
    pub(super) n: Integer,
    pub(super) n_squared: Integer,
    pub(super) h_s: Integer,
    pub(super) randomness_bits: u32,
    pub(super) id: KeyId,
    table: Arc<OnceLock<FixedBaseTable>>,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({} bits, id {})", self.bits(), self.id)
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.n == other.n && self.h_s == other.h_s
    }
}

/// The serialised form of a [`PublicKey`]: `n` and `h_s` as hexadecimal strings.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PublicKeyData {
    /// The modulus, hexadecimal.
    pub n: String,
    /// `h^n mod n²`, hexadecimal.
    pub h_s: String,
}

fn parse_hex(field: &str, s: &str) -> Result<Integer> {
    if s.is_empty() || s.len() > 4096 {
        return Err(CryptoError::InvalidKey(format!(
            "field {field}: bad length {}",
            s.len()
        )));
    }
    Integer::from_str_radix(s, 16)
        .map_err(|e| CryptoError::InvalidKey(format!("field {field}: {e}")))
}

impl PublicKey {
    fn from_parts(n: Integer, h_s: Integer, min_bits: u32) -> Result<Self> {
        let bits = n.significant_bits();
        if bits < min_bits {
            return Err(CryptoError::KeyTooSmall {
                bits,
                min: min_bits,
            });
        }
        if n.is_even() || n <= 3 {
            return Err(CryptoError::InvalidKey("modulus is even or tiny".into()));
        }
        let n_squared = n.clone().square();
        if h_s <= 0 || h_s >= n_squared || h_s.gcd_ref(&n).complete() != 1 {
            return Err(CryptoError::InvalidKey(
                "h_s is not a unit modulo n²".into(),
            ));
        }
        Ok(Self {
            randomness_bits: randomness_bits_for(bits),
            id: KeyId::of(&n),
            n,
            n_squared,
            h_s,
            table: Arc::new(OnceLock::new()),
        })
    }

    pub(super) fn from_data_with_min(data: &PublicKeyData, min_bits: u32) -> Result<Self> {
        Self::from_parts(
            parse_hex("n", &data.n)?,
            parse_hex("h_s", &data.h_s)?,
            min_bits,
        )
    }

    /// Validates and imports a key, refusing moduli under [`MIN_SECURE_BITS`].
    pub fn from_data(data: &PublicKeyData) -> Result<Self> {
        Self::from_data_with_min(data, MIN_SECURE_BITS)
    }

    /// Imports a key of any size (at least 128 bits). Insecure below 2048 bits: tests only.
    pub fn from_data_insecure_for_tests(data: &PublicKeyData) -> Result<Self> {
        Self::from_data_with_min(data, 128)
    }

    /// The serialisable form.
    pub fn to_data(&self) -> PublicKeyData {
        PublicKeyData {
            n: self.n.to_string_radix(16),
            h_s: self.h_s.to_string_radix(16),
        }
    }

    /// The key's identifier.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// Modulus size in bits.
    pub fn bits(&self) -> u32 {
        self.n.significant_bits()
    }

    /// The modulus `n`.
    pub fn modulus(&self) -> &Integer {
        &self.n
    }

    /// Bytes of a serialised ciphertext (the width of `n²`).
    pub fn ciphertext_bytes(&self) -> usize {
        self.n_squared.significant_bits().div_ceil(8) as usize
    }

    /// Refuses keys under [`MIN_SECURE_BITS`]: call on every key received from a peer.
    pub fn require_secure(&self) -> Result<()> {
        if self.bits() < MIN_SECURE_BITS {
            return Err(CryptoError::KeyTooSmall {
                bits: self.bits(),
                min: MIN_SECURE_BITS,
            });
        }
        Ok(())
    }

    /// Builds the fixed-base table now instead of at the first encryption (≈ 90 ms for 2048
    /// bits on one core).
    pub fn precompute(&self) {
        self.table();
    }

    pub(super) fn table(&self) -> &FixedBaseTable {
        self.table.get_or_init(|| {
            FixedBaseTable::new(
                &self.h_s,
                &self.n_squared,
                self.randomness_bits + CIRCUIT_PRIVACY_MARGIN_BITS,
            )
        })
    }

    /// Bits of the random exponent of a fresh encryption (DJN; 4× the security level).
    pub fn randomness_bits(&self) -> u32 {
        self.randomness_bits
    }

    /// A fresh randomiser `h_s^a mod n²` for a uniform `a` of the key's randomness length.
    /// Independent of the message, so it can be computed ahead of time.
    pub fn randomizer(&self, rng: &mut impl RngCore) -> Integer {
        self.randomizer_of(self.randomness_bits, rng)
            .expect("the table covers the key's own randomness length")
    }

    /// `h_s^a mod n²` for a uniform `a < 2^bits`; `bits` may exceed the key's randomness length
    /// by up to [`CIRCUIT_PRIVACY_MARGIN_BITS`](crate::paillier::CIRCUIT_PRIVACY_MARGIN_BITS).
    pub fn randomizer_of(&self, bits: u32, rng: &mut impl RngCore) -> Result<Integer> {
        let table = self.table();
        if bits > table.exponent_bits() {
            return Err(CryptoError::InvalidPacking(format!(
                "a {bits}-bit randomness exponent; this key's table covers {}",
                table.exponent_bits()
            )));
        }
        let mut a = vec![0u8; bits.div_ceil(8) as usize];
        rng.fill_bytes(&mut a);
        if !bits.is_multiple_of(8)
            && let Some(top) = a.last_mut()
        {
            *top &= (1u8 << (bits % 8)) - 1;
        }
        Ok(table.pow(&a))
    }
}

impl Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_data().serialize(s)
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let data = PublicKeyData::deserialize(d)?;
        Self::from_data(&data).map_err(serde::de::Error::custom)
    }
}

/// A Paillier secret key `(p, q)` with the CRT constants of decryption.
#[derive(Clone)]
pub struct SecretKey {
    pub(super) p: Integer,
    pub(super) q: Integer,
    pub(super) p_squared: Integer,
    pub(super) q_squared: Integer,
    /// `L_p(g^{p−1} mod p²)^{−1} mod p`.
    pub(super) hp: Integer,
    /// `L_q(g^{q−1} mod q²)^{−1} mod q`.
    pub(super) hq: Integer,
    /// `p^{−1} mod q`.
    pub(super) p_inv_q: Integer,
    pub(super) n: Integer,
    pub(super) id: KeyId,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey(<redacted>, id {})", self.id)
    }
}

/// The serialised form of a [`SecretKey`]: the primes as hexadecimal strings.
#[derive(Clone, Serialize, Deserialize)]
pub struct SecretKeyData {
    /// First prime, hexadecimal.
    pub p: String,
    /// Second prime, hexadecimal.
    pub q: String,
}

impl std::fmt::Debug for SecretKeyData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKeyData(<redacted>)")
    }
}

/// `L_p(x) = (x − 1) / p`.
fn l_function(x: Integer, p: &Integer) -> Integer {
    (x - 1u32).div_exact(p)
}

impl SecretKey {
    fn from_primes(p: Integer, q: Integer) -> Result<Self> {
        if p == q || p <= 2 || q <= 2 {
            return Err(CryptoError::InvalidKey(
                "primes must be distinct and odd".into(),
            ));
        }
        let n = p.clone() * &q;
        let g = n.clone() + 1u32;
        let p_squared = p.clone().square();
        let q_squared = q.clone().square();
        let h = |prime: &Integer, sq: &Integer| -> Result<Integer> {
            let gp = g
                .clone()
                .pow_mod(&(prime.clone() - 1u32), sq)
                .map_err(|_| CryptoError::InvalidKey("g^(p-1) undefined".into()))?;
            l_function(gp, prime).invert(prime).map_err(|_| {
                CryptoError::InvalidKey("not a Paillier key: L(g^(p-1)) not invertible".into())
            })
        };
        let hp = h(&p, &p_squared)?;
        let hq = h(&q, &q_squared)?;
        let p_inv_q = p
            .clone()
            .invert(&q)
            .map_err(|_| CryptoError::InvalidKey("p not invertible mod q".into()))?;
        Ok(Self {
            id: KeyId::of(&n),
            p,
            q,
            p_squared,
            q_squared,
            hp,
            hq,
            p_inv_q,
            n,
        })
    }

    /// Imports a secret key. The primes are checked for primality and distinctness; the size
    /// policy is the public key's.
    pub fn from_data(data: &SecretKeyData) -> Result<Self> {
        let p = parse_hex("p", &data.p)?;
        let q = parse_hex("q", &data.q)?;
        for (name, x) in [("p", &p), ("q", &q)] {
            if x.is_probably_prime(32) == IsPrime::No {
                return Err(CryptoError::InvalidKey(format!("{name} is not prime")));
            }
        }
        Self::from_primes(p, q)
    }

    /// The serialisable form. Handle with care: this is the secret.
    pub fn to_data(&self) -> SecretKeyData {
        SecretKeyData {
            p: self.p.to_string_radix(16),
            q: self.q.to_string_radix(16),
        }
    }

    /// The identifier of the matching public key.
    pub fn id(&self) -> KeyId {
        self.id
    }
}

/// A matching public and secret key.
#[derive(Clone, Debug)]
pub struct Keypair {
    /// The public half, shared with peers.
    pub public: PublicKey,
    /// The secret half, never leaves its owner.
    pub secret: SecretKey,
}

/// A random prime of exactly `bits` bits whose top two bits are set (so a product of two has
/// exactly `2·bits` bits).
/// A random prime of exactly `bits` bits, its top two bits set (so products of two have exactly
/// twice the bits).
pub(crate) fn random_prime(bits: u32, rng: &mut SecureRng) -> Integer {
    loop {
        let mut bytes = vec![0u8; bits.div_ceil(8) as usize];
        rng.fill_bytes(&mut bytes);
        let mut x = Integer::from_digits(&bytes, Order::Lsf).keep_bits(bits);
        x.set_bit(bits - 1, true)
            .set_bit(bits - 2, true)
            .set_bit(0, true);
        let p = x.next_prime();
        if p.significant_bits() == bits && p.is_probably_prime(40) != IsPrime::No {
            return p;
        }
    }
}

impl Keypair {
    /// Imports a key pair from its two serialised halves (key files) and validates it as
    /// [`Keypair::validate`] does, refusing moduli under [`MIN_SECURE_BITS`].
    pub fn from_data(public: &PublicKeyData, secret: &SecretKeyData) -> Result<Self> {
        Self::from_data_with_min(public, secret, MIN_SECURE_BITS)
    }

    /// The same for any size from 256 bits. **Insecure** below 2048 bits: tests only.
    pub fn from_data_insecure_for_tests(
        public: &PublicKeyData,
        secret: &SecretKeyData,
    ) -> Result<Self> {
        Self::from_data_with_min(public, secret, 256)
    }

    fn from_data_with_min(
        public: &PublicKeyData,
        secret: &SecretKeyData,
        min_bits: u32,
    ) -> Result<Self> {
        let kp = Self {
            public: PublicKey::from_data_with_min(public, min_bits)?,
            secret: SecretKey::from_data(secret)?,
        };
        kp.validate(min_bits)?;
        Ok(kp)
    }

    /// Checks that the pair is a Paillier key of the kind [`Keypair::generate`] makes: a modulus
    /// of at least `min_bits` bits, `n = p·q` for primes of equal length, `p ≠ q`,
    /// `gcd(n, φ(n)) = 1` (so `g = n + 1`, fixed by the format, generates the right subgroup)
    /// and `h_s` an `n`-th residue (`h_s^λ ≡ 1 mod n²`), without which DJN encryption would not
    /// hide the message.
    pub fn validate(&self, min_bits: u32) -> Result<()> {
        let (p, q, n) = (&self.secret.p, &self.secret.q, &self.public.n);
        let bits = n.significant_bits();
        if bits < min_bits {
            return Err(CryptoError::KeyTooSmall {
                bits,
                min: min_bits,
            });
        }
        if p.clone() * q != *n {
            return Err(CryptoError::InvalidKey(
                "the secret primes do not multiply to the public modulus".into(),
            ));
        }
        if p.significant_bits() != q.significant_bits() || 2 * p.significant_bits() != bits {
            return Err(CryptoError::InvalidKey(format!(
                "primes of {} and {} bits for a {bits}-bit modulus: they must be equal halves",
                p.significant_bits(),
                q.significant_bits()
            )));
        }
        let (p1, q1) = (p.clone() - 1u32, q.clone() - 1u32);
        if n.gcd_ref(&(p1.clone() * &q1)).complete() != 1 {
            return Err(CryptoError::InvalidKey("gcd(n, φ(n)) ≠ 1".into()));
        }
        let lambda = p1.lcm(&q1);
        let one = self
            .public
            .h_s
            .clone()
            .pow_mod(&lambda, &self.public.n_squared)
            .map_err(|_| CryptoError::InvalidKey("h_s is not a unit".into()))?;
        if one != 1 {
            return Err(CryptoError::InvalidKey(
                "h_s is not an n-th residue modulo n²".into(),
            ));
        }
        Ok(())
    }

    /// Generates a key pair of a named size. Takes 0.2–2 s for 2048 bits: do it once per
    /// deployment, off the training path.
    pub fn generate(size: KeySize, rng: &mut SecureRng) -> Self {
        Self::generate_bits(size.modulus_bits(), rng)
    }

    /// Generates a key pair of any size from 256 bits up. **Insecure** below 2048 bits: for
    /// tests that need fast keys.
    pub fn generate_insecure_for_tests(bits: u32, rng: &mut SecureRng) -> Result<Self> {
        if bits < 256 || !bits.is_multiple_of(2) {
            return Err(CryptoError::InvalidKey(format!(
                "test keys need an even size of at least 256 bits, not {bits}"
            )));
        }
        Ok(Self::generate_bits(bits, rng))
    }

    fn generate_bits(bits: u32, rng: &mut SecureRng) -> Self {
        loop {
            let p = random_prime(bits / 2, rng);
            let q = random_prime(bits / 2, rng);
            let Ok(secret) = SecretKey::from_primes(p, q) else {
                continue;
            };
            let n = secret.n.clone();
            // DJN: h = −x² mod n for a random unit x; the public base is h^n mod n².
            let h_s = loop {
                let mut bytes = vec![0u8; bits.div_ceil(8) as usize];
                rng.fill_bytes(&mut bytes);
                let x = Integer::from_digits(&bytes, Order::Lsf) % &n;
                if x > 1 && x.gcd_ref(&n).complete() == 1 {
                    let h = n.clone() - x.square() % &n;
                    break h
                        .pow_mod(&n, &n.clone().square())
                        .expect("positive exponent");
                }
            };
            let Ok(public) = PublicKey::from_parts(n, h_s, 0) else {
                continue;
            };
            return Self { public, secret };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_keys_are_refused_outside_test_constructors() {
        let mut rng = SecureRng::insecure_from_seed_for_tests(1);
        let kp = Keypair::generate_insecure_for_tests(512, &mut rng).unwrap();
        assert_eq!(kp.public.bits(), 512);
        assert_eq!(kp.public.id(), kp.secret.id());
        let data = kp.public.to_data();
        assert!(matches!(
            PublicKey::from_data(&data),
            Err(CryptoError::KeyTooSmall {
                bits: 512,
                min: 2048
            })
        ));
        assert!(kp.public.require_secure().is_err());
        let back = PublicKey::from_data_insecure_for_tests(&data).unwrap();
        assert_eq!(back, kp.public);
        assert_eq!(back.id(), kp.public.id());
        let json = serde_json::to_string(&kp.public).unwrap();
        assert!(serde_json::from_str::<PublicKey>(&json).is_err());
        assert!(Keypair::generate_insecure_for_tests(100, &mut rng).is_err());
    }

    #[test]
    fn secret_keys_round_trip_and_are_redacted() {
        let mut rng = SecureRng::insecure_from_seed_for_tests(2);
        let kp = Keypair::generate_insecure_for_tests(512, &mut rng).unwrap();
        let back = SecretKey::from_data(&kp.secret.to_data()).unwrap();
        assert_eq!(back.id(), kp.secret.id());
        assert!(!format!("{:?}", kp.secret).contains(&kp.secret.p.to_string_radix(16)));
        assert!(format!("{:?}", kp.secret.to_data()).contains("redacted"));
        let bad = SecretKeyData {
            p: kp.secret.to_data().p,
            q: "f".repeat(64),
        };
        assert!(SecretKey::from_data(&bad).is_err(), "non-prime q");
    }

    #[test]
    fn key_files_are_validated_like_generated_keys() {
        let mut rng = SecureRng::insecure_from_seed_for_tests(5);
        let kp = Keypair::generate_insecure_for_tests(512, &mut rng).unwrap();
        kp.validate(512).unwrap();
        let (public, secret) = (kp.public.to_data(), kp.secret.to_data());
        Keypair::from_data_insecure_for_tests(&public, &secret).unwrap();
        assert!(matches!(
            Keypair::from_data(&public, &secret),
            Err(CryptoError::KeyTooSmall { .. })
        ));
        let other = Keypair::generate_insecure_for_tests(512, &mut rng).unwrap();
        let bad = |public: &PublicKeyData, secret: &SecretKeyData| {
            Keypair::from_data_insecure_for_tests(public, secret)
                .unwrap_err()
                .to_string()
        };
        // Halves of two different keys.
        assert!(bad(&public, &other.secret.to_data()).contains("do not multiply"));
        // Unequal primes: a 200-bit and a 312-bit prime.
        let (p, q) = (random_prime(200, &mut rng), random_prime(312, &mut rng));
        let n = p.clone() * &q;
        let h_s = Integer::from(4).pow_mod(&n, &n.clone().square()).unwrap();
        let lopsided = PublicKeyData {
            n: n.to_string_radix(16),
            h_s: h_s.to_string_radix(16),
        };
        let lopsided_secret = SecretKeyData {
            p: p.to_string_radix(16),
            q: q.to_string_radix(16),
        };
        assert!(bad(&lopsided, &lopsided_secret).contains("equal halves"));
        // h_s that is not an n-th residue (2 is not, for a random n, with overwhelming odds).
        let not_residue = PublicKeyData {
            n: public.n.clone(),
            h_s: "2".into(),
        };
        assert!(bad(&not_residue, &secret).contains("n-th residue"));
    }

    #[test]
    fn malformed_public_keys_are_errors() {
        let bad = |n: &str, h: &str| {
            PublicKey::from_data_insecure_for_tests(&PublicKeyData {
                n: n.into(),
                h_s: h.into(),
            })
        };
        assert!(bad("zz", "1").is_err());
        assert!(bad("", "1").is_err());
        let even = format!("1{}", "0".repeat(64));
        assert!(bad(&even, "3").is_err());
        let odd = format!("1{}1", "0".repeat(64));
        assert!(bad(&odd, "0").is_err());
        assert!(bad(&"f".repeat(5000), "3").is_err());
    }

    #[test]
    fn generated_2048_bit_key_has_the_named_size() {
        let kp = Keypair::generate(KeySize::Bits2048, &mut SecureRng::from_os_entropy());
        assert_eq!(kp.public.bits(), 2048);
        kp.public.require_secure().unwrap();
        let back = PublicKey::from_data(&kp.public.to_data()).unwrap();
        assert_eq!(back.id(), kp.public.id());
    }
}
