//! Image archives (`docker save` tars and OCI image layouts): platform (OD601), readability
//! (OD602), sizes (OD603, OD604), bytes to uplink and ETA (OD605), and the image's user.
//!
//! Only headers and the small JSON members are read: layer bodies are skipped by seeking.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use serde_json::Value;

use crate::catalogue::{System, same_platform};
use crate::diagnostic::{Diagnostic, Severity};
use crate::lint::{ArchiveImage, ArchiveOptions, Facts, LayerFacts, Report};

/// Most members indexed in one archive.
const MAX_MEMBERS: usize = 200_000;
/// Largest JSON member read (manifest, index, config).
const MAX_JSON: u64 = 16 << 20;
/// Deepest OCI index nesting followed.
const MAX_INDEX_DEPTH: usize = 4;

/// OD601–OD605 for an image archive.
///
/// ```text
/// $ docker save my-amd64-image > app.tar
/// $ orbitdock lint app.tar --system sat1
/// app.tar: error[OD601]: image `my-amd64-image:latest` is linux/amd64, but system `sat1` runs linux/arm64
/// ```
pub fn lint_archive(path: &Path, system: &System, options: &ArchiveOptions<'_>) -> Report {
    let name = path.to_string_lossy().into_owned();
    let mut out = Out {
        file: name.clone(),
        diagnostics: Vec::new(),
    };
    let mut facts = Facts::default();
    match read_archive(path) {
        Ok(images) => {
            let mut onboard: BTreeSet<&str> = options.known_layers.iter().map(String::as_str).collect();
            for b in &system.catalogue.images {
                onboard.extend(b.layers.iter().map(String::as_str));
            }
            if images.is_empty() {
                out.push("OD602", "the archive lists no image".into(), None);
            }
            for img in images {
                facts.archive.push(check_image(&mut out, img, system, &onboard, options));
            }
        }
        Err(e) => out.push(
            "OD602",
            format!("cannot read the image archive: {e}"),
            Some("upload the output of `docker save IMAGE > image.tar` (uncompressed), or an OCI layout tar".into()),
        ),
    }
    Report::finish(out.diagnostics, facts, Vec::new())
}

struct Out {
    file: String,
    diagnostics: Vec<Diagnostic>,
}

impl Out {
    fn push(&mut self, code: &'static str, message: String, help: Option<String>) {
        let severity = crate::rules::rule_info(code).map_or(Severity::Error, |r| r.severity);
        self.diagnostics.push(Diagnostic {
            code,
            severity,
            file: self.file.clone(),
            line: 0,
            column: 0,
            end: None,
            message,
            help,
        });
    }
}

/// An image found in an archive, before the checks.
struct RawImage {
    tags: Vec<String>,
    config: Value,
    /// Layer sizes in the archive, in order.
    layer_sizes: Vec<u64>,
}

fn check_image(
    out: &mut Out,
    img: RawImage,
    system: &System,
    onboard: &BTreeSet<&str>,
    options: &ArchiveOptions<'_>,
) -> ArchiveImage {
    let os = img.config["os"].as_str().unwrap_or("");
    let arch = img.config["architecture"].as_str().unwrap_or("");
    let variant = img.config["variant"].as_str().unwrap_or("");
    let platform = if variant.is_empty() {
        format!("{os}/{arch}")
    } else {
        format!("{os}/{arch}/{variant}")
    };
    let label = img
        .tags
        .first()
        .cloned()
        .unwrap_or_else(|| "(untagged)".into());
    if os.is_empty() || arch.is_empty() {
        out.push(
            "OD602",
            format!("image `{label}`: the config names no os/architecture"),
            None,
        );
    } else if !same_platform(&platform, &system.platform) {
        out.push(
            "OD601",
            format!("image `{label}` is {platform}, but system `{}` runs {}: its programs cannot execute there", system.name, system.platform),
            Some(format!("build it for {}: `docker buildx build --platform {} …` then `docker save`", system.platform, system.platform)),
        );
    }
    let diff_ids: Vec<String> = img.config["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| d.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if diff_ids.len() != img.layer_sizes.len() {
        out.push(
            "OD602",
            format!(
                "image `{label}`: the config lists {} layers but the archive holds {}",
                diff_ids.len(),
                img.layer_sizes.len()
            ),
            None,
        );
    }
    let mut layers = Vec::new();
    let n = img.layer_sizes.len();
    for (i, size) in img.layer_sizes.iter().enumerate() {
        let diff_id = diff_ids.get(i).cloned().unwrap_or_default();
        let is_onboard = !diff_id.is_empty() && onboard.contains(diff_id.as_str());
        out.push(
            "OD604",
            format!(
                "image `{label}` layer {}/{n} `{}`: {}, {}",
                i + 1,
                short(&diff_id),
                human_bytes(*size),
                if is_onboard {
                    "already onboard"
                } else {
                    "to uplink"
                }
            ),
            None,
        );
        layers.push(LayerFacts {
            diff_id,
            size: *size,
            onboard: is_onboard,
        });
    }
    // Sizes come from tar headers and OCI manifests: sum without overflowing.
    let sum = |onboard: bool| {
        layers
            .iter()
            .filter(|l| l.onboard == onboard)
            .fold(0u64, |acc, l| acc.saturating_add(l.size))
    };
    let (uplink, already) = (sum(false), sum(true));
    let total = uplink.saturating_add(already);
    out.push(
        "OD603",
        format!(
            "image `{label}`: {platform}, {n} layers, {} in total",
            human_bytes(total)
        ),
        None,
    );
    let eta = options.eta.estimate(uplink);
    out.push(
        "OD605",
        format!(
            "image `{label}`: {} to uplink ({} already onboard){}",
            human_bytes(uplink),
            human_bytes(already),
            eta.map(|d| format!(", about {}", human_duration(d)))
                .unwrap_or_default()
        ),
        None,
    );
    let user = img.config["config"]["User"].as_str().unwrap_or("");
    let uname = user.split(':').next().unwrap_or("");
    if user.is_empty() {
        out.push(
            "OD401",
            format!("image `{label}` sets no User, so the container runs as root"),
            Some("add `USER 65532:65532` to the final stage".into()),
        );
    } else if uname == "root" || uname == "0" {
        out.push(
            "OD402",
            format!("image `{label}` runs as `{user}`"),
            Some("use an unprivileged user, e.g. `USER 65532:65532`".into()),
        );
    }
    ArchiveImage {
        tags: img.tags,
        platform,
        layers,
        total_bytes: total,
        uplink_bytes: uplink,
        eta,
    }
}

fn short(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    format!("sha256:{}", &hex[..hex.len().min(12)])
}

/// `1.5 MiB`.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: &[&str] = &["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn human_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// A member of the tar: data offset and size, or a link target.
#[derive(Debug, Clone)]
struct Member {
    offset: u64,
    size: u64,
    link: Option<String>,
}

fn norm(p: &str) -> String {
    crate::context::clean(p.trim_start_matches("./"))
        .trim_start_matches('/')
        .to_string()
}

fn index_tar(file: &File) -> Result<BTreeMap<String, Member>, String> {
    let file_len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut ar = tar::Archive::new(file);
    let entries = ar
        .entries_with_seek()
        .map_err(|e| format!("not a tar archive: {e}"))?;
    let mut map = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("not a tar archive: {e}"))?;
        if map.len() >= MAX_MEMBERS {
            return Err(format!("more than {MAX_MEMBERS} members"));
        }
        let path = entry
            .path()
            .map_err(|e| format!("bad member name: {e}"))?
            .to_string_lossy()
            .into_owned();
        let path = norm(&path);
        let link = match entry.header().entry_type() {
            tar::EntryType::Symlink | tar::EntryType::Link => {
                entry.link_name().ok().flatten().map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    if entry.header().entry_type() == tar::EntryType::Symlink {
                        let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
                        norm(&format!("{dir}/{l}"))
                    } else {
                        norm(&l)
                    }
                })
            }
            _ => None,
        };
        let (offset, size) = (entry.raw_file_position(), entry.size());
        // A header may declare any size; the data must still lie inside the archive. (A GNU
        // sparse member's size is its expanded size, not the bytes it occupies here.)
        if !entry.header().entry_type().is_gnu_sparse()
            && offset.checked_add(size).is_none_or(|end| end > file_len)
        {
            return Err(format!(
                "the archive is truncated: member `{path}` declares {size} bytes at offset \
                 {offset}, but the archive holds {file_len}"
            ));
        }
        map.insert(path, Member { offset, size, link });
    }
    if map.is_empty() {
        return Err("not a tar archive, or an empty one".into());
    }
    Ok(map)
}

fn resolve<'a>(members: &'a BTreeMap<String, Member>, name: &str) -> Option<&'a Member> {
    let mut m = members.get(&norm(name))?;
    for _ in 0..8 {
        match &m.link {
            Some(target) => m = members.get(target)?,
            None => return Some(m),
        }
    }
    None
}

fn read_json(file: &File, members: &BTreeMap<String, Member>, name: &str) -> Result<Value, String> {
    let m = resolve(members, name).ok_or_else(|| format!("`{name}` is missing"))?;
    if m.size > MAX_JSON {
        return Err(format!("`{name}` is larger than {MAX_JSON} bytes"));
    }
    let mut buf = vec![0; m.size as usize];
    file.read_exact_at(&mut buf, m.offset)
        .map_err(|e| format!("`{name}` is truncated: {e}"))?;
    serde_json::from_slice(&buf).map_err(|e| format!("`{name}` is not valid JSON: {e}"))
}

fn blob_path(digest: &str) -> String {
    let (alg, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
    format!("blobs/{alg}/{hex}")
}

fn read_archive(path: &Path) -> Result<Vec<RawImage>, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let members = index_tar(&file)?;
    if members.contains_key("manifest.json") {
        let manifest = read_json(&file, &members, "manifest.json")?;
        let list = manifest.as_array().ok_or("`manifest.json` is not a list")?;
        let mut images = Vec::new();
        for m in list {
            let config_name = m["Config"]
                .as_str()
                .ok_or("`manifest.json` has an image without Config")?;
            let config = read_json(&file, &members, config_name)?;
            let tags = m["RepoTags"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|t| t.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let mut layer_sizes = Vec::new();
            for l in m["Layers"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let l = l.as_str().ok_or("a layer name is not a string")?;
                let member = resolve(&members, l)
                    .ok_or_else(|| format!("layer `{l}` is missing from the archive"))?;
                layer_sizes.push(member.size);
            }
            images.push(RawImage {
                tags,
                config,
                layer_sizes,
            });
        }
        return Ok(images);
    }
    if members.contains_key("index.json") {
        let index = read_json(&file, &members, "index.json")?;
        let mut images = Vec::new();
        oci_index(&file, &members, &index, &mut images, 0)?;
        return Ok(images);
    }
    Err(
        "neither `manifest.json` (docker save) nor `index.json` (OCI layout) is in the archive"
            .into(),
    )
}

fn oci_index(
    file: &File,
    members: &BTreeMap<String, Member>,
    index: &Value,
    images: &mut Vec<RawImage>,
    depth: usize,
) -> Result<(), String> {
    if depth > MAX_INDEX_DEPTH {
        return Err("OCI indexes nest too deeply".into());
    }
    for d in index["manifests"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let digest = d["digest"].as_str().ok_or("an index entry has no digest")?;
        let media = d["mediaType"].as_str().unwrap_or("");
        // Attestation manifests are not images.
        if d["annotations"]["vnd.docker.reference.type"].as_str() == Some("attestation-manifest") {
            continue;
        }
        let blob = read_json(file, members, &blob_path(digest))?;
        if media.contains("index")
            || media.contains("manifest.list")
            || blob.get("manifests").is_some()
        {
            oci_index(file, members, &blob, images, depth + 1)?;
            continue;
        }
        let config_digest = blob["config"]["digest"]
            .as_str()
            .ok_or("a manifest has no config")?;
        let config = read_json(file, members, &blob_path(config_digest))?;
        let layer_sizes = blob["layers"]
            .as_array()
            .map(|a| a.iter().map(|l| l["size"].as_u64().unwrap_or(0)).collect())
            .unwrap_or_default();
        let tags = d["annotations"]["io.containerd.image.name"]
            .as_str()
            .or(d["annotations"]["org.opencontainers.image.ref.name"].as_str())
            .map(|s| vec![s.to_string()])
            .unwrap_or_default();
        images.push(RawImage {
            tags,
            config,
            layer_sizes,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::Eta;

    /// A tar of `files`, then `raw` bytes appended as they are (e.g. a bare header).
    fn tar_of(files: &[(&str, &[u8])], raw: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.get_mut().extend_from_slice(raw);
        b.into_inner().unwrap()
    }

    fn lint_bytes(data: &[u8]) -> Report {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image.tar");
        std::fs::write(&path, data).unwrap();
        lint_archive(
            &path,
            &System::flight("sat1"),
            &ArchiveOptions {
                known_layers: &["sha256:00".into()],
                eta: Eta::Rate {
                    bytes_per_second: 1.0,
                },
            },
        )
    }

    #[test]
    fn a_member_declaring_an_enormous_size_is_a_diagnostic_not_an_overflow() {
        let manifest = br#"[{"Config":"c.json","RepoTags":["x:1"],"Layers":["big.tar","big.tar","big.tar","big.tar","big.tar"]}]"#;
        let config = br#"{"architecture":"arm64","os":"linux","rootfs":{"diff_ids":[]},"config":{"User":"1"}}"#;
        for size in [1u64 << 62, (1 << 63) - 1, u64::MAX - 600, u64::MAX] {
            // A header for `big.tar` whose size field (GNU base-256) claims `size` bytes; the
            // archive ends right after it.
            let mut h = tar::Header::new_gnu();
            h.set_path("big.tar").unwrap();
            h.set_mode(0o644);
            h.as_gnu_mut().unwrap().size = {
                let mut f = [0u8; 12];
                f[0] = 0x80;
                f[4..].copy_from_slice(&size.to_be_bytes());
                f
            };
            h.set_cksum();
            assert_eq!(h.entry_size().unwrap(), size);
            let data = tar_of(
                &[("manifest.json", manifest), ("c.json", config)],
                h.as_bytes(),
            );
            let r = lint_bytes(&data);
            let od602: Vec<_> = r.diagnostics.iter().filter(|d| d.code == "OD602").collect();
            assert!(
                // Refused when indexed (not left to whether the file system lets a seek run
                // far past the end, after which the five `big.tar` layers would be summed).
                od602
                    .iter()
                    .any(|d| d.message.contains("cannot read the image archive")
                        && (d.message.contains("truncated")
                            || d.message.contains("size overflow"))),
                "size {size}: {}",
                r.render()
            );
            assert!(r.facts.archive.is_empty());
        }
    }

    #[test]
    fn layer_sizes_near_u64_max_saturate_instead_of_overflowing() {
        // OCI manifests state layer sizes as JSON numbers: anything up to u64::MAX.
        let config = br#"{"architecture":"arm64","os":"linux","rootfs":{"diff_ids":["sha256:00","sha256:01","sha256:02"]},"config":{"User":"1"}}"#;
        let manifest = format!(
            r#"{{"config":{{"digest":"sha256:c"}},"layers":[{{"size":{m}}},{{"size":{m}}},{{"size":{m}}}]}}"#,
            m = u64::MAX
        );
        let index = br#"{"manifests":[{"digest":"sha256:m","mediaType":"application/vnd.oci.image.manifest.v1+json"}]}"#;
        let data = tar_of(
            &[
                ("index.json", index),
                ("blobs/sha256/m", manifest.as_bytes()),
                ("blobs/sha256/c", config),
            ],
            &[],
        );
        let r = lint_bytes(&data);
        let img = &r.facts.archive[0];
        assert_eq!(img.layers.len(), 3);
        assert!(img.layers[0].onboard);
        assert_eq!(img.total_bytes, u64::MAX);
        assert_eq!(img.uplink_bytes, u64::MAX);
        assert!(
            r.diagnostics.iter().any(|d| d.code == "OD605"),
            "{}",
            r.render()
        );
    }

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 << 30), "5.0 GiB");
        assert_eq!(
            human_duration(std::time::Duration::from_secs(3725)),
            "1 h 2 min"
        );
    }
}
