//! `gitprio top`: the cockpit. Every agent's task, spend and heartbeat, live, and a way to stop a bad run.

mod app;
mod gather;
mod history;
mod model;
#[cfg(test)]
mod tests;
mod view;

use std::io::IsTerminal as _;

use anyhow::anyhow;
use clap::Args;
use gitprio_core::git::Repository;
use gitprio_core::lease::parse_duration;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use crate::args::StoreArgs;
use crate::cli::CommandResult;
use crate::settings::Settings;
use crate::{exit_code, output};
use gitprio_core::workspace::Workspace;

#[derive(Debug, Args)]
pub struct TopArgs {
    /// How often to fetch the leases and usage from the remote (one fetch each time).
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub interval: String,
    /// The span the header's throughput, tokens, cost and value per token cover.
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub window: String,
    /// Print one frame as plain text to stdout and exit, for scripts and logs.
    #[arg(long)]
    pub once: bool,
    /// With `--once`: print the fleet as JSON instead.
    #[arg(long, requires = "once")]
    pub json: bool,
    /// With `--once`: the width of the frame, in columns.
    #[arg(long, value_name = "COLUMNS", default_value_t = 120, requires = "once")]
    pub width: u16,
    /// Show the leases and usage last fetched, without asking the remote.
    #[arg(long)]
    pub offline: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

pub fn run(settings: &Settings, args: &TopArgs) -> CommandResult {
    let interval = parse_duration(&args.interval)
        .filter(|interval| interval.as_secs() >= 1)
        .ok_or_else(|| {
            anyhow!(
                "invalid --interval `{}`: write it like `2s` or `1m`, at least one second",
                args.interval
            )
        })?;
    let window = parse_duration(&args.window)
        .filter(|window| !window.is_zero())
        .ok_or_else(|| {
            anyhow!(
                "invalid --window `{}`: write it like `1h` or `30m`",
                args.window
            )
        })?;
    if args.once {
        return once(settings, args, window);
    }
    if !std::io::stdout().is_terminal() {
        return Err(anyhow!(
            "`gitprio top` draws on a terminal, and stdout is not one; use `gitprio top --once` (or `--once --json`) for scripts"
        )
        .into());
    }
    app::run(settings, args, interval, window)?;
    Ok(exit_code::SUCCESS)
}

fn once(settings: &Settings, args: &TopArgs, window: jiff::SignedDuration) -> CommandResult {
    let notices = output::Stderr(settings);
    let repo = Repository::discover(&settings.directory)?;
    let workspace = Workspace::open(&repo, settings.invocation(), args.store.choice(), &notices)?;
    if !args.offline {
        gather::fetch(workspace.store())?;
    }
    let snapshot = gather::read(&workspace, window)?;
    output::price_problems(settings, &snapshot.repository_prices);
    let fleet = snapshot.fleet();
    if args.json {
        output::print_json(&fleet)?;
        return Ok(exit_code::SUCCESS);
    }
    let view = view::View::new(false, false, 0);
    crate::output::out!("{}", frame_text(&fleet, &view, args.width.max(40)))?;
    Ok(exit_code::SUCCESS)
}

/// Renders one frame of `fleet` as plain text, tall enough for every row.
fn frame_text(fleet: &model::Fleet, view: &view::View, width: u16) -> String {
    let height = view::full_height(fleet, view, width);
    let mut terminal =
        Terminal::new(TestBackend::new(width, height)).expect("a test backend never fails");
    terminal
        .draw(|frame| view::draw(frame, fleet, view))
        .expect("a test backend never fails");
    view::plain_text(terminal.backend().buffer())
}
