//! The copy of an inspected archive that names nothing: one image, no tags.
//!
//! A tenant's archive says which tags it carries (`RepoTags` in `manifest.json`, the legacy
//! `repositories` file, and, from Docker 25, the image-name annotations of `index.json`).
//! Loaded as is, those tags would land in the engine's global namespace, where `busybox:latest`
//! is a catalogue image and `tenants/bob/app:1` is Bob's. So the flight loads this copy and tags
//! the loaded image id itself.

use std::io::{Read, SeekFrom, Write};

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::error::{ArchiveError, ErrorKind, invalid, io, not_tar, refused};
use crate::json::parse_json;
use crate::members::{Kind, ReadSeek};
use crate::oci::NAME_ANNOTATIONS;
use crate::{Archive, MAX_METADATA_BYTES};

pub(crate) fn write_unnamed(
    reader: &mut dyn ReadSeek,
    archive: &Archive,
    keep: usize,
    out: &mut dyn Write,
) -> Result<(), ArchiveError> {
    let image = archive
        .images
        .get(keep)
        .ok_or_else(|| invalid(format!("manifest.json has no image {keep}")))?;
    let changed = |what: String| {
        ArchiveError::new(
            ErrorKind::Changed,
            format!("the archive changed after it was inspected: {what}"),
        )
    };
    let copy = io("cannot copy the archive");
    // The file may have changed since it was judged: its headers are bounded again before the
    // tar reader reads a long name or pax header whole (what changed is refused below).
    let len = reader
        .seek(SeekFrom::End(0))
        .map_err(io("cannot read the archive"))?;
    crate::headers::prescan(reader, len)?;
    reader
        .seek(SeekFrom::Start(0))
        .map_err(io("cannot read the archive"))?;
    let mut tar_in = tar::Archive::new(reader);
    let mut builder = tar::Builder::new(out);
    let mut config_digest = None;
    let mut count = 0;
    for entry in tar_in.entries().map_err(not_tar)? {
        let mut entry = entry.map_err(not_tar)?;
        let member = archive
            .members
            .list
            .get(count)
            .filter(|m| m.same_as(&entry))
            .ok_or_else(|| changed(format!("member {} differs", count + 1)))?;
        count += 1;
        let path = entry.path().map_err(&copy)?.into_owned();
        let mut header = entry.header().clone();
        match (member.kind, member.name.as_str()) {
            (Kind::Skipped, _) => builder.append(&header, &mut entry).map_err(&copy)?,
            (_, "repositories") => {}
            (_, "manifest.json") => {
                let mut manifest = read_json(&mut entry, "manifest.json")?;
                let list = manifest
                    .as_array_mut()
                    .filter(|l| keep < l.len())
                    .ok_or_else(|| changed("manifest.json".into()))?;
                let mut kept = list.swap_remove(keep);
                if kept.get("Config").and_then(Value::as_str) != Some(&image.config_path) {
                    return Err(changed("manifest.json".into()));
                }
                if let Some(obj) = kept.as_object_mut() {
                    obj.insert("RepoTags".into(), Value::Array(Vec::new()));
                }
                let bytes = serde_json::to_vec(&Value::Array(vec![kept]))
                    .map_err(|e| invalid(e.to_string()))?;
                header.set_size(bytes.len() as u64);
                builder
                    .append_data(&mut header, &path, &bytes[..])
                    .map_err(&copy)?;
            }
            (_, "index.json") => {
                let mut index = read_json(&mut entry, "index.json")?;
                if let Some(list) = index.get_mut("manifests").and_then(Value::as_array_mut) {
                    for m in list {
                        if let Some(ann) = m.get_mut("annotations").and_then(Value::as_object_mut) {
                            for key in NAME_ANNOTATIONS {
                                ann.remove(*key);
                            }
                        }
                    }
                }
                let bytes = serde_json::to_vec(&index).map_err(|e| invalid(e.to_string()))?;
                header.set_size(bytes.len() as u64);
                builder
                    .append_data(&mut header, &path, &bytes[..])
                    .map_err(&copy)?;
            }
            (Kind::Symlink | Kind::HardLink, _) => {
                let target = entry
                    .link_name()
                    .map_err(&copy)?
                    .ok_or_else(|| refused(format!("the link `{}` has no target", member.name)))?
                    .into_owned();
                builder
                    .append_link(&mut header, &path, &target)
                    .map_err(&copy)?;
            }
            (_, name) if name == image.config_path => {
                let mut hashing = Hashing {
                    inner: &mut entry,
                    hasher: Sha256::new(),
                };
                builder
                    .append_data(&mut header, &path, &mut hashing)
                    .map_err(&copy)?;
                config_digest = Some(wire::Digest(hashing.hasher.finalize().into()));
            }
            _ => builder
                .append_data(&mut header, &path, &mut entry)
                .map_err(&copy)?,
        }
    }
    if count != archive.members.list.len() {
        return Err(changed(format!(
            "it has {count} members, not {}",
            archive.members.list.len()
        )));
    }
    // The id the caller tags afterwards must be the image the engine loads from this copy.
    if config_digest != Some(image.id) {
        return Err(changed(format!("the config {}", image.config_path)));
    }
    builder.into_inner().map_err(&copy)?.flush().map_err(&copy)
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

fn read_json(entry: &mut impl Read, name: &str) -> Result<Value, ArchiveError> {
    let mut bytes = Vec::new();
    entry
        .take(MAX_METADATA_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io(&format!("cannot read {name}")))?;
    parse_json(&bytes, name)
}
