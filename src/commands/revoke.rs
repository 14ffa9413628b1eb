//! `gitprio revoke`: take a lease away from the agent that holds it.

use anyhow::anyhow;
use clap::Args;
use gitprio_core::git::Repository;
use gitprio_core::lease::{self as core_lease, Lease, LeaseState, LeaseStore, Revocation};
use gitprio_core::source::{self, QueueSource};
use gitprio_core::usage::{Ledger, Outcome, RunMeta};
use gitprio_core::{Config, TaskId};
use serde_json::json;

use super::lease::{self, StoreArgs};
use crate::cli::CommandResult;
use crate::settings::Settings;
use crate::{exit_code, output};

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The task whose lease to take away.
    pub id: String,
    /// Why; kept in the lease history and shown to whoever looks at the task next.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Park the task, so no agent reclaims it until `gitprio unpark`.
    #[arg(long)]
    pub park: bool,
    /// Revoke as this name (default: `GITPRIO_AGENT`, else `user@host:<worktree>`).
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print the new lease as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(settings: &Settings, args: &RevokeArgs) -> CommandResult {
    let settings = settings.with_agent(args.agent.as_deref());
    let repo = Repository::discover(&settings.directory)?;
    let (config, store) = lease::open_store(&repo, args.store.local)?;
    let id = TaskId::new(&args.id).ok_or_else(|| anyhow!("`{}` is not a task id", args.id))?;
    store.refresh()?;
    let revoked = revoke_task(
        &settings,
        &repo,
        &config,
        &store,
        &id,
        &Revocation {
            reason: args.reason.as_deref(),
            park: args.park,
        },
    )?;
    if let Some(warning) = &revoked.warning {
        output::message(&settings, "warning", warning);
    }
    if args.json {
        output::print_json(&json!({
            "task": id,
            "revoked_from": revoked.from,
            "lease": lease::lease_json(&revoked.lease, &store),
        }))?;
    } else if args.park {
        println!(
            "revoked {id} from {}; it is parked until `gitprio unpark {id}`",
            revoked.from
        );
    } else {
        println!(
            "revoked {id} from {}; its next heartbeat stops it, and the task is ready for the next agent",
            revoked.from
        );
    }
    Ok(exit_code::SUCCESS)
}

/// A lease taken away, and from whom.
#[derive(Debug)]
pub struct Revoked {
    pub lease: Lease,
    pub from: String,
    /// Why the revoked run's end is not in the usage ledger, if it is not.
    pub warning: Option<String>,
}

/// Revokes the lease on `id` as last fetched into `store`, and records the end of the
/// revoked run in the usage ledger (a failure there is only a warning: the lease moved
/// already). Prints nothing, so `gitprio top` can call it under its screen.
pub fn revoke_task(
    settings: &Settings,
    repo: &Repository,
    config: &Config,
    store: &LeaseStore<'_>,
    id: &TaskId,
    revocation: &Revocation<'_>,
) -> anyhow::Result<Revoked> {
    let context = lease::context(settings, repo, config, None)?;
    let current = store.lease(id)?;
    let lease = core_lease::revoke(store, current.as_ref(), id, &context, revocation)?;
    let previous = current.expect("a revoked lease existed");
    let queue = store
        .queue_ref()
        .map_or(QueueSource::Default, QueueSource::Rev);
    let task = source::load(repo, &queue, None)
        .ok()
        .and_then(|loaded| loaded.tasks.into_iter().find(|task| &task.id == id));
    let meta = RunMeta {
        outcome: Some(if lease.record.state == LeaseState::Parked {
            Outcome::Parked
        } else {
            Outcome::Failed
        }),
        ended_at: Some(settings.now),
        ..super::usage::run_meta(&previous.record, task.as_ref(), config, None)
    };
    let warning = Ledger::new(store)
        .write(&meta, &[], settings.now)
        .err()
        .map(|error| format!("the revoked run was not recorded in the usage ledger: {error:#}"));
    Ok(Revoked {
        lease,
        from: previous.record.holder.agent,
        warning,
    })
}
