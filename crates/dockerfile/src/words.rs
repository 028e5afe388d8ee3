//! Word splitting and variable expansion with the Dockerfile's rules (quotes, the escape
//! character, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:+alt}`, `${VAR-x}`, `${VAR+x}`,
//! `${VAR:?msg}`).
//!
//! [`expand`] never fails: what it cannot read it keeps literally, which is what diagnostics
//! want. [`expand_strict`] is the same expansion, but refuses whatever Docker could read
//! differently or not at all (an unterminated `${` or quote, a modifier other than `-`, `+`,
//! `:-` and `:+`, a limit exceeded): that is what the onboard judge needs. When
//! [`expand_strict`] succeeds, it returns exactly what [`expand`] returns.
//!
//! Bounded and linear: an expansion's output is at most [`MAX_EXPANSION`] bytes, `${…}` words
//! nest at most [`MAX_DEPTH`] deep, and what all the expansions of one Dockerfile write (also
//! into words they then drop) is at most [`MAX_EXPANSION_TOTAL`] bytes ([`expand_within`]).
//! Each `${` finds its `}` in a table built in one pass, so no word is scanned twice.
//!
//! [`declare_args`] is Docker's `ARG` scope, its one implementation.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use crate::{MAX_DEPTH, MAX_EXPANSION, MAX_EXPANSION_TOTAL};

/// Variables in scope: ARGs and ENVs, later declarations overriding earlier ones.
pub type Vars = BTreeMap<String, String>;

/// A whitespace-separated word of a logical line, with its byte range in that line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawWord {
    /// The text as written (quotes and escapes still in).
    pub text: String,
    /// Byte offset of the first character in the logical line.
    pub start: usize,
    /// Byte offset one past the last character.
    pub end: usize,
}

/// Why [`expand_strict`] refused a word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandError {
    kind: ExpandErrorKind,
    message: String,
}

/// What kind of [`ExpandError`] it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExpandErrorKind {
    /// The word is malformed, or uses a form the onboard judge does not read.
    Syntax,
    /// The output would exceed [`MAX_EXPANSION`] bytes, or `${…}` nests deeper than
    /// [`MAX_DEPTH`].
    Limit,
}

impl ExpandError {
    /// Syntax or limit.
    pub fn kind(&self) -> ExpandErrorKind {
        self.kind
    }
}

impl fmt::Display for ExpandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ExpandError {}

/// Splits `text` (starting at byte `base` of its logical line) on unquoted whitespace.
pub fn split_words(text: &str, base: usize, escape: char) -> Vec<RawWord> {
    let mut words = Vec::new();
    let mut cur_start: Option<usize> = None;
    let mut quote: Option<char> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if quote.is_none() && c.is_whitespace() {
            if let Some(s) = cur_start.take() {
                words.push(RawWord {
                    text: text[s..i].to_string(),
                    start: base + s,
                    end: base + i,
                });
            }
            continue;
        }
        if cur_start.is_none() {
            cur_start = Some(i);
        }
        match (quote, c) {
            (None, '\'') | (None, '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (Some('\''), _) => {}
            (_, c) if c == escape => {
                chars.next();
            }
            _ => {}
        }
    }
    if let Some(s) = cur_start {
        words.push(RawWord {
            text: text[s..].to_string(),
            start: base + s,
            end: base + text.len(),
        });
    }
    words
}

/// Removes quotes and escapes and expands variables of one word. Never fails: an undefined
/// variable is empty, a malformed `${` is kept literally, output past [`MAX_EXPANSION`] is cut.
pub fn expand(word: &str, vars: &Vars, escape: char) -> String {
    let mut budget = MAX_EXPANSION_TOTAL;
    Expander::new(word, vars, escape, false, &mut budget)
        .run()
        .0
}

/// [`expand`], refusing what Docker could read differently or not at all.
pub fn expand_strict(word: &str, vars: &Vars, escape: char) -> Result<String, ExpandError> {
    let mut budget = MAX_EXPANSION_TOTAL;
    match Expander::new(word, vars, escape, true, &mut budget).run() {
        (value, None) => Ok(value),
        (_, Some(e)) => Err(e),
    }
}

/// [`expand`] within a budget shared by the expansions of one Dockerfile: every byte an
/// expansion writes (also into a `${NAME:-word}` whose word it then drops) is taken from
/// `budget`, and an expansion that would take more than is left stops there. Returns the value
/// and, beside it, the first reason [`expand_strict`] would refuse the word (a spent budget is
/// an [`ExpandErrorKind::Limit`]).
pub fn expand_within(
    word: &str,
    vars: &Vars,
    escape: char,
    budget: &mut usize,
) -> (String, Option<ExpandError>) {
    Expander::new(word, vars, escape, false, budget).run()
}

/// [`expand_strict`] within a budget (see [`expand_within`]): stops at the first error.
pub(crate) fn expand_strict_within(
    word: &str,
    vars: &Vars,
    escape: char,
    budget: &mut usize,
) -> Result<String, ExpandError> {
    match Expander::new(word, vars, escape, true, budget).run() {
        (value, None) => Ok(value),
        (_, Some(e)) => Err(e),
    }
}

/// Does the word contain a glob metacharacter (Go's `filepath.Match` syntax)?
pub fn has_glob(word: &str) -> bool {
    word.contains(['*', '?', '['])
}

/// One word of an `ARG` instruction, as Docker reads it: `NAME=default`, or `NAME` alone.
pub fn arg_word(word: &str) -> (&str, Option<&str>) {
    match word.split_once('=') {
        Some((name, default)) => (name, Some(default)),
        None => (word, None),
    }
}

/// Where an `ARG` instruction is, which decides where its values come from.
#[derive(Debug, Clone, Copy)]
pub enum ArgSite<'a> {
    /// Before the first `FROM`: a global ("meta") ARG, the only variables `FROM` sees. Its
    /// defaults are expanded in the global ARGs declared before it.
    Global,
    /// Inside a build stage.
    Stage {
        /// The global ARGs: a stage's `ARG NAME` without a default takes the global value.
        globals: &'a Vars,
        /// The variables the defaults are expanded in (the stage's ARGs and ENVs).
        env: &'a Vars,
    },
}

/// Docker's `ARG` scope, its one implementation (the onboard judge's and preflight's): declares
/// the words of one `ARG` instruction in `scope`. All of its defaults are expanded first, as
/// Docker expands an instruction before it runs it. Each `NAME` then takes its build argument
/// (`build_arg`), else its default, else, in a stage, the global `NAME`; with none of these it
/// is unset, even if an earlier `ARG` set it (Docker's `AddMetaArg(key, nil)` and
/// `AddArg(key, nil)`: `ARG A=x` then `ARG A` leaves `A` unset).
///
/// Expansions take from `budget` (see [`expand_within`]). Returns, by word index, each default
/// that [`expand_strict`] would refuse; its [`expand`] value is declared all the same.
pub fn declare_args(
    scope: &mut Vars,
    words: &[RawWord],
    escape: char,
    site: ArgSite<'_>,
    build_arg: &dyn Fn(&str) -> Option<String>,
    budget: &mut usize,
) -> Vec<(usize, ExpandError)> {
    let mut errors = Vec::new();
    let values: Vec<(&str, Option<String>)> = {
        let env: &Vars = match site {
            ArgSite::Global => scope,
            ArgSite::Stage { env, .. } => env,
        };
        words
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let (name, default) = arg_word(&w.text);
                let default = default.map(|d| {
                    let (value, error) = expand_within(d, env, escape, budget);
                    if let Some(e) = error {
                        errors.push((i, e));
                    }
                    value
                });
                (name, default)
            })
            .collect()
    };
    for (name, default) in values {
        let value = build_arg(name).or(default).or_else(|| match site {
            ArgSite::Global => None,
            ArgSite::Stage { globals, .. } => globals.get(name).cloned(),
        });
        match value {
            Some(v) => {
                scope.insert(name.to_string(), v);
            }
            None => {
                scope.remove(name);
            }
        }
    }
    errors
}

struct Expander<'a, 'b> {
    vars: &'a Vars,
    escape: char,
    chars: Vec<char>,
    /// For each `{` (by index in `chars`), the index of the `}` that closes it, found once so
    /// that no `${` rescans the rest of the word (an unterminated `${${${…` would be quadratic).
    close: Vec<Option<usize>>,
    /// Stop at the first error ([`expand_strict`] wants no value then).
    strict: bool,
    /// Bytes left to write.
    budget: &'b mut usize,
    /// The budget ran out: nothing more is written.
    spent: bool,
    /// The first reason a strict expansion fails.
    error: Option<ExpandError>,
}

impl<'a, 'b> Expander<'a, 'b> {
    fn new(
        word: &str,
        vars: &'a Vars,
        escape: char,
        strict: bool,
        budget: &'b mut usize,
    ) -> Expander<'a, 'b> {
        let chars: Vec<char> = word.chars().collect();
        let close = if word.contains('{') {
            match_braces(&chars, escape)
        } else {
            Vec::new()
        };
        Expander {
            vars,
            escape,
            chars,
            close,
            strict,
            budget,
            spent: false,
            error: None,
        }
    }

    fn run(mut self) -> (String, Option<ExpandError>) {
        let mut out = String::new();
        if *self.budget == 0 && !self.chars.is_empty() {
            // Spent by earlier expansions: this one could only fail.
            self.write(&mut out, " ");
            return (out, self.error);
        }
        self.expand_into(&mut out, 0, self.chars.len(), 0, true);
        (out, self.error)
    }

    /// Records the first error; its message is written only then.
    fn fail(&mut self, kind: ExpandErrorKind, message: impl FnOnce(&Self) -> String) {
        if self.error.is_none() {
            let message = message(self);
            self.error = Some(ExpandError { kind, message });
        }
    }

    /// Whether to stop: a strict expansion failed, or the budget is spent.
    fn stopped(&self) -> bool {
        (self.strict && self.error.is_some()) || self.spent
    }

    /// Appends `s` to `out` if the budget allows it; else records the error and empties the
    /// budget, so that everything stops.
    fn write(&mut self, out: &mut String, s: &str) {
        if self.spent {
            return;
        }
        if s.len() > *self.budget {
            *self.budget = 0;
            self.spent = true;
            self.fail(ExpandErrorKind::Limit, |_| {
                format!(
                    "the expansions of the Dockerfile together are longer than {MAX_EXPANSION_TOTAL} bytes"
                )
            });
            return;
        }
        *self.budget -= s.len();
        out.push_str(s);
    }

    fn write_char(&mut self, out: &mut String, c: char) {
        self.write(out, c.encode_utf8(&mut [0; 4]));
    }

    /// True (and the error recorded) when `out` is past the limit.
    fn over(&mut self, out: &str) -> bool {
        if out.len() > MAX_EXPANSION {
            self.fail(ExpandErrorKind::Limit, |_| {
                format!("the expansion is longer than {MAX_EXPANSION} bytes")
            });
            true
        } else {
            false
        }
    }

    /// Expands `chars[lo..hi]` into `out`.
    fn expand_into(&mut self, out: &mut String, lo: usize, hi: usize, depth: usize, top: bool) {
        let escape = self.escape;
        let mut i = lo;
        let mut quote: Option<char> = None;
        while i < hi {
            if self.over(out) || self.stopped() {
                return;
            }
            let c = self.chars[i];
            // A run of characters written as they are, written at once.
            let plain = |c: char| match quote {
                Some('\'') => c != '\'',
                _ => c != escape && c != '$' && c != '\'' && c != '"',
            };
            if plain(c) {
                let most = MAX_EXPANSION.saturating_sub(out.len()) + 1;
                let mut j = i + 1;
                while j < hi && j - i < most && plain(self.chars[j]) {
                    j += 1;
                }
                let run: String = self.chars[i..j].iter().collect();
                self.write(out, &run);
                i = j;
                continue;
            }
            match quote {
                Some('\'') => {
                    // The closing quote (the rest was written above).
                    quote = None;
                    i += 1;
                    continue;
                }
                Some(_) if c == '"' => {
                    quote = None;
                    i += 1;
                    continue;
                }
                None if top && (c == '\'' || c == '"') => {
                    quote = Some(c);
                    i += 1;
                    continue;
                }
                _ => {}
            }
            if c == escape {
                if i + 1 < hi {
                    let next = self.chars[i + 1];
                    // Inside double quotes only `$`, `"` and the escape itself are escapable.
                    if quote.is_some() && !matches!(next, '$' | '"') && next != escape {
                        self.write_char(out, c);
                    }
                    self.write_char(out, next);
                    i += 2;
                } else {
                    self.write_char(out, c);
                    i += 1;
                }
                continue;
            }
            if c == '$' {
                let (value, used) = self.dollar(i, hi, depth);
                match value {
                    Some(v) => {
                        self.write(out, &v);
                        i += used;
                    }
                    None => {
                        self.write_char(out, c);
                        i += 1;
                    }
                }
                continue;
            }
            self.write_char(out, c);
            i += 1;
        }
        if let Some(q) = quote {
            self.fail(ExpandErrorKind::Syntax, |e| {
                format!("unterminated {q} quote in `{}`", shorten(&e.chars[lo..hi]))
            });
        }
        self.over(out);
    }

    /// Expands the `$…` at `chars[at]` (within `..hi`); returns the value and how many chars it
    /// used, or `None` if this `$` is literal.
    fn dollar(&mut self, at: usize, hi: usize, depth: usize) -> (Option<Cow<'a, str>>, usize) {
        let is_name_start = |c: char| c.is_ascii_alphabetic() || c == '_';
        let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
        let vars = self.vars;
        let next = (at + 1 < hi).then(|| self.chars[at + 1]);
        match next {
            // `$NAME`, and `$1` (a positional parameter, empty in a Dockerfile: Docker reads the
            // digits as its name).
            Some(c) if is_name_start(c) || c.is_ascii_digit() => {
                let digits = c.is_ascii_digit();
                let mut j = at + 1;
                while j < hi
                    && if digits {
                        self.chars[j].is_ascii_digit()
                    } else {
                        is_name(self.chars[j])
                    }
                {
                    j += 1;
                }
                let name: String = self.chars[at + 1..j].iter().collect();
                let value = vars
                    .get(&name)
                    .map_or(Cow::Borrowed(""), |v| Cow::Borrowed(v));
                (Some(value), j - at)
            }
            Some('{') => {
                // The matching `}` (nesting counted), found once by `match_braces`.
                let Some(close) = self
                    .close
                    .get(at + 1)
                    .copied()
                    .flatten()
                    .filter(|&c| c < hi)
                else {
                    self.fail(ExpandErrorKind::Syntax, |e| {
                        format!("unterminated `${{` in `{}`", shorten(&e.chars[at..hi]))
                    });
                    return (None, 0);
                };
                let inner = at + 2;
                let k = self.chars[inner..close]
                    .iter()
                    .take_while(|&&c| is_name(c))
                    .count();
                let name: String = self.chars[inner..inner + k].iter().collect();
                let rest = inner + k;
                let bad = |e: &Self| format!("`${{{}}}`", shorten(&e.chars[inner..close]));
                if name.is_empty() {
                    self.fail(ExpandErrorKind::Syntax, |e| {
                        format!("bad substitution {}", bad(e))
                    });
                }
                let value: Option<&'a String> = vars.get(&name);
                // The operator and its word; the word is expanded (and checked) even when its
                // value is not used, as Docker does.
                let at_rest = |n: usize| (rest + n < close).then(|| self.chars[rest + n]);
                let (op, op_len) = match (at_rest(0), at_rest(1)) {
                    (None, _) => ("", 0),
                    (Some(':'), Some('-')) => (":-", 2),
                    (Some(':'), Some('+')) => (":+", 2),
                    (Some(':'), Some('?')) => (":?", 2),
                    (Some('-'), _) => ("-", 1),
                    (Some('+'), _) => ("+", 1),
                    (Some('?'), _) => ("?", 1),
                    _ => {
                        // `${#x}`, `${x%y}` and other forms: kept literally.
                        self.fail(ExpandErrorKind::Syntax, |e| {
                            format!("unsupported substitution {}", bad(e))
                        });
                        return (None, 0);
                    }
                };
                let sub = if op.is_empty() {
                    String::new()
                } else if depth >= MAX_DEPTH {
                    self.fail(ExpandErrorKind::Limit, |_| {
                        format!("`${{…}}` nests deeper than {MAX_DEPTH} levels")
                    });
                    String::new()
                } else {
                    let mut s = String::new();
                    self.expand_into(&mut s, rest + op_len, close, depth + 1, false);
                    s
                };
                let set_non_empty = value.is_some_and(|v| !v.is_empty());
                let value_or_empty = || Cow::Borrowed(value.map_or("", String::as_str));
                let result: Cow<'a, str> = match op {
                    "" => value_or_empty(),
                    ":-" if set_non_empty => value_or_empty(),
                    ":-" => Cow::Owned(sub),
                    ":+" if set_non_empty => Cow::Owned(sub),
                    ":+" => Cow::Borrowed(""),
                    "-" if value.is_some() => value_or_empty(),
                    "-" => Cow::Owned(sub),
                    "+" if value.is_some() => Cow::Owned(sub),
                    "+" => Cow::Borrowed(""),
                    _ => {
                        // `?` and `:?`: Docker fails the build when the variable is unset; the
                        // onboard judge does not read them.
                        self.fail(ExpandErrorKind::Syntax, |e| {
                            format!("unsupported substitution {}", bad(e))
                        });
                        value_or_empty()
                    }
                };
                (Some(result), close + 1 - at)
            }
            _ => (None, 0),
        }
    }
}

/// For each `{` of `chars`, the index of the `}` that closes it, nesting counted and the
/// character after an escape skipped (what a scan from that `{` finds), in one pass.
fn match_braces(chars: &[char], escape: char) -> Vec<Option<usize>> {
    let mut close = vec![None; chars.len()];
    let mut open: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '{' => open.push(i),
            '}' => {
                if let Some(o) = open.pop() {
                    close[o] = Some(i);
                }
            }
            c if c == escape => i += 1,
            _ => {}
        }
        i += 1;
    }
    close
}

/// The first 80 characters, for messages.
fn shorten(chars: &[char]) -> String {
    let mut s: String = chars.iter().take(80).collect();
    if chars.len() > 80 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        [("A", "1"), ("EMPTY", ""), ("P", "/app")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expands_like_docker() {
        let cases = [
            ("$A", "1"),
            ("${A}x", "1x"),
            ("${NOPE:-d}", "d"),
            ("${EMPTY:-d}", "d"),
            ("${EMPTY-d}", ""),
            ("${A:+yes}", "yes"),
            ("${NOPE:+yes}", ""),
            ("${NOPE:-${P}/bin}", "/app/bin"),
            ("'$A'", "$A"),
            ("\"$A b\"", "1 b"),
            ("\\$A", "$A"),
            ("$", "$"),
            ("${unterminated", "${unterminated"),
            ("a$1", "a"),
            ("$12b", "b"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &vars(), '\\'), want, "{input}");
        }
    }

    #[test]
    fn strict_refuses_what_it_cannot_read() {
        let ok = |w: &str| expand_strict(w, &vars(), '\\').unwrap();
        assert_eq!(ok("${A:-x}${NOPE-y}${A+z}"), "1yz");
        assert_eq!(ok("\"a b\"'c'"), "a bc");
        for (bad, kind) in [
            ("${A", ExpandErrorKind::Syntax),
            ("${}", ExpandErrorKind::Syntax),
            ("${:-x}", ExpandErrorKind::Syntax),
            ("${A%x}", ExpandErrorKind::Syntax),
            ("${#A}", ExpandErrorKind::Syntax),
            ("${A:?unset}", ExpandErrorKind::Syntax),
            ("${A?}", ExpandErrorKind::Syntax),
            ("\"open", ExpandErrorKind::Syntax),
            // Checked even where its value is not used, as Docker does.
            ("${A:-${B%x}}", ExpandErrorKind::Syntax),
        ] {
            let e = expand_strict(bad, &vars(), '\\').unwrap_err();
            assert_eq!(e.kind(), kind, "{bad}: {e}");
            // The lossy expansion still gives a value.
            let _ = expand(bad, &vars(), '\\');
        }
    }

    #[test]
    fn limits_hold_at_their_value() {
        let nested = |n: usize| "${X:-".repeat(n) + "v" + &"}".repeat(n);
        assert_eq!(
            expand_strict(&nested(MAX_DEPTH), &Vars::new(), '\\').unwrap(),
            "v"
        );
        let e = expand_strict(&nested(MAX_DEPTH + 1), &Vars::new(), '\\').unwrap_err();
        assert_eq!(e.kind(), ExpandErrorKind::Limit);
        let half: Vars = [("H".to_string(), "x".repeat(MAX_EXPANSION / 2))].into();
        assert_eq!(
            expand_strict("$H$H", &half, '\\').unwrap().len(),
            MAX_EXPANSION
        );
        let e = expand_strict("$H$H.", &half, '\\').unwrap_err();
        assert_eq!(e.kind(), ExpandErrorKind::Limit);
        assert!(expand("$H$H$H", &half, '\\').len() <= MAX_EXPANSION + MAX_EXPANSION / 2);
    }

    #[test]
    fn splits_respecting_quotes() {
        let w = split_words(r#"a "b c" d\ e"#, 10, '\\');
        let texts: Vec<_> = w.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(texts, ["a", "\"b c\"", "d\\ e"]);
        assert_eq!((w[1].start, w[1].end), (12, 17));
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = "${X:-".repeat(100) + &"}".repeat(100);
        let _ = expand(&deep, &Vars::new(), '\\');
    }
}
