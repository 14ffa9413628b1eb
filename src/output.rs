//! Printing: data tables and JSON to stdout, messages and diagnostics to stderr.

use std::io::Write;

use gitprio_core::hint::{FrontEnd, Hint};
use gitprio_core::queue::{RankReason, Standing};
use gitprio_core::usage::money::Usd;
use gitprio_core::workspace::RepositoryPrices;
use gitprio_core::{Blocker, Diagnostic, Queue, Readiness, Task};

use crate::settings::Settings;

/// `println!` that returns the error of the write, a reader that closed the pipe
/// (`gitprio explain x | head -1`) included, instead of panicking.
macro_rules! outln {
    () => {
        $crate::output::write_stdout(format_args!("\n"))
    };
    ($($argument:tt)*) => {
        $crate::output::write_stdout(format_args!("{}\n", format_args!($($argument)*)))
    };
}
pub(crate) use outln;

/// `print!` that returns the error of the write instead of panicking, as [`outln!`].
macro_rules! out {
    ($($argument:tt)*) => {
        $crate::output::write_stdout(format_args!($($argument)*))
    };
}
pub(crate) use out;

/// A write to stdout that failed.
#[derive(Debug)]
pub struct StdoutError(std::io::Error);

impl StdoutError {
    /// Returns whether the reader closed the pipe (`gitprio list | head -1`): it wants no
    /// more, which is no failure to report.
    pub fn closed(&self) -> bool {
        self.0.kind() == std::io::ErrorKind::BrokenPipe
    }
}

impl std::fmt::Display for StdoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot write to stdout")
    }
}

impl std::error::Error for StdoutError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Writes formatted text to stdout.
pub fn write_stdout(text: std::fmt::Arguments<'_>) -> Result<(), StdoutError> {
    std::io::stdout()
        .lock()
        .write_fmt(text)
        .map_err(StdoutError)
}

/// Writes `value` as pretty JSON to stdout.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    Ok(outln!("{text}")?)
}

/// Writes rows as a left-aligned table to stdout; the last column is not padded.
pub fn print_table(rows: &[Vec<String>]) -> anyhow::Result<()> {
    Ok(out!("{}", render_table(rows))?)
}

/// Renders rows as a left-aligned table, columns separated by two spaces.
pub fn render_table(rows: &[Vec<String>]) -> String {
    render_aligned_table(rows, &[])
}

/// How the cells of a table's column line up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    /// Numbers: their last digits line up, so magnitudes compare at a glance.
    Right,
}

/// Columns of a table whose first `left` columns are names and the others numbers.
pub const fn numbers_after<const COLUMNS: usize>(left: usize) -> [Align; COLUMNS] {
    let mut align = [Align::Right; COLUMNS];
    let mut column = 0;
    while column < left {
        align[column] = Align::Left;
        column += 1;
    }
    align
}

/// Writes rows as a table to stdout, each column aligned as `align` says (left past its end).
pub fn print_aligned_table(rows: &[Vec<String>], align: &[Align]) -> anyhow::Result<()> {
    Ok(out!("{}", render_aligned_table(rows, align))?)
}

/// Renders rows as a table, columns separated by two spaces, each column aligned as `align`
/// says (left past its end); the header, the first row, is aligned as its column.
pub fn render_aligned_table(rows: &[Vec<String>], align: &[Align]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            rows.iter()
                .filter_map(|row| row.get(column))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in rows {
        let mut line = String::new();
        for (column, cell) in row.iter().enumerate() {
            let padding = " ".repeat(widths[column] - cell.chars().count());
            if align.get(column) == Some(&Align::Right) {
                line.push_str(&padding);
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&padding);
            }
            line.push_str("  ");
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// Prints a message to stderr with a severity prefix, colored when allowed.
pub fn message(settings: &Settings, severity: &str, text: &str) {
    let prefix = if settings.color {
        let color = match severity {
            "error" => "31",
            "warning" => "33",
            _ => "36",
        };
        format!("\x1b[1;{color}m{severity}\x1b[0m")
    } else {
        severity.to_owned()
    };
    // Not `eprintln!`, which panics when stderr is closed (the `gitprio run` that started a
    // `done` was killed): a message nobody can read must not stop the operation halfway.
    let _ = writeln!(std::io::stderr(), "{prefix}: {text}");
}

/// Says what a command did ("renewed alpha ...", "released alpha ..."), or that it found
/// nothing to show: the one rule every command follows. That is a message, so it goes to
/// stderr as `info:` like every other; stdout carries only data (tables, the context bundle,
/// JSON), so a script reading stdout never takes a confirmation for data.
pub fn confirm(settings: &Settings, text: &str) {
    message(settings, "info", text);
}

/// Prints the problems met while loading the queue to stderr, saying that broken files were skipped.
pub fn loading_diagnostics(settings: &Settings, diagnostics: &[Diagnostic]) {
    for diagnostic in diagnostics {
        let severity = diagnostic.severity.to_string();
        let skipped = if gitprio_core::task::is_fatal(diagnostic) {
            " (skipped)"
        } else if diagnostic.is_error() {
            " (task held back until this is fixed)"
        } else {
            ""
        };
        message(
            settings,
            &severity,
            &format!(
                "{}:{}:{}: {}{skipped}",
                diagnostic.path, diagnostic.line, diagnostic.column, diagnostic.message
            ),
        );
    }
}

/// Describes every blocker of a task that is not ready, joined with `; `.
pub fn describe_blockers(readiness: &Readiness) -> String {
    let why: Vec<String> = readiness.blockers().iter().map(describe_blocker).collect();
    why.join("; ")
}

pub fn describe_blocker(blocker: &Blocker) -> String {
    match blocker {
        Blocker::Status { status } => format!("status is {status}"),
        Blocker::WaitingOn { id, status } => format!("waiting on {id} ({status})"),
        Blocker::UnknownDependency { id } => format!("unknown dependency {id}"),
        Blocker::Cycle { cycle } => {
            let names: Vec<&str> = cycle.iter().map(gitprio_core::TaskId::as_str).collect();
            format!("dependency cycle {}", names.join(" -> "))
        }
        Blocker::Leased { holder, expires_at } => format!("leased by {holder} until {expires_at}"),
        Blocker::Submitted { holder, at } => {
            format!("submitted by {holder} at {at}; waiting for the change to land")
        }
        Blocker::Parked {
            attempts,
            last_error,
        } => match last_error {
            Some(error) => format!(
                "parked after {attempts} failed {} (last: {error}); needs a human",
                plural(*attempts as usize, "attempt")
            ),
            None => format!(
                "parked after {attempts} failed {}; needs a human",
                plural(*attempts as usize, "attempt")
            ),
        },
        Blocker::InvalidFile { errors } => {
            format!("held back until its file is fixed: {}", errors.join("; "))
        }
    }
}

/// Returns the task's type, or `-`.
pub fn type_of(task: &Task) -> String {
    task.task_type.clone().unwrap_or_else(|| "-".to_owned())
}

/// `word`, with an `s` unless `count` is one (`copy`, `copies`).
pub fn plural(count: usize, word: &str) -> String {
    match (count, word.strip_suffix('y')) {
        (1, _) => word.to_owned(),
        (_, Some(stem)) => format!("{stem}ies"),
        (_, None) => format!("{word}s"),
    }
}

/// `1 record`, `2 records`; `1 copy`, `2 copies`.
pub fn counted(count: usize, noun: &str) -> String {
    format!("{count} {}", plural(count, noun))
}

/// Writes a time to the minute, in UTC, as every human table does: `2026-11-01 12:00`
/// (`--json` keeps RFC 3339).
pub fn minute(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%d %H:%M").to_string()
}

/// Writes a span of seconds the short way: `45s`, `4m05s`, `12m`, `3h05m`, `2d4h`.
pub fn span(seconds: i64) -> String {
    let seconds = seconds.max(0);
    match seconds {
        0..60 => format!("{seconds}s"),
        60..600 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        600..3600 => format!("{}m", seconds / 60),
        3600..86_400 => format!("{}h{:02}m", seconds / 3600, seconds % 3600 / 60),
        _ => format!("{}d{}h", seconds / 86_400, seconds % 86_400 / 3600),
    }
}

/// The core's notices as stderr lines: diagnostics located, warnings and infos prefixed.
#[derive(Clone, Copy, Debug)]
pub struct Stderr<'a>(pub &'a Settings);

impl gitprio_core::workspace::Notices for Stderr<'_> {
    fn diagnostics(&self, diagnostics: &[Diagnostic]) {
        loading_diagnostics(self.0, diagnostics);
    }

    fn warning(&self, text: &str) {
        message(self.0, "warning", text);
    }

    fn info(&self, text: &str) {
        message(self.0, "info", text);
    }
}

/// Prints a task as a table of its fields, then its body.
pub fn print_task(task: &Task, readiness: &Readiness) -> anyhow::Result<()> {
    let mut rows = vec![
        vec!["id".to_owned(), task.id.to_string()],
        vec!["title".to_owned(), task.title.clone()],
        vec!["path".to_owned(), task.path.clone()],
        vec!["priority".to_owned(), task.priority.to_string()],
        vec!["status".to_owned(), task.status.to_string()],
        vec![
            "ready".to_owned(),
            if readiness.is_ready() {
                "yes".to_owned()
            } else {
                format!("no: {}", describe_blockers(readiness))
            },
        ],
        vec!["type".to_owned(), type_of(task)],
        vec!["value".to_owned(), task.value.to_string()],
    ];
    let optional = [
        ("feature", task.feature.clone()),
        ("model", task.model.clone()),
        ("created", task.created.clone()),
        ("budget", task.budget.map(|budget| describe_budget(&budget))),
    ];
    rows.extend(
        optional
            .into_iter()
            .filter_map(|(name, value)| value.map(|value| vec![name.to_owned(), value])),
    );
    let lists = [
        (
            "depends_on",
            task.depends_on
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
        ),
        ("labels", task.labels.clone()),
        ("owns", task.owns.clone()),
        ("context", task.context.clone()),
        ("acceptance", task.acceptance.clone()),
    ];
    rows.extend(
        lists
            .into_iter()
            .filter(|(_, items)| !items.is_empty())
            .map(|(name, items)| vec![name.to_owned(), items.join(", ")]),
    );
    print_table(&rows)?;
    if !task.body.trim().is_empty() {
        outln!()?;
        out!("{}", task.body.trim_start_matches('\n'))?;
        if !task.body.ends_with('\n') {
            outln!()?;
        }
    }
    Ok(())
}

fn describe_budget(budget: &gitprio_core::Budget) -> String {
    let mut parts = Vec::new();
    if let Some(tokens) = budget.tokens {
        parts.push(format!("{tokens} tokens"));
    }
    if let Some(usd) = budget.usd {
        parts.push(Usd(usd).to_string());
    }
    parts.join(", ")
}

/// Says that the run of `id` spent `spent` tokens of its `budget`, and what to do, to `front`.
pub fn over_budget_message(
    id: &gitprio_core::TaskId,
    spent: u64,
    budget: u64,
    front: FrontEnd,
) -> String {
    Hint::follow(
        &format!("budget exceeded on `{id}`: {spent} tokens spent of {budget}"),
        Some(&Hint::ReleaseOverBudget(id.clone())),
        front,
    )
}

/// Says that `id` must be planned first and its file at `path` has no plan, and what to
/// do, to `front`.
pub fn unplanned_message(id: &gitprio_core::TaskId, path: &str, front: FrontEnd) -> String {
    Hint::follow(
        &format!(
            "{id} must be planned first, and {path} has no `## Plan` section, so it is not done; add one to its body (what you will change and in which order, what you leave alone, how you will check it)"
        ),
        Some(&Hint::CompleteAgainWithPlan),
        front,
    )
}

/// Says that acceptance command `failed` of `id` failed, what to do (to `front`), and how
/// its output ends.
pub fn acceptance_failed_message(
    id: &gitprio_core::TaskId,
    failed: &gitprio_core::workspace::Check,
    front: FrontEnd,
) -> String {
    let said = Hint::follow(
        &format!(
            "acceptance command `{}` failed ({}), so {id} is not done",
            failed.command, failed.status
        ),
        Some(&Hint::FixAcceptance),
        front,
    );
    format!("{said}. Its output ends with:\n{}", failed.tail)
}

/// Says the run of `id` is over its budget, and returns the budget exit code.
pub fn over_budget(
    settings: &Settings,
    id: &gitprio_core::TaskId,
    spent: u64,
    budget: u64,
) -> crate::exit_code::ExitStatus {
    message(
        settings,
        "error",
        &over_budget_message(id, spent, budget, FrontEnd::Cli),
    );
    crate::exit_code::BUDGET_EXCEEDED
}

/// A token count, short: `950`, `1.2k`, `3.40M`.
pub fn tokens(count: u64) -> String {
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

/// Warns of each model that has no price, with the tokens it spent: their cost is unknown,
/// and a figure that leaves them out must not pass for all of it.
pub fn unpriced_models(settings: &Settings, unpriced: &std::collections::BTreeMap<String, u64>) {
    for (model, tokens) in unpriced {
        message(
            settings,
            "warning",
            &format!(
                "no price for model `{model}` ({tokens} tokens): its cost is unknown, not zero; add it to {}",
                gitprio_core::workspace::PRICES_PATH
            ),
        );
    }
}

/// A cost as far as it is known: dollars to the cent when every token is priced; with
/// unpriced tokens, `at least $X (N tokens unpriced)`, or `unknown (N tokens unpriced)`
/// when no token (or under a cent's worth) is priced, never `$0.00`.
pub fn cost(cost: gitprio_core::usage::money::Cost) -> String {
    match cost.known() {
        Some(usd) => Usd(usd).to_string(),
        None if cost.usd <= 0.0 => {
            format!("unknown ({} tokens unpriced)", tokens(cost.unpriced_tokens))
        }
        // Not "at least <$0.01": what is priced is under a cent beside what is not.
        None if cost.usd < 0.005 => format!(
            "unknown (<$0.01 priced, {} tokens unpriced)",
            tokens(cost.unpriced_tokens)
        ),
        None => format!(
            "at least {} ({} tokens unpriced)",
            Usd(cost.usd),
            tokens(cost.unpriced_tokens)
        ),
    }
}

/// What every cost is, said beside it: an estimate at the bundled list prices, dated, or
/// at the prices of the repository's `.tasks/prices.yaml` (and a `--prices` file) over them.
/// `repository_models` is how many models `.tasks/prices.yaml` prices (0: none).
pub fn list_price_label(repository_models: usize, file: Option<&str>) -> String {
    if repository_models == 0 && file.is_none() {
        format!(
            "estimated at list price, {}",
            price_origin(repository_models, file)
        )
    } else {
        format!("estimated, {}", price_origin(repository_models, file))
    }
}

/// Where the prices come from, briefly: `prices of DATE` (the bundled snapshot), or
/// `prices from .tasks/prices.yaml (2 models) over the bundled snapshot of DATE`.
pub fn price_origin(repository_models: usize, file: Option<&str>) -> String {
    let date = gitprio_core::usage::PRICE_SNAPSHOT_DATE;
    let mut sources = Vec::new();
    if repository_models > 0 {
        sources.push(format!(
            "{} ({})",
            gitprio_core::workspace::PRICES_PATH,
            counted(repository_models, "model")
        ));
    }
    sources.extend(file.map(str::to_owned));
    if sources.is_empty() {
        format!("prices of {date}")
    } else {
        format!(
            "prices from {} over the bundled snapshot of {date}",
            sources.join(" and ")
        )
    }
}

/// Warns, once per entry, about what of `.tasks/prices.yaml` could not be read: those
/// models are costed at their bundled prices, in every view alike.
pub fn price_problems(settings: &Settings, repository: &RepositoryPrices) {
    for problem in &repository.problems {
        message(
            settings,
            "warning",
            &format!("{} {problem}", gitprio_core::workspace::PRICES_PATH),
        );
    }
}

/// A cost in at most 7 characters, for a table column: `$1.23`, `≥$1.23` with unpriced
/// tokens, `unknown` when no token (or under a cent's worth) is priced.
pub fn cost_brief(cost: gitprio_core::usage::money::Cost) -> String {
    match cost.known() {
        Some(usd) => Usd(usd).to_string(),
        // What is priced rounds to nothing beside what is not.
        None if cost.usd < 0.005 => "unknown".to_owned(),
        None => format!("≥{}", Usd(cost.usd)),
    }
}

/// Dollars to the cent (`<$0.01` under a cent), or `unknown`.
pub fn dollars(value: Option<f64>) -> String {
    value.map_or_else(|| "unknown".to_owned(), |value| Usd(value).to_string())
}

/// A share as a whole percentage, `-` when undefined. A share that is neither none nor all
/// never reads `0%` or `100%` (`<1%`, `>99%`): 100 tokens of 250,100 are not nothing.
pub fn percent(value: Option<f64>) -> String {
    value.map_or_else(
        || "-".to_owned(),
        |share| {
            let whole = (share * 100.0).round();
            if share > 0.0 && whole < 1.0 {
                "<1%".to_owned()
            } else if share < 1.0 && whole > 99.0 {
                ">99%".to_owned()
            } else {
                format!("{whole:.0}%")
            }
        },
    )
}

/// A ratio to `digits` decimals, or `-` when undefined.
pub fn ratio(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |value| format!("{value:.digits$}"))
}

/// Prints, in sentences, where task `id` stands in `queue`.
pub fn print_explanation(queue: &Queue, id: &str) -> Result<(), StdoutError> {
    let Some(explanation) = queue.explain(id) else {
        return Ok(());
    };
    let task = &explanation.entry.task;
    match &explanation.standing {
        Standing::Next => {
            if explanation.ready_count == 1 {
                outln!("{id} is next: it is the only ready task.")?;
            } else {
                outln!(
                    "{id} is next: it is ready and ranks first of {} ready tasks.",
                    explanation.ready_count
                )?;
            }
            if let Some(second) = queue.ready().get(1) {
                outln!(
                    "It ranks ahead of {} on {}.",
                    second.task.id,
                    describe_reason(
                        gitprio_core::queue::rank_reason(task, &second.task),
                        task,
                        &second.task
                    )
                )?;
            }
        }
        Standing::Behind {
            position,
            ahead,
            reason,
        } => {
            outln!(
                "{id} is ready but ranks {position} of {}.",
                explanation.ready_count
            )?;
            outln!(
                "{} ranks just ahead of it on {}.",
                ahead.id,
                describe_reason(*reason, ahead, task)
            )?;
        }
        Standing::NotReady { blockers } => {
            outln!("{id} is not ready:")?;
            for blocker in *blockers {
                outln!("  - {}", describe_blocker(blocker))?;
            }
        }
    }
    outln!(
        "Rank order: priority (p0 first), then value (higher first), then created (older first), then id."
    )
}

fn describe_reason(
    reason: RankReason,
    ahead: &gitprio_core::Task,
    behind: &gitprio_core::Task,
) -> String {
    match reason {
        RankReason::Priority => format!("priority ({} before {})", ahead.priority, behind.priority),
        RankReason::Value => format!(
            "value ({} over {}, same priority)",
            ahead.value, behind.value
        ),
        RankReason::Created => format!(
            "age (created {} before {}, same priority and value)",
            ahead.created.as_deref().unwrap_or("-"),
            behind.created.as_deref().unwrap_or("undated")
        ),
        RankReason::Id => "id (same priority, value and age)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_neither_none_nor_all_never_reads_as_0_or_100_percent() {
        let shown = [
            0.0, 0.000_4, 0.004_9, 0.005, 0.42, 0.994_9, 0.995, 0.999_6, 1.0, 1.2,
        ]
        .map(|share| percent(Some(share)));
        assert_eq!(
            shown,
            [
                "0%", "<1%", "<1%", "1%", "42%", "99%", ">99%", ">99%", "100%", "120%"
            ]
        );
        assert_eq!(percent(None), "-");
    }
}
