//! `gitprio check`: whole-queue validation on top of per-file parsing.

use std::collections::HashSet;

use globset::Glob;

use crate::config::Config;
use crate::diagnostic::{Diagnostic, DiagnosticKind, Position};
use crate::queue::dependency_cycles;
use crate::task::Task;

/// Returns the problems of the task graph and of each task's references into the repository.
///
/// `paths` lists every file of the repository (repository-relative, `/`-separated);
/// directories are inferred from it.
pub fn validate(tasks: &[Task], config: &Config, paths: &[String]) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    let ids: HashSet<&str> = tasks.iter().map(|task| task.id.as_str()).collect();
    let directories: HashSet<&str> = paths
        .iter()
        .flat_map(|path| {
            path.match_indices('/')
                .map(move |(index, _)| &path[..index])
        })
        .collect();
    let files: HashSet<&str> = paths.iter().map(String::as_str).collect();
    let cycles = dependency_cycles(tasks);
    let mut reported_cycles: HashSet<Vec<String>> = HashSet::new();
    for task in tasks {
        for (index, dependency) in task.depends_on.iter().enumerate() {
            if !ids.contains(dependency.as_str()) {
                diagnostics.push(Diagnostic::error(
                    DiagnosticKind::UnknownDependency,
                    &task.path,
                    item_position(task, "depends_on", index),
                    format!("unknown dependency `{dependency}`: no task has this id"),
                ));
            }
        }
        if let Some(cycle) = cycles.get(&task.id) {
            let mut members: Vec<String> = cycle[..cycle.len() - 1]
                .iter()
                .map(ToString::to_string)
                .collect();
            members.sort();
            if reported_cycles.insert(members) {
                let shown: Vec<&str> = cycle.iter().map(super::task::TaskId::as_str).collect();
                diagnostics.push(Diagnostic::error(
                    DiagnosticKind::DependencyCycle,
                    &task.path,
                    task.position_of("depends_on"),
                    format!("dependency cycle: {}", shown.join(" -> ")),
                ));
            }
        }
        if let Some(task_type) = &task.task_type
            && !config.allows_type(task_type)
        {
            diagnostics.push(Diagnostic::error(
                    DiagnosticKind::UnknownType,
                    &task.path,
                    task.position_of("type"),
                    format!("unknown type `{task_type}`: allowed are {} (set `types` in .tasks/config.yaml)", config.types.join(", ")),
                ));
        }
        for (index, pattern) in task.owns.iter().enumerate() {
            let position = item_position(task, "owns", index);
            match Glob::new(pattern) {
                Ok(glob) => {
                    let matcher = glob.compile_matcher();
                    let prefix = pattern.trim_end_matches("/**").trim_end_matches('/');
                    let matches_something = paths.iter().any(|path| matcher.is_match(path))
                        || directories.contains(prefix);
                    if !matches_something {
                        diagnostics.push(Diagnostic::warning(
                            DiagnosticKind::OwnsMatchesNothing,
                            &task.path,
                            position,
                            format!("`owns` glob `{pattern}` matches no file in the repository"),
                        ));
                    }
                }
                Err(error) => diagnostics.push(Diagnostic::error(
                    DiagnosticKind::InvalidValue,
                    &task.path,
                    position,
                    format!("invalid `owns` glob `{pattern}`: {}", error.kind()),
                )),
            }
        }
        for (index, entry) in task.context.iter().enumerate() {
            let path = entry
                .split('#')
                .next()
                .unwrap_or(entry)
                .trim_end_matches('/');
            let position = item_position(task, "context", index);
            if escapes_repository(path) {
                diagnostics.push(Diagnostic::error(
                    DiagnosticKind::MissingContext,
                    &task.path,
                    position,
                    format!("`context` path `{entry}` leaves the repository; use a repository-relative path"),
                ));
            } else if !files.contains(path) && !directories.contains(path) {
                diagnostics.push(Diagnostic::error(
                    DiagnosticKind::MissingContext,
                    &task.path,
                    position,
                    format!("`context` path `{path}` does not exist"),
                ));
            }
        }
    }
    diagnostics
}

/// Returns the diagnostics sorted by file, line and column, as `check` prints them.
pub fn sorted(mut diagnostics: Vec<Diagnostic>) -> Vec<Diagnostic> {
    diagnostics.sort_by(|left, right| {
        (&left.path, left.line, left.column).cmp(&(&right.path, right.line, right.column))
    });
    let mut seen: HashSet<String> = HashSet::new();
    diagnostics.retain(|diagnostic| seen.insert(diagnostic.to_string()));
    diagnostics
}

fn item_position(task: &Task, field: &str, index: usize) -> Position {
    task.positions
        .get(&format!("{field}[{index}]"))
        .or_else(|| task.positions.get(field))
        .copied()
        .unwrap_or(Position::START)
}

fn escapes_repository(path: &str) -> bool {
    path.starts_with('/') || path.split('/').any(|part| part == "..")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::parse_task;

    fn task(id: &str, frontmatter: &str) -> Task {
        let text = format!("---\ntitle: {id}\n{frontmatter}\n---\n");
        parse_task(&format!(".tasks/{id}.md"), text.as_bytes())
            .task
            .unwrap()
    }

    #[test]
    fn reports_graph_and_reference_problems_at_their_lines() {
        let tasks = vec![
            task("a", "depends_on: [b, ghost]\ntype: bugg"),
            task(
                "b",
                "depends_on: [a]\nowns: [\"src/**\", \"nothing/*.rs\"]\ncontext: [docs/x.md#setup, docs/missing.md, ../etc/passwd]",
            ),
        ];
        let paths = vec!["src/lib.rs".to_owned(), "docs/x.md".to_owned()];
        let messages: Vec<String> = sorted(validate(&tasks, &Config::default(), &paths))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            messages,
            [
                ".tasks/a.md:3:1: error: dependency cycle: a -> b -> a",
                ".tasks/a.md:3:17: error: unknown dependency `ghost`: no task has this id",
                ".tasks/a.md:4:1: error: unknown type `bugg`: allowed are bug, feature, refactor, test, docs, deps, spike, chore (set `types` in .tasks/config.yaml)",
                ".tasks/b.md:4:18: warning: `owns` glob `nothing/*.rs` matches no file in the repository",
                ".tasks/b.md:5:28: error: `context` path `docs/missing.md` does not exist",
                ".tasks/b.md:5:45: error: `context` path `../etc/passwd` leaves the repository; use a repository-relative path",
            ]
        );
    }
}
