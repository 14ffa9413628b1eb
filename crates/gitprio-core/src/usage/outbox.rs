//! Ledger writes kept on this machine until the ledger takes them: nothing recorded is
//! lost when the remote refuses a push or cannot be reached.
//!
//! Each write is saved as `.git/gitprio/usage-outbox/<time>-<pid>-<n>.json` before it is
//! tried, and removed once it landed; a crash in between only means a second delivery,
//! which the ledger ignores (records are keyed, meta updates are idempotent).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::{LedgerError, RunMeta, UsageRecord};

const VERSION: u32 = 1;

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

#[derive(Deserialize)]
struct Entry {
    version: u32,
    meta: RunMeta,
    records: Vec<UsageRecord>,
}

#[derive(Serialize)]
struct EntryRef<'a> {
    version: u32,
    meta: &'a RunMeta,
    records: &'a [UsageRecord],
}

/// Why a kept write was not delivered.
#[derive(Debug)]
pub(super) enum LoadError {
    /// Not a file this version can read; left as it is.
    Unreadable,
    Ledger(Box<LedgerError>),
}

/// Writes `bytes` to `path` through a temporary file, so readers never see half of it.
pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomically_with(path, |file| io::Write::write_all(file, bytes))
}

/// Like [`write_atomically`], with the bytes written by `write` as they come.
pub(super) fn write_atomically_with(
    path: &Path,
    write: impl FnOnce(&mut io::BufWriter<std::fs::File>) -> io::Result<()>,
) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let temporary = path.with_extension(format!("tmp.{}.{sequence}", std::process::id()));
    let written = std::fs::File::create(&temporary).and_then(|file| {
        let mut file = io::BufWriter::with_capacity(1 << 16, file);
        write(&mut file)?;
        io::Write::flush(&mut file)
    });
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    std::fs::rename(&temporary, path)
}

/// Saves a write in `directory`; returns its file.
pub(super) fn save(
    directory: &Path,
    meta: &RunMeta,
    records: &[UsageRecord],
) -> io::Result<PathBuf> {
    let entry = EntryRef {
        version: VERSION,
        meta,
        records,
    };
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    let path = directory.join(format!(
        "{nanos:020}-{}-{sequence}.json",
        std::process::id()
    ));
    write_atomically(
        &path,
        &serde_json::to_vec(&entry).expect("a kept write serializes"),
    )?;
    Ok(path)
}

/// Returns the kept writes, oldest first.
pub(super) fn pending(directory: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "json")
        })
        .collect();
    paths.sort();
    paths
}

pub(super) fn load(path: &Path) -> Result<(RunMeta, Vec<UsageRecord>), LoadError> {
    let bytes = std::fs::read(path).map_err(|_| LoadError::Unreadable)?;
    let entry: Entry = serde_json::from_slice(&bytes).map_err(|_| LoadError::Unreadable)?;
    if entry.version != VERSION {
        return Err(LoadError::Unreadable);
    }
    Ok((entry.meta, entry.records))
}

/// Removes a delivered write; one already removed (another process delivered it) is fine.
pub(super) fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
}
