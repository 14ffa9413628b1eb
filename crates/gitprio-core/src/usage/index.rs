//! A local index of the keys a run's ledger chunks hold, so a write appends only what is
//! new without reading the run's records back: one (key hash, counters) entry per request.
//!
//! It lives in `.git/gitprio/usage-index/<task>/<run>.idx` and is only a cache: it names
//! the chunks it covers, chunks it does not cover are read and added, and an index that
//! names a chunk the ledger lacks (a lost race, a rewritten ref) is rebuilt.
//!
//! The file is append-only, like the ledger: each write adds a section (the chunks it
//! covers, what it changed in the run's totals, its entries sorted by key hash), so a
//! write costs what it adds, not the size of the run. A lookup binary-searches each
//! section; past [`MAX_SECTIONS`] the sections are merged into one. A torn or damaged
//! section (a crash mid-append) ends the file: the chunks after it are read again.
//!
//! Keys are told apart by a 128-bit FNV-1a hash: for a run of a million requests, two
//! different keys collide with a chance of about n²/2¹²⁹ ≈ 10⁻²⁷, which is taken as never.

use std::collections::HashSet;
use std::io::Write;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use gix::ObjectId;

use super::import::fnv1a_128;
use super::{Totals, UsageRecord};

/// The first bytes of an index file, with its format version.
const MAGIC: &[u8; 8] = b"gpidx\x00\x00\x02";
/// Bytes per entry: the key's hash, then the record's seven counters.
const ENTRY_BYTES: usize = 16 + 7 * 8;
/// Sections past which a write merges them all into one.
const MAX_SECTIONS: usize = 32;

/// Returns a checksum of `bytes` (a section), eight bytes at a time: a whole index is
/// read at every write, so this must cost far less than reading it.
fn checksum(bytes: &[u8]) -> u64 {
    checksum_of(&[bytes])
}

/// Returns the checksum of `parts` joined, without joining them.
fn checksum_of(parts: &[&[u8]]) -> u64 {
    let length: usize = parts.iter().map(|part| part.len()).sum();
    let mut hash = 0xcbf2_9ce4_8422_2325_u64 ^ length as u64;
    let mut word = [0_u8; 8];
    let mut filled = 0;
    for part in parts {
        let mut rest = *part;
        if filled > 0 {
            let taken = rest.len().min(8 - filled);
            word[filled..filled + taken].copy_from_slice(&rest[..taken]);
            filled += taken;
            rest = &rest[taken..];
            if filled < 8 {
                continue;
            }
            hash = mix_word(hash, word);
        }
        let mut words = rest.chunks_exact(8);
        for whole in &mut words {
            hash = mix_word(hash, whole.try_into().expect("8 bytes"));
        }
        let remainder = words.remainder();
        word[..remainder.len()].copy_from_slice(remainder);
        filled = remainder.len();
    }
    for &byte in &word[..filled] {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn mix_word(hash: u64, word: [u8; 8]) -> u64 {
    (hash ^ u64::from_le_bytes(word))
        .wrapping_mul(0x0100_0000_01b3)
        .rotate_left(29)
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Entry {
    hash: u128,
    counters: [u64; 7],
}

/// Returns the counters of `record` in the order the index and the ledger's chunks keep
/// them: input, output, 5-minute and 1-hour cache writes, cache reads, reasoning, requests.
pub(super) fn counters(record: &UsageRecord) -> [u64; 7] {
    [
        record.input,
        record.output,
        record.cache_write_5m,
        record.cache_write_1h,
        record.cache_read,
        record.reasoning,
        u64::from(record.requests),
    ]
}

impl Entry {
    fn of(record: &UsageRecord) -> Entry {
        Entry {
            hash: fnv1a_128(record.key.as_bytes()),
            counters: counters(record),
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.hash.to_le_bytes());
        for counter in self.counters {
            out.extend_from_slice(&counter.to_le_bytes());
        }
    }

    fn decode(raw: &[u8]) -> Entry {
        let mut counters = [0; 7];
        for (counter, bytes) in counters.iter_mut().zip(raw[16..].chunks_exact(8)) {
            *counter = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
        }
        Entry {
            hash: hash_of(raw),
            counters,
        }
    }

    /// All tokens, as [`UsageRecord::total_tokens`] counts them.
    fn tokens(&self) -> u64 {
        self.counters[..5].iter().sum()
    }
}

/// The entries of some records, one per key (its largest copy), sorted by key hash: what
/// a write adds to the index, worked out apart from it (a write does so while it writes).
#[derive(Debug, Default)]
pub(super) struct Entries(Vec<Entry>);

impl Entries {
    pub(super) fn of<'r>(records: impl IntoIterator<Item = &'r UsageRecord>) -> Entries {
        let mut entries: Vec<Entry> = records.into_iter().map(Entry::of).collect();
        entries.sort_unstable_by(|left, right| {
            left.hash
                .cmp(&right.hash)
                .then_with(|| right.tokens().cmp(&left.tokens()))
        });
        entries.dedup_by_key(|entry| entry.hash);
        Entries(entries)
    }
}

fn hash_of(raw: &[u8]) -> u128 {
    u128::from_le_bytes(raw[..16].try_into().expect("16 bytes"))
}

/// One append: the chunks it covers, its change to the run's totals, and its entries
/// sorted by hash, kept encoded (in the file's bytes when loaded) and searched as they are.
#[derive(Clone, Debug, Default)]
struct Section {
    chunks: Vec<ObjectId>,
    /// What the section's entries add to the totals, net of the smaller copies they replace.
    delta: [i64; 7],
    bytes: Arc<Vec<u8>>,
    entries: Range<usize>,
}

impl Section {
    fn new(chunks: Vec<ObjectId>, delta: [i64; 7], entries: &[Entry]) -> Section {
        let mut bytes = Vec::with_capacity(entries.len() * ENTRY_BYTES);
        for entry in entries {
            entry.encode(&mut bytes);
        }
        let length = bytes.len();
        Section {
            chunks,
            delta,
            bytes: Arc::new(bytes),
            entries: 0..length,
        }
    }

    fn raw_entries(&self) -> std::slice::ChunksExact<'_, u8> {
        self.bytes[self.entries.clone()].chunks_exact(ENTRY_BYTES)
    }

    fn len(&self) -> usize {
        self.entries.len() / ENTRY_BYTES
    }

    fn find(&self, hash: u128) -> Option<Entry> {
        let raw = &self.bytes[self.entries.clone()];
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let middle = low + (high - low) / 2;
            let entry = &raw[middle * ENTRY_BYTES..(middle + 1) * ENTRY_BYTES];
            match hash_of(entry).cmp(&hash) {
                std::cmp::Ordering::Less => low = middle + 1,
                std::cmp::Ordering::Greater => high = middle,
                std::cmp::Ordering::Equal => return Some(Entry::decode(entry)),
            }
        }
        None
    }

    /// Writes the section as the file holds it. The entries go out as they are, never
    /// copied into one buffer with the rest: a large import's are megabytes.
    fn encode(&self, out: &mut impl Write) -> std::io::Result<()> {
        let mut head = Vec::new();
        head.extend_from_slice(
            &u32::try_from(self.chunks.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        for chunk in &self.chunks {
            let bytes = chunk.as_bytes();
            head.push(u8::try_from(bytes.len()).expect("an object id is short"));
            head.extend_from_slice(bytes);
        }
        for value in self.delta {
            head.extend_from_slice(&value.to_le_bytes());
        }
        head.extend_from_slice(&(self.len() as u64).to_le_bytes());
        let entries = &self.bytes[self.entries.clone()];
        let sum = checksum_of(&[&head, entries]);
        out.write_all(&head)?;
        out.write_all(entries)?;
        out.write_all(&sum.to_le_bytes())
    }

    /// Reads the section at `start` of `file`; gives it and where it ends, or `None`
    /// when the bytes end early or fail the checksum.
    fn decode(file: &Arc<Vec<u8>>, start: usize) -> Option<(Section, usize)> {
        let mut reader = Reader {
            bytes: &file[start..],
            at: 0,
        };
        let chunk_count = reader.u32()?;
        let mut section = Section {
            bytes: Arc::clone(file),
            ..Section::default()
        };
        for _ in 0..chunk_count {
            let length = usize::from(*reader.take(1)?.first()?);
            section
                .chunks
                .push(ObjectId::try_from(reader.take(length)?).ok()?);
        }
        for value in &mut section.delta {
            *value = i64::from_le_bytes(reader.take(8)?.try_into().ok()?);
        }
        let count = usize::try_from(reader.u64()?).ok()?;
        reader.take(count.checked_mul(ENTRY_BYTES)?)?;
        let end = reader.at;
        section.entries = start + end - count * ENTRY_BYTES..start + end;
        let sum = reader.u64()?;
        if sum != checksum(&file[start..start + end]) {
            return None;
        }
        Some((section, start + reader.at))
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, length: usize) -> Option<&'a [u8]> {
        let slice = self.bytes.get(self.at..self.at.checked_add(length)?)?;
        self.at += length;
        Some(slice)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// The keys of one run's records, and the chunks they were read from.
#[derive(Debug, Default)]
pub(super) struct KeyIndex {
    sections: Vec<Section>,
    covered: HashSet<ObjectId>,
    /// Sections already in the file; those after it are appended by [`KeyIndex::save`].
    saved: usize,
    /// The file must be written anew (missing, damaged, stale or merged).
    rewrite: bool,
}

impl KeyIndex {
    /// Loads the index at `path` if it covers only chunks in `chunks`; else an empty one.
    pub(super) fn load(path: &Path, chunks: &[ObjectId]) -> KeyIndex {
        let fresh = KeyIndex {
            rewrite: true,
            ..KeyIndex::default()
        };
        let Ok(bytes) = std::fs::read(path) else {
            return fresh;
        };
        Self::parse(bytes, chunks).unwrap_or(fresh)
    }

    fn parse(bytes: Vec<u8>, chunks: &[ObjectId]) -> Option<KeyIndex> {
        if !bytes.starts_with(MAGIC.as_slice()) {
            return None;
        }
        let file = Arc::new(bytes);
        let in_tree: HashSet<&ObjectId> = chunks.iter().collect();
        let mut index = KeyIndex::default();
        let mut at = MAGIC.len();
        while at < file.len() {
            let Some((section, end)) = Section::decode(&file, at) else {
                // A torn append: what follows is unreadable, so the file is written anew.
                index.rewrite = true;
                break;
            };
            if !section.chunks.iter().all(|chunk| in_tree.contains(chunk)) {
                return None;
            }
            index.covered.extend(section.chunks.iter().copied());
            index.sections.push(section);
            at = end;
        }
        index.saved = index.sections.len();
        Some(index)
    }

    pub(super) fn covers(&self, chunk: &ObjectId) -> bool {
        self.covered.contains(chunk)
    }

    /// The largest copy of the key `hash` the run holds.
    fn find(&self, hash: u128) -> Option<Entry> {
        self.sections
            .iter()
            .filter_map(|section| section.find(hash))
            .max_by_key(Entry::tokens)
    }

    /// Whether the run holds the request `key` (a copy of any size).
    pub(super) fn holds(&self, hash: u128) -> bool {
        self.find(hash).is_some()
    }

    /// Adds the records of `chunks` (one write's): a key's larger copy wins.
    pub(super) fn absorb<'r>(
        &mut self,
        chunks: &[ObjectId],
        records: impl IntoIterator<Item = &'r UsageRecord>,
    ) {
        self.absorb_entries(chunks, Entries::of(records));
    }

    /// Like [`KeyIndex::absorb`], with the records' entries worked out beforehand.
    pub(super) fn absorb_entries(&mut self, chunks: &[ObjectId], entries: Entries) {
        let chunks: Vec<ObjectId> = chunks
            .iter()
            .copied()
            .filter(|chunk| !self.covered.contains(chunk))
            .collect();
        if chunks.is_empty() {
            return;
        }
        let Entries(mut entries) = entries;
        let mut delta = [0_i64; 7];
        entries.retain(|entry| {
            let known = self.find(entry.hash);
            if known.is_some_and(|known| known.tokens() >= entry.tokens()) {
                return false;
            }
            let old = known.map_or([0; 7], |known| known.counters);
            for ((sum, new), old) in delta.iter_mut().zip(entry.counters).zip(old) {
                *sum +=
                    i64::try_from(new).unwrap_or(i64::MAX) - i64::try_from(old).unwrap_or(i64::MAX);
            }
            true
        });
        self.covered.extend(chunks.iter().copied());
        self.sections.push(Section::new(chunks, delta, &entries));
    }

    /// Whether `record` is a request the run lacks, or a larger copy of one it has.
    pub(super) fn is_new(&self, record: &UsageRecord) -> bool {
        // A run's first write holds every record of a large import: nothing to hash.
        self.sections.iter().all(|section| section.len() == 0)
            || self
                .find(fnv1a_128(record.key.as_bytes()))
                .is_none_or(|known| record.total_tokens() > known.tokens())
    }

    pub(super) fn totals(&self) -> Totals {
        let mut sums = [0_i64; 7];
        for section in &self.sections {
            for (sum, delta) in sums.iter_mut().zip(section.delta) {
                *sum += delta;
            }
        }
        let [
            input,
            output,
            five_minutes,
            one_hour,
            cache_read,
            reasoning,
            requests,
        ] = sums.map(|sum| u64::try_from(sum).unwrap_or(0));
        Totals {
            input,
            output,
            cache_write_5m: five_minutes,
            cache_write_1h: one_hour,
            cache_read,
            reasoning,
            requests,
        }
    }

    /// Merges every section into one: the largest copy of each key, every chunk.
    fn merge_sections(&mut self) {
        let mut chunks = Vec::new();
        let mut delta = [0_i64; 7];
        let mut entries = Vec::new();
        for section in std::mem::take(&mut self.sections) {
            chunks.extend(section.chunks.iter().copied());
            for (sum, part) in delta.iter_mut().zip(section.delta) {
                *sum += part;
            }
            entries.extend(section.raw_entries().map(Entry::decode));
        }
        entries.sort_unstable_by(|left, right| {
            left.hash
                .cmp(&right.hash)
                .then_with(|| right.tokens().cmp(&left.tokens()))
        });
        entries.dedup_by_key(|entry| entry.hash);
        self.sections.push(Section::new(chunks, delta, &entries));
        self.rewrite = true;
    }

    /// Saves the index: appends the new sections, or writes the file anew when it must
    /// be. A failure only costs the next write a rebuild.
    pub(super) fn save(&mut self, path: &Path) {
        if self.sections.len() > MAX_SECTIONS {
            self.merge_sections();
        }
        if self.rewrite {
            let written = super::outbox::write_atomically_with(path, |file| {
                file.write_all(MAGIC)?;
                for section in &self.sections {
                    section.encode(file)?;
                }
                Ok(())
            });
            if written.is_ok() {
                self.rewrite = false;
                self.saved = self.sections.len();
                // The whole-file index of gitprio versions before this one, now unused.
                let _ = std::fs::remove_file(path.with_extension("bin"));
            }
            return;
        }
        if self.saved == self.sections.len() {
            return;
        }
        let appended = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .and_then(|file| {
                let mut file = std::io::BufWriter::with_capacity(1 << 16, file);
                for section in &self.sections[self.saved..] {
                    section.encode(&mut file)?;
                }
                file.flush()
            });
        if appended.is_ok() {
            self.saved = self.sections.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, output: u64) -> UsageRecord {
        UsageRecord {
            key: key.to_owned(),
            source: "claude".to_owned(),
            model: "m".to_owned(),
            input: 1,
            output,
            requests: 1,
            ..UsageRecord::default()
        }
    }

    fn chunk(byte: u8) -> ObjectId {
        ObjectId::from_bytes_or_panic(&[byte; 20])
    }

    #[test]
    fn a_checksum_of_parts_is_the_checksum_of_them_joined() {
        let bytes: Vec<u8> = (0..=255_u8).cycle().take(1000).collect();
        for first in [0, 1, 7, 8, 9, 100, 1000] {
            for second in [first, first + 3, first + 8, 1000] {
                let second = second.min(1000);
                let parts = [&bytes[..first], &bytes[first..second], &bytes[second..]];
                assert_eq!(checksum_of(&parts), checksum(&bytes), "{first} {second}");
            }
        }
    }

    #[test]
    fn appends_sections_and_counts_each_key_once_at_its_largest() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("run.idx");
        let mut index = KeyIndex::load(&path, &[]);
        index.absorb(
            &[chunk(1)],
            &[record("a", 10), record("b", 5), record("a", 3)],
        );
        index.save(&path);
        let mut index = KeyIndex::load(&path, &[chunk(1), chunk(2)]);
        assert!(index.covers(&chunk(1)) && !index.covers(&chunk(2)));
        assert!(!index.is_new(&record("a", 10)));
        assert!(index.is_new(&record("a", 11)));
        index.absorb(
            &[chunk(2)],
            &[record("a", 20), record("c", 1), record("b", 1)],
        );
        let before = std::fs::metadata(&path).unwrap().len();
        index.save(&path);
        assert!(std::fs::metadata(&path).unwrap().len() > before, "appended");
        let index = KeyIndex::load(&path, &[chunk(1), chunk(2)]);
        let totals = index.totals();
        assert_eq!((totals.output, totals.input, totals.requests), (26, 3, 3));
        assert!(!index.is_new(&record("a", 20)));
    }

    #[test]
    fn a_torn_tail_is_dropped_and_a_stale_index_rebuilt() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("run.idx");
        let mut index = KeyIndex::load(&path, &[]);
        index.absorb(&[chunk(1)], &[record("a", 10)]);
        index.save(&path);
        index.absorb(&[chunk(2)], &[record("b", 10)]);
        index.save(&path);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let index = KeyIndex::load(&path, &[chunk(1), chunk(2)]);
        assert!(index.covers(&chunk(1)) && !index.covers(&chunk(2)));
        assert!(index.rewrite);
        let index = KeyIndex::load(&path, &[chunk(2)]);
        assert!(
            !index.covers(&chunk(2)) && index.sections.is_empty(),
            "names a chunk the ledger lacks"
        );
    }

    #[test]
    fn many_sections_merge_into_one() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("run.idx");
        let mut index = KeyIndex::load(&path, &[]);
        let chunks: Vec<ObjectId> = (1..=40).map(chunk).collect();
        for (number, id) in chunks.iter().enumerate() {
            index.absorb(
                &[*id],
                &[record(&format!("k{}", number % 30), number as u64)],
            );
            index.save(&path);
        }
        let index = KeyIndex::load(&path, &chunks);
        assert!(index.sections.len() <= MAX_SECTIONS);
        assert!(chunks.iter().all(|id| index.covers(id)));
        assert_eq!(index.totals().requests, 30);
        assert_eq!(index.totals().output, (10..40).sum::<u64>());
    }
}
