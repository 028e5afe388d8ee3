//! The `volume_files` table: the ground's mirror of each tenant's onboard volumes.

use sqlx::Row;

use super::{Db, Tx, flag};

/// One mirrored entry of an onboard volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VolumeFileRow {
    pub(crate) path: String,
    pub(crate) size: i64,
    pub(crate) is_dir: bool,
    pub(crate) modified_ms: i64,
    /// The content's digest as the system reported it (`sha256:<hex>`); `None` for folders and
    /// until reported. A new listing clears it.
    pub(crate) digest: Option<String>,
}

/// Replaces the mirror of one volume.
pub(crate) async fn replace_volume(
    tx: &mut Tx,
    system: &str,
    tenant: &str,
    volume: &str,
    files: &[VolumeFileRow],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM volume_files WHERE system = $1 AND tenant = $2 AND volume = $3")
        .bind(system)
        .bind(tenant)
        .bind(volume)
        .execute(&mut **tx)
        .await?;
    for f in files {
        sqlx::query(
            "INSERT INTO volume_files (system, tenant, volume, path, size, is_dir, modified_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (system, tenant, volume, path) DO UPDATE SET size = excluded.size,
                 is_dir = excluded.is_dir, modified_ms = excluded.modified_ms, digest = NULL",
        )
        .bind(system)
        .bind(tenant)
        .bind(volume)
        .bind(&f.path)
        .bind(f.size)
        .bind(i64::from(f.is_dir))
        .bind(f.modified_ms)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The tenant's mirrored volumes on a system: name, file count, bytes.
pub(crate) async fn volumes(
    db: &Db,
    system: &str,
    tenant: &str,
) -> Result<Vec<(String, i64, i64)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT volume, CAST(SUM(CASE WHEN is_dir <> 0 THEN 0 ELSE 1 END) AS BIGINT) AS files,
                CAST(SUM(size) AS BIGINT) AS bytes
         FROM volume_files WHERE system = $1 AND tenant = $2 GROUP BY volume ORDER BY volume LIMIT 10000",
    )
    .bind(system)
    .bind(tenant)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("volume")?,
                r.try_get("files")?,
                r.try_get("bytes")?,
            ))
        })
        .collect()
}

pub(crate) async fn volume_files(
    db: &Db,
    system: &str,
    tenant: &str,
    volume: &str,
    limit: i64,
    offset: i64,
) -> Result<Vec<VolumeFileRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT path, size, is_dir, modified_ms, digest FROM volume_files
         WHERE system = $1 AND tenant = $2 AND volume = $3 ORDER BY path LIMIT $4 OFFSET $5",
    )
    .bind(system)
    .bind(tenant)
    .bind(volume)
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(VolumeFileRow {
                path: r.try_get("path")?,
                size: r.try_get("size")?,
                is_dir: flag(r, "is_dir")?,
                modified_ms: r.try_get("modified_ms")?,
                digest: r.try_get("digest")?,
            })
        })
        .collect()
}
