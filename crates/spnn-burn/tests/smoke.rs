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
    let mut optim = sim.session().optimizer();
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

/// An evaluation batch of any size is one call: the session runs it in steps of
/// `EVALUATION_ROWS` and returns exactly what those steps would (no noise on `Z` here, so
/// forwards of the same weights are bit-for-bit repeatable).
#[test]
fn an_evaluation_batch_beyond_one_step_is_split_by_the_session() {
    let data = Data::new(2);
    let sim = start(&data, SpnnConfig::default().with_z_noise(0.0), false);
    let session = sim.session().clone();
    let n = spnn_burn::EVALUATION_ROWS + 321;
    let rows = data.holders[0].rows() as u64;
    let ids: Vec<u64> = (0..n as u64).map(|i| (i * 7) % rows).collect();
    let before = session.meters().total.messages_sent;
    let whole = session.forward(&ids, false).unwrap();
    let after = session.meters().total.messages_sent;
    let mut pieces = Vec::new();
    for chunk in ids.chunks(spnn_burn::EVALUATION_ROWS) {
        pieces.extend(session.forward(chunk, false).unwrap());
    }
    assert_eq!(whole.len(), n * HIDDEN[0]);
    assert_eq!(whole, pieces);
    assert_eq!(
        after - before,
        session.meters().total.messages_sent - after,
        "the same steps, the same messages"
    );
    // A training batch stays one step: its backward pairs with it.
    assert!(session.forward(&ids[..64], true).is_ok());
    sim.finish().unwrap();
}
