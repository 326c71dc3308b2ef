//! The owner's side: the frozen extractor never trains, and the upload carries the selected
//! channels and nothing else.

use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use spnn_privynet::cloud::{CloudData, CloudNet, train_cloud};
use spnn_privynet::images::{ImageSet, PIXELS};
use spnn_privynet::{
    ChannelSelection, InputFormat, LocalExtractor, PrivyError, SourceConfig, TrainConfig, Upload,
};

/// Every float parameter's values and whether it requires a gradient.
#[derive(Default)]
struct Snapshot(Vec<(Vec<f32>, bool)>);

impl ModuleVisitor for Snapshot {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val();
        self.0
            .push((t.to_data().iter::<f32>().collect(), t.is_require_grad()));
    }
}

fn snapshot(m: &impl Module) -> Snapshot {
    let mut s = Snapshot::default();
    m.visit(&mut s);
    s
}

/// Deterministic images with structure (gradients and stripes), labels 0..9.
fn images(n: usize) -> ImageSet {
    let mut pixels = Vec::with_capacity(n * PIXELS);
    for i in 0..n {
        for p in 0..PIXELS {
            let (y, x) = (p / 28, p % 28);
            let v = ((x * (i % 5 + 1) + y * (i % 3)) % 28) as f32 / 27.0;
            pixels.push(v);
        }
    }
    ImageSet::from_pixels(pixels, (0..n).map(|i| (i % 10) as u8).collect()).unwrap()
}

fn selection(total: usize, c: usize) -> ChannelSelection {
    ChannelSelection::from_secret_seed(total, c, [7; 32]).unwrap()
}

#[test]
fn extractor_parameters_receive_no_gradients_and_never_change() {
    let train = Device::flex().autodiff();
    let source = SourceConfig::default().init(&train).unwrap();
    // Even built on an autodiff device, the extractor's parameters are frozen.
    let extractor = LocalExtractor::new(
        &source.stages,
        2,
        &selection(16, 6),
        InputFormat::UnitGray,
        &train,
    )
    .unwrap();
    let before = snapshot(&extractor);
    assert!(!before.0.is_empty());
    assert!(
        before.0.iter().all(|(_, grad)| !grad),
        "a parameter requires grad"
    );

    // Backward through the cloud network and the extractor: the cloud gets gradients, the
    // extractor none.
    let data = images(16);
    let features = extractor.forward(data.tensor(0..16, &train).require_grad());
    let cloud = CloudNet::new(6, 10, (0.0, 1.0), &train);
    let grads = cloud.forward(features).sum().backward();
    let mut with_grad = 0;
    struct Grads<'a>(&'a burn::tensor::Gradients, usize);
    impl ModuleVisitor for Grads<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.1 += param.val().grad(self.0).is_some() as usize;
        }
    }
    let mut g = Grads(&grads, 0);
    extractor.visit(&mut g);
    assert_eq!(g.1, 0, "extractor parameters received gradients");
    let mut g = Grads(&grads, 0);
    cloud.visit(&mut g);
    with_grad += g.1;
    assert!(with_grad > 0, "the cloud network should receive gradients");

    // Train the cloud with the Learner on uploads: the extractor is unchanged, bit for bit.
    let local = Device::flex();
    let extractor = LocalExtractor::new(
        &source.stages,
        2,
        &selection(16, 6),
        InputFormat::UnitGray,
        &local,
    )
    .unwrap();
    let upload = extractor.extract(&data, &local);
    let dir = tempfile::tempdir().unwrap();
    let config = TrainConfig {
        epochs: 2,
        batch: 8,
        lr: 1e-2,
        seed: 3,
    };
    train_cloud(
        &CloudData {
            train: &upload,
            train_labels: data.labels(),
            valid: &upload,
            valid_labels: data.labels(),
        },
        10,
        &config,
        dir.path(),
        &train,
    )
    .unwrap();
    let after = snapshot(&extractor);
    assert_eq!(before.0.len(), after.0.len());
    for ((a, _), (b, _)) in before.0.iter().zip(&after.0) {
        assert_eq!(a, b, "an extractor parameter changed");
    }
    assert_eq!(extractor.extract(&data, &local), upload);
}

#[test]
fn the_upload_holds_exactly_the_selected_channels_in_order_and_no_index_list() {
    let local = Device::flex();
    let source = SourceConfig::default().init(&local).unwrap();
    let data = images(5);
    let sel = selection(16, 5);
    let all = LocalExtractor::new(
        &source.stages,
        1,
        &ChannelSelection::all(16),
        InputFormat::UnitGray,
        &local,
    )
    .unwrap()
    .extract(&data, &local);
    let extractor =
        LocalExtractor::new(&source.stages, 1, &sel, InputFormat::UnitGray, &local).unwrap();
    let upload = extractor.extract(&data, &local);
    assert_eq!(upload.shape(), [5, 5, 28, 28]);

    // Channel j of the upload is channel indices[j] of the full layer. Computing fewer output
    // channels may change the summation order of each 3×3×1 dot product (9 terms + bias), so
    // allow the f32 bound 2·10·2^-24·(Σ|w||x| + |b|) ≤ 20·2^-24·(9·max|w| + max|b|) (x ≤ 1).
    let (w, b) = source.stages[0].values();
    let max = |v: &[f32]| v.iter().fold(0f32, |m, x| m.max(x.abs())) as f64;
    let tolerance = 20.0 * 2f64.powi(-24) * (9.0 * max(&w) + max(&b));
    let plane = 28 * 28;
    for item in 0..5 {
        for (j, &ch) in sel.indices().iter().enumerate() {
            let got = &upload.values()[(item * 5 + j) * plane..][..plane];
            let want = &all.values()[(item * 16 + ch) * plane..][..plane];
            for (g, w) in got.iter().zip(want) {
                assert!(((g - w) as f64).abs() <= tolerance, "{g} vs {w}");
            }
        }
    }

    // The wire form is a 20-byte header (magic + shape) and the values: no room for indices.
    let bytes = upload.to_bytes();
    assert_eq!(bytes.len(), 20 + 4 * 5 * 5 * 28 * 28);
    assert_eq!(&bytes[..4], b"PVU1");
    assert_eq!(Upload::from_bytes(&bytes, bytes.len()).unwrap(), upload);
    // The selection's Debug output (what a log line would show) hides the indices.
    let shown = format!("{sel:?}");
    assert!(shown.contains("<secret>"), "{shown}");
    assert!(!shown.contains(&format!("{:?}", sel.indices())), "{shown}");
}

#[test]
fn malformed_uploads_are_clear_errors() {
    let upload = Upload::new([2, 1, 2, 2], vec![0.5; 8]).unwrap();
    let bytes = upload.to_bytes();
    let refuse = |b: &[u8], limit: usize| match Upload::from_bytes(b, limit) {
        Err(PrivyError::Upload(m)) => m,
        other => panic!("accepted: {other:?}"),
    };
    assert!(refuse(&bytes, bytes.len() - 1).contains("exceeds"));
    assert!(refuse(&bytes[..bytes.len() - 4], 1 << 20).contains("does not hold"));
    assert!(refuse(&bytes[..bytes.len() - 1], 1 << 20).contains("whole f32"));
    let mut wrong_magic = bytes.clone();
    wrong_magic[0] = b'X';
    assert!(refuse(&wrong_magic, 1 << 20).contains("header"));
    let mut nan = bytes.clone();
    nan[20..24].copy_from_slice(&f32::NAN.to_le_bytes());
    assert!(refuse(&nan, 1 << 20).contains("non-finite"));
    let mut huge = bytes.clone();
    huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(refuse(&huge, 1 << 20).contains("does not hold"));
    assert!(Upload::new([0, 1, 1, 1], vec![]).is_err());
}

#[test]
fn bad_topologies_and_selections_are_errors() {
    let local = Device::flex();
    let source = SourceConfig::default().init(&local).unwrap();
    assert!(ChannelSelection::from_os_entropy(16, 0).is_err());
    assert!(ChannelSelection::from_os_entropy(16, 17).is_err());
    let s = ChannelSelection::from_os_entropy(16, 16).unwrap();
    let mut sorted = s.indices().to_vec();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (0..16).collect::<Vec<_>>(),
        "a permutation of all channels"
    );
    let new = |layers, sel: &ChannelSelection, input| {
        LocalExtractor::new(&source.stages, layers, sel, input, &local)
    };
    assert!(new(0, &selection(16, 2), InputFormat::UnitGray).is_err());
    assert!(new(5, &selection(16, 2), InputFormat::UnitGray).is_err());
    // Layer 3 has 32 channels: a selection over 16 does not fit it.
    assert!(new(3, &selection(16, 2), InputFormat::UnitGray).is_err());
    assert!(new(1, &selection(16, 2), InputFormat::VggBgr).is_err());
    assert!(ImageSet::from_pixels(vec![2.0; PIXELS], vec![0]).is_err());
    assert!(ImageSet::from_pixels(vec![f32::NAN; PIXELS], vec![0]).is_err());
    assert!(ImageSet::from_bytes(&[0; 10], vec![0]).is_err());
}

#[test]
fn local_cost_counts_the_selected_channels_of_the_last_layer_only() {
    let local = Device::flex();
    let source = SourceConfig::default().init(&local).unwrap();
    let cost = |layers, c, total| {
        LocalExtractor::new(
            &source.stages,
            layers,
            &selection(total, c),
            InputFormat::UnitGray,
            &local,
        )
        .unwrap()
        .cost()
    };
    // ℓ = 1, c = 4: 4 output channels × 1 input × 9 taps × 28² positions.
    assert_eq!(cost(1, 4, 16).macs_per_image, 4 * 9 * 784);
    assert_eq!(cost(1, 4, 16).param_bytes, (4 * 9 + 4) * 4);
    // ℓ = 3, c = 8: 16·1·9·784 + 16·16·9·784 + 8·16·9·196 (after the pool).
    assert_eq!(
        cost(3, 8, 32).macs_per_image,
        16 * 9 * 784 + 16 * 16 * 9 * 784 + 8 * 16 * 9 * 196
    );
    assert_eq!(
        cost(3, 8, 32).param_bytes,
        ((16 * 9 + 16) + (16 * 16 * 9 + 16) + (8 * 16 * 9 + 8)) * 4
    );
}

#[test]
fn a_source_network_round_trips_through_its_record() {
    let device = Device::flex();
    let config = SourceConfig::default();
    let net = config.init(&device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("source.bpk");
    net.save(&path).unwrap();
    let loaded = spnn_privynet::SourceNet::load(&config, &path, &device).unwrap();
    let probe = images(3).tensor(0..3, &device);
    let a: Vec<f32> = net
        .forward(probe.clone())
        .into_data()
        .iter::<f32>()
        .collect();
    let b: Vec<f32> = loaded.forward(probe).into_data().iter::<f32>().collect();
    assert_eq!(a, b);
    std::fs::write(&path, b"not a record").unwrap();
    assert!(spnn_privynet::SourceNet::load(&config, &path, &device).is_err());
    assert!(
        spnn_privynet::SourceNet::load(&config, Path::new("/nonexistent/x.bpk"), &device).is_err()
    );
}
