//! The bytes of one ledger chunk (`runs/<run>/usage/<n>.jsonl`): writing the current
//! format and reading every format a ledger may hold. The segments of the unattributed
//! store (`usage::attribute`) are written and read the same way.
//!
//! Format 2, written since issue 16's fourth round, is JSON lines: a header naming the
//! format and the contexts of the chunk's records (what a run of records shares: source,
//! session, model, speed, working directory, branch, sidechain), then one array per
//! record with the index of its context, its key, its time and its counters:
//!
//! ```text
//! {"format":2,"contexts":[{"source":"claude","session":"9f1c","model":"claude-opus-4-6","cwd":"/repo"}]}
//! [0,"claude:msg_01:req_01","2026-05-05T23:43:11.939Z",4,187,0,0,8423,0,1]
//! ```
//!
//! A record of the format before it (format 1) was one `UsageRecord` object per line,
//! repeating its context each time: three times the bytes to hash, compress and write,
//! which was most of a large import's time after reading the logs. Chunks of format 1
//! stay readable. An older gitprio reading a format 2 chunk stops at its header (it has
//! no `key`) and says the ledger is corrupt rather than misreading it.

use std::io::Write as _;

use jiff::Timestamp;
use rustc_hash::FxHashMap;
use serde::Deserialize;

use super::super::UsageRecord;
use super::super::index::counters;

/// The format this gitprio writes.
const FORMAT: u32 = 2;

/// What a chunk's records share, as its header names it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Context {
    source: String,
    #[serde(default)]
    session: Option<String>,
    model: String,
    #[serde(default)]
    speed: Option<String>,
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    branch: Option<String>,
    #[serde(default)]
    sidechain: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: u32,
    contexts: Vec<Context>,
}

/// One record line: context, key, time, then input, output, 5-minute and 1-hour cache
/// writes, cache reads, reasoning and requests.
type Line = (
    usize,
    String,
    Option<Timestamp>,
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
    u32,
);

/// The fields of a record that its context holds, borrowed.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct ContextKey<'r> {
    source: &'r str,
    session: Option<&'r str>,
    model: &'r str,
    speed: Option<&'r str>,
    cwd: Option<&'r str>,
    branch: Option<&'r str>,
    sidechain: bool,
}

impl<'r> ContextKey<'r> {
    fn of(record: &'r UsageRecord) -> Self {
        ContextKey {
            source: &record.source,
            session: record.session.as_deref(),
            model: &record.model,
            speed: record.speed.as_deref(),
            cwd: record.cwd.as_deref(),
            branch: record.branch.as_deref(),
            sidechain: record.sidechain,
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"source\":");
        push_json_string(out, self.source);
        if let Some(session) = self.session {
            out.extend_from_slice(b",\"session\":");
            push_json_string(out, session);
        }
        out.extend_from_slice(b",\"model\":");
        push_json_string(out, self.model);
        for (name, value) in [
            (&b",\"speed\":"[..], self.speed),
            (b",\"cwd\":", self.cwd),
            (b",\"branch\":", self.branch),
        ] {
            if let Some(value) = value {
                out.extend_from_slice(name);
                push_json_string(out, value);
            }
        }
        if self.sidechain {
            out.extend_from_slice(b",\"sidechain\":true");
        }
        out.push(b'}');
    }
}

/// Appends `records` to `out` as one chunk of the current format.
pub(in crate::usage) fn write_chunk(out: &mut Vec<u8>, records: &[&UsageRecord]) {
    let mut contexts: Vec<ContextKey<'_>> = Vec::new();
    let mut known: FxHashMap<ContextKey<'_>, usize> = FxHashMap::default();
    let mut of_record = Vec::with_capacity(records.len());
    let mut previous: Option<(ContextKey<'_>, usize)> = None;
    for record in records {
        let context = ContextKey::of(record);
        // Neighbours mostly share their context: the map is asked only when it changes.
        let index = match previous {
            Some((last, index)) if last == context => index,
            _ => *known.entry(context).or_insert_with(|| {
                contexts.push(context);
                contexts.len() - 1
            }),
        };
        previous = Some((context, index));
        of_record.push(index);
    }
    out.extend_from_slice(b"{\"format\":");
    push_u64(out, u64::from(FORMAT));
    out.extend_from_slice(b",\"contexts\":[");
    for (position, context) in contexts.iter().enumerate() {
        if position > 0 {
            out.push(b',');
        }
        context.write(out);
    }
    out.extend_from_slice(b"]}\n");
    for (record, context) in records.iter().zip(of_record) {
        out.push(b'[');
        push_u64(out, context as u64);
        out.push(b',');
        push_json_string(out, &record.key);
        match record.at {
            Some(at) => {
                out.extend_from_slice(b",\"");
                write!(out, "{at}").expect("writing to memory");
                out.push(b'"');
            }
            None => out.extend_from_slice(b",null"),
        }
        for value in counters(record) {
            out.push(b',');
            push_u64(out, value);
        }
        out.extend_from_slice(b"]\n");
    }
}

/// Reads the records of a chunk of any format; the error says which line is wrong.
pub(in crate::usage) fn parse_chunk(bytes: &[u8]) -> Result<Vec<UsageRecord>, String> {
    let mut lines = bytes
        .split(|byte| *byte == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.is_empty());
    let Some((_, first)) = lines.clone().next() else {
        return Ok(Vec::new());
    };
    let located =
        |index: usize| move |error: serde_json::Error| format!("line {}: {error}", index + 1);
    if !first.starts_with(b"{\"format\":") {
        return lines
            .map(|(index, line)| serde_json::from_slice(line).map_err(located(index)))
            .collect();
    }
    let (index, first) = lines.next().expect("checked above");
    let header: Header = serde_json::from_slice(first).map_err(located(index))?;
    if header.format != FORMAT {
        return Err(format!(
            "chunk format {} is not one this gitprio reads (it reads 1 and {FORMAT}): upgrade gitprio",
            header.format
        ));
    }
    lines
        .map(|(index, line)| {
            let line: Line = serde_json::from_slice(line).map_err(located(index))?;
            let (
                context,
                key,
                at,
                input,
                output,
                five_minutes,
                one_hour,
                read,
                reasoning,
                requests,
            ) = line;
            let context = header.contexts.get(context).ok_or_else(|| {
                format!("line {}: context {context} is not in the header", index + 1)
            })?;
            Ok(UsageRecord {
                key,
                source: context.source.clone(),
                session: context.session.clone(),
                model: context.model.clone(),
                at,
                input,
                output,
                cache_write_5m: five_minutes,
                cache_write_1h: one_hour,
                cache_read: read,
                reasoning,
                requests,
                sidechain: context.sidechain,
                speed: context.speed.clone(),
                cwd: context.cwd.clone(),
                branch: context.branch.clone(),
                project_hash: None,
            })
        })
        .collect()
}

/// Appends `text` as a JSON string; only one that needs escapes goes through `serde_json`.
fn push_json_string(out: &mut Vec<u8>, text: &str) {
    let plain = !text
        .bytes()
        .any(|byte| byte < 0x20 || byte == b'"' || byte == b'\\');
    if plain {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, text).expect("writing to memory");
    }
}

fn push_u64(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0_u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + u8::try_from(value % 10).expect("a digit");
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tricky() -> Vec<UsageRecord> {
        let full = UsageRecord {
            key: "claude:msg_01:req_01".to_owned(),
            source: "claude".to_owned(),
            session: Some("9f1c-\u{e9}t\u{e9}".to_owned()),
            model: "claude-opus-4-6".to_owned(),
            at: Some("2026-05-05T23:43:11.939Z".parse().unwrap()),
            input: 0,
            output: u64::MAX,
            cache_write_5m: 10,
            cache_write_1h: 1_000_000_007,
            cache_read: 9_470_487_136,
            reasoning: 3,
            requests: u32::MAX,
            sidechain: true,
            speed: Some("fast".to_owned()),
            cwd: Some("C:\\repo\\\"quoted\"\n\t\u{1}\u{1f}\u{7f}/x".to_owned()),
            branch: Some("unit\u{1f}separator".to_owned()),
            project_hash: None,
        };
        let same_context = UsageRecord {
            key: "claude:msg_02:req_02".to_owned(),
            output: 7,
            ..full.clone()
        };
        let main_line = UsageRecord {
            key: "claude:msg_03:\"req\"".to_owned(),
            sidechain: false,
            ..full.clone()
        };
        let bare = UsageRecord {
            key: "manual:1".to_owned(),
            model: String::new(),
            at: Some("2026-01-01T00:00:00Z".parse().unwrap()),
            ..UsageRecord::default()
        };
        vec![
            full,
            same_context,
            main_line,
            bare,
            UsageRecord::default(),
            UsageRecord {
                key: "again".to_owned(),
                ..tricky_first_context()
            },
        ]
    }

    /// A record whose context appeared earlier in the chunk, not just before it.
    fn tricky_first_context() -> UsageRecord {
        UsageRecord {
            source: "claude".to_owned(),
            session: Some("9f1c-\u{e9}t\u{e9}".to_owned()),
            model: "claude-opus-4-6".to_owned(),
            sidechain: true,
            speed: Some("fast".to_owned()),
            cwd: Some("C:\\repo\\\"quoted\"\n\t\u{1}\u{1f}\u{7f}/x".to_owned()),
            branch: Some("unit\u{1f}separator".to_owned()),
            requests: 1,
            ..UsageRecord::default()
        }
    }

    #[test]
    fn chunks_read_back_what_was_written() {
        let records = tricky();
        let mut bytes = Vec::new();
        write_chunk(&mut bytes, &records.iter().collect::<Vec<_>>());
        assert_eq!(parse_chunk(&bytes).unwrap(), records);
        let text = String::from_utf8(bytes).unwrap();
        let header: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        // Three contexts for six records: each is named once.
        assert_eq!(header["contexts"].as_array().unwrap().len(), 3);
        assert_eq!(text.lines().count(), 1 + records.len());
    }

    #[test]
    fn chunks_of_the_first_format_stay_readable() {
        let records = tricky();
        let mut bytes = Vec::new();
        for record in &records {
            serde_json::to_writer(&mut bytes, record).unwrap();
            bytes.push(b'\n');
        }
        assert_eq!(parse_chunk(&bytes).unwrap(), records);
        assert_eq!(parse_chunk(b"").unwrap(), []);
    }

    #[test]
    fn a_damaged_or_newer_chunk_is_an_error_that_names_the_line() {
        let records = tricky();
        let mut bytes = Vec::new();
        write_chunk(&mut bytes, &records.iter().collect::<Vec<_>>());
        let text = String::from_utf8(bytes).unwrap();
        let damaged = text.replacen("\n[0,", "\n[9,", 1);
        assert_eq!(
            parse_chunk(damaged.as_bytes()).unwrap_err(),
            "line 2: context 9 is not in the header"
        );
        let truncated = &text[..text.len() - 3];
        assert!(
            parse_chunk(truncated.as_bytes())
                .unwrap_err()
                .starts_with(&format!("line {}: ", 1 + records.len()))
        );
        let newer = text.replacen("{\"format\":2", "{\"format\":3", 1);
        assert!(
            parse_chunk(newer.as_bytes())
                .unwrap_err()
                .contains("chunk format 3 is not one this gitprio reads")
        );
    }

    /// What an older gitprio makes of a new chunk: an error, never other records.
    #[test]
    fn a_reader_of_the_first_format_refuses_the_header() {
        let mut bytes = Vec::new();
        write_chunk(&mut bytes, &tricky().iter().collect::<Vec<_>>());
        let first = bytes.split(|byte| *byte == b'\n').next().unwrap();
        assert!(serde_json::from_slice::<UsageRecord>(first).is_err());
    }
}
