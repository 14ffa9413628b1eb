//! The typed replies of the commands and use cases: what `--json`, the MCP tools and
//! `gitprio run` print and read, one `Serialize + JsonSchema` struct per reply.
//!
//! A reply's keys come out in the order its fields are declared, and every reply follows one
//! order: where the queue was read (`source`), then the subject named by id, then what is
//! said about it, and a whole task (the largest value) last. Each reply's JSON Schema is
//! checked in under `docs/schema/`, and a test holds docs/cli.md to the schemas (see
//! `schema`).

mod check;
mod context;
mod init;
pub mod lease;
mod queue;
#[cfg(test)]
mod schema;
pub mod usage;

pub use check::CheckReply;
pub use context::ContextReply;
pub use init::{FileAction, InitFile, InitReply};
pub use queue::{ExplainReply, ListEntry, ListReply, NextReply, NothingReady, ShowReply};
