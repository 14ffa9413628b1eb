//! The lease commands (`claim`, `heartbeat`, `release`, `done`, `status`, `unpark`, `gc`),
//! one file each, over the core's [`Workspace`](gitprio_core::workspace::Workspace).

pub mod claim;
pub mod done;
pub mod gc;
pub mod heartbeat;
pub mod release;
pub mod status;
pub mod unpark;
