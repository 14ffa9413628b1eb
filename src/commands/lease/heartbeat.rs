//! `gitprio heartbeat`: renew the lease this worktree holds, with the run's budget verdict.

use clap::Args;
use gitprio_core::git::Repository;
use gitprio_core::workspace::{self, Workspace};

use crate::args::{StoreArgs, parse_dollars};
use crate::cli::CommandResult;
use crate::settings::Settings;
use crate::{exit_code, output};

#[derive(Debug, Args)]
pub struct HeartbeatArgs {
    /// The task id (default: the one task this worktree holds).
    pub id: Option<String>,
    /// How long the renewed lease lives (default: `lease_ttl` of the config).
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Tokens this attempt has spent so far, recorded on the renewal for `gitprio top`
    /// (the usage ledger is still where usage is recorded for good).
    #[arg(long, value_name = "N")]
    pub tokens: Option<u64>,
    /// Estimated dollars this attempt has spent so far, with `--tokens`.
    #[arg(long, value_name = "USD", requires = "tokens", value_parser = parse_dollars)]
    pub cost_usd: Option<f64>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print JSON: `{"lease": {...}, "tokens", "budget_tokens"}`, the renewed lease and what
    /// the run spent of its budget.
    #[arg(long)]
    pub json: bool,
}

pub fn run(settings: &Settings, args: &HeartbeatArgs) -> CommandResult {
    let notices = output::Stderr(settings);
    let repo = Repository::discover(&settings.directory)?;
    let workspace = Workspace::open(&repo, settings.invocation(), args.store.choice(), &notices)?;
    let id = workspace::held_id(&repo, args.id.as_deref())?;
    let progress = workspace::progress(settings.now, args.tokens, args.cost_usd)?;
    let renewed = workspace.heartbeat(&id, args.ttl.as_deref(), progress.as_ref())?;
    let verdict = match renewed.over_budget() {
        Some((spent, budget)) => output::over_budget(settings, &id, spent, budget),
        None => exit_code::SUCCESS,
    };
    if args.json {
        output::print_json(&renewed.reply(workspace.store_name()))?;
    } else {
        output::confirm(
            settings,
            &format!(
                "renewed {id} (generation {}) until {}",
                renewed.lease.record.generation, renewed.lease.record.expires_at
            ),
        );
    }
    Ok(verdict)
}
