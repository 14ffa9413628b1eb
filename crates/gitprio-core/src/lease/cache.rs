//! The local cache of lease records, by the id of the commit each was read from.
//!
//! Every claim reads every lease; at thousands of lease refs, decoding a JSON cache of
//! them cost a claim more than its push (issue 18, `docs/BENCHMARKS.md`). This cache is a
//! compact binary file: integers, timestamps as seconds and nanoseconds, length-prefixed
//! strings, and a checksum over it all. A commit never changes, so a cached record is
//! the record; a file that is truncated, garbled, of another version or fails its
//! checksum is ignored whole and the records are read from their commits again.

use std::collections::BTreeMap;
use std::hash::Hasher;
use std::path::Path;

use gix::ObjectId;
use jiff::Timestamp;
use rustc_hash::{FxBuildHasher, FxHashMap, FxHasher};

use super::{Holder, LeaseEvent, LeaseRecord, LeaseState, Progress};
use crate::task::TaskId;

/// The file's first bytes; the number is bumped whenever [`LeaseRecord`] or the layout
/// changes, so an older cache is never decoded as this one.
const MAGIC: &[u8] = b"gitprio lease cache 4\n";

/// The file name under `<common git dir>/gitprio/cache/`.
pub(super) const FILE: &str = "leases.bin";

/// The JSON cache earlier versions wrote; removed when this one is saved.
pub(super) const OLD_FILE: &str = "leases.json";

const STATES: [LeaseState; 4] = [
    LeaseState::Held,
    LeaseState::Released,
    LeaseState::Submitted,
    LeaseState::Parked,
];

const EVENTS: [LeaseEvent; 9] = [
    LeaseEvent::Claim,
    LeaseEvent::Renew,
    LeaseEvent::Reclaim,
    LeaseEvent::Release,
    LeaseEvent::Fail,
    LeaseEvent::Submit,
    LeaseEvent::Park,
    LeaseEvent::Unpark,
    LeaseEvent::Revoke,
];

/// Lease records by the id of the commit they were read from.
#[derive(Debug, Default)]
pub(super) struct RecordCache {
    /// In the order saved, which is the order of the lease refs: a record is taken once.
    records: Vec<(ObjectId, Option<LeaseRecord>)>,
    /// Where each commit's record is in `records`.
    index: FxHashMap<ObjectId, usize>,
    /// Records not taken yet.
    left: usize,
}

impl RecordCache {
    /// How many records read from their commits, or cached for commits no ref names any
    /// more, make [`super::LeaseStore::leases`] write the cache again.
    pub(super) const STALE_BEFORE_SAVE: usize = 16;

    /// The cache at `path`; empty when there is none or it cannot be trusted.
    pub(super) fn load(path: &Path) -> RecordCache {
        let records = std::fs::read(path)
            .ok()
            .and_then(|bytes| decode(&bytes))
            .unwrap_or_default();
        let mut index = FxHashMap::with_capacity_and_hasher(records.len(), FxBuildHasher);
        for (position, (oid, _)) in records.iter().enumerate() {
            index.insert(*oid, position);
        }
        RecordCache {
            left: records.len(),
            records,
            index,
        }
    }

    /// Takes the record of commit `oid` out of the cache, if it holds one.
    pub(super) fn take(&mut self, oid: &ObjectId) -> Option<LeaseRecord> {
        let position = *self.index.get(oid)?;
        let record = self.records[position].1.take()?;
        self.left -= 1;
        Some(record)
    }

    /// How many records were not taken: cached for commits no ref names any more.
    pub(super) fn left(&self) -> usize {
        self.left
    }

    /// Writes `records` to `path` through a temporary file; a failure only loses the speed-up.
    pub(super) fn save<'a>(
        path: &Path,
        records: impl Iterator<Item = (ObjectId, &'a LeaseRecord)>,
    ) {
        let Some(directory) = path.parent() else {
            return;
        };
        let temporary = path.with_extension(format!("tmp.{}", std::process::id()));
        let written = std::fs::create_dir_all(directory)
            .and_then(|()| std::fs::write(&temporary, encode(records)))
            .and_then(|()| std::fs::rename(&temporary, path));
        if written.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        let _ = std::fs::remove_file(directory.join(OLD_FILE));
    }
}

fn checksum(bytes: &[u8]) -> u64 {
    let mut hasher = FxHasher::default();
    hasher.write(bytes);
    hasher.finish()
}

fn encode<'a>(records: impl Iterator<Item = (ObjectId, &'a LeaseRecord)>) -> Vec<u8> {
    let mut out = Writer(MAGIC.to_vec());
    // Room for the count, written once known.
    out.u32(0);
    let mut count = 0u32;
    for (oid, record) in records {
        count += 1;
        out.bytes(oid.as_bytes());
        out.record(record);
    }
    out.0[MAGIC.len()..MAGIC.len() + 4].copy_from_slice(&count.to_le_bytes());
    let sum = checksum(&out.0[MAGIC.len()..]);
    out.0.extend_from_slice(&sum.to_le_bytes());
    out.0
}

/// The records in `bytes`, or `None` when anything about them is off.
fn decode(bytes: &[u8]) -> Option<Vec<(ObjectId, Option<LeaseRecord>)>> {
    let body = bytes.strip_prefix(MAGIC)?;
    let (body, sum) = body.split_at_checked(body.len().checked_sub(8)?)?;
    if checksum(body) != u64::from_le_bytes(sum.try_into().ok()?) {
        return None;
    }
    let mut reader = Reader(body);
    let count = usize::try_from(reader.u32()?).ok()?;
    // Every record takes well over 64 bytes: a count past that is damage, not a size to allocate.
    if count > body.len() / 64 {
        return None;
    }
    let mut records = Vec::with_capacity(count);
    while !reader.0.is_empty() {
        let oid = ObjectId::try_from(reader.bytes()?).ok()?;
        records.push((oid, Some(reader.record()?)));
    }
    (records.len() == count).then_some(records)
}

struct Writer(Vec<u8>);

impl Writer {
    fn u64(&mut self, value: u64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    fn u32(&mut self, value: u32) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    fn bytes(&mut self, value: &[u8]) {
        self.u32(u32::try_from(value.len()).unwrap_or(u32::MAX));
        self.0.extend_from_slice(value);
    }

    fn string(&mut self, value: &str) {
        self.bytes(value.as_bytes());
    }

    fn optional(&mut self, value: Option<&str>) {
        match value {
            Some(value) => {
                self.0.push(1);
                self.string(value);
            }
            None => self.0.push(0),
        }
    }

    fn timestamp(&mut self, value: Timestamp) {
        self.0.extend_from_slice(&value.as_second().to_le_bytes());
        self.0
            .extend_from_slice(&value.subsec_nanosecond().to_le_bytes());
    }

    fn index<T: PartialEq>(&mut self, all: &[T], value: &T) {
        let index = all.iter().position(|each| each == value).unwrap_or(0);
        self.0.push(u8::try_from(index).unwrap_or(0));
    }

    fn record(&mut self, record: &LeaseRecord) {
        self.string(record.task.as_str());
        self.index(&STATES, &record.state);
        self.index(&EVENTS, &record.event);
        self.u64(record.generation);
        self.u32(record.attempt);
        self.u32(record.failures);
        let holder = &record.holder;
        self.string(&holder.agent);
        self.string(&holder.host);
        self.u32(holder.pid);
        self.optional(holder.worktree.as_deref());
        self.optional(holder.branch.as_deref());
        self.optional(holder.session.as_deref());
        self.extra(&holder.extra);
        self.optional(record.task_blob.as_deref());
        self.optional(record.base_commit.as_deref());
        self.timestamp(record.acquired_at);
        self.timestamp(record.renewed_at);
        self.timestamp(record.expires_at);
        self.u64(record.ttl_seconds);
        self.optional(record.reason.as_deref());
        self.optional(record.last_error.as_deref());
        match &record.progress {
            Some(progress) => {
                self.0.push(1);
                self.u64(progress.tokens);
                match progress.cost_usd {
                    Some(cost) => {
                        self.0.push(1);
                        self.u64(cost.to_bits());
                    }
                    None => self.0.push(0),
                }
                self.timestamp(progress.at);
                self.extra(&progress.extra);
            }
            None => self.0.push(0),
        }
        self.string(&record.nonce);
        self.extra(&record.extra);
    }

    /// Fields a newer gitprio wrote: rare, so kept as the JSON they came in, empty when none.
    fn extra(&mut self, extra: &BTreeMap<String, serde_json::Value>) {
        if extra.is_empty() {
            self.string("");
        } else {
            self.string(&serde_json::to_string(extra).unwrap_or_default());
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        let (taken, rest) = self.0.split_at_checked(count)?;
        self.0 = rest;
        Some(taken)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let length = usize::try_from(self.u32()?).ok()?;
        self.take(length)
    }

    fn string(&mut self) -> Option<String> {
        std::str::from_utf8(self.bytes()?).ok().map(str::to_owned)
    }

    fn flag(&mut self) -> Option<bool> {
        match self.u8()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }

    /// `None`: the bytes are damaged; `Some(None)`: the field was absent.
    #[allow(clippy::option_option)]
    fn optional(&mut self) -> Option<Option<String>> {
        if self.flag()? {
            Some(Some(self.string()?))
        } else {
            Some(None)
        }
    }

    fn timestamp(&mut self) -> Option<Timestamp> {
        let seconds = i64::from_le_bytes(self.take(8)?.try_into().ok()?);
        let nanoseconds = i32::from_le_bytes(self.take(4)?.try_into().ok()?);
        Timestamp::new(seconds, nanoseconds).ok()
    }

    fn index<T: Copy>(&mut self, all: &[T]) -> Option<T> {
        all.get(usize::from(self.u8()?)).copied()
    }

    fn extra(&mut self) -> Option<BTreeMap<String, serde_json::Value>> {
        match self.bytes()? {
            [] => Some(BTreeMap::new()),
            json => serde_json::from_slice(json).ok(),
        }
    }

    fn record(&mut self) -> Option<LeaseRecord> {
        Some(LeaseRecord {
            task: TaskId::new(std::str::from_utf8(self.bytes()?).ok()?)?,
            state: self.index(&STATES)?,
            event: self.index(&EVENTS)?,
            generation: self.u64()?,
            attempt: self.u32()?,
            failures: self.u32()?,
            holder: Holder {
                agent: self.string()?,
                host: self.string()?,
                pid: self.u32()?,
                worktree: self.optional()?,
                branch: self.optional()?,
                session: self.optional()?,
                extra: self.extra()?,
            },
            task_blob: self.optional()?,
            base_commit: self.optional()?,
            acquired_at: self.timestamp()?,
            renewed_at: self.timestamp()?,
            expires_at: self.timestamp()?,
            ttl_seconds: self.u64()?,
            reason: self.optional()?,
            last_error: self.optional()?,
            progress: if self.flag()? {
                Some(Progress {
                    tokens: self.u64()?,
                    cost_usd: if self.flag()? {
                        Some(f64::from_bits(self.u64()?))
                    } else {
                        None
                    },
                    at: self.timestamp()?,
                    extra: self.extra()?,
                })
            } else {
                None
            },
            nonce: self.string()?,
            extra: self.extra()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(task: &str, progress: Option<Progress>) -> LeaseRecord {
        let at = Timestamp::new(1_700_000_000, 123_456_789).unwrap();
        LeaseRecord {
            task: TaskId::new(task).unwrap(),
            state: LeaseState::Submitted,
            event: LeaseEvent::Revoke,
            generation: 7,
            attempt: 3,
            failures: 2,
            holder: Holder {
                agent: "agent-ü".to_owned(),
                host: "host".to_owned(),
                pid: 42,
                worktree: Some("/w".to_owned()),
                branch: None,
                session: Some("s".to_owned()),
                extra: BTreeMap::new(),
            },
            task_blob: Some("abc".to_owned()),
            base_commit: None,
            acquired_at: at,
            renewed_at: at,
            expires_at: Timestamp::new(-5, 0).unwrap(),
            ttl_seconds: 900,
            reason: Some("why".to_owned()),
            last_error: None,
            progress,
            nonce: "n0".to_owned(),
            extra: BTreeMap::new(),
        }
    }

    fn sample() -> Vec<(ObjectId, LeaseRecord)> {
        let progress = Progress {
            tokens: 5,
            cost_usd: Some(0.25),
            at: Timestamp::new(1_700_000_001, 0).unwrap(),
            extra: BTreeMap::new(),
        };
        // A newer gitprio's fields, at the top and inside the holder and progress.
        let mut newer = LeaseRecord {
            extra: BTreeMap::from([(
                "checkpoint".to_owned(),
                serde_json::json!({"step": 3, "files": ["a.rs"]}),
            )]),
            ..record(
                "t3",
                Some(Progress {
                    extra: BTreeMap::from([("context_tokens".to_owned(), serde_json::json!(9))]),
                    ..progress.clone()
                }),
            )
        };
        newer.holder.extra = BTreeMap::from([("model".to_owned(), serde_json::json!("m-9"))]);
        vec![
            (ObjectId::from_hex(&[b'1'; 40]).unwrap(), record("t1", None)),
            (
                ObjectId::from_hex(&[b'2'; 40]).unwrap(),
                record("t2", Some(progress)),
            ),
            (ObjectId::from_hex(&[b'3'; 40]).unwrap(), newer),
        ]
    }

    #[test]
    fn round_trips_every_field() {
        let records = sample();
        let bytes = encode(records.iter().map(|(oid, record)| (*oid, record)));
        let decoded = decode(&bytes).unwrap();
        let expected: Vec<_> = records
            .iter()
            .map(|(oid, record)| (*oid, Some(record.clone())))
            .collect();
        assert_eq!(decoded, expected);
    }

    #[test]
    fn a_damaged_or_old_cache_is_not_trusted() {
        let records = sample();
        let bytes = encode(records.iter().map(|(oid, record)| (*oid, record)));
        // Every truncation and every single flipped byte is refused, never half read.
        for length in 0..bytes.len() {
            assert_eq!(decode(&bytes[..length]), None, "truncated to {length}");
        }
        for index in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[index] ^= 0x20;
            assert_eq!(decode(&damaged), None, "byte {index} flipped");
        }
        assert_eq!(decode(br#"{"version":1,"records":{}}"#), None);
        let mut older = bytes.clone();
        older[MAGIC.len() - 2] = b'1';
        assert_eq!(decode(&older), None);
    }

    #[test]
    fn a_cache_that_cannot_be_read_loads_empty() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join(FILE);
        std::fs::write(&path, b"gitprio lease cache 4\ngarbage").unwrap();
        assert_eq!(RecordCache::load(&path).left(), 0);
        let records = sample();
        std::fs::write(directory.path().join(OLD_FILE), b"{}").unwrap();
        RecordCache::save(&path, records.iter().map(|(oid, record)| (*oid, record)));
        let mut cache = RecordCache::load(&path);
        assert_eq!(cache.left(), 3);
        assert_eq!(cache.take(&records[1].0).as_ref(), Some(&records[1].1));
        assert_eq!(cache.take(&records[1].0), None);
        assert_eq!(cache.left(), 2);
        assert!(!directory.path().join(OLD_FILE).exists());
    }
}
