//! `gitprio mcp` driven over stdio by rmcp's own client, and `gitprio init --agents`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::process::{Command, Stdio};

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, ErrorCode};
use rmcp::service::{RoleClient, RunningService, ServiceError};
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

use crate::common::TestEnv;

const T0: &str = "2026-11-01T12:00:00Z";

/// The most tokens (bytes / 4) all tool definitions together may cost an agent's context.
const TOOL_BUDGET_TOKENS: usize = 1500;

type Client = RunningService<RoleClient, ()>;

fn task(title: &str, priority: u8, extra: &str) -> String {
    format!("---\ntitle: {title}\npriority: {priority}\n{extra}---\nDo {title}.\n")
}

/// A bare `remote.git` holding `files` on `main`, and one clone per name in `clones`.
fn remote_with_clones(env: &TestEnv, files: &[(String, String)], clones: &[&str]) {
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

/// The hermetic environment of `TestEnv`, for a command run in `dir` as `agent` at `now`.
fn hermetic(env: &TestEnv, command: &mut Command, dir: &str, agent: &str, now: &str) {
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.path("home"))
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_AUTHOR_DATE", "2026-11-01T12:00:00Z")
        .env("GIT_COMMITTER_NAME", "Test Committer")
        .env("GIT_COMMITTER_EMAIL", "committer@example.com")
        .env("GIT_COMMITTER_DATE", "2026-11-01T12:00:00Z")
        .env("NO_COLOR", "1")
        .env("GITPRIO_AGENT", agent)
        .env("GITPRIO_NOW", now)
        .current_dir(env.path(dir));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Starts `gitprio mcp` in `dir` as `agent` and connects rmcp's client to it (initialize included).
async fn connect(env: &TestEnv, dir: &str, agent: &str, now: &str) -> Client {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gitprio"));
    hermetic(env, &mut command, dir, agent, now);
    command.arg("mcp");
    let (transport, _) = TokioChildProcess::builder(tokio::process::Command::from(command))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    ().serve(transport).await.unwrap()
}

/// Calls `tool` and checks the result's shape: text is the structured content as JSON, or
/// for an error the plain sentence of its `message`.
async fn call(client: &Client, tool: &'static str, arguments: Value) -> (bool, Value) {
    let arguments = arguments.as_object().cloned().unwrap_or_default();
    let result: CallToolResult = client
        .call_tool(CallToolRequestParams::new(tool).with_arguments(arguments))
        .await
        .unwrap_or_else(|error| panic!("{tool} failed at the protocol level: {error}"));
    let is_error = result.is_error == Some(true);
    let structured = result
        .structured_content
        .clone()
        .unwrap_or_else(|| panic!("{tool} returned no structured content: {result:?}"));
    let text = result.content[0].as_text().unwrap().text.clone();
    if is_error {
        assert_eq!(structured["message"], text.as_str(), "{tool}");
    } else {
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            structured,
            "{tool}"
        );
    }
    (is_error, structured)
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one end-to-end agent session, tool call by tool call"
)]
fn an_agent_works_through_the_queue_over_mcp() {
    let env = TestEnv::new();
    let files = vec![
        (
            ".tasks/alpha.md".to_owned(),
            task(
                "Alpha",
                0,
                "owns: [src/alpha.rs]\nacceptance: [test -f src/alpha.rs]\n",
            ),
        ),
        (".tasks/beta.md".to_owned(), task("Beta", 1, "")),
    ];
    remote_with_clones(&env, &files, &["a"]);
    runtime().block_on(async {
        let client = connect(&env, "a", "alice", T0).await;
        let server = client.peer_info().unwrap();
        assert_eq!(server.server_info.as_ref().unwrap().name, "gitprio");
        let instructions = server.instructions.as_deref().unwrap();
        assert!(instructions.contains("get_next_task"), "{instructions}");
        // A third of the default 30m lease.
        assert!(
            instructions.contains("heartbeat every 10m while you work"),
            "{instructions}"
        );

        let tools = client.list_all_tools().await.unwrap();
        let names: BTreeSet<&str> = tools.iter().map(|tool| tool.name.as_ref()).collect();
        assert_eq!(
            names,
            BTreeSet::from([
                "complete_task",
                "get_next_task",
                "heartbeat",
                "queue",
                "release_task",
                "report_usage"
            ])
        );
        let bytes = serde_json::to_string(&tools).unwrap().len();
        assert!(
            bytes / 4 < TOOL_BUDGET_TOKENS,
            "the tool definitions cost about {} tokens, over the budget of {TOOL_BUDGET_TOKENS}",
            bytes / 4
        );
        let hints = |name: &str| {
            let tool = tools.iter().find(|tool| tool.name == name).unwrap();
            let annotations = tool.annotations.clone().unwrap_or_default();
            (annotations.read_only_hint, annotations.destructive_hint)
        };
        assert_eq!(hints("queue"), (Some(true), None));
        assert_eq!(hints("release_task"), (None, Some(true)));
        assert_eq!(hints("get_next_task"), (None, Some(false)));

        let (is_error, queue) = call(&client, "queue", json!({ "limit": 1 })).await;
        assert!(!is_error);
        assert_eq!(queue["ready"], 2);
        assert_eq!(queue["tasks"], json!([{ "rank": 1, "id": "alpha", "title": "Alpha", "priority": 0, "type": null, "value": 1 }]));

        let (is_error, claimed) = call(&client, "get_next_task", json!({})).await;
        assert!(!is_error, "{claimed}");
        assert_eq!(claimed["task"], "alpha");
        assert_eq!(claimed["owns"], json!(["src/alpha.rs"]));
        assert_eq!(claimed["lease"]["generation"], 1);
        assert_eq!(claimed["lease"]["expires_at"], "2026-11-01T12:30:00Z");
        let context = claimed["context"].as_str().unwrap();
        assert!(context.contains("Do Alpha."), "{context}");
        assert!(
            context.contains("- `heartbeat`: every 10m while you work"),
            "{context}"
        );

        // A second claim while holding a task would leave the first one idle.
        let (is_error, refused) = call(&client, "get_next_task", json!({})).await;
        assert!(is_error);
        assert_eq!(refused["task"], "alpha");

        let (is_error, renewed) = call(&client, "heartbeat", json!({})).await;
        assert!(!is_error, "{renewed}");
        assert_eq!(renewed["task"], "alpha");

        let (is_error, reported) = call(
            &client,
            "report_usage",
            json!({ "model": "claude-sonnet-4-5", "input": 1200, "output": 300 }),
        )
        .await;
        assert!(!is_error, "{reported}");
        assert_eq!(reported["tokens"], 1500);

        // complete_task runs the acceptance commands, like `gitprio done`.
        let (is_error, failed) = call(&client, "complete_task", json!({})).await;
        assert!(is_error, "{failed}");
        assert_eq!(failed["error"], "acceptance_failed");
        assert_eq!(failed["acceptance"][0]["status"], "exit 1");
        assert!(
            failed["message"].as_str().unwrap().starts_with(
                "acceptance command `test -f src/alpha.rs` failed (exit 1), so alpha is not done"
            )
        );
        env.write("a", &[("src/alpha.rs", "fn alpha() {}\n")]);
        let (is_error, completed) = call(
            &client,
            "complete_task",
            json!({ "summary": "Added src/alpha.rs; the acceptance test passes.", "usage": { "model": "claude-sonnet-4-5", "output": 100 } }),
        )
        .await;
        assert!(!is_error, "{completed}");
        assert_eq!(completed["path"], ".tasks/alpha.md");
        assert_eq!(completed["tokens"], 1600);
        assert_eq!(completed["acceptance"][0]["passed"], true);
        let text = std::fs::read_to_string(env.path("a/.tasks/alpha.md")).unwrap();
        assert!(text.contains("status: done"), "{text}");
        // The summary is kept in the lease history, as the submit record's reason.
        let status = env.run("a", &["status", "--json"]);
        assert_eq!(
            status.json()["leases"][0]["reason"],
            "Added src/alpha.rs; the acceptance test passes."
        );
        // The agent's change lands: the task is done on the queue's branch.
        env.git("a", &["commit", "--quiet", "--all", "--message", "alpha"]);
        env.git("a", &["push", "--quiet", "origin", "main"]);

        let (_, claimed) = call(&client, "get_next_task", json!({})).await;
        assert_eq!(claimed["task"], "beta");
        let (is_error, _) = call(&client, "complete_task", json!({})).await;
        assert!(!is_error);
        env.git("a", &["commit", "--quiet", "--all", "--message", "beta"]);
        env.git("a", &["push", "--quiet", "origin", "main"]);

        // An empty queue is a normal result that tells the agent to stop.
        let (is_error, empty) = call(&client, "get_next_task", json!({})).await;
        assert!(!is_error, "{empty}");
        assert_eq!(empty["task"], Value::Null);
        assert_eq!(empty["reason"], "empty");
        assert!(empty["message"].as_str().unwrap().contains("stop"));

        let (is_error, nothing) = call(&client, "heartbeat", json!({})).await;
        assert!(is_error);
        assert_eq!(nothing["error"], "failed");
        assert_eq!(nothing["exit_code"], 1);
        assert_eq!(nothing["exit_status"], "failure");

        // Protocol errors stay JSON-RPC errors.
        let unknown = client
            .call_tool(CallToolRequestParams::new("claim_everything"))
            .await;
        match unknown {
            Err(ServiceError::McpError(error)) => assert_eq!(error.code, ErrorCode::INVALID_PARAMS),
            other => panic!("expected a JSON-RPC error, got {other:?}"),
        }
        client.cancel().await.unwrap();
    });
}

#[test]
fn lost_leases_and_budgets_come_back_as_tool_errors() {
    let env = TestEnv::new();
    let files = vec![
        (
            ".tasks/alpha.md".to_owned(),
            task("Alpha", 0, "budget: 1k\n"),
        ),
        (".tasks/beta.md".to_owned(), task("Beta", 1, "")),
    ];
    remote_with_clones(&env, &files, &["a", "b"]);
    runtime().block_on(async {
        let alice = connect(&env, "a", "alice", T0).await;
        let (_, claimed) = call(&alice, "get_next_task", json!({})).await;
        assert_eq!(claimed["task"], "alpha");

        let (is_error, over) = call(
            &alice,
            "report_usage",
            json!({ "model": "m", "input": 5000, "key": "turn-1" }),
        )
        .await;
        assert!(is_error);
        assert_eq!(over["error"], "budget_exceeded");
        assert_eq!(over["exit_code"], 5);
        assert_eq!(over["tokens"], 5000);
        assert_eq!(
            over["message"],
            "budget exceeded on `alpha`: 5000 tokens spent of 1000; stop, and release_task with failed true and reason \"over budget\""
        );
        // The same key again counts once.
        let (_, again) = call(
            &alice,
            "report_usage",
            json!({ "model": "m", "input": 5000, "key": "turn-1" }),
        )
        .await;
        assert_eq!(again["tokens"], 5000);
        assert_eq!(again["added"], 0);

        // Alice stops renewing; bob reclaims after the lease expired.
        let reclaim = env.run_with(
            "b",
            &["claim", "--json"],
            &[("GITPRIO_AGENT", "bob"), ("GITPRIO_NOW", "2026-11-01T13:00:00Z")],
        );
        assert_eq!(reclaim.code, 0, "{reclaim}");
        assert_eq!(reclaim.json()["task"]["id"], "alpha");

        let (is_error, lost) = call(&alice, "heartbeat", json!({})).await;
        assert!(is_error);
        assert_eq!(lost["error"], "lease_lost");
        assert_eq!(lost["exit_code"], 4);
        assert!(
            lost["message"]
                .as_str()
                .unwrap()
                .starts_with("lease lost on `alpha`")
        );
        // The lost task is forgotten: alice may claim again, and gets the other task.
        let (is_error, next) = call(&alice, "get_next_task", json!({})).await;
        assert!(!is_error, "{next}");
        assert_eq!(next["task"], "beta");
        let (is_error, released) = call(
            &alice,
            "release_task",
            json!({ "reason": "tests fail", "failed": true }),
        )
        .await;
        assert!(!is_error, "{released}");
        assert_eq!(released["parked"], false);
        assert_eq!(released["failures"], 1);
        alice.cancel().await.unwrap();
    });
}

#[test]
fn heartbeat_records_progress_on_the_lease_like_the_cli() {
    let env = TestEnv::new();
    let files = vec![(".tasks/alpha.md".to_owned(), task("Alpha", 0, ""))];
    remote_with_clones(&env, &files, &["a"]);
    let progress = || env.run("a", &["status", "--json"]).json()["leases"][0]["progress"].clone();
    runtime().block_on(async {
        let client = connect(&env, "a", "alice", T0).await;
        let (_, claimed) = call(&client, "get_next_task", json!({})).await;
        assert_eq!(claimed["task"], "alpha");
        assert_eq!(progress(), Value::Null);

        let (is_error, renewed) = call(
            &client,
            "heartbeat",
            json!({ "tokens": 42_000, "cost_usd": 0.5 }),
        )
        .await;
        assert!(!is_error, "{renewed}");
        assert_eq!(renewed["task"], "alpha");
        assert_eq!(
            progress(),
            json!({ "tokens": 42_000, "cost_usd": 0.5, "at": T0 })
        );

        // Bad progress is refused before the lease is touched, with what to fix.
        let (is_error, negative) = call(
            &client,
            "heartbeat",
            json!({ "tokens": 43_000, "cost_usd": -0.5 }),
        )
        .await;
        assert!(is_error);
        assert_eq!(negative["error"], "failed");
        assert_eq!(
            negative["message"],
            "the cost `-0.5` is not an amount of dollars like `0.42`: it must be finite and not negative"
        );
        let (is_error, lonely) = call(&client, "heartbeat", json!({ "cost_usd": 0.5 })).await;
        assert!(is_error);
        assert_eq!(
            lonely["message"],
            "a cost needs the tokens it was spent on: report the tokens too"
        );
        let arguments = json!({ "tokens": -1 }).as_object().cloned().unwrap();
        let result = client
            .call_tool(CallToolRequestParams::new("heartbeat").with_arguments(arguments))
            .await
            .unwrap();
        assert_eq!(result.is_error, Some(true), "{result:?}");
        let text = &result.content[0].as_text().unwrap().text;
        // The field at fault is named, so the model can correct the call.
        assert!(
            text.ends_with("`tokens`: invalid value: integer `-1`, expected u64"),
            "{text}"
        );
        let arguments = json!({ "usage": { "model": "m", "output": "lots" } });
        let result = client
            .call_tool(
                CallToolRequestParams::new("complete_task")
                    .with_arguments(arguments.as_object().cloned().unwrap()),
            )
            .await
            .unwrap();
        assert_eq!(result.is_error, Some(true), "{result:?}");
        let text = &result.content[0].as_text().unwrap().text;
        assert!(text.contains("`usage.output`: invalid type: string"), "{text}");
        assert_eq!(
            progress(),
            json!({ "tokens": 42_000, "cost_usd": 0.5, "at": T0 })
        );

        // Tokens alone are progress too; a heartbeat without news keeps the last report.
        let (is_error, _) = call(&client, "heartbeat", json!({ "tokens": 50_000 })).await;
        assert!(!is_error);
        let (is_error, _) = call(&client, "heartbeat", json!({})).await;
        assert!(!is_error);
        assert_eq!(progress(), json!({ "tokens": 50_000, "at": T0 }));
        client.cancel().await.unwrap();
    });
}

/// Claims and completes tasks until the server hands out nothing; returns the ids it claimed.
async fn drain(client: &Client) -> Vec<String> {
    let mut claimed = Vec::new();
    loop {
        let (is_error, reply) = call(client, "get_next_task", json!({})).await;
        if reply["task"].is_null() {
            assert!(
                is_error && reply["error"] == "nothing_ready" || reply["reason"] == "empty",
                "{reply}"
            );
            return claimed;
        }
        assert!(!is_error, "{reply}");
        claimed.push(reply["task"].as_str().unwrap().to_owned());
        let (is_error, completed) = call(client, "complete_task", json!({})).await;
        assert!(!is_error, "{completed}");
    }
}

#[test]
fn two_servers_on_one_queue_never_hand_out_the_same_task() {
    let env = TestEnv::new();
    let files: Vec<(String, String)> = (0..8)
        .map(|index| {
            (
                format!(".tasks/t{index}.md"),
                task(&format!("task {index}"), 2, ""),
            )
        })
        .collect();
    remote_with_clones(&env, &files, &["a", "b"]);
    let (alice, bob) = runtime().block_on(async {
        let alice = connect(&env, "a", "alice", T0).await;
        let bob = connect(&env, "b", "bob", T0).await;
        let claimed = tokio::join!(drain(&alice), drain(&bob));
        alice.cancel().await.unwrap();
        bob.cancel().await.unwrap();
        claimed
    });
    let mut all: Vec<&String> = alice.iter().chain(&bob).collect();
    all.sort();
    let unique: BTreeSet<&String> = all.iter().copied().collect();
    assert_eq!(unique.len(), all.len(), "double claim: {alice:?} {bob:?}");
    assert_eq!(unique.len(), 8, "alice {alice:?}, bob {bob:?}");
}

#[test]
fn stdout_carries_only_the_protocol() {
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[(
            ".tasks/alpha.md",
            &task("Alpha", 0, "depends_on: [ghost]\n"),
        )],
    );
    let mut command = Command::new(env!("CARGO_BIN_EXE_gitprio"));
    hermetic(&env, &mut command, "repo", "alice", T0);
    let mut child = command
        .arg("mcp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let requests = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "get_next_task", "arguments": {}}}),
    ];
    let mut stdin = child.stdin.take().unwrap();
    for request in requests {
        std::io::Write::write_all(&mut stdin, format!("{request}\n").as_bytes()).unwrap();
    }
    // Wait for the answer before closing stdin, which ends the server.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    while lines.len() < 2 {
        let mut line = String::new();
        assert_ne!(
            std::io::BufRead::read_line(&mut stdout, &mut line).unwrap(),
            0
        );
        lines.push(line);
    }
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(rest.is_empty() && output.stdout.is_empty(), "{rest}");
    for line in &lines {
        let message: Value = serde_json::from_str(line).unwrap();
        assert_eq!(message["jsonrpc"], "2.0");
    }
    let answer: Value = serde_json::from_str(&lines[1]).unwrap();
    // The only task waits on a task that does not exist: nothing ready, an error to act on.
    assert_eq!(answer["result"]["isError"], true);
    assert_eq!(
        answer["result"]["structuredContent"]["reason"],
        "all_blocked"
    );
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("nothing ready"), "{stderr}");
}

/// Runs `gitprio init --agents` in `dir` and returns its output with the files it writes.
fn init_agents(env: &TestEnv, dir: &str) -> String {
    let output = env.run(dir, &["init", "--agents"]);
    let mut text = output.to_string();
    for path in [
        "AGENTS.md",
        "CLAUDE.md",
        ".claude/skills/gitprio/SKILL.md",
        ".mcp.json",
    ] {
        if let Ok(content) = std::fs::read_to_string(env.path(dir).join(path)) {
            write!(text, "=== {path}\n{content}").unwrap();
        }
    }
    text
}

#[test]
fn init_agents_keeps_the_users_text_and_changes_nothing_the_second_time() {
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[
            ("AGENTS.md", "# Agents\n\nRun `make lint` before committing.\n"),
            ("CLAUDE.md", "Be brief.\n"),
            (
                ".mcp.json",
                "{\n  \"mcpServers\": {\n    \"docs\": {\n      \"command\": \"docs-server\",\n      \"args\": [\"--stdio\"]\n    }\n  },\n  \"other\": true\n}\n",
            ),
        ],
    );
    let first = init_agents(&env, "repo");
    insta::assert_snapshot!(first);
    let second = init_agents(&env, "repo");
    insta::assert_snapshot!(second);
    let files = |text: &str| text.split_once("=== ").unwrap().1.to_owned();
    assert_eq!(files(&first), files(&second));

    // Edits inside the section are replaced; the user's own text around it stays.
    let agents = std::fs::read_to_string(env.path("repo/AGENTS.md")).unwrap();
    let edited = agents.replace("Claim the next task.", "Do whatever.") + "\nMore of my own.\n";
    std::fs::write(env.path("repo/AGENTS.md"), &edited).unwrap();
    let third = env.run("repo", &["init", "--agents"]);
    assert_eq!(third.code, 0, "{third}");
    assert!(third.stderr.contains("updated AGENTS.md"), "{third}");
    let restored = std::fs::read_to_string(env.path("repo/AGENTS.md")).unwrap();
    assert_eq!(restored, format!("{agents}\nMore of my own.\n"));
}

#[test]
fn init_agents_in_a_bare_repository_creates_every_file() {
    let env = TestEnv::new();
    env.repo("repo", &[]);
    insta::assert_snapshot!(init_agents(&env, "repo"));
    // A `.mcp.json` already naming gitprio is the user's to keep.
    std::fs::write(
        env.path("repo/.mcp.json"),
        "{\"mcpServers\":{\"gitprio\":{\"command\":\"/opt/gitprio\",\"args\":[\"mcp\",\"--tier\",\"small\"]}}}",
    )
    .unwrap();
    let output = env.run("repo", &["init", "--agents"]);
    assert!(
        output.stderr.contains(".mcp.json is up to date"),
        "{output}"
    );
    let broken = env.path("repo/.mcp.json");
    std::fs::write(&broken, "{ \"mcpServers\": ").unwrap();
    let output = env.run("repo", &["init", "--agents"]);
    assert_eq!(output.code, 1);
    assert!(
        output
            .stderr
            .contains("cannot update .mcp.json: it is not valid JSON"),
        "{output}"
    );
}

#[test]
fn complete_task_asks_for_the_plan_and_records_why_acceptance_was_skipped() {
    let env = TestEnv::new();
    let files = vec![(
        ".tasks/alpha.md".to_owned(),
        task(
            "Alpha",
            0,
            "plan: required\nacceptance: [\"echo the CI box is gone; false\"]\n",
        ),
    )];
    remote_with_clones(&env, &files, &["a"]);
    runtime().block_on(async {
        let client = connect(&env, "a", "alice", T0).await;
        let (_, claimed) = call(&client, "get_next_task", json!({})).await;
        assert_eq!(claimed["task"], "alpha");
        let (is_error, refused) = call(
            &client,
            "complete_task",
            json!({ "no_verify_reason": "no CI here" }),
        )
        .await;
        assert!(is_error, "{refused}");
        assert_eq!(refused["error"], "plan_missing");
        assert!(
            refused["message"]
                .as_str()
                .unwrap()
                .ends_with("then call complete_task again"),
            "{refused}"
        );
        let mut text = std::fs::read_to_string(env.path("a/.tasks/alpha.md")).unwrap();
        text.push_str("\n## Plan\n\n1. Do Alpha.\n");
        env.write("a", &[(".tasks/alpha.md", &text)]);
        let (is_error, failed) = call(&client, "complete_task", json!({})).await;
        assert!(is_error, "{failed}");
        assert_eq!(failed["error"], "acceptance_failed");
        assert!(
            failed["message"]
                .as_str()
                .unwrap()
                .ends_with("Its output ends with:\nthe CI box is gone"),
            "{failed}"
        );
        let (is_error, completed) = call(
            &client,
            "complete_task",
            json!({ "no_verify_reason": "no CI here", "summary": "Did Alpha." }),
        )
        .await;
        assert!(!is_error, "{completed}");
        assert_eq!(completed["verified"], false);
        assert_eq!(completed["acceptance"], json!([]));
        let status = env.run("a", &["status", "--json"]);
        assert_eq!(
            status.json()["leases"][0]["reason"],
            "acceptance not run: no CI here\n\nDid Alpha."
        );
        client.cancel().await.unwrap();
    });
}

#[test]
fn done_and_complete_task_refuse_a_blank_reason_or_summary_alike() {
    let env = TestEnv::new();
    let files = ["Alpha", "Beta"].map(|title| {
        (
            format!(".tasks/{}.md", title.to_lowercase()),
            task(title, 0, "acceptance: [\"false\"]\n"),
        )
    });
    remote_with_clones(&env, &files, &["a", "b"]);
    let bob =
        |args: &[&str]| env.run_with("b", args, &[("GITPRIO_AGENT", "bob"), ("GITPRIO_NOW", T0)]);
    std::fs::write(env.path("blank.md"), "  \n").unwrap();
    let blank_summary = env.path("blank.md").display().to_string();
    let mut messages = Vec::new();
    runtime().block_on(async {
        let client = connect(&env, "a", "alice", T0).await;
        let (_, claimed) = call(&client, "get_next_task", json!({})).await;
        assert_eq!(claimed["task"], "alpha");
        for arguments in [
            json!({ "no_verify_reason": " " }),
            json!({ "no_verify_reason": "no CI here", "summary": "\n" }),
        ] {
            let (is_error, refused) = call(&client, "complete_task", arguments).await;
            assert!(is_error, "{refused}");
            messages.push(refused["message"].as_str().unwrap().to_owned());
        }
        client.cancel().await.unwrap();
    });
    assert_eq!(bob(&["claim"]).code, 0);
    for (args, message) in [
        (&["done", "--no-verify", "--reason", " "][..], &messages[0]),
        (
            &[
                "done",
                "--no-verify",
                "--reason",
                "no CI here",
                "--summary",
                &blank_summary,
            ],
            &messages[1],
        ),
    ] {
        let refused = bob(args);
        assert_eq!(refused.code, 1, "{refused}");
        assert_eq!(refused.stderr, format!("error: {message}\n"), "{args:?}");
    }
    insta::assert_snapshot!(messages.join("\n"));
    for id in ["alpha", "beta"] {
        let subject = env.git(
            "remote.git",
            &[
                "log",
                "-1",
                "--format=%s",
                &format!("refs/gitprio/leases/{id}"),
            ],
        );
        assert!(subject.starts_with("gitprio lease: claim"), "{subject}");
    }
}

#[test]
fn calls_without_a_task_id_never_act_on_a_completed_task() {
    let env = TestEnv::new();
    let files = vec![(".tasks/alpha.md".to_owned(), task("Alpha", 0, ""))];
    remote_with_clones(&env, &files, &["a", "b"]);
    runtime().block_on(async {
        let client = connect(&env, "a", "alice", T0).await;
        let (_, claimed) = call(&client, "get_next_task", json!({})).await;
        assert_eq!(claimed["task"], "alpha");
        let (is_error, completed) = call(&client, "complete_task", json!({})).await;
        assert!(!is_error, "{completed}");
        let usage = json!({ "model": "m", "input": 10 });
        for (tool, arguments) in [
            ("release_task", json!({ "reason": "done anyway" })),
            ("heartbeat", json!({})),
            ("report_usage", usage),
        ] {
            let (is_error, refused) = call(&client, tool, arguments).await;
            assert!(is_error, "{tool}: {refused}");
            assert!(
                refused["message"]
                    .as_str()
                    .unwrap()
                    .contains("holds no lease"),
                "{tool}: {refused}"
            );
        }
        client.cancel().await.unwrap();
    });
    let subject = env.git(
        "remote.git",
        &["log", "-1", "--format=%s", "refs/gitprio/leases/alpha"],
    );
    assert!(
        subject.starts_with("gitprio lease: submit alpha"),
        "{subject}"
    );
    let other = env.run_with(
        "b",
        &["claim"],
        &[("GITPRIO_AGENT", "bob"), ("GITPRIO_NOW", T0)],
    );
    assert_eq!(other.code, 3, "{other}");
}

/// Asserts that an MCP refusal tells the agent which tool to call, never a CLI command an
/// agent on MCP does not run.
fn names_tools_not_commands(tool: &str, refused: &Value, expected_tool: &str) {
    let message = refused["message"].as_str().unwrap();
    for command in [
        "`gitprio claim",
        "`gitprio done",
        "`gitprio release",
        "`gitprio status",
        "`gitprio list",
        "`gitprio heartbeat",
    ] {
        assert!(
            !message.contains(command),
            "{tool} names the CLI's {command}`: {message}"
        );
    }
    assert!(
        message.contains(expected_tool),
        "{tool} does not name {expected_tool}: {message}"
    );
}

#[test]
fn refusals_name_the_tool_to_call_not_the_cli_command() {
    let env = TestEnv::new();
    let files = vec![(".tasks/alpha.md".to_owned(), task("Alpha", 0, ""))];
    remote_with_clones(&env, &files, &["a", "b"]);
    runtime().block_on(async {
        let alice = connect(&env, "a", "alice", T0).await;
        let (is_error, refused) = call(&alice, "heartbeat", json!({})).await;
        assert!(is_error, "{refused}");
        names_tools_not_commands("heartbeat without a task", &refused, "get_next_task");
        let (is_error, refused) = call(&alice, "heartbeat", json!({ "task_id": "alpha" })).await;
        assert!(is_error, "{refused}");
        names_tools_not_commands("heartbeat of a task not held", &refused, "get_next_task");
        let usage = json!({ "task_id": "alpha", "model": "m", "input": 10 });
        let (is_error, refused) = call(&alice, "report_usage", usage).await;
        assert!(is_error, "{refused}");
        names_tools_not_commands("report_usage with no lease", &refused, "get_next_task");

        let (_, claimed) = call(&alice, "get_next_task", json!({})).await;
        assert_eq!(claimed["task"], "alpha");
        let bob = connect(&env, "b", "bob", T0).await;
        let (is_error, refused) = call(&bob, "get_next_task", json!({})).await;
        assert!(is_error, "{refused}");
        assert_eq!(refused["reason"], "all_held", "{refused}");
        names_tools_not_commands("get_next_task, all held", &refused, "stop");
        bob.cancel().await.unwrap();

        let (is_error, completed) = call(&alice, "complete_task", json!({})).await;
        assert!(!is_error, "{completed}");
        let (is_error, refused) = call(
            &alice,
            "release_task",
            json!({ "task_id": "alpha", "reason": "changed my mind" }),
        )
        .await;
        assert!(is_error, "{refused}");
        names_tools_not_commands(
            "release_task of a submitted task",
            &refused,
            "complete_task",
        );
        alice.cancel().await.unwrap();
    });
}
