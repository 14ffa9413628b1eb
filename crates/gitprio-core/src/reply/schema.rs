//! The JSON Schema of every reply, checked in under `docs/schema/`, and the drift test that
//! holds docs/cli.md to them.
//!
//! Each reply is one line of [`REPLIES`]: its schema file and the heading of its section in
//! docs/cli.md. The tests fail when a schema file differs from what the types generate
//! (`GITPRIO_UPDATE_SCHEMAS=1` or `INSTA_UPDATE=always` rewrites them), when a JSON example
//! of a section does not validate against its reply's schema, and when a field of a reply
//! is not mentioned in its section.
//!
//! The validator covers the subset of JSON Schema that schemars emits (`$ref` into `$defs`,
//! `type`, `properties`, `required`, `items`, `oneOf`, `anyOf`, `allOf`, `enum`, `const`,
//! `minimum`, `maximum`), read strictly: an object with `properties` admits no other keys,
//! so a misspelt key in an example fails. Examples abbreviate with a `"..."` key (the object
//! has more fields than shown) and `…` inside strings.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value};

use super::lease::{
    ClaimReply, DoneFailedReply, DoneReply, DoneUnplannedReply, GcReply, HeartbeatReply,
    LeaseReply, NothingReadyReply, ReleaseReply, RevokeReply, StatusReply, UnparkReply,
};
use super::run::RunReply;
use super::tools::{
    AcceptanceFailedReply, AlreadyHoldingReply, CompletionReply, GiveBackReply, PlanMissingReply,
    QueueReply, RenewalReply, TaskHandout, ToolError, UsageReportReply,
};
use super::usage::{UsageImportReply, UsageRecordReply, UsageShowReply};
use super::{CheckReply, ContextReply, ExplainReply, InitReply, ListReply, NextReply, ShowReply};
use crate::diagnostic::Diagnostic;
use crate::queue::Blocker;
use crate::source::Origin;
use crate::task::Task;

/// One reply with a schema: its file under `docs/schema/`, the heading of its section in
/// docs/cli.md, and how to generate its schema.
struct Reply {
    name: &'static str,
    /// The page that documents it.
    doc: &'static str,
    heading: &'static str,
    schema: fn() -> Value,
    /// Whether the JSON examples of its section show this reply (else they show another
    /// reply of the same command, and this one is described in words).
    examples: bool,
}

/// Every reply that has a schema. A new reply type adds one line here.
const REPLIES: &[Reply] = &[
    reply::<NextReply>("next", "## `gitprio next`"),
    reply::<ListReply>("list", "## `gitprio list`"),
    reply::<ShowReply>("show", "## `gitprio show <ID>`"),
    reply::<ExplainReply>("explain", "## `gitprio explain <ID>`"),
    reply::<CheckReply>("check", "## `gitprio check`"),
    reply::<InitReply>("init", "## `gitprio init`"),
    reply::<ContextReply>("context", "### `gitprio context <ID> --json`"),
    reply::<ClaimReply>("claim", "### `gitprio claim --json`"),
    reply::<HeartbeatReply>("heartbeat", "### `gitprio heartbeat --json`"),
    reply::<ReleaseReply>("release", "### `gitprio release --json`"),
    reply::<DoneReply>("done", "### `gitprio done --json`"),
    reply::<StatusReply>("status", "### `gitprio status --json`"),
    reply::<GcReply>("gc", "### `gitprio gc --json`"),
    reply::<UsageRecordReply>("usage-record", "### `gitprio usage record --json`"),
    reply::<UsageImportReply>("usage-import", "### `gitprio usage import --json`"),
    reply::<UsageShowReply>("usage-show", "### `gitprio usage show <ID> --json`"),
    reply::<RunReply>("run", "### `gitprio run --json`"),
    described::<NothingReadyReply>("claim-nothing-ready", "### `gitprio claim --json`"),
    described::<DoneFailedReply>("done-failed", "### `gitprio done --json`"),
    described::<DoneUnplannedReply>("done-unplanned", "### `gitprio done --json`"),
    described::<UnparkReply>("unpark", "### `gitprio gc --json`"),
    described::<RevokeReply>("revoke", "## `gitprio top` and `gitprio revoke <ID>`"),
    tool::<TaskHandout>("mcp-get_next_task"),
    tool::<RenewalReply>("mcp-heartbeat"),
    tool::<CompletionReply>("mcp-complete_task"),
    tool::<GiveBackReply>("mcp-release_task"),
    tool::<UsageReportReply>("mcp-report_usage"),
    tool::<QueueReply>("mcp-queue"),
    refusal::<ToolError>("mcp-error"),
    refusal::<AlreadyHoldingReply>("mcp-already_holding"),
    refusal::<PlanMissingReply>("mcp-plan_missing"),
    refusal::<AcceptanceFailedReply>("mcp-acceptance_failed"),
];

/// The shared shapes docs/cli.md shows once, each with its example under this heading.
const SHAPES: &[Reply] = &[
    reply::<Task>("Task", "### Task"),
    reply::<Origin>("Origin", "### Source"),
    reply::<Blocker>("Blocker", "### Blocker"),
    reply::<Diagnostic>("Diagnostic", "### Diagnostic"),
    reply::<LeaseReply>("Lease", "### Lease"),
];

/// The sections of docs/cli.md whose JSON has no reply type yet: their examples are not
/// checked. A section leaves this list when its reply gets a line in [`REPLIES`].
const UNTYPED: &[&str] = &[];

const fn reply<T: JsonSchema>(name: &'static str, heading: &'static str) -> Reply {
    Reply {
        name,
        doc: "docs/cli.md",
        heading,
        schema: schema_of::<T>,
        examples: true,
    }
}

/// The reply of an MCP tool, described in the `## Tools` section of docs/mcp.md.
const fn tool<T: JsonSchema>(name: &'static str) -> Reply {
    Reply {
        doc: "docs/mcp.md",
        ..described::<T>(name, "## Tools")
    }
}

/// The data of a refused MCP tool call, described in the `## Errors` section of docs/mcp.md.
const fn refusal<T: JsonSchema>(name: &'static str) -> Reply {
    Reply {
        doc: "docs/mcp.md",
        ..described::<T>(name, "## Errors")
    }
}

/// A reply whose section describes it in words, its examples being another reply's.
const fn described<T: JsonSchema>(name: &'static str, heading: &'static str) -> Reply {
    Reply {
        examples: false,
        ..reply::<T>(name, heading)
    }
}

/// Returns the schema of `T` as it serializes (fields skipped when empty are not required).
fn schema_of<T: JsonSchema>() -> Value {
    SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value()
}

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(relative: &str) -> String {
    let path = repository_root().join(relative);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

fn updating() -> bool {
    std::env::var_os("GITPRIO_UPDATE_SCHEMAS").is_some_and(|value| !value.is_empty())
        || std::env::var("INSTA_UPDATE").is_ok_and(|value| value == "always")
}

#[test]
fn schema_files_match_the_reply_types() {
    let mut stale = Vec::new();
    for reply in REPLIES {
        let relative = format!("docs/schema/{}.json", reply.name);
        let path = repository_root().join(&relative);
        let text = format!(
            "{}\n",
            serde_json::to_string_pretty(&(reply.schema)()).unwrap()
        );
        if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
            continue;
        }
        if updating() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
        } else {
            stale.push(relative);
        }
    }
    assert!(
        stale.is_empty(),
        "these schemas differ from the reply types: {stale:?}; run the test again with GITPRIO_UPDATE_SCHEMAS=1 and review the diff"
    );
}

#[test]
fn every_json_example_of_docs_cli_md_validates_against_its_schema() {
    let doc = read("docs/cli.md");
    let mut problems = Vec::new();
    for reply in REPLIES.iter().chain(SHAPES).filter(|reply| reply.examples) {
        let section = section(&doc, reply.heading)
            .unwrap_or_else(|| panic!("docs/cli.md has no section `{}`", reply.heading));
        let schema = (reply.schema)();
        let examples = json_blocks(section);
        if REPLIES.iter().any(|listed| listed.name == reply.name) && examples.is_empty() {
            problems.push(format!("{}: no JSON example", reply.heading));
        }
        for (index, text) in examples.iter().enumerate() {
            let values = serde_json::Deserializer::from_str(text)
                .into_iter::<Value>()
                .collect::<Result<Vec<Value>, _>>();
            let values = match values {
                Ok(values) => values,
                Err(error) => {
                    problems.push(format!(
                        "{}, example {}: not JSON: {error}",
                        reply.heading,
                        index + 1
                    ));
                    continue;
                }
            };
            for value in values {
                let mut errors = Vec::new();
                Validator { root: &schema }.check(&schema, &value, "", &mut errors);
                problems.extend(
                    errors
                        .into_iter()
                        .map(|error| format!("{}, example {}: {error}", reply.heading, index + 1)),
                );
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_json_example_of_docs_cli_md_is_checked_or_listed_as_untyped() {
    let doc = read("docs/cli.md");
    let mut unchecked = Vec::new();
    let mut heading = "";
    let mut in_fence = false;
    for line in doc.lines() {
        if line.starts_with("```") {
            if !in_fence && line.trim() == "```json" {
                let covered = REPLIES
                    .iter()
                    .chain(SHAPES)
                    .map(|reply| reply.heading)
                    .chain(UNTYPED.iter().copied())
                    .any(|known| known == heading);
                if !covered {
                    unchecked.push(heading);
                }
            }
            in_fence = !in_fence;
        } else if !in_fence && line.starts_with('#') {
            heading = line;
        }
    }
    assert!(
        unchecked.is_empty(),
        "JSON examples under these headings match no reply: {unchecked:?}; add the reply to REPLIES"
    );
    for untyped in UNTYPED {
        assert!(
            section(&doc, untyped).is_some(),
            "docs/cli.md has no `{untyped}`"
        );
    }
}

#[test]
fn every_field_of_a_reply_is_mentioned_in_its_section() {
    let cli = read("docs/cli.md");
    let context_doc = read("docs/context.md");
    let mut missing = Vec::new();
    for reply in REPLIES {
        let doc = read(reply.doc);
        let section = section(&doc, reply.heading)
            .unwrap_or_else(|| panic!("{} has no section `{}`", reply.doc, reply.heading));
        let schema = (reply.schema)();
        for field in property_names(&schema) {
            if !mentions(section, &field) {
                missing.push(format!("{}: `{field}`", reply.heading));
            }
        }
        // The shapes a reply nests are documented once, in its page, docs/cli.md or
        // docs/context.md.
        for (name, definition) in schema["$defs"].as_object().into_iter().flatten() {
            for field in property_names(definition) {
                if ![&doc, &cli, &context_doc]
                    .iter()
                    .any(|text| mentions(text, &field))
                {
                    missing.push(format!("{} ({name}): `{field}`", reply.heading));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "fields no doc mentions:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_validator_rejects_what_the_schema_does_not_allow() {
    let schema = schema_of::<ExplainReply>();
    let check = |value: Value| {
        let mut errors = Vec::new();
        Validator { root: &schema }.check(&schema, &value, "", &mut errors);
        errors
    };
    let valid = serde_json::json!({
        "id": "a", "ready": false, "position": null, "ahead": null, "reason": null,
        "blockers": [{ "reason": "waiting_on", "id": "b", "status": "open" }]
    });
    assert_eq!(check(valid.clone()), Vec::<String>::new());
    let mut wrong_type = valid.clone();
    wrong_type["position"] = Value::from("first");
    let mut unknown_key = valid.clone();
    unknown_key["postion"] = Value::from(1);
    let mut missing = valid.clone();
    missing.as_object_mut().unwrap().remove("ready");
    let mut bad_variant = valid.clone();
    bad_variant["blockers"][0]["reason"] = Value::from("waiting");
    let mut elided = valid;
    elided.as_object_mut().unwrap().remove("ready");
    elided["..."] = Value::from("more");
    for (value, expected) in [
        (wrong_type, "`/position`: expected integer or null"),
        (unknown_key, "`/postion`: no such key"),
        (missing, "`ready` is missing"),
        (bad_variant, "`/blockers/0`: matches none of its variants"),
    ] {
        let errors = check(value);
        assert!(
            errors.iter().any(|error| error.contains(expected)),
            "{expected:?} not in {errors:?}"
        );
    }
    assert_eq!(check(elided), Vec::<String>::new());
}

#[test]
fn a_misspelt_key_of_the_totals_in_an_example_is_caught() {
    let doc = read("docs/cli.md");
    let heading = "### `gitprio usage record --json`";
    let example = &json_blocks(section(&doc, heading).unwrap())[0];
    let mut value: Value = serde_json::from_str(example).unwrap();
    let totals = value["totals"].as_object_mut().unwrap();
    let count = totals.remove("cache_write_5m").unwrap();
    totals.insert("cache_write_5min".to_owned(), count);
    let schema = schema_of::<UsageRecordReply>();
    let mut errors = Vec::new();
    Validator { root: &schema }.check(&schema, &value, "", &mut errors);
    assert_eq!(
        errors,
        [
            "`/totals`: `cache_write_5m` is missing",
            "`/totals/cache_write_5min`: no such key"
        ]
    );
}

/// Returns the part of `doc` under `heading`, up to the next heading of its level or higher.
fn section<'a>(doc: &'a str, heading: &str) -> Option<&'a str> {
    let level = heading.chars().take_while(|&c| c == '#').count();
    let mut offset = 0;
    let mut start = None;
    let mut in_fence = false;
    for line in doc.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if trimmed.starts_with("```") {
            in_fence = !in_fence;
        }
        if !in_fence {
            let hashes = trimmed.chars().take_while(|&c| c == '#').count();
            let is_heading = hashes > 0 && trimmed[hashes..].starts_with(' ');
            match start {
                None if trimmed == heading => start = Some(offset + line.len()),
                Some(begin) if is_heading && hashes <= level => return Some(&doc[begin..offset]),
                _ => {}
            }
        }
        offset += line.len();
    }
    start.map(|begin| &doc[begin..])
}

/// Returns the text of every ```` ```json ```` block in `text`.
fn json_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match &mut current {
            None if line.trim() == "```json" => current = Some(String::new()),
            Some(block) if line.trim() == "```" => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// Returns the property names a schema declares at its top level, through `allOf` and `oneOf`.
fn property_names(schema: &Value) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = schema["properties"]
        .as_object()
        .into_iter()
        .flat_map(|properties| properties.keys().cloned())
        .collect();
    for key in ["allOf", "oneOf", "anyOf"] {
        for part in schema[key].as_array().into_iter().flatten() {
            names.extend(property_names(part));
        }
    }
    names
}

/// Returns whether `text` names `field`: in backticks, or as a key of a JSON example.
fn mentions(text: &str, field: &str) -> bool {
    text.contains(&format!("`{field}`")) || text.contains(&format!("\"{field}\""))
}

/// Checks values against one root schema, resolving `$ref`s in its `$defs`.
struct Validator<'a> {
    root: &'a Value,
}

impl Validator<'_> {
    fn resolve<'s>(&'s self, schema: &'s Value) -> &'s Value {
        match schema["$ref"].as_str() {
            Some(reference) => {
                let name = reference
                    .strip_prefix("#/$defs/")
                    .unwrap_or_else(|| panic!("unsupported $ref {reference}"));
                &self.root["$defs"][name]
            }
            None => schema,
        }
    }

    fn check(&self, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let schema = self.resolve(schema);
        let Some(rules) = schema.as_object() else {
            // `true`: anything goes.
            return;
        };
        let place = if at.is_empty() { "/" } else { at };
        if let Some(expected) = rules.get("type")
            && !type_matches(expected, value)
        {
            errors.push(format!("`{place}`: expected {}", type_names(expected)));
            return;
        }
        if let Some(constant) = rules.get("const")
            && constant != value
        {
            errors.push(format!("`{place}`: expected {constant}"));
        }
        if let Some(allowed) = rules.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            errors.push(format!("`{place}`: {value} is not one of {allowed:?}"));
        }
        if let Some(number) = value.as_f64()
            && (rules
                .get("minimum")
                .and_then(Value::as_f64)
                .is_some_and(|minimum| number < minimum)
                || rules
                    .get("maximum")
                    .and_then(Value::as_f64)
                    .is_some_and(|maximum| number > maximum))
        {
            errors.push(format!("`{place}`: {number} is out of range"));
        }
        for part in rules
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.check(part, value, at, errors);
        }
        for (key, exactly_one) in [("oneOf", true), ("anyOf", false)] {
            let Some(variants) = rules.get(key).and_then(Value::as_array) else {
                continue;
            };
            let matching = variants
                .iter()
                .filter(|variant| {
                    let mut variant_errors = Vec::new();
                    self.check(variant, value, at, &mut variant_errors);
                    variant_errors.is_empty()
                })
                .count();
            if matching == 0 || (exactly_one && matching > 1) {
                errors.push(format!("`{place}`: matches none of its variants"));
            }
        }
        match value {
            Value::Object(object) => self.check_object(rules, object, at, errors),
            Value::Array(items) => {
                if let Some(item_schema) = rules.get("items") {
                    for (index, item) in items.iter().enumerate() {
                        self.check(item_schema, item, &format!("{at}/{index}"), errors);
                    }
                }
            }
            _ => {}
        }
    }

    fn check_object(
        &self,
        rules: &Map<String, Value>,
        object: &Map<String, Value>,
        at: &str,
        errors: &mut Vec<String>,
    ) {
        let place = if at.is_empty() { "/" } else { at };
        let elided = object.contains_key("...");
        let properties = rules.get("properties").and_then(Value::as_object);
        if !elided {
            for required in rules
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !object.contains_key(required) {
                    errors.push(format!("`{place}`: `{required}` is missing"));
                }
            }
        }
        let extra = rules.get("additionalProperties");
        for (key, item) in object {
            let path = format!("{at}/{key}");
            match properties.and_then(|properties| properties.get(key)) {
                Some(property) => self.check(property, item, &path, errors),
                None if key == "..." => {}
                None => match extra {
                    Some(Value::Bool(false)) => errors.push(format!("`{path}`: no such key")),
                    Some(extra @ Value::Object(_)) => self.check(extra, item, &path, errors),
                    // A schema that names its properties admits no others here: a misspelt key
                    // in an example is caught.
                    _ if properties.is_some() => errors.push(format!("`{path}`: no such key")),
                    _ => {}
                },
            }
        }
    }
}

fn type_matches(expected: &Value, value: &Value) -> bool {
    match expected {
        Value::String(name) => is_type(name, value),
        Value::Array(names) => names
            .iter()
            .filter_map(Value::as_str)
            .any(|name| is_type(name, value)),
        _ => true,
    }
}

fn is_type(name: &str, value: &Value) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    }
}

fn type_names(expected: &Value) -> String {
    match expected {
        Value::Array(names) => names
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        other => other.as_str().unwrap_or("?").to_owned(),
    }
}
