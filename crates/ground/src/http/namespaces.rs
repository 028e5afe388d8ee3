//! Namespaces and their files: `/namespaces`, `/namespaces/{ns}/files` (list, upload),
//! `/namespaces/{ns}/files/{*path}` (read one version, delete every version) and
//! `/namespaces/{ns}/move`.

use std::io;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::io::AsyncReadExt;
use wire::names::{NamespaceName, NamespacePath};

use super::convert::{namespace, namespace_file, uploaded_file};
use super::{J, P, Page, Q, created};
use crate::auth::{self, AuthUser};
use crate::error::ApiError;
use crate::{Ground, db, time, upload};

pub(super) async fn list(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
) -> Result<Json<api::NamespaceList>, ApiError> {
    let namespaces = db::namespaces_of(g.db(), &user)
        .await?
        .iter()
        .map(|(n, c)| namespace(n, &user, *c))
        .collect();
    Ok(Json(api::NamespaceList { namespaces }))
}

pub(super) async fn create(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    J(req): J<api::CreateNamespace>,
) -> Result<Response, ApiError> {
    NamespaceName::new(&req.name).map_err(|e| ApiError::bad(e.to_string()))?;
    let now = time::now_ms();
    if !db::insert_namespace(g.db(), &req.name, &user, now).await? {
        return Err(ApiError::Conflict(format!(
            "namespace '{}' already exists",
            req.name
        )));
    }
    Ok(created(Json(namespace(&req.name, &user, now))))
}

#[derive(Debug, Deserialize)]
pub(super) struct UploadQuery {
    to: Option<String>,
}

pub(super) async fn upload_files(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    P(ns): P<String>,
    Q(q): Q<UploadQuery>,
    req: Request,
) -> Result<Response, ApiError> {
    let stored = upload::store(&g, &user, &ns, q.to.as_deref(), req).await?;
    Ok(created(Json(api::Uploaded {
        files: stored.iter().map(uploaded_file).collect(),
    })))
}

#[derive(Debug, Deserialize)]
pub(super) struct ListFilesQuery {
    folder: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

pub(super) async fn list_files(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    P(ns): P<String>,
    Q(q): Q<ListFilesQuery>,
) -> Result<Json<api::FileList>, ApiError> {
    auth::check_namespace(&g, &user, &ns).await?;
    let (limit, offset) = Page {
        limit: q.limit,
        offset: q.offset,
    }
    .bounds()?;
    let folder = NamespacePath::parse(q.folder.as_deref().unwrap_or("/"))
        .map_err(|e| ApiError::bad(format!("'folder' is not a valid folder: {}", e.reason())))?;
    let files = db::latest_files(g.db(), &ns, &folder, limit, offset).await?;
    Ok(Json(api::FileList {
        files: files.iter().map(namespace_file).collect(),
    }))
}

#[derive(Debug, Deserialize)]
pub(super) struct ReadFileQuery {
    version: Option<i64>,
}

pub(super) async fn read_file(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    P((ns, path)): P<(String, String)>,
    Q(q): Q<ReadFileQuery>,
) -> Result<Response, ApiError> {
    auth::check_namespace(&g, &user, &ns).await?;
    let path = NamespacePath::parse(&path)
        .map_err(|e| ApiError::bad(format!("bad path: {}", e.reason())))?;
    let Some(file) = db::file_version(g.db(), &ns, &path, q.version).await? else {
        return Err(ApiError::not_found(match q.version {
            Some(v) => format!("file '{path}' version {v} not found in namespace '{ns}'"),
            None => format!("file '{path}' not found in namespace '{ns}'"),
        }));
    };
    let digest: wire::Digest = file
        .digest
        .parse()
        .map_err(|_| ApiError::internal(format!("bad digest recorded for {path}")))?;
    let blob = g
        .blobs()
        .open_file(&digest)
        .await
        .map_err(|e| ApiError::internal(format!("blob {digest} of {path}: {e}")))?;
    let mut response = Body::from_stream(file_stream(blob)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::reports::FILE_CONTENT_TYPE),
    );
    headers.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(file.size.max(0) as u64),
    );
    if let Ok(v) = HeaderValue::from_str(&file.digest) {
        headers.insert("x-orbitdock-digest", v);
    }
    headers.insert("x-orbitdock-version", HeaderValue::from(file.version));
    Ok(response)
}

/// `DELETE /api/v1/namespaces/{ns}/files/{*path}`: a file, or a folder with everything under
/// it, every version. The blobs stay: executions that uplinked them may still need them.
pub(super) async fn delete_file(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    P((ns, path)): P<(String, String)>,
) -> Result<Json<api::Removed>, ApiError> {
    auth::check_namespace(&g, &user, &ns).await?;
    let path = NamespacePath::parse(&path)
        .map_err(|e| ApiError::bad(format!("bad path: {}", e.reason())))?;
    let path = path.to_string();
    if path == "/" {
        return Err(ApiError::bad(
            "give a file or a folder: the namespace root is not deleted this way",
        ));
    }
    let mut tx = db::write_tx(g.db()).await?;
    let paths = db::delete_files(&mut tx, &ns, &path).await?;
    if paths.is_empty() {
        return Err(ApiError::not_found(format!(
            "no file or folder '{path}' in namespace '{ns}'"
        )));
    }
    tx.commit().await?;
    Ok(Json(api::Removed { paths }))
}

/// `POST /api/v1/namespaces/{ns}/move`: a file, or a folder with everything under it, to a path
/// where nothing is yet; every version moves, in one transaction.
pub(super) async fn move_files(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    P(ns): P<String>,
    J(req): J<api::MoveFiles>,
) -> Result<Json<api::Moved>, ApiError> {
    auth::check_namespace(&g, &user, &ns).await?;
    let parse = |which: &str, p: &str| {
        NamespacePath::parse(p)
            .map(|p| p.to_string())
            .map_err(|e| ApiError::bad(format!("bad {which} path {p:?}: {}", e.reason())))
    };
    let (from, to) = (parse("from", &req.from)?, parse("to", &req.to)?);
    if from == "/" || to == "/" {
        return Err(ApiError::bad(
            "the namespace root cannot be moved or replaced",
        ));
    }
    if to == from || to.starts_with(&format!("{from}/")) {
        return Err(ApiError::bad(format!(
            "cannot move '{from}' into itself ('{to}')"
        )));
    }
    let mut tx = db::write_tx(g.db()).await?;
    let pairs = match db::move_files(&mut tx, &ns, &from, &to).await? {
        Ok(pairs) => pairs,
        Err(db::MoveRefusal::NotFound) => {
            return Err(ApiError::not_found(format!(
                "no file or folder '{from}' in namespace '{ns}'"
            )));
        }
        Err(db::MoveRefusal::Exists(p)) => {
            return Err(ApiError::Conflict(format!(
                "'{p}' exists in namespace '{ns}': move to a free path, or delete it first"
            )));
        }
    };
    tx.commit().await?;
    Ok(Json(api::Moved {
        moved: pairs
            .into_iter()
            .map(|(from, to)| api::MovedPath { from, to })
            .collect(),
    }))
}

/// A file's content as a stream of chunks.
pub(super) fn file_stream(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = io::Result<Bytes>> {
    futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; 64 << 10];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}
