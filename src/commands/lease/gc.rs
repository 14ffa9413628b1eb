//! `gitprio gc`: delete the leases that no longer matter.

use clap::Args;
use gitprio_core::git::Repository;
use gitprio_core::workspace::Workspace;

use crate::args::StoreArgs;
use crate::cli::CommandResult;
use crate::settings::Settings;
use crate::{exit_code, output};

#[derive(Debug, Args)]
pub struct GcArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print JSON: `{"deleted": [ids], "kept": [{"task", "reason", "state"}]}`.
    #[arg(long)]
    pub json: bool,
}

pub fn run(settings: &Settings, args: &GcArgs) -> CommandResult {
    let notices = output::Stderr(settings);
    let repo = Repository::discover(&settings.directory)?;
    let workspace = Workspace::open(&repo, settings.invocation(), args.store.choice(), &notices)?;
    let collected = workspace.gc()?;
    if args.json {
        output::print_json(&collected)?;
    } else if collected.deleted.is_empty() && collected.kept.is_empty() {
        output::confirm(
            settings,
            "nothing to delete: every lease belongs to an open task",
        );
    } else if collected.deleted.is_empty() {
        output::confirm(settings, "nothing to delete");
    } else {
        output::confirm(
            settings,
            &format!(
                "deleted {} {} of finished tasks: {}",
                collected.deleted.len(),
                output::plural(collected.deleted.len(), "lease"),
                collected
                    .deleted
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    Ok(exit_code::SUCCESS)
}
