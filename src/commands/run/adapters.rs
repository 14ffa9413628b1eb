//! What agent CLIs print: their token usage (live and at the end) and whether they succeeded.
//!
//! Claude Code: `-p --output-format json` prints one `result` object (an array of events
//! with `--verbose`); `stream-json` prints events, one per line, ending with the same
//! `result`. Codex CLI: `exec --json` prints events, one per line; `turn.completed`
//! carries the thread's usage so far (cumulative: the last one counts). Gemini CLI:
//! `--output-format json` prints one object with `stats.models`. Generic agents report
//! nothing here: their usage comes from the usage file, in `gitprio usage record --stdin`
//! lines. Usage is converted to gitprio's buckets: `input` excludes cached tokens.
//!
//! One token-count type, the core's [`UsageRecord`], from here to the ledger. What the
//! output says is the fallback: while a CLI's own log of the session can be found, its
//! records (read by the core's import parsers, see `logs`) are the attempt's usage.

use std::collections::BTreeMap;

use gitprio_core::usage::UsageRecord;
use serde_json::Value;

/// The agent CLIs whose output gitprio reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Adapter {
    /// Claude Code: `claude -p --output-format json` (or `stream-json --verbose`).
    Claude,
    /// Codex CLI: `codex exec --json`.
    Codex,
    /// Gemini CLI: `gemini -p --output-format json`.
    Gemini,
    /// Any other command: its exit code, and usage from the usage file.
    Generic,
}

impl Adapter {
    /// Tells the adapter from the program's name (`/usr/bin/claude` is Claude Code).
    pub fn detect(program: &str) -> Adapter {
        let name = std::path::Path::new(program)
            .file_stem()
            .and_then(|name| name.to_str())
            .unwrap_or(program);
        match name {
            "claude" => Adapter::Claude,
            "codex" => Adapter::Codex,
            "gemini" => Adapter::Gemini,
            _ => Adapter::Generic,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Adapter::Claude => "claude",
            Adapter::Codex => "codex",
            Adapter::Gemini => "gemini",
            Adapter::Generic => "generic",
        }
    }
}

/// Adds `other`'s tokens and requests to `total`.
fn add(total: &mut UsageRecord, other: &UsageRecord) {
    total.input += other.input;
    total.output += other.output;
    total.cache_read += other.cache_read;
    total.cache_write_5m += other.cache_write_5m;
    total.cache_write_1h += other.cache_write_1h;
    total.reasoning += other.reasoning;
    total.requests += other.requests;
}

/// What an agent's output says about its run, once it has exited.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    /// The agent's own report of failure (`is_error`, `turn.failed`, `error`), if any.
    pub error: Option<String>,
    /// Its final message: the review summary of the run.
    pub summary: Option<String>,
    /// The agent CLI's session (or thread) id.
    pub session: Option<String>,
    pub usage: Vec<UsageRecord>,
    /// The cost the agent CLI itself estimated (Claude Code's `total_cost_usd`).
    pub cost_usd: Option<f64>,
    /// Tool uses the agent was denied (Claude Code's `permission_denials`).
    pub permission_denials: usize,
    /// Why each denied tool use was denied, as the CLI said (`Write: <reason>`).
    pub denial_reasons: Vec<String>,
    /// Whether the final result (not only streamed events) was found.
    pub complete: bool,
}

/// Reads the output of an agent that has exited.
pub fn conclude(adapter: Adapter, stdout: &str) -> Verdict {
    match adapter {
        Adapter::Claude => claude(stdout),
        Adapter::Codex => codex(stdout),
        Adapter::Gemini => gemini(stdout),
        Adapter::Generic => Verdict::default(),
    }
}

/// Follows an agent's output while it runs, for the live token count.
#[derive(Debug)]
pub struct Follower {
    adapter: Adapter,
    partial: Vec<u8>,
    /// Claude Code streams each message's usage, repeated per content block: by message id.
    messages: BTreeMap<String, UsageRecord>,
    /// Codex's cumulative usage so far.
    cumulative: Option<UsageRecord>,
    /// Usage-file lines, by key (or line number).
    lines: BTreeMap<String, UsageRecord>,
    line_count: usize,
    /// The CLI's session (Claude Code) or thread (Codex) id, once the output named it.
    session: Option<String>,
}

impl Follower {
    pub fn new(adapter: Adapter) -> Follower {
        Follower {
            adapter,
            partial: Vec::new(),
            messages: BTreeMap::new(),
            cumulative: None,
            lines: BTreeMap::new(),
            line_count: 0,
            session: None,
        }
    }

    /// Takes the next bytes of the output; complete lines are read at once.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        while let Some(end) = self.partial.iter().position(|&byte| byte == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            self.line_count += 1;
            if let Ok(value) = serde_json::from_slice::<Value>(&line) {
                self.line(&value);
            }
        }
    }

    fn line(&mut self, value: &Value) {
        match self.adapter {
            Adapter::Claude => {
                if self.session.is_none() && value["type"] == "system" {
                    self.session = text(&value["session_id"]);
                }
                if let Some((id, usage)) = claude_message(value) {
                    let known = self.messages.entry(id).or_default();
                    *known = max_usage(known, &usage);
                }
            }
            Adapter::Codex => {
                if value["type"] == "thread.started" {
                    self.session = text(&value["thread_id"]);
                }
                if value["type"] == "turn.completed" {
                    let mut usage = codex_usage(&value["usage"]);
                    usage.requests = self.cumulative.as_ref().map_or(0, |known| known.requests) + 1;
                    self.cumulative = Some(usage);
                }
            }
            Adapter::Gemini => {
                if value["type"] == "init" {
                    self.session = text(&value["session_id"]);
                }
            }
            Adapter::Generic => {
                if let Some((key, usage)) = usage_line(value) {
                    let key = key.unwrap_or_else(|| format!("line-{}", self.line_count));
                    self.lines.insert(key, usage);
                }
            }
        }
    }

    /// The usage seen so far, per model.
    pub fn usage(&self) -> Vec<UsageRecord> {
        match self.adapter {
            Adapter::Claude => by_model(self.messages.values()),
            Adapter::Codex => self.cumulative.iter().cloned().collect(),
            Adapter::Gemini => Vec::new(),
            Adapter::Generic => by_model(self.lines.values()),
        }
    }

    /// The CLI's session (or thread) id, once its output named it.
    pub fn session(&self) -> Option<&str> {
        self.session.as_deref()
    }

    /// The usage-file lines seen so far, each with its key (or `line-<n>`).
    pub fn keyed_lines(&self) -> impl Iterator<Item = (&str, &UsageRecord)> {
        self.lines.iter().map(|(key, usage)| (key.as_str(), usage))
    }

    /// All tokens seen so far.
    #[cfg(test)]
    pub fn tokens(&self) -> u64 {
        self.usage().iter().map(UsageRecord::total_tokens).sum()
    }
}

fn by_model<'a>(usages: impl Iterator<Item = &'a UsageRecord>) -> Vec<UsageRecord> {
    let mut models: BTreeMap<&str, UsageRecord> = BTreeMap::new();
    for usage in usages {
        let entry = models
            .entry(usage.model.as_str())
            .or_insert_with(|| UsageRecord {
                model: usage.model.clone(),
                ..UsageRecord::default()
            });
        add(entry, usage);
    }
    models.into_values().collect()
}

fn max_usage(left: &UsageRecord, right: &UsageRecord) -> UsageRecord {
    UsageRecord {
        model: if right.model.is_empty() {
            left.model.clone()
        } else {
            right.model.clone()
        },
        input: left.input.max(right.input),
        output: left.output.max(right.output),
        cache_read: left.cache_read.max(right.cache_read),
        cache_write_5m: left.cache_write_5m.max(right.cache_write_5m),
        cache_write_1h: left.cache_write_1h.max(right.cache_write_1h),
        reasoning: left.reasoning.max(right.reasoning),
        requests: 1,
        ..UsageRecord::default()
    }
}

fn count(value: &Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

fn text(value: &Value) -> Option<String> {
    value
        .as_str()
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(str::to_owned)
}

/// The JSON values of `stdout`: one document (possibly pretty-printed, possibly an array of
/// events), else one per line.
fn documents(stdout: &str) -> Vec<Value> {
    match serde_json::from_str::<Value>(stdout.trim()) {
        Ok(Value::Array(events)) => events,
        Ok(value) => vec![value],
        Err(_) => stdout
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .collect(),
    }
}

/// An `assistant` event's message id and usage (Claude Code stream-json).
fn claude_message(value: &Value) -> Option<(String, UsageRecord)> {
    if value["type"] != "assistant" {
        return None;
    }
    let message = &value["message"];
    let usage = &message["usage"];
    if !usage.is_object() {
        return None;
    }
    let id = message["id"].as_str()?.to_owned();
    Some((
        id,
        UsageRecord {
            model: message["model"].as_str().unwrap_or_default().to_owned(),
            input: count(&usage["input_tokens"]),
            output: count(&usage["output_tokens"]),
            cache_read: count(&usage["cache_read_input_tokens"]),
            cache_write_5m: count(&usage["cache_creation_input_tokens"]),
            cache_write_1h: 0,
            reasoning: 0,
            requests: 1,
            ..UsageRecord::default()
        },
    ))
}

#[expect(
    clippy::too_many_lines,
    reason = "a parser: one pass over Claude Code's stream-json events"
)]
fn claude(stdout: &str) -> Verdict {
    let events = documents(stdout);
    let mut streamed = Follower::new(Adapter::Claude);
    let mut session = None;
    let mut result = None;
    let mut denial_reasons = Vec::new();
    for event in &events {
        streamed.line(event);
        if event["type"] == "system" {
            session = text(&event["session_id"]).or(session);
            if event["subtype"] == "permission_denied" {
                let tool = text(&event["tool_name"]).unwrap_or_else(|| "a tool".to_owned());
                let reason = text(&event["decision_reason"])
                    .or_else(|| text(&event["message"]))
                    .unwrap_or_else(|| "no reason given".to_owned());
                denial_reasons.push(format!("{tool}: {}", first_line(&reason)));
            }
        }
        if event["type"] == "result" {
            result = Some(event);
        }
    }
    let Some(result) = result else {
        return Verdict {
            session,
            usage: streamed.usage(),
            denial_reasons,
            ..Verdict::default()
        };
    };
    let subtype = result["subtype"].as_str().unwrap_or("unknown");
    let is_error = result["is_error"].as_bool().unwrap_or(false);
    let error = (is_error || subtype != "success").then(|| {
        let detail = result["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|error| {
                        error
                            .as_str()
                            .map_or_else(|| error.to_string(), str::to_owned)
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .filter(|detail| !detail.is_empty())
            .or_else(|| text(&result["result"]));
        let kind = if subtype == "success" {
            "is_error".to_owned()
        } else {
            subtype.to_owned()
        };
        match detail {
            Some(detail) => format!("claude reported {kind}: {}", first_line(&detail)),
            None => format!("claude reported {kind}"),
        }
    });
    let mut usage: Vec<UsageRecord> = result["modelUsage"]
        .as_object()
        .map(|models| {
            models
                .iter()
                .map(|(model, counts)| UsageRecord {
                    model: model.clone(),
                    input: count(&counts["inputTokens"]),
                    output: count(&counts["outputTokens"]),
                    cache_read: count(&counts["cacheReadInputTokens"]),
                    cache_write_5m: count(&counts["cacheCreationInputTokens"]),
                    cache_write_1h: 0,
                    reasoning: 0,
                    requests: 1,
                    ..UsageRecord::default()
                })
                .collect()
        })
        .unwrap_or_default();
    let top = &result["usage"];
    if usage.is_empty() && top.is_object() {
        usage.push(UsageRecord {
            model: streamed
                .usage()
                .first()
                .map(|known| known.model.clone())
                .unwrap_or_default(),
            input: count(&top["input_tokens"]),
            output: count(&top["output_tokens"]),
            cache_read: count(&top["cache_read_input_tokens"]),
            cache_write_5m: count(&top["cache_creation_input_tokens"]),
            cache_write_1h: 0,
            reasoning: 0,
            requests: 1,
            ..UsageRecord::default()
        });
    }
    // Only the top-level usage tells the 1-hour cache writes apart; with one model they are its.
    let one_hour = count(&top["cache_creation"]["ephemeral_1h_input_tokens"]);
    if let [only] = usage.as_mut_slice() {
        let moved = one_hour.min(only.cache_write_5m);
        only.cache_write_5m -= moved;
        only.cache_write_1h += moved;
    }
    usage.sort_by_key(|model| std::cmp::Reverse(model.total_tokens()));
    if let (Some(main), Some(turns)) = (usage.first_mut(), result["num_turns"].as_u64()) {
        main.requests = u32::try_from(turns).unwrap_or(u32::MAX).max(1);
    }
    Verdict {
        error,
        summary: text(&result["result"]),
        session: text(&result["session_id"]).or(session),
        usage,
        cost_usd: result["total_cost_usd"].as_f64(),
        permission_denials: result["permission_denials"].as_array().map_or(0, Vec::len),
        denial_reasons,
        complete: true,
    }
}

fn codex_usage(usage: &Value) -> UsageRecord {
    let input = count(&usage["input_tokens"]);
    let cached = count(&usage["cached_input_tokens"]);
    UsageRecord {
        model: String::new(),
        input: input.saturating_sub(cached),
        output: count(&usage["output_tokens"]),
        cache_read: cached.min(input),
        cache_write_5m: 0,
        cache_write_1h: 0,
        reasoning: count(&usage["reasoning_output_tokens"]),
        requests: 1,
        ..UsageRecord::default()
    }
}

fn codex(stdout: &str) -> Verdict {
    let mut verdict = Verdict::default();
    let mut last_usage = None;
    let mut turns = 0;
    let mut failed_turn = None;
    let mut error_event = None;
    for event in documents(stdout) {
        match event["type"].as_str().unwrap_or_default() {
            "thread.started" => verdict.session = text(&event["thread_id"]),
            "turn.completed" => {
                turns += 1;
                last_usage = Some(codex_usage(&event["usage"]));
                failed_turn = None;
            }
            "turn.failed" => {
                failed_turn = Some(
                    text(&event["error"]["message"]).unwrap_or_else(|| "turn failed".to_owned()),
                );
            }
            "error" => error_event = text(&event["message"]).or(error_event),
            "item.completed" if event["item"]["type"] == "agent_message" => {
                verdict.summary = text(&event["item"]["text"]).or(verdict.summary.take());
            }
            _ => {}
        }
    }
    verdict.error = failed_turn
        .map(|message| format!("codex turn failed: {}", first_line(&message)))
        .or_else(|| {
            (turns == 0)
                .then_some(error_event)
                .flatten()
                .map(|message| format!("codex error: {}", first_line(&message)))
        });
    verdict.complete = turns > 0 || verdict.error.is_some();
    if let Some(mut usage) = last_usage {
        usage.requests = turns;
        verdict.usage.push(usage);
    }
    verdict
}

fn gemini(stdout: &str) -> Verdict {
    let events = documents(stdout);
    let model_of_stream = events
        .iter()
        .find(|event| event["type"] == "init")
        .and_then(|event| text(&event["model"]));
    let Some(result) = events
        .iter()
        .rev()
        .find(|event| event["type"] == "result" || event.get("stats").is_some())
        .or_else(|| {
            events
                .iter()
                .rev()
                .find(|event| event.get("error").is_some())
        })
    else {
        return Verdict::default();
    };
    let error = match &result["error"] {
        Value::Null => (result["status"] == "error").then(|| "gemini reported an error".to_owned()),
        error => Some(format!(
            "gemini error: {}",
            first_line(&text(&error["message"]).unwrap_or_else(|| error.to_string()))
        )),
    };
    let stats = &result["stats"];
    let mut usage: Vec<UsageRecord> = stats["models"]
        .as_object()
        .map(|models| {
            models
                .iter()
                .map(|(model, entry)| {
                    let tokens = &entry["tokens"];
                    let prompt = tokens
                        .get("prompt")
                        .map_or_else(|| count(&tokens["input"]), count);
                    let cached = count(&tokens["cached"]).min(prompt);
                    let thoughts = count(&tokens["thoughts"]);
                    UsageRecord {
                        model: model.clone(),
                        input: prompt - cached + count(&tokens["tool"]),
                        output: count(&tokens["candidates"]) + thoughts,
                        cache_read: cached,
                        cache_write_5m: 0,
                        cache_write_1h: 0,
                        reasoning: thoughts,
                        requests: u32::try_from(count(&entry["api"]["totalRequests"]))
                            .unwrap_or(u32::MAX)
                            .max(1),
                        ..UsageRecord::default()
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    if usage.is_empty() && stats.get("input_tokens").is_some() {
        let input = count(&stats["input_tokens"]);
        let cached = count(&stats["cached"]).min(input);
        usage.push(UsageRecord {
            model: model_of_stream.unwrap_or_default(),
            input: input - cached,
            output: count(&stats["output_tokens"]),
            cache_read: cached,
            requests: 1,
            ..UsageRecord::default()
        });
    }
    Verdict {
        error,
        summary: text(&result["response"]),
        session: text(&result["session_id"]),
        usage,
        complete: true,
        ..Verdict::default()
    }
}

/// One usage-file line (`gitprio usage record --stdin` fields): its key and usage.
fn usage_line(value: &Value) -> Option<(Option<String>, UsageRecord)> {
    let object = value.as_object()?;
    let usage = UsageRecord {
        model: object
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        input: count(&value["input"]),
        output: count(&value["output"]),
        cache_read: count(&value["cache_read"]),
        cache_write_5m: count(&value["cache_write"]),
        cache_write_1h: count(&value["cache_write_1h"]),
        reasoning: count(&value["reasoning"]),
        requests: value["requests"]
            .as_u64()
            .map_or(1, |requests| u32::try_from(requests).unwrap_or(u32::MAX)),
        ..UsageRecord::default()
    };
    Some((text(&value["key"]), usage))
}

fn first_line(text: &str) -> String {
    let line = text.trim().lines().next().unwrap_or_default();
    let mut end = line.len().min(300);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    line[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLAUDE_RESULT: &str = r#"{"type":"result","subtype":"success","is_error":false,"duration_ms":74096,"num_turns":15,"result":"Done. Added the rate limit.","stop_reason":"end_turn","session_id":"22795ca6","total_cost_usd":0.2416735,"usage":{"input_tokens":18,"cache_creation_input_tokens":14760,"cache_read_input_tokens":169817,"output_tokens":2577,"cache_creation":{"ephemeral_1h_input_tokens":760,"ephemeral_5m_input_tokens":14000}},"modelUsage":{"us.anthropic.claude-opus-4-6-v1":{"inputTokens":18,"outputTokens":2577,"cacheReadInputTokens":169817,"cacheCreationInputTokens":14760,"costUSD":0.2416735}},"permission_denials":[]}"#;

    #[test]
    fn detects_the_adapter_from_the_program() {
        assert_eq!(Adapter::detect("claude"), Adapter::Claude);
        assert_eq!(Adapter::detect("/opt/bin/codex"), Adapter::Codex);
        assert_eq!(Adapter::detect("gemini"), Adapter::Gemini);
        assert_eq!(Adapter::detect("./agent.sh"), Adapter::Generic);
    }

    #[test]
    fn reads_a_claude_result() {
        let verdict = conclude(Adapter::Claude, CLAUDE_RESULT);
        assert_eq!(verdict.error, None);
        assert_eq!(
            verdict.summary.as_deref(),
            Some("Done. Added the rate limit.")
        );
        assert_eq!(verdict.session.as_deref(), Some("22795ca6"));
        assert_eq!(verdict.cost_usd, Some(0.241_673_5));
        assert_eq!(
            verdict.usage,
            [UsageRecord {
                model: "us.anthropic.claude-opus-4-6-v1".to_owned(),
                input: 18,
                output: 2577,
                cache_read: 169_817,
                cache_write_5m: 14_000,
                cache_write_1h: 760,
                reasoning: 0,
                requests: 15,
                ..UsageRecord::default()
            }]
        );
    }

    #[test]
    fn a_claude_error_counts_even_with_exit_zero() {
        let stdout = r#"{"type":"result","subtype":"error_max_turns","is_error":true,"num_turns":30,"session_id":"s","total_cost_usd":1.5,"usage":{"input_tokens":10,"output_tokens":5},"permission_denials":[{"tool_name":"Bash"}]}"#;
        let verdict = conclude(Adapter::Claude, stdout);
        assert_eq!(
            verdict.error.as_deref(),
            Some("claude reported error_max_turns")
        );
        assert_eq!(verdict.permission_denials, 1);
        assert_eq!(verdict.usage[0].total_tokens(), 15);
        let masked = r#"{"type":"result","subtype":"success","is_error":true,"result":"API Error: 529 overloaded\nretry later"}"#;
        assert_eq!(
            conclude(Adapter::Claude, masked).error.as_deref(),
            Some("claude reported is_error: API Error: 529 overloaded")
        );
    }

    #[test]
    fn follows_claude_stream_json_by_message() {
        let stream = [
            r#"{"type":"system","subtype":"init","session_id":"s1","model":"claude-sonnet-4-5"}"#,
            r#"{"type":"assistant","message":{"id":"m1","model":"claude-sonnet-4-5","usage":{"input_tokens":100,"output_tokens":10,"cache_read_input_tokens":1000}}}"#,
            r#"{"type":"assistant","message":{"id":"m1","model":"claude-sonnet-4-5","usage":{"input_tokens":100,"output_tokens":40,"cache_read_input_tokens":1000}}}"#,
            r#"{"type":"assistant","message":{"id":"m2","model":"claude-sonnet-4-5","usage":{"input_tokens":5,"output_tokens":5}}}"#,
        ]
        .join("\n");
        let mut follower = Follower::new(Adapter::Claude);
        let (first, second) = stream.as_bytes().split_at(120);
        follower.feed(first);
        follower.feed(second);
        follower.feed(b"\n");
        assert_eq!(follower.tokens(), 1140 + 10);
        // Killed before the result: the streamed usage is what was spent.
        let verdict = conclude(Adapter::Claude, &stream);
        assert!(!verdict.complete);
        assert_eq!(verdict.session.as_deref(), Some("s1"));
        assert_eq!(verdict.usage[0].total_tokens(), 1150);
    }

    #[test]
    fn reads_codex_events_taking_the_last_cumulative_usage() {
        let stdout = [
            r#"{"type":"thread.started","thread_id":"t-1"}"#,
            r#"{"type":"turn.started"}"#,
            r#"{"type":"turn.completed","usage":{"input_tokens":1000,"cached_input_tokens":800,"output_tokens":50}}"#,
            r#"{"type":"item.completed","item":{"id":"i","type":"agent_message","text":"Fixed it."}}"#,
            r#"{"type":"turn.completed","usage":{"input_tokens":3000,"cached_input_tokens":2000,"output_tokens":120}}"#,
        ]
        .join("\n");
        let verdict = conclude(Adapter::Codex, &stdout);
        assert_eq!(verdict.error, None);
        assert_eq!(verdict.session.as_deref(), Some("t-1"));
        assert_eq!(verdict.summary.as_deref(), Some("Fixed it."));
        assert_eq!(
            verdict.usage,
            [UsageRecord {
                input: 1000,
                output: 120,
                cache_read: 2000,
                requests: 2,
                ..UsageRecord::default()
            }]
        );
        let mut follower = Follower::new(Adapter::Codex);
        follower.feed(stdout.as_bytes());
        follower.feed(b"\n");
        assert_eq!(follower.tokens(), 3120);
        let failed = format!(
            "{stdout}\n{}",
            r#"{"type":"turn.failed","error":{"message":"stream disconnected"}}"#
        );
        assert_eq!(
            conclude(Adapter::Codex, &failed).error.as_deref(),
            Some("codex turn failed: stream disconnected")
        );
    }

    #[test]
    fn reads_gemini_stats() {
        let stdout = r#"{
  "response": "All done.",
  "stats": {"models": {"gemini-2.5-pro": {"api": {"totalRequests": 3, "totalErrors": 0},
    "tokens": {"prompt": 12000, "candidates": 300, "total": 12420, "cached": 8000, "thoughts": 120, "tool": 0}}}},
  "error": null
}"#;
        let verdict = conclude(Adapter::Gemini, stdout);
        assert_eq!(verdict.error, None);
        assert_eq!(verdict.summary.as_deref(), Some("All done."));
        assert_eq!(
            verdict.usage,
            [UsageRecord {
                model: "gemini-2.5-pro".to_owned(),
                input: 4000,
                output: 420,
                cache_read: 8000,
                reasoning: 120,
                requests: 3,
                ..UsageRecord::default()
            }]
        );
        let failed = r#"{"error": {"type": "ApiError", "message": "quota exceeded", "code": 429}}"#;
        assert_eq!(
            conclude(Adapter::Gemini, failed).error.as_deref(),
            Some("gemini error: quota exceeded")
        );
    }

    #[test]
    fn follows_a_usage_file_by_key() {
        let mut follower = Follower::new(Adapter::Generic);
        follower.feed(b"{\"model\":\"m\",\"input\":10,\"output\":5,\"key\":\"a\"}\n");
        follower.feed(b"{\"model\":\"m\",\"input\":10,\"output\":5,\"key\":\"a\"}\nnot json\n");
        follower.feed(b"{\"input\":1,\"output\":1}\n");
        assert_eq!(follower.tokens(), 17);
        let keys: Vec<&str> = follower.keyed_lines().map(|(key, _)| key).collect();
        assert_eq!(keys, ["a", "line-4"]);
    }
}
