//! Feature leakage from what SPNN reveals by design: the server's `Z`s and `G`s over a run.
//!
//! The server learns `Z_t = X_{B_t}·W_t` for every batch and knows the `G_t` it sent back and
//! the learning rate `η_t`. With plain SGD the holders apply `W_{t+1} = W_t − η_t·X_{B_t}ᵀ·G_t`,
//! so for a sample `i` in the batches of steps `t < s`
//!
//! ```text
//! Z_s[i] − Z_t[i] = x_i·(W_s − W_t) = − Σ_{t ≤ τ < s} η_τ Σ_{j ∈ B_τ} ⟨x_i, x_j⟩ · G_τ[j]
//! ```
//!
//! — `h` equations, linear in the row `K_{i·}` of the Gram matrix `K = X·Xᵀ`, with coefficients
//! the server knows. Every further epoch adds `h` more; after a few epochs least squares gives
//! `K`, and `K` gives `X` up to a rotation (its top `d` eigenvectors scaled by the roots of their
//! eigenvalues). [`gram`] runs this on a [`Record`] of the server's view; [`aligned_r2`] scores
//! a reconstruction up to rotation (orthogonal Procrustes against the truth, which only the
//! evaluation knows).
//!
//! A server that picks the learning rate needs no run at all: after one update at a huge rate
//! `η` on a batch `B`, `W` is all but `−η·X_Bᵀ·G_B`, so a forward on another batch `B'` gives
//! `Z ≈ −η·X_{B'}·X_Bᵀ·G_B` and [`gram_block_after_one_update`] solves it for the Gram block
//! `X_{B'}·X_Bᵀ` (the holders' defence: `PartyPolicy::max_learning_rate`).
//!
//! A server that also holds some raw rows (bought records, shared customers) needs no Gram
//! matrix: [`inversion`] learns the map from `Z` back to `X` on those rows, epoch by epoch, and
//! applies it to everyone; [`feature_r2`] scores it per feature against the truth.

use std::collections::HashMap;

/// One training step as the server saw it.
#[derive(Clone, Debug)]
pub struct Step {
    /// The batch's sample ids, in order.
    pub ids: Vec<u64>,
    /// The aggregated first-layer output `Z` (B × h, row-major), as the server received it.
    pub z: Vec<f32>,
    /// The boundary gradient `G = ∂L/∂Z` it sent back (B × h).
    pub g: Vec<f32>,
    /// The learning rate of the update that followed.
    pub lr: f64,
}

/// The server's record of a run: every training step in order.
#[derive(Clone, Debug, Default)]
pub struct Record {
    /// Output width `h`.
    pub h: usize,
    /// The steps.
    pub steps: Vec<Step>,
}

/// The learning-rate attack (module docs): from the `Z` of a forward on batch `B'` (`b' × h`)
/// that follows one update at rate `lr` on batch `B` whose boundary gradient was `g` (`b × h`),
/// the least-squares estimate `K̂ = −Z·gᵀ·(g·gᵀ + ρI)⁻¹ / lr` of the Gram block
/// `K = X_{B'}·X_Bᵀ` (`b' × b`, row-major), ignoring the unknown `X_{B'}·W` the huge rate
/// shrinks beside `lr·K·g`. `None` if the shapes disagree or `g·gᵀ + ρI` is not positive
/// definite.
pub fn gram_block_after_one_update(
    z: &[f32],
    g: &[f32],
    h: usize,
    lr: f64,
    ridge: f64,
) -> Option<Vec<f64>> {
    if h == 0 || !z.len().is_multiple_of(h) || !g.len().is_multiple_of(h) || lr == 0.0 {
        return None;
    }
    let (b, b2) = (g.len() / h, z.len() / h);
    let row = |m: &[f32], i: usize| -> Vec<f64> {
        m[i * h..(i + 1) * h]
            .iter()
            .map(|&v| f64::from(v))
            .collect()
    };
    let dot = |a: &[f64], c: &[f64]| a.iter().zip(c).map(|(x, y)| x * y).sum::<f64>();
    let g_rows: Vec<Vec<f64>> = (0..b).map(|k| row(g, k)).collect();
    let mut a = vec![0.0; b * b];
    for i in 0..b {
        for j in 0..b {
            a[i * b + j] = dot(&g_rows[i], &g_rows[j]) + if i == j { ridge } else { 0.0 };
        }
    }
    let factor = Cholesky::new(a, b)?;
    // Row i of K̂: −(g·gᵀ + ρI)⁻¹·g·z_iᵀ / lr (the matrix is symmetric).
    Some(
        (0..b2)
            .flat_map(|i| {
                let zi = row(z, i);
                let rhs: Vec<f64> = g_rows.iter().map(|gk| dot(gk, &zi)).collect();
                factor.solve(&rhs).into_iter().map(|v| -v / lr)
            })
            .collect(),
    )
}

/// The Gram matrix of `ids` (n × n, row-major, symmetrised) estimated from the record by least
/// squares with a small ridge `ridge`; `None` if a sample appears fewer than twice.
pub fn gram(record: &Record, ids: &[u64], ridge: f64) -> Option<Vec<f64>> {
    let n = ids.len();
    let h = record.h;
    let index: HashMap<u64, usize> = ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    // Where each sample appears: (step, row in the batch).
    let mut seen: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n];
    for (t, step) in record.steps.iter().enumerate() {
        for (row, id) in step.ids.iter().enumerate() {
            if let Some(&i) = index.get(id) {
                seen[i].push((t, row));
            }
        }
    }
    let mut k = vec![0.0; n * n];
    for i in 0..n {
        if seen[i].len() < 2 {
            return None;
        }
        // Normal equations (AᵀA + ridge·I) k_i = Aᵀ b over every consecutive pair.
        let mut ata = vec![0.0; n * n];
        let mut atb = vec![0.0; n];
        for pair in seen[i].windows(2) {
            let ((t, rt), (s, rs)) = (pair[0], pair[1]);
            // a_j ∈ R^h: Σ_τ η_τ G_τ[j] over the steps between the two appearances.
            let mut a = vec![0.0f64; n * h];
            let mut touched = Vec::new();
            for step in &record.steps[t..s] {
                for (row, id) in step.ids.iter().enumerate() {
                    let Some(&j) = index.get(id) else { continue };
                    touched.push(j);
                    for c in 0..h {
                        a[j * h + c] += step.lr * f64::from(step.g[row * h + c]);
                    }
                }
            }
            touched.sort_unstable();
            touched.dedup();
            for c in 0..h {
                let b = -(f64::from(record.steps[s].z[rs * h + c])
                    - f64::from(record.steps[t].z[rt * h + c]));
                for &j in &touched {
                    let aj = a[j * h + c];
                    atb[j] += aj * b;
                    for &l in &touched {
                        ata[j * n + l] += aj * a[l * h + c];
                    }
                }
            }
        }
        for j in 0..n {
            ata[j * n + j] += ridge;
        }
        let row = cholesky_solve(ata, &atb, n)?;
        k[i * n..(i + 1) * n].copy_from_slice(&row);
    }
    for i in 0..n {
        for j in 0..i {
            let m = 0.5 * (k[i * n + j] + k[j * n + i]);
            k[i * n + j] = m;
            k[j * n + i] = m;
        }
    }
    Some(k)
}

/// `X` up to rotation from a Gram matrix: the top `d` eigenvectors of `k` (n × n) scaled by the
/// square roots of their (non-negative parts of the) eigenvalues; n × d, row-major.
pub fn embed(k: &[f64], n: usize, d: usize) -> Vec<f64> {
    let (values, vectors) = symmetric_eigen(k.to_vec(), n);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    let mut x = vec![0.0; n * d];
    for (c, &e) in order.iter().take(d).enumerate() {
        let s = values[e].max(0.0).sqrt();
        for r in 0..n {
            x[r * d + c] = vectors[r * n + e] * s;
        }
    }
    x
}

/// R² of `estimate` against `truth` (both n × d) after the best rotation and scale of the
/// estimate (orthogonal Procrustes): `1 − Σ(s·X̂R − X)² / Σ(X − mean)²`. 1 is exact up to
/// rotation; a reconstruction unrelated to `X` still scores above 0 (the rotation and the scale
/// are fitted to the truth), so compare with an unrelated guess scored the same way.
pub fn aligned_r2(estimate: &[f64], truth: &[f64], n: usize, d: usize) -> f64 {
    // M = X̂ᵀX (d × d); R = U·Vᵀ from M = U·S·Vᵀ, via the eigenvectors of MᵀM.
    let mut m = vec![0.0; d * d];
    for r in 0..n {
        for a in 0..d {
            for b in 0..d {
                m[a * d + b] += estimate[r * d + a] * truth[r * d + b];
            }
        }
    }
    let mut mtm = vec![0.0; d * d];
    for a in 0..d {
        for b in 0..d {
            mtm[a * d + b] = (0..d).map(|c| m[c * d + a] * m[c * d + b]).sum();
        }
    }
    let (s2, v) = symmetric_eigen(mtm, d);
    // U = M·V·S⁻¹ column by column; R = U·Vᵀ.
    let mut rot = vec![0.0; d * d];
    for e in 0..d {
        let s = s2[e].max(0.0).sqrt();
        if s < 1e-12 {
            continue;
        }
        let u: Vec<f64> = (0..d)
            .map(|a| (0..d).map(|b| m[a * d + b] * v[b * d + e]).sum::<f64>() / s)
            .collect();
        for a in 0..d {
            for b in 0..d {
                rot[a * d + b] += u[a] * v[b * d + e];
            }
        }
    }
    let fitted: Vec<f64> = (0..n * d)
        .map(|i| {
            let (r, c) = (i / d, i % d);
            (0..d).map(|a| estimate[r * d + a] * rot[a * d + c]).sum()
        })
        .collect();
    let ff: f64 = fitted.iter().map(|f| f * f).sum();
    let scale = if ff > 0.0 {
        fitted.iter().zip(truth).map(|(f, t)| f * t).sum::<f64>() / ff
    } else {
        0.0
    };
    let mut sse = 0.0;
    let mut sst = 0.0;
    for c in 0..d {
        let mean = (0..n).map(|r| truth[r * d + c]).sum::<f64>() / n as f64;
        for r in 0..n {
            sse += (scale * fitted[r * d + c] - truth[r * d + c]).powi(2);
            sst += (truth[r * d + c] - mean).powi(2);
        }
    }
    if sst == 0.0 { 0.0 } else { 1.0 - sse / sst }
}

/// The R² that reconstructions unrelated to the data score against `truth` (n × d) under
/// [`aligned_r2`] — the fitted rotation and scale alone explain some variance: mean and standard
/// deviation over `draws` standard-normal guesses from a generator seeded with `seed`. An attack
/// is at chance when its R² is within a few standard deviations of the mean.
pub fn chance_r2(truth: &[f64], n: usize, d: usize, draws: usize, seed: u64) -> (f64, f64) {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let scores: Vec<f64> = (0..draws)
        .map(|_| {
            let guess: Vec<f64> = (0..n * d)
                .map(|_| spnn_crypto::rng::standard_normal(&mut rng))
                .collect();
            aligned_r2(&guess, truth, n, d)
        })
        .collect();
    let mean = scores.iter().sum::<f64>() / draws.max(1) as f64;
    let var = scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / draws.max(1) as f64;
    (mean, var.sqrt())
}

/// Raw rows a server holds beside its view (records it bought, or its own customers who are
/// also in the holders' data): `ids[r]`'s features are `rows[r·d..(r+1)·d]`, all holders'
/// columns in order.
#[derive(Clone, Debug)]
pub struct Auxiliary {
    /// The rows' sample ids.
    pub ids: Vec<u64>,
    /// Their features (ids.len() × d, row-major).
    pub rows: Vec<f64>,
    /// Features per row.
    pub d: usize,
}

impl Auxiliary {
    /// The column means of the rows: the guess of a server that learns nothing from `Z`.
    pub fn mean(&self) -> Vec<f64> {
        let n = self.ids.len().max(1) as f64;
        (0..self.d)
            .map(|c| self.rows.iter().skip(c).step_by(self.d).sum::<f64>() / n)
            .collect()
    }
}

/// The record's steps cut into epochs: a new epoch starts at the first step holding a sample
/// the current one has already seen (the honest schedule shows each training row once per
/// epoch).
pub fn epochs(record: &Record) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut seen = std::collections::HashSet::new();
    for (t, step) in record.steps.iter().enumerate() {
        if step.ids.iter().any(|id| seen.contains(id)) {
            out.push(start..t);
            start = t;
            seen.clear();
        }
        seen.extend(step.ids.iter().copied());
    }
    if start < record.steps.len() {
        out.push(start..record.steps.len());
    }
    out
}

/// The learned inversion of a server that holds the auxiliary rows `aux`: in each epoch of the
/// record it fits a ridge regression from `Z` to `X` on the auxiliary rows' `(Z, x)` pairs
/// (`W` moves little within an epoch, and `Z = X·W + noise` is linear in `x`), predicts every
/// target's features from its `Z` in that epoch, and averages each target's predictions over
/// the epochs (which also averages fresh noise on `Z` down). `ridge` is relative to the mean
/// squared norm of the centred `Z`s. Returns `targets.len() × d` features; a target never seen
/// in an epoch with at least two auxiliary rows gets the auxiliary mean.
pub fn inversion(record: &Record, aux: &Auxiliary, targets: &[u64], ridge: f64) -> Vec<f64> {
    let (h, d) = (record.h, aux.d);
    let aux_index: HashMap<u64, usize> =
        aux.ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let target_index: HashMap<u64, usize> =
        targets.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let mut sum = vec![0.0; targets.len() * d];
    let mut count = vec![0usize; targets.len()];
    for epoch in epochs(record) {
        let steps = &record.steps[epoch];
        let row = |step: &Step, r: usize| -> Vec<f64> {
            step.z[r * h..(r + 1) * h]
                .iter()
                .map(|&v| f64::from(v))
                .collect()
        };
        // The auxiliary pairs of this epoch.
        let mut zs: Vec<Vec<f64>> = Vec::new();
        let mut xs: Vec<&[f64]> = Vec::new();
        for step in steps {
            for (r, id) in step.ids.iter().enumerate() {
                if let Some(&a) = aux_index.get(id) {
                    zs.push(row(step, r));
                    xs.push(&aux.rows[a * d..(a + 1) * d]);
                }
            }
        }
        let m = zs.len();
        if m < 2 {
            continue;
        }
        let z_mean: Vec<f64> = (0..h)
            .map(|c| zs.iter().map(|z| z[c]).sum::<f64>() / m as f64)
            .collect();
        let x_mean: Vec<f64> = (0..d)
            .map(|c| xs.iter().map(|x| x[c]).sum::<f64>() / m as f64)
            .collect();
        for z in &mut zs {
            for (v, mu) in z.iter_mut().zip(&z_mean) {
                *v -= mu;
            }
        }
        // Ridge: A = (Zcᵀ·Zc + λI)⁻¹·Zcᵀ·Xc (h × d), prediction x̄ + (z − z̄)·A.
        let mut gram_z = vec![0.0; h * h];
        let mut zx = vec![0.0; h * d];
        for (z, x) in zs.iter().zip(&xs) {
            for a in 0..h {
                for b in 0..=a {
                    gram_z[a * h + b] += z[a] * z[b];
                }
                for c in 0..d {
                    zx[a * d + c] += z[a] * (x[c] - x_mean[c]);
                }
            }
        }
        for a in 0..h {
            for b in 0..a {
                gram_z[b * h + a] = gram_z[a * h + b];
            }
        }
        let lambda = ridge * (0..h).map(|a| gram_z[a * h + a]).sum::<f64>() / m as f64;
        for a in 0..h {
            gram_z[a * h + a] += lambda.max(f64::MIN_POSITIVE);
        }
        let Some(factor) = Cholesky::new(gram_z, h) else {
            continue;
        };
        let mut coef = vec![0.0; h * d];
        for c in 0..d {
            let col = factor.solve(&(0..h).map(|a| zx[a * d + c]).collect::<Vec<_>>());
            for a in 0..h {
                coef[a * d + c] = col[a];
            }
        }
        for step in steps {
            for (r, id) in step.ids.iter().enumerate() {
                let Some(&t) = target_index.get(id) else {
                    continue;
                };
                let z = row(step, r);
                for c in 0..d {
                    sum[t * d + c] += x_mean[c]
                        + (0..h)
                            .map(|a| (z[a] - z_mean[a]) * coef[a * d + c])
                            .sum::<f64>();
                }
                count[t] += 1;
            }
        }
    }
    let fallback = aux.mean();
    (0..targets.len() * d)
        .map(|i| {
            let (t, c) = (i / d, i % d);
            if count[t] == 0 {
                fallback[c]
            } else {
                sum[i] / count[t] as f64
            }
        })
        .collect()
}

/// R² of `estimate` against `truth` (both n × d) per feature: `1 − Σ(x̂ − x)² / Σ(x − x̄)²`,
/// with `x̄` the truth's own column mean (a constant column scores 0). Guessing the auxiliary
/// mean for every row scores at most about 0; an exact reconstruction scores 1.
pub fn feature_r2(estimate: &[f64], truth: &[f64], n: usize, d: usize) -> Vec<f64> {
    (0..d)
        .map(|c| {
            let mean = (0..n).map(|r| truth[r * d + c]).sum::<f64>() / n.max(1) as f64;
            let sst: f64 = (0..n).map(|r| (truth[r * d + c] - mean).powi(2)).sum();
            let sse: f64 = (0..n)
                .map(|r| (estimate[r * d + c] - truth[r * d + c]).powi(2))
                .sum();
            if sst == 0.0 { 0.0 } else { 1.0 - sse / sst }
        })
        .collect()
}

/// A Cholesky factor `L` (lower, row-major) of a symmetric positive-definite matrix.
struct Cholesky {
    l: Vec<f64>,
    n: usize,
}

impl Cholesky {
    /// Factors `a` (n × n, consumed); `None` if it is not positive definite.
    fn new(mut a: Vec<f64>, n: usize) -> Option<Self> {
        for j in 0..n {
            let mut d = a[j * n + j];
            for k in 0..j {
                d -= a[j * n + k] * a[j * n + k];
            }
            if d <= 0.0 || !d.is_finite() {
                return None;
            }
            let d = d.sqrt();
            a[j * n + j] = d;
            for i in j + 1..n {
                let mut s = a[i * n + j];
                for k in 0..j {
                    s -= a[i * n + k] * a[j * n + k];
                }
                a[i * n + j] = s / d;
            }
        }
        Some(Self { l: a, n })
    }

    /// `x` with `a·x = b`.
    fn solve(&self, b: &[f64]) -> Vec<f64> {
        let (a, n) = (&self.l, self.n);
        let mut y = b.to_vec();
        for i in 0..n {
            for k in 0..i {
                y[i] -= a[i * n + k] * y[k];
            }
            y[i] /= a[i * n + i];
        }
        for i in (0..n).rev() {
            for k in i + 1..n {
                y[i] -= a[k * n + i] * y[k];
            }
            y[i] /= a[i * n + i];
        }
        y
    }
}

/// Solves `a·x = b` for a symmetric positive-definite `a` (n × n, consumed); `None` if it is not.
fn cholesky_solve(a: Vec<f64>, b: &[f64], n: usize) -> Option<Vec<f64>> {
    Some(Cholesky::new(a, n)?.solve(b))
}

/// Eigenvalues and eigenvectors (columns of an n × n row-major matrix) of a symmetric matrix, by
/// cyclic Jacobi rotations.
fn symmetric_eigen(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum();
        let total: f64 = a.iter().map(|x| x * x).sum();
        if off <= 1e-24 * total.max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_split_where_a_sample_repeats_and_a_linear_view_inverts_exactly() {
        // 12 samples of 3 features, h = 4, batches of 4, two epochs with different W.
        let (n, d, h) = (12usize, 3usize, 4usize);
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let x: Vec<f64> = (0..n * d)
            .map(|_| spnn_crypto::rng::standard_normal(&mut rng))
            .collect();
        let ws: Vec<Vec<f64>> = (0..2)
            .map(|_| {
                (0..d * h)
                    .map(|_| spnn_crypto::rng::standard_normal(&mut rng))
                    .collect()
            })
            .collect();
        let mut record = Record {
            h,
            steps: Vec::new(),
        };
        for (e, order) in [[0usize, 1, 2], [2, 0, 1]].iter().enumerate() {
            let w = &ws[e];
            for &b in order {
                let ids: Vec<u64> = (b * 4..b * 4 + 4).map(|i| i as u64).collect();
                let z = ids
                    .iter()
                    .flat_map(|&i| {
                        let row = &x[i as usize * d..(i as usize + 1) * d];
                        (0..h)
                            .map(|c| (0..d).map(|k| row[k] * w[k * h + c]).sum::<f64>() as f32)
                            .collect::<Vec<_>>()
                    })
                    .collect();
                record.steps.push(Step {
                    ids,
                    z,
                    g: vec![0.0; 4 * h],
                    lr: 0.1,
                });
            }
        }
        assert_eq!(epochs(&record), vec![0..3, 3..6]);
        // Five auxiliary rows (more than d) fix the map; the others are recovered.
        let aux_ids = [0u64, 3, 5, 8, 10];
        let aux = Auxiliary {
            ids: aux_ids.to_vec(),
            rows: aux_ids
                .iter()
                .flat_map(|&i| x[i as usize * d..(i as usize + 1) * d].to_vec())
                .collect(),
            d,
        };
        let targets: Vec<u64> = (0..n as u64).filter(|i| !aux_ids.contains(i)).collect();
        let truth: Vec<f64> = targets
            .iter()
            .flat_map(|&i| x[i as usize * d..(i as usize + 1) * d].to_vec())
            .collect();
        let got = inversion(&record, &aux, &targets, 1e-9);
        for r2 in feature_r2(&got, &truth, targets.len(), d) {
            assert!(r2 > 0.999, "{r2}");
        }
        // The auxiliary mean as a guess explains nothing beyond the truth's own mean.
        let guess = aux.mean().repeat(targets.len());
        for r2 in feature_r2(&guess, &truth, targets.len(), d) {
            assert!(r2 <= 0.0, "{r2}");
        }
    }

    #[test]
    fn linear_algebra_recovers_known_answers() {
        // Cholesky on a 3 × 3 SPD system.
        let a = vec![4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0];
        let x = [1.0, -2.0, 0.5];
        let b: Vec<f64> = (0..3)
            .map(|i| (0..3).map(|j| a[i * 3 + j] * x[j]).sum())
            .collect();
        let got = cholesky_solve(a, &b, 3).unwrap();
        for (g, x) in got.iter().zip(x) {
            assert!((g - x).abs() < 1e-12);
        }
        // X (5 × 2) → its Gram → embed → aligned R² of 1.
        let xs = [1.0, 0.2, -0.5, 1.3, 0.7, -0.9, 2.0, 0.1, -1.1, -0.4];
        let mut k = vec![0.0; 25];
        for i in 0..5 {
            for j in 0..5 {
                k[i * 5 + j] = xs[i * 2] * xs[j * 2] + xs[i * 2 + 1] * xs[j * 2 + 1];
            }
        }
        let e = embed(&k, 5, 2);
        assert!(aligned_r2(&e, &xs, 5, 2) > 1.0 - 1e-9);
    }
}
