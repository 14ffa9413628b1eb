//! `gitprio context` and the bundle `gitprio claim` hands out: layout, JSON, shared prefixes, links.

use crate::assert_output;
use crate::common::{Output, TestEnv};

const T0: &str = "2026-11-01T12:00:00Z";

fn claim(env: &TestEnv, agent: &str, json: bool) -> Output {
    let mut args = vec!["claim", "--local"];
    if json {
        args.push("--json");
    }
    env.run_with(
        "repo",
        &args,
        &[("GITPRIO_AGENT", agent), ("GITPRIO_NOW", T0)],
    )
}

fn shared_prefix(left: &str, right: &str) -> usize {
    left.bytes()
        .zip(right.bytes())
        .take_while(|(left, right)| left == right)
        .count()
}

fn label(part: &serde_json::Value) -> String {
    let path = part["path"].as_str().unwrap();
    match part["section"].as_str() {
        Some(section) => format!("{path}#{section}"),
        None => path.to_owned(),
    }
}

/// Summarizes a bundle's JSON without document contents: one line per part, dropped part, URL and note.
fn summary(context: &serde_json::Value) -> String {
    let mut lines = vec![format!(
        "depth {} budget {} tokens {}",
        context["depth"], context["budget"], context["tokens"]
    )];
    for part in context["parts"].as_array().unwrap() {
        let at: Vec<&str> = part["mentions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|mention| mention["at"].as_str().unwrap())
            .collect();
        lines.push(format!(
            "part {} {} {} depth {} {} bytes {} tokens, linked at {}",
            part["kind"].as_str().unwrap(),
            part["origin"].as_str().unwrap(),
            label(part),
            part["depth"],
            part["bytes"],
            part["tokens"],
            if at.is_empty() {
                "-".to_owned()
            } else {
                at.join(", ")
            },
        ));
        assert_eq!(
            part["bytes"].as_u64().unwrap(),
            part["content"].as_str().unwrap().len() as u64
        );
    }
    for dropped in context["dropped"].as_array().unwrap() {
        lines.push(format!(
            "dropped {} {} bytes {} tokens",
            label(dropped),
            dropped["bytes"],
            dropped["tokens"],
        ));
    }
    for external in context["external"].as_array().unwrap() {
        lines.push(format!(
            "external {} at {}",
            external["url"].as_str().unwrap(),
            external["at"].as_str().unwrap()
        ));
    }
    for note in context["notes"].as_array().unwrap() {
        lines.push(format!(
            "note {} {}:{}:{}: {}",
            note["kind"].as_str().unwrap(),
            note["path"].as_str().unwrap(),
            note["line"],
            note["column"],
            note["message"].as_str().unwrap()
        ));
    }
    lines.join("\n")
}

#[test]
fn context_prints_the_bundle_of_an_example_task() {
    let env = TestEnv::new();
    env.example_repo("repo");
    assert_output!(env.run("repo", &["context", "auth-login-rate-limit"]));
}

#[test]
fn context_json_lists_parts_sizes_and_what_the_budget_left_out() {
    let env = TestEnv::new();
    env.example_repo("repo");
    let full = env.run("repo", &["context", "auth-login-rate-limit", "--json"]);
    assert_eq!(full.code, 0, "{full}");
    let full = full.json();
    assert_eq!(full["source"]["kind"], "commit");
    insta::assert_snapshot!(summary(&full));

    let tokens = full["tokens"].as_u64().unwrap();
    let budget = (tokens - 1).to_string();
    let trimmed = env.run(
        "repo",
        &[
            "context",
            "auth-login-rate-limit",
            "--json",
            "--budget",
            &budget,
        ],
    );
    let trimmed = trimmed.json();
    let dropped: Vec<&str> = trimmed["dropped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|dropped| dropped["path"].as_str().unwrap())
        .collect();
    assert_eq!(dropped, ["docs/adr/0003-login-rate-limit-window.md"]);
    assert!(trimmed["tokens"].as_u64().unwrap() < tokens);

    let markdown = env.run(
        "repo",
        &[
            "context",
            "auth-login-rate-limit",
            "--budget",
            "700",
            "--depth",
            "0",
        ],
    );
    assert_eq!(markdown.code, 0, "{markdown}");
    assert!(
        markdown.stdout.contains(
            "Left out to stay within the context budget of 700 tokens (estimated as bytes / 4)"
        ),
        "{markdown}"
    );
    assert!(!markdown.stdout.contains("docs/adr/"), "{markdown}");
    assert!(
        markdown
            .stdout
            .contains("- `docs/api.md#errors` (600 bytes, ~150 tokens)"),
        "{markdown}"
    );
    assert!(markdown.stdout.contains("# Task `auth-login-rate-limit`"));
}

#[test]
fn claim_prints_the_bundle_and_consecutive_claims_share_the_project_prefix() {
    let env = TestEnv::new();
    env.example_repo("repo");
    let first = claim(&env, "alice", false);
    assert_output!(first);
    let mut bundles = vec![first.stdout];
    for _ in 0..4 {
        let next = claim(&env, "alice", false);
        assert_eq!(next.code, 0, "{next}");
        bundles.push(next.stdout);
    }
    for pair in bundles.windows(2) {
        let shared = shared_prefix(&pair[0], &pair[1]);
        let project_context = pair[0].find("# Task context").unwrap();
        eprintln!(
            "consecutive bundles of {} and {} bytes share a prefix of {shared} bytes (project context: {project_context})",
            pair[0].len(),
            pair[1].len()
        );
        // The project context and the heading after it are common to every bundle.
        assert!(
            shared >= project_context + "# Task context".len(),
            "shared prefix {shared} < {project_context}"
        );
        assert!(
            shared * 3 >= pair[0].len().min(pair[1].len()),
            "shared prefix {shared} is small"
        );
    }
}

#[test]
fn claim_json_keeps_its_keys_and_adds_the_context() {
    let env = TestEnv::new();
    env.example_repo("repo");
    let output = claim(&env, "alice", true);
    assert_eq!(output.code, 0, "{output}");
    let json = output.json();
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["context", "lease", "source", "task", "tries"]);
    assert_eq!(json["task"]["id"], "auth-login-rate-limit");
    let context = &json["context"];
    assert_eq!(context["task"], "auth-login-rate-limit");
    let origins: Vec<&str> = context["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|part| part["origin"].as_str().unwrap())
        .collect();
    assert_eq!(
        origins,
        ["project", "project", "task_context", "task_context", "task"]
    );
    let commands: Vec<&str> = context["report"]
        .as_array()
        .unwrap()
        .iter()
        .map(|command| command["command"].as_str().unwrap())
        .collect();
    assert_eq!(
        commands,
        [
            "gitprio heartbeat auth-login-rate-limit --local",
            "gitprio done auth-login-rate-limit --local",
            "gitprio release auth-login-rate-limit --local --failed --reason \"<why>\"",
        ]
    );
    // What the bundle says is what the agent can run.
    let heartbeat = env.run_with(
        "repo",
        &["heartbeat", "auth-login-rate-limit", "--local"],
        &[
            ("GITPRIO_AGENT", "alice"),
            ("GITPRIO_NOW", "2026-11-01T12:10:00Z"),
        ],
    );
    assert_eq!(heartbeat.code, 0, "{heartbeat}");
}

fn repo_with_broken_links(env: &TestEnv) {
    env.repo(
        "repo",
        &[
            (
                ".tasks/a.md",
                "---\ntitle: Fix the installer\ncontext: [docs/guide.md#instal]\n---\nFollow [setup](../docs/guide.md#setup), not [passwd](../../etc/passwd),\n[the secret](../docs/secret.md), [gone](../docs/gone.md) or [git](../.git/config).\n",
            ),
            (
                "docs/guide.md",
                "# Guide\n\n## Install\n\nRun `make install`.\n\n## Setup\n\nCopy `config.example` to `config`.\n",
            ),
        ],
    );
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("/etc/passwd", env.path("repo/docs/secret.md")).unwrap();
        env.git("repo", &["add", "docs/secret.md"]);
        env.git("repo", &["commit", "--quiet", "--message", "secret"]);
    }
}

#[cfg(unix)]
#[test]
fn broken_and_unsafe_links_are_warnings_in_the_bundle_and_errors_in_check() {
    let env = TestEnv::new();
    repo_with_broken_links(&env);
    assert_output!(env.run("repo", &["context", "a"]));
    assert_output!(env.run("repo", &["check"]));
}

#[test]
fn an_unknown_task_or_budget_is_an_error() {
    let env = TestEnv::new();
    env.example_repo("repo");
    let unknown = env.run("repo", &["context", "nope"]);
    assert_eq!(unknown.code, 1, "{unknown}");
    assert!(
        unknown.stderr.contains("no task `nope` in refs/heads/main"),
        "{unknown}"
    );
    let budget = env.run(
        "repo",
        &["context", "auth-login-rate-limit", "--budget", "lots"],
    );
    assert_eq!(budget.code, 2, "{budget}");
    assert!(
        budget.stderr.contains("`lots` is not a token count"),
        "{budget}"
    );
}

/// Returns the `# Lease` section of a printed bundle, to its end.
fn lease_section(stdout: &str) -> &str {
    let start = stdout
        .find("# Lease\n")
        .unwrap_or_else(|| panic!("no `# Lease` section in {stdout}"));
    &stdout[start..]
}

#[test]
fn context_names_the_lease_this_worktree_holds_and_how_to_report() {
    let env = TestEnv::new();
    env.example_repo("repo");
    let before = env.run("repo", &["context", "auth-login-rate-limit"]);
    assert!(
        lease_section(&before.stdout).contains("- lease: none; claim a task before working on it"),
        "{before}"
    );
    let claimed = claim(&env, "alice", false);
    assert_eq!(claimed.code, 0, "{claimed}");
    let held = env.run_with(
        "repo",
        &["context", "auth-login-rate-limit"],
        &[("GITPRIO_AGENT", "alice"), ("GITPRIO_NOW", T0)],
    );
    assert_eq!(held.code, 0, "{held}");
    insta::with_settings!({ filters => vec![(r"\b[0-9a-f]{12}\b", "[COMMIT]")] }, {
        insta::assert_snapshot!(lease_section(&held.stdout));
    });
    // Given back, the lease is no longer held here.
    let released = env.run_with(
        "repo",
        &["release", "auth-login-rate-limit", "--local"],
        &[("GITPRIO_AGENT", "alice"), ("GITPRIO_NOW", T0)],
    );
    assert_eq!(released.code, 0, "{released}");
    let after = env.run_with(
        "repo",
        &["context", "auth-login-rate-limit"],
        &[("GITPRIO_AGENT", "alice"), ("GITPRIO_NOW", T0)],
    );
    assert!(
        lease_section(&after.stdout).contains("- lease: none"),
        "{after}"
    );
    // Another task, not held here, still says so.
    let other = env.run("repo", &["context", "billing-invoice-rounding"]);
    assert!(
        lease_section(&other.stdout).contains("- lease: none"),
        "{other}"
    );
}

/// The `- queue: <ref> (<commit>)` line of a context bundle.
fn queue_line(text: &str) -> String {
    text.lines()
        .find(|line| line.starts_with("- queue: "))
        .unwrap_or_else(|| panic!("no queue line: {text}"))
        .to_owned()
}

#[test]
fn claim_context_and_list_name_the_queue_by_one_ref() {
    // A clone knows the remote's default branch (`origin/HEAD`); a clone that lost it (or
    // a remote added by hand) does not, and is on a branch of its own.
    for forget_remote_head in [false, true] {
        let env = TestEnv::new();
        let files = vec![(
            ".tasks/first.md".to_owned(),
            crate::leases::task("First", 0, &[]),
        )];
        crate::leases::remote_with_clones(&env, &files, &["a"]);
        if forget_remote_head {
            env.git("a", &["remote", "set-head", "origin", "--delete"]);
            env.git("a", &["checkout", "--quiet", "-b", "feature"]);
        }
        let vars = [
            ("GITPRIO_AGENT", "alice"),
            ("GITPRIO_NOW", "2026-11-01T12:00:00Z"),
        ];
        let claimed = env.run_with("a", &["claim"], &vars);
        assert_eq!(claimed.code, 0, "{claimed}");
        let context = env.run_with("a", &["context", "first"], &vars);
        assert_eq!(context.code, 0, "{context}");
        assert_eq!(
            queue_line(&claimed.stdout),
            queue_line(&context.stdout),
            "forget_remote_head: {forget_remote_head}"
        );
        assert!(
            queue_line(&claimed.stdout).starts_with("- queue: refs/remotes/origin/main "),
            "{claimed}"
        );
        let json = env.run_with("a", &["context", "first", "--json"], &vars);
        assert_eq!(
            json.json()["source"]["rev"],
            "refs/remotes/origin/main",
            "{json}"
        );
        let list = env.run_with("a", &["list"], &vars);
        assert!(
            list.stderr.contains("read from refs/remotes/origin/main "),
            "forget_remote_head: {forget_remote_head}: {list}"
        );
        let missing = env.run_with("a", &["context", "nope"], &vars);
        assert!(
            missing
                .stderr
                .contains("no task `nope` in refs/remotes/origin/main "),
            "{missing}"
        );
    }
}
