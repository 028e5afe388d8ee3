//! The Docker layout: `manifest.json` (the list `docker load` reads), each image's config
//! (`<hex>.json`, or `blobs/sha256/<hex>` since Docker 25) and its layers in order.

use std::collections::HashMap;

use serde_json::Value;

use crate::error::{ArchiveError, invalid, missing, refused, too_large};
use crate::json::{parse_json, refuse_onbuild};
use crate::members::{Members, ReadSeek, is_clean, read_metadata};
use crate::{Config, Image, Layer, MAX_IMAGES, MAX_LAYERS};

/// Reads `manifest.json` and every image it lists.
pub(crate) fn read_manifest(
    reader: &mut dyn ReadSeek,
    members: &Members,
    budget: &mut u64,
) -> Result<Vec<Image>, ArchiveError> {
    let Some(member) = members.regular("manifest.json", "the manifest")? else {
        return Err(missing(if members.get("index.json").is_some() {
            "the archive is an OCI layout without manifest.json; save it with `docker save`"
        } else {
            "the archive has no manifest.json: it is not a `docker save` archive"
        }));
    };
    let manifest = parse_json(&read_metadata(reader, member, budget)?, "manifest.json")?;
    let list = manifest
        .as_array()
        .ok_or_else(|| invalid("manifest.json is not a list"))?;
    if list.is_empty() {
        return Err(invalid("manifest.json lists no image"));
    }
    if list.len() > MAX_IMAGES {
        return Err(too_large(format!(
            "manifest.json lists {} images, more than {MAX_IMAGES}",
            list.len()
        )));
    }
    // Images of one archive may share a config: each is read and hashed once.
    let mut configs: HashMap<&str, (wire::Digest, Config)> = HashMap::new();
    let mut images = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let at = format!("manifest.json: image {}", i + 1);
        let config_path = entry
            .get("Config")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("{at} has no Config")))?;
        let repo_tags = match entry.get("RepoTags") {
            Some(Value::Array(tags)) => tags
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        };
        let (id, config) = match configs.get(config_path) {
            Some(known) => known.clone(),
            None => {
                let read = read_config(reader, members, budget, config_path, &at)?;
                configs.insert(config_path, read.clone());
                read
            }
        };
        let paths = match entry.get("Layers") {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(list)) => list.as_slice(),
            Some(_) => return Err(invalid(format!("{at}: Layers is not a list"))),
        };
        if paths.len() > MAX_LAYERS {
            return Err(too_large(format!(
                "{at} has {} layers, more than {MAX_LAYERS}",
                paths.len()
            )));
        }
        if paths.len() != config.diff_ids.len() {
            return Err(invalid(format!(
                "{at}: the config lists {} DiffIDs but manifest.json {} layers",
                config.diff_ids.len(),
                paths.len()
            )));
        }
        let mut layers = Vec::with_capacity(paths.len());
        for (n, (path, diff_id)) in paths.iter().zip(&config.diff_ids).enumerate() {
            let path = path
                .as_str()
                .ok_or_else(|| invalid(format!("{at}: layer {} is not a string", n + 1)))?;
            let clean = path.strip_prefix("./").unwrap_or(path);
            if !is_clean(clean) {
                return Err(refused(format!(
                    "{at}: the layer path {path:?} is not a clean relative path"
                )));
            }
            let member = members
                .file(clean, "the layer")?
                .ok_or_else(|| missing(format!("{at}: layer `{path}` is not in the archive")))?;
            layers.push(Layer {
                path: path.to_string(),
                member: member.name.clone(),
                offset: member.offset,
                size: member.size,
                diff_id: *diff_id,
            });
        }
        images.push(Image {
            id,
            config_path: config_path.to_string(),
            repo_tags,
            config,
            layers,
        });
    }
    Ok(images)
}

/// Reads, hashes and parses the config `path` names; `at` says which image wants it.
fn read_config(
    reader: &mut dyn ReadSeek,
    members: &Members,
    budget: &mut u64,
    path: &str,
    at: &str,
) -> Result<(wire::Digest, Config), ArchiveError> {
    let claimed = config_id(path).ok_or_else(|| {
        invalid(format!(
            "{at}: config {path:?} does not name a sha256 digest"
        ))
    })?;
    let member = members
        .regular(path, "the image config")?
        .ok_or_else(|| missing(format!("the image config {path} is not in the archive")))?;
    let bytes = read_metadata(reader, member, budget)?;
    // Docker names the image by the digest of its config's content, not by the name the
    // manifest gives it: the two must agree, or the id tagged afterwards is not the image loaded.
    let actual = wire::Digest::of(&bytes);
    if actual != claimed {
        return Err(refused(format!(
            "the image config {path} has digest {actual}, not the {claimed} its name claims"
        )));
    }
    let value = parse_json(&bytes, path)?;
    refuse_onbuild(&value, path)?;
    Ok((claimed, parse_config(&value, path)?))
}

/// `<hex>.json` or `blobs/sha256/<hex>` → the digest it names.
pub(crate) fn config_id(path: &str) -> Option<wire::Digest> {
    let hex = path
        .strip_prefix("blobs/sha256/")
        .or_else(|| path.strip_suffix(".json"))?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| hex.parse().ok())
        .flatten()
}

/// The fields of an image config this crate exposes. Absent fields are empty; present fields
/// of the wrong type are refused (the engine would refuse them too).
pub(crate) fn parse_config(value: &Value, name: &str) -> Result<Config, ArchiveError> {
    let obj = value
        .as_object()
        .ok_or_else(|| invalid(format!("the image config {name} is not a JSON object")))?;
    let string = |v: Option<&Value>, field: &str| -> Result<String, ArchiveError> {
        match v {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(invalid(format!(
                "the image config {name}: `{field}` is not a string"
            ))),
        }
    };
    let strings = |v: Option<&Value>, field: &str| -> Result<Option<Vec<String>>, ArchiveError> {
        let bad = || {
            invalid(format!(
                "the image config {name}: `{field}` is not a list of strings"
            ))
        };
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .map(|s| s.as_str().map(str::to_string).ok_or_else(bad))
                .collect::<Result<_, _>>()
                .map(Some),
            Some(_) => Err(bad()),
        }
    };
    let run = match obj.get("config") {
        None | Some(Value::Null) => &serde_json::Map::new(),
        Some(Value::Object(o)) => o,
        Some(_) => {
            return Err(invalid(format!(
                "the image config {name}: `config` is not an object"
            )));
        }
    };
    let diff_ids = match obj.get("rootfs").and_then(|r| r.get("diff_ids")) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(ids)) => ids
            .iter()
            .enumerate()
            .map(|(i, d)| {
                d.as_str()
                    .filter(|s| s.starts_with("sha256:"))
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| {
                        invalid(format!(
                            "the image config {name}: DiffID {} is not sha256:<64 hex digits>",
                            i + 1
                        ))
                    })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(invalid(format!(
                "the image config {name}: `rootfs.diff_ids` is not a list"
            )));
        }
    };
    if diff_ids.len() > MAX_LAYERS {
        return Err(too_large(format!(
            "the image config {name} lists {} DiffIDs, more than {MAX_LAYERS}",
            diff_ids.len()
        )));
    }
    Ok(Config {
        os: string(obj.get("os"), "os")?,
        architecture: string(obj.get("architecture"), "architecture")?,
        variant: string(obj.get("variant"), "variant")?,
        user: string(run.get("User"), "config.User")?,
        entrypoint: strings(run.get("Entrypoint"), "config.Entrypoint")?,
        cmd: strings(run.get("Cmd"), "config.Cmd")?,
        env: strings(run.get("Env"), "config.Env")?.unwrap_or_default(),
        working_dir: string(run.get("WorkingDir"), "config.WorkingDir")?,
        diff_ids,
    })
}
