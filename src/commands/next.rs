//! `gitprio next`: the top ready task.

use clap::Args;
use gitprio_core::reply::{NextReply, NothingReady};

use crate::cli::CommandResult;
use crate::reading::{SourceArgs, Top, load_queue, nothing_ready, top_task};
use crate::settings::Settings;
use crate::{exit_code, output};

#[derive(Debug, Args)]
pub struct NextArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Also say why this task is next.
    #[arg(long)]
    pub explain: bool,
    /// Print JSON: `{"source": {...}, "task": {...}}`, or `{..., "task": null, "reason": ...}`.
    #[arg(long)]
    pub json: bool,
}

pub fn run(settings: &Settings, args: &NextArgs) -> CommandResult {
    if !args.explain {
        return print_top(settings, args, top_task(settings, &args.source)?);
    }
    let (loaded, queue) = load_queue(settings, &args.source)?;
    let code = print_top(settings, args, Top::of(loaded.origin, &queue))?;
    if let Some(entry) = queue.next().filter(|_| !args.json) {
        crate::output::outln!()?;
        output::print_explanation(&queue, entry.task.id.as_str())?;
    }
    Ok(code)
}

fn print_top(settings: &Settings, args: &NextArgs, top: Top) -> CommandResult {
    let Some(task) = top.task else {
        let (_, sentence) = nothing_ready(top.open, top.total);
        if args.json {
            output::print_json(&NextReply::nothing(
                top.origin,
                NothingReady::with_open(top.open),
            ))?;
        }
        output::message(settings, "info", &sentence);
        return Ok(exit_code::NOTHING_READY);
    };
    if args.json {
        output::print_json(&NextReply::ready(top.origin, task))?;
        return Ok(exit_code::SUCCESS);
    }
    output::print_table(&[vec![
        task.id.to_string(),
        task.priority.to_string(),
        output::type_of(&task),
        task.title,
    ]])?;
    Ok(exit_code::SUCCESS)
}
