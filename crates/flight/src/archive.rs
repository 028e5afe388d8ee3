//! `docker save` archives: what they hold, and a copy that names nothing.
//!
//! A tenant's archive says which tags it carries (`RepoTags` in `manifest.json`, the legacy
//! `repositories` file, and, from newer Docker, the image-name annotations of an OCI
//! `index.json`). Loaded as is, those tags would land in the daemon's global namespace, where
//! `busybox:latest` is a catalogue image and `tenants/bob/app:1` is Bob's. So the agent reads the
//! tags to check the archive holds the image asked for ([`inspect`]), then loads a copy with
//! every name removed ([`rewrite`]) and tags the loaded image id itself.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};

use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// The largest `manifest.json` or `index.json` read.
const MAX_METADATA: u64 = 4 << 20;
/// Annotations of an OCI index that name an image.
const NAME_ANNOTATIONS: &[&str] = &[
    "io.containerd.image.name",
    "org.opencontainers.image.ref.name",
];

/// One image in an archive's `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArchiveImage {
    /// Its tags as written.
    pub(crate) repo_tags: Vec<String>,
    /// Its image id, `sha256:<hex>` (the digest of its config).
    pub(crate) id: String,
}

/// Reads the images of a `docker save` archive from its `manifest.json`.
pub(crate) fn inspect(reader: impl Read) -> Result<Vec<ArchiveImage>, String> {
    let mut archive = tar::Archive::new(reader);
    let mut manifest = None;
    let mut saw_index = false;
    let mut names = Names::default();
    for entry in archive
        .entries()
        .map_err(|e| format!("not a tar archive: {e}"))?
    {
        let mut entry = entry.map_err(|e| format!("not a tar archive: {e}"))?;
        let Some(name) = names.add(&entry)? else {
            continue;
        };
        match name.as_str() {
            "manifest.json" => manifest = Some(read_json(&mut entry, &name)?),
            "index.json" => saw_index = true,
            _ => {}
        }
    }
    names.finish()?;
    let Some(manifest) = manifest else {
        return Err(if saw_index {
            "the archive is an OCI layout without manifest.json; save it with `docker save`".into()
        } else {
            "the archive has no manifest.json: it is not a `docker save` archive".into()
        });
    };
    let entries = manifest.as_array().ok_or("manifest.json is not a list")?;
    entries
        .iter()
        .map(|m| {
            let config = m
                .get("Config")
                .and_then(Value::as_str)
                .ok_or("manifest.json: an image has no Config")?;
            let repo_tags = match m.get("RepoTags") {
                Some(Value::Array(tags)) => tags
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
                _ => Vec::new(),
            };
            Ok(ArchiveImage {
                repo_tags,
                id: config_id(config)?,
            })
        })
        .collect()
}

/// The index of the image tagged `wanted` (compared with [`wire::normalize_image_ref`]).
pub(crate) fn find(images: &[ArchiveImage], wanted: &str) -> Option<usize> {
    let wanted = wire::normalize_image_ref(wanted);
    images.iter().position(|i| {
        i.repo_tags
            .iter()
            .any(|t| wire::normalize_image_ref(t) == wanted)
    })
}

/// Every tag the archive carries, for messages: `[a:1, b:2]`.
pub(crate) fn describe(images: &[ArchiveImage]) -> String {
    let tags: Vec<&str> = images
        .iter()
        .flat_map(|i| i.repo_tags.iter().map(String::as_str))
        .collect();
    format!("[{}]", tags.join(", "))
}

/// Copies the archive to `out` with only image `keep` in `manifest.json`, its `RepoTags`
/// emptied, no `repositories` file, and no name annotations in `index.json`.
pub(crate) fn rewrite(reader: impl Read, keep: usize, out: impl Write) -> Result<(), String> {
    let mut archive = tar::Archive::new(reader);
    let mut builder = tar::Builder::new(out);
    let io = |e: std::io::Error| format!("cannot copy the archive: {e}");
    let mut kept_config: Option<String> = None;
    let mut names = Names::default();
    // The sha256 of each entry named like an image config.
    let mut config_digests: HashMap<String, String> = HashMap::new();
    for entry in archive
        .entries()
        .map_err(|e| format!("not a tar archive: {e}"))?
    {
        let mut entry = entry.map_err(|e| format!("not a tar archive: {e}"))?;
        let path = entry.path().map_err(io)?.into_owned();
        let mut header = entry.header().clone();
        let Some(name) = names.add(&entry)? else {
            builder.append(&header, &mut entry).map_err(io)?;
            continue;
        };
        match name.as_str() {
            "repositories" => continue,
            "manifest.json" => {
                let mut manifest = read_json(&mut entry, &name)?;
                let list = manifest
                    .as_array_mut()
                    .ok_or("manifest.json is not a list")?;
                if keep >= list.len() {
                    return Err(format!("manifest.json has no image {keep}"));
                }
                let mut image = list.swap_remove(keep);
                let config = image
                    .get("Config")
                    .and_then(Value::as_str)
                    .ok_or("manifest.json: an image has no Config")?;
                config_id(config)?;
                kept_config = Some(config.to_string());
                if let Some(obj) = image.as_object_mut() {
                    obj.insert("RepoTags".into(), Value::Array(Vec::new()));
                }
                let bytes =
                    serde_json::to_vec(&Value::Array(vec![image])).map_err(|e| e.to_string())?;
                header.set_size(bytes.len() as u64);
                builder
                    .append_data(&mut header, &path, &bytes[..])
                    .map_err(io)?;
            }
            "index.json" => {
                let mut index = read_json(&mut entry, &name)?;
                if let Some(list) = index.get_mut("manifests").and_then(Value::as_array_mut) {
                    for m in list {
                        if let Some(ann) = m.get_mut("annotations").and_then(Value::as_object_mut) {
                            for key in NAME_ANNOTATIONS {
                                ann.remove(*key);
                            }
                        }
                    }
                }
                let bytes = serde_json::to_vec(&index).map_err(|e| e.to_string())?;
                header.set_size(bytes.len() as u64);
                builder
                    .append_data(&mut header, &path, &bytes[..])
                    .map_err(io)?;
            }
            _ => match header.entry_type() {
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target = entry
                        .link_name()
                        .map_err(io)?
                        .ok_or_else(|| format!("{name}: a link without a target"))?
                        .into_owned();
                    builder
                        .append_link(&mut header, &path, &target)
                        .map_err(io)?;
                }
                _ if config_name(&name) && header.entry_type().is_file() => {
                    let mut hashing = Hashing {
                        inner: &mut entry,
                        hasher: Sha256::new(),
                    };
                    builder
                        .append_data(&mut header, &path, &mut hashing)
                        .map_err(io)?;
                    let digest = hex::encode(hashing.hasher.finalize());
                    config_digests.insert(name, digest);
                }
                _ => builder
                    .append_data(&mut header, &path, &mut entry)
                    .map_err(io)?,
            },
        }
    }
    names.finish()?;
    let Some(config) = kept_config else {
        return Err("the archive has no manifest.json".into());
    };
    // Docker names the image by the digest of its config's content, not by the name the
    // manifest gives it: the two must agree, or the id tagged afterwards is not the image loaded.
    let claimed = config_id(&config)?;
    match config_digests.get(&config) {
        Some(actual) if format!("sha256:{actual}") == claimed => {}
        Some(actual) => {
            return Err(format!(
                "the image config {config} has digest sha256:{actual}, not the {claimed} its name claims"
            ));
        }
        None => return Err(format!("the image config {config} is not in the archive")),
    }
    builder.into_inner().map_err(io)?.flush().map_err(io)
}

/// The names of an archive's entries, checked as they are read so that the name this module
/// matches (`manifest.json`, ...) is the file Docker reads: each name must be clean (no `.`,
/// `..` or empty components, no leading `/`; one leading `./`, as `tar -C dir .` writes, is
/// tolerated), occur once, and no symlink or hardlink may be a folder of another entry.
#[derive(Default)]
struct Names {
    seen: HashSet<String>,
    links: HashSet<String>,
}

impl Names {
    /// The entry's clean name, or `None` for the archive's root folder (`./`).
    fn add<R: Read>(&mut self, entry: &tar::Entry<'_, R>) -> Result<Option<String>, String> {
        let path = entry.path_bytes().into_owned();
        let raw = String::from_utf8(path)
            .map_err(|_| "an entry name is not UTF-8; refused".to_string())?;
        let kind = entry.header().entry_type();
        let mut name = raw.strip_prefix("./").unwrap_or(&raw);
        if kind.is_dir() {
            name = name.strip_suffix('/').unwrap_or(name);
            if name.is_empty() || name == "." {
                return Ok(None);
            }
        }
        if name.starts_with('/')
            || name
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(format!(
                "the entry name {raw:?} is not a clean relative path; refused"
            ));
        }
        if !self.seen.insert(name.to_string()) {
            return Err(format!("the archive holds {name:?} twice; refused"));
        }
        if kind.is_symlink() || kind.is_hard_link() {
            self.links.insert(name.to_string());
        }
        if matches!(name, "manifest.json" | "index.json" | "repositories") && !kind.is_file() {
            return Err(format!("{name} is not a regular file; refused"));
        }
        Ok(Some(name.to_string()))
    }

    /// Refuses a link that is a folder of another entry (`d -> .`, then `d/manifest.json`).
    fn finish(&self) -> Result<(), String> {
        for name in &self.seen {
            for (n, _) in name.match_indices('/') {
                let parent = &name[..n];
                if self.links.contains(parent) {
                    return Err(format!(
                        "the link {parent:?} is a folder of {name:?}; refused"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Whether `name` has the form of an image config in a `docker save` archive.
fn config_name(name: &str) -> bool {
    let hex = name
        .strip_prefix("blobs/sha256/")
        .or_else(|| name.strip_suffix(".json"))
        .unwrap_or("");
    hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A reader that hashes what passes through it.
struct Hashing<'a, R> {
    inner: &'a mut R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn read_json(entry: &mut impl Read, name: &str) -> Result<Value, String> {
    let mut bytes = Vec::new();
    entry
        .take(MAX_METADATA + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {name}: {e}"))?;
    if bytes.len() as u64 > MAX_METADATA {
        return Err(format!("{name} is larger than {MAX_METADATA} bytes"));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("{name} is not valid JSON: {e}"))
}

/// `blobs/sha256/<hex>` or `<hex>.json` → `sha256:<hex>`.
fn config_id(config: &str) -> Result<String, String> {
    let hex = config
        .strip_prefix("blobs/sha256/")
        .or_else(|| config.strip_suffix(".json"))
        .unwrap_or("");
    if config_name(config) {
        Ok(format!("sha256:{}", hex.to_ascii_lowercase()))
    } else {
        Err(format!(
            "manifest.json: config {config:?} does not name a sha256 digest"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// sha256 of `{}`, the config of [`save_archive`]'s first image.
    const HEX: &str = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    /// Builds a tar from `(name, content)` pairs, plus one symlink.
    fn tar(files: &[(&str, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, content) in files {
            let mut h = tar::Header::new_ustar();
            h.set_size(content.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, content.as_bytes()).unwrap();
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "dup/layer.tar", "../layer/layer.tar")
            .unwrap();
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

    fn save_archive() -> Vec<u8> {
        let manifest = format!(
            r#"[{{"Config":"{HEX}.json","RepoTags":["busybox:latest","docker.io/library/hello:1"],"Layers":["layer/layer.tar"]}},
               {{"Config":"blobs/sha256/{}","RepoTags":null,"Layers":[]}}]"#,
            "a".repeat(64)
        );
        let index = r#"{"schemaVersion":2,"manifests":[{"digest":"sha256:x","annotations":{"io.containerd.image.name":"docker.io/library/busybox:latest","org.opencontainers.image.ref.name":"latest","keep":"me"}}]}"#;
        tar(&[
            ("layer/layer.tar", "LAYER"),
            (&format!("{HEX}.json"), "{}"),
            ("repositories", r#"{"busybox":{"latest":"x"}}"#),
            ("index.json", index),
            ("./manifest.json", &manifest),
        ])
    }

    #[test]
    fn reads_repo_tags_and_ids() {
        let images = inspect(&save_archive()[..]).unwrap();
        assert_eq!(images.len(), 2);
        assert_eq!(images[0].id, format!("sha256:{HEX}"));
        assert_eq!(images[1].id, format!("sha256:{}", "a".repeat(64)));
        assert!(images[1].repo_tags.is_empty());
        assert_eq!(find(&images, "hello:1"), Some(0));
        assert_eq!(find(&images, "busybox"), Some(0));
        assert_eq!(find(&images, "hello:2"), None);
        assert_eq!(
            describe(&images),
            "[busybox:latest, docker.io/library/hello:1]"
        );
    }

    #[test]
    fn rewritten_archive_names_nothing() {
        let mut out = Vec::new();
        rewrite(&save_archive()[..], 0, &mut out).unwrap();
        let files = contents(&out);
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "layer/layer.tar",
                &format!("{HEX}.json"),
                "index.json",
                "manifest.json",
                "dup/layer.tar"
            ]
        );
        assert_eq!(files[0].1, "LAYER");
        assert_eq!(files[4].1, "-> ../layer/layer.tar");
        let index: Value = serde_json::from_str(&files[2].1).unwrap();
        assert_eq!(
            index["manifests"][0]["annotations"],
            serde_json::json!({"keep": "me"})
        );
        let manifest: Value = serde_json::from_str(&files[3].1).unwrap();
        assert_eq!(
            manifest,
            serde_json::json!([{"Config": format!("{HEX}.json"), "RepoTags": [], "Layers": ["layer/layer.tar"]}])
        );
        // And the copy reads back: one image, no tags.
        let again = inspect(&out[..]).unwrap();
        assert_eq!(
            again,
            [ArchiveImage {
                repo_tags: vec![],
                id: format!("sha256:{HEX}")
            }]
        );
    }

    /// Builds a tar from `(name, kind, content or link target)`.
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
        let clean = format!(r#"[{{"Config":"{HEX}.json","RepoTags":["app:1"]}}]"#);
        let evil = r#"[{"Config":"x.json","RepoTags":["busybox:latest"]}]"#;
        let config = (format!("{HEX}.json"), Regular, "{}".to_string());
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
            let mut entries: Vec<(&str, tar::EntryType, &str)> =
                vec![(&config.0, config.1, &config.2)];
            entries.extend(case.iter().cloned());
            let archive = raw_tar(&entries);
            let err = inspect(&archive[..]).expect_err(&format!("{case:?}"));
            assert!(err.contains("refused"), "{case:?}: {err}");
            let err = rewrite(&archive[..], 0, Vec::new()).expect_err(&format!("{case:?}"));
            assert!(err.contains("refused"), "{case:?}: {err}");
        }
        // Clean names, a `./` prefix and the root folder are fine.
        let archive = raw_tar(&[
            ("./", Directory, ""),
            (&config.0, config.1, &config.2),
            ("./manifest.json", Regular, &clean),
        ]);
        assert_eq!(inspect(&archive[..]).unwrap()[0].repo_tags, ["app:1"]);
        rewrite(&archive[..], 0, Vec::new()).unwrap();
    }

    #[test]
    fn refuses_a_config_that_does_not_hash_to_its_name() {
        let other = "b".repeat(64);
        let manifest = format!(r#"[{{"Config":"{other}.json","RepoTags":["app:1"]}}]"#);
        let archive = tar(&[
            (&format!("{other}.json"), "{}"),
            ("manifest.json", &manifest),
        ]);
        let err = rewrite(&archive[..], 0, Vec::new()).unwrap_err();
        assert!(err.contains(&format!("not the sha256:{other}")), "{err}");
        // A config that is not in the archive at all.
        let archive = tar(&[("manifest.json", &manifest)]);
        assert!(rewrite(&archive[..], 0, Vec::new()).is_err());
        // The OCI form.
        let manifest = format!(r#"[{{"Config":"blobs/sha256/{HEX}","RepoTags":["app:1"]}}]"#);
        let archive = tar(&[
            (&format!("blobs/sha256/{HEX}"), "{}"),
            ("manifest.json", &manifest),
        ]);
        rewrite(&archive[..], 0, Vec::new()).unwrap();
    }

    #[test]
    fn bad_archives_are_errors_not_panics() {
        assert!(inspect(&b"not a tar at all, just some bytes"[..]).is_err());
        assert!(
            inspect(&tar(&[("x", "y")])[..])
                .unwrap_err()
                .contains("no manifest.json")
        );
        assert!(
            inspect(&tar(&[("index.json", "{}")])[..])
                .unwrap_err()
                .contains("OCI layout")
        );
        assert!(inspect(&tar(&[("manifest.json", "{")])[..]).is_err());
        assert!(inspect(&tar(&[("manifest.json", "{}")])[..]).is_err());
        assert!(
            inspect(&tar(&[("manifest.json", r#"[{"Config":"../../etc/passwd"}]"#)])[..]).is_err()
        );
        assert!(rewrite(&save_archive()[..], 7, Vec::new()).is_err());
        let truncated = &save_archive()[..700];
        let _ = inspect(truncated);
        let _ = rewrite(truncated, 0, Vec::new());
    }
}
