//! The runs of the usage ledger as every report reads them (`report`, its `OpenMetrics`,
//! `top`, the Action's summary, `usage show`): each with the end its lease tells when the
//! ledger holds none, so that a run is in flight by one rule everywhere.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};

use crate::lease::{BadLease, Lease, LeaseEvent, LeaseRecord, LeaseState, StoreError};
use crate::source::LoadedQueue;
use crate::task::TaskId;
use crate::usage::{Ledger, Outcome, Run};

use super::{Workspace, WorkspaceError, load_tasks, run_meta};

/// The leases and the ledger's runs, read together as last fetched.
#[derive(Debug)]
pub struct SettledRuns {
    /// Every readable lease, by task.
    pub leases: BTreeMap<TaskId, Lease>,
    /// Every run of the ledger. One without an outcome is in flight ([`in_flight`]); every
    /// other run has ended.
    pub runs: Vec<Run>,
    /// The lease refs this gitprio cannot read (a newer one may have written them): named
    /// in a warning by [`Workspace::settled_runs`]; their tasks' runs stay open.
    pub unreadable: Vec<BadLease>,
}

impl SettledRuns {
    /// Adds, for each attempt in flight ([`in_flight`] at `now` with the `skew`
    /// allowance) that the ledger holds no run of yet, that run with no usage: an agent
    /// that has claimed a task and not recorded a token is at work all the same, and a
    /// manager counts it (and the retry it may be) before its first usage arrives. Each
    /// is described as the ledger would file it, with the task's facts from `queue`.
    #[must_use]
    pub fn with_unrecorded_attempts(
        mut self,
        queue: &LoadedQueue,
        now: Timestamp,
        skew: SignedDuration,
    ) -> SettledRuns {
        let unrecorded: Vec<Run> = unrecorded_attempts(
            &self.runs,
            self.leases.values().map(|lease| &lease.record),
            now,
            skew,
        )
        .into_iter()
        .map(|record| unrecorded_run(record, queue))
        .collect();
        self.runs.extend(unrecorded);
        // Stable, and the ledger lists its runs by task already: each task's runs stay in order.
        self.runs
            .sort_by(|left, right| left.meta.task.cmp(&right.meta.task));
        self
    }
}

/// Returns the lease `records` whose attempt is [`in_flight`] and has no run in `runs` yet.
fn unrecorded_attempts<'lease>(
    runs: &[Run],
    records: impl Iterator<Item = &'lease LeaseRecord>,
    now: Timestamp,
    skew: SignedDuration,
) -> Vec<&'lease LeaseRecord> {
    let recorded: BTreeSet<(&TaskId, u64)> = runs
        .iter()
        .map(|run| (&run.meta.task, run.meta.generation))
        .collect();
    records
        .filter(|record| {
            in_flight(record, now, skew) && !recorded.contains(&(&record.task, record.generation))
        })
        .collect()
}

/// The run of the attempt of lease `record` with no usage yet, as the ledger would file it.
fn unrecorded_run(record: &LeaseRecord, queue: &LoadedQueue) -> Run {
    let task = queue.tasks.iter().find(|task| task.id == record.task);
    Run {
        meta: run_meta(record, task, &queue.config, None),
        records: Vec::new(),
    }
}

impl Workspace<'_> {
    /// Reads the leases and every run of the ledger, as last fetched, and gives each run
    /// the ledger holds no outcome for the end its lease tells (see [`settle_open_runs`]);
    /// a lease it cannot read is named in a warning.
    pub fn settled_runs(&self) -> Result<SettledRuns, WorkspaceError> {
        let (leases, unreadable) = self.store.leases()?;
        let mut runs = Ledger::new(&self.store).all_runs()?;
        self.settle(&mut runs, &leases, &unreadable);
        // Not left out silently: such a lease may be live.
        super::queue::warn_unreadable(&unreadable, self.notices);
        Ok(SettledRuns {
            leases,
            runs,
            unreadable,
        })
    }

    /// Brings the usage ledger and the lease of task `id` from the remote in one fetch
    /// (`refs/gitprio/*/<id>`: a glob, so that either may be missing there, and a mirror
    /// of one deleted there is pruned here); nothing in local mode.
    pub fn fetch_runs_of(&self, id: &TaskId) -> Result<(), WorkspaceError> {
        Ok(self.store.fetch(&format!("refs/gitprio/*/{id}"))?)
    }

    /// Reads the runs of task `id` and its lease, as last fetched, settled as
    /// [`Workspace::settled_runs`] settles them, with the attempt in flight that has
    /// recorded no usage yet (see [`SettledRuns::with_unrecorded_attempts`]).
    pub fn settled_runs_of(&self, id: &TaskId) -> Result<Vec<Run>, WorkspaceError> {
        let mut runs = Ledger::new(&self.store).runs(id)?;
        let (lease, unknown) = match self.store.lease(id) {
            Ok(lease) => (lease, BTreeSet::new()),
            Err(StoreError::Unreadable { .. }) => (None, BTreeSet::from([id.clone()])),
            Err(error) => return Err(error.into()),
        };
        settle_open_runs(
            &mut runs,
            |task| {
                lease
                    .as_ref()
                    .filter(|_| task == id)
                    .map(|lease| &lease.record)
            },
            &unknown,
            self.invocation.now,
            self.skew(),
        );
        let record = lease.as_ref().map(|lease| &lease.record);
        if let [unrecorded] =
            unrecorded_attempts(&runs, record.into_iter(), self.invocation.now, self.skew())[..]
        {
            let queue = load_tasks(self.repo, &self.queue_source(), self.notices)?;
            runs.push(unrecorded_run(unrecorded, &queue));
        }
        Ok(runs)
    }

    fn settle(&self, runs: &mut [Run], leases: &BTreeMap<TaskId, Lease>, unreadable: &[BadLease]) {
        let unknown: BTreeSet<TaskId> = unreadable
            .iter()
            .filter_map(|lease| lease.reference.rsplit('/').next().and_then(TaskId::new))
            .collect();
        settle_open_runs(
            runs,
            |task| leases.get(task).map(|lease| &lease.record),
            &unknown,
            self.invocation.now,
            self.skew(),
        );
    }
}

/// Returns whether the attempt of lease `record` is still going at `now`: held, and not
/// past its expiry with the `skew` allowance (the moment another agent may reclaim it).
pub fn in_flight(record: &LeaseRecord, now: Timestamp, skew: SignedDuration) -> bool {
    record.state == LeaseState::Held && !record.is_expired(now, skew)
}

/// Returns when lease `record` expired (its `expires_at`), once it has by the rule a claim
/// judges it by: held, and `now` past `expires_at` with the `skew` allowance, so that any
/// agent may reclaim it. `None` while it is [`in_flight`], and for a lease not held.
pub fn expired_at(record: &LeaseRecord, now: Timestamp, skew: SignedDuration) -> Option<Timestamp> {
    (record.state == LeaseState::Held && !in_flight(record, now, skew)).then_some(record.expires_at)
}

/// Gives each run the ledger holds no outcome for the end its lease tells (`lease_of` a
/// task, as last read): a run is in flight only while its lease (the same generation) is
/// [`in_flight`].
///
/// A run whose lease expired (then it ended when the lease expired), was taken over by a
/// later generation, or is gone, is `expired`; one whose lease was given back, failed,
/// parked or submitted without the ledger hearing of it (a write still kept on the
/// holder's machine) takes that outcome. Runs with an outcome are left as they are, and
/// so are the runs of tasks in `unknown` (their lease cannot be read: nobody may claim
/// them either).
pub fn settle_open_runs<'lease>(
    runs: &mut [Run],
    lease_of: impl Fn(&TaskId) -> Option<&'lease LeaseRecord>,
    unknown: &BTreeSet<TaskId>,
    now: Timestamp,
    skew: SignedDuration,
) {
    for run in runs.iter_mut().filter(|run| run.meta.outcome.is_none()) {
        let meta = &mut run.meta;
        if unknown.contains(&meta.task) {
            continue;
        }
        let Some(lease) = lease_of(&meta.task) else {
            meta.outcome = Some(Outcome::Expired);
            continue;
        };
        if lease.generation > meta.generation {
            meta.outcome = Some(Outcome::Expired);
            continue;
        }
        if lease.generation < meta.generation || in_flight(lease, now, skew) {
            continue;
        }
        meta.outcome = Some(match lease.state {
            LeaseState::Held => {
                meta.ended_at = Some(lease.expires_at);
                Outcome::Expired
            }
            // A revoke counts the attempt as failed, as `gitprio revoke` records it.
            LeaseState::Released
                if matches!(lease.event, LeaseEvent::Fail | LeaseEvent::Revoke) =>
            {
                Outcome::Failed
            }
            LeaseState::Released => Outcome::Released,
            LeaseState::Submitted => Outcome::Completed,
            LeaseState::Parked => Outcome::Parked,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::tests::record;
    use crate::usage::RunMeta;
    use crate::usage::ledger::tests::run_meta;

    /// A run of `fix-login` (the lease fixture's task) of `generation`, with no outcome.
    fn open_run(generation: u64) -> Run {
        Run {
            meta: RunMeta {
                task: record().task,
                generation,
                ..run_meta(record().acquired_at)
            },
            records: Vec::new(),
        }
    }

    /// The outcome and end of a generation-1 run settled against `lease` at `now`, with a
    /// minute of clock skew.
    fn settled(lease: Option<&LeaseRecord>, now: &str) -> (Option<Outcome>, Option<Timestamp>) {
        let mut runs = [open_run(1)];
        settle_open_runs(
            &mut runs,
            |task| lease.filter(|lease| lease.task == *task),
            &BTreeSet::new(),
            now.parse().unwrap(),
            SignedDuration::from_mins(1),
        );
        (runs[0].meta.outcome, runs[0].meta.ended_at)
    }

    #[test]
    fn a_held_lease_is_in_flight_until_it_expires_with_the_skew_allowance() {
        // The fixture's lease expires at 12:30.
        assert_eq!(
            settled(Some(&record()), "2026-11-01T12:29:00Z"),
            (None, None)
        );
        assert_eq!(
            settled(Some(&record()), "2026-11-01T12:31:00Z"),
            (None, None)
        );
        assert_eq!(
            settled(Some(&record()), "2026-11-01T12:31:01Z"),
            (
                Some(Outcome::Expired),
                Some("2026-11-01T12:30:00Z".parse().unwrap())
            )
        );
    }

    #[test]
    fn a_run_whose_lease_is_gone_or_taken_over_expired() {
        let now = "2026-11-01T12:10:00Z";
        assert_eq!(settled(None, now), (Some(Outcome::Expired), None));
        let taken = LeaseRecord {
            generation: 2,
            ..record()
        };
        assert_eq!(settled(Some(&taken), now), (Some(Outcome::Expired), None));
    }

    #[test]
    fn a_lease_that_ended_gives_the_run_its_end() {
        let now = "2026-11-01T12:10:00Z";
        for (state, event, outcome) in [
            (
                LeaseState::Submitted,
                LeaseEvent::Submit,
                Outcome::Completed,
            ),
            (LeaseState::Released, LeaseEvent::Release, Outcome::Released),
            (LeaseState::Released, LeaseEvent::Fail, Outcome::Failed),
            (LeaseState::Released, LeaseEvent::Revoke, Outcome::Failed),
            (LeaseState::Parked, LeaseEvent::Park, Outcome::Parked),
        ] {
            let ended = LeaseRecord {
                state,
                event,
                ..record()
            };
            assert_eq!(settled(Some(&ended), now).0, Some(outcome), "{state:?}");
        }
    }

    #[test]
    fn runs_with_an_outcome_a_later_generation_or_an_unreadable_lease_stay() {
        let now = "2026-11-01T13:00:00Z";
        let mut runs = [open_run(1), open_run(3)];
        runs[0].meta.outcome = Some(Outcome::Completed);
        let leases = BTreeMap::from([(record().task.clone(), record())]);
        settle_open_runs(
            &mut runs,
            |task| leases.get(task),
            &BTreeSet::new(),
            now.parse().unwrap(),
            SignedDuration::ZERO,
        );
        assert_eq!(runs[0].meta.outcome, Some(Outcome::Completed));
        assert_eq!(runs[1].meta.outcome, None, "a lease not yet fetched");
        let mut unread = [open_run(1)];
        let unknown = BTreeSet::from([record().task.clone()]);
        settle_open_runs(
            &mut unread,
            |_| None,
            &unknown,
            now.parse().unwrap(),
            SignedDuration::ZERO,
        );
        assert_eq!(unread[0].meta.outcome, None);
    }
}
