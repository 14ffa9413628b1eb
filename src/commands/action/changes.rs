//! What a pull request changes: the tasks it completes (status edits and commit trailers) and its files.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context as _, anyhow, bail};
use gitprio_core::git::{ObjectId, Repository};
use gitprio_core::source::{self, LoadError, LoadedQueue, ParseCache, QueueSource};
use gitprio_core::{Status, TASKS_DIR, Task, TaskId};

/// The commit trailer that names a task a commit completes: `Gitprio-Task: <id>`.
pub const TRAILER: &str = "Gitprio-Task";

/// How a task came to count as completed by the pull request.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// The task as the pull request's head has it.
    pub task: Task,
    /// Its status at the merge base; `None` when the file is new.
    pub status_before: Option<Status>,
    /// Its status became `done` between the merge base and the head.
    pub by_status: bool,
    /// A commit of the pull request names it in a `Gitprio-Task` trailer.
    pub by_trailer: bool,
}

/// What a pull request changes, between the merge base of its base and head, and its head.
#[derive(Debug)]
pub struct Changes {
    pub head: ObjectId,
    /// Every path the pull request adds, modifies or deletes, sorted.
    pub files: Vec<String>,
    /// The tasks it completes, in id order.
    pub completed: Vec<Completion>,
    /// Trailer values that name no task at the head.
    pub unknown_trailers: Vec<String>,
    /// The queue at the head, when it has one.
    pub head_queue: Option<LoadedQueue>,
}

impl Changes {
    /// Returns whether the pull request edits any file under `.tasks/`.
    pub fn edits_tasks(&self) -> bool {
        let prefix = format!("{TASKS_DIR}/");
        self.files.iter().any(|path| path.starts_with(&prefix))
    }

    /// Returns the ids of the completed tasks.
    pub fn completed_ids(&self) -> Vec<TaskId> {
        self.completed
            .iter()
            .map(|completion| completion.task.id.clone())
            .collect()
    }
}

/// Reads what the pull request from `base` to `head` (commit ids) changes.
///
/// Commits missing from the clone are fetched from `origin` once; a shallow
/// checkout that cannot reach them gets an error that says to use `fetch-depth: 0`.
pub fn read(
    repo: &Repository,
    base: &str,
    head: &str,
    cache: &mut ParseCache,
) -> anyhow::Result<Changes> {
    let base_commit = ensure_commit(repo, base, "base")?;
    let head_commit = ensure_commit(repo, head, "head")?;
    let merge_base = merge_base(repo, base_commit, head_commit)?.unwrap_or(base_commit);
    let files = changed_files(repo, merge_base, head_commit)?;
    let before = load_at(repo, merge_base, cache)?;
    let head_queue = load_at(repo, head_commit, cache)?;
    let trailers = trailer_ids(repo, merge_base, head_commit)?;
    let status_before: BTreeMap<&TaskId, Status> = before
        .iter()
        .flat_map(|queue| queue.tasks.iter())
        .map(|task| (&task.id, task.status))
        .collect();
    let mut completed = Vec::new();
    let mut unknown_trailers = Vec::new();
    let head_tasks: BTreeMap<&str, &Task> = head_queue
        .iter()
        .flat_map(|queue| queue.tasks.iter())
        .map(|task| (task.id.as_str(), task))
        .collect();
    for trailer in &trailers {
        if !head_tasks.contains_key(trailer.as_str()) {
            unknown_trailers.push(trailer.clone());
        }
    }
    for (id, task) in &head_tasks {
        let before = status_before.get(&task.id).copied();
        let by_status = task.status == Status::Done && before != Some(Status::Done);
        let by_trailer = trailers.contains(*id);
        if by_status || by_trailer {
            completed.push(Completion {
                task: (*task).clone(),
                status_before: before,
                by_status,
                by_trailer,
            });
        }
    }
    Ok(Changes {
        head: head_commit,
        files,
        completed,
        unknown_trailers,
        head_queue,
    })
}

/// Returns the commit `sha`, fetching it from `origin` if this clone lacks it.
fn ensure_commit(repo: &Repository, sha: &str, which: &str) -> anyhow::Result<ObjectId> {
    let present = |repo: &Repository| {
        repo.git(&[
            "cat-file",
            "-e",
            "--end-of-options",
            &format!("{sha}^{{commit}}"),
        ])
        .is_ok_and(|output| output.status.success())
    };
    if !present(repo) && repo.has_remote("origin") {
        let _ = repo.git_bounded(&[
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            "origin",
            sha,
        ]);
    }
    if !present(repo) {
        bail!(
            "the pull request's {which} commit {sha} is not in this clone; check out with `fetch-depth: 0` (actions/checkout) so gitprio can compare base and head"
        );
    }
    Ok(repo.resolve_commit(sha)?)
}

fn merge_base(
    repo: &Repository,
    base: ObjectId,
    head: ObjectId,
) -> anyhow::Result<Option<ObjectId>> {
    let output = repo.git(&["merge-base", &base.to_string(), &head.to_string()])?;
    if !output.status.success() {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(ObjectId::from_hex(text.trim().as_bytes()).ok())
}

fn changed_files(repo: &Repository, from: ObjectId, to: ObjectId) -> anyhow::Result<Vec<String>> {
    let output = repo.git(&[
        "diff",
        "--name-only",
        "-z",
        "--no-renames",
        "--no-ext-diff",
        &from.to_string(),
        &to.to_string(),
    ])?;
    if !output.status.success() {
        bail!(
            "`git diff` between {from} and {to} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let text = String::from_utf8(output.stdout).context("`git diff` printed a non-UTF-8 path")?;
    let mut files: Vec<String> = text
        .split('\0')
        .filter(|path| !path.is_empty())
        .map(str::to_owned)
        .collect();
    files.sort_unstable();
    Ok(files)
}

/// Loads the queue at `commit`; `None` when that commit has no `.tasks/`.
fn load_at(
    repo: &Repository,
    commit: ObjectId,
    cache: &mut ParseCache,
) -> anyhow::Result<Option<LoadedQueue>> {
    match source::load(repo, &QueueSource::Rev(commit.to_string()), Some(cache)) {
        Ok(loaded) => Ok(Some(loaded)),
        Err(LoadError::NoTasksDir { .. }) => Ok(None),
        Err(error) => {
            Err(anyhow!(error).context(format!("cannot read the task files at {commit}")))
        }
    }
}

/// Returns the task ids named in `Gitprio-Task` trailers of the commits in `from..to`.
fn trailer_ids(
    repo: &Repository,
    from: ObjectId,
    to: ObjectId,
) -> anyhow::Result<BTreeSet<String>> {
    let format = format!("--format=%(trailers:key={TRAILER},valueonly,separator=%x00)%x00");
    let output = repo.git(&[
        "log",
        "--no-show-signature",
        &format,
        &format!("{from}..{to}"),
    ])?;
    if !output.status.success() {
        bail!(
            "`git log` of {from}..{to} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(parse_trailer_values(&String::from_utf8_lossy(
        &output.stdout,
    )))
}

/// Splits trailer values into task ids: one per trailer, or several separated by commas or spaces.
fn parse_trailer_values(text: &str) -> BTreeSet<String> {
    text.split(['\0', '\n', ',', ' ', '\t'])
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_values_split_into_ids() {
        let ids = parse_trailer_values("login\0\0docs, cache\0\n\0 spaced-id \0");
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        assert_eq!(ids, ["cache", "docs", "login", "spaced-id"]);
    }
}
