//! What gitprio says when it cannot go on: nothing ready, an unreadable lease.

use std::fmt::Write as _;

use crate::assert_output;
use crate::common::{Output, TestEnv};
use crate::leases::{remote_with_clones, task};

const T0: &str = "2026-11-01T12:00:00Z";

fn as_agent(env: &TestEnv, dir: &str, agent: &str, args: &[&str]) -> Output {
    env.run_with(dir, args, &[("GITPRIO_AGENT", agent), ("GITPRIO_NOW", T0)])
}

#[test]
fn claim_tells_parked_and_submitted_tasks_from_held_ones() {
    let env = TestEnv::new();
    let files = vec![
        (".tasks/first.md".to_owned(), task("First", 0, &[])),
        (".tasks/second.md".to_owned(), task("Second", 1, &[])),
    ];
    remote_with_clones(&env, &files, &["a", "b"]);
    env.write("a", &[(".tasks/config.yaml", "max_attempts: 1\n")]);
    for (command, id) in [("release", "first"), ("done", "second")] {
        let claimed = as_agent(&env, "a", "alice", &["claim", "--json"]);
        assert_eq!(claimed.json()["task"]["id"], id, "{claimed}");
        let args: &[&str] = if command == "release" {
            &["release", "--failed", id]
        } else {
            &["done", id]
        };
        let finished = as_agent(&env, "a", "alice", args);
        assert_eq!(finished.code, 0, "{finished}");
    }
    assert_output!(as_agent(&env, "b", "bob", &["claim"]));
    let json = as_agent(&env, "b", "bob", &["claim", "--json"]);
    assert_eq!(json.code, 3, "{json}");
    assert_eq!(json.json()["reason"], "all_held_back", "{json}");
}

/// Points the lease ref of `first` in `dir` at a blob, as a broken tool might.
fn break_lease(env: &TestEnv, dir: &str) {
    std::fs::write(env.path("junk.txt"), "not a lease\n").unwrap();
    let blob = env.git(dir, &["hash-object", "-w", "../junk.txt"]);
    env.git(
        dir,
        &["update-ref", "refs/gitprio/leases/first", blob.trim()],
    );
}

#[test]
fn a_lease_ref_that_is_no_commit_is_unreadable_and_says_how_to_delete_it() {
    let env = TestEnv::new();
    let files = vec![(".tasks/first.md".to_owned(), task("First", 0, &[]))];
    remote_with_clones(&env, &files, &["a"]);
    let claimed = as_agent(&env, "a", "alice", &["claim", "--json"]);
    assert_eq!(claimed.code, 0, "{claimed}");
    break_lease(&env, "remote.git");
    assert_output!(as_agent(&env, "a", "alice", &["unpark", "first"]));
    assert_output!(as_agent(&env, "a", "alice", &["revoke", "first"]));

    env.repo(
        "local",
        &files
            .iter()
            .map(|(path, text)| (path.as_str(), text.as_str()))
            .collect::<Vec<_>>(),
    );
    let claimed = as_agent(&env, "local", "alice", &["claim", "--json"]);
    assert_eq!(claimed.code, 0, "{claimed}");
    break_lease(&env, "local");
    assert_output!(as_agent(&env, "local", "alice", &["unpark", "first"]));
}

#[test]
fn an_unreachable_remote_hints_at_offline_where_the_command_has_it() {
    let env = TestEnv::new();
    let files = vec![(".tasks/first.md".to_owned(), task("First", 0, &[]))];
    remote_with_clones(&env, &files, &["a"]);
    std::fs::rename(env.path("remote.git"), env.path("gone.git")).unwrap();
    assert_output!(as_agent(&env, "a", "alice", &["status"]));
    let report = as_agent(&env, "a", "alice", &["report"]);
    assert!(report.stderr.contains("hint: pass `--offline`"), "{report}");
    let offline = as_agent(&env, "a", "alice", &["status", "--offline"]);
    assert_eq!(offline.code, 0, "{offline}");
    // `claim` has no `--offline`: it needs the remote, and says so without the hint.
    let claim = as_agent(&env, "a", "alice", &["claim"]);
    assert_eq!(claim.code, 1, "{claim}");
    assert!(!claim.stderr.contains("--offline"), "{claim}");
}

#[test]
fn every_command_confirms_what_it_did_on_stderr_and_keeps_stdout_for_data() {
    let env = TestEnv::new();
    let files = vec![
        (".tasks/first.md".to_owned(), task("First", 0, &[])),
        (".tasks/second.md".to_owned(), task("Second", 1, &[])),
    ];
    remote_with_clones(&env, &files, &["a"]);
    let steps: &[&[&str]] = &[
        &["status"],
        &["usage", "show", "second"],
        &["claim", "--json"],
        &["heartbeat"],
        &[
            "usage",
            "record",
            "--model",
            "claude-sonnet-4-5",
            "--input",
            "10",
            "--output",
            "5",
        ],
        &["release", "--park"],
        &["unpark", "first"],
        &["claim", "--json"],
        &["done"],
        &["claim", "--json"],
        &["revoke", "second", "--agent", "boss"],
        &["gc"],
    ];
    let mut transcript = String::new();
    for args in steps {
        let output = as_agent(&env, "a", "alice", args);
        assert_eq!(output.code, 0, "gitprio {}: {output}", args.join(" "));
        if args.contains(&"--json") {
            continue;
        }
        // A script reads stdout for data: a confirmation there would be read as some.
        assert_eq!(output.stdout, "", "gitprio {}: {output}", args.join(" "));
        assert!(
            output.stderr.lines().all(|line| line.starts_with("info: ")),
            "gitprio {}: {output}",
            args.join(" ")
        );
        writeln!(transcript, "$ gitprio {}", args.join(" ")).unwrap();
        write!(transcript, "{output}").unwrap();
    }
    insta::assert_snapshot!(transcript);
}
