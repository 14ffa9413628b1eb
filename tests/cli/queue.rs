//! `next`, `list`, `show`, `explain`, `init`, `demo` and the queue's source.

use crate::assert_output;
use crate::common::TestEnv;

#[test]
fn list_ranks_the_example_queue() {
    let env = TestEnv::new();
    env.example_repo("repo");
    assert_output!(env.run("repo", &["list"]));
}

#[test]
fn next_prints_the_top_ready_task_and_explains_it() {
    let env = TestEnv::new();
    env.example_repo("repo");
    assert_output!(env.run("repo", &["next", "--explain"]));
}

#[test]
fn next_json_has_stable_fields() {
    let env = TestEnv::new();
    env.example_repo("repo");
    let output = env.run("repo", &["next", "--json"]);
    assert_eq!(output.code, 0, "{output}");
    let json = output.json();
    assert_eq!(json["task"]["id"], "auth-login-rate-limit");
    assert_eq!(json["task"]["priority"], 0);
    assert_eq!(json["source"]["kind"], "commit");
}

#[test]
fn list_json_gives_ranks_and_blockers() {
    let env = TestEnv::new();
    env.example_repo("repo");
    let json = env.run("repo", &["list", "--json"]).json();
    let tasks = json["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 17);
    assert_eq!(tasks[0]["rank"], 1);
    let reset = tasks
        .iter()
        .find(|entry| entry["task"]["id"] == "auth-password-reset")
        .unwrap();
    assert_eq!(reset["ready"], false);
    assert_eq!(reset["blockers"][0]["reason"], "waiting_on");
    assert_eq!(reset["blockers"][0]["id"], "auth-login-rate-limit");
}

#[test]
fn show_prints_the_whole_task() {
    let env = TestEnv::new();
    env.example_repo("repo");
    assert_output!(env.run("repo", &["show", "billing-refund-endpoint"]));
}

#[test]
fn explain_says_which_task_ranks_ahead() {
    let env = TestEnv::new();
    env.example_repo("repo");
    assert_output!(env.run("repo", &["explain", "billing-stripe-sdk-upgrade"]));
    let missing = env.run("repo", &["explain", "no-such-task"]);
    assert_eq!(missing.code, 1, "{missing}");
}

#[test]
fn nothing_ready_exits_3_with_a_reason() {
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[
            (".tasks/a.md", "---\ntitle: A\ndepends_on: [b]\n---\n"),
            (".tasks/b.md", "---\ntitle: B\nstatus: blocked\n---\n"),
        ],
    );
    assert_output!(env.run("repo", &["next"]));
    let json = env.run("repo", &["next", "--json"]);
    assert_eq!(json.code, 3);
    assert_eq!(json.json()["task"], serde_json::Value::Null);
    assert_eq!(json.json()["reason"], "all_blocked");
}

#[test]
fn an_empty_queue_exits_3() {
    let env = TestEnv::new();
    env.repo("repo", &[(".tasks/config.yaml", "")]);
    assert_output!(env.run("repo", &["next", "--json"]));
}

#[test]
fn the_queue_is_read_from_the_committed_branch_not_the_worktree() {
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[(".tasks/a.md", "---\ntitle: A\npriority: 2\n---\n")],
    );
    env.write(
        "repo",
        &[(
            ".tasks/b.md",
            "---\ntitle: B, not committed yet\npriority: 0\n---\n",
        )],
    );
    assert_eq!(
        env.run("repo", &["next", "--json"]).json()["task"]["id"],
        "a"
    );
    assert_eq!(
        env.run("repo", &["next", "--json", "--worktree"]).json()["task"]["id"],
        "b"
    );
    env.git("repo", &["checkout", "--quiet", "-b", "agent-branch"]);
    env.git("repo", &["add", "--all"]);
    env.git("repo", &["commit", "--quiet", "-m", "b"]);
    env.git("repo", &["checkout", "--quiet", "main"]);
    assert_eq!(
        env.run("repo", &["next", "--json", "--rev", "agent-branch"])
            .json()["task"]["id"],
        "b"
    );
}

#[test]
fn the_remote_default_branch_wins_over_local_head() {
    let env = TestEnv::new();
    env.repo(
        "origin",
        &[(".tasks/shared.md", "---\ntitle: Shared\n---\n")],
    );
    env.git(".", &["clone", "--quiet", "origin", "clone"]);
    env.git("clone", &["checkout", "--quiet", "-b", "work"]);
    env.write(
        "clone",
        &[(
            ".tasks/local.md",
            "---\ntitle: Local only\npriority: 0\n---\n",
        )],
    );
    env.git("clone", &["add", "--all"]);
    env.git("clone", &["commit", "--quiet", "-m", "local"]);
    let json = env.run("clone", &["next", "--json"]).json();
    assert_eq!(json["task"]["id"], "shared");
    assert_eq!(json["source"]["rev"], "refs/remotes/origin/main");
}

/// The design keeps lease refs out of git's fetch config (a plain `git fetch` would bring
/// every lease of the fleet): `init` says where the leases live and changes no config,
/// and a fresh clone's first `status` sees the leases all the same.
#[test]
fn init_in_a_clone_says_where_leases_live_and_a_fresh_clone_needs_no_fetch_config() {
    let env = TestEnv::new();
    std::fs::create_dir_all(env.path("remote.git")).unwrap();
    env.git(
        "remote.git",
        &["init", "--quiet", "--bare", "--initial-branch=main"],
    );
    env.repo("seed", &[]);
    env.git("seed", &["push", "--quiet", "../remote.git", "main"]);
    env.git(".", &["clone", "--quiet", "remote.git", "a"]);
    let fetch_config = env.git("a", &["config", "--get-all", "remote.origin.fetch"]);
    let init = env.run("a", &["init"]);
    assert_eq!(init.code, 0, "{init}");
    assert_eq!(
        init.stderr,
        "info: created .tasks/config.yaml\n\
         info: created .tasks/first-task.md\n\
         info: leases will live on remote `origin` (refs/gitprio/leases/*); gitprio fetches and pushes them itself, so git's fetch config needs no refspec\n\
         hint: edit the sample task, then `gitprio check` and commit .tasks/\n",
        "{init}"
    );
    assert_eq!(
        env.git("a", &["config", "--get-all", "remote.origin.fetch"]),
        fetch_config,
        "init changes no fetch config"
    );
    env.git("a", &["add", ".tasks"]);
    env.git("a", &["commit", "--quiet", "--message", "queue"]);
    env.git("a", &["push", "--quiet", "origin", "main"]);
    let claimed = env.run_with("a", &["claim"], &[("GITPRIO_AGENT", "alice")]);
    assert_eq!(claimed.code, 0, "{claimed}");

    env.git(".", &["clone", "--quiet", "remote.git", "b"]);
    env.git("b", &["fetch", "--quiet"]);
    assert_eq!(
        env.git("b", &["for-each-ref", "refs/gitprio"]),
        "",
        "a plain fetch leaves the leases out"
    );
    let status = env.run("b", &["status", "--json"]);
    assert_eq!(status.code, 0, "{status}");
    let status = status.json();
    assert_eq!(status["leases"][0]["task"], "first-task", "{status}");
    assert_eq!(status["leases"][0]["holder"]["agent"], "alice", "{status}");
    assert_eq!(status["leases"][0]["store"], "origin", "{status}");
}

#[test]
fn init_creates_and_never_overwrites() {
    let env = TestEnv::new();
    env.repo("repo", &[]);
    assert_output!(env.run("repo", &["init"]));
    std::fs::write(
        env.path("repo/.tasks/first-task.md"),
        "---\ntitle: Mine\n---\n",
    )
    .unwrap();
    let again = env.run("repo", &["init"]);
    assert_eq!(again.code, 0, "{again}");
    assert_eq!(
        std::fs::read_to_string(env.path("repo/.tasks/first-task.md")).unwrap(),
        "---\ntitle: Mine\n---\n"
    );
    let check = env.run("repo", &["check", "--strict"]);
    assert_eq!(check.code, 0, "{check}");
    std::fs::remove_file(env.path("repo/.tasks/config.yaml")).unwrap();
    let json = env.run("repo", &["init", "--json"]);
    assert_eq!(json.code, 0, "{json}");
    assert_eq!(
        json.json(),
        serde_json::json!({ "files": [
            { "path": ".tasks/config.yaml", "action": "created" },
            { "path": ".tasks/first-task.md", "action": "kept" },
        ] })
    );
}

#[test]
fn demo_shows_one_idea_per_screen_with_the_same_numbers_every_time() {
    let env = TestEnv::new();
    let output = env.run(".", &["demo"]);
    assert_eq!(output.code, 0, "{output}");
    let mut screens = Vec::new();
    for screen in 1..=6 {
        let at = output.stdout.find(&format!("# {screen}/6 "));
        assert!(at.is_some(), "screen {screen}/6 is missing: {output}");
        screens.push(at);
    }
    assert!(screens.is_sorted(), "{output}");
    for expected in [
        "$ gitprio next --explain\nauth-login-rate-limit",
        // A claim prints the context bundle: the project's documents, the task's, the lease.
        "$ gitprio claim\n# Project context",
        "- lease: `refs/gitprio/leases/auth-login-rate-limit`, generation 1, attempt 1, held by alice",
        "both went for auth-login-rate-limit: one of them holds it (lease generation 1)",
        "$ gitprio run --agent-name agent --adapter claude -- gitprio demo-agent",
        "A reviewer merges gitprio/auth-login-rate-limit",
        "nothing ready: the queue has no open task (17 tasks in all)",
        "$ gitprio usage show billing-refund-endpoint",
        "$ gitprio report --by type",
        "value per 1M tokens",
        "Runs that did not complete their task",
        "$ gitprio top --once --window 6h --width 110\ngitprio top · 2026-11-02 ",
        "no agent holds a lease",
    ] {
        assert!(output.stdout.contains(expected), "{expected}: {output}");
    }
    // The agent's stream-json usage is followed live: one agent is stopped over its budget,
    // one reports an error; both tasks are retried and done.
    for expected in [
        "auth-login-rate-limit is done (",
        "stopping the agent on billing-refund-endpoint: over budget: 419988 tokens spent of 400000",
        "search-index-tokenizer failed: the agent ended with exit 1: claude reported error_during_execution",
        "working on search-index-tokenizer (attempt 2)",
        "search-index-tokenizer is done (",
        "billing-refund-endpoint is done (",
    ] {
        assert!(output.stderr.contains(expected), "{expected}: {output}");
    }
    // A seeded agent, a fixed clock and dates, one agent draining the queue: a second run
    // prints the same, to the token and the commit id.
    let again = env.run(".", &["demo"]);
    assert_eq!(again.code, 0, "{again}");
    assert_eq!(again.stdout, output.stdout);
    let demo_dirs = |text: &str| {
        text.split("gitprio-demo-")
            .enumerate()
            .map(|(index, part)| {
                if index == 0 {
                    part.to_owned()
                } else {
                    part.chars()
                        .skip_while(char::is_ascii_alphanumeric)
                        .collect()
                }
            })
            .collect::<Vec<_>>()
            .join("gitprio-demo-")
    };
    assert_eq!(demo_dirs(&again.stderr), demo_dirs(&output.stderr));
}

#[test]
fn completions_and_version() {
    let env = TestEnv::new();
    let bash = env.run(".", &["completions", "bash"]);
    assert_eq!(bash.code, 0);
    assert!(bash.stdout.contains("gitprio"));
    let version = env.run(".", &["--version"]);
    assert_eq!(
        version.stdout,
        format!("gitprio {}\n", env!("CARGO_PKG_VERSION"))
    );
    let usage = env.run(".", &["list", "--no-such-flag"]);
    assert_eq!(usage.code, 2);
}

/// A queue where the task that would rank first has two misspelt keys, and one a mere note.
fn queue_with_typos(env: &TestEnv) {
    let files = vec![
        (
            ".tasks/typo.md".to_owned(),
            "---\ntitle: Misspelt\npriorty: p4\nvalue: 9\ndepends-on: [other]\n---\n".to_owned(),
        ),
        (
            ".tasks/other.md".to_owned(),
            "---\ntitle: Other\npriority: p3\ncolour: blue\n---\n".to_owned(),
        ),
    ];
    crate::leases::remote_with_clones(env, &files, &["a"]);
}

#[test]
fn a_misspelt_key_holds_the_task_back_in_next_list_and_claim() {
    let env = TestEnv::new();
    queue_with_typos(&env);
    assert_output!(env.run("a", &["next"]));
    assert_output!(env.run("a", &["list"]));
    let list = env.run("a", &["list", "--json"]).json();
    let typo = &list["tasks"][1];
    assert_eq!(typo["task"]["id"], "typo", "{list}");
    assert_eq!(typo["blockers"][0]["reason"], "invalid_file", "{list}");
    let agent = [
        ("GITPRIO_AGENT", "alice"),
        ("GITPRIO_NOW", "2026-11-01T12:00:00Z"),
    ];
    let claimed = env.run_with("a", &["claim", "--json"], &agent);
    assert_eq!(claimed.json()["task"]["id"], "other", "{claimed}");
    let again = env.run_with("a", &["claim"], &agent);
    assert_eq!(again.code, 3, "{again}");
}

#[test]
fn json_keys_come_in_one_order_across_commands() {
    let env = TestEnv::new();
    env.example_repo("repo");
    let source = |args: &[&str]| {
        let stdout = env.run("repo", args).stdout;
        let start = stdout.find("\"source\": {").expect(&stdout);
        let end = start + stdout[start..].find('}').unwrap();
        stdout[start..=end].to_owned()
    };
    let listed = source(&["list", "--json"]);
    assert!(
        listed.find("\"kind\"") < listed.find("\"commit\""),
        "{listed}"
    );
    assert_eq!(source(&["next", "--json"]), listed);
    let next = env.run("repo", &["next", "--json"]).stdout;
    assert!(next.find("\"source\"") < next.find("\"task\""), "{next}");
    let shown = env
        .run("repo", &["show", "auth-password-reset", "--json"])
        .stdout;
    let (ready, blockers, task) = (
        shown.find("\"ready\""),
        shown.find("\"blockers\""),
        shown.find("\"task\""),
    );
    assert!(ready < blockers && blockers < task, "{shown}");
}

#[test]
fn init_agents_also_writes_what_gemini_cli_and_cursor_read_once() {
    let env = TestEnv::new();
    env.repo("repo", &[("GEMINI.md", "Answer in English.\n")]);
    let first = env.run("repo", &["init", "--agents"]);
    assert_eq!(first.code, 0, "{first}");
    let read = |path: &str| std::fs::read_to_string(env.path("repo").join(path)).unwrap();
    let files = ["AGENTS.md", "GEMINI.md", ".cursor/rules/gitprio.mdc"].map(read);
    insta::assert_snapshot!(format!(
        "{first}=== GEMINI.md\n{}=== .cursor/rules/gitprio.mdc\n{}",
        files[1], files[2]
    ));
    assert!(files[1].starts_with("Answer in English.\n\n<!-- gitprio:begin -->"));
    let second = env.run("repo", &["init", "--agents"]);
    for shown in ["GEMINI.md", ".cursor/rules/gitprio.mdc", "AGENTS.md"] {
        assert!(
            second.stderr.contains(&format!("{shown} is up to date")),
            "{second}"
        );
    }
    assert_eq!(
        ["AGENTS.md", "GEMINI.md", ".cursor/rules/gitprio.mdc"].map(read),
        files
    );

    env.repo("imports", &[("GEMINI.md", "@./AGENTS.md\n")]);
    let output = env.run("imports", &["init", "--agents"]);
    assert!(
        output
            .stderr
            .contains("GEMINI.md imports AGENTS.md already; left as it is"),
        "{output}"
    );
    assert_eq!(
        std::fs::read_to_string(env.path("imports/GEMINI.md")).unwrap(),
        "@./AGENTS.md\n"
    );
}

#[test]
fn init_agents_killed_mid_write_leaves_the_users_agents_md_whole() {
    let env = TestEnv::new();
    let mine = "Keep it simple, and say why in the commit message.\n".repeat(10_000);
    env.repo("repo", &[("AGENTS.md", &mine)]);
    let killed = env.run_with_file_limit("repo", &["init", "--agents"], &[]);
    assert_ne!(killed.code, 0, "{killed}");
    let read = || std::fs::read_to_string(env.path("repo/AGENTS.md")).unwrap();
    assert!(
        read() == mine,
        "AGENTS.md is {} bytes, not {}",
        read().len(),
        mine.len()
    );
    let output = env.run("repo", &["init", "--agents"]);
    assert_eq!(output.code, 0, "{output}");
    assert!(read().starts_with(&mine));
}

#[test]
fn the_only_ready_task_is_explained_in_the_singular() {
    let env = TestEnv::new();
    env.repo("repo", &[(".tasks/only.md", "---\ntitle: Only\n---\n")]);
    assert_output!(env.run("repo", &["next", "--explain"]));
}

#[test]
fn gitprio_branch_names_the_queue_for_every_command_as_for_claim() {
    let env = TestEnv::new();
    env.repo(
        "origin",
        &[(".tasks/on-main.md", "---\ntitle: On main\n---\n")],
    );
    env.git("origin", &["checkout", "--quiet", "-b", "queue"]);
    env.write(
        "origin",
        &[(
            ".tasks/on-queue.md",
            "---\ntitle: On the queue branch\npriority: 0\n---\n",
        )],
    );
    env.git("origin", &["add", "--all"]);
    env.git("origin", &["commit", "--quiet", "-m", "queue"]);
    env.git("origin", &["checkout", "--quiet", "main"]);
    env.git(".", &["clone", "--quiet", "origin", "clone"]);
    let on_queue = |args: &[&str]| {
        let output = env.run_with(
            "clone",
            args,
            &[
                ("GITPRIO_BRANCH", "queue"),
                ("GITPRIO_NOW", "2026-11-01T12:00:00Z"),
            ],
        );
        assert_eq!(output.code, 0, "gitprio {}: {output}", args.join(" "));
        output
    };
    let queue = "refs/remotes/origin/queue";
    let next = on_queue(&["next", "--json"]).json();
    assert_eq!(next["task"]["id"], "on-queue", "{next}");
    assert_eq!(next["source"]["rev"], queue, "{next}");
    let list = on_queue(&["list", "--json"]).json();
    assert_eq!(list["source"]["rev"], queue, "{list}");
    assert_eq!(list["tasks"].as_array().map(Vec::len), Some(2), "{list}");
    on_queue(&["show", "on-queue"]);
    on_queue(&["explain", "on-queue"]);
    let context = on_queue(&["context", "on-queue", "--json"]).json();
    assert_eq!(context["source"]["rev"], queue, "{context}");
    let claim = on_queue(&["claim", "--json"]).json();
    assert_eq!(claim["task"]["id"], "on-queue", "{claim}");
    assert_eq!(claim["source"]["rev"], queue, "{claim}");
    let status = on_queue(&["status", "--json"]).json();
    assert_eq!(status["leases"][0]["task"], "on-queue", "{status}");
}
