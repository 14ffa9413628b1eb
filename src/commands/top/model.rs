//! The fleet as `gitprio top` shows it: built from leases, tasks and usage runs at one instant, with no I/O.

use std::collections::{BTreeMap, BTreeSet};

use gitprio_core::Task;
use gitprio_core::TaskId;
use gitprio_core::lease::{Lease, LeaseRecord, LeaseState, Progress};
use gitprio_core::usage::money::Cost;
use gitprio_core::usage::report::{GroupBy, RunFilter, TaskFacts, report};
use gitprio_core::usage::{Outcome, PriceTable, Run, RunMeta, money};
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

/// How many ended runs the lower pane keeps.
const RECENT_RUNS: usize = 10;

/// What the queue says about a task, as far as the cockpit needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskInfo {
    pub title: String,
    /// Value, type, feature and status, as the reports read them.
    pub facts: TaskFacts,
    /// The token budget: the task's own, else its type's in the config.
    pub budget_tokens: Option<u64>,
    /// The model or tier the task is routed to.
    pub model: Option<String>,
}

impl TaskInfo {
    /// Describes `task`, whose token budget is `budget_tokens` ([`Config::token_budget`]).
    ///
    /// [`Config::token_budget`]: gitprio_core::Config::token_budget
    pub fn of(task: &Task, budget_tokens: Option<u64>) -> TaskInfo {
        TaskInfo {
            title: task.title.clone(),
            facts: TaskFacts::from(task),
            budget_tokens,
            model: task.model.clone(),
        }
    }
}

/// Everything the fleet is computed from, read at one instant.
#[derive(Debug)]
pub struct Sources<'a> {
    pub now: Timestamp,
    /// How far another machine's clock may be ahead (the config's `clock_skew`).
    pub skew: SignedDuration,
    /// The span the header's throughput, tokens, cost and value per token cover.
    pub window: SignedDuration,
    pub leases: &'a BTreeMap<TaskId, Lease>,
    pub tasks: &'a BTreeMap<TaskId, TaskInfo>,
    pub runs: &'a [Run],
    pub prices: &'a PriceTable,
    /// How many models the repository's `.tasks/prices.yaml` prices (0: none).
    pub repository_price_models: usize,
    /// Ready tasks left in the queue.
    pub ready: usize,
}

/// How recently a holder renewed its lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Beat {
    /// Renewed within two thirds of the TTL: `gitprio run` renews every third.
    Fresh,
    /// Two renewals missed: the agent may be stuck, or its machine gone.
    Stale,
    /// Past its expiry: any agent may reclaim the task.
    Expired,
}

/// The numbers over the whole fleet.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Header {
    /// Agents holding a lease that has not expired.
    pub agents_active: usize,
    /// Tasks whose run completed within the window.
    pub done_in_window: usize,
    pub tokens_in_window: u64,
    /// Estimated at list prices; models without a price are left out (see `unpriced_tokens_in_window`).
    #[serde(serialize_with = "money::serialize")]
    pub cost_usd_in_window: f64,
    pub unpriced_tokens_in_window: u64,
    /// Value points of completed tasks per million tokens, runs started within the window.
    pub value_per_million_tokens_in_window: Option<f64>,
    /// The same over every run the ledger knows: the repository's baseline.
    pub value_per_million_tokens_baseline: Option<f64>,
    pub ready: usize,
    /// How many models the repository's `.tasks/prices.yaml` prices over the bundled table.
    #[serde(skip_serializing_if = "is_zero")]
    pub repository_price_models: usize,
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if passes a reference"
)]
fn is_zero(count: &usize) -> bool {
    *count == 0
}

/// One held lease: who works on what, for how long, at what cost.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LeaseRow {
    pub task: TaskId,
    pub title: String,
    #[serde(rename = "type")]
    pub task_type: Option<String>,
    pub agent: String,
    /// The model the run spent most tokens on, else the one the task is routed to.
    pub model: Option<String>,
    pub acquired_at: Timestamp,
    pub renewed_at: Timestamp,
    pub expires_at: Timestamp,
    /// When the lease expired, once it has by the rule a claim uses (`clock_skew` allowed):
    /// any agent may reclaim the task. `None` while it is live.
    pub expired_at: Option<Timestamp>,
    pub on_task_seconds: i64,
    pub heartbeat_age_seconds: i64,
    pub beat: Beat,
    pub tokens: u64,
    /// Dollars of the priced tokens; `unpriced_tokens` have no known cost.
    #[serde(serialize_with = "money::serialize")]
    pub cost_usd: f64,
    pub unpriced_tokens: u64,
    pub budget_tokens: Option<u64>,
    pub attempt: u32,
    pub failures: u32,
    pub generation: u64,
}

impl LeaseRow {
    /// The share of the budget spent, when there is a budget.
    pub fn budget_share(&self) -> Option<f64> {
        #[expect(clippy::cast_precision_loss, reason = "a ratio for display")]
        self.budget_tokens
            .filter(|budget| *budget > 0)
            .map(|budget| self.tokens as f64 / budget as f64)
    }
}

/// A run that ended: completed, failed, released, parked or expired.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EndedRun {
    pub task: TaskId,
    pub title: String,
    pub agent: String,
    pub model: Option<String>,
    pub outcome: Outcome,
    pub ended_at: Timestamp,
    pub tokens: u64,
    #[serde(serialize_with = "money::serialize")]
    pub cost_usd: f64,
    pub unpriced_tokens: u64,
}

/// A task that waits for a human (`gitprio unpark`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParkedTask {
    pub task: TaskId,
    pub title: String,
    pub failures: u32,
    pub parked_at: Timestamp,
    /// Who parked it: the last holder, or whoever revoked it.
    pub by: String,
    pub last_error: Option<String>,
}

/// The whole picture at one instant.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Fleet {
    pub now: Timestamp,
    pub window_seconds: i64,
    pub header: Header,
    /// Held leases, expired ones included, in task order.
    pub leases: Vec<LeaseRow>,
    /// The last runs that ended (expired ones too), newest first.
    pub recent: Vec<EndedRun>,
    pub parked: Vec<ParkedTask>,
}

/// One state change of a lease, for the detail view.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HistoryEntry {
    pub at: Timestamp,
    pub event: String,
    pub agent: String,
    pub generation: u64,
    pub attempt: u32,
    pub reason: Option<String>,
}

impl HistoryEntry {
    pub fn of(record: &LeaseRecord) -> HistoryEntry {
        HistoryEntry {
            at: record.renewed_at,
            event: serde_json::to_value(record.event)
                .ok()
                .and_then(|value| value.as_str().map(str::to_owned))
                .unwrap_or_default(),
            agent: record.holder.agent.clone(),
            generation: record.generation,
            attempt: record.attempt,
            reason: record.reason.clone(),
        }
    }
}

/// One task in full: its lease history (newest first) and every run's usage.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Detail {
    pub task: TaskId,
    pub title: String,
    pub history: Vec<HistoryEntry>,
    pub runs: Vec<EndedOrOpenRun>,
}

/// A run of one task, ended or still open.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EndedOrOpenRun {
    pub run: String,
    pub agent: String,
    pub model: Option<String>,
    pub outcome: Option<Outcome>,
    pub tokens: u64,
    #[serde(serialize_with = "money::serialize")]
    pub cost_usd: f64,
    pub unpriced_tokens: u64,
}

impl Fleet {
    /// Computes the fleet from `sources`.
    pub fn build(sources: &Sources<'_>) -> Fleet {
        let now = sources.now;
        let since = now.saturating_sub(sources.window).unwrap_or(now);
        let (leases, parked, in_flight) = lease_rows(sources, since);
        Fleet {
            now,
            window_seconds: sources.window.as_secs(),
            header: header(sources, since, &leases, &in_flight),
            leases,
            recent: recent_runs(sources),
            parked,
        }
    }
}

/// The title of task `id`, or a note that the queue no longer has it.
fn task_title(sources: &Sources<'_>, id: &TaskId) -> String {
    sources.tasks.get(id).map_or_else(
        || "(not in the queue)".to_owned(),
        |task| task.title.clone(),
    )
}

/// The held leases and the parked tasks, with what attempts in flight (by the rule every
/// report counts runs in flight by) started since `since` spent beyond what the ledger has
/// of them: their heartbeats' progress, until the run ends and writes its usage. An
/// expired attempt's spend is what the ledger has of it, as in `gitprio report`.
fn lease_rows(
    sources: &Sources<'_>,
    since: Timestamp,
) -> (Vec<LeaseRow>, Vec<ParkedTask>, InFlight) {
    let runs_by_id: BTreeMap<(&TaskId, &str), &Run> = sources
        .runs
        .iter()
        .map(|run| ((&run.meta.task, run.meta.run.as_str()), run))
        .collect();
    let mut leases = Vec::new();
    let mut parked = Vec::new();
    let mut in_flight = InFlight::default();
    for (id, lease) in sources.leases {
        let record = &lease.record;
        match record.state {
            LeaseState::Held => {
                let run_id = RunMeta::run_id(record.generation, record.acquired_at);
                let run = runs_by_id.get(&(id, run_id.as_str())).copied();
                let ledger = run.map_or((0, Cost::default()), |run| spend(run, sources.prices));
                let so_far = attempt_spend(ledger, record.progress.as_ref());
                if record.acquired_at >= since
                    && gitprio_core::workspace::in_flight(record, sources.now, sources.skew)
                {
                    in_flight.add(ledger, so_far);
                }
                leases.push(lease_row(sources, id, record, run, so_far));
            }
            LeaseState::Parked => parked.push(ParkedTask {
                task: id.clone(),
                title: task_title(sources, id),
                failures: record.failures,
                parked_at: record.renewed_at,
                by: record.holder.agent.clone(),
                last_error: record.last_error.clone(),
            }),
            LeaseState::Released | LeaseState::Submitted => {}
        }
    }
    (leases, parked, in_flight)
}

/// The row of a held lease, with `run` its attempt in the ledger and `spent` its tokens
/// and cost so far.
fn lease_row(
    sources: &Sources<'_>,
    id: &TaskId,
    record: &LeaseRecord,
    run: Option<&Run>,
    (tokens, cost): (u64, Cost),
) -> LeaseRow {
    let now = sources.now;
    let task = sources.tasks.get(id);
    LeaseRow {
        task: id.clone(),
        title: task_title(sources, id),
        task_type: task.and_then(|task| task.facts.task_type.clone()),
        agent: record.holder.agent.clone(),
        model: run
            .and_then(dominant_model)
            .or_else(|| task.and_then(|task| task.model.clone())),
        acquired_at: record.acquired_at,
        renewed_at: record.renewed_at,
        expires_at: record.expires_at,
        expired_at: gitprio_core::workspace::expired_at(record, now, sources.skew),
        on_task_seconds: now.duration_since(record.acquired_at).as_secs(),
        heartbeat_age_seconds: now.duration_since(record.renewed_at).as_secs(),
        beat: beat(record, now, sources.skew),
        tokens,
        cost_usd: cost.usd,
        unpriced_tokens: cost.unpriced_tokens,
        budget_tokens: run
            .and_then(|run| run.meta.budget_tokens)
            .or_else(|| task.and_then(|task| task.budget_tokens)),
        attempt: record.attempt,
        failures: record.failures,
        generation: record.generation,
    }
}

/// The last runs that ended, newest first.
fn recent_runs(sources: &Sources<'_>) -> Vec<EndedRun> {
    let mut ended: Vec<&Run> = sources
        .runs
        .iter()
        .filter(|run| run.meta.outcome.is_some() && run.meta.ended_at.is_some())
        .collect();
    ended.sort_by(|left, right| {
        (right.meta.ended_at, &left.meta.task).cmp(&(left.meta.ended_at, &right.meta.task))
    });
    ended
        .iter()
        .take(RECENT_RUNS)
        .map(|run| {
            let (tokens, cost) = spend(run, sources.prices);
            EndedRun {
                task: run.meta.task.clone(),
                title: task_title(sources, &run.meta.task),
                agent: run.meta.agent.clone(),
                model: dominant_model(run),
                outcome: run.meta.outcome.unwrap_or(Outcome::Released),
                ended_at: run.meta.ended_at.unwrap_or(sources.now),
                tokens,
                cost_usd: cost.usd,
                unpriced_tokens: cost.unpriced_tokens,
            }
        })
        .collect()
}

/// The header: active agents, and what was done and spent since `since`, running
/// attempts' `in_flight` spend included.
fn header(
    sources: &Sources<'_>,
    since: Timestamp,
    leases: &[LeaseRow],
    in_flight: &InFlight,
) -> Header {
    let now = sources.now;
    let done_in_window: BTreeSet<&TaskId> = sources
        .runs
        .iter()
        .filter(|run| {
            run.meta.outcome == Some(Outcome::Completed)
                && run.meta.ended_at.is_some_and(|at| at >= since && at <= now)
        })
        .map(|run| &run.meta.task)
        .collect();
    let facts: BTreeMap<TaskId, TaskFacts> = sources
        .tasks
        .iter()
        .map(|(id, task)| (id.clone(), task.facts.clone()))
        .collect();
    let in_window = report(
        sources.runs,
        &facts,
        sources.prices,
        &RunFilter {
            since: Some(since),
            ..RunFilter::default()
        },
        GroupBy::Type,
    )
    .summary;
    let baseline = report(
        sources.runs,
        &facts,
        sources.prices,
        &RunFilter::default(),
        GroupBy::Type,
    )
    .summary;
    Header {
        agents_active: leases
            .iter()
            .filter(|row| row.beat != Beat::Expired)
            .map(|row| row.agent.as_str())
            .collect::<BTreeSet<_>>()
            .len(),
        done_in_window: done_in_window.len(),
        tokens_in_window: in_window.tokens + in_flight.tokens,
        cost_usd_in_window: in_window.cost_usd + in_flight.cost_usd,
        unpriced_tokens_in_window: in_window.unpriced_tokens + in_flight.unpriced_tokens,
        value_per_million_tokens_in_window: in_window.value_per_million_tokens,
        value_per_million_tokens_baseline: baseline.value_per_million_tokens,
        ready: sources.ready,
        repository_price_models: sources.repository_price_models,
    }
}

/// Describes task `id` in full, with `history` its lease records, newest first.
pub fn detail(sources: &Sources<'_>, id: &TaskId, history: &[LeaseRecord]) -> Detail {
    Detail {
        task: id.clone(),
        title: task_title(sources, id),
        history: history.iter().map(HistoryEntry::of).collect(),
        runs: sources
            .runs
            .iter()
            .filter(|run| &run.meta.task == id)
            .map(|run| {
                let (tokens, cost) = spend(run, sources.prices);
                EndedOrOpenRun {
                    run: run.meta.run.clone(),
                    agent: run.meta.agent.clone(),
                    model: dominant_model(run),
                    outcome: run.meta.outcome,
                    tokens,
                    cost_usd: cost.usd,
                    unpriced_tokens: cost.unpriced_tokens,
                }
            })
            .collect(),
    }
}

fn beat(record: &LeaseRecord, now: Timestamp, skew: SignedDuration) -> Beat {
    if gitprio_core::workspace::expired_at(record, now, skew).is_some() {
        return Beat::Expired;
    }
    let ttl = i64::try_from(record.ttl_seconds).unwrap_or(i64::MAX);
    if now
        .duration_since(record.renewed_at)
        .as_secs()
        .saturating_mul(3)
        > ttl.saturating_mul(2)
    {
        Beat::Stale
    } else {
        Beat::Fresh
    }
}

/// Spend of running attempts not in the ledger yet.
#[derive(Debug, Default)]
struct InFlight {
    tokens: u64,
    cost_usd: f64,
    unpriced_tokens: u64,
}

impl InFlight {
    /// Adds an attempt's spend so far beyond what the ledger has: each a count of tokens
    /// and their cost.
    fn add(&mut self, ledger: (u64, Cost), so_far: (u64, Cost)) {
        self.tokens += so_far.0.saturating_sub(ledger.0);
        self.cost_usd += (so_far.1.usd - ledger.1.usd).max(0.0);
        self.unpriced_tokens += so_far
            .1
            .unpriced_tokens
            .saturating_sub(ledger.1.unpriced_tokens);
    }
}

/// The spend of a held lease's attempt: the ledger's, or what the holder reported with
/// its last heartbeat when that is further along (`gitprio run` records usage in the
/// ledger only when the attempt ends). Both count the attempt from its start, so the
/// larger is the later.
///
/// A holder that could not price its tokens reported none: the ledger's dollars stand, a
/// floor, and the tokens beyond the ledger's priced ones have no known cost.
fn attempt_spend(ledger: (u64, Cost), progress: Option<&Progress>) -> (u64, Cost) {
    match progress {
        Some(progress) if progress.tokens > ledger.0 => {
            let cost = match progress.cost_usd {
                Some(usd) => Cost {
                    usd,
                    unpriced_tokens: 0,
                },
                None => Cost {
                    usd: ledger.1.usd,
                    unpriced_tokens: progress.tokens - ledger.0 + ledger.1.unpriced_tokens,
                },
            };
            (progress.tokens, cost)
        }
        _ => ledger,
    }
}

/// Tokens of `run`, and their estimated cost.
fn spend(run: &Run, prices: &PriceTable) -> (u64, Cost) {
    (run.totals().tokens(), run.cost(prices))
}

fn dominant_model(run: &Run) -> Option<String> {
    run.totals_by_model()
        .into_iter()
        .max_by_key(|(model, totals)| (totals.tokens(), std::cmp::Reverse(*model)))
        .map(|(model, _)| model.to_owned())
}
