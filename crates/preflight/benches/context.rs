//! Linting a large build context costs little more than walking it: compares reading every byte
//! of a ~1 GB context with `lint_context` on it (which reads only the heads of copied files and
//! the ELF structures it needs), and the same for a `docker save`-style archive.
//!
//! `cargo bench -p preflight --bench context` (size in MiB: `PREFLIGHT_BENCH_MB`, default 1024).

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use preflight::{ArchiveOptions, Eta, Options, System, lint_archive, lint_context};

fn main() {
    let mb: u64 = std::env::var("PREFLIGHT_BENCH_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024);
    let dir = tempfile::tempdir().expect("temp dir");
    let ctx = dir.path().join("ctx");
    let t = Instant::now();
    let (files, bytes, binaries) = make_context(&ctx, mb << 20);
    let made = t.elapsed();

    let read = best_of(3, || read_all(&ctx));
    let systems = [
        System::flight("sat1"),
        System::em(preflight::host_platform()),
    ];
    let mut rows = vec![(
        "read every byte of the context (baseline)".to_string(),
        read,
    )];
    let mut found = Vec::new();
    for system in &systems {
        let mut report = None;
        let d = best_of(3, || {
            report = Some(lint_context(
                &ctx,
                &ctx.join("Dockerfile"),
                system,
                &Options::onboard(),
            ));
        });
        let report = report.unwrap();
        found.push(format!(
            "{}: {} binaries checked, {}",
            system.name,
            report.facts.binaries.len(),
            report.summary()
        ));
        rows.push((
            format!("lint_context, system {} ({})", system.name, system.platform),
            d,
        ));
    }

    let archive = dir.path().join("image.tar");
    let layer_bytes = make_archive(&archive, (mb << 20) / 2);
    let read_archive = best_of(3, || read_file(&archive));
    let lint_arch = best_of(3, || {
        let _ = lint_archive(
            &archive,
            Some("bench:latest"),
            &systems[0],
            &ArchiveOptions {
                known_layers: &[],
                eta: Eta::Rate {
                    bytes_per_second: 2_000.0,
                },
            },
        );
    });
    rows.push((
        "read every byte of the archive (baseline)".to_string(),
        read_archive,
    ));
    rows.push(("lint_archive".to_string(), lint_arch));

    println!();
    println!(
        "context: {} in {files} files ({binaries} ELF binaries), made in {:.1} s",
        human(bytes),
        made.as_secs_f64()
    );
    println!("archive: {} of layers", human(layer_bytes));
    println!();
    println!(
        "| {:<48} | {:>10} | {:>14} |",
        "step (best of 3, page cache warm)", "time", "vs its read"
    );
    println!("|{}|{}|{}|", "-".repeat(50), "-".repeat(12), "-".repeat(16));
    for (i, (name, d)) in rows.iter().enumerate() {
        let base = if i < 3 { read } else { read_archive };
        let ratio = if name.starts_with("read") {
            "1.00x".to_string()
        } else {
            format!("{:.3}x", d.as_secs_f64() / base.as_secs_f64())
        };
        println!(
            "| {:<48} | {:>7.1} ms | {:>14} |",
            name,
            d.as_secs_f64() * 1000.0,
            ratio
        );
    }
    println!();
    for f in found {
        println!("{f}");
    }
}

fn best_of(n: usize, mut f: impl FnMut()) -> Duration {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap()
}

/// Pseudo-random bytes (incompressible, so nothing is special-cased by the filesystem).
fn fill(buf: &mut [u8], seed: &mut u64) {
    for chunk in buf.chunks_mut(8) {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let b = seed.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

/// A context of about `total` bytes: large data files, many small ones, and copies of host
/// binaries (static and dynamic) that the lint must inspect; `COPY . /app/` copies all of it.
fn make_context(ctx: &Path, total: u64) -> (u64, u64, u64) {
    std::fs::create_dir_all(ctx.join("data")).unwrap();
    std::fs::create_dir_all(ctx.join("small")).unwrap();
    std::fs::create_dir_all(ctx.join("bin")).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM gcr.io/distroless/cc-debian12\nCOPY . /app/\nUSER 65532:65532\nENTRYPOINT [\"/app/bin/tool-0\"]\n",
    )
    .unwrap();
    let mut seed = 0x1234_5678_9abc_def1u64;
    let (mut files, mut bytes, mut binaries) = (1u64, 0u64, 0u64);
    let elfs: Vec<Vec<u8>> = ["/bin/busybox", "/bin/ls", "/usr/bin/env"]
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .collect();
    for i in 0..100 {
        let Some(elf) = elfs.get(i % elfs.len().max(1)) else {
            break;
        };
        std::fs::write(ctx.join(format!("bin/tool-{i}")), elf).unwrap();
        files += 1;
        binaries += 1;
        bytes += elf.len() as u64;
    }
    let small_total = total / 5;
    let mut buf = vec![0u8; 64 * 1024];
    let mut i = 0;
    while bytes < small_total {
        fill(&mut buf, &mut seed);
        std::fs::write(ctx.join(format!("small/f{i:05}.bin")), &buf).unwrap();
        files += 1;
        bytes += buf.len() as u64;
        i += 1;
    }
    let big = 64 << 20;
    let mut chunk = vec![0u8; 1 << 20];
    let mut n = 0;
    while bytes < total {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(ctx.join(format!("data/part{n:03}.bin"))).unwrap(),
        );
        let size = big.min(total - bytes).max(1 << 20);
        let mut written = 0;
        while written < size {
            fill(&mut chunk, &mut seed);
            f.write_all(&chunk).unwrap();
            written += chunk.len() as u64;
        }
        f.flush().unwrap();
        files += 1;
        bytes += written;
        n += 1;
    }
    (files, bytes, binaries)
}

fn read_all(dir: &Path) {
    let mut buf = vec![0u8; 1 << 20];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                let mut f = std::fs::File::open(e.path()).unwrap();
                while f.read(&mut buf).unwrap() > 0 {}
            }
        }
    }
}

fn read_file(p: &Path) {
    let mut buf = vec![0u8; 1 << 20];
    let mut f = std::fs::File::open(p).unwrap();
    while f.read(&mut buf).unwrap() > 0 {}
}

/// A `docker save`-style archive with four layers totalling about `total` bytes.
fn make_archive(path: &Path, total: u64) -> u64 {
    let mut b = tar::Builder::new(std::io::BufWriter::new(
        std::fs::File::create(path).unwrap(),
    ));
    let mut seed = 42u64;
    let per = total / 4;
    let mut layer = vec![0u8; per as usize];
    let mut diff_ids = Vec::new();
    let mut names = Vec::new();
    for i in 0..4 {
        fill(&mut layer, &mut seed);
        let name = format!("{i:064x}/layer.tar");
        let mut h = tar::Header::new_gnu();
        h.set_size(layer.len() as u64);
        h.set_cksum();
        b.append_data(&mut h, &name, layer.as_slice()).unwrap();
        diff_ids.push(format!("sha256:{i:064x}"));
        names.push(name);
    }
    let config = format!(
        r#"{{"architecture":"arm64","os":"linux","config":{{"User":"65532"}},"rootfs":{{"type":"layers","diff_ids":{}}}}}"#,
        serde_json::to_string(&diff_ids).unwrap()
    );
    let manifest = format!(
        r#"[{{"Config":"config.json","RepoTags":["bench:latest"],"Layers":{}}}]"#,
        serde_json::to_string(&names).unwrap()
    );
    for (name, data) in [("config.json", config), ("manifest.json", manifest)] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append_data(&mut h, name, data.as_bytes()).unwrap();
    }
    b.into_inner().unwrap().flush().unwrap();
    per * 4
}

fn human(n: u64) -> String {
    format!("{:.2} GiB", n as f64 / (1u64 << 30) as f64)
}
