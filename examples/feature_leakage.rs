//! What the server learns about the holders' features from what SPNN reveals by design — `Z`,
//! `G` and the learning rate of every step — and what noise on `Z` (added as shares by the
//! holders) buys: SPNN-SS once per noise level, the Gram attack on the server's record
//! (features up to rotation), the test AUC beside it. Breast cancer is attacked; census (with
//! `--census DATA`) measures the accuracy cost only, the attack's cost growing with the square
//! of the training rows.
//!
//! ```text
//! cargo run -p spnn-bench --release --example feature_leakage -- book/src/bench/features
//! cargo run -p spnn-bench --release --example feature_leakage -- book/src/bench/features --census data
//! ```
//!
//! Writes `results.md` and `results.json` into the output directory (relative paths from the
//! workspace root).

use spnn_bench::features::{Point, chance_r2, markdown, run, truth};
use spnn_bench::sweep_args;
use spnn_bench::systems::{Data, Setup};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let spnn_bench::SweepArgs { out, census } = sweep_args("feature_leakage")?;
    let setup = Setup::default();
    let data = Data::new(spnn::data::embedded::breast_cancer(), 2)?;
    let d = data.holders.iter().map(|t| t.cols()).sum();
    let base = chance_r2(&truth(&data), data.train.len(), d, 200, 5);
    let sweep = |data: &Data, setup: &Setup, levels: &[f32], attack: bool| -> Vec<Point> {
        levels
            .iter()
            .map(|&z_noise| {
                let p = run(data, setup, z_noise, attack);
                println!(
                    "z_noise {z_noise}: test AUC {:.4}, Gram attack R² {:?} ({:.1} s)",
                    p.test_auc, p.attack_r2, p.attack_seconds
                );
                p
            })
            .collect()
    };
    let points = sweep(
        &data,
        &setup,
        &[0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0],
        true,
    );
    let mut md = format!(
        "### Breast cancer (15 + 15 features, 30-64-32-1, batch 64, 10 epochs, plain SGD)\n\n{}\n",
        markdown(&points, Some(base))
    );
    let mut json = vec![("breast-cancer", points)];
    if let Some((census, setup)) = census {
        let points = sweep(&census, &setup, &[0.0, 0.03, 0.1, 0.3, 1.0], false);
        md.push_str(&format!(
            "### Census-Income (two holders, d-64-32-1, batch 256, 1 epoch, plain SGD; not attacked)\n\n{}",
            markdown(&points, None)
        ));
        json.push(("census", points));
    }
    std::fs::write(out.join("results.md"), &md)?;
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    println!("{md}");
    Ok(())
}
