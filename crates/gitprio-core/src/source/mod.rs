//! Where the queue is read from (a commit, or the working tree) and loading every task file from it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use gix::ObjectId;
use rustc_hash::{FxBuildHasher, FxHashMap};
use schemars::JsonSchema;

use crate::config::Config;
use crate::diagnostic::{Diagnostic, DiagnosticKind, Position};
use crate::git::{GitError, Repository};
use crate::queue::Rankable;
use crate::task::{MAX_TASK_FILE_BYTES, ParsedTask, Priority, Status, Task, TaskId, parse_task};
use crate::{CONFIG_PATH, TASKS_DIR};

mod cache;

use cache::{RecordId, Snapshot, TaskHead};

pub use cache::ParseCache;

/// Which version of the task files to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueSource {
    /// The queue's branch ([`resolve_queue_ref`]); `branch` is the one the front end was
    /// told (`GITPRIO_BRANCH`), named over the config's `branch:` ([`named_branch`]).
    Default { branch: Option<String> },
    /// A given revision.
    Rev(String),
    /// The files in the working tree, committed or not.
    Worktree,
}

/// The version of the task files that was read, for messages and `--json`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, JsonSchema, serde::Deserialize)]
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
    #[error("{}", config_message(problems))]
    Config { problems: Vec<Diagnostic> },
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Says what is wrong with the config: every problem, one per line, located.
fn config_message(problems: &[Diagnostic]) -> String {
    let mut message = format!(
        "invalid config, so gitprio does not run on defaults: fix {} (`gitprio check` lists every problem of the queue)",
        if problems.len() == 1 {
            "this problem".to_owned()
        } else {
            format!("these {} problems", problems.len())
        }
    );
    for problem in problems {
        let _ = write!(
            message,
            "\n  {}:{}:{}: {}",
            problem.path, problem.line, problem.column, problem.message
        );
    }
    message
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

impl LoadedQueue {
    /// Returns the paths of the task files left out because they could not be read as tasks.
    ///
    /// Their ids are unknown, so any task missing from [`LoadedQueue::tasks`] may be one of
    /// them. A duplicate is not counted: its id is in the queue.
    pub fn skipped_files(&self) -> Vec<&str> {
        let mut paths: Vec<&str> = self
            .diagnostics
            .iter()
            .filter(|diagnostic| {
                crate::task::is_fatal(diagnostic)
                    && !matches!(
                        diagnostic.kind,
                        DiagnosticKind::Config | DiagnosticKind::DuplicateId
                    )
            })
            .map(|diagnostic| diagnostic.path.as_str())
            .collect();
        paths.sort_unstable();
        paths.dedup();
        paths
    }
}

/// Returns the branch named as the queue's: `told` (`GITPRIO_BRANCH`, which `gitprio run`
/// sets for the commands it runs in a task's worktree) over the config's `branch:`; `None`
/// when neither names one. The one rule the lease store and every reading command follow.
pub fn named_branch<'a>(config: &'a Config, told: Option<&'a str>) -> Option<&'a str> {
    told.map(str::trim)
        .filter(|branch| !branch.is_empty())
        .or(config.branch.as_deref())
}

/// Returns the queue's branch on `remote`: the one named ([`named_branch`]), else the
/// remote's default branch ([`remote_default_branch`]).
pub fn queue_branch(
    repo: &Repository,
    config: &Config,
    told: Option<&str>,
    remote: &str,
) -> String {
    named_branch(config, told).map_or_else(|| remote_default_branch(repo, remote), str::to_owned)
}

/// Returns the ref the queue is read from by default, and its commit: the queue's branch
/// as the leases name it (`claim`, `gc` read it there), so that every command names it alike.
///
/// In order: the named branch ([`named_branch`]: `told`, else `config.branch`) on the
/// remote (`refs/remotes/<remote>/<branch>`), the same local branch; without one, the
/// remote's default branch as last fetched ([`remote_default_branch`], as
/// `refs/remotes/<remote>/<branch>`); then `HEAD`.
pub fn resolve_queue_ref(
    repo: &Repository,
    config: &Config,
    told: Option<&str>,
) -> Result<(String, ObjectId), LoadError> {
    let remote = config.remote.as_deref().unwrap_or("origin");
    let mut candidates = Vec::new();
    if let Some(branch) = named_branch(config, told) {
        candidates.push(format!("refs/remotes/{remote}/{branch}"));
        candidates.push(format!("refs/heads/{branch}"));
    } else if repo.has_remote(remote) {
        let branch = remote_default_branch(repo, remote);
        candidates.push(format!("refs/remotes/{remote}/{branch}"));
    }
    candidates.push(format!("refs/remotes/{remote}/HEAD"));
    for name in candidates {
        if let Some(commit) = repo.reference_commit(&name)? {
            return Ok((name, commit));
        }
    }
    match (repo.head_commit()?, repo.workdir()) {
        (Some(commit), _) => Ok(("HEAD".to_owned(), commit)),
        // A new repository with no queue at all wants `gitprio init`, not a commit.
        (None, Some(root)) if !root.join(TASKS_DIR).is_dir() => Err(LoadError::NoTasksDir {
            origin: Origin::Worktree {
                path: root.display().to_string(),
            },
        }),
        (None, _) => Err(LoadError::NoCommits),
    }
}

/// The remote's default branch as this clone knows it: `<remote>/HEAD`, else `main` or
/// `master` when the remote has one, else the current branch, unless it is a task's own
/// `gitprio/<id>` (the queue is never there), else `main`.
pub fn remote_default_branch(repo: &Repository, remote: &str) -> String {
    let tracking = format!("refs/remotes/{remote}/");
    repo.symbolic_target(&format!("{tracking}HEAD"))
        .and_then(|target| target.strip_prefix(&tracking).map(str::to_owned))
        .or_else(|| {
            ["main", "master"]
                .into_iter()
                .find(|branch| {
                    repo.reference_commit(&format!("{tracking}{branch}"))
                        .is_ok_and(|commit| commit.is_some())
                })
                .map(str::to_owned)
        })
        .or_else(|| {
            repo.current_branch()
                .filter(|branch| !branch.starts_with("gitprio/"))
        })
        .unwrap_or_else(|| "main".to_owned())
}

/// Reads the checked-out config (the working tree's, else `HEAD`'s) to learn the remote and branch.
///
/// A config with problems is an error: running on the defaults instead would, say, use the
/// default lease TTL where the file meant another.
pub fn local_config(repo: &Repository) -> Result<Config, LoadError> {
    if let Some(bytes) = repo
        .workdir()
        .and_then(|root| std::fs::read(root.join(CONFIG_PATH)).ok())
    {
        return parse_config(&bytes, true, &mut Vec::new());
    }
    let from_head = repo
        .head_commit()
        .ok()
        .flatten()
        .and_then(|commit| read_committed(repo, commit, CONFIG_PATH).ok().flatten());
    match from_head {
        Some(bytes) => parse_config(&bytes, true, &mut Vec::new()),
        None => Ok(Config::default()),
    }
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
    mut cache: Option<&mut ParseCache>,
) -> Result<LoadedQueue, LoadError> {
    let resolved = resolve(repo, source, cache.as_deref_mut())?;
    let mut empty = ParseCache::default();
    resolved.into_loaded(repo, cache.unwrap_or(&mut empty))
}

/// Finds the task files of `source`, parsing through `cache` the ones it lacks, without decoding the cached ones.
///
/// Then [`Resolved::into_loaded`] decodes every task, or [`Resolved::index`] only what ranking needs.
pub fn resolve(
    repo: &Repository,
    source: &QueueSource,
    cache: Option<&mut ParseCache>,
) -> Result<Resolved, LoadError> {
    match source {
        QueueSource::Worktree => resolve_worktree(repo, true),
        QueueSource::Default { branch } => {
            let (rev, commit) = resolve_queue_ref(repo, &local_config(repo)?, branch.as_deref())?;
            resolve_commit(repo, rev, commit, cache)
        }
        QueueSource::Rev(rev) => {
            let commit = repo.resolve_commit(rev)?;
            resolve_commit(repo, rev.clone(), commit, cache)
        }
    }
}

/// Loads the task files of the working tree as `gitprio check` needs them: a config with
/// problems does not stop the load; its problems are among the diagnostics and the tasks
/// are checked against the valid part of it.
pub fn load_for_check(repo: &Repository) -> Result<LoadedQueue, LoadError> {
    resolve_worktree(repo, false)?.into_loaded(repo, &mut ParseCache::default())
}

/// A task file of the version read: its parse, as cached or just made.
#[derive(Debug)]
enum Entry {
    Cached(RecordId),
    /// Boxed: most entries are cached, and a queue holds many.
    Parsed(Box<ParsedTask>),
}

/// One version of the queue: where it came from, its config and its task files in path order.
#[derive(Debug)]
pub struct Resolved {
    pub origin: Origin,
    /// The commit read, when the queue came from git.
    pub commit: Option<ObjectId>,
    pub config: Config,
    /// Problems met so far: the config's.
    pub diagnostics: Vec<Diagnostic>,
    entries: Vec<Entry>,
}

impl Resolved {
    /// Decodes every task, re-parsing any whose cached record cannot be decoded.
    pub fn into_loaded(
        self,
        repo: &Repository,
        cache: &mut ParseCache,
    ) -> Result<LoadedQueue, LoadError> {
        let mut parsed = Vec::with_capacity(self.entries.len());
        for entry in self.entries {
            let outcome = match entry {
                Entry::Parsed(outcome) => *outcome,
                Entry::Cached(record) => {
                    if let Some(outcome) = cache.parsed(record) {
                        outcome
                    } else {
                        let Some((blob, path)) = cache.key(record) else {
                            continue;
                        };
                        let path = path.to_owned();
                        cache.discard(record);
                        let outcome = parse_blob(repo, blob, &path)?;
                        cache.insert(blob, &path, &outcome);
                        outcome
                    }
                }
            };
            parsed.push((outcome.diagnostics, outcome.task));
        }
        let mut diagnostics = self.diagnostics;
        let tasks = collect(parsed, &mut diagnostics, |task: &Task| {
            (task.path.clone(), task.position_of("id"))
        });
        Ok(LoadedQueue {
            origin: self.origin,
            commit: self.commit,
            config: self.config,
            tasks,
            diagnostics,
        })
    }

    /// Reads what ranking needs of every usable task, borrowing it from `cache`.
    ///
    /// `None` when a cached record cannot be decoded: [`Resolved::into_loaded`] then repairs it.
    pub fn index<'a>(&'a self, cache: &'a ParseCache) -> Option<QueueIndex<'a>> {
        let mut outcomes = Vec::with_capacity(self.entries.len());
        for (entry_index, entry) in self.entries.iter().enumerate() {
            let (diagnostics, head) = match entry {
                Entry::Cached(record) => {
                    let head = cache.head(*record)?;
                    (head.diagnostics, head.task)
                }
                Entry::Parsed(outcome) => (
                    outcome.diagnostics.clone(),
                    outcome.task.as_ref().map(TaskHead::of),
                ),
            };
            let task = head.map(|head| IndexedTask {
                head,
                entry: entry_index,
                errors: diagnostics
                    .iter()
                    .filter(|diagnostic| diagnostic.is_error())
                    .cloned()
                    .collect(),
            });
            outcomes.push((diagnostics, task));
        }
        let mut diagnostics = self.diagnostics.clone();
        let tasks = collect(outcomes, &mut diagnostics, |task: &IndexedTask<'_>| {
            let task = full_task(&self.entries[task.entry], cache);
            task.map_or_else(
                || (String::new(), Position::START),
                |task| {
                    let position = task.position_of("id");
                    (task.path, position)
                },
            )
        });
        Some(QueueIndex {
            resolved: self,
            cache,
            tasks,
            diagnostics,
        })
    }
}

/// Decodes the task of `entry`; its body is empty when it comes from the cache.
fn full_task(entry: &Entry, cache: &ParseCache) -> Option<Task> {
    match entry {
        Entry::Cached(record) => cache.parsed(*record)?.task,
        Entry::Parsed(outcome) => outcome.task.clone(),
    }
}

/// The ranking fields of every usable task of one version of the queue, borrowed from the parse cache.
///
/// Ranking reads these; only the task shown is decoded in full, with [`QueueIndex::task`].
#[derive(Debug)]
pub struct QueueIndex<'a> {
    resolved: &'a Resolved,
    cache: &'a ParseCache,
    tasks: Vec<IndexedTask<'a>>,
    /// Problems met: files skipped, duplicate ids, unknown keys.
    pub diagnostics: Vec<Diagnostic>,
}

impl QueueIndex<'_> {
    /// Returns the usable tasks with unique ids, in path order.
    pub fn tasks(&self) -> &[IndexedTask<'_>] {
        &self.tasks
    }

    /// Returns the whole task at `index` of [`QueueIndex::tasks`]; its body may be empty.
    pub fn task(&self, index: usize) -> Option<Task> {
        let entry = &self.resolved.entries[self.tasks.get(index)?.entry];
        full_task(entry, self.cache)
    }
}

/// What ranking reads of one task, borrowed from the parse cache: see [`QueueIndex`].
#[derive(Clone, Debug)]
pub struct IndexedTask<'a> {
    head: TaskHead<'a>,
    /// Which entry of the [`Resolved`] queue the task comes from.
    entry: usize,
    /// The errors of its file that hold it back (see [`Task::errors`]); nearly always none.
    errors: Vec<Diagnostic>,
}

impl<'a> TaskHead<'a> {
    fn of(task: &'a Task) -> TaskHead<'a> {
        TaskHead {
            id: task.id.as_str(),
            priority: task.priority,
            status: task.status,
            value: task.value,
            created: task.created.as_deref(),
            depends_on: task.depends_on.iter().map(TaskId::as_str).collect(),
        }
    }
}

impl Rankable for IndexedTask<'_> {
    fn id(&self) -> &str {
        self.head.id
    }

    fn status(&self) -> Status {
        self.head.status
    }

    fn priority(&self) -> Priority {
        self.head.priority
    }

    fn value(&self) -> u32 {
        self.head.value
    }

    fn created(&self) -> Option<&str> {
        self.head.created
    }

    fn depends_on(&self) -> impl Iterator<Item = &str> {
        self.head.depends_on.iter().copied()
    }

    fn errors(&self) -> &[Diagnostic] {
        &self.errors
    }
}

fn resolve_commit(
    repo: &Repository,
    rev: String,
    commit: ObjectId,
    mut cache: Option<&mut ParseCache>,
) -> Result<Resolved, LoadError> {
    let origin = Origin::Commit {
        rev,
        commit: commit.to_string(),
    };
    let Some((tree, true)) = repo.entry_at(commit, TASKS_DIR)? else {
        return Err(LoadError::NoTasksDir { origin });
    };
    let snapshot = cache
        .as_deref_mut()
        .and_then(|cache| cache.snapshot_of(tree));
    let (entries, config_blob) = if let Some((records, config_blob)) = snapshot {
        (
            records.into_iter().map(Entry::Cached).collect(),
            config_blob,
        )
    } else {
        let files = repo.files_in_tree(tree, TASKS_DIR)?;
        let config_blob = files
            .iter()
            .find(|file| file.path == CONFIG_PATH)
            .map(|file| file.blob);
        if let Some(cache) = cache.as_deref_mut() {
            cache.read_tree(Snapshot {
                tree,
                config: config_blob,
            });
        }
        let mut entries = Vec::with_capacity(files.len());
        for file in files.iter().filter(|file| is_task_path(&file.path)) {
            if let Some(record) = cache
                .as_deref_mut()
                .and_then(|cache| cache.find(&file.blob, &file.path))
            {
                entries.push(Entry::Cached(record));
                continue;
            }
            let outcome = parse_blob(repo, file.blob, &file.path)?;
            match cache
                .as_deref_mut()
                .and_then(|cache| cache.insert(file.blob, &file.path, &outcome))
            {
                Some(record) => entries.push(Entry::Cached(record)),
                None => entries.push(Entry::Parsed(Box::new(outcome))),
            }
        }
        (entries, config_blob)
    };
    let mut diagnostics = Vec::new();
    let config = match config_blob {
        Some(blob) => parse_config(&repo.read_blob(blob)?, true, &mut diagnostics)?,
        None => Config::default(),
    };
    Ok(Resolved {
        origin,
        commit: Some(commit),
        config,
        diagnostics,
        entries,
    })
}

/// Parses the task file at `path` whose content is blob `blob`, refusing oversized ones unread.
fn parse_blob(repo: &Repository, blob: ObjectId, path: &str) -> Result<ParsedTask, LoadError> {
    let size = repo.blob_size(blob)?;
    Ok(if size > MAX_TASK_FILE_BYTES {
        crate::task::oversized_task(path, size)
    } else {
        parse_task(path, &repo.read_blob(blob)?)
    })
}

/// Reads the working tree's task files; a config with problems is an error when `strict_config`.
fn resolve_worktree(repo: &Repository, strict_config: bool) -> Result<Resolved, LoadError> {
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
        Ok(bytes) => parse_config(&bytes, strict_config, &mut diagnostics)?,
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
    let mut entries = Vec::with_capacity(paths.len());
    for (path, full) in paths.iter().filter(|(path, _)| is_task_path(path)) {
        let size = std::fs::metadata(full)
            .map_err(|source| LoadError::Io {
                path: full.clone(),
                source,
            })?
            .len();
        if size > MAX_TASK_FILE_BYTES {
            entries.push(Entry::Parsed(Box::new(crate::task::oversized_task(
                path, size,
            ))));
            continue;
        }
        let bytes = std::fs::read(full).map_err(|source| LoadError::Io {
            path: full.clone(),
            source,
        })?;
        entries.push(Entry::Parsed(Box::new(parse_task(path, &bytes))));
    }
    Ok(Resolved {
        origin,
        commit: None,
        config,
        diagnostics,
        entries,
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

/// Parses the config file's `bytes`. Its problems are an error when `strict`, else they
/// go to `diagnostics` with the valid part of the config returned.
fn parse_config(
    bytes: &[u8],
    strict: bool,
    diagnostics: &mut Vec<Diagnostic>,
) -> Result<Config, LoadError> {
    let (config, problems) = match std::str::from_utf8(bytes) {
        Ok(text) => Config::parse(CONFIG_PATH, text),
        Err(_) => (
            Config::default(),
            vec![Diagnostic::error(
                DiagnosticKind::Config,
                CONFIG_PATH,
                Position::START,
                "config is not valid UTF-8",
            )],
        ),
    };
    if strict && !problems.is_empty() {
        return Err(LoadError::Config { problems });
    }
    diagnostics.extend(problems);
    Ok(config)
}

/// Keeps the usable tasks, dropping later duplicates of an id with a located error.
///
/// Each outcome is a file's diagnostics and its task; `locate` gives a task's path and
/// where its id is written, which only a duplicate needs.
fn collect<T: Rankable>(
    outcomes: Vec<(Vec<Diagnostic>, Option<T>)>,
    diagnostics: &mut Vec<Diagnostic>,
    locate: impl Fn(&T) -> (String, Position),
) -> Vec<T> {
    let duplicates: Vec<Option<Diagnostic>> = {
        let mut first_of: FxHashMap<&str, usize> =
            FxHashMap::with_capacity_and_hasher(outcomes.len(), FxBuildHasher);
        outcomes
            .iter()
            .enumerate()
            .map(|(index, (_, task))| {
                let task = task.as_ref()?;
                let first = *first_of.entry(task.id()).or_insert(index);
                if first == index {
                    return None;
                }
                let (path, position) = locate(task);
                let first_path = outcomes[first].1.as_ref().map(|first| locate(first).0);
                Some(Diagnostic::error(
                    DiagnosticKind::DuplicateId,
                    &path,
                    position,
                    format!(
                        "duplicate task id `{}`: {} already uses it; ids must be unique",
                        task.id(),
                        first_path.unwrap_or_default()
                    ),
                ))
            })
            .collect()
    };
    let mut tasks = Vec::with_capacity(outcomes.len());
    for ((found, task), duplicate) in outcomes.into_iter().zip(duplicates) {
        diagnostics.extend(found);
        match duplicate {
            Some(duplicate) => diagnostics.push(duplicate),
            None => tasks.extend(task),
        }
    }
    tasks
}
