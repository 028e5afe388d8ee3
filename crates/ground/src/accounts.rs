//! What an operator does to users, whether asked through the API or the dashboard: disable or
//! enable one, set a tenant's quota. The rules live here once.

use crate::error::ApiError;
use crate::{Ground, db, time};

/// Disables (`disable`) or enables `name` for the operator `by`: a disabled user can no longer
/// log in and its sessions end. An operator cannot disable itself (409); 404 for no such user.
pub(crate) async fn set_disabled(
    g: &Ground,
    by: &str,
    name: &str,
    disable: bool,
) -> Result<(), ApiError> {
    if disable && name == by {
        return Err(ApiError::Conflict(
            "an operator cannot disable itself: ask another operator".into(),
        ));
    }
    if !db::set_disabled(g.db(), name, disable.then(time::now_ms)).await? {
        return Err(ApiError::not_found(format!("user '{name}' not found")));
    }
    tracing::info!(user = %name, operator = %by, disable, "user access changed");
    Ok(())
}

/// Sets `tenant`'s quota to `limits` (an absent field: no limit) for the operator `by`; 404 for
/// no such user, 400 for a limit beyond what the database holds.
pub(crate) async fn set_quota(
    g: &Ground,
    by: &str,
    tenant: &str,
    limits: &api::Limits,
) -> Result<db::QuotaRow, ApiError> {
    if db::user(g.db(), tenant).await?.is_none() {
        return Err(ApiError::not_found(format!("user '{tenant}' not found")));
    }
    let bounded = |field: &str, v: Option<u64>| -> Result<Option<i64>, ApiError> {
        v.map(|v| {
            i64::try_from(v)
                .map_err(|_| ApiError::bad(format!("{field}: {v} is more than {}", i64::MAX)))
        })
        .transpose()
    };
    let row = db::QuotaRow {
        tenant: tenant.to_string(),
        volume_bytes: bounded("volume_bytes", limits.volume_bytes)?,
        image_bytes: bounded("image_bytes", limits.image_bytes)?,
        compute_seconds_per_day: bounded(
            "compute_seconds_per_day",
            limits.compute_seconds_per_day,
        )?,
        downlink_bytes_per_day: bounded("downlink_bytes_per_day", limits.downlink_bytes_per_day)?,
        updated_at: Some(time::now_ms()),
        updated_by: Some(by.to_string()),
    };
    db::set_quota(g.db(), &row).await?;
    tracing::info!(%tenant, operator = %by, ?limits, "quota set");
    Ok(row)
}
