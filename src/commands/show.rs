//! `gitprio show`: one task in full.

use anyhow::anyhow;
use clap::Args;

use gitprio_core::git::Repository;
use gitprio_core::reply::ShowReply;

use crate::cli::CommandResult;
use crate::reading::{SourceArgs, load_queue};
use crate::settings::Settings;
use crate::{exit_code, output};

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The task id.
    pub id: String,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Print JSON: `{"task": {...}, "ready": bool, "blockers": [...]}`.
    #[arg(long)]
    pub json: bool,
}

pub fn run(settings: &Settings, args: &ShowArgs) -> CommandResult {
    let (loaded, queue) = load_queue(settings, &args.source)?;
    let (_, entry) = queue.find(&args.id).ok_or_else(|| {
        anyhow!(
            "no task `{}` in {}; see `gitprio list`",
            args.id,
            loaded.origin
        )
    })?;
    let mut task = entry.task.clone();
    if task.body.is_empty() {
        task.body = gitprio_core::workspace::read_body(
            &Repository::discover(&settings.directory)?,
            loaded.commit,
            &task.path,
        )?;
    }
    if args.json {
        output::print_json(&ShowReply {
            ready: entry.readiness.is_ready(),
            blockers: entry.readiness.blockers().to_vec(),
            task,
        })?;
        return Ok(exit_code::SUCCESS);
    }
    output::print_task(&task, &entry.readiness)?;
    Ok(exit_code::SUCCESS)
}
