//! Evaluation metrics.

/// The index of the largest value of `row` (the first on ties): a predicted class.
pub fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 { (i, v) } else { best }
        })
        .0
}

/// Area under the ROC curve of `scores` against binary `labels` (> 0.5 is positive), by the
/// rank-sum (Mann–Whitney) formula with ties counted one half. `0.5` when one class is absent.
pub fn roc_auc(scores: &[f32], labels: &[f32]) -> f64 {
    let mut pairs: Vec<(f32, bool)> = scores
        .iter()
        .copied()
        .zip(labels.iter().map(|&y| y > 0.5))
        .collect();
    let pos = pairs.iter().filter(|p| p.1).count() as f64;
    let neg = pairs.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return 0.5;
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Sum of the ranks of positives, averaging ranks over ties.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < pairs.len() {
        let mut j = i;
        while j + 1 < pairs.len() && pairs[j + 1].0 == pairs[i].0 {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += avg_rank * pairs[i..=j].iter().filter(|p| p.1).count() as f64;
        i = j + 1;
    }
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_matches_hand_computed_values() {
        assert_eq!(roc_auc(&[0.1, 0.4, 0.35, 0.8], &[0.0, 0.0, 1.0, 1.0]), 0.75);
        assert_eq!(roc_auc(&[0.1, 0.2, 0.3], &[0.0, 1.0, 1.0]), 1.0);
        assert_eq!(roc_auc(&[0.3, 0.2, 0.1], &[0.0, 1.0, 1.0]), 0.0);
        assert_eq!(roc_auc(&[0.5, 0.5], &[0.0, 1.0]), 0.5);
        assert_eq!(roc_auc(&[0.1, 0.2], &[1.0, 1.0]), 0.5);
    }
}
