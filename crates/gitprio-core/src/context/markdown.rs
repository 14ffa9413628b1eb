//! Markdown structure for context: headings with their anchors, sections, and links, by byte offset.

use std::collections::HashMap;
use std::ops::Range;

use pulldown_cmark::{Event, LinkType, Options, Parser, Tag, TagEnd};

use crate::diagnostic::Position;

/// A heading: where it starts, its level and the anchor a link names it by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heading {
    pub level: u8,
    /// Byte offset of the heading's first line.
    pub start: usize,
    /// The explicit `{#id}`, else the GitHub slug of its text (`x`, then `x-1` for a duplicate).
    pub anchor: String,
}

/// A link and where it is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub destination: String,
    /// Byte offset of the link's `[` (or `<` of an autolink).
    pub offset: usize,
}

/// The headings and links of one markdown document, in document order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Document {
    pub headings: Vec<Heading>,
    pub links: Vec<Link>,
}

/// Parses `text` with pulldown-cmark: headings inside code blocks are code, not headings.
pub fn parse(text: &str) -> Document {
    let options = Options::ENABLE_HEADING_ATTRIBUTES
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS
        | Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS;
    let mut document = Document::default();
    let mut slugger = Slugger::default();
    let mut open: Option<(u8, usize, Option<String>, String)> = None;
    for (event, range) in Parser::new_ext(text, options).into_offset_iter() {
        match event {
            Event::Start(Tag::Heading { level, id, .. }) => {
                open = Some((
                    level as u8,
                    range.start,
                    id.map(|id| id.to_string()),
                    String::new(),
                ));
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some((level, start, id, heading_text)) = open.take() {
                    let anchor = id.unwrap_or_else(|| slugger.slug(&heading_text));
                    document.headings.push(Heading {
                        level,
                        start,
                        anchor,
                    });
                }
            }
            Event::Text(fragment) | Event::Code(fragment) => {
                if let Some((_, _, _, heading_text)) = open.as_mut() {
                    heading_text.push_str(&fragment);
                }
            }
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                ..
            }) if !matches!(link_type, LinkType::Email | LinkType::WikiLink { .. }) => {
                document.links.push(Link {
                    destination: dest_url.to_string(),
                    offset: range.start,
                });
            }
            _ => {}
        }
    }
    document
}

impl Document {
    /// Returns the byte range of the section under the heading `anchor`: from the heading to the
    /// next heading of the same or a higher level. An exact anchor wins over one differing in case.
    pub fn section(&self, anchor: &str, length: usize) -> Option<Range<usize>> {
        let index = self
            .headings
            .iter()
            .position(|heading| heading.anchor == anchor)
            .or_else(|| {
                self.headings
                    .iter()
                    .position(|heading| heading.anchor.eq_ignore_ascii_case(anchor))
            })?;
        let heading = &self.headings[index];
        let end = self.headings[index + 1..]
            .iter()
            .find(|next| next.level <= heading.level)
            .map_or(length, |next| next.start);
        Some(heading.start..end)
    }

    /// Returns the anchor closest to `anchor`, for a "did you mean" hint.
    pub fn closest_anchor(&self, anchor: &str) -> Option<&str> {
        let wanted = anchor.to_lowercase();
        self.headings
            .iter()
            .map(|heading| (edit_distance(&wanted, &heading.anchor), &heading.anchor))
            .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 3))
            .min_by_key(|(distance, _)| *distance)
            .map(|(_, candidate)| candidate.as_str())
    }
}

/// Returns the byte range of GitHub line anchors `L12` and `L12-L20` (1-based, inclusive).
pub fn line_range(text: &str, anchor: &str) -> Option<Range<usize>> {
    let (first, last) = match anchor.split_once('-') {
        Some((first, last)) => (first, last),
        None => (anchor, anchor),
    };
    let number = |part: &str| -> Option<usize> {
        part.strip_prefix('L')?
            .parse::<usize>()
            .ok()
            .filter(|line| *line > 0)
    };
    let (first, last) = (number(first)?, number(last)?);
    if last < first {
        return None;
    }
    let mut starts = std::iter::once(0).chain(text.match_indices('\n').map(|(index, _)| index + 1));
    let start = starts.nth(first - 1).filter(|start| *start < text.len())?;
    let end = starts.nth(last - first).unwrap_or(text.len());
    Some(start..end)
}

/// Where the lines of a text start, to turn byte offsets into lines and columns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    pub fn new(text: &str) -> Lines {
        Lines {
            starts: std::iter::once(0)
                .chain(text.match_indices('\n').map(|(index, _)| index + 1))
                .collect(),
        }
    }

    /// Returns the 1-based line and column (in characters) of byte `offset` in `text`.
    pub fn position(&self, text: &str, offset: usize) -> Position {
        let offset = offset.min(text.len());
        let line = self.starts.partition_point(|start| *start <= offset).max(1);
        let column = text[self.starts[line - 1]..offset].chars().count() + 1;
        Position::new(
            u32::try_from(line).unwrap_or(u32::MAX),
            u32::try_from(column).unwrap_or(u32::MAX),
        )
    }
}

/// GitHub's heading slugs: lower case, punctuation dropped, spaces to `-`, duplicates numbered.
#[derive(Debug, Default)]
struct Slugger {
    occurrences: HashMap<String, usize>,
}

impl Slugger {
    fn slug(&mut self, text: &str) -> String {
        let original: String = text
            .to_lowercase()
            .chars()
            .filter_map(|character| match character {
                ' ' => Some('-'),
                '-' | '_' => Some(character),
                character if character.is_alphanumeric() => Some(character),
                _ => None,
            })
            .collect();
        let mut slug = original.clone();
        while self.occurrences.contains_key(&slug) {
            let count = self.occurrences.entry(original.clone()).or_insert(0);
            *count += 1;
            slug = format!("{original}-{count}");
        }
        self.occurrences.insert(slug.clone(), 0);
        slug
    }
}

fn edit_distance(left: &str, right: &str) -> usize {
    let right: Vec<char> = right.chars().collect();
    let mut previous: Vec<usize> = (0..=right.len()).collect();
    for (row, left_char) in left.chars().enumerate() {
        let mut current = vec![row + 1];
        for (column, right_char) in right.iter().enumerate() {
            let substitution = previous[column] + usize::from(left_char != *right_char);
            current.push(
                substitution
                    .min(previous[column + 1] + 1)
                    .min(current[column] + 1),
            );
        }
        previous = current;
    }
    previous[right.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section<'a>(text: &'a str, anchor: &str) -> Option<&'a str> {
        parse(text)
            .section(anchor, text.len())
            .map(|range| &text[range])
    }

    #[test]
    fn a_section_runs_to_the_next_heading_of_the_same_or_higher_level() {
        let text = "# Guide\nintro\n## Setup\nsetup\n### Linux\nlinux\n## Usage\nusage\n# Other\n";
        assert_eq!(
            section(text, "setup"),
            Some("## Setup\nsetup\n### Linux\nlinux\n")
        );
        assert_eq!(section(text, "linux"), Some("### Linux\nlinux\n"));
        assert_eq!(section(text, "usage"), Some("## Usage\nusage\n"));
        assert_eq!(section(text, "other"), Some("# Other\n"));
        assert_eq!(
            section(text, "guide").unwrap().len(),
            text.len() - "# Other\n".len()
        );
        assert_eq!(section(text, "missing"), None);
    }

    #[test]
    fn setext_headings_are_sections_too() {
        let text = "Title\n=====\nintro\n\nPart one\n--------\none\n\nPart two\n--------\ntwo\n";
        assert_eq!(
            section(text, "part-one"),
            Some("Part one\n--------\none\n\n")
        );
        assert_eq!(section(text, "title").map(str::len), Some(text.len()));
    }

    #[test]
    fn headings_inside_code_blocks_are_not_headings() {
        let text = "## Real\n\n```sh\n# not a heading\n## Fake\n```\n\n    # indented code\n\nstill real\n## Next\n";
        let document = parse(text);
        let anchors: Vec<&str> = document
            .headings
            .iter()
            .map(|heading| heading.anchor.as_str())
            .collect();
        assert_eq!(anchors, ["real", "next"]);
        assert!(section(text, "real").unwrap().contains("still real"));
        assert_eq!(section(text, "fake"), None);
    }

    #[test]
    fn explicit_anchors_name_their_heading() {
        let text = "## Rate limits {#limits}\nten a minute\n## Errors\nshape\n";
        assert_eq!(
            section(text, "limits"),
            Some("## Rate limits {#limits}\nten a minute\n")
        );
        assert_eq!(section(text, "rate-limits"), None);
        assert_eq!(section(text, "errors"), Some("## Errors\nshape\n"));
    }

    #[test]
    fn duplicate_headings_get_numbered_slugs_like_github() {
        let text = "## Example\none\n## Example\ntwo\n## Example\nthree\n## Example 1\nfour\n";
        assert_eq!(section(text, "example"), Some("## Example\none\n"));
        assert_eq!(section(text, "example-1"), Some("## Example\ntwo\n"));
        assert_eq!(section(text, "example-2"), Some("## Example\nthree\n"));
        let anchors: Vec<String> = parse(text)
            .headings
            .into_iter()
            .map(|heading| heading.anchor)
            .collect();
        assert_eq!(
            anchors,
            ["example", "example-1", "example-2", "example-1-1"]
        );
    }

    #[test]
    fn slugs_drop_punctuation_and_keep_letters_in_any_script() {
        let text = "## What's `new` in v2.0?\n## Crème brûlée & Co.\n## snake_case -- dashes\n";
        let anchors: Vec<String> = parse(text)
            .headings
            .into_iter()
            .map(|heading| heading.anchor)
            .collect();
        assert_eq!(
            anchors,
            [
                "whats-new-in-v20",
                "crème-brûlée--co",
                "snake_case----dashes"
            ]
        );
        assert_eq!(section(text, "Whats-New-In-V20").map(str::len), Some(25));
    }

    #[test]
    fn links_carry_their_offsets_and_emails_and_images_are_not_links() {
        let text = "See [a](a.md) and [b][ref], <https://x.test>, <me@x.test>, ![logo](logo.png).\n\n[ref]: dir/b.md#part\n";
        let links = parse(text).links;
        let found: Vec<(&str, usize)> = links
            .iter()
            .map(|link| (link.destination.as_str(), link.offset))
            .collect();
        assert_eq!(
            found,
            [("a.md", 4), ("dir/b.md#part", 18), ("https://x.test", 28)]
        );
    }

    #[test]
    fn line_anchors_select_lines() {
        let text = "one\ntwo\nthree\nfour";
        assert_eq!(
            line_range(text, "L2").map(|range| &text[range]),
            Some("two\n")
        );
        assert_eq!(
            line_range(text, "L2-L4").map(|range| &text[range]),
            Some("two\nthree\nfour")
        );
        assert_eq!(line_range(text, "L9"), None);
        assert_eq!(line_range(text, "L3-L2"), None);
        assert_eq!(line_range(text, "intro"), None);
    }

    #[test]
    fn positions_count_lines_and_characters() {
        let text = "é\nab [x](y)\n";
        let lines = Lines::new(text);
        assert_eq!(lines.position(text, 0), Position::new(1, 1));
        assert_eq!(lines.position(text, 3), Position::new(2, 1));
        assert_eq!(
            lines.position(text, text.find('[').unwrap()),
            Position::new(2, 4)
        );
        assert_eq!(lines.position(text, text.len()), Position::new(3, 1));
        assert_eq!(Lines::new("ée[").position("ée[", 3), Position::new(1, 3));
    }

    #[test]
    fn suggests_a_close_anchor() {
        let document = parse("## Errors\n## Invoices\n");
        assert_eq!(document.closest_anchor("errrors"), Some("errors"));
        assert_eq!(document.closest_anchor("billing"), None);
    }
}
