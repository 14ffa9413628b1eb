//! Leases through real remotes: file://, git:// and smart HTTP, racing processes, expiry, crashes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::assert_output;
use crate::common::{Output, TestEnv};
use crate::servers::{GitDaemon, HttpGit};

const T0: &str = "2026-11-01T12:00:00Z";

/// A task file with `priority` and optional dependencies.
pub fn task(title: &str, priority: u8, depends_on: &[&str]) -> String {
    let deps = if depends_on.is_empty() {
        String::new()
    } else {
        format!("depends_on: [{}]\n", depends_on.join(", "))
    };
    format!("---\ntitle: {title}\npriority: {priority}\n{deps}---\nDo {title}.\n")
}

/// A bare `remote.git` under `env` holding `files` on `main`, and one clone per name in `clones`.
pub fn remote_with_clones(env: &TestEnv, files: &[(String, String)], clones: &[&str]) {
    std::fs::create_dir_all(env.path("remote.git")).unwrap();
    env.git(
        "remote.git",
        &["init", "--quiet", "--bare", "--initial-branch=main"],
    );
    let borrowed: Vec<(&str, &str)> = files
        .iter()
        .map(|(path, content)| (path.as_str(), content.as_str()))
        .collect();
    env.repo("seed", &borrowed);
    env.git("seed", &["push", "--quiet", "../remote.git", "main"]);
    for clone in clones {
        env.git(".", &["clone", "--quiet", "remote.git", clone]);
    }
}

fn queue(count: usize) -> Vec<(String, String)> {
    (0..count)
        .map(|index| {
            (
                format!(".tasks/t{index:03}.md"),
                task(
                    &format!("task {index}"),
                    u8::try_from(index % 5).unwrap(),
                    &[],
                ),
            )
        })
        .collect()
}

/// Runs `gitprio` as agent `agent` at time `now`.
fn as_agent(env: &TestEnv, dir: &str, agent: &str, now: &str, args: &[&str]) -> Output {
    env.run_with(dir, args, &[("GITPRIO_AGENT", agent), ("GITPRIO_NOW", now)])
}

fn claimed_id(output: &Output) -> String {
    assert_eq!(output.code, 0, "claim failed: {output}");
    output.json()["task"]["id"].as_str().unwrap().to_owned()
}

#[test]
fn claim_heartbeat_done_and_status_over_a_file_remote() {
    let env = TestEnv::new();
    let files = vec![
        (".tasks/alpha.md".to_owned(), task("Alpha", 0, &[])),
        (".tasks/beta.md".to_owned(), task("Beta", 1, &[])),
        (".tasks/gamma.md".to_owned(), task("Gamma", 2, &["alpha"])),
    ];
    remote_with_clones(&env, &files, &["a", "b", "c"]);

    let first = as_agent(&env, "a", "alice", T0, &["claim", "--json"]);
    assert_eq!(claimed_id(&first), "alpha");
    let lease = &first.json()["lease"];
    assert_eq!(lease["ref"], "refs/gitprio/leases/alpha");
    assert_eq!(lease["generation"], 1);
    assert_eq!(lease["expires_at"], "2026-11-01T12:30:00Z");
    assert_eq!(lease["store"], "origin");
    assert!(
        first.json()["task"]["body"]
            .as_str()
            .unwrap()
            .contains("Do Alpha.")
    );

    // The lease is on the remote, so another clone cannot take alpha.
    let remote_refs = env.git("remote.git", &["for-each-ref", "refs/gitprio/"]);
    assert!(
        remote_refs.contains("refs/gitprio/leases/alpha"),
        "{remote_refs}"
    );
    let second = as_agent(&env, "b", "bob", T0, &["claim", "--json"]);
    assert_eq!(claimed_id(&second), "beta");
    let third = as_agent(&env, "c", "carol", T0, &["claim", "--json"]);
    assert_eq!(third.code, 3, "{third}");
    assert_eq!(third.json()["task"], serde_json::Value::Null);
    assert_eq!(third.json()["reason"], "all_blocked");

    let renewed = as_agent(&env, "a", "alice", "2026-11-01T12:20:00Z", &["heartbeat"]);
    assert_output!(renewed);
    assert_output!(as_agent(
        &env,
        "c",
        "carol",
        "2026-11-01T12:21:00Z",
        &["status"]
    ));

    let done = as_agent(
        &env,
        "a",
        "alice",
        "2026-11-01T12:25:00Z",
        &["done", "alpha"],
    );
    assert_output!(done);
    let text = std::fs::read_to_string(env.path("a/.tasks/alpha.md")).unwrap();
    assert!(text.contains("status: done\n"), "{text}");
    // Submitted work is not handed out again while its change lands. Reading commands
    // use the leases last fetched (`status`, `claim` and `gc` fetch).
    assert_eq!(as_agent(&env, "c", "carol", T0, &["status"]).code, 0);
    let list = as_agent(&env, "c", "carol", "2026-11-01T13:30:00Z", &["list"]);
    assert!(list.stdout.contains("submitted by alice"), "{list}");
    // The history of the task is the lease ref's log.
    let log = env.git(
        "remote.git",
        &["log", "--format=%s", "refs/gitprio/leases/alpha"],
    );
    assert_eq!(
        log,
        "gitprio lease: submit alpha by alice (generation 1, attempt 1)\n\
         gitprio lease: renew alpha by alice (generation 1, attempt 1)\n\
         gitprio lease: claim alpha by alice (generation 1, attempt 1)\n"
    );

    // Once the done status lands on the queue's branch, gc deletes the lease.
    env.git("a", &["commit", "--quiet", "-am", "alpha done"]);
    env.git("a", &["push", "--quiet", "origin", "main"]);
    let gc = as_agent(
        &env,
        "c",
        "carol",
        "2026-11-01T12:26:00Z",
        &["gc", "--json"],
    );
    assert_eq!(gc.json()["deleted"], serde_json::json!(["alpha"]), "{gc}");
    let gamma = as_agent(
        &env,
        "c",
        "carol",
        "2026-11-01T12:26:00Z",
        &["claim", "--json"],
    );
    assert_eq!(claimed_id(&gamma), "gamma");
}

#[test]
fn an_expired_lease_is_reclaimed_and_fences_the_old_holder() {
    let env = TestEnv::new();
    let files = vec![(".tasks/only.md".to_owned(), task("Only", 0, &[]))];
    remote_with_clones(&env, &files, &["a", "b"]);
    let first = as_agent(&env, "a", "alice", T0, &["claim", "--json", "--ttl", "10m"]);
    assert_eq!(claimed_id(&first), "only");

    // Before expiry, and within the one minute allowed for clock skew, it stays held.
    for now in ["2026-11-01T12:05:00Z", "2026-11-01T12:10:59Z"] {
        let early = as_agent(&env, "b", "bob", now, &["claim", "--json"]);
        assert_eq!(early.code, 3, "{early}");
        assert_eq!(early.json()["reason"], "all_held");
    }
    let reclaim = as_agent(
        &env,
        "b",
        "bob",
        "2026-11-01T12:11:01Z",
        &["claim", "--json"],
    );
    assert_eq!(claimed_id(&reclaim), "only");
    let lease = &reclaim.json()["lease"];
    assert_eq!(lease["generation"], 2);
    assert_eq!(lease["attempt"], 2);
    assert_eq!(lease["failures"], 1);
    assert!(
        lease["last_error"]
            .as_str()
            .unwrap()
            .contains("alice stopped renewing"),
        "{reclaim}"
    );

    // The old holder is fenced off: its done fails with exit 4 and writes nothing.
    let late = as_agent(
        &env,
        "a",
        "alice",
        "2026-11-01T12:12:00Z",
        &["done", "only"],
    );
    assert_eq!(late.code, 4, "{late}");
    assert!(late.stderr.contains("lease lost on `only`"), "{late}");
    let text = std::fs::read_to_string(env.path("a/.tasks/only.md")).unwrap();
    assert!(!text.contains("status: done"));
    let heartbeat = as_agent(
        &env,
        "a",
        "alice",
        "2026-11-01T12:12:00Z",
        &["heartbeat", "only"],
    );
    assert_eq!(heartbeat.code, 4, "{heartbeat}");
    // The new holder carries on.
    let done = as_agent(
        &env,
        "b",
        "bob",
        "2026-11-01T12:13:00Z",
        &["done", "--json"],
    );
    assert_eq!(done.code, 0, "{done}");
    assert_eq!(done.json()["lease"]["generation"], 2);
}

#[test]
fn failed_attempts_park_a_task_until_a_human_unparks_it() {
    let env = TestEnv::new();
    let files = vec![
        (
            ".tasks/config.yaml".to_owned(),
            "max_attempts: 2\n".to_owned(),
        ),
        (".tasks/flaky.md".to_owned(), task("Flaky", 0, &[])),
    ];
    remote_with_clones(&env, &files, &["a"]);
    for attempt in 1..=2 {
        let claim = as_agent(&env, "a", "alice", T0, &["claim", "--json"]);
        assert_eq!(claimed_id(&claim), "flaky");
        assert_eq!(claim.json()["lease"]["attempt"], attempt);
        let release = as_agent(
            &env,
            "a",
            "alice",
            T0,
            &[
                "release",
                "--failed",
                "--reason",
                &format!("tests fail ({attempt})"),
            ],
        );
        assert_eq!(release.code, 0, "{release}");
    }
    let parked = as_agent(&env, "a", "alice", T0, &["claim", "--json"]);
    assert_eq!(parked.code, 3, "{parked}");
    let list = as_agent(&env, "a", "alice", T0, &["list"]);
    assert_output!(list);
    let unpark = as_agent(
        &env,
        "a",
        "human",
        T0,
        &["unpark", "flaky", "--reason", "fixed the test", "--json"],
    );
    assert_eq!(unpark.code, 0, "{unpark}");
    // `--json` prints the lease, as release does (it was refused with a usage line that made
    // `--reason` look required).
    assert_eq!(
        unpark.json()["lease"]["ref"],
        "refs/gitprio/leases/flaky",
        "{unpark}"
    );
    assert_eq!(unpark.json()["lease"]["state"], "released", "{unpark}");
    let again = as_agent(&env, "a", "alice", T0, &["claim", "--json"]);
    assert_eq!(claimed_id(&again), "flaky");
    assert_eq!(again.json()["lease"]["failures"], 0);
}

/// `agents` processes claim and finish tasks in parallel until claim says nothing is ready.
fn drain(env: &TestEnv, clones: &[String], now: &str) -> BTreeMap<String, Vec<String>> {
    let claims: Arc<Mutex<BTreeMap<String, Vec<String>>>> = Arc::default();
    std::thread::scope(|scope| {
        for clone in clones {
            let claims = Arc::clone(&claims);
            scope.spawn(move || {
                loop {
                    let claim = as_agent(env, clone, clone, now, &["claim", "--json"]);
                    if claim.code == 3 {
                        break;
                    }
                    let id = claimed_id(&claim);
                    claims
                        .lock()
                        .unwrap()
                        .entry(id.clone())
                        .or_default()
                        .push(clone.clone());
                    let done = as_agent(env, clone, clone, now, &["done", &id]);
                    assert_eq!(done.code, 0, "{done}");
                }
            });
        }
    });
    Arc::try_unwrap(claims).unwrap().into_inner().unwrap()
}

fn assert_each_claimed_once(claims: &BTreeMap<String, Vec<String>>, count: usize) {
    let doubles: Vec<_> = claims
        .iter()
        .filter(|(_, holders)| holders.len() > 1)
        .collect();
    assert!(doubles.is_empty(), "double claims: {doubles:?}");
    assert_eq!(claims.len(), count, "claimed: {claims:?}");
}

#[test]
fn a_task_finished_on_the_remote_since_the_last_fetch_is_never_handed_out() {
    let env = TestEnv::new();
    let files = vec![
        (".tasks/alpha.md".to_owned(), task("Alpha", 0, &[])),
        (".tasks/beta.md".to_owned(), task("Beta", 1, &[])),
    ];
    remote_with_clones(&env, &files, &[]);
    let daemon = GitDaemon::start(&env.path("."));
    for (name, url) in [
        ("path", env.path("remote.git").display().to_string()),
        ("daemon", daemon.url("remote.git")),
    ] {
        let (editor, agent) = (format!("{name}-editor"), format!("{name}-agent"));
        env.git(".", &["clone", "--quiet", &url, &editor]);
        env.git(".", &["clone", "--quiet", &url, &agent]);
        // The agent's mirrors are current: nothing changed on the remote since.
        assert_eq!(as_agent(&env, &agent, "bob", T0, &["status"]).code, 0);
        let path = env.path(&format!("{editor}/.tasks/alpha.md"));
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            text.replace("priority: 0\n", "priority: 0\nstatus: done\n"),
        )
        .unwrap();
        env.git(&editor, &["commit", "--quiet", "-am", "alpha done"]);
        env.git(&editor, &["push", "--quiet", "origin", "main"]);
        let claim = as_agent(&env, &agent, "bob", T0, &["claim", "--json"]);
        assert_eq!(claimed_id(&claim), "beta", "{name}");
        // Give the remote back its first state for the next transport.
        env.git(
            &editor,
            &["push", "--quiet", "--force", "origin", "HEAD~1:main"],
        );
        env.git(
            "remote.git",
            &["update-ref", "-d", "refs/gitprio/leases/beta"],
        );
    }
}

#[test]
fn sixteen_agents_drain_fifty_tasks_with_no_double_claim() {
    let env = TestEnv::new();
    let clones: Vec<String> = (0..16).map(|index| format!("agent{index:02}")).collect();
    let names: Vec<&str> = clones.iter().map(String::as_str).collect();
    remote_with_clones(&env, &queue(52), &names);
    let claims = drain(&env, &clones, T0);
    assert_each_claimed_once(&claims, 52);
}

#[test]
fn leases_work_over_git_daemon_and_smart_http() {
    let env = TestEnv::new();
    remote_with_clones(&env, &queue(8), &[]);
    let daemon = GitDaemon::start(&env.path("."));
    let http = HttpGit::start(&env.path("."));
    for (name, url) in [
        ("daemon", daemon.url("remote.git")),
        ("http", http.url("remote.git")),
    ] {
        let clones: Vec<String> = (0..4).map(|index| format!("{name}{index}")).collect();
        for clone in &clones {
            env.git(".", &["clone", "--quiet", &url, clone]);
        }
        let claims = drain(&env, &clones, T0);
        assert_each_claimed_once(&claims, 8);
        // Reset the remote's leases for the next transport.
        for id in claims.keys() {
            env.git(
                "remote.git",
                &["update-ref", "-d", &format!("refs/gitprio/leases/{id}")],
            );
        }
    }
    assert!(
        http.requests()
            .iter()
            .any(|request| request.path.contains("git-receive-pack")),
        "the HTTP transport was not used for pushing"
    );
}

#[test]
fn local_mode_coordinates_worktrees_of_one_clone() {
    let env = TestEnv::new();
    let borrowed = queue(3);
    let files: Vec<(&str, &str)> = borrowed
        .iter()
        .map(|(path, content)| (path.as_str(), content.as_str()))
        .collect();
    env.repo("main", &files);
    env.git("main", &["worktree", "add", "--quiet", "../second"]);
    let first = as_agent(&env, "main", "one", T0, &["claim", "--json"]);
    let second = as_agent(&env, "second", "two", T0, &["claim", "--json"]);
    assert_eq!(first.json()["lease"]["store"], "local");
    assert_ne!(claimed_id(&first), claimed_id(&second));
    let refs = env.git(
        "main",
        &["for-each-ref", "--format=%(refname)", "refs/gitprio/"],
    );
    assert_eq!(refs.lines().count(), 2, "{refs}");
    // Each worktree remembers its own lease.
    let done = as_agent(&env, "second", "two", T0, &["done", "--json"]);
    assert_eq!(done.code, 0, "{done}");
    assert_eq!(done.json()["lease"]["state"], "submitted");
    let status = as_agent(&env, "main", "one", T0, &["status", "--json"]);
    assert_eq!(status.json()["leases"].as_array().unwrap().len(), 2);
}

#[test]
fn worktrees_of_one_clone_renew_and_finish_only_their_own_leases() {
    let env = TestEnv::new();
    env.repo("a", &[(".tasks/only.md", &task("Only", 0, &[]))]);
    env.git("a", &["worktree", "add", "--quiet", "../b", "-b", "wb"]);
    let expired = "2026-11-01T12:31:01Z";
    let later = "2026-11-01T12:32:00Z";
    assert_eq!(
        claimed_id(&as_agent(&env, "a", "alice", T0, &["claim", "--json"])),
        "only"
    );
    let reclaim = as_agent(&env, "b", "bob", expired, &["claim", "--json"]);
    assert_eq!(claimed_id(&reclaim), "only");
    assert_eq!(reclaim.json()["lease"]["generation"], 2);

    // Bob's claim does not become alice's: she lost it, named or not.
    assert_output!(as_agent(&env, "a", "alice", later, &["heartbeat", "only"]));
    assert_eq!(as_agent(&env, "a", "alice", later, &["heartbeat"]).code, 4);
    let done = as_agent(&env, "a", "alice", later, &["done", "only"]);
    assert_eq!(done.code, 4, "{done}");
    let text = std::fs::read_to_string(env.path("a/.tasks/only.md")).unwrap();
    assert!(!text.contains("status: done"), "{text}");
    let renewed = as_agent(&env, "b", "bob", later, &["heartbeat", "--json"]);
    assert_eq!(renewed.code, 0, "{renewed}");
    assert_eq!(renewed.json()["lease"]["generation"], 2);

    // Agents sharing one worktree (the slots of `gitprio run --parallel`) are told apart by name.
    let gone = "2026-11-01T13:03:01Z";
    let third = as_agent(&env, "a", "carol", gone, &["claim", "--json"]);
    assert_eq!(third.json()["lease"]["generation"], 3, "{third}");
    assert_eq!(
        as_agent(&env, "a", "alice", gone, &["heartbeat", "only"]).code,
        4
    );
    assert_eq!(as_agent(&env, "b", "bob", gone, &["heartbeat"]).code, 4);
    let done = as_agent(&env, "a", "carol", gone, &["done", "--json"]);
    assert_eq!(done.code, 0, "{done}");
    assert_eq!(done.json()["lease"]["generation"], 3);
}

#[test]
fn a_stale_ref_lock_is_an_error_to_fix_not_a_lost_lease() {
    let env = only_claimed_by_alice();
    let lock = env.path("a/.git/refs/gitprio/leases/only.lock");
    std::fs::write(&lock, "").unwrap();
    assert_output!(as_agent(&env, "a", "alice", T0, &["heartbeat"]));
    std::fs::remove_file(&lock).unwrap();
    let renewed = as_agent(&env, "a", "alice", T0, &["heartbeat", "--json"]);
    assert_eq!(renewed.code, 0, "{renewed}");
    assert_eq!(renewed.json()["lease"]["generation"], 1);
}

#[test]
fn done_killed_while_it_marks_the_task_done_leaves_the_task_file_whole() {
    let env = TestEnv::new();
    let plan = "- Change one more line, then run the tests again.\n".repeat(10_000);
    let text = format!("{}\n## Plan\n\n{plan}", task("Only", 0, &[]));
    env.repo("a", &[(".tasks/only.md", &text)]);
    let claim = as_agent(&env, "a", "alice", T0, &["claim", "--local"]);
    assert_eq!(claim.code, 0, "{claim}");
    let killed = env.run_with_file_limit(
        "a",
        &["done", "--no-verify", "--reason", "plan only"],
        &[("GITPRIO_AGENT", "alice"), ("GITPRIO_NOW", T0)],
    );
    assert_ne!(killed.code, 0, "{killed}");
    let read = || std::fs::read_to_string(env.path("a/.tasks/only.md")).unwrap();
    assert!(
        read() == text,
        "the task file is {} bytes, not {}",
        read().len(),
        text.len()
    );
    let done = as_agent(
        &env,
        "a",
        "alice",
        T0,
        &["done", "--no-verify", "--reason", "plan only"],
    );
    assert_eq!(done.code, 0, "{done}");
    assert!(read().contains("status: done") && read().ends_with(&plan));
}

#[test]
fn a_crash_at_any_step_leaves_a_state_the_queue_recovers_from() {
    for failpoint in [
        "claim:before-cas",
        "claim:after-cas",
        "heartbeat:before-cas",
        "heartbeat:after-cas",
        "release:before-cas",
        "release:after-cas",
        "submit:after-cas",
        "done:before-edit",
    ] {
        let env = TestEnv::new();
        let files = vec![(".tasks/only.md".to_owned(), task("Only", 0, &[]))];
        remote_with_clones(&env, &files, &["a", "b"]);
        let crash = |args: &[&str]| {
            let output = env.run_with(
                "a",
                args,
                &[
                    ("GITPRIO_AGENT", "alice"),
                    ("GITPRIO_NOW", T0),
                    ("GITPRIO_FAILPOINT", failpoint),
                ],
            );
            assert_eq!(output.code, -1, "{failpoint}: not killed: {output}");
        };
        let operation = failpoint.split(':').next().unwrap();
        if operation == "claim" {
            crash(&["claim"]);
        } else {
            assert_eq!(as_agent(&env, "a", "alice", T0, &["claim"]).code, 0);
            let release = ["release", "--failed", "--reason", "boom"];
            match operation {
                "heartbeat" => crash(&["heartbeat"]),
                "release" => crash(&release),
                _ => crash(&["done"]),
            }
            if operation == "release" {
                // Run again, the release finishes: the attempt is counted once, and ends
                // in the usage ledger.
                let retry = as_agent(&env, "a", "alice", T0, &release);
                assert_eq!(retry.code, 0, "{failpoint}: retry failed: {retry}");
                let usage = as_agent(&env, "a", "alice", T0, &["usage", "show", "only", "--json"]);
                assert_eq!(
                    usage.json()["runs"][0]["meta"]["outcome"],
                    "failed",
                    "{failpoint}: {usage}"
                );
            }
        }
        // Whatever happened, the same command again completes, or the lease expires;
        // nobody else ever holds the task while alice's lease is live.
        let other = as_agent(
            &env,
            "b",
            "bob",
            "2026-11-01T12:05:00Z",
            &["claim", "--json"],
        );
        let expected_free = failpoint == "claim:before-cas" || operation == "release";
        assert_eq!(other.code == 0, expected_free, "{failpoint}: {other}");
        if operation == "release" {
            assert_eq!(other.json()["lease"]["failures"], 1, "{failpoint}: {other}");
        }
        if !expected_free && !failpoint.starts_with("claim") {
            let retry = match operation {
                "heartbeat" => as_agent(&env, "a", "alice", T0, &["heartbeat"]),
                _ => as_agent(&env, "a", "alice", T0, &["done"]),
            };
            assert_eq!(retry.code, 0, "{failpoint}: retry failed: {retry}");
        }
        if failpoint == "claim:after-cas" {
            // The claim landed but the agent died before it knew: the lease expires.
            let later = as_agent(
                &env,
                "b",
                "bob",
                "2026-11-01T12:31:01Z",
                &["claim", "--json"],
            );
            assert_eq!(claimed_id(&later), "only", "{failpoint}");
            assert_eq!(later.json()["lease"]["generation"], 2);
        }
    }
}

#[test]
fn an_unreachable_remote_is_a_clear_error_and_writes_nothing() {
    let env = TestEnv::new();
    let files = vec![(".tasks/only.md".to_owned(), task("Only", 0, &[]))];
    remote_with_clones(&env, &files, &["a"]);
    env.git(
        "a",
        &[
            "remote",
            "set-url",
            "origin",
            &env.path("gone.git").display().to_string(),
        ],
    );
    let claim = as_agent(&env, "a", "alice", T0, &["claim"]);
    assert_eq!(claim.code, 1, "{claim}");
    assert!(
        claim
            .stderr
            .contains("cannot reach remote `origin` (fetch)"),
        "{claim}"
    );
    let refs = env.git("a", &["for-each-ref", "refs/gitprio/"]);
    assert_eq!(refs, "");
    // A lease ref that holds something else is named, and its task held back.
    env.git(".", &["clone", "--quiet", "remote.git", "b"]);
    let head = env.git("b", &["rev-parse", "HEAD"]);
    env.git(
        "b",
        &[
            "push",
            "--quiet",
            "origin",
            &format!("{}:refs/gitprio/leases/only", head.trim()),
        ],
    );
    let claim = as_agent(&env, "b", "bob", T0, &["claim", "--json"]);
    assert_eq!(claim.code, 3, "{claim}");
    assert!(
        claim
            .stderr
            .contains("lease ref `refs/gitprio/remotes/origin/leases/only` is unreadable"),
        "{claim}"
    );
}

/// The subject of the newest commit of the lease of `id` on the remote.
fn remote_subject(env: &TestEnv, id: &str) -> String {
    env.git(
        "remote.git",
        &[
            "log",
            "-1",
            "--format=%s",
            &format!("refs/gitprio/leases/{id}"),
        ],
    )
    .trim()
    .to_owned()
}

/// Writes over the local lease of `only` in clone `a` the commit a newer gitprio would
/// write there (its record edited by `newer`), as that gitprio would remember it; returns
/// the commit.
pub fn write_as_newer_gitprio(env: &TestEnv, newer: impl Fn(&str) -> String) -> String {
    let reference = "refs/gitprio/leases/only";
    let old = env.git("a", &["rev-parse", reference]).trim().to_owned();
    let message = env.git("a", &["log", "-1", "--format=%B", &old]);
    let edited = newer(&message);
    assert_ne!(edited, message);
    let tree = format!("{old}^{{tree}}");
    let new = env
        .git("a", &["commit-tree", &tree, "-p", &old, "-m", &edited])
        .trim()
        .to_owned();
    env.git("a", &["update-ref", reference, &new, &old]);
    let held = env.path("a/.git/gitprio/held/only");
    for entry in std::fs::read_dir(&held).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace(&old, &new)).unwrap();
    }
    new
}

/// A repository `a` whose one task, `only`, alice claimed in local mode at `T0`.
fn only_claimed_by_alice() -> TestEnv {
    let env = TestEnv::new();
    env.repo("a", &[(".tasks/only.md", &task("Only", 0, &[]))]);
    let claimed = as_agent(&env, "a", "alice", T0, &["claim", "--local"]);
    assert_eq!(claimed.code, 0, "{claimed}");
    env
}

#[test]
fn a_lease_record_a_newer_gitprio_wrote_keeps_its_fields_or_is_named_unreadable() {
    let env = only_claimed_by_alice();
    let later = "2026-11-01T12:10:00Z";
    let lease_body = || {
        env.git(
            "a",
            &["log", "-1", "--format=%B", "refs/gitprio/leases/only"],
        )
    };
    // A field this gitprio does not know is written back by its heartbeat.
    write_as_newer_gitprio(&env, |message| {
        message.replace("\"nonce\"", "\"checkpoint\": {\"step\": 3},\n  \"nonce\"")
    });
    let renewed = as_agent(&env, "a", "alice", later, &["heartbeat"]);
    assert_eq!(renewed.code, 0, "{renewed}");
    let body = lease_body();
    assert!(body.starts_with("gitprio lease: renew only"), "{body}");
    assert!(
        body.contains("\"checkpoint\": {\n    \"step\": 3\n  }"),
        "{body}"
    );
    // A record it cannot parse (an event it does not know) is named, not taken for no lease.
    let unknown = write_as_newer_gitprio(&env, |message| {
        message.replace("\"event\": \"renew\"", "\"event\": \"checkpoint\"")
    });
    for args in [&["heartbeat"][..], &["release", "only"], &["done", "only"]] {
        let refused = as_agent(&env, "a", "alice", later, args);
        assert_eq!(refused.code, 1, "{args:?}: {refused}");
        assert!(
            refused.stderr.contains(&format!(
                "cannot read lease commit {unknown} of `only` (upgrade gitprio: a newer one may have written it): lease record is in a form this gitprio does not know: unknown variant `checkpoint`"
            )),
            "{args:?}: {refused}"
        );
        assert!(!refused.stderr.contains("holds no lease"), "{refused}");
        let now = env.git("a", &["rev-parse", "refs/gitprio/leases/only"]);
        assert_eq!(now.trim(), unknown, "{args:?} changed nothing");
    }
    let text = std::fs::read_to_string(env.path("a/.tasks/only.md")).unwrap();
    assert!(!text.contains("status: done"), "{text}");
}

/// Fields a newer gitprio adds inside the record's parts (the holder, the progress) survive
/// a rewrite as top-level ones do: a heartbeat and a release carry those parts over whole.
#[test]
fn fields_a_newer_gitprio_wrote_inside_the_holder_and_progress_survive_a_rewrite() {
    let env = only_claimed_by_alice();
    let reported = as_agent(&env, "a", "alice", T0, &["heartbeat", "--tokens", "100"]);
    assert_eq!(reported.code, 0, "{reported}");
    write_as_newer_gitprio(&env, |message| {
        message
            .replace(
                "\"holder\": {\n",
                "\"holder\": {\n    \"model\": \"m-9\",\n",
            )
            .replace(
                "\"progress\": {\n",
                "\"progress\": {\n    \"context_tokens\": 5,\n",
            )
    });
    let later = "2026-11-01T12:10:00Z";
    for (args, subject) in [
        (&["heartbeat"][..], "gitprio lease: renew only"),
        (&["release", "only"], "gitprio lease: release only"),
    ] {
        let output = as_agent(&env, "a", "alice", later, args);
        assert_eq!(output.code, 0, "{args:?}: {output}");
        let body = env.git(
            "a",
            &["log", "-1", "--format=%B", "refs/gitprio/leases/only"],
        );
        assert!(body.starts_with(subject), "{body}");
        let record: serde_json::Value =
            serde_json::from_str(body.split_once("\n\n").unwrap().1).unwrap();
        assert_eq!(record["holder"]["model"], "m-9", "{args:?}: {body}");
        assert_eq!(record["holder"]["agent"], "alice", "{args:?}: {body}");
        assert_eq!(record["progress"]["context_tokens"], 5, "{args:?}: {body}");
        assert_eq!(record["progress"]["tokens"], 100, "{args:?}: {body}");
    }
}

/// `done` takes the acceptance commands (and whether a plan is due) from the task file the
/// lease names; a lease record it cannot read is named once in a warning, with the upgrade
/// advice, and the working tree's task file is used, as when there is no lease here.
#[test]
fn done_names_the_lease_record_it_cannot_read_when_it_looks_up_the_claimed_task() {
    let env = TestEnv::new();
    env.repo(
        "a",
        &[(
            ".tasks/only.md",
            "---\ntitle: Only\npriority: 0\nacceptance: [touch accepted]\n---\nDo only.\n",
        )],
    );
    let claimed = as_agent(&env, "a", "alice", T0, &["claim", "--local"]);
    assert_eq!(claimed.code, 0, "{claimed}");
    let unknown = write_as_newer_gitprio(&env, |message| {
        message.replace("\"event\": \"claim\"", "\"event\": \"checkpoint\"")
    });
    let done = as_agent(&env, "a", "alice", T0, &["done", "only"]);
    assert_eq!(done.code, 1, "{done}");
    let warnings: Vec<&str> = done
        .stderr
        .lines()
        .filter(|line| line.starts_with("warning:") && line.contains(&unknown))
        .collect();
    assert_eq!(warnings.len(), 1, "{done}");
    assert!(
        warnings[0].contains(&format!("cannot read lease commit {unknown} of `only`"))
            && warnings[0].contains("upgrade gitprio")
            && warnings[0].contains("the task file in the working tree"),
        "{done}"
    );
    assert!(!done.stderr.to_lowercase().contains("delete"), "{done}");
    // It went on: the working tree's acceptance command ran, and the submission then
    // refused the record it cannot read.
    assert!(env.path("a/accepted").exists(), "{done}");
    assert!(
        done.stderr
            .contains(&format!("error: cannot read lease commit {unknown}")),
        "{done}"
    );
}

/// A record a newer gitprio wrote may be a live lease: every command that cannot read it
/// says to upgrade, and none advises deleting it (that would free a task someone works on).
#[test]
fn a_lease_record_a_newer_gitprio_wrote_is_never_advised_for_deletion() {
    let env = only_claimed_by_alice();
    let unknown = write_as_newer_gitprio(&env, |message| {
        message.replace("\"event\": \"claim\"", "\"event\": \"checkpoint\"")
    });
    for args in [
        &["revoke", "only", "--reason", "stuck"][..],
        &["unpark", "only"],
        &["claim", "--local"],
        &["status", "--offline"],
    ] {
        let output = as_agent(&env, "a", "bob", T0, args);
        // `status` lists the lease among the unreadable ones, on stdout, and advises nothing.
        assert!(
            args[0] == "status"
                || (output.stderr.contains("upgrade gitprio")
                    && output.stderr.contains("a newer one may have written it")),
            "{args:?}: {output}"
        );
        let all = format!("{}{}", output.stdout, output.stderr).to_lowercase();
        assert!(!all.contains("delete"), "{args:?}: {output}");
        let now = env.git("a", &["rev-parse", "refs/gitprio/leases/only"]);
        assert_eq!(now.trim(), unknown, "{args:?} changed nothing");
    }
}

#[test]
fn a_submission_is_never_undone_by_a_follow_up_command() {
    let env = TestEnv::new();
    let files = vec![(".tasks/only.md".to_owned(), task("Only", 0, &[]))];
    remote_with_clones(&env, &files, &["a", "b"]);
    assert_eq!(as_agent(&env, "a", "alice", T0, &["claim"]).code, 0);
    let killed = env.run_with(
        "a",
        &["done"],
        &[
            ("GITPRIO_AGENT", "alice"),
            ("GITPRIO_NOW", T0),
            ("GITPRIO_FAILPOINT", "submit:after-cas"),
        ],
    );
    assert_eq!(killed.code, -1, "{killed}");
    // The submission landed; a release or heartbeat of the same holder must not undo it.
    for args in [
        &["release"][..],
        &["release", "only"],
        &["heartbeat", "only"],
    ] {
        let follow_up = as_agent(&env, "a", "alice", T0, args);
        assert_eq!(follow_up.code, 1, "{args:?}: {follow_up}");
        assert!(
            follow_up.stderr.contains("`only` was submitted")
                && follow_up.stderr.contains("gitprio done only"),
            "{args:?}: {follow_up}"
        );
        assert!(
            remote_subject(&env, "only").starts_with("gitprio lease: submit only by alice"),
            "{args:?}"
        );
    }
    let other = as_agent(&env, "b", "bob", T0, &["claim", "--json"]);
    assert_eq!(other.code, 3, "{other}");
    // `done` again finishes what the killed one started.
    let done = as_agent(&env, "a", "alice", T0, &["done"]);
    assert_eq!(done.code, 0, "{done}");
    let text = std::fs::read_to_string(env.path("a/.tasks/only.md")).unwrap();
    assert!(text.contains("status: done"), "{text}");
    // After a whole `done`, the same holds.
    let release = as_agent(&env, "a", "alice", T0, &["release", "only"]);
    assert_eq!(release.code, 1, "{release}");
    assert!(remote_subject(&env, "only").starts_with("gitprio lease: submit only"));
    assert_eq!(as_agent(&env, "b", "bob", T0, &["claim"]).code, 3);
}

#[test]
fn a_stale_lock_on_the_remote_is_named_not_a_lost_lease() {
    let env = TestEnv::new();
    let files = vec![
        (".tasks/only.md".to_owned(), task("Only", 0, &[])),
        (".tasks/spare.md".to_owned(), task("Spare", 1, &[])),
    ];
    remote_with_clones(&env, &files, &["a", "b"]);
    assert_eq!(
        claimed_id(&as_agent(&env, "a", "alice", T0, &["claim", "--json"])),
        "only"
    );
    let locks =
        ["only", "spare"].map(|id| env.path(&format!("remote.git/refs/gitprio/leases/{id}.lock")));
    for lock in &locks {
        std::fs::write(lock, "").unwrap();
    }
    for args in [
        &["heartbeat"][..],
        &["done", "--no-verify", "--reason", "x"],
    ] {
        let output = as_agent(&env, "a", "alice", T0, args);
        assert_eq!(output.code, 1, "{args:?}: {output}");
        assert!(
            output
                .stderr
                .contains("refs/gitprio/leases/only.lock exists there")
                && output.stderr.contains("remove")
                && output.stderr.contains("Unable to create"),
            "{args:?}: {output}"
        );
        assert!(!output.stderr.contains("lease lost"), "{output}");
    }
    let text = std::fs::read_to_string(env.path("a/.tasks/only.md")).unwrap();
    assert!(!text.contains("status: done"), "{text}");
    // A lone claim of the locked task is told about the lock, not about races.
    let claim = as_agent(&env, "b", "bob", T0, &["claim"]);
    assert_eq!(claim.code, 1, "{claim}");
    assert!(
        claim.stderr.contains("spare.lock exists there") && !claim.stderr.contains("races"),
        "{claim}"
    );
    for lock in &locks {
        std::fs::remove_file(lock).unwrap();
    }
    let renewed = as_agent(&env, "a", "alice", T0, &["heartbeat", "--json"]);
    assert_eq!(renewed.code, 0, "{renewed}");
    assert_eq!(renewed.json()["lease"]["generation"], 1);
}

#[test]
fn status_marks_only_the_lease_this_worktree_holds_now() {
    let env = TestEnv::new();
    let files = vec![(".tasks/only.md".to_owned(), task("Only", 0, &[]))];
    remote_with_clones(&env, &files, &["a", "b"]);
    assert_eq!(as_agent(&env, "a", "alice", T0, &["claim"]).code, 0);
    let expired = "2026-11-01T12:31:01Z";
    assert_eq!(as_agent(&env, "b", "bob", expired, &["claim"]).code, 0);
    let mine = |dir: &str, agent: &str| {
        let status = as_agent(&env, dir, agent, expired, &["status", "--json"]);
        status.json()["leases"][0]["mine"].clone()
    };
    assert_eq!(mine("a", "alice"), false);
    assert_eq!(mine("b", "bob"), true);
    let table = as_agent(&env, "a", "alice", expired, &["status"]);
    assert!(!table.stdout.contains("(this worktree)"), "{table}");
}

#[test]
fn a_claim_passes_over_a_task_whose_expired_lease_cannot_be_parked() {
    let env = TestEnv::new();
    env.repo(
        "a",
        &[
            (".tasks/config.yaml", "max_attempts: 1\n"),
            (".tasks/alpha.md", &task("Alpha", 0, &[])),
            (".tasks/beta.md", &task("Beta", 1, &[])),
        ],
    );
    assert_eq!(
        claimed_id(&as_agent(&env, "a", "alice", T0, &["claim", "--json"])),
        "alpha"
    );
    std::fs::write(env.path("a/.git/refs/gitprio/leases/alpha.lock"), "").unwrap();
    let claim = as_agent(
        &env,
        "a",
        "bob",
        "2026-11-01T12:31:01Z",
        &["claim", "--json"],
    );
    assert_eq!(claimed_id(&claim), "beta");
    assert!(
        claim
            .stderr
            .contains("passed over `alpha`: its expired lease could not be parked"),
        "{claim}"
    );
}

#[test]
fn done_after_gc_deleted_the_lease_says_so() {
    let env = TestEnv::new();
    let files = vec![(".tasks/only.md".to_owned(), task("Only", 0, &[]))];
    remote_with_clones(&env, &files, &["a", "c"]);
    assert_eq!(as_agent(&env, "a", "alice", T0, &["claim"]).code, 0);
    assert_eq!(as_agent(&env, "a", "alice", T0, &["done"]).code, 0);
    env.git("a", &["commit", "--quiet", "-am", "only done"]);
    env.git("a", &["push", "--quiet", "origin", "main"]);
    let gc = as_agent(&env, "c", "carol", T0, &["gc"]);
    assert_eq!(
        gc.stderr, "info: deleted 1 lease of finished tasks: only\n",
        "{gc}"
    );
    let again = as_agent(&env, "a", "alice", T0, &["done", "only"]);
    assert_eq!(again.code, 1, "{again}");
    assert!(
        again.stderr.contains("no lease on `only` any more")
            && again.stderr.contains("`gitprio gc` deleted it"),
        "{again}"
    );
}

#[test]
fn a_claim_killed_after_it_landed_is_handed_back_to_the_same_agent() {
    let env = TestEnv::new();
    let files = vec![
        (".tasks/alpha.md".to_owned(), task("Alpha", 0, &[])),
        (".tasks/beta.md".to_owned(), task("Beta", 1, &[])),
    ];
    remote_with_clones(&env, &files, &["a", "b"]);
    let killed = env.run_with(
        "a",
        &["claim"],
        &[
            ("GITPRIO_AGENT", "alice"),
            ("GITPRIO_NOW", T0),
            ("GITPRIO_FAILPOINT", "claim:after-cas"),
        ],
    );
    assert_eq!(killed.code, -1, "{killed}");
    let again = as_agent(
        &env,
        "a",
        "alice",
        "2026-11-01T12:01:00Z",
        &["claim", "--json"],
    );
    assert_eq!(claimed_id(&again), "alpha");
    assert_eq!(again.json()["lease"]["generation"], 1);
    // It is held as any claim is: renewed and finished without naming it.
    assert_eq!(as_agent(&env, "a", "alice", T0, &["heartbeat"]).code, 0);
    let other = as_agent(&env, "b", "bob", T0, &["claim", "--json"]);
    assert_eq!(claimed_id(&other), "beta");
}

#[test]
fn a_lone_agent_takes_the_task_next_names_every_time() {
    let env = TestEnv::new();
    let files: Vec<(String, String)> = (0..6)
        .map(|index| {
            (
                format!(".tasks/t{index}.md"),
                task(&format!("Task {index}"), index, &[]),
            )
        })
        .collect();
    remote_with_clones(&env, &files, &["a"]);
    // No GITPRIO_AGENT: the default name, one per worktree.
    let run = |args: &[&str]| env.run_with("a", args, &[("GITPRIO_NOW", T0)]);
    for round in 0..5 {
        let next = run(&["next", "--json"]);
        let named = next.json()["task"]["id"].as_str().unwrap().to_owned();
        assert_eq!(named, format!("t{round}"), "{next}");
        let claim = run(&["claim", "--json"]);
        assert_eq!(claimed_id(&claim), named, "round {round}");
        assert_eq!(run(&["done", "--no-verify", "--reason", "test"]).code, 0);
    }
}

#[test]
fn a_fresh_clone_answers_from_the_remotes_leases() {
    let env = TestEnv::new();
    let files = vec![
        (".tasks/alpha.md".to_owned(), task("Alpha", 0, &[])),
        (".tasks/beta.md".to_owned(), task("Beta", 1, &[])),
    ];
    remote_with_clones(&env, &files, &["a"]);
    assert_eq!(as_agent(&env, "a", "alice", T0, &["claim"]).code, 0);
    env.git(".", &["clone", "--quiet", "remote.git", "fresh"]);
    let next = as_agent(&env, "fresh", "bob", T0, &["next", "--json"]);
    assert_eq!(next.json()["task"]["id"], "beta", "{next}");
    let list = as_agent(&env, "fresh", "bob", T0, &["list"]);
    assert!(list.stdout.contains("leased by alice"), "{list}");
    assert!(!list.stderr.contains("as fetched"), "{list}");
    // Old mirrors are used, and said to be old.
    let marker = env.path("fresh/.git/gitprio/refreshed/origin");
    let touched = std::process::Command::new("touch")
        .args(["-d", "2 hours ago"])
        .arg(&marker)
        .status()
        .unwrap();
    assert!(touched.success());
    let next = as_agent(&env, "fresh", "bob", T0, &["next"]);
    assert!(
        next.stderr
            .contains("answering from the leases of `origin` as fetched 2h"),
        "{next}"
    );
}

#[test]
fn a_clone_that_never_fetched_the_leases_answers_from_the_branch_that_fetch_brings() {
    let env = TestEnv::new();
    let files = vec![(".tasks/alpha.md".to_owned(), task("Alpha", 1, &[]))];
    remote_with_clones(&env, &files, &["a", "late"]);
    // After `late` was cloned, a more urgent task lands on the remote's branch.
    std::fs::write(env.path("a/.tasks/urgent.md"), task("Urgent", 0, &[])).unwrap();
    env.git("a", &["add", ".tasks"]);
    env.git("a", &["commit", "--quiet", "-m", "Add urgent"]);
    env.git("a", &["push", "--quiet", "origin", "main"]);
    // `late`'s first reading command fetches the leases, and the branch with them: it
    // answers from what it fetched, as every later command does.
    for args in [&["next", "--json"][..], &["next", "--json"]] {
        let next = as_agent(&env, "late", "bob", T0, args);
        assert_eq!(next.json()["task"]["id"], "urgent", "{next}");
    }
    env.git(".", &["clone", "--quiet", "remote.git", "later"]);
    std::fs::write(env.path("a/.tasks/alpha.md"), task("Alpha", 0, &[])).unwrap();
    env.git("a", &["commit", "--quiet", "-am", "Alpha is urgent too"]);
    env.git("a", &["push", "--quiet", "origin", "main"]);
    let list = as_agent(&env, "later", "bob", T0, &["list", "--json"]);
    assert_eq!(list.json()["tasks"][0]["task"]["priority"], 0, "{list}");
    assert_eq!(list.json()["tasks"][0]["task"]["id"], "alpha", "{list}");
}

#[test]
fn a_second_claim_in_a_worktree_that_holds_a_lease_says_so() {
    let env = TestEnv::new();
    let files = vec![
        (".tasks/alpha.md".to_owned(), task("Alpha", 0, &[])),
        (".tasks/beta.md".to_owned(), task("Beta", 1, &[])),
    ];
    remote_with_clones(&env, &files, &["a"]);
    let first = as_agent(&env, "a", "alice", T0, &["claim", "--json"]);
    assert_eq!(claimed_id(&first), "alpha", "{first}");
    assert!(!first.stderr.contains("also holds"), "{first}");
    // The loop restarts (a crash) and claims again: it gets another task, and is told.
    let second = as_agent(&env, "a", "alice", T0, &["claim", "--json"]);
    assert_eq!(claimed_id(&second), "beta", "{second}");
    assert!(
        second.stderr.contains(
            "warning: alice also holds alpha in this worktree (generation 1, until 2026-11-01T12:30:00Z); `heartbeat`, `done` and `release` now need the task id: `gitprio release alpha` gives it back if that attempt is over"
        ),
        "{second}"
    );
}

#[test]
fn messages_say_what_happened_to_the_lease() {
    let env = TestEnv::new();
    let files = vec![(".tasks/only.md".to_owned(), task("Only", 0, &[]))];
    remote_with_clones(&env, &files, &["a", "c"]);
    assert_eq!(as_agent(&env, "a", "alice", T0, &["claim"]).code, 0);
    let revoke = as_agent(
        &env,
        "c",
        "carol",
        T0,
        &["revoke", "only", "--reason", "spinning"],
    );
    assert_eq!(revoke.code, 0, "{revoke}");
    let heartbeat = as_agent(&env, "a", "alice", T0, &["heartbeat"]);
    assert_eq!(heartbeat.code, 4, "{heartbeat}");
    assert!(
        heartbeat
            .stderr
            .contains("revoked by carol at 2026-11-01T12:00:00Z: spinning"),
        "{heartbeat}"
    );
    assert!(!heartbeat.stderr.contains("stale info"), "{heartbeat}");
    let unpark = as_agent(&env, "c", "carol", T0, &["unpark", "only"]);
    assert_eq!(unpark.code, 1, "{unpark}");
    assert!(
        unpark
            .stderr
            .contains("`only` is not parked: it was given back, and any agent may claim it"),
        "{unpark}"
    );
}

/// The lease cache is only a speed-up: a damaged one, or one in the JSON format of earlier
/// versions, is ignored and rebuilt, and every command sees the same leases as with none.
#[test]
fn a_damaged_or_old_lease_cache_is_rebuilt_never_trusted() {
    let env = TestEnv::new();
    remote_with_clones(&env, &queue(24), &["a", "b"]);
    // More than 16 leases read from their commits make the claim save the cache.
    let held: Vec<String> = (0..18)
        .map(|index| {
            let agent = format!("agent-{index}");
            claimed_id(&as_agent(&env, "a", &agent, T0, &["claim", "--json"]))
        })
        .collect();
    let claims = || as_agent(&env, "b", "bob", T0, &["claim", "--json"]);
    let status = || {
        let output = as_agent(&env, "b", "bob", T0, &["status", "--json"]);
        assert_eq!(output.code, 0, "{output}");
        output.stdout
    };
    let seen = status();
    let cache = env.path("b/.git/gitprio/cache/leases.bin");
    assert!(cache.exists(), "no lease cache was saved");
    let good = std::fs::read(&cache).unwrap();
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    let damaged: [(&str, Vec<u8>); 4] = [
        ("one flipped byte", flipped),
        ("truncated", good[..good.len() - 9].to_vec()),
        ("empty", Vec::new()),
        (
            "garbage",
            b"gitprio lease cache 2\n\xff\xff\xff\xff".to_vec(),
        ),
    ];
    for (what, bytes) in damaged {
        std::fs::write(&cache, &bytes).unwrap();
        assert_eq!(status(), seen, "{what}");
        // Rebuilt whole: the next read finds every record again.
        assert_eq!(std::fs::read(&cache).unwrap(), good, "{what}");
    }
    // The JSON cache of earlier versions is not read, and goes once the new one is written.
    let old = env.path("b/.git/gitprio/cache/leases.json");
    std::fs::write(&old, br#"{"version":1,"records":{}}"#).unwrap();
    std::fs::remove_file(&cache).unwrap();
    assert_eq!(status(), seen);
    assert!(!old.exists());
    // A claim on the rebuilt cache takes a task nobody holds.
    let taken = claimed_id(&claims());
    assert!(!held.contains(&taken), "{taken} was held");
}
