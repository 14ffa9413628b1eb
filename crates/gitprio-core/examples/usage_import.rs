//! Imports agent CLI logs with `gitprio_core::usage::import` and prints the totals as JSON.
//!
//! `cargo run --release -p gitprio-core --example usage_import -- [--state FILE] [--jobs N] PATH...`
//!
//! With `--state`, the import state is read from and saved to FILE, so a second run
//! reads only what the logs gained. `benches/usage.py` times this against ccusage.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use gitprio_core::usage::Totals;
use gitprio_core::usage::import::{ImportOptions, ImportState, import};

fn main() -> ExitCode {
    let mut paths = Vec::new();
    let mut state_path = None;
    let mut options = ImportOptions::default();
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--state") => state_path = args.next().map(PathBuf::from),
            Some("--jobs") => {
                let Some(jobs) = args.next().and_then(|jobs| jobs.to_str()?.parse().ok()) else {
                    eprintln!("usage_import: --jobs takes a number");
                    return ExitCode::from(2);
                };
                options.jobs = jobs;
            }
            _ => paths.push(PathBuf::from(arg)),
        }
    }
    if paths.is_empty() {
        eprintln!("usage: usage_import [--state FILE] [--jobs N] PATH...");
        return ExitCode::from(2);
    }
    let mut state = state_path
        .as_ref()
        .and_then(|path| std::fs::read(path).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_else(ImportState::new);
    let started = Instant::now();
    let imported = match import(&paths, &mut state, &options) {
        Ok(imported) => imported,
        Err(error) => {
            eprintln!("usage_import: failed to {error}");
            return ExitCode::FAILURE;
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let totals: Totals = imported.records.iter().collect();
    if let Some(path) = &state_path {
        let bytes = serde_json::to_vec(&state).expect("the import state serializes");
        if let Err(error) = std::fs::write(path, bytes) {
            eprintln!("usage_import: failed to write {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
    }
    let output = serde_json::json!({
        "totals": {
            "input": totals.input,
            "output": totals.output,
            "cache_creation": totals.cache_write_5m + totals.cache_write_1h,
            "cache_write_5m": totals.cache_write_5m,
            "cache_write_1h": totals.cache_write_1h,
            "cache_read": totals.cache_read,
            "reasoning": totals.reasoning,
            "requests": totals.requests,
            "tokens": totals.tokens(),
        },
        "report": imported.report,
        "seconds": seconds,
    });
    println!("{output:#}");
    ExitCode::SUCCESS
}
