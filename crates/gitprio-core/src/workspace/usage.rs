//! Recording usage on a task's run: what an agent reports, the end of a run, and the
//! outbox that keeps what the ledger cannot take now.

use jiff::Timestamp;
use serde::Deserialize;

use crate::task::TaskId;
use crate::usage::{Delivery, Ledger, Outcome, RunMeta, Totals, UsageRecord};

use super::{Workspace, WorkspaceError, error_chain};

/// What recording usage did: written to the ledger, or kept on this machine for later.
#[derive(Debug)]
pub struct Recorded {
    pub added: usize,
    pub meta: RunMeta,
    /// The run's totals in the ledger; when kept, only what this call brought.
    pub totals: Totals,
    /// Why the ledger did not take the records now, when it did not.
    pub kept: Option<String>,
}

impl Recorded {
    /// Tokens over budget for the run, if it is: what it spent, and its budget.
    pub fn over_budget(&self) -> Option<(u64, u64)> {
        over_budget(&self.meta, &self.totals)
    }
}

/// Tokens over budget for the run `meta` with `totals`, if it is: spent, and budget.
pub fn over_budget(meta: &RunMeta, totals: &Totals) -> Option<(u64, u64)> {
    meta.budget_tokens
        .filter(|budget| totals.tokens() > *budget)
        .map(|budget| (totals.tokens(), budget))
}

/// One usage record as an agent reports it (flags, stdin or the MCP tool).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordInput {
    pub model: String,
    #[serde(default)]
    pub input: u64,
    #[serde(default)]
    pub output: u64,
    #[serde(default)]
    pub cache_read: u64,
    #[serde(default)]
    pub cache_write: u64,
    #[serde(default)]
    pub cache_write_1h: u64,
    #[serde(default)]
    pub reasoning: u64,
    #[serde(default = "one")]
    pub requests: u32,
    #[serde(default)]
    pub key: Option<String>,
    /// The agent CLI's log record this one copies (`gitprio run` follows the logs while
    /// agents work): the key stays the log's own (`claude:<message id>:<request id>`), so
    /// importing that log later finds the same request instead of counting it again.
    #[serde(default)]
    pub origin: Option<RecordOrigin>,
}

/// Where a copied log record came from, as `gitprio usage import` would fill it in.
#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RecordOrigin {
    /// `claude`, `codex` or `gemini`.
    pub source: String,
    #[serde(default)]
    pub session: Option<String>,
    #[serde(default)]
    pub at: Option<Timestamp>,
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default)]
    pub branch: Option<String>,
    #[serde(default)]
    pub sidechain: bool,
    #[serde(default)]
    pub speed: Option<String>,
}

fn one() -> u32 {
    1
}

impl RecordInput {
    /// The ledger record of this input, the `index`th of a call at `now` on the run `current`.
    fn into_record(self, index: usize, current: &RunMeta, now: Timestamp, pid: u32) -> UsageRecord {
        let origin = self.origin.unwrap_or_default();
        let copied = !origin.source.is_empty() && self.key.is_some();
        UsageRecord {
            key: match self.key {
                Some(key) if copied => key,
                Some(key) => format!("manual:{key}"),
                None => format!("manual:{}:{pid}:{index}", now.as_nanosecond()),
            },
            source: if copied {
                origin.source
            } else {
                "manual".to_owned()
            },
            session: origin.session.or_else(|| current.session.clone()),
            model: self.model,
            at: Some(origin.at.unwrap_or(now)),
            cwd: origin.cwd,
            branch: origin.branch,
            project_hash: None,
            sidechain: origin.sidechain,
            speed: origin.speed,
            input: self.input,
            output: self.output,
            cache_write_5m: self.cache_write,
            cache_write_1h: self.cache_write_1h,
            cache_read: self.cache_read,
            reasoning: self.reasoning,
            requests: self.requests,
        }
    }
}

impl Workspace<'_> {
    /// Records `inputs` as manual usage on the current run of `id` in the usage ledger, or
    /// keeps them on this machine when the ledger cannot take them now.
    pub fn record_usage(
        &self,
        id: &TaskId,
        inputs: Vec<RecordInput>,
    ) -> Result<Recorded, WorkspaceError> {
        if inputs.is_empty() {
            return Err(WorkspaceError::NoUsageRecords);
        }
        let current = self.current_run(id)?;
        let now = self.invocation.now;
        let records: Vec<UsageRecord> = inputs
            .into_iter()
            .enumerate()
            .map(|(index, input)| input.into_record(index, &current, now, self.invocation.pid))
            .collect();
        self.deliver(&current, &records)
    }

    /// Writes to the ledger, or keeps the write on this machine (and says so) when the
    /// ledger cannot take it: nothing recorded is lost.
    pub fn deliver(
        &self,
        meta: &RunMeta,
        records: &[UsageRecord],
    ) -> Result<Recorded, WorkspaceError> {
        let now = self.invocation.now;
        self.deliver_with(meta, records, |ledger| {
            ledger.write_or_keep(meta, records, now)
        })
    }

    /// Like [`Workspace::deliver`] for records read from logs, which are read again if the
    /// import does not finish: kept on this machine only when the ledger does not take them.
    pub fn deliver_imported(
        &self,
        meta: &RunMeta,
        records: &[UsageRecord],
    ) -> Result<Recorded, WorkspaceError> {
        let now = self.invocation.now;
        self.deliver_with(meta, records, |ledger| {
            ledger.write_else_keep(meta, records, now)
        })
    }

    fn deliver_with(
        &self,
        meta: &RunMeta,
        records: &[UsageRecord],
        write: impl FnOnce(&Ledger<'_, '_>) -> std::io::Result<Delivery>,
    ) -> Result<Recorded, WorkspaceError> {
        let delivery = write(&Ledger::new(&self.store)).map_err(WorkspaceError::Outbox)?;
        Ok(match delivery {
            Delivery::Written(written) => Recorded {
                added: written.added,
                meta: written.meta,
                totals: written.totals,
                kept: None,
            },
            Delivery::Kept { path, error } => {
                let outbox = path
                    .parent()
                    .and_then(|directory| std::fs::canonicalize(directory).ok())
                    .unwrap_or_else(|| path.clone());
                let message = format!(
                    "the usage ledger did not take the write ({error}); it is kept in {} and the next gitprio command that reaches the remote delivers it",
                    outbox.display()
                );
                self.notices.warning(&message);
                Recorded {
                    added: records.len(),
                    meta: meta.clone(),
                    totals: records.iter().collect(),
                    kept: Some(message),
                }
            }
        })
    }

    /// Prepares the end of the current run of `id` to ride in the next lease push
    /// ([`Ledger::carry`]); `None` when it cannot, and [`Workspace::record_outcome`] is
    /// then the way.
    pub(super) fn carry_outcome(
        &self,
        id: &TaskId,
        outcome: Outcome,
    ) -> Option<crate::usage::ledger::Carried> {
        let ledger = Ledger::new(&self.store);
        if ledger.kept() > 0 {
            // Writes kept earlier go first: `record_outcome` delivers them.
            return None;
        }
        let meta = RunMeta {
            outcome: Some(outcome),
            ended_at: Some(self.invocation.now),
            ..self.current_run(id).ok()?
        };
        ledger.carry(&meta, self.invocation.now).ok().flatten()
    }

    /// Records the end of the current run of `id` in the usage ledger. A write the ledger
    /// cannot take now is kept on this machine and delivered later; only a run that cannot
    /// be described (no lease left to read) is a warning, since the lease change happened.
    pub fn record_outcome(&self, id: &TaskId, outcome: Outcome) {
        let result = self.current_run(id).and_then(|current| {
            let meta = RunMeta {
                outcome: Some(outcome),
                ended_at: Some(self.invocation.now),
                ..current
            };
            self.deliver(&meta, &[]).map(|_| ())
        });
        if let Err(error) = result {
            self.notices.warning(&format!(
                "the run's outcome was not recorded in the usage ledger: {}",
                error_chain(&error)
            ));
        }
    }
}
