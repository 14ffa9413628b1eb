//! Reads a log line by line in bounded memory, knowing the byte offset of each line's end.

use std::io::{self, BufRead, BufReader, Read};

/// Bytes the reader asks the operating system for at a time.
const READ_BUFFER_BYTES: usize = 256 * 1024;

/// One line of input, without its newline.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Line<'a> {
    /// A line ended by a newline.
    Complete(&'a [u8]),
    /// The bytes after the last newline, at the end of the input: maybe a line still being written.
    Unterminated(&'a [u8]),
    /// A line longer than the limit; it was skipped without being kept in memory.
    Oversized,
}

/// Splits a reader into lines.
///
/// A line that fits in the read buffer is handed out straight from it; only a line
/// that straddles two reads is copied, into a buffer reused for every such line, so
/// memory stays at the read buffer plus the longest line (at most `max_line` bytes).
#[derive(Debug)]
pub(super) struct LineReader<R> {
    inner: BufReader<R>,
    line: Vec<u8>,
    max_line: usize,
    /// Bytes of the read buffer that belong to the line handed out last.
    pending: usize,
    /// Bytes taken from the input so far.
    consumed: u64,
    /// Where the last newline-terminated line ended.
    complete: u64,
}

impl<R: Read> LineReader<R> {
    pub(super) fn new(inner: R, max_line: usize) -> Self {
        LineReader {
            inner: BufReader::with_capacity(READ_BUFFER_BYTES, inner),
            line: Vec::new(),
            max_line,
            pending: 0,
            consumed: 0,
            complete: 0,
        }
    }

    /// Bytes read from the input so far.
    pub(super) fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Bytes up to the end of the last newline-terminated line.
    pub(super) fn complete(&self) -> u64 {
        self.complete
    }

    /// Returns what is left of the input, from just after the last line handed out.
    pub(super) fn into_rest(mut self) -> impl Read {
        self.inner.consume(std::mem::take(&mut self.pending));
        self.inner
    }

    /// Bytes held in memory, whatever the size of the input: for the constant-memory tests.
    #[cfg(test)]
    pub(super) fn buffer_capacity(&self) -> usize {
        self.line.capacity() + self.inner.capacity()
    }

    /// Returns the next line, or `None` at the end of the input.
    pub(super) fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.inner.consume(std::mem::take(&mut self.pending));
        self.line.clear();
        let mut oversized = false;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(available) => available,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            if available.is_empty() {
                if oversized {
                    return Ok(Some(Line::Oversized));
                }
                if self.line.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(Line::Unterminated(&self.line)));
            }
            if let Some(end) = memchr::memchr(b'\n', available) {
                let taken = end + 1;
                self.consumed += taken as u64;
                self.complete = self.consumed;
                if oversized || self.line.len() + end > self.max_line {
                    self.inner.consume(taken);
                    return Ok(Some(Line::Oversized));
                }
                if self.line.is_empty() {
                    self.pending = taken;
                    return Ok(Some(Line::Complete(&self.inner.buffer()[..end])));
                }
                self.line.extend_from_slice(&available[..end]);
                self.inner.consume(taken);
                return Ok(Some(Line::Complete(&self.line)));
            }
            let taken = available.len();
            if !oversized {
                if self.line.len() + taken > self.max_line {
                    oversized = true;
                    self.line = Vec::new();
                } else {
                    self.line.extend_from_slice(available);
                }
            }
            self.consumed += taken as u64;
            self.inner.consume(taken);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max_line: usize) -> Vec<String> {
        let mut reader = LineReader::new(input, max_line);
        let mut out = Vec::new();
        while let Some(line) = reader.next_line().unwrap() {
            out.push(match line {
                Line::Complete(bytes) => format!("c:{}", String::from_utf8_lossy(bytes)),
                Line::Unterminated(bytes) => format!("u:{}", String::from_utf8_lossy(bytes)),
                Line::Oversized => "oversized".to_owned(),
            });
        }
        out
    }

    #[test]
    fn splits_lines_and_keeps_the_unterminated_tail() {
        assert_eq!(lines(b"a\n\nbc\nd", 100), ["c:a", "c:", "c:bc", "u:d"]);
        assert_eq!(lines(b"", 100), Vec::<String>::new());
    }

    #[test]
    fn skips_lines_over_the_limit() {
        assert_eq!(
            lines(b"short\nmuch too long\nok\n", 6),
            ["c:short", "oversized", "c:ok"]
        );
        assert_eq!(lines(b"ok\nmuch too long", 6), ["c:ok", "oversized"]);
    }

    #[test]
    fn lines_straddling_reads_are_whole() {
        let long = "x".repeat(READ_BUFFER_BYTES + 10);
        let input = format!("a\n{long}\nb\n");
        let got = lines(input.as_bytes(), usize::MAX);
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].len(), long.len() + 2);
        assert_eq!(got[2], "c:b");
    }

    #[test]
    fn tracks_offsets() {
        let mut reader = LineReader::new(&b"ab\ncd\nef"[..], 100);
        reader.next_line().unwrap();
        assert_eq!((reader.consumed(), reader.complete()), (3, 3));
        reader.next_line().unwrap();
        reader.next_line().unwrap();
        assert_eq!((reader.consumed(), reader.complete()), (8, 6));
    }
}
