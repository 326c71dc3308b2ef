//! What the server learns about the holders' features from what SPNN reveals by design — `Z`,
//! `G` and the learning rate of every step — and what the two defences buy: noise on `Z` and
//! Langevin (SGLD) noise on the weight updates, both added as shares by the holders. SPNN-SS
//! once per level; two attacks on the server's record: the Gram attack (features up to
//! rotation) and the learned inversion of a server that holds 1 % of the training rows; the
//! test AUC beside them. Census (with `--census DATA`) is not Gram-attacked, that attack's cost
//! growing with the square of the training rows.
//!
//! ```text
//! cargo run -p spnn-bench --release --example feature_leakage -- book/src/bench/features
//! cargo run -p spnn-bench --release --example feature_leakage -- book/src/bench/features --census data
//! ```
//!
//! Writes `results.md`, `results.json` and one trade-off plot per data set
//! (`tradeoff-<data>.png`) into the output directory (relative paths from the workspace root).

use spnn_bench::features::{Defence, Point, chance_r2, markdown, plot, run, truth};
use spnn_bench::systems::{Data, Setup};
use spnn_bench::{sweep_args, write_results};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let spnn_bench::SweepArgs { out, census } = sweep_args("feature_leakage")?;
    let setup = Setup::default();
    let data = Data::new(spnn::data::embedded::breast_cancer(), 2)?;
    let d = data.holders.iter().map(|t| t.cols()).sum();
    let base = chance_r2(&truth(&data), data.train.len(), d, 200, 5);
    // No defence, each noise alone, then both together.
    let sweep = |data: &Data, setup: &Setup, gram: bool, z: &[f32], sgld: &[f32]| -> Vec<Point> {
        let none = Defence {
            z_noise: 0.0,
            sgld: 0.0,
        };
        let both = [0.01, 0.03].map(|sgld| Defence {
            z_noise: spnn::burn::config::DEFAULT_Z_NOISE,
            sgld,
        });
        let defences = std::iter::once(none)
            .chain(z.iter().map(|&z_noise| Defence { z_noise, ..none }))
            .chain(sgld.iter().map(|&sgld| Defence { sgld, ..none }))
            .chain(both);
        defences
            .map(|defence| {
                let p = run(data, setup, defence, gram);
                println!(
                    "{defence:?}: test AUC {:.4}, Gram attack R² {:?} ({:.1} s), inversion R² {:.4} \
                     (baseline {:.4})",
                    p.test_auc, p.attack_r2, p.attack_seconds, p.inversion_r2, p.inversion_baseline
                );
                p
            })
            .collect()
    };
    let points = sweep(
        &data,
        &setup,
        true,
        &[0.003, 0.01, 0.03, 0.1, 0.3, 1.0],
        &[0.001, 0.003, 0.01, 0.03, 0.1, 0.3],
    );
    plot(
        &points,
        "Breast cancer",
        &out.join("tradeoff-breast-cancer.png"),
    )?;
    let mut md = format!(
        "### Breast cancer (15 + 15 features, 30-64-32-1, batch 64, 10 epochs, plain SGD)\n\n{}\n",
        markdown(&points, Some(base))
    );
    let mut json = vec![("breast-cancer", points)];
    if let Some((census, setup)) = census {
        let points = sweep(
            &census,
            &setup,
            false,
            &[0.03, 0.1, 0.2, 0.3, 1.0],
            &[0.001, 0.003, 0.01, 0.03, 0.1, 0.3],
        );
        plot(&points, "Census-Income", &out.join("tradeoff-census.png"))?;
        md.push_str(&format!(
            "### Census-Income (two holders, d-64-32-1, batch 256, 1 epoch, plain SGD; no Gram attack)\n\n{}",
            markdown(&points, None)
        ));
        json.push(("census", points));
    }
    write_results(&out, "results", &md, &json)?;
    println!("{md}");
    Ok(())
}
