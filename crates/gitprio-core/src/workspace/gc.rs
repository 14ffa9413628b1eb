//! Deleting the leases that no longer matter.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};

use crate::lease::{self, Collected, Kept, Lease, LeaseError, LeaseRecord, LeaseState, LeaseStore};
use crate::queue::{Holds, Queue};
use crate::reply::lease::{GcKept, GcReply};
use crate::source::LoadedQueue;
use crate::task::TaskId;

use super::{Workspace, WorkspaceError, load_tasks};

impl Workspace<'_> {
    /// Deletes the leases of tasks done or dropped on a fresh view of the queue's branch,
    /// and of tasks gone from it whose lease is no longer live; each lease of a missing
    /// task it keeps is an info saying why.
    pub fn gc(&self) -> Result<GcReply, WorkspaceError> {
        let context = self.lease_context(None)?;
        self.store.refresh()?;
        let loaded = load_tasks(self.repo, &self.queue_source(), self.notices)?;
        let (leases, _) = self.store.leases()?;
        let skipped = loaded.skipped_files().len();
        let collected = collect(&self.store, &loaded, &leases, (context.now, context.skew))?;
        for (id, reason) in &collected.kept {
            let why = match reason {
                Kept::Unreadable => format!(
                    "{skipped} task file(s) there could not be read and it may be one of them; fix them (see `gitprio check`) and run `gitprio gc` again"
                ),
                Kept::Live => format!(
                    "its lease is {}; gc deletes it once it is not (if the task is on another branch, set `branch:` in .tasks/config.yaml)",
                    live_state(&leases[id].record)
                ),
            };
            self.notices.info(&format!(
                "kept the lease of {id}: {id} is not in the queue at {}, but {why}",
                loaded.origin
            ));
        }
        let kept = collected
            .kept
            .iter()
            .map(|(id, reason)| GcKept {
                task: id.clone(),
                reason: *reason,
                state: leases[id].record.state,
            })
            .collect();
        Ok(GcReply {
            deleted: collected.deleted,
            kept,
        })
    }
}

/// Deletes those of `leases` that no longer matter on `loaded` (the tasks done or dropped
/// there, and those gone from it whose lease is not live at `now` give or take `skew`);
/// `gitprio gc` on the queue's branch, the Action on a merged pull request's head.
pub fn collect(
    store: &LeaseStore<'_>,
    loaded: &LoadedQueue,
    leases: &BTreeMap<TaskId, Lease>,
    (now, skew): (Timestamp, SignedDuration),
) -> Result<Collected, LeaseError> {
    let queue = Queue::build(loaded.tasks.clone(), &Holds::new());
    let view = lease::GcView {
        queue: &queue,
        files_skipped: !loaded.skipped_files().is_empty(),
        now,
        skew,
    };
    lease::gc(store, &view, leases)
}

/// Names the state of a live lease for a message: "held until ...", "submitted", "parked".
fn live_state(record: &LeaseRecord) -> String {
    match record.state {
        LeaseState::Held => format!(
            "held by {} until {}",
            record.holder.agent, record.expires_at
        ),
        LeaseState::Submitted => format!("submitted by {}", record.holder.agent),
        LeaseState::Parked => "parked".to_owned(),
        LeaseState::Released => "released".to_owned(),
    }
}
