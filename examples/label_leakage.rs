//! What the server learns about the label holder's training labels, and what each defence buys:
//! SPNN-SS training with the labels at holder 0 behind its own top layer, once per defence
//! setting; the norm and direction attacks run on every gradient the server received; the test
//! AUC as the label holder recorded it.
//!
//! ```text
//! cargo run -p spnn-bench --release --example label_leakage -- book/src/bench/labels
//! cargo run -p spnn-bench --release --example label_leakage -- book/src/bench/labels --census data
//! cargo run -p spnn-bench --release --example label_leakage -- book/src/bench/labels --digits
//! ```
//!
//! Writes `results.md`, `results.json` and one `tradeoff-*.png` per data set into the output
//! directory (relative paths from the workspace root). With `--digits`, ten classes instead:
//! the 1,000 embedded MNIST digits (392 + 392 pixels, 784-64-32 at the server, 32-10 at the
//! label holder, batch 64, 15 epochs), the clustering attack against each defence, written to
//! `digits.md` and `digits.json`.

use spnn_bench::labels::{Point, class_markdown, markdown, plot, sweep, sweep_classes};
use spnn_bench::systems::{Data, Setup};
use spnn_bench::{sweep_args, write_results};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let spnn_bench::SweepArgs { out, census } = sweep_args("label_leakage")?;
    if std::env::args().any(|a| a == "--digits") {
        let table = spnn::data::embedded::mnist_1000_table();
        let data = Data::from_partitioned(spnn::data::packaged::Partitioned::even_unscaled(
            &table, 2, 0.2, 42,
        )?);
        let setup = Setup {
            epochs: 15,
            ..Setup::default()
        };
        let points = sweep_classes(&data, &setup, 10);
        let md = class_markdown(&points);
        write_results(&out, "digits", &md, &points)?;
        println!("{md}");
        return Ok(());
    }
    let mut sets: Vec<(&str, &str, Data, Setup)> = vec![(
        "breast-cancer",
        "Breast cancer (15 + 15 features, 30-64-32 at the server, 32-1 at the label holder, batch 64, 10 epochs)",
        Data::new(spnn::data::embedded::breast_cancer(), 2)?,
        Setup::default(),
    )];
    if let Some((data, setup)) = census {
        sets.push((
            "census",
            "Census-Income (two holders, d-64-32 at the server, 32-1 at the label holder, batch 256, 1 epoch)",
            data,
            setup,
        ));
    }
    let mut md = String::new();
    let mut json: Vec<(&str, Vec<Point>)> = Vec::new();
    for (name, title, data, setup) in &sets {
        println!("## {title}");
        let points = sweep(data, setup);
        md.push_str(&format!("### {title}\n\n{}\n", markdown(&points)));
        plot(
            &points,
            &format!("Label leakage: {name}"),
            &out.join(format!("tradeoff-{name}.png")),
        )?;
        json.push((name, points));
    }
    write_results(&out, "results", &md, &json)?;
    println!("{md}");
    Ok(())
}
