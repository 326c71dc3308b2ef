//! The correlated randomness of one SPNN-SS step, and its layout.
//!
//! Holder `j` knows its features `X_j` in the clear and holds a share of every block `W_i` of the
//! weights. The product `X·W = Σ_j X_j·W_j` therefore needs, besides the local `X_j·⟨W_j⟩_j`,
//! only **one-sided** products `X_j·⟨W_j⟩_i` between holder `j`'s input and holder `i`'s share.
//! Each uses a dealer's triple `(U_j, V_{j,i}, U_j·V_{j,i})` where `U_j` is known to `j` only,
//! `V_{j,i}` to `i` only, and the product is shared between them:
//!
//! ```text
//! j opens E_j = X_j − U_j to i,  i opens F_{j,i} = ⟨W_j⟩_i − V_{j,i} to j
//! X_j·⟨W_j⟩_i = X_j·F_{j,i} + E_j·V_{j,i} + U_j·V_{j,i}
//!               └ at j ┘      └ at i ┘     └ shared ┘
//! ```
//!
//! `E_j` is opened once and serves every `i`; the backward products `X_jᵀ·⟨cG⟩_i` reuse it with
//! fresh `V'_{j,i}` (`B × h`) and `U_jᵀ·V'_{j,i}`. Nothing about `X` is ever shared and no party
//! multiplies a full `B × d` matrix: each holder does `B·d·h` multiply-adds per product.
//!
//! **Dealing.** Each holder `m` receives a 32-byte seed from which it derives everything that is
//! only its own — `U_m`, its `V_{j,m}` and `V'_{j,m}`, its shares of the products with its own
//! `U_m` — and one explicit message: its shares of the products `U_j·V_{j,m}` (summed over `j`)
//! and `U_jᵀ·V'_{j,m}` (per block `j`), which the dealer computes as the product minus the other
//! party's seeded share.

use spnn_crypto::RingMatrix;

use super::bundle;
use crate::error::Result;

/// The public shape of one step.
#[derive(Clone, Copy, Debug)]
pub struct StepShape<'a> {
    /// Feature widths `d_j` of the holders.
    pub widths: &'a [usize],
    /// Batch size `B`.
    pub batch: usize,
    /// Output width `h`.
    pub h: usize,
    /// Whether the step trains (then the material covers the backward too).
    pub train: bool,
}

impl StepShape<'_> {
    fn k(&self) -> usize {
        self.widths.len()
    }

    fn others(&self, m: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.k()).filter(move |&j| j != m)
    }

    /// Shapes derived from holder `m`'s seed, in order: `U_m`; `V_{j,m}` for `j ≠ m`;
    /// [`V'_{j,m}` for `j ≠ m`]; holder `m`'s shares of `U_m·V_{m,i}` for `i ≠ m`;
    /// [its shares of `U_mᵀ·V'_{m,i}` for `i ≠ m`].
    pub(crate) fn seeded(&self, m: usize) -> Vec<(usize, usize)> {
        let (b, h) = (self.batch, self.h);
        let mut s = vec![(b, self.widths[m])];
        s.extend(self.others(m).map(|j| (self.widths[j], h)));
        if self.train {
            s.extend(self.others(m).map(|_| (b, h)));
        }
        s.extend(self.others(m).map(|_| (b, h)));
        if self.train {
            s.extend(self.others(m).map(|_| (self.widths[m], h)));
        }
        s
    }

    /// Shapes of holder `m`'s explicit matrices: `Σ_{j≠m}` its shares of `U_j·V_{j,m}`; [its
    /// share of `U_jᵀ·V'_{j,m}` for each `j ≠ m`].
    pub(crate) fn explicit(&self, m: usize) -> Vec<(usize, usize)> {
        let mut s = vec![(self.batch, self.h)];
        if self.train {
            s.extend(self.others(m).map(|j| (self.widths[j], self.h)));
        }
        s
    }
}

/// Holder `m`'s material for one step, indexed by the other holder `j` where it depends on one.
///
/// Public so that audits can rebuild what a dealer's view contains ([`Material::from_dealt`]):
/// the dealer generated all of it.
#[derive(Clone, Debug)]
pub struct Material {
    /// `U_m` (`B × d_m`).
    pub u: RingMatrix,
    /// `V_{j,m}` (`d_j × h`), by `j`.
    pub v: Vec<Option<RingMatrix>>,
    /// `V'_{j,m}` (`B × h`), by `j` (training only).
    pub v2: Vec<Option<RingMatrix>>,
    /// `Σ_{i≠m}` this holder's shares of `U_m·V_{m,i}` plus of `U_j·V_{j,m}` (`B × h`).
    pub w: RingMatrix,
    /// `Σ_{i≠m}` this holder's shares of `U_mᵀ·V'_{m,i}` (`d_m × h`, training only).
    pub own_w2: Option<RingMatrix>,
    /// This holder's share of `U_jᵀ·V'_{j,m}` (`d_j × h`), by `j` (training only).
    pub other_w2: Vec<Option<RingMatrix>>,
}

impl Material {
    fn missing(what: &str, j: usize) -> crate::error::SpnnError {
        crate::error::SpnnError::Config(format!("no {what} for holder {j} in this step's material"))
    }

    /// `V_{j,m}`.
    pub(crate) fn v_of(&self, j: usize) -> Result<&RingMatrix> {
        self.v
            .get(j)
            .and_then(Option::as_ref)
            .ok_or_else(|| Self::missing("V", j))
    }

    /// `V'_{j,m}` (training only).
    pub(crate) fn v2_of(&self, j: usize) -> Result<&RingMatrix> {
        self.v2
            .get(j)
            .and_then(Option::as_ref)
            .ok_or_else(|| Self::missing("V'", j))
    }

    /// This holder's share of `U_jᵀ·V'_{j,m}` (training only).
    pub(crate) fn other_w2_of(&self, j: usize) -> Result<&RingMatrix> {
        self.other_w2
            .get(j)
            .and_then(Option::as_ref)
            .ok_or_else(|| Self::missing("U'ᵀV' share", j))
    }

    /// `Σ_{i≠m}` this holder's shares of `U_mᵀ·V'_{m,i}` (training only).
    pub(crate) fn own_w2(&self) -> Result<&RingMatrix> {
        self.own_w2
            .as_ref()
            .ok_or_else(|| Self::missing("own U'ᵀV' share", usize::MAX))
    }

    /// Holder `m`'s material from the dealer's two messages to it: the seed and the explicit
    /// matrices (checked against the shape).
    pub fn from_dealt(
        shape: &StepShape<'_>,
        m: usize,
        seed: &spnn_crypto::SecretSeed,
        explicit: Vec<RingMatrix>,
    ) -> Result<Self> {
        let got: Vec<_> = explicit.iter().map(RingMatrix::shape).collect();
        if got != shape.explicit(m) {
            return Err(crate::error::SpnnError::Config(format!(
                "explicit material of shapes {got:?}, expected {:?}",
                shape.explicit(m)
            )));
        }
        Self::assemble(shape, m, bundle::derive(seed, &shape.seeded(m)), explicit)
    }

    /// Assembles holder `m`'s material from what it derived from its seed and what it received.
    pub(crate) fn assemble(
        shape: &StepShape<'_>,
        m: usize,
        seeded: Vec<RingMatrix>,
        explicit: Vec<RingMatrix>,
    ) -> Result<Self> {
        let k = shape.k();
        let mut s = seeded.into_iter();
        let mut next = || s.next().expect("shapes checked by the caller");
        let u = next();
        let mut v = vec![None; k];
        for j in shape.others(m) {
            v[j] = Some(next());
        }
        let mut v2 = vec![None; k];
        if shape.train {
            for j in shape.others(m) {
                v2[j] = Some(next());
            }
        }
        let mut e = explicit.into_iter();
        let mut w = e.next().expect("shapes checked by the caller");
        for _ in shape.others(m) {
            w.add_assign(&next())?;
        }
        let (mut own_w2, mut other_w2) = (None, vec![None; k]);
        if shape.train {
            let mut sum = RingMatrix::zeros(shape.widths[m], shape.h);
            for _ in shape.others(m) {
                sum.add_assign(&next())?;
            }
            own_w2 = Some(sum);
            for j in shape.others(m) {
                other_w2[j] = e.next();
            }
        }
        Ok(Self {
            u,
            v,
            v2,
            w,
            own_w2,
            other_w2,
        })
    }
}

/// What the dealer sends each holder for one step: a seed and explicit matrices, by holder.
pub(crate) type Dealt = Vec<(spnn_crypto::SecretSeed, Vec<RingMatrix>)>;

/// The dealer's side: draws a seed per holder, derives every holder's seeded matrices, and
/// computes each holder's explicit shares of the cross products.
pub(crate) fn deal(shape: &StepShape<'_>, rng: &mut spnn_crypto::SecureRng) -> Result<Dealt> {
    let k = shape.k();
    let seeds: Vec<_> = (0..k).map(|_| rng.secret_seed()).collect();
    let derived: Vec<Vec<RingMatrix>> = (0..k)
        .map(|m| bundle::derive(&seeds[m], &shape.seeded(m)))
        .collect();
    // Index helpers into holder m's seeded list (same order as `StepShape::seeded`).
    let others = k - 1;
    let pos = |m: usize, j: usize| if j < m { j } else { j - 1 };
    let v_at = |m: usize, j: usize| &derived[m][1 + pos(m, j)];
    let v2_at = |m: usize, j: usize| &derived[m][1 + others + pos(m, j)];
    let ws_at =
        |m: usize, i: usize| &derived[m][1 + others * (1 + usize::from(shape.train)) + pos(m, i)];
    let w2s_at = |m: usize, i: usize| &derived[m][1 + others * 3 + pos(m, i)];
    let mut out = Vec::with_capacity(k);
    for (i, seed) in seeds.iter().enumerate() {
        // Σ_{j≠i} (U_j·V_{j,i} − j's seeded share of it).
        let mut w = RingMatrix::zeros(shape.batch, shape.h);
        let mut w2s = Vec::new();
        for j in (0..k).filter(|&j| j != i) {
            let u_j = &derived[j][0];
            w.add_assign(&u_j.matmul(v_at(i, j))?)?;
            w.sub_assign(ws_at(j, i))?;
            if shape.train {
                let mut w2 = u_j.transpose().matmul(v2_at(i, j))?;
                w2.sub_assign(w2s_at(j, i))?;
                w2s.push(w2);
            }
        }
        let mut explicit = vec![w];
        explicit.extend(w2s);
        out.push((seed.clone(), explicit));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use spnn_crypto::SecureRng;

    /// The dealt material makes the one-sided identities hold for every pair.
    #[test]
    fn dealt_material_reconstructs_every_cross_product() {
        for k in 2..=4 {
            let widths: Vec<usize> = (0..k).map(|j| 2 + j).collect();
            let shape = StepShape {
                widths: &widths,
                batch: 5,
                h: 3,
                train: true,
            };
            let dealt = deal(
                &shape,
                &mut SecureRng::insecure_from_seed_for_tests(k as u64),
            )
            .unwrap();
            let mats: Vec<Material> = dealt
                .iter()
                .enumerate()
                .map(|(m, (seed, explicit))| {
                    Material::assemble(
                        &shape,
                        m,
                        bundle::derive(seed, &shape.seeded(m)),
                        explicit.clone(),
                    )
                    .unwrap()
                })
                .collect();
            // Σ_m w_m = Σ_{j≠i} U_j·V_{j,i}.
            let mut lhs = RingMatrix::zeros(5, 3);
            let mut rhs = RingMatrix::zeros(5, 3);
            for m in 0..k {
                lhs.add_assign(&mats[m].w).unwrap();
                for j in (0..k).filter(|&j| j != m) {
                    rhs.add_assign(&mats[j].u.matmul(mats[m].v[j].as_ref().unwrap()).unwrap())
                        .unwrap();
                }
            }
            assert_eq!(lhs, rhs, "k = {k}");
            // For each block j: own_w2 at j + Σ_i other_w2[j] at i = Σ_i U_jᵀ·V'_{j,i}.
            for j in 0..k {
                let mut got = mats[j].own_w2.clone().unwrap();
                let mut want = RingMatrix::zeros(widths[j], 3);
                for i in (0..k).filter(|&i| i != j) {
                    got.add_assign(mats[i].other_w2[j].as_ref().unwrap())
                        .unwrap();
                    want.add_assign(
                        &mats[j]
                            .u
                            .transpose()
                            .matmul(mats[i].v2[j].as_ref().unwrap())
                            .unwrap(),
                    )
                    .unwrap();
                }
                assert_eq!(got, want, "k = {k}, block {j}");
            }
        }
    }
}
