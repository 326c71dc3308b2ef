//! SecureAggregation of holders' own Burn bottom models: the server learns only the sum of
//! their outputs, and training matches plaintext training of the same models.

mod common;

use std::time::Duration;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use burn::tensor::activation::{relu, sigmoid};
use common::*;
use spnn_burn::messages::MaskedOutput;
use spnn_burn::metrics::roc_auc;
use spnn_burn::simulation::{self, HolderSpec};
use spnn_burn::tensor::{matrix, to_vec};
use spnn_burn::{LocalModel, SecureAggregation, SecureAggregationConfig, SessionSpec, SpnnConfig};
use spnn_net::NetworkConfig;
use spnn_net::codec::{Message, decode_exact};

const H: usize = 16;

/// A holder's bottom model: `Linear(d_i, 16) → ReLU`.
#[derive(Module, Debug)]
struct Bottom {
    layer: Linear,
}

impl LocalModel for Bottom {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        relu(self.layer.forward(x))
    }
}

/// The server: the aggregated bottom outputs, then `Linear(16, 1)`.
#[derive(Module, Debug)]
struct Top {
    agg: SecureAggregation,
    out: Linear,
}

/// The plaintext equivalent: the same bottoms on the same columns, summed.
#[derive(Module, Debug)]
struct Plain {
    bottoms: Vec<Bottom>,
    out: Linear,
}

impl Plain {
    fn forward(&self, blocks: &[Tensor<2>]) -> Tensor<2> {
        let sum = self
            .bottoms
            .iter()
            .zip(blocks)
            .map(|(b, x)| b.forward(x.clone()))
            .reduce(|a, b| a + b)
            .unwrap();
        self.out.forward(sum)
    }
}

#[test]
fn bottom_models_train_like_plaintext_and_the_server_sees_only_the_sum() {
    let data = Data::new(2);
    let device = device();
    let bottoms: Vec<Bottom> = data
        .holders
        .iter()
        .map(|t| Bottom {
            layer: LinearConfig::new(t.cols(), H).init(&device),
        })
        .collect();
    let holders = data
        .holders
        .iter()
        .zip(&bottoms)
        .map(|(t, b)| {
            HolderSpec::new(t.clone()).with_bottom_model(b.clone(), sgd(), device.clone())
        })
        .collect();
    let net = NetworkConfig::new(8)
        .with_timeout(Duration::from_secs(30))
        .with_transcript();
    let sim = simulation::start(
        holders,
        SessionSpec::new(H).with_config(SpnnConfig::default()),
        net,
    )
    .unwrap();
    // A private first layer needs private weights: on this session its init says so.
    let err = spnn_burn::PrivateLinearConfig::new()
        .try_init(sim.session(), &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("bottom-model"), "{err}");
    let mut top = Top {
        agg: SecureAggregationConfig::new().init(sim.session(), &device),
        out: LinearConfig::new(H, 1).init(&device),
    };
    let mut plain = Plain {
        bottoms: bottoms.clone(),
        out: top.out.clone(),
    };
    let (mut o1, mut o2) = (sim.session().optimizer(), sgd());
    let blocks = |ids: &[u64], dev: &burn::tensor::Device| -> Vec<Tensor<2>> {
        data.holders
            .iter()
            .map(|t| matrix(t.gather(ids).unwrap(), ids.len(), t.cols(), dev))
            .collect()
    };
    let mut max_diff = 0f32;
    let mut first = true;
    for epoch in 0..10 {
        for ids in data.epoch(epoch, 64) {
            let y = data.labels(&ids);
            // Before the first update both sides hold identical bottoms: the aggregated output
            // equals the plaintext sum within the fixed-point encoding (each of the two outputs
            // rounds by at most 2^-17) plus f32 rounding: the two evaluations of a bottom may sum
            // its `d + 1` terms in different orders (|Δ| ≤ 2(d+1)·2^-24·Σ|terms|), and each side
            // rounds the sum once. Later the two trainings drift apart by the accumulated
            // rounding; the drift is reported.
            let slack = first.then(|| {
                let magnitudes = plain
                    .bottoms
                    .iter()
                    .zip(blocks(&ids, &device))
                    .map(|(b, x)| {
                        let d = x.dims()[1] as f32;
                        let terms = x.abs().matmul(b.layer.weight.val().abs())
                            + b.layer.bias.as_ref().unwrap().val().abs().unsqueeze();
                        terms * (2.0 * (d + 1.0) * 2f32.powi(-24))
                    })
                    .reduce(|a, b| a + b)
                    .unwrap();
                to_vec(magnitudes).unwrap()
            });
            let z_plain: Vec<f32> = to_vec(
                plain
                    .bottoms
                    .iter()
                    .zip(blocks(&ids, &device))
                    .map(|(b, x)| b.forward(x))
                    .reduce(|a, b| a + b)
                    .unwrap(),
            )
            .unwrap();
            let loss = bce(top.out.forward(top.agg.forward(&ids)), &y, &device);
            let z = sim.session().view().z;
            for (k, (a, b)) in z.iter().zip(&z_plain).enumerate() {
                let diff = (a - b).abs();
                max_diff = max_diff.max(diff);
                if let Some(slack) = &slack {
                    let bound = 2.0 * 2f32.powi(-17) + slack[k] + 2.0 * b.abs() * 2f32.powi(-24);
                    assert!(diff <= bound, "{a} vs {b} (bound {bound:e})");
                }
            }
            first = false;
            let grads = GradientsParams::from_grads(loss.backward(), &top);
            top = o1.step(0.1, top, grads);
            let loss = bce(plain.forward(&blocks(&ids, &device)), &y, &device);
            let grads = GradientsParams::from_grads(loss.backward(), &plain);
            plain = o2.step(0.1, plain, grads);
        }
    }
    let valid = top.clone().valid();
    let scores = to_vec(sigmoid(valid.out.forward(valid.agg.forward(&data.test)))).unwrap();
    let auc = roc_auc(&scores, &data.labels(&data.test));
    let pv = plain.clone().valid();
    let inner = device.clone().inner();
    let plain_scores = to_vec(sigmoid(pv.forward(&blocks(&data.test, &inner)))).unwrap();
    let plain_auc = roc_auc(&plain_scores, &data.labels(&data.test));
    println!("bottom models: AUC {auc:.5} vs plaintext {plain_auc:.5}, max |ΔZ| {max_diff:.2e}");
    assert!(plain_auc > 0.95);
    assert!((auc - plain_auc).abs() <= 0.005, "{auc} vs {plain_auc}");

    // The server received masked outputs only: none equals a holder's encoded output, and the
    // masks are uniform-looking (the values are spread over the whole ring, not near zero).
    let nets = sim.networks().to_vec();
    drop(top);
    sim.finish().unwrap();
    let outputs: Vec<_> = nets[0]
        .transcript()
        .into_iter()
        .filter(|r| r.kind == MaskedOutput::KIND)
        .collect();
    assert!(!outputs.is_empty());
    for r in &outputs {
        let MaskedOutput(m) = decode_exact(&r.payload).unwrap();
        let near_zero = m
            .as_slice()
            .iter()
            .filter(|&&v| (v as i64).unsigned_abs() < 1 << 40)
            .count();
        assert!(
            near_zero * 1000 < m.as_slice().len().max(1000),
            "{near_zero} unmasked-looking values"
        );
    }
}
