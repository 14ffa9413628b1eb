//! `gitprio run`: the autopilot loop. Claim, work in a worktree of the task's own, renew,
//! watch the budget, record usage, then `done` or release; stop when nothing is ready.
//!
//! Every lease and usage operation is a subprocess of this binary (see `operations`),
//! so the loop does exactly what an agent following the README would do, and each slot
//! of `--parallel` is a thread that drives one agent process at a time. Claims within a
//! run are made one at a time, so with `--avoid-overlap` (on unless `--allow-overlap`)
//! each claim sees the leases of the tasks its sibling slots hold.

mod adapters;
mod agent;
mod attempt;
mod left;
mod logs;
mod operations;
mod renewer;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use clap::Args;
use gitprio_core::git::Repository;
use gitprio_core::lease::Mode;
use gitprio_core::lease::parse_duration;
use gitprio_core::reply::run::{Attempt as Report, Ending, Overshoot, RunReply, Stopped};
use gitprio_core::usage::money::Usd;
use gitprio_core::usage::report::{GroupBy, RunFilter, Summary, TaskFacts, report};
use gitprio_core::usage::{Ledger, PriceTable};
use gitprio_core::{Config, TaskId};

use self::adapters::Adapter;
use self::left::ClaimLock;
use self::operations::{Claim, Claimed, Filters, Operations};
use crate::args::StoreArgs;
use crate::cli::CommandResult;
use crate::exit_code::ExitStatus;
use crate::github::{ApiSettings, GitHub};
use crate::output;
use crate::settings::Settings;
use gitprio_core::workspace::{StoreChoice, Workspace, store_mode};

#[derive(Debug, Args)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent command-line switches"
)]
#[command(
    after_help = "Placeholders in the agent command: {prompt_file} {task_id} {model} {worktree} {usage_file}.\nWithout {prompt_file}, the prompt is the agent's stdin.\n\nExamples:\n  gitprio run -- claude -p --output-format stream-json --verbose --model {model} --permission-mode acceptEdits\n  gitprio run --parallel 4 -- codex exec --json -m {model} --sandbox workspace-write -\n  gitprio run -- gemini -p \"\" --output-format stream-json -m {model} --approval-mode auto_edit --skip-trust\n  gitprio run -- ./my-agent.sh {prompt_file}"
)]
pub struct RunArgs {
    /// Agents working at once, each on its own task in its own worktree.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub parallel: u32,
    /// Stop claiming after this many claims (attempts, retries included).
    #[arg(long, value_name = "N")]
    pub max_tasks: Option<u32>,
    /// Stop when the run has spent this many tokens (`2m`); running agents are stopped.
    #[arg(long, value_name = "TOKENS", value_parser = parse_tokens)]
    pub max_tokens: Option<u64>,
    /// Stop when the run has spent this many dollars (list-price estimate).
    #[arg(long, value_name = "USD", value_parser = crate::args::parse_dollars)]
    pub max_usd: Option<f64>,
    /// The agents' name in leases and reports, `-1`, `-2`... appended with `--parallel`
    /// (default: `GITPRIO_AGENT`, else `user@host:<worktree>`).
    #[arg(long, value_name = "NAME")]
    pub agent_name: Option<String>,
    /// Where the tasks' worktrees go, one directory per task (default: `<repo>-gitprio-worktrees`
    /// beside the repository, outside `.git/`, where agent CLIs refuse to edit).
    #[arg(long, value_name = "DIR")]
    pub worktree_dir: Option<PathBuf>,
    /// How to read the agent's output (default: told from the command's name).
    #[arg(long, value_enum)]
    pub adapter: Option<Adapter>,
    /// Where the agent writes its usage, as `gitprio usage record --stdin` lines, relative
    /// to its worktree (default: a file outside it, passed as `{usage_file}` and
    /// `GITPRIO_USAGE_FILE`).
    #[arg(long, value_name = "PATH")]
    pub usage_file: Option<String>,
    /// The lease TTL (default: `lease_ttl` of the config); renewed every third of it.
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Stop an agent that has not finished after this long (a failed attempt).
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// How long a stopped agent gets between SIGTERM and SIGKILL.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub grace: String,
    /// Only claim tasks of this type.
    #[arg(long = "type", value_name = "TYPE")]
    pub task_type: Option<String>,
    /// Only claim tasks of this feature.
    #[arg(long, value_name = "FEATURE")]
    pub feature: Option<String>,
    /// Also claim tasks whose `owns` overlap a task another agent holds.
    #[arg(long)]
    pub allow_overlap: bool,
    /// When nothing is ready, wait and claim again instead of stopping.
    #[arg(long)]
    pub wait: bool,
    /// How often `--wait` looks for a ready task.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "30s",
        requires = "wait"
    )]
    pub poll: String,
    /// Do not push the branches of completed tasks.
    #[arg(long)]
    pub no_push: bool,
    /// Open a GitHub pull request for each pushed branch (token: `GITHUB_TOKEN` or `GH_TOKEN`;
    /// repository: `GITHUB_REPOSITORY`, else the remote's URL; API: `GITHUB_API_URL`).
    #[arg(long, conflicts_with = "no_push")]
    pub open_pr: bool,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// The agent command, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

fn parse_tokens(text: &str) -> Result<u64, String> {
    gitprio_core::task::parse_token_count(text)
        .ok_or_else(|| format!("`{text}` is not a token count; write it like 500000 or 500k"))
}

fn duration(text: &str, what: &str) -> anyhow::Result<Duration> {
    parse_duration(text)
        .and_then(|duration| Duration::try_from(duration).ok())
        .ok_or_else(|| anyhow!("invalid {what} `{text}`: write it like `90s`, `30m` or `2h`"))
}

/// Why the run stopped.
#[derive(Clone, Debug, PartialEq)]
enum Stop {
    /// `claim` exited 3 with nothing running: its reason code and message.
    NothingReady(String, String),
    MaxTasks(u32),
    MaxTokens(u64),
    MaxUsd(f64),
    Interrupted,
    Error(String),
}

impl Stop {
    fn describe(&self) -> String {
        match self {
            Stop::NothingReady(_, message) => message.clone(),
            Stop::MaxTasks(limit) => format!("--max-tasks {limit} reached"),
            Stop::MaxTokens(limit) => format!("--max-tokens {limit} reached"),
            Stop::MaxUsd(limit) => format!("--max-usd {limit} reached"),
            Stop::Interrupted => "interrupted".to_owned(),
            Stop::Error(error) => format!("error: {error}"),
        }
    }

    /// Returns the status the run ends with when it stops this way.
    fn status(&self) -> ExitStatus {
        match self {
            Stop::Interrupted => ExitStatus::Interrupted,
            Stop::Error(_) => ExitStatus::Failure,
            _ => ExitStatus::Success,
        }
    }

    fn code(&self) -> Stopped {
        match self {
            Stop::NothingReady(..) => Stopped::NothingReady,
            Stop::MaxTasks(_) => Stopped::MaxTasks,
            Stop::MaxTokens(_) => Stopped::MaxTokens,
            Stop::MaxUsd(_) => Stopped::MaxUsd,
            Stop::Interrupted => Stopped::Interrupted,
            Stop::Error(_) => Stopped::Error,
        }
    }
}

/// The run's limits: `--max-tasks`, `--max-tokens`, `--max-usd`.
#[derive(Debug, Default)]
struct Limits {
    claims: Option<u32>,
    tokens: Option<u64>,
    usd: Option<f64>,
}

#[derive(Debug, Default)]
struct State {
    stop: Option<Stop>,
    /// Slots working on a task.
    busy: usize,
    claims: u32,
    /// Counts finished attempts, so a waiting slot sees that something changed.
    finishes: u64,
    spent_tokens: u64,
    spent_usd: f64,
    /// Tokens and dollars of each slot's running agent.
    live: Vec<(u64, f64)>,
    /// Tokens no price is known for, of each slot's running agent and of the finished
    /// attempts (the last), each with a model they were spent on: `--max-usd` cannot count
    /// them, so they stop a run that has it.
    unpriced: Vec<(u64, String)>,
    reports: Vec<Report>,
    /// The claimed tasks' facts, for the summary.
    tasks: BTreeMap<TaskId, TaskFacts>,
    /// Tasks whose lease an attempt of this run lost: revoked, or taken by another agent.
    /// The run never claims them again, so a task something keeps taking away cannot
    /// make it spin (the revoke counted a failure already).
    lost: BTreeSet<TaskId>,
    /// Tasks a slot of this run is on. However a slot learns that it lost one (heartbeat,
    /// `done`, a refused release, an expired lease), its siblings never claim it meanwhile.
    working: BTreeSet<TaskId>,
}

/// What the slots share: the run's state, its limits, and Ctrl-C.
#[derive(Debug)]
pub struct Control {
    state: Mutex<State>,
    changed: Condvar,
    interrupts: AtomicUsize,
    limits: Limits,
}

impl Control {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many times Ctrl-C (or SIGTERM) was received.
    pub fn interrupts(&self) -> usize {
        self.interrupts.load(Ordering::SeqCst)
    }

    fn interrupt(&self) {
        self.interrupts.fetch_add(1, Ordering::SeqCst);
        let mut state = self.lock();
        state.stop.get_or_insert(Stop::Interrupted);
        self.changed.notify_all();
    }

    /// Publishes what the agent of `slot` has spent so far.
    /// `unpriced`: its tokens no price is known for (not in `usd`), and their model.
    pub fn set_live(&self, slot: usize, tokens: u64, usd: f64, unpriced: (u64, String)) {
        let mut state = self.lock();
        state.live[slot] = (tokens, usd);
        // The model stays when the count is reset, for `finish` to name.
        let (unpriced_tokens, model) = unpriced;
        state.unpriced[slot].0 = unpriced_tokens;
        if !model.is_empty() {
            state.unpriced[slot].1 = model;
        }
    }

    /// The run limit that the finished and running agents together have passed, if any.
    /// Passing one stops the run: no more claims, and every running agent is stopped.
    pub fn run_limit(&self) -> Option<String> {
        let mut state = self.lock();
        let stop = self.spend_limit(&state, false)?;
        let reason = match &stop {
            Stop::MaxTokens(limit) => format!("the run reached --max-tokens {limit}"),
            Stop::MaxUsd(limit) => format!("the run reached --max-usd {limit}"),
            Stop::Error(reason) => reason.clone(),
            _ => unreachable!("only spending limits"),
        };
        if state.stop.is_none() {
            state.stop = Some(stop);
            self.changed.notify_all();
        }
        Some(reason)
    }

    /// What finished and running agents spent together: tokens and dollars.
    fn spent(state: &State) -> (u64, f64) {
        let tokens = state.spent_tokens + state.live.iter().map(|(tokens, _)| tokens).sum::<u64>();
        let usd = state.spent_usd + state.live.iter().fold(0.0, |sum, (_, usd)| sum + usd);
        (tokens, usd)
    }

    /// The spending limit passed (or, `reached`, reached), if any.
    fn spend_limit(&self, state: &State, reached: bool) -> Option<Stop> {
        let (tokens, usd) = Control::spent(state);
        if let Some(limit) = self.limits.tokens
            && (tokens > limit || (reached && tokens == limit))
        {
            return Some(Stop::MaxTokens(limit));
        }
        if let Some(limit) = self.limits.usd
            && (usd > limit || (reached && (usd - limit).abs() < f64::EPSILON))
        {
            return Some(Stop::MaxUsd(limit));
        }
        if let Some(limit) = self.limits.usd
            && let Some((_, model)) = state.unpriced.iter().find(|(tokens, _)| *tokens > 0)
        {
            // A dollar cap that cannot count some of the spend does not let it through as
            // free: the run stops as it would at the cap.
            let tokens: u64 = state.unpriced.iter().map(|(tokens, _)| tokens).sum();
            return Some(Stop::Error(format!(
                "--max-usd {limit} cannot be checked: {} tokens of {model} have no price; add the model to .tasks/prices.yaml, or limit the run with --max-tokens",
                output::tokens(tokens)
            )));
        }
        None
    }

    /// The limit that forbids another claim, if any: the running agents' spend counts too.
    fn claim_limit(&self, state: &State) -> Option<Stop> {
        if let Some(limit) = self.limits.claims
            && state.claims >= limit
        {
            return Some(Stop::MaxTasks(limit));
        }
        self.spend_limit(state, true)
    }

    fn stop(&self, stop: Stop) {
        let mut state = self.lock();
        state.stop.get_or_insert(stop);
        self.changed.notify_all();
    }
}

/// The GitHub repository `--open-pr` opens pull requests in, and their base branch.
#[derive(Debug)]
pub struct PullRequests {
    /// One request at a time: the client runs on its own single-threaded runtime.
    pub github: Mutex<GitHub>,
    pub base: String,
}

impl PullRequests {
    /// Resolves the token, the repository and the API from the environment and the remote;
    /// warns and returns `None` when one is missing, so the run goes on without pull requests.
    fn resolve(
        settings: &Settings,
        repo: &Repository,
        remote: Option<&str>,
        config: &Config,
    ) -> Option<PullRequests> {
        let warn = |why: &str| {
            output::message(
                settings,
                "warning",
                &format!(
                    "--open-pr: {why}; completed branches are pushed, but no pull request is opened"
                ),
            );
        };
        let Some(remote) = remote else {
            warn("there is no remote to push the branches to");
            return None;
        };
        let variable = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        let Some(token) = variable("GITHUB_TOKEN").or_else(|| variable("GH_TOKEN")) else {
            warn("neither GITHUB_TOKEN nor GH_TOKEN is set");
            return None;
        };
        let url =
            attempt::git(&settings.directory, &["remote", "get-url", remote]).unwrap_or_default();
        let Some((owner, name)) = variable("GITHUB_REPOSITORY")
            .as_deref()
            .and_then(owner_and_name)
            .or_else(|| github_repository(url.trim()))
        else {
            warn(&format!(
                "cannot tell the GitHub repository from the URL of `{remote}` ({}); set GITHUB_REPOSITORY=owner/name",
                url.trim()
            ));
            return None;
        };
        let base = queue_branch(settings, repo, config, false).unwrap_or_else(|| "main".to_owned());
        let api = ApiSettings {
            api_url: variable("GITHUB_API_URL")
                .unwrap_or_else(|| "https://api.github.com".to_owned()),
            token,
            owner,
            repo: name,
            author: None,
        };
        match GitHub::new(api) {
            Ok(github) => Some(PullRequests {
                github: Mutex::new(github),
                base,
            }),
            Err(error) => {
                warn(&format!("{error:#}"));
                None
            }
        }
    }
}

/// The queue's branch on the remote, in remote mode: as the lease store names it, from the
/// branch `settings` were told (`GITPRIO_BRANCH`) over the config's.
fn queue_branch(
    settings: &Settings,
    repo: &Repository,
    config: &Config,
    local: bool,
) -> Option<String> {
    match store_mode(
        repo,
        config,
        StoreChoice::local(local),
        settings.branch.as_deref(),
    ) {
        Ok(Mode::Remote { branch, .. }) => Some(branch),
        Ok(Mode::Local) | Err(_) => None,
    }
}

/// Returns the agent command with a relative program path (`./agent.sh`, `../bin/agent`)
/// made absolute from `directory`, where the run starts, as the shell that typed it reads
/// it: the agent runs in a task's worktree, where the same path names another file. A
/// path that is not there is an error before anything is claimed.
fn agent_command(directory: &Path, command: &[String]) -> anyhow::Result<Vec<String>> {
    let mut command = command.to_vec();
    if let Some(program) = command.first_mut()
        && program.contains('/')
        && Path::new(program.as_str()).is_relative()
    {
        let path = directory.join(program.as_str());
        anyhow::ensure!(
            path.is_file(),
            "cannot find the agent `{program}` in {}: a relative path is read from the directory `gitprio run` starts in",
            directory.display()
        );
        *program = std::path::absolute(&path)
            .with_context(|| format!("cannot resolve {}", path.display()))?
            .display()
            .to_string();
    }
    Ok(command)
}

/// Splits `owner/name`.
fn owner_and_name(text: &str) -> Option<(String, String)> {
    let (owner, name) = text.trim_matches('/').split_once('/')?;
    let name = name.strip_suffix(".git").unwrap_or(name);
    (!owner.is_empty() && !name.is_empty() && !name.contains('/'))
        .then(|| (owner.to_owned(), name.to_owned()))
}

/// The `owner/name` of a GitHub remote URL: `https://github.com/o/r.git`,
/// `git@github.com:o/r.git` or `ssh://git@github.com/o/r`.
fn github_repository(url: &str) -> Option<(String, String)> {
    let path = if let Some((_, rest)) = url.split_once("://") {
        let (host, path) = rest.split_once('/')?;
        host.contains("github").then_some(path)?
    } else {
        let (host, path) = url.split_once(':')?;
        host.contains("github").then_some(path)?
    };
    owner_and_name(path)
}

/// Everything an attempt needs, shared by the slots.
#[derive(Debug)]
pub struct RunContext {
    pub settings: Settings,
    pub operations: Operations,
    /// The agent command, placeholders unexpanded.
    pub command: Vec<String>,
    pub adapter: Adapter,
    /// The directory the run started in.
    pub directory: PathBuf,
    /// Where `git` talks to the remote from (see [`Repository::git_directory`]), as the
    /// gitprio commands do, so a relative remote URL works from every worktree.
    pub git_directory: PathBuf,
    /// The queue's branch on the remote, in remote mode: `GITPRIO_BRANCH` for the agent.
    pub branch: Option<String>,
    /// Where each task gets a worktree of its own ([`gitprio_core::workspace::task_worktrees`], or `--worktree-dir`).
    pub worktrees: PathBuf,
    /// `<common git dir>/gitprio/runs`: each attempt's prompt and output.
    pub runs: PathBuf,
    /// `<common git dir>/gitprio/run-claims`: each agent's claim lock ([`left::ClaimLock`]).
    pub claims: PathBuf,
    pub grace: Duration,
    pub timeout: Option<Duration>,
    pub heartbeat_every: Duration,
    pub usage_file: Option<String>,
    /// The remote completed branches are pushed to.
    pub push: Option<String>,
    /// How long a git command that talks to the remote may make no progress (the config's
    /// `remote_timeout`), as the gitprio commands allow.
    pub remote_timeout: Duration,
    /// Where the clone receives packs (`objects/pack`): their growth is a fetch's progress.
    pub packs: PathBuf,
    /// Where pull requests are opened for the pushed branches (`--open-pr`).
    pub pull_requests: Option<PullRequests>,
    pub prices: PriceTable,
    /// What the costs of the summary are estimated at (see `output::list_price_label`).
    pub price_label: String,
    pub control: Control,
    /// The lock file that makes worktrees be added and removed one at a time, by every
    /// run of the clone: `git worktree add` is not safe against a concurrent one.
    pub worktree_lock: PathBuf,
}

/// Writes an error the run logs itself as the CLI writes it on exit, its hint included
/// (`gitprio_core::hint`): one rendering for both.
pub fn rendered(error: &anyhow::Error) -> String {
    crate::cli::message(error, gitprio_core::hint::FrontEnd::Cli)
}

impl RunContext {
    /// Prints a progress line to stderr.
    pub fn say(&self, text: &str) {
        output::message(&self.settings, "info", text);
    }

    pub fn warn(&self, text: &str) {
        output::message(&self.settings, "warning", text);
    }
}

pub fn run(settings: &Settings, args: &RunArgs) -> CommandResult {
    let repo = Repository::discover(&settings.directory)?;
    let config = {
        let notices = output::Stderr(settings);
        let workspace =
            Workspace::open(&repo, settings.invocation(), args.store.choice(), &notices)?;
        workspace.config().clone()
    };
    let ttl_text = args
        .ttl
        .clone()
        .unwrap_or_else(|| gitprio_core::config::format_duration(config.lease_ttl));
    let ttl = duration(&ttl_text, "lease TTL")?;
    if ttl.is_zero() {
        return Err(anyhow!("invalid lease TTL `{ttl_text}`: it must be longer than 0s").into());
    }
    let agent_name = args
        .agent_name
        .clone()
        .unwrap_or_else(|| settings.agent.clone());
    let slots = usize::try_from(args.parallel).unwrap_or(1);
    let context = Arc::new(RunContext::resolve(
        settings, args, &repo, &config, &ttl_text, ttl, slots,
    )?);
    let filters = Filters {
        task_type: args.task_type.clone(),
        feature: args.feature.clone(),
        avoid_overlap: !args.allow_overlap,
    };
    let poll = duration(&args.poll, "poll interval")?;
    handle_interrupts(&context)?;
    context.say(&format!(
        "running {} ({} adapter) with {slots} agent{} as {agent_name}; the lease TTL is {ttl_text}",
        args.command.join(" "),
        context.adapter.name(),
        if slots == 1 { "" } else { "s" },
    ));
    attempt::finish_left_submissions(&context, &agent_name);
    let agents: Vec<String> = (0..slots)
        .map(|slot| {
            if slots == 1 {
                agent_name.clone()
            } else {
                format!("{agent_name}-{}", slot + 1)
            }
        })
        .collect();
    left::release_left_leases(&context, &agents);
    std::thread::scope(|scope| {
        for (slot, agent) in agents.iter().enumerate() {
            let context = &context;
            let filters = &filters;
            scope.spawn(move || work(context, slot, agent, filters, args.wait, poll));
        }
    });
    let state = std::mem::take(&mut *context.control.lock());
    let stop = state
        .stop
        .clone()
        .unwrap_or_else(|| Stop::NothingReady("empty".to_owned(), "nothing ready".to_owned()));
    let summary = summarize(settings, &repo, args.store.local, &state, &context.prices);
    print_summary(
        args.json,
        &stop,
        &state,
        summary.as_ref(),
        &context.price_label,
    )?;
    Ok(stop.status())
}

impl RunContext {
    /// Resolves the options of `gitprio run` that the attempts need.
    fn resolve(
        settings: &Settings,
        args: &RunArgs,
        repo: &Repository,
        config: &Config,
        ttl_text: &str,
        ttl: Duration,
        slots: usize,
    ) -> anyhow::Result<Self> {
        let program = args.command.first().context("the agent command is empty")?;
        let remote = config.remote.clone().unwrap_or_else(|| "origin".to_owned());
        let common = repo.common_dir().to_path_buf();
        let push =
            (!args.no_push && !args.store.local && repo.has_remote(&remote)).then_some(remote);
        let branch = queue_branch(settings, repo, config, args.store.local);
        let pull_requests = if args.open_pr {
            PullRequests::resolve(settings, repo, push.as_deref(), config)
        } else {
            None
        };
        let repository_prices =
            gitprio_core::workspace::price_overrides(repo, None).unwrap_or_default();
        output::price_problems(settings, &repository_prices);
        Ok(Self {
            settings: settings.clone(),
            operations: Operations {
                exe: own_binary()?,
                directory: settings.directory.clone(),
                local: args.store.local,
                ttl: Some(ttl_text.to_owned()),
                branch: branch.clone(),
            },
            command: agent_command(&settings.directory, &args.command)?,
            adapter: args.adapter.unwrap_or_else(|| Adapter::detect(program)),
            directory: settings.directory.clone(),
            git_directory: repo.git_directory(),
            branch,
            worktrees: match &args.worktree_dir {
                Some(directory) => std::path::absolute(settings.directory.join(directory))
                    .context("cannot resolve --worktree-dir")?,
                None => gitprio_core::workspace::task_worktrees(repo),
            },
            runs: common.join("gitprio").join("runs"),
            claims: common.join("gitprio").join("run-claims"),
            grace: duration(&args.grace, "grace period")?,
            timeout: args
                .timeout
                .as_deref()
                .map(|text| duration(text, "timeout"))
                .transpose()?,
            heartbeat_every: (ttl / 3).max(Duration::from_millis(200)),
            usage_file: args.usage_file.clone(),
            push,
            remote_timeout: config.remote_timeout.unsigned_abs(),
            packs: common.join("objects").join("pack"),
            pull_requests,
            prices: repository_prices.table(),
            price_label: output::list_price_label(repository_prices.prices.len(), None),
            control: Control {
                state: Mutex::new(State {
                    live: vec![(0, 0.0); slots],
                    unpriced: vec![(0, String::new()); slots + 1],
                    ..State::default()
                }),
                changed: Condvar::new(),
                interrupts: AtomicUsize::new(0),
                limits: Limits {
                    claims: args.max_tasks,
                    tokens: args.max_tokens,
                    usd: args.max_usd,
                },
            },
            worktree_lock: common.join("gitprio").join("worktrees.lock"),
        })
    }
}

/// The binary the run's operations are subprocesses of: this very one, also once its
/// path names another file or none (an upgrade or a rebuild replaced it while the run
/// works), through `/proc/self/exe` where there is one; else its path.
fn own_binary() -> anyhow::Result<PathBuf> {
    let own = Path::new("/proc/self/exe");
    if own.exists() {
        return Ok(own.to_path_buf());
    }
    std::env::current_exe().context("cannot find the gitprio binary")
}

/// Ctrl-C stops the agents and releases their tasks; a second one kills them.
fn handle_interrupts(context: &Arc<RunContext>) -> anyhow::Result<()> {
    let handler = Arc::clone(context);
    ctrlc::set_handler(move || {
        let first = handler.control.interrupts() == 0;
        handler.control.interrupt();
        if first {
            handler.say("interrupted: stopping the agents and releasing their tasks (Ctrl-C again kills them)");
        } else {
            handler.say("interrupted again: killing the agents");
        }
    })
    .context("cannot install the Ctrl-C handler")
}

/// What a slot does next, decided while it holds the claim turn.
enum Next {
    /// Work on the task claimed, whose claim lock is held until the attempt takes over.
    Work(Box<Claimed>, ClaimLock),
    /// Nothing ready now, but sibling slots are working: wait for one to finish, unless
    /// one finished already (the finishes seen before the claim).
    WaitForSiblings(u64),
    /// Nothing ready and nothing running: poll again later (`--wait`).
    Poll,
    Quit,
}

/// One slot: claims and works on tasks one after the other until the run stops.
fn work(
    context: &RunContext,
    slot: usize,
    agent: &str,
    filters: &Filters,
    wait: bool,
    poll: Duration,
) {
    loop {
        match claim_next(context, agent, filters, wait) {
            Next::Quit => return,
            Next::WaitForSiblings(seen) => wait_for_siblings(&context.control, seen),
            Next::Poll => poll_again(context, agent, poll),
            Next::Work(claimed, lock) => {
                let outcome = attempt::attempt(context, slot, agent, &claimed, lock);
                finish(context, slot, agent, &claimed, outcome);
            }
        }
    }
}

/// Decides what the slot does next, holding the claim turn: one slot claims at a time, so
/// the run's limits and the siblings' work are up to date when it does.
fn claim_next(context: &RunContext, agent: &str, filters: &Filters, wait: bool) -> Next {
    static CLAIM_TURN: Mutex<()> = Mutex::new(());
    let control = &context.control;
    let _turn = CLAIM_TURN.lock().unwrap_or_else(PoisonError::into_inner);
    // What the claim sees is as of the finishes before it: one that lands while it looks
    // (a sibling giving its task back) may have made a task ready that it did not see.
    let (limit, lost, skip, seen) = {
        let state = control.lock();
        if state.stop.is_some() {
            return Next::Quit;
        }
        let skip: BTreeSet<TaskId> = state.lost.union(&state.working).cloned().collect();
        (
            control.claim_limit(&state),
            state.lost.clone(),
            skip,
            state.finishes,
        )
    };
    if let Some(limit) = limit {
        control.stop(limit);
        return Next::Quit;
    }
    let mut tries = 1;
    let (claim, lock) = loop {
        let lock = match ClaimLock::take(context, agent) {
            Ok(lock) => lock,
            Err(error) => {
                control.stop(Stop::Error(rendered(&error)));
                return Next::Quit;
            }
        };
        match context
            .operations
            .claim(agent, filters, &skip, lock.reply())
        {
            Err(error)
                if tries < CLAIM_TRIES && transient(&error) && control.lock().stop.is_none() =>
            {
                context.warn(&format!("{agent}: {}; claiming again", rendered(&error)));
                drop(lock);
                tries += 1;
                std::thread::sleep(gitprio_core::git::backoff(tries));
            }
            claim => break (claim, lock),
        }
    };
    match claim {
        Ok(Claim::Claimed(claimed)) => {
            let mut state = control.lock();
            state.busy += 1;
            state.claims += 1;
            let task = &claimed.task;
            state.working.insert(task.id.clone());
            state.tasks.insert(task.id.clone(), TaskFacts::from(task));
            Next::Work(claimed, lock)
        }
        Ok(Claim::NothingReady { reason, message }) => {
            let mut state = control.lock();
            if state.busy > 0 || state.finishes != seen {
                Next::WaitForSiblings(seen)
            } else if wait {
                Next::Poll
            } else {
                let message = if lost.is_empty() {
                    message
                } else {
                    let ids: Vec<&str> = lost.iter().map(TaskId::as_str).collect();
                    format!(
                        "{message} (their lease was lost in this run: {})",
                        ids.join(", ")
                    )
                };
                state
                    .stop
                    .get_or_insert(Stop::NothingReady(reason, message));
                control.changed.notify_all();
                Next::Quit
            }
        }
        Err(error) => {
            control.stop(Stop::Error(rendered(&error)));
            Next::Quit
        }
    }
}

/// How many times a slot claims while the claim fails for a reason that passes (see
/// [`transient`]) before that failure stops the run.
const CLAIM_TRIES: u32 = 4;

/// Whether a failed claim may pass by itself: the remote could not be reached (the claim
/// already tried its connection again), or this clone's refs were locked by another git.
/// One such failure must not end a night-long `--wait` run.
fn transient(error: &anyhow::Error) -> bool {
    let text = format!("{error:#}");
    [
        "cannot reach remote `",
        "cannot write to this repository at ",
        "its lock file ",
        "cannot lock ref",
        "Unable to create '",
    ]
    .iter()
    .any(|sign| text.contains(sign))
}

/// Waits until a sibling slot finishes the attempt it was on (`seen` finishes so far), or the
/// run stops: the finished task may have made others ready.
fn wait_for_siblings(control: &Control, seen: u64) {
    let mut state = control.lock();
    while state.stop.is_none() && state.busy > 0 && state.finishes == seen {
        state = control
            .changed
            .wait(state)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

/// Waits one poll interval (`--wait`), or until the run stops.
fn poll_again(context: &RunContext, agent: &str, poll: Duration) {
    let control = &context.control;
    context.say(&format!(
        "{agent}: nothing ready; looking again in {}",
        crate::output::span(i64::try_from(poll.as_secs()).unwrap_or(i64::MAX))
    ));
    let state = control.lock();
    let _ = control
        .changed
        .wait_timeout_while(state, poll, |state| state.stop.is_none())
        .unwrap_or_else(PoisonError::into_inner);
}

/// Records the attempt's outcome; an attempt that could not run gives its task back and
/// stops the run.
fn finish(
    context: &RunContext,
    slot: usize,
    agent: &str,
    claimed: &Claimed,
    outcome: Result<Report, attempt::SetupError>,
) {
    let control = &context.control;
    let mut state = control.lock();
    state.busy -= 1;
    state.finishes += 1;
    state.live[slot] = (0, 0.0);
    let (_, unpriced_model) = std::mem::take(&mut state.unpriced[slot]);
    state.working.remove(&claimed.task.id);
    let (report, problem) = match outcome {
        Ok(report) => (Some(report), None),
        Err(mut error) => (error.attempt.take().map(|report| *report), Some(error)),
    };
    let mut lost = false;
    if let Some(report) = report {
        if report.ending == Ending::Lost {
            state.lost.insert(claimed.task.id.clone());
            lost = true;
        }
        state.spent_tokens += report.tokens;
        state.spent_usd += report.cost_usd.unwrap_or(0.0);
        if report.cost_usd.is_none() && report.tokens > 0 {
            let finished = state
                .unpriced
                .last_mut()
                .expect("a slot for the finished attempts");
            finished.0 += report.tokens;
            finished.1 = if unpriced_model.is_empty() {
                report
                    .model
                    .clone()
                    .unwrap_or_else(|| "an unknown model".to_owned())
            } else {
                unpriced_model
            };
        }
        state.reports.push(report);
    }
    if let Some(error) = problem {
        drop(state);
        let id = claimed.task.id.as_str();
        let reason = format!("gitprio run could not work on it: {error}");
        if let Err(release) =
            context
                .operations
                .release(agent, id, &attempt::compact(&reason), false, false)
        {
            context.warn(&format!("{agent}: {}", rendered(&release)));
        }
        control.stop(Stop::Error(format!("{id}: {error}")));
        state = control.lock();
    }
    control.changed.notify_all();
    drop(state);
    if lost {
        context.say(&format!(
            "{agent}: {} is not claimed again by this run: its lease was lost",
            claimed.task.id
        ));
    }
}

/// Sums the run's attempts from the usage ledger, as `gitprio report` would.
fn summarize(
    settings: &Settings,
    repo: &Repository,
    local: bool,
    state: &State,
    prices: &PriceTable,
) -> Option<Summary> {
    let notices = output::Stderr(settings);
    let workspace = Workspace::open(
        repo,
        settings.invocation(),
        StoreChoice::local(local),
        &notices,
    )
    .ok()?;
    let ledger = Ledger::new(workspace.store());
    let result = (|| -> anyhow::Result<Summary> {
        ledger.refresh()?;
        let mut runs = Vec::new();
        for id in state.tasks.keys() {
            runs.extend(ledger.runs(id)?.into_iter().filter(|run| {
                state
                    .reports
                    .iter()
                    .any(|report| &report.task == id && report.run == run.meta.run)
            }));
        }
        Ok(report(
            &runs,
            &state.tasks,
            prices,
            &RunFilter::default(),
            GroupBy::Run,
        )
        .summary)
    })();
    match result {
        Ok(summary) => Some(summary),
        Err(error) => {
            output::message(
                settings,
                "warning",
                &format!("cannot read the usage ledger for the summary: {error:#}"),
            );
            None
        }
    }
}

fn print_summary(
    json: bool,
    stop: &Stop,
    state: &State,
    summary: Option<&Summary>,
    price_label: &str,
) -> anyhow::Result<()> {
    let tokens = summary.map_or(state.spent_tokens, |summary| summary.tokens);
    let overshoot = overshoot(stop, tokens, summary);
    if json {
        output::print_json(&reply(stop, state, summary, tokens, overshoot))?;
        return Ok(());
    }
    output::print_table(&summary_rows(
        stop,
        state,
        summary,
        tokens,
        overshoot.as_ref(),
        price_label,
    ))?;
    print_unfinished(state)?;
    Ok(())
}

/// How many of the run's attempts ended with `ending`.
fn count(state: &State, ending: Ending) -> usize {
    state
        .reports
        .iter()
        .filter(|report| report.ending == ending)
        .count()
}

/// How far past its own limit the run went: agents are stopped within a tick of it, but a
/// request under way finishes, and so counts.
fn overshoot(stop: &Stop, tokens: u64, summary: Option<&Summary>) -> Option<Overshoot> {
    match stop {
        Stop::MaxTokens(limit) => Some(Overshoot::Tokens(tokens.saturating_sub(*limit))),
        Stop::MaxUsd(limit) => {
            summary.map(|summary| Overshoot::Usd((summary.cost_usd - limit).max(0.0)))
        }
        _ => None,
    }
}

/// The summary for `--json`.
fn reply(
    stop: &Stop,
    state: &State,
    summary: Option<&Summary>,
    tokens: u64,
    overshoot: Option<Overshoot>,
) -> RunReply {
    RunReply {
        stopped: stop.code(),
        reason: stop.describe(),
        exit_status: stop.status(),
        attempts: state.reports.len(),
        completed: count(state, Ending::Completed),
        failed: count(state, Ending::Failed),
        parked: count(state, Ending::Parked),
        released: count(state, Ending::Released),
        lost: count(state, Ending::Lost),
        tokens,
        cost_usd: summary.map(|summary| summary.cost_usd),
        unpriced_tokens: summary.map(|summary| summary.unpriced_tokens),
        value_points: summary.map(|summary| summary.value_points),
        value_per_million_tokens: summary.and_then(|summary| summary.value_per_million_tokens),
        overshoot,
        runs: state.reports.clone(),
    }
}

/// The summary table's rows, in output order.
fn summary_rows(
    stop: &Stop,
    state: &State,
    summary: Option<&Summary>,
    tokens: u64,
    overshoot: Option<&Overshoot>,
    price_label: &str,
) -> Vec<Vec<String>> {
    let mut rows = vec![vec!["stopped".to_owned(), stop.describe()]];
    rows.push(vec![
        "tasks done".to_owned(),
        count(state, Ending::Completed).to_string(),
    ]);
    rows.push(vec![
        "attempts".to_owned(),
        format!(
            "{} ({} failed, {} parked, {} released, {} lost)",
            state.reports.len(),
            count(state, Ending::Failed),
            count(state, Ending::Parked),
            count(state, Ending::Released),
            count(state, Ending::Lost)
        ),
    ]);
    rows.push(vec!["tokens".to_owned(), output::tokens(tokens)]);
    rows.extend(overshoot_row(stop, overshoot));
    if let Some(summary) = summary {
        rows.extend(cost_rows(summary, price_label));
    }
    rows
}

/// The "over the limit" row, when the run stopped at a limit it went past.
fn overshoot_row(stop: &Stop, overshoot: Option<&Overshoot>) -> Option<Vec<String>> {
    let text = match (stop, overshoot) {
        (Stop::MaxTokens(limit), Some(Overshoot::Tokens(over))) => {
            format!("{} tokens past --max-tokens {limit}", output::tokens(*over))
        }
        (Stop::MaxUsd(limit), Some(Overshoot::Usd(over))) => {
            format!("{} past --max-usd {limit}", Usd(*over))
        }
        _ => return None,
    };
    Some(vec!["over the limit".to_owned(), text])
}

/// The cost and value rows, from the usage ledger's summary.
fn cost_rows(summary: &Summary, price_label: &str) -> [Vec<String>; 2] {
    [
        vec![
            "cost".to_owned(),
            format!("{} ({})", output::cost(summary.cost()), price_label),
        ],
        vec![
            "value per 1M tokens".to_owned(),
            // Two decimals, as `report`, `top` and the Action write it.
            match summary.value_per_million_tokens {
                Some(_) => format!(
                    "{} ({} done)",
                    output::ratio(summary.value_per_million_tokens, 2),
                    output::counted(
                        usize::try_from(summary.value_points).unwrap_or(usize::MAX),
                        "point"
                    )
                ),
                None => "-".to_owned(),
            },
        ],
    ]
}

/// One line per attempt that did not complete, with the first line of its error.
fn print_unfinished(state: &State) -> Result<(), crate::output::StdoutError> {
    for report in &state.reports {
        if let Some(error) = &report.error
            && report.ending != Ending::Completed
        {
            crate::output::outln!(
                "{} {}: {}",
                report.task,
                match report.ending {
                    Ending::Parked => "parked",
                    Ending::Released => "released",
                    Ending::Lost => "lost",
                    _ => "failed",
                },
                error.lines().next().unwrap_or_default()
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use gitprio_core::usage::report::Summary;

    use super::{cost_rows, github_repository};

    /// The value row of `run`'s summary: two decimals, as in `report`, `top` and the
    /// Action comment, and "point" for one.
    #[test]
    fn the_value_row_has_two_decimals_and_counts_points_right() {
        let value = |points, per_million| {
            let summary = Summary {
                value_points: points,
                value_per_million_tokens: per_million,
                ..Summary::default()
            };
            let [_, row] = cost_rows(&summary, "");
            assert_eq!(row[0], "value per 1M tokens");
            row[1].clone()
        };
        assert_eq!(value(1, Some(740.74)), "740.74 (1 point done)");
        assert_eq!(value(3, Some(2.0)), "2.00 (3 points done)");
        assert_eq!(value(0, None), "-");
    }

    #[test]
    fn github_repository_reads_https_ssh_and_scp_urls() {
        let expected = Some(("acme".to_owned(), "shop".to_owned()));
        assert_eq!(
            github_repository("https://github.com/acme/shop.git"),
            expected
        );
        assert_eq!(github_repository("https://github.com/acme/shop"), expected);
        assert_eq!(github_repository("git@github.com:acme/shop.git"), expected);
        assert_eq!(
            github_repository("ssh://git@github.com/acme/shop"),
            expected
        );
        assert_eq!(github_repository("/srv/git/shop.git"), None);
        assert_eq!(github_repository("https://gitlab.com/acme/shop"), None);
    }
}
