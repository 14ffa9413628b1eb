//! Importing token usage from the logs agent CLIs already write: Claude Code transcripts
//! and `claude -p` output, Codex CLI rollouts and `codex exec --json` events, Gemini CLI chats.
//!
//! Logs are streamed line by line in bounded memory; only lines holding a format's byte
//! marker are parsed, into borrowed structs that skip what they do not need. The format
//! is told by content ([`Format`]), so any file can be handed in. Records come out
//! deduplicated across every file of an import ([`Deduper`]), and [`merge`] leaves out
//! what an earlier import already stored, so importing the same logs twice changes
//! nothing. [`ImportState`] remembers how far each file was read: the next import reads
//! only what was appended, and a file that shrank, went back in time or was replaced is
//! read again from the start (deduplication makes that safe).
//!
//! Record keys, which say what a record stands for:
//!
//! | key | record |
//! |---|---|
//! | `claude:<message id>:<request id>` (`claude:<message id>` without request id) | one Claude API request, from a transcript |
//! | `claude-line:<uuid>` | a transcript usage line without message id |
//! | `claude-stream:<message id>` | one request, from `claude -p --output-format stream-json` |
//! | `claude-result:<session>:<model>` | a `claude -p` session's cumulative usage of one model |
//! | `codex:<session>:<timestamp>:<cumulative total>` | one Codex request, from a rollout |
//! | `codex-exec:<thread>:<cumulative total>` | one turn, from `codex exec --json` |
//! | `gemini:<session>:<message id>` (`#<position>` without id) | one Gemini CLI request |

mod claude;
mod codex;
mod dedup;
mod detect;
mod gemini;
mod json;
mod lines;
mod scan;
mod state;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

pub use dedup::{Deduper, merge, same_request};
pub(crate) use state::fnv1a_128;
pub use state::{Carry, CumulativeTokens, FileState, Format, IMPORT_STATE_VERSION, ImportState};

use self::dedup::Coalescer;
use self::detect::Verdict;
use self::lines::{Line, LineReader};
use super::UsageRecord;

/// The longest line (or JSON document) read by default; a longer one is skipped and counted.
pub const DEFAULT_MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// Bytes at the start of a file whose hash tells whether it is still the same file.
const HEAD_BYTES: usize = 1024;

/// A line that could not be used: not JSON, or usage with missing or invalid fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Malformed;

impl From<serde_json::Error> for Malformed {
    fn from(_: serde_json::Error) -> Self {
        Malformed
    }
}

/// Where the agent CLIs keep their logs, as the environment tells: the CLI fills it, the
/// core never reads environment variables itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportEnv {
    /// `HOME`.
    pub home: Option<PathBuf>,
    /// `XDG_CONFIG_HOME` (Claude Code also writes under `$XDG_CONFIG_HOME/claude`).
    pub xdg_config_home: Option<PathBuf>,
    /// `CLAUDE_CONFIG_DIR`: one directory or a comma-separated list.
    pub claude_config_dir: Option<String>,
    /// `CODEX_HOME` (default `~/.codex`).
    pub codex_home: Option<PathBuf>,
    /// The Gemini CLI directory (default `~/.gemini`), e.g. from `GEMINI_DIR`.
    pub gemini_dir: Option<PathBuf>,
}

impl ImportEnv {
    /// Fills the fields from a lookup such as `std::env::var_os`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Self {
        let path = |name: &str| {
            lookup(name)
                .filter(|value| !value.is_empty())
                .map(PathBuf::from)
        };
        ImportEnv {
            home: path("HOME"),
            xdg_config_home: path("XDG_CONFIG_HOME"),
            claude_config_dir: lookup("CLAUDE_CONFIG_DIR")
                .map(|value| value.to_string_lossy().into_owned())
                .filter(|value| !value.trim().is_empty()),
            codex_home: path("CODEX_HOME"),
            gemini_dir: path("GEMINI_DIR"),
        }
    }

    fn expand(&self, raw: &str) -> PathBuf {
        match (raw.strip_prefix('~'), &self.home) {
            (Some(""), Some(home)) => home.clone(),
            (Some(rest), Some(home)) if rest.starts_with('/') => home.join(&rest[1..]),
            _ => PathBuf::from(raw),
        }
    }
}

/// Returns the existing log directories of every known agent CLI: Claude Code's
/// `projects/` (each `CLAUDE_CONFIG_DIR` entry, else `$XDG_CONFIG_HOME/claude` and
/// `~/.claude`), Codex's `sessions/` and `archived_sessions/`, Gemini's `tmp/`.
pub fn default_roots(env: &ImportEnv) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    if let Some(list) = &env.claude_config_dir {
        for entry in list
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
        {
            let path = env.expand(entry);
            if path.file_name().is_some_and(|name| name == "projects") {
                roots.push(path);
            } else {
                roots.push(path.join("projects"));
            }
        }
    } else {
        let config = env
            .xdg_config_home
            .clone()
            .or_else(|| env.home.as_ref().map(|home| home.join(".config")));
        roots.extend(config.map(|config| config.join("claude").join("projects")));
        roots.extend(
            env.home
                .as_ref()
                .map(|home| home.join(".claude").join("projects")),
        );
    }
    let codex = env
        .codex_home
        .clone()
        .or_else(|| env.home.as_ref().map(|home| home.join(".codex")));
    if let Some(codex) = codex {
        roots.push(codex.join("sessions"));
        roots.push(codex.join("archived_sessions"));
    }
    let gemini = env
        .gemini_dir
        .clone()
        .or_else(|| env.home.as_ref().map(|home| home.join(".gemini")));
    roots.extend(gemini.map(|gemini| gemini.join("tmp")));
    let mut seen = std::collections::HashSet::new();
    roots.retain(|root| root.is_dir() && seen.insert(root.clone()));
    roots
}

/// How an import runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportOptions {
    /// Files read at once; 0 for one per available core.
    pub jobs: usize,
    /// The longest line (or JSON document) read; longer ones are skipped and counted.
    pub max_line_bytes: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            jobs: 0,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ImportReport {
    /// Files considered.
    pub files: u64,
    /// Files with new bytes that were read.
    pub files_read: u64,
    /// Files unchanged since the last import, not opened.
    pub files_unchanged: u64,
    /// Files whose content matched no known log format.
    pub files_unrecognized: u64,
    /// Log bytes read.
    pub bytes_read: u64,
    /// Lines read.
    pub lines: u64,
    /// Lines skipped as unusable: not JSON, or usage with missing or invalid fields.
    pub malformed_lines: u64,
    /// Lines (or documents) longer than the limit, skipped.
    pub oversized_lines: u64,
    /// Records returned: one per request.
    pub records: u64,
    /// Copies of a request dropped.
    pub duplicates: u64,
    /// Files that could not be read; the import went on without them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<FileFailure>,
}

impl ImportReport {
    fn absorb(&mut self, other: &ImportReport) {
        self.files += other.files;
        self.files_read += other.files_read;
        self.files_unchanged += other.files_unchanged;
        self.files_unrecognized += other.files_unrecognized;
        self.bytes_read += other.bytes_read;
        self.lines += other.lines;
        self.malformed_lines += other.malformed_lines;
        self.oversized_lines += other.oversized_lines;
        self.records += other.records;
        self.duplicates += other.duplicates;
        self.failures.extend(other.failures.iter().cloned());
    }
}

/// A file an import could not read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FileFailure {
    pub path: PathBuf,
    pub message: String,
}

/// The records of an import, one per request, and what it did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Imported {
    pub records: Vec<UsageRecord>,
    pub report: ImportReport,
}

/// Errors of an import as a whole; a single unreadable log is a [`FileFailure`] instead.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("read {path}: no such file or directory")]
    NotFound { path: PathBuf },
    /// The cause is the error's source, which the front ends print after it: once.
    #[error("read log directory {path}")]
    ReadDir { path: PathBuf, source: io::Error },
}

/// Returns the log files under `paths`: a file is taken as it is, a directory is walked
/// for `*.jsonl` and `*.json` files. Sorted by path bytes, without repeats.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ImportError> {
    Ok(discover_found(paths)?
        .into_iter()
        .map(|found| found.path)
        .collect())
}

/// A log file found by a walk, with its metadata when the walk read it.
struct Found {
    path: PathBuf,
    metadata: Option<fs::Metadata>,
}

/// Like [`discover`], keeping the metadata the walk read: each file is stat-ed once,
/// relative to its open directory, rather than again by its whole path.
fn discover_found(paths: &[PathBuf]) -> Result<Vec<Found>, ImportError> {
    let mut files = Vec::new();
    for path in paths {
        let metadata = fs::metadata(path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => ImportError::NotFound { path: path.clone() },
            _ => ImportError::ReadDir {
                path: path.clone(),
                source,
            },
        })?;
        if metadata.is_dir() {
            let entries = fs::read_dir(path).map_err(|source| ImportError::ReadDir {
                path: path.clone(),
                source,
            })?;
            walk(entries, &mut files);
        } else {
            files.push(Found {
                path: path.clone(),
                metadata: Some(metadata),
            });
        }
    }
    files.sort_by(|a, b| {
        a.path
            .as_os_str()
            .as_encoded_bytes()
            .cmp(b.path.as_os_str().as_encoded_bytes())
    });
    files.dedup_by(|a, b| a.path == b.path);
    Ok(files)
}

/// Collects log files below a directory; unreadable subdirectories are passed over.
fn walk(entries: fs::ReadDir, files: &mut Vec<Found>) {
    for entry in entries.flatten() {
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if file_type.is_dir() {
            if let Ok(entries) = fs::read_dir(&path) {
                walk(entries, files);
            }
            continue;
        }
        let is_log = path
            .extension()
            .is_some_and(|extension| extension == "jsonl" || extension == "json");
        if !is_log {
            continue;
        }
        let metadata = if file_type.is_symlink() {
            fs::metadata(&path).ok()
        } else {
            entry.metadata().ok()
        };
        if metadata.as_ref().is_some_and(fs::Metadata::is_file) {
            files.push(Found { path, metadata });
        }
    }
}

/// Imports the logs under `paths` (see [`discover`] and [`import_files`]).
pub fn import(
    paths: &[PathBuf],
    state: &mut ImportState,
    options: &ImportOptions,
) -> Result<Imported, ImportError> {
    Ok(import_found(&discover_found(paths)?, state, options))
}

/// Imports log files, reading only what `state` says is new, and updates `state`.
///
/// Files are read in parallel and their records deduplicated in path order, so the
/// outcome does not depend on timing. Save `state` only once the records are stored.
pub fn import_files(
    files: &[PathBuf],
    state: &mut ImportState,
    options: &ImportOptions,
) -> Imported {
    let found: Vec<Found> = files
        .iter()
        .map(|path| Found {
            path: path.clone(),
            metadata: None,
        })
        .collect();
    import_found(&found, state, options)
}

fn import_found(files: &[Found], state: &mut ImportState, options: &ImportOptions) -> Imported {
    let previous: Vec<Option<FileState>> = files
        .iter()
        .map(|file| state.files.get(&state_key(&file.path)).cloned())
        .collect();
    let jobs = match options.jobs {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        jobs => jobs,
    }
    .min(files.len())
    .max(1);
    let mut deduper = Deduper::new();
    let mut report = ImportReport::default();
    let mut new_states: Vec<Option<FileState>> = vec![None; files.len()];
    let mut take = |index: usize, output: FileOutput| {
        report.absorb(&output.report);
        for record in output.records {
            deduper.add(record);
        }
        new_states[index] = output.state;
    };
    if jobs == 1 {
        for (index, file) in files.iter().enumerate() {
            take(index, import_file(file, previous[index].as_ref(), options));
        }
    } else {
        let order = dispatch_order(files, &previous, jobs);
        let next = AtomicUsize::new(0);
        let (sender, receiver) = mpsc::channel();
        std::thread::scope(|scope| {
            for _ in 0..jobs {
                let sender = sender.clone();
                let (next, previous, order) = (&next, &previous, &order);
                scope.spawn(move || {
                    while let Some(&index) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let file = &files[index];
                        let output = import_file(file, previous[index].as_ref(), options);
                        if sender.send((index, output)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(sender);
            let mut waiting = BTreeMap::new();
            let mut expected = 0;
            for (index, output) in receiver {
                waiting.insert(index, output);
                while let Some(output) = waiting.remove(&expected) {
                    take(expected, output);
                    expected += 1;
                }
            }
        });
    }
    for (file, new_state) in files.iter().zip(new_states) {
        if let Some(new_state) = new_state {
            state.files.insert(state_key(&file.path), new_state);
        }
    }
    let (records, duplicates) = deduper.finish_counting();
    report.duplicates += duplicates;
    report.records = records.len() as u64;
    Imported { records, report }
}

/// Returns the order in which the workers take `files`: path order, except that a file
/// holding more than a sixteenth of one worker's share of the new bytes goes first,
/// largest first. A large file taken late would keep one worker busy long after the
/// others ran out of files; taken first, the small ones fill in around it. Records are
/// still deduplicated in path order (an early file's records wait for their turn), and
/// only the few large files wait, so memory stays bounded.
fn dispatch_order(files: &[Found], previous: &[Option<FileState>], jobs: usize) -> Vec<usize> {
    let new_bytes: Vec<u64> = files
        .iter()
        .zip(previous)
        .map(|(file, previous)| {
            let size = file.metadata.as_ref().map_or(0, fs::Metadata::len);
            size.saturating_sub(previous.as_ref().map_or(0, |state| state.offset))
        })
        .collect();
    let total: u64 = new_bytes.iter().sum();
    let large = total / (16 * jobs as u64).max(1);
    let mut first: Vec<usize> = (0..files.len())
        .filter(|&index| new_bytes[index] > large)
        .collect();
    first.sort_by_key(|&index| std::cmp::Reverse(new_bytes[index]));
    let rest = (0..files.len()).filter(|&index| new_bytes[index] <= large);
    first.into_iter().chain(rest).collect()
}

/// Imports one stream, such as `claude -p --output-format stream-json` piped in; `name`
/// stands for the session where the stream does not tell it.
pub fn import_reader<R: Read>(
    reader: R,
    name: &str,
    options: &ImportOptions,
) -> io::Result<Imported> {
    let mut report = ImportReport {
        files: 1,
        files_read: 1,
        ..ImportReport::default()
    };
    let mut deduper = Deduper::new();
    let mut coalescer = Coalescer::default();
    let mut duplicates = 0;
    let outcome = read_stream(
        reader,
        None,
        Carry::default(),
        name,
        None,
        options,
        &mut |record| {
            if let Some(record) = coalescer.push(record, &mut duplicates) {
                deduper.add(record);
            }
        },
        &mut report,
    )?;
    if let Some(record) = coalescer.finish() {
        deduper.add(record);
    }
    if outcome.format.is_none() {
        report.files_unrecognized += 1;
    }
    let (records, dropped) = deduper.finish_counting();
    report.duplicates += duplicates + dropped;
    report.records = records.len() as u64;
    Ok(Imported { records, report })
}

fn state_key(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// One file's records (streamed copies already folded), its new state and its counts.
#[derive(Debug, Default)]
struct FileOutput {
    records: Vec<UsageRecord>,
    state: Option<FileState>,
    report: ImportReport,
}

fn modified_ns(metadata: &fs::Metadata) -> Option<i128> {
    let modified = metadata.modified().ok()?;
    Some(match modified.duration_since(UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_nanos()).ok()?,
        Err(before) => -i128::try_from(before.duration().as_nanos()).ok()?,
    })
}

fn import_file(file: &Found, previous: Option<&FileState>, options: &ImportOptions) -> FileOutput {
    let path = file.path.as_path();
    let mut output = FileOutput::default();
    output.report.files = 1;
    match read_file(path, file.metadata.as_ref(), previous, options, &mut output) {
        Ok(state) => output.state = Some(state),
        Err(error) => {
            output.records.clear();
            output.report = ImportReport {
                files: 1,
                failures: vec![FileFailure {
                    path: path.to_owned(),
                    message: error.to_string(),
                }],
                ..ImportReport::default()
            };
            output.state = previous.cloned();
        }
    }
    output
}

fn read_file(
    path: &Path,
    metadata: Option<&fs::Metadata>,
    previous: Option<&FileState>,
    options: &ImportOptions,
    output: &mut FileOutput,
) -> io::Result<FileState> {
    let metadata = match metadata {
        Some(metadata) => metadata.clone(),
        None => fs::metadata(path)?,
    };
    let size = metadata.len();
    let mtime_ns = modified_ns(&metadata);
    if let Some(previous) = previous
        && previous.size == size
        && previous.mtime_ns == mtime_ns
        && mtime_ns.is_some()
    {
        output.report.files_unchanged = 1;
        return Ok(previous.clone());
    }
    let mut file = File::open(path)?;
    let mut head = Vec::with_capacity(HEAD_BYTES);
    (&mut file).take(HEAD_BYTES as u64).read_to_end(&mut head)?;
    let head_len = |length: u64| {
        head.len()
            .min(usize::try_from(length).unwrap_or(usize::MAX))
    };
    let head_hash = state::fnv1a(&head[..head_len(size)]);
    let resume = previous.filter(|previous| {
        previous.format.is_some_and(|format| !format.is_document())
            && size >= previous.offset
            && previous.mtime_ns <= mtime_ns
            && state::fnv1a(&head[..head_len(previous.size)]) == previous.head_hash
    });
    let start = resume.map_or(0, |previous| previous.offset);
    file.seek(SeekFrom::Start(start))?;
    output.report.files_read = 1;
    let fallback_session = path.file_stem().map_or_else(
        || "unknown".to_owned(),
        |stem| stem.to_string_lossy().into_owned(),
    );
    let mut coalescer = Coalescer::default();
    let mut duplicates = 0;
    let records = &mut output.records;
    let outcome = read_stream(
        file,
        resume.and_then(|previous| previous.format),
        resume
            .map(|previous| previous.carry.clone())
            .unwrap_or_default(),
        &fallback_session,
        Some(path),
        options,
        &mut |record| {
            if let Some(record) = coalescer.push(record, &mut duplicates) {
                records.push(record);
            }
        },
        &mut output.report,
    )?;
    records.extend(coalescer.finish());
    output.report.duplicates += duplicates;
    if outcome.format.is_none() {
        output.report.files_unrecognized = 1;
    }
    Ok(FileState {
        format: outcome.format,
        size,
        mtime_ns,
        offset: if outcome.format.is_some() {
            start + outcome.complete
        } else {
            0
        },
        head_hash,
        carry: outcome.carry,
    })
}

/// The line parser of each format.
#[derive(Debug)]
enum Parser {
    Transcript,
    Stream(claude::StreamParser),
    Rollout(codex::RolloutParser),
    Exec(codex::ExecParser),
    Chat(gemini::ChatParser),
}

impl Parser {
    fn new(format: Format, carry: Carry, fallback_session: &str) -> Self {
        let fallback_session = fallback_session.to_owned();
        match format {
            Format::ClaudeTranscript => Parser::Transcript,
            Format::ClaudeStream | Format::JsonDocument => {
                Parser::Stream(claude::StreamParser::new(carry, fallback_session))
            }
            Format::CodexRollout => {
                Parser::Rollout(codex::RolloutParser::new(carry, fallback_session))
            }
            Format::CodexExec => Parser::Exec(codex::ExecParser::new(carry, fallback_session)),
            Format::GeminiChatLines => {
                Parser::Chat(gemini::ChatParser::new(carry, fallback_session))
            }
        }
    }

    fn line(&mut self, line: &[u8], emit: &mut dyn FnMut(UsageRecord)) -> Result<(), Malformed> {
        match self {
            Parser::Transcript => {
                if let Some(record) = claude::transcript_line(line)? {
                    emit(record);
                }
                Ok(())
            }
            Parser::Stream(parser) => parser.line(line, emit),
            Parser::Rollout(parser) => parser.line(line, emit),
            Parser::Exec(parser) => parser.line(line, emit),
            Parser::Chat(parser) => parser.line(line, emit),
        }
    }

    /// The carry of a parser that keeps one across lines.
    fn carry_mut(&mut self) -> Option<&mut Carry> {
        match self {
            Parser::Transcript => None,
            Parser::Stream(parser) => Some(&mut parser.carry),
            Parser::Rollout(parser) => Some(&mut parser.carry),
            Parser::Exec(parser) => Some(&mut parser.carry),
            Parser::Chat(parser) => Some(&mut parser.carry),
        }
    }

    /// Parses a line that may be still being written: its records count, but what it
    /// changed in the carry is undone, since the next import reads that line again.
    fn unterminated_line(&mut self, line: &[u8], emit: &mut dyn FnMut(UsageRecord)) {
        let saved = self.carry_mut().cloned();
        let _ = self.line(line, emit);
        if let (Some(saved), Some(carry)) = (saved, self.carry_mut()) {
            *carry = saved;
        }
    }

    fn into_carry(self) -> Carry {
        match self {
            Parser::Transcript => Carry::default(),
            Parser::Stream(parser) => parser.into_carry(),
            Parser::Rollout(parser) => parser.into_carry(),
            Parser::Exec(parser) => parser.into_carry(),
            Parser::Chat(parser) => parser.into_carry(),
        }
    }
}

/// How far a stream was read, and in which format.
#[derive(Debug)]
struct StreamOutcome {
    format: Option<Format>,
    carry: Carry,
    /// Bytes up to the end of the last complete line (of the whole input, for a document).
    complete: u64,
}

/// Reads a stream of lines in `format` (or detects it), calling `emit` for each record.
///
/// A last line without its newline may be still being written: its records are taken
/// if it parses, but neither its bytes nor its effect on the parser's carry count as
/// read, so the next import reads it again from the same state and yields the same keys.
#[expect(
    clippy::too_many_arguments,
    reason = "one internal call site per input kind"
)]
fn read_stream<R: Read>(
    reader: R,
    format: Option<Format>,
    carry: Carry,
    fallback_session: &str,
    path: Option<&Path>,
    options: &ImportOptions,
    emit: &mut dyn FnMut(UsageRecord),
    report: &mut ImportReport,
) -> io::Result<StreamOutcome> {
    let mut reader = LineReader::new(reader, options.max_line_bytes);
    let mut carry = Some(carry);
    let mut parser = format.map(|format| {
        (
            format,
            Parser::new(format, carry.take().unwrap_or_default(), fallback_session),
        )
    });
    let mut probed = 0;
    let mut prefix = Vec::new();
    while let Some(line) = reader.next_line()? {
        report.lines += 1;
        let (bytes, complete) = match line {
            Line::Complete(bytes) => (bytes, true),
            Line::Unterminated(bytes) => (bytes, false),
            Line::Oversized => {
                report.oversized_lines += 1;
                continue;
            }
        };
        if bytes.trim_ascii().is_empty() {
            continue;
        }
        if parser.is_none() {
            let detected = match detect::probe(bytes) {
                Verdict::Format(format) => Some(format),
                Verdict::Document => {
                    prefix.extend_from_slice(bytes);
                    prefix.push(b'\n');
                    report.bytes_read += reader.consumed();
                    let (document_bytes, rest) =
                        read_document(prefix, reader.into_rest(), options.max_line_bytes)?;
                    report.bytes_read += rest;
                    let carry = carry.take().unwrap_or_default();
                    return Ok(document(
                        document_bytes,
                        carry,
                        fallback_session,
                        emit,
                        report,
                    ));
                }
                Verdict::Undecided => {
                    probed += 1;
                    if probed < detect::MAX_PROBE_LINES {
                        prefix.extend_from_slice(bytes);
                        prefix.push(b'\n');
                        continue;
                    }
                    path.and_then(detect::from_path)
                }
            };
            let Some(format) = detected else {
                break;
            };
            prefix = Vec::new();
            parser = Some((
                format,
                Parser::new(format, carry.take().unwrap_or_default(), fallback_session),
            ));
        }
        let Some((_, parser)) = parser.as_mut() else {
            break;
        };
        if complete {
            if parser.line(bytes, emit).is_err() {
                report.malformed_lines += 1;
            }
        } else {
            parser.unterminated_line(bytes, emit);
        }
    }
    report.bytes_read += reader.consumed();
    Ok(match parser {
        Some((format, parser)) => StreamOutcome {
            format: Some(format),
            carry: parser.into_carry(),
            complete: reader.complete(),
        },
        None => StreamOutcome {
            format: None,
            carry: Carry::default(),
            complete: 0,
        },
    })
}

/// Reads the rest of a document after its first lines; gives its bytes and how many were read.
fn read_document(
    mut prefix: Vec<u8>,
    rest: impl Read,
    max_bytes: usize,
) -> io::Result<(Option<Vec<u8>>, u64)> {
    let before = prefix.len();
    let limit = (max_bytes as u64 + 1).saturating_sub(before as u64);
    rest.take(limit).read_to_end(&mut prefix)?;
    let read = (prefix.len() - before) as u64;
    Ok(((prefix.len() <= max_bytes).then_some(prefix), read))
}

/// The top of a JSON document, enough to tell what it is.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DocumentProbe {
    #[serde(default)]
    messages: Option<serde::de::IgnoredAny>,
}

/// Reads a whole JSON document: a Gemini chat, a `claude -p` result or `--verbose` array.
fn document(
    bytes: Option<Vec<u8>>,
    carry: Carry,
    fallback_session: &str,
    emit: &mut dyn FnMut(UsageRecord),
    report: &mut ImportReport,
) -> StreamOutcome {
    let outcome = |complete| StreamOutcome {
        format: Some(Format::JsonDocument),
        carry: Carry::default(),
        complete,
    };
    let Some(bytes) = bytes else {
        report.oversized_lines += 1;
        return outcome(0);
    };
    let complete = bytes.len() as u64;
    let parsed = if bytes.trim_ascii_start().first() == Some(&b'[') {
        serde_json::from_slice::<Vec<serde_json::Value>>(&bytes).map(|values| {
            let mut parser = claude::StreamParser::new(carry, fallback_session.to_owned());
            for value in &values {
                if parser.document_value(value, emit).is_err() {
                    report.malformed_lines += 1;
                }
            }
        })
    } else {
        serde_json::from_slice::<DocumentProbe>(&bytes).and_then(|probe| {
            if probe.messages.is_some() {
                let chat: gemini::Chat = serde_json::from_slice(&bytes)?;
                gemini::ChatParser::new(carry, fallback_session.to_owned()).document(chat, emit);
            } else {
                let value: serde_json::Value = serde_json::from_slice(&bytes)?;
                let mut parser = claude::StreamParser::new(carry, fallback_session.to_owned());
                if parser.document_value(&value, emit).is_err() {
                    report.malformed_lines += 1;
                }
            }
            Ok(())
        })
    };
    if parsed.is_err() {
        report.malformed_lines += 1;
    }
    outcome(complete)
}
