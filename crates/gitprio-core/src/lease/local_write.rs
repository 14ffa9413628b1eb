//! Telling a fetch that failed because this clone cannot write (its refs, its objects)
//! from one that could not reach the remote: the first is no network problem, and
//! `--offline` does not help.

use std::path::{Path, PathBuf};

/// What git says when it cannot write into the repository, whatever the path.
const WRITE_FAILURES: &[&str] = &[
    "cannot lock ref",
    "unable to create directory",
    "unable to create temporary file",
    "unable to write",
    "insufficient permission for adding an object",
    "read-only file system",
    "no space left on device",
    "disk quota exceeded",
];

/// Returns where this clone could not be written, when the `detail` of a failed fetch
/// says it could not: the path git names, or the ref file in the way of a ref git could
/// not create, else `git_dir`; `None` for any other failure.
///
/// "Permission denied" counts only with a path inside `git_dir`: from ssh it is the
/// remote refusing a key.
pub(super) fn local_write_failure(detail: &str, git_dir: &Path) -> Option<PathBuf> {
    let lower = detail.to_ascii_lowercase();
    let git_dir_text = git_dir.to_string_lossy();
    let is_write_failure = WRITE_FAILURES.iter().any(|sign| lower.contains(sign))
        || (lower.contains("permission denied") && detail.contains(git_dir_text.as_ref()));
    if !is_write_failure {
        return None;
    }
    let quoted: Vec<&str> = detail.split('\'').skip(1).step_by(2).collect();
    let named = quoted
        .iter()
        .find(|quoted| quoted.starts_with('/'))
        .map(|path| PathBuf::from(path.replace("/./", "/")));
    let in_the_way = || {
        quoted
            .iter()
            .filter(|name| name.starts_with("refs/"))
            .map(|name| git_dir.join(name))
            .find(|path| path.is_file())
    };
    Some(
        named
            .or_else(in_the_way)
            .unwrap_or_else(|| git_dir.to_path_buf()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clone_that_cannot_write_is_told_apart_from_an_unreachable_remote() {
        let git_dir = Path::new("/work/a/.git");
        assert_eq!(
            local_write_failure(
                "error: cannot lock ref 'refs/gitprio/remotes/origin/leases/alpha': unable to create directory for '/work/a/.git/refs/gitprio/remotes/origin/leases/alpha'",
                git_dir
            ),
            Some(PathBuf::from(
                "/work/a/.git/refs/gitprio/remotes/origin/leases/alpha"
            ))
        );
        assert_eq!(
            local_write_failure(
                "error: unable to create temporary file: Read-only file system; fatal: fetch-pack: invalid index-pack output",
                git_dir
            ),
            Some(git_dir.to_path_buf())
        );
        for unreachable in [
            "fatal: unable to connect to 127.0.0.1: Connection refused",
            "git@host: Permission denied (publickey).; fatal: Could not read from remote repository.",
            "fatal: no progress from the remote for 1m",
        ] {
            assert_eq!(
                local_write_failure(unreachable, git_dir),
                None,
                "{unreachable}"
            );
        }
    }
}
