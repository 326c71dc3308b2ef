//! SPNN-SS on Census-Income with the default clipping: features clipped to ±32 standard
//! deviations (Census has heavy-tailed columns that reach them) and `c·G` to ±16. The clipping
//! keeps every truncation exact; this checks that it leaves the test AUC where plaintext Burn
//! puts it. Needs `SPNN_DATA_DIR` (scripts/fetch-data.sh): ignored by a plain `cargo test`, run
//! by CI with `--ignored`.

use spnn::burn::SpnnConfig;
use spnn_bench::systems::{Data, Setup, plaintext, spnn};

#[test]
#[ignore = "needs scripts/fetch-data.sh; set SPNN_DATA_DIR"]
fn clipped_census_training_matches_plaintext_auc() {
    let dir = std::env::var_os("SPNN_DATA_DIR")
        .expect("SPNN_DATA_DIR is not set: run scripts/fetch-data.sh DIR and set it to DIR");
    let p = spnn::data::packaged::census::load(dir.as_ref(), 2).unwrap();
    let data = Data::from_partitioned(p);
    let setup = Setup {
        batch: 256,
        epochs: 1,
        lr: 0.05,
        ..Default::default()
    };
    // Clipping bites on this data: some standardised value lies beyond ±32.
    let clip = SpnnConfig::default().feature_clip;
    assert!(
        data.max_abs_feature() > clip,
        "no feature reaches the clip {clip}: the test would not test clipping"
    );
    let roster = spnn::net::Roster::spnn(2, false).unwrap();
    let net = spnn::net::NetworkConfig::new(5).with_timeout(std::time::Duration::from_secs(600));
    let plain = plaintext(&data, &setup);
    let ss = spnn(
        &data,
        &setup,
        "SPNN-SS",
        SpnnConfig::default(),
        spnn::net::Network::in_memory(&roster, net),
    );
    assert!(
        (ss.auc - plain.auc).abs() < 0.005,
        "SPNN-SS {} against plaintext {}",
        ss.auc,
        plain.auc
    );
}
