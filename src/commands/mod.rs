//! Subcommands, one per file; this module only dispatches.

mod action;
mod check;
mod completions;
mod context;
mod demo;
mod explain;
mod init;
mod lease;
mod list;
mod mcp;
mod next;
mod report;
mod revoke;
mod run;
mod show;
mod top;
mod usage;

use clap::Subcommand;

use crate::cli::CommandResult;
use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the top ready task: the answer to "what is next?".
    Next(next::NextArgs),
    /// Print the ranked queue: ready tasks first, then the others with the reason.
    List(list::ListArgs),
    /// Print one task in full.
    Show(show::ShowArgs),
    /// Say why a task is or is not next.
    Explain(explain::ExplainArgs),
    /// Validate the task files in the working tree (for CI on pull requests).
    Check(check::CheckArgs),
    /// Create `.tasks/` with a config and a sample task; never overwrites.
    Init(init::InitArgs),
    /// Build a throwaway repository from the built-in example queue and show it.
    Demo(demo::DemoArgs),
    /// The simulated agent of `gitprio demo`, run by `gitprio run`.
    #[command(hide = true)]
    DemoAgent(demo::agent::AgentArgs),
    /// Print the context bundle of a task: its documents, the project's, and the task itself.
    Context(context::ContextArgs),
    /// Lease the best ready task for this agent, atomically through the git remote.
    Claim(lease::claim::ClaimArgs),
    /// Renew the lease this worktree holds on a task.
    Heartbeat(lease::heartbeat::HeartbeatArgs),
    /// Give a claimed task back, optionally as a failed attempt.
    Release(lease::release::ReleaseArgs),
    /// Record a claimed task as done: fenced by the lease, then `status: done` in its file.
    Done(lease::done::DoneArgs),
    /// Show who holds what: leases, holders, expiry, attempts, parked tasks.
    Status(lease::status::StatusArgs),
    /// Make a parked task claimable again.
    Unpark(lease::unpark::UnparkArgs),
    /// Delete the leases of tasks that are done or dropped, or gone and no longer live.
    Gc(lease::gc::GcArgs),
    /// Take a lease away from the agent holding it; its next heartbeat stops it.
    Revoke(revoke::RevokeArgs),
    /// Record and show the tokens each run of a task spent.
    Usage(usage::UsageArgs),
    /// Report value per token and waste over all runs.
    Report(report::ReportArgs),
    /// Watch the fleet live: every agent's task, spend and heartbeat; revoke a bad run.
    Top(top::TopArgs),
    /// Run agents on the queue until nothing is ready: claim, work in a worktree, renew, record usage, done or release.
    Run(run::RunArgs),
    /// Serve the queue to one agent as MCP tools over stdio (`claude mcp add gitprio -- gitprio mcp`).
    Mcp(mcp::McpArgs),
    /// On a pull request in GitHub Actions: summarize the tasks it completes, keep one comment up to date, check task edits.
    Action(action::ActionArgs),
    /// Print a shell completion script.
    Completions(completions::CompletionsArgs),
}

impl Command {
    pub fn run(self, settings: &Settings) -> CommandResult {
        match self {
            Command::Next(args) => next::run(settings, &args),
            Command::List(args) => list::run(settings, &args),
            Command::Show(args) => show::run(settings, &args),
            Command::Explain(args) => explain::run(settings, &args),
            Command::Check(args) => check::run(settings, &args),
            Command::Init(args) => init::run(settings, &args),
            Command::Demo(args) => demo::run(settings, &args),
            Command::DemoAgent(args) => demo::agent::run(settings, &args),
            Command::Context(args) => context::run(settings, &args),
            Command::Claim(args) => lease::claim::run(settings, &args),
            Command::Heartbeat(args) => lease::heartbeat::run(settings, &args),
            Command::Release(args) => lease::release::run(settings, &args),
            Command::Done(args) => lease::done::run(settings, &args),
            Command::Status(args) => lease::status::run(settings, &args),
            Command::Unpark(args) => lease::unpark::run(settings, &args),
            Command::Gc(args) => lease::gc::run(settings, &args),
            Command::Revoke(args) => revoke::run(settings, &args),
            Command::Usage(args) => usage::run(settings, &args),
            Command::Report(args) => report::run(settings, &args),
            Command::Run(args) => run::run(settings, &args),
            Command::Top(args) => top::run(settings, &args),
            Command::Mcp(args) => mcp::run(settings, &args),
            Command::Action(args) => action::run(settings, &args),
            Command::Completions(args) => completions::run(&args),
        }
    }
}
