//! Leases: which agent works on which task, recorded as git refs and moved only by compare-and-swap.
//!
//! A lease is the ref `refs/gitprio/leases/<task-id>`. It points at a commit whose
//! message records one state change ([`LeaseRecord`]); each commit's parent is the
//! previous state, so the ref's history is the task's execution history, readable
//! with `git log`. Every state change is one compare-and-swap of that ref: a push
//! with `--force-with-lease` to the remote, or `git update-ref` with the old value
//! in local mode. See `docs/leases.md` for the guarantees.

mod cache;
mod local_write;
mod ops;
mod overlap;
mod revoke;
pub mod spread;
mod store;

use std::collections::BTreeMap;

use gix::ObjectId;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::queue::{Blocker, Holds};
use crate::task::TaskId;
use crate::usage::money;

use local_write::local_write_failure;
pub use ops::{
    ClaimFilter, ClaimOutcome, Claimed, Collected, GcView, HeldLease, Kept, LeaseContext,
    LeaseError, MAX_CLAIM_TRIES, ParkedExpired, Released, active_agents, claim, claim_avoiding, gc,
    has_unsettled_claim, heartbeat, note_context_size, release, release_parked, reopen, state_name,
    submit, submit_noting, unpark,
};
pub(crate) use ops::{holder_key, random_u64};
pub use overlap::{overlapping_ready, owns_overlap};
pub use revoke::{Revocation, RevokeError, revoke};
pub use store::{BadLease, CasOutcome, LeaseStore, Mode, StoreError, UPGRADE};

/// The ref namespace of leases, in the remote and in local mode.
pub const LEASE_PREFIX: &str = "refs/gitprio/leases/";

/// Returns the lease ref of task `id`.
pub fn lease_ref(id: &TaskId) -> String {
    format!("{LEASE_PREFIX}{id}")
}

/// Where a lease stands after its latest state change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeaseState {
    /// An agent works on the task until `expires_at`, unless it renews.
    Held,
    /// The task was given back; anyone may claim it.
    Released,
    /// The work was submitted (`gitprio done`); nobody reclaims it while its change lands.
    Submitted,
    /// Failed attempts reached the limit; a human has to look (`gitprio unpark`).
    Parked,
}

/// The state change a lease commit records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseEvent {
    Claim,
    Renew,
    /// A claim over an expired lease; the old attempt counts as failed.
    Reclaim,
    Release,
    Fail,
    Submit,
    Park,
    Unpark,
    /// Taken away from its holder by hand (`gitprio revoke`); the holder is the revoker.
    Revoke,
}

/// Who holds (or last held) a lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Holder {
    /// The agent's name: `--agent`, `GITPRIO_AGENT`, else `user@host:<worktree>`.
    pub agent: String,
    pub host: String,
    pub pid: u32,
    /// The worktree the agent works in.
    #[serde(default)]
    pub worktree: Option<String>,
    /// The branch checked out there.
    #[serde(default)]
    pub branch: Option<String>,
    /// The agent runner's session id, when known.
    #[serde(default)]
    pub session: Option<String>,
    /// Fields of the holder a newer gitprio wrote that this one does not know, kept as
    /// they were while the record keeps this holder (see [`LeaseRecord::extra`]); a new
    /// holder (a claim, a revoke) starts without them: they described the one before.
    /// Not part of any reply: a reply says what this gitprio knows.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(skip)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// What a holder reported of its attempt with a heartbeat: its spend so far, cumulative.
///
/// It rides on the renewal that happens anyway, so the cockpit sees a running agent's
/// spend before the attempt ends and its usage reaches the ledger.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Progress {
    /// Tokens spent so far in this attempt.
    pub tokens: u64,
    /// Estimated dollars spent so far, rounded to a millionth, when the holder could price
    /// its tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(serialize_with = "money::serialize_option")]
    pub cost_usd: Option<f64>,
    /// When the holder reported it: later heartbeats without news keep it as it was.
    #[schemars(with = "String")]
    pub at: Timestamp,
    /// Fields of the report a newer gitprio wrote that this one does not know, kept while
    /// the record keeps this report; a new report replaces them with the rest of it.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(skip)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// The content of one lease commit: the whole state after one change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub task: TaskId,
    pub state: LeaseState,
    pub event: LeaseEvent,
    /// The fencing token: grows by one with every new holder, never reused for this ref.
    pub generation: u64,
    /// Claims of this task so far, this one included.
    pub attempt: u32,
    /// Attempts that failed (released with `--failed`, or expired without a heartbeat).
    pub failures: u32,
    pub holder: Holder,
    /// The blob id of the task file when it was claimed: an edit since shows.
    pub task_blob: Option<String>,
    /// The queue commit the task was claimed from.
    pub base_commit: Option<String>,
    pub acquired_at: Timestamp,
    pub renewed_at: Timestamp,
    pub expires_at: Timestamp,
    pub ttl_seconds: u64,
    /// Why the lease was released or the attempt failed.
    #[serde(default)]
    pub reason: Option<String>,
    /// The last failure's reason, kept across attempts.
    #[serde(default)]
    pub last_error: Option<String>,
    /// What the holder last said it spent on this attempt, carried by a heartbeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// Makes every lease commit unique: git treats pushing an existing object as success.
    pub nonce: String,
    /// The fields a newer gitprio wrote that this one does not know, kept as they were:
    /// a change of the record (`..record`) writes them back instead of dropping them.
    /// The record is JSON in a commit message that gitprio alone writes, so `flatten`
    /// costs no user a worse error message.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// A lease commit as read from a ref.
#[derive(Clone, Debug, PartialEq)]
pub struct Lease {
    pub reference: String,
    pub oid: ObjectId,
    pub record: LeaseRecord,
}

/// Why a lease commit could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("commit message has no gitprio lease record")]
    NotALease,
    /// The parser's message is the detail, not a source: a source would be printed again.
    #[error("lease record is corrupt: {detail}")]
    Corrupt { detail: String },
    /// Well-formed JSON this gitprio cannot take as a record (an event, a state or a
    /// field type it does not know): likely a newer gitprio's, so maybe a live lease.
    #[error("lease record is in a form this gitprio does not know: {detail}")]
    Unknown { detail: String },
}

impl RecordError {
    /// Whether a newer gitprio may have written the record: then the lease may be live,
    /// and the fix is to upgrade, never to delete it.
    pub fn from_newer_gitprio(&self) -> bool {
        matches!(self, RecordError::Unknown { .. })
    }
}

const SUBJECT_PREFIX: &str = "gitprio lease: ";

impl LeaseRecord {
    /// Returns the commit message recording this state: a readable subject, then the record as JSON.
    pub fn to_message(&self) -> String {
        let mut subject = format!(
            "{SUBJECT_PREFIX}{} {} by {} (generation {}, attempt {})",
            event_name(self.event),
            self.task,
            self.holder.agent,
            self.generation,
            self.attempt
        );
        if let Some(reason) = &self.reason {
            subject.push_str(": ");
            subject.push_str(reason.lines().next().unwrap_or_default());
        }
        let body = serde_json::to_string_pretty(self).expect("a lease record always serializes");
        format!("{subject}\n\n{body}\n")
    }

    /// Parses a commit message written by [`LeaseRecord::to_message`].
    pub fn from_message(message: &str) -> Result<LeaseRecord, RecordError> {
        if !message.starts_with(SUBJECT_PREFIX) {
            return Err(RecordError::NotALease);
        }
        let (_, body) = message.split_once("\n\n").ok_or(RecordError::NotALease)?;
        serde_json::from_str(body).map_err(|error| {
            let detail = error.to_string();
            // JSON that parses but does not fit is what a newer record looks like;
            // broken JSON no gitprio wrote.
            match serde_json::from_str::<serde_json::Value>(body) {
                Ok(serde_json::Value::Object(_)) => RecordError::Unknown { detail },
                _ => RecordError::Corrupt { detail },
            }
        })
    }

    /// Returns whether the holder's time ran out, judged at `now` with `skew` allowed for clocks.
    ///
    /// Only a held lease expires. The holder's clock set `expires_at`; another machine's
    /// clock may run ahead, so it waits `skew` longer before reclaiming.
    pub fn is_expired(&self, now: Timestamp, skew: SignedDuration) -> bool {
        self.state == LeaseState::Held
            && now
                > self
                    .expires_at
                    .saturating_add(skew)
                    .unwrap_or(self.expires_at)
    }
}

fn event_name(event: LeaseEvent) -> &'static str {
    match event {
        LeaseEvent::Claim => "claim",
        LeaseEvent::Renew => "renew",
        LeaseEvent::Reclaim => "reclaim",
        LeaseEvent::Release => "release",
        LeaseEvent::Fail => "fail",
        LeaseEvent::Submit => "submit",
        LeaseEvent::Park => "park",
        LeaseEvent::Unpark => "unpark",
        LeaseEvent::Revoke => "revoke",
    }
}

/// Returns the blockers that leases put on tasks at `now`: live holds, submissions, parking.
pub fn holds(leases: &BTreeMap<TaskId, Lease>, now: Timestamp, skew: SignedDuration) -> Holds {
    let mut holds = Holds::new();
    for (id, lease) in leases {
        let record = &lease.record;
        let blocker = match record.state {
            LeaseState::Held if !record.is_expired(now, skew) => Blocker::Leased {
                holder: record.holder.agent.clone(),
                expires_at: record.expires_at.to_string(),
            },
            LeaseState::Submitted => Blocker::Submitted {
                holder: record.holder.agent.clone(),
                at: record.renewed_at.to_string(),
            },
            LeaseState::Parked => Blocker::Parked {
                attempts: record.failures,
                last_error: record.last_error.clone(),
            },
            LeaseState::Held | LeaseState::Released => continue,
        };
        holds.insert(id.clone(), vec![blocker]);
    }
    holds
}

/// Parses a duration written as `30m`, `90s`, `2h`, `1h30m` or a number of seconds.
pub fn parse_duration(text: &str) -> Option<SignedDuration> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<i64>() {
        return (seconds >= 0).then(|| SignedDuration::from_secs(seconds));
    }
    let mut total: i64 = 0;
    let mut digits = String::new();
    for character in text.chars() {
        if character.is_ascii_digit() {
            digits.push(character);
            continue;
        }
        let unit = match character {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        let value: i64 = digits.parse().ok()?;
        digits.clear();
        total = total.checked_add(value.checked_mul(unit)?)?;
    }
    digits.is_empty().then(|| SignedDuration::from_secs(total))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Creates an empty git repository in `directory`.
    pub(super) fn repository(directory: &std::path::Path) -> crate::git::Repository {
        let status = std::process::Command::new("git")
            .args(["init", "--quiet"])
            .arg(directory)
            .status()
            .unwrap();
        assert!(status.success());
        crate::git::Repository::discover(directory).unwrap()
    }

    /// A held lease record of `fix-login` by alice, generation 1: the fixture of the lease
    /// and reply tests.
    pub(crate) fn record() -> LeaseRecord {
        let at: Timestamp = "2026-11-01T12:00:00Z".parse().unwrap();
        LeaseRecord {
            task: TaskId::new("fix-login").unwrap(),
            state: LeaseState::Held,
            event: LeaseEvent::Claim,
            generation: 1,
            attempt: 1,
            failures: 0,
            holder: Holder {
                agent: "alice".to_owned(),
                host: "box".to_owned(),
                pid: 7,
                worktree: Some("/work".to_owned()),
                branch: Some("main".to_owned()),
                session: None,
                extra: BTreeMap::new(),
            },
            task_blob: None,
            base_commit: None,
            acquired_at: at,
            renewed_at: at,
            expires_at: at.checked_add(SignedDuration::from_mins(30)).unwrap(),
            ttl_seconds: 1800,
            reason: None,
            last_error: None,
            progress: None,
            nonce: "n1".to_owned(),
            extra: BTreeMap::new(),
        }
    }

    #[test]
    fn a_record_round_trips_through_its_commit_message() {
        let record = record();
        let message = record.to_message();
        assert!(
            message.starts_with(
                "gitprio lease: claim fix-login by alice (generation 1, attempt 1)\n\n"
            )
        );
        assert_eq!(LeaseRecord::from_message(&message).unwrap(), record);
        assert!(matches!(
            LeaseRecord::from_message("Merge branch 'x'\n\nbody"),
            Err(RecordError::NotALease)
        ));
        let corrupt = LeaseRecord::from_message("gitprio lease: claim\n\n{not json").unwrap_err();
        assert!(matches!(corrupt, RecordError::Corrupt { .. }));
        assert!(std::error::Error::source(&corrupt).is_none());
        assert!(!corrupt.from_newer_gitprio());
        let newer = record
            .to_message()
            .replace("\"event\": \"claim\"", "\"event\": \"checkpoint\"");
        let newer = LeaseRecord::from_message(&newer).unwrap_err();
        assert!(newer.from_newer_gitprio(), "{newer}");
        assert_eq!(
            corrupt.to_string(),
            "lease record is corrupt: key must be a string at line 1 column 2"
        );
    }

    #[test]
    fn progress_round_trips_and_records_without_it_still_parse() {
        let mut record = record();
        let message = record.to_message();
        assert!(!message.contains("progress"), "{message}");
        assert_eq!(LeaseRecord::from_message(&message).unwrap().progress, None);
        record.event = LeaseEvent::Renew;
        record.progress = Some(Progress {
            tokens: 12_345,
            cost_usd: Some(0.25),
            at: record.renewed_at,
            extra: BTreeMap::new(),
        });
        let message = record.to_message();
        assert_eq!(LeaseRecord::from_message(&message).unwrap(), record);
        record.progress = Some(Progress {
            tokens: 7,
            cost_usd: None,
            at: record.renewed_at,
            extra: BTreeMap::new(),
        });
        assert_eq!(
            LeaseRecord::from_message(&record.to_message()).unwrap(),
            record
        );
        let newer = message.replace("\"nonce\"", "\"checkpoint\": {\"step\": 3},\n  \"nonce\"");
        assert_ne!(newer, message);
        let read = LeaseRecord::from_message(&newer).unwrap();
        assert_eq!(
            read.progress,
            Some(Progress {
                tokens: 12_345,
                cost_usd: Some(0.25),
                at: record.renewed_at,
                extra: BTreeMap::new(),
            })
        );
        // A newer gitprio's field is written back as it was.
        assert_eq!(
            read.extra,
            BTreeMap::from([("checkpoint".to_owned(), serde_json::json!({"step": 3}))])
        );
        let again = LeaseRecord::from_message(&read.to_message()).unwrap();
        assert_eq!(again, read);
    }

    #[test]
    fn expiry_allows_for_clock_skew() {
        let record = record();
        let skew = SignedDuration::from_mins(1);
        let at = |text: &str| text.parse::<Timestamp>().unwrap();
        assert!(!record.is_expired(at("2026-11-01T12:30:30Z"), skew));
        assert!(record.is_expired(at("2026-11-01T12:31:01Z"), skew));
        let mut released = record;
        released.state = LeaseState::Released;
        assert!(!released.is_expired(at("2027-01-01T00:00:00Z"), skew));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m"), Some(SignedDuration::from_mins(30)));
        assert_eq!(parse_duration("1h30m"), Some(SignedDuration::from_mins(90)));
        assert_eq!(parse_duration("45"), Some(SignedDuration::from_secs(45)));
        assert_eq!(parse_duration("10x"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("5m3"), None);
    }
}
