//! Operations: the YAML a tenant writes (see `docs/operations.md`), parsed into a typed
//! [`Operation`] or a list of [`Diagnostic`]s, each with its line and column.
//!
//! Parsing never panics and reports every problem it finds, not only the first. The source is
//! first pre-scanned as events to bound nesting depth (aliases included), so no tree deeper than
//! [`MAX_DEPTH`] is ever built.

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};
use saphyr_parser::{Event, Parser};
use serde::Serialize;
use wire::{ImageRef, OnFailure};

use crate::config::limits;

/// The task types, as written without the `dphi.space.cg2.` prefix.
pub(crate) const TASK_TYPES: [&str; 6] = [
    "uplink",
    "downlink",
    "files.list",
    "docker.build",
    "docker.load",
    "pod.run",
];

/// The Clustergate-2 prefix accepted in front of every task type.
const TYPE_PREFIX: &str = "dphi.space.cg2.";

/// Collections nested deeper than this (after alias expansion) are rejected.
const MAX_DEPTH: usize = 32;

/// The longest `max_duration`: a week.
const MAX_DURATION_MS: u64 = 7 * 24 * 3600 * 1000;

/// One problem found in an operation. Lines and columns count from 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// How bad it is.
    pub severity: Severity,
    /// The line of the offending node (or of the task, when a field is missing).
    pub line: usize,
    /// The column of the offending node.
    pub column: usize,
    /// The id of the task concerned, or `None` for operation-level problems.
    pub task: Option<String>,
    /// What is wrong, for a person; it names the task and line too.
    pub message: String,
}

/// How bad a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The operation cannot be saved or executed.
    Error,
    /// Worth knowing; the operation is still valid.
    Warning,
}

/// A validated operation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Operation {
    pub(crate) id: String,
    pub(crate) namespace: String,
    /// The target system, with any `cg2.` prefix removed; `None` when not given.
    pub(crate) system: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) tasks: Vec<Task>,
}

/// A validated task.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Task {
    pub(crate) id: String,
    pub(crate) description: Option<String>,
    pub(crate) on_failure: OnFailure,
    pub(crate) spec: TaskSpec,
}

/// What a task does, with every default applied. Volume paths are relative to the volume root
/// (`""` is the root); namespace paths are absolute (`/app`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TaskSpec {
    Uplink {
        sources: Vec<String>,
        destination: String,
        volume: Option<String>,
    },
    Downlink {
        sources: Vec<String>,
        destination: String,
        volume: Option<String>,
    },
    FilesList {
        folder: String,
        depth: u32,
        volume: Option<String>,
    },
    DockerBuild {
        dockerfile: String,
        context: String,
        image: ImageRef,
        volume: Option<String>,
        max_duration_ms: Option<u64>,
    },
    DockerLoad {
        tarfile: String,
        image: ImageRef,
        volume: Option<String>,
    },
    PodRun {
        pod_name: String,
        image: ImageRef,
        command: Option<Vec<String>>,
        args: Option<Vec<String>>,
        env: Vec<(String, String)>,
        volume: Option<String>,
        max_duration_ms: Option<u64>,
    },
}

impl TaskSpec {
    /// The type's name without prefix.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            TaskSpec::Uplink { .. } => "uplink",
            TaskSpec::Downlink { .. } => "downlink",
            TaskSpec::FilesList { .. } => "files.list",
            TaskSpec::DockerBuild { .. } => "docker.build",
            TaskSpec::DockerLoad { .. } => "docker.load",
            TaskSpec::PodRun { .. } => "pod.run",
        }
    }
}

/// Parses and validates an operation.
pub(crate) fn parse(src: &str) -> Result<Operation, Vec<Diagnostic>> {
    if let Err(d) = prescan(src) {
        return Err(vec![d]);
    }
    let docs = match MarkedYaml::load_from_str(src) {
        Ok(docs) => docs,
        Err(e) => {
            return Err(vec![syntax_error(
                e.marker().line(),
                e.marker().col(),
                e.info(),
            )]);
        }
    };
    let mut cx = Cx {
        src,
        char_starts: None,
        diags: Vec::new(),
    };
    let op = match docs.as_slice() {
        [] => {
            cx.diag(
                &Who::Operation,
                (1, 1),
                "the document is empty; expected an operation".into(),
            );
            None
        }
        [root] => cx.operation(root),
        [_, second, ..] => {
            cx.diag(
                &Who::Operation,
                pos(second),
                "expected one YAML document, found several".into(),
            );
            None
        }
    };
    match op {
        Some(op) if cx.diags.is_empty() => Ok(op),
        _ => {
            cx.diags.sort_by_key(|d| (d.line, d.column));
            Err(cx.diags)
        }
    }
}

/// Checks nesting depth and alias expansion on the event stream, before any tree is built.
fn prescan(src: &str) -> Result<(), Diagnostic> {
    struct Open {
        anchor: usize,
        height: usize,
    }
    // The height of every anchored collection, by anchor id.
    let mut heights: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    let mut stack: Vec<Open> = Vec::new();
    for ev in Parser::new_from_str(src) {
        let (ev, span) =
            ev.map_err(|e| syntax_error(e.marker().line(), e.marker().col(), e.info()))?;
        let leaf = match ev {
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                stack.push(Open { anchor, height: 0 });
                if stack.len() > MAX_DEPTH {
                    return Err(syntax_error(
                        span.start.line(),
                        span.start.col(),
                        &format!("nested deeper than {MAX_DEPTH} levels"),
                    ));
                }
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(open) = stack.pop() else { continue };
                let h = open.height + 1;
                if open.anchor != 0 {
                    heights.insert(open.anchor, h);
                }
                h
            }
            Event::Alias(id) => heights.get(&id).copied().unwrap_or(0),
            _ => 0,
        };
        if stack.len() + leaf > MAX_DEPTH {
            return Err(syntax_error(
                span.start.line(),
                span.start.col(),
                &format!("nested deeper than {MAX_DEPTH} levels (aliases expanded)"),
            ));
        }
        if let Some(parent) = stack.last_mut() {
            parent.height = parent.height.max(leaf);
        }
    }
    Ok(())
}

fn syntax_error(line: usize, col: usize, info: &str) -> Diagnostic {
    let (line, column) = (line.max(1), col + 1);
    Diagnostic {
        severity: Severity::Error,
        line,
        column,
        task: None,
        message: format!("YAML syntax error at line {line}, column {column}: {info}"),
    }
}

type Node<'a> = MarkedYaml<'a>;

/// Who a diagnostic is about.
enum Who {
    Operation,
    Task {
        /// `'build'`, or `#3` when the task has no usable id.
        label: String,
        id: Option<String>,
        ty: Option<&'static str>,
    },
}

/// One mapping's entries, each marked when a field reader consumed it.
struct Fields<'y, 'a> {
    entries: Vec<(String, &'y Node<'a>, &'y Node<'a>, bool)>,
}

struct Cx<'s> {
    src: &'s str,
    /// Byte offset of every character, built on first need (scalar spans count characters).
    char_starts: Option<Vec<usize>>,
    diags: Vec<Diagnostic>,
}

fn pos(node: &Node<'_>) -> (usize, usize) {
    (node.span.start.line().max(1), node.span.start.col() + 1)
}

fn kind(node: &Node<'_>) -> &'static str {
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

fn untag<'y, 'a>(node: &'y Node<'a>) -> &'y Node<'a> {
    match &node.data {
        YamlData::Tagged(_, inner) => untag(inner),
        _ => node,
    }
}

fn is_null(node: &Node<'_>) -> bool {
    matches!(untag(node).data, YamlData::Value(Scalar::Null))
}

impl<'s> Cx<'s> {
    fn diag(&mut self, who: &Who, (line, column): (usize, usize), msg: String) {
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
    fn raw(&mut self, node: &Node<'_>) -> Option<String> {
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

    fn fields<'y, 'a>(
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
    fn finish(&mut self, who: &Who, fields: &Fields<'_, '_>, allowed: &[&str]) {
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

    fn string(&mut self, who: &Who, key: &str, node: &Node<'_>) -> Option<String> {
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
    fn strings(&mut self, who: &Who, key: &str, node: &Node<'_>) -> Option<Vec<String>> {
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

    fn integer(&mut self, who: &Who, key: &str, node: &Node<'_>, range: (i64, i64)) -> Option<i64> {
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

    fn boolean(&mut self, who: &Who, key: &str, node: &Node<'_>) -> Option<bool> {
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
    fn checked<T>(
        &mut self,
        who: &Who,
        key: &str,
        node: &Node<'_>,
        check: impl FnOnce(&str) -> Result<T, String>,
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

    fn duration(&mut self, who: &Who, key: &str, node: &Node<'_>) -> Option<u64> {
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

    fn image(&mut self, who: &Who, key: &str, node: &Node<'_>) -> Option<ImageRef> {
        if let YamlData::Mapping(_) = &untag(node).data {
            let mut f = self.fields(who, node, &format!("field '{key}'"))?;
            let name = match f.take("name") {
                Some(n) => self.checked(who, "image.name", n, check_image_name),
                None => {
                    self.diag(who, pos(node), format!("field '{key}' is missing 'name'"));
                    None
                }
            };
            let tag = match f.take("tag") {
                Some(t) => self.checked(who, "image.tag", t, |s| {
                    check_image_tag(s).map(|()| s.to_string())
                }),
                None => Some("latest".to_string()),
            };
            self.finish(who, &f, &["name", "tag"]);
            return Some(ImageRef {
                name: name?,
                tag: tag?,
            });
        }
        self.checked(who, key, node, parse_image)
    }

    fn env(&mut self, who: &Who, node: &Node<'_>) -> Option<Vec<(String, String)>> {
        let mut out = Vec::new();
        let mut ok = true;
        match &untag(node).data {
            YamlData::Mapping(map) => {
                for (k, v) in map.iter() {
                    let (Some(name), Some(value)) = (self.env_name(who, k), self.env_value(who, v))
                    else {
                        ok = false;
                        continue;
                    };
                    out.push((name, value));
                }
            }
            YamlData::Sequence(items) => {
                for item in items {
                    let Some(mut f) = self.fields(who, item, "an 'env' item") else {
                        ok = false;
                        continue;
                    };
                    let name = f.take("name");
                    let value = f.take_raw("value");
                    self.finish(who, &f, &["name", "value"]);
                    let Some(name_node) = name else {
                        self.diag(who, pos(item), "an 'env' item is missing 'name'".into());
                        ok = false;
                        continue;
                    };
                    let name = self.env_name(who, name_node);
                    let value = match value {
                        Some(v) => self.env_value(who, v),
                        None => Some(String::new()),
                    };
                    match (name, value) {
                        (Some(n), Some(v)) => out.push((n, v)),
                        _ => ok = false,
                    }
                }
            }
            _ => {
                self.diag(
                    who,
                    pos(node),
                    format!(
                        "field 'env' must be a mapping or a list of {{name, value}}, not {}",
                        kind(node)
                    ),
                );
                return None;
            }
        }
        ok.then_some(out)
    }

    fn env_name(&mut self, who: &Who, node: &Node<'_>) -> Option<String> {
        self.checked(who, "env", node, |s| {
            let mut chars = s.chars();
            let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
            if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') && s.len() <= 256 {
                Ok(s.to_string())
            } else {
                Err(format!("has a bad variable name '{s}' (letters, digits and _; not starting with a digit)"))
            }
        })
    }

    fn env_value(&mut self, who: &Who, node: &Node<'_>) -> Option<String> {
        if is_null(node) {
            return Some(String::new());
        }
        self.string(who, "env", node)
    }

    fn ports(&mut self, who: &Who, node: &Node<'_>) {
        let YamlData::Sequence(items) = &untag(node).data else {
            self.diag(
                who,
                pos(node),
                format!("field 'ports' must be a list, not {}", kind(node)),
            );
            return;
        };
        for item in items {
            if let YamlData::Mapping(_) = &untag(item).data {
                let Some(mut f) = self.fields(who, item, "a 'ports' item") else {
                    continue;
                };
                match f.take("container") {
                    Some(c) => {
                        self.integer(who, "container", c, (1, 65535));
                    }
                    None => self.diag(
                        who,
                        pos(item),
                        "a 'ports' item is missing 'container'".into(),
                    ),
                }
                if let Some(h) = f.take("host") {
                    self.integer(who, "host", h, (1, 65535));
                }
                if let Some(p) = f.take("protocol") {
                    self.checked(who, "protocol", p, |s| {
                        match s.to_ascii_uppercase().as_str() {
                            "TCP" | "UDP" => Ok(()),
                            _ => Err("must be TCP or UDP".to_string()),
                        }
                    });
                }
                self.finish(who, &f, &["container", "host", "protocol"]);
            } else {
                self.integer(who, "ports", item, (1, 65535));
            }
        }
    }

    fn operation(&mut self, root: &Node<'_>) -> Option<Operation> {
        let who = Who::Operation;
        if is_null(root) {
            self.diag(
                &who,
                pos(root),
                "the document is empty; expected an operation".into(),
            );
            return None;
        }
        let mut f = self.fields(&who, root, "an operation")?;
        let id = self.required(&who, &mut f, root, "id", |cx, n| {
            cx.checked(&Who::Operation, "id", n, |s| {
                check_name(s, NameRule::Operation)
            })
        });
        let namespace = self.required(&who, &mut f, root, "namespace", |cx, n| {
            cx.checked(&Who::Operation, "namespace", n, |s| {
                check_name(s, NameRule::Namespace)
            })
        });
        let system = f
            .take("system")
            .map(|n| self.checked(&who, "system", n, check_system));
        let description = f
            .take("description")
            .map(|n| self.string(&who, "description", n));
        let labels = f.take("labels").map(|n| self.labels(n));
        let tasks = match f.take("tasks") {
            Some(n) => self.tasks(n),
            None => {
                self.diag(&who, pos(root), "missing required field 'tasks'".into());
                None
            }
        };
        self.finish(
            &who,
            &f,
            &[
                "id",
                "namespace",
                "system",
                "description",
                "labels",
                "tasks",
            ],
        );
        Some(Operation {
            id: id?,
            namespace: namespace?,
            system: optional(system)?,
            description: optional(description)?,
            labels: labels.unwrap_or(Some(Vec::new()))?,
            tasks: tasks?,
        })
    }

    fn required<'y, 'a, T>(
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

    fn labels(&mut self, node: &Node<'_>) -> Option<Vec<(String, String)>> {
        let who = Who::Operation;
        let f = self.fields(&who, node, "field 'labels'")?;
        let mut out = Vec::new();
        let mut ok = true;
        for (key, _, v, _) in &f.entries {
            match self.string(&who, &format!("labels.{key}"), v) {
                Some(s) => out.push((key.clone(), s)),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn tasks(&mut self, node: &Node<'_>) -> Option<Vec<Task>> {
        let who = Who::Operation;
        let YamlData::Sequence(items) = &untag(node).data else {
            self.diag(
                &who,
                pos(node),
                format!("field 'tasks' must be a list of tasks, not {}", kind(node)),
            );
            return None;
        };
        if items.is_empty() {
            self.diag(
                &who,
                pos(node),
                "field 'tasks' must hold at least one task".into(),
            );
            return None;
        }
        if items.len() > limits::TASKS {
            self.diag(
                &who,
                pos(node),
                format!(
                    "too many tasks ({}); at most {}",
                    items.len(),
                    limits::TASKS
                ),
            );
            return None;
        }
        let mut tasks = Vec::with_capacity(items.len());
        let mut seen: Vec<(String, usize)> = Vec::new();
        let mut pods: Vec<(String, usize)> = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let task = self.task(i, item, &seen, &mut pods);
            match task {
                Some(t) => {
                    seen.push((t.id.clone(), pos(item).0));
                    tasks.push(t);
                }
                None => ok = false,
            }
        }
        ok.then_some(tasks)
    }

    fn task(
        &mut self,
        index: usize,
        node: &Node<'_>,
        seen: &[(String, usize)],
        pods: &mut Vec<(String, usize)>,
    ) -> Option<Task> {
        let mut who = Who::Task {
            label: format!("#{}", index + 1),
            id: None,
            ty: None,
        };
        let mut f = self.fields(&who, node, "a task")?;
        // The id first, so that every later message can name the task.
        let id = match f.take("id") {
            Some(n) => {
                let id = self.checked(&who, "id", n, |s| check_name(s, NameRule::Task));
                if let Some(id) = &id {
                    who = Who::Task {
                        label: format!("'{id}'"),
                        id: Some(id.clone()),
                        ty: None,
                    };
                    if let Some((_, line)) = seen.iter().find(|(s, _)| s == id) {
                        self.diag(
                            &who,
                            pos(n),
                            format!("duplicate task id '{id}' (first used at line {line})"),
                        );
                    }
                }
                id
            }
            None => {
                self.diag(&who, pos(node), "missing required field 'id'".into());
                None
            }
        };
        let ty = match f.take("type") {
            Some(n) => match self.string(&who, "type", n) {
                Some(t) => {
                    let bare = t.strip_prefix(TYPE_PREFIX).unwrap_or(&t);
                    let found = TASK_TYPES.iter().copied().find(|k| *k == bare);
                    if found.is_none() {
                        self.diag(
                            &who,
                            pos(n),
                            format!(
                                "unknown type '{t}'; expected one of {}",
                                TASK_TYPES.join(", ")
                            ),
                        );
                    }
                    found
                }
                None => None,
            },
            None => {
                self.diag(&who, pos(node), "missing required field 'type'".into());
                None
            }
        };
        if let Who::Task { ty: slot, .. } = &mut who {
            *slot = ty;
        }
        let description = f
            .take("description")
            .map(|n| self.string(&who, "description", n));
        let on_failure = match f.take("on_failure") {
            Some(n) => self.checked(&who, "on_failure", n, |s| match s {
                "stop" => Ok(OnFailure::Stop),
                "continue" => Ok(OnFailure::Continue),
                _ => Err(format!("must be stop or continue, not '{s}'")),
            }),
            None => Some(OnFailure::Stop),
        };
        // Without a known type the other fields cannot be judged.
        let ty = ty?;
        let spec = self.spec(&who, ty, node, &mut f, id.as_deref().unwrap_or("pod"), pods);
        Some(Task {
            id: id?,
            description: optional(description)?,
            on_failure: on_failure?,
            spec: spec?,
        })
    }

    fn spec<'y, 'a>(
        &mut self,
        who: &Who,
        ty: &str,
        node: &Node<'_>,
        f: &mut Fields<'y, 'a>,
        task_id: &str,
        pods: &mut Vec<(String, usize)>,
    ) -> Option<TaskSpec> {
        const COMMON: [&str; 4] = ["id", "type", "description", "on_failure"];
        let volume = f
            .take("volume")
            .map(|n| self.checked(who, "volume", n, |s| check_name(s, NameRule::Volume)));
        let volume = optional(volume);
        let (spec, fields): (Option<TaskSpec>, &[&str]) = match ty {
            "uplink" => {
                let sources = self.required(who, f, node, "source", |cx, n| {
                    cx.paths(who, "source", n, namespace_path)
                });
                let destination = match f.take("destination") {
                    Some(n) => self.checked(who, "destination", n, volume_path),
                    None => Some(String::new()),
                };
                let spec = (|| {
                    Some(TaskSpec::Uplink {
                        sources: sources?,
                        destination: destination?,
                        volume: volume?,
                    })
                })();
                (spec, &["source", "destination", "volume"])
            }
            "downlink" => {
                let sources = self.required(who, f, node, "source", |cx, n| {
                    cx.paths(who, "source", n, |s| {
                        let p = volume_path(s)?;
                        if p.is_empty() {
                            return Err("must name files or patterns, not the volume root (use '**' for everything)".into());
                        }
                        Ok(p)
                    })
                });
                let destination = match f.take("destination") {
                    Some(n) => self.checked(who, "destination", n, namespace_path),
                    None => Some("/".to_string()),
                };
                let spec = (|| {
                    Some(TaskSpec::Downlink {
                        sources: sources?,
                        destination: destination?,
                        volume: volume?,
                    })
                })();
                (spec, &["source", "destination", "volume"])
            }
            "files.list" => {
                let folder = match f.take("folder") {
                    Some(n) => self.checked(who, "folder", n, volume_path),
                    None => Some(String::new()),
                };
                let depth = match f.take("depth") {
                    Some(n) => self
                        .integer(who, "depth", n, (1, 64))
                        .and_then(|d| u32::try_from(d).ok()),
                    None => Some(2),
                };
                let spec = (|| {
                    Some(TaskSpec::FilesList {
                        folder: folder?,
                        depth: depth?,
                        volume: volume?,
                    })
                })();
                (spec, &["folder", "depth", "volume"])
            }
            "docker.build" => {
                let dockerfile = match f.take("dockerfile") {
                    Some(n) => self.checked(who, "dockerfile", n, non_root_volume_path),
                    None => Some("Dockerfile".to_string()),
                };
                let context = match f.take("context") {
                    Some(n) => self.checked(who, "context", n, volume_path),
                    None => Some(String::new()),
                };
                let image = self.required(who, f, node, "image", |cx, n| cx.image(who, "image", n));
                let max = f
                    .take("max_duration")
                    .map(|n| self.duration(who, "max_duration", n));
                let spec = (|| {
                    Some(TaskSpec::DockerBuild {
                        dockerfile: dockerfile?,
                        context: context?,
                        image: image?,
                        volume: volume?,
                        max_duration_ms: optional(max)?,
                    })
                })();
                (
                    spec,
                    &["dockerfile", "context", "image", "volume", "max_duration"],
                )
            }
            "docker.load" => {
                let tarfile = self.required(who, f, node, "tarfile", |cx, n| {
                    cx.checked(who, "tarfile", n, non_root_volume_path)
                });
                let image = self.required(who, f, node, "image", |cx, n| cx.image(who, "image", n));
                let spec = (|| {
                    Some(TaskSpec::DockerLoad {
                        tarfile: tarfile?,
                        image: image?,
                        volume: volume?,
                    })
                })();
                (spec, &["tarfile", "image", "volume"])
            }
            _ => {
                let image = self.required(who, f, node, "image", |cx, n| cx.image(who, "image", n));
                let pod_name = match f.take("pod_name") {
                    Some(n) => self.checked(who, "pod_name", n, |s| check_name(s, NameRule::Pod)),
                    None => Some(pod_name_from(task_id)),
                };
                if let Some(p) = &pod_name {
                    let line = pos(node).0;
                    if let Some((_, first)) = pods.iter().find(|(q, _)| q == p) {
                        self.diag(
                            who,
                            pos(node),
                            format!("pod_name '{p}' is already used by the task at line {first}"),
                        );
                    } else {
                        pods.push((p.clone(), line));
                    }
                }
                let command = f.take("command").map(|n| {
                    let c = self.strings(who, "command", n)?;
                    if c.is_empty() {
                        self.diag(who, pos(n), "field 'command' must not be empty".into());
                        return None;
                    }
                    Some(c)
                });
                let args = f.take("args").map(|n| self.strings(who, "args", n));
                let env = match f.take("env") {
                    Some(n) => self.env(who, n),
                    None => Some(Vec::new()),
                };
                let max = f
                    .take("max_duration")
                    .map(|n| self.duration(who, "max_duration", n));
                if let Some(n) = f.take("node") {
                    self.checked(who, "node", n, |s| match s.to_ascii_lowercase().as_str() {
                        "default" | "mpu" | "mpu1" | "fpga" | "gpu" => Ok(()),
                        _ => Err(format!("must be one of default, MPU, FPGA, GPU, not '{s}'")),
                    });
                }
                if let Some(n) = f.take("ports") {
                    self.ports(who, n);
                }
                if let Some(n) = f.take("merge") {
                    self.boolean(who, "merge", n);
                }
                if let Some(n) = f.take_raw("scheduled_time")
                    && !is_null(n)
                {
                    self.diag(
                        who,
                        pos(n),
                        "field 'scheduled_time' is not supported yet; leave it null".into(),
                    );
                }

                let spec = (|| {
                    Some(TaskSpec::PodRun {
                        pod_name: pod_name?,
                        image: image?,
                        command: optional(command)?,
                        args: optional(args)?,
                        env: env?,
                        volume: volume?,
                        max_duration_ms: optional(max)?,
                    })
                })();
                let fields: &[&str] = &[
                    "image",
                    "pod_name",
                    "command",
                    "args",
                    "env",
                    "volume",
                    "max_duration",
                    "node",
                    "ports",
                    "merge",
                    "scheduled_time",
                ];
                (spec, fields)
            }
        };
        let allowed: Vec<&str> = COMMON.iter().chain(fields).copied().collect();
        self.finish(who, f, &allowed);
        spec
    }

    fn paths(
        &mut self,
        who: &Who,
        key: &str,
        node: &Node<'_>,
        check: impl Fn(&str) -> Result<String, String>,
    ) -> Option<Vec<String>> {
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
                        format!("field '{key}' has a bad path '{s}': {e}"),
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
    fn take(&mut self, key: &str) -> Option<&'y Node<'a>> {
        self.take_raw(key).filter(|n| !is_null(n))
    }

    /// The field's value, null included.
    fn take_raw(&mut self, key: &str) -> Option<&'y Node<'a>> {
        let entry = self.entries.iter_mut().find(|(k, ..)| k == key)?;
        entry.3 = true;
        Some(entry.2)
    }
}

/// An optional field's outcome: `Some(None)` when absent, `Some(Some(v))` when read, `None`
/// when present but bad (its reader has reported why).
fn optional<T>(read: Option<Option<T>>) -> Option<Option<T>> {
    read.map_or(Some(None), |v| v.map(Some))
}

/// Which naming rule a name follows.
#[derive(Clone, Copy)]
pub(crate) enum NameRule {
    /// `[a-z0-9._-]`, 1–64.
    Operation,
    /// `[A-Za-z0-9._-]`, 1–64.
    Task,
    /// `[A-Za-z0-9_-]`, 1–64.
    Namespace,
    /// `[a-z0-9][a-z0-9._-]{0,62}`.
    Volume,
    /// A DNS label: `[a-z0-9]([a-z0-9-]*[a-z0-9])?`, at most 63.
    Pod,
    /// `[a-z0-9][a-z0-9_-]{0,62}`.
    User,
    /// `[a-z0-9][a-z0-9._-]{0,62}`.
    System,
}

/// Checks a name against its rule; the error completes "field 'x' ...".
pub(crate) fn check_name(s: &str, rule: NameRule) -> Result<String, String> {
    let lower_digit = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let alnum = |c: char| c.is_ascii_alphanumeric();
    let (ok, rule_text) = match rule {
        NameRule::Operation => (
            (1..=64).contains(&s.len()) && s.chars().all(|c| lower_digit(c) || ".-_".contains(c)),
            "lowercase letters, digits, '.', '_' and '-', 1 to 64 characters",
        ),
        NameRule::Task => (
            (1..=64).contains(&s.len()) && s.chars().all(|c| alnum(c) || ".-_".contains(c)),
            "letters, digits, '.', '_' and '-', 1 to 64 characters",
        ),
        NameRule::Namespace => (
            (1..=64).contains(&s.len()) && s.chars().all(|c| alnum(c) || "-_".contains(c)),
            "letters, digits, '_' and '-', 1 to 64 characters",
        ),
        NameRule::Volume | NameRule::System => (
            (1..=63).contains(&s.len())
                && s.starts_with(lower_digit)
                && s.chars().all(|c| lower_digit(c) || ".-_".contains(c)),
            "lowercase letters, digits, '.', '_' and '-', starting with a letter or digit, at most 63 characters",
        ),
        NameRule::User => (
            (1..=63).contains(&s.len())
                && s.starts_with(lower_digit)
                && s.chars().all(|c| lower_digit(c) || "-_".contains(c)),
            "lowercase letters, digits, '_' and '-', starting with a letter or digit, at most 63 characters",
        ),
        NameRule::Pod => (
            (1..=63).contains(&s.len())
                && s.starts_with(lower_digit)
                && s.ends_with(lower_digit)
                && s.chars().all(|c| lower_digit(c) || c == '-'),
            "lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters",
        ),
    };
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "'{}' is not a valid name ({rule_text})",
            shorten(s)
        ))
    }
}

fn shorten(s: &str) -> String {
    if s.len() <= 80 {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(80).collect::<String>())
    }
}

/// A pod name derived from a task id: lowercased, other characters turned into `-`.
fn pod_name_from(task_id: &str) -> String {
    let mapped: String = task_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let trimmed: String = mapped.trim_matches('-').chars().take(63).collect();
    let trimmed = trimmed.trim_end_matches('-');
    if trimmed.is_empty() {
        "pod".to_string()
    } else {
        trimmed.to_string()
    }
}

/// Minutes (as written in `max_duration`) to milliseconds, if positive and at most a week.
fn minutes_to_ms(minutes: f64) -> Option<u64> {
    if !minutes.is_finite() || minutes <= 0.0 {
        return None;
    }
    let ms = (minutes * 60_000.0).round();
    (ms >= 1.0 && ms <= MAX_DURATION_MS as f64).then_some(ms as u64)
}

/// `em`, `cg2.em` → `em`.
fn check_system(s: &str) -> Result<String, String> {
    let bare = s.strip_prefix("cg2.").unwrap_or(s);
    check_name(bare, NameRule::System)
}

/// `name:tag` (tag `latest` when absent).
pub(crate) fn parse_image(s: &str) -> Result<ImageRef, String> {
    let s = s.trim();
    if s.contains('@') {
        return Err(format!(
            "'{}': digests are not supported; use name:tag",
            shorten(s)
        ));
    }
    let (name, tag) = match s.rfind(':') {
        Some(i) if !s[i + 1..].contains('/') => (&s[..i], &s[i + 1..]),
        _ => (s, "latest"),
    };
    let name = check_image_name(name)?;
    check_image_tag(tag)?;
    Ok(ImageRef {
        name,
        tag: tag.to_string(),
    })
}

fn check_image_name(s: &str) -> Result<String, String> {
    let ok = (1..=255).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/:".contains(c))
        && !s.contains("//")
        && !s.ends_with('/');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "'{}' is not a valid image name (lowercase letters, digits, '.', '_', '-', '/')",
            shorten(s)
        ))
    }
}

fn check_image_tag(s: &str) -> Result<(), String> {
    let ok = (1..=128).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!("'{}' is not a valid image tag", shorten(s)))
    }
}

/// Splits a path into its components, dropping empty and `.` ones and rejecting `..`, control
/// characters and over-long paths.
pub(crate) fn path_components(s: &str) -> Result<Vec<&str>, String> {
    if s.len() > limits::PATH_BYTES {
        return Err(format!("longer than {} bytes", limits::PATH_BYTES));
    }
    if s.chars().any(char::is_control) {
        return Err("contains a control character".into());
    }
    let mut out = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err("'..' is not allowed".into()),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// A path inside a volume, relative to its root (`""` is the root).
pub(crate) fn volume_path(s: &str) -> Result<String, String> {
    Ok(path_components(s)?.join("/"))
}

fn non_root_volume_path(s: &str) -> Result<String, String> {
    let p = volume_path(s)?;
    if p.is_empty() {
        Err("must name a file, not the volume root".into())
    } else {
        Ok(p)
    }
}

/// An absolute path inside a namespace (`/` is the root).
pub(crate) fn namespace_path(s: &str) -> Result<String, String> {
    Ok(format!("/{}", path_components(s)?.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `yaml` and renders the outcome: `ok` plus a summary, or one line per diagnostic
    /// as `line:column [task] message`.
    fn check(yaml: &str, expect: &str) {
        let got = match parse(yaml) {
            Ok(op) => {
                let tasks: Vec<String> = op
                    .tasks
                    .iter()
                    .map(|t| format!("{}={}", t.id, t.spec.type_name()))
                    .collect();
                format!(
                    "ok {}/{} system={:?} tasks={}",
                    op.namespace,
                    op.id,
                    op.system,
                    tasks.join(",")
                )
            }
            Err(diags) => diags
                .iter()
                .map(|d| {
                    format!(
                        "{}:{} [{}] {}",
                        d.line,
                        d.column,
                        d.task.as_deref().unwrap_or("-"),
                        d.message
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
        };
        assert_eq!(got.trim(), expect.trim(), "\n--- got ---\n{got}\n");
    }

    fn spec_of(yaml: &str) -> TaskSpec {
        match parse(yaml) {
            Ok(op) => op.tasks[0].spec.clone(),
            Err(d) => panic!("{d:#?}"),
        }
    }

    const HEAD: &str = "id: hello\nnamespace: demo\ntasks:\n";

    #[test]
    fn a_full_operation_is_ok() {
        check(
            r#"
id: hello
namespace: demo
system: cg2.em
description: say hello
labels: {team: payload, n: 1}
tasks:
  - id: up
    type: uplink
    source: [/app, /configs/x.json]
    destination: /data/app
  - id: build
    type: dphi.space.cg2.docker.build
    image: hello:1.0
    context: app
    max_duration: 5m
  - id: load
    type: docker.load
    tarfile: /img.tar
    image: {name: hello, tag: 2}
  - id: run
    type: pod.run
    image: {name: hello}
    command: /bin/hello
    args: [--loud]
    env: {A: 1, B: "two"}
    node: Fpga
    ports: [8080, {container: 9000, protocol: udp}]
    merge: false
    scheduled_time: null
    on_failure: continue
  - id: ls
    type: files.list
    depth: 3
  - id: down
    type: downlink
    source: [out/*.txt]
    destination: /results
"#,
            "ok demo/hello system=Some(\"em\") tasks=up=uplink,build=docker.build,load=docker.load,run=pod.run,ls=files.list,down=downlink",
        );
    }

    #[test]
    fn unknown_type_names_task_and_line() {
        check(
            &format!(
                "{HEAD}  - id: up\n    type: uplink\n    source: /a\n  - id: build\n    type: docker.bild\n"
            ),
            "8:11 [build] task 'build' (line 8): unknown type 'docker.bild'; expected one of uplink, downlink, files.list, docker.build, docker.load, pod.run",
        );
        check(
            &format!("{HEAD}  - id: x\n    type: dphi.space.cg2.nope\n"),
            "5:11 [x] task 'x' (line 5): unknown type 'dphi.space.cg2.nope'; expected one of uplink, downlink, files.list, docker.build, docker.load, pod.run",
        );
    }

    #[test]
    fn prefix_is_accepted_for_every_type() {
        for ty in TASK_TYPES {
            let extra = match ty {
                "uplink" | "downlink" => "    source: a\n",
                "docker.build" | "pod.run" => "    image: x\n",
                "docker.load" => "    image: x\n    tarfile: x.tar\n",
                _ => "",
            };
            let yaml = format!("{HEAD}  - id: t\n    type: dphi.space.cg2.{ty}\n{extra}");
            check(&yaml, &format!("ok demo/hello system=None tasks=t={ty}"));
        }
    }

    #[test]
    fn missing_required_field_names_type_and_task_line() {
        check(
            &format!("{HEAD}  - id: run\n    type: pod.run\n    command: [x]\n"),
            "4:5 [run] task 'run' (pod.run, line 4): missing required field 'image'",
        );
        check(
            "namespace: demo\ntasks: []\n",
            "1:1 [-] operation (line 1): missing required field 'id'\n2:8 [-] operation (line 2): field 'tasks' must hold at least one task",
        );
    }

    #[test]
    fn unknown_fields_are_reported_at_the_key() {
        check(
            &format!(
                "{HEAD}  - id: run\n    type: pod.run\n    image: x\n    imag: y\nowner: bob\n"
            ),
            "7:5 [run] task 'run' (pod.run, line 7): unknown field 'imag'; expected one of id, type, description, on_failure, image, pod_name, command, args, env, volume, max_duration, node, ports, merge, scheduled_time\n\
             8:1 [-] operation (line 8): unknown field 'owner'; expected one of id, namespace, system, description, labels, tasks",
        );
    }

    #[test]
    fn wrong_types() {
        check(
            &format!(
                "{HEAD}  - id: run\n    type: pod.run\n    image: [x]\n    env: 3\n    merge: maybe\n"
            ),
            "6:12 [run] task 'run' (pod.run, line 6): field 'image' must be a string, not a list\n\
             7:10 [run] task 'run' (pod.run, line 7): field 'env' must be a mapping or a list of {name, value}, not a number\n\
             8:12 [run] task 'run' (pod.run, line 8): field 'merge' must be true or false, not a string",
        );
        check(
            "id: x\nnamespace: d\ntasks: 3\n",
            "3:8 [-] operation (line 3): field 'tasks' must be a list of tasks, not a number",
        );
        check(
            "- a\n- b\n",
            "1:1 [-] operation (line 1): an operation must be a mapping, not a list",
        );
    }

    #[test]
    fn duplicate_ids_and_bad_names() {
        check(
            &format!("{HEAD}  - id: a\n    type: files.list\n  - id: a\n    type: files.list\n"),
            "6:9 [a] task 'a' (line 6): duplicate task id 'a' (first used at line 4)",
        );
        check(
            "id: Hello World\nnamespace: d/e\ntasks:\n  - id: x\n    type: files.list\n    volume: Big\n",
            "1:5 [-] operation (line 1): field 'id' 'Hello World' is not a valid name (lowercase letters, digits, '.', '_' and '-', 1 to 64 characters)\n\
             2:12 [-] operation (line 2): field 'namespace' 'd/e' is not a valid name (letters, digits, '_' and '-', 1 to 64 characters)\n\
             6:13 [x] task 'x' (files.list, line 6): field 'volume' 'Big' is not a valid name (lowercase letters, digits, '.', '_' and '-', starting with a letter or digit, at most 63 characters)",
        );
    }

    #[test]
    fn durations_and_scheduled_time() {
        check(
            &format!(
                "{HEAD}  - id: run\n    type: pod.run\n    image: x\n    max_duration: soon\n    scheduled_time: 2026-01-01T00:00:00Z\n"
            ),
            "7:19 [run] task 'run' (pod.run, line 7): field 'max_duration' must be minutes as a number (10, 0.5) or a duration with a unit (90s, 5m, 1h), at most 7 days\n\
             8:21 [run] task 'run' (pod.run, line 8): field 'scheduled_time' is not supported yet; leave it null",
        );
        let ms = |d: &str| match spec_of(&format!(
            "{HEAD}  - id: b\n    type: docker.build\n    image: x\n    max_duration: {d}\n"
        )) {
            TaskSpec::DockerBuild {
                max_duration_ms, ..
            } => max_duration_ms,
            other => panic!("{other:?}"),
        };
        assert_eq!(ms("10"), Some(600_000));
        assert_eq!(ms("0.5"), Some(30_000));
        assert_eq!(ms("90s"), Some(90_000));
        assert_eq!(ms("\"1h\""), Some(3_600_000));
    }

    #[test]
    fn syntax_errors_have_a_line() {
        check(
            "id: x\nnamespace: d\ntasks:\n  - id: a\n   type: [unclosed\n",
            "5:4 [-] YAML syntax error at line 5, column 4: while parsing a block collection, did not find expected '-' indicator",
        );
        check(
            "id: x\nnamespace: [a\n",
            "3:1 [-] YAML syntax error at line 3, column 1: while parsing a flow sequence, expected ',' or ']'",
        );
        check(
            "id: x\nid: y\n",
            "2:1 [-] YAML syntax error at line 2, column 1: duplicated key in mapping",
        );
        check(
            "",
            "1:1 [-] operation (line 1): the document is empty; expected an operation",
        );
    }

    #[test]
    fn deep_nesting_and_alias_bombs_are_rejected() {
        let deep = format!(
            "id: x\nnamespace: d\ntasks: {}{}\n",
            "[".repeat(40),
            "]".repeat(40)
        );
        let got = parse(&deep).unwrap_err();
        assert!(got[0].message.contains("nested deeper than 32"), "{got:?}");
        let mut bomb = String::from("a0: &a0 [x]\n");
        for i in 1..40 {
            bomb.push_str(&format!("a{i}: &a{i} [*a{}]\n", i - 1));
        }
        let got = parse(&bomb).unwrap_err();
        assert!(got[0].message.contains("aliases expanded"), "{got:?}");
    }

    #[test]
    fn fields_map_to_specs() {
        assert_eq!(
            spec_of(&format!(
                "{HEAD}  - id: Run.Me\n    type: pod.run\n    image: registry:5000/a/b:1.10\n    command: echo hi\n    env: [{{name: A, value: 1.10}}, {{name: B}}]\n"
            )),
            TaskSpec::PodRun {
                pod_name: "run-me".into(),
                image: ImageRef {
                    name: "registry:5000/a/b".into(),
                    tag: "1.10".into()
                },
                command: Some(vec!["echo hi".into()]),
                args: None,
                env: vec![("A".into(), "1.10".into()), ("B".into(), String::new())],
                volume: None,
                max_duration_ms: None,
            }
        );
        assert_eq!(
            spec_of(&format!(
                "{HEAD}  - id: up\n    type: uplink\n    source: app/\n    destination: /data/./x/\n    volume: payload\n"
            )),
            TaskSpec::Uplink {
                sources: vec!["/app".into()],
                destination: "data/x".into(),
                volume: Some("payload".into())
            }
        );
        check(
            &format!("{HEAD}  - id: up\n    type: uplink\n    source: [../etc]\n"),
            "6:13 [up] task 'up' (uplink, line 6): field 'source' has a bad path '../etc': '..' is not allowed",
        );
        check(
            &format!(
                "{HEAD}  - id: p\n    type: pod.run\n    image: x\n  - id: q\n    type: pod.run\n    image: y\n    pod_name: p\n"
            ),
            "7:5 [q] task 'q' (pod.run, line 7): pod_name 'p' is already used by the task at line 4",
        );
    }
}
