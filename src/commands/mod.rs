//! Subcommands, one per file; this module only dispatches.

mod action;
mod check;
mod completions;
mod context;
mod demo;
mod explain;
mod init;
mod lease;
mod list;
mod mcp;
mod next;
mod report;
mod revoke;
mod run;
mod show;
mod top;
mod usage;

use clap::{Args, Subcommand};
use gitprio_core::git::Repository;
use gitprio_core::lease::LeaseStore;
use std::path::{Path, PathBuf};

use gitprio_core::queue::{Holds, Queue, Rankable, top_ready};
use gitprio_core::source::{self, LoadedQueue, Origin, ParseCache, QueueSource};
use gitprio_core::{Status, Task};

use crate::cli::{CliError, CommandResult};
use crate::output;
use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the top ready task: the answer to "what is next?".
    Next(next::NextArgs),
    /// Print the ranked queue: ready tasks first, then the others with the reason.
    List(list::ListArgs),
    /// Print one task in full.
    Show(show::ShowArgs),
    /// Say why a task is or is not next.
    Explain(explain::ExplainArgs),
    /// Validate the task files in the working tree (for CI on pull requests).
    Check(check::CheckArgs),
    /// Create `.tasks/` with a config and a sample task; never overwrites.
    Init(init::InitArgs),
    /// Build a throwaway repository from the built-in example queue and show it.
    Demo(demo::DemoArgs),
    /// The simulated agent of `gitprio demo`, run by `gitprio run`.
    #[command(hide = true)]
    DemoAgent(demo::agent::AgentArgs),
    /// Print the context bundle of a task: its documents, the project's, and the task itself.
    Context(context::ContextArgs),
    /// Lease the best ready task for this agent, atomically through the git remote.
    Claim(lease::claim::ClaimArgs),
    /// Renew the lease this worktree holds on a task.
    Heartbeat(lease::heartbeat::LeaseIdArgs),
    /// Give a claimed task back, optionally as a failed attempt.
    Release(lease::release::ReleaseArgs),
    /// Record a claimed task as done: fenced by the lease, then `status: done` in its file.
    Done(lease::done::DoneArgs),
    /// Show who holds what: leases, holders, expiry, attempts, parked tasks.
    Status(lease::status::StatusArgs),
    /// Make a parked task claimable again.
    Unpark(lease::unpark::UnparkArgs),
    /// Delete the leases of tasks that are done or dropped, or gone and no longer live.
    Gc(lease::gc::GcArgs),
    /// Take a lease away from the agent holding it; its next heartbeat stops it.
    Revoke(revoke::RevokeArgs),
    /// Record and show the tokens each run of a task spent.
    Usage(usage::UsageArgs),
    /// Report value per token and waste over all runs.
    Report(report::ReportArgs),
    /// Watch the fleet live: every agent's task, spend and heartbeat; revoke a bad run.
    Top(top::TopArgs),
    /// Run agents on the queue until nothing is ready: claim, work in a worktree, renew, record usage, done or release.
    Run(run::RunArgs),
    /// Serve the queue to one agent as MCP tools over stdio (`claude mcp add gitprio -- gitprio mcp`).
    Mcp(mcp::McpArgs),
    /// On a pull request in GitHub Actions: summarize the tasks it completes, keep one comment up to date, check task edits.
    Action(action::ActionArgs),
    /// Print a shell completion script.
    Completions(completions::CompletionsArgs),
}

impl Command {
    pub fn run(self, settings: &Settings) -> CommandResult {
        match self {
            Command::Next(args) => next::run(settings, &args),
            Command::List(args) => list::run(settings, &args),
            Command::Show(args) => show::run(settings, &args),
            Command::Explain(args) => explain::run(settings, &args),
            Command::Check(args) => check::run(settings, &args),
            Command::Init(args) => init::run(settings, &args),
            Command::Demo(args) => demo::run(settings, &args),
            Command::DemoAgent(args) => demo::agent::run(settings, &args),
            Command::Context(args) => context::run(settings, &args),
            Command::Claim(args) => lease::claim::run(settings, &args),
            Command::Heartbeat(args) => lease::heartbeat::run(settings, &args),
            Command::Release(args) => lease::release::run(settings, &args),
            Command::Done(args) => lease::done::run(settings, &args),
            Command::Status(args) => lease::status::run(settings, &args),
            Command::Unpark(args) => lease::unpark::run(settings, &args),
            Command::Gc(args) => lease::gc::run(settings, &args),
            Command::Revoke(args) => revoke::run(settings, &args),
            Command::Usage(args) => usage::run(settings, &args),
            Command::Report(args) => report::run(settings, &args),
            Command::Run(args) => run::run(settings, &args),
            Command::Top(args) => top::run(settings, &args),
            Command::Mcp(args) => mcp::run(settings, &args),
            Command::Action(args) => action::run(settings, &args),
            Command::Completions(args) => Ok(completions::run(&args)),
        }
    }
}

/// Which version of the task files a reading command uses.
#[derive(Debug, Default, Args)]
pub struct SourceArgs {
    /// Read the task files in the working tree, committed or not, instead of the queue's branch.
    #[arg(long, conflicts_with = "rev")]
    pub worktree: bool,
    /// Read the task files at this revision instead of the queue's branch.
    #[arg(long, value_name = "REV")]
    pub rev: Option<String>,
}

impl SourceArgs {
    fn source(&self) -> QueueSource {
        match (&self.rev, self.worktree) {
            (Some(rev), _) => QueueSource::Rev(rev.clone()),
            (None, true) => QueueSource::Worktree,
            (None, false) => QueueSource::Default,
        }
    }
}

/// Loads and ranks the queue with the leases last seen, printing skipped files and warnings to stderr.
///
/// The tasks move into the [`Queue`]; the returned [`LoadedQueue`] has none left.
pub fn load_queue(
    settings: &Settings,
    args: &SourceArgs,
) -> Result<(LoadedQueue, Queue), CliError> {
    let repo = Repository::discover(&settings.directory)?;
    let mut loaded = load_tasks(settings, &repo, &args.source())?;
    let holds = holds(settings, &repo)?;
    // The queue owns the tasks from here: `loaded` keeps where they came from and the problems.
    let queue = Queue::build(std::mem::take(&mut loaded.tasks), &holds);
    Ok((loaded, queue))
}

/// Returns the lease and attempt facts last seen that hold tasks back.
fn holds(settings: &Settings, repo: &Repository) -> Result<Holds, CliError> {
    let config = source::local_config(repo)?;
    let store = reading_store(repo, &config)?;
    lease::mirrors_fetched(settings, &store);
    Ok(lease::current_holds(settings, &store, &config)?)
}

/// Returns the lease store the reading commands answer from: the remote's, else this clone's.
pub fn reading_store<'repo>(
    repo: &'repo Repository,
    config: &gitprio_core::Config,
) -> Result<LeaseStore<'repo>, CliError> {
    Ok(LeaseStore::new(
        repo,
        lease::store_mode(repo, config, false)?,
    ))
}

/// The top ready task of a queue, and what to say when there is none.
#[derive(Debug)]
pub struct Top {
    pub origin: Origin,
    pub task: Option<Task>,
    /// How many tasks are `open`, ready or not.
    pub open: usize,
    pub total: usize,
}

/// Finds the top ready task with the leases last seen, printing skipped files and warnings to stderr.
///
/// Ranks from the queue index, so only the top task is decoded in full.
pub fn top_task(settings: &Settings, args: &SourceArgs) -> Result<Top, CliError> {
    let repo = Repository::discover(&settings.directory)?;
    let cache_path = parse_cache_path(&repo);
    let mut cache = ParseCache::load(&cache_path);
    let resolved = source::resolve(&repo, &args.source(), Some(&mut cache))?;
    if let Some(index) = resolved.index(&cache) {
        save_parse_cache(settings, &cache, &cache_path);
        output::loading_diagnostics(settings, &index.diagnostics);
        let holds = holds(settings, &repo)?;
        let top = Top {
            origin: resolved.origin.clone(),
            task: top_ready(index.tasks(), &holds).and_then(|next| index.task(next)),
            open: index
                .tasks()
                .iter()
                .filter(|task| task.status() == Status::Open)
                .count(),
            total: index.tasks().len(),
        };
        // Freeing thousands of small allocations takes longer than the OS takes to drop them at exit.
        std::mem::forget(index);
        return Ok(top);
    }
    let mut loaded = resolved.into_loaded(&repo, &mut cache)?;
    save_parse_cache(settings, &cache, &cache_path);
    output::loading_diagnostics(settings, &loaded.diagnostics);
    let holds = holds(settings, &repo)?;
    let queue = Queue::build(std::mem::take(&mut loaded.tasks), &holds);
    Ok(Top::of(loaded.origin, &queue))
}

impl Top {
    /// Returns the top of a ranked queue.
    pub fn of(origin: Origin, queue: &Queue) -> Top {
        Top {
            origin,
            task: queue.next().map(|entry| entry.task.clone()),
            open: open_count(queue),
            total: queue.entries().len(),
        }
    }
}

/// Loads every task of `source` through the parse cache, printing skipped files to stderr.
pub fn load_tasks(
    settings: &Settings,
    repo: &Repository,
    source: &QueueSource,
) -> Result<LoadedQueue, CliError> {
    let cache_path = parse_cache_path(repo);
    let mut cache = ParseCache::load(&cache_path);
    let loaded = source::load(repo, source, Some(&mut cache))?;
    save_parse_cache(settings, &cache, &cache_path);
    output::loading_diagnostics(settings, &loaded.diagnostics);
    Ok(loaded)
}

/// Returns where the parse cache of `repo` lives: shared by all its worktrees.
pub fn parse_cache_path(repo: &Repository) -> PathBuf {
    repo.common_dir()
        .join("gitprio")
        .join("cache")
        .join("parsed.bin")
}

/// Saves the parse cache, warning on stderr when it cannot be written.
fn save_parse_cache(settings: &Settings, cache: &ParseCache, path: &Path) {
    if let Err(error) = cache.save(path) {
        output::message(
            settings,
            "warning",
            &format!("cannot write the parse cache {}: {error}", path.display()),
        );
    }
}

/// Describes why nothing is ready, as a stable reason code and a sentence.
pub fn nothing_ready_reason(queue: &Queue) -> (&'static str, String) {
    nothing_ready(open_count(queue), queue.entries().len())
}

/// Counts the tasks of `queue` whose status is `open`, ready or not.
fn open_count(queue: &Queue) -> usize {
    queue
        .entries()
        .iter()
        .filter(|entry| entry.task.status == Status::Open)
        .count()
}

/// Describes why nothing is ready when `open` of `total` tasks are open.
pub fn nothing_ready(open: usize, total: usize) -> (&'static str, String) {
    if open == 0 {
        (
            "empty",
            format!(
                "nothing ready: the queue has no open task ({total} {} in all)",
                output::plural(total, "task")
            ),
        )
    } else if open == 1 {
        (
            "all_blocked",
            "nothing ready: the one open task is blocked; see `gitprio list`".to_owned(),
        )
    } else {
        (
            "all_blocked",
            format!("nothing ready: all {open} open tasks are blocked; see `gitprio list`"),
        )
    }
}
