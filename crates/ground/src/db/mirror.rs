//! The ground's mirror of what each system holds beyond its volumes' listings: the
//! `onboard_objects` table, the `digest` column of `volume_files`, and the `inventory` column of
//! `systems` (how the mirror last compared with the system's summary). `mirror` decides what goes
//! in.

use std::collections::HashSet;

use sqlx::Row;
use wire::{Digest, FileDigest, FileEntry};

use super::{Backend, Db, Tx, flag, to_json};

/// Adds `$2`, a JSON list of digests, to what the system `$1` holds. (The `WHERE` tells SQLite's
/// parser that `ON CONFLICT` belongs to the `INSERT`.)
fn insert_onboard(backend: Backend) -> &'static str {
    json_list_sql!(
        backend,
        "INSERT INTO onboard_objects (system, digest) SELECT $1, value FROM ",
        "$2",
        " WHERE true ON CONFLICT DO NOTHING",
    )
}

fn parse(text: &str) -> Option<Digest> {
    text.parse().ok()
}

/// Adds objects to what `system` holds.
pub(crate) async fn add_onboard(
    db: &Db,
    system: &str,
    digests: &[Digest],
) -> Result<(), sqlx::Error> {
    let list: Vec<String> = digests.iter().map(Digest::to_string).collect();
    sqlx::query(insert_onboard(Backend::of(db)))
        .bind(system)
        .bind(to_json(&list))
        .execute(db)
        .await?;
    Ok(())
}

/// Replaces what `system` holds with `digests`.
pub(crate) async fn replace_onboard(
    tx: &mut Tx,
    system: &str,
    digests: &[Digest],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM onboard_objects WHERE system = $1")
        .bind(system)
        .execute(&mut **tx)
        .await?;
    let list: Vec<String> = digests.iter().map(Digest::to_string).collect();
    sqlx::query(insert_onboard(Backend::of_conn(tx)))
        .bind(system)
        .bind(to_json(&list))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Every object the mirror says `system` holds.
pub(crate) async fn onboard_objects(db: &Db, system: &str) -> Result<Vec<Digest>, sqlx::Error> {
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT digest FROM onboard_objects WHERE system = $1")
            .bind(system)
            .fetch_all(db)
            .await?;
    Ok(rows.iter().filter_map(|d| parse(d)).collect())
}

/// Which of `digests` the mirror says `system` holds.
pub(crate) async fn onboard_among(
    db: &Db,
    system: &str,
    digests: &[Digest],
) -> Result<HashSet<Digest>, sqlx::Error> {
    let list: Vec<String> = digests.iter().map(Digest::to_string).collect();
    let rows: Vec<String> = sqlx::query_scalar(json_list_sql!(
        Backend::of(db),
        "SELECT digest FROM onboard_objects WHERE system = $1 AND digest IN (SELECT value FROM ",
        "$2",
        ")",
    ))
    .bind(system)
    .bind(to_json(&list))
    .fetch_all(db)
    .await?;
    Ok(rows.iter().filter_map(|d| parse(d)).collect())
}

/// The digest the mirror holds for the file at `path` (with or without a leading `/`) of a
/// volume of `system`.
pub(crate) async fn file_digest(
    db: &Db,
    system: &str,
    tenant: &str,
    volume: &str,
    path: &str,
) -> Result<Option<Digest>, sqlx::Error> {
    let bare = path.trim_start_matches('/');
    let digest: Option<Option<String>> = sqlx::query_scalar(
        "SELECT digest FROM volume_files
         WHERE system = $1 AND tenant = $2 AND volume = $3 AND path IN ($4, $5) AND is_dir = 0
         LIMIT 1",
    )
    .bind(system)
    .bind(tenant)
    .bind(volume)
    .bind(bare)
    .bind(format!("/{bare}"))
    .fetch_optional(db)
    .await?;
    Ok(digest.flatten().as_deref().and_then(parse))
}

/// Sets the digests of a mirrored volume's files (by path; paths not mirrored are passed over).
pub(crate) async fn set_file_digests(
    tx: &mut Tx,
    system: &str,
    tenant: &str,
    volume: &str,
    files: &[FileDigest],
) -> Result<(), sqlx::Error> {
    for f in files {
        sqlx::query(
            "UPDATE volume_files SET digest = $1
             WHERE system = $2 AND tenant = $3 AND volume = $4 AND path = $5",
        )
        .bind(f.digest.to_string())
        .bind(system)
        .bind(tenant)
        .bind(volume)
        .bind(&f.path)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The volumes the mirror holds for `system`: (tenant, volume).
pub(crate) async fn mirrored_volumes(
    db: &Db,
    system: &str,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT DISTINCT tenant, volume FROM volume_files WHERE system = $1 ORDER BY tenant, volume",
    )
    .bind(system)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// A mirrored volume's entries with their digests, as the system listed them.
pub(crate) async fn volume_entries(
    db: &Db,
    system: &str,
    tenant: &str,
    volume: &str,
) -> Result<Vec<(FileEntry, Option<Digest>)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT path, size, is_dir, modified_ms, digest FROM volume_files
         WHERE system = $1 AND tenant = $2 AND volume = $3",
    )
    .bind(system)
    .bind(tenant)
    .bind(volume)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            let digest: Option<String> = r.try_get("digest")?;
            let entry = FileEntry {
                path: r.try_get("path")?,
                size: u64::try_from(r.try_get::<i64, _>("size")?).unwrap_or(0),
                is_dir: flag(r, "is_dir")?,
                modified_ms: u64::try_from(r.try_get::<i64, _>("modified_ms")?).unwrap_or(0),
            };
            Ok((entry, digest.as_deref().and_then(parse)))
        })
        .collect()
}

/// Forgets a mirrored volume that is gone onboard.
pub(crate) async fn delete_volume(
    tx: &mut Tx,
    system: &str,
    tenant: &str,
    volume: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM volume_files WHERE system = $1 AND tenant = $2 AND volume = $3")
        .bind(system)
        .bind(tenant)
        .bind(volume)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// How the mirror last compared with the system's summary (JSON), if ever.
pub(crate) async fn inventory_state(db: &Db, system: &str) -> Result<Option<String>, sqlx::Error> {
    let state: Option<Option<String>> =
        sqlx::query_scalar("SELECT inventory FROM systems WHERE name = $1")
            .bind(system)
            .fetch_optional(db)
            .await?;
    Ok(state.flatten())
}

/// Records how the mirror compares (the system's row exists: its hello came first).
pub(crate) async fn set_inventory_state(
    db: &Db,
    system: &str,
    json: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE systems SET inventory = $1 WHERE name = $2")
        .bind(json)
        .bind(system)
        .execute(db)
        .await?;
    Ok(())
}

/// The encoded plan message of an execution, if any.
pub(crate) async fn execution_plan(
    db: &Db,
    execution: &str,
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar("SELECT plan FROM execution_plans WHERE execution = $1")
        .bind(execution)
        .fetch_optional(db)
        .await
}
