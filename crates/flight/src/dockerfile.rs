//! Just enough of the Dockerfile grammar to see, and rewrite, which images a build would use.
//!
//! Onboard, nothing can be pulled: every `FROM` (and every `COPY --from=<image>`) must name
//! `scratch`, an earlier stage, a catalogue image or one of the tenant's own images. [`parse`]
//! reads the instructions (parser directives, comments, line continuations), substitutes the
//! global `ARG` defaults into `FROM`, and [`Dockerfile::references`] classifies each image a
//! build names. [`Dockerfile::rewrite`] replaces references in place (the tenant's `hello:v1`
//! becomes `tenants/<tenant>/hello:v1`), keeping every line number, so the daemon's errors still
//! point at the tenant's lines. Parsing never panics; bad input is an error with a line number.

use std::collections::HashMap;

use crate::names;

/// The longest Dockerfile accepted.
pub(crate) const MAX_DOCKERFILE: usize = 1 << 20;

/// A parsed Dockerfile: its physical lines and its instructions.
#[derive(Debug, Clone)]
pub(crate) struct Dockerfile {
    lines: Vec<String>,
    instructions: Vec<Instruction>,
    global_args: HashMap<String, String>,
    escape: char,
}

/// One instruction, continuation lines joined.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Instruction {
    /// Upper-case keyword (`FROM`, `COPY`, ...).
    keyword: String,
    /// The rest of the logical line, trimmed.
    args: String,
    /// Index of its first and last physical line.
    first: usize,
    last: usize,
}

/// An image a build names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageUse {
    /// Which instruction (for [`Dockerfile::rewrite`]).
    pub(crate) instruction: usize,
    /// 1-based line of the instruction.
    pub(crate) line: usize,
    /// `FROM` or `COPY --from`.
    pub(crate) site: Site,
    /// The image as written, after `ARG` substitution.
    pub(crate) image: String,
    /// What it names.
    pub(crate) target: Target,
}

/// Where an image is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Site {
    /// `FROM <image>`.
    From,
    /// `COPY --from=<image>`.
    CopyFrom,
}

/// What an image reference names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// `FROM scratch`.
    Scratch,
    /// An earlier build stage.
    Stage,
    /// A catalogue image, by its canonical name.
    Catalogue(String),
    /// Possibly one of the tenant's images (`name:tag` without a prefix); the caller checks it
    /// exists.
    Tenant {
        /// The image name.
        name: String,
        /// The tag (`latest` when none is written).
        tag: String,
    },
    /// Nothing that can exist onboard.
    Unknown,
}

impl ImageUse {
    /// The message for a reference that names nothing onboard.
    pub(crate) fn not_found(&self, catalogue: &[String]) -> String {
        let site = match self.site {
            Site::From => "FROM",
            Site::CopyFrom => "COPY --from=",
        };
        let sep = if self.site == Site::From { " " } else { "" };
        format!(
            "{site}{sep}{} (Dockerfile line {}): not in the onboard catalogue ({}) nor one of your images; nothing can be pulled onboard",
            self.image,
            self.line,
            catalogue.join(", ")
        )
    }
}

/// Parses a Dockerfile. Errors name the line.
pub(crate) fn parse(text: &str) -> Result<Dockerfile, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<String> = text
        .lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect();
    for (n, line) in lines.iter().enumerate() {
        if let Some(c) = line
            .chars()
            .find(|&c| c.is_whitespace() && c != ' ' && c != '\t')
        {
            return Err(format!(
                "line {}: contains the whitespace character U+{:04X}; only spaces and tabs are accepted",
                n + 1,
                c as u32
            ));
        }
    }
    let mut escape = '\\';
    let mut i = 0;
    // Parser directives, BuildKit's rule: `# key=value` lines at the very top, `key` one of
    // `escape`, `syntax`, `check`; the first line that is anything else (a blank line, another
    // comment, an instruction) ends them.
    let mut seen: Vec<String> = Vec::new();
    while i < lines.len() {
        let Some((key, value)) = directive(&lines[i]) else {
            break;
        };
        if !["escape", "syntax", "check"].contains(&key.as_str()) {
            break;
        }
        if seen.contains(&key) {
            return Err(format!(
                "line {}: only one {key} parser directive can be used",
                i + 1
            ));
        }
        if key == "escape" {
            escape = match value {
                "\\" => '\\',
                "`" => '`',
                other => {
                    return Err(format!(
                        "line {}: invalid escape directive {other:?}",
                        i + 1
                    ));
                }
            };
        }
        seen.push(key);
        i += 1;
    }
    let mut instructions = Vec::new();
    while i < lines.len() {
        let line = &lines[i];
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            i += 1;
            continue;
        }
        let first = i;
        let mut logical = String::new();
        let mut piece = line.as_str();
        loop {
            match continued(piece, escape) {
                Some(head) => {
                    if head.ends_with(escape) {
                        return Err(format!(
                            "line {}: ends in an escaped escape character ({escape}{escape}), which Docker reads ambiguously",
                            i + 1
                        ));
                    }
                    logical.push_str(head);
                    // Skip comment and blank lines inside a continuation, as Docker does.
                    i += 1;
                    while i < lines.len() && {
                        let t = lines[i].trim_start();
                        t.is_empty() || t.starts_with('#')
                    } {
                        i += 1;
                    }
                    if i == lines.len() {
                        break;
                    }
                    piece = &lines[i];
                }
                None => {
                    logical.push_str(piece);
                    break;
                }
            }
        }
        let last = i.min(lines.len() - 1);
        i += 1;
        let logical = logical.trim();
        let (keyword, args) = logical
            .split_once(char::is_whitespace)
            .unwrap_or((logical, ""));
        instructions.push(Instruction {
            keyword: keyword.to_ascii_uppercase(),
            args: args.trim().to_string(),
            first,
            last,
        });
    }
    for ins in &instructions {
        check_flags(ins)?;
    }
    let mut global_args = HashMap::new();
    for ins in instructions.iter().take_while(|ins| ins.keyword != "FROM") {
        if ins.keyword == "ARG" {
            for word in split_words(&ins.args, escape) {
                let (name, value) = match word.split_once('=') {
                    Some((n, v)) => (
                        n.to_string(),
                        substitute(v, &global_args, escape).map_err(|e| at(ins, &e))?,
                    ),
                    None => (word.clone(), String::new()),
                };
                global_args.insert(name, value);
            }
        }
    }
    if !instructions.iter().any(|ins| ins.keyword == "FROM") {
        return Err("the Dockerfile has no FROM instruction".into());
    }
    Ok(Dockerfile {
        lines,
        instructions,
        global_args,
        escape,
    })
}

impl Dockerfile {
    /// Every image the build names, classified against the catalogue's canonical names.
    pub(crate) fn references(&self, catalogue: &[String]) -> Result<Vec<ImageUse>, String> {
        let mut stages: Vec<Option<String>> = Vec::new();
        let mut out = Vec::new();
        for (idx, ins) in self.instructions.iter().enumerate() {
            match ins.keyword.as_str() {
                "FROM" => {
                    let from = self.parse_from(ins)?;
                    let target = if from.image == "scratch" {
                        Target::Scratch
                    } else if stages
                        .iter()
                        .flatten()
                        .any(|s| *s == from.image.to_ascii_lowercase())
                    {
                        Target::Stage
                    } else {
                        classify(&from.image, catalogue)
                    };
                    out.push(ImageUse {
                        instruction: idx,
                        line: ins.first + 1,
                        site: Site::From,
                        image: from.image,
                        target,
                    });
                    stages.push(from.stage);
                }
                "COPY" | "ADD" => {
                    let Some((value, _)) = from_flag(&ins.args) else {
                        continue;
                    };
                    let value = value.to_string();
                    let lower = value.to_ascii_lowercase();
                    let current = stages.len().saturating_sub(1);
                    let target = if let Ok(n) = value.parse::<usize>() {
                        if n < current {
                            Target::Stage
                        } else {
                            Target::Unknown
                        }
                    } else if stages[..current].iter().flatten().any(|s| *s == lower) {
                        Target::Stage
                    } else {
                        classify(&value, catalogue)
                    };
                    out.push(ImageUse {
                        instruction: idx,
                        line: ins.first + 1,
                        site: Site::CopyFrom,
                        image: value,
                        target,
                    });
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// The Dockerfile with the image of each `(instruction, new reference)` replaced. A rewritten
    /// instruction becomes one line; its continuation lines become blank, so line numbers hold.
    pub(crate) fn rewrite(&self, replacements: &[(usize, String)]) -> Result<String, String> {
        let mut lines = self.lines.clone();
        for (idx, new_ref) in replacements {
            let Some(ins) = self.instructions.get(*idx) else {
                continue;
            };
            let text = match ins.keyword.as_str() {
                "FROM" => {
                    let from = self.parse_from(ins)?;
                    let mut t = String::from("FROM ");
                    for flag in &from.flags {
                        t.push_str(flag);
                        t.push(' ');
                    }
                    t.push_str(new_ref);
                    if let Some(stage) = &from.stage_as_written {
                        t.push_str(" AS ");
                        t.push_str(stage);
                    }
                    t
                }
                keyword => {
                    let Some((_, span)) = from_flag(&ins.args) else {
                        continue;
                    };
                    format!(
                        "{keyword} {}--from={new_ref}{}",
                        &ins.args[..span.0],
                        &ins.args[span.1..]
                    )
                }
            };
            lines[ins.first] = text;
            for line in &mut lines[ins.first + 1..=ins.last] {
                line.clear();
            }
        }
        let mut out = lines.join("\n");
        out.push('\n');
        Ok(out)
    }

    /// `ADD` sources that are URLs, as `(line, url)`: the legacy builder fetches them from the
    /// daemon itself, outside the build's network sandbox, so they must be refused onboard.
    /// A source holding a variable (`ADD $URL /x`) is returned too: the builder expands it, so it
    /// could name a URL.
    pub(crate) fn downloads(&self) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for ins in self.instructions.iter().filter(|ins| ins.keyword == "ADD") {
            let line = ins.first + 1;
            out.extend(remote_words(&ins.args).into_iter().map(|url| (line, url)));
            let rest = flag_spans(&ins.args)
                .last()
                .map_or(&ins.args[..], |&(_, end)| &ins.args[end..]);
            out.extend(
                rest.split([' ', '\t'])
                    .filter(|w| w.contains('$'))
                    .map(|w| (line, w.to_string())),
            );
        }
        out
    }

    fn parse_from(&self, ins: &Instruction) -> Result<From, String> {
        let words: Vec<&str> = ins.args.split_whitespace().collect();
        let flags: Vec<String> = words
            .iter()
            .take_while(|w| w.starts_with("--"))
            .map(|w| w.to_string())
            .collect();
        let rest = &words[flags.len()..];
        let (image, stage) = match rest {
            [image] => (*image, None),
            [image, kw, name] if kw.eq_ignore_ascii_case("as") => (*image, Some(*name)),
            _ => {
                return Err(at(
                    ins,
                    "FROM takes an image, optionally followed by AS <name>",
                ));
            }
        };
        let image = substitute(image, &self.global_args, self.escape).map_err(|e| at(ins, &e))?;
        if image.is_empty() {
            return Err(at(
                ins,
                "FROM names an empty image (an ARG without a default?)",
            ));
        }
        Ok(From {
            flags,
            image,
            stage: stage.map(|s| s.to_ascii_lowercase()),
            stage_as_written: stage.map(str::to_string),
        })
    }
}

struct From {
    flags: Vec<String>,
    image: String,
    stage: Option<String>,
    stage_as_written: Option<String>,
}

fn at(ins: &Instruction, message: &str) -> String {
    format!("line {}: {message}", ins.first + 1)
}

/// The line without its continuation mark, if it has one.
/// Docker's rule: the escape character followed only by `[ \t]*` to the end of the line.
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
    let value = if value.is_empty() { &rest[..1] } else { value };
    Some((key.to_ascii_lowercase(), value))
}

/// The leading `--flag` words of an instruction's arguments, as byte spans, the way Docker's
/// `extractBuilderFlags` finds them for words without quotes or backslashes (a word `--` ends
/// the flags and is not one).
fn flag_spans(args: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut pos = 0;
    loop {
        let rest = &args[pos..];
        let start = pos + (rest.len() - rest.trim_start_matches([' ', '\t']).len());
        let len = args[start..]
            .find([' ', '\t'])
            .unwrap_or(args.len() - start);
        let word = &args[start..start + len];
        if !word.starts_with("--") || word == "--" {
            return spans;
        }
        spans.push((start, start + len));
        pos = start + len;
    }
}

/// Refuses the flags Docker and this parser could read differently.
fn check_flags(ins: &Instruction) -> Result<(), String> {
    if !matches!(ins.keyword.as_str(), "FROM" | "COPY" | "ADD" | "RUN") {
        return Ok(());
    }
    for (start, end) in flag_spans(&ins.args) {
        let word = &ins.args[start..end];
        if word.contains(['"', '\'', '\\']) || !word.is_ascii() {
            return Err(at(
                ins,
                &format!(
                    "the flag {word:?} of {} contains a quote, a backslash or a non-ASCII character, which is not accepted onboard",
                    ins.keyword
                ),
            ));
        }
        if word.eq_ignore_ascii_case("--from") {
            return Err(at(
                ins,
                &format!(
                    "{} --from needs its value in the same word: --from=<name>",
                    ins.keyword
                ),
            ));
        }
    }
    Ok(())
}

/// The words of an `ADD` (or an `ONBUILD ADD`) that name something remote. A JSON form is also
/// read JSON-decoded (`"http:\/\/x"`); one that does not decode but holds a backslash (which
/// Docker's decoder might still read) is returned whole, as possibly remote.
pub(crate) fn remote_words(args: &str) -> Vec<String> {
    let is_remote = |w: &str| w.contains("://") || w.starts_with("git@");
    let mut out: Vec<String> = Vec::new();
    let mut push = |w: String| {
        if !out.contains(&w) {
            out.push(w);
        }
    };
    for w in args
        .split(|c: char| c.is_whitespace() || c == '[' || c == ']' || c == ',')
        .map(|w| w.trim_matches('"'))
        .filter(|w| !w.starts_with("--") && is_remote(w))
    {
        push(w.to_string());
    }
    if let Some(open) = args.find('[') {
        let json = args[open..].trim_end();
        match serde_json::from_str::<Vec<String>>(json) {
            Ok(words) => words
                .into_iter()
                .filter(|w| is_remote(w))
                .for_each(&mut push),
            Err(_) if json.contains('\\') => push(json.to_string()),
            Err(_) => {}
        }
    }
    out
}

/// Classifies an image that is neither `scratch` nor a stage.
fn classify(image: &str, catalogue: &[String]) -> Target {
    let normalized = wire::normalize_image_ref(image);
    if let Some(c) = catalogue.iter().find(|c| **c == normalized) {
        return Target::Catalogue(c.clone());
    }
    if image.contains(['/', '@']) {
        return Target::Unknown;
    }
    let (name, tag) = image.split_once(':').unwrap_or((image, "latest"));
    if names::check_image_name(name).is_ok() && names::check_tag(tag).is_ok() {
        Target::Tenant {
            name: name.to_string(),
            tag: tag.to_string(),
        }
    } else {
        Target::Unknown
    }
}

/// Finds `--from=<value>` among the leading flags of a COPY/ADD: the value and the byte span of
/// the whole flag in `args`.
fn from_flag(args: &str) -> Option<(&str, (usize, usize))> {
    flag_spans(args).into_iter().find_map(|(start, end)| {
        args[start..end]
            .strip_prefix("--from=")
            .map(|value| (value, (start, end)))
    })
}

/// Splits `ARG`-style words, honouring quotes and the escape character.
fn split_words(s: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    let mut in_word = false;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => word.push(c),
            (_, c) if c == escape => {
                in_word = true;
                // Keep `\$` escaped for the substitution that follows.
                match chars.next() {
                    Some('$') => {
                        word.push(escape);
                        word.push('$');
                    }
                    Some(n) => word.push(n),
                    None => {}
                }
            }
            (_, c) => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// Substitutes `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:+alt}` (and the forms without `:`)
/// from `vars`; an unknown variable is empty; `<escape>$` is a literal `$`.
fn substitute(s: &str, vars: &HashMap<String, String>, escape: char) -> Result<String, String> {
    let mut out = String::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        if c == escape && chars.get(i + 1) == Some(&'$') {
            out.push('$');
            i += 2;
            continue;
        }
        if c != '$' {
            out.push(c);
            i += 1;
            continue;
        }
        if chars.get(i + 1) == Some(&'{') {
            let Some(close) = chars[i + 2..].iter().position(|&c| c == '}') else {
                return Err(format!("unterminated ${{ in {s:?}"));
            };
            let inner: String = chars[i + 2..i + 2 + close].iter().collect();
            i += close + 3;
            let name_len = inner.chars().take_while(|&c| is_name(c)).count();
            let (name, op) = inner.split_at(name_len);
            if name.is_empty() {
                return Err(format!("bad substitution ${{{inner}}} in {s:?}"));
            }
            let value = vars.get(name);
            let set = value.is_some_and(|v| !v.is_empty());
            match op {
                "" => out.push_str(value.map_or("", |v| v)),
                _ if op.starts_with(":-") => out.push_str(if set {
                    value.map_or("", |v| v)
                } else {
                    &op[2..]
                }),
                _ if op.starts_with(":+") => out.push_str(if set { &op[2..] } else { "" }),
                _ if op.starts_with('-') => out.push_str(value.map_or(&op[1..], |v| v)),
                _ if op.starts_with('+') => {
                    out.push_str(if value.is_some() { &op[1..] } else { "" })
                }
                _ => return Err(format!("unsupported substitution ${{{inner}}} in {s:?}")),
            }
        } else {
            let name: String = chars[i + 1..].iter().take_while(|&&c| is_name(c)).collect();
            if name.is_empty() {
                out.push('$');
                i += 1;
            } else {
                i += 1 + name.chars().count();
                out.push_str(vars.get(&name).map_or("", |v| v));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue() -> Vec<String> {
        wire::catalogue("linux/amd64")
            .into_iter()
            .map(|b| b.name)
            .collect()
    }

    /// Parses `text` and returns `(line, site, image, target)` for each reference.
    fn refs(text: &str) -> Vec<(usize, Site, String, Target)> {
        parse(text)
            .unwrap()
            .references(&catalogue())
            .unwrap()
            .into_iter()
            .map(|u| (u.line, u.site, u.image, u.target))
            .collect()
    }

    fn tenant(name: &str, tag: &str) -> Target {
        Target::Tenant {
            name: name.into(),
            tag: tag.into(),
        }
    }

    #[test]
    fn classifies_from_lines() {
        let r = refs(
            "# syntax=docker/dockerfile:1\n\
             FROM gcr.io/distroless/cc-debian12 AS base\n\
             FROM --platform=linux/arm64 busybox:latest as Builder\n\
             from scratch\n\
             FROM builder\n\
             FROM hello:v1\n\
             FROM ubuntu:22.04\n\
             FROM fpga.dphi.space:5000/busybox\n\
             FROM other/tenant:1\n\
             FROM Hello\n",
        );
        let targets: Vec<_> = r.iter().map(|x| (x.0, x.3.clone())).collect();
        assert_eq!(
            targets,
            [
                (
                    2,
                    Target::Catalogue("gcr.io/distroless/cc-debian12:latest".into())
                ),
                (3, Target::Catalogue("busybox:latest".into())),
                (4, Target::Scratch),
                (5, Target::Stage),
                (6, tenant("hello", "v1")),
                (7, tenant("ubuntu", "22.04")),
                (8, Target::Catalogue("busybox:latest".into())),
                (9, Target::Unknown),
                (10, Target::Unknown),
            ]
        );
    }

    #[test]
    fn handles_continuations_comments_and_args() {
        let r = refs(
            "ARG BASE=busybox\n\
             ARG TAG\n\
             ARG REG=\"fpga.dphi.space:5000\"\n\
             # a comment\n\
             FROM \\\n\
             # inside a continuation\n\
             \n\
             ${REG}/${BASE}:${TAG:-latest} \\\n\
               AS first\n\
             ARG BASE=ignored-after-from\n\
             FROM $BASE\n\
             COPY --chown=1:1 --from=first /a /b\n\
             COPY --from=0 /a /b\n\
             COPY --from=app:v2 /a /b\n\
             COPY --from=5 /a /b\n\
             COPY /x /y\n",
        );
        assert_eq!(
            r,
            [
                (
                    5,
                    Site::From,
                    "fpga.dphi.space:5000/busybox:latest".into(),
                    Target::Catalogue("busybox:latest".into())
                ),
                (
                    11,
                    Site::From,
                    "busybox".into(),
                    Target::Catalogue("busybox:latest".into())
                ),
                (12, Site::CopyFrom, "first".into(), Target::Stage),
                (13, Site::CopyFrom, "0".into(), Target::Stage),
                (14, Site::CopyFrom, "app:v2".into(), tenant("app", "v2")),
                (15, Site::CopyFrom, "5".into(), Target::Unknown),
            ]
        );
    }

    #[test]
    fn honours_the_escape_directive() {
        let r = refs("# escape=`\nFROM `\n  hello:v1\nRUN echo \\\n");
        assert_eq!(
            r,
            [(2, Site::From, "hello:v1".into(), tenant("hello", "v1"))]
        );
    }

    #[test]
    fn a_stage_name_shadows_an_image() {
        let r = refs("FROM busybox AS hello\nFROM hello\nFROM hello:v1\n");
        assert_eq!(r[1].3, Target::Stage);
        assert_eq!(r[2].3, tenant("hello", "v1"));
    }

    #[test]
    fn rewrites_in_place_keeping_line_numbers() {
        let text = "ARG V=v1\n\
                    FROM --platform=linux/amd64 \\\n  hello:${V} AS build\n\
                    RUN make\n\
                    FROM gcr.io/distroless/static-debian12\n\
                    COPY --chown=65532:65532 --from=tools:2 /bin/t /t\n\
                    COPY --from=build /out /out\n";
        let d = parse(text).unwrap();
        let uses = d.references(&catalogue()).unwrap();
        let replacements: Vec<(usize, String)> = uses
            .iter()
            .filter_map(|u| match &u.target {
                Target::Tenant { name, tag } => {
                    Some((u.instruction, format!("tenants/alice/{name}:{tag}")))
                }
                _ => None,
            })
            .collect();
        let out = d.rewrite(&replacements).unwrap();
        assert_eq!(
            out,
            "ARG V=v1\n\
             FROM --platform=linux/amd64 tenants/alice/hello:v1 AS build\n\
             \n\
             RUN make\n\
             FROM gcr.io/distroless/static-debian12\n\
             COPY --chown=65532:65532 --from=tenants/alice/tools:2 /bin/t /t\n\
             COPY --from=build /out /out\n"
        );
        // The rewritten file classifies the tenant images as unknown: a prefix can never be written
        // by a tenant.
        let again = parse(&out).unwrap().references(&catalogue()).unwrap();
        assert_eq!(again[0].target, Target::Unknown);
    }

    #[test]
    fn finds_downloads() {
        let d = parse(
            "FROM busybox\nADD --chown=1:1 https://example.com/a.tgz /a\nADD [\"http://x/y\", \"/y\"]\n\
             ADD local.tgz /l\nCOPY http://not-fetched /z\nADD git@github.com:a/b.git /src\n",
        )
        .unwrap();
        assert_eq!(
            d.downloads(),
            [
                (2, "https://example.com/a.tgz".to_string()),
                (3, "http://x/y".to_string()),
                (6, "git@github.com:a/b.git".to_string())
            ]
        );
        assert_eq!(remote_words("ADD ftp://h/f /f"), ["ftp://h/f"]);
    }

    #[test]
    fn explains_what_is_missing() {
        let d = parse("FROM ubuntu:22.04\n").unwrap();
        let u = &d.references(&catalogue()).unwrap()[0];
        assert_eq!(
            u.not_found(&catalogue()),
            "FROM ubuntu:22.04 (Dockerfile line 1): not in the onboard catalogue \
             (gcr.io/distroless/static-debian12:latest, gcr.io/distroless/cc-debian12:latest, busybox:latest) \
             nor one of your images; nothing can be pulled onboard"
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(parse("").is_err());
        assert!(parse("RUN echo\n").is_err());
        assert!(parse("# escape=x\nFROM a\n").is_err());
        assert!(parse("FROM\n").unwrap().references(&catalogue()).is_err());
        assert!(
            parse("FROM a b c d\n")
                .unwrap()
                .references(&catalogue())
                .is_err()
        );
        assert!(
            parse("ARG X\nFROM $X\n")
                .unwrap()
                .references(&catalogue())
                .is_err()
        );
        assert!(
            parse("FROM ${X\n")
                .unwrap()
                .references(&catalogue())
                .is_err()
        );
        assert!(parse("ARG A=${\nFROM a\n").is_err());
        // Odd but harmless inputs.
        for text in [
            "FROM a \\",
            "FROM a\nCOPY --from= /x /y\n",
            "FROM a\nCOPY --from=\n",
            "\u{feff}FROM a\n",
            "FROM é\n",
        ] {
            if let Ok(d) = parse(text) {
                let _ = d.references(&catalogue());
                let _ = d.rewrite(&[(0, "x".into()), (9, "y".into())]);
            }
        }
    }

    /// `parse` (or `references`) fails, naming the line.
    fn refused(text: &str, line: usize) {
        let err = match parse(text) {
            Err(e) => e,
            Ok(d) => match d.references(&catalogue()) {
                Err(e) => e,
                Ok(r) => panic!("accepted {text:?}: {r:?}"),
            },
        };
        assert!(err.starts_with(&format!("line {line}:")), "{text:?}: {err}");
    }

    #[test]
    fn refuses_whitespace_docker_reads_differently() {
        for ws in ["\x0b", "\x0c", "\u{a0}", "\u{2028}", "\u{85}", "\r"] {
            refused(
                &format!("FROM busybox\nCOPY --chown=1{ws}--from=tenants/bob/x:1 /a /b\n"),
                2,
            );
        }
        // `à` is C3 A0 in UTF-8: Docker's flag scanner reads the A0 byte as a space.
        refused(
            "FROM busybox\nCOPY --chown=\u{e0}--from=tenants/bob/x:1 /a /b\n",
            2,
        );
    }

    #[test]
    fn refuses_flags_docker_reads_differently() {
        for text in [
            "FROM busybox\nCOPY --\"from\"=tenants/bob/x:1 /a /b\n",
            "FROM busybox\nCOPY --fr\\om=tenants/bob/x:1 /a /b\n",
            "FROM busybox\nCOPY --chown=\"1 \" --from=tenants/bob/x:1 /a /b\n",
            "FROM busybox\nADD --'from'=tenants/bob/x:1 /a /b\n",
            "FROM busybox\nCOPY --from tenants/bob/x:1 /a /b\n",
            "FROM busybox\nRUN --\"mount\"=from=tenants/bob/x:1 true\n",
            "FROM busybox\nFROM --\"platform\"=x busybox\n",
        ] {
            refused(text, 2);
        }
    }

    #[test]
    fn continuation_follows_docker() {
        // An escaped escape at the end of a line.
        refused(
            "FROM busybox\nRUN echo \\\\\nCOPY --from=tenants/bob/x:1 /a /b\n",
            2,
        );
        refused(
            "# escape=`\nFROM busybox\nRUN echo `` \t\nCOPY --from=x /a /b\n",
            3,
        );
        // The escape followed by spaces and tabs continues the line.
        let r = refs("FROM busybox\nCOPY \\ \t\n --from=app:v2 /a /b\n");
        assert_eq!(
            r[1],
            (2, Site::CopyFrom, "app:v2".into(), tenant("app", "v2"))
        );
    }

    #[test]
    fn directives_end_at_the_first_other_comment() {
        // BuildKit stops reading directives at `# foo=bar`, so the escape stays `\\` and line 3
        // continues into line 4.
        let text = "# foo=bar\n# escape=`\nFROM busybox \\\nAS x\nCOPY --from=app:v2 /a /b\n";
        let r = refs(text);
        assert_eq!(r[0].0, 3);
        assert_eq!(r[1].3, tenant("app", "v2"));
        // A comment or a blank line ends them too.
        for text in [
            "# hello\n# escape=`\nFROM busybox \\\nAS x\n",
            "\n# escape=`\nFROM busybox \\\nAS x\n",
        ] {
            assert_eq!(refs(text).len(), 1, "{text:?}");
        }
        // The known ones, in any case and spacing, do not; a repeated one is an error.
        let r = refs(
            "# syntax=docker/dockerfile:1\n#check=skip=all\n#  ESCAPE = `\nFROM `\n  hello:v1\n",
        );
        assert_eq!(r[0].3, tenant("hello", "v1"));
        assert!(parse("# escape=`\n# escape=`\nFROM a\n").is_err());
    }

    #[test]
    fn json_add_sources_are_decoded() {
        let d = parse(
            "FROM busybox\nADD [\"http:\\/\\/x/y\",\"/y\"]\nADD [\"\\u0068ttps://z\", \"/z\"]\n",
        )
        .unwrap();
        let found = d.downloads();
        assert_eq!(found[0], (2, "http://x/y".to_string()));
        assert!(found.contains(&(3, "https://z".to_string())), "{found:?}");
        // Undecodable JSON with escapes is refused whole; variables could hold a URL.
        let d = parse("FROM busybox\nADD [\"http:\\/\\/x\\ud800\", \"/y\"]\nARG U=http://x\nADD $U /u\nADD a /a\n").unwrap();
        let lines: Vec<usize> = d.downloads().iter().map(|x| x.0).collect();
        assert_eq!(lines, [2, 4]);
    }

    #[test]
    fn substitutes_like_docker() {
        let vars: HashMap<String, String> = [
            ("A".to_string(), "a".to_string()),
            ("E".to_string(), String::new()),
        ]
        .into();
        let s = |t: &str| substitute(t, &vars, '\\').unwrap();
        assert_eq!(s("$A-${A}"), "a-a");
        assert_eq!(
            s("${E:-d} ${E-d} ${U-d} ${A:+x} ${U:+x} ${E+y}"),
            "d  d x  y"
        );
        assert_eq!(s("\\$A $ $1"), "$A $ ");
    }
}
