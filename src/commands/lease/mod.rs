//! The lease commands (`claim`, `heartbeat`, `release`, `done`, `status`, `unpark`, `gc`), one
//! file each, and what they share with the other front ends: where leases live, the lease
//! context of this process, and which task a command without an id is about.

mod acceptance;
pub mod claim;
mod claiming;
pub mod done;
pub mod gc;
pub mod heartbeat;
pub mod release;
pub mod status;
pub mod unpark;

pub use acceptance::{acceptance_commands, run_acceptance, tail, unplanned};
pub use claiming::{ClaimResult, ClaimedTask, claim_next, claim_next_avoiding};
pub use done::{bounded_summary, completion_note, finish_noting};
pub use heartbeat::renew;
pub use release::{GiveBack, give_back};

use std::collections::BTreeMap;

use anyhow::{anyhow, bail};
use clap::Args;
use gitprio_core::git::Repository;
use gitprio_core::lease::{
    self as core_lease, BadLease, ClaimFilter, HeldLease, Lease, LeaseContext, LeaseState,
    LeaseStore, Mode, Progress, parse_duration,
};
use gitprio_core::queue::{Blocker, Holds};
use gitprio_core::source::{self};
use gitprio_core::usage::Ledger;
use gitprio_core::{Config, TaskId};
use serde_json::json;

use crate::output;
use crate::settings::Settings;

/// Where leases are kept and how to reach them.
#[derive(Debug, Default, Args)]
pub struct StoreArgs {
    /// Keep leases in this repository's refs (shared by its worktrees) instead of the remote.
    #[arg(long)]
    pub local: bool,
}

/// Who claims and which ready tasks it takes: `claim` and `mcp` share these options.
#[derive(Debug, Args)]
pub struct Claimer {
    /// This agent's name, written on every lease it takes (default: `GITPRIO_AGENT`, else
    /// `user@host:<worktree>`).
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,
    /// How long a lease lives without a heartbeat (default: `lease_ttl` of the config, `30m`).
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Only take tasks of this type.
    #[arg(long = "type", value_name = "TYPE")]
    pub task_type: Option<String>,
    /// Only take tasks of this feature.
    #[arg(long, value_name = "FEATURE")]
    pub feature: Option<String>,
    /// Only take tasks routed to this model tier (their `model`), or routed nowhere.
    #[arg(long, value_name = "TIER")]
    pub tier: Option<String>,
}

impl Claimer {
    /// The tasks these options let an agent claim.
    pub fn filter(&self) -> ClaimFilter {
        ClaimFilter {
            task_type: self.task_type.clone(),
            feature: self.feature.clone(),
            tier: self.tier.clone(),
        }
    }
}

/// Parses a non-negative amount of dollars.
fn dollars(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|amount| is_dollars(*amount))
        .ok_or_else(|| format!("`{text}` is not an amount of dollars like `0.42`"))
}

/// Returns whether `amount` can be an amount of dollars spent: finite and not negative.
fn is_dollars(amount: f64) -> bool {
    amount.is_finite() && amount >= 0.0
}

/// Returns the progress a holder reports with a heartbeat, the same for the CLI's `--tokens`
/// and `--cost-usd` as for the MCP tool's `tokens` and `cost_usd`: none without tokens, since a
/// renewal without news keeps the last report.
pub fn progress(
    settings: &Settings,
    tokens: Option<u64>,
    cost_usd: Option<f64>,
) -> anyhow::Result<Option<Progress>> {
    if let Some(amount) = cost_usd
        && !is_dollars(amount)
    {
        bail!(
            "the cost `{amount}` is not an amount of dollars like `0.42`: it must be finite and not negative"
        );
    }
    match tokens {
        Some(tokens) => Ok(Some(Progress {
            tokens,
            cost_usd,
            at: settings.now,
        })),
        None if cost_usd.is_some() => {
            bail!("a cost needs the tokens it was spent on: report the tokens too")
        }
        None => Ok(None),
    }
}

/// The variable naming the queue's branch, over the config's `branch:`: `gitprio run` sets it
/// for the gitprio commands it runs in a task's worktree, which is on `gitprio/<id>`.
pub const BRANCH_VARIABLE: &str = "GITPRIO_BRANCH";

/// Chooses where leases live: the configured (or `origin`) remote when it exists, else local refs.
pub fn store_mode(repo: &Repository, config: &Config, local: bool) -> anyhow::Result<Mode> {
    if local {
        return Ok(Mode::Local);
    }
    let remote = match &config.remote {
        Some(remote) if repo.has_remote(remote) => remote.clone(),
        // Named on purpose while the clone has other remotes: most likely a misspelt name,
        // which must not quietly make the leases local, where no other machine sees them.
        Some(remote) if !repo.remote_names().is_empty() => bail!(
            "{} sets `remote: {remote}`, but this repository has no remote of that name (its remotes: {}); correct the name, or pass `--local` to keep the leases in this clone",
            gitprio_core::CONFIG_PATH,
            repo.remote_names().join(", ")
        ),
        None if repo.has_remote("origin") => "origin".to_owned(),
        // No remote at all: the leases live in this clone's refs.
        Some(_) | None => return Ok(Mode::Local),
    };
    let branch = std::env::var(BRANCH_VARIABLE)
        .ok()
        .filter(|branch| !branch.trim().is_empty())
        .or_else(|| config.branch.clone())
        .unwrap_or_else(|| default_branch(repo, &remote));
    Ok(Mode::Remote { remote, branch })
}

/// The remote's default branch as this clone knows it: `<remote>/HEAD`, else `main` or
/// `master` when the remote has one, else the current branch, unless it is a task's own
/// `gitprio/<id>` (the queue is never there), else `main`.
fn default_branch(repo: &Repository, remote: &str) -> String {
    let tracking = format!("refs/remotes/{remote}/");
    repo.symbolic_target(&format!("{tracking}HEAD"))
        .and_then(|target| target.strip_prefix(&tracking).map(str::to_owned))
        .or_else(|| {
            ["main", "master"]
                .into_iter()
                .find(|branch| {
                    repo.reference_commit(&format!("{tracking}{branch}"))
                        .is_ok_and(|commit| commit.is_some())
                })
                .map(str::to_owned)
        })
        .or_else(|| {
            repo.current_branch()
                .filter(|branch| !branch.starts_with("gitprio/"))
        })
        .unwrap_or_else(|| "main".to_owned())
}

/// How old the lease mirrors may be before a reading command says it answers from old leases.
const MIRRORS_OLD_AFTER: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// Makes sure a reading command (`next`, `list`) answers from the remote's leases: a clone
/// that never fetched them (`git clone` does not) fetches them once now; mirrors older
/// than [`MIRRORS_OLD_AFTER`] are used, and stderr says how old they are.
pub fn mirrors_fetched(settings: &Settings, store: &LeaseStore<'_>) {
    let Mode::Remote { remote, .. } = store.mode() else {
        return;
    };
    match store.last_refreshed() {
        None => {
            if let Err(error) = store.refresh() {
                output::message(
                    settings,
                    "warning",
                    &format!(
                        "this clone never fetched the leases of `{remote}`, and cannot now ({error}); tasks other agents hold or submitted may show as ready"
                    ),
                );
            }
        }
        Some(at) => {
            let age = std::time::SystemTime::now()
                .duration_since(at)
                .unwrap_or_default();
            if age > MIRRORS_OLD_AFTER {
                output::message(
                    settings,
                    "info",
                    &format!(
                        "answering from the leases of `{remote}` as fetched {} ago; `gitprio status` fetches them again",
                        output::span(i64::try_from(age.as_secs()).unwrap_or(i64::MAX))
                    ),
                );
            }
        }
    }
}

/// The lease blockers on tasks as last seen, for every reading command.
pub fn current_holds(
    settings: &Settings,
    store: &LeaseStore<'_>,
    config: &Config,
) -> anyhow::Result<Holds> {
    let (leases, bad) = store.leases()?;
    Ok(holds_of(settings, &leases, &bad, config))
}

fn holds_of(
    settings: &Settings,
    leases: &BTreeMap<TaskId, Lease>,
    bad: &[BadLease],
    config: &Config,
) -> Holds {
    let skew = config.clock_skew;
    let mut holds = core_lease::holds(leases, settings.now, skew);
    for lease in bad {
        output::message(
            settings,
            "warning",
            &format!(
                "lease ref `{}` is unreadable ({}); its task is held back. Delete the ref if the lease is stale: `git update-ref -d {}` (and on the remote: `git push <remote> :refs/gitprio/leases/<id>`)",
                lease.reference, lease.problem, lease.reference
            ),
        );
        if let Some(id) = lease.reference.rsplit('/').next().and_then(TaskId::new) {
            holds.entry(id).or_default().push(Blocker::Parked {
                attempts: 0,
                last_error: Some(format!("unreadable lease: {}", lease.problem)),
            });
        }
    }
    holds
}

/// Builds what every lease operation needs: the clock, TTL (`ttl`, else the config's), skew, holder.
pub fn context(
    settings: &Settings,
    repo: &Repository,
    config: &Config,
    ttl: Option<&str>,
) -> anyhow::Result<LeaseContext> {
    let ttl = match ttl {
        Some(text) => parse_duration(text)
            .filter(|ttl| !ttl.is_zero())
            .ok_or_else(|| {
                anyhow!("invalid lease TTL `{text}`: write it like `90s`, `30m` or `2h`")
            })?,
        None => config.lease_ttl,
    };
    let skew = config.clock_skew;
    Ok(LeaseContext {
        now: settings.now,
        ttl,
        skew,
        max_attempts: config.max_attempts.max(1),
        holder: holder(settings, repo),
        failpoint: settings.failpoint.clone(),
    })
}

/// This process as a lease holder: its agent, in this worktree, on its branch.
pub fn holder(settings: &Settings, repo: &Repository) -> core_lease::Holder {
    core_lease::Holder {
        agent: settings.agent.clone(),
        host: settings.host.clone(),
        pid: std::process::id(),
        worktree: repo.workdir().map(|path| path.display().to_string()),
        branch: repo.current_branch(),
        session: settings.session.clone(),
    }
}

pub fn lease_json(lease: &Lease, store: &LeaseStore<'_>) -> serde_json::Value {
    let record = &lease.record;
    json!({
        "ref": lease.reference,
        "oid": lease.oid.to_string(),
        "state": record.state,
        "generation": record.generation,
        "attempt": record.attempt,
        "failures": record.failures,
        "holder": record.holder,
        "acquired_at": record.acquired_at,
        "renewed_at": record.renewed_at,
        "expires_at": record.expires_at,
        "reason": record.reason,
        "last_error": record.last_error,
        "progress": record.progress,
        "store": match store.mode() {
            Mode::Remote { remote, .. } => remote.as_str(),
            Mode::Local => "local",
        },
    })
}

/// Resolves the task a lease command is about: the one given, else the one this worktree
/// holds live. A submitted task is never the default: its lease must not be renewed,
/// given back or charged for by a command that named no task.
pub fn held_id(repo: &Repository, id: Option<&str>) -> anyhow::Result<TaskId> {
    held_id_of(repo, id, false)
}

/// Resolves the task `done` is about: like [`held_id`], but a submitted task (a `done` to
/// finish after a crash) is the default when no live one is held here.
pub fn held_id_to_finish(repo: &Repository, id: Option<&str>) -> anyhow::Result<TaskId> {
    held_id_of(repo, id, true)
}

fn held_id_of(repo: &Repository, id: Option<&str>, submitted: bool) -> anyhow::Result<TaskId> {
    if let Some(id) = id {
        return TaskId::new(id).ok_or_else(|| anyhow!("`{id}` is not a task id"));
    }
    let here = repo.workdir().map(|path| path.display().to_string());
    let mut mine: Vec<HeldLease> = HeldLease::all(repo.common_dir())
        .into_iter()
        .filter(|held| held.worktree == here)
        .collect();
    // Leases lost to another holder only while nothing else is held here: then the next
    // command about them says "lease lost" again.
    if mine.iter().any(|held| !held.lost) {
        mine.retain(|held| !held.lost);
    }
    // Live leases first; a submitted one (a `done` to finish after a crash) only if no live one.
    let live = mine.iter().any(|held| held.state == LeaseState::Held);
    let mut held: Vec<HeldLease> = mine
        .into_iter()
        .filter(|held| {
            held.state == LeaseState::Held
                || (submitted && !live && held.state == LeaseState::Submitted)
        })
        .collect();
    // Holders of several generations in this worktree (an agent's lease lost to another
    // agent here) name one task: the lease command sorts out whose it is.
    held.dedup_by(|next, kept| next.task == kept.task);
    // A task worktree made by `gitprio run` is on the branch `gitprio/<id>`.
    let branch_task = repo
        .current_branch()
        .and_then(|branch| branch.strip_prefix("gitprio/").and_then(TaskId::new));
    match held.as_slice() {
        [] if branch_task.is_some() => Ok(branch_task.expect("checked")),
        [one] => Ok(one.task.clone()),
        [] => bail!("this worktree holds no lease; name the task, or `gitprio claim` first"),
        many => bail!(
            "this worktree holds {} leases ({}); name the task",
            many.len(),
            many.iter()
                .map(|held| held.task.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Reads the local config and opens the lease store it names (or local refs with `local`).
pub fn open_store(repo: &Repository, local: bool) -> anyhow::Result<(Config, LeaseStore<'_>)> {
    let config = source::local_config(repo)?;
    let mode = store_mode(repo, &config, local)?;
    let store = LeaseStore::new(repo, mode);
    // Usage the ledger could not take earlier goes out with the next command that reaches it.
    Ledger::new(&store).deliver_kept(jiff::Timestamp::now());
    Ok((config, store))
}
