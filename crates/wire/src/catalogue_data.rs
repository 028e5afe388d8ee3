use serde::{Deserialize, Serialize};

use crate::Digest;

/// One base image preloaded onboard: the only images a build may start `FROM` besides the
/// tenant's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseImage {
    /// Normalised reference, `name:tag` (see [`normalize_image_ref`]).
    pub name: String,
    /// `os/arch`, e.g. `linux/arm64`.
    pub platform: String,
    /// The image id onboard, once the flight agent has reported it.
    pub digest: Option<Digest>,
    /// One line on what the image offers.
    pub description: String,
}

/// Prefixes that name the onboard registry of Clustergate-2 or Docker Hub's defaults; a
/// reference is compared without them.
const IGNORED_PREFIXES: &[&str] = &[
    "fpga.dphi.space:5000/",
    "docker.io/library/",
    "index.docker.io/library/",
    "docker.io/",
];

/// Normalises an image reference for comparison: drops the default registry prefixes and adds
/// `:latest` when neither a tag nor a digest is given. `busybox`, `docker.io/library/busybox`
/// and `busybox:latest` all become `busybox:latest`.
pub fn normalize_image_ref(reference: &str) -> String {
    let mut r = reference.trim();
    for p in IGNORED_PREFIXES {
        if let Some(rest) = r.strip_prefix(p) {
            r = rest;
            break;
        }
    }
    let last = r.rsplit('/').next().unwrap_or(r);
    if r.contains('@') || last.contains(':') {
        r.to_string()
    } else {
        format!("{r}:latest")
    }
}

/// The default onboard catalogue (the file `crates/wire/catalogue/default.json`, see
/// [`crate::default_catalogue`]) on `platform`, as the ground knows it before a flight agent
/// reports digests. `orbitdock flight seed-bases` (crate `standins`) builds stand-ins for
/// exactly these names.
pub fn catalogue(platform: &str) -> Vec<BaseImage> {
    of_description(&crate::SystemDescription::default_for(platform))
}

/// A declared catalogue as the list of [`BaseImage`]s: names, platforms, pinned digests.
pub fn of_description(d: &crate::SystemDescription) -> Vec<BaseImage> {
    d.catalogue
        .iter()
        .map(|e| BaseImage {
            name: e.name.clone(),
            platform: e.platform.clone().unwrap_or_else(|| d.platform.clone()),
            digest: e.digest,
            description: e.description.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_references() {
        assert_eq!(normalize_image_ref("busybox"), "busybox:latest");
        assert_eq!(
            normalize_image_ref("docker.io/library/busybox"),
            "busybox:latest"
        );
        assert_eq!(normalize_image_ref("busybox:1.36"), "busybox:1.36");
        assert_eq!(
            normalize_image_ref("fpga.dphi.space:5000/gcr.io/distroless/cc-debian12"),
            "gcr.io/distroless/cc-debian12:latest"
        );
        assert_eq!(
            normalize_image_ref("localhost:5000/x"),
            "localhost:5000/x:latest"
        );
    }
}
