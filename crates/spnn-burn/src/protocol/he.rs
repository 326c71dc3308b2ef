//! SPNN-HE: the Paillier links between holders, for cross terms without a dealer.
//!
//! Holder `j` knows its features `X_j` in the clear and a share of every block of `W`. The
//! product `X·W = Σ_j X_j·W_j` needs, besides local terms, the **cross terms** `X_j·⟨W_j⟩_o`:
//! holder `j`'s plaintext times holder `o`'s share, for every ordered pair `j ≠ o` of the `k`
//! holders (`k·(k − 1)` of them, each under the key of its share's owner `o`). For each:
//!
//! 1. *encrypt share*: `o` encrypts its share under its own key, row-packed, and sends it to `j`;
//! 2. *multiply and mask*: `j` computes `X_j ⊗ Enc(⟨W_j⟩_o)` homomorphically, adds a uniform mask
//!    `R` of `bound + 40` bits to every slot (statistical distance `2^{−40}` from uniform),
//!    **re-randomises** every ciphertext with a fresh exponent 40 bits wider than the bound on
//!    its randomness (circuit privacy: the key owner cannot test guesses of `X_j` against the
//!    randomness it put in; [`spnn_crypto::paillier::PackedCiphertext::rand_bits`]), sends the
//!    result back and keeps `−R`;
//! 3. *decrypt*: `o` decrypts and keeps `X_j·⟨W_j⟩_o + R`.
//!
//! The two shares add up to the cross term over the integers, hence in Z_2^64 after reducing.
//! The backward pass does the same for `X_jᵀ·⟨cG⟩_o`, where the shares of `c·G` are integers
//! (module [`spnn_crypto::integer`]). Slot widths and mask widths come from **public** bounds
//! only: the share's width (64 bits for a ring share, the integer gradient share's width), the
//! features' bound from the session's `feature_clip`, the number of summed terms, `σ` and three
//! bits of sign and carry — never from the data, whose magnitudes the key owner would
//! otherwise read off the mask width.

use spnn_crypto::paillier::{Keypair, MIN_SECURE_BITS, Packing, PublicKey};
use spnn_crypto::{IntMatrix, RingMatrix};
use spnn_net::codec::{Blob, Codec, Message, Reader};
use spnn_net::{CodecError, Network, PartyId};

use crate::error::{Result, SpnnError, protocol};

/// Bits of a ring share read as a signed 64-bit integer.
pub const RING_SHARE_BITS: u32 = 64;
/// Statistical security of the masks and of circuit privacy.
pub const STATISTICAL_BITS: u32 = 40;

/// The public shape of one cross product: `P ⊗ Enc(S)` with `P`'s entries below
/// `2^plain_bits`, `S`'s below `2^share_bits`, and `terms` summands per output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrossShape {
    /// Bound on the encrypted share's entries, in bits.
    pub share_bits: u32,
    /// Bound on the plaintext operand's entries, in bits.
    pub plain_bits: u32,
    /// Summands per output entry (the inner dimension).
    pub terms: usize,
}

impl CrossShape {
    /// Slot width: the product's bound, the mask, three bits of sign and carry.
    pub fn slot_bits(&self) -> u32 {
        self.share_bits
            + self.plain_bits
            + (self.terms.max(2) as u64).next_power_of_two().ilog2()
            + STATISTICAL_BITS
            + 3
    }

    /// Bits of the largest magnitude a decrypted masked product may have: the slot less its
    /// sign and spare bit.
    fn masked_bits(&self) -> u32 {
        self.slot_bits() - 2
    }
}

/// Counts of Paillier work, per holder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeCounters {
    /// Packed ciphertexts encrypted.
    pub encryptions: u64,
    /// Packed ciphertexts decrypted.
    pub decryptions: u64,
    /// Homomorphic scalar multiplications (exponentiations mod n²).
    pub products: u64,
    /// Ciphertexts masked and re-randomised before going back to their key owner.
    pub rerandomizations: u64,
}

/// A row-packed encrypted matrix on the wire.
#[derive(Clone, Debug, PartialEq)]
pub struct EncryptedMatrix {
    /// Rows of the plain matrix.
    pub rows: u32,
    /// Columns of the plain matrix.
    pub cols: u32,
    /// Ciphertexts, `rows × ⌈cols / slots⌉`, row-major.
    pub cells: Vec<Blob>,
}

impl Codec for EncryptedMatrix {
    fn encode(&self, out: &mut Vec<u8>) {
        self.rows.encode(out);
        self.cols.encode(out);
        self.cells.encode(out);
    }
    fn read(r: &mut Reader<'_>) -> std::result::Result<Self, CodecError> {
        Ok(Self {
            rows: u32::read(r)?,
            cols: u32::read(r)?,
            cells: Vec::read(r)?,
        })
    }
}

macro_rules! encrypted_message {
    ($(#[$doc:meta])* $name:ident = $kind:expr, $desc:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq)]
        pub struct $name(pub EncryptedMatrix);
        impl Codec for $name {
            fn encode(&self, out: &mut Vec<u8>) {
                self.0.encode(out)
            }
            fn read(r: &mut Reader<'_>) -> std::result::Result<Self, CodecError> {
                EncryptedMatrix::read(r).map(Self)
            }
        }
        impl Message for $name {
            const KIND: u16 = $kind;
            const NAME: &'static str = $desc;
        }
    };
}

encrypted_message!(
    /// A holder's share, encrypted under its own key, to the holder whose cross term it is.
    EncryptedShare = 0x0130, "encrypted share"
);
encrypted_message!(
    /// A masked homomorphic product, under the receiver's key, back to it.
    MaskedProduct = 0x0131, "masked product"
);

/// A Paillier public key at set-up: `n` and `h_s` in hexadecimal.
#[derive(Clone, Debug, PartialEq)]
pub struct PaillierKey(pub String, pub String);

impl Codec for PaillierKey {
    fn encode(&self, out: &mut Vec<u8>) {
        (self.0.clone(), self.1.clone()).encode(out);
    }
    fn read(r: &mut Reader<'_>) -> std::result::Result<Self, CodecError> {
        // Hex of a 3072-bit n² fits the string limit; longer is refused by the codec.
        let (n, h) = <(String, String)>::read(r)?;
        Ok(Self(n, h))
    }
}

impl Message for PaillierKey {
    const KIND: u16 = 0x0132;
    const NAME: &'static str = "Paillier public key";
}

/// A holder's side of the Paillier links with every other holder: its key pair, their
/// public keys, counters. Every ordered pair of holders runs the three steps of the module docs
/// with the keys of the step's key owner.
pub(crate) struct HeLink {
    keys: Keypair,
    peers: Vec<(PartyId, PublicKey)>,
    pub(crate) counters: HeCounters,
}

impl HeLink {
    /// Set-up: sends this holder's public key to every one of `peers` and validates the ones it
    /// receives, refusing keys under `min_bits` (this holder's policy, at least the session's
    /// size).
    pub(crate) fn establish(
        net: &Network,
        peers: &[PartyId],
        keys: Keypair,
        min_bits: u32,
    ) -> Result<Self> {
        if keys.public.bits() < min_bits {
            return Err(SpnnError::Policy(format!(
                "this holder's own Paillier key has {} bits; the session requires {min_bits}",
                keys.public.bits()
            )));
        }
        let data = keys.public.to_data();
        for &peer in peers {
            net.send(peer, &PaillierKey(data.n.clone(), data.h_s.clone()))?;
        }
        let mut received = Vec::with_capacity(peers.len());
        for &peer in peers {
            let PaillierKey(n, h_s) = net.recv(peer)?;
            let data = spnn_crypto::paillier::PublicKeyData { n, h_s };
            let key = if min_bits >= MIN_SECURE_BITS {
                PublicKey::from_data(&data)
            } else {
                PublicKey::from_data_insecure_for_tests(&data)
            }
            .map_err(|e| protocol(peer, format!("its Paillier key: {e}")))?;
            if key.bits() < min_bits {
                return Err(protocol(
                    peer,
                    format!(
                        "a {}-bit Paillier key; this holder requires {min_bits}",
                        key.bits(),
                    ),
                ));
            }
            // A copied key file would let its holders decrypt each other's shares.
            if key == keys.public || received.iter().any(|(_, k)| *k == key) {
                return Err(protocol(
                    peer,
                    "a Paillier key that another holder of this session also has",
                ));
            }
            key.precompute();
            received.push((peer, key));
        }
        keys.public.precompute();
        Ok(Self {
            keys,
            peers: received,
            counters: HeCounters::default(),
        })
    }

    fn peer_key(&self, peer: PartyId) -> Result<&PublicKey> {
        self.peers
            .iter()
            .find(|(p, _)| *p == peer)
            .map(|(_, k)| k)
            .ok_or_else(|| SpnnError::Config(format!("no Paillier link with {peer}")))
    }

    /// Step 1: encrypts `share` (entries below `2^shape.share_bits`) under this holder's key
    /// and sends it to each of `peers`, packed for their products of `shape`.
    pub(crate) fn send_encrypted(
        &mut self,
        net: &Network,
        peers: &[PartyId],
        share: &RingMatrix,
        shape: CrossShape,
        rng: &mut spnn_crypto::SecureRng,
    ) -> Result<()> {
        let packing = Packing::new(&self.keys.public, shape.slot_bits())?;
        let enc = self.keys.public.encrypt_rows(&packing, share, rng)?;
        self.counters.encryptions += enc.cells().len() as u64;
        let message = EncryptedShare(EncryptedMatrix {
            rows: share.rows() as u32,
            cols: share.cols() as u32,
            cells: self
                .keys
                .public
                .packed_matrix_to_bytes(&enc)?
                .into_iter()
                .map(Blob)
                .collect(),
        });
        // The same ciphertexts to every peer (the backward's share of c·G): each peer masks and
        // re-randomises its own product, so what comes back is fresh whichever peer made it.
        for &peer in peers {
            net.send(peer, &message)?;
        }
        Ok(())
    }

    /// Step 2: receives the peer's encrypted share (`plain.cols() × cols`), multiplies it by
    /// `plain` (this holder's features, or their transpose), masks and re-randomises the
    /// product and sends it back. Returns this holder's share of the product, `−mask`, over the
    /// integers (`plain.rows() × cols`).
    pub(crate) fn multiply_and_mask(
        &mut self,
        net: &Network,
        peer: PartyId,
        plain: &RingMatrix,
        cols: usize,
        shape: CrossShape,
        rng: &mut spnn_crypto::SecureRng,
    ) -> Result<IntMatrix> {
        let EncryptedShare(m) = net.recv(peer)?;
        let dims = (plain.cols(), cols);
        if (m.rows as usize, m.cols as usize) != dims || shape.terms != plain.cols() {
            return Err(protocol(
                peer,
                format!(
                    "encrypted share of shape {}x{}, expected {dims:?}",
                    m.rows, m.cols
                ),
            ));
        }
        let peer_key = self.peer_key(peer)?.clone();
        let packing = Packing::new(&peer_key, shape.slot_bits())?;
        let blobs: Vec<Vec<u8>> = m.cells.into_iter().map(|b| b.0).collect();
        let enc = peer_key
            .packed_matrix_from_bytes(
                (dims.0, cols.div_ceil(packing.slots())),
                &blobs,
                &packing,
                cols,
                shape.share_bits,
            )
            .map_err(|e| protocol(peer, format!("encrypted share: {e}")))?;
        let product = peer_key.plain_matmul_packed(plain, shape.plain_bits, &enc)?;
        self.counters.products += (product.cells().len() * plain.cols()) as u64;
        let (masked, share) = peer_key.mask_rows(&product, cols, STATISTICAL_BITS, rng)?;
        self.counters.rerandomizations += masked.cells().len() as u64;
        let cells = peer_key
            .packed_matrix_to_bytes(&masked)?
            .into_iter()
            .map(Blob)
            .collect();
        net.send(
            peer,
            &MaskedProduct(EncryptedMatrix {
                rows: plain.rows() as u32,
                cols: cols as u32,
                cells,
            }),
        )?;
        Ok(share)
    }

    /// Step 3: receives the masked product (`rows × cols` of `shape`) under this holder's key
    /// and decrypts it into this holder's share, over the integers.
    pub(crate) fn receive_product(
        &mut self,
        net: &Network,
        peer: PartyId,
        (rows, cols): (usize, usize),
        shape: CrossShape,
    ) -> Result<IntMatrix> {
        let MaskedProduct(m) = net.recv(peer)?;
        if (m.rows as usize, m.cols as usize) != (rows, cols) {
            return Err(protocol(
                peer,
                format!(
                    "masked product of shape {}x{}, expected {rows}x{cols}",
                    m.rows, m.cols
                ),
            ));
        }
        let packing = Packing::new(&self.keys.public, shape.slot_bits())?;
        let blobs: Vec<Vec<u8>> = m.cells.into_iter().map(|b| b.0).collect();
        let enc = self
            .keys
            .public
            .packed_matrix_from_bytes(
                (rows, cols.div_ceil(packing.slots())),
                &blobs,
                &packing,
                cols,
                shape.masked_bits(),
            )
            .map_err(|e| protocol(peer, format!("masked product: {e}")))?;
        self.counters.decryptions += enc.cells().len() as u64;
        self.keys
            .secret
            .decrypt_rows(&enc, cols, shape.masked_bits())
            .map_err(|e| SpnnError::Protocol {
                peer,
                reason: format!("masked product: {e}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rug::Integer;
    use spnn_crypto::SecureRng;
    use spnn_net::{NetworkConfig, Roster};

    /// Two holders' engines over in-memory channels, with insecure 512-bit test keys.
    fn pair() -> (Network, Network, HeLink, HeLink, Keypair) {
        let roster = Roster::spnn(2, false).unwrap();
        let nets = Network::in_memory(
            &roster,
            NetworkConfig::new(1).with_timeout(std::time::Duration::from_secs(10)),
        );
        let mut rng = SecureRng::insecure_from_seed_for_tests(3);
        let (ka, kb) = (
            Keypair::generate_insecure_for_tests(512, &mut rng).unwrap(),
            Keypair::generate_insecure_for_tests(512, &mut rng).unwrap(),
        );
        let kb_copy = kb.clone();
        let (na, nb) = (nets[1].clone(), nets[2].clone());
        let hb =
            std::thread::spawn(move || HeLink::establish(&nb, &[PartyId(1)], kb, 512).unwrap());
        let a = HeLink::establish(&na, &[PartyId(2)], ka, 512).unwrap();
        (
            nets[1].clone(),
            nets[2].clone(),
            a,
            hb.join().unwrap(),
            kb_copy,
        )
    }

    /// The holders' party ids: `a` is party 1, `b` party 2.
    const A: PartyId = PartyId(1);
    const B: PartyId = PartyId(2);

    /// The cross product of a 4×3 feature block with a 3×5 ring share.
    const SHAPE: CrossShape = CrossShape {
        share_bits: RING_SHARE_BITS,
        plain_bits: 20,
        terms: 3,
    };

    fn features(rows: usize, cols: usize) -> RingMatrix {
        RingMatrix::from_vec(
            rows,
            cols,
            (0..rows * cols)
                .map(|i| ((i as i64 % 7 - 3) << 16) as u64)
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn a_cross_term_reconstructs_and_the_counters_count() {
        let (na, nb, mut a, mut b, _) = pair();
        let w = RingMatrix::random(3, 5, &mut SecureRng::insecure_from_seed_for_tests(1));
        let x = features(4, 3);
        b.send_encrypted(&nb, &[A], &w, SHAPE, &mut SecureRng::from_os_entropy())
            .unwrap();
        let share_a = a
            .multiply_and_mask(&na, B, &x, 5, SHAPE, &mut SecureRng::from_os_entropy())
            .unwrap();
        let share_b = b.receive_product(&nb, A, (4, 5), SHAPE).unwrap();
        assert_eq!(
            share_a.to_ring().add(&share_b.to_ring()).unwrap(),
            x.matmul(&w).unwrap()
        );
        assert!(
            b.counters.encryptions > 0
                && b.counters.decryptions > 0
                && a.counters.products > 0
                && a.counters.rerandomizations > 0
        );
        // A feature beyond the public bound is refused, not measured into the mask width.
        b.send_encrypted(&nb, &[A], &w, SHAPE, &mut SecureRng::from_os_entropy())
            .unwrap();
        let wide = features(4, 3).map(|v| v.wrapping_mul(64));
        assert!(
            a.multiply_and_mask(&na, B, &wide, 5, SHAPE, &mut SecureRng::from_os_entropy())
                .is_err()
        );
    }

    /// Party 0 (`nb`) sends a 3×5 encrypted share made of `cells`; party 1 (`a`) must refuse
    /// it. Returns the error message.
    fn refused_share(na: &Network, nb: &Network, a: &mut HeLink, cells: Vec<Blob>) -> String {
        let share = EncryptedShare(EncryptedMatrix {
            rows: 3,
            cols: 5,
            cells,
        });
        nb.send(PartyId(1), &share).unwrap();
        a.multiply_and_mask(
            na,
            B,
            &features(4, 3),
            5,
            SHAPE,
            &mut SecureRng::from_os_entropy(),
        )
        .unwrap_err()
        .to_string()
    }

    /// The key owner's linear-algebra attack on one cross term: from `Y = X·S mod 2^64` (its
    /// decryption) and `S` (its own share, `d × h`), solve `X = Y[:, cols]·S[:, cols]⁻¹` through
    /// the first `d` columns of `S` whose block is invertible modulo `2^64`.
    fn solve_ring(y: &RingMatrix, s: &RingMatrix) -> Option<RingMatrix> {
        let (d, h) = s.shape();
        let columns = |m: &RingMatrix, cols: &[usize]| {
            let data = (0..m.rows())
                .flat_map(|r| cols.iter().map(move |&c| m.get(r, c).expect("in range")))
                .collect();
            RingMatrix::from_vec(m.rows(), cols.len(), data).expect("shape")
        };
        (0..1usize << h)
            .filter(|mask| mask.count_ones() as usize == d)
            .map(|mask| (0..h).filter(|c| mask >> c & 1 == 1).collect::<Vec<_>>())
            .find_map(|cols| {
                let inv = columns(s, &cols).inverse()?;
                columns(y, &cols).matmul(&inv).ok()
            })
    }

    #[test]
    fn the_key_owners_linear_attack_fails_only_because_of_the_mask() {
        let (na, nb, mut a, mut b, kb) = pair();
        let mut rng = SecureRng::insecure_from_seed_for_tests(5);
        let w = RingMatrix::random(3, 5, &mut rng);
        let x = features(4, 3);
        // The protocol: b's whole view of this cross term is its share `w` and what it decrypts.
        b.send_encrypted(&nb, &[A], &w, SHAPE, &mut SecureRng::from_os_entropy())
            .unwrap();
        a.multiply_and_mask(&na, B, &x, 5, SHAPE, &mut SecureRng::from_os_entropy())
            .unwrap();
        let seen = b.receive_product(&nb, A, (4, 5), SHAPE).unwrap().to_ring();
        let guess = solve_ring(&seen, &w).expect("an invertible block");
        let hits = guess
            .as_slice()
            .iter()
            .zip(x.as_slice())
            .filter(|(g, t)| g == t)
            .count();
        assert_eq!(
            hits, 0,
            "the masked product gives b nothing of a's features"
        );
        // The same attack once the protection is removed: the product decrypted unmasked.
        let packing = Packing::new(&kb.public, SHAPE.slot_bits()).unwrap();
        let enc = kb.public.encrypt_rows(&packing, &w, &mut rng).unwrap();
        let bare = kb
            .public
            .plain_matmul_packed(&x, SHAPE.plain_bits, &enc)
            .unwrap();
        let plain = kb
            .secret
            .decrypt_rows(&bare, 5, SHAPE.masked_bits())
            .unwrap();
        assert_eq!(
            solve_ring(&plain.to_ring(), &w).expect("an invertible block"),
            x,
            "without the mask b recovers a's features exactly"
        );
    }

    #[test]
    fn a_peer_key_equal_to_this_holders_own_is_refused() {
        let roster = Roster::spnn(2, false).unwrap();
        let nets = Network::in_memory(
            &roster,
            NetworkConfig::new(1).with_timeout(std::time::Duration::from_secs(10)),
        );
        let mut rng = SecureRng::insecure_from_seed_for_tests(3);
        let key = Keypair::generate_insecure_for_tests(512, &mut rng).unwrap();
        let copy = key.clone();
        let nb = nets[2].clone();
        let other = std::thread::spawn(move || HeLink::establish(&nb, &[A], copy, 512).is_err());
        let e = HeLink::establish(&nets[1], &[B], key, 512)
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("also has"), "{e}");
        assert!(other.join().unwrap(), "both holders refuse");
    }

    #[test]
    fn tampered_foreign_and_overflowing_ciphertexts_are_refused() {
        let (na, nb, mut a, _b, kb) = pair();
        let w = RingMatrix::random(3, 5, &mut SecureRng::insecure_from_seed_for_tests(1));
        // Tampered: a ciphertext byte string that is not in Z*_{n²} (all 0xff: c ≥ n²).
        let packing = Packing::new(&kb.public, SHAPE.slot_bits()).unwrap();
        let enc = kb
            .public
            .encrypt_rows(
                &packing,
                &w,
                &mut SecureRng::insecure_from_seed_for_tests(2),
            )
            .unwrap();
        let mut cells: Vec<Blob> = kb
            .public
            .packed_matrix_to_bytes(&enc)
            .unwrap()
            .into_iter()
            .map(Blob)
            .collect();
        let last = cells[0].0.len();
        cells[0].0[16..last].fill(0xff);
        let e = refused_share(&na, &nb, &mut a, cells);
        assert!(e.contains("invalid ciphertext"), "{e}");

        // Foreign key: a share encrypted under a third key.
        let (na, nb, mut a, _b, _) = pair();
        let mut rng = SecureRng::insecure_from_seed_for_tests(9);
        let stranger = Keypair::generate_insecure_for_tests(512, &mut rng).unwrap();
        let packing = Packing::new(&stranger.public, SHAPE.slot_bits()).unwrap();
        let enc = stranger
            .public
            .encrypt_rows(&packing, &w, &mut rng)
            .unwrap();
        let cells = stranger
            .public
            .packed_matrix_to_bytes(&enc)
            .unwrap()
            .into_iter()
            .map(Blob)
            .collect();
        let e = refused_share(&na, &nb, &mut a, cells);
        assert!(e.contains("key"), "{e}");

        // Overflowing: a "masked product" whose slots hold values beyond the protocol's bound.
        let (na, nb, _a, mut b, kb) = pair();
        let packing = Packing::new(&kb.public, SHAPE.slot_bits()).unwrap();
        let huge = vec![Integer::from(1) << (SHAPE.slot_bits() - 2); packing.slots().min(5)];
        let ct = kb.public.encrypt_packed(&packing, &huge, &mut rng).unwrap();
        let cells = 4 * 5usize.div_ceil(packing.slots());
        let blobs: Vec<Blob> = (0..cells)
            .map(|_| Blob(ct.ciphertext().to_bytes(&kb.public).unwrap()))
            .collect();
        na.send(
            PartyId(2),
            &MaskedProduct(EncryptedMatrix {
                rows: 4,
                cols: 5,
                cells: blobs,
            }),
        )
        .unwrap();
        let e = b
            .receive_product(&nb, A, (4, 5), SHAPE)
            .unwrap_err()
            .to_string();
        assert!(e.contains("overflow"), "{e}");
    }
}
