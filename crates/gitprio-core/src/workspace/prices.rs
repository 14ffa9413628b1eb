//! The repository's own prices (`.tasks/prices.yaml`), over the bundled table.

use std::collections::BTreeMap;

use crate::git::{ObjectId, Repository};
use crate::source::{QueueSource, resolve_queue_ref};
use crate::usage::{Price, PriceTable};

use super::{Workspace, WorkspaceError};

/// Where a repository overrides the bundled prices.
pub const PRICES_PATH: &str = ".tasks/prices.yaml";

/// The repository's price overrides as read: the prices, how many models the file prices,
/// and why entries of it were not read (each costed at its bundled price instead).
#[derive(Clone, Debug, Default)]
pub struct RepositoryPrices {
    /// Model name → price, from the entries that could be read.
    pub prices: BTreeMap<String, Price>,
    /// Whether the queue has a `.tasks/prices.yaml` at all.
    pub found: bool,
    /// ``"line N: `model`: why"`` for each entry not read, or why the file was not.
    pub problems: Vec<String>,
}

impl RepositoryPrices {
    /// Returns the bundled table with these overrides on top.
    pub fn table(&self) -> PriceTable {
        PriceTable::new(self.prices.clone())
    }
}

/// Reads the price overrides of `repo` at `commit`, else in its working tree; none when
/// there is no such file. An entry it cannot read is named in `problems` and left to its
/// bundled price: every view (report, usage show, top, run, the Action) reads it so.
pub fn price_overrides(
    repo: &Repository,
    commit: Option<ObjectId>,
) -> Result<RepositoryPrices, WorkspaceError> {
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
            _ => return Ok(RepositoryPrices::default()),
        },
    };
    let read = PriceTable::read_overrides(&text);
    Ok(RepositoryPrices {
        prices: read.prices,
        found: true,
        problems: read.problems,
    })
}

impl Workspace<'_> {
    /// Returns the prices runs are costed at: the bundled table under the queue's own
    /// `.tasks/prices.yaml`, read from the version of the queue the task files are read
    /// from, as `report` and `top` read it.
    pub fn prices(&self) -> Result<RepositoryPrices, WorkspaceError> {
        let commit = match self.queue_source() {
            QueueSource::Worktree => None,
            QueueSource::Rev(rev) => Some(self.repo.resolve_commit(&rev)?),
            QueueSource::Default { branch } => {
                Some(resolve_queue_ref(self.repo, &self.config, branch.as_deref())?.1)
            }
        };
        price_overrides(self.repo, commit)
    }
}
