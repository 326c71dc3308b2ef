//! Entry points for the fuzz targets in `fuzz/`: the parsers a party runs on bytes from peers
//! and from its disk, reachable from outside the crate. Not part of the API.
//!
//! Every function panics if, and only if, a parser misbehaves: a decoder panics, or something
//! it accepted does not re-encode to the same bytes.

use std::sync::OnceLock;

use spnn_crypto::SecureRng;
use spnn_crypto::paillier::{Keypair, Packing, PublicKey, PublicKeyData};
use spnn_net::codec::{Codec, Message, decode_exact, encode_to_vec};

use crate::messages::*;
use crate::protocol::he::{CrossShape, EncryptedShare, MaskedProduct, PaillierKey};

fn round_trip<T: Codec>(bytes: &[u8]) -> Option<T> {
    let v = decode_exact::<T>(bytes).ok()?;
    assert_eq!(encode_to_vec(&v), bytes, "decode/encode is not a bijection");
    Some(v)
}

/// A fixed 512-bit test key, the same in every run.
fn key() -> &'static Keypair {
    static KEY: OnceLock<Keypair> = OnceLock::new();
    KEY.get_or_init(|| {
        Keypair::generate_insecure_for_tests(512, &mut SecureRng::insecure_from_seed_for_tests(9))
            .expect("a 512-bit key")
    })
}

/// Decodes `bytes` as the message kind selected by `selector` (every kind of
/// [`KINDS`](crate::messages::KINDS)), and runs the checks a party runs on it next: a
/// Paillier key's validation, an encrypted matrix's parsing against a key and a layout.
pub fn message(selector: u8, bytes: &[u8]) {
    let kind = KINDS[selector as usize % KINDS.len()].0;
    match kind {
        k if k == Command::KIND => drop(round_trip::<Command>(bytes)),
        k if k == Hello::KIND => drop(round_trip::<Hello>(bytes)),
        k if k == Setup::KIND => {
            if let Some(s) = round_trip::<Setup>(bytes) {
                let _ = s.config.validate();
                let _ = crate::PartyPolicy::default().check(&s, false);
            }
        }
        k if k == DealerBundle::KIND => drop(round_trip::<DealerBundle>(bytes)),
        k if k == DealerSeed::KIND => drop(round_trip::<DealerSeed>(bytes)),
        k if k == Opening::KIND => drop(round_trip::<Opening>(bytes)),
        k if k == ZShare::KIND => drop(round_trip::<ZShare>(bytes)),
        k if k == GradShare::KIND => drop(round_trip::<GradShare>(bytes)),
        k if k == GradSeed::KIND => drop(round_trip::<GradSeed>(bytes)),
        k if k == PairSeed::KIND => drop(round_trip::<PairSeed>(bytes)),
        k if k == Activations::KIND => drop(round_trip::<Activations>(bytes)),
        k if k == HeadGradient::KIND => drop(round_trip::<HeadGradient>(bytes)),
        k if k == MaskedOutput::KIND => drop(round_trip::<MaskedOutput>(bytes)),
        k if k == BottomGradient::KIND => drop(round_trip::<BottomGradient>(bytes)),
        k if k == HeadReport::KIND => drop(round_trip::<HeadReport>(bytes)),
        k if k == MetricsReport::KIND => drop(round_trip::<MetricsReport>(bytes)),
        k if k == PsiCount::KIND => drop(round_trip::<PsiCount>(bytes)),
        k if k == PsiPoints::KIND => drop(round_trip::<PsiPoints>(bytes)),
        k if k == Ack::KIND => drop(round_trip::<Ack>(bytes)),
        k if k == PaillierKey::KIND => {
            if let Some(PaillierKey(n, h_s)) = round_trip::<PaillierKey>(bytes) {
                let _ = PublicKey::from_data_insecure_for_tests(&PublicKeyData { n, h_s });
            }
        }
        k if k == EncryptedShare::KIND || k == MaskedProduct::KIND => {
            if let Some(EncryptedShare(m)) = round_trip::<EncryptedShare>(bytes) {
                let shape = CrossShape {
                    share_bits: 64,
                    plain_bits: 20,
                    terms: 4,
                };
                let pk = &key().public;
                if let Ok(packing) = Packing::new(pk, shape.slot_bits()) {
                    let cells: Vec<Vec<u8>> = m.cells.into_iter().map(|b| b.0).collect();
                    let (rows, cols) = (m.rows as usize, m.cols as usize);
                    let _ = pk.packed_matrix_from_bytes(
                        (rows, cols.div_ceil(packing.slots())),
                        &cells,
                        &packing,
                        cols,
                        shape.share_bits,
                    );
                }
            }
        }
        _ => {}
    }
}

/// Opens `bytes` as a sealed checkpoint file under a fixed key, and parses `payload` (sealed
/// with that key first, so the parsers behind the MAC are reached) as a holder checkpoint
/// with SPNN-SS and SPNN-HE engine states for a small layer.
pub fn checkpoint(bytes: &[u8], payload: &[u8]) {
    let key = [7u8; 32];
    let path = std::path::Path::new("fuzz.ckpt");
    let _ = crate::checkpoint::open_sealed(bytes, &key, path);
    let sealed = crate::checkpoint::seal(payload, &key, path);
    let opened = crate::checkpoint::open_sealed(&sealed, &key, path).expect("own seal");
    assert_eq!(opened, payload);
    if let Ok((_, _, _, state, _)) = crate::protocol::holder::parse_checkpoint(payload) {
        let _ = crate::protocol::holder::ss::parse_state(&state, (3, 2));
        let _ = crate::protocol::holder::he::parse_state(&state, (3, 2));
    }
    let _ = crate::protocol::holder::ss::parse_state(payload, (3, 2));
    let _ = crate::protocol::holder::he::parse_state(payload, (3, 2));
}

/// A seed corpus for the targets: one valid input per message kind (selector byte first), and
/// sealed and unsealed holder checkpoints of both engines, as `(target, name, bytes)`.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    use crate::config::{LabelMode, SpnnConfig};
    use spnn_crypto::{IntMatrix, RingMatrix};
    use spnn_net::FloatMatrix;
    let mut rng = SecureRng::insecure_from_seed_for_tests(1);
    let m = RingMatrix::random(3, 2, &mut rng);
    let f = FloatMatrix::new(2, 1, vec![0.5, -1.0]).expect("finite");
    let pk = &key().public;
    let packing = Packing::new(
        pk,
        CrossShape {
            share_bits: 64,
            plain_bits: 20,
            terms: 4,
        }
        .slot_bits(),
    )
    .expect("layout");
    let enc = pk.encrypt_rows(&packing, &m, &mut rng).expect("encrypts");
    let cells = pk
        .packed_matrix_to_bytes(&enc)
        .expect("bytes")
        .into_iter()
        .map(spnn_net::Blob)
        .collect();
    let data = pk.to_data();
    let messages: Vec<(u16, Vec<u8>)> = vec![
        (
            Command::KIND,
            encode_to_vec(&Command::Forward {
                step: 1,
                ids: vec![1, 2],
                train: true,
            }),
        ),
        (
            Hello::KIND,
            encode_to_vec(&Hello {
                version: SPNN_PROTOCOL_VERSION,
                holder: 1,
                width: 15,
                has_labels: false,
            }),
        ),
        (
            Setup::KIND,
            encode_to_vec(&Setup {
                widths: vec![15, 15],
                output: 64,
                kind: LayerKind::PrivateLinear,
                config: SpnnConfig::default().with_labels(LabelMode::Holder(1)),
                resume: Some("epoch-1".into()),
            }),
        ),
        (
            DealerBundle::KIND,
            encode_to_vec(&DealerBundle(vec![m.clone()])),
        ),
        (
            DealerSeed::KIND,
            encode_to_vec(&DealerSeed(rng.secret_seed())),
        ),
        (
            Opening::KIND,
            encode_to_vec(&Opening(vec![m.clone(), m.clone()])),
        ),
        (ZShare::KIND, encode_to_vec(&ZShare(m.clone()))),
        (Activations::KIND, encode_to_vec(&Activations(f.clone()))),
        (
            HeadReport::KIND,
            encode_to_vec(&HeadReport { loss: Some(0.25) }),
        ),
        (
            MetricsReport::KIND,
            encode_to_vec(&MetricsReport(Some(Metrics {
                auc: 0.9,
                accuracy: 0.8,
                rmse: Some(0.4),
                loss: 0.3,
                count: 7,
            }))),
        ),
        (PsiCount::KIND, encode_to_vec(&PsiCount(2))),
        (
            PsiPoints::KIND,
            encode_to_vec(&PsiPoints(spnn_net::codec::Blob(vec![7; 64]))),
        ),
        (
            PaillierKey::KIND,
            encode_to_vec(&PaillierKey(data.n, data.h_s)),
        ),
        (
            EncryptedShare::KIND,
            encode_to_vec(&EncryptedShare(crate::protocol::he::EncryptedMatrix {
                rows: 3,
                cols: 2,
                cells,
            })),
        ),
    ];
    let mut out: Vec<(&'static str, String, Vec<u8>)> = messages
        .into_iter()
        .map(|(kind, bytes)| {
            let selector = KINDS
                .iter()
                .position(|(k, _)| *k == kind)
                .expect("registered") as u8;
            let name = kind_name(kind).expect("registered").replace(' ', "-");
            ("messages", name, [vec![selector], bytes].concat())
        })
        .collect();
    let ring =
        crate::protocol::holder::record::ShareRecord::to_bytes(&[&m, &m, &m]).expect("a record");
    let mut ss = Vec::new();
    (0.0f64, 0.0f64, spnn_net::Blob(ring)).encode(&mut ss);
    let w = crate::protocol::holder::record::ShareRecord::to_bytes(&[&m]).expect("a record");
    let mut he = Vec::new();
    spnn_net::Blob(w).encode(&mut he);
    let ints = IntMatrix::from_signed(&m);
    crate::protocol::holder::record::encode_int_matrix(&ints, &mut he);
    crate::protocol::holder::record::encode_int_matrix(&ints, &mut he);
    for (name, state) in [("ss", ss), ("he", he)] {
        let mut payload = Vec::new();
        (0u64, 3u64, 1u64).encode(&mut payload);
        spnn_net::Blob(state).encode(&mut payload);
        // No label holder's top layers and secret.
        None::<(spnn_net::Blob, spnn_crypto::SecretSeed)>.encode(&mut payload);
        out.push(("checkpoint", format!("{name}-payload"), payload.clone()));
        out.push((
            "checkpoint",
            format!("{name}-sealed"),
            crate::checkpoint::seal(&payload, &[7u8; 32], std::path::Path::new("fuzz.ckpt")),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    /// The seed corpus starts the fuzzer past the format checks: its checkpoint payloads parse
    /// with today's layout.
    #[test]
    fn checkpoint_seeds_have_the_current_layout() {
        let payloads: Vec<_> = super::seeds()
            .into_iter()
            .filter(|(target, name, _)| *target == "checkpoint" && name.ends_with("-payload"))
            .collect();
        assert_eq!(payloads.len(), 2);
        for (_, name, bytes) in payloads {
            assert!(
                crate::protocol::holder::parse_checkpoint(&bytes).is_ok(),
                "{name}"
            );
        }
    }

    /// Inputs the fuzzers found crashes with, kept as regression tests.
    #[test]
    fn past_crashes_are_errors_now() {
        // A share record whose tensor claims f64 values: Burn's cast panicked on it.
        let f64_record =
            include_bytes!("../../../fuzz/seeds/checkpoint/regression-f64-share-record");
        super::checkpoint(f64_record, f64_record);
    }
}
