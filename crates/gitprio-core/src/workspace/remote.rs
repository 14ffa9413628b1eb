//! Where the leases live: the configured remote and the queue's branch, or local refs.

use crate::config::Config;
use crate::git::Repository;
use crate::lease::Mode;
use crate::source::queue_branch;

use super::{StoreChoice, WorkspaceError};

/// Chooses where leases live: the configured (or `origin`) remote when it exists, else
/// local refs; `branch` (`GITPRIO_BRANCH`) names the queue's branch over the config's.
pub fn store_mode(
    repo: &Repository,
    config: &Config,
    choice: StoreChoice,
    branch: Option<&str>,
) -> Result<Mode, WorkspaceError> {
    if choice == StoreChoice::Local {
        return Ok(Mode::Local);
    }
    let remote = match &config.remote {
        Some(remote) if repo.has_remote(remote) => remote.clone(),
        // Named on purpose while the clone has other remotes: most likely a misspelt name,
        // which must not quietly make the leases local, where no other machine sees them.
        Some(remote) if !repo.remote_names().is_empty() => {
            return Err(WorkspaceError::NoSuchRemote {
                config: crate::CONFIG_PATH,
                remote: remote.clone(),
                remotes: repo.remote_names(),
            });
        }
        None if repo.has_remote("origin") => "origin".to_owned(),
        // No remote at all: the leases live in this clone's refs.
        Some(_) | None => return Ok(Mode::Local),
    };
    let branch = queue_branch(repo, config, branch, &remote);
    Ok(Mode::Remote { remote, branch })
}
