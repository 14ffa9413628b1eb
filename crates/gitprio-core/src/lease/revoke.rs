//! Taking a lease away from its holder by hand: one compare-and-swap from the lease's current commit.

use super::ops::{nonce, state_name};
use super::store::{CasOutcome, LeaseStore, StoreError};
use super::{Lease, LeaseContext, LeaseEvent, LeaseRecord, LeaseState};
use crate::task::TaskId;

/// Why a lease could not be revoked.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no lease on `{id}`: no agent works on it; see `gitprio status`")]
    NoLease { id: TaskId },
    #[error(
        "`{id}` is neither held by an agent nor submitted (its lease is {state}), so there is nothing to revoke"
    )]
    NotHeld { id: TaskId, state: &'static str },
    #[error(
        "the lease on `{id}` changed while it was being revoked ({detail}); look at `gitprio status` and run `gitprio revoke {id}` again"
    )]
    Raced { id: TaskId, detail: String },
}

/// What to record with a revocation.
#[derive(Clone, Debug, Default)]
pub struct Revocation<'a> {
    /// Why the lease is taken away; kept in the lease history.
    pub reason: Option<&'a str>,
    /// Park the task, so nobody reclaims it until `gitprio unpark`.
    pub park: bool,
}

/// How many heartbeats of the run being revoked a revoke outlasts before it gives up.
const RENEWALS_TO_OUTLAST: u32 = 4;

/// Takes `lease` away from its holder, as `context.holder` (the revoker).
///
/// The new record keeps the generation, so the holder's next heartbeat or `done` finds
/// the ref moved and gets "lease lost". The revoked attempt counts as failed (which
/// also moves the next attempt up a model tier). Exactly one of a revoke and a racing
/// heartbeat wins each compare-and-swap. A revoke that loses to a heartbeat of the same
/// run reads the lease again and retries on the renewed record, a few times: a busy
/// agent renews often, and the revoker asked to stop that run. Any other change (the
/// run ended, another agent holds the task) ends the revoke with [`RevokeError::Raced`].
pub fn revoke(
    store: &LeaseStore<'_>,
    lease: Option<&Lease>,
    id: &TaskId,
    context: &LeaseContext,
    revocation: &Revocation<'_>,
) -> Result<Lease, RevokeError> {
    let target = lease.ok_or_else(|| RevokeError::NoLease { id: id.clone() })?;
    let mut lease = target.clone();
    let mut renewals = 0;
    loop {
        let record = revoked_record(&lease.record, context, revocation).ok_or_else(|| {
            RevokeError::NotHeld {
                id: id.clone(),
                state: state_name(lease.record.state),
            }
        })?;
        let oid = store.write(&record, Some(lease.oid))?;
        let detail = match store.compare_and_swap(id, Some(lease.oid), Some(oid))? {
            CasOutcome::Won => {
                return Ok(Lease {
                    reference: lease.reference,
                    oid,
                    record,
                });
            }
            CasOutcome::Lost { detail } => detail,
        };
        let raced = || RevokeError::Raced {
            id: id.clone(),
            detail: detail.clone(),
        };
        if renewals == RENEWALS_TO_OUTLAST {
            return Err(raced());
        }
        renewals += 1;
        store.refresh()?;
        match store.lease(id)? {
            Some(now)
                if now.oid != lease.oid && renewed_by_the_same_run(&target.record, &now.record) =>
            {
                lease = now;
            }
            _ => return Err(raced()),
        }
    }
}

/// Whether `now` is `then`'s run, still held: the only change a revoke outlasts.
fn renewed_by_the_same_run(then: &LeaseRecord, now: &LeaseRecord) -> bool {
    now.state == LeaseState::Held
        && now.event == LeaseEvent::Renew
        && now.generation == then.generation
        && now.attempt == then.attempt
        && now.holder.agent == then.holder.agent
}

/// Returns the record that revokes `current`, or `None` when it is neither held nor
/// submitted. The revoked attempt counts as failed, like any other lost one, so it parks
/// the task at `max_attempts`: something that keeps taking a task away cannot make agents
/// retry it forever.
///
/// A submitted lease is revoked by a human whose review rejected the change: the task
/// goes back to the queue (the holder's own commands never give a submission back).
fn revoked_record(
    current: &LeaseRecord,
    context: &LeaseContext,
    revocation: &Revocation<'_>,
) -> Option<LeaseRecord> {
    if !matches!(current.state, LeaseState::Held | LeaseState::Submitted) {
        return None;
    }
    let why = revocation.reason.unwrap_or("no reason given");
    let failures = current.failures + 1;
    Some(LeaseRecord {
        state: if revocation.park || failures >= context.max_attempts {
            LeaseState::Parked
        } else {
            LeaseState::Released
        },
        event: LeaseEvent::Revoke,
        failures,
        holder: context.holder.clone(),
        reason: Some(why.to_owned()),
        last_error: Some(format!(
            "revoked from {} by {}: {why}",
            current.holder.agent, context.holder.agent
        )),
        renewed_at: context.now,
        nonce: nonce(),
        ..current.clone()
    })
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;

    use super::*;
    use crate::lease::Holder;
    use crate::lease::tests::record as held;

    fn holder(agent: &str) -> Holder {
        Holder {
            agent: agent.to_owned(),
            host: "box".to_owned(),
            pid: 1,
            worktree: None,
            branch: None,
            session: None,
            extra: std::collections::BTreeMap::new(),
        }
    }

    fn context() -> LeaseContext {
        LeaseContext {
            now: "2026-11-01T12:10:00Z".parse().unwrap(),
            ttl: SignedDuration::from_mins(30),
            skew: SignedDuration::ZERO,
            max_attempts: 3,
            holder: holder("carol"),
            failpoint: None,
        }
    }

    #[test]
    fn a_revoke_keeps_the_generation_records_who_and_why_and_counts_a_failure() {
        let revocation = Revocation {
            reason: Some("spinning"),
            park: false,
        };
        let record = revoked_record(&held(), &context(), &revocation).unwrap();
        assert_eq!(record.state, LeaseState::Released);
        assert_eq!(record.event, LeaseEvent::Revoke);
        assert_eq!((record.generation, record.attempt), (1, 1));
        assert_eq!(record.failures, 1);
        assert_eq!(record.holder.agent, "carol");
        assert_eq!(record.reason.as_deref(), Some("spinning"));
        assert_eq!(
            record.last_error.as_deref(),
            Some("revoked from alice by carol: spinning")
        );
        assert!(record.to_message().starts_with(
            "gitprio lease: revoke fix-login by carol (generation 1, attempt 1): spinning\n"
        ));
        let parked = revoked_record(
            &held(),
            &context(),
            &Revocation {
                reason: None,
                park: true,
            },
        )
        .unwrap();
        assert_eq!(parked.state, LeaseState::Parked);
    }

    #[test]
    fn a_revoke_that_reaches_max_attempts_parks_the_task() {
        let revocation = Revocation::default();
        let mut current = held();
        current.failures = 1;
        let record = revoked_record(&current, &context(), &revocation).unwrap();
        assert_eq!((record.state, record.failures), (LeaseState::Released, 2));
        current.failures = 2;
        let record = revoked_record(&current, &context(), &revocation).unwrap();
        assert_eq!((record.state, record.failures), (LeaseState::Parked, 3));
    }

    #[test]
    fn only_a_held_or_submitted_lease_can_be_revoked() {
        for state in [LeaseState::Released, LeaseState::Parked] {
            let record = LeaseRecord { state, ..held() };
            assert!(revoked_record(&record, &context(), &Revocation::default()).is_none());
        }
        let submitted = LeaseRecord {
            state: LeaseState::Submitted,
            ..held()
        };
        let reopened = revoked_record(&submitted, &context(), &Revocation::default()).unwrap();
        assert_eq!(reopened.state, LeaseState::Released);
    }

    /// A local store whose `fix-login` lease went through `records`, each on the last.
    fn store_with(
        directory: &std::path::Path,
        records: &[LeaseRecord],
    ) -> (crate::git::Repository, Vec<Lease>) {
        let repo = crate::lease::tests::repository(directory);
        let mut leases = Vec::new();
        {
            let store = LeaseStore::new(&repo, crate::lease::Mode::Local);
            let id = TaskId::new("fix-login").unwrap();
            let mut parent = None;
            for record in records {
                let oid = store.write(record, parent).unwrap();
                assert!(matches!(
                    store.compare_and_swap(&id, parent, Some(oid)).unwrap(),
                    CasOutcome::Won
                ));
                leases.push(store.lease(&id).unwrap().unwrap());
                parent = Some(oid);
            }
        }
        (repo, leases)
    }

    fn renewed() -> LeaseRecord {
        LeaseRecord {
            event: LeaseEvent::Renew,
            nonce: "n2".to_owned(),
            ..held()
        }
    }

    #[test]
    fn a_revoke_outlasts_a_heartbeat_of_the_run_it_stops() {
        let directory = tempfile::tempdir().unwrap();
        let (repo, leases) = store_with(directory.path(), &[held(), renewed()]);
        let store = LeaseStore::new(&repo, crate::lease::Mode::Local);
        let id = TaskId::new("fix-login").unwrap();
        // Read at the claim; the heartbeat landed before the swap.
        let revoked = revoke(
            &store,
            Some(&leases[0]),
            &id,
            &context(),
            &Revocation::default(),
        )
        .unwrap();
        assert_eq!(revoked.record.event, LeaseEvent::Revoke);
        assert_eq!(store.lease(&id).unwrap().unwrap().oid, revoked.oid);
        // Written on the renewal, not on the claim it was read at.
        let parent = std::process::Command::new("git")
            .arg("-C")
            .arg(directory.path())
            .args(["rev-parse", &format!("{}^", store.local_ref(&id))])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&parent.stdout).trim(),
            leases[1].oid.to_string()
        );
    }

    #[test]
    fn a_revoke_does_not_outlast_another_run() {
        let directory = tempfile::tempdir().unwrap();
        let released = LeaseRecord {
            state: LeaseState::Released,
            event: LeaseEvent::Release,
            nonce: "n2".to_owned(),
            ..held()
        };
        let reclaimed = LeaseRecord {
            event: LeaseEvent::Claim,
            attempt: 2,
            nonce: "n3".to_owned(),
            ..held()
        };
        let (repo, leases) = store_with(directory.path(), &[held(), released, reclaimed]);
        let store = LeaseStore::new(&repo, crate::lease::Mode::Local);
        let id = TaskId::new("fix-login").unwrap();
        let error = revoke(
            &store,
            Some(&leases[0]),
            &id,
            &context(),
            &Revocation::default(),
        )
        .unwrap_err();
        assert!(matches!(error, RevokeError::Raced { .. }), "{error}");
        assert_eq!(store.lease(&id).unwrap().unwrap().oid, leases[2].oid);
    }
}
