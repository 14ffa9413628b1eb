//! `gitprio action`: the GitHub Action's work on a pull request.
//!
//! It finds the tasks the pull request completes, sums what they cost from the
//! usage ledger against the repository's own baseline, keeps one summary comment
//! on the pull request up to date (or deletes it when nothing is completed), writes
//! the step summary and the step outputs, checks task edits with annotations, and
//! settles leases when the pull request closes. Everything it needs comes from the
//! workflow's environment (`GITHUB_*`), read here through clap, never in the core.

mod changes;
mod event;
mod summary;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use clap::builder::{OsStringValueParser, TypedValueParser};
use clap::{ArgAction, Args};
use gitprio_core::TaskId;
use gitprio_core::git::Repository;
use gitprio_core::lease::{self as core_lease, CasOutcome, LeaseState, LeaseStore};
use gitprio_core::source::ParseCache;
use gitprio_core::workspace::{self, SettledRuns, StoreChoice, Workspace};
use serde::{Deserialize, Serialize};

use self::changes::Changes;
use self::event::{Event, PullRequest};
use self::summary::{COMMENT_LIMIT, PullRequestSummary};
use crate::cli::{CliError, CommandResult};
use crate::github::{self, ApiError, ApiSettings, CommentOutcome, GitHub, MARKER};
use crate::settings::Settings;
use crate::{exit_code, output};

/// The files the fork-safe setup hands from the `pull_request` job to the `workflow_run` job.
const SUMMARY_FILE: &str = "summary.md";
const PULL_REQUEST_FILE: &str = "pull-request.json";

/// The largest summary file `--post-summary` reads.
const MAX_SUMMARY_FILE: u64 = 4 * 1024 * 1024;

#[derive(Debug, Args)]
pub struct ActionArgs {
    /// The webhook event that started the workflow.
    #[arg(long, env = "GITHUB_EVENT_PATH", value_name = "FILE", value_parser = path_or_empty())]
    pub event: Option<PathBuf>,
    /// The repository, `owner/name`, when the event names none.
    #[arg(long, env = "GITHUB_REPOSITORY", value_name = "OWNER/NAME")]
    pub repository: Option<String>,
    /// The REST API's base URL (GitHub Enterprise Server: `https://HOST/api/v3`).
    #[arg(long, env = "GITHUB_API_URL", value_name = "URL")]
    pub api_url: Option<String>,
    /// The token to comment with; prefer the environment variable.
    #[arg(
        long,
        env = "GITHUB_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// The file the job's step summary is appended to.
    #[arg(long, env = "GITHUB_STEP_SUMMARY", value_name = "FILE", value_parser = path_or_empty())]
    pub step_summary: Option<PathBuf>,
    /// The file step outputs are appended to.
    #[arg(long, env = "GITHUB_OUTPUT", value_name = "FILE", value_parser = path_or_empty())]
    pub github_output: Option<PathBuf>,
    /// Fail when `gitprio check` finds errors in the pull request's task edits.
    #[arg(long, env = "GITPRIO_FAIL_ON_INVALID", value_name = "BOOL", default_value = "true", value_parser = boolish, action = ArgAction::Set)]
    pub fail_on_invalid: bool,
    /// Post (and update) the summary comment; `false` only writes the step summary and outputs.
    #[arg(long, env = "GITPRIO_COMMENT", value_name = "BOOL", default_value = "true", value_parser = boolish, action = ArgAction::Set)]
    pub comment: bool,
    /// The login gitprio's comments are written by (default: the token's user, or `github-actions[bot]`).
    #[arg(long, env = "GITPRIO_COMMENT_AUTHOR", value_name = "LOGIN")]
    pub comment_author: Option<String>,
    /// Also write the summary and the pull request's facts to DIR, to upload as an artifact.
    #[arg(long, env = "GITPRIO_SUMMARY_DIR", value_name = "DIR", value_parser = path_or_empty())]
    pub summary_dir: Option<PathBuf>,
    /// Post the summary a `--summary-dir` run wrote to DIR, without reading any repository.
    #[arg(long, env = "GITPRIO_POST_SUMMARY", value_name = "DIR", value_parser = path_or_empty())]
    pub post_summary: Option<PathBuf>,
    /// How long the retries of one GitHub request may wait in all, rate limits included
    /// (seconds, or `5m`); a longer wait GitHub asks for fails the request at once.
    #[arg(long, env = "GITPRIO_GITHUB_MAX_WAIT", value_name = "DURATION")]
    pub max_wait: Option<String>,
}

/// Parses a path like clap's own parser, but lets an empty value through: a composite
/// action sets the variable of an input left at its default `""`, and [`Resolved`]
/// takes an empty value as unset (clap's `PathBuf` parser refuses it, exit 2).
fn path_or_empty() -> impl TypedValueParser<Value = PathBuf> {
    OsStringValueParser::new().map(PathBuf::from)
}

/// Parses `true`/`false` (and `yes`/`no`, `1`/`0`, `on`/`off`); empty means the default, true.
fn boolish(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "" | "true" | "yes" | "1" | "on" => Ok(true),
        "false" | "no" | "0" | "off" => Ok(false),
        other => Err(format!("`{other}` is not true or false")),
    }
}

fn non_empty(value: Option<&String>) -> Option<String> {
    value
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
}

fn non_empty_path(value: Option<&PathBuf>) -> Option<PathBuf> {
    value.filter(|path| !path.as_os_str().is_empty()).cloned()
}

/// The arguments, with empty environment values taken as unset (composite actions pass empty inputs).
#[derive(Debug)]
struct Resolved {
    event: Option<PathBuf>,
    repository: Option<String>,
    api_url: String,
    token: Option<String>,
    step_summary: Option<PathBuf>,
    github_output: Option<PathBuf>,
    comment_author: Option<String>,
    summary_dir: Option<PathBuf>,
    post_summary: Option<PathBuf>,
    max_wait: Duration,
}

impl Resolved {
    fn new(args: &ActionArgs) -> anyhow::Result<Resolved> {
        let max_wait = match non_empty(args.max_wait.as_ref()) {
            None => github::DEFAULT_MAX_WAIT,
            Some(text) => core_lease::parse_duration(&text)
                .and_then(|wait| Duration::try_from(wait).ok())
                .ok_or_else(|| {
                    anyhow!("the longest wait `{text}` (GITPRIO_GITHUB_MAX_WAIT, input `max-wait`) is not a duration like `90` or `5m`")
                })?,
        };
        Ok(Resolved {
            event: non_empty_path(args.event.as_ref()),
            repository: non_empty(args.repository.as_ref()),
            api_url: non_empty(args.api_url.as_ref())
                .unwrap_or_else(|| "https://api.github.com".to_owned()),
            token: non_empty(args.token.as_ref()),
            step_summary: non_empty_path(args.step_summary.as_ref()),
            github_output: non_empty_path(args.github_output.as_ref()),
            comment_author: non_empty(args.comment_author.as_ref()),
            summary_dir: non_empty_path(args.summary_dir.as_ref()),
            post_summary: non_empty_path(args.post_summary.as_ref()),
            max_wait,
        })
    }

    fn read_event(&self) -> anyhow::Result<Event> {
        let path = self.event.as_ref().ok_or_else(|| {
            anyhow!("no event: set GITHUB_EVENT_PATH (GitHub Actions does) or pass `--event FILE`")
        })?;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the event {}", path.display()))?;
        event::parse(&text, self.repository.as_deref())
            .with_context(|| format!("cannot read the event {}", path.display()))
    }

    fn github(&self, repository: &str) -> anyhow::Result<Option<GitHub>> {
        let Some(token) = &self.token else {
            return Ok(None);
        };
        let (owner, repo) = event::split_repository(repository)?;
        Ok(Some(
            GitHub::new(ApiSettings {
                api_url: self.api_url.clone(),
                token: token.clone(),
                owner: owner.to_owned(),
                repo: repo.to_owned(),
                author: self.comment_author.clone(),
            })?
            .with_max_wait(self.max_wait),
        ))
    }
}

/// What the `pull_request` job hands to the job that posts (`pull-request.json`).
#[derive(Debug, Serialize, Deserialize)]
struct Handover {
    repository: String,
    number: u64,
    head_sha: String,
    outputs: Outputs,
}

/// The step outputs.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
struct Outputs {
    completed_tasks: Vec<TaskId>,
    tokens: u64,
    /// Dollars, the priced part when some models have no price.
    cost_usd: f64,
    value_per_token: Option<f64>,
}

impl Outputs {
    fn of(summary: &PullRequestSummary) -> Outputs {
        Outputs {
            completed_tasks: summary
                .tasks
                .iter()
                .map(|task| task.completion.task.id.clone())
                .collect(),
            tokens: summary.spend.tokens(),
            cost_usd: summary.spend.known_cost,
            value_per_token: summary.value_per_token(),
        }
    }

    fn lines(&self) -> String {
        let tasks = serde_json::to_string(&self.completed_tasks).unwrap_or_default();
        format!(
            "completed-tasks={tasks}\ntokens={}\ncost-usd={:.4}\nvalue-per-token={}\n",
            self.tokens,
            self.cost_usd,
            self.value_per_token
                .map(|value| value.to_string())
                .unwrap_or_default()
        )
    }
}

pub fn run(settings: &Settings, args: &ActionArgs) -> CommandResult {
    let resolved = Resolved::new(args)?;
    if let Some(directory) = &resolved.post_summary {
        return post(settings, &resolved, directory).map_err(CliError::from);
    }
    let pull_request = match resolved.read_event()? {
        Event::PullRequest(pull_request) => pull_request,
        Event::WorkflowRun { .. } | Event::Other => {
            output::message(
                settings,
                "info",
                "not a pull request event: only the task files are checked",
            );
            let invalid = run_check(settings)?;
            return Ok(if invalid && args.fail_on_invalid {
                exit_code::FAILURE
            } else {
                exit_code::SUCCESS
            });
        }
    };
    let repo = Repository::discover(&settings.directory)?;
    let notices = output::Stderr(settings);
    // Opened first: it sets the config's `remote_timeout` on the fetch of a missing commit.
    let workspace = Workspace::open_quietly(
        &repo,
        settings.invocation(),
        StoreChoice::Configured,
        &notices,
    )?;
    let cache_path = gitprio_core::workspace::parse_cache_path(&repo);
    let mut cache = ParseCache::load(&cache_path);
    let changes = changes::read(
        &repo,
        &pull_request.base_sha,
        &pull_request.head_sha,
        &mut cache,
    )?;
    let _ = cache.save(&cache_path);
    let invalid = changes.edits_tasks() && run_check(settings)?;
    let store = workspace.store();
    if let Err(error) = store.fetch("refs/gitprio/*") {
        warn(
            settings,
            &format!(
                "cannot fetch the leases and the usage ledger: {error}; the summary uses what this clone has"
            ),
        );
    }
    let SettledRuns { leases, runs, .. } = workspace.settled_runs()?;
    let repository_prices = gitprio_core::workspace::price_overrides(&repo, Some(changes.head))?;
    output::price_problems(settings, &repository_prices);
    let prices = repository_prices.table();
    let mut summary = summary::summarize(&changes, &runs, &leases, &prices);
    summary.repository_price_models = repository_prices.prices.len();
    summary.invalid_tasks = invalid;
    let outputs = Outputs::of(&summary);
    let body = (!summary.tasks.is_empty()).then(|| summary::markdown(&summary));
    output::message(
        settings,
        "info",
        &format!(
            "pull request #{} completes {}{}",
            pull_request.number,
            output::counted(summary.tasks.len(), "task"),
            if summary.tasks.is_empty() {
                String::new()
            } else {
                format!(
                    ": {}",
                    outputs
                        .completed_tasks
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        ),
    );
    let page = body
        .clone()
        .unwrap_or_else(|| summary::nothing_completed(invalid));
    if let Some(directory) = &resolved.summary_dir {
        write_handover(directory, &pull_request, body.as_deref(), &outputs)?;
    }
    let published = if args.comment {
        comment(
            settings,
            &resolved,
            &pull_request.repository,
            pull_request.number,
            body.as_deref(),
            pull_request.is_from_fork(),
        )
    } else {
        Ok(None)
    };
    let (note, failure) = match published {
        Ok(note) => (note, None),
        Err(error) => (None, Some(error)),
    };
    write_step_summary(&resolved, &page, note.as_deref())?;
    write_outputs(&resolved, &outputs)?;
    settle_leases(settings, store, &pull_request, &changes, &leases);
    if let Some(error) = failure {
        return Err(CliError::from(error));
    }
    Ok(if invalid && args.fail_on_invalid {
        exit_code::FAILURE
    } else {
        exit_code::SUCCESS
    })
}

/// Runs `gitprio check` on the working tree with annotations; returns whether it found errors.
///
/// As its own process of this binary, like `gitprio run`'s operations: the Action is a
/// front end over the commands, not a caller of another command's code.
fn run_check(settings: &Settings) -> anyhow::Result<bool> {
    let status = std::process::Command::new(std::env::current_exe()?)
        .args(["check", "--format", "github"])
        .current_dir(&settings.directory)
        .stdin(std::process::Stdio::null())
        .status()
        .context("cannot run `gitprio check`")?;
    match status.code().and_then(exit_code::ExitStatus::from_code) {
        Some(exit_code::SUCCESS | exit_code::NO_QUEUE) => Ok(false),
        Some(exit_code::FAILURE) => Ok(true),
        _ => anyhow::bail!("`gitprio check` failed ({status})"),
    }
}

/// Brings the comment in line with `body`; returns a note for the step summary when no comment could be posted.
fn comment(
    settings: &Settings,
    resolved: &Resolved,
    repository: &str,
    number: u64,
    body: Option<&str>,
    from_fork: bool,
) -> anyhow::Result<Option<String>> {
    let Some(github) = resolved.github(repository)? else {
        let note = "no comment was posted: GITHUB_TOKEN is not set (the action passes its `github-token` input)";
        warn(settings, note);
        return Ok(Some(note.to_owned()));
    };
    let body = body.map(|body| summary::truncate(body, COMMENT_LIMIT));
    match github.sync_comment(number, body.as_deref()) {
        Ok(outcome) => {
            let text = match outcome {
                CommentOutcome::Created { id } => format!("created the summary comment {id}"),
                CommentOutcome::Updated { id } => format!("updated the summary comment {id}"),
                CommentOutcome::Unchanged { id } => {
                    format!("the summary comment {id} is up to date")
                }
                CommentOutcome::Deleted { count: 0 } => {
                    "no task completed: no summary comment".to_owned()
                }
                CommentOutcome::Deleted { count } => {
                    format!("no task completed any more: deleted {count} stale summary comments")
                }
            };
            output::message(settings, "info", &text);
            Ok(None)
        }
        Err(error @ ApiError::Forbidden { .. }) => {
            let mut note = format!("no comment was posted: {error}");
            if from_fork {
                note.push_str(" (this pull request comes from a fork: its token is read-only)");
            }
            warn(settings, &note);
            Ok(Some(note))
        }
        Err(ApiError::Other(error)) => Err(error.context("cannot update the summary comment")),
    }
}

/// Prints a warning, and a workflow annotation when running in GitHub Actions.
fn warn(settings: &Settings, text: &str) {
    output::message(settings, "warning", text);
    if settings.github_actions {
        let escaped = text
            .replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A");
        println!("::warning title=gitprio::{escaped}");
    }
}

fn append(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Appends the summary to the step summary file, or prints it to stdout outside Actions.
fn write_step_summary(resolved: &Resolved, page: &str, note: Option<&str>) -> anyhow::Result<()> {
    let mut text = page.to_owned();
    if let Some(note) = note {
        text.push_str("\n> [!NOTE]\n> ");
        text.push_str(&note.replace('\n', " "));
        text.push('\n');
    }
    if let Some(path) = &resolved.step_summary {
        return append(path, &format!("{text}\n"));
    }
    print!("{text}");
    Ok(())
}

fn write_outputs(resolved: &Resolved, outputs: &Outputs) -> anyhow::Result<()> {
    match &resolved.github_output {
        Some(path) => append(path, &outputs.lines()),
        None => Ok(()),
    }
}

fn write_handover(
    directory: &Path,
    pull_request: &PullRequest,
    body: Option<&str>,
    outputs: &Outputs,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(directory)
        .with_context(|| format!("cannot create {}", directory.display()))?;
    let summary_path = directory.join(SUMMARY_FILE);
    match body {
        Some(body) => std::fs::write(&summary_path, body)
            .with_context(|| format!("cannot write {}", summary_path.display()))?,
        None => match std::fs::remove_file(&summary_path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("cannot remove {}", summary_path.display()));
            }
        },
    }
    let handover = Handover {
        repository: pull_request.repository.clone(),
        number: pull_request.number,
        head_sha: pull_request.head_sha.clone(),
        outputs: outputs.clone(),
    };
    let path = directory.join(PULL_REQUEST_FILE);
    std::fs::write(&path, serde_json::to_string_pretty(&handover)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Posts what a `--summary-dir` run wrote, from a trusted workflow that checks out no pull request code.
fn post(
    settings: &Settings,
    resolved: &Resolved,
    directory: &Path,
) -> anyhow::Result<exit_code::ExitStatus> {
    let path = directory.join(PULL_REQUEST_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {} (written by `--summary-dir`)",
            path.display()
        )
    })?;
    let handover: Handover = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a gitprio handover", path.display()))?;
    let repository = resolved.repository.clone().ok_or_else(|| {
        anyhow!("GITHUB_REPOSITORY is not set: cannot tell which repository to post to")
    })?;
    if !handover.repository.eq_ignore_ascii_case(&repository) {
        bail!(
            "the summary is for {}, but this workflow runs in {repository}: not posted",
            handover.repository
        );
    }
    if let Some(Event::WorkflowRun { head_sha }) = resolved
        .event
        .as_ref()
        .and_then(|_| resolved.read_event().ok())
        && head_sha != handover.head_sha
    {
        bail!(
            "the summary is for commit {}, but the workflow run was for {head_sha}: not posted",
            handover.head_sha
        );
    }
    let summary_path = directory.join(SUMMARY_FILE);
    let body = match std::fs::metadata(&summary_path) {
        Ok(metadata) if metadata.len() > MAX_SUMMARY_FILE => {
            bail!(
                "{} is larger than 4 MiB: not posted",
                summary_path.display()
            )
        }
        Ok(_) => {
            let text = std::fs::read_to_string(&summary_path)
                .with_context(|| format!("cannot read {}", summary_path.display()))?;
            Some(if text.starts_with(MARKER) {
                text
            } else {
                format!("{MARKER}\n{text}")
            })
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => {
            return Err(anyhow!(error).context(format!("cannot read {}", summary_path.display())));
        }
    };
    let page = body
        .clone()
        .unwrap_or_else(|| summary::nothing_completed(false));
    if let Some(github) = resolved.github(&repository)? {
        match github.pull_request_head(handover.number) {
            Ok(head) if head != handover.head_sha => {
                output::message(
                    settings,
                    "info",
                    &format!(
                        "pull request #{} has moved on to {head} since this summary (for {}): not posted; the newer run posts its own",
                        handover.number, handover.head_sha
                    ),
                );
                return Ok(exit_code::SUCCESS);
            }
            Ok(_) => {}
            Err(ApiError::Forbidden { message }) => {
                warn(
                    settings,
                    &format!("cannot read pull request #{}: {message}", handover.number),
                );
            }
            Err(ApiError::Other(error)) => return Err(error),
        }
    }
    let published = comment(
        settings,
        resolved,
        &repository,
        handover.number,
        body.as_deref(),
        false,
    );
    let (note, failure) = match published {
        Ok(note) => (note, None),
        Err(error) => (None, Some(error)),
    };
    write_step_summary(resolved, &page, note.as_deref())?;
    write_outputs(resolved, &handover.outputs)?;
    match failure {
        Some(error) => Err(error),
        None => Ok(exit_code::SUCCESS),
    }
}

/// On a closed pull request: gives submitted tasks back when it was not merged, deletes done tasks' leases when it was.
///
/// Both need write access to the remote's refs (`contents: write`); without it the
/// leases stay, with a warning: they expire or are collected by `gitprio gc` later.
fn settle_leases(
    settings: &Settings,
    store: &LeaseStore<'_>,
    pull_request: &PullRequest,
    changes: &Changes,
    leases: &BTreeMap<TaskId, core_lease::Lease>,
) {
    let ids = changes.completed_ids();
    if pull_request.closed_unmerged() {
        for id in &ids {
            let Some(lease) = leases.get(id) else {
                continue;
            };
            if lease.record.state != LeaseState::Submitted {
                continue;
            }
            let outcome = core_lease::reopen(
                store,
                lease,
                settings.now,
                format!(
                    "pull request #{} was closed without merging",
                    pull_request.number
                ),
            );
            match outcome {
                Ok(CasOutcome::Won) => output::message(
                    settings,
                    "info",
                    &format!(
                        "released {id}: its pull request was closed without merging, so it is back in the queue"
                    ),
                ),
                Ok(CasOutcome::Lost { detail }) => output::message(
                    settings,
                    "info",
                    &format!("left the lease of {id} alone: it changed meanwhile ({detail})"),
                ),
                Err(error) => warn(
                    settings,
                    &format!(
                        "cannot release the lease of {id}: {error}; the job needs `contents: write` to update lease refs"
                    ),
                ),
            }
        }
    } else if pull_request.merged() {
        let Some(queue) = &changes.head_queue else {
            return;
        };
        let mine: BTreeMap<TaskId, core_lease::Lease> = leases
            .iter()
            .filter(|(id, _)| ids.contains(id))
            .map(|(id, lease)| (id.clone(), lease.clone()))
            .collect();
        let when = (settings.now, queue.config.clock_skew);
        match workspace::collect(store, queue, &mine, when).map(|collected| collected.deleted) {
            Ok(deleted) if deleted.is_empty() => {}
            Ok(deleted) => output::message(
                settings,
                "info",
                &format!(
                    "deleted the leases of the tasks now done: {}",
                    deleted
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            Err(error) => warn(
                settings,
                &format!(
                    "cannot delete the leases of the tasks now done: {error}; the job needs `contents: write`, or run `gitprio gc` later"
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_read_like_action_inputs() {
        assert_eq!(boolish("true"), Ok(true));
        assert_eq!(boolish(""), Ok(true));
        assert_eq!(boolish("False"), Ok(false));
        assert_eq!(boolish("0"), Ok(false));
        assert!(boolish("maybe").is_err());
    }

    #[test]
    fn outputs_are_lines_of_name_and_value() {
        let outputs = Outputs {
            completed_tasks: vec![TaskId::new("login").unwrap(), TaskId::new("docs").unwrap()],
            tokens: 1_500_000,
            cost_usd: 4.5,
            value_per_token: Some(7.5 / 1_500_000.0),
        };
        assert_eq!(
            outputs.lines(),
            "completed-tasks=[\"login\",\"docs\"]\ntokens=1500000\ncost-usd=4.5000\nvalue-per-token=0.000005\n"
        );
        assert_eq!(
            Outputs::default().lines(),
            "completed-tasks=[]\ntokens=0\ncost-usd=0.0000\nvalue-per-token=\n"
        );
    }
}
