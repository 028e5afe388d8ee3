//! The `systems` table: each system's agent, platform, base-image catalogue and engine report,
//! as last seen.

use sqlx::Row;

use super::Db;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SystemRow {
    pub(crate) platform: String,
    /// JSON list of `wire::BaseImage`.
    pub(crate) catalogue: String,
    pub(crate) last_seen: i64,
    /// JSON `wire::EngineReport`; `None` before an agent reported one.
    pub(crate) engine: Option<String>,
}

impl SystemRow {
    /// The engine report, read; `None` before one was reported (or if it does not read).
    pub(crate) fn engine_report(&self) -> Option<wire::EngineReport> {
        self.engine.as_deref().and_then(super::from_json)
    }
}

pub(crate) async fn upsert_system(
    db: &Db,
    name: &str,
    agent: &str,
    platform: &str,
    catalogue: &str,
    engine: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO systems (name, agent, platform, catalogue, engine, last_seen)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT(name) DO UPDATE SET agent = excluded.agent, platform = excluded.platform,
             catalogue = excluded.catalogue, engine = excluded.engine,
             last_seen = excluded.last_seen",
    )
    .bind(name)
    .bind(agent)
    .bind(platform)
    .bind(catalogue)
    .bind(engine)
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

pub(crate) async fn system(db: &Db, name: &str) -> Result<Option<SystemRow>, sqlx::Error> {
    let row =
        sqlx::query("SELECT platform, catalogue, last_seen, engine FROM systems WHERE name = $1")
            .bind(name)
            .fetch_optional(db)
            .await?;
    row.map(|r| {
        Ok(SystemRow {
            platform: r.try_get("platform")?,
            catalogue: r.try_get("catalogue")?,
            last_seen: r.try_get("last_seen")?,
            engine: r.try_get("engine")?,
        })
    })
    .transpose()
}
