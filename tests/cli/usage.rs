//! Usage flows into the git ledger and out as reports; budgets stop a run.

use crate::assert_output;
use crate::common::{Output, TestEnv};

const T0: &str = "2026-11-02T09:00:00Z";

/// Records 1,000 output tokens of a priced model by hand.
pub const SPEND: [&str; 6] = [
    "usage",
    "record",
    "--model",
    "claude-sonnet-4-5",
    "--output",
    "1000",
];

fn task(title: &str, kind: &str, value: u32, budget: Option<&str>) -> String {
    let budget = budget
        .map(|budget| format!("budget: {budget}\n"))
        .unwrap_or_default();
    format!(
        "---\ntitle: {title}\ntype: {kind}\nfeature: auth\nvalue: {value}\n{budget}---\nDo {title}.\n"
    )
}

pub fn setup(env: &TestEnv) {
    std::fs::create_dir_all(env.path("remote.git")).unwrap();
    env.git(
        "remote.git",
        &["init", "--quiet", "--bare", "--initial-branch=main"],
    );
    env.repo(
        "seed",
        &[
            (".tasks/login.md", &task("Login", "bug", 5, Some("300k"))),
            (".tasks/docs.md", &task("Docs", "docs", 2, None)),
            (".tasks/cache.md", &task("Cache", "feature", 8, None)),
            (
                ".tasks/prices.yaml",
                "house-model: {input: 1, output: 2, cache_read: 0.1}\n",
            ),
        ],
    );
    env.git("seed", &["push", "--quiet", "../remote.git", "main"]);
    for clone in ["a", "b", "reader"] {
        env.git(".", &["clone", "--quiet", "remote.git", clone]);
    }
}

pub fn agent(env: &TestEnv, dir: &str, name: &str, args: &[&str]) -> Output {
    env.run_with(dir, args, &[("GITPRIO_AGENT", name), ("GITPRIO_NOW", T0)])
}

/// Claims `id`, picked by its type: with several agents active, claim deals out the top tasks.
pub fn claim(env: &TestEnv, dir: &str, name: &str, id: &str) {
    let kind = match id {
        "login" => "bug",
        "docs" => "docs",
        _ => "feature",
    };
    let output = agent(env, dir, name, &["claim", "--json", "--type", kind]);
    assert_eq!(output.code, 0, "{output}");
    assert_eq!(output.json()["task"]["id"], id, "{output}");
}

fn record(env: &TestEnv, dir: &str, name: &str, args: &[&str]) -> Output {
    let mut all = vec!["usage", "record"];
    all.extend_from_slice(args);
    agent(env, dir, name, &all)
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one end-to-end scenario: record, totals, budget stop"
)]
fn usage_is_recorded_in_git_once_and_budgets_stop_the_run() {
    let env = TestEnv::new();
    setup(&env);
    claim(&env, "a", "alice", "cache");
    let first = record(
        &env,
        "a",
        "alice",
        &[
            "--model",
            "claude-sonnet-4-5",
            "--input",
            "1000",
            "--output",
            "20000",
            "--cache-read",
            "100000",
            "--key",
            "req-1",
            "--json",
        ],
    );
    assert_eq!(first.code, 0, "{first}");
    assert_eq!(first.json()["tokens"], 121_000);
    // The same request recorded again (same key) counts once.
    let again = record(
        &env,
        "a",
        "alice",
        &[
            "--model",
            "claude-sonnet-4-5",
            "--input",
            "1000",
            "--output",
            "20000",
            "--cache-read",
            "100000",
            "--key",
            "req-1",
            "--json",
        ],
    );
    assert_eq!(again.json()["added"], 0, "{again}");
    assert_eq!(again.json()["tokens"], 121_000);
    // JSON lines on stdin, for tools that collect usage themselves.
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gitprio"));
    command
        .current_dir(env.path("a"))
        .args(["usage", "record", "--stdin", "--json"])
        .env("GITPRIO_AGENT", "alice")
        .env("GITPRIO_NOW", T0)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("HOME", env.path("home"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        b"{\"model\":\"house-model\",\"input\":500,\"output\":500,\"key\":\"h1\"}\n{\"model\":\"house-model\",\"input\":500,\"output\":500,\"key\":\"h2\"}\n",
    )
    .unwrap();
    let stdin = child.wait_with_output().unwrap();
    assert!(stdin.status.success());
    let json: serde_json::Value = serde_json::from_slice(&stdin.stdout).unwrap();
    assert_eq!(json["added"], 2);
    assert_eq!(json["tokens"], 123_000);
    assert_eq!(agent(&env, "a", "alice", &["done"]).code, 0);

    // Any clone reads the ledger from the remote.
    let show = agent(&env, "reader", "carol", &["usage", "show", "cache"]);
    assert_output!(show);
    let log = env.git(
        "remote.git",
        &["log", "--format=%s", "refs/gitprio/usage/cache"],
    );
    assert_eq!(log.lines().count(), 3, "{log}");

    // Over budget: usage record and heartbeat answer 5.
    claim(&env, "b", "bob", "login");
    let over = record(
        &env,
        "b",
        "bob",
        &[
            "--model",
            "claude-opus-4-6",
            "--input",
            "100",
            "--output",
            "400000",
        ],
    );
    assert_eq!(over.code, 5, "{over}");
    assert!(
        over.stderr
            .contains("budget exceeded on `login`: 400100 tokens spent of 300000"),
        "{over}"
    );
    let heartbeat = agent(&env, "b", "bob", &["heartbeat"]);
    assert_eq!(heartbeat.code, 5, "{heartbeat}");
    let release = agent(
        &env,
        "b",
        "bob",
        &["release", "--failed", "--reason", "over budget"],
    );
    assert_eq!(release.code, 0, "{release}");
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one end-to-end scenario across every report format"
)]
fn reports_show_value_per_token_and_waste_in_every_format() {
    let env = TestEnv::new();
    setup(&env);
    // Three runs: a completed one, a failed one, and a completed retry.
    claim(&env, "a", "alice", "cache");
    record(
        &env,
        "a",
        "alice",
        &[
            "--model",
            "claude-sonnet-4-5",
            "--input",
            "2000",
            "--output",
            "50000",
            "--cache-read",
            "400000",
            "--cache-write",
            "20000",
        ],
    );
    assert_eq!(agent(&env, "a", "alice", &["done"]).code, 0);
    claim(&env, "b", "bob", "login");
    record(
        &env,
        "b",
        "bob",
        &[
            "--model",
            "claude-opus-4-6",
            "--input",
            "5000",
            "--output",
            "90000",
            "--cache-read",
            "100000",
        ],
    );
    assert_eq!(
        agent(
            &env,
            "b",
            "bob",
            &["release", "--failed", "--reason", "tests fail"]
        )
        .code,
        0
    );
    claim(&env, "b", "bob", "login");
    record(
        &env,
        "b",
        "bob",
        &[
            "--model",
            "claude-haiku-4-5",
            "--input",
            "1000",
            "--output",
            "30000",
            "--cache-read",
            "60000",
        ],
    );
    record(
        &env,
        "b",
        "bob",
        &[
            "--model",
            "unknown-model",
            "--input",
            "10",
            "--output",
            "10",
        ],
    );
    assert_eq!(agent(&env, "b", "bob", &["done"]).code, 0);

    let table = agent(&env, "reader", "carol", &["report", "--by", "agent"]);
    assert_output!(table);
    let json = agent(&env, "reader", "carol", &["report", "--json"]);
    let report = json.json();
    assert_eq!(report["summary"]["completed_tasks"], 2);
    assert_eq!(report["summary"]["value_points"], 13);
    assert_eq!(report["summary"]["tokens"], 758_020);
    assert_eq!(report["summary"]["unpriced_tokens"], 20);
    assert_eq!(
        report["waste"]["unfinished_runs"].as_array().unwrap().len(),
        1
    );
    assert_eq!(report["waste"]["retried_tasks"][0][0], "login");
    assert_dollars_are_rounded(&report);
    let markdown = agent(
        &env,
        "reader",
        "carol",
        &["report", "--format", "md", "--by", "type"],
    );
    assert_output!(markdown);
    let filtered = agent(
        &env,
        "reader",
        "carol",
        &["report", "--json", "--task", "cache"],
    );
    assert_eq!(filtered.json()["summary"]["runs"], 1);
    let page = env.path("report.html");
    let html = agent(
        &env,
        "reader",
        "carol",
        &["report", "--format", "html", "-o", page.to_str().unwrap()],
    );
    assert_eq!(html.code, 0, "{html}");
    let text = std::fs::read_to_string(&page).unwrap();
    assert_well_formed(&text);
    // Tokens per task, value per group, the trend over time, cost by model and by agent.
    assert_eq!(text.matches("<svg").count(), 5);
    assert!(!text.contains("NaN"));
    assert!(text.contains("Completed tasks by tokens spent"));
    assert!(text.contains("Grouped by type: every run in the group counts"));
    assert!(text.contains("<h3 id=\"task-login\">login</h3>"));

    // And in a real browser: every chart and table is laid out and drawn, nothing overflows.
    if let Some(page) = crate::browser::render(&page, env.root.path()) {
        assert_eq!(page["title"], "gitprio report");
        let figures = page["figures"].as_array().unwrap();
        assert_eq!(figures.len(), 5, "{page}");
        let captions: Vec<&str> = figures
            .iter()
            .map(|figure| figure["caption"].as_str().unwrap())
            .collect();
        assert!(
            captions.contains(&"Cost by model (priced tokens)"),
            "{page}"
        );
        assert!(
            captions.contains(&"Cost by agent (priced tokens)"),
            "{page}"
        );
        assert!(
            captions
                .iter()
                .any(|caption| caption.starts_with("Cost per day")),
            "{page}"
        );
        // Every table says what its rows are: the groups, then one table per task.
        let tables = page["captions"].as_array().unwrap();
        assert_eq!(tables.len(), 3, "{page}");
        assert!(
            tables[0].as_str().unwrap().starts_with("Grouped by type"),
            "{page}"
        );
        assert!(
            page["headings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|heading| heading == "cache"),
            "{page}"
        );
        for figure in figures {
            let svg = figure["svg"].as_array().unwrap();
            assert!(svg[0].as_f64().unwrap() > 100.0, "{page}");
            assert!(svg[1].as_f64().unwrap() > 20.0, "{page}");
            assert!(figure["drawn_bars"].as_u64().unwrap() >= 1, "{page}");
        }
        assert!(page["table_rows"].as_u64().unwrap() >= 4, "{page}");
        assert_eq!(page["horizontal_overflow"], false, "{page}");
        assert_eq!(page["headings"][0], "gitprio: value per token");
    }
}

/// Checks that every element is closed in order, as an HTML validator would (void elements aside).
fn assert_well_formed(html: &str) {
    const VOID: &[&str] = &["meta", "br", "hr", "img", "input", "link", "rect"];
    let mut open: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').expect("unclosed tag") + start;
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') {
            continue;
        }
        let self_closing = tag.ends_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect();
        if tag.starts_with('/') {
            assert_eq!(
                open.pop().as_deref(),
                Some(name.as_str()),
                "mismatched </{name}>"
            );
        } else if !self_closing && !VOID.contains(&name.as_str()) {
            open.push(name.clone());
        }
        if name == "style" && !tag.starts_with('/') {
            let close = rest.find("</style>").expect("unclosed style");
            rest = &rest[close..];
        }
    }
    assert!(open.is_empty(), "unclosed elements: {open:?}");
}

/// A Claude Code transcript line of one streamed copy of an assistant message.
fn claude_line(cwd: &str, message: &str, request: &str, at: &str, output: u64) -> String {
    format!(
        r#"{{"parentUuid":null,"isSidechain":false,"userType":"external","cwd":"{cwd}","sessionId":"s-1","version":"1.0.65","gitBranch":"main","message":{{"id":"{message}","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{{"type":"text","text":"working"}}],"usage":{{"input_tokens":4,"cache_creation_input_tokens":1000,"cache_read_input_tokens":20000,"cache_creation":{{"ephemeral_5m_input_tokens":1000,"ephemeral_1h_input_tokens":0}},"output_tokens":{output}}}}},"requestId":"{request}","type":"assistant","uuid":"u-{message}-{output}","timestamp":"{at}"}}"#
    )
}

#[test]
fn agent_logs_are_imported_into_the_run_they_belong_to_once() {
    let env = TestEnv::new();
    setup(&env);
    claim(&env, "a", "alice", "cache");
    let cwd = env.path("a").display().to_string();
    let other = env.path("elsewhere").display().to_string();
    let projects = env.path("claude/projects/-a");
    std::fs::create_dir_all(&projects).unwrap();
    let transcript = [
        // One request streamed in three copies: counted once, with the final output.
        claude_line(&cwd, "msg_1", "req_1", "2026-11-02T09:01:00Z", 1),
        claude_line(&cwd, "msg_1", "req_1", "2026-11-02T09:01:00Z", 2),
        claude_line(&cwd, "msg_1", "req_1", "2026-11-02T09:01:00Z", 700),
        r#"{"type":"assistant","message":{"usage":{"input_tokens": truncated"#.to_owned(),
        claude_line(&cwd, "msg_2", "req_2", "2026-11-02T09:02:00Z", 300),
        // Another project's request at the same time belongs to no run here.
        claude_line(&other, "msg_3", "req_3", "2026-11-02T09:03:00Z", 999),
    ]
    .join("\n");
    std::fs::write(projects.join("s-1.jsonl"), transcript + "\n").unwrap();
    let claude_dir = env.path("claude").display().to_string();
    let import = |args: &[&str]| {
        let mut all = vec!["usage", "import"];
        all.extend_from_slice(args);
        env.run_with(
            "a",
            &all,
            &[
                ("GITPRIO_AGENT", "alice"),
                ("GITPRIO_NOW", "2026-11-02T09:10:00Z"),
                ("CLAUDE_CONFIG_DIR", &claude_dir),
            ],
        )
    };
    let first = import(&["--json"]);
    assert_eq!(first.code, 0, "{first}");
    let summary = first.json();
    assert_eq!(summary["report"]["malformed_lines"], 1, "{first}");
    assert_eq!(summary["unattributed"], 1, "{first}");
    let recorded: u64 = summary["recorded"]
        .as_object()
        .unwrap()
        .values()
        .map(|added| added.as_u64().unwrap())
        .sum();
    assert_eq!(recorded, 2, "{first}");
    // Importing again reads nothing new and changes nothing.
    let again = import(&["--json"]);
    assert_eq!(again.json()["report"]["bytes_read"], 0, "{again}");
    let show = agent(&env, "a", "alice", &["usage", "show", "cache", "--json"]);
    let run = &show.json()["runs"][0];
    assert_eq!(run["totals"]["output"], 1000);
    assert_eq!(run["totals"]["cache_read"], 40_000);
    assert_eq!(run["totals"]["cache_write_5m"], 2_000);
    assert_eq!(run["totals"]["input"], 8);
    assert_eq!(run["totals"]["requests"], 2);
}

#[test]
fn usage_import_confirms_on_stderr_and_keeps_stdout_for_data() {
    let env = TestEnv::new();
    setup(&env);
    let now = "2026-11-02T09:10:00Z";
    let nothing = import_in(&env, "a", "alice", now, &[]);
    claim(&env, "a", "alice", "cache");
    let cwd = env.path("a").display().to_string();
    let other = env.path("elsewhere").display().to_string();
    write_transcript(
        &env,
        "s-1.jsonl",
        &[
            claude_line(&cwd, "msg_1", "req_1", "2026-11-02T09:01:00Z", 700),
            claude_line(&other, "msg_2", "req_2", "2026-11-02T09:02:00Z", 300),
        ],
    );
    let imported = import_in(&env, "a", "alice", now, &[]);
    // The transcript names the worktree, whose path (and so the byte count) varies.
    insta::with_settings!({ filters => vec![(r"\d+ bytes", "[N] bytes")] }, {
        insta::assert_snapshot!(format!("{nothing}=== after a session\n{imported}"));
    });
}

#[test]
fn an_unusable_unattributed_store_is_named_with_its_cause_once() {
    let env = TestEnv::new();
    setup(&env);
    claim(&env, "a", "alice", "cache");
    let other = env.path("elsewhere").display().to_string();
    let line = claude_line(&other, "msg_1", "req_1", "2026-11-02T09:01:00Z", 300);
    write_transcript(&env, "s-1.jsonl", &[line]);
    std::fs::create_dir_all(env.path("a/.git/gitprio")).unwrap();
    std::fs::write(env.path("a/.git/gitprio/usage-unattributed"), "").unwrap();
    assert_output!(import_in(&env, "a", "alice", "2026-11-02T09:10:00Z", &[]));
}

/// A transcript line of one request with `usage` as given, in session `session`.
pub fn claude_usage_line(
    cwd: &str,
    session: &str,
    message: &str,
    at: &str,
    usage: &str,
    extra: &str,
) -> String {
    format!(
        r#"{{"parentUuid":null,"isSidechain":false,"userType":"external","cwd":"{cwd}","sessionId":"{session}","version":"2.1.27","gitBranch":"main",{extra}"message":{{"id":"{message}","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{{"type":"text","text":"x"}}],"usage":{usage}}},"requestId":"req-{message}","type":"assistant","uuid":"u-{message}","timestamp":"{at}"}}"#
    )
}

pub const SOME_USAGE: &str = r#"{"input_tokens":10,"cache_creation_input_tokens":0,"cache_read_input_tokens":100,"output_tokens":50}"#;

/// Writes the Claude Code transcript `<session>.jsonl`: one request (message `m1`,
/// [`SOME_USAGE`]) made at `at` in the directory `cwd`.
pub fn one_request(env: &TestEnv, cwd: &str, session: &str, at: &str) {
    write_transcript(
        env,
        &format!("{session}.jsonl"),
        &[claude_usage_line(cwd, session, "m1", at, SOME_USAGE, "")],
    );
}

/// Runs `gitprio usage import` in `dir` as `name` at `now`, over the logs under `claude`.
pub fn import_in(env: &TestEnv, dir: &str, name: &str, now: &str, args: &[&str]) -> Output {
    let claude_dir = env.path("claude").display().to_string();
    let mut all = vec!["usage", "import"];
    all.extend_from_slice(args);
    env.run_with(
        dir,
        &all,
        &[
            ("GITPRIO_AGENT", name),
            ("GITPRIO_NOW", now),
            ("CLAUDE_CONFIG_DIR", &claude_dir),
        ],
    )
}

pub fn write_transcript(env: &TestEnv, name: &str, lines: &[String]) {
    let projects = env.path("claude/projects/-p");
    std::fs::create_dir_all(&projects).unwrap();
    std::fs::write(projects.join(name), lines.join("\n") + "\n").unwrap();
}

pub fn recorded(summary: &serde_json::Value) -> u64 {
    summary["recorded"]
        .as_object()
        .unwrap()
        .values()
        .map(|added| added.as_u64().unwrap())
        .sum()
}

#[test]
fn records_no_run_claims_are_kept_and_given_to_the_run_that_claims_them_later() {
    let env = TestEnv::new();
    setup(&env);
    claim(&env, "a", "alice", "cache");
    // A session started outside every worktree: no run is known to match it.
    let outside = env.path("scratch").display().to_string();
    one_request(&env, &outside, "s-out", "2026-11-02T09:05:00Z");
    let first = import_in(&env, "a", "alice", "2026-11-02T09:10:00Z", &["--json"]);
    assert_eq!(first.code, 0, "{first}");
    assert_eq!(first.json()["unattributed"], 1, "{first}");
    // `--task` claims what the earlier import could not place, though no log changed.
    let claimed = import_in(
        &env,
        "a",
        "alice",
        "2026-11-02T09:11:00Z",
        &["--json", "--task", "cache"],
    );
    assert_eq!(claimed.code, 0, "{claimed}");
    assert_eq!(recorded(&claimed.json()), 1, "{claimed}");
    assert_eq!(claimed.json()["unattributed"], 0, "{claimed}");
    let show = agent(&env, "a", "alice", &["usage", "show", "cache", "--json"]);
    assert_eq!(show.json()["runs"][0]["totals"]["requests"], 1, "{show}");
    // Imported here and all of it tied to a task: 100%, not unknown.
    let report = agent(&env, "a", "alice", &["report", "--json", "--offline"]).json();
    assert_eq!(report["attribution"]["unattributed_tokens"], 0, "{report}");
    assert_eq!(report["attribution"]["tied_share"], 1.0, "{report}");

    // A session in bob's worktree before the run is known here: kept, then attributed
    // by a later import once bob's run reaches the ledger.
    claim(&env, "b", "bob", "login");
    let bob = env.path("b").display().to_string();
    write_transcript(
        &env,
        "s-bob.jsonl",
        &[claude_usage_line(
            &bob,
            "s-bob",
            "m2",
            "2026-11-02T09:06:00Z",
            SOME_USAGE,
            "",
        )],
    );
    let before = import_in(&env, "a", "alice", "2026-11-02T09:12:00Z", &["--json"]);
    assert_eq!(before.json()["unattributed"], 1, "{before}");
    assert_eq!(recorded(&before.json()), 0, "{before}");
    record(
        &env,
        "b",
        "bob",
        &["--model", "claude-haiku-4-5", "--input", "1", "--key", "k"],
    );
    let after = import_in(&env, "a", "alice", "2026-11-02T09:13:00Z", &["--json"]);
    assert_eq!(after.code, 0, "{after}");
    assert_eq!(recorded(&after.json()), 1, "{after}");
    assert_eq!(after.json()["unattributed"], 0, "{after}");
    let show = agent(&env, "a", "alice", &["usage", "show", "login", "--json"]);
    assert_eq!(show.json()["runs"][0]["totals"]["requests"], 2, "{show}");
}

#[test]
fn a_session_in_a_subdirectory_of_the_worktree_is_its_runs_and_only_real_requests_count() {
    let env = TestEnv::new();
    setup(&env);
    claim(&env, "a", "alice", "cache");
    let subdirectory = env.path("a").join("src").display().to_string();
    let zero = r#"{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}"#;
    write_transcript(
        &env,
        "s-sub.jsonl",
        &[
            claude_usage_line(
                &subdirectory,
                "s-sub",
                "m1",
                "2026-11-02T09:01:00Z",
                SOME_USAGE,
                "",
            ),
            claude_usage_line(
                &subdirectory,
                "s-sub",
                "m2",
                "2026-11-02T09:02:00Z",
                SOME_USAGE,
                "",
            ),
            // Neither a line without tokens nor an API error is a request.
            claude_usage_line(
                &subdirectory,
                "s-sub",
                "m3",
                "2026-11-02T09:03:00Z",
                zero,
                "",
            ),
            claude_usage_line(
                &subdirectory,
                "s-sub",
                "m4",
                "2026-11-02T09:04:00Z",
                zero,
                r#""isApiErrorMessage":true,"#,
            ),
        ],
    );
    let import = import_in(&env, "a", "alice", "2026-11-02T09:10:00Z", &["--json"]);
    assert_eq!(import.code, 0, "{import}");
    assert_eq!(import.json()["unattributed"], 0, "{import}");
    assert_eq!(import.json()["report"]["records"], 2, "{import}");
    let show = agent(&env, "a", "alice", &["usage", "show", "cache", "--json"]);
    assert_eq!(show.json()["runs"][0]["totals"]["requests"], 2, "{show}");
}

#[test]
fn tokens_are_dated_by_their_request_and_open_runs_are_in_flight_not_waste() {
    let env = TestEnv::new();
    setup(&env);
    let at = |dir: &str, name: &str, now: &str, args: &[&str]| {
        env.run_with(dir, args, &[("GITPRIO_AGENT", name), ("GITPRIO_NOW", now)])
    };
    // Claimed late on Nov 1 for four days, spent on Nov 2 and 3.
    let claimed = at(
        "a",
        "alice",
        "2026-11-01T23:00:00Z",
        &["claim", "--json", "--type", "feature", "--ttl", "4d"],
    );
    assert_eq!(claimed.code, 0, "{claimed}");
    for (now, key) in [
        ("2026-11-02T10:00:00Z", "r1"),
        ("2026-11-03T10:00:00Z", "r2"),
    ] {
        let output = at("a", "alice", now, &[&SPEND[..], &["--key", key]].concat());
        assert_eq!(output.code, 0, "{output}");
    }
    let report = |args: &[&str]| {
        let mut all = vec!["report", "--json"];
        all.extend_from_slice(args);
        at("reader", "carol", "2026-11-04T00:00:00Z", &all).json()
    };
    // 2026-11-02 is a Monday: the two requests fall in two days, one ISO week, one month.
    for (by, expected) in [
        ("day", &[("2026-11-02", 1000), ("2026-11-03", 1000)][..]),
        ("week", &[("2026-W45", 2000)]),
        ("month", &[("2026-11", 2000)]),
    ] {
        let grouped = report(&["--by", by]);
        let periods: Vec<(&str, u64)> = grouped["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|group| {
                (
                    group["key"].as_str().unwrap(),
                    group["tokens"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(periods, expected, "{grouped}");
        assert_eq!(grouped["group_by"], by, "{grouped}");
    }
    // Filters take each request's own time, not the run's start.
    assert_eq!(
        report(&["--since", "2026-11-02"])["summary"]["tokens"],
        2000
    );
    assert_eq!(
        report(&["--since", "2026-11-03"])["summary"]["tokens"],
        1000
    );
    assert_eq!(report(&["--until", "2026-11-02"])["summary"]["tokens"], 0);
    // The run is still going: it is in flight, not a run that failed to complete.
    let all = report(&[]);
    assert_eq!(
        all["waste"]["unfinished_runs"].as_array().unwrap().len(),
        0,
        "{all}"
    );
    assert_eq!(
        all["waste"]["in_flight_runs"].as_array().unwrap().len(),
        1,
        "{all}"
    );
}

/// The `(first, second)` strings of each object of a JSON array.
fn pairs(list: &serde_json::Value, first: &str, second: &str) -> Vec<(String, String)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|item| {
            (
                item[first].as_str().unwrap().to_owned(),
                item[second].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Runs `args` as agent `name` at `now` in `dir`, and checks that it succeeds.
fn succeeds(env: &TestEnv, dir: &str, name: &str, now: &str, args: &[&str]) -> Output {
    let output = env.run_with(dir, args, &[("GITPRIO_AGENT", name), ("GITPRIO_NOW", now)]);
    assert_eq!(output.code, 0, "{output}");
    output
}

#[test]
fn an_expired_run_without_an_outcome_is_waste_not_in_flight() {
    let env = TestEnv::new();
    setup(&env);
    let at = |dir: &str, name: &str, now: &str, args: &[&str]| succeeds(&env, dir, name, now, args);
    // Alice claims (30 minutes), spends, and stops renewing; nobody reclaims the task.
    at("a", "alice", T0, &["claim", "--json", "--type", "feature"]);
    at("a", "alice", "2026-11-02T09:10:00Z", &SPEND);
    // Bob's run is young when the report is made: it is in flight.
    at(
        "b",
        "bob",
        "2026-11-02T10:45:00Z",
        &["claim", "--json", "--type", "docs"],
    );
    at("b", "bob", "2026-11-02T10:50:00Z", &SPEND);
    let report = at(
        "reader",
        "carol",
        "2026-11-02T11:00:00Z",
        &["report", "--json"],
    )
    .json();
    let runs = |list: &str| pairs(&report["waste"][list], "task", "outcome");
    assert_eq!(
        runs("in_flight_runs"),
        [("docs".to_owned(), "in_flight".to_owned())],
        "{report}"
    );
    assert_eq!(
        runs("unfinished_runs"),
        [("cache".to_owned(), "expired".to_owned())],
        "{report}"
    );
    let expired = &report["waste"]["unfinished_runs"][0];
    assert_eq!(expired["ended_at"], "2026-11-02T09:30:00Z", "{report}");
    assert_eq!(report["waste"]["unfinished_tokens"], 1000, "{report}");
    // The same rule in the metrics, and in the run's own usage.
    let metrics = at(
        "reader",
        "carol",
        "2026-11-02T11:00:00Z",
        &["report", "--format", "openmetrics"],
    )
    .stdout;
    for line in [
        "gitprio_in_flight_runs 1",
        "gitprio_runs_total{type=\"feature\",agent=\"alice\",outcome=\"expired\"} 1",
    ] {
        assert!(
            metrics.lines().any(|found| found == line),
            "{line}: {metrics}"
        );
    }
    // A run in flight is a gauge, not a counter series that would drop when it ends.
    assert!(!metrics.contains("outcome=\"open\""), "{metrics}");
    let show = at(
        "reader",
        "carol",
        "2026-11-02T11:00:00Z",
        &["usage", "show", "cache", "--json"],
    );
    assert_eq!(
        show.json()["runs"][0]["meta"]["outcome"],
        "expired",
        "{show}"
    );
}

/// Completes `cache` (alice) and `docs` (bob), 1,000 and 500 output tokens, and commits
/// their `status: done` to main.
fn complete_cache_and_docs(env: &TestEnv) {
    let at = |dir: &str, name: &str, now: &str, args: &[&str]| succeeds(env, dir, name, now, args);
    for (dir, name, kind, minute, output) in [
        ("a", "alice", "feature", 0, "1000"),
        ("b", "bob", "docs", 20, "500"),
    ] {
        let now = |offset: u32| format!("2026-11-02T09:{:02}:00Z", minute + offset);
        at(dir, name, &now(0), &["claim", "--json", "--type", kind]);
        at(
            dir,
            name,
            &now(5),
            &[
                "usage",
                "record",
                "--model",
                "claude-sonnet-4-5",
                "--output",
                output,
            ],
        );
        at(dir, name, &now(10), &["done"]);
        env.git(dir, &["commit", "--quiet", "--all", "--message", "done"]);
        env.git(dir, &["pull", "--quiet", "--rebase", "origin", "main"]);
        env.git(dir, &["push", "--quiet", "origin", "HEAD:main"]);
    }
}

/// Checks in a real browser that the report's task sections have their runs and link their pull requests.
fn assert_task_sections_link_their_pull_requests(env: &TestEnv, page: &std::path::Path) {
    if let Some(rendered) = crate::browser::render(page, env.root.path()) {
        type Links = Vec<(String, String)>;
        let sections: Vec<(String, u64, Links)> = rendered["task_sections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|section| {
                (
                    section["heading"].as_str().unwrap().to_owned(),
                    section["table_rows"].as_u64().unwrap(),
                    pairs(&section["links"], "text", "href"),
                )
            })
            .collect();
        assert_eq!(
            sections,
            [
                (
                    "cache".to_owned(),
                    2,
                    vec![(
                        "#11".to_owned(),
                        "https://github.com/acme/shop/pull/11".to_owned()
                    )]
                ),
                (
                    "docs".to_owned(),
                    2,
                    vec![(
                        "#12".to_owned(),
                        "https://github.com/acme/shop/pull/12".to_owned()
                    )]
                ),
            ],
            "{rendered}"
        );
        assert_eq!(rendered["horizontal_overflow"], false, "{rendered}");
    }
}

#[tokio::test]
async fn runs_whose_pull_request_was_closed_unmerged_are_unmerged_spend() {
    use crate::github_fake::{FakeGitHub, REPOSITORY};
    let env = TestEnv::new();
    setup(&env);
    // Both tasks are completed and `done` on main; the pull request of `cache` was closed
    // unmerged (the status reached main some other way), that of `docs` merged.
    complete_cache_and_docs(&env);
    let (server, github) = FakeGitHub::start().await;
    github.add_pull(11, "gitprio/cache", "closed", "2026-11-02T09:08:00Z");
    github.add_pull(12, "gitprio/docs", "merged", "2026-11-02T09:28:00Z");
    let report = |variables: &[(&str, &str)]| {
        let mut all = vec![
            ("GITPRIO_AGENT", "carol"),
            ("GITPRIO_NOW", "2026-11-02T12:00:00Z"),
        ];
        all.extend_from_slice(variables);
        let output = env.run_with("reader", &["report", "--json"], &all);
        assert_eq!(output.code, 0, "{output}");
        output.json()
    };
    let unmerged = |report: &serde_json::Value| -> Vec<String> {
        report["waste"]["unmerged_runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|line| line["task"].as_str().unwrap().to_owned())
            .collect()
    };
    // Git's view alone: both tasks are done, nothing is unmerged.
    let git_only = report(&[]);
    assert!(unmerged(&git_only).is_empty(), "{git_only}");
    let api = server.uri();
    let github_env = [
        ("GITPRIO_NOW", "2026-11-02T12:00:00Z"),
        ("GITHUB_TOKEN", "ghs_test"),
        ("GITHUB_REPOSITORY", REPOSITORY),
        ("GITHUB_API_URL", api.as_str()),
    ];
    let with_github = report(&github_env[1..]);
    assert_eq!(unmerged(&with_github), ["cache"], "{with_github}");
    assert_eq!(
        with_github["waste"]["closed_unmerged_tokens"], 1000,
        "{with_github}"
    );
    assert_eq!(
        with_github["waste"]["unmerged_tokens"], 1000,
        "{with_github}"
    );
    let runs = &with_github["runs"];
    let pull = |run: &serde_json::Value| {
        serde_json::json!([
            run["task"],
            run["pull_request"]["number"],
            run["pull_request"]["state"]
        ])
    };
    assert_eq!(
        [pull(&runs[0]), pull(&runs[1])],
        [
            serde_json::json!(["cache", 11, "closed_unmerged"]),
            serde_json::json!(["docs", 12, "merged"])
        ],
        "{with_github}"
    );
    assert!(
        github.log().iter().any(|line| line
            .starts_with(&format!("GET /repos/{REPOSITORY}/pulls?"))
            && line.contains("state=all")),
        "{:?}",
        github.log()
    );
    // The headline says where the figure comes from: the queue's branch and GitHub.
    let table = env.run_with("reader", &["report"], &github_env);
    let headline = table
        .stdout
        .lines()
        .find(|line| line.starts_with("unmerged spend"))
        .unwrap_or_else(|| panic!("no unmerged spend: {table}"));
    assert!(
        headline.ends_with(
            "whose task is not done on the queue's branch or whose pull request was closed unmerged"
        ),
        "{headline}"
    );
    // The HTML page has a section per task with its runs and its pull request, in a real browser.
    let page = env.path("report.html");
    let html = env.run_with(
        "reader",
        &["report", "--format", "html", "-o", page.to_str().unwrap()],
        &github_env,
    );
    assert_eq!(html.code, 0, "{html}");
    let text = std::fs::read_to_string(&page).unwrap();
    assert_well_formed(&text);
    assert!(
        text.contains("<a href=\"https://github.com/acme/shop/pull/11\">#11</a> (closed unmerged)"),
        "{text}"
    );
    assert_task_sections_link_their_pull_requests(&env, &page);
    // `--offline` does not ask.
    let asked = github.log().len();
    let offline = env.run_with("reader", &["report", "--json", "--offline"], &github_env);
    assert_eq!(offline.code, 0, "{offline}");
    assert_eq!(github.log().len(), asked);
}

#[test]
fn usage_is_kept_when_the_ledger_push_fails_and_pushed_by_the_next_command() {
    let env = TestEnv::new();
    setup(&env);
    claim(&env, "a", "alice", "cache");
    // The remote refuses usage refs (a full disk, a hook): leases still go through.
    let hook = env.path("remote.git/hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\nwhile read old new ref; do case \"$ref\" in refs/gitprio/usage/*) echo \"usage refs are refused\" >&2; exit 1;; esac; done\nexit 0\n",
    )
    .unwrap();
    let mut permissions = std::fs::metadata(&hook).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&hook, permissions).unwrap();
    let kept = record(
        &env,
        "a",
        "alice",
        &[
            "--model",
            "claude-sonnet-4-5",
            "--output",
            "700",
            "--key",
            "r1",
            "--json",
        ],
    );
    assert_eq!(kept.code, 0, "{kept}");
    assert!(kept.stderr.contains("kept"), "{kept}");
    let done = agent(&env, "a", "alice", &["done"]);
    assert_eq!(done.code, 0, "{done}");
    // And with the remote gone altogether.
    std::fs::rename(env.path("remote.git"), env.path("remote.moved")).unwrap();
    claim_offline_record(&env);
    std::fs::rename(env.path("remote.moved"), env.path("remote.git")).unwrap();
    std::fs::remove_file(&hook).unwrap();
    // The next command that reaches the remote delivers everything kept.
    claim(&env, "a", "alice", "docs");
    let show = agent(
        &env,
        "reader",
        "carol",
        &["usage", "show", "cache", "--json"],
    );
    let run = &show.json()["runs"][0];
    assert_eq!(run["totals"]["output"], 1700, "{show}");
    assert_eq!(run["meta"]["outcome"], "completed", "{show}");
}

/// Records usage on the completed run of `cache` while the remote cannot be reached.
fn claim_offline_record(env: &TestEnv) {
    let kept = record(
        env,
        "a",
        "alice",
        &[
            "cache",
            "--model",
            "claude-sonnet-4-5",
            "--output",
            "1000",
            "--key",
            "r2",
        ],
    );
    assert_eq!(kept.code, 0, "{kept}");
    assert!(kept.stderr.contains("kept"), "{kept}");
}

#[test]
fn reports_label_estimates_show_the_tied_share_and_take_a_price_file() {
    let env = TestEnv::new();
    setup(&env);
    claim(&env, "a", "alice", "cache");
    record(
        &env,
        "a",
        "alice",
        &[
            "--model",
            "brand-new-model",
            "--output",
            "1000",
            "--key",
            "r1",
        ],
    );
    // One request in this repository's checkout before the run waits unattributed.
    let outside = env.path("a/scratch").display().to_string();
    one_request(&env, &outside, "s-out", "2026-11-02T08:55:00Z");
    assert_eq!(
        import_in(&env, "a", "alice", "2026-11-02T09:10:00Z", &["--json"]).json()["unattributed"],
        1
    );
    let report = agent(&env, "a", "alice", &["report", "--json"]).json();
    assert_eq!(report["summary"]["unpriced_tokens"], 1000, "{report}");
    assert_eq!(report["attribution"]["tied_tokens"], 1000, "{report}");
    assert_eq!(
        report["attribution"]["unattributed_tokens"], 160,
        "{report}"
    );
    let share = report["attribution"]["tied_share"].as_f64().unwrap();
    assert!((share - 1000.0 / 1160.0).abs() < 1e-9, "{report}");
    // In dollars, none of the priced spend is tied: the tied tokens have no price.
    assert_eq!(report["attribution"]["tied_cost_share"], 0.0, "{report}");
    let table = agent(&env, "a", "alice", &["report"]);
    let tied = table
        .stdout
        .lines()
        .find(|line| line.starts_with("tied to tasks"))
        .unwrap_or_else(|| panic!("{table}"));
    assert_eq!(
        tied.split_whitespace().collect::<Vec<_>>().join(" "),
        "tied to tasks 86% of 1.2k tokens and 0% of the priced dollars: this report's 1.0k tokens, unknown (1.0k tokens unpriced); 160 unattributed in this repository's checkout and worktrees, <$0.01",
        "{table}"
    );
    assert!(
        table
            .stdout
            .contains("cost (estimated)      unknown (1.0k tokens unpriced)\nprices                from .tasks/prices.yaml (1 model) over the bundled snapshot of 2026-06-13\n"),
        "{table}"
    );
    assert!(table.stdout.contains("tied to tasks"), "{table}");
    assert!(
        table.stdout.contains("unknown (1.0k tokens unpriced)"),
        "{table}"
    );
    // A newer price table, given as a file: no network needed.
    let price_file = env.path("prices.json");
    std::fs::write(
        &price_file,
        r#"{"brand-new-model": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-5}}"#,
    )
    .unwrap();
    let priced = agent(
        &env,
        "a",
        "alice",
        &["report", "--json", "--prices", price_file.to_str().unwrap()],
    )
    .json();
    assert_eq!(priced["summary"]["unpriced_tokens"], 0, "{priced}");
    assert!(
        (priced["summary"]["cost_usd"].as_f64().unwrap() - 0.02).abs() < 1e-9,
        "{priced}"
    );
    let bad = agent(&env, "a", "alice", &["report", "--prices", "missing.json"]);
    assert_eq!(bad.code, 1, "{bad}");
    assert!(bad.stderr.contains("cannot read the price file"), "{bad}");
    // A YAML price file that does not parse: one error line that says where.
    std::fs::write(env.path("a/bad.yaml"), "a: [1, 2\n").unwrap();
    let bad = agent(&env, "a", "alice", &["report", "--prices", "bad.yaml"]);
    assert_eq!(bad.code, 1, "{bad}");
    let said: Vec<&str> = bad.stderr.lines().collect();
    assert_eq!(said.len(), 1, "{bad}");
    assert!(
        said[0].starts_with("error: invalid price file bad.yaml: "),
        "{bad}"
    );
    assert!(said[0].contains("line 1"), "{bad}");
    assert_eq!(said[0].matches("error").count(), 1, "{bad}");
}

/// A `LiteLLM` entry whose price is not a number is named, not skipped without a word.
#[test]
fn a_price_file_entry_whose_price_is_not_a_number_is_named() {
    let env = TestEnv::new();
    setup(&env);
    claim(&env, "a", "alice", "cache");
    record(
        &env,
        "a",
        "alice",
        &[
            "--model",
            "brand-new-model",
            "--output",
            "1000",
            "--key",
            "r1",
        ],
    );
    std::fs::write(
        env.path("a/odd.json"),
        r#"{"brand-new-model": {"input_cost_per_token": "x", "output_cost_per_token": 2e-5}}"#,
    )
    .unwrap();
    let bad = agent(&env, "a", "alice", &["report", "--prices", "odd.json"]);
    assert_eq!(bad.code, 1, "{bad}");
    assert_eq!(
        bad.stderr.trim(),
        "error: the price file odd.json prices no model (`brand-new-model`: input_cost_per_token is \"x\", not a number of dollars per token) (LiteLLM JSON or a YAML map of model to input and output)",
        "{bad}"
    );
    std::fs::write(
        env.path("a/odd.json"),
        r#"{"brand-new-model": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-5},
            "other-model": {"input_cost_per_token": 1e-6, "output_cost_per_token": "cheap"}}"#,
    )
    .unwrap();
    let partly = agent(
        &env,
        "a",
        "alice",
        &["report", "--json", "--prices", "odd.json"],
    );
    assert_eq!(partly.code, 0, "{partly}");
    assert!(
        partly.stderr.contains(
            "warning: price file odd.json: `other-model`: output_cost_per_token is \"cheap\", not a number of dollars per token; left out"
        ),
        "{partly}"
    );
    assert_eq!(partly.json()["summary"]["unpriced_tokens"], 0, "{partly}");
}

/// Parses `OpenMetrics` text with the Prometheus project's own Python parser; returns the
/// families and their samples, or `None` when the parser is not installed.
fn parse_openmetrics(env: &TestEnv, text: &str) -> Option<serde_json::Value> {
    let python = crate::common::tool(&["python3"])?;
    let check = std::process::Command::new(&python)
        .args(["-c", "import prometheus_client"])
        .output()
        .unwrap();
    if !check.status.success() {
        assert!(
            std::env::var_os("GITPRIO_TEST_REQUIRE_TOOLS").is_none(),
            "python3 lacks prometheus_client (.ci/run installs it), and GITPRIO_TEST_REQUIRE_TOOLS is set"
        );
        eprintln!("note: skipped the OpenMetrics parser check (no prometheus_client)");
        return None;
    }
    let path = env.path("metrics.txt");
    std::fs::write(&path, text).unwrap();
    let script = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
families = {}
for family in text_string_to_metric_families(open(sys.argv[1]).read()):
    families[family.name] = {"type": family.type, "samples": [[s.name, s.labels, s.value] for s in family.samples]}
print(json.dumps(families))
"#;
    let output = std::process::Command::new(python)
        .args(["-c", script])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the OpenMetrics parser rejected gitprio's output: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(serde_json::from_slice(&output.stdout).unwrap())
}

#[test]
fn openmetrics_output_is_accepted_by_the_prometheus_parser() {
    let env = TestEnv::new();
    setup(&env);
    claim(&env, "a", "alice", "cache");
    record(
        &env,
        "a",
        "alice",
        &[
            "--model",
            "claude-sonnet-4-5",
            "--input",
            "100",
            "--output",
            "1000",
            "--cache-read",
            "5000",
        ],
    );
    record(
        &env,
        "a",
        "alice",
        &["--model", "weird\"model\\x", "--output", "10"],
    );
    assert_eq!(agent(&env, "a", "alice", &["done"]).code, 0);
    let output = agent(
        &env,
        "reader",
        "carol",
        &["report", "--format", "openmetrics"],
    );
    assert_eq!(output.code, 0, "{output}");
    assert!(output.stdout.ends_with("# EOF\n"), "{output}");
    // No per-task or per-session label: a fleet of thousands of tasks stays a few series.
    assert!(!output.stdout.contains("cache\""), "{output}");
    let Some(families) = parse_openmetrics(&env, &output.stdout) else {
        return;
    };
    assert_eq!(families["gitprio_tokens"]["type"], "counter", "{families}");
    let tokens: f64 = families["gitprio_tokens"]["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|sample| sample[2].as_f64().unwrap())
        .sum();
    assert!((tokens - 6110.0).abs() < 1e-9, "{families}");
    let output_sample = families["gitprio_tokens"]["samples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|sample| sample[1]["model"] == "claude-sonnet-4-5" && sample[1]["kind"] == "output")
        .unwrap()
        .clone();
    assert_eq!(output_sample[1]["type"], "feature", "{families}");
    assert_eq!(output_sample[1]["agent"], "alice", "{families}");
    assert!(
        families["gitprio_unpriced_tokens"]["samples"][0][1]["model"] == "weird\"model\\x",
        "{families}"
    );
    assert_eq!(
        families["gitprio_runs"]["samples"][0][1]["outcome"], "completed",
        "{families}"
    );
    assert_eq!(
        families["gitprio_completed_tasks"]["samples"][0][2], 1.0,
        "{families}"
    );
}

/// The `git fetch` commands git traced to `trace` (`GIT_TRACE`), with their arguments.
fn fetches(trace: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(trace)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once("trace: built-in: git fetch "))
        .map(|(_, arguments)| arguments.to_owned())
        .collect()
}

#[test]
fn usage_show_fetches_the_runs_and_their_lease_in_one_fetch() {
    let env = TestEnv::new();
    setup(&env);
    claim(&env, "a", "alice", "cache");
    let spent = record(
        &env,
        "a",
        "alice",
        &["--model", "house-model", "--output", "700"],
    );
    assert_eq!(spent.code, 0, "{spent}");
    let trace = env.path("trace.txt");
    let show = env.run_with(
        "reader",
        &["usage", "show", "cache", "--json"],
        &[
            ("GITPRIO_AGENT", "carol"),
            ("GITPRIO_NOW", T0),
            ("GIT_TRACE", trace.to_str().unwrap()),
        ],
    );
    assert_eq!(show.code, 0, "{show}");
    let json = show.json();
    assert_eq!(json["runs"][0]["tokens"], 700, "{show}");
    // The lease came with it: the run is in flight, not expired.
    assert_eq!(
        json["runs"][0]["meta"]["outcome"],
        serde_json::Value::Null,
        "{show}"
    );
    assert_eq!(fetches(&trace).len(), 1, "{:#?}", fetches(&trace));

    // A task that has no lease and no usage yet: still one fetch, and nothing to show.
    std::fs::remove_file(&trace).unwrap();
    let none = env.run_with(
        "reader",
        &["usage", "show", "docs"],
        &[("GITPRIO_NOW", T0), ("GIT_TRACE", trace.to_str().unwrap())],
    );
    assert_eq!(none.code, 0, "{none}");
    assert_eq!(none.stderr, "info: no usage recorded for docs\n", "{none}");
    assert_eq!(fetches(&trace).len(), 1, "{:#?}", fetches(&trace));
}

#[test]
fn a_report_with_no_runs_says_so_in_one_line_and_its_json_stays_typed() {
    let env = TestEnv::new();
    env.repo("repo", &[(".tasks/a.md", "---\ntitle: A\n---\n")]);
    let nothing = "info: no runs yet: `gitprio run` records them, or an agent's `gitprio claim` then `gitprio usage record` or `gitprio usage import`\n";
    let table = env.run("repo", &["report", "--offline"]);
    assert_eq!(
        (table.code, table.stdout.as_str(), table.stderr.as_str()),
        (0, "", nothing),
        "{table}"
    );
    let json = env.run("repo", &["report", "--offline", "--json"]);
    assert_eq!((json.code, json.stderr.as_str()), (0, nothing), "{json}");
    let json = json.json();
    assert_eq!(json["summary"]["runs"], 0, "{json}");
    assert_eq!(json["summary"]["tokens"], 0, "{json}");
    assert_eq!(json["runs"], serde_json::json!([]), "{json}");
}

#[test]
fn a_report_whose_filters_leave_no_runs_names_the_filter_in_one_line() {
    let env = one_run_recorded_by_hand();
    let left = "info: no runs match `--since 2030-01-01 --task a` (the ledger holds 1 run): widen or drop the filter\n";
    let filtered = [
        "report",
        "--offline",
        "--local",
        "--since",
        "2030-01-01",
        "--task",
        "a",
    ];
    let table = env.run("repo", &filtered);
    assert_eq!(
        (table.code, table.stdout.as_str(), table.stderr.as_str()),
        (0, "", left),
        "{table}"
    );
    let json = env.run("repo", &[&filtered[..], &["--json"]].concat());
    assert_eq!((json.code, json.stderr.as_str()), (0, left), "{json}");
    let json = json.json();
    assert_eq!(json["summary"]["runs"], 0, "{json}");
    assert_eq!(json["runs"], serde_json::json!([]), "{json}");
    let markdown = env.run("repo", &[&filtered[..], &["--format", "md"]].concat());
    assert_eq!(
        (markdown.code, markdown.stderr.as_str()),
        (0, left),
        "{markdown}"
    );
    assert!(!markdown.stdout.is_empty(), "{markdown}");
    // A filter that keeps the run prints its table, and says nothing about filters.
    let kept = env.run("repo", &["report", "--offline", "--local", "--task", "a"]);
    assert_eq!(kept.code, 0, "{kept}");
    assert!(!kept.stderr.contains("no runs"), "{kept}");
    // By task, no share of the machine's unattributed spend (walk17 N17).
    assert!(!kept.stdout.contains("tied to tasks"), "{kept}");
}

/// Alice's and then Bob's leases on `a` expire; Bob's claim took Alice's over, and
/// Carol's claim, finding `max_attempts: 2` reached, parks `a` instead of taking it. Both
/// lost attempts are runs of the report, as the lease counts them, not only the one a
/// takeover recorded.
#[test]
fn every_attempt_lost_to_an_expired_lease_is_a_run_of_the_report() {
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[
            (".tasks/config.yaml", "max_attempts: 2\n"),
            (".tasks/a.md", "---\ntitle: A\n---\n"),
            (".tasks/b.md", "---\ntitle: B\npriority: p3\n---\n"),
        ],
    );
    for (agent, now, expected) in [
        ("alice", "2026-11-01T12:00:00Z", "a"),
        ("bob", "2026-11-01T12:20:00Z", "a"),
        ("carol", "2026-11-01T12:40:00Z", "b"),
    ] {
        let claimed = env.run_with(
            "repo",
            &["claim", "--local", "--ttl", "5m", "--json"],
            &[("GITPRIO_AGENT", agent), ("GITPRIO_NOW", now)],
        );
        assert_eq!(claimed.code, 0, "{claimed}");
        assert_eq!(claimed.json()["task"]["id"], expected, "{claimed}");
    }
    let look = [("GITPRIO_NOW", "2026-11-01T12:41:00Z")];
    let status = env
        .run_with("repo", &["status", "--local", "--json"], &look)
        .json();
    let lease = &status["leases"][0];
    assert_eq!(
        (
            &lease["task"],
            &lease["state"],
            &lease["attempt"],
            &lease["failures"]
        ),
        (&"a".into(), &"parked".into(), &2.into(), &2.into()),
        "{status}"
    );
    let report = env
        .run_with(
            "repo",
            &["report", "--local", "--offline", "--by", "run", "--json"],
            &look,
        )
        .json();
    let runs: Vec<(String, String, String, String)> = report["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|run| run["task"] == "a")
        .map(|run| {
            let text = |key: &str| run[key].as_str().unwrap_or("null").to_owned();
            (
                text("agent"),
                text("outcome"),
                text("started_at"),
                text("ended_at"),
            )
        })
        .collect();
    let run = |agent: &str, started: &str, ended: &str| {
        (
            agent.to_owned(),
            "expired".to_owned(),
            started.to_owned(),
            ended.to_owned(),
        )
    };
    assert_eq!(
        runs,
        [
            run("alice", "2026-11-01T12:00:00Z", "2026-11-01T12:05:00Z"),
            run("bob", "2026-11-01T12:20:00Z", "2026-11-01T12:25:00Z"),
        ],
        "{report}"
    );
    assert_eq!(
        report["waste"]["retried_tasks"],
        serde_json::json!([["a", 2, 0]]),
        "{report}"
    );
}

/// A repository whose task `a` has one run: a claim, then 100 tokens recorded by hand.
fn one_run_recorded_by_hand() -> TestEnv {
    one_run_of("---\ntitle: A\n---\n")
}

/// A repository whose task `a`, written `task`, has one run of 100 tokens recorded by hand.
fn one_run_of(task: &str) -> TestEnv {
    let env = TestEnv::new();
    env.repo("repo", &[(".tasks/a.md", task)]);
    for command in [
        &["claim", "--local"][..],
        &[
            "usage",
            "record",
            "a",
            "--local",
            "--model",
            "claude-sonnet-4-5",
            "--input",
            "100",
        ],
    ] {
        let output = env.run("repo", command);
        assert_eq!(output.code, 0, "{output}");
    }
    env
}

/// Model overspend is measured against the model the config routes the task to: the tier
/// its type is sent to (`type_tiers`), or the tier its `model:` names, not only a model
/// named in the task.
#[test]
fn model_overspend_follows_the_configured_routing_of_tiers() {
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[
            (
                ".tasks/config.yaml",
                "tiers:\n  small: claude-haiku-4-5\n  large: claude-opus-4-6\ntype_tiers:\n  feature: small\n",
            ),
            (
                ".tasks/cache.md",
                "---\ntitle: Cache\ntype: feature\npriority: p1\n---\n",
            ),
            (".tasks/tier.md", "---\ntitle: Tier\nmodel: small\npriority: p2\n---\n"),
            (".tasks/named.md", "---\ntitle: Named\nmodel: large\npriority: p3\n---\n"),
        ],
    );
    for (agent, id) in [("alice", "cache"), ("bob", "tier"), ("carol", "named")] {
        let claimed = env.run_with(
            "repo",
            &["claim", "--local", "--json"],
            &[("GITPRIO_AGENT", agent)],
        );
        assert_eq!(claimed.json()["task"]["id"], id, "{claimed}");
        let recorded = env.run_with(
            "repo",
            &[
                "usage",
                "record",
                id,
                "--local",
                "--model",
                "claude-sonnet-4-5",
                "--output",
                "1000",
            ],
            &[("GITPRIO_AGENT", agent)],
        );
        assert_eq!(recorded.code, 0, "{recorded}");
        let done = env.run_with(
            "repo",
            &["done", id, "--local"],
            &[("GITPRIO_AGENT", agent)],
        );
        assert_eq!(done.code, 0, "{done}");
    }
    let report = env
        .run("repo", &["report", "--offline", "--local", "--json"])
        .json();
    let overspend: Vec<(&str, &str)> = report["waste"]["overspend"]
        .as_array()
        .unwrap_or_else(|| panic!("no overspend list: {report}"))
        .iter()
        .map(|over| {
            (
                over["task"].as_str().unwrap(),
                over["routed_model"].as_str().unwrap(),
            )
        })
        .collect();
    // Sonnet where haiku was routed is overspend; sonnet where opus was routed is not.
    assert_eq!(
        overspend,
        [("cache", "claude-haiku-4-5"), ("tier", "claude-haiku-4-5")],
        "{report}"
    );
}

#[test]
fn with_nothing_imported_the_tied_share_is_not_a_hundred_percent_of_nothing() {
    let env = one_run_recorded_by_hand();
    let table = env.run("repo", &["report", "--offline", "--local"]);
    let line = table
        .stdout
        .lines()
        .find(|line| line.starts_with("tied to tasks"))
        .unwrap_or_else(|| panic!("no tied share: {table}"));
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>().join(" "),
        "tied to tasks unknown: no `gitprio usage import` on this machine yet to set this report's 100 tokens against (it files the spend of agent logs that no run claims)",
        "{table}"
    );
    let json = env
        .run("repo", &["report", "--offline", "--local", "--json"])
        .json();
    assert_eq!(json["attribution"]["tied_tokens"], 100, "{json}");
    assert_eq!(
        json["attribution"]["tied_share"],
        serde_json::Value::Null,
        "{json}"
    );
}

#[test]
fn a_report_section_with_nothing_to_show_says_none() {
    // One run, recorded by hand: a report with no run at all is one line.
    let env = one_run_recorded_by_hand();
    let report = env.run("repo", &["report", "--offline", "--local"]);
    assert_eq!(report.code, 0, "{report}");
    assert!(report.stdout.starts_with("runs "), "{report}");
    let lines: Vec<&str> = report.stdout.lines().collect();
    for (index, line) in lines.iter().enumerate() {
        // A section title ("Cache hit rate: Cache reads over ..."), then its lines, indented;
        // the note on prices ends the report.
        if line.contains(": ")
            && !line.starts_with("Costs are estimates")
            && !line.starts_with(' ')
            && index > 0
            && lines[index - 1].is_empty()
        {
            let next = lines.get(index + 1).copied().unwrap_or_default();
            assert!(
                next.starts_with("  "),
                "`{line}` has nothing under it:\n{report}"
            );
        }
    }
}

/// The lines of the text report's `title` section, indented under it.
fn section<'text>(table: &'text str, title: &str) -> Vec<&'text str> {
    table
        .lines()
        .skip_while(|line| !line.starts_with(title))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .map(str::trim)
        .collect()
}

#[test]
fn runs_in_flight_with_no_usage_yet_are_in_every_report_format() {
    let env = TestEnv::new();
    setup(&env);
    env.git(".", &["clone", "--quiet", "remote.git", "c"]);
    let at = |dir: &str, name: &str, now: &str, args: &[&str]| succeeds(&env, dir, name, now, args);
    // Alice claims `cache` and has not recorded a token yet.
    at("a", "alice", T0, &["claim", "--json", "--type", "feature"]);
    // Bob's first attempt at `login` spends, then its 5-minute lease expires; carol takes
    // the task over and has recorded nothing yet: a retry in flight.
    at(
        "b",
        "bob",
        T0,
        &["claim", "--json", "--type", "bug", "--ttl", "5m"],
    );
    at("b", "bob", "2026-11-02T09:01:00Z", &SPEND);
    let taken = at(
        "c",
        "carol",
        "2026-11-02T09:20:00Z",
        &["claim", "--json", "--type", "bug"],
    );
    assert_eq!(taken.json()["task"]["id"], "login", "{taken}");
    let now = "2026-11-02T09:30:00Z";
    let report = |format: &str| at("reader", "dave", now, &["report", "--format", format]).stdout;
    let json: serde_json::Value = serde_json::from_str(&report("json")).unwrap();
    let in_flight = &json["waste"]["in_flight_runs"];
    assert_eq!(
        pairs(in_flight, "task", "agent"),
        [
            ("cache".to_owned(), "alice".to_owned()),
            ("login".to_owned(), "carol".to_owned())
        ],
        "{json}"
    );
    assert_eq!(
        pairs(in_flight, "started_at", "outcome"),
        [
            ("2026-11-02T09:00:00Z".to_owned(), "in_flight".to_owned()),
            ("2026-11-02T09:20:00Z".to_owned(), "in_flight".to_owned())
        ],
        "{json}"
    );
    assert_eq!(json["waste"]["in_flight_tokens"], 0, "{json}");
    assert_eq!(
        json["waste"]["retried_tasks"],
        serde_json::json!([["login", 2, 1000]]),
        "{json}"
    );
    assert_eq!(json["summary"]["runs"], 3, "{json}");
    let lines = [
        "2 runs, 0 tokens, $0.00",
        "cache run 1-20261102T090000Z by alice: in flight since 2026-11-02 09:00 UTC, no usage recorded yet",
        "login run 2-20261102T092000Z by carol: in flight since 2026-11-02 09:20 UTC, no usage recorded yet",
    ];
    assert_eq!(
        section(&report("table"), "Runs in flight:"),
        lines,
        "{json}"
    );
    let markdown = report("md");
    let html = report("html");
    for line in &lines[1..] {
        assert!(markdown.contains(&format!("- {line}\n")), "{markdown}");
        assert!(html.contains(&format!("<li>{line}</li>")), "{html}");
    }
}

#[test]
fn usage_show_lists_the_attempt_in_flight_before_it_records_usage() {
    let env = TestEnv::new();
    setup(&env);
    let at = |dir: &str, name: &str, now: &str, args: &[&str]| succeeds(&env, dir, name, now, args);
    at("a", "alice", T0, &["claim", "--json", "--type", "feature"]);
    let show = at(
        "reader",
        "dave",
        "2026-11-02T09:10:00Z",
        &["usage", "show", "cache", "--json"],
    )
    .json();
    let meta = &show["runs"][0]["meta"];
    assert_eq!(
        (
            &meta["agent"],
            &meta["outcome"],
            &meta["type"],
            &show["runs"][0]["tokens"]
        ),
        (
            &"alice".into(),
            &serde_json::Value::Null,
            &"feature".into(),
            &0.into()
        ),
        "{show}"
    );
    let table = at(
        "reader",
        "dave",
        "2026-11-02T09:10:00Z",
        &["usage", "show", "cache"],
    );
    assert!(
        table
            .stdout
            .contains("1-20261102T090000Z  alice  in flight  2026-11-02 09:00         0"),
        "{table}"
    );
}

/// Checks that in the table `lines` (its header first) the column headed `column` is right
/// aligned: every cell ends where the header does (counted in characters).
pub fn assert_right_aligned(lines: &[&str], column: &str) {
    let header: Vec<char> = lines[0].chars().collect();
    let name: Vec<char> = column.chars().collect();
    let end = header
        .windows(name.len())
        .position(|window| window == name.as_slice())
        .unwrap_or_else(|| panic!("no {column}: {lines:#?}"))
        + name.len();
    for line in lines {
        let cells: Vec<char> = line.chars().collect();
        let ends_there = end <= cells.len()
            && cells[end - 1] != ' '
            && cells.get(end).is_none_or(|next| *next == ' ');
        assert!(
            ends_there,
            "{column} is not right-aligned:\n{}",
            lines.join("\n")
        );
    }
}

/// Sets up [`setup`] with three runs: alice's of `cache` (1,000 Sonnet output tokens), and two
/// of `login` (a bug) by bob, a failed one of 100 Haiku input tokens and one of 250,000 Opus
/// output tokens.
fn runs_of_very_different_sizes() -> TestEnv {
    let env = TestEnv::new();
    setup(&env);
    claim(&env, "a", "alice", "cache");
    record(&env, "a", "alice", &SPEND[2..]);
    // Two runs of login by bob, a small one that failed and a large one.
    for (index, spend) in [
        ["--model", "claude-haiku-4-5", "--input", "100"],
        ["--model", "claude-opus-4-6", "--output", "250000"],
    ]
    .iter()
    .enumerate()
    {
        if index > 0 {
            let failed = agent(&env, "b", "bob", &["release", "--failed", "--reason", "x"]);
            assert_eq!(failed.code, 0, "{failed}");
        }
        claim(&env, "b", "bob", "login");
        record(&env, "b", "bob", spend);
    }
    env
}

#[test]
fn a_share_neither_none_nor_all_never_reads_as_0_or_100_percent() {
    let env = runs_of_very_different_sizes();
    let table = agent(&env, "reader", "carol", &["report"]);
    // 100 of 250,100 tokens read `0%`, and the other 249,100 `100%`.
    assert_eq!(
        section(&table.stdout, "Model mix per task type and week:"),
        [
            "bug 2026-W45: claude-haiku-4-5 <1% (100 tokens)",
            "bug 2026-W45: claude-opus-4-6 >99% (250.0k tokens)",
            "feature 2026-W45: claude-sonnet-4-5 100% (1.0k tokens)",
        ],
        "{table}"
    );
}

#[test]
fn the_context_size_and_the_model_mix_say_their_unit() {
    let env = runs_of_very_different_sizes();
    // They read `2026-11-02: 720` and `... 100% (1.0k)`: a count of what, a manager asks.
    for format in ["table", "md"] {
        let report = agent(&env, "reader", "carol", &["report", "--format", format]);
        let lines: Vec<&str> = report
            .stdout
            .lines()
            .filter(|line| {
                // The context size per day, and the model mix; not the spend per day.
                (line.contains("2026-11-02: ") && !line.contains(" requests"))
                    || line.contains("2026-W45: claude-")
            })
            .collect();
        assert_eq!(lines.len(), 4, "{report}");
        for line in lines {
            assert!(
                line.ends_with(" tokens") || line.ends_with(" tokens)"),
                "{format}: {line}"
            );
        }
    }
}

#[test]
fn the_group_table_says_what_it_is_grouped_by_and_its_numbers_line_up() {
    let env = runs_of_very_different_sizes();

    // The header said `GROUP` whatever the grouping, and numbers were left-aligned.
    let report = |format: &str, by: &str| {
        let report = agent(
            &env,
            "reader",
            "carol",
            &["report", "--format", format, "--by", by],
        );
        assert_eq!(report.code, 0, "{report}");
        report.stdout
    };
    let table = report("table", "agent");
    let lines: Vec<&str> = table
        .lines()
        .skip_while(|line| *line != "By agent:")
        .skip(1)
        .take_while(|line| !line.is_empty())
        .collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("AGENT  "), "{table}");
    for column in ["RUNS", "TOKENS", "COST", "VALUE/1M", "CACHE HIT"] {
        assert_right_aligned(&lines, column);
    }
    let markdown = report("md", "model");
    assert!(
        markdown.contains(
            "| MODEL | RUNS | DONE | VALUE | TOKENS | COST | VALUE/1M | CACHE HIT |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
        ),
        "{markdown}"
    );
    let html = report("html", "feature");
    assert!(
        html.contains("<tr><th>FEATURE</th><th class=\"number\">RUNS</th>"),
        "{html}"
    );
    assert!(html.contains("<td class=\"number\">251.1k</td>"), "{html}");

    let usage = agent(&env, "reader", "carol", &["usage", "show", "login"]);
    // The runs' table, then the line that says what the costs are.
    let lines: Vec<&str> = usage.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{usage}");
    let lines = &lines[..3];
    for column in ["REQUESTS", "INPUT", "OUTPUT", "TOKENS"] {
        assert_right_aligned(lines, column);
    }
}

/// Checks that every dollar amount of `json` (a key with `usd` in its name, and the third item
/// of each `top` entry) is rounded to a millionth of a dollar, free of float noise such as
/// `0.00030000000000000003`; returns how many amounts it checked.
pub fn assert_dollars_are_rounded(json: &serde_json::Value) -> usize {
    fn walk(value: &serde_json::Value, path: &str, dollars: bool, checked: &mut usize) {
        match value {
            serde_json::Value::Number(number) if dollars => {
                let amount = number.as_f64().unwrap();
                let rounded = (amount * 1e6).round() / 1e6;
                assert_eq!(
                    rounded.to_bits(),
                    amount.to_bits(),
                    "{path} = {number} is not rounded to a millionth of a dollar ({rounded})"
                );
                *checked += 1;
            }
            serde_json::Value::Object(map) => {
                for (key, item) in map {
                    let inner = format!("{path}.{key}");
                    if key == "top" {
                        for (index, entry) in item.as_array().unwrap().iter().enumerate() {
                            walk(&entry[2], &format!("{inner}[{index}][2]"), true, checked);
                        }
                    } else {
                        walk(item, &inner, dollars || key.contains("usd"), checked);
                    }
                }
            }
            serde_json::Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    walk(item, &format!("{path}[{index}]"), dollars, checked);
                }
            }
            _ => {}
        }
    }
    let mut checked = 0;
    walk(json, "", false, &mut checked);
    checked
}

#[test]
fn dollars_in_report_json_and_openmetrics_are_rounded_to_a_millionth_without_float_noise() {
    // 100 Sonnet input tokens: 100 * 3e-6 is 0.00030000000000000003 in binary floats.
    let env = one_run_recorded_by_hand();
    let json = env
        .run("repo", &["report", "--offline", "--local", "--json"])
        .json();
    assert_eq!(json["runs"][0]["cost_usd"].to_string(), "0.0003", "{json}");
    assert_eq!(json["summary"]["cost_usd"].to_string(), "0.0003", "{json}");
    assert!(assert_dollars_are_rounded(&json) >= 10, "{json}");
    let metrics = env.run(
        "repo",
        &["report", "--offline", "--local", "--format", "openmetrics"],
    );
    let cost = metrics
        .stdout
        .lines()
        .find(|line| line.starts_with("gitprio_cost_usd_total{"))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(cost.ends_with("} 0.0003"), "{metrics}");
}

#[test]
fn a_cost_under_a_cent_is_shown_as_under_a_cent_not_as_free() {
    // 100 Sonnet input tokens cost $0.0003: `{:.2}` printed that as `$0.00`, which reads as free.
    let env = one_run_recorded_by_hand();
    for format in ["table", "md", "html"] {
        let report = env.run(
            "repo",
            &["report", "--offline", "--local", "--format", format],
        );
        assert_eq!(report.code, 0, "{report}");
        let under_a_cent = if format == "html" {
            "&lt;$0.01"
        } else {
            "<$0.01"
        };
        assert!(report.stdout.contains(under_a_cent), "{format}: {report}");
        // Only the unmerged spend, which is nothing, is `$0.00`.
        assert_eq!(
            report.stdout.matches("$0.00").count(),
            report
                .stdout
                .matches("$0.00, 0 tokens, in 0 completed runs")
                .count(),
            "{format}: {report}"
        );
    }
    let json = env
        .run("repo", &["report", "--offline", "--local", "--json"])
        .json();
    let cost = json["summary"]["cost_usd"].as_f64().unwrap_or_default();
    assert!((cost - 0.0003).abs() < 1e-9, "{json}");
}

/// Alice spends on `cache` late on Nov 1 and early on Nov 2 and completes it at 02:00;
/// Bob spends on `docs` at 22:10 and releases it at 23:10.
fn spend_across_midnight(env: &TestEnv) {
    let at = |dir: &str, name: &str, now: &str, args: &[&str]| succeeds(env, dir, name, now, args);
    let claim = |dir: &str, name: &str, now: &str, kind: &str| {
        at(
            dir,
            name,
            now,
            &["claim", "--json", "--type", kind, "--ttl", "4d"],
        );
    };
    claim("b", "bob", "2026-11-01T22:00:00Z", "docs");
    at("b", "bob", "2026-11-01T22:10:00Z", &SPEND);
    claim("a", "alice", "2026-11-01T23:00:00Z", "feature");
    at("b", "bob", "2026-11-01T23:10:00Z", &["release"]);
    at("a", "alice", "2026-11-01T23:30:00Z", &SPEND);
    at("a", "alice", "2026-11-02T01:00:00Z", &SPEND);
    at("a", "alice", "2026-11-02T02:00:00Z", &["done"]);
}

#[test]
fn a_completion_counts_in_the_period_it_ended_and_runs_idle_in_the_period_are_left_out() {
    let env = TestEnv::new();
    setup(&env);
    spend_across_midnight(&env);
    let report = |args: &[&str]| {
        let all = [&["report", "--json"][..], args].concat();
        succeeds(&env, "reader", "carol", "2026-11-02T07:00:00Z", &all).json()
    };
    let figures = |json: &serde_json::Value| {
        let summary = &json["summary"];
        let runs: Vec<String> = json["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|run| format!("{} {}", run["task"], run["tokens"]))
            .collect();
        (
            summary["tokens"].as_u64().unwrap(),
            summary["completed_tasks"].as_u64().unwrap(),
            summary["value_points"].as_u64().unwrap(),
            runs,
        )
    };
    // Before midnight: Alice's first 1,000 tokens; her completion at 02:00 is not of this period.
    let before = report(&["--until", "2026-11-02"]);
    assert_eq!(
        figures(&before),
        (
            2000,
            0,
            0,
            vec!["\"cache\" 1000".to_owned(), "\"docs\" 1000".to_owned()]
        ),
        "{before}"
    );
    assert_eq!(
        before["summary"]["value_per_million_tokens"], 0.0,
        "{before}"
    );
    // After 23:00: Bob's run ended then but spent nothing in it: not one of its runs.
    let late = report(&["--since", "2026-11-01T23:00:00Z"]);
    assert_eq!(
        figures(&late),
        (2000, 1, 8, vec!["\"cache\" 2000".to_owned()]),
        "{late}"
    );
    // After her last request: no tokens, but the completion (and its value) is of this period.
    let ended = report(&["--since", "2026-11-02T01:30:00Z"]);
    assert_eq!(
        figures(&ended),
        (0, 1, 8, vec!["\"cache\" 0".to_owned()]),
        "{ended}"
    );
}

#[test]
fn five_hour_windows_are_each_accounts_and_a_filter_only_picks_which_to_show() {
    let env = TestEnv::new();
    setup(&env);
    spend_across_midnight(&env);
    let report = |args: &[&str]| {
        let all = [&["report"][..], args].concat();
        succeeds(&env, "reader", "carol", "2026-11-02T07:00:00Z", &all)
    };
    let windows = |args: &[&str]| -> Vec<String> {
        let json = report(&[&["--json"][..], args].concat()).json();
        json["spend"]["windows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|window| {
                format!(
                    "{} {} {}-{} {}",
                    window["agent"],
                    window["provider"],
                    window["start"],
                    window["end"],
                    window["tokens"]
                )
            })
            .collect()
    };
    // Bob and alice are two subscriptions (walk17 N9): bob's request at 22:10 opens his
    // window, alice's at 23:30 hers; a filter picks windows, never opens another.
    let bob = r#""bob" "claude" "2026-11-01T22:00:00Z"-"2026-11-02T03:00:00Z" 1000"#;
    let alice = r#""alice" "claude" "2026-11-01T23:00:00Z"-"2026-11-02T04:00:00Z" 2000"#;
    assert_eq!(windows(&[]), [bob, alice]);
    assert_eq!(windows(&["--since", "2026-11-02T00:30:00Z"]), [bob, alice]);
    assert_eq!(windows(&["--until", "2026-11-01T22:05:00Z"]), [bob]);
    assert_eq!(
        windows(&["--until", "2026-11-01T21:59:00Z"]),
        Vec::<String>::new()
    );
    assert_eq!(windows(&["--since", "2026-11-02T03:00:00Z"]), [alice]);
    assert_eq!(
        windows(&["--since", "2026-11-02T04:00:00Z"]),
        Vec::<String>::new()
    );
    // A window across midnight names the day it ends on.
    let table = report(&["--since", "2026-11-02"]).stdout;
    for line in [
        "bob's claude 2026-11-01 22:00 to 2026-11-02 03:00: 1.0k tokens",
        "alice's claude 2026-11-01 23:00 to 2026-11-02 04:00: 2.0k tokens",
        "and agent (each agent is taken to have its own subscription)",
    ] {
        assert!(table.contains(line), "{line}: {table}");
    }
}

#[test]
fn headline_ratios_are_over_finished_runs_and_in_flight_tokens_have_their_own_line() {
    let env = TestEnv::new();
    setup(&env);
    spend_across_midnight(&env);
    let at = |dir: &str, name: &str, now: &str, args: &[&str]| succeeds(&env, dir, name, now, args);
    // Carol's run is still going: 2,000 tokens that bought nothing yet, nor wasted any.
    at(
        "reader",
        "carol",
        "2026-11-02T05:00:00Z",
        &["claim", "--json", "--type", "bug", "--ttl", "4d"],
    );
    for key in ["c1", "c2"] {
        at(
            "reader",
            "carol",
            "2026-11-02T05:30:00Z",
            &[&SPEND[..], &["--key", key]].concat(),
        );
    }
    let report = |args: &[&str]| {
        let all = [&["report", "--by", "type"][..], args].concat();
        at("reader", "carol", "2026-11-02T07:00:00Z", &all)
    };
    let json = report(&["--json"]).json();
    let summary = &json["summary"];
    assert_eq!(summary["tokens"], 5000, "{json}");
    assert_eq!(summary["in_flight_tokens"], 2000, "{json}");
    // 8 value points over the 3,000 tokens of finished runs, not over all 5,000.
    let value = summary["value_per_million_tokens"].as_f64().unwrap();
    assert!((value - 8.0 / 3000.0 * 1e6).abs() < 1e-6, "{json}");
    let usd = summary["usd_per_completed_task"].as_f64().unwrap();
    assert!((usd - 0.045).abs() < 1e-9, "{json}");
    // A type whose only run is in flight has no value per token yet, not zero.
    let bug = json["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|group| group["key"] == "bug")
        .unwrap();
    assert_eq!(
        bug["value_per_million_tokens"],
        serde_json::Value::Null,
        "{json}"
    );
    let line = "2.0k tokens, $0.03, in 1 run, not in the ratios";
    for format in ["table", "md", "html"] {
        let text = report(&["--format", format]).stdout;
        let row = text
            .lines()
            .find(|row| row.contains("in flight") && row.contains(line))
            .unwrap_or_else(|| panic!("{format}: {text}"));
        assert!(!row.is_empty());
    }
    let metrics = report(&["--format", "openmetrics"]).stdout;
    assert!(
        metrics
            .lines()
            .any(|row| row == "gitprio_in_flight_tokens 2000"),
        "{metrics}"
    );
}

#[test]
fn five_hour_windows_are_cut_per_provider() {
    let env = TestEnv::new();
    setup(&env);
    spend_across_midnight(&env);
    // Carol spends on Gemini at 23:40, inside Claude's window but not in any of Gemini's.
    let at = |now: &str, args: &[&str]| succeeds(&env, "reader", "carol", now, args);
    at(
        "2026-11-01T23:35:00Z",
        &["claim", "--json", "--type", "bug", "--ttl", "4d"],
    );
    at(
        "2026-11-01T23:40:00Z",
        &[
            "usage",
            "record",
            "--model",
            "gemini-2.5-pro",
            "--output",
            "700",
        ],
    );
    let report = |args: &[&str]| {
        let all = [&["report"][..], args].concat();
        at("2026-11-02T02:30:00Z", &all)
    };
    let json = report(&["--json"]).json();
    let windows: Vec<(String, String, String, u64, bool)> = json["spend"]["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|window| {
            (
                window["provider"].as_str().unwrap().to_owned(),
                window["start"].as_str().unwrap().to_owned(),
                window["end"].as_str().unwrap().to_owned(),
                window["tokens"].as_u64().unwrap(),
                window["active"].as_bool().unwrap(),
            )
        })
        .collect();
    let window = |provider: &str, start: &str, end: &str, tokens: u64| {
        (
            provider.to_owned(),
            format!("2026-11-{start}:00Z"),
            format!("2026-11-{end}:00Z"),
            tokens,
            true,
        )
    };
    assert_eq!(
        windows,
        [
            window("claude", "01T22:00", "02T03:00", 1000),
            window("claude", "01T23:00", "02T04:00", 2000),
            window("gemini", "01T23:00", "02T04:00", 700),
        ],
        "{json}"
    );
    let table = report(&[]).stdout;
    for line in [
        "bob's claude 2026-11-01 22:00 to 2026-11-02 03:00: 1.0k tokens",
        "alice's claude 2026-11-01 23:00 to 2026-11-02 04:00: 2.0k tokens",
        "carol's gemini 2026-11-01 23:00 to 2026-11-02 04:00: 700 tokens",
        "tied spend only",
    ] {
        assert!(table.contains(line), "{line}: {table}");
    }
}

#[test]
fn report_output_killed_mid_write_leaves_the_last_report_whole() {
    // A feature name of 200,000 characters makes the JSON report larger than the 64 or
    // 128 KiB the file limit allows: the write is killed part way, as by a full disk.
    let feature = "f".repeat(200_000);
    let env = one_run_of(&format!("---\ntitle: A\nfeature: {feature}\n---\n"));
    let write_report = [
        "report",
        "--offline",
        "--local",
        "--json",
        "--output",
        "report.json",
    ];
    let last = "{\"summary\": \"yesterday's report\"}\n";
    env.write("repo", &[("report.json", last)]);
    let killed = env.run_with_file_limit("repo", &write_report, &[]);
    assert_ne!(killed.code, 0, "{killed}");
    let read = || std::fs::read_to_string(env.path("repo/report.json")).unwrap();
    assert!(
        read() == last,
        "report.json is {} bytes, not the {} of the last report",
        read().len(),
        last.len()
    );
    let written = env.run("repo", &write_report);
    assert_eq!(
        (written.code, written.stdout.as_str()),
        (0, ""),
        "{written}"
    );
    let report: serde_json::Value = serde_json::from_str(&read()).unwrap();
    assert_eq!(report["runs"][0]["feature"], feature.as_str());
}

/// The tables of markdown `text` as GitHub renders them (GFM tables): each a list of
/// rows, the header row first, each row its cells' text.
fn markdown_tables(text: &str) -> Vec<Vec<Vec<String>>> {
    use pulldown_cmark::{Event, Options, Parser, Tag};
    let mut tables: Vec<Vec<Vec<String>>> = Vec::new();
    for event in Parser::new_ext(text, Options::ENABLE_TABLES) {
        let table = tables.last_mut();
        match (event, table) {
            (Event::Start(Tag::Table(_)), _) => tables.push(Vec::new()),
            (Event::Start(Tag::TableHead | Tag::TableRow), Some(table)) => table.push(Vec::new()),
            (Event::Start(Tag::TableCell), Some(table)) => {
                table.last_mut().unwrap().push(String::new());
            }
            (Event::Text(part) | Event::Code(part), Some(table)) => {
                if let Some(cell) = table.last_mut().and_then(|row| row.last_mut()) {
                    cell.push_str(&part);
                }
            }
            _ => {}
        }
    }
    tables
}

#[test]
fn the_markdown_report_renders_its_summary_and_groups_as_tables_with_headers() {
    // A feature with a `|` in its name stays one cell of the group table.
    let env = one_run_of("---\ntitle: A\nfeature: auth|login\n---\n");
    let report = env.run(
        "repo",
        &[
            "report",
            "--offline",
            "--local",
            "--by",
            "feature",
            "--format",
            "md",
        ],
    );
    assert_eq!(report.code, 0, "{report}");
    let tables = markdown_tables(&report.stdout);
    assert_eq!(tables.len(), 2, "{report}");
    let summary = &tables[0];
    assert_eq!(summary[0], ["figure", "value"], "{report}");
    let figures: Vec<&str> = summary[1..].iter().map(|row| row[0].as_str()).collect();
    for figure in [
        "runs",
        "completed tasks",
        "tokens",
        "cache hit rate",
        "unmerged spend",
    ] {
        assert!(figures.contains(&figure), "no `{figure}` row: {report}");
    }
    assert!(summary.iter().all(|row| row.len() == 2), "{report}");
    let groups = &tables[1];
    assert_eq!(groups[0][0], "FEATURE", "{report}");
    assert_eq!(groups.len(), 2, "{report}");
    assert_eq!(groups[1][0], "auth|login", "{report}");
    assert_eq!(groups[1].len(), groups[0].len(), "{report}");
}

#[test]
fn usage_show_costs_each_run_at_the_repositorys_prices_and_an_unpriced_one_is_unknown() {
    let env = TestEnv::new();
    setup(&env);
    // Run 1: $0.15 of Sonnet and $2.00 of the repository's own `house-model`.
    claim(&env, "a", "alice", "cache");
    for (model, output) in [("claude-sonnet-4-5", "10000"), ("house-model", "1000000")] {
        let recorded = record(&env, "a", "alice", &["--model", model, "--output", output]);
        assert_eq!(recorded.code, 0, "{recorded}");
    }
    let released = agent(&env, "a", "alice", &["release"]);
    assert_eq!(released.code, 0, "{released}");
    // Run 2: a model nobody priced. Its cost is unknown, not $0.
    claim(&env, "a", "alice", "cache");
    let recorded = record(
        &env,
        "a",
        "alice",
        &["--model", "mystery-model", "--input", "500"],
    );
    assert_eq!(recorded.code, 0, "{recorded}");
    let show = agent(&env, "reader", "carol", &["usage", "show", "cache"]);
    assert_output!(show);
    let json = agent(
        &env,
        "reader",
        "carol",
        &["usage", "show", "cache", "--json"],
    );
    assert_eq!(json.code, 0, "{json}");
    let runs = &json.json()["runs"];
    assert_eq!(runs[0]["cost_usd"].to_string(), "2.15", "{json}");
    assert_eq!(runs[0]["unpriced_tokens"], 0, "{json}");
    assert_eq!(runs[1]["unpriced_tokens"], 500, "{json}");
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one run, read back in every view that shows its cost"
)]
fn a_run_with_an_unpriced_model_keeps_its_priced_dollars_in_every_sum_and_view() {
    let env = TestEnv::new();
    setup(&env);
    // $0.15 of Sonnet and 30 tokens of a model nobody priced, in one completed run.
    claim(&env, "a", "alice", "cache");
    for (model, flag, count) in [
        ("claude-sonnet-4-5", "--output", "10000"),
        ("mystery-model", "--input", "30"),
    ] {
        let recorded = record(&env, "a", "alice", &["--model", model, flag, count]);
        assert_eq!(recorded.code, 0, "{recorded}");
    }
    assert_eq!(agent(&env, "a", "alice", &["done"]).code, 0);
    let json = agent(&env, "reader", "carol", &["report", "--json"]).json();
    let run = &json["runs"][0];
    assert_eq!(
        (run["cost_usd"].to_string(), &run["unpriced_tokens"]),
        ("0.15".to_owned(), &serde_json::json!(30)),
        "{json}"
    );
    assert_eq!(json["summary"]["cost_usd"].to_string(), "0.15", "{json}");
    assert_eq!(
        json["summary"]["usd_per_completed_task"].to_string(),
        "0.15",
        "{json}"
    );
    let waste = &json["waste"];
    assert_eq!(
        waste["tokens_per_completed_task"]["top"][0],
        serde_json::json!(["cache", 10_030, 0.15, 30]),
        "{json}"
    );
    assert_eq!(
        (
            waste["unmerged_cost_usd"].to_string(),
            &waste["unmerged_unpriced_tokens"]
        ),
        ("0.15".to_owned(), &serde_json::json!(30)),
        "{json}"
    );
    assert_eq!(waste["cost_tail_by_type"]["feature"]["count"], 1, "{json}");
    let table = agent(&env, "reader", "carol", &["report"]);
    for line in [
        "$ per completed task",
        "unmerged spend",
        "cache: 10.0k tokens",
        "cache run 1-20261102T090000Z by alice",
    ] {
        let found = table
            .stdout
            .lines()
            .find(|text| text.trim_start().starts_with(line))
            .unwrap_or_else(|| panic!("no `{line}`: {table}"));
        assert!(
            found.contains("at least $0.15 (30 tokens unpriced)"),
            "{found}\n{table}"
        );
    }
    let by_model = agent(&env, "reader", "carol", &["report", "--by", "model"]);
    let mystery = by_model
        .stdout
        .lines()
        .find(|line| line.starts_with("mystery-model"))
        .unwrap_or_else(|| panic!("{by_model}"));
    assert!(
        mystery.contains(" unknown (30 tokens unpriced) ") && !mystery.contains('$'),
        "{by_model}"
    );
    let html = agent(&env, "reader", "carol", &["report", "--format", "html"]);
    let chart = html
        .stdout
        .split("<figure>")
        .find(|figure| figure.contains("Cost by model"))
        .unwrap_or_else(|| panic!("{html}"));
    assert!(
        chart.contains("unknown (30 tokens unpriced)") && !chart.contains("$0.00"),
        "{chart}"
    );
    let metrics = agent(
        &env,
        "reader",
        "carol",
        &["report", "--format", "openmetrics"],
    );
    assert!(
        !metrics
            .stdout
            .lines()
            .any(|line| line.starts_with("gitprio_cost_usd_total{")
                && line.contains("mystery-model")),
        "{metrics}"
    );
    assert!(
        metrics
            .stdout
            .lines()
            .any(|line| line.starts_with("gitprio_unpriced_tokens_total{")
                && line.contains("mystery-model")
                && line.ends_with(" 30")),
        "{metrics}"
    );
    let show = agent(
        &env,
        "reader",
        "carol",
        &["usage", "show", "cache", "--json"],
    )
    .json();
    assert_eq!(
        (
            show["runs"][0]["cost_usd"].to_string(),
            &show["runs"][0]["unpriced_tokens"]
        ),
        ("0.15".to_owned(), &serde_json::json!(30)),
        "{show}"
    );
    let top = agent(&env, "reader", "carol", &["top", "--once", "--json"]).json();
    let ended = &top["recent"][0];
    assert_eq!(
        (ended["cost_usd"].to_string(), &ended["unpriced_tokens"]),
        ("0.15".to_owned(), &serde_json::json!(30)),
        "{top}"
    );
}

#[test]
fn a_log_path_that_cannot_be_read_is_named_with_its_cause_once() {
    let env = TestEnv::new();
    setup(&env);
    env.write("a", &[("notes.txt", "not a directory\n")]);
    // A path through a file: not "no such file", another error, which has a cause.
    let output = import_in(
        &env,
        "a",
        "alice",
        "2026-11-02T09:10:00Z",
        &["notes.txt/logs"],
    );
    assert_eq!((output.code, output.stdout.as_str()), (1, ""), "{output}");
    assert_eq!(
        output.stderr.matches("Not a directory").count(),
        1,
        "{output}"
    );
    assert!(
        output
            .stderr
            .contains("read log directory $ROOT/a/notes.txt/logs: Not a directory (os error 20)"),
        "{output}"
    );
}

#[test]
fn an_inverted_time_range_is_an_error_naming_both_bounds() {
    let env = TestEnv::new();
    setup(&env);
    spend_across_midnight(&env);
    let output = env.run_with(
        "reader",
        &["report", "--since", "2026-11-05", "--until", "2026-11-01"],
        &[("GITPRIO_AGENT", "carol"), ("GITPRIO_NOW", T0)],
    );
    assert_eq!(
        (output.code, output.stdout.as_str(), output.stderr.as_str()),
        (
            1,
            "",
            "error: `--since 2026-11-05` is after `--until 2026-11-01`: no request can be in both; swap them\n"
        ),
        "{output}"
    );
    // One day as both bounds: `--until` is exclusive, and the error says so.
    let output = env.run_with(
        "reader",
        &["report", "--since", "2026-11-02", "--until", "2026-11-02"],
        &[("GITPRIO_AGENT", "carol"), ("GITPRIO_NOW", T0)],
    );
    assert_eq!(output.code, 1, "{output}");
    assert!(
        output
            .stderr
            .contains("`--until` is the first moment left out"),
        "{output}"
    );
    // A time without its zone is refused rather than read as its date's midnight.
    let output = env.run_with(
        "reader",
        &["report", "--until", "2026-11-02T06:00"],
        &[("GITPRIO_AGENT", "carol"), ("GITPRIO_NOW", T0)],
    );
    assert_eq!(
        (output.code, output.stderr.as_str()),
        (
            1,
            "error: `2026-11-02T06:00` has no zone: add `Z` for UTC or an offset such as `+02:00` (RFC 3339)\n"
        ),
        "{output}"
    );
}

#[test]
fn by_model_a_run_counts_under_each_model_it_used_and_completes_under_its_main_one() {
    let env = TestEnv::new();
    setup(&env);
    let at = |now: &str, args: &[&str]| succeeds(&env, "a", "alice", now, args);
    at(
        "2026-11-02T09:00:00Z",
        &["claim", "--json", "--type", "feature"],
    );
    at("2026-11-02T09:05:00Z", &SPEND);
    at(
        "2026-11-02T09:06:00Z",
        &[
            "usage",
            "record",
            "--model",
            "claude-haiku-4-5",
            "--output",
            "500",
        ],
    );
    at("2026-11-02T09:10:00Z", &["done"]);
    let report = |args: &[&str]| {
        let all = [&["report", "--by", "model"][..], args].concat();
        succeeds(&env, "reader", "carol", "2026-11-02T10:00:00Z", &all)
    };
    let json = report(&["--json"]).json();
    let groups: Vec<(String, u64, u64, u64, u64)> = json["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|group| {
            let number = |key: &str| group[key].as_u64().unwrap();
            (
                group["key"].as_str().unwrap().to_owned(),
                number("runs"),
                number("completed_tasks"),
                number("value_points"),
                number("tokens"),
            )
        })
        .collect();
    assert_eq!(
        groups,
        [
            ("claude-haiku-4-5".to_owned(), 1, 0, 0, 500),
            ("claude-sonnet-4-5".to_owned(), 1, 1, 8, 1000),
        ],
        "{json}"
    );
    let rule = "a run counts under each model it used, with that model's tokens; its completion and value under its main model (the one that spent most tokens)";
    for format in ["table", "md", "html"] {
        let text = report(&["--format", format]).stdout;
        assert!(text.contains(rule), "{format}: {text}");
    }
}

/// The 5-hour windows a subscription meters hold all of the account's requests on this
/// machine, the unattributed too, cut as ccusage's `blocks` cuts them (a request exactly
/// 5 hours after its window opened still belongs to it); spend per day shows the
/// unattributed spend beside the tied; every view says which it counts (walk16 B1).
#[test]
fn five_hour_windows_hold_the_machines_unattributed_requests_cut_as_ccusage_does() {
    let env = TestEnv::new();
    setup(&env);
    succeeds(
        &env,
        "a",
        "alice",
        "2026-11-02T09:00:00Z",
        &["claim", "--json", "--type", "feature", "--ttl", "2d"],
    );
    let tied = env.path("a").display().to_string();
    let elsewhere = env.path("elsewhere").display().to_string();
    // 160 tokens each (10 input, 100 cache read, 50 output).
    let line = |cwd: &str, message: &str, at: &str| {
        claude_usage_line(cwd, "s-w", message, at, SOME_USAGE, "")
    };
    write_transcript(
        &env,
        "s-w.jsonl",
        &[
            line(&tied, "w1", "2026-11-02T09:10:00Z"),
            line(&elsewhere, "w2", "2026-11-02T09:20:00Z"),
            line(&elsewhere, "w3", "2026-11-02T14:00:00.000Z"),
            line(&elsewhere, "w4", "2026-11-02T14:30:00Z"),
        ],
    );
    let imported = import_in(&env, "a", "alice", "2026-11-02T15:00:00Z", &["--json"]);
    assert_eq!(imported.code, 0, "{imported}");
    assert_eq!(imported.json()["unattributed"], 3, "{imported}");
    let report = |args: &[&str]| {
        let all = [&["report", "--offline"][..], args].concat();
        succeeds(&env, "a", "alice", "2026-11-02T15:00:00Z", &all)
    };
    let json = report(&["--json"]).json();
    assert_eq!(json["spend"]["windows_count"], "all", "{json}");
    let windows: Vec<String> = json["spend"]["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|window| {
            format!(
                "{} {}: {} = tied {} + unattributed {}, active {}",
                window["provider"],
                window["start"],
                window["tokens"],
                window["tied_tokens"],
                window["unattributed_tokens"],
                window["active"]
            )
        })
        .collect();
    assert_eq!(
        windows,
        [
            r#""claude" "2026-11-02T09:00:00Z": 480 = tied 160 + unattributed 320, active false"#,
            r#""claude" "2026-11-02T14:00:00Z": 160 = tied 0 + unattributed 160, active true"#,
        ],
        "{json}"
    );
    let day = &json["spend"]["by_day"][0];
    assert_eq!(
        (
            day["period"].as_str(),
            day["tokens"].as_u64(),
            day["unattributed_tokens"].as_u64(),
            day["unattributed_requests"].as_u64()
        ),
        (Some("2026-11-02"), Some(160), Some(480), Some(3)),
        "{json}"
    );
    // A filter picks which windows show; it never cuts them.
    let later = report(&["--json", "--since", "2026-11-02T14:10:00Z"]).json();
    assert_eq!(later["spend"]["windows"][0]["tokens"], 160, "{later}");
    assert_eq!(
        later["spend"]["by_day"][0]["unattributed_tokens"], 160,
        "{later}"
    );
    let table = report(&[]).stdout;
    for line in [
        "over all of the account's requests: the agent's tied requests, and for the agent running this report also this machine's unattributed ones",
        "alice's claude 2026-11-02 09:00 to 14:00: 480 tokens",
        "(tied 160, unattributed 320)",
        "2026-11-02: tied 160 tokens in 1 request",
        "unattributed 480 tokens in 3 requests",
    ] {
        assert!(table.contains(line), "{line}: {table}");
    }
    let markdown = report(&["--format", "md"]).stdout;
    assert!(
        markdown.contains("(tied 160, unattributed 320)"),
        "{markdown}"
    );
    let html = report(&["--format", "html"]).stdout;
    assert!(html.contains("(tied 160, unattributed 320)"), "{html}");
}

/// A run still going is "in flight" in every view: the per-task HTML tables, `usage
/// show`, the text; `in_flight` in JSON (snake case, as every outcome), and never an
/// outcome of the Prometheus counter of ended runs. Never "open", a task's status (walk16 C2).
#[test]
fn a_run_still_going_is_in_flight_in_every_view_never_open() {
    let env = TestEnv::new();
    setup(&env);
    let at = |args: &[&str]| succeeds(&env, "a", "alice", "2026-11-02T09:30:00Z", args);
    succeeds(
        &env,
        "a",
        "alice",
        T0,
        &["claim", "--json", "--type", "feature"],
    );
    succeeds(&env, "a", "alice", "2026-11-02T09:01:00Z", &SPEND);
    let json = at(&["report", "--json", "--offline"]).json();
    assert_eq!(json["runs"][0]["outcome"], "in_flight", "{json}");
    assert_eq!(json["fleet_runs"][0]["outcome"], "in_flight", "{json}");
    assert_eq!(
        json["waste"]["in_flight_runs"][0]["outcome"], "in_flight",
        "{json}"
    );
    let html = at(&["report", "--offline", "--format", "html"]).stdout;
    assert!(html.contains("<td>in flight</td>"), "{html}");
    assert!(!html.contains("<td>open</td>"), "{html}");
    let show = at(&["usage", "show", "cache"]).stdout;
    assert!(show.contains("alice  in flight"), "{show}");
    let metrics = at(&["report", "--offline", "--format", "openmetrics"]).stdout;
    assert!(metrics.contains("gitprio_in_flight_runs"), "{metrics}");
    for outcome in ["outcome=\"open\"", "outcome=\"in_flight\""] {
        assert!(!metrics.contains(outcome), "{outcome}: {metrics}");
    }
}
