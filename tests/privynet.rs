//! PrivyNet end to end. The quick start (`examples/privynet_quickstart.rs`) runs on the digits
//! compiled into the library, in every `cargo test`. The `privynet_fashion` example at its quick
//! size needs `SPNN_DATA_DIR` (scripts/fetch-data.sh): ignored by a plain `cargo test`, run by
//! CI with `--include-ignored`. Both check that the attack beats the mean image and that the
//! optimiser stays within its budget.

#[path = "../examples/privynet_fashion.rs"]
#[allow(dead_code)]
mod privynet_fashion;

#[path = "../examples/privynet_quickstart.rs"]
#[allow(dead_code)]
mod privynet_quickstart;

use spnn::privynet::experiment::{Characterisation, ExperimentConfig, Strategy};
use spnn::privynet::optimizer::{self, Budget, Decision};

/// At the widest c of every ℓ, the decoder that knows the channels beats the trivial
/// reconstruction (the public mean image) on both measures.
fn known_channel_attack_beats_the_mean_image(grid: &Characterisation, layers: &[usize]) {
    for &l in layers {
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
}

#[test]
fn the_quick_start_learns_attacks_and_picks_within_budget_on_the_embedded_digits() {
    let artifacts = tempfile::tempdir().unwrap();
    let config = ExperimentConfig::embedded();
    let run = privynet_quickstart::run(&config, artifacts.path()).unwrap();
    let grid = &run.grid;
    assert_eq!(
        grid.cells.len(),
        config.layers.len() * config.channels.len()
    );

    // Accuracies are measured on n images: "above chance" means by three standard errors of a
    // chance-level classifier. The source's held-out public digits are 0–4 (chance 1/5); so are
    // the owner's classes 5–9.
    let above_chance = |accuracy: f64, n: usize| {
        let p = 0.2;
        accuracy > p + 3.0 * (p * (1.0 - p) / n as f64).sqrt()
    };
    let held_out = 500 - config.pretrain_images;
    let source = grid.source_accuracy.unwrap();
    assert!(above_chance(source, held_out), "source {source}");
    for cell in &grid.cells {
        assert!(above_chance(cell.accuracy, config.owner_test), "{cell:?}");
    }

    known_channel_attack_beats_the_mean_image(grid, &config.layers);

    // The pick is within the budget, and no affordable topology within the privacy budget is
    // more accurate than it by more than two standard errors (the optimiser assumes accuracy
    // grows with c; a small grid need not show it).
    let Decision::Chosen(pick) = &run.outcome.decision else {
        panic!("the default budget admits a topology: {:?}", run.budget);
    };
    assert!(
        pick.psnr <= run.budget.max_psnr && run.budget.affords(&pick.cost),
        "{pick:?}"
    );
    let candidates: Vec<_> = grid.cells.iter().map(|c| c.topology).collect();
    let best = optimizer::brute_force(&candidates, &run.budget, &mut grid.table(Strategy::Random))
        .unwrap();
    let Decision::Chosen(best) = best.decision else {
        panic!("brute force finds what the hierarchical search found")
    };
    let se = (best.accuracy * (1.0 - best.accuracy) / config.owner_test as f64).sqrt();
    assert!(
        pick.accuracy >= best.accuracy - 2.0 * se,
        "{pick:?} vs {best:?}"
    );
}

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
        &Default::default(),
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

    known_channel_attack_beats_the_mean_image(grid, &config.layers);

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
