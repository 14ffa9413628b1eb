//! The GitHub Action: pull requests on real repositories, the REST API against a stateful
//! wiremock fake of GitHub's issue comments, and the composite action's install script.

use std::path::Path;

use crate::common::{Output, TestEnv};
use crate::github_fake::{BOT, FakeGitHub, MARKER, NUMBER, REPOSITORY, error_body};
use gitprio_core::TaskId;
use gitprio_core::git::Repository;
use gitprio_core::lease::{Holder, LeaseEvent, LeaseRecord, LeaseState, LeaseStore, Mode};
use gitprio_core::usage::{Ledger, Outcome, RunMeta, UsageRecord};
use jiff::Timestamp;
use serde_json::{Value, json};

fn task(title: &str, kind: &str, value: u32, owns: &[&str], status: &str) -> String {
    let owns = if owns.is_empty() {
        String::new()
    } else {
        format!("owns: [{}]\n", owns.join(", "))
    };
    format!(
        "---\ntitle: {title}\nstatus: {status}\ntype: {kind}\nvalue: {value}\n{owns}acceptance: [cargo test]\n---\nDo {title}.\n"
    )
}

/// A bare `remote.git` with three open tasks on `main`, and the clone `pr` the Action runs in.
pub fn setup(env: &TestEnv) -> String {
    std::fs::create_dir_all(env.path("remote.git")).unwrap();
    env.git(
        "remote.git",
        &["init", "--quiet", "--bare", "--initial-branch=main"],
    );
    env.repo(
        "seed",
        &[
            (
                ".tasks/login.md",
                &task("Fix the login", "bug", 5, &["src/auth/**"], "open"),
            ),
            (
                ".tasks/docs.md",
                &task("Document the API", "docs", 2, &[], "open"),
            ),
            (
                ".tasks/cache.md",
                &task("Cache prices", "feature", 8, &["src/cache/**"], "open"),
            ),
            ("src/auth/login.rs", "fn login() {}\n"),
            ("src/db/schema.rs", "struct Schema;\n"),
            ("docs/api.md", "# API\n"),
        ],
    );
    env.git("seed", &["push", "--quiet", "../remote.git", "main"]);
    env.git(".", &["clone", "--quiet", "remote.git", "pr"]);
    env.git("pr", &["rev-parse", "HEAD"]).trim().to_owned()
}

/// Commits on branch `fix` of `pr`: `login` and `docs` become done, one file outside `login`'s `owns`.
pub fn complete_two_tasks(env: &TestEnv) -> String {
    env.git("pr", &["checkout", "--quiet", "-b", "fix"]);
    env.write(
        "pr",
        &[
            (
                ".tasks/login.md",
                &task("Fix the login", "bug", 5, &["src/auth/**"], "done"),
            ),
            (
                ".tasks/docs.md",
                &task("Document the API", "docs", 2, &[], "done"),
            ),
            ("src/auth/login.rs", "fn login() { check() }\n"),
            ("src/db/schema.rs", "struct Schema { user: u64 }\n"),
            ("docs/api.md", "# API\n\nPOST /login\n"),
        ],
    );
    env.git("pr", &["add", "--all"]);
    env.git(
        "pr",
        &[
            "commit",
            "--quiet",
            "--message",
            "Fix the login and document it\n\nGitprio-Task: login",
        ],
    );
    env.git("pr", &["rev-parse", "HEAD"]).trim().to_owned()
}

/// Commits on branch `chore` of `pr` that complete no task.
fn complete_nothing(env: &TestEnv) -> String {
    env.git("pr", &["checkout", "--quiet", "-b", "chore"]);
    env.write("pr", &[("src/db/schema.rs", "struct Schema2;\n")]);
    env.git("pr", &["commit", "--quiet", "--all", "--message", "Rename"]);
    env.git("pr", &["rev-parse", "HEAD"]).trim().to_owned()
}

/// Commits on branch `broken` of `pr`: `cache` depends on a task that does not exist (line 3).
pub fn break_a_task(env: &TestEnv) -> String {
    env.git("pr", &["checkout", "--quiet", "-b", "broken"]);
    env.write(
        "pr",
        &[(
            ".tasks/cache.md",
            "---\ntitle: Cache prices\ndepends_on: [nowhere]\n---\n",
        )],
    );
    env.git("pr", &["commit", "--quiet", "--all", "--message", "Edit"]);
    env.git("pr", &["rev-parse", "HEAD"]).trim().to_owned()
}

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// Records a run of `task` straight into the remote's usage ledger.
fn record_run(
    env: &TestEnv,
    task: &str,
    kind: &str,
    generation: u64,
    outcome: impl Into<Option<Outcome>>,
    model: &str,
    output: u64,
) {
    let outcome = outcome.into();
    let repo = Repository::discover(&env.path("remote.git")).unwrap();
    let store = LeaseStore::new(&repo, Mode::Local);
    let started = at("2026-10-20T09:00:00Z");
    let meta = RunMeta {
        task: TaskId::new(task).unwrap(),
        run: RunMeta::run_id(generation, started),
        generation,
        agent: format!("agent-{generation}"),
        session: None,
        worktree: None,
        task_type: Some(kind.to_owned()),
        feature: None,
        value: 1,
        routed_model: None,
        budget_tokens: None,
        context_tokens: None,
        started_at: started,
        ended_at: outcome.map(|_| at("2026-10-20T10:00:00Z")),
        outcome,
    };
    let record = UsageRecord {
        key: format!("manual:{task}:{generation}"),
        source: "manual".to_owned(),
        model: model.to_owned(),
        input: 1_000,
        output,
        cache_read: 10_000,
        requests: 4,
        ..UsageRecord::default()
    };
    Ledger::new(&store)
        .write(&meta, &[record], at("2026-10-20T10:00:00Z"))
        .unwrap();
}

/// Usage: `login` took two runs (one failed) and far more than the three earlier bugs.
pub fn record_usage(env: &TestEnv) {
    for (index, output) in [20_000, 30_000, 40_000].into_iter().enumerate() {
        let id = format!("old-bug-{index}");
        record_run(
            env,
            &id,
            "bug",
            1,
            Outcome::Completed,
            "claude-sonnet-4-5",
            output,
        );
    }
    record_run(
        env,
        "login",
        "bug",
        1,
        Outcome::Failed,
        "claude-opus-4-6",
        60_000,
    );
    record_run(
        env,
        "login",
        "bug",
        2,
        Outcome::Completed,
        "claude-sonnet-4-5",
        90_000,
    );
    record_run(
        env,
        "docs",
        "docs",
        1,
        Outcome::Completed,
        "claude-haiku-4-5",
        8_000,
    );
}

pub fn event(env: &TestEnv, base: &str, head: &str, action: &str, merged: bool) -> String {
    let payload = json!({
        "action": action,
        "number": NUMBER,
        "pull_request": {
            "url": format!("https://api.github.com/repos/{REPOSITORY}/pulls/{NUMBER}"),
            "number": NUMBER,
            "state": if action == "closed" { "closed" } else { "open" },
            "title": "Fix the login",
            "merged": merged,
            "commits": 1,
            "base": {"ref": "main", "sha": base, "repo": {"full_name": REPOSITORY}},
            "head": {"ref": "fix", "sha": head, "repo": {"full_name": REPOSITORY}}
        },
        "repository": {"full_name": REPOSITORY, "default_branch": "main"},
        "sender": {"login": "alice", "type": "User"}
    });
    let path = env.path("event.json");
    std::fs::write(&path, payload.to_string()).unwrap();
    path.display().to_string()
}

/// Runs `gitprio action` in `pr` as GitHub Actions would, with the step summary and outputs in files.
fn action(env: &TestEnv, event: &str, api: Option<&str>, extra: &[(&str, &str)]) -> Output {
    let summary = env.path("step-summary.md").display().to_string();
    let outputs = env.path("outputs.txt").display().to_string();
    let mut vars = vec![
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_EVENT_PATH", event),
        ("GITHUB_REPOSITORY", REPOSITORY),
        ("GITHUB_STEP_SUMMARY", summary.as_str()),
        ("GITHUB_OUTPUT", outputs.as_str()),
        ("GITPRIO_NOW", "2026-11-01T12:00:00Z"),
    ];
    match api {
        Some(api) => vars.extend([("GITHUB_API_URL", api), ("GITHUB_TOKEN", "ghs_test")]),
        None => vars.push(("GITPRIO_COMMENT", "false")),
    }
    vars.extend_from_slice(extra);
    env.run_with("pr", &["action"], &vars)
}

fn read(env: &TestEnv, file: &str) -> String {
    std::fs::read_to_string(env.path(file)).unwrap_or_default()
}

#[test]
fn two_completed_tasks_with_costs_baselines_and_files_outside_owns() {
    let env = TestEnv::new();
    let base = setup(&env);
    let head = complete_two_tasks(&env);
    record_usage(&env);
    let event = event(&env, &base, &head, "synchronize", false);
    let output = action(&env, &event, None, &[]);
    assert_eq!(output.code, 0, "{output}");
    assert!(
        output.stderr.contains("completes 2 tasks: docs, login"),
        "{output}"
    );
    let summary = read(&env, "step-summary.md");
    insta::with_settings!({ filters => vec![(r"\b[0-9a-f]{12}\b", "[COMMIT]")] }, {
        insta::assert_snapshot!(summary);
    });
    assert_eq!(
        read(&env, "outputs.txt"),
        "completed-tasks=[\"docs\",\"login\"]\ntokens=191000\ncost-usd=2.9080\nvalue-per-token=0.00003664921465968586\n"
    );
}

#[test]
fn a_pull_request_that_completes_nothing_gets_no_summary() {
    let env = TestEnv::new();
    let base = setup(&env);
    let head = complete_nothing(&env);
    let event = event(&env, &base, &head, "opened", false);
    let output = action(&env, &event, None, &[]);
    assert_eq!(output.code, 0, "{output}");
    assert_eq!(
        read(&env, "step-summary.md"),
        "## gitprio\n\nThis pull request completes no task.\n\n"
    );
    assert_eq!(
        read(&env, "outputs.txt"),
        "completed-tasks=[]\ntokens=0\ncost-usd=0.0000\nvalue-per-token=\n"
    );
}

#[test]
fn invalid_task_edits_are_annotated_and_fail_only_when_asked() {
    let env = TestEnv::new();
    let base = setup(&env);
    let head = break_a_task(&env);
    let event = event(&env, &base, &head, "synchronize", false);
    let failing = action(&env, &event, None, &[]);
    assert_eq!(failing.code, 1, "{failing}");
    assert!(
        failing
            .stdout
            .contains("::error file=.tasks/cache.md,line=3,col="),
        "{failing}"
    );
    let lenient = action(&env, &event, None, &[("GITPRIO_FAIL_ON_INVALID", "false")]);
    assert_eq!(lenient.code, 0, "{lenient}");
    assert!(lenient.stdout.contains("::error file=.tasks/cache.md"));
}

fn lease_record(task: &str, state: LeaseState) -> LeaseRecord {
    let now = at("2026-11-01T11:00:00Z");
    LeaseRecord {
        task: TaskId::new(task).unwrap(),
        state,
        event: LeaseEvent::Submit,
        generation: 2,
        attempt: 2,
        failures: 1,
        holder: Holder {
            agent: "alice".to_owned(),
            host: "box".to_owned(),
            pid: 1,
            worktree: None,
            branch: Some("fix".to_owned()),
            session: None,
            extra: std::collections::BTreeMap::new(),
        },
        task_blob: None,
        base_commit: None,
        acquired_at: now,
        renewed_at: now,
        expires_at: at("2026-11-01T11:30:00Z"),
        ttl_seconds: 1800,
        reason: None,
        last_error: None,
        progress: None,
        nonce: format!("{task}-nonce"),
        extra: std::collections::BTreeMap::new(),
    }
}

/// Puts a submitted lease on `task` in the remote.
pub fn submitted_lease(env: &TestEnv, task: &str) {
    put_lease(env, &lease_record(task, LeaseState::Submitted));
}

/// Puts `record` in the remote as the lease of its task.
fn put_lease(env: &TestEnv, record: &LeaseRecord) {
    let repo = Repository::discover(&env.path("remote.git")).unwrap();
    let store = LeaseStore::new(&repo, Mode::Local);
    let oid = store.write(record, None).unwrap();
    store
        .compare_and_swap(&record.task, None, Some(oid))
        .unwrap();
}

pub fn remote_lease(env: &TestEnv, task: &str) -> Option<String> {
    let output = std::process::Command::new("git")
        .current_dir(env.path("remote.git"))
        .args([
            "log",
            "-1",
            "--format=%s",
            &format!("refs/gitprio/leases/{task}"),
        ])
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

#[test]
fn closing_a_pull_request_settles_the_leases_of_its_tasks() {
    let env = TestEnv::new();
    let base = setup(&env);
    let head = complete_two_tasks(&env);
    submitted_lease(&env, "login");
    submitted_lease(&env, "docs");
    let closed = event(&env, &base, &head, "closed", false);
    let output = action(&env, &closed, None, &[]);
    assert_eq!(output.code, 0, "{output}");
    assert_eq!(
        remote_lease(&env, "login").as_deref(),
        Some(
            "gitprio lease: release login by alice (generation 2, attempt 2): pull request #7 was closed without merging"
        )
    );
    assert!(output.stderr.contains("released docs"), "{output}");
    // Merged: the done tasks' leases go.
    let merged = event(&env, &base, &head, "closed", true);
    let output = action(&env, &merged, None, &[]);
    assert_eq!(output.code, 0, "{output}");
    assert_eq!(remote_lease(&env, "login"), None, "{output}");
    assert_eq!(remote_lease(&env, "docs"), None, "{output}");
    assert!(
        output
            .stderr
            .contains("deleted the leases of the tasks now done: docs, login"),
        "{output}"
    );
}

/// A run the ledger holds no outcome for, whose lease expired (no heartbeat past its TTL,
/// no submit), ended: the summary counts it as a failed attempt, as `report` counts it as
/// expired, not as an attempt still going.
#[test]
fn an_expired_run_without_an_outcome_is_a_failed_attempt_in_the_summary() {
    let env = TestEnv::new();
    let base = setup(&env);
    let head = complete_two_tasks(&env);
    record_usage(&env);
    // `docs` was taken again (generation 2); that holder spent, then went quiet at 11:00.
    record_run(&env, "docs", "docs", 2, None, "claude-haiku-4-5", 4_000);
    put_lease(
        &env,
        &LeaseRecord {
            event: LeaseEvent::Renew,
            ..lease_record("docs", LeaseState::Held)
        },
    );
    let event = event(&env, &base, &head, "synchronize", false);
    let output = action(&env, &event, None, &[]);
    assert_eq!(output.code, 0, "{output}");
    let summary = read(&env, "step-summary.md");
    let attempts: Vec<(&str, &str)> = summary
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.split(" | ").collect();
            (cells[0], cells[3])
        })
        .collect();
    assert_eq!(
        attempts,
        [
            ("| `docs` Document the API", "2 (1 failed)"),
            ("| `login` Fix the login", "2 (1 failed)")
        ],
        "{summary}"
    );
}

/// A pull request that completes `login` and `docs`, with usage recorded.
fn completing_pull_request(env: &TestEnv) -> String {
    let base = setup(env);
    let head = complete_two_tasks(env);
    record_usage(env);
    event(env, &base, &head, "synchronize", false)
}

#[tokio::test]
async fn the_comment_is_created_then_updated_in_place_and_others_are_left_alone() {
    let env = TestEnv::new();
    let event_path = completing_pull_request(&env);
    let (server, github) = FakeGitHub::start().await;
    let foreign = github.add_comment("octocat", &format!("Quoting the bot:\n\n{MARKER}\nold"));
    let api = server.uri();
    let first = action(&env, &event_path, Some(&api), &[]);
    assert_eq!(first.code, 0, "{first}");
    assert!(
        first.stderr.contains("created the summary comment 1002"),
        "{first}"
    );
    let comments = github.comments();
    assert_eq!(comments.len(), 2);
    assert_eq!(comments[0].2, format!("Quoting the bot:\n\n{MARKER}\nold"));
    assert_eq!(comments[1].1, BOT);
    assert!(comments[1].2.starts_with(MARKER));
    assert!(comments[1].2.contains("completes 2 tasks"));
    assert!(
        read(&env, "step-summary.md").contains("| `login` Fix the login | bug | 5 |"),
        "the step summary holds the same summary"
    );

    // A new push: the same comment is updated, no second one appears.
    env.write(
        "pr",
        &[("src/auth/login.rs", "fn login() { check(); log() }\n")],
    );
    env.git("pr", &["commit", "--quiet", "--all", "--message", "Log"]);
    let base = env.git("pr", &["rev-parse", "main"]).trim().to_owned();
    let head = env.git("pr", &["rev-parse", "HEAD"]).trim().to_owned();
    let event_path = event(&env, &base, &head, "synchronize", false);
    let second = action(&env, &event_path, Some(&api), &[]);
    assert_eq!(second.code, 0, "{second}");
    assert!(
        second.stderr.contains("updated the summary comment 1002"),
        "{second}"
    );
    github.assert_updated_in_place(&comments, foreign, &head);

    // Nothing changed: nothing is written.
    let third = action(&env, &event_path, Some(&api), &[]);
    assert!(third.stderr.contains("is up to date"), "{third}");
}

#[tokio::test]
async fn comments_over_three_pages_are_all_read() {
    let env = TestEnv::new();
    let event_path = completing_pull_request(&env);
    let (server, github) = FakeGitHub::start().await;
    {
        let mut state = github.state.lock().unwrap();
        state.page_size = 3;
        state.user = Some("gitprio-bot".to_owned());
    }
    for index in 0..6 {
        github.add_comment("alice", &format!("review comment {index}"));
    }
    let ours = github.add_comment("gitprio-bot", &format!("{MARKER}\nstale summary"));
    let output = action(&env, &event_path, Some(&server.uri()), &[]);
    assert_eq!(output.code, 0, "{output}");
    assert!(
        output
            .stderr
            .contains(&format!("updated the summary comment {ours}")),
        "{output}"
    );
    let log = github.log();
    for page in ["page=2", "page=3"] {
        assert!(log.iter().any(|line| line.contains(page)), "{log:?}");
    }
    assert!(
        !log.iter()
            .any(|line| line.starts_with("POST /repos/acme/shop/issues/7/comments")),
        "{log:?}"
    );
    let comments = github.comments();
    assert_eq!(comments.len(), 7);
    assert!(comments[6].2.contains("completes 2 tasks"));
}

#[tokio::test]
async fn a_read_only_token_falls_back_to_the_step_summary() {
    let env = TestEnv::new();
    let event_path = completing_pull_request(&env);
    let (server, github) = FakeGitHub::start().await;
    github.fail(
        "POST /repos/acme/shop/issues/7/comments",
        403,
        error_body(
            "Resource not accessible by integration",
            "https://docs.github.com/rest/issues/comments#create-an-issue-comment",
        ),
    );
    let output = action(&env, &event_path, Some(&server.uri()), &[]);
    assert_eq!(output.code, 0, "{output}");
    assert!(
        output
            .stderr
            .contains("Resource not accessible by integration")
            && output
                .stderr
                .contains("`permissions: pull-requests: write`"),
        "{output}"
    );
    assert!(
        output
            .stdout
            .contains("::warning title=gitprio::no comment was posted"),
        "{output}"
    );
    assert!(github.comments().is_empty());
    let summary = read(&env, "step-summary.md");
    assert!(summary.contains("completes 2 tasks"), "{summary}");
    assert!(
        summary.contains("> [!NOTE]\n> no comment was posted"),
        "{summary}"
    );
    assert!(read(&env, "outputs.txt").starts_with("completed-tasks=[\"docs\",\"login\"]"));
}

#[tokio::test]
async fn a_server_error_is_retried() {
    let env = TestEnv::new();
    let event_path = completing_pull_request(&env);
    let (server, github) = FakeGitHub::start().await;
    github.fail(
        "GET /repos/acme/shop/issues/7/comments",
        502,
        json!({"message": "Server Error"}),
    );
    let output = action(&env, &event_path, Some(&server.uri()), &[]);
    assert_eq!(output.code, 0, "{output}");
    assert!(
        output
            .stderr
            .contains("GitHub answered 502 to `list the comments`; trying again"),
        "{output}"
    );
    assert_eq!(github.comments().len(), 1);
    // Failing for good: bounded tries, then a clear error.
    for _ in 0..4 {
        github.fail(
            "GET /repos/acme/shop/issues/7/comments",
            503,
            json!({"message": "Unavailable"}),
        );
    }
    let output = action(&env, &event_path, Some(&server.uri()), &[]);
    assert_eq!(output.code, 1, "{output}");
    assert!(
        output
            .stderr
            .contains("GitHub answered 503: Unavailable (after 4 tries)"),
        "{output}"
    );
    assert!(read(&env, "step-summary.md").contains("completes 2 tasks"));
}

#[tokio::test]
async fn a_pull_request_that_completes_nothing_deletes_the_stale_comment() {
    let env = TestEnv::new();
    let base = setup(&env);
    let head = complete_nothing(&env);
    let event_path = event(&env, &base, &head, "synchronize", false);
    let (server, github) = FakeGitHub::start().await;
    github.add_comment(BOT, &format!("{MARKER}\nold summary"));
    let foreign = github.add_comment("octocat", &format!("{MARKER} copied"));
    let output = action(&env, &event_path, Some(&server.uri()), &[]);
    assert_eq!(output.code, 0, "{output}");
    assert!(
        output.stderr.contains("deleted 1 stale summary comments"),
        "{output}"
    );
    let comments = github.comments();
    assert_eq!(comments.len(), 1);
    assert_eq!(comments[0].0, foreign);
}

#[tokio::test]
async fn the_fork_safe_split_hands_the_summary_over_and_posts_it() {
    let env = TestEnv::new();
    let event_path = completing_pull_request(&env);
    let handover = env.path("handover").display().to_string();
    let computed = action(
        &env,
        &event_path,
        None,
        &[("GITPRIO_SUMMARY_DIR", handover.as_str())],
    );
    assert_eq!(computed.code, 0, "{computed}");
    let facts: Value = serde_json::from_str(&read(&env, "handover/pull-request.json")).unwrap();
    assert_eq!(facts["number"], NUMBER);
    let head = facts["head_sha"].as_str().unwrap().to_owned();
    let (server, github) = FakeGitHub::start().await;
    // The posting job: no checkout, a workflow_run event, and the pull request as GitHub has it.
    github.state.lock().unwrap().pull_head = Some(head.clone());
    let run_event = env.path("run.json");
    std::fs::write(
        &run_event,
        json!({"action": "completed", "workflow_run": {"head_sha": head}}).to_string(),
    )
    .unwrap();
    std::fs::create_dir_all(env.path("empty")).unwrap();
    let posted = env.run_with(
        "empty",
        &["action"],
        &[
            ("GITHUB_EVENT_PATH", run_event.to_str().unwrap()),
            ("GITHUB_REPOSITORY", REPOSITORY),
            ("GITHUB_API_URL", server.uri().as_str()),
            ("GITHUB_TOKEN", "ghs_test"),
            ("GITPRIO_POST_SUMMARY", handover.as_str()),
        ],
    );
    assert_eq!(posted.code, 0, "{posted}");
    let comments = github.comments();
    assert_eq!(comments.len(), 1, "{posted}");
    assert_eq!(comments[0].2, read(&env, "handover/summary.md"));
    // A handover for another repository is refused.
    let refused = env.run_with(
        "empty",
        &["action"],
        &[
            ("GITHUB_REPOSITORY", "evil/other"),
            ("GITHUB_API_URL", server.uri().as_str()),
            ("GITHUB_TOKEN", "ghs_test"),
            ("GITPRIO_POST_SUMMARY", handover.as_str()),
        ],
    );
    assert_eq!(refused.code, 1, "{refused}");
    assert!(
        refused
            .stderr
            .contains("the summary is for acme/shop, but this workflow runs in evil/other"),
        "{refused}"
    );
}

/// The composite action's install script, run as the runner would, with the release at a file:// URL.
struct Runner {
    env: TestEnv,
}

impl Runner {
    fn new() -> Runner {
        let env = TestEnv::new();
        for dir in ["releases/v1.2.3", "temp", "bin"] {
            std::fs::create_dir_all(env.path(dir)).unwrap();
        }
        // The released binary: a script that says which version it is.
        let staging = env.path("staging/gitprio-v1.2.3-x86_64-unknown-linux-musl");
        std::fs::create_dir_all(&staging).unwrap();
        write_executable(
            &staging.join("gitprio"),
            "#!/bin/sh\necho 'gitprio 1.2.3 (released)'\n",
        );
        let status = std::process::Command::new("tar")
            .current_dir(env.path("staging"))
            .args([
                "-czf",
                env.path("releases/v1.2.3/gitprio-v1.2.3-x86_64-unknown-linux-musl.tar.gz")
                    .to_str()
                    .unwrap(),
                "gitprio-v1.2.3-x86_64-unknown-linux-musl",
            ])
            .status()
            .unwrap();
        assert!(status.success());
        // A stand-in for cargo that "builds" gitprio and records how it was called.
        write_executable(
            &env.path("bin/cargo"),
            "#!/bin/sh\necho \"$@\" > \"$CARGO_LOG\"\nwhile [ $# -gt 0 ]; do\n  if [ \"$1\" = --root ]; then root=$2; fi\n  shift\ndone\nmkdir -p \"$root/bin\"\nprintf '#!/bin/sh\\necho gitprio built from source\\n' > \"$root/bin/gitprio\"\nchmod +x \"$root/bin/gitprio\"\n",
        );
        Runner { env }
    }

    fn sha256(&self) -> String {
        let output = std::process::Command::new("sha256sum")
            .arg(
                self.env
                    .path("releases/v1.2.3/gitprio-v1.2.3-x86_64-unknown-linux-musl.tar.gz"),
            )
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap()[..64].to_owned()
    }

    fn install(&self, version: &str, checksums: &str) -> Output {
        std::fs::write(self.env.path("SHA256SUMS"), checksums).unwrap();
        std::fs::write(self.env.path("event.json"), "{}").unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/action-install.sh");
        let output = std::process::Command::new("bash")
            .arg(&script)
            .env_clear()
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    self.env.path("bin").display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("HOME", self.env.path("home"))
            .env("RUNNER_OS", "Linux")
            .env("RUNNER_ARCH", "X64")
            .env("RUNNER_TEMP", self.env.path("temp"))
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_ACTION_PATH", env!("CARGO_MANIFEST_DIR"))
            .env("GITHUB_ACTION_REF", "main")
            .env("GITHUB_EVENT_PATH", self.env.path("event.json"))
            .env("GITHUB_PATH", self.env.path("github-path"))
            .env("INPUT_VERSION", version)
            .env(
                "GITPRIO_DOWNLOAD_URL",
                format!("file://{}", self.env.path("releases").display()),
            )
            .env("GITPRIO_CHECKSUMS", self.env.path("SHA256SUMS"))
            .env("CARGO_LOG", self.env.path("cargo.log"))
            .output()
            .unwrap();
        let root = self.env.root.path().display().to_string();
        let normalize = |bytes: &[u8]| String::from_utf8_lossy(bytes).replace(&root, "$ROOT");
        Output {
            code: output.status.code().unwrap_or(-1),
            stdout: normalize(&output.stdout),
            stderr: normalize(&output.stderr),
        }
    }
}

fn write_executable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    let status = std::process::Command::new("chmod")
        .arg("+x")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn the_install_script_downloads_the_release_and_checks_its_sha256() {
    let runner = Runner::new();
    let asset = "gitprio-v1.2.3-x86_64-unknown-linux-musl.tar.gz";
    let checksums = format!(
        "{}  other-asset.tar.gz\n{} *{asset}\n",
        "0".repeat(64),
        runner.sha256()
    );
    let output = runner.install("1.2.3", &checksums);
    assert_eq!(output.code, 0, "{output}");
    assert!(
        output.stderr.contains("gitprio 1.2.3 (released)"),
        "{output}"
    );
    assert_eq!(
        std::fs::read_to_string(runner.env.path("github-path")).unwrap(),
        format!("{}\n", runner.env.path("temp/gitprio-bin/bin").display())
    );
    assert!(
        !runner.env.path("cargo.log").exists(),
        "no build when the release is there"
    );
}

#[test]
fn the_install_script_refuses_a_binary_whose_sha256_does_not_match() {
    let runner = Runner::new();
    let asset = "gitprio-v1.2.3-x86_64-unknown-linux-musl.tar.gz";
    let output = runner.install("v1.2.3", &format!("{}  {asset}\n", "a".repeat(64)));
    assert_eq!(output.code, 1, "{output}");
    assert!(
        output.stdout.contains(&format!(
            "::error title=gitprio install::sha256 mismatch for {asset}: expected {}",
            "a".repeat(64)
        )),
        "{output}"
    );
    assert!(!runner.env.path("temp/gitprio-bin/bin/gitprio").exists());
    assert!(
        !runner.env.path("cargo.log").exists(),
        "a mismatch is not built around"
    );
    assert!(!runner.env.path("github-path").exists());
}

#[test]
fn the_install_script_builds_from_source_without_a_release() {
    let runner = Runner::new();
    // No version: the action is used at a branch, before the first release.
    let output = runner.install("", "");
    assert_eq!(output.code, 0, "{output}");
    assert!(
        output.stderr.contains("gitprio built from source"),
        "{output}"
    );
    let cargo = std::fs::read_to_string(runner.env.path("cargo.log")).unwrap();
    assert_eq!(
        cargo.trim(),
        format!(
            "install --locked --quiet --path {} --root {}",
            env!("CARGO_MANIFEST_DIR"),
            runner.env.path("temp/gitprio-bin").display()
        )
    );
    // A version with no asset for it falls back the same way.
    let output = runner.install("9.9.9", "");
    assert_eq!(output.code, 0, "{output}");
    assert!(
        output
            .stderr
            .contains("no release asset gitprio-v9.9.9-x86_64-unknown-linux-musl.tar.gz"),
        "{output}"
    );
}

/// A composite action sets every `env:` entry of its step, and an input left at its
/// default `""` arrives as an empty variable: each must behave as if it were unset.
#[tokio::test]
async fn every_input_left_empty_behaves_as_unset() {
    let env = TestEnv::new();
    let event_path = completing_pull_request(&env);
    let (server, github) = FakeGitHub::start().await;
    let api = server.uri();
    let run = |name: &str| {
        let output = action(&env, &event_path, Some(&api), &[(name, "")]);
        assert_eq!(output.code, 0, "{name}=\"\": {output}");
        assert!(
            output.stderr.contains("completes 2 tasks: docs, login"),
            "{name}=\"\": {output}"
        );
        output
    };
    // `github-token`: no token, so no comment, with a warning saying why.
    let output = run("GITHUB_TOKEN");
    assert!(
        output.stderr.contains("GITHUB_TOKEN is not set"),
        "{output}"
    );
    assert!(github.comments().is_empty());
    // `comment`: the default, true.
    let output = run("GITPRIO_COMMENT");
    assert!(
        output.stderr.contains("created the summary comment"),
        "{output}"
    );
    assert_eq!(github.comments().len(), 1);
    // `summary-dir`, `post-summary`, `max-wait` and the comment author: their defaults.
    for name in [
        "GITPRIO_SUMMARY_DIR",
        "GITPRIO_POST_SUMMARY",
        "GITPRIO_GITHUB_MAX_WAIT",
        "GITPRIO_COMMENT_AUTHOR",
    ] {
        let output = run(name);
        assert!(output.stderr.contains("is up to date"), "{name}: {output}");
    }
    assert_eq!(github.comments().len(), 1);
    // The runner's own variables, empty: no step summary or outputs file, so stdout.
    for name in ["GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT"] {
        let output = run(name);
        assert!(output.stderr.contains("is up to date"), "{name}: {output}");
    }
    let output = run("GITHUB_STEP_SUMMARY");
    assert!(output.stdout.contains("completes 2 tasks"), "{output}");
    // `fail-on-invalid`: the default, true, so a broken task edit fails the step.
    let env = TestEnv::new();
    let base = setup(&env);
    let head = break_a_task(&env);
    let event_path = event(&env, &base, &head, "synchronize", false);
    let output = action(&env, &event_path, None, &[("GITPRIO_FAIL_ON_INVALID", "")]);
    assert_eq!(output.code, 1, "{output}");
    assert!(
        output.stdout.contains("::error file=.tasks/cache.md"),
        "{output}"
    );
}

/// Answers the next `request` with GitHub's primary rate limit, reset in `seconds`.
fn exhaust_primary_limit(github: &FakeGitHub, request: &str, seconds: u64) {
    let reset = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + seconds;
    github.fail_with(
        request,
        403,
        json!({"message": "API rate limit exceeded for installation ID 1."}),
        &[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", reset.to_string().as_str()),
        ],
    );
}

#[tokio::test]
async fn rate_limits_are_waited_out_as_github_says() {
    let env = TestEnv::new();
    let event_path = completing_pull_request(&env);
    let (server, github) = FakeGitHub::start().await;
    let list = "GET /repos/acme/shop/issues/7/comments";
    github.fail_with(
        list,
        429,
        json!({"message": "Too Many Requests"}),
        &[("retry-after", "2")],
    );
    exhaust_primary_limit(&github, list, 2);
    let output = action(&env, &event_path, Some(&server.uri()), &[]);
    assert_eq!(output.code, 0, "{output}");
    assert!(
        output.stderr.contains(
            "GitHub answered 429 to `list the comments`; trying again in 2.0s (Retry-After: 2; 1 of 4)"
        ),
        "{output}"
    );
    assert!(
        output
            .stderr
            .contains("GitHub answered 403 to `list the comments`; trying again in ")
            && output.stderr.contains("(the rate limit resets at "),
        "{output}"
    );
    assert_eq!(github.comments().len(), 1, "{output}");
}

#[tokio::test]
async fn a_wait_longer_than_the_cap_fails_at_once_with_what_github_asked() {
    let env = TestEnv::new();
    let event_path = completing_pull_request(&env);
    let (server, github) = FakeGitHub::start().await;
    let create = "POST /repos/acme/shop/issues/7/comments";
    // A secondary rate limit that names no time: GitHub asks for a minute at least.
    github.fail(
        create,
        403,
        json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}),
    );
    let output = action(
        &env,
        &event_path,
        Some(&server.uri()),
        &[("GITPRIO_GITHUB_MAX_WAIT", "10")],
    );
    assert_eq!(output.code, 1, "{output}");
    assert!(
        output.stderr.contains(
            "cannot create the comment: GitHub answered 403: You have exceeded a secondary rate limit. Please wait a few minutes before you try again. (GitHub asks to wait 60s (a secondary rate limit), more than the 10s left of the 10s the retries may wait in all)"
        ),
        "{output}"
    );
    assert!(github.comments().is_empty());
    assert!(read(&env, "step-summary.md").contains("completes 2 tasks"));
    // An exhausted primary limit an hour from its reset: more than the default cap.
    exhaust_primary_limit(&github, create, 3600);
    let output = action(&env, &event_path, Some(&server.uri()), &[]);
    assert_eq!(output.code, 1, "{output}");
    assert!(
        output.stderr.contains("(GitHub asks to wait ")
            && output.stderr.contains("(the rate limit resets at ")
            && output
                .stderr
                .contains("more than the 300s left of the 300s the retries may wait in all)"),
        "{output}"
    );
    let log = github.log();
    assert_eq!(
        log.iter().filter(|line| line.starts_with(create)).count(),
        2,
        "one try each, no retry: {log:?}"
    );
    let output = action(
        &env,
        &event_path,
        Some(&server.uri()),
        &[("GITPRIO_GITHUB_MAX_WAIT", "soon")],
    );
    assert_eq!(output.code, 1, "{output}");
    assert!(
        output.stderr.contains(
            "the longest wait `soon` (GITPRIO_GITHUB_MAX_WAIT, input `max-wait`) is not a duration like `90` or `5m`"
        ),
        "{output}"
    );
}

#[test]
fn a_pull_request_commit_fetched_from_a_remote_that_never_answers_is_given_up_on() {
    let env = TestEnv::new();
    let base = setup(&env);
    env.write("pr", &[(".tasks/config.yaml", "remote_timeout: 1s\n")]);
    let silent = crate::fleet::SilentRemote::start();
    env.git("pr", &["remote", "set-url", "origin", &silent.url()]);
    let missing = "0123456789abcdef0123456789abcdef01234567";
    let event = event(&env, &base, missing, "synchronize", false);
    let mut command = env.command("pr", &["action"]);
    command
        .envs([
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_EVENT_PATH", event.as_str()),
            ("GITHUB_REPOSITORY", REPOSITORY),
            ("GITPRIO_NOW", "2026-11-01T12:00:00Z"),
            ("GITPRIO_COMMENT", "false"),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let running = crate::common::Running(Some(command.spawn().unwrap()));
    let output = env.normalized(&running.finish_within(std::time::Duration::from_secs(90)));
    assert_eq!(output.code, 1, "{output}");
    assert!(
        output.stderr.contains(&format!(
            "the pull request's head commit {missing} is not in this clone"
        )),
        "{output}"
    );
}
