//! The use cases over a real repository in local mode: claims in rank order, why nothing
//! is ready, the task a command without an id is about, renewal, release and status.

use std::path::Path;
use std::process::Command;

use super::{
    Claim, ClaimRequest, GiveBack, Invocation, Silent, StoreChoice, Workspace, WorkspaceError,
    held_id,
};
use crate::git::Repository;
use crate::lease::{LeaseError, LeaseState};

/// Runs `git` in `directory` with a fixed identity and no user config.
fn git(directory: &Path, args: &[&str]) {
    let status = Command::new("git")
        .current_dir(directory)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

/// A repository with the committed tasks `first` (priority 0) and `second` (priority 1).
fn repository() -> tempfile::TempDir {
    let directory = tempfile::tempdir().unwrap();
    let root = directory.path();
    git(root, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::create_dir_all(root.join(".tasks")).unwrap();
    for (id, priority) in [("first", 0), ("second", 1)] {
        std::fs::write(
            root.join(format!(".tasks/{id}.md")),
            format!("---\ntitle: {id}\npriority: {priority}\n---\nDo {id}.\n"),
        )
        .unwrap();
    }
    git(root, &["add", "--all"]);
    git(root, &["commit", "--quiet", "--message", "tasks"]);
    directory
}

fn invocation(agent: &str) -> Invocation {
    Invocation {
        now: "2026-11-01T12:00:00Z".parse().unwrap(),
        agent: agent.to_owned(),
        host: "box".to_owned(),
        pid: 1,
        session: None,
        failpoint: None,
        branch: None,
    }
}

/// Claims as `agent`, the claim handed over.
fn claim(repo: &Repository, agent: &str) -> Claim {
    let mut claim = Workspace::open(repo, invocation(agent), StoreChoice::Local, &Silent)
        .unwrap()
        .claim(&ClaimRequest::default())
        .unwrap();
    if let Claim::Claimed(claimed) = &mut claim {
        claimed.replied();
    }
    claim
}

fn claimed_id(claim: Claim) -> String {
    match claim {
        Claim::Claimed(claimed) => claimed.task.id.to_string(),
        Claim::NothingReady(why) => panic!("nothing ready: {}", why.message),
    }
}

#[test]
fn agents_claim_in_rank_order_until_every_task_is_held() {
    let directory = repository();
    let repo = Repository::discover(directory.path()).unwrap();
    assert_eq!(claimed_id(claim(&repo, "alice")), "first");
    assert_eq!(claimed_id(claim(&repo, "bob")), "second");
    match claim(&repo, "carol") {
        Claim::NothingReady(why) => assert_eq!(why.reason, "all_held", "{}", why.message),
        Claim::Claimed(claimed) => panic!("claimed {} twice", claimed.task.id),
    }
}

#[test]
fn a_claim_hands_over_the_body_and_the_context_bundle() {
    let directory = repository();
    let repo = Repository::discover(directory.path()).unwrap();
    let Claim::Claimed(claimed) = claim(&repo, "alice") else {
        panic!("nothing claimed");
    };
    assert_eq!(claimed.task.body.trim(), "Do first.");
    assert_eq!(claimed.tries, 1);
    let bundle = claimed.bundle.as_ref().unwrap();
    assert_eq!(bundle.task.as_str(), "first");
}

#[test]
fn a_worktree_holding_two_leases_must_name_the_task() {
    let directory = repository();
    let repo = Repository::discover(directory.path()).unwrap();
    assert!(matches!(
        held_id(&repo, None),
        Err(WorkspaceError::NothingHeldHere)
    ));
    claimed_id(claim(&repo, "alice"));
    assert_eq!(held_id(&repo, None).unwrap().as_str(), "first");
    claimed_id(claim(&repo, "bob"));
    match held_id(&repo, None) {
        Err(WorkspaceError::SeveralHeldHere { tasks }) => assert_eq!(tasks.len(), 2),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_holder_renews_and_releases_and_another_agent_is_fenced() {
    let directory = repository();
    let repo = Repository::discover(directory.path()).unwrap();
    claimed_id(claim(&repo, "alice"));
    let id = held_id(&repo, Some("first")).unwrap();
    let alice = Workspace::open(&repo, invocation("alice"), StoreChoice::Local, &Silent).unwrap();
    let renewed = alice.heartbeat(&id, Some("10m"), None).unwrap();
    assert_eq!(renewed.lease.record.generation, 1);
    assert!(renewed.over_budget().is_none());
    let status = alice.status(true).unwrap();
    assert_eq!(status.leases.len(), 1);
    assert!(status.leases[0].mine);
    let released = alice.release(&id, Some("stuck"), GiveBack::Failed).unwrap();
    assert_eq!(released.lease.record.state, LeaseState::Released);
    assert_eq!(released.lease.record.failures, 1);
    let bob = Workspace::open(&repo, invocation("bob"), StoreChoice::Local, &Silent).unwrap();
    assert!(matches!(
        bob.heartbeat(&id, None, None),
        Err(WorkspaceError::Lease(
            LeaseError::NotHeld { .. } | LeaseError::Lost { .. } | LeaseError::Ended { .. }
        ))
    ));
}

#[test]
fn a_cost_needs_tokens_and_must_be_dollars() {
    let now = "2026-11-01T12:00:00Z".parse().unwrap();
    assert!(matches!(
        super::progress(now, None, Some(0.5)),
        Err(WorkspaceError::CostWithoutTokens)
    ));
    assert!(matches!(
        super::progress(now, Some(10), Some(-1.0)),
        Err(WorkspaceError::InvalidCost { .. })
    ));
    assert_eq!(
        super::progress(now, Some(10), None)
            .unwrap()
            .unwrap()
            .tokens,
        10
    );
    assert!(super::progress(now, None, None).unwrap().is_none());
}
