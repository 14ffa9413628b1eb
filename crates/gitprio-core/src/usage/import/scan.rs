//! A JSON reader for the few fields a log line's usage needs, fast on the bytes it skips.
//!
//! Most of a transcript line is message content nobody reads. [`Scanner`] walks the
//! objects the caller asks for and skips every other value by its structure, finding
//! the end of each string with `memchr` rather than looking at each byte. It accepts
//! exactly what `serde_json` accepts where it skips (the same string, escape and number
//! rules: its `ignore_value`) and gives up (`None`) on anything it does not read the
//! simple way: an escaped or non-ASCII key, an escaped wanted string, a number that is
//! not a plain `u64`, an unexpected type, a repeated field. A caller then parses the
//! line with `serde_json`, so the outcome is always the one `serde_json` gives.

use super::json::Field;

/// Nesting deeper than this is left to `serde_json` (the stack of open values is a bit set).
const MAX_SKIP_DEPTH: u32 = 128;

/// A position in one line of JSON.
pub(super) struct Scanner<'a> {
    bytes: &'a [u8],
    position: usize,
}

/// What a wanted value turned out to be.
pub(super) enum Value<T> {
    Null,
    Present(T),
}

impl<T> Value<T> {
    pub(super) fn map<U>(self, convert: impl FnOnce(T) -> U) -> Value<U> {
        match self {
            Value::Null => Value::Null,
            Value::Present(value) => Value::Present(convert(value)),
        }
    }

    /// As an `Option` field reads it: `null` is `None`.
    pub(super) fn into_option(self) -> Option<T> {
        match self {
            Value::Null => None,
            Value::Present(value) => Some(value),
        }
    }

    /// As a [`Field`] reads it: `null` is told apart.
    pub(super) fn into_field(self) -> Field<T> {
        match self {
            Value::Null => Field::Null,
            Value::Present(value) => Field::Present(value),
        }
    }
}

impl<'a> Scanner<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Scanner { bytes, position: 0 }
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.bytes.get(self.position) {
            self.position += 1;
        }
    }

    /// The next byte that is not whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.bytes.get(self.position).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.position += 1)
    }

    /// Whether only whitespace is left, as `serde_json::from_slice` requires.
    pub(super) fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    /// Walks an object, calling `field` with each key (ASCII, unescaped) with the scanner
    /// before its value; `field` reads or skips the value. `None` for anything else.
    pub(super) fn object(
        &mut self,
        mut field: impl FnMut(&[u8], &mut Self) -> Option<()>,
    ) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.position += 1;
            return Some(());
        }
        loop {
            self.eat(b'"')?;
            let start = self.position;
            let length = string_stop(&self.bytes[start..])?;
            let key = &self.bytes[start..start + length];
            if self.bytes[start + length] != b'"' || !key.is_ascii() {
                return None;
            }
            self.position = start + length + 1;
            self.eat(b':')?;
            field(key, self)?;
            match self.peek()? {
                b',' => self.position += 1,
                b'}' => {
                    self.position += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Whether the next value is `null`; consumes it if so.
    pub(super) fn null(&mut self) -> Option<bool> {
        if self.peek()? != b'n' {
            return Some(false);
        }
        self.literal(b"null")?;
        Some(true)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.position + word.len();
        (self.bytes.get(self.position..end)? == word).then(|| self.position = end)
    }

    /// Reads a string without escapes; `None` for escapes, invalid UTF-8 or anything else.
    pub(super) fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.position;
        let length = string_stop(&self.bytes[start..])?;
        let text = &self.bytes[start..start + length];
        if self.bytes[start + length] != b'"' {
            return None;
        }
        self.position = start + length + 1;
        std::str::from_utf8(text).ok()
    }

    /// Reads a string or `null`.
    pub(super) fn string_or_null(&mut self) -> Option<Value<&'a str>> {
        if self.null()? {
            return Some(Value::Null);
        }
        self.string().map(Value::Present)
    }

    /// Reads `true` or `false`, or `null`.
    pub(super) fn bool_or_null(&mut self) -> Option<Value<bool>> {
        match self.peek()? {
            b'n' => self.literal(b"null").map(|()| Value::Null),
            b't' => self.literal(b"true").map(|()| Value::Present(true)),
            b'f' => self.literal(b"false").map(|()| Value::Present(false)),
            _ => None,
        }
    }

    /// Reads a number that is a plain `u64` (digits, no sign, fraction or exponent), or `null`.
    pub(super) fn u64_or_null(&mut self) -> Option<Value<u64>> {
        if self.null()? {
            return Some(Value::Null);
        }
        let start = self.position;
        let mut value: u64 = 0;
        while let Some(&digit @ b'0'..=b'9') = self.bytes.get(self.position) {
            value = value
                .checked_mul(10)?
                .checked_add(u64::from(digit - b'0'))?;
            self.position += 1;
        }
        let digits = self.position - start;
        let leading_zero = digits > 1 && self.bytes[start] == b'0';
        if digits == 0 || leading_zero {
            return None;
        }
        match self.bytes.get(self.position) {
            Some(b'.' | b'e' | b'E') => None,
            _ => Some(Value::Present(value)),
        }
    }

    /// Whether the next value is an object (not consumed), `null` (consumed), or else `None`.
    pub(super) fn object_or_null(&mut self) -> Option<Value<()>> {
        match self.peek()? {
            b'{' => Some(Value::Present(())),
            b'n' => self.literal(b"null").map(|()| Value::Null),
            _ => None,
        }
    }

    /// Skips one value of any kind, checking it as `serde_json` checks a value it ignores.
    pub(super) fn skip_value(&mut self) -> Option<()> {
        // Open values, innermost in the lowest bit: 1 for an object, 0 for an array.
        let mut open: u128 = 0;
        let mut depth = 0;
        loop {
            match self.peek()? {
                b'"' => {
                    self.position += 1;
                    self.skip_string_rest()?;
                }
                b'n' => self.literal(b"null")?,
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'-' | b'0'..=b'9' => self.skip_number()?,
                frame @ (b'{' | b'[') => {
                    self.position += 1;
                    if depth == MAX_SKIP_DEPTH {
                        return None;
                    }
                    depth += 1;
                    open = (open << 1) | u128::from(frame == b'{');
                    let close = if frame == b'{' { b'}' } else { b']' };
                    if self.peek()? == close {
                        self.position += 1;
                        depth -= 1;
                        open >>= 1;
                    } else {
                        if frame == b'{' {
                            self.skip_key()?;
                        }
                        continue;
                    }
                }
                _ => return None,
            }
            // A value ended: close what it ended, then go on after a comma.
            loop {
                if depth == 0 {
                    return Some(());
                }
                let in_object = open & 1 == 1;
                match self.peek()? {
                    b',' => {
                        self.position += 1;
                        if in_object {
                            self.skip_key()?;
                        }
                        break;
                    }
                    b'}' if in_object => {}
                    b']' if !in_object => {}
                    _ => return None,
                }
                self.position += 1;
                depth -= 1;
                open >>= 1;
            }
        }
    }

    /// Skips an object's key and its colon.
    fn skip_key(&mut self) -> Option<()> {
        self.eat(b'"')?;
        self.skip_string_rest()?;
        self.eat(b':')
    }

    /// Skips a string's bytes after its opening quote, escapes checked as `serde_json` does.
    fn skip_string_rest(&mut self) -> Option<()> {
        loop {
            let rest = &self.bytes[self.position..];
            let found = string_stop(rest)?;
            if rest[found] < 0x20 {
                return None;
            }
            self.position += found + 1;
            if rest[found] == b'"' {
                return Some(());
            }
            match *self.bytes.get(self.position)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.position += 1,
                b'u' => {
                    let hex = self.bytes.get(self.position + 1..self.position + 5)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    self.position += 5;
                }
                _ => return None,
            }
        }
    }

    /// Skips a number: `-`, then `0` or digits not starting with `0`, then an optional
    /// fraction and exponent, each with at least one digit.
    fn skip_number(&mut self) -> Option<()> {
        if self.bytes.get(self.position) == Some(&b'-') {
            self.position += 1;
        }
        match *self.bytes.get(self.position)? {
            b'0' => {
                self.position += 1;
                if self
                    .bytes
                    .get(self.position)
                    .is_some_and(u8::is_ascii_digit)
                {
                    return None;
                }
            }
            b'1'..=b'9' => {
                self.skip_digits();
            }
            _ => return None,
        }
        if self.bytes.get(self.position) == Some(&b'.') {
            self.position += 1;
            if self.skip_digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.position) {
            self.position += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.position) {
                self.position += 1;
            }
            if self.skip_digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    fn skip_digits(&mut self) -> usize {
        let start = self.position;
        while self
            .bytes
            .get(self.position)
            .is_some_and(u8::is_ascii_digit)
        {
            self.position += 1;
        }
        self.position - start
    }
}

/// Bytes searched a word at a time before [`string_stop`] hands the rest to `memchr2`.
const SHORT_STRING_BYTES: usize = 64;

/// Returns where the first byte that ends a run of plain string content is: `"`, `\`
/// or a control character (which JSON strings may not hold).
///
/// Keys and wanted values are short (ids of 20 to 40 bytes), and for them eight bytes
/// tested at once as a `u64` cost less than a call to `memchr2` and a second pass for
/// control characters; the long strings of message content go to `memchr2`.
fn string_stop(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    const QUOTES: u64 = u64::from_le_bytes([b'"'; 8]);
    const BACKSLASHES: u64 = u64::from_le_bytes([b'\\'; 8]);
    const SPACES: u64 = u64::from_le_bytes([0x20; 8]);
    // The high bit of each byte that is zero, or below 0x20; above the lowest such byte
    // a borrow can mark others too, so only the lowest mark is used.
    let zero_bytes = |word: u64| word.wrapping_sub(ONES) & !word;
    let short = bytes.len().min(SHORT_STRING_BYTES);
    let mut words = bytes[..short].chunks_exact(8);
    let mut offset = 0;
    for chunk in words.by_ref() {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let marks = (zero_bytes(word ^ QUOTES)
            | zero_bytes(word ^ BACKSLASHES)
            | (word.wrapping_sub(SPACES) & !word))
            & HIGHS;
        if marks != 0 {
            return Some(offset + marks.trailing_zeros() as usize / 8);
        }
        offset += 8;
    }
    if let Some(found) = words.remainder().iter().position(|&byte| is_stop(byte)) {
        return Some(offset + found);
    }
    let rest = &bytes[short..];
    let found = memchr::memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
    if has_control(&rest[..found]) {
        return rest
            .iter()
            .position(|&byte| byte < 0x20)
            .map(|at| short + at);
    }
    (found < rest.len()).then_some(short + found)
}

fn is_stop(byte: u8) -> bool {
    byte == b'"' || byte == b'\\' || byte < 0x20
}

/// Whether `bytes` hold a control character (written so the compiler checks many bytes
/// at a time: content strings are long).
fn has_control(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .fold(0u8, |seen, &byte| seen | u8::from(byte < 0x20))
        != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the scanner skips `text` as one value and nothing follows, and whether
    /// `serde_json` ignores it (as an unknown field's value) without error.
    fn both(text: &str) -> (bool, bool) {
        let mut scanner = Scanner::new(text.as_bytes());
        let skipped = scanner.skip_value().is_some() && scanner.at_end();
        let ignored = serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok();
        (skipped, ignored)
    }

    #[test]
    fn skips_what_serde_json_ignores_and_refuses_what_it_refuses() {
        for text in [
            "null",
            " true ",
            "false",
            "0",
            "-0",
            "12.5e-3",
            "1E+9",
            r#""plain""#,
            r#""esc\"aped \\ \/ \b\f\n\r\t \u00e9 \uD83D\uDE00""#,
            "\"caf\u{e9}\"",
            "[]",
            "{}",
            r#"[1, [2, {"a": [3, {}]}], "x", {"b": null}]"#,
            r#"{"usage":{"input_tokens":1},"content":[{"type":"text","text":"\"usage\":{"}]}"#,
        ] {
            assert_eq!(both(text), (true, true), "{text}");
        }
        for text in [
            "nul",
            "tru",
            "01",
            "-",
            "1.",
            "1e",
            ".5",
            "+1",
            r#""open"#,
            "\"tab\there\"",
            r#""bad \x escape""#,
            r#""short \u12 escape""#,
            "[1,]",
            "[1 2]",
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            "{a:1}",
            r#"{"a":1]"#,
            "[1}",
            "[",
            r#"{"a":"#,
            "1 2",
        ] {
            assert_eq!(both(text), (false, false), "{text}");
        }
    }

    #[test]
    fn finds_the_first_quote_backslash_or_control_byte_like_a_plain_loop() {
        let fillers: [&[u8]; 3] = [
            b"a",
            "\u{e9}\u{1f600}".as_bytes(),
            &[0x7f, 0x80, 0xff, 0x21],
        ];
        for filler in fillers {
            for length in 0..150 {
                let plain: Vec<u8> = filler.iter().copied().cycle().take(length).collect();
                assert_eq!(string_stop(&plain), None, "{plain:?}");
                for at in 0..length {
                    for (stop, later) in [(b'"', b'\\'), (b'\\', 0x00), (0x1f, b'"'), (0x00, 0x1f)]
                    {
                        let mut bytes = plain.clone();
                        bytes[at] = stop;
                        if at + 3 < length {
                            bytes[at + 3] = later;
                        }
                        let expected = bytes.iter().position(|&byte| is_stop(byte));
                        assert_eq!(string_stop(&bytes), expected, "{bytes:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn gives_up_on_nesting_deeper_than_it_tracks() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(Scanner::new(deep.as_bytes()).skip_value().is_none());
        let shallow = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(Scanner::new(shallow.as_bytes()).skip_value().is_some());
    }

    #[test]
    fn reads_plain_values_and_leaves_the_rest_to_serde_json() {
        let mut scanner =
            Scanner::new(br#"{"n": 18446744073709551615, "s":"x", "b":true, "z":null}"#);
        let mut seen = Vec::new();
        scanner
            .object(|key, scanner| {
                match key {
                    b"n" => seen.push(format!(
                        "{:?}",
                        scanner
                            .u64_or_null()
                            .map(|v| matches!(v, Value::Present(u64::MAX)))
                    )),
                    b"s" => seen.push(scanner.string()?.to_owned()),
                    b"b" => seen.push(format!(
                        "{}",
                        matches!(scanner.bool_or_null()?, Value::Present(true))
                    )),
                    _ => seen.push(format!(
                        "{}",
                        matches!(scanner.string_or_null()?, Value::Null)
                    )),
                }
                Some(())
            })
            .unwrap();
        assert_eq!(seen, ["Some(true)", "x", "true", "true"]);
        for number in ["18446744073709551616", "1.0", "1e2", "-1", "01"] {
            assert!(
                Scanner::new(number.as_bytes()).u64_or_null().is_none(),
                "{number}"
            );
        }
        assert!(Scanner::new(br#""a\nb""#).string().is_none());
        assert!(
            Scanner::new(br#"{"k\u0065y":1}"#)
                .object(|_, scanner| scanner.skip_value())
                .is_none()
        );
    }
}
