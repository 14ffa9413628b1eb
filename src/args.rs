//! Command-line pieces several front ends share: where leases live, who claims, amounts.

use clap::Args;
use gitprio_core::lease::ClaimFilter;
use gitprio_core::workspace::StoreChoice;

/// Where leases are kept and how to reach them.
#[derive(Debug, Default, Args)]
pub struct StoreArgs {
    /// Keep leases in this repository's refs (shared by its worktrees) instead of the remote.
    #[arg(long)]
    pub local: bool,
}

impl StoreArgs {
    /// The store these options choose.
    pub fn choice(&self) -> StoreChoice {
        StoreChoice::local(self.local)
    }
}

/// Who claims and which ready tasks it takes: `claim` and `mcp` share these options.
#[derive(Debug, Args)]
pub struct Claimer {
    /// This agent's name, written on every lease it takes (default: `GITPRIO_AGENT`, else
    /// `user@host:<worktree>`).
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,
    /// How long a lease lives without a heartbeat (default: `lease_ttl` of the config, `30m`).
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Only take tasks of this type.
    #[arg(long = "type", value_name = "TYPE")]
    pub task_type: Option<String>,
    /// Only take tasks of this feature.
    #[arg(long, value_name = "FEATURE")]
    pub feature: Option<String>,
    /// Only take tasks routed to this model tier (their `model`), or routed nowhere.
    #[arg(long, value_name = "TIER")]
    pub tier: Option<String>,
}

impl Claimer {
    /// The tasks these options let an agent claim.
    pub fn filter(&self) -> ClaimFilter {
        ClaimFilter {
            task_type: self.task_type.clone(),
            feature: self.feature.clone(),
            tier: self.tier.clone(),
            skip: std::collections::BTreeSet::new(),
        }
    }
}

/// Parses a non-negative amount of dollars.
pub fn parse_dollars(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|amount| amount.is_finite() && *amount >= 0.0)
        .ok_or_else(|| format!("`{text}` is not an amount of dollars like `0.42`"))
}
