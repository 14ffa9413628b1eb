//! The lease and usage operations of a run, each a subprocess of this same binary.
//!
//! Running `gitprio claim`, `heartbeat`, `usage record`, `done` and `release` as
//! processes keeps every operation exactly what an agent would run by hand (same
//! fencing, same crash safety, same ledger), and isolates them from the run's threads.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use gitprio_core::reply::lease::{
    ClaimReply, DoneFailedReply, DoneUnplannedReply, NothingReadyReply, ReleaseReply, ShownState,
    StatusReply,
};
use gitprio_core::source::Origin;
use gitprio_core::usage::RunMeta;
use gitprio_core::{Task, TaskId};
use jiff::Timestamp;

use crate::exit_code::{self, ExitStatus};
use crate::settings::BRANCH_VARIABLE;

/// Says when an operation under way is to be stopped (the run was interrupted twice).
pub type Stop<'a> = &'a (dyn Fn() -> bool + Sync);

/// How often an operation that may be stopped is looked at.
const LOOK: Duration = Duration::from_millis(100);

/// Runs gitprio operations for the agents of one run.
#[derive(Clone, Debug)]
pub struct Operations {
    /// This binary.
    pub exe: PathBuf,
    /// The directory the run started in: claims and renewals run there.
    pub directory: PathBuf,
    pub local: bool,
    pub ttl: Option<String>,
    /// The queue's branch as the run resolved it, passed on as `GITPRIO_BRANCH`: `done` runs
    /// in a task's worktree, on `gitprio/<id>`, where it could not tell it.
    pub branch: Option<String>,
}

/// Which tasks a run claims.
#[derive(Debug, Default)]
pub struct Filters {
    pub task_type: Option<String>,
    pub feature: Option<String>,
    pub avoid_overlap: bool,
}

/// What a claim came to.
#[derive(Debug)]
pub enum Claim {
    Claimed(Box<Claimed>),
    /// `claim` exited 3: its reason code (`empty`, `all_held`, `overlap`, ...) and message.
    NothingReady {
        reason: String,
        message: String,
    },
}

/// A task this run holds the lease on.
#[derive(Debug)]
pub struct Claimed {
    pub task: Task,
    pub generation: u64,
    pub attempt: u32,
    /// Failed attempts before this one.
    pub failures: u32,
    /// The previous attempt's error, for the runaway guard and the prompt.
    pub last_error: Option<String>,
    pub acquired_at: Timestamp,
    /// The queue commit the task was claimed from: the task's worktree starts there.
    pub commit: String,
    /// The context bundle as markdown, when the claim hands it over.
    pub context: Option<String>,
}

impl Claimed {
    /// The run id the usage ledger files this attempt under.
    pub fn run_id(&self) -> String {
        RunMeta::run_id(self.generation, self.acquired_at)
    }
}

/// What a heartbeat came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Beat {
    Renewed,
    /// Exit 4: another agent holds the task now, or it was revoked; what `heartbeat` said.
    Lost(String),
    /// Exit 5: the usage ledger says the task's budget is spent.
    OverBudget,
    /// Any other failure (the remote is down...): the lease may still be renewed later.
    Failed(String),
}

/// What `gitprio done` came to.
#[derive(Debug)]
pub enum Done {
    /// Submitted; with the warnings `done` printed (a run outcome the ledger did not take).
    Submitted(Vec<String>),
    /// An acceptance command failed (the reason, with its output's tail), or the task must
    /// be planned first and has no plan.
    Refused(String),
    /// Exit 4: the lease moved on; what `done` said.
    Lost(String),
}

/// A finished gitprio subprocess.
struct Output {
    code: ExitStatus,
    /// The signal that killed it, when it did not exit by itself.
    signal: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Output {
    fn error(&self) -> String {
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|line| !line.starts_with("info: "))
            .collect();
        let text = lines.join("\n");
        let text = text.trim();
        let text = text.strip_prefix("error: ").unwrap_or(text);
        if text.is_empty() {
            match self.signal {
                Some(signal) => format!("killed by signal {signal}"),
                None => format!("exit {}", self.code.code()),
            }
        } else {
            text.to_owned()
        }
    }
}

impl Operations {
    fn output(
        &self,
        directory: &Path,
        agent: &str,
        arguments: &[&str],
        stdin: Option<&str>,
    ) -> anyhow::Result<Output> {
        self.output_to(directory, agent, arguments, stdin, None, None)
    }

    /// Runs `gitprio <arguments>`, its stdout written into `stdout` when given (read back
    /// from its start), else read through a pipe. Once `stop` says so, its process group
    /// (it and what it started: `done`'s acceptance commands) gets SIGTERM.
    fn output_to(
        &self,
        directory: &Path,
        agent: &str,
        arguments: &[&str],
        stdin: Option<&str>,
        stdout: Option<&File>,
        stop: Option<Stop<'_>>,
    ) -> anyhow::Result<Output> {
        let mut command = Command::new(&self.exe);
        command
            // Its usage lines name `gitprio`, not the `/proc/self/exe` it may be run as.
            .arg0("gitprio")
            .current_dir(directory)
            .env("GITPRIO_AGENT", agent)
            .args(arguments)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(match stdout {
                Some(file) => Stdio::from(file.try_clone()?),
                None => Stdio::piped(),
            })
            .stderr(Stdio::piped())
            // A Ctrl-C at the terminal must not cut an operation short: the run decides.
            .process_group(0);
        if let Some(branch) = &self.branch {
            command.env(BRANCH_VARIABLE, branch);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot run `gitprio {}`", arguments.join(" ")))?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes())?;
        }
        let group = child.id();
        let output = match stop {
            Some(stop) => stopping(group, stop, || child.wait_with_output())?,
            None => child.wait_with_output()?,
        };
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        if let Some(mut file) = stdout {
            file.seek(SeekFrom::Start(0))?;
            file.read_to_string(&mut text)?;
        }
        let code = output
            .status
            .code()
            .and_then(ExitStatus::from_code)
            .unwrap_or(exit_code::FAILURE);
        Ok(Output {
            code,
            signal: output.status.signal(),
            stdout: text,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    fn with_store<'a>(&self, mut arguments: Vec<&'a str>) -> Vec<&'a str> {
        if self.local {
            arguments.push("--local");
        }
        arguments
    }

    /// Claims the best ready task for `agent`, passing over those in `skip`; the claim's
    /// reply is written into `reply` (a claim lock: it outlives a run killed meanwhile).
    pub fn claim(
        &self,
        agent: &str,
        filters: &Filters,
        skip: &BTreeSet<TaskId>,
        reply: &File,
    ) -> anyhow::Result<Claim> {
        let mut arguments = vec!["claim", "--json", "--agent", agent];
        for id in skip {
            arguments.extend(["--skip", id.as_str()]);
        }
        if let Some(ttl) = &self.ttl {
            arguments.extend(["--ttl", ttl]);
        }
        if let Some(kind) = &filters.task_type {
            arguments.extend(["--type", kind]);
        }
        if let Some(feature) = &filters.feature {
            arguments.extend(["--feature", feature]);
        }
        if filters.avoid_overlap {
            arguments.push("--avoid-overlap");
        }
        let arguments = self.with_store(arguments);
        let output = self.output_to(&self.directory, agent, &arguments, None, Some(reply), None)?;
        if output.code != exit_code::SUCCESS && output.code != exit_code::NOTHING_READY {
            bail!("`gitprio claim` failed: {}", output.error());
        }
        let printed = || format!("`gitprio claim --json` printed no reply: {}", output.stdout);
        if output.code == exit_code::NOTHING_READY {
            let reply: NothingReadyReply =
                serde_json::from_str(&output.stdout).with_context(printed)?;
            return Ok(Claim::NothingReady {
                reason: reply.reason,
                message: reply.message,
            });
        }
        let reply: ClaimReply = serde_json::from_str(&output.stdout).with_context(printed)?;
        // Warnings about the queue (a skipped task file, a stale lease) reach the user.
        eprint!("{}", output.stderr);
        let Origin::Commit { commit, .. } = reply.source else {
            bail!("the claim names no queue commit to start the work from");
        };
        Ok(Claim::Claimed(Box::new(Claimed {
            generation: reply.lease.generation,
            attempt: reply.lease.attempt,
            failures: reply.lease.failures,
            last_error: reply.lease.last_error,
            acquired_at: reply.lease.acquired_at,
            commit,
            context: reply.context.map(|context| context.markdown),
            task: reply.task,
        })))
    }

    /// Renders the context bundle of `id` at `commit` as markdown.
    pub fn context(&self, agent: &str, id: &str, commit: &str) -> anyhow::Result<String> {
        let output = self.output(
            &self.directory,
            agent,
            &["context", id, "--rev", commit],
            None,
        )?;
        if output.code != exit_code::SUCCESS {
            bail!("`gitprio context {id}` failed: {}", output.error());
        }
        Ok(output.stdout)
    }

    /// Renews the lease on `id`, reporting the attempt's spend so far (`tokens`, and the
    /// estimated dollars when known) for `gitprio top` to show; stopped once `stop` says so
    /// (a renewal cut short is one that did not happen, or did: see docs/leases.md, "Crashes").
    pub fn heartbeat(
        &self,
        agent: &str,
        id: &str,
        progress: (u64, Option<f64>),
        stop: Stop<'_>,
    ) -> anyhow::Result<Beat> {
        let (tokens, usd) = progress;
        let tokens_text = tokens.to_string();
        let usd_text = usd.map(|usd| format!("{usd:.6}"));
        let mut arguments = vec!["heartbeat", id];
        if let Some(ttl) = &self.ttl {
            arguments.extend(["--ttl", ttl]);
        }
        if tokens > 0 {
            arguments.extend(["--tokens", &tokens_text]);
            if let Some(usd) = &usd_text {
                arguments.extend(["--cost-usd", usd]);
            }
        }
        let arguments = self.with_store(arguments);
        let output = self.output_to(&self.directory, agent, &arguments, None, None, Some(stop))?;
        Ok(match output.code {
            exit_code::SUCCESS => Beat::Renewed,
            exit_code::LEASE_LOST => Beat::Lost(output.error()),
            exit_code::BUDGET_EXCEEDED => Beat::OverBudget,
            _ => Beat::Failed(output.error()),
        })
    }

    /// Records usage lines (`gitprio usage record --stdin` format) on the run of `id`.
    pub fn record_usage(&self, agent: &str, id: &str, lines: &str) -> anyhow::Result<()> {
        let arguments = self.with_store(vec!["usage", "record", id, "--stdin"]);
        let output = self.output(&self.directory, agent, &arguments, Some(lines))?;
        // Exit 5 only says the records put the run over its budget: they are recorded.
        if output.code != exit_code::SUCCESS && output.code != exit_code::BUDGET_EXCEEDED {
            bail!("`gitprio usage record` failed: {}", output.error());
        }
        Ok(())
    }

    /// Lists the leases, as `gitprio status --json` does.
    pub fn status(&self, agent: &str) -> anyhow::Result<StatusReply> {
        let arguments = self.with_store(vec!["status", "--json"]);
        let output = self.output(&self.directory, agent, &arguments, None)?;
        if output.code != exit_code::SUCCESS {
            bail!("`gitprio status` failed: {}", output.error());
        }
        serde_json::from_str(&output.stdout).with_context(|| {
            format!(
                "`gitprio status --json` printed no reply: {}",
                output.stdout
            )
        })
    }

    /// Runs `gitprio done` in the task's worktree: acceptance, submission, `status: done`.
    pub fn done(
        &self,
        agent: &str,
        worktree: &Path,
        id: &str,
        summary: Option<&str>,
    ) -> anyhow::Result<Done> {
        self.done_until(agent, worktree, id, summary, &|| false)?
            .context("`gitprio done` was stopped")
    }

    /// Runs `gitprio done` as [`Operations::done`] does; once `stop` says so, it and its
    /// acceptance commands get SIGTERM, and it is not run again unless it submitted: then
    /// `None`, nothing was submitted.
    pub fn done_until(
        &self,
        agent: &str,
        worktree: &Path,
        id: &str,
        summary: Option<&str>,
        stop: Stop<'_>,
    ) -> anyhow::Result<Option<Done>> {
        let mut arguments = vec!["done", id, "--json"];
        if summary.is_some() {
            arguments.extend(["--summary", "-"]);
        }
        let arguments = self.with_store(arguments);
        let mut output = self.output_to(worktree, agent, &arguments, summary, None, Some(stop))?;
        if output.signal.is_some() {
            if stop() && !self.submitted(agent, id) {
                // Stopped on purpose before it submitted: run again, it would start the
                // acceptance commands over.
                return Ok(None);
            }
            // Killed, it may have landed the submission and not edited the task file: run
            // again, `done` finishes its own submission (or makes it, if it never landed).
            output = self.output_to(worktree, agent, &arguments, summary, None, Some(stop))?;
            if output.signal.is_some() && stop() && !self.submitted(agent, id) {
                return Ok(None);
            }
        }
        // What `done` says of the task itself (acceptance not run again on the same tree).
        let about = format!("info: {id}: ");
        for line in output
            .stderr
            .lines()
            .filter(|line| line.starts_with(&about))
        {
            eprintln!("{line}");
        }
        match output.code {
            exit_code::SUCCESS => Ok(Some(Done::Submitted(
                output
                    .stderr
                    .lines()
                    .filter_map(|line| line.strip_prefix("warning: "))
                    .map(str::to_owned)
                    .collect(),
            ))),
            exit_code::LEASE_LOST => Ok(Some(Done::Lost(output.error()))),
            _ => {
                if let Ok(unplanned) = serde_json::from_str::<DoneUnplannedReply>(&output.stdout) {
                    return Ok(Some(Done::Refused(format!(
                        "{id} must be planned first, and the agent wrote no `## Plan` section in {}",
                        unplanned.path
                    ))));
                }
                let failed = serde_json::from_str::<DoneFailedReply>(&output.stdout)
                    .ok()
                    .and_then(|reply| reply.acceptance.into_iter().find(|check| !check.passed));
                match failed {
                    Some(check) => Ok(Some(Done::Refused(format!(
                        "acceptance command `{}` failed ({}): {}",
                        check.command, check.status, check.tail
                    )))),
                    None => bail!("`gitprio done {id}` failed: {}", output.error()),
                }
            }
        }
    }

    /// Whether the lease on `id` is submitted by `agent`: a `done` killed after its
    /// submission landed, which a `done` again only finishes.
    fn submitted(&self, agent: &str, id: &str) -> bool {
        self.status(agent).is_ok_and(|status| {
            status.leases.iter().any(|entry| {
                entry.task.as_str() == id
                    && entry.lease.state == ShownState::Submitted
                    && entry.lease.holder.agent == agent
            })
        })
    }

    /// Gives `id` back; returns whether it is parked now.
    pub fn release(
        &self,
        agent: &str,
        id: &str,
        reason: &str,
        failed: bool,
        park: bool,
    ) -> anyhow::Result<bool> {
        let mut arguments = vec!["release", id, "--json", "--reason", reason];
        if failed {
            arguments.push("--failed");
        }
        if park {
            arguments.push("--park");
        }
        let output = self.output(&self.directory, agent, &self.with_store(arguments), None)?;
        if output.code != exit_code::SUCCESS {
            bail!("`gitprio release {id}` failed: {}", output.error());
        }
        let reply: ReleaseReply = serde_json::from_str(&output.stdout).with_context(|| {
            format!(
                "`gitprio release --json` printed no reply: {}",
                output.stdout
            )
        })?;
        Ok(reply.parked)
    }
}

/// Runs `wait`, the wait for the process group `group`, while a watcher sends that group
/// SIGTERM once `stop` says so.
fn stopping<T>(group: u32, stop: Stop<'_>, wait: impl FnOnce() -> T) -> T {
    let over = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !over.load(Ordering::SeqCst) {
                if stop() {
                    // Not reaped before `wait` returns, its leader keeps the group's id.
                    super::agent::signal_group(group, "TERM");
                    return;
                }
                std::thread::sleep(LOOK);
            }
        });
        let result = wait();
        over.store(true, Ordering::SeqCst);
        result
    })
}
