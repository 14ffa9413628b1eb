//! `gitprio unpark`: make a parked task claimable again.

use clap::Args;
use gitprio_core::git::Repository;
use gitprio_core::reply::lease::{LeaseReply, UnparkReply};
use gitprio_core::workspace::{self, Workspace};

use crate::args::StoreArgs;
use crate::cli::CommandResult;
use crate::settings::Settings;
use crate::{exit_code, output};

#[derive(Debug, Args)]
pub struct UnparkArgs {
    /// The parked task.
    pub id: String,
    /// What was done about it; kept in the lease history.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print JSON: `{"lease": {...}}`, the lease after the unpark.
    #[arg(long)]
    pub json: bool,
}

pub fn run(settings: &Settings, args: &UnparkArgs) -> CommandResult {
    let notices = output::Stderr(settings);
    let repo = Repository::discover(&settings.directory)?;
    let workspace = Workspace::open(&repo, settings.invocation(), args.store.choice(), &notices)?;
    let id = workspace::task_id(&args.id)?;
    let unparked = workspace.unpark(&id, args.reason.clone())?;
    if args.json {
        output::print_json(&UnparkReply {
            lease: LeaseReply::new(&unparked, workspace.store_name()),
        })?;
    } else {
        output::confirm(
            settings,
            &format!("unparked {id}: it is ready again, with its attempt history kept"),
        );
    }
    Ok(exit_code::SUCCESS)
}
