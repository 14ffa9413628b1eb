//! Claiming the best ready task, round after round while other agents win the races, with
//! the parking of expired leases, the hand-back of a lease a killed claim landed (before
//! or after it noted it here), and why nothing is ready when nothing is.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gix::ObjectId;
use jiff::Timestamp;

use crate::context::{self, Bundle, CommitFiles, ReportCommand};
use crate::lease::spread::{self, Crowd};
use crate::lease::{
    self, ClaimFilter, ClaimOutcome, HeldLease, Holder, Lease, LeaseContext, LeaseError,
    LeaseEvent, LeaseState, LeaseStore, StoreError,
};
use crate::queue::{Blocker, Queue};
use crate::source::{LoadedQueue, Origin};
use crate::task::{Status, Task, TaskId};
use crate::usage::{Ledger, Outcome, RunMeta};

use super::queue::{NothingReady, holds_of, nothing_ready_in, read_body};
use super::{Workspace, WorkspaceError, load_tasks, run_meta};

/// What a claim asks for.
#[derive(Clone, Debug, Default)]
pub struct ClaimRequest {
    /// How long the lease lives without a heartbeat (default: the config's `lease_ttl`).
    pub ttl: Option<String>,
    /// Which ready tasks may be taken.
    pub filter: ClaimFilter,
    /// Pass over tasks whose `owns` overlap the `owns` of a task under a live lease.
    pub avoid_overlap: bool,
}

/// What a claim came to.
#[derive(Debug)]
pub enum Claim {
    Claimed(Box<ClaimedTask>),
    /// No task was handed out: a stable reason code and a sentence.
    NothingReady(NothingReady),
}

/// A claimed task with its body read and its context bundle assembled.
#[derive(Debug)]
pub struct ClaimedTask {
    pub task: Task,
    pub lease: Lease,
    /// Compare-and-swaps pushed over all rounds, the winning one included.
    pub tries: u32,
    /// Where the queue was read.
    pub origin: Origin,
    /// The context bundle, or why it could not be assembled: the lease is held either way.
    pub bundle: Result<Bundle, WorkspaceError>,
    /// Kept until the front end has handed the claim over ([`ClaimedTask::replied`]).
    due: Option<ReplyDue>,
}

impl ClaimedTask {
    /// Says that the claim reached its agent (printed, sent): a claim killed before this is
    /// handed back to the next claim of its holder here (see [`ReplyDue`]).
    pub fn replied(&mut self) {
        if let Some(due) = self.due.take() {
            due.replied();
        }
    }
}

/// The round that settled a claim, and the view it was settled on.
struct Settled {
    outcome: ClaimOutcome,
    loaded: LoadedQueue,
    queue: Queue,
    leases: BTreeMap<TaskId, Lease>,
    avoided: BTreeSet<TaskId>,
    lost: u32,
}

impl Workspace<'_> {
    /// Claims the best ready task that `request` admits, taking fresh views of the leases
    /// while other agents win the races; passed-over candidates are warnings.
    ///
    /// The claimed task must be handed over, then [`ClaimedTask::replied`] called.
    pub fn claim(&self, request: &ClaimRequest) -> Result<Claim, WorkspaceError> {
        let context = self.lease_context(request.ttl.as_deref())?;
        let (due, unreplied) = ReplyDue::begin(self.repo.common_dir(), &context.holder)?;
        let settled = {
            let _unpin = Unpin(&self.store);
            self.settle_claim(&context, request, &unreplied)?
        };
        match settled.outcome {
            ClaimOutcome::Claimed(mut claimed) => {
                claimed.tries += settled.lost;
                let mut handed =
                    self.hand_over(&context, *claimed, &settled.leases, settled.loaded)?;
                if context.failpoint.as_deref() == Some("claim:before-reply") {
                    std::process::abort();
                }
                handed.due = Some(due);
                Ok(Claim::Claimed(Box::new(handed)))
            }
            ClaimOutcome::NothingReady { held } => {
                due.replied();
                Ok(Claim::NothingReady(why_nothing_ready(
                    &settled.queue,
                    held,
                    &settled.avoided,
                    &request.filter.skip,
                )))
            }
        }
    }

    /// Returns the lease on one of `unreplied` (leases a killed claim of this holder took
    /// here, see [`ReplyDue`]) that is still that claim's, live, as claimed again; saying so.
    fn take_back_unreplied(
        &self,
        unreplied: &[HeldLease],
        queue: &Queue,
        leases: &BTreeMap<TaskId, Lease>,
        context: &LeaseContext,
    ) -> Option<lease::Claimed> {
        unreplied.iter().find_map(|held| {
            let lease = leases.get(&held.task).filter(|lease| {
                lease.oid == held.oid.as_str()
                    && lease.record.state == LeaseState::Held
                    && lease.record.holder.agent == context.holder.agent
                    && lease.record.holder.worktree == context.holder.worktree
                    && context.now < lease.record.expires_at
            })?;
            let (_, entry) = queue.find(held.task.as_str())?;
            self.notices.warning(&format!(
                "{}: a claim by {} here was killed after it took this lease (generation {}), before it said so: it is yours again",
                held.task, context.holder.agent, lease.record.generation
            ));
            Some(lease::Claimed {
                task: entry.task.clone(),
                lease: lease.clone(),
                tries: 0,
                skipped: Vec::new(),
            })
        })
    }

    /// Tries claims on views of the leases until one settles: a claim, or nothing ready on
    /// a view that is fresh.
    ///
    /// After a lost race the claim waits a random time, scaled by how long the lost round
    /// took ([`spread::backoff`]), and counts the claims that landed meanwhile
    /// ([`spread::claims_landed`]): racers that lost together look again one after
    /// another, and the later ones, seeing more winners, spread wider. It gives up after
    /// [`spread::MAX_CLAIM_VIEWS`] views or [`spread::CLAIM_BUDGET`] ([`spread::next_look`]).
    ///
    /// A lease a killed claim of this holder took (`unreplied`) is taken back first, on a
    /// refreshed view.
    fn settle_claim(
        &self,
        context: &LeaseContext,
        request: &ClaimRequest,
        unreplied: &[HeldLease],
    ) -> Result<Settled, WorkspaceError> {
        let store = &self.store;
        let began = Instant::now();
        let mut parked = Vec::new();
        let mut lost = 0;
        let mut watch = CrowdWatch::new(context);
        let mut round = 0;
        let mut next = if unreplied.is_empty() && may_claim_without_refresh(store, context) {
            View::AsIs
        } else {
            View::Refreshed
        };
        loop {
            round += 1;
            let view = self.take_view(next, round)?;
            let loaded = load_tasks(self.repo, &self.queue_source(), self.notices)?;
            let (leases, bad) = store.leases()?;
            watch.saw(&leases, lost);
            let holds = holds_of(&leases, &bad, context.now, context.skew, self.notices);
            let queue = Queue::build(loaded.tasks.clone(), &holds);
            let context = LeaseContext {
                max_attempts: loaded.config.max_attempts.max(1),
                ..context.clone()
            };
            if view == View::AsIs && lease::active_agents(&leases, &context) > 1 {
                // Others are claiming: a view without a refresh would mostly lose.
                next = View::Leases;
                round -= 1;
                continue;
            }
            let avoided = if request.avoid_overlap {
                lease::overlapping_ready(&queue, &leases, context.now, context.skew)
            } else {
                BTreeSet::new()
            };
            let outcome = match self.take_back_unreplied(unreplied, &queue, &leases, &context) {
                Some(claimed) => Ok(ClaimOutcome::Claimed(Box::new(claimed))),
                None => lease::claim_avoiding(
                    store,
                    &queue,
                    &leases,
                    loaded.commit,
                    &context,
                    &request.filter,
                    &avoided,
                    watch.crowd,
                    &mut parked,
                ),
            };
            for ended in parked.drain(..) {
                self.record_expired_run(&ended.lease, &ended.task, &loaded);
            }
            let lost_before = lost;
            let give_up = |lost: u32| LeaseError::GaveUp {
                tries: lost,
                views: round,
                spent: began.elapsed(),
            };
            match outcome {
                Err(LeaseError::Store(StoreError::StaleView { branch_moved, .. })) => {
                    lost += 1;
                    if spread::next_look(round, began.elapsed(), std::time::Duration::ZERO)
                        .is_none()
                    {
                        return Err(give_up(lost).into());
                    }
                    next = if branch_moved {
                        View::Refreshed
                    } else {
                        View::Leases
                    };
                }
                // Nothing ready on a view that may be old: only a refreshed one may say so.
                Ok(ClaimOutcome::NothingReady { .. }) if view != View::Refreshed => {
                    next = View::Refreshed;
                    round -= 1;
                }
                Err(LeaseError::Contention { tries }) => {
                    // Every candidate of this view was taken meanwhile: look again, later.
                    lost += tries;
                    let Some(wait) = spread::next_look(round, began.elapsed(), watch.backoff(lost))
                    else {
                        return Err(give_up(lost).into());
                    };
                    next = View::Leases;
                    std::thread::sleep(wait);
                }
                outcome => {
                    return Ok(Settled {
                        outcome: outcome?,
                        loaded,
                        queue,
                        leases,
                        avoided,
                        lost,
                    });
                }
            }
            if lost > lost_before {
                watch.lost_on(&leases);
            }
            watch.round_began = Instant::now();
        }
    }

    /// Takes the view of the remote `next` asks for, in the claim's `round`; returns
    /// the view it took.
    fn take_view(&self, next: View, round: u32) -> Result<View, WorkspaceError> {
        let store = &self.store;
        Ok(match next {
            View::AsIs if store.pin_queue_branch() => View::AsIs,
            View::Leases => {
                store.refresh_leases()?;
                if store.pin_queue_branch() {
                    View::Leases
                } else {
                    store.refresh_expecting_changes()?;
                    View::Refreshed
                }
            }
            // After a first view, the remote has moved on: fetch without asking first.
            _ if round > 1 => {
                store.refresh_expecting_changes()?;
                View::Refreshed
            }
            _ => {
                store.refresh()?;
                View::Refreshed
            }
        })
    }

    /// Finishes a claim for the agent: warns about candidates passed over, records the end
    /// of the run a reclaim took over, reads the task's body and assembles its bundle.
    fn hand_over(
        &self,
        context: &LeaseContext,
        claimed: lease::Claimed,
        leases: &BTreeMap<TaskId, Lease>,
        loaded: LoadedQueue,
    ) -> Result<ClaimedTask, WorkspaceError> {
        for skipped in &claimed.skipped {
            self.notices.warning(skipped);
        }
        self.warn_of_other_holds(&claimed.task.id, &claimed.lease.record.holder.agent, leases);
        // A lease taken back from a killed claim is the view's own: its reclaim recorded
        // the run before it, if it got that far.
        if claimed.lease.record.event == LeaseEvent::Reclaim
            && let Some(previous) = leases.get(&claimed.task.id)
            && previous.oid != claimed.lease.oid
        {
            self.record_expired_run(previous, &claimed.task, &loaded);
        }
        let mut task = claimed.task;
        if task.body.is_empty() {
            task.body = read_body(self.repo, loaded.commit, &task.path)?;
        }
        // The lease is taken by now: a bundle that cannot be assembled must not lose it.
        let bundle = loaded
            .commit
            .ok_or(WorkspaceError::NoQueueCommit)
            .and_then(|commit| {
                let files = CommitFiles::new(self.repo, commit);
                let options = context::Options::from_config(&loaded.config);
                Ok(context::build(&files, &loaded.config, &task, options)?)
            });
        match &bundle {
            Ok(bundle) => {
                for note in &bundle.notes {
                    self.notices.warning(&note.to_string());
                }
                // The bundle's size goes to the usage ledger with the run (bloat shows in reports).
                let _ = lease::note_context_size(
                    self.repo.common_dir(),
                    &task.id,
                    &context.holder,
                    bundle.tokens,
                );
            }
            Err(error) => self.notices.warning(&format!(
                "cannot assemble the context bundle: {}; the lease is held, and `gitprio context {}` tries again",
                error_chain(error),
                task.id
            )),
        }
        Ok(ClaimedTask {
            task,
            lease: claimed.lease,
            tries: claimed.tries,
            origin: loaded.origin,
            bundle,
            due: None,
        })
    }

    /// Warns when `agent` still holds, live in this worktree, a lease on a task other than
    /// `claimed` (as `leases` show them): a loop restarted after a crash claims a second
    /// task while the first stays held until it expires, and the commands that name no
    /// task stop knowing which one they are about.
    fn warn_of_other_holds(&self, claimed: &TaskId, agent: &str, leases: &BTreeMap<TaskId, Lease>) {
        let here = self.repo.workdir().map(|path| path.display().to_string());
        let now = self.invocation.now;
        for held in lease::HeldLease::all(self.repo.common_dir()) {
            if held.task == *claimed
                || held.agent != agent
                || held.worktree != here
                || held.state != lease::LeaseState::Held
                || held.lost
            {
                continue;
            }
            let Some(record) = leases.get(&held.task).map(|lease| &lease.record) else {
                continue;
            };
            if record.generation == held.generation
                && record.holder.agent == agent
                && super::in_flight(record, now, self.skew())
            {
                self.notices.warning(&format!(
                    "{agent} also holds {} in this worktree (generation {}, until {}); `heartbeat`, `done` and `release` now need the task id: `gitprio release {}` gives it back if that attempt is over",
                    held.task, held.generation, record.expires_at, held.task
                ));
            }
        }
    }

    /// Records in the usage ledger that the run of the expired lease `previous`, which a
    /// reclaim took over or a claim parked, ended when its holder stopped renewing; a
    /// failure is a warning, since the claim stands.
    fn record_expired_run(&self, previous: &Lease, task: &Task, loaded: &LoadedQueue) {
        let meta = RunMeta {
            outcome: Some(Outcome::Expired),
            ended_at: Some(previous.record.expires_at),
            ..run_meta(&previous.record, Some(task), &loaded.config, None)
        };
        if let Err(error) = Ledger::new(&self.store).write(&meta, &[], self.invocation.now) {
            self.notices.warning(&format!(
                "the expired run was not recorded in the usage ledger: {}",
                error_chain(&error)
            ));
        }
    }
}

/// What a claim keeps from before it takes a lease until its reply reached its agent, so
/// that a claim killed in between (after its lease landed and was noted here, before it
/// said which) does not leave that lease held by nobody until it expires.
///
/// One lock per holder (agent and worktree), `gitprio/claims/<holder key>.lock`, which a
/// claim holds for its whole life: claims of one holder in this clone take turns, so a
/// live claim's lease is never mistaken for a dead one's. Beside it,
/// `<holder key>.json` lists the leases the holder held here when the claim began
/// (`HeldLease` notes); it is removed once the reply is out. A claim that finds it left
/// behind knows its predecessor died: a lease noted here since, for this holder, is the
/// one that claim took, handed back at once when the remote still holds it so.
#[derive(Debug)]
pub struct ReplyDue {
    record: PathBuf,
    _lock: File,
}

/// The leases a claim's holder held here when it began.
#[derive(serde::Serialize, serde::Deserialize)]
struct HeldBefore {
    held: Vec<(TaskId, u64)>,
}

impl ReplyDue {
    /// How long a claim waits for another claim of its holder in this clone.
    const PATIENCE: Duration = Duration::from_secs(600);

    /// Takes `holder`'s claim lock in the clone at `git_dir`, waiting for another claim of
    /// its; returns it with the leases a killed claim of `holder` took here and never said.
    fn begin(
        git_dir: &Path,
        holder: &Holder,
    ) -> Result<(ReplyDue, Vec<HeldLease>), WorkspaceError> {
        let directory = git_dir.join("gitprio").join("claims");
        let key = lease::holder_key(holder.worktree.as_deref(), &holder.agent);
        let lock_path = directory.join(format!("{key}.lock"));
        let io = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| WorkspaceError::Io {
                action,
                path,
                source,
            }
        };
        std::fs::create_dir_all(&directory).map_err(io("create", &directory))?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("create", &lock_path))?;
        let deadline = Instant::now() + Self::PATIENCE;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(WorkspaceError::ClaimUnderWay { path: lock_path });
                }
                Err(TryLockError::Error(source)) => return Err(io("lock", &lock_path)(source)),
            }
        }
        let record = directory.join(format!("{key}.json"));
        let held: Vec<HeldLease> = HeldLease::all(git_dir)
            .into_iter()
            .filter(|held| held.agent == holder.agent && held.worktree == holder.worktree)
            .collect();
        let before = std::fs::read(&record)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<HeldBefore>(&bytes).ok());
        let (unreplied, known): (Vec<HeldLease>, Vec<HeldLease>) =
            held.into_iter().partition(|held| {
                before.as_ref().is_some_and(|before| {
                    held.state == LeaseState::Held
                        && !held.lost
                        && !before.held.iter().any(|(task, generation)| {
                            *task == held.task && *generation == held.generation
                        })
                })
            });
        // What was not said yet stays out of the list, should this claim die too.
        let now = HeldBefore {
            held: known
                .into_iter()
                .map(|held| (held.task, held.generation))
                .collect(),
        };
        let temporary = record.with_extension(format!("tmp.{}", std::process::id()));
        let bytes = serde_json::to_vec(&now).expect("a list of leases serializes");
        std::fs::write(&temporary, bytes).map_err(io("write", &temporary))?;
        std::fs::rename(&temporary, &record).map_err(io("write", &record))?;
        Ok((
            ReplyDue {
                record,
                _lock: lock,
            },
            unreplied,
        ))
    }

    /// The reply is out: nothing is left to hand back (the lock goes with `self`).
    fn replied(self) {
        let _ = std::fs::remove_file(&self.record);
    }
}

/// Writes an error with its causes, `: `-separated, as anyhow's `{:#}` does.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
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
    if lease::has_unsettled_claim(store, &context.holder) {
        return false;
    }
    let ttl = std::time::Duration::from_secs(u64::try_from(context.ttl.as_secs()).unwrap_or(0));
    store
        .last_refreshed()
        .and_then(|refreshed| refreshed.elapsed().ok())
        .is_some_and(|age| age < ttl)
}

/// What a claim keeps across its views to size the crowd of agents racing it.
struct CrowdWatch {
    crowd: Crowd,
    agent: String,
    /// Claims made before this (the claim's start, less the clock skew allowed) raced nobody now.
    since: Timestamp,
    /// The leases (oid and generation) of the view the claim last lost a race on.
    losing_view: Option<BTreeMap<TaskId, (ObjectId, u64)>>,
    round_began: Instant,
}

impl CrowdWatch {
    fn new(context: &LeaseContext) -> CrowdWatch {
        CrowdWatch {
            crowd: Crowd::default(),
            agent: context.holder.agent.clone(),
            since: context
                .now
                .saturating_sub(context.skew)
                .unwrap_or(context.now),
            losing_view: None,
            round_began: Instant::now(),
        }
    }

    /// Counts the claims that `leases`, a view taken after `lost` races in all, shows
    /// landed since the view the claim last lost on.
    fn saw(&mut self, leases: &BTreeMap<TaskId, Lease>, lost: u32) {
        if let Some(before) = self.losing_view.take() {
            let landed = spread::claims_landed(&before, leases, &self.agent, self.since);
            self.crowd = self
                .crowd
                .after_view(lost.saturating_sub(self.crowd.lost_races), landed);
        }
    }

    /// Remembers the view `leases` the claim just lost a race on.
    fn lost_on(&mut self, leases: &BTreeMap<TaskId, Lease>) {
        self.losing_view = Some(
            leases
                .iter()
                .map(|(task, lease)| (task.clone(), (lease.oid, lease.record.generation)))
                .collect(),
        );
    }

    /// How long to wait after the round that made `lost` races lost in all.
    fn backoff(&self, lost: u32) -> std::time::Duration {
        spread::backoff(lost, self.round_began.elapsed(), lease::random_u64())
    }
}

/// How fresh the view of the remote a claim chooses on is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum View {
    /// The mirrors as they are, without a refresh; the push is pinned to the branch tip they show.
    AsIs,
    /// The leases just fetched, the branch as last fetched; the push is pinned to that tip.
    Leases,
    /// The branch and the leases just refreshed (or a remote that is not pinned).
    Refreshed,
}

/// Unpins the queue branch when the claim ends, however it ends: the store's later
/// pushes (a `gitprio run`'s heartbeats) must not depend on the branch.
struct Unpin<'store, 'repo>(&'store LeaseStore<'repo>);

impl Drop for Unpin<'_, '_> {
    fn drop(&mut self) {
        self.0.unpin_queue_branch();
    }
}

/// Says why a claim found nothing: `held` open tasks kept back by leases only, `avoided`
/// ready tasks passed over for overlapping a held one, `skipped` ones for being named by
/// `--skip`.
fn why_nothing_ready(
    queue: &Queue,
    held: usize,
    avoided: &BTreeSet<TaskId>,
    skipped: &BTreeSet<TaskId>,
) -> NothingReady {
    if queue.ready().is_empty() {
        let open = queue
            .not_ready()
            .iter()
            .filter(|entry| entry.task.status == Status::Open)
            .count();
        if held > 0 && open == held {
            all_held_back(queue)
        } else {
            nothing_ready_in(queue)
        }
    } else if queue
        .ready()
        .iter()
        .all(|entry| skipped.contains(&entry.task.id))
    {
        NothingReady {
            reason: "skipped",
            message: format!(
                "nothing ready apart from {} tasks passed over with --skip",
                queue.ready().len()
            ),
        }
    } else if !avoided.is_empty() {
        NothingReady {
            reason: "overlap",
            message: format!(
                "nothing ready apart from {} tasks whose `owns` overlap a held task's; they wait until it is done or released",
                avoided.len()
            ),
        }
    } else {
        NothingReady {
            reason: "no_match",
            message: format!(
                "nothing ready for this filter: {} ready tasks, none of this type, feature or tier",
                queue.ready().len()
            ),
        }
    }
}

/// Describes why nothing is ready when leases keep back every open task: held by
/// agents, submitted, or parked.
fn all_held_back(queue: &Queue) -> NothingReady {
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
        return NothingReady {
            reason: "all_held",
            message: format!("nothing ready: all {held} open tasks are held by agents"),
        };
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
    NothingReady {
        reason: "all_held_back",
        message: format!(
            "nothing ready: all {} open tasks are held back by their leases: {}",
            held + submitted + parked,
            parts.join(", ")
        ),
    }
}

/// Returns the commands the holder of the lease on `id` reports with; `--local` when the
/// lease is local.
pub fn report_commands(id: &TaskId, local: bool) -> Vec<ReportCommand> {
    let local = if local { " --local" } else { "" };
    vec![
        ReportCommand {
            command: format!("gitprio heartbeat {id}{local}"),
            purpose: "renew the lease while you work, well before it expires; exit 4 means the lease was lost: stop".to_owned(),
        },
        ReportCommand {
            command: format!("gitprio done {id}{local}"),
            purpose: "when the acceptance commands pass: records the submission and sets `status: done` in the task file; commit it with your change".to_owned(),
        },
        ReportCommand {
            command: format!("gitprio release {id}{local} --failed --reason \"<why>\""),
            purpose: "give the task back as a failed attempt when you cannot finish it".to_owned(),
        },
    ]
}
