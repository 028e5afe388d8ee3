//! Ground and flight judge archives alike: every archive case runs through preflight's
//! `lint_archive` with the image its `docker.load` task names, as the ground's preflight of an
//! operation runs it, and through the flight's whole decision before a load: the calls its
//! `docker.load` makes (`crates/flight/src/tasks/images.rs`), `imagefmt::judge_load` on the
//! archive and `name:tag`, and the task error code it gives a refusal. The two must agree: the
//! flight refuses an archive if and only if preflight reports an error whose code is in
//! `preflight::ARCHIVE_REFUSALS`, and when both accept, preflight checked the very image the
//! flight loads. Each case also states the verdict it should get (accepted, refused as an
//! archive: `DockerTarfileLoadFailed` and OD602/OD606, or refused for not holding the image
//! named: `DockerImageLoadFailed` and OD607), so a case both sides got wrong, or a refusal
//! mapped to the wrong code on either side, fails too. The table (case, flight, preflight) is
//! printed; run with `--nocapture` to see it on success.
//!
//! The cases: the archives of preflight's other tests (the corpus under `tests/corpus/` holds
//! Dockerfile contexts only, no archive), and archives crafted here with the `tar` crate in both
//! layouts (Docker ≤ 24: `<id>/layer.tar`, `<hex>.json`; Docker ≥ 25: `blobs/sha256/…` with
//! `index.json`): each bound of `imagefmt` at its value and one over, a second manifest, a
//! config that does not hash to its id, `..` in a member, links of every kind, truncations,
//! missing layers and blobs, duplicated members, long names and pax headers, images named or
//! not, tags compared as Docker writes them, configs with ONBUILD triggers, …

use std::io::Write;
use std::path::Path;

use preflight::{ARCHIVE_REFUSALS, ArchiveOptions, Eta, Severity, System, lint_archive};
use serde_json::{Value, json};
use tar::EntryType;
use wire::ErrorCode;

/// One member of a crafted archive: for links, `data` is the target.
#[derive(Clone)]
struct M {
    name: String,
    kind: EntryType,
    data: Vec<u8>,
    /// A size to declare instead of `data.len()`.
    declared: Option<u64>,
}

fn file(name: &str, data: impl Into<Vec<u8>>) -> M {
    M {
        name: name.into(),
        kind: EntryType::Regular,
        data: data.into(),
        declared: None,
    }
}

fn dir(name: &str) -> M {
    M {
        kind: EntryType::Directory,
        ..file(name, "")
    }
}

fn symlink(name: &str, target: &str) -> M {
    M {
        kind: EntryType::Symlink,
        ..file(name, target)
    }
}

fn hardlink(name: &str, target: &str) -> M {
    M {
        kind: EntryType::Link,
        ..file(name, target)
    }
}

/// A GNU long name for the member after it: `name` and a NUL.
fn long_name(name: &[u8]) -> M {
    let mut body = name.to_vec();
    body.push(0);
    M {
        kind: EntryType::GNULongName,
        ..file("././@LongLink", body)
    }
}

/// A pax header for the member after it, holding `records` (`key=value`, each written with its
/// length).
fn pax(records: &[&str]) -> M {
    let mut body = String::new();
    for text in records {
        let mut n = text.len() + 3;
        while format!("{n} {text}\n").len() != n {
            n += 1;
        }
        body.push_str(&format!("{n} {text}\n"));
    }
    M {
        kind: EntryType::XHeader,
        ..file("PaxHeaders/x", body)
    }
}

/// Writes the members with their names as given (not normalised), each padded, then the two
/// zero blocks that end an archive.
fn write_tar(members: &[M], out: &mut dyn Write) {
    for m in members {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(m.kind);
        h.set_mode(0o644);
        assert!(m.name.len() <= 100, "{}", m.name);
        h.as_old_mut().name[..m.name.len()].copy_from_slice(m.name.as_bytes());
        let body: &[u8] = if m.kind.is_symlink() || m.kind.is_hard_link() {
            h.as_old_mut().linkname[..m.data.len()].copy_from_slice(&m.data);
            &[]
        } else {
            &m.data
        };
        h.set_size(m.declared.unwrap_or(body.len() as u64));
        h.set_cksum();
        out.write_all(h.as_bytes()).unwrap();
        out.write_all(body).unwrap();
        out.write_all(&vec![0; body.len().next_multiple_of(512) - body.len()])
            .unwrap();
    }
    out.write_all(&[0; 1024]).unwrap();
}

fn tar_bytes(members: &[M]) -> Vec<u8> {
    let mut v = Vec::new();
    write_tar(members, &mut v);
    v
}

fn hex(data: &[u8]) -> String {
    wire::Digest::of(data).hex()
}

/// An image to lay out.
#[derive(Clone)]
struct Img {
    tag: &'static str,
    layers: Vec<Vec<u8>>,
    /// Fields merged into the config.
    config: Value,
    /// The config's text instead, with `{diff_ids}` standing for the DiffIDs.
    text: Option<&'static str>,
}

fn img(tag: &'static str, layers: &[&[u8]]) -> Img {
    Img {
        tag,
        layers: layers.iter().map(|l| l.to_vec()).collect(),
        config: json!({}),
        text: None,
    }
}

fn config_of(img: &Img) -> Vec<u8> {
    if let Some(text) = img.text {
        let ids: Vec<String> = img
            .layers
            .iter()
            .map(|l| format!("sha256:{}", hex(l)))
            .collect();
        return text
            .replace("{diff_ids}", &serde_json::to_string(&ids).unwrap())
            .into_bytes();
    }
    let mut c = json!({
        "architecture": "arm64",
        "os": "linux",
        "config": {"User": "65532", "Entrypoint": ["/app"]},
        "rootfs": {"type": "layers", "diff_ids": img.layers.iter().map(|l| format!("sha256:{}", hex(l))).collect::<Vec<_>>()},
    });
    for (k, v) in img.config.as_object().unwrap() {
        c[k] = v.clone();
    }
    serde_json::to_vec(&c).unwrap()
}

/// `docker save` as Docker ≤ 24 writes it: `<id>/layer.tar` (a layer already written is a
/// symlink to the first copy), `<hex>.json`, `manifest.json`, `repositories`.
fn docker_layout(images: &[Img]) -> Vec<M> {
    let mut out = Vec::new();
    let mut manifest = Vec::new();
    let mut first_dir: std::collections::HashMap<String, String> = Default::default();
    for (i, image) in images.iter().enumerate() {
        let mut paths = Vec::new();
        for (n, layer) in image.layers.iter().enumerate() {
            let id = hex(format!("{i}/{n}/{}", hex(layer)).as_bytes());
            out.push(dir(&format!("{id}/")));
            out.push(file(&format!("{id}/VERSION"), "1.0"));
            out.push(file(&format!("{id}/json"), "{}"));
            match first_dir.get(&hex(layer)) {
                Some(first) => out.push(symlink(
                    &format!("{id}/layer.tar"),
                    &format!("../{first}/layer.tar"),
                )),
                None => {
                    out.push(file(&format!("{id}/layer.tar"), layer.clone()));
                    first_dir.insert(hex(layer), id.clone());
                }
            }
            paths.push(format!("{id}/layer.tar"));
        }
        let config = config_of(image);
        let name = format!("{}.json", hex(&config));
        if !out.iter().any(|m| m.name == name) {
            out.push(file(&name, config));
        }
        manifest.push(json!({"Config": name, "RepoTags": [image.tag], "Layers": paths}));
    }
    out.push(file(
        "manifest.json",
        serde_json::to_vec(&manifest).unwrap(),
    ));
    out.push(file("repositories", r#"{"app":{"1":"x"}}"#));
    out
}

/// `docker save` as Docker ≥ 25 writes it: an OCI layout (`oci-layout`, `index.json`,
/// `blobs/sha256/…`) with `manifest.json` beside it.
fn oci_layout(images: &[Img]) -> Vec<M> {
    let mut blobs: Vec<M> = Vec::new();
    let mut blob = |data: Vec<u8>| -> String {
        let h = hex(&data);
        let name = format!("blobs/sha256/{h}");
        if !blobs.iter().any(|m| m.name == name) {
            blobs.push(file(&name, data));
        }
        h
    };
    let mut manifest = Vec::new();
    let mut index = Vec::new();
    for image in images {
        let layers: Vec<Value> = image
            .layers
            .iter()
            .map(|l| json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": format!("sha256:{}", blob(l.clone())), "size": l.len()}))
            .collect();
        let config = config_of(image);
        let config_len = config.len();
        let config_hex = blob(config);
        let oci = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{config_hex}"), "size": config_len},
            "layers": layers,
        }))
        .unwrap();
        let oci_len = oci.len();
        let oci_hex = blob(oci);
        index.push(json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{oci_hex}"), "size": oci_len, "annotations": {"io.containerd.image.name": format!("docker.io/library/{}", image.tag), "org.opencontainers.image.ref.name": "1"}}));
        manifest.push(json!({
            "Config": format!("blobs/sha256/{config_hex}"),
            "RepoTags": [image.tag],
            "Layers": image.layers.iter().map(|l| format!("blobs/sha256/{}", hex(l))).collect::<Vec<_>>(),
        }));
    }
    let mut out = vec![dir("blobs/"), dir("blobs/sha256/")];
    out.extend(blobs);
    out.push(file("oci-layout", r#"{"imageLayoutVersion":"1.0.0"}"#));
    out.push(file(
        "index.json",
        serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": index})).unwrap(),
    ));
    out.push(file(
        "manifest.json",
        serde_json::to_vec(&manifest).unwrap(),
    ));
    out.push(file("repositories", r#"{"app":{"1":"x"}}"#));
    out
}

fn app() -> Img {
    img("app:1", &[b"layer one".as_slice(), b"layer two"])
}

fn get<'a>(members: &'a mut [M], name: &str) -> &'a mut M {
    members
        .iter_mut()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no member {name}"))
}

fn edit_json(members: &mut [M], name: &str, f: impl FnOnce(&mut Value)) {
    let m = get(members, name);
    let mut v: Value = serde_json::from_slice(&m.data).unwrap();
    f(&mut v);
    m.data = serde_json::to_vec(&v).unwrap();
}

/// `member` padded with spaces (valid JSON still) to exactly `size` bytes.
fn pad_to(members: &mut [M], name: &str, size: u64) {
    let m = get(members, name);
    assert!(m.data.len() as u64 <= size);
    m.data.resize(size as usize, b' ');
}

fn name_of(members: &[M], suffix: &str) -> String {
    members
        .iter()
        .find(|m| m.name.ends_with(suffix))
        .unwrap()
        .name
        .clone()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Loaded: the flight accepts it, preflight reports no refusal.
    Accept,
    /// Refused as an archive: `DockerTarfileLoadFailed` onboard, OD602 or OD606 on the ground.
    Refuse,
    /// Refused for not holding the image named: `DockerImageLoadFailed`, OD607.
    NotTagged,
}

/// The image the cases' `docker.load` names, unless a case says otherwise.
const APP: &str = "app:1";

/// Writes a large archive straight to its file.
type Writer = Box<dyn Fn(&mut dyn Write)>;

/// How a case's archive is made: in memory, or streamed to the file (the large ones).
enum Bytes {
    Mem(Vec<u8>),
    Stream(Writer),
}

struct Case {
    name: String,
    want: Want,
    bytes: Bytes,
    /// The `docker.load` task's image, `name:tag`.
    image: &'static str,
}

fn case(name: impl Into<String>, want: Want, bytes: Vec<u8>) -> Case {
    Case {
        name: name.into(),
        want,
        bytes: Bytes::Mem(bytes),
        image: APP,
    }
}

fn cases() -> Vec<Case> {
    use Want::{Accept, NotTagged, Refuse};
    let mut out = Vec::new();
    let mut both = |name: &str, want: Want, f: &dyn Fn(&mut Vec<M>, bool)| {
        for (layout, oci) in [("docker", false), ("oci", true)] {
            let mut members = if oci {
                oci_layout(&[app()])
            } else {
                docker_layout(&[app()])
            };
            f(&mut members, oci);
            out.push(case(format!("{layout}: {name}"), want, tar_bytes(&members)));
        }
    };
    both("as docker save writes it", Accept, &|_, _| {});
    both("a `./` prefix on every name", Accept, &|ms, _| {
        for m in ms.iter_mut() {
            m.name = format!("./{}", m.name);
        }
    });
    both(
        "a second manifest at x/../manifest.json",
        Refuse,
        &|ms, _| {
            let mut evil = get(ms, "manifest.json").clone();
            evil.name = "x/../manifest.json".into();
            ms.push(evil);
        },
    );
    both("a second manifest at ./manifest.json", Refuse, &|ms, _| {
        let mut evil = get(ms, "manifest.json").clone();
        evil.name = "./manifest.json".into();
        ms.push(evil);
    });
    both(
        "a second manifest behind a link folder",
        Refuse,
        &|ms, _| {
            let mut evil = get(ms, "manifest.json").clone();
            evil.name = "d/manifest.json".into();
            ms.push(symlink("d", "."));
            ms.push(evil);
        },
    );
    both(
        "a second manifest behind a link to a folder",
        Refuse,
        &|ms, _| {
            let mut evil = get(ms, "manifest.json").clone();
            evil.name = "d/manifest.json".into();
            ms.push(dir("sub/"));
            ms.push(symlink("d", "sub"));
            ms.push(evil);
        },
    );
    both("a link to a folder, nothing inside it", Accept, &|ms, _| {
        ms.push(dir("sub/"));
        ms.push(symlink("d", "sub"));
    });
    both("manifest.json is a symlink", Refuse, &|ms, _| {
        let mut real = get(ms, "manifest.json").clone();
        real.name = "real.json".into();
        *get(ms, "manifest.json") = symlink("manifest.json", "real.json");
        ms.push(real);
    });
    both("an absolute member name", Refuse, &|ms, _| {
        ms.push(file("/etc/cron.d/x", "* * * * * root true"));
    });
    both("a member name with ..", Refuse, &|ms, _| {
        ms.push(file("a/../../escape", "x"));
    });
    both("a duplicated member", Refuse, &|ms, oci| {
        let name = name_of(ms, if oci { ".json" } else { "layer.tar" });
        let dup = get(ms, &name).clone();
        ms.push(dup);
    });
    both(
        "a member twice, the first with other content",
        Refuse,
        &|ms, oci| {
            let name = name_of(ms, if oci { "oci-layout" } else { "VERSION" });
            let mut dup = get(ms, &name).clone();
            dup.data = b"other".to_vec();
            ms.insert(0, dup);
        },
    );
    both(
        "a config that does not hash to its name",
        Refuse,
        &|ms, oci| {
            let config = ms
                .iter()
                .position(|m| {
                    let s = String::from_utf8_lossy(&m.data);
                    s.contains("diff_ids") && (oci || m.name.ends_with(".json"))
                })
                .unwrap();
            let m = &mut ms[config];
            let s = String::from_utf8(m.data.clone()).unwrap();
            m.data = s.replace("65532", "0").into_bytes();
        },
    );
    both("a layer path with ..", Refuse, &|ms, _| {
        edit_json(ms, "manifest.json", |v| {
            let l = v[0]["Layers"][0].as_str().unwrap().to_string();
            v[0]["Layers"][0] = json!(format!("x/../{l}"));
        });
    });
    both("a missing layer", Refuse, &|ms, _| {
        let layer = layers_of(ms)[1].clone();
        ms.retain(|m| m.name != layer);
    });
    both("one layer more than DiffIDs", Refuse, &|ms, _| {
        edit_json(ms, "manifest.json", |v| {
            let l = v[0]["Layers"][0].clone();
            v[0]["Layers"].as_array_mut().unwrap().push(l);
        });
    });
    both("an empty manifest list", Refuse, &|ms, _| {
        get(ms, "manifest.json").data = b"[]".to_vec();
    });
    both("manifest.json is not JSON", Refuse, &|ms, _| {
        get(ms, "manifest.json").data = b"[{\"Config\":".to_vec();
    });
    both("a layer reached through a symlink", Accept, &|ms, _| {
        let target = layers_of(ms)[0].clone();
        edit_json(ms, "manifest.json", |v| {
            v[0]["Layers"][0] = json!("alias/layer.tar")
        });
        ms.push(dir("alias/"));
        ms.push(symlink("alias/layer.tar", &format!("../{target}")));
    });
    both("a layer reached through a hard link", Accept, &|ms, _| {
        let target = layers_of(ms)[0].clone();
        edit_json(ms, "manifest.json", |v| {
            v[0]["Layers"][0] = json!("alias.tar")
        });
        ms.push(hardlink("alias.tar", &target));
    });
    both("a symlink out of the archive", Refuse, &|ms, _| {
        ms.push(symlink("passwd", "../../../etc/passwd"));
    });
    both("an absolute symlink", Refuse, &|ms, _| {
        ms.push(symlink("passwd", "/etc/passwd"));
    });
    both("a symlink to nothing", Refuse, &|ms, _| {
        ms.push(symlink("nothing", "missing/layer.tar"));
    });
    both("a hard link to a later member", Refuse, &|ms, _| {
        let last = ms.last().unwrap().name.clone();
        ms.insert(0, hardlink("early", &last));
    });
    both("a symlink that declares data", Refuse, &|ms, _| {
        let mut link = symlink("link", "manifest.json");
        link.declared = Some(512);
        ms.insert(0, link);
    });
    both("a device node", Refuse, &|ms, _| {
        let mut dev = file("dev", "");
        dev.kind = EntryType::Char;
        ms.push(dev);
    });
    both("a file used as a folder", Refuse, &|ms, _| {
        ms.push(file("repositories/x", "y"));
    });
    both("a config naming no platform", Accept, &|ms, oci| {
        // Rebuilt, as the config's digest names it.
        let mut image = app();
        image.config = json!({"os": null, "architecture": null});
        *ms = if oci {
            oci_layout(&[image])
        } else {
            docker_layout(&[image])
        };
    });
    both("an image for linux/amd64", Accept, &|ms, oci| {
        let mut image = app();
        image.config = json!({"architecture": "amd64"});
        *ms = if oci {
            oci_layout(&[image])
        } else {
            docker_layout(&[image])
        };
    });
    both("two images sharing a layer", Accept, &|ms, oci| {
        let images = [app(), img("other:2", &[b"layer one".as_slice()])];
        *ms = if oci {
            oci_layout(&images)
        } else {
            docker_layout(&images)
        };
    });
    // Links whose `..` the classic store resolves on disk, after following the link before it.
    both("a link climbing out of a link", Refuse, &|ms, _| {
        let target = layers_of(ms)[0].clone();
        edit_json(ms, "manifest.json", |v| v[0]["Layers"][0] = json!("alias"));
        ms.push(symlink("b", "c/d"));
        ms.push(symlink("alias", &format!("b/../{target}")));
    });
    both("a link climbing out of a folder", Accept, &|ms, _| {
        let target = layers_of(ms)[0].clone();
        edit_json(ms, "manifest.json", |v| v[0]["Layers"][0] = json!("alias"));
        ms.push(dir("f/"));
        ms.push(symlink("alias", &format!("f/../nowhere/../{target}")));
    });
    // Long names and pax headers: what Docker and tar write, and what Go's tar reader (the
    // engine's) reads as another member than the `tar` crate does.
    both("a member named by a GNU long name", Accept, &|ms, _| {
        ms.push(long_name("l".repeat(300).as_bytes()));
        ms.push(file("ignored", "x"));
    });
    both("a member named by a pax header", Accept, &|ms, _| {
        ms.push(pax(&["path=p/q", "size=1", "mtime=1.5"]));
        ms.push(file("ignored", "x"));
    });
    both(
        "a second manifest behind a NUL in a long name",
        Refuse,
        &|ms, _| {
            let evil = get(ms, "manifest.json").data.clone();
            ms.push(long_name(b"manifest.json\0x"));
            ms.push(file("ignored", evil));
        },
    );
    both("a second manifest as a pax path twice", Refuse, &|ms, _| {
        let evil = get(ms, "manifest.json").data.clone();
        ms.push(pax(&["path=harmless", "path=manifest.json"]));
        ms.push(file("ignored", evil));
    });
    both(
        "a second manifest as a GNU.sparse.name",
        Refuse,
        &|ms, _| {
            let evil = get(ms, "manifest.json").data.clone();
            ms.push(pax(&[
                "GNU.sparse.major=1",
                "GNU.sparse.minor=0",
                "GNU.sparse.name=manifest.json",
            ]));
            ms.push(file("ignored", evil));
        },
    );
    // ONBUILD triggers: onboard, a tenant image with them is not usable.
    let rebuilt = |oci: bool, images: &[Img]| {
        if oci {
            oci_layout(images)
        } else {
            docker_layout(images)
        }
    };
    both("a config with ONBUILD triggers", Refuse, &|ms, oci| {
        let mut image = app();
        image.config = json!({"config": {"User": "65532", "OnBuild": ["COPY --from=tenants/bob/secret:1 / /stolen"]}});
        *ms = rebuilt(oci, &[image]);
    });
    both("a config with no ONBUILD triggers", Accept, &|ms, oci| {
        let mut image = app();
        image.config = json!({"config": {"User": "65532", "OnBuild": []}});
        *ms = rebuilt(oci, &[image]);
    });
    both(
        "ONBUILD triggers spelt in lower case",
        Refuse,
        &|ms, oci| {
            let mut image = app();
            image.config = json!({"config": {"User": "65532", "onbuild": ["RUN id"]}});
            *ms = rebuilt(oci, &[image]);
        },
    );
    both(
        "ONBUILD triggers in a second `config` object",
        Refuse,
        &|ms, oci| {
            let mut image = app();
            image.text = Some(
                r#"{"architecture":"arm64","os":"linux","config":{"OnBuild":["RUN id"]},"config":{"User":"65532"},"rootfs":{"type":"layers","diff_ids":{diff_ids}}}"#,
            );
            *ms = rebuilt(oci, &[image]);
        },
    );
    both(
        "ONBUILD triggers in the image not loaded",
        Refuse,
        &|ms, oci| {
            let mut other = img("other:2", &[b"layer one".as_slice()]);
            other.config = json!({"config": {"OnBuild": ["RUN id"]}});
            *ms = rebuilt(oci, &[app(), other]);
        },
    );

    // The image named: the flight loads the one tagged so, and only it is checked.
    let named = |name: &str, want: Want, image: &'static str, images: &[Img]| {
        [("docker", false), ("oci", true)].map(|(layout, oci)| Case {
            image,
            ..case(
                format!("{layout}: {name}"),
                want,
                tar_bytes(&if oci {
                    oci_layout(images)
                } else {
                    docker_layout(images)
                }),
            )
        })
    };
    let two = [app(), img("other:2", &[b"layer one".as_slice()])];
    let mut amd64 = img("other:2", &[b"layer three".as_slice()]);
    amd64.config = json!({"architecture": "amd64"});
    out.extend(named(
        "a tag the archive lacks",
        NotTagged,
        "app:2",
        &[app()],
    ));
    out.extend(named(
        "`app` is app:latest, not app:1",
        NotTagged,
        "app:latest",
        &[app()],
    ));
    out.extend(named("the second image", Accept, "other:2", &two));
    out.extend(named(
        "an image beside one for linux/amd64",
        Accept,
        APP,
        &[app(), amd64],
    ));
    out.extend(named(
        "a tag written in full",
        Accept,
        APP,
        &[img("docker.io/library/app:1", &[b"layer one".as_slice()])],
    ));
    out.extend(named(
        "a tag written without one",
        Accept,
        "app:latest",
        &[img("app", &[b"layer one".as_slice()])],
    ));
    let mut untagged = docker_layout(&[app()]);
    edit_json(&mut untagged, "manifest.json", |v| {
        v[0]["RepoTags"] = Value::Null;
    });
    out.push(case(
        "docker: an untagged image",
        NotTagged,
        tar_bytes(&untagged),
    ));
    // The OCI index names `app:1`; `manifest.json`, which the flight reads, does not.
    let mut annotated = oci_layout(&[app()]);
    edit_json(&mut annotated, "manifest.json", |v| {
        v[0]["RepoTags"] = json!(["else:1"]);
    });
    out.push(case(
        "oci: a tag only in index.json",
        NotTagged,
        tar_bytes(&annotated),
    ));

    // Truncations and things that are not archives.
    let good = tar_bytes(&docker_layout(&[app()]));
    let end = good.len() - 1024;
    out.push(case(
        "not a tar",
        Refuse,
        b"{\"this\": \"is json\"}".repeat(40),
    ));
    out.push(case("an empty file", Refuse, Vec::new()));
    out.push(case(
        "truncated: no end-of-archive blocks",
        Accept,
        good[..end].to_vec(),
    ));
    let layer_at = good.windows(9).position(|w| w == b"layer two").unwrap();
    out.push(case(
        "truncated: inside a layer",
        Refuse,
        good[..layer_at + 4].to_vec(),
    ));
    out.push(case(
        "truncated: inside a header",
        Refuse,
        good[..layer_at + 512 + 100].to_vec(),
    ));
    out.push(case(
        "truncated: a layer's padding",
        Refuse,
        good[..layer_at + 9 + 1].to_vec(),
    ));

    // OCI-only questions.
    let oci = |f: &dyn Fn(&mut Vec<M>)| {
        let mut ms = oci_layout(&[app()]);
        f(&mut ms);
        tar_bytes(&ms)
    };
    out.push(case(
        "oci: no manifest.json (a bare OCI layout)",
        Refuse,
        oci(&|ms| ms.retain(|m| m.name != "manifest.json")),
    ));
    out.push(case(
        "oci: index.json points at a missing blob",
        Refuse,
        oci(&|ms| {
            edit_json(ms, "index.json", |v| {
                v["manifests"][0]["digest"] = json!(format!("sha256:{}", "e".repeat(64)));
            })
        }),
    ));
    out.push(case(
        "oci: a missing layer blob",
        Refuse,
        oci(&|ms| {
            let layer = format!("blobs/sha256/{}", hex(b"layer two"));
            // manifest.json names it too: point that at a copy, so only the OCI side lacks it.
            let mut copy = get(ms, &layer).clone();
            copy.name = "copy/layer.tar".into();
            edit_json(ms, "manifest.json", |v| {
                v[0]["Layers"][1] = json!("copy/layer.tar");
            });
            ms.retain(|m| m.name != layer);
            ms.push(copy);
        }),
    ));
    out.push(case(
        "oci: a layer size that is not the blob's",
        Refuse,
        oci(&|ms| {
            let manifest = ms
                .iter()
                .find(|m| String::from_utf8_lossy(&m.data).contains("\"layers\":"))
                .unwrap()
                .name
                .clone();
            let mut v: Value = serde_json::from_slice(&get(ms, &manifest).data).unwrap();
            v["layers"][0]["size"] = json!(u64::MAX);
            let data = serde_json::to_vec(&v).unwrap();
            let new = format!("blobs/sha256/{}", hex(&data));
            let size = data.len();
            ms.retain(|m| m.name != manifest);
            ms.push(file(&new, data));
            edit_json(ms, "index.json", |v| {
                v["manifests"][0]["digest"] = json!(format!("sha256:{}", &new[13..]));
                v["manifests"][0]["size"] = json!(size);
            });
        }),
    ));
    out.push(case(
        "oci: a manifest blob that does not hash to its name",
        Refuse,
        oci(&|ms| {
            let m = ms
                .iter_mut()
                .find(|m| String::from_utf8_lossy(&m.data).contains("\"layers\":"))
                .unwrap();
            m.data = String::from_utf8(m.data.clone())
                .unwrap()
                .replace("schemaVersion\":2", "schemaVersion\":3")
                .into_bytes();
        }),
    ));
    out.push(case(
        "oci: a nested index with a platform not saved",
        Accept,
        oci(&|ms| nest(ms, 1, true)),
    ));
    out.push(case(
        "oci: an attestation manifest whose blob is absent",
        Accept,
        oci(&|ms| {
            edit_json(ms, "index.json", |v| {
                v["manifests"].as_array_mut().unwrap().push(json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": format!("sha256:{}", "a".repeat(64)),
                    "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
                }));
            })
        }),
    ));

    out.push(case(
        "oci: ONBUILD triggers in a config only index.json names",
        Refuse,
        oci(&|ms| {
            let mut image = app();
            image.config = json!({"config": {"OnBuild": ["RUN id"]}});
            let config = config_of(&image);
            let manifest = ms
                .iter()
                .find(|m| String::from_utf8_lossy(&m.data).contains("\"layers\":"))
                .unwrap()
                .name
                .clone();
            let mut v: Value = serde_json::from_slice(&get(ms, &manifest).data).unwrap();
            v["config"]["digest"] = json!(format!("sha256:{}", hex(&config)));
            v["config"]["size"] = json!(config.len());
            let data = serde_json::to_vec(&v).unwrap();
            let (new, size) = (hex(&data), data.len());
            ms.retain(|m| m.name != manifest);
            ms.push(file(&format!("blobs/sha256/{new}"), data));
            ms.push(file(&format!("blobs/sha256/{}", hex(&config)), config));
            edit_json(ms, "index.json", |v| {
                v["manifests"][0]["digest"] = json!(format!("sha256:{new}"));
                v["manifests"][0]["size"] = json!(size);
            });
        }),
    ));

    bounds(&mut out);
    from_other_tests(&mut out);
    out
}

/// The layer paths of `manifest.json`'s first image.
fn layers_of(ms: &mut [M]) -> Vec<String> {
    let v: Value = serde_json::from_slice(&get(ms, "manifest.json").data).unwrap();
    v[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

/// Wraps `index.json`'s entries in `depth` nested index blobs; with `extra`, the innermost also
/// lists a platform whose manifest is not in the archive.
fn nest(ms: &mut Vec<M>, depth: usize, extra: bool) {
    let mut v: Value = serde_json::from_slice(&get(ms, "index.json").data).unwrap();
    let mut manifests = v["manifests"].clone();
    if extra {
        manifests.as_array_mut().unwrap().push(json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{}", "b".repeat(64)),
            "platform": {"os": "linux", "architecture": "riscv64"},
        }));
    }
    for _ in 0..depth {
        let inner = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests})).unwrap();
        let h = hex(&inner);
        manifests = json!([{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": format!("sha256:{h}"), "size": inner.len()}]);
        ms.insert(2, file(&format!("blobs/sha256/{h}"), inner));
    }
    v["manifests"] = manifests;
    get(ms, "index.json").data = serde_json::to_vec(&v).unwrap();
}

/// Each bound of `imagefmt` at its value (accepted) and one over (refused).
fn bounds(out: &mut Vec<Case>) {
    use Want::{Accept, Refuse};
    let over = |n: u64| if n == 0 { Accept } else { Refuse };
    let max = imagefmt::MAX_METADATA_BYTES;
    for extra in [0, 1] {
        let mut ms = docker_layout(&[app()]);
        pad_to(&mut ms, "manifest.json", max + extra);
        out.push(case(
            format!("bound: manifest.json of MAX_METADATA_BYTES{}", plus(extra)),
            over(extra),
            tar_bytes(&ms),
        ));
        let mut ms = oci_layout(&[app()]);
        pad_to(&mut ms, "index.json", max + extra);
        out.push(case(
            format!("bound: index.json of MAX_METADATA_BYTES{}", plus(extra)),
            over(extra),
            tar_bytes(&ms),
        ));
        // A config padded inside its JSON (its name is its digest).
        let mut image = app();
        image.config = json!({"pad": ""});
        let bare = config_of(&image).len() as u64;
        image.config = json!({"pad": " ".repeat((max + extra - bare) as usize)});
        assert_eq!(config_of(&image).len() as u64, max + extra);
        out.push(case(
            format!("bound: a config of MAX_METADATA_BYTES{}", plus(extra)),
            over(extra),
            tar_bytes(&docker_layout(&[image])),
        ));
    }
    // MAX_METADATA_TOTAL: manifest.json and 16 distinct configs adding up to it, exactly.
    let total = imagefmt::MAX_METADATA_TOTAL;
    let per = total / 16;
    for extra in [0, 1] {
        let mut images: Vec<Img> = (0..16)
            .map(|i| {
                let mut image = img("app:1", &[]);
                image.config = json!({"pad": "", "n": i});
                image
            })
            .collect();
        let manifest_len = serde_json::to_vec(
            &images
                .iter()
                .map(|i| json!({"Config": format!("{}.json", hex(&config_of(i))), "RepoTags": [i.tag], "Layers": []}))
                .collect::<Vec<_>>(),
        )
        .unwrap()
        .len() as u64;
        for (k, image) in images.iter_mut().enumerate() {
            let want = if k == 15 {
                per - manifest_len + extra
            } else {
                per
            };
            let bare = config_of(image).len() as u64;
            image.config["pad"] = json!(" ".repeat((want - bare) as usize));
        }
        let ms = docker_layout(&images);
        // What the judge reads: manifest.json and the configs.
        let metadata: u64 = ms
            .iter()
            .filter(|m| m.name.ends_with(".json") && !m.name.ends_with("/json"))
            .map(|m| m.data.len() as u64)
            .sum();
        assert_eq!(metadata, total + extra);
        out.push(case(
            format!("bound: metadata of MAX_METADATA_TOTAL{}", plus(extra)),
            over(extra),
            tar_bytes(&ms),
        ));
    }
    // MAX_MEMBERS: filler folders up to the bound.
    for extra in [0, 1] {
        let ms = docker_layout(&[app()]);
        let filler = imagefmt::MAX_MEMBERS + extra as usize - ms.len();
        out.push(Case {
            name: format!("bound: MAX_MEMBERS members{}", plus(extra)),
            want: over(extra),
            bytes: Bytes::Stream(Box::new(move |w| {
                let mut all = ms.clone();
                all.extend((0..filler).map(|i| dir(&format!("f/{i}/"))));
                write_tar(&all, w);
            })),
            image: APP,
        });
    }
    // MAX_IMAGES: manifest.json entries, and manifests behind the OCI index.
    for extra in [0, 1] {
        let n = imagefmt::MAX_IMAGES + extra as usize;
        let mut ms = docker_layout(&[app()]);
        edit_json(&mut ms, "manifest.json", |v| {
            let one = v[0].clone();
            *v = json!(vec![one; n]);
        });
        out.push(case(
            format!("bound: MAX_IMAGES images in manifest.json{}", plus(extra)),
            over(extra),
            tar_bytes(&ms),
        ));
        let images: Vec<Img> = (0..n)
            .map(|i| {
                let mut image = img("app:1", &[]);
                image.config = json!({"n": i});
                image
            })
            .collect();
        let mut ms = oci_layout(&images);
        // manifest.json keeps one image: only the OCI side reaches the bound.
        edit_json(&mut ms, "manifest.json", |v| *v = json!([v[0].clone()]));
        out.push(case(
            format!("bound: MAX_IMAGES manifests in index.json{}", plus(extra)),
            over(extra),
            tar_bytes(&ms),
        ));
    }
    // MAX_LAYERS: one layer member listed again and again.
    for extra in [0, 1] {
        let n = imagefmt::MAX_LAYERS + extra as usize;
        let layer: &[u8] = b"the same layer";
        let image = img("app:1", &vec![layer; n]);
        out.push(case(
            format!("bound: MAX_LAYERS layers{}", plus(extra)),
            over(extra),
            tar_bytes(&oci_layout(&[image])),
        ));
    }
    // MAX_INDEX_DEPTH: index blobs nested below index.json.
    for extra in [0, 1] {
        let mut ms = oci_layout(&[app()]);
        nest(&mut ms, imagefmt::MAX_INDEX_DEPTH + extra as usize, false);
        out.push(case(
            format!("bound: MAX_INDEX_DEPTH nested indexes{}", plus(extra)),
            over(extra),
            tar_bytes(&ms),
        ));
    }
    // MAX_LINK_HOPS: a layer reached through a chain of symlinks.
    for extra in [0, 1] {
        let mut ms = docker_layout(&[app()]);
        let mut target = String::new();
        edit_json(&mut ms, "manifest.json", |v| {
            target = v[0]["Layers"][0].as_str().unwrap().to_string();
            v[0]["Layers"][0] = json!("link0");
        });
        let hops = imagefmt::MAX_LINK_HOPS + extra as usize;
        for i in 0..hops {
            let next = if i + 1 == hops {
                target.clone()
            } else {
                format!("link{}", i + 1)
            };
            ms.push(symlink(&format!("link{i}"), &next));
        }
        out.push(case(
            format!("bound: MAX_LINK_HOPS links{}", plus(extra)),
            over(extra),
            tar_bytes(&ms),
        ));
    }
    name_bounds(out);
}

/// The bounds on names: a long name of `MAX_EXTENSION_BYTES` (the engine's own limit), and
/// names adding up to `MAX_NAMES_TOTAL`.
fn name_bounds(out: &mut Vec<Case>) {
    use Want::{Accept, Refuse};
    let over = |n: u64| if n == 0 { Accept } else { Refuse };
    let max = imagefmt::MAX_EXTENSION_BYTES;
    for extra in [0, 1] {
        let mut ms = docker_layout(&[app()]);
        // The name and its NUL.
        ms.push(long_name("n".repeat((max - 1 + extra) as usize).as_bytes()));
        ms.push(file("ignored", "x"));
        out.push(case(
            format!("bound: a long name of MAX_EXTENSION_BYTES{}", plus(extra)),
            over(extra),
            tar_bytes(&ms),
        ));
    }
    let total = imagefmt::MAX_NAMES_TOTAL;
    for extra in [0, 1] {
        let ms = docker_layout(&[app()]);
        // What the judge counts: each member's name and each link's target.
        let kept: u64 = ms
            .iter()
            .map(|m| {
                let link = m.kind.is_symlink() || m.kind.is_hard_link();
                (m.name.len() + if link { m.data.len() } else { 0 }) as u64
            })
            .sum();
        let mut left = total + extra - kept;
        let mut names = Vec::new();
        while left > 0 {
            let len = left.min(max - 1);
            let prefix = format!("f{}-", names.len());
            names.push(format!(
                "{prefix}{}",
                "n".repeat(len as usize - prefix.len())
            ));
            left -= len;
        }
        out.push(Case {
            name: format!("bound: names of MAX_NAMES_TOTAL{}", plus(extra)),
            want: over(extra),
            bytes: Bytes::Stream(Box::new(move |w| {
                let mut all = ms.clone();
                for n in &names {
                    all.push(long_name(n.as_bytes()));
                    all.push(file("ignored", ""));
                }
                write_tar(&all, w);
            })),
            image: APP,
        });
    }
}

fn plus(extra: u64) -> &'static str {
    if extra == 0 { "" } else { " + 1" }
}

/// The archives preflight's other tests use (`tests/robustness.rs`, `tests/docker.rs`, the
/// unit tests of `rules/archive.rs`), rebuilt here.
fn from_other_tests(out: &mut Vec<Case>) {
    use Want::{Accept, Refuse};
    let tagged = |image, name: &str, want, bytes| Case {
        image,
        ..case(name, want, bytes)
    };
    // robustness.rs: the valid archive it mutates.
    let layer = [0u8; 1024];
    let config = format!(
        r#"{{"architecture":"arm64","os":"linux","rootfs":{{"diff_ids":["{}"]}},"config":{{"User":"1"}}}}"#,
        wire::Digest::of(&layer)
    );
    let config_name = format!("{}.json", hex(config.as_bytes()));
    let manifest =
        format!(r#"[{{"Config":"{config_name}","RepoTags":["x:1"],"Layers":["l/layer.tar"]}}]"#);
    out.push(tagged(
        "x:1",
        "robustness.rs: the valid archive",
        Accept,
        tar_bytes(&[
            file("manifest.json", manifest),
            file(&config_name, config),
            file("l/layer.tar", layer.to_vec()),
        ]),
    ));
    // robustness.rs before the judge was shared: a config not named by its digest.
    out.push(tagged(
        "x:1",
        "robustness.rs: a config named c.json",
        Refuse,
        tar_bytes(&[
            file(
                "manifest.json",
                r#"[{"Config":"c.json","RepoTags":["x:1"],"Layers":[]}]"#,
            ),
            file("c.json", r#"{"architecture":"arm64","os":"linux"}"#),
        ]),
    ));
    // docker.rs: `write_archive`, one layer holding /app, `append_path_with_name` members.
    let mut layer = Vec::new();
    {
        let mut b = tar::Builder::new(&mut layer);
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o755);
        h.set_cksum();
        b.append_data(&mut h, "app", &b"\x7fELF"[..]).unwrap();
        b.finish().unwrap();
    }
    let config = serde_json::to_vec(&json!({
        "architecture": "arm64", "os": "linux",
        "config": {"Entrypoint": ["/app"], "User": "65532"},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", hex(&layer))]},
        "history": [{"created_by": "preflight test"}],
    }))
    .unwrap();
    let manifest = json!([{"Config": format!("{}.json", hex(&config)), "RepoTags": ["orbitdock-test/arm64-app:latest"], "Layers": [format!("{}/layer.tar", hex(&layer))]}]);
    out.push(tagged(
        "orbitdock-test/arm64-app:latest",
        "docker.rs: write_archive",
        Accept,
        tar_bytes(&[
            file(&format!("{}.json", hex(&config)), config),
            file(&format!("{}/layer.tar", hex(&layer)), layer.clone()),
            file("manifest.json", serde_json::to_vec(&manifest).unwrap()),
        ]),
    ));
    // docker.rs: garbage.
    out.push(case(
        "docker.rs: garbage",
        Refuse,
        (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect(),
    ));
    // rules/archive.rs: a member declaring an enormous size.
    let mut big = tar_bytes(&[file("manifest.json", "[]")]);
    big.truncate(big.len() - 1024);
    let mut h = tar::Header::new_gnu();
    h.set_path("big.tar").unwrap();
    h.set_mode(0o644);
    h.set_size(1 << 62);
    h.set_cksum();
    big.extend_from_slice(h.as_bytes());
    out.push(case(
        "rules/archive.rs: a member declaring 2^62 bytes",
        Refuse,
        big,
    ));
}

/// What the flight's `docker.load` decides (`crates/flight/src/tasks/images.rs`):
/// `imagefmt::judge_load` of the archive and `name:tag`, a refusal failing the task with
/// `DockerImageLoadFailed` when the archive lacks the image and `DockerTarfileLoadFailed`
/// otherwise. Accepted: the tags of the image it loads.
fn flight(path: &Path, image: &str) -> Result<Vec<String>, (ErrorCode, String)> {
    match imagefmt::judge_load(path, image) {
        Ok(chosen) => Ok(chosen.image().repo_tags.clone()),
        Err(e) => {
            let code = match e.kind() {
                imagefmt::ErrorKind::NotTagged => ErrorCode::DockerImageLoadFailed,
                _ => ErrorCode::DockerTarfileLoadFailed,
            };
            Err((code, format!("{:?}: {e}", e.kind())))
        }
    }
}

/// Preflight's verdict, as the ground's preflight of a `docker.load` runs it: the codes of its
/// error diagnostics, and the tags of each image it checked.
fn preflight(path: &Path, image: &str) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let report = lint_archive(
        path,
        Some(image),
        &System::flight("sat1"),
        &ArchiveOptions {
            known_layers: &[],
            eta: Eta::None,
        },
    );
    let errors = report
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.code)
        .collect();
    let checked = report
        .facts
        .archive
        .iter()
        .map(|a| a.tags.clone())
        .collect();
    (errors, checked)
}

/// The verdict each side should give for `want`: the flight's task error code (none when
/// loaded), and the refusal codes preflight may report.
fn expected(want: Want) -> (Option<ErrorCode>, &'static [&'static str]) {
    match want {
        Want::Accept => (None, &[]),
        Want::Refuse => (
            Some(ErrorCode::DockerTarfileLoadFailed),
            &["OD602", "OD606"],
        ),
        Want::NotTagged => (Some(ErrorCode::DockerImageLoadFailed), &["OD607"]),
    }
}

#[test]
fn preflight_and_the_flight_agree_on_every_archive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.tar");
    let mut rows = vec![(
        "case".to_string(),
        "flight".to_string(),
        "preflight".to_string(),
    )];
    let mut problems = Vec::new();
    let mut reasons = Vec::new();
    let cases = cases();
    assert!(cases.len() >= 120, "only {} cases", cases.len());
    for want in [Want::Accept, Want::Refuse, Want::NotTagged] {
        assert!(cases.iter().any(|c| c.want == want), "no case of {want:?}");
    }
    for c in &cases {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        match &c.bytes {
            Bytes::Mem(b) => f.write_all(b).unwrap(),
            Bytes::Stream(w) => w(&mut f),
        }
        f.flush().unwrap();
        drop(f);
        let flight = flight(&path, c.image);
        let (errors, checked) = preflight(&path, c.image);
        let refusals: Vec<&str> = errors
            .iter()
            .copied()
            .filter(|e| ARCHIVE_REFUSALS.contains(e))
            .collect();
        let flight_says = match &flight {
            Ok(_) => "accept".to_string(),
            Err((code, e)) => format!("refuse ({code:?}, {})", e.split(':').next().unwrap_or("")),
        };
        let preflight_says = match (refusals.is_empty(), errors.is_empty()) {
            (false, _) => format!("refuse ({})", errors.join(", ")),
            (true, true) => "accept".to_string(),
            (true, false) => format!("accept (errors {}, not refusals)", errors.join(", ")),
        };
        let what = format!("{} [{}]", c.name, c.image);
        if flight.is_err() == refusals.is_empty() {
            problems.push(format!(
                "{what}: the flight says {flight:?}, preflight {errors:?}"
            ));
        }
        let (code, codes) = expected(c.want);
        if flight.as_ref().err().map(|e| e.0) != code {
            problems.push(format!(
                "{what}: wanted {:?}, the flight says {flight:?}",
                c.want
            ));
        }
        if refusals.iter().any(|r| !codes.contains(r)) || refusals.is_empty() != codes.is_empty() {
            problems.push(format!(
                "{what}: wanted {:?}, preflight reports {errors:?}",
                c.want
            ));
        }
        // Both accept: preflight checked the one image the flight loads.
        if let Ok(tags) = &flight
            && checked != [tags.clone()]
        {
            problems.push(format!(
                "{what}: the flight loads the image tagged {tags:?}, preflight checked {checked:?}"
            ));
        }
        if let Err((_, e)) = &flight {
            reasons.push(format!("{what}: {e}"));
        }
        rows.push((what, flight_says, preflight_says));
    }
    let width = rows.iter().map(|r| r.0.len()).max().unwrap();
    let width2 = rows.iter().map(|r| r.1.len()).max().unwrap();
    let table: String = rows
        .iter()
        .map(|(a, b, c)| format!("{a:width$}  {b:width2$}  {c}\n"))
        .collect();
    println!("{table}\nWhy the flight refuses:\n{}", reasons.join("\n"));
    assert!(
        problems.is_empty(),
        "{} disagreements or wrong verdicts:\n{}\n\n{table}",
        problems.len(),
        problems.join("\n")
    );
}
