//! Integration tests of the `gitprio` binary: one test binary, modules by area.

mod action;
mod bad_input;
mod browser;
mod check;
mod common;
mod context;
mod formats;
mod gc;
mod install;
mod leases;
mod mcp;
mod messages;
mod queue;
mod readme;
mod revoke;
mod run;
mod servers;
mod top;
mod usage;
