//! A task's acceptance commands as claimed, run before a completion, and its plan check.

use std::path::Path;

use crate::config::Config;
use crate::git::{ObjectId, Repository};
use crate::lease::{self, HeldLease, LeaseError, LeaseRecord};
use crate::source::{self, QueueSource};
use crate::task::{Task, TaskId};

use super::{Notices, WorkspaceError, error_chain};

/// One acceptance command's result.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Check {
    pub command: String,
    pub passed: bool,
    /// `exit 1`, or the signal that ended it.
    pub status: String,
    /// The last lines of its output (stdout and stderr together).
    pub tail: String,
}

/// Returns the path of the task file of `claimed` (the task as [`claimed_task`] read it)
/// when the task must be planned first (see [`Config::plan_required`]) and that file in the
/// working tree has no `## Plan` section yet.
pub fn unplanned(
    repo: &Repository,
    config: &Config,
    claimed: &Task,
) -> Result<Option<String>, WorkspaceError> {
    if !config.plan_required(claimed) {
        return Ok(None);
    }
    let task = worktree_task(repo, &claimed.id)?;
    Ok((!crate::task::has_plan(&task.body)).then_some(task.path))
}

/// Returns task `id` as in the working tree.
fn worktree_task(repo: &Repository, id: &TaskId) -> Result<Task, WorkspaceError> {
    let loaded = source::load(repo, &QueueSource::Worktree, None)?;
    loaded
        .tasks
        .into_iter()
        .find(|task| &task.id == id)
        .ok_or_else(|| WorkspaceError::NoTaskFile {
            id: id.clone(),
            place: "the working tree",
        })
}

/// Returns task `id` as claimed (the task file the lease names), so that an edit in the
/// working tree cannot weaken its acceptance commands; else as in the working tree.
///
/// A lease record this gitprio cannot read (a newer one may have written it) is named in a
/// warning, with the advice to upgrade, and the working tree's file is used: the
/// submission that follows refuses that record anyway, but not silently before it.
pub fn claimed_task(
    repo: &Repository,
    id: &TaskId,
    notices: &dyn Notices,
) -> Result<Task, WorkspaceError> {
    // Any agent: the claimed task file is the same for whoever holds the lease here.
    let anyone = lease::Holder {
        agent: String::new(),
        host: String::new(),
        pid: 0,
        worktree: repo.workdir().map(|path| path.display().to_string()),
        branch: repo.current_branch(),
        session: None,
        extra: std::collections::BTreeMap::new(),
    };
    let claimed = HeldLease::load(repo.common_dir(), id, &anyone)
        .ok()
        .flatten()
        .and_then(|held| ObjectId::from_hex(held.oid.as_bytes()).ok())
        .and_then(|oid| Some((oid, repo.commit_message(oid).ok()?)))
        .and_then(|(oid, message)| match LeaseRecord::from_message(&message) {
            Ok(record) => Some(record),
            Err(source) => {
                let unreadable = LeaseError::Unreadable {
                    id: id.clone(),
                    oid,
                    source,
                };
                notices.warning(&format!(
                    "{}; the acceptance commands and the plan rule come from the task file in the working tree",
                    error_chain(&unreadable)
                ));
                None
            }
        })
        .and_then(|record| record.task_blob)
        .and_then(|blob| ObjectId::from_hex(blob.as_bytes()).ok())
        .and_then(|blob| repo.read_blob(blob).ok())
        .and_then(|bytes| crate::task::parse_task(&format!(".tasks/{id}.md"), &bytes).task)
        .filter(|task| &task.id == id);
    match claimed {
        Some(task) => Ok(task),
        None => worktree_task(repo, id),
    }
}

/// Runs `commands` with `sh -c` in `directory`, in order, stopping at the first that fails.
pub fn run_acceptance(directory: &Path, commands: &[String]) -> Result<Vec<Check>, WorkspaceError> {
    let mut checks = Vec::new();
    for command in commands {
        let check = run_one(directory, command).map_err(|source| WorkspaceError::Run {
            action: format!("run the acceptance command `{command}`"),
            source,
        })?;
        let passed = check.passed;
        checks.push(check);
        if !passed {
            break;
        }
    }
    Ok(checks)
}

/// Runs one acceptance command, its stdout and stderr into one file, read back for the tail.
fn run_one(directory: &Path, command: &str) -> std::io::Result<Check> {
    let mut log = tempfile::tempfile()?;
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(directory)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log.try_clone()?)
        .status()?;
    std::io::Seek::rewind(&mut log)?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut log, &mut bytes)?;
    Ok(Check {
        command: command.to_owned(),
        passed: status.success(),
        status: status.code().map_or_else(
            || "killed by a signal".to_owned(),
            |code| format!("exit {code}"),
        ),
        tail: tail(&String::from_utf8_lossy(&bytes), 20, 2000),
    })
}

/// Returns the last `lines` lines of `text`, at most `bytes` bytes of them.
pub fn tail(text: &str, lines: usize, bytes: usize) -> String {
    let text = text.trim_end();
    let start = text
        .rmatch_indices('\n')
        .nth(lines.saturating_sub(1))
        .map_or(0, |(index, _)| index + 1);
    let mut start = start.max(text.len().saturating_sub(bytes));
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_owned()
}
