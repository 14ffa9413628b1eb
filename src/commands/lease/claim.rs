//! `gitprio claim`: lease the best ready task and print its context bundle.

use clap::Args;
use gitprio_core::git::Repository;
use gitprio_core::hint::FrontEnd;
use gitprio_core::lease::ClaimFilter;
use gitprio_core::reply::lease::{ClaimReply, NothingReadyReply};
use gitprio_core::workspace::{Claim, ClaimRequest, StoreChoice, Workspace, report_commands};

use crate::args::{Claimer, StoreArgs};
use crate::cli::CommandResult;
use crate::settings::Settings;
use crate::{exit_code, output};

#[derive(Debug, Args)]
pub struct ClaimArgs {
    #[command(flatten)]
    pub claimer: Claimer,
    /// Pass over tasks whose `owns` overlap the `owns` of a task an agent holds, so agents
    /// working in parallel never change the same files.
    #[arg(long)]
    pub avoid_overlap: bool,
    /// Pass over this task (repeatable): `gitprio run` skips the tasks whose lease it lost.
    #[arg(long, value_name = "ID")]
    pub skip: Vec<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print JSON: `{"task": {...}, "lease": {...}}`, or `{"task": null, "reason": ...}`.
    #[arg(long)]
    pub json: bool,
}

pub fn run(settings: &Settings, args: &ClaimArgs) -> CommandResult {
    let settings = settings.with_agent(args.claimer.agent.as_deref());
    let notices = output::Stderr(&settings);
    let repo = Repository::discover(&settings.directory)?;
    let workspace = Workspace::open(
        &repo,
        settings.invocation(),
        StoreChoice::local(args.store.local),
        &notices,
    )?;
    let request = ClaimRequest {
        ttl: args.claimer.ttl.clone(),
        filter: ClaimFilter {
            skip: args
                .skip
                .iter()
                .map(|id| gitprio_core::workspace::task_id(id))
                .collect::<Result<_, _>>()?,
            ..args.claimer.filter()
        },
        avoid_overlap: args.avoid_overlap,
    };
    match workspace.claim(&request)? {
        Claim::Claimed(mut claimed) => {
            let commands = report_commands(&claimed.task.id, args.store.local);
            let record = &claimed.lease.record;
            if args.json {
                output::print_json(&ClaimReply::new(&claimed, workspace.store_name(), commands))?;
            } else {
                output::confirm(
                    &settings,
                    &format!(
                        "claimed {} as {} (generation {}, attempt {}, expires {})",
                        claimed.task.id,
                        record.holder.agent,
                        record.generation,
                        record.attempt,
                        record.expires_at
                    ),
                );
                if let Ok(bundle) = &claimed.bundle {
                    let tail = gitprio_core::context::Tail {
                        source: claimed.origin.to_string(),
                        lease: Some(&claimed.lease),
                        commands,
                    };
                    crate::output::out!("{}", bundle.to_markdown(&tail))?;
                } else {
                    if let Some(error) = &record.last_error {
                        crate::output::outln!("last error: {error}")?;
                    }
                    for command in &commands {
                        crate::output::outln!("{}: {}", command.command, command.purpose)?;
                    }
                    crate::output::outln!()?;
                    output::print_task(&claimed.task, &gitprio_core::Readiness::Ready)?;
                }
            }
            std::io::Write::flush(&mut std::io::stdout())?;
            claimed.replied();
            Ok(exit_code::SUCCESS)
        }
        Claim::NothingReady(why) => {
            if settings.failpoint.as_deref() == Some("claim:linger") {
                // As a claim slowed down after it looked would: what it saw may be stale.
                std::thread::sleep(std::time::Duration::from_secs(2));
            }
            let message = why.sentence(FrontEnd::Cli);
            if args.json {
                output::print_json(&NothingReadyReply::new(&why, message.clone()))?;
            }
            output::message(&settings, "info", &message);
            Ok(exit_code::NOTHING_READY)
        }
    }
}
