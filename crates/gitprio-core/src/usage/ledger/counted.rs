//! What a reader of the ledger counts, so that one API request counts once whatever
//! wrote it and however the writes interleaved.
//!
//! - **A session's log replaces what `gitprio run` read from its output.** When `gitprio
//!   run` cannot see an agent CLI's own log of the session, it records the usage the CLI's
//!   output reports (keys `run:<run>:<adapter>:<model>`, filed by `usage record` as
//!   `manual:run:...`), one cumulative record per model, with the session the output
//!   named. A later `usage import` of that session's log brings the same requests one by
//!   one under their own keys. The ledger is append-only, so readers drop the run's
//!   output-derived records of a session once the run holds records read from that
//!   session's log: the log's per-request records are the finer and the final ones.
//!   Output-derived records written before they carried a session are counted as before,
//!   and named by [`overlaps`] when log-read records of their model sit beside them.
//! - **A request counts once across runs.** `usage import` gives a request the ledger
//!   already holds to the run that holds it, but that is a read before a write to another
//!   ref: two imports at once (two clones, two `--task`) can both take it. Readers keep
//!   each key in one run: the one whose chunk holding it was committed first (ledger
//!   time), ties to the first run in (start, task, generation) order, so every reader
//!   settles the same way.
//! - **Hand-recorded beside log-read usage** (`usage record`, MCP `report_usage`, and a
//!   `gitprio run` output record without a session, beside records read from the CLI's
//!   log) of one model, in one run, overlapping in time: both count, since nothing says
//!   they are the same requests; [`overlaps`] finds them for a warning.

use rustc_hash::{FxHashMap, FxHashSet};

use super::super::{Run, UsageRecord};

/// Whether `record` is what `gitprio run` read from an agent's output or usage file for
/// its run (`run:<run>:...`, filed by `usage record` as `manual:run:<run>:...`).
pub fn output_derived(record: &UsageRecord) -> bool {
    record
        .key
        .strip_prefix("manual:")
        .unwrap_or(&record.key)
        .starts_with("run:")
}

/// Whether `record` was read from an agent CLI's own log (by `usage import`, or by
/// `gitprio run` following it).
pub fn log_read(record: &UsageRecord) -> bool {
    record.source != "manual" && !output_derived(record)
}

/// One request recorded by hand, as the ledger's cache of each chunk's keeps it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HandEntry(String, Option<jiff::Timestamp>, u64);

impl HandEntry {
    /// A record standing for it: its model, time and tokens (as output), keyed as by hand.
    pub fn record(&self) -> UsageRecord {
        UsageRecord {
            key: "manual:".to_owned(),
            source: "manual".to_owned(),
            model: self.0.clone(),
            at: self.1,
            output: self.2,
            ..UsageRecord::default()
        }
    }
}

/// The requests among `records` that were recorded by hand (not read from a log), but
/// for output records that name their session ([`supersede`] replaces those).
pub(super) fn hand_entries<'r>(records: impl Iterator<Item = &'r UsageRecord>) -> Vec<HandEntry> {
    records
        // An output record naming its session stands for that session's log: replaced, not beside.
        .filter(|record| {
            let replaced = output_derived(record) && record.session.is_some();
            !log_read(record) && !replaced && record.total_tokens() > 0
        })
        .map(|record| HandEntry(record.model.clone(), record.at, record.total_tokens()))
        .collect()
}

/// Drops the output-derived records of each session whose log-read records `records` hold.
pub(super) fn supersede(records: &mut Vec<UsageRecord>) {
    let sessions: FxHashSet<String> = records
        .iter()
        .filter(|record| log_read(record))
        .filter_map(|record| record.session.clone())
        .collect();
    if sessions.is_empty() {
        return;
    }
    records.retain(|record| {
        !(output_derived(record)
            && record
                .session
                .as_ref()
                .is_some_and(|session| sessions.contains(session)))
    });
}

/// Hand-recorded usage beside log-read usage of the same model in one run: the model, the
/// hand-recorded tokens and the log-read tokens. A hand record overlaps when its time lies
/// between the first log-read request of its model and the run's end (or the last of
/// those requests, if later; no end while the run is open): it may stand for some of them.
pub fn overlaps(run: &Run) -> Vec<(String, u64, u64)> {
    let mut spans: FxHashMap<&str, (jiff::Timestamp, jiff::Timestamp, u64)> = FxHashMap::default();
    for record in run.records.iter().filter(|record| log_read(record)) {
        let Some(at) = record.at else { continue };
        let span = spans.entry(record.model.as_str()).or_insert((at, at, 0));
        span.0 = span.0.min(at);
        span.1 = span.1.max(at);
        span.2 += record.total_tokens();
    }
    let mut hand: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for record in run.records.iter().filter(|record| !log_read(record)) {
        let Some(&(first, last, _)) = spans.get(record.model.as_str()) else {
            continue;
        };
        // An open run's end is not known yet: any later hand record may be of its requests.
        let end = run
            .meta
            .ended_at
            .map_or(jiff::Timestamp::MAX, |ended| ended.max(last));
        if record.at.is_none_or(|at| at >= first && at <= end) && record.total_tokens() > 0 {
            *hand.entry(record.model.as_str()).or_default() += record.total_tokens();
        }
    }
    hand.into_iter()
        .map(|(model, tokens)| (model.to_owned(), tokens, spans[model].2))
        .collect()
}

/// The keys held by more than one of `runs`, each with the runs (by index) that hold it.
///
/// Only runs whose records' time spans overlap another run's (or that hold undated
/// records) can share a request, so only their keys are gathered: a ledger of runs one
/// after another costs a pass over the spans and no map.
pub(super) fn shared_keys(runs: &[Run]) -> Vec<(String, Vec<usize>)> {
    let mut spans: Vec<(usize, Option<(jiff::Timestamp, jiff::Timestamp)>)> = Vec::new();
    for (index, run) in runs.iter().enumerate() {
        if run.records.is_empty() {
            continue;
        }
        let mut span: Option<(jiff::Timestamp, jiff::Timestamp)> = None;
        let mut undated = false;
        for record in &run.records {
            match record.at {
                Some(at) => {
                    span =
                        Some(span.map_or((at, at), |(first, last)| (first.min(at), last.max(at))));
                }
                None => undated = true,
            }
        }
        spans.push((index, if undated { None } else { span }));
    }
    let mut candidates: FxHashSet<usize> = FxHashSet::default();
    let undated: Vec<usize> = spans
        .iter()
        .filter(|(_, span)| span.is_none())
        .map(|(index, _)| *index)
        .collect();
    let mut dated: Vec<(jiff::Timestamp, jiff::Timestamp, usize)> = spans
        .iter()
        .filter_map(|(index, span)| span.map(|(first, last)| (first, last, *index)))
        .collect();
    dated.sort_unstable();
    // A sweep by start: a run overlaps an earlier one when it starts before the latest end so far.
    let mut reach: Option<(jiff::Timestamp, usize)> = None;
    for &(first, last, index) in &dated {
        if let Some((end, owner)) = reach
            && first <= end
        {
            candidates.insert(owner);
            candidates.insert(index);
        }
        if reach.is_none_or(|(end, _)| last > end) {
            reach = Some((last, index));
        }
    }
    if !undated.is_empty() && spans.len() > 1 {
        candidates.extend(spans.iter().map(|(index, _)| *index));
    }
    if candidates.len() < 2 {
        return Vec::new();
    }
    let mut candidates: Vec<usize> = candidates.into_iter().collect();
    candidates.sort_unstable();
    let mut first_holder: FxHashMap<&str, usize> = FxHashMap::default();
    let mut shared: FxHashMap<&str, Vec<usize>> = FxHashMap::default();
    for &index in &candidates {
        for record in &runs[index].records {
            match first_holder.entry(record.key.as_str()) {
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(index);
                }
                std::collections::hash_map::Entry::Occupied(slot) if *slot.get() != index => {
                    let holders = shared
                        .entry(record.key.as_str())
                        .or_insert_with(|| vec![*slot.get()]);
                    if !holders.contains(&index) {
                        holders.push(index);
                    }
                }
                std::collections::hash_map::Entry::Occupied(_) => {}
            }
        }
    }
    let mut shared: Vec<(String, Vec<usize>)> = shared
        .into_iter()
        .map(|(key, holders)| (key.to_owned(), holders))
        .collect();
    shared.sort_unstable();
    shared
}

/// Keeps each shared key in one run: the holder `first_written` says wrote it first (its
/// ledger time; `None` sorts last), ties to the holder listed first.
pub(super) fn count_once(
    runs: &mut [Run],
    shared: &[(String, Vec<usize>)],
    first_written: impl Fn(&str, usize) -> Option<i64>,
) {
    let mut dropped: FxHashMap<usize, FxHashSet<&str>> = FxHashMap::default();
    for (key, holders) in shared {
        let winner = holders
            .iter()
            .copied()
            .min_by_key(|&holder| (first_written(key, holder).unwrap_or(i64::MAX), holder))
            .expect("a shared key has holders");
        for &holder in holders.iter().filter(|&&holder| holder != winner) {
            dropped.entry(holder).or_default().insert(key.as_str());
        }
    }
    for (holder, keys) in dropped {
        runs[holder]
            .records
            .retain(|record| !keys.contains(record.key.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::run_meta;
    use super::*;

    fn record(key: &str, source: &str, session: Option<&str>, at: &str) -> UsageRecord {
        UsageRecord {
            key: key.to_owned(),
            source: source.to_owned(),
            session: session.map(str::to_owned),
            model: "claude-sonnet-4-5".to_owned(),
            at: Some(at.parse().unwrap()),
            output: 1000,
            requests: 1,
            ..UsageRecord::default()
        }
    }

    #[test]
    fn a_sessions_log_replaces_the_runs_output_records_of_that_session_only() {
        let mut records = vec![
            record(
                "manual:run:1-x:claude:claude-sonnet-4-5",
                "manual",
                Some("s1"),
                "2026-11-01T10:05:00Z",
            ),
            record(
                "manual:run:1-x:codex:gpt-5",
                "manual",
                Some("s2"),
                "2026-11-01T10:05:00Z",
            ),
            record(
                "manual:run:1-x:claude:claude-haiku-4-5",
                "manual",
                None,
                "2026-11-01T10:05:00Z",
            ),
            record("manual:hand", "manual", Some("s1"), "2026-11-01T10:04:00Z"),
            record("claude:m1:r1", "claude", Some("s1"), "2026-11-01T10:01:00Z"),
        ];
        supersede(&mut records);
        let keys: Vec<&str> = records.iter().map(|record| record.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "manual:run:1-x:codex:gpt-5",
                "manual:run:1-x:claude:claude-haiku-4-5",
                "manual:hand",
                "claude:m1:r1"
            ]
        );
    }

    #[test]
    fn hand_recorded_usage_beside_log_read_usage_of_its_model_and_time_is_found() {
        let now: jiff::Timestamp = "2026-11-01T10:00:00Z".parse().unwrap();
        let run = Run {
            meta: super::super::RunMeta {
                ended_at: Some("2026-11-01T11:00:00Z".parse().unwrap()),
                ..run_meta(now)
            },
            records: vec![
                record("claude:m1:r1", "claude", Some("s1"), "2026-11-01T10:01:00Z"),
                record("manual:hand", "manual", None, "2026-11-01T10:30:00Z"),
                // Before the model's first log-read request: not the same requests.
                record("manual:early", "manual", None, "2026-11-01T10:00:30Z"),
            ],
        };
        assert_eq!(
            overlaps(&run),
            [("claude-sonnet-4-5".to_owned(), 1000, 1000)]
        );
    }

    #[test]
    fn a_key_in_two_overlapping_runs_stays_with_the_first_written() {
        let now: jiff::Timestamp = "2026-11-01T10:00:00Z".parse().unwrap();
        let run = |records: Vec<UsageRecord>| Run {
            meta: run_meta(now),
            records,
        };
        let mut runs = vec![
            run(vec![record("k", "claude", None, "2026-11-01T10:01:00Z")]),
            run(vec![
                record("k", "claude", None, "2026-11-01T10:01:00Z"),
                record("j", "claude", None, "2026-11-01T10:02:00Z"),
            ]),
            // Apart in time: never read into the map.
            run(vec![record("k", "claude", None, "2026-11-02T10:01:00Z")]),
        ];
        let shared = shared_keys(&runs);
        assert_eq!(shared, [("k".to_owned(), vec![0, 1])]);
        count_once(&mut runs, &shared, |_, holder| {
            Some(if holder == 1 { 5 } else { 9 })
        });
        assert!(runs[0].records.is_empty());
        assert_eq!(runs[1].records.len(), 2);
        let mut tied = vec![
            run(vec![record("k", "claude", None, "2026-11-01T10:01:00Z")]),
            run(vec![record("k", "claude", None, "2026-11-01T10:01:00Z")]),
        ];
        let shared = shared_keys(&tied);
        count_once(&mut tied, &shared, |_, _| Some(7));
        assert_eq!((tied[0].records.len(), tied[1].records.len()), (1, 0));
    }
}
