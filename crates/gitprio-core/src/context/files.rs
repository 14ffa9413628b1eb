//! The file trees context is read from (a commit, or the working tree for `check`), and path
//! resolution inside them that follows symlinks only while they stay in the repository.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use gix::ObjectId;

use super::ContextError;
use super::link::{self, Refusal};
use crate::git::{EntryKind, Repository};

/// How many symlinks one lookup follows before it gives up (a symlink cycle).
const MAX_SYMLINK_HOPS: usize = 16;

/// A tree of files that context documents are read from. Paths are repository-relative,
/// `/`-separated and already normalized; nothing here follows a symlink by itself.
pub trait Files {
    /// Returns what is at `path`, `None` when nothing is.
    fn kind(&self, path: &str) -> Result<Option<EntryKind>, ContextError>;
    /// Returns the size of file `path` in bytes, without reading it.
    fn size(&self, path: &str) -> Result<u64, ContextError>;
    /// Returns the content of file `path`, or the target of symlink `path`.
    fn read(&self, path: &str) -> Result<Vec<u8>, ContextError>;
    /// Returns the names and kinds of the entries directly inside directory `path`, in name order.
    fn list(&self, path: &str) -> Result<Vec<(String, EntryKind)>, ContextError>;
}

/// The files of one commit, read from git objects. Each path is looked up in the tree once.
#[derive(Debug)]
pub struct CommitFiles<'a> {
    repo: &'a Repository,
    commit: ObjectId,
    entries: RefCell<HashMap<String, Option<(ObjectId, EntryKind)>>>,
}

impl<'a> CommitFiles<'a> {
    pub fn new(repo: &'a Repository, commit: ObjectId) -> Self {
        Self {
            repo,
            commit,
            entries: RefCell::new(HashMap::new()),
        }
    }

    fn entry(&self, path: &str) -> Result<Option<(ObjectId, EntryKind)>, ContextError> {
        if let Some(entry) = self.entries.borrow().get(path) {
            return Ok(*entry);
        }
        let entry = self.repo.entry_kind_at(self.commit, path)?;
        self.entries.borrow_mut().insert(path.to_owned(), entry);
        Ok(entry)
    }

    fn object(&self, path: &str) -> Result<ObjectId, ContextError> {
        match self.entry(path)? {
            Some((id, _)) => Ok(id),
            None => Err(ContextError::Vanished {
                path: path.to_owned(),
            }),
        }
    }
}

impl Files for CommitFiles<'_> {
    fn kind(&self, path: &str) -> Result<Option<EntryKind>, ContextError> {
        Ok(self.entry(path)?.map(|(_, kind)| kind))
    }

    fn size(&self, path: &str) -> Result<u64, ContextError> {
        Ok(self.repo.blob_size(self.object(path)?)?)
    }

    fn read(&self, path: &str) -> Result<Vec<u8>, ContextError> {
        Ok(self.repo.read_blob(self.object(path)?)?)
    }

    fn list(&self, path: &str) -> Result<Vec<(String, EntryKind)>, ContextError> {
        Ok(self
            .repo
            .tree_entries_at(self.commit, path)?
            .unwrap_or_default()
            .into_iter()
            .map(|entry| (entry.name, entry.kind))
            .collect())
    }
}

/// The files of a working tree that git knows (tracked, or untracked and not ignored), for `check`.
#[derive(Debug)]
pub struct WorktreeFiles {
    root: PathBuf,
    files: BTreeSet<String>,
    directories: BTreeSet<String>,
}

impl WorktreeFiles {
    /// Returns the tree of `paths` (repository-relative) under `root`; directories are inferred.
    pub fn new(root: PathBuf, paths: &[String]) -> Self {
        let directories = paths
            .iter()
            .flat_map(|path| {
                path.match_indices('/')
                    .map(move |(index, _)| path[..index].to_owned())
            })
            .collect();
        Self {
            root,
            files: paths.iter().cloned().collect(),
            directories,
        }
    }

    fn io_error(&self, path: &str, source: std::io::Error) -> ContextError {
        ContextError::Io {
            path: self.root.join(path),
            source,
        }
    }
}

impl Files for WorktreeFiles {
    fn kind(&self, path: &str) -> Result<Option<EntryKind>, ContextError> {
        if path.is_empty() || self.directories.contains(path) {
            return Ok(Some(EntryKind::Directory));
        }
        if !self.files.contains(path) {
            return Ok(None);
        }
        match std::fs::symlink_metadata(self.root.join(path)) {
            Ok(metadata) if metadata.file_type().is_symlink() => Ok(Some(EntryKind::Symlink)),
            // Git lists a submodule as one path; on disk it is a directory.
            Ok(metadata) if metadata.is_dir() => Ok(Some(EntryKind::Submodule)),
            Ok(_) => Ok(Some(EntryKind::File)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(self.io_error(path, error)),
        }
    }

    fn size(&self, path: &str) -> Result<u64, ContextError> {
        std::fs::symlink_metadata(self.root.join(path))
            .map(|metadata| metadata.len())
            .map_err(|error| self.io_error(path, error))
    }

    fn read(&self, path: &str) -> Result<Vec<u8>, ContextError> {
        let full = self.root.join(path);
        let metadata =
            std::fs::symlink_metadata(&full).map_err(|error| self.io_error(path, error))?;
        if metadata.file_type().is_symlink() {
            let target = std::fs::read_link(&full).map_err(|error| self.io_error(path, error))?;
            return Ok(target.to_string_lossy().into_owned().into_bytes());
        }
        std::fs::read(&full).map_err(|error| self.io_error(path, error))
    }

    fn list(&self, path: &str) -> Result<Vec<(String, EntryKind)>, ContextError> {
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        let mut names = BTreeSet::new();
        for candidate in self.files.iter().chain(&self.directories) {
            if let Some(rest) = candidate.strip_prefix(&prefix)
                && !rest.is_empty()
                && !rest.contains('/')
            {
                names.insert(rest.to_owned());
            }
        }
        let mut entries = Vec::with_capacity(names.len());
        for name in names {
            let full = format!("{prefix}{name}");
            if let Some(kind) = self.kind(&full)? {
                entries.push((name, kind));
            }
        }
        Ok(entries)
    }
}

/// What a repository path turned out to be, symlinks followed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    File(String),
    Directory(String),
    Submodule(String),
    Missing,
    /// A symlink on the way points outside the repository, into `.git/`, or in a cycle.
    Refused(String),
}

/// Looks `path` up in `files`, following symlinks (the last component or any directory on the
/// way) only while their targets stay inside the repository.
pub fn lookup(files: &impl Files, path: &str) -> Result<Lookup, ContextError> {
    let mut path = path.to_owned();
    for _ in 0..=MAX_SYMLINK_HOPS {
        match files.kind(&path)? {
            Some(EntryKind::File) => return Ok(Lookup::File(path)),
            Some(EntryKind::Directory) => return Ok(Lookup::Directory(path)),
            Some(EntryKind::Submodule) => return Ok(Lookup::Submodule(path)),
            Some(EntryKind::Symlink) => match follow(files, &path)? {
                Ok(target) => path = target,
                Err(refusal) => return Ok(Lookup::Refused(refusal)),
            },
            None => {
                let Some((link, rest)) = symlinked_directory(files, &path)? else {
                    return Ok(Lookup::Missing);
                };
                match follow(files, &link)? {
                    Ok(target) if target.is_empty() => path = rest,
                    Ok(target) => path = format!("{target}/{rest}"),
                    Err(refusal) => return Ok(Lookup::Refused(refusal)),
                }
            }
        }
    }
    Ok(Lookup::Refused(format!(
        "goes through more than {MAX_SYMLINK_HOPS} symlinks (a symlink cycle?)"
    )))
}

/// Finds the first directory component of `path` that is a symlink: `(link, rest of the path)`.
fn symlinked_directory(
    files: &impl Files,
    path: &str,
) -> Result<Option<(String, String)>, ContextError> {
    for (index, _) in path.match_indices('/') {
        let prefix = &path[..index];
        match files.kind(prefix)? {
            Some(EntryKind::Directory) => {}
            Some(EntryKind::Symlink) => {
                return Ok(Some((prefix.to_owned(), path[index + 1..].to_owned())));
            }
            _ => return Ok(None),
        }
    }
    Ok(None)
}

/// Returns the repository path symlink `link` points to, or why it is refused.
fn follow(files: &impl Files, link: &str) -> Result<Result<String, String>, ContextError> {
    let target = files.read(link)?;
    let Ok(target) = String::from_utf8(target) else {
        return Ok(Err(format!(
            "goes through symlink `{link}`, whose target is not UTF-8"
        )));
    };
    let outside = |why: &str| {
        Err(format!(
            "goes through symlink `{link}` -> `{target}`, which {why}"
        ))
    };
    if target.starts_with(['/', '\\']) || target.get(1..2) == Some(":") {
        return Ok(outside("points outside the repository"));
    }
    Ok(match link::join(link::parent(link), &target) {
        Ok(path) => Ok(path),
        Err(Refusal::GitInternals) => outside("points into `.git/`"),
        Err(_) => outside("points outside the repository"),
    })
}
