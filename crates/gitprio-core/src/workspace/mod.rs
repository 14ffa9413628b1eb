//! One repository, its config and its lease store, and every use case the front ends (the
//! CLI, the MCP server, `gitprio run`, `gitprio top`, the GitHub Action) call on it: claim,
//! heartbeat, release, submit, revoke, unpark, gc, record usage, read the runs as reports
//! count them. Each returns typed values (see [`crate::reply`]) and typed errors, and
//! prints nothing: what a person should read goes through [`Notices`].

mod acceptance;
mod claim;
mod complete;
mod error;
mod gc;
mod heartbeat;
mod held;
mod prices;
mod queue;
mod release;
mod remote;
mod revoke;
mod run;
mod runs;
mod status;
mod submit;
#[cfg(test)]
mod tests;
mod unpark;
mod usage;

use jiff::Timestamp;

pub use acceptance::{Check, tail};
pub use claim::{Claim, ClaimRequest, ClaimedTask, error_chain, report_commands};
pub use complete::{Completed, Completion, DONE_LOCK, Submission, Verify};
pub use error::WorkspaceError;
pub use gc::collect;
pub use heartbeat::{Renewed, progress};
pub use held::{held_id, held_id_to_finish, task_id};
pub use prices::{PRICES_PATH, RepositoryPrices, price_overrides};
pub use queue::{
    Mirrors, NothingReady, lease_holds, load_tasks, nothing_ready, parse_cache_path, read_body,
    save_parse_cache,
};
pub use release::{GiveBack, release_reply};
pub use remote::store_mode;
pub use revoke::Revoked;
pub use run::run_meta;
pub use runs::{SettledRuns, expired_at, in_flight, settle_open_runs};
pub use submit::Submitted;
pub use usage::{RecordInput, RecordOrigin, Recorded, over_budget};

use crate::config::Config;
use crate::diagnostic::Diagnostic;
use crate::git::Repository;
use crate::lease::{self, LeaseContext, LeaseStore, Mode, parse_duration};
use crate::usage::Ledger;

/// What a use case tells the person running it, besides its result: the front end decides
/// how (stderr lines, a log, nothing).
pub trait Notices {
    /// The problems met reading the task files (files skipped, tasks held back).
    fn diagnostics(&self, diagnostics: &[Diagnostic]);
    /// Something went wrong that did not stop the use case.
    fn warning(&self, text: &str);
    /// Something worth knowing.
    fn info(&self, text: &str);
}

/// [`Notices`] that go nowhere: for tests and for callers that gather the results only.
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

impl Notices for Silent {
    fn diagnostics(&self, _: &[Diagnostic]) {}
    fn warning(&self, _: &str) {}
    fn info(&self, _: &str) {}
}

/// Who runs a use case, and when: resolved by the front end from its arguments and
/// environment, so the core reads neither.
#[derive(Clone, Debug)]
pub struct Invocation {
    pub now: Timestamp,
    /// The agent's name, written on every lease it takes.
    pub agent: String,
    pub host: String,
    pub pid: u32,
    /// The agent runner's session id, when known.
    pub session: Option<String>,
    /// Crash injection for tests (`claim:after-cas`): the process aborts there.
    pub failpoint: Option<String>,
    /// The queue's branch when the front end was told it (`GITPRIO_BRANCH`), over the config's.
    pub branch: Option<String>,
}

impl Invocation {
    /// Returns the queue's branch as this invocation reads it by default: the branch it
    /// was told (`GITPRIO_BRANCH`) over the config's, as its lease store names it.
    pub fn queue(&self) -> crate::source::QueueSource {
        crate::source::QueueSource::Default {
            branch: self.branch.clone(),
        }
    }
}

/// Where the leases live: where the config says, or this clone's refs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StoreChoice {
    /// The configured remote (default `origin`) when the clone has it, else local refs.
    #[default]
    Configured,
    /// This repository's refs, shared by its worktrees (`--local`).
    Local,
}

impl StoreChoice {
    /// Local refs when `local`, else the configured store.
    pub fn local(local: bool) -> StoreChoice {
        if local {
            StoreChoice::Local
        } else {
            StoreChoice::Configured
        }
    }
}

/// A repository with its config and its lease store, as one invocation sees them.
pub struct Workspace<'repo> {
    repo: &'repo Repository,
    config: Config,
    store: LeaseStore<'repo>,
    invocation: Invocation,
    notices: &'repo dyn Notices,
    /// When it was opened: `invocation.now` plus the time since is the clock of what it
    /// does long after (the renewals while the acceptance commands run).
    opened: std::time::Instant,
}

impl std::fmt::Debug for Workspace<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workspace")
            .field("store", &self.store)
            .field("invocation", &self.invocation)
            .finish_non_exhaustive()
    }
}

impl<'repo> Workspace<'repo> {
    /// Reads the local config and opens the lease store `choice` names; usage the ledger
    /// could not take earlier goes out now, with the first command that reaches it.
    pub fn open(
        repo: &'repo Repository,
        invocation: Invocation,
        choice: StoreChoice,
        notices: &'repo dyn Notices,
    ) -> Result<Workspace<'repo>, WorkspaceError> {
        let workspace = Workspace::open_quietly(repo, invocation, choice, notices)?;
        Ledger::new(&workspace.store).deliver_kept(workspace.invocation.now);
        Ok(workspace)
    }

    /// Like [`Workspace::open`], without delivering kept usage: for reading commands.
    pub fn open_quietly(
        repo: &'repo Repository,
        invocation: Invocation,
        choice: StoreChoice,
        notices: &'repo dyn Notices,
    ) -> Result<Workspace<'repo>, WorkspaceError> {
        let config = crate::source::local_config(repo)?;
        let mode = store_mode(repo, &config, choice, invocation.branch.as_deref())?;
        repo.set_remote_timeout(config.remote_timeout.unsigned_abs());
        Ok(Workspace {
            repo,
            config,
            store: LeaseStore::new(repo, mode),
            invocation,
            notices,
            opened: std::time::Instant::now(),
        })
    }

    pub fn repo(&self) -> &'repo Repository {
        self.repo
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn store(&self) -> &LeaseStore<'repo> {
        &self.store
    }

    pub fn invocation(&self) -> &Invocation {
        &self.invocation
    }

    pub fn notices(&self) -> &'repo dyn Notices {
        self.notices
    }

    /// Names the store for replies: the remote's name, or `local`.
    pub fn store_name(&self) -> &str {
        match self.store.mode() {
            Mode::Remote { remote, .. } => remote,
            Mode::Local => "local",
        }
    }

    /// This invocation as a lease holder: its agent, in this worktree, on its branch.
    pub fn holder(&self) -> lease::Holder {
        holder(self.repo, &self.invocation)
    }

    /// How far another machine's clock may be ahead, as the config says.
    pub fn skew(&self) -> jiff::SignedDuration {
        self.config.clock_skew
    }

    /// Builds what every lease operation needs: the clock, TTL (`ttl`, else the config's),
    /// skew and holder.
    pub fn lease_context(&self, ttl: Option<&str>) -> Result<LeaseContext, WorkspaceError> {
        let ttl = match ttl {
            Some(text) => parse_duration(text)
                .filter(|ttl| !ttl.is_zero())
                .ok_or_else(|| WorkspaceError::InvalidTtl {
                    text: text.to_owned(),
                })?,
            None => self.config.lease_ttl,
        };
        Ok(LeaseContext {
            now: self.invocation.now,
            ttl,
            skew: self.config.clock_skew,
            max_attempts: self.config.max_attempts.max(1),
            holder: self.holder(),
            failpoint: self.invocation.failpoint.clone(),
        })
    }
}

/// `invocation` as a lease holder in `repo`: its agent, in this worktree, on its branch.
pub fn holder(repo: &Repository, invocation: &Invocation) -> lease::Holder {
    lease::Holder {
        agent: invocation.agent.clone(),
        host: invocation.host.clone(),
        pid: invocation.pid,
        worktree: repo.workdir().map(|path| path.display().to_string()),
        branch: repo.current_branch(),
        session: invocation.session.clone(),
        extra: std::collections::BTreeMap::new(),
    }
}

/// The default directory of the tasks' worktrees: `<repo>-gitprio-worktrees` beside the main
/// worktree (or beside a bare repository). Not inside `.git/`: agent CLIs treat every path
/// there as sensitive (Claude Code denies edits to them even with `acceptEdits`).
pub fn task_worktrees(repo: &Repository) -> std::path::PathBuf {
    let common = repo.common_dir();
    let main = if common.file_name().is_some_and(|name| name == ".git") {
        common.parent().unwrap_or(common)
    } else {
        common
    };
    let name = main
        .file_name()
        .map_or_else(|| "repo".into(), |name| name.to_string_lossy().into_owned());
    main.with_file_name(format!("{name}-gitprio-worktrees"))
}
