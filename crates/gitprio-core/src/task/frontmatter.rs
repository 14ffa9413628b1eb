//! Splitting a task file into its YAML frontmatter and markdown body.

/// A task file cut into its parts, with the file lines they start on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frontmatter<'a> {
    /// The YAML between the `---` fences.
    pub yaml: &'a str,
    /// The file line of the first YAML line (1-based).
    pub yaml_line: u32,
    /// The markdown after the closing fence.
    pub body: &'a str,
    /// The file line of the first body line (1-based).
    pub body_line: u32,
    /// Byte offset of the YAML within the file.
    pub yaml_offset: usize,
}

/// Splits `text` at its frontmatter fences: a first line `---` and a later line `---` or `...`.
///
/// Returns `None` when the file does not open with a frontmatter block or never closes it.
pub fn split_frontmatter(text: &str) -> Option<Frontmatter<'_>> {
    let bom = if text.starts_with('\u{feff}') {
        '\u{feff}'.len_utf8()
    } else {
        0
    };
    let rest = &text[bom..];
    let first_line_end = rest.find('\n').map_or(rest.len(), |index| index + 1);
    if rest[..first_line_end].trim_end() != "---" {
        return None;
    }
    let yaml_offset = bom + first_line_end;
    let mut offset = yaml_offset;
    for (line, candidate) in (2_u32..).zip(text[yaml_offset..].split_inclusive('\n')) {
        let fence = candidate.trim_end();
        if fence == "---" || fence == "..." {
            let body_offset = offset + candidate.len();
            return Some(Frontmatter {
                yaml: &text[yaml_offset..offset],
                yaml_line: 2,
                body: &text[body_offset..],
                body_line: line + 1,
                yaml_offset,
            });
        }
        offset += candidate.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_yaml_and_body_with_lines() {
        let parts = split_frontmatter("---\ntitle: a\nid: b\n---\n# Body\n").unwrap();
        assert_eq!(parts.yaml, "title: a\nid: b\n");
        assert_eq!(parts.yaml_line, 2);
        assert_eq!(parts.body, "# Body\n");
        assert_eq!(parts.body_line, 5);
    }

    #[test]
    fn accepts_crlf_bom_and_dots_fence() {
        let parts = split_frontmatter("\u{feff}---\r\ntitle: a\r\n...\r\nbody").unwrap();
        assert_eq!(parts.yaml, "title: a\r\n");
        assert_eq!(parts.body, "body");
        assert_eq!(parts.body_line, 4);
    }

    #[test]
    fn empty_frontmatter_and_no_body() {
        let parts = split_frontmatter("---\n---").unwrap();
        assert_eq!(parts.yaml, "");
        assert_eq!(parts.body, "");
    }

    #[test]
    fn rejects_missing_or_unclosed_fences() {
        assert!(split_frontmatter("# Just markdown\n").is_none());
        assert!(split_frontmatter("---\ntitle: a\n").is_none());
        assert!(split_frontmatter(" ---\ntitle: a\n---\n").is_none());
    }
}
