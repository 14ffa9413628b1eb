//! The `gitprio` command line: a git-native task queue for coding agents.

mod args;
mod cli;
mod commands;
mod embedded;
mod exit_code;
mod github;
mod output;
mod reading;
mod settings;

fn main() -> std::process::ExitCode {
    cli::run()
}
