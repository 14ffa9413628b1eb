//! The `gitprio` command line: a git-native task queue for coding agents.

mod cli;
mod commands;
mod embedded;
mod exit_code;
mod output;
mod settings;

fn main() -> std::process::ExitCode {
    cli::run()
}
