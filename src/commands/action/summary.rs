//! The pull request's summary: what each completed task cost, against the repository's own baseline, as markdown.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use gitprio_core::TaskId;
use gitprio_core::lease::{Lease, LeaseState};
use gitprio_core::usage::{Outcome, PRICE_SNAPSHOT, PriceTable, Run, Totals};
use globset::{Glob, GlobSetBuilder};

use super::changes::{Changes, Completion, TRAILER};
use crate::github::MARKER;
use crate::output::{dollars, ratio, tokens};

/// GitHub's limit on a comment body, in characters.
pub const COMMENT_LIMIT: usize = 65_536;

/// Completed tasks of a type needed before their median is a baseline.
pub const MIN_BASELINE_TASKS: usize = 3;

/// A task that cost this many times its type's median is flagged.
pub const OUTLIER_RATIO: f64 = 2.0;

/// Tokens and what they cost.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Spend {
    pub totals: Totals,
    /// Dollars for the tokens of priced models.
    pub known_cost: f64,
    /// Tokens of models without a price: their cost is unknown, not zero.
    pub unpriced_tokens: u64,
}

impl Spend {
    fn add_run(&mut self, run: &Run, prices: &PriceTable) {
        for record in &run.records {
            self.totals.add(record);
            match prices.cost(record) {
                Some(cost) => self.known_cost += cost,
                None => self.unpriced_tokens += record.total_tokens(),
            }
        }
    }

    fn merge(&mut self, other: &Spend) {
        self.totals.merge(&other.totals);
        self.known_cost += other.known_cost;
        self.unpriced_tokens += other.unpriced_tokens;
    }

    pub fn tokens(&self) -> u64 {
        self.totals.tokens()
    }

    /// The cost, when every token is priced.
    pub fn cost(&self) -> Option<f64> {
        (self.unpriced_tokens == 0).then_some(self.known_cost)
    }

    fn describe_cost(&self) -> String {
        crate::output::cost(gitprio_core::usage::money::Cost {
            usd: self.known_cost,
            unpriced_tokens: self.unpriced_tokens,
        })
    }
}

/// How a task compares with the completed tasks of its type.
#[derive(Clone, Debug, PartialEq)]
pub enum Baseline {
    /// Compared with the median of `tasks` completed tasks of `task_type`.
    Compared {
        task_type: String,
        tasks: usize,
        median_tokens: f64,
        median_cost: Option<f64>,
        /// This task's cost (or tokens, when a cost is unknown) over the median.
        ratio: f64,
        by_cost: bool,
    },
    /// Too few completed tasks of the type yet.
    TooFew { task_type: String, tasks: usize },
    /// The task has no `type`.
    Untyped,
    /// No usage was recorded for the task.
    NoUsage,
}

impl Baseline {
    /// Returns whether the task cost at least [`OUTLIER_RATIO`] times its type's median.
    pub fn is_outlier(&self) -> bool {
        matches!(self, Baseline::Compared { ratio, .. } if *ratio >= OUTLIER_RATIO)
    }

    fn describe(&self) -> String {
        match self {
            Baseline::Compared {
                task_type, ratio, ..
            } if *ratio >= OUTLIER_RATIO => {
                format!("⚠️ **{ratio:.1}x the median {task_type}**")
            }
            Baseline::Compared {
                task_type, ratio, ..
            } => format!("{ratio:.1}x the median {task_type}"),
            Baseline::TooFew { task_type, tasks } => {
                format!("no baseline yet ({tasks} of {MIN_BASELINE_TASKS} {task_type} tasks)")
            }
            Baseline::Untyped => "no baseline (no `type`)".to_owned(),
            Baseline::NoUsage => "no usage recorded".to_owned(),
        }
    }
}

/// One completed task, with what it took.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskSummary {
    pub completion: Completion,
    /// Runs (lease generations) recorded in the usage ledger; else the lease's attempt count.
    pub attempts: usize,
    /// Runs that failed, were parked or expired.
    pub failed_attempts: usize,
    pub agents: Vec<String>,
    /// Models by tokens spent, most first.
    pub models: Vec<(String, u64)>,
    pub spend: Spend,
    /// The changed files outside every completed task's `owns` (empty when the task declares none).
    pub outside_owns: Vec<String>,
    pub baseline: Baseline,
    /// Where the task's lease stands, if it still has one.
    pub lease: Option<(LeaseState, String)>,
}

impl TaskSummary {
    /// Value points per million tokens.
    pub fn value_per_million_tokens(&self) -> Option<f64> {
        per_million(u64::from(self.completion.task.value), self.spend.tokens())
    }
}

/// Everything the pull request's comment says.
#[derive(Clone, Debug, PartialEq)]
pub struct PullRequestSummary {
    pub head: String,
    pub tasks: Vec<TaskSummary>,
    pub spend: Spend,
    pub value_points: u64,
    /// Trailer values that name no task.
    pub unknown_trailers: Vec<String>,
    /// `gitprio check` found errors in the task files.
    pub invalid_tasks: bool,
    /// How many models the head's `.tasks/prices.yaml` prices over the bundled table.
    pub repository_price_models: usize,
}

impl PullRequestSummary {
    /// Value points per token, when tokens were spent.
    pub fn value_per_token(&self) -> Option<f64> {
        #[expect(clippy::cast_precision_loss, reason = "a ratio for display")]
        let value = (self.spend.tokens() > 0)
            .then(|| self.value_points as f64 / self.spend.tokens() as f64);
        value
    }

    pub fn value_per_million_tokens(&self) -> Option<f64> {
        per_million(self.value_points, self.spend.tokens())
    }
}

#[expect(clippy::cast_precision_loss, reason = "a ratio for display")]
fn per_million(value: u64, tokens: u64) -> Option<f64> {
    (tokens > 0).then(|| value as f64 / tokens as f64 * 1_000_000.0)
}

/// Computes the summary of the tasks `changes` completes from the usage ledger's `runs`
/// (settled: a run with no outcome is in flight) and the `leases`.
///
/// The baseline of a task is the median over the completed tasks of the same type,
/// every run of each counted (failed attempts are part of what a task cost), this
/// pull request's own tasks left out.
pub fn summarize(
    changes: &Changes,
    runs: &[Run],
    leases: &BTreeMap<TaskId, Lease>,
    prices: &PriceTable,
) -> PullRequestSummary {
    let mut by_task: BTreeMap<&TaskId, Vec<&Run>> = BTreeMap::new();
    for run in runs {
        by_task.entry(&run.meta.task).or_default().push(run);
    }
    let pools = baseline_pools(changes, &by_task, prices);
    let unowned = unowned_files(changes);
    let mut tasks = Vec::new();
    let mut total = Spend::default();
    let mut value_points = 0;
    for completion in &changes.completed {
        let task = &completion.task;
        let summary = task_summary(
            completion,
            by_task.get(&task.id).map(Vec::as_slice).unwrap_or_default(),
            leases.get(&task.id),
            &pools,
            &unowned,
            prices,
        );
        total.merge(&summary.spend);
        value_points += u64::from(task.value);
        tasks.push(summary);
    }
    PullRequestSummary {
        head: changes.head.to_string(),
        tasks,
        spend: total,
        value_points,
        unknown_trailers: changes.unknown_trailers.clone(),
        invalid_tasks: false,
        repository_price_models: 0,
    }
}

/// The tokens and cost of every completed task outside this pull request, by task type:
/// what the baselines are medians of.
fn baseline_pools<'a>(
    changes: &'a Changes,
    by_task: &BTreeMap<&'a TaskId, Vec<&'a Run>>,
    prices: &PriceTable,
) -> BTreeMap<&'a str, Vec<(u64, Option<f64>)>> {
    let head_types: BTreeMap<&TaskId, Option<&String>> = changes
        .head_queue
        .iter()
        .flat_map(|queue| queue.tasks.iter())
        .map(|task| (&task.id, task.task_type.as_ref()))
        .collect();
    let mine: BTreeSet<TaskId> = changes.completed_ids().into_iter().collect();
    let mut pools: BTreeMap<&str, Vec<(u64, Option<f64>)>> = BTreeMap::new();
    for (id, task_runs) in by_task {
        if mine.contains(*id)
            || !task_runs
                .iter()
                .any(|run| run.meta.outcome == Some(Outcome::Completed))
        {
            continue;
        }
        let task_type = head_types
            .get(id)
            .copied()
            .flatten()
            .or_else(|| task_runs.iter().find_map(|run| run.meta.task_type.as_ref()));
        if let Some(task_type) = task_type {
            let mut spend = Spend::default();
            for run in task_runs {
                spend.add_run(run, prices);
            }
            pools
                .entry(task_type.as_str())
                .or_default()
                .push((spend.tokens(), spend.cost()));
        }
    }
    pools
}

/// Sums up one completed task: its runs' spend, models and agents, its attempts, its baseline.
fn task_summary(
    completion: &Completion,
    task_runs: &[&Run],
    lease: Option<&Lease>,
    pools: &BTreeMap<&str, Vec<(u64, Option<f64>)>>,
    unowned: &[String],
    prices: &PriceTable,
) -> TaskSummary {
    let task = &completion.task;
    let mut spend = Spend::default();
    let mut models: BTreeMap<&str, u64> = BTreeMap::new();
    let mut agents: Vec<String> = Vec::new();
    for run in task_runs {
        spend.add_run(run, prices);
        for (model, totals) in run.totals_by_model() {
            *models.entry(model).or_default() += totals.tokens();
        }
        if !agents.contains(&run.meta.agent) {
            agents.push(run.meta.agent.clone());
        }
    }
    let mut models: Vec<(String, u64)> = models
        .into_iter()
        .map(|(model, spent)| (model.to_owned(), spent))
        .collect();
    models.sort_by(|left, right| right.1.cmp(&left.1).then_with(|| left.0.cmp(&right.0)));
    let attempts = if task_runs.is_empty() {
        lease.map_or(0, |lease| lease.record.attempt as usize)
    } else {
        task_runs.len()
    };
    let failed_attempts = task_runs
        .iter()
        .filter(|run| {
            matches!(
                run.meta.outcome,
                Some(Outcome::Failed | Outcome::Parked | Outcome::Expired)
            )
        })
        .count();
    let baseline = match &task.task_type {
        _ if spend.tokens() == 0 => Baseline::NoUsage,
        None => Baseline::Untyped,
        Some(task_type) => baseline(
            task_type,
            pools.get(task_type.as_str()).map_or(&[][..], Vec::as_slice),
            &spend,
        ),
    };
    TaskSummary {
        completion: completion.clone(),
        attempts,
        failed_attempts,
        agents,
        models,
        spend,
        outside_owns: if task.owns.is_empty() {
            Vec::new()
        } else {
            unowned.to_vec()
        },
        baseline,
        lease: lease.map(|lease| (lease.record.state, lease.record.holder.agent.clone())),
    }
}

/// Returns the changed files (task files aside) that no completed task's `owns` covers.
///
/// A file another completed task of the pull request owns is not outside: the
/// pull request did that task's work too.
fn unowned_files(changes: &Changes) -> Vec<String> {
    let mut builder = GlobSetBuilder::new();
    for completion in &changes.completed {
        for pattern in &completion.task.owns {
            // A directory stands for everything under it, as `owns: src/auth/` reads.
            let pattern = if pattern.ends_with('/') {
                format!("{pattern}**")
            } else {
                pattern.clone()
            };
            // An invalid glob owns nothing; `gitprio check` reports it on its line.
            if let Ok(glob) = Glob::new(&pattern) {
                builder.add(glob);
            }
        }
    }
    let owned = builder
        .build()
        .unwrap_or_else(|_| globset::GlobSet::empty());
    let tasks_prefix = format!("{}/", gitprio_core::TASKS_DIR);
    changes
        .files
        .iter()
        .filter(|path| !path.starts_with(&tasks_prefix) && !owned.is_match(path.as_str()))
        .cloned()
        .collect()
}

fn baseline(task_type: &str, pool: &[(u64, Option<f64>)], spend: &Spend) -> Baseline {
    if pool.len() < MIN_BASELINE_TASKS {
        return Baseline::TooFew {
            task_type: task_type.to_owned(),
            tasks: pool.len(),
        };
    }
    #[expect(
        clippy::cast_precision_loss,
        reason = "token counts stay far below 2^52"
    )]
    let median_tokens = median(pool.iter().map(|(spent, _)| *spent as f64).collect());
    let costs: Option<Vec<f64>> = pool.iter().map(|(_, cost)| *cost).collect();
    let median_cost = costs.map(median);
    #[expect(
        clippy::cast_precision_loss,
        reason = "token counts stay far below 2^52"
    )]
    let (ratio, by_cost) = match (spend.cost(), median_cost) {
        (Some(cost), Some(median)) if median > 0.0 => (cost / median, true),
        _ => (spend.tokens() as f64 / median_tokens.max(1.0), false),
    };
    Baseline::Compared {
        task_type: task_type.to_owned(),
        tasks: pool.len(),
        median_tokens,
        median_cost,
        ratio,
        by_cost,
    }
}

/// The median of `values` (the mean of the middle two for an even count); 0 when empty.
fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len().is_multiple_of(2) {
        f64::midpoint(values[middle - 1], values[middle])
    } else {
        values[middle]
    }
}

/// Escapes text for a markdown table cell or list item: no pipes, no raw HTML, one line.
fn escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace(['\n', '\r'], " ")
}

/// Formats each item as inline code, comma-separated.
fn codes(items: &[String]) -> String {
    items
        .iter()
        .map(|item| code(item))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes `text` as an inline code span, whatever backticks it holds.
fn code(text: &str) -> String {
    let text = text.replace(['\n', '\r'], " ").replace('|', "\\|");
    if text.contains('`') {
        format!("`` {text} ``")
    } else {
        format!("`{text}`")
    }
}

fn join_or_dash(items: impl IntoIterator<Item = String>) -> String {
    let items: Vec<String> = items.into_iter().collect();
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(", ")
    }
}

/// Renders the summary as the markdown of the pull request comment, marker first.
pub fn markdown(summary: &PullRequestSummary) -> String {
    let mut text = format!("{MARKER}\n");
    let count = summary.tasks.len();
    let _ = writeln!(
        text,
        "## gitprio: this pull request completes {count} {}\n",
        if count == 1 { "task" } else { "tasks" }
    );
    let _ = writeln!(
        text,
        "**{} value points** for **{} tokens**, **{}**: **{} value per 1M tokens**.\n",
        summary.value_points,
        tokens(summary.spend.tokens()),
        summary.spend.describe_cost(),
        ratio(summary.value_per_million_tokens(), 2)
    );
    if summary.invalid_tasks {
        text.push_str("> [!WARNING]\n> `gitprio check` found errors in the task files: see the annotations of this run.\n\n");
    }
    let outliers = summary
        .tasks
        .iter()
        .filter(|task| task.baseline.is_outlier())
        .count();
    if outliers > 0 {
        let _ = writeln!(
            text,
            "> [!NOTE]\n> {outliers} {} cost at least {OUTLIER_RATIO:.0}x the median of {} type.\n",
            if outliers == 1 { "task" } else { "tasks" },
            if outliers == 1 { "its" } else { "their" }
        );
    }
    text.push_str("| task | type | value | attempts | agents | models | tokens | cost | value / 1M tokens | vs. baseline |\n");
    text.push_str("| --- | --- | ---: | ---: | --- | --- | ---: | ---: | ---: | --- |\n");
    for task in &summary.tasks {
        let facts = &task.completion.task;
        let attempts = if task.failed_attempts > 0 {
            format!("{} ({} failed)", task.attempts, task.failed_attempts)
        } else {
            task.attempts.to_string()
        };
        let _ = writeln!(
            text,
            "| {} {} | {} | {} | {attempts} | {} | {} | {} | {} | {} | {} |",
            code(facts.id.as_str()),
            escape(&facts.title),
            escape(facts.task_type.as_deref().unwrap_or("-")),
            facts.value,
            escape(&join_or_dash(task.agents.iter().cloned())),
            escape(&join_or_dash(
                task.models.iter().map(|(model, _)| model.clone())
            )),
            tokens(task.spend.tokens()),
            escape(&task.spend.describe_cost()),
            ratio(task.value_per_million_tokens(), 2),
            task.baseline.describe(),
        );
    }
    for task in &summary.tasks {
        details(&mut text, task);
    }
    if !summary.unknown_trailers.is_empty() {
        let _ = writeln!(
            text,
            "\n`{TRAILER}` trailers name tasks that do not exist at the head: {}.",
            codes(&summary.unknown_trailers)
        );
    }
    let _ = writeln!(
        text,
        "\n<sub>Head {}. Costs are {} ({PRICE_SNAPSHOT}). Baselines are medians over the completed tasks of the same type in this repository's usage ledger (at least {MIN_BASELINE_TASKS}), every attempt counted.</sub>",
        &summary.head[..summary.head.len().min(12)],
        crate::output::list_price_label(summary.repository_price_models, None)
    );
    text
}

/// Writes one task's details section, line by line in output order.
fn details(text: &mut String, task: &TaskSummary) {
    let facts = &task.completion.task;
    let _ = writeln!(
        text,
        "\n<details><summary><code>{}</code>: {}</summary>\n",
        escape(facts.id.as_str()),
        escape(&facts.title)
    );
    let _ = writeln!(text, "- completed: {}", how_completed(&task.completion));
    usage_lines(text, task);
    baseline_line(text, &task.baseline);
    owns_line(text, task);
    if let Some((state, holder)) = &task.lease {
        let _ = writeln!(
            text,
            "- lease: {} by {}",
            format!("{state:?}").to_lowercase(),
            escape(holder)
        );
    }
    if !facts.acceptance.is_empty() {
        let _ = writeln!(text, "- acceptance: {}", codes(&facts.acceptance));
    }
    text.push_str("\n</details>\n");
}

/// Says how the pull request completes the task: its status, a trailer, or both.
fn how_completed(completion: &Completion) -> String {
    let facts = &completion.task;
    let mut how = Vec::new();
    if completion.by_status {
        how.push(match completion.status_before {
            Some(before) => format!("`status` {before} → done in {}", code(&facts.path)),
            None => format!("new task file {} with `status: done`", code(&facts.path)),
        });
    }
    if completion.by_trailer {
        let mut named = format!("named in a `{TRAILER}` trailer");
        if facts.status != gitprio_core::Status::Done {
            let _ = write!(named, " (its file still says `status: {}`)", facts.status);
        }
        how.push(named);
    }
    how.join("; ")
}

/// Writes the task's token counts and models, or that it has no usage.
fn usage_lines(text: &mut String, task: &TaskSummary) {
    let totals = &task.spend.totals;
    if totals.tokens() > 0 {
        let reasoning = if totals.reasoning > 0 {
            format!(" ({} reasoning)", tokens(totals.reasoning))
        } else {
            String::new()
        };
        let _ = writeln!(
            text,
            "- tokens: {} input, {} output{reasoning}, {} cache write, {} cache read, in {} requests",
            tokens(totals.input),
            tokens(totals.output),
            tokens(totals.cache_write_5m + totals.cache_write_1h),
            tokens(totals.cache_read),
            totals.requests
        );
        let _ = writeln!(
            text,
            "- models: {}",
            task.models
                .iter()
                .map(|(model, spent)| format!("{} {}", code(model), tokens(*spent)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    } else {
        text.push_str("- tokens: no usage recorded for this task (`gitprio usage record`)\n");
    }
}

/// Writes how the task compares with the median of its type, when it was compared.
fn baseline_line(text: &mut String, baseline: &Baseline) {
    if let Baseline::Compared {
        task_type,
        tasks,
        median_tokens,
        median_cost,
        ratio,
        by_cost,
    } = baseline
    {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a rounded token count for display"
        )]
        let median_tokens = median_tokens.round() as u64;
        let _ = writeln!(
            text,
            "- baseline: median {} tokens, {} over {tasks} completed {} tasks; this one is {ratio:.1}x by {}",
            tokens(median_tokens),
            dollars(*median_cost),
            escape(task_type),
            if *by_cost { "cost" } else { "tokens" }
        );
    }
}

/// Writes whether the changed files stay inside the task's `owns`.
fn owns_line(text: &mut String, task: &TaskSummary) {
    let facts = &task.completion.task;
    if facts.owns.is_empty() {
        text.push_str("- `owns`: none declared, so the changed files were not checked\n");
    } else if task.outside_owns.is_empty() {
        let _ = writeln!(
            text,
            "- `owns` ({}): every changed file is inside",
            codes(&facts.owns)
        );
    } else {
        let _ = writeln!(
            text,
            "- ⚠️ changed outside `owns` ({}): {}",
            codes(&facts.owns),
            codes(&task.outside_owns)
        );
    }
}

/// The summary written when the pull request completes no task: no comment, just this.
pub fn nothing_completed(invalid_tasks: bool) -> String {
    let mut text = String::from("## gitprio\n\nThis pull request completes no task.\n");
    if invalid_tasks {
        text.push_str(
            "\n`gitprio check` found errors in the task files: see the annotations of this run.\n",
        );
    }
    text
}

/// Cuts `body` to at most `limit` characters, at a line end, with a note saying so.
pub fn truncate(body: &str, limit: usize) -> String {
    if body.chars().count() <= limit {
        return body.to_owned();
    }
    let note = "\n\n> [!NOTE]\n> This summary was cut to fit GitHub's 65,536-character comment limit; the whole summary is in the job's step summary.\n";
    let keep = limit.saturating_sub(note.chars().count() + "\n</details>".len());
    let cut = body
        .char_indices()
        .nth(keep)
        .map_or(body.len(), |(index, _)| index);
    let mut kept = &body[..cut];
    if let Some(line_end) = kept.rfind('\n') {
        kept = &kept[..=line_end];
    }
    let mut text = kept.to_owned();
    if text.matches("<details>").count() > text.matches("</details>").count() {
        text.push_str("\n</details>");
    }
    text.push_str(note);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert!((median(vec![3.0, 1.0, 2.0]) - 2.0).abs() < f64::EPSILON);
        assert!((median(vec![4.0, 1.0, 2.0, 3.0]) - 2.5).abs() < f64::EPSILON);
        assert!(median(Vec::new()).abs() < f64::EPSILON);
    }

    #[test]
    fn a_baseline_needs_enough_tasks_and_flags_outliers() {
        let spend = |tokens: u64, cost: f64| Spend {
            totals: Totals {
                output: tokens,
                ..Totals::default()
            },
            known_cost: cost,
            unpriced_tokens: 0,
        };
        assert_eq!(
            baseline("bug", &[(10, Some(1.0)), (20, Some(2.0))], &spend(90, 9.0)),
            Baseline::TooFew {
                task_type: "bug".to_owned(),
                tasks: 2
            }
        );
        let pool = [(10, Some(1.0)), (20, Some(2.0)), (30, Some(3.0))];
        let compared = baseline("bug", &pool, &spend(62, 6.2));
        assert!(compared.is_outlier());
        assert_eq!(compared.describe(), "⚠️ **3.1x the median bug**");
        let by_tokens = baseline(
            "bug",
            &[(10, None), (20, Some(2.0)), (30, None)],
            &spend(10, 1.0),
        );
        assert!(!by_tokens.is_outlier());
        assert_eq!(by_tokens.describe(), "0.5x the median bug");
    }

    #[test]
    fn long_bodies_are_cut_at_a_line_with_a_note() {
        let body = format!(
            "{MARKER}\n<details>\n{}",
            "| a row of a table |\n".repeat(10_000)
        );
        let cut = truncate(&body, COMMENT_LIMIT);
        assert!(cut.chars().count() <= COMMENT_LIMIT, "{}", cut.len());
        assert!(cut.starts_with(MARKER));
        assert!(cut.contains("</details>"));
        assert!(cut.ends_with("the whole summary is in the job's step summary.\n"));
        assert!(!cut.contains("| a row\n"));
        assert_eq!(truncate("short", COMMENT_LIMIT), "short");
    }

    #[test]
    fn cells_cannot_break_the_table() {
        assert_eq!(escape("a | b <img>\nc"), "a \\| b &lt;img&gt; c");
        assert_eq!(code("x`y"), "`` x`y ``");
    }
}
