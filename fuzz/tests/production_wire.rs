//! Built as production code is: spnn-burn without the `insecure-test-hooks` feature (the main
//! workspace's tests turn it on). Such a build's wire protocol knows neither the reveal of `W`,
//! seeded randomness nor unmasked bottom-model outputs: a peer that sends any is refused at
//! decoding.
//!
//! `cargo test --manifest-path fuzz/Cargo.toml --test production_wire` (CI runs it).

use spnn_burn::messages::{Command, LayerKind, Setup};
use spnn_burn::SpnnConfig;
use spnn_net::codec::{decode_exact, encode_to_vec};

#[test]
fn production_builds_refuse_the_test_hooks_on_the_wire() {
    // The reveal command's tag is unknown.
    let e = decode_exact::<Command>(&[6]).unwrap_err().to_string();
    assert!(e.contains("command"), "{e}");
    // A Setup proposing seeded randomness does not decode.
    let mut setup = encode_to_vec(&Setup {
        widths: vec![1, 1],
        output: 1,
        kind: LayerKind::PrivateLinear,
        config: SpnnConfig::default(),
        resume: None,
    });
    // A Setup proposing unmasked outputs (the split-learning baseline's layer kind) does not
    // decode either: widths (8 + 2·4) + output 4, then the kind.
    let mut unmasked = setup.clone();
    assert_eq!(unmasked[8 + 8 + 4], 0, "PrivateLinear");
    unmasked[8 + 8 + 4] = 2;
    let e = decode_exact::<Setup>(&unmasked).unwrap_err().to_string();
    assert!(e.contains("layer kind"), "{e}");
    // widths (8 + 2·4) + output 4 + kind 1 + frac 4 + scale 1 + momentum 8 + dampening 8 +
    // nesterov 1 + weight decay 8 + Adam (None) 1 + dealer 1 + labels 1: the randomness tag.
    let at = 8 + 8 + 4 + 1 + 4 + 1 + 8 + 8 + 1 + 8 + 1 + 1 + 1;
    assert_eq!(setup[at], 0, "the default randomness is OS entropy");
    setup[at] = 1;
    setup.splice(at + 1..at + 1, 7u64.to_le_bytes());
    let e = decode_exact::<Setup>(&setup).unwrap_err().to_string();
    assert!(e.contains("insecure-test-hooks"), "{e}");
    // And the deployment file's insecure seed is refused with a message that says why.
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/breast_cancer.toml"))
        .unwrap()
        .replace("[session]\n", "[session]\ninsecure_seed = 7\n");
    let e = spnn_cli::config::Deployment::parse(&text, std::path::Path::new("/x/d.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no insecure test hooks"), "{e}");
}
