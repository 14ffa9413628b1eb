//! Renewing a lease, with the holder's progress, and reading what its run spent; and
//! keeping it renewed while long work runs in between.

use std::sync::mpsc;

use crate::git::{ObjectId, Repository};
use crate::lease::{
    self, HeldLease, Lease, LeaseContext, LeaseError, LeaseRecord, LeaseState, LeaseStore, Mode,
    Progress,
};
use crate::reply::lease::{HeartbeatReply, LeaseReply};
use crate::task::TaskId;
use crate::usage::{Ledger, Run, RunMeta};

use super::{Workspace, WorkspaceError, error_chain, over_budget};

/// A renewed lease, and its run as the usage ledger knows it (for the budget verdict).
#[derive(Debug)]
pub struct Renewed {
    pub lease: Lease,
    pub spent: Option<Run>,
}

impl Renewed {
    /// Tokens over budget for the run, if it is: what it spent, and its budget.
    pub fn over_budget(&self) -> Option<(u64, u64)> {
        self.spent
            .as_ref()
            .and_then(|run| over_budget(&run.meta, &run.totals()))
    }

    /// The `heartbeat` reply, the lease kept in `store`.
    pub fn reply(&self, store: &str) -> HeartbeatReply {
        HeartbeatReply {
            lease: LeaseReply::new(&self.lease, store),
            tokens: self.spent.as_ref().map(|run| run.totals().tokens()),
            budget_tokens: self.spent.as_ref().and_then(|run| run.meta.budget_tokens),
        }
    }
}

/// Returns the progress a holder reports with a heartbeat (`tokens`, and the estimated
/// dollars `cost_usd` when known) at `now`: none without tokens, since a renewal without
/// news keeps the last report.
pub fn progress(
    now: jiff::Timestamp,
    tokens: Option<u64>,
    cost_usd: Option<f64>,
) -> Result<Option<Progress>, WorkspaceError> {
    if let Some(amount) = cost_usd
        && !(amount.is_finite() && amount >= 0.0)
    {
        return Err(WorkspaceError::InvalidCost { amount });
    }
    match tokens {
        Some(tokens) => Ok(Some(Progress {
            tokens,
            cost_usd,
            at: now,
            extra: std::collections::BTreeMap::new(),
        })),
        None if cost_usd.is_some() => Err(WorkspaceError::CostWithoutTokens),
        None => Ok(None),
    }
}

impl Workspace<'_> {
    /// Renews the lease on `id` for `ttl` (default: the config's), with the holder's
    /// `progress` when it reports some, and reads what its run spent.
    pub fn heartbeat(
        &self,
        id: &TaskId,
        ttl: Option<&str>,
        progress: Option<&Progress>,
    ) -> Result<Renewed, WorkspaceError> {
        let context = self.lease_context(ttl)?;
        let lease = lease::heartbeat(&self.store, id, &context, progress)?;
        // The budget verdict rides on the heartbeat: the agent learns to stop where it already listens.
        let run = RunMeta::run_id(lease.record.generation, lease.record.acquired_at);
        let spent = Ledger::new(&self.store)
            .runs(id)?
            .into_iter()
            .find(|known| known.meta.run == run);
        Ok(Renewed { lease, spent })
    }
}

/// The shortest time between two renewals of [`Workspace::renewing`], however short the
/// TTL: five a second at most.
const SHORTEST_RENEWAL: std::time::Duration = std::time::Duration::from_millis(200);

/// What the renewer thread of [`Workspace::renewing`] needs: everything it opens again on
/// its side, since a repository is not shared between threads.
struct Renewal {
    id: TaskId,
    directory: std::path::PathBuf,
    mode: Mode,
    remote_timeout: std::time::Duration,
    /// The holder, TTL and skew of each renewal; its `now` is set at each.
    context: LeaseContext,
    /// The invocation's clock, moving on from when the workspace was opened.
    clock: (jiff::Timestamp, std::time::Instant),
    every: std::time::Duration,
    /// The first renewal is due this long after the thread starts.
    first: std::time::Duration,
}

impl Renewal {
    fn now(&self) -> jiff::Timestamp {
        let (at, since) = self.clock;
        jiff::SignedDuration::try_from(since.elapsed())
            .ok()
            .and_then(|elapsed| at.checked_add(elapsed).ok())
            .unwrap_or(at)
    }

    /// Renews the lease every [`Renewal::every`] until `stop` is dropped; returns what went
    /// wrong, for the caller to say once the work is over (a lost or ended lease ends the
    /// renewals: the submission that follows says so itself).
    fn run(self, stop: &mpsc::Receiver<()>) -> Vec<String> {
        let mut problems = Vec::new();
        let repo = match Repository::discover(&self.directory) {
            Ok(repo) => repo,
            Err(error) => {
                problems.push(error_chain(&error));
                return problems;
            }
        };
        repo.set_remote_timeout(self.remote_timeout);
        let store = LeaseStore::new(&repo, self.mode.clone());
        let mut due = std::time::Instant::now() + self.first;
        while let Err(mpsc::RecvTimeoutError::Timeout) =
            stop.recv_timeout(due.saturating_duration_since(std::time::Instant::now()))
        {
            // From the start of this renewal: a slow one does not push the next past the TTL.
            due = std::time::Instant::now() + self.every;
            let context = LeaseContext {
                now: self.now(),
                ..self.context.clone()
            };
            match lease::heartbeat(&store, &self.id, &context, None) {
                Ok(_) => {}
                Err(
                    error @ (LeaseError::Lost { .. }
                    | LeaseError::Ended { .. }
                    | LeaseError::NotHeld { .. }),
                ) => {
                    problems.push(error_chain(&error));
                    return problems;
                }
                Err(error) => problems.push(error_chain(&error)),
            }
        }
        problems
    }
}

impl Workspace<'_> {
    /// Runs `work` while a thread of its own keeps the lease this worktree holds on `id`
    /// renewed, with the TTL it has, once a third of it has passed since the last renewal:
    /// long acceptance commands then cannot let it expire and be claimed by another agent.
    /// The thread is stopped and joined before this returns, so no renewal of it can race
    /// the submission that follows (its compare-and-swap would lose to it, and `advance`
    /// knows only its own noted intent). Without a live lease here, `work` just runs.
    pub(super) fn renewing<T>(&self, id: &TaskId, work: impl FnOnce() -> T) -> T {
        let Some(renewal) = self.renewal(id) else {
            return work();
        };
        let (stop, stopped) = mpsc::channel::<()>();
        let (result, problems) = std::thread::scope(|scope| {
            let renewer = scope.spawn(move || renewal.run(&stopped));
            let result = work();
            drop(stop);
            let problems = renewer
                .join()
                .unwrap_or_else(|_| vec!["the renewing thread panicked".to_owned()]);
            (result, problems)
        });
        for problem in problems {
            self.notices.warning(&format!(
                "cannot renew the lease on {id} while the acceptance commands run: {problem}"
            ));
        }
        result
    }

    /// The renewals of the live lease this worktree holds on `id`, if it holds one.
    fn renewal(&self, id: &TaskId) -> Option<Renewal> {
        let directory = self.repo.workdir()?.to_path_buf();
        let holder = self.holder();
        let held = HeldLease::load(self.repo.common_dir(), id, &holder).ok()??;
        if held.lost || held.state != LeaseState::Held {
            return None;
        }
        let oid = ObjectId::from_hex(held.oid.as_bytes()).ok()?;
        let record = LeaseRecord::from_message(&self.repo.commit_message(oid).ok()?).ok()?;
        let ttl = record.renewed_at.duration_until(record.expires_at);
        if !ttl.is_positive() {
            return None;
        }
        let every = std::time::Duration::try_from(ttl / 3)
            .ok()?
            .max(SHORTEST_RENEWAL);
        let now = self.invocation.now;
        let due = jiff::SignedDuration::try_from(every)
            .ok()
            .and_then(|every| record.renewed_at.checked_add(every).ok())?;
        let first = std::time::Duration::try_from(now.duration_until(due)).unwrap_or_default();
        let mut context = self.lease_context(None).ok()?;
        context.ttl = ttl;
        Some(Renewal {
            id: id.clone(),
            directory,
            mode: self.store.mode().clone(),
            remote_timeout: self.config.remote_timeout.unsigned_abs(),
            context,
            clock: (now, self.opened),
            every,
            first: first.saturating_sub(self.opened.elapsed()),
        })
    }
}
