//! Executables in the final image: ELF machine (OD501), loader (OD502), libraries (OD503),
//! glibc symbol versions (OD504), script interpreters (OD505), unreadable ELF (OD506).
//!
//! Only the first bytes of each copied file are read (the ELF header, then the program headers,
//! dynamic section, string table and version needs by offset), so a large context costs little
//! more than its directory walk.

use std::collections::BTreeSet;

use dockerfile::Args;

use crate::catalogue::{BaseImage, library_matches};
use crate::context::ContextFile;
use crate::elf::{self, ElfInfo};
use crate::lint::{BinaryFacts, Cx, Root};
use crate::rules::run::base_name;

/// What the image offers a binary: the base's libraries and interpreters plus what the build
/// copies in. `known == false` when the base or copied content is unknown: then only the machine
/// is checked.
pub(crate) struct Provided<'a> {
    pub(crate) base: Option<&'a BaseImage>,
    pub(crate) label: String,
    pub(crate) known: bool,
    /// Basenames of files copied into the image.
    pub(crate) names: BTreeSet<String>,
    /// Image paths of files copied into the image.
    pub(crate) paths: BTreeSet<String>,
}

/// One finding about one binary.
pub(crate) struct Finding {
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) help: String,
}

/// OD501–OD504 for one ELF file.
///
/// ```text
/// FROM gcr.io/distroless/static-debian12
/// COPY app /app          # OD501 if app is x86-64 on a flight system (arm64)
///                        # OD502 if app is dynamically linked (no loader in this base)
/// FROM gcr.io/distroless/cc-debian12
/// COPY app /app          # OD503 if app needs libssl.so.3; OD504 if it needs GLIBC_2.38
/// ```
pub(crate) fn check_elf(
    info: &ElfInfo,
    name: &str,
    platform: &str,
    system: &str,
    provided: &Provided<'_>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let want = platform.split('/').nth(1).unwrap_or("");
    let arch = elf::machine_arch(info.machine, info.class64);
    let want = match want {
        "aarch64" => "arm64",
        "x86_64" => "amd64",
        w => w,
    };
    if info.elf_type == 1 {
        return out; // A relocatable object is not run.
    }
    if arch != want {
        out.push(Finding {
            code: "OD501",
            message: format!(
                "`{name}` is a {} ELF binary, but system `{system}` runs {platform}: it cannot execute there",
                elf::machine_name(info.machine)
            ),
            help: match want {
                "arm64" => "cross-compile for arm64: `aarch64-linux-gnu-gcc -static`, `cargo build --target aarch64-unknown-linux-musl`, or `cross`".into(),
                "amd64" => "build for x86-64 (the Engineering Model's machine), or lint against the flight system".into(),
                other => format!("build for {other}"),
            },
        });
        return out;
    }
    if !provided.known {
        return out;
    }
    let has = |lib: &str| {
        provided.names.contains(lib)
            || provided
                .base
                .is_some_and(|b| b.libraries.iter().any(|p| library_matches(p, lib)))
    };
    if let Some(interp) = &info.interpreter {
        let base = interp.rsplit('/').next().unwrap_or(interp);
        if !has(base) && !provided.paths.contains(interp) {
            out.push(Finding {
                code: "OD502",
                message: format!("`{name}` is dynamically linked and needs the loader `{interp}`, which {} does not have", provided.label),
                help: "link it statically (`gcc -static`, a `*-linux-musl` Rust target, or `-C target-feature=+crt-static`), or use `gcr.io/distroless/cc-debian12`".into(),
            });
            return out;
        }
    }
    let missing: Vec<&String> = info.needed.iter().filter(|l| !has(l)).collect();
    for lib in missing {
        out.push(Finding {
            code: "OD503",
            message: format!("`{name}` needs the shared library `{lib}`, which is neither in {} nor in the upload", provided.label),
            help: format!("link `{lib}` statically, or upload it and COPY it next to the binary (with an rpath of `$ORIGIN` or `ENV LD_LIBRARY_PATH`)"),
        });
    }
    if let (Some((need, version, file)), Some(have)) =
        (elf::max_glibc(info), provided.base.and_then(|b| b.glibc))
        && need > have
    {
        out.push(Finding {
            code: "OD504",
            message: format!("`{name}` needs `{version}` (from `{file}`), but {} has glibc {have}", provided.label),
            help: format!("build against glibc {have} or older (e.g. in a Debian 12 container), or link statically"),
        });
    }
    out
}

/// OD505 for one script: its `#!` interpreter, and the program `env` would run.
///
/// ```text
/// FROM busybox
/// COPY run.py /run.py    # `#!/usr/bin/python3`: OD505, busybox has no python
/// COPY job.sh /job.sh    # `#!/usr/bin/env bash`: OD505, env exists but bash does not
/// ENTRYPOINT ["/run.py"]
/// ```
pub(crate) fn check_script(
    interp: &str,
    args: &[String],
    name: &str,
    provided: &Provided<'_>,
) -> Option<Finding> {
    if !provided.known {
        return None;
    }
    let interpreters = provided
        .base
        .map(|b| b.interpreters.as_slice())
        .unwrap_or_default();
    let present = |p: &str| provided.paths.contains(p) || interpreters.iter().any(|i| i == p);
    let help = || {
        match interpreters {
        [first, ..] => format!("use `#!{first}`, or ship a static binary instead of the script"),
        _ => "this base has no script interpreter: ship a static binary, or use `busybox` for `#!/bin/sh` scripts".into(),
    }
    };
    if !present(interp) {
        return Some(Finding {
            code: "OD505",
            message: format!(
                "`{name}` starts with `#!{interp}`, which {} does not have",
                provided.label
            ),
            help: help(),
        });
    }
    if interp.rsplit('/').next() == Some("env") {
        let target = args.iter().find(|a| !a.starts_with('-'))?;
        let wanted = target.rsplit('/').next().unwrap_or(target);
        let found = provided
            .paths
            .iter()
            .chain(interpreters)
            .any(|p| p.rsplit('/').next() == Some(wanted));
        if !found {
            return Some(Finding {
                code: "OD505",
                message: format!(
                    "`{name}` runs `{target}` through `{interp}`, and {} has no `{wanted}`",
                    provided.label
                ),
                help: help(),
            });
        }
    }
    None
}

/// Runs the binary and script checks on every context file that reaches the final stage.
pub(crate) fn check_final_stage(cx: &mut Cx<'_>) {
    let Some((source, _)) = cx.context else {
        return;
    };
    let Some(stage) = cx.stages.last().cloned() else {
        return;
    };
    let base = match stage.root {
        Root::Catalogue(i) => Some(&cx.system.catalogue.images[i]),
        _ => None,
    };
    let known = matches!(stage.root, Root::Catalogue(_) | Root::Scratch) && !stage.opaque;
    let mut names: BTreeSet<String> = stage.copied_names.iter().cloned().collect();
    let mut paths = BTreeSet::new();
    for p in &stage.placed {
        names.insert(p.image_path.rsplit('/').next().unwrap_or("").to_string());
        paths.insert(p.image_path.clone());
    }
    let provided = Provided {
        base,
        label: base_name(cx, &stage),
        known,
        names,
        paths,
    };
    // Image paths the container starts with (exec-form ENTRYPOINT/CMD, first element).
    let started: BTreeSet<String> = [stage.entrypoint, stage.cmd]
        .into_iter()
        .flatten()
        .filter_map(|i| match &cx.df.instructions[i].args {
            Args::Exec { items, .. } => items
                .first()
                .map(|p| crate::lint::join_image_path(&stage.workdir, p)),
            Args::Shell { .. } => None,
        })
        .collect();
    let mut seen = BTreeSet::new();
    let mut findings = Vec::new();
    let mut facts = Vec::new();
    for p in &stage.placed {
        if p.size < 4 || !seen.insert((p.ctx_path.clone(), p.image_path.clone())) {
            continue;
        }
        let mut head = [0u8; 256];
        let Ok(n) = source.read_at(&p.ctx_path, 0, &mut head) else {
            continue;
        };
        let head = &head[..n];
        if elf::is_elf(head) {
            let file = ContextFile {
                source,
                path: &p.ctx_path,
                len: p.size,
            };
            match elf::parse(&file) {
                Ok(info) => {
                    for f in check_elf(
                        &info,
                        &p.ctx_path,
                        &cx.system.platform,
                        &cx.system.name,
                        &provided,
                    ) {
                        findings.push((p.ins, f));
                    }
                    facts.push(BinaryFacts {
                        context_path: p.ctx_path.clone(),
                        image_path: p.image_path.clone(),
                        arch: elf::machine_arch(info.machine, info.class64).to_string(),
                        is_static: info.is_static(),
                        interpreter: info.interpreter.clone(),
                        needed: info.needed.clone(),
                        glibc: elf::max_glibc(&info).map(|g| g.0),
                    });
                }
                Err(e) => findings.push((
                    p.ins,
                    Finding {
                        code: "OD506",
                        message: format!(
                            "`{}` starts like an ELF binary but cannot be read: {}",
                            p.ctx_path, e.0
                        ),
                        help: "the upload may be truncated or corrupt: upload the file again"
                            .into(),
                    },
                )),
            }
        } else if let Some((interp, args)) = elf::shebang(head) {
            let executable =
                source_mode(cx, &p.ctx_path) & 0o111 != 0 || started.contains(&p.image_path);
            facts.push(BinaryFacts {
                context_path: p.ctx_path.clone(),
                image_path: p.image_path.clone(),
                arch: "script".into(),
                is_static: false,
                interpreter: Some(interp.clone()),
                needed: Vec::new(),
                glibc: None,
            });
            if executable && let Some(f) = check_script(&interp, &args, &p.ctx_path, &provided) {
                findings.push((p.ins, f));
            }
        }
    }
    for (ins, f) in findings {
        let ins = &cx.df.instructions[ins];
        cx.whole(f.code, ins, f.message, Some(f.help));
    }
    cx.facts.binaries.extend(facts);
}

fn source_mode(cx: &Cx<'_>, path: &str) -> u32 {
    cx.context
        .and_then(|(_, index)| index.get(path))
        .map_or(0, |(e, _)| e.mode)
}
