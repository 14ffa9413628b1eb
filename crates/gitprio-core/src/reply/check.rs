//! The reply of `gitprio check`.

use schemars::JsonSchema;
use serde::Serialize;

use crate::diagnostic::Diagnostic;

/// `gitprio check --json`: every problem of the task files and the config.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct CheckReply {
    /// Whether no diagnostic is an error: `errors == 0`.
    pub ok: bool,
    pub errors: usize,
    pub warnings: usize,
    /// Task files git knows in the working tree: tracked, and untracked ones not ignored.
    pub files: usize,
    /// Sorted by path, line and column.
    pub diagnostics: Vec<Diagnostic>,
}

impl CheckReply {
    /// Returns the reply for `diagnostics` found in `files` task files.
    pub fn new(files: usize, diagnostics: Vec<Diagnostic>) -> CheckReply {
        let errors = diagnostics
            .iter()
            .filter(|diagnostic| diagnostic.is_error())
            .count();
        CheckReply {
            ok: errors == 0,
            errors,
            warnings: diagnostics.len() - errors,
            files,
            diagnostics,
        }
    }
}
