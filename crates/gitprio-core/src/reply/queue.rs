//! The replies of the queue commands: `next`, `list`, `show` and `explain`.

use schemars::JsonSchema;
use serde::Serialize;

use crate::queue::{Blocker, QueueEntry, RankReason};
use crate::source::Origin;
use crate::task::{Task, TaskId};

/// Why `next` found nothing ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NothingReady {
    /// No task is `open`.
    Empty,
    /// Open tasks exist, and none is ready.
    AllBlocked,
}

impl NothingReady {
    /// Returns why nothing is ready in a queue with `open` tasks whose status is `open`.
    pub fn with_open(open: usize) -> NothingReady {
        if open == 0 {
            NothingReady::Empty
        } else {
            NothingReady::AllBlocked
        }
    }

    /// Returns the reason's name as the JSON replies spell it.
    pub const fn name(self) -> &'static str {
        match self {
            NothingReady::Empty => "empty",
            NothingReady::AllBlocked => "all_blocked",
        }
    }
}

/// `gitprio next --json`: the top ready task, or why there is none.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct NextReply {
    pub source: Origin,
    /// The top ready task, without its body; `null` when nothing is ready.
    pub task: Option<Task>,
    /// Why nothing is ready; only when `task` is null.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<NothingReady>,
}

impl NextReply {
    /// Returns the reply naming `task`, its body left out.
    pub fn ready(source: Origin, mut task: Task) -> NextReply {
        task.body = String::new();
        NextReply {
            source,
            task: Some(task),
            reason: None,
        }
    }

    /// Returns the reply saying that nothing is ready, and why.
    pub fn nothing(source: Origin, reason: NothingReady) -> NextReply {
        NextReply {
            source,
            task: None,
            reason: Some(reason),
        }
    }
}

/// `gitprio list --json`: the ranked queue.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct ListReply {
    pub source: Origin,
    /// Ready tasks in the whole queue, also with `--ready`.
    pub ready_count: usize,
    /// In queue order: ready tasks by rank, then the others.
    pub tasks: Vec<ListEntry>,
}

/// One task of `list --json`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct ListEntry {
    /// 1-based position among ready tasks; `null` when not ready.
    pub rank: Option<usize>,
    pub ready: bool,
    pub blockers: Vec<Blocker>,
    /// The task, without its body.
    pub task: Task,
}

impl ListReply {
    /// Returns the reply listing `shown`, entries of a queue with `ready_count` ready tasks.
    pub fn new(source: Origin, ready_count: usize, shown: &[QueueEntry]) -> ListReply {
        let tasks = shown
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                let mut task = entry.task.clone();
                task.body = String::new();
                ListEntry {
                    rank: entry.readiness.is_ready().then_some(index + 1),
                    ready: entry.readiness.is_ready(),
                    blockers: entry.readiness.blockers().to_vec(),
                    task,
                }
            })
            .collect();
        ListReply {
            source,
            ready_count,
            tasks,
        }
    }
}

/// `gitprio show <id> --json`: one task in full, with whether it is ready.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct ShowReply {
    pub ready: bool,
    pub blockers: Vec<Blocker>,
    /// The task with its body, when it has one.
    pub task: Task,
}

/// `gitprio explain <id> --json`: where a task stands in the queue, and why.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct ExplainReply {
    /// The id asked about.
    pub id: TaskId,
    pub ready: bool,
    /// 1-based rank among ready tasks; `null` when not ready.
    pub position: Option<usize>,
    /// The ready task just ahead; `null` for the top task and when not ready.
    pub ahead: Option<TaskId>,
    /// The first rank key on which `ahead` wins; `null` when `ahead` is.
    pub reason: Option<RankReason>,
    /// Why the task is not ready; empty when it is.
    pub blockers: Vec<Blocker>,
}
