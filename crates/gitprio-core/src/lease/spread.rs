//! Which ready task a claim tries first while other agents claim too, and how long a claim
//! that lost a race waits before it looks again: each claimer owns the tasks it hashes
//! highest for among the claimers its view of the leases shows, and the ones it infers.
//!
//! Rendezvous hashing: for every ready task, each agent that may be claiming now gets a
//! score, a hash of its name and the task id; the task belongs to the highest score. An
//! agent tries the best-ranked tasks it owns. Agents with the same view own disjoint tasks,
//! so they never race each other; and since a score depends only on the agent and the
//! task, views that differ by claims made since (the winner stops being a claimer: it
//! holds a lease now) give the same owners for every other task. Only an agent that joins
//! the claimers (it finished a task, or started) takes over tasks from views that do not
//! show it yet, about one in N of them. Agents that never changed a lease are invisible:
//! a lost race, and the claims that landed while this claim was losing, are the only sign
//! of them ([`Crowd`]). See docs/leases.md, "Spreading racing agents".

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use gix::ObjectId;
use jiff::{SignedDuration, Timestamp};

use super::ops::{LeaseContext, MAX_CLAIM_TRIES};
use super::{Lease, LeaseState};
use crate::task::TaskId;

/// How many invisible claimers a claim that lost assumes per claim it saw land since it
/// began: W agents won while it lost, so the crowd is at least W+1 strong, and as many
/// again may be racing still, unseen. Four per winner keeps the loser of a start by two
/// agents near the top (about the 4th task) while 31 losers of a start by 32 that see
/// the winners land spread over the top 100.
const INVISIBLE_PER_WINNER: usize = 4;

/// The window a lost race makes a claim wait in, at random, before it looks again, in
/// multiples of the lost round's own duration (its refresh and push: the time in which
/// racers collide): the losers of one race then go one after another, and each sees the
/// leases the earlier ones won.
const BACKOFF_ROUNDS: u32 = 12;

/// How long a claim keeps looking while other agents win the races, from its start: past
/// it the claim gives up rather than wait out all its views (12 of them, with waits of up
/// to 20 s after a slow round, took minutes).
pub const CLAIM_BUDGET: Duration = Duration::from_secs(60);

/// How many times the backoff window doubles over further lost races.
const MAX_BACKOFF_DOUBLINGS: u32 = 2;

/// The longest window a claim waits in after a lost race, whatever the round took (a
/// stalled remote), so that a claim gives up in minutes, not hours.
const MAX_BACKOFF: Duration = Duration::from_secs(20);

/// How many fresh views of the leases one claim takes before it gives up: a view ends at
/// its first lost race.
pub const MAX_CLAIM_VIEWS: u32 = 12;

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

/// What one claim has learnt, over the views it took, about the agents racing it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Crowd {
    /// Races this claim lost.
    pub lost_races: u32,
    /// Claims by other agents that landed since this claim's first view (at least one per
    /// lost race: the winner).
    pub winners: usize,
}

impl Crowd {
    /// Notes a view taken after `lost` more races, in which `landed` claims of other
    /// agents show that the claim's previous view did not.
    #[must_use]
    pub fn after_view(self, lost: u32, landed: usize) -> Crowd {
        let lost_races = self.lost_races.saturating_add(lost);
        let winners = self.winners.saturating_add(landed).max(lost_races as usize);
        Crowd {
            lost_races,
            winners,
        }
    }

    /// How many claimers this claim assumes besides the ones it sees: none before it lost
    /// a race, then [`INVISIBLE_PER_WINNER`] per winner.
    pub fn invisible(self) -> usize {
        if self.lost_races == 0 {
            0
        } else {
            self.winners.max(1).saturating_mul(INVISIBLE_PER_WINNER)
        }
    }
}

/// Counts the claims by agents other than `me` that `now` shows and `before` did not (a
/// lease ref that is new, or at a later generation: a reclaim), made at `since` or later
/// by their claimers' clocks. Heartbeats and submissions keep the generation, so they are
/// not counted; nor are claims older than `since`, which a mirror refreshed long ago
/// misses too but which raced nobody now.
pub fn claims_landed(
    before: &BTreeMap<TaskId, (ObjectId, u64)>,
    now: &BTreeMap<TaskId, Lease>,
    me: &str,
    since: Timestamp,
) -> usize {
    now.iter()
        .filter(|(task, lease)| {
            lease.record.holder.agent != me
                && lease.record.renewed_at >= since
                && before.get(*task).is_none_or(|(oid, generation)| {
                    *oid != lease.oid && *generation < lease.record.generation
                })
        })
        .count()
}

/// Returns how long a claim waits, after its `lost_races`-th lost race, before it looks
/// again: a random part (`random`, any 64 bits) of a window of [`BACKOFF_ROUNDS`] times
/// the lost round's duration, doubling over later races up to [`MAX_BACKOFF_DOUBLINGS`]
/// times and at most [`MAX_BACKOFF`]. Racers that lost together then look again one
/// after another instead of all at once.
pub fn backoff(lost_races: u32, lost_round: Duration, random: u64) -> Duration {
    if lost_races == 0 {
        return Duration::ZERO;
    }
    let doublings = (lost_races - 1).min(MAX_BACKOFF_DOUBLINGS);
    let window = lost_round
        .saturating_mul(BACKOFF_ROUNDS)
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF);
    let fraction = u128::from(random >> 32);
    let nanos = window.as_nanos().saturating_mul(fraction) >> 32;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Returns how long a claim that lost the race of its `views`-th view, `spent` after it
/// began, waits before it takes the next view: `wanted` (its [`backoff`]), cut to what is
/// left of [`CLAIM_BUDGET`]; `None` when it gives up instead, after [`MAX_CLAIM_VIEWS`]
/// views or once the budget is spent. A claim thus ends within the budget and one view.
pub fn next_look(views: u32, spent: Duration, wanted: Duration) -> Option<Duration> {
    let left = CLAIM_BUDGET
        .checked_sub(spent)
        .filter(|left| !left.is_zero())?;
    (views < MAX_CLAIM_VIEWS).then_some(wanted.min(left))
}

/// Returns the order in which to try the ranked `candidates` (indices into them).
///
/// Alone among the claimers, with no race lost yet, the order is the rank order: a lone
/// agent takes the top task. Otherwise the tasks this agent owns come first, best-ranked
/// first (at most [`MAX_CLAIM_TRIES`] of them), then every other candidate in rank order, so
/// each is reachable. After a lost race, the claim assumes invisible claimers besides the
/// ones it sees, as many as its `crowd` suggests ([`Crowd::invisible`]), so that agents
/// that started together and all lost to one winner spread out instead of racing again.
pub fn claim_order(
    candidates: &[&TaskId],
    claimers: &BTreeSet<&str>,
    me: &str,
    crowd: Crowd,
) -> Vec<usize> {
    let seen = claimers.len().max(1);
    if seen == 1 && crowd.lost_races == 0 {
        return (0..candidates.len()).collect();
    }
    let invisible = crowd.invisible().min(candidates.len().saturating_mul(4));
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
        let crowd = Crowd {
            lost_races: lost,
            winners: lost as usize,
        };
        claim_order(&candidates, &claimers, me, crowd)
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

    /// The first task each of 31 agents tries that saw only themselves claiming and lost
    /// one race, seeing `winners` claims land meanwhile.
    fn losers_first_picks(tasks: &[TaskId], winners: usize) -> BTreeSet<usize> {
        let candidates: Vec<&TaskId> = tasks.iter().collect();
        agents(31)
            .iter()
            .map(|me| {
                let claimers = BTreeSet::from([me.as_str()]);
                let crowd = Crowd {
                    lost_races: 1,
                    winners,
                };
                claim_order(&candidates, &claimers, me, crowd)[0]
            })
            .collect()
    }

    #[test]
    fn losers_that_saw_more_claims_land_spread_wider() {
        let tasks = ids(128);
        let one = losers_first_picks(&tasks, 1);
        let eight = losers_first_picks(&tasks, 8);
        assert!(one.len() >= 6, "{one:?}");
        assert!(eight.len() > one.len() + 6, "{one:?} then {eight:?}");
    }

    /// The rank the loser of a start by two agents tries next: it saw one claim land, its
    /// rival's, so it assumes four more claimers and takes a task about 4 below the top
    /// (mean 3.8 here; 5.2 while a lost race assumed 8 claimers, whatever landed).
    #[test]
    fn the_loser_of_a_start_by_two_agents_takes_a_task_near_the_top() {
        let tasks = ids(100);
        let names = agents(40);
        let ranks: Vec<usize> = names
            .iter()
            .map(|me| order(&tasks, &[me.as_str()], me, 1)[0])
            .collect();
        let mean_tenths = ranks.iter().sum::<usize>() * 10 / ranks.len();
        assert!(
            (20..=40).contains(&mean_tenths),
            "mean rank {mean_tenths}/10 over 40 losers: {ranks:?}"
        );
    }

    #[test]
    fn a_crowd_counts_the_claims_that_landed_and_at_least_one_winner_per_lost_race() {
        let crowd = Crowd::default();
        assert_eq!(crowd.invisible(), 0);
        let after_one = crowd.after_view(1, 0);
        assert_eq!(
            after_one,
            Crowd {
                lost_races: 1,
                winners: 1
            }
        );
        assert_eq!(after_one.invisible(), INVISIBLE_PER_WINNER);
        let after_two = after_one.after_view(1, 9);
        assert_eq!(after_two.winners, 10);
        assert_eq!(after_two.invisible(), 10 * INVISIBLE_PER_WINNER);
        assert_eq!(after_two.after_view(3, 0).winners, 10);
        assert_eq!(after_two.after_view(20, 0).winners, 22);
    }

    /// 64 bits from a seeded splitmix64 sequence: the backoff's inputs, reproducible.
    fn seeded(count: u64) -> impl Iterator<Item = u64> {
        (0..count).map(|index| mix(0x00c0_ffee ^ index))
    }

    #[test]
    fn no_backoff_before_a_lost_race() {
        assert_eq!(backoff(0, Duration::from_secs(1), u64::MAX), Duration::ZERO);
    }

    #[test]
    fn the_backoff_spreads_over_a_window_scaled_by_the_lost_round() {
        let round = Duration::from_millis(300);
        let window = round * BACKOFF_ROUNDS;
        let waits: Vec<Duration> = seeded(1000)
            .map(|random| backoff(1, round, random))
            .collect();
        assert!(waits.iter().all(|wait| *wait < window), "{window:?}");
        assert_eq!(backoff(1, round, 0), Duration::ZERO);
        let tenths: BTreeSet<u128> = waits
            .iter()
            .map(|wait| wait.as_nanos() * 10 / window.as_nanos())
            .collect();
        assert_eq!(
            tenths,
            (0..10).collect(),
            "every tenth of the window is used"
        );
        let mean = waits.iter().sum::<Duration>() / 1000;
        assert!(
            (window * 4 / 10..window * 6 / 10).contains(&mean),
            "{mean:?} in {window:?}"
        );
    }

    #[test]
    fn the_backoff_window_doubles_over_later_races_up_to_a_limit() {
        let round = Duration::from_millis(100);
        let half = 1 << 63;
        let wait = |races| backoff(races, round, half);
        assert_eq!(wait(1), round * BACKOFF_ROUNDS / 2);
        assert_eq!(wait(2), wait(1) * 2);
        assert_eq!(wait(3), wait(2) * 2);
        assert_eq!(wait(4), wait(3));
        assert_eq!(wait(40), wait(3));
        assert_eq!(backoff(1, Duration::from_secs(3600), half), MAX_BACKOFF / 2);
    }

    /// Plays a claim that loses every race, each view taking `round` (fetch and push), with
    /// seeded backoffs; returns the views it took and the time it spent until it gave up.
    fn losing_claim(round: Duration, seed: u64) -> (u32, Duration) {
        let mut spent = Duration::ZERO;
        let mut views = 0;
        loop {
            views += 1;
            spent += round;
            let wanted = backoff(views, round, mix(seed ^ u64::from(views)));
            match next_look(views, spent, wanted) {
                Some(wait) => spent += wait,
                None => return (views, spent),
            }
        }
    }

    #[test]
    fn a_claim_that_keeps_losing_gives_up_within_its_budget() {
        for round in [
            Duration::from_millis(50),
            Duration::from_millis(400),
            Duration::from_secs(2),
            Duration::from_secs(8),
        ] {
            for seed in 0..200 {
                let (views, spent) = losing_claim(round, seed);
                assert!(
                    spent <= CLAIM_BUDGET + round,
                    "{views} views of {round:?} took {spent:?}, over the budget of {CLAIM_BUDGET:?} and one view"
                );
                assert!((1..=MAX_CLAIM_VIEWS).contains(&views), "{views}");
            }
        }
        // Quick rounds still get every view: the budget binds only a slow or stalled remote.
        assert_eq!(
            losing_claim(Duration::from_millis(50), 7).0,
            MAX_CLAIM_VIEWS
        );
    }

    #[test]
    fn a_claim_waits_no_longer_than_what_is_left_of_its_budget() {
        let wanted = Duration::from_secs(20);
        let left = Duration::from_secs(5);
        assert_eq!(
            next_look(3, CLAIM_BUDGET.checked_sub(left).unwrap(), wanted),
            Some(left)
        );
        assert_eq!(next_look(3, CLAIM_BUDGET, wanted), None);
        assert_eq!(next_look(3, CLAIM_BUDGET * 2, wanted), None);
        assert_eq!(next_look(MAX_CLAIM_VIEWS, Duration::ZERO, wanted), None);
        assert_eq!(next_look(1, Duration::ZERO, wanted), Some(wanted));
    }

    #[test]
    fn claims_landed_are_new_claims_of_others_since_the_claim_began() {
        use crate::lease::LeaseEvent;
        let now: jiff::Timestamp = "2026-11-01T12:00:00Z".parse().unwrap();
        let lease = |task: &str, agent: &str, generation: u64, minutes_ago: i64, salt: u8| {
            let at = now
                .checked_sub(SignedDuration::from_mins(minutes_ago))
                .unwrap();
            let record = crate::lease::LeaseRecord {
                task: TaskId::new(task).unwrap(),
                state: LeaseState::Held,
                event: LeaseEvent::Claim,
                generation,
                holder: crate::lease::Holder {
                    agent: agent.to_owned(),
                    ..crate::lease::tests::record().holder
                },
                renewed_at: at,
                ..crate::lease::tests::record()
            };
            let lease = Lease {
                reference: crate::lease::lease_ref(&record.task),
                oid: ObjectId::from_bytes_or_panic(&[salt; 20]),
                record,
            };
            (lease.record.task.clone(), lease)
        };
        let before: BTreeMap<TaskId, (ObjectId, u64)> = [
            lease("held", "other", 1, 1, 1),
            lease("renewed", "other", 1, 1, 2),
            lease("reclaimed", "other", 1, 30, 3),
        ]
        .into_iter()
        .map(|(task, lease)| (task, (lease.oid, lease.record.generation)))
        .collect();
        let now_view: BTreeMap<TaskId, Lease> = [
            lease("held", "other", 1, 1, 1),
            lease("renewed", "other", 1, 0, 12),
            lease("reclaimed", "taker", 2, 0, 13),
            lease("new", "winner", 1, 0, 4),
            lease("mine", "me", 1, 0, 5),
            lease("old", "long-ago", 1, 5, 6),
        ]
        .into_iter()
        .collect();
        let since = now.checked_sub(SignedDuration::from_mins(2)).unwrap();
        assert_eq!(claims_landed(&before, &now_view, "me", since), 2);
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
