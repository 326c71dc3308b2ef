//! Running one party of a deployment over mutual TLS, or every party in one process.

use std::path::Path;
use std::time::Duration;

use spnn_burn::align::{AlignSpec, Alignment, align_with_owner};
use spnn_burn::messages::Metrics;
use spnn_burn::{
    HolderLabels, HolderOptions, TopLayers, run_bottom_holder, run_dealer, run_holder,
};
use spnn_crypto::paillier::{Keypair, PublicKeyData, SecretKeyData};
use spnn_data::Table;
use spnn_net::certs::Identity;
use spnn_net::transport::tls::{TlsConfig, TlsTransport};
use spnn_net::{Network, NetworkConfig, Role, Roster};

use crate::config::{Deployment, Task};
use crate::data::{holder_scoring_table, holder_table, label_table, source_ids, split};
use crate::error::{CliError, Result};
use crate::model::LocalMlp;
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
        /// The label holder: its last evaluation, on its own side (none for another holder,
        /// or a session without an evaluation with labels).
        metrics: Option<Metrics>,
        /// The label holder: how many samples' scores it wrote to `--out`.
        scores_written: usize,
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
    connect_to(dep, party, dep.roster(), network_config(dep))
}

/// Connects `party` to the parties of `roster` (the deployment's, or its first parties).
fn connect_to(
    dep: &Deployment,
    party: &str,
    roster: Roster,
    config: NetworkConfig,
) -> Result<Network> {
    let (me, _) = role(&roster, party)?;
    let identity = Identity::load(&dep.resolve(&dep.certs.dir), party)?;
    let addresses = dep.addresses()[..roster.len()].to_vec();
    let mut cfg = TlsConfig::new(me, roster.clone(), addresses, identity);
    cfg.connect_timeout = Duration::from_secs(dep.session.connect_timeout_secs);
    let entry = &dep.parties[party];
    let listen = entry.own.listen.unwrap_or(entry.address);
    let listener = std::net::TcpListener::bind(listen)
        .map_err(|e| CliError::Io(format!("{party}: listen on {listen}: {e}")))?;
    tracing::info!(
        "{party} ({me}) listening on {listen} (reached at {}), connecting to its peers",
        entry.address
    );
    let transport = TlsTransport::establish_with_listener(cfg, listener)?;
    tracing::info!("{party}: all peers connected");
    Ok(Network::new(me, roster, config, transport)?)
}

/// Runs `party` on `net` until the session ends.
pub fn run_on(dep: &Deployment, party: &str, net: Network, opts: ServerOptions) -> Result<Outcome> {
    let (_, role) = role(&net.roster().clone(), party)?;
    match role {
        Role::Server => Ok(Outcome::Server(server::train(dep, net, opts)?)),
        Role::Holder(_) => {
            let table = holder_table(dep, dep.data_of(party)?)?;
            let labels = label_holder(dep, party, &table, false)?;
            serve(dep, party, net, table, labels, opts.scores.as_deref())
        }
        Role::Dealer => {
            run_dealer(net, &dep.policy(party)?)?;
            Ok(Outcome::Dealer)
        }
    }
}

/// The label holder's labels, top layers and defence if `party` owns the labels (else
/// none): its label table, or for `scoring` new records (`features`) no labels. It knows its
/// own copy of the schedule: the split of the samples it serves (it trains on none of its
/// test samples and measures only them), the learning rate, the activations' width.
fn label_holder(
    dep: &Deployment,
    party: &str,
    features: &Table,
    scoring: bool,
) -> Result<Option<HolderLabels>> {
    if party != dep.protocol.labels_at {
        return Ok(None);
    }
    let table = if scoring {
        Table::new(features.ids().to_vec(), vec![], vec![], None)?
    } else {
        label_table(dep)?
    };
    let t = &dep.training;
    let (_, test) = split(features.ids(), t.test_fraction, t.split_seed)?;
    let (model, device) = server::init_alone(dep, party, |d| LocalMlp::top(&dep.model, d));
    let optim = dep.config_for(party)?.optimizer_config().init();
    let top = match dep.model.task {
        Task::Binary => TopLayers::new(model, optim, device),
        Task::Multiclass => TopLayers::multiclass(model, optim, device, dep.model.outputs()),
        Task::Regression => {
            let delta = dep.model.huber_delta.ok_or_else(|| {
                CliError::Usage("model.huber_delta: required for a regression at a holder".into())
            })?;
            TopLayers::regression(model, optim, device, delta)?
        }
    };
    let l = dep.labels()?;
    Ok(Some(
        HolderLabels::new(table, top)
            .with_defence(l.defence())
            .with_reports(l.reports())
            .with_test_ids(&test)
            .with_learning_rate(t.learning_rate)
            .with_input_width(*dep.model.hidden.last().expect("validated")),
    ))
}

/// Runs holder `party` on `net` with `table` (and `labels`, for the label owner) until the
/// session ends; the label owner writes its scores to `scores_out` if given.
fn serve(
    dep: &Deployment,
    party: &str,
    net: Network,
    table: Table,
    labels: Option<HolderLabels>,
    scores_out: Option<&Path>,
) -> Result<Outcome> {
    if scores_out.is_some() && labels.is_none() {
        return Err(CliError::Usage(format!(
            "--out: only the label owner ({}) has scores to write, not {party}",
            dep.protocol.labels_at
        )));
    }
    tracing::info!(
        "{party}: {} samples, {} features{}",
        table.rows(),
        table.cols(),
        if labels.is_some() {
            ", and the labels"
        } else {
            ""
        }
    );
    let paillier = match &dep.parties[party].own.paillier_keys {
        Some(dir) => Some(load_paillier(&dep.resolve(dir), party)?),
        None => None,
    };
    let logs = labels.as_ref().map(|l| (l.metrics(), l.scores()));
    let options = HolderOptions {
        checkpoint_dir: dep.checkpoint_dir(party),
        forward_ledger: dep.forward_ledger(party),
        keep_checkpoints: dep.training.keep_checkpoints,
        paillier,
        policy: dep.policy(party)?,
        labels,
        ..Default::default()
    };
    let summary = match &dep.model.bottom {
        None => run_holder(net, table, options)?,
        Some(_) => {
            // Its own model and Burn's SGD of the file, trained with the gradient the server
            // returns.
            let cols = table.cols();
            let (model, device) =
                server::init_alone(dep, party, |d| LocalMlp::bottom(&dep.model, cols, d));
            let optim = dep.config_for(party)?.optimizer_config().init();
            run_bottom_holder(net, table, model, optim, device, options)?
        }
    };
    let (metrics, scores) = match logs {
        Some((m, s)) => (m.last(), s.all()),
        None => (None, Vec::new()),
    };
    if let Some(out) = scores_out {
        let lines = server::prediction_file(&dep.model, &scores);
        std::fs::write(out, lines).map_err(|e| CliError::Io(format!("{}: {e}", out.display())))?;
    }
    Ok(Outcome::Holder {
        forwards: summary.forwards,
        updates: summary.updates,
        metrics,
        scores_written: if scores_out.is_some() {
            scores.len()
        } else {
            0
        },
    })
}

/// Runs holder `party` serving the new, unlabelled records in `records` (its data's columns
/// and id column, preprocessed as its training data) for the server's `spnn predict --ids`;
/// the label owner writes its scores of them to `scores_out`.
pub fn score(
    dep: &Deployment,
    party: &str,
    records: &Path,
    aligned: Option<&Path>,
    scores_out: Option<&Path>,
) -> Result<Outcome> {
    check_inputs(dep, party)?;
    check_scores_out(dep, party, scores_out)?;
    let mut table = holder_scoring_table(dep, dep.data_of(party)?, records)?;
    if let Some(path) = aligned {
        table = table.realigned(&crate::data::read_alignment(path)?)?;
    }
    let labels = label_holder(dep, party, &table, true)?;
    serve(dep, party, connect(dep, party)?, table, labels, scores_out)
}

/// The ids `party` brings to `spnn align`: a holder's (the label holder's: those it also has a
/// label for), the server's labelled ids when it owns the labels; none for a server that only
/// aggregates. For scoring (`Some(records)`) a holder brings the ids of its new records and the
/// server only aggregates.
fn alignment_ids(
    dep: &Deployment,
    party: &str,
    scoring: Option<Option<&Path>>,
) -> Result<Option<Vec<u64>>> {
    if let Some(records) = scoring {
        return match (role(&dep.roster(), party)?.1, records) {
            (Role::Holder(_), Some(path)) => {
                Ok(Some(crate::data::record_ids(dep.data_of(party)?, path)?))
            }
            (Role::Holder(_), None) => Err(CliError::Usage(format!(
                "--score: {party} aligns new records: name their file (--score RECORDS.csv)"
            ))),
            (Role::Server, None) => Ok(None),
            _ => Err(CliError::Usage(format!(
                "--score: only a holder brings a records file, the server the flag alone; {party} \
                 takes no part"
            ))),
        };
    }
    let owner = party == dep.protocol.labels_at;
    let labelled = || -> Result<Vec<u64>> { Ok(source_ids(dep, &dep.labels()?.data)?) };
    match role(&dep.roster(), party)?.1 {
        Role::Server => Ok(owner.then(labelled).transpose()?),
        Role::Holder(_) => {
            let mut ids = source_ids(dep, dep.data_of(party)?)?;
            if owner {
                let with_label: std::collections::HashSet<u64> = labelled()?.into_iter().collect();
                ids.retain(|id| with_label.contains(id));
            }
            Ok(Some(ids))
        }
        Role::Dealer => Err(CliError::Usage(
            "the dealer holds no ids: it takes no part in spnn align".into(),
        )),
    }
}

/// `spnn align`: runs `party`'s side of private set intersection with the other data holders
/// (and the server, which aggregates) and writes the alignment to `out` — `id,source_id` for
/// a party with ids (position in the shared order, its own id), `id` alone for a server that
/// holds none. The separate dealer, if any, takes no part. Returns the alignment.
pub fn align(
    dep: &Deployment,
    party: &str,
    out: &Path,
    scoring: Option<Option<&Path>>,
) -> Result<Alignment> {
    let ids = alignment_ids(dep, party, scoring)?;
    let roster = Roster::spnn(dep.holders() as u16, false)?;
    let server = roster.id_of(Role::Server)?;
    let holders = roster.holders();
    tracing::info!(
        "{party}: aligning {} ids with the other parties",
        ids.as_ref()
            .map_or("no".to_string(), |i| i.len().to_string())
    );
    let timeout = Duration::from_secs(dep.session.align_timeout_secs);
    let net = connect_to(
        dep,
        party,
        roster,
        network_config(dep).with_timeout(timeout),
    )?;
    let alignment = match (dep.label_mode()?, ids) {
        // The server owns the labels: it aggregates the holders' alignment, then meets their
        // common samples only (spnn_burn::align::align_with_owner).
        (spnn_burn::LabelMode::Server, Some(ids)) if scoring.is_none() => {
            align_with_owner(&net, &holders, server, &ids)?
        }
        (_, ids) => {
            let spec = AlignSpec {
                participants: holders,
                aggregator: server,
            };
            spnn_burn::align::align(&net, &spec, ids.as_deref())?
        }
    };
    drop(net);
    if alignment.size == 0 {
        return Err(CliError::Usage(
            "no sample id is common to every party: nothing to train on".into(),
        ));
    }
    let mut text = String::new();
    match &alignment.ids {
        Some(ids) => {
            text += "id,source_id\n";
            for (i, id) in ids.iter().enumerate() {
                text += &format!("{i},{id}\n");
            }
        }
        None => {
            text += "id\n";
            for i in 0..alignment.size {
                text += &format!("{i}\n");
            }
        }
    }
    std::fs::write(out, text).map_err(|e| CliError::Io(format!("{}: {e}", out.display())))?;
    Ok(alignment)
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

/// Checks, before `party` connects to anyone, its policy and that its own inputs are
/// configured: a holder's data, the label owner's labels, the server's ids.
pub fn check_inputs(dep: &Deployment, party: &str) -> Result<()> {
    dep.policy(party)?;
    if dep.session.insecure_seed.is_some() {
        tracing::warn!(
            "INSECURE: {party} runs with session.insecure_seed; anyone who knows the seed \
             knows every share. For tests and demonstrations only."
        );
    }
    if party == dep.protocol.labels_at {
        dep.labels()?;
    }
    match Role::from_name(party) {
        Ok(Role::Holder(_)) => {
            dep.data_of(party)?;
        }
        Ok(Role::Server) if party != dep.protocol.labels_at => {
            dep.server_ids()?;
        }
        _ => {}
    }
    Ok(())
}

/// Refuses `--out` for a party other than the label owner, before it connects.
fn check_scores_out(dep: &Deployment, party: &str, out: Option<&Path>) -> Result<()> {
    if out.is_some() && (party != dep.protocol.labels_at || party == "server") {
        return Err(CliError::Usage(format!(
            "--out: only a label holder writes scores with spnn run ({party} is not one; with \
             the labels at the server, spnn predict --out writes them)"
        )));
    }
    Ok(())
}

/// Runs `party` of the deployment as its own process would. The party's policy and inputs are
/// checked before it connects to anyone.
pub fn run(dep: &Deployment, party: &str, opts: ServerOptions) -> Result<Outcome> {
    check_inputs(dep, party)?;
    check_scores_out(dep, party, opts.scores.as_deref())?;
    run_on(dep, party, connect(dep, party)?, opts)
}

/// Runs every party in this process over in-memory channels; returns the server's summary
/// and every other party's outcome, by name. With the same `session.insecure_seed`, the result
/// is bit for bit that of a deployment. `opts.scores` goes to the label holder.
pub fn simulate(
    dep: &Deployment,
    opts: ServerOptions,
) -> Result<(Summary, Vec<(String, Outcome)>)> {
    let roster = dep.roster();
    for party in roster.ids() {
        check_inputs(dep, &roster.name(party).expect("roster"))?;
    }
    let nets = Network::in_memory(&roster, network_config(dep));
    let others: Vec<_> = nets[1..]
        .iter()
        .cloned()
        .map(|net| {
            let dep = dep.clone();
            let name = roster.name(net.me()).expect("roster");
            let opts = ServerOptions {
                progress: false,
                scores: opts
                    .scores
                    .clone()
                    .filter(|_| name == dep.protocol.labels_at),
            };
            std::thread::spawn(move || Ok((name.clone(), run_on(&dep, &name, net, opts)?)))
        })
        .collect();
    let opts = ServerOptions {
        scores: None,
        ..opts
    };
    let result = server::train(dep, nets[0].clone(), opts);
    drop(nets);
    let others: Vec<Result<(String, Outcome)>> = others
        .into_iter()
        .map(|h| {
            h.join()
                .map_err(|_| CliError::Usage("a party thread panicked".into()))?
        })
        .collect();
    let mut outcomes = Vec::new();
    let mut errors = Vec::new();
    let summary = result.map_err(|e| errors.push(e)).ok();
    for other in others {
        match other {
            Ok(o) => outcomes.push(o),
            Err(e) => errors.push(e),
        }
    }
    // The cause, not its echo: a party that fails makes the others lose it or time out.
    let cause = errors.iter().position(|e| !lost_a_peer(e)).unwrap_or(0);
    match summary {
        Some(summary) if errors.is_empty() => Ok((summary, outcomes)),
        _ => Err(errors.swap_remove(cause)),
    }
}

/// Whether `e` only says that another party vanished or fell silent.
fn lost_a_peer(e: &CliError) -> bool {
    use spnn_net::NetError::{PeerLost, Timeout};
    matches!(
        e,
        CliError::Net(PeerLost { .. } | Timeout { .. })
            | CliError::Spnn(spnn_burn::SpnnError::Net(PeerLost { .. } | Timeout { .. }))
    )
}
