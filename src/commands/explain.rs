//! `gitprio explain`: why a task is or is not next.

use anyhow::anyhow;
use clap::Args;
use gitprio_core::queue::{Queue, RankReason, Standing};
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
    print_explanation(&queue, &args.id);
    Ok(exit_code::SUCCESS)
}

/// Prints, in sentences, where task `id` stands in `queue`.
pub fn print_explanation(queue: &Queue, id: &str) {
    let Some(explanation) = queue.explain(id) else {
        return;
    };
    let task = &explanation.entry.task;
    match &explanation.standing {
        Standing::Next => {
            if explanation.ready_count == 1 {
                println!("{id} is next: it is the only ready task.");
            } else {
                println!(
                    "{id} is next: it is ready and ranks first of {} ready tasks.",
                    explanation.ready_count
                );
            }
            if let Some(second) = queue.ready().get(1) {
                println!(
                    "It ranks ahead of {} on {}.",
                    second.task.id,
                    describe_reason(
                        gitprio_core::queue::rank_reason(task, &second.task),
                        task,
                        &second.task
                    )
                );
            }
        }
        Standing::Behind {
            position,
            ahead,
            reason,
        } => {
            println!(
                "{id} is ready but ranks {position} of {}.",
                explanation.ready_count
            );
            println!(
                "{} ranks just ahead of it on {}.",
                ahead.id,
                describe_reason(*reason, ahead, task)
            );
        }
        Standing::NotReady { blockers } => {
            println!("{id} is not ready:");
            for blocker in *blockers {
                println!("  - {}", output::describe_blocker(blocker));
            }
        }
    }
    println!(
        "Rank order: priority (p0 first), then value (higher first), then created (older first), then id."
    );
}

fn describe_reason(
    reason: RankReason,
    ahead: &gitprio_core::Task,
    behind: &gitprio_core::Task,
) -> String {
    match reason {
        RankReason::Priority => format!("priority ({} before {})", ahead.priority, behind.priority),
        RankReason::Value => format!(
            "value ({} over {}, same priority)",
            ahead.value, behind.value
        ),
        RankReason::Created => format!(
            "age (created {} before {}, same priority and value)",
            ahead.created.as_deref().unwrap_or("-"),
            behind.created.as_deref().unwrap_or("undated")
        ),
        RankReason::Id => "id (same priority, value and age)".to_owned(),
    }
}
