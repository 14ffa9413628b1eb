//! Parsing one task file into a [`Task`] and the located problems found on the way.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::{
    Budget, Planning, Priority, Status, Task, TaskId, parse_token_count, split_frontmatter,
};
use crate::diagnostic::{Diagnostic, DiagnosticKind, Position};

/// Task files larger than this are rejected unread: a task is a page, not a dataset.
pub const MAX_TASK_FILE_BYTES: u64 = 1024 * 1024;

/// Every frontmatter key the format defines, in documentation order.
pub const FIELDS: &[&str] = &[
    "id",
    "title",
    "priority",
    "status",
    "depends_on",
    "type",
    "feature",
    "value",
    "labels",
    "owns",
    "context",
    "acceptance",
    "budget",
    "model",
    "created",
    "plan",
];

/// The outcome of parsing one task file: the task if it was usable, and every problem found.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ParsedTask {
    pub task: Option<Task>,
    pub diagnostics: Vec<Diagnostic>,
}

impl ParsedTask {
    fn failed(diagnostic: Diagnostic) -> Self {
        Self {
            task: None,
            diagnostics: vec![diagnostic],
        }
    }
}

/// Parses the task file at repository path `path` with contents `bytes`.
///
/// Never panics and never fails as a whole: a file that cannot be used yields
/// `task: None` with at least one error diagnostic.
pub fn parse_task(path: &str, bytes: &[u8]) -> ParsedTask {
    if bytes.len() as u64 > MAX_TASK_FILE_BYTES {
        return ParsedTask::failed(too_large(path, bytes.len() as u64));
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => {
            let valid = &bytes[..error.valid_up_to()];
            #[expect(
                clippy::naive_bytecount,
                reason = "at most 1 MiB, once per file that is not UTF-8: not worth a dependency"
            )]
            let line = 1 + valid.iter().filter(|&&byte| byte == b'\n').count();
            let column = 1 + valid
                .iter()
                .rev()
                .take_while(|&&byte| byte != b'\n')
                .count();
            return ParsedTask::failed(Diagnostic::error(
                DiagnosticKind::Unreadable,
                path,
                Position::new(saturate(line), saturate(column)),
                "file is not valid UTF-8",
            ));
        }
    };
    if text.contains('\0') {
        return ParsedTask::failed(Diagnostic::error(
            DiagnosticKind::Unreadable,
            path,
            Position::START,
            "file is binary, not a markdown task file",
        ));
    }
    let Some(parts) = split_frontmatter(text) else {
        let message = if text.trim_start_matches('\u{feff}').starts_with("---") {
            "frontmatter is never closed: add a line `---` after the YAML"
        } else {
            "file does not start with YAML frontmatter: the first line must be `---`"
        };
        return ParsedTask::failed(Diagnostic::error(
            DiagnosticKind::Unreadable,
            path,
            Position::START,
            message,
        ));
    };
    let line_offset = parts.yaml_line - 1;
    let entries = match read_yaml(parts.yaml) {
        Ok(entries) => entries,
        Err(error) => {
            let position = error
                .location()
                .map_or(Position::new(parts.yaml_line, 1), |location| {
                    Position::new(
                        saturate64(location.line()) + line_offset,
                        saturate64(location.column()),
                    )
                });
            return ParsedTask::failed(Diagnostic::error(
                DiagnosticKind::Yaml,
                path,
                position,
                yaml_message(&error),
            ));
        }
    };
    let mut builder = Builder::new(path, line_offset);
    for (key, value) in entries {
        builder.field(key, value);
    }
    builder.finish(parts.body, parts.body_line)
}

fn too_large(path: &str, size: u64) -> Diagnostic {
    #[expect(clippy::cast_precision_loss, reason = "a size shown to one decimal")]
    let mib = size as f64 / (1024.0 * 1024.0);
    Diagnostic::error(
        DiagnosticKind::Unreadable,
        path,
        Position::START,
        format!("file is {mib:.1} MiB, over the 1 MiB limit for task files"),
    )
}

/// Returns the outcome for a file rejected by its size alone, before reading it.
pub fn oversized_task(path: &str, size: u64) -> ParsedTask {
    ParsedTask::failed(too_large(path, size))
}

fn saturate(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

fn saturate64(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    if let Some(budget) = options.budget.as_mut() {
        budget.max_nodes = 100_000;
        budget.max_aliases = 1_000;
        budget.max_depth = 64;
    }
    options
}

fn read_yaml(yaml: &str) -> Result<Vec<Entry>, serde_saphyr::Error> {
    if yaml.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_saphyr::from_str_with_options::<Entries>(yaml, yaml_options()).map(|entries| entries.0)
}

/// Returns the parser's message without the trailing location, which diagnostics carry.
fn yaml_message(error: &serde_saphyr::Error) -> String {
    let message = error.to_string();
    let trimmed = match error.location() {
        Some(location) => {
            let suffix = format!(" at line {}, column {}", location.line(), location.column());
            message
                .strip_suffix(&suffix)
                .map(str::to_owned)
                .unwrap_or(message)
        }
        None => message,
    };
    if trimmed.starts_with("budget breached") {
        return "invalid YAML: frontmatter is too large once aliases are expanded (over 100000 nodes or 1000 aliases); write the values out".to_owned();
    }
    format!("invalid YAML: {trimmed}")
}

/// One frontmatter field: its key and its value, each located in the YAML.
type Entry = (Spanned<String>, Spanned<Value>);

/// The top-level mapping of the frontmatter, with every key and value located.
struct Entries(Vec<Entry>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a mapping of task fields")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    entries.push((key, map.next_value()?));
                }
                Ok(Entries(entries))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Entries, E> {
                Ok(Entries(Vec::new()))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// A YAML value with its place in the source, enough to validate every field ourselves.
#[derive(Debug)]
enum Value {
    Null,
    Bool,
    Integer(i128),
    Float(f64),
    String(String),
    Sequence(Vec<Spanned<Value>>),
    Mapping(Vec<(Spanned<String>, Spanned<Value>)>),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool => "a boolean",
            Value::Integer(_) => "an integer",
            Value::Float(_) => "a number",
            Value::String(_) => "a string",
            Value::Sequence(_) => "a list",
            Value::Mapping(_) => "a mapping",
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl<'de> Visitor<'de> for ValueVisitor {
            type Value = Value;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a YAML value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_bool<E: de::Error>(self, _value: bool) -> Result<Value, E> {
                Ok(Value::Bool)
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Value, E> {
                Ok(Value::Integer(value.into()))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Value, E> {
                Ok(Value::Integer(value.into()))
            }
            fn visit_i128<E: de::Error>(self, value: i128) -> Result<Value, E> {
                Ok(Value::Integer(value))
            }
            fn visit_u128<E: de::Error>(self, value: u128) -> Result<Value, E> {
                Ok(Value::Integer(i128::try_from(value).unwrap_or(i128::MAX)))
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
                Ok(Value::Float(value))
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Value, E> {
                Ok(Value::String(value.to_owned()))
            }
            fn visit_string<E: de::Error>(self, value: String) -> Result<Value, E> {
                Ok(Value::String(value))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Value::Sequence(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    entries.push((key, map.next_value()?));
                }
                Ok(Value::Mapping(entries))
            }
        }
        deserializer.deserialize_any(ValueVisitor)
    }
}

/// Collects fields into a task, recording a located diagnostic for each bad one.
struct Builder<'a> {
    path: &'a str,
    line_offset: u32,
    diagnostics: Vec<Diagnostic>,
    positions: BTreeMap<String, Position>,
    seen: BTreeSet<String>,
    id: Option<TaskId>,
    title: Option<String>,
    priority: Priority,
    status: Status,
    depends_on: Vec<TaskId>,
    task_type: Option<String>,
    feature: Option<String>,
    value: u32,
    labels: Vec<String>,
    owns: Vec<String>,
    context: Vec<String>,
    acceptance: Vec<String>,
    budget: Option<Budget>,
    model: Option<String>,
    created: Option<String>,
    plan: Option<Planning>,
}

impl<'a> Builder<'a> {
    fn new(path: &'a str, line_offset: u32) -> Self {
        Self {
            path,
            line_offset,
            diagnostics: Vec::new(),
            positions: BTreeMap::new(),
            seen: BTreeSet::new(),
            id: None,
            title: None,
            priority: Priority::DEFAULT,
            status: Status::Open,
            depends_on: Vec::new(),
            task_type: None,
            feature: None,
            value: 1,
            labels: Vec::new(),
            owns: Vec::new(),
            context: Vec::new(),
            acceptance: Vec::new(),
            budget: None,
            model: None,
            created: None,
            plan: None,
        }
    }

    fn position<T>(&self, spanned: &Spanned<T>) -> Position {
        Position::new(
            saturate64(spanned.referenced.line()).saturating_add(self.line_offset),
            saturate64(spanned.referenced.column()),
        )
    }

    fn invalid<T>(&mut self, at: &Spanned<T>, message: String) {
        let position = self.position(at);
        self.diagnostics.push(Diagnostic::error(
            DiagnosticKind::InvalidValue,
            self.path,
            position,
            message,
        ));
    }

    #[expect(
        clippy::too_many_lines,
        reason = "a parser: one match over every frontmatter field"
    )]
    fn field(&mut self, key: Spanned<String>, value: Spanned<Value>) {
        let key_position = self.position(&key);
        let name = key.value;
        self.positions.insert(name.clone(), key_position);
        self.seen.insert(name.clone());
        match name.as_str() {
            "id" => {
                if let Some(text) = self.string(&name, &value) {
                    match TaskId::problem(&text) {
                        None => self.id = Some(TaskId::from_valid(&text)),
                        Some(problem) => self.invalid(&value, format!("`id` {text:?} {problem}")),
                    }
                }
            }
            "title" => {
                if let Some(text) = self.string(&name, &value) {
                    if text.trim().is_empty() {
                        self.invalid(&value, "`title` must not be empty".to_owned());
                    } else {
                        self.title = Some(text);
                    }
                }
            }
            "priority" => self.priority(&value),
            "status" => {
                if let Some(text) = self.string(&name, &value) {
                    match Status::parse(&text) {
                        Some(status) => self.status = status,
                        None if text == "in_progress" || text == "in-progress" || text == "in progress" => self.invalid(
                            &value,
                            "`status` cannot be \"in progress\": that is a lease, taken with `gitprio claim`".to_owned(),
                        ),
                        None => self.invalid(
                            &value,
                            format!("`status` {text:?} is not one of open, done, blocked, dropped"),
                        ),
                    }
                }
            }
            "depends_on" => {
                let items = self.strings(&name, value);
                self.depends_on = items
                    .into_iter()
                    .filter_map(|(text, position)| {
                        let problem = TaskId::problem(&text);
                        if let Some(problem) = problem {
                            self.diagnostics.push(Diagnostic::error(
                                DiagnosticKind::InvalidValue,
                                self.path,
                                position,
                                format!("dependency {text:?} is not a valid task id: it {problem}"),
                            ));
                        }
                        problem.is_none().then(|| TaskId::from_valid(&text))
                    })
                    .collect();
            }
            "type" => self.task_type = self.string(&name, &value),
            "feature" => self.feature = self.string(&name, &value),
            "model" => self.model = self.string(&name, &value),
            "value" => match &value.value {
                Value::Integer(points) => match u32::try_from(*points) {
                    Ok(points) => self.value = points,
                    Err(_) => self.invalid(
                        &value,
                        format!("`value` must be a whole number of points from 0, not {points}"),
                    ),
                },
                other => {
                    let message = format!(
                        "`value` must be a whole number of points, not {}",
                        other.kind()
                    );
                    self.invalid(&value, message);
                }
            },
            "labels" => {
                self.labels = self
                    .strings(&name, value)
                    .into_iter()
                    .map(|(text, _)| text)
                    .collect();
            }
            "owns" => {
                self.owns = self
                    .strings(&name, value)
                    .into_iter()
                    .map(|(text, _)| text)
                    .collect();
            }
            "context" => {
                self.context = self
                    .strings(&name, value)
                    .into_iter()
                    .map(|(text, _)| text)
                    .collect();
            }
            "acceptance" => {
                self.acceptance = self
                    .strings(&name, value)
                    .into_iter()
                    .map(|(text, _)| text)
                    .collect();
            }
            "budget" => self.budget(&value),
            "plan" => {
                if let Some(text) = self.string(&name, &value) {
                    match Planning::parse(&text) {
                        Some(planning) => self.plan = Some(planning),
                        None => self.invalid(
                            &value,
                            format!("`plan` {text:?} is not one of required, optional"),
                        ),
                    }
                }
            }
            "created" => {
                if let Some(text) = self.string(&name, &value) {
                    if text.parse::<jiff::civil::Date>().is_ok() && text.len() == 10 {
                        self.created = Some(text);
                    } else {
                        self.invalid(
                            &value,
                            format!("`created` {text:?} must be a date as YYYY-MM-DD"),
                        );
                    }
                }
            }
            _ => {
                let diagnostic = match closest_field(&name) {
                    Some(field) => Diagnostic::error(
                        DiagnosticKind::UnknownKey,
                        self.path,
                        key_position,
                        format!("unknown key `{name}`; did you mean `{field}`?"),
                    ),
                    None => Diagnostic::warning(
                        DiagnosticKind::UnknownKey,
                        self.path,
                        key_position,
                        format!("unknown key `{name}`"),
                    ),
                };
                self.diagnostics.push(diagnostic);
            }
        }
    }

    fn string(&mut self, name: &str, value: &Spanned<Value>) -> Option<String> {
        match &value.value {
            Value::String(text) => Some(text.clone()),
            Value::Integer(number) => Some(number.to_string()),
            Value::Float(number) => Some(number.to_string()),
            Value::Null => None,
            other => {
                let message = format!("`{name}` must be a string, not {}", other.kind());
                self.invalid(value, message);
                None
            }
        }
    }

    /// Reads a list of strings; a single string counts as a one-item list.
    fn strings(&mut self, name: &str, value: Spanned<Value>) -> Vec<(String, Position)> {
        let outer = self.position(&value);
        match value.value {
            Value::Null => Vec::new(),
            Value::String(text) => {
                self.positions.insert(format!("{name}[0]"), outer);
                vec![(text, outer)]
            }
            Value::Sequence(items) => {
                let mut strings = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    let position = self.position(item);
                    match &item.value {
                        Value::String(text) => {
                            self.positions.insert(format!("{name}[{index}]"), position);
                            strings.push((text.clone(), position));
                        }
                        Value::Integer(number) => {
                            self.positions.insert(format!("{name}[{index}]"), position);
                            strings.push((number.to_string(), position));
                        }
                        other => {
                            let message =
                                format!("`{name}` items must be strings, not {}", other.kind());
                            self.invalid(item, message);
                        }
                    }
                }
                strings
            }
            other => {
                let message = format!("`{name}` must be a list of strings, not {}", other.kind());
                self.diagnostics.push(Diagnostic::error(
                    DiagnosticKind::InvalidValue,
                    self.path,
                    outer,
                    message,
                ));
                Vec::new()
            }
        }
    }

    fn priority(&mut self, value: &Spanned<Value>) {
        let parsed = match &value.value {
            Value::Integer(level) => u8::try_from(*level).ok().and_then(Priority::new),
            Value::String(text) => Priority::parse(text),
            _ => None,
        };
        if let Some(priority) = parsed {
            self.priority = priority;
        } else {
            let shown = match &value.value {
                Value::Integer(level) => level.to_string(),
                Value::String(text) => format!("{text:?}"),
                other => other.kind().to_owned(),
            };
            self.invalid(
                value,
                format!("`priority` must be 0..4 or p0..p4 (0 is most urgent), not {shown}"),
            );
        }
    }

    fn budget(&mut self, value: &Spanned<Value>) {
        const HINT: &str = "`budget` must be tokens (`200k`), dollars (`$2.50`), or a mapping with `tokens` and/or `usd`";
        let budget = match &value.value {
            Value::Integer(tokens) => u64::try_from(*tokens).ok().map(|tokens| Budget {
                tokens: Some(tokens),
                usd: None,
            }),
            Value::String(text) => Budget::parse(text),
            Value::Mapping(entries) => {
                let mut budget = Budget::default();
                let mut valid = true;
                for (key, item) in entries {
                    match (key.value.as_str(), &item.value) {
                        ("tokens", Value::Integer(tokens)) => {
                            budget.tokens = u64::try_from(*tokens).ok();
                        }
                        ("tokens", Value::String(text)) => budget.tokens = parse_token_count(text),
                        #[expect(clippy::cast_precision_loss, reason = "dollar amounts are small")]
                        ("usd", Value::Integer(usd)) if *usd >= 0 => budget.usd = Some(*usd as f64),
                        ("usd", Value::Float(usd)) if usd.is_finite() && *usd >= 0.0 => {
                            budget.usd = Some(*usd);
                        }
                        ("usd", Value::String(text)) => {
                            budget.usd =
                                Budget::parse(&format!("${}", text.trim_start_matches('$')))
                                    .and_then(|b| b.usd);
                        }
                        _ => valid = false,
                    }
                }
                (valid && (budget.tokens.is_some() || budget.usd.is_some())).then_some(budget)
            }
            _ => None,
        };
        match budget {
            Some(budget) => self.budget = Some(budget),
            None => self.invalid(value, HINT.to_owned()),
        }
    }

    fn finish(mut self, body: &str, body_line: u32) -> ParsedTask {
        let id = self.id.take().or_else(|| {
            let stem = self.path.rsplit('/').next().unwrap_or(self.path).trim_end_matches(".md");
            let problem = TaskId::problem(stem);
            if let Some(problem) = problem.filter(|_| !self.seen.contains("id")) {
                self.diagnostics.push(Diagnostic::error(
                    DiagnosticKind::InvalidValue,
                    self.path,
                    Position::START,
                    format!("file name {stem:?} is not a valid task id: it {problem}; rename the file or set `id:`"),
                ));
            }
            problem.is_none().then(|| TaskId::from_valid(stem))
        });
        if self.title.is_none() && !self.seen.contains("title") {
            self.diagnostics.push(Diagnostic::error(
                DiagnosticKind::MissingField,
                self.path,
                Position::START,
                "missing required field `title`",
            ));
        }
        let usable = !self.diagnostics.iter().any(is_fatal);
        let task = match (id, self.title) {
            (Some(id), Some(title)) if usable => Some(Task {
                id,
                path: self.path.to_owned(),
                title,
                priority: self.priority,
                status: self.status,
                depends_on: self.depends_on,
                task_type: self.task_type,
                feature: self.feature,
                value: self.value,
                labels: self.labels,
                owns: self.owns,
                context: self.context,
                acceptance: self.acceptance,
                budget: self.budget,
                model: self.model,
                created: self.created,
                plan: self.plan,
                body: body.to_owned(),
                body_line,
                positions: self.positions,
                errors: self
                    .diagnostics
                    .iter()
                    .filter(|diagnostic| diagnostic.is_error())
                    .cloned()
                    .collect(),
            }),
            _ => None,
        };
        ParsedTask {
            task,
            diagnostics: self.diagnostics,
        }
    }
}

/// Returns whether `diagnostic` makes a task file unusable: any error but a misspelt key,
/// which leaves the task readable and only holds it back (see [`Task::errors`]).
pub fn is_fatal(diagnostic: &Diagnostic) -> bool {
    diagnostic.is_error() && diagnostic.kind != DiagnosticKind::UnknownKey
}

/// Returns the known field that unknown key `key` is a near miss of, if it is one: the same
/// key but for case and `-` for `_`, or within an edit distance of a third of the field's
/// length (at least 1), a swap of two neighbours counting as one edit.
///
/// A near miss is almost surely a typo whose value was meant for the field: ignoring it
/// would, for `depends-on`, drop a dependency. A key far from every field is a note.
pub fn closest_field(key: &str) -> Option<&'static str> {
    closest(key, FIELDS)
}

/// Returns the name of `names` that `key` is a near miss of: see [`closest_field`].
pub(crate) fn closest(key: &str, names: &[&'static str]) -> Option<&'static str> {
    let normalized = key.to_lowercase().replace('-', "_");
    names
        .iter()
        .map(|name| (edit_distance(&normalized, name), *name))
        .filter(|(distance, name)| *distance <= 1.max(name.chars().count() / 3))
        .min()
        .map(|(_, name)| name)
}

/// The optimal string alignment distance: insertions, deletions, substitutions and swaps of
/// two adjacent characters each cost one.
fn edit_distance(left: &str, right: &str) -> usize {
    let left: Vec<char> = left.chars().collect();
    let right: Vec<char> = right.chars().collect();
    let mut rows = vec![vec![0; right.len() + 1]; left.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    rows[0] = (0..=right.len()).collect();
    for i in 1..=left.len() {
        for j in 1..=right.len() {
            let cost = usize::from(left[i - 1] != right[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && left[i - 1] == right[j - 2] && left[i - 2] == right[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[left.len()][right.len()]
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    fn parse(text: &str) -> ParsedTask {
        parse_task(".tasks/sample.md", text.as_bytes())
    }

    fn messages(parsed: &ParsedTask) -> Vec<String> {
        parsed.diagnostics.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn parses_every_field() {
        let parsed = parse(
            "---\nid: fix-login\ntitle: Fix login\npriority: p1\nstatus: open\ndepends_on: [a, b]\ntype: bug\n\
             feature: auth\nvalue: 5\nlabels: [x]\nowns: [\"src/**\"]\ncontext: [docs/a.md#setup]\n\
             acceptance: [cargo test]\nbudget: {tokens: 200k, usd: 2.5}\nmodel: large\ncreated: 2026-11-01\nplan: required\n---\n# Do it\n",
        );
        assert_eq!(messages(&parsed), Vec::<String>::new());
        let task = parsed.task.unwrap();
        assert_eq!(task.id.as_str(), "fix-login");
        assert_eq!(task.priority.level(), 1);
        assert_eq!(task.depends_on.len(), 2);
        assert_eq!(
            task.budget,
            Some(Budget {
                tokens: Some(200_000),
                usd: Some(2.5)
            })
        );
        assert_eq!(task.created.as_deref(), Some("2026-11-01"));
        assert_eq!(task.plan, Some(Planning::Required));
        assert_eq!(task.body, "# Do it\n");
        assert_eq!(task.body_line, 19);
        assert_eq!(task.position_of("depends_on[1]"), Position::new(6, 17));
    }

    #[test]
    fn plan_is_required_or_optional() {
        let optional = parse("---\ntitle: T\nplan: optional\n---\n").task.unwrap();
        assert_eq!(optional.plan, Some(Planning::Optional));
        assert_eq!(parse("---\ntitle: T\n---\n").task.unwrap().plan, None);
        let wrong = parse("---\ntitle: T\nplan: maybe\n---\n");
        assert_eq!(
            messages(&wrong),
            [".tasks/sample.md:3:7: error: `plan` \"maybe\" is not one of required, optional"]
        );
    }

    #[test]
    fn defaults_id_to_file_stem_and_fields_to_defaults() {
        let task = parse("---\ntitle: T\n---\n").task.unwrap();
        assert_eq!(task.id.as_str(), "sample");
        assert_eq!(task.priority, Priority::DEFAULT);
        assert_eq!(task.status, Status::Open);
        assert_eq!(task.value, 1);
    }

    #[test]
    fn locates_errors_in_file_lines() {
        let parsed = parse("---\ntitle: T\npriority: high\n---\n");
        assert_eq!(
            messages(&parsed),
            [
                ".tasks/sample.md:3:11: error: `priority` must be 0..4 or p0..p4 (0 is most urgent), not \"high\""
            ]
        );
        assert!(parsed.task.is_none());
    }

    #[test]
    fn reports_yaml_syntax_errors_with_file_position() {
        let parsed = parse("---\ntitle: \"unclosed\n---\n");
        assert_eq!(
            messages(&parsed),
            [".tasks/sample.md:2:8: error: invalid YAML: unclosed quote"]
        );
    }

    #[test]
    fn a_near_miss_of_a_known_key_is_an_error_that_holds_the_task_back() {
        let parsed = parse("---\ntitle: T\npriorty: p1\ndepends-on: [other]\ncolour: blue\n---\n");
        assert_eq!(
            messages(&parsed),
            [
                ".tasks/sample.md:3:1: error: unknown key `priorty`; did you mean `priority`?",
                ".tasks/sample.md:4:1: error: unknown key `depends-on`; did you mean `depends_on`?",
                ".tasks/sample.md:5:1: warning: unknown key `colour`",
            ]
        );
        let task = parsed.task.unwrap();
        assert_eq!(task.errors.len(), 2);
        assert_eq!(task.priority, Priority::DEFAULT);
        let fine = parse("---\ntitle: T\nnotes: free text\n---\n")
            .task
            .unwrap();
        assert!(fine.errors.is_empty());
    }

    #[test]
    fn near_misses_are_typos_and_far_keys_are_not() {
        for (key, field) in [
            ("priorty", "priority"),
            ("prioritty", "priority"),
            ("Priority", "priority"),
            ("depends-on", "depends_on"),
            ("dependson", "depends_on"),
            ("lables", "labels"),
            ("tpye", "type"),
            ("ownz", "owns"),
            ("i", "id"),
            ("acceptence", "acceptance"),
        ] {
            assert_eq!(closest_field(key), Some(field), "{key}");
        }
        for key in [
            "x", "colour", "notes", "tags", "assignee", "estimate", "parent",
        ] {
            assert_eq!(closest_field(key), None, "{key}");
        }
    }

    #[test]
    fn requires_a_title_and_a_valid_id() {
        let parsed = parse_task(".tasks/Bad Name.md", b"---\npriority: 1\n---\n");
        assert_eq!(
            messages(&parsed),
            [
                ".tasks/Bad Name.md:1:1: error: file name \"Bad Name\" is not a valid task id: it must match [a-z0-9][a-z0-9._-]*; rename the file or set `id:`",
                ".tasks/Bad Name.md:1:1: error: missing required field `title`",
            ]
        );
    }

    #[test]
    fn rejects_ids_git_cannot_name_a_ref_after() {
        let parsed = parse("---\nid: a..b\ntitle: T\n---\n");
        assert!(parsed.task.is_none());
        assert_eq!(
            messages(&parsed),
            [
                ".tasks/sample.md:2:5: error: `id` \"a..b\" must not contain `..` (git does not allow it in the name of the task's lease ref)"
            ]
        );
        let parsed = parse_task(".tasks/deps.lock.md", b"---\ntitle: T\n---\n");
        assert!(parsed.task.is_none());
        assert_eq!(
            messages(&parsed),
            [
                ".tasks/deps.lock.md:1:1: error: file name \"deps.lock\" is not a valid task id: it must not end in `.lock` (git does not allow it in the name of the task's lease ref); rename the file or set `id:`"
            ]
        );
    }

    #[test]
    fn rejects_in_progress_status() {
        let parsed = parse("---\ntitle: T\nstatus: in_progress\n---\n");
        assert!(messages(&parsed)[0].contains("that is a lease"));
    }

    #[test]
    fn rejects_bad_bytes_without_panicking() {
        let invalid_utf8 = parse_task(".tasks/x.md", b"---\ntitle: caf\xe9\n---\n");
        assert_eq!(
            messages(&invalid_utf8),
            [".tasks/x.md:2:11: error: file is not valid UTF-8"]
        );
        let binary = parse_task(".tasks/x.md", b"\x89PNG\r\n\x1a\n\0\0");
        assert!(binary.task.is_none());
        let markdown = parse("# Just a note\n");
        assert!(messages(&markdown)[0].contains("first line must be `---`"));
        let large = vec![b'a'; 2 * 1024 * 1024];
        assert!(
            messages(&parse_task(".tasks/x.md", &large))[0]
                .contains("2.0 MiB, over the 1 MiB limit")
        );
    }

    #[test]
    fn survives_an_alias_bomb() {
        let mut yaml = String::from("---\ntitle: T\na: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..12 {
            let previous = level - 1;
            let refs = vec![format!("*l{previous}"); 10].join(", ");
            let anchor = if level == 1 {
                "a".to_owned()
            } else {
                format!("l{previous}")
            };
            let refs = refs.replace(&format!("*l{previous}"), &format!("*{anchor}"));
            writeln!(yaml, "l{level}: &l{level} [{refs}]").unwrap();
        }
        yaml.push_str("labels: *l11\n---\n");
        let parsed = parse(&yaml);
        assert!(parsed.task.is_none());
        assert!(
            parsed
                .diagnostics
                .iter()
                .any(|d| d.message.starts_with("invalid YAML")),
            "{:?}",
            messages(&parsed)
        );
    }

    #[test]
    fn parses_budgets() {
        assert_eq!(
            Budget::parse("200k"),
            Some(Budget {
                tokens: Some(200_000),
                usd: None
            })
        );
        assert_eq!(
            Budget::parse("1.5m"),
            Some(Budget {
                tokens: Some(1_500_000),
                usd: None
            })
        );
        assert_eq!(
            Budget::parse("$2.50"),
            Some(Budget {
                tokens: None,
                usd: Some(2.5)
            })
        );
        assert_eq!(Budget::parse("lots"), None);
    }
}
