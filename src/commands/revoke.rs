//! `gitprio revoke`: take a lease away from the agent that holds it.

use clap::Args;
use gitprio_core::git::Repository;
use gitprio_core::lease::{LeaseState, Revocation};
use gitprio_core::workspace::{self, Workspace};

use crate::args::StoreArgs;
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
    /// Print JSON: `{"task", "revoked_from", "lease": {...}}`, the lease after the revoke.
    #[arg(long)]
    pub json: bool,
}

pub fn run(settings: &Settings, args: &RevokeArgs) -> CommandResult {
    let settings = settings.with_agent(args.agent.as_deref());
    let notices = output::Stderr(&settings);
    let repo = Repository::discover(&settings.directory)?;
    let workspace = Workspace::open(&repo, settings.invocation(), args.store.choice(), &notices)?;
    let id = workspace::task_id(&args.id)?;
    workspace.store().refresh()?;
    let revoked = workspace.revoke(
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
        output::print_json(&revoked.reply(&id, workspace.store_name()))?;
    } else if revoked.lease.record.state == LeaseState::Parked {
        output::confirm(
            &settings,
            &format!(
                "revoked {id} from {}; it is parked until `gitprio unpark {id}`",
                revoked.from
            ),
        );
    } else {
        output::confirm(
            &settings,
            &format!(
                "revoked {id} from {}; its next heartbeat stops it, and the task is ready for the next agent",
                revoked.from
            ),
        );
    }
    Ok(exit_code::SUCCESS)
}
