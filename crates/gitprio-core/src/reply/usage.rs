//! The replies of the usage commands: recording usage on a run, importing agent logs and
//! showing a task's runs.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::task::TaskId;
use crate::usage::import::ImportReport;
use crate::usage::{PriceTable, Run, RunMeta, Totals, money};
use crate::workspace::Recorded;

/// `usage record`: the run recorded on, and its totals so far.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct UsageRecordReply {
    pub task: TaskId,
    pub run: String,
    /// Records new to the run (a repeated key counts once).
    pub added: usize,
    /// The run's totals so far; when `kept`, only this write's.
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

/// `usage import`: what the import read and where its records went.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct UsageImportReply {
    /// `None` when there was no log directory to read.
    pub report: Option<ImportReport>,
    /// Records added per run (`task run`).
    pub recorded: BTreeMap<String, usize>,
    /// Records of this import that belong to no run yet (other projects, or outside every
    /// run's time): kept in the unattributed store for a later import or `--task`.
    pub unattributed: usize,
    /// Records given to runs from the unattributed store.
    pub claimed_from_store: usize,
    /// Records waiting in the unattributed store after this import, and their tokens.
    pub unattributed_kept: usize,
    pub unattributed_kept_tokens: u64,
    /// Ledger writes kept on this machine because the ledger did not take them now.
    pub kept_writes: usize,
}

/// `usage show`: every run of a task, oldest first.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct UsageShowReply {
    pub task: TaskId,
    pub runs: Vec<UsageRun>,
}

/// One run in `usage show`: its metadata, totals and how many records it has.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct UsageRun {
    pub meta: RunMeta,
    pub totals: Totals,
    /// Input, output, cache writes and cache reads together.
    pub tokens: u64,
    /// Dollars of the run's priced tokens at list price, rounded to a millionth; its
    /// `unpriced_tokens` (of models with no price) have no known cost, never zero.
    #[serde(serialize_with = "money::serialize")]
    pub cost_usd: f64,
    pub unpriced_tokens: u64,
    pub records: usize,
}

impl UsageShowReply {
    /// The reply listing `runs` of `id`, costed at `prices`.
    pub fn new(id: &TaskId, runs: &[Run], prices: &PriceTable) -> UsageShowReply {
        UsageShowReply {
            task: id.clone(),
            runs: runs
                .iter()
                .map(|run| {
                    let cost = run.cost(prices);
                    UsageRun {
                        meta: run.meta.clone(),
                        totals: run.totals(),
                        tokens: run.totals().tokens(),
                        cost_usd: cost.usd,
                        unpriced_tokens: cost.unpriced_tokens,
                        records: run.records.len(),
                    }
                })
                .collect(),
        }
    }
}
