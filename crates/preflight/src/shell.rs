//! Finds commands that need the network in a shell script (a `RUN` line, a heredoc body, an
//! `sh -c` argument).
//!
//! A small tokenizer splits the script into simple commands at `&&`, `||`, `;`, `|`, `&`,
//! newlines, parentheses and command substitutions; each command's words are unquoted and
//! expanded, wrappers (`sudo`, `env`, `xargs`, `timeout`, …) and assignments are skipped, and
//! the program name is matched against a table of package managers, downloaders and build
//! tools. `echo apt-get install` is an `echo`, not an install.

use dockerfile::{Vars, expand};

/// Deepest `sh -c "sh -c '…'"` nesting followed.
const MAX_NESTING: usize = 8;
/// Most words looked at in one script.
const MAX_WORDS: usize = 100_000;

/// What kind of network use a command has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NetKind {
    /// A package manager installing or refreshing packages (OD201).
    Install,
    /// A download of a URL (OD202).
    Download,
    /// A build tool that will fetch unvendored dependencies (OD204).
    Fetch,
}

/// One command that needs the network, with its byte range in the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NetUse {
    pub(crate) kind: NetKind,
    /// The command as the user would recognise it, e.g. `apt-get install`.
    pub(crate) what: String,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// What the build context says about dependencies that build tools would fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Hints {
    /// A `Cargo.toml` with dependencies and no vendored sources (`.cargo/config.toml` with a
    /// `vendored-sources` replacement or a `vendor/` directory).
    pub(crate) cargo_fetches: bool,
    /// A non-empty `go.sum` and no `vendor/modules.txt`.
    pub(crate) go_fetches: bool,
}

#[derive(Debug, Clone)]
struct Word {
    raw: String,
    start: usize,
    end: usize,
}

/// Finds network uses in `script`. Positions are byte offsets into `script`.
pub(crate) fn network_uses(script: &str, vars: &Vars, hints: Hints) -> Vec<NetUse> {
    let mut out = Vec::new();
    scan(script, 0, vars, hints, 0, &mut out);
    out
}

/// Finds network uses in an exec-form argv; every finding spans `span`.
pub(crate) fn network_uses_argv(
    argv: &[String],
    span: (usize, usize),
    vars: &Vars,
    hints: Hints,
) -> Vec<NetUse> {
    let mut out = Vec::new();
    let words: Vec<(String, usize, usize)> =
        argv.iter().map(|a| (a.clone(), span.0, span.1)).collect();
    command(&words, vars, hints, 0, &mut out);
    for u in &mut out {
        u.start = span.0;
        u.end = span.1;
    }
    out
}

fn scan(script: &str, base: usize, vars: &Vars, hints: Hints, depth: usize, out: &mut Vec<NetUse>) {
    if depth > MAX_NESTING {
        return;
    }
    let mut cmd: Vec<Word> = Vec::new();
    let mut subs: Vec<(usize, usize)> = Vec::new();
    let flush = |cmd: &mut Vec<Word>, out: &mut Vec<NetUse>| {
        if !cmd.is_empty() {
            let words: Vec<(String, usize, usize)> = cmd
                .iter()
                .map(|w| (expand(&w.raw, vars, '\\'), base + w.start, base + w.end))
                .collect();
            command(&words, vars, hints, depth, out);
            cmd.clear();
        }
    };
    let b = script.as_bytes();
    let mut i = 0;
    let mut count = 0;
    let mut skip_next_word = false;
    while i < b.len() {
        count += 1;
        if count > MAX_WORDS {
            break;
        }
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\r' => {
                i += 1;
            }
            b'\n' | b';' | b'&' | b'|' | b'(' | b')' => {
                flush(&mut cmd, out);
                i += 1;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'>' | b'<' => {
                // A redirection: its target is not an argument. `<<` starts a here-document in
                // the shell; its body lines are data, so skip to the delimiter's line end.
                i += 1;
                while i < b.len() && (b[i] == b'>' || b[i] == b'<' || b[i] == b'&' || b[i] == b'|')
                {
                    i += 1;
                }
                skip_next_word = true;
            }
            b'`' => {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && b[j] != b'`' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                let end = j.min(b.len());
                subs.push((start, end));
                i = (end + 1).min(b.len()).max(i + 1);
            }
            _ => {
                // A word: up to unquoted whitespace or an operator.
                let start = i;
                let mut j = i;
                while j < b.len() {
                    match b[j] {
                        b' ' | b'\t' | b'\r' | b'\n' | b';' | b'&' | b'|' | b'(' | b')' | b'<'
                        | b'>' | b'`' => break,
                        b'\\' => j += 2,
                        b'\'' => {
                            j += 1;
                            while j < b.len() && b[j] != b'\'' {
                                j += 1;
                            }
                            j += 1;
                        }
                        b'"' => {
                            j += 1;
                            while j < b.len() && b[j] != b'"' {
                                if b[j] == b'\\' {
                                    j += 1;
                                } else if b[j] == b'$' && b.get(j + 1) == Some(&b'(') {
                                    let (s, e) = paren_span(b, j + 2);
                                    subs.push((s, e));
                                    j = e;
                                }
                                j += 1;
                            }
                            j += 1;
                        }
                        b'$' if b.get(j + 1) == Some(&b'(') => {
                            let (s, e) = paren_span(b, j + 2);
                            subs.push((s, e));
                            j = e + 1;
                        }
                        _ => j += 1,
                    }
                }
                let j = j.min(b.len());
                let j = if j == start { start + 1 } else { j };
                let j = floor_boundary(script, j);
                let start_b = floor_boundary(script, start);
                if j <= start_b {
                    i = start + 1;
                    continue;
                }
                if skip_next_word {
                    skip_next_word = false;
                } else {
                    cmd.push(Word {
                        raw: script[start_b..j].to_string(),
                        start: start_b,
                        end: j,
                    });
                }
                i = j;
            }
        }
    }
    flush(&mut cmd, out);
    for (s, e) in subs {
        let s = floor_boundary(script, s.min(script.len()));
        let e = floor_boundary(script, e.min(script.len()));
        if s < e {
            scan(&script[s..e], base + s, vars, hints, depth + 1, out);
        }
    }
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// `(start, end)` of the text inside `$( … )`, `start` just after the `(`.
fn paren_span(b: &[u8], start: usize) -> (usize, usize) {
    let mut level = 1usize;
    let mut j = start;
    while j < b.len() {
        match b[j] {
            b'(' => level += 1,
            b')' => {
                level -= 1;
                if level == 0 {
                    return (start, j);
                }
            }
            b'\\' => j += 1,
            _ => {}
        }
        j += 1;
    }
    (start, b.len())
}

fn basename(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

fn is_url(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    [
        "http://", "https://", "ftp://", "ftps://", "sftp://", "scp://", "git://", "ssh://",
        "rsync://", "s3://",
    ]
    .iter()
    .any(|p| lower.contains(p))
        || (lower.starts_with("git@") && lower.contains(':'))
}

/// One simple command: `(expanded word, start, end)`.
fn command(
    words: &[(String, usize, usize)],
    vars: &Vars,
    hints: Hints,
    depth: usize,
    out: &mut Vec<NetUse>,
) {
    let mut i = 0;
    let mut env: Vec<(String, String)> = Vec::new();
    // Skip assignments, keywords and wrappers.
    loop {
        let Some((w, _, _)) = words.get(i) else {
            return;
        };
        let name = basename(w);
        if let Some((k, v)) = w.split_once('=')
            && !k.is_empty()
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            env.push((k.to_string(), v.to_string()));
            i += 1;
            continue;
        }
        match name {
            "if" | "then" | "else" | "elif" | "do" | "while" | "until" | "!" | "{" | "}"
            | "time" | "nohup" | "command" | "exec" | "builtin" | "eval" => {
                i += 1;
            }
            "sudo" | "doas" | "nice" | "ionice" | "stdbuf" | "xargs" | "env" | "chronic"
            | "setpriv" => {
                i += 1;
                while let Some((w, _, _)) = words.get(i) {
                    if w.starts_with('-') || (name == "env" && w.contains('=')) {
                        if let Some((k, v)) = w.split_once('=')
                            && name == "env"
                        {
                            env.push((k.to_string(), v.to_string()));
                        }
                        i += 1;
                    } else {
                        break;
                    }
                }
            }
            "timeout" => {
                i += 1;
                while let Some((w, _, _)) = words.get(i) {
                    if w.starts_with('-') {
                        i += 1;
                    } else {
                        break;
                    }
                }
                i += 1; // the duration
            }
            _ => break,
        }
    }
    let Some((prog_word, start, _)) = words.get(i) else {
        return;
    };
    let prog = basename(prog_word);
    let args: Vec<&str> = words[i + 1..].iter().map(|(w, _, _)| w.as_str()).collect();
    let end = words.last().map_or(*start, |w| w.2);
    let start = *start;
    let env_has = |key: &str, pred: &dyn Fn(&str) -> bool| {
        env.iter().any(|(k, v)| k == key && pred(v)) || vars.get(key).is_some_and(|v| pred(v))
    };
    let has_flag = |names: &[&str]| {
        args.iter().any(|a| {
            names
                .iter()
                .any(|n| a == n || a.starts_with(&format!("{n}=")))
        })
    };
    let sub = |skip: usize| {
        args.iter()
            .filter(|a| !a.starts_with('-'))
            .nth(skip)
            .copied()
    };
    let positional: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .copied()
        .collect();
    let push = |out: &mut Vec<NetUse>, kind: NetKind, what: String| {
        out.push(NetUse {
            kind,
            what,
            start,
            end,
        });
    };

    // Shells: follow `-c SCRIPT`.
    if matches!(
        prog,
        "sh" | "bash" | "ash" | "dash" | "zsh" | "ksh" | "busybox"
    ) {
        let mut k = 0;
        if prog == "busybox" {
            // `busybox sh -c …`, `busybox wget URL`.
            if let Some((w, _, _)) = words.get(i + 1)
                && !w.starts_with('-')
            {
                command(&words[i + 1..], vars, hints, depth, out);
                return;
            }
        }
        while k < args.len() {
            let a = args[k];
            if a.starts_with('-') && a.contains('c') && !a.starts_with("--") {
                if let Some((script, s, e)) = words.get(i + 1 + k + 1) {
                    // The argument was quoted: its text starts one byte after the word.
                    let mut inner = Vec::new();
                    scan(script, 0, vars, hints, depth + 1, &mut inner);
                    for mut u in inner {
                        let (us, ue) = (s + 1 + u.start, s + 1 + u.end);
                        u.start = us.min(*e);
                        u.end = ue.min(*e).max(u.start);
                        out.push(u);
                    }
                }
                return;
            }
            k += 1;
        }
        return;
    }

    let offline_pm = |subcmd: &str, local_ext: &str| -> bool {
        let pkgs: Vec<&&str> = positional
            .iter()
            .skip_while(|p| **p != subcmd)
            .skip(1)
            .collect();
        !pkgs.is_empty()
            && pkgs
                .iter()
                .all(|p| p.ends_with(local_ext) && (p.contains('/') || p.starts_with('.')))
    };

    match prog {
        "apt" | "apt-get" | "aptitude" => {
            if let Some(s) = sub(0)
                && matches!(
                    s,
                    "update"
                        | "install"
                        | "upgrade"
                        | "dist-upgrade"
                        | "full-upgrade"
                        | "build-dep"
                        | "source"
                        | "download"
                        | "reinstall"
                        | "changelog"
                )
                && !(s == "install" && offline_pm("install", ".deb"))
            {
                push(out, NetKind::Install, format!("{prog} {s}"));
            }
        }
        "apk" => {
            if let Some(s) = sub(0)
                && matches!(s, "add" | "update" | "upgrade" | "fetch" | "search")
                && !has_flag(&["--no-network"])
                && !(s == "add" && offline_pm("add", ".apk"))
            {
                push(out, NetKind::Install, format!("apk {s}"));
            }
        }
        "yum" | "dnf" | "microdnf" | "tdnf" | "zypper" | "pacman" => {
            let s = sub(0).unwrap_or("");
            let installs = matches!(
                s,
                "install"
                    | "in"
                    | "update"
                    | "up"
                    | "upgrade"
                    | "groupinstall"
                    | "makecache"
                    | "reinstall"
                    | "localinstall"
                    | "builddep"
                    | "refresh"
                    | "ref"
            ) || (prog == "pacman"
                && args
                    .iter()
                    .any(|a| a.starts_with("-S") || a.starts_with("-U")));
            if installs && !has_flag(&["-C", "--cacheonly"]) && !offline_pm(s, ".rpm") {
                push(
                    out,
                    NetKind::Install,
                    format!("{prog} {s}").trim_end().to_string(),
                );
            }
        }
        p if p == "pip" || p.starts_with("pip3") || p.starts_with("pip2") => {
            pip(&args, prog, &push, out)
        }
        p if p.starts_with("python") => {
            if let Some(m) = args.iter().position(|a| *a == "-m")
                && args.get(m + 1).is_some_and(|x| *x == "pip")
            {
                pip(&args[m + 2..], &format!("{prog} -m pip"), &push, out);
            }
        }
        "uv" => {
            let s = sub(0).unwrap_or("");
            let s2 = sub(1).unwrap_or("");
            let fetches = matches!(s, "add" | "sync" | "lock" | "run" | "tool")
                || (s == "pip" && matches!(s2, "install" | "sync" | "compile"));
            if fetches
                && !has_flag(&["--offline"])
                && !env_has("UV_OFFLINE", &|v| v == "1" || v == "true")
            {
                push(
                    out,
                    NetKind::Install,
                    format!("uv {s} {s2}").trim_end().to_string(),
                );
            }
        }
        "pipx" | "poetry" | "pipenv" | "conda" | "mamba" | "micromamba" => {
            let s = sub(0).unwrap_or("");
            if matches!(
                s,
                "install" | "add" | "update" | "lock" | "sync" | "create" | "run"
            ) && !has_flag(&["--offline"])
            {
                push(out, NetKind::Install, format!("{prog} {s}"));
            }
        }
        "npm" | "yarn" | "pnpm" | "bun" => {
            let s = sub(0);
            let fetches = match (prog, s) {
                ("yarn", None) => true,
                (_, Some(s)) => {
                    matches!(
                        s,
                        "install"
                            | "i"
                            | "ci"
                            | "add"
                            | "update"
                            | "up"
                            | "upgrade"
                            | "fetch"
                            | "dlx"
                            | "x"
                            | "exec"
                            | "create"
                            | "init"
                    ) && !(prog == "npm" && matches!(s, "exec" | "init" | "x"))
                }
                _ => false,
            };
            if fetches && !has_flag(&["--offline", "--prefer-offline"]) {
                push(
                    out,
                    NetKind::Install,
                    format!("{prog} {}", s.unwrap_or("install")),
                );
            }
        }
        "gem" | "bundle" | "bundler" | "cpanm" | "cpan" | "luarocks" | "composer" => {
            let s = sub(0).unwrap_or("");
            let fetches = match prog {
                "cpanm" | "cpan" => true,
                "composer" => matches!(s, "install" | "require" | "update" | "create-project"),
                _ => matches!(s, "install" | "update" | "add"),
            };
            if fetches && !has_flag(&["--local", "--offline"]) {
                push(
                    out,
                    NetKind::Install,
                    format!("{prog} {s}").trim_end().to_string(),
                );
            }
        }
        "go" => {
            let s = sub(0).unwrap_or("");
            let offline = env_has("GOFLAGS", &|v| v.contains("-mod=vendor"))
                || env_has("GOPROXY", &|v| v == "off")
                || args.contains(&"-mod=vendor");
            if offline {
                return;
            }
            if s == "get" || (s == "mod" && matches!(sub(1), Some("download" | "tidy"))) {
                push(
                    out,
                    NetKind::Install,
                    format!(
                        "go {s}{}",
                        if s == "mod" {
                            format!(" {}", sub(1).unwrap_or(""))
                        } else {
                            String::new()
                        }
                    ),
                );
            } else if s == "install" && positional.iter().any(|p| p.contains('@')) {
                push(out, NetKind::Install, "go install PKG@VERSION".into());
            } else if matches!(s, "build" | "run" | "test" | "vet" | "generate" | "install")
                && hints.go_fetches
            {
                push(out, NetKind::Fetch, format!("go {s}"));
            }
        }
        "cargo" | "xx-cargo" | "cross" => {
            let s = positional
                .iter()
                .find(|p| !p.starts_with('+'))
                .copied()
                .unwrap_or("");
            let offline = has_flag(&["--offline", "--frozen"])
                || env_has("CARGO_NET_OFFLINE", &|v| v == "true" || v == "1");
            if offline {
                return;
            }
            match s {
                "install" => push(out, NetKind::Install, format!("{prog} install")),
                "update" | "generate-lockfile" | "fetch" | "vendor" | "publish" | "search"
                | "add" => push(out, NetKind::Install, format!("{prog} {s}")),
                "build" | "b" | "run" | "r" | "test" | "t" | "check" | "c" | "bench" | "doc"
                | "clippy" | "rustc" | "tree" | "package"
                    if hints.cargo_fetches =>
                {
                    push(out, NetKind::Fetch, format!("{prog} {s}"))
                }
                _ => {}
            }
        }
        "rustup" => {
            let s = sub(0).unwrap_or("");
            if matches!(
                s,
                "install" | "update" | "toolchain" | "target" | "component" | "default"
            ) {
                push(out, NetKind::Install, format!("rustup {s}"));
            }
        }
        "mvn" | "mvnw" | "gradle" | "gradlew" | "sbt" | "lein" | "dotnet" | "nuget" | "helm" => {
            let fetches = match prog {
                "dotnet" | "nuget" => matches!(
                    sub(0),
                    Some("restore" | "add" | "install" | "tool" | "build" | "publish")
                ),
                "helm" => matches!(sub(0), Some("dependency" | "repo" | "pull")),
                _ => !has_flag(&["-o", "--offline"]) && !positional.is_empty(),
            };
            if fetches {
                push(out, NetKind::Install, prog.to_string());
            }
        }
        "curl" | "wget" | "aria2c" | "fetch" | "http" | "axel" | "scp" | "rsync" | "ftp"
        | "lftp" => {
            if let Some(url) = args.iter().find(|a| {
                is_url(a)
                    || (matches!(prog, "scp" | "rsync") && a.contains(':') && !a.starts_with('-'))
            }) {
                push(out, NetKind::Download, format!("{prog} {url}"));
            }
        }
        "git" => {
            let s = sub(0).unwrap_or("");
            let remote = match s {
                "clone" | "ls-remote" | "archive" => args
                    .iter()
                    .any(|a| is_url(a) || a.contains(':') && !a.starts_with('-')),
                "fetch" | "pull" | "push" => true,
                "submodule" => matches!(sub(1), Some("update" | "sync" | "add")),
                _ => false,
            };
            if remote {
                push(out, NetKind::Download, format!("git {s}"));
            }
        }
        "svn" | "hg" if args.iter().any(|a| is_url(a)) => {
            push(
                out,
                NetKind::Download,
                format!("{prog} {}", sub(0).unwrap_or("")),
            );
        }
        "docker" | "podman" | "skopeo" | "crane" => {
            if matches!(sub(0), Some("pull" | "login" | "copy" | "push")) {
                push(
                    out,
                    NetKind::Download,
                    format!("{prog} {}", sub(0).unwrap_or("")),
                );
            }
        }
        _ => {}
    }
}

fn pip(
    args: &[&str],
    prog: &str,
    push: &dyn Fn(&mut Vec<NetUse>, NetKind, String),
    out: &mut Vec<NetUse>,
) {
    let s = args
        .iter()
        .find(|a| !a.starts_with('-'))
        .copied()
        .unwrap_or("");
    let offline = args.contains(&"--no-index");
    if matches!(s, "install" | "download" | "wheel") && !offline {
        push(out, NetKind::Install, format!("{prog} {s}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(script: &str, expect: &[&str]) {
        let vars: Vars = [("PM".to_string(), "apt-get".to_string())]
            .into_iter()
            .collect();
        let got: Vec<String> = network_uses(
            script,
            &vars,
            Hints {
                cargo_fetches: true,
                go_fetches: false,
            },
        )
        .into_iter()
        .map(|u| u.what)
        .collect();
        assert_eq!(got, expect, "{script}");
    }

    #[test]
    fn package_managers() {
        check(
            "apt-get update && apt-get install -y curl",
            &["apt-get update", "apt-get install"],
        );
        check(
            "DEBIAN_FRONTEND=noninteractive apt install x",
            &["apt install"],
        );
        check("apk --no-cache add git", &["apk add"]);
        check("apk add --no-network --allow-untrusted ./pkgs/x.apk", &[]);
        check("apk add --allow-untrusted ./pkgs/x.apk /pkgs/y.apk", &[]);
        check(
            "yum install -y gcc; dnf -y upgrade",
            &["yum install", "dnf upgrade"],
        );
        check("microdnf install x", &["microdnf install"]);
        check("pip install -r requirements.txt", &["pip install"]);
        check("pip3 install --no-index --find-links /wheels x", &[]);
        check("python3 -m pip install numpy", &["python3 -m pip install"]);
        check("uv pip install x", &["uv pip install"]);
        check(
            "npm ci && yarn && pnpm add x",
            &["npm ci", "yarn install", "pnpm add"],
        );
        check("npm run build", &[]);
        check(
            "go mod download && go install golang.org/x/tools/gopls@latest && go get x",
            &["go mod download", "go install PKG@VERSION", "go get"],
        );
        check("cargo install ripgrep", &["cargo install"]);
        check("cargo build --release", &["cargo build"]);
        check("cargo build --offline --release", &[]);
        check("CARGO_NET_OFFLINE=true cargo build", &[]);
        check("gem install rails", &["gem install"]);
        check("$PM install x", &["apt-get install"]);
    }

    #[test]
    fn downloads() {
        check(
            "curl -fsSL https://example.com/x.sh | sh",
            &["curl https://example.com/x.sh"],
        );
        check("wget -q -O- http://x/y > /y", &["wget http://x/y"]);
        check("git clone https://github.com/a/b", &["git clone"]);
        check("git clone /src/repo /dst", &[]);
        check("curl --version", &[]);
    }

    #[test]
    fn nesting_and_wrappers() {
        check("sh -c \"apt-get update\"", &["apt-get update"]);
        check("bash -ec 'pip install x && echo ok'", &["pip install"]);
        check("sudo -E apt-get install x", &["apt-get install"]);
        check("echo $(curl https://x/y)", &["curl https://x/y"]);
        check("if true; then apk add x; fi", &["apk add"]);
        check("xargs -n1 pip install < reqs.txt", &["pip install"]);
        check("env A=1 npm install", &["npm install"]);
    }

    #[test]
    fn no_false_positives() {
        check("echo apt-get install curl", &[]);
        check("echo 'pip install x' > /notes.txt", &[]);
        check("grep -q apt-get /etc/x # apt-get install", &[]);
        check("apt-get --version && apt-get clean", &[]);
        check("printf '%s' \"npm install\"", &[]);
        check("mkdir -p /app && cp /src/* /app/", &[]);
    }

    #[test]
    fn positions_point_at_the_command() {
        let s = "true && apt-get install x";
        let u = &network_uses(s, &Vars::new(), Hints::default())[0];
        assert_eq!(&s[u.start..u.end], "apt-get install x");
        let s = "sh -c 'true; pip install x'";
        let u = &network_uses(s, &Vars::new(), Hints::default())[0];
        assert_eq!(&s[u.start..u.end], "pip install x");
    }

    #[test]
    fn garbage_does_not_panic() {
        for s in [
            "$(", "`", "\"", "'", "é$(ü", "a\\", "$((((", "sh -c", "> > >", "<<",
        ] {
            let _ = network_uses(s, &Vars::new(), Hints::default());
        }
    }
}
