//! What the ground sends up in place of objects: the `encodings` table (each patch made, kept as
//! a blob, by target and base), the `uplink_wants` table (objects a system asked for, waiting for
//! the encoder) and the `execution_sends` table (what went on the wire for each execution).
//! `encoder` decides what goes in.

use sqlx::Row;
use wire::Digest;

use super::{Backend, Db, Tx, flag, from_json, to_json};

/// A patch made for an uplink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Encoding {
    pub(crate) target: Digest,
    /// `None`: the object compressed.
    pub(crate) base: Option<Digest>,
    pub(crate) patch: Digest,
    /// `delta::Kind::name`.
    pub(crate) kind: String,
    pub(crate) size: u64,
}

/// An object a system asked for and the encoder has not queued yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UplinkWant {
    pub(crate) target: Digest,
    pub(crate) bases: Vec<Digest>,
    pub(crate) whole: bool,
}

/// One object sent up for an execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SentRow {
    pub(crate) execution: String,
    /// The object the execution needed.
    pub(crate) target: Digest,
    /// What went on the wire: `target` itself, or a patch.
    pub(crate) object: Digest,
    /// `raw`, or the patch's kind.
    pub(crate) kind: String,
    pub(crate) base: Option<Digest>,
    /// Bytes of `object`.
    pub(crate) size: u64,
    /// Bytes of `target`.
    pub(crate) raw_size: u64,
    pub(crate) at: i64,
}

fn base_key(base: Option<&Digest>) -> String {
    base.map(Digest::to_string).unwrap_or_default()
}

fn digest(row: &sqlx::any::AnyRow, column: &str) -> Result<Digest, sqlx::Error> {
    let text: String = row.try_get(column)?;
    text.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn size(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Records that `system` wants `target`, to be made from one of `bases`; asked again, the bases
/// are the latest, and a request for the object itself stays one.
pub(crate) async fn record_want(
    tx: &mut Tx,
    system: &str,
    want: &UplinkWant,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO uplink_wants (system, target, bases, whole, asked_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT(system, target) DO UPDATE SET bases = excluded.bases,
             whole = CASE WHEN excluded.whole > uplink_wants.whole
                          THEN excluded.whole ELSE uplink_wants.whole END",
    )
    .bind(system)
    .bind(want.target.to_string())
    .bind(to_json(&want.bases))
    .bind(i64::from(want.whole))
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The oldest `limit` objects `system` wants.
pub(crate) async fn pending_wants(
    db: &Db,
    system: &str,
    limit: i64,
) -> Result<Vec<UplinkWant>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT target, bases, whole FROM uplink_wants WHERE system = $1
         ORDER BY asked_at, target LIMIT $2",
    )
    .bind(system)
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            let bases: String = r.try_get("bases")?;
            Ok(UplinkWant {
                target: digest(r, "target")?,
                bases: from_json(&bases).unwrap_or_default(),
                whole: flag(r, "whole")?,
            })
        })
        .collect()
}

/// Forgets a want once its object is queued (or refused).
pub(crate) async fn delete_want(db: &Db, system: &str, target: &Digest) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM uplink_wants WHERE system = $1 AND target = $2")
        .bind(system)
        .bind(target.to_string())
        .execute(db)
        .await?;
    Ok(())
}

/// The patch made earlier from `base` to `target`, if any (the tests' view of what
/// [`encoding_keyed`] finds without a key).
#[cfg(test)]
pub(crate) async fn encoding(
    db: &Db,
    target: &Digest,
    base: Option<&Digest>,
) -> Result<Option<Encoding>, sqlx::Error> {
    encoding_keyed(db, target, base, None).await
}

/// The `base` column of a patch: its base, or the `key` it is kept under (the layers kind's:
/// which layers it may leave out and which base it was made against, whether it used it or not).
fn keyed(base: Option<&Digest>, key: Option<&str>) -> String {
    key.map_or_else(|| base_key(base), str::to_string)
}

/// [`encoding`] of a patch kept under `key` (see [`insert_encoding_keyed`]).
pub(crate) async fn encoding_keyed(
    db: &Db,
    target: &Digest,
    base: Option<&Digest>,
    key: Option<&str>,
) -> Result<Option<Encoding>, sqlx::Error> {
    let row =
        sqlx::query("SELECT patch, kind, size FROM encodings WHERE target = $1 AND base = $2")
            .bind(target.to_string())
            .bind(keyed(base, key))
            .fetch_optional(db)
            .await?;
    row.map(|r| {
        Ok(Encoding {
            target: *target,
            base: base.copied(),
            patch: digest(&r, "patch")?,
            kind: r.try_get("kind")?,
            size: u64::try_from(r.try_get::<i64, _>("size")?).unwrap_or(0),
        })
    })
    .transpose()
}

/// The object the patch `patch` makes, if it is one the ground made.
pub(crate) async fn patch_target(db: &Db, patch: &Digest) -> Result<Option<Digest>, sqlx::Error> {
    let target: Option<String> =
        sqlx::query_scalar("SELECT target FROM encodings WHERE patch = $1 LIMIT 1")
            .bind(patch.to_string())
            .fetch_optional(db)
            .await?;
    Ok(target.and_then(|t| t.parse().ok()))
}

/// Remembers a patch (its blob is durable already), under no key.
#[cfg(test)]
pub(crate) async fn insert_encoding(db: &Db, e: &Encoding) -> Result<(), sqlx::Error> {
    insert_encoding_keyed(db, e, None).await
}

/// Remembers a patch under `key` besides its target and base (the layers kind's patches, under
/// the set of layers they may leave out).
pub(crate) async fn insert_encoding_keyed(
    db: &Db,
    e: &Encoding,
    key: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO encodings (target, base, patch, kind, size) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (target, base) DO UPDATE SET patch = excluded.patch, kind = excluded.kind,
             size = excluded.size",
    )
    .bind(e.target.to_string())
    .bind(keyed(e.base.as_ref(), key))
    .bind(e.patch.to_string())
    .bind(&e.kind)
    .bind(size(e.size))
    .execute(db)
    .await?;
    Ok(())
}

/// Whether every one of `tenants` owns a file with the content `digest` (in one of its
/// namespaces): only such a blob may be the base of a patch sent for their executions (a patch
/// reveals its base's bytes where the two files differ, and each of them learns of the patch).
pub(crate) async fn tenant_reads_blob(
    db: &Db,
    tenants: &[String],
    digest: &Digest,
) -> Result<bool, sqlx::Error> {
    let mut wanted: Vec<&String> = tenants.iter().collect();
    wanted.sort();
    wanted.dedup();
    if wanted.is_empty() {
        return Ok(false);
    }
    let readers: i64 = sqlx::query_scalar(json_list_sql!(
        Backend::of(db),
        "SELECT COUNT(DISTINCT n.owner) FROM files f JOIN namespaces n ON n.name = f.namespace
         WHERE f.digest = $1 AND n.owner IN (SELECT value FROM ",
        "$2",
        ")",
    ))
    .bind(digest.to_string())
    .bind(to_json(&wanted))
    .fetch_one(db)
    .await?;
    Ok(usize::try_from(readers).is_ok_and(|n| n == wanted.len()))
}

/// The unfinished executions of `system` (id, tenant) whose uplinks need the object `target`.
pub(crate) async fn unfinished_executions_sending(
    db: &Db,
    system: &str,
    target: &Digest,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT o.execution, e.tenant FROM execution_objects o
         JOIN executions e ON e.id = o.execution
         WHERE o.digest = $1 AND e.system = $2 AND o.message = 0
           AND e.state IN ('CREATED', 'SCHEDULED', 'RUNNING')
         ORDER BY e.created_at, e.id",
    )
    .bind(target.to_string())
    .bind(system)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Records objects sent; the same object sent again for an execution keeps its first row.
pub(crate) async fn insert_sends(db: &Db, rows: &[SentRow]) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    for r in rows {
        sqlx::query(
            "INSERT INTO execution_sends
                 (execution, target, object, kind, base, size, raw_size, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT DO NOTHING",
        )
        .bind(&r.execution)
        .bind(r.target.to_string())
        .bind(r.object.to_string())
        .bind(&r.kind)
        .bind(r.base.map(|b| b.to_string()))
        .bind(size(r.size))
        .bind(size(r.raw_size))
        .bind(r.at)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// What went up for an execution, in the order sent.
pub(crate) async fn execution_sends(db: &Db, execution: &str) -> Result<Vec<SentRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT target, object, kind, base, size, raw_size, at FROM execution_sends
         WHERE execution = $1 ORDER BY at, object",
    )
    .bind(execution)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            let base: Option<String> = r.try_get("base")?;
            Ok(SentRow {
                execution: execution.to_string(),
                target: digest(r, "target")?,
                object: digest(r, "object")?,
                kind: r.try_get("kind")?,
                base: base.and_then(|b| b.parse().ok()),
                size: u64::try_from(r.try_get::<i64, _>("size")?).unwrap_or(0),
                raw_size: u64::try_from(r.try_get::<i64, _>("raw_size")?).unwrap_or(0),
                at: r.try_get("at")?,
            })
        })
        .collect()
}
