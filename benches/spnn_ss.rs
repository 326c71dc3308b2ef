//! SPNN-SS against its baselines, in one run on the same data, model and batches: plaintext
//! Burn, plain split learning, SPNN-SS in-memory and SPNN-SS over mutual TLS on loopback.
//!
//! - `cargo bench --bench spnn_ss` — breast cancer, two holders with 15 + 15 features,
//!   MLP 30-64-32-1, batch 64, 10 epochs.
//! - `cargo bench --bench spnn_ss -- --census DATA_DIR` — Census-Income (from
//!   `scripts/fetch-data.sh DATA_DIR`), two holders, MLP d-64-32-1, batch 256, one epoch.
//!
//! Prints a markdown table.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let census = args
        .iter()
        .position(|a| a == "--census")
        .map(|i| args.get(i + 1).expect("--census needs a data directory"));
    let (data, setup) = match census {
        None => {
            let setup = spnn::bench::Setup::default();
            let data = spnn::bench::Data::new(spnn::data::embedded::breast_cancer(), setup.holders)
                .expect("embedded data");
            (data, setup)
        }
        Some(dir) => {
            let setup = spnn::bench::Setup {
                batch: 256,
                epochs: 1,
                lr: 0.05,
                ..Default::default()
            };
            let p = spnn::data::packaged::census::load(std::path::Path::new(dir), setup.holders)
                .expect("census data");
            (spnn::bench::Data::from_partitioned(p), setup)
        }
    };
    let rows = spnn::bench::run(&data, &setup);
    println!("{}", spnn::bench::markdown(&rows));
}
