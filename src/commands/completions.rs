//! `gitprio completions`: shell completion scripts.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::cli::Cli;
use crate::exit_code;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to generate completions for.
    pub shell: Shell,
}

pub fn run(args: &CompletionsArgs) -> exit_code::ExitStatus {
    clap_complete::generate(
        args.shell,
        &mut Cli::command(),
        "gitprio",
        &mut std::io::stdout(),
    );
    exit_code::SUCCESS
}
