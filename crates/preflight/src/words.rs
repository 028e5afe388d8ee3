//! Word splitting and variable expansion with the Dockerfile's rules (quotes, the escape
//! character, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:+alt}`, `${VAR-x}`, `${VAR+x}`,
//! `${VAR:?msg}`).
//!
//! Bounded: expansion output is capped at [`MAX_EXPANSION`] bytes; nesting at [`MAX_DEPTH`].

use std::collections::BTreeMap;

/// Variables in scope: ARGs and ENVs, in declaration order of overriding.
pub(crate) type Vars = BTreeMap<String, String>;

/// Output cap of one expansion, so a crafted Dockerfile cannot blow up memory.
pub(crate) const MAX_EXPANSION: usize = 1 << 20;
/// Nesting cap of `${a:-${b:-…}}`.
pub(crate) const MAX_DEPTH: usize = 16;

/// A whitespace-separated word of a logical line, with its byte range in that line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawWord {
    /// The text as written (quotes and escapes still in).
    pub(crate) text: String,
    /// Byte offset of the first character in the logical line.
    pub(crate) start: usize,
    /// Byte offset one past the last character.
    pub(crate) end: usize,
}

/// Splits `text` (starting at byte `base` of its logical line) on unquoted whitespace.
pub(crate) fn split_words(text: &str, base: usize, escape: char) -> Vec<RawWord> {
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
/// variable is empty, a malformed `${` is kept literally.
pub(crate) fn expand(word: &str, vars: &Vars, escape: char) -> String {
    let mut out = String::new();
    expand_into(&mut out, word, vars, escape, 0, true);
    out
}

fn expand_into(out: &mut String, word: &str, vars: &Vars, escape: char, depth: usize, top: bool) {
    let chars: Vec<char> = word.chars().collect();
    let mut i = 0;
    let mut quote: Option<char> = None;
    while i < chars.len() {
        if out.len() > MAX_EXPANSION {
            return;
        }
        let c = chars[i];
        match quote {
            Some('\'') => {
                if c == '\'' {
                    quote = None;
                } else {
                    out.push(c);
                }
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
            if let Some(&next) = chars.get(i + 1) {
                // Inside double quotes only `$`, `"` and the escape itself are escapable.
                if quote.is_some() && !matches!(next, '$' | '"') && next != escape {
                    out.push(c);
                }
                out.push(next);
                i += 2;
            } else {
                out.push(c);
                i += 1;
            }
            continue;
        }
        if c == '$' {
            let (value, used) = expand_dollar(&chars[i..], vars, escape, depth);
            match value {
                Some(v) => {
                    out.push_str(&v);
                    i += used;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
            continue;
        }
        out.push(c);
        i += 1;
    }
}

/// Expands the `$…` at the start of `chars`; returns the value and how many chars it used, or
/// `None` if this `$` is literal.
fn expand_dollar(
    chars: &[char],
    vars: &Vars,
    escape: char,
    depth: usize,
) -> (Option<String>, usize) {
    let is_name_start = |c: char| c.is_ascii_alphabetic() || c == '_';
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    match chars.get(1) {
        Some(&c) if is_name_start(c) => {
            let mut j = 1;
            while j < chars.len() && is_name(chars[j]) {
                j += 1;
            }
            let name: String = chars[1..j].iter().collect();
            (Some(vars.get(&name).cloned().unwrap_or_default()), j)
        }
        Some('{') => {
            // Find the matching `}` (nesting counted).
            let mut level = 0usize;
            let mut j = 1;
            let mut close = None;
            while j < chars.len() {
                match chars[j] {
                    '{' => level += 1,
                    '}' => {
                        level -= 1;
                        if level == 0 {
                            close = Some(j);
                            break;
                        }
                    }
                    c if c == escape => j += 1,
                    _ => {}
                }
                j += 1;
            }
            let Some(close) = close else { return (None, 0) };
            let inner: String = chars[2..close].iter().collect();
            let mut k = 0;
            let inner_chars: Vec<char> = inner.chars().collect();
            while k < inner_chars.len() && is_name(inner_chars[k]) {
                k += 1;
            }
            let name: String = inner_chars[..k].iter().collect();
            let rest: String = inner_chars[k..].iter().collect();
            let value = vars.get(&name);
            let sub = |word: &str| {
                if depth >= MAX_DEPTH {
                    return String::new();
                }
                let mut s = String::new();
                expand_into(&mut s, word, vars, escape, depth + 1, false);
                s
            };
            let result = if rest.is_empty() {
                value.cloned().unwrap_or_default()
            } else if let Some(w) = rest.strip_prefix(":-") {
                match value {
                    Some(v) if !v.is_empty() => v.clone(),
                    _ => sub(w),
                }
            } else if let Some(w) = rest.strip_prefix(":+") {
                match value {
                    Some(v) if !v.is_empty() => sub(w),
                    _ => String::new(),
                }
            } else if let Some(w) = rest.strip_prefix('-') {
                match value {
                    Some(v) => v.clone(),
                    None => sub(w),
                }
            } else if let Some(w) = rest.strip_prefix('+') {
                if value.is_some() {
                    sub(w)
                } else {
                    String::new()
                }
            } else if rest.starts_with(":?") || rest.starts_with('?') {
                value.cloned().unwrap_or_default()
            } else {
                // `${#x}`, `${x%y}` and other shell forms Docker may not know: keep literally.
                return (None, 0);
            };
            (Some(result), close + 1)
        }
        _ => (None, 0),
    }
}

/// Does the word contain a glob metacharacter outside quotes and escapes (Go's
/// `filepath.Match` syntax)?
pub(crate) fn has_glob(word: &str) -> bool {
    word.contains(['*', '?', '['])
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
            ("a$1", "a$1"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &vars(), '\\'), want, "{input}");
        }
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
