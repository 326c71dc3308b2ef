//! SPNN-HE at a holder: the cross terms with Paillier ([`crate::protocol::he`]), no dealer.
//!
//! **Forward.** `Z_m = X_m·⟨W_m⟩_m + Σ_{o≠m} (X_m ⊗ Enc_o(⟨W_m⟩_o), masked)
//! + Σ_{o≠m} (decrypted X_o·⟨W_o⟩_m)` in the ring, at scale `2^{2f}`, over the links with every
//! other holder `o`; the party loop masks it before it goes to the server.
//!
//! **Backward, over the integers.** Without a dealer there is no exact truncation in
//! `Z_2^64`, so the gradient path never enters the ring until it is final: the server shares
//! `c·G` over the integers (holder 0 gets `c·G + Σ_i R_i`, holder `i ≥ 1` gets `−R_i`, each
//! `R_i` uniform below `2^{bits(G̃)+σ}`); the holders' products `X_mᵀ·⟨cG⟩` and the Paillier
//! cross terms (every ordered pair, as in the forward) are exact
//! integers; the multiplication by `1/c` (and later by `μ` and `η`) rounds each share to
//! nearest ([`spnn_crypto::integer`]), exact up to `k/2` units and unable to fail. The pending
//! gradient and the velocity stay integer shares; only the final `η·s` is reduced mod `2^64`
//! and subtracted from the ring share of `W`.
//!
//! **Update**: Burn's SGD as in SPNN-SS (momentum, dampening, Nesterov; module
//! [`super::ss`]), each product by a public constant rounded per integer share. Weight decay
//! needs `W`'s ring shares scaled exactly, which needs a dealer's truncation: refused by
//! [`crate::SpnnConfig::validate`].

use spnn_crypto::paillier::{KeySize, Keypair, MIN_SECURE_BITS};
use spnn_crypto::{IntMatrix, RingMatrix, Share};
use spnn_net::PartyId;
use spnn_net::codec::{Blob, Codec, Reader};

use super::record::{ShareRecord, encode_int_matrix, read_int_matrix};
use super::{Engine, GradientPart, Party};
use crate::error::{Result, protocol};
use crate::protocol::bounds::Bounds;
use crate::protocol::bundle;
use crate::protocol::he::{CrossShape, HeCounters, HeLink, RING_SHARE_BITS};
use crate::protocol::policy::PartyPolicy;
use crate::protocol::scale::PublicScale;

/// An SPNN-HE holder's checkpointed state.
pub(crate) struct State {
    w: RingMatrix,
    pending: IntMatrix,
    velocity: IntMatrix,
    velocity_started: bool,
}

/// Parses a state written by [`HeEngine`]'s `save` for weights of `shape`: the ring share of
/// `W`, the integer shares of the pending gradient and of the velocity, whether the velocity
/// is set.
pub(crate) fn parse_state(
    payload: &[u8],
    shape: (usize, usize),
) -> std::result::Result<State, String> {
    let mut r = Reader::new(payload);
    let Blob(record) = Blob::read(&mut r).map_err(|e| e.to_string())?;
    let w = ShareRecord::load(&record, 1, shape)?
        .pop()
        .ok_or("one share")?;
    let pending = read_int_matrix(&mut r, shape)?;
    let velocity = read_int_matrix(&mut r, shape)?;
    let velocity_started = bool::read(&mut r).map_err(|e| e.to_string())?;
    r.finish().map_err(|e| e.to_string())?;
    Ok(State {
        w,
        pending,
        velocity,
        velocity_started,
    })
}

pub(super) struct HeEngine {
    link: HeLink,
    w: Share,
    /// Integer shares of the pending gradient and of the velocity, at scale `2^f`.
    pending: IntMatrix,
    velocity: IntMatrix,
    /// Whether an update has set the velocity (Burn's first momentum step takes `g` undamped).
    velocity_started: bool,
    bounds: Bounds,
    /// The encoded features of the last training forward.
    saved: Option<(u64, RingMatrix)>,
}

impl HeEngine {
    /// Set-up: the key pair (the holder's own, or a fresh one of the session's size), the
    /// exchange of public keys, and the initial weight share.
    pub(super) fn establish(
        p: &Party,
        keys: Option<Keypair>,
        policy: &PartyPolicy,
    ) -> Result<Self> {
        let bits = p.config.he_key_bits;
        let keys = match keys {
            Some(k) => k,
            None => {
                let mut rng = p.config.randomness.rng(p.id(), 0, "paillier-keygen");
                if bits >= MIN_SECURE_BITS {
                    let size = if bits >= 3072 {
                        KeySize::Bits3072
                    } else {
                        KeySize::Bits2048
                    };
                    Keypair::generate(size, &mut rng)
                } else {
                    Keypair::generate_insecure_for_tests(bits, &mut rng)?
                }
            }
        };
        let min_bits = bits.max(policy.min_he_key_bits);
        let peers: Vec<_> = p.others().map(|(_, id)| id).collect();
        let link = HeLink::establish(&p.net, &peers, keys, min_bits)?;
        let zero = || IntMatrix::zeros(p.d, p.h);
        Ok(Self {
            link,
            w: Share::new(
                p.me,
                p.k(),
                p.fp.frac_bits(),
                super::ss::initial_weights(p)?,
            )?,
            pending: zero(),
            velocity: zero(),
            velocity_started: false,
            bounds: Bounds::of(&p.config)?,
            saved: None,
        })
    }

    fn feature_bits(&self) -> u32 {
        self.bounds.feature_bits()
    }
}

impl Engine for HeEngine {
    fn forward(&mut self, p: &Party, step: u64, ids: &[u64], train: bool) -> Result<RingMatrix> {
        let (b, h, me) = (ids.len(), p.h, p.me);
        let x = p.encoded_features(ids)?;
        let mine = p.block(me);
        let w = self.w.value().clone();
        let mut rng = p.config.randomness.rng(p.id(), step, "he-forward");
        let plain_bits = self.feature_bits();
        let cross = |terms| CrossShape {
            share_bits: RING_SHARE_BITS,
            plain_bits,
            terms,
        };
        let others: Vec<(usize, PartyId)> = p.others().collect();
        // 1. encrypt share: this holder's share of each other holder's block, to that holder
        for &(o, peer) in &others {
            let (r0, r1) = p.block(o);
            let share = w.slice_rows(r0, r1)?;
            self.link
                .send_encrypted(&p.net, &[peer], &share, cross(p.widths[o]), &mut rng)?;
        }
        let mut z = x.matmul(&w.slice_rows(mine.0, mine.1)?)?;
        // 2. multiply and mask: X_m ⊗ Enc_o(⟨W_m⟩_o) for every other holder o
        for &(_, peer) in &others {
            let cross_mine =
                self.link
                    .multiply_and_mask(&p.net, peer, &x, h, cross(p.widths[me]), &mut rng)?;
            z.add_assign(&cross_mine.to_ring())?;
        }
        // 3. decrypt: X_o·⟨W_o⟩_m + R from every other holder o
        for &(o, peer) in &others {
            let cross_theirs =
                self.link
                    .receive_product(&p.net, peer, (b, h), cross(p.widths[o]))?;
            z.add_assign(&cross_theirs.to_ring())?;
        }
        self.saved = train.then_some((step, x));
        Ok(z)
    }

    fn backward(&mut self, p: &Party, step: u64, scale: f64) -> Result<()> {
        let (x_step, x) = self.saved.take().ok_or_else(|| {
            protocol(
                p.server,
                format!("backward of step {step} without its training forward"),
            )
        })?;
        if x_step != step {
            return Err(protocol(
                p.server,
                format!("backward of step {step}, the last training forward was {x_step}"),
            ));
        }
        let (b, h, me) = (x.rows(), p.h, p.me);
        let share_bits = self.bounds.he_gradient_share_bits(p.k())?;
        let g = match p.gradient_part((b, h))? {
            GradientPart::Explicit(g) => {
                let limit = 1u64 << share_bits;
                if g.as_slice()
                    .iter()
                    .any(|&v| (v as i64).unsigned_abs() >= limit)
                {
                    return Err(protocol(
                        p.server,
                        format!("an integer gradient share beyond 2^{share_bits}"),
                    ));
                }
                g
            }
            GradientPart::Seed(seed) => {
                bundle::derive_bounded(&seed, (b, h), self.bounds.he_gradient_mask_bits()).neg()
            }
        };
        let cross = CrossShape {
            share_bits,
            plain_bits: self.feature_bits(),
            terms: b,
        };
        let xt = x.transpose();
        let mut rng = p.config.randomness.rng(p.id(), step, "he-backward");
        let others: Vec<(usize, PartyId)> = p.others().collect();
        // One encryption of this holder's share of c·G, the same ciphertexts to every other
        // holder.
        let peers: Vec<PartyId> = others.iter().map(|&(_, peer)| peer).collect();
        self.link
            .send_encrypted(&p.net, &peers, &g, cross, &mut rng)?;
        // Row block m: X_mᵀ·⟨cG⟩_m and the masked cross terms X_mᵀ ⊗ Enc_o(⟨cG⟩_o); row block
        // o: the decrypted X_oᵀ·⟨cG⟩_m + R from holder o.
        let mut blocks: Vec<IntMatrix> = Vec::with_capacity(p.k());
        for j in 0..p.k() {
            blocks.push(IntMatrix::zeros(p.widths[j], h));
        }
        blocks[me] = IntMatrix::signed_transpose_product(&x, &g)?;
        for &(_, peer) in &others {
            let cross_mine = self
                .link
                .multiply_and_mask(&p.net, peer, &xt, h, cross, &mut rng)?;
            blocks[me].add_assign(&cross_mine)?;
        }
        for &(o, peer) in &others {
            blocks[o] = self
                .link
                .receive_product(&p.net, peer, (p.widths[o], h), cross)?;
        }
        let grad = IntMatrix::vstack(&blocks.iter().collect::<Vec<_>>())?;
        // × 1/c, from scale 2^{2f} to 2^f: one rounding per share.
        let c = PublicScale::of(1.0 / scale)?;
        self.pending
            .add_assign(&grad.scale_round(c.m, p.fp.frac_bits() + c.shift))?;
        Ok(())
    }

    fn update(&mut self, p: &Party, step: u64, lr: f64) -> Result<()> {
        let c = p.config;
        let g = std::mem::replace(&mut self.pending, IntMatrix::zeros(p.d, p.h));
        let times = |m: &IntMatrix, by: f64| -> Result<IntMatrix> {
            let s = PublicScale::of(by)?;
            Ok(m.scale_round(s.m, s.shift))
        };
        let s = if c.momentum > 0.0 {
            self.velocity = if self.velocity_started {
                let mut v = times(&self.velocity, c.momentum)?;
                v.add_assign(&times(&g, 1.0 - c.dampening)?)?;
                v
            } else {
                g.clone()
            };
            self.velocity_started = true;
            if c.nesterov {
                let mut s = times(&self.velocity, c.momentum)?;
                s.add_assign(&g)?;
                s
            } else {
                self.velocity.clone()
            }
        } else {
            g
        };
        let delta = times(&s, lr)?;
        let w = self.w.sub(&self.w.with_value(delta.to_ring()))?;
        self.w = p.with_sgld_noise(w, step, lr)?;
        Ok(())
    }

    fn save(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        Blob(ShareRecord::to_bytes(&[self.w.value()])?).encode(&mut out);
        encode_int_matrix(&self.pending, &mut out);
        encode_int_matrix(&self.velocity, &mut out);
        self.velocity_started.encode(&mut out);
        Ok(out)
    }

    fn load(&mut self, p: &Party, payload: &[u8]) -> std::result::Result<(), String> {
        let state = parse_state(payload, (p.d, p.h))?;
        self.w = self.w.with_value(state.w);
        self.pending = state.pending;
        self.velocity = state.velocity;
        self.velocity_started = state.velocity_started;
        Ok(())
    }

    #[cfg(feature = "insecure-test-hooks")]
    fn weight_share(&self) -> Option<&RingMatrix> {
        Some(self.w.value())
    }

    fn he_counters(&self) -> HeCounters {
        self.link.counters
    }
}
