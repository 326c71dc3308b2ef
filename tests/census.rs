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

/// Burn's Adam on shares on Census-Income: the same AUC as plaintext Burn's Adam from the same
/// data, batches and learning rate (module `spnn_burn::protocol::adam`).
#[test]
#[ignore = "needs scripts/fetch-data.sh; set SPNN_DATA_DIR"]
fn adam_on_shares_matches_plaintext_adam_on_census() {
    let dir = std::env::var_os("SPNN_DATA_DIR")
        .expect("SPNN_DATA_DIR is not set: run scripts/fetch-data.sh DIR and set it to DIR");
    let p = spnn::data::packaged::census::load(dir.as_ref(), 2).unwrap();
    let data = Data::from_partitioned(p);
    let setup = Setup {
        batch: 256,
        epochs: 1,
        lr: 0.001,
        adam: Some(spnn::burn::AdamParams {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-5,
        }),
        ..Default::default()
    };
    let roster = spnn::net::Roster::spnn(2, false).unwrap();
    let net = spnn::net::NetworkConfig::new(6).with_timeout(std::time::Duration::from_secs(600));
    let plain = plaintext(&data, &setup);
    let ss = spnn(
        &data,
        &setup,
        "SPNN-SS, Adam",
        SpnnConfig::default(),
        spnn::net::Network::in_memory(&roster, net),
    );
    println!(
        "Census, Adam: AUC SPNN-SS {:.5} ({:.1} s/epoch), plaintext {:.5} ({:.2} s/epoch)",
        ss.auc, ss.seconds_per_epoch, plain.auc, plain.seconds_per_epoch
    );
    assert!(plain.auc > 0.85, "the plaintext baseline must learn: {}", plain.auc);
    assert!(
        (ss.auc - plain.auc).abs() < 0.005,
        "SPNN-SS {} against plaintext {}",
        ss.auc,
        plain.auc
    );
}
