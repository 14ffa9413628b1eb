//! The repository's own prices (`.tasks/prices.yaml`), over the bundled table.

use std::collections::BTreeMap;

use crate::git::{ObjectId, Repository};
use crate::source::{QueueSource, resolve_queue_ref};
use crate::usage::{Price, PriceTable};

use super::{Workspace, WorkspaceError};

/// Where a repository overrides the bundled prices.
pub const PRICES_PATH: &str = ".tasks/prices.yaml";

/// Reads the price overrides of `repo` at `commit`, else in its working tree; none when
/// there is no such file.
pub fn price_overrides(
    repo: &Repository,
    commit: Option<ObjectId>,
) -> Result<BTreeMap<String, Price>, WorkspaceError> {
    let text = match commit
        .map(|commit| repo.entry_at(commit, PRICES_PATH))
        .transpose()?
    {
        Some(Some((blob, false))) => String::from_utf8_lossy(&repo.read_blob(blob)?).into_owned(),
        _ => match repo.workdir().map(|root| root.join(PRICES_PATH)) {
            Some(path) if path.is_file() => {
                std::fs::read_to_string(&path).map_err(|source| WorkspaceError::Io {
                    action: "read",
                    path,
                    source,
                })?
            }
            _ => return Ok(BTreeMap::new()),
        },
    };
    PriceTable::parse_overrides(&text).map_err(|detail| WorkspaceError::InvalidPrices { detail })
}

impl Workspace<'_> {
    /// Returns the prices runs are costed at: the bundled table under the queue's own
    /// `.tasks/prices.yaml`, read from the version of the queue the task files are read
    /// from, as `report` and `top` read it.
    pub fn prices(&self) -> Result<PriceTable, WorkspaceError> {
        let commit = match self.queue_source() {
            QueueSource::Worktree => None,
            QueueSource::Rev(rev) => Some(self.repo.resolve_commit(&rev)?),
            QueueSource::Default { branch } => {
                Some(resolve_queue_ref(self.repo, &self.config, branch.as_deref())?.1)
            }
        };
        Ok(PriceTable::new(price_overrides(self.repo, commit)?))
    }
}
