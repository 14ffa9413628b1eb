//! Integration tests of the `gitprio` binary: one test binary, modules by area.

mod act;
mod action;
mod bad_input;
mod browser;
mod check;
mod common;
mod context;
mod fleet;
mod formats;
mod gc;
mod github_fake;
mod install;
mod leases;
mod mcp;
mod messages;
mod model;
mod model_server;
mod queue;
mod readme;
mod real_agents;
mod revoke;
mod run;
mod servers;
mod status;
mod top;
mod usage;
