//! Ciphertexts, encryption, decryption and the homomorphic operations.

use rand::RngCore;
use rug::integer::Order;
use rug::{Complete, Integer};

use super::keys::{KeyId, PublicKey, SecretKey};
use crate::error::{CryptoError, Result};

/// A Paillier ciphertext: an element of Z*_{n²} tagged with the id of its key.
#[derive(Clone, PartialEq, Eq)]
pub struct Ciphertext {
    pub(super) c: Integer,
    pub(super) key: KeyId,
}

impl std::fmt::Debug for Ciphertext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ciphertext(key {})", self.key)
    }
}

impl Ciphertext {
    /// The id of the key this ciphertext is under.
    pub fn key_id(&self) -> KeyId {
        self.key
    }

    /// The fixed-width wire form: the 16-byte key id, then `c` big-endian in
    /// [`PublicKey::ciphertext_bytes`] bytes.
    pub fn to_bytes(&self, pk: &PublicKey) -> Result<Vec<u8>> {
        pk.check(self)?;
        let width = pk.ciphertext_bytes();
        let digits = self.c.to_digits::<u8>(Order::Msf);
        let mut out = Vec::with_capacity(16 + width);
        out.extend_from_slice(&self.key.0);
        out.resize(16 + width - digits.len(), 0);
        out.extend_from_slice(&digits);
        Ok(out)
    }
}

impl PublicKey {
    pub(super) fn check(&self, c: &Ciphertext) -> Result<()> {
        if c.key != self.id {
            return Err(CryptoError::KeyMismatch {
                expected: self.id,
                found: c.key,
            });
        }
        Ok(())
    }

    fn wrap(&self, c: Integer) -> Ciphertext {
        Ciphertext { c, key: self.id }
    }

    /// Parses and validates a ciphertext received from outside: exact length, this key's id,
    /// `0 < c < n²` and `gcd(c, n) = 1`.
    pub fn ciphertext_from_bytes(&self, bytes: &[u8]) -> Result<Ciphertext> {
        let width = self.ciphertext_bytes();
        if bytes.len() != 16 + width {
            return Err(CryptoError::InvalidCiphertext(format!(
                "{} bytes, expected {}",
                bytes.len(),
                16 + width
            )));
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&bytes[..16]);
        if KeyId(id) != self.id {
            return Err(CryptoError::KeyMismatch {
                expected: self.id,
                found: KeyId(id),
            });
        }
        let c = Integer::from_digits(&bytes[16..], Order::Msf);
        self.validate_element(c)
    }

    /// Checks that `c` is an element of Z*_{n²} and tags it with this key.
    pub fn validate_element(&self, c: Integer) -> Result<Ciphertext> {
        if c <= 0 || c >= self.n_squared {
            return Err(CryptoError::InvalidCiphertext(
                "not in the range 0 < c < n²".into(),
            ));
        }
        if c.gcd_ref(&self.n).complete() != 1 {
            return Err(CryptoError::InvalidCiphertext(
                "not a unit modulo n²".into(),
            ));
        }
        Ok(self.wrap(c))
    }

    /// Maps a signed plaintext with `|m| < n/2` into Z_n.
    fn plaintext(&self, m: &Integer) -> Result<Integer> {
        let half = self.n.clone() >> 1;
        if m.clone().abs() >= half {
            return Err(CryptoError::PlaintextOutOfRange(format!(
                "a {}-bit plaintext under a {}-bit key (|m| < n/2 required)",
                m.significant_bits(),
                self.bits()
            )));
        }
        Ok(if *m < 0 {
            m.clone() + &self.n
        } else {
            m.clone()
        })
    }

    /// `g^m = 1 + m·n mod n²` for `m` in Z_n.
    fn g_pow(&self, m: &Integer) -> Integer {
        (m.clone() * &self.n + 1u32) % &self.n_squared
    }

    /// Encrypts a signed plaintext `|m| < n/2` with fixed-base DJN randomness.
    pub fn encrypt(&self, m: &Integer, rng: &mut impl RngCore) -> Result<Ciphertext> {
        let r = self.randomizer(rng);
        self.encrypt_with_randomizer(m, &r)
    }

    /// Encrypts with a randomiser from [`PublicKey::randomizer`]. Each randomiser must be used
    /// once only: reusing one links the two ciphertexts.
    pub fn encrypt_with_randomizer(&self, m: &Integer, randomizer: &Integer) -> Result<Ciphertext> {
        let gm = self.g_pow(&self.plaintext(m)?);
        Ok(self.wrap(gm * randomizer % &self.n_squared))
    }

    /// Textbook Paillier encryption `g^m · r^n mod n²` with a full-size random `r`, for
    /// comparison with the fixed-base path (about 40× slower).
    pub fn encrypt_textbook(&self, m: &Integer, rng: &mut impl RngCore) -> Result<Ciphertext> {
        let gm = self.g_pow(&self.plaintext(m)?);
        let r = loop {
            let mut bytes = vec![0u8; self.bits().div_ceil(8) as usize];
            rng.fill_bytes(&mut bytes);
            let r = Integer::from_digits(&bytes, Order::Lsf) % &self.n;
            if r > 0 && r.gcd_ref(&self.n).complete() == 1 {
                break r;
            }
        };
        let rn = r
            .pow_mod(&self.n, &self.n_squared)
            .expect("positive exponent");
        Ok(self.wrap(gm * rn % &self.n_squared))
    }

    /// `Enc(a + b)`.
    pub fn add(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        self.check(a)?;
        self.check(b)?;
        Ok(self.wrap(a.c.clone() * &b.c % &self.n_squared))
    }

    /// `Enc(a + m)` for a signed plaintext `m` (no fresh randomness).
    pub fn add_plain(&self, a: &Ciphertext, m: &Integer) -> Result<Ciphertext> {
        self.check(a)?;
        Ok(self.wrap(self.g_pow(&self.plaintext(m)?) * &a.c % &self.n_squared))
    }

    /// `Enc(k·a)` for a signed scalar `k`.
    pub fn mul_scalar(&self, a: &Ciphertext, k: &Integer) -> Result<Ciphertext> {
        self.check(a)?;
        let base = if *k < 0 {
            a.c.clone()
                .invert(&self.n_squared)
                .map_err(|_| CryptoError::InvalidCiphertext("not invertible modulo n²".into()))?
        } else {
            a.c.clone()
        };
        let e = k.clone().abs();
        Ok(self.wrap(
            base.pow_mod(&e, &self.n_squared)
                .expect("non-negative exponent"),
        ))
    }

    /// `Enc(−a)`.
    pub fn neg(&self, a: &Ciphertext) -> Result<Ciphertext> {
        self.mul_scalar(a, &Integer::from(-1))
    }

    /// A fresh encryption of the same plaintext (multiplies in a new randomiser).
    pub fn rerandomize(&self, a: &Ciphertext, rng: &mut impl RngCore) -> Result<Ciphertext> {
        self.check(a)?;
        Ok(self.wrap(a.c.clone() * self.randomizer(rng) % &self.n_squared))
    }

    /// Multiplies in `h_s^{a'}` for a uniform `a' < 2^exponent_bits`: if the ciphertext's
    /// randomness exponent is below `2^{exponent_bits − σ}`, the result's randomness is within
    /// statistical distance `2^{−σ}` of `h_s^{a'}` alone (circuit privacy, module
    /// `spnn_crypto::paillier` packing docs).
    pub fn rerandomize_wide(
        &self,
        a: &Ciphertext,
        exponent_bits: u32,
        rng: &mut impl RngCore,
    ) -> Result<Ciphertext> {
        self.check(a)?;
        let r = self.randomizer_of(exponent_bits, rng)?;
        Ok(self.wrap(a.c.clone() * r % &self.n_squared))
    }
}

impl SecretKey {
    fn half(&self, c: &Integer, prime: &Integer, sq: &Integer, h: &Integer) -> Integer {
        let x = (c.clone() % sq)
            .pow_mod(&(prime.clone() - 1u32), sq)
            .expect("positive exponent");
        (x - 1u32).div_exact(prime) * h % prime
    }

    /// Decrypts to the plaintext in `[0, n)` by CRT.
    pub fn decrypt(&self, a: &Ciphertext) -> Result<Integer> {
        if a.key != self.id {
            return Err(CryptoError::KeyMismatch {
                expected: self.id,
                found: a.key,
            });
        }
        let mp = self.half(&a.c, &self.p, &self.p_squared, &self.hp);
        let mq = self.half(&a.c, &self.q, &self.q_squared, &self.hq);
        // m = mp + p·((mq − mp)·p^{-1} mod q)
        let mut t = (mq - &mp) * &self.p_inv_q % &self.q;
        if t < 0 {
            t += &self.q;
        }
        Ok(mp + t * &self.p)
    }

    /// Decrypts to the signed plaintext in `(−n/2, n/2]`.
    pub fn decrypt_signed(&self, a: &Ciphertext) -> Result<Integer> {
        let m = self.decrypt(a)?;
        Ok(if m > (self.n.clone() >> 1) {
            m - &self.n
        } else {
            m
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::error::CryptoError;
    use crate::paillier::Keypair;
    use crate::rng::SecureRng;
    use rug::Integer;

    fn keypair(seed: u64) -> Keypair {
        Keypair::generate_insecure_for_tests(
            512,
            &mut SecureRng::insecure_from_seed_for_tests(seed),
        )
        .unwrap()
    }

    #[test]
    fn homomorphic_identities() {
        let kp = keypair(1);
        let (pk, sk) = (&kp.public, &kp.secret);
        let mut rng = SecureRng::insecure_from_seed_for_tests(2);
        let a = Integer::from(123_456_789i64);
        let b = Integer::from(-987_654_321i64);
        let ca = pk.encrypt(&a, &mut rng).unwrap();
        let cb = pk.encrypt_textbook(&b, &mut rng).unwrap();
        assert_eq!(sk.decrypt_signed(&ca).unwrap(), a);
        assert_eq!(sk.decrypt_signed(&cb).unwrap(), b);
        assert_eq!(
            sk.decrypt_signed(&pk.add(&ca, &cb).unwrap()).unwrap(),
            a.clone() + &b
        );
        assert_eq!(
            sk.decrypt_signed(&pk.add_plain(&ca, &b).unwrap()).unwrap(),
            a.clone() + &b
        );
        let k = Integer::from(-77);
        assert_eq!(
            sk.decrypt_signed(&pk.mul_scalar(&ca, &k).unwrap()).unwrap(),
            a.clone() * &k
        );
        assert_eq!(
            sk.decrypt_signed(&pk.neg(&cb).unwrap()).unwrap(),
            -b.clone()
        );
        let re = pk.rerandomize(&ca, &mut rng).unwrap();
        assert_ne!(re, ca);
        assert_eq!(sk.decrypt_signed(&re).unwrap(), a);
        // Two encryptions of one message differ (probabilistic encryption).
        assert_ne!(
            pk.encrypt(&a, &mut rng).unwrap(),
            pk.encrypt(&a, &mut rng).unwrap()
        );
        // Unsigned decryption of a negative plaintext is n − |m|.
        assert_eq!(sk.decrypt(&cb).unwrap(), pk.modulus().clone() + &b);
    }

    #[test]
    fn plaintexts_beyond_half_the_modulus_are_refused() {
        let kp = keypair(3);
        let big = kp.public.modulus().clone() >> 1;
        let mut rng = SecureRng::insecure_from_seed_for_tests(4);
        assert!(matches!(
            kp.public.encrypt(&big, &mut rng),
            Err(CryptoError::PlaintextOutOfRange(_))
        ));
        assert!(kp.public.encrypt(&(-big), &mut rng).is_err());
    }

    #[test]
    fn foreign_key_ciphertexts_are_refused() {
        let (k1, k2) = (keypair(5), keypair(6));
        let mut rng = SecureRng::insecure_from_seed_for_tests(7);
        let c1 = k1.public.encrypt(&Integer::from(5), &mut rng).unwrap();
        let c2 = k2.public.encrypt(&Integer::from(6), &mut rng).unwrap();
        assert!(matches!(
            k1.public.add(&c1, &c2),
            Err(CryptoError::KeyMismatch { .. })
        ));
        assert!(matches!(
            k1.secret.decrypt(&c2),
            Err(CryptoError::KeyMismatch { .. })
        ));
        let bytes = c2.to_bytes(&k2.public).unwrap();
        assert!(matches!(
            k1.public.ciphertext_from_bytes(&bytes),
            Err(CryptoError::KeyMismatch { .. })
        ));
    }

    #[test]
    fn tampered_ciphertext_bytes_are_refused() {
        let kp = keypair(8);
        let pk = &kp.public;
        let c = pk
            .encrypt(
                &Integer::from(42),
                &mut SecureRng::insecure_from_seed_for_tests(9),
            )
            .unwrap();
        let bytes = c.to_bytes(pk).unwrap();
        assert_eq!(pk.ciphertext_from_bytes(&bytes).unwrap(), c);
        assert!(
            pk.ciphertext_from_bytes(&bytes[..bytes.len() - 1]).is_err(),
            "truncated"
        );
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(pk.ciphertext_from_bytes(&longer).is_err(), "trailing byte");
        let mut zero = bytes.clone();
        zero[16..].fill(0);
        assert!(pk.ciphertext_from_bytes(&zero).is_err(), "c = 0");
        let mut huge = bytes.clone();
        huge[16..].fill(0xff);
        assert!(pk.ciphertext_from_bytes(&huge).is_err(), "c ≥ n²");
        // A multiple of a prime factor of n is in range but not a unit.
        let p_multiple = kp.secret.to_data().p;
        let mut not_unit = bytes[..16].to_vec();
        let digits = Integer::from_str_radix(&p_multiple, 16)
            .unwrap()
            .to_digits::<u8>(rug::integer::Order::Msf);
        not_unit.resize(bytes.len() - digits.len(), 0);
        not_unit.extend_from_slice(&digits);
        assert!(matches!(
            pk.ciphertext_from_bytes(&not_unit),
            Err(CryptoError::InvalidCiphertext(_))
        ));
    }
}
