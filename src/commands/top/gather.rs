//! Reading the fleet's state from the repository: one fetch, then leases, tasks and usage as fetched.

use std::collections::BTreeMap;

use gitprio_core::TaskId;
use gitprio_core::lease::{BadLease, Lease, LeaseStore};
use gitprio_core::queue::Queue;
use gitprio_core::source::{self, ParseCache};
use gitprio_core::usage::{PriceTable, Run, USAGE_PREFIX};
use gitprio_core::workspace::{RepositoryPrices, SettledRuns, Workspace};
use jiff::{SignedDuration, Timestamp};

use super::history::{self, Warned};
use super::model::{Detail, Fleet, Sources, TaskInfo};

/// What one refresh read, kept to build the fleet and a task's detail from.
#[derive(Debug)]
pub struct Snapshot {
    pub now: Timestamp,
    pub skew: SignedDuration,
    pub window: SignedDuration,
    pub leases: BTreeMap<TaskId, Lease>,
    pub tasks: BTreeMap<TaskId, TaskInfo>,
    pub runs: Vec<Run>,
    pub prices: PriceTable,
    /// The repository's `.tasks/prices.yaml` as read: how many models, and what it could not read.
    pub repository_prices: RepositoryPrices,
    pub ready: usize,
    /// The lease refs this gitprio cannot read: left out of the fleet, their tasks held back.
    pub unreadable: Vec<BadLease>,
}

impl Snapshot {
    pub fn sources(&self) -> Sources<'_> {
        Sources {
            now: self.now,
            skew: self.skew,
            window: self.window,
            leases: &self.leases,
            tasks: &self.tasks,
            runs: &self.runs,
            prices: &self.prices,
            repository_price_models: self.repository_prices.prices.len(),
            ready: self.ready,
        }
    }

    pub fn fleet(&self) -> Fleet {
        Fleet::build(&self.sources())
    }

    /// Describes task `id` with its lease history read from `store`, and the warning about
    /// records in it this gitprio cannot read, unless `warned` says it was given before.
    pub fn detail(
        &self,
        store: &LeaseStore<'_>,
        id: &TaskId,
        warned: &mut Warned,
    ) -> anyhow::Result<(Detail, Option<String>)> {
        let history = history::read(store, id)?;
        let warning = warned.about(id, &history);
        Ok((
            super::model::detail(&self.sources(), id, &history.records),
            warning,
        ))
    }
}

/// Brings the queue's branch, the leases and the usage ledger from the remote in one
/// fetch, or none when the remote has not changed (nothing to do in local mode).
pub fn fetch(store: &LeaseStore<'_>) -> anyhow::Result<()> {
    Ok(store.refresh_with(&[USAGE_PREFIX])?)
}

/// Reads everything the fleet is built from, as last fetched, at the workspace's `now`:
/// its runs settled as every report settles them (an expired run is not in flight).
pub fn read(workspace: &Workspace<'_>, window: SignedDuration) -> anyhow::Result<Snapshot> {
    let repo = workspace.repo();
    let now = workspace.invocation().now;
    let queue_source = workspace.queue_source();
    // The parse cache `gitprio list` and `claim` keep: a refresh reparses only changed files.
    let cache_path = gitprio_core::workspace::parse_cache_path(repo);
    let mut cache = ParseCache::load(&cache_path);
    let loaded = source::load(repo, &queue_source, Some(&mut cache))?;
    let _ = cache.save(&cache_path);
    let skew = workspace.skew();
    let SettledRuns {
        leases,
        runs,
        unreadable,
    } = workspace.settled_runs()?;
    let tasks = loaded
        .tasks
        .iter()
        .map(|task| {
            let budget = loaded.config.token_budget(task);
            (task.id.clone(), TaskInfo::of(task, budget))
        })
        .collect();
    // A lease it cannot read holds its task back, as a claim sees it.
    let holds = gitprio_core::workspace::lease_holds(&leases, &unreadable, now, skew);
    let ready = Queue::build(loaded.tasks, &holds).ready().len();
    let repository_prices = gitprio_core::workspace::price_overrides(repo, loaded.commit)?;
    let prices = repository_prices.table();
    Ok(Snapshot {
        now,
        skew,
        window,
        leases,
        tasks,
        runs,
        prices,
        repository_prices,
        ready,
        unreadable,
    })
}
