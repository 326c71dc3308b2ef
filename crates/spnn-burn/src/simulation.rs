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
use crate::local::LocalModel;
use crate::protocol::dealer::run_dealer;
use crate::protocol::holder::{
    HolderLabels, HolderOptions, HolderSummary, run_bottom_holder, run_holder,
};
use crate::protocol::policy::PartyPolicy;
use crate::protocol::server::{ServerSession, SessionSpec};
use burn::optim::ModuleOptimizer;
use burn::tensor::Device;
use spnn_crypto::paillier::Keypair;

/// Runs a holder with its own bottom model (built by [`HolderSpec::with_bottom_model`]).
type BottomLauncher =
    Box<dyn FnOnce(Network, Table, HolderOptions) -> Result<HolderSummary> + Send>;

/// One simulated holder.
pub struct HolderSpec {
    /// Its columns (preprocessed), for every sample id the server may ask for.
    pub features: Table,
    /// Labels and head, for the label holder.
    pub labels: Option<HolderLabels>,
    /// Where it saves checkpoints.
    pub checkpoint_dir: Option<PathBuf>,
    /// Its forward ledger over sessions ([`crate::HolderOptions::forward_ledger`]).
    pub forward_ledger: Option<PathBuf>,
    /// Allow the test-only reconstruction of `W`.
    #[cfg(feature = "insecure-test-hooks")]
    pub allow_insecure_reveal: bool,
    /// What it accepts from the server's proposal (default: the secure policy).
    pub policy: PartyPolicy,
    /// Its Paillier key pair for SPNN-HE (default: a fresh one at set-up).
    pub paillier: Option<Keypair>,
    /// Bottom-model mode: the holder's own model. All holders of a simulation have one, or
    /// none does.
    pub bottom: Option<BottomLauncher>,
}

impl HolderSpec {
    /// A holder with `features` and nothing else.
    pub fn new(features: Table) -> Self {
        Self {
            features,
            labels: None,
            checkpoint_dir: None,
            forward_ledger: None,
            #[cfg(feature = "insecure-test-hooks")]
            allow_insecure_reveal: false,
            policy: PartyPolicy::default(),
            paillier: None,
            bottom: None,
        }
    }

    /// The same holder with another policy.
    pub fn with_policy(mut self, policy: PartyPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The same holder running its own Burn bottom `model`, trained by `optim` on the autodiff
    /// `device`.
    pub fn with_bottom_model<M: LocalModel>(
        mut self,
        model: M,
        optim: ModuleOptimizer,
        device: Device,
    ) -> Self {
        self.bottom = Some(Box::new(move |net, features, options| {
            run_bottom_holder(net, features, model, optim, device, options)
        }));
        self
    }
}

/// A running simulation.
pub struct Simulation {
    session: ServerSession,
    networks: Vec<Network>,
    holders: Vec<JoinHandle<Result<HolderSummary>>>,
    dealer: Option<JoinHandle<Result<()>>>,
}

/// Starts the holders (and a separate dealer if the configuration asks for one) over in-memory
/// channels and establishes the server's session.
pub fn start(
    holders: Vec<HolderSpec>,
    spec: SessionSpec,
    network: NetworkConfig,
) -> Result<Simulation> {
    let separate = spec.config.dealer == DealerMode::Separate;
    let roster = Roster::spnn(holders.len() as u16, separate)?;
    start_on(Network::in_memory(&roster, network), holders, spec)
}

/// The same over networks built elsewhere — for instance a mutual-TLS mesh on loopback
/// (`spnn_net::transport::tls::loopback_mesh`): party 0 is the server, parties `1..=k` the
/// holders, then the dealer if the configuration has a separate one.
pub fn start_on(
    networks: Vec<Network>,
    holders: Vec<HolderSpec>,
    spec: SessionSpec,
) -> Result<Simulation> {
    launch(networks, holders, spec, false)
}

/// Plain split learning over `networks`: every holder runs its bottom model and sends the
/// output to the server **unmasked** ([`crate::messages::LayerKind::UnmaskedBottomModelsForBaselines`]).
/// The baseline the benchmarks compare the cryptography against; every holder's policy must
/// allow unmasked outputs. Only with the `insecure-test-hooks` feature.
#[cfg(feature = "insecure-test-hooks")]
pub fn start_unmasked_bottom_models_for_baselines(
    networks: Vec<Network>,
    holders: Vec<HolderSpec>,
    spec: SessionSpec,
) -> Result<Simulation> {
    if holders.iter().any(|h| h.bottom.is_none()) {
        return Err(SpnnError::Config(
            "split learning needs a bottom model at every holder".into(),
        ));
    }
    launch(networks, holders, spec, true)
}

fn launch(
    networks: Vec<Network>,
    holders: Vec<HolderSpec>,
    spec: SessionSpec,
    unmasked: bool,
) -> Result<Simulation> {
    let separate = spec.config.dealer == DealerMode::Separate;
    let expected = Roster::spnn(holders.len() as u16, separate)?;
    if networks.len() != expected.len() || networks.first().map(|n| n.roster()) != Some(&expected) {
        return Err(SpnnError::Config(format!(
            "{} networks do not match {} holders{}",
            networks.len(),
            holders.len(),
            if separate { " and a dealer" } else { "" }
        )));
    }
    for labels in holders.iter().filter_map(|h| h.labels.as_ref()) {
        labels.defence.validate()?;
    }
    let bottoms = holders.iter().filter(|h| h.bottom.is_some()).count();
    if bottoms != 0 && bottoms != holders.len() {
        return Err(SpnnError::Config(
            "either every holder has a bottom model or none has".into(),
        ));
    }
    // The dealer accepts an insecure proposal only if every holder does.
    let dealer_policy = PartyPolicy {
        allow_insecure_randomness: holders.iter().all(|h| h.policy.allow_insecure_randomness),
        allow_unmasked_outputs: holders.iter().all(|h| h.policy.allow_unmasked_outputs),
        min_z_noise: holders
            .iter()
            .map(|h| h.policy.min_z_noise)
            .fold(f32::INFINITY, f32::min),
        ..PartyPolicy::default()
    };
    let handles = holders
        .into_iter()
        .zip(networks[1..].iter().cloned())
        .map(|(h, net)| {
            std::thread::Builder::new()
                .name(format!("spnn-holder-{}", net.me().0 - 1))
                .spawn(move || {
                    let options = HolderOptions {
                        checkpoint_dir: h.checkpoint_dir,
                        forward_ledger: h.forward_ledger,
                        #[cfg(feature = "insecure-test-hooks")]
                        allow_insecure_reveal: h.allow_insecure_reveal,
                        labels: h.labels,
                        paillier: h.paillier,
                        policy: h.policy,
                        ..Default::default()
                    };
                    let (me, end) = (net.me(), net.clone());
                    let result = match h.bottom {
                        Some(launch) => launch(net, h.features, options),
                        None => run_holder(net, h.features, options),
                    };
                    // Say why at once, and close the holder's end so that the server's wait for
                    // it ends now, not at its receive timeout.
                    if let Err(e) = &result {
                        tracing::error!("simulated holder {me} failed: {e}");
                        eprintln!("spnn simulation: holder {me} failed: {e}");
                        end.close();
                    }
                    result
                })
                .map_err(|e| SpnnError::Config(format!("cannot start a holder thread: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let dealer = if separate {
        let net = networks.last().expect("a roster with a dealer").clone();
        Some(
            std::thread::Builder::new()
                .name("spnn-dealer".into())
                .spawn(move || {
                    let result = run_dealer(net.clone(), &dealer_policy);
                    if result.is_err() {
                        net.close();
                    }
                    result
                })
                .map_err(|e| SpnnError::Config(format!("cannot start the dealer thread: {e}")))?,
        )
    } else {
        None
    };
    let server = networks[0].clone();
    let established = match (bottoms > 0, unmasked) {
        #[cfg(feature = "insecure-test-hooks")]
        (true, true) => ServerSession::establish_unmasked_bottom_models_for_baselines(server, spec),
        (true, _) => ServerSession::establish_bottom_models(server, spec),
        (false, _) => ServerSession::establish(server, spec),
    };
    let session = match established {
        Ok(session) => session,
        Err(e) => {
            // The server's end closes, so every party still waiting for it stops now; each is
            // joined before the error returns (a holder left running would keep its files,
            // such as a forward ledger's lock, from the next session).
            networks[0].close();
            for h in handles {
                let _ = h.join();
            }
            if let Some(d) = dealer {
                let _ = d.join();
            }
            return Err(e);
        }
    };
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
        // Every party's thread is joined before any error is returned: a holder still running
        // after `finish` would keep its files (a forward ledger's lock) from the next session.
        let holders: Vec<Result<HolderSummary>> = self
            .holders
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| SpnnError::Config("a holder thread panicked".into()))?
            })
            .collect();
        let dealer = self.dealer.map(|d| {
            d.join()
                .map_err(|_| SpnnError::Config("the dealer thread panicked".into()))?
        });
        let summaries = holders.into_iter().collect::<Result<Vec<_>>>()?;
        dealer.transpose()?;
        shutdown?;
        Ok(summaries)
    }
}
