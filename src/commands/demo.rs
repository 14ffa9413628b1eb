//! `gitprio demo`: a throwaway repository built from the embedded example queue, drained
//! by `gitprio run` with a simulated agent.

pub mod agent;

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, ensure};
use clap::Args;

use super::{SourceArgs, explain, list, next};
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

pub fn run(settings: &Settings, args: &DemoArgs) -> CommandResult {
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
    let demo = settings.in_directory(root.to_path_buf());
    println!(
        "# A repository with {} task files under .tasks/ (from tasks.example/)\n",
        EXAMPLE_FILES
            .iter()
            .filter(|(path, _)| {
                path.strip_prefix(".tasks/")
                    .is_some_and(gitprio_core::source::is_task_path)
            })
            .count()
    );
    println!("$ gitprio list");
    list::run(
        &demo,
        &list::ListArgs {
            source: SourceArgs::default(),
            ready: false,
            json: false,
        },
    )?;
    println!("\n$ gitprio next --explain");
    next::run(
        &demo,
        &next::NextArgs {
            source: SourceArgs::default(),
            explain: true,
            json: false,
        },
    )?;
    println!("\n$ gitprio explain auth-password-reset");
    explain::print_explanation(
        &super::load_queue(&demo, &SourceArgs::default())?.1,
        "auth-password-reset",
    );
    simulate(root)?;
    if args.keep {
        let kept = directory.keep();
        println!("\nThe demo repository is kept at {}", kept.display());
    }
    Ok(exit_code::SUCCESS)
}

/// The demo's clock starts here and moves on with each round of agents.
const START: &str = "2026-11-02T09:00:00Z";

/// Stand-ins for the tools the example's acceptance commands call (`cargo test`, `lychee`):
/// the simulated agent writes no code for them to check.
const TOOLCHAIN: [&str; 2] = ["cargo", "lychee"];

/// Runs `gitprio run --parallel 3` with the simulated agent until nothing is ready, merging
/// the completed branches between rounds as a reviewer would, then prints the report and
/// one frame of the cockpit.
fn simulate(root: &Path) -> anyhow::Result<()> {
    let world = root.join("agents");
    std::fs::create_dir_all(&world)?;
    let remote = world.join("remote.git");
    git(
        &world,
        &[
            "init",
            "--quiet",
            "--bare",
            "--initial-branch=main",
            "remote.git",
        ],
    )?;
    git(
        root,
        &["push", "--quiet", &remote.display().to_string(), "main"],
    )?;
    git(&world, &["clone", "--quiet", "remote.git", "clone"])?;
    let clone = world.join("clone");
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
    let exe = std::env::current_exe()?.display().to_string();
    println!(
        "\n# Three agents drain the queue with `gitprio run`. The agent is this binary in a hidden\n\
         # mode that prints what `claude -p --output-format stream-json` prints; stand-ins for\n\
         # cargo and lychee pass the acceptance commands. Progress goes to stderr."
    );
    let mut clock: jiff::Timestamp = START.parse()?;
    for round in 1..=8 {
        println!(
            "\n$ gitprio run --parallel 3 --agent-name agent --adapter claude -- gitprio demo-agent --task {{task_id}}"
        );
        let status = demo_git_env(&mut Command::new(&exe))
            .current_dir(&clone)
            .args([
                "run",
                "--parallel",
                "3",
                "--agent-name",
                "agent",
                "--adapter",
                "claude",
                "--grace",
                "2s",
                "--",
                &exe,
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
        println!(
            "\n# Round {round} is over. A reviewer merges {}; the tasks waiting on them are ready now.",
            branches.join(", ")
        );
        for branch in &branches {
            git(
                &clone,
                &["merge", "--quiet", "--no-ff", "--no-edit", branch],
            )?;
        }
        git(&clone, &["push", "--quiet", "origin", "main"])?;
        clock = clock.checked_add(jiff::SignedDuration::from_mins(45))?;
    }
    let gitprio = |args: &[&str]| -> anyhow::Result<String> {
        let output = Command::new(&exe)
            .current_dir(&clone)
            .args(args)
            .env("GITPRIO_NOW", clock.to_string())
            .env("NO_COLOR", "1")
            .output()?;
        stdout_of(&format!("gitprio {}", args.join(" ")), &output)
    };
    gitprio(&["gc"])?;
    println!("\n$ gitprio report --by type");
    print!("{}", gitprio(&["report", "--by", "type"])?);
    let top = ["top", "--once", "--window", "6h", "--width", "110"];
    println!(
        "\n# The cockpit, as `gitprio top` shows it live while agents work: the last runs, and\n\
         # the throughput over six hours, the whole demo.\n\n$ gitprio {}",
        top.join(" ")
    );
    print!("{}", gitprio(&top)?);
    Ok(())
}

/// Runs git in `directory`, with neither the system's nor the user's git config: commit
/// signing or hooks set there must not stop a throwaway demo.
fn git(directory: &Path, args: &[&str]) -> anyhow::Result<()> {
    git_output(directory, args).map(drop)
}

/// The demo's git identity, and no user or system git config.
fn demo_git_env(command: &mut Command) -> &mut Command {
    command
        .env("GIT_AUTHOR_NAME", "gitprio demo")
        .env("GIT_AUTHOR_EMAIL", "demo@gitprio.invalid")
        .env("GIT_COMMITTER_NAME", "gitprio demo")
        .env("GIT_COMMITTER_EMAIL", "demo@gitprio.invalid")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
}

fn git_output(directory: &Path, args: &[&str]) -> anyhow::Result<String> {
    let output = demo_git_env(&mut Command::new("git"))
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
