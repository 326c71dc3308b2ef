//! Breast cancer, two holders with 15 + 15 features, MLP 30-64-32-1, batch 64, 10 epochs:
//! plaintext Burn, plain split learning, SPNN-SS in-memory and SPNN-SS over TLS, in one run.
//!
//! `cargo bench --bench spnn_ss` prints a markdown table.

fn main() {
    let setup = spnn::bench::Setup::default();
    let data = spnn::bench::Data::new(spnn::data::embedded::breast_cancer(), setup.holders)
        .expect("embedded data");
    let rows = spnn::bench::run(&data, &setup);
    println!("{}", spnn::bench::markdown(&rows));
}
