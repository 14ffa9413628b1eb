//! Making a parked task claimable again.

use crate::lease::{self, Lease};
use crate::task::TaskId;

use super::{Workspace, WorkspaceError};

impl Workspace<'_> {
    /// Unparks `id` on a fresh view of the leases, keeping its attempt history; `reason`
    /// (what was done about it) goes into the lease history.
    pub fn unpark(&self, id: &TaskId, reason: Option<String>) -> Result<Lease, WorkspaceError> {
        let context = self.lease_context(None)?;
        self.store.refresh()?;
        let current = self
            .store
            .lease(id)?
            .ok_or_else(|| WorkspaceError::NotParked { id: id.clone() })?;
        Ok(lease::unpark(&self.store, &current, &context, reason)?)
    }
}
