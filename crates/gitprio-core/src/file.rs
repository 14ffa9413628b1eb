//! Writing the user's files (task files, AGENTS.md, the config) whole or not at all.
//!
//! A file truncated and then written is half a file after a crash or on a full disk:
//! a task file without its frontmatter, a user's AGENTS.md cut short. Here the new
//! content goes to a temporary file in the same directory, reaches the disk, and then
//! takes the file's place in one rename.

use std::fs::{File, Permissions};
use std::io::{self, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

/// How many symbolic links [`replace`] follows before it gives up, as the kernel does.
const MAX_SYMLINKS: usize = 40;

/// How many random characters the name of a temporary file has.
const RANDOM_CHARACTERS: usize = 6;

/// The names of the temporary files [`replace`] and [`create_new`] write, as a glob
/// (`.<name>.XXXXXX.tmp`): a crash between the write and the rename leaves one behind,
/// which must not be committed as if it were the user's.
pub const TEMPORARY_GLOB: &str = ".*.??????.tmp";

/// Replaces the content of `path` with `bytes`, or creates it: readers and crashes see
/// the old content or the new, never part of it.
///
/// A symbolic link is followed, so that it stays a link (AGENTS.md pointing at
/// CLAUDE.md) and its target gets the content; the file keeps its permissions.
pub fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let target = follow_links(path)?;
    let permissions = match std::fs::metadata(&target) {
        Ok(metadata) => Some(metadata.permissions()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => None,
        Err(error) => return Err(error),
    };
    let file = written(&target, bytes, permissions)?;
    file.persist(&target).map_err(|error| error.error)?;
    sync_directory(&target);
    Ok(())
}

/// Creates `path` holding `bytes`, whole, or fails with [`io::ErrorKind::AlreadyExists`]
/// and leaves the file that is there alone.
pub fn create_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let file = written(path, bytes, None)?;
    file.persist_noclobber(path).map_err(|error| error.error)?;
    sync_directory(path);
    Ok(())
}

/// Returns the file `path` names once every symbolic link on its last component is
/// followed (a link may point at a file that does not exist yet).
fn follow_links(path: &Path) -> io::Result<PathBuf> {
    let mut path = path.to_path_buf();
    for _ in 0..MAX_SYMLINKS {
        match std::fs::read_link(&path) {
            Ok(target) => {
                path = match path.parent() {
                    Some(directory) => directory.join(target),
                    None => target,
                };
            }
            // Not a link (`EINVAL`), or nothing there yet: this is the file.
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::InvalidInput | io::ErrorKind::NotFound
                ) =>
            {
                return Ok(path);
            }
            Err(error) => return Err(error),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("too many levels of symbolic links at {}", path.display()),
    ))
}

/// A temporary file next to `target` holding `bytes`, on the disk, with `permissions`
/// (or those a new file gets: the umask applies).
fn written(
    target: &Path,
    bytes: &[u8],
    permissions: Option<Permissions>,
) -> io::Result<NamedTempFile> {
    let directory = match target.parent() {
        Some(directory) if !directory.as_os_str().is_empty() => directory,
        _ => Path::new("."),
    };
    let name = target
        .file_name()
        .map(|name| name.to_string_lossy())
        .unwrap_or_default();
    let mut file = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .rand_bytes(RANDOM_CHARACTERS)
        .permissions(Permissions::from_mode(0o666))
        .tempfile_in(directory)?;
    if let Some(permissions) = permissions {
        file.as_file().set_permissions(permissions)?;
    }
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    Ok(file)
}

/// Makes the rename into `path`'s directory durable; where a directory cannot be synced,
/// the rename still happened.
fn sync_directory(path: &Path) {
    if let Some(directory) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        let _ = File::open(directory).and_then(|directory| directory.sync_all());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacing_keeps_the_permissions_and_leaves_no_temporary_file() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("run.sh");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, Permissions::from_mode(0o751)).unwrap();
        replace(&path, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o751);
        let names: Vec<_> = std::fs::read_dir(directory.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["run.sh"]);
    }

    /// `gitprio run` leaves files matching [`TEMPORARY_GLOB`] out of its commits: the
    /// temporary file a crash leaves behind must be one of them.
    #[test]
    fn the_temporary_file_is_named_as_the_glob_says() {
        let directory = tempfile::tempdir().unwrap();
        let file = written(&directory.path().join("task.md"), b"half", None).unwrap();
        let name = file.path().file_name().unwrap().to_str().unwrap();
        let glob = globset::Glob::new(TEMPORARY_GLOB)
            .unwrap()
            .compile_matcher();
        assert!(glob.is_match(name), "{name}");
        assert!(!glob.is_match(".task.md.tmp"));
    }

    #[test]
    fn a_link_stays_a_link_and_its_target_gets_the_content() {
        let directory = tempfile::tempdir().unwrap();
        let link = directory.path().join("AGENTS.md");
        std::os::unix::fs::symlink("CLAUDE.md", &link).unwrap();
        replace(&link, b"first").unwrap();
        replace(&link, b"second").unwrap();
        assert!(link.symlink_metadata().unwrap().is_symlink());
        let target = directory.path().join("CLAUDE.md");
        assert_eq!(std::fs::read_to_string(target).unwrap(), "second");
    }

    #[test]
    fn creating_leaves_an_existing_file_alone() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("config.yaml");
        create_new(&path, b"mine").unwrap();
        let error = create_new(&path, b"theirs").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "mine");
    }
}
