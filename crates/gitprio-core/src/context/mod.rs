//! Context bundles: the task plus the documents it needs, in one deterministic, cache-friendly prompt.
//!
//! A bundle is read from one commit. It holds the project-wide documents of the config, then the
//! task's own documents (its `context:` list and the repository links of its body, and links
//! inside those up to a depth), then the task itself. Each document appears once: a link to a file
//! or section already included, or to a section inside an included file, adds nothing. Links are
//! resolved inside the repository only. Over the token budget, whole documents are left out,
//! lowest priority first, and listed with their sizes. See `docs/context.md`.

mod files;
mod link;
mod markdown;
mod render;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::{self, Write as _};
use std::ops::Range;
use std::path::PathBuf;
use std::rc::Rc;

use schemars::JsonSchema;
use serde::Serialize;

use crate::CONFIG_PATH;
use crate::config::Config;
use crate::diagnostic::Position;
use crate::git::{EntryKind, GitError};
use crate::task::{Task, TaskId, parse_task};

pub use files::{CommitFiles, Files, WorktreeFiles};
use files::{Lookup, lookup};
pub use render::{ReportCommand, Tail};

/// The largest file read as a context document; larger ones are skipped with a note.
pub const MAX_DOCUMENT_BYTES: u64 = 1024 * 1024;

/// The most entries a directory listing shows.
pub const MAX_LISTING_ENTRIES: usize = 500;

/// Bytes git looks at to decide that a file is binary (a NUL byte among them).
const BINARY_SNIFF_BYTES: usize = 8000;

/// Returns the token estimate of `bytes` of text: one token per 4 bytes, rounded up.
pub fn estimate_tokens(bytes: usize) -> u64 {
    u64::try_from(bytes).unwrap_or(u64::MAX).div_ceil(4)
}

/// Why a bundle could not be assembled at all (problems with single links are notes instead).
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{path}` vanished from the tree while it was being read")]
    Vanished { path: String },
}

/// How far links are followed and how large the bundle may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Levels of links followed inside documents: 0 takes only the documents named directly.
    pub depth: u32,
    /// The limit in estimated tokens, task included; `None` keeps everything.
    pub budget: Option<u64>,
}

impl Options {
    /// Returns the options the config sets: `context_depth` and `context_budget`.
    pub fn from_config(config: &Config) -> Options {
        Options {
            depth: config.context_depth,
            budget: config.context_budget.map(|budget| budget.0),
        }
    }
}

/// Why a part is in the bundle; also its rank when the budget forces documents out.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    JsonSchema,
    serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The config's `context` list, and what those documents link to: shared by every task.
    Project,
    /// The task's `context` list, and what those documents link to.
    TaskContext,
    /// Links in the task's body, and what those documents link to.
    TaskBody,
    /// The task itself: never left out.
    Task,
}

/// What a part holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartKind {
    /// A whole file.
    File,
    /// One section of a file: a heading and what follows up to the next heading of its level.
    Section,
    /// The files under a linked directory, with their sizes.
    Listing,
    /// The task: its fields and body.
    Task,
}

/// One place that links to a part: the link as written and where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema, serde::Deserialize)]
pub struct Mention {
    pub link: String,
    /// `path:line:column` of the link.
    pub at: String,
}

/// One piece of the bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema, serde::Deserialize)]
pub struct Part {
    pub kind: PartKind,
    pub origin: Origin,
    /// Repository-relative path, symlinks resolved.
    pub path: String,
    /// The anchor of a section (`rate-limiting`, `L10-L20`).
    pub section: Option<String>,
    /// Links followed from the config's or the task's own list to reach this part.
    pub depth: u32,
    pub bytes: u64,
    pub tokens: u64,
    /// Every link that led here, first the one that included it; sections merged into it included.
    pub mentions: Vec<Mention>,
    pub content: String,
}

impl Part {
    /// Returns how the part is named: `path`, `path#section` or `path/`.
    pub fn label(&self) -> String {
        match (&self.section, self.kind) {
            (Some(section), _) => format!("{}#{section}", self.path),
            (None, PartKind::Listing) if self.path.is_empty() => "/".to_owned(),
            (None, PartKind::Listing) => format!("{}/", self.path),
            (None, _) => self.path.clone(),
        }
    }
}

/// A document left out to stay within the budget.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema, serde::Deserialize)]
pub struct Dropped {
    pub kind: PartKind,
    pub origin: Origin,
    pub path: String,
    pub section: Option<String>,
    pub depth: u32,
    pub bytes: u64,
    pub tokens: u64,
    pub mentions: Vec<Mention>,
}

/// A link to a URL: listed for the agent, never fetched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema, serde::Deserialize)]
pub struct External {
    pub url: String,
    pub at: String,
}

/// What kind of problem a [`Note`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, JsonSchema, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoteKind {
    /// The linked path does not exist.
    MissingFile,
    /// The file exists but has no heading (or line) with that anchor.
    MissingSection,
    /// The link leaves the repository, is absolute, or reaches into `.git/`: never read.
    Refused,
    /// Binary, too large, not UTF-8, or a submodule: not included.
    Skipped,
}

/// A located problem with one link; the bundle carries on without it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema, serde::Deserialize)]
pub struct Note {
    pub kind: NoteKind,
    pub path: String,
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path, self.line, self.column, self.message
        )
    }
}

/// A task and its context, ready to print as markdown or JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema, serde::Deserialize)]
pub struct Bundle {
    pub task: TaskId,
    /// The depth links were followed to.
    pub depth: u32,
    /// The budget in estimated tokens, if any.
    pub budget: Option<u64>,
    /// Estimated tokens of all parts, task included.
    pub tokens: u64,
    /// In output order: project documents, task documents, then the task.
    pub parts: Vec<Part>,
    /// Documents left out over the budget, in the order they were found.
    pub dropped: Vec<Dropped>,
    pub external: Vec<External>,
    pub notes: Vec<Note>,
}

/// Assembles the bundle of `task` from `files`, reading the task file there for its body.
pub fn build(
    files: &impl Files,
    config: &Config,
    task: &Task,
    options: Options,
) -> Result<Bundle, ContextError> {
    let task = read_task(files, task)?;
    let mut builder = Builder {
        reader: Reader::new(files),
        depth_limit: options.depth,
        task_path: task.path.clone(),
        candidates: Vec::new(),
        index: HashMap::new(),
        external: Vec::new(),
        seen_urls: HashSet::new(),
        notes: Vec::new(),
    };
    let config_positions = config_positions(files, &config.context)?;
    builder.run(
        config
            .context
            .iter()
            .zip(config_positions)
            .map(|(entry, position)| Reference {
                link: entry.clone(),
                linking_file: String::new(),
                at: (CONFIG_PATH.to_owned(), position),
                origin: Origin::Project,
                depth: 0,
            })
            .collect(),
    )?;
    builder.run(task_references(&task))?;
    let task_content = render::task_block(&task, config.plan_required(&task));
    let task_part = Part {
        kind: PartKind::Task,
        origin: Origin::Task,
        path: task.path.clone(),
        section: None,
        depth: 0,
        bytes: byte_count(&task_content),
        tokens: estimate_tokens(task_content.len()),
        mentions: Vec::new(),
        content: task_content,
    };
    Ok(builder.finish(&task, task_part, options))
}

/// The task as committed: the cache keeps no body nor field positions, so parse the file again.
fn read_task(files: &impl Files, task: &Task) -> Result<Task, ContextError> {
    if files.kind(&task.path)? == Some(EntryKind::File) {
        let parsed = parse_task(&task.path, &files.read(&task.path)?);
        if let Some(parsed) = parsed.task.filter(|parsed| parsed.id == task.id) {
            return Ok(parsed);
        }
    }
    Ok(task.clone())
}

/// Returns the links a task names itself: its `context:` entries, then the links of its body.
pub(crate) fn task_references(task: &Task) -> VecDeque<Reference> {
    let mut references: VecDeque<Reference> = task
        .context
        .iter()
        .enumerate()
        .map(|(index, entry)| Reference {
            link: entry.clone(),
            linking_file: String::new(),
            at: (task.path.clone(), entry_position(task, index)),
            origin: Origin::TaskContext,
            depth: 0,
        })
        .collect();
    let body = task.body.replace("\r\n", "\n");
    let lines = markdown::Lines::new(&body);
    for link in markdown::parse(&body).links {
        let position = lines.position(&body, link.offset);
        references.push_back(Reference {
            link: link.destination,
            linking_file: task.path.clone(),
            at: (
                task.path.clone(),
                Position::new(
                    position.line + task.body_line.saturating_sub(1),
                    position.column,
                ),
            ),
            origin: Origin::TaskBody,
            depth: 0,
        });
    }
    references
}

fn entry_position(task: &Task, index: usize) -> Position {
    task.positions
        .get(&format!("context[{index}]"))
        .or_else(|| task.positions.get("context"))
        .copied()
        .unwrap_or(Position::START)
}

/// Returns the text of the config file, empty when there is none.
pub(crate) fn config_text(files: &impl Files) -> Result<String, ContextError> {
    Ok(match files.kind(CONFIG_PATH)? {
        Some(EntryKind::File) => String::from_utf8_lossy(&files.read(CONFIG_PATH)?).into_owned(),
        _ => String::new(),
    })
}

/// Locates each `context` entry of the config in its file, in order; the start when not found.
pub(crate) fn config_positions(
    files: &impl Files,
    entries: &[String],
) -> Result<Vec<Position>, ContextError> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let text = config_text(files)?;
    let lines: Vec<&str> = text.lines().collect();
    let mut next_line = 0;
    let mut positions = Vec::with_capacity(entries.len());
    for entry in entries {
        let found = lines
            .iter()
            .enumerate()
            .skip(next_line)
            .find_map(|(index, line)| {
                line.find(entry.as_str())
                    .map(|column| (index, line, column))
            });
        positions.push(match found {
            Some((index, line, column)) => {
                next_line = index;
                Position::new(
                    u32::try_from(index + 1).unwrap_or(u32::MAX),
                    u32::try_from(line[..column].chars().count() + 1).unwrap_or(u32::MAX),
                )
            }
            None => Position::START,
        });
    }
    Ok(positions)
}

/// A link to follow: as written, in which file (`""`: a repository-relative entry), and where.
#[derive(Clone, Debug)]
pub(crate) struct Reference {
    pub link: String,
    pub linking_file: String,
    pub at: (String, Position),
    pub origin: Origin,
    pub depth: u32,
}

impl Reference {
    fn location(&self) -> String {
        format!("{}:{}:{}", self.at.0, self.at.1.line, self.at.1.column)
    }

    fn part(
        &self,
        kind: PartKind,
        path: String,
        section: Option<String>,
        mention: Mention,
        content: String,
    ) -> Part {
        Part {
            kind,
            origin: self.origin,
            path,
            section,
            depth: self.depth,
            bytes: byte_count(&content),
            tokens: estimate_tokens(content.len()),
            mentions: vec![mention],
            content,
        }
    }

    fn note(&self, kind: NoteKind, message: String) -> Note {
        Note {
            kind,
            path: self.at.0.clone(),
            line: self.at.1.line,
            column: self.at.1.column,
            message,
        }
    }
}

/// A document read for context: its text (a BOM dropped, CRLF made LF) and, for markdown, its structure.
#[derive(Debug)]
pub(crate) struct Loaded {
    text: String,
    /// The headings and links of a markdown file, and where its lines start.
    markdown: Option<(markdown::Document, markdown::Lines)>,
}

impl Loaded {
    /// Returns the range and canonical anchor of a heading, or of GitHub line anchors `L3-L9`.
    fn section(&self, anchor: &str) -> Option<(Range<usize>, String)> {
        if let Some((document, _)) = &self.markdown
            && let Some(range) = document.section(anchor, self.text.len())
        {
            let canonical = document
                .headings
                .iter()
                .find(|heading| heading.start == range.start)
                .map_or_else(|| anchor.to_owned(), |heading| heading.anchor.clone());
            return Some((range, canonical));
        }
        markdown::line_range(&self.text, anchor).map(|range| (range, anchor.to_owned()))
    }

    fn missing_section(&self, path: &str, anchor: &str) -> String {
        let hint = self
            .markdown
            .as_ref()
            .and_then(|(document, _)| document.closest_anchor(anchor))
            .map(|closest| format!("; did you mean `#{closest}`?"))
            .unwrap_or_default();
        match &self.markdown {
            Some(_) => format!("`{path}` has no heading `#{anchor}`{hint}"),
            None => format!(
                "`{path}` is not markdown, so `#{anchor}` can only be a line anchor like `#L10-L20`, and it is not one within the file"
            ),
        }
    }
}

/// What one link leads to.
#[derive(Debug)]
pub(crate) enum Resolved {
    Nothing,
    External(String),
    Listing(String),
    Document {
        path: String,
        loaded: Rc<Loaded>,
        section: Option<(Range<usize>, String)>,
    },
    Problem(NoteKind, String),
}

/// Resolves links in a tree of files, reading each document once.
#[derive(Debug)]
pub(crate) struct Reader<'a, F> {
    files: &'a F,
    documents: HashMap<String, Result<Rc<Loaded>, String>>,
}

impl<'a, F: Files> Reader<'a, F> {
    pub fn new(files: &'a F) -> Self {
        Self {
            files,
            documents: HashMap::new(),
        }
    }

    /// Resolves `written`, a link in `linking_file` (`""` for a repository-relative entry).
    pub fn resolve(&mut self, written: &str, linking_file: &str) -> Result<Resolved, ContextError> {
        let (path, anchor) = match link::parse(written, linking_file) {
            Err(refusal) => {
                return Ok(Resolved::Problem(
                    NoteKind::Refused,
                    format!("link `{written}` {}; refused", refusal.describe()),
                ));
            }
            Ok(link::Destination::Nothing) => return Ok(Resolved::Nothing),
            Ok(link::Destination::External(url)) => return Ok(Resolved::External(url)),
            Ok(link::Destination::Path { path, anchor }) => (path, anchor),
        };
        let path = match lookup(self.files, &path)? {
            Lookup::File(path) => path,
            Lookup::Directory(path) => return Ok(Resolved::Listing(path)),
            Lookup::Missing => {
                return Ok(Resolved::Problem(
                    NoteKind::MissingFile,
                    format!("link `{written}`: `{path}` does not exist in the repository"),
                ));
            }
            Lookup::Refused(why) => {
                return Ok(Resolved::Problem(
                    NoteKind::Refused,
                    format!("link `{written}` {why}; refused"),
                ));
            }
            Lookup::Submodule(path) => {
                return Ok(Resolved::Problem(
                    NoteKind::Skipped,
                    format!(
                        "link `{written}`: `{path}` is a submodule, whose files are not in this repository; skipped"
                    ),
                ));
            }
        };
        let loaded = match self.load(&path)? {
            Ok(loaded) => loaded,
            Err(why) => {
                return Ok(Resolved::Problem(
                    NoteKind::Skipped,
                    format!("link `{written}`: {why}; skipped"),
                ));
            }
        };
        let section = match anchor {
            None => None,
            Some(anchor) => match loaded.section(&anchor) {
                Some(section) => Some(section),
                None => {
                    return Ok(Resolved::Problem(
                        NoteKind::MissingSection,
                        format!(
                            "link `{written}`: {}",
                            loaded.missing_section(&path, &anchor)
                        ),
                    ));
                }
            },
        };
        Ok(Resolved::Document {
            path,
            loaded,
            section,
        })
    }

    fn load(&mut self, path: &str) -> Result<Result<Rc<Loaded>, String>, ContextError> {
        if let Some(loaded) = self.documents.get(path) {
            return Ok(loaded.clone());
        }
        let loaded = self.read(path)?;
        self.documents.insert(path.to_owned(), loaded.clone());
        Ok(loaded)
    }

    fn read(&self, path: &str) -> Result<Result<Rc<Loaded>, String>, ContextError> {
        let size = self.files.size(path)?;
        if size > MAX_DOCUMENT_BYTES {
            return Ok(Err(format!(
                "`{path}` is {size} bytes, over the {MAX_DOCUMENT_BYTES}-byte limit for a context document"
            )));
        }
        let bytes = self.files.read(path)?;
        if bytes[..bytes.len().min(BINARY_SNIFF_BYTES)].contains(&0) {
            return Ok(Err(format!("`{path}` is a binary file")));
        }
        let Ok(text) = String::from_utf8(bytes) else {
            return Ok(Err(format!("`{path}` is not valid UTF-8")));
        };
        let text = match text.strip_prefix('\u{feff}') {
            Some(rest) => rest.replace("\r\n", "\n"),
            None if text.contains('\r') => text.replace("\r\n", "\n"),
            None => text,
        };
        let markdown =
            is_markdown(path).then(|| (markdown::parse(&text), markdown::Lines::new(&text)));
        Ok(Ok(Rc::new(Loaded { text, markdown })))
    }

    /// Returns the listing of directory `path`: every file below it with its size, in path order.
    fn listing(&self, path: &str) -> Result<String, ContextError> {
        let mut lines = Vec::new();
        let mut pending = vec![path.to_owned()];
        let mut truncated = false;
        while let Some(directory) = pending.pop() {
            let entries = self.files.list(&directory)?;
            let mut subdirectories = Vec::new();
            for (name, kind) in entries {
                let full = if directory.is_empty() {
                    name
                } else {
                    format!("{directory}/{name}")
                };
                match kind {
                    EntryKind::Directory => subdirectories.push(full),
                    EntryKind::File => {
                        let size = self.files.size(&full)?;
                        lines.push((full.clone(), format!("{full} ({size} bytes)")));
                    }
                    EntryKind::Symlink => lines.push((full.clone(), format!("{full} (symlink)"))),
                    EntryKind::Submodule => {
                        lines.push((full.clone(), format!("{full} (submodule)")));
                    }
                }
            }
            pending.extend(subdirectories.into_iter().rev());
            if lines.len() > MAX_LISTING_ENTRIES {
                truncated = true;
                break;
            }
        }
        lines.sort_unstable();
        lines.truncate(MAX_LISTING_ENTRIES);
        let mut text: String = lines.into_iter().map(|(_, line)| line + "\n").collect();
        if truncated {
            let _ = writeln!(text, "(the listing stops at {MAX_LISTING_ENTRIES} entries)");
        }
        Ok(text)
    }
}

fn is_markdown(path: &str) -> bool {
    let extension = path.rsplit_once('.').map_or("", |(_, extension)| extension);
    ["md", "markdown", "mdx", "mdown", "mkd"]
        .iter()
        .any(|candidate| extension.eq_ignore_ascii_case(candidate))
}

fn byte_count(text: &str) -> u64 {
    u64::try_from(text.len()).unwrap_or(u64::MAX)
}

/// A part found while following links, before the budget decides whether it stays.
#[derive(Debug)]
struct Candidate {
    part: Part,
    /// The byte range of a section in its file; `None` for a whole file or a listing.
    range: Option<Range<usize>>,
    rank: Rank,
}

/// How a part ranks when the budget forces documents out; smaller is more important:
/// (depth, origin, order found).
type Rank = (u32, Origin, usize);

/// What makes two parts the same: path, section range, and whether it is a listing.
type Key = (String, Option<Range<usize>>, bool);

impl Candidate {
    /// Returns whether `self` already contains `other`: the same file, whole or an enclosing section.
    fn covers(&self, other: &Candidate) -> bool {
        self.part.path == other.part.path
            && self.part.kind != PartKind::Listing
            && other.part.kind != PartKind::Listing
            && match (&self.range, &other.range) {
                (None, Some(_)) => true,
                (Some(outer), Some(inner)) => {
                    outer != inner && outer.start <= inner.start && inner.end <= outer.end
                }
                _ => false,
            }
    }
}

struct Builder<'a, F> {
    reader: Reader<'a, F>,
    depth_limit: u32,
    task_path: String,
    candidates: Vec<Candidate>,
    index: HashMap<Key, usize>,
    external: Vec<External>,
    seen_urls: HashSet<String>,
    notes: Vec<Note>,
}

impl<F: Files> Builder<'_, F> {
    /// Follows `references` breadth first: each level's documents before the links inside them.
    fn run(&mut self, mut references: VecDeque<Reference>) -> Result<(), ContextError> {
        while let Some(reference) = references.pop_front() {
            self.visit(&reference, &mut references)?;
        }
        Ok(())
    }

    fn visit(
        &mut self,
        reference: &Reference,
        pending: &mut VecDeque<Reference>,
    ) -> Result<(), ContextError> {
        let mention = Mention {
            link: reference.link.clone(),
            at: reference.location(),
        };
        let rank = (reference.depth, reference.origin, self.candidates.len());
        match self
            .reader
            .resolve(&reference.link, &reference.linking_file)?
        {
            Resolved::Nothing => {}
            Resolved::External(url) => self.external_link(url, mention.at),
            Resolved::Problem(kind, message) => self.notes.push(reference.note(kind, message)),
            Resolved::Listing(path) => {
                let key = (path.clone(), None, true);
                if self.merge(&key, mention.clone(), rank) {
                    return Ok(());
                }
                let content = self.reader.listing(&path)?;
                let part = reference.part(PartKind::Listing, path, None, mention, content);
                self.add(part, None, rank);
            }
            Resolved::Document {
                path,
                loaded,
                section,
            } => {
                if path == self.task_path {
                    return Ok(());
                }
                let range = section.as_ref().map(|(range, _)| range.clone());
                let key = (path.clone(), range.clone(), false);
                if self.merge(&key, mention.clone(), rank) {
                    return Ok(());
                }
                let (kind, anchor, text) = match section {
                    Some((range, anchor)) => (PartKind::Section, Some(anchor), &loaded.text[range]),
                    None => (PartKind::File, None, loaded.text.as_str()),
                };
                let trimmed = text.trim_end();
                let content = if trimmed.is_empty() {
                    String::new()
                } else {
                    format!("{trimmed}\n")
                };
                let part = reference.part(kind, path.clone(), anchor, mention, content);
                self.add(part, range.clone(), rank);
                let Some((document, lines)) = &loaded.markdown else {
                    return Ok(());
                };
                let range = range.unwrap_or(0..loaded.text.len());
                for link in document
                    .links
                    .iter()
                    .filter(|link| range.contains(&link.offset))
                {
                    let at = (path.clone(), lines.position(&loaded.text, link.offset));
                    if reference.depth < self.depth_limit {
                        pending.push_back(Reference {
                            link: link.destination.clone(),
                            linking_file: path.clone(),
                            at,
                            origin: reference.origin,
                            depth: reference.depth + 1,
                        });
                    } else if let Ok(link::Destination::External(url)) =
                        link::parse(&link.destination, &path)
                    {
                        // Past the depth limit nothing is followed, but URLs are still listed.
                        self.external_link(url, format!("{}:{}:{}", at.0, at.1.line, at.1.column));
                    }
                }
            }
        }
        Ok(())
    }

    fn external_link(&mut self, url: String, at: String) {
        if self.seen_urls.insert(url.clone()) {
            self.external.push(External { url, at });
        }
    }

    /// Adds `mention` to the part already found under `key`, which keeps the better rank.
    fn merge(&mut self, key: &Key, mention: Mention, rank: Rank) -> bool {
        let Some(&index) = self.index.get(key) else {
            return false;
        };
        let candidate = &mut self.candidates[index];
        candidate.part.mentions.push(mention);
        if (rank.0, rank.1) < (candidate.rank.0, candidate.rank.1) {
            candidate.rank = (rank.0, rank.1, candidate.rank.2);
        }
        true
    }

    fn add(&mut self, part: Part, range: Option<Range<usize>>, rank: Rank) {
        let key = (
            part.path.clone(),
            range.clone(),
            part.kind == PartKind::Listing,
        );
        self.index.insert(key, self.candidates.len());
        self.candidates.push(Candidate { part, range, rank });
    }

    /// Applies the budget, folds covered sections into the parts that contain them, and orders the parts.
    fn finish(self, task: &Task, task_part: Part, options: Options) -> Bundle {
        let candidates = self.candidates;
        let mut kept = vec![true; candidates.len()];
        let covering = |index: usize, kept: &[bool]| {
            candidates
                .iter()
                .enumerate()
                .find(|(other, candidate)| {
                    kept[*other] && *other != index && candidate.covers(&candidates[index])
                })
                .map(|(other, _)| other)
        };
        let total = |kept: &[bool]| -> u64 {
            task_part.tokens
                + (0..candidates.len())
                    .filter(|index| kept[*index] && covering(*index, kept).is_none())
                    .map(|index| candidates[index].part.tokens)
                    .sum::<u64>()
        };
        if let Some(budget) = options.budget {
            while total(&kept) > budget {
                let Some(victim) = (0..candidates.len())
                    .filter(|index| {
                        kept[*index]
                            && candidates[*index].part.tokens > 0
                            && covering(*index, &kept).is_none()
                    })
                    .max_by_key(|index| candidates[*index].rank)
                else {
                    break;
                };
                kept[victim] = false;
            }
        }
        let tokens = total(&kept);
        let fold_into: Vec<Option<usize>> = (0..candidates.len())
            .map(|index| {
                if !kept[index] {
                    return None;
                }
                let mut outer = covering(index, &kept)?;
                while let Some(outermost) = covering(outer, &kept) {
                    outer = outermost;
                }
                Some(outer)
            })
            .collect();
        let mut parts: Vec<Option<Part>> = Vec::with_capacity(candidates.len());
        let mut folded: Vec<(usize, Vec<Mention>)> = Vec::new();
        let mut dropped = Vec::new();
        for (index, candidate) in candidates.into_iter().enumerate() {
            let part = candidate.part;
            if !kept[index] {
                dropped.push(Dropped {
                    kind: part.kind,
                    origin: part.origin,
                    path: part.path,
                    section: part.section,
                    depth: part.depth,
                    bytes: part.bytes,
                    tokens: part.tokens,
                    mentions: part.mentions,
                });
                parts.push(None);
            } else if let Some(outer) = fold_into[index] {
                folded.push((outer, part.mentions));
                parts.push(None);
            } else {
                parts.push(Some(part));
            }
        }
        for (outer, mentions) in folded {
            if let Some(part) = parts[outer].as_mut() {
                part.mentions.extend(mentions);
            }
        }
        let mut parts: Vec<Part> = parts.into_iter().flatten().collect();
        parts.push(task_part);
        Bundle {
            task: task.id.clone(),
            depth: options.depth,
            budget: options.budget,
            tokens,
            parts,
            dropped,
            external: self.external,
            notes: self.notes,
        }
    }
}
