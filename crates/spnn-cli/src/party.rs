//! Running one party of a deployment over mutual TLS, or every party in one process.

use std::path::Path;
use std::time::Duration;

use spnn_burn::{HolderOptions, run_dealer, run_holder};
use spnn_crypto::paillier::{Keypair, PublicKeyData, SecretKeyData};
use spnn_data::Table;
use spnn_net::certs::Identity;
use spnn_net::transport::tls::{TlsConfig, TlsTransport};
use spnn_net::{Network, NetworkConfig, Role, Roster};

use crate::config::Deployment;
use crate::data::{holder_scoring_table, holder_table};
use crate::error::{CliError, Result};
use crate::server::{self, ServerOptions, Summary};

/// What a party did.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The server's training summary.
    Server(Summary),
    /// A holder served this many forwards and updates.
    Holder {
        /// Forward steps.
        forwards: u64,
        /// Updates.
        updates: u64,
    },
    /// The dealer finished.
    Dealer,
}

fn network_config(dep: &Deployment) -> NetworkConfig {
    NetworkConfig::new(dep.session.id).with_timeout(Duration::from_secs(dep.session.timeout_secs))
}

fn role(roster: &Roster, party: &str) -> Result<(spnn_net::PartyId, Role)> {
    let role =
        Role::from_name(party).map_err(|_| CliError::Usage(format!("unknown party {party:?}")))?;
    let id = roster
        .id_of(role)
        .map_err(|_| CliError::Usage(format!("{party} is not a party of this deployment")))?;
    Ok((id, role))
}

/// Connects `party` to every other party of the deployment over mutual TLS.
pub fn connect(dep: &Deployment, party: &str) -> Result<Network> {
    let roster = dep.roster();
    let (me, _) = role(&roster, party)?;
    let identity = Identity::load(&dep.resolve(&dep.certs.dir), party)?;
    let mut cfg = TlsConfig::new(me, roster.clone(), dep.addresses(), identity);
    cfg.connect_timeout = Duration::from_secs(dep.session.connect_timeout_secs);
    let entry = &dep.parties[party];
    let listen = entry.listen.unwrap_or(entry.address);
    let listener = std::net::TcpListener::bind(listen)
        .map_err(|e| CliError::Io(format!("{party}: listen on {listen}: {e}")))?;
    tracing::info!(
        "{party} ({me}) listening on {listen} (reached at {}), connecting to its peers",
        entry.address
    );
    let transport = TlsTransport::establish_with_listener(cfg, listener)?;
    tracing::info!("{party}: all peers connected");
    Ok(Network::new(me, roster, network_config(dep), transport)?)
}

/// Runs `party` on `net` until the session ends.
pub fn run_on(dep: &Deployment, party: &str, net: Network, opts: ServerOptions) -> Result<Outcome> {
    let (_, role) = role(&net.roster().clone(), party)?;
    match role {
        Role::Server => Ok(Outcome::Server(server::train(dep, net, opts)?)),
        Role::Holder(_) => {
            let table = holder_table(dep, dep.data_of(party)?)?;
            serve(dep, party, net, table)
        }
        Role::Dealer => {
            run_dealer(net, &dep.policy(party)?)?;
            Ok(Outcome::Dealer)
        }
    }
}

/// Runs holder `party` on `net` with `table` until the session ends.
fn serve(dep: &Deployment, party: &str, net: Network, table: Table) -> Result<Outcome> {
    tracing::info!(
        "{party}: {} samples, {} features",
        table.rows(),
        table.cols()
    );
    let paillier = match &dep.parties[party].paillier_keys {
        Some(dir) => Some(load_paillier(&dep.resolve(dir), party)?),
        None => None,
    };
    let summary = run_holder(
        net,
        table,
        HolderOptions {
            checkpoint_dir: dep.checkpoint_dir(party),
            forward_ledger: dep.forward_ledger(party),
            keep_checkpoints: dep.training.keep_checkpoints,
            paillier,
            policy: dep.policy(party)?,
            ..Default::default()
        },
    )?;
    Ok(Outcome::Holder {
        forwards: summary.forwards,
        updates: summary.updates,
    })
}

/// Runs holder `party` serving the new, unlabelled records in `records` (its data's columns
/// and id column, preprocessed as its training data) for the server's `spnn predict --ids`.
pub fn score(dep: &Deployment, party: &str, records: &Path) -> Result<Outcome> {
    dep.policy(party)?;
    let table = holder_scoring_table(dep, dep.data_of(party)?, records)?;
    serve(dep, party, connect(dep, party)?, table)
}

/// Loads the key pair `spnn keygen --name <party>` wrote into `dir`.
pub fn load_paillier(dir: &std::path::Path, party: &str) -> Result<Keypair> {
    let read = |file: String| -> Result<String> {
        let path = dir.join(file);
        std::fs::read_to_string(&path).map_err(|e| CliError::Io(format!("{}: {e}", path.display())))
    };
    let bad = |e: serde_json::Error| CliError::Io(format!("{party}'s Paillier key: {e}"));
    let public: PublicKeyData =
        serde_json::from_str(&read(format!("{party}.paillier.pub.json"))?).map_err(bad)?;
    let secret: SecretKeyData =
        serde_json::from_str(&read(format!("{party}.paillier.key.json"))?).map_err(bad)?;
    // Validated like a generated key: size, equal primes, n = p·q, h_s an n-th residue.
    Keypair::from_data(&public, &secret).map_err(|e| {
        CliError::Io(format!(
            "{party}'s Paillier key pair in {}: {e}",
            dir.display()
        ))
    })
}

/// Runs `party` of the deployment as its own process would. The party's policy is checked
/// before it connects to anyone.
pub fn run(dep: &Deployment, party: &str, opts: ServerOptions) -> Result<Outcome> {
    dep.policy(party)?;
    run_on(dep, party, connect(dep, party)?, opts)
}

/// Runs every party in this process over in-memory channels; returns the server's summary.
/// With the same `session.insecure_seed`, the result is bit for bit that of a deployment.
pub fn simulate(dep: &Deployment, opts: ServerOptions) -> Result<Summary> {
    let roster = dep.roster();
    let nets = Network::in_memory(&roster, network_config(dep));
    let others: Vec<_> = nets[1..]
        .iter()
        .cloned()
        .map(|net| {
            let dep = dep.clone();
            let name = roster.name(net.me()).expect("roster");
            std::thread::spawn(move || run_on(&dep, &name, net, ServerOptions::default()))
        })
        .collect();
    let result = server::train(dep, nets[0].clone(), opts);
    drop(nets);
    for h in others {
        h.join()
            .map_err(|_| CliError::Usage("a party thread panicked".into()))??;
    }
    result
}
