//! The benchmark suite's outputs: scalability measurements, peak memory, a markdown table, JSON,
//! and PNG plots (plotters, text drawn with an embedded font so no system font library is
//! needed).

use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;
use spnn_burn::SpnnConfig;
use spnn_net::{Network, NetworkConfig, Roster};

use crate::systems::{Data, Row, Setup, split_learning, spnn};

pub(crate) static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSansMono.ttf");

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
                ..Setup::default()
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
        md += &format!("### {name}\n\n{}\n", crate::systems::markdown(rows));
    }
    md += "### Scalability (synthetic; base 5000 rows, 40 features, width 64, 2 holders, batch 256)\n\n| parameter | value | split learning s / epoch | SPNN-SS s / epoch | ratio |\n|---|---|---|---|---|\n";
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
    crate::write_results(dir, "results", &md, report)?;
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

/// Writes PrivyNet's outputs into `dir`: `results.json` (the characterised grid, the budget and
/// the optimiser's outcome), `results.md` (the grid as a table), `tradeoff.png` (accuracy
/// against privacy loss per ℓ, with the budget and the pick) and `reconstructions.png` (the
/// owner's first test images against the attacker's reconstructions).
pub fn privynet(
    grid: &spnn_privynet::experiment::Characterisation,
    budget: &spnn_privynet::Budget,
    outcome: &spnn_privynet::optimizer::Outcome,
    originals: &spnn_privynet::ImageSet,
    dir: &Path,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::json!({ "grid": grid, "budget": budget, "hierarchical": outcome });
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string(&json).expect("plain data"),
    )?;
    std::fs::write(dir.join("results.md"), privynet_markdown(grid))?;
    let pick = match &outcome.decision {
        spnn_privynet::Decision::Chosen(p) => Some(p.topology),
        spnn_privynet::Decision::NoFeasibleTopology { .. } => None,
    };
    let plot_err = |e: Box<dyn std::error::Error>| std::io::Error::other(e.to_string());
    tradeoff(grid, budget, pick, &dir.join("tradeoff.png")).map_err(plot_err)?;
    reconstruction_grid(grid, originals, &dir.join("reconstructions.png")).map_err(plot_err)
}

/// The characterised grid as a markdown table.
pub fn privynet_markdown(grid: &spnn_privynet::experiment::Characterisation) -> String {
    let source = grid.source_accuracy.map_or("imported weights".into(), |a| {
        format!("source network accuracy on held-out digits {a:.3}")
    });
    let mut md = format!(
        "{source}; mean-image baseline PSNR {:.2} dB, SSIM {:.3}.\n\n| ℓ | c | strategy | \
         accuracy | PSNR known | SSIM known | PSNR guessed | SSIM guessed | MACs / image | \
         parameter bytes |\n|---|---|---|---|---|---|---|---|---|---|\n",
        grid.baseline.psnr, grid.baseline.ssim
    );
    for c in &grid.cells {
        md += &format!(
            "| {} | {} | {:?} | {:.3} | {:.2} | {:.3} | {:.2} | {:.3} | {} | {} |\n",
            c.topology.layers,
            c.topology.channels,
            c.strategy,
            c.accuracy,
            c.known.psnr,
            c.known.ssim,
            c.unknown.psnr,
            c.unknown.ssim,
            c.cost.macs_per_image,
            c.cost.param_bytes
        );
    }
    md
}

const LAYER_COLOURS: [RGBColor; 5] = [RED, BLUE, GREEN, MAGENTA, CYAN];

/// One line of a trade-off chart: its name and its points `(x, model metric, label)`.
pub(crate) struct TradeoffSeries {
    pub name: String,
    pub points: Vec<(f64, f64, String)>,
}

/// A defence trade-off: the model's metric (y) against an attack's success (x), one line per
/// series, each point labelled with its level. A diverged run would squash the rest, so the
/// y axis shows at most 0.3 below the best and lower points sit on its bottom edge with their
/// value in the label.
pub(crate) fn tradeoff_chart(
    title: &str,
    (x_desc, x_range): (&str, std::ops::Range<f64>),
    y_desc: &str,
    series: &[TradeoffSeries],
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    let root = BitMapBackend::new(path, (820, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let ys = || series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let y1 = ys().fold(0.0, f64::max);
    let y0 = ys().fold(1.0, f64::min).min(y1 - 0.02).max(y1 - 0.3);
    let pad = (y1 - y0) * 0.1;
    let shown = |y: f64| y.max(y0 - pad / 2.0);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d(x_range, (y0 - pad)..(y1 + pad))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(("sans-serif", 14))
        .draw()?;
    for (i, s) in series.iter().enumerate() {
        let colour = [BLACK, BLUE, MAGENTA, RED, GREEN][i % 5];
        let xy: Vec<(f64, f64)> = s.points.iter().map(|p| (p.0, shown(p.1))).collect();
        chart
            .draw_series(LineSeries::new(xy, colour.stroke_width(2)))?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
        chart.draw_series(s.points.iter().map(|(x, y, label)| {
            let label = if *y < y0 {
                format!("{label} ({y_desc} {y:.2})")
            } else {
                label.clone()
            };
            EmptyElement::at((*x, shown(*y)))
                + Circle::new((0, 0), 4, colour.filled())
                + Text::new(label, (6, -14), ("sans-serif", 12))
        }))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .label_font(("sans-serif", 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn tradeoff(
    grid: &spnn_privynet::experiment::Characterisation,
    budget: &spnn_privynet::Budget,
    pick: Option<spnn_privynet::Topology>,
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    use spnn_privynet::experiment::Strategy;
    let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    let root = BitMapBackend::new(path, (820, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let psnr = |c: &spnn_privynet::experiment::Cell| c.privacy_loss().psnr;
    let (mut x0, mut x1) = (grid.baseline.psnr, grid.baseline.psnr);
    for c in &grid.cells {
        x0 = x0.min(psnr(c));
        x1 = x1.max(psnr(c));
    }
    let pad = (x1 - x0).max(1.0) * 0.08;
    let y1 = grid.cells.iter().map(|c| c.accuracy).fold(0.0, f64::max);
    // A failed cell (e.g. a dead channel at chance accuracy) would squash the rest: show at
    // most 0.25 below the best, and draw lower cells on the bottom edge with their value.
    let y0 = grid
        .cells
        .iter()
        .map(|c| c.accuracy)
        .fold(1.0, f64::min)
        .max(y1 - 0.25);
    let ypad = (y1 - y0).max(0.02) * 0.1;
    let shown = |c: &spnn_privynet::experiment::Cell| c.accuracy.max(y0 - ypad / 2.0);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "PrivyNet: accuracy against privacy loss",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d((x0 - pad)..(x1 + pad), (y0 - ypad)..(y1 + ypad))?;
    chart
        .configure_mesh()
        .x_desc("attacker's PSNR on private images, dB (higher = more leakage)")
        .y_desc("cloud accuracy")
        .label_style(("sans-serif", 14))
        .draw()?;
    let vline = |x: f64| vec![(x, y0 - ypad), (x, y1 + ypad)];
    chart
        .draw_series(LineSeries::new(
            vline(budget.max_psnr),
            BLACK.stroke_width(1),
        ))?
        .label("PSNR budget")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    chart
        .draw_series(LineSeries::new(
            vline(grid.baseline.psnr),
            RGBColor(150, 150, 150),
        ))?
        .label("mean-image baseline")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RGBColor(150, 150, 150)));
    let mut layers: Vec<usize> = grid.cells.iter().map(|c| c.topology.layers).collect();
    layers.sort_unstable();
    layers.dedup();
    for (i, &l) in layers.iter().enumerate() {
        let colour = LAYER_COLOURS[i % LAYER_COLOURS.len()];
        for strategy in [Strategy::Random, Strategy::Ranked] {
            let cells: Vec<_> = grid
                .cells
                .iter()
                .filter(|c| c.topology.layers == l && c.strategy == strategy)
                .collect();
            if cells.is_empty() {
                continue;
            }
            let pts: Vec<(f64, f64)> = cells.iter().map(|c| (psnr(c), shown(c))).collect();
            let style = if strategy == Strategy::Random {
                colour.stroke_width(2)
            } else {
                colour.mix(0.5).stroke_width(1)
            };
            chart
                .draw_series(LineSeries::new(pts.clone(), style))?
                .label(format!("{l} layer(s), {strategy:?} channels"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            chart.draw_series(cells.iter().map(|c| {
                let xy = (psnr(c), shown(c));
                let label = if c.accuracy < y0 {
                    format!("c={} (accuracy {:.2})", c.topology.channels, c.accuracy)
                } else {
                    format!("c={}", c.topology.channels)
                };
                EmptyElement::at(xy)
                    + Circle::new((0, 0), 4, colour.filled())
                    + Text::new(label, (6, -14), ("sans-serif", 12))
            }))?;
        }
    }
    if let Some(t) = pick
        && let Some(c) = grid
            .cells
            .iter()
            .find(|c| c.topology == t && c.strategy == Strategy::Random)
    {
        chart
            .draw_series(std::iter::once(Circle::new(
                (psnr(c), shown(c)),
                9,
                BLACK.stroke_width(2),
            )))?
            .label("optimiser's pick")
            .legend(|(x, y)| Circle::new((x + 10, y), 5, BLACK.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn reconstruction_grid(
    grid: &spnn_privynet::experiment::Characterisation,
    originals: &spnn_privynet::ImageSet,
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    use spnn_privynet::experiment::{SAMPLE_IMAGES, Strategy};
    use spnn_privynet::images::{PIXELS, SIDE};
    const SCALE: usize = 3;
    const CELL: usize = SIDE * SCALE + 4;
    const LABEL: usize = 220;
    let shown = SAMPLE_IMAGES.min(originals.len());
    // The widest c of each ℓ (random selection): known and guessed channels.
    let mut rows: Vec<(String, Vec<f32>)> = vec![(
        "original".into(),
        originals.pixels()[..shown * PIXELS].to_vec(),
    )];
    let mut layers: Vec<usize> = grid.cells.iter().map(|c| c.topology.layers).collect();
    layers.sort_unstable();
    layers.dedup();
    for l in layers {
        if let Some(r) = grid
            .reconstructions
            .iter()
            .filter(|r| r.topology.layers == l && r.strategy == Strategy::Random)
            .max_by_key(|r| r.topology.channels)
        {
            let c = r.topology.channels;
            // The embedded font has no ℓ: spell it out.
            rows.push((format!("layers={l} c={c} known"), r.known.clone()));
            rows.push((format!("layers={l} c={c} guessed"), r.unknown.clone()));
        }
    }
    let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    let size = (
        (LABEL + shown * CELL) as u32,
        (rows.len() * CELL + 8) as u32,
    );
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    for (r, (label, pixels)) in rows.iter().enumerate() {
        let top = (r * CELL + 4) as i32;
        root.draw(&Text::new(
            label.clone(),
            (8, top + (CELL / 2) as i32 - 8),
            ("sans-serif", 15),
        ))?;
        for i in 0..shown.min(pixels.len() / PIXELS) {
            let left = (LABEL + i * CELL) as i32;
            for (p, &v) in pixels[i * PIXELS..(i + 1) * PIXELS].iter().enumerate() {
                let g = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                let (y, x) = ((p / SIDE * SCALE) as i32, (p % SIDE * SCALE) as i32);
                root.draw(&Rectangle::new(
                    [
                        (left + x, top + y),
                        (left + x + SCALE as i32, top + y + SCALE as i32),
                    ],
                    RGBColor(g, g, g).filled(),
                ))?;
            }
        }
    }
    root.present()?;
    Ok(())
}
