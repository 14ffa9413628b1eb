//! Tells a log's format from its first lines, whatever the file is called.

use std::path::Path;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::json::Text;
use super::state::Format;

/// How many undecided lines are read before falling back on the path.
pub(super) const MAX_PROBE_LINES: u64 = 64;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe<'a> {
    #[serde(default, rename = "type", borrow)]
    kind: Option<Text<'a>>,
    #[serde(default)]
    payload: Option<IgnoredAny>,
    #[serde(default, rename = "session_id")]
    snake_session_id: Option<IgnoredAny>,
    #[serde(default)]
    session_id: Option<IgnoredAny>,
    #[serde(default)]
    project_hash: Option<IgnoredAny>,
    #[serde(default)]
    parent_uuid: Option<IgnoredAny>,
    #[serde(default)]
    uuid: Option<IgnoredAny>,
    #[serde(default)]
    messages: Option<IgnoredAny>,
    #[serde(default)]
    tokens: Option<IgnoredAny>,
}

/// What one line says about the format.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    Format(Format),
    /// The line starts a JSON document that spans lines, or is a one-line array or chat.
    Document,
    Undecided,
}

/// Looks at one line.
pub(super) fn probe(line: &[u8]) -> Verdict {
    let trimmed = line.trim_ascii_start();
    if trimmed.first() == Some(&b'[') {
        return Verdict::Document;
    }
    let probe: Probe = match serde_json::from_slice(line) {
        Ok(probe) => probe,
        Err(error) if error.is_eof() && trimmed.first() == Some(&b'{') => {
            return Verdict::Document;
        }
        Err(_) => return Verdict::Undecided,
    };
    let kind = probe.kind.as_ref().map(Text::as_str);
    if probe.payload.is_some()
        && matches!(
            kind,
            Some("session_meta" | "turn_context" | "response_item" | "event_msg" | "compacted")
        )
    {
        return Verdict::Format(Format::CodexRollout);
    }
    if kind.is_some_and(|kind| {
        kind.starts_with("thread.") || kind.starts_with("turn.") || kind.starts_with("item.")
    }) {
        return Verdict::Format(Format::CodexExec);
    }
    if probe.messages.is_some() && (probe.session_id.is_some() || probe.project_hash.is_some()) {
        return Verdict::Document;
    }
    if probe.snake_session_id.is_some() || kind == Some("result") {
        return Verdict::Format(Format::ClaudeStream);
    }
    if probe.project_hash.is_some() || kind == Some("gemini") || probe.tokens.is_some() {
        return Verdict::Format(Format::GeminiChatLines);
    }
    if matches!(
        kind,
        Some("summary" | "file-history-snapshot" | "queue-operation" | "custom-title" | "ai-title")
    ) || (probe.session_id.is_some() && (probe.uuid.is_some() || probe.parent_uuid.is_some()))
        || (probe.parent_uuid.is_some() && probe.uuid.is_some())
    {
        return Verdict::Format(Format::ClaudeTranscript);
    }
    Verdict::Undecided
}

/// The format a path suggests, when its lines did not tell.
pub(super) fn from_path(path: &Path) -> Option<Format> {
    let text = path.to_string_lossy();
    if text.contains("/.codex/") || text.contains("rollout-") {
        Some(Format::CodexRollout)
    } else if text.contains("/.gemini/") {
        Some(Format::GeminiChatLines)
    } else if text.contains("/projects/") {
        Some(Format::ClaudeTranscript)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_formats_apart() {
        let cases: [(&str, Verdict); 10] = [
            (
                r#"{"timestamp":"t","type":"session_meta","payload":{"id":"x"}}"#,
                Verdict::Format(Format::CodexRollout),
            ),
            (
                r#"{"type":"thread.started","thread_id":"t"}"#,
                Verdict::Format(Format::CodexExec),
            ),
            (
                r#"{"type":"system","subtype":"init","session_id":"s","model":"m"}"#,
                Verdict::Format(Format::ClaudeStream),
            ),
            (
                r#"{"type":"result","subtype":"success","session_id":"s"}"#,
                Verdict::Format(Format::ClaudeStream),
            ),
            (
                r#"{"type":"summary","summary":"x","leafUuid":"u"}"#,
                Verdict::Format(Format::ClaudeTranscript),
            ),
            (
                r#"{"parentUuid":null,"sessionId":"s","type":"user","uuid":"u"}"#,
                Verdict::Format(Format::ClaudeTranscript),
            ),
            (
                r#"{"sessionId":"s","projectHash":"h","startTime":"t"}"#,
                Verdict::Format(Format::GeminiChatLines),
            ),
            ("{", Verdict::Document),
            (r#"[{"type":"system"}]"#, Verdict::Document),
            ("not json", Verdict::Undecided),
        ];
        for (line, verdict) in cases {
            assert_eq!(probe(line.as_bytes()), verdict, "{line}");
        }
    }
}
