//! The run of a task: one attempt under one lease generation, as the usage ledger files it.

use crate::config::Config;
use crate::git::ObjectId;
use crate::lease::{HeldLease, LeaseError, LeaseRecord};
use crate::source::QueueSource;
use crate::task::{Task, TaskId};
use crate::usage::RunMeta;

use super::{Workspace, WorkspaceError, load_tasks};

/// Describes the run of lease `record` for the ledger, with the task's facts as queued now.
pub fn run_meta(
    record: &LeaseRecord,
    task: Option<&Task>,
    config: &Config,
    context_tokens: Option<u64>,
) -> RunMeta {
    let budget_tokens = task.and_then(|task| config.token_budget(task));
    RunMeta {
        task: record.task.clone(),
        run: RunMeta::run_id(record.generation, record.acquired_at),
        generation: record.generation,
        agent: record.holder.agent.clone(),
        session: record.holder.session.clone(),
        worktree: record.holder.worktree.clone(),
        task_type: task.and_then(|task| task.task_type.clone()),
        feature: task.and_then(|task| task.feature.clone()),
        value: task.map_or(1, |task| task.value),
        routed_model: task.and_then(|task| routed_model(task, config)),
        budget_tokens,
        context_tokens,
        started_at: record.acquired_at,
        ended_at: None,
        outcome: None,
    }
}

/// The model `task` is routed to before any escalation: its `model:` (a model, or a tier
/// of `tiers`), else the tier `type_tiers` gives its type, else the cheapest tier. What a
/// run spent beyond the same tokens on this model is its overspend, escalation included.
fn routed_model(task: &Task, config: &Config) -> Option<String> {
    config
        .route(task.model.as_deref(), task.task_type.as_deref(), 0)
        .ok()
        .and_then(|route| route.model)
}

impl Workspace<'_> {
    /// Returns the queue's source for this store: the queue's branch as last fetched, or
    /// the invocation's default in local mode ([`super::Invocation::queue`]).
    pub fn queue_source(&self) -> QueueSource {
        self.store
            .queue_ref()
            .map_or_else(|| self.invocation.queue(), QueueSource::Rev)
    }

    /// Describes the current run of `id`: the lease this worktree holds, else the task's
    /// lease as last fetched (so usage can still be recorded after a release).
    pub fn current_run(&self, id: &TaskId) -> Result<RunMeta, WorkspaceError> {
        let (record, held) = self.run_record(id)?;
        let repo = self.repo;
        let loaded = load_tasks(repo, &self.queue_source(), self.notices)?;
        let task = loaded.tasks.iter().find(|task| &task.id == id);
        Ok(run_meta(
            &record,
            task,
            &loaded.config,
            held.and_then(|held| held.context_tokens),
        ))
    }

    /// The lease record of the current run of `id` (see [`Workspace::current_run`]), with
    /// the lease this worktree holds on it, if it holds one.
    pub(super) fn run_record(
        &self,
        id: &TaskId,
    ) -> Result<(LeaseRecord, Option<HeldLease>), WorkspaceError> {
        let repo = self.repo;
        let held = HeldLease::load(repo.common_dir(), id, &self.holder())?;
        let record = match &held {
            Some(held) => {
                let oid = ObjectId::from_hex(held.oid.as_bytes())
                    .map_err(|_| WorkspaceError::HeldWithoutCommit { id: id.clone() })?;
                LeaseRecord::from_message(&repo.commit_message(oid)?).map_err(|source| {
                    LeaseError::Unreadable {
                        id: id.clone(),
                        oid,
                        source,
                    }
                })?
            }
            None => {
                self.store
                    .lease(id)?
                    .ok_or_else(|| WorkspaceError::NoRun { id: id.clone() })?
                    .record
            }
        };
        Ok((record, held))
    }
}
