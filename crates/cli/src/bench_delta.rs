//! `orbitdock bench delta`: the bytes the link would carry for each change of a corpus this
//! command builds, beside the delta tools installed on this machine, with the targets of the
//! delta engine judged per row.
//!
//! The corpus: C (gcc, aarch64-linux-gnu-gcc), Go (`go`, GOARCH amd64 and arm64) and Rust
//! (rustc, each target whose standard library is installed) static programs, stripped as
//! they would be deployed, with a string
//! change, an arithmetic change that moves code and a new command-line flag; a C program whose
//! library is bumped; a new app (no base); the same app as a `docker save` archive on the
//! catalogue's glibc base (its stand-in, when the engine holds it), whose base layers are
//! onboard; a 3 MB tar of Python sources with two one-line edits; a 200 MB dataset with 1 %
//! appended. A toolchain or anchor that is absent is skipped
//! and said so. Every patch of ours is applied by a child `orbitdock delta apply` (its peak
//! memory is measured) and compared byte for byte; every anchor's patch is decoded by the
//! anchor and compared too.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};

use crate::delta::group;

mod corpus;
use corpus::corpus;

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
    ImageOnBase,
}

struct Case {
    name: String,
    arch: Arch,
    change: Change,
    old: Option<PathBuf>,
    new: PathBuf,
    /// A `docker save` of the base image onboard: its layers cost nothing (the layers kind).
    layers_from: Option<PathBuf>,
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
    let baseline = apply_in_child(None, &tiny_patch, &tiny_out, &[])?;
    let (mut met, mut missed) = (0, 0);
    for case in &cases {
        eprintln!("… {}", case.name);
        let new = std::fs::read(&case.new)?;
        let old = case.old.as_ref().map(std::fs::read).transpose()?;
        let t = Instant::now();
        let (mut patch, _) = delta::make_with(old.as_deref(), &new, delta::MakeOptions::default());
        let layers_from: Vec<PathBuf> = case.layers_from.iter().cloned().collect();
        let onboard = crate::delta::layers_of(&layers_from)?;
        let onboard_ids: std::collections::HashSet<[u8; 32]> = onboard.0.keys().copied().collect();
        if let Some(p) = delta::make_layers(old.as_deref(), &new, &onboard_ids)
            && p.len() < patch.len()
        {
            patch = p;
        }
        let make_s = t.elapsed().as_secs_f64();
        let kind = delta::Header::read(&patch)?.kind;
        let stem = case.new.with_extension("");
        let patch_path = stem.with_extension("odpatch");
        let back = stem.with_extension("back");
        let _ = std::fs::remove_file(&patch_path);
        let _ = std::fs::remove_file(&back);
        std::fs::write(&patch_path, &patch)?;
        let rss = apply_in_child(case.old.as_deref(), &patch_path, &back, &layers_from)?
            .saturating_sub(baseline);
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
        if case.change == Change::ImageOnBase {
            // Every base layer in the archive is named, not carried: 0 bytes each.
            let named = delta::layers::named(&patch).unwrap_or_default();
            let in_archive: Vec<u64> = delta::layers::entries(&new)
                .iter()
                .filter(|e| {
                    e.is_file()
                        && new
                            .get(e.offset..e.offset + e.size as usize)
                            .is_some_and(|b| onboard_ids.contains(&delta::sha256(b)))
                })
                .map(|e| e.size)
                .collect();
            let base_bytes: u64 = in_archive.iter().sum();
            judge(
                !in_archive.is_empty() && named.len() == in_archive.len(),
                format!(
                    "preloaded base layers 0 bytes ({} layers, {} bytes in the archive)",
                    in_archive.len(),
                    group(base_bytes)
                ),
            );
        } else if case.change == Change::NewApp {
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

/// Applies with a child `orbitdock delta apply` (its layers from `layers_from`); its peak
/// resident memory (VmHWM) in bytes.
fn apply_in_child(
    old: Option<&Path>,
    patch: &Path,
    out: &Path,
    layers_from: &[PathBuf],
) -> anyhow::Result<u64> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg("delta")
        .arg("apply")
        .arg(old.unwrap_or(Path::new("-")))
        .arg(patch)
        .arg(out);
    for l in layers_from {
        cmd.arg("--layers-from").arg(l);
    }
    let done = cmd
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
