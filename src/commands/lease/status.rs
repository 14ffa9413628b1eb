//! `gitprio status`: who holds what, until when, attempts and parked tasks.

use clap::Args;
use gitprio_core::git::Repository;
use gitprio_core::reply::lease::ShownState;
use gitprio_core::workspace::Workspace;

use crate::args::StoreArgs;
use crate::cli::CommandResult;
use crate::settings::Settings;
use crate::{exit_code, output};

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Show the leases last fetched, without asking the remote.
    #[arg(long)]
    pub offline: bool,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print JSON: `{"leases": [...]}`.
    #[arg(long)]
    pub json: bool,
}

pub fn run(settings: &Settings, args: &StatusArgs) -> CommandResult {
    let notices = output::Stderr(settings);
    let repo = Repository::discover(&settings.directory)?;
    let workspace = Workspace::open(&repo, settings.invocation(), args.store.choice(), &notices)?;
    let status = workspace.status(args.offline)?;
    if args.json {
        output::print_json(&status)?;
        return Ok(exit_code::SUCCESS);
    }
    if status.leases.is_empty() && status.unreadable.is_empty() {
        output::confirm(settings, "no leases: no task is claimed");
        return Ok(exit_code::SUCCESS);
    }
    let mut rows = vec![vec![
        "TASK".to_owned(),
        "STATE".to_owned(),
        "HOLDER".to_owned(),
        "GEN".to_owned(),
        "ATTEMPTS".to_owned(),
        "SINCE".to_owned(),
        "RENEWED".to_owned(),
        "EXPIRES".to_owned(),
    ]];
    for row in &status.leases {
        let lease = &row.lease;
        let state = if row.revoked_by.is_some() && lease.state == ShownState::Released {
            "revoked"
        } else {
            lease.state.as_str()
        };
        // A revoke records the revoker as the holder; nobody holds a revoked task.
        let holder = if row.revoked_by.is_some() {
            "-"
        } else {
            &lease.holder.agent
        };
        let expires = if matches!(lease.state, ShownState::Held | ShownState::Expired) {
            describe_expiry(lease.expires_at.duration_since(settings.now), row.expired)
        } else {
            "-".to_owned()
        };
        let marker = if row.mine { " (this worktree)" } else { "" };
        rows.push(vec![
            row.task.to_string(),
            state.to_owned(),
            format!("{holder}{marker}"),
            lease.generation.to_string(),
            format!("{} ({} failed)", lease.attempt, lease.failures),
            output::minute(lease.acquired_at),
            output::minute(lease.renewed_at),
            expires,
        ]);
    }
    // Only unreadable leases: a table of no rows would say nothing.
    if !status.leases.is_empty() {
        output::print_table(&rows)?;
    }
    for row in status
        .leases
        .iter()
        .filter(|row| row.lease.state == ShownState::Parked)
    {
        crate::output::outln!(
            "\nparked {}: {}; last error: {}",
            row.task,
            row.lease
                .reason
                .as_deref()
                .unwrap_or("too many failed attempts"),
            row.lease.last_error.as_deref().unwrap_or("none recorded")
        )?;
    }
    for row in &status.leases {
        let Some(revoker) = &row.revoked_by else {
            continue;
        };
        if row.lease.state == ShownState::Released {
            let how = row
                .lease
                .last_error
                .clone()
                .unwrap_or_else(|| format!("revoked by {revoker}"));
            crate::output::outln!("\n{}: {how}; anyone may claim it", row.task)?;
        }
    }
    for (index, lease) in status.unreadable.iter().enumerate() {
        let gap = if index == 0 && status.leases.is_empty() {
            ""
        } else {
            "\n"
        };
        crate::output::outln!(
            "{gap}unreadable lease {}: {}; {}",
            lease.reference,
            lease.problem,
            lease.advice
        )?;
    }
    Ok(exit_code::SUCCESS)
}

/// Says when a held lease expires, `remaining` from now: past its expiry, it has expired
/// only once the rule a claim uses says so (`expired`); before that the `clock_skew`
/// allowance still keeps it from other agents.
fn describe_expiry(remaining: jiff::SignedDuration, expired: bool) -> String {
    let seconds = remaining.as_secs();
    if seconds >= 0 {
        return format!("in {}", output::span(seconds));
    }
    let ago = output::span(seconds.saturating_neg());
    if expired {
        format!("{ago} ago")
    } else {
        format!("{ago} ago, within clock_skew")
    }
}
