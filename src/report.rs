//! The benchmark suite's outputs: scalability measurements, peak memory, a markdown table, JSON,
//! and PNG plots (plotters, text drawn with an embedded font so no system font library is
//! needed).

use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;
use spnn_burn::SpnnConfig;
use spnn_net::{Network, NetworkConfig, Roster};

use crate::bench::{Data, Row, Setup, split_learning, spnn};

static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSansMono.ttf");

/// One scalability measurement: seconds per epoch of plain split learning and SPNN-SS at one
/// value of one parameter, the others at their base values.
#[derive(Clone, Debug, Serialize)]
pub struct ScalePoint {
    /// `rows`, `features`, `width` or `holders`.
    pub axis: String,
    /// The parameter's value.
    pub value: usize,
    /// Plain split learning, seconds per epoch.
    pub split_learning: f64,
    /// SPNN-SS in memory, seconds per epoch.
    pub spnn_ss: f64,
}

/// Resets the process's peak resident memory (Linux `clear_refs`), so the next reading of
/// [`peak_rss_mb`] covers only what follows.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident memory since the last reset, in MB (0 where `/proc` is unavailable).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// SPNN-SS against plain split learning on synthetic data while one parameter varies: the
/// shape of SPNN's scalability figures. Base: 5000 rows, 40 features, first-layer width 64,
/// two holders, batch 256, one epoch.
pub fn scalability() -> Vec<ScalePoint> {
    let axes: [(&str, &[usize]); 4] = [
        ("rows", &[2_500, 5_000, 10_000, 20_000]),
        ("features", &[10, 20, 40, 80]),
        ("width", &[16, 32, 64, 128]),
        ("holders", &[2, 3, 4]),
    ];
    let mut points = Vec::new();
    for (axis, values) in axes {
        for &v in values {
            let (mut rows, mut features, mut width, mut holders) = (5_000, 40, 64, 2);
            match axis {
                "rows" => rows = v,
                "features" => features = v,
                "width" => width = v,
                _ => holders = v,
            }
            let setup = Setup {
                widths: [width, 32],
                batch: 256,
                epochs: 1,
                lr: 0.1,
                holders,
            };
            let data =
                Data::synthetic(rows * 5 / 4, features, holders, 11).expect("synthetic data");
            let roster = Roster::spnn(holders as u16, false).expect("k ≥ 2");
            let net = NetworkConfig::new(30).with_timeout(std::time::Duration::from_secs(600));
            let split = split_learning(&data, &setup).seconds_per_epoch;
            let ss = spnn(
                &data,
                &setup,
                "SPNN-SS",
                SpnnConfig::default(),
                Network::in_memory(&roster, net),
            )
            .seconds_per_epoch;
            points.push(ScalePoint {
                axis: axis.into(),
                value: v,
                split_learning: split,
                spnn_ss: ss,
            });
        }
    }
    points
}

/// Everything the suite measured, as written to `results.json`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Data set name → its rows.
    pub tables: Vec<(String, Vec<Row>)>,
    /// The scalability measurements.
    pub scalability: Vec<ScalePoint>,
}

/// Writes `results.md`, `results.json` and one `scalability-<axis>.png` per axis into `dir`.
pub fn write(report: &Report, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut md = String::new();
    for (name, rows) in &report.tables {
        md += &format!("## {name}\n\n{}\n", crate::bench::markdown(rows));
    }
    md += "## Scalability (synthetic; base 5000 rows, 40 features, width 64, 2 holders, batch 256)\n\n| parameter | value | split learning s / epoch | SPNN-SS s / epoch | ratio |\n|---|---|---|---|---|\n";
    for p in &report.scalability {
        md += &format!(
            "| {} | {} | {:.3} | {:.3} | {:.1} |\n",
            p.axis,
            p.value,
            p.split_learning,
            p.spnn_ss,
            p.spnn_ss / p.split_learning
        );
    }
    std::fs::write(dir.join("results.md"), md)?;
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(report).expect("plain data"),
    )?;
    for axis in ["rows", "features", "width", "holders"] {
        let pts: Vec<&ScalePoint> = report
            .scalability
            .iter()
            .filter(|p| p.axis == axis)
            .collect();
        if !pts.is_empty() {
            plot(&pts, axis, &dir.join(format!("scalability-{axis}.png")))
                .map_err(|e| std::io::Error::other(e.to_string()))?;
        }
    }
    Ok(())
}

/// A plotted line: its label, colour and value.
type Series = (&'static str, RGBColor, fn(&ScalePoint) -> f64);

fn plot(points: &[&ScalePoint], axis: &str, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    let root = BitMapBackend::new(path, (720, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let x_max = points.iter().map(|p| p.value).max().unwrap_or(1) as f64 * 1.05;
    let y_max = points
        .iter()
        .map(|p| p.spnn_ss.max(p.split_learning))
        .fold(0.0, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("Time per epoch against {axis}"), ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max.max(1e-3))?;
    chart
        .configure_mesh()
        .x_desc(axis)
        .y_desc("seconds per epoch")
        .label_style(("sans-serif", 14))
        .draw()?;
    let series: [Series; 2] = [
        ("SPNN-SS", RED, |p| p.spnn_ss),
        ("plain split learning", BLUE, |p| p.split_learning),
    ];
    for (name, color, f) in series {
        let data: Vec<(f64, f64)> = points.iter().map(|p| (p.value as f64, f(p))).collect();
        chart
            .draw_series(LineSeries::new(data.clone(), color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(
            data.into_iter()
                .map(|xy| Circle::new(xy, 4, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
