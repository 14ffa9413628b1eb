//! Argument parsing and the one place where errors become exit codes.

use std::io::Write as _;
use std::process::ExitCode;

use clap::{ArgMatches, Args, CommandFactory as _, FromArgMatches as _, Parser};
use gitprio_core::ExitStatus;
use gitprio_core::hint::{FrontEnd, Hint};
use gitprio_core::lease::StoreError;
use gitprio_core::workspace::WorkspaceError;

use crate::commands::Command;
use crate::output;
use crate::settings::Settings;

/// A git-native task queue for autonomous coding agents.
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
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    let settings = match Settings::resolve(&cli.global) {
        Ok(settings) => settings,
        Err(error) => {
            // Not `eprintln!`, which panics when stderr is closed (see `output::message`);
            // without settings there is no color to decide.
            let _ = writeln!(std::io::stderr(), "error: {error:#}");
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
            // The command tree is built again only here, on this error's path: building it
            // costs startup time every command pays.
            if unreachable && could_be_offline(&Cli::command(), &matches) {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The keys named at the top level of each JSON object written in `help` (`{"a": ...,
    /// "b"}`): what the help of a `--json` flag promises.
    fn promised_keys(help: &str) -> BTreeSet<String> {
        let mut keys = BTreeSet::new();
        let mut depth = 0;
        let mut quoted: Option<String> = None;
        for character in help.chars() {
            match (&mut quoted, character) {
                (Some(key), '"') => {
                    if depth == 1 {
                        keys.insert(std::mem::take(key));
                    }
                    quoted = None;
                }
                (Some(key), other) => key.push(other),
                (None, '"') => quoted = Some(String::new()),
                (None, '{' | '[') => depth += 1,
                (None, '}' | ']') => depth -= 1,
                (None, _) => {}
            }
        }
        keys
    }

    /// The top-level keys of the replies `docs/schema/<name>.json` and `<name>-*.json`
    /// describe.
    fn reply_keys(name: &str) -> BTreeSet<String> {
        let directory = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schema");
        let mut keys = BTreeSet::new();
        for entry in std::fs::read_dir(&directory).unwrap() {
            let path = entry.unwrap().path();
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            if stem != name && !stem.starts_with(&format!("{name}-")) {
                continue;
            }
            let schema: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            if let Some(properties) = schema["properties"].as_object() {
                keys.extend(properties.keys().cloned());
            }
        }
        keys
    }

    /// Every subcommand with a `--json` flag, by its path (`usage show`), with that flag's help.
    fn json_flags(command: &clap::Command, path: &str, found: &mut Vec<(String, String)>) {
        for subcommand in command.get_subcommands() {
            let path = format!("{path} {}", subcommand.get_name())
                .trim()
                .to_owned();
            if let Some(json) = subcommand
                .get_arguments()
                .find(|arg| arg.get_id() == "json")
            {
                let help = json.get_long_help().or(json.get_help());
                found.push((
                    path.clone(),
                    help.map(ToString::to_string).unwrap_or_default(),
                ));
            }
            json_flags(subcommand, &path, found);
        }
    }

    #[test]
    fn the_help_of_every_json_flag_names_keys_its_reply_has() {
        let mut flags = Vec::new();
        json_flags(&Cli::command(), "", &mut flags);
        assert!(flags.len() > 15, "{flags:?}");
        for (command, help) in flags {
            let reply = reply_keys(&command.replace(' ', "-"));
            if reply.is_empty() {
                // Replies without a published schema (`top --once --json`, `report --json`)
                // are documented where their command is.
                continue;
            }
            let promised = promised_keys(&help);
            let unknown: Vec<&String> = promised.difference(&reply).collect();
            assert!(
                unknown.is_empty(),
                "`gitprio {command} --json` promises {unknown:?}, which its reply lacks: {help}"
            );
            let lease_only = help.contains("the lease as JSON");
            assert!(
                !lease_only || reply.len() == 1,
                "`gitprio {command} --json` says it prints the lease, but its reply has {reply:?}"
            );
        }
    }

    #[test]
    fn short_and_long_help_say_what_gitprio_is_in_the_same_words() {
        let mut command = Cli::command();
        let short = command.render_help().to_string();
        let long = command.render_long_help().to_string();
        let first = |text: &str| {
            text.lines()
                .next()
                .unwrap_or_default()
                .trim_end_matches('.')
                .to_owned()
        };
        assert_eq!(first(&short), first(&long), "-h:\n{short}\n--help:\n{long}");
    }

    #[test]
    fn reports_say_that_since_and_until_select_requests_by_their_own_time() {
        let command = Cli::command();
        let report = command.find_subcommand("report").unwrap();
        for flag in ["since", "until"] {
            let help = report
                .get_arguments()
                .find(|arg| arg.get_id() == flag)
                .and_then(clap::Arg::get_help)
                .unwrap()
                .to_string();
            assert!(
                help.contains("requests") && !help.contains("runs started"),
                "--{flag}: {help}"
            );
        }
    }
}
