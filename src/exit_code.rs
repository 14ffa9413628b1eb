//! The exit statuses, re-exported from the core under the short names the commands return.
//!
//! [`ExitStatus`] owns the codes, their names and the mapping from errors; these constants
//! only spare every command the enum's path.

pub use gitprio_core::ExitStatus;

pub const SUCCESS: ExitStatus = ExitStatus::Success;
pub const FAILURE: ExitStatus = ExitStatus::Failure;
pub const NOTHING_READY: ExitStatus = ExitStatus::NothingReady;
pub const LEASE_LOST: ExitStatus = ExitStatus::LeaseLost;
pub const BUDGET_EXCEEDED: ExitStatus = ExitStatus::BudgetExceeded;
pub const NO_QUEUE: ExitStatus = ExitStatus::NoQueue;
