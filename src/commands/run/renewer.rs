//! An attempt's lease, renewed from a thread of its own from the claim until just before
//! its `done` or release: the worktree's preparation (a wait for the worktree lock, an
//! `ls-remote`), the agent's whole run and the recording of its usage cannot let it lapse,
//! and a renewal that hangs on the remote never holds up the agent's watch (Ctrl-C, the
//! limits, the budget).
//!
//! It is stopped and joined before `done` or the release starts: a renewal of the run's
//! racing `done`'s own compare-and-swap would make `done` lose its swap (`done` keeps the
//! lease renewed itself while the acceptance commands run).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::operations::{Beat, Operations};

/// How often a stop waits for a renewal under way before it looks at Ctrl-C again.
const LOOK: Duration = Duration::from_millis(100);

/// What a renewal came to.
pub type Renewal = anyhow::Result<Beat>;

/// Renews an attempt's lease every `every` until stopped; see the module doc.
pub struct Renewer {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    renewals: Receiver<Renewal>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    /// Set once the run is interrupted twice: a renewal under way is stopped.
    abandon: AtomicBool,
}

#[derive(Default)]
struct State {
    stop: bool,
    /// The spend so far, carried by the next renewal: tokens, and dollars when known.
    progress: (u64, Option<f64>),
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Renewer {
    /// Starts renewing the lease `agent` holds on `id`, the first time `every` from now.
    pub fn start(operations: &Operations, agent: &str, id: &str, every: Duration) -> Renewer {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            abandon: AtomicBool::new(false),
        });
        let (sender, renewals) = mpsc::channel();
        let thread = std::thread::spawn({
            let shared = Arc::clone(&shared);
            let operations = operations.clone();
            let (agent, id) = (agent.to_owned(), id.to_owned());
            move || renew(&shared, &operations, (&agent, &id), every, &sender)
        });
        Renewer {
            shared,
            thread: Mutex::new(Some(thread)),
            renewals,
        }
    }

    /// Sets the spend so far, for the next renewal to report.
    pub fn report(&self, tokens: u64, usd: Option<f64>) {
        self.shared.lock().progress = (tokens, usd);
    }

    /// What the renewals came to since the last look, without waiting.
    pub fn renewals(&self) -> Vec<Renewal> {
        self.renewals.try_iter().collect()
    }

    /// Stops the renewals and waits for the thread to end; a renewal under way is
    /// stopped once `interrupted` says so. Returns what the renewals came to since the
    /// last look.
    pub fn stop(&self, interrupted: impl Fn() -> bool) -> Vec<Renewal> {
        self.halt(&interrupted);
        self.renewals()
    }

    fn halt(&self, interrupted: &dyn Fn() -> bool) {
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(thread) = thread else {
            return;
        };
        while !thread.is_finished() {
            if interrupted() {
                self.shared.abandon.store(true, Ordering::SeqCst);
            }
            std::thread::sleep(LOOK);
        }
        let _ = thread.join();
    }
}

impl Drop for Renewer {
    /// An attempt that ends early (its worktree cannot be made) stops renewing before the
    /// run gives its task back.
    fn drop(&mut self) {
        self.halt(&|| false);
    }
}

/// The renewer thread: renews every `every`, sends what each renewal came to, and ends
/// when stopped or once the lease is lost.
fn renew(
    shared: &Shared,
    operations: &Operations,
    (agent, id): (&str, &str),
    every: Duration,
    renewals: &Sender<Renewal>,
) {
    let mut due = Instant::now() + every;
    loop {
        let progress = {
            let mut state = shared.lock();
            loop {
                if state.stop {
                    return;
                }
                let now = Instant::now();
                if now >= due {
                    break;
                }
                state = shared
                    .changed
                    .wait_timeout(state, due - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            state.progress
        };
        // From the start of this renewal: a slow one does not push the next past the TTL.
        due = Instant::now() + every;
        let abandon = || shared.abandon.load(Ordering::SeqCst);
        let renewal = operations.heartbeat(agent, id, progress, &abandon);
        let lost = matches!(renewal, Ok(Beat::Lost(_)));
        if renewals.send(renewal).is_err() || lost {
            return;
        }
    }
}
