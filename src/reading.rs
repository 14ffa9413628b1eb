//! Reading the queue for the reading commands (`next`, `list`, `show`, `explain`, `context`,
//! the MCP `queue` tool): the task files, ranked with the leases last seen; what goes wrong
//! on the way goes to stderr.

use clap::Args;
use gitprio_core::git::Repository;
use gitprio_core::hint::FrontEnd;
use gitprio_core::queue::{Queue, Rankable, top_ready};
use gitprio_core::source::{self, LoadedQueue, Origin, ParseCache, QueueSource};
use gitprio_core::workspace::{self, Mirrors, StoreChoice, Workspace};
use gitprio_core::{Status, Task};

use crate::cli::CliError;
use crate::output;
use crate::settings::Settings;

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
    /// Returns the version these flags name; without one, the queue's branch as `settings`
    /// name it (`GITPRIO_BRANCH` over the config's), the branch `claim` reads.
    pub fn source(&self, settings: &Settings) -> QueueSource {
        match (&self.rev, self.worktree) {
            (Some(rev), _) => QueueSource::Rev(rev.clone()),
            (None, true) => QueueSource::Worktree,
            (None, false) => settings.invocation().queue(),
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
    let notices = output::Stderr(settings);
    let workspace = reading_workspace(settings, &repo, &notices)?;
    let mut loaded = load_tasks(settings, &repo, &args.source(settings))?;
    let holds = workspace.holds()?;
    // The queue owns the tasks from here: `loaded` keeps where they came from and the problems.
    let queue = Queue::build(std::mem::take(&mut loaded.tasks), &holds);
    Ok((loaded, queue))
}

/// Opens the lease store a reading command ranks with. A clone that never fetched the
/// remote's leases fetches them here, before the queue is read: that fetch brings the
/// queue's branch too, and a queue read before it would be the stale one, answered from
/// once and contradicted by the next command.
fn reading_workspace<'repo>(
    settings: &Settings,
    repo: &'repo Repository,
    notices: &'repo output::Stderr<'repo>,
) -> Result<Workspace<'repo>, CliError> {
    let workspace = Workspace::open_quietly(
        repo,
        settings.invocation(),
        StoreChoice::Configured,
        notices,
    )?;
    mirrors_note(settings, &workspace.mirrors_fetched());
    Ok(workspace)
}

/// Says on stderr when the answer comes from leases that are not the remote's as they are.
fn mirrors_note(settings: &Settings, mirrors: &Mirrors) {
    match mirrors {
        Mirrors::Unreachable { remote, error } => output::message(
            settings,
            "warning",
            &format!(
                "this clone never fetched the leases of `{remote}`, and cannot now ({error}); tasks other agents hold or submitted may show as ready"
            ),
        ),
        Mirrors::Old { remote, age } => output::message(
            settings,
            "info",
            &format!(
                "answering from the leases of `{remote}` as fetched {} ago; `gitprio status` fetches them again",
                output::span(i64::try_from(age.as_secs()).unwrap_or(i64::MAX))
            ),
        ),
        Mirrors::Local | Mirrors::Recent => {}
    }
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
    let notices = output::Stderr(settings);
    let lease_workspace = reading_workspace(settings, &repo, &notices)?;
    let cache_path = workspace::parse_cache_path(&repo);
    let mut cache = ParseCache::load(&cache_path);
    let resolved = source::resolve(&repo, &args.source(settings), Some(&mut cache))?;
    if let Some(index) = resolved.index(&cache) {
        workspace::save_parse_cache(&cache, &cache_path, &output::Stderr(settings));
        output::loading_diagnostics(settings, &index.diagnostics);
        let holds = lease_workspace.holds()?;
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
    workspace::save_parse_cache(&cache, &cache_path, &output::Stderr(settings));
    output::loading_diagnostics(settings, &loaded.diagnostics);
    let holds = lease_workspace.holds()?;
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
    Ok(workspace::load_tasks(
        repo,
        source,
        &output::Stderr(settings),
    )?)
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
    let why = workspace::nothing_ready(open, total);
    (why.reason, why.sentence(FrontEnd::Cli))
}
