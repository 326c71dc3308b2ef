//! The server of a deployment with your own Burn model: the holders run the stock command
//! (`spnn run --config FILE --party holder-<i>`), and this program replaces `spnn run --party
//! server` with a few lines of library calls.
//!
//! ```sh
//! spnn certs --out deploy/certs --holders 2
//! spnn run --config deploy/breast_cancer.toml --party holder-0 &
//! spnn run --config deploy/breast_cancer.toml --party holder-1 &
//! cargo run -p spnn-cli --example custom_server -- deploy/breast_cancer.toml
//! ```

use burn::module::Module;
use burn::nn::loss::BinaryCrossEntropyLossConfig;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::tensor::activation::{gelu, sigmoid};
use burn::tensor::{Device, Int, Tensor, TensorData};
use spnn_burn::metrics::roc_auc;
use spnn_burn::tensor::to_vec;
use spnn_burn::{PrivateLinear, PrivateLinearConfig, ServerSession, SessionSpec};
use spnn_cli::config::Deployment;
use spnn_cli::data::{label_table, split};
use spnn_cli::party::connect;

// ANCHOR: model
/// Any Burn model whose first layer is private: here GELU, dropout and Adam.
#[derive(Module, Debug)]
struct MyModel {
    first: PrivateLinear,
    dropout: Dropout,
    out: Linear,
}

impl MyModel {
    fn forward(&self, ids: &[u64]) -> Tensor<2> {
        self.out
            .forward(self.dropout.forward(gelu(self.first.forward(ids))))
    }
}
// ANCHOR_END: model

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: custom_server DEPLOYMENT.toml")?;
    // ANCHOR: server
    let dep = Deployment::load(path.as_ref())?;
    let net = connect(&dep, "server")?; // mutual TLS to every holder
    let session = ServerSession::establish(
        net,
        SessionSpec::new(dep.model.hidden[0]).with_config(dep.config_for("server")?),
    )?;
    let labels = label_table(&dep)?;
    let (train, test) = split(
        labels.ids(),
        dep.training.test_fraction,
        dep.training.split_seed,
    )?;
    // ANCHOR_END: server

    let device = Device::flex().autodiff();
    let mut model = MyModel {
        first: PrivateLinearConfig::new().init(&session, &device),
        dropout: DropoutConfig::new(0.1).init(),
        out: LinearConfig::new(dep.model.hidden[0], 1).init(&device),
    };
    // One optimiser for every parameter, the private weights' shares included: the
    // deployment's SGD (its momentum, dampening, Nesterov flag, weight decay).
    let mut optim = session.optimizer();
    let bce = BinaryCrossEntropyLossConfig::new()
        .with_logits(true)
        .init(&device);
    for epoch in 1..=dep.training.epochs {
        for ids in train.chunks(dep.training.batch_size) {
            let y: Vec<i64> = labels
                .gather_labels(ids)?
                .iter()
                .map(|&v| v as i64)
                .collect();
            let targets = Tensor::<2, Int>::from_data(TensorData::new(y, [ids.len(), 1]), &device);
            let loss = bce.forward(model.forward(ids), targets);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(dep.training.learning_rate, model, grads);
            session.check()?; // a failed secure update surfaces here
        }
        let valid = model.clone().valid();
        let scores = to_vec(sigmoid(valid.forward(&test)))?;
        println!(
            "epoch {epoch}: test AUC {:.4}",
            roc_auc(&scores, &labels.gather_labels(&test)?)
        );
    }
    session.shutdown()?;
    Ok(())
}
