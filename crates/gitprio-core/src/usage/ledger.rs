//! The usage ledger in git: `refs/gitprio/usage/<task-id>`, one directory per run.
//!
//! Each commit's tree holds `runs/<run>/run.json` (who ran it, when, how it ended)
//! and `runs/<run>/usage.jsonl` (the deduplicated records, one per line). Every
//! change is a compare-and-swap of the ref, like leases, so any clone (and the
//! GitHub Action) can compute reports, nothing conflicts with task-file edits, and
//! the ref outlives the lease (which `gc` deletes once the task is done).

use std::collections::{BTreeMap, HashMap};

use gix::ObjectId;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Totals, UsageRecord};
use crate::git::Repository;
use crate::lease::{CasOutcome, LeaseStore, StoreError};
use crate::task::TaskId;

/// The ref namespace of the usage ledger.
pub const USAGE_PREFIX: &str = "refs/gitprio/usage/";

/// How many times a write is redone when another writer moved the ref first.
const MAX_WRITE_TRIES: u32 = 8;

/// Returns the usage ref of task `id`.
pub fn usage_ref(id: &TaskId) -> String {
    format!("{USAGE_PREFIX}{id}")
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// `gitprio done`: the work was submitted.
    Completed,
    /// Given back without failing (`gitprio release`).
    Released,
    /// Given back as a failed attempt (`gitprio release --failed`).
    Failed,
    /// Failed, and the failures reached `max_attempts`.
    Parked,
    /// The holder stopped renewing; another agent reclaimed the task.
    Expired,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Released => "released",
            Outcome::Failed => "failed",
            Outcome::Parked => "parked",
            Outcome::Expired => "expired",
        }
    }
}

/// What is known about one run: one lease generation of one task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    pub task: TaskId,
    /// `<generation>-<claim time>` ([`RunMeta::run_id`]): unique even if a task is reopened.
    pub run: String,
    pub generation: u64,
    pub agent: String,
    #[serde(default)]
    pub session: Option<String>,
    /// The worktree the holder worked in, to attribute agent logs by their working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worktree: Option<String>,
    /// The task's type, feature and value when it was claimed.
    #[serde(rename = "type", default)]
    pub task_type: Option<String>,
    #[serde(default)]
    pub feature: Option<String>,
    pub value: u32,
    /// The model tier or name the task was routed to, if any.
    #[serde(default)]
    pub routed_model: Option<String>,
    /// The token budget in force for the run.
    #[serde(default)]
    pub budget_tokens: Option<u64>,
    /// The estimated size of the context bundle handed over with the claim.
    #[serde(default)]
    pub context_tokens: Option<u64>,
    pub started_at: Timestamp,
    #[serde(default)]
    pub ended_at: Option<Timestamp>,
    #[serde(default)]
    pub outcome: Option<Outcome>,
}

impl RunMeta {
    /// Returns the run id of the lease generation `generation` acquired at `acquired_at`.
    pub fn run_id(generation: u64, acquired_at: Timestamp) -> String {
        format!("{generation}-{}", acquired_at.strftime("%Y%m%dT%H%M%SZ"))
    }
}

/// A run with its usage.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub meta: RunMeta,
    pub records: Vec<UsageRecord>,
}

impl Run {
    pub fn totals(&self) -> Totals {
        self.records.iter().collect()
    }

    /// Totals per model, in model order.
    pub fn totals_by_model(&self) -> BTreeMap<&str, Totals> {
        let mut by_model: BTreeMap<&str, Totals> = BTreeMap::new();
        for record in &self.records {
            by_model
                .entry(record.model.as_str())
                .or_default()
                .add(record);
        }
        by_model
    }
}

/// Why the ledger could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Git(#[from] crate::git::GitError),
    #[error("usage ledger `{reference}` is corrupt at {path}: {detail}")]
    Corrupt {
        reference: String,
        path: String,
        detail: String,
    },
    #[error("gave up writing `{reference}` after {tries} tries: other writers kept moving it")]
    Contention { reference: String, tries: u32 },
}

/// What a write to the ledger changed.
#[derive(Clone, Debug, PartialEq)]
pub struct Written {
    /// Records that were new (or larger copies of known ones).
    pub added: usize,
    /// The run as it now stands in the ledger.
    pub run: Run,
}

/// The usage ledger, reached through the same store (remote or local) as the leases.
#[derive(Debug)]
pub struct Ledger<'store, 'repo> {
    store: &'store LeaseStore<'repo>,
}

impl<'store, 'repo> Ledger<'store, 'repo> {
    pub fn new(store: &'store LeaseStore<'repo>) -> Self {
        Ledger { store }
    }

    fn repo(&self) -> &'repo Repository {
        self.store.repo()
    }

    /// Fetches every task's usage from the remote (nothing to do in local mode).
    pub fn refresh(&self) -> Result<(), LedgerError> {
        Ok(self.store.fetch(&format!("{USAGE_PREFIX}*"))?)
    }

    /// Reads every run of every task, as last fetched.
    pub fn all_runs(&self) -> Result<Vec<Run>, LedgerError> {
        let prefix = self.store.mirror_of(USAGE_PREFIX);
        let mut runs = Vec::new();
        for (reference, commit) in self.repo().references_under(&prefix)? {
            runs.extend(self.runs_at(&reference, commit)?);
        }
        runs.sort_by(|left, right| {
            (left.meta.started_at, &left.meta.task, &left.meta.run).cmp(&(
                right.meta.started_at,
                &right.meta.task,
                &right.meta.run,
            ))
        });
        Ok(runs)
    }

    /// Reads the runs of task `id`, as last fetched.
    pub fn runs(&self, id: &TaskId) -> Result<Vec<Run>, LedgerError> {
        let reference = self.store.mirror_of(&usage_ref(id));
        match self.repo().reference_commit(&reference)? {
            Some(commit) => self.runs_at(&reference, commit),
            None => Ok(Vec::new()),
        }
    }

    fn runs_at(&self, reference: &str, commit: ObjectId) -> Result<Vec<Run>, LedgerError> {
        let files = self.repo().files_under(commit, "runs")?.unwrap_or_default();
        let mut metas: BTreeMap<String, RunMeta> = BTreeMap::new();
        let mut records: HashMap<String, Vec<UsageRecord>> = HashMap::new();
        for file in files {
            let corrupt = |detail: String| LedgerError::Corrupt {
                reference: reference.to_owned(),
                path: file.path.clone(),
                detail,
            };
            let Some((run, name)) = file
                .path
                .strip_prefix("runs/")
                .and_then(|rest| rest.split_once('/'))
            else {
                continue;
            };
            let bytes = self.repo().read_blob(file.blob)?;
            match name {
                "run.json" => {
                    let meta = serde_json::from_slice(&bytes)
                        .map_err(|error| corrupt(error.to_string()))?;
                    metas.insert(run.to_owned(), meta);
                }
                "usage.jsonl" => {
                    records.insert(run.to_owned(), parse_records(&bytes).map_err(corrupt)?);
                }
                _ => {}
            }
        }
        Ok(metas
            .into_iter()
            .map(|(run, meta)| Run {
                records: records.remove(&run).unwrap_or_default(),
                meta,
            })
            .collect())
    }

    /// Adds `records` to the run `meta` describes and updates its meta (`outcome`,
    /// `ended_at`, `context_tokens` when given), in one compare-and-swap, redone on conflict.
    ///
    /// Records already there (same key) are kept once: the larger copy wins. Writing
    /// the same records twice changes nothing.
    pub fn write(
        &self,
        meta: &RunMeta,
        records: &[UsageRecord],
        now: Timestamp,
    ) -> Result<Written, LedgerError> {
        let reference = usage_ref(&meta.task);
        let mirror = self.store.mirror_of(&reference);
        for _ in 0..MAX_WRITE_TRIES {
            self.store.fetch(&reference)?;
            let current = self.repo().reference_commit(&mirror)?;
            let existing = match current {
                Some(commit) => self
                    .runs_at(&mirror, commit)?
                    .into_iter()
                    .find(|run| run.meta.run == meta.run),
                None => None,
            };
            let (merged_meta, old_records) = match existing {
                Some(run) => (merge_meta(run.meta, meta), run.records),
                None => (meta.clone(), Vec::new()),
            };
            let (merged, added) = merge_records(&old_records, records.to_vec());
            let run = Run {
                meta: merged_meta,
                records: merged,
            };
            let unchanged = current.is_some()
                && added == 0
                && self
                    .runs(&meta.task)?
                    .iter()
                    .any(|known| known.meta == run.meta);
            if unchanged {
                return Ok(Written { added, run });
            }
            let commit = self.commit(current, &run, added, now)?;
            match self
                .store
                .compare_and_swap_ref(&reference, current, Some(commit))?
            {
                CasOutcome::Won => return Ok(Written { added, run }),
                CasOutcome::Lost { .. } => {}
            }
        }
        Err(LedgerError::Contention {
            reference,
            tries: MAX_WRITE_TRIES,
        })
    }

    fn commit(
        &self,
        parent: Option<ObjectId>,
        run: &Run,
        added: usize,
        now: Timestamp,
    ) -> Result<ObjectId, LedgerError> {
        let repo = self.repo();
        let mut files: BTreeMap<String, ObjectId> = match parent {
            Some(commit) => repo
                .files_under(commit, "runs")?
                .unwrap_or_default()
                .into_iter()
                .map(|file| (file.path, file.blob))
                .collect(),
            None => BTreeMap::new(),
        };
        let directory = format!("runs/{}", run.meta.run);
        let mut meta = serde_json::to_vec_pretty(&run.meta).expect("run meta serializes");
        meta.push(b'\n');
        files.insert(format!("{directory}/run.json"), repo.write_blob(&meta)?);
        let mut lines = Vec::new();
        for record in &run.records {
            serde_json::to_writer(&mut lines, record).expect("usage record serializes");
            lines.push(b'\n');
        }
        files.insert(format!("{directory}/usage.jsonl"), repo.write_blob(&lines)?);
        let tree = repo.write_tree(&files)?;
        let totals = run.totals();
        let message = format!(
            "gitprio usage: {} run {}: +{added} records, {} tokens in {} requests{}\n",
            run.meta.task,
            run.meta.run,
            totals.tokens(),
            totals.requests,
            run.meta
                .outcome
                .map(|outcome| format!(", {}", outcome.as_str()))
                .unwrap_or_default()
        );
        Ok(repo.write_commit(&message, Some(tree), parent, now.as_second())?)
    }
}

/// Keeps what the ledger knows and adds what `update` brings: an outcome, an end, a size.
fn merge_meta(known: RunMeta, update: &RunMeta) -> RunMeta {
    RunMeta {
        outcome: update.outcome.or(known.outcome),
        ended_at: update.ended_at.or(known.ended_at),
        context_tokens: update.context_tokens.or(known.context_tokens),
        session: update.session.clone().or(known.session),
        worktree: update.worktree.clone().or(known.worktree),
        budget_tokens: update.budget_tokens.or(known.budget_tokens),
        ..known
    }
}

/// Merges `new` into `existing` by key, keeping the larger copy; returns the records
/// sorted by time then key, and how many were new or grew.
pub fn merge_records(existing: &[UsageRecord], new: Vec<UsageRecord>) -> (Vec<UsageRecord>, usize) {
    let mut by_key: BTreeMap<String, UsageRecord> = existing
        .iter()
        .map(|record| (record.key.clone(), record.clone()))
        .collect();
    let mut added = 0;
    for record in new {
        match by_key.get(&record.key) {
            Some(known) if known.total_tokens() >= record.total_tokens() => {}
            _ => {
                added += 1;
                by_key.insert(record.key.clone(), record);
            }
        }
    }
    let mut merged: Vec<UsageRecord> = by_key.into_values().collect();
    merged.sort_by(|left, right| (left.at, &left.key).cmp(&(right.at, &right.key)));
    (merged, added)
}

fn parse_records(bytes: &[u8]) -> Result<Vec<UsageRecord>, String> {
    bytes
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
        .enumerate()
        .map(|(index, line)| {
            serde_json::from_slice(line).map_err(|error| format!("line {}: {error}", index + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, output: u64) -> UsageRecord {
        UsageRecord {
            key: key.to_owned(),
            source: "manual".to_owned(),
            model: "claude-sonnet-4-5".to_owned(),
            input: 10,
            output,
            requests: 1,
            ..UsageRecord::default()
        }
    }

    #[test]
    fn merging_keeps_one_copy_per_key_and_the_larger() {
        let (merged, added) =
            merge_records(&[record("a", 5)], vec![record("a", 2), record("b", 1)]);
        assert_eq!(added, 1);
        assert_eq!(merged.len(), 2);
        let (merged, added) = merge_records(&merged, vec![record("a", 9)]);
        assert_eq!(added, 1);
        assert_eq!(merged.iter().find(|r| r.key == "a").unwrap().output, 9);
        let (again, added) = merge_records(&merged, merged.clone());
        assert_eq!((again, added), (merged, 0));
    }

    #[test]
    fn a_ledger_in_local_refs_round_trips_and_ignores_repeats() {
        let directory = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("git")
            .args(["init", "--quiet"])
            .arg(directory.path())
            .status()
            .unwrap();
        assert!(status.success());
        let repo = Repository::discover(directory.path()).unwrap();
        let store = LeaseStore::new(&repo, crate::lease::Mode::Local);
        let ledger = Ledger::new(&store);
        let now: Timestamp = "2026-11-01T12:00:00Z".parse().unwrap();
        let meta = RunMeta {
            task: TaskId::new("fix").unwrap(),
            run: "1-abcdef01".to_owned(),
            generation: 1,
            agent: "alice".to_owned(),
            session: None,
            worktree: None,
            task_type: Some("bug".to_owned()),
            feature: None,
            value: 3,
            routed_model: None,
            budget_tokens: Some(1000),
            context_tokens: None,
            started_at: now,
            ended_at: None,
            outcome: None,
        };
        let written = ledger
            .write(&meta, &[record("a", 5), record("b", 7)], now)
            .unwrap();
        assert_eq!(written.added, 2);
        let again = ledger.write(&meta, &[record("a", 5)], now).unwrap();
        assert_eq!(again.added, 0);
        let done = RunMeta {
            outcome: Some(Outcome::Completed),
            ended_at: Some(now),
            ..meta.clone()
        };
        ledger.write(&done, &[], now).unwrap();
        let runs = ledger.all_runs().unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].meta.outcome, Some(Outcome::Completed));
        assert_eq!(runs[0].totals().output, 12);
        assert_eq!(runs[0].totals().tokens(), 32);
        // The trees gitprio writes are valid git objects.
        let fsck = std::process::Command::new("git")
            .args(["fsck", "--strict", "--no-dangling"])
            .current_dir(directory.path())
            .output()
            .unwrap();
        assert!(
            fsck.status.success(),
            "{}",
            String::from_utf8_lossy(&fsck.stderr)
        );
        let log = repo
            .git(&["log", "--format=%s", "refs/gitprio/usage/fix"])
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&log.stdout).lines().count(), 2);
    }
}
