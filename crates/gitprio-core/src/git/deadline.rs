//! The stall deadline of `git` commands that talk to a remote: one that makes no progress
//! for the remote timeout is killed, and its failure reads as a dropped connection.
//!
//! Progress is anything git writes (its stdout, its stderr) or a growing pack it receives
//! (`objects/pack/tmp_pack_*`, written as the bytes arrive), so a big fetch that keeps
//! moving is never cut short, while a remote that accepts the connection and never answers
//! costs one timeout per try instead of forever.

use std::io::Read as _;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{GitError, Repository};

/// How long a remote git command may make no progress before it is killed, unless the
/// config's `remote_timeout` says otherwise.
pub const DEFAULT_REMOTE_TIMEOUT: Duration = Duration::from_secs(60);

/// What the stderr of a command killed for making no progress says, after whatever git
/// wrote; [`super::is_connection_error`] reads it as a dropped connection.
pub const STALLED: &str = "no progress from the remote";

/// How many runs a command that stalled gets, against [`super::CONNECTION_TRIES`] for a
/// reset: each stalled run already waited a whole timeout, and a push retried after one
/// asks the remote (itself up to this many runs) whether it landed, so six would make
/// a hung remote cost a claim dozens of timeouts.
const STALLED_TRIES: u32 = 2;

/// Returns how many runs in all a command that failed with `stderr` gets: fewer for a
/// stall than for another connection error.
pub fn runs_allowed(stderr: &[u8]) -> u32 {
    if String::from_utf8_lossy(stderr).contains(STALLED) {
        STALLED_TRIES
    } else {
        super::CONNECTION_TRIES
    }
}

/// How often a running command is checked for progress.
const POLL: Duration = Duration::from_millis(50);

/// How long the output of a killed command is waited for: a helper git started (ssh,
/// `git-remote-http`) may outlive it and hold its pipes open.
const DRAIN: Duration = Duration::from_secs(1);

impl Repository {
    /// Sets how long a command that talks to a remote may make no progress (the config's
    /// `remote_timeout`; the front end reads the config, the core no environment).
    pub fn set_remote_timeout(&self, limit: Duration) {
        let millis = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX).max(1);
        self.remote_timeout_millis.store(millis, Ordering::Relaxed);
    }

    /// Returns how long a command that talks to a remote may make no progress.
    pub fn remote_timeout(&self) -> Duration {
        Duration::from_millis(self.remote_timeout_millis.load(Ordering::Relaxed))
    }

    /// Runs `git` like [`Repository::git`], for a command that talks to a remote: killed
    /// once it made no progress for [`Repository::remote_timeout`], its output then ends
    /// with a line saying so ([`STALLED`]) and its status is a failure.
    pub fn git_bounded(&self, args: &[&str]) -> Result<Output, GitError> {
        let pack_directory = self.common_dir().join("objects").join("pack");
        Self::run_bounded(
            self.git_command(args),
            args,
            &pack_directory,
            self.remote_timeout(),
        )
    }

    /// Runs `command`, git with `args`, that talks to a remote, as [`Repository::git_bounded`]
    /// does: for the front ends' own git commands (the push of a task's branch, the demo's
    /// pushes), so that every command that talks to a remote has the same stall deadline,
    /// `limit`. `pack_directory` is where the repository receives packs (`objects/pack`).
    pub fn run_bounded(
        mut command: Command,
        args: &[&str],
        pack_directory: &Path,
        limit: Duration,
    ) -> Result<Output, GitError> {
        let spawn_error = |source| GitError::Spawn {
            args: args.join(" "),
            source,
        };
        // Over HTTP curl gives up by itself too, so a `git-remote-http` that outlives a
        // killed git does not wait on the remote forever.
        command
            .env("GIT_HTTP_LOW_SPEED_LIMIT", "1")
            .env(
                "GIT_HTTP_LOW_SPEED_TIME",
                limit.as_secs().max(1).to_string(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(spawn_error)?;
        let received = Arc::new(AtomicU64::new(0));
        let outputs = read_pipes(&mut child, &received);
        let mut seen = (0, incoming_pack_bytes(pack_directory));
        let mut last_progress = Instant::now();
        let mut stalled = false;
        let mut streams = [Vec::new(), Vec::new()];
        let mut closed = 0;
        let status = loop {
            if let Some(status) = child.try_wait().map_err(spawn_error)? {
                break status;
            }
            let now = (
                received.load(Ordering::Relaxed),
                incoming_pack_bytes(pack_directory),
            );
            if now != seen {
                seen = now;
                last_progress = Instant::now();
            } else if last_progress.elapsed() >= limit {
                let _ = child.kill();
                stalled = true;
                break child.wait().map_err(spawn_error)?;
            }
            // Git closes its pipes as it exits: waiting on them, not sleeping a whole
            // poll, returns a command of a few milliseconds in a few milliseconds.
            if closed < 2 {
                if let Ok((index, bytes)) = outputs.recv_timeout(POLL) {
                    streams[index] = bytes;
                    closed += 1;
                }
            } else {
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        let drain_until = Instant::now() + DRAIN;
        while closed < 2 {
            let wait = if stalled {
                drain_until.saturating_duration_since(Instant::now())
            } else {
                Duration::MAX
            };
            match outputs.recv_timeout(wait) {
                Ok((index, bytes)) => {
                    streams[index] = bytes;
                    closed += 1;
                }
                Err(_) => break,
            }
        }
        let [stdout, mut stderr] = streams;
        if stalled {
            stderr.extend_from_slice(stalled_note(limit, args).as_bytes());
        }
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }
}

/// Reads the child's stdout (0) and stderr (1) on threads of their own, counting the
/// bytes in `received` as they come; each sends its whole stream once the pipe closes.
fn read_pipes(child: &mut Child, received: &Arc<AtomicU64>) -> mpsc::Receiver<(usize, Vec<u8>)> {
    let (sender, outputs) = mpsc::channel();
    let pipes: [Option<Box<dyn std::io::Read + Send>>; 2] = [
        child
            .stdout
            .take()
            .map(|pipe| Box::new(pipe) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|pipe| Box::new(pipe) as Box<dyn std::io::Read + Send>),
    ];
    for (index, pipe) in pipes.into_iter().enumerate() {
        let Some(mut pipe) = pipe else { continue };
        let received = Arc::clone(received);
        let sender = sender.clone();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let mut buffer = [0; 8192];
            while let Ok(read @ 1..) = pipe.read(&mut buffer) {
                bytes.extend_from_slice(&buffer[..read]);
                received.fetch_add(read as u64, Ordering::Relaxed);
            }
            let _ = sender.send((index, bytes));
        });
    }
    outputs
}

/// The line added to the stderr of a command killed after `limit` without progress.
fn stalled_note(limit: Duration, args: &[&str]) -> String {
    let command = args
        .iter()
        .find(|arg| !arg.starts_with('-') && !arg.contains('='))
        .unwrap_or(&"");
    let limit = jiff::SignedDuration::try_from(limit).unwrap_or(jiff::SignedDuration::MAX);
    format!(
        "\nfatal: {STALLED} for {} (`remote_timeout` in .tasks/config.yaml); gitprio stopped `git {command}`\n",
        crate::config::format_duration(limit)
    )
}

/// The bytes of the packs being received into `directory` so far.
fn incoming_pack_bytes(directory: &std::path::Path) -> u64 {
    std::fs::read_dir(directory).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_string_lossy().starts_with("tmp_pack_"))
            .filter_map(|entry| entry.metadata().ok())
            .map(|metadata| metadata.len())
            .sum()
    })
}
