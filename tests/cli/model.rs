//! A model-based fault test of the lease protocol: random interleavings of every lease
//! command by several agents over a real remote, with a fake clock, a process abort at
//! every failpoint gitprio declares and stale `.lock` files on the remote, checked against
//! the whole lease history the remote recorded.
//!
//! `GITPRIO_MODEL_SEED` picks the interleaving (the seed is printed on failure) and
//! `GITPRIO_MODEL_OPS` its length (300 by default; the long run in docs/BENCHMARKS.md
//! uses 10000).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use crate::common::{Output, TestEnv};
use crate::leases::{remote_with_clones, task};

/// Every failpoint gitprio declares (docs/leases.md, "Crashes"), by the command that reaches
/// it; but `gitprio run`'s (`run:*`), which the model does not run: tests/cli/crash.rs
/// aborts those.
const FAILPOINTS: [(&str, &str); 11] = [
    ("claim", "claim:before-cas"),
    ("claim", "claim:after-cas"),
    ("claim", "claim:before-reply"),
    ("heartbeat", "heartbeat:before-cas"),
    ("heartbeat", "heartbeat:after-cas"),
    ("release", "release:before-cas"),
    ("release", "release:after-cas"),
    ("release", "release:before-outcome"),
    ("done", "submit:before-cas"),
    ("done", "submit:after-cas"),
    ("done", "done:before-edit"),
];

const AGENTS: usize = 4;
const TASKS: usize = 30;
/// The default `clock_skew`: a reclaim waits this long past `expires_at`.
const SKEW: SignedDuration = SignedDuration::from_mins(1);

/// splitmix64: a small seeded generator, so a seed replays the same choices.
pub(crate) struct Random(pub(crate) u64);

impl Random {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut value = self.0;
        value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        value ^ (value >> 31)
    }

    pub(crate) fn below(&mut self, bound: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(bound).unwrap()).unwrap()
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// One lease commit as the remote recorded it.
#[derive(Clone, Debug)]
struct Commit {
    parent: Option<String>,
    record: Value,
}

/// What an agent believes it holds, from the outputs it was given.
#[derive(Clone, Debug)]
struct Belief {
    task: String,
    generation: u64,
}

struct Model {
    env: TestEnv,
    seed: u64,
    random: Random,
    now: Timestamp,
    beliefs: Vec<Option<Belief>>,
    /// Every lease commit seen on the remote, by oid.
    commits: BTreeMap<String, Commit>,
    /// The remote's lease refs after the last operation.
    tips: BTreeMap<String, String>,
    /// Tasks whose `done` succeeded: never claimed again.
    submitted: BTreeSet<String>,
    /// Usage keys recorded (exit 0), by task.
    usage: BTreeMap<String, Vec<String>>,
    /// Lock files left on the remote, and how many more operations they stay.
    locks: Vec<(std::path::PathBuf, usize)>,
    fired: BTreeMap<&'static str, usize>,
    log: Vec<String>,
    operations: usize,
    /// How many operations the run makes before the drain.
    planned: usize,
}

impl Model {
    fn new(seed: u64, planned: usize) -> Model {
        let env = TestEnv::new();
        let mut files: Vec<(String, String)> = (0..TASKS)
            .map(|index| {
                (
                    format!(".tasks/t{index}.md"),
                    task(
                        &format!("Task {index}"),
                        u8::try_from(index % 3).unwrap(),
                        &[],
                    ),
                )
            })
            .collect();
        files.push((
            ".tasks/config.yaml".to_owned(),
            "max_attempts: 4\nlease_ttl: 10m\n".to_owned(),
        ));
        let clones: Vec<String> = (0..AGENTS).map(|index| format!("agent{index}")).collect();
        let mut names: Vec<&str> = clones.iter().map(String::as_str).collect();
        names.push("human");
        remote_with_clones(&env, &files, &names);
        Model {
            env,
            seed,
            random: Random(seed),
            now: "2026-11-01T12:00:00Z".parse().unwrap(),
            beliefs: vec![None; AGENTS],
            commits: BTreeMap::new(),
            tips: BTreeMap::new(),
            submitted: BTreeSet::new(),
            usage: BTreeMap::new(),
            locks: Vec::new(),
            fired: BTreeMap::new(),
            log: Vec::new(),
            operations: 0,
            planned,
        }
    }

    /// Panics with the seed and the last operations, so the run can be replayed.
    fn fail(&self, problem: &str) -> ! {
        let tail = self
            .log
            .iter()
            .rev()
            .take(25)
            .rev()
            .fold(String::new(), |mut text, line| {
                let _ = writeln!(text, "  {line}");
                text
            });
        panic!(
            "model check failed (GITPRIO_MODEL_SEED={}, after {} operations): {problem}\nlast operations:\n{tail}",
            self.seed, self.operations
        );
    }

    /// Runs gitprio in `dir` as `agent` at the model's time, with `failpoint` armed.
    fn gitprio(
        &mut self,
        dir: &str,
        agent: &str,
        args: &[&str],
        failpoint: Option<&str>,
    ) -> Output {
        let now = self.now.to_string();
        let mut env = vec![("GITPRIO_AGENT", agent), ("GITPRIO_NOW", now.as_str())];
        if let Some(failpoint) = failpoint {
            env.push(("GITPRIO_FAILPOINT", failpoint));
        }
        let output = self.env.run_with(dir, args, &env);
        let first = output.stderr.lines().next().unwrap_or_default();
        self.log.push(format!(
            "{} {agent} {} {args:?} failpoint={failpoint:?} -> exit {} {first}",
            self.now, dir, output.code
        ));
        if ![-1, 0, 1, 3, 4].contains(&output.code) || output.stderr.contains("panicked") {
            self.fail(&format!("unexpected outcome: {output}"));
        }
        if output.code == -1 && failpoint.is_none() {
            self.fail(&format!("killed without a failpoint: {output}"));
        }
        output
    }

    /// The failpoint to arm for `command` now, if this operation is to be killed.
    ///
    /// The command's failpoint that fired least so far, so that every one fires.
    fn failpoint_for(&mut self, command: &str) -> Option<&'static str> {
        let failpoint = FAILPOINTS
            .iter()
            .filter(|(wanted, _)| *wanted == command)
            .map(|(_, failpoint)| *failpoint)
            .min_by_key(|failpoint| self.fired.get(failpoint).copied().unwrap_or(0))?;
        // Late in a run, a failpoint that never fired is armed every time it can be.
        let overdue = self.operations * 3 > self.planned * 2 && !self.fired.contains_key(failpoint);
        (overdue || self.random.chance(30)).then_some(failpoint)
    }

    fn killed(&mut self, output: &Output, failpoint: Option<&'static str>) -> bool {
        if output.code != -1 {
            return false;
        }
        let failpoint = failpoint.expect("checked in gitprio()");
        *self.fired.entry(failpoint).or_default() += 1;
        true
    }

    /// Reads the remote's lease refs and every commit of those that moved.
    fn observe(&mut self) {
        let listing = self.env.git(
            "remote.git",
            &[
                "for-each-ref",
                "--format=%(refname:lstrip=3) %(objectname)",
                "refs/gitprio/leases/",
            ],
        );
        let tips: BTreeMap<String, String> = listing
            .lines()
            .filter_map(|line| line.split_once(' '))
            .map(|(id, oid)| (id.to_owned(), oid.to_owned()))
            .collect();
        for oid in tips.values() {
            if self.commits.contains_key(oid) {
                continue;
            }
            let mut args = vec![
                "log".to_owned(),
                "--format=%H%x00%P%x00%B%x1e".to_owned(),
                oid.clone(),
            ];
            // Every commit seen is an ancestor of a tip seen before: those bound the walk.
            args.extend(self.tips.values().map(|known| format!("^{known}")));
            let borrowed: Vec<&str> = args.iter().map(String::as_str).collect();
            for entry in self.env.git("remote.git", &borrowed).split('\u{1e}') {
                let mut fields = entry.trim_start_matches('\n').splitn(3, '\0');
                let (Some(oid), Some(parent), Some(message)) =
                    (fields.next(), fields.next(), fields.next())
                else {
                    continue;
                };
                let body = message.split_once("\n\n").map_or("", |(_, body)| body);
                let record: Value = serde_json::from_str(body.trim()).unwrap_or_else(|error| {
                    self.fail(&format!("lease commit {oid} is unreadable: {error}"))
                });
                self.commits.insert(
                    oid.to_owned(),
                    Commit {
                        parent: (!parent.is_empty()).then(|| parent.to_owned()),
                        record,
                    },
                );
            }
        }
        self.tips = tips;
    }

    /// The record the remote's lease of `id` holds now.
    fn tip(&self, id: &str) -> Option<&Value> {
        Some(&self.commits[self.tips.get(id)?].record)
    }

    fn step(&mut self) {
        self.operations += 1;
        self.now = self
            .now
            .checked_add(SignedDuration::from_secs(
                i64::try_from(self.random.below(150)).unwrap(),
            ))
            .unwrap();
        self.expire_locks();
        let roll = self.random.below(100);
        match roll {
            0..=3 => self.revoke(),
            4..=6 => self.unpark(),
            7..=9 => self.gc(),
            10..=12 => self.lock(),
            13..=15 => self.reopen(),
            _ => {
                let agent = self.random.below(AGENTS);
                self.agent_step(agent);
            }
        }
        self.observe();
    }

    fn agent_step(&mut self, agent: usize) {
        let Some(belief) = self.beliefs[agent].clone() else {
            self.claim(agent);
            return;
        };
        match self.random.below(100) {
            0..=29 => self.heartbeat(agent, &belief),
            30..=59 => self.done(agent, &belief),
            60..=74 => self.release(agent, &belief),
            75..=89 => self.record_usage(agent, &belief),
            // The agent stops renewing: its lease expires, and it claims again later.
            _ => self.beliefs[agent] = None,
        }
    }

    /// The clone and the name of agent number `agent`: one clone per agent.
    fn names(agent: usize) -> (String, String) {
        (format!("agent{agent}"), format!("agent{agent}"))
    }

    fn claim(&mut self, agent: usize) {
        let (dir, name) = Self::names(agent);
        let failpoint = self.failpoint_for("claim");
        let output = self.gitprio(&dir, &name, &["claim", "--json"], failpoint);
        self.observe();
        if output.code == 3 {
            // Nothing to do: a reviewer rejects a submission, which keeps the queue busy.
            self.reject();
        }
        if self.killed(&output, failpoint) || output.code != 0 {
            return;
        }
        let json = output.json();
        let id = json["task"]["id"].as_str().unwrap().to_owned();
        let generation = json["lease"]["generation"].as_u64().unwrap();
        if self.submitted.contains(&id) {
            self.fail(&format!("{name} claimed {id}, which was submitted"));
        }
        let tip = self.tip(&id).cloned().unwrap_or_default();
        if tip["holder"]["agent"] != name.as_str()
            || tip["generation"] != generation
            || tip["state"] != "held"
        {
            self.fail(&format!(
                "{name} claimed {id} at generation {generation}, the remote holds {tip}"
            ));
        }
        self.beliefs[agent] = Some(Belief {
            task: id,
            generation,
        });
    }

    /// Checks that a command of `agent` that succeeded on `belief` left the remote's lease
    /// in `state`, still its generation and (unless revoked) its name.
    fn expect_tip(&self, agent: usize, belief: &Belief, state: &str, what: &str) {
        let tip = self.tip(&belief.task).cloned().unwrap_or_default();
        if tip["generation"] != belief.generation
            || tip["state"] != state
            || tip["holder"]["agent"] != Self::names(agent).1.as_str()
        {
            self.fail(&format!(
                "agent{agent}'s {what} of {} (generation {}) succeeded, but the remote holds {tip}",
                belief.task, belief.generation
            ));
        }
    }

    fn heartbeat(&mut self, agent: usize, belief: &Belief) {
        let (dir, name) = Self::names(agent);
        let failpoint = self.failpoint_for("heartbeat");
        let output = self.gitprio(&dir, &name, &["heartbeat", &belief.task], failpoint);
        self.observe();
        match output.code {
            0 => self.expect_tip(agent, belief, "held", "heartbeat"),
            4 => self.beliefs[agent] = None,
            _ => {
                self.killed(&output, failpoint);
            }
        }
    }

    fn done(&mut self, agent: usize, belief: &Belief) {
        let (dir, name) = Self::names(agent);
        let failpoint = self.failpoint_for("done");
        let output = self.gitprio(
            &dir,
            &name,
            &["done", &belief.task, "--no-verify", "--reason", "model"],
            failpoint,
        );
        self.observe();
        match output.code {
            0 => {
                self.expect_tip(agent, belief, "submitted", "done");
                self.submitted.insert(belief.task.clone());
                self.beliefs[agent] = None;
                if self.random.chance(30) {
                    self.land(&dir, &belief.task);
                }
            }
            4 => self.beliefs[agent] = None,
            _ => {
                self.killed(&output, failpoint);
            }
        }
    }

    /// Lands the `status: done` that `done` wrote in the agent's clone on the queue's
    /// branch (through the reviewer's clone, which has no edits of its own), so `gc` may
    /// delete the lease; the agent's clone drops its copy of the edit.
    fn land(&mut self, dir: &str, id: &str) {
        let path = format!(".tasks/{id}.md");
        let text = std::fs::read_to_string(self.env.path(&format!("{dir}/{path}"))).unwrap();
        self.env.git(dir, &["checkout", "--quiet", "--", &path]);
        self.publish(&path, |_| Some(text.clone()));
        self.log.push(format!("{} {dir} landed {id}", self.now));
    }

    /// Edits `path` on the queue's branch through the reviewer's clone: `edit` returns the
    /// new text, or `None` to leave it. Returns whether it changed.
    fn publish(&mut self, path: &str, edit: impl FnOnce(&str) -> Option<String>) -> bool {
        self.env
            .git("human", &["pull", "--quiet", "--rebase", "origin", "main"]);
        let file = self.env.path(&format!("human/{path}"));
        let text = std::fs::read_to_string(&file).unwrap();
        let Some(edited) = edit(&text).filter(|edited| *edited != text) else {
            return false;
        };
        std::fs::write(&file, edited).unwrap();
        self.env
            .git("human", &["commit", "--quiet", "-m", "edit", "--", path]);
        self.env
            .git("human", &["push", "--quiet", "origin", "HEAD:main"]);
        true
    }

    fn release(&mut self, agent: usize, belief: &Belief) {
        let (dir, name) = Self::names(agent);
        let failpoint = self.failpoint_for("release");
        let failed = self.random.chance(50);
        let mut args = vec!["release", belief.task.as_str()];
        if failed {
            args.extend(["--failed", "--reason", "model"]);
        }
        let output = self.gitprio(&dir, &name, &args, failpoint);
        self.observe();
        match output.code {
            0 | 4 => self.beliefs[agent] = None,
            _ => {
                self.killed(&output, failpoint);
            }
        }
    }

    fn record_usage(&mut self, agent: usize, belief: &Belief) {
        let (dir, name) = Self::names(agent);
        let key = format!("model-{}-{}", self.seed, self.operations);
        let output = self.gitprio(
            &dir,
            &name,
            &[
                "usage",
                "record",
                &belief.task,
                "--model",
                "m",
                "--input",
                "10",
                "--key",
                &key,
            ],
            None,
        );
        if output.code == 0 {
            self.usage.entry(belief.task.clone()).or_default().push(key);
        }
    }

    fn revoke(&mut self) {
        let id = format!("t{}", self.random.below(TASKS));
        let park = self.random.chance(30);
        let mut args = vec!["revoke", id.as_str(), "--reason", "model"];
        if park {
            args.push("--park");
        }
        if self.gitprio("human", "human", &args, None).code == 0 {
            self.submitted.remove(&id);
        }
    }

    /// The tasks whose lease on the remote is parked now.
    fn parked(&self) -> Vec<String> {
        self.tips
            .iter()
            .filter(|(_, oid)| self.commits[*oid].record["state"] == "parked")
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// A reviewer rejects a submitted task's change: its lease is revoked, back to the queue.
    fn reject(&mut self) {
        let submitted: Vec<String> = self
            .tips
            .iter()
            .filter(|(_, oid)| self.commits[*oid].record["state"] == "submitted")
            .map(|(id, _)| id.clone())
            .collect();
        if let Some(id) = submitted.get(self.random.below(submitted.len().max(1))) {
            let id = id.clone();
            let output = self.gitprio(
                "human",
                "human",
                &["revoke", &id, "--reason", "rejected"],
                None,
            );
            if output.code == 0 {
                self.submitted.remove(&id);
            }
        }
    }

    /// A task done on the queue's branch is opened again there (its change was reverted).
    fn reopen(&mut self) {
        let id = format!("t{}", self.random.below(TASKS));
        let path = format!(".tasks/{id}.md");
        let reopened = self.publish(&path, |text| {
            text.contains("status: done\n")
                .then(|| text.replace("status: done\n", ""))
        });
        if reopened {
            self.submitted.remove(&id);
            self.log.push(format!("{} reopened {id}", self.now));
        }
    }

    fn unpark(&mut self) {
        let parked = self.parked();
        if let Some(id) = parked.get(self.random.below(parked.len().max(1))) {
            let id = id.clone();
            self.gitprio("human", "human", &["unpark", &id], None);
        }
    }

    fn gc(&mut self) {
        self.gitprio("human", "human", &["gc"], None);
    }

    /// Leaves a stale `.lock` file on the remote for one task's lease, for a few operations.
    fn lock(&mut self) {
        let id = format!("t{}", self.random.below(TASKS));
        let path = self
            .env
            .path(&format!("remote.git/refs/gitprio/leases/{id}.lock"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "").unwrap();
        let stays = 1 + self.random.below(6);
        self.log
            .push(format!("{} lock {id} for {stays} operations", self.now));
        self.locks.push((path, stays));
    }

    fn expire_locks(&mut self) {
        for (path, stays) in &mut self.locks {
            *stays -= 1;
            if *stays == 0 {
                let _ = std::fs::remove_file(path);
            }
        }
        self.locks.retain(|(_, stays)| *stays > 0);
    }

    /// The first commit of the chain `oid` is in.
    ///
    /// A lease deleted by gc (its task done) starts a new chain if the task is opened
    /// again: generations count within one chain.
    fn root(&self, oid: &str) -> String {
        let mut oid = oid.to_owned();
        while let Some(parent) = &self.commits[&oid].parent {
            oid.clone_from(parent);
        }
        oid
    }

    /// Checks every recorded state change against the one before it.
    fn check_history(&self) {
        // A lease deleted by gc (its task done) starts a new chain if the task is opened
        // again: generations count within one chain, from its first commit.
        let mut claims: BTreeMap<(String, String, u64), usize> = BTreeMap::new();
        for (oid, commit) in &self.commits {
            let record = &commit.record;
            let id = record["task"].as_str().unwrap().to_owned();
            let event = record["event"].as_str().unwrap();
            let generation = record["generation"].as_u64().unwrap();
            if matches!(event, "claim" | "reclaim") {
                *claims
                    .entry((id.clone(), self.root(oid), generation))
                    .or_default() += 1;
            }
            let previous = commit
                .parent
                .as_ref()
                .map(|parent| &self.commits[parent].record);
            if let Err(problem) = transition(previous, record) {
                self.fail(&format!("lease commit {oid} of {id} ({event}): {problem}"));
            }
        }
        if let Some(((id, _, generation), count)) = claims.iter().find(|(_, count)| **count > 1) {
            self.fail(&format!(
                "{count} claims of {id} at generation {generation}"
            ));
        }
    }

    /// Every task is finished or claimable once the faults stop: locks go, time passes,
    /// parked tasks are unparked, and the agents drain the queue.
    fn drain(&mut self) {
        for (path, _) in std::mem::take(&mut self.locks) {
            let _ = std::fs::remove_file(path);
        }
        self.now = self.now.checked_add(SignedDuration::from_hours(2)).unwrap();
        // A claim over an expired lease whose failures reach the limit parks it instead:
        // parked tasks are claimable once a human unparks them, so unpark and drain again.
        for _ in 0..5 {
            self.observe();
            let parked = self.parked();
            if parked.is_empty() && self.drain_once() == 0 {
                break;
            }
            for id in parked {
                let output = self.gitprio("human", "human", &["unpark", &id], None);
                if output.code != 0 {
                    self.fail(&format!("cannot unpark {id}: {output}"));
                }
            }
            self.drain_once();
        }
        self.observe();
        for index in 0..TASKS {
            let id = format!("t{index}");
            let state = self.tip(&id).map(|record| record["state"].clone());
            // Done on the queue's branch: its lease may be gone (gc), or released (a
            // reviewer revoked the submission after it landed).
            let done_on_branch = self
                .env
                .git("remote.git", &["show", &format!("main:.tasks/{id}.md")])
                .contains("status: done");
            if state != Some(Value::from("submitted")) && !done_on_branch {
                self.fail(&format!(
                    "{id} is neither submitted nor collected after the drain: {state:?}"
                ));
            }
        }
    }

    /// The agents claim and finish tasks in turn until none is ready; returns how many.
    fn drain_once(&mut self) -> usize {
        let mut finished = 0;
        let mut idle = 0;
        let mut agent = 0;
        while idle < AGENTS {
            agent = (agent + 1) % AGENTS;
            let (dir, name) = Self::names(agent);
            let output = self.gitprio(&dir, &name, &["claim", "--json"], None);
            if output.code == 3 {
                idle += 1;
                continue;
            }
            if output.code != 0 {
                self.fail(&format!("claim while draining: {output}"));
            }
            idle = 0;
            let id = output.json()["task"]["id"].as_str().unwrap().to_owned();
            let done = self.gitprio(
                &dir,
                &name,
                &["done", &id, "--no-verify", "--reason", "drain"],
                None,
            );
            if done.code != 0 {
                self.fail(&format!("done while draining: {done}"));
            }
            finished += 1;
        }
        finished
    }

    /// Every usage record that was recorded is in the remote's ledger, once.
    fn check_usage(&self) {
        for (id, keys) in &self.usage {
            let reference = format!("refs/gitprio/usage/{id}");
            let files = self
                .env
                .git("remote.git", &["ls-tree", "-r", "--name-only", &reference]);
            let mut lines = String::new();
            // A run's records: the whole-run `usage.jsonl` of older ledgers, or appended chunks.
            for file in files
                .lines()
                .filter(|file| file.ends_with("/usage.jsonl") || file.contains("/usage/"))
            {
                let path = format!("{reference}:{file}");
                lines.push_str(&self.env.git("remote.git", &["show", &path]));
            }
            for key in keys {
                // A key given on the command line is kept as `manual:<key>`.
                let count = lines.matches(&format!("\"manual:{key}\"")).count();
                if count != 1 {
                    self.fail(&format!(
                        "usage record {key} of {id} is in the ledger {count} times"
                    ));
                }
            }
        }
    }
}

/// Checks that `record` may follow `previous` (none: the ref was created).
fn transition(previous: Option<&Value>, record: &Value) -> Result<(), String> {
    let event = record["event"].as_str().unwrap();
    let generation = record["generation"].as_u64().unwrap();
    let Some(previous) = previous else {
        return if event == "claim" && generation == 1 {
            Ok(())
        } else {
            Err("a lease starts with a claim at generation 1".to_owned())
        };
    };
    let state = previous["state"].as_str().unwrap();
    let same_generation = previous["generation"] == record["generation"];
    let same_holder = previous["holder"]["agent"] == record["holder"]["agent"];
    let time = |value: &Value| value.as_str().unwrap().parse::<Timestamp>().unwrap();
    let expired =
        || time(&record["renewed_at"]) > time(&previous["expires_at"]).checked_add(SKEW).unwrap();
    let ok = match event {
        "claim" => state == "released" && previous["generation"].as_u64() == Some(generation - 1),
        "reclaim" => {
            state == "held" && expired() && previous["generation"].as_u64() == Some(generation - 1)
        }
        "renew" | "submit" | "release" | "fail" => {
            state == "held" && same_generation && same_holder
        }
        // A release that reached the limit, or a claim that parked an expired lease.
        "park" => state == "held" && same_generation && (same_holder || expired()),
        // A reviewer may put a submitted task back by revoking it.
        "revoke" => matches!(state, "held" | "submitted") && same_generation,
        "unpark" => state == "parked" && same_generation,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "cannot follow {state} {} at generation {}",
            previous["event"], previous["generation"]
        ))
    }
}

#[test]
fn random_interleavings_with_crashes_and_stale_locks_keep_every_lease_promise() {
    let seed = std::env::var("GITPRIO_MODEL_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(20_261_101);
    let operations: usize = std::env::var("GITPRIO_MODEL_OPS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(300);
    let mut model = Model::new(seed, operations);
    model.observe();
    for _ in 0..operations {
        model.step();
    }
    model.check_history();
    model.drain();
    model.check_history();
    model.check_usage();
    let missing: Vec<&str> = FAILPOINTS
        .iter()
        .map(|(_, failpoint)| *failpoint)
        .filter(|failpoint| !model.fired.contains_key(failpoint))
        .collect();
    if !missing.is_empty() {
        model.fail(&format!(
            "failpoints never fired: {missing:?} (fired: {:?})",
            model.fired
        ));
    }
    eprintln!(
        "model: seed {seed}, {} operations, {} lease commits, failpoints fired {:?}",
        model.operations,
        model.commits.len(),
        model.fired
    );
}
