//! The same server model runs over in-memory channels and over mutual TLS on loopback, with the
//! same result bit for bit when randomness is seeded.

use std::time::Duration;

use burn::module::Module;
use burn::nn::loss::BinaryCrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor, TensorData};
use spnn::burn::simulation::{self, HolderSpec, Simulation};
use spnn::burn::{
    PartyPolicy, PrivateLinear, PrivateLinearConfig, Randomness, SessionSpec, SpnnConfig,
};
use spnn::data::{Table, VerticalPartition, embedded::breast_cancer};
use spnn::net::certs::DeploymentCerts;
use spnn::net::transport::tls::loopback_mesh;
use spnn::net::{Network, NetworkConfig, Roster};

#[derive(Module, Debug)]
struct Model {
    first: PrivateLinear,
    out: Linear,
}

fn holders(table: &Table, train: &[u64]) -> Vec<HolderSpec> {
    VerticalPartition::even(table.columns(), 2)
        .unwrap()
        .standardized_tables(table, train)
        .unwrap()
        .into_iter()
        .map(|t| HolderSpec {
            allow_insecure_reveal: true,
            policy: PartyPolicy::default().allowing_insecure_randomness(),
            ..HolderSpec::new(t)
        })
        .collect()
}

/// Trains one epoch from fixed server weights; returns the reconstructed `W` and the server's
/// output-layer weights.
fn train(sim: Simulation, table: &Table, train: &[u64], out: &Linear) -> (Vec<f32>, Vec<f32>) {
    let device = Device::flex().autodiff();
    let mut model = Model {
        // No bias: its random initialisation would differ between the two runs.
        first: PrivateLinearConfig::new()
            .with_bias(false)
            .init(sim.session(), &device),
        out: out.clone(),
    };
    let mut optim = sim.session().optimizer();
    let loss_fn = BinaryCrossEntropyLossConfig::new()
        .with_logits(true)
        .init(&device);
    for ids in train.chunks(64) {
        let y: Vec<i64> = table
            .gather_labels(ids)
            .unwrap()
            .iter()
            .map(|&v| v as i64)
            .collect();
        let targets = Tensor::<2, Int>::from_data(TensorData::new(y, [ids.len(), 1]), &device);
        let logits = model.out.forward(relu(model.first.forward(ids)));
        let grads =
            GradientsParams::from_grads(loss_fn.forward(logits, targets).backward(), &model);
        model = optim.step(0.1, model, grads);
    }
    let w = sim.session().reveal_weights_insecure_for_tests().unwrap();
    let o = spnn::burn::tensor::to_vec(model.out.weight.val()).unwrap();
    drop(model);
    sim.finish().unwrap();
    (w, o)
}

#[test]
fn tls_deployment_computes_exactly_what_the_simulation_computes() {
    let table = breast_cancer();
    let (train_ids, _) = table.split_ids(0.2, 1);
    let spec = SessionSpec::new(16)
        .with_config(SpnnConfig::default().with_randomness(Randomness::InsecureSeededForTests(5)));
    let out = LinearConfig::new(16, 1).init(&Device::flex().autodiff());
    let net = NetworkConfig::new(11).with_timeout(Duration::from_secs(30));

    let in_memory = simulation::start(holders(&table, &train_ids), spec.clone(), net).unwrap();
    let (w_mem, o_mem) = train(in_memory, &table, &train_ids, &out);

    // ANCHOR: tls
    let roster = Roster::spnn(2, false).unwrap();
    let names: Vec<String> = roster.ids().map(|p| roster.name(p).unwrap()).collect();
    let certs = DeploymentCerts::generate("distributed-test", &names).unwrap();
    let networks: Vec<Network> = loopback_mesh(&roster, &certs, net).unwrap();
    let over_tls = simulation::start_on(networks, holders(&table, &train_ids), spec).unwrap();
    // ANCHOR_END: tls
    let (w_tls, o_tls) = train(over_tls, &table, &train_ids, &out);

    let differ = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .filter(|(x, y)| x.to_bits() != y.to_bits())
            .count()
    };
    assert_eq!(w_mem.len(), 30 * 16);
    assert_eq!(
        differ(&w_mem, &w_tls),
        0,
        "weights differ between transports"
    );
    assert_eq!(
        differ(&o_mem, &o_tls),
        0,
        "server layers differ between transports"
    );
}
