//! The build context: where its files come from ([`ContextSource`]: a directory, or anything
//! the ground stores), an index of what is sent to the builder (`.dockerignore` applied), and
//! Go `filepath.Match` globbing as the classic builder does it.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// Deepest directory level walked.
const MAX_DEPTH: usize = 64;
/// Most entries indexed.
const MAX_ENTRIES: usize = 1_000_000;

/// The files of a build context. Paths are relative, `/`-separated, without `./`.
pub trait ContextSource {
    /// Every entry (files, directories, symlinks) under the root.
    fn entries(&self) -> io::Result<Vec<Entry>>;
    /// Reads up to `buf.len()` bytes of the file at `path` from `offset`; returns how many.
    fn read_at(&self, path: &str, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
}

/// One entry of a context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative `/`-separated path.
    pub path: String,
    /// File, directory or symlink.
    pub kind: EntryKind,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Unix permission bits.
    pub mode: u32,
}

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (copied as a link, never followed).
    Symlink,
}

/// A context on disk.
#[derive(Debug, Clone)]
pub struct DirContext {
    root: PathBuf,
}

impl DirContext {
    /// A context rooted at `root`.
    pub fn new(root: &Path) -> DirContext {
        DirContext {
            root: root.to_path_buf(),
        }
    }
}

impl ContextSource for DirContext {
    fn entries(&self) -> io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        walk(&self.root, "", 0, &mut out)?;
        Ok(out)
    }

    fn read_at(&self, path: &str, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let file = std::fs::File::open(self.root.join(path))?;
        let mut done = 0;
        while done < buf.len() {
            let at = offset
                .checked_add(done as u64)
                .ok_or(io::ErrorKind::UnexpectedEof)?;
            let n = std::os::unix::fs::FileExt::read_at(&file, &mut buf[done..], at)?;
            if n == 0 {
                break;
            }
            done += n;
        }
        Ok(done)
    }
}

fn walk(dir: &Path, prefix: &str, depth: usize, out: &mut Vec<Entry>) -> io::Result<()> {
    if depth > MAX_DEPTH || out.len() >= MAX_ENTRIES {
        return Ok(());
    }
    let mut names: Vec<_> = std::fs::read_dir(dir)?.filter_map(Result::ok).collect();
    names.sort_by_key(|e| e.file_name());
    for e in names {
        if out.len() >= MAX_ENTRIES {
            break;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let Ok(meta) = e.path().symlink_metadata() else {
            continue;
        };
        let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777;
        let ft = meta.file_type();
        if ft.is_dir() {
            out.push(Entry {
                path: rel.clone(),
                kind: EntryKind::Dir,
                size: 0,
                mode,
            });
            // An unreadable subdirectory is indexed as empty; the builder would fail on it too.
            let _ = walk(&e.path(), &rel, depth + 1, out);
        } else if ft.is_symlink() {
            out.push(Entry {
                path: rel,
                kind: EntryKind::Symlink,
                size: 0,
                mode,
            });
        } else if ft.is_file() {
            out.push(Entry {
                path: rel,
                kind: EntryKind::File,
                size: meta.len(),
                mode,
            });
        }
    }
    Ok(())
}

/// A context held in memory, for tests and for callers that have the files at hand.
#[derive(Debug, Clone, Default)]
pub struct MemContext {
    files: BTreeMap<String, (Vec<u8>, u32)>,
}

impl MemContext {
    /// An empty context.
    pub fn new() -> MemContext {
        MemContext::default()
    }

    /// Adds a file (mode 0644).
    pub fn add(&mut self, path: &str, data: &[u8]) {
        self.files.insert(
            path.trim_start_matches("./").to_string(),
            (data.to_vec(), 0o644),
        );
    }
}

impl ContextSource for MemContext {
    fn entries(&self) -> io::Result<Vec<Entry>> {
        let mut dirs = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for (path, (data, mode)) in &self.files {
            let mut p = path.as_str();
            while let Some((parent, _)) = p.rsplit_once('/') {
                dirs.insert(parent.to_string());
                p = parent;
            }
            out.push(Entry {
                path: path.clone(),
                kind: EntryKind::File,
                size: data.len() as u64,
                mode: *mode,
            });
        }
        out.extend(dirs.into_iter().map(|d| Entry {
            path: d,
            kind: EntryKind::Dir,
            size: 0,
            mode: 0o755,
        }));
        Ok(out)
    }

    fn read_at(&self, path: &str, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let (data, _) = self.files.get(path).ok_or(io::ErrorKind::NotFound)?;
        let start = usize::try_from(offset).map_or(data.len(), |o| o.min(data.len()));
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }
}

/// The indexed context: every entry, and which ones `.dockerignore` keeps out.
pub(crate) struct Index {
    entries: BTreeMap<String, (Entry, bool)>,
}

impl Index {
    /// Indexes `entries`; `ignore` is the `.dockerignore` text. The Dockerfile and
    /// `.dockerignore` are always sent, as the Docker CLI does.
    pub(crate) fn new(entries: Vec<Entry>, ignore: Option<&str>, dockerfile: &str) -> Index {
        let patterns = ignore.map(parse_dockerignore).unwrap_or_default();
        let mut map = BTreeMap::new();
        for e in entries {
            let keep_always = e.path == dockerfile || e.path == ".dockerignore";
            let ignored = !keep_always && is_ignored(&patterns, &e.path);
            map.insert(e.path.clone(), (e, ignored));
        }
        Index { entries: map }
    }

    /// The entry at a cleaned relative path (`""` is the root), and whether it is ignored.
    pub(crate) fn get(&self, path: &str) -> Option<(&Entry, bool)> {
        self.entries.get(path).map(|(e, i)| (e, *i))
    }

    /// Entries that are sent (not ignored).
    pub(crate) fn sent(&self) -> impl Iterator<Item = &Entry> {
        self.entries
            .values()
            .filter(|(_, ignored)| !ignored)
            .map(|(e, _)| e)
    }

    /// Every entry, with whether it is ignored.
    pub(crate) fn all(&self) -> impl Iterator<Item = (&Entry, bool)> {
        self.entries.values().map(|(e, i)| (e, *i))
    }

    /// Sent files under a directory (`""` for all).
    pub(crate) fn files_under<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        self.entries
            .range(prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .filter(|(_, (e, ignored))| !ignored && e.kind != EntryKind::Dir)
            .map(|(_, (e, _))| e)
    }

    /// Total number and bytes of files, and bytes sent.
    pub(crate) fn sizes(&self) -> (u64, u64, u64) {
        let mut n = 0;
        let mut all = 0;
        let mut sent = 0;
        for (e, ignored) in self.entries.values() {
            if e.kind == EntryKind::File {
                n += 1;
                all += e.size;
                if !ignored {
                    sent += e.size;
                }
            }
        }
        (n, all, sent)
    }
}

/// A `.dockerignore` line.
#[derive(Debug, Clone)]
struct IgnorePattern {
    pattern: String,
    exclusion: bool,
}

fn parse_dockerignore(text: &str) -> Vec<IgnorePattern> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (exclusion, p) = match line.strip_prefix('!') {
            Some(rest) => (true, rest.trim()),
            None => (false, line),
        };
        let cleaned = clean(p);
        let cleaned = cleaned.trim_start_matches('/').to_string();
        if cleaned.is_empty() || cleaned == "." {
            continue;
        }
        out.push(IgnorePattern {
            pattern: cleaned,
            exclusion,
        });
    }
    out
}

/// Docker's `MatchesOrParentMatches`: the last pattern matching the path or one of its parent
/// directories decides.
fn is_ignored(patterns: &[IgnorePattern], path: &str) -> bool {
    let mut ignored = false;
    for p in patterns {
        let mut hit = glob_match(&p.pattern, path, true);
        if !hit {
            let mut parent = path;
            while let Some((up, _)) = parent.rsplit_once('/') {
                if glob_match(&p.pattern, up, true) {
                    hit = true;
                    break;
                }
                parent = up;
            }
        }
        if hit {
            ignored = !p.exclusion;
        }
    }
    ignored
}

/// Lexical path cleaning as Go's `path.Clean` (keeps a leading `/`; `..` above a relative root
/// is kept).
pub(crate) fn clean(path: &str) -> String {
    let abs = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !abs {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    if abs {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_string()
    } else {
        joined
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Lit(char),
    Any,
    /// `*`: any run without `/`.
    Star,
    /// `**`: any run, `/` included.
    DoubleStar,
    /// `**/`: nothing, or any run ending in `/`.
    DirsOpt,
    Class(Vec<(char, char)>, bool),
}

fn tokens(pattern: &str, double_star: bool) -> Option<Vec<Tok>> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' => {
                if double_star && chars.get(i + 1) == Some(&'*') {
                    if chars.get(i + 2) == Some(&'/') {
                        out.push(Tok::DirsOpt);
                        i += 3;
                    } else {
                        out.push(Tok::DoubleStar);
                        i += 2;
                    }
                } else {
                    out.push(Tok::Star);
                    i += 1;
                }
            }
            '?' => {
                out.push(Tok::Any);
                i += 1;
            }
            '\\' => {
                out.push(Tok::Lit(*chars.get(i + 1)?));
                i += 2;
            }
            '[' => {
                i += 1;
                let negated = matches!(chars.get(i), Some('^') | Some('!'));
                if negated {
                    i += 1;
                }
                let mut ranges = Vec::new();
                let mut first = true;
                loop {
                    let c = *chars.get(i)?;
                    if c == ']' && !first {
                        i += 1;
                        break;
                    }
                    first = false;
                    let lo = if c == '\\' {
                        i += 1;
                        *chars.get(i)?
                    } else {
                        c
                    };
                    i += 1;
                    let hi = if chars.get(i) == Some(&'-')
                        && chars.get(i + 1).is_some_and(|c| *c != ']')
                    {
                        i += 1;
                        let h = *chars.get(i)?;
                        i += 1;
                        h
                    } else {
                        lo
                    };
                    ranges.push((lo, hi));
                }
                out.push(Tok::Class(ranges, negated));
            }
            c => {
                out.push(Tok::Lit(c));
                i += 1;
            }
        }
    }
    Some(out)
}

/// Go `filepath.Match` (`*` and `?` never match `/`), plus `**` when `double_star` (the
/// `.dockerignore` extension). A malformed pattern matches nothing.
pub(crate) fn glob_match(pattern: &str, name: &str, double_star: bool) -> bool {
    let Some(toks) = tokens(pattern, double_star) else {
        return false;
    };
    let name: Vec<char> = name.chars().collect();
    let (p, n) = (toks.len(), name.len());
    // dp[i][j]: toks[i..] matches name[j..].
    let mut dp = vec![vec![false; n + 1]; p + 1];
    dp[p][n] = true;
    for i in (0..p).rev() {
        for j in (0..=n).rev() {
            let c = name.get(j).copied();
            dp[i][j] = match &toks[i] {
                Tok::Lit(l) => c == Some(*l) && dp[i + 1][j + 1],
                Tok::Any => c.is_some_and(|c| c != '/') && dp[i + 1][j + 1],
                Tok::Star => dp[i + 1][j] || (c.is_some_and(|c| c != '/') && dp[i][j + 1]),
                Tok::DoubleStar => dp[i + 1][j] || (c.is_some() && dp[i][j + 1]),
                Tok::DirsOpt => dp[i + 1][j] || (j..n).any(|k| name[k] == '/' && dp[i + 1][k + 1]),
                Tok::Class(ranges, negated) => {
                    c.is_some_and(|c| {
                        c != '/' && ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != *negated
                    }) && dp[i + 1][j + 1]
                }
            };
        }
    }
    dp[0][0]
}

/// A file of the context read by offset (for the ELF reader).
pub(crate) struct ContextFile<'a> {
    pub(crate) source: &'a dyn ContextSource,
    pub(crate) path: &'a str,
    pub(crate) len: u64,
}

impl crate::elf::ReadAt for ContextFile<'_> {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|end| end > self.len)
        {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let n = self.source.read_at(self.path, offset, buf)?;
        if n < buf.len() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
    fn len(&self) -> u64 {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_filepath_match() {
        let cases = [
            ("*.txt", "a.txt", true),
            ("*.txt", "d/a.txt", false),
            ("d/*", "d/a", true),
            ("a?c", "abc", true),
            ("[a-c]x", "bx", true),
            ("[^a-c]x", "bx", false),
            ("a\\*", "a*", true),
            ("[", "[", false),
            ("**/*.log", "a/b/c.log", true),
            ("**/*.log", "c.log", true),
            ("secrets/**", "secrets/a/b", true),
        ];
        for (p, n, want) in cases {
            assert_eq!(glob_match(p, n, true), want, "{p} {n}");
        }
        assert!(!glob_match("**/*.log", "a/b/c.log", false));
    }

    #[test]
    fn dockerignore_semantics() {
        let pats = parse_dockerignore("# comment\n/secrets\n*.log\n!keep.log\nbuild/**/*.o\n");
        assert!(is_ignored(&pats, "secrets"));
        assert!(is_ignored(&pats, "secrets/key.pem"));
        assert!(is_ignored(&pats, "x.log"));
        assert!(!is_ignored(&pats, "keep.log"));
        assert!(!is_ignored(&pats, "d/x.log"));
        assert!(is_ignored(&pats, "build/a/b/x.o"));
        assert!(!is_ignored(&pats, "src/main.rs"));
    }

    #[test]
    fn reads_at_the_largest_offsets_do_not_overflow() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"0123456789").unwrap();
        let mut m = MemContext::new();
        m.add("f", b"0123456789");
        let sources: [&dyn ContextSource; 2] = [&DirContext::new(dir.path()), &m];
        for src in sources {
            for offset in [u64::MAX, u64::MAX - 2, 1 << 63, (1 << 63) - 1, 10, 8] {
                let mut buf = [0u8; 4];
                let n = src.read_at("f", offset, &mut buf).unwrap_or(0);
                assert_eq!(&buf[..n], &b"89"[..n.min(2)], "{offset}");
            }
        }
    }

    #[test]
    fn cleaning() {
        assert_eq!(clean("./a/../b/"), "b");
        assert_eq!(clean("../x"), "../x");
        assert_eq!(clean("/../x"), "/x");
        assert_eq!(clean("a/../../x"), "../x");
        assert_eq!(clean("."), ".");
    }

    #[test]
    fn the_index_applies_dockerignore_but_keeps_the_dockerfile() {
        let mut m = MemContext::new();
        m.add("Dockerfile", b"FROM x");
        m.add("src/a.c", b"int main;");
        m.add("secret.txt", b"x");
        let idx = Index::new(m.entries().unwrap(), Some("*\n!src\n"), "Dockerfile");
        assert!(!idx.get("Dockerfile").unwrap().1);
        assert!(idx.get("secret.txt").unwrap().1);
        assert!(!idx.get("src/a.c").unwrap().1);
        assert_eq!(idx.files_under("src").count(), 1);
    }
}
