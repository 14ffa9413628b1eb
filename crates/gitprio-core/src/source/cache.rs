//! A cache of parsed task files keyed by blob id, so an unchanged file is parsed once.
//!
//! The blob id names the exact bytes, so an entry can never be stale; the file is
//! rewritten atomically and a corrupt or foreign-version file is ignored.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use gix::ObjectId;
use serde::{Deserialize, Serialize};

use crate::task::ParsedTask;

const FORMAT_VERSION: u32 = 1;

/// Parsed task files by blob id.
#[derive(Debug, Default)]
pub struct ParseCache {
    entries: HashMap<ObjectId, ParsedTask>,
    used: HashSet<ObjectId>,
    dirty: bool,
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    parser: String,
    entries: Vec<(String, ParsedTask)>,
}

impl ParseCache {
    /// Reads the cache at `path`; a missing, corrupt or outdated file gives an empty cache.
    pub fn load(path: &Path) -> ParseCache {
        let Ok(bytes) = std::fs::read(path) else {
            return ParseCache::default();
        };
        let Ok(file) = serde_json::from_slice::<CacheFile>(&bytes) else {
            return ParseCache::default();
        };
        if file.version != FORMAT_VERSION || file.parser != parser_version() {
            return ParseCache::default();
        }
        let entries = file
            .entries
            .into_iter()
            .filter_map(|(id, parsed)| {
                ObjectId::from_hex(id.as_bytes())
                    .ok()
                    .map(|id| (id, parsed))
            })
            .collect();
        ParseCache {
            entries,
            used: HashSet::new(),
            dirty: false,
        }
    }

    /// Returns the parse of blob `id`, if cached.
    pub fn get(&mut self, id: &ObjectId) -> Option<&ParsedTask> {
        let parsed = self.entries.get(id)?;
        self.used.insert(*id);
        Some(parsed)
    }

    /// Remembers the parse of blob `id`; the body is not kept, it is read again when shown.
    pub fn insert(&mut self, id: ObjectId, parsed: &ParsedTask) {
        let mut parsed = parsed.clone();
        if let Some(task) = parsed.task.as_mut() {
            task.body = String::new();
        }
        self.entries.insert(id, parsed);
        self.used.insert(id);
        self.dirty = true;
    }

    /// Writes the entries used since loading to `path` (atomically), if anything changed.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        if !self.dirty && self.used.len() == self.entries.len() {
            return Ok(());
        }
        let mut entries: Vec<(String, ParsedTask)> = self
            .entries
            .iter()
            .filter(|(id, _)| self.used.contains(*id))
            .map(|(id, parsed)| (id.to_string(), parsed.clone()))
            .collect();
        entries.sort_unstable_by(|left, right| left.0.cmp(&right.0));
        let file = CacheFile {
            version: FORMAT_VERSION,
            parser: parser_version(),
            entries,
        };
        let bytes = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let temporary = path.with_extension(format!("tmp.{}", std::process::id()));
        std::fs::write(&temporary, bytes)?;
        std::fs::rename(&temporary, path)
    }
}

/// Names the parser that produced cached entries: a new gitprio version re-parses.
fn parser_version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}
