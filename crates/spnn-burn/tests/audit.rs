//! What each party sees: transcript audits, and traffic against the documented formula.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use spnn_burn::cost::{StepShape, inference_step, training_step};
use spnn_burn::messages::{GradShare, Opening, ZShare};
use spnn_burn::{DealerMode, LabelMode, SpnnConfig};
use spnn_crypto::FixedPoint;
use spnn_net::codec::{Message, decode_exact};
use spnn_net::{NetworkConfig, PartyId};

fn audited(k: usize, config: SpnnConfig) -> (Data, spnn_burn::simulation::Simulation) {
    let data = Data::new(k);
    let net = NetworkConfig::new(3)
        .with_timeout(Duration::from_secs(60))
        .with_transcript();
    let sim = start_with(&data, config, false, net);
    (data, sim)
}

fn train_steps(
    sim: &spnn_burn::simulation::Simulation,
    data: &Data,
    config: SpnnConfig,
    steps: usize,
) -> Vec<Vec<f32>> {
    let device = device();
    let mut model = spnn_model(sim, &device);
    let mut optim = sim.session().optimizer();
    let mut grads = vec![];
    for ids in data.epoch(0, 64).iter().take(steps) {
        model = match config.labels {
            LabelMode::Server => {
                spnn_step(model, &mut optim, ids, &data.labels(ids), 0.1, &device).0
            }
            LabelMode::Holder(_) => spnn_step_label_holder(model, &mut optim, ids, 0.1).0,
        };
        grads.push(sim.session().view().g);
    }
    grads
}

/// The 8-byte fixed-point encodings of every feature value of a holder (values that are not
/// tiny, so they are distinctive), and the f32 encodings of every two adjacent values of a row.
/// Single f32 values are too few bits to search for: thousands of activations meet thousands of
/// features by chance (about 2^-25 per pair); a copied row shows as adjacent pairs.
fn fingerprints(table: &spnn_data::Table) -> (HashSet<[u8; 8]>, HashSet<[u8; 8]>) {
    let fp = FixedPoint::default();
    let mut fixed = HashSet::new();
    let mut floats = HashSet::new();
    for &v in table.data() {
        if v.abs() > 0.01 {
            fixed.insert(fp.encode(v as f64).unwrap().to_le_bytes());
        }
    }
    for row in table.data().chunks(table.cols()) {
        for w in row.windows(2) {
            floats.insert(pair(w[0], w[1]));
        }
    }
    (fixed, floats)
}

fn pair(a: f32, b: f32) -> [u8; 8] {
    let mut out = [0; 8];
    out[..4].copy_from_slice(&a.to_le_bytes());
    out[4..].copy_from_slice(&b.to_le_bytes());
    out
}

fn check_transcripts(k: usize, config: SpnnConfig) -> Vec<spnn_net::Network> {
    let (data, sim) = audited(k, config);
    let grads = train_steps(&sim, &data, config, 4);
    let nets: Vec<_> = sim.networks().to_vec();
    // Ending the session waits for every party, so every transcript is complete.
    sim.finish().unwrap();
    let holders: Vec<PartyId> = (1..=k as u16).map(PartyId).collect();
    let label_holder = match config.labels {
        LabelMode::Holder(i) => Some(PartyId(i + 1)),
        LabelMode::Server => None,
    };

    // The server receives nothing but hellos, Z shares, and — from the label holder — head
    // gradients and reports; never an opening (E, F, F', truncation masks).
    let allowed_at_server: HashSet<u16> = [
        spnn_burn::messages::Hello::KIND,
        ZShare::KIND,
        spnn_burn::messages::HeadGradient::KIND,
        spnn_burn::messages::HeadReport::KIND,
        spnn_burn::messages::MetricsReport::KIND,
    ]
    .into();
    let server_log = nets[0].transcript();
    assert!(!server_log.is_empty());
    for r in &server_log {
        assert!(
            allowed_at_server.contains(&r.kind),
            "server received kind {:#06x} from {}",
            r.kind,
            r.from
        );
        assert_ne!(r.kind, Opening::KIND);
        if r.kind != ZShare::KIND && r.kind != spnn_burn::messages::Hello::KIND {
            assert_eq!(
                Some(r.from),
                label_holder,
                "only the label holder reports to the server"
            );
        }
    }
    // Openings travel only between holders.
    for (p, net) in nets.iter().enumerate() {
        for r in net.transcript().iter().filter(|r| r.kind == Opening::KIND) {
            assert!(
                holders.contains(&PartyId(p as u16)) && holders.contains(&r.from),
                "opening at {p} from {}",
                r.from
            );
        }
    }
    // No holder receives G in the clear: holder 0's share of c·G differs from c·G in (almost)
    // every entry, and other holders receive only seeds.
    let fp = FixedPoint::default();
    let h0 = &nets[1].transcript();
    let shares: Vec<_> = h0.iter().filter(|r| r.kind == GradShare::KIND).collect();
    assert_eq!(shares.len(), grads.len());
    for (r, g) in shares.iter().zip(&grads) {
        let GradShare(m) = decode_exact(&r.payload).unwrap();
        let c = (g.len() / HIDDEN[0]) as f64;
        let clear: Vec<u64> = g
            .iter()
            .map(|&v| fp.encode(v as f64 * c).unwrap())
            .collect();
        let equal = m
            .as_slice()
            .iter()
            .zip(&clear)
            .filter(|(a, b)| a == b)
            .count();
        assert!(
            equal <= 1,
            "{equal} entries of the gradient share equal c·G"
        );
    }
    for net in &nets[2..=k] {
        assert!(net.transcript().iter().all(|r| r.kind != GradShare::KIND));
    }
    // Feature values never appear in another party's transcript, neither fixed-point encoded
    // nor as raw f32.
    for (owner, table) in data.holders.iter().enumerate() {
        let (fixed, floats) = fingerprints(table);
        assert!(fixed.len() > 1000);
        // The detector detects: a matrix of this holder's encoded rows is flagged.
        let leak = FixedPoint::default()
            .encode_matrix(2, table.cols(), &table.data()[..2 * table.cols()])
            .unwrap();
        assert!(
            leak.as_slice()
                .iter()
                .any(|v| fixed.contains(&v.to_le_bytes()))
        );
        let row = &table.data()[..table.cols()];
        assert!(row.windows(2).any(|w| floats.contains(&pair(w[0], w[1]))));
        for (p, net) in nets.iter().enumerate() {
            if p == owner + 1 {
                continue;
            }
            for r in net.transcript() {
                for m in ring_matrices(&r) {
                    let hit = m
                        .as_slice()
                        .iter()
                        .any(|v| fixed.contains(&v.to_le_bytes()));
                    assert!(
                        !hit,
                        "a fixed-point feature of holder {owner} reached party {p} (kind {:#06x})",
                        r.kind
                    );
                }
                if let Some(f) = float_matrix(&r) {
                    let hit = f
                        .data
                        .windows(2)
                        .any(|w| floats.contains(&pair(w[0], w[1])));
                    assert!(
                        !hit,
                        "a raw feature of holder {owner} reached party {p} (kind {:#06x})",
                        r.kind
                    );
                }
            }
        }
    }
    nets
}

/// The ring matrices a message carries (the message types that carry matrix data).
fn ring_matrices(r: &spnn_net::Received) -> Vec<spnn_crypto::RingMatrix> {
    use spnn_burn::messages::*;
    match r.kind {
        k if k == Opening::KIND => decode_exact::<Opening>(&r.payload).unwrap().0,
        k if k == DealerBundle::KIND => decode_exact::<DealerBundle>(&r.payload).unwrap().0,
        k if k == ZShare::KIND => vec![decode_exact::<ZShare>(&r.payload).unwrap().0],
        k if k == GradShare::KIND => vec![decode_exact::<GradShare>(&r.payload).unwrap().0],
        k if k == MaskedOutput::KIND => vec![decode_exact::<MaskedOutput>(&r.payload).unwrap().0],
        // Control messages (commands with sample ids, hellos, set-up, seeds, reports) carry
        // no matrix data.
        _ => vec![],
    }
}

/// The float matrix a message carries, if any.
fn float_matrix(r: &spnn_net::Received) -> Option<spnn_net::FloatMatrix> {
    use spnn_burn::messages::*;
    match r.kind {
        k if k == Activations::KIND => Some(decode_exact::<Activations>(&r.payload).unwrap().0),
        k if k == HeadGradient::KIND => Some(decode_exact::<HeadGradient>(&r.payload).unwrap().0),
        k if k == BottomGradient::KIND => {
            Some(decode_exact::<BottomGradient>(&r.payload).unwrap().0)
        }
        _ => None,
    }
}

#[test]
fn transcripts_two_holders_labels_at_server() {
    check_transcripts(2, SpnnConfig::default());
}

#[test]
fn transcripts_spnn_he() {
    use spnn_burn::protocol::he::{EncryptedShare, MaskedProduct, PaillierKey};
    let config = SpnnConfig::default()
        .with_protocol(spnn_burn::Protocol::Paillier)
        .with_he_key_bits(1024);
    for k in [2, 3] {
        let nets = check_transcripts(k, config);
        // Between holders only seeds, public keys, ciphertexts and masked ciphertexts travel, and
        // every holder runs the link with every other (each ordered pair's cross terms).
        let allowed: HashSet<u16> = [
            spnn_burn::messages::PairSeed::KIND,
            PaillierKey::KIND,
            EncryptedShare::KIND,
            MaskedProduct::KIND,
        ]
        .into();
        for (p, net) in nets.iter().enumerate().skip(1) {
            let from_holder: Vec<_> = net
                .transcript()
                .into_iter()
                .filter(|r| r.from != PartyId(0))
                .collect();
            for o in (1..=k).filter(|&o| o != p) {
                for kind in [PaillierKey::KIND, EncryptedShare::KIND, MaskedProduct::KIND] {
                    assert!(
                        from_holder
                            .iter()
                            .any(|r| r.kind == kind && r.from == PartyId(o as u16)),
                        "k = {k}: holder {p} got no {kind:#06x} from party {o}"
                    );
                }
            }
            for r in from_holder {
                assert!(
                    allowed.contains(&r.kind),
                    "holder {p} received kind {:#06x} from {}",
                    r.kind,
                    r.from
                );
            }
            // And nothing from a dealer: the server sends commands and gradient shares only.
            for r in net
                .transcript()
                .into_iter()
                .filter(|r| r.from == PartyId(0))
            {
                assert_ne!(r.kind, spnn_burn::messages::DealerBundle::KIND);
                assert_ne!(r.kind, spnn_burn::messages::DealerSeed::KIND);
            }
        }
    }
}

#[test]
fn transcripts_three_holders_labels_at_holder_separate_dealer() {
    check_transcripts(
        3,
        SpnnConfig::default()
            .with_labels(LabelMode::Holder(1))
            .with_dealer(DealerMode::Separate),
    );
}

fn check_traffic(k: usize, config: SpnnConfig) {
    let (data, sim) = audited(k, config);
    let device = device();
    let mut model = spnn_model(&sim, &device);
    let mut optim = sim.session().optimizer();
    let batches = data.epoch(0, 64);
    let snap = |sim: &spnn_burn::simulation::Simulation| {
        sim.networks()
            .iter()
            .map(|n| n.meters())
            .collect::<Vec<_>>()
    };
    // Holders run in their own threads: an inference forward, whose Z shares the server waits
    // for, is the point where every holder has processed everything before it. Measure from
    // one such point to the next: training steps 2..=4 plus one inference step.
    let sync = |model: &SpnnMlp| model.first.session().forward(&batches[7], false).unwrap();
    model = spnn_step(
        model,
        &mut optim,
        &batches[0],
        &data.labels(&batches[0]),
        0.1,
        &device,
    )
    .0;
    sync(&model);
    let before = snap(&sim);
    for ids in &batches[1..4] {
        model = spnn_step(model, &mut optim, ids, &data.labels(ids), 0.1, &device).0;
    }
    sync(&model);
    let after = snap(&sim);
    let shape = |batch| StepShape {
        widths: data.holders.iter().map(|t| t.cols()).collect(),
        batch,
        h: HIDDEN[0],
        update: config.update_dealing(0.1).unwrap(),
    };
    let (cost, inf) = (
        training_step(&shape(64)),
        inference_step(&shape(batches[7].len())),
    );
    let delta: Vec<_> = after
        .iter()
        .zip(&before)
        .map(|(a, b)| a.since(b).total)
        .collect();
    assert_eq!(
        delta[0].bytes_sent,
        3 * cost.server_sent + inf.server_sent,
        "server sent"
    );
    assert_eq!(
        delta[0].bytes_received,
        3 * cost.server_received + inf.server_received,
        "server received"
    );
    assert_eq!(
        delta[0].rounds,
        3 * cost.server_rounds + inf.server_rounds,
        "server rounds"
    );
    for m in 0..k {
        let d = &delta[m + 1];
        assert_eq!(
            d.bytes_sent,
            3 * cost.holder_sent[m] + inf.holder_sent[m],
            "holder {m} sent"
        );
        assert_eq!(
            d.bytes_received,
            3 * cost.holder_received[m] + inf.holder_received[m],
            "holder {m} received"
        );
        assert_eq!(
            d.rounds,
            3 * cost.holder_rounds + inf.holder_rounds,
            "holder {m} rounds"
        );
    }
    println!(
        "k = {k}, {} truncations per update: {cost:?}",
        shape(64).update.truncations.len()
    );
    drop(model);
    sim.finish().unwrap();
}

#[test]
fn traffic_matches_the_documented_formula() {
    check_traffic(2, SpnnConfig::default());
    check_traffic(3, SpnnConfig::default());
    check_traffic(4, SpnnConfig::default().with_momentum(0.9));
    // Burn's SGD on shares: dampening, Nesterov and weight decay add one truncation each.
    let nesterov = SpnnConfig {
        dampening: 0.1,
        nesterov: true,
        ..SpnnConfig::default().with_momentum(0.9)
    };
    assert_eq!(nesterov.update_truncations(0.1).unwrap(), 4);
    check_traffic(2, nesterov);
    let decay = SpnnConfig {
        weight_decay: 1e-3,
        ..SpnnConfig::default()
    };
    assert_eq!(decay.update_truncations(0.1).unwrap(), 2);
    check_traffic(2, decay);
    // Adam: 232 element-wise products and 244 truncations per update at f = 16 (231 after
    // products, 11 pieces of the moments' factors, 2 of the step factor).
    let adam = SpnnConfig {
        adam: Some(spnn_burn::AdamParams::default()),
        ..SpnnConfig::default()
    };
    assert_eq!(adam.update_products(0.1).unwrap(), 232);
    assert_eq!(adam.update_truncations(0.1).unwrap(), 244);
    check_traffic(3, adam);
    // Clipping by value: two comparisons (62 products each) and two selections per update,
    // before Adam's or SGD's own.
    let clipped = SpnnConfig {
        grad_clip_value: 0.5,
        ..adam
    };
    assert_eq!(clipped.update_products(0.1).unwrap(), 232 + 2 * 62 + 2);
    check_traffic(2, clipped);
    check_traffic(
        3,
        SpnnConfig {
            grad_clip_value: 0.5,
            ..SpnnConfig::default()
        },
    );
    // Clipping by norm: g∘g, one comparison, the square root (53 steps at f = 16, three
    // products and truncations each), b·y and g∘factor; s/2^6, the factor and g∘factor's
    // truncations.
    let by_norm = SpnnConfig {
        grad_clip_norm: 0.5,
        ..SpnnConfig::default()
    };
    assert_eq!(by_norm.update_products(0.1).unwrap(), 1 + 62 + 3 * 53 + 2);
    assert_eq!(by_norm.update_truncations(0.1).unwrap(), 3 * 53 + 3 + 1);
    check_traffic(2, by_norm);
}
