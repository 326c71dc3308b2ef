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

/// The three attacks run over every training batch the server saw, for one measurement (an
/// epoch, say).
#[derive(Clone, Debug, Default)]
pub struct LabelLeakage {
    sign: (Vec<f32>, Vec<f32>),
    norm: (Vec<f32>, Vec<f32>),
    direction: (Vec<f32>, Vec<f32>),
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
    /// Samples scored.
    pub samples: usize,
}

impl LabelLeakage {
    /// Adds one batch: the `rows × cols` gradient the server received and, for scoring only,
    /// the batch's true labels.
    pub fn observe(&mut self, g: &[f32], cols: usize, labels: &[f32]) {
        if cols == 0 || g.len() != cols * labels.len() {
            return;
        }
        if cols == 1 {
            self.sign.0.extend(sign_scores(g));
            self.sign.1.extend_from_slice(labels);
        }
        self.norm.0.extend(norm_scores(g, cols));
        self.norm.1.extend_from_slice(labels);
        // The attacker's one known positive: the batch's first.
        if let Some(known) = labels.iter().position(|&y| y > 0.5) {
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
        LeakageReport {
            sign: (!self.sign.0.is_empty()).then(|| attack_auc(&self.sign.0, &self.sign.1)),
            norm: attack_auc(&self.norm.0, &self.norm.1),
            direction: attack_auc(&self.direction.0, &self.direction.1),
            samples: self.norm.1.len(),
        }
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
        let mut l = LabelLeakage::default();
        l.observe(&g, 3, &y);
        let r = l.report();
        assert_eq!(r.direction, 1.0);
        assert_eq!(r.norm, 1.0);
        assert_eq!(r.sign, None);
        // The same coefficients as a one-column gradient.
        let mut l = LabelLeakage::default();
        l.observe(&c, 1, &y);
        assert_eq!(l.report().sign, Some(1.0));
        // Orientation does not matter; chance is 0.5.
        assert_eq!(attack_auc(&[0.1, 0.9], &[1.0, 0.0]), 1.0);
        assert_eq!(attack_auc(&[0.5, 0.5], &[1.0, 0.0]), 0.5);
    }
}
