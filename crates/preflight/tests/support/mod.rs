//! Shared by the corpus runner and the Docker tests: reading cases, generating their binaries
//! with the host and aarch64 C compilers, and copying a case into a temporary context; and by
//! the robustness and agreement tests: a seeded generator of mutated Dockerfiles.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use preflight::{BuildSite, Builder, Options, System};

/// One corpus case.
pub struct Case {
    pub name: String,
    pub dir: PathBuf,
    /// `(code, line, text the message or help must contain)`.
    pub expect: Vec<(String, u32, Option<String>)>,
    pub system: System,
    pub options: Options,
    /// `build-fails`, `run-fails` or `run-ok`.
    pub docker: Option<String>,
    /// `(path, kind)` of binaries to generate.
    pub generate: Vec<(String, String)>,
}

pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

pub fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if !dir.is_dir() || name.starts_with('_') {
            continue;
        }
        out.push(load_case(&name, &dir));
    }
    out
}

fn load_case(name: &str, dir: &Path) -> Case {
    let expect_text = std::fs::read_to_string(dir.join("expect"))
        .unwrap_or_else(|e| panic!("{name}: no expect file: {e}"));
    let mut system = System::flight("sat1");
    let mut options = Options::onboard();
    let mut builder = Builder::Classic;
    let mut docker = None;
    let mut expect = Vec::new();
    for line in expect_text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(h) = line.strip_prefix('#') {
            let (k, v) = h
                .split_once(':')
                .unwrap_or_else(|| panic!("{name}: bad header {line}"));
            let v = v.trim();
            match k.trim() {
                "system" => {
                    system = match v {
                        "em" => System::em(preflight::host_platform()),
                        "flight" => System::flight("sat1"),
                        other => panic!("{name}: unknown system {other}"),
                    }
                }
                "site" => {
                    options.site = match v {
                        "ground" => BuildSite::Ground,
                        "onboard" => BuildSite::Onboard,
                        other => panic!("{name}: unknown site {other}"),
                    }
                }
                "builder" => {
                    builder = match v {
                        "buildkit" => Builder::BuildKit,
                        "classic" => Builder::Classic,
                        other => panic!("{name}: unknown builder {other}"),
                    }
                }
                "tenant-images" => {
                    options.tenant_images = v.split_whitespace().map(str::to_string).collect()
                }
                "build-args" => {
                    options.build_args = v
                        .split_whitespace()
                        .map(|kv| {
                            let (k, v) = kv.split_once('=').unwrap();
                            (k.to_string(), v.to_string())
                        })
                        .collect()
                }
                "docker" => docker = Some(v.to_string()),
                other => panic!("{name}: unknown header {other}"),
            }
            continue;
        }
        let mut parts = line.splitn(3, ' ');
        let code = parts.next().unwrap().to_string();
        let line_no: u32 = parts
            .next()
            .and_then(|l| l.parse().ok())
            .unwrap_or_else(|| panic!("{name}: bad expectation {line}"));
        let text = parts.next().map(str::to_string);
        expect.push((code, line_no, text));
    }
    system.builder = builder;
    let generate: Vec<(String, String)> = std::fs::read_to_string(dir.join("gen"))
        .map(|t| {
            t.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| {
                    let (p, k) = l.split_once(' ').unwrap();
                    (p.to_string(), k.trim().to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    Case {
        name: name.to_string(),
        dir: dir.to_path_buf(),
        expect,
        system,
        options,
        docker,
        generate,
    }
}

/// Copies the case's context (everything but `expect` and `gen`) into a fresh temporary folder,
/// with the generated binaries. The Dockerfile is `Dockerfile` in it.
pub fn materialize(case: &Case) -> tempfile::TempDir {
    let tmp = tempfile::Builder::new()
        .prefix(&format!("preflight-{}-", case.name))
        .tempdir()
        .unwrap();
    // The context lives one level down, so `../x` from it is outside the context.
    let ctx = tmp.path().join("ctx");
    copy_dir(&case.dir, &ctx, true);
    std::fs::write(tmp.path().join("secret.txt"), "outside the context\n").unwrap();
    for (path, kind) in &case.generate {
        let dest = ctx.join(path);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        let src = artifact(kind);
        std::fs::copy(&src, &dest).unwrap_or_else(|e| panic!("{}: copying {kind}: {e}", case.name));
    }
    tmp
}

pub fn context_of(tmp: &tempfile::TempDir) -> PathBuf {
    tmp.path().join("ctx")
}

fn copy_dir(from: &Path, to: &Path, top: bool) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if top && (name == "expect" || name == "gen") {
            continue;
        }
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            copy_dir(&e.path(), &to.join(&name), false);
        } else {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

/// The path of a generated binary of the given kind (built once per test process).
pub fn artifact(kind: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(build_artifacts);
    let p = dir.join(kind);
    assert!(p.exists(), "unknown binary kind `{kind}`");
    p
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {cmd:?}: {e} (install gcc and gcc-aarch64-linux-gnu)")
    });
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn build_artifacts() -> PathBuf {
    // Built in a private folder, then renamed into place: test processes may overlap.
    let final_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("preflight-bins");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("preflight-bins.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let src = corpus_dir().join("_src");
    let hello = src.join("hello.c");
    let o = |k: &str| dir.join(k);
    run(Command::new("gcc")
        .args(["-O1", "-static", "-o"])
        .arg(o("native-static"))
        .arg(&hello));
    run(Command::new("gcc")
        .args(["-O1", "-o"])
        .arg(o("native-dynamic"))
        .arg(&hello));
    run(Command::new("aarch64-linux-gnu-gcc")
        .args(["-O1", "-static", "-o"])
        .arg(o("aarch64-static"))
        .arg(&hello));
    run(Command::new("aarch64-linux-gnu-gcc")
        .args(["-O1", "-o"])
        .arg(o("aarch64-dynamic"))
        .arg(&hello));
    run(Command::new("gcc")
        .args(["-O1", "-shared", "-fPIC", "-Wl,-soname,libfoo.so.1", "-o"])
        .arg(o("libfoo"))
        .arg(src.join("foo.c")));
    run(Command::new("gcc")
        .args(["-O1", "-o"])
        .arg(o("native-needs-libfoo"))
        .arg(src.join("usefoo.c"))
        .arg(o("libfoo")));
    // A binary that asks for a glibc newer than any base: rename its GLIBC_2.34 requirement
    // (same length, so the string table stays valid). The loader rejects it at start.
    let mut bytes = std::fs::read(o("native-dynamic")).unwrap();
    let needle = b"GLIBC_2.34\0";
    let pos = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the host toolchain links GLIBC_2.34 symbols");
    bytes[pos..pos + needle.len()].copy_from_slice(b"GLIBC_2.99\0");
    write_exec(&o("native-glibc-2.99"), &bytes);
    let aarch64 = std::fs::read(o("aarch64-dynamic")).unwrap();
    write_exec(&o("aarch64-truncated"), &aarch64[..200]);
    let mut garbage = b"\x7fELF\x02\x01\x01".to_vec();
    garbage.resize(64, 0);
    garbage[18] = 183; // EM_AARCH64
    garbage[32..40].copy_from_slice(&0x7fff_ffffu64.to_le_bytes()); // phoff past the end
    garbage[54] = 56;
    garbage[56] = 9;
    garbage.extend((0..400u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    write_exec(&o("garbage-elf"), &garbage);
    std::fs::create_dir_all(&final_dir).unwrap();
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        std::fs::rename(e.path(), final_dir.join(e.file_name())).unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
    final_dir
}

fn write_exec(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

// Seeded random inputs, shared by the robustness and agreement tests.

/// xorshift64*: small, seeded, reproducible.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

pub fn seed() -> u64 {
    std::env::var("PREFLIGHT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed)
}

pub fn iterations(default: usize) -> usize {
    std::env::var("PREFLIGHT_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

pub const TOKENS: &[&str] = &[
    "\\\n",
    "`\n",
    "\n",
    "<<EOF\n",
    "<<-'X'\n",
    "EOF\n",
    "$",
    "${",
    "}",
    "${A:-${B:+",
    "\"",
    "'",
    "[",
    "]",
    "[\"a\", ",
    "--from=",
    "--platform=",
    "--mount=type=cache",
    "FROM ",
    "RUN ",
    "COPY ",
    "ADD ",
    "ARG A=",
    "ENV ",
    "AS ",
    "# escape=`\n",
    "&&",
    "||",
    ";",
    "|",
    "$(",
    ")",
    "sh -c '",
    "apt-get install ",
    "pip install ",
    "curl http://x ",
    "../",
    "*",
    "?",
    "\u{feff}",
    "é",
    "\u{0}",
    "\t",
    "\r\n",
    "ONBUILD ",
    "HEALTHCHECK CMD ",
    "USER ",
    "WORKDIR ",
    "0",
    "-1",
    "99999999999",
];

pub fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut b = text.as_bytes().to_vec();
    for _ in 0..1 + rng.below(6) {
        match rng.below(5) {
            0 => {
                let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                let at = rng.below(b.len() + 1);
                b.splice(at..at, t.iter().copied());
            }
            1 if !b.is_empty() => {
                let at = rng.below(b.len());
                let len = rng.below(16).min(b.len() - at);
                b.drain(at..at + len);
            }
            2 if !b.is_empty() => {
                let at = rng.below(b.len());
                b[at] = rng.next() as u8;
            }
            3 => {
                let at = rng.below(b.len() + 1);
                let copy: Vec<u8> = b[at..].iter().take(40).copied().collect();
                b.splice(at..at, copy);
            }
            _ => {
                let n = rng.below(20);
                for _ in 0..n {
                    let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                    b.extend_from_slice(t);
                }
            }
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}
