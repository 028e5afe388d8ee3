//! The `quotas` table: each tenant's limits as an operator last set them.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::Db;

/// A tenant's limits (`None`: no limit) and who set them when.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct QuotaRow {
    pub(crate) tenant: String,
    pub(crate) volume_bytes: Option<i64>,
    pub(crate) image_bytes: Option<i64>,
    pub(crate) compute_seconds_per_day: Option<i64>,
    pub(crate) downlink_bytes_per_day: Option<i64>,
    /// `None` when never set.
    pub(crate) updated_at: Option<i64>,
    pub(crate) updated_by: Option<String>,
}

fn quota_row(r: &AnyRow) -> Result<QuotaRow, sqlx::Error> {
    Ok(QuotaRow {
        tenant: r.try_get("name")?,
        volume_bytes: r.try_get("volume_bytes")?,
        image_bytes: r.try_get("image_bytes")?,
        compute_seconds_per_day: r.try_get("compute_seconds_per_day")?,
        downlink_bytes_per_day: r.try_get("downlink_bytes_per_day")?,
        updated_at: r.try_get("updated_at")?,
        updated_by: r.try_get("updated_by")?,
    })
}

/// Every user with its quotas, then `$tail`.
macro_rules! select {
    ($tail:literal) => {
        concat!(
            "SELECT u.name, q.volume_bytes, q.image_bytes, q.compute_seconds_per_day,
                    q.downlink_bytes_per_day, q.updated_at, q.updated_by
               FROM users u LEFT JOIN quotas q ON q.tenant = u.name ",
            $tail
        )
    };
}

/// A user's quotas (all `None` when never set); `None` when there is no such user.
pub(crate) async fn quota(db: &Db, tenant: &str) -> Result<Option<QuotaRow>, sqlx::Error> {
    let row = sqlx::query(select!("WHERE u.name = $1"))
        .bind(tenant)
        .fetch_optional(db)
        .await?;
    row.as_ref().map(quota_row).transpose()
}

/// Every user's quotas, by name.
pub(crate) async fn quotas(db: &Db) -> Result<Vec<QuotaRow>, sqlx::Error> {
    let rows = sqlx::query(select!("ORDER BY u.name"))
        .fetch_all(db)
        .await?;
    rows.iter().map(quota_row).collect()
}

/// Replaces a tenant's quotas (`q.updated_at` and `q.updated_by` must be set).
pub(crate) async fn set_quota(db: &Db, q: &QuotaRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO quotas (tenant, volume_bytes, image_bytes, compute_seconds_per_day,
                             downlink_bytes_per_day, updated_at, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT(tenant) DO UPDATE SET
             volume_bytes = excluded.volume_bytes, image_bytes = excluded.image_bytes,
             compute_seconds_per_day = excluded.compute_seconds_per_day,
             downlink_bytes_per_day = excluded.downlink_bytes_per_day,
             updated_at = excluded.updated_at, updated_by = excluded.updated_by",
    )
    .bind(&q.tenant)
    .bind(q.volume_bytes)
    .bind(q.image_bytes)
    .bind(q.compute_seconds_per_day)
    .bind(q.downlink_bytes_per_day)
    .bind(q.updated_at.unwrap_or(0))
    .bind(q.updated_by.as_deref().unwrap_or(""))
    .execute(db)
    .await?;
    Ok(())
}
