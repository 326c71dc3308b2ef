//! Smoke test: SPNN-SS trains on breast cancer in simulation.

mod common;

use common::*;
use spnn_burn::SpnnConfig;

#[test]
fn spnn_ss_learns_breast_cancer() {
    let data = Data::new(2);
    let device = device();
    let sim = start(&data, SpnnConfig::default(), false);
    let mut model = spnn_model(&sim, &device);
    let mut optim = sgd();
    let mut losses = vec![];
    for epoch in 0..3 {
        let mut sum = 0.0;
        let batches = data.epoch(epoch, 64);
        for ids in &batches {
            let (m, loss) = spnn_step(model, &mut optim, ids, &data.labels(ids), 0.1, &device);
            model = m;
            sum += loss;
        }
        losses.push(sum / batches.len() as f32);
    }
    let auc = spnn_auc(&model, &data);
    println!("losses {losses:?}, auc {auc}");
    // The private layer prints like burn-nn's `Linear`, with who computes it.
    let shown = model.first.to_string();
    for part in [
        format!("d_input: {}", data.d()),
        format!("d_output: {}", HIDDEN[0]),
        "bias: true".into(),
        "holders: 2".into(),
        "scheme: secret sharing".into(),
    ] {
        assert!(shown.contains(&part), "{part:?} not in {shown}");
    }
    assert!(losses[2] < losses[0], "{losses:?}");
    assert!(auc > 0.95, "auc {auc}");
    drop(model);
    sim.finish().unwrap();
}
