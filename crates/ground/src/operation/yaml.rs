//! The positioned YAML reader under operations: a pre-scan that bounds nesting depth and the
//! size of the document with its aliases expanded, before any tree is built, and typed field
//! readers that report every problem with its line and column, naming the operation or the task
//! it concerns.

use std::collections::HashMap;
use std::fmt::Display;

use saphyr::{MarkedYaml, Scalar, YamlData};
use saphyr_parser::{Event, Parser};
use wire::names::NameError;

use super::{Diagnostic, MAX_DEPTH, MAX_DURATION_MS, Severity};

/// Nodes (scalars, lists and mappings) in a document once its aliases are expanded. The tree
/// saphyr builds clones an anchor's subtree for every alias, so this bounds its memory: a
/// thousand tasks of two hundred nodes each fit.
pub(super) const MAX_NODES: u64 = 200_000;

/// Bytes of scalar text in a document once its aliases are expanded: twice the largest YAML
/// body the API takes. An alias of a long string is a copy of it in the tree.
pub(super) const MAX_TEXT: u64 = 2 << 20;

/// What a node weighs once its aliases are expanded.
#[derive(Debug, Clone, Copy, Default)]
struct Weight {
    /// Collections nested inside it, itself included (0 for a scalar).
    height: usize,
    nodes: u64,
    text: u64,
}

impl Weight {
    fn add(&mut self, other: Weight) {
        self.height = self.height.max(other.height);
        self.nodes = self.nodes.saturating_add(other.nodes);
        self.text = self.text.saturating_add(other.text);
    }
}

/// Checks nesting depth and the expanded size on the event stream, before any tree is built:
/// every alias weighs what its anchor does, so a document of a few nested anchors (or one
/// long string aliased many times) is refused here instead of expanding to gigabytes. The
/// scan keeps one weight per anchor and per open collection, so its own memory is bounded by
/// the source.
pub(super) fn prescan(src: &str) -> Result<(), Diagnostic> {
    struct Open {
        anchor: usize,
        weight: Weight,
    }
    // The weight of every anchored node, by anchor id.
    let mut anchors: HashMap<usize, Weight> = HashMap::new();
    let mut stack: Vec<Open> = Vec::new();
    let mut total = Weight::default();
    let mut aliases = false;
    for ev in Parser::new_from_str(src) {
        let (ev, span) =
            ev.map_err(|e| syntax_error(e.marker().line(), e.marker().col(), e.info()))?;
        let at = |what: String| syntax_error(span.start.line(), span.start.col(), &what);
        let node = match ev {
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                stack.push(Open {
                    anchor,
                    weight: Weight {
                        height: 0,
                        nodes: 1,
                        text: 0,
                    },
                });
                total.nodes += 1;
                if stack.len() > MAX_DEPTH {
                    return Err(at(format!("nested deeper than {MAX_DEPTH} levels")));
                }
                None
            }
            Event::SequenceEnd | Event::MappingEnd => stack.pop().map(|open| {
                let w = Weight {
                    height: open.weight.height + 1,
                    ..open.weight
                };
                if open.anchor != 0 {
                    anchors.insert(open.anchor, w);
                }
                // Its nodes were counted into the total as they came.
                (w, Weight::default())
            }),
            Event::Scalar(value, _, anchor, _) => {
                let w = Weight {
                    height: 0,
                    nodes: 1,
                    text: value.len() as u64,
                };
                if anchor != 0 {
                    anchors.insert(anchor, w);
                }
                Some((w, w))
            }
            Event::Alias(id) => {
                aliases = true;
                // An unknown anchor becomes one bad value.
                let w = anchors.get(&id).copied().unwrap_or(Weight {
                    height: 0,
                    nodes: 1,
                    text: 0,
                });
                Some((w, w))
            }
            _ => None,
        };
        let Some((node, new)) = node else { continue };
        total.nodes = total.nodes.saturating_add(new.nodes);
        total.text = total.text.saturating_add(new.text);
        let expanded = if aliases { " (aliases expanded)" } else { "" };
        if stack.len() + node.height > MAX_DEPTH {
            return Err(at(format!(
                "nested deeper than {MAX_DEPTH} levels{expanded}"
            )));
        }
        if total.nodes > MAX_NODES {
            return Err(at(format!(
                "the document has more than {MAX_NODES} nodes{expanded}"
            )));
        }
        if total.text > MAX_TEXT {
            return Err(at(format!(
                "the document has more than {} MiB of text{expanded}",
                MAX_TEXT >> 20
            )));
        }
        if let Some(parent) = stack.last_mut() {
            parent.weight.add(node);
        }
    }
    Ok(())
}

pub(super) fn syntax_error(line: usize, col: usize, info: &str) -> Diagnostic {
    let (line, column) = (line.max(1), col + 1);
    Diagnostic {
        severity: Severity::Error,
        line,
        column,
        task: None,
        message: format!("YAML syntax error at line {line}, column {column}: {info}"),
    }
}

pub(super) type Node<'a> = MarkedYaml<'a>;

/// Who a diagnostic is about.
pub(super) enum Who {
    Operation,
    Task {
        /// `'build'`, or `#3` when the task has no usable id.
        label: String,
        id: Option<String>,
        ty: Option<&'static str>,
    },
}

/// One mapping's entries, each marked when a field reader consumed it.
pub(super) struct Fields<'y, 'a> {
    pub(super) entries: Vec<(String, &'y Node<'a>, &'y Node<'a>, bool)>,
}

pub(super) struct Cx<'s> {
    pub(super) src: &'s str,
    /// Byte offset of every character, built on first need (scalar spans count characters).
    pub(super) char_starts: Option<Vec<usize>>,
    pub(super) diags: Vec<Diagnostic>,
}

pub(super) fn pos(node: &Node<'_>) -> (usize, usize) {
    (node.span.start.line().max(1), node.span.start.col() + 1)
}

pub(super) fn kind(node: &Node<'_>) -> &'static str {
    match &node.data {
        YamlData::Value(Scalar::Null) => "null",
        YamlData::Value(Scalar::Boolean(_)) => "a boolean",
        YamlData::Value(Scalar::Integer(_) | Scalar::FloatingPoint(_)) => "a number",
        YamlData::Value(Scalar::String(_)) | YamlData::Representation(..) => "a string",
        YamlData::Sequence(_) => "a list",
        YamlData::Mapping(_) => "a mapping",
        YamlData::Tagged(_, inner) => kind(inner),
        YamlData::Alias(_) | YamlData::BadValue => "an invalid value",
    }
}

pub(super) fn untag<'y, 'a>(node: &'y Node<'a>) -> &'y Node<'a> {
    match &node.data {
        YamlData::Tagged(_, inner) => untag(inner),
        _ => node,
    }
}

pub(super) fn is_null(node: &Node<'_>) -> bool {
    matches!(untag(node).data, YamlData::Value(Scalar::Null))
}

impl<'s> Cx<'s> {
    pub(super) fn diag(&mut self, who: &Who, (line, column): (usize, usize), msg: String) {
        let (message, task) = match who {
            Who::Operation => (format!("operation (line {line}): {msg}"), None),
            Who::Task {
                label,
                id,
                ty: Some(ty),
            } => (
                format!("task {label} ({ty}, line {line}): {msg}"),
                id.clone(),
            ),
            Who::Task {
                label,
                id,
                ty: None,
            } => (format!("task {label} (line {line}): {msg}"), id.clone()),
        };
        self.diags.push(Diagnostic {
            severity: Severity::Error,
            line,
            column,
            task,
            message,
        });
    }

    /// The source text of a plain scalar, so `tag: 1.10` stays `1.10` and is not read as 1.1.
    pub(super) fn raw(&mut self, node: &Node<'_>) -> Option<String> {
        let (start, end) = (node.span.start.index(), node.span.end.index());
        let starts = self
            .char_starts
            .get_or_insert_with(|| self.src.char_indices().map(|(i, _)| i).collect());
        let byte = |i: usize| {
            if i >= starts.len() {
                Some(self.src.len())
            } else {
                starts.get(i).copied()
            }
        };
        let text = self.src.get(byte(start)?..byte(end)?)?.trim();
        (!text.is_empty()).then(|| text.to_string())
    }

    pub(super) fn fields<'y, 'a>(
        &mut self,
        who: &Who,
        node: &'y Node<'a>,
        what: &str,
    ) -> Option<Fields<'y, 'a>> {
        let YamlData::Mapping(map) = &untag(node).data else {
            self.diag(
                who,
                pos(node),
                format!("{what} must be a mapping, not {}", kind(node)),
            );
            return None;
        };
        let mut entries = Vec::with_capacity(map.len());
        for (k, v) in map.iter() {
            match &untag(k).data {
                YamlData::Value(Scalar::String(s)) => entries.push((s.to_string(), k, v, false)),
                _ => {
                    let key = self.raw(k).unwrap_or_default();
                    self.diag(
                        who,
                        pos(k),
                        format!("field names must be strings, not {} ('{key}')", kind(k)),
                    );
                }
            }
        }
        Some(Fields { entries })
    }

    /// Reports every field not consumed.
    pub(super) fn finish(&mut self, who: &Who, fields: &Fields<'_, '_>, allowed: &[&str]) {
        for (key, k, _, used) in &fields.entries {
            if !used {
                self.diag(
                    who,
                    pos(k),
                    format!(
                        "unknown field '{key}'; expected one of {}",
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    pub(super) fn string(&mut self, who: &Who, key: &str, node: &Node<'_>) -> Option<String> {
        match &untag(node).data {
            YamlData::Value(Scalar::String(s)) => Some(s.to_string()),
            YamlData::Value(Scalar::Integer(_) | Scalar::FloatingPoint(_) | Scalar::Boolean(_)) => {
                self.raw(untag(node))
            }
            _ => {
                self.diag(
                    who,
                    pos(node),
                    format!("field '{key}' must be a string, not {}", kind(node)),
                );
                None
            }
        }
    }

    /// A string or a list of strings.
    pub(super) fn strings(&mut self, who: &Who, key: &str, node: &Node<'_>) -> Option<Vec<String>> {
        match &untag(node).data {
            YamlData::Sequence(items) => {
                let mut out = Vec::with_capacity(items.len());
                let mut ok = true;
                for item in items {
                    match &untag(item).data {
                        YamlData::Value(Scalar::String(s)) => out.push(s.to_string()),
                        YamlData::Value(
                            Scalar::Integer(_) | Scalar::FloatingPoint(_) | Scalar::Boolean(_),
                        ) => out.push(self.raw(untag(item)).unwrap_or_default()),
                        _ => {
                            ok = false;
                            self.diag(
                                who,
                                pos(item),
                                format!("field '{key}' must hold strings, not {}", kind(item)),
                            );
                        }
                    }
                }
                ok.then_some(out)
            }
            YamlData::Value(Scalar::Null) => Some(Vec::new()),
            YamlData::Mapping(_) => {
                self.diag(
                    who,
                    pos(node),
                    format!("field '{key}' must be a string or a list of strings, not a mapping"),
                );
                None
            }
            _ => self.string(who, key, node).map(|s| vec![s]),
        }
    }

    pub(super) fn integer(
        &mut self,
        who: &Who,
        key: &str,
        node: &Node<'_>,
        range: (i64, i64),
    ) -> Option<i64> {
        match &untag(node).data {
            YamlData::Value(Scalar::Integer(i)) if (range.0..=range.1).contains(i) => Some(*i),
            _ => {
                self.diag(
                    who,
                    pos(node),
                    format!(
                        "field '{key}' must be a whole number from {} to {}",
                        range.0, range.1
                    ),
                );
                None
            }
        }
    }

    pub(super) fn boolean(&mut self, who: &Who, key: &str, node: &Node<'_>) -> Option<bool> {
        match &untag(node).data {
            YamlData::Value(Scalar::Boolean(b)) => Some(*b),
            _ => {
                self.diag(
                    who,
                    pos(node),
                    format!("field '{key}' must be true or false, not {}", kind(node)),
                );
                None
            }
        }
    }

    /// Checks a string field with `check`, reporting its error at the node.
    pub(super) fn checked<T, E: Display>(
        &mut self,
        who: &Who,
        key: &str,
        node: &Node<'_>,
        check: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        let s = self.string(who, key, node)?;
        match check(&s) {
            Ok(v) => Some(v),
            Err(e) => {
                self.diag(who, pos(node), format!("field '{key}' {e}"));
                None
            }
        }
    }

    pub(super) fn duration(&mut self, who: &Who, key: &str, node: &Node<'_>) -> Option<u64> {
        let bad = || {
            format!(
                "field '{key}' must be minutes as a number (10, 0.5) or a duration with a unit (90s, 5m, 1h), at most 7 days"
            )
        };
        let ms = match &untag(node).data {
            YamlData::Value(Scalar::Integer(i)) => minutes_to_ms(*i as f64),
            YamlData::Value(Scalar::FloatingPoint(f)) => minutes_to_ms(f.into_inner()),
            YamlData::Value(Scalar::String(s)) => match s.trim().parse::<f64>() {
                Ok(m) => minutes_to_ms(m),
                Err(_) => humantime::parse_duration(s.trim())
                    .ok()
                    .and_then(|d| u64::try_from(d.as_millis()).ok())
                    .filter(|ms| (1..=MAX_DURATION_MS).contains(ms)),
            },
            _ => None,
        };
        if ms.is_none() {
            let msg = bad();
            self.diag(who, pos(node), msg);
        }
        ms
    }

    pub(super) fn required<'y, 'a, T>(
        &mut self,
        who: &Who,
        f: &mut Fields<'y, 'a>,
        parent: &Node<'_>,
        key: &str,
        read: impl FnOnce(&mut Self, &'y Node<'a>) -> Option<T>,
    ) -> Option<T> {
        match f.take(key) {
            Some(n) => read(self, n),
            None => {
                self.diag(who, pos(parent), format!("missing required field '{key}'"));
                None
            }
        }
    }

    pub(super) fn paths<T>(
        &mut self,
        who: &Who,
        key: &str,
        node: &Node<'_>,
        check: impl Fn(&str) -> Result<T, NameError>,
    ) -> Option<Vec<T>> {
        let items = self.strings(who, key, node)?;
        if items.is_empty() {
            self.diag(who, pos(node), format!("field '{key}' must not be empty"));
            return None;
        }
        let mut out = Vec::with_capacity(items.len());
        for s in items {
            match check(&s) {
                Ok(p) => out.push(p),
                Err(e) => {
                    self.diag(
                        who,
                        pos(node),
                        format!("field '{key}' has a bad path '{s}': {}", e.reason()),
                    );
                    return None;
                }
            }
        }
        Some(out)
    }
}

impl<'y, 'a> Fields<'y, 'a> {
    /// The field's value, marking it used; `None` when absent or null.
    pub(super) fn take(&mut self, key: &str) -> Option<&'y Node<'a>> {
        self.take_raw(key).filter(|n| !is_null(n))
    }

    /// The field's value, null included.
    pub(super) fn take_raw(&mut self, key: &str) -> Option<&'y Node<'a>> {
        let entry = self.entries.iter_mut().find(|(k, ..)| k == key)?;
        entry.3 = true;
        Some(entry.2)
    }
}

/// An optional field's outcome: `Some(None)` when absent, `Some(Some(v))` when read, `None`
/// when present but bad (its reader has reported why).
pub(super) fn optional<T>(read: Option<Option<T>>) -> Option<Option<T>> {
    read.map_or(Some(None), |v| v.map(Some))
}
/// Minutes (as written in `max_duration`) to milliseconds, if positive and at most a week.
fn minutes_to_ms(minutes: f64) -> Option<u64> {
    if !minutes.is_finite() || minutes <= 0.0 {
        return None;
    }
    let ms = (minutes * 60_000.0).round();
    (ms >= 1.0 && ms <= MAX_DURATION_MS as f64).then_some(ms as u64)
}
