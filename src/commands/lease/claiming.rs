//! Claiming the best ready task, round after round while other agents win the races: the
//! use case `claim`, the MCP server and `gitprio run` share.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::anyhow;
use gitprio_core::TaskId;
use gitprio_core::git::Repository;
use gitprio_core::lease::{
    self as core_lease, ClaimFilter, ClaimOutcome, Lease, LeaseContext, LeaseError, LeaseEvent,
    LeaseStore, StoreError,
};
use gitprio_core::queue::{Blocker, Queue};
use gitprio_core::source::{self, LoadedQueue, QueueSource};
use gitprio_core::usage::{Ledger, Outcome, RunMeta};

use crate::output;
use crate::settings::Settings;

use super::holds_of;

/// How many fresh views of the leases one claim takes before it gives up: a view ends at
/// its first lost race.
const MAX_CLAIM_ROUNDS: u32 = 12;

/// What a claim came to, for a front end (the CLI, the MCP server) to show.
#[derive(Debug)]
pub enum ClaimResult {
    Claimed(Box<ClaimedTask>),
    /// No task was handed out: a stable reason code and a sentence.
    NothingReady {
        reason: &'static str,
        message: String,
    },
}

/// A claimed task with its body read and its context bundle assembled.
#[derive(Debug)]
pub struct ClaimedTask {
    pub task: gitprio_core::Task,
    pub lease: Lease,
    /// Compare-and-swaps pushed over all rounds, the winning one included.
    pub tries: u32,
    /// Where the queue was read.
    pub origin: source::Origin,
    /// The context bundle, or why it could not be assembled: the lease is held either way.
    pub bundle: anyhow::Result<gitprio_core::context::Bundle>,
}

/// Claims the best ready task that passes `filter`, taking fresh views of the leases while
/// other agents win the races; warnings go to stderr.
pub fn claim_next(
    settings: &Settings,
    repo: &Repository,
    store: &LeaseStore<'_>,
    context: &LeaseContext,
    filter: &ClaimFilter,
) -> anyhow::Result<ClaimResult> {
    claim_next_avoiding(settings, repo, store, context, filter, false)
}

/// Claims like [`claim_next`]; with `avoid_overlap`, passes over the tasks whose `owns`
/// overlap the `owns` of a task under a live lease.
pub fn claim_next_avoiding(
    settings: &Settings,
    repo: &Repository,
    store: &LeaseStore<'_>,
    context: &LeaseContext,
    filter: &ClaimFilter,
    avoid_overlap: bool,
) -> anyhow::Result<ClaimResult> {
    let mut lost = 0;
    let mut round = 0;
    let mut on_current_view = may_claim_without_refresh(store, context);
    let _unpin = Unpin(store);
    let (outcome, loaded, queue, leases, avoided) = loop {
        round += 1;
        if !(on_current_view && store.pin_queue_branch()) {
            on_current_view = false;
            store.refresh()?;
        }
        let queue_source = store
            .queue_ref()
            .map_or(QueueSource::Default, QueueSource::Rev);
        let loaded = crate::commands::load_tasks(settings, repo, &queue_source)
            .map_err(|error| error.error)?;
        let (leases, bad) = store.leases()?;
        let holds = holds_of(settings, &leases, &bad, &loaded.config);
        let queue = Queue::build(loaded.tasks.clone(), &holds);
        let context = LeaseContext {
            max_attempts: loaded.config.max_attempts.max(1),
            ..context.clone()
        };
        if on_current_view && core_lease::active_agents(&leases, &context) > 1 {
            // Others are claiming: a view without a refresh would mostly lose.
            on_current_view = false;
            round -= 1;
            continue;
        }
        let avoided = if avoid_overlap {
            core_lease::overlapping_ready(&queue, &leases, context.now, context.skew)
        } else {
            BTreeSet::new()
        };
        match core_lease::claim_avoiding(
            store,
            &queue,
            &leases,
            loaded.commit,
            &context,
            filter,
            &avoided,
            lost,
        ) {
            Err(LeaseError::Store(StoreError::StaleView { .. })) => {
                on_current_view = false;
                lost += 1;
            }
            // Nothing ready on a view that may be old: only a refreshed one may say so.
            Ok(ClaimOutcome::NothingReady { .. }) if on_current_view => {
                on_current_view = false;
                round -= 1;
            }
            Err(LeaseError::Contention { tries }) if round < MAX_CLAIM_ROUNDS => {
                // Every candidate of this view was taken meanwhile: look again, a little later.
                lost += tries;
                std::thread::sleep(std::time::Duration::from_millis(10 * u64::from(round)));
            }
            Err(LeaseError::Contention { tries }) => {
                return Err(LeaseError::Contention {
                    tries: lost + tries,
                }
                .into());
            }
            outcome => break (outcome?, loaded, queue, leases, avoided),
        }
    };
    store.unpin_queue_branch();
    match outcome {
        ClaimOutcome::Claimed(mut claimed) => {
            claimed.tries += lost;
            hand_over(settings, repo, store, context, *claimed, &leases, loaded)
                .map(|claimed| ClaimResult::Claimed(Box::new(claimed)))
        }
        ClaimOutcome::NothingReady { held } => {
            let (reason, message) = why_nothing_ready(&queue, held, &avoided);
            Ok(ClaimResult::NothingReady { reason, message })
        }
    }
}

/// Whether a claim may first try on the view of the remote this clone already has,
/// without a refresh: its mirrors were refreshed within one lease TTL (by this machine's
/// clock), so the remote is known and the view is recent. The try itself is then one
/// push, pinned to the queue branch this clone knows ([`LeaseStore::pin_queue_branch`]),
/// so it lands only where that view still holds; when it does not, or when the view
/// shows other agents at work, the claim refreshes as always. An agent claiming alone
/// thus pays one push per claim, and nothing more, on any transport.
///
/// Never after a claim of this holder was killed around its swap: handing that lease back
/// takes no push, so only a refreshed view may say the lease is still its own.
fn may_claim_without_refresh(store: &LeaseStore<'_>, context: &LeaseContext) -> bool {
    if core_lease::has_unsettled_claim(store, &context.holder) {
        return false;
    }
    let ttl = std::time::Duration::from_secs(u64::try_from(context.ttl.as_secs()).unwrap_or(0));
    store
        .last_refreshed()
        .and_then(|refreshed| refreshed.elapsed().ok())
        .is_some_and(|age| age < ttl)
}

/// Unpins the queue branch when the claim ends, however it ends: the store's later
/// pushes (a `gitprio run`'s heartbeats) must not depend on the branch.
struct Unpin<'store, 'repo>(&'store LeaseStore<'repo>);

impl Drop for Unpin<'_, '_> {
    fn drop(&mut self) {
        self.0.unpin_queue_branch();
    }
}

/// Finishes a claim for the agent: warns about candidates passed over, records the end of
/// the run a reclaim took over, reads the task's body and assembles its context bundle.
fn hand_over(
    settings: &Settings,
    repo: &Repository,
    store: &LeaseStore<'_>,
    context: &LeaseContext,
    claimed: core_lease::Claimed,
    leases: &BTreeMap<TaskId, Lease>,
    loaded: LoadedQueue,
) -> anyhow::Result<ClaimedTask> {
    for skipped in &claimed.skipped {
        output::message(settings, "warning", skipped);
    }
    if claimed.lease.record.event == LeaseEvent::Reclaim
        && let Some(previous) = leases.get(&claimed.task.id)
    {
        // The run before this one ended when its holder stopped renewing.
        let meta = RunMeta {
            outcome: Some(Outcome::Expired),
            ended_at: Some(previous.record.expires_at),
            ..crate::commands::usage::run_meta(
                &previous.record,
                Some(&claimed.task),
                &loaded.config,
                None,
            )
        };
        if let Err(error) = Ledger::new(store).write(&meta, &[], settings.now) {
            output::message(
                settings,
                "warning",
                &format!("the expired run was not recorded in the usage ledger: {error:#}"),
            );
        }
    }
    let mut task = claimed.task;
    if task.body.is_empty() {
        task.body = crate::commands::show::read_body(repo, loaded.commit, &task.path)?;
    }
    // The lease is taken by now: a bundle that cannot be assembled must not lose it.
    let bundle = loaded
        .commit
        .ok_or_else(|| anyhow!("the queue was not read from a commit"))
        .and_then(|commit| {
            crate::commands::context::assemble(repo, commit, &loaded.config, &task, None, None)
        });
    match &bundle {
        Ok(bundle) => {
            crate::commands::context::warn_about(settings, bundle);
            // The bundle's size goes to the usage ledger with the run (bloat shows in reports).
            let _ = core_lease::note_context_size(
                repo.common_dir(),
                &task.id,
                &context.holder,
                bundle.tokens,
            );
        }
        Err(error) => output::message(
            settings,
            "warning",
            &format!(
                "cannot assemble the context bundle: {error:#}; the lease is held, and `gitprio context {}` tries again",
                task.id
            ),
        ),
    }
    Ok(ClaimedTask {
        task,
        lease: claimed.lease,
        tries: claimed.tries,
        origin: loaded.origin,
        bundle,
    })
}

/// Says why a claim found nothing: `held` open tasks kept back by leases only, `avoided`
/// ready tasks passed over for overlapping a held one.
fn why_nothing_ready(
    queue: &Queue,
    held: usize,
    avoided: &BTreeSet<TaskId>,
) -> (&'static str, String) {
    if queue.ready().is_empty() {
        let open = queue
            .not_ready()
            .iter()
            .filter(|entry| entry.task.status == gitprio_core::Status::Open)
            .count();
        if held > 0 && open == held {
            all_held_back(queue)
        } else {
            crate::commands::nothing_ready_reason(queue)
        }
    } else if !avoided.is_empty() {
        (
            "overlap",
            format!(
                "nothing ready apart from {} tasks whose `owns` overlap a held task's; they wait until it is done or released",
                avoided.len()
            ),
        )
    } else {
        (
            "no_match",
            format!(
                "nothing ready for this filter: {} ready tasks, none of this type, feature or tier",
                queue.ready().len()
            ),
        )
    }
}

/// Describes why nothing is ready when leases keep back every open task: held by
/// agents, submitted, or parked.
fn all_held_back(queue: &Queue) -> (&'static str, String) {
    let (mut held, mut submitted, mut parked) = (0, 0, 0);
    for entry in queue.not_ready() {
        for blocker in entry.readiness.blockers() {
            match blocker {
                Blocker::Leased { .. } => held += 1,
                Blocker::Submitted { .. } => submitted += 1,
                Blocker::Parked { .. } => parked += 1,
                _ => {}
            }
        }
    }
    if submitted == 0 && parked == 0 {
        return (
            "all_held",
            format!(
                "nothing ready: all {held} open tasks are held by agents; see `gitprio status`"
            ),
        );
    }
    let parts: Vec<String> = [
        (held, "held by an agent"),
        (submitted, "submitted (its change has not landed yet)"),
        (parked, "parked (until `gitprio unpark <id>`)"),
    ]
    .into_iter()
    .filter(|(count, _)| *count > 0)
    .map(|(count, what)| format!("{count} {what}"))
    .collect();
    (
        "all_held_back",
        format!(
            "nothing ready: all {} open tasks are held back by their leases: {}; see `gitprio list`",
            held + submitted + parked,
            parts.join(", ")
        ),
    )
}
