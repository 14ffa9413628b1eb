//! What a `gitprio run` killed mid-way (SIGKILL, a machine that went down) leaves held, and
//! the locks that let the next run in the clone find it.
//!
//! A run killed after its claim landed leaves that lease held by its agent, and no run to
//! renew or end it. Two locks cover the whole span, each an flock that dies with the
//! processes holding it:
//!
//! - a slot holds its agent's claim lock, `gitprio/run-claims/<agent>.json`, from before
//!   its claim until its attempt holds the live lock; the claim (a subprocess, which a kill
//!   of the run does not reach) writes its reply into that very file, and so holds the
//!   lock too until it has said what it claimed (a claim killed before its reply leaves
//!   the file empty: the next claim as that agent gets the lease back itself, see
//!   `gitprio_core::workspace::ReplyDue`);
//! - an attempt holds `gitprio/runs/<id>/<generation>/live.lock` while it works.
//!
//! The next run gives back the leases such a left, unlocked file names that are still held
//! here by one of its agents (not as a failure), so the task is claimed again at once
//! instead of waiting for its lease to expire.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs::{File, TryLockError};
use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use gitprio_core::reply::lease::{ClaimReply, ShownState, StatusLease, StatusReply};
use gitprio_core::usage::RunMeta;

use super::RunContext;
use super::agent::Group;

/// The leases as `agent` sees them, for the recovery of what a stopped run left (`what`):
/// `None`, with a warning, when `status` fails (the run goes on without that recovery).
pub fn status_of(run: &RunContext, agent: &str, what: &str) -> Option<StatusReply> {
    run.operations
        .status(agent)
        .inspect_err(|error| run.warn(&format!("cannot look for {what}: {error:#}")))
        .ok()
}

/// A file this process holds an exclusive lock on, removed (still locked) when dropped, so
/// that a process that finds it unlocked knows its holder died.
pub struct Locked {
    path: PathBuf,
    file: File,
}

impl Locked {
    fn open(path: &Path) -> anyhow::Result<File> {
        if let Some(directory) = path.parent() {
            std::fs::create_dir_all(directory)
                .with_context(|| format!("cannot create {}", directory.display()))?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("cannot create {}", path.display()))
    }

    /// Locks `path`, waiting while another process holds it (a run claiming as the same
    /// agent, or the claim a killed run left going), 10 minutes at most.
    pub fn wait(path: &Path) -> anyhow::Result<Locked> {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let file = Self::open(path)?;
            loop {
                match file.try_lock() {
                    Ok(()) => break,
                    Err(TryLockError::WouldBlock) => {}
                    Err(TryLockError::Error(error)) => {
                        return Err(error)
                            .with_context(|| format!("cannot lock {}", path.display()));
                    }
                }
                if Instant::now() > deadline {
                    bail!(
                        "waited 10 minutes for {}, locked by another gitprio run (or its claim) in this clone",
                        path.display()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            // Its holder removed it before letting go: that lock guards nothing any more.
            if file.metadata().is_ok_and(|metadata| metadata.nlink() > 0) {
                return Ok(Locked {
                    path: path.to_owned(),
                    file,
                });
            }
        }
    }

    /// Locks `path`, or says who holds it. A lock held for a moment only (another run in
    /// the clone probing it, see [`held`]) is waited for, a second at most.
    fn take(path: &Path) -> anyhow::Result<Locked> {
        let file = Self::open(path)?;
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(TryLockError::WouldBlock) => bail!(
                    "another gitprio run works on this attempt ({} is locked)",
                    path.display()
                ),
                Err(TryLockError::Error(error)) => {
                    return Err(error).with_context(|| format!("cannot lock {}", path.display()));
                }
            }
        }
        Ok(Locked {
            path: path.to_owned(),
            file,
        })
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        // Removed while still locked: a run starting now finds no lock left to judge.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether a live run works on the attempt at task `id`, generation `generation`, in
/// this clone: it holds that attempt's live lock, and owns what the attempt does.
pub fn attempt_running(run: &RunContext, id: &str, generation: u64) -> bool {
    held(
        &run.runs
            .join(id)
            .join(generation.to_string())
            .join(LiveLock::NAME),
    )
}

/// Whether a live process holds the lock on `path`.
fn held(path: &Path) -> bool {
    File::open(path).is_ok_and(|file| file.try_lock_shared().is_err())
}

/// A slot's claim lock, held from before its claim until its attempt holds the live lock
/// ([`LiveLock::take`]): see the module doc.
pub struct ClaimLock(Locked);

impl ClaimLock {
    /// `gitprio/run-claims/<agent>.json`, the agent's name escaped to a file name.
    fn path(run: &RunContext, agent: &str) -> PathBuf {
        let mut name = String::new();
        for byte in agent.bytes() {
            if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
                name.push(char::from(byte));
            } else {
                let _ = write!(name, "%{byte:02x}");
            }
        }
        run.claims.join(format!("{name}.json"))
    }

    /// Takes `agent`'s claim lock, waiting while another run in this clone claims as
    /// `agent`, empty for the reply of the claim about to run.
    pub fn take(run: &RunContext, agent: &str) -> anyhow::Result<ClaimLock> {
        let path = Self::path(run, agent);
        let locked = Locked::wait(&path)?;
        locked
            .file
            .set_len(0)
            .with_context(|| format!("cannot empty {}", path.display()))?;
        Ok(ClaimLock(locked))
    }

    /// The locked file, where the claim writes its reply: that open file is shared with
    /// the claim, and so is its lock.
    pub fn reply(&self) -> &File {
        &self.0.file
    }

    /// Takes `agent`'s claim lock as a stopped run may have left it: with the task and
    /// generation its claim landed, if it did.
    fn left(run: &RunContext, agent: &str) -> anyhow::Result<(ClaimLock, Option<(String, u64)>)> {
        let locked = Locked::wait(&Self::path(run, agent))?;
        let claimed = std::fs::read_to_string(&locked.path)
            .ok()
            .and_then(|text| serde_json::from_str::<ClaimReply>(&text).ok())
            .map(|reply| (reply.task.id.as_str().to_owned(), reply.lease.generation));
        Ok((ClaimLock(locked), claimed))
    }
}

/// The lock an attempt holds while it works, `runs/<id>/<generation>/live.lock`; it holds
/// the agent's process group once the agent started ([`LiveLock::note`]).
pub struct LiveLock {
    held: Locked,
}

impl LiveLock {
    const NAME: &str = "live.lock";

    /// Takes the lock of the attempt in `run_dir`, then lets the claim lock go: the lease
    /// the claim took is covered by one lock or the other all along.
    pub fn take(run_dir: &Path, claim: ClaimLock) -> anyhow::Result<LiveLock> {
        let live = Locked::take(&run_dir.join(Self::NAME))?;
        drop(claim);
        Ok(LiveLock { held: live })
    }

    /// Notes the agent's process group in the lock, for the next run to stop the agent if
    /// this one is killed ([`stop_left_agents`]).
    pub fn note(&self, group: &Group) {
        let mut file = &self.held.file;
        let _ = file
            .set_len(0)
            .and_then(|()| file.write_all(group.line().as_bytes()));
    }
}

/// Stops the agents the `attempts` a killed run left were running, before their tasks are
/// given back and their worktrees made anew under them: nothing supervises them any more.
fn stop_left_agents(run: &RunContext, attempts: &[(String, u64, PathBuf)]) {
    for (id, generation, lock) in attempts {
        let Some(group) = std::fs::read_to_string(lock)
            .ok()
            .and_then(|text| Group::parse(&text))
        else {
            continue;
        };
        if group.stop(run.grace) {
            run.say(&format!(
                "stopped the agent a stopped run left working on {id} (generation {generation}, process group {})",
                group.id
            ));
        }
        // Stopped, or gone already: a run after this one has nothing to judge.
        let _ = std::fs::write(lock, "");
    }
}

/// Where an attempt notes why it failed (`runs/<id>/<generation>/failed`) before it
/// releases its task as failed: a run killed in between leaves a failure, not an attempt
/// cut short, for the next run to release.
pub const FAILED_FILE: &str = "failed";

/// Why a lease is left held: what the killed run was doing.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Left {
    /// It had claimed, its attempt not started (a left claim lock).
    Claimed,
    /// Its agent was working (a left live lock).
    Working,
}

impl Left {
    /// The release's reason, as the lease records it.
    fn reason(self) -> &'static str {
        match self {
            Left::Claimed => "the gitprio run that claimed it stopped before its attempt started",
            Left::Working => "the gitprio run working on it stopped before it finished",
        }
    }

    /// What the run says it gave back.
    fn said(self) -> &'static str {
        match self {
            Left::Claimed => "the run that claimed it stopped before its attempt started",
            Left::Working => "the run working on it stopped before it finished",
        }
    }
}

/// The attempts whose live lock is left and unlocked: their run stopped (killed) without
/// finishing them. Each is `(task id, generation, the lock file)`.
fn left_attempts(runs: &Path) -> Vec<(String, u64, PathBuf)> {
    let mut left = Vec::new();
    for task in std::fs::read_dir(runs).into_iter().flatten().flatten() {
        for attempt in std::fs::read_dir(task.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let lock = attempt.path().join(LiveLock::NAME);
            let generation = attempt
                .file_name()
                .to_str()
                .and_then(|text| text.parse().ok());
            if let (true, Some(id), Some(generation)) = (
                lock.exists() && !held(&lock),
                task.file_name().to_str(),
                generation,
            ) {
                left.push((id.to_owned(), generation, lock));
            }
        }
    }
    left
}

/// Gives back the leases a run killed after its claim left held by one of `agents` here
/// (see the module doc): each is released, not failed, saying so, so that the task is
/// claimed again at once (by this run, when it is still the best ready task) instead of
/// waiting for its lease to expire.
pub fn release_left_leases(run: &RunContext, agents: &[String]) {
    // Held until the end: no run in this clone claims as one of `agents` meanwhile, so
    // every attempt of theirs that started holds its live lock already.
    let mut claims = Vec::new();
    let mut left = BTreeSet::new();
    for agent in agents {
        match ClaimLock::left(run, agent) {
            Ok((lock, claimed)) => {
                if let Some((id, generation)) = claimed {
                    left.insert((id, generation, Left::Claimed));
                }
                claims.push(lock);
            }
            Err(error) => run.warn(&format!(
                "{agent}: cannot look for a claim a stopped run left: {error:#}"
            )),
        }
    }
    let attempts = left_attempts(&run.runs);
    stop_left_agents(run, &attempts);
    let mut locks = Vec::new();
    for (id, generation, lock) in attempts {
        left.insert((id.clone(), generation, Left::Working));
        locks.push(((id, generation), lock));
    }
    let Some(first) = agents.first() else {
        return;
    };
    if left.is_empty() {
        return;
    }
    let Some(status) = status_of(run, first, "leases a stopped run left held") else {
        return;
    };
    let mut given_back = BTreeSet::new();
    for (id, generation, why) in left {
        let live = run
            .runs
            .join(&id)
            .join(generation.to_string())
            .join(LiveLock::NAME);
        // A `done` the stopped run started still works on it: it renews the lease and submits.
        let done = live.with_file_name(gitprio_core::workspace::DONE_LOCK);
        if given_back.contains(&(id.clone(), generation)) || held(&live) || held(&done) {
            continue;
        }
        let lease = status.leases.iter().find(|entry| {
            entry.task.as_str() == id
                && entry.lease.generation == generation
                && entry.lease.state == ShownState::Held
        });
        let Some(entry) = lease else {
            // Ended, or moved on: nothing left to judge.
            given_back.insert((id, generation));
            continue;
        };
        let holder = entry.lease.holder.agent.as_str();
        if !entry.mine || !agents.iter().any(|agent| agent == holder) {
            // Another agent's: a run as that agent gives it back.
            continue;
        }
        let released = give_back(run, entry, why, &live);
        match released {
            Ok(said) => run.say(&said),
            Err(error) => {
                run.warn(&format!(
                    "{holder}: {id} is still held by a run that stopped, and giving it back failed: {error:#}"
                ));
                continue;
            }
        }
        given_back.insert((id, generation));
    }
    for (attempt, lock) in locks {
        if given_back.contains(&attempt) {
            let _ = std::fs::remove_file(&lock);
        }
    }
}

/// Gives back the lease `entry` a killed run left held (`why`, its attempt's live lock at
/// `live`): first the usage its agent left is recorded, then the task released as failed
/// when the attempt noted a failure ([`FAILED_FILE`]), else without a failure. Returns what
/// to say.
fn give_back(
    run: &RunContext,
    entry: &StatusLease,
    why: Left,
    live: &Path,
) -> anyhow::Result<String> {
    let (id, generation) = (entry.task.as_str(), entry.lease.generation);
    let holder = entry.lease.holder.agent.as_str();
    if why == Left::Working {
        let run_id = RunMeta::run_id(generation, entry.lease.acquired_at);
        let run_dir = live.parent().unwrap_or(&run.runs);
        super::attempt::record_left_usage(run, holder, id, run_dir, &run_id);
    }
    let failure = std::fs::read_to_string(live.with_file_name(FAILED_FILE))
        .ok()
        .filter(|reason| !reason.trim().is_empty());
    if let Some(reason) = &failure {
        let runaway = entry
            .lease
            .last_error
            .as_deref()
            .is_some_and(|last| super::attempt::same_error(last, reason));
        let parked = run.operations.release(holder, id, reason, true, runaway)?;
        return Ok(format!(
            "{holder}: {id} (generation {generation}) failed: {reason}; the run that worked on it stopped before it said so{}",
            if parked { ", and it is parked" } else { "" }
        ));
    }
    run.operations
        .release(holder, id, why.reason(), false, false)?;
    Ok(format!(
        "{holder}: released {id} (generation {generation}): {}; it can be claimed again now",
        why.said()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Another run in the clone probing the live lock (a shared lock for a moment) does
    /// not make the attempt taking it fail (review11 item 12).
    #[test]
    fn a_live_lock_is_taken_while_another_run_probes_it() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join(LiveLock::NAME);
        let probe = Locked::open(&path).unwrap();
        probe.try_lock_shared().unwrap();
        let prober = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(probe);
        });
        let taken = Locked::take(&path);
        prober.join().unwrap();
        assert!(taken.is_ok(), "{:#}", taken.err().unwrap());
    }
}
