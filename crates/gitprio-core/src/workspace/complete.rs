//! Completing a task, the one way every front end does it (`gitprio done`, MCP's
//! `complete_task`): the plan check, the acceptance commands or why they were skipped, the
//! usage reported with the completion, then the submission fenced by the lease.

use std::path::{Path, PathBuf};

use crate::task::TaskId;

use super::acceptance::{Check, claimed_task, unplanned};
use super::submit::{Submitted, bounded_summary, completion_note};
use super::usage::{RecordInput, Recorded};
use super::{Workspace, WorkspaceError};

/// The lock a `done` holds in the directory of `gitprio run`'s attempt it completes
/// (`gitprio/runs/<id>/<generation>/done.lock`) while it works: a run started after the
/// one that started this `done` was killed leaves the lease to it (it renews the lease
/// and submits), instead of giving the task back under it and doing it all again.
pub const DONE_LOCK: &str = "done.lock";

/// Holds [`DONE_LOCK`] of an attempt; removed (still locked) when dropped.
struct Working {
    path: PathBuf,
    _lock: std::fs::File,
}

impl Working {
    /// Locks the attempt's `done.lock`, if this worktree's lease is an attempt of `gitprio
    /// run` (only a help: without it, a run started meanwhile gives the task back).
    fn take(attempt: &Path) -> Option<Working> {
        let path = attempt.join(DONE_LOCK);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .ok()?;
        file.try_lock().ok()?;
        Some(Working { path, _lock: file })
    }
}

impl Drop for Working {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether the task's acceptance commands run before it is submitted.
#[derive(Clone, Debug)]
pub enum Verify {
    Run,
    /// Skip them, for this reason (kept in the lease history; it must say something).
    Skip {
        reason: String,
    },
}

/// What completing a task takes besides its id.
#[derive(Debug)]
pub struct Completion {
    pub verify: Verify,
    /// The review summary as written; trimmed and cut at 8 KiB here, and not blank.
    pub summary: Option<String>,
    /// Usage to record on the task's run first (MCP's `complete_task` takes it along).
    pub usage: Vec<RecordInput>,
}

/// How completing a task ended.
#[derive(Debug)]
pub enum Completed {
    /// The task must be planned first: its file (`path`) has no `## Plan` section yet.
    Unplanned {
        path: String,
    },
    /// The last of `checks` failed; nothing was submitted.
    AcceptanceFailed {
        checks: Vec<Check>,
    },
    Submitted(Box<Submission>),
}

/// A completed task: the submission, and what it took.
#[derive(Debug)]
pub struct Submission {
    pub submitted: Submitted,
    /// Whether the acceptance commands ran (all of `checks` passed).
    pub verified: bool,
    pub checks: Vec<Check>,
    /// The usage recorded first, when some was given.
    pub recorded: Option<Recorded>,
    /// Submitted before, and finished, by this agent from this clone (a `done` again, by
    /// mistake): nothing was run, recorded or changed now.
    pub already: bool,
}

impl Workspace<'_> {
    /// Completes `id`: refuses while it must be planned first, runs its acceptance commands
    /// as claimed (unless skipped, for a reason) with the lease kept renewed meanwhile,
    /// records the usage given, then submits it fenced by the lease and sets `status: done`
    /// in its task file.
    pub fn complete(
        &self,
        id: &TaskId,
        completion: Completion,
    ) -> Result<Completed, WorkspaceError> {
        let Completion {
            verify,
            summary,
            usage,
        } = completion;
        let worktree = self.repo.workdir().ok_or(WorkspaceError::NoWorktree {
            action: "completing a task",
            why: "sets `status: done` in its task file",
        })?;
        let skipped = match &verify {
            Verify::Run => None,
            Verify::Skip { reason } => match reason.trim() {
                "" => return Err(WorkspaceError::BlankReason),
                reason => Some(reason),
            },
        };
        let summary = summary.map(|summary| bounded_summary(&summary));
        if summary.as_deref() == Some("") {
            return Err(WorkspaceError::BlankSummary);
        }
        if let Some((submitted, verified)) = self.finished_submission(id)? {
            return Ok(Completed::Submitted(Box::new(Submission {
                submitted,
                verified,
                checks: Vec::new(),
                recorded: None,
                already: true,
            })));
        }
        let _working = self
            .attempt_directory(id)
            .filter(|attempt| attempt.is_dir())
            .and_then(|attempt| Working::take(&attempt));
        // Read once: a lease record it cannot read is warned about once.
        let claimed = claimed_task(self.repo, id, self.notices)?;
        if let Some(path) = unplanned(self.repo, self.config(), &claimed)? {
            return Ok(Completed::Unplanned { path });
        }
        let checks = match skipped {
            Some(_) => Vec::new(),
            None => self.renewing(id, || self.accept(worktree, id, &claimed.acceptance))?,
        };
        if checks.iter().any(|check| !check.passed) {
            return Ok(Completed::AcceptanceFailed { checks });
        }
        let recorded = if usage.is_empty() {
            None
        } else {
            let recorded = self
                .record_usage(id, usage)
                .map_err(|source| WorkspaceError::UsageBeforeCompletion(Box::new(source)))?;
            Some(recorded)
        };
        let note = completion_note(skipped, summary);
        let submitted = self.submit(id, note.as_deref())?;
        self.note_finished(&submitted, skipped.is_none());
        Ok(Completed::Submitted(Box::new(Submission {
            submitted,
            verified: skipped.is_none(),
            checks,
            recorded,
            already: false,
        })))
    }
}
