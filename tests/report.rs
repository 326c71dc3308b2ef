//! The benchmark suite's report files: markdown, JSON that parses back, and real PNG plots.

use spnn_bench::report::{Report, ScalePoint, write};
use spnn_bench::systems::Row;

#[test]
fn the_report_writes_markdown_json_and_png_plots() {
    let row = |system: &str, s: f64| Row {
        system: system.into(),
        seconds_per_epoch: s,
        auc: 0.99,
        bytes_per_epoch: 1000,
        rounds_per_epoch: 8,
        paillier_per_batch: None,
        peak_rss_mb: 12.0,
    };
    let scalability = ["rows", "features", "width", "holders"]
        .iter()
        .flat_map(|axis| {
            [2, 3, 4].map(|v| ScalePoint {
                axis: axis.to_string(),
                value: v,
                split_learning: 0.1 * v as f64,
                spnn_ss: 0.5 * v as f64,
            })
        })
        .collect();
    let report = Report {
        tables: vec![(
            "demo".into(),
            vec![row("plaintext", 0.01), row("SPNN-SS", 0.05)],
        )],
        scalability,
    };
    let dir = tempfile::tempdir().unwrap();
    write(&report, dir.path()).unwrap();
    let md = std::fs::read_to_string(dir.path().join("results.md")).unwrap();
    assert!(md.contains("| SPNN-SS | 0.0500 | 5.0 |"), "{md}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("results.json")).unwrap())
            .unwrap();
    assert_eq!(json["scalability"].as_array().unwrap().len(), 12);
    for axis in ["rows", "features", "width", "holders"] {
        let png = std::fs::read(dir.path().join(format!("scalability-{axis}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{axis}");
        assert!(
            png.len() > 5_000,
            "{axis}: a {}-byte image has no content",
            png.len()
        );
    }
}
