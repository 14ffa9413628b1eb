//! `gitprio usage`: record token usage against a task's run, and show it.

use std::io::Read as _;

use anyhow::{Context as _, anyhow};
use clap::{Args, Subcommand};
use gitprio_core::git::Repository;
use gitprio_core::lease::{HeldLease, LeaseRecord, LeaseStore};
use gitprio_core::source::{self, LoadedQueue, QueueSource};
use gitprio_core::usage::{Ledger, Outcome, RunMeta, Totals, UsageRecord};
use gitprio_core::{Config, Task, TaskId};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::json;

use super::lease::{StoreArgs, store_mode};
use super::load_tasks;
use crate::cli::CommandResult;
use crate::settings::Settings;
use crate::{exit_code, output};

#[derive(Debug, Args)]
pub struct UsageArgs {
    #[command(subcommand)]
    pub command: UsageCommand,
}

#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// Record tokens spent on a task's current run (for agents whose logs gitprio cannot read).
    Record(RecordArgs),
    /// Show the runs of a task and what each spent.
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The task id (default: the one task this worktree holds).
    pub id: Option<String>,
    /// The model that spent the tokens.
    #[arg(long, required_unless_present = "stdin")]
    pub model: Option<String>,
    /// Input tokens not read from or written to the cache.
    #[arg(long, default_value_t = 0)]
    pub input: u64,
    /// Output tokens, reasoning included.
    #[arg(long, default_value_t = 0)]
    pub output: u64,
    /// Tokens read from the prompt cache.
    #[arg(long, default_value_t = 0)]
    pub cache_read: u64,
    /// Tokens written to the prompt cache (5-minute lifetime).
    #[arg(long, default_value_t = 0)]
    pub cache_write: u64,
    /// Tokens written to the prompt cache with a 1-hour lifetime.
    #[arg(long, default_value_t = 0)]
    pub cache_write_1h: u64,
    /// Reasoning tokens (already counted in `--output`).
    #[arg(long, default_value_t = 0)]
    pub reasoning: u64,
    /// API requests these tokens were spent in.
    #[arg(long, default_value_t = 1)]
    pub requests: u32,
    /// A key that makes recording the same usage twice count once (default: unique).
    #[arg(long)]
    pub key: Option<String>,
    /// Read records from stdin instead: one JSON object, an array, or JSON lines, with the
    /// fields `model`, `input`, `output`, `cache_read`, `cache_write`, `cache_write_1h`,
    /// `reasoning`, `requests`, `key`.
    #[arg(long, conflicts_with = "model")]
    pub stdin: bool,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print the run's totals as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The task id.
    pub id: String,
    /// Use the usage last fetched, without asking the remote.
    #[arg(long)]
    pub offline: bool,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print JSON: `{"runs": [...]}`.
    #[arg(long)]
    pub json: bool,
}

pub fn run(settings: &Settings, args: &UsageArgs) -> CommandResult {
    match &args.command {
        UsageCommand::Record(args) => record(settings, args),
        UsageCommand::Show(args) => show(settings, args),
    }
}

/// Describes the current run of `id`: the lease this worktree holds, else the task's lease
/// as last fetched (so usage can still be recorded after a release).
pub fn current_run(
    settings: &Settings,
    store: &LeaseStore<'_>,
    id: &TaskId,
) -> anyhow::Result<RunMeta> {
    let repo = store.repo();
    let held = HeldLease::load(repo.git_dir(), id)?;
    let record = match &held {
        Some(held) => {
            let oid = gitprio_core::git::ObjectId::from_hex(held.oid.as_bytes())
                .map_err(|_| anyhow!("the held lease of `{id}` names no commit"))?;
            LeaseRecord::from_message(&repo.commit_message(oid)?)?
        }
        None => store
            .lease(id)?
            .ok_or_else(|| {
                anyhow!(
                    "`{id}` has no lease, so no run to record usage against; `gitprio claim` first"
                )
            })?
            .record,
    };
    let loaded = queue_tasks(settings, store)?;
    let task = loaded.tasks.iter().find(|task| &task.id == id);
    Ok(run_meta(
        &record,
        task,
        &loaded.config,
        held.and_then(|held| held.context_tokens),
    ))
}

/// Describes the run of lease `record` for the ledger, with the task's facts as queued now.
pub fn run_meta(
    record: &LeaseRecord,
    task: Option<&Task>,
    config: &Config,
    context_tokens: Option<u64>,
) -> RunMeta {
    let budget_tokens = task.and_then(|task| {
        task.budget.and_then(|budget| budget.tokens).or_else(|| {
            task.task_type
                .as_ref()
                .and_then(|kind| config.budgets.get(kind))
                .map(|count| count.0)
        })
    });
    RunMeta {
        task: record.task.clone(),
        run: RunMeta::run_id(record.generation, record.acquired_at),
        generation: record.generation,
        agent: record.holder.agent.clone(),
        session: record.holder.session.clone(),
        task_type: task.and_then(|task| task.task_type.clone()),
        feature: task.and_then(|task| task.feature.clone()),
        value: task.map_or(1, |task| task.value),
        routed_model: task.and_then(|task| task.model.clone()),
        budget_tokens,
        context_tokens,
        started_at: record.acquired_at,
        ended_at: None,
        outcome: None,
    }
}

/// Loads the tasks of the queue's branch as last fetched (or of `HEAD` in local mode).
fn queue_tasks(settings: &Settings, store: &LeaseStore<'_>) -> anyhow::Result<LoadedQueue> {
    let source = store
        .queue_ref()
        .map_or(QueueSource::Default, QueueSource::Rev);
    load_tasks(settings, store.repo(), &source).map_err(|error| error.error)
}

/// Records the end of the current run of `id` in the usage ledger; a failure only warns,
/// since the lease change it follows already happened.
pub fn record_outcome(settings: &Settings, store: &LeaseStore<'_>, id: &TaskId, outcome: Outcome) {
    let result = current_run(settings, store, id).and_then(|current| {
        let meta = RunMeta {
            outcome: Some(outcome),
            ended_at: Some(settings.now),
            ..current
        };
        Ledger::new(store)
            .write(&meta, &[], settings.now)
            .map_err(anyhow::Error::from)
    });
    if let Err(error) = result {
        output::message(
            settings,
            "warning",
            &format!("the run's outcome was not recorded in the usage ledger: {error:#}"),
        );
    }
}

/// Tokens over budget for the run, if it is.
pub fn over_budget(meta: &RunMeta, totals: &Totals) -> Option<(u64, u64)> {
    meta.budget_tokens
        .filter(|budget| totals.tokens() > *budget)
        .map(|budget| (totals.tokens(), budget))
}

/// Prints the over-budget message and returns the budget exit code, or success.
pub fn budget_verdict(settings: &Settings, meta: &RunMeta, totals: &Totals) -> u8 {
    match over_budget(meta, totals) {
        Some((spent, budget)) => {
            output::message(
                settings,
                "error",
                &format!(
                    "budget exceeded on `{id}`: {spent} tokens spent of {budget}; stop, and `gitprio release {id} --failed --reason \"over budget\"`",
                    id = meta.task
                ),
            );
            exit_code::BUDGET_EXCEEDED
        }
        None => exit_code::SUCCESS,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordInput {
    model: String,
    #[serde(default)]
    input: u64,
    #[serde(default)]
    output: u64,
    #[serde(default)]
    cache_read: u64,
    #[serde(default)]
    cache_write: u64,
    #[serde(default)]
    cache_write_1h: u64,
    #[serde(default)]
    reasoning: u64,
    #[serde(default = "one")]
    requests: u32,
    #[serde(default)]
    key: Option<String>,
}

fn one() -> u32 {
    1
}

fn parse_stdin(text: &str) -> anyhow::Result<Vec<RecordInput>> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        return serde_json::from_str(trimmed).context("stdin is not a JSON array of records");
    }
    trimmed
        .lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(index, line)| {
            serde_json::from_str(line)
                .with_context(|| format!("stdin line {}: not a usage record", index + 1))
        })
        .collect()
}

fn record(settings: &Settings, args: &RecordArgs) -> CommandResult {
    let repo = Repository::discover(&settings.directory)?;
    let config = source::local_config(&repo);
    let store = LeaseStore::new(&repo, store_mode(&repo, &config, args.store.local));
    let id = super::lease::held_id(&repo, args.id.as_deref())?;
    let inputs = if args.stdin {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        parse_stdin(&text)?
    } else {
        vec![RecordInput {
            model: args.model.clone().unwrap_or_default(),
            input: args.input,
            output: args.output,
            cache_read: args.cache_read,
            cache_write: args.cache_write,
            cache_write_1h: args.cache_write_1h,
            reasoning: args.reasoning,
            requests: args.requests,
            key: args.key.clone(),
        }]
    };
    if inputs.is_empty() {
        return Err(anyhow!("no usage records given").into());
    }
    let current = current_run(settings, &store, &id)?;
    let records: Vec<UsageRecord> = inputs
        .into_iter()
        .enumerate()
        .map(|(index, input)| UsageRecord {
            key: input.key.map_or_else(
                || {
                    format!(
                        "manual:{}:{}:{index}",
                        settings.now.as_nanosecond(),
                        std::process::id()
                    )
                },
                |key| format!("manual:{key}"),
            ),
            source: "manual".to_owned(),
            session: current.session.clone(),
            model: input.model,
            at: Some(settings.now),
            input: input.input,
            output: input.output,
            cache_write_5m: input.cache_write,
            cache_write_1h: input.cache_write_1h,
            cache_read: input.cache_read,
            reasoning: input.reasoning,
            requests: input.requests,
            ..UsageRecord::default()
        })
        .collect();
    let written = Ledger::new(&store).write(&current, &records, settings.now)?;
    let totals = written.run.totals();
    if args.json {
        output::print_json(&json!({
            "task": id,
            "run": written.run.meta.run,
            "added": written.added,
            "totals": totals,
            "tokens": totals.tokens(),
            "budget_tokens": written.run.meta.budget_tokens,
        }))?;
    } else {
        println!(
            "recorded {} records on {id} run {}: {} tokens in {} requests so far{}",
            written.added,
            written.run.meta.run,
            totals.tokens(),
            totals.requests,
            written
                .run
                .meta
                .budget_tokens
                .map(|budget| format!(" (budget {budget})"))
                .unwrap_or_default()
        );
    }
    Ok(budget_verdict(settings, &written.run.meta, &totals))
}

fn show(settings: &Settings, args: &ShowArgs) -> CommandResult {
    let repo = Repository::discover(&settings.directory)?;
    let config = source::local_config(&repo);
    let store = LeaseStore::new(&repo, store_mode(&repo, &config, args.store.local));
    let id = TaskId::new(&args.id).ok_or_else(|| anyhow!("`{}` is not a task id", args.id))?;
    let ledger = Ledger::new(&store);
    if !args.offline {
        store.fetch(&gitprio_core::usage::usage_ref(&id))?;
    }
    let runs = ledger.runs(&id)?;
    if args.json {
        let runs: Vec<serde_json::Value> = runs
            .iter()
            .map(|run| {
                json!({
                    "meta": run.meta,
                    "totals": run.totals(),
                    "tokens": run.totals().tokens(),
                    "records": run.records.len(),
                })
            })
            .collect();
        output::print_json(&json!({ "task": id, "runs": runs }))?;
        return Ok(exit_code::SUCCESS);
    }
    if runs.is_empty() {
        println!("no usage recorded for {id}");
        return Ok(exit_code::SUCCESS);
    }
    let mut rows = vec![
        [
            "RUN",
            "AGENT",
            "OUTCOME",
            "STARTED",
            "REQUESTS",
            "INPUT",
            "OUTPUT",
            "CACHE READ",
            "CACHE WRITE",
            "TOKENS",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for run in &runs {
        let totals = run.totals();
        rows.push(vec![
            run.meta.run.clone(),
            run.meta.agent.clone(),
            run.meta.outcome.map_or("open", Outcome::as_str).to_owned(),
            started(run.meta.started_at),
            totals.requests.to_string(),
            totals.input.to_string(),
            totals.output.to_string(),
            totals.cache_read.to_string(),
            (totals.cache_write_5m + totals.cache_write_1h).to_string(),
            totals.tokens().to_string(),
        ]);
    }
    output::print_table(&rows)?;
    Ok(exit_code::SUCCESS)
}

fn started(at: Timestamp) -> String {
    at.strftime("%Y-%m-%d %H:%M").to_string()
}
