//! Who holds what: every lease, whose it is, and the lease refs that cannot be read.

use std::collections::BTreeMap;

use crate::git::Repository;
use crate::lease::{HeldLease, Lease, LeaseEvent, LeaseState};
use crate::reply::lease::{LeaseReply, ShownState, StatusLease, StatusReply, UnreadableLease};
use crate::task::TaskId;

use super::{Workspace, WorkspaceError};

/// The tasks whose lease this worktree holds now.
///
/// Only while the lease is exactly the commit this worktree wrote last: one that moved on
/// (reclaimed, revoked) is someone else's, whatever this worktree remembers.
fn held_here(repo: &Repository, leases: &BTreeMap<TaskId, Lease>) -> Vec<TaskId> {
    let here = repo.workdir().map(|path| path.display().to_string());
    HeldLease::all(repo.common_dir())
        .into_iter()
        .filter(|held| {
            held.worktree == here
                && leases
                    .get(&held.task)
                    .is_some_and(|lease| lease.oid == held.oid.as_str())
        })
        .map(|held| held.task)
        .collect()
}

impl Workspace<'_> {
    /// Returns the lease on `id` this worktree holds now, as last seen in this workspace's
    /// store: held, and exactly the commit this worktree wrote last (what `status` calls
    /// `mine`).
    pub fn lease_held_here(&self, id: &TaskId) -> Result<Option<Lease>, WorkspaceError> {
        let Some(lease) = self
            .store
            .lease(id)?
            .filter(|lease| lease.record.state == LeaseState::Held)
        else {
            return Ok(None);
        };
        let leases = BTreeMap::from([(id.clone(), lease)]);
        if held_here(self.repo, &leases).is_empty() {
            return Ok(None);
        }
        Ok(leases.into_values().next())
    }

    /// Every lease in task id order, with whether it is past its expiry and held here;
    /// from the remote unless `offline` (then as last fetched).
    pub fn status(&self, offline: bool) -> Result<StatusReply, WorkspaceError> {
        if !offline {
            self.store.refresh()?;
        }
        let (leases, bad) = self.store.leases()?;
        let skew = self.skew();
        let mine = held_here(self.repo, &leases);
        let store = self.store_name();
        Ok(StatusReply {
            leases: leases
                .values()
                .map(|lease| {
                    let expired_at = super::expired_at(&lease.record, self.invocation.now, skew);
                    let mut reply = LeaseReply::new(lease, store);
                    if expired_at.is_some() {
                        reply.state = ShownState::Expired;
                    }
                    StatusLease {
                        task: lease.record.task.clone(),
                        expired: expired_at.is_some(),
                        expired_at,
                        mine: mine.contains(&lease.record.task),
                        revoked_by: (lease.record.event == LeaseEvent::Revoke)
                            .then(|| lease.record.holder.agent.clone()),
                        lease: reply,
                    }
                })
                .collect(),
            unreadable: bad
                .into_iter()
                .map(|lease| UnreadableLease {
                    reference: lease.reference,
                    problem: lease.problem,
                    from_newer_gitprio: lease.from_newer_gitprio,
                    advice: lease.advice,
                })
                .collect(),
        })
    }
}
