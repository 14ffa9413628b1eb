//! Files built into the binary: the example queue and the `init` templates.

include!(concat!(env!("OUT_DIR"), "/example_files.rs"));

/// The config `gitprio init` writes.
pub const INIT_CONFIG: &str = "\
# gitprio configuration: see docs/task-format.md. Every key is optional.
# Allowed task types.
types: [bug, feature, refactor, test, docs, deps, spike, chore]
# Project-wide context handed to every task, in this order.
context: []
# Failed attempts after which a task is parked for a human.
max_attempts: 3
# How long a lease lives without a heartbeat.
lease_ttl: 30m
";

/// The sample task `gitprio init` writes.
pub const INIT_TASK: &str = "\
---
title: Describe your first task
priority: p2
type: chore
value: 1
acceptance:
  - echo replace me with the command that proves this task is done
---
Say what to do, what done looks like, and link the documents an agent needs
by their path from this file, such as `[the README](../README.md)`: the claim
hands them over with the task.
";

#[cfg(test)]
mod tests {
    use gitprio_core::{CONFIG_PATH, Config};

    /// The template spells out defaults the core also holds: they must not drift apart.
    #[test]
    fn the_config_init_writes_states_the_defaults() {
        let (config, problems) = Config::parse(CONFIG_PATH, super::INIT_CONFIG);
        assert_eq!(problems, []);
        assert_eq!(config, Config::default());
    }
}
