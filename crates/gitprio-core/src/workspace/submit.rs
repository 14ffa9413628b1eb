//! Submitting a task: the completion fenced by the lease, then `status: done` in its file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::lease::{self, HeldLease, Lease, LeaseState};
use crate::source::{self, QueueSource};
use crate::task::{Status, TaskId};
use crate::usage::{Ledger, Outcome};

use super::acceptance::{Check, run_acceptance};
use super::{Workspace, WorkspaceError};

/// A submitted task: its lease, and the task file in which `status: done` was set.
#[derive(Debug)]
pub struct Submitted {
    pub lease: Lease,
    pub path: String,
}

/// The note a completion leaves on the lease: why the acceptance commands were not run, if
/// they were not, then the review summary.
pub fn completion_note(no_verify_reason: Option<&str>, summary: Option<String>) -> Option<String> {
    match (no_verify_reason, summary) {
        (Some(reason), Some(summary)) => Some(format!("acceptance not run: {reason}\n\n{summary}")),
        (Some(reason), None) => Some(format!("acceptance not run: {reason}")),
        (None, summary) => summary,
    }
}

/// The longest review summary kept, in bytes: it lives in a lease commit message.
const MAX_SUMMARY_BYTES: usize = 8 * 1024;

/// Trims a review summary and cuts it at [`MAX_SUMMARY_BYTES`], saying so.
pub fn bounded_summary(text: &str) -> String {
    let mut text = text.trim().to_owned();
    if text.len() > MAX_SUMMARY_BYTES {
        let mut end = MAX_SUMMARY_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("\n[summary cut at 8 KiB]");
    }
    text
}

/// What a finished submission leaves in the clone, `gitprio/submitted/<id>.json`: a `done`
/// again finds its lease still at that submission and has nothing left to do, where it
/// would otherwise finish the submission once more (the steps after its push, for a
/// `done` killed before them): run the acceptance commands again and set `status: done`
/// in whatever worktree it runs in.
#[derive(Debug, Serialize, Deserialize)]
struct Finished {
    /// The submitted lease commit.
    oid: String,
    /// The task file set to `status: done`.
    path: String,
    /// Whether the acceptance commands ran.
    verified: bool,
}

impl Finished {
    fn path(workspace: &Workspace<'_>, id: &TaskId) -> PathBuf {
        workspace
            .repo
            .common_dir()
            .join("gitprio")
            .join("submitted")
            .join(format!("{}.json", id.as_str()))
    }
}

/// The acceptance commands' passing verdict on a tree, kept in the attempt's directory,
/// `gitprio/runs/<id>/<generation>/acceptance.json` (written whole or not at all): a `done`
/// run again on that very tree (after a kill: `gitprio run` runs it again at once, its next
/// run finishes a submission left half done) does not run them again. A changed tree, or
/// other commands, run them again.
#[derive(Debug, Serialize, Deserialize)]
struct Verdict {
    /// The trees they passed on: the working tree (its files git does not ignore) before
    /// they ran, and after, when they changed it.
    trees: Vec<String>,
    commands: Vec<String>,
    checks: Vec<Check>,
}

impl Verdict {
    const NAME: &str = "acceptance.json";

    fn load(attempt: &Path) -> Option<Verdict> {
        let bytes = std::fs::read(attempt.join(Self::NAME)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Keeps the verdict; only a help (a `done` again runs the commands again without it).
    fn save(&self, attempt: &Path) {
        if std::fs::create_dir_all(attempt).is_ok()
            && let Ok(bytes) = serde_json::to_vec_pretty(self)
        {
            let _ = crate::file::replace(&attempt.join(Self::NAME), &bytes);
        }
    }
}

/// Returns the id of the tree `worktree` holds now, the files git does not ignore as they
/// are (changes not committed, files not added): what a `git add -A` would commit, staged
/// in an index of its own in `attempt` so the worktree's own index is not touched.
fn worktree_tree(worktree: &Path, index: &Path) -> Option<String> {
    let git = |args: &[&str], index: Option<&Path>| {
        let mut command = crate::git::command();
        command.current_dir(worktree).args(args);
        match index {
            Some(index) => command.env("GIT_INDEX_FILE", index),
            None => command.env_remove("GIT_INDEX_FILE"),
        };
        command
            .output()
            .ok()
            .filter(|output| output.status.success())
    };
    // Its own index to start from, when it has one: files unchanged since are not hashed.
    let own = git(
        &["rev-parse", "--path-format=absolute", "--git-path", "index"],
        None,
    );
    let _ = std::fs::remove_file(index);
    if let Some(own) = own {
        let _ = std::fs::copy(String::from_utf8_lossy(&own.stdout).trim(), index);
    }
    let tree = git(&["add", "--all", "--", "."], Some(index))
        .and_then(|_| git(&["write-tree"], Some(index)))
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned());
    let _ = std::fs::remove_file(index);
    tree.filter(|tree| !tree.is_empty())
}

impl Workspace<'_> {
    /// The directory of the attempt at `id` this worktree holds the lease of (see
    /// `gitprio run`): `gitprio/runs/<id>/<generation>`.
    pub(super) fn attempt_directory(&self, id: &TaskId) -> Option<PathBuf> {
        let holder = self.holder();
        let held = HeldLease::load(self.repo.common_dir(), id, &holder).ok()??;
        Some(
            self.repo
                .common_dir()
                .join("gitprio")
                .join("runs")
                .join(id.as_str())
                .join(held.generation.to_string()),
        )
    }

    /// Runs `commands`, the acceptance commands of `id` as claimed, in `worktree`, unless
    /// they passed on this very tree in an earlier `done` of this attempt (see [`Verdict`]):
    /// then says so and returns that run's checks.
    pub(super) fn accept(
        &self,
        worktree: &Path,
        id: &TaskId,
        commands: &[String],
    ) -> Result<Vec<Check>, WorkspaceError> {
        let Some(attempt) = self.attempt_directory(id).filter(|_| !commands.is_empty()) else {
            return run_acceptance(worktree, commands);
        };
        let index = attempt.join("acceptance.index");
        if std::fs::create_dir_all(&attempt).is_err() {
            return run_acceptance(worktree, commands);
        }
        let before = worktree_tree(worktree, &index);
        if let Some(tree) = &before
            && let Some(verdict) = Verdict::load(&attempt)
            && verdict.commands == commands
            && verdict.trees.contains(tree)
        {
            self.notices.info(&format!(
                "{id}: the acceptance commands passed on this very tree ({}) in an earlier `done` of this attempt: not run again",
                &tree[..tree.len().min(12)]
            ));
            return Ok(verdict.checks);
        }
        let checks = run_acceptance(worktree, commands)?;
        if let Some(tree) = before
            && checks.iter().all(|check| check.passed)
        {
            let mut trees = vec![tree];
            trees.extend(worktree_tree(worktree, &index).filter(|after| !trees.contains(after)));
            Verdict {
                trees,
                commands: commands.to_vec(),
                checks: checks.clone(),
            }
            .save(&attempt);
        }
        Ok(checks)
    }

    /// The submission of `id` this clone made and finished, when the lease (as the remote
    /// holds it now) still is that submission, by this agent: with whether it was verified.
    pub(super) fn finished_submission(
        &self,
        id: &TaskId,
    ) -> Result<Option<(Submitted, bool)>, WorkspaceError> {
        let Ok(bytes) = std::fs::read(Finished::path(self, id)) else {
            return Ok(None);
        };
        let Ok(finished) = serde_json::from_slice::<Finished>(&bytes) else {
            return Ok(None);
        };
        let agent = self.lease_context(None)?.holder.agent;
        self.store.refresh()?;
        let lease = self.store.lease(id)?.filter(|lease| {
            lease.oid == finished.oid.as_str()
                && lease.record.state == LeaseState::Submitted
                && lease.record.holder.agent == agent
        });
        Ok(lease.map(|lease| {
            let submitted = Submitted {
                lease,
                path: finished.path,
            };
            (submitted, finished.verified)
        }))
    }

    /// Notes that the submission is finished (see [`Workspace::finished_submission`]). Only
    /// a help: when it cannot be written, a `done` again finishes the submission again.
    pub(super) fn note_finished(&self, submitted: &Submitted, verified: bool) {
        let id = &submitted.lease.record.task;
        let finished = Finished {
            oid: submitted.lease.oid.to_string(),
            path: submitted.path.clone(),
            verified,
        };
        let path = Finished::path(self, id);
        if let Some(directory) = path.parent() {
            let _ = std::fs::create_dir_all(directory);
        }
        if let Ok(bytes) = serde_json::to_vec(&finished) {
            let _ = crate::file::replace(&path, &bytes);
        }
    }

    /// Records `id` as submitted, fenced by the lease, then sets `status: done` in its task
    /// file. `note` (the review summary, why acceptance was not run) is kept as the
    /// `reason` of the submit record in the lease history.
    pub fn submit(&self, id: &TaskId, note: Option<&str>) -> Result<Submitted, WorkspaceError> {
        let context = self.lease_context(None)?;
        let worktree = self
            .repo
            .workdir()
            .ok_or(WorkspaceError::NoWorktree {
                action: "gitprio done",
                why: "edits the task file",
            })?
            .to_path_buf();
        let path = self.find_task_file(id)?;
        let file = worktree.join(&path);
        let text = std::fs::read_to_string(&file).map_err(|source| WorkspaceError::Io {
            action: "read the task file",
            path: file.clone(),
            source,
        })?;
        let edited = crate::task::set_status(&text, Status::Done).map_err(|source| {
            WorkspaceError::SetStatus {
                path: file.clone(),
                source,
            }
        })?;
        // The run's outcome rides in the submission's push (one fetch of the ledger, one
        // atomic push of both refs); when it cannot (local mode, a ledger written
        // meanwhile, writes kept on this machine), it is written after, as before.
        let carried = self.carry_outcome(id, Outcome::Completed);
        // The fence first: only the lease holder may record completion.
        let submitted = lease::submit_noting(&self.store, id, &context, note);
        let landed = carried.and_then(|carried| Ledger::new(&self.store).carried(carried));
        let lease = submitted?;
        if context.failpoint.as_deref() == Some("done:before-edit") {
            std::process::abort();
        }
        if landed.is_none() {
            self.record_outcome(id, Outcome::Completed);
        }
        if edited != text {
            crate::file::replace(&file, edited.as_bytes()).map_err(|source| {
                WorkspaceError::Io {
                    action: "write",
                    path: file.clone(),
                    source,
                }
            })?;
        }
        Ok(Submitted { lease, path })
    }

    /// Finds the task file of `id`: in the working tree first (it may be new), else in the queue.
    fn find_task_file(&self, id: &TaskId) -> Result<String, WorkspaceError> {
        for source in [QueueSource::Worktree, self.invocation.queue()] {
            if let Ok(loaded) = source::load(self.repo, &source, None)
                && let Some(task) = loaded.tasks.iter().find(|task| &task.id == id)
            {
                return Ok(task.path.clone());
            }
        }
        Err(WorkspaceError::NoTaskFile {
            id: id.clone(),
            place: "the working tree or the queue",
        })
    }
}
