//! Gemini CLI chats: `~/.gemini/tmp/<hash>/chats/*.json`, or the same as JSON lines.
//!
//! Gemini's `input` includes `cached`, so `input` here is input minus cached and
//! `cache_read` is the cached part; tool-use prompt tokens are prompt tokens too and are
//! added to `input`. Thinking tokens are billed as output: they are added to `output` and
//! also counted in `reasoning`.

use jiff::Timestamp;
use serde::Deserialize;

use super::Malformed;
use super::state::LineParser;
use crate::usage::UsageRecord;

/// A chat saved as one JSON document.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Chat {
    #[serde(default)]
    session_id: Option<String>,
    /// The SHA-256 (hex) of the directory Gemini CLI ran in (its project root).
    #[serde(default)]
    project_hash: Option<String>,
    #[serde(default)]
    messages: Vec<ChatMessage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChatMessage {
    /// Set on the header line of a chat written as JSON lines.
    #[serde(default)]
    session_id: Option<String>,
    /// Set on the header line too.
    #[serde(default)]
    project_hash: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    tokens: Option<Tokens>,
}

#[derive(Clone, Copy, Deserialize)]
struct Tokens {
    #[serde(default)]
    input: u64,
    #[serde(default)]
    output: u64,
    #[serde(default)]
    cached: u64,
    #[serde(default)]
    thoughts: u64,
    #[serde(default)]
    tool: u64,
}

/// The format [`ChatParser`] reads.
#[derive(Debug)]
pub(super) enum GeminiChat {}

/// Reads chats, carrying the session, the model and the message count across lines.
pub(super) type ChatParser = LineParser<GeminiChat>;

impl ChatParser {
    pub(super) fn line(
        &mut self,
        line: &[u8],
        emit: &mut dyn FnMut(UsageRecord),
    ) -> Result<(), Malformed> {
        let mut message: ChatMessage = serde_json::from_slice(line)?;
        if let Some(session) = message.session_id.take() {
            self.carry.session = Some(session);
        }
        if let Some(project) = message.project_hash.take() {
            self.carry.project_hash = Some(project);
        }
        self.message(message, emit);
        Ok(())
    }

    /// Reads a whole chat document.
    pub(super) fn document(&mut self, chat: Chat, emit: &mut dyn FnMut(UsageRecord)) {
        if let Some(session) = chat.session_id {
            self.carry.session = Some(session);
        }
        if let Some(project) = chat.project_hash {
            self.carry.project_hash = Some(project);
        }
        for message in chat.messages {
            self.message(message, emit);
        }
    }

    fn message(&mut self, message: ChatMessage, emit: &mut dyn FnMut(UsageRecord)) {
        if message.kind.is_none() {
            if let Some(model) = message.model {
                self.carry.model = Some(model);
            }
            return;
        }
        let index = self.carry.messages;
        self.carry.messages += 1;
        if message.kind.as_deref() != Some("gemini") {
            return;
        }
        let Some(tokens) = message.tokens else {
            return;
        };
        if let Some(model) = &message.model {
            self.carry.model = Some(model.clone());
        }
        let session = self.session();
        let key = match &message.id {
            Some(id) => format!("gemini:{session}:{id}"),
            None => format!("gemini:{session}:#{index}"),
        };
        let record = UsageRecord {
            key,
            source: "gemini".to_owned(),
            session: Some(session),
            model: self.model_or("unknown"),
            at: message
                .timestamp
                .as_deref()
                .and_then(|stamp| stamp.parse::<Timestamp>().ok()),
            input: tokens.input.saturating_sub(tokens.cached) + tokens.tool,
            output: tokens.output + tokens.thoughts,
            cache_read: tokens.cached,
            reasoning: tokens.thoughts,
            requests: 1,
            project_hash: self.carry.project_hash.clone(),
            ..UsageRecord::default()
        };
        if record.total_tokens() > 0 {
            emit(record);
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::usage::Totals;
    use crate::usage::import::Carry;

    pub(in crate::usage::import) const CHAT: &str = r#"{
  "sessionId": "5f2c",
  "projectHash": "ab12",
  "startTime": "2025-10-01T10:00:00.000Z",
  "lastUpdated": "2025-10-01T10:05:00.000Z",
  "messages": [
    {"id": "m1", "timestamp": "2025-10-01T10:00:01.000Z", "type": "user", "content": "hi"},
    {"id": "m2", "timestamp": "2025-10-01T10:00:05.000Z", "type": "gemini", "content": "hello",
     "thoughts": [{"subject": "s", "description": "d"}],
     "tokens": {"input": 12000, "output": 300, "cached": 8000, "thoughts": 120, "tool": 15, "total": 12435},
     "model": "gemini-2.5-pro"},
    {"id": "m3", "timestamp": "2025-10-01T10:01:00.000Z", "type": "gemini", "content": "more",
     "tokens": {"input": 500, "output": 20, "cached": 0, "thoughts": 0, "tool": 0, "total": 520},
     "model": "gemini-2.5-flash"}
  ]
}"#;

    #[test]
    fn reads_a_chat_document() {
        let chat: Chat = serde_json::from_str(CHAT).unwrap();
        let mut parser = ChatParser::new(Carry::default(), "file".to_owned());
        let mut records = Vec::new();
        parser.document(chat, &mut |record| records.push(record));
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].key, "gemini:5f2c:m2");
        assert_eq!(records[0].model, "gemini-2.5-pro");
        assert_eq!(
            (
                records[0].input,
                records[0].cache_read,
                records[0].output,
                records[0].reasoning
            ),
            (4015, 8000, 420, 120)
        );
        let totals: Totals = records.iter().collect();
        assert_eq!(totals.tokens(), 12435 + 520);
    }

    #[test]
    fn reads_chat_lines_without_ids() {
        let mut parser = ChatParser::new(Carry::default(), "chat-file".to_owned());
        let mut records = Vec::new();
        for line in [
            r#"{"sessionId":"s7","projectHash":"h","startTime":"2025-10-01T10:00:00Z"}"#,
            r#"{"type":"user","content":"hi"}"#,
            r#"{"type":"gemini","tokens":{"input":10,"output":2,"cached":4,"thoughts":1},"model":"gemini-2.5-pro"}"#,
            r#"{"type":"gemini","tokens":{"input":20,"output":3}}"#,
        ] {
            parser
                .line(line.as_bytes(), &mut |record| records.push(record))
                .unwrap();
        }
        let keys: Vec<_> = records.iter().map(|record| record.key.as_str()).collect();
        assert_eq!(keys, ["gemini:s7:#1", "gemini:s7:#2"]);
        assert_eq!(records[1].model, "gemini-2.5-pro");
        assert_eq!(
            (records[0].input, records[0].cache_read, records[0].output),
            (6, 4, 3)
        );
    }
}
