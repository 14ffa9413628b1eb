//! The replies of the lease operations: claim, heartbeat, release, done, status, gc,
//! unpark and revoke. Field order is the JSON's key order, as docs/cli.md documents it.

use std::collections::BTreeMap;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::context::{Bundle, ReportCommand, Tail};
use crate::lease::{Holder, Kept, Lease, LeaseState, Progress};
use crate::source::Origin;
use crate::task::{Task, TaskId};
use crate::workspace::{Check, ClaimedTask, NothingReady};

/// A lease as every reply shows it: the ref, its commit, and the record's fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LeaseReply {
    #[serde(rename = "ref")]
    pub reference: String,
    pub oid: String,
    pub state: ShownState,
    pub generation: u64,
    pub attempt: u32,
    pub failures: u32,
    pub holder: Holder,
    #[schemars(with = "String")]
    pub acquired_at: Timestamp,
    #[schemars(with = "String")]
    pub renewed_at: Timestamp,
    #[schemars(with = "String")]
    pub expires_at: Timestamp,
    pub reason: Option<String>,
    pub last_error: Option<String>,
    pub progress: Option<Progress>,
    /// The remote the lease lives on, or `local`.
    pub store: String,
}

impl LeaseReply {
    /// Shows `lease`, kept in `store` (a remote's name, or `local`).
    pub fn new(lease: &Lease, store: &str) -> LeaseReply {
        let record = &lease.record;
        LeaseReply {
            reference: lease.reference.clone(),
            oid: lease.oid.to_string(),
            state: record.state.into(),
            generation: record.generation,
            attempt: record.attempt,
            failures: record.failures,
            // A newer gitprio's fields of the record stay out of the reply, which says
            // what this gitprio knows, as its schema does.
            holder: Holder {
                extra: BTreeMap::new(),
                ..record.holder.clone()
            },
            acquired_at: record.acquired_at,
            renewed_at: record.renewed_at,
            expires_at: record.expires_at,
            reason: record.reason.clone(),
            last_error: record.last_error.clone(),
            progress: record.progress.clone().map(|progress| Progress {
                extra: BTreeMap::new(),
                ..progress
            }),
            store: store.to_owned(),
        }
    }
}

/// A lease's state as replies show it: the record's state, except that `status` shows a
/// held lease any agent may reclaim (past `expires_at` plus `clock_skew`) as `expired`,
/// as its table does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShownState {
    /// An agent works on the task until `expires_at`, unless it renews.
    Held,
    /// Held, but past `expires_at` plus `clock_skew`: any agent may reclaim it (`status` only).
    Expired,
    /// The task was given back; anyone may claim it.
    Released,
    /// The work was submitted (`gitprio done`); nobody reclaims it while its change lands.
    Submitted,
    /// Failed attempts reached the limit; a human has to look (`gitprio unpark`).
    Parked,
}

impl ShownState {
    /// The state's name, as JSON writes it: `held`, `expired`, `released`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            ShownState::Held => "held",
            ShownState::Expired => "expired",
            ShownState::Released => "released",
            ShownState::Submitted => "submitted",
            ShownState::Parked => "parked",
        }
    }
}

impl From<LeaseState> for ShownState {
    fn from(state: LeaseState) -> ShownState {
        match state {
            LeaseState::Held => ShownState::Held,
            LeaseState::Released => ShownState::Released,
            LeaseState::Submitted => ShownState::Submitted,
            LeaseState::Parked => ShownState::Parked,
        }
    }
}

/// `claim`, exit 0: the task, its lease and its context bundle.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ClaimReply {
    /// The task, with its body.
    pub task: Task,
    pub lease: LeaseReply,
    /// Compare-and-swaps pushed over all rounds, the winning one included.
    pub tries: u32,
    /// Where the queue was read.
    pub source: Origin,
    /// The context bundle, or `null` when it could not be assembled.
    pub context: Option<ClaimContext>,
}

/// The context bundle handed over with a claim, as the prompt and as data.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ClaimContext {
    #[serde(flatten)]
    pub bundle: Bundle,
    /// The prompt, exactly as the human output prints it.
    pub markdown: String,
    /// The commands to report with.
    pub report: Vec<ReportCommand>,
}

impl ClaimReply {
    /// The reply to `claimed`, whose lease lives in `store`, reporting with `commands`.
    pub fn new(claimed: &ClaimedTask, store: &str, commands: Vec<ReportCommand>) -> ClaimReply {
        let context = claimed.bundle.as_ref().ok().map(|bundle| ClaimContext {
            markdown: bundle.to_markdown(&Tail {
                source: claimed.origin.to_string(),
                lease: Some(&claimed.lease),
                commands: commands.clone(),
            }),
            bundle: bundle.clone(),
            report: commands,
        });
        ClaimReply {
            task: claimed.task.clone(),
            lease: LeaseReply::new(&claimed.lease, store),
            tries: claimed.tries,
            source: claimed.origin.clone(),
            context,
        }
    }
}

/// `claim` (and `get_next_task`) when nothing is ready: `task` is always `null`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct NothingReadyReply {
    /// Always `null`: no task was handed out.
    pub task: Option<TaskId>,
    /// `empty`, `all_blocked`, `all_held`, `all_held_back`, `no_match`, `overlap` or `skipped`.
    pub reason: String,
    pub message: String,
}

impl NothingReadyReply {
    /// The reply saying `why`, with `message` (the sentence, perhaps with advice added).
    pub fn new(why: &NothingReady, message: String) -> NothingReadyReply {
        NothingReadyReply {
            task: None,
            reason: why.reason.to_owned(),
            message,
        }
    }
}

/// `heartbeat`: the renewed lease and what its run has spent of its budget.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct HeartbeatReply {
    pub lease: LeaseReply,
    /// What the current run recorded so far, when known.
    pub tokens: Option<u64>,
    pub budget_tokens: Option<u64>,
}

/// `release`: the released lease, and whether the release parked the task.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ReleaseReply {
    pub lease: LeaseReply,
    pub parked: bool,
}

/// `unpark`: the lease after the unpark.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct UnparkReply {
    pub lease: LeaseReply,
}

/// `revoke`: the task, whose lease was taken, and the lease now.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct RevokeReply {
    pub task: TaskId,
    /// The agent that held it.
    pub revoked_from: String,
    pub lease: LeaseReply,
}

/// `status`: every lease in task id order, and the lease refs that could not be read.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct StatusReply {
    pub leases: Vec<StatusLease>,
    pub unreadable: Vec<UnreadableLease>,
}

/// One lease in `status`: the lease fields, with whose it is.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct StatusLease {
    pub task: TaskId,
    /// Past `expires_at`, allowing for `clock_skew`: any agent may reclaim it.
    pub expired: bool,
    /// When it expired (its `expires_at`), once `expired`; else `null`.
    #[schemars(with = "Option<String>")]
    pub expired_at: Option<Timestamp>,
    /// This worktree holds it now: the ref is exactly the commit this worktree wrote last.
    pub mine: bool,
    /// The agent that revoked it, when a revoke wrote the lease last; else `null`. The
    /// record's `holder` is then that agent, who does not hold the task.
    pub revoked_by: Option<String>,
    #[serde(flatten)]
    pub lease: LeaseReply,
}

/// A lease ref that is not a lease gitprio can read.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct UnreadableLease {
    #[serde(rename = "ref")]
    pub reference: String,
    pub problem: String,
    /// Well-formed record JSON this gitprio does not know (a new state or event): a newer
    /// gitprio may have written it, so the lease may be live.
    pub from_newer_gitprio: bool,
    /// What to do: upgrade gitprio when a newer one may have written the record (never
    /// delete a lease that may be live), else how to delete the ref if the lease is stale.
    pub advice: String,
}

/// `gc`: the leases deleted, and those of missing tasks kept.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct GcReply {
    pub deleted: Vec<TaskId>,
    pub kept: Vec<GcKept>,
}

/// A lease `gc` kept although its task is missing from the queue.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct GcKept {
    pub task: TaskId,
    pub reason: Kept,
    pub state: LeaseState,
}

/// `done`, exit 0: the submitted lease, the file set to done, the acceptance run.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct DoneReply {
    pub task: TaskId,
    /// Always `true` here.
    pub completed: bool,
    pub lease: LeaseReply,
    pub path: String,
    /// `false` with `--no-verify`.
    pub verified: bool,
    pub acceptance: Vec<Check>,
}

/// `done` refused, exit 1: an acceptance command failed (the commands run so far, the
/// failed one last).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct DoneFailedReply {
    pub task: TaskId,
    /// Always `false` here.
    pub completed: bool,
    pub acceptance: Vec<Check>,
}

/// `done` refused, exit 1: the task must be planned first and its file has no plan.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct DoneUnplannedReply {
    pub task: TaskId,
    /// Always `false` here.
    pub completed: bool,
    /// Always `missing`.
    pub plan: String,
    pub path: String,
}
