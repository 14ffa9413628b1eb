//! `gitprio completions`: shell completion scripts.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::cli::{Cli, CommandResult};
use crate::{exit_code, output};

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to generate completions for.
    pub shell: Shell,
}

pub fn run(args: &CompletionsArgs) -> CommandResult {
    // Into memory first: `generate` panics when it cannot write.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "gitprio", &mut script);
    output::out!("{}", String::from_utf8_lossy(&script))?;
    Ok(exit_code::SUCCESS)
}
