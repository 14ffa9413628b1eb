//! Where leases live (a remote, or this repository's refs) and the one compare-and-swap that moves them.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::sync::Mutex;

use gix::ObjectId;

use super::cache::{self, RecordCache};
use super::{LEASE_PREFIX, Lease, LeaseRecord};
use crate::git::{GitError, Repository, Transport};
use crate::task::TaskId;

/// How many loose lease mirror files make [`LeaseStore::pack_mirrors`] pack them: a few
/// dozen loose files cost less to read than one `git pack-refs` process.
const LOOSE_MIRRORS_BEFORE_PACK: usize = 64;

/// Where the leases that agents coordinate through are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// On a git remote: every change is a push with `--force-with-lease`.
    Remote { remote: String, branch: String },
    /// In this repository's refs, shared by all its worktrees: every change is `git update-ref` with the old value.
    Local,
}

/// The result of one compare-and-swap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CasOutcome {
    /// The ref held the expected value and now holds the new one.
    Won,
    /// The ref had moved: another agent changed it first.
    Lost { detail: String },
}

/// Why a lease operation failed (as opposed to losing a race).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("cannot reach remote `{remote}` ({action}): {detail}")]
    Remote {
        remote: String,
        action: &'static str,
        detail: String,
    },
    /// A fetch reached the remote but could not write what it brought into this clone:
    /// a read-only `.git`, a file where a ref directory belongs, a full disk.
    #[error(
        "cannot write to this repository at {} ({action} from `{remote}`): {detail}; the remote answered, but this clone's git directory is read-only, full, or has a file where git needs a directory",
        path.display()
    )]
    LocalWrite {
        remote: String,
        action: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error(
        "remote `{remote}` has no branch `{branch}` to read the queue from; set `branch:` in .tasks/config.yaml, or push the branch"
    )]
    NoBranch { remote: String, branch: String },
    #[error("remote `{remote}` refused to update `{reference}`: {detail}")]
    Rejected {
        remote: String,
        reference: String,
        detail: String,
    },
    #[error("`git update-ref` failed on `{reference}`: {detail}")]
    UpdateRef { reference: String, detail: String },
    #[error(
        "cannot update `{reference}`: its lock file {} exists (another git process is updating the ref, or one killed mid-update left it behind), so the lease is unchanged; if no git process is running in this repository, remove {} and try again",
        lock.display(),
        lock.display()
    )]
    Locked { reference: String, lock: PathBuf },
    #[error(
        "cannot update `{reference}` on remote `{remote}`: its lock file {} exists there (a git process on the remote was killed mid-update, or one is updating the ref right now), so the lease is unchanged; if no git process is running on the remote, remove {} there and try again (git said: {detail})",
        lock.display(),
        lock.display()
    )]
    RemoteLocked {
        remote: String,
        reference: String,
        lock: PathBuf,
        detail: String,
    },
    /// A push pinned to the queue branch (see [`LeaseStore::pin_queue_branch`]) found
    /// the remote moved on: its lease ref, or with `branch_moved` the queue's branch. The
    /// claim refreshes (the branch too when it moved) and tries again; never shown.
    #[error("the view of remote `{remote}` this clone had is out of date")]
    StaleView { remote: String, branch_moved: bool },
    #[error("cannot write a lease commit: {0}")]
    Write(String),
    #[error(
        "unreadable lease `{reference}`: {problem}; nothing was changed; {}",
        unreadable_advice(delete.as_deref())
    )]
    Unreadable {
        reference: String,
        problem: String,
        /// The command that deletes the ref where it lives; `None` when a newer gitprio
        /// may have written the record: the lease may be live, so upgrading is the fix.
        delete: Option<String>,
    },
}

/// What to do about an unreadable lease: delete it if stale, or upgrade when a newer
/// gitprio may have written it (deleting would free a task someone still works on).
fn unreadable_advice(delete: Option<&str>) -> String {
    delete.map_or_else(
        || format!("{UPGRADE} (the lease may be live)"),
        |delete| format!("if the lease is stale, delete it with `{delete}`"),
    )
}

/// The advice for a lease record a newer gitprio may have written.
pub const UPGRADE: &str = "upgrade gitprio first: a newer one may have written it";

/// Why a lease commit could not be read, as [`BadLease`] and [`StoreError::Unreadable`] say it.
struct Unread {
    problem: String,
    from_newer_gitprio: bool,
}

/// A lease ref that does not hold a readable lease record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLease {
    pub reference: String,
    pub oid: Option<ObjectId>,
    pub problem: String,
    /// A newer gitprio may have written the record (see [`super::RecordError::from_newer_gitprio`]).
    pub from_newer_gitprio: bool,
    /// What to do about it: upgrade when a newer gitprio may have written it, else the
    /// command that deletes the ref where the lease lives, if it is stale.
    pub advice: String,
}

impl BadLease {
    /// The warning every reading command gives about it: the ref, why, and what to do.
    pub fn warning(&self) -> String {
        // The advice never says to delete a record a newer gitprio may have written: the
        // lease may be live, and deleting it would hand a task someone works on to another.
        format!(
            "lease ref `{}` is unreadable ({}); its task is held back; {}",
            self.reference, self.problem, self.advice
        )
    }
}

/// The leases of one repository, in one [`Mode`].
#[derive(Debug)]
pub struct LeaseStore<'repo> {
    repo: &'repo Repository,
    mode: Mode,
    /// The lease mirrors as [`LeaseStore::refresh_with`] last found them equal to the
    /// remote's lease refs, for the next [`LeaseStore::leases`] to take instead of
    /// reading ~hundreds of ref files again; cleared by anything that moves a mirror.
    current_mirrors: Mutex<Option<Vec<(String, ObjectId)>>>,
    /// The queue branch's tip every push also expects on the remote, set by
    /// [`LeaseStore::pin_queue_branch`]; cleared by a refresh.
    pinned_tip: Mutex<Option<ObjectId>>,
    /// Another ref update the next push of a lease ref carries in the same atomic push,
    /// set by [`LeaseStore::carry`]; what became of it is [`LeaseStore::carried`].
    rider: Mutex<Rider>,
}

/// A ref update riding along with the next lease push (`gitprio done`'s usage record).
#[derive(Debug, Default)]
enum Rider {
    #[default]
    None,
    /// To go with the next lease push.
    Waiting(RiderPush),
    /// It landed with the lease push (the push is atomic: both or neither).
    Landed,
    /// Its ref had moved: the lease push went without it.
    Dropped,
}

/// A ref update to carry: move `reference` from `expected` (`None`: absent) to `new`.
#[derive(Debug)]
struct RiderPush {
    reference: String,
    expected: Option<ObjectId>,
    new: ObjectId,
}

impl<'repo> LeaseStore<'repo> {
    pub fn new(repo: &'repo Repository, mode: Mode) -> LeaseStore<'repo> {
        LeaseStore {
            repo,
            mode,
            current_mirrors: Mutex::new(None),
            pinned_tip: Mutex::new(None),
            rider: Mutex::new(Rider::None),
        }
    }

    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    pub fn repo(&self) -> &'repo Repository {
        self.repo
    }

    /// The local ref that mirrors (remote mode) or is (local mode) the lease of `id`.
    pub fn local_ref(&self, id: &TaskId) -> String {
        self.mirror_of(&super::lease_ref(id))
    }

    fn local_prefix(&self) -> String {
        self.mirror_of(LEASE_PREFIX)
    }

    /// The local name of a gitprio ref: itself in local mode, its mirror
    /// (`refs/gitprio/remotes/<remote>/…`) in remote mode.
    pub fn mirror_of(&self, reference: &str) -> String {
        match (&self.mode, reference.strip_prefix("refs/gitprio/")) {
            (Mode::Remote { remote, .. }, Some(rest)) => {
                format!("refs/gitprio/remotes/{remote}/{rest}")
            }
            _ => reference.to_owned(),
        }
    }

    /// Fetches gitprio refs matching `pattern` (`refs/gitprio/usage/*`) into their mirrors.
    pub fn fetch(&self, pattern: &str) -> Result<(), StoreError> {
        let Mode::Remote { remote, .. } = &self.mode else {
            return Ok(());
        };
        self.take_current_mirrors();
        let spec = format!("+{pattern}:{}", self.mirror_of(pattern));
        let mut args = fetch_args(self.repo, remote);
        if pattern.contains('*') {
            args.push("--prune");
        }
        args.extend([remote.as_str(), spec.as_str()]);
        let output = self.fetch_git(&args)?;
        let detail = stderr_summary(&output.stderr);
        if output.status.success() || detail.contains("couldn't find remote ref") {
            // A ref nobody wrote yet is simply absent.
            if !output.status.success() {
                let _ = self.repo.set_reference(&self.mirror_of(pattern), None);
            }
            Ok(())
        } else {
            Err(self.fetch_failure(remote, detail))
        }
    }

    /// The error of a fetch from `remote` that failed with `detail`: this clone could not
    /// write, or else the remote could not be reached.
    fn fetch_failure(&self, remote: &str, detail: String) -> StoreError {
        match super::local_write_failure(&detail, self.repo.common_dir()) {
            Some(path) => StoreError::LocalWrite {
                remote: remote.to_owned(),
                action: "fetch",
                path,
                detail,
            },
            None => StoreError::Remote {
                remote: remote.to_owned(),
                action: "fetch",
                detail,
            },
        }
    }

    /// Runs `git fetch` with `args`, again (5 tries at most) while it fails only because
    /// another fetch in this clone (a sibling agent of `gitprio run`) held a ref's lock
    /// longer than git waits for one ([`crate::git::REF_LOCK_WAIT`]).
    ///
    /// A lock on a mirror (`refs/gitprio/remotes/…`) that stays the very same file through
    /// two tries, each of which waited for it that long, is one a killed git left (a `git
    /// fetch` dies of SIGPIPE when the command that ran it is killed), not a sibling's,
    /// which holds it for the length of one fetch: the mirror being a copy of the remote's
    /// ref, that lock is removed and the fetch tried once more.
    fn fetch_git(&self, args: &[&str]) -> Result<std::process::Output, StoreError> {
        let mut tries = 1;
        let mut last_lock = None;
        loop {
            let output = self.repo.git_remote(args)?;
            let stderr = String::from_utf8_lossy(&output.stderr);
            if output.status.success() || !stderr.contains("cannot lock ref") {
                return Ok(output);
            }
            let mirrors = self.repo.common_dir().join(self.mirror_of("refs/gitprio/"));
            let lock = lock_file(&stderr).filter(|path| {
                matches!(self.mode, Mode::Remote { .. }) && path.starts_with(&mirrors)
            });
            let seen = lock.as_ref().and_then(|path| {
                let metadata = std::fs::metadata(path).ok()?;
                Some((path.clone(), metadata.ino(), metadata.modified().ok()))
            });
            if let (Some(last), Some(now)) = (&last_lock, &seen)
                && last == now
            {
                let _ = std::fs::remove_file(&now.0);
                return Ok(self.repo.git_remote(args)?);
            }
            if tries == 5 {
                return Ok(output);
            }
            last_lock = seen;
            tries += 1;
            std::thread::sleep(std::time::Duration::from_millis(20 * tries));
        }
    }

    /// Packs the lease mirrors into `packed-refs` once [`LOOSE_MIRRORS_BEFORE_PACK`] of
    /// them are loose files (fetches and won pushes write them loose).
    ///
    /// Every claim lists every lease mirror: thousands of loose files are thousands of
    /// opens and reads on each claim, one `packed-refs` file is one read (measured in
    /// `docs/BENCHMARKS.md`, "5,000 lease refs"). A git older than 2.42 has no `--include`:
    /// it packs every ref then, as `git gc` does. Only a speed-up: a pack that fails (a lock
    /// held by a sibling agent's fetch) leaves the refs loose and correct.
    fn pack_mirrors(&self) {
        if !matches!(self.mode, Mode::Remote { .. }) {
            return;
        }
        let directory = self.repo.common_dir().join(self.local_prefix());
        let loose = std::fs::read_dir(directory)
            .map_or(0, |entries| entries.take(LOOSE_MIRRORS_BEFORE_PACK).count());
        if loose < LOOSE_MIRRORS_BEFORE_PACK {
            return;
        }
        let mirrors = format!("{}*", self.mirror_of("refs/gitprio/"));
        let packed = self.repo.git(&["pack-refs", "--include", &mirrors]);
        if !packed.is_ok_and(|output| output.status.success()) {
            let _ = self.repo.git(&["pack-refs", "--all"]);
        }
    }

    /// The ref the queue is read from after [`LeaseStore::refresh`], in remote mode.
    pub fn queue_ref(&self) -> Option<String> {
        match &self.mode {
            Mode::Remote { remote, branch } => Some(format!("refs/remotes/{remote}/{branch}")),
            Mode::Local => None,
        }
    }

    /// Brings the queue's branch and every lease from the remote, in one fetch.
    ///
    /// When the remote's refs can be read without a fetch (a repository on this machine,
    /// or `git://`, see [`Repository::peek_remote_refs`]) and the branch tip and every
    /// lease there equal their local mirrors, there is nothing to fetch and no fetch runs.
    pub fn refresh(&self) -> Result<(), StoreError> {
        self.refresh_with(&[])
    }

    /// [`LeaseStore::refresh`] where the caller expects the remote to have moved on (a
    /// claim whose view shows other agents at work, or that just lost a race): over the
    /// network it fetches at once, without first asking whether anything changed. Over
    /// `git://` that question (`ls-remote`) costs a connection and an answer, two round
    /// trips, as many as a fetch that finds nothing new; when something did change, the
    /// fetch follows it and the claim pays both. A remote on this machine is still read
    /// first: that costs no round trip.
    pub fn refresh_expecting_changes(&self) -> Result<(), StoreError> {
        self.refresh_prefixes(&[], self.transport_is_local())
    }

    /// [`LeaseStore::refresh`], bringing in the same fetch every gitprio ref under each of
    /// `prefixes` too (`refs/gitprio/usage/` for the cockpit).
    pub fn refresh_with(&self, prefixes: &[&str]) -> Result<(), StoreError> {
        self.refresh_prefixes(prefixes, true)
    }

    /// Brings every lease from the remote, and not the queue's branch, in one fetch that
    /// sends nothing of what this clone has (`fetch.negotiationAlgorithm=noop`): for a
    /// claim among agents at work, which then pins its push to the branch tip it knows
    /// ([`LeaseStore::pin_queue_branch`]) and refreshes the branch only when that push
    /// finds it moved.
    ///
    /// Git's negotiation announces every advertised ref this clone already has as a "have"
    /// (one per lease ref, 16, 32, 64, ... a batch), and since lease commits share no
    /// history the server waits for them all: a fetch of a few new leases from a remote
    /// with 300 took 8 round trips over `git://` and 9 over HTTP, against 3 and 4 without
    /// (measured in `docs/BENCHMARKS.md`). A lease commit is tiny and its history short,
    /// so sending a lease's earlier commits again costs less than one round trip. The
    /// branch is left out because the same fetch of a moved branch would bring its whole
    /// history. It speaks protocol version 0 on every transport: its server advertises
    /// its refs unasked, where version 2 asks for them first (over HTTP a request of its
    /// own: 3 round trips instead of 4). Version 0 lists every ref of the remote, not
    /// only the leases, which the claim's push downloads anyway (receive-pack has no
    /// other way). A remote on this machine gets the whole refresh: reading its refs
    /// costs no round trip.
    pub fn refresh_leases(&self) -> Result<(), StoreError> {
        let Mode::Remote { remote, .. } = &self.mode else {
            return Ok(());
        };
        if self.transport_is_local() {
            return self.refresh();
        }
        self.unpin_queue_branch();
        self.take_current_mirrors();
        let spec = format!("+{LEASE_PREFIX}*:{}*", self.mirror_of(LEASE_PREFIX));
        let mut args = vec![
            "-c",
            "fetch.negotiationAlgorithm=noop",
            "-c",
            "protocol.version=0",
        ];
        args.extend(fetch_args(self.repo, remote));
        args.extend(["--prune", "--no-recurse-submodules", remote, &spec]);
        let output = self.fetch_git(&args)?;
        if !output.status.success() {
            return Err(self.fetch_failure(remote, stderr_summary(&output.stderr)));
        }
        self.pack_mirrors();
        Ok(())
    }

    /// Whether the remote is a repository on this machine, whose refs are read from its files.
    fn transport_is_local(&self) -> bool {
        match &self.mode {
            Mode::Remote { remote, .. } => {
                matches!(self.repo.transport(remote), Transport::Local(_))
            }
            Mode::Local => true,
        }
    }

    /// Refreshes like [`LeaseStore::refresh_with`]; with `probe`, first reads the remote's
    /// refs without fetching where that can be done ([`Repository::peek_remote_refs`]) and
    /// fetches only when they differ from the mirrors.
    fn refresh_prefixes(&self, prefixes: &[&str], probe: bool) -> Result<(), StoreError> {
        let Mode::Remote { remote, branch } = &self.mode else {
            return Ok(());
        };
        self.unpin_queue_branch();
        self.take_current_mirrors();
        let mut prefixes_and_leases = vec![LEASE_PREFIX];
        prefixes_and_leases.extend_from_slice(prefixes);
        if probe
            && let Some(lease_mirrors) =
                self.mirrors_are_current(remote, branch, &prefixes_and_leases)
        {
            *self.lock_current_mirrors() = Some(lease_mirrors);
            self.note_refreshed();
            return Ok(());
        }
        let mut specs = vec![format!(
            "+refs/heads/{branch}:refs/remotes/{remote}/{branch}"
        )];
        specs.extend(
            prefixes_and_leases
                .iter()
                .map(|prefix| format!("+{prefix}*:{}*", self.mirror_of(prefix))),
        );
        let mut args = fetch_args(self.repo, remote);
        args.extend(["--prune", "--no-recurse-submodules", remote]);
        args.extend(specs.iter().map(String::as_str));
        let output = self.fetch_git(&args)?;
        let detail = stderr_summary(&output.stderr);
        if output.status.success() {
            self.note_refreshed();
            self.pack_mirrors();
            Ok(())
        } else if detail.contains("couldn't find remote ref") {
            Err(StoreError::NoBranch {
                remote: remote.clone(),
                branch: branch.clone(),
            })
        } else {
            Err(self.fetch_failure(remote, detail))
        }
    }

    /// Makes every push until the next refresh also expect the remote's queue branch at
    /// the tip this clone last fetched, in the same atomic push (a `--force-with-lease`
    /// of the branch to that very tip: git sends nothing for a ref already there, and
    /// rejects the whole push when it moved). A claim made on the view this clone
    /// already has, without a refresh, then lands only where that view still holds: its
    /// lease ref as expected, and no task finished or edited on the branch since. A
    /// pushed swap that loses is then [`StoreError::StaleView`], for the caller to
    /// refresh and choose again. Returns whether it pinned: in remote mode, with a
    /// mirror of the branch.
    pub fn pin_queue_branch(&self) -> bool {
        let Some(queue_ref) = self.queue_ref() else {
            return false;
        };
        let tip = self.repo.reference_commit(&queue_ref).ok().flatten();
        *self.lock_pinned() = tip;
        tip.is_some()
    }

    /// Ends what [`LeaseStore::pin_queue_branch`] began.
    pub fn unpin_queue_branch(&self) {
        *self.lock_pinned() = None;
    }

    fn lock_pinned(&self) -> std::sync::MutexGuard<'_, Option<ObjectId>> {
        self.pinned_tip
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The file whose modification time says when the lease mirrors last matched the remote.
    fn refreshed_marker(&self) -> Option<PathBuf> {
        let Mode::Remote { remote, .. } = &self.mode else {
            return None;
        };
        Some(
            self.repo
                .common_dir()
                .join("gitprio")
                .join("refreshed")
                .join(remote.replace('/', "%2F")),
        )
    }

    /// Notes that the lease mirrors match the remote now; only an aid for readers, so a
    /// failure to note it is ignored.
    fn note_refreshed(&self) {
        if let Some(marker) = self.refreshed_marker() {
            if let Some(directory) = marker.parent() {
                let _ = std::fs::create_dir_all(directory);
            }
            let _ = std::fs::File::create(&marker);
        }
    }

    /// When the lease mirrors last matched the remote (a refresh), by this machine's
    /// clock; `None` when this clone never refreshed them (a fresh `git clone` fetches no
    /// leases). Always `None` in local mode, where there are no mirrors.
    pub fn last_refreshed(&self) -> Option<std::time::SystemTime> {
        std::fs::metadata(self.refreshed_marker()?)
            .and_then(|metadata| metadata.modified())
            .ok()
    }

    /// Returns the mirrors of the refs under `prefixes[0]` when the remote's branch tip
    /// and refs under `prefixes`, read without fetching, are exactly what the local mirrors
    /// hold; `None` when they differ or cannot be read that way.
    fn mirrors_are_current(
        &self,
        remote: &str,
        branch: &str,
        prefixes: &[&str],
    ) -> Option<Vec<(String, ObjectId)>> {
        let branch_ref = format!("refs/heads/{branch}");
        let mut wanted = vec![branch_ref.as_str()];
        wanted.extend_from_slice(prefixes);
        let remote_refs = self.repo.peek_remote_refs(remote, &wanted)?;
        let mut tip = None;
        let mut remote_under: Vec<BTreeMap<String, ObjectId>> =
            vec![BTreeMap::new(); prefixes.len()];
        for (reference, oid) in remote_refs {
            if reference == branch_ref {
                tip = Some(oid);
            } else if let Some((index, name)) = prefixes
                .iter()
                .enumerate()
                .find_map(|(index, prefix)| Some((index, reference.strip_prefix(prefix)?)))
            {
                remote_under[index].insert(name.to_owned(), oid);
            }
        }
        // A missing branch is for the fetch to report.
        let tip = tip?;
        let mirror_tip = self
            .repo
            .reference_commit(&format!("refs/remotes/{remote}/{branch}"));
        if !matches!(mirror_tip, Ok(Some(oid)) if oid == tip) {
            return None;
        }
        let mut first_mirrors = None;
        for (prefix, remote) in prefixes.iter().zip(remote_under) {
            let mirror_prefix = self.mirror_of(prefix);
            let mirrors = self.repo.references_under(&mirror_prefix).ok()?;
            let equal = mirrors
                .iter()
                .map(|(reference, oid)| (&reference[mirror_prefix.len()..], oid))
                .eq(remote.iter().map(|(name, oid)| (name.as_str(), oid)));
            if !equal {
                return None;
            }
            first_mirrors.get_or_insert(mirrors);
        }
        first_mirrors
    }

    /// Takes the lease mirrors [`LeaseStore::refresh_with`] found current, if nothing moved since.
    fn take_current_mirrors(&self) -> Option<Vec<(String, ObjectId)>> {
        self.lock_current_mirrors().take()
    }

    fn lock_current_mirrors(&self) -> std::sync::MutexGuard<'_, Option<Vec<(String, ObjectId)>>> {
        self.current_mirrors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads every lease; refs that hold no readable lease are returned apart, never dropped silently.
    ///
    /// Records already read are taken from a cache keyed by commit id (a commit never
    /// changes), so a queue with hundreds of lease refs does not inflate hundreds of
    /// objects on every claim.
    pub fn leases(&self) -> Result<(BTreeMap<TaskId, Lease>, Vec<BadLease>), StoreError> {
        let prefix = self.local_prefix();
        let mut leases = BTreeMap::new();
        let mut bad = Vec::new();
        let cache_path = self
            .repo
            .common_dir()
            .join("gitprio")
            .join("cache")
            .join(cache::FILE);
        let mut cached = RecordCache::load(&cache_path);
        let mut misnamed = Vec::new();
        let mut missed = 0;
        let references = match self.take_current_mirrors() {
            Some(references) => references,
            None => self.repo.references_under(&prefix)?,
        };
        for (reference, oid) in references {
            let name = &reference[prefix.len()..];
            let lives_at = format!("{LEASE_PREFIX}{name}");
            let Some(id) = TaskId::new(name) else {
                bad.push(BadLease {
                    reference,
                    oid: Some(oid),
                    problem: "the ref name is not a task id".to_owned(),
                    from_newer_gitprio: false,
                    advice: self.unreadable_advice(&lives_at, false),
                });
                continue;
            };
            let read = if let Some(record) = cached.take(&oid) {
                Ok(record)
            } else {
                missed += 1;
                self.read(oid)
            };
            match read {
                Ok(record) if record.task == id => {
                    leases.insert(
                        id,
                        Lease {
                            reference: super::lease_ref(&record.task),
                            oid,
                            record,
                        },
                    );
                }
                Ok(record) => {
                    bad.push(BadLease {
                        reference,
                        oid: Some(oid),
                        problem: format!("the record names task `{}`", record.task),
                        from_newer_gitprio: false,
                        advice: self.unreadable_advice(&lives_at, false),
                    });
                    misnamed.push((oid, record));
                }
                Err(unread) => bad.push(BadLease {
                    reference,
                    oid: Some(oid),
                    advice: self.unreadable_advice(&lives_at, unread.from_newer_gitprio),
                    problem: unread.problem,
                    from_newer_gitprio: unread.from_newer_gitprio,
                }),
            }
        }
        // Rewriting the whole cache for the lease or two that moved since the last claim
        // costs more than reading their commits again, so it waits until more have.
        if missed + cached.left() >= RecordCache::STALE_BEFORE_SAVE {
            let records = leases
                .values()
                .map(|lease: &Lease| (lease.oid, &lease.record))
                .chain(misnamed.iter().map(|(oid, record)| (*oid, record)));
            // Only a speed-up: a cache that cannot be written is read from the objects next time.
            RecordCache::save(&cache_path, records);
        }
        Ok((leases, bad))
    }

    /// Reads the lease of `id` as last seen locally.
    pub fn lease(&self, id: &TaskId) -> Result<Option<Lease>, StoreError> {
        let Some(oid) = self.repo.reference_commit(&self.local_ref(id))? else {
            return Ok(None);
        };
        let reference = super::lease_ref(id);
        let record = self.read(oid).map_err(|unread| StoreError::Unreadable {
            delete: (!unread.from_newer_gitprio).then(|| self.delete_command(&reference)),
            reference: reference.clone(),
            problem: unread.problem,
        })?;
        Ok(Some(Lease {
            reference,
            oid,
            record,
        }))
    }

    /// The command that deletes lease ref `reference` where the lease lives.
    fn delete_command(&self, reference: &str) -> String {
        match &self.mode {
            Mode::Remote { .. } => format!("git push {} :{reference}", self.remote_name()),
            Mode::Local => format!("git update-ref -d {reference}"),
        }
    }

    /// What to do about lease ref `reference` that holds no record this gitprio can read.
    fn unreadable_advice(&self, reference: &str, from_newer_gitprio: bool) -> String {
        unreadable_advice(
            (!from_newer_gitprio)
                .then(|| self.delete_command(reference))
                .as_deref(),
        )
    }

    fn read(&self, oid: ObjectId) -> Result<LeaseRecord, Unread> {
        let message = self.repo.commit_message(oid).map_err(|error| Unread {
            problem: format!("{error} (not a commit?)"),
            from_newer_gitprio: false,
        })?;
        LeaseRecord::from_message(&message).map_err(|error| Unread {
            problem: error.to_string(),
            from_newer_gitprio: error.from_newer_gitprio(),
        })
    }

    /// Writes the commit recording `record` on top of `parent`; nothing points at it yet.
    pub fn write(
        &self,
        record: &LeaseRecord,
        parent: Option<ObjectId>,
    ) -> Result<ObjectId, StoreError> {
        self.repo
            .write_commit(
                &record.to_message(),
                None,
                parent,
                record.renewed_at.as_second(),
            )
            .map_err(|error| StoreError::Write(error.to_string()))
    }

    /// Moves the lease of `id` from `expected` (`None`: must not exist) to `new` (`None`: delete).
    pub fn compare_and_swap(
        &self,
        id: &TaskId,
        expected: Option<ObjectId>,
        new: Option<ObjectId>,
    ) -> Result<CasOutcome, StoreError> {
        self.compare_and_swap_ref(&super::lease_ref(id), expected, new)
    }

    /// Moves gitprio ref `reference` from `expected` (`None`: must not exist) to `new` (`None`: delete).
    pub fn compare_and_swap_ref(
        &self,
        reference: &str,
        expected: Option<ObjectId>,
        new: Option<ObjectId>,
    ) -> Result<CasOutcome, StoreError> {
        self.take_current_mirrors();
        match &self.mode {
            Mode::Local => self.update_ref(reference, true, expected, new),
            Mode::Remote { remote, .. } => {
                let rider = if reference.starts_with(super::LEASE_PREFIX) {
                    self.take_rider()
                } else {
                    None
                };
                let (outcome, carried) =
                    self.push_unless_locked(remote, reference, expected, new, rider.as_ref())?;
                if outcome != CasOutcome::Won && self.lock_pinned().is_some() {
                    return Err(StoreError::StaleView {
                        remote: remote.clone(),
                        branch_moved: false,
                    });
                }
                if outcome == CasOutcome::Won {
                    // Mirror what the remote now holds; a failure here only delays what
                    // `status` shows until the next fetch, the remote is the truth.
                    let _ = self.repo.set_reference(&self.mirror_of(reference), new);
                    if let Some(rider) = rider.as_ref().filter(|_| carried) {
                        let _ = self
                            .repo
                            .set_reference(&self.mirror_of(&rider.reference), Some(rider.new));
                        *self.lock_rider() = Rider::Landed;
                    }
                    self.pack_mirrors();
                }
                Ok(outcome)
            }
        }
    }

    /// Makes the next push of a lease ref (remote mode) also move `reference` from
    /// `expected` (`None`: must not exist) to `new`, in the same atomic push: one round
    /// trip for both. If `reference` moved meanwhile, the lease push goes alone (the
    /// caller then writes `reference` itself); [`LeaseStore::carried`] says which.
    pub fn carry(&self, reference: &str, expected: Option<ObjectId>, new: ObjectId) {
        *self.lock_rider() = Rider::Waiting(RiderPush {
            reference: reference.to_owned(),
            expected,
            new,
        });
    }

    /// Whether the update given to [`LeaseStore::carry`] landed; forgets it.
    pub fn carried(&self) -> bool {
        matches!(std::mem::take(&mut *self.lock_rider()), Rider::Landed)
    }

    /// Takes the update waiting to ride along, noting it dropped until it lands.
    fn take_rider(&self) -> Option<RiderPush> {
        let mut state = self.lock_rider();
        match std::mem::replace(&mut *state, Rider::Dropped) {
            Rider::Waiting(rider) => Some(rider),
            other => {
                *state = other;
                None
            }
        }
    }

    fn lock_rider(&self) -> std::sync::MutexGuard<'_, Rider> {
        self.rider
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn remote_name(&self) -> &str {
        match &self.mode {
            Mode::Remote { remote, .. } => remote,
            Mode::Local => "(local)",
        }
    }

    /// Runs `git update-ref`; with `checked`, only if the ref still holds `expected`.
    ///
    /// A ref another process has locked (a `.lock` file) is tried again a few times: git
    /// holds the lock only while it updates the ref. A lock that stays while the ref still
    /// holds `expected` is an error naming it (a process killed mid-update leaves one
    /// behind), not a lost race.
    fn update_ref(
        &self,
        reference: &str,
        checked: bool,
        expected: Option<ObjectId>,
        new: Option<ObjectId>,
    ) -> Result<CasOutcome, StoreError> {
        const LOCK_TRIES: u64 = 6;
        let zero = ObjectId::null(gix::hash::Kind::Sha1);
        let expected_text = expected.unwrap_or(zero).to_string();
        let mut args = vec!["update-ref", "-m", "gitprio"];
        let new = new.map(|oid| oid.to_string());
        match &new {
            Some(new) => args.extend([reference, new.as_str()]),
            None => args.extend(["-d", reference]),
        }
        if checked {
            args.push(&expected_text);
        }
        let mut tries = 1;
        loop {
            let output = self.repo.git(&args)?;
            if output.status.success() {
                return Ok(CasOutcome::Won);
            }
            let detail = stderr_summary(&output.stderr);
            let Some(lock) = lock_file(&detail) else {
                if checked
                    && [
                        "but expected",
                        "already exists",
                        "unable to resolve reference",
                        "cannot lock ref",
                    ]
                    .iter()
                    .any(|sign| detail.contains(sign))
                {
                    return Ok(CasOutcome::Lost { detail });
                }
                return Err(StoreError::UpdateRef {
                    reference: reference.to_owned(),
                    detail,
                });
            };
            if tries < LOCK_TRIES {
                std::thread::sleep(std::time::Duration::from_millis(25 * tries));
                tries += 1;
                continue;
            }
            if checked && self.repo.reference_commit(reference)? != expected {
                return Ok(CasOutcome::Lost { detail });
            }
            return Err(StoreError::Locked {
                reference: reference.to_owned(),
                lock,
            });
        }
    }

    /// Pushes like [`LeaseStore::push`], again (a few times) while the remote's ref is
    /// locked and still holds `expected`: another push holds the lock for milliseconds.
    ///
    /// A lock that stays while the ref still holds `expected` is an error naming it (a git
    /// process killed on the remote leaves one behind), never a lost race: the holder
    /// still holds its lease. A locked ref that moved meanwhile is a lost race.
    fn push_unless_locked(
        &self,
        remote: &str,
        reference: &str,
        expected: Option<ObjectId>,
        new: Option<ObjectId>,
        rider: Option<&RiderPush>,
    ) -> Result<(CasOutcome, bool), StoreError> {
        const LOCK_TRIES: u64 = 3;
        let mut tries = 1;
        let mut rider = rider;
        loop {
            let (lock, detail) = match self.push(remote, reference, expected, new, rider)? {
                Pushed::RiderMoved => {
                    // Its ref moved (another writer of the ledger): the lease goes alone.
                    rider = None;
                    continue;
                }
                Pushed::Done(outcome) if outcome != CasOutcome::Won && rider.is_some() => {
                    // An atomic push fails whole, and the remote may blame either ref
                    // (one whose ref moved on the remote is "failed to update ref", the
                    // other "atomic push failed"): the lease alone tells whose it was.
                    rider = None;
                    continue;
                }
                Pushed::Done(outcome) => return Ok((outcome, rider.is_some())),
                Pushed::BranchMoved => {
                    return Err(StoreError::StaleView {
                        remote: remote.to_owned(),
                        branch_moved: true,
                    });
                }
                Pushed::Locked { lock, detail } => (lock, detail),
            };
            if self.remote_value(remote, reference)? != expected {
                return Ok((CasOutcome::Lost { detail }, false));
            }
            if tries == LOCK_TRIES {
                return Err(StoreError::RemoteLocked {
                    remote: remote.to_owned(),
                    reference: reference.to_owned(),
                    lock,
                    detail,
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(25 * tries));
            tries += 1;
        }
    }

    fn push(
        &self,
        remote: &str,
        reference: &str,
        expected: Option<ObjectId>,
        new: Option<ObjectId>,
        rider: Option<&RiderPush>,
    ) -> Result<Pushed, StoreError> {
        let lease = format!(
            "--force-with-lease={reference}:{}",
            expected.map(|oid| oid.to_string()).unwrap_or_default()
        );
        let refspec = format!(
            "{}:{reference}",
            new.map(|oid| oid.to_string()).unwrap_or_default()
        );
        let pinned = match (*self.lock_pinned(), &self.mode) {
            (Some(tip), Mode::Remote { branch, .. }) => Some((
                format!("--force-with-lease=refs/heads/{branch}:{tip}"),
                format!("{tip}:refs/heads/{branch}"),
            )),
            _ => None,
        };
        // Never `--force` and never a `+` refspec: either would disable the check.
        let mut args = vec!["push", "--porcelain", "--atomic", "--no-verify", &lease];
        args.extend(
            pinned
                .as_ref()
                .map(|(branch_lease, _)| branch_lease.as_str()),
        );
        let rider_specs = rider.map(|rider| {
            (
                format!(
                    "--force-with-lease={}:{}",
                    rider.reference,
                    rider
                        .expected
                        .map(|oid| oid.to_string())
                        .unwrap_or_default()
                ),
                format!("{}:{}", rider.new, rider.reference),
            )
        });
        args.extend(rider_specs.as_ref().map(|(lease, _)| lease.as_str()));
        args.extend([remote, &refspec]);
        args.extend(pinned.as_ref().map(|(_, branch_spec)| branch_spec.as_str()));
        args.extend(rider_specs.as_ref().map(|(_, spec)| spec.as_str()));
        let output = self.push_through_dropped_connections(remote, reference, new, &args)?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line_of = |wanted: &str| {
            stdout.lines().find_map(|line| {
                let mut fields = line.split('\t');
                let flag = fields.next()?;
                let spec = fields.next()?;
                let summary = fields.next().unwrap_or_default();
                (spec.rsplit(':').next() == Some(wanted)).then_some((flag, summary))
            })
        };
        let line = line_of(reference);
        if let (Some(_), Mode::Remote { branch, .. }) = (&pinned, &self.mode)
            && let Some(("!", summary)) = line_of(&format!("refs/heads/{branch}"))
            // The ref that failed an atomic push has git's reason; the others say "atomic".
            && !summary.contains("atomic")
        {
            return Ok(Pushed::BranchMoved);
        }
        if let Some(rider) = rider
            && let Some(("!", summary)) = line_of(&rider.reference)
            && !summary.contains("atomic")
        {
            return Ok(Pushed::RiderMoved);
        }
        let stderr = stderr_summary(&output.stderr);
        match line {
            Some(("*" | "+" | " " | "-" | "=", _)) if output.status.success() => {
                Ok(Pushed::Done(CasOutcome::Won))
            }
            Some(("!", _)) if lock_file(&stderr).is_some() => Ok(Pushed::Locked {
                lock: lock_file(&stderr).expect("checked"),
                detail: remote_error(&stderr),
            }),
            Some(("!", summary)) if is_race(summary) => Ok(Pushed::Done(CasOutcome::Lost {
                detail: summary.trim().to_owned(),
            })),
            Some((_, summary)) => Err(StoreError::Rejected {
                remote: remote.to_owned(),
                reference: reference.to_owned(),
                detail: format!("{} {}", summary.trim(), stderr_summary(&output.stderr))
                    .trim()
                    .to_owned(),
            }),
            None => {
                // The push may have landed before the connection failed: ask once.
                if self.remote_value(remote, reference).ok() == Some(new) {
                    return Ok(Pushed::Done(CasOutcome::Won));
                }
                Err(StoreError::Remote {
                    remote: remote.to_owned(),
                    action: "push",
                    detail: stderr_summary(&output.stderr),
                })
            }
        }
    }

    /// Runs the push `args`, again (with backoff and jitter, up to
    /// [`crate::git::CONNECTION_TRIES`] runs) while it fails with a connection error
    /// before the remote answered for `reference`: a reset, a refusal, a full daemon (a
    /// `git://` push whose connection closes at once fails without a word).
    ///
    /// Such a failure is never a lost race. The push may have landed before the
    /// connection broke, and pushing again would then find the ref moved (by itself) and
    /// report stale info, so before each new try the remote is asked (`ls-remote`)
    /// whether `reference` holds `new` already; the caller reads the answer from a
    /// successful `ls-remote` the same way.
    fn push_through_dropped_connections(
        &self,
        remote: &str,
        reference: &str,
        new: Option<ObjectId>,
        args: &[&str],
    ) -> Result<std::process::Output, StoreError> {
        let mut tries = 1;
        loop {
            let output = self.repo.git_bounded(args)?;
            let answered = String::from_utf8_lossy(&output.stdout).lines().any(|line| {
                line.split('\t')
                    .nth(1)
                    .is_some_and(|spec| spec.ends_with(reference))
            });
            if output.status.success()
                || answered
                || tries >= crate::git::runs_allowed(&output.stderr)
                || !(output.stderr.trim_ascii().is_empty()
                    || crate::git::is_connection_error(&String::from_utf8_lossy(&output.stderr)))
                || self.remote_value(remote, reference).ok() == Some(new)
            {
                return Ok(output);
            }
            tries += 1;
            std::thread::sleep(crate::git::backoff(tries));
        }
    }

    /// Returns what `reference` holds on the remote now (`git ls-remote`).
    fn remote_value(&self, remote: &str, reference: &str) -> Result<Option<ObjectId>, StoreError> {
        let output = self
            .repo
            .git_remote(&["ls-remote", "--refs", remote, reference])?;
        if !output.status.success() {
            return Err(StoreError::Remote {
                remote: remote.to_owned(),
                action: "ls-remote",
                detail: stderr_summary(&output.stderr),
            });
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        Ok(stdout
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .find(|(_, name)| *name == reference)
            .and_then(|(oid, _)| ObjectId::from_hex(oid.as_bytes()).ok()))
    }
}

/// What one push came to.
enum Pushed {
    Done(CasOutcome),
    /// A push pinned to the queue branch found the branch moved (whatever its lease ref did).
    BranchMoved,
    /// The ref riding along had moved: nothing landed.
    RiderMoved,
    /// The remote could not lock the ref: its `.lock` file exists there.
    Locked {
        lock: PathBuf,
        detail: String,
    },
}

/// The start of every `git fetch` gitprio runs from `remote`: quiet, and without the work
/// a fetch does for a person (tags, `FETCH_HEAD`, forced-update notes, maintenance).
///
/// Over `git://` it speaks protocol version 0: version 2 sends its ref listing request
/// as many small writes, and on a plain TCP socket (git sets no `TCP_NODELAY`) Nagle's
/// algorithm and delayed ACKs stall each such request ~40 ms; version 0's server
/// advertises its refs unasked (measured in `docs/BENCHMARKS.md`).
fn fetch_args(repo: &Repository, remote: &str) -> Vec<&'static str> {
    let mut args = vec!["-c", "advice.fetchShowForcedUpdates=false"];
    if repo.transport(remote) == Transport::Daemon {
        args.extend(["-c", "protocol.version=0"]);
    }
    args.extend([
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-write-fetch-head",
        "--no-auto-maintenance",
        "--no-show-forced-updates",
    ]);
    args
}

/// The lock file git could not create, as a "cannot lock ref" message names it
/// ("Unable to create '<path>.lock': File exists"), with git's `/./` taken out.
fn lock_file(detail: &str) -> Option<PathBuf> {
    let (_, rest) = detail.split_once("Unable to create '")?;
    let (path, after) = rest.split_once('\'')?;
    if !after.starts_with(": File exists") {
        return None;
    }
    let path = PathBuf::from(path.replace("/./", "/"));
    (path.extension()? == "lock").then_some(path)
}

/// The remote's own error line out of a push's stderr (`remote: error: cannot lock ref ...`).
fn remote_error(stderr: &str) -> String {
    stderr
        .split("; ")
        .find_map(|line| line.strip_prefix("remote: error: "))
        .unwrap_or(stderr)
        .trim()
        .to_owned()
}

/// Whether a rejected push lost a race (the ref moved) rather than failing for another reason.
fn is_race(summary: &str) -> bool {
    [
        "stale info",
        "failed to update ref",
        "atomic transaction failed",
        "atomic push failed",
        "already exists",
        "fetch first",
        "non-fast-forward",
    ]
    .iter()
    .any(|sign| summary.contains(sign))
}

fn stderr_summary(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    if lines.is_empty() {
        "git gave no message".to_owned()
    } else {
        lines.join("; ")
    }
}
