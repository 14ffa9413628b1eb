//! `gitprio report`: value per token and waste, as a table, JSON, markdown or one HTML page.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::anyhow;
use clap::{Args, ValueEnum};
use gitprio_core::TaskId;
use gitprio_core::git::Repository;
use gitprio_core::usage::attribute::{Places, Unattributed};
use gitprio_core::usage::import::ImportState;
use gitprio_core::usage::money::{Cost, Usd};
use gitprio_core::usage::report::{
    Counted, Distribution, GroupBy, IN_FLIGHT, PullRequestFacts, Report, RepositoryPriceFile,
    RunFilter, RunLine, TaskFacts, UnattributedSpans, Waste, add_unattributed, day_of,
    outcome_text, pull_request_signals, report,
};
use gitprio_core::usage::{Ledger, PriceTable};
use jiff::Timestamp;

use crate::args::StoreArgs;
use crate::cli::CommandResult;
use crate::output::{Align, numbers_after, percent, ratio, tokens};
use crate::reading::load_tasks;
use crate::settings::Settings;
use crate::{exit_code, output};
use gitprio_core::workspace::{Workspace, price_overrides};

mod openmetrics;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Md,
    Html,
    /// The fleet's figures in the `OpenMetrics` (Prometheus) text format.
    Openmetrics,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum By {
    Run,
    Agent,
    Type,
    Feature,
    Model,
    Day,
    Week,
    Month,
}

impl By {
    fn group_by(self) -> GroupBy {
        match self {
            By::Run => GroupBy::Run,
            By::Agent => GroupBy::Agent,
            By::Type => GroupBy::Type,
            By::Feature => GroupBy::Feature,
            By::Model => GroupBy::Model,
            By::Day => GroupBy::Day,
            By::Week => GroupBy::Week,
            By::Month => GroupBy::Month,
        }
    }
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Group runs by this.
    #[arg(long, value_enum, default_value = "type")]
    pub by: By,
    /// Only requests made at or after this date (`2026-11-01`, midnight UTC) or time with its
    /// zone (`2026-11-01T09:00:00Z`, RFC 3339), each by its own time, not by its run's start.
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Only requests made before this date or time: `--until 2026-11-02` ends as Nov 2 begins.
    #[arg(long, value_name = "DATE")]
    pub until: Option<String>,
    /// Only the runs of this task.
    #[arg(long, value_name = "ID")]
    pub task: Option<String>,
    /// Only tasks of this feature.
    #[arg(long, value_name = "FEATURE")]
    pub feature: Option<String>,
    /// Output format: a terminal table, JSON, markdown (what the GitHub Action posts), an
    /// HTML page, or `OpenMetrics` text for Prometheus (type, model and agent labels).
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
    /// Refresh the bundled prices from this file, without network: `LiteLLM`'s
    /// `model_prices_and_context_window.json` (dollars per token), or a YAML map like
    /// `.tasks/prices.yaml` (dollars per million tokens). `.tasks/prices.yaml` still wins.
    #[arg(long, value_name = "FILE")]
    pub prices: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Said instead of a table of zeros when the ledger holds no run; the machine formats
/// (JSON, markdown, HTML, `OpenMetrics`) still print their empty report after it.
const NO_RUNS: &str = "no runs yet: `gitprio run` records them, or an agent's `gitprio claim` then `gitprio usage record` or `gitprio usage import`";

/// Says which of the report's filters left none of the ledger's `total` runs, in the
/// flags' own words, instead of a table of zeros.
fn filtered_out(args: &ReportArgs, total: usize) -> String {
    let flags: Vec<String> = [
        ("--since", &args.since),
        ("--until", &args.until),
        ("--task", &args.task),
        ("--feature", &args.feature),
    ]
    .into_iter()
    .filter_map(|(flag, value)| value.as_ref().map(|value| format!("{flag} {value}")))
    .collect();
    let runs = if total == 1 { "run" } else { "runs" };
    format!(
        "no runs match `{}` (the ledger holds {total} {runs}): widen or drop the filter",
        flags.join(" ")
    )
}

/// Said instead of [`NO_RUNS`] with `--offline` in a clone that never fetched the ledger:
/// the remote may hold runs this clone has not seen.
const NO_RUNS_OFFLINE: &str = "nothing fetched yet: this clone never fetched the usage ledger; run without `--offline` to fetch it";

/// Reads a `--since`/`--until` bound: a date (midnight UTC) or an RFC 3339 time with its
/// zone. A time without a zone is refused, not read as its date's midnight: the figures of
/// `--until 2026-11-02T06:00` would silently be those of a different time.
fn parse_time(text: &str) -> anyhow::Result<Timestamp> {
    let text = text.trim();
    let out_of_range = || anyhow!("`{text}` is out of range (years 0001 to 9999)");
    match text.parse::<Timestamp>() {
        Ok(time) => return Ok(time),
        // Longer than a date: a time of day is in it.
        Err(_) if text.len() > "2026-11-01".len() => {
            let zoned = text.strip_suffix(['Z', 'z']).or_else(|| {
                text.rsplit_once(['+', '-'])
                    .map(|(time, _)| time)
                    .filter(|time| time.contains(':'))
            });
            return Err(
                match zoned.unwrap_or(text).parse::<jiff::civil::DateTime>() {
                    Ok(_) if zoned.is_some() => out_of_range(),
                    Ok(_) => anyhow!(
                        "`{text}` has no zone: add `Z` for UTC or an offset such as `+02:00` (RFC 3339)"
                    ),
                    Err(_) => anyhow!(
                        "`{text}` is not an RFC 3339 time (2026-11-01T09:00:00Z) or a date (2026-11-01)"
                    ),
                },
            );
        }
        Err(_) => {}
    }
    let date: jiff::civil::Date = text.parse().map_err(|_| {
        anyhow!("`{text}` is not a date (2026-11-01) or an RFC 3339 time (2026-11-01T09:00:00Z)")
    })?;
    date.to_zoned(jiff::tz::TimeZone::UTC)
        .map(|zoned| zoned.timestamp())
        .map_err(|_| out_of_range())
}

/// The `--since`/`--until` bounds, refused when they leave no time between them.
fn time_bounds(args: &ReportArgs) -> anyhow::Result<(Option<Timestamp>, Option<Timestamp>)> {
    let since = args.since.as_deref().map(parse_time).transpose()?;
    let until = args.until.as_deref().map(parse_time).transpose()?;
    if let (Some(after), Some(before), Some(since_text), Some(until_text)) =
        (since, until, &args.since, &args.until)
        && after >= before
    {
        return Err(if after == before {
            anyhow!(
                "`--since {since_text}` and `--until {until_text}` leave no time: `--until` is the first moment left out (for the whole day {since_text}, use `--until` with the next day)"
            )
        } else {
            anyhow!(
                "`--since {since_text}` is after `--until {until_text}`: no request can be in both; swap them"
            )
        });
    }
    Ok((since, until))
}

pub fn run(settings: &Settings, args: &ReportArgs) -> CommandResult {
    let notices = output::Stderr(settings);
    let repo = Repository::discover(&settings.directory)?;
    let workspace =
        Workspace::open_quietly(&repo, settings.invocation(), args.store.choice(), &notices)?;
    let store = workspace.store();
    if !args.offline {
        store.refresh()?;
        Ledger::new(store).refresh()?;
    }
    let queue_source = workspace.queue_source();
    let loaded = load_tasks(settings, &repo, &queue_source)?;
    let tasks: BTreeMap<TaskId, TaskFacts> = loaded
        .tasks
        .iter()
        .map(|task| (task.id.clone(), TaskFacts::from(task)))
        .collect();
    let (prices, repository_prices) = prices(settings, args, &repo, loaded.commit)?;
    let (since, until) = time_bounds(args)?;
    let filter = RunFilter {
        since,
        until,
        task: args
            .task
            .as_deref()
            .map(|id| TaskId::new(id).ok_or_else(|| anyhow!("`{id}` is not a task id")))
            .transpose()?,
        feature: args.feature.clone(),
        now: Some(settings.now),
    };
    let group_by = args.by.group_by();
    let runs = workspace
        .settled_runs()?
        .with_unrecorded_attempts(&loaded, settings.now, workspace.skew())
        .runs;
    let format = if args.json { Format::Json } else { args.format };
    if runs.is_empty() {
        let never_fetched = matches!(store.mode(), gitprio_core::lease::Mode::Remote { .. })
            && store.last_refreshed().is_none();
        output::confirm(
            settings,
            if args.offline && never_fetched {
                NO_RUNS_OFFLINE
            } else {
                NO_RUNS
            },
        );
        // Nothing to ask GitHub or the unattributed store for a table of no runs.
        if matches!(format, Format::Table) {
            return Ok(exit_code::SUCCESS);
        }
    }
    let mut report = report(&runs, &tasks, &prices, &filter, group_by);
    if !runs.is_empty() && report.runs.is_empty() {
        output::confirm(settings, &filtered_out(args, runs.len()));
        if matches!(format, Format::Table) {
            return Ok(exit_code::SUCCESS);
        }
    }
    report.price_file = args.prices.as_ref().map(|path| path.display().to_string());
    report.repository_prices =
        (!repository_prices.prices.is_empty()).then(|| RepositoryPriceFile {
            file: gitprio_core::workspace::PRICES_PATH.to_owned(),
            models: repository_prices.prices.len(),
        });
    if !args.offline
        && let Some(pulls) = github_pull_requests(settings, &report)
    {
        pull_request_signals(&mut report, &pulls, &tasks);
    }
    add_machine_spend(settings, &repo, &mut report, &runs, &filter, &prices);
    if filter.task.is_some() || filter.feature.is_some() {
        // Unattributed spend is of no task or feature: set against one task's spend it is
        // a share nobody can act on (walk17 N17); the unfiltered report has the machine's.
        report.attribution = None;
    }
    output::unpriced_models(settings, &report.unpriced_models);
    let text = match format {
        Format::Json => {
            let mut text = serde_json::to_string_pretty(&report)?;
            text.push('\n');
            text
        }
        Format::Table => table(&report),
        Format::Md => markdown(&report),
        Format::Html => html(&report),
        Format::Openmetrics => openmetrics::render(&report),
    };
    match &args.output {
        // Whole or not at all: a crash or a full disk leaves the last report, not part of one.
        Some(path) => gitprio_core::file::replace(path, text.as_bytes())
            .map_err(|error| anyhow!("cannot write {}: {error}", path.display()))?,
        None => crate::output::out!("{text}")?,
    }
    Ok(exit_code::SUCCESS)
}

/// Adds this machine's unattributed spend to `report` (the tied share, the periods, the
/// 5-hour windows), or warns that it is left out when the store cannot be read.
fn add_machine_spend(
    settings: &Settings,
    repo: &Repository,
    report: &mut Report,
    runs: &[gitprio_core::usage::Run],
    filter: &RunFilter,
    prices: &PriceTable,
) {
    let store = Unattributed::open(repo.common_dir()).with_places(Places::of_repository(
        repo,
        runs.iter().map(|run| &run.meta),
    ));
    match store
        .spans(filter.since, filter.until)
        .and_then(|filtered| Ok((filtered, store.spans(None, None)?)))
    {
        Ok((filtered, all)) => {
            let imported = ImportState::path(repo.common_dir()).exists();
            let spans = UnattributedSpans {
                filtered: &filtered,
                all: &all,
                agent: &settings.agent,
            };
            add_unattributed(report, runs, filter, spans, prices, imported);
        }
        Err(error) => output::message(
            settings,
            "warning",
            &format!(
                "this machine's unattributed spend is left out (the share of spend tied to tasks, and in the 5-hour windows): {error}"
            ),
        ),
    }
}

/// Asks GitHub for the pull requests of each reported task's branch (`gitprio/<task>`),
/// where a token and the repository are known (`GITHUB_TOKEN` or `GH_TOKEN`, and
/// `GITHUB_REPOSITORY`, as in the Action; `GITHUB_API_URL` for GitHub Enterprise).
/// `None` without them, or with a warning when GitHub cannot be asked: git's view stands.
fn github_pull_requests(
    settings: &Settings,
    report: &Report,
) -> Option<BTreeMap<TaskId, Vec<PullRequestFacts>>> {
    use crate::github::{ApiSettings, GitHub};
    let variable = |name: &str| {
        std::env::var(name)
            .ok()
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    };
    let token = variable("GITHUB_TOKEN").or_else(|| variable("GH_TOKEN"))?;
    let repository = variable("GITHUB_REPOSITORY")?;
    let warn = |message: String| {
        output::message(
            settings,
            "warning",
            &format!("{message}; unmerged spend is git's view only (tasks not done)"),
        );
    };
    let Some((owner, name)) = repository.split_once('/') else {
        warn(format!(
            "GITHUB_REPOSITORY `{repository}` is not `owner/name`"
        ));
        return None;
    };
    let github = GitHub::new(ApiSettings {
        api_url: variable("GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".to_owned()),
        token,
        owner: owner.to_owned(),
        repo: name.to_owned(),
        author: None,
    })
    .map_err(|error| warn(format!("{error:#}")))
    .ok()?
    .with_max_wait(std::time::Duration::from_secs(60));
    let tasks: std::collections::BTreeSet<&TaskId> =
        report.runs.iter().map(|run| &run.task).collect();
    let mut pulls = BTreeMap::new();
    for task in tasks {
        match github.pull_requests_from(&format!("gitprio/{task}")) {
            Ok(found) => {
                pulls.insert(task.clone(), found);
            }
            Err(error) => {
                warn(format!(
                    "cannot ask GitHub for the pull requests of `{task}`: {error}"
                ));
                return None;
            }
        }
    }
    Some(pulls)
}

/// The prices the report's costs are at: the bundled table, under a `--prices` file,
/// under the queue's `.tasks/prices.yaml` (what of it cannot be read is warned about).
fn prices(
    settings: &Settings,
    args: &ReportArgs,
    repo: &Repository,
    commit: Option<gitprio_core::git::ObjectId>,
) -> anyhow::Result<(PriceTable, gitprio_core::workspace::RepositoryPrices)> {
    let mut known_prices = match &args.prices {
        Some(path) => price_file(settings, path)?,
        None => BTreeMap::new(),
    };
    let repository_prices = price_overrides(repo, commit)?;
    output::price_problems(settings, &repository_prices);
    known_prices.extend(repository_prices.prices.clone());
    Ok((PriceTable::new(known_prices), repository_prices))
}

/// Reads a price file the user gives: `LiteLLM` JSON, else the `.tasks/prices.yaml` shape.
/// A `LiteLLM` entry whose price is not a number is named in a warning and left out.
fn price_file(
    settings: &Settings,
    path: &std::path::Path,
) -> anyhow::Result<BTreeMap<String, gitprio_core::usage::Price>> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| anyhow!("cannot read the price file {}: {error}", path.display()))?;
    let invalid = |error: String| anyhow!("invalid price file {}: {error}", path.display());
    let (prices, refused) = if text.trim_start().starts_with('{') {
        let parsed = PriceTable::parse_litellm(&text).map_err(invalid)?;
        (parsed.prices, parsed.refused)
    } else {
        (
            PriceTable::parse_overrides(&text).map_err(invalid)?,
            Vec::new(),
        )
    };
    if prices.is_empty() {
        let why = refused
            .first()
            .map(|first| format!(" ({first})"))
            .unwrap_or_default();
        return Err(anyhow!(
            "the price file {} prices no model{why} (LiteLLM JSON or a YAML map of model to input and output)",
            path.display()
        ));
    }
    for why in &refused {
        output::message(
            settings,
            "warning",
            &format!("price file {}: {why}; left out", path.display()),
        );
    }
    Ok(prices)
}

/// How many models the repository's `.tasks/prices.yaml` prices in this report (0: none).
fn repository_models(report: &Report) -> usize {
    report
        .repository_prices
        .as_ref()
        .map_or(0, |file| file.models)
}

/// The share of spend tied to tasks, as headline rows: the share (tied against this
/// repository's unattributed spend), then what is left out of it (other projects'
/// sessions, records that name no directory) when there is any.
fn attribution_rows(report: &Report) -> Vec<(String, String)> {
    let Some(share) = report.attribution.as_ref() else {
        return Vec::new();
    };
    let unattributed_cost = output::cost(Cost {
        usd: share.unattributed_cost_usd,
        unpriced_tokens: share.unattributed_unpriced_tokens,
    });
    let unpriced = report.summary.unpriced_tokens + share.unattributed_unpriced_tokens;
    let in_dollars = share.tied_cost_share.map_or_else(String::new, |tied| {
        format!(
            " and {} of the {}dollars",
            percent(Some(tied)),
            if unpriced > 0 { "priced " } else { "" }
        )
    });
    let text = match share.tied_share {
        Some(tied) => format!(
            "{} of {} tokens{in_dollars}: this report's {} tokens, {}; {} unattributed in this repository's checkout and worktrees, {unattributed_cost}",
            percent(Some(tied)),
            tokens(share.tied_tokens + share.unattributed_tokens),
            tokens(share.tied_tokens),
            output::cost(report.summary.cost()),
            tokens(share.unattributed_tokens),
        ),
        None => format!(
            "unknown: no `gitprio usage import` on this machine yet to set this report's {} tokens against (it files the spend of agent logs that no run claims)",
            tokens(share.tied_tokens)
        ),
    };
    let mut rows = vec![("tied to tasks".to_owned(), text)];
    if share.other_projects_tokens > 0 {
        rows.push((
            "other projects".to_owned(),
            format!(
                "{} tokens, {}: sessions on this machine outside this repository, not in the share",
                tokens(share.other_projects_tokens),
                output::cost(Cost {
                    usd: share.other_projects_cost_usd,
                    unpriced_tokens: share.other_projects_unpriced_tokens,
                })
            ),
        ));
    }
    if share.unplaced_tokens > 0 {
        rows.push((
            "no directory".to_owned(),
            format!(
                "{} tokens, {}: unattributed records that name no directory (no cwd), so neither this repository's nor another's; not in the share",
                tokens(share.unplaced_tokens),
                output::cost(Cost {
                    usd: share.unplaced_cost_usd,
                    unpriced_tokens: share.unplaced_unpriced_tokens,
                })
            ),
        ));
    }
    rows
}

/// How a run with several models is counted when grouped by model (empty otherwise).
fn group_rule(report: &Report) -> &'static str {
    if report.group_by == GroupBy::Model {
        " (a run counts under each model it used, with that model's tokens; its completion and value under its main model (the one that spent most tokens))"
    } else {
        ""
    }
}

/// What the runs still going spent: beside the totals, outside the ratios.
fn in_flight_row(summary: &gitprio_core::usage::report::Summary) -> String {
    if summary.in_flight_runs == 0 {
        return "none".to_owned();
    }
    format!(
        "{} tokens, {}, in {}, not in the ratios",
        tokens(summary.in_flight_tokens),
        output::cost(Cost {
            usd: summary.in_flight_cost_usd,
            unpriced_tokens: summary.in_flight_unpriced_tokens,
        }),
        output::counted(summary.in_flight_runs, "run")
    )
}

/// The report's figures, by name: the summary table of every format.
fn headline(report: &Report) -> Vec<(String, String)> {
    let summary = &report.summary;
    let waste = &report.waste;
    let mut rows = vec![
        ("runs".to_owned(), summary.runs.to_string()),
        (
            "completed tasks".to_owned(),
            summary.completed_tasks.to_string(),
        ),
        ("value points".to_owned(), summary.value_points.to_string()),
        ("tokens".to_owned(), tokens(summary.tokens)),
        (cost_name(report), output::cost(summary.cost())),
        ("in flight".to_owned(), in_flight_row(summary)),
        (
            "unmerged spend".to_owned(),
            format!(
                "{}, {} tokens, in {} whose task is not done on the queue's branch{}",
                output::cost(Cost {
                    usd: waste.unmerged_cost_usd,
                    unpriced_tokens: waste.unmerged_unpriced_tokens,
                }),
                tokens(waste.unmerged_tokens),
                output::counted(waste.unmerged_runs.len(), "completed run"),
                if report.pull_requests {
                    " or whose pull request was closed unmerged"
                } else {
                    ""
                }
            ),
        ),
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
            per_unit(summary, summary.usd_per_completed_task),
        ),
        (
            "$ per value point".to_owned(),
            per_unit(summary, summary.usd_per_value_point),
        ),
        ("cache hit rate".to_owned(), percent(summary.cache_hit_rate)),
    ];
    rows.extend(attribution_rows(report));
    if repository_models(report) > 0 || report.price_file.is_some() {
        // Own row: the whole source is too long for the name of the cost row.
        let origin = output::price_origin(repository_models(report), report.price_file.as_deref());
        let from = origin.strip_prefix("prices ").unwrap_or(&origin).to_owned();
        rows.insert(5, ("prices".to_owned(), from));
    }
    rows
}

/// The name of the cost row: what the cost is estimated at, in full for the bundled
/// prices, else said on the `prices` row after it.
fn cost_name(report: &Report) -> String {
    if repository_models(report) > 0 || report.price_file.is_some() {
        "cost (estimated)".to_owned()
    } else {
        format!("cost ({})", output::list_price_label(0, None))
    }
}

/// Dollars per completed task or value point: `-` with none, `at least` with unpriced tokens.
fn per_unit(summary: &gitprio_core::usage::report::Summary, usd: Option<f64>) -> String {
    usd.map_or_else(
        || "-".to_owned(),
        |usd| {
            output::cost(Cost {
                usd,
                unpriced_tokens: summary.unpriced_tokens,
            })
        },
    )
}

/// The group table's columns: the group's name, then numbers.
const GROUP_ALIGN: [Align; 8] = numbers_after(1);

/// A task's runs table: run, agent, model, outcome, start, then tokens and cost.
const RUN_ALIGN: [Align; 7] = numbers_after(5);

/// The group table, headed by what it is grouped by (`AGENT`, `TYPE`, ...).
fn group_rows(report: &Report) -> Vec<Vec<String>> {
    let mut rows = vec![
        [
            report.group_by.name().to_uppercase().as_str(),
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
            output::cost(summary.cost()),
            ratio(summary.value_per_million_tokens, 2),
            percent(summary.cache_hit_rate),
        ]);
    }
    rows
}

/// A section of the waste signals: title, explanation, lines.
type Section = (&'static str, &'static str, Vec<String>);

/// The waste signals as (title, explanation, lines); a section with nothing to show says
/// `none`, in every format alike.
fn waste_sections(report: &Report) -> Vec<Section> {
    let mut sections = signal_sections(report);
    for (_, _, lines) in &mut sections {
        if lines.is_empty() {
            lines.push("none".to_owned());
        }
    }
    sections
}

/// What the tokens and the dollars per completed task count: over a period (`--since`,
/// `--until`) only its runs' spend inside it, not all its runs.
fn per_task_rules(period: bool) -> (&'static str, &'static str) {
    if period {
        (
            "The tokens of its runs inside the period count; a task that spent nothing in it is left out. A p99 far above the median means runaway loops.",
            "Dollars of a task's runs inside the period, nearest-rank percentiles: a p99 far above the median is runaway work.",
        )
    } else {
        (
            "All runs of a task count. A p99 far above the median means runaway loops.",
            "Dollars of all a task's runs, nearest-rank percentiles: a p99 far above the median is runaway work.",
        )
    }
}

/// The waste signals as (title, explanation, lines), as they come.
fn signal_sections(report: &Report) -> Vec<Section> {
    let waste = &report.waste;
    vec![
        (
            "Tokens per completed task",
            per_task_rules(report.period).0,
            distribution_lines(&waste.tokens_per_completed_task, report.period),
        ),
        (
            "Runs that did not complete their task",
            "Failed, released, parked or expired runs: their tokens bought no value.",
            run_lines(
                &waste.unfinished_runs,
                waste.unfinished_tokens,
                Cost {
                    usd: waste.unfinished_cost_usd,
                    unpriced_tokens: waste.unfinished_unpriced_tokens,
                },
            ),
        ),
        (
            "Runs in flight",
            "Still going: neither value nor waste yet.",
            run_lines(
                &waste.in_flight_runs,
                waste.in_flight_tokens,
                Cost {
                    usd: waste.in_flight_cost_usd,
                    unpriced_tokens: waste.in_flight_unpriced_tokens,
                },
            ),
        ),
        (
            "Unmerged spend",
            if report.pull_requests {
                "Completed runs whose task is not done on the queue's branch, or whose pull request was closed unmerged (GitHub): the work never landed (or not yet)."
            } else {
                "Completed runs whose task is not done on the queue's branch: the work never landed (or not yet)."
            },
            unmerged_lines(report),
        ),
        (
            "Cost per completed task by type",
            per_task_rules(report.period).1,
            cost_tail_lines(waste),
        ),
        (
            "Model overspend",
            "What runs spent beyond the same tokens on the model their task was routed to.",
            overspend_lines(waste),
        ),
        (
            "Tasks that needed more than one attempt",
            "Each extra attempt paid for context and exploration again.",
            retried_lines(waste),
        ),
        (
            "Cache hit rate",
            "Cache reads over all input. Low rates mean prompts that do not share a stable prefix.",
            cache_hit_lines(waste),
        ),
        (
            "Model mix per task type and week",
            "A cheap task type moving to a frontier model is drift.",
            model_mix_lines(waste),
        ),
        (
            "Context bundle size per day",
            "Mean estimated tokens handed over with each claim; growth is bloat.",
            context_lines(waste),
        ),
        (
            "Spend per day",
            spend_explanation(report, "day"),
            periods(report, &report.spend.by_day),
        ),
        (
            "Spend per week",
            spend_explanation(report, "week"),
            periods(report, &report.spend.by_week),
        ),
        (
            "Spend per month",
            spend_explanation(report, "month"),
            periods(report, &report.spend.by_month),
        ),
        (
            "5-hour windows",
            windows_explanation(report.spend.windows_count),
            windows(&report.spend.windows, report.spend.windows_count),
        ),
        (
            "Runs over budget",
            "Runs that spent more than their task's budget.",
            over_budget_lines(waste),
        ),
    ]
}

/// What the 5-hour windows count.
fn windows_explanation(counted: Counted) -> &'static str {
    match counted {
        Counted::All => {
            "The windows agent subscriptions bill limits in, per provider (Claude, Codex and Gemini meter apart) and agent (each agent is taken to have its own subscription), over all of the account's requests: the agent's tied requests, and for the agent running this report also this machine's unattributed ones (every project's), cut as ccusage's `blocks` cuts them; the active one with its burn rate and, while requests are coming, its projection."
        }
        Counted::Tied => {
            "The windows agent subscriptions bill limits in, per provider (Claude, Codex and Gemini meter apart) and agent (each agent is taken to have its own subscription), from the ledger's requests only (tied spend only: no `gitprio usage import` on this machine has read the requests no run claims); the active one with its burn rate and, while requests are coming, its projection."
        }
    }
}

/// The tokens per completed task: its percentiles, then the costliest tasks.
fn distribution_lines(distribution: &Distribution, period: bool) -> Vec<String> {
    if distribution.count == 0 {
        vec![if period {
            "no task completed in the period spent tokens in it".to_owned()
        } else {
            "no completed task yet".to_owned()
        }]
    } else {
        let mut lines = vec![format!(
            "median {}, p90 {}, p99 {}, max {} over {}",
            tokens(distribution.median),
            tokens(distribution.p90),
            tokens(distribution.p99),
            tokens(distribution.max),
            output::counted(distribution.count, "task")
        )];
        lines.extend(distribution.top.iter().map(|(task, spent, cost)| {
            format!("{task}: {} tokens, {}", tokens(*spent), output::cost(*cost))
        }));
        lines
    }
}

/// The unmerged runs, with what pull requests closed unmerged spent when they are known.
fn unmerged_lines(report: &Report) -> Vec<String> {
    let waste = &report.waste;
    let mut unmerged = run_lines(
        &waste.unmerged_runs,
        waste.unmerged_tokens,
        Cost {
            usd: waste.unmerged_cost_usd,
            unpriced_tokens: waste.unmerged_unpriced_tokens,
        },
    );
    if report.pull_requests && !waste.unmerged_runs.is_empty() {
        unmerged.insert(
            1,
            format!(
                "of which in pull requests closed unmerged: {} tokens, {}",
                tokens(waste.closed_unmerged_tokens),
                output::cost(Cost {
                    usd: waste.closed_unmerged_cost_usd,
                    unpriced_tokens: waste.closed_unmerged_unpriced_tokens,
                })
            ),
        );
    }
    unmerged
}

/// The cost percentiles of completed tasks, by type.
fn cost_tail_lines(waste: &Waste) -> Vec<String> {
    if waste.cost_tail_by_type.is_empty() {
        vec!["no completed task yet".to_owned()]
    } else {
        waste
            .cost_tail_by_type
            .iter()
            .map(|(kind, tail)| {
                // The amounts are of the priced tokens: with unpriced ones, floors.
                let floor = if tail.unpriced_tokens == 0 {
                    String::new()
                } else {
                    format!(
                        "; {} tokens of them unpriced, so these are floors",
                        tokens(tail.unpriced_tokens)
                    )
                };
                format!(
                    "{kind}: median {}, p90 {}, p99 {}, max {} over {}{floor}",
                    Usd(tail.median_usd),
                    Usd(tail.p90_usd),
                    Usd(tail.p99_usd),
                    Usd(tail.max_usd),
                    output::counted(tail.count, "task")
                )
            })
            .collect()
    }
}

/// The runs that spent more than their routed model would have, with the total.
fn overspend_lines(waste: &Waste) -> Vec<String> {
    let mut lines = Vec::new();
    if !waste.overspend.is_empty() {
        let floor = if waste.overspend_unpriced_tokens > 0 {
            "at least "
        } else {
            ""
        };
        lines.push(format!("{floor}{} in total", Usd(waste.overspend_usd)));
        lines.extend(waste.overspend.iter().map(|over| {
            let floor = if over.unpriced_tokens > 0 {
                "at least "
            } else {
                ""
            };
            format!(
                "{} run {}: {} spent, {floor}{} on {} ({floor}+{})",
                over.task,
                over.run,
                output::cost(Cost {
                    usd: over.cost_usd,
                    unpriced_tokens: over.unpriced_tokens,
                }),
                Usd(over.routed_cost_usd),
                over.routed_model,
                Usd(over.overspend_usd)
            )
        }));
    }
    lines.extend(waste.overspend_unknown.iter().map(|unknown| {
        format!(
            "{} run {}: overspend unknown: routed model {} has no price ({} spent)",
            unknown.task,
            unknown.run,
            unknown.routed_model,
            output::cost(Cost {
                usd: unknown.cost_usd,
                unpriced_tokens: unknown.unpriced_tokens,
            })
        )
    }));
    if lines.is_empty() {
        lines.push("none".to_owned());
    }
    lines
}

/// The tasks that took more than one run.
fn retried_lines(waste: &Waste) -> Vec<String> {
    if waste.retried_tasks.is_empty() {
        vec!["none".to_owned()]
    } else {
        let mut sorted: Vec<&(TaskId, usize, u64)> = waste.retried_tasks.iter().collect();
        sorted.sort_by_key(|(_, _, spent)| std::cmp::Reverse(*spent));
        let rest = sorted.split_off(sorted.len().min(LISTED_RUNS));
        let mut lines: Vec<String> = sorted
            .iter()
            .map(|(task, runs, spent)| format!("{task}: {runs} runs, {} tokens", tokens(*spent)))
            .collect();
        if !rest.is_empty() {
            lines.push(format!(
                "and {} more, {} tokens",
                rest.len(),
                tokens(rest.iter().map(|(_, _, spent)| spent).sum())
            ));
        }
        lines
    }
}

/// The cache hit rate by agent, then by model.
fn cache_hit_lines(waste: &Waste) -> Vec<String> {
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
        .collect()
}

/// Each model's share of a task type's tokens, by week.
fn model_mix_lines(waste: &Waste) -> Vec<String> {
    waste
        .model_mix
        .iter()
        .map(|mix| {
            format!(
                "{} {}: {} {} ({} tokens)",
                mix.task_type,
                mix.week,
                mix.model,
                percent(Some(mix.share)),
                tokens(mix.tokens)
            )
        })
        .collect()
}

/// The mean context bundle size, by day.
fn context_lines(waste: &Waste) -> Vec<String> {
    if waste.context_tokens_by_day.is_empty() {
        vec!["not recorded".to_owned()]
    } else {
        waste
            .context_tokens_by_day
            .iter()
            .map(|(day, size)| format!("{day}: {} tokens", tokens(*size)))
            .collect()
    }
}

/// The runs that spent more than their task's budget.
fn over_budget_lines(waste: &Waste) -> Vec<String> {
    if waste.over_budget.is_empty() {
        vec!["none".to_owned()]
    } else {
        let (shown, rest) = biggest_first(&waste.over_budget);
        let mut lines: Vec<String> = shown
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
            .collect();
        lines.extend(rest_line(&rest));
        lines
    }
}

/// What a spend-over-time section counts, after `grouping` (how it groups requests): the
/// unattributed spend too once an import has read it (as the windows).
fn spend_explanation(report: &Report, grouping: &'static str) -> &'static str {
    match (grouping, report.spend.windows_count == Counted::All) {
        ("day", true) => {
            "Grouped by the UTC day of each request: tied (the ledger's runs) and, beside it, unattributed (this machine's requests that no run claims, every project's)."
        }
        ("week", true) => {
            "Grouped by the ISO week of each request: tied (the ledger's runs) and, beside it, unattributed (this machine's requests that no run claims, every project's)."
        }
        ("month", true) => {
            "Grouped by the month of each request: tied (the ledger's runs) and, beside it, unattributed (this machine's requests that no run claims, every project's)."
        }
        ("day", false) => {
            "Grouped by the UTC day of each request: tied spend only (the ledger's runs)."
        }
        ("week", false) => {
            "Grouped by the ISO week of each request: tied spend only (the ledger's runs)."
        }
        _ => "Grouped by the month of each request: tied spend only (the ledger's runs).",
    }
}

/// One line per period: tokens, requests, cost; tied, and unattributed when the store
/// was read.
fn periods(report: &Report, periods: &[gitprio_core::usage::report::Period]) -> Vec<String> {
    if periods.is_empty() {
        return vec!["none".to_owned()];
    }
    let spent = |tokens_spent: u64, requests: u64, usd: f64, unpriced_tokens: u64| {
        format!(
            "{} tokens in {}, {}",
            tokens(tokens_spent),
            output::counted(usize::try_from(requests).unwrap_or(usize::MAX), "request"),
            output::cost(Cost {
                usd,
                unpriced_tokens
            })
        )
    };
    periods
        .iter()
        .map(|period| {
            let tied = spent(
                period.tokens,
                period.requests,
                period.cost_usd,
                period.unpriced_tokens,
            );
            if report.spend.windows_count == Counted::All {
                let unattributed = if period.unattributed_requests == 0 {
                    "none".to_owned()
                } else {
                    spent(
                        period.unattributed_tokens,
                        period.unattributed_requests,
                        period.unattributed_cost_usd,
                        period.unattributed_unpriced_tokens,
                    )
                };
                format!(
                    "{}: tied {tied}; unattributed {unattributed}",
                    period.period
                )
            } else {
                format!("{}: {tied}", period.period)
            }
        })
        .collect()
}

/// The last 5-hour windows (at most 10), newest last.
fn windows(windows: &[gitprio_core::usage::report::Window], counted: Counted) -> Vec<String> {
    if windows.is_empty() {
        return vec!["none".to_owned()];
    }
    windows
        .iter()
        .skip(windows.len().saturating_sub(10))
        .map(|window| {
            // A window across midnight names the day it ends on.
            let end = if day_of(window.end) == day_of(window.start) {
                window.end.strftime("%H:%M").to_string()
            } else {
                output::minute(window.end)
            };
            let mut line = format!(
                "{}'s {} {} to {end}: {} tokens, {}",
                window.agent,
                window.provider,
                output::minute(window.start),
                tokens(window.tokens),
                output::cost(Cost {
                    usd: window.cost_usd,
                    unpriced_tokens: window.unpriced_tokens,
                })
            );
            if counted == Counted::All {
                let _ = write!(
                    line,
                    " (tied {}, unattributed {})",
                    tokens(window.tied_tokens),
                    tokens(window.unattributed_tokens)
                );
            }
            if let Some(rate) = window.tokens_per_hour {
                #[expect(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "display"
                )]
                let rate = rate as u64;
                let _ = write!(line, " (active: {} tokens/hour, ", tokens(rate));
                match (window.projected_tokens, window.last_request_at) {
                    (Some(projected), _) => {
                        let _ = write!(
                            line,
                            "projected {} tokens, {})",
                            tokens(projected),
                            output::cost(Cost {
                                usd: window.projected_cost_usd.unwrap_or_default(),
                                unpriced_tokens: window
                                    .projected_unpriced_tokens
                                    .unwrap_or_default(),
                            })
                        );
                    }
                    (None, Some(last)) => {
                        let _ = write!(
                            line,
                            "no request since {}: no projection)",
                            last.strftime("%H:%M")
                        );
                    }
                    (None, None) => line.push_str("no projection)"),
                }
            }
            line
        })
        .collect()
}

/// A count of runs with their tokens and cost, then one line per run.
fn run_lines(runs: &[RunLine], spent: u64, cost: Cost) -> Vec<String> {
    if runs.is_empty() {
        return vec!["none".to_owned()];
    }
    let mut lines = vec![format!(
        "{}, {} tokens, {}",
        output::counted(runs.len(), "run"),
        tokens(spent),
        output::cost(cost)
    )];
    let (shown, rest) = biggest_first(runs);
    lines.extend(shown.iter().map(|run| {
        let pull = run.pull_request.as_ref().map_or_else(String::new, |pull| {
            format!(", pull request #{} {}", pull.number, pull.state.as_str())
        });
        let state = if run.outcome == IN_FLIGHT {
            format!(
                "in flight since {}",
                run.started_at.strftime("%Y-%m-%d %H:%M UTC")
            )
        } else {
            run.outcome.clone()
        };
        // Zero recorded tokens from a run still going says nothing of what it spent.
        let spent = if run.outcome == IN_FLIGHT && run.requests == 0 && run.tokens == 0 {
            "no usage recorded yet".to_owned()
        } else {
            format!(
                "{} tokens, {}",
                tokens(run.tokens),
                output::cost(run.cost())
            )
        };
        format!(
            "{} run {} by {}: {state}, {spent}{pull}",
            run.task, run.run, run.agent,
        )
    }));
    lines.extend(rest_line(&rest));
    lines
}

/// How many runs a list shows: the costliest, then one line for the rest.
const LISTED_RUNS: usize = 10;

/// `runs` costliest first (priced dollars, then tokens; task and run as they come for
/// ties), cut after [`LISTED_RUNS`]: the shown ones, and the rest.
fn biggest_first(runs: &[RunLine]) -> (Vec<&RunLine>, Vec<&RunLine>) {
    let mut sorted: Vec<&RunLine> = runs.iter().collect();
    sorted.sort_by(|left, right| {
        right
            .cost_usd
            .total_cmp(&left.cost_usd)
            .then(right.tokens.cmp(&left.tokens))
    });
    let rest = sorted.split_off(sorted.len().min(LISTED_RUNS));
    (sorted, rest)
}

/// "and 81 more, 16.2k tokens, $0.24" for the runs a list leaves out.
fn rest_line(rest: &[&RunLine]) -> Option<String> {
    if rest.is_empty() {
        return None;
    }
    let mut cost = Cost::default();
    for run in rest {
        cost.add(run.cost());
    }
    Some(format!(
        "and {} more, {} tokens, {}",
        rest.len(),
        tokens(rest.iter().map(|run| run.tokens).sum()),
        output::cost(cost)
    ))
}

/// What every cost is and the prices behind it, in full, for the footer.
fn price_source(report: &Report) -> String {
    let origin = output::price_origin(repository_models(report), report.price_file.as_deref());
    if repository_models(report) == 0 && report.price_file.is_none() {
        format!(
            "estimates at list price, not bills: bundled {origin} ({}); unknown models stay unknown, never $0",
            report.price_snapshot
        )
    } else {
        format!(
            "estimates, not bills: {origin} ({}); unknown models stay unknown, never $0",
            report.price_snapshot
        )
    }
}

fn table(report: &Report) -> String {
    let mut text = String::new();
    let headline: Vec<Vec<String>> = headline(report)
        .into_iter()
        .map(|(name, value)| vec![name, value])
        .collect();
    text.push_str(&output::render_table(&headline));
    let _ = writeln!(
        text,
        "\nBy {}{}:",
        report.group_by.name(),
        group_rule(report)
    );
    text.push_str(&output::render_aligned_table(
        &group_rows(report),
        &GROUP_ALIGN,
    ));
    for (title, explanation, lines) in waste_sections(report) {
        let _ = writeln!(text, "\n{title}: {explanation}");
        for line in lines {
            let _ = writeln!(text, "  {line}");
        }
    }
    let _ = writeln!(text, "\nCosts are {}.", price_source(report));
    text
}

fn markdown(report: &Report) -> String {
    let mut text =
        String::from("## gitprio: value per token\n\n| figure | value |\n| --- | --- |\n");
    for (name, value) in headline(report) {
        let _ = writeln!(
            text,
            "| {} | {} |",
            markdown_cell(&name),
            markdown_cell(&value)
        );
    }
    let rows = group_rows(report);
    let _ = writeln!(
        text,
        "\n### By {}\n{}",
        report.group_by.name(),
        group_rule(report)
            .strip_prefix(' ')
            .map_or_else(String::new, |rule| format!("\n{rule}\n"))
    );
    for (index, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row.iter().map(|cell| markdown_cell(cell)).collect();
        let _ = writeln!(text, "| {} |", cells.join(" | "));
        if index == 0 {
            let separators: Vec<&str> = GROUP_ALIGN
                .iter()
                .map(|align| match align {
                    Align::Left => "---",
                    Align::Right => "---:",
                })
                .collect();
            let _ = writeln!(text, "| {} |", separators.join(" | "));
        }
    }
    let (spend, waste): (Vec<Section>, Vec<Section>) = waste_sections(report)
        .into_iter()
        .partition(|(title, _, _)| is_spend_over_time(title));
    for (heading, sections) in [("Waste", waste), ("Spend over time", spend)] {
        let _ = writeln!(text, "\n### {heading}");
        for (title, explanation, lines) in sections {
            let _ = writeln!(text, "\n**{title}.** {explanation}\n");
            for line in lines {
                let _ = writeln!(text, "- {}", markdown_text(&line));
            }
        }
    }
    let _ = writeln!(text, "\n<sub>Costs are {}.</sub>", price_source(report));
    text
}

/// `text` as one cell of a markdown table: a `|` in a feature's or an agent's name would
/// end the cell, and a line break the row.
fn markdown_cell(text: &str) -> String {
    markdown_text(text).replace('|', "\\|")
}

/// `text` (a task's, feature's or agent's name among figures) as literal markdown text: no
/// HTML, no emphasis or link, no `@` mention, no line break, whatever the name holds
/// (walk17 N18: the Action posts it as a pull request comment).
fn markdown_text(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    let mut characters = text.chars().peekable();
    while let Some(character) = characters.next() {
        let next = characters.peek().copied();
        match character {
            // What starts a tag, a comment or an entity; `<$0.01` stays as it reads.
            '<' if next.is_some_and(|next| next.is_ascii_alphabetic() || "/!?".contains(next)) => {
                escaped.push_str("&lt;");
            }
            '&' if next.is_some_and(|next| next.is_ascii_alphanumeric() || next == '#') => {
                escaped.push_str("&amp;");
            }
            // A zero-width space after `@` keeps GitHub from notifying whoever it names.
            '@' => escaped.push_str("@&#8203;"),
            // Our own figures quote commands in backticks: code spans stay.
            '\\' | '*' | '_' | '[' | ']' | '~' | '#' => {
                escaped.push('\\');
                escaped.push(character);
            }
            '\r' | '\n' => escaped.push(' '),
            other => escaped.push(other),
        }
    }
    escaped
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A table with a caption saying what its rows are grouped by; the first row is the header,
/// and each column is aligned as `align` says (left past its end).
fn push_table(body: &mut String, caption: &str, rows: &[Vec<String>], align: &[Align]) {
    let _ = write!(body, "<table><caption>{}</caption>", escape(caption));
    for (index, row) in rows.iter().enumerate() {
        let cell = if index == 0 { "th" } else { "td" };
        body.push_str("<tr>");
        for (column, value) in row.iter().enumerate() {
            let class = if align.get(column) == Some(&Align::Right) {
                " class=\"number\""
            } else {
                ""
            };
            let _ = write!(body, "<{cell}{class}>{}</{cell}>", escape(value));
        }
        body.push_str("</tr>");
    }
    body.push_str("</table>\n");
}

/// The days from the first of `periods` to the last, each with its period when it has one:
/// an empty day keeps its place on the axis. Periods that are not days (or over a year of
/// days) are taken as they come.
fn day_slots(
    periods: &[gitprio_core::usage::report::Period],
) -> Vec<(String, Option<&gitprio_core::usage::report::Period>)> {
    let day = |period: &gitprio_core::usage::report::Period| {
        period.period.parse::<jiff::civil::Date>().ok()
    };
    let as_they_come = || {
        periods
            .iter()
            .map(|period| (period.period.clone(), Some(period)))
            .collect()
    };
    let (Some(first), Some(last)) = (periods.first().and_then(day), periods.last().and_then(day))
    else {
        return as_they_come();
    };
    if periods.iter().any(|period| day(period).is_none()) || (last - first).get_days() > 366 {
        return as_they_come();
    }
    let mut slots = Vec::new();
    let mut date = first;
    while date <= last {
        let label = date.to_string();
        let period = periods.iter().find(|period| period.period == label);
        slots.push((label, period));
        let Ok(next) = date.tomorrow() else { break };
        date = next;
    }
    slots
}

/// A column chart over time as inline SVG: one column per day, oldest left, a day without
/// spend an empty place on the axis, and a day with unpriced tokens marked `unknown` (`?`
/// where the columns are narrow) on the chart itself, not only in its tooltip.
#[expect(clippy::cast_precision_loss, reason = "pixel geometry")]
fn trend_chart(title: &str, periods: &[gitprio_core::usage::report::Period]) -> String {
    let (width, height, base, left) = (640.0, 220.0, 190.0, 10.0);
    let slots = day_slots(periods);
    let max = periods
        .iter()
        .map(|period| period.cost_usd)
        .fold(0.0_f64, f64::max)
        .max(f64::MIN_POSITIVE);
    let step = (width - left * 2.0) / slots.len().max(1) as f64;
    let mut svg = format!(
        "<figure><figcaption>{}</figcaption><svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">",
        escape(title)
    );
    if periods.is_empty() {
        svg.push_str("<text x=\"0\" y=\"20\">no data</text>");
    }
    let _ = write!(
        svg,
        "<line x1=\"{left}\" y1=\"{base}\" x2=\"{:.1}\" y2=\"{base}\" stroke=\"#999\"/>",
        width - left
    );
    let mut unpriced_days = 0;
    for (index, (label, period)) in slots.iter().enumerate() {
        let Some(period) = period else { continue };
        let bar = (base - 30.0) * period.cost_usd / max;
        let x = left + step * index as f64;
        let shown = output::cost(Cost {
            usd: period.cost_usd,
            unpriced_tokens: period.unpriced_tokens,
        });
        let _ = write!(
            svg,
            "<g><title>{}: {}, {} tokens</title><rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bar:.1}\" fill=\"#4c78a8\"/>",
            escape(label),
            escape(&shown),
            tokens(period.tokens),
            base - bar,
            (step * 0.8).max(1.0),
        );
        if period.unpriced_tokens > 0 {
            unpriced_days += 1;
            let mark = match (step >= 56.0, period.cost_usd > 0.0) {
                (true, true) => "+unknown",
                (true, false) => "unknown",
                (false, true) => "+?",
                (false, false) => "?",
            };
            let _ = write!(
                svg,
                "<text class=\"unknown\" x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#b03a2e\">{mark}</text>",
                x + step * 0.4,
                base - bar - 4.0
            );
        }
        svg.push_str("</g>");
    }
    if let (Some((first, _)), Some((last, _))) = (slots.first(), slots.last()) {
        let _ = write!(
            svg,
            "<text x=\"{left}\" y=\"{:.1}\" font-size=\"12\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"end\">{}</text><text x=\"{left}\" y=\"14\" font-size=\"12\">max {} a day, {} shown{}</text>",
            base + 18.0,
            escape(first),
            width - left,
            base + 18.0,
            escape(last),
            escape(&Usd(max).to_string()),
            match slots.len() {
                1 => "1 day".to_owned(),
                days => format!("{days} days"),
            },
            if unpriced_days > 0 {
                "; unknown: tokens of a model with no price"
            } else {
                ""
            }
        );
    }
    svg.push_str("</svg></figure>\n");
    svg
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

/// Renders the report as one HTML page: headline, charts, groups, tasks, waste.
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
    body.push_str(&bar_chart(
        if report.period {
            "Completed tasks by tokens spent (their runs inside the period)"
        } else {
            "Completed tasks by tokens spent (all runs)"
        },
        &tokens_histogram(report),
    ));
    let by_group: Vec<(String, f64, String)> = report
        .groups
        .iter()
        .map(|group| {
            let summary = &group.summary;
            match summary.value_per_million_tokens {
                Some(value) => (group.key.clone(), value, format!("{value:.2}")),
                // No bar: a group whose runs are all in flight has no value per token yet.
                None if summary.in_flight_runs == summary.runs => {
                    (group.key.clone(), 0.0, "- (in flight only)".to_owned())
                }
                None => (group.key.clone(), 0.0, "-".to_owned()),
            }
        })
        .collect();
    body.push_str(&bar_chart(
        &format!(
            "Value points per 1M tokens, grouped by {}",
            report.group_by.name()
        ),
        &by_group,
    ));
    body.push_str(&trend_chart(
        &format!(
            "Cost per day of the tied spend ({}), by request time",
            output::list_price_label(repository_models(report), report.price_file.as_deref())
        ),
        &report.spend.by_day,
    ));
    push_cost_charts(&mut body, report);
    let rows = group_rows(report);
    body.push_str("<h2>Groups</h2>");
    push_table(
        &mut body,
        &format!(
            "Grouped by {}: every run in the group counts, completed or not{}",
            report.group_by.name(),
            group_rule(report)
        ),
        &rows,
        &GROUP_ALIGN,
    );
    body.push_str("<h2>Tasks</h2>\n");
    let mut tasks: BTreeMap<&TaskId, Vec<&RunLine>> = BTreeMap::new();
    for run in &report.runs {
        tasks.entry(&run.task).or_default().push(run);
    }
    for (task, runs) in tasks {
        push_task_section(&mut body, task, &runs);
    }
    push_waste(&mut body, report);
    let _ = write!(
        body,
        "<footer>Costs are {}.</footer>",
        escape(&price_source(report))
    );
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>gitprio report</title>\n<style>body{{font-family:system-ui,sans-serif;max-width:900px;margin:2em auto;color:#222}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}.number{{text-align:right;font-variant-numeric:tabular-nums}}figure{{margin:1.5em 0}}figcaption{{font-weight:600;margin-bottom:.5em}}caption{{text-align:left;font-weight:600;padding:4px 0}}footer{{color:#666;font-size:.9em;margin-top:2em}}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
}

/// Tokens per completed task, all its runs counted, as a histogram of 8 buckets.
#[expect(clippy::cast_precision_loss, reason = "chart values")]
fn tokens_histogram(report: &Report) -> Vec<(String, f64, String)> {
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
    if spent.is_empty() {
        return Vec::new();
    }
    let max = spent.iter().copied().max().unwrap_or(0).max(1);
    let step = max.div_ceil(8).max(1);
    let mut buckets = [0_u64; 8];
    for value in &spent {
        let index = usize::try_from((value.saturating_sub(1)) / step)
            .unwrap_or(7)
            .min(7);
        buckets[index] += 1;
    }
    buckets
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
        .collect()
}

/// The bar charts of the priced cost by model and by agent; a model with no price has no
/// bar and reads `unknown`, never `$0.00`.
fn push_cost_charts(body: &mut String, report: &Report) {
    let mut by_model: BTreeMap<&str, Cost> = BTreeMap::new();
    let mut by_agent: BTreeMap<&str, Cost> = BTreeMap::new();
    for row in &report.fleet {
        let cost = Cost {
            usd: row.cost_usd,
            unpriced_tokens: row.unpriced_tokens,
        };
        by_model.entry(&row.model).or_default().add(cost);
        by_agent.entry(&row.agent).or_default().add(cost);
    }
    for (title, costs) in [
        ("Cost by model (priced tokens)", by_model),
        ("Cost by agent (priced tokens)", by_agent),
    ] {
        let bars: Vec<(String, f64, String)> = costs
            .into_iter()
            .map(|(key, cost)| (key.to_owned(), cost.usd, output::cost(cost)))
            .collect();
        body.push_str(&bar_chart(title, &bars));
    }
}

/// One task's section: its pull requests and the table of its runs.
fn push_task_section(body: &mut String, task: &TaskId, runs: &[&RunLine]) {
    let mut rows = vec![
        [
            "RUN", "AGENT", "MODEL", "OUTCOME", "STARTED", "TOKENS", "COST",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    rows.extend(runs.iter().map(|run| {
        vec![
            run.run.clone(),
            run.agent.clone(),
            run.model.clone(),
            outcome_text(&run.outcome).to_owned(),
            output::minute(run.started_at),
            tokens(run.tokens),
            output::cost(run.cost()),
        ]
    }));
    let _ = write!(
        body,
        "<section class=\"task\" aria-labelledby=\"task-{0}\"><h3 id=\"task-{0}\">{0}</h3>",
        escape(task.as_str())
    );
    push_pull_requests(body, runs);
    push_table(
        body,
        &format!("Runs of {task}, one per lease generation"),
        &rows,
        &RUN_ALIGN,
    );
    body.push_str("</section>\n");
}

/// The links to the pull requests of a task's runs, each once.
fn push_pull_requests(body: &mut String, runs: &[&RunLine]) {
    let mut pulls: Vec<&gitprio_core::usage::report::PullRequestFacts> = runs
        .iter()
        .filter_map(|run| run.pull_request.as_ref())
        .collect();
    pulls.sort_by_key(|pull| pull.number);
    pulls.dedup_by_key(|pull| pull.number);
    if !pulls.is_empty() {
        body.push_str("<p class=\"pull-requests\">Pull requests: ");
        for (position, pull) in pulls.iter().enumerate() {
            let _ = write!(
                body,
                "{}<a href=\"{}\">#{}</a> ({})",
                if position == 0 { "" } else { ", " },
                escape(&pull.url),
                pull.number,
                pull.state.as_str()
            );
        }
        body.push_str("</p>");
    }
}

/// Whether a section is spend over time rather than a waste signal: markdown and HTML put
/// it under its own heading.
fn is_spend_over_time(title: &str) -> bool {
    title.starts_with("Spend per ") || title.ends_with("-hour windows")
}

/// The waste signals, one section each, then spend over time under its own heading.
fn push_waste(body: &mut String, report: &Report) {
    let (spend, waste): (Vec<Section>, Vec<Section>) = waste_sections(report)
        .into_iter()
        .partition(|(title, _, _)| is_spend_over_time(title));
    for (heading, sections) in [("Waste", waste), ("Spend over time", spend)] {
        let _ = writeln!(body, "<h2>{heading}</h2>");
        push_sections(body, sections);
    }
}

/// Sections as a heading, an explanation and a list each.
fn push_sections(body: &mut String, sections: Vec<Section>) {
    for (title, explanation, lines) in sections {
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
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn a_bound_is_a_date_or_a_time_with_its_zone() {
        let at = |text: &str| parse_time(text).map(|time| time.to_string());
        assert_eq!(at("2026-11-02").unwrap(), "2026-11-02T00:00:00Z");
        assert_eq!(at("2026-11-02T06:00:00Z").unwrap(), "2026-11-02T06:00:00Z");
        assert_eq!(
            at("2026-11-02T08:00:00+02:00").unwrap(),
            "2026-11-02T06:00:00Z"
        );
        // Not midnight of its date: refused, with what to add.
        for text in ["2026-11-02T06:00", "2026-11-02 06:00:00"] {
            assert_eq!(
                at(text).unwrap_err().to_string(),
                format!(
                    "`{text}` has no zone: add `Z` for UTC or an offset such as `+02:00` (RFC 3339)"
                )
            );
        }
        assert_eq!(
            at("9999-12-31").unwrap_err().to_string(),
            "`9999-12-31` is out of range (years 0001 to 9999)"
        );
        assert_eq!(
            at("9999-12-31T23:59:59Z").unwrap_err().to_string(),
            "`9999-12-31T23:59:59Z` is out of range (years 0001 to 9999)"
        );
        assert!(
            at("yesterday")
                .unwrap_err()
                .to_string()
                .contains("is not a date")
        );
    }
}
