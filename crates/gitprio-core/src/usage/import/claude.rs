//! Claude Code transcripts, and the output of `claude -p --output-format json|stream-json`.
//!
//! Transcript lines are matched the way the reference analyzer (ccusage) reads them, so
//! both count the same tokens: only lines holding `"usage":{` are parsed; a line with
//! `null` in a key field, an empty id, a version that is not semver-like, no timestamp or
//! no token counts is skipped as malformed; model `<synthetic>` (local messages) is
//! skipped, and so are API-error lines (`isApiErrorMessage`). Subagent activity copied into the parent's transcript as `progress` lines
//! (`data.message.message.usage`) counts too: deduplication folds it with the subagent file.
//!
//! In a `stream-json` stream, each `assistant` line carries one message's usage
//! (keyed `claude-stream:<message id>`, so it folds with the same message read from the
//! transcript later), and the last `result` line repeats the session's usage as
//! `modelUsage`, cumulative over the whole (possibly resumed) session. Summing both would
//! count every token twice, so the `result` line is used only when the stream had no
//! per-message usage (the `--output-format json` case): then it gives one record per
//! model keyed `claude-result:<session>:<model>`. Being cumulative, a later result of the
//! same session replaces the earlier record instead of adding to it, and deduplication
//! drops these records for a session whose per-message records are known.

use jiff::Timestamp;
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::Malformed;
use super::json::{Field, Text, is_semver_prefix};
use super::scan::{Scanner, Value};
use super::state::LineParser;
use crate::usage::UsageRecord;

/// The byte marker of a line worth parsing.
pub(super) const USAGE_MARKER: &[u8] = br#""usage":{"#;

/// Finds [`USAGE_MARKER`]; built once, since building a finder per line costs as much as a search.
static USAGE_FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(USAGE_MARKER));

/// Bytes at the end of a line searched first for the marker.
const USAGE_TAIL_BYTES: usize = 1024;

/// Whether `line` holds [`USAGE_MARKER`]. An assistant line's usage follows its message
/// content, near the end of the line, so the end is searched first: a line with usage is
/// then found without reading its content.
fn has_usage_marker(line: &[u8]) -> bool {
    let tail = line.len().saturating_sub(USAGE_TAIL_BYTES);
    let head = line.len().min(tail + USAGE_MARKER.len() - 1);
    USAGE_FINDER.find(&line[tail..]).is_some() || USAGE_FINDER.find(&line[..head]).is_some()
}

/// Marks messages Claude Code generated locally; they cost nothing.
const SYNTHETIC_MODEL: &str = "<synthetic>";

#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TranscriptLine<'a> {
    #[serde(default, borrow)]
    timestamp: Field<Text<'a>>,
    #[serde(default, borrow)]
    version: Field<Text<'a>>,
    #[serde(default, borrow)]
    session_id: Field<Text<'a>>,
    #[serde(default, borrow)]
    request_id: Field<Text<'a>>,
    #[serde(default)]
    is_sidechain: Option<bool>,
    #[serde(default, borrow)]
    cwd: Field<Text<'a>>,
    #[serde(default, borrow)]
    git_branch: Option<Text<'a>>,
    #[serde(default, borrow)]
    uuid: Option<Text<'a>>,
    #[serde(default, rename = "costUSD")]
    cost_usd: Field<IgnoredAny>,
    #[serde(default)]
    is_api_error_message: Field<bool>,
    #[serde(default, borrow)]
    message: Option<Message<'a>>,
    #[serde(default, borrow)]
    data: Option<ProgressData<'a>>,
}

#[derive(Debug, Default, PartialEq, Deserialize)]
struct ProgressData<'a> {
    #[serde(default, borrow)]
    message: Option<ProgressEnvelope<'a>>,
}

/// A subagent's message as its parent's transcript repeats it in a `progress` line.
#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProgressEnvelope<'a> {
    #[serde(default, borrow)]
    timestamp: Field<Text<'a>>,
    #[serde(default, borrow)]
    request_id: Field<Text<'a>>,
    #[serde(default)]
    is_sidechain: Option<bool>,
    #[serde(default, borrow)]
    uuid: Option<Text<'a>>,
    #[serde(default, borrow)]
    message: Option<Message<'a>>,
}

#[derive(Debug, Default, PartialEq, Deserialize)]
struct Message<'a> {
    #[serde(default, borrow)]
    id: Field<Text<'a>>,
    #[serde(default, borrow)]
    model: Field<Text<'a>>,
    #[serde(default, borrow)]
    usage: Option<Usage<'a>>,
}

#[derive(Debug, Default, PartialEq, Deserialize)]
struct Usage<'a> {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Field<u64>,
    #[serde(default)]
    cache_read_input_tokens: Field<u64>,
    #[serde(default)]
    cache_creation: Option<CacheCreation>,
    #[serde(default, borrow)]
    speed: Field<Text<'a>>,
}

#[derive(Debug, Default, PartialEq, Deserialize)]
struct CacheCreation {
    #[serde(default)]
    ephemeral_5m_input_tokens: u64,
    #[serde(default)]
    ephemeral_1h_input_tokens: u64,
}

impl Usage<'_> {
    /// Returns a record of these token counts; the caller fills in where they were spent.
    ///
    /// A flat cache-creation count, without the 5-minute and 1-hour split, counts as 5-minute.
    fn record(&self, key: String, input: u64, output: u64) -> UsageRecord {
        let (five_minutes, one_hour) = match &self.cache_creation {
            Some(split) => (
                split.ephemeral_5m_input_tokens,
                split.ephemeral_1h_input_tokens,
            ),
            None => (
                self.cache_creation_input_tokens
                    .present()
                    .copied()
                    .unwrap_or(0),
                0,
            ),
        };
        UsageRecord {
            key,
            source: "claude".to_owned(),
            input,
            output,
            cache_write_5m: five_minutes,
            cache_write_1h: one_hour,
            cache_read: self.cache_read_input_tokens.present().copied().unwrap_or(0),
            requests: 1,
            speed: self.speed.present().map(|speed| speed.as_str().to_owned()),
            ..UsageRecord::default()
        }
    }
}

/// The fields of one request's usage, wherever on the line they were.
struct Found<'l, 'a> {
    timestamp: &'l Field<Text<'a>>,
    request_id: &'l Field<Text<'a>>,
    is_sidechain: Option<bool>,
    uuid: Option<&'l Text<'a>>,
    message: &'l Message<'a>,
    usage: &'l Usage<'a>,
}

/// Parses one transcript line; `Ok(None)` for a line that carries no usage.
#[expect(
    clippy::too_many_lines,
    reason = "a parser: one pass over the fields of a transcript line"
)]
pub(super) fn transcript_line(line: &[u8]) -> Result<Option<UsageRecord>, Malformed> {
    if !has_usage_marker(line) {
        return Ok(None);
    }
    let parsed = match scan_transcript_line(line) {
        Some(parsed) => parsed,
        None => serde_json::from_slice::<TranscriptLine>(line)?,
    };
    let found = if let Some(message) = &parsed.message
        && let Some(usage) = &message.usage
    {
        if parsed.version.is_null()
            || parsed.session_id.is_null()
            || parsed.cost_usd.is_null()
            || parsed.is_api_error_message.is_null()
            || parsed.cwd.is_null()
        {
            return Err(Malformed);
        }
        if parsed
            .version
            .present()
            .is_some_and(|version| !is_semver_prefix(version.as_str()))
            || parsed
                .session_id
                .present()
                .is_some_and(|session| session.as_str().is_empty())
        {
            return Err(Malformed);
        }
        // An API error is written by the client, not billed: its usage is no request.
        if parsed.is_api_error_message.present() == Some(&true) {
            return Ok(None);
        }
        Found {
            timestamp: &parsed.timestamp,
            request_id: &parsed.request_id,
            is_sidechain: parsed.is_sidechain,
            uuid: parsed.uuid.as_ref(),
            message,
            usage,
        }
    } else if let Some(envelope) = parsed.data.as_ref().and_then(|data| data.message.as_ref())
        && let Some(message) = &envelope.message
        && let Some(usage) = &message.usage
    {
        Found {
            timestamp: &envelope.timestamp,
            request_id: &envelope.request_id,
            is_sidechain: envelope.is_sidechain,
            uuid: envelope.uuid.as_ref().or(parsed.uuid.as_ref()),
            message,
            usage,
        }
    } else {
        return Ok(None);
    };
    let message = found.message;
    let usage = found.usage;
    if found.request_id.is_null()
        || message.id.is_null()
        || message.model.is_null()
        || usage.speed.is_null()
        || usage.cache_creation_input_tokens.is_null()
        || usage.cache_read_input_tokens.is_null()
    {
        return Err(Malformed);
    }
    let request_id = found.request_id.present().map(Text::as_str);
    let message_id = message.id.present().map(Text::as_str);
    let model = message.model.present().map(Text::as_str);
    if [request_id, message_id, model].contains(&Some("")) {
        return Err(Malformed);
    }
    let at = found
        .timestamp
        .present()
        .and_then(|timestamp| timestamp.as_str().parse::<Timestamp>().ok())
        .ok_or(Malformed)?;
    let (Some(input), Some(output)) = (usage.input_tokens, usage.output_tokens) else {
        return Err(Malformed);
    };
    if model == Some(SYNTHETIC_MODEL) {
        return Ok(None);
    }
    // `concat` sizes the key once; `format!` grows it a few times, for every usage line.
    let key = match (message_id, request_id) {
        (Some(message_id), Some(request_id)) => ["claude:", message_id, ":", request_id].concat(),
        (Some(message_id), None) => ["claude:", message_id].concat(),
        (None, _) => match found.uuid {
            Some(uuid) => ["claude-line:", uuid.as_str()].concat(),
            None => return Err(Malformed),
        },
    };
    Ok(Some(UsageRecord {
        session: parsed
            .session_id
            .present()
            .map(|session| session.as_str().to_owned()),
        model: model.unwrap_or("unknown").to_owned(),
        at: Some(at),
        sidechain: found.is_sidechain == Some(true),
        cwd: parsed
            .cwd
            .present()
            .filter(|cwd| !cwd.as_str().is_empty())
            .map(|cwd| cwd.as_str().to_owned()),
        branch: parsed
            .git_branch
            .filter(|branch| !branch.as_str().is_empty())
            .map(|branch| branch.as_str().to_owned()),
        ..usage.record(key, input, output)
    }))
}

/// Reads a transcript line with [`Scanner`], into what `serde_json` would make of it;
/// `None` leaves the line to `serde_json` (something the scanner does not read, or an error).
fn scan_transcript_line(line: &[u8]) -> Option<TranscriptLine<'_>> {
    let mut scanner = Scanner::new(line);
    let mut parsed = TranscriptLine::default();
    let mut seen = Seen::default();
    scanner.object(|key, scanner| {
        match key {
            b"timestamp" => parsed.timestamp = seen.once(0, text(scanner))?.into_field(),
            b"version" => parsed.version = seen.once(1, text(scanner))?.into_field(),
            b"sessionId" => parsed.session_id = seen.once(2, text(scanner))?.into_field(),
            b"requestId" => parsed.request_id = seen.once(3, text(scanner))?.into_field(),
            b"isSidechain" => {
                parsed.is_sidechain = seen.once(4, scanner.bool_or_null())?.into_option();
            }
            b"cwd" => parsed.cwd = seen.once(5, text(scanner))?.into_field(),
            b"gitBranch" => parsed.git_branch = seen.once(6, text(scanner))?.into_option(),
            b"uuid" => parsed.uuid = seen.once(7, text(scanner))?.into_option(),
            b"costUSD" => parsed.cost_usd = seen.once(8, ignored(scanner))?.into_field(),
            b"isApiErrorMessage" => {
                parsed.is_api_error_message = seen.once(9, scanner.bool_or_null())?.into_field();
            }
            b"message" => parsed.message = seen.once(10, scan_message(scanner))?.into_option(),
            b"data" => parsed.data = seen.once(11, scan_progress_data(scanner))?.into_option(),
            _ => scanner.skip_value()?,
        }
        Some(())
    })?;
    scanner.at_end().then_some(parsed)
}

/// The fields of one object read so far: `serde` refuses a field given twice.
#[derive(Default)]
struct Seen(u32);

impl Seen {
    fn once<T>(&mut self, field: u32, value: Option<T>) -> Option<T> {
        let bit = 1 << field;
        if self.0 & bit != 0 {
            return None;
        }
        self.0 |= bit;
        value
    }
}

fn text<'a>(scanner: &mut Scanner<'a>) -> Option<Value<Text<'a>>> {
    Some(scanner.string_or_null()?.map(|text| Text(text.into())))
}

fn ignored(scanner: &mut Scanner<'_>) -> Option<Value<IgnoredAny>> {
    if scanner.null()? {
        return Some(Value::Null);
    }
    scanner.skip_value()?;
    Some(Value::Present(IgnoredAny))
}

/// Reads an object with `field` for each key, or `null`.
fn object_or_null<'a, T: Default>(
    scanner: &mut Scanner<'a>,
    mut field: impl FnMut(&mut T, &mut Seen, &[u8], &mut Scanner<'a>) -> Option<()>,
) -> Option<Value<T>> {
    if let Value::Null = scanner.object_or_null()? {
        return Some(Value::Null);
    }
    let mut value = T::default();
    let mut seen = Seen::default();
    scanner.object(|key, scanner| field(&mut value, &mut seen, key, scanner))?;
    Some(Value::Present(value))
}

fn scan_message<'a>(scanner: &mut Scanner<'a>) -> Option<Value<Message<'a>>> {
    object_or_null(scanner, |message: &mut Message<'a>, seen, key, scanner| {
        match key {
            b"id" => message.id = seen.once(0, text(scanner))?.into_field(),
            b"model" => message.model = seen.once(1, text(scanner))?.into_field(),
            b"usage" => message.usage = seen.once(2, scan_usage(scanner))?.into_option(),
            _ => scanner.skip_value()?,
        }
        Some(())
    })
}

fn scan_usage<'a>(scanner: &mut Scanner<'a>) -> Option<Value<Usage<'a>>> {
    object_or_null(scanner, |usage: &mut Usage<'a>, seen, key, scanner| {
        match key {
            b"input_tokens" => {
                usage.input_tokens = seen.once(0, scanner.u64_or_null())?.into_option();
            }
            b"output_tokens" => {
                usage.output_tokens = seen.once(1, scanner.u64_or_null())?.into_option();
            }
            b"cache_creation_input_tokens" => {
                usage.cache_creation_input_tokens =
                    seen.once(2, scanner.u64_or_null())?.into_field();
            }
            b"cache_read_input_tokens" => {
                usage.cache_read_input_tokens = seen.once(3, scanner.u64_or_null())?.into_field();
            }
            b"cache_creation" => {
                usage.cache_creation = seen.once(4, scan_cache_creation(scanner))?.into_option();
            }
            b"speed" => usage.speed = seen.once(5, text(scanner))?.into_field(),
            _ => scanner.skip_value()?,
        }
        Some(())
    })
}

fn scan_cache_creation(scanner: &mut Scanner<'_>) -> Option<Value<CacheCreation>> {
    object_or_null(scanner, |split: &mut CacheCreation, seen, key, scanner| {
        match key {
            b"ephemeral_5m_input_tokens" => {
                split.ephemeral_5m_input_tokens =
                    seen.once(0, scanner.u64_or_null())?.into_option()?;
            }
            b"ephemeral_1h_input_tokens" => {
                split.ephemeral_1h_input_tokens =
                    seen.once(1, scanner.u64_or_null())?.into_option()?;
            }
            _ => scanner.skip_value()?,
        }
        Some(())
    })
}

fn scan_progress_data<'a>(scanner: &mut Scanner<'a>) -> Option<Value<ProgressData<'a>>> {
    object_or_null(
        scanner,
        |data: &mut ProgressData<'a>, seen, key, scanner| {
            match key {
                b"message" => data.message = seen.once(0, scan_envelope(scanner))?.into_option(),
                _ => scanner.skip_value()?,
            }
            Some(())
        },
    )
}

fn scan_envelope<'a>(scanner: &mut Scanner<'a>) -> Option<Value<ProgressEnvelope<'a>>> {
    object_or_null(
        scanner,
        |envelope: &mut ProgressEnvelope<'a>, seen, key, scanner| {
            match key {
                b"timestamp" => envelope.timestamp = seen.once(0, text(scanner))?.into_field(),
                b"requestId" => envelope.request_id = seen.once(1, text(scanner))?.into_field(),
                b"isSidechain" => {
                    envelope.is_sidechain = seen.once(2, scanner.bool_or_null())?.into_option();
                }
                b"uuid" => envelope.uuid = seen.once(3, text(scanner))?.into_option(),
                b"message" => {
                    envelope.message = seen.once(4, scan_message(scanner))?.into_option();
                }
                _ => scanner.skip_value()?,
            }
            Some(())
        },
    )
}

#[derive(Deserialize)]
struct StreamLine<'a> {
    #[serde(default, rename = "type", borrow)]
    kind: Option<Text<'a>>,
    #[serde(default, borrow)]
    session_id: Option<Text<'a>>,
    #[serde(default, borrow)]
    model: Option<Text<'a>>,
    #[serde(default, borrow)]
    cwd: Option<Text<'a>>,
    #[serde(default, borrow)]
    parent_tool_use_id: Option<Text<'a>>,
    #[serde(default, rename = "requestId", borrow)]
    request_id: Option<Text<'a>>,
    #[serde(default, borrow)]
    message: Option<Message<'a>>,
    #[serde(default, rename = "modelUsage")]
    model_usage: Option<std::collections::BTreeMap<String, ModelUsage>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[expect(clippy::struct_field_names, reason = "the names of the log's fields")]
struct ModelUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: u64,
    #[serde(default)]
    cache_creation_input_tokens: u64,
}

/// The format [`StreamParser`] reads.
#[derive(Debug)]
pub(super) enum ClaudeStream {}

/// Reads `claude -p` output: `stream-json` lines or the `json` result object.
pub(super) type StreamParser = LineParser<ClaudeStream>;

impl StreamParser {
    /// Whether a line can matter: usage, or the session id of an `init` line.
    pub(super) fn wants(line: &[u8]) -> bool {
        has_usage_marker(line) || memchr::memmem::find(line, b"\"session_id\"").is_some()
    }

    pub(super) fn line(
        &mut self,
        line: &[u8],
        emit: &mut dyn FnMut(UsageRecord),
    ) -> Result<(), Malformed> {
        if !Self::wants(line) {
            return Ok(());
        }
        let parsed: StreamLine = serde_json::from_slice(line)?;
        self.value(&parsed, emit);
        Ok(())
    }

    /// Handles one element of a `--verbose --output-format json` array, or a pretty-printed result.
    pub(super) fn document_value(
        &mut self,
        value: &serde_json::Value,
        emit: &mut dyn FnMut(UsageRecord),
    ) -> Result<(), Malformed> {
        let parsed = StreamLine::deserialize(value)?;
        self.value(&parsed, emit);
        Ok(())
    }

    fn value(&mut self, parsed: &StreamLine, emit: &mut dyn FnMut(UsageRecord)) {
        if let Some(session) = &parsed.session_id {
            self.carry.session = Some(session.as_str().to_owned());
        }
        let kind = parsed.kind.as_ref().map(Text::as_str);
        if kind == Some("system") {
            if let Some(model) = &parsed.model {
                self.carry.model = Some(model.as_str().to_owned());
            }
            if let Some(cwd) = &parsed.cwd {
                self.carry.cwd = Some(cwd.as_str().to_owned());
            }
        }
        match kind {
            Some("assistant") => self.assistant(parsed, emit),
            Some("result") => self.result(parsed, emit),
            _ => {}
        }
    }

    fn assistant(&mut self, parsed: &StreamLine, emit: &mut dyn FnMut(UsageRecord)) {
        let Some(message) = &parsed.message else {
            return;
        };
        let Some(usage) = &message.usage else {
            return;
        };
        let model = message.model.present().map(Text::as_str);
        if model == Some(SYNTHETIC_MODEL) {
            return;
        }
        let Some(message_id) = message.id.present().map(Text::as_str) else {
            return;
        };
        self.carry.saw_messages = true;
        let key = match &parsed.request_id {
            Some(request) => format!("claude-stream:{message_id}:{}", request.as_str()),
            None => format!("claude-stream:{message_id}"),
        };
        emit(UsageRecord {
            session: Some(self.session()),
            model: model.map_or_else(|| self.model_or("unknown"), str::to_owned),
            sidechain: parsed.parent_tool_use_id.is_some(),
            cwd: self.carry.cwd.clone(),
            ..usage.record(
                key,
                usage.input_tokens.unwrap_or(0),
                usage.output_tokens.unwrap_or(0),
            )
        });
    }

    fn result(&self, parsed: &StreamLine, emit: &mut dyn FnMut(UsageRecord)) {
        if self.carry.saw_messages {
            return;
        }
        let Some(models) = &parsed.model_usage else {
            return;
        };
        let session = self.session();
        for (model, usage) in models {
            let record = UsageRecord {
                key: format!("claude-result:{session}:{model}"),
                source: "claude".to_owned(),
                session: Some(session.clone()),
                model: model.clone(),
                at: None,
                input: usage.input_tokens,
                output: usage.output_tokens,
                cache_write_5m: usage.cache_creation_input_tokens,
                cache_write_1h: 0,
                cache_read: usage.cache_read_input_tokens,
                reasoning: 0,
                requests: 1,
                sidechain: false,
                speed: None,
                cwd: self.carry.cwd.clone(),
                branch: None,
                project_hash: None,
            };
            if record.total_tokens() > 0 {
                emit(record);
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::usage::import::Carry;

    pub(in crate::usage::import) fn assistant_line(
        message_id: &str,
        request_id: Option<&str>,
        output: u64,
        sidechain: bool,
    ) -> String {
        let request = request_id.map_or(String::new(), |id| format!(r#","requestId":"{id}""#));
        format!(
            r#"{{"parentUuid":"p","isSidechain":{sidechain},"userType":"external","cwd":"/repo","sessionId":"s1","version":"1.0.65","gitBranch":"main","message":{{"id":"{message_id}","type":"message","role":"assistant","model":"claude-sonnet-4-20250514","content":[{{"type":"text","text":"I'll use"}}],"stop_reason":null,"stop_sequence":null,"usage":{{"input_tokens":4,"cache_creation_input_tokens":100,"cache_read_input_tokens":1000,"cache_creation":{{"ephemeral_5m_input_tokens":60,"ephemeral_1h_input_tokens":40}},"output_tokens":{output},"service_tier":"standard"}}}}{request},"type":"assistant","uuid":"u-{message_id}-{output}","timestamp":"2025-09-09T21:51:21.682Z"}}"#
        )
    }

    fn parse(line: &str) -> Result<Option<UsageRecord>, Malformed> {
        transcript_line(line.as_bytes())
    }

    #[test]
    fn reads_an_assistant_line() {
        let record = parse(&assistant_line("msg_1", Some("req_1"), 3, false))
            .unwrap()
            .unwrap();
        assert_eq!(
            record,
            UsageRecord {
                key: "claude:msg_1:req_1".to_owned(),
                source: "claude".to_owned(),
                session: Some("s1".to_owned()),
                model: "claude-sonnet-4-20250514".to_owned(),
                at: Some("2025-09-09T21:51:21.682Z".parse().unwrap()),
                input: 4,
                output: 3,
                cache_write_5m: 60,
                cache_write_1h: 40,
                cache_read: 1000,
                reasoning: 0,
                requests: 1,
                sidechain: false,
                speed: None,
                cwd: Some("/repo".to_owned()),
                branch: Some("main".to_owned()),
                project_hash: None,
            }
        );
    }

    #[test]
    fn keys_on_the_message_id_alone_without_request_id() {
        let record = parse(&assistant_line("msg_1", None, 3, true))
            .unwrap()
            .unwrap();
        assert_eq!(record.key, "claude:msg_1");
        assert!(record.sidechain);
    }

    #[test]
    fn counts_flat_cache_creation_as_five_minutes() {
        let line = r#"{"sessionId":"s","timestamp":"2025-01-01T00:00:00Z","requestId":"r","message":{"id":"m","model":"claude-opus-4-1","usage":{"input_tokens":1,"output_tokens":2,"cache_creation_input_tokens":30,"cache_read_input_tokens":4,"speed":"fast"}}}"#;
        let record = parse(line).unwrap().unwrap();
        assert_eq!(
            (
                record.cache_write_5m,
                record.cache_write_1h,
                record.speed.as_deref()
            ),
            (30, 0, Some("fast"))
        );
    }

    #[test]
    fn skips_lines_without_usage_and_synthetic_messages() {
        assert_eq!(parse(r#"{"type":"summary","summary":"x"}"#), Ok(None));
        assert_eq!(
            parse(
                r#"{"type":"user","toolUseResult":{"usage":{"input_tokens":1}},"message":{"role":"user"},"timestamp":"2025-01-01T00:00:00Z"}"#
            ),
            Ok(None)
        );
        let synthetic = assistant_line("msg_1", Some("r"), 0, false)
            .replace("claude-sonnet-4-20250514", SYNTHETIC_MODEL);
        assert_eq!(parse(&synthetic), Ok(None));
    }

    #[test]
    fn rejects_what_the_reference_analyzer_rejects() {
        let line = assistant_line("msg_1", Some("req_1"), 3, false);
        for broken in [
            line.replace(r#""requestId":"req_1""#, r#""requestId":null"#),
            line.replace(r#""requestId":"req_1""#, r#""requestId":"""#),
            line.replace(r#""version":"1.0.65""#, r#""version":"dev""#),
            line.replace(r#""model":"claude-sonnet-4-20250514""#, r#""model":null"#),
            line.replace(
                r#""timestamp":"2025-09-09T21:51:21.682Z""#,
                r#""timestamp":"yesterday""#,
            ),
            line.replace(r#""output_tokens":3,"#, ""),
            line[..line.len() - 10].to_owned(),
        ] {
            assert_eq!(parse(&broken), Err(Malformed), "{broken}");
        }
    }

    #[test]
    fn reads_subagent_progress_copies() {
        let line = r#"{"type":"progress","sessionId":"s1","cwd":"/repo","data":{"type":"agent_progress","message":{"type":"assistant","timestamp":"2025-01-01T00:00:00Z","requestId":"req_9","isSidechain":true,"message":{"id":"msg_9","model":"claude-haiku-4-5","usage":{"input_tokens":7,"output_tokens":8}}}},"timestamp":"2025-01-01T00:00:01Z"}"#;
        let record = parse(line).unwrap().unwrap();
        assert_eq!(record.key, "claude:msg_9:req_9");
        assert_eq!(
            (record.input, record.output, record.sidechain),
            (7, 8, true)
        );
        assert_eq!(record.at, Some("2025-01-01T00:00:00Z".parse().unwrap()));
    }

    #[test]
    fn the_marker_is_found_anywhere_in_a_line() {
        for length in [0, 5, 9, 500, 1023, 1024, 1025, 1032, 1033, 3000] {
            let blank = vec![b'x'; length];
            assert!(!has_usage_marker(&blank));
            for start in 0..=length.saturating_sub(USAGE_MARKER.len()) {
                if length < USAGE_MARKER.len() {
                    break;
                }
                let mut line = blank.clone();
                line[start..start + USAGE_MARKER.len()].copy_from_slice(USAGE_MARKER);
                assert!(has_usage_marker(&line), "length {length}, at {start}");
            }
        }
    }

    /// Asserts that the scanner reads `line` as `serde_json` does, or leaves it to it;
    /// returns whether it read it.
    fn scans_as_serde_json(line: &[u8]) -> bool {
        let scanned = scan_transcript_line(line);
        if let Some(scanned) = &scanned {
            let parsed = serde_json::from_slice::<TranscriptLine>(line).ok();
            assert_eq!(
                Some(scanned),
                parsed.as_ref(),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        scanned.is_some()
    }

    #[test]
    fn the_scanner_reads_lines_as_serde_json_does() {
        let progress = r#"{"type":"progress","sessionId":"s1","cwd":"/repo","data":{"type":"agent_progress","message":{"type":"assistant","timestamp":"2025-01-01T00:00:00Z","requestId":"req_9","isSidechain":true,"uuid":"u9","message":{"id":"msg_9","model":"claude-haiku-4-5","usage":{"input_tokens":7,"output_tokens":8}}}},"timestamp":"2025-01-01T00:00:01Z","costUSD":null,"isApiErrorMessage":false}"#;
        let tricky = assistant_line("msg_1", Some("req_1"), 3, false).replace(
            r#""text":"I'll use""#,
            r#""text":"a \"usage\":{ \\ \n \u00e9 caf\u00e9 \ud83d\ude00 é","input":{"usage":{"input_tokens":99}},"n":[-1.5e+3,0,true,null,{}]"#,
        );
        let spaced = "\t{ \"sessionId\" : \"s\" ,\r\n \"message\" : { \"id\" : \"m\" , \"usage\" : { \"input_tokens\" : 1 , \"output_tokens\" : 2 , \"cache_creation\" : { \"ephemeral_1h_input_tokens\" : 5 } , \"speed\" : \"fast\" } } , \"costUSD\" : 0.5 , \"timestamp\" : \"2025-01-01T00:00:00Z\" } \n";
        let bases = [
            assistant_line("msg_1", Some("req_1"), 3, false),
            assistant_line("msg_2", None, 0, true),
            progress.to_owned(),
            tricky,
            spaced.to_owned(),
        ];
        for base in &bases {
            assert!(scans_as_serde_json(base.as_bytes()), "not scanned: {base}");
        }
        let values = [
            "null",
            "true",
            "false",
            "0",
            "1",
            "04",
            "-4",
            "4.0",
            "1e3",
            "18446744073709551616",
            r#""x""#,
            r#""x\"y""#,
            r#""\u0041""#,
            "[]",
            "[1]",
            "{}",
            r#"{"a":1}"#,
            "nul",
            "",
        ];
        let mut variants = 0;
        for base in &bases {
            let bytes = base.as_bytes();
            for end in 0..bytes.len() {
                scans_as_serde_json(&bytes[..end]);
            }
            for (position, _) in base.match_indices(':') {
                let rest = &base[position + 1..];
                let value_end = rest
                    .find([',', '}'])
                    .filter(|end| !rest[..*end].contains(['{', '[']))
                    .unwrap_or(0);
                for value in values {
                    let line = format!("{}:{value}{}", &base[..position], &rest[value_end..]);
                    variants += usize::from(scans_as_serde_json(line.as_bytes()));
                }
            }
            for (position, _) in base.match_indices("{\"") {
                for repeated in [
                    r#""cwd":"/x","#,
                    r#""cwd":"/x","cwd":"/y","#,
                    r#""usage":null,"#,
                    r#""id":"a","id":"b","#,
                    r#""mo\u0064el":"m","#,
                    "\"k\u{e9}y\":1,",
                ] {
                    let line =
                        format!("{}{{{repeated}{}", &base[..position], &base[position + 1..]);
                    variants += usize::from(scans_as_serde_json(line.as_bytes()));
                }
            }
            for position in 0..bytes.len() {
                for replacement in [
                    b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b' ', b'\t', 1, b'x', b'1',
                    0xff,
                ] {
                    let mut line = bytes.to_vec();
                    line[position] = replacement;
                    variants += usize::from(scans_as_serde_json(&line));
                }
            }
        }
        assert!(variants > 1000, "only {variants} variants scanned");
    }

    fn stream(lines: &[&str]) -> Vec<UsageRecord> {
        let mut parser = StreamParser::new(Carry::default(), "file".to_owned());
        let mut out = Vec::new();
        for line in lines {
            parser
                .line(line.as_bytes(), &mut |record| out.push(record))
                .unwrap();
        }
        out
    }

    const RESULT: &str = r#"{"type":"result","subtype":"success","is_error":false,"num_turns":15,"session_id":"22795ca6","total_cost_usd":0.2416735,"usage":{"input_tokens":18,"cache_creation_input_tokens":14760,"cache_read_input_tokens":169817,"output_tokens":2577,"cache_creation":{"ephemeral_1h_input_tokens":0,"ephemeral_5m_input_tokens":14760},"speed":"standard"},"modelUsage":{"us.anthropic.claude-opus-4-6-v1":{"inputTokens":18,"outputTokens":2577,"cacheReadInputTokens":169817,"cacheCreationInputTokens":14760,"webSearchRequests":0,"costUSD":0.2416735,"contextWindow":200000,"maxOutputTokens":64000},"claude-haiku-4-5":{"inputTokens":5,"outputTokens":6,"cacheReadInputTokens":0,"cacheCreationInputTokens":0}},"permission_denials":[],"uuid":"x"}"#;

    #[test]
    fn a_lone_result_gives_one_record_per_model() {
        let records = stream(&[RESULT]);
        let keys: Vec<_> = records.iter().map(|record| record.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "claude-result:22795ca6:claude-haiku-4-5",
                "claude-result:22795ca6:us.anthropic.claude-opus-4-6-v1"
            ]
        );
        let opus = &records[1];
        assert_eq!(
            (
                opus.input,
                opus.output,
                opus.cache_read,
                opus.cache_write_5m
            ),
            (18, 2577, 169_817, 14_760)
        );
    }

    #[test]
    fn a_stream_with_messages_ignores_its_cumulative_result() {
        let records = stream(&[
            r#"{"type":"system","subtype":"init","session_id":"s9","model":"claude-opus-4-6","cwd":"/w"}"#,
            r#"{"type":"assistant","message":{"id":"msg_a","model":"claude-opus-4-6","usage":{"input_tokens":3,"output_tokens":5,"cache_read_input_tokens":10,"cache_creation_input_tokens":2}},"parent_tool_use_id":null,"session_id":"s9"}"#,
            r#"{"type":"assistant","message":{"id":"msg_b","model":"claude-haiku-4-5","usage":{"input_tokens":1,"output_tokens":1}},"parent_tool_use_id":"toolu_1","session_id":"s9"}"#,
            r#"{"type":"stream_event","event":{"type":"message_delta","usage":{"output_tokens":99}},"session_id":"s9"}"#,
            RESULT,
        ]);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].key, "claude-stream:msg_a");
        assert_eq!(
            (
                records[0].input,
                records[0].output,
                records[0].cache_read,
                records[0].cache_write_5m
            ),
            (3, 5, 10, 2)
        );
        assert_eq!(records[0].cwd.as_deref(), Some("/w"));
        assert!(records[1].sidechain);
    }
}
