//! The server's side of `spnn run` and `spnn simulate`: training with progress, checkpoints and
//! resumption, and prediction — with the labels at the server, or at a holder that computes the
//! top layers and the loss itself.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::{BinaryCrossEntropyLossConfig, CrossEntropyLossConfig, MseLoss, Reduction};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::activation::{sigmoid, softmax};
use burn::tensor::{Device, Gradients, Int, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use spnn_burn::checkpoint::{self, server as server_ckpt};
use spnn_burn::head::huber_loss;
use spnn_burn::metrics::roc_auc;
use spnn_burn::tensor::to_vec;
use spnn_burn::train::{backward_from_label_holder, evaluate_at_label_holder};
use spnn_burn::{EVALUATION_ROWS, LabelMode, ServerSession, SessionSpec};
use spnn_data::Table;
use spnn_net::Network;

use crate::config::{Deployment, Model, Task};
use crate::data::{label_table, server_ids, split};
use crate::error::{CliError, Result};
use crate::model::Mlp;

/// How a party reports.
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    /// The server: draw a progress bar per epoch.
    pub progress: bool,
    /// The label holder: write `id,score` of its latest score of each sample scored outside
    /// training (the test set after training; the records of a prediction) to this file.
    pub scores: Option<PathBuf>,
}

/// What a training run did.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Summary {
    /// The epoch training started from (0 for a fresh run).
    pub resumed_from_epoch: usize,
    /// Epochs trained in this run.
    pub epochs_run: usize,
    /// The test metric after the last epoch — AUC, accuracy or RMSE, as `[model] task` says
    /// ([`Task::metric`]): none with the labels at a holder that does not report its metrics.
    pub test_metric: Option<f64>,
    /// The task the metric is of.
    pub task: Task,
    /// Mean training loss of the last epoch: none if no epoch ran, or with the labels at a
    /// holder that does not report losses.
    pub train_loss: Option<f64>,
    /// Wall-clock seconds of this run's training.
    pub seconds: f64,
    /// Bytes the server sent and received.
    pub server_bytes: u64,
    /// SHA-256 of the final model's test-set outputs (their f32 bits: the logits, or with the
    /// labels at a holder the activations it receives): equal fingerprints mean the server's
    /// model — private weights included — computes the same function bit for bit.
    pub fingerprint: String,
}

/// Which checkpoint the next run resumes from, and the best one so far.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Latest {
    tag: String,
    epoch: usize,
    /// The epoch and test AUC of checkpoint `best` (absent in files of older versions, and
    /// with the labels at a holder that keeps its metrics).
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

/// The autodiff device of a party's own layers, seeded by `session.insecure_seed` if set.
pub(crate) fn device(dep: &Deployment) -> Device {
    seeded_device(dep.session.insecure_seed)
}

fn seeded_device(seed: Option<u64>) -> Device {
    let device = Device::flex().autodiff();
    if let Some(seed) = seed {
        device.seed(seed);
    }
    device
}

/// Builds a holder's own model with `init` on a device seeded for `party` (by
/// `session.insecure_seed` and the party's name, if the seed is set), alone: `spnn simulate`
/// runs every party in one process, where the holders' initialisations would otherwise draw
/// from the device's generator in whatever order their threads run, and the result would not
/// be the deployment's.
pub(crate) fn init_alone<T>(
    dep: &Deployment,
    party: &str,
    init: impl FnOnce(&Device) -> T,
) -> (T, Device) {
    static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _alone = ALONE.lock().unwrap_or_else(|p| p.into_inner());
    // FNV-1a of the party's name: each holder its own stream from the one seed.
    let salt = party.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let device = seeded_device(dep.session.insecure_seed.map(|seed| seed ^ salt));
    (init(&device), device)
}

struct Prepared {
    session: ServerSession,
    model: Mlp,
    optim: ModuleOptimizer,
    /// The labels, when they are at the server.
    labels: Option<Table>,
    /// Every sample id of the deployment.
    ids: Vec<u64>,
    train: Vec<u64>,
    test: Vec<u64>,
    start_epoch: usize,
}

/// Establishes the session (resuming from `resume` when given) and builds or loads the model.
fn prepare(dep: &Deployment, net: Network, resume: Option<(String, usize)>) -> Result<Prepared> {
    let at_server = dep.label_mode()? == LabelMode::Server;
    let labels = at_server.then(|| label_table(dep)).transpose()?;
    let ids = match &labels {
        Some(l) => l.ids().to_vec(),
        None => server_ids(dep)?.ids().to_vec(),
    };
    let (train, test) = split(&ids, dep.training.test_fraction, dep.training.split_seed)?;
    let mut spec = SessionSpec::new(dep.model.hidden[0]).with_config(dep.config_for("server")?);
    if let Some((tag, _)) = &resume {
        spec = spec.resuming(tag.clone());
    }
    let session = match dep.model.bottom {
        None => ServerSession::establish(net, spec)?,
        Some(_) => ServerSession::establish_bottom_models(net, spec)?,
    };
    let device = device(dep);
    let model = Mlp::new(&session, &dep.model, at_server, &device);
    let optim = session.optimizer();
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
        ids,
        train,
        test,
        start_epoch,
    })
}

/// The labels of `ids` as the task needs them, each checked: 0 or 1 (binary), a class
/// `0 … classes − 1` (multiclass), any finite value (regression).
fn checked_labels(model: &Model, labels: &Table, ids: &[u64]) -> Result<Vec<f32>> {
    let y = labels.gather_labels(ids)?;
    for (id, &v) in ids.iter().zip(&y) {
        let ok = match model.task {
            Task::Binary => v == 0.0 || v == 1.0,
            Task::Multiclass => v >= 0.0 && v.fract() == 0.0 && (v as usize) < model.outputs(),
            Task::Regression => v.is_finite(),
        };
        if !ok {
            return Err(CliError::Usage(format!(
                "sample {id}: label {v} is not {}",
                match model.task {
                    Task::Binary => "0 or 1 (task = \"binary\")".to_string(),
                    Task::Multiclass => format!("a class 0 … {}", model.outputs() - 1),
                    Task::Regression => "finite".to_string(),
                }
            )));
        }
    }
    Ok(y)
}

/// The task's loss of the model's outputs on a batch, and its value.
fn task_loss(model: &Model, out: Tensor<2>, y: &[f32]) -> Result<(Tensor<1>, f64)> {
    let device = out.device();
    let n = y.len();
    let loss = match model.task {
        Task::Binary => {
            let t: Vec<i64> = y.iter().map(|&v| v as i64).collect();
            BinaryCrossEntropyLossConfig::new()
                .with_logits(true)
                .init(&device)
                .forward(
                    out,
                    Tensor::<2, Int>::from_data(TensorData::new(t, [n, 1]), &device),
                )
        }
        Task::Multiclass => {
            let t: Vec<i64> = y.iter().map(|&v| v as i64).collect();
            CrossEntropyLossConfig::new().init(&device).forward(
                out,
                Tensor::<1, Int>::from_data(TensorData::new(t, [n]), &device),
            )
        }
        Task::Regression => {
            let t = Tensor::<2>::from_data(TensorData::new(y.to_vec(), [n, 1]), &device);
            match model.huber_delta {
                Some(delta) => huber_loss(delta)?.forward(out, t, Reduction::Mean),
                None => MseLoss::new().forward(out, t, Reduction::Mean),
            }
        }
    };
    let value = f64::from(to_vec(loss.clone())?[0]);
    Ok((loss, value))
}

/// The gradients of one training batch and its loss, if the server may know it: the loss at
/// the server with the labels there, else the label holder's gradient back-propagated (its
/// loss only if it reports losses).
fn batch_gradients(
    model: &Mlp,
    task: &Model,
    labels: Option<&Table>,
    ids: &[u64],
) -> Result<(Gradients, Option<f64>)> {
    let out = model.forward(ids)?;
    let Some(labels) = labels else {
        return Ok(backward_from_label_holder(model.first().session(), out)?);
    };
    let y = checked_labels(task, labels, ids)?;
    let (loss, value) = task_loss(task, out, &y)?;
    Ok((loss.backward(), Some(value)))
}

/// The task's test metric of `outputs` (`[ids, outputs]`, row-major) against `y`: AUC,
/// accuracy or RMSE.
fn test_metric(model: &Model, outputs: &[f32], y: &[f32]) -> f64 {
    match model.task {
        Task::Binary => {
            let scores: Vec<f32> = outputs.iter().map(|z| 1.0 / (1.0 + (-z).exp())).collect();
            roc_auc(&scores, y)
        }
        Task::Multiclass => {
            let c = model.outputs();
            let right = outputs
                .chunks(c)
                .zip(y)
                .filter(|(row, label)| spnn_burn::metrics::argmax(row) == **label as usize)
                .count();
            right as f64 / y.len().max(1) as f64
        }
        Task::Regression => {
            let se: f64 = outputs
                .iter()
                .zip(y)
                .map(|(p, t)| (f64::from(*p) - f64::from(*t)).powi(2))
                .sum();
            (se / y.len().max(1) as f64).sqrt()
        }
    }
}

/// A predictions file: `id,score` (the probability of class 1) for a binary task,
/// `id,class,p_0,…` (the most likely class and every class's probability) for a multiclass one,
/// `id,prediction` for a regression — from each id's probabilities or prediction. The server
/// writes it, or the label holder when it owns the labels.
pub fn prediction_file(task: &Model, scored: &[(u64, Vec<f32>)]) -> String {
    let mut lines = match task.task {
        Task::Binary => String::from("id,score\n"),
        Task::Multiclass => format!(
            "id,class,{}\n",
            (0..task.outputs())
                .map(|c| format!("p_{c}"))
                .collect::<Vec<_>>()
                .join(",")
        ),
        Task::Regression => String::from("id,prediction\n"),
    };
    for (id, row) in scored {
        let values: Vec<String> = row.iter().map(f32::to_string).collect();
        lines += &match task.task {
            Task::Multiclass => format!(
                "{id},{},{}\n",
                spnn_burn::metrics::argmax(row),
                values.join(",")
            ),
            Task::Binary | Task::Regression => format!("{id},{}\n", values.join(",")),
        };
    }
    lines
}

/// The test metric the server may know (none with the labels at a holder that keeps its
/// metrics) and the model's outputs on `ids`. With the labels at a holder, the outputs go to it
/// in steps of at most `EVALUATION_ROWS`, and it records their scores and its metrics.
fn evaluate(
    model: &Mlp,
    task: &Model,
    labels: Option<&Table>,
    ids: &[u64],
) -> Result<(Option<f64>, Vec<f32>)> {
    let valid = model.clone().valid();
    let Some(labels) = labels else {
        let session = valid.first().session().clone();
        let mut outputs = Vec::new();
        for chunk in ids.chunks(EVALUATION_ROWS) {
            let a = valid.forward(chunk)?;
            outputs.extend(to_vec(a.clone())?);
            evaluate_at_label_holder(&session, a)?;
        }
        let metric = session
            .label_holder_metrics()?
            .and_then(|m| match task.task {
                Task::Binary => Some(m.auc),
                Task::Multiclass => Some(m.accuracy),
                Task::Regression => m.rmse,
            });
        return Ok((metric, outputs));
    };
    let outputs = to_vec(valid.forward(ids)?)?;
    let y = checked_labels(task, labels, ids)?;
    Ok((Some(test_metric(task, &outputs, &y)), outputs))
}

fn fingerprint(outputs: &[f32]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for z in outputs {
        h.update(z.to_bits().to_le_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn progress_bar(opts: &ServerOptions, epoch: usize, epochs: usize, batches: usize) -> ProgressBar {
    let bar = if opts.progress {
        ProgressBar::new(batches as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{epoch}/{epochs}"));
    bar
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
        ..
    } = prepare(dep, net, latest.map(|l| (l.tag, l.epoch)))?;
    let labels = labels.as_ref();
    let lr = dep.training.learning_rate;
    let start = Instant::now();
    let (mut auc, mut loss, mut outputs) = (None, None, None);
    for epoch in start_epoch + 1..=dep.training.epochs {
        let mut order = train.clone();
        order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(
            dep.training.split_seed ^ ((epoch as u64) << 32),
        ));
        let batches: Vec<&[u64]> = order.chunks(dep.training.batch_size).collect();
        let bar = progress_bar(&opts, epoch, dep.training.epochs, batches.len());
        let (mut sum, mut reported) = (0.0, 0usize);
        for ids in &batches {
            let (grads, l) = batch_gradients(&model, &dep.model, labels, ids)?;
            if let Some(l) = l {
                sum += l;
                reported += 1;
            }
            let grads = GradientsParams::from_grads(grads, &model);
            model = optim.step(lr, model, grads);
            session.check()?;
            let traffic = session.meters().total;
            let mb = (traffic.bytes_sent + traffic.bytes_received) as f64 / 1e6;
            bar.set_message(match reported {
                0 => format!("{mb:.1} MB"),
                n => format!("loss {:.4}  {mb:.1} MB", sum / n as f64),
            });
            bar.inc(1);
        }
        bar.finish_and_clear();
        loss = (reported > 0).then(|| sum / reported as f64);
        let (a, out) = evaluate(&model, &dep.model, labels, &test)?;
        (auc, outputs) = (a, Some(out));
        let metric = dep.model.task.metric();
        match (loss, auc) {
            (Some(l), Some(a)) => {
                tracing::info!("epoch {epoch}: train loss {l:.4}, test {metric} {a:.4}")
            }
            (None, Some(a)) => {
                tracing::info!(
                    "epoch {epoch}: test {metric} {a:.4} (the loss stays with the label holder)"
                )
            }
            (Some(l), None) => {
                tracing::info!(
                    "epoch {epoch}: train loss {l:.4} (the {metric} stays with the label holder)"
                )
            }
            (None, None) => {
                tracing::info!(
                    "epoch {epoch} trained (loss and {metric} stay with the label holder)"
                )
            }
        }
        let every = dep.training.checkpoint_every;
        if let Some(d) = &dir
            && every > 0
        {
            // `best` is overwritten whenever the test metric improves; the numbered
            // checkpoints beyond `keep_checkpoints` are deleted by every party after each save.
            if let Some(a) = auc.filter(|a| a.is_finite())
                && best.is_none_or(|(_, b)| dep.model.task.better(a, b))
            {
                server_ckpt::save(&model, &optim, &session, d, "best")?;
                best = Some((epoch, a));
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
    let outputs = match outputs {
        Some(o) => o,
        // No epoch ran (a resumed run that had finished): evaluate the model as it is.
        None => {
            let (a, o) = evaluate(&model, &dep.model, labels, &test)?;
            auc = a;
            o
        }
    };
    if let Some(d) = &dir {
        server_ckpt::save(&model, &optim, &session, d, "final")?;
    }
    let traffic = session.meters().total;
    let summary = Summary {
        resumed_from_epoch: start_epoch,
        epochs_run: dep.training.epochs - start_epoch.min(dep.training.epochs),
        test_metric: auc,
        task: dep.model.task,
        train_loss: loss,
        seconds: start.elapsed().as_secs_f64(),
        server_bytes: traffic.bytes_sent + traffic.bytes_received,
        fingerprint: fingerprint(&outputs),
    };
    drop(model);
    session.shutdown()?;
    Ok(summary)
}

/// Checks that `out` is given exactly when the server writes the scores (the labels at the
/// server); with the labels at a holder the scores are written there (its `spnn run --out`).
pub fn check_prediction_output(dep: &Deployment, out: Option<&Path>) -> Result<()> {
    match (dep.label_mode()?, out) {
        (LabelMode::Server, Some(_)) | (LabelMode::Holder(_), None) => Ok(()),
        (LabelMode::Server, None) => Err(CliError::Usage(
            "spnn predict: --out is needed: the server owns the labels and writes the scores"
                .into(),
        )),
        (LabelMode::Holder(_), Some(_)) => Err(CliError::Usage(format!(
            "spnn predict: no --out with the labels at {}: the scores are written there (its \
             `spnn run --out FILE`), never at the server",
            dep.protocol.labels_at
        ))),
    }
}

/// Loads checkpoint `tag` on every party and scores `ids` — new records the holders serve with
/// `spnn run --score` — or, without them, every sample id. With the labels at the server it
/// writes `id,score` to `out`; with them at a holder the scores are computed and kept there
/// (see [`check_prediction_output`]). Returns the number of records scored.
pub fn predict(
    dep: &Deployment,
    net: Network,
    tag: &str,
    out: Option<&Path>,
    ids: Option<&[u64]>,
) -> Result<usize> {
    check_prediction_output(dep, out)?;
    let p = prepare(dep, net, Some((tag.to_string(), 0)))?;
    let ids = ids.unwrap_or(&p.ids);
    let result = match out {
        Some(out) => score_at_server(&p.model, &dep.model, ids, out),
        None => evaluate(&p.model, &dep.model, None, ids).map(|_| ()),
    };
    drop(p.model);
    p.session.shutdown()?;
    result.map(|()| ids.len())
}

/// Writes the model's predictions for `ids` to `out` ([`prediction_file`]).
fn score_at_server(model: &Mlp, task: &Model, ids: &[u64], out: &Path) -> Result<()> {
    let outputs = model.clone().valid().forward(ids)?;
    let rows = match task.task {
        Task::Binary => to_vec(sigmoid(outputs))?,
        Task::Multiclass => to_vec(softmax(outputs, 1))?,
        Task::Regression => to_vec(outputs)?,
    };
    let scored: Vec<(u64, Vec<f32>)> = ids
        .iter()
        .copied()
        .zip(rows.chunks(task.outputs()).map(<[f32]>::to_vec))
        .collect();
    let lines = prediction_file(task, &scored);
    std::fs::write(out, lines).map_err(|e| CliError::Io(format!("{}: {e}", out.display())))
}
