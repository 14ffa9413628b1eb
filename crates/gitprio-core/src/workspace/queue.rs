//! Reading the queue for a use case: the task files through the parse cache, the lease
//! blockers as last seen, and why nothing is ready.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::git::{ObjectId, Repository};
use crate::hint::{FrontEnd, Hint};
use crate::lease::{self, BadLease, Lease, Mode, StoreError};
use crate::queue::{Blocker, Holds, Queue};
use crate::reply;
use crate::source::{self, LoadError, LoadedQueue, ParseCache, QueueSource};
use crate::task::{Status, TaskId};

use super::{Notices, Workspace, WorkspaceError};

/// Returns where the parse cache of `repo` lives: shared by all its worktrees.
pub fn parse_cache_path(repo: &Repository) -> PathBuf {
    repo.common_dir()
        .join("gitprio")
        .join("cache")
        .join("parsed.bin")
}

/// Loads every task of `source` through the parse cache; the problems met go to `notices`.
pub fn load_tasks(
    repo: &Repository,
    source: &QueueSource,
    notices: &dyn Notices,
) -> Result<LoadedQueue, LoadError> {
    let cache_path = parse_cache_path(repo);
    let mut cache = ParseCache::load(&cache_path);
    let loaded = source::load(repo, source, Some(&mut cache))?;
    save_parse_cache(&cache, &cache_path, notices);
    notices.diagnostics(&loaded.diagnostics);
    Ok(loaded)
}

/// Saves the parse cache at `path`, with a warning when it cannot be written.
pub fn save_parse_cache(cache: &ParseCache, path: &Path, notices: &dyn Notices) {
    if let Err(error) = cache.save(path) {
        notices.warning(&format!(
            "cannot write the parse cache {}: {error}",
            path.display()
        ));
    }
}

/// How old the lease mirrors may be before a reading command says it answers from old leases.
const MIRRORS_OLD_AFTER: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// What the lease mirrors a reading command answers from are.
#[derive(Debug)]
pub enum Mirrors {
    /// The leases live in this clone: there is nothing to fetch.
    Local,
    /// Fetched now (this clone never had them), or within [`MIRRORS_OLD_AFTER`].
    Recent,
    /// This clone never fetched the remote's leases and cannot now.
    Unreachable { remote: String, error: StoreError },
    /// Last fetched `age` ago, longer than [`MIRRORS_OLD_AFTER`].
    Old {
        remote: String,
        age: std::time::Duration,
    },
}

impl Workspace<'_> {
    /// Makes sure a reading command (`next`, `list`) answers from the remote's leases: a
    /// clone that never fetched them (`git clone` does not) fetches them once now; older
    /// mirrors are used as they are, and the result says how old they are.
    pub fn mirrors_fetched(&self) -> Mirrors {
        let Mode::Remote { remote, .. } = self.store.mode() else {
            return Mirrors::Local;
        };
        match self.store.last_refreshed() {
            None => match self.store.refresh() {
                Ok(()) => Mirrors::Recent,
                Err(error) => Mirrors::Unreachable {
                    remote: remote.clone(),
                    error,
                },
            },
            Some(at) => {
                let age = std::time::SystemTime::now()
                    .duration_since(at)
                    .unwrap_or_default();
                if age > MIRRORS_OLD_AFTER {
                    Mirrors::Old {
                        remote: remote.clone(),
                        age,
                    }
                } else {
                    Mirrors::Recent
                }
            }
        }
    }

    /// The lease blockers on tasks as last seen, for every reading command.
    pub fn holds(&self) -> Result<Holds, WorkspaceError> {
        let (leases, bad) = self.store.leases()?;
        Ok(holds_of(
            &leases,
            &bad,
            self.invocation.now,
            self.skew(),
            self.notices,
        ))
    }
}

/// The lease blockers on tasks of `leases`; an unreadable lease holds its task back, with a
/// warning saying what to do about it (see [`BadLease::advice`]).
pub(super) fn holds_of(
    leases: &BTreeMap<TaskId, Lease>,
    bad: &[BadLease],
    now: jiff::Timestamp,
    skew: jiff::SignedDuration,
    notices: &dyn Notices,
) -> Holds {
    warn_unreadable(bad, notices);
    lease_holds(leases, bad, now, skew)
}

/// Names each lease of `bad` in a warning, with what to do about it.
pub(super) fn warn_unreadable(bad: &[BadLease], notices: &dyn Notices) {
    for lease in bad {
        notices.warning(&lease.warning());
    }
}

/// The lease blockers on tasks of `leases`, and of `bad` (unreadable leases: their tasks
/// are held back, as parked, for the lease may be live); warns of nothing.
pub fn lease_holds(
    leases: &BTreeMap<TaskId, Lease>,
    bad: &[BadLease],
    now: jiff::Timestamp,
    skew: jiff::SignedDuration,
) -> Holds {
    let mut holds = lease::holds(leases, now, skew);
    for lease in bad {
        if let Some(id) = lease.reference.rsplit('/').next().and_then(TaskId::new) {
            holds.entry(id).or_default().push(Blocker::Parked {
                attempts: 0,
                last_error: Some(format!("unreadable lease: {}", lease.problem)),
            });
        }
    }
    holds
}

/// Reads the markdown body of the task file at `path` in `commit` (the cache keeps no bodies).
pub fn read_body(
    repo: &Repository,
    commit: Option<ObjectId>,
    path: &str,
) -> Result<String, crate::git::GitError> {
    let Some(commit) = commit else {
        return Ok(String::new());
    };
    let bytes = match repo.entry_at(commit, path)? {
        Some((blob, false)) => repo.read_blob(blob)?,
        _ => return Ok(String::new()),
    };
    let text = String::from_utf8_lossy(&bytes);
    Ok(crate::task::split_frontmatter(&text)
        .map(|parts| parts.body.to_owned())
        .unwrap_or_default())
}

/// Why nothing is ready, as a stable reason code and a sentence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NothingReady {
    /// `empty`, `all_blocked`, `all_held`, `all_held_back`, `no_match`, `overlap` or `skipped`.
    pub reason: &'static str,
    /// The facts, without a way out: see [`NothingReady::sentence`].
    pub message: String,
}

impl NothingReady {
    /// Where to look next, by the reason: who holds the tasks, or why they are blocked.
    pub fn hint(&self) -> Option<Hint> {
        match self.reason {
            "all_held" => Some(Hint::SeeHolders),
            "all_blocked" | "all_held_back" => Some(Hint::SeeQueue),
            _ => None,
        }
    }

    /// The message with its way out, worded for `front`.
    pub fn sentence(&self, front: FrontEnd) -> String {
        Hint::follow(&self.message, self.hint().as_ref(), front)
    }
}

/// Describes why nothing is ready when `open` of `total` tasks are open.
pub fn nothing_ready(open: usize, total: usize) -> NothingReady {
    let kind = reply::NothingReady::with_open(open);
    let message = match (kind, open) {
        (reply::NothingReady::Empty, _) => format!(
            "nothing ready: the queue has no open task ({total} {} in all)",
            if total == 1 { "task" } else { "tasks" }
        ),
        (reply::NothingReady::AllBlocked, 1) => {
            "nothing ready: the one open task is blocked".to_owned()
        }
        (reply::NothingReady::AllBlocked, _) => {
            format!("nothing ready: all {open} open tasks are blocked")
        }
    };
    NothingReady {
        reason: kind.name(),
        message,
    }
}

/// Counts the tasks of `queue` whose status is `open`, ready or not.
pub(super) fn open_count(queue: &Queue) -> usize {
    queue
        .entries()
        .iter()
        .filter(|entry| entry.task.status == Status::Open)
        .count()
}

/// Describes why nothing of `queue` is ready, by its open and total counts.
pub(super) fn nothing_ready_in(queue: &Queue) -> NothingReady {
    nothing_ready(open_count(queue), queue.entries().len())
}
