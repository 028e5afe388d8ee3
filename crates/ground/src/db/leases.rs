//! The `link_leases` table (which replica runs each system's link, until when, under which
//! generation) and the `link_outbox` table (messages for a system queued by a replica that does
//! not run its link). Times are the database's clock, so replicas whose clocks differ agree on
//! when a lease expires.

use sqlx::Row;
use wire::Digest;

use super::{Backend, Db};

/// A system's lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeaseRow {
    pub(crate) system: String,
    pub(crate) holder: String,
    pub(crate) generation: i64,
    pub(crate) expires_ms: i64,
}

/// Now by the database's clock, in milliseconds since the Unix epoch.
pub(crate) async fn db_now_ms(db: &Db) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(Backend::of(db).pick(
        "SELECT CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
        "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
    ))
    .fetch_one(db)
    .await
}

/// Takes `system`'s lease for `holder` until `ttl_ms` from now, when it is free, expired or
/// `holder`'s already (the same replica started again); every taking raises the generation.
/// Returns the new generation, or `None` when another replica holds it.
pub(crate) async fn acquire_lease(
    db: &Db,
    system: &str,
    holder: &str,
    ttl_ms: i64,
) -> Result<Option<i64>, sqlx::Error> {
    let now = db_now_ms(db).await?;
    sqlx::query_scalar(
        "INSERT INTO link_leases (system, holder, generation, expires_ms) VALUES ($1, $2, 1, $3)
         ON CONFLICT (system) DO UPDATE SET holder = excluded.holder,
             generation = link_leases.generation + 1, expires_ms = excluded.expires_ms
         WHERE link_leases.holder = excluded.holder OR link_leases.expires_ms <= $4
         RETURNING generation",
    )
    .bind(system)
    .bind(holder)
    .bind(now.saturating_add(ttl_ms))
    .bind(now)
    .fetch_optional(db)
    .await
}

/// Extends `holder`'s lease of `system` under `generation` to `ttl_ms` from now; `false` when
/// it is no longer theirs (taken by another, or by a later start of the same replica).
pub(crate) async fn renew_lease(
    db: &Db,
    system: &str,
    holder: &str,
    generation: i64,
    ttl_ms: i64,
) -> Result<bool, sqlx::Error> {
    let now = db_now_ms(db).await?;
    let done = sqlx::query(
        "UPDATE link_leases SET expires_ms = $1
         WHERE system = $2 AND holder = $3 AND generation = $4 AND expires_ms > $5",
    )
    .bind(now.saturating_add(ttl_ms))
    .bind(system)
    .bind(holder)
    .bind(generation)
    .bind(now)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Lets `system`'s lease go at once, if `holder` still holds it under `generation`.
pub(crate) async fn release_lease(
    db: &Db,
    system: &str,
    holder: &str,
    generation: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE link_leases SET expires_ms = 0
         WHERE system = $1 AND holder = $2 AND generation = $3",
    )
    .bind(system)
    .bind(holder)
    .bind(generation)
    .execute(db)
    .await?;
    Ok(())
}

/// Every lease, with the database's now (a lease is held while `expires_ms` is past it).
pub(crate) async fn leases(db: &Db) -> Result<(Vec<LeaseRow>, i64), sqlx::Error> {
    let now = db_now_ms(db).await?;
    let rows = sqlx::query(
        "SELECT system, holder, generation, expires_ms FROM link_leases ORDER BY system",
    )
    .fetch_all(db)
    .await?;
    let leases = rows
        .iter()
        .map(|r| {
            Ok(LeaseRow {
                system: r.try_get("system")?,
                holder: r.try_get("holder")?,
                generation: r.try_get("generation")?,
                expires_ms: r.try_get("expires_ms")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok((leases, now))
}

/// Queues an encoded message for `system`'s link holder (once: the same bytes queued twice are
/// one row).
pub(crate) async fn outbox_queue(
    db: &Db,
    system: &str,
    message: &[u8],
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO link_outbox (system, digest, message, queued_ms) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING",
    )
    .bind(system)
    .bind(Digest::of(message).to_string())
    .bind(message)
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

/// The messages queued for `system`, oldest first, when `holder` holds its lease under
/// `generation` (none otherwise); each is taken by [`outbox_done`] once in the link's outbox.
pub(crate) async fn outbox_take(
    db: &Db,
    system: &str,
    holder: &str,
    generation: i64,
) -> Result<Vec<(String, Vec<u8>)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT o.digest, o.message FROM link_outbox o JOIN link_leases l ON l.system = o.system
         WHERE o.system = $1 AND l.holder = $2 AND l.generation = $3
         ORDER BY o.queued_ms, o.digest",
    )
    .bind(system)
    .bind(holder)
    .bind(generation)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("digest")?, r.try_get("message")?)))
        .collect()
}

/// Deletes a message [`outbox_take`] gave, now in the link's outbox: only while `holder` holds
/// `system`'s lease under `generation`, so a holder that lost it takes nothing from the next.
pub(crate) async fn outbox_done(
    db: &Db,
    system: &str,
    digest: &str,
    holder: &str,
    generation: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM link_outbox WHERE system = $1 AND digest = $2 AND EXISTS (
             SELECT 1 FROM link_leases l WHERE l.system = $1 AND l.holder = $3
                 AND l.generation = $4)",
    )
    .bind(system)
    .bind(digest)
    .bind(holder)
    .bind(generation)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lease of `ttl_ms` from now; a negative one has expired already, so expiry needs no
    /// waiting.
    const LIVE: i64 = 60_000;
    const EXPIRED: i64 = -1;

    #[tokio::test]
    async fn acquire_renew_expire_and_fence() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::open(&crate::db::sqlite_url(&dir.path().join("g.sqlite")))
            .await
            .unwrap();

        // Free: `a` takes it (generation 1); `b` cannot while it is live.
        assert_eq!(acquire_lease(&db, "em", "a", LIVE).await.unwrap(), Some(1));
        assert_eq!(acquire_lease(&db, "em", "b", LIVE).await.unwrap(), None);
        assert!(renew_lease(&db, "em", "a", 1, LIVE).await.unwrap());
        // Another system's lease is another row.
        assert_eq!(acquire_lease(&db, "fm", "b", LIVE).await.unwrap(), Some(1));

        // `a` stops renewing: the lease runs out, and `b` takes it under a later generation.
        assert!(renew_lease(&db, "em", "a", 1, EXPIRED).await.unwrap());
        assert_eq!(acquire_lease(&db, "em", "b", LIVE).await.unwrap(), Some(2));
        // Fenced: `a`, back from a pause, can neither renew nor release it...
        assert!(!renew_lease(&db, "em", "a", 1, LIVE).await.unwrap());
        release_lease(&db, "em", "a", 1).await.unwrap();
        assert_eq!(acquire_lease(&db, "em", "a", LIVE).await.unwrap(), None);
        // ...nor take what another replica queued for the holder.
        outbox_queue(&db, "em", b"plan", 0).await.unwrap();
        outbox_queue(&db, "em", b"plan", 1).await.unwrap();
        assert!(outbox_take(&db, "em", "a", 1).await.unwrap().is_empty());
        let digest = Digest::of(b"plan").to_string();
        assert!(!outbox_done(&db, "em", &digest, "a", 1).await.unwrap());
        let queued = outbox_take(&db, "em", "b", 2).await.unwrap();
        assert_eq!(queued, [(digest.clone(), b"plan".to_vec())], "queued once");
        assert!(outbox_done(&db, "em", &digest, "b", 2).await.unwrap());
        assert!(outbox_take(&db, "em", "b", 2).await.unwrap().is_empty());

        // `b` started again takes its own lease back at once, under a new generation, which
        // fences its previous run.
        assert_eq!(acquire_lease(&db, "em", "b", LIVE).await.unwrap(), Some(3));
        assert!(!renew_lease(&db, "em", "b", 2, LIVE).await.unwrap());

        // A clean release frees it at once.
        release_lease(&db, "em", "b", 3).await.unwrap();
        let (rows, now) = leases(&db).await.unwrap();
        let em = rows.iter().find(|r| r.system == "em").unwrap();
        assert!(em.expires_ms <= now, "{em:?}");
        assert_eq!(acquire_lease(&db, "em", "a", LIVE).await.unwrap(), Some(4));
        let (rows, now) = leases(&db).await.unwrap();
        assert_eq!(
            rows.iter()
                .map(|r| (
                    r.system.as_str(),
                    r.holder.as_str(),
                    r.generation,
                    r.expires_ms > now
                ))
                .collect::<Vec<_>>(),
            [("em", "a", 4, true), ("fm", "b", 1, true)]
        );
    }
}
