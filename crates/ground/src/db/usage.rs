//! What a tenant used, per UTC day: bytes planned up (its executions' plans and objects), bytes
//! brought down (its downlinks' files) and compute seconds (its pods, per system). Read-only
//! over `executions`, `execution_objects` and `tasks`.

use std::collections::BTreeMap;

use sqlx::Row;

use super::Db;

const DAY_MS: i64 = 86_400_000;

/// One day's use.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct DayUsage {
    /// Days since the Unix epoch (UTC).
    pub(crate) day: i64,
    pub(crate) up_bytes: i64,
    pub(crate) down_bytes: i64,
    /// Seconds of pods by system.
    pub(crate) compute_s: BTreeMap<String, f64>,
}

/// The tenant's use on each of the `days` days up to and including the day of `now_ms`, oldest
/// first (a day without use is there with zeros).
pub(crate) async fn usage(
    db: &Db,
    tenant: &str,
    now_ms: i64,
    days: i64,
) -> Result<Vec<DayUsage>, sqlx::Error> {
    let last = now_ms.div_euclid(DAY_MS);
    let first = last - days + 1;
    let since = first * DAY_MS;
    let mut out: Vec<DayUsage> = (first..=last)
        .map(|day| DayUsage {
            day,
            ..DayUsage::default()
        })
        .collect();
    let at = |day: i64| usize::try_from(day - first).ok();
    let up = sqlx::query(
        "SELECT e.created_at / $1 AS day, CAST(SUM(o.size) AS BIGINT) AS bytes
         FROM execution_objects o JOIN executions e ON e.id = o.execution
         WHERE e.tenant = $2 AND e.created_at >= $3 GROUP BY day",
    )
    .bind(DAY_MS)
    .bind(tenant)
    .bind(since)
    .fetch_all(db)
    .await?;
    for r in up {
        if let Some(d) = at(r.try_get("day")?).and_then(|i| out.get_mut(i)) {
            d.up_bytes = r.try_get("bytes")?;
        }
    }
    // The files' sizes are summed here, not in SQL: the two engines read JSON differently.
    let down = sqlx::query(
        "SELECT t.finished_at / $1 AS day, t.outputs AS outputs
         FROM tasks t JOIN executions e ON e.id = t.execution
         WHERE e.tenant = $2 AND t.type = 'downlink' AND t.finished_at >= $3
           AND t.outputs IS NOT NULL",
    )
    .bind(DAY_MS)
    .bind(tenant)
    .bind(since)
    .fetch_all(db)
    .await?;
    for r in down {
        if let Some(d) = at(r.try_get("day")?).and_then(|i| out.get_mut(i)) {
            let outputs: String = r.try_get("outputs")?;
            d.down_bytes += downlinked_bytes(&outputs);
        }
    }
    let compute = sqlx::query(
        "SELECT t.finished_at / $1 AS day, e.system AS system,
                CAST(SUM(t.finished_at - t.started_at) AS BIGINT) AS ms
         FROM tasks t JOIN executions e ON e.id = t.execution
         WHERE e.tenant = $2 AND t.type = 'pod.run' AND t.finished_at >= $3
           AND t.started_at IS NOT NULL AND t.finished_at >= t.started_at
         GROUP BY day, e.system",
    )
    .bind(DAY_MS)
    .bind(tenant)
    .bind(since)
    .fetch_all(db)
    .await?;
    for r in compute {
        if let Some(d) = at(r.try_get("day")?).and_then(|i| out.get_mut(i)) {
            let ms: i64 = r.try_get("ms")?;
            d.compute_s.insert(r.try_get("system")?, ms as f64 / 1000.0);
        }
    }
    Ok(out)
}

/// The bytes of the files a downlink's outputs (JSON) list; 0 for outputs that are not JSON.
fn downlinked_bytes(outputs: &str) -> i64 {
    let value: serde_json::Value = serde_json::from_str(outputs).unwrap_or_default();
    value["files"]
        .as_array()
        .map(|files| files.iter().filter_map(|f| f["size"].as_i64()).sum())
        .unwrap_or(0)
}
