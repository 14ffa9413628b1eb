//! The typed replies of the use cases: what `--json`, the MCP tools and `gitprio run` print
//! and read, one struct per operation, with its JSON Schema.

pub mod lease;
pub mod usage;
