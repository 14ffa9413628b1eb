//! The one ranked queue: which tasks are ready, in which order, and why.

mod graph;

use std::cmp::{Ordering, Reverse};
use std::collections::HashMap;

use rustc_hash::FxHashMap;
use schemars::JsonSchema;
use serde::Serialize;

use crate::diagnostic::Diagnostic;
use crate::task::{Priority, Status, Task, TaskId};

pub use graph::dependency_cycles;

/// Why a task is not ready.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Blocker {
    /// The task's own status is not `open`.
    Status { status: Status },
    /// A dependency exists but is not `done` yet.
    WaitingOn { id: TaskId, status: Status },
    /// A dependency names no task in the queue.
    UnknownDependency { id: TaskId },
    /// The task is part of a dependency cycle, listed from the task back to itself.
    Cycle { cycle: Vec<TaskId> },
    /// Another agent holds a live lease on the task.
    Leased { holder: String, expires_at: String },
    /// An agent submitted its work (`gitprio done`); the change has not reached the queue yet.
    Submitted { holder: String, at: String },
    /// Failed attempts reached the limit; a human has to look.
    Parked {
        attempts: u32,
        last_error: Option<String>,
    },
    /// The task file has errors that leave it readable, a misspelt key: its value was
    /// ignored, so the task is not handed out as it stands. Each error is located,
    /// `path:line:column: message`.
    InvalidFile { errors: Vec<String> },
}

/// Whether a task can be handed out now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Readiness {
    Ready,
    NotReady { blockers: Vec<Blocker> },
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        matches!(self, Readiness::Ready)
    }

    pub fn blockers(&self) -> &[Blocker] {
        match self {
            Readiness::Ready => &[],
            Readiness::NotReady { blockers } => blockers,
        }
    }
}

/// One task in queue order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QueueEntry {
    pub task: Task,
    pub readiness: Readiness,
}

/// Lease and attempt facts that make an open task not ready, by task id.
pub type Holds = HashMap<TaskId, Vec<Blocker>>;

/// All tasks in rank order: ready tasks first, then the others, each group by [`rank_key`].
#[derive(Clone, Debug, Default)]
pub struct Queue {
    entries: Vec<QueueEntry>,
    ready_count: usize,
}

/// Which part of the rank order put one task ahead of another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RankReason {
    Priority,
    Value,
    Created,
    Id,
}

/// The fields of a task that ranking and readiness read.
///
/// [`Task`] has them all; the queue index reads them straight from the parse cache
/// without decoding whole tasks (see `source::QueueIndex`).
pub trait Rankable {
    fn id(&self) -> &str;
    fn status(&self) -> Status;
    fn priority(&self) -> Priority;
    fn value(&self) -> u32;
    fn created(&self) -> Option<&str>;
    fn depends_on(&self) -> impl Iterator<Item = &str>;
    /// Errors of the task's file that hold it back: see [`Task::errors`].
    fn errors(&self) -> &[Diagnostic];
}

impl Rankable for Task {
    fn id(&self) -> &str {
        self.id.as_str()
    }

    fn status(&self) -> Status {
        self.status
    }

    fn priority(&self) -> Priority {
        self.priority
    }

    fn value(&self) -> u32 {
        self.value
    }

    fn created(&self) -> Option<&str> {
        self.created.as_deref()
    }

    fn depends_on(&self) -> impl Iterator<Item = &str> {
        self.depends_on.iter().map(TaskId::as_str)
    }

    fn errors(&self) -> &[Diagnostic] {
        &self.errors
    }
}

/// Returns the index in `tasks` of the top ready task, the one [`Queue::build`] puts first, without sorting.
pub fn top_ready<T: Rankable>(tasks: &[T], holds: &Holds) -> Option<usize> {
    let readiness = readiness_of(tasks, holds);
    packed_keys(tasks, &readiness)
        .filter(|&(_, index)| readiness[index].is_ready())
        .min_by(|left, right| compare_keys(tasks, left, right))
        .map(|(_, index)| index)
}

/// Returns the readiness of each task of `tasks`: its own status, cycles, dependencies and holds.
fn readiness_of<T: Rankable>(tasks: &[T], holds: &Holds) -> Vec<Readiness> {
    let index_of: FxHashMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(index, task)| (task.id(), index))
        .collect();
    let cycles = graph::cycles(tasks, &index_of);
    tasks
        .iter()
        .map(|task| {
            let mut blockers = Vec::new();
            if task.status() != Status::Open {
                blockers.push(Blocker::Status {
                    status: task.status(),
                });
            }
            if let Some(cycle) = cycles.get(task.id()) {
                blockers.push(Blocker::Cycle {
                    cycle: cycle.clone(),
                });
            }
            for dependency in task.depends_on() {
                match index_of.get(dependency).map(|&index| tasks[index].status()) {
                    Some(Status::Done) => {}
                    Some(status) => blockers.push(Blocker::WaitingOn {
                        id: TaskId::from_valid(dependency),
                        status,
                    }),
                    None => blockers.push(Blocker::UnknownDependency {
                        id: TaskId::from_valid(dependency),
                    }),
                }
            }
            if task.status() == Status::Open && !task.errors().is_empty() {
                blockers.push(Blocker::InvalidFile {
                    errors: task
                        .errors()
                        .iter()
                        .map(|error| {
                            format!(
                                "{}:{}:{}: {}",
                                error.path, error.line, error.column, error.message
                            )
                        })
                        .collect(),
                });
            }
            if task.status() == Status::Open
                && let Some(held) = holds.get(task.id())
            {
                blockers.extend(held.iter().cloned());
            }
            if blockers.is_empty() {
                Readiness::Ready
            } else {
                Readiness::NotReady { blockers }
            }
        })
        .collect()
}

/// Returns a sort key for each task that orders by readiness, then by [`rank_key`] up to
/// the first 10 bytes of `created`: it settles nearly every comparison without following a pointer.
fn packed_keys<'a, T: Rankable>(
    tasks: &'a [T],
    readiness: &'a [Readiness],
) -> impl Iterator<Item = (u128, usize)> + 'a {
    tasks
        .iter()
        .zip(readiness)
        .enumerate()
        .map(|(index, (task, readiness))| {
            let mut created = [0; 10];
            if let Some(date) = task.created() {
                let prefix = &date.as_bytes()[..date.len().min(created.len())];
                created[..prefix.len()].copy_from_slice(prefix);
            }
            let mut key = u128::from(!readiness.is_ready());
            key = key << 8 | u128::from(task.priority().level());
            key = key << 32 | u128::from(u32::MAX - task.value());
            key = key << 1 | u128::from(task.created().is_none());
            for byte in created {
                key = key << 8 | u128::from(byte);
            }
            (key, index)
        })
}

/// Orders two [`packed_keys`], falling back to [`compare_rank`] where the keys tie.
fn compare_keys<T: Rankable>(
    tasks: &[T],
    (left_key, left): &(u128, usize),
    (right_key, right): &(u128, usize),
) -> Ordering {
    left_key
        .cmp(right_key)
        .then_with(|| compare_rank(&tasks[*left], &tasks[*right]))
        .then(left.cmp(right))
}

impl Queue {
    /// Ranks `tasks`; ids must be unique (the loader drops duplicates with a diagnostic).
    pub fn build(tasks: Vec<Task>, holds: &Holds) -> Queue {
        let readiness = readiness_of(&tasks, holds);
        let mut keys: Vec<(u128, usize)> = packed_keys(&tasks, &readiness).collect();
        keys.sort_unstable_by(|left, right| compare_keys(&tasks, left, right));
        let mut tasks: Vec<Option<Task>> = tasks.into_iter().map(Some).collect();
        let mut readiness: Vec<Option<Readiness>> = readiness.into_iter().map(Some).collect();
        let mut entries: Vec<QueueEntry> = Vec::with_capacity(tasks.len());
        for (_, index) in keys {
            if let (Some(task), Some(readiness)) = (tasks[index].take(), readiness[index].take()) {
                entries.push(QueueEntry { task, readiness });
            }
        }
        let ready_count = entries
            .iter()
            .take_while(|entry| entry.readiness.is_ready())
            .count();
        Queue {
            entries,
            ready_count,
        }
    }

    /// Returns every task in queue order.
    pub fn entries(&self) -> &[QueueEntry] {
        &self.entries
    }

    /// Returns the ready tasks in rank order.
    pub fn ready(&self) -> &[QueueEntry] {
        &self.entries[..self.ready_count]
    }

    /// Returns the tasks that are not ready, in rank order.
    pub fn not_ready(&self) -> &[QueueEntry] {
        &self.entries[self.ready_count..]
    }

    /// Returns the top ready task: the answer to "what is next?".
    pub fn next(&self) -> Option<&QueueEntry> {
        self.ready().first()
    }

    /// Returns the task with `id` and its position among the ready tasks, if ready.
    pub fn find(&self, id: &str) -> Option<(usize, &QueueEntry)> {
        self.entries
            .iter()
            .enumerate()
            .find(|(_, entry)| entry.task.id.as_str() == id)
    }

    /// Explains where the task `id` stands: its blockers, or which ready task ranks just ahead and why.
    pub fn explain(&self, id: &str) -> Option<Explanation<'_>> {
        let (index, entry) = self.find(id)?;
        let standing = if entry.readiness.is_ready() {
            if index == 0 {
                Standing::Next
            } else {
                let ahead = &self.entries[index - 1];
                Standing::Behind {
                    position: index + 1,
                    ahead: &ahead.task,
                    reason: rank_reason(&ahead.task, &entry.task),
                }
            }
        } else {
            Standing::NotReady {
                blockers: entry.readiness.blockers(),
            }
        };
        Some(Explanation {
            entry,
            standing,
            ready_count: self.ready_count,
        })
    }
}

/// Where one task stands in the queue, for `gitprio explain`.
#[derive(Clone, Debug)]
pub struct Explanation<'a> {
    pub entry: &'a QueueEntry,
    pub standing: Standing<'a>,
    pub ready_count: usize,
}

/// The outcome of [`Queue::explain`].
#[derive(Clone, Debug)]
pub enum Standing<'a> {
    /// The task is the top ready task.
    Next,
    /// The task is ready at 1-based `position`, right behind `ahead`.
    Behind {
        position: usize,
        ahead: &'a Task,
        reason: RankReason,
    },
    /// The task cannot be handed out.
    NotReady { blockers: &'a [Blocker] },
}

/// The rank order: priority ascending, value descending, `created` ascending (undated last), id ascending.
pub fn compare_rank<T: Rankable>(left: &T, right: &T) -> Ordering {
    rank_key(left).cmp(&rank_key(right))
}

type RankKey<'a> = (u8, Reverse<u32>, (bool, Option<&'a str>), &'a str);

/// Returns the sort key behind [`compare_rank`].
pub fn rank_key<T: Rankable>(task: &T) -> RankKey<'_> {
    (
        task.priority().level(),
        Reverse(task.value()),
        (task.created().is_none(), task.created()),
        task.id(),
    )
}

/// Returns the first part of the rank key on which `ahead` beats `behind`.
pub fn rank_reason<T: Rankable>(ahead: &T, behind: &T) -> RankReason {
    let (ahead_key, behind_key) = (rank_key(ahead), rank_key(behind));
    if ahead_key.0 != behind_key.0 {
        RankReason::Priority
    } else if ahead_key.1 != behind_key.1 {
        RankReason::Value
    } else if ahead_key.2 != behind_key.2 {
        RankReason::Created
    } else {
        RankReason::Id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::parse_task;

    fn task(id: &str, frontmatter: &str) -> Task {
        let text = format!("---\ntitle: {id}\n{frontmatter}\n---\n");
        let parsed = parse_task(&format!(".tasks/{id}.md"), text.as_bytes());
        parsed
            .task
            .unwrap_or_else(|| panic!("{:?}", parsed.diagnostics))
    }

    fn ids(entries: &[QueueEntry]) -> Vec<&str> {
        entries.iter().map(|entry| entry.task.id.as_str()).collect()
    }

    #[test]
    fn ranks_by_priority_value_created_then_id() {
        let queue = Queue::build(
            vec![
                task("e", "priority: 1\nvalue: 1"),
                task("d", "priority: 1\nvalue: 1"),
                task("c", "priority: 1\nvalue: 1\ncreated: 2026-01-02"),
                task("b", "priority: 1\nvalue: 1\ncreated: 2026-01-01"),
                task("a", "priority: 1\nvalue: 3"),
                task("z", "priority: p0"),
            ],
            &Holds::new(),
        );
        assert_eq!(ids(queue.ready()), ["z", "a", "b", "c", "d", "e"]);
        assert_eq!(queue.next().unwrap().task.id.as_str(), "z");
    }

    #[test]
    fn ranking_does_not_depend_on_input_order() {
        let tasks = vec![
            task("a", "priority: 2"),
            task("b", "priority: 2"),
            task("c", "priority: 1\nvalue: 2"),
        ];
        let mut reversed = tasks.clone();
        reversed.reverse();
        let forward = Queue::build(tasks, &Holds::new());
        let backward = Queue::build(reversed, &Holds::new());
        assert_eq!(ids(forward.entries()), ids(backward.entries()));
    }

    #[test]
    fn dependencies_status_and_holds_decide_readiness() {
        let mut holds = Holds::new();
        holds.insert(
            TaskId::new("held").unwrap(),
            vec![Blocker::Leased {
                holder: "agent-1".into(),
                expires_at: "2026-11-23T12:00:00Z".into(),
            }],
        );
        let queue = Queue::build(
            vec![
                task("base", "status: done"),
                task("open-dep", ""),
                task("ready", "depends_on: [base]"),
                task("waiting", "depends_on: [base, open-dep]"),
                task("orphan", "depends_on: [ghost]"),
                task("dropped", "status: dropped"),
                task("held", ""),
            ],
            &holds,
        );
        assert_eq!(ids(queue.ready()), ["open-dep", "ready"]);
        let waiting = queue.find("waiting").unwrap().1;
        assert_eq!(
            waiting.readiness.blockers(),
            [Blocker::WaitingOn {
                id: TaskId::new("open-dep").unwrap(),
                status: Status::Open
            }]
        );
        let orphan = queue.find("orphan").unwrap().1;
        assert_eq!(
            orphan.readiness.blockers(),
            [Blocker::UnknownDependency {
                id: TaskId::new("ghost").unwrap()
            }]
        );
        assert!(matches!(
            queue.find("held").unwrap().1.readiness.blockers()[0],
            Blocker::Leased { .. }
        ));
        assert_eq!(
            queue.find("dropped").unwrap().1.readiness.blockers(),
            [Blocker::Status {
                status: Status::Dropped
            }]
        );
    }

    #[test]
    fn cycles_block_every_member_and_name_the_cycle() {
        let queue = Queue::build(
            vec![
                task("a", "depends_on: [b]"),
                task("b", "depends_on: [c]"),
                task("c", "depends_on: [a]"),
                task("d", "depends_on: [d]"),
            ],
            &Holds::new(),
        );
        assert!(queue.ready().is_empty());
        let blockers = queue.find("b").unwrap().1.readiness.blockers();
        let Blocker::Cycle { cycle } = &blockers[0] else {
            panic!("{blockers:?}")
        };
        let names: Vec<&str> = cycle.iter().map(TaskId::as_str).collect();
        assert_eq!(names, ["b", "c", "a", "b"]);
        let self_loop = queue.find("d").unwrap().1.readiness.blockers();
        assert!(matches!(&self_loop[0], Blocker::Cycle { cycle } if cycle.len() == 2));
    }

    #[test]
    fn explains_position_and_reason() {
        let queue = Queue::build(
            vec![
                task("a", "priority: 0"),
                task("b", "priority: 1"),
                task("c", "priority: 1\ndepends_on: [b]"),
            ],
            &Holds::new(),
        );
        assert!(matches!(
            queue.explain("a").unwrap().standing,
            Standing::Next
        ));
        let explanation = queue.explain("b").unwrap();
        assert!(matches!(
            explanation.standing,
            Standing::Behind {
                position: 2,
                reason: RankReason::Priority,
                ..
            }
        ));
        assert!(matches!(
            queue.explain("c").unwrap().standing,
            Standing::NotReady { .. }
        ));
        assert!(queue.explain("missing").is_none());
    }

    #[test]
    fn the_order_is_readiness_then_compare_rank_for_any_keys() {
        let createds = [
            None,
            Some("2026-01-02"),
            Some("2026-01-02x"),
            Some("2026-01-02\u{0}"),
            Some("2026-01-1"),
            Some("2025-12-31"),
            Some(""),
        ];
        let mut seed = 7_u32;
        let mut next = |limit: u32| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (seed >> 16) % limit
        };
        let tasks: Vec<Task> = (0..300)
            .map(|index| {
                let mut task = task(&format!("t{index:03}"), "");
                task.priority = crate::task::Priority::new(u8::try_from(next(3)).unwrap()).unwrap();
                task.value = [0, 1, u32::MAX][next(3) as usize];
                task.created = createds[next(7) as usize].map(str::to_owned);
                if next(4) == 0 {
                    task.status = Status::Done;
                }
                task
            })
            .collect();
        let top = top_ready(&tasks, &Holds::new()).map(|index| tasks[index].id.clone());
        let queue = Queue::build(tasks, &Holds::new());
        assert_eq!(top.as_ref(), queue.next().map(|entry| &entry.task.id));
        for pair in queue.entries().windows(2) {
            let (ahead, behind) = (&pair[0], &pair[1]);
            let order = behind
                .readiness
                .is_ready()
                .cmp(&ahead.readiness.is_ready())
                .then_with(|| compare_rank(&ahead.task, &behind.task));
            assert_eq!(
                order,
                Ordering::Less,
                "{} before {}",
                ahead.task.id,
                behind.task.id
            );
        }
        assert_eq!(queue.entries().len(), 300);
    }
}
