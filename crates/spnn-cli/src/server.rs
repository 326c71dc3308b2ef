//! The server's side of `spnn run` and `spnn simulate`: training with progress, checkpoints and
//! resumption, and prediction.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::BinaryCrossEntropyLossConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Int, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use spnn_burn::checkpoint::{self, server as server_ckpt};
use spnn_burn::metrics::roc_auc;
use spnn_burn::tensor::to_vec;
use spnn_burn::{ServerSession, SessionSpec};
use spnn_data::Table;
use spnn_net::Network;

use crate::config::Deployment;
use crate::data::{server_labels, split};
use crate::error::{CliError, Result};
use crate::model::Mlp;

/// How the server reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerOptions {
    /// Draw a progress bar per epoch.
    pub progress: bool,
}

/// What a training run did.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Summary {
    /// The epoch training started from (0 for a fresh run).
    pub resumed_from_epoch: usize,
    /// Epochs trained in this run.
    pub epochs_run: usize,
    /// Test AUC after the last epoch.
    pub test_auc: f64,
    /// Mean training loss of the last epoch.
    pub train_loss: f64,
    /// Wall-clock seconds of this run's training.
    pub seconds: f64,
    /// Bytes the server sent and received.
    pub server_bytes: u64,
    /// SHA-256 of the final model's test-set logits (their f32 bits): equal fingerprints mean
    /// the whole model — private weights included — computes the same function bit for bit.
    pub fingerprint: String,
}

/// Which checkpoint the next run resumes from, and the best one so far.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Latest {
    tag: String,
    epoch: usize,
    /// The epoch and test AUC of checkpoint `best` (absent in files of older versions).
    #[serde(default)]
    best: Option<(usize, f64)>,
}

fn latest_path(dir: &Path) -> PathBuf {
    dir.join("latest.json")
}

fn read_latest(dir: &Path) -> Result<Option<Latest>> {
    let path = latest_path(dir);
    if !path.exists() {
        return Ok(None);
    }
    let bytes = checkpoint::read_sealed(&path)?;
    let latest = serde_json::from_slice(&bytes)
        .map_err(|e| CliError::Checkpoint(format!("{}: {e}", path.display())))?;
    Ok(Some(latest))
}

fn optimizer(momentum: f64) -> ModuleOptimizer {
    let mut c = SgdConfig::new();
    if momentum > 0.0 {
        // The same rule as the secure update of the shares: v ← μv + g, W ← W − ηv.
        c = c.with_momentum(Some(
            MomentumConfig::new()
                .with_momentum(momentum)
                .with_dampening(0.0),
        ));
    }
    c.init()
}

fn device(dep: &Deployment) -> Device {
    let device = Device::flex().autodiff();
    if let Some(seed) = dep.session.insecure_seed {
        device.seed(seed);
    }
    device
}

struct Prepared {
    session: ServerSession,
    model: Mlp,
    optim: ModuleOptimizer,
    labels: Table,
    train: Vec<u64>,
    test: Vec<u64>,
    start_epoch: usize,
}

/// Establishes the session (resuming from `resume` when given) and builds or loads the model.
fn prepare(dep: &Deployment, net: Network, resume: Option<(String, usize)>) -> Result<Prepared> {
    let labels = server_labels(dep)?;
    let (train, test) = split(
        labels.ids(),
        dep.training.test_fraction,
        dep.training.split_seed,
    )?;
    let mut spec = SessionSpec::new(dep.model.hidden[0]).with_config(dep.config_for("server")?);
    if let Some((tag, _)) = &resume {
        spec = spec.resuming(tag.clone());
    }
    let session = ServerSession::establish(net, spec)?;
    let device = device(dep);
    let model = Mlp::new(&session, &dep.model, &device);
    let optim = optimizer(dep.protocol.momentum);
    let (model, optim, start_epoch) = match (&resume, dep.checkpoint_dir("server")) {
        (Some((tag, epoch)), Some(dir)) => {
            let (m, o) = server_ckpt::load(model, optim, &session, &dir, tag)?;
            (m, o, *epoch)
        }
        _ => (model, optim, 0),
    };
    Ok(Prepared {
        session,
        model,
        optim,
        labels,
        train,
        test,
        start_epoch,
    })
}

fn targets(labels: &Table, ids: &[u64], device: &Device) -> Result<Tensor<2, Int>> {
    let y: Vec<i64> = labels
        .gather_labels(ids)?
        .iter()
        .map(|&v| i64::from(v > 0.5))
        .collect();
    Ok(Tensor::from_data(
        TensorData::new(y, [ids.len(), 1]),
        device,
    ))
}

fn logits(model: &Mlp, ids: &[u64]) -> Result<Vec<f32>> {
    Ok(to_vec(model.clone().valid().forward(ids)?)?)
}

fn test_auc(model: &Mlp, labels: &Table, ids: &[u64]) -> Result<f64> {
    let scores: Vec<f32> = logits(model, ids)?
        .into_iter()
        .map(|z| 1.0 / (1.0 + (-z).exp()))
        .collect();
    Ok(roc_auc(&scores, &labels.gather_labels(ids)?))
}

fn fingerprint(model: &Mlp, ids: &[u64]) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for z in logits(model, ids)? {
        h.update(z.to_bits().to_le_bytes());
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Trains as the deployment file says, resuming from the latest checkpoint if there is one.
pub fn train(dep: &Deployment, net: Network, opts: ServerOptions) -> Result<Summary> {
    let dir = dep.checkpoint_dir("server");
    let latest = match &dir {
        Some(d) => read_latest(d)?,
        None => None,
    };
    if let Some(l) = &latest {
        tracing::info!("resuming from checkpoint {} (epoch {})", l.tag, l.epoch);
    }
    let mut best = latest.as_ref().and_then(|l| l.best);
    let Prepared {
        session,
        mut model,
        mut optim,
        labels,
        train,
        test,
        start_epoch,
    } = prepare(dep, net, latest.map(|l| (l.tag, l.epoch)))?;
    let device = device(dep);
    let bce = BinaryCrossEntropyLossConfig::new()
        .with_logits(true)
        .init(&device);
    let lr = dep.training.learning_rate;
    let start = Instant::now();
    let (mut auc, mut loss) = (f64::NAN, f64::NAN);
    for epoch in start_epoch + 1..=dep.training.epochs {
        let mut order = train.clone();
        order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(
            dep.training.split_seed ^ ((epoch as u64) << 32),
        ));
        let batches: Vec<&[u64]> = order.chunks(dep.training.batch_size).collect();
        let bar = if opts.progress {
            ProgressBar::new(batches.len() as u64)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg}")
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{epoch}/{}", dep.training.epochs));
        let mut sum = 0.0;
        for ids in &batches {
            let l = bce.forward(model.forward(ids)?, targets(&labels, ids, &device)?);
            sum += to_vec(l.clone())?[0] as f64;
            let grads = GradientsParams::from_grads(l.backward(), &model);
            model.first().apply_update(lr)?;
            model = optim.step(lr, model, grads);
            let traffic = session.meters().total;
            bar.set_message(format!(
                "loss {:.4}  {:.1} MB",
                sum / (bar.position() + 1) as f64,
                (traffic.bytes_sent + traffic.bytes_received) as f64 / 1e6
            ));
            bar.inc(1);
        }
        bar.finish_and_clear();
        loss = sum / batches.len() as f64;
        auc = test_auc(&model, &labels, &test)?;
        tracing::info!("epoch {epoch}: train loss {loss:.4}, test AUC {auc:.4}");
        let every = dep.training.checkpoint_every;
        if let Some(d) = &dir
            && every > 0
        {
            // `best` is overwritten whenever the test AUC improves; the numbered checkpoints
            // beyond `keep_checkpoints` are deleted by every party after each save.
            if auc.is_finite() && best.is_none_or(|(_, b)| auc > b) {
                server_ckpt::save(&model, &optim, &session, d, "best")?;
                best = Some((epoch, auc));
            }
            if epoch % every == 0 {
                let tag = format!("epoch-{epoch}");
                server_ckpt::save(&model, &optim, &session, d, &tag)?;
                checkpoint::retain_numbered(d, "server-", dep.training.keep_checkpoints)?;
                let latest = serde_json::to_vec(&Latest {
                    tag: tag.clone(),
                    epoch,
                    best,
                })
                .expect("plain struct");
                checkpoint::write_sealed(&latest_path(d), &latest)?;
                tracing::info!("checkpoint {tag} saved");
            }
        }
    }
    if auc.is_nan() {
        auc = test_auc(&model, &labels, &test)?;
    }
    if let Some(d) = &dir {
        server_ckpt::save(&model, &optim, &session, d, "final")?;
    }
    let fingerprint = fingerprint(&model, &test)?;
    let traffic = session.meters().total;
    let summary = Summary {
        resumed_from_epoch: start_epoch,
        epochs_run: dep.training.epochs - start_epoch.min(dep.training.epochs),
        test_auc: auc,
        train_loss: loss,
        seconds: start.elapsed().as_secs_f64(),
        server_bytes: traffic.bytes_sent + traffic.bytes_received,
        fingerprint,
    };
    drop(model);
    session.shutdown()?;
    Ok(summary)
}

/// Loads checkpoint `tag` on every party and writes `id,score` to `out` for `ids` — new records
/// the holders serve with `spnn run --score` — or, without them, for every labelled sample id.
/// The scores stay with the server (the label owner).
pub fn predict(
    dep: &Deployment,
    net: Network,
    tag: &str,
    out: &Path,
    ids: Option<&[u64]>,
) -> Result<usize> {
    let p = prepare(dep, net, Some((tag.to_string(), 0)))?;
    let valid = p.model.clone().valid();
    let ids = ids.unwrap_or(p.labels.ids());
    let mut lines = String::from("id,score\n");
    for (id, s) in ids.iter().zip(to_vec(sigmoid(valid.forward(ids)?))?) {
        lines += &format!("{id},{s}\n");
    }
    std::fs::write(out, lines).map_err(|e| CliError::Io(format!("{}: {e}", out.display())))?;
    drop((valid, p.model));
    p.session.shutdown()?;
    Ok(ids.len())
}
