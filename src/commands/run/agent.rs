//! The agent process: its command line, its own process group, and stopping it.
//!
//! Each agent runs in a process group of its own, so a Ctrl-C at the terminal reaches
//! `gitprio run` alone (which then decides what the agents get), and stopping an agent
//! stops every process it started. Signals go through the `kill` command: gitprio
//! forbids `unsafe`, and `kill -TERM -- -<group>` is the portable way to signal a group.

use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// The values of the placeholders an agent command may use.
#[derive(Debug)]
pub struct Placeholders<'a> {
    pub prompt_file: &'a str,
    pub task_id: &'a str,
    pub model: &'a str,
    pub worktree: &'a str,
    pub usage_file: &'a str,
}

/// Returns `command` with every placeholder replaced, inside any argument.
pub fn expand(command: &[String], values: &Placeholders<'_>) -> Vec<String> {
    command
        .iter()
        .map(|argument| {
            argument
                .replace("{prompt_file}", values.prompt_file)
                .replace("{task_id}", values.task_id)
                .replace("{model}", values.model)
                .replace("{worktree}", values.worktree)
                .replace("{usage_file}", values.usage_file)
        })
        .collect()
}

/// Returns whether some argument of `command` holds `placeholder`.
pub fn uses(command: &[String], placeholder: &str) -> bool {
    command
        .iter()
        .any(|argument| argument.contains(placeholder))
}

/// Returns the model a command line names with `--model X`, `--model=X` or `-m X`.
pub fn model_argument(command: &[String]) -> Option<String> {
    let mut arguments = command.iter();
    while let Some(argument) = arguments.next() {
        if let Some(model) = argument.strip_prefix("--model=") {
            return Some(model.to_owned());
        }
        if argument == "--model" || argument == "-m" {
            return arguments.next().cloned();
        }
    }
    None
}

/// A running agent.
#[derive(Debug)]
pub struct Agent {
    child: Child,
}

/// Where an agent reads its prompt and writes its output.
#[derive(Debug)]
pub struct Io<'a> {
    /// The file fed to its stdin; `None` gives it an empty stdin.
    pub stdin: Option<&'a Path>,
    pub stdout: &'a Path,
    pub stderr: &'a Path,
}

impl Agent {
    /// Starts `command` in `directory`, in a new process group, with `env` added.
    pub fn spawn(
        command: &[String],
        directory: &Path,
        io: &Io<'_>,
        env: &[(&str, String)],
    ) -> anyhow::Result<Agent> {
        let (program, arguments) = command
            .split_first()
            .context("the agent command is empty")?;
        let stdin = match io.stdin {
            Some(path) => Stdio::from(
                File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
            ),
            None => Stdio::null(),
        };
        let create = |path: &Path| {
            File::create(path).with_context(|| format!("cannot create {}", path.display()))
        };
        let mut process = Command::new(program);
        process
            .args(arguments)
            .current_dir(directory)
            .stdin(stdin)
            .stdout(create(io.stdout)?)
            .stderr(create(io.stderr)?)
            .process_group(0);
        for (name, value) in env {
            process.env(name, value);
        }
        let child = process
            .spawn()
            .with_context(|| format!("cannot start the agent `{program}`"))?;
        Ok(Agent { child })
    }

    /// Returns the exit status if the agent has exited.
    pub fn try_wait(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// Asks every process of the agent's group to stop (SIGTERM).
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Kills every process of the agent's group (SIGKILL).
    pub fn kill(&mut self) {
        self.signal("KILL");
        // If `kill` itself could not run, the agent's own process still goes.
        let _ = self.child.kill();
    }

    fn signal(&self, name: &str) {
        signal_group(self.child.id(), name);
    }

    /// The agent's process group, as a run killed meanwhile leaves it for the next run to stop.
    pub fn group(&self) -> Group {
        let id = self.child.id();
        Group {
            id,
            leader_started: started(id),
        }
    }
}

/// Sends signal `name` to every process of group `group`; returns whether one got it.
pub(super) fn signal_group(group: u32, name: &str) -> bool {
    Command::new("kill")
        .args([&format!("-{name}"), "--", &format!("-{group}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// An agent's process group as its attempt notes it: a run killed while its agent works
/// leaves that agent running, unsupervised (no budget, no timeout, no lease), and the
/// next run stops it before it gives the task back and makes the worktree anew under it.
///
/// The group's leader is the agent's own process, started in a group of its own; its start
/// time tells it from a later process given the same number. A leader that is gone leaves
/// the number to its group while any process of the group lives (no new process or group
/// gets it meanwhile), so what still answers to that group is the agent's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: u32,
    /// When the leader started, as the system tells it (`None`: it cannot be told, and the
    /// group is never stopped then).
    pub leader_started: Option<String>,
}

impl Group {
    /// The group as one line: its number, then its leader's start time.
    pub fn line(&self) -> String {
        format!(
            "{} {}\n",
            self.id,
            self.leader_started.as_deref().unwrap_or_default()
        )
    }

    /// Reads [`Group::line`].
    pub fn parse(text: &str) -> Option<Group> {
        let (id, started) = text.trim().split_once(' ')?;
        let started = started.trim();
        Some(Group {
            id: id.parse().ok().filter(|id| *id > 1)?,
            leader_started: (!started.is_empty()).then(|| started.to_owned()),
        })
    }

    /// Stops what is left of the group: SIGTERM, then SIGKILL to what is still there after
    /// `grace`. Returns whether there was anything to stop: nothing is signalled when the
    /// leader's number belongs to another process now, or when the start time is unknown.
    pub fn stop(&self, grace: Duration) -> bool {
        let Some(recorded) = &self.leader_started else {
            return false;
        };
        if started(self.id).is_some_and(|now| &now != recorded) || !group_alive(self.id) {
            return false;
        }
        signal_group(self.id, "TERM");
        let deadline = Instant::now() + grace;
        while group_alive(self.id) {
            if Instant::now() >= deadline {
                signal_group(self.id, "KILL");
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    }
}

/// The fields of `/proc/<pid>/stat` after the command name (which may hold spaces and
/// parentheses): the state first, then the parent, the group... (`proc(5)`).
fn proc_stat(pid: &str) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, fields) = text.rsplit_once(')')?;
    Some(fields.split_whitespace().map(str::to_owned).collect())
}

/// When process `pid` started: its start time in clock ticks since boot from `/proc`, else
/// as `ps` tells it (systems without `/proc`); `None` when there is no such process.
fn started(pid: u32) -> Option<String> {
    if Path::new("/proc/self/stat").exists() {
        return proc_stat(&pid.to_string())?.get(19).cloned();
    }
    let output = Command::new("ps")
        .args(["-o", "lstart=", "-p", &pid.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    (output.status.success() && !text.is_empty()).then_some(text)
}

/// Whether a process of group `group` still runs: on Linux one not a zombie (an orphan's
/// zombie waits for a reaper that may never come), elsewhere one `kill -0` reaches.
fn group_alive(group: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return signal_group(group, "0");
    };
    let group = group.to_string();
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|name| name.bytes().all(|byte| byte.is_ascii_digit()))
        else {
            return false;
        };
        proc_stat(pid).is_some_and(|fields| {
            fields.get(2) == Some(&group)
                && !matches!(fields.first().map(String::as_str), Some("Z" | "X"))
        })
    })
}

/// Describes how a process ended: `exit 1`, or the signal that killed it.
pub fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => "ended".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(arguments: &[&str]) -> Vec<String> {
        arguments
            .iter()
            .map(|argument| (*argument).to_owned())
            .collect()
    }

    #[test]
    fn expands_placeholders_inside_arguments() {
        let command = strings(&[
            "claude",
            "-p",
            "@{prompt_file}",
            "--model",
            "{model}",
            "--append-system-prompt=task {task_id} in {worktree}",
        ]);
        let values = Placeholders {
            prompt_file: "/p.md",
            task_id: "fix-login",
            model: "claude-haiku-4-5",
            worktree: "/w",
            usage_file: "/u",
        };
        assert_eq!(
            expand(&command, &values),
            strings(&[
                "claude",
                "-p",
                "@/p.md",
                "--model",
                "claude-haiku-4-5",
                "--append-system-prompt=task fix-login in /w",
            ])
        );
        assert!(uses(&command, "{prompt_file}"));
        assert!(!uses(&command, "{usage_file}"));
    }

    #[test]
    fn a_group_line_reads_back_and_never_names_group_0_or_1() {
        let group = Group {
            id: 4242,
            leader_started: Some("987654".to_owned()),
        };
        assert_eq!(Group::parse(&group.line()), Some(group));
        assert_eq!(Group::parse(""), None);
        assert_eq!(Group::parse("1 5"), None);
        assert_eq!(Group::parse("0 5"), None);
        assert_eq!(
            Group::parse("77 "),
            None,
            "a group without its leader's start time is never stopped"
        );
    }

    #[test]
    fn finds_the_model_argument() {
        assert_eq!(
            model_argument(&strings(&["codex", "exec", "-m", "gpt-5", "--json"])).as_deref(),
            Some("gpt-5")
        );
        assert_eq!(
            model_argument(&strings(&["claude", "--model=opus"])).as_deref(),
            Some("opus")
        );
        assert_eq!(model_argument(&strings(&["aider"])), None);
    }
}
