//! `gitprio done`: acceptance commands, the submission fenced by the lease, `status: done`.

use anyhow::Context as _;
use clap::Args;
use gitprio_core::git::Repository;
use gitprio_core::hint::FrontEnd;
use gitprio_core::reply::lease::{DoneFailedReply, DoneReply, DoneUnplannedReply, LeaseReply};
use gitprio_core::workspace::{self, Completed, Completion, Submission, Verify, Workspace};

use crate::args::StoreArgs;
use crate::cli::CommandResult;
use crate::settings::Settings;
use crate::{exit_code, output};

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
    /// Print JSON: `{"task", "completed", "lease": {...}, "path", "verified", "acceptance":
    /// [...]}`, the submitted lease and the acceptance results.
    #[arg(long)]
    pub json: bool,
}

pub fn run(settings: &Settings, args: &DoneArgs) -> CommandResult {
    let notices = output::Stderr(settings);
    let repo = Repository::discover(&settings.directory)?;
    let workspace = Workspace::open(&repo, settings.invocation(), args.store.choice(), &notices)?;
    let id = workspace::held_id_to_finish(&repo, args.id.as_deref())?;
    let summary = args.summary.as_deref().map(read_summary).transpose()?;
    let verify = match &args.reason {
        Some(reason) if args.no_verify => Verify::Skip {
            reason: reason.clone(),
        },
        _ => Verify::Run,
    };
    let completion = Completion {
        verify,
        summary,
        usage: Vec::new(),
    };
    let submission = match workspace.complete(&id, completion)? {
        Completed::Unplanned { path } => {
            output::message(
                settings,
                "error",
                &output::unplanned_message(&id, &path, FrontEnd::Cli),
            );
            if args.json {
                output::print_json(&DoneUnplannedReply {
                    task: id,
                    completed: false,
                    plan: "missing".to_owned(),
                    path,
                })?;
            }
            return Ok(exit_code::FAILURE);
        }
        Completed::AcceptanceFailed { checks } => {
            let failed = checks.last().expect("a failed check ends the checks");
            output::message(
                settings,
                "error",
                &output::acceptance_failed_message(&id, failed, FrontEnd::Cli),
            );
            if args.json {
                output::print_json(&DoneFailedReply {
                    task: id,
                    completed: false,
                    acceptance: checks,
                })?;
            }
            return Ok(exit_code::FAILURE);
        }
        Completed::Submitted(submission) => submission,
    };
    let Submission {
        submitted,
        verified,
        checks,
        ..
    } = *submission;
    if !checks.is_empty() {
        output::confirm(
            settings,
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
    if args.json {
        output::print_json(&DoneReply {
            lease: LeaseReply::new(&submitted.lease, workspace.store_name()),
            task: id,
            completed: true,
            path: submitted.path,
            verified,
            acceptance: checks,
        })?;
    } else {
        output::confirm(
            settings,
            &format!(
                "submitted {id} (generation {}); set `status: done` in {}: commit it and open the pull request",
                submitted.lease.record.generation, submitted.path
            ),
        );
    }
    Ok(exit_code::SUCCESS)
}

/// Reads a review summary from `source`: a file, or `-` for stdin.
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
    Ok(text)
}
