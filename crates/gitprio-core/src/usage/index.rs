//! A local index of the keys a run's ledger chunks hold, so a write appends only what is
//! new without reading the run's records back: one (key hash, tokens) entry per request.
//!
//! It lives in `.git/gitprio/usage-index/<task>/<run>.bin` and is only a cache: it names
//! the chunks it covers, chunks it does not cover are read and added, and an index that
//! names a chunk the ledger lacks (a lost race, a rewritten ref) is rebuilt.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use gix::ObjectId;
use serde::{Deserialize, Serialize};

use super::import::fnv1a;
use super::{Totals, UsageRecord};

const VERSION: u32 = 1;
/// Bytes per entry: the key's hash, then the record's seven counters.
const ENTRY_BYTES: usize = 8 * 8;

#[derive(Serialize, Deserialize)]
struct Header {
    version: u32,
    chunks: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    input: u64,
    output: u64,
    cache_write_5m: u64,
    cache_write_1h: u64,
    cache_read: u64,
    reasoning: u64,
    requests: u64,
}

impl Entry {
    fn of(record: &UsageRecord) -> Entry {
        Entry {
            input: record.input,
            output: record.output,
            cache_write_5m: record.cache_write_5m,
            cache_write_1h: record.cache_write_1h,
            cache_read: record.cache_read,
            reasoning: record.reasoning,
            requests: u64::from(record.requests),
        }
    }

    fn tokens(&self) -> u64 {
        self.input + self.output + self.cache_write_5m + self.cache_write_1h + self.cache_read
    }

    fn fields(&self) -> [u64; 7] {
        [
            self.input,
            self.output,
            self.cache_write_5m,
            self.cache_write_1h,
            self.cache_read,
            self.reasoning,
            self.requests,
        ]
    }
}

/// The keys of one run's records, and the chunks they were read from.
#[derive(Debug, Default)]
pub(super) struct KeyIndex {
    chunks: Vec<ObjectId>,
    covered: HashSet<ObjectId>,
    entries: HashMap<u64, Entry>,
}

impl KeyIndex {
    /// Loads the index at `path` if it covers only chunks in `chunks`; else an empty one.
    pub(super) fn load(path: &Path, chunks: &[ObjectId]) -> KeyIndex {
        let Ok(bytes) = std::fs::read(path) else {
            return KeyIndex::default();
        };
        Self::parse(&bytes, chunks).unwrap_or_default()
    }

    fn parse(bytes: &[u8], chunks: &[ObjectId]) -> Option<KeyIndex> {
        let newline = memchr::memchr(b'\n', bytes)?;
        let header: Header = serde_json::from_slice(&bytes[..newline]).ok()?;
        if header.version != VERSION {
            return None;
        }
        let in_tree: HashSet<&ObjectId> = chunks.iter().collect();
        let mut index = KeyIndex::default();
        for hex in &header.chunks {
            let id = ObjectId::from_hex(hex.as_bytes()).ok()?;
            if !in_tree.contains(&id) {
                return None;
            }
            index.covered.insert(id);
            index.chunks.push(id);
        }
        let body = &bytes[newline + 1..];
        if !body.len().is_multiple_of(ENTRY_BYTES) {
            return None;
        }
        index.entries.reserve(body.len() / ENTRY_BYTES);
        for entry in body.chunks_exact(ENTRY_BYTES) {
            let mut numbers = entry
                .chunks_exact(8)
                .map(|bytes| u64::from_le_bytes(bytes.try_into().expect("8 bytes")));
            let mut next = || numbers.next().expect("8 numbers");
            let hash = next();
            index.entries.insert(
                hash,
                Entry {
                    input: next(),
                    output: next(),
                    cache_write_5m: next(),
                    cache_write_1h: next(),
                    cache_read: next(),
                    reasoning: next(),
                    requests: next(),
                },
            );
        }
        Some(index)
    }

    pub(super) fn covers(&self, chunk: &ObjectId) -> bool {
        self.covered.contains(chunk)
    }

    /// Adds the records of `chunk`: a key's larger copy wins.
    pub(super) fn absorb<'r>(
        &mut self,
        chunk: ObjectId,
        records: impl IntoIterator<Item = &'r UsageRecord>,
    ) {
        for record in records {
            if self.is_new(record) {
                self.entries
                    .insert(fnv1a(record.key.as_bytes()), Entry::of(record));
            }
        }
        if self.covered.insert(chunk) {
            self.chunks.push(chunk);
        }
    }

    /// Whether `record` is a request the run lacks, or a larger copy of one it has.
    pub(super) fn is_new(&self, record: &UsageRecord) -> bool {
        self.entries
            .get(&fnv1a(record.key.as_bytes()))
            .is_none_or(|known| record.total_tokens() > known.tokens())
    }

    pub(super) fn totals(&self) -> Totals {
        let mut totals = Totals::default();
        for entry in self.entries.values() {
            totals.input += entry.input;
            totals.output += entry.output;
            totals.cache_write_5m += entry.cache_write_5m;
            totals.cache_write_1h += entry.cache_write_1h;
            totals.cache_read += entry.cache_read;
            totals.reasoning += entry.reasoning;
            totals.requests += entry.requests;
        }
        totals
    }

    /// Saves the index; a failure only costs the next write a rebuild.
    pub(super) fn save(&self, path: &Path) {
        let header = Header {
            version: VERSION,
            chunks: self.chunks.iter().map(ToString::to_string).collect(),
        };
        let mut bytes = serde_json::to_vec(&header).expect("index header serializes");
        bytes.push(b'\n');
        bytes.reserve(self.entries.len() * ENTRY_BYTES);
        for (hash, entry) in &self.entries {
            bytes.extend_from_slice(&hash.to_le_bytes());
            for field in entry.fields() {
                bytes.extend_from_slice(&field.to_le_bytes());
            }
        }
        let _ = super::outbox::write_atomically(path, &bytes);
    }
}
