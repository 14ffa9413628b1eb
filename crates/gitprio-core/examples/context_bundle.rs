//! Times the context bundle of one task, in the library: assembly from git objects, then markdown.
//!
//! `cargo run --release -p gitprio-core --example context_bundle -- REPO TASK-ID [--runs N]`
//!
//! Reads the queue at `HEAD` of REPO once, then builds and renders the bundle of TASK-ID N times
//! (default 200), each time from scratch (no document cached between runs), and prints JSON:
//! the bundle's size and the minimum and median microseconds. `benches/context.py` runs it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use gitprio_core::context::{self, CommitFiles, Tail};
use gitprio_core::git::Repository;
use gitprio_core::source::{self, QueueSource};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(repo), Some(id)) = (args.next(), args.next()) else {
        eprintln!("usage: context_bundle REPO TASK-ID [--runs N]");
        return ExitCode::from(2);
    };
    let runs: usize = match (args.next().as_deref(), args.next()) {
        (Some("--runs"), Some(runs)) => match runs.parse() {
            Ok(runs) if runs > 0 => runs,
            _ => {
                eprintln!("context_bundle: --runs takes a positive number");
                return ExitCode::from(2);
            }
        },
        (None, _) => 200,
        _ => {
            eprintln!("usage: context_bundle REPO TASK-ID [--runs N]");
            return ExitCode::from(2);
        }
    };
    match measure(&PathBuf::from(repo), &id, runs) {
        Ok(report) => {
            println!("{report:#}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("context_bundle: failed to {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn measure(
    repo: &Path,
    id: &str,
    runs: usize,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let repo = Repository::discover(repo)?;
    let loaded = source::load(&repo, &QueueSource::Rev("HEAD".to_owned()), None)?;
    let commit = loaded.commit.ok_or("read the queue from a commit")?;
    let task = loaded
        .tasks
        .iter()
        .find(|task| task.id.as_str() == id)
        .ok_or_else(|| format!("find task `{id}` at HEAD"))?;
    let options = context::Options::from_config(&loaded.config);
    let tail = Tail {
        source: loaded.origin.to_string(),
        lease: None,
        commands: Vec::new(),
    };
    let mut micros = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let started = Instant::now();
        let files = CommitFiles::new(&repo, commit);
        let bundle = context::build(&files, &loaded.config, task, options)?;
        let markdown = bundle.to_markdown(&tail);
        micros.push(started.elapsed().as_secs_f64() * 1e6);
        last = Some((bundle, markdown));
    }
    micros.sort_by(f64::total_cmp);
    let (bundle, markdown) = last.ok_or("run at least once")?;
    let documents = bundle.parts.len() - 1;
    let document_bytes: u64 = bundle
        .parts
        .iter()
        .filter(|part| part.kind != context::PartKind::Task)
        .map(|part| part.bytes)
        .sum();
    Ok(serde_json::json!({
        "documents": documents,
        "document_bytes": document_bytes,
        "dropped": bundle.dropped.len(),
        "tokens": bundle.tokens,
        "markdown_bytes": markdown.len(),
        "runs": runs,
        "min_us": micros[0],
        "median_us": micros[micros.len() / 2],
    }))
}
