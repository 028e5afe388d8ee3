//! The judge and the writer on small archives built here: what the flight relied on when these
//! checks lived in `flight::archive` (their tests moved here), plus the OCI layout.

use std::io::{Cursor, Read};

use imagefmt::{ArchiveError, ErrorKind, inspect, judge_load, write_unnamed};
use serde_json::{Value, json};

fn sha(data: &[u8]) -> String {
    wire::Digest::of(data).hex()
}

/// A config whose DiffIDs are those of `layers`.
fn config_for(layers: &[&[u8]]) -> String {
    let ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", sha(l)))
        .collect();
    json!({"architecture": "arm64", "os": "linux", "config": {"User": "1"}, "rootfs": {"type": "layers", "diff_ids": ids}})
        .to_string()
}

/// Builds a tar from `(name, content)` pairs, plus a symlink `dup/layer.tar` to
/// `layer/layer.tar` when there is one.
fn tar(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, content) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, content.as_bytes()).unwrap();
    }
    if files.iter().any(|(n, _)| *n == "layer/layer.tar") {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "dup/layer.tar", "../layer/layer.tar")
            .unwrap();
    }
    b.into_inner().unwrap()
}

fn contents(archive: &[u8]) -> Vec<(String, String)> {
    let mut a = tar::Archive::new(archive);
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut s = String::new();
            if e.header().entry_type().is_symlink() {
                s = format!("-> {}", e.link_name().unwrap().unwrap().display());
            } else {
                e.read_to_string(&mut s).unwrap();
            }
            (name, s)
        })
        .collect()
}

fn check(archive: &[u8]) -> Result<imagefmt::Archive, ArchiveError> {
    inspect(Cursor::new(archive))
}

/// What the flight decides before `docker load` of `wanted`: the archive written to a file and
/// given to [`judge_load`].
fn load(archive: &[u8], wanted: &str) -> Result<imagefmt::Loadable, ArchiveError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.tar");
    std::fs::write(&path, archive).unwrap();
    judge_load(&path, wanted)
}

fn rewrite(archive: &[u8], keep: usize) -> Result<Vec<u8>, ArchiveError> {
    let judged = check(archive)?;
    let mut out = Vec::new();
    write_unnamed(Cursor::new(archive), &judged, keep, &mut out)?;
    Ok(out)
}

struct Saved {
    bytes: Vec<u8>,
    config: String,
    config_hex: String,
}

/// Two images: one tagged twice with one layer (also reachable through the symlink), one
/// untagged and empty, whose config is an OCI blob; an OCI index naming the first.
fn save_archive() -> Saved {
    let config = config_for(&[b"LAYER"]);
    let hex = sha(config.as_bytes());
    let empty = config_for(&[]);
    let empty_hex = sha(empty.as_bytes());
    let manifest = format!(
        r#"[{{"Config":"{hex}.json","RepoTags":["busybox:latest","docker.io/library/hello:1"],"Layers":["layer/layer.tar"]}},
           {{"Config":"blobs/sha256/{empty_hex}","RepoTags":null,"Layers":[]}}]"#
    );
    let oci_manifest = json!({"schemaVersion": 2, "config": {"digest": format!("sha256:{empty_hex}"), "size": empty.len()}, "layers": []}).to_string();
    let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{}", sha(oci_manifest.as_bytes())), "size": oci_manifest.len(), "annotations": {"io.containerd.image.name": "docker.io/library/busybox:latest", "org.opencontainers.image.ref.name": "latest", "keep": "me"}}]}).to_string();
    let bytes = tar(&[
        ("layer/layer.tar", "LAYER"),
        (&format!("{hex}.json"), &config),
        (&format!("blobs/sha256/{empty_hex}"), &empty),
        (
            &format!("blobs/sha256/{}", sha(oci_manifest.as_bytes())),
            &oci_manifest,
        ),
        ("repositories", r#"{"busybox":{"latest":"x"}}"#),
        ("index.json", &index),
        ("./manifest.json", &manifest),
    ]);
    Saved {
        bytes,
        config,
        config_hex: hex,
    }
}

#[test]
fn reads_repo_tags_ids_layers_and_the_oci_index() {
    let saved = save_archive();
    let archive = check(&saved.bytes).unwrap();
    let images = archive.images();
    assert_eq!(images.len(), 2);
    assert_eq!(images[0].id.hex(), saved.config_hex);
    assert!(images[1].repo_tags.is_empty());
    for tag in ["hello:1", "busybox", "docker.io/library/busybox:latest"] {
        let chosen = load(&saved.bytes, tag).unwrap();
        assert_eq!(chosen.index(), 0);
        assert_eq!(chosen.image().id.hex(), saved.config_hex);
    }
    let err = load(&saved.bytes, "hello:2").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotTagged);
    assert_eq!(
        err.message(),
        "archive holds [busybox:latest, docker.io/library/hello:1], not hello:2"
    );
    let img = &images[0];
    assert_eq!(img.config.platform(), "linux/arm64");
    assert_eq!(img.config.user, "1");
    assert_eq!(img.layers.len(), 1);
    let layer = &img.layers[0];
    assert_eq!(layer.member, "layer/layer.tar");
    assert_eq!(layer.size, 5);
    assert_eq!(layer.diff_id, wire::Digest::of(b"LAYER"));
    // The offset is where the layer's bytes are.
    let at = layer.offset as usize;
    assert_eq!(&saved.bytes[at..at + 5], b"LAYER");
    assert!(saved.config.contains("diff_ids"));
}

#[test]
fn rewritten_archive_names_nothing() {
    let saved = save_archive();
    let out = rewrite(&saved.bytes, 0).unwrap();
    let files = contents(&out);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    let hex = &saved.config_hex;
    assert_eq!(names.len(), 7, "{names:?}");
    assert_eq!(names[0], "layer/layer.tar");
    assert_eq!(names[1], format!("{hex}.json"));
    assert_eq!(
        &names[4..],
        ["index.json", "manifest.json", "dup/layer.tar"]
    );
    assert_eq!(files[0].1, "LAYER");
    assert_eq!(files[6].1, "-> ../layer/layer.tar");
    let index: Value = serde_json::from_str(&files[4].1).unwrap();
    assert_eq!(
        index["manifests"][0]["annotations"],
        serde_json::json!({"keep": "me"})
    );
    let manifest: Value = serde_json::from_str(&files[5].1).unwrap();
    assert_eq!(
        manifest,
        serde_json::json!([{"Config": format!("{hex}.json"), "RepoTags": [], "Layers": ["layer/layer.tar"]}])
    );
    // And the copy reads back: one image, no tags.
    let again = check(&out).unwrap();
    assert_eq!(again.images().len(), 1);
    assert!(again.images()[0].repo_tags.is_empty());
    assert_eq!(again.images()[0].id.hex(), *hex);
    // The other image can be kept instead.
    let out = rewrite(&saved.bytes, 1).unwrap();
    assert_eq!(check(&out).unwrap().images()[0].config_path.len(), 13 + 64);
}

/// Builds a tar from `(name, kind, content or link target)`, names written as they are.
fn raw_tar(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        // Set the name bytes as written, unnormalised.
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        if kind.is_symlink() || kind.is_hard_link() {
            h.set_link_name(data).unwrap();
            h.set_size(0);
            h.set_cksum();
            b.append(&h, &b""[..]).unwrap();
        } else {
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append(&h, data.as_bytes()).unwrap();
        }
    }
    b.into_inner().unwrap()
}

#[test]
fn refuses_names_that_smuggle_a_second_manifest() {
    use tar::EntryType::{Directory, Link, Regular, Symlink};
    let config = config_for(&[]);
    let hex = sha(config.as_bytes());
    let clean = format!(r#"[{{"Config":"{hex}.json","RepoTags":["app:1"]}}]"#);
    let evil = r#"[{"Config":"x.json","RepoTags":["busybox:latest"]}]"#;
    let config_name = format!("{hex}.json");
    let cases: Vec<Vec<(&str, tar::EntryType, &str)>> = vec![
        vec![
            ("manifest.json", Regular, &clean),
            ("x/../manifest.json", Regular, evil),
        ],
        vec![
            ("manifest.json", Regular, &clean),
            (".//manifest.json", Regular, evil),
        ],
        vec![
            ("manifest.json", Regular, &clean),
            ("./manifest.json", Regular, evil),
        ],
        vec![
            ("manifest.json", Regular, &clean),
            ("manifest.json", Regular, evil),
        ],
        vec![
            ("manifest.json", Regular, &clean),
            ("/manifest.json", Regular, evil),
        ],
        vec![
            ("manifest.json", Regular, &clean),
            ("d", Symlink, "."),
            ("d/manifest.json", Regular, evil),
        ],
        vec![
            ("d/manifest.json", Regular, evil),
            ("d", Link, "."),
            ("manifest.json", Regular, &clean),
        ],
        vec![("manifest.json", Link, "evil.json")],
    ];
    for case in cases {
        let mut entries: Vec<(&str, tar::EntryType, &str)> = vec![(&config_name, Regular, &config)];
        entries.extend(case.iter().cloned());
        let archive = raw_tar(&entries);
        let err = check(&archive).expect_err(&format!("{case:?}"));
        assert!(err.to_string().contains("refused"), "{case:?}: {err}");
        assert_eq!(err.kind(), ErrorKind::Unsafe, "{case:?}: {err}");
    }
    // Clean names, a `./` prefix and the root folder are fine.
    let archive = raw_tar(&[
        ("./", Directory, ""),
        (&config_name, Regular, &config),
        ("./manifest.json", Regular, &clean),
    ]);
    assert_eq!(check(&archive).unwrap().images()[0].repo_tags, ["app:1"]);
    rewrite(&archive, 0).unwrap();
}

#[test]
fn refuses_a_config_that_does_not_hash_to_its_name() {
    let other = "b".repeat(64);
    let manifest = format!(r#"[{{"Config":"{other}.json","RepoTags":["app:1"]}}]"#);
    let archive = tar(&[
        (&format!("{other}.json"), "{}"),
        ("manifest.json", &manifest),
    ]);
    let err = check(&archive).unwrap_err();
    assert!(
        err.to_string().contains(&format!("not the sha256:{other}")),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Unsafe);
    // A config that is not in the archive at all.
    let archive = tar(&[("manifest.json", &manifest)]);
    assert_eq!(check(&archive).unwrap_err().kind(), ErrorKind::Missing);
    // The OCI form.
    let hex = sha(b"{}");
    let manifest = format!(r#"[{{"Config":"blobs/sha256/{hex}","RepoTags":["app:1"]}}]"#);
    let archive = tar(&[
        (&format!("blobs/sha256/{hex}"), "{}"),
        ("manifest.json", &manifest),
    ]);
    rewrite(&archive, 0).unwrap();
}

#[test]
fn the_writer_refuses_an_archive_other_than_the_one_inspected() {
    let saved = save_archive();
    let judged = check(&saved.bytes).unwrap();
    // Same members, another config content of the same size.
    let mut other = saved.bytes.clone();
    let at = other.windows(6).position(|w| w == b"\"arm64").unwrap();
    other[at + 1..at + 6].copy_from_slice(b"amd64");
    let err = write_unnamed(Cursor::new(&other), &judged, 0, Vec::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Changed, "{err}");
    // Another archive altogether.
    let small = tar(&[("x", "y")]);
    let err = write_unnamed(Cursor::new(&small), &judged, 0, Vec::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Changed, "{err}");
    assert!(write_unnamed(Cursor::new(&saved.bytes), &judged, 7, Vec::new()).is_err());
}

#[test]
fn bad_archives_are_errors_not_panics() {
    let kind = |bytes: &[u8]| check(bytes).unwrap_err().kind();
    assert_eq!(
        kind(b"not a tar at all, just some bytes"),
        ErrorKind::NotTar
    );
    assert!(
        check(&tar(&[("x", "y")]))
            .unwrap_err()
            .to_string()
            .contains("no manifest.json")
    );
    assert!(
        check(&tar(&[("index.json", "{}")]))
            .unwrap_err()
            .to_string()
            .contains("OCI layout")
    );
    assert_eq!(kind(&tar(&[("manifest.json", "{")])), ErrorKind::Invalid);
    assert_eq!(kind(&tar(&[("manifest.json", "{}")])), ErrorKind::Invalid);
    assert_eq!(kind(&tar(&[("manifest.json", "[]")])), ErrorKind::Invalid);
    assert_eq!(
        kind(&tar(&[(
            "manifest.json",
            r#"[{"Config":"../../etc/passwd"}]"#
        )])),
        ErrorKind::Invalid
    );
    let saved = save_archive();
    for n in [0, 1, 100, 511, 512, 700, 1024, saved.bytes.len() / 2] {
        let _ = check(&saved.bytes[..n]);
    }
}
