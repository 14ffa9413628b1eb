//! `gitprio release`: give a claimed task back, as a failed attempt or parked if asked.

use clap::Args;
use gitprio_core::git::Repository;
use gitprio_core::workspace::{self, GiveBack, Workspace};

use crate::args::StoreArgs;
use crate::cli::CommandResult;
use crate::settings::Settings;
use crate::{exit_code, output};

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
    /// Print JSON: `{"lease": {...}, "parked"}`, the released lease and whether it was parked.
    #[arg(long)]
    pub json: bool,
}

pub fn run(settings: &Settings, args: &ReleaseArgs) -> CommandResult {
    let notices = output::Stderr(settings);
    let repo = Repository::discover(&settings.directory)?;
    let workspace = Workspace::open(&repo, settings.invocation(), args.store.choice(), &notices)?;
    let id = workspace::held_id(&repo, args.id.as_deref())?;
    let how = if args.park {
        GiveBack::Parked
    } else {
        GiveBack::failed(args.failed)
    };
    let released = workspace.release(&id, args.reason.as_deref(), how)?;
    if args.json {
        output::print_json(&workspace::release_reply(&released, workspace.store_name()))?;
    } else if released.parked && args.park {
        output::confirm(
            settings,
            &format!("released {id} and parked it: it waits for a human (`gitprio unpark {id}`)"),
        );
    } else if released.parked {
        output::confirm(
            settings,
            &format!(
                "released {id}: {} failed attempts, so it is parked until a human looks (`gitprio unpark {id}`)",
                released.lease.record.failures
            ),
        );
    } else {
        output::confirm(
            settings,
            &format!("released {id}; it is ready for the next agent"),
        );
    }
    Ok(exit_code::SUCCESS)
}
