//! `gitprio report`: value per token and waste, as a table, JSON, markdown or one HTML page.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::anyhow;
use clap::{Args, ValueEnum};
use gitprio_core::TaskId;
use gitprio_core::git::Repository;
use gitprio_core::lease::LeaseStore;
use gitprio_core::source::{self, QueueSource};
use gitprio_core::usage::report::{GroupBy, Report, RunFilter, TaskFacts, report};
use gitprio_core::usage::{Ledger, PriceTable};
use jiff::Timestamp;

use super::lease::{StoreArgs, store_mode};
use super::load_tasks;
use crate::cli::CommandResult;
use crate::settings::Settings;
use crate::{exit_code, output};

/// Where per-model price overrides live, in $ per million tokens.
pub const PRICES_PATH: &str = ".tasks/prices.yaml";

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Md,
    Html,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum By {
    Run,
    Agent,
    Type,
    Feature,
    Model,
    Day,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Group runs by this.
    #[arg(long, value_enum, default_value = "type")]
    pub by: By,
    /// Only runs started at or after this date (`2026-11-01`) or time (RFC 3339).
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Only runs started before this date or time.
    #[arg(long, value_name = "DATE")]
    pub until: Option<String>,
    /// Only the runs of this task.
    #[arg(long, value_name = "ID")]
    pub task: Option<String>,
    /// Only tasks of this feature.
    #[arg(long, value_name = "FEATURE")]
    pub feature: Option<String>,
    /// Output format: a terminal table, JSON, markdown (what the GitHub Action posts) or an HTML page.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Same as `--format json`.
    #[arg(long)]
    pub json: bool,
    /// Write the report to this file instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// Use the usage last fetched, without asking the remote.
    #[arg(long)]
    pub offline: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

fn parse_time(text: &str) -> anyhow::Result<Timestamp> {
    if let Ok(time) = text.parse::<Timestamp>() {
        return Ok(time);
    }
    let date: jiff::civil::Date = text
        .parse()
        .map_err(|_| anyhow!("`{text}` is not a date (2026-11-01) or an RFC 3339 time"))?;
    Ok(date.to_zoned(jiff::tz::TimeZone::UTC)?.timestamp())
}

pub fn run(settings: &Settings, args: &ReportArgs) -> CommandResult {
    let repo = Repository::discover(&settings.directory)?;
    let config = source::local_config(&repo)?;
    let store = LeaseStore::new(&repo, store_mode(&repo, &config, args.store.local)?);
    let ledger = Ledger::new(&store);
    if !args.offline {
        store.refresh()?;
        ledger.refresh()?;
    }
    let queue_source = store
        .queue_ref()
        .map_or(QueueSource::Default, QueueSource::Rev);
    let loaded = load_tasks(settings, &repo, &queue_source)?;
    let tasks: BTreeMap<TaskId, TaskFacts> = loaded
        .tasks
        .iter()
        .map(|task| (task.id.clone(), TaskFacts::from(task)))
        .collect();
    let prices = PriceTable::new(price_overrides(&repo, loaded.commit)?);
    let filter = RunFilter {
        since: args.since.as_deref().map(parse_time).transpose()?,
        until: args.until.as_deref().map(parse_time).transpose()?,
        task: args
            .task
            .as_deref()
            .map(|id| TaskId::new(id).ok_or_else(|| anyhow!("`{id}` is not a task id")))
            .transpose()?,
        feature: args.feature.clone(),
    };
    let group_by = match args.by {
        By::Run => GroupBy::Run,
        By::Agent => GroupBy::Agent,
        By::Type => GroupBy::Type,
        By::Feature => GroupBy::Feature,
        By::Model => GroupBy::Model,
        By::Day => GroupBy::Day,
    };
    let runs = ledger.all_runs()?;
    let report = report(&runs, &tasks, &prices, &filter, group_by);
    for (model, tokens) in &report.unpriced_models {
        output::message(
            settings,
            "warning",
            &format!(
                "no price for model `{model}` ({tokens} tokens): its cost is unknown, not zero; add it to {PRICES_PATH}"
            ),
        );
    }
    let format = if args.json { Format::Json } else { args.format };
    let text = match format {
        Format::Json => {
            let mut text = serde_json::to_string_pretty(&report)?;
            text.push('\n');
            text
        }
        Format::Table => table(&report),
        Format::Md => markdown(&report),
        Format::Html => html(&report),
    };
    match &args.output {
        Some(path) => std::fs::write(path, text)
            .map_err(|error| anyhow!("cannot write {}: {error}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(exit_code::SUCCESS)
}

pub(crate) fn price_overrides(
    repo: &Repository,
    commit: Option<gitprio_core::git::ObjectId>,
) -> anyhow::Result<BTreeMap<String, gitprio_core::usage::Price>> {
    let text = match commit
        .map(|commit| repo.entry_at(commit, PRICES_PATH))
        .transpose()?
    {
        Some(Some((blob, false))) => String::from_utf8_lossy(&repo.read_blob(blob)?).into_owned(),
        _ => match repo.workdir().map(|root| root.join(PRICES_PATH)) {
            Some(path) if path.is_file() => std::fs::read_to_string(path)?,
            _ => return Ok(BTreeMap::new()),
        },
    };
    PriceTable::parse_overrides(&text).map_err(|error| anyhow!("invalid {PRICES_PATH}: {error}"))
}

pub(crate) fn tokens(count: u64) -> String {
    #[expect(clippy::cast_precision_loss, reason = "rounded for display")]
    let value = count as f64;
    if count >= 1_000_000 {
        format!("{:.2}M", value / 1_000_000.0)
    } else if count >= 1_000 {
        format!("{:.1}k", value / 1_000.0)
    } else {
        count.to_string()
    }
}

pub(crate) fn dollars(value: Option<f64>) -> String {
    value.map_or_else(|| "unknown".to_owned(), |value| format!("${value:.2}"))
}

pub(crate) fn ratio(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |value| format!("{value:.digits$}"))
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| format!("{:.0}%", value * 100.0))
}

/// The cost of a summary; with unpriced tokens, the known part and what is unknown.
fn summary_cost(summary: &gitprio_core::usage::report::Summary) -> String {
    if summary.unpriced_tokens == 0 {
        dollars(Some(summary.cost_usd))
    } else {
        format!(
            "at least ${:.2} ({} tokens unpriced)",
            summary.cost_usd,
            tokens(summary.unpriced_tokens)
        )
    }
}

fn headline(report: &Report) -> Vec<(String, String)> {
    let summary = &report.summary;
    vec![
        ("runs".to_owned(), summary.runs.to_string()),
        (
            "completed tasks".to_owned(),
            summary.completed_tasks.to_string(),
        ),
        ("value points".to_owned(), summary.value_points.to_string()),
        ("tokens".to_owned(), tokens(summary.tokens)),
        ("cost".to_owned(), summary_cost(summary)),
        (
            "value per 1M tokens".to_owned(),
            ratio(summary.value_per_million_tokens, 2),
        ),
        (
            "tasks per 1M tokens".to_owned(),
            ratio(summary.tasks_per_million_tokens, 2),
        ),
        (
            "$ per completed task".to_owned(),
            dollars(summary.usd_per_completed_task),
        ),
        (
            "$ per value point".to_owned(),
            dollars(summary.usd_per_value_point),
        ),
        ("cache hit rate".to_owned(), percent(summary.cache_hit_rate)),
    ]
}

fn group_rows(report: &Report) -> Vec<Vec<String>> {
    let mut rows = vec![
        [
            "GROUP",
            "RUNS",
            "DONE",
            "VALUE",
            "TOKENS",
            "COST",
            "VALUE/1M",
            "CACHE HIT",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for group in &report.groups {
        let summary = &group.summary;
        rows.push(vec![
            group.key.clone(),
            summary.runs.to_string(),
            summary.completed_tasks.to_string(),
            summary.value_points.to_string(),
            tokens(summary.tokens),
            summary_cost(summary),
            ratio(summary.value_per_million_tokens, 2),
            percent(summary.cache_hit_rate),
        ]);
    }
    rows
}

/// The waste signals as (title, explanation, lines).
fn waste_sections(report: &Report) -> Vec<(&'static str, &'static str, Vec<String>)> {
    let waste = &report.waste;
    let distribution = &waste.tokens_per_completed_task;
    let mut sections = vec![(
        "Tokens per completed task",
        "All runs of a task count. A p99 far above the median means runaway loops.",
        if distribution.count == 0 {
            vec!["no completed task yet".to_owned()]
        } else {
            let mut lines = vec![format!(
                "median {}, p90 {}, p99 {}, max {} over {} tasks",
                tokens(distribution.median),
                tokens(distribution.p90),
                tokens(distribution.p99),
                tokens(distribution.max),
                distribution.count
            )];
            lines.extend(distribution.top.iter().map(|(task, spent, cost)| {
                format!("{task}: {} ({})", tokens(*spent), dollars(*cost))
            }));
            lines
        },
    )];
    sections.push((
        "Runs that did not complete their task",
        "Failed, released, parked or expired runs: their tokens bought no value.",
        if waste.unfinished_runs.is_empty() {
            vec!["none".to_owned()]
        } else {
            let mut lines = vec![format!(
                "{} runs, {} tokens, {}",
                waste.unfinished_runs.len(),
                tokens(waste.unfinished_tokens),
                dollars(Some(waste.unfinished_cost_usd))
            )];
            lines.extend(waste.unfinished_runs.iter().map(|run| {
                format!(
                    "{} run {} by {}: {}, {} tokens ({})",
                    run.task,
                    run.run,
                    run.agent,
                    run.outcome,
                    tokens(run.tokens),
                    dollars(run.cost_usd)
                )
            }));
            lines
        },
    ));
    sections.push((
        "Tasks that needed more than one attempt",
        "Each extra attempt paid for context and exploration again.",
        if waste.retried_tasks.is_empty() {
            vec!["none".to_owned()]
        } else {
            waste
                .retried_tasks
                .iter()
                .map(|(task, runs, spent)| {
                    format!("{task}: {runs} runs, {} tokens", tokens(*spent))
                })
                .collect()
        },
    ));
    sections.push((
        "Cache hit rate",
        "Cache reads over all input. Low rates mean prompts that do not share a stable prefix.",
        waste
            .cache_hit_by_agent
            .iter()
            .map(|(agent, rate)| format!("agent {agent}: {}", percent(*rate)))
            .chain(
                waste
                    .cache_hit_by_model
                    .iter()
                    .map(|(model, rate)| format!("model {model}: {}", percent(*rate))),
            )
            .collect(),
    ));
    sections.push((
        "Model mix per task type and week",
        "A cheap task type moving to a frontier model is drift.",
        waste
            .model_mix
            .iter()
            .map(|mix| {
                format!(
                    "{} {}: {} {:.0}% ({})",
                    mix.task_type,
                    mix.week,
                    mix.model,
                    mix.share * 100.0,
                    tokens(mix.tokens)
                )
            })
            .collect(),
    ));
    sections.push((
        "Context bundle size per day",
        "Mean estimated tokens handed over with each claim; growth is bloat.",
        if waste.context_tokens_by_day.is_empty() {
            vec!["not recorded".to_owned()]
        } else {
            waste
                .context_tokens_by_day
                .iter()
                .map(|(day, size)| format!("{day}: {}", tokens(*size)))
                .collect()
        },
    ));
    sections.push((
        "Runs over budget",
        "Runs that spent more than their task's budget.",
        if waste.over_budget.is_empty() {
            vec!["none".to_owned()]
        } else {
            waste
                .over_budget
                .iter()
                .map(|run| {
                    format!(
                        "{} run {}: {} of {} tokens",
                        run.task,
                        run.run,
                        tokens(run.tokens),
                        run.budget_tokens.map_or_else(|| "-".to_owned(), tokens)
                    )
                })
                .collect()
        },
    ));
    sections
}

fn table(report: &Report) -> String {
    let mut text = String::new();
    let headline: Vec<Vec<String>> = headline(report)
        .into_iter()
        .map(|(name, value)| vec![name, value])
        .collect();
    text.push_str(&output::render_table(&headline));
    let _ = writeln!(text, "\nBy {}:", report.group_by.name());
    text.push_str(&output::render_table(&group_rows(report)));
    for (title, explanation, lines) in waste_sections(report) {
        let _ = writeln!(text, "\n{title}: {explanation}");
        for line in lines {
            let _ = writeln!(text, "  {line}");
        }
    }
    let _ = writeln!(text, "\nPrices: {}", report.price_snapshot);
    text
}

fn markdown(report: &Report) -> String {
    let mut text = String::from("## gitprio: value per token\n\n| | |\n| --- | --- |\n");
    for (name, value) in headline(report) {
        let _ = writeln!(text, "| {name} | {value} |");
    }
    let rows = group_rows(report);
    let _ = writeln!(text, "\n### By {}\n", report.group_by.name());
    for (index, row) in rows.iter().enumerate() {
        let _ = writeln!(text, "| {} |", row.join(" | "));
        if index == 0 {
            let _ = writeln!(text, "|{}", " --- |".repeat(row.len()));
        }
    }
    text.push_str("\n### Waste\n");
    for (title, explanation, lines) in waste_sections(report) {
        let _ = writeln!(text, "\n**{title}.** {explanation}\n");
        for line in lines {
            let _ = writeln!(text, "- {line}");
        }
    }
    let _ = writeln!(
        text,
        "\n<sub>Costs are estimates at list prices ({}).</sub>",
        report.price_snapshot
    );
    text
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A horizontal bar chart as inline SVG.
#[expect(clippy::cast_precision_loss, reason = "pixel geometry")]
fn bar_chart(title: &str, bars: &[(String, f64, String)]) -> String {
    let width = 640.0;
    let label_width = 180.0;
    let row = 24.0;
    let height = row * bars.len().max(1) as f64 + 30.0;
    let max = bars
        .iter()
        .map(|(_, value, _)| *value)
        .fold(0.0_f64, f64::max)
        .max(f64::MIN_POSITIVE);
    let mut svg = format!(
        "<figure><figcaption>{}</figcaption><svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">",
        escape(title)
    );
    if bars.is_empty() {
        let _ = write!(svg, "<text x=\"0\" y=\"20\">no data</text>");
    }
    for (index, (label, value, shown)) in bars.iter().enumerate() {
        let y = row * index as f64 + 10.0;
        let bar = (width - label_width - 90.0) * value / max;
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{:.1}\" font-size=\"12\">{}</text><rect x=\"{label_width}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"16\" fill=\"#4c78a8\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\">{}</text>",
            y + 12.0,
            escape(label),
            label_width + bar + 6.0,
            y + 12.0,
            escape(shown)
        );
    }
    svg.push_str("</svg></figure>\n");
    svg
}

#[expect(clippy::cast_precision_loss, reason = "chart values")]
fn html(report: &Report) -> String {
    let mut body = String::from("<h1>gitprio: value per token</h1>\n<table class=\"headline\">");
    for (name, value) in headline(report) {
        let _ = write!(
            body,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(&name),
            escape(&value)
        );
    }
    body.push_str("</table>\n");
    // Tokens per completed task, as a histogram of 8 buckets.
    let spent: Vec<u64> = {
        let mut by_task: BTreeMap<&TaskId, (u64, bool)> = BTreeMap::new();
        for run in &report.runs {
            let entry = by_task.entry(&run.task).or_default();
            entry.0 += run.tokens;
            entry.1 |= run.outcome == "completed";
        }
        by_task
            .values()
            .filter(|(_, done)| *done)
            .map(|(tokens, _)| *tokens)
            .collect()
    };
    let max = spent.iter().copied().max().unwrap_or(0).max(1);
    let step = max.div_ceil(8).max(1);
    let mut buckets = [0_u64; 8];
    for value in &spent {
        let index = usize::try_from((value.saturating_sub(1)) / step)
            .unwrap_or(7)
            .min(7);
        buckets[index] += 1;
    }
    let histogram: Vec<(String, f64, String)> = buckets
        .iter()
        .enumerate()
        .map(|(index, count)| {
            let low = step * index as u64;
            (
                format!("{}–{}", tokens(low), tokens(low + step)),
                *count as f64,
                count.to_string(),
            )
        })
        .collect();
    body.push_str(&bar_chart(
        "Completed tasks by tokens spent (all runs)",
        &histogram,
    ));
    let by_group: Vec<(String, f64, String)> = report
        .groups
        .iter()
        .map(|group| {
            let value = group.summary.value_per_million_tokens.unwrap_or(0.0);
            (group.key.clone(), value, format!("{value:.2}"))
        })
        .collect();
    body.push_str(&bar_chart(
        &format!("Value points per 1M tokens, by {}", report.group_by.name()),
        &by_group,
    ));
    let mut per_day: BTreeMap<String, u64> = BTreeMap::new();
    for run in &report.runs {
        *per_day
            .entry(run.started_at.to_string()[..10].to_owned())
            .or_default() += run.tokens;
    }
    let daily: Vec<(String, f64, String)> = per_day
        .into_iter()
        .map(|(day, spent)| (day, spent as f64, tokens(spent)))
        .collect();
    body.push_str(&bar_chart("Tokens spent per day", &daily));
    let rows = group_rows(report);
    body.push_str("<h2>Groups</h2><table>");
    for (index, row) in rows.iter().enumerate() {
        let cell = if index == 0 { "th" } else { "td" };
        body.push_str("<tr>");
        for value in row {
            let _ = write!(body, "<{cell}>{}</{cell}>", escape(value));
        }
        body.push_str("</tr>");
    }
    body.push_str("</table>\n<h2>Waste</h2>\n");
    for (title, explanation, lines) in waste_sections(report) {
        let _ = write!(
            body,
            "<h3>{}</h3><p>{}</p><ul>",
            escape(title),
            escape(explanation)
        );
        for line in lines {
            let _ = write!(body, "<li>{}</li>", escape(&line));
        }
        body.push_str("</ul>\n");
    }
    let _ = write!(
        body,
        "<footer>Costs are estimates at list prices ({}).</footer>",
        escape(report.price_snapshot)
    );
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>gitprio report</title>\n<style>body{{font-family:system-ui,sans-serif;max-width:900px;margin:2em auto;color:#222}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}figure{{margin:1.5em 0}}figcaption{{font-weight:600;margin-bottom:.5em}}footer{{color:#666;font-size:.9em;margin-top:2em}}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
}
