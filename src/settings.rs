//! Resolving arguments and the environment into one validated [`Settings`] value.

use std::io::IsTerminal;
use std::path::PathBuf;

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
}

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
        Ok(Settings {
            directory,
            color: !no_color && std::io::stderr().is_terminal(),
            github_actions: std::env::var("GITHUB_ACTIONS").is_ok_and(|value| value == "true"),
        })
    }

    /// Returns these settings for running in `directory` instead.
    pub fn in_directory(&self, directory: PathBuf) -> Settings {
        Settings {
            directory,
            ..self.clone()
        }
    }
}
