//! How a client verb prints its document with `-o json` or `-o yaml`: the same value either
//! way (the API's typed response), as pretty JSON or as a YAML document emitted by saphyr.
//!
//! YAML is made from the JSON text: JSON is YAML (1.2), so saphyr's loader reads the document
//! as it is, and its emitter writes it in block style. Both outputs hold the same document by
//! construction: objects become mappings in the same key order, arrays sequences, strings with
//! line breaks literal blocks (an operation's text, a log tail, a diff), and every string a
//! YAML reader could take for something else (`true`, `null`, `12`, an RFC 3339 instant, which
//! YAML 1.1 readers turn into timestamps) is quoted, so it reads back as the same string.

use std::borrow::Cow;

use saphyr::{LoadableYamlNode, Scalar, ScalarStyle, Yaml, YamlEmitter};
use serde::Serialize;

use crate::args::Output;

/// Prints `value` as `format` says (nothing for [`Output::Text`]: the caller prints text).
pub(crate) fn print_document<T: Serialize + ?Sized>(
    format: Output,
    value: &T,
) -> anyhow::Result<()> {
    match format {
        Output::Text => {}
        Output::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Output::Yaml => {
            // A document that ends in a literal block ends with its line break already.
            let yaml = to_yaml(&serde_json::to_string(value)?)?;
            let end = if yaml.ends_with('\n') { "" } else { "\n" };
            print!("{yaml}{end}");
        }
    }
    Ok(())
}

/// The JSON document `json` as one YAML document (starting `---`; it ends with a line break only
/// when its last value is a literal block).
pub(crate) fn to_yaml(json: &str) -> anyhow::Result<String> {
    let docs = Yaml::load_from_str(json)
        .map_err(|e| anyhow::anyhow!("cannot read the answer as a YAML document: {e}"))?;
    let [doc] = <[Yaml; 1]>::try_from(docs)
        .map_err(|d| anyhow::anyhow!("the answer is {} documents, not one", d.len()))?;
    let mut out = String::new();
    let mut emitter = YamlEmitter::new(&mut out);
    emitter.multiline(true);
    emitter
        .dump(&quoted(doc))
        .map_err(|e| anyhow::anyhow!("cannot write the answer as YAML: {e}"))?;
    Ok(out)
}

/// `y` with each string that starts with a digit (an instant, a date, `1_000`, `0b1`) quoted:
/// saphyr quotes what YAML 1.2 would read as another type, but YAML 1.1 readers also take those
/// for timestamps and numbers. A string's JSON escape is a valid YAML double-quoted scalar.
fn quoted(y: Yaml<'_>) -> Yaml<'_> {
    match y {
        Yaml::Value(Scalar::String(s))
            if s.starts_with(|c: char| c.is_ascii_digit()) && !s.contains('\n') =>
        {
            let json = serde_json::to_string(&*s).unwrap_or_default();
            let inner = json[1..json.len() - 1].to_string();
            Yaml::Representation(Cow::Owned(inner), ScalarStyle::DoubleQuoted, None)
        }
        Yaml::Sequence(items) => Yaml::Sequence(items.into_iter().map(quoted).collect()),
        Yaml::Mapping(map) => Yaml::Mapping(
            map.into_iter()
                .map(|(k, v)| (quoted(k), quoted(v)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// Reads a YAML document back into a JSON value (integers, floats, strings, mappings with
    /// string keys: what `yaml_of` writes).
    pub(crate) fn json_of(y: &Yaml) -> Value {
        match y {
            Yaml::Value(Scalar::Null) => Value::Null,
            Yaml::Value(Scalar::Boolean(b)) => json!(b),
            Yaml::Value(Scalar::Integer(i)) => json!(i),
            Yaml::Value(Scalar::FloatingPoint(f)) => json!(f.into_inner()),
            Yaml::Value(Scalar::String(s)) => json!(s),
            Yaml::Sequence(items) => Value::Array(items.iter().map(json_of).collect()),
            Yaml::Mapping(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| match json_of(k) {
                        Value::String(k) => (k, json_of(v)),
                        k => panic!("a key that is not a string: {k}"),
                    })
                    .collect(),
            ),
            other => panic!("not a value this module writes: {other:?}"),
        }
    }

    fn yaml(v: &Value) -> String {
        to_yaml(&v.to_string()).unwrap()
    }

    fn round_trip(v: &Value) -> Value {
        let text = yaml(v);
        let docs = Yaml::load_from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(docs.len(), 1, "{text}");
        json_of(&docs[0])
    }

    #[test]
    fn every_value_reads_back_the_same() {
        let v = json!({
            "id": "3f2a9c1e",
            "revision": 3,
            "negative": -7,
            "ratio": 0.25,
            "whole_float": 2.0,
            "big": 1e300,
            "flag": true,
            "none": null,
            "empty_list": [],
            "empty_map": {},
            "strings": [
                "", " lead", "trail ", "true", "no", "null", "~", "12", "1.5", "1e3", "0x1f",
                "2026-12-03T10:41:07.113Z", "2026-12-03", "1_000", "07", "+1", ".5",
                "a: b", "- item", "#hash", "key, value", "quote\"s", "back\\slash", "tab\there",
                "{brace}", "[bracket]", "&anchor", "*alias", "!tag", "%dir", "@at", "`tick`",
                "ünïcödé ✓", "\u{7f}", "\u{1}", "y", "N",
            ],
            "lines": [
                "one\ntwo\n", "one\ntwo", "one\n\n", "\n", "\n\n", " indented\nsecond\n",
                "\tTAB\n", "---\nnot a document\n", "...\n", "a\r\nb\r\n", "trailing \nspace \n",
                "1\n2\n",
            ],
            "nested": {"list": [{"a": 1}, [1, 2], "x"], "2026": "year key"},
        });
        assert_eq!(round_trip(&v), v);
    }

    #[test]
    fn instants_are_quoted_and_text_is_a_block() {
        let y = yaml(&json!({
            "created_at": "2026-12-03T10:41:07.113Z",
            "yaml": "name: hello\ntasks: []\n",
            "state": "COMPLETED",
        }));
        assert_eq!(
            y,
            "---\ncreated_at: \"2026-12-03T10:41:07.113Z\"\nstate: COMPLETED\nyaml: |\n  name: hello\n  tasks: []\n"
        );
    }
}
