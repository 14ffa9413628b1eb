//! The lease life cycle: claim, heartbeat, release, submit, unpark and gc, each one compare-and-swap.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};

use gix::ObjectId;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::store::{CasOutcome, LeaseStore, Mode, StoreError};
use super::{Holder, Lease, LeaseEvent, LeaseRecord, LeaseState, Progress, RecordError};
use crate::hint::Hint;
use crate::queue::Queue;
use crate::task::{Status, Task, TaskId};

/// How many compare-and-swaps (claims, and parks of expired leases) one claim may push on
/// one view of the leases; a lost race ends the view at once (the caller refreshes and
/// calls [`claim`] again).
pub const MAX_CLAIM_TRIES: u32 = 3;

/// Everything a lease operation needs to know that is not in the repository.
#[derive(Clone, Debug)]
pub struct LeaseContext {
    /// The current time (injected, so tests and skewed clocks can be simulated).
    pub now: Timestamp,
    pub ttl: SignedDuration,
    /// How far another machine's clock may be ahead: expiry waits this much longer.
    pub skew: SignedDuration,
    pub max_attempts: u32,
    pub holder: Holder,
    /// Crash injection for tests: `operation:point` (`claim:after-cas`) aborts the process there.
    pub failpoint: Option<String>,
}

impl LeaseContext {
    /// Aborts the process, as `kill -9` would, when the failpoint `operation:point` is armed.
    fn failpoint(&self, operation: &str, point: &str) {
        if let Some(armed) = &self.failpoint
            && armed.split_once(':') == Some((operation, point))
        {
            std::process::abort();
        }
    }

    fn expires_at(&self) -> Timestamp {
        self.now.saturating_add(self.ttl).unwrap_or(self.now)
    }

    fn ttl_seconds(&self) -> u64 {
        u64::try_from(self.ttl.as_secs()).unwrap_or(0)
    }
}

/// Which ready tasks a claim may take.
#[derive(Clone, Debug, Default)]
pub struct ClaimFilter {
    pub task_type: Option<String>,
    pub feature: Option<String>,
    /// The agent's model tier: only tasks whose `model` names it (or that name none).
    pub tier: Option<String>,
    /// Tasks to pass over: `gitprio run` skips those it lost a lease on.
    pub skip: BTreeSet<TaskId>,
}

impl ClaimFilter {
    fn admits(&self, task: &Task) -> bool {
        !self.skip.contains(&task.id)
            && self
                .task_type
                .as_ref()
                .is_none_or(|wanted| task.task_type.as_ref() == Some(wanted))
            && self
                .feature
                .as_ref()
                .is_none_or(|wanted| task.feature.as_ref() == Some(wanted))
            && self
                .tier
                .as_ref()
                .is_none_or(|wanted| task.model.as_ref().is_none_or(|model| model == wanted))
    }
}

/// A successful claim.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub task: Task,
    pub lease: Lease,
    /// Compare-and-swaps pushed, the winning one included.
    pub tries: u32,
    /// Candidates passed over, and why (a stale lock, a park that failed): for warnings.
    pub skipped: Vec<String>,
}

/// An expired lease a claim parked instead of taking (the failures reached
/// `max_attempts`): the attempt it ended, for the usage ledger to record.
#[derive(Clone, Debug)]
pub struct ParkedExpired {
    pub task: Task,
    /// The lease as it was before the park: the lost attempt's holder, generation and expiry.
    pub lease: Lease,
}

/// What a claim came to.
#[derive(Clone, Debug)]
pub enum ClaimOutcome {
    Claimed(Box<Claimed>),
    /// No ready task passes the filter; `held` counts open tasks only leases keep back.
    NothingReady {
        held: usize,
    },
}

/// Why a lease operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Its way out is [`Hint::ClaimFirstOrSeeHolders`], worded by each front end.
    #[error("this worktree holds no lease on `{id}`")]
    NotHeld { id: TaskId },
    #[error("lease lost on `{id}`: {detail}; stop working on it")]
    Lost { id: TaskId, detail: String },
    /// The lease was ended already (submitted, released) by this holder's own command:
    /// another command must not undo that.
    #[error("`{id}` {detail}; nothing was changed")]
    Ended {
        id: TaskId,
        detail: String,
        hint: Hint,
    },
    /// The lease ref is gone: `gc` deleted it.
    #[error(
        "no lease on `{id}` any more{submitted}: `gitprio gc` deleted it, as it does once a task is done, dropped or gone from the queue's branch; nothing was recorded now"
    )]
    Gone { id: TaskId, submitted: String },
    /// Every candidate of one view was taken meanwhile: the claim looks again, or gives up
    /// ([`LeaseError::GaveUp`]).
    #[error(
        "gave up after losing {tries} races for the top tasks; other agents are claiming fast, try again"
    )]
    Contention { tries: u32 },
    /// The claim's views all lost their races, or its time ran out
    /// ([`super::spread::CLAIM_BUDGET`]).
    #[error(
        "gave up after losing {tries} races for the top tasks over {views} views in {}s (a claim tries for {}s at most); other agents are claiming fast, try again",
        spent.as_secs(),
        super::spread::CLAIM_BUDGET.as_secs()
    )]
    GaveUp {
        tries: u32,
        views: u32,
        spent: std::time::Duration,
    },
    /// The lease commit the holder works from holds no record this gitprio can parse:
    /// the lease is still held, so this is not [`LeaseError::NotHeld`].
    #[error(
        "cannot read lease commit {oid} of `{id}` (upgrade gitprio: a newer one may have written it)"
    )]
    Unreadable {
        id: TaskId,
        oid: ObjectId,
        #[source]
        source: RecordError,
    },
    #[error("no lease on `{id}`")]
    NoLease { id: TaskId },
    #[error("`{id}` is not parked: {}", state_phrase(*state))]
    NotParked { id: TaskId, state: LeaseState },
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What a clone remembers about a lease one of its worktrees holds, so later commands
/// need no arguments.
///
/// Kept in the common git directory, one file per task and holder (worktree and agent):
/// `held/<task>/<key>.json`. Worktrees of one clone, and the slots of one `gitprio run`,
/// each keep their own, so one holder's claim never overwrites what another holder of
/// an earlier generation remembers: that one's next heartbeat finds the lease moved on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeldLease {
    pub task: TaskId,
    pub reference: String,
    /// The lease commit this worktree wrote last: the value every next change expects.
    pub oid: String,
    pub state: LeaseState,
    pub generation: u64,
    pub agent: String,
    pub expires_at: Timestamp,
    /// `local`, or the remote's name.
    pub store: String,
    /// The estimated size of the context bundle handed over with the claim.
    #[serde(default)]
    pub context_tokens: Option<u64>,
    /// The worktree that claimed the lease: commands there need no task id.
    #[serde(default)]
    pub worktree: Option<String>,
    /// The lease moved on to another holder or state: kept so that the holder's next
    /// command about it still says "lease lost", but no longer what an id-less command
    /// in this worktree is about while it holds a live one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lost: bool,
}

impl HeldLease {
    fn directory(git_dir: &Path) -> PathBuf {
        git_dir.join("gitprio").join("held")
    }

    /// Where this holder's record of its lease on the task is kept.
    fn path(&self, git_dir: &Path) -> PathBuf {
        Self::directory(git_dir)
            .join(self.task.as_str())
            .join(format!(
                "{}.json",
                holder_key(self.worktree.as_deref(), &self.agent)
            ))
    }

    /// Where gitprio kept the record before it kept one per holder: `held/<task>.json`.
    fn legacy_path(git_dir: &Path, id: &TaskId) -> PathBuf {
        Self::directory(git_dir).join(format!("{id}.json"))
    }

    /// Reads what `caller` holds on `id`.
    ///
    /// The record must be of the caller's worktree (or, in the worktree `gitprio run`
    /// made for the task, on branch `gitprio/<id>`, of any worktree). Among several, the
    /// caller's agent picks its own; a caller whose name matches none (the default name
    /// carries the process id) gets the newest generation its worktree holds.
    pub fn load(
        git_dir: &Path,
        id: &TaskId,
        caller: &Holder,
    ) -> Result<Option<HeldLease>, LeaseError> {
        Ok(choose(Self::of_task(git_dir, id)?, id, caller))
    }

    /// Every record the clone's holders keep on `id`.
    fn of_task(git_dir: &Path, id: &TaskId) -> Result<Vec<HeldLease>, LeaseError> {
        Self::migrate(git_dir, id);
        let directory = Self::directory(git_dir).join(id.as_str());
        let entries = match std::fs::read_dir(&directory) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(LeaseError::Io {
                    action: "read",
                    path: directory,
                    source,
                });
            }
        };
        Ok(entries
            .filter_map(|entry| Self::read(&entry.ok()?.path()))
            .filter(|held| &held.task == id)
            .collect())
    }

    fn read(path: &Path) -> Option<HeldLease> {
        if path.extension().is_none_or(|extension| extension != "json") {
            return None;
        }
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    /// Moves a record of the older layout (`held/<id>.json`, one per task) to its holder's place.
    fn migrate(git_dir: &Path, id: &TaskId) {
        let legacy = Self::legacy_path(git_dir, id);
        let Some(held) = Self::read(&legacy).filter(|held| &held.task == id) else {
            return;
        };
        let path = held.path(git_dir);
        if Self::read(&path).is_some_and(|kept| kept.generation >= held.generation) {
            let _ = std::fs::remove_file(&legacy);
            return;
        }
        if let Some(directory) = path.parent() {
            let _ = std::fs::create_dir_all(directory);
        }
        // Another process may have moved it first; one that cannot be moved stays where an
        // older gitprio reads it.
        let _ = std::fs::rename(&legacy, &path);
    }

    /// Every lease the clone's worktrees hold, by task.
    pub fn all(git_dir: &Path) -> Vec<HeldLease> {
        let directory = Self::directory(git_dir);
        let Ok(entries) = std::fs::read_dir(&directory) else {
            return Vec::new();
        };
        let mut tasks: Vec<TaskId> = entries
            .filter_map(|entry| {
                let name = entry.ok()?.file_name();
                let name = name.to_str()?;
                TaskId::new(name.strip_suffix(".json").unwrap_or(name))
            })
            .collect();
        tasks.sort();
        tasks.dedup();
        let mut held: Vec<HeldLease> = tasks
            .iter()
            .filter_map(|id| Self::of_task(git_dir, id).ok())
            .flatten()
            .collect();
        held.sort_by(|left, right| {
            (&left.task, left.generation).cmp(&(&right.task, right.generation))
        });
        held
    }

    fn save(&self, git_dir: &Path) -> Result<(), LeaseError> {
        write_json(&self.path(git_dir), self)
    }

    fn forget(&self, git_dir: &Path) {
        remove_holder_file(&self.path(git_dir));
    }

    fn oid(&self) -> Result<ObjectId, LeaseError> {
        ObjectId::from_hex(self.oid.as_bytes()).map_err(|_| LeaseError::NotHeld {
            id: self.task.clone(),
        })
    }
}

/// Says what a lease in `state` means, for a message.
fn state_phrase(state: LeaseState) -> &'static str {
    match state {
        LeaseState::Held => "an agent holds it",
        LeaseState::Released => "it was given back, and any agent may claim it",
        LeaseState::Submitted => "its work was submitted",
        LeaseState::Parked => "it is parked",
    }
}

/// Names `state` in one lowercase word.
pub fn state_name(state: LeaseState) -> &'static str {
    match state {
        LeaseState::Held => "held",
        LeaseState::Released => "released",
        LeaseState::Submitted => "submitted",
        LeaseState::Parked => "parked",
    }
}

/// The operations that write a lease commit. Intents store them by [`Operation::name`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Operation {
    Claim,
    Heartbeat,
    Release,
    Submit,
}

impl Operation {
    /// Its name in intents and failpoints (`submit:after-cas`).
    fn name(self) -> &'static str {
        match self {
            Operation::Claim => "claim",
            Operation::Heartbeat => "heartbeat",
            Operation::Release => "release",
            Operation::Submit => "submit",
        }
    }

    /// The `gitprio` command that runs it.
    fn command(self) -> &'static str {
        match self {
            Operation::Submit => "done",
            other => other.name(),
        }
    }
}

/// The lease commit a holder is about to swap in, noted before the compare-and-swap.
///
/// A process killed after its swap landed, before it noted the outcome, leaves this
/// behind: the holder's next command finds the ref at exactly this commit and knows that
/// the change is its own (not merely its agent's or worktree's), so it finishes that
/// operation and nothing else. Kept in the common git directory, one file per task and
/// holder: `intents/<task>/<holder key>.json`; removed once the outcome is noted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Intent {
    task: TaskId,
    operation: Operation,
    /// The lease commit written for the swap.
    oid: String,
    agent: String,
    worktree: Option<String>,
}

impl Intent {
    fn directory(git_dir: &Path) -> PathBuf {
        git_dir.join("gitprio").join("intents")
    }

    fn path_of(git_dir: &Path, id: &TaskId, worktree: Option<&str>, agent: &str) -> PathBuf {
        Self::directory(git_dir)
            .join(id.as_str())
            .join(format!("{}.json", holder_key(worktree, agent)))
    }

    /// Notes that the holder (`worktree`, `agent`) is about to swap `oid` into the lease
    /// of `id` by `operation`.
    fn note(
        git_dir: &Path,
        id: &TaskId,
        (worktree, agent): (Option<&str>, &str),
        operation: Operation,
        oid: ObjectId,
    ) -> Result<(), LeaseError> {
        let intent = Intent {
            task: id.clone(),
            operation,
            oid: oid.to_string(),
            agent: agent.to_owned(),
            worktree: worktree.map(str::to_owned),
        };
        write_json(&Self::path_of(git_dir, id, worktree, agent), &intent)
    }

    /// Reads what the holder (`worktree`, `agent`) noted last about `id`, if a command of
    /// its died after noting it.
    fn load(
        git_dir: &Path,
        id: &TaskId,
        (worktree, agent): (Option<&str>, &str),
    ) -> Option<Intent> {
        let bytes = std::fs::read(Self::path_of(git_dir, id, worktree, agent)).ok()?;
        serde_json::from_slice::<Intent>(&bytes)
            .ok()
            .filter(|intent| &intent.task == id)
    }

    /// Every claim `holder` noted and never settled, oldest task first.
    fn claims_of(git_dir: &Path, holder: &Holder) -> Vec<Intent> {
        let Ok(entries) = std::fs::read_dir(Self::directory(git_dir)) else {
            return Vec::new();
        };
        let mut tasks: Vec<TaskId> = entries
            .filter_map(|entry| TaskId::new(entry.ok()?.file_name().to_str()?))
            .collect();
        tasks.sort();
        tasks
            .iter()
            .filter_map(|id| Self::load(git_dir, id, (holder.worktree.as_deref(), &holder.agent)))
            .filter(|intent| {
                intent.operation == Operation::Claim
                    && intent.agent == holder.agent
                    && intent.worktree == holder.worktree
            })
            .collect()
    }

    fn landed(&self, lease: Option<&Lease>) -> bool {
        lease.is_some_and(|lease| lease.oid == self.oid.as_str())
    }

    fn clear(git_dir: &Path, id: &TaskId, (worktree, agent): (Option<&str>, &str)) {
        remove_holder_file(&Self::path_of(git_dir, id, worktree, agent));
    }
}

/// Writes `value` as JSON to `path` whole or not at all (a temporary file renamed).
fn write_json(path: &Path, value: &impl Serialize) -> Result<(), LeaseError> {
    let io = |action, source| LeaseError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    let directory = path
        .parent()
        .expect("a holder's file is in a task's directory");
    std::fs::create_dir_all(directory).map_err(|source| io("create", source))?;
    let temporary = path.with_extension(format!("tmp.{}", std::process::id()));
    let bytes = serde_json::to_vec_pretty(value).expect("a holder's record serializes");
    std::fs::write(&temporary, bytes).map_err(|source| io("write", source))?;
    std::fs::rename(&temporary, path).map_err(|source| io("write", source))
}

/// Removes a holder's file, and its task's directory once no other holder keeps one there.
fn remove_holder_file(path: &Path) {
    let _ = std::fs::remove_file(path);
    if let Some(directory) = path.parent() {
        let _ = std::fs::remove_dir(directory);
    }
}

/// Picks the record `caller` holds on `id` from the clone's records on it (see [`HeldLease::load`]).
fn choose(records: Vec<HeldLease>, id: &TaskId, caller: &Holder) -> Option<HeldLease> {
    let (own, elsewhere): (Vec<HeldLease>, Vec<HeldLease>) = records
        .into_iter()
        .partition(|held| held.worktree == caller.worktree);
    let by_name = |records: &[HeldLease]| {
        records
            .iter()
            .find(|held| held.agent == caller.agent)
            .cloned()
    };
    if !own.is_empty() {
        return by_name(&own).or_else(|| own.into_iter().max_by_key(|held| held.generation));
    }
    let task_worktree = caller
        .branch
        .as_deref()
        .and_then(|branch| branch.strip_prefix("gitprio/"))
        == Some(id.as_str());
    if !task_worktree {
        return None;
    }
    match by_name(&elsewhere) {
        Some(held) => Some(held),
        None if elsewhere.len() == 1 => elsewhere.into_iter().next(),
        None => None,
    }
}

/// Names a holder's record file: a stable hash (FNV-1a) of its worktree and agent, which
/// may hold any character.
pub(crate) fn holder_key(worktree: Option<&str>, agent: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = worktree
        .unwrap_or_default()
        .bytes()
        .chain(std::iter::once(0))
        .chain(agent.bytes());
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Claims the best ready task that passes `filter`, given the queue and leases just refreshed.
///
/// Agents that claim at the same moment would all race for the top task; each one tries
/// instead the best-ranked tasks it owns among the agents claiming now
/// ([`super::spread`]; one agent alone always takes the top task). A lost race ends the
/// try on this view ([`LeaseError::Contention`]): the caller refreshes and claims again.
pub fn claim(
    store: &LeaseStore<'_>,
    queue: &Queue,
    leases: &BTreeMap<TaskId, Lease>,
    queue_commit: Option<ObjectId>,
    context: &LeaseContext,
    filter: &ClaimFilter,
) -> Result<ClaimOutcome, LeaseError> {
    claim_avoiding(
        store,
        queue,
        leases,
        queue_commit,
        context,
        filter,
        &BTreeSet::new(),
        super::spread::Crowd::default(),
        &mut Vec::new(),
    )
}

/// Claims like [`claim`], passing over the ready tasks in `avoid` (those whose `owns`
/// overlap a held task's, see [`super::overlapping_ready`]), for a claim that lost races
/// on earlier views already: what those views showed of the `crowd` widens the spread
/// ([`super::spread::claim_order`]). The expired leases it parks on the way, whatever the
/// outcome, are added to `parked`.
#[expect(
    clippy::too_many_arguments,
    reason = "the claim's inputs, each a different thing; a struct would only rename them"
)]
pub fn claim_avoiding(
    store: &LeaseStore<'_>,
    queue: &Queue,
    leases: &BTreeMap<TaskId, Lease>,
    queue_commit: Option<ObjectId>,
    context: &LeaseContext,
    filter: &ClaimFilter,
    avoid: &BTreeSet<TaskId>,
    crowd: super::spread::Crowd,
    parked: &mut Vec<ParkedExpired>,
) -> Result<ClaimOutcome, LeaseError> {
    if let Some(claimed) = own_orphan(store, queue, leases, context) {
        return Ok(ClaimOutcome::Claimed(Box::new(claimed)));
    }
    let candidates: Vec<&Task> = queue
        .ready()
        .iter()
        .map(|entry| &entry.task)
        .filter(|task| filter.admits(task) && !avoid.contains(&task.id))
        .collect();
    if candidates.is_empty() {
        let held = queue
            .not_ready()
            .iter()
            .filter(|entry| {
                entry.task.status == Status::Open && leases.contains_key(&entry.task.id)
            })
            .count();
        return Ok(ClaimOutcome::NothingReady { held });
    }
    let git_dir = store.repo().common_dir();
    let key = (
        context.holder.worktree.as_deref(),
        context.holder.agent.as_str(),
    );
    let candidate_ids: Vec<&TaskId> = candidates.iter().map(|task| &task.id).collect();
    let order = super::spread::claim_order(
        &candidate_ids,
        &super::spread::claimers(leases, context),
        &context.holder.agent,
        crowd,
    );
    let mut tries = 0;
    let mut lost_here = false;
    let mut skipped = Vec::new();
    let mut locked = None;
    for task in order.into_iter().map(|index| candidates[index]) {
        // A lost race means this view is out of date: a new one (a fetch, cheaper than a
        // push) shows who took what, and the spread widens, where the next candidate of
        // this view would race the same crowd again.
        if tries >= MAX_CLAIM_TRIES || lost_here {
            return Err(LeaseError::Contention { tries });
        }
        let previous = leases.get(&task.id);
        let passed_over = skipped.len();
        let Some(record) = claim_record(
            store,
            task,
            previous,
            queue_commit,
            context,
            &mut skipped,
            parked,
        ) else {
            // A park is a swap pushed, like a claim; one that failed is not.
            tries += u32::from(skipped.len() == passed_over);
            continue;
        };
        let expected = previous.map(|lease| lease.oid);
        let oid = store.write(&record, expected)?;
        tries += 1;
        Intent::note(git_dir, &task.id, key, Operation::Claim, oid)?;
        context.failpoint(Operation::Claim.name(), "before-cas");
        match store.compare_and_swap(&task.id, expected, Some(oid)) {
            Ok(CasOutcome::Won) => {
                context.failpoint(Operation::Claim.name(), "after-cas");
                let lease = Lease {
                    reference: super::lease_ref(&task.id),
                    oid,
                    record,
                };
                remember(store, &lease)?;
                Intent::clear(git_dir, &task.id, key);
                return Ok(ClaimOutcome::Claimed(Box::new(Claimed {
                    task: (*task).clone(),
                    lease,
                    tries,
                    skipped,
                })));
            }
            Ok(CasOutcome::Lost { .. }) => {
                Intent::clear(git_dir, &task.id, key);
                lost_here = true;
            }
            Err(error @ (StoreError::Locked { .. } | StoreError::RemoteLocked { .. })) => {
                // A stale lock keeps this one task from moving, not the others.
                Intent::clear(git_dir, &task.id, key);
                tries -= 1;
                skipped.push(format!("passed over `{}`: {error}", task.id));
                locked.get_or_insert(error);
            }
            // The push may have landed: the intent stays, for the next claim to find.
            Err(error) => return Err(error.into()),
        }
    }
    if let Some(error) = locked {
        return Err(error.into());
    }
    if tries == 0 {
        return Ok(ClaimOutcome::NothingReady { held: 0 });
    }
    Err(LeaseError::Contention { tries })
}

/// Returns the lease this holder (same agent, same worktree) claimed and never learnt it
/// got, when a claim of its was killed after its swap landed: the ref still holds exactly
/// the commit that claim noted, live. It is handed back at once instead of idling until
/// it expires. Claims noted that did not land are forgotten.
fn own_orphan(
    store: &LeaseStore<'_>,
    queue: &Queue,
    leases: &BTreeMap<TaskId, Lease>,
    context: &LeaseContext,
) -> Option<Claimed> {
    let git_dir = store.repo().common_dir();
    for intent in Intent::claims_of(git_dir, &context.holder) {
        Intent::clear(
            git_dir,
            &intent.task,
            (intent.worktree.as_deref(), &intent.agent),
        );
        let Some(lease) = leases.get(&intent.task).filter(|lease| {
            intent.landed(Some(lease))
                && lease.record.state == LeaseState::Held
                && context.now < lease.record.expires_at
        }) else {
            continue;
        };
        let Some((_, entry)) = queue.find(intent.task.as_str()) else {
            continue;
        };
        if remember(store, lease).is_ok() {
            return Some(Claimed {
                task: entry.task.clone(),
                lease: lease.clone(),
                tries: 0,
                skipped: Vec::new(),
            });
        }
    }
    None
}

/// Returns the record that claims `task` over its `previous` lease, or `None` when that
/// lease had to be parked instead (its expiry made the failures reach the limit; a park
/// this claim landed is added to `parked`).
///
/// A park that fails (a stale lock on the ref, a refusal) is noted in `skipped` and
/// passed over: parking is housekeeping, and the claim goes on with the next candidate.
fn claim_record(
    store: &LeaseStore<'_>,
    task: &Task,
    previous: Option<&Lease>,
    queue_commit: Option<ObjectId>,
    context: &LeaseContext,
    skipped: &mut Vec<String>,
    parked: &mut Vec<ParkedExpired>,
) -> Option<LeaseRecord> {
    let mut failures = previous.map_or(0, |lease| lease.record.failures);
    let mut last_error = previous.and_then(|lease| lease.record.last_error.clone());
    let mut event = LeaseEvent::Claim;
    if let Some(lease) = previous.filter(|lease| lease.record.state == LeaseState::Held) {
        // Ready while held means expired: the holder stopped renewing.
        failures += 1;
        last_error = Some(format!(
            "lease expired: {} stopped renewing after {}",
            lease.record.holder.agent, lease.record.renewed_at
        ));
        event = LeaseEvent::Reclaim;
        if failures >= context.max_attempts {
            match park(store, lease, context, failures, last_error) {
                Ok(true) => parked.push(ParkedExpired {
                    task: task.clone(),
                    lease: lease.clone(),
                }),
                Ok(false) => {}
                Err(error) => skipped.push(format!(
                    "passed over `{}`: its expired lease could not be parked: {error}",
                    task.id
                )),
            }
            return None;
        }
    }
    Some(LeaseRecord {
        task: task.id.clone(),
        state: LeaseState::Held,
        event,
        generation: previous.map_or(0, |lease| lease.record.generation) + 1,
        attempt: previous.map_or(0, |lease| lease.record.attempt) + 1,
        failures,
        holder: context.holder.clone(),
        task_blob: queue_commit
            .and_then(|commit| store.repo().entry_at(commit, &task.path).ok().flatten())
            .map(|(blob, _)| blob.to_string()),
        base_commit: queue_commit.map(|commit| commit.to_string()),
        acquired_at: context.now,
        renewed_at: context.now,
        expires_at: context.expires_at(),
        ttl_seconds: context.ttl_seconds(),
        reason: None,
        last_error,
        progress: None,
        nonce: nonce(),
        // A new attempt: what a newer gitprio noted of the last one (fields this one does
        // not know) may not hold for it, so they are not carried over.
        extra: BTreeMap::new(),
    })
}

/// Whether `holder` noted a claim it never settled (a claim killed around its swap): the
/// next claim must then see the remote as it is, to hand that lease back only if it
/// still holds it.
pub fn has_unsettled_claim(store: &LeaseStore<'_>, holder: &Holder) -> bool {
    !Intent::claims_of(store.repo().common_dir(), holder).is_empty()
}

/// Counts the agents seen changing a lease within one TTL, this one included.
pub fn active_agents(leases: &BTreeMap<TaskId, Lease>, context: &LeaseContext) -> usize {
    let since = context
        .now
        .saturating_sub(context.ttl)
        .unwrap_or(context.now);
    let mut agents: BTreeSet<&str> = leases
        .values()
        .filter(|lease| lease.record.renewed_at >= since)
        .map(|lease| lease.record.holder.agent.as_str())
        .collect();
    agents.insert(&context.holder.agent);
    agents.len()
}

/// Parks the expired `lease`; returns whether this park landed (`false`: another agent
/// changed the lease first).
fn park(
    store: &LeaseStore<'_>,
    lease: &Lease,
    context: &LeaseContext,
    failures: u32,
    last_error: Option<String>,
) -> Result<bool, LeaseError> {
    let record = LeaseRecord {
        state: LeaseState::Parked,
        event: LeaseEvent::Park,
        failures,
        reason: Some(format!("{failures} failed attempts; a human has to look")),
        last_error,
        renewed_at: context.now,
        nonce: nonce(),
        ..lease.record.clone()
    };
    let oid = store.write(&record, Some(lease.oid))?;
    // Losing this race is fine: whoever won decided the task's fate.
    let outcome = store.compare_and_swap(&record.task, Some(lease.oid), Some(oid))?;
    Ok(outcome == CasOutcome::Won)
}

fn remember(store: &LeaseStore<'_>, lease: &Lease) -> Result<(), LeaseError> {
    let git_dir = store.repo().common_dir();
    let mut held = HeldLease {
        task: lease.record.task.clone(),
        reference: lease.reference.clone(),
        oid: lease.oid.to_string(),
        state: lease.record.state,
        generation: lease.record.generation,
        agent: lease.record.holder.agent.clone(),
        expires_at: lease.record.expires_at,
        store: match store.mode() {
            Mode::Remote { remote, .. } => remote.clone(),
            Mode::Local => "local".to_owned(),
        },
        context_tokens: None,
        worktree: lease.record.holder.worktree.clone(),
        lost: false,
    };
    held.context_tokens = HeldLease::read(&held.path(git_dir))
        .filter(|kept| kept.generation == held.generation)
        .and_then(|kept| kept.context_tokens);
    held.save(git_dir)
}

/// Notes the size of the context bundle handed over with the claim of `id` by `caller`,
/// for the usage ledger.
pub fn note_context_size(
    git_dir: &Path,
    id: &TaskId,
    caller: &Holder,
    tokens: u64,
) -> Result<(), LeaseError> {
    if let Some(mut held) = HeldLease::load(git_dir, id, caller)? {
        held.context_tokens = Some(tokens);
        held.save(git_dir)?;
    }
    Ok(())
}

/// Moves the lease the caller (`context.holder`) holds on `id` to the state `change` makes
/// of its record.
///
/// Before its compare-and-swap it notes the commit it swaps in (an [`Intent`]). When the
/// swap loses, the ref may hold exactly the commit that this holder's earlier command
/// noted and got through before it died: a renewal or claim is then carried on from (the
/// change is made again on top of it), the same ending (a release run again, a `done` run
/// again) is taken as done, and any other command is refused ([`LeaseError::Ended`]): a
/// submitted lease never turns back into a released or renewed one. Any other commit in
/// the ref, whoever wrote it, means the lease is lost.
fn advance(
    store: &LeaseStore<'_>,
    id: &TaskId,
    context: &LeaseContext,
    operation: Operation,
    change: impl Fn(LeaseRecord) -> LeaseRecord,
) -> Result<Lease, LeaseError> {
    let git_dir = store.repo().common_dir();
    let mut held = HeldLease::load(git_dir, id, &context.holder)?
        .ok_or_else(|| LeaseError::NotHeld { id: id.clone() })?;
    if held.state == LeaseState::Submitted && operation != Operation::Submit {
        return Err(ended(id, LeaseState::Submitted, None));
    }
    let key = (held.worktree.clone(), held.agent.clone());
    let key = (key.0.as_deref(), key.1.as_str());
    let prior = Intent::load(git_dir, id, key);
    let mut expected = held.oid()?;
    let mut recovered = false;
    loop {
        let message = store
            .repo()
            .commit_message(expected)
            .map_err(StoreError::from)?;
        let current =
            LeaseRecord::from_message(&message).map_err(|source| LeaseError::Unreadable {
                id: id.clone(),
                oid: expected,
                source,
            })?;
        let record = change(LeaseRecord {
            nonce: nonce(),
            ..current
        });
        let oid = store.write(&record, Some(expected))?;
        Intent::note(git_dir, id, key, operation, oid)?;
        context.failpoint(operation.name(), "before-cas");
        if store.compare_and_swap(id, Some(expected), Some(oid))? == CasOutcome::Won {
            context.failpoint(operation.name(), "after-cas");
            let lease = Lease {
                reference: held.reference.clone(),
                oid,
                record,
            };
            settle(store, &held, &lease)?;
            Intent::clear(git_dir, id, key);
            return Ok(lease);
        }
        let now = lease_now(store, id)?;
        let own = prior
            .as_ref()
            .filter(|prior| prior.landed(now.as_ref()))
            .zip(now.as_ref());
        match own {
            Some((_, lease)) if lease.record.state == LeaseState::Held && !recovered => {
                // This holder's own renewal (or claim) landed unnoticed: go on from it.
                remember(store, lease)?;
                held = HeldLease::load(git_dir, id, &context.holder)?
                    .ok_or_else(|| LeaseError::NotHeld { id: id.clone() })?;
                expected = lease.oid;
                recovered = true;
            }
            Some((prior, lease)) if lease.record.state != LeaseState::Held => {
                settle(store, &held, lease)?;
                Intent::clear(git_dir, id, key);
                if prior.operation == operation {
                    return Ok(lease.clone());
                }
                return Err(ended(id, lease.record.state, Some(prior.operation)));
            }
            _ => {
                Intent::clear(git_dir, id, key);
                if operation == Operation::Release {
                    held.forget(git_dir);
                } else if !held.lost {
                    // Best effort: the error below is what matters.
                    let _ = HeldLease {
                        lost: true,
                        ..held.clone()
                    }
                    .save(git_dir);
                }
                return Err(lost(id, held.generation, now.as_ref()));
            }
        }
    }
}

/// The error for a command other than the one that ended the lease in `state` (`by`, an
/// operation of this holder that died before it noted the outcome, when given).
fn ended(id: &TaskId, state: LeaseState, by: Option<Operation>) -> LeaseError {
    let how = match by {
        Some(by) => format!(
            "by this worktree's own `gitprio {}`, which stopped before it finished",
            by.command()
        ),
        None => "by this worktree".to_owned(),
    };
    let (detail, hint) = match state {
        LeaseState::Submitted => (
            format!(
                "was submitted {how}: its change waits to land, so it is not given back or renewed"
            ),
            Hint::FinishSubmission(id.clone()),
        ),
        LeaseState::Parked => (format!("was parked {how}"), Hint::ClaimAnother),
        LeaseState::Released | LeaseState::Held => {
            (format!("was given back {how}"), Hint::ClaimAnother)
        }
    };
    LeaseError::Ended {
        id: id.clone(),
        detail,
        hint,
    }
}

/// The error for a holder of `generation` whose lease the ref no longer holds (`now`).
///
/// git's own words ("[rejected] (stale info)") are left out: they only say that the ref moved.
fn lost(id: &TaskId, generation: u64, now: Option<&Lease>) -> LeaseError {
    let since = match now {
        None => {
            return LeaseError::Lost {
                id: id.clone(),
                detail: format!(
                    "its lease ref is gone since this worktree held generation {generation}: `gitprio gc` deleted it (the task is done, dropped or gone from the queue's branch), or someone deleted it by hand"
                ),
            };
        }
        Some(lease) if lease.record.event == LeaseEvent::Revoke => format!(
            "revoked by {} at {}: {}",
            lease.record.holder.agent,
            lease.record.renewed_at,
            lease.record.reason.as_deref().unwrap_or("no reason given")
        ),
        Some(lease) if lease.record.generation > generation => format!(
            "generation {} went to {}",
            lease.record.generation, lease.record.holder.agent
        ),
        Some(lease) => format!(
            "it is {} now, by {}",
            state_name(lease.record.state),
            lease.record.holder.agent
        ),
    };
    LeaseError::Lost {
        id: id.clone(),
        detail: format!(
            "the lease moved on since this worktree held generation {generation} ({since})"
        ),
    }
}

/// Notes locally what `lease`, just written (or found written) by the holder of `held`, came to.
fn settle(store: &LeaseStore<'_>, held: &HeldLease, lease: &Lease) -> Result<(), LeaseError> {
    if matches!(lease.record.state, LeaseState::Held | LeaseState::Submitted) {
        remember(store, lease)
    } else {
        held.forget(store.repo().common_dir());
        Ok(())
    }
}

/// Reads the lease of `id` as it is now (from the remote, in remote mode).
fn lease_now(store: &LeaseStore<'_>, id: &TaskId) -> Result<Option<Lease>, LeaseError> {
    store.refresh()?;
    Ok(store.lease(id)?)
}

/// Renews the lease this worktree holds on `id` for another TTL.
///
/// `progress`, the holder's spend so far, replaces the one reported before; without it
/// the renewal keeps what was last reported.
pub fn heartbeat(
    store: &LeaseStore<'_>,
    id: &TaskId,
    context: &LeaseContext,
    progress: Option<&Progress>,
) -> Result<Lease, LeaseError> {
    advance(store, id, context, Operation::Heartbeat, |record| {
        LeaseRecord {
            event: LeaseEvent::Renew,
            renewed_at: context.now,
            expires_at: context.expires_at(),
            ttl_seconds: context.ttl_seconds(),
            progress: progress.cloned().or(record.progress),
            ..record
        }
    })
}

/// What giving a task back came to.
#[derive(Clone, Debug)]
pub struct Released {
    pub lease: Lease,
    /// The failures reached the limit: the task waits for a human.
    pub parked: bool,
}

/// Gives back the task this worktree holds; a failed attempt counts toward parking.
pub fn release(
    store: &LeaseStore<'_>,
    id: &TaskId,
    context: &LeaseContext,
    reason: Option<&str>,
    failed: bool,
) -> Result<Released, LeaseError> {
    let lease = advance(store, id, context, Operation::Release, |record| {
        let failures = record.failures + u32::from(failed);
        let parked = failed && failures >= context.max_attempts;
        LeaseRecord {
            state: if parked {
                LeaseState::Parked
            } else {
                LeaseState::Released
            },
            event: if parked {
                LeaseEvent::Park
            } else if failed {
                LeaseEvent::Fail
            } else {
                LeaseEvent::Release
            },
            failures,
            last_error: if failed {
                Some(reason.unwrap_or("attempt failed").to_owned())
            } else {
                record.last_error.clone()
            },
            reason: reason.map(str::to_owned),
            renewed_at: context.now,
            ..record
        }
    })?;
    Ok(Released {
        parked: lease.record.state == LeaseState::Parked,
        lease,
    })
}

/// Gives back the task this worktree holds as a failed attempt and parks it at once,
/// whatever `max_attempts` says: for a runaway loop that keeps failing the same way.
pub fn release_parked(
    store: &LeaseStore<'_>,
    id: &TaskId,
    context: &LeaseContext,
    reason: Option<&str>,
) -> Result<Released, LeaseError> {
    let lease = advance(store, id, context, Operation::Release, |record| {
        LeaseRecord {
            state: LeaseState::Parked,
            event: LeaseEvent::Park,
            failures: record.failures + 1,
            last_error: Some(reason.unwrap_or("attempt failed").to_owned()),
            reason: reason.map(str::to_owned),
            renewed_at: context.now,
            ..record
        }
    })?;
    Ok(Released {
        parked: true,
        lease,
    })
}

/// Records that the work on `id` was submitted, fenced by the lease this worktree holds.
///
/// Doing it again after a crash is safe: a submission already recorded is returned as is.
pub fn submit(
    store: &LeaseStore<'_>,
    id: &TaskId,
    context: &LeaseContext,
) -> Result<Lease, LeaseError> {
    submit_noting(store, id, context, None)
}

/// Records the submission like [`submit`], with `note` (a review summary, why acceptance
/// was not run) kept as the submit record's `reason`.
pub fn submit_noting(
    store: &LeaseStore<'_>,
    id: &TaskId,
    context: &LeaseContext,
    note: Option<&str>,
) -> Result<Lease, LeaseError> {
    let git_dir = store.repo().common_dir();
    if let Some(held) = HeldLease::load(git_dir, id, &context.holder)?
        && held.state == LeaseState::Submitted
    {
        // Submitted before (a `done` run again to finish its edit): only if the lease
        // still is that submission.
        return match lease_now(store, id)? {
            Some(lease) if lease.oid == held.oid.as_str() => Ok(lease),
            None => Err(LeaseError::Gone {
                id: id.clone(),
                submitted: format!(
                    " (this worktree submitted it at generation {})",
                    held.generation
                ),
            }),
            now => Err(lost(id, held.generation, now.as_ref())),
        };
    }
    advance(store, id, context, Operation::Submit, |record| {
        LeaseRecord {
            state: LeaseState::Submitted,
            event: LeaseEvent::Submit,
            // Not before the renewals `done` made while its acceptance commands ran: the
            // history would run backwards.
            renewed_at: context.now.max(record.renewed_at),
            reason: note.map(str::to_owned).or(record.reason.clone()),
            ..record
        }
    })
}

/// Makes a parked task claimable again (after a human looked), keeping its history.
pub fn unpark(
    store: &LeaseStore<'_>,
    lease: &Lease,
    context: &LeaseContext,
    reason: Option<String>,
) -> Result<Lease, LeaseError> {
    if lease.record.state != LeaseState::Parked {
        return Err(LeaseError::NotParked {
            id: lease.record.task.clone(),
            state: lease.record.state,
        });
    }
    let record = LeaseRecord {
        state: LeaseState::Released,
        event: LeaseEvent::Unpark,
        failures: 0,
        reason: reason.or(Some("unparked".to_owned())),
        holder: context.holder.clone(),
        renewed_at: context.now,
        nonce: nonce(),
        ..lease.record.clone()
    };
    let oid = store.write(&record, Some(lease.oid))?;
    match store.compare_and_swap(&record.task, Some(lease.oid), Some(oid))? {
        CasOutcome::Won => Ok(Lease {
            reference: lease.reference.clone(),
            oid,
            record,
        }),
        CasOutcome::Lost { .. } => Err(LeaseError::Lost {
            id: record.task,
            detail: "the lease changed while it was being unparked; see `gitprio status`"
                .to_owned(),
        }),
    }
}

/// What [`gc`] knows of the queue's branch as read, and when it reads it.
#[derive(Clone, Copy, Debug)]
pub struct GcView<'a> {
    pub queue: &'a Queue,
    /// Whether some task file was left out of the queue as unreadable: a task missing
    /// from `queue` may be that file's.
    pub files_skipped: bool,
    pub now: Timestamp,
    /// How far another machine's clock may be ahead, as for expiry.
    pub skew: SignedDuration,
}

/// Why [`gc`] kept the lease of a task missing from the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kept {
    /// Some task file could not be read, and the task may be that one.
    Unreadable,
    /// The lease is held within its TTL, submitted or parked: it still blocks the task
    /// wherever the task exists (the queue may have been read from another branch).
    Live,
}

/// What [`gc`] did: the leases deleted, and those of missing tasks it kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Collected {
    pub deleted: Vec<TaskId>,
    pub kept: Vec<(TaskId, Kept)>,
}

/// What [`gc`] does with one lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// The task is open or blocked: the lease is in use.
    InUse,
    Delete,
    Keep(Kept),
}

/// Decides the fate of the lease `record` whose task has `status` in the queue (`None`: missing).
fn verdict(record: &LeaseRecord, status: Option<Status>, view: &GcView<'_>) -> Verdict {
    // Deleting a lease starts its task's generations over, so gc does not judge a held
    // lease dead by its own clock alone: the lease must be past its expiry by a whole
    // TTL more than a reclaim waits (a clock off by that much is no clock skew).
    let ttl = SignedDuration::from_secs(i64::try_from(record.ttl_seconds).unwrap_or(i64::MAX));
    let live = match record.state {
        LeaseState::Held => !record.is_expired(view.now, view.skew.saturating_add(ttl)),
        LeaseState::Submitted | LeaseState::Parked => true,
        LeaseState::Released => false,
    };
    match status {
        Some(Status::Open | Status::Blocked) => Verdict::InUse,
        None if view.files_skipped => Verdict::Keep(Kept::Unreadable),
        None if live => Verdict::Keep(Kept::Live),
        Some(Status::Done | Status::Dropped) | None => Verdict::Delete,
    }
}

/// Deletes the lease refs that no longer matter: tasks done or dropped in the queue, and
/// tasks gone from it whose lease is no longer live.
///
/// A task missing from the queue may only be missing from this reading of it (a file
/// that does not parse, another branch), so its lease is kept while it is held within
/// its TTL, submitted or parked, and whenever some task file could not be read.
pub fn gc(
    store: &LeaseStore<'_>,
    view: &GcView<'_>,
    leases: &BTreeMap<TaskId, Lease>,
) -> Result<Collected, LeaseError> {
    let mut collected = Collected::default();
    for (id, lease) in leases {
        let status = view
            .queue
            .find(id.as_str())
            .map(|(_, entry)| entry.task.status);
        match verdict(&lease.record, status, view) {
            Verdict::InUse => {}
            Verdict::Keep(reason) => collected.kept.push((id.clone(), reason)),
            Verdict::Delete => {
                if store.compare_and_swap(id, Some(lease.oid), None)? == CasOutcome::Won {
                    collected.deleted.push(id.clone());
                }
            }
        }
    }
    Ok(collected)
}

/// Gives back a submitted lease whose change will not land (its pull request was closed
/// without merging): the task is claimable again, its history kept. Another change of the
/// lease meanwhile wins: the result says so.
pub fn reopen(
    store: &LeaseStore<'_>,
    lease: &Lease,
    now: Timestamp,
    reason: String,
) -> Result<CasOutcome, LeaseError> {
    let record = LeaseRecord {
        state: LeaseState::Released,
        event: LeaseEvent::Release,
        reason: Some(reason),
        renewed_at: now,
        nonce: nonce(),
        ..lease.record.clone()
    };
    let oid = store.write(&record, Some(lease.oid))?;
    Ok(store.compare_and_swap(&record.task, Some(lease.oid), Some(oid))?)
}

/// Returns a value that makes a lease commit unique, from the process's random hash seed.
pub(super) fn nonce() -> String {
    format!("{:016x}", random_u64())
}

/// Returns 64 bits that differ from process to process and from call to call.
pub(crate) fn random_u64() -> u64 {
    let mut hasher = std::hash::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos()),
    );
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::tests::record as held;
    use crate::queue::Holds;
    use crate::task::parse_task;

    fn queue_of(statuses: &[(&str, &str)]) -> Queue {
        let tasks = statuses
            .iter()
            .map(|(id, status)| {
                let text = format!("---\ntitle: {id}\nstatus: {status}\n---\n");
                parse_task(&format!(".tasks/{id}.md"), text.as_bytes())
                    .task
                    .unwrap()
            })
            .collect();
        Queue::build(tasks, &Holds::new())
    }

    #[test]
    fn a_claim_that_gives_up_says_how_many_tries_and_how_long() {
        let error = LeaseError::GaveUp {
            tries: 9,
            views: 7,
            spent: std::time::Duration::from_millis(61_400),
        };
        assert_eq!(
            error.to_string(),
            "gave up after losing 9 races for the top tasks over 7 views in 61s (a claim tries for 60s at most); other agents are claiming fast, try again"
        );
    }

    fn view<'a>(queue: &'a Queue, files_skipped: bool, now: &str) -> GcView<'a> {
        GcView {
            queue,
            files_skipped,
            now: now.parse().unwrap(),
            skew: SignedDuration::from_mins(1),
        }
    }

    /// The verdict on a `fix-login` lease in `state`, the task having `status` (`None`: missing).
    fn verdict_on(state: LeaseState, status: Option<&str>, skipped: bool, now: &str) -> Verdict {
        let queue = queue_of(
            &status
                .map(|status| vec![("fix-login", status)])
                .unwrap_or_default(),
        );
        let record = LeaseRecord { state, ..held() };
        let task = queue.find("fix-login").map(|(_, entry)| entry.task.status);
        verdict(&record, task, &view(&queue, skipped, now))
    }

    const DURING: &str = "2026-11-01T12:10:00Z";
    /// Past `expires_at` (12:30) and the minute of clock skew.
    const AFTER: &str = "2026-11-01T12:31:01Z";

    #[test]
    fn gc_deletes_the_leases_of_done_and_dropped_tasks_and_keeps_open_ones() {
        for status in ["done", "dropped"] {
            assert_eq!(
                verdict_on(LeaseState::Held, Some(status), true, DURING),
                Verdict::Delete
            );
        }
        for status in ["open", "blocked"] {
            assert_eq!(
                verdict_on(LeaseState::Released, Some(status), false, AFTER),
                Verdict::InUse
            );
        }
    }

    #[test]
    fn gc_keeps_every_lease_of_a_missing_task_while_a_task_file_is_unreadable() {
        for state in [LeaseState::Held, LeaseState::Released, LeaseState::Parked] {
            assert_eq!(
                verdict_on(state, None, true, AFTER),
                Verdict::Keep(Kept::Unreadable)
            );
        }
    }

    #[test]
    fn gc_keeps_a_live_lease_of_a_missing_task_and_deletes_a_dead_one() {
        for state in [LeaseState::Held, LeaseState::Submitted, LeaseState::Parked] {
            assert_eq!(
                verdict_on(state, None, false, DURING),
                Verdict::Keep(Kept::Live),
                "{state:?}"
            );
        }
        // Within the clock skew after expiry the holder may still be working, and gc does
        // not judge it dead by its own clock until a whole TTL later.
        for now in ["2026-11-01T12:31:00Z", AFTER, "2026-11-01T13:01:00Z"] {
            assert_eq!(
                verdict_on(LeaseState::Held, None, false, now),
                Verdict::Keep(Kept::Live),
                "{now}"
            );
        }
        assert_eq!(
            verdict_on(LeaseState::Held, None, false, "2026-11-01T13:01:01Z"),
            Verdict::Delete
        );
        assert_eq!(
            verdict_on(LeaseState::Released, None, false, AFTER),
            Verdict::Delete
        );
        assert_eq!(
            verdict_on(LeaseState::Parked, None, false, AFTER),
            Verdict::Keep(Kept::Live)
        );
    }

    fn holder(agent: &str, worktree: &str) -> Holder {
        Holder {
            agent: agent.to_owned(),
            host: "box".to_owned(),
            pid: 1,
            worktree: Some(worktree.to_owned()),
            branch: Some("main".to_owned()),
            session: None,
            extra: BTreeMap::new(),
        }
    }

    fn context(holder: Holder) -> LeaseContext {
        LeaseContext {
            now: "2026-11-01T12:40:00Z".parse().unwrap(),
            ttl: SignedDuration::from_mins(30),
            skew: SignedDuration::ZERO,
            max_attempts: 3,
            holder,
            failpoint: None,
        }
    }

    fn fix_login() -> TaskId {
        TaskId::new("fix-login").unwrap()
    }

    /// Runs `test` on the leases, kept as local refs, of a new repository.
    fn in_local_store(test: impl FnOnce(&LeaseStore<'_>)) {
        let directory = tempfile::tempdir().unwrap();
        let repo = crate::lease::tests::repository(directory.path());
        test(&LeaseStore::new(&repo, Mode::Local));
    }

    /// Claims `fix-login` for `holder` over whatever the lease holds now (a reclaim when
    /// there is one), as `claim` does, and remembers it for that holder.
    fn claim_as(store: &LeaseStore<'_>, holder: &Holder) -> Lease {
        let previous = store.lease(&fix_login()).unwrap();
        let generation = previous.as_ref().map_or(0, |lease| lease.record.generation) + 1;
        let record = LeaseRecord {
            generation,
            attempt: u32::try_from(generation).unwrap(),
            holder: holder.clone(),
            event: if generation == 1 {
                LeaseEvent::Claim
            } else {
                LeaseEvent::Reclaim
            },
            nonce: nonce(),
            ..crate::lease::tests::record()
        };
        let expected = previous.map(|lease| lease.oid);
        let oid = store.write(&record, expected).unwrap();
        let outcome = store
            .compare_and_swap(&fix_login(), expected, Some(oid))
            .unwrap();
        assert_eq!(outcome, CasOutcome::Won);
        let lease = Lease {
            reference: super::super::lease_ref(&fix_login()),
            oid,
            record,
        };
        remember(store, &lease).unwrap();
        lease
    }

    #[test]
    fn a_holder_picks_its_own_record_in_its_own_worktree() {
        let held = |agent: &str, worktree: &str, generation| HeldLease {
            task: fix_login(),
            reference: "refs/gitprio/leases/fix-login".to_owned(),
            oid: String::new(),
            state: LeaseState::Held,
            generation,
            agent: agent.to_owned(),
            expires_at: Timestamp::UNIX_EPOCH,
            store: "local".to_owned(),
            context_tokens: None,
            worktree: Some(worktree.to_owned()),
            lost: false,
        };
        let records = vec![
            held("alice", "/a", 1),
            held("bob", "/b", 2),
            held("carol", "/a", 3),
        ];
        let pick = |caller: &Holder| {
            choose(records.clone(), &fix_login(), caller).map(|held| (held.agent, held.generation))
        };
        assert_eq!(pick(&holder("alice", "/a")), Some(("alice".to_owned(), 1)));
        assert_eq!(pick(&holder("bob", "/b")), Some(("bob".to_owned(), 2)));
        // A name that matches none (the default one carries the process id): the newest here.
        assert_eq!(
            pick(&holder("u@box:77", "/a")),
            Some(("carol".to_owned(), 3))
        );
        // Another worktree's lease is never this one's, whatever the name.
        assert_eq!(pick(&holder("bob", "/c")), None);
        assert_eq!(pick(&holder("dave", "/c")), None);
        // In the worktree `gitprio run` made for the task, the agent names its record.
        let task_worktree = |agent: &str| Holder {
            branch: Some("gitprio/fix-login".to_owned()),
            ..holder(agent, "/run/fix-login")
        };
        assert_eq!(pick(&task_worktree("bob")), Some(("bob".to_owned(), 2)));
        assert_eq!(pick(&task_worktree("dave")), None, "ambiguous");
        assert_eq!(
            choose(
                vec![held("bob", "/b", 2)],
                &fix_login(),
                &task_worktree("dave")
            )
            .map(|held| held.agent),
            Some("bob".to_owned())
        );
    }

    #[test]
    fn a_reclaim_in_another_worktree_fences_the_old_holder_off() {
        in_local_store(|store| {
            let (alice, bob) = (holder("alice", "/a"), holder("bob", "/b"));
            let first = claim_as(store, &alice);
            let second = claim_as(store, &bob);
            assert_eq!(second.record.generation, 2);
            for outcome in [
                heartbeat(store, &fix_login(), &context(alice.clone()), None).map(|_| ()),
                submit(store, &fix_login(), &context(alice.clone())).map(|_| ()),
                release(store, &fix_login(), &context(alice.clone()), None, true).map(|_| ()),
            ] {
                let error = outcome.unwrap_err();
                assert!(matches!(error, LeaseError::Lost { .. }), "{error}");
                assert!(
                    error.to_string().contains("generation 2 went to bob"),
                    "{error}"
                );
            }
            assert_eq!(store.lease(&fix_login()).unwrap().unwrap().oid, second.oid);
            // Nobody else renews it either; its holder does.
            let carol = heartbeat(store, &fix_login(), &context(holder("carol", "/c")), None);
            assert!(
                matches!(carol, Err(LeaseError::NotHeld { .. })),
                "{carol:?}"
            );
            let renewed = heartbeat(store, &fix_login(), &context(bob.clone()), None).unwrap();
            assert_eq!(renewed.record.generation, 2);
            assert_ne!(renewed.oid, first.oid);
        });
    }

    #[test]
    fn a_record_of_the_layout_with_one_file_per_task_is_still_read() {
        in_local_store(|store| {
            let alice = holder("alice", "/a");
            let lease = claim_as(store, &alice);
            let git_dir = store.repo().common_dir();
            let held = HeldLease::load(git_dir, &fix_login(), &alice)
                .unwrap()
                .unwrap();
            held.forget(git_dir);
            std::fs::write(
                HeldLease::legacy_path(git_dir, &fix_login()),
                serde_json::to_vec(&held).unwrap(),
            )
            .unwrap();
            assert_eq!(HeldLease::all(git_dir), vec![held.clone()]);
            let renewed = heartbeat(store, &fix_login(), &context(alice), None).unwrap();
            assert_eq!(renewed.record.generation, lease.record.generation);
            assert!(!HeldLease::legacy_path(git_dir, &fix_login()).exists());
        });
    }

    #[test]
    fn intents_name_their_operation_as_before_and_refuse_one_they_do_not_know() {
        let intent = Intent {
            task: fix_login(),
            operation: Operation::Submit,
            oid: "0".repeat(40),
            agent: "alice".to_owned(),
            worktree: None,
        };
        let json = serde_json::to_value(&intent).unwrap();
        assert_eq!(json["operation"], "submit");
        assert_eq!(Operation::Submit.command(), "done");
        let unknown = json.to_string().replace("\"submit\"", "\"checkpoint\"");
        assert!(serde_json::from_str::<Intent>(&unknown).is_err());
    }

    #[test]
    fn a_release_run_again_after_its_swap_landed_finishes() {
        in_local_store(|store| {
            let alice = holder("alice", "/a");
            let claimed = claim_as(store, &alice);
            // The first run swapped and died before it noted anything.
            let failed = LeaseRecord {
                state: LeaseState::Released,
                event: LeaseEvent::Fail,
                failures: 1,
                last_error: Some("boom".to_owned()),
                reason: Some("boom".to_owned()),
                nonce: nonce(),
                ..claimed.record.clone()
            };
            let oid = store.write(&failed, Some(claimed.oid)).unwrap();
            let git_dir = store.repo().common_dir();
            let key = (alice.worktree.as_deref(), alice.agent.as_str());
            Intent::note(git_dir, &fix_login(), key, Operation::Release, oid).unwrap();
            let outcome = store
                .compare_and_swap(&fix_login(), Some(claimed.oid), Some(oid))
                .unwrap();
            assert_eq!(outcome, CasOutcome::Won);
            let released = release(
                store,
                &fix_login(),
                &context(alice.clone()),
                Some("boom"),
                true,
            )
            .unwrap();
            assert_eq!(released.lease.oid, oid, "nothing pushed again");
            assert!(!released.parked);
            assert_eq!(released.lease.record.failures, 1);
            assert_eq!(HeldLease::all(git_dir), Vec::new());
            assert_eq!(Intent::load(git_dir, &fix_login(), key), None);
            // A commit this holder did not note before its swap is not its own, whoever
            // it names: the lease is lost.
            let claimed = claim_as(store, &alice);
            let revoked = LeaseRecord {
                state: LeaseState::Released,
                event: LeaseEvent::Release,
                nonce: nonce(),
                ..claimed.record.clone()
            };
            let oid = store.write(&revoked, Some(claimed.oid)).unwrap();
            store
                .compare_and_swap(&fix_login(), Some(claimed.oid), Some(oid))
                .unwrap();
            let error = release(store, &fix_login(), &context(alice), None, false).unwrap_err();
            assert!(matches!(error, LeaseError::Lost { .. }), "{error}");
        });
    }

    /// Puts on top of `holder`'s claim of `fix-login` the record a newer gitprio would
    /// write: the claim's, edited by `newer`. Returns the commit, as `holder` remembers it.
    fn newer_record_over_claim(
        store: &LeaseStore<'_>,
        holder: &Holder,
        newer: impl Fn(&str) -> String,
    ) -> ObjectId {
        let claimed = claim_as(store, holder);
        let message = claimed.record.to_message();
        let edited = newer(&message);
        assert_ne!(edited, message);
        let oid = store
            .repo()
            .write_commit(
                &edited,
                None,
                Some(claimed.oid),
                claimed.record.renewed_at.as_second(),
            )
            .unwrap();
        let outcome = store
            .compare_and_swap(&fix_login(), Some(claimed.oid), Some(oid))
            .unwrap();
        assert_eq!(outcome, CasOutcome::Won);
        let git_dir = store.repo().common_dir();
        let mut held = HeldLease::load(git_dir, &fix_login(), holder)
            .unwrap()
            .unwrap();
        held.oid = oid.to_string();
        held.save(git_dir).unwrap();
        oid
    }

    #[test]
    fn fields_a_newer_gitprio_wrote_survive_a_heartbeat_and_a_release() {
        in_local_store(|store| {
            let alice = holder("alice", "/a");
            newer_record_over_claim(store, &alice, |message| {
                message.replace("\"nonce\"", "\"checkpoint\": {\"step\": 3},\n  \"nonce\"")
            });
            let kept = |oid: ObjectId| {
                let message = store.repo().commit_message(oid).unwrap();
                let body = message.split_once("\n\n").unwrap().1;
                let json: serde_json::Value = serde_json::from_str(body).unwrap();
                assert_eq!(
                    json["checkpoint"],
                    serde_json::json!({"step": 3}),
                    "{message}"
                );
            };
            let renewed = heartbeat(store, &fix_login(), &context(alice.clone()), None).unwrap();
            assert_eq!(renewed.record.event, LeaseEvent::Renew);
            kept(renewed.oid);
            let released = release(store, &fix_login(), &context(alice), None, false).unwrap();
            assert_eq!(released.lease.record.state, LeaseState::Released);
            kept(released.lease.oid);
        });
    }

    #[test]
    fn a_record_a_newer_gitprio_wrote_is_unreadable_not_unheld() {
        in_local_store(|store| {
            let alice = holder("alice", "/a");
            let oid = newer_record_over_claim(store, &alice, |message| {
                message.replace("\"event\": \"claim\"", "\"event\": \"checkpoint\"")
            });
            for error in [
                heartbeat(store, &fix_login(), &context(alice.clone()), None).unwrap_err(),
                release(store, &fix_login(), &context(alice.clone()), None, false).unwrap_err(),
                submit(store, &fix_login(), &context(alice.clone())).unwrap_err(),
            ] {
                assert!(!matches!(error, LeaseError::NotHeld { .. }), "{error}");
                assert_eq!(
                    error.to_string(),
                    format!(
                        "cannot read lease commit {oid} of `fix-login` (upgrade gitprio: a newer one may have written it)"
                    )
                );
                let source = std::error::Error::source(&error).map(ToString::to_string);
                assert!(
                    source
                        .as_deref()
                        .is_some_and(|source| source.contains("unknown variant `checkpoint`")),
                    "{source:?}"
                );
            }
            // Nothing was changed: the newer record is still the lease.
            let now = store
                .repo()
                .reference_commit(&super::super::lease_ref(&fix_login()))
                .unwrap();
            assert_eq!(now, Some(oid));
        });
    }

    #[test]
    fn a_stale_ref_lock_is_an_error_naming_it_not_a_lost_lease() {
        in_local_store(|store| {
            let alice = holder("alice", "/a");
            let claimed = claim_as(store, &alice);
            let lock = store
                .repo()
                .common_dir()
                .join("refs/gitprio/leases/fix-login.lock");
            std::fs::write(&lock, "").unwrap();
            let error = heartbeat(store, &fix_login(), &context(alice.clone()), None).unwrap_err();
            assert!(
                matches!(&error, LeaseError::Store(StoreError::Locked { lock: named, .. }) if named.ends_with("refs/gitprio/leases/fix-login.lock")),
                "{error}"
            );
            assert!(error.to_string().contains("remove"), "{error}");
            assert_eq!(store.lease(&fix_login()).unwrap().unwrap().oid, claimed.oid);
            std::fs::remove_file(&lock).unwrap();
            let renewed = heartbeat(store, &fix_login(), &context(alice.clone()), None).unwrap();
            // A lock that stays while the ref moves (a reclaim got in first) is a lost lease.
            std::fs::write(&lock, "").unwrap();
            let bob = holder("bob", "/b");
            let reclaim = LeaseRecord {
                generation: 2,
                holder: bob,
                ..renewed.record
            };
            let moved = store.write(&reclaim, Some(renewed.oid)).unwrap();
            std::fs::write(lock.with_extension(""), format!("{moved}\n")).unwrap();
            let error = heartbeat(store, &fix_login(), &context(alice), None).unwrap_err();
            assert!(matches!(error, LeaseError::Lost { .. }), "{error}");
        });
    }
}
