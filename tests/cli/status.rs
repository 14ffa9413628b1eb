//! `gitprio status` and the other listings of leases (`top`): a live lease, one just past
//! its expiry but within `clock_skew`, and one expired, told apart in text and JSON.

use crate::assert_output;
use crate::common::{Output, TestEnv};
use crate::leases::{remote_with_clones, task, write_as_newer_gitprio};

const T0: &str = "2026-11-01T12:00:00Z";
/// When the listings look: carol's lease expired 21m14s ago (at 12:05), bob's 14 seconds ago
/// (within the minute of `clock_skew`), alice's expires in 3m46s.
const LOOK: &str = "2026-11-01T12:26:14Z";

fn at(env: &TestEnv, dir: &str, agent: &str, now: &str, args: &[&str]) -> Output {
    env.run_with(dir, args, &[("GITPRIO_AGENT", agent), ("GITPRIO_NOW", now)])
}

/// Alice holds `first` for 30 minutes, bob `second` for 26 and carol `third` for 5, all
/// claimed at `T0`.
fn three_leases(env: &TestEnv) {
    let files = vec![
        (".tasks/first.md".to_owned(), task("First", 0, &[])),
        (".tasks/second.md".to_owned(), task("Second", 1, &[])),
        (".tasks/third.md".to_owned(), task("Third", 2, &[])),
    ];
    remote_with_clones(env, &files, &["a", "b", "c"]);
    for (dir, agent, ttl) in [
        ("a", "alice", "30m"),
        ("b", "bob", "26m"),
        ("c", "carol", "5m"),
    ] {
        let claimed = at(env, dir, agent, T0, &["claim", "--ttl", ttl]);
        assert_eq!(claimed.code, 0, "{claimed}");
    }
}

/// The entry of list `list` of JSON reply `reply` whose `key` is `value`.
fn entry(reply: &Output, list: &str, key: &str, value: &str) -> serde_json::Value {
    reply.json()[list]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry[key] == value)
        .unwrap_or_else(|| panic!("no {list} entry with {key} {value}: {reply}"))
        .clone()
}

#[test]
fn an_expired_lease_reads_as_expired_and_since_when_in_status() {
    let env = TestEnv::new();
    three_leases(&env);
    let text = at(&env, "c", "carol", LOOK, &["status"]);
    // Times as `usage show` and the report write them (UTC, to the minute); JSON keeps RFC 3339.
    assert!(
        text.stdout
            .contains("  2026-11-01 12:00  2026-11-01 12:00  ")
            && !text.stdout.contains("T12:00:00Z"),
        "{text}"
    );
    assert_output!(text);

    let json = at(&env, "c", "carol", LOOK, &["status", "--json"]);
    assert_eq!(json.code, 0, "{json}");
    let by_task = |id: &str| entry(&json, "leases", "task", id);
    // The state says what the table's STATE column says: `expired` once any agent may
    // reclaim it, `held` within `clock_skew`.
    for (id, state, expired, expired_at) in [
        ("first", "held", false, serde_json::Value::Null),
        ("second", "held", false, serde_json::Value::Null),
        ("third", "expired", true, "2026-11-01T12:05:00Z".into()),
    ] {
        let lease = by_task(id);
        assert_eq!(lease["state"], state, "{id}: {lease}");
        assert_eq!(lease["expired"], expired, "{id}: {lease}");
        assert_eq!(lease["expired_at"], expired_at, "{id}: {lease}");
        assert_eq!(lease["acquired_at"], T0, "{id}: {lease}");
    }
}

#[test]
fn top_says_since_when_a_lease_expired_by_the_rule_claims_use() {
    let env = TestEnv::new();
    three_leases(&env);
    let fleet = at(&env, "c", "carol", LOOK, &["top", "--once", "--json"]);
    assert_eq!(fleet.code, 0, "{fleet}");
    let rows = fleet.json()["leases"].clone();
    let beats: Vec<(String, String, serde_json::Value)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["task"].as_str().unwrap().to_owned(),
                row["beat"].as_str().unwrap().to_owned(),
                row["expired_at"].clone(),
            )
        })
        .collect();
    assert_eq!(
        beats,
        [
            (
                "first".to_owned(),
                "stale".to_owned(),
                serde_json::Value::Null
            ),
            (
                "second".to_owned(),
                "stale".to_owned(),
                serde_json::Value::Null
            ),
            (
                "third".to_owned(),
                "expired".to_owned(),
                "2026-11-01T12:05:00Z".into()
            ),
        ],
        "{fleet}"
    );
    let frame = at(&env, "c", "carol", LOOK, &["top", "--once"]);
    assert!(
        frame.stdout.contains("expired 21m ago"),
        "the expired lease says since when: {frame}"
    );
}

/// A lease record this gitprio cannot read is listed with what to do about it: one a newer
/// gitprio may have written (the lease may be live) says to upgrade, never to delete it; a
/// ref that holds no lease record at all says how to delete it if stale.
#[test]
fn status_says_what_to_do_about_a_lease_record_it_cannot_read() {
    let env = TestEnv::new();
    env.repo(
        "a",
        &[
            (".tasks/only.md", &task("Only", 0, &[])),
            (".tasks/other.md", &task("Other", 1, &[])),
        ],
    );
    let claimed = at(&env, "a", "alice", T0, &["claim", "--local"]);
    assert_eq!(claimed.code, 0, "{claimed}");
    write_as_newer_gitprio(&env, |message| {
        message.replace("\"event\": \"claim\"", "\"event\": \"checkpoint\"")
    });
    let head = env.git("a", &["rev-parse", "HEAD"]);
    env.git(
        "a",
        &["update-ref", "refs/gitprio/leases/other", head.trim()],
    );

    let text = at(&env, "a", "bob", T0, &["status", "--local"]);
    assert_eq!(text.code, 0, "{text}");
    assert_output!(text);

    let json = at(&env, "a", "bob", T0, &["status", "--local", "--json"]);
    assert_eq!(json.code, 0, "{json}");
    let by_ref = |reference: &str| entry(&json, "unreadable", "ref", reference);
    let newer = by_ref("refs/gitprio/leases/only");
    assert_eq!(newer["from_newer_gitprio"], true, "{newer}");
    let advice = newer["advice"].as_str().unwrap();
    assert!(advice.contains("upgrade gitprio"), "{advice}");
    assert!(!advice.contains("delete"), "{advice}");
    let broken = by_ref("refs/gitprio/leases/other");
    assert_eq!(broken["from_newer_gitprio"], false, "{broken}");
    assert_eq!(
        broken["advice"],
        "if the lease is stale, delete it with `git update-ref -d refs/gitprio/leases/other`",
        "{broken}"
    );
}

/// `gitprio top` (and every reading of the runs: report, the Action's summary) does not
/// leave out a lease whose record it cannot read without a word: it names it, with the
/// upgrade advice when a newer gitprio may have written it.
#[test]
fn top_names_a_lease_it_cannot_read_instead_of_leaving_it_out_silently() {
    let env = TestEnv::new();
    env.repo("a", &[(".tasks/only.md", &task("Only", 0, &[]))]);
    let claimed = at(&env, "a", "alice", T0, &["claim", "--local"]);
    assert_eq!(claimed.code, 0, "{claimed}");
    write_as_newer_gitprio(&env, |message| {
        message.replace("\"event\": \"claim\"", "\"event\": \"checkpoint\"")
    });
    for args in [
        &["top", "--once", "--local"][..],
        &["top", "--once", "--json", "--local"],
        &["report", "--local"],
    ] {
        let output = at(&env, "a", "bob", T0, args);
        assert_eq!(output.code, 0, "{args:?}: {output}");
        let warnings: Vec<&str> = output
            .stderr
            .lines()
            .filter(|line| line.contains("refs/gitprio/leases/only"))
            .collect();
        assert_eq!(warnings.len(), 1, "{args:?}: {output}");
        assert!(
            warnings[0].starts_with("warning: lease ref `refs/gitprio/leases/only` is unreadable")
                && warnings[0].contains("upgrade gitprio")
                && !warnings[0].contains("delete"),
            "{args:?}: {output}"
        );
    }
    // Its task is held back, as a claim sees it, not counted ready.
    let frame = at(&env, "a", "bob", T0, &["top", "--once", "--local"]);
    assert!(
        frame
            .stdout
            .contains("0 agents active · 0 done in the last 1h · 0 ready"),
        "{frame}"
    );
}
