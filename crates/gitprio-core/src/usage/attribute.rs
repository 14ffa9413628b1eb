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
//!
//! A segment is written in the ledger's chunk format (`ledger::chunk`: a header naming
//! the records' shared contexts once, then one array per record), since version 2 of the
//! store; version 1 wrote one `UsageRecord` object per line, three times the bytes, which
//! made a large import that no run claims slower than one given to a task. Segments of
//! version 1 stay readable, and one is rewritten in the current format when a run claims
//! some of its records. A store of a newer version is refused, never misread.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use jiff::Timestamp;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::import::fnv1a_128;
use super::index::KeyIndex;
use super::ledger::chunk;
use super::{Ledger, LedgerError, RunMeta, Totals, UsageRecord};
use crate::task::TaskId;

/// Records per segment of the unattributed store.
const SEGMENT_RECORDS: usize = 20_000;
/// The store's version: 2 since segments are in the ledger's chunk format.
const VERSION: u32 = 2;

/// The runs records can go to, and how to match them.
#[derive(Debug)]
pub struct Matcher<'a> {
    runs: &'a [RunMeta],
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
    /// Each run's worktrees: the one it names, and `<worktrees>/<task id>` (where
    /// `gitprio run` makes one per task), prepared once rather than per record.
    roots: Vec<Vec<Root>>,
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

/// A worktree records can be inside, prepared once for matching every record.
#[derive(Debug)]
struct Root {
    path: PathBuf,
    /// How many components it has.
    depth: usize,
    /// Its text, when written plainly (see [`plain`]).
    text: Option<String>,
    /// Its [`project_hash`]: Gemini CLI names the directory a chat ran in by that only.
    hash: Option<String>,
    /// The [`project_hash`] of each directory its `HEAD` tracks, with how many
    /// components deeper it is: a chat started in a subdirectory has that one's hash.
    /// Listed (`git ls-tree`) when a chat first fails to match the root itself.
    subdirectories: OnceLock<HashMap<String, usize>>,
}

impl Root {
    fn new(path: PathBuf) -> Root {
        Root {
            depth: path.components().count(),
            text: path.to_str().filter(|text| plain(text)).map(str::to_owned),
            hash: path.to_str().map(project_hash),
            subdirectories: OnceLock::new(),
            path,
        }
    }

    /// How deep the directory a Gemini chat of `hash` ran in is, when it is this one or
    /// a directory its `HEAD` tracks.
    fn hash_depth(&self, hash: &str) -> Option<usize> {
        if self.hash.as_deref() == Some(hash) {
            return Some(self.depth);
        }
        self.subdirectories
            .get_or_init(|| subdirectory_hashes(&self.path))
            .get(hash)
            .map(|deeper| self.depth + deeper)
    }

    /// Whether `cwd` is this directory or inside it (`Path::starts_with`: whole
    /// components); `plain_cwd` says `cwd` is written plainly. Two plainly written paths
    /// are compared as text: comparing components was most of matching 66,000 records.
    fn contains(&self, cwd: &str, plain_cwd: bool) -> bool {
        match &self.text {
            Some(root) if plain_cwd => cwd.strip_prefix(root.as_str()).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with('/') || root.as_str() == "/"
            }),
            _ => Path::new(cwd).starts_with(&self.path),
        }
    }
}

/// The most directories of a worktree whose hashes are worked out: a larger tree's
/// deepest ones are left out rather than slowing every import.
const SUBDIRECTORIES: usize = 20_000;

/// The [`project_hash`] of each directory that `HEAD` of the worktree at `root` tracks,
/// with how many components below `root` it is; none when `root` is not a worktree.
fn subdirectory_hashes(root: &Path) -> HashMap<String, usize> {
    if !root.is_dir() {
        return HashMap::new();
    }
    let Ok(output) = crate::git::command()
        .current_dir(root)
        .args(["ls-tree", "-r", "-d", "-z", "--name-only", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
    else {
        return HashMap::new();
    };
    if !output.status.success() {
        return HashMap::new();
    }
    output
        .stdout
        .split(|byte| *byte == 0)
        .filter(|name| !name.is_empty())
        .take(SUBDIRECTORIES)
        .filter_map(|name| std::str::from_utf8(name).ok())
        .filter_map(|name| {
            let path = root.join(name);
            Some((project_hash(path.to_str()?), name.split('/').count()))
        })
        .collect()
}

/// Whether `path` is written plainly: absolute, without empty or `.` components or a
/// trailing separator, so that its text is its components joined by `/` (on Unix).
fn plain(path: &str) -> bool {
    cfg!(unix)
        && path.starts_with('/')
        && (path.len() == 1 || !path.ends_with('/'))
        && !path.contains("//")
        && !path.contains("/./")
        && !path.ends_with("/.")
}

/// This repository's directories (its checkout, its worktrees, where `gitprio run` makes
/// them): an unattributed record that ran in one is this repository's spend that no run
/// claims; one that ran anywhere else is another project's.
#[derive(Debug, Default)]
pub struct Places {
    roots: Vec<Root>,
}

impl Places {
    pub fn new(directories: impl IntoIterator<Item = PathBuf>) -> Places {
        Places {
            roots: directories.into_iter().map(Root::new).collect(),
        }
    }

    /// This repository's directories: its main checkout, its linked worktrees (`git
    /// worktree list`), where `gitprio run` makes a worktree per task, and the worktree
    /// each of `runs` names (`gitprio run --worktree-dir` puts them anywhere).
    pub fn of_repository<'m>(
        repo: &crate::git::Repository,
        runs: impl IntoIterator<Item = &'m RunMeta>,
    ) -> Places {
        let mut directories = vec![repo.git_directory(), crate::workspace::task_worktrees(repo)];
        if let Ok(output) = repo.git(&["worktree", "list", "--porcelain", "-z"])
            && output.status.success()
        {
            directories.extend(
                output
                    .stdout
                    .split(|byte| *byte == 0)
                    .filter_map(|field| field.strip_prefix(b"worktree "))
                    .filter_map(|path| std::str::from_utf8(path).ok())
                    .map(PathBuf::from),
            );
        }
        directories.extend(
            runs.into_iter()
                .filter_map(|meta| meta.worktree.as_ref().map(PathBuf::from)),
        );
        directories.sort();
        directories.dedup();
        Places::new(directories)
    }

    /// Where `record` ran: by its directory, or a Gemini chat by its `projectHash`.
    pub fn of(&self, record: &UsageRecord) -> Place {
        let inside = if let Some(cwd) = record.cwd.as_deref() {
            let plain_cwd = plain(cwd);
            self.roots.iter().any(|root| root.contains(cwd, plain_cwd))
        } else if let Some(hash) = record.project_hash.as_deref() {
            self.roots
                .iter()
                .any(|root| root.hash_depth(hash).is_some())
        } else {
            return Place::Unplaced;
        };
        if inside {
            Place::Here
        } else {
            Place::Elsewhere
        }
    }
}

impl<'a> Matcher<'a> {
    pub fn new(
        runs: &'a [RunMeta],
        worktrees: &Path,
        forced: Option<&'a TaskId>,
        now: Timestamp,
    ) -> Self {
        let roots = runs
            .iter()
            .map(|meta| {
                meta.worktree
                    .iter()
                    .map(PathBuf::from)
                    .chain([worktrees.join(meta.task.as_str())])
                    .map(Root::new)
                    .collect()
            })
            .collect();
        Matcher {
            ambiguous: RefCell::default(),
            runs,
            forced,
            now,
            run_sessions: HashMap::new(),
            roots,
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

    /// How deep the record's directory is inside a worktree of run `index`, if it is
    /// inside one; `plain_cwd` says `cwd` is written plainly.
    fn place(&self, index: usize, cwd: &str, plain_cwd: bool) -> Option<usize> {
        self.roots[index]
            .iter()
            .filter(|root| root.contains(cwd, plain_cwd))
            .map(|root| root.depth)
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
        let cwd = record.cwd.as_deref();
        let plain_cwd = cwd.is_some_and(plain);
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
                self.place(index, cwd, plain_cwd)
            } else {
                // A Gemini chat ran in the worktree itself (its hash names no subdirectory).
                record.project_hash.as_ref().and_then(|hash| {
                    self.roots[index]
                        .iter()
                        .filter_map(|root| root.hash_depth(hash))
                        .max()
                })
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
    /// time; stores written before hours were kept per day, `2026-11-02`). Still written
    /// for a gitprio that reads no [`Segment::spans`].
    totals: BTreeMap<String, Totals>,
    /// Its records summed per UTC hour, provider, model and place, with the time of the
    /// first and last request of each: the 5-hour windows need request times (a window
    /// opens at the first request after one closed), not hours. Segments written before
    /// have none: their records are read instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    spans: Vec<Span>,
}

/// Where an unattributed record ran, as far as this repository goes.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Place {
    /// In this repository: its checkout, one of its worktrees, or a directory inside one.
    Here,
    /// In another directory: another project's session.
    Elsewhere,
    /// The record names no directory (no `cwd`, no Gemini `projectHash`).
    #[default]
    Unplaced,
}

/// Requests of one provider, model and place within one UTC hour: their totals, and the
/// times of the first and last (`None` for records without a time).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub provider: String,
    pub model: String,
    /// The pricing speed (`fast`), as the records give it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<String>,
    pub place: Place,
    pub first: Option<Timestamp>,
    pub last: Option<Timestamp>,
    pub totals: Totals,
}

impl Span {
    fn of(record: &UsageRecord, place: Place) -> Span {
        Span {
            provider: super::report::provider(record).to_owned(),
            model: record.model.clone(),
            speed: record.speed.clone(),
            place,
            first: record.at,
            last: record.at,
            totals: std::iter::once(record).collect(),
        }
    }

    /// A record with the span's model and tokens, to price it.
    pub fn priced(&self) -> UsageRecord {
        UsageRecord {
            model: self.model.clone(),
            speed: self.speed.clone(),
            input: self.totals.input,
            output: self.totals.output,
            cache_write_5m: self.totals.cache_write_5m,
            cache_write_1h: self.totals.cache_write_1h,
            cache_read: self.totals.cache_read,
            reasoning: self.totals.reasoning,
            ..UsageRecord::default()
        }
    }
}

/// A span's key while a segment is described: UTC hour number and whether the request
/// is on the hour's first instant, provider, model, speed, place. A request on the hour
/// has a span of its own: a window that ends then holds it, and not the rest of the hour.
type SpanKey<'r> = (
    Option<(i64, bool)>,
    &'static str,
    &'r str,
    Option<&'r str>,
    Place,
);

impl Segment {
    fn describe<'r>(
        file: String,
        records: impl IntoIterator<Item = &'r UsageRecord>,
        places: &Places,
    ) -> Segment {
        let mut segment = Segment {
            file,
            ..Segment::default()
        };
        // Spans by UTC hour number, ...: the hour is written out once per key, not per
        // record (printing a timestamp costs more than the rest of the loop).
        let mut spans: FxHashMap<SpanKey<'r>, Span> = FxHashMap::default();
        for record in records {
            segment.records += 1;
            match record.at {
                Some(at) => {
                    segment.first = Some(segment.first.map_or(at, |first| first.min(at)));
                    segment.last = Some(segment.last.map_or(at, |last| last.max(at)));
                }
                None => segment.undated = true,
            }
            let hour = record.at.map(|at| {
                let second = at.as_second();
                (
                    second.div_euclid(3_600),
                    second.rem_euclid(3_600) == 0 && at.subsec_nanosecond() == 0,
                )
            });
            let place = places.of(record);
            let key = (
                hour,
                super::report::provider(record),
                record.model.as_str(),
                record.speed.as_deref(),
                place,
            );
            match spans.get_mut(&key) {
                Some(span) => {
                    span.totals.add(record);
                    span.first = span.first.min(record.at);
                    span.last = span.last.max(record.at);
                }
                None => {
                    spans.insert(key, Span::of(record, place));
                }
            }
        }
        let mut spans: Vec<Span> = spans.into_values().collect();
        spans.sort_by(|left, right| {
            (left.first, &left.provider, &left.model, left.place).cmp(&(
                right.first,
                &right.provider,
                &right.model,
                right.place,
            ))
        });
        for span in &spans {
            segment
                .totals
                .entry(format!("{} {}", hour(span.first), span.model))
                .or_default()
                .merge(&span.totals);
        }
        segment.spans = spans;
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

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    version: u32,
    next: u64,
    segments: Vec<Segment>,
    /// The runs the stored records were last matched against.
    matched: BTreeSet<String>,
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
    #[error(
        "the unattributed usage store {path} is of version {version}, written by a newer gitprio (this one reads up to version {VERSION}): upgrade gitprio"
    )]
    Newer { path: PathBuf, version: u32 },
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
    /// Where this repository's records run: each stored span says whether its records
    /// ran here (see [`Place`]).
    places: Places,
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
            places: Places::default(),
        }
    }

    /// Places the records it keeps (and reads from segments written without spans) by
    /// this repository's directories; without them every record is another project's.
    #[must_use]
    pub fn with_places(mut self, places: Places) -> Self {
        self.places = places;
        self
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
            Ok(bytes) => {
                let index: Index =
                    serde_json::from_slice(&bytes).map_err(|error| StoreError::Corrupt {
                        path: path.clone(),
                        detail: error.to_string(),
                    })?;
                if index.version > VERSION {
                    return Err(StoreError::Newer {
                        path,
                        version: index.version,
                    });
                }
                Ok(index)
            }
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

    /// Reads a segment of either version (the chunk reader tells them apart).
    fn read_segment(&self, segment: &Segment) -> Result<Vec<UsageRecord>, StoreError> {
        let path = self.directory.join(&segment.file);
        let bytes = std::fs::read(&path).map_err(Self::io("read", &path))?;
        chunk::parse_chunk(&bytes).map_err(|detail| StoreError::Corrupt { path, detail })
    }

    /// Writes `records` as the segment `file` (through `bytes`, a buffer to reuse) and
    /// returns its description.
    fn write_segment(
        &self,
        file: &str,
        records: &[&UsageRecord],
        bytes: &mut Vec<u8>,
    ) -> Result<Segment, StoreError> {
        let path = self.directory.join(file);
        bytes.clear();
        chunk::write_chunk(bytes, records);
        super::outbox::write_atomically(&path, bytes).map_err(Self::io("write", &path))?;
        Ok(Segment::describe(
            file.to_owned(),
            records.iter().copied(),
            &self.places,
        ))
    }

    /// Writes `parts` (file, records) as segments on two threads, each taking the next
    /// part: serializing 66,000 records and writing them was most of the time a large
    /// import spent after reading the logs. Returns their descriptions in order.
    fn write_segments(
        &self,
        parts: &[(String, &[&UsageRecord])],
    ) -> Result<Vec<Segment>, StoreError> {
        let next = AtomicUsize::new(0);
        let write_some = || -> Result<Vec<(usize, Segment)>, StoreError> {
            let mut written = Vec::new();
            let mut bytes = Vec::new();
            loop {
                let position = next.fetch_add(1, Ordering::Relaxed);
                let Some((file, records)) = parts.get(position) else {
                    return Ok(written);
                };
                written.push((position, self.write_segment(file, records, &mut bytes)?));
            }
        };
        let write_some = &write_some;
        let mut written = std::thread::scope(|scope| {
            let helper = (parts.len() > 1).then(|| scope.spawn(write_some));
            let mut written = write_some()?;
            if let Some(helper) = helper {
                written.extend(helper.join().expect("writing segments does not panic")?);
            }
            Ok::<_, StoreError>(written)
        })?;
        written.sort_unstable_by_key(|(position, _)| *position);
        Ok(written.into_iter().map(|(_, segment)| segment).collect())
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
            let kept: Vec<&UsageRecord> = kept.iter().collect();
            *segment = self.write_segment(&segment.file, &kept, &mut Vec::new())?;
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
    pub fn add(&self, records: Vec<UsageRecord>) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        // Sorted by reference: a record is ~250 bytes to move, a reference 8.
        let mut sorted: Vec<&UsageRecord> = records.iter().collect();
        sorted.sort_by(|left, right| (left.at, &left.key).cmp(&(right.at, &right.key)));
        let mut index = self.load()?;
        let parts: Vec<(String, &[&UsageRecord])> = sorted
            .chunks(SEGMENT_RECORDS)
            .map(|part| {
                let file = format!("{:08}.jsonl", index.next);
                index.next += 1;
                (file, part)
            })
            .collect();
        let segments = self.write_segments(&parts)?;
        index.segments.extend(segments);
        index.version = VERSION;
        drop(sorted);
        // Freeing a large import's records (a few strings each) costs milliseconds that
        // nothing needs to wait for.
        std::thread::spawn(move || drop(records));
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

    /// The stored spend of requests at or after `since` and before `until` (all of it
    /// without bounds), in spans: those of each hour wholly inside as stored, and the
    /// records themselves of a span a bound cuts or of a segment written without spans
    /// (only the segments holding one are read). Records without a time always count:
    /// nothing places them.
    pub fn spans(
        &self,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
    ) -> Result<Vec<Span>, StoreError> {
        let index = self.load()?;
        let inside = |at: Option<Timestamp>| {
            at.is_none_or(|at| {
                since.is_none_or(|since| at >= since) && until.is_none_or(|until| at < until)
            })
        };
        let mut spans = Vec::new();
        for segment in &index.segments {
            let whole = |span: &Span| inside(span.first) && inside(span.last);
            let outside = |span: &Span| {
                since.is_some_and(|since| span.last.is_some_and(|last| last < since))
                    || until.is_some_and(|until| span.first.is_some_and(|first| first >= until))
            };
            if !segment.spans.is_empty()
                && segment
                    .spans
                    .iter()
                    .all(|span| whole(span) || outside(span))
            {
                spans.extend(segment.spans.iter().filter(|span| whole(span)).cloned());
            } else if segment.records > 0 {
                // A bound cuts one of its spans, or it was written without spans: count
                // its records one by one.
                spans.extend(
                    self.read_segment(segment)?
                        .iter()
                        .filter(|record| inside(record.at))
                        .map(|record| Span::of(record, self.places.of(record))),
                );
            }
        }
        Ok(spans)
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
        let matcher = Matcher::new(&runs, Path::new("/repo/.git/gitprio/worktrees"), None, now);
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

    /// Matching a directory by its text gives what `Path::starts_with` gives.
    #[test]
    fn a_directory_is_inside_a_worktree_exactly_when_its_components_are() {
        let paths = [
            "/",
            "/repo",
            "/repo/",
            "/repo/src",
            "/repo//src",
            "/repo/./src",
            "/repo/.",
            "/repo/src/.",
            "/repository",
            "/repo.d/x",
            "/rep",
            "/repo/..",
            "/repo/../repo/x",
            "repo",
            "repo/src",
            "./repo",
            ".",
            "",
            "/.hidden/x",
            "/repo/.git/x",
            "//repo",
            "/repo/src/",
            "/r\u{e9}po/x",
        ];
        for root in paths {
            let prepared = Root::new(PathBuf::from(root));
            for cwd in paths {
                assert_eq!(
                    prepared.contains(cwd, plain(cwd)),
                    Path::new(cwd).starts_with(root),
                    "{cwd:?} inside {root:?}"
                );
            }
        }
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
            .claim(&Matcher::new(&none, Path::new("/x"), None, now))
            .unwrap();
        assert!(claimed.records.is_empty());
        store.apply(claimed).unwrap();
        let runs = [meta("t", "/w", "2026-11-02T09:00:00Z", None)];
        let matcher = Matcher::new(&runs, Path::new("/x"), None, now);
        let claimed = store.claim(&matcher).unwrap();
        assert_eq!(claimed.records.len(), 1);
        assert_eq!(claimed.records[0].1.key, "a");
        store.apply(claimed).unwrap();
        assert_eq!(store.count().unwrap(), (1, 5));
        // The run did not change: the store is not read again.
        assert!(store.claim(&matcher).unwrap().records.is_empty());
        let spans = store.spans(None, None).unwrap();
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].totals.output, 5);
        assert_eq!(spans[0].place, Place::Elsewhere);
        let at = "2026-11-02T09:31:00Z".parse().ok();
        assert_eq!((spans[0].first, spans[0].last), (at, at));
    }

    /// A store as the gitprio before version 2 left it: one record object per line.
    const VERSION_1_INDEX: &str = r#"{"version":1,"next":1,"segments":[{"file":"00000000.jsonl","records":2,"first":"2026-11-02T09:30:00Z","last":"2026-11-02T09:31:00Z","undated":false,"totals":{"2026-11-02 m":{"input":0,"output":10,"cache_write_5m":0,"cache_write_1h":0,"cache_read":0,"reasoning":0,"requests":2}}}],"matched":[]}"#;
    const VERSION_1_SEGMENT: &str = concat!(
        r#"{"key":"a","source":"claude","model":"m","at":"2026-11-02T09:30:00Z","input":0,"output":5,"cache_write_5m":0,"cache_write_1h":0,"cache_read":0,"reasoning":0,"requests":1,"cwd":"/w"}"#,
        "\n",
        r#"{"key":"b","source":"claude","model":"m","at":"2026-11-02T09:31:00Z","input":0,"output":5,"cache_write_5m":0,"cache_write_1h":0,"cache_read":0,"reasoning":0,"requests":1,"cwd":"/elsewhere"}"#,
        "\n"
    );

    fn write_store(store: &Unattributed, index: &str, segment: &str) {
        std::fs::create_dir_all(&store.directory).unwrap();
        std::fs::write(store.index_path(), index).unwrap();
        std::fs::write(store.directory.join("00000000.jsonl"), segment).unwrap();
    }

    fn in_chunk_format(store: &Unattributed, file: &str) -> bool {
        std::fs::read_to_string(store.directory.join(file))
            .unwrap()
            .starts_with("{\"format\":2,")
    }

    #[test]
    fn a_store_of_version_1_is_read_and_its_segments_rewritten_in_the_chunk_format() {
        let directory = tempfile::tempdir().unwrap();
        let store = Unattributed::open(directory.path());
        write_store(&store, VERSION_1_INDEX, VERSION_1_SEGMENT);
        assert_eq!(store.count().unwrap(), (2, 10));
        // It kept totals per day then, and no spans: its records are read.
        let output = |spans: Vec<Span>| spans.iter().map(|span| span.totals.output).sum::<u64>();
        assert_eq!(output(store.spans(None, None).unwrap()), 10);
        let since = "2026-11-02T09:31:00Z".parse().unwrap();
        assert_eq!(output(store.spans(Some(since), None).unwrap()), 5);
        store
            .add(vec![record("c", "/w", "2026-11-02T09:32:00Z")])
            .unwrap();
        assert!(in_chunk_format(&store, "00000001.jsonl"));
        assert!(!in_chunk_format(&store, "00000000.jsonl"));
        assert_eq!(store.count().unwrap(), (3, 15));
        let now = "2026-11-02T10:00:00Z".parse().unwrap();
        let runs = [meta("t", "/w", "2026-11-02T09:00:00Z", None)];
        let matcher = Matcher::new(&runs, Path::new("/x"), None, now);
        let claimed = store.claim(&matcher).unwrap();
        let records: Vec<&UsageRecord> = claimed.records.iter().map(|(_, record)| record).collect();
        assert_eq!(
            records,
            [
                &record("a", "/w", "2026-11-02T09:30:00Z"),
                &record("c", "/w", "2026-11-02T09:32:00Z")
            ]
        );
        store.apply(claimed).unwrap();
        // The old segment lost a record: it is written again, in the current format.
        assert!(in_chunk_format(&store, "00000000.jsonl"));
        assert!(!store.directory.join("00000001.jsonl").exists());
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(store.index_path()).unwrap()).unwrap();
        assert_eq!(index["version"], VERSION);
        let forced = TaskId::new("t").unwrap();
        let matcher = Matcher::new(&runs, Path::new("/x"), Some(&forced), now);
        let claimed = store.claim(&matcher).unwrap();
        assert_eq!(
            claimed.records,
            [(0, record("b", "/elsewhere", "2026-11-02T09:31:00Z"))]
        );
    }

    #[test]
    fn a_store_of_a_newer_version_is_refused_and_left_as_it_is() {
        let directory = tempfile::tempdir().unwrap();
        let store = Unattributed::open(directory.path());
        let newer = VERSION_1_INDEX.replacen("\"version\":1", "\"version\":3", 1);
        write_store(&store, &newer, "{\"format\":3}\n");
        let error = store.count().unwrap_err().to_string();
        assert!(
            error.contains("is of version 3, written by a newer gitprio (this one reads up to version 2): upgrade gitprio"),
            "{error}"
        );
        assert!(
            store
                .add(vec![record("c", "/w", "2026-11-02T09:32:00Z")])
                .is_err()
        );
        assert_eq!(std::fs::read_to_string(store.index_path()).unwrap(), newer);
    }

    /// Three segments, written on two threads: each holds its share of the records in
    /// time order, and every field reads back.
    #[test]
    fn a_large_import_is_split_into_segments_in_time_order_that_read_back_whole() {
        let directory = tempfile::tempdir().unwrap();
        let store = Unattributed::open(directory.path());
        let start: Timestamp = "2026-11-01T00:00:00Z".parse().unwrap();
        let mut records: Vec<UsageRecord> = (0..2 * SEGMENT_RECORDS + 3)
            .map(|number| UsageRecord {
                key: format!("claude:msg_{number}:req"),
                source: ["claude", "codex"][number % 2].to_owned(),
                session: (number % 3 == 0).then(|| format!("session-{}", number % 7)),
                model: ["m", "n\"quoted\""][number % 2].to_owned(),
                // Newest first, so the store must sort; some share a time, one has none.
                at: (number != 5).then(|| {
                    start
                        + jiff::SignedDuration::from_secs(
                            i64::try_from(900_000 - number * 20).unwrap(),
                        )
                }),
                input: number as u64,
                output: 7,
                cache_write_5m: 1,
                cache_write_1h: 2,
                cache_read: 3,
                reasoning: 4,
                requests: 1,
                sidechain: number % 5 == 0,
                speed: (number % 11 == 0).then(|| "fast".to_owned()),
                cwd: Some(format!("/w/{}", number % 4)),
                branch: (number % 2 == 0).then(|| "main".to_owned()),
                project_hash: None,
            })
            .collect();
        store.add(records.clone()).unwrap();
        let index = store.load().unwrap();
        assert_eq!(
            index
                .segments
                .iter()
                .map(|segment| (segment.file.as_str(), segment.records))
                .collect::<Vec<_>>(),
            [
                ("00000000.jsonl", SEGMENT_RECORDS),
                ("00000001.jsonl", SEGMENT_RECORDS),
                ("00000002.jsonl", 3)
            ]
        );
        assert!(index.segments[0].undated && !index.segments[1].undated);
        assert!(index.segments[1].last < index.segments[2].first);
        let all: Totals = records.iter().collect();
        let spans = store.spans(None, None).unwrap();
        let mut summed = Totals::default();
        for span in &spans {
            summed.merge(&span.totals);
        }
        assert_eq!(summed, all);
        assert!(spans.iter().any(|span| span.first.is_none()));
        // A bound inside a segment reads its records: the same totals either side.
        let middle = records[SEGMENT_RECORDS].at;
        let mut halves = Totals::default();
        for span in store
            .spans(None, middle)
            .unwrap()
            .iter()
            .chain(&store.spans(middle, None).unwrap())
            .filter(|span| span.first.is_some())
        {
            halves.merge(&span.totals);
        }
        let undated: Totals = records
            .iter()
            .filter(|record| record.at.is_none())
            .collect();
        halves.merge(&undated);
        assert_eq!(halves, all);
        let runs = [meta("t", "/elsewhere", "2026-01-01T00:00:00Z", None)];
        let forced = TaskId::new("t").unwrap();
        let now = "2026-12-01T00:00:00Z".parse().unwrap();
        let claimed = store
            .claim(&Matcher::new(&runs, Path::new("/x"), Some(&forced), now))
            .unwrap();
        records.sort_by(|left, right| (left.at, &left.key).cmp(&(right.at, &right.key)));
        let read: Vec<UsageRecord> = claimed
            .records
            .into_iter()
            .map(|(_, record)| record)
            .collect();
        assert_eq!(read, records);
    }
}
