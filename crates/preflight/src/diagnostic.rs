//! Diagnostics: plain structs, and their three renderings (compiler-like text, JSON, SARIF).

use std::fmt;

use serde_json::{Value, json};

/// How bad a finding is. Only `Error` makes `orbitdock lint` exit non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The build or the container would fail onboard.
    Error,
    /// Works, but against the payload guide's advice.
    Warning,
    /// A fact worth showing: sizes, bytes to uplink.
    Info,
}

impl Severity {
    /// The lowercase word used in every output format.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A 1-based line and column (columns count characters): the Dockerfile lexer's positions.
pub use dockerfile::Position;

/// One finding. `line == 0` means the finding is about the whole file (a binary, an archive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Stable rule code, `OD` + three digits; documented in `RULES.md`.
    pub code: &'static str,
    /// How bad it is.
    pub severity: Severity,
    /// The file the finding is in, as the user named it (relative to the context when linting one).
    pub file: String,
    /// 1-based line, or 0 for the whole file.
    pub line: u32,
    /// 1-based column, or 0 with `line == 0`.
    pub column: u32,
    /// Exclusive end of the span, when it is known.
    pub end: Option<Position>,
    /// What is wrong, lowercase, no trailing period.
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
}

/// Counts by severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Number of errors.
    pub errors: usize,
    /// Number of warnings.
    pub warnings: usize,
    /// Number of infos.
    pub infos: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: usize, word: &str| {
            if n == 1 {
                format!("{n} {word}")
            } else {
                format!("{n} {word}s")
            }
        };
        write!(
            f,
            "{}, {}, {}",
            plural(self.errors, "error"),
            plural(self.warnings, "warning"),
            plural(self.infos, "info")
        )
    }
}

/// Counts the diagnostics by severity.
pub fn summary(diagnostics: &[Diagnostic]) -> Summary {
    let mut s = Summary::default();
    for d in diagnostics {
        match d.severity {
            Severity::Error => s.errors += 1,
            Severity::Warning => s.warnings += 1,
            Severity::Info => s.infos += 1,
        }
    }
    s
}

/// True when any diagnostic is an error: the CLI's exit status.
pub fn has_errors(diagnostics: &[Diagnostic]) -> bool {
    diagnostics.iter().any(|d| d.severity == Severity::Error)
}

/// Renders diagnostics like a compiler: `file:line:col: error[OD101]: message`, the source line
/// with a caret under the span, and `= help: …`. `sources` gives the text of files that have
/// line-level diagnostics (missing ones are rendered without the snippet).
pub fn render(diagnostics: &[Diagnostic], sources: &[(String, String)]) -> String {
    let mut out = String::new();
    for d in diagnostics {
        render_one(&mut out, d, sources);
        out.push('\n');
    }
    out.push_str(&format!("{}\n", summary(diagnostics)));
    out
}

fn render_one(out: &mut String, d: &Diagnostic, sources: &[(String, String)]) {
    use std::fmt::Write as _;
    if d.line == 0 {
        let _ = writeln!(out, "{}: {}[{}]: {}", d.file, d.severity, d.code, d.message);
    } else {
        let _ = writeln!(
            out,
            "{}:{}:{}: {}[{}]: {}",
            d.file, d.line, d.column, d.severity, d.code, d.message
        );
        let text = sources
            .iter()
            .find(|(name, _)| *name == d.file)
            .map(|(_, t)| t.as_str());
        if let Some(src_line) = text.and_then(|t| t.lines().nth(d.line as usize - 1)) {
            let gutter = d.line.to_string();
            let pad = " ".repeat(gutter.len());
            let shown: String = src_line.replace('\t', " ");
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{gutter} | {shown}");
            let start = d.column.max(1) as usize;
            let width = match d.end {
                Some(end) if end.line == d.line && end.column > d.column => {
                    (end.column - d.column) as usize
                }
                Some(_) => shown.chars().count().saturating_sub(start - 1).max(1),
                None => 1,
            };
            let _ = writeln!(
                out,
                "{pad} | {}{}",
                " ".repeat(start - 1),
                "^".repeat(width)
            );
        }
    }
    if let Some(help) = &d.help {
        let _ = writeln!(out, "  = help: {help}");
    }
}

/// One diagnostic as a JSON object (the `--json` format, one element of its `diagnostics`).
pub(crate) fn diagnostic_json(d: &Diagnostic) -> Value {
    json!({
        "code": d.code,
        "severity": d.severity.as_str(),
        "file": d.file,
        "line": d.line,
        "column": d.column,
        "end": d.end.map(|e| json!({"line": e.line, "column": e.column})),
        "message": d.message,
        "help": d.help,
    })
}

/// SARIF 2.1.0 log of one run of preflight. `rules` gives code → (name, short description).
pub(crate) fn sarif(diagnostics: &[Diagnostic], rules: &[crate::rules::RuleInfo]) -> Value {
    let rule_objs: Vec<Value> = rules
        .iter()
        .map(|r| {
            json!({
                "id": r.code,
                "name": r.name,
                "shortDescription": {"text": r.summary},
                "defaultConfiguration": {"level": sarif_level(r.severity)},
                "helpUri": format!("https://github.com/orbitdock/orbitdock/blob/main/crates/preflight/RULES.md#{}", r.code.to_lowercase()),
            })
        })
        .collect();
    let results: Vec<Value> = diagnostics
        .iter()
        .map(|d| {
            let mut region = serde_json::Map::new();
            if d.line > 0 {
                region.insert("startLine".into(), json!(d.line));
                region.insert("startColumn".into(), json!(d.column.max(1)));
                if let Some(end) = d.end {
                    region.insert("endLine".into(), json!(end.line));
                    region.insert("endColumn".into(), json!(end.column));
                }
            }
            let mut physical = json!({"artifactLocation": {"uri": d.file}});
            if !region.is_empty() {
                physical["region"] = Value::Object(region);
            }
            let text = match &d.help {
                Some(h) => format!("{}\nhelp: {h}", d.message),
                None => d.message.clone(),
            };
            let mut result = json!({
                "ruleId": d.code,
                "level": sarif_level(d.severity),
                "message": {"text": text},
                "locations": [{"physicalLocation": physical}],
            });
            if let Some(i) = rules.iter().position(|r| r.code == d.code) {
                result["ruleIndex"] = json!(i);
            }
            result
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "orbitdock-preflight",
                "informationUri": "https://github.com/orbitdock/orbitdock",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rule_objs,
            }},
            "results": results,
        }],
    })
}

fn sarif_level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(severity: Severity, line: u32) -> Diagnostic {
        Diagnostic {
            code: "OD101",
            severity,
            file: "Dockerfile".into(),
            line,
            column: 6,
            end: Some(Position { line, column: 12 }),
            message: "base image `alpine` is not onboard".into(),
            help: Some("use one of the onboard images".into()),
        }
    }

    #[test]
    fn renders_like_a_compiler() {
        let text = "FROM alpine\nRUN true\n".to_string();
        let out = render(&[diag(Severity::Error, 1)], &[("Dockerfile".into(), text)]);
        let expected = "\
Dockerfile:1:6: error[OD101]: base image `alpine` is not onboard
  |
1 | FROM alpine
  |      ^^^^^^
  = help: use one of the onboard images

1 error, 0 warnings, 0 infos
";
        assert_eq!(out, expected);
    }

    #[test]
    fn whole_file_diagnostics_have_no_snippet() {
        let mut d = diag(Severity::Info, 0);
        d.column = 0;
        d.end = None;
        d.help = None;
        let out = render(&[d], &[]);
        assert_eq!(
            out,
            "Dockerfile: info[OD101]: base image `alpine` is not onboard\n\n0 errors, 0 warnings, 1 info\n"
        );
    }

    #[test]
    fn errors_decide_the_exit_status() {
        assert!(!has_errors(&[
            diag(Severity::Warning, 1),
            diag(Severity::Info, 1)
        ]));
        assert!(has_errors(&[
            diag(Severity::Warning, 1),
            diag(Severity::Error, 1)
        ]));
    }

    #[test]
    fn sarif_has_rules_and_regions() {
        let v = sarif(&[diag(Severity::Error, 1)], crate::rules::RULES);
        assert_eq!(v["version"], "2.1.0");
        let result = &v["runs"][0]["results"][0];
        assert_eq!(result["ruleId"], "OD101");
        assert_eq!(result["level"], "error");
        assert_eq!(
            result["locations"][0]["physicalLocation"]["region"]["startLine"],
            1
        );
        let idx = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(v["runs"][0]["tool"]["driver"]["rules"][idx]["id"], "OD101");
    }
}
