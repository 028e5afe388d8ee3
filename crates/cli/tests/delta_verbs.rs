//! `orbitdock delta make|apply`: a patch made here applies to exactly its base and nothing is
//! written from a patch that does not verify. Exit status 0 / 1 / 2 as documented; `-o json`
//! says what was written, as docs/cli.md documents it.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use support::assert_keys;

fn orbitdock(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orbitdock"))
        .args(args)
        .output()
        .unwrap()
}

/// `orbitdock ARGS -o json`, which succeeds: its one JSON document.
fn json(args: &[&Path]) -> Value {
    let mut all = args.to_vec();
    all.extend([p("-o"), p("json")]);
    let out = orbitdock(&all);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

fn p(s: &str) -> &Path {
    Path::new(s)
}

#[test]
fn make_and_apply_round_trip_and_refuse_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let at = |n: &str| dir.path().join(n);
    let old: Vec<u8> = (0..300_000u32)
        .flat_map(|i| (i.wrapping_mul(2654435761) >> 9).to_le_bytes())
        .collect();
    let mut new = old.clone();
    new.splice(4096..4096, b"a few new bytes".iter().copied());
    std::fs::write(at("old"), &old).unwrap();
    std::fs::write(at("new"), &new).unwrap();

    let out = orbitdock(&[p("delta"), p("make"), &at("old"), &at("new"), &at("patch")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let size = std::fs::metadata(at("patch")).unwrap().len();
    assert!(size < 2000, "a small change makes a small patch: {size}");
    assert!(
        stdout.contains("bytes (") && stdout.contains("kinds tried"),
        "{stdout}"
    );

    let out = orbitdock(&[
        p("delta"),
        p("apply"),
        &at("old"),
        &at("patch"),
        &at("back"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read(at("back")).unwrap() == new);

    // The wrong base: exit 1, a message naming the digests, nothing written.
    let out = orbitdock(&[
        p("delta"),
        p("apply"),
        &at("new"),
        &at("patch"),
        &at("wrong"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong base"));
    assert!(!at("wrong").exists());

    // A corrupted and a truncated patch: exit 1, nothing written.
    let mut patch = std::fs::read(at("patch")).unwrap();
    patch.truncate(patch.len() - 3);
    std::fs::write(at("cut"), &patch).unwrap();
    let out = orbitdock(&[p("delta"), p("apply"), &at("old"), &at("cut"), &at("x")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("truncated"));
    assert!(!at("x").exists());

    // No base: a whole-file patch.
    let out = orbitdock(&[p("delta"), p("make"), p("-"), &at("new"), &at("whole")]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("whole-zstd"));
    let out = orbitdock(&[p("delta"), p("apply"), p("-"), &at("whole"), &at("back2")]);
    assert_eq!(out.status.code(), Some(0));
    assert!(std::fs::read(at("back2")).unwrap() == new);

    // `-o json`: the documents docs/cli.md gives, saying what was written.
    let made = json(&[
        p("delta"),
        p("make"),
        &at("old"),
        &at("new"),
        &at("patch.json"),
    ]);
    let keys = [
        "old",
        "new",
        "patch",
        "kind",
        "bytes",
        "new_bytes",
        "old_bytes",
        "tried",
    ];
    assert_keys(&made, &keys, &[]);
    let patch_bytes = std::fs::metadata(at("patch.json")).unwrap().len();
    assert_eq!(made["patch"], at("patch.json").to_str().unwrap());
    assert_eq!(made["old"], at("old").to_str().unwrap());
    assert_eq!(made["bytes"], patch_bytes, "{made:#}");
    assert_eq!(made["new_bytes"], new.len());
    assert_eq!(made["old_bytes"], old.len());
    let tried = made["tried"].as_array().unwrap();
    assert!(!tried.is_empty());
    for t in tried {
        assert_keys(t, &["kind", "bytes"], &[]);
    }
    assert!(
        tried
            .iter()
            .any(|t| t["kind"] == made["kind"] && t["bytes"] == made["bytes"]),
        "the patch written is one of the kinds tried: {made:#}"
    );
    let applied = json(&[
        p("delta"),
        p("apply"),
        &at("old"),
        &at("patch.json"),
        &at("back.json"),
    ]);
    let keys = [
        "old",
        "patch",
        "new",
        "bytes",
        "sha256",
        "kind",
        "patch_bytes",
    ];
    assert_keys(&applied, &keys, &[]);
    assert_eq!(applied["new"], at("back.json").to_str().unwrap());
    assert_eq!(applied["bytes"], new.len());
    assert_eq!(
        format!("sha256:{}", applied["sha256"].as_str().unwrap()),
        wire::Digest::of(&new).to_string()
    );
    assert_eq!(
        (&applied["kind"], &applied["patch_bytes"]),
        (&made["kind"], &made["bytes"])
    );
    let whole = json(&[p("delta"), p("make"), p("-"), &at("new"), &at("whole.json")]);
    assert_eq!(
        (&whole["old"], &whole["old_bytes"], &whole["kind"]),
        (&Value::Null, &Value::Null, &Value::from("whole-zstd")),
        "{whole:#}"
    );

    // Never over an existing file.
    let out = orbitdock(&[
        p("delta"),
        p("apply"),
        &at("old"),
        &at("patch"),
        &at("back"),
    ]);
    assert_eq!(out.status.code(), Some(1));

    // Usage errors.
    let out = orbitdock(&[p("delta"), p("make"), &at("old")]);
    assert_eq!(out.status.code(), Some(2));
    let out = orbitdock(&[
        p("delta"),
        p("make"),
        &at("old"),
        &at("new"),
        &at("p2"),
        p("--kind"),
        p("nope"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = orbitdock(&[
        p("delta"),
        p("make"),
        &at("old"),
        &at("new"),
        &at("p3"),
        p("--kind"),
        p("exe"),
    ]);
    assert_eq!(out.status.code(), Some(1), "not an ELF file: no exe patch");
    assert!(!at("p3").exists());
}

/// A tar of `members` (name, bytes).
fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, bytes) in members {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, *bytes).unwrap();
    }
    b.into_inner().unwrap()
}

/// `--layers-from`: an archive's members that the base archive holds are left out (the
/// layers kind), and the patch applies only with them.
#[test]
fn layers_from_leaves_out_the_members_a_base_archive_holds() {
    let dir = tempfile::tempdir().unwrap();
    let at = |n: &str| dir.path().join(n);
    let base_layer: Vec<u8> = (0..40_000u32)
        .flat_map(|i| wire::Digest::of(&i.to_le_bytes()).0)
        .collect();
    let base_layer = tar_of(&[("lib/libc.so", &base_layer)]);
    let app_layer = tar_of(&[("app", b"#!/bin/sh\necho hello\n")]);
    let new = tar_of(&[
        ("a/layer.tar", &base_layer),
        ("b/layer.tar", &app_layer),
        ("manifest.json", b"[]"),
    ]);
    std::fs::write(at("base.tar"), tar_of(&[("x/layer.tar", &base_layer)])).unwrap();
    std::fs::write(at("new"), &new).unwrap();
    let made = json(&[
        p("delta"),
        p("make"),
        p("-"),
        &at("new"),
        &at("patch"),
        p("--layers-from"),
        &at("base.tar"),
    ]);
    assert_eq!(made["kind"], "layers", "{made:#}");
    assert!(made["bytes"].as_u64().unwrap() < 2_000, "{made:#}");
    // Without the layers: refused, nothing written.
    let out = orbitdock(&[p("delta"), p("apply"), p("-"), &at("patch"), &at("back")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!at("back").exists());
    let applied = json(&[
        p("delta"),
        p("apply"),
        p("-"),
        &at("patch"),
        &at("back"),
        p("--layers-from"),
        &at("base.tar"),
    ]);
    assert_eq!(applied["kind"], "layers");
    assert_eq!(std::fs::read(at("back")).unwrap(), new);
}
