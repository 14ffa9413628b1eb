//! Which ready task a claim tries first while other agents claim too: each claimer owns the
//! tasks it hashes highest for among the claimers its view of the leases shows.
//!
//! Rendezvous hashing: for every ready task, each agent that may be claiming now gets a
//! score, a hash of its name and the task id; the task belongs to the highest score. An
//! agent tries the best-ranked tasks it owns. Agents with the same view own disjoint tasks,
//! so they never race each other; and since a score depends only on the agent and the
//! task, views that differ by claims made since (the winner stops being a claimer: it
//! holds a lease now) give the same owners for every other task. Only an agent that joins
//! the claimers (it finished a task, or started) takes over tasks from views that do not
//! show it yet, about one in N of them. See docs/leases.md, "Spreading racing agents".

use std::collections::{BTreeMap, BTreeSet};

use jiff::SignedDuration;

use super::ops::{LeaseContext, MAX_CLAIM_TRIES};
use super::{Lease, LeaseState};
use crate::task::TaskId;

/// How many further claimers each lost race makes a claim assume, per claimer it sees:
/// agents that never changed a lease are invisible, so a lost race is the only sign of
/// them (32 agents starting together all see themselves alone).
const GROWTH_PER_LOST_RACE: usize = 4;

/// The most lost races that still widen the spread: beyond it the assumed claimers
/// outnumber any ready list.
const MAX_WIDENING_RACES: u32 = 6;

/// How recently an agent that holds no live lease must have changed one (submitted or
/// released its task) to count as claiming now, before clock skew: an agent's loop claims
/// again within seconds of its `done`. One that stopped must not keep owning tasks (the
/// others pass over those) for longer than this.
const CLAIM_WINDOW: SignedDuration = SignedDuration::from_mins(2);

/// Returns the agents that may be claiming now, as this view of the leases shows them:
/// those that changed a lease within [`CLAIM_WINDOW`] (plus the clock skew allowed, at
/// most one TTL) and hold no live lease now, and `context`'s own agent.
///
/// An agent holding a live lease works on its task and claims no other; counting it would
/// make the claimers pass over the tasks it would own, the top ones included, until it is
/// done.
pub fn claimers<'view>(
    leases: &'view BTreeMap<TaskId, Lease>,
    context: &'view LeaseContext,
) -> BTreeSet<&'view str> {
    let window = CLAIM_WINDOW.saturating_add(context.skew).min(context.ttl);
    let since = context.now.saturating_sub(window).unwrap_or(context.now);
    let busy: BTreeSet<&str> = leases
        .values()
        .filter(|lease| {
            lease.record.state == LeaseState::Held
                && !lease.record.is_expired(context.now, context.skew)
        })
        .map(|lease| lease.record.holder.agent.as_str())
        .collect();
    let mut claimers: BTreeSet<&str> = leases
        .values()
        .filter(|lease| lease.record.renewed_at >= since)
        .map(|lease| lease.record.holder.agent.as_str())
        .filter(|agent| !busy.contains(agent))
        .collect();
    claimers.insert(&context.holder.agent);
    claimers
}

/// Returns the order in which to try the ranked `candidates` (indices into them).
///
/// Alone among the claimers, with no race lost yet, the order is the rank order: a lone
/// agent takes the top task. Otherwise the tasks this agent owns come first, best-ranked
/// first (at most [`MAX_CLAIM_TRIES`] of them), then every other candidate in rank order, so
/// each is reachable. After `lost_races`, the claim assumes invisible claimers besides the
/// ones it sees ([`GROWTH_PER_LOST_RACE`] times as many per race), so that agents that
/// started together and all lost to one winner spread out instead of racing again.
pub fn claim_order(
    candidates: &[&TaskId],
    claimers: &BTreeSet<&str>,
    me: &str,
    lost_races: u32,
) -> Vec<usize> {
    let seen = claimers.len().max(1);
    if seen == 1 && lost_races == 0 {
        return (0..candidates.len()).collect();
    }
    let races = lost_races.min(MAX_WIDENING_RACES);
    let assumed = (0..races).fold(seen.max(2), |claimers, _| {
        claimers.saturating_mul(GROWTH_PER_LOST_RACE)
    });
    let invisible = if races == 0 {
        0
    } else {
        assumed
            .saturating_sub(seen)
            .min(candidates.len().saturating_mul(4))
    };
    let others: Vec<u64> = claimers
        .iter()
        .filter(|agent| **agent != me)
        .map(|agent| name_hash(agent))
        .chain((0..invisible).map(|index| mix(0x5eed ^ u64::try_from(index).unwrap_or(u64::MAX))))
        .collect();
    let mine = name_hash(me);
    let mut owned = Vec::new();
    for (index, task) in candidates.iter().enumerate() {
        let task_hash = name_hash(task.as_str());
        let my_score = score(mine, task_hash);
        if others
            .iter()
            .all(|other| score(*other, task_hash) < my_score)
        {
            owned.push(index);
            if owned.len() == MAX_CLAIM_TRIES as usize {
                break;
            }
        }
    }
    if owned.is_empty() {
        // More claimers than candidates (the end of a drain): the one this agent scores
        // highest, which differs from agent to agent.
        owned.extend(
            (0..candidates.len())
                .max_by_key(|index| score(mine, name_hash(candidates[*index].as_str()))),
        );
    }
    let mut order = owned.clone();
    order.extend((0..candidates.len()).filter(|index| !owned.contains(index)));
    order
}

/// The score of the agent whose name hashes to `agent` for the task whose id hashes to
/// `task`: the same on every machine and in every version, since agents compare theirs.
fn score(agent: u64, task: u64) -> u64 {
    mix(agent.wrapping_add(mix(task)))
}

/// FNV-1a of `text`, then mixed: a hash that is the same in every process (the standard
/// library's hashers are seeded per process).
fn name_hash(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(hash)
}

/// One step of splitmix64: spreads a value into a well-mixed one.
fn mix(state: u64) -> u64 {
    let mut value = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    value ^ (value >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(count: usize) -> Vec<TaskId> {
        (0..count)
            .map(|index| TaskId::new(&format!("t{index:04}")).unwrap())
            .collect()
    }

    fn order(tasks: &[TaskId], claimers: &[&str], me: &str, lost: u32) -> Vec<usize> {
        let candidates: Vec<&TaskId> = tasks.iter().collect();
        let claimers: BTreeSet<&str> = claimers.iter().copied().collect();
        claim_order(&candidates, &claimers, me, lost)
    }

    fn agents(count: usize) -> Vec<String> {
        (0..count).map(|index| format!("agent{index:02}")).collect()
    }

    /// The task each of `agents` agents tries first when all share one view of `tasks` tasks.
    fn first_picks(tasks: usize, agents_claiming: usize) -> BTreeSet<usize> {
        let tasks = ids(tasks);
        let names = agents(agents_claiming);
        let claimers: Vec<&str> = names.iter().map(String::as_str).collect();
        claimers
            .iter()
            .map(|me| order(&tasks, &claimers, me, 0)[0])
            .collect()
    }

    #[test]
    fn a_lone_claimer_tries_the_tasks_in_rank_order() {
        let tasks = ids(10);
        assert_eq!(
            order(&tasks, &["alice"], "alice", 0),
            (0..10).collect::<Vec<_>>()
        );
    }

    #[test]
    fn claimers_with_one_view_never_pick_the_same_task_and_stay_near_the_top() {
        let firsts = first_picks(200, 32);
        assert_eq!(firsts.len(), 32, "{firsts:?}");
        assert!(
            firsts.iter().all(|first| *first < 200),
            "every claimer owns a task among 200: {firsts:?}"
        );
        let mean = firsts.iter().sum::<usize>() / firsts.len();
        assert!(
            mean < 64,
            "the fleet takes the top of the queue first: {firsts:?}"
        );
    }

    #[test]
    fn every_candidate_comes_once() {
        let tasks = ids(50);
        let names = agents(8);
        let claimers: Vec<&str> = names.iter().map(String::as_str).collect();
        for lost in 0..4 {
            let mut sorted = order(&tasks, &claimers, "agent03", lost);
            sorted.sort_unstable();
            assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_claimer_that_stops_claiming_leaves_the_others_picks_alone() {
        let tasks = ids(100);
        let names = agents(16);
        let all: Vec<&str> = names.iter().map(String::as_str).collect();
        let without: Vec<&str> = all
            .iter()
            .copied()
            .filter(|agent| *agent != "agent05")
            .collect();
        for me in &without {
            let before = order(&tasks, &all, me, 0)[0];
            let after = order(&tasks, &without, me, 0)[0];
            let took_over = before != after;
            // Only a task agent05 owned can move, and then to an earlier-ranked one.
            assert!(!took_over || after < before, "{me}: {before} -> {after}");
        }
    }

    #[test]
    fn lost_races_spread_agents_that_saw_themselves_alone() {
        let tasks = ids(64);
        let names = agents(31);
        let firsts: BTreeSet<usize> = names
            .iter()
            .map(|me| order(&tasks, &[me.as_str()], me, 1)[0])
            .collect();
        assert!(firsts.len() >= 8, "{firsts:?}");
        let again: BTreeSet<usize> = names
            .iter()
            .map(|me| order(&tasks, &[me.as_str()], me, 2)[0])
            .collect();
        assert!(again.len() > firsts.len(), "{firsts:?} then {again:?}");
    }

    /// The rank the loser of a start by two agents tries next: it cannot tell its one
    /// rival from a fleet started together (either way its view shows one new lease,
    /// the winner's), so it assumes a crowd of 8 and takes a task near the 8th.
    #[test]
    fn the_loser_of_a_start_by_two_agents_takes_a_task_near_the_top() {
        let tasks = ids(100);
        let names = agents(40);
        let ranks: Vec<usize> = names
            .iter()
            .map(|me| order(&tasks, &[me.as_str()], me, 1)[0])
            .collect();
        let mean = ranks.iter().sum::<usize>() / ranks.len();
        assert!(
            (4..=12).contains(&mean),
            "mean rank {mean} over 40 losers: {ranks:?}"
        );
    }

    #[test]
    fn claimers_are_the_recently_active_agents_without_a_live_lease() {
        use crate::lease::{Holder, LeaseEvent};
        let now: jiff::Timestamp = "2026-11-01T12:00:00Z".parse().unwrap();
        let lease = |task: &str, agent: &str, state: LeaseState, minutes_ago: i64| {
            let at = now
                .checked_sub(SignedDuration::from_mins(minutes_ago))
                .unwrap();
            let record = crate::lease::LeaseRecord {
                task: TaskId::new(task).unwrap(),
                state,
                event: LeaseEvent::Claim,
                holder: Holder {
                    agent: agent.to_owned(),
                    ..crate::lease::tests::record().holder
                },
                renewed_at: at,
                expires_at: at.checked_add(SignedDuration::from_mins(30)).unwrap(),
                ..crate::lease::tests::record()
            };
            (
                record.task.clone(),
                Lease {
                    reference: crate::lease::lease_ref(&record.task),
                    oid: gix::ObjectId::null(gix::hash::Kind::Sha1),
                    record,
                },
            )
        };
        let leases: BTreeMap<TaskId, Lease> = [
            lease("a", "working", LeaseState::Held, 1),
            lease("b", "just-done", LeaseState::Submitted, 1),
            lease("c", "stopped", LeaseState::Submitted, 20),
            lease("d", "gave-up", LeaseState::Released, 0),
            lease("e", "dead", LeaseState::Held, 45),
        ]
        .into_iter()
        .collect();
        let context = LeaseContext {
            now,
            ttl: SignedDuration::from_mins(30),
            skew: SignedDuration::from_mins(1),
            max_attempts: 3,
            holder: Holder {
                agent: "me".to_owned(),
                ..crate::lease::tests::record().holder
            },
            failpoint: None,
        };
        assert_eq!(
            claimers(&leases, &context).into_iter().collect::<Vec<_>>(),
            ["gave-up", "just-done", "me"]
        );
    }

    #[test]
    fn short_candidate_lists_are_tried_whole() {
        let names = agents(8);
        let claimers: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_eq!(order(&ids(0), &claimers, "agent01", 0), Vec::<usize>::new());
        assert_eq!(order(&ids(1), &claimers, "agent01", 2), vec![0]);
        let mut three = order(&ids(3), &claimers, "agent01", 1);
        three.sort_unstable();
        assert_eq!(three, vec![0, 1, 2]);
    }

    #[test]
    fn more_claimers_than_tasks_still_spread() {
        assert_eq!(first_picks(3, 12).len(), 3);
    }
}
