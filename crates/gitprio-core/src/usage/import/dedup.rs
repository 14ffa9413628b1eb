//! Deduplication: one record per API request, however many copies the logs hold.
//!
//! Two records stand for one request when their keys are equal. Claude copies also
//! match on the message id alone when either copy is a sidechain (`/btw` sidechains
//! replay parent messages under new request ids) or came from a `stream-json` stream
//! (which has no request id). Of two copies, the non-sidechain one wins, then the one
//! with more tokens (streaming writes intermediate snapshots with 1 or 2 output tokens
//! before the final one), then the one that tells its speed; otherwise the first stays.
//!
//! Summary records (`claude-result:`, `codex-exec:`) stand for a whole session, so they
//! give way to the per-request records of the same session when both are known.
//!
//! Keys are held as 128-bit hashes, not strings: for a million requests two different
//! keys collide with a chance of about n²/2¹²⁹ ≈ 10⁻²⁷, taken as never. Message ids are
//! looked up by hash too, but every match is confirmed on the ids themselves.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use super::state::fnv1a_128;
use crate::usage::UsageRecord;

/// Hashes a `u128` that is already a hash: folds and mixes it, nothing more.
#[derive(Default)]
struct FoldHasher(u64);

impl Hasher for FoldHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u128(&mut self, value: u128) {
        #[expect(clippy::cast_possible_truncation, reason = "folding the halves")]
        let folded = (value as u64) ^ ((value >> 64) as u64);
        let mixed = folded.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = mixed ^ (mixed >> 29);
    }
}

type HashedMap<V> = HashMap<u128, V, BuildHasherDefault<FoldHasher>>;

/// No next slot in a message's chain.
const END: u32 = u32::MAX;

const CLAUDE_PREFIX: &str = "claude:";
const CLAUDE_STREAM_PREFIX: &str = "claude-stream:";
const CLAUDE_RESULT_PREFIX: &str = "claude-result:";
const CODEX_PREFIX: &str = "codex:";
const CODEX_EXEC_PREFIX: &str = "codex-exec:";

/// Returns the message id of a Claude per-request key, and whether it came from a stream.
fn claude_message(key: &str) -> Option<(&str, bool)> {
    let (rest, stream) = if let Some(rest) = key.strip_prefix(CLAUDE_PREFIX) {
        (rest, false)
    } else {
        (key.strip_prefix(CLAUDE_STREAM_PREFIX)?, true)
    };
    let message = rest.split_once(':').map_or(rest, |(message, _)| message);
    Some((message, stream))
}

/// Whether two records with the same Claude message id stand for one request.
fn loose_match(a: &UsageRecord, b: &UsageRecord) -> bool {
    match (claude_message(&a.key), claude_message(&b.key)) {
        (Some((message_a, stream_a)), Some((message_b, stream_b))) => {
            message_a == message_b && (a.sidechain || b.sidechain || stream_a || stream_b)
        }
        _ => false,
    }
}

/// Whether `a` and `b` are copies of one API request.
pub fn same_request(a: &UsageRecord, b: &UsageRecord) -> bool {
    a.key == b.key || loose_match(a, b)
}

/// Whether `candidate` should replace `existing`, its copy.
fn better(candidate: &UsageRecord, existing: &UsageRecord) -> bool {
    if candidate.sidechain != existing.sidechain {
        return existing.sidechain;
    }
    let (candidate_total, existing_total) = (candidate.total_tokens(), existing.total_tokens());
    if candidate_total != existing_total {
        return candidate_total > existing_total;
    }
    candidate.speed.is_some() && existing.speed.is_none()
}

/// The family of per-request records a summary record gives way to, and its session.
fn summary_family(record: &UsageRecord) -> Option<(Family, &str)> {
    let family = if record.key.starts_with(CLAUDE_RESULT_PREFIX) {
        Family::Claude
    } else if record.key.starts_with(CODEX_EXEC_PREFIX) {
        Family::Codex
    } else {
        return None;
    };
    Some((family, record.session.as_deref()?))
}

fn request_family(record: &UsageRecord) -> Option<(Family, &str)> {
    let family = if claude_message(&record.key).is_some() {
        Family::Claude
    } else if record.key.starts_with(CODEX_PREFIX) {
        Family::Codex
    } else {
        return None;
    };
    Some((family, record.session.as_deref()?))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Family {
    Claude,
    Codex,
}

#[derive(Debug)]
struct Slot {
    record: UsageRecord,
    /// Came from `add` (rather than from the records already stored) or replaced one of those.
    changed: bool,
    /// The next slot whose Claude message id has the same hash, or [`END`].
    next_same_message: u32,
}

/// Keeps one record per request, across every file of an import.
#[derive(Debug, Default)]
pub struct Deduper {
    slots: Vec<Slot>,
    /// Key hash → slot; several keys can name one slot (copies matched on the message id).
    by_key: HashedMap<u32>,
    /// Message id hash → the first slot of its chain.
    by_message: HashedMap<u32>,
    duplicates: u64,
}

impl Deduper {
    pub fn new() -> Self {
        Deduper::default()
    }

    /// Starts from records already stored: only what `add` changes is new.
    fn seeded(existing: &[UsageRecord]) -> Self {
        let mut deduper = Deduper::new();
        for record in existing {
            deduper.add_from(record.clone(), false);
        }
        deduper
    }

    /// Copies dropped so far.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Distinct requests so far.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Adds a record: kept if it is a new request or a better copy of a known one. Of
    /// two equally good copies the first added stays, so the order of calls matters.
    pub fn add(&mut self, record: UsageRecord) {
        self.add_from(record, true);
    }

    /// Adds a record, new (`fresh`) or already stored.
    fn add_from(&mut self, record: UsageRecord, fresh: bool) {
        let key_hash = fnv1a_128(record.key.as_bytes());
        if let Some(&index) = self.by_key.get(&key_hash) {
            self.resolve(index as usize, record, fresh);
            return;
        }
        if let Some((message, _)) = claude_message(&record.key) {
            let mut next = self
                .by_message
                .get(&fnv1a_128(message.as_bytes()))
                .copied()
                .unwrap_or(END);
            while next != END {
                let slot = &self.slots[next as usize];
                if loose_match(&slot.record, &record) {
                    self.by_key.insert(key_hash, next);
                    self.resolve(next as usize, record, fresh);
                    return;
                }
                next = slot.next_same_message;
            }
        }
        self.insert(key_hash, record, fresh);
    }

    fn insert(&mut self, key_hash: u128, record: UsageRecord, changed: bool) {
        let index = u32::try_from(self.slots.len()).expect("fewer than 4 billion requests");
        if let Some((message, _)) = claude_message(&record.key) {
            // Appended at the chain's end: matches are tried in the order slots were made.
            let head = self
                .by_message
                .entry(fnv1a_128(message.as_bytes()))
                .or_insert(index);
            if *head != index {
                let mut last = *head as usize;
                while self.slots[last].next_same_message != END {
                    last = self.slots[last].next_same_message as usize;
                }
                self.slots[last].next_same_message = index;
            }
        }
        self.by_key.insert(key_hash, index);
        self.slots.push(Slot {
            record,
            changed,
            next_same_message: END,
        });
    }

    fn resolve(&mut self, index: usize, record: UsageRecord, fresh: bool) {
        self.duplicates += 1;
        let slot = &mut self.slots[index];
        if better(&record, &slot.record) {
            slot.record = record;
            slot.changed |= fresh;
        }
    }

    /// Drops the summary records of sessions whose per-request records are known.
    fn superseded(&self) -> Vec<bool> {
        if !self
            .slots
            .iter()
            .any(|slot| summary_family(&slot.record).is_some())
        {
            return vec![false; self.slots.len()];
        }
        let sessions: HashSet<(Family, &str)> = self
            .slots
            .iter()
            .filter_map(|slot| request_family(&slot.record))
            .collect();
        self.slots
            .iter()
            .map(|slot| summary_family(&slot.record).is_some_and(|key| sessions.contains(&key)))
            .collect()
    }

    fn into_records(self, only_changed: bool) -> (Vec<UsageRecord>, u64) {
        let superseded = self.superseded();
        let mut dropped = 0;
        let mut records: Vec<UsageRecord> = self
            .slots
            .into_iter()
            .zip(superseded)
            .filter_map(|(slot, superseded)| {
                if superseded {
                    dropped += u64::from(slot.changed);
                    return None;
                }
                // A request whose best copy spent nothing is no request (aborted, or an error).
                if slot.record.total_tokens() == 0 {
                    return None;
                }
                (slot.changed || !only_changed).then_some(slot.record)
            })
            .collect();
        sort_by_time(&mut records);
        (records, dropped)
    }

    /// Returns one record per request, by time then key.
    pub fn finish(self) -> Vec<UsageRecord> {
        self.finish_counting().0
    }

    /// Returns the records and every copy dropped, summaries given way included.
    pub(super) fn finish_counting(self) -> (Vec<UsageRecord>, u64) {
        let duplicates = self.duplicates;
        let (records, dropped) = self.into_records(false);
        (records, duplicates + dropped)
    }
}

/// Sorts records by time then key through an index, then puts each record in its place
/// with one swap: records are large, and an import holds many (sorting them directly
/// moves each a dozen times or more; copying them into a new vector doubles the memory).
fn sort_by_time(records: &mut [UsageRecord]) {
    let mut order: Vec<(Option<jiff::Timestamp>, usize)> = records
        .iter()
        .enumerate()
        .map(|(index, record)| (record.at, index))
        .collect();
    order.sort_by(|(left_at, left), (right_at, right)| {
        left_at
            .cmp(right_at)
            .then_with(|| records[*left].key.cmp(&records[*right].key))
    });
    let mut source: Vec<usize> = order.into_iter().map(|(_, index)| index).collect();
    // Each cycle of the permutation is walked once: position `current` takes the record
    // from `source[current]`, and a placed position points at itself.
    for start in 0..source.len() {
        let mut current = start;
        while source[current] != current {
            let next = source[current];
            source[current] = current;
            if next == start {
                break;
            }
            records.swap(current, next);
            current = next;
        }
    }
}

/// Returns the records of `new` that `existing` lacks: new requests, and better copies
/// of known ones (which replace the stored record with the same key, or for which
/// [`same_request`] holds). Importing the same logs twice therefore changes nothing.
pub fn merge(existing: &[UsageRecord], new: Vec<UsageRecord>) -> Vec<UsageRecord> {
    let mut deduper = Deduper::seeded(existing);
    for record in new {
        deduper.add(record);
    }
    deduper.into_records(true).0
}

/// Folds consecutive copies of one record (a streamed message's snapshots) before they
/// reach the [`Deduper`]: the same outcome, with less to hold.
#[derive(Debug, Default)]
pub(super) struct Coalescer {
    last: Option<UsageRecord>,
}

impl Coalescer {
    /// Takes a record; gives back the previous one when this one is another request.
    pub(super) fn push(
        &mut self,
        record: UsageRecord,
        duplicates: &mut u64,
    ) -> Option<UsageRecord> {
        match &mut self.last {
            Some(last) if last.key == record.key => {
                *duplicates += 1;
                if better(&record, last) {
                    *last = record;
                }
                None
            }
            _ => self.last.replace(record),
        }
    }

    pub(super) fn finish(self) -> Option<UsageRecord> {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::Totals;

    #[test]
    fn sorting_through_an_index_orders_by_time_then_key() {
        let mut records: Vec<UsageRecord> = (0..500_u64)
            .map(|number| {
                let scrambled = number.wrapping_mul(7919) % 499;
                UsageRecord {
                    key: format!("k{}", scrambled % 13),
                    at: (scrambled % 5 != 0).then(|| {
                        jiff::Timestamp::from_second(i64::try_from(scrambled % 17).unwrap())
                            .unwrap()
                    }),
                    output: number,
                    ..UsageRecord::default()
                }
            })
            .collect();
        let mut expected = records.clone();
        expected.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.key.cmp(&b.key)));
        sort_by_time(&mut records);
        assert_eq!(records, expected);
    }

    fn claude(message: &str, request: Option<&str>, output: u64, sidechain: bool) -> UsageRecord {
        UsageRecord {
            key: request.map_or_else(
                || format!("claude:{message}"),
                |request| format!("claude:{message}:{request}"),
            ),
            source: "claude".to_owned(),
            session: Some("s".to_owned()),
            model: "claude-sonnet-4-5".to_owned(),
            input: 10,
            output,
            cache_read: 100,
            requests: 1,
            sidechain,
            ..UsageRecord::default()
        }
    }

    fn dedupe(records: Vec<UsageRecord>) -> Vec<UsageRecord> {
        let mut deduper = Deduper::new();
        for record in records {
            deduper.add(record);
        }
        deduper.finish()
    }

    #[test]
    fn keeps_the_largest_streamed_copy() {
        let records = dedupe(vec![
            claude("m1", Some("r1"), 1, false),
            claude("m1", Some("r1"), 2, false),
            claude("m1", Some("r1"), 350, false),
            claude("m1", Some("r1"), 2, false),
        ]);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].output, 350);
    }

    #[test]
    fn prefers_the_main_chain_then_the_copy_with_speed() {
        let mut side = claude("m1", Some("r1"), 900, true);
        side.cache_read = 5000;
        let main = claude("m1", Some("r1"), 10, false);
        let records = dedupe(vec![side.clone(), main.clone()]);
        assert_eq!(records, std::slice::from_ref(&main));
        let mut fast = main.clone();
        fast.speed = Some("fast".to_owned());
        assert_eq!(dedupe(vec![main.clone(), fast.clone()]), [fast.clone()]);
        assert_eq!(dedupe(vec![fast.clone(), main]), [fast]);
    }

    #[test]
    fn sidechain_replays_match_on_the_message_id() {
        let parent = claude("m1", Some("r1"), 10, false);
        let replay = claude("m1", Some("r-replay"), 10, true);
        let mut answer = claude("m2", Some("r2"), 30, true);
        answer.cache_read = 700;
        let records = dedupe(vec![parent.clone(), replay.clone(), answer.clone()]);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].key, "claude:m1:r1");
        let records = dedupe(vec![replay, parent.clone(), parent.clone()]);
        assert_eq!(records, [parent]);
        let main_a = claude("m1", Some("r1"), 10, false);
        let main_b = claude("m1", Some("r2"), 10, false);
        assert_eq!(
            dedupe(vec![main_a, main_b]).len(),
            2,
            "main-chain copies need the same request id"
        );
    }

    #[test]
    fn stream_copies_fold_into_transcript_copies() {
        let transcript = claude("m1", Some("r1"), 10, false);
        let mut stream = claude("m1", None, 10, false);
        stream.key = "claude-stream:m1".to_owned();
        assert_eq!(dedupe(vec![stream.clone(), transcript.clone()]).len(), 1);
        assert_eq!(dedupe(vec![transcript, stream]).len(), 1);
    }

    #[test]
    fn summaries_give_way_to_per_request_records() {
        let mut result = claude("x", None, 500, false);
        result.key = "claude-result:s:claude-sonnet-4-5".to_owned();
        let mut other_session = result.clone();
        other_session.key = "claude-result:t:claude-sonnet-4-5".to_owned();
        other_session.session = Some("t".to_owned());
        let records = dedupe(vec![
            result,
            claude("m1", Some("r1"), 10, false),
            other_session,
        ]);
        let keys: Vec<_> = records.iter().map(|record| record.key.as_str()).collect();
        assert_eq!(keys, ["claude-result:t:claude-sonnet-4-5", "claude:m1:r1"]);
    }

    #[test]
    fn merge_returns_only_what_is_new_or_larger() {
        let stored = vec![
            claude("m1", Some("r1"), 10, false),
            claude("m2", Some("r2"), 20, false),
        ];
        assert!(merge(&stored, stored.clone()).is_empty());
        let new = vec![
            claude("m1", Some("r1"), 5, false),
            claude("m2", Some("r2"), 25, false),
            claude("m2", Some("r-replay"), 40, true),
            claude("m3", None, 1, false),
        ];
        let merged = merge(&stored, new);
        let outputs: Vec<_> = merged
            .iter()
            .map(|record| (record.key.as_str(), record.output))
            .collect();
        assert_eq!(outputs, [("claude:m2:r2", 25), ("claude:m3", 1)]);
        let mut all = stored;
        all.extend(merged);
        assert!(merge(&all, all.clone()).is_empty());
    }

    #[test]
    fn orders_by_time_then_key() {
        let mut late = claude("a", Some("r"), 1, false);
        late.at = Some("2025-02-01T00:00:00Z".parse().unwrap());
        let mut early = claude("b", Some("r"), 1, false);
        early.at = Some("2025-01-01T00:00:00Z".parse().unwrap());
        let records = dedupe(vec![late, early, claude("c", Some("r"), 1, false)]);
        let keys: Vec<_> = records.iter().map(|record| record.key.as_str()).collect();
        assert_eq!(keys, ["claude:c:r", "claude:b:r", "claude:a:r"]);
    }

    #[test]
    fn coalescing_then_deduplicating_equals_deduplicating() {
        let input = vec![
            claude("m1", Some("r1"), 1, false),
            claude("m1", Some("r1"), 2, false),
            claude("m1", Some("r1"), 50, false),
            claude("m1", Some("r9"), 50, true),
            claude("m2", Some("r2"), 7, false),
            claude("m2", Some("r2"), 7, false),
        ];
        let mut coalescer = Coalescer::default();
        let mut duplicates = 0;
        let mut deduper = Deduper::new();
        for record in input.clone() {
            if let Some(record) = coalescer.push(record, &mut duplicates) {
                deduper.add(record);
            }
        }
        deduper.add(coalescer.finish().unwrap());
        assert_eq!(duplicates + deduper.duplicates(), 4);
        let totals: Totals = deduper.finish().iter().collect();
        let expected: Totals = dedupe(input).iter().collect();
        assert_eq!(totals, expected);
        assert_eq!((totals.output, totals.requests), (57, 2));
    }
}
