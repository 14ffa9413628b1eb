//! The reply of recording usage on a run.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::task::TaskId;
use crate::usage::Totals;
use crate::workspace::Recorded;

/// `usage record`: the run recorded on, and its totals so far.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct UsageRecordReply {
    pub task: TaskId,
    pub run: String,
    /// Records new to the run (a repeated key counts once).
    pub added: usize,
    /// The run's totals so far; when `kept`, only this write's.
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    pub totals: Totals,
    /// Input, output, cache writes and cache reads together.
    pub tokens: u64,
    pub budget_tokens: Option<u64>,
    /// The ledger push failed: the records wait in `.git/gitprio/usage-outbox/`.
    pub kept: bool,
}

impl UsageRecordReply {
    /// The reply to `recorded` on `id`.
    pub fn new(id: &TaskId, recorded: &Recorded) -> UsageRecordReply {
        UsageRecordReply {
            task: id.clone(),
            run: recorded.meta.run.clone(),
            added: recorded.added,
            totals: recorded.totals,
            tokens: recorded.totals.tokens(),
            budget_tokens: recorded.meta.budget_tokens,
            kept: recorded.kept.is_some(),
        }
    }
}
