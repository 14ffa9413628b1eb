//! `gitprio check`: located problems, all at once, in human, JSON and GitHub formats.

use crate::assert_output;
use crate::common::TestEnv;

fn broken_queue(env: &TestEnv) {
    env.repo(
        "repo",
        &[
            ("src/lib.rs", "\n"),
            ("docs/guide.md", "# Guide\n"),
            (".tasks/config.yaml", "types: [bug, feature]\n"),
            (".tasks/a.md", "---\ntitle: A\ndepends_on: [b, ghost]\ntype: chore\n---\n"),
            (".tasks/b.md", "---\ntitle: B\ndepends_on: [a]\nowns: [\"src/**\", \"lib/*.c\"]\ncontext: [docs/guide.md#intro, docs/gone.md]\n---\n"),
            (".tasks/c.md", "---\ntitle: C\npriority: high\nlables: [x]\n---\n"),
            (".tasks/d.md", "---\nid: a\ntitle: Duplicate of a\n---\n"),
            (".tasks/e.md", "---\ntitle: \"unclosed\n---\n"),
        ],
    );
}

#[test]
fn check_reports_every_problem_located() {
    let env = TestEnv::new();
    broken_queue(&env);
    assert_output!(env.run("repo", &["check"]));
}

#[test]
fn check_json_and_github_annotations() {
    let env = TestEnv::new();
    broken_queue(&env);
    let json = env.run("repo", &["check", "--json"]);
    assert_eq!(json.code, 1);
    let value = json.json();
    assert_eq!(value["ok"], false);
    assert_eq!(value["diagnostics"][0]["kind"], "dependency-cycle");
    let github = env.run_with("repo", &["check"], &[("GITHUB_ACTIONS", "true")]);
    assert!(
        github.stdout.contains("::error file=.tasks/a.md,line=3,col=17::unknown dependency `ghost`: no task has this id"),
        "{github}"
    );
    assert!(
        github.stdout.contains(
            "::error file=.tasks/c.md,line=4,col=1::unknown key `lables`; did you mean `labels`?"
        ),
        "{github}"
    );
}

#[test]
fn check_reports_config_types_that_no_task_has_and_types_does_not_list() {
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[
            (
                ".tasks/config.yaml",
                "types: [bug, feature, spike]\nbudgets:\n  bug: 200k\n  featur: 400k\ntype_tiers:\n  docs: small\nplan:\n  types: [spike, resarch]\n  budget_over: 500k\n",
            ),
            (".tasks/a.md", "---\ntitle: A\ntype: bug\n---\n"),
        ],
    );
    assert_output!(env.run("repo", &["check"]));
}

#[test]
fn strict_turns_warnings_into_errors() {
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[(".tasks/a.md", "---\ntitle: A\ncolour: blue\n---\n")],
    );
    assert_eq!(env.run("repo", &["check"]).code, 0);
    assert_output!(env.run("repo", &["check", "--strict"]));
}

#[test]
fn the_example_queue_passes_a_strict_check() {
    let env = TestEnv::new();
    env.example_repo("repo");
    assert_output!(env.run("repo", &["check", "--strict"]));
}

#[test]
fn check_rejects_ids_that_git_cannot_name_a_lease_ref_after() {
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[
            (".tasks/deps.lock.md", "---\ntitle: Lock file\n---\n"),
            (".tasks/range.md", "---\nid: a..b\ntitle: Range\n---\n"),
            (".tasks/end.md", "---\nid: end.\ntitle: End\n---\n"),
            (".tasks/fine.md", "---\nid: v1.2-fix_it\ntitle: Fine\n---\n"),
        ],
    );
    assert_output!(env.run("repo", &["check"]));
}

#[test]
fn check_reports_every_error_of_every_file_config_included() {
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[
            (
                ".tasks/config.yaml",
                "types: [bug]\nlease_tll: 45m\nmax_attempts: lots\nclock_skew: soon\n",
            ),
            (
                ".tasks/a.md",
                "---\ntitle: A\npriorty: p1\ndepends-on: [b]\nstatus: wip\ntype: chore\ncolour: blue\n---\n",
            ),
            (".tasks/b.md", "---\npriority: high\nvalue: -1\n---\n"),
        ],
    );
    assert_output!(env.run("repo", &["check"]));
}

#[test]
fn a_file_name_that_is_not_utf8_is_skipped_with_a_warning_not_an_abort() {
    use std::os::unix::ffi::OsStrExt as _;
    let env = TestEnv::new();
    env.example_repo("repo");
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.png");
    std::fs::create_dir_all(env.path("repo/assets")).unwrap();
    std::fs::write(env.path("repo/assets").join(name), "").unwrap();
    assert_output!(env.run("repo", &["check", "--strict"]));
}
