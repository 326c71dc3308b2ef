//! PrivyNet's topology optimiser: which (ℓ layers, c channels) to run locally.
//!
//! Under budgets on privacy loss (the attacker's PSNR), local multiply-adds and local storage,
//! pick the topology with the best accuracy. Local cost is analytic (cheap); privacy loss and
//! accuracy each need a training run (expensive), so the optimiser is judged by how few of those
//! it needs. PrivyNet's hierarchical strategy:
//!
//! 1. **Resources**: keep the (ℓ, c) whose local cost fits the compute and storage budgets.
//! 2. **Privacy**: for each ℓ, binary-search the largest c whose privacy loss is within budget
//!    (privacy loss grows with c: more channels, better reconstructions).
//! 3. **Accuracy**: evaluate accuracy only at each ℓ's largest private-enough c (accuracy grows
//!    with c) and return the best.
//!
//! [`brute_force`] evaluates every candidate; on a characterised grid the two can be compared.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::extractor::LocalCost;

/// A local-extractor topology.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Topology {
    /// Stages of the pre-trained network run locally (ℓ).
    pub layers: usize,
    /// Output channels uploaded (c).
    pub channels: usize,
}

/// The owner's limits.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Budget {
    /// Largest acceptable privacy loss: the attacker's mean PSNR, dB.
    pub max_psnr: f64,
    /// Largest acceptable multiply-adds per image.
    pub max_macs: u64,
    /// Largest acceptable parameter storage, bytes.
    pub max_param_bytes: u64,
}

impl Budget {
    /// Whether `cost` fits the resource budgets.
    pub fn affords(&self, cost: &LocalCost) -> bool {
        cost.macs_per_image <= self.max_macs && cost.param_bytes <= self.max_param_bytes
    }
}

/// What the optimiser asks about a topology.
pub trait Evaluator {
    /// Local cost (analytic: not counted as an evaluation).
    fn cost(&mut self, topology: Topology) -> Result<LocalCost>;
    /// Privacy loss: the attacker's mean PSNR on the owner's private images, dB.
    fn privacy_loss(&mut self, topology: Topology) -> Result<f64>;
    /// Accuracy of the cloud network on the owner's task.
    fn accuracy(&mut self, topology: Topology) -> Result<f64>;
}

/// A topology with everything measured about it.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pick {
    /// The topology.
    pub topology: Topology,
    /// Its accuracy.
    pub accuracy: f64,
    /// Its privacy loss (PSNR, dB).
    pub psnr: f64,
    /// Its local cost.
    pub cost: LocalCost,
}

/// The optimiser's answer.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Decision {
    /// The best topology within every budget.
    Chosen(Pick),
    /// No candidate fits the budgets; `reason` says which budget rules them out.
    NoFeasibleTopology {
        /// Why.
        reason: String,
    },
}

/// A decision and what it cost to reach.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    /// The decision.
    pub decision: Decision,
    /// Privacy-loss evaluations (attack trainings) made.
    pub privacy_evaluations: usize,
    /// Accuracy evaluations (cloud trainings) made.
    pub accuracy_evaluations: usize,
}

/// Memoises and counts evaluations.
struct Counted<'a, E> {
    inner: &'a mut E,
    psnr: BTreeMap<Topology, f64>,
    accuracy: BTreeMap<Topology, f64>,
}

impl<E: Evaluator> Counted<'_, E> {
    fn psnr(&mut self, t: Topology) -> Result<f64> {
        if let Some(&v) = self.psnr.get(&t) {
            return Ok(v);
        }
        let v = self.inner.privacy_loss(t)?;
        self.psnr.insert(t, v);
        Ok(v)
    }

    fn accuracy(&mut self, t: Topology) -> Result<f64> {
        if let Some(&v) = self.accuracy.get(&t) {
            return Ok(v);
        }
        let v = self.inner.accuracy(t)?;
        self.accuracy.insert(t, v);
        Ok(v)
    }

    fn outcome(self, decision: Decision) -> Outcome {
        Outcome {
            decision,
            privacy_evaluations: self.psnr.len(),
            accuracy_evaluations: self.accuracy.len(),
        }
    }
}

/// Affordable candidates grouped by ℓ, with c ascending and each one's cost.
type Groups = BTreeMap<usize, Vec<(usize, LocalCost)>>;

/// The candidates that fit the resource budgets; or why none do.
fn affordable<E: Evaluator>(
    candidates: &[Topology],
    budget: &Budget,
    eval: &mut E,
) -> Result<std::result::Result<Groups, String>> {
    if candidates.is_empty() {
        return Ok(Err("there are no candidate topologies".into()));
    }
    let mut groups = Groups::new();
    let mut cheapest: Option<LocalCost> = None;
    for &t in candidates {
        let cost = eval.cost(t)?;
        if cheapest.is_none_or(|c| cost.macs_per_image < c.macs_per_image) {
            cheapest = Some(cost);
        }
        if budget.affords(&cost) {
            groups.entry(t.layers).or_default().push((t.channels, cost));
        }
    }
    if groups.is_empty() {
        let c = cheapest.expect("non-empty candidates");
        return Ok(Err(format!(
            "every candidate exceeds the resource budget (the cheapest needs {} multiply-adds \
             and {} bytes; the budget allows {} and {})",
            c.macs_per_image, c.param_bytes, budget.max_macs, budget.max_param_bytes
        )));
    }
    for list in groups.values_mut() {
        list.sort_by_key(|&(c, _)| c);
        list.dedup_by_key(|&mut (c, _)| c);
    }
    Ok(Ok(groups))
}

/// PrivyNet's hierarchical search over `candidates` (see the module docs).
pub fn hierarchical<E: Evaluator>(
    candidates: &[Topology],
    budget: &Budget,
    eval: &mut E,
) -> Result<Outcome> {
    search(candidates, budget, eval, true)
}

/// Evaluates the privacy loss of every affordable candidate and the accuracy of every one
/// within the privacy budget; returns the most accurate.
pub fn brute_force<E: Evaluator>(
    candidates: &[Topology],
    budget: &Budget,
    eval: &mut E,
) -> Result<Outcome> {
    search(candidates, budget, eval, false)
}

fn search<E: Evaluator>(
    candidates: &[Topology],
    budget: &Budget,
    eval: &mut E,
    hierarchical: bool,
) -> Result<Outcome> {
    let groups = affordable(candidates, budget, eval)?;
    let mut counted = Counted {
        inner: eval,
        psnr: BTreeMap::new(),
        accuracy: BTreeMap::new(),
    };
    let groups = match groups {
        Ok(g) => g,
        Err(reason) => return Ok(counted.outcome(Decision::NoFeasibleTopology { reason })),
    };
    let mut best: Option<Pick> = None;
    for (layers, list) in groups {
        let at = |i: usize| Topology {
            layers,
            channels: list[i].0,
        };
        // The (index, PSNR) of the private-enough candidates whose accuracy is worth asking.
        let mut private = Vec::new();
        if hierarchical {
            // The largest c within the PSNR budget, by binary search (PSNR grows with c).
            let (mut lo, mut hi) = (0usize, list.len());
            while lo < hi {
                let mid = (lo + hi) / 2;
                let psnr = counted.psnr(at(mid))?;
                if psnr <= budget.max_psnr {
                    private = vec![(mid, psnr)];
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
        } else {
            for i in 0..list.len() {
                let psnr = counted.psnr(at(i))?;
                if psnr <= budget.max_psnr {
                    private.push((i, psnr));
                }
            }
        }
        for (i, psnr) in private {
            let accuracy = counted.accuracy(at(i))?;
            if best.is_none_or(|b| accuracy > b.accuracy) {
                best = Some(Pick {
                    topology: at(i),
                    accuracy,
                    psnr,
                    cost: list[i].1,
                });
            }
        }
    }
    let decision = best.map_or_else(
        || Decision::NoFeasibleTopology {
            reason: format!(
                "no affordable topology keeps the attacker's PSNR at or below {:.2} dB",
                budget.max_psnr
            ),
        },
        Decision::Chosen,
    );
    Ok(counted.outcome(decision))
}

/// An [`Evaluator`] that answers from measurements already made (a characterised grid).
#[derive(Clone, Debug, Default)]
pub struct TableEvaluator {
    /// The measurements.
    pub picks: Vec<Pick>,
}

impl TableEvaluator {
    fn find(&self, t: Topology) -> Result<&Pick> {
        self.picks
            .iter()
            .find(|p| p.topology == t)
            .ok_or_else(|| crate::error::PrivyError::Config(format!("{t:?} was not measured")))
    }
}

impl Evaluator for TableEvaluator {
    fn cost(&mut self, t: Topology) -> Result<LocalCost> {
        Ok(self.find(t)?.cost)
    }
    fn privacy_loss(&mut self, t: Topology) -> Result<f64> {
        Ok(self.find(t)?.psnr)
    }
    fn accuracy(&mut self, t: Topology) -> Result<f64> {
        Ok(self.find(t)?.accuracy)
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    use super::*;

    /// A grid over ℓ ∈ 1..=4, c ∈ {1, 2, 4, 8, 16}: cost grows with ℓ and c; PSNR and accuracy
    /// grow with c (monotone when `monotone`, random otherwise).
    fn grid(rng: &mut ChaCha20Rng, monotone: bool) -> (Vec<Topology>, TableEvaluator) {
        let mut picks = Vec::new();
        for layers in 1..=4usize {
            let (mut psnr, mut accuracy) =
                (rng.random_range(8.0..12.0), rng.random_range(0.3..0.6));
            for channels in [1usize, 2, 4, 8, 16] {
                if monotone {
                    psnr += rng.random_range(0.0..3.0);
                    accuracy += rng.random_range(0.0..0.08);
                } else {
                    psnr = rng.random_range(8.0..25.0);
                    accuracy = rng.random_range(0.1..0.95);
                }
                picks.push(Pick {
                    topology: Topology { layers, channels },
                    accuracy,
                    psnr,
                    cost: LocalCost {
                        macs_per_image: (layers * layers * 1000 + channels * 100) as u64,
                        param_bytes: (layers * 400 + channels * 40) as u64,
                    },
                });
            }
        }
        let candidates = picks.iter().map(|p| p.topology).collect();
        (candidates, TableEvaluator { picks })
    }

    fn random_budget(rng: &mut ChaCha20Rng) -> Budget {
        Budget {
            max_psnr: rng.random_range(8.0..30.0),
            max_macs: rng.random_range(0..20_000),
            max_param_bytes: rng.random_range(0..3_000),
        }
    }

    #[test]
    fn no_pick_is_ever_outside_the_budgets() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let (mut chosen, mut infeasible) = (0, 0);
        for _ in 0..500 {
            let monotone = rng.random_bool(0.5);
            let (candidates, mut table) = grid(&mut rng, monotone);
            let budget = random_budget(&mut rng);
            for outcome in [
                hierarchical(&candidates, &budget, &mut table).unwrap(),
                brute_force(&candidates, &budget, &mut table).unwrap(),
            ] {
                match outcome.decision {
                    Decision::Chosen(p) => {
                        chosen += 1;
                        let truth = table.find(p.topology).unwrap();
                        assert_eq!(p, *truth, "a pick reports what was measured");
                        assert!(p.psnr <= budget.max_psnr, "{p:?} {budget:?}");
                        assert!(budget.affords(&p.cost), "{p:?} {budget:?}");
                    }
                    Decision::NoFeasibleTopology { reason } => {
                        infeasible += 1;
                        assert!(!reason.is_empty());
                    }
                }
            }
        }
        // Both kinds of answer were exercised.
        assert!(
            chosen > 100 && infeasible > 100,
            "{chosen} chosen, {infeasible} infeasible"
        );
    }

    #[test]
    fn brute_force_finds_nothing_exactly_when_nothing_fits() {
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        for _ in 0..300 {
            let (candidates, mut table) = grid(&mut rng, false);
            let budget = random_budget(&mut rng);
            let fits = table
                .picks
                .iter()
                .any(|p| p.psnr <= budget.max_psnr && budget.affords(&p.cost));
            let outcome = brute_force(&candidates, &budget, &mut table).unwrap();
            assert_eq!(matches!(outcome.decision, Decision::Chosen(_)), fits);
        }
    }

    #[test]
    fn on_monotone_grids_hierarchical_matches_brute_force_with_fewer_evaluations() {
        let mut rng = ChaCha20Rng::seed_from_u64(13);
        let (mut saved, mut compared) = (0, 0);
        for _ in 0..300 {
            let (candidates, mut table) = grid(&mut rng, true);
            let budget = random_budget(&mut rng);
            let h = hierarchical(&candidates, &budget, &mut table).unwrap();
            let b = brute_force(&candidates, &budget, &mut table).unwrap();
            assert_eq!(h.decision, b.decision, "{budget:?}");
            if matches!(b.decision, Decision::Chosen(_)) {
                compared += 1;
                let (he, be) = (
                    h.privacy_evaluations + h.accuracy_evaluations,
                    b.privacy_evaluations + b.accuracy_evaluations,
                );
                assert!(he <= be, "{he} > {be}");
                saved += (he < be) as usize;
            }
        }
        assert!(
            compared > 50 && saved > compared / 2,
            "{saved} of {compared}"
        );
    }

    #[test]
    fn infeasible_budgets_say_which_budget_rules_everything_out() {
        let mut rng = ChaCha20Rng::seed_from_u64(14);
        let (candidates, mut table) = grid(&mut rng, true);
        let poor = Budget {
            max_psnr: 100.0,
            max_macs: 10,
            max_param_bytes: 10,
        };
        let strict = Budget {
            max_psnr: 1.0,
            max_macs: u64::MAX,
            max_param_bytes: u64::MAX,
        };
        for search in [
            hierarchical::<TableEvaluator>,
            brute_force::<TableEvaluator>,
        ] {
            match search(&candidates, &poor, &mut table).unwrap().decision {
                Decision::NoFeasibleTopology { reason } => {
                    assert!(reason.contains("resource budget"), "{reason}")
                }
                d => panic!("{d:?}"),
            }
            let outcome = search(&candidates, &strict, &mut table).unwrap();
            match outcome.decision {
                Decision::NoFeasibleTopology { reason } => {
                    assert!(reason.contains("PSNR"), "{reason}")
                }
                d => panic!("{d:?}"),
            }
            assert_eq!(
                outcome.accuracy_evaluations, 0,
                "no accuracy is worth evaluating"
            );
            match search(&[], &strict, &mut table).unwrap().decision {
                Decision::NoFeasibleTopology { reason } => assert!(reason.contains("no candidate")),
                d => panic!("{d:?}"),
            }
        }
    }
}
