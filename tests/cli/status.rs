//! `gitprio status` and the other listings of leases (`top`): a live lease, one just past
//! its expiry but within `clock_skew`, and one expired, told apart in text and JSON.

use crate::assert_output;
use crate::common::{Output, TestEnv};
use crate::leases::{remote_with_clones, task};

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

#[test]
fn an_expired_lease_reads_as_expired_and_since_when_in_status() {
    let env = TestEnv::new();
    three_leases(&env);
    assert_output!(at(&env, "c", "carol", LOOK, &["status"]));

    let json = at(&env, "c", "carol", LOOK, &["status", "--json"]);
    assert_eq!(json.code, 0, "{json}");
    let leases = &json.json()["leases"];
    let by_task = |id: &str| {
        leases
            .as_array()
            .unwrap()
            .iter()
            .find(|lease| lease["task"] == id)
            .unwrap_or_else(|| panic!("no lease of {id}: {json}"))
            .clone()
    };
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
