//! Exit codes: an API that agents, scripts and the GitHub Action branch on.

/// The command did what was asked.
pub const SUCCESS: u8 = 0;
/// The command failed (for `check`: the task files have errors).
pub const FAILURE: u8 = 1;
/// The command line was invalid (clap's own code).
#[cfg_attr(
    not(test),
    expect(dead_code, reason = "documented here; clap returns it itself")
)]
pub const USAGE: u8 = 2;
/// Nothing is ready: the queue is empty, or every open task is blocked or held.
pub const NOTHING_READY: u8 = 3;
/// A lease was lost to, or is held by, another agent.
pub const LEASE_LOST: u8 = 4;
/// A task's budget was exceeded.
pub const BUDGET_EXCEEDED: u8 = 5;
/// The directory is not inside a git repository.
pub const NOT_A_REPOSITORY: u8 = 6;
/// The repository has no `.tasks/` directory (in the version read).
pub const NO_QUEUE: u8 = 7;
/// `gitprio run` was stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report an
/// interrupted command); the tasks it held were given back.
pub const INTERRUPTED: u8 = 130;

#[cfg(test)]
mod tests {
    #[test]
    fn codes_are_distinct() {
        let codes = [
            super::SUCCESS,
            super::FAILURE,
            super::USAGE,
            super::NOTHING_READY,
            super::LEASE_LOST,
            super::BUDGET_EXCEEDED,
            super::NOT_A_REPOSITORY,
            super::NO_QUEUE,
            super::INTERRUPTED,
        ];
        let unique: std::collections::BTreeSet<u8> = codes.into_iter().collect();
        assert_eq!(unique.len(), codes.len());
    }
}
