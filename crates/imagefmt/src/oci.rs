//! The OCI layout Docker 25 and later writes beside `manifest.json`: `index.json`, pointing at
//! image manifests or nested indexes in `blobs/sha256/`, each naming a config and layers.
//!
//! Every descriptor of `index.json` must lead to a blob of the archive; an entry of a nested
//! index whose blob is absent is a platform that was not saved (a multi-platform image saved
//! for one platform) and is skipped. Manifest, index and config blobs are read and must hash to
//! their digest; a config must not carry ONBUILD triggers (the containerd image store loads the
//! configs of `index.json`, not those of `manifest.json`); layer blobs must be present with the
//! size their descriptor states (they are not hashed here). Attestation manifests
//! (`vnd.docker.reference.type`) are not images and are not followed.

use std::collections::HashSet;

use serde_json::Value;

use crate::error::{ArchiveError, invalid, missing, refused, too_large};
use crate::json::{parse_json, refuse_onbuild};
use crate::members::{Member, Members, ReadSeek, read_metadata};
use crate::{MAX_IMAGES, MAX_INDEX_DEPTH, MAX_LAYERS};

/// Annotations of an OCI index that name an image.
pub(crate) const NAME_ANNOTATIONS: &[&str] = &[
    "io.containerd.image.name",
    "org.opencontainers.image.ref.name",
];

/// Reads and checks `index.json` and what it leads to, when the archive has one.
pub(crate) fn read_index(
    reader: &mut dyn ReadSeek,
    members: &Members,
    budget: &mut u64,
) -> Result<(), ArchiveError> {
    let Some(member) = members.regular("index.json", "the OCI index")? else {
        return Ok(());
    };
    let index = parse_json(&read_metadata(reader, member, budget)?, "index.json")?;
    let mut walk = Walk {
        reader,
        members,
        budget,
        seen: HashSet::new(),
    };
    walk.index(&index, "index.json", 0)
}

struct Walk<'a> {
    reader: &'a mut dyn ReadSeek,
    members: &'a Members,
    budget: &'a mut u64,
    /// Digests of the descriptors followed (a blob listed twice is read once).
    seen: HashSet<wire::Digest>,
}

impl Walk<'_> {
    fn index(&mut self, index: &Value, at: &str, depth: usize) -> Result<(), ArchiveError> {
        let list = index
            .get("manifests")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid(format!("{at} has no `manifests` list")))?;
        for (k, d) in list.iter().enumerate() {
            let here = format!("{at}: manifest {}", k + 1);
            let annotations = d.get("annotations");
            let annotation =
                |key: &str| annotations.and_then(|a| a.get(key)).and_then(Value::as_str);
            if annotation("vnd.docker.reference.type") == Some("attestation-manifest") {
                continue;
            }
            let digest = descriptor_digest(d, &here)?;
            if !self.seen.insert(digest) {
                continue;
            }
            if self.seen.len() > MAX_IMAGES {
                return Err(too_large(format!(
                    "the OCI indexes list more than {MAX_IMAGES} manifests"
                )));
            }
            let Some(member) = self.blob(d, digest, &here, depth == 0)? else {
                continue;
            };
            let bytes = self.read_verified(&member, digest)?;
            let blob = parse_json(&bytes, &member.name)?;
            let media = |v: &Value| {
                v.get("mediaType")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            let (media_d, media_b) = (media(d), media(&blob));
            let is_index = [&media_d, &media_b]
                .iter()
                .any(|m| m.contains("index") || m.contains("manifest.list"))
                || blob.get("manifests").is_some();
            if is_index {
                if depth == MAX_INDEX_DEPTH {
                    return Err(too_large(format!(
                        "{here}: OCI indexes nest more than {MAX_INDEX_DEPTH} deep"
                    )));
                }
                self.index(&blob, &format!("blob {digest}"), depth + 1)?;
                continue;
            }
            self.manifest(&blob, digest)?;
        }
        Ok(())
    }

    fn manifest(&mut self, blob: &Value, digest: wire::Digest) -> Result<(), ArchiveError> {
        let at = format!("manifest {digest}");
        let config_d = blob
            .get("config")
            .ok_or_else(|| invalid(format!("{at} has no config")))?;
        let config = descriptor_digest(config_d, &format!("{at}: config"))?;
        if let Some(member) = self.blob(config_d, config, &format!("{at}: config"), true)? {
            let bytes = self.read_verified(&member, config)?;
            refuse_onbuild(&parse_json(&bytes, &member.name)?, &member.name)?;
        }
        let list = match blob.get("layers") {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(a)) => a.as_slice(),
            Some(_) => return Err(invalid(format!("{at}: `layers` is not a list"))),
        };
        if list.len() > MAX_LAYERS {
            return Err(too_large(format!(
                "{at} has {} layers, more than {MAX_LAYERS}",
                list.len()
            )));
        }
        for (n, l) in list.iter().enumerate() {
            let here = format!("{at}: layer {}", n + 1);
            let layer = descriptor_digest(l, &here)?;
            self.blob(l, layer, &here, true)?
                .ok_or_else(|| missing(format!("{here} is not in the archive")))?;
        }
        Ok(())
    }

    /// The blob a descriptor points at, checked against the size it states. A missing blob is
    /// an error when `required`, else `None`.
    fn blob(
        &self,
        descriptor: &Value,
        digest: wire::Digest,
        at: &str,
        required: bool,
    ) -> Result<Option<Member>, ArchiveError> {
        let path = format!("blobs/sha256/{}", digest.hex());
        let Some(member) = self.members.file(&path, "the blob")? else {
            return if required {
                Err(missing(format!(
                    "{at} points at {path}, which is not in the archive"
                )))
            } else {
                Ok(None)
            };
        };
        match descriptor.get("size") {
            None => {}
            Some(s) if s.as_u64() == Some(member.size) => {}
            Some(s) => {
                return Err(refused(format!(
                    "{at} says {path} has {s} bytes, but it has {}",
                    member.size
                )));
            }
        }
        Ok(Some(member.clone()))
    }

    fn read_verified(
        &mut self,
        member: &Member,
        digest: wire::Digest,
    ) -> Result<Vec<u8>, ArchiveError> {
        let bytes = read_metadata(self.reader, member, self.budget)?;
        let actual = wire::Digest::of(&bytes);
        if actual != digest {
            return Err(refused(format!(
                "the blob `{}` has digest {actual}, not the {digest} its name claims",
                member.name
            )));
        }
        Ok(bytes)
    }
}

fn descriptor_digest(d: &Value, at: &str) -> Result<wire::Digest, ArchiveError> {
    let s = d
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{at} has no digest")))?;
    s.strip_prefix("sha256:")
        .filter(|h| h.len() == 64)
        .and_then(|_| s.parse().ok())
        .ok_or_else(|| {
            invalid(format!(
                "{at}: the digest {s:?} is not sha256:<64 hex digits>"
            ))
        })
}
