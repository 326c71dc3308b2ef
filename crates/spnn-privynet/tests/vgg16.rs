//! Loading the VGG16 front from a safetensors file in the layout that
//! `scripts/h5_to_safetensors.py` writes (Keras names, OIHW kernels).

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::{Device, Tensor};
use spnn_privynet::images::ImageSet;
use spnn_privynet::vgg16::{BGR_MEAN, Vgg16Front};
use spnn_privynet::{ChannelSelection, InputFormat, LocalExtractor};

/// The eight tensors: (name, shape); values are a distinct function of (tensor, index).
const TENSORS: [(&str, &[usize]); 8] = [
    ("block1.layers.conv2d.vars.0", &[64, 3, 3, 3]),
    ("block1.layers.conv2d.vars.1", &[64]),
    ("block1.layers.conv2d_1.vars.0", &[64, 64, 3, 3]),
    ("block1.layers.conv2d_1.vars.1", &[64]),
    ("block2.layers.conv2d.vars.0", &[128, 64, 3, 3]),
    ("block2.layers.conv2d.vars.1", &[128]),
    ("block2.layers.conv2d_1.vars.0", &[128, 128, 3, 3]),
    ("block2.layers.conv2d_1.vars.1", &[128]),
];

fn value(tensor: usize, i: usize) -> f32 {
    ((i * 7 + tensor * 13) % 101) as f32 / 1000.0 - 0.05
}

/// Writes a safetensors file by hand: u64 header length, JSON header, little-endian f32 data.
fn write_safetensors(path: &Path, tensors: &[(&str, &[usize], Vec<f32>)]) {
    let mut header = BTreeMap::new();
    let mut data = Vec::new();
    for (name, shape, values) in tensors {
        let start = data.len();
        for v in values {
            data.extend_from_slice(&v.to_le_bytes());
        }
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let header = serde_json::to_vec(&header).unwrap();
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(&data);
    std::fs::write(path, bytes).unwrap();
}

fn full_file() -> Vec<(&'static str, &'static [usize], Vec<f32>)> {
    TENSORS
        .iter()
        .enumerate()
        .map(|(t, (name, shape))| {
            let n = shape.iter().product();
            (*name, *shape, (0..n).map(|i| value(t, i)).collect())
        })
        .collect()
}

#[test]
fn the_converted_vgg16_front_loads_onto_the_right_stages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vgg16.safetensors");
    let mut tensors = full_file();
    // A deeper block in the same file is ignored.
    tensors.push(("block3.layers.conv2d.vars.1", &[256], vec![1.0; 256]));
    write_safetensors(&path, &tensors);
    let device = Device::flex();
    let vgg = Vgg16Front::load(&path, &device).unwrap();
    for (s, stage) in vgg.stages.iter().enumerate() {
        let (w, b) = stage.values();
        assert_eq!(stage.conv.weight.dims().to_vec(), TENSORS[2 * s].1.to_vec());
        assert!(
            w.iter().enumerate().all(|(i, &v)| v == value(2 * s, i)),
            "stage {s} weights"
        );
        assert!(
            b.iter().enumerate().all(|(i, &v)| v == value(2 * s + 1, i)),
            "stage {s} bias"
        );
    }

    // conv1_1 on a constant gray image, by hand: at an interior pixel each output channel is
    // Σ_{c,taps} w · (255·g − mean_c) + b.
    let g = 0.5f32;
    let image = ImageSet::from_pixels(vec![g; 784], vec![0]).unwrap();
    let all = ChannelSelection::all(64);
    let extractor =
        LocalExtractor::new(&vgg.stages, 1, &all, InputFormat::VggBgr, &device).unwrap();
    let features: Vec<f32> = extractor
        .forward(image.tensor(0..1, &device))
        .into_data()
        .iter::<f32>()
        .collect();
    for o in 0..64 {
        let mut z = value(1, o) as f64;
        for (c, &mean) in BGR_MEAN.iter().enumerate() {
            for tap in 0..9 {
                z += value(0, (o * 3 + c) * 9 + tap) as f64 * (255.0 * g as f64 - mean as f64);
            }
        }
        let got = features[o * 784 + 14 * 28 + 14] as f64;
        // f32 sum of 28 terms of size ≤ 0.05·140: error ≤ 2·28·2^-24·28·7 (with slack 2×).
        assert!(
            (got - z.max(0.0)).abs() < 4.0 * 28.0 * 28.0 * 7.0 * 2f64.powi(-24),
            "{o}: {got} vs {z}"
        );
    }
    let _: Tensor<4> = extractor.forward(image.tensor(0..1, &device));
}

#[test]
fn missing_or_misshapen_tensors_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let path = dir.path().join("vgg16.safetensors");

    let mut missing = full_file();
    missing.remove(5);
    write_safetensors(&path, &missing);
    let err = Vgg16Front::load(&path, &device).unwrap_err().to_string();
    assert!(
        err.contains("stages.2.conv.bias") || err.contains("missing"),
        "{err}"
    );

    let mut misshapen = full_file();
    misshapen[0] = (
        "block1.layers.conv2d.vars.0",
        &[64, 3, 3, 2],
        vec![0.0; 64 * 3 * 3 * 2],
    );
    write_safetensors(&path, &misshapen);
    assert!(Vgg16Front::load(&path, &device).is_err());

    std::fs::write(&path, b"garbage").unwrap();
    assert!(Vgg16Front::load(&path, &device).is_err());
    assert!(Vgg16Front::load(&dir.path().join("absent.safetensors"), &device).is_err());
}

/// With the real converted weights (`scripts/fetch-data.sh --vgg16`), the loaded values are
/// the Keras ones, kernels transposed HWIO → OIHW.
#[test]
#[ignore = "needs scripts/fetch-data.sh --vgg16; set SPNN_DATA_DIR"]
fn the_real_hed_vgg16_weights_load_transposed() {
    let dir = std::env::var_os("SPNN_DATA_DIR").expect(
        "SPNN_DATA_DIR is not set: run scripts/fetch-data.sh --vgg16 DIR and set it to DIR",
    );
    let path = Path::new(&dir).join("vgg16_front.safetensors");
    assert!(
        path.exists(),
        "{} absent: run scripts/fetch-data.sh --vgg16",
        path.display()
    );
    let vgg = Vgg16Front::load(&path, &Device::flex()).unwrap();
    let (w, bias) = vgg.stages[0].values();
    assert_eq!(bias[..4], [0.6998734, 0.10584506, 0.05528749, 0.8724496]);
    let oihw = |o: usize, i: usize, h: usize, x: usize| w[((o * 3 + i) * 3 + h) * 3 + x];
    // Keras kernel[h][w][i][o]: [0][1][2][5] = -0.059129044, [2][0][1][63] = 0.093125984.
    assert_eq!(oihw(5, 2, 0, 1), -0.059129044);
    assert_eq!(oihw(63, 1, 2, 0), 0.093125984);
    let (_, conv2_2_bias) = vgg.stages[3].values();
    assert_eq!(conv2_2_bias[..3], [-0.06433435, -0.1309397, -0.13213271]);
}
