//! The replies of the MCP tools over the lease operations: lighter than the CLI's `--json`
//! (an agent needs the lease's generation and expiry, not its ref), built from the same
//! core values. Field order is the JSON's key order, as docs/mcp.md documents it.

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::exit::ExitStatus;
use crate::task::{Priority, TaskId};
use crate::workspace::Check;

/// `get_next_task`: the task handed out, its lease, and the context bundle as one prompt.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct TaskHandout {
    pub task: TaskId,
    pub title: String,
    pub owns: Vec<String>,
    pub acceptance: Vec<String>,
    pub lease: HandoutLease,
    /// The context bundle as markdown, or the task alone when it could not be assembled.
    pub context: String,
    /// Why the context is the task alone, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_error: Option<String>,
}

/// The lease of a task handed out, as an agent needs it.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct HandoutLease {
    pub generation: u64,
    pub attempt: u32,
    #[schemars(with = "String")]
    pub expires_at: Timestamp,
    pub last_error: Option<String>,
}

/// `heartbeat`: the renewal, and what the run spent of its budget.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct RenewalReply {
    pub task: TaskId,
    pub generation: u64,
    #[schemars(with = "String")]
    pub expires_at: Timestamp,
    pub tokens: Option<u64>,
    pub budget_tokens: Option<u64>,
}

/// `complete_task`: the submission, the task file now `status: done`, and what to do next.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct CompletionReply {
    pub task: TaskId,
    /// Always `true` here.
    pub completed: bool,
    pub generation: u64,
    pub path: String,
    pub verified: bool,
    pub acceptance: Vec<Check>,
    /// The run's tokens after the usage given with the call, when usage was given.
    pub tokens: Option<u64>,
    pub next: String,
}

/// `release_task`: whether the release parked the task.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct GiveBackReply {
    pub task: TaskId,
    pub parked: bool,
    pub failures: u32,
    pub message: String,
}

/// `report_usage`: the run recorded on, and its tokens so far.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct UsageReportReply {
    pub task: TaskId,
    pub run: String,
    pub added: usize,
    pub tokens: u64,
    pub budget_tokens: Option<u64>,
}

/// `complete_task` refused as `plan_missing`: the task must be planned first and its file
/// has no `## Plan` section.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct PlanMissingReply {
    pub task: TaskId,
    /// Always `false` here.
    pub completed: bool,
    /// The task file to add the plan to.
    pub path: String,
}

/// `complete_task` refused as `acceptance_failed`: every acceptance command run, the one
/// that failed among them.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct AcceptanceFailedReply {
    pub task: TaskId,
    /// Always `false` here.
    pub completed: bool,
    pub acceptance: Vec<Check>,
}

/// The `structuredContent` of a refused tool call (`isError: true`): what the agent can act
/// on, then the data of the call (a reply above, or nothing).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ToolError {
    /// The refusal's name: `plan_missing`, `acceptance_failed`, or the exit status's name
    /// (`failed` for a plain failure).
    pub error: String,
    /// What the CLI would exit with.
    pub exit_code: u8,
    pub exit_status: ExitStatus,
    /// One plain sentence, also the result's text.
    pub message: String,
    #[serde(flatten)]
    pub data: serde_json::Map<String, serde_json::Value>,
}

impl ToolError {
    /// The refusal `error` (by default the name of `status`) with `message` over `data`.
    pub fn new(
        error: Option<&str>,
        status: ExitStatus,
        message: String,
        data: serde_json::Map<String, serde_json::Value>,
    ) -> ToolError {
        let error = error.map_or_else(
            || match status {
                // A plain failure has been `failed` since the first release.
                ExitStatus::Failure => "failed".to_owned(),
                status => status.name().to_owned(),
            },
            str::to_owned,
        );
        ToolError {
            error,
            exit_code: status.code(),
            exit_status: status,
            message,
            data,
        }
    }
}

/// `get_next_task` refused: this server holds a task already (the `failed` refusal's data).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct AlreadyHoldingReply {
    /// The task held: work on it, or complete or release it first.
    pub task: TaskId,
}

/// `queue`: the top of the ready queue, from the leases last fetched.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct QueueReply {
    /// Where the queue was read.
    pub source: String,
    pub ready: usize,
    pub not_ready: usize,
    pub tasks: Vec<QueuedTask>,
}

/// One ready task in `queue`, in claim order.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct QueuedTask {
    /// 1 for the task `get_next_task` would hand out first.
    pub rank: usize,
    pub id: TaskId,
    pub title: String,
    pub priority: Priority,
    #[serde(rename = "type")]
    pub task_type: Option<String>,
    pub value: u32,
}
