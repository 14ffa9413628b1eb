//! Printing: data tables and JSON to stdout, messages and diagnostics to stderr.

use std::io::Write;

use gitprio_core::{Blocker, Diagnostic, Readiness, Task};

use crate::settings::Settings;

/// Writes `value` as pretty JSON to stdout.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut stdout, value)?;
    writeln!(stdout)?;
    stdout.flush()?;
    Ok(())
}

/// Writes rows as a left-aligned table to stdout; the last column is not padded.
pub fn print_table(rows: &[Vec<String>]) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(render_table(rows).as_bytes())?;
    Ok(())
}

/// Renders rows as a left-aligned table, columns separated by two spaces.
pub fn render_table(rows: &[Vec<String>]) -> String {
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
            if column + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(widths[column] - cell.chars().count() + 2));
            }
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
    eprintln!("{prefix}: {text}");
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
