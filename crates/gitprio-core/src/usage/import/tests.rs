//! Imports of whole files and directories: detection, deduplication across files,
//! incremental reads and bounded memory.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::claude::tests::assistant_line;
use super::codex::tests::{SESSION_META, token_count};
use super::gemini::tests::CHAT;
use super::*;
use crate::usage::Totals;

fn write(path: &Path, lines: &[String]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut text = lines.join("\n");
    text.push('\n');
    fs::write(path, text).unwrap();
}

fn append(path: &Path, lines: &[String]) {
    let mut file = fs::OpenOptions::new().append(true).open(path).unwrap();
    for line in lines {
        writeln!(file, "{line}").unwrap();
    }
}

fn run(paths: &[PathBuf], state: &mut ImportState) -> Imported {
    import(paths, state, &ImportOptions::default()).unwrap()
}

fn totals(records: &[UsageRecord]) -> Totals {
    records.iter().collect()
}

/// A Claude Code line for `message` in `session`, with the given tokens.
fn claude_line(
    session: &str,
    message: &str,
    request: Option<&str>,
    sidechain: bool,
    output: u64,
) -> String {
    assistant_line(message, request, output, sidechain).replace(
        r#""sessionId":"s1""#,
        &format!(r#""sessionId":"{session}""#),
    )
}

/// The per-request tokens of `assistant_line`, but for output.
const PROMPT: u64 = 4 + 60 + 40 + 1000;

#[test]
fn a_streamed_message_counts_once_with_its_final_output() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("projects/-repo/s1.jsonl");
    write(
        &path,
        &[
            r#"{"type":"summary","summary":"Fix the parser","leafUuid":"u0"}"#.to_owned(),
            r#"{"parentUuid":null,"isSidechain":false,"sessionId":"s1","version":"1.0.65","type":"user","message":{"role":"user","content":"fix it"},"uuid":"u1","timestamp":"2025-09-09T21:51:20.000Z"}"#.to_owned(),
            claude_line("s1", "msg_1", Some("req_1"), false, 1),
            claude_line("s1", "msg_1", Some("req_1"), false, 2),
            claude_line("s1", "msg_1", Some("req_1"), false, 412),
        ],
    );
    let imported = run(&[dir.path().to_owned()], &mut ImportState::new());
    assert_eq!(imported.records.len(), 1);
    let sum = totals(&imported.records);
    assert_eq!(
        (
            sum.input,
            sum.output,
            sum.cache_write_5m,
            sum.cache_write_1h,
            sum.cache_read
        ),
        (4, 412, 60, 40, 1000)
    );
    assert_eq!(imported.report.duplicates, 2);
    assert_eq!(imported.report.lines, 5);
    assert_eq!(imported.report.malformed_lines, 0);
}

#[test]
fn missing_request_ids_deduplicate_on_the_message_id() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("a.jsonl"),
        &[
            claude_line("s1", "msg_gw_1", None, false, 7),
            claude_line("s1", "msg_gw_1", None, false, 9),
            claude_line("s1", "msg_gw_2", None, false, 5),
        ],
    );
    let imported = run(&[dir.path().to_owned()], &mut ImportState::new());
    let keys: Vec<_> = imported
        .records
        .iter()
        .map(|record| record.key.as_str())
        .collect();
    assert_eq!(keys, ["claude:msg_gw_1", "claude:msg_gw_2"]);
    assert_eq!(totals(&imported.records).output, 14);
    assert_eq!(totals(&imported.records).tokens(), 2 * PROMPT + 14);
}

#[test]
fn sidechain_replays_under_new_request_ids_count_once() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("projects/-repo/s1.jsonl");
    write(
        &main,
        &[
            claude_line("s1", "msg_1", Some("req_1"), false, 100),
            claude_line("s1", "msg_1", Some("req_btw_1"), true, 100),
            claude_line("s1", "msg_btw", Some("req_btw_2"), true, 30),
        ],
    );
    write(
        &dir.path()
            .join("projects/-repo/s1/subagents/agent-a1.jsonl"),
        &[
            claude_line("s1", "msg_sub_1", Some("req_sub_1"), true, 20),
            claude_line("s1", "msg_sub_2", Some("req_sub_2"), true, 25),
        ],
    );
    let imported = run(&[dir.path().to_owned()], &mut ImportState::new());
    assert_eq!(imported.records.len(), 4);
    let sum = totals(&imported.records);
    assert_eq!((sum.output, sum.requests), (100 + 30 + 20 + 25, 4));
    assert_eq!(sum.tokens(), 4 * PROMPT + 175);
    let sidechains = imported
        .records
        .iter()
        .filter(|record| record.sidechain)
        .count();
    assert_eq!(sidechains, 3, "subagent usage is kept and marked");
}

#[test]
fn a_resumed_session_copying_history_counts_it_once() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("projects/-repo/s1.jsonl"),
        &[
            claude_line("s1", "msg_1", Some("req_1"), false, 10),
            claude_line("s1", "msg_2", Some("req_2"), false, 20),
        ],
    );
    write(
        &dir.path().join("projects/-repo/s0-resumed.jsonl"),
        &[
            claude_line("s0-resumed", "msg_1", Some("req_1"), false, 10),
            claude_line("s0-resumed", "msg_2", Some("req_2"), false, 20),
            claude_line("s0-resumed", "msg_3", Some("req_3"), false, 30),
        ],
    );
    let imported = run(&[dir.path().to_owned()], &mut ImportState::new());
    assert_eq!(imported.records.len(), 3);
    assert_eq!(totals(&imported.records).output, 60);
    assert_eq!(imported.report.duplicates, 2);
    assert_eq!(imported.report.files_read, 2);
}

#[test]
fn a_malformed_line_is_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let broken = claude_line("s1", "msg_2", Some("req_2"), false, 99);
    write(
        &dir.path().join("s1.jsonl"),
        &[
            claude_line("s1", "msg_1", Some("req_1"), false, 10),
            broken[..broken.len() - 30].to_owned(),
            "{not json at all \"usage\":{".to_owned(),
            claude_line("s1", "msg_3", Some("req_3"), false, 30),
        ],
    );
    let imported = run(&[dir.path().to_owned()], &mut ImportState::new());
    assert_eq!(imported.report.malformed_lines, 2);
    assert_eq!(imported.records.len(), 2);
    assert_eq!(totals(&imported.records).output, 40);
}

#[test]
fn formats_are_told_by_content_not_by_name() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("projects/-repo/looks-like-claude.jsonl"),
        &[
            SESSION_META.to_owned(),
            token_count("2025-11-22T20:46:00.000Z", 1000, 200, 50, 10),
            token_count("2025-11-22T20:46:00.000Z", 1000, 200, 50, 10),
            token_count("2025-11-22T20:47:00.000Z", 900, 100, 10, 0),
        ],
    );
    write(
        &dir.path().join("exec.jsonl"),
        &[
            r#"{"type":"thread.started","thread_id":"th1"}"#.to_owned(),
            r#"{"type":"turn.completed","usage":{"input_tokens":100,"cached_input_tokens":60,"output_tokens":5}}"#.to_owned(),
            r#"{"type":"turn.completed","usage":{"input_tokens":300,"cached_input_tokens":200,"output_tokens":9}}"#.to_owned(),
        ],
    );
    fs::write(dir.path().join("chat.json"), CHAT).unwrap();
    fs::write(
        dir.path().join("notes.json"),
        r#"[{"sessionId":"x","type":"user","message":"hi"}]"#,
    )
    .unwrap();
    let imported = run(&[dir.path().to_owned()], &mut ImportState::new());
    let by_source = |source: &str| {
        totals(
            &imported
                .records
                .iter()
                .filter(|record| record.source == source)
                .cloned()
                .collect::<Vec<_>>(),
        )
    };
    let codex = by_source("codex");
    assert_eq!(
        (
            codex.input,
            codex.cache_read,
            codex.output,
            codex.reasoning,
            codex.requests
        ),
        (800 + 800 + 100, 200 + 100 + 200, 50 + 10 + 9, 10, 4)
    );
    let gemini = by_source("gemini");
    assert_eq!(
        (gemini.input, gemini.cache_read, gemini.output),
        (4015 + 500, 8000, 420 + 20)
    );
    let state = |name: &str| {
        let mut state = ImportState::new();
        run(&[dir.path().join(name)], &mut state);
        state.files.into_values().next().unwrap().format
    };
    assert_eq!(
        state("projects/-repo/looks-like-claude.jsonl"),
        Some(Format::CodexRollout)
    );
    assert_eq!(state("exec.jsonl"), Some(Format::CodexExec));
    assert_eq!(state("chat.json"), Some(Format::JsonDocument));
}

#[test]
fn claude_print_output_as_a_document_or_a_piped_stream() {
    let dir = tempfile::tempdir().unwrap();
    let pretty = r#"{
  "type": "result",
  "subtype": "success",
  "session_id": "sess-p",
  "usage": {"input_tokens": 3, "output_tokens": 4},
  "modelUsage": {
    "claude-sonnet-4-5": {"inputTokens": 30, "outputTokens": 40, "cacheReadInputTokens": 500, "cacheCreationInputTokens": 60}
  }
}"#;
    fs::write(dir.path().join("out.json"), pretty).unwrap();
    let imported = run(&[dir.path().join("out.json")], &mut ImportState::new());
    assert_eq!(imported.records.len(), 1);
    assert_eq!(
        imported.records[0].key,
        "claude-result:sess-p:claude-sonnet-4-5"
    );
    assert_eq!(totals(&imported.records).tokens(), 30 + 40 + 500 + 60);

    let stream = [
        r#"{"type":"system","subtype":"init","session_id":"sess-q","model":"claude-opus-4-6","cwd":"/w"}"#,
        r#"{"type":"assistant","message":{"id":"msg_q1","model":"claude-opus-4-6","usage":{"input_tokens":3,"output_tokens":1}},"parent_tool_use_id":null,"session_id":"sess-q"}"#,
        r#"{"type":"assistant","message":{"id":"msg_q1","model":"claude-opus-4-6","usage":{"input_tokens":3,"output_tokens":8}},"parent_tool_use_id":null,"session_id":"sess-q"}"#,
        r#"{"type":"result","session_id":"sess-q","modelUsage":{"claude-opus-4-6":{"inputTokens":3,"outputTokens":8}}}"#,
    ]
    .join("\n");
    let imported = import_reader(stream.as_bytes(), "stdin", &ImportOptions::default()).unwrap();
    assert_eq!(imported.records.len(), 1);
    assert_eq!(imported.records[0].key, "claude-stream:msg_q1");
    assert_eq!(imported.records[0].output, 8);
    assert_eq!(imported.report.duplicates, 1);
}

#[test]
fn a_grown_file_is_read_from_where_the_last_import_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let claude = dir.path().join("projects/-repo/s1.jsonl");
    let codex = dir.path().join("sessions/2025/11/22/rollout-x.jsonl");
    write(
        &claude,
        &[
            claude_line("s1", "msg_1", Some("req_1"), false, 1),
            claude_line("s1", "msg_1", Some("req_1"), false, 50),
        ],
    );
    write(
        &codex,
        &[
            SESSION_META.to_owned(),
            r#"{"timestamp":"2025-11-22T20:46:02.000Z","type":"turn_context","payload":{"model":"gpt-5-codex"}}"#.to_owned(),
            token_count("2025-11-22T20:46:03.000Z", 1000, 200, 50, 10),
        ],
    );
    let roots = [dir.path().to_owned()];
    let mut state = ImportState::new();
    let first = run(&roots, &mut state);
    let mut stored = first.records.clone();
    assert_eq!(stored.len(), 2);

    let again = run(&roots, &mut state);
    assert_eq!(again.report.files_unchanged, 2);
    assert_eq!(again.report.bytes_read, 0);
    assert!(again.records.is_empty());

    let grown_claude = [
        claude_line("s1", "msg_1", Some("req_1"), false, 50),
        claude_line("s1", "msg_2", Some("req_2"), false, 70),
    ];
    let grown_codex = [
        token_count("2025-11-22T20:46:03.000Z", 1000, 200, 50, 10),
        token_count("2025-11-22T20:47:00.000Z", 3000, 1200, 80, 20),
    ];
    append(&claude, &grown_claude);
    append(&codex, &grown_codex);
    let appended: u64 = grown_claude
        .iter()
        .chain(&grown_codex)
        .map(|line| line.len() as u64 + 1)
        .sum();
    let second = run(&roots, &mut state);
    assert_eq!(
        second.report.bytes_read, appended,
        "only the new bytes are read"
    );
    let new = merge(&stored, second.records);
    let keys: Vec<_> = new.iter().map(|record| record.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "claude:msg_2:req_2",
            "codex:019aad50:2025-11-22T20:47:00.000Z:3080"
        ]
    );
    assert_eq!(
        new[1].model, "gpt-5-codex",
        "the model is carried across imports"
    );
    assert_eq!(
        (new[1].input, new[1].cache_read, new[1].output),
        (1000, 1000, 30)
    );
    stored.extend(new);

    let saved = serde_json::to_string(&state).unwrap();
    let mut state: ImportState = serde_json::from_str(&saved).unwrap();
    fs::write(
        &claude,
        format!("{}\n", claude_line("s1", "msg_1", Some("req_1"), false, 50)),
    )
    .unwrap();
    let shrunk = run(&roots, &mut state);
    assert_eq!(shrunk.report.files_read, 1);
    assert!(
        merge(&stored, shrunk.records).is_empty(),
        "a re-read from zero adds nothing"
    );

    let sum = totals(&stored);
    assert_eq!(
        (sum.input, sum.output, sum.cache_read, sum.requests),
        (
            4 + 4 + 800 + 1000,
            50 + 70 + 50 + 30,
            1000 + 1000 + 200 + 1000,
            4
        )
    );
}

#[test]
fn a_line_still_being_written_is_read_again_next_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s1.jsonl");
    let whole = claude_line("s1", "msg_2", Some("req_2"), false, 70);
    let (start, end) = whole.split_at(100);
    fs::write(
        &path,
        format!(
            "{}\n{start}",
            claude_line("s1", "msg_1", Some("req_1"), false, 10)
        ),
    )
    .unwrap();
    let mut state = ImportState::new();
    let first = run(std::slice::from_ref(&path), &mut state);
    assert_eq!(first.records.len(), 1);
    assert_eq!(
        first.report.malformed_lines, 0,
        "a partial last line is not malformed"
    );
    let mut file = fs::OpenOptions::new().append(true).open(&path).unwrap();
    writeln!(file, "{end}").unwrap();
    let second = run(&[path], &mut state);
    assert_eq!(second.report.bytes_read, whole.len() as u64 + 1);
    let keys: Vec<_> = second
        .records
        .iter()
        .map(|record| record.key.as_str())
        .collect();
    assert_eq!(keys, ["claude:msg_2:req_2"]);
}

#[test]
fn an_unterminated_cumulative_line_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rollout-1.jsonl");
    let last = token_count("2025-11-22T20:47:00.000Z", 3000, 1200, 80, 20);
    fs::write(
        &path,
        format!(
            "{SESSION_META}\n{}\n{last}",
            token_count("2025-11-22T20:46:00.000Z", 1000, 200, 50, 10)
        ),
    )
    .unwrap();
    let mut state = ImportState::new();
    let mut stored = run(std::slice::from_ref(&path), &mut state).records;
    assert_eq!(stored.len(), 2);
    append(
        &path,
        &[
            String::new(),
            token_count("2025-11-22T20:48:00.000Z", 3500, 1200, 90, 20),
        ],
    );
    let second = run(std::slice::from_ref(&path), &mut state);
    assert_eq!(second.records.len(), 2, "the re-read line and the new one");
    stored.extend(merge(&stored, second.records));
    let sum = totals(&stored);
    assert_eq!(
        (sum.input, sum.cache_read, sum.output, sum.requests),
        (2300, 1200, 90, 3)
    );
}

#[test]
fn a_replaced_file_is_read_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s1.jsonl");
    write(
        &path,
        &[claude_line("s1", "msg_1", Some("req_1"), false, 10)],
    );
    let mut state = ImportState::new();
    run(std::slice::from_ref(&path), &mut state);
    write(
        &path,
        &[
            claude_line("s2", "msg_9", Some("req_9"), false, 10),
            claude_line("s2", "msg_8", Some("req_8"), false, 10),
        ],
    );
    let again = run(&[path], &mut state);
    assert_eq!(again.records.len(), 2);
}

#[test]
fn parallel_and_sequential_imports_agree() {
    let dir = tempfile::tempdir().unwrap();
    for file in 0..12 {
        let lines: Vec<String> = (0..20)
            .map(|line| {
                let message = format!("msg_{}", (file * 7 + line) % 50);
                let request = format!("req_{}", (file * 7 + line) % 50);
                claude_line("s", &message, Some(&request), line % 5 == 0, file + line)
            })
            .collect();
        write(&dir.path().join(format!("f{file:02}.jsonl")), &lines);
    }
    let roots = [dir.path().to_owned()];
    let sequential = import(
        &roots,
        &mut ImportState::new(),
        &ImportOptions {
            jobs: 1,
            ..ImportOptions::default()
        },
    )
    .unwrap();
    let parallel = import(
        &roots,
        &mut ImportState::new(),
        &ImportOptions {
            jobs: 3,
            ..ImportOptions::default()
        },
    )
    .unwrap();
    assert_eq!(sequential, parallel);
    assert_eq!(sequential.records.len(), 50);
}

#[test]
fn unreadable_and_missing_paths() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    assert!(matches!(
        import(
            &[missing],
            &mut ImportState::new(),
            &ImportOptions::default()
        ),
        Err(ImportError::NotFound { .. })
    ));
    let gone = dir.path().join("gone.jsonl");
    let imported = import_files(&[gone], &mut ImportState::new(), &ImportOptions::default());
    assert_eq!(imported.report.failures.len(), 1);
}

#[test]
fn default_roots_follow_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    for sub in [
        "home/.claude/projects",
        "home/.config/claude/projects",
        "home/.codex/sessions",
        "home/.gemini/tmp",
        "alt/projects",
        "other/projects",
        "codex-home/sessions",
    ] {
        fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    let env = ImportEnv {
        home: Some(home.clone()),
        ..ImportEnv::default()
    };
    assert_eq!(
        default_roots(&env),
        [
            home.join(".config/claude/projects"),
            home.join(".claude/projects"),
            home.join(".codex/sessions"),
            home.join(".gemini/tmp"),
        ]
    );
    let list = format!(
        "{}, {} ,{}",
        dir.path().join("alt").display(),
        dir.path().join("other/projects").display(),
        dir.path().join("absent").display()
    );
    let lookup = |name: &str| match name {
        "HOME" => Some(home.clone().into_os_string()),
        "CLAUDE_CONFIG_DIR" => Some(list.clone().into()),
        "CODEX_HOME" => Some(dir.path().join("codex-home").into_os_string()),
        _ => None,
    };
    assert_eq!(
        default_roots(&ImportEnv::from_lookup(lookup)),
        [
            dir.path().join("alt/projects"),
            dir.path().join("other/projects"),
            dir.path().join("codex-home/sessions"),
            home.join(".gemini/tmp"),
        ]
    );
}

/// Writes a Claude Code transcript of about `bytes` bytes: each round is a user line
/// with a large tool result, three streamed copies of one assistant message and a
/// file-history snapshot, so most bytes are not usage.
fn write_large_transcript(path: &Path, bytes: u64) -> (u64, Totals) {
    let mut file = std::io::BufWriter::new(fs::File::create(path).unwrap());
    let result = "x".repeat(16 * 1024);
    let snapshot = "y".repeat(8 * 1024);
    let mut written = 0;
    let mut rounds = 0;
    let mut expected = Totals::default();
    while written < bytes {
        let user = format!(
            r#"{{"parentUuid":"p","isSidechain":false,"sessionId":"big","version":"1.0.65","type":"user","message":{{"role":"user","content":[{{"type":"tool_result","tool_use_id":"t{rounds}","content":"{result}"}}]}},"uuid":"u{rounds}","timestamp":"2025-09-09T21:51:21.682Z"}}"#
        );
        let message = format!("msg_{rounds}");
        let request = format!("req_{rounds}");
        let output = 100 + rounds % 900;
        let lines = [
            user,
            claude_line("big", &message, Some(&request), false, 1),
            claude_line("big", &message, Some(&request), false, 2),
            claude_line("big", &message, Some(&request), false, output),
            format!(
                r#"{{"type":"file-history-snapshot","messageId":"m{rounds}","snapshot":{{"trackedFileBackups":{{"a.rs":"{snapshot}"}}}}}}"#
            ),
        ];
        for line in lines {
            file.write_all(line.as_bytes()).unwrap();
            file.write_all(b"\n").unwrap();
            written += line.len() as u64 + 1;
        }
        expected.input += 4;
        expected.output += output;
        expected.cache_write_5m += 60;
        expected.cache_write_1h += 40;
        expected.cache_read += 1000;
        expected.requests += 1;
        rounds += 1;
    }
    file.flush().unwrap();
    (written, expected)
}

/// The process's peak resident memory in KiB, from `/proc/self/status`.
fn peak_rss_kib() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Streams a large transcript through the parser, summing records without keeping them.
fn stream_in_bounded_memory(megabytes: u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.jsonl");
    let (size, expected) = write_large_transcript(&path, megabytes * 1024 * 1024);
    let before = peak_rss_kib();
    let mut reader = LineReader::new(fs::File::open(&path).unwrap(), DEFAULT_MAX_LINE_BYTES);
    let mut parser = Parser::new(Format::ClaudeTranscript, Carry::default(), "big");
    let mut coalescer = Coalescer::default();
    let mut duplicates = 0;
    let mut sum = Totals::default();
    let mut max_capacity = 0;
    while let Some(line) = reader.next_line().unwrap() {
        let Line::Complete(bytes) = line else {
            panic!("every line is complete");
        };
        parser
            .line(bytes, &mut |record| {
                if let Some(record) = coalescer.push(record, &mut duplicates) {
                    sum.add(&record);
                }
            })
            .unwrap();
        max_capacity = max_capacity.max(reader.buffer_capacity());
    }
    sum.add(&coalescer.finish().unwrap());
    assert_eq!(reader.consumed(), size);
    assert_eq!(sum, expected);
    assert_eq!(duplicates, 2 * expected.requests);
    assert!(
        max_capacity <= 1024 * 1024,
        "buffers grew to {max_capacity} bytes"
    );
    if let (Some(before), Some(after)) = (before, peak_rss_kib()) {
        let grown = after.saturating_sub(before);
        assert!(
            grown < 16 * 1024,
            "peak memory grew by {grown} KiB reading {size} bytes"
        );
    }
}

#[test]
fn streams_a_large_file_in_bounded_memory() {
    stream_in_bounded_memory(20);
}

#[test]
#[ignore = "writes and reads 500 MB: run with `cargo test --release -- --ignored`"]
fn streams_a_500_mb_file_in_bounded_memory() {
    stream_in_bounded_memory(500);
}

#[test]
fn workers_take_large_files_first_and_the_rest_in_path_order() {
    let directory = tempfile::tempdir().unwrap();
    let sizes = [
        ("a.jsonl", 10),
        ("b.jsonl", 2000),
        ("c.jsonl", 10),
        ("d.jsonl", 3000),
    ];
    for (name, size) in sizes {
        fs::write(directory.path().join(name), "x".repeat(size)).unwrap();
    }
    let found = discover_found(&[directory.path().to_owned()]).unwrap();
    let none = vec![None; found.len()];
    assert_eq!(dispatch_order(&found, &none, 2), [3, 1, 0, 2]);
    // What an earlier import read does not count: only new bytes make a file large.
    let mut read_before = none.clone();
    read_before[3] = Some(FileState {
        size: 3000,
        offset: 3000,
        ..FileState::default()
    });
    assert_eq!(dispatch_order(&found, &read_before, 2), [1, 0, 2, 3]);
}
