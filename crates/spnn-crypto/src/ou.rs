//! Okamoto–Uchiyama encryption: the kernels, measured beside Paillier's (#16's second scheme).
//!
//! **Scheme** (Okamoto and Uchiyama, EUROCRYPT 1998). Primes `p`, `q` of `bits/3` bits each,
//! `n = p²·q`; a base `g` whose `g^{p−1} mod p²` is not 1 (then it has order `p`); `h = g^n mod
//! n`. A plaintext `0 ≤ m < p` encrypts as `g^m·h^r mod n` and decrypts as
//! `m = L(c^{p−1} mod p²) / L(g^{p−1} mod p²) mod p` with `L(x) = (x − 1)/p`. Products of
//! ciphertexts add plaintexts and powers multiply them by public integers, as long as the
//! result stays below `p` — only about a third of the modulus, against Paillier's whole `n`: a
//! ciphertext of the same size carries a third of the slots.
//!
//! **Speed-ups.** `g^m` and `h^r` both come from fixed-base tables (8-bit windows, as
//! Paillier's `h_s^a`, [`crate::paillier`]): `g`'s covers every plaintext, `h`'s a short
//! exponent `r` of four times the security level; a negative plaintext uses `g^{−|m|}` by an
//! inversion. Decryption, which only the key owner can run, is one exponentiation mod `p²` with
//! a `|p|`-bit exponent. Negative plaintexts decrypt as `m mod p`, read back as signed.
//!
//! **Security.** Recovering a plaintext is as hard as factoring `n = p²·q`, and no known
//! method factors such a modulus faster than an RSA modulus of the same size (the lattice
//! method of Boneh, Durfee and Howgrave-Graham helps only for `p^r·q` with large `r`): 2048-bit
//! moduli for about 112-bit security, 3072-bit for about 128 ([`crate::paillier::KeySize`]),
//! as SecretFlow's HEU ships them. Semantic security rests on the *p-subgroup* assumption of
//! Okamoto and Uchiyama's paper, and the short `r` on a further, heuristic one: that
//! `h^r` for a 448-bit `r` is indistinguishable from `h^r` for a uniform `r` in a group of
//! unknown order (Pollard-λ on the exponent costs about `2^224`). OU is **not** secure against
//! chosen ciphertexts: one decryption of a plaintext `M ≥ p` reveals `M mod p` and so `p`. A
//! protocol may use it only where every decrypted value is below `p` by construction and the
//! parties are semi-honest; the checks of [`PublicKey::ciphertext_from_bytes`] cannot prevent
//! that attack. Timing side channels (table lookups indexed by secret exponents, GMP's
//! variable-time exponentiation in decryption) are outside the semi-honest, remote threat
//! model, as for Paillier.
//!
//! **Status.** Kernels only (keys, encryption, decryption, the homomorphic operations, checked
//! ciphertexts), benchmarked beside Paillier in `cargo bench --bench crypto`; SPNN-HE does not
//! use them (no scheme trait), and ciphertexts carry no key id yet.

use rug::integer::Order;
use rug::{Complete, Integer};

use crate::error::{CryptoError, Result};
use crate::paillier::KeySize;
use crate::paillier::fixed_base::FixedBaseTable;
use crate::paillier::random_prime;
use crate::rng::SecureRng;
use rand::RngCore;

/// An Okamoto–Uchiyama public key `(n, g, h)` with the fixed-base tables of `g` and `h`.
pub struct PublicKey {
    n: Integer,
    g_table: FixedBaseTable,
    h_table: FixedBaseTable,
    randomness_bits: u32,
    plaintext_bits: u32,
}

/// The secret key: `p`, `p²` and `L(g^{p−1} mod p²)^{−1} mod p`.
pub struct SecretKey {
    p: Integer,
    p_squared: Integer,
    inverse_lg: Integer,
}

/// A key pair.
pub struct Keypair {
    /// The public half.
    pub public: PublicKey,
    /// The secret half.
    pub secret: SecretKey,
}

/// A ciphertext, `0 < c < n` and a unit mod `n`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ciphertext(Integer);

impl Keypair {
    /// A key pair of a named size.
    pub fn generate(size: KeySize, rng: &mut SecureRng) -> Self {
        Self::generate_bits(size.modulus_bits(), size.randomness_bits(), rng)
    }

    /// A key pair of any size from 384 bits up. **Insecure** below 2048 bits: for tests.
    pub fn generate_insecure_for_tests(bits: u32, rng: &mut SecureRng) -> Result<Self> {
        if bits < 384 {
            return Err(CryptoError::InvalidKey(format!(
                "test keys need at least 384 bits, not {bits}"
            )));
        }
        Ok(Self::generate_bits(bits, 128, rng))
    }

    fn generate_bits(bits: u32, randomness_bits: u32, rng: &mut SecureRng) -> Self {
        let prime_bits = bits / 3;
        let (p, q) = loop {
            let (p, q) = (random_prime(prime_bits, rng), random_prime(prime_bits, rng));
            if p != q {
                break (p, q);
            }
        };
        let p_squared = p.clone().square();
        let n = (&p_squared * &q).complete();
        let l = |x: Integer| (x - 1u32) / &p;
        let (g, inverse_lg) = loop {
            let mut bytes = vec![0u8; n.significant_bits().div_ceil(8) as usize];
            rng.fill_bytes(&mut bytes);
            let g = Integer::from_digits(&bytes, Order::Lsf) % &n;
            if g <= 1 || g.gcd_ref(&n).complete() != 1 {
                continue;
            }
            let gp = g
                .clone()
                .pow_mod(&(p.clone() - 1u32), &p_squared)
                .expect("positive exponent");
            if gp == 1 {
                continue;
            }
            if let Ok(inverse) = l(gp).invert(&p) {
                break (g, inverse);
            }
        };
        let h = g.clone().pow_mod(&n, &n).expect("positive exponent");
        // Every plaintext below 2^{|p| − 2} in magnitude is below p/2.
        let plaintext_bits = prime_bits - 2;
        let public = PublicKey {
            g_table: FixedBaseTable::new(&g, &n, plaintext_bits),
            h_table: FixedBaseTable::new(&h, &n, randomness_bits),
            n,
            randomness_bits,
            plaintext_bits,
        };
        Self {
            public,
            secret: SecretKey {
                p,
                p_squared,
                inverse_lg,
            },
        }
    }
}

impl PublicKey {
    /// Bits of the modulus `n`.
    pub fn bits(&self) -> u32 {
        self.n.significant_bits()
    }

    /// Every plaintext of magnitude below `2^plaintext_bits` encrypts and decrypts exactly (and
    /// every sum and product of them that stays there): `|p| − 2` bits, a third of `n`'s.
    pub fn plaintext_bits(&self) -> u32 {
        self.plaintext_bits
    }

    fn check_plaintext(&self, m: &Integer) -> Result<()> {
        if m.significant_bits() > self.plaintext_bits {
            return Err(CryptoError::PlaintextOutOfRange(format!(
                "an Okamoto–Uchiyama plaintext of {} bits, above the key's {}",
                m.significant_bits(),
                self.plaintext_bits
            )));
        }
        Ok(())
    }

    /// `g^m·h^r mod n` with a fresh short `r`, both powers from the fixed-base tables.
    pub fn encrypt(&self, m: &Integer, rng: &mut impl RngCore) -> Result<Ciphertext> {
        self.check_plaintext(m)?;
        let mut r = vec![0u8; self.randomness_bits.div_ceil(8) as usize];
        rng.fill_bytes(&mut r);
        let mut gm = self.g_table.pow(&m.to_digits::<u8>(Order::Lsf));
        if *m < 0 {
            gm = gm
                .invert(&self.n)
                .map_err(|_| CryptoError::InvalidKey("g is not a unit mod n".into()))?;
        }
        Ok(Ciphertext(gm * self.h_table.pow(&r) % &self.n))
    }

    /// `Enc(a + b)`.
    pub fn add(&self, a: &Ciphertext, b: &Ciphertext) -> Ciphertext {
        Ciphertext((&a.0 * &b.0).complete() % &self.n)
    }

    /// `Enc(k·m)` for a public integer `k` (negative `k` through the inverse). The caller keeps
    /// `k·m` within [`PublicKey::plaintext_bits`].
    pub fn mul_scalar(&self, c: &Ciphertext, k: &Integer) -> Result<Ciphertext> {
        c.0.clone()
            .pow_mod(k, &self.n)
            .map(Ciphertext)
            .map_err(|_| CryptoError::InvalidCiphertext("a ciphertext that is not a unit".into()))
    }

    /// A ciphertext from outside: refused unless `0 < c < n` and `gcd(c, n) = 1`.
    pub fn ciphertext_from_bytes(&self, bytes: &[u8]) -> Result<Ciphertext> {
        let c = Integer::from_digits(bytes, Order::Msf);
        if c <= 0 || c >= self.n || c.gcd_ref(&self.n).complete() != 1 {
            return Err(CryptoError::InvalidCiphertext(
                "an Okamoto–Uchiyama ciphertext outside the units mod n".into(),
            ));
        }
        Ok(Ciphertext(c))
    }
}

impl Ciphertext {
    /// The ciphertext's big-endian bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.to_digits(Order::Msf)
    }
}

impl SecretKey {
    /// The signed plaintext: `L(c^{p−1} mod p²)·L(g^{p−1} mod p²)^{−1} mod p`, read above `p/2`
    /// as negative.
    pub fn decrypt(&self, c: &Ciphertext) -> Integer {
        let cp = (&c.0 % &self.p_squared)
            .complete()
            .pow_mod(&(self.p.clone() - 1u32), &self.p_squared)
            .expect("positive exponent");
        let m = (cp - 1u32) / &self.p * &self.inverse_lg % &self.p;
        if m > (self.p.clone() >> 1) {
            m - &self.p
        } else {
            m
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keypair {
        let mut rng = SecureRng::insecure_from_seed_for_tests(8);
        Keypair::generate_insecure_for_tests(768, &mut rng).unwrap()
    }

    #[test]
    fn encryption_round_trips_and_adds_and_scales() {
        let kp = keys();
        let (pk, sk) = (&kp.public, &kp.secret);
        let mut rng = SecureRng::insecure_from_seed_for_tests(9);
        let big = (Integer::from(1) << (pk.plaintext_bits() - 1)) - 1u32;
        for m in [
            Integer::from(0),
            Integer::from(1),
            Integer::from(-1),
            Integer::from(123_456_789),
            big.clone(),
            -big.clone(),
        ] {
            let c = pk.encrypt(&m, &mut rng).unwrap();
            assert_eq!(sk.decrypt(&c), m);
        }
        let (a, b) = (Integer::from(-40_000), Integer::from(1_234_567));
        let (ca, cb) = (
            pk.encrypt(&a, &mut rng).unwrap(),
            pk.encrypt(&b, &mut rng).unwrap(),
        );
        assert_eq!(sk.decrypt(&pk.add(&ca, &cb)), (&a + &b).complete());
        let k = Integer::from((1 << 21) + 12345);
        assert_eq!(
            sk.decrypt(&pk.mul_scalar(&ca, &k).unwrap()),
            (&a * &k).complete()
        );
        let minus = pk.mul_scalar(&cb, &Integer::from(-3)).unwrap();
        assert_eq!(sk.decrypt(&minus), (&b * -3i32).complete());
        // Fresh randomness: the same plaintext encrypts differently.
        assert_ne!(
            pk.encrypt(&a, &mut rng).unwrap(),
            pk.encrypt(&a, &mut rng).unwrap()
        );
    }

    #[test]
    fn oversized_plaintexts_and_foreign_ciphertexts_are_refused() {
        let kp = keys();
        let pk = &kp.public;
        let mut rng = SecureRng::insecure_from_seed_for_tests(10);
        let over = Integer::from(1) << pk.plaintext_bits();
        assert!(pk.encrypt(&over, &mut rng).is_err());
        assert!(pk.ciphertext_from_bytes(&[0]).is_err());
        assert!(
            pk.ciphertext_from_bytes(&pk.n.to_digits(Order::Msf))
                .is_err()
        );
        let multiple_of_p = (&kp.secret.p * 7u32).complete();
        assert!(
            pk.ciphertext_from_bytes(&multiple_of_p.to_digits(Order::Msf))
                .is_err()
        );
        let c = pk.encrypt(&Integer::from(5), &mut rng).unwrap();
        let back = pk.ciphertext_from_bytes(&c.to_bytes()).unwrap();
        assert_eq!(kp.secret.decrypt(&back), 5);
        assert!(Keypair::generate_insecure_for_tests(256, &mut rng).is_err());
    }
}
