//! Bad input never takes the queue down: located warnings, bounded cost, distinct exit codes.

use std::fmt::Write as _;

use crate::assert_output;
use crate::common::TestEnv;

#[test]
fn a_broken_file_is_skipped_with_a_located_warning() {
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[
            (".tasks/good.md", "---\ntitle: Good\n---\n"),
            (".tasks/broken.md", "---\ntitle: [unclosed\n---\n"),
            (".tasks/notes.md", "Just some notes, no frontmatter.\n"),
        ],
    );
    assert_output!(env.run("repo", &["next"]));
}

#[test]
fn invalid_utf8_binary_huge_and_alias_bomb_files() {
    let env = TestEnv::new();
    env.repo("repo", &[(".tasks/good.md", "---\ntitle: Good\n---\n")]);
    let tasks = env.path("repo/.tasks");
    std::fs::write(tasks.join("latin1.md"), b"---\ntitle: caf\xe9\n---\n").unwrap();
    std::fs::write(tasks.join("image.md"), b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").unwrap();
    let mut huge = b"---\ntitle: Huge\n---\n".to_vec();
    huge.resize(50 * 1024 * 1024, b'x');
    std::fs::write(tasks.join("huge.md"), huge).unwrap();
    let mut bomb = String::from("---\ntitle: Bomb\nl0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
    for level in 1..=9 {
        let refs = vec![format!("*l{}", level - 1); 10].join(", ");
        writeln!(bomb, "l{level}: &l{level} [{refs}]").unwrap();
    }
    bomb.push_str("labels: *l9\n---\n");
    std::fs::write(tasks.join("bomb.md"), bomb).unwrap();
    env.git("repo", &["add", "--all"]);
    env.git("repo", &["commit", "--quiet", "-m", "bad files"]);
    assert_output!(env.run("repo", &["list"]));
    let check = env.run("repo", &["check"]);
    assert_eq!(check.code, 1, "{check}");
    assert!(
        check
            .stdout
            .contains(".tasks/huge.md:1:1: error: file is 50.0 MiB, over the 1 MiB limit"),
        "{check}"
    );
}

#[test]
fn not_a_repository_exits_6() {
    let env = TestEnv::new();
    std::fs::create_dir(env.path("plain")).unwrap();
    let output = env.run("plain", &["next"]);
    assert_eq!(output.code, 6, "{output}");
    // Said once, with no `Debug` name of the git library's error after it.
    assert_output!(output);
}

#[test]
fn no_tasks_directory_exits_7() {
    let env = TestEnv::new();
    env.repo("repo", &[("README.md", "hello\n")]);
    assert_output!(env.run("repo", &["list"]));
}

#[test]
fn no_commits_yet_says_what_to_do() {
    let env = TestEnv::new();
    std::fs::create_dir(env.path("repo")).unwrap();
    env.git("repo", &["init", "--quiet"]);
    env.write("repo", &[(".tasks/first.md", "---\ntitle: First\n---\n")]);
    assert_output!(env.run("repo", &["next"]));
}

#[test]
fn a_new_repository_without_tasks_is_told_to_run_init_not_to_commit_them() {
    let env = TestEnv::new();
    std::fs::create_dir(env.path("repo")).unwrap();
    env.git("repo", &["init", "--quiet"]);
    for command in ["next", "list"] {
        let output = env.run("repo", &[command]);
        assert_eq!(output.code, 7, "{output}");
        assert!(output.stderr.contains("run `gitprio init`"), "{output}");
    }
    env.write("repo", &[(".tasks/first.md", "---\ntitle: First\n---\n")]);
    let output = env.run("repo", &["next"]);
    assert_eq!(output.code, 1, "{output}");
    assert!(output.stderr.contains("commit `.tasks/`"), "{output}");
}

#[test]
fn dash_c_runs_elsewhere() {
    let env = TestEnv::new();
    env.example_repo("repo");
    let output = env.run(".", &["-C", "repo", "next", "--json"]);
    assert_eq!(output.json()["task"]["id"], "auth-login-rate-limit");
}

#[test]
fn a_misspelt_remote_in_the_config_is_an_error_not_local_leases() {
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[
            (".tasks/config.yaml", "remote: upstreem\n"),
            (".tasks/one.md", "---\ntitle: One\n---\n"),
        ],
    );
    env.git(".", &["init", "--quiet", "--bare", "upstream.git"]);
    env.git("repo", &["remote", "add", "upstream", "../upstream.git"]);
    let claim = env.run("repo", &["claim", "--json"]);
    assert_eq!(claim.code, 1, "{claim}");
    assert!(
        claim.stderr.contains(
            ".tasks/config.yaml sets `remote: upstreem`, but this repository has no remote of that name (its remotes: upstream)"
        ),
        "{claim}"
    );
    // Local leases, when asked for by name, still work.
    let local = env.run("repo", &["claim", "--json", "--local"]);
    assert_eq!(local.code, 0, "{local}");
    assert_eq!(local.json()["lease"]["store"], "local", "{local}");
}

#[test]
fn a_broken_config_is_a_located_error_on_every_command_never_the_defaults() {
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[
            (".tasks/config.yaml", "lease_tll: 45m\nmax_attempts: lots\n"),
            (".tasks/a.md", "---\ntitle: A\n---\n"),
        ],
    );
    assert_output!(env.run("repo", &["claim"]));
    for args in [
        &["next"][..],
        &["list"],
        &["show", "a"],
        &["explain", "a"],
        &["context", "a"],
        &["status"],
        &["report"],
        &["usage", "show", "a"],
        &["top", "--once"],
    ] {
        let output = env.run("repo", args);
        assert_eq!(output.code, 1, "{args:?}: {output}");
        assert!(
            output.stderr.contains(".tasks/config.yaml:1:1: unknown key `lease_tll` in the config; did you mean `lease_ttl`?")
                && output.stderr.contains(".tasks/config.yaml:2:15: invalid config: `max_attempts`"),
            "{args:?}: {output}"
        );
    }
}

#[test]
fn a_config_duration_that_does_not_parse_is_located_at_its_value_on_every_command() {
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[
            (".tasks/config.yaml", "lease_ttl: 0s\nclock_skew: soon\n"),
            (".tasks/a.md", "---\ntitle: A\n---\n"),
        ],
    );
    for args in [&["next"][..], &["claim"], &["status"], &["top", "--once"]] {
        let output = env.run("repo", args);
        assert_eq!(output.code, 1, "{args:?}: {output}");
        assert!(
            output.stderr.contains(
                ".tasks/config.yaml:1:12: invalid config: `lease_ttl`: must be longer than 0s"
            ) && output.stderr.contains(
                ".tasks/config.yaml:2:13: invalid config: `clock_skew`: \"soon\" is not a duration"
            ),
            "{args:?}: {output}"
        );
    }
    assert_output!(env.run("repo", &["check"]));
}

#[test]
fn a_reader_that_closed_the_pipe_ends_the_command_quietly_never_a_panic() {
    let env = TestEnv::new();
    env.example_repo("repo");
    for args in [
        &["next"][..],
        &["list", "--json"],
        &["show", "auth-password-reset"],
        &["explain", "auth-password-reset"],
        &["explain", "search-index-tokenizer"],
        &["context", "auth-login-rate-limit"],
        &["completions", "zsh"],
    ] {
        // `gitprio ... | head -0`: stdout is a pipe nobody reads any more.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let output = env
            .command("repo", args)
            .stdin(std::process::Stdio::null())
            .stdout(writer)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn a_settings_error_with_stderr_closed_exits_1_never_a_panic() {
    let env = TestEnv::new();
    env.example_repo("repo");
    // `gitprio next 2>&1 | head -0`: stderr is a pipe nobody reads any more.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = env
        .command("repo", &["next"])
        .env("GITPRIO_NOW", "yesterday")
        .stdin(std::process::Stdio::null())
        .stderr(writer)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
}

/// A clone whose git directory cannot take the refs a fetch brings is told so, with the
/// path: not "cannot reach remote", and no `--offline` hint. A ref file where git needs
/// the directory of the lease mirrors stops the write even for root, where `chmod` does not.
#[test]
fn a_clone_that_cannot_write_its_refs_is_not_told_the_remote_is_unreachable() {
    let env = TestEnv::new();
    let files = vec![
        (
            ".tasks/alpha.md".to_owned(),
            crate::leases::task("Alpha", 0, &[]),
        ),
        (
            ".tasks/beta.md".to_owned(),
            crate::leases::task("Beta", 1, &[]),
        ),
    ];
    crate::leases::remote_with_clones(&env, &files, &["a", "b"]);
    let at = |agent| {
        [
            ("GITPRIO_AGENT", agent),
            ("GITPRIO_NOW", "2026-11-01T12:00:00Z"),
        ]
    };
    let bob = env.run_with("b", &["claim"], &at("bob"));
    assert_eq!(bob.code, 0, "{bob}");
    let head = env.git("a", &["rev-parse", "HEAD"]);
    env.git(
        "a",
        &[
            "update-ref",
            "refs/gitprio/remotes/origin/leases",
            head.trim(),
        ],
    );

    assert_output!(env.run_with("a", &["claim"], &at("alice")));
    assert_output!(env.run_with("a", &["status"], &at("alice")));
}
