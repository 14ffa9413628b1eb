//! The reply of `gitprio init`.

use schemars::JsonSchema;
use serde::Serialize;

/// `gitprio init --json`: what happened to each file it looks after, in the order handled.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct InitReply {
    pub files: Vec<InitFile>,
}

impl InitReply {
    /// Records what happened to the file at `path`.
    pub fn note(&mut self, path: String, action: FileAction) {
        self.files.push(InitFile { path, action });
    }
}

/// One file `init` created, updated or left alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct InitFile {
    /// Repository-relative path.
    pub path: String,
    pub action: FileAction,
}

/// What `init` did to a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileAction {
    /// It did not exist and was written.
    Created,
    /// gitprio's section in it was added or brought up to date (`--agents`).
    Updated,
    /// It exists and was left as it is: `init` never overwrites, and `--agents` found it
    /// up to date.
    Kept,
}
