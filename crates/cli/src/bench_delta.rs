//! `orbitdock bench delta`: the bytes the link would carry for each change of a corpus this
//! command builds, beside the delta tools installed on this machine, with the targets of the
//! delta engine judged per row.
//!
//! The corpus: C (gcc, aarch64-linux-gnu-gcc), Go (`go`, GOARCH amd64 and arm64) and Rust
//! (rustc, each target whose standard library is installed) static programs, stripped as
//! they would be deployed, with a string
//! change, an arithmetic change that moves code and a new command-line flag; a C program whose
//! library is bumped; a new app (no base); a 3 MB tar of Python sources with two one-line
//! edits; a 200 MB dataset with 1 % appended. A toolchain or anchor that is absent is skipped
//! and said so. Every patch of ours is applied by a child `orbitdock delta apply` (its peak
//! memory is measured) and compared byte for byte; every anchor's patch is decoded by the
//! anchor and compared too.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};

use crate::delta::group;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arch {
    X86,
    A64,
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    String,
    Arith,
    Flag,
    DepBump,
    NewApp,
    Tree,
    Dataset,
}

struct Case {
    name: String,
    arch: Arch,
    change: Change,
    old: Option<PathBuf>,
    new: PathBuf,
}

/// A delta tool to compare with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Anchor {
    Bsdiff4,
    Detools,
    ZstdPatchFrom,
    Xdelta3,
}

const ANCHORS: [Anchor; 4] = [
    Anchor::Bsdiff4,
    Anchor::Detools,
    Anchor::ZstdPatchFrom,
    Anchor::Xdelta3,
];

impl Anchor {
    fn name(self) -> &'static str {
        match self {
            Anchor::Bsdiff4 => "bsdiff4",
            Anchor::Detools => "detools",
            Anchor::ZstdPatchFrom => "zstd-pf",
            Anchor::Xdelta3 => "xdelta3",
        }
    }

    fn present(self) -> bool {
        match self {
            Anchor::Bsdiff4 => succeeds("python3", &["-c", "import bsdiff4"]),
            Anchor::Detools => succeeds("detools", &["--version"]),
            Anchor::ZstdPatchFrom => succeeds("zstd", &["--version"]),
            Anchor::Xdelta3 => succeeds("xdelta3", &["-V"]),
        }
    }
}

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run_ok(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("{cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

pub(crate) fn run(keep: Option<PathBuf>, no_dataset: bool) -> anyhow::Result<ExitCode> {
    let temp;
    let dir = match keep {
        Some(d) => {
            std::fs::create_dir_all(&d).with_context(|| format!("{}", d.display()))?;
            d
        }
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let mut notes = Vec::new();
    let cases = corpus(&dir, no_dataset, &mut notes)?;
    let anchors: Vec<Anchor> = ANCHORS.into_iter().filter(|a| a.present()).collect();
    for a in ANCHORS.iter().filter(|a| !anchors.contains(a)) {
        notes.push(format!(
            "{} is not installed: its column is left out",
            a.name()
        ));
    }
    let zstd_cli = Anchor::ZstdPatchFrom.present();

    let mut header = format!(
        "| {:<34} | {:>11} | {:>11} | {:>11} | {:<10} |",
        "change", "new file", "zstd -19", "orbitdock", "kind"
    );
    for a in &anchors {
        header.push_str(&format!(" {:>9} |", a.name()));
    }
    header.push_str(&format!(" {:>9} | targets", "apply mem"));
    println!("{header}");
    let cols = 5 + anchors.len() + 2;
    println!("|{}", "---|".repeat(cols));
    // The binary and its runtime, applying a one-byte patch: what every apply below costs
    // before it holds any file.
    let tiny_patch = dir.join("baseline.odpatch");
    let tiny_out = dir.join("baseline.out");
    let _ = std::fs::remove_file(&tiny_patch);
    let _ = std::fs::remove_file(&tiny_out);
    std::fs::write(&tiny_patch, delta::make(None, b"x"))?;
    let baseline = apply_in_child(None, &tiny_patch, &tiny_out)?;
    let (mut met, mut missed) = (0, 0);
    for case in &cases {
        eprintln!("… {}", case.name);
        let new = std::fs::read(&case.new)?;
        let old = case.old.as_ref().map(std::fs::read).transpose()?;
        let t = Instant::now();
        let (patch, _) = delta::make_with(old.as_deref(), &new, delta::MakeOptions::default());
        let make_s = t.elapsed().as_secs_f64();
        let kind = delta::Header::read(&patch)?.kind;
        let stem = case.new.with_extension("");
        let patch_path = stem.with_extension("odpatch");
        let back = stem.with_extension("back");
        let _ = std::fs::remove_file(&patch_path);
        let _ = std::fs::remove_file(&back);
        std::fs::write(&patch_path, &patch)?;
        let rss = apply_in_child(case.old.as_deref(), &patch_path, &back)?.saturating_sub(baseline);
        if std::fs::read(&back)? != new {
            bail!("{}: our patch does not round-trip", case.name);
        }
        let zstd19 = if zstd_cli {
            Some(zstd_whole(&case.new, new.len(), &dir)?)
        } else {
            None
        };
        let mut sizes = Vec::new();
        for &a in &anchors {
            sizes.push(match &case.old {
                Some(old_path) => anchor(a, old_path, &case.new, new.len(), &dir)?,
                None => None,
            });
        }
        let mut targets = Vec::new();
        let ours = patch.len() as u64;
        let mut judge = |ok: bool, what: String| {
            if ok {
                met += 1;
                targets.push(format!("met: {what}"));
            } else {
                missed += 1;
                targets.push(format!("NOT met: {what}"));
            }
        };
        if case.change == Change::NewApp {
            if let Some(z) = zstd19 {
                judge(
                    ours as f64 <= 1.02 * z as f64,
                    format!("≤ 1.02 × zstd -19 ({})", group((1.02 * z as f64) as u64)),
                );
            }
        } else {
            let best = sizes.iter().flatten().min().copied();
            if let Some(b) = best {
                judge(
                    ours <= b + 1024,
                    format!("≤ best anchor + 1 KB ({})", group(b + 1024)),
                );
            }
        }
        if matches!(case.change, Change::Arith | Change::Flag)
            && let Some(i) = anchors.iter().position(|a| *a == Anchor::Bsdiff4)
            && let Some(b) = sizes[i]
        {
            let (div, label) = if case.arch == Arch::A64 {
                (2, "1/2")
            } else {
                (3, "1/3")
            };
            judge(
                ours * div <= b,
                format!("≤ {label} bsdiff4 ({})", group(b / div)),
            );
        }
        let limit = 3 * new.len() as u64 + (32 << 20);
        judge(
            rss <= limit,
            format!("apply ≤ 3 × file + 32 MB ({} MB)", limit >> 20),
        );
        let mut row = format!(
            "| {:<34} | {:>11} | {:>11} | {:>11} | {:<10} |",
            case.name,
            group(new.len() as u64),
            zstd19.map_or("–".into(), group),
            group(ours),
            kind.name(),
        );
        for s in &sizes {
            row.push_str(&format!(" {:>9} |", s.map_or("–".into(), group)));
        }
        row.push_str(&format!(
            " {:>6.1} MB | {}",
            rss as f64 / f64::from(1 << 20),
            targets.join("; ")
        ));
        println!("{row}");
        eprintln!("  made in {make_s:.1} s");
    }
    println!();
    println!(
        "Bytes are whole patches (orbitdock's {}-byte header included); every patch was decoded and compared byte for byte.",
        delta::HEADER_LEN
    );
    println!(
        "apply mem: peak resident memory of `orbitdock delta apply` minus that of the same command applying a one-byte patch ({} MB: the binary and its runtime).",
        baseline >> 20
    );
    println!("Targets: {met} met, {missed} not met.");
    for n in notes {
        println!("note: {n}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Applies with a child `orbitdock delta apply`; its peak resident memory (VmHWM) in bytes.
fn apply_in_child(old: Option<&Path>, patch: &Path, out: &Path) -> anyhow::Result<u64> {
    let exe = std::env::current_exe()?;
    let done = Command::new(exe)
        .arg("delta")
        .arg("apply")
        .arg(old.unwrap_or(Path::new("-")))
        .arg(patch)
        .arg(out)
        .env("ORBITDOCK_REPORT_PEAK_MEMORY", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    let stderr = String::from_utf8_lossy(&done.stderr);
    if !done.status.success() {
        bail!(
            "orbitdock delta apply {} failed: {}",
            patch.display(),
            stderr.trim()
        );
    }
    let kb = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .context("orbitdock delta apply did not report its peak memory")?;
    Ok(kb * 1024)
}

/// zstd's level for a file, as ours chooses it (-19 up to 32 MiB).
fn zstd_level(len: usize) -> &'static str {
    if len <= 32 << 20 { "-19" } else { "-9" }
}

fn long(len: u64) -> String {
    let bits = (64 - len.saturating_sub(1).leading_zeros()).clamp(10, 30);
    format!("--long={bits}")
}

fn zstd_whole(new: &Path, len: usize, dir: &Path) -> anyhow::Result<u64> {
    let p = dir.join("anchor.zst");
    let _ = std::fs::remove_file(&p);
    run_ok(
        Command::new("zstd")
            .args(["-q", "-f", zstd_level(len), &long(len as u64)])
            .arg(new)
            .arg("-o")
            .arg(&p),
    )?;
    Ok(std::fs::metadata(&p)?.len())
}

/// An anchor's patch size, round-tripped; `None` where the anchor is not run (bsdiff4 and
/// detools above 64 MB: their suffix sort would need gigabytes).
fn anchor(
    a: Anchor,
    old: &Path,
    new: &Path,
    len: usize,
    dir: &Path,
) -> anyhow::Result<Option<u64>> {
    let patch = dir.join(format!("anchor.{}", a.name()));
    let out = dir.join("anchor.out");
    let _ = std::fs::remove_file(&patch);
    let _ = std::fs::remove_file(&out);
    let old_len = std::fs::metadata(old)?.len();
    let span = old_len + len as u64;
    match a {
        Anchor::Bsdiff4 | Anchor::Detools if len > 64 << 20 => return Ok(None),
        Anchor::Bsdiff4 => {
            let script = "import sys, bsdiff4\nbsdiff4.file_diff(sys.argv[1], sys.argv[2], sys.argv[3])\nbsdiff4.file_patch(sys.argv[1], sys.argv[4], sys.argv[3])";
            run_ok(
                Command::new("python3")
                    .args(["-c", script])
                    .args([old, new, &patch, &out]),
            )?;
        }
        Anchor::Detools => {
            run_ok(
                Command::new("detools")
                    .args(["create_patch", "-c", "lzma"])
                    .args([old, new, &patch]),
            )?;
            run_ok(
                Command::new("detools")
                    .arg("apply_patch")
                    .args([old, &patch, &out]),
            )?;
        }
        Anchor::ZstdPatchFrom => {
            let mut from = std::ffi::OsString::from("--patch-from=");
            from.push(old);
            run_ok(
                Command::new("zstd")
                    .args(["-q", "-f", zstd_level(len), &long(span)])
                    .arg(&from)
                    .arg(new)
                    .arg("-o")
                    .arg(&patch),
            )?;
            run_ok(
                Command::new("zstd")
                    .args(["-q", "-f", "-d", &long(span)])
                    .arg(&from)
                    .arg(&patch)
                    .arg("-o")
                    .arg(&out),
            )?;
        }
        Anchor::Xdelta3 => {
            let window = old_len
                .next_power_of_two()
                .clamp(1 << 24, 1 << 30)
                .to_string();
            run_ok(
                Command::new("xdelta3")
                    .args(["-q", "-f", "-9", "-e", "-B", &window, "-s"])
                    .args([old, new, &patch]),
            )?;
            run_ok(
                Command::new("xdelta3")
                    .args(["-q", "-f", "-d", "-B", &window, "-s"])
                    .args([old, &patch, &out]),
            )?;
        }
    }
    if std::fs::read(&out)? != std::fs::read(new)? {
        bail!(
            "{}'s patch of {} does not round-trip",
            a.name(),
            new.display()
        );
    }
    Ok(Some(std::fs::metadata(&patch)?.len()))
}

// ---------------------------------------------------------------- corpus

const VARIANTS: [(&str, Change); 4] = [
    ("base", Change::String),
    ("string", Change::String),
    ("arith", Change::Arith),
    ("flag", Change::Flag),
];

fn change_label(c: Change) -> &'static str {
    match c {
        Change::String => "string",
        Change::Arith => "arithmetic, moves code",
        Change::Flag => "new CLI flag",
        Change::DepBump => "library bump",
        Change::NewApp => "new app, preloaded base",
        Change::Tree => "2 files of a Python tree",
        Change::Dataset => "dataset, 1 % appended",
    }
}

fn corpus(dir: &Path, no_dataset: bool, notes: &mut Vec<String>) -> anyhow::Result<Vec<Case>> {
    let mut cases = Vec::new();
    // C, both machines.
    for (cc, arch, label) in [
        ("gcc", Arch::X86, "C x86-64"),
        ("aarch64-linux-gnu-gcc", Arch::A64, "C AArch64"),
    ] {
        if !succeeds(cc, &["--version"]) {
            notes.push(format!("{cc} is not installed: {label} rows left out"));
            continue;
        }
        let built = programs(dir, label, |v, out| {
            let src = out.with_extension("c");
            std::fs::write(&src, c_source(v, false))?;
            run_ok(
                Command::new(cc)
                    .args(["-O2", "-static", "-s", "-o"])
                    .arg(out)
                    .arg(&src),
            )
        })?;
        push_variants(&mut cases, label, arch, &built);
        // A library bump: the same app linked against the next version of its library.
        let bump = dir.join(format!("{}-bump", slug(label)));
        let src = bump.with_extension("c");
        std::fs::write(&src, c_source("base", true))?;
        run_ok(
            Command::new(cc)
                .args(["-O2", "-static", "-s", "-o"])
                .arg(&bump)
                .arg(&src),
        )?;
        cases.push(Case {
            name: format!("{label}: {}", change_label(Change::DepBump)),
            arch,
            change: Change::DepBump,
            old: Some(built[0].clone()),
            new: bump,
        });
        if arch == Arch::X86 {
            cases.push(Case {
                name: format!("{label}: {}", change_label(Change::NewApp)),
                arch,
                change: Change::NewApp,
                old: None,
                new: built[3].clone(),
            });
        }
    }
    // Go, both machines.
    if succeeds("go", &["version"]) {
        for (goarch, arch, label) in [
            ("amd64", Arch::X86, "Go x86-64"),
            ("arm64", Arch::A64, "Go AArch64"),
        ] {
            let built = programs(dir, label, |v, out| {
                let src = out.with_extension("go");
                std::fs::write(&src, go_source(v))?;
                run_ok(
                    Command::new("go")
                        .args(["build", "-trimpath", "-ldflags=-s -w -buildid=", "-o"])
                        .arg(out)
                        .arg(&src)
                        .env("GOOS", "linux")
                        .env("GOARCH", goarch)
                        .env("CGO_ENABLED", "0")
                        .env("GOCACHE", dir.join("gocache"))
                        .env("GOPATH", dir.join("gopath")),
                )
            })?;
            push_variants(&mut cases, label, arch, &built);
        }
    } else {
        notes.push("go is not installed: Go rows left out".into());
    }
    // Rust, each target with its standard library here.
    for (target, arch, label, linker) in [
        ("x86_64-unknown-linux-gnu", Arch::X86, "Rust x86-64", None),
        (
            "aarch64-unknown-linux-gnu",
            Arch::A64,
            "Rust AArch64",
            Some("aarch64-linux-gnu-gcc"),
        ),
    ] {
        if !rust_target(target) {
            notes.push(format!(
                "rustc has no standard library for {target}: {label} rows left out"
            ));
            continue;
        }
        let built = programs(dir, label, |v, out| {
            let src = out.with_extension("rs");
            std::fs::write(&src, rust_source(v))?;
            let mut cmd = Command::new("rustc");
            cmd.args([
                "-O",
                "-C",
                "target-feature=+crt-static",
                "-C",
                "strip=symbols",
                "--target",
                target,
                "-o",
            ])
            .arg(out)
            .arg(&src);
            if let Some(l) = linker {
                cmd.arg("-C").arg(format!("linker={l}"));
            }
            run_ok(&mut cmd)
        })?;
        push_variants(&mut cases, label, arch, &built);
    }
    // A 3 MB tree of Python sources, two files edited.
    match python_tree(dir) {
        Ok((old, new)) => cases.push(Case {
            name: format!("tar: {}", change_label(Change::Tree)),
            arch: Arch::Any,
            change: Change::Tree,
            old: Some(old),
            new,
        }),
        Err(e) => notes.push(format!("Python tree left out: {e:#}")),
    }
    if !no_dataset {
        let (old, new) = dataset(dir)?;
        cases.push(Case {
            name: format!("200 MB {}", change_label(Change::Dataset)),
            arch: Arch::Any,
            change: Change::Dataset,
            old: Some(old),
            new,
        });
    }
    Ok(cases)
}

fn slug(label: &str) -> String {
    label.to_lowercase().replace([' ', '-'], "_")
}

/// Builds the four variants; their paths in [`VARIANTS`] order.
fn programs(
    dir: &Path,
    label: &str,
    build: impl Fn(&str, &Path) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<PathBuf>> {
    eprintln!("building {label}…");
    let mut out = Vec::new();
    for (v, _) in VARIANTS {
        let path = dir.join(format!("{}-{v}", slug(label)));
        build(v, &path).with_context(|| format!("building {label} {v}"))?;
        out.push(path);
    }
    Ok(out)
}

fn push_variants(cases: &mut Vec<Case>, label: &str, arch: Arch, built: &[PathBuf]) {
    for (i, (_, change)) in VARIANTS.iter().enumerate().skip(1) {
        cases.push(Case {
            name: format!("{label}: {}", change_label(*change)),
            arch,
            change: *change,
            // Each change against the version before it, as releases follow each other.
            old: Some(built[i - 1].clone()),
            new: built[i].clone(),
        });
    }
}

fn rust_target(target: &str) -> bool {
    let Ok(out) = Command::new("rustc")
        .args(["--print", "target-libdir", "--target", target])
        .output()
    else {
        return false;
    };
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    out.status.success()
        && std::fs::read_dir(&dir).is_ok_and(|mut d| {
            d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("libstd-")))
        })
}

/// Variants are cumulative: "arith" has the string change too, "flag" both.
fn level(v: &str) -> usize {
    ["base", "string", "arith", "flag"]
        .iter()
        .position(|x| *x == v)
        .unwrap_or(0)
}

fn c_source(v: &str, bumped_lib: bool) -> String {
    let l = level(v);
    let greeting = if l >= 1 {
        "hello from orbitdock, version two"
    } else {
        "hello from orbitdock"
    };
    let compute = if l >= 2 {
        "long y = x * x / 5 + x * 3 - 11; for (int i = 0; i < 3; i++) y = y * 7 + (y >> 3) - i; return y;"
    } else {
        "return x * 3 + 7;"
    };
    let flag = if l >= 3 {
        r#"else if (!strcmp(argv[i], "--twice")) { twice = 1; printf("twice enabled: %d\n", twice * argc); }"#
    } else {
        ""
    };
    let lib = if bumped_lib {
        r#"static const char *lib_version = "libcrc 1.3.0";
static unsigned lib_crc(const char *s) { unsigned c = 0xFFFFFFFFu; while (*s) { c ^= (unsigned char)*s++; for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & -(c & 1)); } return ~c; }
static unsigned lib_mix(unsigned a, unsigned b) { a ^= b; a *= 0x9E3779B1u; a ^= a >> 15; return a; }"#
    } else {
        r#"static const char *lib_version = "libcrc 1.2.0";
static unsigned lib_crc(const char *s) { unsigned c = 0xFFFFFFFFu; while (*s) { c ^= (unsigned char)*s++; for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & -(c & 1)); } return ~c; }
static unsigned lib_mix(unsigned a, unsigned b) { return a ^ b; }"#
    };
    format!(
        r#"#include <stdio.h>
#include <stdlib.h>
#include <string.h>
{lib}
static long compute(long x) {{ {compute} }}
int main(int argc, char **argv) {{
  int verbose = 0, twice = 0;
  for (int i = 1; i < argc; i++) {{
    if (!strcmp(argv[i], "--verbose")) verbose = 1;
    {flag}
  }}
  char *buf = malloc(64);
  snprintf(buf, 64, "%ld", compute(argc));
  printf("{greeting}: %s %d %d %s %08x\n", buf, verbose, twice, lib_version, lib_mix(lib_crc(buf), 7));
  free(buf);
  return 0;
}}
"#
    )
}

fn go_source(v: &str) -> String {
    let l = level(v);
    let greeting = if l >= 1 {
        "hello from orbitdock, version two"
    } else {
        "hello from orbitdock"
    };
    let compute = if l >= 2 {
        "y := x*x/5 + x*3 - 11\n\tfor i := 0; i < 3; i++ {\n\t\ty = y*7 + (y >> 3) - i\n\t}\n\treturn y"
    } else {
        "return x*3 + 7"
    };
    let (flag_decl, flag_use) = if l >= 3 {
        (
            "twice := flag.Int(\"twice\", 0, \"repeat the greeting\")",
            "for i := 0; i < *twice; i++ {\n\t\tfmt.Println(strings.Repeat(\"!\", i+1))\n\t}",
        )
    } else {
        ("", "")
    };
    format!(
        r#"package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

func compute(x int) int {{
	{compute}
}}

func main() {{
	verbose := flag.Bool("verbose", false, "say more")
	{flag_decl}
	flag.Parse()
	fmt.Printf("{greeting}: %d %v %s\n", compute(len(os.Args)), *verbose, strings.ToUpper("ok"))
	{flag_use}
}}
"#
    )
}

fn rust_source(v: &str) -> String {
    let l = level(v);
    let greeting = if l >= 1 {
        "hello from orbitdock, version two"
    } else {
        "hello from orbitdock"
    };
    let compute = if l >= 2 {
        "let mut y = x * x / 5 + x * 3 - 11; for i in 0..3 { y = y.wrapping_mul(7) + (y >> 3) - i; } y"
    } else {
        "x * 3 + 7"
    };
    let flag = if l >= 3 {
        r#"if args.iter().any(|a| a == "--twice") { for i in 0..2 { println!("{}", "!".repeat(i + 1)); } }"#
    } else {
        ""
    };
    format!(
        r#"use std::collections::BTreeMap;

#[inline(never)]
fn compute(x: i64) -> i64 {{ {compute} }}

fn main() {{
    let args: Vec<String> = std::env::args().collect();
    let verbose = args.iter().any(|a| a == "--verbose");
    let mut counts = BTreeMap::new();
    for a in &args {{ *counts.entry(a.len()).or_insert(0u32) += 1; }}
    {flag}
    println!("{greeting}: {{}} {{}} {{:?}}", compute(args.len() as i64), verbose, counts);
}}
"#
    )
}

/// A tar of Python sources (the interpreter's standard library, files in sorted order until
/// 3 MB), and the same with a line edited in two files.
fn python_tree(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['stdlib'])",
        ])
        .output()
        .context("python3")?;
    let root = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let mut files = Vec::new();
    collect_py(&root, &root, &mut files)?;
    files.sort();
    let mut total = 0;
    let mut chosen: Vec<(String, Vec<u8>)> = Vec::new();
    for rel in files {
        if total >= 3 << 20 {
            break;
        }
        let bytes = std::fs::read(root.join(&rel))?;
        total += bytes.len();
        chosen.push((rel, bytes));
    }
    if chosen.len() < 40 {
        bail!("fewer than 40 Python files under {}", root.display());
    }
    let old = dir.join("python_tree-old.tar");
    let new = dir.join("python_tree-new.tar");
    std::fs::write(&old, tar_of(&chosen)?)?;
    for i in [chosen.len() / 4, 3 * chosen.len() / 4] {
        let text = &mut chosen[i].1;
        let at = text.iter().position(|&b| b == b'\n').map_or(0, |p| p + 1);
        text.splice(at..at, b"# edited for the next release\n".iter().copied());
    }
    std::fs::write(&new, tar_of(&chosen)?)?;
    Ok((old, new))
}

fn collect_py(root: &Path, dir: &Path, out: &mut Vec<String>) -> anyhow::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let p = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if e.file_type()?.is_dir() {
            if name != "site-packages" && name != "__pycache__" && name != "test" {
                collect_py(root, &p, out)?;
            }
        } else if name.ends_with(".py") {
            out.push(p.strip_prefix(root)?.to_string_lossy().to_string());
        }
    }
    Ok(())
}

fn tar_of(files: &[(String, Vec<u8>)]) -> anyhow::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append_data(&mut h, name, bytes.as_slice())?;
    }
    Ok(b.into_inner()?)
}

/// 200 MB of CSV-like measurements, and the same with 1 % more rows appended.
fn dataset(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    eprintln!("writing the 200 MB dataset…");
    let mut rows = Vec::with_capacity(203 << 20);
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut t = 1_700_000_000u64;
    let mut row = |rows: &mut Vec<u8>| {
        t += 1 + next() % 3;
        let r = next();
        let line = format!(
            "{t},{:.5},{:.5},{},{}\n",
            (r % 180_000) as f64 / 1000.0 - 90.0,
            ((r >> 20) % 360_000) as f64 / 1000.0 - 180.0,
            (r >> 40) % 5000,
            ["ok", "warn", "ok", "ok", "fault"][(r >> 60) as usize % 5]
        );
        rows.extend_from_slice(line.as_bytes());
    };
    while rows.len() < 200 << 20 {
        row(&mut rows);
    }
    let old = dir.join("dataset-old.csv");
    std::fs::write(&old, &rows)?;
    let target = rows.len() + rows.len() / 100;
    while rows.len() < target {
        row(&mut rows);
    }
    let new = dir.join("dataset-new.csv");
    std::fs::write(&new, &rows)?;
    Ok((old, new))
}
