//! `gitprio done`: acceptance commands, the submission fenced by the lease, `status: done`.

use anyhow::{Context as _, anyhow, bail};
use clap::Args;
use gitprio_core::git::Repository;
use gitprio_core::lease::{self as core_lease, Lease, LeaseStore};
use gitprio_core::source::{self, QueueSource};
use gitprio_core::usage::Outcome;
use gitprio_core::{Config, TaskId};
use serde_json::json;

use crate::cli::CommandResult;
use crate::settings::Settings;
use crate::{exit_code, output};

use super::{
    StoreArgs, acceptance_commands, context, held_id_to_finish, lease_json, open_store,
    run_acceptance, unplanned,
};

#[derive(Debug, Args)]
pub struct DoneArgs {
    /// The task id (default: the one task this worktree holds).
    pub id: Option<String>,
    /// Complete without running the task's `acceptance` commands; needs `--reason`.
    #[arg(long, requires = "reason")]
    pub no_verify: bool,
    /// Why the acceptance commands were not run; kept in the lease history.
    #[arg(long, value_name = "TEXT", requires = "no_verify")]
    pub reason: Option<String>,
    /// A short review summary (what changed, what was left alone, tests run, doubts), read
    /// from FILE or from stdin with `-`; kept as the `reason` of the submit record.
    #[arg(long, value_name = "FILE")]
    pub summary: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print the lease and the acceptance results as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Records `id` as submitted, fenced by the lease, then sets `status: done` in its task file;
/// returns the lease and the file's path in the repository. `note` (the review summary, why
/// acceptance was not run) is kept as the `reason` of the submit record in the lease history.
pub fn finish_noting(
    settings: &Settings,
    repo: &Repository,
    config: &Config,
    store: &LeaseStore<'_>,
    id: &TaskId,
    note: Option<&str>,
) -> anyhow::Result<(Lease, String)> {
    let context = context(settings, repo, config, None)?;
    let worktree = repo
        .workdir()
        .ok_or_else(|| anyhow!("`gitprio done` edits the task file, so it needs a working tree"))?
        .to_path_buf();
    let path = find_task_file(repo, id)?;
    let file = worktree.join(&path);
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read the task file {}", file.display()))?;
    let edited = gitprio_core::task::set_status(&text, gitprio_core::Status::Done)
        .with_context(|| format!("cannot set `status: done` in {}", file.display()))?;
    // The fence first: only the lease holder may record completion.
    let lease = core_lease::submit_noting(store, id, &context, note)?;
    if context.failpoint.as_deref() == Some("done:before-edit") {
        std::process::abort();
    }
    crate::commands::usage::record_outcome(settings, store, id, Outcome::Completed);
    if edited != text {
        std::fs::write(&file, edited)
            .with_context(|| format!("cannot write {}", file.display()))?;
    }
    Ok((lease, path))
}

pub fn run(settings: &Settings, args: &DoneArgs) -> CommandResult {
    let repo = Repository::discover(&settings.directory)?;
    let (config, store) = open_store(&repo, args.store.local)?;
    let id = held_id_to_finish(&repo, args.id.as_deref())?;
    let summary = args.summary.as_deref().map(read_summary).transpose()?;
    if let Some(path) = unplanned(&repo, &config, &id)? {
        output::message(
            settings,
            "error",
            &format!(
                "{id} must be planned first, and {path} has no `## Plan` section, so it is not done; add one to its body (what you will change and in which order, what you leave alone, how you will check it), then run `gitprio done` again"
            ),
        );
        if args.json {
            output::print_json(&json!({
                "task": id,
                "completed": false,
                "plan": "missing",
                "path": path,
            }))?;
        }
        return Ok(exit_code::FAILURE);
    }
    let mut checks = Vec::new();
    if !args.no_verify {
        let worktree = repo.workdir().ok_or_else(|| {
            anyhow!("`gitprio done` runs the acceptance commands, so it needs a working tree")
        })?;
        let commands = acceptance_commands(&repo, &id)?;
        checks = run_acceptance(worktree, &commands)?;
        if let Some(failed) = checks.iter().find(|check| !check.passed) {
            output::message(
                settings,
                "error",
                &format!(
                    "acceptance command `{}` failed ({}), so {id} is not done; fix it and run `gitprio done` again, or `gitprio done --no-verify --reason \"<why>\"`. Its output ends with:\n{}",
                    failed.command, failed.status, failed.tail
                ),
            );
            if args.json {
                output::print_json(&json!({
                    "task": id,
                    "completed": false,
                    "acceptance": checks,
                }))?;
            }
            return Ok(exit_code::FAILURE);
        }
        if !checks.is_empty() {
            output::message(
                settings,
                "info",
                &format!(
                    "acceptance: {} passed",
                    if checks.len() == 1 {
                        "1 command".to_owned()
                    } else {
                        format!("all {} commands", checks.len())
                    }
                ),
            );
        }
    }
    let note = completion_note(args.reason.as_deref(), summary);
    let (lease, path) = finish_noting(settings, &repo, &config, &store, &id, note.as_deref())?;
    if args.json {
        output::print_json(&json!({
            "task": id,
            "completed": true,
            "lease": lease_json(&lease, &store),
            "path": path,
            "verified": !args.no_verify,
            "acceptance": checks,
        }))?;
    } else {
        println!(
            "submitted {id} (generation {}); set `status: done` in {path}: commit it and open the pull request",
            lease.record.generation
        );
    }
    Ok(exit_code::SUCCESS)
}

/// The note a completion leaves on the lease: why the acceptance commands were not run, if
/// they were not, then the review summary.
pub fn completion_note(no_verify_reason: Option<&str>, summary: Option<String>) -> Option<String> {
    match (no_verify_reason, summary) {
        (Some(reason), Some(summary)) => Some(format!("acceptance not run: {reason}\n\n{summary}")),
        (Some(reason), None) => Some(format!("acceptance not run: {reason}")),
        (None, summary) => summary,
    }
}

/// The longest review summary kept, in bytes: it lives in a lease commit message.
const MAX_SUMMARY_BYTES: usize = 8 * 1024;

/// Reads a review summary from `source` (a file, or `-` for stdin); `None` when it is blank.
fn read_summary(source: &str) -> anyhow::Result<String> {
    let text = if source == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("cannot read the summary from stdin")?;
        text
    } else {
        std::fs::read_to_string(source)
            .with_context(|| format!("cannot read the summary file {source}"))?
    };
    let text = bounded_summary(&text);
    anyhow::ensure!(!text.is_empty(), "the summary in {source} is empty");
    Ok(text)
}

/// Trims a review summary and cuts it at [`MAX_SUMMARY_BYTES`], saying so.
pub fn bounded_summary(text: &str) -> String {
    let mut text = text.trim().to_owned();
    if text.len() > MAX_SUMMARY_BYTES {
        let mut end = MAX_SUMMARY_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("\n[summary cut at 8 KiB]");
    }
    text
}

/// Finds the task file of `id`: in the working tree first (it may be new), else in the queue.
fn find_task_file(repo: &Repository, id: &TaskId) -> anyhow::Result<String> {
    for source in [QueueSource::Worktree, QueueSource::Default] {
        if let Ok(loaded) = source::load(repo, &source, None)
            && let Some(task) = loaded.tasks.iter().find(|task| &task.id == id)
        {
            return Ok(task.path.clone());
        }
    }
    bail!("no task file for `{id}` in the working tree or the queue")
}
