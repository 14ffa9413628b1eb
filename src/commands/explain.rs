//! `gitprio explain`: why a task is or is not next.

use anyhow::anyhow;
use clap::Args;
use gitprio_core::queue::Standing;
use gitprio_core::reply::ExplainReply;

use crate::cli::CommandResult;
use crate::reading::{SourceArgs, load_queue};
use crate::settings::Settings;
use crate::{exit_code, output};

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The task id.
    pub id: String,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Print JSON: `{"id", "ready", "position", "ahead", "reason", "blockers"}`.
    #[arg(long)]
    pub json: bool,
}

pub fn run(settings: &Settings, args: &ExplainArgs) -> CommandResult {
    let (loaded, queue) = load_queue(settings, &args.source)?;
    let explanation = queue.explain(&args.id).ok_or_else(|| {
        anyhow!(
            "no task `{}` in {}; see `gitprio list`",
            args.id,
            loaded.origin
        )
    })?;
    if args.json {
        let id = explanation.entry.task.id.clone();
        let value = match &explanation.standing {
            Standing::Next => ExplainReply {
                id,
                ready: true,
                position: Some(1),
                ahead: None,
                reason: None,
                blockers: Vec::new(),
            },
            Standing::Behind {
                position,
                ahead,
                reason,
            } => ExplainReply {
                id,
                ready: true,
                position: Some(*position),
                ahead: Some(ahead.id.clone()),
                reason: Some(*reason),
                blockers: Vec::new(),
            },
            Standing::NotReady { blockers } => ExplainReply {
                id,
                ready: false,
                position: None,
                ahead: None,
                reason: None,
                blockers: blockers.to_vec(),
            },
        };
        output::print_json(&value)?;
        return Ok(exit_code::SUCCESS);
    }
    output::print_explanation(&queue, &args.id)?;
    Ok(exit_code::SUCCESS)
}
