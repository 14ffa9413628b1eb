//! `gitprio usage`: record token usage against a task's run, and show it.

use std::io::Read as _;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use gitprio_core::TaskId;
use gitprio_core::git::Repository;
use gitprio_core::lease::HeldLease;
use gitprio_core::reply::usage::{UsageImportReply, UsageRecordReply, UsageShowReply};
use gitprio_core::usage::{Ledger, Outcome, RunMeta, UsageRecord};
use gitprio_core::workspace::{self, RecordInput, Workspace};

use crate::args::StoreArgs;
use crate::cli::CommandResult;
use crate::settings::Settings;
use crate::{exit_code, output};

#[derive(Debug, Args)]
pub struct UsageArgs {
    #[command(subcommand)]
    pub command: UsageCommand,
}

#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// Record tokens spent on a task's current run (for agents whose logs gitprio cannot read).
    Record(RecordArgs),
    /// Import usage from agent CLIs' logs (Claude Code, Codex CLI, Gemini CLI) into the runs they belong to.
    Import(ImportArgs),
    /// Show the runs of a task and what each spent.
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Log files or directories (default: `~/.claude/projects` or `CLAUDE_CONFIG_DIR`,
    /// `~/.codex/sessions` or `CODEX_HOME`, `~/.gemini/tmp`).
    pub paths: Vec<std::path::PathBuf>,
    /// Give this task the records in its current run window that no other run claims.
    #[arg(long, value_name = "ID")]
    pub task: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print what was read and recorded as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The task id (default: the one task this worktree holds).
    pub id: Option<String>,
    /// The model that spent the tokens.
    #[arg(long, required_unless_present = "stdin")]
    pub model: Option<String>,
    /// Input tokens not read from or written to the cache.
    #[arg(long, default_value_t = 0)]
    pub input: u64,
    /// Output tokens, reasoning included.
    #[arg(long, default_value_t = 0)]
    pub output: u64,
    /// Tokens read from the prompt cache.
    #[arg(long, default_value_t = 0)]
    pub cache_read: u64,
    /// Tokens written to the prompt cache (5-minute lifetime).
    #[arg(long, default_value_t = 0)]
    pub cache_write: u64,
    /// Tokens written to the prompt cache with a 1-hour lifetime.
    #[arg(long, default_value_t = 0)]
    pub cache_write_1h: u64,
    /// Reasoning tokens (already counted in `--output`).
    #[arg(long, default_value_t = 0)]
    pub reasoning: u64,
    /// API requests these tokens were spent in.
    #[arg(long, default_value_t = 1)]
    pub requests: u32,
    /// A key that makes recording the same usage twice count once (default: unique).
    #[arg(long)]
    pub key: Option<String>,
    /// Read records from stdin instead: one JSON object, an array, or JSON lines, with the
    /// fields `model`, `input`, `output`, `cache_read`, `cache_write`, `cache_write_1h`,
    /// `reasoning`, `requests`, `key`.
    #[arg(long, conflicts_with = "model")]
    pub stdin: bool,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print the run's totals as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The task id.
    pub id: String,
    /// Use the usage last fetched, without asking the remote.
    #[arg(long)]
    pub offline: bool,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print JSON: `{"task", "runs": [...]}`.
    #[arg(long)]
    pub json: bool,
}

pub fn run(settings: &Settings, args: &UsageArgs) -> CommandResult {
    match &args.command {
        UsageCommand::Record(args) => record(settings, args),
        UsageCommand::Import(args) => import(settings, args),
        UsageCommand::Show(args) => show(settings, args),
    }
}

/// Parses `usage record --stdin`: a JSON array of records, or one record per line (blank
/// lines skipped, and counted, so that an error names the line as the input numbers it).
fn parse_stdin(text: &str) -> anyhow::Result<Vec<RecordInput>> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        return serde_json::from_str(trimmed).context("stdin is not a JSON array of records");
    }
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str(line)
                .with_context(|| format!("stdin line {}: not a usage record", index + 1))
        })
        .collect()
}

fn record(settings: &Settings, args: &RecordArgs) -> CommandResult {
    let notices = output::Stderr(settings);
    let repo = Repository::discover(&settings.directory)?;
    let workspace =
        Workspace::open_quietly(&repo, settings.invocation(), args.store.choice(), &notices)?;
    let id = workspace::held_id(&repo, args.id.as_deref())?;
    let inputs = if args.stdin {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        parse_stdin(&text)?
    } else {
        vec![RecordInput {
            model: args.model.clone().unwrap_or_default(),
            input: args.input,
            output: args.output,
            cache_read: args.cache_read,
            cache_write: args.cache_write,
            cache_write_1h: args.cache_write_1h,
            reasoning: args.reasoning,
            requests: args.requests,
            key: args.key.clone(),
            origin: None,
        }]
    };
    let written = workspace.record_usage(&id, inputs)?;
    let totals = written.totals;
    if args.json {
        output::print_json(&UsageRecordReply::new(&id, &written))?;
    } else {
        let text = format!(
            "{} {} on {id} run {}: {} tokens in {} {}{}",
            if written.kept.is_some() {
                "kept"
            } else {
                "recorded"
            },
            output::counted(written.added, "record"),
            written.meta.run,
            totals.tokens(),
            output::counted(
                usize::try_from(totals.requests).unwrap_or(usize::MAX),
                "request"
            ),
            if written.kept.is_some() {
                "in this write"
            } else {
                "so far"
            },
            written
                .meta
                .budget_tokens
                .map(|budget| format!(" (budget {budget})"))
                .unwrap_or_default()
        );
        output::confirm(settings, &text);
    }
    Ok(match written.over_budget() {
        Some((spent, budget)) => output::over_budget(settings, &id, spent, budget),
        None => exit_code::SUCCESS,
    })
}

fn show(settings: &Settings, args: &ShowArgs) -> CommandResult {
    let notices = output::Stderr(settings);
    let repo = Repository::discover(&settings.directory)?;
    let workspace =
        Workspace::open_quietly(&repo, settings.invocation(), args.store.choice(), &notices)?;
    let id = workspace::task_id(&args.id)?;
    if !args.offline {
        // Whether a run without an outcome is still going is the lease's to tell.
        workspace.fetch_runs_of(&id)?;
    }
    let runs = workspace.settled_runs_of(&id)?;
    warn_hand_beside_log(settings, &runs);
    let repository_prices = workspace.prices()?;
    output::price_problems(settings, &repository_prices);
    let prices = repository_prices.table();
    output::unpriced_models(
        settings,
        &prices.unpriced(runs.iter().flat_map(|run| &run.records)),
    );
    if args.json {
        output::print_json(&UsageShowReply::new(&id, &runs, &prices))?;
        return Ok(exit_code::SUCCESS);
    }
    if runs.is_empty() {
        output::confirm(settings, &format!("no usage recorded for {id}"));
        return Ok(exit_code::SUCCESS);
    }
    let mut rows = vec![
        [
            "RUN",
            "AGENT",
            "OUTCOME",
            "STARTED",
            "REQUESTS",
            "INPUT",
            "OUTPUT",
            "CACHE READ",
            "CACHE WRITE",
            "TOKENS",
            "COST",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for run in &runs {
        let totals = run.totals();
        rows.push(vec![
            run.meta.run.clone(),
            run.meta.agent.clone(),
            run.meta
                .outcome
                .map_or("in flight", Outcome::as_str)
                .to_owned(),
            output::minute(run.meta.started_at),
            totals.requests.to_string(),
            totals.input.to_string(),
            totals.output.to_string(),
            totals.cache_read.to_string(),
            (totals.cache_write_5m + totals.cache_write_1h).to_string(),
            totals.tokens().to_string(),
            output::cost(run.cost(&prices)),
        ]);
    }
    output::print_aligned_table(&rows, &output::numbers_after::<11>(4))?;
    output::outln!(
        "Costs {}.",
        output::list_price_label(repository_prices.prices.len(), None)
    )?;
    Ok(exit_code::SUCCESS)
}

/// Imports agent logs and gives each record to the run it belongs to (see
/// `gitprio_core::usage::attribute`): the run whose agent session it names, or in whose
/// worktree it ran during the run's time. With `only`, every record inside that task's
/// current run window goes to it. Records no run claims wait in the unattributed store.
pub fn import_logs(
    settings: &Settings,
    workspace: &Workspace<'_>,
    paths: &[std::path::PathBuf],
    only: Option<&TaskId>,
) -> anyhow::Result<UsageImportReply> {
    use gitprio_core::usage::attribute::{Matcher, Places, Unattributed};
    use gitprio_core::usage::import::{self, ImportEnv, ImportOptions, ImportState};
    let roots: Vec<std::path::PathBuf> = if paths.is_empty() {
        import::default_roots(&ImportEnv::from_lookup(|name| std::env::var_os(name)))
    } else {
        paths
            .iter()
            .map(|path| std::path::absolute(path).unwrap_or_else(|_| path.clone()))
            .collect()
    };
    let store = workspace.store();
    let repo = store.repo();
    let state_path = ImportState::path(repo.common_dir());
    let mut state: ImportState = std::fs::read(&state_path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let mut summary = UsageImportReply::default();
    let records = if roots.is_empty() {
        Vec::new()
    } else {
        let imported = import::import(&roots, &mut state, &ImportOptions::default())?;
        summary.report = Some(imported.report);
        imported.records
    };
    let ledger = Ledger::new(store);
    if let Err(error) = ledger.refresh() {
        output::message(
            settings,
            "warning",
            &format!("cannot fetch the usage ledger, so runs are matched as last fetched: {error}"),
        );
    }
    // Every run is a candidate, with `--task` too: that task takes only what none claims.
    let mut candidates: Vec<RunMeta> = ledger.all_metas()?;
    for held in HeldLease::all(repo.common_dir()) {
        if let Ok(meta) = workspace.current_run(&held.task)
            && !candidates
                .iter()
                .any(|known| known.run == meta.run && known.task == meta.task)
        {
            candidates.push(meta);
        }
    }
    if let Some(id) = only
        && !candidates.iter().any(|meta| &meta.task == id)
    {
        candidates.push(workspace.current_run(id)?);
    }
    let waiting =
        Unattributed::open(repo.common_dir()).with_places(Places::of_repository(repo, &candidates));
    let matcher = Matcher::new(
        &candidates,
        &workspace::task_worktrees(repo),
        only,
        settings.now,
    )
    .with_run_sessions(run_sessions(&ledger, &candidates, &records)?)
    .with_versions(ledger.versions()?)
    .with_ledger_keys(&ledger, &records, &waiting)?;
    let mut records = records;
    let (unattributed, mut by_run) = group_by_run(&mut records, &matcher);
    let claimed = waiting.claim(&matcher)?;
    warn_ambiguous(settings, &matcher, &candidates);
    summary.claimed_from_store = claimed.records.len();
    let mut from_store: std::collections::BTreeMap<usize, Vec<UsageRecord>> =
        std::collections::BTreeMap::new();
    for (run, record) in &claimed.records {
        from_store.entry(*run).or_default().push(record.clone());
        by_run.entry(*run).or_insert(0..0);
    }
    // Race injection for tests: the ledger was read and the records matched, nothing written.
    pause_at(settings, "import:before-write");
    for (run, range) in by_run {
        let meta = &candidates[run];
        let own = &records[range];
        let stored = from_store.remove(&run);
        let written = match &stored {
            Some(stored) => {
                let both: Vec<UsageRecord> = own.iter().chain(stored).cloned().collect();
                workspace.deliver_imported(meta, &both)?
            }
            None => workspace.deliver_imported(meta, own)?,
        };
        warn_hand_beside_imported(settings, &ledger, &written, own, stored.as_deref());
        summary.kept_writes += usize::from(written.kept.is_some());
        summary
            .recorded
            .insert(format!("{} {}", meta.task, meta.run), written.added);
    }
    // Freeing a large import's records (a few strings each) costs milliseconds that
    // nothing needs to wait for.
    std::thread::spawn(move || drop(records));
    // Only now is what was read safely stored: keep the rest, then remember how far each
    // log was read.
    summary.unattributed = unattributed.len();
    waiting.add(unattributed)?;
    waiting.apply(claimed)?;
    (summary.unattributed_kept, summary.unattributed_kept_tokens) = waiting.count()?;
    if let Some(parent) = state_path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    gitprio_core::file::replace(&state_path, &serde_json::to_vec(&state)?)
        .with_context(|| format!("cannot write {}", state_path.display()))?;
    Ok(summary)
}

/// Warns of runs that hold usage recorded by hand (`usage record`, MCP `report_usage`)
/// beside usage of the same model read from the agent's log, in the same stretch of time:
/// both count, since nothing says they are the same requests.
fn warn_hand_beside_log(settings: &Settings, runs: &[gitprio_core::usage::Run]) {
    for run in runs {
        for (model, hand, log) in gitprio_core::usage::counted::overlaps(run) {
            output::message(
                settings,
                "warning",
                &format!(
                    "{} run {} holds {hand} tokens of {model} recorded by hand beside {log} read from the agent's log in the same time: both count; record by hand only what no log holds",
                    run.meta.task, run.meta.run
                ),
            );
        }
    }
}

/// Warns when the run an import `written` to holds usage recorded by hand beside what
/// it read for it from the logs (`own` and `stored`), of one model in one stretch of time. The
/// run's hand-recorded usage comes from a cache of each ledger chunk's, so a large
/// import to a run of logs alone costs a look-up per chunk.
fn warn_hand_beside_imported(
    settings: &Settings,
    ledger: &Ledger<'_, '_>,
    written: &gitprio_core::workspace::Recorded,
    own: &[UsageRecord],
    stored: Option<&[UsageRecord]>,
) {
    if written.added == 0 || written.kept.is_some() {
        return;
    }
    let meta = &written.meta;
    let Ok(hand) = ledger.hand_recorded(meta) else {
        return;
    };
    if hand.is_empty() {
        return;
    }
    let records = own
        .iter()
        .chain(stored.unwrap_or_default())
        .cloned()
        .chain(hand)
        .collect();
    let run = gitprio_core::usage::Run {
        meta: meta.clone(),
        records,
    };
    warn_hand_beside_log(settings, std::slice::from_ref(&run));
}

/// Holds the command at `point` while the failpoint `point=<file>` is armed: it creates
/// `<file>.waiting`, then waits (a minute at most) for `<file>` to exist, so that a test
/// interleaves two commands deterministically.
fn pause_at(settings: &Settings, point: &str) {
    let Some(file) = settings
        .failpoint
        .as_deref()
        .and_then(|armed| armed.strip_prefix(point))
        .and_then(|rest| rest.strip_prefix('='))
    else {
        return;
    };
    let _ = std::fs::write(format!("{file}.waiting"), b"");
    for _ in 0..600 {
        if std::path::Path::new(file).exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Warns of records that ran where two runs were open at once: each went to the first.
fn warn_ambiguous(
    settings: &Settings,
    matcher: &gitprio_core::usage::attribute::Matcher<'_>,
    candidates: &[RunMeta],
) {
    for (given, other, count) in matcher.ambiguous() {
        let (given, other) = (&candidates[given], &candidates[other]);
        output::message(
            settings,
            "warning",
            &format!(
                "{} ran where two runs were open at once ({} {} and {} {}): given to {}; a session id (`gitprio run`) or `--task` tells them apart",
                output::counted(count, "record"),
                given.task,
                given.run,
                other.task,
                other.run,
                given.task
            ),
        );
    }
}

/// Sorts `records` by the run they belong to, in place (stable: each run's records stay in
/// time order; an import can hold a million records, so they are not copied), and splits
/// off those no run claims. Returns them, and the range of `records` of each run.
fn group_by_run(
    records: &mut Vec<UsageRecord>,
    matcher: &gitprio_core::usage::attribute::Matcher<'_>,
) -> (
    Vec<UsageRecord>,
    std::collections::BTreeMap<usize, std::ops::Range<usize>>,
) {
    // Each record's owner is worked out once: `sort_by_cached_key` would, then forget it.
    let mut order: Vec<(usize, usize)> = records
        .iter()
        .enumerate()
        .map(|(position, record)| (matcher.owner(record).unwrap_or(usize::MAX), position))
        .collect();
    order.sort_unstable();
    for position in 0..order.len() {
        let mut from = order[position].1;
        while from < position {
            from = order[from].1;
        }
        order[position].1 = from;
        if from != position {
            records.swap(position, from);
        }
    }
    let owners: Vec<usize> = order.into_iter().map(|(owner, _)| owner).collect();
    let split = owners.partition_point(|run| *run != usize::MAX);
    // When no record has a run (a plain import of other projects' logs), the vector is
    // handed over rather than copied (a large import's records take ~16 MB).
    let unattributed = if split == 0 {
        std::mem::take(records)
    } else {
        records.split_off(split)
    };
    let mut by_run: std::collections::BTreeMap<usize, std::ops::Range<usize>> =
        std::collections::BTreeMap::new();
    for (position, run) in owners.iter().enumerate().take(records.len()) {
        by_run
            .entry(*run)
            .and_modify(|range| range.end = position + 1)
            .or_insert(position..position + 1);
    }
    (unattributed, by_run)
}

/// Returns the agent sessions that the runs' own records name, by index into `candidates`:
/// `gitprio run` copies the CLI's log records as the agent works, so those logs belong to
/// that run whatever its time window. Read only when there are new records to match.
fn run_sessions(
    ledger: &Ledger<'_, '_>,
    candidates: &[RunMeta],
    records: &[UsageRecord],
) -> anyhow::Result<std::collections::HashMap<String, usize>> {
    let mut sessions = std::collections::HashMap::new();
    if records.iter().all(|record| record.session.is_none()) {
        return Ok(sessions);
    }
    for (session, (task, run)) in ledger.record_sessions()? {
        if let Some(index) = candidates
            .iter()
            .position(|meta| meta.run == run && meta.task == task)
        {
            sessions.insert(session, index);
        }
    }
    Ok(sessions)
}

fn import(settings: &Settings, args: &ImportArgs) -> CommandResult {
    let notices = output::Stderr(settings);
    let repo = Repository::discover(&settings.directory)?;
    let workspace =
        Workspace::open_quietly(&repo, settings.invocation(), args.store.choice(), &notices)?;
    let only = args.task.as_deref().map(workspace::task_id).transpose()?;
    let summary = import_logs(settings, &workspace, &args.paths, only.as_ref())?;
    if args.json {
        output::print_json(&summary)?;
        return Ok(exit_code::SUCCESS);
    }
    let confirm = |text: &str| output::confirm(settings, text);
    if let Some(report) = &summary.report {
        let count = |value: u64, noun: &str| {
            output::counted(usize::try_from(value).unwrap_or(usize::MAX), noun)
        };
        confirm(&format!(
            "read {} ({} bytes, {}; {} skipped): {}, {} dropped",
            count(report.files_read, "file"),
            report.bytes_read,
            count(report.lines, "line"),
            count(report.malformed_lines, "malformed line"),
            count(report.records, "request"),
            count(report.duplicates, "duplicate copy"),
        ));
    } else {
        confirm("no agent logs found");
    }
    // Only the runs that got something: with a fleet, most runs an import looks at get
    // nothing new, and a line each would bury the ones that did.
    let mut added_runs = 0;
    for (run, added) in summary.recorded.iter().filter(|(_, added)| **added > 0) {
        confirm(&format!("{run}: {}", output::counted(*added, "new record")));
        added_runs += 1;
    }
    let added: usize = summary.recorded.values().sum();
    if summary.report.is_some() || !summary.recorded.is_empty() {
        confirm(&format!(
            "{} in {}",
            output::counted(added, "new record"),
            output::counted(added_runs, "run")
        ));
    }
    if summary.claimed_from_store > 0 {
        confirm(&format!(
            "{} kept earlier now given to their runs",
            output::counted(summary.claimed_from_store, "record")
        ));
    }
    if summary.unattributed > 0 {
        confirm(&format!(
            "no run of this repository claims {} yet (other projects, or outside every run's time): kept for a later import, or for `--task`",
            output::counted(summary.unattributed, "record")
        ));
    }
    Ok(exit_code::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_stdin;

    #[test]
    fn a_bad_stdin_line_is_named_by_its_number_in_the_input() {
        let text = "\n{\"model\": \"m\", \"input\": 1}\n\n  \nnot json\n";
        let error = parse_stdin(text).unwrap_err();
        assert_eq!(error.to_string(), "stdin line 5: not a usage record");
    }
}
