//! Minimal JSON field types the log parsers borrow from each line.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

/// A JSON string borrowed from the line when it holds no escapes, owned otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Text<'a>(pub(super) Cow<'a, str>);

impl Text<'_> {
    pub(super) fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;

        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Cow<'de, str>;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(value))
            }

            fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(value.to_owned()))
            }

            fn visit_string<E>(self, value: String) -> Result<Self::Value, E> {
                Ok(Cow::Owned(value))
            }
        }

        deserializer.deserialize_str(TextVisitor).map(Text)
    }
}

/// A field that tells an absent key from an explicit `null`.
///
/// Claude Code lines with `null` in a key field (`"requestId":null`, `"model":null`)
/// are skipped, as the reference analyzer does; an absent key is fine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) enum Field<T> {
    #[default]
    Absent,
    Null,
    Present(T),
}

impl<T> Field<T> {
    pub(super) fn is_null(&self) -> bool {
        matches!(self, Field::Null)
    }

    pub(super) fn present(&self) -> Option<&T> {
        match self {
            Field::Present(value) => Some(value),
            Field::Absent | Field::Null => None,
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Option::<T>::deserialize(deserializer)
            .map(|value| value.map_or(Field::Null, Field::Present))
    }
}

/// Whether a JSON value is an object with a `subagent` key (Codex's `source`), without keeping it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct SubagentSource(pub(super) bool);

impl<'de> Deserialize<'de> for SubagentSource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SourceVisitor;

        impl<'de> Visitor<'de> for SourceVisitor {
            type Value = SubagentSource;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a session source")
            }

            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(SubagentSource(false))
            }

            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(SubagentSource(false))
            }

            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(SubagentSource(false))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut subagent = false;
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    subagent |= key.as_str() == "subagent";
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
                Ok(SubagentSource(subagent))
            }
        }

        deserializer.deserialize_any(SourceVisitor)
    }
}

/// Whether `version` looks like a semantic version (`1.0.65`, `2.1.3-beta`).
pub(super) fn is_semver_prefix(version: &str) -> bool {
    let bytes = version.as_bytes();
    let mut index = 0;
    for part in 0..3 {
        let start = index;
        while bytes.get(index).is_some_and(u8::is_ascii_digit) {
            index += 1;
        }
        if index == start {
            return false;
        }
        if part < 2 {
            if bytes.get(index) != Some(&b'.') {
                return false;
            }
            index += 1;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Probe<'a> {
        #[serde(default, borrow)]
        name: Field<Text<'a>>,
        #[serde(default)]
        source: SubagentSource,
    }

    #[test]
    fn text_borrows_plain_strings_and_owns_escaped_ones() {
        let probe: Probe = serde_json::from_str(r#"{"name":"plain"}"#).unwrap();
        assert!(matches!(
            probe.name,
            Field::Present(Text(Cow::Borrowed("plain")))
        ));
        let probe: Probe = serde_json::from_str(r#"{"name":"C:\\repo"}"#).unwrap();
        assert_eq!(probe.name.present().unwrap().as_str(), r"C:\repo");
    }

    #[test]
    fn field_tells_null_from_absent() {
        let probe: Probe = serde_json::from_str(r#"{"name":null}"#).unwrap();
        assert!(probe.name.is_null());
        let probe: Probe = serde_json::from_str("{}").unwrap();
        assert_eq!(probe.name, Field::Absent);
    }

    #[test]
    fn subagent_source_reads_strings_and_objects() {
        let probe: Probe = serde_json::from_str(r#"{"source":"cli"}"#).unwrap();
        assert!(!probe.source.0);
        let probe: Probe = serde_json::from_str(
            r#"{"source":{"subagent":{"thread_spawn":{"parent_thread_id":"p","depth":1}}}}"#,
        )
        .unwrap();
        assert!(probe.source.0);
    }

    #[test]
    fn semver_prefix() {
        assert!(is_semver_prefix("1.0.65"));
        assert!(is_semver_prefix("2.1.3-beta"));
        assert!(!is_semver_prefix("1.0"));
        assert!(!is_semver_prefix("v1.0.0"));
        assert!(!is_semver_prefix(""));
    }
}
