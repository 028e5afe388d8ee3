//! JSON as the engine reads it. Go's `encoding/json` matches an object's keys to a struct's
//! fields ignoring case, and decodes a repeated key again over the first (the last value wins;
//! an object merges into the first), while `serde_json` keeps only the last value: given
//! `{"config": {"OnBuild": […]}, "config": {}}` or `{"Config": "a.json", "config": "b.json"}`,
//! the engine and this crate would judge different things. So an object holding two keys equal
//! as Go compares them is refused, and the fields whose absence matters are looked up as Go
//! looks them up.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::ErrorKind;
use crate::error::{ArchiveError, invalid, refused};

/// Parses the metadata member `name`.
pub(crate) fn parse_json(bytes: &[u8], name: &str) -> Result<Value, ArchiveError> {
    let twice = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Strict { twice: &twice }
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| invalid(format!("`{name}` is not valid JSON: {e}")))?;
    if let Some(key) = twice.into_inner() {
        return Err(refused(format!(
            "`{name}` holds the key `{key}` twice in one object (the engine reads keys \
             ignoring case)"
        )));
    }
    Ok(value)
}

/// The value of `key` (lower-case ASCII) in `obj`, its key compared as Go compares a key with a
/// field name. Keys that Go compares equal are refused by [`parse_json`], so there is one.
pub(crate) fn field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.iter().find(|(k, _)| fold(k) == key).map(|(_, v)| v)
}

/// A key as Go compares it with a field name (`bytes.EqualFold`): field names are ASCII, and
/// the only other letters folding to ASCII ones are the Kelvin sign and the long s.
fn fold(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            '\u{212A}' => 'k',
            '\u{17F}' => 's',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Refuses the image config `name` (`value`, parsed) when it carries ONBUILD triggers
/// (`config.OnBuild`): they would run in a later build that names the image in `FROM`, and
/// onboard a tenant image with triggers is not usable.
pub(crate) fn refuse_onbuild(value: &Value, name: &str) -> Result<(), ArchiveError> {
    let triggers = value
        .as_object()
        .and_then(|o| field(o, "config"))
        .and_then(Value::as_object)
        .and_then(|run| field(run, "onbuild"));
    match triggers {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(list)) if list.is_empty() => Ok(()),
        Some(list) => {
            let mut shown = list.to_string();
            if shown.len() > 120 {
                let cut = (0..=117)
                    .rev()
                    .find(|&i| shown.is_char_boundary(i))
                    .unwrap_or(0);
                shown.truncate(cut);
                shown.push_str("...");
            }
            Err(ArchiveError::new(
                ErrorKind::OnBuild,
                format!(
                    "the image config {name} carries ONBUILD triggers ({shown}); images with \
                     ONBUILD triggers are not usable onboard"
                ),
            ))
        }
    }
}

/// A `serde_json::Value` built while noting the first key repeated in an object (as [`fold`]
/// compares keys).
#[derive(Clone, Copy)]
struct Strict<'a> {
    twice: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut list = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            list.push(v);
        }
        Ok(Value::Array(list))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut obj = Map::new();
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(self)?;
            if !seen.insert(fold(&key)) {
                self.twice.borrow_mut().get_or_insert_with(|| key.clone());
            }
            obj.insert(key, value);
        }
        Ok(Value::Object(obj))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_repeated_as_go_compares_them_are_refused() {
        assert!(parse_json(br#"{"a": [1, {"b": null}], "c": 1.5}"#, "x").is_ok());
        for twice in [
            r#"{"config": {}, "config": {}}"#,
            r#"{"Config": "a.json", "config": "b.json"}"#,
            r#"[{"x": {"OnBuild": [], "onbuild": ["RUN x"]}}]"#,
            "{\"User\": \"1\", \"u\u{17F}er\": \"0\"}",
        ] {
            let err = parse_json(twice.as_bytes(), "x").unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unsafe, "{twice}: {err}");
        }
        assert_eq!(
            parse_json(b"{", "x").unwrap_err().kind(),
            ErrorKind::Invalid
        );
        assert_eq!(
            parse_json(b"{} {}", "x").unwrap_err().kind(),
            ErrorKind::Invalid
        );
    }

    #[test]
    fn onbuild_triggers_are_found_whatever_the_case() {
        let check = |s: &str| refuse_onbuild(&parse_json(s.as_bytes(), "c").unwrap(), "c");
        for ok in [
            r#"{}"#,
            r#"{"config": null}"#,
            r#"{"config": {"OnBuild": null}}"#,
            r#"{"config": {"OnBuild": []}}"#,
            r#"{"container_config": {"OnBuild": ["RUN x"]}}"#,
        ] {
            check(ok).unwrap();
        }
        for bad in [
            r#"{"config": {"OnBuild": ["COPY --from=x / /"]}}"#,
            r#"{"CONFIG": {"onbuild": ["RUN x"]}}"#,
            r#"{"config": {"OnBuild": "RUN x"}}"#,
        ] {
            let err = check(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::OnBuild, "{bad}: {err}");
        }
    }
}
