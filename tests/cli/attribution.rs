//! Which run an imported record belongs to, once: `--task` takes only what no other run
//! claims, and the unattributed store never keeps what the ledger already holds.

use crate::common::TestEnv;
use crate::usage::{
    SOME_USAGE, agent, claim, claude_usage_line, import_in, one_request, recorded, setup,
    write_transcript,
};

/// The requests the ledger holds for `task` (its first run), as `usage show` reads them.
fn requests_of(env: &TestEnv, task: &str) -> u64 {
    let show = agent(env, "a", "alice", &["usage", "show", task, "--json"]);
    show.json()["runs"][0]["totals"]["requests"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn usage_import_with_a_task_takes_only_records_no_other_run_claims() {
    let env = TestEnv::new();
    setup(&env);
    claim(&env, "a", "alice", "cache");
    claim(&env, "b", "bob", "docs");
    let alice = env.path("a").display().to_string();
    let outside = env.path("scratch").display().to_string();
    let line = |cwd: &str, session: &str, message: &str, at: &str| {
        claude_usage_line(cwd, session, message, at, SOME_USAGE, "")
    };
    write_transcript(
        &env,
        "s-alice.jsonl",
        &[line(&alice, "s-alice", "m1", "2026-11-02T09:05:00Z")],
    );
    write_transcript(
        &env,
        "s-out.jsonl",
        &[line(&outside, "s-out", "m2", "2026-11-02T09:06:00Z")],
    );
    // Alice's request is in her worktree, so it is her run's, in the ledger already.
    let first = import_in(&env, "a", "alice", "2026-11-02T09:10:00Z", &["--json"]);
    assert_eq!(first.code, 0, "{first}");
    assert_eq!(recorded(&first.json()), 1, "{first}");
    // Bob's `--task docs` in his clone, reading the same logs: alice's request stays hers
    // (by worktree, and because the ledger holds it); only the one no run claims is his.
    let bob = import_in(
        &env,
        "b",
        "bob",
        "2026-11-02T09:11:00Z",
        &["--json", "--task", "docs"],
    );
    assert_eq!(bob.code, 0, "{bob}");
    assert_eq!(requests_of(&env, "docs"), 1, "{bob}");
    assert_eq!(requests_of(&env, "cache"), 1, "{bob}");
    // And a later `--task cache` in alice's clone does not take the request docs holds,
    // though no worktree or session ties it to docs: the ledger does.
    let again = import_in(
        &env,
        "a",
        "alice",
        "2026-11-02T09:12:00Z",
        &["--json", "--task", "cache"],
    );
    assert_eq!(again.code, 0, "{again}");
    assert_eq!(requests_of(&env, "cache"), 1, "{again}");
    assert_eq!(requests_of(&env, "docs"), 1, "{again}");
    let report = agent(&env, "a", "alice", &["report", "--json", "--offline"]).json();
    assert_eq!(report["summary"]["totals"]["requests"], 2, "{report}");
}

#[test]
fn a_record_another_clone_gave_to_a_run_leaves_this_clones_unattributed_store() {
    let env = TestEnv::new();
    setup(&env);
    claim(&env, "a", "alice", "cache");
    claim(&env, "b", "bob", "docs");
    // Docs' run is in the ledger before alice's clone first looks: only its records change.
    let by_hand = [
        "usage",
        "record",
        "--model",
        "claude-haiku-4-5",
        "--input",
        "1",
    ];
    let recorded_by_hand = agent(&env, "b", "bob", &by_hand);
    assert_eq!(recorded_by_hand.code, 0, "{recorded_by_hand}");
    let outside = env.path("scratch").display().to_string();
    one_request(&env, &outside, "s-out", "2026-11-02T09:06:00Z");
    // No run of alice's clone claims it: kept there.
    let first = import_in(&env, "a", "alice", "2026-11-02T09:10:00Z", &["--json"]);
    assert_eq!(first.json()["unattributed_kept"], 1, "{first}");
    // Bob's clone gives it to docs.
    let bob = import_in(
        &env,
        "b",
        "bob",
        "2026-11-02T09:11:00Z",
        &["--json", "--task", "docs"],
    );
    assert_eq!(recorded(&bob.json()), 1, "{bob}");
    // Alice's next import learns that the ledger holds it: nothing is left unattributed,
    // and all of the spend imported here is tied to a task.
    let later = import_in(&env, "a", "alice", "2026-11-02T09:12:00Z", &["--json"]);
    assert_eq!(later.code, 0, "{later}");
    assert_eq!(later.json()["unattributed_kept"], 0, "{later}");
    assert_eq!(later.json()["unattributed_kept_tokens"], 0, "{later}");
    assert_eq!(requests_of(&env, "docs"), 2, "{later}");
    let report = agent(&env, "a", "alice", &["report", "--json", "--offline"]).json();
    assert_eq!(report["attribution"]["unattributed_tokens"], 0, "{report}");
    assert_eq!(report["attribution"]["tied_share"], 1.0, "{report}");
}

/// `report --json --offline` in alice's clone at 11:00, with `args`.
fn report_at_eleven(env: &TestEnv, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["report", "--json", "--offline"];
    all.extend_from_slice(args);
    let output = env.run_with(
        "a",
        &all,
        &[
            ("GITPRIO_AGENT", "alice"),
            ("GITPRIO_NOW", "2026-11-02T11:00:00Z"),
        ],
    );
    assert_eq!(output.code, 0, "{output}");
    output.json()
}

#[test]
fn the_unattributed_side_of_the_tied_share_follows_since_and_until_to_the_second() {
    let env = TestEnv::new();
    setup(&env);
    claim(&env, "a", "alice", "cache");
    let alice = env.path("a").display().to_string();
    let outside = env.path("scratch").display().to_string();
    write_transcript(
        &env,
        "s-mixed.jsonl",
        &[
            claude_usage_line(&alice, "s-a", "m1", "2026-11-02T09:05:00Z", SOME_USAGE, ""),
            claude_usage_line(
                &outside,
                "s-o",
                "m2",
                "2026-11-02T10:20:00Z",
                SOME_USAGE,
                "",
            ),
        ],
    );
    let import = import_in(&env, "a", "alice", "2026-11-02T10:30:00Z", &["--json"]);
    assert_eq!(import.json()["unattributed_kept_tokens"], 160, "{import}");
    // The request at 10:20 ran outside this repository: another project's, apart from
    // the share and filtered as the share would be.
    let unattributed = |args: &[&str]| {
        let report = report_at_eleven(&env, args);
        let share = &report["attribution"];
        (
            share["other_projects_tokens"].as_u64().unwrap(),
            share["tied_share"].as_f64().unwrap(),
        )
    };
    assert_eq!(unattributed(&[]), (160, 1.0));
    // The only unattributed request is at 10:20: a bound within its hour cuts exactly.
    assert_eq!(unattributed(&["--until", "2026-11-02T10:19:59Z"]), (0, 1.0));
    assert_eq!(unattributed(&["--until", "2026-11-02T10:00:00Z"]), (0, 1.0));
    assert_eq!(
        unattributed(&["--until", "2026-11-02T10:20:01Z"]),
        (160, 1.0)
    );
    assert_eq!(
        unattributed(&[
            "--since",
            "2026-11-02T09:00:00Z",
            "--until",
            "2026-11-02T10:00:00Z"
        ]),
        (0, 1.0)
    );
}

/// Imports the Gemini chats under `gemini` at 09:10: one goes to alice's run of
/// `cache`, the other stays unattributed.
fn one_chat_is_caches_and_one_unattributed(env: &TestEnv, gemini: &str) {
    let import = import_in(
        env,
        "a",
        "alice",
        "2026-11-02T09:10:00Z",
        &[gemini, "--json"],
    );
    assert_eq!(import.code, 0, "{import}");
    assert_eq!(recorded(&import.json()), 1, "{import}");
    assert_eq!(import.json()["unattributed"], 1, "{import}");
    assert_eq!(requests_of(env, "cache"), 1, "{import}");
}

/// Gemini CLI's `projectHash` of `path`: its SHA-256 in hex.
fn gemini_project_hash(path: &str) -> String {
    use sha2::Digest as _;
    use std::fmt::Write as _;
    sha2::Sha256::digest(path.as_bytes())
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

#[test]
fn a_gemini_chat_in_a_runs_worktree_is_that_runs_by_its_project_hash() {
    let env = TestEnv::new();
    setup(&env);
    claim(&env, "a", "alice", "cache");
    let worktree = env.path("a").display().to_string();
    let hash = gemini_project_hash(&worktree);
    // Gemini CLI 0.61 writes a chat as JSON lines: a header, then one line per message.
    let chats = env.path(&format!("gemini/tmp/{hash}/chats"));
    std::fs::create_dir_all(&chats).unwrap();
    let other = gemini_project_hash(&env.path("elsewhere").display().to_string());
    let chat = |project: &str, session: &str| {
        format!(
            "{{\"sessionId\":\"{session}\",\"projectHash\":\"{project}\",\"startTime\":\"2026-11-02T09:01:00Z\",\"lastUpdated\":\"2026-11-02T09:02:00Z\",\"kind\":\"main\"}}\n\
             {{\"id\":\"u1\",\"timestamp\":\"2026-11-02T09:01:00Z\",\"type\":\"user\",\"content\":[{{\"text\":\"hi\"}}]}}\n\
             {{\"id\":\"g1\",\"timestamp\":\"2026-11-02T09:02:00Z\",\"type\":\"gemini\",\"content\":\"ok\",\"model\":\"gemini-2.5-pro\",\"tokens\":{{\"input\":1000,\"output\":50,\"cached\":400,\"thoughts\":10,\"tool\":0,\"total\":1060}}}}\n"
        )
    };
    std::fs::write(chats.join("session-here.jsonl"), chat(&hash, "g-here")).unwrap();
    std::fs::write(chats.join("session-other.jsonl"), chat(&other, "g-other")).unwrap();
    let gemini = env.path("gemini/tmp").display().to_string();
    one_chat_is_caches_and_one_unattributed(&env, &gemini);
}

#[test]
fn usage_import_names_only_the_runs_that_got_records_and_sums_up_in_one_line() {
    let env = TestEnv::new();
    setup(&env);
    claim(&env, "a", "alice", "cache");
    let alice = env.path("a").display().to_string();
    one_request(&env, &alice, "s-alice", "2026-11-02T09:05:00Z");
    let first = import_in(&env, "a", "alice", "2026-11-02T09:10:00Z", &[]);
    assert_eq!(first.code, 0, "{first}");
    assert!(
        first
            .stderr
            .contains("cache 1-20261102T090000Z: 1 new record\n"),
        "{first}"
    );
    assert!(
        first.stderr.contains("info: 1 new record in 1 run\n"),
        "{first}"
    );
    // Bob's clone reads the same logs: the request is cache's already, nothing is new.
    let second = import_in(&env, "b", "bob", "2026-11-02T09:11:00Z", &[]);
    assert_eq!(second.code, 0, "{second}");
    assert!(!second.stderr.contains("cache 1-"), "{second}");
    assert!(
        second.stderr.contains("info: 0 new records in 0 runs\n"),
        "{second}"
    );
}

#[test]
fn a_request_where_two_runs_are_open_at_once_is_said_to_be_ambiguous() {
    let env = TestEnv::new();
    setup(&env);
    // Two agents hold a task each in the same clone: its directory is both runs'.
    claim(&env, "a", "alice", "cache");
    claim(&env, "a", "bob", "login");
    let shared = env.path("a").display().to_string();
    one_request(&env, &shared, "s-shared", "2026-11-02T09:05:00Z");
    let import = import_in(&env, "a", "alice", "2026-11-02T09:10:00Z", &[]);
    assert_eq!(import.code, 0, "{import}");
    assert!(
        import
            .stderr
            .contains("warning: 1 record ran where two runs were open at once (cache "),
        "{import}"
    );
    assert!(import.stderr.contains(" and login "), "{import}");
}

/// The tied share sets the tied spend against this repository's unattributed spend only
/// (its checkout and worktrees, outside every run); other projects' sessions on the
/// machine and records that name no directory are shown apart (walk16 B8).
#[test]
fn the_tied_share_leaves_other_projects_and_records_without_a_directory_apart() {
    let env = TestEnv::new();
    setup(&env);
    claim(&env, "a", "alice", "cache");
    env.git("a", &["worktree", "add", "--quiet", "../a-linked"]);
    let here = |path: &str| env.path(path).display().to_string();
    let line = |cwd: &str, message: &str, at: &str| {
        claude_usage_line(cwd, "s-p", message, at, SOME_USAGE, "")
    };
    let nowhere = line("NOWHERE", "m5", "2026-11-02T09:15:00Z").replace(r#""cwd":"NOWHERE","#, "");
    write_transcript(
        &env,
        "s-p.jsonl",
        &[
            // Tied: in alice's run.
            line(&here("a"), "m1", "2026-11-02T09:05:00Z"),
            // This repository's, before the run: its checkout and a linked worktree.
            line(&here("a/src"), "m2", "2026-11-02T08:30:00Z"),
            line(&here("a-linked"), "m3", "2026-11-02T08:40:00Z"),
            // Another project's.
            line(&here("elsewhere"), "m4", "2026-11-02T09:10:00Z"),
            nowhere,
        ],
    );
    let import = import_in(&env, "a", "alice", "2026-11-02T10:30:00Z", &["--json"]);
    assert_eq!(import.code, 0, "{import}");
    assert_eq!(import.json()["unattributed"], 4, "{import}");
    let report = report_at_eleven(&env, &[]);
    let share = &report["attribution"];
    let figures: Vec<u64> = [
        "tied_tokens",
        "unattributed_tokens",
        "other_projects_tokens",
        "unplaced_tokens",
    ]
    .iter()
    .map(|key| share[key].as_u64().unwrap_or(u64::MAX))
    .collect();
    assert_eq!(figures, [160, 320, 160, 160], "{report}");
    let tied = share["tied_share"].as_f64().unwrap();
    assert!((tied - 1.0 / 3.0).abs() < 1e-9, "{report}");
    // Every view of the machine's spend still counts them all.
    assert_eq!(
        report["spend"]["by_day"][0]["unattributed_tokens"], 640,
        "{report}"
    );
    let formats = [
        ("table", "other projects"),
        ("md", "other projects"),
        ("html", "other projects"),
    ];
    for (format, row) in formats {
        let output = env.run_with(
            "a",
            &["report", "--offline", "--format", format],
            &[
                ("GITPRIO_AGENT", "alice"),
                ("GITPRIO_NOW", "2026-11-02T11:00:00Z"),
            ],
        );
        for text in [
            row,
            "33% of 480 tokens",
            "320 unattributed in this repository's checkout and worktrees",
            "sessions on this machine outside this repository, not in the share",
            "no directory",
            "name no directory (no cwd)",
        ] {
            assert!(output.stdout.contains(text), "{format}: {text}: {output}");
        }
    }
}

/// A Gemini CLI chat started in a subdirectory of a run's worktree names that
/// subdirectory's hash: it is the run's, matched by the hashes of the directories the
/// worktree's `HEAD` tracks; a chat in a directory no commit tracks stays unattributed,
/// as another project's (walk16 B3).
#[test]
fn a_gemini_chat_started_in_a_subdirectory_of_a_worktree_is_that_runs() {
    let env = TestEnv::new();
    setup(&env);
    claim(&env, "a", "alice", "cache");
    let deep = env.path("a/src/deep");
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("lib.rs"), "// deep\n").unwrap();
    env.git("a", &["add", "src"]);
    env.git("a", &["commit", "--quiet", "-m", "src"]);
    std::fs::create_dir_all(env.path("a/scratch")).unwrap();
    let gemini = env.path("gemini/tmp").display().to_string();
    for (session, directory) in [("g-deep", "a/src/deep"), ("g-scratch", "a/scratch")] {
        let hash = gemini_project_hash(&env.path(directory).display().to_string());
        // Gemini CLI writes a chat under the hash of the directory it was started in.
        let chats = env.path(&format!("gemini/tmp/{hash}/chats"));
        std::fs::create_dir_all(&chats).unwrap();
        std::fs::write(
            chats.join(format!("session-{session}.json")),
            format!(
                r#"{{"sessionId":"{session}","projectHash":"{hash}","startTime":"2026-11-02T09:01:00.000Z","lastUpdated":"2026-11-02T09:02:00.000Z","messages":[{{"id":"u-{session}","timestamp":"2026-11-02T09:01:00.000Z","type":"user","content":[{{"text":"hi"}}]}},{{"id":"m-{session}","timestamp":"2026-11-02T09:02:00.000Z","type":"gemini","content":"ok","thoughts":[],"tokens":{{"input":1000,"output":50,"cached":400,"thoughts":10,"tool":0,"total":1060}},"model":"gemini-2.5-pro"}}]}}"#
            ),
        )
        .unwrap();
    }
    one_chat_is_caches_and_one_unattributed(&env, &gemini);
}
