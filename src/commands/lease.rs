//! `gitprio claim`, `heartbeat`, `release`, `done`, `status`, `unpark`, `gc`: the lease life cycle.

use std::collections::BTreeMap;

use anyhow::{Context as _, anyhow, bail};
use clap::Args;
use gitprio_core::git::Repository;
use gitprio_core::lease::{
    self as core_lease, BadLease, ClaimFilter, ClaimOutcome, HeldLease, Lease, LeaseContext,
    LeaseError, LeaseEvent, LeaseState, LeaseStore, Mode, Progress, parse_duration,
};
use gitprio_core::queue::{Blocker, Holds, Queue};
use gitprio_core::source::{self, QueueSource};
use gitprio_core::usage::{Ledger, Outcome, Run, RunMeta};
use gitprio_core::{Config, Task, TaskId};
use serde_json::json;

use super::load_tasks;
use crate::cli::CommandResult;
use crate::settings::Settings;
use crate::{exit_code, output};

/// How many fresh views of the leases one claim takes before it gives up.
const MAX_CLAIM_ROUNDS: u32 = 6;

/// Where leases are kept and how to reach them.
#[derive(Debug, Default, Args)]
pub struct StoreArgs {
    /// Keep leases in this repository's refs (shared by its worktrees) instead of the remote.
    #[arg(long)]
    pub local: bool,
}

#[derive(Debug, Args)]
pub struct ClaimArgs {
    /// This agent's name (default: `GITPRIO_AGENT`, else `user@host:<worktree>`).
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,
    /// How long the lease lives without a heartbeat (default: `lease_ttl` of the config, `30m`).
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Only claim tasks of this type.
    #[arg(long = "type", value_name = "TYPE")]
    pub task_type: Option<String>,
    /// Only claim tasks of this feature.
    #[arg(long, value_name = "FEATURE")]
    pub feature: Option<String>,
    /// Only claim tasks routed to this model tier (their `model`), or routed nowhere.
    #[arg(long, value_name = "TIER")]
    pub tier: Option<String>,
    /// Pass over tasks whose `owns` overlap the `owns` of a task an agent holds, so agents
    /// working in parallel never change the same files.
    #[arg(long)]
    pub avoid_overlap: bool,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print JSON: `{"task": {...}, "lease": {...}}`, or `{"task": null, "reason": ...}`.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LeaseIdArgs {
    /// The task id (default: the one task this worktree holds).
    pub id: Option<String>,
    /// How long the renewed lease lives (heartbeat only; default: `lease_ttl`).
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Tokens this attempt has spent so far, recorded on the renewal for `gitprio top`
    /// (the usage ledger is still where usage is recorded for good).
    #[arg(long, value_name = "N")]
    pub tokens: Option<u64>,
    /// Estimated dollars this attempt has spent so far, with `--tokens`.
    #[arg(long, value_name = "USD", requires = "tokens", value_parser = dollars)]
    pub cost_usd: Option<f64>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print the lease as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Parses a non-negative amount of dollars.
fn dollars(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|amount| is_dollars(*amount))
        .ok_or_else(|| format!("`{text}` is not an amount of dollars like `0.42`"))
}

/// Returns whether `amount` can be an amount of dollars spent: finite and not negative.
fn is_dollars(amount: f64) -> bool {
    amount.is_finite() && amount >= 0.0
}

/// Returns the progress a holder reports with a heartbeat, the same for the CLI's `--tokens`
/// and `--cost-usd` as for the MCP tool's `tokens` and `cost_usd`: none without tokens, since a
/// renewal without news keeps the last report.
pub fn progress(
    settings: &Settings,
    tokens: Option<u64>,
    cost_usd: Option<f64>,
) -> anyhow::Result<Option<Progress>> {
    if let Some(amount) = cost_usd
        && !is_dollars(amount)
    {
        bail!(
            "the cost `{amount}` is not an amount of dollars like `0.42`: it must be finite and not negative"
        );
    }
    match tokens {
        Some(tokens) => Ok(Some(Progress {
            tokens,
            cost_usd,
            at: settings.now,
        })),
        None if cost_usd.is_some() => {
            bail!("a cost needs the tokens it was spent on: report the tokens too")
        }
        None => Ok(None),
    }
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// The task id (default: the one task this worktree holds).
    pub id: Option<String>,
    /// Why the task is given back; kept in the lease history.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// The attempt failed: it counts toward `max_attempts`, after which the task is parked.
    #[arg(long)]
    pub failed: bool,
    /// Park the task now, as a failed attempt, whatever `max_attempts` says: for a task
    /// that keeps failing the same way.
    #[arg(long)]
    pub park: bool,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print the lease as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DoneArgs {
    /// The task id (default: the one task this worktree holds).
    pub id: Option<String>,
    /// Complete without running the task's `acceptance` commands; needs `--reason`.
    #[arg(long, requires = "reason")]
    pub no_verify: bool,
    /// Why the acceptance commands were not run; kept in the lease history.
    #[arg(long, value_name = "TEXT", requires = "no_verify")]
    pub reason: Option<String>,
    /// A short review summary (what changed, what was left alone, tests run, doubts), read
    /// from FILE or from stdin with `-`; kept as the `reason` of the submit record.
    #[arg(long, value_name = "FILE")]
    pub summary: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print the lease and the acceptance results as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Show the leases last fetched, without asking the remote.
    #[arg(long)]
    pub offline: bool,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print JSON: `{"leases": [...]}`.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UnparkArgs {
    /// The parked task.
    pub id: String,
    /// What was done about it; kept in the lease history.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print JSON: `{"deleted": [ids], "kept": [{"task", "reason", "state"}]}`.
    #[arg(long)]
    pub json: bool,
}

/// The variable naming the queue's branch, over the config's `branch:`: `gitprio run` sets it
/// for the gitprio commands it runs in a task's worktree, which is on `gitprio/<id>`.
pub const BRANCH_VARIABLE: &str = "GITPRIO_BRANCH";

/// Chooses where leases live: the configured (or `origin`) remote when it exists, else local refs.
pub fn store_mode(repo: &Repository, config: &Config, local: bool) -> anyhow::Result<Mode> {
    if local {
        return Ok(Mode::Local);
    }
    let remote = match &config.remote {
        Some(remote) if repo.has_remote(remote) => remote.clone(),
        // Named on purpose while the clone has other remotes: most likely a misspelt name,
        // which must not quietly make the leases local, where no other machine sees them.
        Some(remote) if !repo.remote_names().is_empty() => bail!(
            "{} sets `remote: {remote}`, but this repository has no remote of that name (its remotes: {}); correct the name, or pass `--local` to keep the leases in this clone",
            gitprio_core::CONFIG_PATH,
            repo.remote_names().join(", ")
        ),
        None if repo.has_remote("origin") => "origin".to_owned(),
        // No remote at all: the leases live in this clone's refs.
        Some(_) | None => return Ok(Mode::Local),
    };
    let branch = std::env::var(BRANCH_VARIABLE)
        .ok()
        .filter(|branch| !branch.trim().is_empty())
        .or_else(|| config.branch.clone())
        .unwrap_or_else(|| default_branch(repo, &remote));
    Ok(Mode::Remote { remote, branch })
}

/// The remote's default branch as this clone knows it: `<remote>/HEAD`, else `main` or
/// `master` when the remote has one, else the current branch, unless it is a task's own
/// `gitprio/<id>` (the queue is never there), else `main`.
fn default_branch(repo: &Repository, remote: &str) -> String {
    let tracking = format!("refs/remotes/{remote}/");
    repo.symbolic_target(&format!("{tracking}HEAD"))
        .and_then(|target| target.strip_prefix(&tracking).map(str::to_owned))
        .or_else(|| {
            ["main", "master"]
                .into_iter()
                .find(|branch| {
                    repo.reference_commit(&format!("{tracking}{branch}"))
                        .is_ok_and(|commit| commit.is_some())
                })
                .map(str::to_owned)
        })
        .or_else(|| {
            repo.current_branch()
                .filter(|branch| !branch.starts_with("gitprio/"))
        })
        .unwrap_or_else(|| "main".to_owned())
}

/// How old the lease mirrors may be before a reading command says it answers from old leases.
const MIRRORS_OLD_AFTER: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// Makes sure a reading command (`next`, `list`) answers from the remote's leases: a clone
/// that never fetched them (`git clone` does not) fetches them once now; mirrors older
/// than [`MIRRORS_OLD_AFTER`] are used, and stderr says how old they are.
pub fn mirrors_fetched(settings: &Settings, store: &LeaseStore<'_>) {
    let Mode::Remote { remote, .. } = store.mode() else {
        return;
    };
    match store.last_refreshed() {
        None => {
            if let Err(error) = store.refresh() {
                output::message(
                    settings,
                    "warning",
                    &format!(
                        "this clone never fetched the leases of `{remote}`, and cannot now ({error}); tasks other agents hold or submitted may show as ready"
                    ),
                );
            }
        }
        Some(at) => {
            let age = std::time::SystemTime::now()
                .duration_since(at)
                .unwrap_or_default();
            if age > MIRRORS_OLD_AFTER {
                output::message(
                    settings,
                    "info",
                    &format!(
                        "answering from the leases of `{remote}` as fetched {} ago; `gitprio status` fetches them again",
                        output::span(i64::try_from(age.as_secs()).unwrap_or(i64::MAX))
                    ),
                );
            }
        }
    }
}

/// The lease blockers on tasks as last seen, for every reading command.
pub fn current_holds(
    settings: &Settings,
    store: &LeaseStore<'_>,
    config: &Config,
) -> anyhow::Result<Holds> {
    let (leases, bad) = store.leases()?;
    Ok(holds_of(settings, &leases, &bad, config))
}

fn holds_of(
    settings: &Settings,
    leases: &BTreeMap<TaskId, Lease>,
    bad: &[BadLease],
    config: &Config,
) -> Holds {
    let skew = parse_duration(&config.clock_skew).unwrap_or_default();
    let mut holds = core_lease::holds(leases, settings.now, skew);
    for lease in bad {
        output::message(
            settings,
            "warning",
            &format!(
                "lease ref `{}` is unreadable ({}); its task is held back. Delete the ref if the lease is stale: `git update-ref -d {}` (and on the remote: `git push <remote> :refs/gitprio/leases/<id>`)",
                lease.reference, lease.problem, lease.reference
            ),
        );
        if let Some(id) = lease.reference.rsplit('/').next().and_then(TaskId::new) {
            holds.entry(id).or_default().push(Blocker::Parked {
                attempts: 0,
                last_error: Some(format!("unreadable lease: {}", lease.problem)),
            });
        }
    }
    holds
}

/// Builds what every lease operation needs: the clock, TTL (`ttl`, else the config's), skew, holder.
pub fn context(
    settings: &Settings,
    repo: &Repository,
    config: &Config,
    ttl: Option<&str>,
) -> anyhow::Result<LeaseContext> {
    let ttl_text = ttl.unwrap_or(&config.lease_ttl);
    let ttl = parse_duration(ttl_text)
        .filter(|ttl| !ttl.is_zero())
        .ok_or_else(|| {
            anyhow!("invalid lease TTL `{ttl_text}`: write it like `90s`, `30m` or `2h`")
        })?;
    let skew = parse_duration(&config.clock_skew).ok_or_else(|| {
        anyhow!(
            "invalid `clock_skew: {}` in .tasks/config.yaml: write it like `30s` or `2m`",
            config.clock_skew
        )
    })?;
    Ok(LeaseContext {
        now: settings.now,
        ttl,
        skew,
        max_attempts: config.max_attempts.max(1),
        holder: holder(settings, repo),
        failpoint: settings.failpoint.clone(),
    })
}

/// This process as a lease holder: its agent, in this worktree, on its branch.
pub fn holder(settings: &Settings, repo: &Repository) -> core_lease::Holder {
    core_lease::Holder {
        agent: settings.agent.clone(),
        host: settings.host.clone(),
        pid: std::process::id(),
        worktree: repo.workdir().map(|path| path.display().to_string()),
        branch: repo.current_branch(),
        session: settings.session.clone(),
    }
}

pub fn lease_json(lease: &Lease, store: &LeaseStore<'_>) -> serde_json::Value {
    let record = &lease.record;
    json!({
        "ref": lease.reference,
        "oid": lease.oid.to_string(),
        "state": record.state,
        "generation": record.generation,
        "attempt": record.attempt,
        "failures": record.failures,
        "holder": record.holder,
        "acquired_at": record.acquired_at,
        "renewed_at": record.renewed_at,
        "expires_at": record.expires_at,
        "reason": record.reason,
        "last_error": record.last_error,
        "progress": record.progress,
        "store": match store.mode() {
            Mode::Remote { remote, .. } => remote.as_str(),
            Mode::Local => "local",
        },
    })
}

/// What a claim came to, for a front end (the CLI, the MCP server) to show.
#[derive(Debug)]
pub enum ClaimResult {
    Claimed(Box<ClaimedTask>),
    /// No task was handed out: a stable reason code and a sentence.
    NothingReady {
        reason: &'static str,
        message: String,
    },
}

/// A claimed task with its body read and its context bundle assembled.
#[derive(Debug)]
pub struct ClaimedTask {
    pub task: gitprio_core::Task,
    pub lease: Lease,
    /// Compare-and-swaps pushed over all rounds, the winning one included.
    pub tries: u32,
    /// Where the queue was read.
    pub origin: source::Origin,
    /// The context bundle, or why it could not be assembled: the lease is held either way.
    pub bundle: anyhow::Result<gitprio_core::context::Bundle>,
}

/// Claims the best ready task that passes `filter`, taking fresh views of the leases while
/// other agents win the races; warnings go to stderr.
pub fn claim_next(
    settings: &Settings,
    repo: &Repository,
    store: &LeaseStore<'_>,
    context: &LeaseContext,
    filter: &ClaimFilter,
) -> anyhow::Result<ClaimResult> {
    claim_next_avoiding(settings, repo, store, context, filter, false)
}

/// Claims like [`claim_next`]; with `avoid_overlap`, passes over the tasks whose `owns`
/// overlap the `owns` of a task under a live lease.
pub fn claim_next_avoiding(
    settings: &Settings,
    repo: &Repository,
    store: &LeaseStore<'_>,
    context: &LeaseContext,
    filter: &ClaimFilter,
    avoid_overlap: bool,
) -> anyhow::Result<ClaimResult> {
    let mut lost = 0;
    let mut round = 0;
    let (outcome, loaded, queue, leases, avoided) = loop {
        round += 1;
        store.refresh()?;
        let queue_source = store
            .queue_ref()
            .map_or(QueueSource::Default, QueueSource::Rev);
        let loaded = load_tasks(settings, repo, &queue_source).map_err(|error| error.error)?;
        let (leases, bad) = store.leases()?;
        let holds = holds_of(settings, &leases, &bad, &loaded.config);
        let queue = Queue::build(loaded.tasks.clone(), &holds);
        let context = LeaseContext {
            max_attempts: loaded.config.max_attempts.max(1),
            ..context.clone()
        };
        let avoided = if avoid_overlap {
            core_lease::overlapping_ready(&queue, &leases, context.now, context.skew)
        } else {
            std::collections::BTreeSet::new()
        };
        match core_lease::claim_avoiding(
            store,
            &queue,
            &leases,
            loaded.commit,
            &context,
            filter,
            &avoided,
        ) {
            Err(LeaseError::Contention { tries }) if round < MAX_CLAIM_ROUNDS => {
                // Every candidate of this view was taken meanwhile: look again, a little later.
                lost += tries;
                std::thread::sleep(std::time::Duration::from_millis(10 * u64::from(round)));
            }
            Err(LeaseError::Contention { tries }) => {
                return Err(LeaseError::Contention {
                    tries: lost + tries,
                }
                .into());
            }
            outcome => break (outcome?, loaded, queue, leases, avoided),
        }
    };
    match outcome {
        ClaimOutcome::Claimed(mut claimed) => {
            claimed.tries += lost;
            for skipped in &claimed.skipped {
                output::message(settings, "warning", skipped);
            }
            if claimed.lease.record.event == LeaseEvent::Reclaim
                && let Some(previous) = leases.get(&claimed.task.id)
            {
                // The run before this one ended when its holder stopped renewing.
                let meta = RunMeta {
                    outcome: Some(Outcome::Expired),
                    ended_at: Some(previous.record.expires_at),
                    ..super::usage::run_meta(
                        &previous.record,
                        Some(&claimed.task),
                        &loaded.config,
                        None,
                    )
                };
                if let Err(error) = Ledger::new(store).write(&meta, &[], settings.now) {
                    output::message(
                        settings,
                        "warning",
                        &format!("the expired run was not recorded in the usage ledger: {error:#}"),
                    );
                }
            }
            let mut task = claimed.task;
            if task.body.is_empty() {
                task.body = super::show::read_body(repo, loaded.commit, &task.path)?;
            }
            // The lease is taken by now: a bundle that cannot be assembled must not lose it.
            let bundle = loaded
                .commit
                .ok_or_else(|| anyhow!("the queue was not read from a commit"))
                .and_then(|commit| {
                    super::context::assemble(repo, commit, &loaded.config, &task, None, None)
                });
            match &bundle {
                Ok(bundle) => {
                    super::context::warn_about(settings, bundle);
                    // The bundle's size goes to the usage ledger with the run (bloat shows in reports).
                    let _ = core_lease::note_context_size(
                        repo.common_dir(),
                        &task.id,
                        &context.holder,
                        bundle.tokens,
                    );
                }
                Err(error) => output::message(
                    settings,
                    "warning",
                    &format!(
                        "cannot assemble the context bundle: {error:#}; the lease is held, and `gitprio context {}` tries again",
                        task.id
                    ),
                ),
            }
            Ok(ClaimResult::Claimed(Box::new(ClaimedTask {
                task,
                lease: claimed.lease,
                tries: claimed.tries,
                origin: loaded.origin,
                bundle,
            })))
        }
        ClaimOutcome::NothingReady { held } => {
            let (reason, message) = if queue.ready().is_empty() {
                if held > 0
                    && queue
                        .not_ready()
                        .iter()
                        .filter(|entry| entry.task.status == gitprio_core::Status::Open)
                        .count()
                        == held
                {
                    all_held_back(&queue)
                } else {
                    super::nothing_ready_reason(&queue)
                }
            } else if !avoided.is_empty() {
                (
                    "overlap",
                    format!(
                        "nothing ready apart from {} tasks whose `owns` overlap a held task's; they wait until it is done or released",
                        avoided.len()
                    ),
                )
            } else {
                (
                    "no_match",
                    format!(
                        "nothing ready for this filter: {} ready tasks, none of this type, feature or tier",
                        queue.ready().len()
                    ),
                )
            };
            Ok(ClaimResult::NothingReady { reason, message })
        }
    }
}

/// Describes why nothing is ready when leases keep back every open task: held by
/// agents, submitted, or parked.
fn all_held_back(queue: &Queue) -> (&'static str, String) {
    let (mut held, mut submitted, mut parked) = (0, 0, 0);
    for entry in queue.not_ready() {
        for blocker in entry.readiness.blockers() {
            match blocker {
                Blocker::Leased { .. } => held += 1,
                Blocker::Submitted { .. } => submitted += 1,
                Blocker::Parked { .. } => parked += 1,
                _ => {}
            }
        }
    }
    if submitted == 0 && parked == 0 {
        return (
            "all_held",
            format!(
                "nothing ready: all {held} open tasks are held by agents; see `gitprio status`"
            ),
        );
    }
    let parts: Vec<String> = [
        (held, "held by an agent"),
        (submitted, "submitted (its change has not landed yet)"),
        (parked, "parked (until `gitprio unpark <id>`)"),
    ]
    .into_iter()
    .filter(|(count, _)| *count > 0)
    .map(|(count, what)| format!("{count} {what}"))
    .collect();
    (
        "all_held_back",
        format!(
            "nothing ready: all {} open tasks are held back by their leases: {}; see `gitprio list`",
            held + submitted + parked,
            parts.join(", ")
        ),
    )
}

pub fn claim(settings: &Settings, args: &ClaimArgs) -> CommandResult {
    let settings = settings.with_agent(args.agent.as_deref());
    let repo = Repository::discover(&settings.directory)?;
    let config = source::local_config(&repo)?;
    let store = LeaseStore::new(&repo, store_mode(&repo, &config, args.store.local)?);
    Ledger::new(&store).deliver_kept(settings.now);
    let context = context(&settings, &repo, &config, args.ttl.as_deref())?;
    let filter = ClaimFilter {
        task_type: args.task_type.clone(),
        feature: args.feature.clone(),
        tier: args.tier.clone(),
    };
    match claim_next_avoiding(
        &settings,
        &repo,
        &store,
        &context,
        &filter,
        args.avoid_overlap,
    )? {
        ClaimResult::Claimed(claimed) => {
            let ClaimedTask {
                task,
                lease,
                tries,
                origin,
                bundle,
            } = *claimed;
            let commands = super::context::report_commands(&task.id, args.store.local);
            let record = &lease.record;
            if args.json {
                let context = match &bundle {
                    Ok(bundle) => {
                        let mut value = serde_json::to_value(bundle)?;
                        // The prompt itself, exactly as the human output prints it.
                        value["markdown"] =
                            json!(bundle.to_markdown(&gitprio_core::context::Tail {
                                source: origin.to_string(),
                                lease: Some(&lease),
                                commands: commands.clone(),
                            }));
                        value["report"] = json!(commands);
                        value
                    }
                    Err(_) => serde_json::Value::Null,
                };
                output::print_json(&json!({
                    "task": task,
                    "lease": lease_json(&lease, &store),
                    "tries": tries,
                    "source": origin,
                    "context": context,
                }))?;
            } else {
                output::message(
                    &settings,
                    "info",
                    &format!(
                        "claimed {} as {} (generation {}, attempt {}, expires {})",
                        task.id,
                        record.holder.agent,
                        record.generation,
                        record.attempt,
                        record.expires_at
                    ),
                );
                if let Ok(bundle) = &bundle {
                    let tail = gitprio_core::context::Tail {
                        source: origin.to_string(),
                        lease: Some(&lease),
                        commands,
                    };
                    print!("{}", bundle.to_markdown(&tail));
                } else {
                    if let Some(error) = &record.last_error {
                        println!("last error: {error}");
                    }
                    for command in &commands {
                        println!("{}: {}", command.command, command.purpose);
                    }
                    println!();
                    super::show::print_task(&task, &gitprio_core::Readiness::Ready)?;
                }
            }
            Ok(exit_code::SUCCESS)
        }
        ClaimResult::NothingReady { reason, message } => {
            if args.json {
                output::print_json(&json!({ "task": null, "reason": reason, "message": message }))?;
            }
            output::message(&settings, "info", &message);
            Ok(exit_code::NOTHING_READY)
        }
    }
}

/// Resolves the task a lease command is about: the one given, else the one this worktree
/// holds live. A submitted task is never the default: its lease must not be renewed,
/// given back or charged for by a command that named no task.
pub fn held_id(repo: &Repository, id: Option<&str>) -> anyhow::Result<TaskId> {
    held_id_of(repo, id, false)
}

/// Resolves the task `done` is about: like [`held_id`], but a submitted task (a `done` to
/// finish after a crash) is the default when no live one is held here.
pub fn held_id_to_finish(repo: &Repository, id: Option<&str>) -> anyhow::Result<TaskId> {
    held_id_of(repo, id, true)
}

fn held_id_of(repo: &Repository, id: Option<&str>, submitted: bool) -> anyhow::Result<TaskId> {
    if let Some(id) = id {
        return TaskId::new(id).ok_or_else(|| anyhow!("`{id}` is not a task id"));
    }
    let here = repo.workdir().map(|path| path.display().to_string());
    let mut mine: Vec<HeldLease> = HeldLease::all(repo.common_dir())
        .into_iter()
        .filter(|held| held.worktree == here)
        .collect();
    // Leases lost to another holder only while nothing else is held here: then the next
    // command about them says "lease lost" again.
    if mine.iter().any(|held| !held.lost) {
        mine.retain(|held| !held.lost);
    }
    // Live leases first; a submitted one (a `done` to finish after a crash) only if no live one.
    let live = mine.iter().any(|held| held.state == LeaseState::Held);
    let mut held: Vec<HeldLease> = mine
        .into_iter()
        .filter(|held| {
            held.state == LeaseState::Held
                || (submitted && !live && held.state == LeaseState::Submitted)
        })
        .collect();
    // Holders of several generations in this worktree (an agent's lease lost to another
    // agent here) name one task: the lease command sorts out whose it is.
    held.dedup_by(|next, kept| next.task == kept.task);
    // A task worktree made by `gitprio run` is on the branch `gitprio/<id>`.
    let branch_task = repo
        .current_branch()
        .and_then(|branch| branch.strip_prefix("gitprio/").and_then(TaskId::new));
    match held.as_slice() {
        [] if branch_task.is_some() => Ok(branch_task.expect("checked")),
        [one] => Ok(one.task.clone()),
        [] => bail!("this worktree holds no lease; name the task, or `gitprio claim` first"),
        many => bail!(
            "this worktree holds {} leases ({}); name the task",
            many.len(),
            many.iter()
                .map(|held| held.task.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Reads the local config and opens the lease store it names (or local refs with `local`).
pub fn open_store(repo: &Repository, local: bool) -> anyhow::Result<(Config, LeaseStore<'_>)> {
    let config = source::local_config(repo)?;
    let mode = store_mode(repo, &config, local)?;
    let store = LeaseStore::new(repo, mode);
    // Usage the ledger could not take earlier goes out with the next command that reaches it.
    Ledger::new(&store).deliver_kept(jiff::Timestamp::now());
    Ok((config, store))
}

/// A renewed lease, and its run as the usage ledger knows it (for the budget verdict).
#[derive(Debug)]
pub struct Renewed {
    pub lease: Lease,
    pub spent: Option<Run>,
}

/// Renews the lease on `id` for `ttl` (default: the config's), with the holder's `progress`
/// when it reports some, and reads what its run spent.
pub fn renew(
    settings: &Settings,
    repo: &Repository,
    config: &Config,
    store: &LeaseStore<'_>,
    id: &TaskId,
    ttl: Option<&str>,
    progress: Option<Progress>,
) -> anyhow::Result<Renewed> {
    let context = context(settings, repo, config, ttl)?;
    let lease = core_lease::heartbeat(store, id, &context, progress)?;
    // The budget verdict rides on the heartbeat: the agent learns to stop where it already listens.
    let run = RunMeta::run_id(lease.record.generation, lease.record.acquired_at);
    let spent = Ledger::new(store)
        .runs(id)?
        .into_iter()
        .find(|known| known.meta.run == run);
    Ok(Renewed { lease, spent })
}

pub fn heartbeat(settings: &Settings, args: &LeaseIdArgs) -> CommandResult {
    let repo = Repository::discover(&settings.directory)?;
    let (config, store) = open_store(&repo, args.store.local)?;
    let id = held_id(&repo, args.id.as_deref())?;
    let progress = progress(settings, args.tokens, args.cost_usd)?;
    let Renewed { lease, spent } = renew(
        settings,
        &repo,
        &config,
        &store,
        &id,
        args.ttl.as_deref(),
        progress,
    )?;
    let verdict = match &spent {
        Some(known) => super::usage::budget_verdict(settings, &known.meta, &known.totals()),
        None => exit_code::SUCCESS,
    };
    if args.json {
        output::print_json(&json!({
            "lease": lease_json(&lease, &store),
            "tokens": spent.as_ref().map(|known| known.totals().tokens()),
            "budget_tokens": spent.as_ref().and_then(|known| known.meta.budget_tokens),
        }))?;
    } else {
        println!(
            "renewed {id} (generation {}) until {}",
            lease.record.generation, lease.record.expires_at
        );
    }
    Ok(verdict)
}

/// Gives `id` back (a failed attempt with `failed`) and records the run's end in the usage ledger.
pub fn give_back(
    settings: &Settings,
    repo: &Repository,
    config: &Config,
    store: &LeaseStore<'_>,
    id: &TaskId,
    reason: Option<&str>,
    failed: bool,
) -> anyhow::Result<core_lease::Released> {
    let context = context(settings, repo, config, None)?;
    let released = core_lease::release(store, id, &context, reason, failed)?;
    let outcome = if released.parked {
        Outcome::Parked
    } else if failed {
        Outcome::Failed
    } else {
        Outcome::Released
    };
    super::usage::record_outcome(settings, store, id, outcome);
    Ok(released)
}

/// Gives `id` back as a failed attempt and parks it at once; records the run as parked.
pub fn park_now(
    settings: &Settings,
    repo: &Repository,
    config: &Config,
    store: &LeaseStore<'_>,
    id: &TaskId,
    reason: Option<&str>,
) -> anyhow::Result<core_lease::Released> {
    let context = context(settings, repo, config, None)?;
    let released = core_lease::release_parked(store, id, &context, reason)?;
    super::usage::record_outcome(settings, store, id, Outcome::Parked);
    Ok(released)
}

pub fn release(settings: &Settings, args: &ReleaseArgs) -> CommandResult {
    let repo = Repository::discover(&settings.directory)?;
    let (config, store) = open_store(&repo, args.store.local)?;
    let id = held_id(&repo, args.id.as_deref())?;
    let released = if args.park {
        park_now(
            settings,
            &repo,
            &config,
            &store,
            &id,
            args.reason.as_deref(),
        )?
    } else {
        give_back(
            settings,
            &repo,
            &config,
            &store,
            &id,
            args.reason.as_deref(),
            args.failed,
        )?
    };
    if args.json {
        output::print_json(&json!({
            "lease": lease_json(&released.lease, &store),
            "parked": released.parked,
        }))?;
    } else if released.parked && args.park {
        println!("released {id} and parked it: it waits for a human (`gitprio unpark {id}`)");
    } else if released.parked {
        println!(
            "released {id}: {} failed attempts, so it is parked until a human looks (`gitprio unpark {id}`)",
            released.lease.record.failures
        );
    } else {
        println!("released {id}; it is ready for the next agent");
    }
    Ok(exit_code::SUCCESS)
}

/// Records `id` as submitted, fenced by the lease, then sets `status: done` in its task file;
/// returns the lease and the file's path in the repository. `note` (the review summary, why
/// acceptance was not run) is kept as the `reason` of the submit record in the lease history.
pub fn finish_noting(
    settings: &Settings,
    repo: &Repository,
    config: &Config,
    store: &LeaseStore<'_>,
    id: &TaskId,
    note: Option<&str>,
) -> anyhow::Result<(Lease, String)> {
    let context = context(settings, repo, config, None)?;
    let worktree = repo
        .workdir()
        .ok_or_else(|| anyhow!("`gitprio done` edits the task file, so it needs a working tree"))?
        .to_path_buf();
    let path = find_task_file(repo, id)?;
    let file = worktree.join(&path);
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read the task file {}", file.display()))?;
    let edited = gitprio_core::task::set_status(&text, gitprio_core::Status::Done)
        .with_context(|| format!("cannot set `status: done` in {}", file.display()))?;
    // The fence first: only the lease holder may record completion.
    let lease = core_lease::submit_noting(store, id, &context, note)?;
    if context.failpoint.as_deref() == Some("done:before-edit") {
        std::process::abort();
    }
    super::usage::record_outcome(settings, store, id, Outcome::Completed);
    if edited != text {
        std::fs::write(&file, edited)
            .with_context(|| format!("cannot write {}", file.display()))?;
    }
    Ok((lease, path))
}

pub fn done(settings: &Settings, args: &DoneArgs) -> CommandResult {
    let repo = Repository::discover(&settings.directory)?;
    let (config, store) = open_store(&repo, args.store.local)?;
    let id = held_id_to_finish(&repo, args.id.as_deref())?;
    let summary = args.summary.as_deref().map(read_summary).transpose()?;
    if let Some(path) = unplanned(&repo, &config, &id)? {
        output::message(
            settings,
            "error",
            &format!(
                "{id} must be planned first, and {path} has no `## Plan` section, so it is not done; add one to its body (what you will change and in which order, what you leave alone, how you will check it), then run `gitprio done` again"
            ),
        );
        if args.json {
            output::print_json(&json!({
                "task": id,
                "completed": false,
                "plan": "missing",
                "path": path,
            }))?;
        }
        return Ok(exit_code::FAILURE);
    }
    let mut checks = Vec::new();
    if !args.no_verify {
        let worktree = repo.workdir().ok_or_else(|| {
            anyhow!("`gitprio done` runs the acceptance commands, so it needs a working tree")
        })?;
        let commands = acceptance_commands(&repo, &id)?;
        checks = run_acceptance(worktree, &commands)?;
        if let Some(failed) = checks.iter().find(|check| !check.passed) {
            output::message(
                settings,
                "error",
                &format!(
                    "acceptance command `{}` failed ({}), so {id} is not done; fix it and run `gitprio done` again, or `gitprio done --no-verify --reason \"<why>\"`. Its output ends with:\n{}",
                    failed.command, failed.status, failed.tail
                ),
            );
            if args.json {
                output::print_json(&json!({
                    "task": id,
                    "completed": false,
                    "acceptance": checks,
                }))?;
            }
            return Ok(exit_code::FAILURE);
        }
        if !checks.is_empty() {
            output::message(
                settings,
                "info",
                &format!("acceptance: all {} commands passed", checks.len()),
            );
        }
    }
    let note = completion_note(args.reason.as_deref(), summary);
    let (lease, path) = finish_noting(settings, &repo, &config, &store, &id, note.as_deref())?;
    if args.json {
        output::print_json(&json!({
            "task": id,
            "completed": true,
            "lease": lease_json(&lease, &store),
            "path": path,
            "verified": !args.no_verify,
            "acceptance": checks,
        }))?;
    } else {
        println!(
            "submitted {id} (generation {}); set `status: done` in {path}: commit it and open the pull request",
            lease.record.generation
        );
    }
    Ok(exit_code::SUCCESS)
}

/// The note a completion leaves on the lease: why the acceptance commands were not run, if
/// they were not, then the review summary.
pub fn completion_note(no_verify_reason: Option<&str>, summary: Option<String>) -> Option<String> {
    match (no_verify_reason, summary) {
        (Some(reason), Some(summary)) => Some(format!("acceptance not run: {reason}\n\n{summary}")),
        (Some(reason), None) => Some(format!("acceptance not run: {reason}")),
        (None, summary) => summary,
    }
}

/// The longest review summary kept, in bytes: it lives in a lease commit message.
const MAX_SUMMARY_BYTES: usize = 8 * 1024;

/// Reads a review summary from `source` (a file, or `-` for stdin); `None` when it is blank.
fn read_summary(source: &str) -> anyhow::Result<String> {
    let text = if source == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("cannot read the summary from stdin")?;
        text
    } else {
        std::fs::read_to_string(source)
            .with_context(|| format!("cannot read the summary file {source}"))?
    };
    let text = bounded_summary(&text);
    anyhow::ensure!(!text.is_empty(), "the summary in {source} is empty");
    Ok(text)
}

/// Trims a review summary and cuts it at [`MAX_SUMMARY_BYTES`], saying so.
pub fn bounded_summary(text: &str) -> String {
    let mut text = text.trim().to_owned();
    if text.len() > MAX_SUMMARY_BYTES {
        let mut end = MAX_SUMMARY_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("\n[summary cut at 8 KiB]");
    }
    text
}

/// One acceptance command's result.
#[derive(Debug, serde::Serialize)]
pub struct Check {
    pub command: String,
    pub passed: bool,
    /// `exit 1`, or the signal that ended it.
    pub status: String,
    /// The last lines of its output (stdout and stderr together).
    pub tail: String,
}

/// Returns the acceptance commands of `id` as claimed (the task file the lease names), so
/// an edit in the working tree cannot weaken them; else as in the working tree.
pub fn acceptance_commands(repo: &Repository, id: &TaskId) -> anyhow::Result<Vec<String>> {
    Ok(claimed_task(repo, id)?.acceptance)
}

/// Returns the path of the task file of `id` when the task must be planned first (see
/// [`Config::plan_required`], on the task as claimed) and that file in the working tree has
/// no `## Plan` section yet.
pub fn unplanned(
    repo: &Repository,
    config: &Config,
    id: &TaskId,
) -> anyhow::Result<Option<String>> {
    if !config.plan_required(&claimed_task(repo, id)?) {
        return Ok(None);
    }
    let loaded = source::load(repo, &QueueSource::Worktree, None)?;
    let task = loaded
        .tasks
        .into_iter()
        .find(|task| &task.id == id)
        .ok_or_else(|| anyhow!("no task file for `{id}` in the working tree"))?;
    Ok((!gitprio_core::task::has_plan(&task.body)).then_some(task.path))
}

/// Returns task `id` as claimed (the task file the lease names), else as in the working tree.
fn claimed_task(repo: &Repository, id: &TaskId) -> anyhow::Result<Task> {
    // Any agent: the claimed task file is the same for whoever holds the lease here.
    let anyone = core_lease::Holder {
        agent: String::new(),
        host: String::new(),
        pid: std::process::id(),
        worktree: repo.workdir().map(|path| path.display().to_string()),
        branch: repo.current_branch(),
        session: None,
    };
    let claimed = HeldLease::load(repo.common_dir(), id, &anyone)
        .ok()
        .flatten()
        .and_then(|held| gitprio_core::git::ObjectId::from_hex(held.oid.as_bytes()).ok())
        .and_then(|oid| repo.commit_message(oid).ok())
        .and_then(|message| gitprio_core::lease::LeaseRecord::from_message(&message).ok())
        .and_then(|record| record.task_blob)
        .and_then(|blob| gitprio_core::git::ObjectId::from_hex(blob.as_bytes()).ok())
        .and_then(|blob| repo.read_blob(blob).ok())
        .and_then(|bytes| gitprio_core::task::parse_task(&format!(".tasks/{id}.md"), &bytes).task)
        .filter(|task| &task.id == id);
    if let Some(task) = claimed {
        return Ok(task);
    }
    let loaded = source::load(repo, &QueueSource::Worktree, None)?;
    loaded
        .tasks
        .into_iter()
        .find(|task| &task.id == id)
        .ok_or_else(|| anyhow!("no task file for `{id}` in the working tree"))
}

/// Runs `commands` with `sh -c` in `directory`, in order, stopping at the first that fails.
pub fn run_acceptance(
    directory: &std::path::Path,
    commands: &[String],
) -> anyhow::Result<Vec<Check>> {
    let mut checks = Vec::new();
    for command in commands {
        let log = tempfile::tempfile().context("cannot create a file for the command's output")?;
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(directory)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log.try_clone()?)
            .status()
            .with_context(|| format!("cannot run the acceptance command `{command}`"))?;
        let mut log = log;
        std::io::Seek::rewind(&mut log)?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut log, &mut bytes)?;
        let passed = status.success();
        checks.push(Check {
            command: command.clone(),
            passed,
            status: status.code().map_or_else(
                || "killed by a signal".to_owned(),
                |code| format!("exit {code}"),
            ),
            tail: tail(&String::from_utf8_lossy(&bytes), 20, 2000),
        });
        if !passed {
            break;
        }
    }
    Ok(checks)
}

/// Returns the last `lines` lines of `text`, at most `bytes` bytes of them.
pub fn tail(text: &str, lines: usize, bytes: usize) -> String {
    let text = text.trim_end();
    let start = text
        .rmatch_indices('\n')
        .nth(lines.saturating_sub(1))
        .map_or(0, |(index, _)| index + 1);
    let mut start = start.max(text.len().saturating_sub(bytes));
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_owned()
}

/// Finds the task file of `id`: in the working tree first (it may be new), else in the queue.
fn find_task_file(repo: &Repository, id: &TaskId) -> anyhow::Result<String> {
    for source in [QueueSource::Worktree, QueueSource::Default] {
        if let Ok(loaded) = source::load(repo, &source, None)
            && let Some(task) = loaded.tasks.iter().find(|task| &task.id == id)
        {
            return Ok(task.path.clone());
        }
    }
    bail!("no task file for `{id}` in the working tree or the queue")
}

pub fn status(settings: &Settings, args: &StatusArgs) -> CommandResult {
    let repo = Repository::discover(&settings.directory)?;
    let (config, store) = open_store(&repo, args.store.local)?;
    if !args.offline {
        store.refresh()?;
    }
    let (leases, bad) = store.leases()?;
    let skew = parse_duration(&config.clock_skew).unwrap_or_default();
    let here = repo.workdir().map(|path| path.display().to_string());
    // This worktree's only while the lease is exactly the commit it wrote last: one that
    // moved on (reclaimed, revoked) is someone else's, whatever this worktree remembers.
    let mine: Vec<TaskId> = HeldLease::all(repo.common_dir())
        .into_iter()
        .filter(|held| {
            held.worktree == here
                && leases
                    .get(&held.task)
                    .is_some_and(|lease| lease.oid == held.oid.as_str())
        })
        .map(|held| held.task)
        .collect();
    if args.json {
        let rows: Vec<serde_json::Value> = leases
            .values()
            .map(|lease| {
                let mut value = lease_json(lease, &store);
                value["task"] = json!(lease.record.task);
                value["expired"] = json!(lease.record.is_expired(settings.now, skew));
                value["mine"] = json!(mine.contains(&lease.record.task));
                value
            })
            .collect();
        let bad: Vec<serde_json::Value> = bad
            .iter()
            .map(|lease| json!({ "ref": lease.reference, "problem": lease.problem }))
            .collect();
        output::print_json(&json!({ "leases": rows, "unreadable": bad }))?;
        return Ok(exit_code::SUCCESS);
    }
    if leases.is_empty() && bad.is_empty() {
        println!("no leases: no task is claimed");
        return Ok(exit_code::SUCCESS);
    }
    let mut rows = vec![vec![
        "TASK".to_owned(),
        "STATE".to_owned(),
        "HOLDER".to_owned(),
        "GEN".to_owned(),
        "ATTEMPTS".to_owned(),
        "SINCE".to_owned(),
        "RENEWED".to_owned(),
        "EXPIRES".to_owned(),
    ]];
    for lease in leases.values() {
        let record = &lease.record;
        let state = match record.state {
            LeaseState::Held if record.is_expired(settings.now, skew) => "expired".to_owned(),
            state => format!("{state:?}").to_lowercase(),
        };
        let expires = if record.state == LeaseState::Held {
            describe_remaining(record.expires_at.duration_since(settings.now))
        } else {
            "-".to_owned()
        };
        let marker = if mine.contains(&record.task) {
            " (this worktree)"
        } else {
            ""
        };
        rows.push(vec![
            record.task.to_string(),
            state,
            format!("{}{marker}", record.holder.agent),
            record.generation.to_string(),
            format!("{} ({} failed)", record.attempt, record.failures),
            record.acquired_at.to_string(),
            record.renewed_at.to_string(),
            expires,
        ]);
    }
    output::print_table(&rows)?;
    for lease in leases
        .values()
        .filter(|lease| lease.record.state == LeaseState::Parked)
    {
        println!(
            "\nparked {}: {}; last error: {}",
            lease.record.task,
            lease
                .record
                .reason
                .as_deref()
                .unwrap_or("too many failed attempts"),
            lease
                .record
                .last_error
                .as_deref()
                .unwrap_or("none recorded")
        );
    }
    for lease in &bad {
        println!("\nunreadable lease {}: {}", lease.reference, lease.problem);
    }
    Ok(exit_code::SUCCESS)
}

fn describe_remaining(remaining: jiff::SignedDuration) -> String {
    let seconds = remaining.as_secs();
    if seconds < 0 {
        return format!("{}s ago", -seconds);
    }
    if seconds >= 3600 {
        format!("in {}h{:02}m", seconds / 3600, seconds % 3600 / 60)
    } else if seconds >= 60 {
        format!("in {}m{:02}s", seconds / 60, seconds % 60)
    } else {
        format!("in {seconds}s")
    }
}

pub fn unpark(settings: &Settings, args: &UnparkArgs) -> CommandResult {
    let repo = Repository::discover(&settings.directory)?;
    let (config, store) = open_store(&repo, args.store.local)?;
    let id = TaskId::new(&args.id).ok_or_else(|| anyhow!("`{}` is not a task id", args.id))?;
    let context = context(settings, &repo, &config, None)?;
    store.refresh()?;
    let lease = store
        .lease(&id)?
        .ok_or_else(|| anyhow!("no lease on `{id}`, so it is not parked"))?;
    core_lease::unpark(&store, &lease, &context, args.reason.clone())?;
    println!("unparked {id}: it is ready again, with its attempt history kept");
    Ok(exit_code::SUCCESS)
}

pub fn gc(settings: &Settings, args: &GcArgs) -> CommandResult {
    let repo = Repository::discover(&settings.directory)?;
    let (config, store) = open_store(&repo, args.store.local)?;
    let context = context(settings, &repo, &config, None)?;
    store.refresh()?;
    let queue_source = store
        .queue_ref()
        .map_or(QueueSource::Default, QueueSource::Rev);
    let loaded = load_tasks(settings, &repo, &queue_source)?;
    let (leases, _) = store.leases()?;
    let queue = Queue::build(loaded.tasks.clone(), &Holds::new());
    let skipped = loaded.skipped_files().len();
    let view = core_lease::GcView {
        queue: &queue,
        files_skipped: skipped > 0,
        now: context.now,
        skew: context.skew,
    };
    let collected = core_lease::gc(&store, &view, &leases)?;
    for (id, reason) in &collected.kept {
        let why = match reason {
            core_lease::Kept::Unreadable => format!(
                "{skipped} task file(s) there could not be read and it may be one of them; fix them (see `gitprio check`) and run `gitprio gc` again"
            ),
            core_lease::Kept::Live => format!(
                "its lease is {}; gc deletes it once it is not (if the task is on another branch, set `branch:` in .tasks/config.yaml)",
                live_state(&leases[id].record)
            ),
        };
        output::message(
            settings,
            "info",
            &format!(
                "kept the lease of {id}: {id} is not in the queue at {}, but {why}",
                loaded.origin
            ),
        );
    }
    if args.json {
        let kept: Vec<serde_json::Value> = collected
            .kept
            .iter()
            .map(|(id, reason)| {
                json!({ "task": id, "reason": reason, "state": leases[id].record.state })
            })
            .collect();
        output::print_json(&json!({ "deleted": collected.deleted, "kept": kept }))?;
    } else if collected.deleted.is_empty() && collected.kept.is_empty() {
        println!("nothing to delete: every lease belongs to an open task");
    } else if collected.deleted.is_empty() {
        println!("nothing to delete");
    } else {
        println!(
            "deleted {} {} of finished tasks: {}",
            collected.deleted.len(),
            output::plural(collected.deleted.len(), "lease"),
            collected
                .deleted
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(exit_code::SUCCESS)
}

/// Names the state of a live lease for a message: "held until ...", "submitted", "parked".
fn live_state(record: &core_lease::LeaseRecord) -> String {
    match record.state {
        LeaseState::Held => format!(
            "held by {} until {}",
            record.holder.agent, record.expires_at
        ),
        LeaseState::Submitted => format!("submitted by {}", record.holder.agent),
        LeaseState::Parked => "parked".to_owned(),
        LeaseState::Released => "released".to_owned(),
    }
}
