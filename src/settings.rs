//! Resolving arguments and the environment into one validated [`Settings`] value.

use std::io::IsTerminal;
use std::path::PathBuf;

use gitprio_core::workspace::Invocation;
use jiff::Timestamp;

use crate::cli::GlobalArgs;

/// Everything a command needs to know about how it was invoked; read once, before any work.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The directory to run in (`-C`), else the current directory.
    pub directory: PathBuf,
    /// Whether stderr may use color: a terminal, and `NO_COLOR` unset.
    pub color: bool,
    /// Whether to emit GitHub Actions workflow commands (`GITHUB_ACTIONS=true`).
    pub github_actions: bool,
    /// The current time: `GITPRIO_NOW` (RFC 3339) when set, for tests and replays.
    pub now: Timestamp,
    /// This agent's name: `GITPRIO_AGENT`, else `user@host:<worktree>` (see [`default_agent`]).
    pub agent: String,
    pub host: String,
    /// The agent runner's session id, from `GITPRIO_SESSION`.
    pub session: Option<String>,
    /// Crash injection for tests (`GITPRIO_FAILPOINT=claim:after-cas`): abort at that point.
    pub failpoint: Option<String>,
    /// The queue's branch, over the config's `branch:`: [`BRANCH_VARIABLE`].
    pub branch: Option<String>,
}

/// The variable naming the queue's branch, over the config's `branch:`: `gitprio run` sets it
/// for the gitprio commands it runs in a task's worktree, which is on `gitprio/<id>`.
pub const BRANCH_VARIABLE: &str = "GITPRIO_BRANCH";

impl Settings {
    /// Resolves the global arguments and the environment.
    pub fn resolve(global: &GlobalArgs) -> anyhow::Result<Settings> {
        let current = std::env::current_dir()?;
        let directory = match &global.directory {
            Some(directory) => current.join(directory),
            None => current,
        };
        if !directory.is_dir() {
            anyhow::bail!(
                "cannot change to {}: no such directory",
                directory.display()
            );
        }
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
        let now = match std::env::var("GITPRIO_NOW") {
            Ok(text) => text.parse::<Timestamp>().map_err(|error| {
                anyhow::anyhow!("GITPRIO_NOW={text:?} is not an RFC 3339 time: {error}")
            })?,
            // Whole seconds: lease records and messages stay readable.
            Err(_) => Timestamp::from_second(Timestamp::now().as_second())?,
        };
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "localhost".to_owned());
        let user = std::env::var("USER").unwrap_or_else(|_| "agent".to_owned());
        let agent = non_empty_var("GITPRIO_AGENT")
            .unwrap_or_else(|| default_agent(&user, &host, &directory));
        Ok(Settings {
            now,
            agent,
            host,
            session: non_empty_var("GITPRIO_SESSION"),
            failpoint: non_empty_var("GITPRIO_FAILPOINT"),
            branch: non_empty_var(BRANCH_VARIABLE),
            directory,
            color: !no_color && std::io::stderr().is_terminal(),
            github_actions: std::env::var("GITHUB_ACTIONS").is_ok_and(|value| value == "true"),
        })
    }

    /// Returns these settings with the agent named `agent` (`--agent`), when given.
    pub fn with_agent(&self, agent: Option<&str>) -> Settings {
        let mut settings = self.clone();
        if let Some(agent) = agent {
            agent.clone_into(&mut settings.agent);
        }
        settings
    }

    /// Returns who runs a use case, and when, for the core.
    pub fn invocation(&self) -> Invocation {
        Invocation {
            now: self.now,
            agent: self.agent.clone(),
            host: self.host.clone(),
            pid: std::process::id(),
            session: self.session.clone(),
            failpoint: self.failpoint.clone(),
            branch: self.branch.clone(),
        }
    }
}

/// The agent name of whoever runs gitprio in `directory` without naming itself:
/// `user@host:<worktree folder>-<hash of its path>`.
///
/// One name per worktree, not per process: a lone agent's commands, each its own
/// process, are one agent to the spread of claims (which counts the agents seen lately)
/// and to its own leases, and a claim run again after a crash finds what its first run
/// landed. Worktrees differ by name, so two agents side by side never share one.
fn default_agent(user: &str, host: &str, directory: &std::path::Path) -> String {
    let worktree = directory
        .ancestors()
        .find(|path| path.join(".git").exists())
        .unwrap_or(directory);
    let name = worktree
        .file_name()
        .map_or_else(|| "root".into(), |name| name.to_string_lossy());
    // FNV-1a: stable across processes and builds, unlike the standard hasher.
    let hash = worktree
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    format!("{user}@{host}:{name}-{:06x}", hash & 0xff_ffff)
}

fn non_empty_var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}
