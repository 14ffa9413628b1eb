//! The cockpit against a constructed fleet: the model's numbers, frames at two sizes, and keys.

use std::collections::BTreeMap;

use gitprio_core::Status;
use gitprio_core::TaskId;
use gitprio_core::git::ObjectId;
use gitprio_core::lease::{Holder, Lease, LeaseEvent, LeaseRecord, LeaseState, Progress};
use gitprio_core::usage::report::TaskFacts;
use gitprio_core::usage::{Outcome, PriceTable, Run, RunMeta, UsageRecord};
use jiff::{SignedDuration, Timestamp};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::style::Color;

use super::model::{Beat, Fleet, Sources, TaskInfo};
use super::view::{self, Action, Mode, SortKey, View};

const NOW: &str = "2026-11-01T12:30:00Z";

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn id(text: &str) -> TaskId {
    TaskId::new(text).unwrap()
}

struct LeaseSpec<'a> {
    task: &'a str,
    agent: &'a str,
    state: LeaseState,
    acquired: &'a str,
    renewed: &'a str,
    attempt: u32,
    failures: u32,
    last_error: Option<&'a str>,
}

fn lease(spec: &LeaseSpec<'_>) -> Lease {
    let acquired = at(spec.acquired);
    let renewed = at(spec.renewed);
    Lease {
        reference: format!("refs/gitprio/leases/{}", spec.task),
        oid: ObjectId::from_hex(&[b'0'; 40]).unwrap(),
        record: LeaseRecord {
            task: id(spec.task),
            state: spec.state,
            event: LeaseEvent::Renew,
            generation: u64::from(spec.attempt),
            attempt: spec.attempt,
            failures: spec.failures,
            holder: Holder {
                agent: spec.agent.to_owned(),
                host: "box".to_owned(),
                pid: 1,
                worktree: None,
                branch: None,
                session: None,
                extra: BTreeMap::new(),
            },
            task_blob: None,
            base_commit: None,
            acquired_at: acquired,
            renewed_at: renewed,
            expires_at: renewed.checked_add(SignedDuration::from_mins(30)).unwrap(),
            ttl_seconds: 1800,
            reason: None,
            last_error: spec.last_error.map(str::to_owned),
            progress: None,
            nonce: "n".to_owned(),
            extra: std::collections::BTreeMap::new(),
        },
    }
}

fn task(title: &str, kind: &str, budget: Option<u64>, model: Option<&str>) -> TaskInfo {
    TaskInfo {
        title: title.to_owned(),
        facts: TaskFacts {
            value: 3,
            task_type: Some(kind.to_owned()),
            feature: None,
            status: Status::Open,
        },
        budget_tokens: budget,
        model: model.map(str::to_owned),
    }
}

struct RunSpec<'a> {
    task: &'a str,
    agent: &'a str,
    generation: u64,
    started: &'a str,
    ended: Option<(&'a str, Outcome)>,
    model: &'a str,
    input: u64,
    output: u64,
}

fn run(spec: &RunSpec<'_>) -> Run {
    Run {
        meta: RunMeta {
            task: id(spec.task),
            run: RunMeta::run_id(spec.generation, at(spec.started)),
            generation: spec.generation,
            agent: spec.agent.to_owned(),
            session: None,
            worktree: None,
            task_type: None,
            feature: None,
            value: 3,
            routed_model: None,
            budget_tokens: None,
            context_tokens: None,
            started_at: at(spec.started),
            ended_at: spec.ended.map(|(ended, _)| at(ended)),
            outcome: spec.ended.map(|(_, outcome)| outcome),
        },
        records: vec![UsageRecord {
            key: format!("{}-{}", spec.task, spec.generation),
            source: "manual".to_owned(),
            model: spec.model.to_owned(),
            input: spec.input,
            output: spec.output,
            requests: 1,
            ..UsageRecord::default()
        }],
    }
}

/// Three agents at work (one fresh, one stale, one expired), a parked task, ended runs.
struct State {
    leases: BTreeMap<TaskId, Lease>,
    tasks: BTreeMap<TaskId, TaskInfo>,
    runs: Vec<Run>,
    prices: PriceTable,
}

impl State {
    #[expect(
        clippy::too_many_lines,
        reason = "a fixture: the fleet of the snapshots, lease by lease"
    )]
    fn new() -> State {
        let held = |task, agent, acquired, renewed, attempt| LeaseSpec {
            task,
            agent,
            state: LeaseState::Held,
            acquired,
            renewed,
            attempt,
            failures: attempt - 1,
            last_error: None,
        };
        let leases = [
            held(
                "fix-login",
                "alice",
                "2026-11-01T12:00:00Z",
                "2026-11-01T12:28:00Z",
                1,
            ),
            held(
                "spin-parser",
                "bob",
                "2026-11-01T11:10:00Z",
                "2026-11-01T12:05:00Z",
                2,
            ),
            held(
                "docs-typos",
                "carol",
                "2026-11-01T11:00:00Z",
                "2026-11-01T11:20:00Z",
                1,
            ),
            LeaseSpec {
                task: "flaky-ci",
                agent: "dave",
                state: LeaseState::Parked,
                acquired: "2026-11-01T10:00:00Z",
                renewed: "2026-11-01T10:40:00Z",
                attempt: 3,
                failures: 3,
                last_error: Some("tests time out"),
            },
            LeaseSpec {
                task: "old-done",
                agent: "dave",
                state: LeaseState::Submitted,
                acquired: "2026-11-01T12:00:00Z",
                renewed: "2026-11-01T12:20:00Z",
                attempt: 1,
                failures: 0,
                last_error: None,
            },
        ]
        .iter()
        .map(|spec| (id(spec.task), lease(spec)))
        .collect();
        let tasks = [
            (
                "fix-login",
                task(
                    "Fix the login redirect",
                    "bug",
                    Some(200_000),
                    Some("large"),
                ),
            ),
            (
                "spin-parser",
                task("Rewrite the config parser", "refactor", Some(300_000), None),
            ),
            (
                "docs-typos",
                task("Fix typos in the docs", "docs", None, None),
            ),
            ("flaky-ci", task("Make CI stable", "bug", None, None)),
            (
                "old-done",
                task("Add the health endpoint", "feature", None, None),
            ),
        ]
        .into_iter()
        .map(|(name, info)| (id(name), info))
        .collect();
        let runs = vec![
            run(&RunSpec {
                task: "fix-login",
                agent: "alice",
                generation: 1,
                started: "2026-11-01T12:00:00Z",
                ended: None,
                model: "claude-sonnet-4-5",
                input: 100_000,
                output: 20_000,
            }),
            run(&RunSpec {
                task: "spin-parser",
                agent: "bob",
                generation: 2,
                started: "2026-11-01T11:10:00Z",
                ended: None,
                model: "claude-opus-4-1",
                input: 400_000,
                output: 50_000,
            }),
            run(&RunSpec {
                task: "spin-parser",
                agent: "bob",
                generation: 1,
                started: "2026-11-01T10:00:00Z",
                ended: Some(("2026-11-01T11:05:00Z", Outcome::Failed)),
                model: "claude-opus-4-1",
                input: 200_000,
                output: 10_000,
            }),
            run(&RunSpec {
                task: "old-done",
                agent: "dave",
                generation: 1,
                started: "2026-11-01T12:00:00Z",
                ended: Some(("2026-11-01T12:20:00Z", Outcome::Completed)),
                model: "claude-haiku-4-5",
                input: 70_000,
                output: 10_000,
            }),
        ];
        State {
            leases,
            tasks,
            runs,
            prices: PriceTable::new(BTreeMap::new()),
        }
    }

    fn fleet(&self) -> Fleet {
        Fleet::build(&Sources {
            now: at(NOW),
            skew: SignedDuration::ZERO,
            window: SignedDuration::from_hours(1),
            leases: &self.leases,
            tasks: &self.tasks,
            runs: &self.runs,
            prices: &self.prices,
            repository_price_models: 0,
            ready: 4,
        })
    }
}

fn render(fleet: &Fleet, view: &View, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal
        .draw(|frame| view::draw(frame, fleet, view))
        .unwrap();
    terminal
}

fn screen(fleet: &Fleet, view: &View, width: u16, height: u16) -> String {
    view::plain_text(render(fleet, view, width, height).backend().buffer())
}

fn press(view: &mut View, fleet: &Fleet, code: KeyCode) -> Action {
    view.handle(fleet, KeyEvent::from(code))
}

#[test]
fn the_model_sums_spend_per_lease_and_over_the_window() {
    let fleet = State::new().fleet();
    let rows: Vec<(&str, Beat, u64)> = fleet
        .leases
        .iter()
        .map(|row| (row.task.as_str(), row.beat, row.tokens))
        .collect();
    assert_eq!(
        rows,
        [
            ("docs-typos", Beat::Expired, 0),
            ("fix-login", Beat::Fresh, 120_000),
            ("spin-parser", Beat::Stale, 450_000),
        ]
    );
    let login = &fleet.leases[1];
    assert_eq!(login.model.as_deref(), Some("claude-sonnet-4-5"));
    assert_eq!(
        (login.on_task_seconds, login.heartbeat_age_seconds),
        (1800, 120)
    );
    assert_eq!(login.budget_share(), Some(0.6));
    // Sonnet at $3 in and $15 out per million tokens.
    assert!((login.cost_usd - 0.6).abs() < 1e-9);
    assert_eq!(login.unpriced_tokens, 0);
    assert_eq!(fleet.leases[2].budget_share(), Some(1.5));
    // Carol's lease expired: she no longer counts as active.
    assert_eq!(fleet.header.agents_active, 2);
    assert_eq!(fleet.header.done_in_window, 1);
    assert_eq!(fleet.header.ready, 4);
    // Runs started in the last hour: fix-login and old-done.
    assert_eq!(fleet.header.tokens_in_window, 200_000);
    assert!(
        fleet.header.value_per_million_tokens_in_window.unwrap()
            > fleet.header.value_per_million_tokens_baseline.unwrap()
    );
    let recent: Vec<(&str, Outcome)> = fleet
        .recent
        .iter()
        .map(|run| (run.task.as_str(), run.outcome))
        .collect();
    assert_eq!(
        recent,
        [
            ("old-done", Outcome::Completed),
            ("spin-parser", Outcome::Failed)
        ]
    );
    assert_eq!(fleet.parked.len(), 1);
    assert_eq!(
        fleet.parked[0].last_error.as_deref(),
        Some("tests time out")
    );
}

#[test]
fn frames_at_a_wide_and_a_small_terminal() {
    let fleet = State::new().fleet();
    let view = View::new(true, true, 5);
    insta::assert_snapshot!("wide_140x30", screen(&fleet, &view, 140, 30));
    insta::assert_snapshot!("small_72x20", screen(&fleet, &view, 72, 20));
}

#[test]
fn the_once_frame_has_no_keys_and_every_row() {
    let fleet = State::new().fleet();
    let view = View::new(false, false, 0);
    let height = view::full_height(&fleet, &view, 100);
    insta::assert_snapshot!("once_100", screen(&fleet, &view, 100, height));
}

#[test]
fn stale_and_over_budget_are_colored_unless_no_color() {
    let fleet = State::new().fleet();
    let colors = |color: bool| {
        let terminal = render(&fleet, &View::new(color, true, 5), 140, 30);
        let buffer = terminal.backend().buffer().clone();
        let mut found = Vec::new();
        for y in 0..buffer.area.height {
            for x in 0..buffer.area.width {
                let fg = buffer[(x, y)].fg;
                if fg != Color::Reset && !found.contains(&fg) {
                    found.push(fg);
                }
            }
        }
        found
    };
    let colored = colors(true);
    for color in [Color::Yellow, Color::Red, Color::Green] {
        assert!(
            colored.contains(&color),
            "{color:?} missing from {colored:?}"
        );
    }
    assert_eq!(colors(false), []);
}

#[test]
fn keys_sort_filter_open_and_revoke_with_confirmation() {
    let fleet = State::new().fleet();
    let mut view = View::new(false, true, 5);
    let order = |view: &View| -> Vec<String> {
        view.rows(&fleet)
            .iter()
            .map(|row| row.task.to_string())
            .collect()
    };
    assert_eq!(order(&view), ["spin-parser", "fix-login", "docs-typos"]);
    assert_eq!(
        press(&mut view, &fleet, KeyCode::Char('s')),
        Action::Nothing
    );
    assert_eq!(view.sort, SortKey::Time);
    assert_eq!(order(&view), ["docs-typos", "spin-parser", "fix-login"]);
    press(&mut view, &fleet, KeyCode::Char('a'));
    assert_eq!(order(&view), ["fix-login"]);
    press(&mut view, &fleet, KeyCode::Char('a'));
    assert_eq!(view.agent.as_deref(), Some("bob"));
    press(&mut view, &fleet, KeyCode::Char('a'));
    press(&mut view, &fleet, KeyCode::Char('a'));
    assert_eq!(view.agent, None);
    press(&mut view, &fleet, KeyCode::Char('t'));
    assert_eq!(view.task_type.as_deref(), Some("bug"));
    assert_eq!(order(&view), ["fix-login"]);
    press(&mut view, &fleet, KeyCode::Char('t'));
    press(&mut view, &fleet, KeyCode::Char('t'));
    press(&mut view, &fleet, KeyCode::Char('t'));
    assert_eq!(view.task_type, None);

    press(&mut view, &fleet, KeyCode::Down);
    assert_eq!(
        view.selected.as_ref().map(TaskId::as_str),
        Some("spin-parser")
    );
    assert_eq!(
        press(&mut view, &fleet, KeyCode::Enter),
        Action::OpenDetail(id("spin-parser"))
    );
    assert!(matches!(view.mode, Mode::Detail(..)));
    assert_eq!(press(&mut view, &fleet, KeyCode::Esc), Action::Nothing);
    assert_eq!(view.mode, Mode::Fleet);

    assert_eq!(
        press(&mut view, &fleet, KeyCode::Char('r')),
        Action::Nothing
    );
    assert!(screen(&fleet, &view, 100, 24).contains("Revoke spin-parser from bob?"));
    assert_eq!(
        press(&mut view, &fleet, KeyCode::Char('n')),
        Action::Nothing
    );
    assert_eq!(view.message.as_deref(), Some("spin-parser was not revoked"));
    press(&mut view, &fleet, KeyCode::Char('r'));
    assert_eq!(
        press(&mut view, &fleet, KeyCode::Char('p')),
        Action::Revoke {
            task: id("spin-parser"),
            park: true
        }
    );
    assert_eq!(press(&mut view, &fleet, KeyCode::Char('q')), Action::Quit);
}

#[test]
fn the_detail_view_shows_the_lease_history_and_the_runs() {
    let state = State::new();
    let fleet = state.fleet();
    let sources = Sources {
        now: at(NOW),
        skew: SignedDuration::ZERO,
        window: SignedDuration::from_hours(1),
        leases: &state.leases,
        tasks: &state.tasks,
        runs: &state.runs,
        prices: &state.prices,
        repository_price_models: 0,
        ready: 4,
    };
    let history = renewed_after_reclaim(&state.leases[&id("spin-parser")].record);
    let detail = super::model::detail(&sources, &id("spin-parser"), &history);
    let mut view = View::new(false, true, 5);
    view.mode = Mode::Detail(id("spin-parser"), Some(Box::new(detail)));
    insta::assert_snapshot!("detail_100x20", screen(&fleet, &view, 100, 20));
}

/// The history of a lease `record` renewed once after its reclaim, newest first.
fn renewed_after_reclaim(record: &LeaseRecord) -> Vec<LeaseRecord> {
    let reclaim = LeaseRecord {
        event: LeaseEvent::Reclaim,
        renewed_at: record.acquired_at,
        reason: None,
        ..record.clone()
    };
    vec![record.clone(), reclaim]
}

#[test]
fn a_heartbeat_s_progress_shows_until_the_ledger_knows_more() {
    let mut state = State::new();
    let report = |tokens, cost_usd| {
        Some(Progress {
            tokens,
            cost_usd,
            at: at("2026-11-01T12:28:00Z"),
            extra: BTreeMap::new(),
        })
    };
    let login = id("fix-login");
    let docs = id("docs-typos");
    state.leases.get_mut(&login).unwrap().record.progress = report(150_000, Some(0.9));
    state.leases.get_mut(&docs).unwrap().record.progress = report(5_000, None);
    let spend = |fleet: &Fleet, task: &TaskId| {
        let row = fleet.leases.iter().find(|row| &row.task == task).unwrap();
        (row.tokens, row.cost_usd, row.unpriced_tokens)
    };
    let fleet = state.fleet();
    assert_eq!(spend(&fleet, &login), (150_000, 0.9, 0));
    assert_eq!(fleet.leases[1].budget_share(), Some(0.75));
    // No run in the ledger yet: the report is all there is, unpriced.
    assert_eq!(spend(&fleet, &docs), (5_000, 0.0, 5_000));
    // The window counts what attempts started in it spent so far: fix-login's 30k beyond
    // its ledger run ($0.30 more). docs-typos started before the window.
    let header = &fleet.header;
    assert_eq!(header.tokens_in_window, 230_000);
    assert!((header.cost_usd_in_window - 1.02).abs() < 1e-9);
    assert_eq!(header.unpriced_tokens_in_window, 0);
    // Started in the window but expired (renewed at 11:20, for 30 minutes): not running, so
    // what its holder last reported is not a running attempt's spend.
    let docs_lease = &mut state.leases.get_mut(&docs).unwrap().record;
    docs_lease.acquired_at = at("2026-11-01T12:00:00Z");
    assert_eq!(state.fleet().header.tokens_in_window, 230_000);
    let docs_lease = &mut state.leases.get_mut(&docs).unwrap().record;
    docs_lease.renewed_at = at("2026-11-01T12:20:00Z");
    docs_lease.expires_at = at("2026-11-01T12:50:00Z");
    let header = state.fleet().header;
    assert_eq!(header.tokens_in_window, 235_000);
    assert_eq!(header.unpriced_tokens_in_window, 5_000);
    // The ledger caught up past the report: its numbers are the later ones.
    state.leases.get_mut(&login).unwrap().record.progress = report(90_000, Some(0.1));
    let (tokens, cost, unpriced) = spend(&state.fleet(), &login);
    assert_eq!((tokens, unpriced), (120_000, 0));
    assert!((cost - 0.6).abs() < 1e-9);
}

#[test]
fn tiny_terminals_still_draw() {
    let fleet = State::new().fleet();
    let mut view = View::new(true, true, 5);
    for (width, height) in [(1, 1), (20, 5), (40, 10), (60, 15)] {
        let text = screen(&fleet, &view, width, height);
        assert_eq!(
            text.lines().count(),
            usize::from(height),
            "{width}x{height}"
        );
    }
    press(&mut view, &fleet, KeyCode::Char('r'));
    assert!(screen(&fleet, &view, 30, 6).contains("Revoke"));
}

#[test]
fn long_names_are_cut_between_words_with_an_ellipsis() {
    assert_eq!(
        view::fit("alpha Fix the login redirect", 40),
        "alpha Fix the login redirect"
    );
    assert_eq!(
        view::fit("alpha Fix the login redirect", 18),
        "alpha Fix the…"
    );
    assert_eq!(
        view::fit("alpha Fix the login redirect", 14),
        "alpha Fix the…"
    );
    assert_eq!(view::fit("alpha Fix the login redirect", 13), "alpha Fix…");
    assert_eq!(view::fit("supercalifragilistic", 8), "superca…");
    assert_eq!(view::fit("ab", 0), "");
}
