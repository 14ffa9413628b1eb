//! `gitprio report --format openmetrics`: the fleet's figures in the `OpenMetrics` text
//! format (what Prometheus scrapes), with low-cardinality labels only: task type, model,
//! agent, outcome; never a task, run or session id.

use std::fmt::Write as _;

use gitprio_core::usage::report::Report;

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
#[expect(clippy::cast_precision_loss, reason = "metric values are floats")]
#[expect(
    clippy::too_many_lines,
    reason = "a renderer: every metric family in exposition order"
)]
pub fn render(report: &Report) -> String {
    let mut text = String::new();
    family(
        &mut text,
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
    family(
        &mut text,
        "gitprio_requests",
        "counter",
        None,
        "API requests, by task type, model and agent.",
    );
    for row in &report.fleet {
        let _ = writeln!(
            text,
            "gitprio_requests_total{{type=\"{}\",model=\"{}\",agent=\"{}\"}} {}",
            label(&row.task_type),
            label(&row.model),
            label(&row.agent),
            row.totals.requests
        );
    }
    family(
        &mut text,
        "gitprio_cost_usd",
        "counter",
        Some("usd"),
        "Estimated cost at list price of the priced tokens, by task type, model and agent.",
    );
    for row in &report.fleet {
        let _ = writeln!(
            text,
            "gitprio_cost_usd_total{{type=\"{}\",model=\"{}\",agent=\"{}\"}} {}",
            label(&row.task_type),
            label(&row.model),
            label(&row.agent),
            row.cost_usd
        );
    }
    family(
        &mut text,
        "gitprio_unpriced_tokens",
        "counter",
        None,
        "Tokens of models with no known price: their cost is unknown, not zero.",
    );
    for row in report.fleet.iter().filter(|row| row.unpriced_tokens > 0) {
        let _ = writeln!(
            text,
            "gitprio_unpriced_tokens_total{{type=\"{}\",model=\"{}\",agent=\"{}\"}} {}",
            label(&row.task_type),
            label(&row.model),
            label(&row.agent),
            row.unpriced_tokens
        );
    }
    family(
        &mut text,
        "gitprio_runs",
        "counter",
        None,
        "Runs (lease generations), by task type, agent and outcome (open: in flight).",
    );
    for runs in &report.fleet_runs {
        let _ = writeln!(
            text,
            "gitprio_runs_total{{type=\"{}\",agent=\"{}\",outcome=\"{}\"}} {}",
            label(&runs.task_type),
            label(&runs.agent),
            label(&runs.outcome),
            runs.runs
        );
    }
    let summary = &report.summary;
    let waste = &report.waste;
    let gauges: [(&str, Option<&str>, &str, f64); 7] = [
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
            "gitprio_model_overspend_usd",
            Some("usd"),
            "Spend beyond the same tokens on the models tasks were routed to.",
            waste.overspend_usd,
        ),
    ];
    for (name, unit, help, value) in gauges {
        family(&mut text, name, "gauge", unit, help);
        let _ = writeln!(text, "{name} {value}");
    }
    if let Some(share) = report
        .attribution
        .as_ref()
        .and_then(|share| share.tied_share)
    {
        family(
            &mut text,
            "gitprio_tied_ratio",
            "gauge",
            Some("ratio"),
            "Share of all imported tokens tied to tasks (the rest waits unattributed on this machine).",
        );
        let _ = writeln!(text, "gitprio_tied_ratio {share}");
    }
    text.push_str("# EOF\n");
    text
}
