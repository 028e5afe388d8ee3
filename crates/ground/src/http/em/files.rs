//! `/em/files/uplink|list|downlink|delete` and `/em/pvc/list|delete`: files in a PVC (our
//! volume), each call one task of our own: `uplink`, `files.list`, `downlink`, `files.delete`.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest as _, Sha256};

use super::params::{EmUser, Params};
use super::shapes::{EmError, FileNode, Pvc, Reply, Uplinked, done, with_data};
use super::{SHORT, TRANSFER, failed, not_found, one_path, pvc, run, succeeded, volume_path};
use crate::Ground;
use crate::em::{self, Call, Yaml};
use crate::upload::{self, FormRules, UploadError};

/// How deep `/em/files/list` lists (the deepest `files.list` goes).
const LIST_DEPTH: i64 = 64;
/// Bytes of a refused request's body read (and dropped) before answering, so that the client,
/// still sending, reads the answer rather than a reset connection.
const DRAIN: usize = 1 << 20;

pub(super) async fn uplink(
    State(g): State<Ground>,
    EmUser(user): EmUser,
    req: Request,
) -> Result<Response, EmError> {
    let (parts, body) = req.into_parts();
    let query = Params::from_query(&parts)?;
    let held = match em::hold(&g, &user).await {
        Ok(held) => held,
        Err(e) => {
            let _ = axum::body::to_bytes(body, DRAIN).await;
            return Err(e.into());
        }
    };
    let multipart = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    let req = Request::from_parts(parts, body);
    if !multipart {
        let _ = axum::body::to_bytes(req.into_body(), DRAIN).await;
        return Err(no_files());
    }
    let mut form = Multipart::from_request(req, &g)
        .await
        .map_err(|e| EmError::invalid(e.body_text()))?;
    let limit = g.em().uplink_bytes();
    let rules = FormRules {
        file_fields: &["files", "file"],
        text_fields: true,
        base_names: true,
        max_bytes: limit,
    };
    let staged = match upload::stage_form(g.blobs(), "/", &mut form, rules).await {
        Ok(staged) => staged,
        Err(e) => {
            drain(&mut form).await;
            return Err(uplink_refused(e, limit));
        }
    };
    let p = query.with_fields(staged.fields);
    let pvc = pvc(&user, &p)?;
    let dest = volume_path("dest_path", &p.text("dest_path")?.unwrap_or_default())?;
    let stored = upload::commit(&g, &user, &em::namespace(&user), &staged.staged).await?;
    let bytes: u64 = stored.iter().map(|f| f.size).sum();
    let call = Call {
        operation: "em-files-uplink",
        description: "EM API: POST /em/files/uplink".into(),
        tasks: vec![Yaml::map([
            ("id", Yaml::str("uplink")),
            ("type", Yaml::str("dphi.space.cg2.uplink")),
            ("source", Yaml::strs(stored.iter().map(|f| f.path.clone()))),
            ("destination", Yaml::str(dest.display())),
            ("volume", Yaml::str(pvc)),
        ])],
    };
    let id = em::start(&g, &user, &call).await?;
    let ended = em::wait(&g, &id, TRANSFER).await?;
    drop(held);
    succeeded(&ended)?;
    let data = Uplinked {
        file_count: stored.len(),
        total_size_kb: (bytes as f64 / 1024.0 * 100.0).round() / 100.0,
    };
    Ok(with_data("Successfully uplinked files", data, Some(ended.execution)).into_response())
}

fn no_files() -> EmError {
    EmError::new(
        StatusCode::BAD_REQUEST,
        "NO_FILES",
        "No files were provided: send them as multipart 'files' fields",
    )
}

/// Reads the rest of a refused form, up to its body limit, and drops it.
async fn drain(form: &mut Multipart) {
    while let Ok(Some(mut field)) = form.next_field().await {
        while let Ok(Some(_)) = field.chunk().await {}
    }
}

fn uplink_refused(e: UploadError, limit: u64) -> EmError {
    match e {
        UploadError::Empty => no_files(),
        UploadError::TooLarge { .. } | UploadError::BodyTooLarge(_) => EmError::new(
            StatusCode::BAD_REQUEST,
            "MAX_UPLINK_SIZE_EXCEEDED",
            format!("Total upload size exceeds {}", size_words(limit)),
        ),
        UploadError::Io(e) => EmError::internal(e),
        other => EmError::invalid(other.to_string()),
    }
}

/// A byte count as CG2 says its limit ("2 GB").
fn size_words(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GB"), (1 << 20, "MB"), (1 << 10, "KB")];
    UNITS
        .iter()
        .find(|(unit, _)| bytes >= *unit && bytes.is_multiple_of(*unit))
        .map_or_else(
            || format!("{bytes} bytes"),
            |(unit, name)| format!("{} {name}", bytes / unit),
        )
}

pub(super) async fn list(
    State(g): State<Ground>,
    EmUser(user): EmUser,
    p: Params,
) -> Result<Json<Reply<Vec<FileNode>>>, EmError> {
    let call = Call {
        operation: "em-files-list",
        description: "EM API: /em/files/list".into(),
        tasks: vec![Yaml::map([
            ("id", Yaml::str("list")),
            ("type", Yaml::str("dphi.space.cg2.files.list")),
            ("folder", Yaml::str("/")),
            ("depth", Yaml::Int(LIST_DEPTH)),
            ("volume", Yaml::str(pvc(&user, &p)?)),
        ])],
    };
    let ended = run(&g, &user, call, SHORT).await?;
    let listing = succeeded(&ended)?
        .outputs
        .as_ref()
        .map(|o| tree(&o.listing))
        .unwrap_or_default();
    Ok(with_data(
        "Successfully listed files",
        listing,
        Some(ended.execution),
    ))
}

pub(super) async fn downlink(
    State(g): State<Ground>,
    EmUser(user): EmUser,
    p: Params,
) -> Result<Response, EmError> {
    let filepath = p.required(&["filepath"])?;
    let path = one_path("filepath", &filepath)?;
    let pvc = pvc(&user, &p)?;
    let call = Call {
        operation: "em-files-downlink",
        description: "EM API: /em/files/downlink".into(),
        tasks: vec![Yaml::map([
            ("id", Yaml::str("downlink")),
            ("type", Yaml::str("dphi.space.cg2.downlink")),
            ("source", Yaml::strs([path.display()])),
            ("destination", Yaml::str(format!("/downlink/{pvc}"))),
            ("volume", Yaml::str(pvc)),
        ])],
    };
    let ended = run(&g, &user, call, TRANSFER).await?;
    if not_found(&ended) {
        return Err(EmError::new(
            StatusCode::NOT_FOUND,
            "FILE_NOT_FOUND",
            format!("File not found: {filepath}"),
        )
        .execution(&ended.execution));
    }
    let files = succeeded(&ended)?
        .outputs
        .as_ref()
        .map(|o| o.files.clone())
        .unwrap_or_default();
    let [file] = files.as_slice() else {
        return Err(EmError::new(
            StatusCode::BAD_REQUEST,
            "IS_A_DIRECTORY",
            format!(
                "'{filepath}' is a folder ({} files); download its files one by one (they are also in your namespace {} at /downlink/)",
                files.len(),
                em::namespace(&user)
            ),
        )
        .execution(&ended.execution));
    };
    let digest: wire::Digest = file
        .digest
        .as_deref()
        .unwrap_or_default()
        .parse()
        .map_err(EmError::internal)?;
    let blob = g
        .blobs()
        .open_file(&digest)
        .await
        .map_err(EmError::internal)?;
    let name = path.components().last().unwrap_or("file");
    let mut response =
        Body::from_stream(super::super::namespaces::file_stream(blob)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(file.size));
    if let Ok(v) = HeaderValue::from_str(&attachment(name)) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&ended.execution) {
        headers.insert("x-orbitdock-execution", v);
    }
    Ok(response)
}

/// `Content-Disposition` as Django writes it: `filename="…"` for an ASCII name,
/// `filename*=utf-8''…` (percent-encoded) otherwise.
fn attachment(name: &str) -> String {
    if name.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
        format!("attachment; filename=\"{escaped}\"")
    } else {
        let encoded: String = name
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                b => format!("%{b:02X}"),
            })
            .collect();
        format!("attachment; filename*=utf-8''{encoded}")
    }
}

pub(super) async fn delete(
    State(g): State<Ground>,
    EmUser(user): EmUser,
    p: Params,
) -> Result<Json<Reply<()>>, EmError> {
    let filepath = p.required(&["filepath"])?;
    let path = one_path("filepath", &filepath)?;
    let call = Call {
        operation: "em-files-delete",
        description: "EM API: POST /em/files/delete".into(),
        tasks: vec![Yaml::map([
            ("id", Yaml::str("delete")),
            ("type", Yaml::str("dphi.space.cg2.files.delete")),
            ("source", Yaml::strs([path.display()])),
            ("volume", Yaml::str(pvc(&user, &p)?)),
        ])],
    };
    let ended = run(&g, &user, call, SHORT).await?;
    if not_found(&ended) {
        return Err(EmError::new(
            StatusCode::BAD_REQUEST,
            "FILE_NOT_FOUND",
            format!("File not found: {filepath}"),
        )
        .execution(&ended.execution));
    }
    succeeded(&ended)?;
    Ok(done("File deleted successfully", Some(ended.execution)))
}

pub(super) async fn pvcs(
    State(g): State<Ground>,
    EmUser(user): EmUser,
) -> Result<Json<Reply<Vec<Pvc>>>, EmError> {
    let call = Call {
        operation: "em-pvc-list",
        description: "EM API: /em/pvc/list".into(),
        tasks: vec![Yaml::map([
            ("id", Yaml::str("list")),
            ("type", Yaml::str("dphi.space.cg2.files.list")),
            ("folder", Yaml::str("/")),
            ("depth", Yaml::Int(1)),
        ])],
    };
    let ended = run(&g, &user, call, SHORT).await?;
    let pvcs = succeeded(&ended)?
        .outputs
        .as_ref()
        .map(|o| {
            o.listing
                .iter()
                .filter(|e| e.is_dir)
                .map(|e| Pvc {
                    name: e.path.trim_start_matches('/').to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(with_data(
        "Successfully listed PVCs",
        pvcs,
        Some(ended.execution),
    ))
}

pub(super) async fn pvc_delete(
    State(g): State<Ground>,
    EmUser(user): EmUser,
    p: Params,
) -> Result<Json<Reply<()>>, EmError> {
    p.required(&["pvc_name", "pod_name"])?;
    let name = pvc(&user, &p)?;
    let call = Call {
        operation: "em-pvc-delete",
        description: "EM API: POST /em/pvc/delete".into(),
        tasks: vec![Yaml::map([
            ("id", Yaml::str("delete")),
            ("type", Yaml::str("dphi.space.cg2.files.delete")),
            ("source", Yaml::strs(["/"])),
            ("volume", Yaml::str(&name)),
        ])],
    };
    let ended = run(&g, &user, call, SHORT).await?;
    let missing = super::task_error(&ended)
        .is_some_and(|e| e.code == 4 && e.message.starts_with("Volume not found"));
    if missing {
        return Err(EmError::new(
            StatusCode::NOT_FOUND,
            "PVC_NOT_FOUND",
            format!("PVC not found: {name}"),
        )
        .execution(&ended.execution));
    }
    if ended.state != wire::TaskState::Success {
        return Err(failed(&ended));
    }
    Ok(done("PVC deleted successfully", Some(ended.execution)))
}

/// A flat listing (`/a`, `/a/b.txt`, ...) as CG2's tree: each folder with its `contents`.
fn tree(listing: &[api::VolumeFile]) -> Vec<FileNode> {
    #[derive(Default)]
    struct Dir<'a> {
        me: Option<&'a api::VolumeFile>,
        files: BTreeMap<&'a str, &'a api::VolumeFile>,
        dirs: BTreeMap<&'a str, Dir<'a>>,
    }
    let mut root = Dir::default();
    for entry in listing {
        let parts: Vec<&str> = entry.path.split('/').filter(|c| !c.is_empty()).collect();
        let Some((last, parents)) = parts.split_last() else {
            continue;
        };
        let mut dir = &mut root;
        for p in parents {
            dir = dir.dirs.entry(p).or_default();
        }
        if entry.is_dir {
            dir.dirs.entry(last).or_default().me = Some(entry);
        } else {
            dir.files.insert(last, entry);
        }
    }
    fn nodes(dir: &Dir<'_>) -> (Vec<FileNode>, u64, String) {
        let mut out = Vec::new();
        let (mut total, mut latest) = (0, String::new());
        for (name, d) in &dir.dirs {
            let (contents, size, newest) = nodes(d);
            let time = d.me.map_or(newest, |m| minute(&m.modified));
            total += size;
            latest = latest.max(time.clone());
            let path = d.me.map_or(*name, |m| m.path.as_str());
            out.push(FileNode {
                kind: "directory",
                name: name.to_string(),
                size: size.to_string(),
                hash: change_hash(path, size, &time),
                time,
                contents: Some(contents),
            });
        }
        for (name, f) in &dir.files {
            let time = minute(&f.modified);
            total += f.size;
            latest = latest.max(time.clone());
            out.push(FileNode {
                kind: "file",
                name: name.to_string(),
                size: f.size.to_string(),
                hash: change_hash(&f.path, f.size, &f.modified),
                time,
                contents: None,
            });
        }
        (out, total, latest)
    }
    nodes(&root).0
}

/// `2026-11-28T23:10:00.123Z` → `2026-11-28-23-10` (CG2's listing time).
fn minute(rfc3339: &str) -> String {
    rfc3339
        .get(..16)
        .unwrap_or(rfc3339)
        .replace(['T', ':'], "-")
}

/// A signed 64-bit number that changes with the entry (its path, size and time): CG2's `hash`.
fn change_hash(path: &str, size: u64, time: &str) -> i64 {
    let d = Sha256::digest(format!("{path}\0{size}\0{time}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    i64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, size: u64, is_dir: bool) -> api::VolumeFile {
        api::VolumeFile {
            path: path.into(),
            size,
            is_dir,
            modified: "2026-11-28T23:10:00.123Z".into(),
            digest: None,
        }
    }

    #[test]
    fn listings_become_trees_with_folder_sizes() {
        let t = tree(&[
            entry("/a", 0, true),
            entry("/a/b", 0, true),
            entry("/a/b/c.txt", 3, false),
            entry("/a/d.txt", 4, false),
            entry("/top.txt", 1, false),
        ]);
        let names: Vec<(&str, &str, &str)> = t
            .iter()
            .map(|n| (n.kind, n.name.as_str(), n.size.as_str()))
            .collect();
        assert_eq!(names, [("directory", "a", "7"), ("file", "top.txt", "1")]);
        let a = t[0].contents.as_ref().unwrap();
        assert_eq!(a[0].name, "b");
        assert_eq!(a[0].contents.as_ref().unwrap()[0].name, "c.txt");
        assert_eq!(a[1].name, "d.txt");
        assert_eq!(t[1].time, "2026-11-28-23-10");
        assert!(t[1].contents.is_none());
        assert_ne!(
            t[1].hash,
            change_hash("/top.txt", 2, "2026-11-28T23:10:00.123Z")
        );
    }

    #[test]
    fn sizes_and_names_are_written_as_cg2_writes_them() {
        assert_eq!(size_words(2 << 30), "2 GB");
        assert_eq!(size_words(64 << 10), "64 KB");
        assert_eq!(size_words(1000), "1000 bytes");
        assert_eq!(attachment("out.txt"), "attachment; filename=\"out.txt\"");
        assert_eq!(attachment("a\"b"), "attachment; filename=\"a\\\"b\"");
        assert_eq!(
            attachment("é.txt"),
            "attachment; filename*=utf-8''%C3%A9.txt"
        );
    }
}
