//! `spnn`: certificates and keys for a deployment, and running its parties.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use spnn_cli::config::Deployment;
use spnn_cli::party::{self, Outcome};
use spnn_cli::server::{self, ServerOptions};
use spnn_cli::{CliError, Result};
use spnn_crypto::SecureRng;
use spnn_crypto::paillier::{KeySize, Keypair};
use spnn_net::Roster;
use spnn_net::certs::{CertificateAuthority, CertificateRequest, DeploymentCerts, write_secret};

/// Privacy-preserving training of one network by several data holders (SPNN on Burn).
#[derive(Parser, Debug)]
#[command(name = "spnn", version)]
struct Cli {
    /// Only warnings and errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// More detail (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Certificates: `ca`, `request` and `sign` keep every private key on its owner's host;
    /// without a step, creates a CA and every party's certificate and key in one directory
    /// (demonstrations only: whoever runs it holds every key).
    #[command(args_conflicts_with_subcommands = true)]
    Certs {
        #[command(subcommand)]
        step: Option<CertsStep>,
        /// Directory to write `ca.pem`, `ca.key` and `<party>.pem` / `<party>.key` into.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Number of data holders.
        #[arg(long, default_value_t = 2)]
        holders: u16,
        /// Also a certificate for a separate dealer.
        #[arg(long)]
        dealer: bool,
        /// A name for the deployment (in the CA's subject).
        #[arg(long, default_value = "spnn")]
        deployment: String,
    },
    /// Generates a Paillier key pair (public key JSON, secret key JSON with mode 0600).
    Keygen {
        /// Directory to write `<name>.paillier.pub.json` and `<name>.paillier.key.json` into.
        #[arg(long)]
        out: PathBuf,
        /// The party the key belongs to.
        #[arg(long)]
        name: String,
        /// Modulus size: 2048 or 3072.
        #[arg(long, default_value_t = 2048)]
        bits: u32,
    },
    /// Runs one party of a deployment.
    Run {
        #[command(flatten)]
        at: PartyArgs,
        /// A holder: serve these new, unlabelled records (a CSV with its data's columns and id
        /// column) for the server's `spnn predict --ids`, preprocessed as its training data.
        #[arg(long)]
        score: Option<PathBuf>,
        /// With --score: the alignment `spnn align --score` wrote for these records; they are
        /// then served as the common records, numbered 0…n−1 in the shared order.
        #[arg(long, requires = "score")]
        aligned: Option<PathBuf>,
        /// The label owner (`protocol.labels_at` a holder): write `id,score` here for every
        /// sample it scored outside training — the test set after training, the records of
        /// a prediction.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Private sample alignment: finds the sample ids every data holder (and the label owner)
    /// has, by private set intersection over mutual TLS, and writes this party's alignment —
    /// the common samples numbered 0…n−1 in one shared order — for its `aligned` fields. The
    /// server aggregates and, unless it owns the labels, learns only how many there are. Run
    /// it on the server and every holder (not the dealer).
    Align {
        #[command(flatten)]
        at: PartyArgs,
        /// Where to write the alignment (CSV: `id,source_id`, or `id` for a server without ids).
        #[arg(long)]
        out: PathBuf,
        /// Align new, unlabelled records for scoring instead of the training data: a holder
        /// gives its records file (a CSV with its data's id column), the server gives the flag
        /// alone and only aggregates.
        #[arg(long, num_args = 0..=1, value_name = "RECORDS")]
        score: Option<Option<PathBuf>>,
    },
    /// Runs every party of a deployment in this process (no network).
    Simulate {
        /// The deployment file.
        #[arg(long)]
        config: PathBuf,
        /// A party's private file, as PARTY=PATH (repeat for each party that has one).
        #[arg(long)]
        private: Vec<String>,
        /// With the labels at a holder: the label holder's `--out`.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The server's side of prediction: loads checkpoint TAG on every party and scores every
    /// sample id (or those of --ids). With the labels at the server it writes id,score to
    /// --out; with them at a holder the scores are written there (its `spnn run --out`). The
    /// other parties run `spnn run` as usual.
    Predict {
        /// The deployment file.
        #[arg(long)]
        config: PathBuf,
        /// The checkpoint to load (default: the final model).
        #[arg(long, default_value = "final")]
        tag: String,
        /// Output CSV (labels at the server only).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The server's private file.
        #[arg(long)]
        private: Option<PathBuf>,
        /// Score these sample ids (a CSV with an `id` column; the holders run
        /// `spnn run --score` with their new records) instead of every labelled id.
        #[arg(long)]
        ids: Option<PathBuf>,
    },
}

/// Which party of which deployment a command runs.
#[derive(clap::Args, Debug)]
struct PartyArgs {
    /// The deployment file.
    #[arg(long)]
    config: PathBuf,
    /// Which party: server, holder-<i> or dealer.
    #[arg(long)]
    party: String,
    /// This party's private file (its data, keys, policy, listen address; the label owner's
    /// labels), kept on its own host.
    #[arg(long)]
    private: Option<PathBuf>,
}

impl PartyArgs {
    /// The deployment file with this party's private file merged in.
    fn deployment(&self) -> Result<Deployment> {
        load(&self.config, &self.party, self.private.as_ref())
    }
}

/// The deployment file, with `party`'s private file merged in if there is one.
fn load(config: &std::path::Path, party: &str, private: Option<&PathBuf>) -> Result<Deployment> {
    let dep = Deployment::load(config)?;
    Ok(match private {
        Some(path) => dep.with_private(party, path)?,
        None => dep,
    })
}

/// The steps of the certificate workflow, each on its own host.
#[derive(Subcommand, Debug)]
enum CertsStep {
    /// On the CA's host: creates `ca.pem` and `ca.key` (mode 0600).
    Ca {
        /// Directory to write them into.
        #[arg(long)]
        out: PathBuf,
        /// A name for the deployment (in the CA's subject).
        #[arg(long, default_value = "spnn")]
        deployment: String,
    },
    /// On a party's own host: its private key `<party>.key` (mode 0600) and the request
    /// `<party>.csr` to send to the CA.
    Request {
        /// The party: server, holder-<i> or dealer.
        #[arg(long)]
        party: String,
        /// Directory to write them into.
        #[arg(long)]
        out: PathBuf,
    },
    /// On the CA's host: checks a request and signs `<party>.pem`; writes it with a copy of
    /// `ca.pem`, both to send back to the party.
    Sign {
        /// The CA's directory (`ca.pem`, `ca.key`).
        #[arg(long)]
        ca: PathBuf,
        /// The party's request file.
        #[arg(long)]
        request: PathBuf,
        /// The party the request must be for.
        #[arg(long)]
        party: String,
        /// Directory to write `<party>.pem` and `ca.pem` into.
        #[arg(long)]
        out: PathBuf,
    },
}

fn certs_step(step: &CertsStep) -> Result<()> {
    let io = |p: &std::path::Path, e: std::io::Error| CliError::Io(format!("{}: {e}", p.display()));
    match step {
        CertsStep::Ca { out, deployment } => {
            CertificateAuthority::generate(deployment)?.write_to(out)?;
            println!(
                "CA written to {}: keep ca.key on this host; give every party ca.pem",
                out.display()
            );
        }
        CertsStep::Request { party, out } => {
            CertificateRequest::generate(party)?.write_to(out)?;
            println!(
                "{party}: key {0}/{party}.key (stays here), request {0}/{party}.csr (send it to the CA)",
                out.display()
            );
        }
        CertsStep::Sign {
            ca,
            request,
            party,
            out,
        } => {
            let ca = CertificateAuthority::load(ca)?;
            let csr = std::fs::read_to_string(request).map_err(|e| io(request, e))?;
            let cert = ca.sign(&csr, party)?;
            std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
            let pem = out.join(format!("{party}.pem"));
            std::fs::write(&pem, cert).map_err(|e| io(&pem, e))?;
            let ca_pem = out.join("ca.pem");
            std::fs::write(&ca_pem, &ca.cert_pem).map_err(|e| io(&ca_pem, e))?;
            println!(
                "{party}: certificate {} signed; send it and ca.pem back to {party}",
                pem.display()
            );
        }
    }
    Ok(())
}

fn init_logging(cli: &Cli) {
    let level = if cli.quiet {
        "warn"
    } else {
        match cli.verbose {
            0 => "info",
            1 => "debug",
            _ => "trace",
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: logs redirected to a file stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

fn print_summary(s: &server::Summary) {
    // A run that resumes from its last epoch trains nothing and has no loss to report; a label
    // holder keeps its loss and metric unless it reports them.
    let auc = match s.test_metric {
        Some(a) => format!("test {} {a:.4}", s.task.metric()),
        None => format!("test {} at the label holder", s.task.metric()),
    };
    let loss = match (s.train_loss, s.epochs_run) {
        (Some(l), _) => format!("{l:.4}"),
        (None, 0) => "none (no epoch trained)".into(),
        (None, _) => "at the label holder".into(),
    };
    println!(
        "done: {} epochs (resumed from epoch {}), {auc}, last train loss {loss}, {:.1}s, server traffic {:.1} MB\nmodel fingerprint {}",
        s.epochs_run,
        s.resumed_from_epoch,
        s.seconds,
        s.server_bytes as f64 / 1e6,
        s.fingerprint
    );
}

fn print_outcome(party: &str, outcome: &Outcome) {
    match outcome {
        Outcome::Server(s) => print_summary(s),
        Outcome::Holder {
            forwards,
            updates,
            metrics,
            scores_written,
        } => {
            println!("{party} done: {forwards} forward steps, {updates} updates");
            if let Some(m) = metrics.filter(|m| m.count > 0) {
                // "test AUC …, accuracy …" or "test RMSE …".
                println!(
                    "{party} (label holder): test {}, test loss {:.4} over {} samples",
                    m.quality(),
                    m.loss,
                    m.count
                );
            }
            if *scores_written > 0 {
                println!("{party} (label holder): {scores_written} scores written");
            }
        }
        Outcome::Dealer => println!("dealer done"),
    }
}

fn run(cli: &Cli) -> Result<()> {
    let progress = !cli.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr());
    match &cli.command {
        Command::Certs {
            step: Some(step), ..
        } => certs_step(step)?,
        Command::Certs {
            step: None,
            out,
            holders,
            dealer,
            deployment,
        } => {
            let out = out.as_ref().ok_or_else(|| {
                CliError::Usage("spnn certs: give --out, or a step (ca, request, sign)".into())
            })?;
            tracing::warn!(
                "spnn certs --out creates every party's private key in one place: for \
                 demonstrations only. Across organisations use `spnn certs ca`, `request` and `sign`."
            );
            let roster = Roster::spnn(*holders, *dealer)?;
            let names: Vec<String> = roster
                .ids()
                .map(|p| roster.name(p).expect("roster"))
                .collect();
            DeploymentCerts::generate(deployment, &names)?.write_to(out)?;
            println!(
                "certificates for {} written to {}",
                names.join(", "),
                out.display()
            );
        }
        Command::Keygen { out, name, bits } => {
            let size = match bits {
                2048 => KeySize::Bits2048,
                3072 => KeySize::Bits3072,
                b => return Err(CliError::Usage(format!("--bits {b}: use 2048 or 3072"))),
            };
            let kp = Keypair::generate(size, &mut SecureRng::from_os_entropy());
            std::fs::create_dir_all(out)
                .map_err(|e| CliError::Io(format!("{}: {e}", out.display())))?;
            let public = out.join(format!("{name}.paillier.pub.json"));
            let secret = out.join(format!("{name}.paillier.key.json"));
            let pub_json = serde_json::to_string_pretty(&kp.public.to_data()).expect("plain data");
            std::fs::write(&public, pub_json)
                .map_err(|e| CliError::Io(format!("{}: {e}", public.display())))?;
            write_secret(
                &secret,
                &serde_json::to_string_pretty(&kp.secret.to_data()).expect("plain data"),
            )?;
            println!(
                "Paillier-{bits} key {} written to {} (secret key mode 0600)",
                kp.public.id(),
                out.display()
            );
        }
        Command::Run {
            at,
            score,
            aligned,
            out,
        } => {
            let (dep, party) = (at.deployment()?, &at.party);
            let outcome = match score {
                Some(records) => {
                    party::score(&dep, party, records, aligned.as_deref(), out.as_deref())?
                }
                None => {
                    let opts = ServerOptions {
                        progress,
                        scores: out.clone(),
                    };
                    party::run(&dep, party, opts)?
                }
            };
            print_outcome(party, &outcome);
        }
        Command::Align { at, out, score } => {
            let (dep, party) = (at.deployment()?, &at.party);
            let scoring = score.as_ref().map(|s| s.as_deref());
            let a = party::align(&dep, party, out, scoring)?;
            println!(
                "{party}: {} samples common to every party, alignment written to {}",
                a.size,
                out.display()
            );
        }
        Command::Simulate {
            config,
            private,
            out,
        } => {
            let mut dep = Deployment::load(config)?;
            for entry in private {
                let (party, path) = entry.split_once('=').ok_or_else(|| {
                    CliError::Usage(format!("--private {entry}: expected PARTY=PATH"))
                })?;
                dep = dep.with_private(party, std::path::Path::new(path))?;
            }
            let opts = ServerOptions {
                progress,
                scores: out.clone(),
            };
            let (summary, others) = party::simulate(&dep, opts)?;
            print_summary(&summary);
            for (party, outcome) in &others {
                print_outcome(party, outcome);
            }
        }
        Command::Predict {
            config,
            tag,
            out,
            private,
            ids,
        } => {
            let dep = load(config, "server", private.as_ref())?;
            let ids = ids
                .as_deref()
                .map(spnn_cli::data::ids_to_score)
                .transpose()?;
            party::check_inputs(&dep, "server")?;
            server::check_prediction_output(&dep, out.as_deref())?;
            let net = party::connect(&dep, "server")?;
            let n = server::predict(&dep, net, tag, out.as_deref(), ids.as_deref())?;
            match out {
                Some(out) => println!("{n} predictions written to {}", out.display()),
                None => println!(
                    "{n} records scored; the scores are at the label holder, {}",
                    dep.protocol.labels_at
                ),
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spnn: error: {e}");
            if let CliError::Net(_) | CliError::Spnn(_) = e
                && let Some(config) = match &cli.command {
                    Command::Run { at, .. } | Command::Align { at, .. } => Some(&at.config),
                    Command::Predict { config, .. } => Some(config),
                    _ => None,
                }
                && let Ok(dep) = Deployment::load(config)
            {
                let roster = dep.roster();
                let legend: Vec<String> = roster
                    .ids()
                    .map(|p| format!("{p} = {}", roster.name(p).expect("roster")))
                    .collect();
                eprintln!("spnn: parties: {}", legend.join(", "));
            }
            ExitCode::FAILURE
        }
    }
}
