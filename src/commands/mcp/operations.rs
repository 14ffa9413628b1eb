//! The tools' work: the CLI's lease, usage and queue functions, their outcomes as data.

use gitprio_core::TaskId;
use gitprio_core::context::{ReportCommand, Tail};
use gitprio_core::git::Repository;
use gitprio_core::hint::FrontEnd;
use gitprio_core::lease::LeaseError;
use gitprio_core::usage::{RunMeta, Totals};
use jiff::Timestamp;
use serde_json::Value;

use super::{
    CompleteParams, HeartbeatParams, ReleaseParams, Reply, ReportParams, Session, Shared,
    UsageParams,
};
use crate::reading::{SourceArgs, load_queue};
use crate::settings::Settings;
use crate::{exit_code, output};
use gitprio_core::reply::lease::NothingReadyReply;
use gitprio_core::reply::tools::{
    AcceptanceFailedReply, AlreadyHoldingReply, CompletionReply, GiveBackReply, HandoutLease,
    PlanMissingReply, QueueReply, QueuedTask, RenewalReply, TaskHandout, UsageReportReply,
};
use gitprio_core::workspace::{
    self, Claim, ClaimRequest, ClaimedTask, Completed, Completion, GiveBack, RecordInput,
    StoreChoice, Submission, Submitted, Verify, Workspace, WorkspaceError, error_chain,
};

/// How many ready tasks `queue` lists unless told.
const DEFAULT_QUEUE_LIMIT: usize = 10;

/// `get_next_task`: `gitprio claim`, refused while this server still holds a task.
pub(super) fn next_task(
    settings: &Settings,
    shared: &Shared,
    session: &mut Session,
) -> anyhow::Result<Reply> {
    if let Some(current) = &session.current {
        // A second claim would leave the first task leased and idle until it expires.
        return Ok(Reply::Refusal {
            code: exit_code::FAILURE,
            error: None,
            message: format!(
                "you hold `{current}` already: work on it, or finish it with complete_task or release_task before taking another"
            ),
            data: serde_json::to_value(AlreadyHoldingReply {
                task: current.clone(),
            })?,
        });
    }
    let notices = output::Stderr(settings);
    let repo = Repository::discover(&settings.directory)?;
    let workspace = open(settings, shared, &repo, &notices)?;
    let request = ClaimRequest {
        ttl: shared.ttl.clone(),
        filter: shared.filter.clone(),
        avoid_overlap: false,
    };
    match workspace.claim(&request)? {
        Claim::Claimed(mut claimed) => {
            let record = &claimed.lease.record;
            output::message(
                settings,
                "info",
                &format!(
                    "claimed {} (generation {}, expires {})",
                    claimed.task.id, record.generation, record.expires_at
                ),
            );
            session.current = Some(claimed.task.id.clone());
            let reply = serde_json::to_value(handout(&claimed))?;
            claimed.replied();
            Ok(Reply::Data(reply))
        }
        Claim::NothingReady(why) => {
            let message = format!(
                "{}; stop, there is no task for you now",
                why.sentence(FrontEnd::Mcp)
            );
            output::message(settings, "info", &message);
            let data = serde_json::to_value(NothingReadyReply::new(&why, message.clone()))?;
            if why.reason == "empty" {
                Ok(Reply::Data(data))
            } else {
                Ok(Reply::Refusal {
                    code: exit_code::NOTHING_READY,
                    error: None,
                    message,
                    data,
                })
            }
        }
    }
}

/// The claimed task for the agent: its id, lease and the context bundle as one markdown prompt.
fn handout(claimed: &ClaimedTask) -> TaskHandout {
    let task = &claimed.task;
    let record = &claimed.lease.record;
    let (context, context_error) = match &claimed.bundle {
        Ok(bundle) => {
            let tail = Tail {
                source: claimed.origin.to_string(),
                lease: Some(&claimed.lease),
                commands: report_tools(&super::heartbeat_every(record.ttl_seconds)),
            };
            (bundle.to_markdown(&tail), None)
        }
        Err(error) => (
            format!("# {}\n\n{}", task.title, task.body),
            Some(format!(
                "the context bundle could not be assembled ({}); this is the task alone",
                error_chain(error)
            )),
        ),
    };
    TaskHandout {
        task: task.id.clone(),
        title: task.title.clone(),
        owns: task.owns.clone(),
        acceptance: task.acceptance.clone(),
        lease: HandoutLease {
            generation: record.generation,
            attempt: record.attempt,
            expires_at: record.expires_at,
            last_error: record.last_error.clone(),
        },
        context,
        context_error,
    }
}

/// The tools an agent reports with, listed at the end of the bundle it is handed.
fn report_tools(heartbeat_every: &str) -> Vec<ReportCommand> {
    [
        (
            "heartbeat",
            &*format!("every {heartbeat_every} while you work; lease_lost means stop"),
        ),
        (
            "complete_task",
            "when the acceptance commands pass, with a summary of the evidence; then commit the task file with your change",
        ),
        (
            "release_task",
            "with failed true and the reason when you cannot finish",
        ),
    ]
    .into_iter()
    .map(|(command, purpose)| ReportCommand {
        command: command.to_owned(),
        purpose: purpose.to_owned(),
    })
    .collect()
}

/// Resolves the task a call is about: the one named, else the one this server claimed, else
/// the one this worktree holds.
fn task_of(repo: &Repository, session: &Session, given: Option<&str>) -> anyhow::Result<TaskId> {
    match (given, &session.current) {
        (None, Some(current)) => Ok(current.clone()),
        (given, _) => Ok(workspace::held_id(repo, given)?),
    }
}

/// Resolves the task `complete_task` is about, like [`task_of`], a task submitted here
/// before included (a completion to finish).
fn task_to_finish(
    repo: &Repository,
    session: &Session,
    given: Option<&str>,
) -> anyhow::Result<TaskId> {
    match (given, &session.current) {
        (None, Some(current)) => Ok(current.clone()),
        (given, _) => Ok(workspace::held_id_to_finish(repo, given)?),
    }
}

/// Opens the workspace of this server's store in `repo`.
fn open<'repo>(
    settings: &Settings,
    shared: &Shared,
    repo: &'repo Repository,
    notices: &'repo output::Stderr<'repo>,
) -> anyhow::Result<Workspace<'repo>> {
    Ok(Workspace::open(
        repo,
        settings.invocation(),
        StoreChoice::local(shared.local),
        notices,
    )?)
}

/// Forgets the current task when `result` says its lease is gone, so the agent can claim again.
fn forget_if_lost<T>(
    session: &mut Session,
    id: &TaskId,
    result: Result<T, WorkspaceError>,
) -> anyhow::Result<T> {
    if let Err(error) = &result
        && matches!(
            error.lease(),
            Some(LeaseError::Lost { .. } | LeaseError::NotHeld { .. })
        )
        && session.current.as_ref() == Some(id)
    {
        session.current = None;
    }
    Ok(result?)
}

/// Answers with `data`, or refuses when the run is over its token budget.
fn budget_checked(id: &TaskId, spent: Option<(&RunMeta, Totals)>, data: Value) -> Reply {
    match spent.and_then(|(meta, totals)| workspace::over_budget(meta, &totals)) {
        Some((tokens, budget)) => Reply::Refusal {
            code: exit_code::BUDGET_EXCEEDED,
            error: None,
            message: output::over_budget_message(id, tokens, budget, FrontEnd::Mcp),
            data,
        },
        None => Reply::Data(data),
    }
}

/// `heartbeat`: `gitprio heartbeat [--tokens --cost-usd]`, with its budget verdict.
pub(super) fn heartbeat(
    settings: &Settings,
    shared: &Shared,
    session: &mut Session,
    params: &HeartbeatParams,
) -> anyhow::Result<Reply> {
    let progress = workspace::progress(settings.now, params.tokens, params.cost_usd)?;
    let notices = output::Stderr(settings);
    let repo = Repository::discover(&settings.directory)?;
    let workspace = open(settings, shared, &repo, &notices)?;
    let id = task_of(&repo, session, params.task_id.as_deref())?;
    let renewed = forget_if_lost(
        session,
        &id,
        workspace.heartbeat(&id, shared.ttl.as_deref(), progress.as_ref()),
    )?;
    let record = &renewed.lease.record;
    let spent = renewed.spent.as_ref().map(|run| (&run.meta, run.totals()));
    let data = serde_json::to_value(RenewalReply {
        task: id.clone(),
        generation: record.generation,
        expires_at: record.expires_at,
        tokens: spent.as_ref().map(|(_, totals)| totals.tokens()),
        budget_tokens: spent.as_ref().and_then(|(meta, _)| meta.budget_tokens),
    })?;
    Ok(budget_checked(&id, spent, data))
}

/// `complete_task`: `gitprio done --summary` (acceptance commands first), with `gitprio usage
/// record` before it when usage is given.
pub(super) fn complete(
    settings: &Settings,
    shared: &Shared,
    session: &mut Session,
    params: CompleteParams,
) -> anyhow::Result<Reply> {
    let notices = output::Stderr(settings);
    let repo = Repository::discover(&settings.directory)?;
    let workspace = open(settings, shared, &repo, &notices)?;
    let id = task_to_finish(&repo, session, params.task_id.as_deref())?;
    let verify = match params.no_verify_reason {
        Some(reason) => Verify::Skip { reason },
        None => Verify::Run,
    };
    let completion = Completion {
        verify,
        summary: params.summary,
        usage: params
            .usage
            .map(|reported| vec![record_input(session, reported)])
            .unwrap_or_default(),
    };
    let submission = match forget_if_lost(session, &id, workspace.complete(&id, completion))? {
        Completed::Unplanned { path } => {
            return Ok(Reply::Refusal {
                code: exit_code::FAILURE,
                error: Some("plan_missing"),
                message: output::unplanned_message(&id, &path, FrontEnd::Mcp),
                data: serde_json::to_value(PlanMissingReply {
                    task: id,
                    completed: false,
                    path,
                })?,
            });
        }
        Completed::AcceptanceFailed { checks } => {
            let failed = checks.last().expect("a failed check ends the checks");
            return Ok(Reply::Refusal {
                code: exit_code::FAILURE,
                error: Some("acceptance_failed"),
                message: output::acceptance_failed_message(&id, failed, FrontEnd::Mcp),
                data: serde_json::to_value(AcceptanceFailedReply {
                    task: id,
                    completed: false,
                    acceptance: checks,
                })?,
            });
        }
        Completed::Submitted(submission) => submission,
    };
    let Submission {
        submitted: Submitted { lease, path },
        verified,
        checks,
        recorded,
        already: _,
    } = *submission;
    if session.current.as_ref() == Some(&id) {
        session.current = None;
    }
    output::message(settings, "info", &format!("completed {id}"));
    Ok(Reply::Data(serde_json::to_value(CompletionReply {
        next: format!(
            "commit {path} (now `status: done`) with your change and open the pull request; then get_next_task"
        ),
        task: id,
        completed: true,
        generation: lease.record.generation,
        path,
        verified,
        acceptance: checks,
        tokens: recorded.map(|recorded| recorded.totals.tokens()),
    })?))
}

/// `release_task`: `gitprio release`.
pub(super) fn release(
    settings: &Settings,
    shared: &Shared,
    session: &mut Session,
    params: &ReleaseParams,
) -> anyhow::Result<Reply> {
    let notices = output::Stderr(settings);
    let repo = Repository::discover(&settings.directory)?;
    let workspace = open(settings, shared, &repo, &notices)?;
    let id = task_of(&repo, session, params.task_id.as_deref())?;
    let released = forget_if_lost(
        session,
        &id,
        workspace.release(&id, Some(&params.reason), GiveBack::failed(params.failed)),
    )?;
    if session.current.as_ref() == Some(&id) {
        session.current = None;
    }
    let failures = released.lease.record.failures;
    let message = if released.parked {
        format!("released {id}: {failures} failed attempts, so it is parked until a human looks")
    } else {
        format!("released {id}; it is ready for the next agent")
    };
    output::message(settings, "info", &message);
    Ok(Reply::Data(serde_json::to_value(GiveBackReply {
        task: id,
        parked: released.parked,
        failures,
        message,
    })?))
}

/// `report_usage`: `gitprio usage record`, with its budget verdict.
pub(super) fn report_usage(
    settings: &Settings,
    shared: &Shared,
    session: &mut Session,
    params: ReportParams,
) -> anyhow::Result<Reply> {
    let notices = output::Stderr(settings);
    let repo = Repository::discover(&settings.directory)?;
    let workspace = open(settings, shared, &repo, &notices)?;
    let id = task_of(&repo, session, params.task_id.as_deref())?;
    let input = record_input(
        session,
        UsageParams {
            model: params.model,
            input: params.input,
            output: params.output,
            cache_read: params.cache_read,
            cache_write: params.cache_write,
            key: params.key,
        },
    );
    let written = workspace.record_usage(&id, vec![input])?;
    let totals = written.totals;
    let data = serde_json::to_value(UsageReportReply {
        task: id.clone(),
        run: written.meta.run.clone(),
        added: written.added,
        tokens: totals.tokens(),
        budget_tokens: written.meta.budget_tokens,
    })?;
    Ok(budget_checked(&id, Some((&written.meta, totals)), data))
}

/// Makes a usage record of a report; one without a key gets a key of its own, since a
/// server sends many reports from one process (the CLI's default key is per process).
fn record_input(session: &mut Session, reported: UsageParams) -> RecordInput {
    let key = reported.key.unwrap_or_else(|| {
        session.reports += 1;
        format!(
            "mcp:{}:{}:{}",
            std::process::id(),
            Timestamp::now().as_nanosecond(),
            session.reports
        )
    });
    RecordInput {
        model: reported.model,
        input: reported.input,
        output: reported.output,
        cache_read: reported.cache_read,
        cache_write: reported.cache_write,
        cache_write_1h: 0,
        reasoning: 0,
        requests: 1,
        key: Some(key),
        origin: None,
    }
}

/// `queue`: the top of `gitprio list --ready`, with the leases last fetched.
pub(super) fn queue(settings: &Settings, limit: Option<usize>) -> anyhow::Result<Reply> {
    let (loaded, queue) =
        load_queue(settings, &SourceArgs::default()).map_err(|error| error.error)?;
    let tasks = queue
        .ready()
        .iter()
        .take(limit.unwrap_or(DEFAULT_QUEUE_LIMIT))
        .enumerate()
        .map(|(index, entry)| {
            let task = &entry.task;
            QueuedTask {
                rank: index + 1,
                id: task.id.clone(),
                title: task.title.clone(),
                priority: task.priority,
                task_type: task.task_type.clone(),
                value: task.value,
            }
        })
        .collect();
    Ok(Reply::Data(serde_json::to_value(QueueReply {
        source: loaded.origin.to_string(),
        ready: queue.ready().len(),
        not_ready: queue.not_ready().len(),
        tasks,
    })?))
}
