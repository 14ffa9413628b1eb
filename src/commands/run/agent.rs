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
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args([&format!("-{name}"), "--", &group])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
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
