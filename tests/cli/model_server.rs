//! A scripted model server on 127.0.0.1 that the real agent CLIs talk to: the Anthropic
//! Messages API (Claude Code), the `OpenAI` Responses API (Codex CLI) and the Gemini API
//! (Gemini CLI), each streaming server-sent events as the real APIs do.
//!
//! One server is shared by every test of the binary ([`server`]). A test picks what the
//! model does by writing a marker into the task it queues, `[[model-script NAME TAG]]`:
//! the prompt carries it to the server, which plays script NAME for each new agent session
//! (told apart by the session header each CLI sends) and files that session under TAG.
//! Every response carries usage numbers of its own, and the server keeps what it sent,
//! per session: the ground truth a test compares gitprio's ledger with. A marker can
//! carry a token budget, `[[model-script loop TAG 4000]]`: once a session has been sent
//! more tokens than that, the server answers it no more (it holds each request open until
//! the CLI goes away), so the stop `gitprio run` makes over the budget comes before
//! another answer however slow a loaded machine makes it.
//!
//! The server's threads end with the test process; every connection has read and write
//! timeouts, so nothing waits forever on a client that went away.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};

/// How long one read or write on a connection may block.
const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the `loop` script waits before each answer: paces a session whose marker has no
/// budget (a run's `--max-tokens` stops it), so that a stop usually comes within a request.
const LOOP_DELAY: Duration = Duration::from_millis(700);

/// What the model does in one session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Script {
    /// A tool call that writes `done.txt`, then a final answer.
    Edit,
    /// A tool call that writes a file, again and again: a session that never ends.
    Loop,
    /// A tool call that writes `done.txt`, then an API error (HTTP 400).
    Error,
    /// A shell command (which a CLI allowed only to edit files refuses), then a final answer.
    Shell,
}

impl Script {
    fn parse(name: &str) -> Option<Script> {
        match name {
            "edit" => Some(Script::Edit),
            "loop" => Some(Script::Loop),
            "error" => Some(Script::Error),
            "shell" => Some(Script::Shell),
            _ => None,
        }
    }
}

/// Tokens the server sent in one session, in gitprio's buckets: `input` without cached
/// tokens, `output` with reasoning.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Truth {
    pub input: u64,
    pub output: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    pub cache_read: u64,
    pub reasoning: u64,
    /// Answers sent in full, with usage.
    pub requests: u64,
}

impl Truth {
    fn subtract(&mut self, other: &Truth) {
        self.input -= other.input;
        self.output -= other.output;
        self.cache_write_5m -= other.cache_write_5m;
        self.cache_write_1h -= other.cache_write_1h;
        self.cache_read -= other.cache_read;
        self.reasoning -= other.reasoning;
        self.requests -= other.requests;
    }

    /// Every token sent, as gitprio counts them against a budget.
    pub fn tokens(&self) -> u64 {
        self.input + self.output + self.cache_read + self.cache_write_5m + self.cache_write_1h
    }

    fn add(&mut self, other: &Truth) {
        self.input += other.input;
        self.output += other.output;
        self.cache_write_5m += other.cache_write_5m;
        self.cache_write_1h += other.cache_write_1h;
        self.cache_read += other.cache_read;
        self.reasoning += other.reasoning;
        self.requests += other.requests;
    }
}

#[derive(Debug)]
struct Session {
    tag: String,
    script: Script,
    /// Past this many tokens sent, the session gets no more answers.
    budget: Option<u64>,
    /// Requests received so far.
    step: u32,
    truth: Truth,
    /// The last answer sent in full.
    last: Truth,
}

/// The shared scripted server.
#[derive(Debug)]
pub struct ModelServer {
    pub port: u16,
    sessions: Mutex<BTreeMap<String, Session>>,
    /// Makes every answer's usage numbers differ.
    counter: AtomicU64,
}

/// The server of this test process, started on first use.
pub fn server() -> &'static ModelServer {
    static SERVER: OnceLock<&'static ModelServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1");
        let server: &'static ModelServer = Box::leak(Box::new(ModelServer {
            port: listener.local_addr().unwrap().port(),
            sessions: Mutex::new(BTreeMap::new()),
            counter: AtomicU64::new(1),
        }));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || server.connection(stream));
            }
        });
        server
    })
}

/// The marker that makes the server play `script` in sessions filed under `tag`.
pub fn marker(script: &str, tag: &str) -> String {
    format!("[[model-script {script} {tag}]]")
}

/// The marker of [`marker`] for sessions that get no answer once sent over `budget` tokens.
pub fn budget_marker(script: &str, tag: &str, budget: u64) -> String {
    format!("[[model-script {script} {tag} {budget}]]")
}

/// One HTTP request as read from a connection.
struct Request {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = BTreeMap::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let mut body = Vec::new();
    if headers
        .get("transfer-encoding")
        .is_some_and(|value| value.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = headers.get("content-length") {
        body = vec![0; length.parse().ok()?];
        reader.read_exact(&mut body).ok()?;
    }
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

/// What the model says in one answer.
enum Turn {
    /// Write `content` to `file` with the CLI's file-writing tool (or shell).
    Write { file: String, content: String },
    /// Run a shell command.
    Shell(String),
    /// A final answer.
    Answer(String),
    /// An API error.
    Fail,
}

/// The events of one streamed answer, and its usage.
struct Answer {
    body: Vec<u8>,
    truth: Truth,
}

impl ModelServer {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The sessions filed under `tag`, each with what the server sent in it.
    pub fn sessions(&self, tag: &str) -> BTreeMap<String, Truth> {
        self.lock()
            .iter()
            .filter(|(_, session)| session.tag == tag)
            .map(|(id, session)| (id.clone(), session.truth.clone()))
            .collect()
    }

    /// Everything sent in the sessions filed under `tag`, less each session's last answer:
    /// what a CLI killed mid-turn can have logged when the kill came after the server sent
    /// that answer and before the CLI wrote it down.
    pub fn total_but_last(&self, tag: &str) -> Truth {
        let mut total = Truth::default();
        for session in self.lock().values().filter(|session| session.tag == tag) {
            let mut truth = session.truth.clone();
            truth.subtract(&session.last);
            total.add(&truth);
        }
        total
    }

    /// Everything sent in the sessions filed under `tag`.
    pub fn total(&self, tag: &str) -> Truth {
        let mut total = Truth::default();
        for truth in self.sessions(tag).values() {
            total.add(truth);
        }
        total
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn connection(&self, stream: TcpStream) {
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
        let Ok(mut writer) = stream.try_clone() else {
            return;
        };
        let mut reader = BufReader::new(stream);
        while let Some(request) = read_request(&mut reader) {
            if !self.respond(&request, &mut writer) {
                return;
            }
        }
    }

    /// Answers one request; returns whether the connection can take another.
    fn respond(&self, request: &Request, writer: &mut TcpStream) -> bool {
        let path = request.path.split('?').next().unwrap_or_default();
        let api = if request.method != "POST" {
            None
        } else if path == "/v1/messages" {
            Some(Api::Anthropic)
        } else if path == "/v1/responses" {
            Some(Api::OpenAi)
        } else if path.ends_with(":streamGenerateContent") || path.ends_with(":generateContent") {
            Some(Api::Gemini)
        } else {
            None
        };
        let Some(api) = api else {
            return send(
                writer,
                404,
                "application/json",
                br#"{"error":"not found"}"#,
                None,
            );
        };
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let text = String::from_utf8_lossy(&request.body);
        let Some((script, tag, budget)) = find_marker(&text) else {
            return send(
                writer,
                400,
                "application/json",
                br#"{"type":"error","error":{"type":"invalid_request_error","message":"no [[model-script]] marker in the request"}}"#,
                None,
            );
        };
        let session = api.session(&request.headers, &body, &tag);
        let (script, step, over_budget) = {
            let mut sessions = self.lock();
            let entry = sessions.entry(session.clone()).or_insert_with(|| Session {
                tag: tag.clone(),
                script,
                budget,
                step: 0,
                truth: Truth::default(),
                last: Truth::default(),
            });
            entry.step += 1;
            let over_budget = entry
                .budget
                .is_some_and(|budget| entry.truth.tokens() > budget);
            (entry.script, entry.step, over_budget)
        };
        if over_budget {
            // No answer: the request stays open until the CLI, stopped by gitprio, goes away.
            let _ = writer.read(&mut [0; 1]);
            return false;
        }
        let turn = match (script, step) {
            (Script::Edit | Script::Error, 1) => Turn::Write {
                file: "done.txt".to_owned(),
                content: "done\n".to_owned(),
            },
            (Script::Shell, 1) => Turn::Shell("python3 -c \"open('shell.txt', 'w')\"".to_owned()),
            (Script::Edit | Script::Shell, _) => {
                Turn::Answer("Wrote done.txt; nothing else changed.".to_owned())
            }
            (Script::Error, _) => Turn::Fail,
            (Script::Loop, step) => {
                std::thread::sleep(LOOP_DELAY);
                Turn::Write {
                    file: format!("loop-{step}.txt"),
                    content: format!("step {step}\n"),
                }
            }
        };
        if let Turn::Fail = turn {
            return send(
                writer,
                400,
                "application/json",
                api.error_body().as_bytes(),
                None,
            );
        }
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let answer = api.answer(&turn, n, &body);
        let request_id = format!("req_{n:06}");
        let sent = send(
            writer,
            200,
            "text/event-stream",
            &answer.body,
            Some(&request_id),
        );
        if sent && let Some(entry) = self.lock().get_mut(&session) {
            entry.truth.add(&answer.truth);
            entry.last = answer.truth;
        }
        sent
    }
}

/// Finds `[[model-script NAME TAG]]` (or `[[model-script NAME TAG BUDGET]]`) in a request body.
fn find_marker(text: &str) -> Option<(Script, String, Option<u64>)> {
    let start = text.find("[[model-script ")? + "[[model-script ".len();
    let end = start + text[start..].find("]]")?;
    let mut words = text[start..end].split_whitespace();
    let script = Script::parse(words.next()?)?;
    let tag = words.next()?.to_owned();
    let budget = words.next().and_then(|budget| budget.parse().ok());
    Some((script, tag, budget))
}

fn send(
    writer: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
    request_id: Option<&str>,
) -> bool {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        _ => "Not Found",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n",
        body.len()
    );
    if let Some(id) = request_id {
        let _ = write!(head, "request-id: {id}\r\nx-request-id: {id}\r\n");
    }
    head.push_str("\r\n");
    writer.write_all(head.as_bytes()).is_ok()
        && writer.write_all(body).is_ok()
        && writer.flush().is_ok()
}

fn event(name: Option<&str>, data: &Value) -> String {
    match name {
        Some(name) => format!("event: {name}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

#[derive(Clone, Copy, Debug)]
enum Api {
    Anthropic,
    OpenAi,
    Gemini,
}

impl Api {
    /// The agent session a request belongs to: the header the CLI sends, else the tag.
    fn session(self, headers: &BTreeMap<String, String>, body: &Value, tag: &str) -> String {
        let header = match self {
            Api::Anthropic => headers.get("x-claude-code-session-id"),
            Api::OpenAi => headers.get("session-id"),
            Api::Gemini => None,
        };
        header
            .cloned()
            .or_else(|| body["prompt_cache_key"].as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("gemini:{tag}"))
    }

    fn error_body(self) -> String {
        match self {
            Api::Anthropic => json!({"type": "error", "error": {"type": "invalid_request_error", "message": "scripted failure: the model refuses"}}),
            Api::OpenAi => json!({"error": {"type": "invalid_request_error", "code": "invalid_request", "message": "scripted failure: the model refuses"}}),
            Api::Gemini => json!({"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "scripted failure: the model refuses"}}),
        }
        .to_string()
    }

    /// The streamed answer number `n` saying `turn`, with usage numbers of its own.
    fn answer(self, turn: &Turn, n: u64, request: &Value) -> Answer {
        match self {
            Api::Anthropic => anthropic(turn, n, request),
            Api::OpenAi => openai(turn, n),
            Api::Gemini => gemini(turn, n),
        }
    }
}

fn anthropic(turn: &Turn, n: u64, request: &Value) -> Answer {
    let truth = Truth {
        input: 100 + n,
        output: 40 + 3 * n,
        cache_write_5m: 200 + 5 * n,
        cache_write_1h: 30 + n,
        cache_read: 1000 + 11 * n,
        reasoning: 0,
        requests: 1,
    };
    let model = request["model"].as_str().unwrap_or("claude-test");
    let mut body = String::new();
    body += &event(
        Some("message_start"),
        &json!({"type": "message_start", "message": {
            "id": format!("msg_{n:06}"), "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {
                "input_tokens": truth.input,
                "cache_creation_input_tokens": truth.cache_write_5m + truth.cache_write_1h,
                "cache_read_input_tokens": truth.cache_read,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": truth.cache_write_5m,
                    "ephemeral_1h_input_tokens": truth.cache_write_1h,
                },
                "output_tokens": 1,
            },
        }}),
    );
    let (block, delta, stop) = match turn {
        Turn::Write { file, content } => (
            json!({"type": "tool_use", "id": format!("toolu_{n:06}"), "name": "Write", "input": {}}),
            json!({"type": "input_json_delta", "partial_json": json!({"file_path": file, "content": content}).to_string()}),
            "tool_use",
        ),
        Turn::Shell(command) => (
            json!({"type": "tool_use", "id": format!("toolu_{n:06}"), "name": "Bash", "input": {}}),
            json!({"type": "input_json_delta", "partial_json": json!({"command": command, "description": "Run it"}).to_string()}),
            "tool_use",
        ),
        Turn::Answer(text) => (
            json!({"type": "text", "text": ""}),
            json!({"type": "text_delta", "text": text}),
            "end_turn",
        ),
        Turn::Fail => unreachable!("errors are not streamed"),
    };
    body += &event(
        Some("content_block_start"),
        &json!({"type": "content_block_start", "index": 0, "content_block": block}),
    );
    body += &event(
        Some("content_block_delta"),
        &json!({"type": "content_block_delta", "index": 0, "delta": delta}),
    );
    body += &event(
        Some("content_block_stop"),
        &json!({"type": "content_block_stop", "index": 0}),
    );
    body += &event(
        Some("message_delta"),
        &json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
            "usage": {"output_tokens": truth.output}}),
    );
    body += &event(Some("message_stop"), &json!({"type": "message_stop"}));
    Answer {
        body: body.into_bytes(),
        truth,
    }
}

fn openai(turn: &Turn, n: u64) -> Answer {
    let cached = 600 + 7 * n;
    let input = 2000 + 13 * n;
    let reasoning = 5 + n;
    let output = 60 + 2 * n;
    let truth = Truth {
        input: input - cached,
        output,
        cache_read: cached,
        reasoning,
        requests: 1,
        ..Truth::default()
    };
    let id = format!("resp_{n:06}");
    let item = match turn {
        Turn::Write { file, content } => json!({
            "type": "function_call", "id": format!("fc_{n:06}"), "call_id": format!("call_{n:06}"),
            "name": "exec_command", "status": "completed",
            "arguments": json!({"cmd": format!("printf '%s' '{}' > {file}", content.trim_end())}).to_string(),
        }),
        Turn::Shell(command) => json!({
            "type": "function_call", "id": format!("fc_{n:06}"), "call_id": format!("call_{n:06}"),
            "name": "exec_command", "status": "completed",
            "arguments": json!({"cmd": command}).to_string(),
        }),
        Turn::Answer(text) => json!({
            "type": "message", "id": format!("msg_{n:06}"), "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }),
        Turn::Fail => unreachable!("errors are not streamed"),
    };
    let mut body = String::new();
    body += &event(
        Some("response.created"),
        &json!({"type": "response.created", "response": {"id": id, "status": "in_progress", "output": []}}),
    );
    body += &event(
        Some("response.output_item.added"),
        &json!({"type": "response.output_item.added", "output_index": 0, "item": item}),
    );
    if let Turn::Answer(text) = turn {
        body += &event(
            Some("response.output_text.delta"),
            &json!({"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "item_id": format!("msg_{n:06}"), "delta": text}),
        );
    }
    body += &event(
        Some("response.output_item.done"),
        &json!({"type": "response.output_item.done", "output_index": 0, "item": item}),
    );
    body += &event(
        Some("response.completed"),
        &json!({"type": "response.completed", "response": {
            "id": id, "status": "completed", "output": [item],
            "usage": {
                "input_tokens": input,
                "input_tokens_details": {"cached_tokens": cached},
                "output_tokens": output,
                "output_tokens_details": {"reasoning_tokens": reasoning},
                "total_tokens": input + output,
            },
        }}),
    );
    Answer {
        body: body.into_bytes(),
        truth,
    }
}

fn gemini(turn: &Turn, n: u64) -> Answer {
    let prompt = 3000 + 17 * n;
    let cached = 900 + 3 * n;
    let candidates = 70 + 4 * n;
    let thoughts = 9 + n;
    let truth = Truth {
        input: prompt - cached,
        output: candidates + thoughts,
        cache_read: cached,
        reasoning: thoughts,
        requests: 1,
        ..Truth::default()
    };
    let part = match turn {
        Turn::Write { file, content } => {
            json!({"functionCall": {"name": "write_file", "args": {"file_path": file, "content": content}}})
        }
        Turn::Shell(command) => {
            json!({"functionCall": {"name": "run_shell_command", "args": {"command": command}}})
        }
        Turn::Answer(text) => json!({"text": text}),
        Turn::Fail => unreachable!("errors are not streamed"),
    };
    let chunk = json!({
        "candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {
            "promptTokenCount": prompt,
            "cachedContentTokenCount": cached,
            "candidatesTokenCount": candidates,
            "thoughtsTokenCount": thoughts,
            "totalTokenCount": prompt + candidates + thoughts,
        },
        "modelVersion": "gemini-test",
        "responseId": format!("gemini_{n:06}"),
    });
    Answer {
        body: event(None, &chunk).into_bytes(),
        truth,
    }
}
