//! The corpus of `orbitdock bench delta`: programs built here in four versions, a library
//! bump, a Python tree and a dataset.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use super::{Arch, Case, Change, run_ok, succeeds};

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
        Change::ImageOnBase => "new app on preloaded base: docker save archive",
        Change::Tree => "2 files of a Python tree",
        Change::Dataset => "dataset, 1 % appended",
    }
}

pub(super) fn corpus(
    dir: &Path,
    no_dataset: bool,
    notes: &mut Vec<String>,
) -> anyhow::Result<Vec<Case>> {
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
            layers_from: None,
        });
        if arch == Arch::X86 {
            cases.push(Case {
                name: format!("{label}: {}", change_label(Change::NewApp)),
                arch,
                change: Change::NewApp,
                old: None,
                new: built[3].clone(),
                layers_from: None,
            });
            match image_on_base(dir, &built[3]) {
                Ok(Some((archive, base))) => cases.push(Case {
                    name: change_label(Change::ImageOnBase).to_string(),
                    arch: Arch::Any,
                    change: Change::ImageOnBase,
                    old: None,
                    new: archive,
                    layers_from: Some(base),
                }),
                Ok(None) => notes.push(format!(
                    "{BASE_IMAGE} is not in the Docker Engine (orbitdock flight seed-bases builds its stand-in): the docker save row is left out"
                )),
                Err(e) => notes.push(format!("docker save row left out: {e:#}")),
            }
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
            layers_from: None,
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
            layers_from: None,
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
            layers_from: None,
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

// Not inlined, so that its growth moves the code after it.
//
//go:noinline
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

/// The catalogue base the docker save row builds on: the glibc one, whose layers are the
/// largest of the stand-ins.
const BASE_IMAGE: &str = "gcr.io/distroless/cc-debian12:latest";

/// An image of `program` on [`BASE_IMAGE`] (built, `docker save`d, removed; labelled
/// `org.orbitdock.bench=delta`), and the `docker save` of the base itself (what the satellite's
/// engine can export). `None` when the base is not in the engine.
fn image_on_base(dir: &Path, program: &Path) -> anyhow::Result<Option<(PathBuf, PathBuf)>> {
    if !succeeds("docker", &["image", "inspect", BASE_IMAGE]) {
        return Ok(None);
    }
    eprintln!("building an image on {BASE_IMAGE}…");
    let ctx = dir.join("image-ctx");
    let _ = std::fs::remove_dir_all(&ctx);
    std::fs::create_dir_all(&ctx)?;
    std::fs::copy(program, ctx.join("app"))?;
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {BASE_IMAGE}\nCOPY app /app\nENTRYPOINT [\"/app\"]\n"),
    )?;
    let tag = format!("orbitdock-bench/delta-app:{}", std::process::id());
    run_ok(
        Command::new("docker")
            .args(["build", "-q", "--network", "none", "--label"])
            .args(["org.orbitdock.bench=delta", "-t", &tag])
            .arg(&ctx),
    )?;
    let (archive, base) = (dir.join("image-app.tar"), dir.join("image-base.tar"));
    let _ = std::fs::remove_file(&archive);
    let _ = std::fs::remove_file(&base);
    let saved = run_ok(
        Command::new("docker")
            .args(["save", "-o"])
            .arg(&archive)
            .arg(&tag),
    );
    let _ = Command::new("docker").args(["rmi", &tag]).output();
    saved?;
    run_ok(
        Command::new("docker")
            .args(["save", "-o"])
            .arg(&base)
            .arg(BASE_IMAGE),
    )?;
    Ok(Some((archive, base)))
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
