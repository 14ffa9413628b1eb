//! The task model: one markdown file with YAML frontmatter under `.tasks/`.

mod edit;
mod frontmatter;
mod parse;

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::diagnostic::{Diagnostic, Position};

pub use edit::{StatusEditError, set_status};
pub use frontmatter::{Frontmatter, split_frontmatter};
pub(crate) use parse::closest;
pub use parse::{
    FIELDS, MAX_TASK_FILE_BYTES, ParsedTask, closest_field, is_fatal, oversized_task, parse_task,
};

/// A task id: `[a-z0-9][a-z0-9._-]*`, without `..` and not ending in `.` or `.lock`,
/// stable and unique within a queue.
///
/// Leases and usage records are git refs named after the id (`refs/gitprio/leases/<id>`),
/// so an id must be a name git accepts in a ref (`git check-ref-format`).
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct TaskId(String);

impl TaskId {
    /// Returns the id if `text` is a valid task id.
    pub fn new(text: &str) -> Option<TaskId> {
        Self::is_valid(text).then(|| TaskId(text.to_owned()))
    }

    /// Returns the id `text`, which the caller has already checked (it came from a `TaskId`).
    pub(crate) fn from_valid(text: &str) -> TaskId {
        debug_assert!(Self::is_valid(text), "invalid task id {text:?}");
        TaskId(text.to_owned())
    }

    /// Returns whether `text` is a valid task id: see [`TaskId::problem`].
    pub fn is_valid(text: &str) -> bool {
        Self::problem(text).is_none()
    }

    /// Says what is wrong with `text` as a task id, as a phrase that reads after it
    /// ("must match ..."), or `None` when it is a valid id.
    #[expect(
        clippy::case_sensitive_file_extension_comparisons,
        reason = "`.lock` is no file extension here, and the id is lowercase by then"
    )]
    pub fn problem(text: &str) -> Option<&'static str> {
        let mut bytes = text.bytes();
        let matches = bytes
            .next()
            .is_some_and(|first| first.is_ascii_lowercase() || first.is_ascii_digit())
            && bytes.all(|byte| {
                byte.is_ascii_lowercase()
                    || byte.is_ascii_digit()
                    || matches!(byte, b'.' | b'_' | b'-')
            });
        if !matches {
            Some("must match [a-z0-9][a-z0-9._-]*")
        } else if text.contains("..") {
            Some(
                "must not contain `..` (git does not allow it in the name of the task's lease ref)",
            )
        } else if text.ends_with(".lock") {
            Some(
                "must not end in `.lock` (git does not allow it in the name of the task's lease ref)",
            )
        } else if text.ends_with('.') {
            Some("must not end in `.` (git does not allow it in the name of the task's lease ref)")
        } else {
            None
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for TaskId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Urgency from 0 (most urgent) to 4; written `0`..`4` or `p0`..`p4`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct Priority(u8);

impl Priority {
    /// The least urgent priority.
    pub const LOWEST: u8 = 4;
    /// The priority of a task that does not set one.
    pub const DEFAULT: Priority = Priority(2);

    /// Returns the priority for `level` if it is within 0..=4.
    pub fn new(level: u8) -> Option<Priority> {
        (level <= Self::LOWEST).then_some(Priority(level))
    }

    /// Parses `0`..`4` or `p0`..`p4` (either case).
    pub fn parse(text: &str) -> Option<Priority> {
        let digits = text.strip_prefix(['p', 'P']).unwrap_or(text);
        digits.parse::<u8>().ok().and_then(Priority::new)
    }

    pub fn level(self) -> u8 {
        self.0
    }
}

impl Default for Priority {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

/// The stored state of a task. "In progress" is never stored: it is a lease.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Open,
    Done,
    Blocked,
    Dropped,
}

impl Status {
    /// Every status, in the order the format documents them.
    pub const ALL: [Status; 4] = [Status::Open, Status::Done, Status::Blocked, Status::Dropped];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Done => "done",
            Status::Blocked => "blocked",
            Status::Dropped => "dropped",
        }
    }

    /// Parses a status name as written in a task file.
    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a task is planned before it is worked on (`plan:` in its frontmatter).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Planning {
    /// The agent writes a `## Plan` section in the task's body first; `done` refuses without one.
    Required,
    /// No plan is asked for, whatever the config's `plan` rule says.
    Optional,
}

impl Planning {
    pub fn as_str(self) -> &'static str {
        match self {
            Planning::Required => "required",
            Planning::Optional => "optional",
        }
    }

    /// Parses `required` or `optional`.
    pub fn parse(text: &str) -> Option<Planning> {
        [Planning::Required, Planning::Optional]
            .into_iter()
            .find(|planning| planning.as_str() == text)
    }
}

/// Returns whether `body` has a `## Plan` section with something in it: a level-2 heading
/// reading "Plan" (any case) followed by text before the next heading of level 1 or 2.
pub fn has_plan(body: &str) -> bool {
    use pulldown_cmark::{Event, HeadingLevel, Parser, Tag, TagEnd};
    let mut heading: Option<(HeadingLevel, String)> = None;
    let mut in_plan = false;
    for event in Parser::new(body) {
        match event {
            Event::Start(Tag::Heading { level, .. }) => heading = Some((level, String::new())),
            Event::End(TagEnd::Heading(_)) => {
                if let Some((level, text)) = heading.take() {
                    if level <= HeadingLevel::H2 {
                        in_plan =
                            level == HeadingLevel::H2 && text.trim().eq_ignore_ascii_case("plan");
                    } else if in_plan {
                        return true;
                    }
                }
            }
            Event::Text(text) | Event::Code(text) => match &mut heading {
                Some((_, heading_text)) => heading_text.push_str(&text),
                None if in_plan && !text.trim().is_empty() => return true,
                None => {}
            },
            _ => {}
        }
    }
    false
}

/// A spending limit for one attempt at a task: tokens, dollars, or both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Budget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd: Option<f64>,
}

impl Budget {
    /// Parses a token count (`200000`, `200k`, `1.5m`) or a dollar amount (`$2.50`, `2.50usd`).
    pub fn parse(text: &str) -> Option<Budget> {
        let text = text.trim();
        let dollars = text
            .strip_prefix('$')
            .or_else(|| text.strip_suffix("usd"))
            .or_else(|| text.strip_suffix("USD"));
        if let Some(amount) = dollars {
            let usd: f64 = amount.trim().parse().ok()?;
            return (usd.is_finite() && usd >= 0.0).then_some(Budget {
                tokens: None,
                usd: Some(usd),
            });
        }
        parse_token_count(text).map(|tokens| Budget {
            tokens: Some(tokens),
            usd: None,
        })
    }
}

/// Parses `200000`, `200_000`, `200k` or `1.5m` into a token count.
pub fn parse_token_count(text: &str) -> Option<u64> {
    let text = text.trim().replace('_', "");
    let (number, multiplier) = match text.as_bytes().last()? {
        b'k' | b'K' => (&text[..text.len() - 1], 1_000.0),
        b'm' | b'M' => (&text[..text.len() - 1], 1_000_000.0),
        _ => return text.parse().ok(),
    };
    let value: f64 = number.parse().ok()?;
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "checked finite and non-negative"
    )]
    (value.is_finite() && value >= 0.0).then(|| (value * multiplier).round() as u64)
}

/// One task, as read from its file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Task {
    pub id: TaskId,
    /// Repository-relative path of the task file.
    pub path: String,
    pub title: String,
    pub priority: Priority,
    pub status: Status,
    pub depends_on: Vec<TaskId>,
    #[serde(rename = "type")]
    pub task_type: Option<String>,
    pub feature: Option<String>,
    /// Points of value that completing the task brings; default 1.
    pub value: u32,
    pub labels: Vec<String>,
    pub owns: Vec<String>,
    pub context: Vec<String>,
    pub acceptance: Vec<String>,
    pub budget: Option<Budget>,
    pub model: Option<String>,
    /// `YYYY-MM-DD`.
    pub created: Option<String>,
    /// `plan: required` or `optional`; unset, the config's `plan` rule decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Planning>,
    /// The markdown body after the frontmatter.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub body: String,
    /// The file line on which the body starts.
    #[serde(skip)]
    pub body_line: u32,
    /// Where each field (`depends_on`) and list item (`depends_on[1]`) sits in the file.
    #[serde(skip)]
    pub positions: BTreeMap<String, Position>,
    /// Errors in the file that leave the task readable but keep it out of the queue until
    /// fixed: a key that is a near miss of a known one (`priorty`), whose value is ignored.
    #[serde(skip)]
    pub errors: Vec<Diagnostic>,
}

impl Task {
    /// Returns where `field` (or `field[index]`) was written, else the start of the file.
    pub fn position_of(&self, field: &str) -> Position {
        self.positions
            .get(field)
            .copied()
            .unwrap_or(Position::START)
    }
}

#[cfg(test)]
mod tests {
    use super::{TaskId, has_plan};

    #[test]
    fn task_ids_are_valid_git_ref_components() {
        for valid in [
            "a",
            "0",
            "fix-login",
            "v1.2",
            "a.b.c",
            "x_y",
            "locked",
            "a.lock-file",
        ] {
            assert!(TaskId::is_valid(valid), "{valid}");
        }
        for invalid in [
            "",
            "-a",
            ".a",
            "A",
            "a b",
            "a/b",
            "a..b",
            "deps.lock",
            "end.",
            "a.",
            "a...b",
        ] {
            assert!(!TaskId::is_valid(invalid), "{invalid}");
        }
    }

    #[test]
    fn a_plan_is_a_level_two_plan_heading_with_something_under_it() {
        assert!(has_plan(
            "Do it.\n\n## Plan\n\n1. Read `a.rs`.\n2. Fix it.\n"
        ));
        assert!(has_plan("## plan \n- one step\n## Notes\n"));
        assert!(has_plan("## Plan\n\n### Steps\n"));
        assert!(!has_plan("Do it.\n"));
        assert!(!has_plan("## Plan\n\n## Notes\n\nlater\n"));
        assert!(!has_plan("# Plan\n\nsteps\n"));
        assert!(!has_plan("## Planning\n\nsteps\n"));
        assert!(!has_plan("```\n## Plan\nsteps\n```\n"));
        assert!(!has_plan("Write a `## Plan` section.\n"));
    }
}
