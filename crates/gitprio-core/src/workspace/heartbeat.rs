//! Renewing a lease, with the holder's progress, and reading what its run spent.

use crate::lease::{self, Lease, Progress};
use crate::reply::lease::{HeartbeatReply, LeaseReply};
use crate::task::TaskId;
use crate::usage::{Ledger, Run, RunMeta};

use super::{Workspace, WorkspaceError, over_budget};

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
