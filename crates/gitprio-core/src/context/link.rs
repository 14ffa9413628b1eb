//! Link destinations: external URLs, repository paths resolved against the linking file, refusals.

/// Where a link points, before anything is looked up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// Nothing to follow: an empty destination, or an anchor where there is no linking file.
    Nothing,
    /// A URL with a scheme (`https:`, `mailto:`) or a protocol-relative `//host/...`: listed, never fetched.
    External(String),
    /// A repository-relative path, normalized, with the anchor after `#` if any.
    Path {
        path: String,
        anchor: Option<String>,
    },
}

/// Why a link is refused without looking at anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `..` climbs above the repository root.
    Escapes,
    /// An absolute path, a drive letter or a `file:` URL: outside the repository by construction.
    Absolute,
    /// A path through a `.git` directory: git's own files, never content.
    GitInternals,
}

impl Refusal {
    /// Describes the refusal, to follow "link `x` ...".
    pub fn describe(self) -> &'static str {
        match self {
            Refusal::Escapes => "leaves the repository",
            Refusal::Absolute => "is an absolute path, outside the repository",
            Refusal::GitInternals => "points into `.git/`, git's internals",
        }
    }
}

/// Parses `destination` as written in `linking_file` (repository-relative; `""` for entries
/// that are themselves repository-relative, like `context:` lists).
///
/// In a markdown link a leading `/` means the repository root, as GitHub renders it; in a
/// repository-relative entry it is an absolute path, refused like a drive letter or `file:`.
pub fn parse(destination: &str, linking_file: &str) -> Result<Destination, Refusal> {
    let destination = destination.trim();
    if destination.is_empty() {
        return Ok(Destination::Nothing);
    }
    if destination.starts_with("//") {
        return Ok(Destination::External(destination.to_owned()));
    }
    if let Some(scheme) = scheme(destination) {
        // One letter is a Windows drive (`C:\...`), and `file:` names the local disk.
        if scheme.len() == 1 || scheme.eq_ignore_ascii_case("file") {
            return Err(Refusal::Absolute);
        }
        return Ok(Destination::External(destination.to_owned()));
    }
    let (location, anchor) = match destination.split_once('#') {
        Some((location, anchor)) => (location, Some(percent_decode(anchor))),
        None => (destination, None),
    };
    let anchor = anchor.filter(|anchor| !anchor.is_empty());
    let location = location.split_once('?').map_or(location, |(path, _)| path);
    let location = percent_decode(location);
    if location.is_empty() {
        if linking_file.is_empty() || anchor.is_none() {
            return Ok(Destination::Nothing);
        }
        return Ok(Destination::Path {
            path: linking_file.to_owned(),
            anchor,
        });
    }
    if location.starts_with('\\') || (location.starts_with('/') && linking_file.is_empty()) {
        return Err(Refusal::Absolute);
    }
    // In a markdown link, as on GitHub, a leading `/` is the repository root.
    let base = if location.starts_with('/') {
        ""
    } else {
        parent(linking_file)
    };
    let path = join(base, &location)?;
    Ok(Destination::Path { path, anchor })
}

/// Returns the directory part of a repository-relative path (`""` at the root).
pub fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(directory, _)| directory)
}

/// Joins `relative` onto directory `base` and normalizes `.`, `..` and empty components.
pub fn join(base: &str, relative: &str) -> Result<String, Refusal> {
    let mut components: Vec<&str> = base.split('/').filter(|part| !part.is_empty()).collect();
    for part in relative.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if components.pop().is_none() {
                    return Err(Refusal::Escapes);
                }
            }
            part => components.push(part),
        }
    }
    if components
        .iter()
        .any(|part| part.eq_ignore_ascii_case(".git"))
    {
        return Err(Refusal::GitInternals);
    }
    Ok(components.join("/"))
}

/// Returns the URL scheme of `text` (`https` in `https://...`), if it has one.
fn scheme(text: &str) -> Option<&str> {
    let end = text.find(':')?;
    let candidate = &text[..end];
    let mut characters = candidate.chars();
    let first = characters.next()?;
    (first.is_ascii_alphabetic()
        && characters.all(|character| {
            character.is_ascii_alphanumeric() || matches!(character, '+' | '.' | '-')
        }))
    .then_some(candidate)
}

/// Decodes `%XX` escapes; text whose decoding is not UTF-8 is kept as written.
fn percent_decode(text: &str) -> String {
    if !text.contains('%') {
        return text.to_owned();
    }
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| bytes.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        if let Some(byte) = escaped {
            decoded.push(byte);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).unwrap_or_else(|_| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(path: &str, anchor: Option<&str>) -> Destination {
        Destination::Path {
            path: path.to_owned(),
            anchor: anchor.map(str::to_owned),
        }
    }

    #[test]
    fn resolves_relative_to_the_linking_file() {
        let task = ".tasks/search/reindex.md";
        assert_eq!(
            parse("../../docs/architecture.md#search", task),
            Ok(path("docs/architecture.md", Some("search")))
        );
        assert_eq!(
            parse("notes.md", task),
            Ok(path(".tasks/search/notes.md", None))
        );
        assert_eq!(
            parse("./a/../b.md?plain=1", task),
            Ok(path(".tasks/search/b.md", None))
        );
        assert_eq!(parse("#setup", task), Ok(path(task, Some("setup"))));
        assert_eq!(
            parse("docs/api.md#errors", ""),
            Ok(path("docs/api.md", Some("errors")))
        );
        assert_eq!(
            parse("my%20notes.md#caf%C3%A9", ""),
            Ok(path("my notes.md", Some("café")))
        );
        assert_eq!(parse("docs/", ""), Ok(path("docs", None)));
        assert_eq!(
            parse("/docs/api.md#errors", task),
            Ok(path("docs/api.md", Some("errors")))
        );
        assert_eq!(parse("/../etc/passwd", task), Err(Refusal::Escapes));
        assert_eq!(parse("#only-an-anchor", ""), Ok(Destination::Nothing));
        assert_eq!(parse("  ", task), Ok(Destination::Nothing));
    }

    #[test]
    fn lists_urls_as_external() {
        for url in [
            "https://example.com/a.md",
            "http://x",
            "mailto:a@b.c",
            "//cdn.example.com/x",
        ] {
            assert_eq!(
                parse(url, "README.md"),
                Ok(Destination::External(url.to_owned()))
            );
        }
    }

    #[test]
    fn refuses_links_that_leave_the_repository() {
        let task = ".tasks/x.md";
        assert_eq!(parse("../../etc/passwd", task), Err(Refusal::Escapes));
        assert_eq!(parse("../docs/../../x.md", task), Err(Refusal::Escapes));
        assert_eq!(
            parse("%2e%2e/%2e%2e/etc/passwd", task),
            Err(Refusal::Escapes)
        );
        assert_eq!(parse("/etc/passwd", ""), Err(Refusal::Absolute));
        assert_eq!(parse("\\\\server\\share", task), Err(Refusal::Absolute));
        assert_eq!(parse("C:\\Windows\\win.ini", task), Err(Refusal::Absolute));
        assert_eq!(parse("file:///etc/passwd", task), Err(Refusal::Absolute));
        assert_eq!(parse("../.git/config", task), Err(Refusal::GitInternals));
        assert_eq!(parse("sub/.GIT/HEAD", ""), Err(Refusal::GitInternals));
        assert_eq!(
            parse(".github/workflows/ci.yml", ""),
            Ok(path(".github/workflows/ci.yml", None))
        );
    }
}
