//! `owns` overlap: which ready tasks would change the same files as a task an agent holds.
//!
//! Two tasks overlap when some file could belong to both: a glob of one and a glob of
//! the other match a common path. Globs are anchored at the repository root (`*`
//! crosses `/`, as in `gitprio check`), so every path a glob matches starts with its
//! literal prefix, the text before its first wildcard. If two globs match a common path,
//! one literal prefix therefore starts with the other. The test here is that prefix
//! rule, which also covers files that do not exist yet: it is a superset of "they match
//! a common file at the queue commit", never a subset, so parallel agents are never put
//! on conflicting files. A glob without wildcards names a file or a directory, so it
//! only contains paths equal to it or below it (`src/a` does not contain `src/ab.rs`).
//! Tasks that declare no `owns` claim no boundary and overlap nothing.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};

use super::{Lease, LeaseState};
use crate::queue::Queue;
use crate::task::{Task, TaskId};

/// Returns whether one glob of `left` and one of `right` can match a common path.
pub fn owns_overlap(left: &[String], right: &[String]) -> bool {
    left.iter()
        .any(|one| right.iter().any(|other| globs_overlap(one, other)))
}

/// Returns the ready tasks whose `owns` overlap the `owns` of a task under a live lease at
/// `now` (held and not expired, judged with `skew`).
pub fn overlapping_ready(
    queue: &Queue,
    leases: &BTreeMap<TaskId, Lease>,
    now: Timestamp,
    skew: SignedDuration,
) -> BTreeSet<TaskId> {
    let held: Vec<&Task> = leases
        .values()
        .filter(|lease| {
            lease.record.state == LeaseState::Held && !lease.record.is_expired(now, skew)
        })
        .filter_map(|lease| queue.find(lease.record.task.as_str()))
        .map(|(_, entry)| &entry.task)
        .filter(|task| !task.owns.is_empty())
        .collect();
    if held.is_empty() {
        return BTreeSet::new();
    }
    queue
        .ready()
        .iter()
        .map(|entry| &entry.task)
        .filter(|task| {
            held.iter()
                .any(|other| other.id != task.id && owns_overlap(&task.owns, &other.owns))
        })
        .map(|task| task.id.clone())
        .collect()
}

fn globs_overlap(left: &str, right: &str) -> bool {
    let left = Pattern::new(left);
    let right = Pattern::new(right);
    let (short, long) = if left.prefix.len() <= right.prefix.len() {
        (left, right)
    } else {
        (right, left)
    };
    let Some(rest) = long.prefix.strip_prefix(short.prefix) else {
        return false;
    };
    !short.literal || rest.is_empty() || rest.starts_with('/') || short.prefix.is_empty()
}

/// A glob split at its first wildcard.
#[derive(Debug)]
struct Pattern<'a> {
    /// The text before the first wildcard; a literal's trailing `/` dropped.
    prefix: &'a str,
    /// The glob has no wildcard at all: it names one file or directory.
    literal: bool,
}

impl<'a> Pattern<'a> {
    fn new(glob: &'a str) -> Pattern<'a> {
        let glob = glob.strip_prefix("./").unwrap_or(glob);
        match glob.find(['*', '?', '[', '{', '\\']) {
            Some(index) => Pattern {
                prefix: &glob[..index],
                literal: false,
            },
            None => Pattern {
                prefix: glob.trim_end_matches('/'),
                literal: true,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use globset::Glob;

    use super::*;

    fn owns(globs: &[&str]) -> Vec<String> {
        globs.iter().map(|glob| (*glob).to_owned()).collect()
    }

    #[test]
    fn prefixes_decide() {
        let overlap = |left: &str, right: &str| owns_overlap(&owns(&[left]), &owns(&[right]));
        assert!(overlap("src/auth/**", "src/auth/login.rs"));
        assert!(overlap("src/auth/login.rs", "src/auth/**"));
        assert!(overlap("src/auth", "src/auth/login.rs"));
        assert!(overlap("src/auth/", "src/auth/*.rs"));
        assert!(overlap("src/a*", "src/ab.rs"));
        assert!(overlap("src/*.rs", "src/*_test.rs"));
        assert!(overlap("**/*.md", "src/lib.rs"));
        assert!(overlap("src/lib.rs", "src/lib.rs"));
        assert!(!overlap("src/a", "src/ab.rs"));
        assert!(!overlap("src/auth.rs", "src/auth.rs.bak"));
        assert!(!overlap("src/**", "tests/**"));
        assert!(!overlap("src/billing/*.rs", "src/auth/*.rs"));
        assert!(!owns_overlap(&[], &owns(&["**"])));
    }

    /// The prefix rule never misses two globs that match a common file.
    #[test]
    fn never_misses_a_common_file() {
        let files = [
            "src/auth/login.rs",
            "src/auth/session.rs",
            "src/ab.rs",
            "src/a",
            "src/lib.rs",
            "src/lib_test.rs",
            "tests/auth_login.rs",
            "docs/api.md",
            "README.md",
        ];
        let globs = [
            "src/**",
            "src/auth/**",
            "src/auth/*.rs",
            "src/a*",
            "src/a",
            "src/*_test.rs",
            "src/lib.rs",
            "tests/auth_*.rs",
            "**/*.md",
            "*.md",
            "docs/api.md",
            "{src,tests}/**",
            "src/[al]*.rs",
        ];
        for left in globs {
            for right in globs {
                let matches = |glob: &str, path: &str| {
                    Glob::new(glob).unwrap().compile_matcher().is_match(path)
                        || path.starts_with(&format!("{}/", glob.trim_end_matches('/')))
                };
                let common = files
                    .iter()
                    .any(|path| matches(left, path) && matches(right, path));
                if common {
                    assert!(
                        owns_overlap(&owns(&[left]), &owns(&[right])),
                        "{left} and {right} match a common file"
                    );
                }
            }
        }
    }
}
