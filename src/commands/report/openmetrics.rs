//! `gitprio report --format openmetrics`: the fleet's figures in the `OpenMetrics` text
//! format (what Prometheus scrapes), with low-cardinality labels only: task type, model,
//! agent, outcome; never a task, run or session id.

use std::fmt::Write as _;

use gitprio_core::usage::money::round_usd;
use gitprio_core::usage::report::{FleetRow, Report};

/// Escapes a label value: backslash, double quote and newline.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes one metric family's header.
fn family(text: &mut String, name: &str, kind: &str, unit: Option<&str>, help: &str) {
    let _ = writeln!(text, "# TYPE {name} {kind}");
    if let Some(unit) = unit {
        let _ = writeln!(text, "# UNIT {name} {unit}");
    }
    let _ = writeln!(text, "# HELP {name} {help}");
}

/// Renders `report` as an `OpenMetrics` exposition, ending with `# EOF`.
pub fn render(report: &Report) -> String {
    let mut text = String::new();
    push_tokens(&mut text, report);
    push_fleet_counters(&mut text, report);
    push_runs(&mut text, report);
    push_gauges(&mut text, report);
    text.push_str("# EOF\n");
    text
}

/// The tokens counter, by task type, model, agent and kind.
fn push_tokens(text: &mut String, report: &Report) {
    family(
        text,
        "gitprio_tokens",
        "counter",
        None,
        "Tokens spent, by task type, model, agent and kind (input, output, cache_read, cache_write).",
    );
    for row in &report.fleet {
        let labels = format!(
            "type=\"{}\",model=\"{}\",agent=\"{}\"",
            label(&row.task_type),
            label(&row.model),
            label(&row.agent)
        );
        let totals = &row.totals;
        for (kind, value) in [
            ("input", totals.input),
            ("output", totals.output),
            ("cache_read", totals.cache_read),
            ("cache_write", totals.cache_write_5m + totals.cache_write_1h),
        ] {
            let _ = writeln!(
                text,
                "gitprio_tokens_total{{{labels},kind=\"{kind}\"}} {value}"
            );
        }
    }
}

/// A fleet row's sample value for one counter, `None` for no sample.
type RowValue = fn(&FleetRow) -> Option<String>;

/// The requests, cost and unpriced tokens counters, by task type, model and agent; a row
/// without unpriced tokens has no unpriced sample, and a row of a model with no price no
/// cost sample: Prometheus has no "unknown", and a `0` would read as free.
fn push_fleet_counters(text: &mut String, report: &Report) {
    let counters: [(&str, Option<&str>, &str, RowValue); 3] = [
        (
            "gitprio_requests",
            None,
            "API requests, by task type, model and agent.",
            |row| Some(row.totals.requests.to_string()),
        ),
        (
            "gitprio_cost_usd",
            Some("usd"),
            "Estimated cost at list price of the priced tokens, by task type, model and agent.",
            |row| (row.unpriced_tokens == 0).then(|| round_usd(row.cost_usd).to_string()),
        ),
        (
            "gitprio_unpriced_tokens",
            None,
            "Tokens of models with no known price: their cost is unknown, not zero.",
            |row| (row.unpriced_tokens > 0).then(|| row.unpriced_tokens.to_string()),
        ),
    ];
    for (name, unit, help, value) in counters {
        family(text, name, "counter", unit, help);
        for row in &report.fleet {
            if let Some(value) = value(row) {
                let _ = writeln!(
                    text,
                    "{name}_total{{type=\"{}\",model=\"{}\",agent=\"{}\"}} {value}",
                    label(&row.task_type),
                    label(&row.model),
                    label(&row.agent),
                );
            }
        }
    }
}

/// The runs counter, by task type, agent and outcome: ended runs only. A run in flight is
/// in the gauge `gitprio_in_flight_runs`: counted here as `open`, its series would drop
/// when it ends, which Prometheus reads as a counter reset.
fn push_runs(text: &mut String, report: &Report) {
    family(
        text,
        "gitprio_runs",
        "counter",
        None,
        "Ended runs (lease generations), by task type, agent and outcome; runs in flight are gitprio_in_flight_runs.",
    );
    for runs in report
        .fleet_runs
        .iter()
        .filter(|runs| runs.outcome != gitprio_core::usage::report::IN_FLIGHT)
    {
        let _ = writeln!(
            text,
            "gitprio_runs_total{{type=\"{}\",agent=\"{}\",outcome=\"{}\"}} {}",
            label(&runs.task_type),
            label(&runs.agent),
            label(&runs.outcome),
            runs.runs
        );
    }
}

/// The gauges of the report's summary and waste, and the tied share of imported tokens.
#[expect(clippy::cast_precision_loss, reason = "metric values are floats")]
fn push_gauges(text: &mut String, report: &Report) {
    let summary = &report.summary;
    let waste = &report.waste;
    let gauges: [(&str, Option<&str>, &str, f64); 8] = [
        (
            "gitprio_completed_tasks",
            None,
            "Tasks with a completed run.",
            summary.completed_tasks as f64,
        ),
        (
            "gitprio_value_points",
            None,
            "Value points of the completed tasks.",
            summary.value_points as f64,
        ),
        (
            "gitprio_unmerged_tokens",
            None,
            "Tokens of completed runs whose task is not done on the queue's branch.",
            waste.unmerged_tokens as f64,
        ),
        (
            "gitprio_unmerged_cost_usd",
            Some("usd"),
            "Estimated cost of those runs.",
            waste.unmerged_cost_usd,
        ),
        (
            "gitprio_unfinished_cost_usd",
            Some("usd"),
            "Estimated cost of runs that ended without completing their task.",
            waste.unfinished_cost_usd,
        ),
        (
            "gitprio_in_flight_runs",
            None,
            "Runs still going.",
            waste.in_flight_runs.len() as f64,
        ),
        (
            "gitprio_in_flight_tokens",
            None,
            "Tokens of runs still going: neither value nor waste yet.",
            summary.in_flight_tokens as f64,
        ),
        (
            "gitprio_model_overspend_usd",
            Some("usd"),
            "Spend beyond the same tokens on the models tasks were routed to.",
            waste.overspend_usd,
        ),
    ];
    for (name, unit, help, value) in gauges {
        family(text, name, "gauge", unit, help);
        let value = if unit == Some("usd") {
            round_usd(value)
        } else {
            value
        };
        let _ = writeln!(text, "{name} {value}");
    }
    if let Some(share) = report
        .attribution
        .as_ref()
        .and_then(|share| share.tied_share)
    {
        family(
            text,
            "gitprio_tied_ratio",
            "gauge",
            Some("ratio"),
            "Share of the reported and this machine's unattributed tokens tied to tasks (absent until `gitprio usage import` has run on this machine).",
        );
        let _ = writeln!(text, "gitprio_tied_ratio {share}");
    }
    if let Some(share) = report
        .attribution
        .as_ref()
        .and_then(|share| share.tied_cost_share)
    {
        family(
            text,
            "gitprio_tied_cost_ratio",
            "gauge",
            Some("ratio"),
            "The same share in dollars, of the priced spend.",
        );
        let _ = writeln!(text, "gitprio_tied_cost_ratio {share}");
    }
}
