//! A cache of parsed task files keyed by blob id and path, so an unchanged file is parsed once.
//!
//! The blob id names the exact bytes and the path is part of the key (a task's path
//! and default id come from it), so an entry can never be stale. The file is a small
//! binary format rather than JSON because a warm `gitprio next` on a large queue
//! spends most of its time here. Loading checks the header, the checksum and the
//! record order; a record is decoded only when asked for. Records are stored in path
//! order, the order the queue is read in, so a warm run reads the file front to back
//! without an index. The file is rewritten atomically, and a corrupt, truncated or
//! foreign file gives an empty cache.
//!
//! When one run read one `.tasks` tree, the file names that tree and its config blob: its
//! records are then exactly the task files of the tree, and the next run that reads the
//! same tree takes them as they are, without walking the tree or looking each file up.
//!
//! Each task payload starts with the fields ranking needs (the head), so the queue index
//! reads those without decoding, or allocating, the rest.
//!
//! Layout, integers little-endian, strings as a `u32` byte length then UTF-8:
//!
//! ```text
//! file:    magic (8 bytes) | format version (u32) | parser version (string)
//!          | record count (u32) | checksum of what follows (u64)
//!          | snapshot tree (u8 length, bytes; length 0 for none)
//!          | [if a snapshot tree: its config blob (u8 length, bytes; length 0 for none)] | records
//! record:  blob id (u8 length, bytes) | path (string) | payload length (u32) | payload
//! payload: diagnostic count (u32) | diagnostics | task flag (u8) | task head | task rest
//! ```
//!
//! Records are sorted by path, then blob id, with no two alike. See `encode_parsed` for
//! the payload: a new task field goes at the end of the rest, in `encode_rest` and
//! `decode_rest`, with a new [`FORMAT_VERSION`].

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::Path;

use gix::ObjectId;

use crate::diagnostic::{Diagnostic, DiagnosticKind, Position, Severity};
use crate::task::{Budget, ParsedTask, Planning, Priority, Status, Task, TaskId};

/// Opens every cache file.
const MAGIC: [u8; 8] = *b"gitprioP";

/// Changes whenever the layout or the payload encoding changes.
const FORMAT_VERSION: u32 = 5;

/// Names the parser that produced cached entries: a new gitprio version re-parses.
const PARSER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Parsed task files by blob id and path.
#[derive(Default)]
pub struct ParseCache {
    /// The cache file as read.
    file: Vec<u8>,
    /// The records of `file`, in file order.
    loaded: Vec<Loaded>,
    /// The record of `loaded` that a lookup in path order asks for next.
    cursor: usize,
    /// The `.tasks` tree whose task files are exactly the records of `file`, if known.
    snapshot: Option<Snapshot>,
    /// The `.tasks` trees read since loading, one per read.
    trees: Vec<Snapshot>,
    /// Records encoded by [`ParseCache::insert`].
    added: Vec<Vec<u8>>,
    /// Where in `added` each added record is.
    added_index: HashMap<AddedKey, usize>,
}

impl std::fmt::Debug for ParseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParseCache")
            .field("file_bytes", &self.file.len())
            .field("loaded", &self.loaded.len())
            .field("snapshot", &self.snapshot)
            .field("added", &self.added.len())
            .finish_non_exhaustive()
    }
}

/// A `.tasks` tree and the blob of its `config.yaml`, if it has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub tree: ObjectId,
    pub config: Option<ObjectId>,
}

/// One record of the cache: read from the file, or added by this run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecordId {
    Loaded(usize),
    Added(usize),
}

/// One record of the file read, as ranges of it.
#[derive(Debug)]
struct Loaded {
    record: Range<usize>,
    parts: RecordParts,
    /// Whether this run asked for the record; unused records are dropped on save.
    used: bool,
}

/// Where the parts of a record sit in the bytes it was read from.
#[derive(Debug)]
struct RecordParts {
    blob: Range<usize>,
    path: Range<usize>,
    payload: Range<usize>,
}

/// Finds an added record without allocating a path: the path's hash, then the path itself is compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct AddedKey {
    blob: ObjectId,
    path_hash: u64,
}

impl AddedKey {
    fn new(blob: ObjectId, path: &[u8]) -> AddedKey {
        AddedKey {
            blob,
            path_hash: path_hash(path),
        }
    }
}

/// The fields of a cached task that ranking reads, borrowed from the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TaskHead<'a> {
    pub id: &'a str,
    pub priority: Priority,
    pub status: Status,
    pub value: u32,
    pub created: Option<&'a str>,
    pub depends_on: Vec<&'a str>,
}

/// A cached parse with only the head of its task decoded.
#[derive(Debug)]
pub(crate) struct CachedHead<'a> {
    pub diagnostics: Vec<Diagnostic>,
    pub task: Option<TaskHead<'a>>,
}

impl ParseCache {
    /// Reads the cache at `path`; a missing, corrupt, truncated or outdated file gives an empty cache.
    pub fn load(path: &Path) -> ParseCache {
        std::fs::read(path)
            .ok()
            .and_then(|file| ParseCache::from_file(file).ok())
            .unwrap_or_default()
    }

    fn from_file(file: Vec<u8>) -> Decoded<ParseCache> {
        let mut reader = Reader::new(&file);
        if reader.bytes(MAGIC.len())? != MAGIC
            || reader.u32()? != FORMAT_VERSION
            || reader.str()? != PARSER_VERSION
        {
            return Err(Unreadable);
        }
        let count = reader.length()?;
        let checksum = reader.u64()?;
        if checksum_of(reader.rest()) != checksum {
            return Err(Unreadable);
        }
        let snapshot = match reader.object_id()? {
            None => None,
            Some(tree) => Some(Snapshot {
                tree,
                config: reader.object_id()?,
            }),
        };
        let mut loaded: Vec<Loaded> = Vec::with_capacity(count.min(file.len()));
        for _ in 0..count {
            let start = reader.position;
            let parts = split_record(&mut reader)?;
            let (blob, path) = (&file[parts.blob.clone()], &file[parts.path.clone()]);
            let in_order = loaded
                .last()
                .is_none_or(|previous| record_order(&file, previous, path, blob) == Ordering::Less);
            if !in_order {
                return Err(Unreadable);
            }
            loaded.push(Loaded {
                record: start..reader.position,
                parts,
                used: false,
            });
        }
        if !reader.rest().is_empty() {
            return Err(Unreadable);
        }
        Ok(ParseCache {
            file,
            loaded,
            snapshot,
            ..ParseCache::default()
        })
    }

    /// Returns every record, in path order, and the config blob, if the records are
    /// exactly the task files of `.tasks` tree `tree`.
    pub(crate) fn snapshot_of(
        &mut self,
        tree: ObjectId,
    ) -> Option<(Vec<RecordId>, Option<ObjectId>)> {
        let snapshot = self.snapshot.filter(|snapshot| snapshot.tree == tree)?;
        self.trees.push(snapshot);
        for record in &mut self.loaded {
            record.used = true;
        }
        let records = (0..self.loaded.len()).map(RecordId::Loaded).collect();
        Some((records, snapshot.config))
    }

    /// Notes that the task files of a `.tasks` tree are being looked up one by one.
    pub(crate) fn read_tree(&mut self, snapshot: Snapshot) {
        self.trees.push(snapshot);
    }

    /// Returns the record of the file at `path` whose content is blob `blob`, if cached.
    pub(crate) fn find(&mut self, blob: &ObjectId, path: &str) -> Option<RecordId> {
        let path = path.as_bytes();
        if let Some(index) = self.find_loaded(blob.as_slice(), path) {
            self.cursor = index + 1;
            self.loaded[index].used = true;
            return Some(RecordId::Loaded(index));
        }
        let index = *self.added_index.get(&AddedKey::new(*blob, path))?;
        let parts = split_record(&mut Reader::new(&self.added[index])).ok()?;
        let bytes = &self.added[index];
        ((&bytes[parts.blob], &bytes[parts.path]) == (blob.as_slice(), path))
            .then_some(RecordId::Added(index))
    }

    /// Returns the index of the loaded record for `blob` at `path`, trying the cursor first.
    fn find_loaded(&self, blob: &[u8], path: &[u8]) -> Option<usize> {
        let file = &self.file;
        if let Some(record) = self.loaded.get(self.cursor)
            && record_order(file, record, path, blob) == Ordering::Equal
        {
            return Some(self.cursor);
        }
        self.loaded
            .binary_search_by(|record| record_order(file, record, path, blob))
            .ok()
    }

    /// Remembers the parse of the file at `path` whose content is blob `blob`.
    ///
    /// Keeps what reading the queue needs (see [`Detail::Queue`]): not the body, which
    /// is read again when shown, nor the positions of fields other than `id`.
    pub(crate) fn insert(
        &mut self,
        blob: ObjectId,
        path: &str,
        parsed: &ParsedTask,
    ) -> Option<RecordId> {
        let bytes = encode_record(blob, path, parsed, Detail::Queue)?;
        let key = AddedKey::new(blob, path.as_bytes());
        let index = if let Some(&index) = self.added_index.get(&key) {
            self.added[index] = bytes;
            index
        } else {
            self.added.push(bytes);
            self.added_index.insert(key, self.added.len() - 1);
            self.added.len() - 1
        };
        Some(RecordId::Added(index))
    }

    /// Forgets a record that cannot be decoded, so that it is not saved again.
    pub(crate) fn discard(&mut self, record: RecordId) {
        match record {
            RecordId::Loaded(index) => self.loaded[index].used = false,
            RecordId::Added(index) => self.added[index].clear(),
        }
    }

    /// Returns the bytes of a record and where its parts are in them.
    fn record(&self, record: RecordId) -> Option<(&[u8], RecordParts)> {
        match record {
            RecordId::Loaded(index) => {
                let loaded = self.loaded.get(index)?;
                let parts = RecordParts {
                    blob: loaded.parts.blob.clone(),
                    path: loaded.parts.path.clone(),
                    payload: loaded.parts.payload.clone(),
                };
                Some((&self.file, parts))
            }
            RecordId::Added(index) => {
                let bytes = self.added.get(index)?;
                Some((bytes, split_record(&mut Reader::new(bytes)).ok()?))
            }
        }
    }

    /// Returns the blob id and path of a record.
    pub(crate) fn key(&self, record: RecordId) -> Option<(ObjectId, &str)> {
        let (bytes, parts) = self.record(record)?;
        let blob = ObjectId::try_from(&bytes[parts.blob]).ok()?;
        Some((blob, std::str::from_utf8(&bytes[parts.path]).ok()?))
    }

    /// Decodes a record into an owned parse, whose task has an empty body.
    pub(crate) fn parsed(&self, record: RecordId) -> Option<ParsedTask> {
        let (bytes, parts) = self.record(record)?;
        decode_parsed(&bytes[parts.payload]).ok()
    }

    /// Decodes a record's diagnostics and the head of its task, borrowing the strings.
    pub(crate) fn head(&self, record: RecordId) -> Option<CachedHead<'_>> {
        let (bytes, parts) = self.record(record)?;
        let mut reader = Reader::new(&bytes[parts.payload]);
        let diagnostics = decode_diagnostics(&mut reader).ok()?;
        let task = match reader.u8().ok()? {
            0 => None,
            1 => Some(decode_head(&mut reader).ok()?),
            _ => return None,
        };
        Some(CachedHead { diagnostics, task })
    }

    /// Returns the tree to name in the saved file: the one tree this run read, if any.
    fn snapshot_to_save(&self) -> Option<Snapshot> {
        let first = *self.trees.first()?;
        self.trees
            .iter()
            .all(|&tree| tree == first)
            .then_some(first)
    }

    /// Writes the records used since loading to `path` (atomically), if anything changed.
    ///
    /// A run that read no tree (say, the working tree's files) leaves the file as it is.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let snapshot = self.snapshot_to_save();
        let unchanged = self.loaded.iter().all(|record| record.used) && snapshot == self.snapshot;
        if self.added.is_empty() && (unchanged || self.trees.is_empty()) {
            return Ok(());
        }
        let file = &self.file;
        let mut kept: Vec<(&[u8], &[u8], &[u8])> = self
            .loaded
            .iter()
            .filter(|record| record.used)
            .map(|record| {
                (
                    &file[record.parts.path.clone()],
                    &file[record.parts.blob.clone()],
                    &file[record.record.clone()],
                )
            })
            .collect();
        for bytes in &self.added {
            if let Ok(parts) = split_record(&mut Reader::new(bytes)) {
                kept.push((&bytes[parts.path], &bytes[parts.blob], bytes));
            }
        }
        kept.sort_unstable();
        kept.dedup_by(|right, left| (right.0, right.1) == (left.0, left.1));
        let records: Vec<&[u8]> = kept.into_iter().map(|(_, _, record)| record).collect();
        let bytes = encode_file(snapshot, &records)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let temporary = path.with_extension(format!("tmp.{}", std::process::id()));
        let written =
            std::fs::write(&temporary, &bytes).and_then(|()| std::fs::rename(&temporary, path));
        if written.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        written
    }
}

/// Lays out a cache file: the header, then `records` as they are.
fn encode_file(snapshot: Option<Snapshot>, records: &[&[u8]]) -> std::io::Result<Vec<u8>> {
    let count = u32::try_from(records.len())
        .map_err(|_| std::io::Error::other("too many task files to cache"))?;
    let records_length: usize = records.iter().map(|record| record.len()).sum();
    let mut file = Vec::with_capacity(128 + records_length);
    let mut writer = Writer { out: &mut file };
    writer.out.extend_from_slice(&MAGIC);
    writer.u32(FORMAT_VERSION);
    writer
        .str(PARSER_VERSION)
        .ok_or_else(|| std::io::Error::other("parser version too long"))?;
    writer.u32(count);
    let checksum_at = writer.out.len();
    writer.u64(0);
    let checked_at = writer.out.len();
    writer.object_id(snapshot.map(|snapshot| snapshot.tree));
    if let Some(snapshot) = snapshot {
        writer.object_id(snapshot.config);
    }
    for record in records {
        writer.out.extend_from_slice(record);
    }
    let checksum = checksum_of(&file[checked_at..]);
    file[checksum_at..checked_at].copy_from_slice(&checksum.to_le_bytes());
    Ok(file)
}

/// Orders a loaded record against the key (`path`, `blob`): the order records are stored in.
fn record_order(file: &[u8], record: &Loaded, path: &[u8], blob: &[u8]) -> Ordering {
    file[record.parts.path.clone()]
        .cmp(path)
        .then_with(|| file[record.parts.blob.clone()].cmp(blob))
}

/// Reads one record, returning where its blob id, path and payload are.
fn split_record(reader: &mut Reader<'_>) -> Decoded<RecordParts> {
    let blob_length = usize::from(reader.u8()?);
    let blob = reader.span(blob_length)?;
    let path_length = reader.length()?;
    let path = reader.span(path_length)?;
    let payload_length = reader.length()?;
    let payload = reader.span(payload_length)?;
    Ok(RecordParts {
        blob,
        path,
        payload,
    })
}

/// Encodes one record; `None` if a field is too long for the format (never for a file under 1 MiB).
fn encode_record(
    blob: ObjectId,
    path: &str,
    parsed: &ParsedTask,
    detail: Detail,
) -> Option<Vec<u8>> {
    let mut payload = Vec::with_capacity(512);
    encode_parsed(&mut Writer { out: &mut payload }, parsed, detail)?;
    let mut record = Vec::with_capacity(payload.len() + path.len() + 64);
    let mut writer = Writer { out: &mut record };
    let blob = blob.as_slice();
    writer.u8(u8::try_from(blob.len()).ok()?);
    writer.out.extend_from_slice(blob);
    writer.str(path)?;
    writer.bytes(&payload)?;
    Some(record)
}

/// How much of a task an encoding keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Detail {
    /// Every field, as parsed.
    Full,
    /// What reading the queue needs. Not the body: `show` reads it again. Of the field
    /// positions only that of `id`, where a duplicate id is reported: the others locate
    /// problems for `gitprio check`, which reads the working tree without the cache,
    /// and decoding a map of them for every task would double the cost of a warm read.
    Queue,
}

/// Encodes `parsed`: the diagnostics, then a task flag and the task's head and rest.
fn encode_parsed(writer: &mut Writer<'_>, parsed: &ParsedTask, detail: Detail) -> Option<()> {
    writer.length(parsed.diagnostics.len())?;
    for diagnostic in &parsed.diagnostics {
        encode_diagnostic(writer, diagnostic)?;
    }
    match &parsed.task {
        Some(task) => {
            writer.u8(1);
            encode_head(writer, task)?;
            encode_rest(writer, task, detail)?;
        }
        None => writer.u8(0),
    }
    Some(())
}

fn decode_parsed(payload: &[u8]) -> Decoded<ParsedTask> {
    let mut reader = Reader::new(payload);
    let diagnostics = decode_diagnostics(&mut reader)?;
    let task = match reader.u8()? {
        0 => None,
        1 => {
            let head = decode_head(&mut reader)?;
            Some(decode_rest(&mut reader, &head)?)
        }
        _ => return Err(Unreadable),
    };
    if !reader.rest().is_empty() {
        return Err(Unreadable);
    }
    let task = task.map(|mut task| {
        task.errors = diagnostics
            .iter()
            .filter(|diagnostic| diagnostic.is_error())
            .cloned()
            .collect();
        task
    });
    Ok(ParsedTask { task, diagnostics })
}

fn decode_diagnostics(reader: &mut Reader<'_>) -> Decoded<Vec<Diagnostic>> {
    let count = reader.length()?;
    let mut diagnostics = Vec::with_capacity(count.min(reader.rest().len()));
    for _ in 0..count {
        diagnostics.push(decode_diagnostic(reader)?);
    }
    Ok(diagnostics)
}

/// Encodes the fields ranking reads: see [`TaskHead`].
fn encode_head(writer: &mut Writer<'_>, task: &Task) -> Option<()> {
    writer.str(task.id.as_str())?;
    writer.u8(task.priority.level());
    writer.u8(status_code(task.status));
    writer.u32(task.value);
    writer.optional_str(task.created.as_deref())?;
    writer.length(task.depends_on.len())?;
    for dependency in &task.depends_on {
        writer.str(dependency.as_str())?;
    }
    Some(())
}

fn decode_head<'a>(reader: &mut Reader<'a>) -> Decoded<TaskHead<'a>> {
    let id = reader.task_id()?;
    let priority = Priority::new(reader.u8()?).ok_or(Unreadable)?;
    let status = status_from_code(reader.u8()?).ok_or(Unreadable)?;
    let value = reader.u32()?;
    let created = reader.optional_str()?;
    let count = reader.length()?;
    let mut depends_on = Vec::with_capacity(count.min(reader.rest().len()));
    for _ in 0..count {
        depends_on.push(reader.task_id()?);
    }
    Ok(TaskHead {
        id,
        priority,
        status,
        value,
        created,
        depends_on,
    })
}

/// Encodes the fields of `task` that are not in the head, the body and positions as `detail` says.
fn encode_rest(writer: &mut Writer<'_>, task: &Task, detail: Detail) -> Option<()> {
    writer.str(&task.path)?;
    writer.str(&task.title)?;
    writer.optional_str(task.task_type.as_deref())?;
    writer.optional_str(task.feature.as_deref())?;
    for list in [&task.labels, &task.owns, &task.context, &task.acceptance] {
        writer.strings(list)?;
    }
    match task.budget {
        Some(budget) => {
            writer.u8(1);
            writer.optional_u64(budget.tokens);
            writer.optional_u64(budget.usd.map(f64::to_bits));
        }
        None => writer.u8(0),
    }
    writer.optional_str(task.model.as_deref())?;
    writer.optional_str(task.plan.map(Planning::as_str))?;
    let full = detail == Detail::Full;
    writer.str(if full { &task.body } else { "" })?;
    writer.u32(task.body_line);
    let kept = |(field, _): &(&String, &Position)| full || field.as_str() == "id";
    writer.length(task.positions.iter().filter(kept).count())?;
    for (field, position) in task.positions.iter().filter(kept) {
        writer.str(field)?;
        writer.u32(position.line);
        writer.u32(position.column);
    }
    Some(())
}

fn decode_rest(reader: &mut Reader<'_>, head: &TaskHead<'_>) -> Decoded<Task> {
    let path = reader.string()?;
    let title = reader.string()?;
    let task_type = reader.optional_string()?;
    let feature = reader.optional_string()?;
    let labels = reader.strings()?;
    let owns = reader.strings()?;
    let context = reader.strings()?;
    let acceptance = reader.strings()?;
    let budget = match reader.u8()? {
        0 => None,
        1 => Some(Budget {
            tokens: reader.optional_u64()?,
            usd: reader.optional_u64()?.map(f64::from_bits),
        }),
        _ => return Err(Unreadable),
    };
    let model = reader.optional_string()?;
    let plan = match reader.optional_string()? {
        Some(text) => Some(Planning::parse(&text).ok_or(Unreadable)?),
        None => None,
    };
    let body = reader.string()?;
    let body_line = reader.u32()?;
    let count = reader.length()?;
    let mut positions = BTreeMap::new();
    for _ in 0..count {
        let field = reader.string()?;
        let position = Position::new(reader.u32()?, reader.u32()?);
        positions.insert(field, position);
    }
    Ok(Task {
        id: TaskId::from_valid(head.id),
        path,
        title,
        priority: head.priority,
        status: head.status,
        depends_on: head
            .depends_on
            .iter()
            .map(|id| TaskId::from_valid(id))
            .collect(),
        task_type,
        feature,
        value: head.value,
        labels,
        owns,
        context,
        acceptance,
        budget,
        model,
        created: head.created.map(str::to_owned),
        plan,
        body,
        body_line,
        positions,
        errors: Vec::new(),
    })
}

fn encode_diagnostic(writer: &mut Writer<'_>, diagnostic: &Diagnostic) -> Option<()> {
    writer.u8(match diagnostic.severity {
        Severity::Warning => 0,
        Severity::Error => 1,
    });
    writer.u8(kind_code(diagnostic.kind));
    writer.str(&diagnostic.path)?;
    writer.u32(diagnostic.line);
    writer.u32(diagnostic.column);
    writer.str(&diagnostic.message)
}

fn decode_diagnostic(reader: &mut Reader<'_>) -> Decoded<Diagnostic> {
    let severity = match reader.u8()? {
        0 => Severity::Warning,
        1 => Severity::Error,
        _ => return Err(Unreadable),
    };
    Ok(Diagnostic {
        severity,
        kind: kind_from_code(reader.u8()?).ok_or(Unreadable)?,
        path: reader.string()?,
        line: reader.u32()?,
        column: reader.u32()?,
        message: reader.string()?,
    })
}

fn status_code(status: Status) -> u8 {
    match status {
        Status::Open => 0,
        Status::Done => 1,
        Status::Blocked => 2,
        Status::Dropped => 3,
    }
}

fn status_from_code(code: u8) -> Option<Status> {
    Some(match code {
        0 => Status::Open,
        1 => Status::Done,
        2 => Status::Blocked,
        3 => Status::Dropped,
        _ => return None,
    })
}

fn kind_code(kind: DiagnosticKind) -> u8 {
    match kind {
        DiagnosticKind::Unreadable => 0,
        DiagnosticKind::Yaml => 1,
        DiagnosticKind::InvalidValue => 2,
        DiagnosticKind::MissingField => 3,
        DiagnosticKind::UnknownKey => 4,
        DiagnosticKind::DuplicateId => 5,
        DiagnosticKind::UnknownDependency => 6,
        DiagnosticKind::DependencyCycle => 7,
        DiagnosticKind::UnknownType => 8,
        DiagnosticKind::OwnsMatchesNothing => 9,
        DiagnosticKind::MissingContext => 10,
        DiagnosticKind::Config => 11,
    }
}

fn kind_from_code(code: u8) -> Option<DiagnosticKind> {
    Some(match code {
        0 => DiagnosticKind::Unreadable,
        1 => DiagnosticKind::Yaml,
        2 => DiagnosticKind::InvalidValue,
        3 => DiagnosticKind::MissingField,
        4 => DiagnosticKind::UnknownKey,
        5 => DiagnosticKind::DuplicateId,
        6 => DiagnosticKind::UnknownDependency,
        7 => DiagnosticKind::DependencyCycle,
        8 => DiagnosticKind::UnknownType,
        9 => DiagnosticKind::OwnsMatchesNothing,
        10 => DiagnosticKind::MissingContext,
        11 => DiagnosticKind::Config,
        _ => return None,
    })
}

/// Appends little-endian values; lengths that do not fit a `u32` give `None`.
struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl Writer<'_> {
    fn u8(&mut self, value: u8) {
        self.out.push(value);
    }

    fn u32(&mut self, value: u32) {
        self.out.extend_from_slice(&value.to_le_bytes());
    }

    fn u64(&mut self, value: u64) {
        self.out.extend_from_slice(&value.to_le_bytes());
    }

    fn length(&mut self, length: usize) -> Option<()> {
        self.u32(u32::try_from(length).ok()?);
        Some(())
    }

    fn bytes(&mut self, bytes: &[u8]) -> Option<()> {
        self.length(bytes.len())?;
        self.out.extend_from_slice(bytes);
        Some(())
    }

    fn str(&mut self, text: &str) -> Option<()> {
        self.bytes(text.as_bytes())
    }

    fn optional_str(&mut self, text: Option<&str>) -> Option<()> {
        self.u8(u8::from(text.is_some()));
        text.map_or(Some(()), |text| self.str(text))
    }

    /// Writes an object id as its length (0 for none) and bytes.
    fn object_id(&mut self, id: Option<ObjectId>) {
        let bytes = id.as_ref().map_or(&[][..], ObjectId::as_slice);
        self.u8(u8::try_from(bytes.len()).unwrap_or(0));
        self.out.extend_from_slice(bytes);
    }

    fn optional_u64(&mut self, value: Option<u64>) {
        match value {
            Some(value) => {
                self.u8(1);
                self.u64(value);
            }
            None => self.u8(0),
        }
    }

    fn strings(&mut self, list: &[String]) -> Option<()> {
        self.length(list.len())?;
        for item in list {
            self.str(item)?;
        }
        Some(())
    }
}

/// Why bytes could not be decoded: out of bounds, or not what [`Writer`] writes.
#[derive(Debug, PartialEq, Eq)]
struct Unreadable;

type Decoded<T> = Result<T, Unreadable>;

/// Reads what [`Writer`] wrote; anything out of bounds or malformed is [`Unreadable`], never a panic.
struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, position: 0 }
    }

    fn rest(&self) -> &'a [u8] {
        &self.bytes[self.position..]
    }

    fn bytes(&mut self, length: usize) -> Decoded<&'a [u8]> {
        let bytes = self.rest().get(..length).ok_or(Unreadable)?;
        self.position += length;
        Ok(bytes)
    }

    /// Skips `length` bytes, returning where they are.
    fn span(&mut self, length: usize) -> Decoded<Range<usize>> {
        let start = self.position;
        self.bytes(length)?;
        Ok(start..self.position)
    }

    fn array<const N: usize>(&mut self) -> Decoded<[u8; N]> {
        let mut array = [0; N];
        array.copy_from_slice(self.bytes(N)?);
        Ok(array)
    }

    fn u8(&mut self) -> Decoded<u8> {
        self.array::<1>().map(|[byte]| byte)
    }

    fn u32(&mut self) -> Decoded<u32> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Decoded<u64> {
        self.array().map(u64::from_le_bytes)
    }

    fn length(&mut self) -> Decoded<usize> {
        usize::try_from(self.u32()?).map_err(|_| Unreadable)
    }

    fn str(&mut self) -> Decoded<&'a str> {
        let length = self.length()?;
        std::str::from_utf8(self.bytes(length)?).map_err(|_| Unreadable)
    }

    fn string(&mut self) -> Decoded<String> {
        self.str().map(str::to_owned)
    }

    /// Reads a string that must be a valid task id.
    fn task_id(&mut self) -> Decoded<&'a str> {
        let id = self.str()?;
        if TaskId::is_valid(id) {
            Ok(id)
        } else {
            Err(Unreadable)
        }
    }

    fn optional_str(&mut self) -> Decoded<Option<&'a str>> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.str().map(Some),
            _ => Err(Unreadable),
        }
    }

    fn optional_string(&mut self) -> Decoded<Option<String>> {
        self.optional_str().map(|text| text.map(str::to_owned))
    }

    fn object_id(&mut self) -> Decoded<Option<ObjectId>> {
        match self.u8()? {
            0 => Ok(None),
            length => ObjectId::try_from(self.bytes(usize::from(length))?)
                .map(Some)
                .map_err(|_| Unreadable),
        }
    }

    fn optional_u64(&mut self) -> Decoded<Option<u64>> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.u64().map(Some),
            _ => Err(Unreadable),
        }
    }

    fn strings(&mut self) -> Decoded<Vec<String>> {
        let count = self.length()?;
        let mut list = Vec::with_capacity(count.min(self.rest().len()));
        for _ in 0..count {
            list.push(self.string()?);
        }
        Ok(list)
    }
}

/// Returns a 64-bit checksum of `bytes`; any change confined to one 8-byte word changes it.
fn checksum_of(bytes: &[u8]) -> u64 {
    const MULTIPLIER: u64 = 0x5851_f42d_4c95_7f2d;
    let mut hash = (bytes.len() as u64) ^ 0x9e37_79b9_7f4a_7c15;
    let mut words = bytes.chunks_exact(8);
    for chunk in &mut words {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        hash = (hash.rotate_left(23) ^ u64::from_le_bytes(word)).wrapping_mul(MULTIPLIER);
    }
    let mut last = [0; 8];
    last[..words.remainder().len()].copy_from_slice(words.remainder());
    (hash.rotate_left(23) ^ u64::from_le_bytes(last)).wrapping_mul(MULTIPLIER)
}

/// FNV-1a over a path, to key records without allocating.
fn path_hash(path: &[u8]) -> u64 {
    path.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::parse_task;

    impl ParseCache {
        fn get(&mut self, blob: &ObjectId, path: &str) -> Option<ParsedTask> {
            let record = self.find(blob, path)?;
            self.parsed(record)
        }
    }

    const BLOB: &str = "0123456789abcdef0123456789abcdef01234567";

    fn blob(hex: &str) -> ObjectId {
        ObjectId::from_hex(hex.as_bytes()).unwrap()
    }

    fn full_task() -> ParsedTask {
        let path = ".tasks/auth/every-field.md";
        let held_back = Diagnostic::error(
            DiagnosticKind::UnknownKey,
            path,
            Position::new(17, 1),
            "unknown key `prority`; did you mean `priority`?",
        );
        let positions = [
            ("id", Position::new(2, 1)),
            ("depends_on", Position::new(6, 1)),
            ("depends_on[1]", Position::new(6, 17)),
        ]
        .into_iter()
        .map(|(field, position)| (field.to_owned(), position))
        .collect();
        ParsedTask {
            task: Some(Task {
                id: TaskId::new("every-field").unwrap(),
                path: path.to_owned(),
                title: "Every field, even ünïcödé".to_owned(),
                priority: Priority::new(0).unwrap(),
                status: Status::Blocked,
                depends_on: vec![TaskId::new("a").unwrap(), TaskId::new("b.c_d-e").unwrap()],
                task_type: Some("feature".to_owned()),
                feature: Some("auth".to_owned()),
                value: 7,
                labels: vec!["one".to_owned(), String::new()],
                owns: vec!["src/auth/**".to_owned()],
                context: vec!["docs/auth.md".to_owned()],
                acceptance: vec!["cargo test".to_owned(), "no new warnings".to_owned()],
                budget: Some(Budget {
                    tokens: Some(200_000),
                    usd: Some(2.5),
                }),
                model: Some("large".to_owned()),
                created: Some("2026-01-02".to_owned()),
                plan: Some(Planning::Required),
                body: "# Body\n\ntext\n".to_owned(),
                body_line: 18,
                positions,
                errors: vec![held_back.clone()],
            }),
            diagnostics: vec![
                Diagnostic::warning(
                    DiagnosticKind::UnknownKey,
                    path,
                    Position::new(16, 1),
                    "unknown key `colour`",
                ),
                held_back,
            ],
        }
    }

    fn encoded(parsed: &ParsedTask) -> Vec<u8> {
        let mut payload = Vec::new();
        encode_parsed(&mut Writer { out: &mut payload }, parsed, Detail::Full).unwrap();
        payload
    }

    #[test]
    fn a_task_with_every_field_round_trips() {
        let parsed = full_task();
        assert_eq!(decode_parsed(&encoded(&parsed)), Ok(parsed));
        let failed = ParsedTask {
            task: None,
            diagnostics: full_task().diagnostics,
        };
        assert_eq!(decode_parsed(&encoded(&failed)), Ok(failed));
    }

    #[test]
    fn every_status_and_diagnostic_kind_round_trips() {
        for status in Status::ALL {
            assert_eq!(status_from_code(status_code(status)), Some(status));
        }
        for code in 0..=u8::MAX {
            if let Some(kind) = kind_from_code(code) {
                assert_eq!(kind_code(kind), code);
            }
        }
        assert_eq!((0..=u8::MAX).filter_map(kind_from_code).count(), 12);
    }

    #[test]
    fn a_parsed_file_comes_back_from_disk_without_body_or_field_positions() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("cache").join("parsed.bin");
        let text = "---\ntitle: Fix it\nid: fix-it\ndepends_on: [a, b]\nbogus: 1\n---\nBody\n";
        let parsed = parse_task(".tasks/fix-it.md", text.as_bytes());
        assert_eq!(parsed.diagnostics.len(), 1);
        let mut cache = ParseCache::default();
        cache.insert(blob(BLOB), ".tasks/fix-it.md", &parsed);
        cache.save(&path).unwrap();

        let mut loaded = ParseCache::load(&path);
        let mut expected = parsed;
        let task = expected.task.as_mut().unwrap();
        assert!(task.positions.len() > 1);
        task.body = String::new();
        task.positions.retain(|field, _| field == "id");
        assert_eq!(task.position_of("id"), Position::new(3, 1));
        assert_eq!(loaded.get(&blob(BLOB), ".tasks/fix-it.md"), Some(expected));
        assert_eq!(loaded.get(&blob(BLOB), ".tasks/renamed.md"), None);
        assert_eq!(
            loaded.get(
                &blob("1123456789abcdef0123456789abcdef01234567"),
                ".tasks/fix-it.md"
            ),
            None
        );
    }

    fn parse(path: &str) -> ParsedTask {
        parse_task(path, b"---\ntitle: Same content\n---\n")
    }

    #[test]
    fn the_same_content_at_two_paths_is_two_entries() {
        let directory = tempfile::tempdir().unwrap();
        let file = directory.path().join("parsed.bin");
        let mut cache = ParseCache::default();
        for path in [".tasks/a.md", ".tasks/b.md"] {
            cache.insert(blob(BLOB), path, &parse(path));
        }
        cache.save(&file).unwrap();
        for mut cache in [cache, ParseCache::load(&file)] {
            for (path, id) in [(".tasks/b.md", "b"), (".tasks/a.md", "a")] {
                let parsed = cache.get(&blob(BLOB), path).unwrap();
                assert_eq!(parsed.task.unwrap().id.as_str(), id);
            }
        }
    }

    #[test]
    fn lookups_in_any_order_find_what_is_cached() {
        let directory = tempfile::tempdir().unwrap();
        let file = directory.path().join("parsed.bin");
        let paths: Vec<String> = (0..20)
            .map(|index| format!(".tasks/t{index:02}.md"))
            .collect();
        let blob_of = |index: usize| blob(&format!("{index:02x}{}", &BLOB[2..]));
        let mut cache = ParseCache::default();
        for (index, path) in paths.iter().enumerate().rev() {
            cache.insert(blob_of(index), path, &parse(path));
        }
        cache.save(&file).unwrap();

        let mut cache = ParseCache::load(&file);
        let order = [
            3, 4, 5, 0, 19, 18, 7, 8, 1, 2, 6, 9, 10, 11, 12, 13, 14, 15, 16, 17,
        ];
        for index in order {
            let parsed = cache.get(&blob_of(index), &paths[index]).unwrap();
            assert_eq!(parsed.task.unwrap().path, paths[index]);
        }
        assert_eq!(cache.get(&blob_of(1), &paths[2]), None);
        cache.save(&file).unwrap();

        let mut cache = ParseCache::load(&file);
        for (index, path) in paths.iter().enumerate() {
            let changed = if index == 7 {
                blob_of(99)
            } else {
                blob_of(index)
            };
            if cache.get(&changed, path).is_none() {
                assert_eq!(index, 7);
                cache.insert(changed, path, &parse(path));
            }
        }
        cache.save(&file).unwrap();
        let mut cache = ParseCache::load(&file);
        assert_eq!(cache.loaded.len(), 20);
        assert!(cache.get(&blob_of(99), &paths[7]).is_some());
        assert!(cache.get(&blob_of(7), &paths[7]).is_none());
    }

    #[test]
    fn a_tree_read_alone_is_named_and_its_records_taken_whole_next_time() {
        let directory = tempfile::tempdir().unwrap();
        let file = directory.path().join("parsed.bin");
        let tree = blob("2123456789abcdef0123456789abcdef01234567");
        let other_tree = blob("3123456789abcdef0123456789abcdef01234567");
        let snapshot = Snapshot {
            tree,
            config: Some(blob(BLOB)),
        };
        let mut cache = ParseCache::default();
        cache.read_tree(snapshot);
        for path in [".tasks/a.md", ".tasks/b.md"] {
            cache.insert(blob(BLOB), path, &parse(path));
        }
        cache.save(&file).unwrap();

        let mut cache = ParseCache::load(&file);
        assert!(cache.snapshot_of(other_tree).is_none());
        let (records, config) = cache.snapshot_of(tree).unwrap();
        assert_eq!(config, snapshot.config);
        let paths: Vec<String> = records
            .iter()
            .map(|&record| cache.parsed(record).unwrap().task.unwrap().path)
            .collect();
        assert_eq!(paths, [".tasks/a.md", ".tasks/b.md"]);

        cache.read_tree(Snapshot {
            tree: other_tree,
            config: None,
        });
        cache.save(&file).unwrap();
        let mut cache = ParseCache::load(&file);
        assert!(
            cache.snapshot_of(tree).is_none(),
            "two trees read: none named"
        );
        assert_eq!(cache.loaded.len(), 2);
    }

    #[test]
    fn records_out_of_order_or_repeated_give_an_empty_cache() {
        let record =
            |path: &str| encode_record(blob(BLOB), path, &parse(path), Detail::Queue).unwrap();
        let (first, second) = (record(".tasks/a.md"), record(".tasks/b.md"));
        let file = encode_file(None, &[&first, &second]).unwrap();
        assert_eq!(ParseCache::from_file(file).unwrap().loaded.len(), 2);
        assert!(ParseCache::from_file(encode_file(None, &[&second, &first]).unwrap()).is_err());
        assert!(ParseCache::from_file(encode_file(None, &[&first, &first]).unwrap()).is_err());
    }

    #[test]
    fn save_keeps_only_used_records_and_skips_when_nothing_changed() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("parsed.bin");
        let other = blob("1123456789abcdef0123456789abcdef01234567");
        let mut cache = ParseCache::default();
        cache.insert(blob(BLOB), ".tasks/a.md", &full_task());
        cache.insert(other, ".tasks/b.md", &full_task());
        cache.save(&path).unwrap();

        let mut cache = ParseCache::load(&path);
        assert!(cache.get(&blob(BLOB), ".tasks/a.md").is_some());
        cache.save(&path).unwrap();
        let mut cache = ParseCache::load(&path);
        assert_eq!(
            cache.loaded.len(),
            2,
            "a run that read no tree changes nothing"
        );
        let tree = Snapshot {
            tree: blob("2123456789abcdef0123456789abcdef01234567"),
            config: None,
        };
        cache.read_tree(tree);
        assert!(cache.get(&blob(BLOB), ".tasks/a.md").is_some());
        cache.save(&path).unwrap();
        let mut cache = ParseCache::load(&path);
        assert_eq!(cache.loaded.len(), 1);
        assert!(cache.get(&other, ".tasks/b.md").is_none());

        std::fs::remove_file(&path).unwrap();
        let mut cache = ParseCache::load(&path);
        assert!(cache.get(&blob(BLOB), ".tasks/a.md").is_none());
        cache.save(&path).unwrap();
        assert!(!path.exists(), "an unchanged cache is not rewritten");
    }

    fn saved_file() -> Vec<u8> {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("parsed.bin");
        let mut cache = ParseCache::default();
        cache.insert(blob(BLOB), ".tasks/every-field.md", &full_task());
        cache.save(&path).unwrap();
        std::fs::read(&path).unwrap()
    }

    #[test]
    fn a_corrupt_truncated_or_foreign_file_gives_an_empty_cache() {
        let file = saved_file();
        assert_eq!(ParseCache::from_file(file.clone()).unwrap().loaded.len(), 1);
        for length in 0..file.len() {
            assert!(
                ParseCache::from_file(file[..length].to_vec()).is_err(),
                "{length}"
            );
        }
        let mut longer = file.clone();
        longer.push(0);
        assert!(ParseCache::from_file(longer).is_err());
        for index in 0..file.len() {
            let mut corrupt = file.clone();
            corrupt[index] ^= 0x20;
            assert!(ParseCache::from_file(corrupt).is_err(), "{index}");
        }
        let json = br#"{"version":1,"parser":"0.1.0","entries":[]}"#.to_vec();
        assert!(ParseCache::from_file(json).is_err());

        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("parsed.bin");
        std::fs::write(&path, &file[..file.len() / 2]).unwrap();
        let mut cache = ParseCache::load(&path);
        assert!(cache.get(&blob(BLOB), ".tasks/every-field.md").is_none());
    }

    #[test]
    fn a_malformed_payload_decodes_to_nothing_without_panicking() {
        let payload = encoded(&full_task());
        for length in 0..payload.len() {
            assert_eq!(
                decode_parsed(&payload[..length]),
                Err(Unreadable),
                "{length}"
            );
        }
        for index in 0..payload.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut corrupt = payload.clone();
                corrupt[index] ^= flip;
                let _ = decode_parsed(&corrupt);
            }
        }
    }
}
