//! `gitprio check`: whole-queue validation on top of per-file parsing.

use std::collections::HashSet;

use globset::Glob;

use crate::config::Config;
use crate::context::{self, ContextError, Files, NoteKind, Origin, Reader, Resolved};
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

/// Returns the problems of the links each task hands to an agent, read from `files`: missing
/// files and headings and unsafe links are errors, documents a bundle would skip are warnings.
///
/// It checks the config's `context` list, each task's `context` list and the links of each
/// task's body; links inside those documents are followed only when a bundle is built. The
/// problems [`validate`] reports (a `context` path that is missing or leaves the repository) are
/// not repeated.
pub fn validate_links(
    tasks: &[Task],
    config: &Config,
    files: &impl Files,
) -> Result<Vec<Diagnostic>, ContextError> {
    let mut reader = Reader::new(files);
    let mut diagnostics = Vec::new();
    let positions = context::config_positions(files, &config.context)?;
    for (entry, position) in config.context.iter().zip(positions) {
        if let Some(diagnostic) =
            link_problem(&mut reader, entry, "", crate::CONFIG_PATH, position)?
        {
            diagnostics.push(diagnostic);
        }
    }
    for task in tasks {
        for reference in context::task_references(task) {
            if reference.origin == Origin::TaskContext {
                let path = reference
                    .link
                    .split('#')
                    .next()
                    .unwrap_or(&reference.link)
                    .trim_end_matches('/');
                if escapes_repository(path) || files.kind(path)?.is_none() {
                    continue;
                }
            }
            let (file, position) = &reference.at;
            if let Some(diagnostic) = link_problem(
                &mut reader,
                &reference.link,
                &reference.linking_file,
                file,
                *position,
            )? {
                diagnostics.push(diagnostic);
            }
        }
    }
    Ok(diagnostics)
}

/// Returns an error for each task type that the config file in `files` names in a type-keyed
/// setting (`budgets`, `type_tiers`, `plan.types`) but does not list in its `types`: a
/// misspelt type there would silently never apply.
///
/// A type that some task has is left to that task's own error, which says the same.
pub fn validate_config_types(
    tasks: &[Task],
    files: &impl Files,
) -> Result<Vec<Diagnostic>, ContextError> {
    let text = context::config_text(files)?;
    let mut problems = config_type_problems(tasks, &text);
    problems.extend(config_tier_problems(&text));
    Ok(problems)
}

/// A tier in `type_tiers` that `tiers` does not list: `gitprio run` could not pick a model
/// for a task of that type.
fn config_tier_problems(config_text: &str) -> Vec<Diagnostic> {
    let (config, _) = Config::parse(crate::CONFIG_PATH, config_text);
    let listed: Vec<&str> = config
        .tiers
        .0
        .iter()
        .map(|(tier, _)| tier.as_str())
        .collect();
    Config::tier_mentions(config_text)
        .into_iter()
        .filter(|mention| config.tiers.position(&mention.tier).is_none())
        .map(|mention| {
            let allowed = if listed.is_empty() {
                "`tiers` lists none".to_owned()
            } else {
                format!("`tiers` lists {}", listed.join(", "))
            };
            Diagnostic::error(
                DiagnosticKind::Config,
                crate::CONFIG_PATH,
                mention.position,
                format!(
                    "unknown tier `{}` for type `{}` in `type_tiers`: {allowed} (add it to `tiers`, or correct the name)",
                    mention.tier, mention.task_type
                ),
            )
        })
        .collect()
}

fn config_type_problems(tasks: &[Task], config_text: &str) -> Vec<Diagnostic> {
    let (config, _) = Config::parse(crate::CONFIG_PATH, config_text);
    let used: HashSet<&str> = tasks
        .iter()
        .filter_map(|task| task.task_type.as_deref())
        .collect();
    Config::type_mentions(config_text)
        .into_iter()
        .filter(|mention| !config.allows_type(&mention.name) && !used.contains(mention.name.as_str()))
        .map(|mention| {
            Diagnostic::error(
                DiagnosticKind::UnknownType,
                crate::CONFIG_PATH,
                mention.position,
                format!(
                    "unknown type `{}` in `{}`: no task has it, and allowed are {} (add it to `types`, or correct the name)",
                    mention.name,
                    mention.setting,
                    config.types.join(", ")
                ),
            )
        })
        .collect()
}

fn link_problem(
    reader: &mut Reader<'_, impl Files>,
    link: &str,
    linking_file: &str,
    path: &str,
    position: Position,
) -> Result<Option<Diagnostic>, ContextError> {
    let Resolved::Problem(kind, message) = reader.resolve(link, linking_file)? else {
        return Ok(None);
    };
    Ok(Some(match kind {
        NoteKind::Skipped => {
            Diagnostic::warning(DiagnosticKind::MissingContext, path, position, message)
        }
        NoteKind::MissingFile | NoteKind::MissingSection | NoteKind::Refused => {
            Diagnostic::error(DiagnosticKind::MissingContext, path, position, message)
        }
    }))
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
    use crate::context::WorktreeFiles;
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

    #[test]
    fn reports_config_types_that_are_not_allowed_and_no_task_has() {
        let config = "types: [bug, feature, ops]\nbudgets:\n  bug: 200k\n  opps: 1m\n  chore: 10k\ntype_tiers:\n  ops: small\nplan:\n  types: [spkie, research]\n";
        let tasks = vec![task("a", "type: ops"), task("b", "type: research")];
        let messages: Vec<String> = config_type_problems(&tasks, config)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            messages,
            [
                ".tasks/config.yaml:4:3: error: unknown type `opps` in `budgets`: no task has it, and allowed are bug, feature, ops (add it to `types`, or correct the name)",
                ".tasks/config.yaml:5:3: error: unknown type `chore` in `budgets`: no task has it, and allowed are bug, feature, ops (add it to `types`, or correct the name)",
                ".tasks/config.yaml:9:11: error: unknown type `spkie` in `plan.types`: no task has it, and allowed are bug, feature, ops (add it to `types`, or correct the name)",
            ]
        );
        // `research` is reported at the task that has it, not twice.
        let task_errors: Vec<String> =
            validate(&tasks, &Config::parse(crate::CONFIG_PATH, config).0, &[])
                .iter()
                .map(|diagnostic| diagnostic.message.clone())
                .collect();
        assert_eq!(
            task_errors,
            [
                "unknown type `research`: allowed are bug, feature, ops (set `types` in .tasks/config.yaml)"
            ]
        );
        assert_eq!(config_type_problems(&[], "plan:\n  types: [spike]\n"), []);
        assert_eq!(config_type_problems(&[], ""), []);
    }

    #[test]
    fn reports_missing_linked_files_and_headings_and_unsafe_links() {
        let root = tempfile::tempdir().unwrap();
        let task_text = "---\ntitle: a\ncontext: [docs/api.md#errrors, docs/gone.md, docs/api.md#errors]\n---\nSee [errors](../docs/api.md#errors), [passwd](../../etc/passwd),\n[nope](../docs/nope.md), [logo](../logo.png) and <https://example.com>.\n";
        let files = [
            (".tasks/a.md", task_text.as_bytes()),
            (
                ".tasks/config.yaml",
                b"context:\n  - CONVENTIONS.md\n  - docs/absent.md#x\n".as_slice(),
            ),
            ("CONVENTIONS.md", b"# Conventions\n".as_slice()),
            ("docs/api.md", b"# API\n## Errors\nshape\n".as_slice()),
            ("logo.png", b"\x89PNG\0\0".as_slice()),
        ];
        for (path, bytes) in files {
            let full = root.path().join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, bytes).unwrap();
        }
        let paths: Vec<String> = files.iter().map(|(path, _)| (*path).to_owned()).collect();
        let tasks = vec![
            parse_task(".tasks/a.md", task_text.as_bytes())
                .task
                .unwrap(),
        ];
        let config = Config {
            context: vec!["CONVENTIONS.md".to_owned(), "docs/absent.md#x".to_owned()],
            ..Config::default()
        };
        let tree = WorktreeFiles::new(root.path().to_path_buf(), &paths);
        let mut diagnostics = validate(&tasks, &config, &paths);
        diagnostics.extend(validate_links(&tasks, &config, &tree).unwrap());
        let messages: Vec<String> = sorted(diagnostics)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            messages,
            [
                ".tasks/a.md:3:11: error: link `docs/api.md#errrors`: `docs/api.md` has no heading `#errrors`; did you mean `#errors`?",
                ".tasks/a.md:3:32: error: `context` path `docs/gone.md` does not exist",
                ".tasks/a.md:5:38: error: link `../../etc/passwd` leaves the repository; refused",
                ".tasks/a.md:6:1: error: link `../docs/nope.md`: `docs/nope.md` does not exist in the repository",
                ".tasks/a.md:6:26: warning: link `../logo.png`: `logo.png` is a binary file; skipped",
                ".tasks/config.yaml:3:5: error: link `docs/absent.md#x`: `docs/absent.md` does not exist in the repository",
            ]
        );
    }

    #[test]
    fn reports_type_tiers_that_send_a_type_to_an_unlisted_tier() {
        let config = "tiers:\n  small: claude-haiku-4-5\n  large: claude-opus-4-1\ntype_tiers:\n  bug: large\n  spike: huge\n";
        let messages: Vec<String> = config_tier_problems(config)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            messages,
            [
                ".tasks/config.yaml:6:10: error: unknown tier `huge` for type `spike` in `type_tiers`: `tiers` lists small, large (add it to `tiers`, or correct the name)"
            ]
        );
        let messages: Vec<String> = config_tier_problems("type_tiers: { docs: small }\n")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            messages,
            [
                ".tasks/config.yaml:1:21: error: unknown tier `small` for type `docs` in `type_tiers`: `tiers` lists none (add it to `tiers`, or correct the name)"
            ]
        );
    }
}
