//! The Dockerfile lexer and parser. It never fails: it returns the instructions it could read
//! plus [`Problem`]s for the rest.
//!
//! Understood, as Docker's Dockerfile parser reads them: parser directives (`# escape=`,
//! `# syntax=`, `# check=`; the first line that is not one ends them), comments, line
//! continuations (the escape character followed only by spaces and tabs; comment and blank
//! lines inside them are dropped), heredocs (`<<EOF`, `<<-EOF`, `<<"EOF"`, read only when the
//! [`Builder`] is BuildKit: the classic builder reads the lines after `RUN <<EOF` as
//! instructions), exec (JSON) form versus shell form, and `--flag[=value]` prefixes, split the
//! way Docker's `extractBuilderFlags` does.
//!
//! Besides malformed input, it reports what Docker might read differently from this parser
//! ([`ProblemKind::Ambiguous`]): whitespace other than spaces and tabs, flags of FROM, COPY, ADD
//! and RUN with quotes, backslashes or non-ASCII characters, or given twice, `--from` without
//! `=`, and an escaped escape character at the end of a continued line. Variable expansion is
//! left to the caller, which knows the ARG/ENV scope.

use crate::syntax::{
    Args, Builder, Dockerfile, Flag, Heredoc, HeredocBody, Instruction, KEYWORDS, Kind, Logical,
    Position, Problem, ProblemKind,
};
use crate::words::split_words;
use crate::{MAX_DOCKERFILE_BYTES, MAX_INSTRUCTIONS, MAX_PROBLEMS_PER_KIND};

/// Bytes between two position checkpoints of a long line (see [`Logical::pos`]).
const CHECKPOINT_BYTES: usize = 256;

/// The physical lines of a Dockerfile: split at `\n`, one `\r` before it dropped (as Go's
/// line scanner does), without a last empty line after a final `\n`. The BOM is the caller's.
pub(crate) fn physical_lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    if text.ends_with('\n') {
        lines.pop();
    }
    lines
}

/// The text without its byte-order mark.
pub(crate) fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// Parses a Dockerfile as `builder` reads it.
pub fn parse(text: &str, builder: Builder) -> Dockerfile {
    let mut p = Parser {
        problems: Vec::new(),
        counts: [0; ProblemKind::COUNT],
    };
    let text = if text.len() > MAX_DOCKERFILE_BYTES {
        let mut cut = MAX_DOCKERFILE_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        p.push(
            ProblemKind::Limit,
            Position { line: 1, column: 1 },
            None,
            format!(
                "the Dockerfile is {} bytes, more than the limit of {MAX_DOCKERFILE_BYTES}",
                text.len()
            ),
            Some("split the build, or move data out of the Dockerfile into files it copies".into()),
        );
        &text[..cut]
    } else {
        text
    };
    let lines = physical_lines(strip_bom(text));

    // Whitespace Docker's scanners read differently from one another (a vertical tab, a
    // non-breaking space, a lone carriage return…).
    for (n, line) in lines.iter().enumerate() {
        if !line.bytes().any(|b| matches!(b, 0x0b..=0x0d) || b >= 0x80) {
            continue;
        }
        if let Some((col, c)) = line
            .chars()
            .enumerate()
            .find(|&(_, c)| c.is_whitespace() && c != ' ' && c != '\t')
        {
            let at = Position {
                line: n as u32 + 1,
                column: col as u32 + 1,
            };
            p.push(
                ProblemKind::Ambiguous,
                at,
                Some(Position {
                    column: at.column + 1,
                    ..at
                }),
                format!(
                    "the line contains the whitespace character U+{:04X}; only spaces and tabs are accepted onboard",
                    c as u32
                ),
                Some("replace it with a space".into()),
            );
        }
    }

    // Parser directives, BuildKit's rule: `# key=value` lines at the very top, `key` one of
    // `escape`, `syntax`, `check`; the first line that is anything else (a blank line, another
    // comment, an instruction) ends them. A repeated one is an error.
    let mut escape = '\\';
    let mut i = 0;
    let mut seen: Vec<String> = Vec::new();
    while let Some(line) = lines.get(i) {
        let Some((key, value)) = directive(line) else {
            break;
        };
        if !["escape", "syntax", "check"].contains(&key.as_str()) {
            break;
        }
        let at = Position {
            line: i as u32 + 1,
            column: 1,
        };
        if seen.contains(&key) {
            p.push(
                ProblemKind::Malformed,
                at,
                None,
                format!("only one {key} parser directive can be used"),
                Some("remove the repeated directive".into()),
            );
        } else if key == "escape" {
            match value {
                "\\" => escape = '\\',
                "`" => escape = '`',
                other => p.push(
                    ProblemKind::Malformed,
                    at,
                    None,
                    format!("invalid escape directive `{other}`"),
                    Some("the escape character must be `\\` or a backtick".into()),
                ),
            }
        }
        seen.push(key);
        i += 1;
    }

    let mut instructions = Vec::new();
    while let Some(line) = lines.get(i) {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            i += 1;
            continue;
        }
        if instructions.len() >= MAX_INSTRUCTIONS {
            p.push(
                ProblemKind::Limit,
                Position {
                    line: i as u32 + 1,
                    column: 1,
                },
                None,
                format!("more than {MAX_INSTRUCTIONS} instructions; the rest is not read"),
                Some("split the build".into()),
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
            let (content, cont) = match continued(content, escape) {
                Some(head) => (head, true),
                None => (content, false),
            };
            if cont && content.ends_with(escape) {
                let at = Position {
                    line: j as u32 + 1,
                    column: raw.trim_end_matches([' ', '\t']).chars().count() as u32 - 1,
                };
                p.push(
                    ProblemKind::Ambiguous,
                    at,
                    None,
                    format!(
                        "the line ends in an escaped escape character ({escape}{escape}), which Docker reads ambiguously"
                    ),
                    Some("end the line with a space, or move the last argument to its own word".into()),
                );
            }
            let col = raw[..lead].chars().count() as u32 + 1;
            push_segment(&mut logical, content, j as u32 + 1, col);
            logical.text.push_str(content);
            logical.end_line = j as u32 + 1;
            j += 1;
            first = false;
            if !cont {
                break;
            }
        }
        i = j;
        if let Some(ins) = p.instruction(logical, escape, builder, &lines, &mut i) {
            instructions.push(ins);
        }
    }
    Dockerfile {
        escape,
        instructions,
        problems: p.problems,
    }
}

/// Records where `content` (one physical line's part of a logical line, about to be appended)
/// starts, and a checkpoint every [`CHECKPOINT_BYTES`] of it, so that [`Logical::pos`] counts at
/// most that many characters however long the line.
fn push_segment(logical: &mut Logical, content: &str, line: u32, col: u32) {
    let base = logical.text.len();
    logical.segments.push((base, line, col));
    let mut next = CHECKPOINT_BYTES;
    for (chars, (offset, _)) in content.char_indices().enumerate() {
        if offset >= next {
            logical
                .segments
                .push((base + offset, line, col + chars as u32));
            next = offset + CHECKPOINT_BYTES;
        }
    }
}

/// The line without its continuation mark, if it has one. Docker's rule: the escape character
/// followed only by `[ \t]*` to the end of the line.
fn continued(line: &str, escape: char) -> Option<&str> {
    line.trim_end_matches([' ', '\t']).strip_suffix(escape)
}

/// A parser directive as BuildKit reads it: `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`
/// on the line without its leading whitespace. The key is lower-cased.
fn directive(line: &str) -> Option<(String, &str)> {
    let ws = |c: char| matches!(c, ' ' | '\t' | '\r' | '\n' | '\x0c');
    let rest = line.trim_start_matches(ws).strip_prefix('#')?;
    let rest = rest.trim_start_matches(ws);
    let key_len = rest
        .char_indices()
        .find(|&(n, c)| !(c.is_ascii_alphabetic() || (n > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(n, _)| n);
    if key_len == 0 {
        return None;
    }
    let (key, rest) = rest.split_at(key_len);
    let rest = rest.trim_start_matches(ws).strip_prefix('=')?;
    if rest.is_empty() {
        return None;
    }
    let value = rest.trim_matches(ws);
    // `=\s*(.+?)` matches a value made of whitespace only as one whitespace character.
    let value = if value.is_empty() {
        rest.get(..1).unwrap_or(rest)
    } else {
        value
    };
    Some((key.to_ascii_lowercase(), value))
}

/// One flag word as Docker's `extractBuilderFlags` reads it: quotes group, a backslash escapes
/// the next character (whatever the escape directive says).
struct FlagWord {
    /// The word with quotes and backslashes processed.
    word: String,
    /// Byte range in the text given to [`flag_words`].
    start: usize,
    end: usize,
}

/// The leading `--flag` words of an instruction's arguments, and the byte offset where the
/// arguments start. A word `--` ends the flags and is not one.
fn flag_words(text: &str) -> (Vec<FlagWord>, usize) {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let rest = &text[pos..];
        let start = pos + (rest.len() - rest.trim_start().len());
        if !text[start..].starts_with("--") {
            return (out, start);
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        let mut end = text.len();
        let mut chars = text[start..].char_indices();
        while let Some((k, c)) = chars.next() {
            match quote {
                None if c.is_whitespace() => {
                    end = start + k;
                    break;
                }
                None if c == '\'' || c == '"' => quote = Some(c),
                Some(q) if c == q => quote = None,
                _ if c == '\\' => {
                    if let Some((_, n)) = chars.next() {
                        word.push(n);
                    }
                }
                _ => word.push(c),
            }
        }
        if word == "--" {
            let after = &text[end..];
            return (out, end + (after.len() - after.trim_start().len()));
        }
        out.push(FlagWord { word, start, end });
        pos = end;
    }
}

struct Parser {
    problems: Vec<Problem>,
    /// Problems of each kind found, recorded or not.
    counts: [usize; ProblemKind::COUNT],
}

impl Parser {
    /// Whether another problem of this kind is still recorded.
    fn room(&self, kind: ProblemKind) -> bool {
        self.counts[kind.index()] < MAX_PROBLEMS_PER_KIND
    }

    fn push(
        &mut self,
        kind: ProblemKind,
        start: Position,
        end: Option<Position>,
        message: String,
        help: Option<String>,
    ) {
        let room = self.room(kind);
        self.counts[kind.index()] += 1;
        if !room {
            return;
        }
        self.problems.push(Problem {
            kind,
            start,
            end,
            message,
            help,
        });
    }

    fn at(
        &mut self,
        kind: ProblemKind,
        logical: &Logical,
        range: (usize, usize),
        message: String,
        help: Option<String>,
    ) {
        if !self.room(kind) {
            return;
        }
        let s = logical.pos(range.0);
        let e = logical.pos(range.1);
        self.push(kind, s, Some(e), message, help);
    }

    /// Turns a logical line into an instruction; under BuildKit, reads heredoc bodies from
    /// `lines[*next..]`.
    fn instruction(
        &mut self,
        mut logical: Logical,
        escape: char,
        builder: Builder,
        lines: &[&str],
        next: &mut usize,
    ) -> Option<Instruction> {
        let text = logical.text.clone();
        let kw_end = text.find(char::is_whitespace).unwrap_or(text.len());
        let keyword = &text[..kw_end];
        let kw = keyword.to_ascii_uppercase();
        let Some(kind) = Kind::parse(keyword) else {
            self.at(
                ProblemKind::UnknownInstruction,
                &logical,
                (0, kw_end),
                format!("unknown instruction `{keyword}`"),
                Some(suggest_instruction(keyword)),
            );
            return None;
        };
        // Flags.
        let mut flags: Vec<Flag> = Vec::new();
        // The known flags given so far (a flag given twice is ambiguous).
        let mut seen: Vec<&'static str> = Vec::new();
        let (words, args_offset) = flag_words(&text[kw_end..]);
        for w in words {
            let (start, end) = (kw_end + w.start, kw_end + w.end);
            let raw = &text[start..end];
            let body = &w.word[2..];
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (body.to_string(), None),
            };
            if kind.flags_judged() && self.room(ProblemKind::Ambiguous) {
                if raw.contains(['"', '\'', '\\']) || !raw.is_ascii() {
                    self.at(
                        ProblemKind::Ambiguous,
                        &logical,
                        (start, end),
                        format!(
                            "the flag `{raw}` of {kw} contains a quote, a backslash or a non-ASCII character, which is not accepted onboard"
                        ),
                        Some(format!("write the flag plainly: `--{name}=VALUE`")),
                    );
                } else if raw.eq_ignore_ascii_case("--from") {
                    self.at(
                        ProblemKind::Ambiguous,
                        &logical,
                        (start, end),
                        format!("{kw} --from needs its value in the same word: --from=<name>"),
                        Some("write `--from=NAME`".into()),
                    );
                } else if seen.contains(&name.as_str()) && name != "exclude" {
                    self.at(
                        ProblemKind::Ambiguous,
                        &logical,
                        (start, end),
                        format!("the flag `--{name}` of {kw} is given twice"),
                        Some("keep one".into()),
                    );
                }
            }
            let known = kind.flags().iter().find(|(n, _)| *n == name);
            match known {
                None if !self.room(ProblemKind::UnknownFlag) => {}
                None => self.at(
                    ProblemKind::UnknownFlag,
                    &logical,
                    (start, end),
                    format!("unknown flag `--{name}` for {kw}"),
                    Some(match kind.flags() {
                        [] => format!("{kw} takes no flags"),
                        fl => format!(
                            "{kw} accepts {}",
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
                        ProblemKind::Malformed,
                        &logical,
                        (start, end),
                        format!("flag `--{name}` needs a value"),
                        Some(format!("write `--{name}=VALUE`")),
                    )
                }
                Some(_) => {}
            }
            if let Some((known, _)) = known {
                seen.push(known);
            }
            flags.push(Flag {
                name,
                value,
                start,
                end,
                buildkit_only: known.is_some_and(|k| k.1),
            });
        }
        let args_start = kw_end + args_offset;
        let rest = text[args_start..].trim_end().to_string();

        // Heredocs (RUN, COPY, ADD): under BuildKit, bodies follow the instruction line.
        let mut heredocs = Vec::new();
        if matches!(kind, Kind::Run | Kind::Copy | Kind::Add) {
            for (name, strip_tabs, ms, me) in heredoc_markers(&rest, args_start) {
                let body = match builder {
                    Builder::Classic => None,
                    Builder::BuildKit => Some(self.heredoc_body(
                        &name,
                        strip_tabs,
                        (ms, me),
                        &mut logical,
                        lines,
                        next,
                    )),
                };
                heredocs.push(Heredoc {
                    name,
                    marker_start: ms,
                    marker_end: me,
                    body,
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
                            ProblemKind::InvalidJson,
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

    /// Reads one heredoc body from `lines[*next..]`.
    fn heredoc_body(
        &mut self,
        name: &str,
        strip_tabs: bool,
        marker: (usize, usize),
        logical: &mut Logical,
        lines: &[&str],
        next: &mut usize,
    ) -> HeredocBody {
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
                ProblemKind::UnterminatedHeredoc,
                logical,
                marker,
                format!("heredoc `{name}` is never terminated"),
                Some(format!("end the heredoc with a line holding only `{name}`")),
            );
        }
        HeredocBody {
            text: body.join("\n"),
            first_line,
        }
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
            let end = ins.text.text.trim_end().len();
            self.at(ProblemKind::Malformed, &ins.text, (0, end), message, None);
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

fn suggest_instruction(word: &str) -> String {
    let up = word.to_ascii_uppercase();
    let best = KEYWORDS
        .iter()
        .map(|k| (wire::names::edit_distance(&up, k), *k))
        .min();
    match best {
        Some((d, k)) if d <= 2 && up.len() > 2 => format!("did you mean `{k}`?"),
        _ => "if this line continues the previous instruction, end that line with the escape character; heredocs need BuildKit".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(ProblemKind, u32)> {
        parse(text, Builder::BuildKit)
            .problems
            .iter()
            .map(|p| (p.kind, p.start.line))
            .collect()
    }

    #[test]
    fn continuation_and_comments() {
        let df = parse(
            "FROM a\nRUN echo 1 \\\n# comment\n\n  && echo 2\nUSER 1\n",
            Builder::Classic,
        );
        assert!(df.problems.is_empty(), "{:?}", df.problems);
        assert_eq!(df.instructions.len(), 3);
        let run = &df.instructions[1];
        assert_eq!(run.text.text, "RUN echo 1   && echo 2");
        assert_eq!(run.text.end_line, 5);
        let p = run.text.pos(run.text.text.find("&&").unwrap());
        assert_eq!(p, Position { line: 5, column: 3 });
        assert_eq!(df.instructions[2].text.pos(0).line, 6);
        assert_eq!(df.instructions[2].text.first_line(), 6);
    }

    #[test]
    fn escape_directive() {
        let df = parse(
            "# escape=`\nFROM a\nRUN echo `\n  hi\nCOPY c:\\x /y\n",
            Builder::Classic,
        );
        assert_eq!(df.escape, '`');
        assert_eq!(df.instructions[1].text.text, "RUN echo   hi");
        let Args::Shell { words, .. } = &df.instructions[2].args else {
            panic!()
        };
        assert_eq!(words[0].text, "c:\\x");
    }

    #[test]
    fn directives_follow_buildkit() {
        // A comment ends them, so the escape stays `\`.
        let df = parse("# hello\n# escape=`\nFROM a\n", Builder::Classic);
        assert_eq!(df.escape, '\\');
        // So does an unknown key, even one shaped like a directive.
        let df = parse("# foo=bar\n# escape=`\nFROM a\n", Builder::Classic);
        assert_eq!(df.escape, '\\');
        // Known keys in any case and spacing do not; a repeated one is an error.
        let df = parse(
            "# syntax=x\n#check=skip=all\n#  ESCAPE = `\nFROM a\n",
            Builder::Classic,
        );
        assert_eq!(df.escape, '`');
        assert_eq!(
            kinds("# escape=`\n# escape=`\nFROM a\n"),
            [(ProblemKind::Malformed, 2)]
        );
        assert_eq!(directive("#a1 = b c "), Some(("a1".into(), "b c")));
        assert_eq!(directive("# 1a=b"), None);
        assert_eq!(directive("# a_b=c"), None);
    }

    #[test]
    fn heredocs_under_buildkit_only() {
        let text =
            "FROM a\nRUN <<EOF bash\napt-get update\nEOF\nCOPY <<-\"X\" /y\n\thello\n\tX\nUSER 1\n";
        let df = parse(text, Builder::BuildKit);
        assert!(df.problems.is_empty(), "{:?}", df.problems);
        assert_eq!(df.instructions.len(), 4);
        let body = df.instructions[1].heredocs[0].body.as_ref().unwrap();
        assert_eq!(body.text, "apt-get update");
        assert_eq!(body.first_line, 3);
        let body = df.instructions[2].heredocs[0].body.as_ref().unwrap();
        assert_eq!(body.text, "hello");
        assert_eq!(df.instructions[3].kind, Kind::User);
        // The classic builder reads the bodies as instructions.
        let df = parse(text, Builder::Classic);
        assert!(df.instructions[1].heredocs[0].body.is_none());
        let problems: Vec<_> = df.problems.iter().map(|p| (p.kind, p.start.line)).collect();
        assert_eq!(
            problems,
            [
                (ProblemKind::UnknownInstruction, 3),
                (ProblemKind::UnknownInstruction, 4),
                (ProblemKind::UnknownInstruction, 6),
                (ProblemKind::UnknownInstruction, 7),
            ]
        );
    }

    #[test]
    fn exec_and_shell_forms() {
        let df = parse(
            "FROM a\nCMD [\"/app\", \"-v\"]\nCMD ['/app']\nENTRYPOINT /app -v\n",
            Builder::Classic,
        );
        assert!(
            matches!(&df.instructions[1].args, Args::Exec { items, .. } if items == &["/app", "-v"])
        );
        assert!(matches!(&df.instructions[2].args, Args::Shell { .. }));
        assert_eq!(
            kinds("FROM a\nCMD ['/app']\n"),
            [(ProblemKind::InvalidJson, 2)]
        );
    }

    #[test]
    fn flags() {
        let df = parse(
            "FROM --platform=linux/arm64 a AS b\nCOPY --from=b --chmod=755 x /y\n",
            Builder::Classic,
        );
        let platform = df.instructions[0].flag("platform").unwrap();
        assert_eq!(platform.value.as_deref(), Some("linux/arm64"));
        assert_eq!((platform.start, platform.end), (5, 27));
        assert!(df.instructions[1].flag("chmod").unwrap().buildkit_only);
        assert_eq!(df.instructions[1].args.start(), 26);
        assert_eq!(
            df.instructions[1].after_keyword(),
            "--from=b --chmod=755 x /y"
        );
        assert_eq!(
            kinds("FROM a\nCOPY --bogus=1 x /y\n"),
            [(ProblemKind::UnknownFlag, 2)]
        );
        // Quotes and backslashes are processed as Docker does, and refused where they matter.
        let df = parse(
            "FROM a\nHEALTHCHECK --interval=\"5s\" CMD true\n",
            Builder::Classic,
        );
        assert!(df.problems.is_empty(), "{:?}", df.problems);
        assert_eq!(df.instructions[1].flags[0].value.as_deref(), Some("5s"));
        assert_eq!(
            kinds("FROM a\nCOPY --chown=\"1 \" x /y\n"),
            [(ProblemKind::Ambiguous, 2)]
        );
        // `--` ends the flags.
        let df = parse("FROM a\nCOPY --chown=1 -- --x /y\n", Builder::Classic);
        assert_eq!(df.instructions[1].flags.len(), 1);
        assert_eq!(df.instructions[1].args.start(), 18);
    }

    #[test]
    fn malformed() {
        assert_eq!(
            kinds("FROM a\nFOO bar\n"),
            [(ProblemKind::UnknownInstruction, 2)]
        );
        assert_eq!(kinds("FROM a\nCOPY x\n"), [(ProblemKind::Malformed, 2)]);
        assert_eq!(
            kinds("FROM a\nRUN <<EOF\nx\n"),
            [(ProblemKind::UnterminatedHeredoc, 2)]
        );
        assert_eq!(kinds("FROM\n"), [(ProblemKind::Malformed, 1)]);
        assert_eq!(kinds("FROM a b\n"), [(ProblemKind::Malformed, 1)]);
        assert_eq!(kinds("# escape=x\nFROM a\n"), [(ProblemKind::Malformed, 1)]);
    }

    #[test]
    fn ambiguities() {
        assert_eq!(kinds("FROM a\nRUN x\x0by\n"), [(ProblemKind::Ambiguous, 2)]);
        assert_eq!(kinds("FROM a\r\r\nUSER 1\n"), [(ProblemKind::Ambiguous, 1)]);
        assert_eq!(kinds("FROM a\r\nUSER 1\r\n"), []);
        assert_eq!(
            kinds("FROM a\nRUN echo \\\\\nUSER 1\n"),
            [(ProblemKind::Ambiguous, 2)]
        );
        assert_eq!(
            kinds("FROM a\nCOPY --from=a --from=b x /y\n"),
            [(ProblemKind::Ambiguous, 2)]
        );
        assert_eq!(kinds("FROM a\nCOPY --exclude=a --exclude=b x /y\n"), []);
        assert_eq!(
            kinds("FROM a\nCOPY --from x /y\n")[0],
            (ProblemKind::Ambiguous, 2)
        );
    }

    #[test]
    fn limits_hold_at_their_value() {
        let pad = |n: usize| {
            let mut s = String::from("FROM a\n");
            s.push_str(&"#".repeat(n - s.len() - 1));
            s.push('\n');
            s
        };
        assert_eq!(pad(MAX_DOCKERFILE_BYTES).len(), MAX_DOCKERFILE_BYTES);
        assert_eq!(kinds(&pad(MAX_DOCKERFILE_BYTES)), []);
        assert_eq!(
            kinds(&pad(MAX_DOCKERFILE_BYTES + 1)),
            [(ProblemKind::Limit, 1)]
        );
        let many = |n: usize| "FROM a\n".to_string() + &"USER 1\n".repeat(n - 1);
        let df = parse(&many(MAX_INSTRUCTIONS), Builder::Classic);
        assert!(df.problems.is_empty());
        assert_eq!(df.instructions.len(), MAX_INSTRUCTIONS);
        let df = parse(&many(MAX_INSTRUCTIONS + 1), Builder::Classic);
        assert_eq!(df.problems.len(), 1);
        assert_eq!(df.problems[0].kind, ProblemKind::Limit);
        assert_eq!(df.problems[0].start.line, MAX_INSTRUCTIONS as u32 + 1);
    }
}
