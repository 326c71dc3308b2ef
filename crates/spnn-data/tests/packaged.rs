//! The packaged data sets, read from the directory `scripts/fetch-data.sh` fills. They are
//! ignored by a plain `cargo test` (which shows them as such); CI fetches the data, sets
//! `SPNN_DATA_DIR` and runs them with `--ignored`. Run without the variable, they fail saying
//! what to run.

use std::path::PathBuf;

use spnn_data::idx::read_idx;
use spnn_data::packaged::{census, fashion_mnist_files, mnist_5k, spambase};

fn data_dir() -> PathBuf {
    std::env::var_os("SPNN_DATA_DIR")
        .map(PathBuf::from)
        .expect("SPNN_DATA_DIR is not set: run scripts/fetch-data.sh DIR and set it to DIR")
}

#[test]
#[ignore = "needs scripts/fetch-data.sh; set SPNN_DATA_DIR"]
fn census_has_the_published_shape_and_balance() {
    let dir = data_dir();
    let p = census::load(&dir, 2).unwrap();
    assert_eq!((p.train.len(), p.test.len()), (199_523, 99_762));
    let labels = p.labels.labels().unwrap();
    let pos_train = p
        .train
        .iter()
        .filter(|&&id| labels[id as usize] == 1.0)
        .count();
    let pos_test = p
        .test
        .iter()
        .filter(|&&id| labels[id as usize] == 1.0)
        .count();
    assert_eq!((pos_train, pos_test), (12_382, 6_186));
    // Seven continuous attributes are numbers; the rest are one-hot.
    let widths: Vec<usize> = p.holders.iter().map(|t| t.cols()).collect();
    assert_eq!(widths, [187, 323], "the encoded widths the guide quotes");
    for t in &p.holders {
        assert_eq!(t.rows(), 299_285);
    }
}

#[test]
#[ignore = "needs scripts/fetch-data.sh; set SPNN_DATA_DIR"]
fn spambase_and_images_load() {
    let dir = data_dir();
    let s = spambase::load(&dir, 3).unwrap();
    assert_eq!(s.holders.iter().map(|t| t.cols()).sum::<usize>(), 57);
    assert_eq!(
        s.labels
            .labels()
            .unwrap()
            .iter()
            .filter(|&&y| y == 1.0)
            .count(),
        1813
    );
    assert_eq!(s.train.len() + s.test.len(), 4601);
    let [train_x, train_y, test_x, test_y] = fashion_mnist_files(&dir).unwrap();
    let (x, y) = (read_idx(&train_x).unwrap(), read_idx(&train_y).unwrap());
    assert_eq!(
        (x.dims.clone(), y.dims.clone()),
        (vec![60_000, 28, 28], vec![60_000])
    );
    let ty = read_idx(&test_y).unwrap();
    assert_eq!(&ty.data[..5], &[9, 2, 1, 1, 6]);
    assert_eq!(read_idx(&test_x).unwrap().dims, vec![10_000, 28, 28]);
    let (images, labels) = mnist_5k(&dir).unwrap();
    assert_eq!((images.len(), labels.len()), (5000 * 784, 5000));
    assert!((0..10).all(|d| labels.iter().filter(|&&l| l == d).count() == 500));
}

#[test]
#[ignore = "needs scripts/fetch-data.sh; set SPNN_DATA_DIR"]
fn embedded_digits_are_the_first_100_per_class_of_mnist_5k() {
    let (images, labels) = mnist_5k(&data_dir()).unwrap();
    let (embedded, embedded_labels) = spnn_data::embedded::mnist_1000();
    let per_class = spnn_data::embedded::MNIST_1000_PER_CLASS;
    let mut expected = Vec::new();
    let mut expected_labels = Vec::new();
    for class in 0..10u8 {
        let first = labels.iter().enumerate().filter(|&(_, &l)| l == class);
        for (i, _) in first.take(per_class) {
            expected.extend_from_slice(&images[i * 784..(i + 1) * 784]);
            expected_labels.push(class);
        }
    }
    assert_eq!(embedded_labels, expected_labels);
    assert!(
        embedded == expected,
        "the embedded pixels differ from the fetched file's"
    );
}
