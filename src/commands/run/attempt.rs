//! One attempt at one claimed task: its worktree, its prompt, the agent under watch,
//! its usage recorded, then `done` (with a commit and a push) or a release.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use gitprio_core::config::Route;
use gitprio_core::git::Repository;
use gitprio_core::reply::lease::ShownState;
use gitprio_core::source::QueueSource;
use gitprio_core::usage::UsageRecord;
use gitprio_core::usage::money::{self, Usd};
use gitprio_core::{Config, Task};

use super::adapters::{self, Adapter, Follower};
use super::agent::{self, Agent, Io, Placeholders};
use super::left::{self, ClaimLock, LiveLock};
use super::logs::LogFollower;
use super::operations::{Beat, Claimed, Done};
use super::renewer::{Renewal, Renewer};
use super::{Ending, PullRequests, Report, RunContext};
use crate::github::{ApiError, PullRequest};
use crate::settings::BRANCH_VARIABLE;
use gitprio_core::workspace::tail;

/// How often a running agent's output, limits and signals are looked at.
const TICK: Duration = Duration::from_millis(100);

/// Why the run stopped an agent before it exited by itself.
#[derive(Debug)]
enum Halt {
    /// Ctrl-C: the run is stopping.
    Interrupted,
    Timeout(Duration),
    /// The task's budget is spent: the reason to record.
    OverBudget(String),
    /// The run's own `--max-tokens` or `--max-usd` is reached.
    RunLimit(String),
    /// The heartbeat says the lease is gone (revoked, or expired and claimed by another
    /// agent), in its own words.
    Lost(String),
}

/// What a running agent has spent so far.
#[derive(Clone, Debug)]
struct Spend {
    tokens: u64,
    /// Estimated at list prices; tokens of a model without a price count nothing.
    usd: f64,
    /// Every token so far has a price.
    priced: bool,
    /// The tokens without a price, and their model (the last one).
    unpriced: (u64, String),
}

/// The task's spending limit for this attempt.
#[derive(Clone, Copy, Debug, Default)]
struct Budget {
    tokens: Option<u64>,
    usd: Option<f64>,
}

/// A problem that is not the task's fault (the agent command cannot start, the worktree
/// cannot be made, the config routes to no model): the run gives the task back and stops,
/// rather than failing task after task the same way.
#[derive(Debug)]
pub struct SetupError {
    pub error: anyhow::Error,
    /// The attempt, when its agent ran (and spent) before the problem: the summary counts it.
    pub attempt: Option<Box<Report>>,
}

impl From<anyhow::Error> for SetupError {
    fn from(error: anyhow::Error) -> Self {
        SetupError {
            error,
            attempt: None,
        }
    }
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

/// Works on `claimed` as agent `agent` in slot `slot` until it is done, failed or given back.
pub fn attempt(
    run: &RunContext,
    slot: usize,
    agent: &str,
    claimed: &Claimed,
    claim: ClaimLock,
) -> Result<Report, SetupError> {
    let started = Instant::now();
    let id = claimed.task.id.as_str();
    if run.control.interrupts() > 0 {
        // Claimed while the run was being stopped: no agent starts. The claim lock is held
        // until the task is given back, for a next run to give it back if this one dies.
        let report = interrupted_before_start(run, agent, claimed, started);
        drop(claim);
        return Ok(report);
    }
    let renewer = Renewer::start(&run.operations, agent, id, run.heartbeat_every);
    let setup = prepare(run, agent, claimed, claim)?;
    if run.control.interrupts() > 0 {
        renewer.stop(|| run.control.interrupts() >= 2);
        let report = interrupted_before_start(run, agent, claimed, started);
        drop(setup);
        return Ok(report);
    }
    let mut process = launch(run, agent, claimed, &setup)?;
    let mut watch = Watch {
        run,
        slot,
        agent,
        id,
        renewer: &renewer,
        model: setup.model.as_deref(),
        budget: setup.budget,
        output: Follower::new(run.adapter),
        usage: Follower::new(Adapter::Generic),
        logs: LogFollower::new(run.adapter),
        stdout: None,
        usage_reader: None,
        stdout_path: &setup.stdout_file,
        usage_path: &setup.usage_file,
    };
    let (status, mut halt) = watch.supervise(&mut process)?;
    let verdict = watch.conclude();
    let spent = record_spend(run, agent, claimed, &setup, &watch, &verdict);
    run.control
        .set_live(slot, 0, 0.0, (0, spent.unpriced_model.clone()));
    for renewal in renewer.stop(|| run.control.interrupts() >= 2) {
        // Lost after the agent exited: released, rather than its work checked for nothing.
        if let Some(lost @ Halt::Lost(_)) = watch.beat(renewal) {
            halt.get_or_insert(lost);
        }
    }
    let outcome = Outcome {
        run,
        agent,
        claimed,
        setup: &setup,
        spent,
        started,
    };
    outcome.settle(halt, status, &verdict)
}

/// What an attempt is given before its agent starts: where it works, what it may spend.
struct Setup {
    worktree: PathBuf,
    prompt_file: PathBuf,
    usage_file: PathBuf,
    stdout_file: PathBuf,
    stderr_file: PathBuf,
    model: Option<String>,
    /// How the model was picked, for the announcement: ", tier fast: haiku".
    route_note: String,
    budget: Budget,
    /// The task's branch on the `--push` remote, looked up before the agent changes it.
    pushed: Option<anyhow::Result<Option<String>>>,
    /// Held while the attempt works: see [`super::left`].
    live: LiveLock,
}

/// Makes the attempt's worktree and run directory, picks its model and writes its prompt;
/// the attempt's live lock takes over from the `claim` lock.
fn prepare(
    run: &RunContext,
    agent: &str,
    claimed: &Claimed,
    claim: ClaimLock,
) -> anyhow::Result<Setup> {
    if run.settings.failpoint.as_deref() == Some("run:after-claim") {
        // As a kill between the claim and the live lock would: the claim lock is left.
        std::process::abort();
    }
    let task = &claimed.task;
    let id = task.id.as_str();
    let worktree = run.worktrees.join(id);
    let run_dir = run.runs.join(id).join(claimed.generation.to_string());
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("cannot create {}", run_dir.display()))?;
    let live = LiveLock::take(&run_dir, claim)?;
    prepare_worktree(run, &worktree, claimed)?;
    let pushed = run
        .push
        .as_deref()
        .map(|remote| pushed_branch(run, remote, id));
    if let Some(Ok(seen)) = &pushed {
        // For a next run that pushes the branch in this attempt's stead.
        let _ = std::fs::write(
            run_dir.join(PUSHED_FILE),
            seen.as_deref().unwrap_or_default(),
        );
    }
    let config = worktree_config(&worktree);
    let route = config.route(
        task.model.as_deref(),
        task.task_type.as_deref(),
        claimed.failures,
    )?;
    if route.model.is_none() && agent::uses(&run.command, "{model}") {
        bail!(
            "the agent command uses {{model}}, but task {id} names no model and .tasks/config.yaml lists no `tiers`"
        );
    }
    let model = route
        .model
        .clone()
        .or_else(|| agent::model_argument(&run.command));
    let prompt_file = run_dir.join("prompt.md");
    let prompt = compose_prompt(run, agent, claimed, &worktree, config.plan_required(task));
    std::fs::write(&prompt_file, prompt)
        .with_context(|| format!("cannot write {}", prompt_file.display()))?;
    let usage_file = usage_file(run, id, &run_dir);
    let _ = std::fs::remove_file(&usage_file);
    Ok(Setup {
        route_note: route_note(&route, model.as_deref()),
        budget: Budget::of(task, &config),
        stdout_file: run_dir.join("stdout"),
        stderr_file: run_dir.join("stderr"),
        worktree,
        prompt_file,
        usage_file,
        model,
        pushed,
        live,
    })
}

/// Where the agent of the attempt at `id` whose run directory is `run_dir` writes its usage.
fn usage_file(run: &RunContext, id: &str, run_dir: &Path) -> PathBuf {
    match &run.usage_file {
        Some(path) => run.worktrees.join(id).join(path.replace("{task_id}", id)),
        None => run_dir.join("usage.jsonl"),
    }
}

impl Budget {
    /// The task's own budget, else its type's token budget from the config.
    fn of(task: &gitprio_core::Task, config: &Config) -> Self {
        Self {
            tokens: config.token_budget(task),
            usd: task.budget.and_then(|budget| budget.usd),
        }
    }
}

/// Says how the model was picked: ", escalated to tier strong: opus", ", model haiku".
fn route_note(route: &Route, model: Option<&str>) -> String {
    match (&route.tier, model) {
        (Some(tier), Some(model)) if route.escalated => {
            format!(", escalated to tier {tier}: {model}")
        }
        (Some(tier), Some(model)) => format!(", tier {tier}: {model}"),
        (None, Some(model)) => format!(", model {model}"),
        _ => String::new(),
    }
}

/// Starts the agent command on the attempt's prompt, with the task in its environment.
fn launch(
    run: &RunContext,
    agent: &str,
    claimed: &Claimed,
    setup: &Setup,
) -> anyhow::Result<Agent> {
    let id = claimed.task.id.as_str();
    let text = |path: &Path| path.display().to_string();
    let values = Placeholders {
        prompt_file: &text(&setup.prompt_file),
        task_id: id,
        model: setup.model.as_deref().unwrap_or_default(),
        worktree: &text(&setup.worktree),
        usage_file: &text(&setup.usage_file),
    };
    let command = agent::expand(&run.command, &values);
    let io = Io {
        stdin: (!agent::uses(&run.command, "{prompt_file}")).then_some(setup.prompt_file.as_path()),
        stdout: &setup.stdout_file,
        stderr: &setup.stderr_file,
    };
    let env = environment(run, agent, claimed, setup);
    run.say(&format!(
        "{agent}: working on {id} (attempt {}{}) in {}",
        claimed.attempt,
        setup.route_note,
        setup.worktree.display()
    ));
    let agent = Agent::spawn(&command, &setup.worktree, &io, &env)?;
    setup.live.note(&agent.group());
    Ok(agent)
}

/// The variables that tell the agent its task, run, model and files.
fn environment(
    run: &RunContext,
    agent: &str,
    claimed: &Claimed,
    setup: &Setup,
) -> [(&'static str, String); 9] {
    let task = &claimed.task;
    let id = task.id.as_str();
    let text = |path: &Path| path.display().to_string();
    [
        ("GITPRIO_AGENT", agent.to_owned()),
        ("GITPRIO_TASK", id.to_owned()),
        ("GITPRIO_RUN", claimed.run_id()),
        ("GITPRIO_MODEL", setup.model.clone().unwrap_or_default()),
        ("GITPRIO_WORKTREE", text(&setup.worktree)),
        ("GITPRIO_PROMPT_FILE", text(&setup.prompt_file)),
        ("GITPRIO_USAGE_FILE", text(&setup.usage_file)),
        (BRANCH_VARIABLE, run.branch.clone().unwrap_or_default()),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            resource_attributes(
                std::env::var("OTEL_RESOURCE_ATTRIBUTES").ok().as_deref(),
                &[
                    ("gitprio.task_id", id),
                    ("gitprio.run_id", &claimed.run_id()),
                    ("gitprio.task_type", task.task_type.as_deref().unwrap_or("")),
                ],
            ),
        ),
    ]
}

/// What the attempt spent, as recorded in the usage ledger.
#[derive(Clone, Debug)]
struct Spent {
    tokens: u64,
    cost_usd: Option<f64>,
    /// A model some of the tokens have no price for (empty: none), for `--max-usd`.
    unpriced_model: String,
}

/// Records the attempt's usage in the ledger and returns what it spent.
fn record_spend(
    run: &RunContext,
    agent: &str,
    claimed: &Claimed,
    setup: &Setup,
    watch: &Watch<'_>,
    verdict: &adapters::Verdict,
) -> Spent {
    let id = claimed.task.id.as_str();
    // The CLI's own log of the session has every request with its final usage, under the
    // keys `usage import` gives them; without it, the output's usage stands for the attempt.
    let records = if watch.logs.is_empty() {
        let usage = final_usage(run.adapter, verdict, &watch.output, &watch.usage);
        let session = verdict.session.as_deref().or(watch.output.session());
        usage_records(
            &usage,
            &watch.usage,
            run.adapter,
            &claimed.run_id(),
            watch.model,
        )
        .into_iter()
        .map(|record| of_session(record, session))
        .collect()
    } else {
        watch.logs.records()
    };
    if !records.is_empty()
        && let Err(error) = run
            .operations
            .record_usage(agent, id, &records_text(&records))
    {
        run.warn(&format!(
            "{agent}: the usage of {id} was not recorded: {}",
            super::rendered(&error)
        ));
    }
    if setup.usage_file.starts_with(&setup.worktree) {
        let _ = std::fs::remove_file(&setup.usage_file);
    }
    Spent {
        tokens: records.iter().map(UsageRecord::total_tokens).sum(),
        unpriced_model: records
            .iter()
            .find(|record| run.prices.cost(record).is_none())
            .map(|record| record.model.clone())
            .unwrap_or_default(),
        cost_usd: verdict.cost_usd.or_else(|| {
            records.iter().try_fold(0.0, |sum, record| {
                run.prices.cost(record).map(|cost| sum + cost)
            })
        }),
    }
}

/// Records what the agent of a killed run's attempt at `id` spent, from what it left in
/// `run_dir` (its output, read as this run's adapter reads it, its usage file, the CLI's own
/// log of its session), on that attempt's run `run_id`, as `holder`. The keys are the ones
/// the attempt would have recorded, so what the killed run recorded already counts once.
pub fn record_left_usage(run: &RunContext, holder: &str, id: &str, run_dir: &Path, run_id: &str) {
    let stdout = std::fs::read(run_dir.join("stdout")).unwrap_or_default();
    let verdict = adapters::conclude(run.adapter, &String::from_utf8_lossy(&stdout));
    let mut output = Follower::new(run.adapter);
    output.feed(&stdout);
    let mut usage = Follower::new(Adapter::Generic);
    usage.feed(&std::fs::read(usage_file(run, id, run_dir)).unwrap_or_default());
    let mut logs = LogFollower::new(run.adapter);
    logs.poll(output.session().or(verdict.session.as_deref()));
    let records = if logs.is_empty() {
        let spent = final_usage(run.adapter, &verdict, &output, &usage);
        let session = verdict.session.as_deref().or(output.session());
        usage_records(&spent, &usage, run.adapter, run_id, None)
            .into_iter()
            .map(|record| of_session(record, session))
            .collect()
    } else {
        logs.records()
    };
    if records.is_empty() {
        return;
    }
    match run
        .operations
        .record_usage(holder, id, &records_text(&records))
    {
        Ok(()) => run.say(&format!(
            "{holder}: recorded the usage the stopped run's agent left on {id} ({} tokens)",
            records.iter().map(UsageRecord::total_tokens).sum::<u64>()
        )),
        Err(error) => run.warn(&format!(
            "{holder}: the usage the stopped run's agent left on {id} was not recorded: {}",
            super::rendered(&error)
        )),
    }
}

/// A finished agent's attempt, to be submitted, failed or given back.
struct Outcome<'a> {
    run: &'a RunContext,
    agent: &'a str,
    claimed: &'a Claimed,
    setup: &'a Setup,
    spent: Spent,
    started: Instant,
}

impl Outcome<'_> {
    fn id(&self) -> &str {
        self.claimed.task.id.as_str()
    }

    /// Ends the attempt the way the halt, or else the agent's exit, calls for.
    fn settle(
        &self,
        halt: Option<Halt>,
        status: ExitStatus,
        verdict: &adapters::Verdict,
    ) -> Result<Report, SetupError> {
        let failure = match halt {
            Some(Halt::Lost(error)) => return Ok(self.lost(error)),
            Some(Halt::Interrupted) => return Ok(self.interrupted()),
            Some(Halt::RunLimit(reason)) => {
                let ending = self.give_back(&reason);
                return Ok(self.finish(ending, Some(reason)));
            }
            Some(Halt::Timeout(limit)) => timed_out(limit),
            Some(Halt::OverBudget(reason)) => reason,
            None => match judge(
                status,
                verdict,
                &self.setup.stderr_file,
                &self.setup.worktree,
                &self.claimed.commit,
            ) {
                Some(failure) => failure,
                None => return self.submit(verdict),
            },
        };
        Ok(self.fail(&failure))
    }

    /// Releases a task whose lease was lost while the agent ran; `error` is what the
    /// heartbeat said, as `gitprio heartbeat` says it by hand.
    fn lost(&self, error: String) -> Report {
        let _ = self
            .run
            .operations
            .release(self.agent, self.id(), "lease lost", false, false);
        self.run.warn(&format!("{}: {error}", self.agent));
        self.finish(Ending::Lost, Some(error))
    }

    fn give_back(&self, reason: &str) -> Ending {
        give_back(self.run, self.agent, self.id(), reason)
    }

    /// Gives the task back, the run being stopped (not counted as a failure).
    fn interrupted(&self) -> Report {
        let ending = self.give_back(INTERRUPTED);
        self.finish(ending, Some("interrupted".to_owned()))
    }

    /// Submits the agent's work with `done`; a refusal fails the attempt.
    fn submit(&self, verdict: &adapters::Verdict) -> Result<Report, SetupError> {
        let (agent, id) = (self.agent, self.id());
        let summary = verdict.summary.as_deref();
        let interrupted = || self.run.control.interrupts() >= 2;
        match self
            .run
            .operations
            .done_until(agent, &self.setup.worktree, id, summary, &interrupted)
        {
            Ok(Some(Done::Submitted(warnings))) => Ok(self.completed(&warnings, summary)),
            Ok(None) => Ok(self.interrupted()),
            Ok(Some(Done::Refused(reason))) => Ok(self.fail(&reason)),
            Ok(Some(Done::Lost(error))) => Ok(self.lost(error)),
            Err(error) => {
                // Not the task's fault (the remote is unreachable, refuses the push): failing
                // it would fail every attempt the same way, and park it with its work lost.
                let error = anyhow::anyhow!(
                    "{error:#}; the work is kept in {} (branch gitprio/{id}), and kept at refs/gitprio/attempts/{id}/{} when the next attempt at {id} replaces it",
                    self.setup.worktree.display(),
                    self.claimed.generation
                );
                self.run
                    .warn(&format!("{agent}: cannot complete {id}: {error:#}"));
                let attempt = self.finish(Ending::Released, Some(format!("{error:#}")));
                Err(SetupError {
                    error,
                    attempt: Some(Box::new(attempt)),
                })
            }
        }
    }

    /// Reports a submitted task, after pushing its branch and opening its pull request.
    fn completed(&self, warnings: &[String], summary: Option<&str>) -> Report {
        let (agent, id) = (self.agent, self.id());
        for warning in warnings {
            self.run
                .warn(&format!("{agent}: gitprio done {id}: {warning}"));
        }
        let (note, pull_request) = finish_branch(
            self.run,
            &self.setup.worktree,
            self.claimed,
            summary,
            self.setup.pushed.as_ref(),
        );
        self.run.say(&format!(
            "{agent}: {id} is done ({} tokens{}){note}",
            self.spent.tokens,
            self.spent
                .cost_usd
                .map(|cost| format!(", {}", Usd(cost)))
                .unwrap_or_default()
        ));
        let mut completed = self.finish(Ending::Completed, None);
        completed.pull_request = pull_request;
        completed
    }

    /// Releases the task as failed, parked when it failed too often or the same way twice.
    fn fail(&self, failure: &str) -> Report {
        let (agent, id) = (self.agent, self.id());
        let reason = compact(failure);
        let runaway = self
            .claimed
            .last_error
            .as_deref()
            .is_some_and(|last| same_error(last, &reason));
        let run_dir = self
            .run
            .runs
            .join(id)
            .join(self.claimed.generation.to_string());
        // For the next run, should this one be killed before its release: a failure still.
        let _ = std::fs::write(run_dir.join(left::FAILED_FILE), &reason);
        if self.run.settings.failpoint.as_deref() == Some("run:before-release-failed") {
            std::process::abort();
        }
        let ending = match self
            .run
            .operations
            .release(agent, id, &reason, true, runaway)
        {
            Ok(true) => Ending::Parked,
            Ok(false) => Ending::Failed,
            Err(error) => {
                self.run
                    .warn(&format!("{agent}: {}", super::rendered(&error)));
                Ending::Lost
            }
        };
        self.run.say(&format!(
            "{agent}: {id} failed: {reason}{}",
            match ending {
                Ending::Parked if runaway =>
                    "; the same error as the attempt before, so it is parked for a human",
                Ending::Parked => "; it is parked for a human after too many failed attempts",
                _ => "",
            }
        ));
        self.finish(ending, Some(reason))
    }

    fn finish(&self, ending: Ending, error: Option<String>) -> Report {
        report(
            self.claimed,
            self.setup.model.as_ref(),
            ending,
            self.spent.tokens,
            self.spent.cost_usd,
            self.started,
            error,
        )
    }
}

/// The failure of an agent stopped at `--timeout`.
fn timed_out(limit: Duration) -> String {
    format!(
        "timed out after {}",
        jiff::SignedDuration::try_from(limit)
            .map_or_else(|_| format!("{limit:?}"), |limit| format!("{limit:#}"))
    )
}

/// `OTEL_RESOURCE_ATTRIBUTES` for the agent: what it was given, and the task's attributes, so
/// the telemetry an agent CLI exports (Claude Code's, Gemini CLI's) can be told apart by task.
/// Values are percent-encoded as the W3C baggage format the variable uses wants; empty ones
/// are left out.
fn resource_attributes(inherited: Option<&str>, attributes: &[(&str, &str)]) -> String {
    let mut parts: Vec<String> = inherited
        .into_iter()
        .flat_map(|text| text.split(','))
        .filter(|part| {
            !part.trim().is_empty()
                && !attributes
                    .iter()
                    .any(|(name, _)| part.split('=').next().map(str::trim) == Some(*name))
        })
        .map(str::to_owned)
        .collect();
    for (name, value) in attributes.iter().filter(|(_, value)| !value.is_empty()) {
        let mut encoded = String::new();
        for character in value.chars() {
            match character {
                ',' | '=' | '%' | ';' | '"' | '\\' => {
                    let _ = write!(encoded, "%{:02X}", u32::from(character));
                }
                character if character.is_whitespace() || character.is_control() => {
                    let _ = write!(encoded, "%{:02X}", u32::from(character));
                }
                character => encoded.push(character),
            }
        }
        parts.push(format!("{name}={encoded}"));
    }
    parts.join(",")
}

fn report(
    claimed: &Claimed,
    model: Option<&String>,
    ending: Ending,
    tokens: u64,
    cost_usd: Option<f64>,
    started: Instant,
    error: Option<String>,
) -> Report {
    Report {
        task: claimed.task.id.clone(),
        run: claimed.run_id(),
        model: model.cloned(),
        ending,
        tokens,
        cost_usd,
        seconds: started.elapsed().as_secs_f64(),
        error,
        pull_request: None,
    }
}

/// Gives back a task claimed while the run was being stopped, before its agent started.
fn interrupted_before_start(
    run: &RunContext,
    agent: &str,
    claimed: &Claimed,
    started: Instant,
) -> Report {
    let ending = give_back(run, agent, claimed.task.id.as_str(), INTERRUPTED);
    report(
        claimed,
        None,
        ending,
        0,
        None,
        started,
        Some("interrupted".to_owned()),
    )
}

/// Why a task is given back when the run is interrupted.
const INTERRUPTED: &str = "interrupted: gitprio run was stopped";

/// Gives the task back without counting a failure (the run stopped, not the task).
fn give_back(run: &RunContext, agent: &str, id: &str, reason: &str) -> Ending {
    match run.operations.release(agent, id, reason, false, false) {
        Ok(_) => {
            run.say(&format!("{agent}: released {id} ({reason})"));
            Ending::Released
        }
        Err(error) => {
            run.warn(&format!("{agent}: {}", super::rendered(&error)));
            Ending::Lost
        }
    }
}

/// Watches a running agent: its output, the limits, the lease, Ctrl-C.
struct Watch<'a> {
    run: &'a RunContext,
    slot: usize,
    agent: &'a str,
    id: &'a str,
    /// Renews the lease meanwhile; its renewals are looked at every tick.
    renewer: &'a Renewer,
    model: Option<&'a str>,
    budget: Budget,
    output: Follower,
    usage: Follower,
    /// The CLI's own log of the session, once its output named the session.
    logs: LogFollower,
    stdout: Option<File>,
    usage_reader: Option<File>,
    stdout_path: &'a Path,
    usage_path: &'a Path,
}

impl Watch<'_> {
    /// Runs until the agent exits; stops it (SIGTERM, then SIGKILL after the grace period)
    /// when a limit is passed, the lease is lost or the run is interrupted.
    fn supervise(&mut self, process: &mut Agent) -> anyhow::Result<(ExitStatus, Option<Halt>)> {
        let started = Instant::now();
        let mut halt = None;
        let mut kill_at: Option<Instant> = None;
        let mut killed = false;
        loop {
            if let Some(status) = process.try_wait()? {
                return Ok((status, halt));
            }
            self.read_new();
            let Spend {
                tokens,
                usd,
                priced,
                unpriced,
            } = self.live();
            self.run.control.set_live(self.slot, tokens, usd, unpriced);
            self.renewer.report(tokens, priced.then_some(usd));
            let now = Instant::now();
            if halt.is_none() {
                halt = self.check(tokens, usd, started);
                for renewal in self.renewer.renewals() {
                    let stop = self.beat(renewal);
                    halt = halt.or(stop);
                }
                if let Some(reason) = &halt {
                    self.run.say(&format!(
                        "{}: stopping the agent on {}: {}",
                        self.agent,
                        self.id,
                        describe_halt(reason)
                    ));
                    process.terminate();
                    kill_at = Some(now + self.run.grace);
                }
            } else if !killed
                && (self.run.control.interrupts() >= 2 || kill_at.is_some_and(|at| now >= at))
            {
                process.kill();
                killed = true;
            }
            std::thread::sleep(TICK);
        }
    }

    fn check(&self, tokens: u64, usd: f64, started: Instant) -> Option<Halt> {
        if self.run.control.interrupts() > 0 {
            return Some(Halt::Interrupted);
        }
        if let Some(limit) = self.run.timeout
            && started.elapsed() >= limit
        {
            return Some(Halt::Timeout(limit));
        }
        if let Some(budget) = self.budget.tokens
            && tokens > budget
        {
            return Some(Halt::OverBudget(format!(
                "over budget: {tokens} tokens spent of {budget}"
            )));
        }
        if let Some(budget) = self.budget.usd
            && usd > budget
        {
            let (spent, budget) = money::past_limit(usd, budget);
            return Some(Halt::OverBudget(format!(
                "over budget: {spent} spent of {budget}"
            )));
        }
        self.run.control.run_limit().map(Halt::RunLimit)
    }

    /// What a renewal of the lease (the renewer's, which carries the spend so far to
    /// `gitprio top`) calls for: a halt when the lease is lost or the budget spent.
    fn beat(&self, renewal: Renewal) -> Option<Halt> {
        match renewal {
            Ok(Beat::Renewed) => None,
            Ok(Beat::Lost(error)) => Some(Halt::Lost(error)),
            Ok(Beat::OverBudget) => Some(Halt::OverBudget(
                "over budget: the usage ledger says the task's budget is spent".to_owned(),
            )),
            Ok(Beat::Failed(error)) => {
                self.run.warn(&format!(
                    "{}: cannot renew the lease on {} ({error}); trying again later",
                    self.agent, self.id
                ));
                None
            }
            Err(error) => {
                self.run
                    .warn(&format!("{}: {}", self.agent, super::rendered(&error)));
                None
            }
        }
    }

    /// Reads the exited agent's whole output and returns what it says of the attempt.
    fn conclude(&mut self) -> adapters::Verdict {
        let stdout = std::fs::read(self.stdout_path).unwrap_or_default();
        let verdict = adapters::conclude(self.run.adapter, &String::from_utf8_lossy(&stdout));
        self.read_new();
        if self.logs.is_empty() {
            // Output that names the session only at the end (`--output-format json`): its log
            // is read now, so the records still have the keys `usage import` gives them.
            self.logs.poll(verdict.session.as_deref());
        }
        verdict
    }

    /// Reads what the agent wrote since the last look.
    fn read_new(&mut self) {
        read_more(&mut self.stdout, self.stdout_path, &mut self.output);
        read_more(&mut self.usage_reader, self.usage_path, &mut self.usage);
        self.logs.poll(self.output.session());
    }

    /// Tokens and estimated dollars so far.
    fn live(&self) -> Spend {
        let streamed = if self.logs.is_empty() {
            self.output.usage()
        } else {
            self.logs.records()
        };
        let records: Vec<UsageRecord> = streamed
            .into_iter()
            .chain(self.usage.usage())
            .map(|mut record| {
                if record.model.is_empty() {
                    self.model.unwrap_or_default().clone_into(&mut record.model);
                }
                record
            })
            .collect();
        let costs: Vec<Option<f64>> = records
            .iter()
            .map(|record| self.run.prices.cost(record))
            .collect();
        let unpriced = records
            .iter()
            .zip(&costs)
            .filter(|(_, cost)| cost.is_none())
            .fold((0, String::new()), |(tokens, _), (record, _)| {
                (tokens + record.total_tokens(), record.model.clone())
            });
        Spend {
            tokens: records.iter().map(UsageRecord::total_tokens).sum(),
            // A fold from +0.0: `sum` of no costs is -0.0, shown as `$-0.00`.
            usd: costs.iter().flatten().fold(0.0, |sum, cost| sum + cost),
            priced: costs.iter().all(Option::is_some),
            unpriced,
        }
    }
}

fn read_more(reader: &mut Option<File>, path: &Path, follower: &mut Follower) {
    if reader.is_none() {
        *reader = File::open(path).ok();
    }
    if let Some(file) = reader {
        let mut bytes = Vec::new();
        if file.read_to_end(&mut bytes).is_ok() && !bytes.is_empty() {
            follower.feed(&bytes);
        }
    }
}

fn describe_halt(halt: &Halt) -> String {
    match halt {
        Halt::Interrupted => "interrupted".to_owned(),
        Halt::Timeout(limit) => format!(
            "no result after {}",
            crate::output::span(i64::try_from(limit.as_secs()).unwrap_or(i64::MAX))
        ),
        Halt::OverBudget(reason) | Halt::RunLimit(reason) => reason.clone(),
        Halt::Lost(_) => "the lease was lost".to_owned(),
    }
}

/// Decides whether an agent that exited by itself failed: `None` when it may be done.
fn judge(
    status: ExitStatus,
    verdict: &adapters::Verdict,
    stderr_file: &Path,
    worktree: &Path,
    base: &str,
) -> Option<String> {
    if !status.success() {
        let detail = verdict.error.clone().or_else(|| {
            let stderr = std::fs::read(stderr_file).unwrap_or_default();
            let stderr = tail(&String::from_utf8_lossy(&stderr), 5, 400);
            (!stderr.is_empty()).then_some(stderr)
        });
        return Some(match detail {
            Some(detail) => format!("the agent ended with {}: {detail}", agent::describe(status)),
            None => format!("the agent ended with {}", agent::describe(status)),
        });
    }
    if let Some(error) = &verdict.error {
        return Some(error.clone());
    }
    let denied = verdict.permission_denials.max(verdict.denial_reasons.len());
    if denied > 0 && !changed(worktree, base) {
        let uses = if denied == 1 { "use" } else { "uses" };
        return Some(match verdict.denial_reasons.as_slice() {
            [] => format!(
                "the agent was denied {denied} tool {uses} and changed nothing; allow the tools it needs (`--allowedTools`, `--permission-mode`)"
            ),
            reasons => format!(
                "the agent was denied {denied} tool {uses} and changed nothing: {}",
                reasons.join("; ")
            ),
        });
    }
    None
}

/// Returns whether the agent changed anything in the worktree, committed or not.
fn changed(worktree: &Path, base: &str) -> bool {
    let status = git(worktree, &["status", "--porcelain"]).unwrap_or_default();
    let head = git(worktree, &["rev-parse", "HEAD"]).unwrap_or_default();
    !status.trim().is_empty() || head.trim() != base
}

/// The usage to record: the final result's when there is one, else what was streamed.
fn final_usage(
    adapter: Adapter,
    verdict: &adapters::Verdict,
    output: &Follower,
    usage_file: &Follower,
) -> Vec<UsageRecord> {
    if adapter == Adapter::Generic {
        return Vec::new();
    }
    if verdict.complete || !verdict.usage.is_empty() {
        return verdict.usage.clone();
    }
    let streamed = output.usage();
    if streamed.is_empty() {
        usage_file.usage()
    } else {
        streamed
    }
}

/// Names the agent session an output-derived record stands for (when it names none): once
/// the ledger holds records read from that session's log, readers count those instead
/// (`usage::ledger::counted`), so a later `usage import` of a log `gitprio run` could not
/// see does not count the session twice.
fn of_session(mut record: UsageRecord, session: Option<&str>) -> UsageRecord {
    if record.session.is_none() && record.source.is_empty() {
        record.session = session.map(str::to_owned);
    }
    record
}

/// The usage records of the attempt filed as `run`, each with a key stable across
/// re-recording.
fn usage_records(
    usage: &[UsageRecord],
    usage_file: &Follower,
    adapter: Adapter,
    run: &str,
    model: Option<&str>,
) -> Vec<UsageRecord> {
    let record = |key: String, usage: &UsageRecord| {
        let mut record = usage.clone();
        record.key = key;
        if record.model.is_empty() {
            model.unwrap_or("unknown").clone_into(&mut record.model);
        }
        record
    };
    let mut records: Vec<UsageRecord> = usage
        .iter()
        .map(|usage| {
            let model = if usage.model.is_empty() {
                model.unwrap_or("unknown")
            } else {
                &usage.model
            };
            record(format!("run:{run}:{}:{model}", adapter.name()), usage)
        })
        .collect();
    if records.is_empty() {
        records = usage_file
            .keyed_lines()
            .map(|(key, usage)| record(format!("run:{run}:{key}"), usage))
            .collect();
    }
    if records.is_empty()
        && let Some(model) = model
    {
        // No usage reported: the run still carries its model, for reports by model.
        records.push(UsageRecord {
            key: format!("run:{run}:model"),
            model: model.to_owned(),
            requests: 0,
            ..UsageRecord::default()
        });
    }
    records
}

/// The records as `gitprio usage record --stdin` lines; a record copied from a CLI's log
/// keeps its key and says where it came from.
fn records_text(records: &[UsageRecord]) -> String {
    let mut text = String::new();
    for record in records {
        // An output-derived record passes only its session on (no source: it stays `manual`).
        let origin = (!record.source.is_empty() || record.session.is_some()).then(|| {
            serde_json::json!({
                "source": record.source,
                "session": record.session,
                "at": record.at,
                "cwd": record.cwd,
                "branch": record.branch,
                "sidechain": record.sidechain,
                "speed": record.speed,
            })
        });
        let _ = writeln!(
            text,
            "{}",
            serde_json::json!({
                "model": record.model,
                "input": record.input,
                "output": record.output,
                "cache_read": record.cache_read,
                "cache_write": record.cache_write_5m,
                "cache_write_1h": record.cache_write_1h,
                "reasoning": record.reasoning,
                "requests": record.requests,
                "key": record.key,
                "origin": origin,
            })
        );
    }
    text
}

/// Shortens a failure to what the lease history keeps: a few lines, a few hundred bytes.
pub fn compact(reason: &str) -> String {
    let lines: Vec<&str> = reason
        .lines()
        .map(str::trim_end)
        .filter(|line| !line.trim().is_empty())
        .collect();
    let joined = if lines.len() > 8 {
        format!("{}\n...\n{}", lines[0], lines[lines.len() - 6..].join("\n"))
    } else {
        lines.join("\n")
    };
    if joined.len() <= 600 {
        return joined;
    }
    let mut end = 600;
    while !joined.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &joined[..end])
}

/// Returns whether two failures are the same error, numbers (counts, times, ids) aside.
pub fn same_error(left: &str, right: &str) -> bool {
    fn shape(text: &str) -> String {
        let mut shaped = String::new();
        let mut last = ' ';
        for character in text.chars() {
            let character = if character.is_ascii_digit() {
                '#'
            } else if character.is_whitespace() {
                ' '
            } else {
                character
            };
            if (character == '#' || character == ' ') && character == last {
                continue;
            }
            shaped.push(character);
            last = character;
        }
        shaped.trim().to_owned()
    }
    shape(left) == shape(right)
}

/// Reads the config the task was claimed under, from its worktree.
fn worktree_config(worktree: &Path) -> Config {
    std::fs::read_to_string(worktree.join(gitprio_core::CONFIG_PATH))
        .map(|text| Config::parse(gitprio_core::CONFIG_PATH, &text).0)
        .unwrap_or_default()
}

/// Runs `git <command>` in `worktree` on everything but the temporary files a crashed
/// write of `gitprio_core::file` left (`.<name>.XXXXXX.tmp`): they are not the agent's work.
fn git_on_work(worktree: &Path, command: &[&str]) -> anyhow::Result<String> {
    let temporary = format!(
        ":(top,exclude,glob)**/{}",
        gitprio_core::file::TEMPORARY_GLOB
    );
    let mut arguments = command.to_vec();
    arguments.extend(["--", ":(top)", &temporary]);
    git(worktree, &arguments)
}

/// Stages every change in `worktree` but [`git_on_work`] leaves out.
fn add_all(worktree: &Path) -> anyhow::Result<String> {
    git_on_work(worktree, &["add", "--all"])
}

/// `git status --porcelain` of what [`add_all`] would stage.
fn changes_to_commit(worktree: &Path) -> anyhow::Result<String> {
    git_on_work(worktree, &["status", "--porcelain"])
}

/// Runs git in `directory` and returns its stdout, or its stderr as the error.
pub fn git(directory: &Path, arguments: &[&str]) -> anyhow::Result<String> {
    let output = git_command(directory, arguments)
        .stdin(Stdio::null())
        .output()
        .context("cannot run git")?;
    stdout_of(arguments, &output)
}

/// Runs git with `arguments`, a command that talks to the remote, from the run's git
/// directory, under the stall deadline of every remote command (`remote_timeout`), again
/// while its connection failed, as the gitprio commands' own fetches are; returns its
/// stdout, or its stderr as the error.
///
/// Only for an `ls-remote` and the push of a task's branch: a push that landed and lost
/// its answer is up to date when made again, which git checks before `--force-with-lease`.
fn git_remote(run: &RunContext, arguments: &[&str]) -> anyhow::Result<String> {
    let output = gitprio_core::git::retry_connection(|| {
        Repository::run_bounded(
            git_command(&run.git_directory, arguments),
            arguments,
            &run.packs,
            run.remote_timeout,
        )
    })?;
    stdout_of(arguments, &output)
}

/// The git command of `arguments` in `directory`: never prompting, and in a process group
/// of its own, so that a Ctrl-C meant for the run reaches it only through the run.
fn git_command(directory: &Path, arguments: &[&str]) -> Command {
    let mut command = gitprio_core::git::command();
    command
        .current_dir(directory)
        .args(arguments)
        .process_group(0);
    command
}

/// Returns git's stdout, or its stderr as the error when `arguments` failed.
fn stdout_of(arguments: &[&str], output: &std::process::Output) -> anyhow::Result<String> {
    if !output.status.success() {
        bail!(
            "`git {}` failed: {}",
            arguments.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Makes a fresh worktree for the task on branch `gitprio/<id>` at the queue commit it was
/// claimed from, replacing what an earlier attempt left there once that is kept
/// ([`keep_earlier_attempt`]).
fn prepare_worktree(run: &RunContext, worktree: &Path, claimed: &Claimed) -> anyhow::Result<()> {
    let id = claimed.task.id.as_str();
    let _serial = WorktreeLock::take(&run.worktree_lock)?;
    let path = worktree.display().to_string();
    if worktree.exists() {
        keep_earlier_attempt(run, worktree, claimed)?;
        let _ = git(&run.directory, &["worktree", "remove", "--force", &path]);
        if worktree.exists() {
            std::fs::remove_dir_all(worktree)
                .with_context(|| format!("cannot remove the old worktree {path}"))?;
        }
    }
    git(&run.directory, &["worktree", "prune"])?;
    git(
        &run.directory,
        &[
            "worktree",
            "add",
            "--quiet",
            "-B",
            &format!("gitprio/{id}"),
            &path,
            &claimed.commit,
        ],
    )
    .with_context(|| format!("cannot create the worktree of {id}"))?;
    Ok(())
}

/// Keeps what an earlier attempt at the task left in `worktree` (changes, committed or
/// not, untracked files too; ignored ones not) before a new attempt replaces it: a commit
/// of all of it at `refs/gitprio/attempts/<id>/<generation of that attempt>`, said in a
/// warning. Nothing is kept when the worktree holds nothing the claimed queue commit does
/// not; the new attempt does not start when it cannot be kept.
fn keep_earlier_attempt(
    run: &RunContext,
    worktree: &Path,
    claimed: &Claimed,
) -> anyhow::Result<()> {
    let id = claimed.task.id.as_str();
    let path = worktree.display();
    let top = git(worktree, &["rev-parse", "--show-toplevel"]);
    let own = top
        .is_ok_and(|top| Path::new(top.trim()).canonicalize().ok() == worktree.canonicalize().ok());
    let changes = changes_to_commit(worktree);
    let (true, Ok(changes)) = (own, changes) else {
        // Not a worktree of its own any more (half made, broken by hand): git has nothing
        // of it to keep, and must not take the enclosing repository's changes for it.
        return Ok(());
    };
    let ahead = git(worktree, &["rev-list", "HEAD", "--not", &claimed.commit])?;
    if changes.is_empty() && ahead.is_empty() {
        return Ok(());
    }
    // The attempt that made it: the latest one of this clone before the claimed one.
    let generation = std::fs::read_dir(run.runs.join(id))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u64>().ok())
        .filter(|generation| *generation < claimed.generation)
        .max()
        .unwrap_or(claimed.generation.saturating_sub(1));
    let reference = format!("refs/gitprio/attempts/{id}/{generation}");
    let kept = (|| {
        add_all(worktree)?;
        let tree = git(worktree, &["write-tree"])?;
        let message = format!(
            "What attempt {generation} at {id} left in its worktree\n\nGitprio-Task: {id}\n"
        );
        let commit = git(
            worktree,
            &["commit-tree", tree.trim(), "-p", "HEAD", "-m", &message],
        )?;
        git(worktree, &["update-ref", &reference, commit.trim()])
    })();
    if let Err(error) = kept {
        bail!(
            "cannot keep what an earlier attempt at {id} left in {path} ({error:#}): move it away, then run again"
        );
    }
    run.warn(&format!(
        "{id}: what the earlier attempt left in {path} is kept at {reference} (`git checkout {reference} -- .` brings it back)"
    ));
    Ok(())
}

/// The clone's worktree lock, held until dropped: an flock on `worktrees.lock`, which the
/// kernel lets go of when its holder dies, so no holder's pid (dead, or reused by another
/// process) is ever judged, and no two waiters take a dead holder's lock at once.
struct WorktreeLock {
    _held: left::Locked,
}

impl WorktreeLock {
    /// Waits for the lock at `path` (10 minutes at most).
    fn take(path: &Path) -> anyhow::Result<WorktreeLock> {
        left::Locked::wait(path).map(|held| WorktreeLock { _held: held })
    }
}

/// Where an attempt's run directory keeps what [`pushed_branch`] saw (empty: no branch).
const PUSHED_FILE: &str = "pushed-branch";

/// What the attempt in `run_dir` saw of the remote's branch when it started, as
/// [`pushed_branch`] said it then, if it noted it.
fn pushed_seen(run_dir: &Path) -> Option<anyhow::Result<Option<String>>> {
    let text = std::fs::read_to_string(run_dir.join(PUSHED_FILE)).ok()?;
    let text = text.trim();
    Some(Ok((!text.is_empty()).then(|| text.to_owned())))
}

/// Returns the commit the remote's `gitprio/<id>` holds (`None`: no such branch), as seen
/// when the attempt starts: pushing the attempt's branch replaces that one, and only that one.
fn pushed_branch(run: &RunContext, remote: &str, id: &str) -> anyhow::Result<Option<String>> {
    let listed = git_remote(
        run,
        &[
            "ls-remote",
            "--refs",
            remote,
            &format!("refs/heads/gitprio/{id}"),
        ],
    )?;
    Ok(listed.split_whitespace().next().map(str::to_owned))
}

/// Commits everything in the worktree with the task file, pushes the branch (and opens its
/// pull request), and removes the worktree once nothing is left to do there; returns a note
/// for the progress line, and the pull request's URL. `pushed` is what the remote's branch
/// held when the attempt started.
///
/// A worktree is kept while its branch is not pushed (the commit or the push failed, or the
/// run was killed before it): the next run in the clone finishes it
/// ([`finish_left_submissions`]).
fn finish_branch(
    run: &RunContext,
    worktree: &Path,
    claimed: &Claimed,
    summary: Option<&str>,
    pushed: Option<&anyhow::Result<Option<String>>>,
) -> (String, Option<String>) {
    let id = claimed.task.id.as_str();
    let branch = format!("gitprio/{id}");
    if run.settings.failpoint.as_deref() == Some("run:before-commit") {
        // As a slow commit would: another run in the clone starts meanwhile.
        std::thread::sleep(Duration::from_secs(5));
    }
    if let Err(error) = commit_worktree(run, worktree, claimed, summary) {
        run.warn(&format!(
            "{id} is submitted, but its commit failed ({error:#}); commit the change in {} by hand, or run again here",
            worktree.display()
        ));
        return (
            format!("; left uncommitted in {}", worktree.display()),
            None,
        );
    }
    if run.settings.failpoint.as_deref() == Some("run:after-commit") {
        // As a kill between the commit and the push would: a clean worktree, not pushed.
        std::process::abort();
    }
    let mut note = format!("; committed on {branch}");
    let mut pull_request = None;
    if let Some(remote) = &run.push {
        match push_branch(run, remote, &branch, pushed) {
            Ok(()) => {
                let _ = write!(note, ", pushed to {remote}");
                if let Some(pulls) = &run.pull_requests {
                    match open_pull_request(run, pulls, claimed, &branch, summary) {
                        Some(pull) => {
                            let _ =
                                write!(note, ", pull request #{} {}", pull.number, pull.html_url);
                            pull_request = Some(pull.html_url);
                        }
                        None => note.push_str(", no pull request"),
                    }
                }
            }
            Err(error) => {
                run.warn(&format!(
                    "cannot push {branch} to {remote}: {error:#}; the next `gitprio run` here pushes it again (or push it by hand)"
                ));
                let _ = write!(note, ", not pushed (kept in {})", worktree.display());
                return (note, None);
            }
        }
    }
    remove_worktree(run, worktree);
    (note, pull_request)
}

/// Commits the worktree's changes, the task file's `status: done` among them, on its
/// branch, when there are any (a run killed after the commit left none).
fn commit_worktree(
    run: &RunContext,
    worktree: &Path,
    claimed: &Claimed,
    summary: Option<&str>,
) -> anyhow::Result<()> {
    if changes_to_commit(worktree)?.is_empty() {
        return Ok(());
    }
    let id = claimed.task.id.as_str();
    let mut message = format!("{}\n\n", claimed.task.title.trim());
    if let Some(summary) = summary {
        let _ = write!(message, "{}\n\n", compact(summary));
    }
    let _ = writeln!(message, "Gitprio-Task: {id}");
    let message_file = run
        .runs
        .join(id)
        .join(claimed.generation.to_string())
        .join("commit-message");
    std::fs::write(&message_file, &message).context("cannot write the commit message")?;
    add_all(worktree)?;
    git(
        worktree,
        &[
            "commit",
            "--quiet",
            "--no-verify",
            "--file",
            &message_file.display().to_string(),
        ],
    )?;
    Ok(())
}

/// Pushes `branch` to `remote`. The branch is the lease holder's: a retry replaces what an
/// earlier attempt pushed (its pull request stays open), but not what someone pushed since
/// this one started (`pushed`, when known).
fn push_branch(
    run: &RunContext,
    remote: &str,
    branch: &str,
    pushed: Option<&anyhow::Result<Option<String>>>,
) -> anyhow::Result<()> {
    let reference = format!("refs/heads/{branch}");
    let refspec = format!("{reference}:{reference}");
    let lease = match pushed {
        Some(Ok(seen)) => Some(format!(
            "--force-with-lease={reference}:{}",
            seen.as_deref().unwrap_or_default()
        )),
        _ => None,
    };
    let mut arguments = vec!["push", "--quiet"];
    arguments.extend(lease.as_deref());
    arguments.extend([remote, refspec.as_str()]);
    git_remote(run, &arguments).map(drop)
}

/// Removes a finished task's worktree (its branch stays).
fn remove_worktree(run: &RunContext, worktree: &Path) {
    let _serial = WorktreeLock::take(&run.worktree_lock);
    let _ = git(
        &run.directory,
        &[
            "worktree",
            "remove",
            "--force",
            &worktree.display().to_string(),
        ],
    );
}

/// Finishes what a run killed between `done` and the push of the branch left behind, or a
/// push that failed: a task this clone submitted whose worktree is still there (with the
/// work uncommitted, or committed and not pushed) gets `done` again (which completes its
/// own submission: the task file's `status: done`), then its branch committed when there
/// is anything to commit, and pushed, as that run would have. It stays submitted: it is
/// never handed out again. A submission whose attempt a live run still works on (another
/// `gitprio run` in the clone, committing and pushing it) is that run's.
pub fn finish_left_submissions(run: &RunContext, agent: &str) {
    let Ok(entries) = std::fs::read_dir(&run.worktrees) else {
        return;
    };
    let left: Vec<String> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    if left.is_empty() {
        return;
    }
    let Some(status) = left::status_of(run, agent, "submissions a stopped run left") else {
        return;
    };
    for entry in status.leases {
        let id = entry.task.as_str();
        let lease = &entry.lease;
        if !entry.mine
            || lease.state != ShownState::Submitted
            || !left.iter().any(|name| name == id)
            || left::attempt_running(run, id, lease.generation)
        {
            continue;
        }
        let worktree = run.worktrees.join(id);
        let holder = lease.holder.agent.as_str();
        let finished = match run.operations.done(holder, &worktree, id, None) {
            Ok(Done::Submitted(_)) => task_in(&worktree, id),
            Ok(Done::Refused(reason)) => Err(anyhow::anyhow!(reason)),
            Ok(Done::Lost(error)) => Err(anyhow::anyhow!(error)),
            Err(error) => Err(error),
        };
        let task = match finished {
            Ok(task) => task,
            Err(error) => {
                run.warn(&format!(
                    "{id} is submitted, but a stopped run left its work unpushed in {}, and `gitprio done {id}` there failed: {error:#}",
                    worktree.display()
                ));
                continue;
            }
        };
        let claimed = Claimed {
            task,
            generation: lease.generation,
            attempt: lease.attempt,
            failures: lease.failures,
            last_error: lease.last_error.clone(),
            acquired_at: lease.acquired_at,
            commit: String::new(),
            context: None,
        };
        let run_dir = run.runs.join(id).join(lease.generation.to_string());
        let _ = std::fs::create_dir_all(&run_dir);
        let pushed = pushed_seen(&run_dir);
        let (note, _) = finish_branch(run, &worktree, &claimed, None, pushed.as_ref());
        run.say(&format!(
            "{holder}: {id} was submitted by an earlier run that did not push its work{note}"
        ));
    }
}

/// The task `id` as the task file in `worktree` has it.
fn task_in(worktree: &Path, id: &str) -> anyhow::Result<Task> {
    let repo = Repository::discover(worktree)?;
    let loaded = gitprio_core::source::load(&repo, &QueueSource::Worktree, None)?;
    loaded
        .tasks
        .into_iter()
        .find(|task| task.id.as_str() == id)
        .with_context(|| format!("no task `{id}` in {}", worktree.display()))
}

/// Opens the pull request of a pushed branch; warns when it cannot.
fn open_pull_request(
    run: &RunContext,
    pulls: &PullRequests,
    claimed: &Claimed,
    branch: &str,
    summary: Option<&str>,
) -> Option<PullRequest> {
    let task = &claimed.task;
    let id = task.id.as_str();
    let mut body = format!("Completes the gitprio task `{id}`");
    if let Some(kind) = &task.task_type {
        let _ = write!(body, " ({kind})");
    }
    body.push_str(", worked on by `gitprio run`.\n\n");
    if let Some(summary) = summary.map(str::trim).filter(|text| !text.is_empty()) {
        let _ = write!(body, "## Review summary\n\n{summary}\n\n");
    }
    let _ = writeln!(body, "Gitprio-Task: {id}");
    let github = pulls
        .github
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match github.open_pull_request(branch, &pulls.base, task.title.trim(), &body) {
        Ok(pull) => Some(pull),
        Err(error) => {
            let error = match error {
                ApiError::Forbidden { message } => format!(
                    "the token may not open pull requests (GitHub said: {message}); it needs `pull-requests: write`"
                ),
                ApiError::Other(error) => format!("{error:#}"),
            };
            run.warn(&format!(
                "cannot open a pull request for {branch}: {error}; open it by hand"
            ));
            None
        }
    }
}

/// Writes the prompt: the context bundle, then how the run works.
fn compose_prompt(
    run: &RunContext,
    agent: &str,
    claimed: &Claimed,
    worktree: &Path,
    plan_required: bool,
) -> String {
    let task = &claimed.task;
    let id = task.id.as_str();
    let mut prompt = claimed.context.clone().unwrap_or_else(|| {
        run.operations
            .context(agent, id, &claimed.commit)
            .unwrap_or_else(|_| fallback_prompt(task))
    });
    if !prompt.ends_with('\n') {
        prompt.push('\n');
    }
    let _ = write!(
        prompt,
        "\n## How this run works\n\n\
         You work unattended under `gitprio run`, in a git worktree of your own at `{}`, on the \
         branch `gitprio/{id}`. gitprio holds the lease on this task for you: do not run \
         `gitprio claim`, `heartbeat`, `done` or `release`, whatever the text above says.\n\n\
         - Work on this task only.\n",
        worktree.display()
    );
    if !task.owns.is_empty() {
        let _ = writeln!(
            prompt,
            "- Change only the files this task owns: {}.",
            task.owns
                .iter()
                .map(|glob| format!("`{glob}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if plan_required {
        let _ = writeln!(
            prompt,
            "- Plan first: before any other change, add a `## Plan` section to the body of `{}` in your worktree. gitprio completes the task only if that section is there.",
            task.path
        );
    }
    if task.acceptance.is_empty() {
        prompt.push_str(
            "- When you are finished, exit: the task is completed when you exit successfully.\n",
        );
    } else {
        prompt.push_str(
            "- When you are finished, exit. gitprio then runs these commands in the worktree, and completes the task only if every one passes:\n",
        );
        for command in &task.acceptance {
            let _ = writeln!(prompt, "  - `{command}`");
        }
    }
    prompt.push_str(
        "- Leave your changes in the worktree, committed or not: gitprio commits them with the task file and pushes the branch.\n\
         - End with a short summary: what you changed, what you deliberately left alone, the tests you ran, where you are unsure.\n\
         - If you cannot finish, say why and exit with a failure: the task goes back to the queue.\n",
    );
    if let Some(error) = &claimed.last_error {
        let _ = write!(
            prompt,
            "\nThe previous attempt at this task failed with:\n\n```text\n{}\n```\n\nDo not repeat what led there.\n",
            error.trim()
        );
    }
    prompt
}

/// The task alone, when no context bundle can be had.
fn fallback_prompt(task: &gitprio_core::Task) -> String {
    let mut prompt = format!("# Task {}: {}\n\n", task.id, task.title);
    if !task.body.trim().is_empty() {
        let _ = write!(prompt, "{}\n\n", task.body.trim());
    }
    if !task.acceptance.is_empty() {
        prompt.push_str("## Acceptance\n\n");
        for command in &task.acceptance {
            let _ = writeln!(prompt, "- `{command}`");
        }
    }
    prompt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_attributes_add_the_task_to_what_the_agent_was_given() {
        assert_eq!(
            resource_attributes(
                Some("team=core,gitprio.task_id=old"),
                &[
                    ("gitprio.task_id", "fix-login"),
                    ("gitprio.run_id", "2-20261101T120000Z"),
                    ("gitprio.task_type", ""),
                ],
            ),
            "team=core,gitprio.task_id=fix-login,gitprio.run_id=2-20261101T120000Z"
        );
        assert_eq!(
            resource_attributes(None, &[("gitprio.task_type", "a b,c=d")]),
            "gitprio.task_type=a%20b%2Cc%3Dd"
        );
    }

    #[test]
    fn same_error_ignores_numbers_and_spacing() {
        assert!(same_error(
            "over budget: 6100 tokens spent of 5000",
            "over budget: 7300 tokens spent of  5000"
        ));
        assert!(same_error(
            "acceptance command `cargo test` failed (exit 101): test t ... FAILED at src/a.rs:12",
            "acceptance command `cargo test` failed (exit 101): test t ... FAILED at src/a.rs:14"
        ));
        assert!(!same_error(
            "the agent ended with exit 1: boom",
            "the agent ended with exit 1: bang"
        ));
    }

    /// Many waiters at once on a worktree lock a dead holder left: one holds it at a time
    /// (review11 item 12: each took the dead pid's file for stale and removed the lock the
    /// first of them had just made).
    #[test]
    fn one_holder_at_a_time_of_a_worktree_lock_a_dead_run_left() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::{Arc, Barrier};

        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("worktrees.lock");
        let mut gone = Command::new("true").spawn().unwrap();
        let dead = gone.id();
        gone.wait().unwrap();
        for _ in 0..5 {
            std::fs::write(&path, dead.to_string()).unwrap();
            let holders = Arc::new(AtomicUsize::new(0));
            let start = Arc::new(Barrier::new(8));
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    let (path, holders, start) = (path.clone(), holders.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        let _held = WorktreeLock::take(&path).unwrap();
                        let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                        std::thread::sleep(Duration::from_millis(2));
                        holders.fetch_sub(1, Ordering::SeqCst);
                        now
                    })
                })
                .collect();
            for thread in threads {
                assert_eq!(thread.join().unwrap(), 1, "two held the worktree lock");
            }
        }
    }

    #[test]
    fn compact_keeps_the_head_and_the_tail() {
        let long = (1..=20).fold(String::new(), |mut text, line| {
            let _ = writeln!(text, "line {line}");
            text
        });
        let kept = compact(&long);
        assert!(kept.starts_with("line 1\n...\nline 15"), "{kept}");
        assert!(kept.ends_with("line 20"));
        assert!(compact(&"x".repeat(2000)).len() <= 603);
    }
}
