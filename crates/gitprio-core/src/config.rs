//! The repository configuration, `.tasks/config.yaml`: defaults shared by every task.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::diagnostic::{Diagnostic, DiagnosticKind, Position};
use crate::task::parse_token_count;

/// The task types a queue allows when its config does not list its own.
pub const DEFAULT_TYPES: &[&str] = &[
    "bug", "feature", "refactor", "test", "docs", "deps", "spike", "chore",
];

/// Repository-wide settings read from `.tasks/config.yaml`; every key is optional.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Allowed values of a task's `type`.
    pub types: Vec<String>,
    /// Default token budget per task type, e.g. `bug: 200k`.
    pub budgets: BTreeMap<String, TokenCount>,
    /// Project-wide context documents handed to every task, in order.
    pub context: Vec<String>,
    /// Context size limit in estimated tokens.
    pub context_budget: Option<TokenCount>,
    /// How many levels of links inside context documents are followed: 0 takes only the documents
    /// the config and the task name; 1 (the default) also the documents those link to.
    pub context_depth: u32,
    /// The git remote that coordinates agents; default `origin` when it exists.
    pub remote: Option<String>,
    /// The branch the queue is read from; default: the remote's default branch.
    pub branch: Option<String>,
    /// Failed attempts after which a task is parked for a human.
    pub max_attempts: u32,
    /// How long a lease lives without a heartbeat, e.g. `30m`.
    pub lease_ttl: String,
    /// How far apart agents' clocks may be: a lease is reclaimed only this long after it expired.
    pub clock_skew: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            types: DEFAULT_TYPES
                .iter()
                .map(|name| (*name).to_owned())
                .collect(),
            budgets: BTreeMap::new(),
            context: Vec::new(),
            context_budget: None,
            context_depth: 1,
            remote: None,
            branch: None,
            max_attempts: 3,
            lease_ttl: "30m".to_owned(),
            clock_skew: "1m".to_owned(),
        }
    }
}

/// A token count written as `200000`, `200k` or `1.5m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TokenCount(pub u64);

impl<'de> Deserialize<'de> for TokenCount {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CountVisitor;
        impl serde::de::Visitor<'_> for CountVisitor {
            type Value = TokenCount;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a token count such as 200000, 200k or 1.5m")
            }
            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<TokenCount, E> {
                Ok(TokenCount(value))
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<TokenCount, E> {
                u64::try_from(value)
                    .map(TokenCount)
                    .map_err(|_| E::custom("a token count cannot be negative"))
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<TokenCount, E> {
                parse_token_count(value)
                    .map(TokenCount)
                    .ok_or_else(|| E::custom(format!("invalid token count {value:?}")))
            }
        }
        deserializer.deserialize_any(CountVisitor)
    }
}

impl Config {
    /// Parses the config file at `path`; a broken file yields the defaults and a located error.
    pub fn parse(path: &str, text: &str) -> (Config, Option<Diagnostic>) {
        if text.trim().is_empty() {
            return (Config::default(), None);
        }
        let mut options = serde_saphyr::Options::default();
        options.with_snippet = false;
        match serde_saphyr::from_str_with_options::<Config>(text, options) {
            Ok(config) => (config, None),
            Err(error) => {
                let position = error.location().map_or(Position::START, |location| {
                    Position::new(
                        u32::try_from(location.line()).unwrap_or(u32::MAX),
                        u32::try_from(location.column()).unwrap_or(u32::MAX),
                    )
                });
                let message = error.to_string();
                let message = match error.location() {
                    Some(location) => message
                        .strip_suffix(&format!(
                            " at line {}, column {}",
                            location.line(),
                            location.column()
                        ))
                        .map_or_else(|| message.clone(), str::to_owned),
                    None => message,
                };
                let diagnostic = Diagnostic::error(
                    DiagnosticKind::Config,
                    path,
                    position,
                    format!("invalid config: {message}"),
                );
                (Config::default(), Some(diagnostic))
            }
        }
    }

    /// Returns whether `task_type` is one of the allowed types.
    pub fn allows_type(&self, task_type: &str) -> bool {
        self.types.iter().any(|allowed| allowed == task_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keys_and_keeps_defaults() {
        let (config, problem) = Config::parse(
            ".tasks/config.yaml",
            "types: [bug, ops]\nbudgets:\n  bug: 200k\nbranch: main\n",
        );
        assert!(problem.is_none());
        assert_eq!(config.types, ["bug", "ops"]);
        assert_eq!(config.budgets["bug"], TokenCount(200_000));
        assert_eq!(config.max_attempts, 3);
    }

    #[test]
    fn locates_unknown_keys() {
        let (config, problem) = Config::parse(".tasks/config.yaml", "types: [bug]\nbrnach: main\n");
        assert_eq!(config, Config::default());
        let problem = problem.unwrap().to_string();
        assert!(
            problem.starts_with(
                ".tasks/config.yaml:2:1: error: invalid config: unknown field `brnach`"
            ),
            "{problem}"
        );
    }
}
