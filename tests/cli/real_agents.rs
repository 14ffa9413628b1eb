//! `gitprio run` driving the real agent CLIs (Claude Code, Codex CLI), installed from npm
//! by `.ci/run`, against the scripted model server of [`crate::model_server`]: the documented
//! command lines edit files, and the usage in the ledger is what the server sent.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::{Output, Running, TestEnv, interrupt, wait_until};
use crate::model_server::{Truth, budget_marker, marker, server};

/// Finds an agent CLI: in `.ci/node` (where `.ci/run` installs them), else on `PATH`.
/// `None` skips the test, unless `GITPRIO_TEST_REQUIRE_TOOLS` is set: then it fails.
fn agent_cli(name: &str) -> Option<PathBuf> {
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".ci/node/node_modules/.bin")
        .join(name);
    if local.exists() {
        return Some(local);
    }
    crate::common::tool(&[name])
}

/// The documented Claude Code command: headless, streaming its events, allowed to edit files.
const CLAUDE_ARGS: [&str; 8] = [
    "-p",
    "--output-format",
    "stream-json",
    "--verbose",
    "--model",
    "{model}",
    "--permission-mode",
    "acceptEdits",
];

/// The documented Codex command: the prompt on stdin, events as JSON lines.
const CODEX_ARGS: [&str; 7] = [
    "exec",
    "--json",
    "-m",
    "{model}",
    "--sandbox",
    "workspace-write",
    "-",
];

/// The documented Gemini CLI command: the prompt on stdin (`-p ""` appends it), events as
/// JSON lines, edits allowed, the worktree trusted for the session.
const GEMINI_ARGS: [&str; 10] = [
    "-p",
    "",
    "--output-format",
    "stream-json",
    "-m",
    "{model}",
    "--approval-mode",
    "auto_edit",
    "--skip-trust",
    "--sandbox=false",
];

/// The environment that points the CLIs at the scripted server and keeps them offline.
fn agent_env(env: &TestEnv) -> Vec<(String, String)> {
    let url = server().url();
    let codex_home = env.path("codex-home");
    std::fs::create_dir_all(&codex_home).unwrap();
    std::fs::write(
        codex_home.join("config.toml"),
        format!(
            "model_provider = \"local\"\n\n[model_providers.local]\nname = \"local\"\nbase_url = \"{url}/v1\"\nwire_api = \"responses\"\nenv_key = \"LOCAL_API_KEY\"\n"
        ),
    )
    .unwrap();
    // Gemini CLI takes its way to authenticate from its settings only.
    let gemini = env.path("home/.gemini");
    std::fs::create_dir_all(&gemini).unwrap();
    std::fs::write(
        gemini.join("settings.json"),
        r#"{"security": {"auth": {"selectedType": "gemini-api-key"}}, "general": {"disableAutoUpdate": true}, "privacy": {"usageStatisticsEnabled": false}}"#,
    )
    .unwrap();
    [
        ("GOOGLE_GEMINI_BASE_URL", url.clone()),
        ("GEMINI_API_KEY", "test-key".to_owned()),
        ("ANTHROPIC_BASE_URL", url.clone()),
        ("ANTHROPIC_API_KEY", "test-key".to_owned()),
        ("DISABLE_TELEMETRY", "1".to_owned()),
        ("DISABLE_AUTOUPDATER", "1".to_owned()),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".to_owned()),
        ("CODEX_HOME", codex_home.display().to_string()),
        ("LOCAL_API_KEY", "test-key".to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// A task whose agent plays `script` on the server, its sessions filed under `tag`.
fn scripted_task(title: &str, script: &str, tag: &str, extra: &str) -> String {
    task_with_marker(title, &marker(script, tag), extra)
}

fn task_with_marker(title: &str, marker: &str, extra: &str) -> String {
    format!("---\ntitle: {title}\n{extra}---\n{title}. {marker}\n")
}

/// `gitprio run --local --json` with `options`, then the agent command, ready to start.
fn agent_run(env: &TestEnv, options: &[&str], cli: &std::path::Path, args: &[&str]) -> Command {
    let cli = cli.display().to_string();
    let mut arguments = vec!["run", "--local", "--json"];
    arguments.extend(options);
    arguments.push("--");
    arguments.push(&cli);
    arguments.extend(args);
    let mut command = env.command("repo", &arguments);
    command.envs(agent_env(env));
    command
}

/// Runs `gitprio run --local --json` with `options`, then the agent command.
fn run_agent(env: &TestEnv, options: &[&str], cli: &std::path::Path, args: &[&str]) -> Output {
    env.normalized(&agent_run(env, options, cli, args).output().unwrap())
}

/// The usage of the one run of task `id` in the ledger, as the server's buckets.
fn ledger_usage(env: &TestEnv, id: &str) -> Truth {
    let show = env.run("repo", &["usage", "show", id, "--json", "--local"]);
    assert_eq!(show.code, 0, "{show}");
    let runs = show.json()["runs"].as_array().unwrap().clone();
    assert_eq!(runs.len(), 1, "{show}");
    let totals = &runs[0]["totals"];
    let count = |field: &str| totals[field].as_u64().unwrap_or(0);
    Truth {
        input: count("input"),
        output: count("output"),
        cache_write_5m: count("cache_write_5m"),
        cache_write_1h: count("cache_write_1h"),
        cache_read: count("cache_read"),
        reasoning: count("reasoning"),
        requests: count("requests"),
    }
}

fn attempt<'a>(summary: &'a Value, id: &str) -> &'a Value {
    summary["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|run| run["task"] == id)
        .unwrap_or_else(|| panic!("no attempt at {id}: {summary}"))
}

/// Asserts that the ledger holds exactly what the server sent for each task, and that
/// importing the CLIs' own logs afterwards changes no total.
fn assert_exact_usage(env: &TestEnv, tasks: &[(&str, &str)], run: &Output) {
    for (id, tag) in tasks {
        let truth = server().total(tag);
        assert!(
            truth.requests > 0,
            "the server saw no request for {id}: {run}"
        );
        assert_eq!(ledger_usage(env, id), truth, "{id}: {run}");
    }
    let import = env.run("repo", &["usage", "import", "--local", "--json"]);
    assert_eq!(import.code, 0, "{import}");
    eprintln!("{import}");
    for (id, tag) in tasks {
        assert_eq!(
            ledger_usage(env, id),
            server().total(tag),
            "{id} after `usage import`: {import}\n{}",
            env.git("repo", &["log", "-p", &format!("refs/gitprio/usage/{id}")])
        );
    }
}

#[test]
fn real_claude_code_edits_in_accept_edits_mode_and_its_usage_is_exact() {
    let Some(claude) = agent_cli("claude") else {
        return;
    };
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[(
            ".tasks/alpha.md",
            &scripted_task(
                "Alpha",
                "edit",
                "claude-edit",
                "model: claude-sonnet-4-5\nacceptance: [test -f done.txt]\n",
            ),
        )],
    );
    let run = run_agent(&env, &[], &claude, &CLAUDE_ARGS);
    assert_eq!(run.code, 0, "{run}");
    let summary = run.json();
    assert_eq!(summary["completed"], 1, "{run}");
    assert_eq!(
        env.git("repo", &["show", "gitprio/alpha:done.txt"]),
        "done\n"
    );
    assert_exact_usage(&env, &[("alpha", "claude-edit")], &run);
}

#[test]
fn a_tool_use_claude_code_denies_is_named_with_its_reason() {
    let Some(claude) = agent_cli("claude") else {
        return;
    };
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[
            (".tasks/config.yaml", ONE_ATTEMPT),
            (
                ".tasks/shell.md",
                &scripted_task(
                    "Shell",
                    "shell",
                    "claude-shell",
                    "model: claude-sonnet-4-5\n",
                ),
            ),
        ],
    );
    let run = run_agent(&env, &[], &claude, &CLAUDE_ARGS);
    assert_eq!(run.code, 0, "{run}");
    let summary = run.json();
    let error = attempt(&summary, "shell")["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{run}"))
        .to_owned();
    assert!(
        error.starts_with("the agent was denied 1 tool use and changed nothing: Bash: "),
        "{run}"
    );
    assert!(!env.path("repo-gitprio-worktrees/shell/shell.txt").exists());
}

/// A config under which a failed task is parked at once, so a run tries each task once.
const ONE_ATTEMPT: &str = "max_attempts: 1\n";

/// Three tasks for one CLI: one edits and completes, one loops until its token budget
/// stops it (the server answers it no more once over it), one ends in an API error; each
/// task's sessions filed under `<prefix>-<id>`.
fn three_tasks(env: &TestEnv, prefix: &str, model: &str, budget: u64) {
    let extra = format!("model: {model}\n");
    env.repo(
        "repo",
        &[
            (".tasks/config.yaml", ONE_ATTEMPT),
            (
                ".tasks/edit.md",
                &scripted_task(
                    "Edit",
                    "edit",
                    &format!("{prefix}-edit"),
                    &format!("{extra}acceptance: [test -f done.txt]\n"),
                ),
            ),
            (
                ".tasks/loop.md",
                &task_with_marker(
                    "Loop",
                    &budget_marker("loop", &format!("{prefix}-loop"), budget),
                    &format!("{extra}budget: {budget}\n"),
                ),
            ),
            (
                ".tasks/error.md",
                &scripted_task("Error", "error", &format!("{prefix}-error"), &extra),
            ),
        ],
    );
}

/// Checks the outcome of [`three_tasks`]: one completed, one stopped over budget within one
/// request of it, one failed, and every task's usage exactly what the server sent.
fn assert_three_outcomes(env: &TestEnv, prefix: &str, budget: u64, run: &Output) {
    assert_eq!(run.code, 0, "{run}");
    let summary = run.json();
    assert_eq!(attempt(&summary, "edit")["ending"], "completed", "{run}");
    let over = attempt(&summary, "loop");
    assert_ne!(over["ending"], "completed", "{run}");
    assert!(
        over["error"].as_str().unwrap().starts_with("over budget: "),
        "{run}"
    );
    let error = attempt(&summary, "error");
    assert_ne!(error["ending"], "completed", "{run}");
    let tags: Vec<(String, String)> = ["edit", "loop", "error"]
        .iter()
        .map(|id| ((*id).to_owned(), format!("{prefix}-{id}")))
        .collect();
    let tags: Vec<(&str, &str)> = tags
        .iter()
        .map(|(id, tag)| (id.as_str(), tag.as_str()))
        .collect();
    assert_exact_usage(env, &tags, run);
    // Stopped within one request of the budget: over it, but not by a whole request more.
    let spent = ledger_usage(env, "loop");
    let tokens = spent.tokens();
    let per_request = tokens / spent.requests;
    assert!(
        tokens > budget && tokens - budget <= per_request + per_request / 10,
        "{tokens} of {budget}: {run}"
    );
}

#[test]
fn real_claude_code_over_budget_and_failed_runs_record_exactly_what_was_spent() {
    let Some(claude) = agent_cli("claude") else {
        return;
    };
    let env = TestEnv::new();
    three_tasks(&env, "claude3", "claude-sonnet-4-5", 4000);
    let run = run_agent(
        &env,
        &["--parallel", "3", "--grace", "2s", "--timeout", "60s"],
        &claude,
        &CLAUDE_ARGS,
    );
    assert_three_outcomes(&env, "claude3", 4000, &run);
}

#[test]
fn real_codex_edits_stops_over_budget_mid_turn_and_its_usage_is_exact() {
    let Some(codex) = agent_cli("codex") else {
        return;
    };
    let env = TestEnv::new();
    three_tasks(&env, "codex3", "gpt-5", 7000);
    let run = run_agent(
        &env,
        &["--parallel", "3", "--grace", "2s", "--timeout", "60s"],
        &codex,
        &CODEX_ARGS,
    );
    assert_three_outcomes(&env, "codex3", 7000, &run);
}

#[test]
fn a_run_token_limit_stops_every_agent_and_claims_nothing_more() {
    let Some(claude) = agent_cli("claude") else {
        return;
    };
    let env = TestEnv::new();
    let tasks: Vec<(String, String)> = (1..=4)
        .map(|n| {
            (
                format!(".tasks/loop{n}.md"),
                scripted_task(
                    &format!("Loop {n}"),
                    "loop",
                    &format!("fleet-{n}"),
                    "model: claude-sonnet-4-5\n",
                ),
            )
        })
        .collect();
    let files: Vec<(&str, &str)> = tasks
        .iter()
        .map(|(path, text)| (path.as_str(), text.as_str()))
        .collect();
    env.repo("repo", &files);
    let run = run_agent(
        &env,
        &[
            "--parallel",
            "2",
            "--max-tokens",
            "5000",
            "--grace",
            "2s",
            "--timeout",
            "60s",
        ],
        &claude,
        &CLAUDE_ARGS,
    );
    assert_eq!(run.code, 0, "{run}");
    let summary = run.json();
    assert_eq!(summary["stopped"], "max_tokens", "{run}");
    assert_eq!(summary["reason"], "--max-tokens 5000 reached", "{run}");
    // Two agents at work when the limit was reached; no claim after it.
    assert_eq!(summary["attempts"], 2, "{run}");
    assert_eq!(summary["released"], 2, "{run}");
    let tokens = summary["tokens"].as_u64().unwrap();
    assert!(tokens > 5000, "{run}");
    assert_eq!(summary["overshoot"]["tokens"], tokens - 5000, "{run}");
    // Exact, per agent: all the server sent in its session, or all but the answer it was
    // reading when it was stopped (sent, never written to its transcript).
    let mut possible = BTreeSet::from([0]);
    for n in 1..=4 {
        let tag = format!("fleet-{n}");
        let sent = server().total(&tag).tokens();
        let all_but_last = server().total_but_last(&tag).tokens();
        possible = possible
            .iter()
            .flat_map(|sum| [sum + sent, sum + all_but_last])
            .collect();
    }
    assert!(
        possible.contains(&tokens),
        "{tokens} recorded, the server sent one of {possible:?}: {run}"
    );
}

#[test]
fn real_gemini_cli_edits_stops_over_budget_and_its_usage_is_exact() {
    let Some(gemini) = agent_cli("gemini") else {
        return;
    };
    let env = TestEnv::new();
    three_tasks(&env, "gemini3", "gemini-2.5-pro", 9000);
    let run = run_agent(
        &env,
        &["--parallel", "3", "--grace", "2s", "--timeout", "60s"],
        &gemini,
        &GEMINI_ARGS,
    );
    assert_three_outcomes(&env, "gemini3", 9000, &run);
}

/// Not a test: the figures of `benches/real_agents.py` (run with `--ignored`). For each CLI,
/// `GITPRIO_BENCH_TASKS` tasks (default 9: a third edit and complete, a third loop until
/// their budget stops them, a third end in an API error), worked on by `gitprio run
/// --parallel 3`; prints one `BENCH {json}` line per CLI: what the ledger holds against
/// what the server sent, before and after `usage import`, and how far past its budget each
/// stopped task went.
#[test]
#[ignore = "a benchmark: benches/real_agents.py runs it"]
fn bench_real_agents() {
    let tasks: usize = std::env::var("GITPRIO_BENCH_TASKS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(9);
    let budget = 6000;
    for (name, model, args) in [
        ("claude", "claude-sonnet-4-5", &CLAUDE_ARGS[..]),
        ("codex", "gpt-5", &CODEX_ARGS[..]),
        ("gemini", "gemini-2.5-pro", &GEMINI_ARGS[..]),
    ] {
        let Some(cli) = agent_cli(name) else {
            continue;
        };
        let env = TestEnv::new();
        let prefix = format!("bench-{name}");
        let mut files = vec![(".tasks/config.yaml".to_owned(), ONE_ATTEMPT.to_owned())];
        let mut ids = Vec::new();
        for n in 0..tasks {
            let (script, extra) = match n % 3 {
                0 => ("edit", "acceptance: [test -f done.txt]\n".to_owned()),
                1 => ("loop", format!("budget: {budget}\n")),
                _ => ("error", String::new()),
            };
            let id = format!("t{n}");
            files.push((
                format!(".tasks/{id}.md"),
                scripted_task(
                    &format!("Task {n}"),
                    script,
                    &format!("{prefix}-{id}"),
                    &format!("model: {model}\n{extra}"),
                ),
            ));
            ids.push((id, script));
        }
        let borrowed: Vec<(&str, &str)> = files
            .iter()
            .map(|(path, text)| (path.as_str(), text.as_str()))
            .collect();
        env.repo("repo", &borrowed);
        let started = std::time::Instant::now();
        let run = run_agent(
            &env,
            &["--parallel", "3", "--grace", "2s", "--timeout", "120s"],
            &cli,
            args,
        );
        let seconds = started.elapsed().as_secs_f64();
        let summary = run.json();
        let total = |truths: &[Truth]| -> (u64, u64) {
            truths.iter().fold((0, 0), |(tokens, requests), truth| {
                (tokens + truth.tokens(), requests + truth.requests)
            })
        };
        let sent: Vec<Truth> = ids
            .iter()
            .map(|(id, _)| server().total(&format!("{prefix}-{id}")))
            .collect();
        let recorded: Vec<Truth> = ids.iter().map(|(id, _)| ledger_usage(&env, id)).collect();
        let import = env.run("repo", &["usage", "import", "--local", "--json"]);
        assert_eq!(import.code, 0, "{import}");
        let imported: Vec<Truth> = ids.iter().map(|(id, _)| ledger_usage(&env, id)).collect();
        let overshoot: Vec<f64> = ids
            .iter()
            .zip(&recorded)
            .filter(|((_, script), _)| *script == "loop")
            .map(|(_, truth)| {
                let per_request = truth.tokens() / truth.requests.max(1);
                #[expect(clippy::cast_precision_loss, reason = "a ratio for display")]
                let ratio = (truth.tokens().saturating_sub(budget)) as f64 / per_request as f64;
                ratio
            })
            .collect();
        let (sent_tokens, sent_requests) = total(&sent);
        let (recorded_tokens, recorded_requests) = total(&recorded);
        let (imported_tokens, _) = total(&imported);
        println!(
            "BENCH {}",
            serde_json::json!({
                "cli": name,
                "tasks": tasks,
                "completed": summary["completed"],
                "stopped_over_budget": summary["runs"].as_array().unwrap().iter()
                    .filter(|run| run["error"].as_str().is_some_and(|error| error.starts_with("over budget"))).count(),
                "seconds": seconds,
                "server_tokens": sent_tokens,
                "server_requests": sent_requests,
                "ledger_tokens": recorded_tokens,
                "ledger_requests": recorded_requests,
                "exact_tasks": sent.iter().zip(&recorded).filter(|(sent, recorded)| sent == recorded).count(),
                "after_import_tokens": imported_tokens,
                "overshoot_requests_max": overshoot.iter().copied().fold(0.0, f64::max),
            })
        );
    }
}

#[test]
fn real_claude_code_in_json_mode_records_its_transcript_when_it_exits() {
    let Some(claude) = agent_cli("claude") else {
        return;
    };
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[(
            ".tasks/alpha.md",
            &scripted_task(
                "Alpha",
                "edit",
                "claude-json",
                "model: claude-sonnet-4-5\nacceptance: [test -f done.txt]\n",
            ),
        )],
    );
    let args = [
        "-p",
        "--output-format",
        "json",
        "--model",
        "{model}",
        "--permission-mode",
        "acceptEdits",
    ];
    let run = run_agent(&env, &[], &claude, &args);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.json()["completed"], 1, "{run}");
    assert_exact_usage(&env, &[("alpha", "claude-json")], &run);
}

/// Stopped once the server has answered three requests, however long Codex took to start:
/// a `--timeout 5s` let a loaded machine spend it all on starting Codex (one request or
/// none, and nothing left to check).
#[test]
fn a_real_codex_stopped_mid_turn_records_every_request() {
    let Some(codex) = agent_cli("codex") else {
        return;
    };
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[(
            ".tasks/spin.md",
            &scripted_task("Spin", "loop", "codex-killed", "model: gpt-5\n"),
        )],
    );
    let run = Running(Some(
        agent_run(&env, &["--grace", "2s"], &codex, &CODEX_ARGS)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    wait_until("Codex's third request", Duration::from_secs(60), || {
        server().total("codex-killed").requests >= 3
    });
    interrupt(run.0.as_ref().unwrap());
    let run = env.normalized(&run.finish());
    assert_eq!(run.code, 130, "{run}");
    assert_eq!(
        attempt(&run.json(), "spin")["error"],
        "interrupted",
        "{run}"
    );
    // `codex exec --json` printed no usage (the turn never ended): the rollout has it all,
    // every request the CLI wrote down. The kill may fall after the server sent an answer
    // and before Codex logged it: that answer alone may be missing, never more, never twice.
    let recorded = ledger_usage(&env, "spin");
    let sent = server().total("codex-killed");
    assert!(
        recorded == sent || recorded == server().total_but_last("codex-killed"),
        "recorded {recorded:?}, sent {sent:?}: {run}"
    );
    let import = env.run("repo", &["usage", "import", "--local", "--json"]);
    assert_eq!(import.code, 0, "{import}");
    assert_eq!(ledger_usage(&env, "spin"), recorded, "{import}");
}

/// Claude Code writing its transcript where `gitprio run` does not look (its own
/// `CLAUDE_CONFIG_DIR`, as in a container): the run records what the `json` output says;
/// a later `usage import` of that transcript replaces it, so the session counts once.
#[test]
fn a_transcript_gitprio_run_could_not_see_replaces_the_output_usage_once_imported() {
    let Some(claude) = agent_cli("claude") else {
        return;
    };
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[(
            ".tasks/alpha.md",
            &scripted_task(
                "Alpha",
                "edit",
                "claude-hidden",
                "model: claude-sonnet-4-5\nacceptance: [test -f done.txt]\n",
            ),
        )],
    );
    let hidden = env.path("agent-claude-config");
    std::fs::create_dir_all(&hidden).unwrap();
    let wrapper = env.path("bin/claude");
    std::fs::create_dir_all(wrapper.parent().unwrap()).unwrap();
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nCLAUDE_CONFIG_DIR='{}' exec '{}' \"$@\"\n",
            hidden.display(),
            claude.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let args = [
        "-p",
        "--output-format",
        "json",
        "--model",
        "{model}",
        "--permission-mode",
        "acceptEdits",
    ];
    let run = run_agent(&env, &[], &wrapper, &args);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.json()["completed"], 1, "{run}");
    let truth = server().total("claude-hidden");
    assert!(truth.requests > 1, "the server saw too few requests: {run}");
    // What the output said stands for the session until its log is imported.
    let before = ledger_usage(&env, "alpha");
    assert_eq!(before.output, truth.output, "{run}");
    let projects = hidden.join("projects").display().to_string();
    let import = env.run("repo", &["usage", "import", &projects, "--local", "--json"]);
    assert_eq!(import.code, 0, "{import}");
    assert_eq!(
        ledger_usage(&env, "alpha"),
        truth,
        "after `usage import`: {import}\n{}",
        env.git("repo", &["log", "-p", "refs/gitprio/usage/alpha"])
    );
    let report = env.run("repo", &["report", "--json", "--local"]);
    assert_eq!(report.code, 0, "{report}");
    assert_eq!(
        report.json()["summary"]["totals"]["requests"],
        truth.requests,
        "{report}"
    );
}
