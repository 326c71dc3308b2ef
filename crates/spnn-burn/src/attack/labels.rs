//! Label leakage: what the server infers about the training labels from the gradients
//! `g_i = ∂L/∂a_i` the label holder returns for its activations.
//!
//! - **Sign** (a parameterless head, one column): `g_i = (σ(s_i) − y_i)/B` is negative exactly
//!   when `y_i = 1`, so the score `−g_i` ranks every positive above every negative.
//! - **Norm** (Li et al., "Label Leakage and Protection in Two-party Split Learning", ICLR
//!   2022): `‖g_i‖ ∝ |σ(s_i) − y_i|` is larger for the class the model gets wrong more often —
//!   the rarer class, early in training.
//! - **Direction** (the same paper): through one linear top layer every `g_i` is a multiple of
//!   the same vector, positive for one class and negative for the other; through deeper top
//!   layers they still cluster. The attacker knows the label of one positive sample per batch
//!   and scores every other sample by its cosine similarity to it.
//!
//! - **Projection** (stronger than the direction attack when the gradient is noisy): the rows of
//!   every batch, each batch scaled by its root-mean-square row norm, share one class-separating
//!   direction `u` — for a linear top layer, the layer's weight — which is the top principal
//!   component of all rows the server has seen, found without any label; the one known positive
//!   per batch only fixes its orientation. Each row is scored by its projection on `u`.
//! - **Averaged projection**: the server chose the batches, so it knows which rows belong to one
//!   sample; averaging that sample's projections over the epochs shrinks fresh noise by `√T`.
//!
//! Each attack's quality is the AUC of its scores against the true labels. Reported as
//! `max(AUC, 1 − AUC)`: an attacker who learns the orientation from one known label gets that,
//! so it is the number a defence has to bring to 0.5.

use crate::metrics::roc_auc;

/// Scores of the sign attack on a one-column gradient (higher: more likely `y = 1`).
pub fn sign_scores(g: &[f32]) -> Vec<f32> {
    g.iter().map(|v| -v).collect()
}

/// Scores of the norm attack: the row norms of a `rows × cols` gradient.
pub fn norm_scores(g: &[f32], cols: usize) -> Vec<f32> {
    g.chunks(cols.max(1))
        .map(|r| r.iter().map(|v| v * v).sum::<f32>().sqrt())
        .collect()
}

/// Scores of the direction attack: each row's cosine similarity to row `reference`.
pub fn direction_scores(g: &[f32], cols: usize, reference: usize) -> Vec<f32> {
    let rows: Vec<&[f32]> = g.chunks(cols.max(1)).collect();
    let Some(r) = rows.get(reference) else {
        return Vec::new();
    };
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let rn = norm(r);
    rows.iter()
        .map(|row| {
            let d: f32 = row.iter().zip(*r).map(|(a, b)| a * b).sum();
            let n = norm(row) * rn;
            if n > 0.0 { d / n } else { 0.0 }
        })
        .collect()
}

/// `max(AUC, 1 − AUC)` of `scores` against `labels`.
pub fn attack_auc(scores: &[f32], labels: &[f32]) -> f64 {
    let auc = roc_auc(scores, labels);
    auc.max(1.0 - auc)
}

/// The attacks run over every training batch the server saw, for one measurement (an epoch, or
/// a whole run).
#[derive(Clone, Debug, Default)]
pub struct LabelLeakage {
    sign: (Vec<f32>, Vec<f32>),
    norm: (Vec<f32>, Vec<f32>),
    direction: (Vec<f32>, Vec<f32>),
    /// Every row scaled by its batch's RMS row norm, with its sample id, label and whether it
    /// is the batch's known positive.
    rows: Vec<Row>,
    cols: usize,
}

#[derive(Clone, Debug)]
struct Row {
    id: u64,
    values: Vec<f64>,
    /// The batch's root-mean-square row norm `values` were divided by (`values · rms` is the
    /// row as received).
    rms: f64,
    /// The server's own activations of the sample in this release, if given.
    activation: Option<Vec<f64>>,
    label: f32,
    known: bool,
}

/// The attacks' AUCs (`max(AUC, 1 − AUC)`; 0.5 is chance, 1 recovers every label).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeakageReport {
    /// Sign attack (only meaningful for a one-column gradient; `None` otherwise).
    pub sign: Option<f64>,
    /// Norm attack.
    pub norm: f64,
    /// Direction attack with one known positive per batch.
    pub direction: f64,
    /// Projection on the top principal direction of every row seen.
    pub projection: f64,
    /// The projections averaged per sample over its releases (equal to `projection` when every
    /// sample was released once).
    pub averaged: f64,
    /// Samples scored.
    pub samples: usize,
}

/// The projection attacks against real-valued labels ([`LabelLeakage::value_report`]): the
/// absolute Pearson correlation of the scores with the labels (0 is chance — about `1/√n`
/// for `n` blind scores — and 1 recovers every label up to an affine map).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ValueLeakageReport {
    /// Projection on the top principal direction of every row seen, per release.
    pub projection: f64,
    /// The projections averaged per sample over its releases.
    pub averaged: f64,
    /// The projection combined with the server's own activations
    /// ([`LabelLeakage::observe_with_activations`]; `None` without them): through a linear
    /// top layer it recovers the labels up to the noise, whatever the residual.
    pub combined: Option<f64>,
    /// Releases scored.
    pub samples: usize,
}

/// The multiple correlation `R` of `y` on `x` (least squares with an intercept):
/// `√(1 − SS_res/SS_tot)`.
fn multiple_correlation(points: &[([f64; 2], f64)]) -> f64 {
    let n = points.len() as f64;
    let (m0, m1, my) = points.iter().fold((0.0, 0.0, 0.0), |(a, b, c), (x, y)| {
        (a + x[0] / n, b + x[1] / n, c + y / n)
    });
    let (mut s00, mut s01, mut s11, mut s0y, mut s1y, mut syy) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for (x, y) in points {
        let (a, b, c) = (x[0] - m0, x[1] - m1, y - my);
        s00 += a * a;
        s01 += a * b;
        s11 += b * b;
        s0y += a * c;
        s1y += b * c;
        syy += c * c;
    }
    let det = s00 * s11 - s01 * s01;
    if syy == 0.0 || det.abs() <= 1e-12 * s00 * s11 {
        // Collinear predictors: the better single one.
        let r = |sxy: f64, sxx: f64| {
            if sxx > 0.0 && syy > 0.0 {
                sxy * sxy / (sxx * syy)
            } else {
                0.0
            }
        };
        return r(s0y, s00).max(r(s1y, s11)).sqrt();
    }
    // Explained sum of squares βᵀ·s_xy with β = S⁻¹ s_xy.
    let (b0, b1) = ((s11 * s0y - s01 * s1y) / det, (s00 * s1y - s01 * s0y) / det);
    ((b0 * s0y + b1 * s1y) / syy).clamp(0.0, 1.0).sqrt()
}

/// The clustering attack against more than two classes ([`LabelLeakage::class_report`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClassLeakageReport {
    /// Accuracy of the clusters of the released rows, each cluster read as the class it
    /// matches best (one cluster per class, the matching that maximises the accuracy).
    pub clustering: f64,
    /// The same with each sample's releases averaged first.
    pub averaged: f64,
    /// The largest class's share: what guessing it for every row scores.
    pub chance: f64,
    /// Releases scored.
    pub samples: usize,
}

struct Projections {
    scores: Vec<f32>,
    labels: Vec<f32>,
    averaged: Vec<f32>,
    averaged_labels: Vec<f32>,
}

/// The accuracy of spherical k-means clusters of the unit vectors `rows` against `labels`
/// (`0 … classes − 1`) under the best one-to-one matching of clusters to classes; the best
/// (lowest within-cluster cosine distance) of ten k-means++ starts from a fixed seed.
fn cluster_accuracy(rows: &[Vec<f64>], labels: &[usize], classes: usize) -> f64 {
    use rand::{Rng, SeedableRng};
    let k = classes.max(1);
    if rows.len() < k {
        return 0.0;
    }
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut best: Option<(f64, Vec<usize>)> = None;
    for _start in 0..10 {
        // k-means++: each next centre drawn with probability ∝ its cosine distance² to the
        // nearest chosen one.
        let mut centres = vec![rows[rng.random_range(0..rows.len())].clone()];
        while centres.len() < k {
            let d: Vec<f64> = rows
                .iter()
                .map(|r| {
                    let near = centres.iter().map(|c| dot(r, c)).fold(f64::MIN, f64::max);
                    (1.0 - near).max(0.0).powi(2)
                })
                .collect();
            let total: f64 = d.iter().sum();
            let mut pick = rng.random::<f64>() * total;
            let i = d.iter().position(|&w| {
                pick -= w;
                pick <= 0.0
            });
            centres.push(rows[i.unwrap_or(rows.len() - 1)].clone());
        }
        let mut assign = vec![0usize; rows.len()];
        for _ in 0..100 {
            let next: Vec<usize> = rows
                .iter()
                .map(|r| {
                    (0..k)
                        .max_by(|&a, &b| dot(r, &centres[a]).total_cmp(&dot(r, &centres[b])))
                        .unwrap_or(0)
                })
                .collect();
            let moved = next != assign;
            assign = next;
            for (c, centre) in centres.iter_mut().enumerate() {
                let mut sum = vec![0.0; centre.len()];
                for (r, _) in rows.iter().zip(&assign).filter(|(_, a)| **a == c) {
                    sum.iter_mut().zip(r).for_each(|(s, x)| *s += x);
                }
                let n = dot(&sum, &sum).sqrt();
                if n > 0.0 {
                    *centre = sum.iter().map(|x| x / n).collect();
                }
            }
            if !moved {
                break;
            }
        }
        let spread: f64 = rows
            .iter()
            .zip(&assign)
            .map(|(r, &a)| 1.0 - dot(r, &centres[a]))
            .sum();
        if best.as_ref().is_none_or(|(b, _)| spread < *b) {
            best = Some((spread, assign));
        }
    }
    let Some((_, assign)) = best else {
        return 0.0;
    };
    let mut confusion = vec![vec![0i64; k]; k];
    for (&a, &y) in assign.iter().zip(labels) {
        if y < k {
            confusion[a][y] += 1;
        }
    }
    best_matching(&confusion) as f64 / rows.len() as f64
}

/// The largest total of `w[i][σ(i)]` over the permutations `σ` of a square matrix's columns
/// (the assignment problem, Hungarian method in `O(n³)`).
fn best_matching(w: &[Vec<i64>]) -> i64 {
    let n = w.len();
    // Minimise the negated weights; potentials u (rows), v (columns), 1-based with 0 a dummy.
    let cost = |i: usize, j: usize| -w[i - 1][j - 1];
    let (mut u, mut v) = (vec![0i64; n + 1], vec![0i64; n + 1]);
    let mut owner = vec![0usize; n + 1];
    for i in 1..=n {
        owner[0] = i;
        let mut j0 = 0;
        let mut min_to = vec![i64::MAX; n + 1];
        let mut used = vec![false; n + 1];
        let mut way = vec![0usize; n + 1];
        loop {
            used[j0] = true;
            let i0 = owner[j0];
            let (mut delta, mut j1) = (i64::MAX, 0);
            for j in 1..=n {
                if !used[j] {
                    let cur = cost(i0, j) - u[i0] - v[j];
                    if cur < min_to[j] {
                        min_to[j] = cur;
                        way[j] = j0;
                    }
                    if min_to[j] < delta {
                        delta = min_to[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[owner[j]] += delta;
                    v[j] -= delta;
                } else {
                    min_to[j] -= delta;
                }
            }
            j0 = j1;
            if owner[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            owner[j0] = owner[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    (1..=n).map(|j| w[owner[j] - 1][j - 1]).sum()
}

/// `v` scaled to unit length (zero stays zero).
fn unit(v: &[f64]) -> Vec<f64> {
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.iter()
        .map(|x| if n > 0.0 { x / n } else { 0.0 })
        .collect()
}

/// `|r|`, the absolute Pearson correlation of `a` and `b` (0 when either is constant).
pub fn abs_correlation(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len());
    if n == 0 {
        return 0.0;
    }
    let mean = |v: &[f32]| v[..n].iter().map(|&x| f64::from(x)).sum::<f64>() / n as f64;
    let (ma, mb) = (mean(a), mean(b));
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a[..n].iter().zip(&b[..n]) {
        let (x, y) = (f64::from(x) - ma, f64::from(y) - mb);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    if saa == 0.0 || sbb == 0.0 {
        0.0
    } else {
        (sab / (saa * sbb).sqrt()).abs()
    }
}

impl LabelLeakage {
    /// Adds one batch: the sample ids the server chose, the `rows × cols` gradient it received
    /// and, for scoring only, the batch's true labels.
    pub fn observe(&mut self, ids: &[u64], g: &[f32], cols: usize, labels: &[f32]) {
        self.observe_with_activations(ids, g, cols, labels, None);
    }

    /// The same with the activations the server sent for the batch (`rows × cols`, its own),
    /// which the combined attack on a regression uses ([`ValueLeakageReport::combined`]).
    pub fn observe_with_activations(
        &mut self,
        ids: &[u64],
        g: &[f32],
        cols: usize,
        labels: &[f32],
        activations: Option<&[f32]>,
    ) {
        if cols == 0 || g.len() != cols * labels.len() || ids.len() != labels.len() {
            return;
        }
        let activations = activations.filter(|a| a.len() == g.len());
        let activation = |i: usize| {
            activations.map(|a| {
                a[i * cols..(i + 1) * cols]
                    .iter()
                    .map(|&v| f64::from(v))
                    .collect()
            })
        };
        if self.cols != cols {
            self.rows.clear();
            self.cols = cols;
        }
        let known = labels.iter().position(|&y| y > 0.5);
        let rms = (g.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>()
            / labels.len() as f64)
            .sqrt();
        if rms > 0.0 {
            for (i, (row, (&id, &label))) in g.chunks(cols).zip(ids.iter().zip(labels)).enumerate()
            {
                self.rows.push(Row {
                    id,
                    values: row.iter().map(|&v| f64::from(v) / rms).collect(),
                    rms,
                    activation: activation(i),
                    label,
                    known: known == Some(i),
                });
            }
        }
        if cols == 1 {
            self.sign.0.extend(sign_scores(g));
            self.sign.1.extend_from_slice(labels);
        }
        self.norm.0.extend(norm_scores(g, cols));
        self.norm.1.extend_from_slice(labels);
        // The attacker's one known positive: the batch's first.
        if let Some(known) = known {
            let scores = direction_scores(g, cols, known);
            for (i, (s, &y)) in scores.into_iter().zip(labels).enumerate() {
                if i != known {
                    self.direction.0.push(s);
                    self.direction.1.push(y);
                }
            }
        }
    }

    /// The attacks' AUCs over everything observed.
    pub fn report(&self) -> LeakageReport {
        let (projection, averaged) = self.projection();
        LeakageReport {
            sign: (!self.sign.0.is_empty()).then(|| attack_auc(&self.sign.0, &self.sign.1)),
            norm: attack_auc(&self.norm.0, &self.norm.1),
            direction: attack_auc(&self.direction.0, &self.direction.1),
            projection,
            averaged,
            samples: self.norm.1.len(),
        }
    }

    /// The projection attack's AUC per release and averaged per sample.
    fn projection(&self) -> (f64, f64) {
        match self.principal_direction().map(|u| self.projections(&u)) {
            Some(p) => (
                attack_auc(&p.scores, &p.labels),
                attack_auc(&p.averaged, &p.averaged_labels),
            ),
            None => (0.5, 0.5),
        }
    }

    /// The projection attacks on a regression's labels: everything observed scored against
    /// real-valued labels. A row is `∂ŷ_i/∂a_i · clamp(ŷ_i − y_i, ±δ)/B` — through a linear top
    /// layer a multiple of its weight, by the clamped residual — so its projection on the top
    /// principal direction is the residual up to scale and sign; early in training `ŷ` is
    /// nearly constant and the residual is the label. (The batch's first label above 0.5
    /// orients the direction and is left out of the scores, as for classes.)
    pub fn value_report(&self) -> ValueLeakageReport {
        match self.principal_direction() {
            Some(u) => {
                let p = self.projections(&u);
                ValueLeakageReport {
                    projection: abs_correlation(&p.scores, &p.labels),
                    averaged: abs_correlation(&p.averaged, &p.averaged_labels),
                    combined: self.combined(&u),
                    samples: p.scores.len(),
                }
            }
            None => ValueLeakageReport {
                projection: 0.0,
                averaged: 0.0,
                combined: None,
                samples: 0,
            },
        }
    }

    /// The combined attack on a regression through a linear top `ŷ = w·a + b`: with the
    /// principal direction `u = ±w/‖w‖`, a received row's projection is
    /// `p_i = ‖w‖·clamp(ŷ_i − y_i, ±δ)/B` plus noise and the server's own activation gives
    /// `u·a_i = (ŷ_i − b)/‖w‖` exactly, so `y_i = ‖w‖·(u·a_i) + b − B·p_i/‖w‖` for an
    /// unclamped residual: a linear function of two things the server has, with coefficients
    /// it can estimate (`‖w‖` from the noise's spread, if it knows `gradient_noise`). The
    /// score grants it the best such coefficients — the multiple correlation of the labels on
    /// `(u·a_i, p_i)` over the releases observed with activations.
    fn combined(&self, u: &[f64]) -> Option<f64> {
        let dot = |v: &[f64]| -> f64 { v.iter().zip(u).map(|(a, b)| a * b).sum() };
        let points: Vec<([f64; 2], f64)> = self
            .rows
            .iter()
            .filter(|r| !r.known)
            .filter_map(|r| {
                let a = r.activation.as_ref()?;
                Some(([dot(a), dot(&r.values) * r.rms], f64::from(r.label)))
            })
            .collect();
        (points.len() > 3).then(|| multiple_correlation(&points))
    }

    /// The clustering attack on `classes` classes: a row is `J_iᵀ(p_i − e_{y_i})/B`, and
    /// through a linear top layer `Wᵀ(p_i − e_{y_i})/B`, so while the predictions are still
    /// uncertain the rows of one class point one way — away from its own row of `W` — and the
    /// rows form `classes` clusters of directions. The server clusters the unit-length rows
    /// (spherical k-means, best of ten seeded k-means++ starts) without any label; reading
    /// each cluster as a class takes a known label per cluster, which the score grants for
    /// free by matching clusters to classes the best way (an upper bound on what those
    /// labels buy).
    pub fn class_report(&self, classes: usize) -> ClassLeakageReport {
        ClassLeakageReport {
            clustering: self.clustering(classes),
            averaged: self.averaged_clustering(classes),
            chance: self.class_chance(classes),
            samples: self.rows.len(),
        }
    }

    /// [`ClassLeakageReport::chance`] alone: the largest class's share of the rows.
    pub fn class_chance(&self, classes: usize) -> f64 {
        let mut counts = vec![0usize; classes.max(1)];
        for r in &self.rows {
            if let Some(c) = counts.get_mut(r.label as usize) {
                *c += 1;
            }
        }
        counts.iter().copied().max().unwrap_or(0) as f64 / self.rows.len().max(1) as f64
    }

    /// [`ClassLeakageReport::clustering`] alone.
    pub fn clustering(&self, classes: usize) -> f64 {
        let rows: Vec<Vec<f64>> = self.rows.iter().map(|r| unit(&r.values)).collect();
        let labels: Vec<usize> = self.rows.iter().map(|r| r.label as usize).collect();
        cluster_accuracy(&rows, &labels, classes)
    }

    /// [`ClassLeakageReport::averaged`] alone: each sample's unit rows summed over its
    /// releases, then clustered.
    pub fn averaged_clustering(&self, classes: usize) -> f64 {
        let mut per_id: std::collections::BTreeMap<u64, (Vec<f64>, usize)> = Default::default();
        for r in &self.rows {
            let e = per_id
                .entry(r.id)
                .or_insert_with(|| (vec![0.0; r.values.len()], r.label as usize));
            e.0.iter_mut()
                .zip(unit(&r.values))
                .for_each(|(a, b)| *a += b);
        }
        let rows: Vec<Vec<f64>> = per_id.values().map(|(v, _)| unit(v)).collect();
        let labels: Vec<usize> = per_id.values().map(|(_, y)| *y).collect();
        cluster_accuracy(&rows, &labels, classes)
    }

    /// Every unknown row's projection on the principal direction `u` with its label, and the
    /// same averaged per sample.
    fn projections(&self, u: &[f64]) -> Projections {
        let project = |r: &Row| -> f64 { r.values.iter().zip(u).map(|(a, b)| a * b).sum() };
        let unknown = || self.rows.iter().filter(|r| !r.known);
        let mut per_id: std::collections::BTreeMap<u64, (f64, usize, f32)> = Default::default();
        for r in unknown() {
            let e = per_id.entry(r.id).or_insert((0.0, 0, r.label));
            e.0 += project(r);
            e.1 += 1;
        }
        Projections {
            scores: unknown().map(|r| project(r) as f32).collect(),
            labels: unknown().map(|r| r.label).collect(),
            averaged: per_id
                .values()
                .map(|(s, n, _)| (s / *n as f64) as f32)
                .collect(),
            averaged_labels: per_id.values().map(|(_, _, y)| *y).collect(),
        }
    }

    /// The top eigenvector of `Σ r·rᵀ` over every row (power iteration), oriented so that the
    /// known positives project positively.
    fn principal_direction(&self) -> Option<Vec<f64>> {
        let a = self.cols;
        if a == 0 || self.rows.is_empty() {
            return None;
        }
        let mut cov = vec![0.0f64; a * a];
        for r in &self.rows {
            for (i, x) in r.values.iter().enumerate() {
                for (j, y) in r.values.iter().enumerate() {
                    cov[i * a + j] += x * y;
                }
            }
        }
        let mut u = vec![1.0 / (a as f64).sqrt(); a];
        for _ in 0..500 {
            let next: Vec<f64> = (0..a)
                .map(|i| (0..a).map(|j| cov[i * a + j] * u[j]).sum())
                .collect();
            let norm = next.iter().map(|v| v * v).sum::<f64>().sqrt();
            if norm == 0.0 {
                return None;
            }
            u = next.into_iter().map(|v| v / norm).collect();
        }
        let known: f64 = self
            .rows
            .iter()
            .filter(|r| r.known)
            .map(|r| r.values.iter().zip(&u).map(|(a, b)| a * b).sum::<f64>())
            .sum();
        if known < 0.0 {
            u.iter_mut().for_each(|v| *v = -*v);
        }
        Some(u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attacks_score_a_textbook_gradient() {
        // Linear top layer: g_i = c_i · w with c_i < 0 for y = 1, larger |c| for the rare class.
        let w = [0.3f32, -0.7, 0.2];
        let c = [-0.4f32, 0.1, 0.05, -0.5, 0.2, 0.08];
        let y = [1.0f32, 0.0, 0.0, 1.0, 0.0, 0.0];
        let g: Vec<f32> = c
            .iter()
            .flat_map(|c| w.iter().map(move |w| c * w))
            .collect();
        let ids: Vec<u64> = (0..6).collect();
        let mut l = LabelLeakage::default();
        l.observe(&ids, &g, 3, &y);
        let r = l.report();
        assert_eq!(r.direction, 1.0);
        assert_eq!(r.norm, 1.0);
        assert_eq!(r.projection, 1.0);
        assert_eq!(r.sign, None);
        // The same coefficients as a one-column gradient.
        let mut l = LabelLeakage::default();
        l.observe(&ids, &c, 1, &y);
        assert_eq!(l.report().sign, Some(1.0));
        // Orientation does not matter; chance is 0.5.
        assert_eq!(attack_auc(&[0.1, 0.9], &[1.0, 0.0]), 1.0);
        assert_eq!(attack_auc(&[0.5, 0.5], &[1.0, 0.0]), 0.5);
    }

    /// A linear top layer's regression rows `w·(ŷ − y_i)/B` with a constant prediction: the
    /// projection recovers the labels exactly (up to sign and scale); unrelated scores do not.
    #[test]
    fn the_value_projection_recovers_a_regressions_labels() {
        let w = [0.3f32, -0.7, 0.2];
        let y = [1.5f32, -0.3, 0.2, 2.0, -1.1, 0.7, 0.9, -2.2];
        let g: Vec<f32> = y
            .iter()
            .flat_map(|y| w.iter().map(move |w| (0.1 - y) * w / 8.0))
            .collect();
        let ids: Vec<u64> = (0..8).collect();
        let mut l = LabelLeakage::default();
        l.observe(&ids, &g, 3, &y);
        let r = l.value_report();
        assert!(r.projection > 0.999_999, "{r:?}");
        assert_eq!(r.samples, 7, "the orienting row is left out");
        assert_eq!(r.combined, None, "no activations observed");
        // Predictions that vary with the activations: the residual is no longer the label and
        // the projection alone falls short; combined with the activations it is exact.
        let a: Vec<f32> = (0..24).map(|i| ((i * 7 % 11) as f32 - 5.0) / 5.0).collect();
        let pred = |i: usize| -> f32 { (0..3).map(|j| w[j] * a[3 * i + j]).sum::<f32>() + 0.4 };
        let g: Vec<f32> = (0..8)
            .flat_map(|i| {
                let r = pred(i) - y[i];
                w.iter().map(move |w| r * w / 8.0)
            })
            .collect();
        let mut l = LabelLeakage::default();
        l.observe_with_activations(&ids, &g, 3, &y, Some(&a));
        let r = l.value_report();
        assert!(r.projection < 0.99, "{r:?}");
        assert!(r.combined.unwrap() > 0.999_99, "{r:?}");
        assert!((abs_correlation(&[1.0, 2.0, 3.0], &[-2.0, -4.0, -6.0]) - 1.0).abs() < 1e-12);
        assert_eq!(abs_correlation(&[1.0, 1.0], &[0.0, 1.0]), 0.0);
        assert!(abs_correlation(&[1.0, -1.0, 1.0, -1.0], &[1.0, 1.0, -1.0, -1.0]) < 1e-12);
    }

    /// The assignment solver against every permutation of a 5 × 5 matrix.
    #[test]
    fn best_matching_is_the_best_permutation() {
        let w: Vec<Vec<i64>> = (0..5)
            .map(|i| (0..5).map(|j| ((i * 7 + j * 13) % 11) as i64).collect())
            .collect();
        let mut best = 0;
        let mut perm: Vec<usize> = (0..5).collect();
        // Heap's algorithm over the 120 permutations.
        fn heap(k: usize, perm: &mut Vec<usize>, w: &[Vec<i64>], best: &mut i64) {
            if k == 1 {
                *best = (*best).max((0..perm.len()).map(|i| w[i][perm[i]]).sum());
                return;
            }
            for i in 0..k {
                heap(k - 1, perm, w, best);
                let j = if k.is_multiple_of(2) { i } else { 0 };
                perm.swap(j, k - 1);
            }
        }
        heap(5, &mut perm, &w, &mut best);
        assert_eq!(best_matching(&w), best);
    }

    /// Rows `Wᵀ(u − e_y)` of a linear top with uniform predictions over four classes cluster
    /// by class: the attack reads every label; rows of unrelated directions score near chance.
    #[test]
    fn the_clustering_attack_reads_classes_from_a_linear_top() {
        use spnn_crypto::SecureRng;
        use spnn_crypto::rng::standard_normal;
        let (a, c) = (16, 4);
        let mut rng = SecureRng::insecure_from_seed_for_tests(9);
        let w: Vec<f64> = (0..a * c).map(|_| standard_normal(&mut rng)).collect();
        let ids: Vec<u64> = (0..200).collect();
        let labels: Vec<f32> = ids.iter().map(|&i| (i % c as u64) as f32).collect();
        let row = |y: usize| -> Vec<f32> {
            (0..a)
                .map(|j| {
                    let mean: f64 = (0..c).map(|k| w[k * a + j]).sum::<f64>() / c as f64;
                    (mean - w[y * a + j]) as f32
                })
                .collect()
        };
        let g: Vec<f32> = labels.iter().flat_map(|&y| row(y as usize)).collect();
        let mut l = LabelLeakage::default();
        l.observe(&ids, &g, a, &labels);
        let r = l.class_report(c);
        assert_eq!(r.clustering, 1.0, "{r:?}");
        assert_eq!(r.chance, 0.25);
        let noise: Vec<f32> = (0..200 * a)
            .map(|_| standard_normal(&mut rng) as f32)
            .collect();
        let mut l = LabelLeakage::default();
        l.observe(&ids, &noise, a, &labels);
        let r = l.class_report(c);
        assert!(r.clustering < 0.45, "{r:?}");
    }

    #[test]
    fn projection_beats_the_single_row_cosine_and_averaging_beats_both_under_noise() {
        use crate::head::LabelDefence;
        use spnn_crypto::SecureRng;
        // A linear top layer in 32 dimensions, 2,000 samples released 10 times each under
        // isotropic noise at 4.8x the largest row norm any label could give (8x the largest
        // row actually sent, whose coefficient is 0.6).
        let a = 32;
        let mut rng = SecureRng::insecure_from_seed_for_tests(3);
        let w: Vec<f32> = (0..a)
            .map(|_| spnn_crypto::rng::standard_normal(&mut rng) as f32)
            .collect();
        let n = 2000u64;
        let labels: Vec<f32> = (0..n).map(|i| (i % 3 == 0) as u8 as f32).collect();
        let coef = |i: u64| {
            if labels[i as usize] > 0.5 {
                -0.6f32
            } else {
                0.3
            }
        };
        let defence = LabelDefence::undefended().with_gradient_noise(4.8);
        let bound = w
            .iter()
            .map(|v| f64::from(*v) * f64::from(*v))
            .sum::<f64>()
            .sqrt();
        let secret = rng.secret_seed();
        let mut l = LabelLeakage::default();
        for _epoch in 0..10 {
            for batch in (0..n).collect::<Vec<_>>().chunks(64) {
                let g: Vec<f32> = batch
                    .iter()
                    .flat_map(|&i| w.iter().map(move |w| coef(i) * w))
                    .collect();
                let g = spnn_net::FloatMatrix::new(batch.len(), a, g).unwrap();
                // Linear top: every row is (σ − y)·w with |σ − y| ≤ 1.
                let g = defence.perturb(g, batch, &secret, &mut rng, bound).unwrap();
                let y: Vec<f32> = batch.iter().map(|&i| labels[i as usize]).collect();
                l.observe(batch, &g.data, a, &y);
            }
        }
        let r = l.report();
        assert!(r.projection > r.direction + 0.05, "{r:?}");
        assert!(r.averaged > r.projection + 0.1, "{r:?}");
        assert!(r.averaged > 0.95, "{r:?}");
    }
}
