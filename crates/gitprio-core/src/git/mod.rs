//! Everything that touches git: reading refs, trees and blobs with gix, and running `git` for the rest.
//!
//! Queue and lease logic reach git only through this module, so the transport can
//! change without touching them.

use std::path::{Path, PathBuf};
use std::process::Command;

mod deadline;
mod retry;
pub use deadline::{DEFAULT_REMOTE_TIMEOUT, STALLED, runs_allowed};
pub use retry::{CONNECTION_TRIES, backoff, is_connection_error, retry_connection};

pub use gix::ObjectId;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a git operation failed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// gix's own error is not kept: it says the same again, with a `Debug` name in it.
    #[error("not a git repository (or any parent up to the filesystem root): {path}")]
    NotARepository { path: PathBuf },
    #[error(
        "repository at {path} uses the reftable format, which gitprio cannot read yet; convert it with `git refs migrate --ref-format=files`"
    )]
    Reftable { path: PathBuf },
    #[error("cannot resolve revision `{rev}`: {reason}")]
    Revision { rev: String, reason: String },
    #[error("cannot read {what} {id}")]
    Object {
        what: &'static str,
        id: String,
        source: BoxError,
    },
    #[error("cannot read reference `{name}`")]
    Reference { name: String, source: BoxError },
    #[error("cannot run `git {args}`")]
    Spawn {
        args: String,
        source: std::io::Error,
    },
}

/// A file in a commit's tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeFile {
    /// Repository-relative path with `/` separators.
    pub path: String,
    pub blob: ObjectId,
}

/// An open repository: gix for local reads and writes, the `git` executable for remotes.
#[derive(Debug)]
pub struct Repository {
    repo: gix::Repository,
    /// See [`Repository::remote_timeout`].
    remote_timeout_millis: std::sync::atomic::AtomicU64,
}

impl Repository {
    /// Opens the repository that contains `directory`, searching upwards like git does.
    pub fn discover(directory: &Path) -> Result<Repository, GitError> {
        let repo = gix::discover(directory).map_err(|_| GitError::NotARepository {
            path: directory.to_path_buf(),
        })?;
        if repo.git_dir().join("reftable").is_dir() {
            return Err(GitError::Reftable {
                path: repo.git_dir().to_path_buf(),
            });
        }
        Ok(Repository {
            repo,
            remote_timeout_millis: std::sync::atomic::AtomicU64::new(
                u64::try_from(DEFAULT_REMOTE_TIMEOUT.as_millis()).unwrap_or(u64::MAX),
            ),
        })
    }

    /// Opens the repository whose objects are under `common_dir` again, to write many
    /// large blobs at once: it writes loose objects without compression (git's
    /// `core.looseCompression=0`), so a blob costs a copy rather than a deflate, and
    /// `git gc` or a push packs them compressed later.
    pub fn open_for_bulk_blobs(common_dir: &Path) -> Result<Repository, GitError> {
        let options = gix::open::Options::default().config_overrides(["core.looseCompression=0"]);
        let repo = gix::open_opts(common_dir, options).map_err(|_| GitError::NotARepository {
            path: common_dir.to_path_buf(),
        })?;
        Ok(Repository {
            repo,
            remote_timeout_millis: std::sync::atomic::AtomicU64::new(
                u64::try_from(DEFAULT_REMOTE_TIMEOUT.as_millis()).unwrap_or(u64::MAX),
            ),
        })
    }

    /// Returns the root of the working tree, if the repository has one.
    pub fn workdir(&self) -> Option<&Path> {
        self.repo.workdir()
    }

    /// Returns the directory shared by all worktrees of this repository (`.git` of the main one).
    pub fn common_dir(&self) -> &Path {
        self.repo.common_dir()
    }

    /// Returns the `.git` directory of this worktree.
    pub fn git_dir(&self) -> &Path {
        self.repo.git_dir()
    }

    /// Returns whether a remote named `name` is configured.
    pub fn has_remote(&self, name: &str) -> bool {
        self.remote_names().iter().any(|remote| remote == name)
    }

    /// Returns the names of the configured remotes, sorted.
    pub fn remote_names(&self) -> Vec<String> {
        self.repo
            .remote_names()
            .iter()
            .map(|remote| String::from_utf8_lossy(AsRef::<[u8]>::as_ref(remote)).into_owned())
            .collect()
    }

    /// Returns the commit a reference points at, following symbolic refs and tags; `None` if absent.
    pub fn reference_commit(&self, name: &str) -> Result<Option<ObjectId>, GitError> {
        let reference_error = |source: BoxError| GitError::Reference {
            name: name.to_owned(),
            source,
        };
        let Some(mut reference) = self
            .repo
            .try_find_reference(name)
            .map_err(|error| reference_error(Box::new(error)))?
        else {
            return Ok(None);
        };
        let id = reference
            .peel_to_id()
            .map_err(|error| reference_error(Box::new(error)))?;
        Ok(Some(id.detach()))
    }

    /// Resolves `rev` (a ref name, a full commit id, or any revision `git rev-parse` knows) to a commit.
    pub fn resolve_commit(&self, rev: &str) -> Result<ObjectId, GitError> {
        if let Ok(id) = ObjectId::from_hex(rev.as_bytes()) {
            return Ok(id);
        }
        if let Ok(Some(id)) = self.reference_commit(rev) {
            return Ok(id);
        }
        let output = self.git(&[
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &format!("{rev}^{{commit}}"),
        ])?;
        let text = String::from_utf8_lossy(&output.stdout);
        ObjectId::from_hex(text.trim().as_bytes()).map_err(|_| GitError::Revision {
            rev: rev.to_owned(),
            reason: "no such commit".to_owned(),
        })
    }

    /// Returns the commit `HEAD` points at, or `None` on an unborn branch.
    pub fn head_commit(&self) -> Result<Option<ObjectId>, GitError> {
        match self.repo.head_id() {
            Ok(id) => Ok(Some(id.detach())),
            Err(_) if self.repo.head().is_ok_and(|head| head.is_unborn()) => Ok(None),
            Err(error) => Err(GitError::Reference {
                name: "HEAD".to_owned(),
                source: Box::new(error),
            }),
        }
    }

    /// Returns the tree of `commit`.
    fn commit_tree(&self, commit: ObjectId) -> Result<ObjectId, GitError> {
        let object_error = |source: BoxError| GitError::Object {
            what: "commit",
            id: commit.to_string(),
            source,
        };
        let commit = self
            .repo
            .find_commit(commit)
            .map_err(|error| object_error(Box::new(error)))?;
        commit
            .tree_id()
            .map(gix::Id::detach)
            .map_err(|error| object_error(Box::new(error)))
    }

    /// Returns the object id at `path` in `commit`'s tree, if present.
    pub fn entry_at(
        &self,
        commit: ObjectId,
        path: &str,
    ) -> Result<Option<(ObjectId, bool)>, GitError> {
        self.entry_in_tree(self.commit_tree(commit)?, path)
    }

    /// Returns every blob under directory `dir` of `commit`, recursively, in path order.
    pub fn files_under(
        &self,
        commit: ObjectId,
        dir: &str,
    ) -> Result<Option<Vec<TreeFile>>, GitError> {
        let Some((tree_id, true)) = self.entry_at(commit, dir)? else {
            return Ok(None);
        };
        self.files_in_tree(tree_id, dir).map(Some)
    }

    /// Returns every blob under tree `tree`, recursively, in path order, with paths starting at `dir`.
    pub fn files_in_tree(&self, tree: ObjectId, dir: &str) -> Result<Vec<TreeFile>, GitError> {
        let mut files = Vec::new();
        self.walk_tree(tree, dir, &mut |path, entry| {
            if entry.mode.is_blob() {
                files.push(TreeFile {
                    path,
                    blob: entry.oid.to_owned(),
                });
            }
        })?;
        files.sort_unstable_by(|left, right| left.path.cmp(&right.path));
        Ok(files)
    }

    /// Returns the object id at `path` below tree `tree`, if present, and whether it is a tree.
    pub fn entry_in_tree(
        &self,
        tree: ObjectId,
        path: &str,
    ) -> Result<Option<(ObjectId, bool)>, GitError> {
        let entry = self
            .find_tree(tree)?
            .lookup_entry_by_path(path)
            .map_err(|error| GitError::Object {
                what: "tree",
                id: tree.to_string(),
                source: Box::new(error),
            })?;
        Ok(entry.map(|entry| (entry.object_id(), entry.mode().is_tree())))
    }

    /// Calls `visit` with the full path of every non-tree entry below `root`.
    fn walk_tree(
        &self,
        root: ObjectId,
        root_path: &str,
        visit: &mut dyn FnMut(String, &gix::objs::tree::EntryRef<'_>),
    ) -> Result<(), GitError> {
        let mut pending = vec![(root_path.to_owned(), root)];
        while let Some((prefix, tree_id)) = pending.pop() {
            let tree = self.find_tree(tree_id)?;
            for entry in tree.iter() {
                let entry = entry.map_err(|error| GitError::Object {
                    what: "tree",
                    id: tree_id.to_string(),
                    source: Box::new(error),
                })?;
                let path = if prefix.is_empty() {
                    entry.filename().to_string()
                } else {
                    format!("{prefix}/{}", entry.filename())
                };
                if entry.mode().is_tree() {
                    pending.push((path, entry.oid().to_owned()));
                } else {
                    visit(path, &entry.inner);
                }
            }
        }
        Ok(())
    }

    /// Returns the size of blob `id` without reading its content.
    pub fn blob_size(&self, id: ObjectId) -> Result<u64, GitError> {
        self.repo
            .find_header(id)
            .map(|header| header.size())
            .map_err(|error| GitError::Object {
                what: "blob",
                id: id.to_string(),
                source: Box::new(error),
            })
    }

    /// Returns the content of blob `id`.
    pub fn read_blob(&self, id: ObjectId) -> Result<Vec<u8>, GitError> {
        self.repo
            .find_blob(id)
            .map(|blob| blob.detach().data)
            .map_err(|error| GitError::Object {
                what: "blob",
                id: id.to_string(),
                source: Box::new(error),
            })
    }

    fn find_tree(&self, id: ObjectId) -> Result<gix::Tree<'_>, GitError> {
        self.repo.find_tree(id).map_err(|error| GitError::Object {
            what: "tree",
            id: id.to_string(),
            source: Box::new(error),
        })
    }

    /// Returns the short name of the branch `HEAD` is on, if any.
    pub fn current_branch(&self) -> Option<String> {
        let name = self.repo.head_name().ok()??;
        Some(name.shorten().to_string())
    }

    /// Returns the full name a symbolic reference points to (`refs/remotes/origin/HEAD` → `refs/remotes/origin/main`).
    pub fn symbolic_target(&self, name: &str) -> Option<String> {
        let reference = self.repo.try_find_reference(name).ok()??;
        reference
            .target()
            .try_name()
            .map(|target| target.as_bstr().to_string())
    }

    /// Returns every reference whose full name starts with `prefix`, with the object it points at.
    pub fn references_under(&self, prefix: &str) -> Result<Vec<(String, ObjectId)>, GitError> {
        let reference_error = |source: BoxError| GitError::Reference {
            name: format!("{prefix}*"),
            source,
        };
        let platform = self
            .repo
            .references()
            .map_err(|error| reference_error(Box::new(error)))?;
        let mut found = Vec::new();
        for reference in platform
            .prefixed(prefix)
            .map_err(|error| reference_error(Box::new(error)))?
        {
            let reference = reference.map_err(|error| reference_error(Box::new(error)))?;
            if let Some(id) = reference.target().try_id() {
                found.push((reference.name().as_bstr().to_string(), id.to_owned()));
            }
        }
        Ok(found)
    }

    /// Returns the message of commit `id`.
    pub fn commit_message(&self, id: ObjectId) -> Result<String, GitError> {
        let object_error = |source: BoxError| GitError::Object {
            what: "commit",
            id: id.to_string(),
            source,
        };
        let commit = self
            .repo
            .find_commit(id)
            .map_err(|error| object_error(Box::new(error)))?;
        let message = commit
            .message_raw()
            .map_err(|error| object_error(Box::new(error)))?;
        Ok(message.to_string())
    }

    /// Writes a commit of `tree` (the empty tree when `None`) with `message` and `parent`,
    /// signed by gitprio at `seconds`.
    pub fn write_commit(
        &self,
        message: &str,
        tree: Option<ObjectId>,
        parent: Option<ObjectId>,
        seconds: i64,
    ) -> Result<ObjectId, GitError> {
        let tree = match tree {
            Some(tree) => tree,
            None => self.write_object(&gix::objs::Tree::empty())?,
        };
        let signature = gitprio_signature(seconds);
        let commit = gix::objs::Commit {
            tree,
            parents: parent.into_iter().collect(),
            author: signature.clone(),
            committer: signature,
            encoding: None,
            message: message.into(),
            extra_headers: Vec::new(),
        };
        self.write_object(&commit)
    }

    /// Writes `bytes` as a blob.
    pub fn write_blob(&self, bytes: &[u8]) -> Result<ObjectId, GitError> {
        self.repo
            .write_blob(bytes)
            .map(gix::Id::detach)
            .map_err(|error| GitError::Object {
                what: "new blob",
                id: String::new(),
                source: Box::new(error),
            })
    }

    /// Writes the trees holding `files` (path → blob, `/`-separated) and returns the root tree.
    pub fn write_tree(
        &self,
        files: &std::collections::BTreeMap<String, ObjectId>,
    ) -> Result<ObjectId, GitError> {
        let mut entries = Vec::new();
        let mut subdirectories: std::collections::BTreeMap<
            &str,
            std::collections::BTreeMap<String, ObjectId>,
        > = std::collections::BTreeMap::new();
        for (path, blob) in files {
            match path.split_once('/') {
                Some((directory, rest)) => {
                    subdirectories
                        .entry(directory)
                        .or_default()
                        .insert(rest.to_owned(), *blob);
                }
                None => entries.push(gix::objs::tree::Entry {
                    mode: gix::objs::tree::EntryKind::Blob.into(),
                    filename: path.as_str().into(),
                    oid: *blob,
                }),
            }
        }
        for (directory, files) in subdirectories {
            entries.push(gix::objs::tree::Entry {
                mode: gix::objs::tree::EntryKind::Tree.into(),
                filename: directory.into(),
                oid: self.write_tree(&files)?,
            });
        }
        // Git's order: names compared as bytes, a tree's name as if it ended in `/`.
        entries.sort();
        self.write_object(&gix::objs::Tree { entries })
    }

    fn write_object(&self, object: &impl gix::objs::WriteTo) -> Result<ObjectId, GitError> {
        self.repo
            .write_object(object)
            .map(gix::Id::detach)
            .map_err(|error| GitError::Object {
                what: "new object",
                id: String::new(),
                source: Box::new(error),
            })
    }

    /// Returns how remote `name` is reached, from its fetch URL.
    pub fn transport(&self, name: &str) -> Transport {
        let Ok(remote) = self.repo.find_remote(name) else {
            return Transport::Other;
        };
        let Some(url) = remote.url(gix::remote::Direction::Fetch) else {
            return Transport::Other;
        };
        match url.scheme {
            gix::url::Scheme::File => match gix::path::from_bstr(&url.path) {
                // A relative path is relative to where `git` runs: see `git_directory`.
                Ok(path) => Transport::Local(self.git_directory().join(path)),
                Err(_) => Transport::Other,
            },
            gix::url::Scheme::Git => Transport::Daemon,
            _ => Transport::Other,
        }
    }

    /// Returns the refs of remote `name` that `wanted` names (a full ref name, or a prefix
    /// ending in `/`), read without fetching anything: straight from the repository's files
    /// for a remote on this machine, with `git ls-remote` for `git://`.
    ///
    /// Returns `None` when that is not possible, or not cheaper than a fetch (ssh, http), or
    /// when anything goes wrong: the caller then fetches, and the fetch reports the problem.
    pub fn peek_remote_refs(&self, name: &str, wanted: &[&str]) -> Option<Vec<(String, ObjectId)>> {
        let is_wanted = |reference: &str| {
            wanted.iter().any(|want| {
                if want.ends_with('/') {
                    reference.starts_with(want)
                } else {
                    reference == *want
                }
            })
        };
        match self.transport(name) {
            Transport::Local(path) => {
                let remote = gix::open_opts(path, gix::open::Options::isolated()).ok()?;
                if remote.git_dir().join("reftable").is_dir() {
                    return None;
                }
                let mut found = Vec::new();
                for want in wanted {
                    if want.ends_with('/') {
                        let platform = remote.references().ok()?;
                        for reference in platform.prefixed(*want).ok()? {
                            let reference = reference.ok()?;
                            let id = reference.target().try_id()?.to_owned();
                            found.push((reference.name().as_bstr().to_string(), id));
                        }
                    } else if let Some(reference) = remote.try_find_reference(*want).ok()? {
                        let id = reference.target().try_id()?.to_owned();
                        found.push((reference.name().as_bstr().to_string(), id));
                    }
                }
                found.retain(|(reference, _)| is_wanted(reference));
                Some(found)
            }
            Transport::Daemon => {
                let patterns: Vec<String> = wanted
                    .iter()
                    .map(|want| {
                        if want.ends_with('/') {
                            format!("{want}*")
                        } else {
                            (*want).to_owned()
                        }
                    })
                    .collect();
                let mut args = vec![
                    "-c",
                    "protocol.version=0",
                    "ls-remote",
                    "--refs",
                    "--end-of-options",
                    name,
                ];
                args.extend(patterns.iter().map(String::as_str));
                let output = self.git_bounded(&args).ok()?;
                if !output.status.success() {
                    return None;
                }
                let stdout = String::from_utf8(output.stdout).ok()?;
                let mut found = Vec::new();
                for line in stdout.lines() {
                    let (oid, reference) = line.split_once('\t')?;
                    if is_wanted(reference) {
                        found.push((
                            reference.to_owned(),
                            ObjectId::from_hex(oid.as_bytes()).ok()?,
                        ));
                    }
                }
                Some(found)
            }
            Transport::Other => None,
        }
    }

    /// Points `name` at `target`, or deletes it with `None`, whatever it held before: for
    /// the local mirrors of remote refs, where the remote is the truth.
    pub fn set_reference(&self, name: &str, target: Option<ObjectId>) -> Result<(), GitError> {
        use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
        let reference_error = |source: BoxError| GitError::Reference {
            name: name.to_owned(),
            source,
        };
        let full_name: gix::refs::FullName =
            name.try_into()
                .map_err(|error: gix::validate::reference::name::Error| {
                    reference_error(Box::new(error))
                })?;
        let change = match target {
            Some(id) => Change::Update {
                log: LogChange {
                    mode: RefLog::AndReference,
                    force_create_reflog: false,
                    message: "gitprio".into(),
                },
                expected: PreviousValue::Any,
                new: gix::refs::Target::Object(id),
            },
            None => Change::Delete {
                expected: PreviousValue::Any,
                log: RefLog::AndReference,
            },
        };
        let signature = gitprio_signature(0);
        let mut time = gix::date::parse::TimeBuf::default();
        self.repo
            .edit_references_as(
                [RefEdit {
                    change,
                    name: full_name,
                    deref: false,
                }],
                Some(signature.to_ref(&mut time)),
            )
            .map(drop)
            .map_err(|error| reference_error(Box::new(error)))
    }

    /// Returns the directory `git` runs in for this repository, which a relative remote URL
    /// (`../remote.git`) is resolved against: the main worktree (or the repository, when it
    /// is bare), also from a linked worktree. `git` itself would resolve it against the
    /// linked worktree, where the URL that works from the main one leads nowhere.
    pub fn git_directory(&self) -> PathBuf {
        let main = (self.repo.kind() == gix::repository::Kind::LinkedWorkTree)
            .then(|| self.repo.main_repo().ok())
            .flatten();
        let repo = main.as_ref().unwrap_or(&self.repo);
        repo.workdir()
            .unwrap_or_else(|| repo.git_dir())
            .to_path_buf()
    }

    /// Runs `git` in this repository and returns its output, whatever its exit status.
    pub fn git(&self, args: &[&str]) -> Result<std::process::Output, GitError> {
        self.git_command(args)
            .output()
            .map_err(|source| GitError::Spawn {
                args: args.join(" "),
                source,
            })
    }

    /// The `git` command [`Repository::git`] runs.
    fn git_command(&self, args: &[&str]) -> Command {
        let mut command = command();
        let directory = self.git_directory();
        if self.repo.kind() == gix::repository::Kind::LinkedWorkTree {
            // Run from the main worktree, but on this one: its `HEAD`, its index.
            let absolute = |path: &Path| self.repo.current_dir().join(path);
            command.arg("--git-dir").arg(absolute(self.git_dir()));
            if let Some(workdir) = self.workdir() {
                command.arg("--work-tree").arg(absolute(workdir));
            }
        }
        command.current_dir(directory).args(args);
        command
    }
}

/// Returns a `git` command that never prompts and speaks English whatever the user's locale.
///
/// gitprio reads git's messages (a ref nobody wrote yet, a lock another fetch holds, a
/// dropped connection), and git translates them and the system's error texts. `LC_ALL`
/// overrides `LANG` and every `LC_*`, and gettext ignores `LANGUAGE` in the C locale.
/// Every `git` that gitprio runs is built here; the agents it starts keep the user's locale.
///
/// A ref's lock is waited for ([`REF_LOCK_WAIT`]), not given up on after git's 100 ms:
/// sibling agents of `gitprio run` fetch into the same lease mirrors of one clone, and a
/// fetch holds the lock of every ref it updates (and of `packed-refs`, with `--prune`)
/// for its whole transaction, which under load is longer than that.
pub fn command() -> Command {
    let mut command = Command::new("git");
    let wait = REF_LOCK_WAIT.as_millis().to_string();
    command
        .args(["-c", &format!("core.filesRefLockTimeout={wait}")])
        .args(["-c", &format!("core.packedRefsTimeout={wait}")])
        // Never wait for a password prompt: an agent has no one to answer it.
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C");
    command
}

/// How long every git that gitprio runs waits for a ref's lock (or `packed-refs`'s) that
/// another git holds. A lock a killed git left stays, and is waited for this long by each
/// command that needs it (see the lease store's `fetch_git`, which removes one on a mirror).
pub const REF_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// How a remote is reached, as far as the cost of asking it for its refs goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A repository on this machine (a path or a `file://` URL): its refs can be read directly.
    Local(PathBuf),
    /// `git://`: a plain TCP connection to `git daemon`.
    Daemon,
    /// Anything else (ssh, http): only `git` knows how to reach it.
    Other,
}

/// The identity gitprio's own commits and ref updates are made as, at `seconds`.
fn gitprio_signature(seconds: i64) -> gix::actor::Signature {
    gix::actor::Signature {
        name: "gitprio".into(),
        email: "gitprio@localhost".into(),
        time: gix::date::Time::new(seconds, 0),
    }
}

/// What a tree entry is, without following it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular or executable file.
    File,
    Directory,
    /// A symbolic link (mode 120000): its blob holds the target path.
    Symlink,
    /// A submodule (mode 160000): a commit of another repository.
    Submodule,
}

/// One entry of a tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeEntry {
    pub name: String,
    pub kind: EntryKind,
    pub id: ObjectId,
}

fn entry_kind(mode: gix::objs::tree::EntryMode) -> EntryKind {
    match mode.kind() {
        gix::objs::tree::EntryKind::Tree => EntryKind::Directory,
        gix::objs::tree::EntryKind::Link => EntryKind::Symlink,
        gix::objs::tree::EntryKind::Commit => EntryKind::Submodule,
        gix::objs::tree::EntryKind::Blob | gix::objs::tree::EntryKind::BlobExecutable => {
            EntryKind::File
        }
    }
}

/// Entry-by-entry tree reads, for resolving links and symlinks inside a commit.
impl Repository {
    /// Returns the object and kind of the entry at `path` in `commit`, without following symlinks.
    pub fn entry_kind_at(
        &self,
        commit: ObjectId,
        path: &str,
    ) -> Result<Option<(ObjectId, EntryKind)>, GitError> {
        let tree_id = self.commit_tree(commit)?;
        if path.is_empty() {
            return Ok(Some((tree_id, EntryKind::Directory)));
        }
        let tree = self.find_tree(tree_id)?;
        let entry = tree
            .lookup_entry_by_path(path)
            .map_err(|error| GitError::Object {
                what: "tree",
                id: tree_id.to_string(),
                source: Box::new(error),
            })?;
        Ok(entry.map(|entry| (entry.object_id(), entry_kind(entry.mode()))))
    }

    /// Returns the entries of directory `dir` (`""` is the root) of `commit` in name order,
    /// or `None` when `dir` is not a directory there.
    pub fn tree_entries_at(
        &self,
        commit: ObjectId,
        dir: &str,
    ) -> Result<Option<Vec<TreeEntry>>, GitError> {
        let Some((tree_id, EntryKind::Directory)) = self.entry_kind_at(commit, dir)? else {
            return Ok(None);
        };
        let tree = self.find_tree(tree_id)?;
        let mut entries = Vec::new();
        for entry in tree.iter() {
            let entry = entry.map_err(|error| GitError::Object {
                what: "tree",
                id: tree_id.to_string(),
                source: Box::new(error),
            })?;
            entries.push(TreeEntry {
                name: entry.filename().to_string(),
                kind: entry_kind(entry.mode()),
                id: entry.oid().to_owned(),
            });
        }
        entries.sort_unstable_by(|left, right| left.name.cmp(&right.name));
        Ok(Some(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(directory: &Path, args: &[&str]) {
        let output = Command::new("git")
            .current_dir(directory)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "git {args:?}: {output:?}");
    }

    #[test]
    fn a_relative_remote_url_means_the_same_from_a_linked_worktree() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        std::fs::create_dir_all(root.join("remote.git")).unwrap();
        std::fs::create_dir_all(root.join("repo")).unwrap();
        git(&root.join("remote.git"), &["init", "--quiet", "--bare"]);
        let repo = root.join("repo");
        git(&repo, &["init", "--quiet", "--initial-branch=main"]);
        git(&repo, &["commit", "--quiet", "--allow-empty", "-m", "one"]);
        git(&repo, &["remote", "add", "origin", "../remote.git"]);
        git(&repo, &["push", "--quiet", "origin", "main"]);
        git(
            &repo,
            &[
                "worktree",
                "add",
                "--quiet",
                "-b",
                "side",
                ".git/side",
                "HEAD",
            ],
        );

        let linked = Repository::discover(&repo.join(".git/side")).unwrap();
        assert_eq!(linked.current_branch().as_deref(), Some("side"));
        assert_eq!(
            linked.transport("origin"),
            Transport::Local(repo.join("../remote.git"))
        );
        let listed = linked.git(&["ls-remote", "origin", "main"]).unwrap();
        assert!(listed.status.success(), "{listed:?}");
        let head = linked.git(&["rev-parse", "--abbrev-ref", "HEAD"]).unwrap();
        assert_eq!(String::from_utf8_lossy(&head.stdout).trim(), "side");
    }
}
