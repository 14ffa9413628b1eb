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
    if args.keep {
        let kept = directory.keep();
        println!("\nThe demo repository is kept at {}", kept.display());
    }
    Ok(exit_code::SUCCESS)
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
