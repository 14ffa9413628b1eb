//! Value per token, and where tokens went to waste: the numbers behind `gitprio report`.
//!
//! Every run counts, completed or not: tokens spent on failed and abandoned runs are
//! part of what the completed work cost.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::Serialize;

use super::attribute::{Place, Span};
use super::money::Cost;
use super::{Outcome, PriceTable, Run, Totals, UsageRecord, money};
use crate::task::{Status, Task, TaskId};

/// What the queue says about a task now (its file may have changed since the run).
#[derive(Clone, Debug, PartialEq)]
pub struct TaskFacts {
    pub value: u32,
    pub task_type: Option<String>,
    pub feature: Option<String>,
    pub status: Status,
}

impl From<&Task> for TaskFacts {
    fn from(task: &Task) -> TaskFacts {
        TaskFacts {
            value: task.value,
            task_type: task.task_type.clone(),
            feature: task.feature.clone(),
            status: task.status,
        }
    }
}

/// The outcome of a run still going, as JSON and the Prometheus text name it (in snake
/// case, as every other outcome); people read "in flight" (see [`outcome_text`]).
pub const IN_FLIGHT: &str = "in_flight";

/// A run's outcome as people read it: "in flight" for a run still going, else as is.
pub fn outcome_text(outcome: &str) -> &str {
    if outcome == IN_FLIGHT {
        "in flight"
    } else {
        outcome
    }
}

/// Returns the UTC day of `at`: `2026-11-02`.
pub fn day_of(at: Timestamp) -> String {
    at.to_string()[..10].to_owned()
}

/// Returns the ISO week of `at` (UTC): `2026-W45`.
pub fn week_of(at: Timestamp) -> String {
    let week = at.to_zoned(jiff::tz::TimeZone::UTC).date().iso_week_date();
    format!("{}-W{:02}", week.year(), week.week())
}

/// Returns the UTC month of `at`: `2026-11`.
pub fn month_of(at: Timestamp) -> String {
    at.to_string()[..7].to_owned()
}

/// How runs are grouped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Run,
    Agent,
    Type,
    Feature,
    Model,
    Day,
    Week,
    Month,
}

impl GroupBy {
    /// The grouping's name, as the CLI spells it (`--by type`).
    pub fn name(self) -> &'static str {
        match self {
            GroupBy::Run => "run",
            GroupBy::Agent => "agent",
            GroupBy::Type => "type",
            GroupBy::Feature => "feature",
            GroupBy::Model => "model",
            GroupBy::Day => "day",
            GroupBy::Week => "week",
            GroupBy::Month => "month",
        }
    }

    /// The period a timestamp falls in, for the groupings by time.
    fn period(self) -> Option<fn(Timestamp) -> String> {
        match self {
            GroupBy::Day => Some(day_of),
            GroupBy::Week => Some(week_of),
            GroupBy::Month => Some(month_of),
            _ => None,
        }
    }
}

/// Which runs and requests a report covers.
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    /// Requests at or after this time (each request's own timestamp, not its run's start).
    pub since: Option<Timestamp>,
    /// Requests before this time.
    pub until: Option<Timestamp>,
    pub task: Option<TaskId>,
    pub feature: Option<String>,
    /// The report's time: it marks the active 5-hour window.
    pub now: Option<Timestamp>,
}

/// One run, as reported.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunLine {
    pub task: TaskId,
    pub run: String,
    pub agent: String,
    #[serde(rename = "type")]
    pub task_type: Option<String>,
    pub feature: Option<String>,
    /// The model that spent most of the run's tokens.
    pub model: String,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    /// `completed`, `released`, `failed`, `parked`, `expired`, or `open` (still running or never closed).
    pub outcome: String,
    pub tokens: u64,
    /// Dollars of the run's priced tokens; its `unpriced_tokens` have no known cost.
    #[serde(serialize_with = "money::serialize")]
    pub cost_usd: f64,
    /// Tokens of models with no price.
    pub unpriced_tokens: u64,
    pub requests: u64,
    pub cache_hit_rate: Option<f64>,
    pub budget_tokens: Option<u64>,
    pub over_budget: bool,
    pub context_tokens: Option<u64>,
    /// The pull request of the run's branch, when the report asked GitHub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<PullRequestFacts>,
}

impl RunLine {
    /// Returns the run's cost: its priced dollars and unpriced tokens.
    pub fn cost(&self) -> Cost {
        Cost {
            usd: self.cost_usd,
            unpriced_tokens: self.unpriced_tokens,
        }
    }
}

/// What GitHub says of a pull request of a task's branch (`gitprio/<task>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PullRequestFacts {
    pub number: u64,
    pub url: String,
    pub state: PullRequestState,
    /// When it was opened; the run it belongs to is the one it was opened during or after.
    pub created_at: Option<Timestamp>,
}

/// Whether a pull request's change landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PullRequestState {
    Open,
    Merged,
    /// Closed without merging: the run's work never landed.
    ClosedUnmerged,
}

impl PullRequestState {
    pub fn as_str(self) -> &'static str {
        match self {
            PullRequestState::Open => "open",
            PullRequestState::Merged => "merged",
            PullRequestState::ClosedUnmerged => "closed unmerged",
        }
    }
}

/// Totals for a set of runs, and what they bought.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    pub runs: usize,
    pub completed_tasks: usize,
    pub value_points: u64,
    pub tokens: u64,
    pub totals: Totals,
    /// Dollars for the tokens of priced models; see `unpriced_tokens`.
    #[serde(serialize_with = "money::serialize")]
    pub cost_usd: f64,
    /// Tokens of models with no known price: their cost is unknown, not zero.
    pub unpriced_tokens: u64,
    /// Runs still going, and their part of the figures above: not value yet, nor waste,
    /// so the ratios below leave them out.
    pub in_flight_runs: usize,
    pub in_flight_tokens: u64,
    #[serde(serialize_with = "money::serialize")]
    pub in_flight_cost_usd: f64,
    pub in_flight_unpriced_tokens: u64,
    /// Value points per million tokens of finished runs.
    pub value_per_million_tokens: Option<f64>,
    pub tasks_per_million_tokens: Option<f64>,
    /// Priced dollars per completed task (or value point); with `unpriced_tokens`, a floor.
    #[serde(serialize_with = "money::serialize_option")]
    pub usd_per_completed_task: Option<f64>,
    #[serde(serialize_with = "money::serialize_option")]
    pub usd_per_value_point: Option<f64>,
    pub cache_hit_rate: Option<f64>,
}

impl Summary {
    /// Returns the cost of all the runs: their priced dollars and unpriced tokens.
    pub fn cost(&self) -> Cost {
        Cost {
            usd: self.cost_usd,
            unpriced_tokens: self.unpriced_tokens,
        }
    }
}

/// A summary per group.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Group {
    pub key: String,
    #[serde(flatten)]
    pub summary: Summary,
}

/// Percentiles of a distribution, with its largest items. Of no item, the percentiles are
/// undefined: `null` in JSON, not 0.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Distribution {
    pub count: usize,
    pub median: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
    /// The five largest: (task, tokens, cost), written `[task, tokens, cost_usd, unpriced_tokens]`.
    pub top: Vec<(TaskId, u64, Cost)>,
}

impl Serialize for Distribution {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        struct Top<'a>(&'a [(TaskId, u64, Cost)]);
        impl Serialize for Top<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serialize_top(self.0, serializer)
            }
        }
        let defined = |value: u64| (self.count > 0).then_some(value);
        let mut fields = serializer.serialize_struct("Distribution", 6)?;
        fields.serialize_field("count", &self.count)?;
        fields.serialize_field("median", &defined(self.median))?;
        fields.serialize_field("p90", &defined(self.p90))?;
        fields.serialize_field("p99", &defined(self.p99))?;
        fields.serialize_field("max", &defined(self.max))?;
        fields.serialize_field("top", &Top(&self.top))?;
        fields.end()
    }
}

/// Serializes [`Distribution::top`] with its dollars rounded as every dollar amount is.
fn serialize_top<S: serde::Serializer>(
    top: &[(TaskId, u64, Cost)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(top.iter().map(|(task, tokens, cost)| {
        (
            task,
            tokens,
            money::round_usd(cost.usd),
            cost.unpriced_tokens,
        )
    }))
}

/// Signs of waste, each with the evidence.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Waste {
    /// Tokens per completed task, all its runs included: a fat tail means runaway loops.
    pub tokens_per_completed_task: Distribution,
    /// Runs that ended without completing their task, and what they cost.
    pub unfinished_runs: Vec<RunLine>,
    pub unfinished_tokens: u64,
    #[serde(serialize_with = "money::serialize")]
    pub unfinished_cost_usd: f64,
    pub unfinished_unpriced_tokens: u64,
    /// Runs still going (no outcome yet): not waste, not value yet.
    pub in_flight_runs: Vec<RunLine>,
    pub in_flight_tokens: u64,
    #[serde(serialize_with = "money::serialize")]
    pub in_flight_cost_usd: f64,
    pub in_flight_unpriced_tokens: u64,
    /// Tasks that needed more than one run: (task, runs, tokens).
    pub retried_tasks: Vec<(TaskId, usize, u64)>,
    /// Cache reads over all input, per agent and per model.
    pub cache_hit_by_agent: BTreeMap<String, Option<f64>>,
    pub cache_hit_by_model: BTreeMap<String, Option<f64>>,
    /// Share of each task type's tokens per model, per ISO week: drift shows as a new model.
    pub model_mix: Vec<ModelMix>,
    /// Mean context bundle size per day, in estimated tokens: growth is bloat.
    pub context_tokens_by_day: BTreeMap<String, u64>,
    pub over_budget: Vec<RunLine>,
    /// Completed runs whose work has not landed: their task is not `done` on the queue's
    /// branch (never merged, or the change was dropped). Spend that bought nothing yet.
    /// With GitHub's view (`pull_requests` set), completed runs whose pull request was
    /// closed unmerged count too, even when a later run's change landed.
    pub unmerged_runs: Vec<RunLine>,
    pub unmerged_tokens: u64,
    #[serde(serialize_with = "money::serialize")]
    pub unmerged_cost_usd: f64,
    pub unmerged_unpriced_tokens: u64,
    /// Of the unmerged spend, what went into pull requests closed unmerged (GitHub's view).
    pub closed_unmerged_tokens: u64,
    #[serde(serialize_with = "money::serialize")]
    pub closed_unmerged_cost_usd: f64,
    pub closed_unmerged_unpriced_tokens: u64,
    /// Dollars per completed task (all its runs), by task type: the tail is runaway work.
    pub cost_tail_by_type: BTreeMap<String, CostTail>,
    /// Runs that spent on a model other than the one their task was routed to, and what
    /// the same tokens would have cost on the routed model.
    pub overspend: Vec<Overspend>,
    #[serde(serialize_with = "money::serialize")]
    pub overspend_usd: f64,
    /// Tokens of the overspending runs' requests with no price: left out of both sides, so
    /// `overspend_usd` is a floor when there are some.
    pub overspend_unpriced_tokens: u64,
    /// Runs that spent on another model than the one their task was routed to, whose routed
    /// model has no price: their overspend is unknown, not none.
    pub overspend_unknown: Vec<UnknownOverspend>,
}

/// A run whose overspend cannot be told: its task's routed model has no price.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UnknownOverspend {
    pub task: TaskId,
    pub run: String,
    pub routed_model: String,
    #[serde(serialize_with = "money::serialize")]
    pub cost_usd: f64,
    pub unpriced_tokens: u64,
}

/// Percentiles of dollars per completed task, nearest rank. A task with unpriced tokens
/// counts with its priced dollars, a floor: `unpriced_tokens` says how many tokens that leaves out.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CostTail {
    pub count: usize,
    pub unpriced_tokens: u64,
    #[serde(serialize_with = "money::serialize")]
    pub median_usd: f64,
    #[serde(serialize_with = "money::serialize")]
    pub p90_usd: f64,
    #[serde(serialize_with = "money::serialize")]
    pub p99_usd: f64,
    #[serde(serialize_with = "money::serialize")]
    pub max_usd: f64,
}

/// A run that spent more than its routed model would have.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Overspend {
    pub task: TaskId,
    pub run: String,
    pub routed_model: String,
    #[serde(serialize_with = "money::serialize")]
    pub cost_usd: f64,
    #[serde(serialize_with = "money::serialize")]
    pub routed_cost_usd: f64,
    #[serde(serialize_with = "money::serialize")]
    pub overspend_usd: f64,
    /// Tokens of the run's requests with no price, left out of both sides: with some,
    /// `cost_usd` and `overspend_usd` are floors.
    pub unpriced_tokens: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelMix {
    #[serde(rename = "type")]
    pub task_type: String,
    pub week: String,
    pub model: String,
    pub tokens: u64,
    pub share: f64,
}

/// A price file of the repository the report's costs are read at, and how many models it prices.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RepositoryPriceFile {
    pub file: String,
    pub models: usize,
}

/// Everything `gitprio report` shows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub price_snapshot: &'static str,
    /// The date of the bundled prices: every cost is an estimate at list price as of then.
    pub price_date: &'static str,
    /// A price file the user gave on top of the bundled table (`report --prices`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_file: Option<String>,
    /// The repository's own prices (`.tasks/prices.yaml`) over the bundled table, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository_prices: Option<RepositoryPriceFile>,
    pub group_by: GroupBy,
    pub summary: Summary,
    pub groups: Vec<Group>,
    pub runs: Vec<RunLine>,
    pub waste: Waste,
    /// Models without a price, with their tokens.
    pub unpriced_models: BTreeMap<String, u64>,
    /// Spend over time, by each request's own time.
    pub spend: Spend,
    /// Fleet totals by task type, model and agent (low-cardinality: no task or session ids).
    pub fleet: Vec<FleetRow>,
    /// Runs by task type, agent and outcome.
    pub fleet_runs: Vec<FleetRuns>,
    /// How much of the report's spend and this machine's unattributed spend is tied to
    /// tasks, when the unattributed store was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribution: Option<Attribution>,
    /// Whether the pull request of each run was asked of GitHub (see [`pull_request_signals`]).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pull_requests: bool,
    /// Whether the report is over a period (`--since`/`--until`): a task's figures are then
    /// its spend inside the period only.
    #[serde(skip)]
    pub period: bool,
}

/// The share of spend tied to tasks (the ledger) against this repository's spend that no
/// run claims (this machine's unattributed store, of sessions in the repository's checkout
/// or worktrees outside every run); other projects' sessions and records that name no
/// directory are shown apart, out of the share.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Attribution {
    pub tied_tokens: u64,
    #[serde(serialize_with = "money::serialize")]
    pub tied_cost_usd: f64,
    /// This repository's unattributed spend (see [`super::attribute::Place::Here`]).
    pub unattributed_tokens: u64,
    #[serde(serialize_with = "money::serialize")]
    pub unattributed_cost_usd: f64,
    /// Unattributed tokens of models without a price.
    pub unattributed_unpriced_tokens: u64,
    /// Unattributed spend of other projects' sessions on this machine (they ran outside
    /// this repository's checkout and worktrees): not in the share.
    pub other_projects_tokens: u64,
    #[serde(serialize_with = "money::serialize")]
    pub other_projects_cost_usd: f64,
    pub other_projects_unpriced_tokens: u64,
    /// Unattributed spend of records that name no directory (no `cwd`, no Gemini
    /// `projectHash`): neither this repository's nor another's, so not in the share.
    pub unplaced_tokens: u64,
    #[serde(serialize_with = "money::serialize")]
    pub unplaced_cost_usd: f64,
    pub unplaced_unpriced_tokens: u64,
    /// Tied tokens over tied and this repository's unattributed tokens; `None` until `gitprio usage import`
    /// has run on this machine: with usage recorded by `gitprio run` or by hand only, no
    /// agent log was looked at for untied spend, and a share would be 100% of nothing.
    pub tied_share: Option<f64>,
    /// The same share in dollars, of the priced spend on both sides (`None` as above, or
    /// with no priced spend at all): tokens of a cheap model and of a dear one differ.
    pub tied_cost_share: Option<f64>,
}

/// Adds to `report` this machine's unattributed spend (see
/// [`super::attribute::Unattributed::spans`]): the share of spend tied to tasks and the
/// unattributed spend per day, week and month, from `filtered` (the spans of the filter's
/// time); and the 5-hour windows cut again from all of the account's requests on this
/// machine: every run's (`runs`, as [`report`] was given them) and every unattributed
/// one (`all`). `imported`: whether an import has run on this machine (else the share is
/// unknown, not 100%).
#[expect(clippy::cast_precision_loss, reason = "a share for display")]
pub fn add_unattributed(
    report: &mut Report,
    runs: &[Run],
    filter: &RunFilter,
    unattributed: UnattributedSpans<'_>,
    prices: &PriceTable,
    imported: bool,
) {
    let mut share = Attribution {
        tied_tokens: report.summary.tokens,
        tied_cost_usd: report.summary.cost_usd,
        ..Attribution::default()
    };
    let mut by: [BTreeMap<String, Period>; 3] = Default::default();
    for span in unattributed.filtered {
        let tokens = span.totals.tokens();
        let cost = prices.cost(&span.priced());
        let (side_tokens, side_cost, side_unpriced) = match span.place {
            Place::Here => (
                &mut share.unattributed_tokens,
                &mut share.unattributed_cost_usd,
                &mut share.unattributed_unpriced_tokens,
            ),
            Place::Elsewhere => (
                &mut share.other_projects_tokens,
                &mut share.other_projects_cost_usd,
                &mut share.other_projects_unpriced_tokens,
            ),
            Place::Unplaced => (
                &mut share.unplaced_tokens,
                &mut share.unplaced_cost_usd,
                &mut share.unplaced_unpriced_tokens,
            ),
        };
        *side_tokens += tokens;
        match cost {
            Some(cost) => *side_cost += cost,
            None => *side_unpriced += tokens,
        }
        let Some(at) = span.first else { continue };
        let keys = [day_of(at), week_of(at), month_of(at)];
        for (map, key) in by.iter_mut().zip(keys) {
            let period = map.entry(key.clone()).or_insert_with(|| Period {
                period: key,
                ..Period::default()
            });
            period.unattributed_tokens += tokens;
            period.unattributed_requests += span.totals.requests;
            match cost {
                Some(cost) => period.unattributed_cost_usd += cost,
                None => period.unattributed_unpriced_tokens += tokens,
            }
        }
    }
    let spend = &mut report.spend;
    for (periods, unattributed) in [&mut spend.by_day, &mut spend.by_week, &mut spend.by_month]
        .into_iter()
        .zip(by)
    {
        let mut merged: BTreeMap<String, Period> = periods
            .drain(..)
            .map(|period| (period.period.clone(), period))
            .collect();
        for (key, extra) in unattributed {
            let period = merged.entry(key).or_insert_with(|| Period {
                period: extra.period.clone(),
                ..Period::default()
            });
            period.unattributed_tokens = extra.unattributed_tokens;
            period.unattributed_requests = extra.unattributed_requests;
            period.unattributed_cost_usd = extra.unattributed_cost_usd;
            period.unattributed_unpriced_tokens = extra.unattributed_unpriced_tokens;
        }
        *periods = merged.into_values().collect();
    }
    let mut events = tied_events(runs, prices);
    events.extend(unattributed.all.iter().filter_map(|span| {
        Some(Event {
            first: span.first?,
            last: span.last?,
            provider: provider_name(&span.provider),
            agent: unattributed.agent,
            tokens: span.totals.tokens(),
            requests: span.totals.requests,
            cost: prices.cost(&span.priced()),
            unattributed: true,
        })
    }));
    spend.windows = all_windows(events, Range::of(filter), filter.now);
    // Without an import no agent log was read: the windows hold the ledger's requests only.
    spend.windows_count = if imported {
        Counted::All
    } else {
        Counted::Tied
    };
    let all = share.tied_tokens + share.unattributed_tokens;
    share.tied_share = (imported && all > 0).then(|| share.tied_tokens as f64 / all as f64);
    let all_cost = share.tied_cost_usd + share.unattributed_cost_usd;
    share.tied_cost_share = (imported && all_cost > 0.0).then(|| share.tied_cost_usd / all_cost);
    report.attribution = Some(share);
}

/// This machine's unattributed spend, for [`add_unattributed`].
#[derive(Clone, Copy, Debug)]
pub struct UnattributedSpans<'s> {
    /// The spans of the report's time (`--since`/`--until`).
    pub filtered: &'s [Span],
    /// All of them: a window is opened by whichever request came first.
    pub all: &'s [Span],
    /// The agent that runs the report: this machine's requests that no run claims are
    /// taken to be its account's.
    pub agent: &'s str,
}

/// What one (task type, model, agent) spent.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FleetRow {
    #[serde(rename = "type")]
    pub task_type: String,
    pub model: String,
    pub agent: String,
    pub totals: Totals,
    #[serde(serialize_with = "money::serialize")]
    pub cost_usd: f64,
    pub unpriced_tokens: u64,
}

/// How many runs of a task type by one agent ended one way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FleetRuns {
    #[serde(rename = "type")]
    pub task_type: String,
    pub agent: String,
    pub outcome: String,
    pub runs: u64,
}

fn fleet(
    runs: &[&Run],
    tasks: &BTreeMap<TaskId, TaskFacts>,
    prices: &PriceTable,
) -> (Vec<FleetRow>, Vec<FleetRuns>) {
    let mut rows: BTreeMap<(String, String, String), FleetRow> = BTreeMap::new();
    let mut counts: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for run in runs {
        let kind = task_type(run, tasks)
            .cloned()
            .unwrap_or_else(|| "-".to_owned());
        let agent = run.meta.agent.clone();
        let outcome = run
            .meta
            .outcome
            .map_or(IN_FLIGHT, Outcome::as_str)
            .to_owned();
        *counts
            .entry((kind.clone(), agent.clone(), outcome))
            .or_default() += 1;
        for record in &run.records {
            let row = rows
                .entry((kind.clone(), record.model.clone(), agent.clone()))
                .or_insert_with(|| FleetRow {
                    task_type: kind.clone(),
                    model: record.model.clone(),
                    agent: agent.clone(),
                    ..FleetRow::default()
                });
            row.totals.add(record);
            match prices.cost(record) {
                Some(cost) => row.cost_usd += cost,
                None => row.unpriced_tokens += record.total_tokens(),
            }
        }
    }
    let runs = counts
        .into_iter()
        .map(|((task_type, agent, outcome), runs)| FleetRuns {
            task_type,
            agent,
            outcome,
            runs,
        })
        .collect();
    (rows.into_values().collect(), runs)
}

/// Spend in one period.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Period {
    /// `2026-11-02`, `2026-W45` or `2026-11`.
    pub period: String,
    pub tokens: u64,
    pub requests: u64,
    /// Dollars of the priced tokens; `unpriced_tokens` have no known cost.
    #[serde(serialize_with = "money::serialize")]
    pub cost_usd: f64,
    pub unpriced_tokens: u64,
    /// This machine's spend in the period that no run claims (the unattributed store,
    /// every project's), beside the tied spend above.
    pub unattributed_tokens: u64,
    pub unattributed_requests: u64,
    #[serde(serialize_with = "money::serialize")]
    pub unattributed_cost_usd: f64,
    pub unattributed_unpriced_tokens: u64,
}

/// One 5-hour window, the unit agent subscriptions bill usage limits in, as ccusage's
/// `blocks` cuts them: it opens at the hour of a request more than 5 hours after the last
/// window opened or after the request before it, and lasts 5 hours.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Window {
    /// Whose subscription meters it: `claude`, `codex`, `gemini` (each meters its own
    /// windows), or `other`.
    pub provider: &'static str,
    /// Whose account: the agent whose runs spent it (each agent is taken to have its
    /// own subscription), with the requests no run claims on this machine counted as
    /// the agent's that runs the report.
    pub agent: String,
    pub start: Timestamp,
    pub end: Timestamp,
    /// All its requests: the tied and, when the unattributed store was read, those no
    /// run claims (see [`Spend::windows_count`]).
    pub tokens: u64,
    pub requests: u64,
    /// Of `tokens`, those of the ledger's runs and those no run claims.
    pub tied_tokens: u64,
    pub unattributed_tokens: u64,
    #[serde(serialize_with = "money::serialize")]
    pub cost_usd: f64,
    pub unpriced_tokens: u64,
    /// The report's time falls inside the window.
    pub active: bool,
    /// The time of its last request.
    pub last_request_at: Option<Timestamp>,
    /// For the active window: tokens per hour since its first request (over 15 minutes
    /// at least: a burst says nothing of an hour), and, while requests are still coming
    /// (the last one less than 15 minutes ago), what the window ends at if that rate goes
    /// on. The projected dollars are those of the priced part; with unpriced tokens,
    /// `projected_unpriced_tokens` grows at the same rate, and a wholly unpriced window
    /// projects no dollars (unknown, never $0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_per_hour: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projected_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(serialize_with = "money::serialize_option")]
    pub projected_cost_usd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projected_unpriced_tokens: Option<u64>,
}

/// Spend by day, ISO week and month (UTC), and by 5-hour window.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Spend {
    pub by_day: Vec<Period>,
    pub by_week: Vec<Period>,
    pub by_month: Vec<Period>,
    pub windows: Vec<Window>,
    /// What the windows count: the ledger's requests only (`tied`), or also this
    /// machine's unattributed ones (`all`), as the subscription meters them.
    pub windows_count: Counted,
}

/// Which requests a figure counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Counted {
    /// The ledger's: requests tied to a task's run.
    #[default]
    Tied,
    /// The ledger's and this machine's unattributed requests.
    All,
}

/// The length of a billing window.
const WINDOW_HOURS: i64 = 5;

fn add_to(period: &mut Period, record: &UsageRecord, prices: &PriceTable) {
    period.tokens += record.total_tokens();
    period.requests += u64::from(record.requests);
    match prices.cost(record) {
        Some(cost) => period.cost_usd += cost,
        None => period.unpriced_tokens += record.total_tokens(),
    }
}

/// Each record of `runs` with its time (its run's start where it has none), oldest first.
fn timed_records<'a>(runs: impl IntoIterator<Item = &'a Run>) -> Vec<(Timestamp, &'a UsageRecord)> {
    let mut records: Vec<(Timestamp, &UsageRecord)> = runs
        .into_iter()
        .flat_map(|run| {
            run.records
                .iter()
                .map(|record| (record.at.unwrap_or(run.meta.started_at), record))
        })
        .collect();
    records.sort_by_key(|(at, _)| *at);
    records
}

/// Computes spend by day, week and month from the records of `selected`, and the 5-hour
/// windows from those of `all` runs, per provider: a window is the account's, opened by
/// whichever of its requests came first, so a filter only picks which windows (those
/// overlapping `range`) are shown. `now` marks each provider's active window.
fn spend(
    selected: &[&Run],
    all: &[Run],
    prices: &PriceTable,
    range: Range,
    now: Option<Timestamp>,
) -> Spend {
    let records = timed_records(selected.iter().copied());
    let mut by: [BTreeMap<String, Period>; 3] = Default::default();
    for (at, record) in &records {
        let day = day_of(*at);
        let keys = [day.clone(), week_of(*at), month_of(*at)];
        for (map, key) in by.iter_mut().zip(keys) {
            let period = map.entry(key.clone()).or_insert_with(|| Period {
                period: key,
                ..Period::default()
            });
            add_to(period, record, prices);
        }
    }
    let [by_day, by_week, by_month] = by.map(|map| map.into_values().collect());
    let windows = all_windows(tied_events(all, prices), range, now);
    Spend {
        by_day,
        by_week,
        by_month,
        windows,
        windows_count: Counted::Tied,
    }
}

/// Returns whose subscription meters `record`: the agent CLI that logged it, else (a
/// record made by hand or by `gitprio run`) the maker of its model.
pub fn provider(record: &UsageRecord) -> &'static str {
    match record.source.as_str() {
        "claude" => return "claude",
        "codex" => return "codex",
        "gemini" => return "gemini",
        _ => {}
    }
    let model = record.model.to_ascii_lowercase();
    let model = model.rsplit('/').next().unwrap_or(&model);
    if model.starts_with("claude") {
        "claude"
    } else if model.starts_with("gemini") {
        "gemini"
    } else if ["gpt", "codex", "o1", "o3", "o4"]
        .iter()
        .any(|prefix| model.starts_with(prefix))
    {
        "codex"
    } else {
        "other"
    }
}

/// Requests that count in a window: one request, or an unattributed span of them.
#[derive(Clone, Copy, Debug)]
struct Event<'a> {
    first: Timestamp,
    last: Timestamp,
    provider: &'static str,
    agent: &'a str,
    tokens: u64,
    requests: u64,
    cost: Option<f64>,
    unattributed: bool,
}

/// Each request of `runs` as an event (at its run's start where it has no time).
fn tied_events<'a>(runs: &'a [Run], prices: &PriceTable) -> Vec<Event<'a>> {
    runs.iter()
        .flat_map(|run| {
            run.records
                .iter()
                .map(move |record| (record.at.unwrap_or(run.meta.started_at), record, run))
        })
        .map(|(at, record, run)| Event {
            first: at,
            last: at,
            provider: provider(record),
            agent: &run.meta.agent,
            tokens: record.total_tokens(),
            requests: u64::from(record.requests),
            cost: prices.cost(record),
            unattributed: false,
        })
        .collect()
}

/// The windows of `events` per provider and agent (each subscription meters its own),
/// those overlapping `range`, oldest first; `now` marks each one's active window.
fn all_windows(mut events: Vec<Event<'_>>, range: Range, now: Option<Timestamp>) -> Vec<Window> {
    events.sort_by_key(|event| (event.first, event.last));
    let mut by_account: BTreeMap<(&'static str, &str), Vec<Event<'_>>> = BTreeMap::new();
    for event in events {
        by_account
            .entry((event.provider, event.agent))
            .or_default()
            .push(event);
    }
    let mut windows: Vec<Window> = by_account
        .into_iter()
        .flat_map(|((provider, agent), events)| {
            let mut windows = windows(&events, now);
            for window in &mut windows {
                window.provider = provider;
                agent.clone_into(&mut window.agent);
            }
            windows
        })
        .filter(|window| range.overlaps(window.start, window.end))
        .collect();
    windows.sort_by(|left, right| {
        (left.start, left.provider, &left.agent).cmp(&(right.start, right.provider, &right.agent))
    });
    windows
}

/// The name [`provider`] gives, from a stored one.
fn provider_name(name: &str) -> &'static str {
    match name {
        "claude" => "claude",
        "codex" => "codex",
        "gemini" => "gemini",
        _ => "other",
    }
}

/// Cuts `events` (oldest first) into 5-hour windows as ccusage's `blocks` does: a request
/// more than 5 hours after its window's start, or after the request before it, opens a
/// new one at its hour. (An unattributed span is one hour's requests: a window that ends
/// on that hour's first instant takes the whole span.) `now` marks the active one, with
/// its burn rate and projection.
fn windows(events: &[Event<'_>], now: Option<Timestamp>) -> Vec<Window> {
    let span = jiff::SignedDuration::from_hours(WINDOW_HOURS);
    let mut windows: Vec<Window> = Vec::new();
    // The window's first request, and the last request so far.
    let mut first = None;
    let mut last: Option<Timestamp> = None;
    for event in events {
        let open = windows.last().is_some_and(|window| {
            event.first.duration_since(window.start) <= span
                && last.is_none_or(|last| event.first.duration_since(last) <= span)
        });
        if !open {
            let hour = event
                .first
                .to_zoned(jiff::tz::TimeZone::UTC)
                .round(
                    jiff::ZonedRound::new()
                        .smallest(jiff::Unit::Hour)
                        .mode(jiff::RoundMode::Trunc),
                )
                .map_or(event.first, |zoned| zoned.timestamp());
            windows.push(Window {
                start: hour,
                // A request dated within five hours of the end of time (a corrupt log
                // line) closes its window there rather than overflowing.
                end: hour.checked_add(span).unwrap_or(Timestamp::MAX),
                ..Window::default()
            });
            first = Some(event.first);
        }
        last = Some(last.map_or(event.last, |last| last.max(event.last)));
        let window = windows.last_mut().expect("a window was opened");
        window.tokens += event.tokens;
        window.requests += event.requests;
        if event.unattributed {
            window.unattributed_tokens += event.tokens;
        } else {
            window.tied_tokens += event.tokens;
        }
        match event.cost {
            Some(cost) => window.cost_usd += cost,
            None => window.unpriced_tokens += event.tokens,
        }
    }
    if let Some(window) = windows.last_mut() {
        window.last_request_at = last;
    }
    if let (Some(now), Some(window), Some(first), Some(last)) =
        (now, windows.last_mut(), first, last)
        && now >= window.start
        && now < window.end
    {
        window.active = true;
        project(window, now, first, last);
    }
    windows
}

/// The shortest span a burn rate is taken over, and how long after its last request a
/// window counts as still spending.
const RATE_SPAN: jiff::SignedDuration = jiff::SignedDuration::from_mins(15);

/// Sets the active `window`'s burn rate since its `first` request (over [`RATE_SPAN`] at
/// least: 90 seconds of requests are no hourly rate), and, while it is spending (its
/// `last` request within [`RATE_SPAN`] of `now`), what it ends at if that rate goes on.
#[expect(clippy::cast_precision_loss, reason = "rates for display")]
fn project(window: &mut Window, now: Timestamp, first: Timestamp, last: Timestamp) {
    // A rate over less than a minute says nothing.
    if now.duration_since(first).as_secs() < 60 {
        return;
    }
    let elapsed = now.duration_since(first).max(RATE_SPAN).as_secs_f64();
    let rate = window.tokens as f64 / (elapsed / 3600.0);
    window.tokens_per_hour = Some(rate);
    if now.duration_since(last) > RATE_SPAN || window.tokens == 0 {
        return;
    }
    let remaining = window.end.duration_since(now).as_secs_f64() / 3600.0;
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a projection"
    )]
    let projected = window.tokens + (rate * remaining) as u64;
    window.projected_tokens = Some(projected);
    let growth = projected as f64 / window.tokens as f64;
    // The priced dollars and the unpriced tokens grown at the same rate; no priced
    // token, no dollars: unknown, never $0.
    window.projected_cost_usd =
        (window.unpriced_tokens < window.tokens).then_some(window.cost_usd * growth);
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a projection"
    )]
    let unpriced = (window.unpriced_tokens as f64 * growth) as u64;
    window.projected_unpriced_tokens = (window.unpriced_tokens > 0).then_some(unpriced);
}

/// The report's time range: each request counts in it by its own time, each completion
/// by the time its run ended.
#[derive(Clone, Copy, Debug, Default)]
struct Range {
    since: Option<Timestamp>,
    until: Option<Timestamp>,
}

impl Range {
    fn of(filter: &RunFilter) -> Range {
        Range {
            since: filter.since,
            until: filter.until,
        }
    }

    /// Whether the report is over a period (`--since`/`--until`), not all time.
    fn bounded(self) -> bool {
        self.since.is_some() || self.until.is_some()
    }

    fn is_all(self) -> bool {
        self.since.is_none() && self.until.is_none()
    }

    fn contains(self, at: Timestamp) -> bool {
        self.since.is_none_or(|since| at >= since) && self.until.is_none_or(|until| at < until)
    }

    /// Whether the span from `start` to `end` (excluded) shares a moment with the range.
    fn overlaps(self, start: Timestamp, end: Timestamp) -> bool {
        self.since.is_none_or(|since| end > since) && self.until.is_none_or(|until| start < until)
    }

    /// Whether `run` completed its task within the range (its completion, and the task's
    /// value, are figures of the period it ended in).
    fn completes(self, run: &Run) -> bool {
        run.meta.outcome == Some(Outcome::Completed)
            && self.contains(run.meta.ended_at.unwrap_or(run.meta.started_at))
    }
}

/// Computes the report for `runs` that pass `filter`.
pub fn report(
    runs: &[Run],
    tasks: &BTreeMap<TaskId, TaskFacts>,
    prices: &PriceTable,
    filter: &RunFilter,
    group_by: GroupBy,
) -> Report {
    let range = Range::of(filter);
    // Each token counts in the period of its own request, not of its run's start, and a
    // run belongs to the period when it spent in it or completed in it (its value is
    // the period's); a run still going with nothing recorded, when it started in it.
    let owned: Vec<Run> =
        runs.iter()
            .filter(|run| {
                let meta = &run.meta;
                filter.task.as_ref().is_none_or(|task| &meta.task == task)
                    && filter.feature.as_ref().is_none_or(|feature| {
                        facts_feature(&meta.task, tasks, run) == Some(feature)
                    })
            })
            .filter_map(|run| {
                if range.is_all() {
                    return Some(run.clone());
                }
                let started = run.meta.started_at;
                let records: Vec<UsageRecord> = run
                    .records
                    .iter()
                    .filter(|record| range.contains(record.at.unwrap_or(started)))
                    .cloned()
                    .collect();
                let idle_in_flight =
                    run.records.is_empty() && run.meta.outcome.is_none() && range.contains(started);
                let belongs = !records.is_empty() || range.completes(run) || idle_in_flight;
                belongs.then(|| Run {
                    meta: run.meta.clone(),
                    records,
                })
            })
            .collect();
    let selected: Vec<&Run> = owned.iter().collect();
    let lines: Vec<RunLine> = selected
        .iter()
        .map(|run| run_line(run, tasks, prices))
        .collect();
    let unpriced_models = prices.unpriced(selected.iter().flat_map(|run| &run.records));
    let counted: Vec<(&Run, bool)> = selected
        .iter()
        .map(|run| (*run, range.completes(run)))
        .collect();
    let summary = summarize(&counted, tasks, prices);
    let groups = group(&selected, tasks, prices, group_by, range);
    let mut waste = waste(&selected, &lines, tasks, prices, range);
    manager_signals(&mut waste, &selected, &lines, tasks, prices, range);
    let spend = spend(&selected, runs, prices, range, filter.now);
    let (fleet, fleet_runs) = fleet(&selected, tasks, prices);
    Report {
        price_snapshot: super::PRICE_SNAPSHOT,
        price_date: super::PRICE_SNAPSHOT_DATE,
        price_file: None,
        repository_prices: None,
        group_by,
        summary,
        groups,
        runs: lines,
        waste,
        unpriced_models,
        spend,
        fleet,
        fleet_runs,
        attribution: None,
        pull_requests: false,
        period: range.bounded(),
    }
}

fn facts_feature<'a>(
    task: &TaskId,
    tasks: &'a BTreeMap<TaskId, TaskFacts>,
    run: &'a Run,
) -> Option<&'a String> {
    tasks
        .get(task)
        .and_then(|facts| facts.feature.as_ref())
        .or(run.meta.feature.as_ref())
}

fn task_type<'a>(run: &'a Run, tasks: &'a BTreeMap<TaskId, TaskFacts>) -> Option<&'a String> {
    tasks
        .get(&run.meta.task)
        .and_then(|facts| facts.task_type.as_ref())
        .or(run.meta.task_type.as_ref())
}

fn dominant_model(run: &Run) -> String {
    run.totals_by_model()
        .into_iter()
        .max_by_key(|(model, totals)| (totals.tokens(), std::cmp::Reverse(*model)))
        .map_or_else(|| "-".to_owned(), |(model, _)| model.to_owned())
}

fn run_line(run: &Run, tasks: &BTreeMap<TaskId, TaskFacts>, prices: &PriceTable) -> RunLine {
    let totals = run.totals();
    let cost = run.cost(prices);
    let meta = &run.meta;
    RunLine {
        task: meta.task.clone(),
        run: meta.run.clone(),
        agent: meta.agent.clone(),
        task_type: task_type(run, tasks).cloned(),
        feature: facts_feature(&meta.task, tasks, run).cloned(),
        model: dominant_model(run),
        started_at: meta.started_at,
        ended_at: meta.ended_at,
        outcome: meta.outcome.map_or(IN_FLIGHT, Outcome::as_str).to_owned(),
        tokens: totals.tokens(),
        cost_usd: cost.usd,
        unpriced_tokens: cost.unpriced_tokens,
        requests: totals.requests,
        cache_hit_rate: totals.cache_hit_rate(),
        budget_tokens: meta.budget_tokens,
        over_budget: meta
            .budget_tokens
            .is_some_and(|budget| totals.tokens() > budget),
        context_tokens: meta.context_tokens,
        pull_request: None,
    }
}

/// Sums `runs`, each with whether its completion counts here (see [`Range::completes`]).
/// Ratios of tokens and dollars (value per token, dollars per task) are over finished
/// runs: a run still going has bought nothing yet, and its tokens are in `in_flight_tokens`.
#[expect(clippy::cast_precision_loss, reason = "ratios for display")]
fn summarize(
    runs: &[(&Run, bool)],
    tasks: &BTreeMap<TaskId, TaskFacts>,
    prices: &PriceTable,
) -> Summary {
    let mut totals = Totals::default();
    let mut cost = Cost::default();
    let mut in_flight = Cost::default();
    let mut in_flight_runs = 0;
    let mut in_flight_tokens = 0;
    let mut completed: BTreeMap<&TaskId, u32> = BTreeMap::new();
    for (run, completes) in runs {
        let run_totals = run.totals();
        totals.merge(&run_totals);
        let run_cost = run.cost(prices);
        cost.add(run_cost);
        if run.meta.outcome.is_none() {
            in_flight_runs += 1;
            in_flight_tokens += run_totals.tokens();
            in_flight.add(run_cost);
        }
        if *completes {
            let value = tasks
                .get(&run.meta.task)
                .map_or(run.meta.value, |facts| facts.value);
            completed.insert(&run.meta.task, value);
        }
    }
    let tokens = totals.tokens();
    let finished_tokens = tokens - in_flight_tokens;
    let finished_usd = cost.usd - in_flight.usd;
    let value_points: u64 = completed.values().map(|value| u64::from(*value)).sum();
    let per_million =
        |count: f64| (finished_tokens > 0).then(|| count / finished_tokens as f64 * 1_000_000.0);
    Summary {
        runs: runs.len(),
        completed_tasks: completed.len(),
        value_points,
        tokens,
        totals,
        cost_usd: cost.usd,
        unpriced_tokens: cost.unpriced_tokens,
        in_flight_runs,
        in_flight_tokens,
        in_flight_cost_usd: in_flight.usd,
        in_flight_unpriced_tokens: in_flight.unpriced_tokens,
        value_per_million_tokens: per_million(value_points as f64),
        tasks_per_million_tokens: per_million(completed.len() as f64),
        // No finished spend in the period (its tasks spent before it): undefined, not $0.
        usd_per_completed_task: (!completed.is_empty() && finished_tokens > 0)
            .then(|| finished_usd / completed.len() as f64),
        usd_per_value_point: (value_points > 0 && finished_tokens > 0)
            .then(|| finished_usd / value_points as f64),
        cache_hit_rate: totals.cache_hit_rate(),
    }
}

fn group(
    runs: &[&Run],
    tasks: &BTreeMap<TaskId, TaskFacts>,
    prices: &PriceTable,
    group_by: GroupBy,
    range: Range,
) -> Vec<Group> {
    let mut groups: BTreeMap<String, Vec<(Run, bool)>> = BTreeMap::new();
    for run in runs {
        let completes = range.completes(run);
        if group_by == GroupBy::Model {
            // A run counts under each model it used, with that model's tokens; its
            // completion under its main model only.
            let main = dominant_model(run);
            for model in run.totals_by_model().keys() {
                let mut part = (*run).clone();
                part.records.retain(|record| record.model == *model);
                groups
                    .entry((*model).to_owned())
                    .or_default()
                    .push((part, completes && *model == main));
            }
            continue;
        }
        if let Some(period_of) = group_by.period() {
            // Tokens go to the period of their request; the completion to the one it ended in.
            let ended =
                completes.then(|| period_of(run.meta.ended_at.unwrap_or(run.meta.started_at)));
            let mut days: BTreeMap<String, Vec<UsageRecord>> = BTreeMap::new();
            for record in &run.records {
                days.entry(period_of(record.at.unwrap_or(run.meta.started_at)))
                    .or_default()
                    .push(record.clone());
            }
            if let Some(ended) = &ended {
                days.entry(ended.clone()).or_default();
            }
            for (day, records) in days {
                let completes_here = ended.as_ref() == Some(&day);
                let part = Run {
                    meta: run.meta.clone(),
                    records,
                };
                groups.entry(day).or_default().push((part, completes_here));
            }
            continue;
        }
        let key = match group_by {
            GroupBy::Run => format!("{} {}", run.meta.task, run.meta.run),
            GroupBy::Agent => run.meta.agent.clone(),
            GroupBy::Type => task_type(run, tasks)
                .cloned()
                .unwrap_or_else(|| "-".to_owned()),
            GroupBy::Feature => facts_feature(&run.meta.task, tasks, run)
                .cloned()
                .unwrap_or_else(|| "-".to_owned()),
            GroupBy::Model | GroupBy::Day | GroupBy::Week | GroupBy::Month => {
                unreachable!("handled above")
            }
        };
        groups
            .entry(key)
            .or_default()
            .push(((*run).clone(), completes));
    }
    groups
        .into_iter()
        .map(|(key, runs)| {
            let borrowed: Vec<(&Run, bool)> = runs
                .iter()
                .map(|(run, completes)| (run, *completes))
                .collect();
            Group {
                key,
                summary: summarize(&borrowed, tasks, prices),
            }
        })
        .collect()
}

/// Sets the unmerged spend: completed runs whose task is not `done` on the queue's branch,
/// or whose pull request was closed unmerged.
fn unmerged(waste: &mut Waste, lines: &[RunLine], tasks: &BTreeMap<TaskId, TaskFacts>) {
    let closed = |line: &RunLine| {
        line.pull_request
            .as_ref()
            .is_some_and(|pull| pull.state == PullRequestState::ClosedUnmerged)
    };
    waste.unmerged_runs = lines
        .iter()
        .filter(|line| {
            line.outcome == Outcome::Completed.as_str()
                && (closed(line)
                    || tasks
                        .get(&line.task)
                        .is_some_and(|facts| facts.status != Status::Done))
        })
        .cloned()
        .collect();
    let unmerged = spent(waste.unmerged_runs.iter());
    (
        waste.unmerged_tokens,
        waste.unmerged_cost_usd,
        waste.unmerged_unpriced_tokens,
    ) = (unmerged.0, unmerged.1.usd, unmerged.1.unpriced_tokens);
    let closed = spent(waste.unmerged_runs.iter().filter(|line| closed(line)));
    (
        waste.closed_unmerged_tokens,
        waste.closed_unmerged_cost_usd,
        waste.closed_unmerged_unpriced_tokens,
    ) = (closed.0, closed.1.usd, closed.1.unpriced_tokens);
}

/// Returns the tokens and the cost of `lines` together.
fn spent<'line>(lines: impl Iterator<Item = &'line RunLine>) -> (u64, Cost) {
    lines.fold((0, Cost::default()), |(tokens, mut cost), line| {
        cost.add(line.cost());
        (tokens + line.tokens, cost)
    })
}

/// Returns the pull request of `run` among its task branch's `pulls`: the first opened
/// during it, else the last opened before it (a retry pushes to the branch whose pull
/// request an earlier run opened, which stays open). A run lasts until `next_start`, its
/// task's next run; one that ended without completing its task lasts only until it ended:
/// a pull request opened after a failed run is not its (a completed run's is opened just
/// after it ends).
fn pull_request_of<'pulls>(
    run: &RunLine,
    next_start: Option<Timestamp>,
    pulls: &'pulls [PullRequestFacts],
) -> Option<&'pulls PullRequestFacts> {
    let mut by_time: Vec<&PullRequestFacts> = pulls.iter().collect();
    by_time.sort_by_key(|pull| (pull.created_at, pull.number));
    let gave_up = run.outcome != "completed" && run.outcome != IN_FLIGHT;
    let end = match (gave_up.then_some(run.ended_at).flatten(), next_start) {
        (Some(ended), Some(next)) => Some(ended.min(next)),
        (ended, next) => ended.or(next),
    };
    by_time
        .iter()
        .find(|pull| {
            pull.created_at.is_some_and(|at| {
                at >= run.started_at
                    && end.is_none_or(|end| if gave_up { at <= end } else { at < end })
            })
        })
        .or_else(|| {
            by_time
                .iter()
                .rev()
                .find(|pull| pull.created_at.is_none_or(|at| at < run.started_at))
        })
        .copied()
}

/// Adds GitHub's view to `report`: each run's pull request (by task, from the pull
/// requests of the task's branch) and, as unmerged spend, completed runs whose pull request
/// was closed unmerged.
pub fn pull_request_signals(
    report: &mut Report,
    pulls: &BTreeMap<TaskId, Vec<PullRequestFacts>>,
    tasks: &BTreeMap<TaskId, TaskFacts>,
) {
    let mut starts: BTreeMap<TaskId, Vec<Timestamp>> = BTreeMap::new();
    for line in &report.runs {
        starts
            .entry(line.task.clone())
            .or_default()
            .push(line.started_at);
    }
    let next_start = |line: &RunLine| {
        starts
            .get(&line.task)
            .and_then(|starts| starts.iter().filter(|at| **at > line.started_at).min())
            .copied()
    };
    let attach = |lines: &mut [RunLine]| {
        for line in lines {
            line.pull_request = pulls
                .get(&line.task)
                .and_then(|pulls| pull_request_of(line, next_start(line), pulls))
                .cloned();
        }
    };
    attach(&mut report.runs);
    attach(&mut report.waste.unfinished_runs);
    attach(&mut report.waste.in_flight_runs);
    attach(&mut report.waste.over_budget);
    let runs = report.runs.clone();
    unmerged(&mut report.waste, &runs, tasks);
    report.pull_requests = true;
}

/// Adds what a manager acts on: unmerged spend, the cost tail by type, model overspend.
fn manager_signals(
    waste: &mut Waste,
    runs: &[&Run],
    lines: &[RunLine],
    tasks: &BTreeMap<TaskId, TaskFacts>,
    prices: &PriceTable,
    range: Range,
) {
    unmerged(waste, lines, tasks);
    let mut per_task: BTreeMap<&TaskId, (String, Cost, bool)> = BTreeMap::new();
    for run in runs {
        let kind = task_type(run, tasks)
            .cloned()
            .unwrap_or_else(|| "-".to_owned());
        let entry = per_task
            .entry(&run.meta.task)
            .or_insert((kind, Cost::default(), false));
        entry.1.add(run.cost(prices));
        entry.2 |= range.completes(run);
        if let Some(routed) = &run.meta.routed_model
            && run.records.iter().any(|record| &record.model != routed)
            && prices.price(routed).is_none()
        {
            let cost = run.cost(prices);
            waste.overspend_unknown.push(UnknownOverspend {
                task: run.meta.task.clone(),
                run: run.meta.run.clone(),
                routed_model: routed.clone(),
                cost_usd: cost.usd,
                unpriced_tokens: cost.unpriced_tokens,
            });
        } else if let Some(routed) = &run.meta.routed_model
            && run.records.iter().any(|record| &record.model != routed)
        {
            // The priced requests only: an unpriced one has nothing to compare.
            let (cost, routed_cost) = run
                .records
                .iter()
                .filter_map(|record| {
                    let routed_cost = prices.cost(&UsageRecord {
                        model: routed.clone(),
                        ..record.clone()
                    })?;
                    Some((prices.cost(record)?, routed_cost))
                })
                .fold((0.0, 0.0), |(cost, routed), (one, one_routed)| {
                    (cost + one, routed + one_routed)
                });
            let unpriced_tokens = run
                .records
                .iter()
                .filter(|record| prices.cost(record).is_none())
                .map(UsageRecord::total_tokens)
                .sum();
            if cost > routed_cost {
                waste.overspend_usd += cost - routed_cost;
                waste.overspend_unpriced_tokens += unpriced_tokens;
                waste.overspend.push(Overspend {
                    task: run.meta.task.clone(),
                    run: run.meta.run.clone(),
                    routed_model: routed.clone(),
                    cost_usd: cost,
                    routed_cost_usd: routed_cost,
                    overspend_usd: cost - routed_cost,
                    unpriced_tokens,
                });
            }
        }
    }
    let mut by_type: BTreeMap<String, (Vec<f64>, u64)> = BTreeMap::new();
    for (kind, cost, completed) in per_task.into_values() {
        let spent = cost.usd > 0.0 || cost.unpriced_tokens > 0;
        // As for tokens per task: within a period, a task that spent before it is left out.
        if completed && (spent || !range.bounded()) {
            let entry = by_type.entry(kind).or_default();
            entry.0.push(cost.usd);
            entry.1 += cost.unpriced_tokens;
        }
    }
    waste.cost_tail_by_type = by_type
        .into_iter()
        .map(|(kind, (mut costs, unpriced_tokens))| {
            costs.sort_by(f64::total_cmp);
            let rank = |percent: usize| costs[(percent * costs.len()).div_ceil(100).max(1) - 1];
            let tail = CostTail {
                count: costs.len(),
                unpriced_tokens,
                median_usd: rank(50),
                p90_usd: rank(90),
                p99_usd: rank(99),
                max_usd: costs[costs.len() - 1],
            };
            (kind, tail)
        })
        .collect();
}

fn percentile(sorted: &[u64], percent: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    // Nearest rank.
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// Per task: runs, tokens, cost, whether one run completed it.
type TaskSpend<'a> = BTreeMap<&'a TaskId, (usize, u64, Cost, bool)>;

/// The tokens the completed tasks of `by_task` took, with the five costliest.
fn completed_distribution(by_task: &TaskSpend<'_>, bounded: bool) -> Distribution {
    let mut completed: Vec<(TaskId, u64, Cost)> = by_task
        .iter()
        // Within a period, a task that completed in it but spent before it has no tokens
        // per task here: 0 would read as free work.
        .filter(|(_, entry)| entry.3 && !(bounded && entry.1 == 0))
        .map(|(task, entry)| ((*task).clone(), entry.1, entry.2))
        .collect();
    let mut sorted: Vec<u64> = completed.iter().map(|(_, tokens, _)| *tokens).collect();
    sorted.sort_unstable();
    completed.sort_by(|left, right| right.1.cmp(&left.1).then_with(|| left.0.cmp(&right.0)));
    Distribution {
        count: sorted.len(),
        median: percentile(&sorted, 50),
        p90: percentile(&sorted, 90),
        p99: percentile(&sorted, 99),
        max: sorted.last().copied().unwrap_or(0),
        top: completed.into_iter().take(5).collect(),
    }
}

/// Each model's share of the tokens of each task type and week.
fn model_mix(mix: BTreeMap<(String, String), BTreeMap<String, u64>>) -> Vec<ModelMix> {
    #[expect(clippy::cast_precision_loss, reason = "shares for display")]
    mix.into_iter()
        .flat_map(|((task_type, week), models)| {
            let all: u64 = models.values().sum();
            models.into_iter().map(move |(model, tokens)| ModelMix {
                task_type: task_type.clone(),
                week: week.clone(),
                model,
                tokens,
                share: if all == 0 {
                    0.0
                } else {
                    tokens as f64 / all as f64
                },
            })
        })
        .collect()
}

fn waste(
    runs: &[&Run],
    lines: &[RunLine],
    tasks: &BTreeMap<TaskId, TaskFacts>,
    prices: &PriceTable,
    range: Range,
) -> Waste {
    let mut by_task: TaskSpend<'_> = BTreeMap::new();
    for run in runs {
        let entry = by_task
            .entry(&run.meta.task)
            .or_insert((0, 0, Cost::default(), false));
        entry.0 += 1;
        entry.1 += run.totals().tokens();
        entry.2.add(run.cost(prices));
        entry.3 |= range.completes(run);
    }
    let tokens_per_completed_task = completed_distribution(&by_task, range.bounded());
    let unfinished_runs: Vec<RunLine> = lines
        .iter()
        .filter(|line| line.outcome != "completed" && line.outcome != IN_FLIGHT)
        .cloned()
        .collect();
    let in_flight_runs: Vec<RunLine> = lines
        .iter()
        .filter(|line| line.outcome == IN_FLIGHT)
        .cloned()
        .collect();
    let retried_tasks = by_task
        .iter()
        .filter(|(_, entry)| entry.0 > 1)
        .map(|(task, entry)| ((*task).clone(), entry.0, entry.1))
        .collect();
    let mut by_agent: BTreeMap<String, Totals> = BTreeMap::new();
    let mut by_model: BTreeMap<String, Totals> = BTreeMap::new();
    let mut mix: BTreeMap<(String, String), BTreeMap<String, u64>> = BTreeMap::new();
    let mut context: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for run in runs {
        by_agent
            .entry(run.meta.agent.clone())
            .or_default()
            .merge(&run.totals());
        let kind = task_type(run, tasks)
            .cloned()
            .unwrap_or_else(|| "-".to_owned());
        let date = run.meta.started_at.to_zoned(jiff::tz::TimeZone::UTC).date();
        for (model, totals) in run.totals_by_model() {
            by_model.entry(model.to_owned()).or_default().merge(&totals);
        }
        for record in &run.records {
            let week = week_of(record.at.unwrap_or(run.meta.started_at));
            *mix.entry((kind.clone(), week))
                .or_default()
                .entry(record.model.clone())
                .or_default() += record.total_tokens();
        }
        if let Some(size) = run.meta.context_tokens {
            context.entry(date.to_string()).or_default().push(size);
        }
    }
    let model_mix = model_mix(mix);
    let (unfinished_tokens, unfinished_cost) = spent(unfinished_runs.iter());
    let (in_flight_tokens, in_flight_cost) = spent(in_flight_runs.iter());
    Waste {
        tokens_per_completed_task,
        unfinished_tokens,
        unfinished_cost_usd: unfinished_cost.usd,
        unfinished_unpriced_tokens: unfinished_cost.unpriced_tokens,
        unfinished_runs,
        in_flight_tokens,
        in_flight_cost_usd: in_flight_cost.usd,
        in_flight_unpriced_tokens: in_flight_cost.unpriced_tokens,
        in_flight_runs,
        retried_tasks,
        cache_hit_by_agent: by_agent
            .into_iter()
            .map(|(agent, totals)| (agent, totals.cache_hit_rate()))
            .collect(),
        cache_hit_by_model: by_model
            .into_iter()
            .map(|(model, totals)| (model, totals.cache_hit_rate()))
            .collect(),
        model_mix,
        context_tokens_by_day: context
            .into_iter()
            .map(|(day, sizes)| (day, sizes.iter().sum::<u64>() / sizes.len() as u64))
            .collect(),
        over_budget: lines
            .iter()
            .filter(|line| line.over_budget)
            .cloned()
            .collect(),
        ..Waste::default()
    }
}

/// The distinct agents of `runs`, for summaries.
pub fn agents(runs: &[Run]) -> BTreeSet<&str> {
    runs.iter().map(|run| run.meta.agent.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::{RunMeta, UsageRecord};

    fn run(
        task: &str,
        run: &str,
        agent: &str,
        outcome: Option<Outcome>,
        records: &[(&str, u64, u64, u64)],
    ) -> Run {
        Run {
            meta: RunMeta {
                task: TaskId::new(task).unwrap(),
                run: run.to_owned(),
                generation: 1,
                agent: agent.to_owned(),
                session: None,
                worktree: None,
                task_type: Some("bug".to_owned()),
                feature: Some("auth".to_owned()),
                value: 1,
                routed_model: None,
                budget_tokens: Some(5_000_000),
                context_tokens: Some(12_000),
                started_at: "2026-11-02T10:00:00Z".parse().unwrap(),
                ended_at: None,
                outcome,
            },
            records: records
                .iter()
                .enumerate()
                .map(|(index, (model, input, output, cache_read))| UsageRecord {
                    key: format!("{task}-{run}-{index}"),
                    source: "manual".to_owned(),
                    model: (*model).to_owned(),
                    input: *input,
                    output: *output,
                    cache_read: *cache_read,
                    requests: 1,
                    ..UsageRecord::default()
                })
                .collect(),
        }
    }

    fn facts(value: u32) -> TaskFacts {
        TaskFacts {
            value,
            task_type: Some("bug".to_owned()),
            feature: Some("auth".to_owned()),
            status: Status::Open,
        }
    }

    #[test]
    fn a_run_gets_the_pull_request_opened_during_it_and_a_closed_one_is_unmerged() {
        let pull = |number: u64, state: PullRequestState, at: &str| PullRequestFacts {
            number,
            url: format!("https://github.com/acme/shop/pull/{number}"),
            state,
            created_at: Some(at.parse().unwrap()),
        };
        let pulls = vec![
            pull(12, PullRequestState::Merged, "2026-11-03T10:00:00Z"),
            pull(11, PullRequestState::ClosedUnmerged, "2026-11-02T11:00:00Z"),
        ];
        let at = |text: &str| -> Timestamp { text.parse().unwrap() };
        let prices = PriceTable::new(BTreeMap::new());
        let line = |outcome: Outcome, started: &str, ended: &str| {
            let mut one = run("a", "1-x", "alice", Some(outcome), &[]);
            one.meta.started_at = at(started);
            one.meta.ended_at = Some(at(ended));
            run_line(&one, &BTreeMap::new(), &prices)
        };
        let of = |run: &RunLine, next: Option<&str>| {
            pull_request_of(run, next.map(at), &pulls).map(|pull| pull.number)
        };
        let first = line(
            Outcome::Completed,
            "2026-11-02T10:00:00Z",
            "2026-11-02T10:50:00Z",
        );
        // Opened just after the run completed, before the next run: its.
        assert_eq!(of(&first, Some("2026-11-03T09:00:00Z")), Some(11));
        let second = line(
            Outcome::Completed,
            "2026-11-03T09:00:00Z",
            "2026-11-03T09:50:00Z",
        );
        assert_eq!(of(&second, None), Some(12));
        // A retry after the last pull request was opened pushes to its branch: that one.
        let retry = line(
            Outcome::Completed,
            "2026-11-04T09:00:00Z",
            "2026-11-04T09:50:00Z",
        );
        assert_eq!(of(&retry, None), Some(12));
        // A failed run has no pull request opened after it ended (walk17 N3).
        let failed = line(
            Outcome::Failed,
            "2026-11-02T09:00:00Z",
            "2026-11-02T10:00:00Z",
        );
        assert_eq!(of(&failed, Some("2026-11-02T10:00:00Z")), None);
        assert_eq!(of(&failed, None), None);

        let mut late = run(
            "a",
            "2-y",
            "bob",
            Some(Outcome::Completed),
            &[("claude-sonnet-4-5", 0, 1_000_000, 0)],
        );
        late.meta.started_at = at("2026-11-03T09:00:00Z");
        let runs = vec![
            run(
                "a",
                "1-x",
                "alice",
                Some(Outcome::Completed),
                &[("claude-sonnet-4-5", 0, 2_000_000, 0)],
            ),
            late,
        ];
        let done = TaskFacts {
            status: Status::Done,
            ..facts(3)
        };
        let tasks: BTreeMap<TaskId, TaskFacts> = [(TaskId::new("a").unwrap(), done)].into();
        let prices = PriceTable::new(BTreeMap::new());
        let mut report = report(&runs, &tasks, &prices, &RunFilter::default(), GroupBy::Type);
        assert!(report.waste.unmerged_runs.is_empty());
        pull_request_signals(
            &mut report,
            &[(TaskId::new("a").unwrap(), pulls)].into(),
            &tasks,
        );
        let unmerged: Vec<&str> = report
            .waste
            .unmerged_runs
            .iter()
            .map(|line| line.run.as_str())
            .collect();
        assert_eq!(unmerged, ["1-x"]);
        assert_eq!(report.waste.closed_unmerged_tokens, 2_000_000);
        assert!((report.waste.closed_unmerged_cost_usd - 30.0).abs() < 1e-9);
        assert_eq!(
            report.runs[1].pull_request.as_ref().unwrap().state,
            PullRequestState::Merged
        );
    }

    #[test]
    fn value_per_token_counts_every_run_and_waste_is_named() {
        let runs = vec![
            run(
                "a",
                "1-x",
                "alice",
                Some(Outcome::Failed),
                &[("claude-sonnet-4-6", 1_000_000, 0, 0)],
            ),
            run(
                "a",
                "2-y",
                "bob",
                Some(Outcome::Completed),
                &[("claude-sonnet-4-6", 1_000_000, 0, 1_000_000)],
            ),
            run(
                "b",
                "1-z",
                "alice",
                Some(Outcome::Completed),
                &[("claude-sonnet-4-6", 0, 6_000_000, 0)],
            ),
            run(
                "c",
                "1-w",
                "carol",
                None,
                &[("mystery-model", 500_000, 0, 0)],
            ),
        ];
        let tasks: BTreeMap<TaskId, TaskFacts> = [
            (TaskId::new("a").unwrap(), facts(3)),
            (TaskId::new("b").unwrap(), facts(5)),
        ]
        .into_iter()
        .collect();
        let report = report(
            &runs,
            &tasks,
            &PriceTable::default(),
            &RunFilter::default(),
            GroupBy::Agent,
        );
        let summary = &report.summary;
        assert_eq!(summary.tokens, 9_500_000);
        assert_eq!(summary.completed_tasks, 2);
        assert_eq!(summary.value_points, 8);
        // Carol's run is in flight: its tokens are in the totals, not in the ratios.
        assert_eq!(summary.in_flight_tokens, 500_000);
        let value = summary.value_per_million_tokens.unwrap();
        assert!((value - 8.0 / 9.0).abs() < 1e-9, "{value}");
        // 3 + 3 + 0.3 + 90 dollars for fully_priced models; the unknown model is not zero, it is unknown.
        assert!((summary.cost_usd - 96.3).abs() < 1e-9);
        assert_eq!(summary.unpriced_tokens, 500_000);
        // Carol's unknown price is in flight: the finished runs' dollars per task are all known.
        let per_task = summary.usd_per_completed_task.unwrap();
        assert!((per_task - 96.3 / 2.0).abs() < 1e-9, "{per_task}");
        let runs_cost: f64 = report.runs.iter().map(|line| line.cost_usd).sum();
        assert!((runs_cost - summary.cost_usd).abs() < 1e-9, "{runs_cost}");
        assert_eq!(report.unpriced_models["mystery-model"], 500_000);
        let groups: Vec<&str> = report
            .groups
            .iter()
            .map(|group| group.key.as_str())
            .collect();
        assert_eq!(groups, ["alice", "bob", "carol"]);
        let waste = &report.waste;
        assert_eq!(waste.unfinished_runs.len(), 1);
        assert_eq!(waste.unfinished_tokens, 1_000_000);
        assert_eq!(waste.in_flight_runs.len(), 1);
        assert_eq!(waste.in_flight_tokens, 500_000);
        assert_eq!(
            waste.retried_tasks,
            vec![(TaskId::new("a").unwrap(), 2, 3_000_000)]
        );
        assert_eq!(waste.tokens_per_completed_task.count, 2);
        assert_eq!(waste.tokens_per_completed_task.max, 6_000_000);
        assert_eq!(waste.tokens_per_completed_task.top[0].0.as_str(), "b");
        assert_eq!(waste.over_budget.len(), 1);
        assert_eq!(waste.cache_hit_by_agent["bob"], Some(0.5));
        assert_eq!(waste.context_tokens_by_day["2026-11-02"], 12_000);
        assert_eq!(waste.model_mix.len(), 2);
    }

    #[test]
    fn unmerged_spend_cost_tail_and_overspend_are_counted() {
        let mut routed = run(
            "a",
            "1-x",
            "alice",
            Some(Outcome::Completed),
            &[("claude-opus-4-6", 0, 1_000_000, 0)],
        );
        routed.meta.routed_model = Some("claude-haiku-4-5".to_owned());
        let runs = vec![
            routed,
            run(
                "b",
                "1-y",
                "bob",
                Some(Outcome::Completed),
                &[("claude-sonnet-4-5", 0, 1_000_000, 0)],
            ),
        ];
        let mut done = facts(1);
        done.status = Status::Done;
        let tasks: BTreeMap<TaskId, TaskFacts> = [
            (TaskId::new("a").unwrap(), done),
            (TaskId::new("b").unwrap(), facts(1)),
        ]
        .into_iter()
        .collect();
        let report = report(
            &runs,
            &tasks,
            &PriceTable::default(),
            &RunFilter::default(),
            GroupBy::Type,
        );
        let waste = &report.waste;
        // b completed but its task is not done on the queue's branch: not landed.
        assert_eq!(waste.unmerged_runs.len(), 1);
        assert_eq!(waste.unmerged_runs[0].task.as_str(), "b");
        assert!((waste.unmerged_cost_usd - 15.0).abs() < 1e-9);
        // Opus output at $25/M where haiku costs $5/M.
        assert_eq!(waste.overspend.len(), 1);
        assert!((waste.overspend_usd - 20.0).abs() < 1e-9);
        let tail = &waste.cost_tail_by_type["bug"];
        assert_eq!(tail.count, 2);
        assert!((tail.p99_usd - 25.0).abs() < 1e-9);
        assert!((tail.median_usd - 15.0).abs() < 1e-9);
    }

    #[test]
    fn spend_is_bucketed_by_request_time_with_the_active_window_projected() {
        let mut early = run(
            "a",
            "1-x",
            "alice",
            None,
            &[("claude-sonnet-4-5", 0, 1_000_000, 0)],
        );
        early.records[0].at = Some("2026-11-02T10:10:00Z".parse().unwrap());
        let mut more = early.records[0].clone();
        more.key = "second".to_owned();
        more.at = Some("2026-11-02T11:10:00Z".parse().unwrap());
        early.records.push(more);
        let mut late = early.records[0].clone();
        late.key = "third".to_owned();
        late.at = Some("2026-11-03T09:00:00Z".parse().unwrap());
        let mut latest = late.clone();
        latest.key = "fourth".to_owned();
        latest.at = Some("2026-11-03T09:55:00Z".parse().unwrap());
        early.records.extend([late, latest]);
        let filter = RunFilter {
            now: Some("2026-11-03T10:00:00Z".parse().unwrap()),
            ..RunFilter::default()
        };
        let report = report(
            &[early],
            &BTreeMap::new(),
            &PriceTable::default(),
            &filter,
            GroupBy::Day,
        );
        let spend = &report.spend;
        let days: Vec<(&str, u64)> = spend
            .by_day
            .iter()
            .map(|day| (day.period.as_str(), day.tokens))
            .collect();
        assert_eq!(days, [("2026-11-02", 2_000_000), ("2026-11-03", 2_000_000)]);
        assert_eq!(spend.by_month.len(), 1);
        assert_eq!(spend.windows.len(), 2);
        assert_eq!(spend.windows[0].start.to_string(), "2026-11-02T10:00:00Z");
        assert_eq!(spend.windows[0].tokens, 2_000_000);
        let active = &spend.windows[1];
        assert!(active.active);
        // 2M tokens in the first hour, 4 hours left at that rate.
        assert_eq!(active.projected_tokens, Some(10_000_000));
        assert!((active.projected_cost_usd.unwrap() - 150.0).abs() < 1e-6);
        assert_eq!(active.projected_unpriced_tokens, None);
    }

    /// One window of `records` (model, output tokens, time) at `now`.
    fn window_at(records: &[(&str, u64, &str)], now: &str) -> Window {
        let mut spent = run("a", "1-x", "alice", None, &[]);
        for (number, (model, output, at)) in records.iter().enumerate() {
            spent.records.push(UsageRecord {
                key: format!("k{number}"),
                model: (*model).to_owned(),
                output: *output,
                requests: 1,
                at: Some(at.parse().unwrap()),
                ..UsageRecord::default()
            });
        }
        let filter = RunFilter {
            now: Some(now.parse().unwrap()),
            ..RunFilter::default()
        };
        let report = report(
            &[spent],
            &BTreeMap::new(),
            &PriceTable::default(),
            &filter,
            GroupBy::Day,
        );
        assert_eq!(report.spend.windows.len(), 1);
        report.spend.windows[0].clone()
    }

    /// A window of unpriced tokens only projects no dollars: unknown, never $0 (walk17 N4).
    #[test]
    fn a_wholly_unpriced_window_projects_unknown_dollars_not_zero() {
        let window = window_at(
            &[("my-local-llama", 1_000, "2026-11-09T10:20:00Z")],
            "2026-11-09T10:30:00Z",
        );
        assert!(window.active);
        assert_eq!(window.projected_cost_usd, None);
        let projected = window.projected_tokens.unwrap();
        assert_eq!(window.projected_unpriced_tokens, Some(projected));
        // Half priced: the priced dollars and the unpriced tokens grow alike.
        let mixed = window_at(
            &[
                ("claude-mystery-9", 1_000, "2026-11-09T10:20:00Z"),
                ("claude-sonnet-4-5", 1_000, "2026-11-09T10:21:00Z"),
            ],
            "2026-11-09T10:30:00Z",
        );
        let growth = f64::from(u32::try_from(mixed.projected_tokens.unwrap()).unwrap()) / 2_000.0;
        assert!((mixed.projected_cost_usd.unwrap() - 0.015 * growth).abs() < 1e-9);
        assert_eq!(
            mixed.projected_unpriced_tokens,
            Some(1_000 * mixed.projected_tokens.unwrap() / 2_000)
        );
    }

    /// A burst is no hourly rate: the rate is over 15 minutes at least, and a window
    /// with no request for 15 minutes projects nothing (walk17 N15).
    #[test]
    fn a_burst_is_rated_over_fifteen_minutes_and_an_idle_window_projects_nothing() {
        let burst = [
            ("claude-sonnet-4-5", 300_000, "2026-12-06T21:00:00Z"),
            ("claude-sonnet-4-5", 300_000, "2026-12-06T21:01:30Z"),
        ];
        let right_after = window_at(&burst, "2026-12-06T21:02:00Z");
        // 600k over 15 minutes, not over 2: 2.4M tokens an hour.
        assert_eq!(right_after.tokens_per_hour, Some(2_400_000.0));
        let later = window_at(&burst, "2026-12-06T21:30:00Z");
        assert!(later.active && later.tokens_per_hour.is_some());
        assert_eq!(later.projected_tokens, None);
        assert_eq!(later.projected_cost_usd, None);
        assert_eq!(
            later.last_request_at,
            Some("2026-12-06T21:01:30Z".parse().unwrap())
        );
    }

    #[test]
    fn a_request_dated_at_the_end_of_time_closes_its_window_there() {
        // A log line's timestamp is the writer's word: a corrupt or hostile one near
        // jiff's maximum must not overflow the window's end.
        let mut last = run(
            "a",
            "1-x",
            "alice",
            None,
            &[("claude-sonnet-4-5", 0, 10, 0)],
        );
        let end_of_time = Timestamp::MAX - jiff::SignedDuration::from_mins(30);
        last.records[0].at = Some(end_of_time);
        let report = report(
            &[last],
            &BTreeMap::new(),
            &PriceTable::default(),
            &RunFilter::default(),
            GroupBy::Day,
        );
        let window = &report.spend.windows[0];
        assert!(window.start <= end_of_time && end_of_time < window.end);
        assert_eq!(window.end, Timestamp::MAX);
        assert_eq!(window.tokens, 10);
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 50), 50);
        assert_eq!(percentile(&values, 90), 90);
        assert_eq!(percentile(&values, 99), 99);
        assert_eq!(percentile(&[7], 99), 7);
        assert_eq!(percentile(&[], 50), 0);
    }
}
