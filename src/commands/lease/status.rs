//! `gitprio status`: who holds what, until when, attempts and parked tasks.

use std::collections::BTreeMap;

use clap::Args;
use gitprio_core::TaskId;
use gitprio_core::git::Repository;
use gitprio_core::lease::{HeldLease, Lease, LeaseState};
use serde_json::json;

use crate::cli::CommandResult;
use crate::settings::Settings;
use crate::{exit_code, output};

use super::{StoreArgs, lease_json, open_store};

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

/// The tasks whose lease this worktree holds now.
///
/// Only while the lease is exactly the commit this worktree wrote last: one that moved on
/// (reclaimed, revoked) is someone else's, whatever this worktree remembers.
fn held_here(repo: &Repository, leases: &BTreeMap<TaskId, Lease>) -> Vec<TaskId> {
    let here = repo.workdir().map(|path| path.display().to_string());
    HeldLease::all(repo.common_dir())
        .into_iter()
        .filter(|held| {
            held.worktree == here
                && leases
                    .get(&held.task)
                    .is_some_and(|lease| lease.oid == held.oid.as_str())
        })
        .map(|held| held.task)
        .collect()
}

pub fn run(settings: &Settings, args: &StatusArgs) -> CommandResult {
    let repo = Repository::discover(&settings.directory)?;
    let (config, store) = open_store(&repo, args.store.local)?;
    if !args.offline {
        store.refresh()?;
    }
    let (leases, bad) = store.leases()?;
    let skew = config.clock_skew;
    let mine = held_here(&repo, &leases);
    if args.json {
        let rows: Vec<serde_json::Value> = leases
            .values()
            .map(|lease| {
                let mut value = lease_json(lease, &store);
                value["task"] = json!(lease.record.task);
                value["expired"] = json!(lease.record.is_expired(settings.now, skew));
                value["mine"] = json!(mine.contains(&lease.record.task));
                value
            })
            .collect();
        let bad: Vec<serde_json::Value> = bad
            .iter()
            .map(|lease| json!({ "ref": lease.reference, "problem": lease.problem }))
            .collect();
        output::print_json(&json!({ "leases": rows, "unreadable": bad }))?;
        return Ok(exit_code::SUCCESS);
    }
    if leases.is_empty() && bad.is_empty() {
        println!("no leases: no task is claimed");
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
    for lease in leases.values() {
        let record = &lease.record;
        let state = match record.state {
            LeaseState::Held if record.is_expired(settings.now, skew) => "expired".to_owned(),
            state => format!("{state:?}").to_lowercase(),
        };
        let expires = if record.state == LeaseState::Held {
            describe_remaining(record.expires_at.duration_since(settings.now))
        } else {
            "-".to_owned()
        };
        let marker = if mine.contains(&record.task) {
            " (this worktree)"
        } else {
            ""
        };
        rows.push(vec![
            record.task.to_string(),
            state,
            format!("{}{marker}", record.holder.agent),
            record.generation.to_string(),
            format!("{} ({} failed)", record.attempt, record.failures),
            record.acquired_at.to_string(),
            record.renewed_at.to_string(),
            expires,
        ]);
    }
    output::print_table(&rows)?;
    for lease in leases
        .values()
        .filter(|lease| lease.record.state == LeaseState::Parked)
    {
        println!(
            "\nparked {}: {}; last error: {}",
            lease.record.task,
            lease
                .record
                .reason
                .as_deref()
                .unwrap_or("too many failed attempts"),
            lease
                .record
                .last_error
                .as_deref()
                .unwrap_or("none recorded")
        );
    }
    for lease in &bad {
        println!("\nunreadable lease {}: {}", lease.reference, lease.problem);
    }
    Ok(exit_code::SUCCESS)
}

fn describe_remaining(remaining: jiff::SignedDuration) -> String {
    let seconds = remaining.as_secs();
    if seconds < 0 {
        return format!("{}s ago", -seconds);
    }
    if seconds >= 3600 {
        format!("in {}h{:02}m", seconds / 3600, seconds % 3600 / 60)
    } else if seconds >= 60 {
        format!("in {}m{:02}s", seconds / 60, seconds % 60)
    } else {
        format!("in {seconds}s")
    }
}
