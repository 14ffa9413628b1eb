//! `gitprio explain`: why a task is or is not next.

use anyhow::anyhow;
use clap::Args;
use gitprio_core::queue::Standing;

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

/// `explain --json`: the task, then where it stands, then why.
#[derive(serde::Serialize)]
struct ExplainJson<'a> {
    id: &'a str,
    ready: bool,
    position: Option<usize>,
    ahead: Option<&'a str>,
    reason: Option<gitprio_core::queue::RankReason>,
    blockers: &'a [gitprio_core::Blocker],
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
        let mut value = ExplainJson {
            id: &args.id,
            ready: true,
            position: Some(1),
            ahead: None,
            reason: None,
            blockers: &[],
        };
        match &explanation.standing {
            Standing::Next => {}
            Standing::Behind {
                position,
                ahead,
                reason,
            } => {
                value.position = Some(*position);
                value.ahead = Some(ahead.id.as_str());
                value.reason = Some(*reason);
            }
            Standing::NotReady { blockers } => {
                value.ready = false;
                value.position = None;
                value.blockers = blockers;
            }
        }
        output::print_json(&value)?;
        return Ok(exit_code::SUCCESS);
    }
    output::print_explanation(&queue, &args.id);
    Ok(exit_code::SUCCESS)
}
