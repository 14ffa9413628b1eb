//! Following the log an agent CLI writes for its session while it works: Claude Code's
//! transcript, Codex CLI's rollout file, Gemini CLI's chat file.
//!
//! Their stdout does not carry the final counts as the requests happen (Claude Code's
//! `stream-json` events hold each message's first usage, 1 output token; `codex exec
//! --json` prints usage only when a turn ends; Gemini CLI's final stats leave thoughts
//! out of the output count), but these logs get one line per request
//! with its final usage. They are read with the same parsers as `gitprio usage import`,
//! incrementally, so the records have the keys an import of the same log later finds
//! (`claude:<message id>:<request id>`, `codex:<session>:<timestamp>:<total>`): a request
//! counts once, whichever writes it first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gitprio_core::usage::UsageRecord;
use gitprio_core::usage::import::{self, ImportEnv, ImportOptions, ImportState};

use super::adapters::Adapter;

/// How many of the newest day directories of Codex's `sessions/` are searched for a rollout.
const CODEX_DAYS: usize = 3;

/// Follows the log of one agent session.
#[derive(Debug)]
pub struct LogFollower {
    adapter: Adapter,
    /// Where the CLIs keep their logs, as `gitprio usage import` finds them.
    env: ImportEnv,
    /// The session whose log was looked for, and the files found for it.
    session: Option<String>,
    files: Vec<PathBuf>,
    state: ImportState,
    /// One record per request, by key: the largest copy seen.
    records: BTreeMap<String, UsageRecord>,
}

impl LogFollower {
    pub fn new(adapter: Adapter) -> LogFollower {
        LogFollower {
            adapter,
            env: ImportEnv::from_lookup(|name| std::env::var_os(name)),
            session: None,
            files: Vec::new(),
            state: ImportState::new(),
            records: BTreeMap::new(),
        }
    }

    /// Reads what the session's log gained since the last look; `session` is the CLI's
    /// session (or thread) id, once its output named it.
    pub fn poll(&mut self, session: Option<&str>) {
        let Some(session) = session else {
            return;
        };
        if self.session.as_deref() != Some(session) {
            session.clone_into(self.session.get_or_insert_default());
            self.files.clear();
        }
        self.locate(session);
        if self.files.is_empty() {
            return;
        }
        let options = ImportOptions {
            jobs: 1,
            ..ImportOptions::default()
        };
        let imported = import::import_files(&self.files, &mut self.state, &options);
        for record in imported.records {
            match self.records.get(&record.key) {
                Some(known) if known.total_tokens() >= record.total_tokens() => {}
                _ => {
                    self.records.insert(record.key.clone(), record);
                }
            }
        }
    }

    /// The requests read so far, one record each.
    pub fn records(&self) -> Vec<UsageRecord> {
        self.records.values().cloned().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Finds the session's log files (a Claude session's subagent files appear as it works).
    fn locate(&mut self, session: &str) {
        // Looked up each time: a CLI run for the first time creates its directories.
        let roots = || import::default_roots(&self.env);
        match self.adapter {
            Adapter::Claude => {
                let name = format!("{session}.jsonl");
                // Once the transcript is found, only its project holds more (subagents).
                let projects: Vec<PathBuf> = match self.files.first().and_then(|file| file.parent())
                {
                    Some(project) => vec![project.to_path_buf()],
                    None => roots()
                        .iter()
                        .filter(|root| root.ends_with("projects"))
                        .flat_map(|root| subdirectories(root))
                        .collect(),
                };
                {
                    for project in projects {
                        let transcript = project.join(&name);
                        if transcript.is_file() && !self.files.contains(&transcript) {
                            self.files.push(transcript);
                        }
                        let subagents = project.join(session).join("subagents");
                        for file in files_ending(&subagents, ".jsonl") {
                            if !self.files.contains(&file) {
                                self.files.push(file);
                            }
                        }
                    }
                }
            }
            Adapter::Codex => {
                if !self.files.is_empty() {
                    return;
                }
                let suffix = format!("-{session}.jsonl");
                for root in roots().iter().filter(|root| root.ends_with("sessions")) {
                    let mut days: Vec<PathBuf> = subdirectories(root)
                        .into_iter()
                        .flat_map(|year| subdirectories(&year))
                        .flat_map(|month| subdirectories(&month))
                        .collect();
                    days.sort();
                    for day in days.iter().rev().take(CODEX_DAYS) {
                        self.files.extend(files_ending(day, &suffix));
                    }
                }
            }
            Adapter::Gemini => {
                if !self.files.is_empty() {
                    return;
                }
                // `<gemini dir>/tmp/<project>/chats/session-<time>-<session id's first 8>.jsonl`
                let short: String = session.chars().take(8).collect();
                let suffixes = [format!("-{short}.jsonl"), format!("-{short}.json")];
                for root in roots().iter().filter(|root| root.ends_with("tmp")) {
                    for project in subdirectories(root) {
                        for suffix in &suffixes {
                            self.files
                                .extend(files_ending(&project.join("chats"), suffix));
                        }
                    }
                }
            }
            Adapter::Generic => {}
        }
    }
}

fn subdirectories(directory: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(directory)
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
                .map(|entry| entry.path())
                .collect()
        })
        .unwrap_or_default()
}

fn files_ending(directory: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(directory)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| {
                    path.file_name()
                        .is_some_and(|name| name.to_string_lossy().ends_with(suffix))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}
