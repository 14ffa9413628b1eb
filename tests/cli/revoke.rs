//! `gitprio revoke`: taking a lease away, racing the holder's heartbeat, and stopping a `gitprio run` agent.

use std::process::Stdio;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::common::{Output, TestEnv, script};
use crate::leases::{remote_with_clones, task};

const T0: &str = "2026-11-01T12:00:00Z";
const T1: &str = "2026-11-01T12:05:00Z";

fn as_agent(env: &TestEnv, dir: &str, agent: &str, args: &[&str]) -> Output {
    env.run_with(dir, args, &[("GITPRIO_AGENT", agent), ("GITPRIO_NOW", T1)])
}

/// The subjects of the lease chain of `id` on the remote, newest first.
fn chain(env: &TestEnv, id: &str) -> Vec<String> {
    env.git(
        "remote.git",
        &["log", "--format=%s", &format!("refs/gitprio/leases/{id}")],
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

fn claim(env: &TestEnv, dir: &str, agent: &str) -> String {
    let claimed = env.run_with(
        dir,
        &["claim", "--json"],
        &[("GITPRIO_AGENT", agent), ("GITPRIO_NOW", T0)],
    );
    assert_eq!(claimed.code, 0, "{claimed}");
    claimed.json()["task"]["id"].as_str().unwrap().to_owned()
}

/// Sets up a remote with one task, `alpha`, and clones `a` and `c`, where alice claims it in `a`.
fn alice_holds_alpha() -> TestEnv {
    let env = TestEnv::new();
    let files = vec![(".tasks/alpha.md".to_owned(), task("Alpha", 0, &[]))];
    remote_with_clones(&env, &files, &["a", "c"]);
    assert_eq!(claim(&env, "a", "alice"), "alpha");
    env
}

/// Sets up [`alice_holds_alpha`], then carol revokes it from `c` with `revoke` appended to
/// `revoke alpha`; returns the environment and the revoke's output.
fn alice_claims_and_carol_revokes(revoke: &[&str]) -> (TestEnv, Output) {
    let env = alice_holds_alpha();
    let args: Vec<&str> = ["revoke", "alpha"].iter().chain(revoke).copied().collect();
    let revoked = as_agent(&env, "c", "carol", &args);
    assert_eq!(revoked.code, 0, "{revoked}");
    (env, revoked)
}

#[test]
fn revoke_takes_a_lease_away_records_who_and_why_and_the_holder_loses_it() {
    let (env, revoked) =
        alice_claims_and_carol_revokes(&["--reason", "spinning on the same test", "--park"]);
    assert_eq!(
        revoked.stderr,
        "info: revoked alpha from alice; it is parked until `gitprio unpark alpha`\n"
    );
    assert_eq!(
        chain(&env, "alpha"),
        [
            "gitprio lease: revoke alpha by carol (generation 1, attempt 1): spinning on the same test",
            "gitprio lease: claim alpha by alice (generation 1, attempt 1)",
        ]
    );
    let heartbeat = as_agent(&env, "a", "alice", &["heartbeat"]);
    assert_eq!(heartbeat.code, 4, "{heartbeat}");
    let done = as_agent(
        &env,
        "a",
        "alice",
        &["done", "alpha", "--no-verify", "--reason", "x"],
    );
    assert_eq!(done.code, 4, "{done}");

    // Parked: nobody reclaims it until a human unparks it.
    let next = as_agent(&env, "c", "carol", &["claim", "--json"]);
    assert_eq!(next.code, 3, "{next}");
    let status = as_agent(&env, "c", "carol", &["status", "--json"]);
    let lease = &status.json()["leases"][0];
    assert_eq!(lease["state"], "parked", "{status}");
    assert_eq!(lease["failures"], 1);
    assert_eq!(
        lease["last_error"],
        "revoked from alice by carol: spinning on the same test"
    );
    let usage = as_agent(&env, "c", "carol", &["usage", "show", "alpha", "--json"]);
    assert_eq!(
        usage.json()["runs"][0]["meta"]["outcome"],
        "parked",
        "{usage}"
    );
    assert_eq!(usage.json()["runs"][0]["meta"]["agent"], "alice");

    // Nothing left to revoke.
    let again = as_agent(&env, "c", "carol", &["revoke", "alpha"]);
    assert_eq!(again.code, 1, "{again}");
    assert!(
        again
            .stderr
            .contains("is neither held by an agent nor submitted (its lease is parked)"),
        "{again}"
    );
    assert_eq!(as_agent(&env, "c", "carol", &["unpark", "alpha"]).code, 0);
    assert_eq!(claim(&env, "c", "carol"), "alpha");
}

#[test]
fn status_shows_a_revoked_lease_as_revoked_and_held_by_nobody() {
    let (env, _) = alice_claims_and_carol_revokes(&["--reason", "wrong approach"]);

    // The record's holder is the revoker: the table showed `released  carol`, as if carol held it.
    let status = as_agent(&env, "a", "alice", &["status"]);
    assert_eq!(status.code, 0, "{status}");
    let row: Vec<&str> = status
        .stdout
        .lines()
        .find(|line| line.starts_with("alpha "))
        .unwrap_or_else(|| panic!("no row for alpha: {status}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[1..3], ["revoked", "-"], "{status}");
    assert!(
        status.stdout.ends_with(
            "\nalpha: revoked from alice by carol: wrong approach; anyone may claim it\n"
        ),
        "{status}"
    );
    let json = as_agent(&env, "a", "alice", &["status", "--json"]).json();
    let lease = &json["leases"][0];
    assert_eq!(lease["state"], "released", "{json}");
    assert_eq!(lease["revoked_by"], "carol", "{json}");
}

#[test]
fn a_heartbeat_landing_between_the_read_and_the_swap_makes_the_revoke_lose() {
    let env = alice_holds_alpha();
    // The revoker reads the remote as it was at the claim: a snapshot it fetches from,
    // while it pushes to the real remote, where the heartbeat lands meanwhile.
    env.git(
        ".",
        &["clone", "--quiet", "--mirror", "remote.git", "snapshot.git"],
    );
    env.git("c", &["remote", "set-url", "origin", "../snapshot.git"]);
    env.git(
        "c",
        &["remote", "set-url", "--push", "origin", "../remote.git"],
    );
    assert_eq!(as_agent(&env, "a", "alice", &["heartbeat"]).code, 0);

    let lost = as_agent(&env, "c", "carol", &["revoke", "alpha", "--reason", "stop"]);
    assert_eq!(lost.code, 4, "{lost}");
    assert!(
        lost.stderr
            .contains("the lease on `alpha` changed while it was being revoked"),
        "{lost}"
    );
    assert_eq!(
        chain(&env, "alpha"),
        [
            "gitprio lease: renew alpha by alice (generation 1, attempt 1)",
            "gitprio lease: claim alpha by alice (generation 1, attempt 1)",
        ]
    );

    // Once it reads the lease as it is, the revoke wins, and the holder's next heartbeat loses.
    env.git("c", &["remote", "set-url", "origin", "../remote.git"]);
    let revoked = as_agent(
        &env,
        "c",
        "carol",
        &["revoke", "alpha", "--reason", "stop", "--json"],
    );
    assert_eq!(revoked.code, 0, "{revoked}");
    let revoked = revoked.json();
    assert_eq!(revoked["revoked_from"], "alice");
    assert_eq!(revoked["lease"]["state"], "released");
    assert_eq!(revoked["lease"]["holder"]["agent"], "carol");
    assert_eq!(revoked["lease"]["reason"], "stop");
    assert_eq!(as_agent(&env, "a", "alice", &["heartbeat"]).code, 4);
    assert_eq!(
        chain(&env, "alpha"),
        [
            "gitprio lease: revoke alpha by carol (generation 1, attempt 1): stop",
            "gitprio lease: renew alpha by alice (generation 1, attempt 1)",
            "gitprio lease: claim alpha by alice (generation 1, attempt 1)",
        ]
    );
}

#[test]
fn revokes_racing_heartbeats_never_both_win_from_one_state() {
    let env = TestEnv::new();
    let files: Vec<(String, String)> = ["t0", "t1", "t2", "t3"]
        .iter()
        .map(|id| (format!(".tasks/{id}.md"), task(id, 0, &[])))
        .collect();
    remote_with_clones(&env, &files, &["a", "c"]);
    let mut claimed: Vec<String> = (0..4).map(|_| claim(&env, "a", "alice")).collect();
    claimed.sort();
    assert_eq!(claimed, ["t0", "t1", "t2", "t3"]);

    let env = Arc::new(env);
    let barrier = Arc::new(Barrier::new(8));
    let mut racers = Vec::new();
    for id in &claimed {
        for (dir, agent, args) in [
            ("a", "alice", vec!["heartbeat", id.as_str()]),
            (
                "c",
                "carol",
                vec!["revoke", id.as_str(), "--reason", "race"],
            ),
        ] {
            let env = Arc::clone(&env);
            let barrier = Arc::clone(&barrier);
            let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
            racers.push(std::thread::spawn(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                barrier.wait();
                (args[0].to_owned(), as_agent(&env, dir, agent, &args))
            }));
        }
    }
    let results: Vec<(String, Output)> = racers
        .into_iter()
        .map(|racer| racer.join().unwrap())
        .collect();
    for (index, id) in claimed.iter().enumerate() {
        let heartbeat = &results[2 * index].1;
        let revoke = &results[2 * index + 1].1;
        assert!(
            [0, 4].contains(&heartbeat.code) && [0, 4].contains(&revoke.code),
            "{heartbeat}\n{revoke}"
        );
        let subjects = chain(&env, id);
        let renew = format!("gitprio lease: renew {id} by alice (generation 1, attempt 1)");
        let revoked =
            format!("gitprio lease: revoke {id} by carol (generation 1, attempt 1): race");
        let claim = format!("gitprio lease: claim {id} by alice (generation 1, attempt 1)");
        // Whichever order the remote saw them in, each change was made on the state it
        // read: a renew never lands on a revoked lease.
        let expected: Vec<&str> = match (heartbeat.code, revoke.code) {
            (0, 0) => vec![&revoked, &renew, &claim],
            (4, 0) => vec![&revoked, &claim],
            (0, 4) => vec![&renew, &claim],
            _ => panic!("neither won on {id}:\n{heartbeat}\n{revoke}"),
        };
        assert_eq!(subjects, expected, "{heartbeat}\n{revoke}");
        if revoke.code == 4 {
            // The revoke lost to the heartbeat; a second attempt wins on the renewed lease.
            assert_eq!(
                as_agent(&env, "c", "carol", &["revoke", id, "--reason", "race"]).code,
                0
            );
            assert_eq!(chain(&env, id), [revoked.as_str(), &renew, &claim]);
        }
        let after = as_agent(&env, "a", "alice", &["heartbeat", id]);
        assert_eq!(after.code, 4, "{after}");
    }
}

#[test]
fn a_revoke_stops_the_agent_of_gitprio_run() {
    let env = TestEnv::new();
    env.repo("repo", &[(".tasks/a.md", "---\ntitle: A\n---\nDo A.\n")]);
    let pid_file = env.path("agent.pid");
    let agent = script(
        &env,
        "agent",
        &format!(
            "cat > /dev/null\necho $$ > {0}.tmp && mv {0}.tmp {0}\nexec sleep 600\n",
            pid_file.display()
        ),
    );
    let mut run = env
        .command(
            "repo",
            &[
                "run",
                "--local",
                "--json",
                "--max-tasks",
                "1",
                "--ttl",
                "3s",
                "--grace",
                "1s",
                "--",
                &agent,
            ],
        )
        .env("GITPRIO_AGENT", "runner")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pid_file.exists() {
        if Instant::now() > deadline {
            let _ = run.kill();
            panic!("the agent never started: {:?}", run.wait_with_output());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let agent_pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_owned();

    let revoked = env.run_with(
        "repo",
        &["revoke", "a", "--local", "--reason", "too expensive"],
        &[("GITPRIO_AGENT", "carol")],
    );
    assert_eq!(revoked.code, 0, "{revoked}");
    while run.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = run.kill();
            let _ = std::process::Command::new("kill").arg(&agent_pid).status();
            panic!("gitprio run did not stop the revoked agent");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = run.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["lost"], 1, "{summary}");
    assert_eq!(summary["runs"][0]["task"], "a");
    assert_eq!(summary["runs"][0]["ending"], "lost");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("runner: stopping the agent on a: the lease was lost"),
        "{stderr}"
    );
    let alive = std::process::Command::new("kill")
        .args(["-0", &agent_pid])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!alive.success(), "the agent {agent_pid} still runs");
    let log = env.git("repo", &["log", "--format=%s", "refs/gitprio/leases/a"]);
    assert!(
        log.starts_with(
            "gitprio lease: revoke a by carol (generation 1, attempt 1): too expensive\n"
        ),
        "{log}"
    );
}

#[test]
fn a_lost_lease_keeps_saying_lost_but_does_not_hide_the_next_one() {
    let env = TestEnv::new();
    let files: Vec<(String, String)> = [("t1", 0), ("t2", 1)]
        .iter()
        .map(|(id, priority)| (format!(".tasks/{id}.md"), task(id, *priority, &[])))
        .collect();
    remote_with_clones(&env, &files, &["a", "c"]);
    assert_eq!(claim(&env, "a", "alice"), "t1");
    let revoked = as_agent(&env, "c", "carol", &["revoke", "t1", "--park"]);
    assert_eq!(revoked.code, 0, "{revoked}");
    // Every later command about it says the lease is lost.
    for _ in 0..2 {
        let heartbeat = as_agent(&env, "a", "alice", &["heartbeat"]);
        assert_eq!(heartbeat.code, 4, "{heartbeat}");
    }
    // Once another task is claimed here, the id-less commands are about that one.
    assert_eq!(claim(&env, "a", "alice"), "t2");
    let heartbeat = as_agent(&env, "a", "alice", &["heartbeat", "--json"]);
    assert_eq!(heartbeat.code, 0, "{heartbeat}");
    assert_eq!(
        heartbeat.json()["lease"]["ref"],
        "refs/gitprio/leases/t2",
        "{heartbeat}"
    );
    let lost = as_agent(&env, "a", "alice", &["heartbeat", "t1"]);
    assert_eq!(lost.code, 4, "{lost}");
}
