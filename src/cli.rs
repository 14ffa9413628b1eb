//! Argument parsing and the one place where errors become exit codes.

use std::process::ExitCode;

use clap::{ArgMatches, Args, CommandFactory as _, FromArgMatches as _, Parser};
use gitprio_core::git::GitError;
use gitprio_core::lease::{LeaseError, RevokeError, StoreError};
use gitprio_core::source::LoadError;
use gitprio_core::workspace::WorkspaceError;

use crate::commands::Command;
use crate::settings::Settings;
use crate::{exit_code, output};

/// A git-native task queue for coding agents.
///
/// Tasks are markdown files under `.tasks/`; one ranked queue answers "what is next?".
/// Exit codes: 0 ok, 1 failure, 2 usage, 3 nothing ready, 4 lease lost,
/// 5 budget exceeded, 6 not a git repository, 7 no task queue, 130 interrupted (`run`).
#[derive(Debug, Parser)]
#[command(name = "gitprio", version, about, long_about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Run as if gitprio was started in DIR, like `git -C`.
    #[arg(short = 'C', value_name = "DIR", global = true)]
    pub directory: Option<std::path::PathBuf>,
}

/// An error with the exit code it maps to.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for CliError {
    fn from(error: E) -> Self {
        let error = error.into();
        let code = exit_code_for(&error);
        CliError { code, error }
    }
}

/// Every cause of `error`, outermost first, with the errors a [`WorkspaceError`] wraps
/// unchanged (a transparent wrapper hides them from the source chain).
pub fn causes(error: &anyhow::Error) -> Vec<&(dyn std::error::Error + 'static)> {
    let mut causes = Vec::new();
    for cause in error.chain() {
        causes.push(cause);
        if let Some(inner) = cause
            .downcast_ref::<WorkspaceError>()
            .and_then(WorkspaceError::wrapped)
        {
            let mut next = Some(inner);
            while let Some(cause) = next {
                causes.push(cause);
                next = cause.source();
            }
        }
    }
    causes
}

fn exit_code_for(error: &anyhow::Error) -> u8 {
    for cause in causes(error) {
        if let Some(load) = cause.downcast_ref::<LoadError>() {
            return match load {
                LoadError::NoTasksDir { .. } => exit_code::NO_QUEUE,
                LoadError::Git(GitError::NotARepository { .. }) => exit_code::NOT_A_REPOSITORY,
                _ => exit_code::FAILURE,
            };
        }
        if let Some(LeaseError::Lost { .. }) = cause.downcast_ref::<LeaseError>() {
            return exit_code::LEASE_LOST;
        }
        if let Some(RevokeError::Raced { .. }) = cause.downcast_ref::<RevokeError>() {
            return exit_code::LEASE_LOST;
        }
        if let Some(GitError::NotARepository { .. }) = cause.downcast_ref::<GitError>() {
            return exit_code::NOT_A_REPOSITORY;
        }
    }
    exit_code::FAILURE
}

/// The result of a command: the exit code to end with.
pub type CommandResult = Result<u8, CliError>;

/// Parses the command line, runs the command and returns its exit code.
pub fn run() -> ExitCode {
    let matches = Cli::command().get_matches();
    let could_be_offline = could_be_offline(&Cli::command(), &matches);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    let settings = match Settings::resolve(&cli.global) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::from(exit_code::FAILURE);
        }
    };
    match cli.command.run(&settings) {
        Ok(code) => ExitCode::from(code),
        Err(CliError { code, error }) => {
            output::message(&settings, "error", &format!("{error:#}"));
            let unreachable = causes(&error)
                .into_iter()
                .any(|cause| matches!(cause.downcast_ref(), Some(StoreError::Remote { .. })));
            if unreachable && could_be_offline {
                output::message(
                    &settings,
                    "hint",
                    "pass `--offline` to use what was last fetched from the remote",
                );
            }
            ExitCode::from(code)
        }
    }
}

/// Returns whether the subcommand `matches` chose takes `--offline` and was run without it.
fn could_be_offline(command: &clap::Command, matches: &ArgMatches) -> bool {
    match matches.subcommand() {
        Some((name, sub)) => command
            .find_subcommand(name)
            .is_some_and(|subcommand| could_be_offline(subcommand, sub)),
        None => {
            command
                .get_arguments()
                .any(|argument| argument.get_id() == "offline")
                && !matches.get_flag("offline")
        }
    }
}
