//! Integration tests of the `gitprio` binary: one test binary, modules by area.

mod bad_input;
mod check;
mod common;
mod formats;
mod leases;
mod queue;
mod servers;
mod usage;
