//! Writes the committed seed corpus (`fuzz/seeds/<target>`): `cargo run --manifest-path fuzz/Cargo.toml --example
//! seed_corpus` from the repository root. Valid inputs of every kind give the fuzzer a start
//! past the length and tag checks.

use spnn_crypto::RingMatrix;
use spnn_net::codec::encode_to_vec;
use spnn_net::frame::encode_frame;

fn main() -> std::io::Result<()> {
    let root = std::path::Path::new("fuzz/seeds");
    let mut seeds = spnn_burn::fuzzing::seeds();
    for (name, file) in [("breast-cancer", "deploy/breast_cancer.toml")] {
        seeds.push(("deployment", name.into(), std::fs::read(file)?));
    }
    let m = RingMatrix::from_vec(2, 2, vec![1, 2, 3, u64::MAX]).expect("2x2");
    seeds.push((
        "frame_decoder",
        "ring-matrix-frame".into(),
        encode_frame(7, 3, &spnn_burn::messages::ZShare(m.clone())),
    ));
    seeds.push(("frame_decoder", "ring-matrix".into(), encode_to_vec(&m)));
    for (target, name, bytes) in seeds {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(())
}
