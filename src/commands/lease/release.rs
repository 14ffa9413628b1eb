//! `gitprio release`: give a claimed task back, as a failed attempt or parked if asked.

use clap::Args;
use gitprio_core::git::Repository;
use gitprio_core::lease::{self as core_lease, LeaseStore};
use gitprio_core::usage::Outcome;
use gitprio_core::{Config, TaskId};
use serde_json::json;

use crate::cli::CommandResult;
use crate::settings::Settings;
use crate::{exit_code, output};

use super::{StoreArgs, context, held_id, lease_json, open_store};

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// The task id (default: the one task this worktree holds).
    pub id: Option<String>,
    /// Why the task is given back; kept in the lease history.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// The attempt failed: it counts toward `max_attempts`, after which the task is parked.
    #[arg(long)]
    pub failed: bool,
    /// Park the task now, as a failed attempt, whatever `max_attempts` says: for a task
    /// that keeps failing the same way.
    #[arg(long)]
    pub park: bool,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print the lease as JSON.
    #[arg(long)]
    pub json: bool,
}

/// How a task is given back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GiveBack {
    /// The agent stops without having failed: the next agent takes it as it is.
    Released,
    /// A failed attempt: it counts toward `max_attempts`, after which the task is parked.
    Failed,
    /// A failed attempt that parks the task at once, whatever `max_attempts` says.
    Parked,
}

impl GiveBack {
    /// A release, failed or not.
    pub fn failed(failed: bool) -> GiveBack {
        if failed {
            GiveBack::Failed
        } else {
            GiveBack::Released
        }
    }
}

/// Gives `id` back as `how` says and records the run's end in the usage ledger.
pub fn give_back(
    settings: &Settings,
    repo: &Repository,
    config: &Config,
    store: &LeaseStore<'_>,
    id: &TaskId,
    reason: Option<&str>,
    how: GiveBack,
) -> anyhow::Result<core_lease::Released> {
    let context = context(settings, repo, config, None)?;
    let released = match how {
        GiveBack::Parked => core_lease::release_parked(store, id, &context, reason)?,
        GiveBack::Released | GiveBack::Failed => {
            core_lease::release(store, id, &context, reason, how == GiveBack::Failed)?
        }
    };
    let outcome = match how {
        _ if released.parked => Outcome::Parked,
        GiveBack::Failed => Outcome::Failed,
        GiveBack::Released | GiveBack::Parked => Outcome::Released,
    };
    crate::commands::usage::record_outcome(settings, store, id, outcome);
    Ok(released)
}

pub fn run(settings: &Settings, args: &ReleaseArgs) -> CommandResult {
    let repo = Repository::discover(&settings.directory)?;
    let (config, store) = open_store(&repo, args.store.local)?;
    let id = held_id(&repo, args.id.as_deref())?;
    let how = if args.park {
        GiveBack::Parked
    } else {
        GiveBack::failed(args.failed)
    };
    let released = give_back(
        settings,
        &repo,
        &config,
        &store,
        &id,
        args.reason.as_deref(),
        how,
    )?;
    if args.json {
        output::print_json(&json!({
            "lease": lease_json(&released.lease, &store),
            "parked": released.parked,
        }))?;
    } else if released.parked && args.park {
        println!("released {id} and parked it: it waits for a human (`gitprio unpark {id}`)");
    } else if released.parked {
        println!(
            "released {id}: {} failed attempts, so it is parked until a human looks (`gitprio unpark {id}`)",
            released.lease.record.failures
        );
    } else {
        println!("released {id}; it is ready for the next agent");
    }
    Ok(exit_code::SUCCESS)
}
