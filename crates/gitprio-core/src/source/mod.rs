//! Where the queue is read from (a commit, or the working tree) and loading every task file from it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use gix::ObjectId;

use crate::config::Config;
use crate::diagnostic::{Diagnostic, DiagnosticKind, Position};
use crate::git::{GitError, Repository};
use crate::task::{MAX_TASK_FILE_BYTES, ParsedTask, Task, parse_task};
use crate::{CONFIG_PATH, TASKS_DIR};

mod cache;

pub use cache::ParseCache;

/// Which version of the task files to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueSource {
    /// The queue's branch: see [`resolve_queue_ref`].
    Default,
    /// A given revision.
    Rev(String),
    /// The files in the working tree, committed or not.
    Worktree,
}

/// The version of the task files that was read, for messages and `--json`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    Commit { rev: String, commit: String },
    Worktree { path: String },
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Commit { rev, commit } => {
                write!(f, "{rev} ({})", &commit[..commit.len().min(12)])
            }
            Origin::Worktree { path } => write!(f, "the working tree at {path}"),
        }
    }
}

/// Why the queue could not be loaded at all.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(
        "no task queue in {origin}: `{TASKS_DIR}/` does not exist; run `gitprio init` to create one"
    )]
    NoTasksDir { origin: Origin },
    #[error(
        "repository has no commits yet, so there is no committed queue; commit `{TASKS_DIR}/` or pass `--worktree`"
    )]
    NoCommits,
    #[error("repository has no working tree to read; pass `--rev` instead")]
    NoWorktree,
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Every task of one version of the queue, and the problems met reading it.
#[derive(Clone, Debug)]
pub struct LoadedQueue {
    pub origin: Origin,
    /// The commit read, when the queue came from git.
    pub commit: Option<ObjectId>,
    pub config: Config,
    /// Usable tasks with unique ids, in path order.
    pub tasks: Vec<Task>,
    /// Problems met: files skipped, duplicate ids, unknown keys.
    pub diagnostics: Vec<Diagnostic>,
}

/// Returns the ref the queue is read from by default, and its commit.
///
/// In order: `config.branch` on the remote (`refs/remotes/<remote>/<branch>`), the
/// same local branch, the remote's default branch as last fetched
/// (`refs/remotes/<remote>/HEAD`), then `HEAD`.
pub fn resolve_queue_ref(
    repo: &Repository,
    config: &Config,
) -> Result<(String, ObjectId), LoadError> {
    let remote = config.remote.as_deref().unwrap_or("origin");
    let mut candidates = Vec::new();
    if let Some(branch) = &config.branch {
        candidates.push(format!("refs/remotes/{remote}/{branch}"));
        candidates.push(format!("refs/heads/{branch}"));
    }
    candidates.push(format!("refs/remotes/{remote}/HEAD"));
    for name in candidates {
        if let Some(commit) = repo.reference_commit(&name)? {
            return Ok((name, commit));
        }
    }
    match repo.head_commit()? {
        Some(commit) => Ok(("HEAD".to_owned(), commit)),
        None => Err(LoadError::NoCommits),
    }
}

/// Reads the checked-out config (the working tree's, else `HEAD`'s) to learn the remote and branch.
pub fn local_config(repo: &Repository) -> Config {
    if let Some(text) = repo
        .workdir()
        .and_then(|root| std::fs::read_to_string(root.join(CONFIG_PATH)).ok())
    {
        return Config::parse(CONFIG_PATH, &text).0;
    }
    let from_head = repo
        .head_commit()
        .ok()
        .flatten()
        .and_then(|commit| read_committed(repo, commit, CONFIG_PATH).ok().flatten());
    from_head
        .map(|bytes| Config::parse(CONFIG_PATH, &String::from_utf8_lossy(&bytes)).0)
        .unwrap_or_default()
}

fn read_committed(
    repo: &Repository,
    commit: ObjectId,
    path: &str,
) -> Result<Option<Vec<u8>>, GitError> {
    match repo.entry_at(commit, path)? {
        Some((blob, false)) => repo.read_blob(blob).map(Some),
        _ => Ok(None),
    }
}

/// Loads every task file of `source`, parsing through `cache` when reading from git.
pub fn load(
    repo: &Repository,
    source: &QueueSource,
    cache: Option<&mut ParseCache>,
) -> Result<LoadedQueue, LoadError> {
    match source {
        QueueSource::Worktree => load_worktree(repo),
        QueueSource::Default => {
            let (rev, commit) = resolve_queue_ref(repo, &local_config(repo))?;
            load_commit(repo, rev, commit, cache)
        }
        QueueSource::Rev(rev) => {
            let commit = repo.resolve_commit(rev)?;
            load_commit(repo, rev.clone(), commit, cache)
        }
    }
}

fn load_commit(
    repo: &Repository,
    rev: String,
    commit: ObjectId,
    mut cache: Option<&mut ParseCache>,
) -> Result<LoadedQueue, LoadError> {
    let origin = Origin::Commit {
        rev,
        commit: commit.to_string(),
    };
    let Some(files) = repo.files_under(commit, TASKS_DIR)? else {
        return Err(LoadError::NoTasksDir { origin });
    };
    let mut diagnostics = Vec::new();
    let config = match read_committed(repo, commit, CONFIG_PATH)? {
        Some(bytes) => parse_config(&bytes, &mut diagnostics),
        None => Config::default(),
    };
    let mut parsed = Vec::with_capacity(files.len());
    for file in files.iter().filter(|file| is_task_path(&file.path)) {
        let cached = cache
            .as_deref_mut()
            .and_then(|cache| cache.get(&file.blob, &file.path));
        let outcome = if let Some(outcome) = cached {
            outcome
        } else {
            let size = repo.blob_size(file.blob)?;
            let outcome = if size > MAX_TASK_FILE_BYTES {
                crate::task::oversized_task(&file.path, size)
            } else {
                parse_task(&file.path, &repo.read_blob(file.blob)?)
            };
            if let Some(cache) = cache.as_deref_mut() {
                cache.insert(file.blob, &file.path, &outcome);
            }
            outcome
        };
        parsed.push(outcome);
    }
    let tasks = collect(parsed, &mut diagnostics);
    Ok(LoadedQueue {
        origin,
        commit: Some(commit),
        config,
        tasks,
        diagnostics,
    })
}

fn load_worktree(repo: &Repository) -> Result<LoadedQueue, LoadError> {
    let root = repo.workdir().ok_or(LoadError::NoWorktree)?;
    let origin = Origin::Worktree {
        path: root.display().to_string(),
    };
    let tasks_dir = root.join(TASKS_DIR);
    if !tasks_dir.is_dir() {
        return Err(LoadError::NoTasksDir { origin });
    }
    let mut diagnostics = Vec::new();
    let config = match std::fs::read(root.join(CONFIG_PATH)) {
        Ok(bytes) => parse_config(&bytes, &mut diagnostics),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Config::default(),
        Err(source) => {
            return Err(LoadError::Io {
                path: root.join(CONFIG_PATH),
                source,
            });
        }
    };
    let mut paths = Vec::new();
    walk(&tasks_dir, TASKS_DIR, &mut paths)?;
    paths.sort_unstable_by(|left: &(String, PathBuf), right| left.0.cmp(&right.0));
    let mut parsed = Vec::with_capacity(paths.len());
    for (path, full) in paths.iter().filter(|(path, _)| is_task_path(path)) {
        let size = std::fs::metadata(full)
            .map_err(|source| LoadError::Io {
                path: full.clone(),
                source,
            })?
            .len();
        if size > MAX_TASK_FILE_BYTES {
            parsed.push(crate::task::oversized_task(path, size));
            continue;
        }
        let bytes = std::fs::read(full).map_err(|source| LoadError::Io {
            path: full.clone(),
            source,
        })?;
        parsed.push(parse_task(path, &bytes));
    }
    let tasks = collect(parsed, &mut diagnostics);
    Ok(LoadedQueue {
        origin,
        commit: None,
        config,
        tasks,
        diagnostics,
    })
}

fn walk(dir: &Path, prefix: &str, paths: &mut Vec<(String, PathBuf)>) -> Result<(), LoadError> {
    let entries = std::fs::read_dir(dir).map_err(|source| LoadError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| LoadError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = format!("{prefix}/{name}");
        let file_type = entry.file_type().map_err(|source| LoadError::Io {
            path: entry.path(),
            source,
        })?;
        if file_type.is_dir() {
            walk(&entry.path(), &path, paths)?;
        } else if file_type.is_file() {
            paths.push((path, entry.path()));
        }
    }
    Ok(())
}

/// Returns whether a path under `.tasks/` is a task file (markdown, not hidden).
pub fn is_task_path(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    !name.starts_with('.')
        && Path::new(name)
            .extension()
            .is_some_and(|extension| extension.eq_ignore_ascii_case("md"))
}

fn parse_config(bytes: &[u8], diagnostics: &mut Vec<Diagnostic>) -> Config {
    let Ok(text) = std::str::from_utf8(bytes) else {
        diagnostics.push(Diagnostic::error(
            DiagnosticKind::Config,
            CONFIG_PATH,
            Position::START,
            "config is not valid UTF-8",
        ));
        return Config::default();
    };
    let (config, problem) = Config::parse(CONFIG_PATH, text);
    diagnostics.extend(problem);
    config
}

/// Keeps the usable tasks, dropping later duplicates of an id with a located error.
fn collect(parsed: Vec<ParsedTask>, diagnostics: &mut Vec<Diagnostic>) -> Vec<Task> {
    let mut first_path: HashMap<String, String> = HashMap::with_capacity(parsed.len());
    let mut tasks = Vec::with_capacity(parsed.len());
    for outcome in parsed {
        diagnostics.extend(outcome.diagnostics);
        let Some(task) = outcome.task else { continue };
        if let Some(first) = first_path.get(task.id.as_str()) {
            diagnostics.push(Diagnostic::error(
                DiagnosticKind::DuplicateId,
                &task.path,
                task.positions.get("id").copied().unwrap_or(Position::START),
                format!(
                    "duplicate task id `{}`: {first} already uses it; ids must be unique",
                    task.id
                ),
            ));
            continue;
        }
        first_path.insert(task.id.as_str().to_owned(), task.path.clone());
        tasks.push(task);
    }
    tasks
}
