//! `gitprio demo`: a throwaway repository built from the embedded example queue.

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
    println!("\n# Three simulated agents drain the queue through a shared bare remote.");
    simulate(root)?;
    if args.keep {
        let kept = directory.keep();
        println!("\nThe demo repository is kept at {}", kept.display());
    }
    Ok(exit_code::SUCCESS)
}

/// The simulated agents, each in its own clone.
const AGENTS: [&str; 3] = ["agent-1", "agent-2", "agent-3"];

/// The demo's clock starts here and moves on a few minutes per step.
const START: &str = "2026-11-02T09:00:00Z";

/// Runs agents through the queue with the real binary: claim, record usage, heartbeat,
/// fail some attempts, complete the rest (their change lands on `main`), then report.
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
    for name in AGENTS {
        git(&world, &["clone", "--quiet", "remote.git", name])?;
    }
    let mut clock: jiff::Timestamp = START.parse()?;
    let mut working: Vec<&str> = AGENTS.to_vec();
    let mut attempts: std::collections::BTreeMap<String, u32> = std::collections::BTreeMap::new();
    while !working.is_empty() {
        let mut still = Vec::new();
        for name in working {
            clock = clock.checked_add(jiff::SignedDuration::from_mins(7))?;
            let clone = world.join(name);
            let claim = gitprio(&clone, name, clock, &["claim", "--json"], None)?;
            if claim.0 == exit_code::NOTHING_READY {
                println!("{name}: nothing ready (exit 3), stops");
                continue;
            }
            ensure!(claim.0 == 0, "claim failed: {}", claim.2);
            let json: serde_json::Value = serde_json::from_str(&claim.1)?;
            let id = json["task"]["id"].as_str().unwrap_or_default().to_owned();
            let kind = json["task"]["type"].as_str().unwrap_or("chore").to_owned();
            let attempt = attempts.entry(id.clone()).or_default();
            *attempt += 1;
            let budget = json["task"]["budget"]["tokens"].as_u64();
            let records = synthetic_usage(&id, &kind, *attempt, budget);
            let tokens: u64 = records.iter().map(|record| record.1).sum();
            let stdin: String = records.iter().fold(String::new(), |mut text, record| {
                text.push_str(&record.0);
                text.push('\n');
                text
            });
            gitprio(
                &clone,
                name,
                clock,
                &["usage", "record", "--stdin"],
                Some(&stdin),
            )?;
            let heartbeat = gitprio(&clone, name, clock, &["heartbeat"], None)?;
            if heartbeat.0 == exit_code::BUDGET_EXCEEDED {
                gitprio(
                    &clone,
                    name,
                    clock,
                    &["release", "--failed", "--reason", "over budget"],
                    None,
                )?;
                println!("{name}: {id} went over its budget at {tokens} tokens (exit 5), released");
            } else if *attempt == 1 && seed(&id).is_multiple_of(4) {
                // A deterministic quarter of first attempts fail; retries succeed.
                gitprio(
                    &clone,
                    name,
                    clock,
                    &["release", "--failed", "--reason", "acceptance tests fail"],
                    None,
                )?;
                println!("{name}: {id} failed after {tokens} tokens, released for a retry");
            } else {
                // The simulated agent did no real work: its acceptance commands cannot pass.
                gitprio(
                    &clone,
                    name,
                    clock,
                    &[
                        "done",
                        "--no-verify",
                        "--reason",
                        "simulated agent in the demo",
                    ],
                    None,
                )?;
                land(&clone, &id)?;
                println!("{name}: {id} done in {tokens} tokens, merged");
            }
            still.push(name);
        }
        working = still;
    }
    gitprio(&world.join(AGENTS[0]), AGENTS[0], clock, &["gc"], None)?;
    println!("\n$ gitprio report --by type");
    let report = gitprio(
        &world.join(AGENTS[0]),
        AGENTS[0],
        clock,
        &["report", "--by", "type"],
        None,
    )?;
    print!("{}", report.1);
    Ok(())
}

/// Commits the task file's `status: done` and pushes it to `main`, as a merged pull request would.
fn land(clone: &Path, id: &str) -> anyhow::Result<()> {
    git(
        clone,
        &[
            "commit",
            "--quiet",
            "--all",
            "--message",
            &format!("Complete {id}"),
        ],
    )?;
    for _ in 0..5 {
        git(clone, &["pull", "--quiet", "--rebase", "origin", "main"])?;
        if git(clone, &["push", "--quiet", "origin", "HEAD:main"]).is_ok() {
            return Ok(());
        }
    }
    anyhow::bail!("cannot push the completion of {id}")
}

fn seed(text: &str) -> u64 {
    // FNV-1a: stable across runs and platforms, unlike the std hasher.
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Realistic usage records (JSON lines) for one attempt: the model follows the task type.
///
/// With a budget, an attempt spends 45–90% of it; one first attempt in six overspends.
fn synthetic_usage(id: &str, kind: &str, attempt: u32, budget: Option<u64>) -> Vec<(String, u64)> {
    let model = match kind {
        "docs" | "chore" | "deps" => "claude-haiku-4-5",
        "spike" => "claude-opus-4-6",
        _ => "claude-sonnet-4-5",
    };
    let mut state = seed(id) ^ u64::from(attempt);
    let mut next = |low: u64, high: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        low + (state >> 33) % (high - low)
    };
    let requests = next(3, 7);
    let mut raw: Vec<[u64; 4]> = (0..requests)
        .map(|request| {
            let input = next(300, 3_000);
            let output = next(1_500, 9_000);
            let cache_read = if request == 0 {
                0
            } else {
                next(15_000, 55_000)
            };
            let cache_write = if request == 0 {
                next(12_000, 30_000)
            } else {
                next(0, 4_000)
            };
            [input, output, cache_read, cache_write]
        })
        .collect();
    if let Some(budget) = budget {
        let total: u64 = raw.iter().flatten().sum();
        let percent = if attempt == 1 && seed(id) % 6 == 1 {
            120
        } else {
            next(45, 90)
        };
        let target = budget * percent / 100;
        for value in raw.iter_mut().flatten() {
            *value = *value * target / total.max(1);
        }
    }
    raw.into_iter()
        .enumerate()
        .map(|(request, [input, output, cache_read, cache_write])| {
            let line = format!(
                "{{\"model\":\"{model}\",\"input\":{input},\"output\":{output},\"cache_read\":{cache_read},\"cache_write\":{cache_write},\"key\":\"{id}-{attempt}-{request}\"}}"
            );
            (line, input + output + cache_read + cache_write)
        })
        .collect()
}

/// Runs this very binary as agent `agent` at time `now`; returns (exit code, stdout, stderr).
fn gitprio(
    clone: &Path,
    agent: &str,
    now: jiff::Timestamp,
    args: &[&str],
    stdin: Option<&str>,
) -> anyhow::Result<(u8, String, String)> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .current_dir(clone)
        .args(args)
        .env("GITPRIO_AGENT", agent)
        .env("GITPRIO_NOW", now.to_string())
        .env("NO_COLOR", "1")
        .env("GIT_AUTHOR_NAME", agent)
        .env("GIT_AUTHOR_EMAIL", "demo@gitprio.invalid")
        .env("GIT_COMMITTER_NAME", agent)
        .env("GIT_COMMITTER_EMAIL", "demo@gitprio.invalid")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn()?;
    if let Some(text) = stdin {
        std::io::Write::write_all(child.stdin.as_mut().expect("piped stdin"), text.as_bytes())?;
    }
    drop(child.stdin.take());
    let output = child.wait_with_output()?;
    let code = output
        .status
        .code()
        .and_then(|code| u8::try_from(code).ok())
        .unwrap_or(1);
    let result = (
        code,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    ensure!(
        code == 0 || code == exit_code::NOTHING_READY || code == exit_code::BUDGET_EXCEEDED,
        "`gitprio {}` as {agent} failed ({code}): {}",
        args.join(" "),
        result.2.trim()
    );
    Ok(result)
}

fn git(directory: &Path, args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("git")
        .current_dir(directory)
        .args(args)
        .env("GIT_AUTHOR_NAME", "gitprio demo")
        .env("GIT_AUTHOR_EMAIL", "demo@gitprio.invalid")
        .env("GIT_COMMITTER_NAME", "gitprio demo")
        .env("GIT_COMMITTER_EMAIL", "demo@gitprio.invalid")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .with_context(|| format!("cannot run `git {}`; is git installed?", args.join(" ")))?;
    ensure!(
        output.status.success(),
        "`git {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}
