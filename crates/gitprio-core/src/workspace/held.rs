//! Which task a lease command without a task id is about: the one this worktree holds.

use crate::git::Repository;
use crate::lease::{HeldLease, LeaseState};
use crate::task::TaskId;

use super::WorkspaceError;

/// Parses a task id given by the user.
pub fn task_id(text: &str) -> Result<TaskId, WorkspaceError> {
    TaskId::new(text).ok_or_else(|| WorkspaceError::NotATaskId {
        text: text.to_owned(),
    })
}

/// Resolves the task a lease command is about: the one given, else the one this worktree
/// holds live. A submitted task is never the default: its lease must not be renewed,
/// given back or charged for by a command that named no task.
pub fn held_id(repo: &Repository, id: Option<&str>) -> Result<TaskId, WorkspaceError> {
    held_id_of(repo, id, false)
}

/// Resolves the task `done` is about: like [`held_id`], but a submitted task (a `done` to
/// finish after a crash) is the default when no live one is held here.
pub fn held_id_to_finish(repo: &Repository, id: Option<&str>) -> Result<TaskId, WorkspaceError> {
    held_id_of(repo, id, true)
}

fn held_id_of(
    repo: &Repository,
    id: Option<&str>,
    submitted: bool,
) -> Result<TaskId, WorkspaceError> {
    if let Some(id) = id {
        return task_id(id);
    }
    let here = repo.workdir().map(|path| path.display().to_string());
    let mut mine: Vec<HeldLease> = HeldLease::all(repo.common_dir())
        .into_iter()
        .filter(|held| held.worktree == here)
        .collect();
    // Leases lost to another holder only while nothing else is held here: then the next
    // command about them says "lease lost" again.
    if mine.iter().any(|held| !held.lost) {
        mine.retain(|held| !held.lost);
    }
    // Live leases first; a submitted one (a `done` to finish after a crash) only if no live one.
    let live = mine.iter().any(|held| held.state == LeaseState::Held);
    let mut held: Vec<HeldLease> = mine
        .into_iter()
        .filter(|held| {
            held.state == LeaseState::Held
                || (submitted && !live && held.state == LeaseState::Submitted)
        })
        .collect();
    // Holders of several generations in this worktree (an agent's lease lost to another
    // agent here) name one task: the lease command sorts out whose it is.
    held.dedup_by(|next, kept| next.task == kept.task);
    // A task worktree made by `gitprio run` is on the branch `gitprio/<id>`.
    let branch_task = repo
        .current_branch()
        .and_then(|branch| branch.strip_prefix("gitprio/").and_then(TaskId::new));
    match (held.as_slice(), branch_task) {
        ([], Some(task)) => Ok(task),
        ([one], _) => Ok(one.task.clone()),
        ([], None) => Err(WorkspaceError::NothingHeldHere),
        (many, _) => Err(WorkspaceError::SeveralHeldHere {
            tasks: many.iter().map(|held| held.task.clone()).collect(),
        }),
    }
}
