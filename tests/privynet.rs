//! PrivyNet end to end on the real data sets at the quick size (the `privynet_fashion`
//! example): the attack beats the mean-image baseline, the optimiser stays within its budgets,
//! and the outputs are written. Needs `SPNN_DATA_DIR` (scripts/fetch-data.sh): ignored by a plain
//! `cargo test`, run by CI with `--ignored`.

#[path = "../examples/privynet_fashion.rs"]
#[allow(dead_code)]
mod privynet_fashion;

use spnn::privynet::experiment::{ExperimentConfig, Strategy};
use spnn::privynet::optimizer::{self, Budget, Decision};

#[test]
#[ignore = "needs scripts/fetch-data.sh; set SPNN_DATA_DIR"]
fn privynet_quick_run_attacks_better_than_the_mean_image_and_picks_within_budget() {
    let data = std::env::var_os("SPNN_DATA_DIR")
        .expect("SPNN_DATA_DIR is not set: run scripts/fetch-data.sh DIR and set it to DIR");
    let out = tempfile::tempdir().unwrap();
    let config = ExperimentConfig::quick();
    let s = privynet_fashion::run(
        &config,
        data.as_ref(),
        None,
        &privynet_fashion::Limits::default(),
        out.path(),
    )
    .unwrap();
    let grid = &s.grid;

    // The source network learned its public task (chance is 0.1).
    assert!(
        grid.source_accuracy.unwrap() > 0.5,
        "{:?}",
        grid.source_accuracy
    );

    // At the widest c of every ℓ, the decoder that knows the channels beats the trivial
    // reconstruction (the public mean image) on both measures.
    for &l in &config.layers {
        let widest = grid
            .cells
            .iter()
            .filter(|c| c.topology.layers == l)
            .max_by_key(|c| c.topology.channels)
            .unwrap();
        assert!(
            widest.known.psnr > grid.baseline.psnr,
            "{widest:?} vs {:?}",
            grid.baseline
        );
        assert!(
            widest.known.ssim > grid.baseline.ssim,
            "{widest:?} vs {:?}",
            grid.baseline
        );
    }

    // Both searches stay within the budget; PrivyNet's hierarchical pick is as accurate as the
    // brute-force one up to the sampling error of an accuracy measured on n test images
    // (two standard errors, sqrt(p(1-p)/n)), with fewer trainings.
    let n = config.owner_test as f64;
    let (Decision::Chosen(h), Decision::Chosen(b)) =
        (&s.hierarchical.decision, &s.brute_force.decision)
    else {
        panic!(
            "the default budget admits the baseline-level topologies: {:?}",
            s.budget
        );
    };
    for p in [h, b] {
        assert!(
            p.psnr <= s.budget.max_psnr && s.budget.affords(&p.cost),
            "{p:?}"
        );
    }
    let se = (b.accuracy * (1.0 - b.accuracy) / n).sqrt();
    assert!(h.accuracy >= b.accuracy - 2.0 * se, "{h:?} vs {b:?}");
    assert!(
        s.hierarchical.privacy_evaluations + s.hierarchical.accuracy_evaluations
            < s.brute_force.privacy_evaluations + s.brute_force.accuracy_evaluations
    );

    // A budget below every measured PSNR is a clear "no feasible topology".
    let strict = Budget {
        max_psnr: grid
            .cells
            .iter()
            .map(|c| c.unknown.psnr)
            .fold(f64::MAX, f64::min)
            - 1.0,
        ..s.budget
    };
    let candidates = config.candidates(&[16, 16, 32, 32]);
    let none =
        optimizer::hierarchical(&candidates, &strict, &mut grid.table(Strategy::Random)).unwrap();
    assert!(
        matches!(none.decision, Decision::NoFeasibleTopology { .. }),
        "{none:?}"
    );

    // The owner's upload: a 20-byte header and c·h·w f32 per image, nothing else.
    let source = spnn::privynet::SourceConfig::default()
        .init(&burn::tensor::Device::flex())
        .unwrap();
    let images = s.grid.reconstructions.len().min(3);
    let few =
        spnn::privynet::ImageSet::from_pixels(vec![0.5; images * 784], vec![0; images]).unwrap();
    let bytes = privynet_fashion::owner_upload(&source.stages, 2, 4, &few).unwrap();
    assert_eq!(bytes.len(), 20 + 4 * images * 4 * 14 * 14);

    // The outputs.
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("results.json")).unwrap()).unwrap();
    assert_eq!(
        json["grid"]["cells"].as_array().unwrap().len(),
        grid.cells.len()
    );
    for png in ["tradeoff.png", "reconstructions.png"] {
        let bytes = std::fs::read(out.path().join(png)).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{png}");
    }
}
