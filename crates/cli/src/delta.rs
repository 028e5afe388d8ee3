//! `orbitdock delta make|apply`: the patches the link would carry, for users and CI.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::args::{DeltaArgs, DeltaWhat, PatchKind};

pub(crate) fn run(a: DeltaArgs) -> anyhow::Result<ExitCode> {
    match a.what {
        DeltaWhat::Make {
            old,
            new,
            patch,
            kind,
        } => {
            let old = read_base(&old)?;
            let new_bytes = std::fs::read(&new).with_context(|| format!("{}", new.display()))?;
            let (bytes, candidates) = match kind {
                None => delta::make_with(old.as_deref(), &new_bytes, delta::MakeOptions::default()),
                Some(k) => {
                    let kind = match k {
                        PatchKind::WholeZstd => delta::Kind::Whole,
                        PatchKind::ZstdRef => delta::Kind::ZstdRef,
                        PatchKind::Bsdiff => delta::Kind::Bsdiff,
                        PatchKind::Exe => delta::Kind::Exe,
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
            println!(
                "{}: {} bytes ({}), new {} bytes, old {}",
                patch.display(),
                group(bytes.len() as u64),
                header.kind,
                group(new_bytes.len() as u64),
                old.as_ref().map_or("none".to_string(), |o| format!(
                    "{} bytes",
                    group(o.len() as u64)
                ))
            );
            let tried: Vec<String> = candidates
                .iter()
                .map(|c| {
                    format!(
                        "{} {}",
                        c.kind,
                        c.size.map_or("n/a".to_string(), |s| group(s as u64))
                    )
                })
                .collect();
            println!("kinds tried: {}", tried.join(", "));
            Ok(ExitCode::SUCCESS)
        }
        DeltaWhat::Apply { old, patch, new } => {
            let old = read_base(&old)?;
            let bytes = std::fs::read(&patch).with_context(|| format!("{}", patch.display()))?;
            let header =
                delta::Header::read(&bytes).with_context(|| format!("{}", patch.display()))?;
            let out = delta::apply(old.as_deref(), &bytes)
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
            println!(
                "{}: {} bytes, sha256 {}, from a {}-byte {} patch",
                new.display(),
                group(out.len() as u64),
                hex(&header.result_sha256),
                group(bytes.len() as u64),
                header.kind
            );
            Ok(ExitCode::SUCCESS)
        }
    }
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
