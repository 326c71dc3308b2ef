//! Every message of the SPNN protocols, with its wire encoding.
//!
//! Each message type has its own kind code, so a party refuses a message that does not belong
//! to the protocol step it is in, and the transcript audit can tell messages apart. Codes
//! `0x01xx` belong to this crate.

use spnn_crypto::{RingMatrix, SecretSeed};
use spnn_net::codec::{Blob, Codec, Message, Reader};
use spnn_net::{CodecError, FloatMatrix};

use crate::config::SpnnConfig;

/// Version of the SPNN protocol spoken by this build (checked at set-up). 3: the configuration
/// carries Burn's whole SGD (dampening, Nesterov, weight decay); 6: metrics carry a
/// regression's RMSE; 7: the configuration carries gradient clipping by value, and an update
/// its comparisons' material.
pub const SPNN_PROTOCOL_VERSION: u16 = 7;

macro_rules! newtype_message {
    ($($(#[$doc:meta])* $name:ident($inner:ty) = $kind:expr, $desc:expr;)*) => {$(
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq)]
        pub struct $name(pub $inner);

        impl Codec for $name {
            fn encode(&self, out: &mut Vec<u8>) {
                self.0.encode(out)
            }
            fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
                <$inner>::read(r).map(Self)
            }
        }

        impl Message for $name {
            const KIND: u16 = $kind;
            const NAME: &'static str = $desc;
        }
    )*};
}

newtype_message! {
    /// Correlated randomness from the dealer for holder 0, in full (holders ≥ 1 get a seed).
    DealerBundle(Vec<RingMatrix>) = 0x0110, "dealer bundle";
    /// The seed from which a holder ≥ 1 derives its dealer bundle.
    DealerSeed(SecretSeed) = 0x0111, "dealer seed";
    /// A holder's contributions to values opened between holders (`E_i`, `F_i`, masks).
    /// Holder to holder only; the server never receives one.
    Opening(Vec<RingMatrix>) = 0x0112, "opening";
    /// A holder's additive share of the first-layer output `Z`, at scale `2^{2f}`, to the server.
    ZShare(RingMatrix) = 0x0113, "Z share";
    /// Holder 0's additive share of the scaled boundary gradient `c·G`, from the server.
    GradShare(RingMatrix) = 0x0114, "gradient share";
    /// The seed from which a holder ≥ 1 derives its share of `c·G`.
    GradSeed(SecretSeed) = 0x0115, "gradient seed";
    /// A seed shared by two holders for zero-communication sharing (set-up, holder to holder).
    PairSeed(SecretSeed) = 0x0116, "pair seed";
    /// Top activations from the server to the label holder.
    Activations(FloatMatrix) = 0x0117, "activations";
    /// The gradient of the loss with respect to the activations, from the label holder.
    HeadGradient(FloatMatrix) = 0x0118, "head gradient";
    /// A holder's masked bottom-model output (pairwise masks cancel in the sum), to the server.
    MaskedOutput(RingMatrix) = 0x0119, "masked output";
    /// The boundary gradient in the clear, to a holder's bottom model (bottom-model mode only).
    BottomGradient(FloatMatrix) = 0x011a, "bottom gradient";
}

newtype_message! {
    /// Private set intersection: how many points the following `PsiPoints` frames carry.
    PsiCount(u64) = 0x0130, "PSI count";
    /// Private set intersection: encoded ristretto255 points, 32 bytes each, at most
    /// `align::CHUNK_POINTS` per frame.
    PsiPoints(Blob) = 0x0131, "PSI points";
}

#[cfg(feature = "insecure-test-hooks")]
newtype_message! {
    /// A holder's weight share revealed to the server: **insecure**, tests only.
    RevealedShare(RingMatrix) = 0x01f0, "revealed share";
}

/// What the server asks the other parties to do next. The server drives every step.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Compute the first-layer output for `ids`; keep state for a backward if `train`.
    Forward {
        /// Protocol step (one per forward).
        step: u64,
        /// The batch: sample ids every holder has.
        ids: Vec<u64>,
        /// Whether a backward may follow.
        train: bool,
    },
    /// Compute the weight-gradient shares of the last training forward.
    Backward {
        /// The step of that forward.
        step: u64,
        /// The public factor `c` the server multiplied `G` by.
        scale: f64,
    },
    /// Apply the accumulated gradient with learning rate `lr`.
    Update {
        /// Update counter.
        step: u64,
        /// Learning rate of this update.
        lr: f64,
    },
    /// Label holder: report the metrics accumulated since the last report.
    Evaluate,
    /// Save this party's state under `tag` in its checkpoint directory.
    Save {
        /// Checkpoint name.
        tag: String,
    },
    /// Send the weight share to the server. **Insecure**: exists only with the
    /// `insecure-test-hooks` feature and is honoured only by holders started with
    /// `allow_insecure_reveal`.
    #[cfg(feature = "insecure-test-hooks")]
    RevealSharesForTests,
    /// End the session.
    Shutdown,
    /// To a separate dealer, instead of `Forward`: deal the material of a forward of `batch`
    /// samples — the dealer needs the batch size, never the sample ids.
    Deal {
        /// Protocol step.
        step: u64,
        /// Batch size.
        batch: u64,
        /// Whether a backward may follow.
        train: bool,
    },
}

impl Codec for Command {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Command::Forward { step, ids, train } => {
                out.push(1);
                step.encode(out);
                ids.encode(out);
                train.encode(out);
            }
            Command::Backward { step, scale } => {
                out.push(2);
                step.encode(out);
                scale.encode(out);
            }
            Command::Update { step, lr } => {
                out.push(3);
                step.encode(out);
                lr.encode(out);
            }
            Command::Evaluate => out.push(4),
            Command::Save { tag } => {
                out.push(5);
                tag.encode(out);
            }
            #[cfg(feature = "insecure-test-hooks")]
            Command::RevealSharesForTests => out.push(6),
            Command::Shutdown => out.push(7),
            Command::Deal { step, batch, train } => {
                out.push(8);
                step.encode(out);
                batch.encode(out);
                train.encode(out);
            }
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(match r.u8("command tag")? {
            1 => Command::Forward {
                step: u64::read(r)?,
                ids: Vec::read(r)?,
                train: bool::read(r)?,
            },
            2 => Command::Backward {
                step: u64::read(r)?,
                scale: f64::read(r)?,
            },
            3 => Command::Update {
                step: u64::read(r)?,
                lr: f64::read(r)?,
            },
            4 => Command::Evaluate,
            5 => Command::Save {
                tag: String::read(r)?,
            },
            #[cfg(feature = "insecure-test-hooks")]
            6 => Command::RevealSharesForTests,
            7 => Command::Shutdown,
            8 => Command::Deal {
                step: u64::read(r)?,
                batch: u64::read(r)?,
                train: bool::read(r)?,
            },
            t => {
                return Err(CodecError::Invalid {
                    what: "command",
                    reason: format!("tag {t}"),
                });
            }
        })
    }
}

impl Message for Command {
    const KIND: u16 = 0x0101;
    const NAME: &'static str = "command";
}

/// A holder's introduction to the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// [`SPNN_PROTOCOL_VERSION`].
    pub version: u16,
    /// The holder's index.
    pub holder: u16,
    /// Number of feature columns it owns.
    pub width: u32,
    /// Whether it holds the labels.
    pub has_labels: bool,
}

impl Codec for Hello {
    fn encode(&self, out: &mut Vec<u8>) {
        self.version.encode(out);
        self.holder.encode(out);
        self.width.encode(out);
        self.has_labels.encode(out);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(Self {
            version: u16::read(r)?,
            holder: u16::read(r)?,
            width: u32::read(r)?,
            has_labels: bool::read(r)?,
        })
    }
}

impl Message for Hello {
    const KIND: u16 = 0x0102;
    const NAME: &'static str = "hello";
}

/// What kind of first layer a session runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKind {
    /// `PrivateLinear`: secret-shared weights `W` (d × `width`).
    PrivateLinear,
    /// `SecureAggregation` of holders' own bottom models, each producing `width` outputs.
    BottomModels,
    /// Bottom models whose outputs reach the server **unmasked**: plain split learning, the
    /// baseline the benchmarks measure the cryptography against. Insecure by design — the
    /// server sees every holder's output. Exists only with the `insecure-test-hooks` feature,
    /// and every holder refuses it unless its policy allows unmasked outputs.
    #[cfg(feature = "insecure-test-hooks")]
    UnmaskedBottomModelsForBaselines,
}

impl LayerKind {
    /// Whether the holders run their own bottom models.
    pub fn has_bottom_models(self) -> bool {
        !matches!(self, Self::PrivateLinear)
    }

    /// Whether the holders mask what they send the server with a zero-sharing.
    pub fn masks_outputs(self) -> bool {
        match self {
            Self::PrivateLinear | Self::BottomModels => true,
            #[cfg(feature = "insecure-test-hooks")]
            Self::UnmaskedBottomModelsForBaselines => false,
        }
    }
}

/// The session parameters, from the server to every party after the hellos.
#[derive(Clone, Debug, PartialEq)]
pub struct Setup {
    /// Feature widths of all holders, in holder order.
    pub widths: Vec<u32>,
    /// Output width of the first layer.
    pub output: u32,
    /// The layer kind.
    pub kind: LayerKind,
    /// The protocol configuration.
    pub config: SpnnConfig,
    /// Resume from this checkpoint tag instead of initialising.
    pub resume: Option<String>,
}

impl Codec for LayerKind {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(match self {
            LayerKind::PrivateLinear => 0,
            LayerKind::BottomModels => 1,
            #[cfg(feature = "insecure-test-hooks")]
            LayerKind::UnmaskedBottomModelsForBaselines => 2,
        });
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        match r.u8("layer kind")? {
            0 => Ok(LayerKind::PrivateLinear),
            1 => Ok(LayerKind::BottomModels),
            #[cfg(feature = "insecure-test-hooks")]
            2 => Ok(LayerKind::UnmaskedBottomModelsForBaselines),
            t => Err(CodecError::Invalid {
                what: "layer kind",
                reason: format!("tag {t}"),
            }),
        }
    }
}

impl Codec for Setup {
    fn encode(&self, out: &mut Vec<u8>) {
        self.widths.encode(out);
        self.output.encode(out);
        self.kind.encode(out);
        self.config.encode(out);
        self.resume.encode(out);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(Self {
            widths: Vec::read(r)?,
            output: u32::read(r)?,
            kind: LayerKind::read(r)?,
            config: SpnnConfig::read(r)?,
            resume: Option::read(r)?,
        })
    }
}

impl Message for Setup {
    const KIND: u16 = 0x0103;
    const NAME: &'static str = "setup";
}

/// A label holder's report on one batch, after every `Activations`: the batch loss if the label
/// holder's `LabelReports` allow it, else nothing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HeadReport {
    /// Mean loss of the batch, if reported.
    pub loss: Option<f64>,
}

impl Codec for HeadReport {
    fn encode(&self, out: &mut Vec<u8>) {
        self.loss.encode(out);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(Self {
            loss: Option::<f64>::read(r)?,
        })
    }
}

impl Message for HeadReport {
    const KIND: u16 = 0x0120;
    const NAME: &'static str = "head report";
}

/// A label holder's evaluation metrics since its last report.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Metrics {
    /// Area under the ROC curve (binary tasks; for more classes each class against the rest,
    /// averaged; 0.5 for a regression).
    pub auc: f64,
    /// Share of the samples whose most likely class is their label (0 for a regression).
    pub accuracy: f64,
    /// Root-mean-square error of a regression's predictions (none for a classifier).
    pub rmse: Option<f64>,
    /// Mean loss.
    pub loss: f64,
    /// Samples evaluated.
    pub count: u64,
}

impl Metrics {
    /// The quality figures for a log line: `RMSE …` for a regression, else `AUC …, accuracy …`.
    pub fn quality(&self) -> String {
        match self.rmse {
            Some(rmse) => format!("RMSE {rmse:.4}"),
            None => format!("AUC {:.4}, accuracy {:.4}", self.auc, self.accuracy),
        }
    }
}

impl Codec for Metrics {
    fn encode(&self, out: &mut Vec<u8>) {
        self.auc.encode(out);
        self.accuracy.encode(out);
        self.rmse.encode(out);
        self.loss.encode(out);
        self.count.encode(out);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(Self {
            auc: f64::read(r)?,
            accuracy: f64::read(r)?,
            rmse: Option::<f64>::read(r)?,
            loss: f64::read(r)?,
            count: u64::read(r)?,
        })
    }
}

/// The label holder's answer to `Command::Evaluate`: its metrics if its `LabelReports` allow
/// it, else nothing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricsReport(pub Option<Metrics>);

impl Codec for MetricsReport {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(Self(Option::<Metrics>::read(r)?))
    }
}

impl Message for MetricsReport {
    const KIND: u16 = 0x0121;
    const NAME: &'static str = "metrics report";
}

/// An acknowledgement: the party finished the command (used where the server must not run
/// ahead, such as saving).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack;

impl Codec for Ack {
    fn encode(&self, _out: &mut Vec<u8>) {}
    fn read(_r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(Ack)
    }
}

impl Message for Ack {
    const KIND: u16 = 0x0122;
    const NAME: &'static str = "ack";
}

/// Every message kind of the SPNN protocols, with its name: the one registry the tests check
/// for unique codes and the audits use to name what a party received.
pub const KINDS: &[(u16, &str)] = &[
    (Command::KIND, Command::NAME),
    (Hello::KIND, Hello::NAME),
    (Setup::KIND, Setup::NAME),
    (DealerBundle::KIND, DealerBundle::NAME),
    (DealerSeed::KIND, DealerSeed::NAME),
    (Opening::KIND, Opening::NAME),
    (ZShare::KIND, ZShare::NAME),
    (GradShare::KIND, GradShare::NAME),
    (GradSeed::KIND, GradSeed::NAME),
    (PairSeed::KIND, PairSeed::NAME),
    (Activations::KIND, Activations::NAME),
    (HeadGradient::KIND, HeadGradient::NAME),
    (MaskedOutput::KIND, MaskedOutput::NAME),
    (BottomGradient::KIND, BottomGradient::NAME),
    (HeadReport::KIND, HeadReport::NAME),
    (MetricsReport::KIND, MetricsReport::NAME),
    (Ack::KIND, Ack::NAME),
    (
        crate::protocol::he::EncryptedShare::KIND,
        crate::protocol::he::EncryptedShare::NAME,
    ),
    (
        crate::protocol::he::MaskedProduct::KIND,
        crate::protocol::he::MaskedProduct::NAME,
    ),
    (
        crate::protocol::he::PaillierKey::KIND,
        crate::protocol::he::PaillierKey::NAME,
    ),
    #[cfg(feature = "insecure-test-hooks")]
    (RevealedShare::KIND, RevealedShare::NAME),
];

/// The name of message kind `kind`, if it is one of [`KINDS`].
pub fn kind_name(kind: u16) -> Option<&'static str> {
    KINDS.iter().find(|(k, _)| *k == kind).map(|(_, n)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use spnn_net::codec::{decode_exact, encode_to_vec};

    fn round_trip<T: Codec + PartialEq + std::fmt::Debug>(v: T) {
        let bytes = encode_to_vec(&v);
        assert_eq!(decode_exact::<T>(&bytes).unwrap(), v);
        for cut in 0..bytes.len() {
            assert!(decode_exact::<T>(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn every_message_round_trips() {
        round_trip(Command::Forward {
            step: 3,
            ids: vec![1, 5, 9],
            train: true,
        });
        round_trip(Command::Backward {
            step: 3,
            scale: 64.0,
        });
        round_trip(Command::Update { step: 1, lr: 0.05 });
        round_trip(Command::Evaluate);
        round_trip(Command::Save {
            tag: "epoch-3".into(),
        });
        #[cfg(feature = "insecure-test-hooks")]
        round_trip(Command::RevealSharesForTests);
        round_trip(Command::Shutdown);
        round_trip(Command::Deal {
            step: 4,
            batch: 64,
            train: false,
        });
        round_trip(Hello {
            version: 1,
            holder: 2,
            width: 15,
            has_labels: true,
        });
        for config in [
            SpnnConfig::default(),
            SpnnConfig::default()
                .with_momentum(0.9)
                .with_labels(crate::LabelMode::Holder(1))
                .with_protocol(crate::Protocol::Paillier)
                .with_he_key_bits(512),
        ] {
            round_trip(Setup {
                widths: vec![15, 15],
                output: 64,
                kind: LayerKind::PrivateLinear,
                config,
                resume: Some("x".into()),
            });
        }
        round_trip(HeadReport { loss: Some(0.5) });
        round_trip(HeadReport { loss: None });
        round_trip(MetricsReport(Some(Metrics {
            auc: 0.99,
            accuracy: 0.95,
            rmse: None,
            loss: 0.1,
            count: 114,
        })));
        round_trip(MetricsReport(None));
        round_trip(Opening(vec![RingMatrix::zeros(2, 3)]));
        assert!(decode_exact::<Command>(&[9]).is_err());
    }

    #[test]
    fn message_kinds_are_unique_and_named() {
        let mut seen = std::collections::HashSet::new();
        for (kind, name) in KINDS {
            assert!(seen.insert(*kind), "kind {kind:#06x} ({name}) used twice");
            assert!(
                *kind >> 8 == 0x01,
                "{name}: codes 0x01xx belong to spnn-burn"
            );
            assert_eq!(kind_name(*kind), Some(*name));
        }
        assert_eq!(kind_name(0x0200), None);
    }
}
