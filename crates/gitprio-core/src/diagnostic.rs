//! Located problems found in task files and the task graph.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How serious a [`Diagnostic`] is.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// What kind of problem a [`Diagnostic`] reports; stable names for `--json`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum DiagnosticKind {
    /// The file could not be read as a task at all: too large, not UTF-8, no frontmatter.
    Unreadable,
    /// The frontmatter is not valid YAML, or a value has the wrong type.
    Yaml,
    /// A field holds a value outside what it allows.
    InvalidValue,
    /// A required field is missing.
    MissingField,
    /// A frontmatter key gitprio does not know.
    UnknownKey,
    /// Two task files claim the same id.
    DuplicateId,
    /// A dependency names a task that does not exist.
    UnknownDependency,
    /// Tasks depend on each other in a cycle.
    DependencyCycle,
    /// A task's `type`, or a type a setting of the config names, is not in the configured list.
    UnknownType,
    /// An `owns` glob matches no file in the repository.
    OwnsMatchesNothing,
    /// A `context` entry names a path that does not exist.
    MissingContext,
    /// The repository configuration is invalid.
    Config,
}

/// A problem at a place in a file, with 1-based line and column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Diagnostic {
    pub severity: Severity,
    pub kind: DiagnosticKind,
    /// Repository-relative path, with `/` separators.
    pub path: String,
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl Diagnostic {
    /// Returns an error at `path:line:column`.
    pub fn error(
        kind: DiagnosticKind,
        path: &str,
        position: Position,
        message: impl Into<String>,
    ) -> Self {
        Self::new(Severity::Error, kind, path, position, message)
    }

    /// Returns a warning at `path:line:column`.
    pub fn warning(
        kind: DiagnosticKind,
        path: &str,
        position: Position,
        message: impl Into<String>,
    ) -> Self {
        Self::new(Severity::Warning, kind, path, position, message)
    }

    fn new(
        severity: Severity,
        kind: DiagnosticKind,
        path: &str,
        position: Position,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity,
            kind,
            path: path.to_owned(),
            line: position.line,
            column: position.column,
            message: message.into(),
        }
    }

    /// Returns whether this diagnostic is an error (as opposed to a warning).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.path, self.line, self.column, self.severity, self.message
        )
    }
}

/// A 1-based line and column in a file.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

impl Position {
    /// The first character of a file.
    pub const START: Position = Position { line: 1, column: 1 };

    /// Returns the position at `line`, `column`.
    pub fn new(line: u32, column: u32) -> Self {
        Self { line, column }
    }
}
