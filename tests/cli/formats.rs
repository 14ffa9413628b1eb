//! Generated and documented formats stay in sync with the code.

use std::path::Path;

#[test]
fn schema_lists_exactly_the_fields_the_parser_knows() {
    let schema_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/task.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path).unwrap()).unwrap();
    let properties: Vec<&str> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected: Vec<&str> = gitprio_core::task::FIELDS.to_vec();
    let mut actual = properties.clone();
    expected.sort_unstable();
    actual.sort_unstable();
    assert_eq!(
        actual, expected,
        "docs/task.schema.json drifted from the parser's fields"
    );
    assert_eq!(schema["required"], serde_json::json!(["title"]));
}

#[test]
fn task_format_doc_names_every_field() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/task-format.md"))
            .unwrap();
    for field in gitprio_core::task::FIELDS {
        assert!(
            doc.contains(&format!("`{field}`")),
            "docs/task-format.md does not document `{field}`"
        );
    }
}

#[test]
fn readme_exit_code_table_matches() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for (code, name) in [
        (0, "ok"),
        (1, "failure"),
        (2, "usage"),
        (3, "nothing ready"),
        (4, "lease"),
        (5, "budget"),
        (6, "not a git repository"),
        (7, "no task queue"),
        (130, "interrupted"),
    ] {
        assert!(
            readme.contains(&format!("| {code} | {name}")),
            "README's exit-code table lacks `| {code} | {name}`"
        );
    }
}

/// A JSON value that keeps the order of its keys, which `serde_json::Value` sorts.
enum Ordered {
    Object(Vec<(String, Ordered)>),
    Array(Vec<Ordered>),
    Scalar,
}

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor;
        impl<'de> serde::de::Visitor<'de> for OrderedVisitor {
            type Value = Ordered;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("JSON")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Ordered, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Ordered>()? {
                    entries.push(entry);
                }
                Ok(Ordered::Object(entries))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Ordered, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Ordered>()? {
                    items.push(item);
                }
                Ok(Ordered::Array(items))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_str<E>(self, _: &str) -> Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
        }
        deserializer.deserialize_any(OrderedVisitor)
    }
}

/// Lists, at `at` and below, where `shown` (a doc example) orders keys unlike `actual`
/// (the command's output): keys only one side has are passed over.
fn order_differences(shown: &Ordered, actual: &Ordered, at: &str, differences: &mut Vec<String>) {
    match (shown, actual) {
        (Ordered::Object(shown), Ordered::Object(actual)) => {
            let actual_keys: Vec<&str> = actual.iter().map(|(key, _)| key.as_str()).collect();
            let shown_keys: Vec<&str> = shown
                .iter()
                .map(|(key, _)| key.as_str())
                .filter(|key| actual_keys.contains(key))
                .collect();
            let expected: Vec<&str> = actual_keys
                .iter()
                .copied()
                .filter(|key| shown_keys.contains(key))
                .collect();
            if shown_keys != expected {
                differences.push(format!("{at}: shown {shown_keys:?}, printed {expected:?}"));
            }
            for (key, value) in shown {
                if let Some((_, other)) = actual.iter().find(|(name, _)| name == key) {
                    order_differences(value, other, &format!("{at}/{key}"), differences);
                }
            }
        }
        (Ordered::Array(shown), Ordered::Array(actual)) => {
            for (index, (value, other)) in shown.iter().zip(actual).enumerate() {
                order_differences(value, other, &format!("{at}/{index}"), differences);
            }
        }
        _ => {}
    }
}

/// Returns the first ```` ```json ```` block under the heading `heading` of docs/cli.md.
fn first_example(doc: &str, heading: &str) -> String {
    let start = doc
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("docs/cli.md has no `{heading}`"));
    let rest = &doc[start..];
    let block = rest
        .find("```json\n")
        .unwrap_or_else(|| panic!("no JSON example under `{heading}`"));
    let body = &rest[block + "```json\n".len()..];
    body[..body.find("```").unwrap()].to_owned()
}

#[test]
fn json_replies_print_their_keys_in_the_order_docs_cli_md_shows() {
    let env = crate::common::TestEnv::new();
    env.example_repo("repo");
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/cli.md")).unwrap();
    let cases: [(&str, &[&str]); 7] = [
        ("## `gitprio next`", &["next", "--json"]),
        ("## `gitprio list`", &["list", "--json"]),
        (
            "## `gitprio show <ID>`",
            &["show", "auth-password-reset", "--json"],
        ),
        (
            "## `gitprio explain <ID>`",
            &["explain", "search-index-tokenizer", "--json"],
        ),
        ("## `gitprio check`", &["check", "--json"]),
        (
            "### `gitprio context <ID> --json`",
            &["context", "auth-login-rate-limit", "--json"],
        ),
        ("## `gitprio init`", &["init", "--json"]),
    ];
    let mut differences = Vec::new();
    for (heading, args) in cases {
        let output = env.run("repo", args);
        assert!(!output.stdout.is_empty(), "{output}");
        let actual: Ordered = serde_json::from_str(&output.stdout).unwrap();
        let shown: Ordered = serde_json::from_str(&first_example(&doc, heading)).unwrap();
        order_differences(&shown, &actual, heading, &mut differences);
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}
