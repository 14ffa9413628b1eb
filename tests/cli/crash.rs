//! Real crashes: every state-changing command is started against a real remote (a path
//! remote whose `pre-receive` hook sleeps, so a push lasts long enough to be cut in the
//! middle; `done` also over git:// and smart HTTP) and killed with SIGKILL at seeded pseudo-random moments spread over its whole
//! uninterrupted duration; then the recovery a user would run (the same command again,
//! `status`, the next `claim`) must leave the promises of docs/leases.md ("Crashes") true:
//! a task whose `done` landed is never handed out again, a held lease has one holder,
//! usage totals are exact, every later command succeeds (or says what to do), and `git
//! fsck` finds nothing wrong.
//!
//! `GITPRIO_CRASH_SEED` picks the kill moments (printed on failure), `GITPRIO_CRASH_KILLS`
//! how many kills each command gets (3 by default; a sweep with 12 kills a command
//! and seed 77 found nothing more).

use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Output, TestEnv, script};
use crate::leases::{remote_with_clones, task};
use crate::model::Random;
use crate::servers::{GitDaemon, HttpGit};

/// The clock of every command: leases last 30 minutes from here.
const NOW: &str = "2026-11-02T09:00:00Z";
/// Two hours later: every lease has expired, so only a submitted one stays held back.
const LATER: &str = "2026-11-02T11:00:00Z";
/// How long the remote's `pre-receive` hook sleeps: each push is this long at least.
const PUSH_SECONDS: &str = "0.1";

/// The clones: two agents and a reviewer.
const CLONES: [(&str, &str); 3] = [("a", "alice"), ("b", "bob"), ("human", "reviewer")];

/// How the clones reach the remote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    /// A path remote.
    Path,
    /// git://, a `git daemon` of the harness's own.
    Daemon,
    /// Smart HTTP, from the one server of the test binary ([`http`]).
    Http,
}

/// The smart-HTTP server of the whole test binary: `git http-backend` serving the
/// temporary directory every [`TestEnv`] is made in, so that each harness's remote is there
/// without a server of its own. It stops with the test process.
fn http() -> &'static HttpGit {
    static SERVER: OnceLock<HttpGit> = OnceLock::new();
    SERVER.get_or_init(|| HttpGit::start(&std::env::temp_dir()))
}

/// One test environment: a remote with a slow `pre-receive`, and the three clones.
struct Harness {
    env: TestEnv,
    seed: u64,
    label: String,
    /// Serving the remote over git:// when the clones reach it so.
    _daemon: Option<GitDaemon>,
}

impl Harness {
    /// The remote and its clones, which reach it by `transport`.
    fn new(seed: u64, label: String, transport: Transport) -> Harness {
        let env = TestEnv::new();
        let files: Vec<(String, String)> = vec![
            (".tasks/t1.md".to_owned(), task("Task one", 1, &[])),
            (".tasks/t2.md".to_owned(), task("Task two", 3, &[])),
        ];
        let names: Vec<&str> = CLONES.iter().map(|(dir, _)| *dir).collect();
        remote_with_clones(&env, &files, &names);
        let hook = env.path("remote.git/hooks/pre-receive");
        std::fs::write(
            &hook,
            format!("#!/bin/sh\ncat >/dev/null\nsleep {PUSH_SECONDS}\n"),
        )
        .unwrap();
        std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let mut daemon = None;
        let url = match transport {
            Transport::Path => None,
            Transport::Daemon => {
                let started = GitDaemon::start(&env.path("."));
                let url = started.url("remote.git");
                daemon = Some(started);
                Some(url)
            }
            Transport::Http => {
                let served = std::env::temp_dir().canonicalize().unwrap();
                let remote = env.path("remote.git").canonicalize().unwrap();
                let under = remote.strip_prefix(&served).unwrap();
                Some(http().url(under.to_str().unwrap()))
            }
        };
        for (dir, _) in CLONES {
            if let Some(url) = &url {
                env.git(dir, &["remote", "set-url", "origin", url]);
            }
        }
        Harness {
            env,
            seed,
            label,
            _daemon: daemon,
        }
    }

    /// `gitprio` in `dir` as that clone's agent, at [`NOW`], ready to run.
    fn command(&self, dir: &str, args: &[&str], now: &str) -> Command {
        let agent = CLONES
            .iter()
            .find(|(clone, _)| *clone == dir)
            .map_or("alice", |(_, agent)| *agent);
        let mut command = self.env.command(dir, args);
        command
            .env("GITPRIO_AGENT", agent)
            .env("GITPRIO_NOW", now)
            .env("CLAUDE_CONFIG_DIR", self.env.path("claude"))
            .env("PATH", path_with(&self.env.path("bin")));
        command
    }

    fn run_at(&self, dir: &str, args: &[&str], now: &str) -> Output {
        let output = self
            .command(dir, args, now)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        self.env.normalized(&output)
    }

    fn run(&self, dir: &str, args: &[&str]) -> Output {
        self.run_at(dir, args, NOW)
    }

    /// Runs a command that must succeed.
    fn ok(&self, dir: &str, args: &[&str]) -> Output {
        let output = self.run(dir, args);
        if output.code != 0 {
            self.fail(&format!(
                "`gitprio {}` in {dir} failed:\n{output}",
                args.join(" ")
            ));
        }
        output
    }

    fn fail(&self, problem: &str) -> ! {
        panic!(
            "{}: {problem}\n(replay with GITPRIO_CRASH_SEED={})",
            self.label, self.seed
        )
    }

    /// The lease record the remote holds for `id`, if any.
    fn lease(&self, id: &str) -> Option<Value> {
        let output = Command::new("git")
            .env_clear()
            .envs(self.env.environment())
            .args(["--git-dir", "remote.git", "log", "-1", "--format=%H%n%B"])
            .arg(format!("refs/gitprio/leases/{id}"))
            .arg("--")
            .current_dir(self.env.path("."))
            .output()
            .unwrap();
        if !output.status.success() {
            return None;
        }
        let text = String::from_utf8(output.stdout).unwrap();
        let (oid, message) = text.split_once('\n').unwrap();
        let json = &message[message.find('{').unwrap()..];
        let mut record: Value = serde_json::from_str(json.trim()).unwrap();
        record["oid"] = Value::String(oid.to_owned());
        Some(record)
    }

    /// The runs of `id` in the usage ledger, read through the reviewer's clone.
    fn runs(&self, id: &str) -> Vec<Value> {
        let show = self.ok("human", &["usage", "show", id, "--json"]);
        show.json()["runs"].as_array().cloned().unwrap_or_default()
    }

    /// Runs `args` in `dir` with the failpoint `failpoint` armed: it must abort there
    /// (SIGABRT), not end any other way.
    fn abort_at(&self, dir: &str, args: &[&str], failpoint: &str) {
        let killed = self
            .command(dir, args, NOW)
            .env("GITPRIO_FAILPOINT", failpoint)
            .output()
            .unwrap();
        if killed.status.signal() != Some(6) {
            self.fail(&format!(
                "it did not abort at {failpoint}:\n{}",
                self.env.normalized(&killed)
            ));
        }
    }

    /// Starts `args` in `dir` in a process group of its own, its output thrown away: a
    /// command to kill with [`Harness::kill`].
    fn spawn(&self, dir: &str, args: &[&str]) -> Child {
        self.command(dir, args, NOW)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap()
    }

    /// Starts `args` in `dir` and kills it after `delay` (see [`Harness::kill`]). Returns
    /// whether it had ended by itself before the kill.
    fn kill_after(&self, dir: &str, args: &[&str], delay: Duration, whole_group: bool) -> bool {
        let child = self.spawn(dir, args);
        std::thread::sleep(delay);
        self.kill(child, whole_group)
    }

    /// Kills `child` (from [`Harness::spawn`]) with SIGKILL, it and, with `whole_group`,
    /// every process it started, as when a whole session dies; then waits until nothing
    /// it started still runs. Returns whether it had ended by itself before the kill.
    fn kill(&self, mut child: Child, whole_group: bool) -> bool {
        let group = child.id();
        let ended = child.try_wait().unwrap().is_some();
        if !ended {
            if whole_group {
                // Not reaped yet, the child is still in its group: the signal reaches it.
                assert!(signal_group(group, "-9"), "{}: kill failed", self.label);
            } else {
                child.kill().unwrap();
            }
        }
        child.wait().unwrap();
        // What the killed process started (a `git push`) goes on alone, as it would after
        // a real crash: the recovery starts once it is over, so that every run is the same.
        let deadline = Instant::now() + Duration::from_secs(20);
        while signal_group(group, "-0") {
            assert!(
                Instant::now() < deadline,
                "{}: children never ended",
                self.label
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        ended
    }

    /// `git fsck` is clean in the remote and in every clone.
    fn assert_fsck_clean(&self) {
        for dir in ["remote.git", "a", "b", "human"] {
            let output = Command::new("git")
                .env_clear()
                .envs(self.env.environment())
                .args(["fsck", "--no-dangling", "--no-progress"])
                .current_dir(self.env.path(dir))
                .output()
                .unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            if !output.status.success() || !text.trim().is_empty() {
                self.fail(&format!("git fsck in {dir}: {text}"));
            }
        }
    }

    /// The invariants every crash must leave, whatever the command: every clone's
    /// `status` works, fsck is clean, a submitted task is never handed out again (even
    /// once every lease expired), and no task has two agents holding it.
    fn assert_invariants(&self) {
        for (dir, _) in CLONES {
            self.ok(dir, &["status"]);
        }
        self.assert_fsck_clean();
        let submitted: Vec<(String, Value)> = ["t1", "t2"]
            .iter()
            .filter_map(|id| self.lease(id).map(|lease| ((*id).to_owned(), lease)))
            .filter(|(_, lease)| lease["state"] == "submitted")
            .collect();
        for (dir, _) in CLONES {
            for (id, before) in &submitted {
                let claim = self.run_at(dir, &["claim", "--json"], LATER);
                if ![0, 3].contains(&claim.code) {
                    self.fail(&format!("a later claim in {dir} failed:\n{claim}"));
                }
                if claim.code == 0 && claim.json()["task"]["id"] == id.as_str() {
                    self.fail(&format!(
                        "the submitted task {id} was handed out again:\n{claim}"
                    ));
                }
                let after = self.lease(id);
                if after.as_ref().map(|lease| &lease["oid"]) != Some(&before["oid"]) {
                    self.fail(&format!("the submitted lease of {id} moved: {after:?}"));
                }
            }
        }
        for id in ["t1", "t2"] {
            // The reviewer never claims: the agents' clones are where two holders could be.
            let holders: Vec<&str> = CLONES[..2]
                .iter()
                .filter(|(dir, _)| self.run_at(dir, &["heartbeat", id], LATER).code == 0)
                .map(|(dir, _)| *dir)
                .collect();
            if holders.len() > 1 {
                self.fail(&format!("{id} is held by {holders:?} at once"));
            }
        }
    }

    /// Asserts the run of `id` at `generation` spent exactly `output` tokens and ended
    /// with `outcome` (`None`: still open).
    fn assert_run(&self, id: &str, generation: u64, output: u64, outcome: Option<&str>) {
        let runs = self.runs(id);
        let Some(run) = runs
            .iter()
            .find(|run| run["meta"]["generation"] == generation)
        else {
            self.fail(&format!(
                "no run of {id} at generation {generation}: {runs:?}"
            ));
        };
        if run["totals"]["output"] != output {
            self.fail(&format!(
                "the run of {id} spent {} output tokens, not {output}: {run}",
                run["totals"]["output"]
            ));
        }
        if run["meta"]["outcome"].as_str() != outcome {
            self.fail(&format!(
                "the run of {id} ended {}, not {outcome:?}: {run}",
                run["meta"]["outcome"]
            ));
        }
        if runs.len() != 1 {
            self.fail(&format!("{id} has {} runs, not one: {runs:?}", runs.len()));
        }
    }

    /// Asserts the remote's lease of `id` is in `state` at `generation`, held by `agent`.
    fn assert_lease(&self, id: &str, state: &str, generation: u64, agent: &str) {
        let lease = self.lease(id);
        let matches = lease.as_ref().is_some_and(|lease| {
            lease["state"] == state
                && lease["generation"] == generation
                && lease["holder"]["agent"] == agent
        });
        if !matches {
            self.fail(&format!(
                "the lease of {id} is not {state} at generation {generation} by {agent}: {lease:?}"
            ));
        }
    }
}

/// `PATH` with `directory` first: where the fake agent CLI is.
fn path_with(directory: &std::path::Path) -> std::ffi::OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(
        std::iter::once(directory.to_path_buf()).chain(std::env::split_paths(&path)),
    )
    .unwrap()
}

/// Sends `signal` (`-9`, or `-0` to ask whether any is left) to every process of
/// `group`; returns whether there was one. The shell's own `kill` (procps's may be missing).
fn signal_group(group: u32, signal: &str) -> bool {
    send(signal, &format!("-{group}"))
}

/// Sends `signal` to `target` (a pid, or minus a process group's id); returns whether
/// there was such a process.
fn send(signal: &str, target: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("kill {signal} {target}")])
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// A command to crash: where it runs, what it is, what it needs first, and the recovery
/// (which also asserts what must hold after it).
struct Case {
    name: &'static str,
    dir: &'static str,
    args: &'static [&'static str],
    prepare: fn(&Harness),
    recover: fn(&Harness),
}

fn seed() -> u64 {
    std::env::var("GITPRIO_CRASH_SEED").map_or(0x5eed_c4a5, |text| text.parse().unwrap())
}

fn kills() -> usize {
    std::env::var("GITPRIO_CRASH_KILLS").map_or(3, |text| text.parse().unwrap())
}

/// Measures `case` uninterrupted, then kills it `kills()` times at moments spread over
/// that duration (one per slice of it, at a seeded place in the slice), recovering and
/// checking after each.
fn exercise(case: &Case) {
    exercise_over(case, Transport::Path);
}

/// Like [`exercise`], the clones reaching the remote by `transport`.
fn exercise_over(case: &Case, transport: Transport) {
    let seed = seed()
        ^ case
            .name
            .bytes()
            .fold(0, |hash, byte| hash * 31 + u64::from(byte));
    let mut random = Random(seed);
    let clean = Harness::new(
        seed,
        format!("{} uninterrupted ({transport:?})", case.name),
        transport,
    );
    (case.prepare)(&clean);
    let started = Instant::now();
    clean.ok(case.dir, case.args);
    let duration = started.elapsed();
    (case.recover)(&clean);
    clean.assert_invariants();
    let kills = kills();
    let mut ended = 0;
    for kill in 0..kills {
        let slice = duration.as_secs_f64() / f64::from(u32::try_from(kills).unwrap());
        let offset = f64::from(u32::try_from(random.below(1000)).unwrap()) / 1000.0;
        let delay =
            Duration::from_secs_f64(slice * (f64::from(u32::try_from(kill).unwrap()) + offset));
        let harness = Harness::new(
            seed,
            format!(
                "{} killed after {delay:?} (kill {kill}, {transport:?})",
                case.name
            ),
            transport,
        );
        (case.prepare)(&harness);
        if harness.kill_after(case.dir, case.args, delay, kill % 2 == 1) {
            ended += 1;
        }
        (case.recover)(&harness);
        harness.assert_invariants();
    }
    assert!(
        ended < kills,
        "{}: every kill came after the command ended ({duration:?})",
        case.name
    );
}

/// Both tasks are claimable: two claims in `b` take them (which goes first is the spread's choice).
fn assert_claimable(harness: &Harness) {
    let claimed: Vec<Value> = (0..2)
        .map(|_| harness.ok("b", &["claim", "--json"]).json()["task"]["id"].clone())
        .collect();
    assert!(claimed.contains(&Value::from("t1")), "{claimed:?}");
}

fn claim_t1(harness: &Harness) {
    let claim = harness.ok("a", &["claim", "--json"]);
    assert_eq!(claim.json()["task"]["id"], "t1", "{claim}");
}

fn record_100(harness: &Harness) {
    harness.ok(
        "a",
        &[
            "usage", "record", "--model", "m", "--output", "100", "--key", "k1",
        ],
    );
}

#[test]
fn a_killed_claim_is_claimed_again_by_the_same_agent_at_the_same_generation() {
    exercise(&Case {
        name: "claim",
        dir: "a",
        args: &["claim", "--json"],
        prepare: |_| {},
        recover: |harness| {
            // Run again, the claim gets t1 back (its killed run landed but was not noted),
            // claims it (the killed run changed nothing), or, when the killed run landed
            // and noted t1, claims the next task.
            let again = harness.ok("a", &["claim", "--json"]);
            let expected = if harness.lease("t2").is_some() {
                "t2"
            } else {
                "t1"
            };
            assert_eq!(again.json()["task"]["id"], expected, "{again}");
            harness.assert_lease("t1", "held", 1, "alice");
            let other = harness.run("b", &["claim", "--json"]);
            if harness
                .lease("t2")
                .is_some_and(|lease| lease["holder"]["agent"] == "alice")
            {
                assert_eq!(other.code, 3, "{other}");
            } else {
                assert_eq!(other.json()["task"]["id"], "t2", "{other}");
            }
        },
    });
}

#[test]
fn a_killed_heartbeat_leaves_the_lease_with_its_holder() {
    exercise(&Case {
        name: "heartbeat",
        dir: "a",
        args: &["heartbeat"],
        prepare: claim_t1,
        recover: |harness| {
            harness.ok("a", &["heartbeat"]);
            harness.assert_lease("t1", "held", 1, "alice");
            let other = harness.ok("b", &["claim", "--json"]);
            assert_eq!(other.json()["task"]["id"], "t2", "{other}");
        },
    });
}

#[test]
fn a_killed_release_is_finished_by_running_it_again_and_records_its_outcome() {
    exercise(&Case {
        name: "release",
        dir: "a",
        args: &["release"],
        prepare: claim_t1,
        recover: |harness| {
            let again = harness.run("a", &["release", "t1"]);
            // A release that landed and was noted leaves nothing to release: said so.
            if again.code != 0 && !again.stderr.contains("holds no lease on `t1`") {
                harness.fail(&format!("release run again: {again}"));
            }
            harness.assert_lease("t1", "released", 1, "alice");
            harness.assert_run("t1", 1, 0, Some("released"));
            assert_claimable(harness);
        },
    });
}

#[test]
fn a_release_killed_after_its_lease_landed_still_records_its_outcome() {
    for (how, args, outcome) in [
        ("released", &["release", "t1"][..], "released"),
        ("failed", &["release", "t1", "--failed"][..], "failed"),
    ] {
        let harness = Harness::new(
            seed(),
            format!("release killed before its outcome ({how})"),
            Transport::Path,
        );
        claim_t1(&harness);
        record_100(&harness);
        // The abort comes after the lease push landed and was noted, before the run's
        // end is written: the window in which the outcome used to be lost.
        harness.abort_at("a", args, "release:before-outcome");
        harness.assert_lease("t1", "released", 1, "alice");
        let again = harness.run("a", args);
        if again.code != 0 && !again.stderr.contains("holds no lease on `t1`") {
            harness.fail(&format!("release run again: {again}"));
        }
        // Reports read an open run's end off its lease, so the check that matters comes
        // once the lease moved on: another agent takes the task (generation 2), and the
        // first run must still read as it ended, not as expired.
        assert_claimable(&harness);
        let runs = harness.runs("t1");
        let first: Vec<&Value> = runs
            .iter()
            .filter(|run| run["meta"]["generation"] == 1)
            .collect();
        if first.len() != 1
            || first[0]["meta"]["outcome"] != outcome
            || first[0]["totals"]["output"] != 100
        {
            harness.fail(&format!("the first run of t1 after the recovery: {runs:?}"));
        }
        harness.assert_invariants();
    }
}

#[test]
fn a_killed_done_is_finished_by_running_it_again_with_usage_exact() {
    exercise(&done_case());
}

#[test]
fn a_killed_done_over_git_daemon_is_finished_by_running_it_again() {
    exercise_over(&done_case(), Transport::Daemon);
}

#[test]
fn a_killed_done_over_smart_http_is_finished_by_running_it_again() {
    exercise_over(&done_case(), Transport::Http);
    assert!(
        http()
            .requests()
            .iter()
            .any(|request| request.path.contains("git-receive-pack") && request.status == 200),
        "no push went over smart HTTP"
    );
}

fn done_case() -> Case {
    Case {
        name: "done",
        dir: "a",
        args: &["done", "t1"],
        prepare: |harness| {
            claim_t1(harness);
            record_100(harness);
        },
        recover: |harness| {
            harness.ok("a", &["done", "t1"]);
            harness.assert_lease("t1", "submitted", 1, "alice");
            harness.assert_run("t1", 1, 100, Some("completed"));
            let file = std::fs::read_to_string(harness.env.path("a/.tasks/t1.md")).unwrap();
            assert!(file.contains("status: done"), "{file}");
        },
    }
}

#[test]
fn a_killed_usage_record_run_again_counts_once() {
    exercise(&Case {
        name: "usage record",
        dir: "a",
        args: &[
            "usage", "record", "--model", "m", "--output", "100", "--key", "k1",
        ],
        prepare: claim_t1,
        recover: |harness| {
            record_100(harness);
            harness.assert_run("t1", 1, 100, None);
        },
    });
}

#[test]
fn a_killed_revoke_run_again_takes_the_lease_away_once() {
    exercise(&Case {
        name: "revoke",
        dir: "human",
        args: &["revoke", "t1", "--reason", "wrong approach"],
        prepare: claim_t1,
        recover: |harness| {
            let again = harness.run("human", &["revoke", "t1", "--reason", "wrong approach"]);
            let lease = harness.lease("t1").unwrap();
            if lease["state"] != "released" || lease["generation"] != 1 {
                harness.fail(&format!("revoke run again: {again}\nlease: {lease}"));
            }
            if again.code != 0 && !again.stderr.contains("nothing to revoke") {
                harness.fail(&format!("revoke run again: {again}"));
            }
            let heartbeat = harness.run("a", &["heartbeat"]);
            assert_eq!(heartbeat.code, 4, "{heartbeat}");
            assert_claimable(harness);
        },
    });
}

#[test]
fn a_killed_unpark_run_again_makes_the_task_claimable() {
    exercise(&Case {
        name: "unpark",
        dir: "human",
        args: &["unpark", "t1"],
        prepare: |harness| {
            claim_t1(harness);
            harness.ok("a", &["release", "--park", "--reason", "stuck"]);
        },
        recover: |harness| {
            let again = harness.run("human", &["unpark", "t1"]);
            let lease = harness.lease("t1").unwrap();
            if lease["state"] != "released"
                || lease["failures"] != 0
                || (again.code != 0 && !again.stderr.contains("is not parked"))
            {
                harness.fail(&format!("unpark run again: {again}\nlease: {lease}"));
            }
            assert_claimable(harness);
        },
    });
}

#[test]
fn a_killed_gc_run_again_deletes_the_done_lease_and_keeps_the_usage() {
    exercise(&Case {
        name: "gc",
        dir: "human",
        args: &["gc"],
        prepare: |harness| {
            claim_t1(harness);
            record_100(harness);
            harness.ok("a", &["done"]);
            harness
                .env
                .git("a", &["commit", "--quiet", "--all", "--message", "t1 done"]);
            harness.env.git("a", &["push", "--quiet", "origin", "main"]);
            harness.env.git("human", &["pull", "--quiet"]);
        },
        recover: |harness| {
            harness.ok("human", &["gc"]);
            if let Some(lease) = harness.lease("t1") {
                harness.fail(&format!("gc run again left the lease of t1: {lease}"));
            }
            harness.assert_run("t1", 1, 100, Some("completed"));
            let next = harness.run("b", &["claim", "--json"]);
            assert_eq!(next.json()["task"]["id"], "t2", "{next}");
        },
    });
}

/// A Claude Code transcript line of one request by the agent in clone `a`, `output` tokens.
fn claude_line(harness: &Harness, message: &str, at: &str, output: u64) -> String {
    let cwd = harness.env.path("a").display().to_string();
    format!(
        r#"{{"parentUuid":null,"isSidechain":false,"userType":"external","cwd":"{cwd}","sessionId":"s-1","version":"2.1.27","gitBranch":"main","message":{{"id":"{message}","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{{"type":"text","text":"x"}}],"usage":{{"input_tokens":1,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":{output}}}}},"requestId":"req-{message}","type":"assistant","uuid":"u-{message}","timestamp":"{at}"}}"#
    )
}

#[test]
fn a_killed_usage_import_run_again_imports_every_request_once() {
    exercise(&Case {
        name: "usage import",
        dir: "a",
        args: &["usage", "import"],
        prepare: |harness| {
            // Claimed ten minutes before the import, which reads the requests since.
            let claim = harness.run_at("a", &["claim", "--json"], "2026-11-02T08:50:00Z");
            assert_eq!(claim.json()["task"]["id"], "t1", "{claim}");
            let projects = harness.env.path("claude/projects/-a");
            std::fs::create_dir_all(&projects).unwrap();
            let lines = [
                claude_line(harness, "m1", "2026-11-02T08:51:00Z", 60),
                claude_line(harness, "m2", "2026-11-02T08:52:00Z", 40),
            ];
            std::fs::write(projects.join("s-1.jsonl"), lines.join("\n") + "\n").unwrap();
        },
        recover: |harness| {
            harness.ok("a", &["usage", "import"]);
            harness.assert_run("t1", 1, 100, None);
        },
    });
}

/// A fake Claude Code that works a while, creates `<task>.txt` and reports 100 output tokens.
const AGENT: &str = r#"cat >/dev/null
sleep 0.2
touch "$GITPRIO_TASK.txt"
cat <<JSON
{"type":"result","subtype":"success","is_error":false,"duration_ms":200,"num_turns":1,"result":"Created $GITPRIO_TASK.txt.","session_id":"s-$GITPRIO_TASK","total_cost_usd":0.01,"usage":{"input_tokens":1,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":100},"permission_denials":[]}
JSON
"#;

/// One task's run by the fake agent.
const RUN: &[&str] = &[
    "run",
    "--max-tasks",
    "1",
    "--",
    "claude",
    "-p",
    "--output-format",
    "json",
];

#[test]
fn a_killed_run_run_again_completes_each_task_once_with_its_usage_once() {
    exercise(&Case {
        name: "run",
        dir: "a",
        args: RUN,
        prepare: |harness| {
            script(&harness.env, "claude", AGENT);
        },
        recover: |harness| {
            let again = harness.run("a", RUN);
            if again.code != 0 {
                harness.fail(&format!("run again: {again}"));
            }
            // The task the killed run claimed is done, by it or by the run again (which
            // gave it back first when the kill came after its claim): never left held to
            // expire. A run again after t1 was done does t2.
            let state = |id| harness.lease(id).map(|lease| lease["state"].clone());
            let submitted = Some(Value::from("submitted"));
            if state("t1") != submitted || state("t2").is_some_and(|t2| Some(t2) != submitted) {
                harness.fail(&format!(
                    "run again left t1 {:?}, t2 {:?}: {again}",
                    state("t1"),
                    state("t2")
                ));
            }
            for id in ["t1", "t2"] {
                let runs = harness.runs(id);
                let completed = runs
                    .iter()
                    .filter(|run| run["meta"]["outcome"] == "completed")
                    .count();
                // The agent reports 100 output tokens once per run: never more.
                let wrong = runs
                    .iter()
                    .any(|run| run["totals"]["output"] != 0 && run["totals"]["output"] != 100);
                if completed != usize::from(state(id).is_some()) || wrong {
                    harness.fail(&format!("the runs of {id} after run again: {runs:?}"));
                }
            }
        },
    });
}

#[test]
fn a_run_killed_mid_attempt_gives_its_task_back_when_run_again_and_does_it() {
    let harness = Harness::new(seed(), "run killed mid-attempt".to_owned(), Transport::Path);
    let started = harness.env.path("started");
    let gate = harness.env.path("gate");
    let pid_file = harness.env.path("agent.pid");
    // The first run's agent says it started (and its pid) and works until stopped; the
    // second one's (the gate is there by then) does the task.
    script(
        &harness.env,
        "claude",
        &format!(
            "[ -e '{}' ] || {{ echo $$ > '{}'; touch '{}'; sleep 30; }}\n{AGENT}",
            gate.display(),
            pid_file.display(),
            started.display()
        ),
    );
    let mut child = harness.spawn("a", RUN);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !started.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before its agent started"
        );
        assert!(Instant::now() < deadline, "the agent never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The run dies (SIGKILL, the OOM killer); its agent, in a group of its own, lives on.
    harness.kill(child, true);
    let agent: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(running(agent), "the agent died with its run");
    harness.assert_lease("t1", "held", 1, "alice");
    std::fs::write(&gate, "").unwrap();
    assert_given_back_and_done(&harness, "the run working on it stopped before it finished");
    // The next run stopped the orphaned agent before it made t1's worktree anew.
    assert!(
        !running(agent),
        "the killed run's agent (pid {agent}) still runs after the next run"
    );
}

/// Whether process `pid` runs: exists and, where `/proc` tells, is not a zombie.
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, fields)| fields.trim_start().starts_with('Z')),
        Err(_) => Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success()),
    }
}

#[test]
fn a_run_killed_between_its_claim_and_its_attempt_gives_the_task_back_when_run_again() {
    let harness = Harness::new(
        seed(),
        "run killed after its claim".to_owned(),
        Transport::Path,
    );
    script(&harness.env, "claude", AGENT);
    // The abort comes after the claim landed and was read, before the attempt takes its
    // live lock: the window in which a killed run used to leave its lease to expire.
    harness.abort_at("a", RUN, "run:after-claim");
    harness.assert_lease("t1", "held", 1, "alice");
    assert_given_back_and_done(
        &harness,
        "the run that claimed it stopped before its attempt started",
    );
}

#[test]
fn a_run_s_claim_killed_before_its_reply_has_its_lease_taken_again_by_the_next_run() {
    let harness = Harness::new(
        seed(),
        "claim killed before its reply".to_owned(),
        Transport::Path,
    );
    script(&harness.env, "claude", AGENT);
    // The run's claim aborts once its lease landed (and was noted here), before its reply
    // reached the run: the run learns nothing of the lease it holds.
    let first = harness
        .command("a", RUN, NOW)
        .env("GITPRIO_FAILPOINT", "claim:before-reply")
        .output()
        .unwrap();
    let first = harness.env.normalized(&first);
    assert_eq!(first.code, 1, "{first}");
    assert!(
        first
            .stdout
            .contains("error: `gitprio claim` failed: killed by signal 6"),
        "{first}"
    );
    harness.assert_lease("t1", "held", 1, "alice");
    let again = harness.run("a", RUN);
    assert_eq!(again.code, 0, "{again}");
    assert!(
        again.stderr.contains(
            "t1: a claim by alice here was killed after it took this lease (generation 1), before it said so: it is yours again"
        ),
        "{again}"
    );
    // The lease is taken back, not left to expire behind the next task.
    harness.assert_lease("t1", "submitted", 1, "alice");
    assert!(harness.lease("t2").is_none(), "{:?}", harness.lease("t2"));
    harness.assert_run("t1", 1, 100, Some("completed"));
    harness.assert_invariants();
}

#[test]
fn a_claim_killed_before_its_reply_is_claimed_again_by_the_same_agent() {
    let harness = Harness::new(
        seed(),
        "claim killed before its reply".to_owned(),
        Transport::Path,
    );
    harness.abort_at("a", &["claim", "--json"], "claim:before-reply");
    harness.assert_lease("t1", "held", 1, "alice");
    // Another agent's claim in that clone takes another task.
    let other = harness
        .command("a", &["claim", "--json"], NOW)
        .env("GITPRIO_AGENT", "carol")
        .output()
        .unwrap();
    let other = harness.env.normalized(&other);
    assert_eq!(other.json()["task"]["id"], "t2", "{other}");
    let again = harness.ok("a", &["claim", "--json"]);
    assert_eq!(again.json()["task"]["id"], "t1", "{again}");
    assert_eq!(again.json()["lease"]["generation"], 1, "{again}");
    // Once said, it is not handed out twice.
    let third = harness.run("a", &["claim", "--json"]);
    assert_eq!(third.code, 3, "{third}");
    harness.assert_lease("t1", "held", 1, "alice");
}

#[test]
fn a_run_killed_between_its_commit_and_its_push_has_the_branch_pushed_when_run_again() {
    let harness = Harness::new(
        seed(),
        "run killed after its commit".to_owned(),
        Transport::Path,
    );
    script(&harness.env, "claude", AGENT);
    // The abort comes once t1 is submitted and its branch committed, before the push: a
    // clean worktree, which the recovery used to pass over, the task never handed out
    // again and its work never pushed.
    harness.abort_at("a", RUN, "run:after-commit");
    harness.assert_lease("t1", "submitted", 1, "alice");
    assert_eq!(remote_branch(&harness, "t1"), "", "pushed before the abort");
    let again = harness.run("a", RUN);
    assert_eq!(again.code, 0, "{again}");
    assert_pushed_when_run_again(&harness, &again);
}

#[test]
fn a_push_of_a_done_branch_that_failed_is_made_by_the_next_run() {
    let harness = Harness::new(
        seed(),
        "push refused for a moment".to_owned(),
        Transport::Path,
    );
    script(&harness.env, "claude", AGENT);
    // The remote refuses task branches while `refuse` exists (leases and the ledger go
    // through): a push that fails for a moment, as when the network drops.
    let refuse = harness.env.path("refuse");
    std::fs::write(&refuse, "").unwrap();
    let hook = harness.env.path("remote.git/hooks/pre-receive");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nwhile read old new ref; do\n  case \"$ref\" in refs/heads/gitprio/*) [ -e '{}' ] && {{ echo 'refused for a moment' >&2; exit 1; }};; esac\ndone\nexit 0\n",
            refuse.display()
        ),
    )
    .unwrap();
    let first = harness.run("a", RUN);
    assert_eq!(first.code, 0, "{first}");
    assert!(
        first.stderr.contains("cannot push gitprio/t1 to origin: ")
            && first
                .stderr
                .contains("the next `gitprio run` here pushes it again"),
        "{first}"
    );
    harness.assert_lease("t1", "submitted", 1, "alice");
    assert!(
        harness.env.path("a-gitprio-worktrees/t1").exists(),
        "the unpushed worktree was removed: {first}"
    );
    std::fs::remove_file(&refuse).unwrap();
    let again = harness.run("a", RUN);
    assert_eq!(again.code, 0, "{again}");
    assert_pushed_when_run_again(&harness, &again);
}

#[test]
fn a_task_tried_again_keeps_what_the_earlier_attempt_left_in_its_worktree() {
    let harness = Harness::new(seed(), "task tried again".to_owned(), Transport::Path);
    let tried = harness.env.path("tried");
    // The first attempt works (a commit of its own, an untracked file, a change to a
    // tracked one) and fails; the second does the task.
    script(
        &harness.env,
        "claude",
        &format!(
            "[ -e '{tried}' ] || {{ touch '{tried}'; cat >/dev/null; echo kept > committed.txt; git add committed.txt; git commit --quiet -m wip; echo draft > untracked.txt; echo edited >> .tasks/t2.md; exit 1; }}\n{AGENT}",
            tried = tried.display()
        ),
    );
    let run = harness.run("a", &[&["run", "--max-tasks", "2"][..], &RUN[3..]].concat());
    assert_eq!(run.code, 0, "{run}");
    harness.assert_lease("t1", "submitted", 2, "alice");
    let reference = "refs/gitprio/attempts/t1/1";
    assert!(
        run.stderr.contains(&format!(
            "warning: t1: what the earlier attempt left in $ROOT/a-gitprio-worktrees/t1 is kept at {reference}"
        )),
        "{run}"
    );
    let show = |path: &str| {
        harness
            .env
            .git("a", &["show", &format!("{reference}:{path}")])
    };
    assert_eq!(show("committed.txt"), "kept\n");
    assert_eq!(show("untracked.txt"), "draft\n");
    assert!(show(".tasks/t2.md").ends_with("edited\n"));
    // The second attempt started afresh: none of it is on the branch it pushed.
    let pushed = harness
        .env
        .git("remote.git", &["ls-tree", "--name-only", "gitprio/t1"]);
    assert!(
        pushed.contains("t1.txt")
            && !pushed.contains("untracked.txt")
            && !pushed.contains("committed.txt"),
        "{pushed}"
    );
}

#[test]
fn done_again_after_run_submitted_the_task_says_so_and_changes_nothing() {
    let harness = Harness::new(seed(), "done after run".to_owned(), Transport::Path);
    script(&harness.env, "claude", AGENT);
    harness.ok("a", RUN);
    harness.assert_lease("t1", "submitted", 1, "alice");
    let before = harness.lease("t1").unwrap();
    let file = harness.env.path("a/.tasks/t1.md");
    let text = std::fs::read_to_string(&file).unwrap();
    // By mistake, in the clone the run worked from: with the id, and without (the one
    // task this clone submitted).
    for args in [&["done", "t1"][..], &["done"][..]] {
        let again = harness.run("a", args);
        assert_eq!(again.code, 0, "{again}");
        assert!(
            again
                .stderr
                .contains("info: t1 is already submitted (generation 1): nothing to do"),
            "{again}"
        );
        assert!(!again.stderr.contains("submitted t1"), "{again}");
    }
    let json = harness.ok("a", &["done", "t1", "--json"]).json();
    assert_eq!(json["completed"], true, "{json}");
    assert_eq!(json["lease"]["generation"], 1, "{json}");
    // No second submission, no second completed run, the clone's task file untouched.
    assert_eq!(harness.lease("t1").unwrap()["oid"], before["oid"]);
    let runs = harness.runs("t1");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    harness.assert_invariants();
}

#[test]
fn a_lock_a_killed_fetch_left_on_a_lease_mirror_does_not_stop_the_next_command() {
    let harness = Harness::new(seed(), "stale mirror lock".to_owned(), Transport::Path);
    harness.ok("b", &["status"]);
    claim_t1(&harness);
    // What a `git fetch` killed while it updated a mirror leaves (it dies of SIGPIPE when
    // the gitprio command that ran it is killed): the mirror's lock, for good.
    let lock = harness
        .env
        .path("b/.git/refs/gitprio/remotes/origin/leases/t1.lock");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::fs::write(&lock, "").unwrap();
    let claim = harness.ok("b", &["claim", "--json"]);
    assert_eq!(claim.json()["task"]["id"], "t2", "{claim}");
    assert!(!lock.exists());
    harness.assert_invariants();
}

/// Gives t1 an acceptance command that counts its runs (in `count`, beside the clones), on
/// the queue's branch.
fn count_acceptance_runs(harness: &Harness) {
    let count = harness.env.path("count");
    std::fs::write(
        harness.env.path("a/.tasks/t1.md"),
        format!(
            "---\ntitle: Task one\npriority: 1\nacceptance: [\"echo ran >> '{}'\"]\n---\nDo Task one.\n",
            count.display()
        ),
    )
    .unwrap();
    harness.env.git(
        "a",
        &["commit", "--quiet", "-am", "t1: count acceptance runs"],
    );
    harness.env.git("a", &["push", "--quiet", "origin", "main"]);
}

/// How many times t1's acceptance command ran.
fn acceptance_runs(harness: &Harness) -> usize {
    std::fs::read_to_string(harness.env.path("count")).map_or(0, |text| text.lines().count())
}

#[test]
fn done_run_again_on_the_tree_its_acceptance_passed_on_does_not_run_it_again() {
    let harness = Harness::new(seed(), "acceptance once".to_owned(), Transport::Path);
    count_acceptance_runs(&harness);
    claim_t1(&harness);
    // Killed once its acceptance passed and its submission landed, before the task file's edit.
    harness.abort_at("a", &["done", "t1"], "done:before-edit");
    assert_eq!(acceptance_runs(&harness), 1);
    harness.assert_lease("t1", "submitted", 1, "alice");
    let again = harness.ok("a", &["done", "t1", "--json"]);
    assert_eq!(acceptance_runs(&harness), 1, "{again}");
    assert!(
        again
            .stderr
            .contains("info: t1: the acceptance commands passed on this very tree (")
            && again
                .stderr
                .contains(") in an earlier `done` of this attempt: not run again"),
        "{again}"
    );
    let json = again.json();
    assert_eq!(json["completed"], true, "{again}");
    assert_eq!(json["acceptance"][0]["passed"], true, "{again}");
    let task = std::fs::read_to_string(harness.env.path("a/.tasks/t1.md")).unwrap();
    assert!(task.contains("status: done"), "{task}");
    harness.assert_lease("t1", "submitted", 1, "alice");
    harness.assert_invariants();
}

#[test]
fn a_run_whose_done_is_killed_runs_the_acceptance_once_and_pushes_the_work_when_run_again() {
    let harness = Harness::new(seed(), "run's done killed".to_owned(), Transport::Path);
    count_acceptance_runs(&harness);
    script(&harness.env, "claude", AGENT);
    // Each `done` of this run is killed once its submission landed: the run runs it again
    // at once (killed again), then the next run finishes the submission.
    let first = harness
        .command("a", RUN, NOW)
        .env("GITPRIO_FAILPOINT", "done:before-edit")
        .output()
        .unwrap();
    let first = harness.env.normalized(&first);
    assert_eq!(acceptance_runs(&harness), 1, "{first}");
    assert!(
        first
            .stderr
            .contains("info: t1: the acceptance commands passed on this very tree ("),
        "{first}"
    );
    harness.assert_lease("t1", "submitted", 1, "alice");
    let again = harness.run("a", RUN);
    assert_eq!(again.code, 0, "{again}");
    assert_eq!(acceptance_runs(&harness), 1, "{again}");
    assert_pushed_when_run_again(&harness, &again);
}

#[test]
fn done_run_again_on_a_changed_tree_runs_its_acceptance_again() {
    let harness = Harness::new(seed(), "acceptance again".to_owned(), Transport::Path);
    count_acceptance_runs(&harness);
    claim_t1(&harness);
    // Killed once its acceptance passed, before its submission.
    harness.abort_at("a", &["done", "t1"], "submit:before-cas");
    assert_eq!(acceptance_runs(&harness), 1);
    harness.assert_lease("t1", "held", 1, "alice");
    std::fs::write(harness.env.path("a/more.txt"), "more work\n").unwrap();
    let again = harness.ok("a", &["done", "t1"]);
    assert_eq!(acceptance_runs(&harness), 2, "{again}");
    assert!(!again.stderr.contains("not run again"), "{again}");
    harness.assert_lease("t1", "submitted", 1, "alice");
    harness.assert_invariants();
}

/// The commit the remote's `gitprio/<id>` branch holds, empty when there is none.
fn remote_branch(harness: &Harness, id: &str) -> String {
    harness
        .env
        .git(
            "remote.git",
            &[
                "for-each-ref",
                "--format=%(objectname)",
                &format!("refs/heads/gitprio/{id}"),
            ],
        )
        .trim()
        .to_owned()
}

/// After a run again (`again`) that found t1 submitted and its branch not pushed: it said
/// so and pushed the branch, with the agent's work and `status: done`, and removed the
/// worktree; then it did t2 as usual.
fn assert_pushed_when_run_again(harness: &Harness, again: &Output) {
    assert!(
        again.stderr.contains(
            "alice: t1 was submitted by an earlier run that did not push its work; committed on gitprio/t1, pushed to origin"
        ),
        "{again}"
    );
    assert_ne!(remote_branch(harness, "t1"), "", "{again}");
    harness
        .env
        .git("remote.git", &["cat-file", "-e", "gitprio/t1:t1.txt"]);
    let task = harness
        .env
        .git("remote.git", &["show", "gitprio/t1:.tasks/t1.md"]);
    assert!(task.contains("status: done"), "{task}");
    assert!(
        !harness.env.path("a-gitprio-worktrees/t1").exists(),
        "{again}"
    );
    harness.assert_lease("t1", "submitted", 1, "alice");
    harness.assert_lease("t2", "submitted", 1, "alice");
    harness.assert_invariants();
}

/// Runs [`RUN`] again after a run was killed holding t1 (generation 1): it must say it
/// gave t1 back (`why`), then claim and do t1 itself, not t2.
fn assert_given_back_and_done(harness: &Harness, why: &str) {
    let again = harness.run("a", RUN);
    assert_eq!(again.code, 0, "{again}");
    assert!(
        again
            .stderr
            .contains(&format!("alice: released t1 (generation 1): {why}")),
        "{again}"
    );
    // The task the killed run held is the one done, not left to expire behind the next.
    harness.assert_lease("t1", "submitted", 2, "alice");
    assert!(harness.lease("t2").is_none(), "{:?}", harness.lease("t2"));
    let runs = harness.runs("t1");
    let outcomes: Vec<(&Value, &Value)> = runs
        .iter()
        .map(|run| (&run["meta"]["generation"], &run["meta"]["outcome"]))
        .collect();
    assert_eq!(
        outcomes,
        [
            (&Value::from(1), &Value::from("released")),
            (&Value::from(2), &Value::from("completed"))
        ],
        "{runs:?}"
    );
    harness.assert_invariants();
}

/// The `git fetch`, `git push` and `git ls-remote` processes a command ran, from its
/// `GIT_TRACE`: each is one exchange with the remote (over smart HTTP, a few requests).
fn transfers(trace: &std::path::Path) -> (usize, usize, usize) {
    let text = std::fs::read_to_string(trace).unwrap();
    let count = |what: &str| {
        text.lines()
            .filter(|line| line.contains(&format!("built-in: git {what} ")))
            .count()
    };
    (count("fetch"), count("push"), count("ls-remote"))
}

#[test]
fn done_submits_and_records_the_run_s_end_in_one_fetch_and_one_push() {
    for transport in [Transport::Path, Transport::Daemon, Transport::Http] {
        done_in_one_fetch_and_one_push(transport);
    }
}

fn done_in_one_fetch_and_one_push(transport: Transport) {
    let harness = Harness::new(seed(), format!("round trips ({transport:?})"), transport);
    claim_t1(&harness);
    record_100(&harness);
    let trace = harness.env.path("trace.txt");
    let output = harness
        .command("a", &["done", "t1"], NOW)
        .env("GIT_TRACE", &trace)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        harness.env.normalized(&output)
    );
    // Before: the lease push, then a fetch and a push of the usage ledger. No transport
    // adds an exchange (an `ls-remote` to ask the remote first).
    assert_eq!(
        transfers(&trace),
        (1, 1, 0),
        "{transport:?}: {}",
        std::fs::read_to_string(&trace).unwrap()
    );
    harness.assert_lease("t1", "submitted", 1, "alice");
    harness.assert_run("t1", 1, 100, Some("completed"));
    harness.assert_invariants();
}

#[test]
fn done_whose_ledger_moved_after_its_fetch_submits_alone_then_records_the_end() {
    let harness = Harness::new(seed(), "ledger moved".to_owned(), Transport::Path);
    claim_t1(&harness);
    record_100(&harness);
    // Between done's fetch of the ledger and its push, another writer moves the ledger
    // (once): the remote's hook does it as the push arrives.
    let hook = harness.env.path("remote.git/hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\ncat >/dev/null\n[ -e moved ] && exit 0\ntouch moved\n\
         unset GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES\n\
         tip=$(git rev-parse refs/gitprio/usage/t1)\n\
         git update-ref refs/gitprio/usage/t1 $(git commit-tree -p $tip -m moved $tip^{tree}) $tip\n",
    )
    .unwrap();
    let done = harness.run("a", &["done", "t1"]);
    assert_eq!(done.code, 0, "{done}");
    let history = harness.env.git(
        "remote.git",
        &["log", "--format=%s", "refs/gitprio/usage/t1"],
    );
    assert!(history.lines().any(|line| line == "moved"), "{history}");
    harness.assert_lease("t1", "submitted", 1, "alice");
    harness.assert_run("t1", 1, 100, Some("completed"));
    harness.assert_invariants();
}

/// The file of task `A` whose one acceptance command is `acceptance` (no double quotes).
fn task_accepted_by(acceptance: &str) -> String {
    format!("---\ntitle: A\npriority: 1\nacceptance: [\"{acceptance}\"]\n---\nDo A.\n")
}

/// Task `a`, whose acceptance command outlasts a lease of 3 s (with no clock skew allowed),
/// then has agent `thief` try to claim in `thief_dir` (its reply in `thief.json`), then
/// checks the agent's file.
fn outlasting_acceptance(
    env: &crate::common::TestEnv,
    thief_dir: &str,
    local: bool,
) -> Vec<(String, String)> {
    let acceptance = format!(
        "sleep 5; (cd '{}' && GITPRIO_AGENT=thief '{}' claim --json{}) > '{}'; test -f a.txt",
        env.path(thief_dir).display(),
        env!("CARGO_BIN_EXE_gitprio"),
        if local { " --local" } else { "" },
        env.path("thief.json").display()
    );
    vec![
        (".tasks/a.md".to_owned(), task_accepted_by(&acceptance)),
        (
            ".tasks/config.yaml".to_owned(),
            "clock_skew: 0s\n".to_owned(),
        ),
    ]
}

/// Runs `gitprio run --ttl 3s` in `dir` on `a` (see [`outlasting_acceptance`]) with an agent
/// that does it: `done` keeps the lease renewed while the acceptance command runs, so the
/// thief finds nothing to claim and the run completes `a`.
fn assert_renewed_while_accepting(env: &crate::common::TestEnv, dir: &str, store: &[&str]) {
    let agent = script(env, "agent", "cat > /dev/null\ntouch a.txt\n");
    let mut arguments = vec![
        "run",
        "--json",
        "--no-push",
        "--ttl",
        "3s",
        "--max-tasks",
        "1",
    ];
    arguments.extend_from_slice(store);
    arguments.extend(["--", &agent]);
    let run = env.run(dir, &arguments);
    let thief = std::fs::read_to_string(env.path("thief.json")).unwrap();
    let thief: Value = serde_json::from_str(&thief).unwrap();
    assert!(
        thief["task"].is_null(),
        "the thief claimed a lapsed lease: {thief}\n{run}"
    );
    assert_eq!(thief["reason"], "all_held", "{thief}");
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.json()["completed"], 1, "{run}");
    let mut status = vec!["status", "--json"];
    status.extend_from_slice(store);
    let status = env.run(dir, &status);
    let lease = &status.json()["leases"][0];
    assert_eq!(lease["state"], "submitted", "{status}");
    // The submission is dated no earlier than the last renewal (its expiry less the TTL).
    let at = |key: &str| {
        lease[key]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
    };
    assert!(
        at("renewed_at") + jiff::SignedDuration::from_secs(1)
            >= at("expires_at") - jiff::SignedDuration::from_secs(3),
        "the submission is dated before the renewals it follows: {lease}"
    );
}

#[test]
fn done_renews_the_lease_while_long_acceptance_commands_run_in_local_mode() {
    let env = crate::common::TestEnv::new();
    let files = outlasting_acceptance(&env, "repo", true);
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(path, text)| (path.as_str(), text.as_str()))
        .collect();
    env.repo("repo", &files);
    assert_renewed_while_accepting(&env, "repo", &["--local"]);
}

#[test]
fn done_renews_the_lease_while_long_acceptance_commands_run_against_a_remote() {
    let env = crate::common::TestEnv::new();
    remote_with_clones(&env, &outlasting_acceptance(&env, "b", false), &["a", "b"]);
    assert_renewed_while_accepting(&env, "a", &[]);
}

/// Whether the process `pid` (a number a test's script wrote into a file) still runs.
fn still_running(pid: &str) -> bool {
    send("-0", pid)
}

/// The pid a script wrote into `path`, once it has.
fn pid_in(path: &std::path::Path) -> String {
    crate::common::wait_until("the pid file", Duration::from_secs(60), || {
        std::fs::read_to_string(path).is_ok_and(|text| text.trim().parse::<u32>().is_ok())
    });
    std::fs::read_to_string(path).unwrap().trim().to_owned()
}

/// Sends Ctrl-C twice to `child`, the second after the first was taken in.
fn interrupt_twice(child: &Child) {
    crate::common::interrupt(child);
    std::thread::sleep(Duration::from_millis(500));
    crate::common::interrupt(child);
}

#[test]
fn a_second_ctrl_c_kills_the_agent_while_a_renewal_hangs_on_the_remote() {
    let env = crate::common::TestEnv::new();
    remote_with_clones(
        &env,
        &[(".tasks/a.md".to_owned(), task("A", 1, &[]))],
        &["a"],
    );
    let origin = env
        .git("a", &["remote", "get-url", "origin"])
        .trim()
        .to_owned();
    let silent = crate::fleet::SilentRemote::start();
    let pid = env.path("agent.pid");
    // Ignores SIGTERM; sends the run's next renewal to a remote that never answers.
    let agent = script(
        &env,
        "agent",
        &format!(
            "trap '' TERM\ncat > /dev/null\ngit remote set-url origin '{}'\necho $$ > '{}'\nexec sleep 600\n",
            silent.url(),
            pid.display()
        ),
    );
    let child = env.spawn(
        "a",
        &[
            "run",
            "--json",
            "--no-push",
            "--ttl",
            "3s",
            "--grace",
            "600s",
            "--",
            &agent,
        ],
    );
    let agent_pid = pid_in(&pid);
    crate::common::wait_until(
        "a renewal hanging on the remote",
        Duration::from_secs(60),
        || silent.connections() > 0,
    );
    // What comes after the kill (the task given back) reaches the remote again.
    env.git("a", &["remote", "set-url", "origin", &origin]);
    interrupt_twice(&child);
    // The renewal hangs for minutes (`remote_timeout`, twice): the agent is killed long before.
    crate::common::wait_until("the agent killed", Duration::from_secs(20), || {
        !still_running(&agent_pid)
    });
    let output =
        env.normalized(&crate::common::Running(Some(child)).finish_within(Duration::from_secs(90)));
    assert_eq!(output.code, 130, "{output}");
    let status = env.run("a", &["status", "--json"]);
    assert_eq!(status.json()["leases"][0]["state"], "released", "{status}");
}

#[test]
fn a_second_ctrl_c_stops_done_s_acceptance_commands_and_gives_the_task_back() {
    let env = crate::common::TestEnv::new();
    let (started, pid) = (env.path("started"), env.path("acceptance.pid"));
    let acceptance = format!(
        "echo run >> '{}'; sleep 600 & echo $! > '{}'; wait",
        started.display(),
        pid.display()
    );
    env.repo("repo", &[(".tasks/a.md", &task_accepted_by(&acceptance))]);
    let agent = script(&env, "agent", "cat > /dev/null\ntouch a.txt\n");
    let child = env.spawn("repo", &["run", "--local", "--json", "--", &agent]);
    let sleep = pid_in(&pid);
    interrupt_twice(&child);
    let output =
        env.normalized(&crate::common::Running(Some(child)).finish_within(Duration::from_secs(60)));
    assert_eq!(output.code, 130, "{output}");
    assert_eq!(output.json()["released"], 1, "{output}");
    let status = env.run("repo", &["status", "--json", "--local"]);
    let lease = &status.json()["leases"][0];
    assert_eq!(lease["state"], "released", "{status}");
    assert_eq!(lease["failures"], 0, "{status}");
    // Not run again from scratch after the kill.
    assert_eq!(std::fs::read_to_string(&started).unwrap(), "run\n");
    crate::common::wait_until(
        "the acceptance command stopped",
        Duration::from_secs(20),
        || !still_running(&sleep),
    );
}

#[test]
fn a_claim_that_lands_after_ctrl_c_gives_its_task_back_without_starting_an_agent() {
    let env = crate::common::TestEnv::new();
    remote_with_clones(
        &env,
        &[(".tasks/a.md".to_owned(), task("A", 1, &[]))],
        &["a"],
    );
    let (entered, go) = (env.path("entered"), env.path("go"));
    // Every push waits for the test: the claim's is under way when Ctrl-C comes.
    let hook = env.path("remote.git/hooks/pre-receive");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\ncat >/dev/null\ntouch '{}'\nwhile [ ! -e '{}' ]; do sleep 0.05; done\n",
            entered.display(),
            go.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let agent = script(&env, "agent", "cat > /dev/null\nsleep 30\n");
    let child = env.spawn("a", &["run", "--json", "--no-push", "--", &agent]);
    crate::common::wait_until("the claim's push", Duration::from_secs(60), || {
        entered.exists()
    });
    crate::common::interrupt(&child);
    std::fs::write(&go, "").unwrap();
    let output =
        env.normalized(&crate::common::Running(Some(child)).finish_within(Duration::from_secs(60)));
    assert_eq!(output.code, 130, "{output}");
    assert!(!output.stderr.contains("working on a"), "{output}");
    assert!(
        output
            .stderr
            .contains("released a (interrupted: gitprio run was stopped)"),
        "{output}"
    );
    assert!(!env.path("a-gitprio-worktrees/a").exists(), "{output}");
    let status = env.run("a", &["status", "--json"]);
    let lease = &status.json()["leases"][0];
    assert_eq!(lease["state"], "released", "{status}");
    assert_eq!(lease["failures"], 0, "{status}");
}

#[test]
fn a_run_killed_while_its_done_runs_the_acceptance_leaves_the_task_to_that_done() {
    let env = crate::common::TestEnv::new();
    let (started, go) = (env.path("started"), env.path("go"));
    // The first acceptance run waits for the test; any later one passes at once.
    let acceptance = format!(
        "if [ ! -e '{0}' ]; then touch '{0}'; while [ ! -e '{1}' ]; do sleep 0.05; done; fi",
        started.display(),
        go.display()
    );
    env.repo("repo", &[(".tasks/a.md", &task_accepted_by(&acceptance))]);
    let runs = env.path("agent-runs");
    let agent = script(
        &env,
        "agent",
        &format!(
            "cat > /dev/null\necho run >> '{}'\ntouch a.txt\n",
            runs.display()
        ),
    );
    let arguments = ["run", "--local", "--json", "--", &agent];
    let mut first = env.spawn("repo", &arguments);
    crate::common::wait_until("the acceptance command", Duration::from_secs(60), || {
        started.exists()
    });
    // The run alone dies (kill -9); its `done`, in a process group of its own, goes on.
    first.kill().unwrap();
    first.wait().unwrap();
    let second = env.run("repo", &arguments);
    std::fs::write(&go, "").unwrap();
    assert_eq!(second.code, 0, "{second}");
    assert!(!second.stderr.contains("released a"), "{second}");
    assert_eq!(std::fs::read_to_string(&runs).unwrap(), "run\n", "{second}");
    crate::common::wait_until(
        "the first done's submission",
        Duration::from_secs(60),
        || {
            let status = env.run("repo", &["status", "--json", "--local"]);
            status.json()["leases"][0]["state"] == "submitted"
        },
    );
    let status = env.run("repo", &["status", "--json", "--local"]);
    assert_eq!(status.json()["leases"][0]["generation"], 1, "{status}");
}
