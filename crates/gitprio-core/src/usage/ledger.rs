//! The usage ledger in git: `refs/gitprio/usage/<task-id>`, one directory per run.
//!
//! Each commit's tree holds `runs/<run>/run.json` (who ran it, when, how it ended)
//! and `runs/<run>/usage/<n>.jsonl`, chunks of records appended one per write (one
//! record per line; ledgers written before chunks hold one `runs/<run>/usage.jsonl`,
//! still read). A write appends only what is new, so its cost does not grow with the
//! run. Readers count each key once, the copy with the most tokens. Every
//! change is a compare-and-swap of the ref, like leases, so any clone (and the
//! GitHub Action) can compute reports, nothing conflicts with task-file edits, and
//! the ref outlives the lease (which `gc` deletes once the task is done).

use std::collections::BTreeMap;
use std::path::PathBuf;

use gix::ObjectId;
use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub(super) mod chunk;
pub mod counted;

use super::index::{Entries, KeyIndex};
use super::money::Cost;
use super::outbox;
use super::{PriceTable, Totals, UsageRecord};
use crate::git::{GitError, Repository};
use crate::lease::{CasOutcome, LeaseStore, StoreError};
use crate::task::TaskId;

/// The ref namespace of the usage ledger.
pub const USAGE_PREFIX: &str = "refs/gitprio/usage/";

/// How many times a write is redone when another writer moved the ref first.
const MAX_WRITE_TRIES: u32 = 8;

/// Records per chunk at most: a write of more appends several chunks, so the bytes of one
/// chunk (about 400 per record) are all it holds in memory, however much it adds.
const CHUNK_RECORDS: usize = 4096;

/// Returns the usage ref of task `id`.
pub fn usage_ref(id: &TaskId) -> String {
    format!("{USAGE_PREFIX}{id}")
}

/// How a run ended.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
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
    #[schemars(with = "String")]
    pub started_at: Timestamp,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
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

    /// Returns the run's cost at `prices`: the dollars of its priced tokens, and its
    /// tokens of models with no price.
    pub fn cost(&self, prices: &PriceTable) -> Cost {
        prices.total(&self.records)
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
    /// The run's meta as it now stands in the ledger.
    pub meta: RunMeta,
    /// The run's totals, every record in the ledger counted once.
    pub totals: Totals,
}

/// Where a write went: into the ledger, or kept on this machine until the ledger can take it.
#[derive(Debug)]
pub enum Delivery {
    Written(Box<Written>),
    /// The write failed (the remote refused or could not be reached): the records and the
    /// meta wait in `path` and the next write, or [`Ledger::deliver_kept`], delivers them.
    Kept {
        path: PathBuf,
        error: LedgerError,
    },
}

/// What [`Ledger::deliver_kept`] did.
#[derive(Debug, Default)]
pub struct Delivered {
    /// Writes delivered from the outbox.
    pub delivered: usize,
    /// Writes still waiting, and why the first of them failed.
    pub waiting: usize,
    pub error: Option<LedgerError>,
}

/// The usage ledger, reached through the same store (remote or local) as the leases.
#[derive(Debug)]
pub struct Ledger<'store, 'repo> {
    store: &'store LeaseStore<'repo>,
}

/// What the tree holds of one run.
#[derive(Debug, Default)]
struct RunFiles {
    meta: Option<ObjectId>,
    /// Record blobs: the old whole-run `usage.jsonl`, then the appended chunks in order.
    chunks: Vec<ObjectId>,
    /// The path of each chunk in the tree, in the order of `chunks`.
    paths: Vec<String>,
    next_chunk: u64,
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
        self.collect_runs(true)
    }

    /// Reads what is known of every run of every task, without their records (cheap).
    ///
    /// The metas of each ref are cached on this machine by the ref's commit
    /// (`.git/gitprio/usage-index/metas.json`), so only refs that moved are read.
    pub fn all_metas(&self) -> Result<Vec<RunMeta>, LedgerError> {
        let prefix = self.store.mirror_of(USAGE_PREFIX);
        let cache_path = self
            .repo()
            .common_dir()
            .join("gitprio")
            .join("usage-index")
            .join("metas.json");
        let cached: BTreeMap<String, (String, Vec<RunMeta>)> = std::fs::read(&cache_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        let mut fresh: BTreeMap<String, (String, Vec<RunMeta>)> = BTreeMap::new();
        let mut changed = false;
        for (reference, commit) in self.repo().references_under(&prefix)? {
            let commit_hex = commit.to_string();
            let metas = match cached.get(&reference) {
                Some((known, metas)) if *known == commit_hex => metas.clone(),
                _ => {
                    changed = true;
                    self.runs_at(&reference, commit, false)?
                        .into_iter()
                        .map(|run| run.meta)
                        .collect()
                }
            };
            fresh.insert(reference, (commit_hex, metas));
        }
        if changed || fresh.len() != cached.len() {
            let bytes = serde_json::to_vec(&fresh).expect("run metas serialize");
            let _ = outbox::write_atomically(&cache_path, &bytes);
        }
        let mut metas: Vec<RunMeta> = fresh.into_values().flat_map(|(_, metas)| metas).collect();
        metas.sort_by(|left, right| {
            (left.started_at, &left.task, left.generation).cmp(&(
                right.started_at,
                &right.task,
                right.generation,
            ))
        });
        Ok(metas)
    }

    fn sessions_cache_path(&self) -> PathBuf {
        self.repo()
            .common_dir()
            .join("gitprio")
            .join("usage-index")
            .join("sessions.json")
    }

    /// Returns the agent sessions that each run's own records name: session → (task, run).
    ///
    /// Chunks never change once written, so the sessions of each are cached on this
    /// machine by blob id (`.git/gitprio/usage-index/sessions.json`; writes add theirs):
    /// only chunks this machine never saw are read.
    pub fn record_sessions(
        &self,
    ) -> Result<std::collections::HashMap<String, (TaskId, String)>, LedgerError> {
        let cache_path = self.sessions_cache_path();
        let mut cache: BTreeMap<String, Vec<String>> = std::fs::read(&cache_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        let mut changed = false;
        let mut sessions = std::collections::HashMap::new();
        let prefix = self.store.mirror_of(USAGE_PREFIX);
        for (reference, commit) in self.repo().references_under(&prefix)? {
            for (run, files) in self.run_files(commit)? {
                let Some(meta_blob) = files.meta else {
                    continue;
                };
                let mut task = None;
                for blob in &files.chunks {
                    let key = blob.to_string();
                    if !cache.contains_key(&key) {
                        let records = self.read_chunk(&reference, &run, *blob)?;
                        cache.insert(key.clone(), chunk_sessions(records.iter()));
                        changed = true;
                    }
                    for session in &cache[&key] {
                        if task.is_none() {
                            task = Some(self.read_meta(&reference, &run, meta_blob)?.task);
                        }
                        let owner = (task.clone().expect("read above"), run.clone());
                        sessions.entry(session.clone()).or_insert(owner);
                    }
                }
            }
        }
        if changed {
            let bytes = serde_json::to_vec(&cache).expect("sessions serialize");
            let _ = outbox::write_atomically(&cache_path, &bytes);
        }
        Ok(sessions)
    }

    /// Notes the sessions of chunks this machine wrote, so they are never read back.
    fn note_chunk_sessions(&self, chunks: impl Iterator<Item = (ObjectId, Vec<String>)>) {
        let cache_path = self.sessions_cache_path();
        let mut cache: BTreeMap<String, Vec<String>> = std::fs::read(&cache_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        for (blob, sessions) in chunks {
            cache.insert(blob.to_string(), sessions);
        }
        let bytes = serde_json::to_vec(&cache).expect("sessions serialize");
        let _ = outbox::write_atomically(&cache_path, &bytes);
    }

    fn hand_cache_path(&self) -> PathBuf {
        self.repo()
            .common_dir()
            .join("gitprio")
            .join("usage-index")
            .join("hand.json")
    }

    fn load_hand_cache(&self) -> BTreeMap<String, Vec<counted::HandEntry>> {
        std::fs::read(self.hand_cache_path())
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    fn save_hand_cache(&self, cache: &BTreeMap<String, Vec<counted::HandEntry>>) {
        let bytes = serde_json::to_vec(cache).expect("hand entries serialize");
        let _ = outbox::write_atomically(&self.hand_cache_path(), &bytes);
    }

    /// The usage `meta`'s run holds that was recorded by hand (`usage record`, MCP
    /// `report_usage`, a `gitprio run` output record without a session), one record per
    /// request with its model, time and tokens, as last fetched.
    ///
    /// Chunks never change once written, so each chunk's is cached on this machine by blob
    /// id (`.git/gitprio/usage-index/hand.json`; writes add theirs): only chunks this
    /// machine never saw are read, and a run of imported logs costs a look-up per chunk.
    pub fn hand_recorded(&self, meta: &RunMeta) -> Result<Vec<UsageRecord>, LedgerError> {
        let mirror = self.store.mirror_of(&usage_ref(&meta.task));
        let Some(commit) = self.repo().reference_commit(&mirror)? else {
            return Ok(Vec::new());
        };
        let Some(files) = self.run_files(commit)?.remove(&meta.run) else {
            return Ok(Vec::new());
        };
        let mut cache = self.load_hand_cache();
        let mut changed = false;
        let mut hand = Vec::new();
        for blob in &files.chunks {
            let key = blob.to_string();
            if !cache.contains_key(&key) {
                let records = self.read_chunk(&mirror, &meta.run, *blob)?;
                cache.insert(key.clone(), counted::hand_entries(records.iter()));
                changed = true;
            }
            hand.extend(cache[&key].iter().map(counted::HandEntry::record));
        }
        if changed {
            self.save_hand_cache(&cache);
        }
        Ok(hand)
    }

    /// Notes the hand-recorded usage of chunks this machine wrote, so they are never read back.
    fn note_chunk_hand(&self, chunks: impl Iterator<Item = (ObjectId, Vec<counted::HandEntry>)>) {
        let mut cache = self.load_hand_cache();
        for (blob, entries) in chunks {
            cache.insert(blob.to_string(), entries);
        }
        self.save_hand_cache(&cache);
    }

    fn collect_runs(&self, with_records: bool) -> Result<Vec<Run>, LedgerError> {
        let prefix = self.store.mirror_of(USAGE_PREFIX);
        let mut runs = Vec::new();
        for (reference, commit) in self.repo().references_under(&prefix)? {
            runs.extend(self.runs_at(&reference, commit, with_records)?);
        }
        runs.sort_by(|left, right| {
            (left.meta.started_at, &left.meta.task, left.meta.generation).cmp(&(
                right.meta.started_at,
                &right.meta.task,
                right.meta.generation,
            ))
        });
        if with_records {
            self.count_once(&mut runs)?;
        }
        Ok(runs)
    }

    /// Keeps each request in one of `runs` (see [`counted`]): where two runs hold one key
    /// (two imports that took it at once), the one whose chunk of it was committed first.
    fn count_once(&self, runs: &mut [Run]) -> Result<(), LedgerError> {
        let shared = counted::shared_keys(runs);
        if shared.is_empty() {
            return Ok(());
        }
        let mut times: BTreeMap<(String, usize), Option<i64>> = BTreeMap::new();
        let mut holders: Vec<usize> = shared
            .iter()
            .flat_map(|(_, holders)| holders.iter().copied())
            .collect();
        holders.sort_unstable();
        holders.dedup();
        for holder in holders {
            let keys: std::collections::HashSet<&str> = shared
                .iter()
                .filter(|(_, holders)| holders.contains(&holder))
                .map(|(key, _)| key.as_str())
                .collect();
            for (key, time) in self.first_written(&runs[holder].meta, &keys)? {
                times.insert((key, holder), time);
            }
        }
        counted::count_once(runs, &shared, |key, holder| {
            times.get(&(key.to_owned(), holder)).copied().flatten()
        });
        Ok(())
    }

    /// The ledger time (seconds) at which `meta`'s run first held each of `keys`: the time
    /// of the commit that added the first of its chunks holding it.
    fn first_written(
        &self,
        meta: &RunMeta,
        keys: &std::collections::HashSet<&str>,
    ) -> Result<Vec<(String, Option<i64>)>, LedgerError> {
        let reference = self.store.mirror_of(&usage_ref(&meta.task));
        let Some(commit) = self.repo().reference_commit(&reference)? else {
            return Ok(Vec::new());
        };
        let Some(files) = self.run_files(commit)?.remove(&meta.run) else {
            return Ok(Vec::new());
        };
        let mut found = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (blob, path) in files.chunks.iter().zip(&files.paths) {
            let held: Vec<String> = self
                .read_chunk(&reference, &meta.run, *blob)?
                .into_iter()
                .filter(|record| {
                    keys.contains(record.key.as_str()) && seen.insert(record.key.clone())
                })
                .map(|record| record.key)
                .collect();
            if held.is_empty() {
                continue;
            }
            let log = self.repo().git(&[
                "log",
                "--diff-filter=A",
                "--format=%ct",
                "-1",
                &reference,
                "--",
                path,
            ])?;
            let time = String::from_utf8_lossy(&log.stdout).trim().parse().ok();
            found.extend(held.into_iter().map(|key| (key, time)));
        }
        Ok(found)
    }

    /// Reads the runs of task `id`, as last fetched.
    pub fn runs(&self, id: &TaskId) -> Result<Vec<Run>, LedgerError> {
        let reference = self.store.mirror_of(&usage_ref(id));
        let mut runs = match self.repo().reference_commit(&reference)? {
            Some(commit) => self.runs_at(&reference, commit, true)?,
            None => Vec::new(),
        };
        let others = self.runs_sharing_keys(id, &runs)?;
        if !others.is_empty() || runs.len() > 1 {
            // Settled as `all_runs` settles them: in its order, so ties go the same way.
            runs.extend(others);
            runs.sort_by(|left, right| {
                (left.meta.started_at, &left.meta.task, left.meta.generation).cmp(&(
                    right.meta.started_at,
                    &right.meta.task,
                    right.meta.generation,
                ))
            });
            self.count_once(&mut runs)?;
            runs.retain(|run| &run.meta.task == id);
        }
        // Run ids start with the generation: `10-...` sorts before `2-...` as text.
        runs.sort_by_key(|run| (run.meta.started_at, run.meta.generation));
        Ok(runs)
    }

    /// The runs of other tasks that hold one of the keys of `runs` (task `id`'s), found
    /// through their local key indexes; only runs whose time overlaps the records' are looked at.
    fn runs_sharing_keys(&self, id: &TaskId, runs: &[Run]) -> Result<Vec<Run>, LedgerError> {
        let records = || runs.iter().flat_map(|run| &run.records);
        if records().next().is_none() {
            return Ok(Vec::new());
        }
        let undated = records().any(|record| record.at.is_none());
        let first = records().filter_map(|record| record.at).min();
        let last = records().filter_map(|record| record.at).max();
        let hashes: Vec<u128> = records()
            .map(|record| super::import::fnv1a_128(record.key.as_bytes()))
            .collect();
        let mut found = Vec::new();
        for meta in self.all_metas()? {
            if &meta.task == id {
                continue;
            }
            let overlaps = undated
                || (first.is_some_and(|first| meta.ended_at.is_none_or(|end| first <= end))
                    && last.is_some_and(|last| last >= meta.started_at));
            if !overlaps {
                continue;
            }
            let Some(keys) = self.run_keys(&meta)? else {
                continue;
            };
            if hashes.iter().any(|hash| keys.holds(*hash)) {
                let reference = self.store.mirror_of(&usage_ref(&meta.task));
                if let Some(commit) = self.repo().reference_commit(&reference)? {
                    found.extend(
                        self.runs_at(&reference, commit, true)?
                            .into_iter()
                            .filter(|run| run.meta.run == meta.run),
                    );
                }
            }
        }
        Ok(found)
    }

    /// Lists each run's files in the tree of `commit`.
    fn run_files(&self, commit: ObjectId) -> Result<BTreeMap<String, RunFiles>, LedgerError> {
        let files = self.repo().files_under(commit, "runs")?.unwrap_or_default();
        let mut runs: BTreeMap<String, RunFiles> = BTreeMap::new();
        for file in files {
            let Some((run, name)) = file
                .path
                .strip_prefix("runs/")
                .and_then(|rest| rest.split_once('/'))
            else {
                continue;
            };
            let entry = runs.entry(run.to_owned()).or_default();
            if name == "run.json" {
                entry.meta = Some(file.blob);
            } else if name == "usage.jsonl" {
                entry.chunks.insert(0, file.blob);
                entry.paths.insert(0, file.path.clone());
            } else if let Some(number) = name
                .strip_prefix("usage/")
                .and_then(|chunk| chunk.strip_suffix(".jsonl"))
                .and_then(|number| number.parse::<u64>().ok())
            {
                // Paths come sorted, and chunk numbers are zero-padded: this is their order.
                entry.chunks.push(file.blob);
                entry.paths.push(file.path.clone());
                entry.next_chunk = entry.next_chunk.max(number + 1);
            }
        }
        Ok(runs)
    }

    fn read_meta(
        &self,
        reference: &str,
        run: &str,
        blob: ObjectId,
    ) -> Result<RunMeta, LedgerError> {
        let bytes = self.repo().read_blob(blob)?;
        serde_json::from_slice(&bytes).map_err(|error| LedgerError::Corrupt {
            reference: reference.to_owned(),
            path: format!("runs/{run}/run.json"),
            detail: error.to_string(),
        })
    }

    fn read_chunk(
        &self,
        reference: &str,
        run: &str,
        blob: ObjectId,
    ) -> Result<Vec<UsageRecord>, LedgerError> {
        chunk::parse_chunk(&self.repo().read_blob(blob)?).map_err(|detail| LedgerError::Corrupt {
            reference: reference.to_owned(),
            path: format!("runs/{run}/usage ({blob})"),
            detail,
        })
    }

    fn runs_at(
        &self,
        reference: &str,
        commit: ObjectId,
        with_records: bool,
    ) -> Result<Vec<Run>, LedgerError> {
        let mut runs = Vec::new();
        for (run, files) in self.run_files(commit)? {
            let Some(meta_blob) = files.meta else {
                continue;
            };
            let meta = self.read_meta(reference, &run, meta_blob)?;
            let mut records = Vec::new();
            if with_records {
                for blob in &files.chunks {
                    records.extend(self.read_chunk(reference, &run, *blob)?);
                }
                // A request appended twice (a larger copy later) counts once: the larger.
                records = merge_records(&[], records).0;
                counted::supersede(&mut records);
            }
            runs.push(Run { meta, records });
        }
        Ok(runs)
    }

    /// Adds `records` to the run `meta` describes and updates its meta (`outcome`,
    /// `ended_at`, `context_tokens` when given), in one compare-and-swap, redone on conflict.
    ///
    /// Only what is new is appended, as a chunk of its own: records already there (same
    /// key, no more tokens) are left out, so writing the same records twice changes
    /// nothing, and a write costs what it adds, not the size of the run. A local index
    /// of the run's keys (rebuilt from the ledger when missing) tells what is there.
    pub fn write(
        &self,
        meta: &RunMeta,
        records: &[UsageRecord],
        now: Timestamp,
    ) -> Result<Written, LedgerError> {
        let reference = usage_ref(&meta.task);
        for _ in 0..MAX_WRITE_TRIES {
            self.store.fetch(&reference)?;
            let ready = match self.ready(meta, records, now)? {
                Step::Unchanged(written) => return Ok(*written),
                Step::Ready(ready) => ready,
            };
            match self
                .store
                .compare_and_swap_ref(&reference, ready.current, Some(ready.commit))?
            {
                CasOutcome::Won => return Ok(self.landed(ready)),
                CasOutcome::Lost { .. } => {}
            }
        }
        Err(LedgerError::Contention {
            reference,
            tries: MAX_WRITE_TRIES,
        })
    }

    /// Makes the commit that writes `meta` and `records` over the ledger as last fetched,
    /// or says nothing would change.
    fn ready(
        &self,
        meta: &RunMeta,
        records: &[UsageRecord],
        now: Timestamp,
    ) -> Result<Step, LedgerError> {
        let reference = usage_ref(&meta.task);
        let mirror = self.store.mirror_of(&reference);
        let index_path = self.index_path(meta);
        let current = self.repo().reference_commit(&mirror)?;
        let mut runs = match current {
            Some(commit) => self.run_files(commit)?,
            None => BTreeMap::new(),
        };
        let files = runs.remove(&meta.run).unwrap_or_default();
        let known = files
            .meta
            .map(|blob| self.read_meta(&mirror, &meta.run, blob))
            .transpose()?;
        let mut index = self.index_of(&mirror, meta, &files)?;
        let appended = fresh_records(records, &index);
        let merged_meta = match &known {
            Some(known) => merge_meta(known.clone(), meta),
            None => meta.clone(),
        };
        let added = appended.len();
        if added == 0 && known.as_ref() == Some(&merged_meta) {
            index.save(&index_path);
            return Ok(Step::Unchanged(Box::new(Written {
                added,
                meta: merged_meta,
                totals: index.totals(),
            })));
        }
        let written = self.write_chunks(files.next_chunk, &appended)?;
        let commit = self.commit(
            current,
            &merged_meta,
            known.as_ref(),
            &written.chunks,
            &appended,
            now,
        )?;
        Ok(Step::Ready(Box::new(Ready {
            current,
            commit,
            index,
            index_path,
            written,
            added,
            meta: merged_meta,
        })))
    }

    /// The local index of the keys `meta`'s run holds in the ledger as last fetched, with
    /// the chunks it did not cover yet read and added.
    fn index_of(
        &self,
        mirror: &str,
        meta: &RunMeta,
        files: &RunFiles,
    ) -> Result<KeyIndex, LedgerError> {
        let mut index = KeyIndex::load(&self.index_path(meta), &files.chunks);
        for blob in &files.chunks {
            if !index.covers(blob) {
                let chunk = self.read_chunk(mirror, &meta.run, *blob)?;
                index.absorb(&[*blob], &chunk);
            }
        }
        Ok(index)
    }

    /// The keys `meta`'s run holds in the ledger as last fetched (`None` when the ledger
    /// has no such run), from its local index, which is saved brought up to date.
    pub(super) fn run_keys(&self, meta: &RunMeta) -> Result<Option<KeyIndex>, LedgerError> {
        let mirror = self.store.mirror_of(&usage_ref(&meta.task));
        let Some(commit) = self.repo().reference_commit(&mirror)? else {
            return Ok(None);
        };
        let Some(files) = self.run_files(commit)?.remove(&meta.run) else {
            return Ok(None);
        };
        let mut index = self.index_of(&mirror, meta, &files)?;
        index.save(&self.index_path(meta));
        Ok(Some(index))
    }

    /// The commit of each task's usage ref as last fetched, by task id: a run's records
    /// changed since an earlier look when its task's commit did.
    pub fn versions(&self) -> Result<std::collections::HashMap<String, String>, LedgerError> {
        let prefix = self.store.mirror_of(USAGE_PREFIX);
        Ok(self
            .repo()
            .references_under(&prefix)?
            .into_iter()
            .filter_map(|(reference, commit)| {
                let task = reference.strip_prefix(&prefix)?.to_owned();
                Some((task, commit.to_string()))
            })
            .collect())
    }

    /// Notes a write whose commit landed: the index and the sessions cache learn its chunks.
    fn landed(&self, ready: Box<Ready>) -> Written {
        let Ready {
            mut index,
            index_path,
            written,
            added,
            meta,
            ..
        } = *ready;
        let blobs: Vec<ObjectId> = written.chunks.iter().map(|(_, blob)| *blob).collect();
        index.absorb_entries(&blobs, written.entries);
        self.note_chunk_sessions(blobs.iter().copied().zip(written.sessions));
        self.note_chunk_hand(blobs.iter().copied().zip(written.hand));
        index.save(&index_path);
        Written {
            added,
            meta,
            totals: index.totals(),
        }
    }

    /// Fetches the ledger of `meta`'s task and has the store carry the write of `meta` in
    /// its next lease push (`gitprio done`: the run's outcome lands with the submission,
    /// in one atomic push). Returns what to hand [`Ledger::carried`] after that push;
    /// `None` when nothing would change.
    ///
    /// Nothing is kept in the outbox: the push is atomic, so a crash leaves both refs
    /// moved or neither, and a write kept before the lease moved would record an outcome
    /// that never happened.
    pub fn carry(&self, meta: &RunMeta, now: Timestamp) -> Result<Option<Carried>, LedgerError> {
        let reference = usage_ref(&meta.task);
        self.store.fetch(&reference)?;
        Ok(match self.ready(meta, &[], now)? {
            Step::Unchanged(_) => None,
            Step::Ready(ready) => {
                self.store.carry(&reference, ready.current, ready.commit);
                Some(Carried(ready))
            }
        })
    }

    /// After the lease push [`Ledger::carry`] prepared: the write, if it landed with it.
    pub fn carried(&self, carried: Carried) -> Option<Written> {
        self.store.carried().then(|| self.landed(carried.0))
    }

    /// Writes `appended` as chunk blobs numbered from `first`, on two threads: each takes
    /// the next chunk, serializes it, then hashes and writes its blob (each opens the
    /// repository again: a handle is not shared between threads; if the second cannot,
    /// the first writes every chunk). The second works out the index entries first and
    /// the first each chunk's sessions last, so the chunks left are shared out around
    /// that work and both end together. A large write keeps two cores busy and holds two
    /// chunks' bytes.
    ///
    /// The blobs are written uncompressed ([`Repository::open_for_bulk_blobs`]): deflate
    /// at its fastest level was a third of a large import's time after the logs were
    /// read, for a 1.8x smaller loose object (8.1 against 4.4 MB for 1 GiB of logs)
    /// that `git gc` or a push compresses anyway.
    fn write_chunks(
        &self,
        first: u64,
        appended: &[&UsageRecord],
    ) -> Result<WrittenChunks, LedgerError> {
        let parts: Vec<&[&UsageRecord]> = appended.chunks(CHUNK_RECORDS).collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let write_some = |repo: &Repository| -> Result<Vec<(usize, ObjectId)>, GitError> {
            let mut written = Vec::new();
            let mut bytes = Vec::new();
            loop {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(part) = parts.get(index) else {
                    return Ok(written);
                };
                bytes.clear();
                chunk::write_chunk(&mut bytes, part);
                written.push((index, repo.write_blob(&bytes)?));
            }
        };
        let write_some = &write_some;
        let git_dir = self.repo().common_dir();
        std::thread::scope(|scope| {
            let helper = scope.spawn(move || {
                let entries = Entries::of(appended.iter().copied());
                let written = Repository::open_for_bulk_blobs(git_dir)
                    .map_or_else(|_| Ok(Vec::new()), |second| write_some(&second));
                (written, entries)
            });
            let written = match Repository::open_for_bulk_blobs(git_dir) {
                Ok(first) => write_some(&first),
                Err(_) => write_some(self.repo()),
            };
            let hand = parts
                .iter()
                .map(|part| counted::hand_entries(part.iter().copied()))
                .collect();
            let sessions = parts
                .iter()
                .map(|part| chunk_sessions(part.iter().copied()))
                .collect();
            let (helper_written, entries) = helper.join().expect("writing chunks does not panic");
            let mut chunks = written?;
            chunks.extend(helper_written?);
            chunks.sort_unstable_by_key(|(index, _)| *index);
            Ok(WrittenChunks {
                chunks: chunks
                    .into_iter()
                    .map(|(index, blob)| (first + index as u64, blob))
                    .collect(),
                entries,
                sessions,
                hand,
            })
        })
    }

    fn index_path(&self, meta: &RunMeta) -> PathBuf {
        self.repo()
            .common_dir()
            .join("gitprio")
            .join("usage-index")
            .join(meta.task.as_str())
            .join(format!("{}.idx", meta.run))
    }

    fn outbox(&self) -> PathBuf {
        self.repo()
            .common_dir()
            .join("gitprio")
            .join("usage-outbox")
    }

    /// Writes like [`Ledger::write`], but never loses the records: they are saved on this
    /// machine first, and stay there when the write fails, for the next write or
    /// [`Ledger::deliver_kept`] to deliver. Writes kept earlier are tried first.
    pub fn write_or_keep(
        &self,
        meta: &RunMeta,
        records: &[UsageRecord],
        now: Timestamp,
    ) -> Result<Delivery, std::io::Error> {
        // A kept write that still fails must not hold this one back: it is tried anyway.
        self.deliver_kept(now);
        let path = outbox::save(&self.outbox(), meta, records)?;
        match self.write(meta, records, now) {
            Ok(written) => {
                outbox::remove(&path);
                Ok(Delivery::Written(Box::new(written)))
            }
            Err(error) => Ok(Delivery::Kept { path, error }),
        }
    }

    /// Writes like [`Ledger::write`], and keeps the write on this machine only when it
    /// fails: for records that can be read again until the write lands (an import, whose
    /// logs are read again unless it finishes), so the common case writes nothing twice.
    pub fn write_else_keep(
        &self,
        meta: &RunMeta,
        records: &[UsageRecord],
        now: Timestamp,
    ) -> Result<Delivery, std::io::Error> {
        self.deliver_kept(now);
        let error = match self.write(meta, records, now) {
            Ok(written) => return Ok(Delivery::Written(Box::new(written))),
            Err(error) => error,
        };
        let path = outbox::save(&self.outbox(), meta, records)?;
        Ok(Delivery::Kept { path, error })
    }

    /// Delivers the writes kept on this machine, oldest first; stops at the first failure.
    pub fn deliver_kept(&self, now: Timestamp) -> Delivered {
        let mut report = Delivered::default();
        let pending = outbox::pending(&self.outbox());
        for (index, path) in pending.iter().enumerate() {
            let result = outbox::load(path).and_then(|(meta, records)| {
                self.write(&meta, &records, now)
                    .map_err(|error| outbox::LoadError::Ledger(Box::new(error)))
            });
            match result {
                Ok(_) => {
                    outbox::remove(path);
                    report.delivered += 1;
                }
                Err(outbox::LoadError::Unreadable) => {
                    // Not ours to judge; left in place for a human, and skipped.
                }
                Err(outbox::LoadError::Ledger(error)) => {
                    report.waiting = pending.len() - index;
                    report.error = Some(*error);
                    break;
                }
            }
        }
        report
    }

    /// How many writes wait in this machine's outbox.
    pub fn kept(&self) -> usize {
        outbox::pending(&self.outbox()).len()
    }

    fn commit(
        &self,
        parent: Option<ObjectId>,
        meta: &RunMeta,
        known: Option<&RunMeta>,
        chunks: &[(u64, ObjectId)],
        appended: &[&UsageRecord],
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
        let directory = format!("runs/{}", meta.run);
        if known != Some(meta) {
            let mut bytes = serde_json::to_vec_pretty(meta).expect("run meta serializes");
            bytes.push(b'\n');
            files.insert(format!("{directory}/run.json"), repo.write_blob(&bytes)?);
        }
        for (number, blob) in chunks {
            files.insert(format!("{directory}/usage/{number:08}.jsonl"), *blob);
        }
        let tree = repo.write_tree(&files)?;
        let totals: Totals = appended.iter().copied().collect();
        let message = format!(
            "gitprio usage: {} run {}: +{} records, +{} tokens in {} requests{}\n",
            meta.task,
            meta.run,
            appended.len(),
            totals.tokens(),
            totals.requests,
            meta.outcome
                .map(|outcome| format!(", {}", outcome.as_str()))
                .unwrap_or_default()
        );
        Ok(repo.write_commit(&message, Some(tree), parent, now.as_second())?)
    }
}

/// What a write found over the ledger as last fetched.
enum Step {
    Unchanged(Box<Written>),
    Ready(Box<Ready>),
}

/// A write's commit, made and not pushed yet, and what to note once it lands.
struct Ready {
    current: Option<ObjectId>,
    commit: ObjectId,
    index: KeyIndex,
    index_path: PathBuf,
    written: WrittenChunks,
    added: usize,
    meta: RunMeta,
}

/// A write riding along with a lease push ([`Ledger::carry`]).
pub struct Carried(Box<Ready>);

impl std::fmt::Debug for Carried {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Carried")
            .field("commit", &self.0.commit)
            .finish_non_exhaustive()
    }
}

/// The chunks a write made, numbered, and what the index and the sessions cache learn from them.
struct WrittenChunks {
    chunks: Vec<(u64, ObjectId)>,
    entries: Entries,
    sessions: Vec<Vec<String>>,
    /// The usage recorded by hand in each chunk ([`counted::hand_entries`]).
    hand: Vec<Vec<counted::HandEntry>>,
}

/// Returns the records the run lacks (new keys, or larger copies of known ones), one per
/// key (its largest copy), by time then key.
fn fresh_records<'r>(records: &'r [UsageRecord], index: &KeyIndex) -> Vec<&'r UsageRecord> {
    let mut by_key: rustc_hash::FxHashMap<&str, usize> = rustc_hash::FxHashMap::default();
    by_key.reserve(records.len());
    let mut fresh: Vec<&UsageRecord> = Vec::new();
    for record in records {
        if !index.is_new(record) {
            continue;
        }
        match by_key.entry(record.key.as_str()) {
            std::collections::hash_map::Entry::Occupied(slot) => {
                let kept = &mut fresh[*slot.get()];
                if record.total_tokens() > kept.total_tokens() {
                    *kept = record;
                }
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(fresh.len());
                fresh.push(record);
            }
        }
    }
    fresh.sort_by(|left, right| (left.at, &left.key).cmp(&(right.at, &right.key)));
    fresh
}

/// The distinct sessions `records` name, sorted.
fn chunk_sessions<'r>(records: impl Iterator<Item = &'r UsageRecord>) -> Vec<String> {
    let distinct: rustc_hash::FxHashSet<&str> = records
        .filter_map(|record| record.session.as_deref())
        .collect();
    let mut sessions: Vec<String> = distinct.into_iter().map(str::to_owned).collect();
    sessions.sort_unstable();
    sessions
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

#[cfg(test)]
pub(crate) mod tests {
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

    /// A fresh repository (kept while the directory lives) for a ledger in local refs.
    fn local_repository() -> (tempfile::TempDir, Repository) {
        let directory = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("git")
            .args(["init", "--quiet"])
            .arg(directory.path())
            .status()
            .unwrap();
        assert!(status.success());
        let repo = Repository::discover(directory.path()).unwrap();
        (directory, repo)
    }

    /// Asserts that the objects gitprio wrote in the repository at `path` are valid git objects.
    fn assert_fsck_clean(path: &std::path::Path) {
        let fsck = std::process::Command::new("git")
            .args(["fsck", "--strict", "--no-dangling"])
            .current_dir(path)
            .output()
            .unwrap();
        assert!(
            fsck.status.success(),
            "{}",
            String::from_utf8_lossy(&fsck.stderr)
        );
    }

    /// Run `1-abcdef01` of task `fix`, by alice, started at `now`.
    pub(crate) fn run_meta(now: Timestamp) -> RunMeta {
        RunMeta {
            task: TaskId::new("fix").unwrap(),
            run: "1-abcdef01".to_owned(),
            generation: 1,
            agent: "alice".to_owned(),
            session: None,
            worktree: None,
            task_type: None,
            feature: None,
            value: 1,
            routed_model: None,
            budget_tokens: None,
            context_tokens: None,
            started_at: now,
            ended_at: None,
            outcome: None,
        }
    }

    #[test]
    fn a_large_write_appends_several_chunks_that_read_back_whole() {
        let (directory, repo) = local_repository();
        let store = LeaseStore::new(&repo, crate::lease::Mode::Local);
        let ledger = Ledger::new(&store);
        let now: Timestamp = "2026-11-01T12:00:00Z".parse().unwrap();
        let meta = RunMeta {
            task: TaskId::new("big").unwrap(),
            run: "1-x".to_owned(),
            ..run_meta(now)
        };
        let records: Vec<UsageRecord> = (0..=2 * CHUNK_RECORDS)
            .map(|number| record(&format!("k{number}"), 1))
            .collect();
        let written = ledger.write(&meta, &records, now).unwrap();
        assert_eq!(written.added, records.len());
        let commit = repo
            .reference_commit(&usage_ref(&meta.task))
            .unwrap()
            .unwrap();
        let files = ledger.run_files(commit).unwrap();
        assert_eq!(files["1-x"].chunks.len(), 3);
        for blob in &files["1-x"].chunks {
            let hex = blob.to_string();
            let loose = repo
                .common_dir()
                .join("objects")
                .join(&hex[..2])
                .join(&hex[2..]);
            let content = std::process::Command::new("git")
                .args(["cat-file", "-s", &hex])
                .current_dir(directory.path())
                .output()
                .unwrap();
            let content: u64 = String::from_utf8(content.stdout)
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            assert!(
                std::fs::metadata(&loose).unwrap().len() > content,
                "chunk {hex} is stored uncompressed"
            );
        }
        assert_fsck_clean(directory.path());
        let runs = ledger.runs(&meta.task).unwrap();
        assert_eq!(runs[0].records.len(), records.len());
        assert_eq!(runs[0].totals(), written.totals);
        let mut more = records.clone();
        more.push(record("k0", 5));
        let again = ledger.write(&meta, &more, now).unwrap();
        assert_eq!(again.added, 1);
        assert_eq!(again.totals.output, written.totals.output + 4);
        assert_eq!(ledger.runs(&meta.task).unwrap()[0].totals(), again.totals);
    }

    /// A ledger whose chunks an earlier gitprio wrote (format 1: one record object per
    /// line) reads whole, and a write appends to it in the current format.
    #[test]
    fn a_ledger_of_first_format_chunks_reads_and_grows() {
        let (directory, repo) = local_repository();
        let store = LeaseStore::new(&repo, crate::lease::Mode::Local);
        let ledger = Ledger::new(&store);
        let now: Timestamp = "2026-11-01T12:00:00Z".parse().unwrap();
        let meta = run_meta(now);
        let old = [record("a", 5), record("b", 7)];
        let mut lines = Vec::new();
        for record in &old {
            serde_json::to_writer(&mut lines, record).unwrap();
            lines.push(b'\n');
        }
        let mut meta_bytes = serde_json::to_vec_pretty(&meta).unwrap();
        meta_bytes.push(b'\n');
        let directory_name = format!("runs/{}", meta.run);
        let files = BTreeMap::from([
            (
                format!("{directory_name}/run.json"),
                repo.write_blob(&meta_bytes).unwrap(),
            ),
            (
                format!("{directory_name}/usage/00000000.jsonl"),
                repo.write_blob(&lines).unwrap(),
            ),
        ]);
        let tree = repo.write_tree(&files).unwrap();
        let commit = repo
            .write_commit("old ledger\n", Some(tree), None, now.as_second())
            .unwrap();
        repo.set_reference(&usage_ref(&meta.task), Some(commit))
            .unwrap();
        assert_eq!(ledger.runs(&meta.task).unwrap()[0].records, old);
        let written = ledger
            .write(&meta, &[record("a", 5), record("c", 1)], now)
            .unwrap();
        assert_eq!(written.added, 1);
        let records = &ledger.runs(&meta.task).unwrap()[0].records;
        assert_eq!(
            records.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        let chunk = repo
            .git(&[
                "show",
                &format!(
                    "{}:{directory_name}/usage/00000001.jsonl",
                    usage_ref(&meta.task)
                ),
            ])
            .unwrap();
        assert!(String::from_utf8_lossy(&chunk.stdout).starts_with("{\"format\":2,"));
        assert_fsck_clean(directory.path());
    }

    #[test]
    fn a_ledger_in_local_refs_round_trips_and_ignores_repeats() {
        let (directory, repo) = local_repository();
        let store = LeaseStore::new(&repo, crate::lease::Mode::Local);
        let ledger = Ledger::new(&store);
        let now: Timestamp = "2026-11-01T12:00:00Z".parse().unwrap();
        let meta = RunMeta {
            task_type: Some("bug".to_owned()),
            value: 3,
            budget_tokens: Some(1000),
            ..run_meta(now)
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
        for generation in [10, 2] {
            let other = RunMeta {
                run: format!("{generation}-x"),
                generation,
                ..meta.clone()
            };
            ledger.write(&other, &[record("c", 1)], now).unwrap();
        }
        let generations: Vec<u64> = ledger
            .runs(&meta.task)
            .unwrap()
            .iter()
            .map(|run| run.meta.generation)
            .collect();
        assert_eq!(generations, [1, 2, 10]);
        let runs: Vec<Run> = ledger
            .all_runs()
            .unwrap()
            .into_iter()
            .filter(|run| run.meta.run == meta.run)
            .collect();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].meta.outcome, Some(Outcome::Completed));
        assert_eq!(runs[0].totals().output, 12);
        assert_eq!(runs[0].totals().tokens(), 32);
        // The trees gitprio writes are valid git objects.
        assert_fsck_clean(directory.path());
        let log = repo
            .git(&["log", "--format=%s", "refs/gitprio/usage/fix"])
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&log.stdout).lines().count(), 4);
    }
}
