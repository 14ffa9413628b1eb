//! `gitprio next`: the top ready task.

use clap::Args;
use serde_json::json;

use super::{SourceArgs, load_queue, nothing_ready_reason};
use crate::cli::CommandResult;
use crate::settings::Settings;
use crate::{exit_code, output};

#[derive(Debug, Args)]
pub struct NextArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Also say why this task is next.
    #[arg(long)]
    pub explain: bool,
    /// Print JSON: `{"task": {...}, "source": {...}}`, or `{"task": null, "reason": ...}`.
    #[arg(long)]
    pub json: bool,
}

pub fn run(settings: &Settings, args: &NextArgs) -> CommandResult {
    let (loaded, queue) = load_queue(settings, &args.source)?;
    let Some(entry) = queue.next() else {
        let (reason, sentence) = nothing_ready_reason(&queue);
        if args.json {
            output::print_json(
                &json!({ "task": null, "reason": reason, "source": loaded.origin }),
            )?;
        }
        output::message(settings, "info", &sentence);
        return Ok(exit_code::NOTHING_READY);
    };
    if args.json {
        let mut task = entry.task.clone();
        task.body = String::new();
        output::print_json(&json!({ "task": task, "source": loaded.origin }))?;
        return Ok(exit_code::SUCCESS);
    }
    let task = &entry.task;
    output::print_table(&[vec![
        task.id.to_string(),
        task.priority.to_string(),
        output::type_of(task),
        task.title.clone(),
    ]])?;
    if args.explain {
        println!();
        super::explain::print_explanation(&queue, task.id.as_str());
    }
    Ok(exit_code::SUCCESS)
}
