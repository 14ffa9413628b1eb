//! What `gitprio top` draws, and how keys change what it shows: pure functions of the fleet and the view.

use gitprio_core::TaskId;
use jiff::Timestamp;
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Padding, Paragraph, Row, Table, TableState, Wrap};

use super::model::{Beat, Detail, EndedRun, Fleet, LeaseRow, ParkedTask};
use crate::output::tokens;
use crate::output::{self, span};
use gitprio_core::usage::money::Cost;

/// The order of the lease rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortKey {
    /// Most expensive first (cost, then tokens).
    #[default]
    Spend,
    /// Longest on its task first.
    Time,
    /// Oldest heartbeat first.
    Heartbeat,
    Agent,
    Task,
}

impl SortKey {
    fn next(self) -> SortKey {
        match self {
            SortKey::Spend => SortKey::Time,
            SortKey::Time => SortKey::Heartbeat,
            SortKey::Heartbeat => SortKey::Agent,
            SortKey::Agent => SortKey::Task,
            SortKey::Task => SortKey::Spend,
        }
    }

    fn label(self) -> &'static str {
        match self {
            SortKey::Spend => "spend",
            SortKey::Time => "time",
            SortKey::Heartbeat => "heartbeat",
            SortKey::Agent => "agent",
            SortKey::Task => "task",
        }
    }
}

/// What fills the screen.
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    Fleet,
    /// One task's lease history and usage; `None` until it is read.
    Detail(TaskId, Option<Box<Detail>>),
    /// Asking before revoking the lease on a task held by an agent.
    Confirm {
        task: TaskId,
        agent: String,
    },
}

/// What a key asks the event loop to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Nothing,
    Quit,
    Refresh,
    /// Read the lease history of a task for the detail view.
    OpenDetail(TaskId),
    Revoke {
        task: TaskId,
        park: bool,
    },
}

/// How the fleet is shown: sort, filters, selection, mode, and the last message.
#[derive(Clone, Debug, PartialEq)]
pub struct View {
    pub sort: SortKey,
    pub agent: Option<String>,
    pub task_type: Option<String>,
    pub selected: Option<TaskId>,
    pub mode: Mode,
    pub message: Option<String>,
    /// Colors, unless `NO_COLOR` is set; without them every state is still written out.
    pub color: bool,
    /// The key help line and the selection: off for `--once`.
    pub interactive: bool,
    /// Seconds between refreshes, for the title line.
    pub interval_seconds: u64,
}

impl View {
    pub fn new(color: bool, interactive: bool, interval_seconds: u64) -> View {
        View {
            sort: SortKey::default(),
            agent: None,
            task_type: None,
            selected: None,
            mode: Mode::Fleet,
            message: None,
            color,
            interactive,
            interval_seconds,
        }
    }

    /// The lease rows that pass the filters, in the chosen order.
    pub fn rows<'a>(&self, fleet: &'a Fleet) -> Vec<&'a LeaseRow> {
        let mut rows: Vec<&LeaseRow> = fleet
            .leases
            .iter()
            .filter(|row| self.agent.as_ref().is_none_or(|agent| &row.agent == agent))
            .filter(|row| {
                self.task_type
                    .as_ref()
                    .is_none_or(|kind| row.task_type.as_ref() == Some(kind))
            })
            .collect();
        rows.sort_by(|left, right| {
            match self.sort {
                SortKey::Spend => right
                    .cost_usd
                    .total_cmp(&left.cost_usd)
                    .then(right.tokens.cmp(&left.tokens)),
                SortKey::Time => right.on_task_seconds.cmp(&left.on_task_seconds),
                SortKey::Heartbeat => right.heartbeat_age_seconds.cmp(&left.heartbeat_age_seconds),
                SortKey::Agent => left.agent.cmp(&right.agent),
                SortKey::Task => left.task.cmp(&right.task),
            }
            .then_with(|| left.task.cmp(&right.task))
        });
        rows
    }

    fn selected_index(&self, rows: &[&LeaseRow]) -> Option<usize> {
        if rows.is_empty() {
            return None;
        }
        Some(
            self.selected
                .as_ref()
                .and_then(|id| rows.iter().position(|row| &row.task == id))
                .unwrap_or(0),
        )
    }

    /// Applies `key` to the view; returns what the event loop has to do.
    pub fn handle(&mut self, fleet: &Fleet, key: KeyEvent) -> Action {
        if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
            return Action::Quit;
        }
        match &self.mode {
            Mode::Confirm { task, .. } => {
                let task = task.clone();
                self.mode = Mode::Fleet;
                return match key.code {
                    KeyCode::Char('y') => Action::Revoke { task, park: false },
                    KeyCode::Char('p') => Action::Revoke { task, park: true },
                    _ => {
                        self.message = Some(format!("{task} was not revoked"));
                        Action::Nothing
                    }
                };
            }
            Mode::Detail(..) => {
                return match key.code {
                    KeyCode::Char('q') => Action::Quit,
                    KeyCode::Esc | KeyCode::Enter | KeyCode::Backspace => {
                        self.mode = Mode::Fleet;
                        Action::Nothing
                    }
                    _ => Action::Nothing,
                };
            }
            Mode::Fleet => {}
        }
        let rows = self.rows(fleet);
        let index = self.selected_index(&rows);
        let select = |view: &mut View, index: usize| {
            view.selected = rows.get(index).map(|row| row.task.clone());
        };
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => return Action::Quit,
            KeyCode::Down | KeyCode::Char('j') => {
                if let Some(index) = index {
                    select(self, (index + 1).min(rows.len() - 1));
                }
            }
            KeyCode::Up | KeyCode::Char('k') => {
                if let Some(index) = index {
                    select(self, index.saturating_sub(1));
                }
            }
            KeyCode::Char('s') => {
                self.sort = self.sort.next();
                self.message = Some(format!("sorted by {}", self.sort.label()));
            }
            KeyCode::Char('a') => {
                let agents: Vec<&str> =
                    sorted_unique(fleet.leases.iter().map(|row| row.agent.as_str()));
                self.agent = cycle(self.agent.as_deref(), &agents);
                self.message = Some(format!("agent: {}", self.agent.as_deref().unwrap_or("all")));
            }
            KeyCode::Char('t') => {
                let kinds: Vec<&str> = sorted_unique(
                    fleet
                        .leases
                        .iter()
                        .filter_map(|row| row.task_type.as_deref()),
                );
                self.task_type = cycle(self.task_type.as_deref(), &kinds);
                self.message = Some(format!(
                    "type: {}",
                    self.task_type.as_deref().unwrap_or("all")
                ));
            }
            KeyCode::Char('u') => return Action::Refresh,
            KeyCode::Enter => {
                if let Some(row) = index.map(|index| rows[index]) {
                    self.mode = Mode::Detail(row.task.clone(), None);
                    return Action::OpenDetail(row.task.clone());
                }
            }
            KeyCode::Char('r') => match index.map(|index| rows[index]) {
                Some(row) => {
                    self.mode = Mode::Confirm {
                        task: row.task.clone(),
                        agent: row.agent.clone(),
                    };
                }
                None => self.message = Some("no lease selected".to_owned()),
            },
            _ => {}
        }
        Action::Nothing
    }
}

fn sorted_unique<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut items: Vec<&str> = items.collect();
    items.sort_unstable();
    items.dedup();
    items
}

/// The value after `current` in `all`, then none (all), then the first again.
fn cycle(current: Option<&str>, all: &[&str]) -> Option<String> {
    let next = match current {
        None => all.first(),
        Some(current) => all
            .iter()
            .position(|item| *item == current)
            .and_then(|index| all.get(index + 1)),
    };
    next.map(|item| (*item).to_owned())
}

/// Styles, or none at all under `NO_COLOR`.
struct Theme {
    color: bool,
}

impl Theme {
    fn fg(&self, color: Color) -> Style {
        if self.color {
            Style::new().fg(color)
        } else {
            Style::new()
        }
    }

    fn beat(&self, beat: Beat) -> Style {
        match beat {
            Beat::Fresh => Style::new(),
            Beat::Stale => self.fg(Color::Yellow).add_modifier(Modifier::BOLD),
            Beat::Expired => self.fg(Color::Red).add_modifier(Modifier::BOLD),
        }
    }

    fn share(&self, share: Option<f64>) -> Style {
        match share {
            Some(share) if share >= 1.0 => self.fg(Color::Red).add_modifier(Modifier::BOLD),
            Some(share) if share >= 0.8 => self.fg(Color::Yellow),
            Some(_) => self.fg(Color::Green),
            None => Style::new(),
        }
    }

    fn outcome(&self, outcome: gitprio_core::usage::Outcome) -> Style {
        match outcome {
            gitprio_core::usage::Outcome::Completed => self.fg(Color::Green),
            gitprio_core::usage::Outcome::Released => Style::new(),
            _ => self.fg(Color::Red),
        }
    }
}

fn bold() -> Style {
    Style::new().add_modifier(Modifier::BOLD)
}

/// Writes the header's window the way it was likely given: `1h`, `30m`, `7d`.
fn window_label(seconds: i64) -> String {
    match seconds {
        _ if seconds > 0 && seconds % 86_400 == 0 => format!("{}d", seconds / 86_400),
        _ if seconds > 0 && seconds % 3600 == 0 => format!("{}h", seconds / 3600),
        _ if seconds > 0 && seconds % 60 == 0 => format!("{}m", seconds / 60),
        _ => format!("{seconds}s"),
    }
}

/// The cost of a row: its priced dollars and unpriced tokens.
fn cost_of(usd: f64, unpriced_tokens: u64) -> Cost {
    Cost {
        usd,
        unpriced_tokens,
    }
}

/// A text bar of `width` cells for `share` of a budget, then the percentage.
pub fn budget_bar(share: Option<f64>, width: usize) -> String {
    let Some(share) = share else {
        return "no budget".to_owned();
    };
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "a share of a few cells, clamped"
    )]
    let filled = ((share * width as f64).round().max(0.0) as usize).min(width);
    format!(
        "{}{} {}{}",
        "█".repeat(filled),
        "░".repeat(width - filled),
        output::percent(Some(share)),
        if share > 1.0 { "!" } else { "" }
    )
}

/// How recently the holder renewed; for an expired lease, since when it has expired.
fn beat_text(row: &LeaseRow, now: Timestamp) -> String {
    let age = span(row.heartbeat_age_seconds);
    match row.expired_at {
        Some(expired_at) => format!(
            "expired {} ago",
            span(now.duration_since(expired_at).as_secs())
        ),
        None if row.beat == Beat::Stale => format!("{age} stale"),
        None => age,
    }
}

fn header_height(fleet: &Fleet, view: &View, width: u16) -> u16 {
    count(header_lines(fleet, view, width).len())
}

fn count(items: usize) -> u16 {
    u16::try_from(items).unwrap_or(u16::MAX)
}

/// The rows the lower pane wants: a title line and a line per run, beside or above a
/// title line and a line per parked task.
fn lower_height(fleet: &Fleet, width: u16) -> u16 {
    let recent = if fleet.recent.is_empty() {
        2
    } else {
        2 + count(fleet.recent.len())
    };
    let parked = 1 + count(fleet.parked.len().max(1));
    if width >= 120 {
        recent.max(parked)
    } else if fleet.parked.is_empty() {
        recent
    } else {
        recent + parked
    }
}

/// The height that shows every row of `fleet` at `width`, for `--once`.
pub fn full_height(fleet: &Fleet, view: &View, width: u16) -> u16 {
    let rows = view.rows(fleet).len();
    let leases = 1 + if rows == 0 { 1 } else { 1 + count(rows) };
    header_height(fleet, view, width)
        + leases
        + lower_height(fleet, width)
        + u16::from(view.interactive)
}

/// Draws the whole screen.
pub fn draw(frame: &mut Frame<'_>, fleet: &Fleet, view: &View) {
    let area = frame.area();
    let theme = Theme { color: view.color };
    let footer_height = u16::from(view.interactive);
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(header_height(fleet, view, area.width)),
        Constraint::Min(0),
        Constraint::Length(footer_height),
    ])
    .areas(area);
    draw_header(frame, header, fleet, view);
    match &view.mode {
        Mode::Detail(id, detail) => draw_detail(frame, body, id, detail.as_deref()),
        Mode::Fleet | Mode::Confirm { .. } => {
            let lower = if !view.interactive {
                lower_height(fleet, area.width)
            } else if body.height >= 12 {
                lower_height(fleet, area.width).min(body.height / 2)
            } else {
                0
            };
            let [leases, lower] =
                Layout::vertical([Constraint::Min(2), Constraint::Length(lower)]).areas(body);
            draw_leases(frame, leases, fleet, view, &theme);
            if lower.height > 0 {
                draw_lower(frame, lower, fleet, &theme);
            }
        }
    }
    if view.interactive {
        draw_footer(frame, footer, view, &theme);
    }
    if let Mode::Confirm { task, agent } = &view.mode {
        draw_confirm(frame, area, task, agent, &theme);
    }
}

fn draw_header(frame: &mut Frame<'_>, area: Rect, fleet: &Fleet, view: &View) {
    frame.render_widget(Paragraph::new(header_lines(fleet, view, area.width)), area);
}

/// The header's lines at `width`: a part that does not fit beside another goes on its own
/// line, so the price label is never the part cut off.
fn header_lines(fleet: &Fleet, view: &View, width: u16) -> Vec<Line<'static>> {
    let header = &fleet.header;
    let window = window_label(fleet.window_seconds);
    let width = usize::from(width);
    let fits = |parts: &[&str]| {
        parts.iter().map(|part| part.chars().count()).sum::<usize>() + 3 * (parts.len() - 1)
            <= width
    };
    let every = if view.interactive {
        format!(" · every {}s", view.interval_seconds)
    } else {
        String::new()
    };
    let when = format!(" · {}{every}", fleet.now.strftime("%Y-%m-%d %H:%M:%S UTC"));
    let title = format!("gitprio top{when}");
    let prices = format!(
        "costs {}",
        output::list_price_label(header.repository_price_models, None)
    );
    let fleet_part = format!(
        "{} {} active · {} done in the last {window} · {} ready",
        header.agents_active,
        crate::output::plural(header.agents_active, "agent"),
        header.done_in_window,
        header.ready
    );
    let spend_part = format!(
        "last {window}: {} tokens · {} · {} value/1M tokens (baseline {})",
        tokens(header.tokens_in_window),
        output::cost(cost_of(
            header.cost_usd_in_window,
            header.unpriced_tokens_in_window
        )),
        output::ratio(header.value_per_million_tokens_in_window, 2),
        output::ratio(header.value_per_million_tokens_baseline, 2),
    );
    let mut first = vec![Span::styled("gitprio top", bold()), Span::raw(when)];
    let mut lines = Vec::new();
    if fits(&[&title, &prices]) {
        first.push(Span::raw(format!(" · {prices}")));
        lines.push(Line::from(first));
    } else {
        lines.push(Line::from(first));
        lines.push(Line::from(prices));
    }
    if fits(&[&fleet_part, &spend_part]) {
        lines.push(Line::from(format!("{fleet_part} · {spend_part}")));
    } else {
        lines.push(Line::from(fleet_part));
        lines.push(Line::from(spend_part));
    }
    lines
}

/// The columns of the lease table, by how much room there is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Column {
    Agent,
    Task,
    Type,
    Model,
    OnTask,
    Beat,
    Budget,
    Tokens,
    Cost,
    Attempt,
}

impl Column {
    /// Whether the column holds numbers, right-aligned.
    fn is_number(self) -> bool {
        matches!(self, Column::Tokens | Column::Cost | Column::Attempt)
    }
}

fn columns(width: u16) -> &'static [Column] {
    use Column::{Agent, Attempt, Beat, Budget, Cost, Model, OnTask, Task, Tokens, Type};
    if width >= 130 {
        &[
            Agent, Task, Type, Model, OnTask, Beat, Budget, Tokens, Cost, Attempt,
        ]
    } else if width >= 100 {
        &[Agent, Task, Type, OnTask, Beat, Budget, Cost, Attempt]
    } else if width >= 70 {
        &[Agent, Task, Beat, Budget, Cost]
    } else {
        &[Agent, Task, Beat, Cost]
    }
}

const BAR_CELLS: usize = 8;

/// The header and width of `column`, with `agent_width` the longest agent name shown.
fn column_spec(column: Column, agent_width: u16) -> (&'static str, Constraint) {
    match column {
        Column::Agent => ("AGENT", Constraint::Length(agent_width)),
        Column::Task => ("TASK", Constraint::Min(16)),
        Column::Type => ("TYPE", Constraint::Length(9)),
        Column::Model => ("MODEL", Constraint::Length(18)),
        Column::OnTask => ("ON TASK", Constraint::Length(7)),
        Column::Beat => ("BEAT", Constraint::Length(15)),
        Column::Budget => ("BUDGET", Constraint::Length(15)),
        Column::Tokens => ("TOKENS", Constraint::Length(7)),
        Column::Cost => ("COST", Constraint::Length(7)),
        Column::Attempt => ("TRY", Constraint::Length(3)),
    }
}

/// Returns `text` cut to `width` characters at the end of a word, with `…` when it was cut;
/// a single word longer than `width` is cut where it must be.
pub fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    if width == 0 {
        return String::new();
    }
    let kept: String = text.chars().take(width - 1).collect();
    let next_is_space = text.chars().nth(width - 1).is_some_and(char::is_whitespace);
    let words = if next_is_space {
        kept.as_str()
    } else {
        kept.rfind(char::is_whitespace)
            .map_or(kept.as_str(), |end| &kept[..end])
    };
    format!("{}…", words.trim_end())
}

fn cell(
    row: &LeaseRow,
    now: Timestamp,
    column: Column,
    width: u16,
    theme: &Theme,
) -> ratatui::widgets::Cell<'static> {
    let text = match column {
        Column::Agent => row.agent.clone(),
        Column::Task => format!("{} {}", row.task, row.title),
        Column::Type => row.task_type.clone().unwrap_or_else(|| "-".to_owned()),
        Column::Model => row.model.clone().unwrap_or_else(|| "-".to_owned()),
        Column::OnTask => span(row.on_task_seconds),
        Column::Beat => {
            return ratatui::widgets::Cell::from(beat_text(row, now)).style(theme.beat(row.beat));
        }
        Column::Budget => {
            let share = row.budget_share();
            return ratatui::widgets::Cell::from(budget_bar(share, BAR_CELLS))
                .style(theme.share(share));
        }
        Column::Tokens => tokens(row.tokens),
        Column::Cost => output::cost_brief(cost_of(row.cost_usd, row.unpriced_tokens)),
        Column::Attempt => row.attempt.to_string(),
    };
    ratatui::widgets::Cell::from(aligned(fit(&text, usize::from(width)), column.is_number()))
}

/// A bold header row: the `names` columns, then the `numbers` columns right-aligned.
fn header_row(names: &[&'static str], numbers: &[&'static str]) -> Row<'static> {
    let names = names.iter().map(|name| aligned(*name, false));
    Row::new(names.chain(numbers.iter().map(|name| aligned(*name, true)))).style(bold())
}

/// `text` as a cell's line, right-aligned for numbers so that magnitudes line up.
fn aligned(text: impl Into<String>, number: bool) -> Line<'static> {
    let line = Line::from(text.into());
    if number { line.right_aligned() } else { line }
}

fn draw_leases(frame: &mut Frame<'_>, area: Rect, fleet: &Fleet, view: &View, theme: &Theme) {
    let rows = view.rows(fleet);
    let mut filters = Vec::new();
    if let Some(agent) = &view.agent {
        filters.push(format!("agent {agent}"));
    }
    if let Some(kind) = &view.task_type {
        filters.push(format!("type {kind}"));
    }
    let only = if filters.is_empty() {
        String::new()
    } else {
        format!("· only {} ", filters.join(", "))
    };
    let title = format!(
        " Leases ({}) · sorted by {} {only}",
        rows.len(),
        view.sort.label()
    );
    let block = Block::new().borders(Borders::TOP).title(title);
    if rows.is_empty() {
        let text = if fleet.leases.is_empty() {
            "no agent holds a lease"
        } else {
            "no lease passes the filters (a, t to change them)"
        };
        frame.render_widget(Paragraph::new(text).block(block), area);
        return;
    }
    let columns = columns(area.width);
    let agent_width = rows
        .iter()
        .map(|row| count(row.agent.chars().count()))
        .max()
        .unwrap_or(0)
        .clamp(5, (area.width / 4).max(8));
    let header = Row::new(
        columns
            .iter()
            .map(|column| aligned(column_spec(*column, agent_width).0, column.is_number())),
    )
    .style(bold());
    let constraints: Vec<Constraint> = columns
        .iter()
        .map(|column| column_spec(*column, agent_width).1)
        .collect();
    // The widths the table will give the columns, so that long text is cut between words.
    let selection = if view.interactive { 2 } else { 0 };
    let widths = Layout::horizontal(constraints.clone())
        .spacing(1)
        .split(Rect {
            width: area.width.saturating_sub(selection),
            ..area
        });
    let table_rows = rows.iter().map(|row| {
        Row::new(
            columns
                .iter()
                .zip(widths.iter())
                .map(|(column, rect)| cell(row, fleet.now, *column, rect.width, theme)),
        )
    });
    let table = Table::new(table_rows, constraints)
        .header(header)
        .block(block)
        .column_spacing(1);
    if view.interactive {
        let table = table
            .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
            .highlight_symbol("> ");
        let mut state = TableState::new().with_selected(view.selected_index(&rows));
        frame.render_stateful_widget(table, area, &mut state);
    } else {
        frame.render_widget(table, area);
    }
}

fn draw_lower(frame: &mut Frame<'_>, area: Rect, fleet: &Fleet, theme: &Theme) {
    let (recent, parked) = if area.width >= 120 {
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)])
                .areas(area);
        (left, right)
    } else {
        let parked_height = if fleet.parked.is_empty() {
            0
        } else {
            (1 + count(fleet.parked.len())).min(area.height / 2)
        };
        let [top, bottom] =
            Layout::vertical([Constraint::Min(2), Constraint::Length(parked_height)]).areas(area);
        (top, bottom)
    };
    draw_recent(frame, recent, &fleet.recent, fleet, theme);
    if parked.height > 0 {
        draw_parked(frame, parked, &fleet.parked, theme);
    }
}

/// The width of the agent column of "Last runs".
const RECENT_AGENT_WIDTH: u16 = 12;

fn draw_recent(frame: &mut Frame<'_>, area: Rect, runs: &[EndedRun], fleet: &Fleet, theme: &Theme) {
    // A column of padding on the right keeps the right-aligned costs off the parked panel.
    let block = Block::new()
        .borders(Borders::TOP)
        .padding(Padding::right(1))
        .title(" Last runs ");
    if runs.is_empty() {
        frame.render_widget(Paragraph::new("no run has ended yet").block(block), area);
        return;
    }
    // Every column but the task's is fixed, and one space separates each.
    let task_width = area
        .width
        .saturating_sub(10 + RECENT_AGENT_WIDTH + 9 + 7 + 7 + 5 + 1)
        .max(10);
    let rows = runs.iter().map(|run| {
        Row::new(vec![
            ratatui::widgets::Cell::from(format!(
                "{} ago",
                span(fleet.now.duration_since(run.ended_at).as_secs())
            )),
            ratatui::widgets::Cell::from(fit(run.task.as_str(), usize::from(task_width))),
            ratatui::widgets::Cell::from(fit(&run.agent, usize::from(RECENT_AGENT_WIDTH))),
            ratatui::widgets::Cell::from(run.outcome.as_str()).style(theme.outcome(run.outcome)),
            ratatui::widgets::Cell::from(aligned(tokens(run.tokens), true)),
            ratatui::widgets::Cell::from(aligned(
                output::cost_brief(cost_of(run.cost_usd, run.unpriced_tokens)),
                true,
            )),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(10),
            Constraint::Min(task_width),
            Constraint::Length(RECENT_AGENT_WIDTH),
            Constraint::Length(9),
            Constraint::Length(7),
            Constraint::Length(7),
        ],
    )
    .header(header_row(
        &["ENDED", "TASK", "AGENT", "OUTCOME"],
        &["TOKENS", "COST"],
    ))
    .block(block)
    .column_spacing(1);
    frame.render_widget(table, area);
}

fn draw_parked(frame: &mut Frame<'_>, area: Rect, parked: &[ParkedTask], theme: &Theme) {
    let block = Block::new()
        .borders(Borders::TOP)
        .title(format!(" Parked ({}) · gitprio unpark <id> ", parked.len()));
    let lines: Vec<Line<'_>> = if parked.is_empty() {
        vec![Line::from("no task waits for a human")]
    } else {
        parked
            .iter()
            .map(|task| {
                Line::from(vec![
                    Span::styled(task.task.to_string(), theme.fg(Color::Red)),
                    Span::raw(format!(
                        " {} failed: {}",
                        task.failures,
                        task.last_error
                            .as_deref()
                            .and_then(|error| error.lines().next())
                            .unwrap_or("no error recorded")
                    )),
                ])
            })
            .collect()
    };
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn draw_detail(frame: &mut Frame<'_>, area: Rect, id: &TaskId, detail: Option<&Detail>) {
    let Some(detail) = detail else {
        frame.render_widget(
            Paragraph::new(format!("reading the history of {id}…"))
                .block(Block::new().borders(Borders::TOP)),
            area,
        );
        return;
    };
    let history_height = u16::try_from(detail.history.len().min(12)).unwrap_or(12) + 2;
    let [history, runs] =
        Layout::vertical([Constraint::Length(history_height), Constraint::Min(3)]).areas(area);
    let block = Block::new().borders(Borders::TOP).title(format!(
        " {} {} · lease history (Esc: back) ",
        detail.task, detail.title
    ));
    let rows = detail.history.iter().map(|entry| {
        Row::new(vec![
            entry.at.strftime("%m-%d %H:%M:%S").to_string(),
            entry.event.clone(),
            entry.agent.clone(),
            format!("{}/{}", entry.generation, entry.attempt),
            entry.reason.clone().unwrap_or_default(),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(14),
            Constraint::Length(8),
            Constraint::Length(14),
            Constraint::Length(5),
            Constraint::Min(10),
        ],
    )
    .header(Row::new(["AT", "EVENT", "BY", "GEN", "REASON"]).style(bold()))
    .block(block)
    .column_spacing(1);
    frame.render_widget(table, history);
    let block = Block::new().borders(Borders::TOP).title(" Usage by run ");
    if detail.runs.is_empty() {
        frame.render_widget(Paragraph::new("no usage recorded").block(block), runs);
        return;
    }
    let rows = detail.runs.iter().map(|run| {
        Row::new(vec![
            Line::from(run.run.clone()),
            Line::from(run.agent.clone()),
            Line::from(run.model.clone().unwrap_or_else(|| "-".to_owned())),
            Line::from(
                run.outcome
                    .map_or("in flight", gitprio_core::usage::Outcome::as_str),
            ),
            aligned(tokens(run.tokens), true),
            aligned(
                output::cost_brief(cost_of(run.cost_usd, run.unpriced_tokens)),
                true,
            ),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(18),
            Constraint::Length(14),
            Constraint::Min(10),
            Constraint::Length(9),
            Constraint::Length(7),
            Constraint::Length(7),
        ],
    )
    .header(header_row(
        &["RUN", "AGENT", "MODEL", "OUTCOME"],
        &["TOKENS", "COST"],
    ))
    .block(block)
    .column_spacing(1);
    frame.render_widget(table, runs);
}

fn draw_footer(frame: &mut Frame<'_>, area: Rect, view: &View, theme: &Theme) {
    let keys = match view.mode {
        Mode::Detail(..) => "Esc:back q:quit",
        _ => "q:quit ↑↓ enter:detail s:sort a:agent t:type r:revoke u:refresh",
    };
    let mut spans = vec![Span::styled(keys, theme.fg(Color::Cyan))];
    if let Some(message) = &view.message {
        spans.push(Span::raw(format!("  · {message}")));
    }
    frame.render_widget(
        Paragraph::new(Line::from(spans)).wrap(Wrap { trim: true }),
        area,
    );
}

fn draw_confirm(frame: &mut Frame<'_>, area: Rect, task: &TaskId, agent: &str, theme: &Theme) {
    let width = area.width.min(60);
    let popup = area.centered(Constraint::Length(width), Constraint::Length(5));
    frame.render_widget(Clear, popup);
    let text = vec![
        Line::from(format!("Revoke {task} from {agent}?")),
        Line::from("y revoke · p revoke and park · any other key: no"),
    ];
    frame.render_widget(
        Paragraph::new(text).wrap(Wrap { trim: true }).block(
            Block::bordered()
                .title(" revoke ")
                .border_style(theme.fg(Color::Red)),
        ),
        popup,
    );
}

/// Returns the text of `buffer`, one line per row, without trailing blanks.
pub fn plain_text(buffer: &Buffer) -> String {
    let area = buffer.area;
    let mut text = String::new();
    for y in area.top()..area.bottom() {
        let mut line = String::new();
        for x in area.left()..area.right() {
            line.push_str(buffer[(x, y)].symbol());
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    let trimmed = text.trim_end_matches('\n').len();
    text.truncate(trimmed);
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::budget_bar;

    #[test]
    fn a_budget_barely_touched_or_nearly_spent_never_reads_as_0_or_100_percent() {
        // 100 tokens of a 150,000-token budget read `0%`, as if nothing had been spent.
        assert_eq!(budget_bar(Some(100.0 / 150_000.0), 4), "░░░░ <1%");
        assert_eq!(budget_bar(Some(0.998), 4), "████ >99%");
        assert_eq!(budget_bar(Some(1.25), 4), "████ 125%!");
        assert_eq!(budget_bar(None, 4), "no budget");
    }
}
