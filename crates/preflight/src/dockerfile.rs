//! The Dockerfile parser. It never fails: it returns the instructions it could read plus
//! diagnostics for the rest (OD001–OD006).
//!
//! Understood: parser directives (`# escape=`, `# syntax=`), comments, line continuations
//! (comment and blank lines inside them are dropped, as Docker does), heredocs (`<<EOF`,
//! `<<-EOF`, `<<"EOF"`), exec (JSON) form versus shell form, and `--flag[=value]` prefixes.
//! Variable expansion is left to the analysis, which knows the ARG/ENV scope.

use crate::diagnostic::{Diagnostic, Position, Severity};
use crate::words::{RawWord, split_words};

/// Longest Dockerfile parsed; the rest is reported and ignored.
pub(crate) const MAX_DOCKERFILE_BYTES: usize = 4 << 20;
/// Most instructions kept.
pub(crate) const MAX_INSTRUCTIONS: usize = 20_000;

/// A parsed Dockerfile.
#[derive(Debug, Clone)]
pub(crate) struct Dockerfile {
    /// The escape character (`\` unless a directive says `` ` ``).
    pub(crate) escape: char,
    /// Instructions in order.
    pub(crate) instructions: Vec<Instruction>,
    /// Parse diagnostics.
    pub(crate) diagnostics: Vec<Diagnostic>,
}

/// Instruction keywords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Add,
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    Stopsignal,
    User,
    Volume,
    Workdir,
}

impl Kind {
    fn parse(word: &str) -> Option<Kind> {
        Some(match word.to_ascii_uppercase().as_str() {
            "ADD" => Kind::Add,
            "ARG" => Kind::Arg,
            "CMD" => Kind::Cmd,
            "COPY" => Kind::Copy,
            "ENTRYPOINT" => Kind::Entrypoint,
            "ENV" => Kind::Env,
            "EXPOSE" => Kind::Expose,
            "FROM" => Kind::From,
            "HEALTHCHECK" => Kind::Healthcheck,
            "LABEL" => Kind::Label,
            "MAINTAINER" => Kind::Maintainer,
            "ONBUILD" => Kind::Onbuild,
            "RUN" => Kind::Run,
            "SHELL" => Kind::Shell,
            "STOPSIGNAL" => Kind::Stopsignal,
            "USER" => Kind::User,
            "VOLUME" => Kind::Volume,
            "WORKDIR" => Kind::Workdir,
            _ => return None,
        })
    }

    /// Flags the instruction accepts, and whether each needs BuildKit.
    fn flags(self) -> &'static [(&'static str, bool)] {
        match self {
            Kind::From => &[("platform", false)],
            Kind::Run => &[("mount", true), ("network", true), ("security", true)],
            Kind::Copy => &[
                ("from", false),
                ("chown", false),
                ("chmod", true),
                ("link", true),
                ("parents", true),
                ("exclude", true),
            ],
            Kind::Add => &[
                ("chown", false),
                ("chmod", true),
                ("link", true),
                ("checksum", true),
                ("keep-git-dir", true),
                ("exclude", true),
            ],
            Kind::Healthcheck => &[
                ("interval", false),
                ("timeout", false),
                ("start-period", false),
                ("retries", false),
                ("start-interval", true),
            ],
            _ => &[],
        }
    }
}

/// One instruction, its flags and arguments, with positions.
#[derive(Debug, Clone)]
pub(crate) struct Instruction {
    pub(crate) kind: Kind,
    /// The keyword as written.
    pub(crate) keyword: String,
    /// The logical line: continuation lines joined, with a map back to physical positions.
    pub(crate) text: Logical,
    /// `--name[=value]` flags before the arguments.
    pub(crate) flags: Vec<Flag>,
    /// The arguments after the flags.
    pub(crate) args: Args,
    /// Heredoc bodies that follow the instruction, in order.
    pub(crate) heredocs: Vec<Heredoc>,
}

/// A `--name[=value]` flag.
#[derive(Debug, Clone)]
pub(crate) struct Flag {
    pub(crate) name: String,
    /// The value as written (expansion happens in the analysis).
    pub(crate) value: Option<String>,
    /// Byte range in the logical line.
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// Known flag that the classic builder rejects.
    pub(crate) buildkit_only: bool,
}

/// The arguments of an instruction.
#[derive(Debug, Clone)]
pub(crate) enum Args {
    /// A JSON array of strings, and the byte range of the array.
    Exec {
        items: Vec<String>,
        start: usize,
        end: usize,
    },
    /// Anything else: the rest of the line (trimmed) starting at byte `start`, and its words.
    Shell {
        text: String,
        start: usize,
        words: Vec<RawWord>,
    },
}

/// A heredoc body.
#[derive(Debug, Clone)]
pub(crate) struct Heredoc {
    /// The delimiter word.
    pub(crate) name: String,
    /// The body, lines joined with `\n` (tabs stripped for `<<-`).
    pub(crate) body: String,
    /// Physical line of the body's first line.
    pub(crate) first_line: u32,
    /// Byte range of the `<<NAME` marker in the logical line.
    pub(crate) marker_start: usize,
    pub(crate) marker_end: usize,
}

/// A logical line and the physical position of each of its segments.
#[derive(Debug, Clone, Default)]
pub(crate) struct Logical {
    pub(crate) text: String,
    /// `(logical byte offset, physical line, physical 1-based column)` of each segment start.
    segments: Vec<(usize, u32, u32)>,
    /// Last physical line (including heredoc bodies).
    pub(crate) end_line: u32,
}

impl Logical {
    /// The physical position of a byte offset of the logical line.
    pub(crate) fn pos(&self, offset: usize) -> Position {
        let offset = offset.min(self.text.len());
        let idx = match self.segments.binary_search_by(|s| s.0.cmp(&offset)) {
            Ok(i) => i,
            Err(0) => 0,
            Err(i) => i - 1,
        };
        let Some(&(seg_start, line, col)) = self.segments.get(idx) else {
            return Position { line: 1, column: 1 };
        };
        let seg_start = seg_start.min(offset);
        let prefix = self
            .text
            .get(seg_start..offset)
            .map_or(0, |s| s.chars().count());
        Position {
            line,
            column: col + prefix as u32,
        }
    }
}

impl Instruction {
    /// Is there a flag of this name?
    pub(crate) fn flag(&self, name: &str) -> Option<&Flag> {
        self.flags.iter().find(|f| f.name == name)
    }
}

/// Parses a Dockerfile. `file` names it in diagnostics.
pub(crate) fn parse(text: &str, file: &str) -> Dockerfile {
    let mut p = Parser {
        file,
        diagnostics: Vec::new(),
    };
    let text = if text.len() > MAX_DOCKERFILE_BYTES {
        let mut cut = MAX_DOCKERFILE_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        p.push(
            "OD002",
            1,
            1,
            None,
            format!(
                "the Dockerfile is larger than {MAX_DOCKERFILE_BYTES} bytes; the rest is ignored"
            ),
            None,
        );
        &text[..cut]
    } else {
        text
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();

    // Parser directives: only at the very top, before any comment, blank line or instruction.
    let mut escape = '\\';
    let mut i = 0;
    let mut seen = Vec::new();
    while i < lines.len() {
        let Some((name, value)) = directive(lines[i]) else {
            break;
        };
        let lname = name.to_ascii_lowercase();
        if !matches!(lname.as_str(), "escape" | "syntax" | "check") || seen.contains(&lname) {
            break;
        }
        seen.push(lname.clone());
        if lname == "escape" {
            match value {
                "\\" => escape = '\\',
                "`" => escape = '`',
                other => p.push(
                    "OD002",
                    i as u32 + 1,
                    1,
                    None,
                    format!("invalid escape directive `{other}`"),
                    Some("the escape character must be `\\` or a backtick".into()),
                ),
            }
        }
        i += 1;
    }

    let mut instructions = Vec::new();
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            i += 1;
            continue;
        }
        if instructions.len() >= MAX_INSTRUCTIONS {
            p.push(
                "OD002",
                i as u32 + 1,
                1,
                None,
                format!("more than {MAX_INSTRUCTIONS} instructions; the rest is ignored"),
                None,
            );
            break;
        }
        // Assemble the logical line.
        let mut logical = Logical::default();
        let mut j = i;
        let mut first = true;
        while let Some(&raw) = lines.get(j) {
            if !first {
                let t = raw.trim_start();
                if t.starts_with('#') || t.is_empty() {
                    j += 1;
                    continue;
                }
            }
            let lead = if first {
                raw.len() - raw.trim_start().len()
            } else {
                0
            };
            let content = &raw[lead..];
            let (content, cont) = strip_continuation(content, escape);
            let col = raw[..lead].chars().count() as u32 + 1;
            logical
                .segments
                .push((logical.text.len(), j as u32 + 1, col));
            logical.text.push_str(content);
            logical.end_line = j as u32 + 1;
            j += 1;
            first = false;
            if !cont {
                break;
            }
        }
        i = j;
        let ins = p.instruction(logical, escape, &lines, &mut i);
        if let Some(ins) = ins {
            instructions.push(ins);
        }
    }
    Dockerfile {
        escape,
        instructions,
        diagnostics: p.diagnostics,
    }
}

/// `# name = value` at the top of the file.
fn directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.trim_start().strip_prefix('#')?;
    let (name, value) = rest.split_once('=')?;
    let name = name.trim();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return None;
    }
    Some((name, value.trim()))
}

/// Strips a trailing escape character (plus trailing whitespace) that continues the line.
fn strip_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end();
    match t.strip_suffix(escape) {
        Some(rest) => (rest, true),
        None => (line, false),
    }
}

struct Parser<'a> {
    file: &'a str,
    diagnostics: Vec<Diagnostic>,
}

impl Parser<'_> {
    fn push(
        &mut self,
        code: &'static str,
        line: u32,
        column: u32,
        end: Option<Position>,
        message: String,
        help: Option<String>,
    ) {
        let severity = if code == "OD004" {
            Severity::Warning
        } else {
            Severity::Error
        };
        self.diagnostics.push(Diagnostic {
            code,
            severity,
            file: self.file.to_string(),
            line,
            column,
            end,
            message,
            help,
        });
    }

    fn at(
        &mut self,
        code: &'static str,
        logical: &Logical,
        range: (usize, usize),
        message: String,
        help: Option<String>,
    ) {
        let s = logical.pos(range.0);
        let e = logical.pos(range.1);
        self.push(code, s.line, s.column, Some(e), message, help);
    }

    /// Turns a logical line into an instruction; reads heredoc bodies from `lines[*next..]`.
    fn instruction(
        &mut self,
        mut logical: Logical,
        escape: char,
        lines: &[&str],
        next: &mut usize,
    ) -> Option<Instruction> {
        let text = logical.text.clone();
        let kw_end = text.find(char::is_whitespace).unwrap_or(text.len());
        let keyword = &text[..kw_end];
        let Some(kind) = Kind::parse(keyword) else {
            self.at(
                "OD001",
                &logical,
                (0, kw_end),
                format!("unknown instruction `{keyword}`"),
                suggest_instruction(keyword),
            );
            return None;
        };
        // Flags.
        let mut flags = Vec::new();
        let mut pos = kw_end;
        let rest_words = split_words(&text[kw_end..], kw_end, escape);
        let mut args_start = text.len();
        let mut idx = 0;
        while let Some(w) = rest_words.get(idx) {
            let Some(body) = w.text.strip_prefix("--") else {
                break;
            };
            if body.is_empty() {
                break;
            }
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (body.to_string(), None),
            };
            let known = kind.flags().iter().find(|(n, _)| *n == name);
            match known {
                None => self.at(
                    "OD006",
                    &logical,
                    (w.start, w.end),
                    format!(
                        "unknown flag `--{name}` for {}",
                        keyword.to_ascii_uppercase()
                    ),
                    Some(match kind.flags() {
                        [] => format!("{} takes no flags", keyword.to_ascii_uppercase()),
                        fl => format!(
                            "{} accepts {}",
                            keyword.to_ascii_uppercase(),
                            fl.iter()
                                .map(|(n, _)| format!("--{n}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    }),
                ),
                Some(_)
                    if value.as_deref().is_none_or(str::is_empty)
                        && !matches!(name.as_str(), "link" | "parents" | "keep-git-dir") =>
                {
                    self.at(
                        "OD002",
                        &logical,
                        (w.start, w.end),
                        format!("flag `--{name}` needs a value"),
                        Some(format!("write `--{name}=VALUE`")),
                    )
                }
                Some(_) => {}
            }
            flags.push(Flag {
                name,
                value,
                start: w.start,
                end: w.end,
                buildkit_only: known.is_some_and(|k| k.1),
            });
            pos = w.end;
            idx += 1;
        }
        if let Some(w) = rest_words.get(idx) {
            args_start = w.start;
        }
        let _ = pos;
        let rest = text[args_start..].trim_end().to_string();

        // Heredocs (RUN, COPY, ADD): bodies follow the instruction line.
        let mut heredocs = Vec::new();
        if matches!(kind, Kind::Run | Kind::Copy | Kind::Add) {
            for (name, strip_tabs, ms, me) in heredoc_markers(&rest, args_start) {
                let first_line = *next as u32 + 1;
                let mut body = Vec::new();
                let mut closed = false;
                while let Some(&l) = lines.get(*next) {
                    *next += 1;
                    let candidate = if strip_tabs {
                        l.trim_start_matches('\t')
                    } else {
                        l
                    };
                    if candidate == name {
                        closed = true;
                        break;
                    }
                    body.push(candidate.to_string());
                }
                logical.end_line = logical.end_line.max(*next as u32);
                if !closed {
                    self.at(
                        "OD003",
                        &logical,
                        (ms, me),
                        format!("heredoc `{name}` is never terminated"),
                        Some(format!("end the heredoc with a line holding only `{name}`")),
                    );
                }
                heredocs.push(Heredoc {
                    name,
                    body: body.join("\n"),
                    first_line,
                    marker_start: ms,
                    marker_end: me,
                });
            }
        }

        // Exec form.
        let json_capable = matches!(
            kind,
            Kind::Run
                | Kind::Cmd
                | Kind::Entrypoint
                | Kind::Shell
                | Kind::Copy
                | Kind::Add
                | Kind::Volume
        );
        let args = if json_capable && rest.starts_with('[') {
            match parse_json_strings(&rest) {
                Some(items) => Args::Exec {
                    items,
                    start: args_start,
                    end: args_start + rest.len(),
                },
                None => {
                    if matches!(kind, Kind::Run | Kind::Cmd | Kind::Entrypoint | Kind::Shell) {
                        self.at(
                            "OD004",
                            &logical,
                            (args_start, args_start + rest.len()),
                            "not a valid JSON array of strings: treated as shell form".into(),
                            Some("write `[\"executable\", \"arg\"]` with double quotes".into()),
                        );
                    }
                    shell_args(&rest, args_start, escape)
                }
            }
        } else {
            shell_args(&rest, args_start, escape)
        };

        let ins = Instruction {
            kind,
            keyword: keyword.to_string(),
            text: logical,
            flags,
            args,
            heredocs,
        };
        self.check_arity(&ins);
        Some(ins)
    }

    fn check_arity(&mut self, ins: &Instruction) {
        let kw = ins.keyword.to_ascii_uppercase();
        let (n, empty) = match &ins.args {
            Args::Exec { items, .. } => (items.len(), items.is_empty()),
            Args::Shell { words, text, .. } => (words.len(), text.is_empty()),
        };
        let heredoc_sources = ins.heredocs.len();
        let problem = match ins.kind {
            Kind::Copy | Kind::Add
                if n + heredoc_sources.saturating_sub(heredoc_sources.min(n)) < 2 && n < 2 =>
            {
                Some(format!(
                    "{kw} requires at least two arguments (sources and a destination)"
                ))
            }
            Kind::From if n == 0 => Some("FROM requires an image".to_string()),
            Kind::From if n == 2 || n > 3 => Some("FROM takes `IMAGE [AS NAME]`".to_string()),
            Kind::From
                if n == 3
                    && !matches!(&ins.args, Args::Shell { words, .. } if words[1].text.eq_ignore_ascii_case("as")) =>
            {
                Some("FROM takes `IMAGE [AS NAME]`".to_string())
            }
            Kind::Run
            | Kind::Workdir
            | Kind::User
            | Kind::Arg
            | Kind::Env
            | Kind::Label
            | Kind::Expose
            | Kind::Volume
            | Kind::Stopsignal
            | Kind::Maintainer
            | Kind::Onbuild
            | Kind::Shell
                if empty && ins.heredocs.is_empty() =>
            {
                Some(format!("{kw} requires at least one argument"))
            }
            Kind::Env if !empty => env_pairs_problem(&ins.args),
            _ => None,
        };
        if let Some(message) = problem {
            let start = 0;
            let end = ins.text.text.trim_end().len();
            self.at("OD002", &ins.text, (start, end), message, None);
        }
    }
}

fn env_pairs_problem(args: &Args) -> Option<String> {
    let Args::Shell { words, .. } = args else {
        return None;
    };
    let first_has_eq = words.first().is_some_and(|w| w.text.contains('='));
    if first_has_eq && words.iter().any(|w| !w.text.contains('=')) {
        return Some("ENV mixes `KEY=value` pairs with a bare word".to_string());
    }
    if !first_has_eq && words.len() < 2 {
        return Some("ENV requires a value: `ENV KEY=value`".to_string());
    }
    None
}

fn shell_args(rest: &str, start: usize, escape: char) -> Args {
    Args::Shell {
        text: rest.to_string(),
        start,
        words: split_words(rest, start, escape),
    }
}

/// Heredoc markers in an instruction's arguments: (name, strip tabs, start, end).
fn heredoc_markers(rest: &str, base: usize) -> Vec<(String, bool, usize, usize)> {
    let bytes = rest.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i + 1 < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(q) if c == q => {
                quote = None;
                i += 1;
                continue;
            }
            Some(_) => {
                i += 1;
                continue;
            }
            None if c == b'\'' || c == b'"' => {
                quote = Some(c);
                i += 1;
                continue;
            }
            None => {}
        }
        if c == b'<'
            && bytes[i + 1] == b'<'
            && (i == 0 || bytes[i - 1] != b'<')
            && bytes.get(i + 2) != Some(&b'<')
        {
            let start = i;
            let mut j = i + 2;
            let strip = bytes.get(j) == Some(&b'-');
            if strip {
                j += 1;
            }
            let q = match bytes.get(j) {
                Some(&b'"') | Some(&b'\'') => {
                    j += 1;
                    Some(bytes[j - 1])
                }
                _ => None,
            };
            let name_start = j;
            while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                j += 1;
            }
            if j > name_start {
                let name = rest[name_start..j].to_string();
                if let Some(q) = q {
                    if bytes.get(j) == Some(&q) {
                        j += 1;
                    } else {
                        i = j;
                        continue;
                    }
                }
                out.push((name, strip, base + start, base + j));
                i = j;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// Parses `["a", "b"]`: a JSON array whose elements are all strings.
fn parse_json_strings(text: &str) -> Option<Vec<String>> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    v.as_array()?
        .iter()
        .map(|e| e.as_str().map(str::to_string))
        .collect()
}

fn suggest_instruction(word: &str) -> Option<String> {
    const ALL: &[&str] = &[
        "ADD",
        "ARG",
        "CMD",
        "COPY",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "FROM",
        "HEALTHCHECK",
        "LABEL",
        "MAINTAINER",
        "ONBUILD",
        "RUN",
        "SHELL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
    ];
    let up = word.to_ascii_uppercase();
    let best = ALL
        .iter()
        .map(|k| (crate::suggest::levenshtein(&up, k), *k))
        .min()?;
    if best.0 <= 2 && up.len() > 2 {
        Some(format!("did you mean `{}`?", best.1))
    } else {
        Some("if this line continues the previous instruction, end that line with the escape character; heredocs need BuildKit".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(text: &str) -> Vec<(&'static str, u32)> {
        parse(text, "Dockerfile")
            .diagnostics
            .iter()
            .map(|d| (d.code, d.line))
            .collect()
    }

    #[test]
    fn continuation_and_comments() {
        let df = parse(
            "FROM a\nRUN echo 1 \\\n# comment\n\n  && echo 2\nUSER 1\n",
            "Dockerfile",
        );
        assert!(df.diagnostics.is_empty(), "{:?}", df.diagnostics);
        assert_eq!(df.instructions.len(), 3);
        let run = &df.instructions[1];
        assert_eq!(run.text.text, "RUN echo 1   && echo 2");
        assert_eq!(run.text.end_line, 5);
        let p = run.text.pos(run.text.text.find("&&").unwrap());
        assert_eq!(p, Position { line: 5, column: 3 });
        assert_eq!(df.instructions[2].text.pos(0).line, 6);
    }

    #[test]
    fn escape_directive() {
        let df = parse(
            "# escape=`\nFROM a\nRUN echo `\n  hi\nCOPY c:\\x /y\n",
            "Dockerfile",
        );
        assert_eq!(df.escape, '`');
        assert_eq!(df.instructions[1].text.text, "RUN echo   hi");
        let Args::Shell { words, .. } = &df.instructions[2].args else {
            panic!()
        };
        assert_eq!(words[0].text, "c:\\x");
    }

    #[test]
    fn directive_after_comment_is_a_comment() {
        let df = parse("# hello\n# escape=`\nFROM a\n", "Dockerfile");
        assert_eq!(df.escape, '\\');
    }

    #[test]
    fn heredocs() {
        let df = parse(
            "FROM a\nRUN <<EOF bash\napt-get update\nEOF\nCOPY <<-\"X\" /y\n\thello\n\tX\nUSER 1\n",
            "Dockerfile",
        );
        assert!(df.diagnostics.is_empty(), "{:?}", df.diagnostics);
        assert_eq!(df.instructions.len(), 4);
        assert_eq!(df.instructions[1].heredocs[0].body, "apt-get update");
        assert_eq!(df.instructions[1].heredocs[0].first_line, 3);
        assert_eq!(df.instructions[2].heredocs[0].body, "hello");
        assert_eq!(df.instructions[3].kind, Kind::User);
    }

    #[test]
    fn exec_and_shell_forms() {
        let df = parse(
            "FROM a\nCMD [\"/app\", \"-v\"]\nCMD ['/app']\nENTRYPOINT /app -v\n",
            "Dockerfile",
        );
        assert!(
            matches!(&df.instructions[1].args, Args::Exec { items, .. } if items == &["/app", "-v"])
        );
        assert!(matches!(&df.instructions[2].args, Args::Shell { .. }));
        assert_eq!(codes("FROM a\nCMD ['/app']\n"), [("OD004", 2)]);
    }

    #[test]
    fn flags() {
        let df = parse(
            "FROM --platform=linux/arm64 a AS b\nCOPY --from=b --chmod=755 x /y\n",
            "Dockerfile",
        );
        assert_eq!(
            df.instructions[0]
                .flag("platform")
                .unwrap()
                .value
                .as_deref(),
            Some("linux/arm64")
        );
        assert!(df.instructions[1].flag("chmod").unwrap().buildkit_only);
        assert_eq!(codes("FROM a\nCOPY --bogus=1 x /y\n"), [("OD006", 2)]);
    }

    #[test]
    fn malformed() {
        assert_eq!(codes("FROM a\nFOO bar\n"), [("OD001", 2)]);
        assert_eq!(codes("FROM a\nCOPY x\n"), [("OD002", 2)]);
        assert_eq!(codes("FROM a\nRUN <<EOF\nx\n"), [("OD003", 2)]);
        assert_eq!(codes("FROM\n"), [("OD002", 1)]);
        assert_eq!(codes("FROM a b\n"), [("OD002", 1)]);
        assert_eq!(codes("# escape=x\nFROM a\n"), [("OD002", 1)]);
    }
}
