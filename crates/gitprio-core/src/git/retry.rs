//! Retrying `git` commands that talk to a remote when the connection, not the remote's
//! answer, failed: a reset, a refusal, a daemon full of connections.

use std::hash::{BuildHasher as _, Hasher as _};
use std::process::Output;
use std::time::Duration;

use super::{GitError, Repository};

/// How many times a command that reaches a remote runs before its connection error stands.
pub const CONNECTION_TRIES: u32 = 6;

/// The wait before the second try; each further wait doubles it (100, 200, ... 1,600 ms
/// before the sixth), each scaled by a random factor in [0.5, 1.5) so that agents whose
/// connections the same full daemon dropped do not all come back at the same moment.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Returns whether `stderr` of a failed git command says the connection to the remote
/// failed (and another try may get through), as opposed to an answer from the remote
/// (a rejection, a missing repository, an authentication failure).
pub fn is_connection_error(stderr: &str) -> bool {
    let stderr = stderr.to_ascii_lowercase();
    // A `git://` connection closed before the server said a word; the same line follows
    // the remote's answer when there was one, which then names the problem.
    let unanswered = stderr.contains("could not read from remote repository")
        && ![
            "does not appear to be a git repository",
            "remote error",
            "permission denied",
            "access denied",
            "host key verification failed",
        ]
        .iter()
        .any(|answer| stderr.contains(answer));
    unanswered
        || [
            "connection reset",
            "connection refused",
            "connection timed out",
            "connection closed",
            "remote end hung up unexpectedly",
            "early eof",
            "broken pipe",
            "unable to connect",
            "failed to connect",
            "couldn't connect",
            "could not connect",
            "empty reply from server",
            "recv failure",
            "send failure",
            "the requested url returned error: 502",
            "the requested url returned error: 503",
            "the requested url returned error: 504",
            "protocol error: bad line length",
            super::STALLED,
        ]
        .iter()
        .any(|sign| stderr.contains(sign))
}

/// Returns how long to wait before try number `next_try` (2 for the first retry), jittered.
pub fn backoff(next_try: u32) -> Duration {
    let base = FIRST_BACKOFF * 2u32.saturating_pow(next_try.saturating_sub(2)).min(64);
    let mut hasher = std::hash::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u32(next_try);
    let per_mille = 500 + hasher.finish() % 1000;
    base * u32::try_from(per_mille).unwrap_or(1000) / 1000
}

impl Repository {
    /// Runs `git` like [`Repository::git_bounded`], again (up to [`CONNECTION_TRIES`] runs, with
    /// jittered exponential backoff) while it fails with a connection error; a stall
    /// gets fewer runs ([`super::runs_allowed`]).
    ///
    /// Only for commands that change nothing on the remote, or whose retry cannot do a
    /// change twice: a fetch, an `ls-remote`.
    pub fn git_remote(&self, args: &[&str]) -> Result<Output, GitError> {
        retry_connection(|| self.git_bounded(args))
    }
}

/// Runs `run`, a git command that talks to a remote, again (up to [`CONNECTION_TRIES`]
/// runs, with jittered exponential backoff) while it fails with a connection error; a
/// stall gets fewer runs ([`super::runs_allowed`]). For the front ends' own such commands
/// ([`Repository::run_bounded`]), under the same rule as [`Repository::git_remote`].
pub fn retry_connection(
    mut run: impl FnMut() -> Result<Output, GitError>,
) -> Result<Output, GitError> {
    let mut tries = 1;
    loop {
        let output = run()?;
        if output.status.success()
            || tries >= super::runs_allowed(&output.stderr)
            || !is_connection_error(&String::from_utf8_lossy(&output.stderr))
        {
            return Ok(output);
        }
        tries += 1;
        std::thread::sleep(backoff(tries));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_connections_are_connection_errors_and_answers_are_not() {
        for stderr in [
            "fatal: read error: Connection reset by peer",
            "fatal: unable to connect to 127.0.0.1:\n127.0.0.1[0: 127.0.0.1]: errno=Connection refused",
            "fatal: the remote end hung up unexpectedly",
            "error: RPC failed; curl 56 Recv failure: Connection reset by peer",
            "fatal: unable to access 'http://x/': The requested URL returned error: 503",
            "fatal: Could not read from remote repository.\n\nPlease make sure you have the correct access rights",
            "\nfatal: no progress from the remote for 1m (`remote_timeout` in .tasks/config.yaml); gitprio stopped `git fetch`",
        ] {
            assert!(is_connection_error(stderr), "{stderr}");
        }
        for stderr in [
            "fatal: '/gone.git' does not appear to be a git repository",
            "fatal: remote error: access denied or repository not exported: /x.git",
            "fatal: unable to access 'http://x/': The requested URL returned error: 403",
            "fatal: couldn't find remote ref refs/heads/main",
            "fatal: '/gone.git' does not appear to be a git repository\nfatal: Could not read from remote repository.",
            "git@host: Permission denied (publickey).\nfatal: Could not read from remote repository.",
        ] {
            assert!(!is_connection_error(stderr), "{stderr}");
        }
    }

    #[test]
    fn backoff_doubles_within_its_jitter() {
        for next_try in 2..=CONNECTION_TRIES {
            let base = FIRST_BACKOFF * 2u32.pow(next_try - 2);
            let wait = backoff(next_try);
            assert!(
                wait >= base / 2 && wait < base * 3 / 2,
                "{next_try}: {wait:?}"
            );
        }
    }
}
