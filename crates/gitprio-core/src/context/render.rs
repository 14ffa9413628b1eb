//! The markdown form of a bundle: stable parts first, the lease and its commands last.

use std::fmt::Write as _;

use serde::Serialize;

use super::{Bundle, Origin, Part, PartKind};
use crate::lease::Lease;
use crate::task::{Budget, Task, has_plan};
use crate::usage::money::Usd;

/// A command the agent runs to report on its lease, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ReportCommand {
    pub command: String,
    pub purpose: String,
}

/// The volatile end of the bundle: where the queue was read, the lease, how to report.
#[derive(Clone, Debug)]
pub struct Tail<'a> {
    /// The revision and commit the bundle was read from, e.g. `refs/heads/main (1a2b3c4d5e6f)`.
    pub source: String,
    /// The lease this bundle was handed out with, if any.
    pub lease: Option<&'a Lease>,
    pub commands: Vec<ReportCommand>,
}

impl Bundle {
    /// Renders the bundle as one markdown prompt: project context, task context, the task,
    /// what was left out, then `tail`. The same bundle and tail always give the same bytes.
    pub fn to_markdown(&self, tail: &Tail<'_>) -> String {
        let mut text = String::new();
        let project: Vec<&Part> = self
            .parts
            .iter()
            .filter(|part| part.origin == Origin::Project)
            .collect();
        if !project.is_empty() {
            text.push_str(
                "# Project context\n\nDocuments handed to every task of this repository.\n\n",
            );
            for part in project {
                document(&mut text, part);
            }
        }
        let task_documents: Vec<&Part> = self
            .parts
            .iter()
            .filter(|part| matches!(part.origin, Origin::TaskContext | Origin::TaskBody))
            .collect();
        if !task_documents.is_empty() {
            text.push_str("# Task context\n\nDocuments the task below links to.\n\n");
            for part in task_documents {
                document(&mut text, part);
            }
        }
        for part in self.parts.iter().filter(|part| part.origin == Origin::Task) {
            text.push_str(&part.content);
            text.push('\n');
        }
        self.left_out(&mut text);
        lease(&mut text, tail);
        text
    }

    fn left_out(&self, text: &mut String) {
        if self.dropped.is_empty() && self.external.is_empty() && self.notes.is_empty() {
            return;
        }
        text.push_str("# Not included\n\n");
        if !self.dropped.is_empty() {
            let _ = writeln!(
                text,
                "Left out to stay within the context budget of {} tokens (estimated as bytes / 4); ask for any of them if you need it:\n",
                self.budget.unwrap_or_default()
            );
            for dropped in &self.dropped {
                let label = match &dropped.section {
                    Some(section) => format!("{}#{section}", dropped.path),
                    None if dropped.kind == PartKind::Listing => format!("{}/", dropped.path),
                    None => dropped.path.clone(),
                };
                let _ = writeln!(
                    text,
                    "- `{label}` ({} bytes, ~{} tokens)",
                    dropped.bytes, dropped.tokens
                );
            }
            text.push('\n');
        }
        if !self.external.is_empty() {
            text.push_str("External links, not fetched:\n\n");
            for external in &self.external {
                let _ = writeln!(text, "- <{}> (linked at {})", external.url, external.at);
            }
            text.push('\n');
        }
        if !self.notes.is_empty() {
            text.push_str("Warnings:\n\n");
            for note in &self.notes {
                let _ = writeln!(text, "- {note}");
            }
            text.push('\n');
        }
    }
}

fn document(text: &mut String, part: &Part) {
    let title = match part.kind {
        PartKind::Listing => format!("{} (directory listing)", part.label()),
        _ => part.label(),
    };
    let language = match part.kind {
        PartKind::Listing => "text",
        _ => language(&part.path),
    };
    let fence = fence(&part.content);
    let _ = write!(
        text,
        "## {title}\n\n{fence}{language}\n{}{fence}\n\n",
        part.content
    );
}

fn lease(text: &mut String, tail: &Tail<'_>) {
    text.push_str("# Lease\n\n");
    let _ = writeln!(text, "- queue: {}", tail.source);
    match tail.lease {
        Some(lease) => {
            let record = &lease.record;
            let _ = writeln!(
                text,
                "- lease: `{}`, generation {}, attempt {}, held by {}",
                lease.reference, record.generation, record.attempt, record.holder.agent
            );
            let _ = writeln!(text, "- expires: {} unless renewed", record.expires_at);
            if let Some(error) = &record.last_error {
                let _ = writeln!(text, "- last error: {error}");
            }
        }
        None => text.push_str("- lease: none; claim a task before working on it\n"),
    }
    if !tail.commands.is_empty() {
        text.push_str("\nReport with exactly these commands:\n\n");
        for command in &tail.commands {
            let _ = writeln!(text, "- `{}`: {}", command.command, command.purpose);
        }
    }
}

/// Renders the task part: title, the fields an agent works by, then the body as written.
/// Renders the task: its facts, its body, and (when it must be planned first and has no
/// plan yet) the instruction to write one before anything else.
pub(crate) fn task_block(task: &Task, plan_required: bool) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "# Task `{}`: {}\n", task.id, task.title);
    let _ = writeln!(text, "- file: {}", code(&task.path));
    let mut facts = Vec::new();
    if let Some(task_type) = &task.task_type {
        facts.push(format!("type {task_type}"));
    }
    if let Some(feature) = &task.feature {
        facts.push(format!("feature {feature}"));
    }
    facts.push(format!("priority {}", task.priority));
    facts.push(format!("value {}", task.value));
    let _ = writeln!(text, "- {}", facts.join(", "));
    if !task.labels.is_empty() {
        let _ = writeln!(text, "- labels: {}", task.labels.join(", "));
    }
    list(
        &mut text,
        "owns (the only files this task may change)",
        &task.owns,
    );
    list(
        &mut text,
        "acceptance (commands that must succeed: the evidence the task is done)",
        &task.acceptance,
    );
    if let Some(budget) = &task.budget {
        let _ = writeln!(
            text,
            "- budget: {} for this attempt",
            describe_budget(budget)
        );
    }
    if let Some(model) = &task.model {
        let _ = writeln!(text, "- model: {model}");
    }
    if plan_required {
        text.push_str("- plan: required (a `## Plan` section in the task file before the work)\n");
    }
    if !task.depends_on.is_empty() {
        let ids: Vec<String> = task.depends_on.iter().map(|id| code(id.as_str())).collect();
        let _ = writeln!(text, "- depends on: {}", ids.join(", "));
    }
    if !task.context.is_empty() {
        let entries: Vec<String> = task.context.iter().map(|entry| code(entry)).collect();
        let _ = writeln!(text, "- context: {}", entries.join(", "));
    }
    let body = task.body.replace("\r\n", "\n");
    let body = body.trim_matches('\n');
    if !body.trim().is_empty() {
        let _ = writeln!(text, "\n{body}");
    }
    if plan_required && !has_plan(&task.body) {
        let _ = write!(
            text,
            "\n## Plan first\n\n\
             This task must be planned before the work. Before you change anything else, add a \
             `## Plan` section at the end of the body of {}: what you will change and in which \
             order, what you will deliberately leave alone, the risks, and how you will check the \
             result. Then do the work as planned, and update the plan if it changes. \
             `gitprio done` refuses to complete this task until its file has that section.\n",
            code(&task.path)
        );
    }
    text
}

fn list(text: &mut String, name: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    let _ = writeln!(text, "- {name}:");
    for item in items {
        let _ = writeln!(text, "  - {}", code(item));
    }
}

fn describe_budget(budget: &Budget) -> String {
    match (budget.tokens, budget.usd) {
        (Some(tokens), Some(usd)) => {
            format!("{tokens} tokens or {}, whichever comes first", Usd(usd))
        }
        (Some(tokens), None) => format!("{tokens} tokens"),
        (None, Some(usd)) => Usd(usd).to_string(),
        (None, None) => "none".to_owned(),
    }
}

/// Returns `text` as inline code, with a backtick run longer than any inside it.
fn code(text: &str) -> String {
    let longest = longest_run(text, '`');
    if longest == 0 {
        return format!("`{text}`");
    }
    let ticks = "`".repeat(longest + 1);
    format!("{ticks} {text} {ticks}")
}

fn longest_run(text: &str, wanted: char) -> usize {
    let mut longest = 0;
    let mut current = 0;
    for character in text.chars() {
        if character == wanted {
            current += 1;
            longest = longest.max(current);
        } else {
            current = 0;
        }
    }
    longest
}

/// Returns a backtick fence longer than any backtick fence inside `content`, so it cannot close early.
fn fence(content: &str) -> String {
    let longest = content
        .lines()
        .map(|line| {
            let indented = line.trim_start_matches(' ');
            if line.len() - indented.len() > 3 {
                0
            } else {
                indented
                    .chars()
                    .take_while(|character| *character == '`')
                    .count()
            }
        })
        .max()
        .unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

/// Returns the fence info string for a file, from its extension.
fn language(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    let extension = name.rsplit_once('.').map_or("", |(_, extension)| extension);
    match extension.to_ascii_lowercase().as_str() {
        "md" | "markdown" | "mdx" | "mdown" | "mkd" => "markdown",
        "rs" => "rust",
        "py" => "python",
        "js" | "mjs" | "cjs" => "javascript",
        "ts" | "tsx" => "typescript",
        "go" => "go",
        "c" | "h" => "c",
        "cc" | "cpp" | "hpp" | "cxx" => "cpp",
        "java" => "java",
        "rb" => "ruby",
        "sh" | "bash" => "sh",
        "toml" => "toml",
        "yaml" | "yml" => "yaml",
        "json" => "json",
        "sql" => "sql",
        "html" | "htm" => "html",
        "css" => "css",
        _ => "",
    }
}
