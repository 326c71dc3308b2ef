//! Packing several signed values into one Paillier plaintext.
//!
//! With slot width `s`, values `v_0 … v_{t−1}` (each `|v_i| < 2^{s−1}`) become the single signed
//! plaintext `m = Σ v_i · 2^{s·i}`. The map is linear, so adding packed ciphertexts adds slot by
//! slot and multiplying by a scalar multiplies every slot — as long as no slot leaves
//! `(−2^{s−1}, 2^{s−1})`. Decoding reads slots from the lowest up, each as a signed `s`-bit
//! number, carrying the borrow of a negative slot into the next.
//!
//! A layout has `t = ⌊(bits(n) − 2) / s⌋` slots, which keeps `|m| < n/2`.
//!
//! **Overflow guard.** A [`PackedCiphertext`] carries `bound_bits`: every slot is known to hold
//! `|v| < 2^{bound_bits}`. Each operation updates the bound (addition: `max + 1`; scalar
//! multiplication by `k`: `+ bits(|k|)`; a plaintext–ciphertext product with inner dimension `d`
//! and plaintext entries below a **public** `2^p`: `+ p + ⌈log2 d⌉`; a statistical mask of `σ`
//! bits: `+ σ + 1`) and returns [`CryptoError::SlotOverflow`] before computing anything whose
//! bound reaches `s − 1`. The bounds are public by construction: the mask width, which the
//! decrypting party sees, never depends on the data (a plaintext entry beyond `2^p` is an error).
//!
//! **Circuit privacy.** A ciphertext also carries `rand_bits`, a bound on the exponent of its
//! randomness `h_s^e` (module [`super`]): `ρ` for a fresh encryption, the larger bound plus one
//! for a sum, `+ bits(k)` for a scalar product, `+ p + ⌈log2 d⌉` for a plaintext product. Before
//! a product goes back to the key owner, [`PublicKey::mask_packed`] multiplies in a fresh
//! `h_s^{a'}` with `a'` uniform below `2^{rand_bits + σ}`. The key owner can strip the message and
//! see the randomness `h_s^{e + a'}`; since `|e| < 2^{rand_bits}`, the exponent `e + a'` is within
//! statistical distance `|e| / 2^{rand_bits + σ} < 2^{−σ}` of `a'` alone, so the ciphertext it
//! receives is distributed like a fresh encryption of the masked value, whatever the other
//! party's plaintext (without it, `e = Σ a_k·x_k` for the owner's own known `a_k` would let it test
//! guesses of the other party's `x`).

use rand::RngCore;
use rayon::prelude::*;
use rug::Integer;
use rug::integer::Order;

use super::ciphertext::Ciphertext;
use super::keys::{KeyId, PublicKey, SecretKey};
use crate::error::{CryptoError, Result};
use crate::ring::RingMatrix;

/// A slot layout for one key: `slots` values of `slot_bits` bits per plaintext.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packing {
    slot_bits: u32,
    slots: usize,
    key: KeyId,
    randomness_bits: u32,
}

impl Packing {
    /// The densest layout of `slot_bits`-bit slots for `pk`.
    pub fn new(pk: &PublicKey, slot_bits: u32) -> Result<Self> {
        let usable = pk.bits().saturating_sub(2);
        if slot_bits < 2 || slot_bits > usable {
            return Err(CryptoError::InvalidPacking(format!(
                "{slot_bits}-bit slots in a {}-bit key",
                pk.bits()
            )));
        }
        Ok(Self {
            slot_bits,
            slots: (usable / slot_bits) as usize,
            key: pk.id(),
            randomness_bits: pk.randomness_bits,
        })
    }

    /// Slot width in bits.
    pub fn slot_bits(&self) -> u32 {
        self.slot_bits
    }

    /// Values per plaintext.
    pub fn slots(&self) -> usize {
        self.slots
    }

    fn check_bound(&self, bound_bits: u32) -> Result<u32> {
        if bound_bits >= self.slot_bits {
            return Err(CryptoError::SlotOverflow {
                needed_bits: bound_bits + 1,
                slot_bits: self.slot_bits,
            });
        }
        Ok(bound_bits)
    }

    fn pack(&self, values: &[Integer]) -> Result<(Integer, u32)> {
        if values.is_empty() || values.len() > self.slots {
            return Err(CryptoError::InvalidPacking(format!(
                "{} values for {} slots",
                values.len(),
                self.slots
            )));
        }
        let bound = self.check_bound(bits_of(values))?;
        let mut m = Integer::new();
        for v in values.iter().rev() {
            m <<= self.slot_bits;
            m += v;
        }
        Ok((m, bound))
    }

    fn unpack(&self, mut m: Integer, count: usize) -> Vec<Integer> {
        let modulus = Integer::from(1) << self.slot_bits;
        let half = Integer::from(1) << (self.slot_bits - 1);
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let mut slot = m.clone().keep_bits(self.slot_bits);
            if slot >= half {
                slot -= &modulus;
            }
            m -= &slot;
            m >>= self.slot_bits;
            out.push(slot);
        }
        out
    }
}

/// Bit length of the largest magnitude in `values`.
fn bits_of(values: &[Integer]) -> u32 {
    values
        .iter()
        .map(|v| v.significant_bits())
        .max()
        .unwrap_or(0)
}

/// A ciphertext of packed values, with the bound that guards its slots.
#[derive(Clone, Debug)]
pub struct PackedCiphertext {
    ct: Ciphertext,
    count: usize,
    bound_bits: u32,
    rand_bits: u32,
    packing: Packing,
}

impl PackedCiphertext {
    /// The underlying ciphertext.
    pub fn ciphertext(&self) -> &Ciphertext {
        &self.ct
    }

    /// Number of occupied slots.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Every slot holds `|v| < 2^bound_bits`.
    pub fn bound_bits(&self) -> u32 {
        self.bound_bits
    }

    /// The randomness exponent `e` of the ciphertext satisfies `|e| < 2^rand_bits` (module docs).
    pub fn rand_bits(&self) -> u32 {
        self.rand_bits
    }

    /// The layout.
    pub fn packing(&self) -> &Packing {
        &self.packing
    }

    /// Re-attaches layout metadata to a ciphertext received from a peer. The bound must be the
    /// one the sender's protocol step guarantees; it is checked against the layout. Its
    /// randomness is taken to be a fresh encryption's (the sender follows the protocol).
    pub fn from_parts(
        ct: Ciphertext,
        count: usize,
        bound_bits: u32,
        packing: Packing,
    ) -> Result<Self> {
        if ct.key_id() != packing.key {
            return Err(CryptoError::KeyMismatch {
                expected: packing.key,
                found: ct.key_id(),
            });
        }
        if count == 0 || count > packing.slots {
            return Err(CryptoError::InvalidPacking(format!(
                "{count} values for {} slots",
                packing.slots
            )));
        }
        packing.check_bound(bound_bits)?;
        Ok(Self {
            rand_bits: packing.randomness_bits,
            ct,
            count,
            bound_bits,
            packing,
        })
    }
}

/// A row-major matrix of packed ciphertexts (each cell packs a short vector).
#[derive(Clone, Debug)]
pub struct PackedMatrix {
    rows: usize,
    cols: usize,
    cells: Vec<PackedCiphertext>,
}

impl PackedMatrix {
    /// Wraps `rows × cols` cells, row-major.
    pub fn new(rows: usize, cols: usize, cells: Vec<PackedCiphertext>) -> Result<Self> {
        crate::error::check_len(rows, cols, cells.len())?;
        Ok(Self { rows, cols, cells })
    }

    /// (rows, cols).
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// The cells, row-major.
    pub fn cells(&self) -> &[PackedCiphertext] {
        &self.cells
    }

    /// Consumes the matrix, returning its cells.
    pub fn into_cells(self) -> Vec<PackedCiphertext> {
        self.cells
    }
}

impl PublicKey {
    fn check_packing(&self, packing: &Packing) -> Result<()> {
        if packing.key != self.id {
            return Err(CryptoError::KeyMismatch {
                expected: self.id,
                found: packing.key,
            });
        }
        Ok(())
    }

    /// Encrypts up to `packing.slots()` signed values in one ciphertext.
    pub fn encrypt_packed(
        &self,
        packing: &Packing,
        values: &[Integer],
        rng: &mut impl RngCore,
    ) -> Result<PackedCiphertext> {
        self.check_packing(packing)?;
        let (m, bound_bits) = packing.pack(values)?;
        Ok(PackedCiphertext {
            ct: self.encrypt(&m, rng)?,
            count: values.len(),
            bound_bits,
            rand_bits: self.randomness_bits,
            packing: *packing,
        })
    }

    fn same_layout(&self, a: &PackedCiphertext, b: &PackedCiphertext) -> Result<()> {
        self.check_packing(&a.packing)?;
        if a.packing != b.packing {
            return Err(CryptoError::InvalidPacking(
                "operands use different layouts".into(),
            ));
        }
        Ok(())
    }

    /// Slot-wise sum.
    pub fn add_packed(
        &self,
        a: &PackedCiphertext,
        b: &PackedCiphertext,
    ) -> Result<PackedCiphertext> {
        self.same_layout(a, b)?;
        let bound_bits = a.packing.check_bound(a.bound_bits.max(b.bound_bits) + 1)?;
        Ok(PackedCiphertext {
            ct: self.add(&a.ct, &b.ct)?,
            count: a.count.max(b.count),
            bound_bits,
            rand_bits: a.rand_bits.max(b.rand_bits) + 1,
            packing: a.packing,
        })
    }

    /// Every slot multiplied by the signed scalar `k`.
    pub fn mul_scalar_packed(&self, a: &PackedCiphertext, k: &Integer) -> Result<PackedCiphertext> {
        self.check_packing(&a.packing)?;
        let bound_bits = a.packing.check_bound(a.bound_bits + k.significant_bits())?;
        Ok(PackedCiphertext {
            ct: self.mul_scalar(&a.ct, k)?,
            count: a.count,
            bound_bits,
            rand_bits: a.rand_bits + k.significant_bits(),
            packing: a.packing,
        })
    }

    /// Adds a uniform mask `r_i ∈ [0, 2^{bound + σ})` to every occupied slot, re-randomises the
    /// ciphertext for circuit privacy (module docs) and returns the masks. For
    /// `|v| < 2^{bound}`, `v + r` is within statistical distance `2^{−σ}` of uniform, and the
    /// ciphertext's randomness within `2^{−σ}` of fresh: the key owner learns `v + r` only.
    pub fn mask_packed(
        &self,
        a: &PackedCiphertext,
        statistical_bits: u32,
        rng: &mut impl RngCore,
    ) -> Result<(PackedCiphertext, Vec<Integer>)> {
        self.check_packing(&a.packing)?;
        let mask_bits = a.bound_bits + statistical_bits;
        let bound_bits = a.packing.check_bound(mask_bits + 1)?;
        let masks: Vec<Integer> = (0..a.count)
            .map(|_| {
                let mut bytes = vec![0u8; mask_bits.div_ceil(8) as usize];
                rng.fill_bytes(&mut bytes);
                Integer::from_digits(&bytes, Order::Lsf).keep_bits(mask_bits)
            })
            .collect();
        let (m, _) = a.packing.pack(&masks)?;
        let rand_bits = a.rand_bits + statistical_bits;
        let masked = self.add_plain(&a.ct, &m)?;
        Ok((
            PackedCiphertext {
                ct: self.rerandomize_wide(&masked, rand_bits, rng)?,
                count: a.count,
                bound_bits,
                rand_bits: rand_bits + 1,
                packing: a.packing,
            },
            masks,
        ))
    }

    /// The product of a plaintext matrix `P` (`a × d`, entries read as signed `i64`, each below
    /// the public bound `2^plain_bits` in magnitude) with a matrix `C` (`d × b`) of packed
    /// ciphertexts: cell `(i, j)` is `Σ_k P[i,k] ⊗ C[k,j]`, slot by slot. An entry of `P`
    /// beyond the bound is an error, so the result's bound (and every mask sized from it)
    /// depends only on public parameters.
    ///
    /// Each output cell is the multi-exponentiation `Π_k C[k,j]^{P[i,k]}` mod `n²`, computed by
    /// Straus's method: every base `C[k,j]` (or its inverse, for negative entries) gets a table
    /// of its first `2^w − 1` powers once, shared by the `a` rows, and each cell then needs
    /// `⌈plain_bits / w⌉·w` squarings in all plus one table product per base and window — not
    /// one square-and-multiply per term. The window `w` minimises that cost for `a` rows
    /// ([`straus_window`]). Parallel over tables, then over output cells. The result is the
    /// same group element as [`PublicKey::plain_matmul_packed_by_terms`], bit for bit.
    pub fn plain_matmul_packed(
        &self,
        p: &RingMatrix,
        plain_bits: u32,
        c: &PackedMatrix,
    ) -> Result<PackedMatrix> {
        let Some(product) = self.product_layout(p, plain_bits, c)? else {
            return PackedMatrix::new(p.rows(), c.cols, Vec::new());
        };
        let (a, d) = p.shape();
        let cols = c.cols;
        let w = straus_window(a, plain_bits);
        let entry = |i: usize, k: usize| p.as_slice()[i * d + k] as i64;
        // Which signs each column of P uses, so only needed tables are built.
        let signs: Vec<(bool, bool)> = (0..d)
            .map(|k| {
                (0..a).fold((false, false), |(pos, neg), i| {
                    let s = entry(i, k);
                    (pos || s > 0, neg || s < 0)
                })
            })
            .collect();
        let n2 = &self.n_squared;
        let table = |base: &Integer| -> Vec<Integer> {
            let mut t = Vec::with_capacity((1 << w) - 1);
            t.push(base.clone());
            for v in 1..(1usize << w) - 1 {
                let mut next = Integer::from(&t[v - 1] * base);
                next %= n2;
                t.push(next);
            }
            t
        };
        type Tables = (Option<Vec<Integer>>, Option<Vec<Integer>>);
        let tables: Vec<Tables> = c
            .cells
            .par_iter()
            .enumerate()
            .map(|(idx, cell)| {
                let (pos, neg) = signs[idx / cols];
                let positive = pos.then(|| table(&cell.ct.c));
                let negative = if neg {
                    let inverse = cell.ct.c.clone().invert(n2).map_err(|_| {
                        CryptoError::InvalidCiphertext("not invertible modulo n²".into())
                    })?;
                    Some(table(&inverse))
                } else {
                    None
                };
                Ok((positive, negative))
            })
            .collect::<Result<_>>()?;
        let windows = plain_bits.div_ceil(w);
        let mask = (1u64 << w) - 1;
        let cells = (0..a * cols)
            .into_par_iter()
            .map(|idx| {
                let (i, j) = (idx / cols, idx % cols);
                let mut acc: Option<Integer> = None;
                for win in (0..windows).rev() {
                    if let Some(x) = acc.as_mut() {
                        for _ in 0..w {
                            x.square_mut();
                            *x %= n2;
                        }
                    }
                    for k in 0..d {
                        let s = entry(i, k);
                        let digit = (s.unsigned_abs() >> (win * w)) & mask;
                        if digit == 0 {
                            continue;
                        }
                        let (positive, negative) = &tables[k * cols + j];
                        let t = if s > 0 { positive } else { negative };
                        let power =
                            &t.as_ref().expect("a table for every sign in use")[digit as usize - 1];
                        match acc.as_mut() {
                            Some(x) => {
                                *x *= power;
                                *x %= n2;
                            }
                            None => acc = Some(power.clone()),
                        }
                    }
                }
                let count = (0..d).map(|k| c.cells[k * cols + j].count).max();
                product.cell(self, acc.unwrap_or_else(|| Integer::from(1)), count)
            })
            .collect();
        PackedMatrix::new(a, cols, cells)
    }

    /// [`PublicKey::plain_matmul_packed`] by one modular exponentiation per term
    /// (square-and-multiply in GMP): the reference the multi-exponentiation is tested and
    /// benchmarked against.
    pub fn plain_matmul_packed_by_terms(
        &self,
        p: &RingMatrix,
        plain_bits: u32,
        c: &PackedMatrix,
    ) -> Result<PackedMatrix> {
        let Some(product) = self.product_layout(p, plain_bits, c)? else {
            return PackedMatrix::new(p.rows(), c.cols, Vec::new());
        };
        let (a, d) = p.shape();
        let inverses: Vec<Integer> =
            c.cells
                .par_iter()
                .map(|x| {
                    x.ct.c.clone().invert(&self.n_squared).map_err(|_| {
                        CryptoError::InvalidCiphertext("not invertible modulo n²".into())
                    })
                })
                .collect::<Result<_>>()?;
        let cells = (0..a * c.cols)
            .into_par_iter()
            .map(|idx| {
                let (i, j) = (idx / c.cols, idx % c.cols);
                let mut acc = Integer::from(1);
                for k in 0..d {
                    let s = p.as_slice()[i * d + k] as i64;
                    if s == 0 {
                        continue;
                    }
                    let base = if s < 0 {
                        &inverses[k * c.cols + j]
                    } else {
                        &c.cells[k * c.cols + j].ct.c
                    };
                    let e = Integer::from(s.unsigned_abs());
                    acc *= Integer::from(
                        base.pow_mod_ref(&e, &self.n_squared)
                            .expect("exponent is positive"),
                    );
                    acc %= &self.n_squared;
                }
                let count = (0..d).map(|k| c.cells[k * c.cols + j].count).max();
                product.cell(self, acc, count)
            })
            .collect();
        PackedMatrix::new(a, c.cols, cells)
    }

    /// Checks a plaintext-times-ciphertext product's inputs and returns the layout of its
    /// output cells; `None` for an empty `C`.
    fn product_layout(
        &self,
        p: &RingMatrix,
        plain_bits: u32,
        c: &PackedMatrix,
    ) -> Result<Option<ProductLayout>> {
        let (a, d) = p.shape();
        if d != c.rows {
            return Err(CryptoError::ShapeMismatch {
                op: "plain_matmul_packed",
                left: (a, d),
                right: c.shape(),
            });
        }
        let Some(first) = c.cells.first() else {
            return Ok(None);
        };
        let packing = first.packing;
        self.check_packing(&packing)?;
        for cell in &c.cells {
            self.check(&cell.ct)?;
            if cell.packing != packing {
                return Err(CryptoError::InvalidPacking(
                    "cells use different layouts".into(),
                ));
            }
        }
        let in_bound = c.cells.iter().map(|x| x.bound_bits).max().unwrap_or(0);
        let in_rand = c.cells.iter().map(|x| x.rand_bits).max().unwrap_or(0);
        // A public bound on the plaintext entries (fixed-point features use about 24 of the 64
        // bits, which buys wider packing than a worst-case 63), checked, never measured.
        if plain_bits >= 64 {
            return Err(CryptoError::InvalidPacking(format!(
                "a {plain_bits}-bit plaintext bound"
            )));
        }
        if let Some(&x) = p
            .as_slice()
            .iter()
            .find(|&&x| (x as i64).unsigned_abs() >> plain_bits != 0)
        {
            return Err(CryptoError::PlaintextOutOfRange(format!(
                "a plaintext entry of {} bits where the protocol bounds them by {plain_bits}",
                64 - (x as i64).unsigned_abs().leading_zeros()
            )));
        }
        let log_d = (d.max(1) as u64).next_power_of_two().ilog2();
        let bound_bits = packing.check_bound(in_bound + plain_bits + log_d)?;
        Ok(Some(ProductLayout {
            packing,
            bound_bits,
            rand_bits: in_rand + plain_bits + log_d,
        }))
    }

    pub(super) fn wrap_element(&self, c: Integer) -> Ciphertext {
        Ciphertext { c, key: self.id }
    }
}

/// What every output cell of a plaintext-times-ciphertext product carries besides its group
/// element: the layout and the public bounds of its slots and of its randomness.
struct ProductLayout {
    packing: Packing,
    bound_bits: u32,
    rand_bits: u32,
}

impl ProductLayout {
    fn cell(&self, key: &PublicKey, c: Integer, count: Option<usize>) -> PackedCiphertext {
        PackedCiphertext {
            ct: key.wrap_element(c),
            count: count.unwrap_or(0),
            bound_bits: self.bound_bits,
            rand_bits: self.rand_bits,
            packing: self.packing,
        }
    }
}

/// The window `w` (1 to 6) that minimises Straus's multiplications per base and output cell
/// for `rows` cells sharing each base and exponents below `2^bits`: the table's `2^w − 2`
/// products spread over the rows, plus one product per window, `⌈bits / w⌉`.
pub fn straus_window(rows: usize, bits: u32) -> u32 {
    let cost = |w: u32| ((1u64 << w) - 2) as f64 / rows.max(1) as f64 + bits.div_ceil(w) as f64;
    (1..=6)
        .min_by(|&x, &y| cost(x).total_cmp(&cost(y)))
        .unwrap_or(1)
}

impl SecretKey {
    /// Decrypts the occupied slots as signed integers.
    pub fn decrypt_packed(&self, a: &PackedCiphertext) -> Result<Vec<Integer>> {
        if a.packing.key != self.id {
            return Err(CryptoError::KeyMismatch {
                expected: self.id,
                found: a.packing.key,
            });
        }
        Ok(a.packing.unpack(self.decrypt_signed(&a.ct)?, a.count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paillier::Keypair;
    use crate::rng::SecureRng;
    use proptest::prelude::*;

    fn keypair() -> &'static Keypair {
        static KP: std::sync::OnceLock<Keypair> = std::sync::OnceLock::new();
        KP.get_or_init(|| {
            Keypair::generate_insecure_for_tests(
                1024,
                &mut SecureRng::insecure_from_seed_for_tests(42),
            )
            .unwrap()
        })
    }

    fn ints(v: &[i64]) -> Vec<Integer> {
        v.iter().map(|&x| Integer::from(x)).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn pack_round_trip_and_slotwise_linearity(values in proptest::collection::vec(any::<i64>(), 1..7), k in -1000i64..1000, seed: u64) {
            let kp = keypair();
            let packing = Packing::new(&kp.public, 140).unwrap();
            prop_assert_eq!(packing.slots(), 7);
            let mut rng = SecureRng::insecure_from_seed_for_tests(seed);
            let a = kp.public.encrypt_packed(&packing, &ints(&values), &mut rng).unwrap();
            prop_assert_eq!(kp.secret.decrypt_packed(&a).unwrap(), ints(&values));
            let sum = kp.public.add_packed(&a, &a).unwrap();
            let scaled = kp.public.mul_scalar_packed(&sum, &Integer::from(k)).unwrap();
            let expected: Vec<Integer> = values.iter().map(|&v| Integer::from(v) * 2 * k).collect();
            prop_assert_eq!(kp.secret.decrypt_packed(&scaled).unwrap(), expected);
        }
    }

    #[test]
    fn masking_returns_masks_that_unmask_exactly() {
        let kp = keypair();
        let packing = Packing::new(&kp.public, 140).unwrap();
        let mut rng = SecureRng::insecure_from_seed_for_tests(3);
        let values = ints(&[-5, 7, i64::MIN, i64::MAX]);
        let a = kp
            .public
            .encrypt_packed(&packing, &values, &mut rng)
            .unwrap();
        let (masked, masks) = kp.public.mask_packed(&a, 40, &mut rng).unwrap();
        assert_eq!(masked.bound_bits(), 64 + 40 + 1);
        let opened = kp.secret.decrypt_packed(&masked).unwrap();
        for ((o, m), v) in opened.iter().zip(&masks).zip(&values) {
            assert_eq!(o.clone() - m, *v);
            assert!(m.significant_bits() <= 104);
        }
    }

    /// The randomness `h_s^e` of a ciphertext, which the key owner can read: `c·g^{−m} mod n²`.
    fn randomness_of(kp: &Keypair, c: &PackedCiphertext) -> Integer {
        let m = kp.secret.decrypt(c.ciphertext()).unwrap();
        let n2 = &kp.public.n_squared;
        let gm = (m * &kp.public.n + 1u32) % n2;
        (gm.invert(n2).unwrap() * &c.ciphertext().c) % n2
    }

    #[test]
    fn returned_products_do_not_let_the_key_owner_test_guesses() {
        // The key owner encrypts w_k with exponents a_k it knows; the other party returns
        // Σ_k x_k·w_k. Unmasked and un-re-randomised, the product's randomness is
        // h_s^{Σ a_k x_k}, so the owner can test a guess of the other party's x: the attack
        // below tells the true x from a near miss every time. After `mask_packed` the
        // randomness matches neither guess.
        let kp = keypair();
        let packing = Packing::new(&kp.public, 140).unwrap();
        let n2 = &kp.public.n_squared;
        let mut rng = SecureRng::insecure_from_seed_for_tests(11);
        let (w, a): (Vec<i64>, Vec<u64>) = (vec![3, -8, 5, 12], vec![1001, 77, 40_000, 9]);
        let cells: Vec<PackedCiphertext> = w
            .iter()
            .zip(&a)
            .map(|(&w, &a)| {
                let r = kp
                    .public
                    .h_s
                    .clone()
                    .pow_mod(&Integer::from(a), n2)
                    .unwrap();
                let ct = kp
                    .public
                    .encrypt_with_randomizer(&Integer::from(w), &r)
                    .unwrap();
                PackedCiphertext::from_parts(ct, 1, 8, packing).unwrap()
            })
            .collect();
        let product = |x: &[i64]| {
            let mut acc = kp
                .public
                .mul_scalar_packed(&cells[0], &Integer::from(x[0]))
                .unwrap();
            for (c, &xk) in cells.iter().zip(x).skip(1) {
                let t = kp.public.mul_scalar_packed(c, &Integer::from(xk)).unwrap();
                acc = kp.public.add_packed(&acc, &t).unwrap();
            }
            acc
        };
        let predicted = |x: &[i64]| {
            let e: i64 = a.iter().zip(x).map(|(&a, &x)| a as i64 * x).sum();
            kp.public
                .h_s
                .clone()
                .pow_mod(&Integer::from(e), n2)
                .unwrap()
        };
        let (secret_x, near_miss) = ([2i64, 7, -1, 4], [2i64, 7, -1, 5]);
        let bare = product(&secret_x);
        assert_eq!(randomness_of(kp, &bare), predicted(&secret_x));
        assert_ne!(randomness_of(kp, &bare), predicted(&near_miss));
        let (private, masks) = kp.public.mask_packed(&bare, 40, &mut rng).unwrap();
        let seen = randomness_of(kp, &private);
        assert_ne!(seen, predicted(&secret_x));
        assert_ne!(seen, predicted(&near_miss));
        // The masked value still decrypts to the product plus the mask.
        let want: i64 = w.iter().zip(&secret_x).map(|(w, x)| w * x).sum();
        assert_eq!(
            kp.secret.decrypt_packed(&private).unwrap()[0],
            Integer::from(want) + &masks[0]
        );
        // The fresh exponent is σ bits wider than the tracked bound on e.
        assert!(private.rand_bits() > bare.rand_bits() + 40);
        assert!(bare.rand_bits() >= kp.public.randomness_bits());
    }

    #[test]
    fn overflowing_slots_are_refused_before_computing() {
        let kp = keypair();
        let packing = Packing::new(&kp.public, 80).unwrap();
        let mut rng = SecureRng::insecure_from_seed_for_tests(4);
        let big = Integer::from(1) << 79;
        assert!(matches!(
            kp.public.encrypt_packed(&packing, &[big], &mut rng),
            Err(CryptoError::SlotOverflow { .. })
        ));
        let a = kp
            .public
            .encrypt_packed(&packing, &ints(&[i64::MAX]), &mut rng)
            .unwrap();
        assert!(matches!(
            kp.public.mul_scalar_packed(&a, &Integer::from(i64::MAX)),
            Err(CryptoError::SlotOverflow {
                needed_bits: 127,
                slot_bits: 80
            })
        ));
        assert!(kp.public.mask_packed(&a, 40, &mut rng).is_err());
        assert!(
            kp.public
                .encrypt_packed(&packing, &ints(&[1; 13]), &mut rng)
                .is_err(),
            "too many values"
        );
        assert!(Packing::new(&kp.public, 2000).is_err());
    }

    #[test]
    fn the_multi_exponentiation_is_the_product_by_terms_bit_for_bit() {
        let kp = keypair();
        let packing = Packing::new(&kp.public, 200).unwrap();
        let mut rng = SecureRng::insecure_from_seed_for_tests(8);
        for (a, d, b, bits) in [
            (1, 3, 2, 1),
            (5, 4, 3, 5),
            (9, 2, 1, 22),
            (64, 3, 2, 22),
            (3, 2, 2, 63),
        ] {
            let w = straus_window(a, bits);
            let cells = (0..d * b)
                .map(|_| {
                    let v = ints(&[rand::RngCore::next_u64(&mut rng) as i64 >> 8, -3]);
                    kp.public.encrypt_packed(&packing, &v, &mut rng).unwrap()
                })
                .collect();
            let c = PackedMatrix::new(d, b, cells).unwrap();
            // Entries across the bound: zeros, ±1, the extremes, and random values of both
            // signs, so every window digit and both tables are used.
            let top = (1i64 << bits.min(62)) - 1 + i64::from(bits == 63) * i64::MAX / 2;
            let p: Vec<u64> = (0..a * d)
                .map(|i| {
                    let r = rand::RngCore::next_u64(&mut rng) as i64;
                    let v = match i % 5 {
                        0 => 0,
                        1 => 1,
                        2 => -top,
                        3 => r.rem_euclid(top.max(1) + 1),
                        _ => -(r.rem_euclid(top.max(1) + 1)),
                    };
                    v as u64
                })
                .collect();
            let p = RingMatrix::from_vec(a, d, p).unwrap();
            let fast = kp.public.plain_matmul_packed(&p, bits, &c).unwrap();
            let slow = kp
                .public
                .plain_matmul_packed_by_terms(&p, bits, &c)
                .unwrap();
            for (f, s) in fast.cells().iter().zip(slow.cells()) {
                assert_eq!(
                    f.ct.c, s.ct.c,
                    "a {a}, d {d}, b {b}, bits {bits}, window {w}"
                );
                assert_eq!(
                    (f.count, f.bound_bits, f.rand_bits),
                    (s.count, s.bound_bits, s.rand_bits)
                );
            }
        }
        // The window grows with the rows that share a table.
        assert_eq!(
            straus_window(1, 22),
            2,
            "2 products for the table, 11 windows"
        );
        assert!(straus_window(64, 22) > straus_window(4, 22));
    }

    #[test]
    fn plaintext_times_packed_matrix_matches_integer_product() {
        let kp = keypair();
        let packing = Packing::new(&kp.public, 200).unwrap();
        let mut rng = SecureRng::insecure_from_seed_for_tests(5);
        // C is d × b cells, each packing `t` values: C[k][j] = (x[k][j][0..t]).
        let (a, d, b, t) = (3, 4, 2, 3);
        let x: Vec<Vec<i64>> = (0..d * b)
            .map(|_| {
                (0..t)
                    .map(|_| rand::RngCore::next_u64(&mut rng) as i64)
                    .collect()
            })
            .collect();
        let p = RingMatrix::random(a, d, &mut rng);
        let cells = x
            .iter()
            .map(|v| {
                kp.public
                    .encrypt_packed(&packing, &ints(v), &mut rng)
                    .unwrap()
            })
            .collect();
        let c = PackedMatrix::new(d, b, cells).unwrap();
        let out = kp.public.plain_matmul_packed(&p, 63, &c).unwrap();
        assert_eq!(out.shape(), (a, b));
        for i in 0..a {
            for j in 0..b {
                let got = kp.secret.decrypt_packed(&out.cells()[i * b + j]).unwrap();
                for s in 0..t {
                    let want: Integer = (0..d)
                        .map(|k| Integer::from(p.as_slice()[i * d + k] as i64) * x[k * b + j][s])
                        .sum();
                    assert_eq!(got[s], want, "cell ({i},{j}) slot {s}");
                }
            }
        }
        let narrow = Packing::new(&kp.public, 120).unwrap();
        // 60-bit values times 64-bit entries summed over 4 terms need 60 + 63 + 2 bits: too many.
        let cells = vec![
            kp.public
                .encrypt_packed(&narrow, &[Integer::from(1) << 59], &mut rng)
                .unwrap();
            d
        ];
        let c = PackedMatrix::new(d, 1, cells).unwrap();
        assert!(matches!(
            kp.public.plain_matmul_packed(&p, 63, &c),
            Err(CryptoError::SlotOverflow { .. })
        ));
    }
}
