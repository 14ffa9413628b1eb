//! `gitprio init`: create `.tasks/` with a config and one sample task.

use anyhow::Context as _;
use clap::Args;
use gitprio_core::git::Repository;

use crate::cli::CommandResult;
use crate::embedded::{INIT_CONFIG, INIT_TASK};
use crate::settings::Settings;
use crate::{exit_code, output};

#[derive(Debug, Args)]
pub struct InitArgs {}

pub fn run(settings: &Settings, _args: &InitArgs) -> CommandResult {
    let repo = Repository::discover(&settings.directory)?;
    let root = repo
        .workdir()
        .context("repository has no working tree to create .tasks/ in")?;
    let tasks = root.join(gitprio_core::TASKS_DIR);
    std::fs::create_dir_all(&tasks)
        .with_context(|| format!("cannot create {}", tasks.display()))?;
    for (name, content) in [("config.yaml", INIT_CONFIG), ("first-task.md", INIT_TASK)] {
        let path = tasks.join(name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path);
        match file {
            Ok(mut file) => {
                std::io::Write::write_all(&mut file, content.as_bytes())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                output::message(settings, "info", &format!("created .tasks/{name}"));
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                output::message(
                    settings,
                    "info",
                    &format!(".tasks/{name} exists; left as it is"),
                );
            }
            Err(error) => {
                return Err(anyhow::Error::new(error)
                    .context(format!("cannot create {}", path.display()))
                    .into());
            }
        }
    }
    output::message(
        settings,
        "hint",
        "edit the sample task, then `gitprio check` and commit .tasks/",
    );
    Ok(exit_code::SUCCESS)
}
