//! Giving a claimed task back: released, failed, or parked.

use crate::lease::{self, Released};
use crate::reply::lease::{LeaseReply, ReleaseReply};
use crate::task::TaskId;
use crate::usage::{Ledger, Outcome};

use super::{Workspace, WorkspaceError};

/// How a task is given back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GiveBack {
    /// The agent stops without having failed: the next agent takes it as it is.
    Released,
    /// A failed attempt: it counts toward `max_attempts`, after which the task is parked.
    Failed,
    /// A failed attempt that parks the task at once, whatever `max_attempts` says.
    Parked,
}

impl GiveBack {
    /// A release, failed or not.
    pub fn failed(failed: bool) -> GiveBack {
        if failed {
            GiveBack::Failed
        } else {
            GiveBack::Released
        }
    }
}

/// The `release` reply to `released`, the lease kept in `store`.
pub fn release_reply(released: &Released, store: &str) -> ReleaseReply {
    ReleaseReply {
        lease: LeaseReply::new(&released.lease, store),
        parked: released.parked,
    }
}

impl Workspace<'_> {
    /// Gives `id` back as `how` says and records the run's end in the usage ledger.
    pub fn release(
        &self,
        id: &TaskId,
        reason: Option<&str>,
        how: GiveBack,
    ) -> Result<Released, WorkspaceError> {
        let context = self.lease_context(None)?;
        // The run's end rides in the lease push, as `done`'s does: a process killed after
        // the push leaves both refs moved or neither, never a released lease whose run
        // reads as expired once the task moves on. The ends that cannot ride (local
        // mode, writes kept, a lease that moved before the push) are written after.
        let intended = match how {
            GiveBack::Parked => Outcome::Parked,
            // The last failure `max_attempts` allows parks the task, as `lease::release` decides.
            GiveBack::Failed
                if self
                    .run_record(id)
                    .is_ok_and(|(record, _)| record.failures + 1 >= context.max_attempts) =>
            {
                Outcome::Parked
            }
            GiveBack::Failed => Outcome::Failed,
            GiveBack::Released => Outcome::Released,
        };
        let carried = self.carry_outcome(id, intended);
        let released = match how {
            GiveBack::Parked => lease::release_parked(&self.store, id, &context, reason),
            GiveBack::Released | GiveBack::Failed => {
                lease::release(&self.store, id, &context, reason, how == GiveBack::Failed)
            }
        };
        // Always asked, even after an error: it forgets the update waiting to ride.
        let landed = carried.and_then(|carried| Ledger::new(&self.store).carried(carried));
        let released = released?;
        let outcome = match how {
            _ if released.parked => Outcome::Parked,
            GiveBack::Failed => Outcome::Failed,
            GiveBack::Released | GiveBack::Parked => Outcome::Released,
        };
        if context.failpoint.as_deref() == Some("release:before-outcome") {
            std::process::abort();
        }
        if landed.is_none() || outcome != intended {
            self.record_outcome(id, outcome);
        }
        Ok(released)
    }
}
