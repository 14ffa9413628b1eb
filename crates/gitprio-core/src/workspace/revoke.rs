//! Taking a lease away from the agent that holds it.

use crate::lease::{self, Lease, LeaseState, Revocation};
use crate::reply::lease::{LeaseReply, RevokeReply};
use crate::source;
use crate::task::TaskId;
use crate::usage::{Ledger, Outcome, RunMeta};

use super::{Workspace, WorkspaceError, error_chain, run_meta};

/// A lease taken away, and from whom.
#[derive(Debug)]
pub struct Revoked {
    pub lease: Lease,
    pub from: String,
    /// Why the revoked run's end is not in the usage ledger, if it is not.
    pub warning: Option<String>,
}

impl Revoked {
    /// The `revoke` reply on `id`, the lease kept in `store`.
    pub fn reply(&self, id: &TaskId, store: &str) -> RevokeReply {
        RevokeReply {
            task: id.clone(),
            revoked_from: self.from.clone(),
            lease: LeaseReply::new(&self.lease, store),
        }
    }
}

impl Workspace<'_> {
    /// Revokes the lease on `id` as last fetched, and records the end of the revoked run in
    /// the usage ledger (a failure there is only a warning in the result: the lease moved
    /// already). Says nothing through the notices, so `gitprio top` can call it under its
    /// screen.
    pub fn revoke(
        &self,
        id: &TaskId,
        revocation: &Revocation<'_>,
    ) -> Result<Revoked, WorkspaceError> {
        let context = self.lease_context(None)?;
        let current = self.store.lease(id)?;
        let lease = lease::revoke(&self.store, current.as_ref(), id, &context, revocation)?;
        let previous = current.expect("a revoked lease existed");
        let task = source::load(self.repo, &self.queue_source(), None)
            .ok()
            .and_then(|loaded| loaded.tasks.into_iter().find(|task| &task.id == id));
        let meta = RunMeta {
            outcome: Some(if lease.record.state == LeaseState::Parked {
                Outcome::Parked
            } else {
                Outcome::Failed
            }),
            ended_at: Some(self.invocation.now),
            ..run_meta(&previous.record, task.as_ref(), &self.config, None)
        };
        let warning = Ledger::new(&self.store)
            .write(&meta, &[], self.invocation.now)
            .err()
            .map(|error| {
                format!(
                    "the revoked run was not recorded in the usage ledger: {}",
                    error_chain(&error)
                )
            });
        Ok(Revoked {
            lease,
            from: previous.record.holder.agent,
            warning,
        })
    }
}
