//! `gitprio context`: the bundle an agent is handed with a task, printed without claiming it.

use anyhow::anyhow;
use clap::Args;
use gitprio_core::context::{self, Bundle, CommitFiles};
use gitprio_core::git::{ObjectId, Repository};
use gitprio_core::lease::{Lease, Mode};
use gitprio_core::reply::ContextReply;
use gitprio_core::source::QueueSource;
use gitprio_core::workspace::{StoreChoice, Workspace, report_commands};
use gitprio_core::{Config, Task, TaskId};

use crate::cli::{CliError, CommandResult};
use crate::reading::load_tasks;
use crate::settings::Settings;
use crate::{exit_code, output};

#[derive(Debug, Args)]
pub struct ContextArgs {
    /// The task id.
    pub id: String,
    /// Read the task and its documents at this revision instead of the queue's branch.
    #[arg(long, value_name = "REV")]
    pub rev: Option<String>,
    /// Levels of links followed inside documents (default: `context_depth` of the config, 1).
    #[arg(long, value_name = "N")]
    pub depth: Option<u32>,
    /// Size limit in estimated tokens, e.g. `60k` (default: `context_budget` of the config).
    #[arg(long, value_name = "TOKENS", value_parser = parse_tokens)]
    pub budget: Option<u64>,
    /// Print JSON: `{"task", "source", "parts": [...], "dropped": [...], "external", "notes", ...}`.
    #[arg(long)]
    pub json: bool,
}

fn parse_tokens(text: &str) -> Result<u64, String> {
    gitprio_core::task::parse_token_count(text)
        .ok_or_else(|| format!("`{text}` is not a token count; write it like 60000 or 60k"))
}

pub fn run(settings: &Settings, args: &ContextArgs) -> CommandResult {
    let repo = Repository::discover(&settings.directory)?;
    let source = args
        .rev
        .clone()
        .map_or_else(|| settings.invocation().queue(), QueueSource::Rev);
    let loaded = load_tasks(settings, &repo, &source)?;
    let task = loaded
        .tasks
        .iter()
        .find(|task| task.id.as_str() == args.id)
        .ok_or_else(|| {
            anyhow!(
                "no task `{}` in {}; see `gitprio list`",
                args.id,
                loaded.origin
            )
        })?;
    let commit = loaded
        .commit
        .ok_or_else(|| anyhow!("the queue was not read from a commit"))?;
    let bundle = assemble(&repo, commit, &loaded.config, task, args.depth, args.budget)?;
    warn_about(settings, &bundle);
    if args.json {
        output::print_json(&ContextReply {
            source: loaded.origin,
            bundle,
        })?;
    } else {
        let held = lease_held_here(settings, &repo, &task.id)?;
        let tail = context::Tail {
            source: loaded.origin.to_string(),
            lease: held.as_ref().map(|(lease, _)| lease),
            commands: held
                .as_ref()
                .map(|(_, local)| report_commands(&task.id, *local))
                .unwrap_or_default(),
        };
        crate::output::out!("{}", bundle.to_markdown(&tail))?;
    }
    Ok(exit_code::SUCCESS)
}

/// Returns the lease this worktree holds on `id` now, and whether it is a local one: in the
/// configured store, else (a `--local` claim beside a remote) in this clone's refs.
fn lease_held_here(
    settings: &Settings,
    repo: &Repository,
    id: &TaskId,
) -> Result<Option<(Lease, bool)>, CliError> {
    let notices = output::Stderr(settings);
    for choice in [StoreChoice::Configured, StoreChoice::Local] {
        let workspace = Workspace::open_quietly(repo, settings.invocation(), choice, &notices)?;
        if let Some(lease) = workspace.lease_held_here(id)? {
            return Ok(Some((lease, *workspace.store().mode() == Mode::Local)));
        }
    }
    Ok(None)
}

/// Builds the bundle of `task` from `commit`, with the config's depth and budget unless overridden.
fn assemble(
    repo: &Repository,
    commit: ObjectId,
    config: &Config,
    task: &Task,
    depth: Option<u32>,
    budget: Option<u64>,
) -> anyhow::Result<Bundle> {
    let mut options = context::Options::from_config(config);
    if let Some(depth) = depth {
        options.depth = depth;
    }
    if budget.is_some() {
        options.budget = budget;
    }
    let files = CommitFiles::new(repo, commit);
    Ok(context::build(&files, config, task, options)?)
}

/// Prints the bundle's located warnings to stderr too, where a person running it sees them.
fn warn_about(settings: &Settings, bundle: &Bundle) {
    for note in &bundle.notes {
        output::message(settings, "warning", &note.to_string());
    }
}
