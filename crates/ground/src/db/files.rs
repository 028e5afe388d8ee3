//! The `files` table: every version of every ground file (its bytes live in the blob store).

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, Tx};

/// A version of a ground file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileRow {
    pub(crate) path: String,
    pub(crate) version: i64,
    pub(crate) digest: String,
    pub(crate) size: i64,
    pub(crate) mode: i64,
    pub(crate) created_at: i64,
    /// How many versions the path has (filled by listings only).
    pub(crate) versions: i64,
}

fn file_row(r: &AnyRow) -> Result<FileRow, sqlx::Error> {
    Ok(FileRow {
        path: r.try_get("path")?,
        version: r.try_get("version")?,
        digest: r.try_get("digest")?,
        size: r.try_get("size")?,
        mode: r.try_get("mode")?,
        created_at: r.try_get("created_at")?,
        versions: r.try_get("versions").unwrap_or(1),
    })
}

/// The latest version of each path at or under `folder` (`/` for all), one page.
pub(crate) async fn latest_files(
    db: &Db,
    namespace: &str,
    folder: &str,
    limit: i64,
    offset: i64,
) -> Result<Vec<FileRow>, sqlx::Error> {
    let prefix = if folder == "/" {
        "/".to_string()
    } else {
        format!("{folder}/")
    };
    let rows = sqlx::query(
        "SELECT f.path, f.version, f.digest, f.size, f.mode, f.created_at, m.n AS versions
         FROM files f
         JOIN (SELECT path, MAX(version) AS v, COUNT(*) AS n FROM files
               WHERE namespace = $1 AND (path = $2 OR substr(path, 1, length($3)) = $3)
               GROUP BY path) m
           ON f.path = m.path AND f.version = m.v
         WHERE f.namespace = $1
         ORDER BY f.path
         LIMIT $4 OFFSET $5",
    )
    .bind(namespace)
    .bind(folder)
    .bind(prefix)
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await?;
    rows.iter().map(file_row).collect()
}

/// One version of a path (the latest when `version` is `None`).
pub(crate) async fn file_version(
    db: &Db,
    namespace: &str,
    path: &str,
    version: Option<i64>,
) -> Result<Option<FileRow>, sqlx::Error> {
    let row = match version {
        Some(v) => {
            sqlx::query("SELECT * FROM files WHERE namespace = $1 AND path = $2 AND version = $3")
                .bind(namespace)
                .bind(path)
                .bind(v)
                .fetch_optional(db)
                .await?
        }
        None => sqlx::query(
            "SELECT * FROM files WHERE namespace = $1 AND path = $2 ORDER BY version DESC LIMIT 1",
        )
        .bind(namespace)
        .bind(path)
        .fetch_optional(db)
        .await?,
    };
    row.as_ref().map(file_row).transpose()
}

/// Adds the next version of `path`; returns its number.
pub(crate) async fn add_file_version(
    tx: &mut Tx,
    namespace: &str,
    path: &str,
    digest: &str,
    size: i64,
    mode: i64,
    now: i64,
) -> Result<i64, sqlx::Error> {
    let version: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM files WHERE namespace = $1 AND path = $2",
    )
    .bind(namespace)
    .bind(path)
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO files (namespace, path, version, digest, size, mode, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(namespace)
    .bind(path)
    .bind(version)
    .bind(digest)
    .bind(size)
    .bind(mode)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(version)
}

/// The paths at `path` (a file) or under it (a folder), sorted.
async fn paths_at(tx: &mut Tx, namespace: &str, path: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT path FROM files
         WHERE namespace = $1 AND (path = $2 OR substr(path, 1, length($2) + 1) = $2 || '/')
         ORDER BY path",
    )
    .bind(namespace)
    .bind(path)
    .fetch_all(&mut **tx)
    .await
}

/// Deletes every version of `path`, or of every path under it; the paths deleted, sorted.
pub(crate) async fn delete_files(
    tx: &mut Tx,
    namespace: &str,
    path: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let paths = paths_at(tx, namespace, path).await?;
    sqlx::query(
        "DELETE FROM files
         WHERE namespace = $1 AND (path = $2 OR substr(path, 1, length($2) + 1) = $2 || '/')",
    )
    .bind(namespace)
    .bind(path)
    .execute(&mut **tx)
    .await?;
    Ok(paths)
}

/// Why a move cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MoveRefusal {
    /// Nothing at the source.
    NotFound,
    /// A path the move would write exists already.
    Exists(String),
}

/// Moves every version of `from` (a file, or every path under a folder) to `to`, in one
/// transaction; the (old, new) paths, sorted by the old.
pub(crate) async fn move_files(
    tx: &mut Tx,
    namespace: &str,
    from: &str,
    to: &str,
) -> Result<Result<Vec<(String, String)>, MoveRefusal>, sqlx::Error> {
    let paths = paths_at(tx, namespace, from).await?;
    if paths.is_empty() {
        return Ok(Err(MoveRefusal::NotFound));
    }
    let pairs: Vec<(String, String)> = paths
        .into_iter()
        .map(|p| {
            let new = format!("{to}{}", &p[from.len()..]);
            (p, new)
        })
        .collect();
    // A new path may not collide with a file, nor put a file under a file or over a folder.
    for (_, new) in &pairs {
        if !paths_at(tx, namespace, new).await?.is_empty() {
            return Ok(Err(MoveRefusal::Exists(new.clone())));
        }
        let mut parent = new.as_str();
        while let Some(i) = parent.rfind('/').filter(|&i| i > 0) {
            parent = &parent[..i];
            let file: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM files WHERE namespace = $1 AND path = $2 LIMIT 1",
            )
            .bind(namespace)
            .bind(parent)
            .fetch_optional(&mut **tx)
            .await?;
            if file.is_some() {
                return Ok(Err(MoveRefusal::Exists(parent.to_string())));
            }
        }
    }
    for (old, new) in &pairs {
        sqlx::query("UPDATE files SET path = $1 WHERE namespace = $2 AND path = $3")
            .bind(new)
            .bind(namespace)
            .bind(old)
            .execute(&mut **tx)
            .await?;
    }
    Ok(Ok(pairs))
}
