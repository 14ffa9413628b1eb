//! `gitprio check`: validate the task files in the working tree, for CI on pull requests.

use clap::{Args, ValueEnum};
use gitprio_core::context::WorktreeFiles;
use gitprio_core::git::Repository;
use gitprio_core::reply::CheckReply;
use gitprio_core::source;
use gitprio_core::{Diagnostic, Severity, check};

use crate::cli::CommandResult;
use crate::settings::Settings;
use crate::{exit_code, output};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Treat warnings (unknown keys, `owns` globs that match nothing) as errors.
    #[arg(long)]
    pub strict: bool,
    /// Output format; `github` emits workflow annotations (default when `GITHUB_ACTIONS=true`).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Print JSON: `{"ok", "errors", "warnings", "files", "diagnostics": [...]}`.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `path:line:column: severity: message`, one per line.
    Human,
    /// The human lines plus `::error file=...,line=...,col=...::message` annotations.
    Github,
}

pub fn run(settings: &Settings, args: &CheckArgs) -> CommandResult {
    let repo = Repository::discover(&settings.directory)?;
    let loaded = source::load_for_check(&repo)?;
    let paths = repository_paths(settings, &repo)?;
    let mut diagnostics = loaded.diagnostics.clone();
    diagnostics.extend(check::validate(&loaded.tasks, &loaded.config, &paths));
    if let Some(root) = repo.workdir() {
        let files = WorktreeFiles::new(root.to_path_buf(), &paths);
        diagnostics.extend(check::validate_links(
            &loaded.tasks,
            &loaded.config,
            &files,
        )?);
        diagnostics.extend(check::validate_config_types(&loaded.tasks, &files)?);
    }
    if args.strict {
        for diagnostic in &mut diagnostics {
            diagnostic.severity = Severity::Error;
        }
    }
    let files = paths
        .iter()
        .filter(|path| path.starts_with(".tasks/") && source::is_task_path(path))
        .count();
    let reply = CheckReply::new(files, check::sorted(diagnostics));
    let CheckReply {
        errors, warnings, ..
    } = reply;
    if args.json {
        output::print_json(&reply)?;
    } else {
        let diagnostics = &reply.diagnostics;
        for diagnostic in diagnostics {
            crate::output::outln!("{diagnostic}")?;
        }
        let format = args.format.unwrap_or(if settings.github_actions {
            Format::Github
        } else {
            Format::Human
        });
        if format == Format::Github {
            for diagnostic in diagnostics {
                crate::output::outln!("{}", annotation(diagnostic))?;
            }
        }
        let summary = format!(
            "{errors} {}, {warnings} {} in {files} task {}",
            output::plural(errors, "error"),
            output::plural(warnings, "warning"),
            output::plural(files, "file")
        );
        output::message(
            settings,
            if errors == 0 { "info" } else { "error" },
            &summary,
        );
    }
    Ok(if errors == 0 {
        exit_code::SUCCESS
    } else {
        exit_code::FAILURE
    })
}

/// Lists the files git knows in the working tree: tracked, plus untracked ones not ignored.
///
/// A path that is not UTF-8 cannot be a task file, nor what `owns` or `context` names (they
/// are UTF-8 strings), so it is left out, with one warning that names the first.
fn repository_paths(settings: &Settings, repo: &Repository) -> anyhow::Result<Vec<String>> {
    let output = repo.git(&[
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
    ])?;
    anyhow::ensure!(
        output.status.success(),
        "`git ls-files` failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let mut not_utf8 = Vec::new();
    let mut paths: Vec<String> = output
        .stdout
        .split(|&byte| byte == 0)
        .filter(|path| !path.is_empty())
        .filter_map(|path| {
            let text = std::str::from_utf8(path).ok();
            if text.is_none() {
                not_utf8.push(path);
            }
            text.map(str::to_owned)
        })
        .collect();
    if let Some(first) = not_utf8.first() {
        output::message(
            settings,
            "warning",
            &format!(
                "skipped {} not in UTF-8, such as {}: no task file, `owns` or `context` can name {}",
                output::counted(not_utf8.len(), "path"),
                String::from_utf8_lossy(first),
                if not_utf8.len() == 1 { "it" } else { "them" },
            ),
        );
    }
    paths.sort_unstable();
    paths.dedup();
    Ok(paths)
}

/// Formats a GitHub Actions workflow command for `diagnostic`.
pub fn annotation(diagnostic: &Diagnostic) -> String {
    let command = match diagnostic.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let escape = |text: &str| {
        text.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    let property = |text: &str| escape(text).replace(':', "%3A").replace(',', "%2C");
    format!(
        "::{command} file={},line={},col={}::{}",
        property(&diagnostic.path),
        diagnostic.line,
        diagnostic.column,
        escape(&diagnostic.message)
    )
}
