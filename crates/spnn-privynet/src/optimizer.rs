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
