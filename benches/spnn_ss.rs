//! SPNN against its baselines, in one run on the same data, model and batches: plaintext Burn,
//! plain split learning, SPNN-SS in-memory, SPNN-SS over mutual TLS on loopback, SPNN-HE.
//!
//! - `cargo bench --bench spnn_ss` — breast cancer, two holders with 15 + 15 features,
//!   MLP 30-64-32-1, batch 64, 10 epochs, all five systems.
//! - `cargo bench --bench spnn_ss -- --synthetic` — 20,000 × 40 synthetic, one epoch, batch
//!   256: SPNN-SS against SPNN-HE.
//! - `cargo bench --bench spnn_ss -- --census DATA_DIR` — Census-Income (from
//!   `scripts/fetch-data.sh DATA_DIR`), batch 256, one epoch, without SPNN-HE (hours).
//!
//! Prints a markdown table.

use spnn::bench::{Data, Setup, markdown, run, spnn, spnn_he};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |f: &str| args.iter().position(|a| a == f);
    let rows = if let Some(i) = flag("--census") {
        let dir = args.get(i + 1).expect("--census needs a data directory");
        let setup = Setup {
            batch: 256,
            epochs: 1,
            lr: 0.05,
            ..Default::default()
        };
        let p = spnn::data::packaged::census::load(std::path::Path::new(dir), setup.holders)
            .expect("census data");
        run(&Data::from_partitioned(p), &setup)
    } else if flag("--synthetic").is_some() {
        let setup = Setup {
            batch: 256,
            epochs: 1,
            ..Default::default()
        };
        let data = Data::synthetic(20_000, 40, 2, 7).expect("synthetic data");
        let roster = spnn::net::Roster::spnn(2, false).expect("two holders");
        let net =
            spnn::net::NetworkConfig::new(23).with_timeout(std::time::Duration::from_secs(3600));
        vec![
            spnn(
                &data,
                &setup,
                "SPNN-SS, in-memory",
                Default::default(),
                spnn::net::Network::in_memory(&roster, net),
            ),
            spnn_he(&data, &setup),
        ]
    } else {
        let setup = Setup::default();
        let data =
            Data::new(spnn::data::embedded::breast_cancer(), setup.holders).expect("embedded data");
        let mut rows = run(&data, &setup);
        rows.push(spnn_he(&data, &setup));
        rows
    };
    println!("{}", markdown(&rows));
}
