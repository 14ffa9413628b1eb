//! Codex CLI rollout files and `codex exec --json` events.
//!
//! Both count tokens cumulatively, so records are the differences between successive
//! totals: an event whose total did not advance is a re-emit and adds nothing, and a total
//! that drops is a reset (or a compaction) whose new value counts from zero. Codex counts
//! cached input inside `input_tokens` and reasoning inside `output_tokens`; records follow
//! Anthropic's buckets, so `input` is input minus cached and `cache_read` is the cached part.
//!
//! A subagent's rollout (`source.subagent`) begins by replaying its parent's history, token
//! counts included, all stamped with the second it was spawned: those counts are taken as
//! the starting point, not as the subagent's usage.

use jiff::Timestamp;
use serde::Deserialize;

use super::Malformed;
use super::json::{SubagentSource, Text};
use super::state::{CumulativeTokens, LineParser};
use crate::usage::UsageRecord;

/// The model of rollouts written before `turn_context` lines existed.
const DEFAULT_MODEL: &str = "gpt-5";

#[derive(Deserialize)]
struct RolloutLine<'a> {
    #[serde(default, borrow)]
    timestamp: Option<Text<'a>>,
    #[serde(default, rename = "type", borrow)]
    kind: Option<Text<'a>>,
    #[serde(default, borrow)]
    payload: Option<Payload<'a>>,
}

#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(default, rename = "type", borrow)]
    kind: Option<Text<'a>>,
    #[serde(default, borrow)]
    id: Option<Text<'a>>,
    #[serde(default, borrow)]
    cwd: Option<Text<'a>>,
    #[serde(default, borrow)]
    git: Option<Git<'a>>,
    #[serde(default)]
    source: SubagentSource,
    #[serde(default, borrow)]
    model: Option<Text<'a>>,
    #[serde(default)]
    info: Option<Info>,
}

#[derive(Deserialize)]
struct Git<'a> {
    #[serde(default, borrow)]
    branch: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct Info {
    #[serde(default)]
    total_token_usage: Option<CodexUsage>,
    #[serde(default)]
    last_token_usage: Option<CodexUsage>,
}

#[derive(Clone, Copy, Deserialize)]
#[expect(clippy::struct_field_names, reason = "the names of the log's fields")]
struct CodexUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    cached_input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    reasoning_output_tokens: u64,
    #[serde(default)]
    total_tokens: Option<u64>,
}

impl CodexUsage {
    fn cumulative(self) -> CumulativeTokens {
        CumulativeTokens {
            input: self.input_tokens,
            cached: self.cached_input_tokens,
            output: self.output_tokens,
            reasoning: self.reasoning_output_tokens,
            total: self
                .total_tokens
                .unwrap_or(self.input_tokens + self.output_tokens),
        }
    }
}

/// Returns the usage between two cumulative readings: `None` when the total did not
/// advance, the whole reading when it dropped (a reset).
fn advance(previous: Option<CumulativeTokens>, now: CumulativeTokens) -> Option<CumulativeTokens> {
    match previous {
        Some(previous) if now.total == previous.total => None,
        Some(previous) if now.total > previous.total => Some(CumulativeTokens {
            input: now.input.saturating_sub(previous.input),
            cached: now.cached.saturating_sub(previous.cached),
            output: now.output.saturating_sub(previous.output),
            reasoning: now.reasoning.saturating_sub(previous.reasoning),
            total: now.total - previous.total,
        }),
        _ => Some(now),
    }
}

/// Fills the Anthropic-style buckets of `record` from Codex counts.
fn set_buckets(record: &mut UsageRecord, delta: CumulativeTokens) {
    record.input = delta.input.saturating_sub(delta.cached);
    record.cache_read = delta.cached;
    record.output = delta.output;
    record.reasoning = delta.reasoning;
}

/// The format [`RolloutParser`] reads.
#[derive(Debug)]
pub(super) enum CodexRollout {}

/// Reads a rollout file line by line, carrying the session, model and last totals.
pub(super) type RolloutParser = LineParser<CodexRollout>;

impl RolloutParser {
    fn wants(line: &[u8]) -> bool {
        memchr::memmem::find(line, b"token_count").is_some()
            || memchr::memmem::find(line, b"\"turn_context\"").is_some()
            || memchr::memmem::find(line, b"\"session_meta\"").is_some()
    }

    pub(super) fn line(
        &mut self,
        line: &[u8],
        emit: &mut dyn FnMut(UsageRecord),
    ) -> Result<(), Malformed> {
        if !Self::wants(line) {
            return Ok(());
        }
        let parsed: RolloutLine = serde_json::from_slice(line)?;
        let Some(payload) = parsed.payload else {
            return Ok(());
        };
        match parsed.kind.as_ref().map(Text::as_str) {
            Some("session_meta") => {
                if let Some(id) = &payload.id {
                    self.carry.session = Some(id.as_str().to_owned());
                }
                if let Some(cwd) = &payload.cwd {
                    self.carry.cwd = Some(cwd.as_str().to_owned());
                }
                if let Some(branch) = payload.git.as_ref().and_then(|git| git.branch.as_ref()) {
                    self.carry.branch = Some(branch.as_str().to_owned());
                }
                self.carry.sidechain = payload.source.0;
                self.carry.replay_second = if payload.source.0 {
                    timestamp(parsed.timestamp.as_ref()).map(Timestamp::as_second)
                } else {
                    None
                };
            }
            Some("turn_context") => {
                if let Some(model) = &payload.model {
                    self.carry.model = Some(model.as_str().to_owned());
                }
                if let Some(cwd) = &payload.cwd {
                    self.carry.cwd = Some(cwd.as_str().to_owned());
                }
            }
            Some("event_msg") if payload.kind.as_ref().map(Text::as_str) == Some("token_count") => {
                let Some(info) = payload.info else {
                    return Ok(());
                };
                self.token_count(parsed.timestamp.as_ref(), &info, emit);
            }
            _ => {}
        }
        Ok(())
    }

    fn token_count(
        &mut self,
        stamp: Option<&Text>,
        info: &Info,
        emit: &mut dyn FnMut(UsageRecord),
    ) {
        let at = timestamp(stamp);
        let (delta, cumulative_total) = if let Some(total) = info.total_token_usage {
            let now = total.cumulative();
            if let (Some(replay), Some(at)) = (self.carry.replay_second, at)
                && at.as_second() <= replay
            {
                self.carry.totals = Some(now);
                return;
            }
            let delta = advance(self.carry.totals, now);
            self.carry.totals = Some(now);
            match delta {
                Some(delta) => (delta, now.total),
                None => return,
            }
        } else if let Some(last) = info.last_token_usage {
            let last = last.cumulative();
            (last, last.total)
        } else {
            return;
        };
        if delta.input == 0 && delta.output == 0 {
            return;
        }
        let session = self.session();
        let stamp = stamp.map_or("", Text::as_str);
        let mut record = UsageRecord {
            key: format!("codex:{session}:{stamp}:{cumulative_total}"),
            source: "codex".to_owned(),
            session: Some(session),
            model: self.model_or(DEFAULT_MODEL),
            at,
            requests: 1,
            sidechain: self.carry.sidechain,
            cwd: self.carry.cwd.clone(),
            branch: self.carry.branch.clone(),
            ..UsageRecord::default()
        };
        set_buckets(&mut record, delta);
        emit(record);
    }
}

fn timestamp(stamp: Option<&Text>) -> Option<Timestamp> {
    stamp.and_then(|stamp| stamp.as_str().parse().ok())
}

#[derive(Deserialize)]
struct ExecLine<'a> {
    #[serde(default, rename = "type", borrow)]
    kind: Option<Text<'a>>,
    #[serde(default, borrow)]
    thread_id: Option<Text<'a>>,
    #[serde(default)]
    usage: Option<CodexUsage>,
}

/// The format [`ExecParser`] reads.
#[derive(Debug)]
pub(super) enum CodexExec {}

/// Reads `codex exec --json` events: `turn.completed` usage is cumulative for the thread.
///
/// The events name no model, so records say `unknown`; the rollout file of the same
/// thread (its `session_meta.id` is the `thread_id`) has the model, and when both are
/// imported deduplication keeps the rollout's records.
pub(super) type ExecParser = LineParser<CodexExec>;

impl ExecParser {
    pub(super) fn line(
        &mut self,
        line: &[u8],
        emit: &mut dyn FnMut(UsageRecord),
    ) -> Result<(), Malformed> {
        if memchr::memmem::find(line, b"turn.completed").is_none()
            && memchr::memmem::find(line, b"thread.started").is_none()
        {
            return Ok(());
        }
        let parsed: ExecLine = serde_json::from_slice(line)?;
        match parsed.kind.as_ref().map(Text::as_str) {
            Some("thread.started") => {
                if let Some(thread) = &parsed.thread_id {
                    if self.carry.session.as_deref() != Some(thread.as_str()) {
                        self.carry.totals = None;
                    }
                    self.carry.session = Some(thread.as_str().to_owned());
                }
            }
            Some("turn.completed") => {
                let Some(usage) = parsed.usage else {
                    return Ok(());
                };
                let now = CodexUsage {
                    total_tokens: None,
                    ..usage
                }
                .cumulative();
                let delta = advance(self.carry.totals, now);
                self.carry.totals = Some(now);
                let Some(delta) = delta else {
                    return Ok(());
                };
                let session = self.session();
                let mut record = UsageRecord {
                    key: format!("codex-exec:{session}:{}", now.total),
                    source: "codex".to_owned(),
                    session: Some(session),
                    model: "unknown".to_owned(),
                    requests: 1,
                    ..UsageRecord::default()
                };
                set_buckets(&mut record, delta);
                emit(record);
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::usage::Totals;
    use crate::usage::import::Carry;

    pub(in crate::usage::import) fn token_count(
        timestamp: &str,
        input: u64,
        cached: u64,
        output: u64,
        reasoning: u64,
    ) -> String {
        let total = input + output;
        format!(
            r#"{{"timestamp":"{timestamp}","type":"event_msg","payload":{{"type":"token_count","info":{{"total_token_usage":{{"input_tokens":{input},"cached_input_tokens":{cached},"output_tokens":{output},"reasoning_output_tokens":{reasoning},"total_tokens":{total}}},"last_token_usage":{{"input_tokens":1,"cached_input_tokens":0,"output_tokens":1,"total_tokens":2}},"model_context_window":258400}},"rate_limits":{{"primary":{{"used_percent":0.0,"window_minutes":300,"resets_at":1776394093}},"plan_type":"pro"}}}}}}"#
        )
    }

    pub(in crate::usage::import) const SESSION_META: &str = r#"{"timestamp":"2025-11-22T20:45:35.610Z","type":"session_meta","payload":{"id":"019aad50","cwd":"/Users/me/rtchess","originator":"codex_cli_rs","cli_version":"0.60.1","source":"cli","model_provider":"openai","git":{"branch":"feat","repository_url":"u","commit_hash":"c"}}}"#;

    fn rollout(lines: &[String]) -> (Vec<UsageRecord>, Carry) {
        let mut parser = RolloutParser::new(Carry::default(), "file".to_owned());
        let mut out = Vec::new();
        for line in lines {
            parser
                .line(line.as_bytes(), &mut |record| out.push(record))
                .unwrap();
        }
        (out, parser.into_carry())
    }

    #[test]
    fn takes_deltas_skips_re_emits_and_survives_a_reset() {
        let (records, carry) = rollout(&[
            SESSION_META.to_owned(),
            token_count("2025-11-22T20:46:00.000Z", 1000, 200, 50, 10, ),
            r#"{"timestamp":"2025-11-22T20:46:01.000Z","type":"event_msg","payload":{"type":"token_count","info":null}}"#.to_owned(),
            r#"{"timestamp":"2025-11-22T20:46:02.000Z","type":"turn_context","payload":{"model":"gpt-5-codex","effort":"high"}}"#.to_owned(),
            token_count("2025-11-22T20:46:03.000Z", 1000, 200, 50, 10),
            token_count("2025-11-22T20:46:04.000Z", 2500, 1200, 90, 30),
            token_count("2025-11-22T20:46:05.000Z", 2500, 1200, 90, 30),
            token_count("2025-11-22T20:46:06.000Z", 300, 100, 20, 0),
            r#"{"timestamp":"2025-11-22T20:46:07.000Z","type":"response_item","payload":{"type":"message","role":"assistant","content":[{"type":"output_text","text":"token_count"}]}}"#.to_owned(),
        ]);
        let keys: Vec<_> = records.iter().map(|record| record.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "codex:019aad50:2025-11-22T20:46:00.000Z:1050",
                "codex:019aad50:2025-11-22T20:46:04.000Z:2590",
                "codex:019aad50:2025-11-22T20:46:06.000Z:320",
            ]
        );
        assert_eq!(records[0].model, "gpt-5");
        assert_eq!(records[1].model, "gpt-5-codex");
        assert_eq!(
            (
                records[1].input,
                records[1].cache_read,
                records[1].output,
                records[1].reasoning
            ),
            (500, 1000, 40, 20)
        );
        assert_eq!(records[0].cwd.as_deref(), Some("/Users/me/rtchess"));
        assert_eq!(records[0].branch.as_deref(), Some("feat"));
        let totals: Totals = records.iter().collect();
        assert_eq!(
            (
                totals.input,
                totals.cache_read,
                totals.output,
                totals.reasoning,
                totals.requests
            ),
            (800 + 500 + 200, 200 + 1000 + 100, 50 + 40 + 20, 10 + 20, 3)
        );
        assert_eq!(carry.totals.unwrap().total, 320);
    }

    #[test]
    fn uses_last_usage_only_without_totals() {
        let (records, _) = rollout(&[
            r#"{"timestamp":"2025-10-01T00:00:00Z","type":"event_msg","payload":{"type":"token_count","info":{"last_token_usage":{"input_tokens":100,"cached_input_tokens":40,"output_tokens":7,"total_tokens":107}}}}"#.to_owned(),
        ]);
        assert_eq!(records.len(), 1);
        assert_eq!(
            (records[0].input, records[0].cache_read, records[0].output),
            (60, 40, 7)
        );
        assert_eq!(records[0].key, "codex:file:2025-10-01T00:00:00Z:107");
    }

    #[test]
    fn a_subagent_skips_its_replayed_history() {
        let meta = r#"{"timestamp":"2025-11-22T21:00:00.100Z","type":"session_meta","payload":{"id":"child","cwd":"/w","source":{"subagent":{"thread_spawn":{"parent_thread_id":"019aad50","depth":1}}}}}"#;
        let (records, _) = rollout(&[
            meta.to_owned(),
            token_count("2025-11-22T21:00:00.400Z", 50_000, 40_000, 900, 0),
            token_count("2025-11-22T21:00:00.700Z", 80_000, 60_000, 1500, 0),
            token_count("2025-11-22T21:00:09.000Z", 81_000, 60_500, 1600, 0),
        ]);
        assert_eq!(records.len(), 1);
        assert!(records[0].sidechain);
        assert_eq!(
            (records[0].input, records[0].cache_read, records[0].output),
            (500, 500, 100)
        );
    }

    #[test]
    fn exec_events_are_cumulative_per_thread() {
        let mut parser = ExecParser::new(Carry::default(), "file".to_owned());
        let mut records = Vec::new();
        for line in [
            r#"{"type":"thread.started","thread_id":"0199a213"}"#,
            r#"{"type":"turn.started"}"#,
            r#"{"type":"item.completed","item":{"id":"item_0","type":"agent_message","text":"turn.completed"}}"#,
            r#"{"type":"turn.completed","usage":{"input_tokens":24763,"cached_input_tokens":24448,"output_tokens":122}}"#,
            r#"{"type":"turn.started"}"#,
            r#"{"type":"turn.completed","usage":{"input_tokens":70021,"cached_input_tokens":57088,"output_tokens":2374}}"#,
            r#"{"type":"turn.completed","usage":{"input_tokens":70021,"cached_input_tokens":57088,"output_tokens":2374}}"#,
        ] {
            parser
                .line(line.as_bytes(), &mut |record| records.push(record))
                .unwrap();
        }
        let totals: Totals = records.iter().collect();
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].key, "codex-exec:0199a213:72395");
        assert_eq!(
            (totals.input, totals.cache_read, totals.output),
            (70021 - 57088, 57088, 2374)
        );
    }
}
