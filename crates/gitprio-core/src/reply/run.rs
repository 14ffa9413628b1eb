//! The reply of `gitprio run --json`: the summary printed when the run stops.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::exit::ExitStatus;
use crate::task::TaskId;
use crate::usage::money;

/// `run --json`: why the run stopped, what its attempts came to, and each attempt.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct RunReply {
    pub stopped: Stopped,
    /// `stopped` in words.
    pub reason: String,
    /// The status the run exits with.
    pub exit_status: ExitStatus,
    pub attempts: usize,
    pub completed: usize,
    pub failed: usize,
    pub parked: usize,
    pub released: usize,
    pub lost: usize,
    pub tokens: u64,
    /// Dollars at list price, rounded to a millionth; `None` (and the next three too) when
    /// the usage ledger could not be read.
    #[serde(serialize_with = "money::serialize_option")]
    pub cost_usd: Option<f64>,
    pub unpriced_tokens: Option<u64>,
    pub value_points: Option<u64>,
    pub value_per_million_tokens: Option<f64>,
    /// How far past its own limit a run stopped by `--max-tokens` or `--max-usd` went.
    pub overshoot: Option<Overshoot>,
    pub runs: Vec<Attempt>,
}

/// Why a run stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stopped {
    /// `claim` found nothing ready with nothing running.
    NothingReady,
    MaxTasks,
    MaxTokens,
    MaxUsd,
    Interrupted,
    Error,
}

/// How far past its own limit a run went: `{"tokens": N}` or `{"usd": X}`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Overshoot {
    Tokens(u64),
    /// Dollars at list price, rounded to a millionth.
    Usd(#[serde(serialize_with = "money::serialize")] f64),
}

/// One attempt of a run, for the summary.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Attempt {
    pub task: TaskId,
    pub run: String,
    pub model: Option<String>,
    pub ending: Ending,
    pub tokens: u64,
    /// Dollars, rounded to a millionth: the agent's own estimate where it gives one (Claude
    /// Code's `total_cost_usd`), else at list price; `None` when unknown.
    #[serde(serialize_with = "money::serialize_option")]
    pub cost_usd: Option<f64>,
    pub seconds: f64,
    pub error: Option<String>,
    /// The pull request `--open-pr` opened for the task's branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<String>,
}

/// How one attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    Completed,
    Failed,
    Parked,
    /// Given back without a failure: the run was stopped.
    Released,
    /// Another agent holds the task now.
    Lost,
}
