//! `orbitdock lint --systems-file F --system S`: judged against what the systems file declares
//! (catalogue, platform, builder) instead of the stand-in defaults.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_orbitdock");

fn lint(args: &[&str], path: &Path) -> (Option<i32>, String, String) {
    let out: Output = Command::new(BIN)
        .arg("lint")
        .args(args)
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A build context with these files.
fn context(root: &Path, name: &str, files: &[(&str, &[u8])]) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (path, bytes) in files {
        std::fs::write(dir.join(path), bytes).unwrap();
    }
    dir
}

fn write(path: &Path, text: &str) -> String {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap();
    }
    std::fs::write(path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn an_image_outside_the_stand_ins_is_clean_once_the_systems_file_declares_it() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(
        dir.path(),
        "alpine",
        &[(
            "Dockerfile",
            b"FROM alpine:3.20\nRUN echo built > /built\nUSER 65532\nCMD [\"/bin/sh\", \"-c\", \"cat /built\"]\n",
        )],
    );
    // The stand-in catalogue has no alpine: an error, whether or not a systems file is given
    // that does not declare it.
    let (code, out, _) = lint(&["--system", "em"], &ctx);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("error[OD101]"), "{out}");
    let plain = write(&dir.path().join("plain.json"), r#"{"em": {}}"#);
    let (code, out, err) = lint(&["--system", "em", "--systems-file", &plain], &ctx);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("error[OD101]"), "{out}");

    // Declared in a catalogue file next to the systems file: clean.
    write(
        &dir.path().join("catalogues/alpine.json"),
        r#"[{"name": "alpine:3.20", "shell": true, "libraries": ["libc.musl-*.so.1"],
             "interpreters": ["/bin/sh"]}]"#,
    );
    let systems = write(
        &dir.path().join("systems.json"),
        r#"{"em": {"catalogue": "catalogues/alpine.json"}}"#,
    );
    let (code, out, err) = lint(&["--system", "em", "--systems-file", &systems], &ctx);
    assert_eq!(code, Some(0), "{out}{err}");
    // Declared inline: clean as well.
    let inline = write(
        &dir.path().join("inline.json"),
        r#"{"em": {"catalogue": [{"name": "alpine:3.20", "shell": true}]}}"#,
    );
    let (code, out, err) = lint(&["--system", "em", "--systems-file", &inline], &ctx);
    assert_eq!(code, Some(0), "{out}{err}");
    // The declared catalogue is the whole catalogue: busybox is not in it.
    let busybox = context(
        dir.path(),
        "busybox",
        &[(
            "Dockerfile",
            b"FROM busybox\nUSER 65532\nCMD [\"/bin/true\"]\n",
        )],
    );
    let (code, out, _) = lint(&["--system", "em", "--systems-file", &inline], &busybox);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("error[OD101]"), "{out}");
}

#[test]
fn a_binary_needing_libssl_is_clean_once_a_declared_image_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    // A stand-in libssl, so the test needs no OpenSSL headers: what matters is the DT_NEEDED.
    std::fs::write(src.join("ssl.c"), "int ssl_stub(void) { return 1; }\n").unwrap();
    std::fs::write(
        src.join("app.c"),
        "int ssl_stub(void);\nint main(void) { return ssl_stub() - 1; }\n",
    )
    .unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let gcc = |args: &[&str]| {
        let st = Command::new("gcc")
            .args(args)
            .current_dir(&src)
            .status()
            .unwrap();
        assert!(st.success(), "gcc {args:?}");
    };
    gcc(&[
        "-shared",
        "-fPIC",
        "-Wl,-soname,libssl.so.3",
        "-o",
        "libssl.so.3",
        "ssl.c",
    ]);
    gcc(&[
        "-o",
        ctx.join("app").to_str().unwrap(),
        "app.c",
        "./libssl.so.3",
    ]);
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM gcr.io/distroless/cc-debian12\nCOPY app /app\nUSER 65532:65532\nENTRYPOINT [\"/app\"]\n",
    )
    .unwrap();

    let (code, out, _) = lint(&["--system", "em"], &ctx);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("libssl.so.3"), "{out}");

    let glibc = host_glibc();
    let systems = write(
        &dir.path().join("systems.json"),
        &format!(
            r#"{{"em": {{"catalogue": [{{"name": "gcr.io/distroless/cc-debian12",
                  "libraries": ["libc.so.6", "ld-linux-*.so.*", "libssl.so.3"],
                  "glibc": "{glibc}"}}]}}}}"#
        ),
    );
    let (code, out, err) = lint(&["--system", "em", "--systems-file", &systems], &ctx);
    assert_eq!(code, Some(0), "{out}{err}");
}

/// `major.minor` of this machine's glibc (the test binary links against it).
fn host_glibc() -> String {
    let out = Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace().nth(1).unwrap().to_string()
}

#[test]
fn copy_chmod_and_heredocs_need_a_declared_buildkit_builder() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(
        dir.path(),
        "ctx",
        &[
            (
                "Dockerfile",
                b"FROM busybox\nCOPY --chmod=755 run.sh /run.sh\nRUN <<EOF\necho hello > /hello\nEOF\nUSER 65532\nCMD [\"/run.sh\"]\n",
            ),
            ("run.sh", b"#!/bin/sh\ncat /hello\n"),
        ],
    );
    let (code, out, _) = lint(&["--system", "em"], &ctx);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("--chmod` needs BuildKit"), "{out}");
    assert!(out.contains("heredocs need BuildKit"), "{out}");
    let classic = write(
        &dir.path().join("classic.json"),
        r#"{"em": {"builder": "classic"}}"#,
    );
    let (code, out, _) = lint(&["--system", "em", "--systems-file", &classic], &ctx);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("heredocs need BuildKit"), "{out}");

    let buildkit = write(
        &dir.path().join("buildkit.json"),
        r#"{"em": {"builder": "buildkit"}}"#,
    );
    let (code, out, err) = lint(&["--system", "em", "--systems-file", &buildkit], &ctx);
    assert_eq!(code, Some(0), "{out}{err}");
}

#[test]
fn a_bad_systems_file_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(
        dir.path(),
        "ctx",
        &[(
            "Dockerfile",
            b"FROM busybox\nUSER 65532\nCMD [\"/bin/true\"]\n",
        )],
    );
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "builder.json",
            r#"{"em": {"builder": "bildkit"}}"#,
            &["builder.json: em.builder: unknown variant `bildkit`"],
        ),
        (
            "glibc.json",
            r#"{"em": {"catalogue": [{"name": "busybox", "glibc": "two"}]}}"#,
            &["glibc.json: em.catalogue[0].glibc: \"two\" is not a major.minor version"],
        ),
        (
            "shell.json",
            r#"{"em": {"catalogue": [{"name": "busybox", "shell": "yes"}]}}"#,
            &["shell.json: em.catalogue[0].shell: invalid type"],
        ),
        (
            "platform.json",
            r#"{"em": {"platform": "arm64"}}"#,
            &["platform.json: em.platform: \"arm64\" is not os/arch"],
        ),
        (
            "typo.json",
            r#"{"em": {"catalog": []}}"#,
            &["typo.json: em.catalog: unknown field `catalog`"],
        ),
        (
            "file.json",
            r#"{"em": {"catalogue": "cat.json"}}"#,
            &["cat.json: [1].libraries: invalid type"],
        ),
        (
            "nosystem.json",
            r#"{"fm": {}}"#,
            &["nosystem.json: no system em"],
        ),
    ];
    write(
        &dir.path().join("cat.json"),
        r#"[{"name": "busybox"}, {"name": "x", "libraries": "libc.so.6"}]"#,
    );
    for (name, text, wanted) in cases {
        let file = write(&dir.path().join(name), text);
        let (code, out, err) = lint(&["--system", "em", "--systems-file", &file], &ctx);
        assert_ne!(code, Some(0), "{name}: {out}{err}");
        for w in *wanted {
            assert!(err.contains(w), "{name}: wanted {w:?} in {err}");
        }
    }
}
