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
