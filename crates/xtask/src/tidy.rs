//! Tidy checks: the architecture's invariants, checked on the source as ordinary tests.
//!
//! Each check reads the workspace's files and returns what breaks its rule, as
//! `path:line: why`. They run under `cargo test` (so CI enforces them) and as
//! `cargo xtask tidy`. The rules are ARCHITECTURE.md's invariants:
//!
//! - the pure crates (`wire`, `sync`, `orbit`, `dockerfile`, `api`) do no I/O, run no async
//!   runtime and read no clock: every instant is an argument;
//! - only `flight` depends on bollard (it alone talks to Docker);
//! - only `link` opens datagram sockets, and only `link`, `ground` (its HTTP server) and
//!   `flight`'s `telemetry` module (the onboard telemetry service pods reach) TCP ones;
//! - the CLI reads the API through the typed `api` crate, never a `serde_json::Value` by field
//!   name;
//! - no source file holds more than [`LONG_FILE`] lines of non-test code unless its header
//!   says why (a line containing `Long file:`);
//! - no test is `#[ignore]`d or `#[should_panic]`.

use std::fs;
use std::path::{Path, PathBuf};

/// Lines of non-test code above which a file must say why it is long.
pub(crate) const LONG_FILE: usize = 800;

/// Crates that do no I/O and read no clock.
const PURE: &[&str] = &["wire", "sync", "orbit", "dockerfile", "api", "delta"];

/// A rule broken at a place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub(crate) path: PathBuf,
    pub(crate) line: usize,
    pub(crate) why: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.why)
    }
}

/// One check: its name and what it found.
pub(crate) type Check = (&'static str, fn(&Path) -> Vec<Finding>);

/// Every check, in the order `cargo xtask tidy` runs them.
pub(crate) const CHECKS: &[Check] = &[
    (
        "no clock reads in pure crates",
        no_clock_reads_in_pure_crates,
    ),
    ("no I/O in pure crates", no_io_in_pure_crates),
    ("bollard only in flight", bollard_only_in_flight),
    (
        "sockets only in link (and ground's HTTP)",
        sockets_only_in_link,
    ),
    ("cli reads no JSON by field name", cli_reads_no_json_values),
    ("long files say why", long_files_say_why),
    ("no ignored or should_panic tests", no_ignored_tests),
];

/// The workspace root (two levels above this crate).
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A source file: its lines up to its test module (`#[cfg(test)]` followed by `mod`), which by
/// our convention comes last.
struct Source {
    path: PathBuf,
    lines: Vec<String>,
}

impl Source {
    fn read(path: &Path) -> Source {
        let text = fs::read_to_string(path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let mut end = all.len();
        for (i, line) in all.iter().enumerate() {
            let next = all[i + 1..]
                .iter()
                .map(|l| l.trim_start())
                .find(|l| !l.starts_with("#["))
                .unwrap_or("");
            let next = next
                .strip_prefix("pub(crate) ")
                .or_else(|| next.strip_prefix("pub "))
                .unwrap_or(next);
            if line.trim_end() == "#[cfg(test)]" && next.starts_with("mod ") {
                end = i;
                break;
            }
        }
        Source {
            path: path.to_path_buf(),
            lines: all[..end].iter().map(|s| s.to_string()).collect(),
        }
    }

    /// `(line number, code)` of every line that is not a comment.
    fn code(&self) -> impl Iterator<Item = (usize, &str)> {
        self.lines.iter().enumerate().filter_map(|(i, l)| {
            let t = l.trim_start();
            (!t.starts_with("//")).then_some((i + 1, l.as_str()))
        })
    }

    fn finding(&self, line: usize, why: String) -> Finding {
        Finding {
            path: self.path.clone(),
            line,
            why,
        }
    }
}

/// The crates under `crates/`, by folder name (not this one, which names what it looks for).
fn crates(root: &Path) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = fs::read_dir(root.join("crates"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().join("Cargo.toml").is_file() && e.file_name() != "xtask")
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The library and binary sources of a crate (not its tests, benches or fuzz targets).
fn sources(crate_dir: &Path) -> Vec<Source> {
    rust_files(&crate_dir.join("src"))
        .iter()
        .map(|p| Source::read(p))
        .collect()
}

fn matches(sources: &[Source], needles: &[&str], why: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    for s in sources {
        for (n, line) in s.code() {
            if let Some(needle) = needles.iter().find(|needle| line.contains(*needle)) {
                out.push(s.finding(n, format!("{why} (`{needle}`)")));
            }
        }
    }
    out
}

fn no_clock_reads_in_pure_crates(root: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    for (name, dir) in crates(root) {
        if PURE.contains(&name.as_str()) {
            out.extend(matches(
                &sources(&dir),
                &[
                    "Instant::now",
                    "SystemTime::now",
                    "Utc::now",
                    "Local::now",
                    ".elapsed()",
                ],
                &format!("`{name}` reads no clock and runs no async runtime; take the instant as an argument"),
            ));
        }
    }
    out
}

fn no_io_in_pure_crates(root: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    for (name, dir) in crates(root) {
        if PURE.contains(&name.as_str()) {
            out.extend(matches(
                &sources(&dir),
                &[
                    "std::fs",
                    "std::net",
                    "std::env",
                    "std::process",
                    "std::thread",
                    "tokio::",
                    "File::open",
                ],
                &format!("`{name}` does no I/O: bytes and values in, bytes and values out"),
            ));
        }
    }
    out
}

fn bollard_only_in_flight(root: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    for (name, dir) in crates(root) {
        if name == "flight" {
            continue;
        }
        let manifest = dir.join("Cargo.toml");
        let text = fs::read_to_string(&manifest).unwrap_or_default();
        for (i, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("bollard") {
                out.push(Finding {
                    path: manifest.clone(),
                    line: i + 1,
                    why: format!("only `flight` may depend on bollard, not `{name}`"),
                });
            }
        }
        out.extend(matches(
            &sources(&dir),
            &["bollard::"],
            &format!("only `flight` talks to Docker, not `{name}`"),
        ));
    }
    out
}

fn sockets_only_in_link(root: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    for (name, dir) in crates(root) {
        let src = sources(&dir);
        if name != "link" {
            out.extend(matches(
                &src,
                &["UdpSocket"],
                &format!("only `link` opens datagram sockets, not `{name}`"),
            ));
        }
        if name != "link" && name != "ground" {
            // The flight agent serves its pods telemetry over HTTP, from that module only.
            let src: Vec<Source> = src
                .into_iter()
                .filter(|s| name != "flight" || !s.path.starts_with(dir.join("src/telemetry")))
                .collect();
            out.extend(matches(
                &src,
                &["TcpListener", "TcpStream", "TcpSocket"],
                &format!("only `ground` (HTTP) and `link` open sockets, not `{name}`"),
            ));
        }
    }
    out
}

fn cli_reads_no_json_values(root: &Path) -> Vec<Finding> {
    let src = sources(&root.join("crates/cli"));
    let mut out = matches(
        &src,
        &["serde_json::Value", "serde_json::Map", "json!("],
        "the CLI reads and writes the API through `api` types",
    );
    for s in &src {
        for (n, line) in s.code() {
            if line.contains("use serde_json::") && line.contains("Value") {
                out.push(s.finding(n, "the CLI reads the API through `api` types".into()));
            }
        }
    }
    out
}

fn long_files_say_why(root: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    for (_, dir) in crates(root) {
        for s in sources(&dir) {
            let code = s.lines.iter().filter(|l| !l.trim().is_empty()).count();
            let header: Vec<&String> = s
                .lines
                .iter()
                .take_while(|l| l.trim_start().starts_with("//") || l.trim().is_empty())
                .collect();
            if code > LONG_FILE && !header.iter().any(|l| l.contains("Long file:")) {
                out.push(s.finding(
                    1,
                    format!(
                        "{code} lines of non-test code (over {LONG_FILE}): split it along its seams, or say why in its header (`//! Long file: …`)"
                    ),
                ));
            }
        }
    }
    out
}

fn no_ignored_tests(root: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    for (_, dir) in crates(root) {
        for p in rust_files(&dir) {
            let text = fs::read_to_string(&p).unwrap_or_default();
            for (i, line) in text.lines().enumerate() {
                let t = line.trim_start();
                if t.starts_with("#[ignore") || t.starts_with("#[should_panic") {
                    out.push(Finding {
                        path: p.clone(),
                        line: i + 1,
                        why: "tests assert today's behaviour; no #[ignore] or #[should_panic]"
                            .into(),
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str) {
        let (_, run) = CHECKS
            .iter()
            .find(|(n, _)| *n == name)
            .expect("a known check");
        let found = run(&workspace_root());
        let list: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert!(list.is_empty(), "{name}:\n{}", list.join("\n"));
    }

    #[test]
    fn pure_crates_read_no_clock() {
        check("no clock reads in pure crates");
    }

    #[test]
    fn pure_crates_do_no_io() {
        check("no I/O in pure crates");
    }

    #[test]
    fn only_flight_knows_bollard() {
        check("bollard only in flight");
    }

    #[test]
    fn only_link_opens_sockets() {
        check("sockets only in link (and ground's HTTP)");
    }

    #[test]
    fn cli_uses_typed_api_responses() {
        check("cli reads no JSON by field name");
    }

    #[test]
    fn long_files_explain_themselves() {
        check("long files say why");
    }

    #[test]
    fn no_test_is_ignored() {
        check("no ignored or should_panic tests");
    }

    /// The checks can fail: each finds its violation in a made-up workspace.
    #[test]
    fn each_check_catches_its_violation() {
        let dir = std::env::temp_dir().join(format!("orbitdock-tidy-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let write = |path: &str, text: &str| {
            let p = dir.join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        };
        write("crates/sync/Cargo.toml", "[package]\nname = \"sync\"\n");
        write(
            "crates/sync/src/lib.rs",
            "//! x\nfn f() { let t = std::time::Instant::now(); std::fs::read(\"x\"); }\n#[cfg(test)]\nmod tests {\n    fn g() { std::time::Instant::now(); }\n}\n",
        );
        write(
            "crates/ground/Cargo.toml",
            "[package]\nname = \"ground\"\n[dependencies]\nbollard = \"1\"\n",
        );
        write(
            "crates/ground/src/lib.rs",
            &format!(
                "//! x\nfn f() {{ std::net::UdpSocket::bind(\"127.0.0.1:0\"); }}\n{}",
                "fn g() {}\n".repeat(LONG_FILE)
            ),
        );
        write("crates/cli/Cargo.toml", "[package]\nname = \"orbitdock\"\n");
        write(
            "crates/cli/src/main.rs",
            "use serde_json::Value;\nfn f(v: serde_json::Value) { let _ = v[\"x\"]; }\n",
        );
        write("crates/cli/tests/t.rs", "#[test]\n#[ignore]\nfn t() {}\n");
        for (name, run) in CHECKS {
            let found = run(&dir);
            assert!(!found.is_empty(), "{name} found nothing");
        }
        // Test modules do not count.
        let clock = no_clock_reads_in_pure_crates(&dir);
        assert_eq!(clock.len(), 1, "{clock:?}");
        assert_eq!(clock[0].line, 2);
        let _ = fs::remove_dir_all(&dir);
    }
}
