//! Which run an imported record belongs to, and the records no run claims yet.
//!
//! A record the ledger already holds stays with the run that holds it (a request counts
//! once, whichever clone imported it first). Else it belongs to the run whose agent
//! session it names, else to a run whose worktree (or a directory inside it) it ran in
//! during the run's time; the deepest worktree wins, so a run in a worktree nested in
//! another checkout gets its own records. A forced task (`usage import --task`) takes
//! only what no other run claims, in its run's time.
//!
//! Records that match no run are not dropped: they wait in an unattributed store on this
//! machine (`.git/gitprio/usage-unattributed/`), in segments of records sorted by time,
//! and a later import gives them to a run that appears or changes (a run that was not
//! yet in the ledger, a `--task`), reading only the segments that overlap its time.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::import::fnv1a_128;
use super::index::KeyIndex;
use super::{Ledger, LedgerError, RunMeta, Totals, UsageRecord};
use crate::task::TaskId;

/// Records per segment of the unattributed store.
const SEGMENT_RECORDS: usize = 20_000;
const VERSION: u32 = 1;

/// The runs records can go to, and how to match them.
#[derive(Debug)]
pub struct Matcher<'a> {
    runs: &'a [RunMeta],
    /// Where `gitprio run` makes a worktree per task (`<worktrees>/<task id>`).
    worktrees: PathBuf,
    /// The task that takes the records in its run's time no other run claims.
    forced: Option<&'a TaskId>,
    now: Timestamp,
    /// Agent sessions named by a run's own records, by index into `runs`.
    run_sessions: HashMap<String, usize>,
    /// The keys runs hold in the ledger, by index into `runs` (those read: see
    /// [`Matcher::with_ledger_keys`]).
    held: Vec<(usize, KeyIndex)>,
    /// The commit of each task's usage ref, by task id: a run whose task's commit moved
    /// may hold records the unattributed store still keeps.
    versions: HashMap<String, String>,
    /// The SHA-256 of each run's worktree paths (see [`project_hash`]), by index into
    /// `runs`: Gemini CLI names the directory a chat ran in by that hash only.
    project_hashes: Vec<Vec<String>>,
    /// Records that ran in a directory two runs held at once, by the (task, run) pair:
    /// each went to the first, which may not be the one that spent it.
    ambiguous: RefCell<BTreeMap<(usize, usize), usize>>,
}

/// Gemini CLI's `projectHash` of a directory: the SHA-256 (hex) of its path as given.
pub fn project_hash(path: &str) -> String {
    use sha2::Digest as _;
    use std::fmt::Write as _;
    sha2::Sha256::digest(path.as_bytes())
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

impl<'a> Matcher<'a> {
    pub fn new(
        runs: &'a [RunMeta],
        worktrees: PathBuf,
        forced: Option<&'a TaskId>,
        now: Timestamp,
    ) -> Self {
        let project_hashes = runs
            .iter()
            .map(|meta| {
                let task_worktree = worktrees.join(meta.task.as_str());
                [
                    meta.worktree.clone(),
                    task_worktree.to_str().map(str::to_owned),
                ]
                .into_iter()
                .flatten()
                .map(|path| project_hash(&path))
                .collect()
            })
            .collect();
        Matcher {
            ambiguous: RefCell::default(),
            project_hashes,
            runs,
            worktrees,
            forced,
            now,
            run_sessions: HashMap::new(),
            held: Vec::new(),
            versions: HashMap::new(),
        }
    }

    /// Adds the commit of each task's usage ref (see [`Ledger::versions`]).
    #[must_use]
    pub fn with_versions(mut self, versions: HashMap<String, String>) -> Self {
        self.versions = versions;
        self
    }

    /// Reads from the ledger the keys held by the runs that may hold one of `records` (their
    /// time span overlaps the run's) and by the runs `store` has not been matched against
    /// since they last changed, so that a request the ledger holds is never given to
    /// another run, nor kept as unattributed.
    pub fn with_ledger_keys(
        mut self,
        ledger: &Ledger<'_, '_>,
        records: &[UsageRecord],
        store: &Unattributed,
    ) -> Result<Self, AttributeError> {
        let stale = store.stale(&self)?;
        let undated = records.iter().any(|record| record.at.is_none());
        let first = records.iter().filter_map(|record| record.at).min();
        let last = records.iter().filter_map(|record| record.at).max();
        for (index, meta) in self.runs.iter().enumerate() {
            let end = meta.ended_at.unwrap_or(self.now);
            let overlaps = undated
                || (first.is_some_and(|first| first <= end)
                    && last.is_some_and(|last| last >= meta.started_at));
            if (overlaps || stale.contains(&index))
                && let Some(keys) = ledger.run_keys(meta)?
            {
                self.held.push((index, keys));
            }
        }
        Ok(self)
    }

    /// The run that holds `record` in the ledger already, of those whose time holds it.
    fn holder(&self, record: &UsageRecord) -> Option<usize> {
        let mut hash = None;
        self.held
            .iter()
            .filter(|(index, _)| self.in_window(&self.runs[*index], record.at))
            .find(|(_, keys)| {
                keys.holds(*hash.get_or_insert_with(|| fnv1a_128(record.key.as_bytes())))
            })
            .map(|(index, _)| *index)
    }

    /// Adds the agent sessions that runs' own records name (by index into the runs): a
    /// record of such a session belongs to that run, whatever its time or directory.
    #[must_use]
    pub fn with_run_sessions(mut self, sessions: HashMap<String, usize>) -> Self {
        self.run_sessions = sessions;
        self
    }

    fn in_window(&self, meta: &RunMeta, at: Option<Timestamp>) -> bool {
        let end = meta.ended_at.unwrap_or(self.now);
        at.is_none_or(|at| at >= meta.started_at && at <= end)
    }

    /// How deep the record's directory is inside the run's worktree, if it is inside.
    fn place(&self, meta: &RunMeta, cwd: &Path) -> Option<usize> {
        let task_worktree = self.worktrees.join(meta.task.as_str());
        [
            meta.worktree.as_deref().map(Path::new),
            Some(task_worktree.as_path()),
        ]
        .into_iter()
        .flatten()
        .filter(|root| cwd.starts_with(root))
        .map(|root| root.components().count())
        .max()
    }

    /// Returns the index of the run `record` belongs to, if any.
    pub fn owner(&self, record: &UsageRecord) -> Option<usize> {
        if let Some(index) = self.holder(record) {
            return Some(index);
        }
        if let Some(session) = &record.session
            && let Some(index) = self
                .runs
                .iter()
                .position(|meta| meta.session.as_ref() == Some(session))
                .or_else(|| self.run_sessions.get(session).copied())
        {
            return Some(index);
        }
        let cwd = record.cwd.as_deref().map(Path::new);
        let mut best: Option<(usize, usize)> = None;
        // Another run whose worktree holds the record as deeply as the best one's.
        let mut tie = None;
        for (index, meta) in self.runs.iter().enumerate() {
            if !self.in_window(meta, record.at) {
                continue;
            }
            // The forced task's run comes last: it takes what no other run claims.
            let depth = if self.forced == Some(&meta.task) {
                Some(0)
            } else if let Some(cwd) = cwd {
                self.place(meta, cwd)
            } else {
                // A Gemini chat ran in the worktree itself (its hash names no subdirectory).
                record
                    .project_hash
                    .as_ref()
                    .filter(|hash| self.project_hashes[index].contains(hash))
                    .map(|_| 1)
            };
            if let Some(depth) = depth {
                match best {
                    Some((_, deepest)) if depth == deepest && depth > 0 => tie = Some(index),
                    Some((_, deepest)) if depth <= deepest => {}
                    _ => {
                        best = Some((index, depth));
                        tie = None;
                    }
                }
            }
        }
        if let (Some((index, _)), Some(other)) = (best, tie) {
            *self
                .ambiguous
                .borrow_mut()
                .entry((index, other))
                .or_default() += 1;
        }
        best.map(|(index, _)| index)
    }

    /// The records that ran in a directory two runs held at once (each went to the
    /// first): `(the run it went to, the other, how many)`, by index into the runs.
    pub fn ambiguous(&self) -> Vec<(usize, usize, usize)> {
        self.ambiguous
            .borrow()
            .iter()
            .map(|(&(given, other), &count)| (given, other, count))
            .collect()
    }

    /// Says which runs changed since the store was last matched against them: the run's
    /// meta, or its task's records in the ledger (the commit of its usage ref).
    fn fingerprint(&self, meta: &RunMeta) -> String {
        format!(
            "{} {} {} {:?} {:?} {:?} {}",
            meta.task,
            meta.run,
            meta.started_at,
            meta.ended_at,
            meta.session,
            meta.worktree,
            self.versions
                .get(meta.task.as_str())
                .map_or("-", String::as_str)
        )
    }
}

/// One file of unattributed records.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Segment {
    file: String,
    records: usize,
    /// The time span of its records; `undated` when some have no time.
    first: Option<Timestamp>,
    last: Option<Timestamp>,
    #[serde(default)]
    undated: bool,
    /// Totals per `hour model` (UTC hour of each request, `2026-11-02T10`; `-` without a
    /// time; stores written before hours were kept per day, `2026-11-02`).
    totals: BTreeMap<String, Totals>,
}

impl Segment {
    fn describe(file: String, records: &[UsageRecord]) -> Segment {
        let mut segment = Segment {
            file,
            records: records.len(),
            ..Segment::default()
        };
        for record in records {
            match record.at {
                Some(at) => {
                    segment.first = Some(segment.first.map_or(at, |first| first.min(at)));
                    segment.last = Some(segment.last.map_or(at, |last| last.max(at)));
                }
                None => segment.undated = true,
            }
            segment
                .totals
                .entry(format!("{} {}", hour(record.at), record.model))
                .or_default()
                .add(record);
        }
        segment
    }

    fn overlaps(&self, meta: &RunMeta, now: Timestamp) -> bool {
        let end = meta.ended_at.unwrap_or(now);
        self.undated
            || (self.first.is_some_and(|first| first <= end)
                && self.last.is_some_and(|last| last >= meta.started_at))
    }
}

/// The UTC hour of a request, `2026-11-02T10`: totals are kept per hour so that a report's
/// `--since`/`--until` reads the records of the one hour a bound cuts, not a whole day.
fn hour(at: Option<Timestamp>) -> String {
    at.map_or_else(|| "-".to_owned(), |at| at.to_string()[..13].to_owned())
}

/// The time a totals bucket spans: an hour (`2026-11-02T10`), or a day (`2026-11-02`, as
/// stores before hours kept them); `None` for records without a time (`-`).
fn bucket_span(bucket: &str) -> Option<(Timestamp, Timestamp)> {
    let (start, hours) = if bucket.len() == 10 {
        (format!("{bucket}T00:00:00Z"), 24)
    } else {
        (format!("{bucket}:00:00Z"), 1)
    };
    let start: Timestamp = start.parse().ok()?;
    Some((start, start + jiff::SignedDuration::from_hours(hours)))
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    version: u32,
    next: u64,
    segments: Vec<Segment>,
    /// The runs the stored records were last matched against.
    matched: BTreeSet<String>,
}

/// Unattributed spend by UTC hour and model, for reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnattributedTotals {
    /// `(hour, model)` → totals of the requests in the time asked for; hour is
    /// `YYYY-MM-DDTHH` (`YYYY-MM-DD` for a store written before hours), or `-` for
    /// records without a time (always counted: nothing places them).
    pub by_hour_model: BTreeMap<(String, String), Totals>,
}

/// Why the unattributed store could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} the unattributed usage store {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("the unattributed usage store {path} is corrupt: {detail}")]
    Corrupt { path: PathBuf, detail: String },
}

/// Why records could not be matched against the runs.
#[derive(Debug, thiserror::Error)]
pub enum AttributeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// The records no run claims yet, on this machine.
#[derive(Debug)]
pub struct Unattributed {
    directory: PathBuf,
}

/// Records a store gave to runs, and the change to make once they are safely in the ledger.
#[derive(Debug, Default)]
pub struct Claimed {
    /// `(run index, record)`.
    pub records: Vec<(usize, UsageRecord)>,
    /// Segments to write back without the claimed records.
    rewrites: Vec<(usize, Vec<UsageRecord>)>,
    matched: BTreeSet<String>,
}

impl Unattributed {
    /// The store of the repository whose common git directory is `common_dir`.
    pub fn open(common_dir: &Path) -> Self {
        Unattributed {
            directory: common_dir.join("gitprio").join("usage-unattributed"),
        }
    }

    fn index_path(&self) -> PathBuf {
        self.directory.join("index.json")
    }

    fn io(action: &'static str, path: &Path) -> impl Fn(io::Error) -> StoreError {
        let path = path.to_path_buf();
        move |source| StoreError::Io {
            action,
            path: path.clone(),
            source,
        }
    }

    fn load(&self) -> Result<Index, StoreError> {
        let path = self.index_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|error| StoreError::Corrupt {
                path,
                detail: error.to_string(),
            }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(Index {
                version: VERSION,
                ..Index::default()
            }),
            Err(error) => Err(Self::io("read", &path)(error)),
        }
    }

    fn save(&self, index: &Index) -> Result<(), StoreError> {
        let path = self.index_path();
        super::outbox::write_atomically(
            &path,
            &serde_json::to_vec(index).expect("the store index serializes"),
        )
        .map_err(Self::io("write", &path))
    }

    fn read_segment(&self, segment: &Segment) -> Result<Vec<UsageRecord>, StoreError> {
        let path = self.directory.join(&segment.file);
        let bytes = std::fs::read(&path).map_err(Self::io("read", &path))?;
        bytes
            .split(|byte| *byte == b'\n')
            .filter(|line| !line.is_empty())
            .enumerate()
            .map(|(number, line)| {
                serde_json::from_slice(line).map_err(|error| StoreError::Corrupt {
                    path: path.clone(),
                    detail: format!("line {}: {error}", number + 1),
                })
            })
            .collect()
    }

    fn write_segment(&self, file: &str, records: &[UsageRecord]) -> Result<(), StoreError> {
        let path = self.directory.join(file);
        let mut bytes = Vec::new();
        for record in records {
            serde_json::to_writer(&mut bytes, record).expect("a usage record serializes");
            bytes.push(b'\n');
        }
        super::outbox::write_atomically(&path, &bytes).map_err(Self::io("write", &path))
    }

    /// Gives stored records to the runs of `matcher` that changed since the store was
    /// last matched (all of a forced task's); returns them with the change to [`apply`]
    /// once they are in the ledger.
    ///
    /// [`apply`]: Unattributed::apply
    pub fn claim(&self, matcher: &Matcher<'_>) -> Result<Claimed, StoreError> {
        let index = self.load()?;
        let fingerprints: BTreeSet<String> = matcher
            .runs
            .iter()
            .map(|meta| matcher.fingerprint(meta))
            .collect();
        let changed: Vec<&RunMeta> = Self::changed(&index, matcher)
            .into_iter()
            .map(|position| &matcher.runs[position])
            .collect();
        let mut claimed = Claimed {
            matched: fingerprints,
            ..Claimed::default()
        };
        for (position, segment) in index.segments.iter().enumerate() {
            if !changed
                .iter()
                .any(|meta| segment.overlaps(meta, matcher.now))
            {
                continue;
            }
            let mut kept = Vec::new();
            let before = claimed.records.len();
            for record in self.read_segment(segment)? {
                match matcher.owner(&record) {
                    Some(run) => claimed.records.push((run, record)),
                    None => kept.push(record),
                }
            }
            if claimed.records.len() > before {
                claimed.rewrites.push((position, kept));
            }
        }
        Ok(claimed)
    }

    /// The runs of `matcher` (by index) that changed since the store was last matched
    /// against them, and the forced task's.
    fn changed(index: &Index, matcher: &Matcher<'_>) -> Vec<usize> {
        matcher
            .runs
            .iter()
            .enumerate()
            .filter(|(_, meta)| {
                matcher.forced == Some(&meta.task)
                    || !index.matched.contains(&matcher.fingerprint(meta))
            })
            .map(|(position, _)| position)
            .collect()
    }

    /// The runs of `matcher` (by index) that [`Unattributed::claim`] will match the store
    /// against; none when the store is empty.
    fn stale(&self, matcher: &Matcher<'_>) -> Result<Vec<usize>, StoreError> {
        let index = self.load()?;
        if index.segments.is_empty() {
            return Ok(Vec::new());
        }
        Ok(Self::changed(&index, matcher))
    }

    /// Removes claimed records (now in the ledger) and remembers the runs matched.
    pub fn apply(&self, claimed: Claimed) -> Result<(), StoreError> {
        let mut index = self.load()?;
        for (position, kept) in claimed.rewrites {
            let Some(segment) = index.segments.get_mut(position) else {
                continue;
            };
            self.write_segment(&segment.file, &kept)?;
            *segment = Segment::describe(segment.file.clone(), &kept);
        }
        let empty: Vec<String> = index
            .segments
            .iter()
            .filter(|segment| segment.records == 0)
            .map(|segment| segment.file.clone())
            .collect();
        index.segments.retain(|segment| segment.records > 0);
        index.matched = claimed.matched;
        index.version = VERSION;
        self.save(&index)?;
        for file in empty {
            let _ = std::fs::remove_file(self.directory.join(file));
        }
        Ok(())
    }

    /// Keeps `records`, which no run claims, in new segments sorted by time.
    pub fn add(&self, mut records: Vec<UsageRecord>) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        records.sort_by(|left, right| (left.at, &left.key).cmp(&(right.at, &right.key)));
        let mut index = self.load()?;
        for part in records.chunks(SEGMENT_RECORDS) {
            let file = format!("{:08}.jsonl", index.next);
            index.next += 1;
            self.write_segment(&file, part)?;
            index.segments.push(Segment::describe(file, part));
        }
        index.version = VERSION;
        self.save(&index)
    }

    /// How many records wait, and their tokens.
    pub fn count(&self) -> Result<(usize, u64), StoreError> {
        let index = self.load()?;
        Ok((
            index.segments.iter().map(|segment| segment.records).sum(),
            index
                .segments
                .iter()
                .flat_map(|segment| segment.totals.values())
                .map(Totals::tokens)
                .sum(),
        ))
    }

    /// The stored spend of requests at or after `since` and before `until`, by hour and
    /// model: the totals of each hour inside, and the records themselves of an hour a
    /// bound cuts (only the segments holding one are read).
    pub fn totals(
        &self,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
    ) -> Result<UnattributedTotals, StoreError> {
        let index = self.load()?;
        let inside = |at: Timestamp| {
            since.is_none_or(|since| at >= since) && until.is_none_or(|until| at < until)
        };
        let mut totals = UnattributedTotals::default();
        for segment in &index.segments {
            let mut records: Option<Vec<UsageRecord>> = None;
            for (key, part) in &segment.totals {
                let (bucket, model) = key.split_once(' ').unwrap_or((key.as_str(), ""));
                let entry = (bucket.to_owned(), model.to_owned());
                let Some((start, end)) = bucket_span(bucket) else {
                    totals.by_hour_model.entry(entry).or_default().merge(part);
                    continue;
                };
                let last = end - jiff::SignedDuration::from_nanos(1);
                if inside(start) && inside(last) {
                    totals.by_hour_model.entry(entry).or_default().merge(part);
                } else if since.is_none_or(|since| since < end)
                    && until.is_none_or(|until| until > start)
                {
                    // A bound cuts this bucket: count its records one by one.
                    if records.is_none() {
                        records = Some(self.read_segment(segment)?);
                    }
                    for record in records.iter().flatten() {
                        if record.model == model
                            && let Some(at) = record.at
                            && at >= start
                            && at < end
                            && inside(at)
                        {
                            totals
                                .by_hour_model
                                .entry(entry.clone())
                                .or_default()
                                .add(record);
                        }
                    }
                }
            }
        }
        Ok(totals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(task: &str, worktree: &str, start: &str, end: Option<&str>) -> RunMeta {
        RunMeta {
            task: TaskId::new(task).unwrap(),
            run: format!("1-{task}"),
            generation: 1,
            agent: "a".to_owned(),
            session: None,
            worktree: Some(worktree.to_owned()),
            task_type: None,
            feature: None,
            value: 1,
            routed_model: None,
            budget_tokens: None,
            context_tokens: None,
            started_at: start.parse().unwrap(),
            ended_at: end.map(|end| end.parse().unwrap()),
            outcome: None,
        }
    }

    fn record(key: &str, cwd: &str, at: &str) -> UsageRecord {
        UsageRecord {
            key: key.to_owned(),
            source: "claude".to_owned(),
            model: "m".to_owned(),
            at: Some(at.parse().unwrap()),
            cwd: Some(cwd.to_owned()),
            output: 5,
            requests: 1,
            ..UsageRecord::default()
        }
    }

    #[test]
    fn subdirectories_match_and_the_deepest_worktree_wins() {
        let runs = [
            meta("outer", "/repo", "2026-11-02T09:00:00Z", None),
            meta(
                "inner",
                "/repo/.git/gitprio/worktrees/inner",
                "2026-11-02T09:00:00Z",
                None,
            ),
        ];
        let now = "2026-11-02T10:00:00Z".parse().unwrap();
        let matcher = Matcher::new(
            &runs,
            PathBuf::from("/repo/.git/gitprio/worktrees"),
            None,
            now,
        );
        let at = "2026-11-02T09:30:00Z";
        assert_eq!(matcher.owner(&record("a", "/repo/src", at)), Some(0));
        assert_eq!(
            matcher.owner(&record("b", "/repo/.git/gitprio/worktrees/inner/src", at)),
            Some(1)
        );
        assert_eq!(matcher.owner(&record("c", "/repository", at)), None);
        assert_eq!(
            matcher.owner(&record("d", "/repo", "2026-11-02T08:00:00Z")),
            None
        );
    }

    #[test]
    fn stored_records_go_to_a_run_that_appears_later_and_only_once() {
        let directory = tempfile::tempdir().unwrap();
        let store = Unattributed::open(directory.path());
        let now = "2026-11-02T10:00:00Z".parse().unwrap();
        store
            .add(vec![
                record("a", "/w", "2026-11-02T09:30:00Z"),
                record("b", "/elsewhere", "2026-11-02T09:31:00Z"),
            ])
            .unwrap();
        assert_eq!(store.count().unwrap(), (2, 10));
        let none: [RunMeta; 0] = [];
        let claimed = store
            .claim(&Matcher::new(&none, PathBuf::from("/x"), None, now))
            .unwrap();
        assert!(claimed.records.is_empty());
        store.apply(claimed).unwrap();
        let runs = [meta("t", "/w", "2026-11-02T09:00:00Z", None)];
        let matcher = Matcher::new(&runs, PathBuf::from("/x"), None, now);
        let claimed = store.claim(&matcher).unwrap();
        assert_eq!(claimed.records.len(), 1);
        assert_eq!(claimed.records[0].1.key, "a");
        store.apply(claimed).unwrap();
        assert_eq!(store.count().unwrap(), (1, 5));
        // The run did not change: the store is not read again.
        assert!(store.claim(&matcher).unwrap().records.is_empty());
        let totals = store.totals(None, None).unwrap();
        assert_eq!(
            totals.by_hour_model[&("2026-11-02T09".to_owned(), "m".to_owned())].output,
            5
        );
    }
}
