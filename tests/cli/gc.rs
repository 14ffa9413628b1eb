//! `gitprio gc`: which leases it deletes, and the live ones it must never touch.

use crate::common::{Output, TestEnv};
use crate::leases::{remote_with_clones, task};

const T0: &str = "2026-11-01T12:00:00Z";

fn as_agent(env: &TestEnv, dir: &str, agent: &str, args: &[&str]) -> Output {
    env.run_with(dir, args, &[("GITPRIO_AGENT", agent), ("GITPRIO_NOW", T0)])
}

fn three_tasks() -> Vec<(String, String)> {
    (1..=3)
        .map(|index| {
            (
                format!(".tasks/t{index}.md"),
                task(&format!("Task {index}"), index, &[]),
            )
        })
        .collect()
}

/// Clones `a` and `b` of a remote holding t1 to t3, alice (in `a`) holding t1.
fn alice_holds_t1() -> TestEnv {
    let env = TestEnv::new();
    remote_with_clones(&env, &three_tasks(), &["a", "b"]);
    let claimed = as_agent(&env, "a", "alice", &["claim", "--json"]);
    assert_eq!(claimed.json()["task"]["id"], "t1", "{claimed}");
    env
}

fn commit_and_push(env: &TestEnv, dir: &str, message: &str) {
    env.git(dir, &["commit", "--quiet", "-am", message]);
    env.git(dir, &["push", "--quiet", "origin", "HEAD:main"]);
}

#[test]
fn gc_keeps_the_leases_of_tasks_whose_file_it_cannot_read() {
    let env = alice_holds_t1();
    // One failed attempt parks a task: its failure history lives in the lease.
    env.write("b", &[(".tasks/config.yaml", "max_attempts: 1\n")]);
    let second = as_agent(&env, "b", "bob", &["claim", "--json"]);
    let parked = second.json()["task"]["id"].as_str().unwrap().to_owned();
    let failed = as_agent(&env, "b", "bob", &["release", "--failed", &parked]);
    assert_eq!(failed.code, 0, "{failed}");
    let open = if parked == "t2" { "t3" } else { "t2" };

    let broken = "---\ntitle: broken\npriority: [1\n---\n";
    let parked_path = format!(".tasks/{parked}.md");
    env.write("a", &[(".tasks/t1.md", broken), (&parked_path, broken)]);
    commit_and_push(&env, "a", "break two task files");
    let gc = as_agent(&env, "b", "bob", &["gc", "--json"]);
    assert_eq!(gc.code, 0, "{gc}");
    assert_eq!(gc.json()["deleted"], serde_json::json!([]), "{gc}");
    assert_eq!(gc.json()["kept"][0]["reason"], "unreadable", "{gc}");
    let refs = env.git("remote.git", &["for-each-ref", "--format=%(refname)"]);
    assert!(refs.contains("refs/gitprio/leases/t1"), "{refs}");
    assert!(
        refs.contains(&format!("refs/gitprio/leases/{parked}")),
        "{refs}"
    );

    // Fixed again, t1 is still alice's: bob cannot take it a second time.
    env.git("a", &["checkout", "--quiet", "HEAD~1", "--", ".tasks"]);
    commit_and_push(&env, "a", "fix the task files");
    let again = as_agent(&env, "b", "bob", &["claim", "--json"]);
    assert_eq!(again.json()["task"]["id"], open, "{again}");
    let list = as_agent(&env, "b", "bob", &["list"]);
    assert!(list.stdout.contains("parked"), "{list}");
}

#[test]
fn gc_from_another_branch_keeps_live_leases_of_tasks_it_does_not_have() {
    let env = TestEnv::new();
    remote_with_clones(&env, &three_tasks(), &["a", "b"]);
    // No `branch:` in the config and no origin/HEAD: the queue is read from origin/main,
    // not from the feature branch checked out, which lacks t4.
    env.git("a", &["remote", "set-head", "origin", "--delete"]);
    env.git("a", &["checkout", "--quiet", "-b", "feature"]);
    env.git("a", &["push", "--quiet", "origin", "feature"]);
    env.write("b", &[(".tasks/t4.md", &task("Task 4", 0, &[]))]);
    env.git("b", &["add", "--all"]);
    commit_and_push(&env, "b", "add t4");
    let claimed = as_agent(&env, "b", "bob", &["claim", "--json"]);
    assert_eq!(claimed.json()["task"]["id"], "t4", "{claimed}");

    let gc = as_agent(&env, "a", "alice", &["gc", "--json"]);
    assert_eq!(gc.code, 0, "{gc}");
    assert_eq!(gc.json()["deleted"], serde_json::json!([]), "{gc}");
    let refs = env.git("remote.git", &["for-each-ref", "--format=%(refname)"]);
    assert!(refs.contains("refs/gitprio/leases/t4"), "{refs}");
}

#[test]
fn gc_deletes_the_lease_of_a_deleted_task_once_it_is_not_live() {
    let env = alice_holds_t1();
    env.git("b", &["rm", "--quiet", ".tasks/t1.md"]);
    commit_and_push(&env, "b", "drop t1 for good");
    let kept = as_agent(&env, "b", "bob", &["gc", "--json"]);
    assert_eq!(kept.json()["deleted"], serde_json::json!([]), "{kept}");
    let released = as_agent(&env, "a", "alice", &["release", "t1"]);
    assert_eq!(released.code, 0, "{released}");
    let gc = as_agent(&env, "b", "bob", &["gc", "--json"]);
    assert_eq!(gc.json()["deleted"], serde_json::json!(["t1"]), "{gc}");
}
