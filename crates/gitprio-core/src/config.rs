//! The repository configuration, `.tasks/config.yaml`: defaults shared by every task.

use std::collections::{BTreeMap, HashMap};

use jiff::SignedDuration;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::diagnostic::{Diagnostic, DiagnosticKind, Position};
use crate::task::{Planning, Task, parse_token_count};

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
    /// How long a lease lives without a heartbeat, e.g. `30m`; longer than zero.
    #[serde(with = "positive_duration")]
    pub lease_ttl: SignedDuration,
    /// How far apart agents' clocks may be: a lease is reclaimed only this long after it expired.
    #[serde(with = "duration")]
    pub clock_skew: SignedDuration,
    /// How long a git command that talks to the remote may make no progress before it is
    /// stopped and counted as a dropped connection (see docs/leases.md); longer than zero.
    #[serde(with = "positive_duration")]
    pub remote_timeout: SignedDuration,
    /// Model tiers, cheapest first: tier name → the model `gitprio run` hands the agent.
    pub tiers: Tiers,
    /// The tier of each task type, for tasks whose `model` names none.
    pub type_tiers: BTreeMap<String, String>,
    /// Whether a failed attempt is retried one tier up (`gitprio run`).
    pub escalate: bool,
    /// Which tasks must be planned before the work, besides those with `plan: required`.
    pub plan: PlanRule,
}

/// The config's `plan` rule: tasks of these types, or with a larger token budget, must be
/// planned first unless they say `plan: optional`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlanRule {
    /// Task types that are planned first, e.g. `[spike]`.
    pub types: Vec<String>,
    /// Tasks whose token budget (theirs, else `budgets` of their type) is over this are planned first.
    pub budget_over: Option<TokenCount>,
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
            lease_ttl: SignedDuration::from_mins(30),
            clock_skew: SignedDuration::from_mins(1),
            remote_timeout: SignedDuration::from_mins(1),
            tiers: Tiers::default(),
            type_tiers: BTreeMap::new(),
            escalate: false,
            plan: PlanRule::default(),
        }
    }
}

/// A task type that a type-keyed setting of the config names, where the config file names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeMention {
    /// The setting as written in the file: `budgets`, `type_tiers` or `plan.types`.
    pub setting: &'static str,
    /// The type name.
    pub name: String,
    pub position: Position,
}

/// A tier that `type_tiers` sends a task type to, where the config file names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierMention {
    pub task_type: String,
    pub tier: String,
    pub position: Position,
}

/// The type-keyed settings of the config, each name located; everything else is ignored.
#[derive(Default, Deserialize)]
#[serde(default)]
#[expect(
    clippy::zero_sized_map_values,
    reason = "only the keys of these mappings are read, and serde reads a mapping into a map"
)]
struct LocatedTypes {
    budgets: HashMap<Spanned<String>, IgnoredAny>,
    type_tiers: HashMap<Spanned<String>, Spanned<String>>,
    plan: LocatedPlanTypes,
}

impl LocatedTypes {
    /// Reads config file `text`; `None` when it is not a valid config ([`Config::parse`]
    /// reports that).
    fn read(text: &str) -> Option<LocatedTypes> {
        if text.trim().is_empty() || !Config::parse(crate::CONFIG_PATH, text).1.is_empty() {
            return None;
        }
        serde_saphyr::from_str_with_options(text, yaml_options()).ok()
    }
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct LocatedPlanTypes {
    types: Vec<Spanned<String>>,
}

/// Model tiers in the order the config lists them, cheapest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tiers(pub Vec<(String, String)>);

impl Tiers {
    /// Returns the position of tier `name` in the order listed.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.0.iter().position(|(tier, _)| tier == name)
    }
}

impl Serialize for Tiers {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (tier, model) in &self.0 {
            map.serialize_entry(tier, model)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Tiers {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TiersVisitor;
        impl<'de> serde::de::Visitor<'de> for TiersVisitor {
            type Value = Tiers;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a map from tier name to model, cheapest first")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Tiers, A::Error> {
                let mut tiers: Vec<(String, String)> = Vec::new();
                while let Some((tier, model)) = map.next_entry::<String, String>()? {
                    if tiers.iter().any(|(known, _)| *known == tier) {
                        return Err(serde::de::Error::custom(format!(
                            "tier `{tier}` is listed twice"
                        )));
                    }
                    tiers.push((tier, model));
                }
                Ok(Tiers(tiers))
            }
        }
        deserializer.deserialize_map(TiersVisitor)
    }
}

/// The model a task runs on, and the tier it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The tier, when the model came from `tiers`.
    pub tier: Option<String>,
    /// The model to hand the agent; `None` when neither the task nor the config names one.
    pub model: Option<String>,
    /// Whether escalation moved the task up from the tier it starts at.
    pub escalated: bool,
}

/// Why a task's model cannot be resolved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`type_tiers` sends type `{task_type}` to tier `{tier}`, which `tiers` does not list")]
pub struct RouteError {
    pub task_type: String,
    pub tier: String,
}

/// Writes `duration` the way the config takes it: `30m`, `1h30m`, `45s`, `0s`.
pub fn format_duration(duration: SignedDuration) -> String {
    let seconds = duration.as_secs();
    if seconds == 0 {
        return "0s".to_owned();
    }
    let sign = if seconds < 0 { "-" } else { "" };
    let seconds = seconds.unsigned_abs();
    let parts = [
        (seconds / 3600, "h"),
        (seconds % 3600 / 60, "m"),
        (seconds % 60, "s"),
    ];
    let mut text = sign.to_owned();
    for (count, unit) in parts.into_iter().filter(|(count, _)| *count > 0) {
        text.push_str(&count.to_string());
        text.push_str(unit);
    }
    text
}

/// Reads a duration setting (`90s`, `30m`, `2h`, `1h30m`, or a number of seconds) when the
/// config is read, so a bad value is an error located at the value, never a silent 0 later.
mod duration {
    use jiff::SignedDuration;

    pub fn serialize<S: serde::Serializer>(
        duration: &SignedDuration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_duration(*duration))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<SignedDuration, D::Error> {
        struct DurationVisitor;
        impl serde::de::Visitor<'_> for DurationVisitor {
            type Value = SignedDuration;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a duration such as `90s`, `30m` or `2h`")
            }
            fn visit_u64<E: serde::de::Error>(self, seconds: u64) -> Result<SignedDuration, E> {
                i64::try_from(seconds)
                    .map(SignedDuration::from_secs)
                    .map_err(|_| E::custom(format!("{seconds} seconds is too long")))
            }
            fn visit_i64<E: serde::de::Error>(self, seconds: i64) -> Result<SignedDuration, E> {
                if seconds < 0 {
                    return Err(E::custom(format!(
                        "{seconds} is negative; write a duration like `90s`, `30m` or `2h`"
                    )));
                }
                Ok(SignedDuration::from_secs(seconds))
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<SignedDuration, E> {
                crate::lease::parse_duration(text).ok_or_else(|| {
                    E::custom(format!(
                        "{text:?} is not a duration; write it like `90s`, `30m` or `2h`"
                    ))
                })
            }
        }
        deserializer.deserialize_any(DurationVisitor)
    }
}

/// A duration setting that must be longer than zero: `lease_ttl`, `remote_timeout`.
mod positive_duration {
    use jiff::SignedDuration;

    pub use super::duration::serialize;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<SignedDuration, D::Error> {
        let duration = super::duration::deserialize(deserializer)?;
        if duration.is_zero() {
            return Err(serde::de::Error::custom(
                "must be longer than 0s; write it like `90s`, `30m` or `2h`",
            ));
        }
        Ok(duration)
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
    /// Parses the config file at `path`, returning every problem found, each located.
    ///
    /// A YAML syntax error stops at the first (what follows cannot be read); otherwise each
    /// top-level setting is checked on its own: an unknown key (with the known key it is a
    /// near miss of), a value of the wrong shape, a lease duration that does not parse. The
    /// config returned keeps the settings that are valid and the defaults for the others:
    /// `gitprio check` validates the tasks against it, every other command refuses to run.
    pub fn parse(path: &str, text: &str) -> (Config, Vec<Diagnostic>) {
        if text.trim().is_empty() {
            return (Config::default(), Vec::new());
        }
        let keys = match serde_saphyr::from_str_with_options::<TopLevel>(text, yaml_options()) {
            Ok(keys) => keys.0,
            Err(error) => return (Config::default(), vec![serde_problem(path, &error)]),
        };
        let mut problems = Vec::new();
        let mut lines: Vec<&str> = text.split('\n').collect();
        let starts: Vec<usize> = keys
            .iter()
            .map(|key| usize::try_from(key.referenced.line()).unwrap_or(usize::MAX))
            .collect();
        let blank = |lines: &mut Vec<&str>, line: usize| {
            let index = starts.iter().rposition(|&start| start <= line);
            let start = index.map_or(1, |index| starts[index]);
            let end = index
                .and_then(|index| starts.get(index + 1).copied())
                .filter(|&end| end > start)
                .unwrap_or(lines.len() + 1);
            for number in start..end {
                if let Some(text) = lines.get_mut(number - 1) {
                    *text = "";
                }
            }
        };
        for key in &keys {
            if !FIELDS.contains(&key.value.as_str()) {
                let hint = match crate::task::closest(&key.value, FIELDS) {
                    Some(field) => format!("; did you mean `{field}`?"),
                    None => format!("; the settings are {}", FIELDS.join(", ")),
                };
                problems.push(Diagnostic::error(
                    DiagnosticKind::Config,
                    path,
                    position(&key.referenced),
                    format!("unknown key `{}` in the config{hint}", key.value),
                ));
                blank(
                    &mut lines,
                    usize::try_from(key.referenced.line()).unwrap_or(usize::MAX),
                );
            }
        }
        let mut config = Config::default();
        // Each round takes out the setting the error is in, so it ends after one per setting.
        for _ in 0..=keys.len() {
            let remaining = lines.join("\n");
            if remaining.trim().is_empty() {
                break;
            }
            match serde_saphyr::from_str_with_options::<Config>(&remaining, yaml_options()) {
                Ok(parsed) => {
                    config = parsed;
                    break;
                }
                Err(error) => {
                    let mut problem = serde_problem(path, &error);
                    let line = usize::try_from(problem.line).unwrap_or(usize::MAX);
                    if let Some(key) = keys.iter().rev().find(|key| {
                        usize::try_from(key.referenced.line()).is_ok_and(|start| start <= line)
                    }) && !problem.message.contains(&format!("`{}`", key.value))
                    {
                        problem.message = problem.message.replacen(
                            "invalid config: ",
                            &format!("invalid config: `{}`: ", key.value),
                            1,
                        );
                    }
                    problem.message = problem
                        .message
                        .replace("invalid u32", "must be a whole number from 0");
                    let repeated = problems.last() == Some(&problem);
                    if !repeated {
                        problems.push(problem);
                    }
                    if repeated || error.location().is_none() {
                        break;
                    }
                    blank(&mut lines, line);
                }
            }
        }
        problems.sort_by_key(|problem| (problem.line, problem.column));
        (config, problems)
    }

    /// Returns the token budget of `task`: its own `budget:`, else its type's in `budgets:`.
    ///
    /// It decides exit 5, when `gitprio run` stops an agent and whether a task must be
    /// planned first: every front end asks here.
    pub fn token_budget(&self, task: &Task) -> Option<u64> {
        task.budget.and_then(|budget| budget.tokens).or_else(|| {
            let kind = task.task_type.as_ref()?;
            self.budgets.get(kind).map(|count| count.0)
        })
    }

    /// Returns whether `task` must be planned first: its `plan:` when it says, else the
    /// config's `plan` rule on its type and its token budget.
    pub fn plan_required(&self, task: &Task) -> bool {
        if let Some(planning) = task.plan {
            return planning == Planning::Required;
        }
        let budget = self.token_budget(task);
        task.task_type
            .as_deref()
            .is_some_and(|kind| self.plan.types.iter().any(|listed| listed == kind))
            || self
                .plan
                .budget_over
                .is_some_and(|limit| budget.is_some_and(|tokens| tokens > limit.0))
    }

    /// Resolves the model of a task with `model` (a tier or a model name) and `task_type`,
    /// after `failures` failed attempts.
    ///
    /// A task's `model` that names a tier picks it; any other value is a model name, used as
    /// is. Else `type_tiers` picks the tier of the task's type, else the first (cheapest)
    /// tier applies. With `escalate`, each failed attempt moves one tier up, stopping at the
    /// last.
    pub fn route(
        &self,
        model: Option<&str>,
        task_type: Option<&str>,
        failures: u32,
    ) -> Result<Route, RouteError> {
        let start = match model {
            Some(name) => match self.tiers.position(name) {
                Some(index) => Some(index),
                None => {
                    return Ok(Route {
                        tier: None,
                        model: Some(name.to_owned()),
                        escalated: false,
                    });
                }
            },
            None => match task_type
                .and_then(|kind| self.type_tiers.get(kind).map(|tier| (kind, tier)))
            {
                Some((kind, tier)) => {
                    Some(self.tiers.position(tier).ok_or_else(|| RouteError {
                        task_type: kind.to_owned(),
                        tier: tier.clone(),
                    })?)
                }
                None => (!self.tiers.0.is_empty()).then_some(0),
            },
        };
        let Some(start) = start else {
            return Ok(Route {
                tier: None,
                model: None,
                escalated: false,
            });
        };
        let steps = if self.escalate {
            usize::try_from(failures).unwrap_or(usize::MAX)
        } else {
            0
        };
        let index = start.saturating_add(steps).min(self.tiers.0.len() - 1);
        let (tier, model) = &self.tiers.0[index];
        Ok(Route {
            tier: Some(tier.clone()),
            model: Some(model.clone()),
            escalated: index > start,
        })
    }

    /// Returns whether `task_type` is one of the allowed types.
    pub fn allows_type(&self, task_type: &str) -> bool {
        self.types.iter().any(|allowed| allowed == task_type)
    }

    /// Returns the task types that the type-keyed settings of config file `text` name (the
    /// keys of `budgets` and `type_tiers`, the list `plan.types`), located, in file order.
    ///
    /// Nothing when `text` is not a valid config: [`Config::parse`] reports that.
    pub fn type_mentions(text: &str) -> Vec<TypeMention> {
        let Some(located) = LocatedTypes::read(text) else {
            return Vec::new();
        };
        let mut mentions: Vec<TypeMention> = [
            ("budgets", located.budgets.into_keys().collect()),
            ("type_tiers", located.type_tiers.into_keys().collect()),
            ("plan.types", located.plan.types),
        ]
        .into_iter()
        .flat_map(|(setting, names): (_, Vec<Spanned<String>>)| {
            names.into_iter().map(move |name| TypeMention {
                setting,
                position: position(&name.referenced),
                name: name.value,
            })
        })
        .collect();
        mentions.sort_by_key(|mention| (mention.position.line, mention.position.column));
        mentions
    }

    /// Returns the tiers that `type_tiers` in config file `text` sends types to, located,
    /// in file order. Nothing when `text` is not a valid config.
    pub fn tier_mentions(text: &str) -> Vec<TierMention> {
        let Some(located) = LocatedTypes::read(text) else {
            return Vec::new();
        };
        let mut mentions: Vec<TierMention> = located
            .type_tiers
            .into_iter()
            .map(|(task_type, tier)| TierMention {
                task_type: task_type.value,
                position: position(&tier.referenced),
                tier: tier.value,
            })
            .collect();
        mentions.sort_by_key(|mention| (mention.position.line, mention.position.column));
        mentions
    }
}

/// Every setting the config file may have, in documentation order.
pub const FIELDS: &[&str] = &[
    "types",
    "budgets",
    "context",
    "context_budget",
    "context_depth",
    "remote",
    "branch",
    "max_attempts",
    "lease_ttl",
    "clock_skew",
    "remote_timeout",
    "tiers",
    "type_tiers",
    "escalate",
    "plan",
];

/// The top-level keys of a config file, located; their values are not read.
struct TopLevel(Vec<Spanned<String>>);

impl<'de> Deserialize<'de> for TopLevel {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeysVisitor;
        impl<'de> serde::de::Visitor<'de> for KeysVisitor {
            type Value = TopLevel;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a mapping of settings")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<TopLevel, A::Error> {
                let mut keys = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    map.next_value::<IgnoredAny>()?;
                    keys.push(key);
                }
                Ok(TopLevel(keys))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<TopLevel, E> {
                Ok(TopLevel(Vec::new()))
            }
        }
        deserializer.deserialize_map(KeysVisitor)
    }
}

/// Returns the located diagnostic of a serde error in the config, its location out of the text.
fn serde_problem(path: &str, error: &serde_saphyr::Error) -> Diagnostic {
    let at = error
        .location()
        .map_or(Position::START, |location| position(&location));
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
    Diagnostic::error(
        DiagnosticKind::Config,
        path,
        at,
        format!("invalid config: {message}"),
    )
}

pub(crate) fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    options
}

fn position(location: &serde_saphyr::Location) -> Position {
    Position::new(
        u32::try_from(location.line()).unwrap_or(u32::MAX),
        u32::try_from(location.column()).unwrap_or(u32::MAX),
    )
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
        assert!(problem.is_empty());
        assert_eq!(config.types, ["bug", "ops"]);
        assert_eq!(config.budgets["bug"], TokenCount(200_000));
        assert_eq!(config.max_attempts, 3);
    }

    #[test]
    fn routes_tasks_to_models_and_escalates() {
        let (config, problem) = Config::parse(
            ".tasks/config.yaml",
            "tiers:\n  small: claude-haiku-4-5\n  medium: claude-sonnet-4-5\n  large: claude-opus-4-1\ntype_tiers:\n  bug: medium\n  spike: huge\n",
        );
        assert!(problem.is_empty(), "{problem:?}");
        let model = |task_model, kind, failures| {
            config
                .route(task_model, kind, failures)
                .unwrap()
                .model
                .unwrap()
        };
        assert_eq!(model(None, Some("bug"), 0), "claude-sonnet-4-5");
        assert_eq!(model(None, Some("docs"), 0), "claude-haiku-4-5");
        assert_eq!(model(Some("large"), Some("bug"), 0), "claude-opus-4-1");
        assert_eq!(model(Some("gpt-5"), None, 2), "gpt-5");
        // Without `escalate`, failures do not move the tier.
        assert_eq!(model(None, Some("bug"), 1), "claude-sonnet-4-5");
        assert_eq!(
            config
                .route(None, Some("spike"), 0)
                .unwrap_err()
                .to_string(),
            "`type_tiers` sends type `spike` to tier `huge`, which `tiers` does not list"
        );
        let escalating = Config {
            escalate: true,
            ..config.clone()
        };
        let route = escalating.route(None, Some("docs"), 1).unwrap();
        assert_eq!(route.tier.as_deref(), Some("medium"));
        assert!(route.escalated);
        assert_eq!(
            escalating
                .route(None, Some("bug"), 5)
                .unwrap()
                .model
                .as_deref(),
            Some("claude-opus-4-1")
        );
        let none = Config::default().route(None, Some("bug"), 0).unwrap();
        assert_eq!(none.model, None);
        let (_, twice) = Config::parse(".tasks/config.yaml", "tiers:\n  a: x\n  a: y\n");
        assert!(!twice.is_empty());
    }

    #[test]
    fn reports_every_problem_of_the_config_located_and_keeps_the_valid_settings() {
        let text = "types: [bug]\nbrnach: main\nlease_tll: 45m\nmax_attempts: many\nclock_skew: soon\nplan:\n  type: [spike]\nfrobnicate: 1\nremote: upstream\n";
        let (config, problems) = Config::parse(".tasks/config.yaml", text);
        let messages: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                ".tasks/config.yaml:2:1: error: unknown key `brnach` in the config; did you mean `branch`?",
                ".tasks/config.yaml:3:1: error: unknown key `lease_tll` in the config; did you mean `lease_ttl`?",
                ".tasks/config.yaml:4:15: error: invalid config: `max_attempts`: must be a whole number from 0",
                ".tasks/config.yaml:5:13: error: invalid config: `clock_skew`: \"soon\" is not a duration; write it like `90s`, `30m` or `2h`",
                ".tasks/config.yaml:7:3: error: invalid config: `plan`: unknown field `type`, expected one of types, budget_over",
                ".tasks/config.yaml:8:1: error: unknown key `frobnicate` in the config; the settings are types, budgets, context, context_budget, context_depth, remote, branch, max_attempts, lease_ttl, clock_skew, remote_timeout, tiers, type_tiers, escalate, plan",
            ]
        );
        assert_eq!(config.types, ["bug"]);
        assert_eq!(config.remote.as_deref(), Some("upstream"));
        assert_eq!(config.lease_ttl, SignedDuration::from_mins(30));
        let (_, syntax) = Config::parse(".tasks/config.yaml", "types: [bug\nbranch: main\n");
        assert_eq!(syntax.len(), 1, "{syntax:?}");
        let (_, fine) = Config::parse(".tasks/config.yaml", "# nothing set\n");
        assert_eq!(fine, []);
    }

    #[test]
    fn durations_are_typed_when_the_config_is_read_and_bad_ones_located_at_the_value() {
        let (config, problems) =
            Config::parse(".tasks/config.yaml", "lease_ttl: 1h30m\nclock_skew: 45\n");
        assert_eq!(problems, []);
        assert_eq!(config.lease_ttl, SignedDuration::from_mins(90));
        assert_eq!(config.clock_skew, SignedDuration::from_secs(45));
        assert_eq!(format_duration(config.lease_ttl), "1h30m");
        assert_eq!(format_duration(SignedDuration::ZERO), "0s");
        let (config, problems) = Config::parse(
            ".tasks/config.yaml",
            "max_attempts: 2\nlease_ttl: 0s\nclock_skew: -5\n",
        );
        let messages: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                ".tasks/config.yaml:2:12: error: invalid config: `lease_ttl`: must be longer than 0s; write it like `90s`, `30m` or `2h`",
                ".tasks/config.yaml:3:13: error: invalid config: `clock_skew`: -5 is negative; write a duration like `90s`, `30m` or `2h`",
            ]
        );
        // The bad settings keep their defaults, the good ones their values, for `check`.
        assert_eq!(config.lease_ttl, SignedDuration::from_mins(30));
        assert_eq!(config.clock_skew, SignedDuration::from_mins(1));
        assert_eq!(config.max_attempts, 2);
    }

    #[test]
    fn locates_the_types_that_type_keyed_settings_name() {
        let text = "types: [bug, ops]\nbudgets:\n  bug: 200k\n  opps: 1m\ntype_tiers: { ops: small }\nplan:\n  types:\n    - spike\n  budget_over: 500k\n";
        let mentions: Vec<(&str, String, u32, u32)> = Config::type_mentions(text)
            .into_iter()
            .map(|mention| {
                (
                    mention.setting,
                    mention.name,
                    mention.position.line,
                    mention.position.column,
                )
            })
            .collect();
        assert_eq!(
            mentions,
            [
                ("budgets", "bug".to_owned(), 3, 3),
                ("budgets", "opps".to_owned(), 4, 3),
                ("type_tiers", "ops".to_owned(), 5, 15),
                ("plan.types", "spike".to_owned(), 8, 7),
            ]
        );
        assert_eq!(Config::type_mentions("budgets:\nplan:\n"), []);
        assert_eq!(
            Config::type_mentions("brnach: main\nplan: {types: [x]}\n"),
            []
        );
    }

    /// Parses a task file whose frontmatter holds `text` besides its title.
    fn task(text: &str) -> Task {
        crate::task::parse_task(
            ".tasks/t.md",
            format!("---\ntitle: T\n{text}---\n").as_bytes(),
        )
        .task
        .unwrap()
    }

    #[test]
    fn a_tasks_own_token_budget_wins_over_its_types() {
        let (config, problem) = Config::parse(".tasks/config.yaml", "budgets:\n  bug: 200k\n");
        assert_eq!(problem, []);
        assert_eq!(config.token_budget(&task("type: bug\n")), Some(200_000));
        assert_eq!(
            config.token_budget(&task("type: bug\nbudget: 50k\n")),
            Some(50_000)
        );
        assert_eq!(
            config.token_budget(&task("type: bug\nbudget: {usd: 2}\n")),
            Some(200_000)
        );
        assert_eq!(config.token_budget(&task("type: docs\n")), None);
        assert_eq!(config.token_budget(&task("")), None);
    }

    #[test]
    fn plan_rule_requires_planning_by_type_and_budget_unless_the_task_says() {
        let (config, problem) = Config::parse(
            ".tasks/config.yaml",
            "budgets:\n  feature: 600k\nplan:\n  types: [spike]\n  budget_over: 500k\n",
        );
        assert_eq!(problem, []);
        assert!(config.plan_required(&task("type: spike\n")));
        assert!(config.plan_required(&task("type: feature\n")));
        assert!(config.plan_required(&task("budget: 501k\n")));
        assert!(!config.plan_required(&task("type: feature\nbudget: 100k\n")));
        assert!(!config.plan_required(&task("type: bug\n")));
        assert!(!config.plan_required(&task("type: spike\nplan: optional\n")));
        assert!(Config::default().plan_required(&task("plan: required\n")));
        let (_, problem) = Config::parse(".tasks/config.yaml", "plan:\n  type: [spike]\n");
        assert!(!problem.is_empty());
    }
}
