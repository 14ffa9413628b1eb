//! `gitprio demo`: a throwaway repository built from the embedded example queue, shown one
//! idea per screen: the ranked queue, a claim and its context bundle, two agents racing for
//! one task, the run loop with a simulated agent, a budget stop, and value per token.
//!
//! Every number it prints is the same on every run: the clock is fixed, the simulated
//! agent is seeded by the task id, and one agent drains the queue (which of several
//! parallel agents gets which task is left to chance by design, see `lease::claim`).

pub mod agent;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, ensure};
use clap::Args;
use gitprio_core::git::{DEFAULT_REMOTE_TIMEOUT, Repository};

use crate::cli::CommandResult;
use crate::embedded::EXAMPLE_FILES;
use crate::exit_code;
use crate::settings::Settings;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo repository and print its path, instead of deleting it.
    #[arg(long)]
    pub keep: bool,
}

pub fn run(_settings: &Settings, args: &DemoArgs) -> CommandResult {
    let directory = tempfile::Builder::new()
        .prefix("gitprio-demo-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let root = directory.path();
    for (path, content) in EXAMPLE_FILES {
        let target = root.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, content)
            .with_context(|| format!("cannot write {}", target.display()))?;
    }
    git(root, &["init", "--quiet", "--initial-branch=main"])?;
    git(root, &["add", "--all"])?;
    git(root, &["commit", "--quiet", "--message", "Example queue"])?;
    crate::output::outln!(
        "# 1/6 The ranked queue. A repository with {} task files under .tasks/ (from\n\
         # tasks.example/): one deterministic order answers \"what is next?\", and every task\n\
         # that waits says why.\n",
        EXAMPLE_FILES
            .iter()
            .filter(|(path, _)| {
                path.strip_prefix(".tasks/")
                    .is_some_and(gitprio_core::source::is_task_path)
            })
            .count()
    )?;
    crate::output::outln!("$ gitprio list")?;
    show(root, &["list"])?;
    crate::output::outln!("\n$ gitprio next --explain")?;
    show(root, &["next", "--explain"])?;
    simulate(root)?;
    if args.keep {
        let kept = directory.keep();
        crate::output::outln!("\nThe demo repository is kept at {}", kept.display())?;
    }
    Ok(exit_code::SUCCESS)
}

/// The demo's clock starts here and moves on with each round of agents.
const START: &str = "2026-11-02T09:00:00Z";

/// Stand-ins for the tools the example's acceptance commands call (`cargo test`, `lychee`):
/// the simulated agent writes no code for them to check.
const TOOLCHAIN: [&str; 2] = ["cargo", "lychee"];

/// The task the simulated agent overspends on: seeded by its id, see `agent::requests`.
const OVERSPENT: &str = "billing-refund-endpoint";

/// Shows claims, a race and `gitprio run` with the simulated agent on a bare remote and
/// clones of it, merging the completed branches between rounds as a reviewer would, then
/// the budget stop, the report and one frame of the cockpit.
fn simulate(root: &Path) -> anyhow::Result<()> {
    let world = root.join("agents");
    std::fs::create_dir_all(&world)?;
    make_remotes(root, &world)?;
    let demo = Demo {
        exe: std::env::current_exe()?.display().to_string(),
        world,
    };
    demo.claim()?;
    demo.race()?;
    let clock = demo.run_rounds()?;
    demo.results(clock)
}

/// The clones the demo's agents work in, and the binary they run.
struct Demo {
    world: PathBuf,
    exe: String,
}

/// Makes the shared remote with its clone for the run loop, and a remote of their own for
/// the claims and the race, so that the run loop and its report start from a queue nobody
/// has touched.
fn make_remotes(root: &Path, world: &Path) -> anyhow::Result<()> {
    for (bare, clones) in [
        ("remote.git", &["clone"][..]),
        ("claims.git", &["alice", "bob", "carol"][..]),
    ] {
        git(
            world,
            &["init", "--quiet", "--bare", "--initial-branch=main", bare],
        )?;
        git_remote(
            root,
            &[
                "push",
                "--quiet",
                &world.join(bare).display().to_string(),
                "main",
            ],
        )?;
        for clone in clones {
            git_remote(world, &["clone", "--quiet", bare, clone])?;
        }
    }
    Ok(())
}

impl Demo {
    /// `gitprio <args>` as `agent` in clone `dir` at time `now`.
    fn gitprio(&self, dir: &str, agent: &str, now: &str, args: &[&str]) -> Command {
        let mut command = Command::new(&self.exe);
        demo_git_env(&mut command)
            .current_dir(self.world.join(dir))
            .args(args)
            .env("GITPRIO_AGENT", agent)
            .env("GITPRIO_NOW", now)
            .env("NO_COLOR", "1");
        command
    }

    /// Runs `command` and returns its stdout, `shown` naming it in the error.
    fn stdout(mut command: Command, shown: &str) -> anyhow::Result<String> {
        let output = command.output()?;
        stdout_of(shown, &output)
    }

    /// Screen 2: alice claims the top task, then gives it back.
    fn claim(&self) -> anyhow::Result<()> {
        crate::output::outln!(
            "\n# 2/6 A claim. alice, in her clone of the shared remote, leases the top ready task by\n\
         # one compare-and-swap on the remote, and gets it with the documents it links to, in a\n\
         # stable order that keeps prompt caches warm, and the commands to report with.\n\n\
         $ gitprio claim"
        )?;
        crate::output::out!(
            "{}",
            Self::stdout(
                self.gitprio("alice", "alice", START, &["claim"]),
                "gitprio claim"
            )?
        )?;
        Self::stdout(
            self.gitprio(
                "alice",
                "alice",
                START,
                &["release", "auth-login-rate-limit"],
            ),
            "gitprio release",
        )?;
        crate::output::outln!(
            "$ gitprio release auth-login-rate-limit   # alice gives it back, for what follows"
        )?;
        Ok(())
    }

    /// Screen 3: bob and carol race for the top task; exactly one of them gets it.
    fn race(&self) -> anyhow::Result<()> {
        // Past the lease TTL, alice's claim is no longer live: the racers see no other agent,
        // so each goes for the top task.
        let race_time = START
            .parse::<jiff::Timestamp>()?
            .checked_add(jiff::SignedDuration::from_mins(31))?
            .to_string();
        crate::output::outln!(
            "\n# 3/6 A race. bob and carol, in two more clones, claim at the same moment. Both go for\n\
         # the top ready task; the remote takes exactly one compare-and-swap, and the agent that\n\
         # lost takes another task instead of doing the same work twice.\n\n\
         $ gitprio claim --json   # as bob and as carol, at once"
        )?;
        let racers: Vec<std::process::Child> = ["bob", "carol"]
            .iter()
            .map(|agent| {
                self.gitprio(agent, agent, &race_time, &["claim", "--json"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
            })
            .collect::<Result<_, _>>()?;
        let mut claimed = Vec::new();
        for racer in racers {
            let output = racer.wait_with_output()?;
            let json: serde_json::Value =
                serde_json::from_str(&stdout_of("gitprio claim --json", &output)?)?;
            claimed.push(json["task"]["id"].as_str().unwrap_or_default().to_owned());
        }
        let contested = "auth-login-rate-limit";
        ensure!(
            claimed.iter().filter(|id| *id == contested).count() == 1 && claimed[0] != claimed[1],
            "the race ended with {claimed:?}: not exactly one holder of {contested}"
        );
        crate::output::outln!(
            "both went for {contested}: one of them holds it (lease generation 1), the other lost\n\
         the compare-and-swap and holds another ready task. Two claims, two different tasks."
        )?;
        for (agent, id) in ["bob", "carol"].into_iter().zip(&claimed) {
            Self::stdout(
                self.gitprio(agent, agent, &race_time, &["release", id]),
                "gitprio release",
            )?;
        }
        crate::output::outln!(
            "$ gitprio release <id>   # both give their task back, for what follows"
        )?;
        Ok(())
    }

    /// Screen 4: rounds of `gitprio run` in the clone, a reviewer merging the completed
    /// branches after each; returns the demo's clock after the last round.
    fn run_rounds(&self) -> anyhow::Result<jiff::Timestamp> {
        let exe = self.exe.as_str();
        let clone = self.world.join("clone");
        let path = toolchain_path(&self.world)?;
        crate::output::outln!(
            "\n# 4/6 The run loop. `gitprio run` claims the top task, gives the agent a worktree of its\n\
         # own and the bundle, renews the lease, follows the agent's token usage live, runs the\n\
         # acceptance commands, then `done` (or release: a failed attempt is retried once, with\n\
         # the error). The agent is this binary in a hidden mode that prints what\n\
         # `claude -p --output-format stream-json` prints; stand-ins for cargo and lychee pass\n\
         # the acceptance commands. Progress goes to stderr."
        )?;
        let mut clock: jiff::Timestamp = START.parse()?;
        for round in 1..=12 {
            crate::output::outln!(
                "\n$ gitprio run --agent-name agent --adapter claude -- gitprio demo-agent --task {{task_id}}"
            )?;
            let status = demo_git_env(&mut Command::new(exe))
                .current_dir(&clone)
                .args([
                    "run",
                    "--agent-name",
                    "agent",
                    "--adapter",
                    "claude",
                    "--grace",
                    "2s",
                    "--",
                    exe,
                    "demo-agent",
                    "--task",
                    "{task_id}",
                ])
                .env("PATH", &path)
                .env("GITPRIO_NOW", clock.to_string())
                .env("NO_COLOR", "1")
                .status()
                .context("cannot run `gitprio run`")?;
            ensure!(status.success(), "`gitprio run` failed ({status})");
            let branches = git_output(
                &clone,
                &[
                    "branch",
                    "--format=%(refname:short)",
                    "--no-merged",
                    "main",
                    "--list",
                    "gitprio/*",
                ],
            )?;
            let branches: Vec<&str> = branches.lines().filter(|line| !line.is_empty()).collect();
            if branches.is_empty() {
                break;
            }
            crate::output::outln!(
                "\n# Round {round} is over. A reviewer merges {}; the tasks waiting on them are ready now.",
                branches.join(", ")
            )?;
            for branch in &branches {
                git(
                    &clone,
                    &["merge", "--quiet", "--no-ff", "--no-edit", branch],
                )?;
            }
            git_remote(&clone, &["push", "--quiet", "origin", "main"])?;
            clock = clock.checked_add(jiff::SignedDuration::from_mins(45))?;
        }
        Ok(clock)
    }

    /// Screens 5 and 6 and the cockpit: the budget stop, the report by type and `top`, at `clock`.
    fn results(&self, clock: jiff::Timestamp) -> anyhow::Result<()> {
        let now = clock.to_string();
        let report =
            |args: &[&str]| Self::stdout(self.gitprio("clone", "agent-1", &now, args), "gitprio");
        report(&["gc"])?;
        crate::output::outln!(
            "\n# 5/6 A budget stop. The agent on {OVERSPENT} kept spending past the task's budget:\n\
         # `gitprio run` stopped it there, recorded what it spent, and the retry finished the task.\n\n\
         $ gitprio usage show {OVERSPENT}"
        )?;
        crate::output::out!("{}", report(&["usage", "show", OVERSPENT])?)?;
        crate::output::outln!(
            "\n# 6/6 Value per token: completed value over every token spent, failed runs included,\n\
         # by task type, with the waste signals.\n\n$ gitprio report --by type"
        )?;
        crate::output::out!("{}", report(&["report", "--by", "type"])?)?;
        let top = ["top", "--once", "--window", "6h", "--width", "110"];
        crate::output::outln!(
            "\n# The cockpit, as `gitprio top` shows it live while agents work: the last runs, and\n\
         # the throughput over six hours, the whole demo.\n\n$ gitprio {}",
            top.join(" ")
        )?;
        crate::output::out!("{}", report(&top)?)?;
        Ok(())
    }
}

/// A `PATH` with stand-ins for the tools the acceptance commands call first.
fn toolchain_path(world: &Path) -> anyhow::Result<std::ffi::OsString> {
    let toolchain = world.join("toolchain");
    std::fs::create_dir_all(&toolchain)?;
    for tool in TOOLCHAIN {
        let path = toolchain.join(tool);
        std::fs::write(
            &path,
            format!("#!/bin/sh\necho \"demo stand-in: {tool} $* passes\"\n"),
        )?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    }
    let path = std::env::join_paths(std::iter::once(toolchain).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))?;
    Ok(path)
}

/// Runs `gitprio <args>` in `root` as a process of this binary, its output shown as it
/// comes: the demo shows the commands a person would type, run as they would run.
fn show(root: &Path, args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new(std::env::current_exe()?)
        .current_dir(root)
        .args(args)
        .stdin(std::process::Stdio::null())
        .status()
        .with_context(|| format!("cannot run `gitprio {}`", args.join(" ")))?;
    // Nothing ready is an answer the screen shows, not a failure of the demo.
    match status.code().and_then(exit_code::ExitStatus::from_code) {
        Some(exit_code::SUCCESS | exit_code::NOTHING_READY) => Ok(()),
        _ => anyhow::bail!("`gitprio {}` failed ({status})", args.join(" ")),
    }
}

/// Runs git in `directory`, with neither the system's nor the user's git config: commit
/// signing or hooks set there must not stop a throwaway demo.
fn git(directory: &Path, args: &[&str]) -> anyhow::Result<()> {
    git_output(directory, args).map(drop)
}

/// The demo's git identity and date (so its commit ids are the same on every run), and no
/// user or system git config.
fn demo_git_env(command: &mut Command) -> &mut Command {
    command
        .env("GIT_AUTHOR_NAME", "gitprio demo")
        .env("GIT_AUTHOR_EMAIL", "demo@gitprio.invalid")
        .env("GIT_COMMITTER_NAME", "gitprio demo")
        .env("GIT_COMMITTER_EMAIL", "demo@gitprio.invalid")
        .env("GIT_AUTHOR_DATE", START)
        .env("GIT_COMMITTER_DATE", START)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
}

/// Runs git `args` that talk to a remote (the demo's bare repositories) in `directory`, under
/// the stall deadline every git command that talks to a remote has.
fn git_remote(directory: &Path, args: &[&str]) -> anyhow::Result<()> {
    let mut command = gitprio_core::git::command();
    demo_git_env(&mut command).current_dir(directory).args(args);
    let packs = directory.join(".git").join("objects").join("pack");
    let output = Repository::run_bounded(command, args, &packs, DEFAULT_REMOTE_TIMEOUT)
        .with_context(|| format!("cannot run `git {}`; is git installed?", args.join(" ")))?;
    stdout_of(&format!("git {}", args.join(" ")), &output).map(drop)
}

fn git_output(directory: &Path, args: &[&str]) -> anyhow::Result<String> {
    let output = demo_git_env(&mut gitprio_core::git::command())
        .current_dir(directory)
        .args(args)
        .output()
        .with_context(|| format!("cannot run `git {}`; is git installed?", args.join(" ")))?;
    stdout_of(&format!("git {}", args.join(" ")), &output)
}

/// Returns the stdout of `command`, or its stderr as the error when it failed.
fn stdout_of(command: &str, output: &std::process::Output) -> anyhow::Result<String> {
    ensure!(
        output.status.success(),
        "`{command}` failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
