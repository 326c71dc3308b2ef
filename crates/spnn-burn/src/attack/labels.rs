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

impl LabelLeakage {
    /// Adds one batch: the sample ids the server chose, the `rows × cols` gradient it received
    /// and, for scoring only, the batch's true labels.
    pub fn observe(&mut self, ids: &[u64], g: &[f32], cols: usize, labels: &[f32]) {
        if cols == 0 || g.len() != cols * labels.len() || ids.len() != labels.len() {
            return;
        }
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
        let Some(u) = self.principal_direction() else {
            return (0.5, 0.5);
        };
        let project = |r: &Row| -> f64 { r.values.iter().zip(&u).map(|(a, b)| a * b).sum() };
        let unknown = || self.rows.iter().filter(|r| !r.known);
        let scores: Vec<f32> = unknown().map(|r| project(r) as f32).collect();
        let labels: Vec<f32> = unknown().map(|r| r.label).collect();
        let mut per_id: std::collections::BTreeMap<u64, (f64, usize, f32)> = Default::default();
        for r in unknown() {
            let e = per_id.entry(r.id).or_insert((0.0, 0, r.label));
            e.0 += project(r);
            e.1 += 1;
        }
        let avg: Vec<f32> = per_id
            .values()
            .map(|(s, n, _)| (s / *n as f64) as f32)
            .collect();
        let avg_labels: Vec<f32> = per_id.values().map(|(_, _, y)| *y).collect();
        (attack_auc(&scores, &labels), attack_auc(&avg, &avg_labels))
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
