//! A request counts once in every reader of the usage ledger, whatever wrote it and
//! however the writes interleaved (issue 16, walk17 N20 and N21).

use std::time::Duration;

use crate::common::{TestEnv, wait_until};
use crate::usage::{
    SOME_USAGE, agent, claim, claude_usage_line, import_in, one_request, setup, write_transcript,
};

/// The requests of `task`'s runs as `usage show` counts them, in alice's clone.
fn requests_of(env: &TestEnv, task: &str) -> u64 {
    let show = agent(env, "a", "alice", &["usage", "show", task, "--json"]);
    assert_eq!(show.code, 0, "{show}");
    show.json()["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["totals"]["requests"].as_u64().unwrap_or(0))
        .sum()
}

/// Two `usage import --task` in two clones at once both read the ledger before either
/// writes: each takes the request no run holds. Every reader counts it once all the same,
/// in the run that wrote it first by ledger time.
#[test]
fn two_imports_that_take_one_request_at_once_count_it_once() {
    let env = TestEnv::new();
    setup(&env);
    claim(&env, "a", "alice", "cache");
    claim(&env, "b", "bob", "docs");
    let outside = env.path("scratch").display().to_string();
    one_request(&env, &outside, "s-out", "2026-11-02T09:06:00Z");
    // Alice's import reads the ledger, matches, and waits before it writes.
    let gate = env.path("resume-alice");
    let claude_dir = env.path("claude").display().to_string();
    let failpoint = format!("import:before-write={}", gate.display());
    let alice = env
        .command("a", &["usage", "import", "--json", "--task", "cache"])
        .envs([
            ("GITPRIO_AGENT", "alice"),
            ("GITPRIO_NOW", "2026-11-02T09:10:00Z"),
            ("CLAUDE_CONFIG_DIR", claude_dir.as_str()),
            ("GITPRIO_FAILPOINT", failpoint.as_str()),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let waiting = env.path("resume-alice.waiting");
    wait_until(
        "alice's import to read the ledger",
        Duration::from_secs(60),
        || waiting.exists(),
    );
    // Bob's import runs whole meanwhile: the ledger holds the request nowhere yet.
    let bob = import_in(
        &env,
        "b",
        "bob",
        "2026-11-02T09:11:00Z",
        &["--json", "--task", "docs"],
    );
    assert_eq!(bob.code, 0, "{bob}");
    std::fs::write(&gate, "").unwrap();
    let alice = env.normalized(&alice.wait_with_output().unwrap());
    assert_eq!(alice.code, 0, "{alice}");
    // Both wrote it: the race is real.
    for task in ["cache", "docs"] {
        let held = env.git(
            "remote.git",
            &[
                "log",
                "-p",
                "--format=%s",
                &format!("refs/gitprio/usage/{task}"),
            ],
        );
        assert!(held.contains("\"claude:m1:req-m1\""), "{task}: {held}");
    }
    // Alice's write is first by ledger time (09:10 against 09:11): the request is cache's.
    assert_eq!(requests_of(&env, "cache"), 1);
    assert_eq!(requests_of(&env, "docs"), 0);
    for clone in ["a", "reader"] {
        let report = env.run_with(
            clone,
            &["report", "--json"],
            &[
                ("GITPRIO_AGENT", "alice"),
                ("GITPRIO_NOW", "2026-11-02T11:00:00Z"),
            ],
        );
        assert_eq!(report.code, 0, "{report}");
        let report = report.json();
        assert_eq!(
            report["summary"]["totals"]["requests"], 1,
            "{clone}: {report}"
        );
        assert_eq!(
            report["summary"]["totals"]["output"], 50,
            "{clone}: {report}"
        );
    }
}

/// `usage record` by hand beside the same model's requests read from the agent's log, in
/// one run and one stretch of time: both count, and `usage show` says so.
#[test]
fn hand_recorded_usage_beside_log_read_usage_of_its_model_is_named() {
    let env = TestEnv::new();
    setup(&env);
    claim(&env, "a", "alice", "cache");
    let alice = env.path("a").display().to_string();
    one_request(&env, &alice, "s-alice", "2026-11-02T09:05:00Z");
    let imported = import_in(&env, "a", "alice", "2026-11-02T09:10:00Z", &["--json"]);
    assert_eq!(imported.code, 0, "{imported}");
    let by_hand = env.run_with(
        "a",
        &[
            "usage",
            "record",
            "--model",
            "claude-sonnet-4-5-20250929",
            "--output",
            "50",
        ],
        &[
            ("GITPRIO_AGENT", "alice"),
            ("GITPRIO_NOW", "2026-11-02T09:12:00Z"),
        ],
    );
    assert_eq!(by_hand.code, 0, "{by_hand}");
    let show = agent(&env, "a", "alice", &["usage", "show", "cache"]);
    assert_eq!(show.code, 0, "{show}");
    assert!(
        show.stderr.contains(
            "warning: cache run 1-20261102T090000Z holds 50 tokens of claude-sonnet-4-5-20250929 recorded by hand"
        ),
        "{show}"
    );
    // An import that brings more of the model's requests, from before the hand record,
    // says so too.
    write_transcript(
        &env,
        "s-alice-2.jsonl",
        &[claude_usage_line(
            &alice,
            "s-alice-2",
            "m2",
            "2026-11-02T09:11:00Z",
            SOME_USAGE,
            "",
        )],
    );
    let more = import_in(&env, "a", "alice", "2026-11-02T09:14:00Z", &["--json"]);
    assert_eq!(more.code, 0, "{more}");
    assert!(
        more.stderr.contains(
            "warning: cache run 1-20261102T090000Z holds 50 tokens of claude-sonnet-4-5-20250929 recorded by hand beside 160 read"
        ),
        "{more}"
    );
    // A model recorded by hand alone is nothing to warn of.
    let other = agent(&env, "b", "bob", &["claim", "--json", "--type", "docs"]);
    assert_eq!(other.code, 0, "{other}");
    let alone = agent(
        &env,
        "b",
        "bob",
        &[
            "usage",
            "record",
            "--model",
            "claude-haiku-4-5",
            "--output",
            "5",
        ],
    );
    assert_eq!(alone.code, 0, "{alone}");
    let quiet = agent(&env, "b", "bob", &["usage", "show", "docs"]);
    assert!(!quiet.stderr.contains("recorded by hand"), "{quiet}");
}
