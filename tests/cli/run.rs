//! `gitprio run` with fake agents (shell scripts printing real output formats), and the
//! completion protocol of `gitprio done`.

use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{Output, Running, TestEnv, interrupt, script};

/// A task file with acceptance commands and owned paths.
fn task(title: &str, extra: &str) -> String {
    format!("---\ntitle: {title}\n{extra}---\nDo {title}.\n")
}

/// A fake Claude Code: reads the prompt, creates `<task>.txt`, prints a `result` object
/// whose model is the `--model` argument.
const CLAUDE_SUCCESS: &str = r#"prompt=$(cat)
model=unknown
while [ $# -gt 0 ]; do case "$1" in --model) model="$2"; shift;; esac; shift; done
case "$prompt" in *"How this run works"*) ;; *) echo "no run instructions in the prompt" >&2; exit 9;; esac
touch "$GITPRIO_TASK.txt"
cat <<JSON
{"type":"result","subtype":"success","is_error":false,"duration_ms":1200,"num_turns":3,"result":"Created $GITPRIO_TASK.txt; nothing else changed.","session_id":"s-$GITPRIO_TASK","total_cost_usd":0.0123,"usage":{"input_tokens":100,"cache_creation_input_tokens":200,"cache_read_input_tokens":1000,"output_tokens":50},"modelUsage":{"$model":{"inputTokens":100,"outputTokens":50,"cacheReadInputTokens":1000,"cacheCreationInputTokens":200,"costUSD":0.0123}},"permission_denials":[]}
JSON
"#;

/// A Claude Code `stream-json` agent that spends 1000 tokens ($0.0042) a message, eight
/// times, then waits to be stopped (a minute at most, then it exits with no result). Every
/// limit the tests set is passed within eight messages: however late a loaded machine
/// lets the run stop it, it has spent at most 8000 tokens.
const SPENDER: &str = r#"cat > /dev/null
echo '{"type":"system","subtype":"init","session_id":"s1","model":"claude-sonnet-4-5"}'
n=0
while [ $n -lt 8 ]; do
  n=$((n+1))
  echo '{"type":"assistant","message":{"id":"m'$n'","model":"claude-sonnet-4-5","usage":{"input_tokens":900,"output_tokens":100}}}'
  sleep 0.05
done
exec sleep 60
"#;

fn summary(output: &Output) -> serde_json::Value {
    output.json()
}

/// `gitprio run --json` in `clone` with the fake Claude Code at `claude`, in its JSON format.
fn run_json(env: &TestEnv, claude: &str) -> Output {
    env.run(
        "clone",
        &[
            "run",
            "--json",
            "--",
            claude,
            "-p",
            "--output-format",
            "json",
            "--model",
            "{model}",
        ],
    )
}

fn lease_state(env: &TestEnv, dir: &str, id: &str) -> serde_json::Value {
    let status = env.run(dir, &["status", "--json", "--local"]);
    status.json()["leases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|lease| lease["task"] == id)
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

#[test]
fn drains_the_queue_commits_pushes_and_stops() {
    let env = TestEnv::new();
    let acceptance = |id: &str| format!("acceptance: [test -f {id}.txt]\n");
    cloned(
        &env,
        &[
            (
                ".tasks/config.yaml",
                "tiers:\n  small: claude-haiku-4-5\n  large: claude-opus-4-1\n",
            ),
            (".tasks/alpha.md", &task("Alpha", &acceptance("alpha"))),
            (
                ".tasks/beta.md",
                &task(
                    "Beta",
                    &format!("priority: 3\nmodel: large\n{}", acceptance("beta")),
                ),
            ),
            (
                ".tasks/gamma.md",
                &task("Gamma", "priority: 4\ndepends_on: [alpha]\n"),
            ),
        ],
    );
    let claude = script(&env, "claude", CLAUDE_SUCCESS);

    let run = run_json(&env, &claude);
    assert_eq!(run.code, 0, "{run}");
    let summary = summary(&run);
    // gamma waits on alpha, which is submitted but not merged: two tasks are done.
    assert_eq!(summary["completed"], 2, "{run}");
    assert_eq!(summary["stopped"], "nothing_ready");
    assert_eq!(summary["exit_status"], "success");
    assert_eq!(summary["tokens"], 2 * 1350);
    let models: Vec<&str> = summary["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["model"].as_str().unwrap())
        .collect();
    assert_eq!(models, ["claude-haiku-4-5", "claude-opus-4-1"]);

    let branches = env.git("remote.git", &["branch", "--list", "gitprio/*"]);
    assert!(
        branches.contains("gitprio/alpha") && branches.contains("gitprio/beta"),
        "{branches}"
    );
    let message = env.git("remote.git", &["log", "-1", "--format=%B", "gitprio/alpha"]);
    assert_eq!(
        message.trim(),
        "Alpha\n\nCreated alpha.txt; nothing else changed.\n\nGitprio-Task: alpha"
    );
    let files = env.git(
        "remote.git",
        &["show", "--format=", "--name-only", "gitprio/alpha"],
    );
    assert_eq!(files.trim(), ".tasks/alpha.md\nalpha.txt");
    let task_file = env.git("remote.git", &["show", "gitprio/alpha:.tasks/alpha.md"]);
    assert!(task_file.contains("status: done"), "{task_file}");

    let usage = env.run("clone", &["usage", "show", "beta", "--json"]);
    let runs = &usage.json()["runs"];
    assert_eq!(runs[0]["tokens"], 1350, "{usage}");
    assert_eq!(runs[0]["meta"]["outcome"], "completed");
    let lease = env.run("clone", &["status", "--json"]);
    let leases = lease.json();
    let submitted: Vec<&str> = leases["leases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|lease| lease["state"].as_str().unwrap())
        .collect();
    assert_eq!(submitted, ["submitted", "submitted"]);

    // The summary landed on the lease too.
    let history = env.git(
        "remote.git",
        &["log", "-1", "--format=%s", "refs/gitprio/leases/alpha"],
    );
    assert!(
        history.contains("submit alpha") && history.contains("Created alpha.txt"),
        "{history}"
    );
}

/// A write that crashed between its temporary file and the rename (`file::replace`) leaves
/// `.<name>.XXXXXX.tmp` behind; the run's commit never takes it into the agent's branch.
#[test]
fn the_commit_of_a_run_leaves_out_temporary_files_of_a_crashed_write() {
    let env = TestEnv::new();
    cloned(
        &env,
        &[
            (".tasks/config.yaml", "tiers:\n  small: claude-haiku-4-5\n"),
            (".tasks/alpha.md", &task("Alpha", "")),
        ],
    );
    let crashed = CLAUDE_SUCCESS.replace(
        "touch \"$GITPRIO_TASK.txt\"",
        "touch \"$GITPRIO_TASK.txt\" .tasks/.alpha.md.x7Kq2B.tmp; mkdir -p docs; echo half > docs/.notes.md.Ab3De9.tmp; echo kept > docs/.kept.tmp",
    );
    let claude = script(&env, "claude", &crashed);
    let run = run_json(&env, &claude);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(summary(&run)["completed"], 1, "{run}");
    let files = env.git(
        "remote.git",
        &["show", "--format=", "--name-only", "gitprio/alpha"],
    );
    // A file that only looks like one (no random part) is the agent's and is committed.
    assert_eq!(files.trim(), ".tasks/alpha.md\nalpha.txt\ndocs/.kept.tmp");
}

#[test]
fn max_tasks_stops_after_that_many_claims() {
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[
            (".tasks/a.md", &task("A", "priority: 0\n")),
            (".tasks/b.md", &task("B", "priority: 1\n")),
            (".tasks/c.md", &task("C", "priority: 2\n")),
        ],
    );
    let agent = script(
        &env,
        "agent",
        "cat > /dev/null\necho done > \"$GITPRIO_TASK.txt\"\n",
    );
    let run = env.run(
        "repo",
        &["run", "--local", "--json", "--max-tasks", "1", "--", &agent],
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(summary(&run)["stopped"], "max_tasks");
    assert_eq!(summary(&run)["completed"], 1);
    // No usage at all: a cost of zero, never `-0.0`.
    assert!(!run.stdout.contains("-0.0"), "{run}");
    assert!(!run.stderr.contains("$-0"), "{run}");
    let next = env.run("repo", &["next", "--json"]);
    assert_eq!(next.json()["task"]["id"], "b", "{next}");
}

#[test]
fn exit_zero_with_is_error_is_a_failure() {
    let env = TestEnv::new();
    env.repo("repo", &[(".tasks/a.md", &task("A", ""))]);
    let claude = script(
        &env,
        "claude",
        r#"cat > /dev/null
echo '{"type":"result","subtype":"error_during_execution","is_error":true,"num_turns":2,"session_id":"s1","total_cost_usd":0.01,"usage":{"input_tokens":10,"output_tokens":5},"modelUsage":{"claude-sonnet-4-5":{"inputTokens":10,"outputTokens":5,"cacheReadInputTokens":0,"cacheCreationInputTokens":0}},"errors":["API Error: 500 internal"],"permission_denials":[]}'
exit 0
"#,
    );
    let run = env.run(
        "repo",
        &[
            "run",
            "--local",
            "--json",
            "--max-tasks",
            "1",
            "--",
            &claude,
            "-p",
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    let summary = summary(&run);
    assert_eq!(summary["failed"], 1, "{run}");
    assert_eq!(
        summary["runs"][0]["error"],
        "claude reported error_during_execution: API Error: 500 internal"
    );
    assert_eq!(summary["tokens"], 15);
    let lease = lease_state(&env, "repo", "a");
    assert_eq!(lease["state"], "released");
    assert_eq!(
        lease["last_error"],
        "claude reported error_during_execution: API Error: 500 internal"
    );
}

#[test]
fn a_failing_acceptance_command_blocks_done() {
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[(
            ".tasks/a.md",
            &task(
                "A",
                "acceptance:\n  - \"true\"\n  - echo checking >&2; test -f a.txt\n",
            ),
        )],
    );
    let lazy = script(&env, "agent", "cat > /dev/null\necho 'I am done'\n");
    let run = env.run(
        "repo",
        &["run", "--local", "--json", "--max-tasks", "1", "--", &lazy],
    );
    assert_eq!(run.code, 0, "{run}");
    let summary = summary(&run);
    assert_eq!(summary["completed"], 0);
    assert_eq!(
        summary["runs"][0]["error"],
        "acceptance command `echo checking >&2; test -f a.txt` failed (exit 1): checking"
    );
    let text = std::fs::read_to_string(env.path("repo/.tasks/a.md")).unwrap();
    assert!(!text.contains("status: done"));
}

#[test]
fn parks_a_task_that_fails_the_same_way_twice() {
    let env = TestEnv::new();
    env.repo("repo", &[(".tasks/a.md", &task("A", ""))]);
    let failing = script(
        &env,
        "agent",
        "cat > /dev/null\necho \"error: cannot compile (attempt $$)\" >&2\nexit 2\n",
    );
    let run = env.run("repo", &["run", "--local", "--json", "--", &failing]);
    assert_eq!(run.code, 0, "{run}");
    let summary = summary(&run);
    assert_eq!(summary["attempts"], 2, "{run}");
    assert_eq!(summary["failed"], 1);
    assert_eq!(summary["parked"], 1);
    assert_eq!(summary["stopped"], "nothing_ready");
    assert!(
        run.stderr
            .contains("the same error as the attempt before, so it is parked for a human"),
        "{run}"
    );
    let lease = lease_state(&env, "repo", "a");
    assert_eq!(lease["state"], "parked");
    assert_eq!(lease["failures"], 2);
}

#[test]
fn a_failed_attempt_escalates_to_the_next_tier() {
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[
            (
                ".tasks/config.yaml",
                "tiers:\n  small: model-small\n  large: model-large\ntype_tiers:\n  bug: small\nescalate: true\n",
            ),
            (".tasks/a.md", &task("A", "type: bug\n")),
        ],
    );
    let log = env.path("models.log").display().to_string();
    let agent = script(
        &env,
        "agent",
        &format!(
            "cat > /dev/null\necho \"$1\" >> {log}\necho '{{\"model\":\"'$1'\",\"input\":100,\"output\":10}}' > \"$GITPRIO_USAGE_FILE\"\n[ \"$1\" = model-large ] || {{ echo 'too hard for this model' >&2; exit 1; }}\n"
        ),
    );
    let run = env.run(
        "repo",
        &["run", "--local", "--json", "--", &agent, "{model}"],
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        std::fs::read_to_string(env.path("models.log")).unwrap(),
        "model-small\nmodel-large\n"
    );
    let summary = summary(&run);
    assert_eq!(summary["completed"], 1, "{run}");
    assert_eq!(summary["failed"], 1);
    assert!(
        run.stderr.contains("escalated to tier large: model-large"),
        "{run}"
    );
    let usage = env.run("repo", &["usage", "show", "a", "--json", "--local"]);
    let models: Vec<String> = usage.json()["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["meta"]["outcome"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(models, ["failed", "completed"]);
    let report = env.run("repo", &["report", "--by", "model", "--json", "--local"]);
    let groups = report.json();
    let keys: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|group| group["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["model-large", "model-small"], "{report}");
}

/// Runs [`SPENDER`] on one task `a` with `budget` in `repo`, which the run stops over it;
/// returns the environment and the `--json` summary of the run, whose one attempt failed.
fn spent_past_budget(budget: &str) -> (TestEnv, serde_json::Value) {
    let env = TestEnv::new();
    let file = task("A", &format!("budget: {budget}\n"));
    env.repo("repo", &[(".tasks/a.md", &file)]);
    let spender = script(&env, "claude", SPENDER);
    let run = env.run(
        "repo",
        &[
            "run",
            "--local",
            "--json",
            "--max-tasks",
            "1",
            "--grace",
            "1s",
            "--",
            &spender,
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    let summary = summary(&run);
    assert_eq!(summary["failed"], 1, "{run}");
    (env, summary)
}

#[test]
fn an_agent_over_budget_is_stopped_while_it_runs() {
    let (env, summary) = spent_past_budget("5k");
    let error = summary["runs"][0]["error"].as_str().unwrap();
    assert!(error.starts_with("over budget: "), "{error}");
    assert!(error.ends_with(" tokens spent of 5000"), "{error}");
    let tokens = summary["tokens"].as_u64().unwrap();
    // Stopped once past the budget (the sixth message), before it ended by itself.
    assert!((6000..=8000).contains(&tokens), "{tokens}");
    let lease = lease_state(&env, "repo", "a");
    assert!(
        lease["last_error"]
            .as_str()
            .unwrap()
            .starts_with("over budget"),
        "{lease}"
    );
}

#[test]
fn a_hanging_agent_times_out_while_its_lease_is_renewed() {
    let env = TestEnv::new();
    env.repo("repo", &[(".tasks/a.md", &task("A", ""))]);
    let hanging = script(&env, "agent", "cat > /dev/null\nsleep 30\n");
    let run = env.run(
        "repo",
        &[
            "run",
            "--local",
            "--json",
            "--max-tasks",
            "1",
            "--ttl",
            "3s",
            "--timeout",
            "3s",
            "--grace",
            "1s",
            "--",
            &hanging,
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(summary(&run)["runs"][0]["error"], "timed out after 3s");
    let renewals = env.git("repo", &["log", "--format=%s", "refs/gitprio/leases/a"]);
    assert!(renewals.contains("renew a"), "{renewals}");
}

#[test]
fn a_running_agent_s_spend_shows_with_its_heartbeats() {
    let env = TestEnv::new();
    env.repo("repo", &[(".tasks/a.md", &task("A", "budget: 50k\n"))]);
    let finish = env.path("finish");
    // Spends 1000 tokens, then works until the test has seen them (at most 30 seconds).
    let agent = script(
        &env,
        "claude",
        &format!(
            r#"cat > /dev/null
echo '{{"type":"system","subtype":"init","session_id":"s1","model":"claude-sonnet-4-5"}}'
echo '{{"type":"assistant","message":{{"id":"m1","model":"claude-sonnet-4-5","usage":{{"input_tokens":900,"output_tokens":100}}}}}}'
i=0
while [ ! -e '{finish}' ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
echo '{{"type":"result","subtype":"success","is_error":false,"result":"Nothing to change.","session_id":"s1","usage":{{"input_tokens":900,"output_tokens":100}}}}'
"#,
            finish = finish.display()
        ),
    );
    let run = Running(Some(env.spawn(
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
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
        ],
    )));
    wait_for("the spend on a renewed lease", || {
        lease_state(&env, "repo", "a")["progress"]["tokens"] == 1000
    });
    let lease = lease_state(&env, "repo", "a");
    assert_eq!(lease["state"], "held", "{lease}");
    // Sonnet at $3 in and $15 out per million tokens.
    let cost = lease["progress"]["cost_usd"].as_f64().unwrap();
    assert!((cost - 0.0042).abs() < 1e-6, "{lease}");
    let top = env.run("repo", &["top", "--once", "--json", "--local"]);
    let row = &top.json()["leases"][0];
    assert_eq!(row["task"], "a", "{top}");
    assert_eq!(row["tokens"], 1000, "{top}");
    assert_eq!(row["budget_tokens"], 50_000, "{top}");
    std::fs::write(&finish, "").unwrap();
    let output = run.finish();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["completed"], 1, "{summary}");
    assert_eq!(summary["tokens"], 1000, "{summary}");
}

fn wait_for(what: &str, check: impl Fn() -> bool) {
    crate::common::wait_until(what, Duration::from_secs(60), check);
}

#[test]
fn ctrl_c_releases_the_leases_and_a_second_kills_the_agents() {
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[
            (".tasks/a.md", &task("A", "owns: [src/a/**]\n")),
            (".tasks/b.md", &task("B", "owns: [src/b/**]\n")),
        ],
    );
    let marker = env.path("started");
    // Stops on SIGTERM, as agents do.
    let polite = script(
        &env,
        "agent",
        &format!(
            "cat > /dev/null\necho $GITPRIO_TASK >> {}\nsleep 30\n",
            marker.display()
        ),
    );
    let child = env.spawn(
        "repo",
        &["run", "--local", "--json", "--parallel", "2", "--", &polite],
    );
    wait_for("two agents", || {
        std::fs::read_to_string(&marker).is_ok_and(|text| text.lines().count() == 2)
    });
    interrupt(&child);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{output:?}");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["stopped"], "interrupted");
    assert_eq!(summary["exit_status"], "interrupted");
    assert_eq!(summary["released"], 2, "{summary}");
    for id in ["a", "b"] {
        let lease = lease_state(&env, "repo", id);
        assert_eq!(lease["state"], "released", "{lease}");
        assert_eq!(lease["failures"], 0);
    }

    // An agent that ignores SIGTERM is killed by the second Ctrl-C, not after the grace period.
    std::fs::remove_file(&marker).unwrap();
    let stubborn = script(
        &env,
        "stubborn",
        &format!(
            "trap '' TERM\ncat > /dev/null\necho $GITPRIO_TASK >> {}\nsleep 600\n",
            marker.display()
        ),
    );
    // It would outlive the test but for the kill: that the run exits at all is the proof.
    let mut child = env.spawn(
        "repo",
        &[
            "run", "--local", "--json", "--grace", "600s", "--", &stubborn,
        ],
    );
    wait_for("the agent", || marker.exists());
    interrupt(&child);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the grace period is running"
    );
    interrupt(&child);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["released"], 1, "{summary}");
}

#[test]
fn parallel_agents_never_work_on_overlapping_files() {
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[
            (".tasks/a.md", &task("A", "priority: 0\nowns: [src/x/**]\n")),
            (
                ".tasks/b.md",
                &task("B", "priority: 1\nowns: [src/x/y.rs]\n"),
            ),
            (".tasks/c.md", &task("C", "priority: 2\nowns: [docs/**]\n")),
            (".tasks/d.md", &task("D", "priority: 3\nowns: [tests/**]\n")),
        ],
    );
    let log = env.path("work.log").display().to_string();
    // Each agent works until two have started (at most 30 seconds): a fixed 0.4 s of work
    // was over before a loaded machine had started the next agent.
    let agent = script(
        &env,
        "agent",
        &format!(
            "cat > /dev/null\necho \"start $GITPRIO_TASK\" >> {log}\ni=0\nwhile [ \"$(grep -c '^start' {log})\" -lt 2 ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done\necho \"end $GITPRIO_TASK\" >> {log}\n"
        ),
    );
    let run = env.run(
        "repo",
        &["run", "--local", "--json", "--parallel", "3", "--", &agent],
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(summary(&run)["completed"], 4, "{run}");
    let events: Vec<String> = std::fs::read_to_string(env.path("work.log"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let at = |event: &str| events.iter().position(|line| line == event).unwrap();
    assert!(
        at("end a") < at("start b") || at("end b") < at("start a"),
        "a and b overlap yet ran together: {events:?}"
    );
    // The others ran alongside.
    let mut running = 0;
    let mut most = 0;
    for event in &events {
        running += if event.starts_with("start") { 1 } else { -1 };
        most = most.max(running);
    }
    assert!(most >= 2, "nothing ran in parallel: {events:?}");
}

#[test]
fn claim_avoid_overlap_passes_over_tasks_sharing_files() {
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[
            (".tasks/a.md", &task("A", "priority: 0\nowns: [src/x/**]\n")),
            (
                ".tasks/b.md",
                &task("B", "priority: 1\nowns: [src/x/y.rs]\n"),
            ),
            (".tasks/c.md", &task("C", "priority: 2\nowns: [docs/**]\n")),
        ],
    );
    let claim = |agent: &str, extra: &[&str]| {
        let mut args = vec!["claim", "--json", "--local", "--agent", agent];
        args.extend(extra);
        env.run("repo", &args)
    };
    assert_eq!(claim("one", &[]).json()["task"]["id"], "a");
    assert_eq!(claim("two", &["--avoid-overlap"]).json()["task"]["id"], "c");
    let third = claim("three", &["--avoid-overlap"]);
    assert_eq!(third.code, 3, "{third}");
    assert_eq!(third.json()["reason"], "overlap");
    assert_eq!(claim("four", &[]).json()["task"]["id"], "b");
}

#[test]
fn done_runs_the_acceptance_commands_and_keeps_the_summary() {
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[(
            ".tasks/a.md",
            &task(
                "A",
                "acceptance:\n  - echo one; echo two; test -f proof.txt\n",
            ),
        )],
    );
    assert_eq!(env.run("repo", &["claim", "--local", "--json"]).code, 0);
    // Weakening the acceptance command in the working tree does not count: the claimed one runs.
    env.write(
        "repo",
        &[(".tasks/a.md", &task("A", "acceptance: [\"true\"]\n"))],
    );
    let refused = env.run("repo", &["done", "--local"]);
    assert_eq!(refused.code, 1, "{refused}");
    assert!(
        refused.stderr.contains(
            "acceptance command `echo one; echo two; test -f proof.txt` failed (exit 1), so a is not done"
        ) && refused.stderr.ends_with("one\ntwo\n"),
        "{refused}"
    );
    let unreasoned = env.run("repo", &["done", "--local", "--no-verify"]);
    assert_eq!(unreasoned.code, 2, "{unreasoned}");

    std::fs::write(env.path("repo/proof.txt"), "").unwrap();
    let mut done = Command::new(env!("CARGO_BIN_EXE_gitprio"));
    done.current_dir(env.path("repo"))
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("NO_COLOR", "1")
        .args(["done", "--local", "--json", "--summary", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = done.spawn().unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        b"Added proof.txt.\nLeft the rest alone.\n",
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let reply: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(reply["verified"], true);
    assert_eq!(reply["acceptance"][0]["passed"], true);
    assert_eq!(
        reply["lease"]["reason"],
        "Added proof.txt.\nLeft the rest alone."
    );
}

/// A repository `repo` holding task `a` (`extra` added to its frontmatter), claimed with
/// local leases.
fn claimed_locally(env: &TestEnv, extra: &str) {
    env.repo("repo", &[(".tasks/a.md", &task("A", extra))]);
    assert_eq!(env.run("repo", &["claim", "--local", "--json"]).code, 0);
}

#[test]
fn done_without_verifying_records_why() {
    let env = TestEnv::new();
    claimed_locally(&env, "acceptance: [\"false\"]\n");
    let done = env.run(
        "repo",
        &[
            "done",
            "--local",
            "--json",
            "--no-verify",
            "--reason",
            "the CI runner is down",
        ],
    );
    assert_eq!(done.code, 0, "{done}");
    assert_eq!(done.json()["verified"], false);
    assert_eq!(
        done.json()["lease"]["reason"],
        "acceptance not run: the CI runner is down"
    );
}

#[test]
fn release_park_parks_at_once() {
    let env = TestEnv::new();
    claimed_locally(&env, "");
    let released = env.run(
        "repo",
        &[
            "release",
            "--local",
            "--park",
            "--reason",
            "loops on the same error",
        ],
    );
    assert_eq!(released.code, 0, "{released}");
    let lease = lease_state(&env, "repo", "a");
    assert_eq!(lease["state"], "parked");
    assert_eq!(lease["failures"], 1);
    assert_eq!(lease["last_error"], "loops on the same error");
}

/// A repository `clone` of a bare `remote.git`, holding `files`.
fn cloned(env: &TestEnv, files: &[(&str, &str)]) {
    std::fs::create_dir_all(env.path("remote.git")).unwrap();
    env.git(
        "remote.git",
        &["init", "--quiet", "--bare", "--initial-branch=main"],
    );
    env.repo("seed", files);
    env.git("seed", &["push", "--quiet", "../remote.git", "main"]);
    env.git(".", &["clone", "--quiet", "remote.git", "clone"]);
}

#[tokio::test]
async fn open_pr_opens_a_pull_request_for_each_pushed_branch() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let env = TestEnv::new();
    cloned(&env, &[(".tasks/alpha.md", &task("Alpha", "type: bug\n"))]);
    let claude = script(&env, "claude", CLAUDE_SUCCESS);
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/shop/pulls"))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(crate::github_fake::pull_json(
                12,
                &"1".repeat(40),
                "alpha",
            )),
        )
        .expect(1)
        .mount(&server)
        .await;
    let run = env.run_with(
        "clone",
        &[
            "run",
            "--json",
            "--open-pr",
            "--",
            &claude,
            "-p",
            "--output-format",
            "json",
        ],
        &[
            ("GH_TOKEN", "ghp_test"),
            ("GITHUB_REPOSITORY", "acme/shop"),
            ("GITHUB_API_URL", server.uri().as_str()),
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(summary(&run)["completed"], 1, "{run}");
    assert_eq!(
        summary(&run)["runs"][0]["pull_request"],
        "https://github.com/acme/shop/pull/12"
    );
    assert!(
        run.stderr
            .contains("pushed to origin, pull request #12 https://github.com/acme/shop/pull/12"),
        "{run}"
    );
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].headers.get("authorization").unwrap(),
        "Bearer ghp_test"
    );
    let body: serde_json::Value = requests[0].body_json().unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "title": "Alpha",
            "head": "gitprio/alpha",
            "base": "main",
            "body": "Completes the gitprio task `alpha` (bug), worked on by `gitprio run`.\n\n## Review summary\n\nCreated alpha.txt; nothing else changed.\n\nGitprio-Task: alpha\n",
        })
    );
}

#[test]
fn open_pr_without_a_token_warns_and_the_run_goes_on() {
    let env = TestEnv::new();
    cloned(&env, &[(".tasks/alpha.md", &task("Alpha", ""))]);
    let agent = script(&env, "agent", "cat > /dev/null\ntouch alpha.txt\n");
    let run = env.run("clone", &["run", "--json", "--open-pr", "--", &agent]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(summary(&run)["completed"], 1, "{run}");
    assert!(
        run.stderr.contains(
            "warning: --open-pr: neither GITHUB_TOKEN nor GH_TOKEN is set; completed branches are pushed, but no pull request is opened"
        ),
        "{run}"
    );
    let branches = env.git("remote.git", &["branch", "--list", "gitprio/*"]);
    assert!(branches.contains("gitprio/alpha"), "{branches}");
}

#[test]
fn done_refuses_a_task_that_must_be_planned_until_it_has_a_plan() {
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[
            (".tasks/config.yaml", "plan:\n  types: [spike]\n"),
            (".tasks/a.md", &task("A", "type: spike\n")),
        ],
    );
    let context = env.run("repo", &["context", "a"]);
    assert!(
        context
            .stdout
            .contains("- plan: required (a `## Plan` section in the task file before the work)")
            && context
                .stdout
                .contains("\n## Plan first\n\nThis task must be planned before the work."),
        "{context}"
    );
    assert_eq!(env.run("repo", &["claim", "--local", "--json"]).code, 0);
    let refused = env.run(
        "repo",
        &["done", "--local", "--no-verify", "--reason", "no tests"],
    );
    assert_eq!(refused.code, 1, "{refused}");
    assert_eq!(
        refused.stderr,
        "error: a must be planned first, and .tasks/a.md has no `## Plan` section, so it is not done; add one to its body (what you will change and in which order, what you leave alone, how you will check it); then run `gitprio done` again\n"
    );
    let json = env.run("repo", &["done", "--local", "--json"]);
    assert_eq!(json.code, 1, "{json}");
    assert_eq!(json.json()["plan"], "missing");

    // A heading alone is no plan; a heading with steps is.
    let planned = |plan: &str| format!("{}\n## Plan\n\n{plan}", task("A", "type: spike\n"));
    env.write("repo", &[(".tasks/a.md", &planned(""))]);
    assert_eq!(env.run("repo", &["done", "--local"]).code, 1);
    env.write("repo", &[(".tasks/a.md", &planned("1. Try it.\n"))]);
    let done = env.run("repo", &["done", "--local"]);
    assert_eq!(done.code, 0, "{done}");
    let text = std::fs::read_to_string(env.path("repo/.tasks/a.md")).unwrap();
    assert!(
        text.contains("status: done") && text.contains("1. Try it."),
        "{text}"
    );
}

#[test]
fn run_asks_for_a_plan_and_fails_an_attempt_without_one() {
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[
            (".tasks/a.md", &task("A", "priority: 0\nplan: required\n")),
            (".tasks/b.md", &task("B", "priority: 1\nplan: required\n")),
        ],
    );
    // Plans when the prompt asks, except on task b.
    let agent = script(
        &env,
        "agent",
        r#"prompt=$(cat)
case "$prompt" in *"Plan first: before any other change"*) ;; *) echo "no plan instruction" >&2; exit 9;; esac
[ "$GITPRIO_TASK" = b ] && exit 0
printf '\n## Plan\n\n1. Write the file.\n' >> ".tasks/$GITPRIO_TASK.md"
touch "$GITPRIO_TASK.txt"
"#,
    );
    let run = env.run(
        "repo",
        &["run", "--local", "--json", "--max-tasks", "2", "--", &agent],
    );
    assert_eq!(run.code, 0, "{run}");
    let summary = summary(&run);
    assert_eq!(summary["completed"], 1, "{run}");
    assert_eq!(
        summary["runs"][1]["error"],
        "b must be planned first, and the agent wrote no `## Plan` section in .tasks/b.md"
    );
    let committed = env.git("repo", &["show", "gitprio/a:.tasks/a.md"]);
    assert!(
        committed.contains("## Plan\n\n1. Write the file.") && committed.contains("status: done"),
        "{committed}"
    );
}

/// A fake Codex CLI (`codex exec --json -m MODEL -`): reads the prompt on stdin, streams
/// real-format JSONL events; task `b` fails its turn.
const CODEX: &str = r#"[ "$1" = exec ] || { echo "usage: codex exec" >&2; exit 2; }
prompt=$(cat)
case "$prompt" in *"How this run works"*) ;; *) echo "no prompt on stdin" >&2; exit 9;; esac
echo '{"type":"thread.started","thread_id":"th-'$GITPRIO_TASK'"}'
echo '{"type":"turn.started"}'
if [ "$GITPRIO_TASK" = b ]; then
  echo '{"type":"error","message":"stream disconnected before completion"}'
  echo '{"type":"turn.failed","error":{"message":"stream disconnected before completion"}}'
  exit 1
fi
touch "$GITPRIO_TASK.txt"
echo '{"type":"item.completed","item":{"id":"item_0","type":"file_change","changes":[{"path":"'$GITPRIO_TASK'.txt","kind":"add"}],"status":"completed"}}'
echo '{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"Added '$GITPRIO_TASK'.txt."}}'
echo '{"type":"turn.completed","usage":{"input_tokens":1000,"cached_input_tokens":600,"output_tokens":70}}'
"#;

#[test]
fn codex_exec_json_reports_usage_and_failed_turns() {
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[
            (".tasks/config.yaml", "tiers:\n  small: gpt-5-mini\n"),
            (
                ".tasks/a.md",
                &task("A", "priority: 0\nacceptance: [test -f a.txt]\n"),
            ),
            (".tasks/b.md", &task("B", "priority: 1\n")),
        ],
    );
    let codex = script(&env, "codex", CODEX);
    let run = env.run(
        "repo",
        &[
            "run", "--local", "--json", "--", &codex, "exec", "--json", "-m", "{model}", "-",
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stderr.contains("(codex adapter)"), "{run}");
    let summary = summary(&run);
    assert_eq!(summary["completed"], 1, "{run}");
    // b fails the same way twice: the second time it is parked.
    assert_eq!(summary["failed"], 1);
    assert_eq!(summary["parked"], 1);
    assert_eq!(
        summary["runs"][1]["error"],
        "the agent ended with exit 1: codex turn failed: stream disconnected before completion"
    );
    assert_eq!(summary["tokens"], 1070);
    let usage = env.run("repo", &["usage", "show", "a", "--json", "--local"]);
    let totals = &usage.json()["runs"][0];
    assert_eq!(totals["tokens"], 1070, "{usage}");
    let report = env.run("repo", &["report", "--by", "model", "--json", "--local"]);
    assert_eq!(report.json()["groups"][0]["key"], "gpt-5-mini", "{report}");
    let message = env.git("repo", &["log", "-1", "--format=%B", "gitprio/a"]);
    assert_eq!(message.trim(), "A\n\nAdded a.txt.\n\nGitprio-Task: a");
}

#[test]
fn gemini_output_format_json_reports_usage() {
    let env = TestEnv::new();
    env.repo("repo", &[(".tasks/a.md", &task("A", ""))]);
    let gemini = script(
        &env,
        "gemini",
        r#"cat > /dev/null
touch a.txt
echo '{"response":"Added a.txt.","stats":{"models":{"gemini-2.5-pro":{"api":{"totalRequests":2,"totalErrors":0,"totalLatencyMs":900},"tokens":{"prompt":500,"candidates":40,"total":560,"cached":200,"thoughts":20,"tool":0}}}}}'
"#,
    );
    let run = env.run(
        "repo",
        &[
            "run",
            "--local",
            "--json",
            "--",
            &gemini,
            "-p",
            "--output-format",
            "json",
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    let summary = summary(&run);
    assert_eq!(summary["completed"], 1, "{run}");
    assert_eq!(summary["tokens"], 560, "{run}");
    let report = env.run("repo", &["report", "--by", "model", "--json", "--local"]);
    assert_eq!(
        report.json()["groups"][0]["key"],
        "gemini-2.5-pro",
        "{report}"
    );
}

#[test]
fn a_run_costing_under_a_cent_never_reads_as_free() {
    let env = TestEnv::new();
    env.repo("repo", &[(".tasks/alpha.md", &task("Alpha", ""))]);
    // Claude Code's own estimate, which the attempt's message shows, agrees with the price table.
    let claude = script(&env, "claude", &CLAUDE_SUCCESS.replace("0.0123", "0.0007"));
    let run = env.run(
        "repo",
        &[
            "run",
            "--local",
            "--",
            &claude,
            "-p",
            "--output-format",
            "json",
            "--model",
            "claude-haiku-4-5",
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    // 1,350 tokens of Haiku 4.5 cost $0.0007, which `{:.2}` printed as `$0.00`.
    assert!(
        run.stderr.contains("alpha is done (1350 tokens, <$0.01)"),
        "{run}"
    );
    let cost = run
        .stdout
        .lines()
        .find(|line| line.starts_with("cost "))
        .unwrap_or_else(|| panic!("no cost row: {run}"));
    assert_eq!(
        cost.split_whitespace().collect::<Vec<_>>(),
        [
            "cost",
            "<$0.01",
            "(estimated",
            "at",
            "list",
            "price,",
            "prices",
            "of",
            "2026-06-13)"
        ],
        "{run}"
    );
}

#[test]
fn a_dollar_budget_overrun_shows_spend_and_budget_apart() {
    let (_env, summary) = spent_past_budget("$0.001");
    assert!(
        crate::usage::assert_dollars_are_rounded(&summary) >= 2,
        "{summary}"
    );
    // Each message costs $0.0042: to the cent this read `$0.00 spent of $0.00`.
    let error = summary["runs"][0]["error"].as_str().unwrap();
    let spent = error
        .strip_prefix("over budget: $")
        .and_then(|rest| rest.strip_suffix(" spent of $0.001"))
        .unwrap_or_else(|| panic!("{error}"));
    let spent: f64 = spent.parse().unwrap_or_else(|_| panic!("{error}"));
    assert!(spent > 0.001, "{error}");
}

#[test]
fn a_dollar_limit_that_is_not_an_amount_is_refused_before_any_claim() {
    let env = TestEnv::new();
    env.repo("repo", &[(".tasks/a.md", &task("A", ""))]);
    let agent = script(
        &env,
        "agent",
        "cat > /dev/null\ntouch \"$GITPRIO_TASK.txt\"\n",
    );
    // Every comparison with NaN is false: `--max-usd nan` turned the cap off without a word.
    for limit in ["nan", "inf", "-1"] {
        let flag = format!("--max-usd={limit}");
        let run = env.run("repo", &["run", "--local", "--json", &flag, "--", &agent]);
        assert_eq!(run.code, 2, "{limit}: {run}");
        assert!(
            run.stderr.contains(&format!(
                "`{limit}` is not an amount of dollars like `0.42`"
            )),
            "{run}"
        );
    }
    assert_eq!(lease_state(&env, "repo", "a"), serde_json::Value::Null);
}

#[test]
fn run_limits_stop_the_agents_and_give_their_tasks_back() {
    let env = TestEnv::new();
    env.repo("repo", &[(".tasks/a.md", &task("A", ""))]);
    let spender = script(&env, "claude", SPENDER);
    let stream = [
        "--grace",
        "1s",
        "--",
        &spender,
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
    ];
    for (limit, value, stopped) in [
        ("--max-tokens", "3k", "max_tokens"),
        ("--max-usd", "0.01", "max_usd"),
    ] {
        let mut args = vec!["run", "--local", "--json", limit, value];
        args.extend(stream);
        let run = env.run("repo", &args);
        assert_eq!(run.code, 0, "{run}");
        let summary = summary(&run);
        assert_eq!(summary["stopped"], stopped, "{run}");
        assert_eq!(summary["released"], 1, "{run}");
        assert_eq!(summary["failed"], 0);
        assert!(
            summary["runs"][0]["error"]
                .as_str()
                .unwrap()
                .starts_with(&format!("the run reached {limit} ")),
            "{run}"
        );
        // Stopped once the limit was reached, not before (each message spends 1,000 tokens,
        // $0.0042: the third crosses both limits).
        assert!(summary["tokens"].as_u64().unwrap() >= 3000, "{run}");
        assert!(summary["cost_usd"].as_f64().unwrap() >= 0.01, "{run}");
        // Given back, not failed: the task is ready again.
        let lease = lease_state(&env, "repo", "a");
        assert_eq!(lease["state"], "released", "{lease}");
        assert_eq!(lease["failures"], 0);
    }
}

/// A repository `repo` on `branch` whose remote `origin` is `../remote.git`, a relative URL,
/// added with `git remote add` (so there is no `refs/remotes/origin/HEAD`), holding `files`.
fn added_remote(env: &TestEnv, branch: &str, files: &[(&str, &str)]) {
    std::fs::create_dir_all(env.path("remote.git")).unwrap();
    env.git(
        "remote.git",
        &[
            "init",
            "--quiet",
            "--bare",
            &format!("--initial-branch={branch}"),
        ],
    );
    env.repo("repo", files);
    env.git("repo", &["branch", "--move", branch]);
    env.git("repo", &["remote", "add", "origin", "../remote.git"]);
    env.git("repo", &["push", "--quiet", "origin", branch]);
}

/// Runs `gitprio run --json` in `dir` with an agent that creates `alpha.txt`.
fn run_touching_alpha(env: &TestEnv, dir: &str) -> Output {
    let agent = script(env, "agent", "cat > /dev/null\ntouch alpha.txt\n");
    env.run(dir, &["run", "--json", "--", &agent])
}

/// The outcome the usage ledger holds for the first run of `id`.
fn outcome(env: &TestEnv, dir: &str, id: &str) -> serde_json::Value {
    let usage = env.run(dir, &["usage", "show", id, "--json"]);
    assert_eq!(usage.code, 0, "{usage}");
    usage.json()["runs"][0]["meta"]["outcome"].clone()
}

/// Runs an agent that creates `alpha.txt` on task `alpha` (which checks for it), in a clone
/// whose remote refuses the updates of refs under `prefix` to a commit whose subject matches
/// `subject` (a `grep` pattern), saying `why`.
fn run_against_a_refusing_remote(env: &TestEnv, prefix: &str, subject: &str, why: &str) -> Output {
    cloned(
        env,
        &[(
            ".tasks/alpha.md",
            &task("Alpha", "acceptance: [test -f alpha.txt]\n"),
        )],
    );
    let hook = env.path("remote.git/hooks/pre-receive");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nwhile read old new ref; do\n  case \"$ref\" in {prefix}*)\n    if git log -1 --format=%s \"$new\" 2>/dev/null | grep -q '{subject}'; then\n      echo '{why}' >&2; exit 1\n    fi;;\n  esac\ndone\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    run_touching_alpha(env, "clone")
}

#[test]
fn a_relative_remote_url_and_no_origin_head_still_complete_tasks() {
    let env = TestEnv::new();
    added_remote(
        &env,
        "trunk",
        &[(
            ".tasks/alpha.md",
            &task("Alpha", "acceptance: [test -f alpha.txt]\n"),
        )],
    );
    let run = run_touching_alpha(&env, "repo");
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(summary(&run)["completed"], 1, "{run}");
    assert!(!run.stderr.contains("warning"), "{run}");
    let files = env.git(
        "remote.git",
        &["show", "--format=", "--name-only", "gitprio/alpha"],
    );
    assert_eq!(files.trim(), ".tasks/alpha.md\nalpha.txt");
    assert_eq!(outcome(&env, "repo", "alpha"), "completed");
}

#[test]
fn done_in_a_task_worktree_records_the_outcome_without_origin_head() {
    let env = TestEnv::new();
    added_remote(&env, "main", &[(".tasks/one.md", &task("One", ""))]);
    assert_eq!(env.run("repo", &["claim", "--json"]).code, 0);
    let mut record = env.command("repo", &["usage", "record", "--stdin", "one"]);
    record
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = record.spawn().unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        br#"{"model":"m","input":1,"output":1}"#,
    )
    .unwrap();
    let recorded = child.wait_with_output().unwrap();
    assert!(recorded.status.success(), "{recorded:?}");
    env.git(
        "repo",
        &[
            "worktree",
            "add",
            "--quiet",
            "-B",
            "gitprio/one",
            "../repo-gitprio-worktrees/one",
            "HEAD",
        ],
    );
    let done = env.run("repo-gitprio-worktrees/one", &["done", "one"]);
    assert_eq!(done.code, 0, "{done}");
    assert!(!done.stderr.contains("warning"), "{done}");
    assert_eq!(outcome(&env, "repo", "one"), "completed");
}

#[test]
fn a_done_that_fails_for_another_reason_gives_the_task_back_and_stops() {
    let env = TestEnv::new();
    // The remote takes every lease change but a submission: `done` fails, not the task.
    let run = run_against_a_refusing_remote(
        &env,
        "refs/gitprio/leases/",
        "^gitprio lease: submit",
        "submissions are closed",
    );
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(summary(&run)["stopped"], "error", "{run}");
    // The agent ran: its attempt is in the summary, given back, not failed.
    assert_eq!(summary(&run)["attempts"], 1, "{run}");
    assert_eq!(summary(&run)["released"], 1, "{run}");
    assert_eq!(summary(&run)["runs"][0]["ending"], "released", "{run}");
    assert!(!run.stderr.contains("alpha failed"), "{run}");
    assert!(
        run.stderr
            .contains("the work is kept in $ROOT/clone-gitprio-worktrees/alpha"),
        "{run}"
    );
    assert!(
        env.path("clone-gitprio-worktrees/alpha/alpha.txt")
            .is_file()
    );
    let status = env.run("clone", &["status", "--json"]);
    let lease = &status.json()["leases"][0];
    assert_eq!(lease["task"], "alpha", "{status}");
    assert_eq!(lease["failures"], 0, "{status}");
    assert_ne!(lease["state"], "parked", "{status}");
}

#[test]
fn a_run_shows_an_outcome_the_usage_ledger_did_not_take() {
    let env = TestEnv::new();
    let run = run_against_a_refusing_remote(
        &env,
        "refs/gitprio/usage/",
        ", completed$",
        "the ledger is closed",
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(summary(&run)["completed"], 1, "{run}");
    // The outcome is not lost: it waits in the outbox for the next command that reaches the remote.
    assert!(
        run.stderr
            .contains(": gitprio done alpha: the usage ledger did not take the write (")
            && run.stderr.contains("the ledger is closed")
            && run.stderr.contains("it is kept in"),
        "{run}"
    );
}

/// Completes `alpha` once with an agent that writes its run id into `alpha.txt`, whose
/// branch is pushed, then revokes it: the next attempt pushes over that branch. Returns the
/// agent and the first run's output.
fn pushed_then_revoked(env: &TestEnv) -> (String, Output) {
    cloned(
        env,
        &[(
            ".tasks/alpha.md",
            &task("Alpha", "acceptance: [test -f alpha.txt]\n"),
        )],
    );
    let agent = script(
        env,
        "agent",
        "cat > /dev/null\necho \"$GITPRIO_RUN\" > alpha.txt\n",
    );
    let first = env.run("clone", &["run", "--json", "--", &agent]);
    assert_eq!(summary(&first)["completed"], 1, "{first}");
    // A submitted task goes back to the queue by a reviewer's revoke, never by a release.
    let released = env.run("clone", &["revoke", "alpha", "--reason", "PR rejected"]);
    assert_eq!(released.code, 0, "{released}");
    (agent, first)
}

#[test]
fn a_retried_task_replaces_its_pushed_branch() {
    let env = TestEnv::new();
    let (agent, first) = pushed_then_revoked(&env);

    let second = env.run("clone", &["run", "--json", "--", &agent]);
    let attempt = assert_pushed_over(&env, &second);
    assert_ne!(attempt, summary(&first)["runs"][0]["run"].as_str().unwrap());
}

/// Asserts that `second`, a run after [`pushed_then_revoked`], completed `alpha` without a
/// warning and its push replaced the branch; returns its attempt's run id.
fn assert_pushed_over(env: &TestEnv, second: &Output) -> String {
    assert_eq!(second.code, 0, "{second}");
    assert_eq!(summary(second)["completed"], 1, "{second}");
    assert!(!second.stderr.contains("warning"), "{second}");
    let attempt = summary(second)["runs"][0]["run"]
        .as_str()
        .unwrap()
        .to_owned();
    let pushed = env.git("remote.git", &["show", "gitprio/alpha:alpha.txt"]);
    assert_eq!(pushed.trim(), attempt, "{second}");
    attempt
}

#[test]
fn agents_get_the_task_in_their_telemetry_resource_attributes() {
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[(".tasks/alpha.md", &task("Alpha", "type: bug\n"))],
    );
    let agent = script(
        &env,
        "agent",
        "cat > /dev/null\nprintf '%s' \"$OTEL_RESOURCE_ATTRIBUTES\" > otel.txt\n",
    );
    let run = env.run_with(
        "repo",
        &["run", "--local", "--json", "--", &agent],
        &[("OTEL_RESOURCE_ATTRIBUTES", "team=core")],
    );
    assert_eq!(run.code, 0, "{run}");
    let run_id = summary(&run)["runs"][0]["run"].as_str().unwrap().to_owned();
    assert_eq!(
        env.git("repo", &["show", "gitprio/alpha:otel.txt"]),
        format!("team=core,gitprio.task_id=alpha,gitprio.run_id={run_id},gitprio.task_type=bug")
    );
}

#[test]
fn a_done_killed_after_its_submission_landed_is_finished_by_the_run() {
    let env = TestEnv::new();
    cloned(
        &env,
        &[
            (
                ".tasks/alpha.md",
                &task("Alpha", "priority: p0\nacceptance: [test -f alpha.txt]\n"),
            ),
            (
                ".tasks/beta.md",
                &task("Beta", "acceptance: [test -f beta.txt]\n"),
            ),
        ],
    );
    // Once the remote holds the first submission, `kill -9` the `gitprio done` that pushed
    // it: the submission landed, the task file was never edited, the branch never pushed.
    let hook = env.path("remote.git/hooks/post-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\nwhile read old new ref; do\n  case \"$ref\" in refs/gitprio/leases/*)\n    if [ ! -e killed ] && git log -1 --format=%s \"$new\" | grep -q '^gitprio lease: submit'; then\n      touch killed\n      pid=$PPID\n      while [ \"$pid\" -gt 1 ]; do\n        if tr '\\0' ' ' < /proc/$pid/cmdline | grep -q 'gitprio done '; then kill -9 \"$pid\"; break; fi\n        pid=$(cut -d' ' -f4 /proc/$pid/stat)\n      done\n    fi;;\n  esac\ndone\n",
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let agent = script(
        &env,
        "agent",
        "cat > /dev/null\ntouch \"$GITPRIO_TASK.txt\"\n",
    );
    let run = env.run("clone", &["run", "--json", "--", &agent]);
    assert!(env.path("remote.git/killed").exists(), "{run}");
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(summary(&run)["completed"], 2, "{run}");
    for id in ["alpha", "beta"] {
        let task_file = env.git(
            "remote.git",
            &["show", &format!("gitprio/{id}:.tasks/{id}.md")],
        );
        assert!(
            task_file.contains("status: done"),
            "{id}: {task_file}\n{run}"
        );
        let work = env.git(
            "remote.git",
            &["show", "--format=", "--name-only", &format!("gitprio/{id}")],
        );
        assert_eq!(work.trim(), format!(".tasks/{id}.md\n{id}.txt"), "{run}");
    }
    let again = env.run("clone", &["run", "--json", "--", &agent]);
    assert_eq!(summary(&again)["attempts"], 0, "{again}");
}

#[test]
fn done_whose_caller_died_still_lands_its_submission() {
    let env = TestEnv::new();
    claimed_locally(&env, "acceptance: [\"true\"]\n");
    // The `gitprio run` that started this `done` was killed: nobody reads its output any more.
    let (stdout_reader, stdout) = std::io::pipe().unwrap();
    let (stderr_reader, stderr) = std::io::pipe().unwrap();
    drop((stdout_reader, stderr_reader));
    let status = env
        .command("repo", &["done", "a", "--local", "--json"])
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(1), "{status:?}");
    assert_eq!(lease_state(&env, "repo", "a")["state"], "submitted");
    let file = std::fs::read_to_string(env.path("repo/.tasks/a.md")).unwrap();
    assert!(file.contains("status: done"), "{file}");
}

#[test]
fn a_run_killed_during_done_leaves_a_submission_the_next_run_pushes() {
    let env = TestEnv::new();
    let started = env.path("acceptance-started");
    cloned(
        &env,
        &[(
            ".tasks/alpha.md",
            &task(
                "Alpha",
                &format!(
                    "acceptance: [\"touch {} && sleep 1 && test -f alpha.txt\"]\n",
                    started.display()
                ),
            ),
        )],
    );
    let agent = script(&env, "agent", "cat > /dev/null\ntouch alpha.txt\n");
    let mut run = env.spawn("clone", &["run", "--json", "--", &agent]);
    wait_for("`gitprio done` to run the acceptance command", || {
        started.exists()
    });
    // `kill -9` of the run: its `done` goes on alone and lands the submission.
    run.kill().unwrap();
    run.wait().unwrap();
    wait_for("the submission", || {
        let status = env.run("clone", &["status", "--json"]);
        status.json()["leases"][0]["state"] == "submitted"
    });
    assert!(env.path("clone-gitprio-worktrees/alpha/alpha.txt").exists());

    let again = env.run("clone", &["run", "--json", "--", &agent]);
    assert_eq!(again.code, 0, "{again}");
    assert_eq!(summary(&again)["attempts"], 0, "{again}");
    let task_file = env.git("remote.git", &["show", "gitprio/alpha:.tasks/alpha.md"]);
    assert!(task_file.contains("status: done"), "{task_file}\n{again}");
    let work = env.git(
        "remote.git",
        &["show", "--format=%B", "--name-only", "gitprio/alpha"],
    );
    assert!(
        work.contains("Gitprio-Task: alpha")
            && work.trim_end().ends_with(".tasks/alpha.md\nalpha.txt"),
        "{work}\n{again}"
    );
    assert!(
        !env.path("clone-gitprio-worktrees/alpha").exists(),
        "{again}"
    );
}

#[test]
fn a_lease_lost_while_the_agent_works_is_logged_as_gitprio_says_it_elsewhere() {
    let env = TestEnv::new();
    env.repo("repo", &[(".tasks/a.md", &task("A", ""))]);
    // A reviewer revokes the task while its agent works on it.
    let revoking = revoked_agent(&env, "wrong approach");
    let run = run_shortly(&env, &["--max-tasks", "1"], &revoking);
    assert_eq!(run.code, 0, "{run}");
    let error = summary(&run)["runs"][0]["error"]
        .as_str()
        .unwrap()
        .to_owned();
    // The words `gitprio heartbeat` says by hand: who revoked, why, and what to do.
    assert!(
        error.starts_with("lease lost on `a`: the lease moved on since this worktree held generation 1 (revoked by boss at ")
            && error.ends_with(": wrong approach); stop working on it"),
        "{run}"
    );
    assert!(run.stderr.contains(&error), "{run}");
}

#[test]
fn a_relative_agent_path_is_read_from_where_the_run_starts_as_a_shell_reads_it() {
    let env = TestEnv::new();
    env.repo("repo", &[(".tasks/a.md", &task("A", ""))]);
    script(&env, "agent", "cat > /dev/null\ntouch a.txt\n");
    let run = env.run(
        "repo",
        &[
            "run",
            "--local",
            "--json",
            "--max-tasks",
            "1",
            "--",
            "../bin/agent",
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(summary(&run)["completed"], 1, "{run}");
    // A path that is not there is an error before any claim, naming where it was looked for.
    let missing = env.run("repo", &["run", "--local", "--", "./no-such-agent.sh"]);
    assert_eq!(missing.code, 1, "{missing}");
    assert!(
        missing
            .stderr
            .contains("cannot find the agent `./no-such-agent.sh` in $ROOT/repo"),
        "{missing}"
    );
    assert_eq!(lease_state(&env, "repo", "a")["attempt"], 1, "{missing}");
}

#[test]
fn a_task_lost_in_the_run_is_not_claimed_again_by_it() {
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[
            (".tasks/a.md", &task("A", "")),
            (".tasks/b.md", &task("B", "")),
        ],
    );
    // Task `a` is taken away from its agent each time (something keeps revoking it); `b` gets done.
    let agent = revoked_agent(&env, "taken away");
    let run = run_shortly(&env, &["--no-push", "--max-tasks", "4"], &agent);
    assert_eq!(run.code, 0, "{run}");
    let summary = summary(&run);
    let tasks = endings(&summary);
    assert_eq!(tasks, [("a", "lost"), ("b", "completed")], "{run}");
    assert_eq!(summary["stopped"], "nothing_ready", "{run}");
    assert_eq!(
        summary["reason"],
        "nothing ready apart from 1 tasks passed over with --skip (their lease was lost in this run: a)",
        "{run}"
    );
    assert_eq!(run.stderr.matches("working on a").count(), 1, "{run}");
    assert!(
        run.stderr
            .contains("a is not claimed again by this run: its lease was lost"),
        "{run}"
    );
}

/// A task revoked from one slot is ready again at once; a sibling slot that finishes before
/// the first slot learns of the loss (no heartbeat for minutes; `done` finds it) must not
/// claim it while the first slot's agent still works on it.
#[test]
fn a_sibling_slot_never_claims_a_task_another_slot_is_still_on() {
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[
            (".tasks/a.md", &task("A", "")),
            (".tasks/b.md", &task("B", "")),
        ],
    );
    // `a` is revoked and its agent goes on for 4 s after `b` is done: that is when slot 2
    // looks for its next task.
    let (revoked, done) = (env.path("revoked"), env.path("b.done"));
    let agent = script(
        &env,
        "agent",
        &format!(
            "cat > /dev/null
if [ \"$GITPRIO_TASK\" = a ]; then
  GITPRIO_AGENT=boss '{gitprio}' revoke a --local --reason 'taken away' >&2
  touch '{revoked}'
  i=0; while [ ! -e '{done}' ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
  sleep 4
else
  i=0; while [ ! -e '{revoked}' ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
  touch '{done}'
fi
touch \"$GITPRIO_TASK.txt\"
",
            gitprio = env!("CARGO_BIN_EXE_gitprio"),
            revoked = revoked.display(),
            done = done.display(),
        ),
    );
    let run = env.run(
        "repo",
        &[
            "run",
            "--local",
            "--json",
            "--no-push",
            "--parallel",
            "2",
            "--",
            &agent,
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.stderr.matches("working on a").count(), 1, "{run}");
    let summary = summary(&run);
    let mut tasks = endings(&summary);
    tasks.sort_unstable();
    assert_eq!(tasks, [("a", "lost"), ("b", "completed")], "{run}");
}

#[test]
fn a_lost_attempt_counts_toward_max_attempts_and_parks_the_task_there() {
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[
            (".tasks/config.yaml", "max_attempts: 2\n"),
            (".tasks/a.md", &task("A", "")),
        ],
    );
    let agent = revoked_agent(&env, "taken away");
    let first = run_shortly(&env, &["--no-push"], &agent);
    assert_eq!(first.code, 0, "{first}");
    assert_eq!(
        lease_state(&env, "repo", "a")["state"],
        "released",
        "{first}"
    );
    // A second run loses it again: two lost attempts reach `max_attempts: 2`.
    let second = run_shortly(&env, &["--no-push"], &agent);
    assert_eq!(second.code, 0, "{second}");
    let lease = lease_state(&env, "repo", "a");
    assert_eq!(lease["state"], "parked", "{second}\n{lease}");
    let third = run_shortly(&env, &["--no-push"], &agent);
    assert_eq!(summary(&third)["attempts"], 0, "{third}");
}

/// Each attempt of a run's JSON summary as (task, ending), in the summary's order.
fn endings(summary: &serde_json::Value) -> Vec<(&str, &str)> {
    summary["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|attempt| {
            (
                attempt["task"].as_str().unwrap(),
                attempt["ending"].as_str().unwrap(),
            )
        })
        .collect()
}

/// An agent whose task `a` a reviewer (`boss`) revokes, for `reason`, while it works on it;
/// it works until stopped. Any other task it does (`touch <id>.txt`).
fn revoked_agent(env: &TestEnv, reason: &str) -> String {
    script(
        env,
        "agent",
        &format!(
            "cat > /dev/null\nif [ \"$GITPRIO_TASK\" = a ]; then GITPRIO_AGENT=boss '{}' revoke a --local --reason '{reason}' >&2; sleep 30; fi\ntouch \"$GITPRIO_TASK.txt\"\n",
            env!("CARGO_BIN_EXE_gitprio")
        ),
    )
}

/// `gitprio run --local --json` with `extra` arguments and a short lease and grace, so that a
/// lost lease shows within seconds.
fn run_shortly(env: &TestEnv, extra: &[&str], agent: &str) -> Output {
    let mut arguments = vec!["run", "--local", "--json"];
    arguments.extend_from_slice(extra);
    arguments.extend(["--ttl", "3s", "--grace", "1s", "--", agent]);
    env.run("repo", &arguments)
}

/// Makes `clone` reach its remote through a wrapper of `git <service>` (`receive-pack`,
/// `upload-pack`) that runs `first` before it: a shell snippet whose `exit 1` is a
/// connection lost before the remote said a word.
fn through_wrapper(env: &TestEnv, service: &str, first: &str) {
    let wrapper = script(
        env,
        service,
        &format!("{first}\nexec git {service} \"$@\"\n"),
    );
    let key = format!("remote.origin.{}", service.replace('-', ""));
    env.git("clone", &["config", &key, &wrapper]);
}

/// A claim that could not reach the remote, its own retries spent, is made again by the run
/// rather than ending it: a remote that drops connections for a few seconds must not stop a
/// night-long run (review11 item 10).
#[test]
fn a_claim_that_cannot_reach_the_remote_for_a_while_is_made_again() {
    let env = TestEnv::new();
    cloned(
        &env,
        &[(
            ".tasks/alpha.md",
            &task("Alpha", "acceptance: [test -f alpha.txt]\n"),
        )],
    );
    // The first six pushes find no remote: every try of the run's first claim.
    let count = env.path("pushes");
    through_wrapper(
        &env,
        "receive-pack",
        &format!(
            "n=$(cat '{count}' 2>/dev/null || echo 0); n=$((n+1)); echo $n > '{count}'\n[ $n -le 6 ] && exit 1",
            count = count.display()
        ),
    );
    let run = run_touching_alpha(&env, "clone");
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(summary(&run)["completed"], 1, "{run}");
    assert_eq!(
        run.stderr
            .matches("`gitprio claim` failed: cannot reach remote `origin` (push)")
            .count(),
        1,
        "{run}"
    );
    assert!(run.stderr.contains("; claiming again"), "{run}");
}

/// A connection dropped while an attempt looks up its task's pushed branch (`ls-remote`)
/// is tried again, as the gitprio commands' fetches are: else the attempt pushes without
/// `--force-with-lease` and is refused over the earlier attempt's branch, and so is every
/// later run that pushes it (review11 item 10).
#[test]
fn a_dropped_connection_of_the_branch_lookup_is_tried_again() {
    let env = TestEnv::new();
    let (agent, _) = pushed_then_revoked(&env);
    // The first `git ls-remote` from here on loses its connection before a word is said.
    let dropped = env.path("dropped");
    through_wrapper(
        &env,
        "upload-pack",
        &format!(
            "git=$(cut -d' ' -f4 /proc/$PPID/stat)\ncase \"$(tr '\\0' ' ' < /proc/$git/cmdline)\" in *ls-remote*)\n  [ -e '{dropped}' ] || {{ touch '{dropped}'; exit 1; }};;\nesac",
            dropped = dropped.display()
        ),
    );

    let second = env.run("clone", &["run", "--json", "--", &agent]);
    assert!(dropped.exists(), "no ls-remote was made: {second}");
    assert_pushed_over(&env, &second);
}

/// A slot whose claim finds nothing ready while its sibling gives the only task back (a
/// failed attempt, to be tried again) claims again instead of ending the run: the claim is
/// slowed down after it looked (`claim:linger`), so the sibling's attempt ends meanwhile
/// (review11 item 9).
#[test]
fn a_task_given_back_while_a_sibling_claims_is_claimed_again() {
    let env = TestEnv::new();
    env.repo("repo", &[(".tasks/a.md", &task("A", ""))]);
    // Fails at once, each time in other words, so no attempt is parked as a runaway.
    let agent = script(
        &env,
        "agent",
        "cat > /dev/null\nprintf x >> \"$HOME/marks\"\necho \"boom $(cat \"$HOME/marks\")\" >&2\nexit 1\n",
    );
    let run = env.run_with(
        "repo",
        &[
            "run",
            "--local",
            "--json",
            "--parallel",
            "2",
            "--max-tasks",
            "3",
            "--",
            &agent,
        ],
        &[("GITPRIO_FAILPOINT", "claim:linger")],
    );
    assert_eq!(run.code, 0, "{run}");
    let attempts = summary(&run)["attempts"].as_u64().unwrap();
    assert!(
        attempts >= 2,
        "the run ended with a ready to be tried again: {run}"
    );
}

/// A second `gitprio run` in the clone leaves alone a submission the first one is still
/// committing and pushing: the first holds that attempt's live lock (review11 item 15).
#[test]
fn a_second_run_leaves_a_submission_a_live_run_is_pushing_to_it() {
    let env = TestEnv::new();
    cloned(&env, &[(".tasks/x.md", &task("X", ""))]);
    let agent = script(&env, "agent", "cat > /dev/null\ntouch x.txt\n");
    // The first run sleeps 5 s after `done`, before its commit.
    let first = crate::common::Running(Some(
        env.command("clone", &["run", "--json", "--", &agent])
            .env("GITPRIO_FAILPOINT", "run:before-commit")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    wait_for("the first run's submission", || {
        let status = env.run("clone", &["status", "--json"]);
        status.code == 0
            && status.json()["leases"]
                .as_array()
                .is_some_and(|leases| leases.iter().any(|lease| lease["state"] == "submitted"))
    });
    let second = env.run("clone", &["run", "--json", "--", &agent]);
    assert_eq!(second.code, 0, "{second}");
    assert!(
        !second.stderr.contains("was submitted by an earlier run"),
        "{second}"
    );
    let first = first.finish();
    assert_eq!(first.status.code(), Some(0), "{first:?}");
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(stderr.contains("x is done"), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    let log = env.git("remote.git", &["log", "--format=%B", "gitprio/x"]);
    assert_eq!(log.matches("Gitprio-Task: x").count(), 1, "{log}");
}

/// A run whose binary is replaced while it works (an upgrade, a rebuild: the old file is
/// unlinked) goes on with its own binary: every operation it runs is a subprocess of that
/// binary, which its path no longer names (`gitprio claim` failed with ENOENT once in CI).
#[test]
fn a_run_whose_binary_is_replaced_meanwhile_goes_on() {
    let env = TestEnv::new();
    env.repo("repo", &[(".tasks/a.md", &task("A", ""))]);
    let binary = env.path("installed/gitprio");
    std::fs::create_dir_all(binary.parent().unwrap()).unwrap();
    if std::fs::hard_link(env!("CARGO_BIN_EXE_gitprio"), &binary).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_gitprio"), &binary).unwrap();
    }
    let agent = script(
        &env,
        "agent",
        &format!("cat > /dev/null\nrm '{}'\ntouch a.txt\n", binary.display()),
    );
    let run = Command::new(&binary)
        .args(["run", "--local", "--json", "--", &agent])
        .current_dir(env.path("repo"))
        .env_clear()
        .envs(env.environment())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let run = env.normalized(&run);
    assert!(!binary.exists());
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(summary(&run)["completed"], 1, "{run}");
}

/// A run killed after its agent failed, before its `release --failed`, leaves a failed
/// attempt: the next run releases it as failed, with its reason, not as an attempt cut
/// short (crash12).
#[test]
fn a_run_killed_before_it_releases_a_failed_attempt_leaves_it_failed() {
    let env = TestEnv::new();
    env.repo("repo", &[(".tasks/a.md", &task("A", ""))]);
    let gate = env.path("gate");
    let agent = script(
        &env,
        "agent",
        &format!(
            "cat > /dev/null\n[ -e '{}' ] || {{ echo 'no luck' >&2; exit 1; }}\ntouch a.txt\n",
            gate.display()
        ),
    );
    let killed = env
        .command("repo", &["run", "--local", "--json", "--", &agent])
        .env("GITPRIO_FAILPOINT", "run:before-release-failed")
        .output()
        .unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&killed.status),
        Some(6),
        "{killed:?}"
    );
    std::fs::write(&gate, "").unwrap();
    let again = env.run("repo", &["run", "--local", "--json", "--", &agent]);
    assert_eq!(again.code, 0, "{again}");
    assert!(
        again.stderr.contains(
            "a (generation 1) failed: the agent ended with exit 1: no luck; the run that worked on it stopped before it said so"
        ),
        "{again}"
    );
    assert_eq!(summary(&again)["completed"], 1, "{again}");
    assert_eq!(lease_state(&env, "repo", "a")["failures"], 1, "{again}");
    let usage = env.run("repo", &["usage", "show", "a", "--json", "--local"]);
    assert_eq!(
        usage.json()["runs"][0]["meta"]["outcome"],
        "failed",
        "{usage}"
    );
}

/// What the agent of a killed run recorded in its usage file is recorded by the next run,
/// on the killed attempt's run, before it gives the task back (crash12).
#[test]
fn the_usage_a_killed_run_s_agent_wrote_is_recorded_by_the_next_run() {
    let env = TestEnv::new();
    env.repo("repo", &[(".tasks/a.md", &task("A", ""))]);
    let (gate, started) = (env.path("gate"), env.path("started"));
    let agent = script(
        &env,
        "agent",
        &format!(
            "cat > /dev/null\n[ -e '{}' ] || {{ echo '{{\"model\":\"m1\",\"input\":100,\"output\":10}}' >> \"$GITPRIO_USAGE_FILE\"; touch '{}'; sleep 30; }}\ntouch a.txt\n",
            gate.display(),
            started.display()
        ),
    );
    let mut killed = env.spawn("repo", &["run", "--local", "--json", "--", &agent]);
    wait_for("the agent", || started.exists());
    killed.kill().unwrap();
    killed.wait().unwrap();
    std::fs::write(&gate, "").unwrap();
    let again = env.run("repo", &["run", "--local", "--json", "--", &agent]);
    assert_eq!(again.code, 0, "{again}");
    assert!(
        again
            .stderr
            .contains("recorded the usage the stopped run's agent left on a (110 tokens)"),
        "{again}"
    );
    let usage = env.run("repo", &["usage", "show", "a", "--json", "--local"]);
    let runs = usage.json()["runs"].clone();
    assert_eq!(runs[0]["meta"]["generation"], 1, "{usage}");
    assert_eq!(runs[0]["meta"]["outcome"], "released", "{usage}");
    assert_eq!(runs[0]["totals"]["output"], 10, "{usage}");
}

/// `--max-usd` cannot count tokens of a model without a price: they stop the run as the
/// cap would, saying what to do, instead of passing as free (walk17 N10: 6M tokens went
/// past a $0.01 cap without a word).
#[test]
fn max_usd_stops_the_run_at_tokens_it_cannot_price() {
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[
            (".tasks/a.md", &task("A", "priority: 0\n")),
            (".tasks/b.md", &task("B", "priority: 1\n")),
        ],
    );
    let agent = script(
        &env,
        "agent",
        "cat > /dev/null\necho '{\"model\":\"claude-mystery-9\",\"input\":1000000,\"output\":1000000}' > \"$GITPRIO_USAGE_FILE\"\ntouch \"$GITPRIO_TASK.txt\"\n",
    );
    let run = env.run(
        "repo",
        &[
            "run",
            "--local",
            "--json",
            "--max-usd",
            "0.01",
            "--adapter",
            "generic",
            "--",
            &agent,
        ],
    );
    assert_eq!(run.code, 1, "{run}");
    let summary = summary(&run);
    assert_eq!(summary["attempts"], 1, "{run}");
    assert_eq!(summary["stopped"], "error", "{run}");
    assert_eq!(
        summary["reason"],
        "error: --max-usd 0.01 cannot be checked: 2.00M tokens of claude-mystery-9 have no price; add the model to .tasks/prices.yaml, or limit the run with --max-tokens",
        "{run}"
    );
}
