//! burn-train's Learner checkpoints of a model with a private layer (feature `train`).
//!
//! The Learner saves the server's records — model, optimiser, learning-rate scheduler — at the
//! end of an epoch; the private weights are shares at the holders and must be saved there at the
//! same moment. The one hook the Learner calls on its training thread at that moment, before it
//! takes the records, is its [`CheckpointingStrategy`] (its checkpointers then write on a
//! background thread, while the next epoch already trains). [`PrivateCheckpointing`] wraps a
//! strategy: whenever the wrapped one decides to save epoch `N`, every holder first saves its
//! shares under the tag `epoch-N` ([`crate::ServerSession::save`]) and the server writes the
//! session's counters to a sealed file `server-epoch-N.session` in its directory; then the
//! Learner takes its records. No update can fall in between.
//!
//! To resume at epoch `N`: start every party with `SessionSpec::resuming("epoch-N")`, call
//! [`PrivateCheckpointing::resume`] (it checks the tag and restores the counters), and give
//! the Learner `.checkpoint(N)` — it restores the model, the optimiser and the scheduler.
//!
//! The Learner deletes the server's old records as its strategy says; each holder prunes its own
//! `epoch-N` checkpoints by its own `keep_checkpoints` ([`crate::HolderOptions`]), which must keep
//! at least what the strategy keeps (or 0: keep all) for every restorable epoch to have its
//! shares.

use std::path::{Path, PathBuf};

use burn::train::checkpoint::{CheckpointingAction, CheckpointingStrategy, KeepLastNCheckpoints};
use burn::train::metric::store::EventStoreClient;
use spnn_net::codec::{Codec, Reader};

use crate::checkpoint::{read_sealed, write_sealed};
use crate::error::{Result, SpnnError};
use crate::protocol::server::ServerSession;

/// A Learner checkpointing strategy that saves the holders' shares with every checkpoint the
/// wrapped strategy makes (module docs).
pub struct PrivateCheckpointing {
    inner: Box<dyn CheckpointingStrategy>,
    session: ServerSession,
    dir: PathBuf,
}

impl PrivateCheckpointing {
    /// Saves at every epoch and keeps the last two (Burn's `KeepLastNCheckpoints::new(2)`),
    /// the session's counters in `dir`.
    pub fn new(session: &ServerSession, dir: impl Into<PathBuf>) -> Self {
        Self {
            inner: Box::new(KeepLastNCheckpoints::new(2)),
            session: session.clone(),
            dir: dir.into(),
        }
    }

    /// The same, deciding when to save with `strategy`.
    pub fn with_strategy(mut self, strategy: impl CheckpointingStrategy + 'static) -> Self {
        self.inner = Box::new(strategy);
        self
    }

    /// The holders' checkpoint tag of the Learner's epoch `epoch`.
    pub fn tag(epoch: usize) -> String {
        format!("epoch-{epoch}")
    }

    fn counters_path(dir: &Path, epoch: usize) -> PathBuf {
        dir.join(format!("server-{}.session", Self::tag(epoch)))
    }

    fn save(&self, epoch: usize) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| SpnnError::Persistence {
            path: self.dir.display().to_string(),
            reason: e.to_string(),
        })?;
        self.session.save(&Self::tag(epoch))?;
        let mut payload = Vec::new();
        self.session.counters().encode(&mut payload);
        write_sealed(&Self::counters_path(&self.dir, epoch), &payload)
    }

    /// Before the Learner resumes at `epoch` (`SupervisedTraining::checkpoint(epoch)`): checks
    /// that every party resumed from that epoch's shares and restores the session's counters
    /// saved with them.
    pub fn resume(session: &ServerSession, dir: &Path, epoch: usize) -> Result<()> {
        let tag = Self::tag(epoch);
        if session.resumed_from().as_deref() != Some(tag.as_str()) {
            return Err(SpnnError::Config(format!(
                "the Learner resumes at epoch {epoch}, but the session resumed from {:?}: \
                 start it with SessionSpec::resuming({tag:?})",
                session.resumed_from()
            )));
        }
        let path = Self::counters_path(dir, epoch);
        let payload = read_sealed(&path)?;
        let mut r = Reader::new(&payload);
        let bad = |e: spnn_net::CodecError| SpnnError::Persistence {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let counters = <(u64, u64)>::read(&mut r).map_err(bad)?;
        r.finish().map_err(bad)?;
        session.set_counters(counters)
    }
}

impl CheckpointingStrategy for PrivateCheckpointing {
    fn checkpointing(
        &mut self,
        epoch: usize,
        collector: &EventStoreClient,
    ) -> Vec<CheckpointingAction> {
        let mut actions = self.inner.checkpointing(epoch, collector);
        for action in &actions {
            if let CheckpointingAction::Delete(old) = action {
                // Only the server's counters: each holder prunes its own shares.
                let _ = std::fs::remove_file(Self::counters_path(&self.dir, *old));
            }
        }
        if actions.contains(&CheckpointingAction::Save)
            && let Err(e) = self.save(epoch)
        {
            // The strategy cannot return an error: without the shares, the server's records
            // are not saved either, and the next forward returns the error.
            self.session.record_error(e);
            actions.retain(|a| *a != CheckpointingAction::Save);
        }
        actions
    }
}
