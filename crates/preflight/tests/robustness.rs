//! Arbitrary input never panics: seeded random mutations of the corpus Dockerfiles (through
//! preflight and through the flight agent's judge, `dockerfile::onboard::judge`), token soup,
//! mutated and truncated ELF files, and mutated image archives. A failure prints the seed and
//! the input; `PREFLIGHT_SEED=n` replays from seed `n`, `PREFLIGHT_ITERATIONS` runs more.

mod support;

use std::panic::{AssertUnwindSafe, catch_unwind};

use preflight::{
    ArchiveOptions, BuildSite, Builder, Eta, MemContext, Options, System, lint_archive,
    lint_binary, lint_dockerfile_text, lint_source,
};
use support::{Rng, iterations, mutate, seed};

fn systems() -> Vec<(System, Options)> {
    let mut buildkit = System::em("linux/amd64");
    buildkit.builder = Builder::BuildKit;
    let ground = Options {
        site: BuildSite::Ground,
        build_args: vec![("A".into(), "x".into())],
        tenant_images: vec!["t/x".into()],
    };
    vec![
        (System::flight("sat1"), Options::onboard()),
        (buildkit, Options::onboard()),
        (System::flight("sat1"), ground),
    ]
}

#[test]
fn random_dockerfiles_never_panic() {
    let corpus: Vec<String> = support::cases()
        .iter()
        .map(|c| std::fs::read_to_string(c.dir.join("Dockerfile")).unwrap())
        .collect();
    let mut rng = Rng(seed());
    let systems = systems();
    for i in 0..iterations(1500) {
        let base = &corpus[rng.below(corpus.len())];
        let text = if rng.below(10) == 0 {
            mutate(&mut rng, "")
        } else {
            mutate(&mut rng, base)
        };
        let mut ctx = MemContext::new();
        ctx.add("Dockerfile", text.as_bytes());
        ctx.add("app", b"\x7fELF\x02\x01\x01");
        ctx.add("run.sh", b"#!/usr/bin/python3\n");
        ctx.add("dir/a.txt", b"x");
        ctx.add(".dockerignore", b"*.log\n!keep\n[\n**/x\n");
        let result = catch_unwind(AssertUnwindSafe(|| {
            // The flight agent's judge, on the same input.
            if let Ok(judged) = dockerfile::onboard::judge(&text, &["busybox:latest".into()]) {
                let all: Vec<(usize, String)> = judged
                    .uses()
                    .iter()
                    .map(|u| (u.instruction, "x".to_string()))
                    .collect();
                let _ = judged.rewrite(&all);
            }
            for (system, options) in &systems {
                let r = lint_dockerfile_text(&text, "Dockerfile", system, options);
                let _ = r.render();
                let _ = r.to_sarif();
                let _ = lint_source(&ctx, "Dockerfile", system, options);
            }
        }));
        assert!(
            result.is_ok(),
            "panic at seed {} iteration {i} on:\n{text:?}",
            seed()
        );
    }
}

#[test]
fn random_binaries_never_panic() {
    let mut rng = Rng(seed() ^ 0xe1f);
    let originals: Vec<Vec<u8>> = [
        "native-dynamic",
        "aarch64-dynamic",
        "aarch64-static",
        "native-needs-libfoo",
    ]
    .iter()
    .map(|k| std::fs::read(support::artifact(k)).unwrap())
    .collect();
    let systems = systems();
    for i in 0..iterations(1500) {
        let mut b = originals[rng.below(originals.len())].clone();
        match rng.below(3) {
            0 => b.truncate(rng.below(b.len())),
            1 => {
                for _ in 0..1 + rng.below(8) {
                    // Headers, program headers and the dynamic section live in the first pages.
                    let at = rng.below(b.len().min(16 * 1024));
                    b[at] = rng.next() as u8;
                }
            }
            _ => {
                let n = rng.below(512);
                b = b"\x7fELF"
                    .iter()
                    .copied()
                    .chain((0..n).map(|_| rng.next() as u8))
                    .collect();
            }
        }
        let result = catch_unwind(AssertUnwindSafe(|| {
            for (system, _) in &systems {
                for base in [
                    "gcr.io/distroless/cc-debian12",
                    "busybox",
                    "scratch",
                    "acme/x",
                ] {
                    let _ = lint_binary("app", &b, system, base).render();
                }
            }
        }));
        assert!(
            result.is_ok(),
            "panic at seed {} iteration {i} on a {}-byte file",
            seed(),
            b.len()
        );
    }
}

#[test]
fn random_archives_never_panic() {
    let mut rng = Rng(seed() ^ 0x7a7);
    let dir = tempfile::tempdir().unwrap();
    // A small valid archive to mutate.
    let mut valid = Vec::new();
    {
        let mut b = tar::Builder::new(&mut valid);
        let layer = [0u8; 1024];
        let config = format!(
            r#"{{"architecture":"arm64","os":"linux","rootfs":{{"diff_ids":["{}"]}},"config":{{"User":"1"}}}}"#,
            wire::Digest::of(&layer)
        );
        let config_name = format!("{}.json", wire::Digest::of(config.as_bytes()).hex());
        let manifest = format!(
            r#"[{{"Config":"{config_name}","RepoTags":["x:1"],"Layers":["l/layer.tar"]}}]"#
        );
        let files: [(&str, &[u8]); 3] = [
            ("manifest.json", manifest.as_bytes()),
            (&config_name, config.as_bytes()),
            ("l/layer.tar", &layer),
        ];
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append_data(&mut h, name, data).unwrap();
        }
        b.finish().unwrap();
    }
    let sys = System::flight("sat1");
    let ok = lint_archive(
        &write(dir.path(), 0, &valid),
        Some("x:1"),
        &sys,
        &ArchiveOptions {
            known_layers: &[],
            eta: Eta::None,
        },
    );
    assert!(!ok.has_errors(), "{}", ok.render());
    for i in 0..iterations(300) {
        let mut b = valid.clone();
        for _ in 0..1 + rng.below(6) {
            match rng.below(3) {
                0 => b.truncate(rng.below(b.len())),
                _ if !b.is_empty() => {
                    let at = rng.below(b.len());
                    b[at] = rng.next() as u8;
                }
                _ => {}
            }
        }
        let path = write(dir.path(), i + 1, &b);
        let result = catch_unwind(AssertUnwindSafe(|| {
            let _ = lint_archive(
                &path,
                Some("x:1"),
                &sys,
                &ArchiveOptions {
                    known_layers: &["sha256:00".into()],
                    eta: Eta::Rate {
                        bytes_per_second: 10.0,
                    },
                },
            )
            .render();
        }));
        assert!(result.is_ok(), "panic at seed {} iteration {i}", seed());
    }
}

fn write(dir: &std::path::Path, i: usize, data: &[u8]) -> std::path::PathBuf {
    let p = dir.join(format!("a{i}.tar"));
    std::fs::write(&p, data).unwrap();
    p
}
