//! Editing a task file in place: one frontmatter line changes, every other byte stays.

use super::{Status, split_frontmatter};

/// Why a status edit could not be made.
#[derive(Debug, thiserror::Error)]
pub enum StatusEditError {
    #[error("task file has no frontmatter to edit")]
    NoFrontmatter,
}

/// Returns `text` with its frontmatter `status:` set to `status`.
///
/// Only the `status:` line changes (a trailing comment on it is kept); when the
/// key is absent, a `status:` line is added at the end of the frontmatter.
pub fn set_status(text: &str, status: Status) -> Result<String, StatusEditError> {
    let parts = split_frontmatter(text).ok_or(StatusEditError::NoFrontmatter)?;
    let yaml_start = parts.yaml_offset;
    let yaml_end = yaml_start + parts.yaml.len();
    let mut offset = yaml_start;
    for line in parts.yaml.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("status:") {
            let value_and_comment = rest.trim_end_matches(['\n', '\r']);
            let comment = value_and_comment
                .find(" #")
                .map(|index| &value_and_comment[index..])
                .unwrap_or_default();
            let ending = &rest[value_and_comment.len()..];
            let replacement = format!("status: {status}{comment}{ending}");
            return Ok(format!(
                "{}{replacement}{}",
                &text[..offset],
                &text[offset + line.len()..]
            ));
        }
        offset += line.len();
    }
    let ending = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let separator = if parts.yaml.is_empty() || parts.yaml.ends_with('\n') {
        ""
    } else {
        ending
    };
    Ok(format!(
        "{}{separator}status: {status}{ending}{}",
        &text[..yaml_end],
        &text[yaml_end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_the_status_line() {
        let text = "---\ntitle: T   # keep\nstatus: open # was open\npriority: 1\n---\nbody  \n";
        assert_eq!(
            set_status(text, Status::Done).unwrap(),
            "---\ntitle: T   # keep\nstatus: done # was open\npriority: 1\n---\nbody  \n"
        );
    }

    #[test]
    fn adds_a_missing_status_line() {
        assert_eq!(
            set_status("---\ntitle: T\n---\nbody\n", Status::Done).unwrap(),
            "---\ntitle: T\nstatus: done\n---\nbody\n"
        );
        assert_eq!(
            set_status("---\r\ntitle: T\r\n---\r\n", Status::Done).unwrap(),
            "---\r\ntitle: T\r\nstatus: done\r\n---\r\n"
        );
    }

    #[test]
    fn keeps_crlf_endings() {
        assert_eq!(
            set_status("---\r\nstatus: open\r\n---\r\n", Status::Done).unwrap(),
            "---\r\nstatus: done\r\n---\r\n"
        );
    }
}
