//! `gitprio unpark`: make a parked task claimable again.

use anyhow::anyhow;
use clap::Args;
use gitprio_core::TaskId;
use gitprio_core::git::Repository;
use gitprio_core::lease::{self as core_lease};

use serde_json::json;

use crate::cli::CommandResult;
use crate::settings::Settings;
use crate::{exit_code, output};

use super::{StoreArgs, context, lease_json, open_store};

#[derive(Debug, Args)]
pub struct UnparkArgs {
    /// The parked task.
    pub id: String,
    /// What was done about it; kept in the lease history.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print the lease as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(settings: &Settings, args: &UnparkArgs) -> CommandResult {
    let repo = Repository::discover(&settings.directory)?;
    let (config, store) = open_store(&repo, args.store.local)?;
    let id = TaskId::new(&args.id).ok_or_else(|| anyhow!("`{}` is not a task id", args.id))?;
    let context = context(settings, &repo, &config, None)?;
    store.refresh()?;
    let lease = store
        .lease(&id)?
        .ok_or_else(|| anyhow!("no lease on `{id}`, so it is not parked"))?;
    let unparked = core_lease::unpark(&store, &lease, &context, args.reason.clone())?;
    if args.json {
        output::print_json(&json!({ "lease": lease_json(&unparked, &store) }))?;
    } else {
        println!("unparked {id}: it is ready again, with its attempt history kept");
    }
    Ok(exit_code::SUCCESS)
}
