//! The dealer: Beaver triples and truncation pairs for the holders.
//!
//! The dealer is the server by default ([`crate::config::DealerMode::Server`]) or a separate
//! party ([`run_dealer`]). Either way it sends material to holders only and never receives a
//! value derived from data: the openings `E`, `F` travel between holders.

use spnn_crypto::RingMatrix;
use spnn_net::{Network, PartyId, Role};

use super::{backward_shifts, bundle, needs_pairs, update_shifts};
use crate::config::SpnnConfig;
use crate::error::{Result, SpnnError, protocol};
use crate::messages::{Ack, Command, DealerBundle, DealerSeed, LayerKind, Setup};

/// The dealer's knowledge: shapes and configuration, no data.
#[derive(Clone, Debug)]
pub(crate) struct DealerEngine {
    pub(crate) me: PartyId,
    pub(crate) holders: Vec<PartyId>,
    pub(crate) d: usize,
    pub(crate) h: usize,
    pub(crate) config: SpnnConfig,
    pub(crate) kind: LayerKind,
}

impl DealerEngine {
    fn send_bundle(
        &self,
        net: &Network,
        values: Vec<RingMatrix>,
        step: u64,
        purpose: &str,
    ) -> Result<()> {
        let mut rng = self
            .config
            .randomness
            .rng(self.me, step, &format!("deal-{purpose}"));
        let (explicit, seeds) = bundle::deal(values, self.holders.len(), &mut rng)?;
        net.send(self.holders[0], &DealerBundle(explicit))?;
        for (seed, holder) in seeds.into_iter().zip(&self.holders[1..]) {
            net.send(*holder, &DealerSeed(seed))?;
        }
        Ok(())
    }

    /// The triple of one forward of `batch` samples (and its backward, when `train`).
    pub(crate) fn forward(
        &self,
        net: &Network,
        step: u64,
        batch: usize,
        train: bool,
    ) -> Result<()> {
        if self.kind != LayerKind::PrivateLinear {
            return Ok(());
        }
        let mut rng = self.config.randomness.rng(self.me, step, "triple");
        let u = RingMatrix::random(batch, self.d, &mut rng);
        let v = RingMatrix::random(self.d, self.h, &mut rng);
        let uv = u.matmul(&v)?;
        let mut values = vec![u, v, uv];
        if train {
            let v2 = RingMatrix::random(batch, self.h, &mut rng);
            let w2 = values[0].transpose().matmul(&v2)?;
            values.extend([v2, w2]);
        }
        self.send_bundle(net, values, step, "forward")
    }

    /// Truncation pairs `(r, r ≫ shift)` of the `d × h` weight shape, one per shift, when the
    /// holders need them (more than two holders).
    pub(crate) fn pairs(
        &self,
        net: &Network,
        step: u64,
        purpose: &str,
        shifts: &[u32],
    ) -> Result<()> {
        if !needs_pairs(self.holders.len(), self.kind) || shifts.is_empty() {
            return Ok(());
        }
        let mut rng = self.config.randomness.rng(self.me, step, purpose);
        let mut values = Vec::with_capacity(2 * shifts.len());
        for &shift in shifts {
            let r = RingMatrix::random(self.d, self.h, &mut rng);
            let rs = r.map(|x| ((x as i64) >> shift) as u64);
            values.extend([r, rs]);
        }
        self.send_bundle(net, values, step, purpose)
    }

    /// Handles one command as the dealer.
    pub(crate) fn handle(&self, net: &Network, cmd: &Command) -> Result<()> {
        match cmd {
            Command::Forward { step, ids, train } => self.forward(net, *step, ids.len(), *train),
            Command::Backward { step, scale } => self.pairs(
                net,
                *step,
                "backward-pairs",
                &backward_shifts(&self.config, *scale)?,
            ),
            Command::Update { step, lr } => self.pairs(
                net,
                *step,
                "update-pairs",
                &update_shifts(&self.config, *lr)?,
            ),
            _ => Ok(()),
        }
    }
}

/// Runs a separate dealer party until the server ends the session.
pub fn run_dealer(net: Network) -> Result<()> {
    if net.role() != Role::Dealer {
        return Err(SpnnError::Config(format!("{} is not the dealer", net.me())));
    }
    let server = net.roster().id_of(Role::Server)?;
    let setup: Setup = net.recv(server)?;
    setup.config.validate()?;
    let engine = DealerEngine {
        me: net.me(),
        holders: net.roster().holders(),
        d: setup.widths.iter().map(|&w| w as usize).sum(),
        h: setup.output as usize,
        config: setup.config,
        kind: setup.kind,
    };
    loop {
        let cmd: Command = net.recv(server)?;
        match cmd {
            Command::Shutdown => return Ok(()),
            Command::Save { .. } => net.send(server, &Ack)?,
            Command::Evaluate | Command::RevealSharesForTests => {
                return Err(protocol(server, "command not meant for the dealer"));
            }
            cmd => engine.handle(&net, &cmd)?,
        }
    }
}
