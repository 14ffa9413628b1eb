//! `gitprio list`: the whole ranked queue.

use clap::Args;

use crate::cli::CommandResult;
use crate::reading::{SourceArgs, load_queue};
use crate::settings::Settings;
use crate::{exit_code, output};
use gitprio_core::reply::ListReply;

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Show only the ready tasks.
    #[arg(long)]
    pub ready: bool,
    /// Print JSON: `{"source": {...}, "ready_count", "tasks": [{"rank", "ready", "blockers", "task"}]}`.
    #[arg(long)]
    pub json: bool,
}

pub fn run(settings: &Settings, args: &ListArgs) -> CommandResult {
    let (loaded, queue) = load_queue(settings, &args.source)?;
    let shown = if args.ready {
        queue.ready()
    } else {
        queue.entries()
    };
    if args.json {
        let json = ListReply::new(loaded.origin, queue.ready().len(), shown);
        output::print_json(&json)?;
        // Freeing thousands of small allocations takes longer than the OS takes to drop them at exit.
        std::mem::forget(json);
        std::mem::forget(queue);
        return Ok(exit_code::SUCCESS);
    }
    if queue.entries().is_empty() {
        output::message(
            settings,
            "info",
            "the queue has no tasks; add one under .tasks/",
        );
        return Ok(exit_code::SUCCESS);
    }
    let mut rows = vec![vec![
        "#".to_owned(),
        "ID".to_owned(),
        "PRI".to_owned(),
        "TYPE".to_owned(),
        "VALUE".to_owned(),
        "TITLE".to_owned(),
    ]];
    for (index, entry) in queue.ready().iter().enumerate() {
        let task = &entry.task;
        rows.push(vec![
            (index + 1).to_string(),
            task.id.to_string(),
            task.priority.to_string(),
            output::type_of(task),
            task.value.to_string(),
            task.title.clone(),
        ]);
    }
    if !args.ready {
        for entry in queue.not_ready() {
            let task = &entry.task;
            rows.push(vec![
                "-".to_owned(),
                task.id.to_string(),
                task.priority.to_string(),
                output::type_of(task),
                task.value.to_string(),
                format!(
                    "{} [{}]",
                    task.title,
                    output::describe_blockers(&entry.readiness)
                ),
            ]);
        }
    }
    output::print_table(&rows)?;
    output::message(
        settings,
        "info",
        &format!(
            "{} ready, {} not ready, read from {}",
            queue.ready().len(),
            queue.not_ready().len(),
            loaded.origin
        ),
    );
    Ok(exit_code::SUCCESS)
}
