//! Argument parsing and the one place where errors become exit codes.

use std::process::ExitCode;

use clap::{ArgMatches, Args, CommandFactory as _, FromArgMatches as _, Parser};
use gitprio_core::ExitStatus;
use gitprio_core::hint::{FrontEnd, Hint};
use gitprio_core::lease::StoreError;
use gitprio_core::workspace::WorkspaceError;

use crate::commands::Command;
use crate::output;
use crate::settings::Settings;

/// A git-native task queue for coding agents.
///
/// Tasks are markdown files under `.tasks/`; one ranked queue answers "what is next?".
#[derive(Debug, Parser)]
#[command(
    name = "gitprio",
    version,
    about,
    long_about,
    after_long_help = exit_codes_help(),
    max_term_width = 100
)]
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

/// An error with the exit status it maps to.
#[derive(Debug)]
pub struct CliError {
    pub code: ExitStatus,
    pub error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for CliError {
    fn from(error: E) -> Self {
        let error = error.into();
        let code = ExitStatus::of_error(error.as_ref());
        CliError { code, error }
    }
}

/// The result of a command: the exit status to end with.
pub type CommandResult = Result<ExitStatus, CliError>;

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

/// Writes `error` for `front`: its causes, outermost first, then its way out in that front
/// end's words (the command to run, or the tool to call).
pub fn message(error: &anyhow::Error, front: FrontEnd) -> String {
    let hint = Hint::of_error(error.as_ref());
    Hint::follow(&format!("{error:#}"), hint.as_ref(), front)
}

/// Lists the exit codes for `gitprio --help`, from [`ExitStatus`] itself.
fn exit_codes_help() -> String {
    let codes: Vec<String> = ExitStatus::ALL
        .iter()
        .map(|status| format!("{} {}", status.code(), status.name().replace('_', " ")))
        .collect();
    format!("Exit codes: {}.", codes.join(", "))
}

/// Parses the command line, runs the command and returns its exit code.
pub fn run() -> ExitCode {
    let matches = Cli::command().get_matches();
    let could_be_offline = could_be_offline(&Cli::command(), &matches);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    let settings = match Settings::resolve(&cli.global) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitStatus::Failure.into();
        }
    };
    match cli.command.run(&settings) {
        Ok(status) => status.into(),
        Err(CliError { code, error }) => {
            let closed = causes(&error).into_iter().any(|cause| {
                cause
                    .downcast_ref::<output::StdoutError>()
                    .is_some_and(output::StdoutError::closed)
            });
            if closed {
                return code.into();
            }
            output::message(&settings, "error", &message(&error, FrontEnd::Cli));
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
            code.into()
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
