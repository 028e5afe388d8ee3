//! The `telemetry_buckets` table: the telemetry digests systems downlink, per system, data type
//! and bucket start, bounded per system in time ([`TELEMETRY_RETENTION_MS`]) and in data types
//! ([`MAX_TELEMETRY_TYPES`]).

use std::collections::BTreeSet;

use sqlx::Row;

use super::Db;

/// How much mission time of buckets the ground keeps per system, counted back from the newest
/// bucket a digest brings: 30 days.
pub(crate) const TELEMETRY_RETENTION_MS: i64 = 30 * 86_400_000;
/// The bucket width the ground takes (the agent's): digests of another width are refused, so
/// that buckets of two widths never overlap in a slot.
pub(crate) const BUCKET_MS: u32 = 60_000;
/// How far past the ground's clock a bucket may start (the flight's clock may run a little
/// ahead); a later one is dropped, so that one bucket dated far ahead cannot expire the
/// history before it.
pub(crate) const MAX_AHEAD_MS: i64 = 86_400_000;
/// The most data types kept per system: the series of a data type beyond them are dropped
/// (logged), so that a system cannot grow the table without bound by naming new ones.
pub(crate) const MAX_TELEMETRY_TYPES: usize = 32;

/// What became of a digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Stored {
    /// Buckets written (new or replacing the same bucket).
    pub(crate) buckets: usize,
    /// The data types dropped: new to the system, which has [`MAX_TELEMETRY_TYPES`] already.
    pub(crate) dropped_types: Vec<String>,
    /// Buckets deleted as older than the retention.
    pub(crate) expired: u64,
    /// Buckets dropped as dated too far ahead of the ground's clock.
    pub(crate) ahead: usize,
}

/// Upserts every bucket of `digest` for `system` (one received again replaces the one held),
/// then deletes the system's buckets older than [`TELEMETRY_RETENTION_MS`] before the newest
/// bucket of the digest (or before now, if that is earlier); one transaction, not one of the
/// serialised writes (`write_tx`): a system's digests are handled one at a time by its link
/// holder, and the rows are the system's alone. Buckets starting more than [`MAX_AHEAD_MS`]
/// past `received_ms` are dropped (counted in [`Stored::ahead`]).
pub(crate) async fn store_digest(
    db: &Db,
    system: &str,
    digest: &wire::TelemetryDigest,
    received_ms: i64,
) -> Result<Stored, sqlx::Error> {
    let mut tx = db.begin().await?;
    let mut known: BTreeSet<String> = sqlx::query_scalar::<_, String>(
        "SELECT DISTINCT data_type FROM telemetry_buckets WHERE system = $1",
    )
    .bind(system)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    let mut stored = Stored::default();
    let mut newest: Option<i64> = None;
    for series in &digest.series {
        if !known.contains(&series.data_type) {
            if known.len() >= MAX_TELEMETRY_TYPES {
                stored.dropped_types.push(series.data_type.clone());
                continue;
            }
            known.insert(series.data_type.clone());
        }
        for b in &series.buckets {
            let start = match i64::try_from(b.start_ms) {
                Ok(start) if start <= received_ms.saturating_add(MAX_AHEAD_MS) => start,
                _ => {
                    stored.ahead += 1;
                    continue;
                }
            };
            sqlx::query(
                "INSERT INTO telemetry_buckets (system, data_type, bucket_start_ms, bucket_ms,
                     sample_count, min_milli, mean_milli, max_milli, received_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT(system, data_type, bucket_start_ms) DO UPDATE SET
                     bucket_ms = excluded.bucket_ms, sample_count = excluded.sample_count,
                     min_milli = excluded.min_milli, mean_milli = excluded.mean_milli,
                     max_milli = excluded.max_milli, received_ms = excluded.received_ms",
            )
            .bind(system)
            .bind(&series.data_type)
            .bind(start)
            .bind(i64::from(digest.bucket_ms))
            .bind(i64::from(b.count))
            .bind(i64::from(b.min))
            .bind(i64::from(b.mean))
            .bind(i64::from(b.max))
            .bind(received_ms)
            .execute(&mut *tx)
            .await?;
            stored.buckets += 1;
            newest = Some(newest.map_or(start, |n| n.max(start)));
        }
    }
    if let Some(newest) = newest {
        stored.expired =
            sqlx::query("DELETE FROM telemetry_buckets WHERE system = $1 AND bucket_start_ms < $2")
                .bind(system)
                .bind(
                    newest
                        .min(received_ms)
                        .saturating_sub(TELEMETRY_RETENTION_MS),
                )
                .execute(&mut *tx)
                .await?
                .rows_affected();
    }
    tx.commit().await?;
    Ok(stored)
}

/// A window of time read in slots of `step_ms` (multiples of it since the Unix epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TelemetryWindow {
    /// Buckets starting at or after this, Unix ms.
    pub(crate) from_ms: i64,
    /// Buckets starting before this, Unix ms.
    pub(crate) to_ms: i64,
    /// The slot width, ms (at least 1): the buckets of a slot are merged into one point.
    pub(crate) step_ms: i64,
}

/// The buckets of one slot, merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TelemetryPoint {
    /// The first bucket's start, Unix ms.
    pub(crate) start_ms: i64,
    /// Samples in all.
    pub(crate) count: i64,
    /// The smallest minimum, thousandths.
    pub(crate) min: i64,
    /// The buckets' means weighted by their samples, thousandths.
    pub(crate) mean: i64,
    /// The largest maximum, thousandths.
    pub(crate) max: i64,
}

/// Whether `system` has sent any telemetry that is kept (one index probe, not a scan).
pub(crate) async fn has_telemetry(db: &Db, system: &str) -> Result<bool, sqlx::Error> {
    let one: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM telemetry_buckets WHERE system = $1 LIMIT 1")
            .bind(system)
            .fetch_optional(db)
            .await?;
    Ok(one.is_some())
}

/// The data types `system` has buckets of, sorted (at most [`MAX_TELEMETRY_TYPES`]).
pub(crate) async fn telemetry_types(db: &Db, system: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT data_type FROM telemetry_buckets WHERE system = $1 ORDER BY data_type",
    )
    .bind(system)
    .fetch_all(db)
    .await
}

/// The points of `data_type` of `system` in `window`, oldest first: at most
/// `(to_ms - from_ms) / step_ms + 1`.
pub(crate) async fn telemetry_points(
    db: &Db,
    system: &str,
    data_type: &str,
    window: TelemetryWindow,
) -> Result<Vec<TelemetryPoint>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT bucket_start_ms / $4 AS slot, MIN(bucket_start_ms) AS start_ms,
             CAST(SUM(sample_count) AS BIGINT) AS n, MIN(min_milli) AS lo,
             MAX(max_milli) AS hi,
             SUM(CAST(mean_milli AS DOUBLE PRECISION) * sample_count) AS total
         FROM telemetry_buckets
         WHERE system = $1 AND data_type = $5 AND bucket_start_ms >= $2 AND bucket_start_ms < $3
         GROUP BY slot ORDER BY slot",
    )
    .bind(system)
    .bind(window.from_ms)
    .bind(window.to_ms)
    .bind(window.step_ms.max(1))
    .bind(data_type)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            let count: i64 = r.try_get("n")?;
            let (min, max): (i64, i64) = (r.try_get("lo")?, r.try_get("hi")?);
            // Summed in floating point: thousandths times samples may pass 64 bits.
            let total: f64 = r.try_get("total")?;
            Ok(TelemetryPoint {
                start_ms: r.try_get("start_ms")?,
                count,
                min,
                mean: ((total / count.max(1) as f64) as i64).clamp(min, max),
                max,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_796_256_000_000;
    /// When the tests' digests arrive: after every bucket they hold (a bucket dated more than
    /// a day ahead of its arrival is dropped).
    const NOW: i64 = T0 as i64 + 90 * 86_400_000;

    fn digest(data_type: &str, minutes: std::ops::Range<u64>, base: i32) -> wire::TelemetryDigest {
        wire::TelemetryDigest {
            bucket_ms: 60_000,
            series: vec![wire::DigestSeries {
                data_type: data_type.into(),
                buckets: minutes
                    .map(|m| wire::DigestBucket {
                        start_ms: T0 + m * 60_000,
                        count: 6,
                        min: base + m as i32,
                        mean: base + m as i32 + 10,
                        max: base + m as i32 + 20,
                    })
                    .collect(),
            }],
        }
    }

    fn window(from_min: i64, to_min: i64, step_min: i64) -> TelemetryWindow {
        TelemetryWindow {
            from_ms: T0 as i64 + from_min * 60_000,
            to_ms: T0 as i64 + to_min * 60_000,
            step_ms: step_min * 60_000,
        }
    }

    #[tokio::test]
    async fn buckets_are_upserted_merged_into_slots_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let db = super::super::open(&super::super::sqlite_url(&dir.path().join("g.sqlite")))
            .await
            .unwrap();
        let soc = "battery_soc_percent";
        let stored = store_digest(&db, "fm", &digest(soc, 0..4, 80_000), NOW + 1)
            .await
            .unwrap();
        assert_eq!((stored.buckets, stored.expired), (4, 0));
        // The same buckets again (an agent restarted before its mark was saved), one changed:
        // still four, the last word kept.
        store_digest(&db, "fm", &digest(soc, 2..4, 70_000), NOW + 2)
            .await
            .unwrap();
        let points = telemetry_points(&db, "fm", soc, window(0, 10, 1))
            .await
            .unwrap();
        let mins: Vec<i64> = points.iter().map(|p| p.min).collect();
        assert_eq!(mins, [80_000, 80_001, 70_002, 70_003]);
        assert_eq!(points[0].start_ms, T0 as i64);
        assert_eq!((points[0].count, points[0].mean), (6, 80_010));
        // Another system's, and another type's, are apart.
        store_digest(&db, "em", &digest(soc, 0..4, 0), NOW + 3)
            .await
            .unwrap();
        store_digest(&db, "fm", &digest("solar_w", 0..1, 0), NOW + 3)
            .await
            .unwrap();
        assert_eq!(
            telemetry_types(&db, "fm").await.unwrap(),
            ["battery_soc_percent", "solar_w"]
        );
        // Two-minute slots merge pairs: min of mins, max of maxes, means weighted by samples.
        let merged = telemetry_points(&db, "fm", soc, window(0, 10, 2))
            .await
            .unwrap();
        assert_eq!(merged.len(), 2);
        assert_eq!(
            merged[1],
            TelemetryPoint {
                start_ms: T0 as i64 + 120_000,
                count: 12,
                min: 70_002,
                mean: 70_012,
                max: 70_023,
            }
        );
        // The window is half-open.
        assert_eq!(
            telemetry_points(&db, "fm", soc, window(1, 3, 1))
                .await
                .unwrap()
                .len(),
            2
        );
        // A bucket 30 days and a minute after the first removes those of the first minute.
        let later = 30 * 1440 + 1;
        let stored = store_digest(&db, "fm", &digest(soc, later..later + 1, 0), NOW + 4)
            .await
            .unwrap();
        assert_eq!(stored.expired, 2);
        let left = telemetry_points(&db, "fm", soc, window(0, later as i64 + 1, 1))
            .await
            .unwrap();
        assert_eq!(left.len(), 4);
        assert_eq!(left[0].start_ms, T0 as i64 + 60_000);
        // The other system keeps its own.
        assert_eq!(
            telemetry_points(&db, "em", soc, window(0, 10, 1))
                .await
                .unwrap()
                .len(),
            4
        );
    }

    #[tokio::test]
    async fn a_bucket_dated_far_ahead_is_dropped_and_expires_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = super::super::open(&super::super::sqlite_url(&dir.path().join("g.sqlite")))
            .await
            .unwrap();
        let soc = "battery_soc_percent";
        store_digest(&db, "fm", &digest(soc, 0..4, 0), NOW)
            .await
            .unwrap();
        // A year past the first buckets, arriving just after them: a clock gone wrong.
        let year = 365 * 1440;
        let stored = store_digest(&db, "fm", &digest(soc, year..year + 1, 0), T0 as i64)
            .await
            .unwrap();
        assert_eq!((stored.buckets, stored.ahead, stored.expired), (0, 1, 0));
        let kept = telemetry_points(&db, "fm", soc, window(0, 10, 1))
            .await
            .unwrap();
        assert_eq!(kept.len(), 4);
    }

    #[tokio::test]
    async fn a_system_keeps_a_bounded_number_of_data_types() {
        let dir = tempfile::tempdir().unwrap();
        let db = super::super::open(&super::super::sqlite_url(&dir.path().join("g.sqlite")))
            .await
            .unwrap();
        for i in 0..MAX_TELEMETRY_TYPES {
            store_digest(&db, "fm", &digest(&format!("t{i}"), 0..1, 0), NOW + 1)
                .await
                .unwrap();
        }
        let stored = store_digest(&db, "fm", &digest("one_too_many", 0..1, 0), NOW + 1)
            .await
            .unwrap();
        assert_eq!(stored.dropped_types, ["one_too_many"]);
        assert_eq!(stored.buckets, 0);
        // A type it has still takes buckets.
        let stored = store_digest(&db, "fm", &digest("t0", 1..2, 0), NOW + 1)
            .await
            .unwrap();
        assert_eq!(stored.buckets, 1);
    }
}
