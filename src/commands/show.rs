//! `gitprio show`: one task in full.

use anyhow::anyhow;
use clap::Args;

use gitprio_core::git::{ObjectId, Repository};
use gitprio_core::reply::ShowReply;
use gitprio_core::{Readiness, Task};

use super::{SourceArgs, load_queue};
use crate::cli::CommandResult;
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
        task.body = read_body(
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
    print_task(&task, &entry.readiness)?;
    Ok(exit_code::SUCCESS)
}

/// Prints a task as a table of its fields, then its body.
pub fn print_task(task: &Task, readiness: &Readiness) -> anyhow::Result<()> {
    let mut rows = vec![
        vec!["id".to_owned(), task.id.to_string()],
        vec!["title".to_owned(), task.title.clone()],
        vec!["path".to_owned(), task.path.clone()],
        vec!["priority".to_owned(), task.priority.to_string()],
        vec!["status".to_owned(), task.status.to_string()],
        vec![
            "ready".to_owned(),
            if readiness.is_ready() {
                "yes".to_owned()
            } else {
                format!("no: {}", output::describe_blockers(readiness))
            },
        ],
        vec!["type".to_owned(), output::type_of(task)],
        vec!["value".to_owned(), task.value.to_string()],
    ];
    let optional = [
        ("feature", task.feature.clone()),
        ("model", task.model.clone()),
        ("created", task.created.clone()),
        ("budget", task.budget.map(|budget| describe_budget(&budget))),
    ];
    rows.extend(
        optional
            .into_iter()
            .filter_map(|(name, value)| value.map(|value| vec![name.to_owned(), value])),
    );
    let lists = [
        (
            "depends_on",
            task.depends_on
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
        ),
        ("labels", task.labels.clone()),
        ("owns", task.owns.clone()),
        ("context", task.context.clone()),
        ("acceptance", task.acceptance.clone()),
    ];
    rows.extend(
        lists
            .into_iter()
            .filter(|(_, items)| !items.is_empty())
            .map(|(name, items)| vec![name.to_owned(), items.join(", ")]),
    );
    output::print_table(&rows)?;
    if !task.body.trim().is_empty() {
        println!();
        print!("{}", task.body.trim_start_matches('\n'));
        if !task.body.ends_with('\n') {
            println!();
        }
    }
    Ok(())
}

/// Reads the markdown body of the task file at `path` in `commit` (the cache keeps no bodies).
pub fn read_body(
    repo: &Repository,
    commit: Option<ObjectId>,
    path: &str,
) -> anyhow::Result<String> {
    let Some(commit) = commit else {
        return Ok(String::new());
    };
    let bytes = match repo.entry_at(commit, path)? {
        Some((blob, false)) => repo.read_blob(blob)?,
        _ => return Ok(String::new()),
    };
    let text = String::from_utf8_lossy(&bytes);
    Ok(gitprio_core::task::split_frontmatter(&text)
        .map(|parts| parts.body.to_owned())
        .unwrap_or_default())
}

fn describe_budget(budget: &gitprio_core::Budget) -> String {
    let mut parts = Vec::new();
    if let Some(tokens) = budget.tokens {
        parts.push(format!("{tokens} tokens"));
    }
    if let Some(usd) = budget.usd {
        parts.push(format!("${usd:.2}"));
    }
    parts.join(", ")
}
