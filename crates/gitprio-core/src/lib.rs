//! The gitprio library core: task model, ranking, leases, context, usage and reports.
//!
//! This crate holds no I/O policy of its own: no argument parsing, no printing,
//! no process exits and no environment reads. Front ends (the `gitprio` binary,
//! the GitHub Action, the MCP server) decide those and call in here.

pub mod check;
pub mod config;
pub mod context;
pub mod diagnostic;
pub mod exit;
pub mod file;
pub mod git;
pub mod hint;
pub mod lease;
pub mod queue;
pub mod reply;
pub mod source;
pub mod task;
pub mod usage;
pub mod workspace;

pub use config::Config;
pub use diagnostic::{Diagnostic, DiagnosticKind, Severity};
pub use exit::ExitStatus;
pub use queue::{Blocker, Queue, QueueEntry, Readiness};
pub use task::{Budget, Planning, Priority, Status, Task, TaskId};

/// The directory, relative to the repository root, that holds the task files.
pub const TASKS_DIR: &str = ".tasks";

/// The repository-level configuration file, relative to the repository root.
pub const CONFIG_PATH: &str = ".tasks/config.yaml";
