//! The layers kind: archives whose onboard layers cost nothing round-trip byte-exact, on tars
//! built here in both `docker save` layouts and on real `docker save` output of the Docker
//! Engine (skipped where there is none); a layer that is missing, of another size or another
//! digest fails the apply; bad patches give typed errors and nothing else.

use std::collections::HashSet;
use std::process::Command;

use delta::{DeltaError, Kind, LayerSource, MemoryLayers};

/// Deterministic bytes that do not compress.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect()
}

/// A layer tar holding one file.
fn layer(name: &str, content: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(content.len() as u64);
    h.set_mode(0o755);
    h.set_cksum();
    b.append_data(&mut h, name, content).unwrap();
    b.into_inner().unwrap()
}

/// An outer archive of `members` (name, bytes), as `docker save` writes one.
fn archive(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, bytes) in members {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, &bytes[..]).unwrap();
    }
    b.into_inner().unwrap()
}

fn hexd(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A base layer, an app layer on it, and the archive of the app image in the Docker layout
/// (`<id>/layer.tar`) or the OCI layout (`blobs/sha256/<hex>`).
fn image(oci: bool, app: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let base = layer("lib/libbase.so", &noise(1, 300_000));
    let top = layer("app", app);
    let (bd, td) = (hexd(&delta::sha256(&base)), hexd(&delta::sha256(&top)));
    let config =
        format!(r#"{{"rootfs":{{"type":"layers","diff_ids":["sha256:{bd}","sha256:{td}"]}}}}"#);
    let cd = hexd(&delta::sha256(config.as_bytes()));
    let members = if oci {
        vec![
            ("blobs/sha256/".to_string() + &bd, base.clone()),
            ("blobs/sha256/".to_string() + &td, top.clone()),
            ("blobs/sha256/".to_string() + &cd, config.into_bytes()),
            ("index.json".into(), br#"{"schemaVersion":2}"#.to_vec()),
            (
                "oci-layout".into(),
                br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            ),
        ]
    } else {
        vec![
            (format!("{}/layer.tar", &bd[..16]), base.clone()),
            (format!("{}/layer.tar", &td[..16]), top.clone()),
            (format!("{cd}.json"), config.into_bytes()),
            (
                "manifest.json".into(),
                format!(r#"[{{"Config":"{cd}.json"}}]"#).into_bytes(),
            ),
        ]
    };
    (base, top, archive(&members))
}

fn onboard(layers: &[&[u8]]) -> (HashSet<[u8; 32]>, MemoryLayers) {
    let mut source = MemoryLayers::default();
    for l in layers {
        source.insert(l.to_vec());
    }
    (source.0.keys().copied().collect(), source)
}

#[test]
fn onboard_layers_cost_nothing_in_both_layouts() {
    for oci in [false, true] {
        let (base, _, new) = image(oci, &noise(2, 50_000));
        let (ids, mut source) = onboard(&[&base]);
        let patch = delta::make_layers(None, &new, &ids).expect("the base layer is spliced out");
        let header = delta::Header::read(&patch).unwrap();
        assert_eq!((header.kind, header.base_size), (Kind::Layers, 0));
        // The app's 50,000 incompressible bytes travel; the base's 300,000 do not.
        let whole = delta::make(None, &new);
        assert!(whole.len() > 340_000, "{}", whole.len());
        assert!(
            patch.len() < 52_000,
            "oci {oci}: {} bytes for an archive of {}",
            patch.len(),
            new.len()
        );
        let limits = delta::Limits::default();
        let back = delta::apply_with_layers(None, &patch, limits, &mut source).unwrap();
        assert!(back == new, "oci {oci}: byte-exact");
        assert_eq!(
            delta::layers::named(&patch),
            Some(vec![(delta::sha256(&base), base.len() as u64)])
        );
        // Without the layer: a typed error naming it.
        let e = delta::apply(None, &patch).unwrap_err();
        assert!(matches!(e, DeltaError::Layer { .. }), "{e}");
    }
}

#[test]
fn with_the_old_archive_the_literals_are_a_delta() {
    let app_v1 = noise(3, 80_000);
    let mut app_v2 = app_v1.clone();
    app_v2[40_000..40_020].copy_from_slice(b"a one-line change!!!");
    let (base, _, old) = image(false, &app_v1);
    let (_, _, new) = image(false, &app_v2);
    let (ids, mut source) = onboard(&[&base]);
    let patch = delta::make_layers(Some(&old), &new, &ids).unwrap();
    let header = delta::Header::read(&patch).unwrap();
    assert_eq!(header.base_sha256, delta::sha256(&old), "made against old");
    assert!(patch.len() < 2_000, "{} bytes", patch.len());
    let limits = delta::Limits::default();
    let back = delta::apply_with_layers(Some(&old), &patch, limits, &mut source).unwrap();
    assert!(back == new);
    assert_eq!(
        delta::apply_with_layers(None, &patch, limits, &mut source).unwrap_err(),
        DeltaError::MissingBase(Kind::Layers)
    );
    let mut other = old.clone();
    other[600] ^= 1;
    assert!(matches!(
        delta::apply_with_layers(Some(&other), &patch, limits, &mut source).unwrap_err(),
        DeltaError::WrongBase { .. }
    ));
}

#[test]
fn nothing_to_splice_is_no_layers_patch() {
    let (_, _, new) = image(false, b"small app");
    assert!(delta::make_layers(None, &new, &HashSet::new()).is_none());
    assert!(delta::make_layers(None, b"not a tar at all", &HashSet::from([[7; 32]])).is_none());
    assert!(delta::make_layers(None, &[], &HashSet::new()).is_none());
    assert!(delta::make_kind(Kind::Layers, None, &new, Default::default()).is_none());
    assert_eq!(delta::layers::named(&delta::make(None, &new)), None);
}

/// Gives back another layer than the one asked for (a wrong or corrupted copy onboard).
struct Lying(Vec<u8>);

impl LayerSource for Lying {
    fn layer(&mut self, _: &[u8; 32], _: u64) -> Result<Vec<u8>, String> {
        Ok(self.0.clone())
    }
}

#[test]
fn a_layer_of_another_size_or_digest_is_refused() {
    let (base, _, new) = image(false, b"app");
    let (ids, _) = onboard(&[&base]);
    let patch = delta::make_layers(None, &new, &ids).unwrap();
    let limits = delta::Limits::default();
    let mut flipped = base.clone();
    flipped[2000] ^= 1;
    for wrong in [flipped, base[..base.len() - 512].to_vec(), Vec::new()] {
        let e = delta::apply_with_layers(None, &patch, limits, &mut Lying(wrong)).unwrap_err();
        assert!(matches!(e, DeltaError::Layer { .. }), "{e}");
    }
}

#[test]
fn tar_entries_are_listed_and_garbage_is_not() {
    let (base, top, new) = image(true, b"x");
    let e = delta::layers::entries(&new);
    assert_eq!(e.len(), 5);
    assert_eq!(e[0].size, base.len() as u64);
    assert_eq!(&new[e[1].offset..e[1].offset + top.len()], &top[..]);
    assert!(e.iter().all(|e| e.is_file()));
    assert!(delta::layers::entries(&noise(9, 10_000)).is_empty());
    assert!(delta::layers::starts_like_tar(&new[..512]));
    assert!(!delta::layers::starts_like_tar(&noise(9, 10_000)));
    assert!(!delta::layers::starts_like_tar(&[0; 1024]));
    assert!(!delta::layers::starts_like_tar(&new[..511]));
    // A header cut or mangled anywhere: listing stops there, without a panic.
    for cut in (0..new.len()).step_by(4099) {
        delta::layers::entries(&new[..cut]);
    }
}

/// Random single-byte mutations of a real layers patch, and random bodies behind a valid
/// header: errors (or, for a byte no decoder reads, the right file), never a panic.
#[test]
fn random_mutations_and_bodies_only_ever_error() {
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let limits = delta::Limits {
        max_result: 1 << 22,
    };
    let app_v1 = noise(5, 20_000);
    let mut app_v2 = app_v1.clone();
    app_v2[100] ^= 0xff;
    let (base, _, old) = image(false, &app_v1);
    let (_, _, new) = image(false, &app_v2);
    let (ids, source) = onboard(&[&base]);
    for old in [None, Some(&old[..])] {
        let patch = delta::make_layers(old, &new, &ids).unwrap();
        for _ in 0..400 {
            let mut bad = patch.clone();
            let at = delta::HEADER_LEN + (next() as usize) % (bad.len() - delta::HEADER_LEN);
            bad[at] = next() as u8;
            if let Ok(out) = delta::apply_with_layers(old, &bad, limits, &mut source.clone()) {
                assert!(out == new, "a mutated patch gave another file");
            }
        }
        for cut in (0..patch.len()).step_by(37) {
            assert!(
                delta::apply_with_layers(old, &patch[..cut], limits, &mut source.clone()).is_err()
            );
        }
    }
    let real = delta::make_layers(None, &new, &ids).unwrap();
    for i in 0..2000 {
        let len = (next() % 300) as usize;
        let mut body: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if i % 2 == 0 {
            let keep = (next() as usize % 80).min(real.len() - delta::HEADER_LEN);
            body.splice(
                0..0,
                real[delta::HEADER_LEN..delta::HEADER_LEN + keep]
                    .iter()
                    .copied(),
            );
        }
        let header = delta::Header {
            kind: Kind::Layers,
            base_size: 0,
            base_sha256: [0; 32],
            result_size: next() % (1 << 22),
            result_sha256: [0; 32],
            body_size: body.len() as u64,
        };
        let mut p = Vec::new();
        header.write(&mut p);
        p.extend_from_slice(&body);
        assert!(delta::apply_with_layers(None, &p, limits, &mut source.clone()).is_err());
    }
}

// ---- real `docker save` output ----

fn docker(args: &[&str]) -> Option<Vec<u8>> {
    let out = Command::new("docker").args(args).output().ok()?;
    if !out.status.success() {
        eprintln!("docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    out.status.success().then_some(out.stdout)
}

/// Removes the images it names when dropped.
struct Images(Vec<String>);

impl Drop for Images {
    fn drop(&mut self) {
        for i in &self.0 {
            let _ = Command::new("docker").args(["rmi", "-f", i]).output();
        }
    }
}

/// Builds `tag` from a Dockerfile and files in a temporary context, labelled as a test's.
fn build(tag: &str, dockerfile: &str, files: &[(&str, Vec<u8>)]) -> bool {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    for (name, bytes) in files {
        std::fs::write(ctx.path().join(name), bytes).unwrap();
    }
    docker(&[
        "build",
        "-q",
        "--network",
        "none",
        "--label",
        "org.orbitdock.test=delta-layers",
        "-t",
        tag,
        ctx.path().to_str().unwrap(),
    ])
    .is_some()
}

fn diff_ids(image: &str) -> Vec<[u8; 32]> {
    let out = docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .RootFS.Layers}}",
        image,
    ])
    .unwrap();
    let ids: Vec<String> = serde_json::from_slice(&out).unwrap();
    ids.iter()
        .map(|s| {
            let hex = s.strip_prefix("sha256:").unwrap();
            let mut d = [0u8; 32];
            for (i, b) in d.iter_mut().enumerate() {
                *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
            }
            d
        })
        .collect()
}

/// The members of a `docker save` archive whose content's sha256 is one of `ids`.
fn layers_in(archive: &[u8], ids: &[[u8; 32]]) -> MemoryLayers {
    let mut m = MemoryLayers::default();
    for e in delta::layers::entries(archive) {
        let bytes = &archive[e.offset..e.offset + e.size as usize];
        if ids.contains(&delta::sha256(bytes)) {
            m.insert(bytes.to_vec());
        }
    }
    m
}

#[test]
fn real_docker_save_archives_round_trip() {
    if docker(&["version", "--format", "{{.Server.Version}}"]).is_none() {
        eprintln!("no Docker Engine here: skipped");
        return;
    }
    let n = std::process::id();
    let (base_tag, v1_tag, v2_tag) = (
        format!("orbitdock-test/layers-base:{n}"),
        format!("orbitdock-test/layers-app:{n}-1"),
        format!("orbitdock-test/layers-app:{n}-2"),
    );
    let _cleanup = Images(vec![v2_tag.clone(), v1_tag.clone(), base_tag.clone()]);
    // A stand-in base (FROM scratch, two layers of files that do not compress), and an app on
    // it in two versions.
    assert!(build(
        &base_tag,
        "FROM scratch\nCOPY lib.so /lib/lib.so\nCOPY tool /bin/tool\n",
        &[("lib.so", noise(11, 400_000)), ("tool", noise(12, 120_000))],
    ));
    let app1 = noise(13, 60_000);
    let mut app2 = app1.clone();
    app2[30_000..30_010].copy_from_slice(b"version 2!");
    let app_file = format!("FROM {base_tag}\nCOPY app /app\nENTRYPOINT [\"/app\"]\n");
    assert!(build(&v1_tag, &app_file, &[("app", app1)]));
    assert!(build(&v2_tag, &app_file, &[("app", app2)]));
    let base_ids = diff_ids(&base_tag);
    assert_eq!(base_ids.len(), 2);
    let onboard: HashSet<[u8; 32]> = base_ids.iter().copied().collect();
    let base_archive = docker(&["save", &base_tag]).unwrap();
    let v1 = docker(&["save", &v1_tag]).unwrap();
    let v2 = docker(&["save", &v2_tag]).unwrap();
    // The flight's source: the base's layers as its own `docker save` gives them.
    let source = layers_in(&base_archive, &base_ids);
    assert_eq!(
        source.0.len(),
        2,
        "both base layers are members of its archive"
    );
    let base_bytes: usize = source.0.values().map(Vec::len).sum();
    let limits = delta::Limits::default();

    let whole = delta::make(None, &v1);
    let patch = delta::make_layers(None, &v1, &onboard).expect("base layers spliced out");
    let back = delta::apply_with_layers(None, &patch, limits, &mut source.clone()).unwrap();
    assert!(back == v1, "v1 byte-exact");
    eprintln!(
        "docker save v1: archive {} bytes, base layers {base_bytes}, whole-zstd {}, layers {}",
        v1.len(),
        whole.len(),
        patch.len()
    );
    // None of the base's bytes are in the patch: it is smaller than the archive without them
    // (the app layer, 60,000 bytes that do not compress, tar headers and JSON).
    assert!(patch.len() < v1.len() - base_bytes, "{}", patch.len());
    assert!(patch.len() < whole.len() / 5);

    // v2 against v1 onboard: the literals are a delta too.
    let patch2 = delta::make_layers(Some(&v1), &v2, &onboard).unwrap();
    let back = delta::apply_with_layers(Some(&v1), &patch2, limits, &mut source.clone()).unwrap();
    assert!(back == v2, "v2 byte-exact");
    eprintln!("docker save v2 against v1: layers {} bytes", patch2.len());
    assert!(patch2.len() < 5_000, "{}", patch2.len());

    // A base layer that is not the one named: refused.
    let mut corrupt = source.clone();
    for l in corrupt.0.values_mut() {
        let at = l.len() / 2;
        l[at] ^= 1;
    }
    let e = delta::apply_with_layers(None, &patch, limits, &mut corrupt).unwrap_err();
    assert!(matches!(e, DeltaError::Layer { .. }), "{e}");
}
