//! Reading the fleet's state from the repository: one fetch, then leases, tasks and usage as fetched.

use std::collections::BTreeMap;

use anyhow::Context as _;
use gitprio_core::TaskId;
use gitprio_core::lease::{self as core_lease, Lease, LeaseRecord, LeaseStore};
use gitprio_core::queue::Queue;
use gitprio_core::source::{self, ParseCache};
use gitprio_core::usage::{PriceTable, Run, USAGE_PREFIX};
use gitprio_core::workspace::{SettledRuns, Workspace};
use jiff::{SignedDuration, Timestamp};

use super::model::{Detail, Fleet, Sources, TaskInfo};

/// How many lease changes the detail view reads.
const HISTORY_DEPTH: &str = "40";

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
    pub ready: usize,
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
            ready: self.ready,
        }
    }

    pub fn fleet(&self) -> Fleet {
        Fleet::build(&self.sources())
    }

    /// Describes task `id` with its lease history read from `store`.
    pub fn detail(&self, store: &LeaseStore<'_>, id: &TaskId) -> anyhow::Result<Detail> {
        let history = history(store, id)?;
        Ok(super::model::detail(&self.sources(), id, &history))
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
    let SettledRuns { leases, runs } = workspace.settled_runs()?;
    let tasks = loaded
        .tasks
        .iter()
        .map(|task| {
            let budget = loaded.config.token_budget(task);
            (task.id.clone(), TaskInfo::of(task, budget))
        })
        .collect();
    let holds = core_lease::holds(&leases, now, skew);
    let ready = Queue::build(loaded.tasks, &holds).ready().len();
    let prices = PriceTable::new(
        gitprio_core::workspace::price_overrides(repo, loaded.commit).unwrap_or_default(),
    );
    Ok(Snapshot {
        now,
        skew,
        window,
        leases,
        tasks,
        runs,
        prices,
        ready,
    })
}

/// Reads the lease records of `id`, newest first, as last fetched.
pub fn history(store: &LeaseStore<'_>, id: &TaskId) -> anyhow::Result<Vec<LeaseRecord>> {
    let reference = store.local_ref(id);
    if store.repo().reference_commit(&reference)?.is_none() {
        return Ok(Vec::new());
    }
    let output = store.repo().git(&[
        "log",
        "--first-parent",
        "-n",
        HISTORY_DEPTH,
        "--format=%B%x00",
        &reference,
    ])?;
    anyhow::ensure!(
        output.status.success(),
        "cannot read the history of `{reference}`: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let text = String::from_utf8(output.stdout).context("the lease history is not UTF-8")?;
    Ok(text
        .split('\0')
        .filter_map(|message| LeaseRecord::from_message(message.trim_start()).ok())
        .collect())
}
