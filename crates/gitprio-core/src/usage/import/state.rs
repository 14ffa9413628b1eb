//! What earlier imports read of each log file, so the next one reads only what was appended,
//! and the state a line parser carries from line to line.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use serde::{Deserialize, Serialize};

/// The version of the [`ImportState`] file format.
pub const IMPORT_STATE_VERSION: u32 = 1;

/// Per log file, how far earlier imports read it: the CLI saves it (e.g. as JSON under
/// `.git/gitprio/`) once the records it produced are stored, and passes it to the next import.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportState {
    #[serde(default = "state_version")]
    pub version: u32,
    /// Keyed by the path as it was imported.
    #[serde(default)]
    pub files: BTreeMap<String, FileState>,
}

fn state_version() -> u32 {
    IMPORT_STATE_VERSION
}

impl ImportState {
    /// Where the CLI keeps the state of the repository whose common git directory is
    /// `common_dir`: it exists once `gitprio usage import` has run on this machine.
    pub fn path(common_dir: &std::path::Path) -> std::path::PathBuf {
        common_dir.join("gitprio").join("usage-import.json")
    }

    pub fn new() -> Self {
        ImportState {
            version: IMPORT_STATE_VERSION,
            files: BTreeMap::new(),
        }
    }
}

/// The log formats the importer knows, told apart by content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Claude Code transcript: `<config>/projects/<slug>/<session>.jsonl` and subagent files.
    ClaudeTranscript,
    /// `claude -p --output-format stream-json` lines, or the one `--output-format json` result.
    ClaudeStream,
    /// Codex CLI rollout: `~/.codex/sessions/YYYY/MM/DD/rollout-*.jsonl`.
    CodexRollout,
    /// `codex exec --json` events.
    CodexExec,
    /// Gemini CLI chat as JSON lines.
    GeminiChatLines,
    /// One JSON document: a Gemini CLI chat (`~/.gemini/tmp/<hash>/chats/*.json`), or
    /// `claude -p --output-format json` output pretty-printed or as a `--verbose` array.
    JsonDocument,
}

impl Format {
    /// Whether the format is a whole JSON document, read again from the start whenever it changes.
    pub fn is_document(self) -> bool {
        matches!(self, Format::JsonDocument)
    }
}

/// How far one file was read, and what its parser must remember to go on from there.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    /// The format detected when the file was first read; `None` when it was not recognized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// The file's length when it was last read.
    pub size: u64,
    /// The file's modification time then, in nanoseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime_ns: Option<i128>,
    /// Where the last complete line ended: the next import starts reading there.
    pub offset: u64,
    /// A hash of the file's first bytes (up to 1 KiB), to notice a file replaced by another.
    #[serde(default)]
    pub head_hash: u64,
    /// Parser state that crosses lines.
    #[serde(default, skip_serializing_if = "Carry::is_empty")]
    pub carry: Carry,
}

/// Parser state carried from one import of a file to the next.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Carry {
    /// The session (or thread) id seen in the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The model in effect (Codex `turn_context`, Gemini lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Gemini CLI's `projectHash` (the SHA-256 of the directory the chat ran in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_hash: Option<String>,
    /// The file is a subagent's (Codex `source.subagent`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sidechain: bool,
    /// The last cumulative counters (Codex `total_token_usage`, `codex exec` usage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totals: Option<CumulativeTokens>,
    /// For a Codex subagent file: the second (Unix seconds) its session began, whose
    /// token counts are the parent's history replayed, not the subagent's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_second: Option<i64>,
    /// A Claude stream had per-message usage, so its `result` line adds nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub saw_messages: bool,
    /// Messages seen so far (Gemini lines without ids are keyed by position).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub messages: u64,
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if passes a reference"
)]
fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl Carry {
    pub fn is_empty(&self) -> bool {
        *self == Carry::default()
    }
}

/// The line parser of format `F`: the carry it keeps across lines and imports, and the
/// session to name when the log names none. Each format adds its `line` method in its module.
#[derive(Debug)]
pub(super) struct LineParser<F> {
    pub(super) carry: Carry,
    fallback_session: String,
    format: PhantomData<F>,
}

impl<F> LineParser<F> {
    pub(super) fn new(carry: Carry, fallback_session: String) -> Self {
        LineParser {
            carry,
            fallback_session,
            format: PhantomData,
        }
    }

    pub(super) fn into_carry(self) -> Carry {
        self.carry
    }

    /// Returns the session the log named, else the fallback: the file's stem, or a stream's name.
    pub(super) fn session(&self) -> String {
        self.carry
            .session
            .clone()
            .unwrap_or_else(|| self.fallback_session.clone())
    }

    /// Returns the model the log named last, else `default`.
    pub(super) fn model_or(&self, default: &str) -> String {
        self.carry
            .model
            .clone()
            .unwrap_or_else(|| default.to_owned())
    }
}

/// Cumulative token counters in the source's own semantics (input includes cached input).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CumulativeTokens {
    pub input: u64,
    pub cached: u64,
    pub output: u64,
    pub reasoning: u64,
    pub total: u64,
}

/// Returns the FNV-1a hash of `bytes`: stable across Rust versions, unlike `DefaultHasher`.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Returns the 128-bit FNV-1a hash of `bytes`: for keys told apart by their hash alone.
pub(crate) fn fnv1a_128(bytes: &[u8]) -> u128 {
    let mut hash: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for &byte in bytes {
        hash ^= u128::from(byte);
        hash = hash.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_json() {
        let mut state = ImportState::new();
        state.files.insert(
            "/logs/rollout.jsonl".to_owned(),
            FileState {
                format: Some(Format::CodexRollout),
                size: 10,
                mtime_ns: Some(1_700_000_000_000_000_000),
                offset: 8,
                head_hash: fnv1a(b"{"),
                carry: Carry {
                    session: Some("s".to_owned()),
                    totals: Some(CumulativeTokens {
                        input: 5,
                        total: 7,
                        ..CumulativeTokens::default()
                    }),
                    ..Carry::default()
                },
            },
        );
        let json = serde_json::to_string(&state).unwrap();
        assert!(json.contains(r#""format":"codex-rollout""#), "{json}");
        assert_eq!(serde_json::from_str::<ImportState>(&json).unwrap(), state);
        assert_eq!(
            serde_json::from_str::<ImportState>("{}").unwrap(),
            ImportState::new()
        );
    }
}
