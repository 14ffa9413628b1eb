//! `gitprio gc`: delete the leases that no longer matter.

use clap::Args;
use gitprio_core::git::Repository;
use gitprio_core::lease::{self as core_lease, LeaseState};
use gitprio_core::queue::{Holds, Queue};
use gitprio_core::source::QueueSource;
use serde_json::json;

use crate::cli::CommandResult;
use crate::settings::Settings;
use crate::{exit_code, output};

use super::{StoreArgs, context, open_store};

#[derive(Debug, Args)]
pub struct GcArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print JSON: `{"deleted": [ids], "kept": [{"task", "reason", "state"}]}`.
    #[arg(long)]
    pub json: bool,
}

pub fn run(settings: &Settings, args: &GcArgs) -> CommandResult {
    let repo = Repository::discover(&settings.directory)?;
    let (config, store) = open_store(&repo, args.store.local)?;
    let context = context(settings, &repo, &config, None)?;
    store.refresh()?;
    let queue_source = store
        .queue_ref()
        .map_or(QueueSource::Default, QueueSource::Rev);
    let loaded = crate::commands::load_tasks(settings, &repo, &queue_source)?;
    let (leases, _) = store.leases()?;
    let queue = Queue::build(loaded.tasks.clone(), &Holds::new());
    let skipped = loaded.skipped_files().len();
    let view = core_lease::GcView {
        queue: &queue,
        files_skipped: skipped > 0,
        now: context.now,
        skew: context.skew,
    };
    let collected = core_lease::gc(&store, &view, &leases)?;
    for (id, reason) in &collected.kept {
        let why = match reason {
            core_lease::Kept::Unreadable => format!(
                "{skipped} task file(s) there could not be read and it may be one of them; fix them (see `gitprio check`) and run `gitprio gc` again"
            ),
            core_lease::Kept::Live => format!(
                "its lease is {}; gc deletes it once it is not (if the task is on another branch, set `branch:` in .tasks/config.yaml)",
                live_state(&leases[id].record)
            ),
        };
        output::message(
            settings,
            "info",
            &format!(
                "kept the lease of {id}: {id} is not in the queue at {}, but {why}",
                loaded.origin
            ),
        );
    }
    if args.json {
        let kept: Vec<serde_json::Value> = collected
            .kept
            .iter()
            .map(|(id, reason)| {
                json!({ "task": id, "reason": reason, "state": leases[id].record.state })
            })
            .collect();
        output::print_json(&json!({ "deleted": collected.deleted, "kept": kept }))?;
    } else if collected.deleted.is_empty() && collected.kept.is_empty() {
        println!("nothing to delete: every lease belongs to an open task");
    } else if collected.deleted.is_empty() {
        println!("nothing to delete");
    } else {
        println!(
            "deleted {} {} of finished tasks: {}",
            collected.deleted.len(),
            output::plural(collected.deleted.len(), "lease"),
            collected
                .deleted
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(exit_code::SUCCESS)
}

/// Names the state of a live lease for a message: "held until ...", "submitted", "parked".
fn live_state(record: &core_lease::LeaseRecord) -> String {
    match record.state {
        LeaseState::Held => format!(
            "held by {} until {}",
            record.holder.agent, record.expires_at
        ),
        LeaseState::Submitted => format!("submitted by {}", record.holder.agent),
        LeaseState::Parked => "parked".to_owned(),
        LeaseState::Released => "released".to_owned(),
    }
}
