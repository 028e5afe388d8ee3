//! Every error-level rule against the real Docker Engine: the corpus cases marked `# docker:`
//! are built with the classic builder, no network and only the stand-in catalogue images, and
//! the build (or `docker run --network none` of the image) must fail exactly where preflight
//! reports an error first; good cases must build and run. Archive and input rules have their own
//! tests below.
//!
//! Needs the Docker Engine, gcc and gcc-aarch64-linux-gnu (`.ci/run` provides them); fails when
//! they are missing. Images built here carry `org.orbitdock.test=1` and are removed afterwards.
//! No image is ever pulled: every reference is checked to be local or on a loopback registry
//! (which refuses the connection) before a build starts.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use preflight::{
    ArchiveOptions, BaseImage, Eta, Options, Severity, System, lint_archive, lint_context,
    lint_dockerfile_text,
};
use support::{artifact, cases, context_of, materialize};

const TEST_LABEL: &str = "org.orbitdock.test=1";

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap_or_else(|e| panic!("cannot run docker: {e}"))
}

fn ok(out: &Output) -> bool {
    out.status.success()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Removes the images a test tagged, even when the test fails.
struct Images(Vec<String>);

impl Drop for Images {
    fn drop(&mut self) {
        // Builds use --no-cache, so removing a tag removes only that build's own layers.
        for i in &self.0 {
            let _ = docker(&["rmi", "-f", i]);
        }
    }
}

fn engine() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        let info = docker(&["info", "--format", "{{.ServerVersion}}"]);
        assert!(
            ok(&info),
            "the Docker Engine is not reachable (start dockerd): {}",
            text(&info)
        );
        ensure_stand_ins();
    });
}

/// Builds the stand-in base images under the catalogue's names when they are absent, exactly as
/// `orbitdock flight seed-bases` does (`standins::seed_bases`): `FROM scratch` plus the host's
/// files.
fn ensure_stand_ins() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime for seeding the stand-ins");
    let catalogue = runtime
        .block_on(standins::seed_bases(&mut |l| eprintln!("seed: {l}")))
        .unwrap_or_else(|e| panic!("building the stand-in base images failed: {e}"));
    assert!(
        catalogue.iter().all(|b| b.digest.is_some()),
        "{catalogue:?}"
    );
}

/// Refuses to build a Dockerfile that would make the engine pull from a registry other than a
/// loopback one (nothing may leave this machine).
fn assert_no_pull(dockerfile: &str) {
    let mut stages = BTreeSet::new();
    let mut refs = Vec::new();
    for line in dockerfile.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(first) = words.first() else { continue };
        if first.eq_ignore_ascii_case("FROM") {
            let rest: Vec<&str> = words[1..]
                .iter()
                .copied()
                .filter(|w| !w.starts_with("--"))
                .collect();
            if let Some(image) = rest.first() {
                refs.push(image.to_string());
            }
            if rest.len() == 3 {
                stages.insert(rest[2].to_ascii_lowercase());
            }
        }
        for w in &words {
            if let Some(v) = w.strip_prefix("--from=") {
                refs.push(v.to_string());
            }
        }
    }
    for r in refs {
        let lower = r.to_ascii_lowercase();
        if lower == "scratch"
            || stages.contains(&lower)
            || r.parse::<usize>().is_ok()
            || r.contains('$')
        {
            continue;
        }
        if r.starts_with("127.0.0.1:") || r.starts_with("localhost:") {
            continue;
        }
        assert!(
            ok(&docker(&["image", "inspect", &r])),
            "`{r}` is not a local image: building would pull it from a registry"
        );
    }
}

fn build(ctx: &Path, dockerfile: &Path, tag: &str) -> Output {
    assert_no_pull(&std::fs::read_to_string(dockerfile).unwrap_or_default());
    let out = docker(&[
        "build",
        "--network",
        "none",
        "--pull=false",
        "--force-rm",
        "--no-cache",
        "--label",
        TEST_LABEL,
        "-t",
        tag,
        "-f",
        dockerfile.to_str().unwrap(),
        ctx.to_str().unwrap(),
    ]);
    if !ok(&out) {
        remove_intermediates(&text(&out));
    }
    out
}

/// A failed classic build leaves the images of its successful steps behind, untagged: remove
/// those this build created (never a FROM step's image, never a tagged one, never a cached one).
fn remove_intermediates(log: &str) {
    let mut ids = Vec::new();
    let mut after_from = false;
    let mut cached = false;
    for line in log.lines() {
        let l = line.trim();
        if let Some(step) = l.strip_prefix("Step ") {
            after_from = step
                .split_once(" : ")
                .is_some_and(|(_, ins)| ins.to_ascii_uppercase().starts_with("FROM"));
            cached = false;
        } else if l == "---> Using cache" {
            cached = true;
        } else if let Some(id) = l.strip_prefix("---> ")
            && id.len() == 12
            && id.chars().all(|c| c.is_ascii_hexdigit())
            && !after_from
            && !cached
        {
            ids.push(id.to_string());
        }
    }
    for id in ids.iter().rev() {
        let tags = docker(&["image", "inspect", "--format", "{{len .RepoTags}}", id]);
        if ok(&tags) && String::from_utf8_lossy(&tags.stdout).trim() == "0" {
            let _ = docker(&["rmi", id]);
        }
    }
}

fn run(tag: &str) -> Output {
    Command::new("timeout")
        .args([
            "120",
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            "--label",
            TEST_LABEL,
            tag,
        ])
        .output()
        .expect("cannot run docker run")
}

/// Error-level rules verified by the dedicated tests below rather than by corpus cases. OD606
/// and OD607 archives fail onboard because the flight's own judge refuses them before the engine
/// sees them: `tests/archives_agree.rs` runs that judge (`imagefmt::judge_load`) on every case.
/// OD106 is about a `pod.run` image, not a Dockerfile: the flight agent's pod tests
/// (`flight/src/tasks/pods.rs`, same classification) show it refused onboard. OD107 is about a
/// `pod.run`'s node: `gpu_pods_get_the_gpu_or_are_refused` (same file) shows a GPU pod refused
/// on a machine without one.
const VERIFIED_ELSEWHERE: &[&str] = &[
    "OD000", "OD103", "OD106", "OD107", "OD601", "OD602", "OD606", "OD607",
];

/// Error-level rules for what the flight agent refuses before the engine sees the Dockerfile,
/// whatever the engine would make of it: `tests/judges_agree.rs` shows the agent refuses them.
const REFUSED_BY_THE_FLIGHT_AGENT: &[&str] = &["OD007", "OD008"];

/// Error-level rules of BuildKit's reading only (a heredoc with no end), which the classic
/// engine these tests build with never meets: it reads the lines after `RUN <<EOF` as
/// instructions (OD001, shown by `bad-unterminated-heredoc`).
const BUILDKIT_ONLY: &[&str] = &["OD003"];

#[test]
fn corpus_cases_fail_on_the_real_engine_where_preflight_says() {
    engine();
    let mut failures = Vec::new();
    let mut verified: BTreeSet<&'static str> = VERIFIED_ELSEWHERE
        .iter()
        .chain(REFUSED_BY_THE_FLIGHT_AGENT)
        .chain(BUILDKIT_ONLY)
        .copied()
        .collect();
    let cases: Vec<_> = cases().into_iter().filter(|c| c.docker.is_some()).collect();
    assert!(cases.len() >= 20, "only {} docker cases", cases.len());
    for case in &cases {
        let spec = case.docker.as_deref().unwrap();
        // `MODE WHY`: WHY must appear in the engine's output (the build's, or the run's).
        let (mode, why) = spec.split_once(' ').unwrap_or((spec, ""));
        assert_eq!(
            case.system.name, "em",
            "{}: docker cases run on the Engineering Model",
            case.name
        );
        let tmp = materialize(case);
        let ctx = context_of(&tmp);
        let report = lint_context(&ctx, &ctx.join("Dockerfile"), &case.system, &case.options);
        let errors: Vec<&'static str> = report
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| d.code)
            .collect();
        let tag = format!("orbitdock-test/{}:latest", case.name);
        let _images = Images(vec![tag.clone()]);
        let built = build(&ctx, &ctx.join("Dockerfile"), &tag);
        let outcome = match mode {
            "build-fails" if ok(&built) => Err(format!("the build succeeded:\n{}", text(&built))),
            "build-fails" if !text(&built).contains(why) => Err(format!(
                "the build failed without `{why}`:\n{}",
                text(&built)
            )),
            "build-fails" => Ok(()),
            "run-fails" | "run-ok" => {
                if !ok(&built) {
                    Err(format!("the build failed:\n{}", text(&built)))
                } else {
                    let ran = run(&tag);
                    if std::env::var_os("PREFLIGHT_DOCKER_VERBOSE").is_some() {
                        eprintln!("=== {} run\n{}", case.name, text(&ran));
                    }
                    match (mode, ok(&ran)) {
                        ("run-fails", false) | ("run-ok", true) if text(&ran).contains(why) => {
                            Ok(())
                        }
                        _ => Err(format!(
                            "docker run exit {:?}:\n{}",
                            ran.status.code(),
                            text(&ran)
                        )),
                    }
                }
            }
            other => Err(format!("unknown docker mode {other}")),
        };
        if std::env::var_os("PREFLIGHT_DOCKER_VERBOSE").is_some() {
            eprintln!("=== {} ({mode})\n{}", case.name, text(&built));
        }
        let lint_ok = if mode == "run-ok" {
            errors.is_empty()
        } else {
            !errors.is_empty()
        };
        match (outcome, lint_ok) {
            (Ok(()), true) => verified.extend(errors),
            (Ok(()), false) => failures.push(format!(
                "{}: preflight errors {errors:?} disagree with the engine ({mode})\n{}",
                case.name,
                report.render()
            )),
            (Err(e), _) => failures.push(format!("{}: expected {mode}, but {e}", case.name)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    let missing: Vec<&str> = preflight::RULES
        .iter()
        .filter(|r| r.severity == Severity::Error && !verified.contains(r.code))
        .map(|r| r.code)
        .collect();
    assert!(
        missing.is_empty(),
        "error rules never shown failing on the engine: {missing:?}"
    );
}

/// OD103: a digest pin the onboard image does not have. The image is tagged under a loopback
/// registry name so the engine's attempt to resolve the digest is refused locally. A pin of the
/// digest the image does have is refused too: the flight agent classifies catalogue images by
/// name only, and does not resolve pins.
#[test]
fn digest_pin_fails_on_the_real_engine() {
    engine();
    let name = "127.0.0.1:9/orbitdock-test/busybox:latest";
    let tag = docker(&["tag", "busybox:latest", name]);
    assert!(ok(&tag), "{}", text(&tag));
    let _images = Images(vec![
        name.to_string(),
        "orbitdock-test/digest:latest".into(),
    ]);
    let id = String::from_utf8(docker(&["image", "inspect", "--format", "{{.Id}}", name]).stdout)
        .unwrap()
        .trim()
        .to_string();
    let mut system = System::em(preflight::host_platform());
    system.catalogue.images.push(BaseImage {
        name: name.into(),
        platform: system.platform.clone(),
        digest: Some(id.clone()),
        shell: true,
        libraries: Vec::new(),
        glibc: None,
        interpreters: vec!["/bin/sh".into()],
        layers: Vec::new(),
    });
    let wrong = format!("sha256:{}", "1".repeat(64));
    let df =
        format!("FROM 127.0.0.1:9/orbitdock-test/busybox@{wrong}\nUSER 65532\nCMD [\"true\"]\n");
    let report = lint_dockerfile_text(&df, "Dockerfile", &system, &Options::onboard());
    let codes: Vec<_> = report
        .diagnostics
        .iter()
        .map(|d| (d.code, d.line))
        .collect();
    assert_eq!(codes, [("OD103", 1)], "{}", report.render());
    let right =
        format!("FROM 127.0.0.1:9/orbitdock-test/busybox@{id}\nUSER 65532\nCMD [\"true\"]\n");
    let report = lint_dockerfile_text(&right, "Dockerfile", &system, &Options::onboard());
    let codes: Vec<_> = report
        .diagnostics
        .iter()
        .map(|d| (d.code, d.line))
        .collect();
    assert_eq!(codes, [("OD103", 1)], "{}", report.render());
    assert!(
        report.diagnostics[0]
            .message
            .contains("does not resolve digest pins"),
        "{}",
        report.render()
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), &df).unwrap();
    let built = build(
        dir.path(),
        &dir.path().join("Dockerfile"),
        "orbitdock-test/digest:latest",
    );
    assert!(!ok(&built), "the build succeeded:\n{}", text(&built));
}

/// OD000: the Dockerfile named for the build is not in the upload.
#[test]
fn missing_dockerfile_fails_on_the_real_engine() {
    engine();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.conf"), "x\n").unwrap();
    let missing = dir.path().join("Dockerfile");
    let report = lint_context(
        dir.path(),
        &missing,
        &System::em(preflight::host_platform()),
        &Options::onboard(),
    );
    assert_eq!(
        report
            .diagnostics
            .iter()
            .map(|d| d.code)
            .collect::<Vec<_>>(),
        ["OD000"],
        "{}",
        report.render()
    );
    let _images = Images(vec!["orbitdock-test/missing:latest".into()]);
    let built = docker(&[
        "build",
        "--network",
        "none",
        "--pull=false",
        "-t",
        "orbitdock-test/missing:latest",
        "-f",
        missing.to_str().unwrap(),
        dir.path().to_str().unwrap(),
    ]);
    assert!(!ok(&built), "the build succeeded:\n{}", text(&built));
}

fn sha256_hex(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Writes a `docker save`-style archive of one image: one layer holding `/app`.
fn write_archive(dir: &Path, binary: &Path, arch: &str, tag: &str) -> PathBuf {
    let layer_path = dir.join("layer.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&layer_path).unwrap());
        let data = std::fs::read(binary).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_cksum();
        b.append_data(&mut h, "app", data.as_slice()).unwrap();
        b.finish().unwrap();
    }
    let layer_hex = sha256_hex(&layer_path);
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Entrypoint": ["/app"], "User": "65532"},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_hex}")]},
        "history": [{"created_by": "preflight test"}],
    });
    let config_path = dir.join("config.json");
    std::fs::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();
    let config_hex = sha256_hex(&config_path);
    let manifest = serde_json::json!([{
        "Config": format!("{config_hex}.json"),
        "RepoTags": [tag],
        "Layers": [format!("{layer_hex}/layer.tar")],
    }]);
    let archive = dir.join("image.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&archive).unwrap());
    b.append_path_with_name(&config_path, format!("{config_hex}.json"))
        .unwrap();
    b.append_path_with_name(&layer_path, format!("{layer_hex}/layer.tar"))
        .unwrap();
    let m = serde_json::to_vec(&manifest).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(m.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "manifest.json", m.as_slice())
        .unwrap();
    b.finish().unwrap();
    archive
}

/// OD601: an arm64 image loaded on the (x86-64) Engineering Model cannot run; the same archive
/// is fine for a flight system.
#[test]
fn archive_for_another_platform_fails_on_the_real_engine() {
    engine();
    let dir = tempfile::tempdir().unwrap();
    let tag = "orbitdock-test/arm64-app:latest";
    let archive = write_archive(dir.path(), &artifact("aarch64-static"), "arm64", tag);
    let opts = ArchiveOptions {
        known_layers: &[],
        eta: Eta::Rate {
            bytes_per_second: 1000.0,
        },
    };
    let em = System::em(preflight::host_platform());
    assert_ne!(
        em.platform, "linux/arm64",
        "this test needs a host that is not arm64"
    );
    let report = lint_archive(&archive, Some(tag), &em, &opts);
    let errors: Vec<_> = report
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.code)
        .collect();
    assert_eq!(errors, ["OD601"], "{}", report.render());
    let flight = lint_archive(&archive, Some(tag), &System::flight("sat1"), &opts);
    assert!(!flight.has_errors(), "{}", flight.render());
    assert!(flight.facts.archive[0].eta.is_some());

    let _images = Images(vec![tag.into()]);
    let loaded = docker(&["load", "-i", archive.to_str().unwrap()]);
    assert!(ok(&loaded), "docker load: {}", text(&loaded));
    let ran = run(tag);
    assert!(
        !ok(&ran),
        "an arm64 image ran on the x86-64 engine:\n{}",
        text(&ran)
    );
}

/// OD602: garbage is not an image archive, for preflight or for `docker load`.
#[test]
fn garbage_archive_fails_on_the_real_engine() {
    engine();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.tar");
    std::fs::write(
        &path,
        (0..5000u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let report = lint_archive(
        &path,
        None,
        &System::flight("sat1"),
        &ArchiveOptions {
            known_layers: &[],
            eta: Eta::None,
        },
    );
    assert_eq!(
        report
            .diagnostics
            .iter()
            .map(|d| d.code)
            .collect::<Vec<_>>(),
        ["OD602"],
        "{}",
        report.render()
    );
    let loaded = docker(&["load", "-i", path.to_str().unwrap()]);
    assert!(
        !ok(&loaded),
        "docker load accepted garbage: {}",
        text(&loaded)
    );
}

/// A real `docker save` archive: sizes, layers already onboard and bytes to uplink match what
/// the engine says about the image.
#[test]
fn archive_of_a_real_image() {
    engine();
    let case = cases()
        .into_iter()
        .find(|c| c.name == "ok-em-static")
        .unwrap();
    let tmp = materialize(&case);
    let ctx = context_of(&tmp);
    let tag = "orbitdock-test/saved:latest";
    let _images = Images(vec![tag.into()]);
    let built = build(&ctx, &ctx.join("Dockerfile"), tag);
    assert!(ok(&built), "{}", text(&built));
    let archive = tmp.path().join("saved.tar");
    let saved = docker(&["save", "-o", archive.to_str().unwrap(), tag]);
    assert!(ok(&saved), "{}", text(&saved));
    let layers = String::from_utf8(
        docker(&[
            "image",
            "inspect",
            "--format",
            "{{json .RootFS.Layers}}",
            tag,
        ])
        .stdout,
    )
    .unwrap();
    let layers: Vec<String> = serde_json::from_str(layers.trim()).unwrap();
    assert!(layers.len() >= 2, "{layers:?}");
    // The base's layers are onboard; the layer with the binary is not.
    let base = String::from_utf8(
        docker(&[
            "image",
            "inspect",
            "--format",
            "{{json .RootFS.Layers}}",
            "gcr.io/distroless/static-debian12:latest",
        ])
        .stdout,
    )
    .unwrap();
    let base: Vec<String> = serde_json::from_str(base.trim()).unwrap();
    let mut system = System::em(preflight::host_platform());
    system.catalogue.images[0].layers = base.clone();
    let planner = |bytes: u64| Some(std::time::Duration::from_secs(bytes / 100));
    let report = lint_archive(
        &archive,
        Some(tag),
        &system,
        &ArchiveOptions {
            known_layers: &[],
            eta: Eta::Planner(&planner),
        },
    );
    assert!(!report.has_errors(), "{}", report.render());
    let img = &report.facts.archive[0];
    assert_eq!(img.tags, [tag]);
    assert_eq!(
        img.layers
            .iter()
            .map(|l| l.diff_id.clone())
            .collect::<Vec<_>>(),
        layers
    );
    let binary_size = std::fs::metadata(ctx.join("hello")).unwrap().len();
    assert!(
        img.uplink_bytes > binary_size && img.uplink_bytes < binary_size + 64 * 1024,
        "{img:?}"
    );
    assert_eq!(img.layers.iter().filter(|l| l.onboard).count(), base.len());
    assert_eq!(
        img.eta,
        Some(std::time::Duration::from_secs(img.uplink_bytes / 100))
    );
    let codes: BTreeSet<_> = report.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["OD603", "OD604", "OD605"].into_iter().collect());
}
