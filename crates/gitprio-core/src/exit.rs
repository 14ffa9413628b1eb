//! The exit statuses every front end ends with: an API that agents, scripts and the GitHub
//! Action branch on, and the one place where typed core errors map to them.

use std::error::Error;

use serde::{Deserialize, Serialize};

use crate::git::GitError;
use crate::lease::{LeaseError, RevokeError};
use crate::source::LoadError;
use crate::workspace::WorkspaceError;

/// How a command ended: its process exit code and a stable `snake_case` name.
///
/// The CLI exits with [`ExitStatus::code`]; the MCP server names [`ExitStatus::name`] in
/// its error data; `gitprio run` ends with the status of its stop. docs/cli.md lists
/// them all, and a test holds that table to this enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExitStatus {
    /// The command did what was asked.
    Success,
    /// The command failed (for `check`: the task files have errors).
    Failure,
    /// The command line was invalid (clap's own code).
    Usage,
    /// Nothing is ready: the queue is empty, or every open task is blocked or held.
    NothingReady,
    /// A lease was lost to, or is held by, another agent.
    LeaseLost,
    /// A task's budget was exceeded.
    BudgetExceeded,
    /// The directory is not inside a git repository.
    NotARepository,
    /// The repository has no `.tasks/` directory (in the version read).
    NoQueue,
    /// `gitprio run` was stopped by Ctrl-C or SIGTERM; the tasks it held were given back.
    Interrupted,
}

impl ExitStatus {
    /// Every status, in the order of their codes.
    pub const ALL: [ExitStatus; 9] = [
        ExitStatus::Success,
        ExitStatus::Failure,
        ExitStatus::Usage,
        ExitStatus::NothingReady,
        ExitStatus::LeaseLost,
        ExitStatus::BudgetExceeded,
        ExitStatus::NotARepository,
        ExitStatus::NoQueue,
        ExitStatus::Interrupted,
    ];

    /// Returns the process exit code.
    pub const fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Usage => 2,
            ExitStatus::NothingReady => 3,
            ExitStatus::LeaseLost => 4,
            ExitStatus::BudgetExceeded => 5,
            ExitStatus::NotARepository => 6,
            ExitStatus::NoQueue => 7,
            // 128 + SIGINT, as shells report an interrupted command.
            ExitStatus::Interrupted => 130,
        }
    }

    /// Returns the stable `snake_case` name, as serialized.
    pub const fn name(self) -> &'static str {
        match self {
            ExitStatus::Success => "success",
            ExitStatus::Failure => "failure",
            ExitStatus::Usage => "usage",
            ExitStatus::NothingReady => "nothing_ready",
            ExitStatus::LeaseLost => "lease_lost",
            ExitStatus::BudgetExceeded => "budget_exceeded",
            ExitStatus::NotARepository => "not_a_repository",
            ExitStatus::NoQueue => "no_queue",
            ExitStatus::Interrupted => "interrupted",
        }
    }

    /// Returns the status whose code is `code`, if any: what a child `gitprio` ended with.
    pub fn from_code(code: i32) -> Option<ExitStatus> {
        ExitStatus::ALL
            .into_iter()
            .find(|status| i32::from(status.code()) == code)
    }

    /// Returns the status an error ends a command with: that of the first cause in its chain
    /// (outermost first) that a typed core error decides, else [`ExitStatus::Failure`].
    pub fn of_error(error: &(dyn Error + 'static)) -> ExitStatus {
        Self::decided_by(error).unwrap_or(ExitStatus::Failure)
    }

    /// Returns the status the first deciding cause of `error`'s chain gives, looking into
    /// what a [`WorkspaceError`] wraps (its transparent variants hide it from the chain).
    fn decided_by(error: &(dyn Error + 'static)) -> Option<ExitStatus> {
        WorkspaceError::first_decided(error, &Self::of_cause)
    }

    /// Returns the status one error decides by itself, if it is a core error that decides one.
    pub fn of_cause(cause: &(dyn Error + 'static)) -> Option<ExitStatus> {
        if let Some(load) = cause.downcast_ref::<LoadError>() {
            return Some(match load {
                LoadError::NoTasksDir { .. } => ExitStatus::NoQueue,
                LoadError::Git(GitError::NotARepository { .. }) => ExitStatus::NotARepository,
                _ => ExitStatus::Failure,
            });
        }
        if let Some(LeaseError::Lost { .. }) = cause.downcast_ref::<LeaseError>() {
            return Some(ExitStatus::LeaseLost);
        }
        if let Some(RevokeError::Raced { .. }) = cause.downcast_ref::<RevokeError>() {
            return Some(ExitStatus::LeaseLost);
        }
        if let Some(GitError::NotARepository { .. }) = cause.downcast_ref::<GitError>() {
            return Some(ExitStatus::NotARepository);
        }
        None
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(status: ExitStatus) -> Self {
        std::process::ExitCode::from(status.code())
    }
}

#[cfg(test)]
mod tests {
    use super::ExitStatus;

    #[test]
    fn codes_and_names_are_distinct_and_round_trip() {
        let codes: std::collections::BTreeSet<u8> =
            ExitStatus::ALL.iter().map(|status| status.code()).collect();
        let names: std::collections::BTreeSet<&str> =
            ExitStatus::ALL.iter().map(|status| status.name()).collect();
        assert_eq!(codes.len(), ExitStatus::ALL.len());
        assert_eq!(names.len(), ExitStatus::ALL.len());
        for status in ExitStatus::ALL {
            assert_eq!(
                ExitStatus::from_code(i32::from(status.code())),
                Some(status)
            );
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.name())
            );
        }
        assert_eq!(ExitStatus::from_code(9), None);
    }

    /// Returns the `(code, name)` rows of the first markdown table under `heading` in `text`.
    fn table_rows(text: &str, heading: &str) -> Vec<(u8, String)> {
        let start = text
            .find(heading)
            .unwrap_or_else(|| panic!("no `{heading}`"));
        text[start..]
            .lines()
            .skip_while(|line| !line.starts_with('|'))
            .take_while(|line| line.starts_with('|'))
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let code = cells.get(1)?.parse().ok()?;
                Some((code, cells.get(2)?.trim_matches('`').to_owned()))
            })
            .collect()
    }

    #[test]
    fn the_exit_code_tables_of_the_docs_list_every_status() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap();
        let expected: Vec<(u8, String)> = ExitStatus::ALL
            .iter()
            .map(|status| (status.code(), status.name().to_owned()))
            .collect();
        assert_eq!(
            table_rows(&read("docs/cli.md"), "## Exit codes"),
            expected,
            "docs/cli.md's exit code table and `ExitStatus` differ"
        );
        let readme_codes: Vec<u8> = table_rows(&read("README.md"), "## Exit codes")
            .into_iter()
            .map(|(code, _)| code)
            .collect();
        let codes: Vec<u8> = ExitStatus::ALL.iter().map(|status| status.code()).collect();
        assert_eq!(
            readme_codes, codes,
            "README.md's exit code table and `ExitStatus` differ"
        );
    }

    #[test]
    fn typed_errors_decide_the_status_through_the_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot renew")]
        struct Outer(#[source] crate::lease::LeaseError);
        let lost = crate::lease::LeaseError::Lost {
            id: crate::TaskId::new("a").unwrap(),
            detail: "another agent".to_owned(),
        };
        assert_eq!(ExitStatus::of_error(&Outer(lost)), ExitStatus::LeaseLost);
        let wrapped = crate::workspace::WorkspaceError::Load(crate::source::LoadError::Git(
            crate::git::GitError::NotARepository {
                path: std::path::PathBuf::from("/tmp"),
            },
        ));
        assert_eq!(ExitStatus::of_error(&wrapped), ExitStatus::NotARepository);
        let plain = std::io::Error::other("disk full");
        assert_eq!(ExitStatus::of_error(&plain), ExitStatus::Failure);
    }
}
