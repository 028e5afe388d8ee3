//! The onboard telemetry a system downlinks as digests (`wire::TelemetryDigest`,
//! `docs/telemetry.md`): stored on receipt ([`receive`], one transaction, a bucket received again
//! replacing the one held, so a digest that comes twice changes nothing), read back as series of
//! points over a window of time ([`series`]) for the API and the dashboard's plots
//! (`telemetry_plot`). Satellite telemetry, not a tenant's: any signed-in user may read it.

use crate::db::{self, TelemetryWindow};
use crate::error::Error;
use crate::{Core, time};

/// The most points a series of [`series`] has: a day at one a minute, and the minute the
/// window starts in (a window need not start on a whole minute).
pub(crate) const MAX_POINTS: i64 = 1441;
/// The narrowest point, ms: the agent's bucket width.
pub(crate) const MIN_STEP_MS: i64 = 60_000;
/// The widest window [`series`] reads, ms: the retention and a day.
pub(crate) const MAX_WINDOW_MS: i64 = 31 * 86_400_000;

/// Stores a digest `system` sent; returns once it is committed.
pub(crate) async fn receive(
    core: &Core,
    system: &str,
    digest: &wire::TelemetryDigest,
) -> Result<(), Error> {
    if digest.bucket_ms != db::TELEMETRY_BUCKET_MS {
        // Buckets of two widths would overlap in a slot: the agent's width only.
        tracing::warn!(%system, bucket_ms = digest.bucket_ms, "telemetry digest of another bucket width than the agent's refused");
        return Ok(());
    }
    let stored = db::store_digest(&core.db, system, digest, time::now_ms()).await?;
    if stored.ahead > 0 {
        tracing::warn!(%system, buckets = stored.ahead, "telemetry buckets dated more than a day ahead of the ground's clock dropped");
    }
    if !stored.dropped_types.is_empty() {
        tracing::warn!(%system, types = ?stored.dropped_types, "telemetry of data types beyond the bound dropped");
    }
    tracing::debug!(%system, buckets = stored.buckets, expired = stored.expired, "telemetry digest stored");
    Ok(())
}

/// The width of the points of a window `window_ms` long: a whole number of minutes, at least
/// one, so that there are at most [`MAX_POINTS`].
pub(crate) fn step_for(window_ms: i64) -> i64 {
    let slots = MAX_POINTS - 1;
    let least = (window_ms.max(1) + slots - 1) / slots;
    let minutes = (least + MIN_STEP_MS - 1) / MIN_STEP_MS;
    minutes.max(1) * MIN_STEP_MS
}

/// The points of `system` in `[from_ms, to_ms)`, each `step_ms` wide (see [`step_for`]), as
/// the database merged them: of each of `types`, or of every data type it has sent when none
/// are named. The caller checks the names and bounds the window.
pub(crate) async fn points(
    core: &Core,
    system: &str,
    types: &[String],
    window: TelemetryWindow,
) -> Result<Vec<(String, Vec<db::TelemetryPoint>)>, Error> {
    let types = if types.is_empty() {
        db::telemetry_types(&core.db, system).await?
    } else {
        types.to_vec()
    };
    let mut out = Vec::with_capacity(types.len());
    for data_type in types {
        let points = db::telemetry_points(&core.db, system, &data_type, window).await?;
        out.push((data_type, points));
    }
    Ok(out)
}

/// [`points`] as the API answers them: times in RFC 3339, values in the series' unit.
pub(crate) async fn series(
    core: &Core,
    system: &str,
    types: &[String],
    window: TelemetryWindow,
) -> Result<Vec<api::TelemetrySeries>, Error> {
    Ok(points(core, system, types, window)
        .await?
        .into_iter()
        .map(|(data_type, points)| api::TelemetrySeries {
            data_type,
            points: points
                .into_iter()
                .map(|p| api::TelemetryPoint {
                    start: time::rfc3339(p.start_ms),
                    count: u64::try_from(p.count).unwrap_or(0),
                    min: value(p.min),
                    mean: value(p.mean),
                    max: value(p.max),
                })
                .collect(),
        })
        .collect())
}

/// A value stored in thousandths, in its unit.
pub(crate) fn value(thousandths: i64) -> f64 {
    thousandths as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_has_at_most_a_day_of_minutes() {
        assert_eq!(step_for(1), MIN_STEP_MS);
        assert_eq!(step_for(86_400_000), MIN_STEP_MS);
        assert_eq!(step_for(86_400_001), 2 * MIN_STEP_MS);
        assert_eq!(step_for(MAX_WINDOW_MS), 31 * MIN_STEP_MS);
        for window in [1, 3_600_000, 86_400_000, 7 * 86_400_000 + 5, MAX_WINDOW_MS] {
            let step = step_for(window);
            assert!((window + step - 1) / step < MAX_POINTS, "{window}");
        }
    }
}
