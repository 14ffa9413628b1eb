//! `gitprio heartbeat`: renew the lease this worktree holds, with the run's budget verdict.

use clap::Args;
use gitprio_core::git::Repository;
use gitprio_core::lease::{self as core_lease, Lease, LeaseStore, Progress};
use gitprio_core::usage::{Ledger, Run, RunMeta};
use gitprio_core::{Config, TaskId};
use serde_json::json;

use crate::cli::CommandResult;
use crate::settings::Settings;
use crate::{exit_code, output};

use super::{StoreArgs, context, dollars, held_id, lease_json, open_store, progress};

#[derive(Debug, Args)]
pub struct LeaseIdArgs {
    /// The task id (default: the one task this worktree holds).
    pub id: Option<String>,
    /// How long the renewed lease lives (heartbeat only; default: `lease_ttl`).
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Tokens this attempt has spent so far, recorded on the renewal for `gitprio top`
    /// (the usage ledger is still where usage is recorded for good).
    #[arg(long, value_name = "N")]
    pub tokens: Option<u64>,
    /// Estimated dollars this attempt has spent so far, with `--tokens`.
    #[arg(long, value_name = "USD", requires = "tokens", value_parser = dollars)]
    pub cost_usd: Option<f64>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print the lease as JSON.
    #[arg(long)]
    pub json: bool,
}

/// A renewed lease, and its run as the usage ledger knows it (for the budget verdict).
#[derive(Debug)]
pub struct Renewed {
    pub lease: Lease,
    pub spent: Option<Run>,
}

/// Renews the lease on `id` for `ttl` (default: the config's), with the holder's `progress`
/// when it reports some, and reads what its run spent.
pub fn renew(
    settings: &Settings,
    repo: &Repository,
    config: &Config,
    store: &LeaseStore<'_>,
    id: &TaskId,
    ttl: Option<&str>,
    progress: Option<Progress>,
) -> anyhow::Result<Renewed> {
    let context = context(settings, repo, config, ttl)?;
    let lease = core_lease::heartbeat(store, id, &context, progress)?;
    // The budget verdict rides on the heartbeat: the agent learns to stop where it already listens.
    let run = RunMeta::run_id(lease.record.generation, lease.record.acquired_at);
    let spent = Ledger::new(store)
        .runs(id)?
        .into_iter()
        .find(|known| known.meta.run == run);
    Ok(Renewed { lease, spent })
}

pub fn run(settings: &Settings, args: &LeaseIdArgs) -> CommandResult {
    let repo = Repository::discover(&settings.directory)?;
    let (config, store) = open_store(&repo, args.store.local)?;
    let id = held_id(&repo, args.id.as_deref())?;
    let progress = progress(settings, args.tokens, args.cost_usd)?;
    let Renewed { lease, spent } = renew(
        settings,
        &repo,
        &config,
        &store,
        &id,
        args.ttl.as_deref(),
        progress,
    )?;
    let verdict = match &spent {
        Some(known) => {
            crate::commands::usage::budget_verdict(settings, &known.meta, &known.totals())
        }
        None => exit_code::SUCCESS,
    };
    if args.json {
        output::print_json(&json!({
            "lease": lease_json(&lease, &store),
            "tokens": spent.as_ref().map(|known| known.totals().tokens()),
            "budget_tokens": spent.as_ref().and_then(|known| known.meta.budget_tokens),
        }))?;
    } else {
        println!(
            "renewed {id} (generation {}) until {}",
            lease.record.generation, lease.record.expires_at
        );
    }
    Ok(verdict)
}
