//! Data compiled into the binary, so the default example needs no files.

use crate::error::{DataError, Result};
use crate::table::Table;

const BREAST_CANCER_CSV: &str = include_str!("../data/breast_cancer.csv");
const MNIST_1000_IMAGES: &[u8] = include_bytes!("../data/mnist_1000-images-idx3-ubyte.gz");
const MNIST_1000_LABELS: &[u8] = include_bytes!("../data/mnist_1000-labels-idx1-ubyte.gz");

/// Digits per class in [`mnist_1000`].
pub const MNIST_1000_PER_CLASS: usize = 100;

/// The 30 feature names of the breast-cancer data, in file order.
pub const BREAST_CANCER_COLUMNS: [&str; 30] = [
    "mean_radius",
    "mean_texture",
    "mean_perimeter",
    "mean_area",
    "mean_smoothness",
    "mean_compactness",
    "mean_concavity",
    "mean_concave_points",
    "mean_symmetry",
    "mean_fractal_dimension",
    "radius_error",
    "texture_error",
    "perimeter_error",
    "area_error",
    "smoothness_error",
    "compactness_error",
    "concavity_error",
    "concave_points_error",
    "symmetry_error",
    "fractal_dimension_error",
    "worst_radius",
    "worst_texture",
    "worst_perimeter",
    "worst_area",
    "worst_smoothness",
    "worst_compactness",
    "worst_concavity",
    "worst_concave_points",
    "worst_symmetry",
    "worst_fractal_dimension",
];

/// Breast Cancer Wisconsin (Diagnostic): 569 samples × 30 features, label 1 = benign (357),
/// 0 = malignant (212). Sample ids are `0..569` in file order. Source and licence:
/// `crates/spnn-data/data/README.md`.
pub fn breast_cancer() -> Table {
    parse_breast_cancer(BREAST_CANCER_CSV).expect("the embedded file is checked by the tests")
}

/// 1000 MNIST digits, the first 100 of each class of the 5000-digit MNIST file
/// `scripts/fetch-data.sh` fetches, as `(images, labels)`: 784 bytes (28×28, row-major,
/// 0..=255) per image, one label 0..=9 per image, sorted by class. Source, recipe and licence:
/// `crates/spnn-data/data/README.md`.
pub fn mnist_1000() -> (Vec<u8>, Vec<u8>) {
    let images = crate::idx::parse_idx_gz(MNIST_1000_IMAGES, "mnist_1000-images")
        .expect("the embedded file is checked by the tests");
    let labels = crate::idx::parse_idx_gz(MNIST_1000_LABELS, "mnist_1000-labels")
        .expect("the embedded file is checked by the tests");
    (images.data, labels.data)
}

/// [`mnist_1000`] as a table: ids `0..1000`, the 784 pixels `px0 … px783` scaled to `[0, 1]`,
/// the digit as the label.
pub fn mnist_1000_table() -> Table {
    let (pixels, digits) = mnist_1000();
    let ids = (0..digits.len() as u64).collect();
    let columns = (0..784).map(|i| format!("px{i}")).collect();
    let data = pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
    let labels = digits.iter().map(|&y| f32::from(y)).collect();
    Table::new(ids, columns, data, Some(labels)).expect("the embedded file is checked by the tests")
}

fn parse_breast_cancer(text: &str) -> Result<Table> {
    let file = "breast_cancer.csv";
    let mut lines = text.lines().enumerate();
    let (_, header) = lines.next().ok_or_else(|| DataError::Parse {
        file: file.into(),
        line: 1,
        reason: "empty file".into(),
    })?;
    let n: usize = header
        .split(',')
        .next()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| DataError::Parse {
            file: file.into(),
            line: 1,
            reason: "header does not start with the sample count".into(),
        })?;
    let mut data = Vec::with_capacity(n * 30);
    let mut labels = Vec::with_capacity(n);
    for (i, line) in lines {
        let fields: Vec<&str> = line.split(',').collect();
        let err = |reason: String| DataError::Parse {
            file: file.into(),
            line: i + 1,
            reason,
        };
        if fields.len() != 31 {
            return Err(err(format!("{} fields, expected 31", fields.len())));
        }
        for f in &fields[..30] {
            data.push(
                f.trim()
                    .parse::<f32>()
                    .map_err(|e| err(format!("{f:?}: {e}")))?,
            );
        }
        labels.push(
            fields[30]
                .trim()
                .parse::<f32>()
                .map_err(|e| err(format!("label: {e}")))?,
        );
    }
    if labels.len() != n {
        return Err(DataError::Invalid(format!(
            "{file}: header says {n} rows, found {}",
            labels.len()
        )));
    }
    Table::new(
        (0..n as u64).collect(),
        BREAST_CANCER_COLUMNS
            .iter()
            .map(|s| s.to_string())
            .collect(),
        data,
        Some(labels),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breast_cancer_has_the_published_shape_and_balance() {
        let t = breast_cancer();
        assert_eq!((t.rows(), t.cols()), (569, 30));
        let labels = t.labels().unwrap();
        assert_eq!(labels.iter().filter(|&&y| y == 1.0).count(), 357);
        assert_eq!(labels.iter().filter(|&&y| y == 0.0).count(), 212);
        assert_eq!(&t.features(0).unwrap()[..4], &[17.99, 10.38, 122.8, 1001.0]);
    }

    #[test]
    fn the_embedded_digits_are_100_per_class_in_class_order() {
        let (images, labels) = mnist_1000();
        assert_eq!((images.len(), labels.len()), (1000 * 784, 1000));
        for (class, chunk) in labels.chunks(MNIST_1000_PER_CLASS).enumerate() {
            assert!(chunk.iter().all(|&y| y as usize == class), "class {class}");
        }
        // Real strokes, not blank images: every digit has ink and background.
        for image in images.chunks(784) {
            let ink = image.iter().filter(|&&p| p > 128).count();
            assert!((20..500).contains(&ink), "{ink} inked pixels");
        }
    }

    /// The table holds the same digits, scaled, and an unscaled partition keeps them as they are.
    #[test]
    fn the_digits_table_scales_the_pixels_and_partitions_unscaled() {
        let (images, labels) = mnist_1000();
        let t = mnist_1000_table();
        assert_eq!((t.rows(), t.cols()), (1000, 784));
        assert_eq!(
            t.features(3).unwrap()[300],
            f32::from(images[3 * 784 + 300]) / 255.0
        );
        assert_eq!(t.labels().unwrap()[999], f32::from(labels[999]));
        let p = crate::packaged::Partitioned::even_unscaled(&t, 2, 0.2, 1).unwrap();
        assert_eq!((p.train.len(), p.test.len()), (800, 200));
        let joined = Table::join_columns(&p.holders).unwrap();
        assert_eq!(joined.data(), t.data());
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let bad = "2,30,a,b\n".to_string() + &"1,".repeat(30) + "0\n1,2\n";
        let e = parse_breast_cancer(&bad).unwrap_err().to_string();
        assert!(e.contains("breast_cancer.csv:3"), "{e}");
    }
}
