//! `gitprio claim`: lease the best ready task and print its context bundle.

use clap::Args;
use gitprio_core::git::Repository;
use gitprio_core::lease::LeaseStore;
use gitprio_core::source::{self};
use gitprio_core::usage::Ledger;
use serde_json::json;

use crate::cli::CommandResult;
use crate::settings::Settings;
use crate::{exit_code, output};

use super::{
    ClaimResult, ClaimedTask, Claimer, StoreArgs, claim_next_avoiding, context, lease_json,
    store_mode,
};

#[derive(Debug, Args)]
pub struct ClaimArgs {
    #[command(flatten)]
    pub claimer: Claimer,
    /// Pass over tasks whose `owns` overlap the `owns` of a task an agent holds, so agents
    /// working in parallel never change the same files.
    #[arg(long)]
    pub avoid_overlap: bool,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print JSON: `{"task": {...}, "lease": {...}}`, or `{"task": null, "reason": ...}`.
    #[arg(long)]
    pub json: bool,
}

pub fn run(settings: &Settings, args: &ClaimArgs) -> CommandResult {
    let settings = settings.with_agent(args.claimer.agent.as_deref());
    let repo = Repository::discover(&settings.directory)?;
    let config = source::local_config(&repo)?;
    let store = LeaseStore::new(&repo, store_mode(&repo, &config, args.store.local)?);
    Ledger::new(&store).deliver_kept(settings.now);
    let context = context(&settings, &repo, &config, args.claimer.ttl.as_deref())?;
    let filter = args.claimer.filter();
    match claim_next_avoiding(
        &settings,
        &repo,
        &store,
        &context,
        &filter,
        args.avoid_overlap,
    )? {
        ClaimResult::Claimed(claimed) => {
            let ClaimedTask {
                task,
                lease,
                tries,
                origin,
                bundle,
            } = *claimed;
            let commands = crate::commands::context::report_commands(&task.id, args.store.local);
            let record = &lease.record;
            if args.json {
                let context = match &bundle {
                    Ok(bundle) => {
                        let mut value = serde_json::to_value(bundle)?;
                        // The prompt itself, exactly as the human output prints it.
                        value["markdown"] =
                            json!(bundle.to_markdown(&gitprio_core::context::Tail {
                                source: origin.to_string(),
                                lease: Some(&lease),
                                commands: commands.clone(),
                            }));
                        value["report"] = json!(commands);
                        value
                    }
                    Err(_) => serde_json::Value::Null,
                };
                output::print_json(&json!({
                    "task": task,
                    "lease": lease_json(&lease, &store),
                    "tries": tries,
                    "source": origin,
                    "context": context,
                }))?;
            } else {
                output::message(
                    &settings,
                    "info",
                    &format!(
                        "claimed {} as {} (generation {}, attempt {}, expires {})",
                        task.id,
                        record.holder.agent,
                        record.generation,
                        record.attempt,
                        record.expires_at
                    ),
                );
                if let Ok(bundle) = &bundle {
                    let tail = gitprio_core::context::Tail {
                        source: origin.to_string(),
                        lease: Some(&lease),
                        commands,
                    };
                    print!("{}", bundle.to_markdown(&tail));
                } else {
                    if let Some(error) = &record.last_error {
                        println!("last error: {error}");
                    }
                    for command in &commands {
                        println!("{}: {}", command.command, command.purpose);
                    }
                    println!();
                    crate::commands::show::print_task(&task, &gitprio_core::Readiness::Ready)?;
                }
            }
            Ok(exit_code::SUCCESS)
        }
        ClaimResult::NothingReady { reason, message } => {
            if args.json {
                output::print_json(&json!({ "task": null, "reason": reason, "message": message }))?;
            }
            output::message(&settings, "info", &message);
            Ok(exit_code::NOTHING_READY)
        }
    }
}
