//! `orbitdock delta make|apply`: the patches the link would carry, for users and CI.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

use crate::args::{DeltaArgs, DeltaWhat, PatchKind};
use crate::verbs::Cli;

/// `delta make -o json`: the patch written, what it was made from, and every kind tried.
#[derive(Debug, Serialize)]
struct Made {
    /// The base file; `null` for `-` (no base: the patch carries NEW whole).
    old: Option<String>,
    new: String,
    patch: String,
    /// The kind of the patch written (`whole-zstd`, `zstd-ref`, `bsdiff`, `exe`, `layers`).
    kind: String,
    /// The patch's bytes.
    bytes: u64,
    new_bytes: u64,
    old_bytes: Option<u64>,
    tried: Vec<Tried>,
}

/// One kind `delta make` tried: its patch's bytes, `null` when it made none.
#[derive(Debug, Serialize)]
struct Tried {
    kind: String,
    bytes: Option<u64>,
}

/// `delta apply -o json`: the file written, and the patch it came from.
#[derive(Debug, Serialize)]
struct Applied {
    old: Option<String>,
    patch: String,
    new: String,
    /// The new file's bytes, and its sha256 (hex), which the patch declared and was checked.
    bytes: u64,
    sha256: String,
    kind: String,
    patch_bytes: u64,
}

pub(crate) fn run(cli: &Cli, a: DeltaArgs) -> anyhow::Result<ExitCode> {
    match a.what {
        DeltaWhat::Make {
            old: old_path,
            new,
            patch,
            kind,
            layers_from,
        } => {
            let old = read_base(&old_path)?;
            let new_bytes = std::fs::read(&new).with_context(|| format!("{}", new.display()))?;
            let onboard: std::collections::HashSet<[u8; 32]> =
                layers_of(&layers_from)?.0.keys().copied().collect();
            let layered = || {
                (!onboard.is_empty())
                    .then(|| delta::make_layers(old.as_deref(), &new_bytes, &onboard))
                    .flatten()
            };
            let (bytes, candidates) = match kind {
                None => {
                    let (mut best, mut tried) =
                        delta::make_with(old.as_deref(), &new_bytes, delta::MakeOptions::default());
                    if !onboard.is_empty() {
                        let p = layered();
                        tried.push(delta::Candidate {
                            kind: delta::Kind::Layers,
                            size: p.as_ref().map(Vec::len),
                        });
                        if let Some(p) = p.filter(|p| p.len() < best.len()) {
                            best = p;
                        }
                    }
                    (best, tried)
                }
                Some(PatchKind::Layers) => {
                    let p = layered().context(
                        "no layers patch: NEW is no tar archive, or none of its members is in --layers-from",
                    )?;
                    let c = vec![delta::Candidate {
                        kind: delta::Kind::Layers,
                        size: Some(p.len()),
                    }];
                    (p, c)
                }
                Some(k) => {
                    let kind = match k {
                        PatchKind::WholeZstd => delta::Kind::Whole,
                        PatchKind::ZstdRef => delta::Kind::ZstdRef,
                        PatchKind::Bsdiff => delta::Kind::Bsdiff,
                        PatchKind::Exe => delta::Kind::Exe,
                        PatchKind::Layers => delta::Kind::Layers,
                    };
                    let p = delta::make_kind(
                        kind,
                        old.as_deref(),
                        &new_bytes,
                        delta::MakeOptions::default(),
                    )
                    .with_context(|| format!("no {kind} patch for these files"))?;
                    let c = vec![delta::Candidate {
                        kind,
                        size: Some(p.len()),
                    }];
                    (p, c)
                }
            };
            write_new(&patch, &bytes)?;
            let header = delta::Header::read(&bytes)?;
            let made = Made {
                old: old.as_ref().map(|_| old_path.display().to_string()),
                new: new.display().to_string(),
                patch: patch.display().to_string(),
                kind: header.kind.to_string(),
                bytes: bytes.len() as u64,
                new_bytes: new_bytes.len() as u64,
                old_bytes: old.as_ref().map(|o| o.len() as u64),
                tried: candidates
                    .iter()
                    .map(|c| Tried {
                        kind: c.kind.to_string(),
                        bytes: c.size.map(|s| s as u64),
                    })
                    .collect(),
            };
            cli.show(&made, |m| {
                println!(
                    "{}: {} bytes ({}), new {} bytes, old {}",
                    m.patch,
                    group(m.bytes),
                    m.kind,
                    group(m.new_bytes),
                    m.old_bytes
                        .map_or("none".to_string(), |o| format!("{} bytes", group(o)))
                );
                let tried: Vec<String> = m
                    .tried
                    .iter()
                    .map(|c| format!("{} {}", c.kind, c.bytes.map_or("n/a".to_string(), group)))
                    .collect();
                println!("kinds tried: {}", tried.join(", "));
            })?;
            Ok(ExitCode::SUCCESS)
        }
        DeltaWhat::Apply {
            old: old_path,
            patch,
            new,
            layers_from,
        } => {
            let old = read_base(&old_path)?;
            let bytes = std::fs::read(&patch).with_context(|| format!("{}", patch.display()))?;
            let header =
                delta::Header::read(&bytes).with_context(|| format!("{}", patch.display()))?;
            let mut layers = layers_of(&layers_from)?;
            let out = delta::apply_with_layers(
                old.as_deref(),
                &bytes,
                delta::Limits::default(),
                &mut layers,
            )
            .with_context(|| format!("applying {}", patch.display()))?;
            write_new(&new, &out)?;
            if std::env::var_os("ORBITDOCK_REPORT_PEAK_MEMORY").is_some() {
                // For `bench delta`: this process's peak resident memory (VmHWM), which a
                // parent cannot read reliably (wait4's ru_maxrss counts the parent's memory
                // at the fork).
                let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
                if let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:")) {
                    eprintln!("peak {line}");
                }
            }
            let applied = Applied {
                old: old.as_ref().map(|_| old_path.display().to_string()),
                patch: patch.display().to_string(),
                new: new.display().to_string(),
                bytes: out.len() as u64,
                sha256: hex(&header.result_sha256),
                kind: header.kind.to_string(),
                patch_bytes: bytes.len() as u64,
            };
            cli.show(&applied, |a| {
                println!(
                    "{}: {} bytes, sha256 {}, from a {}-byte {} patch",
                    a.new,
                    group(a.bytes),
                    a.sha256,
                    group(a.patch_bytes),
                    a.kind
                )
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The members of the tar archives `paths` of at least `delta::layers::MIN_SPLICE` bytes, by
/// sha256: the layers `--layers-from` says the satellite can produce.
pub(crate) fn layers_of(paths: &[std::path::PathBuf]) -> anyhow::Result<delta::MemoryLayers> {
    let mut layers = delta::MemoryLayers::default();
    for p in paths {
        let bytes = std::fs::read(p).with_context(|| format!("{}", p.display()))?;
        let entries = delta::layers::entries(&bytes);
        if entries.is_empty() {
            anyhow::bail!("{}: not a tar archive", p.display());
        }
        for e in entries {
            if e.is_file() && e.size >= delta::layers::MIN_SPLICE {
                let end = e.offset + e.size as usize;
                layers.insert(bytes[e.offset..end].to_vec());
            }
        }
    }
    Ok(layers)
}

fn read_base(path: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    if path == Path::new("-") {
        return Ok(None);
    }
    Ok(Some(
        std::fs::read(path).with_context(|| format!("{}", path.display()))?,
    ))
}

/// Writes `bytes` to a new file `path` (never over an existing one), synced.
pub(crate) fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("{}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("{}", path.display()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// 1234567 → "1,234,567".
pub(crate) fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
