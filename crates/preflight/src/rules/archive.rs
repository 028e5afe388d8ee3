//! Image archives (`docker save` tars): platform (OD601), what the flight would refuse (OD602,
//! OD606, OD607), sizes (OD603, OD604), bytes to uplink and ETA (OD605), and the image's user.
//!
//! The archive is read and judged by [`imagefmt::judge_load`], the function the flight agent
//! runs before every `docker load` (or, when no image is named, by [`imagefmt::inspect_file`],
//! its first half): an archive gets an error of a code in [`ARCHIVE_REFUSALS`] exactly when the
//! flight would refuse it. Only headers and the small JSON members are read: layer bodies are
//! skipped by seeking.

use std::collections::BTreeSet;
use std::path::Path;

use crate::catalogue::{System, same_platform};
use crate::diagnostic::{Diagnostic, Severity};
use crate::lint::{ArchiveImage, ArchiveOptions, Facts, LayerFacts, Report};

/// The codes of the archive diagnostics that mean "the flight refuses to load this": an archive
/// has an error of one of these codes if and only if [`imagefmt::judge_load`] refuses it.
/// OD601 (another platform) is not among them: the flight loads such an image, which then
/// cannot run.
pub const ARCHIVE_REFUSALS: &[&str] = &["OD602", "OD606", "OD607"];

/// OD601–OD607 for an image archive. `image` is the image a `docker.load` task names
/// (`name:tag`): the archive must hold it, and only it is checked, as only it is loaded. With
/// none (`orbitdock lint app.tar`), every image of the archive is checked.
///
/// ```text
/// $ docker save my-amd64-image > app.tar
/// $ orbitdock lint app.tar --system sat1
/// app.tar: error[OD601]: image `my-amd64-image:latest` is linux/amd64, but system `sat1` runs linux/arm64
/// ```
pub fn lint_archive(
    path: &Path,
    image: Option<&str>,
    system: &System,
    options: &ArchiveOptions<'_>,
) -> Report {
    let name = path.to_string_lossy().into_owned();
    let mut out = Out {
        file: name.clone(),
        diagnostics: Vec::new(),
    };
    let mut facts = Facts::default();
    let judged = match image {
        Some(wanted) => imagefmt::judge_load(path, wanted).map(|l| vec![l.image().clone()]),
        None => imagefmt::inspect_file(path).map(|a| a.images().to_vec()),
    };
    match judged {
        Ok(images) => {
            let mut onboard: BTreeSet<&str> =
                options.known_layers.iter().map(String::as_str).collect();
            for b in &system.catalogue.images {
                onboard.extend(b.layers.iter().map(String::as_str));
            }
            for img in &images {
                facts
                    .archive
                    .push(check_image(&mut out, img, system, &onboard, options));
            }
        }
        Err(e) => {
            let (code, message, help) = refusal(&e, image.unwrap_or(""));
            out.push(code, message, Some(help));
        }
    }
    Report::finish(out.diagnostics, facts, Vec::new())
}

/// The diagnostic of each refusal of the archive judge: its code, message and help.
fn refusal(e: &imagefmt::ArchiveError, wanted: &str) -> (&'static str, String, String) {
    use imagefmt::ErrorKind;
    match e.kind() {
        ErrorKind::NotTagged => (
            "OD607",
            format!("the flight cannot load `{wanted}` from this archive: {e}"),
            format!(
                "save the image under the name the task loads (`docker save {wanted} > \
                 image.tar`), or name one of the archive's images in the task's `image`"
            ),
        ),
        ErrorKind::OnBuild => (
            "OD606",
            format!("the flight refuses this image archive: {e}"),
            "remove the ONBUILD instructions from the image's Dockerfile, build it again and \
             `docker save` it"
                .into(),
        ),
        ErrorKind::Unsafe | ErrorKind::Changed => (
            "OD606",
            format!("the flight refuses this image archive: {e}"),
            "upload the output of `docker save IMAGE > image.tar` as it is; do not edit the \
             archive"
                .into(),
        ),
        _ => (
            "OD602",
            format!("cannot read the image archive: {e}"),
            "upload the output of `docker save IMAGE > image.tar` (uncompressed)".into(),
        ),
    }
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

fn check_image(
    out: &mut Out,
    img: &imagefmt::Image,
    system: &System,
    onboard: &BTreeSet<&str>,
    options: &ArchiveOptions<'_>,
) -> ArchiveImage {
    let config = &img.config;
    let platform = config.platform();
    let label = img
        .repo_tags
        .first()
        .cloned()
        .unwrap_or_else(|| "(untagged)".into());
    if config.os.is_empty() || config.architecture.is_empty() {
        // The flight loads such an image (the engine takes its own platform for it); whether it
        // runs on this system cannot be known.
        out.push(
            "OD601",
            format!(
                "image `{label}`: the config names no os/architecture, so it cannot be checked \
                 against system `{}` ({})",
                system.name, system.platform
            ),
            Some(format!(
                "build it for {}, then `docker save`",
                system.platform
            )),
        );
    } else if !same_platform(&platform, &system.platform) {
        out.push(
            "OD601",
            format!("image `{label}` is {platform}, but system `{}` runs {}: its programs cannot execute there", system.name, system.platform),
            Some(format!("build it for {}: `docker buildx build --platform {} …` then `docker save`", system.platform, system.platform)),
        );
    }
    let mut layers = Vec::new();
    let n = img.layers.len();
    for (i, layer) in img.layers.iter().enumerate() {
        let diff_id = layer.diff_id.to_string();
        let is_onboard = onboard.contains(diff_id.as_str());
        out.push(
            "OD604",
            format!(
                "image `{label}` layer {}/{n} `{}`: {}, {}",
                i + 1,
                short(&diff_id),
                human_bytes(layer.size),
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
            size: layer.size,
            onboard: is_onboard,
        });
    }
    // Sizes are bounded by the archive's length; sum without overflowing all the same.
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
    let user = config.user.as_str();
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
        tags: img.repo_tags.clone(),
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
            Some("x:1"),
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

    /// Layer sizes come from the archive's members, so they cannot exceed its length; an OCI
    /// manifest that states another size (once summed as it was, up to `u64::MAX`) is refused,
    /// as the flight refuses it.
    #[test]
    fn an_oci_layer_size_that_is_not_the_blobs_is_refused() {
        let hex = |d: &[u8]| wire::Digest::of(d).hex();
        let layer = b"LAYER".as_slice();
        let config = format!(
            r#"{{"architecture":"arm64","os":"linux","rootfs":{{"diff_ids":["sha256:{}"]}},"config":{{"User":"1"}}}}"#,
            hex(layer)
        );
        let config_hex = hex(config.as_bytes());
        let lie = |size: u64| {
            let manifest = format!(
                r#"{{"config":{{"digest":"sha256:{config_hex}"}},"layers":[{{"digest":"sha256:{}","size":{size}}}]}}"#,
                hex(layer)
            );
            let index = format!(
                r#"{{"manifests":[{{"digest":"sha256:{}","mediaType":"application/vnd.oci.image.manifest.v1+json"}}]}}"#,
                hex(manifest.as_bytes())
            );
            let docker = format!(
                r#"[{{"Config":"blobs/sha256/{config_hex}","RepoTags":["x:1"],"Layers":["blobs/sha256/{}"]}}]"#,
                hex(layer)
            );
            tar_of(
                &[
                    ("index.json", index.as_bytes()),
                    ("manifest.json", docker.as_bytes()),
                    (
                        &format!("blobs/sha256/{}", hex(manifest.as_bytes())),
                        manifest.as_bytes(),
                    ),
                    (&format!("blobs/sha256/{config_hex}"), config.as_bytes()),
                    (&format!("blobs/sha256/{}", hex(layer)), layer),
                ],
                &[],
            )
        };
        let r = lint_bytes(&lie(5));
        assert!(!r.has_errors(), "{}", r.render());
        assert_eq!(r.facts.archive[0].total_bytes, 5);
        for size in [4, u64::MAX] {
            let r = lint_bytes(&lie(size));
            let codes: Vec<_> = r.diagnostics.iter().map(|d| d.code).collect();
            assert_eq!(codes, ["OD606"], "{}", r.render());
            assert!(r.facts.archive.is_empty());
        }
    }

    /// A `docker.load` names one image: the archive must hold it, and only it is checked, as
    /// only it is loaded. Without a name, every image is.
    #[test]
    fn a_load_checks_the_image_it_names() {
        let config = |arch: &str| {
            format!(
                r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"diff_ids":[]}},"config":{{"User":"1"}}}}"#
            )
        };
        let (arm, amd) = (config("arm64"), config("amd64"));
        let name = |c: &str| format!("{}.json", wire::Digest::of(c.as_bytes()).hex());
        let manifest = format!(
            r#"[{{"Config":"{}","RepoTags":["x:1"],"Layers":[]}},{{"Config":"{}","RepoTags":["y:1"],"Layers":[]}}]"#,
            name(&arm),
            name(&amd)
        );
        let data = tar_of(
            &[
                ("manifest.json", manifest.as_bytes()),
                (&name(&arm), arm.as_bytes()),
                (&name(&amd), amd.as_bytes()),
            ],
            &[],
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image.tar");
        std::fs::write(&path, &data).unwrap();
        let lint = |image: Option<&str>| {
            lint_archive(
                &path,
                image,
                &System::flight("sat1"),
                &ArchiveOptions {
                    known_layers: &[],
                    eta: Eta::None,
                },
            )
        };
        let r = lint(Some("x:1"));
        assert!(!r.has_errors(), "{}", r.render());
        assert_eq!(r.facts.archive.len(), 1);
        assert_eq!(r.facts.archive[0].tags, ["x:1"]);
        let r = lint(Some("y:1"));
        let codes: Vec<_> = r
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| d.code)
            .collect();
        assert_eq!(codes, ["OD601"], "{}", r.render());
        let r = lint(None);
        assert_eq!(r.facts.archive.len(), 2, "{}", r.render());
        let r = lint(Some("z:1"));
        assert_eq!(r.diagnostics.len(), 1, "{}", r.render());
        let d = &r.diagnostics[0];
        assert_eq!(d.code, "OD607");
        assert_eq!(
            d.message,
            "the flight cannot load `z:1` from this archive: archive holds [x:1, y:1], not z:1"
        );
        assert!(d.help.as_deref().unwrap().contains("docker save z:1"));
        assert!(r.facts.archive.is_empty());
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
