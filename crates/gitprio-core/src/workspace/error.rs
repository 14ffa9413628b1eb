//! Why a use case of the [`Workspace`](super::Workspace) failed: one typed error that wraps
//! the errors of the layers below and adds the workspace's own.

use std::path::PathBuf;

use crate::context::ContextError;
use crate::git::GitError;
use crate::lease::{LeaseError, RevokeError, StoreError};
use crate::source::LoadError;
use crate::task::TaskId;
use crate::usage::LedgerError;

/// Why a use case failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error(transparent)]
    Lease(#[from] LeaseError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Revoke(#[from] RevokeError),
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error(
        "{config} sets `remote: {remote}`, but this repository has no remote of that name (its remotes: {}); correct the name, or pass `--local` to keep the leases in this clone",
        remotes.join(", ")
    )]
    NoSuchRemote {
        config: &'static str,
        remote: String,
        remotes: Vec<String>,
    },
    #[error("invalid lease TTL `{text}`: write it like `90s`, `30m` or `2h`")]
    InvalidTtl { text: String },
    #[error("`{text}` is not a task id")]
    NotATaskId { text: String },
    /// Its way out is [`Hint::NameOrClaimFirst`](crate::hint::Hint), worded by each front end.
    #[error("this worktree holds no lease")]
    NothingHeldHere,
    #[error("this worktree holds {} leases ({}); name the task", tasks.len(), tasks.iter().map(TaskId::as_str).collect::<Vec<_>>().join(", "))]
    SeveralHeldHere { tasks: Vec<TaskId> },
    #[error("the held lease of `{id}` names no commit")]
    HeldWithoutCommit { id: TaskId },
    /// Its way out is [`Hint::ClaimFirst`](crate::hint::Hint), worded by each front end.
    #[error("`{id}` has no lease, so no run to record usage against")]
    NoRun { id: TaskId },
    #[error("no lease on `{id}`, so it is not parked")]
    NotParked { id: TaskId },
    #[error("the queue was not read from a commit")]
    NoQueueCommit,
    #[error("`{action}` {why}, so it needs a working tree")]
    NoWorktree {
        action: &'static str,
        why: &'static str,
    },
    #[error("no task file for `{id}` in {place}")]
    NoTaskFile { id: TaskId, place: &'static str },
    #[error("cannot set `status: done` in {}", path.display())]
    SetStatus {
        path: PathBuf,
        #[source]
        source: crate::task::StatusEditError,
    },
    #[error(
        "another claim by this agent in this worktree has been under way for 10 minutes ({} is locked); wait for it, or stop it",
        path.display()
    )]
    ClaimUnderWay { path: PathBuf },
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot {action}")]
    Run {
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the cost `{amount}` is not an amount of dollars like `0.42`: it must be finite and not negative"
    )]
    InvalidCost { amount: f64 },
    #[error("a cost needs the tokens it was spent on: report the tokens too")]
    CostWithoutTokens,
    #[error("no usage records given")]
    NoUsageRecords,
    #[error(
        "the reason for not running the acceptance commands is blank: say why they were not run"
    )]
    BlankReason,
    #[error("the review summary is blank: say what changed, or leave the summary out")]
    BlankSummary,
    /// Holds a [`WorkspaceError`], boxed as a trait object so that the cause chain reaches it.
    #[error(
        "the usage was not recorded, so the task is not completed yet; call again without `usage` to complete it"
    )]
    UsageBeforeCompletion(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot keep the usage in .git/gitprio/usage-outbox")]
    Outbox(#[source] std::io::Error),
}

impl WorkspaceError {
    /// Returns the error of a lower layer this one wraps unchanged, for front ends that map
    /// those to exit statuses (the wrapper is transparent, so it is not in the source chain).
    pub fn wrapped(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WorkspaceError::Lease(error) => Some(error),
            WorkspaceError::Store(error) => Some(error),
            WorkspaceError::Load(error) => Some(error),
            WorkspaceError::Git(error) => Some(error),
            WorkspaceError::Ledger(error) => Some(error),
            WorkspaceError::Revoke(error) => Some(error),
            WorkspaceError::Context(error) => Some(error),
            _ => None,
        }
    }

    /// Returns what `decide` makes of the first cause of `error`'s chain (outermost first)
    /// it decides, looking into what a [`WorkspaceError`] wraps (its transparent variants
    /// hide it from the chain).
    pub fn first_decided<T>(
        error: &(dyn std::error::Error + 'static),
        decide: &dyn Fn(&(dyn std::error::Error + 'static)) -> Option<T>,
    ) -> Option<T> {
        let mut cause = Some(error);
        while let Some(current) = cause {
            if let Some(decided) = decide(current) {
                return Some(decided);
            }
            if let Some(decided) = current
                .downcast_ref::<WorkspaceError>()
                .and_then(WorkspaceError::wrapped)
                .and_then(|inner| Self::first_decided(inner, decide))
            {
                return Some(decided);
            }
            cause = current.source();
        }
        None
    }

    /// Returns the lease error this is, if it is one.
    pub fn lease(&self) -> Option<&LeaseError> {
        match self {
            WorkspaceError::Lease(error) => Some(error),
            _ => None,
        }
    }
}
