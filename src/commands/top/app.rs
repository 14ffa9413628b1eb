//! The live screen: a worker thread fetches and reads the fleet, the main thread draws it and reads keys.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use gitprio_core::TaskId;
use gitprio_core::git::Repository;
use gitprio_core::lease::Revocation;
use jiff::{SignedDuration, Timestamp};
use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{self, Event, KeyEventKind};
use ratatui::widgets::Paragraph;

use super::TopArgs;
use super::gather::{self, Snapshot};
use super::history::Warned;
use super::model::{Detail, Fleet};
use super::view::{Action, Mode, View};
use crate::settings::Settings;
use gitprio_core::workspace::{Invocation, Silent, StoreChoice, Workspace};

/// How long the screen waits for a key before looking for news from the worker.
const TICK: Duration = Duration::from_millis(100);

/// What the screen asks of the worker.
enum Request {
    Refresh,
    Detail(TaskId),
    Revoke { task: TaskId, park: bool },
}

/// What the worker sends back.
enum Reply {
    Fleet(Box<Fleet>),
    Detail(Box<Detail>),
    Message(String),
}

/// Runs the live screen until the user quits.
pub fn run(
    settings: &Settings,
    args: &TopArgs,
    interval: SignedDuration,
    window: SignedDuration,
) -> anyhow::Result<()> {
    let (requests, worker_requests) = mpsc::channel();
    let (worker_replies, replies) = mpsc::channel();
    let worker = Worker {
        settings: settings.clone(),
        local: args.store.local,
        offline: args.offline,
        window,
        interval: interval.unsigned_abs(),
        started: Instant::now(),
    };
    std::thread::spawn(move || worker.serve(&worker_requests, &worker_replies));
    let mut view = View::new(settings.color, true, interval.as_secs().unsigned_abs());
    let mut terminal = ratatui::try_init()?;
    let result = event_loop(&mut terminal, &mut view, &requests, &replies);
    ratatui::try_restore()?;
    result
}

fn event_loop(
    terminal: &mut DefaultTerminal,
    view: &mut View,
    requests: &Sender<Request>,
    replies: &Receiver<Reply>,
) -> anyhow::Result<()> {
    let mut fleet: Option<Fleet> = None;
    loop {
        while let Ok(reply) = replies.try_recv() {
            match reply {
                Reply::Fleet(new) => fleet = Some(*new),
                Reply::Detail(detail) => {
                    if let Mode::Detail(id, shown) = &mut view.mode
                        && *id == detail.task
                    {
                        *shown = Some(detail);
                    }
                }
                Reply::Message(message) => view.message = Some(message),
            }
        }
        terminal.draw(|frame| match &fleet {
            Some(fleet) => super::view::draw(frame, fleet, view),
            None => frame.render_widget(
                Paragraph::new(format!(
                    "gitprio top: reading the leases and usage…{}",
                    view.message
                        .as_deref()
                        .map(|message| format!("\n{message}"))
                        .unwrap_or_default()
                )),
                frame.area(),
            ),
        })?;
        if !event::poll(TICK)? {
            continue;
        }
        let Event::Key(key) = event::read()? else {
            continue;
        };
        if key.kind != KeyEventKind::Press {
            continue;
        }
        let Some(fleet) = &fleet else {
            if matches!(key.code, event::KeyCode::Char('q') | event::KeyCode::Esc) {
                return Ok(());
            }
            continue;
        };
        let request = match view.handle(fleet, key) {
            Action::Nothing => continue,
            Action::Quit => return Ok(()),
            Action::Refresh => Request::Refresh,
            Action::OpenDetail(task) => Request::Detail(task),
            Action::Revoke { task, park } => {
                view.message = Some(format!("revoking {task}…"));
                Request::Revoke { task, park }
            }
        };
        // The worker only stops when this loop has returned.
        let _ = requests.send(request);
    }
}

/// Reads the fleet on request and every interval, off the drawing thread.
struct Worker {
    settings: Settings,
    local: bool,
    offline: bool,
    window: SignedDuration,
    interval: Duration,
    started: Instant,
}

impl Worker {
    /// The clock moves on from the start, whether it started at `GITPRIO_NOW` or the real time.
    fn now(&self) -> Timestamp {
        let elapsed = i64::try_from(self.started.elapsed().as_secs()).unwrap_or(0);
        self.settings
            .now
            .saturating_add(SignedDuration::from_secs(elapsed))
            .unwrap_or(self.settings.now)
    }

    fn serve(&self, requests: &Receiver<Request>, replies: &Sender<Reply>) {
        let repo = match Repository::discover(&self.settings.directory) {
            Ok(repo) => repo,
            Err(error) => {
                let _ = replies.send(Reply::Message(format!("error: {error}")));
                return;
            }
        };
        let mut snapshot = None;
        let mut warned = Warned::default();
        let mut request = Request::Refresh;
        loop {
            let answer = self
                .answer(&repo, &mut snapshot, &mut warned, request)
                .unwrap_or_else(|error| vec![Reply::Message(format!("error: {error:#}"))]);
            for reply in answer {
                if replies.send(reply).is_err() {
                    return;
                }
            }
            request = match requests.recv_timeout(self.interval) {
                Ok(request) => request,
                Err(RecvTimeoutError::Timeout) => Request::Refresh,
                Err(RecvTimeoutError::Disconnected) => return,
            };
        }
    }

    fn answer(
        &self,
        repo: &Repository,
        snapshot: &mut Option<Snapshot>,
        warned: &mut Warned,
        request: Request,
    ) -> anyhow::Result<Vec<Reply>> {
        let invocation = Invocation {
            now: self.now(),
            ..self.settings.invocation()
        };
        // Nothing may print under the screen: what matters comes back as a reply.
        let workspace = Workspace::open(repo, invocation, StoreChoice::local(self.local), &Silent)?;
        let store = workspace.store();
        match request {
            Request::Refresh => {
                if !self.offline {
                    gather::fetch(store)?;
                }
                let read = gather::read(&workspace, self.window)?;
                let fleet = read.fleet();
                let warnings = [
                    warned.about_leases(&read.unreadable),
                    warned.about_prices(&read.repository_prices.problems),
                ];
                *snapshot = Some(read);
                let mut replies = vec![Reply::Fleet(Box::new(fleet))];
                replies.extend(
                    warnings
                        .into_iter()
                        .flatten()
                        .map(|warning| Reply::Message(format!("warning: {warning}"))),
                );
                Ok(replies)
            }
            Request::Detail(task) => {
                let read = match snapshot.take() {
                    Some(read) => read,
                    None => gather::read(&workspace, self.window)?,
                };
                let detail = read.detail(store, &task, warned);
                *snapshot = Some(read);
                let (detail, warning) = detail?;
                let mut replies = vec![Reply::Detail(Box::new(detail))];
                replies
                    .extend(warning.map(|warning| Reply::Message(format!("warning: {warning}"))));
                Ok(replies)
            }
            Request::Revoke { task, park } => {
                if !self.offline {
                    gather::fetch(store)?;
                }
                let revoked = workspace.revoke(
                    &task,
                    &Revocation {
                        reason: Some("revoked in gitprio top"),
                        park,
                    },
                )?;
                let read = gather::read(&workspace, self.window)?;
                let fleet = read.fleet();
                *snapshot = Some(read);
                let message = format!(
                    "revoked {task} from {}{}{}",
                    revoked.from,
                    if park { "; parked" } else { "" },
                    revoked
                        .warning
                        .map(|warning| format!(" (warning: {warning})"))
                        .unwrap_or_default()
                );
                Ok(vec![Reply::Fleet(Box::new(fleet)), Reply::Message(message)])
            }
        }
    }
}
