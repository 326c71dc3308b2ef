//! Every party of a session in one process: holder (and dealer) threads over in-memory
//! channels, the server on the caller's thread.
//!
//! The server's model code is the same as in a distributed deployment: only how the
//! [`ServerSession`] is obtained differs.

use std::path::PathBuf;
use std::thread::JoinHandle;

use spnn_data::Table;
use spnn_net::{Network, NetworkConfig, Roster};

use crate::config::DealerMode;
use crate::error::{Result, SpnnError};
use crate::protocol::dealer::run_dealer;
use crate::protocol::holder::{HolderLabels, HolderOptions, HolderSummary, run_holder};
use crate::protocol::server::{ServerSession, SessionSpec};

/// One simulated holder.
pub struct HolderSpec {
    /// Its columns (preprocessed), for every sample id the server may ask for.
    pub features: Table,
    /// Labels and head, for the label holder.
    pub labels: Option<HolderLabels>,
    /// Where it saves checkpoints.
    pub checkpoint_dir: Option<PathBuf>,
    /// Allow the test-only reconstruction of `W`.
    pub allow_insecure_reveal: bool,
}

impl HolderSpec {
    /// A holder with `features` and nothing else.
    pub fn new(features: Table) -> Self {
        Self {
            features,
            labels: None,
            checkpoint_dir: None,
            allow_insecure_reveal: false,
        }
    }
}

/// A running simulation.
pub struct Simulation {
    session: ServerSession,
    networks: Vec<Network>,
    holders: Vec<JoinHandle<Result<HolderSummary>>>,
    dealer: Option<JoinHandle<Result<()>>>,
}

/// Starts the holders (and a separate dealer if the configuration asks for one) and establishes
/// the server's session.
pub fn start(
    holders: Vec<HolderSpec>,
    spec: SessionSpec,
    network: NetworkConfig,
) -> Result<Simulation> {
    let separate = spec.config.dealer == DealerMode::Separate;
    let roster = Roster::spnn(holders.len() as u16, separate)?;
    let networks = Network::in_memory(&roster, network);
    let handles = holders
        .into_iter()
        .zip(networks[1..].iter().cloned())
        .map(|(h, net)| {
            std::thread::Builder::new()
                .name(format!("spnn-holder-{}", net.me().0 - 1))
                .spawn(move || {
                    run_holder(
                        net,
                        h.features,
                        HolderOptions {
                            checkpoint_dir: h.checkpoint_dir,
                            allow_insecure_reveal: h.allow_insecure_reveal,
                            labels: h.labels,
                        },
                    )
                })
                .map_err(|e| SpnnError::Config(format!("cannot start a holder thread: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let dealer = if separate {
        let net = networks.last().expect("a roster with a dealer").clone();
        Some(
            std::thread::Builder::new()
                .name("spnn-dealer".into())
                .spawn(move || run_dealer(net))
                .map_err(|e| SpnnError::Config(format!("cannot start the dealer thread: {e}")))?,
        )
    } else {
        None
    };
    let session = ServerSession::establish(networks[0].clone(), spec)?;
    Ok(Simulation {
        session,
        networks,
        holders: handles,
        dealer,
    })
}

impl Simulation {
    /// The server's session.
    pub fn session(&self) -> &ServerSession {
        &self.session
    }

    /// Every party's network handle, by party id (server first), for meters and transcripts.
    pub fn networks(&self) -> &[Network] {
        &self.networks
    }

    /// Ends the session and waits for every party; returns the holders' summaries or the first
    /// party error.
    pub fn finish(self) -> Result<Vec<HolderSummary>> {
        let shutdown = self.session.shutdown();
        drop(self.session);
        let summaries = self
            .holders
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| SpnnError::Config("a holder thread panicked".into()))?
            })
            .collect::<Result<Vec<_>>>()?;
        if let Some(d) = self.dealer {
            d.join()
                .map_err(|_| SpnnError::Config("the dealer thread panicked".into()))??;
        }
        shutdown?;
        Ok(summaries)
    }
}
